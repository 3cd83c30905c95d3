package operators

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/datasandbox/dsbx/audit"
)

// Roles a principal may hold; a principal may hold several.
const (
	RoleAdmin      = "admin"      // runs the platform: principals, catalog
	RoleProvider   = "provider"   // the agency owning datasets: answers applications, reviews outputs
	RoleOperator   = "operator"   // a licensed operating company (授权运营单位)
	RoleResearcher = "researcher" // a research user of conditionally open data
	RoleReviewer   = "reviewer"   // an output checker
	RoleRegulator  = "regulator"  // reads everything, including the audit log, and changes nothing
	RoleNode       = "node"       // a job node (dsbx worker): runs queued jobs, records their steps through the server, and may call nothing else
)

// Roles lists every role, in the order they are shown.
var Roles = []string{RoleAdmin, RoleProvider, RoleOperator, RoleResearcher, RoleReviewer, RoleRegulator, RoleNode}

// Principal is a user of the platform.
type Principal struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	// Organization is the agency a provider speaks for (the agency named on
	// the datasets it owns), or the company or institute of anyone else.
	Organization   string     `json:"organization,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
}

// Has reports whether p holds role.
func (p Principal) Has(role string) bool { return slices.Contains(p.Roles, role) }

// Requester reports whether p may apply for data and submit jobs.
func (p Principal) Requester() bool { return p.Has(RoleOperator) || p.Has(RoleResearcher) }

// Owns reports whether p is a provider for the organization agency.
func (p Principal) Owns(agency string) bool {
	return p.Has(RoleProvider) && agency != "" && p.Organization == agency
}

// NewPrincipal is a request to add a principal.
type NewPrincipal struct {
	Name         string   `json:"name"`
	Roles        []string `json:"roles"`
	Organization string   `json:"organization,omitempty"`
}

// nameRE is compiled on first use: its Unicode classes take tens of
// milliseconds to compile, which every sandbox worker process (this binary
// re-executed) would otherwise pay at start.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,99}$`) })

// checkRoles validates a role set: known roles, no repeats, and no
// combination that would let one principal check its own work.
func checkRoles(roles []string, organization string) ([]string, error) {
	if len(roles) == 0 {
		return nil, inputErrorf("no roles given; choose from %s", strings.Join(Roles, ", "))
	}
	var out []string
	for _, r := range roles {
		r = strings.TrimSpace(r)
		if !slices.Contains(Roles, r) {
			return nil, inputErrorf("role %q is not one of %s", r, strings.Join(Roles, ", "))
		}
		if slices.Contains(out, r) {
			return nil, inputErrorf("role %s is named twice", r)
		}
		out = append(out, r)
	}
	p := Principal{Roles: out}
	switch {
	case p.Has(RoleRegulator) && len(out) > 1:
		return nil, inputErrorf("a regulator holds no other role: it oversees the others")
	case p.Has(RoleNode) && len(out) > 1:
		return nil, inputErrorf("a job node holds no other role: it is a machine, not a person")
	case p.Requester() && (p.Has(RoleAdmin) || p.Has(RoleProvider) || p.Has(RoleReviewer)):
		return nil, inputErrorf("roles %s mix a requester with a role that approves or reviews requests; use two principals", strings.Join(out, ", "))
	case p.Has(RoleProvider) && strings.TrimSpace(organization) == "":
		return nil, inputErrorf("a provider speaks for an organization: name the agency (as written on its datasets) with organization")
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Roles, a) - slices.Index(Roles, b) })
	return out, nil
}

// Add creates a principal and returns it with its first token, which is
// shown only now and stored only as a hash.
func (d *Directory) Add(ctx context.Context, actor string, np NewPrincipal) (Principal, Issued, error) {
	name := strings.TrimSpace(np.Name)
	if !nameRE().MatchString(name) {
		return Principal{}, Issued{}, inputErrorf("name %q: use 1 to 100 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit", np.Name)
	}
	org := strings.TrimSpace(np.Organization)
	roles, err := checkRoles(np.Roles, org)
	if err != nil {
		return Principal{}, Issued{}, err
	}
	if _, err := d.Get(ctx, name); err == nil {
		return Principal{}, Issued{}, conflictf("principal %q already exists", name)
	} else if !errors.Is(err, ErrNotFound) {
		return Principal{}, Issued{}, err
	}
	now := d.now()
	p := Principal{Name: name, Roles: roles, Organization: org, CreatedAt: now.UTC()}
	token, cred := newCredential(name, "initial", now, nil)
	if _, err := d.record(ctx, "add "+name, audit.Event{
		Kind: "principal.added", Principal: actor, Subject: "principal/" + name,
		Data: map[string]any{"roles": roles, "organization": org, "credential": cred.ID},
	}); err != nil {
		return Principal{}, Issued{}, err
	}
	roleJSON, _ := json.Marshal(roles)
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Principal{}, Issued{}, fmt.Errorf("add %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO principals(name, roles, organization, created_at) VALUES (?, ?, ?, ?)`,
		name, string(roleJSON), org, formatTime(now)); err != nil {
		return Principal{}, Issued{}, fmt.Errorf("add %s: %w", name, err)
	}
	if err := insertCredential(ctx, tx, cred, hashToken(token)); err != nil {
		return Principal{}, Issued{}, fmt.Errorf("add %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return Principal{}, Issued{}, fmt.Errorf("add %s: %w", name, err)
	}
	return p, Issued{Credential: cred, Token: token}, nil
}

// SetRoles replaces the roles (and organization) of principal name.
func (d *Directory) SetRoles(ctx context.Context, actor, name string, roles []string, organization string) (Principal, error) {
	p, err := d.Get(ctx, name)
	if err != nil {
		return Principal{}, err
	}
	org := strings.TrimSpace(organization)
	checked, err := checkRoles(roles, org)
	if err != nil {
		return Principal{}, err
	}
	if p.Has(RoleAdmin) && !slices.Contains(checked, RoleAdmin) {
		if err := d.keepAnAdmin(ctx, name); err != nil {
			return Principal{}, err
		}
	}
	if _, err := d.record(ctx, "set roles of "+name, audit.Event{
		Kind: "principal.roles_changed", Principal: actor, Subject: "principal/" + name,
		Data: map[string]any{"from": p.Roles, "to": checked, "organization": org},
	}); err != nil {
		return Principal{}, err
	}
	roleJSON, _ := json.Marshal(checked)
	if _, err := d.db.ExecContext(ctx, `UPDATE principals SET roles = ?, organization = ? WHERE name = ?`, string(roleJSON), org, name); err != nil {
		return Principal{}, fmt.Errorf("set roles of %s: %w", name, err)
	}
	p.Roles, p.Organization = checked, org
	return p, nil
}

// admins returns the names of the principals with the admin role, only
// the enabled ones if enabled is set. Roles are a JSON array in each row;
// the principals are few, so they are read here rather than searched in
// SQL, which both state databases would spell differently.
func (d *Directory) admins(ctx context.Context, enabled bool) ([]string, error) {
	q := `SELECT name, roles FROM principals`
	if enabled {
		q += ` WHERE disabled_at IS NULL`
	}
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name, roles string
		if err := rows.Scan(&name, &roles); err != nil {
			return nil, fmt.Errorf("list admins: %w", err)
		}
		var rs []string
		if err := json.Unmarshal([]byte(roles), &rs); err != nil {
			return nil, fmt.Errorf("list admins: roles of %s: %w", name, err)
		}
		if slices.Contains(rs, RoleAdmin) {
			names = append(names, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	return names, nil
}

// keepAnAdmin refuses a change that would leave no enabled admin besides name.
func (d *Directory) keepAnAdmin(ctx context.Context, name string) error {
	admins, err := d.admins(ctx, true)
	if err != nil {
		return err
	}
	if len(admins) == 0 || len(admins) == 1 && admins[0] == name {
		return conflictf("%s is the only enabled admin; add another admin first", name)
	}
	return nil
}

// Disable stops principal name: its tokens are revoked at once and it can
// no longer sign in; the caller stops its jobs and holds its results.
func (d *Directory) Disable(ctx context.Context, actor, name, reason string) (Principal, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Principal{}, inputErrorf("no reason given; say why %s is disabled", name)
	}
	if actor == name {
		return Principal{}, inputErrorf("you cannot disable yourself")
	}
	p, err := d.Get(ctx, name)
	if err != nil {
		return Principal{}, err
	}
	if p.DisabledAt != nil {
		return Principal{}, conflictf("%s is already disabled (%s)", name, p.DisabledReason)
	}
	if p.Has(RoleAdmin) {
		if err := d.keepAnAdmin(ctx, name); err != nil {
			return Principal{}, err
		}
	}
	now := d.now()
	if _, err := d.record(ctx, "disable "+name, audit.Event{
		Kind: "principal.disabled", Principal: actor, Subject: "principal/" + name, Data: map[string]any{"reason": reason},
	}); err != nil {
		return Principal{}, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Principal{}, fmt.Errorf("disable %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE principals SET disabled_at = ?, disabled_reason = ? WHERE name = ?`, formatTime(now), reason, name); err != nil {
		return Principal{}, fmt.Errorf("disable %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE principal = ? AND revoked_at IS NULL`, formatTime(now), actor, name); err != nil {
		return Principal{}, fmt.Errorf("disable %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return Principal{}, fmt.Errorf("disable %s: %w", name, err)
	}
	t := now.UTC()
	p.DisabledAt, p.DisabledReason = &t, reason
	return p, nil
}

// Enable lets a disabled principal sign in again once it is issued a new
// token; its old tokens stay revoked.
func (d *Directory) Enable(ctx context.Context, actor, name string) (Principal, error) {
	p, err := d.Get(ctx, name)
	if err != nil {
		return Principal{}, err
	}
	if p.DisabledAt == nil {
		return Principal{}, conflictf("%s is not disabled", name)
	}
	if _, err := d.record(ctx, "enable "+name, audit.Event{
		Kind: "principal.enabled", Principal: actor, Subject: "principal/" + name,
	}); err != nil {
		return Principal{}, err
	}
	if _, err := d.db.ExecContext(ctx, `UPDATE principals SET disabled_at = NULL, disabled_reason = '' WHERE name = ?`, name); err != nil {
		return Principal{}, fmt.Errorf("enable %s: %w", name, err)
	}
	p.DisabledAt, p.DisabledReason = nil, ""
	return p, nil
}

const principalColumns = `name, roles, organization, created_at, disabled_at, disabled_reason`

func scanPrincipal(row interface{ Scan(...any) error }) (Principal, error) {
	var p Principal
	var roles, created string
	var disabled sql.NullString
	if err := row.Scan(&p.Name, &roles, &p.Organization, &created, &disabled, &p.DisabledReason); err != nil {
		return Principal{}, err
	}
	if err := json.Unmarshal([]byte(roles), &p.Roles); err != nil {
		return Principal{}, fmt.Errorf("principal %q roles: %w", p.Name, err)
	}
	p.CreatedAt = parseTime(created)
	p.DisabledAt = nullTime(disabled)
	return p, nil
}

// Get returns the principal named name.
func (d *Directory) Get(ctx context.Context, name string) (Principal, error) {
	p, err := scanPrincipal(d.db.QueryRowContext(ctx, `SELECT `+principalColumns+` FROM principals WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("principal %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("principal %q: %w", name, err)
	}
	return p, nil
}

// List returns every principal, ordered by name.
func (d *Directory) List(ctx context.Context) ([]Principal, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+principalColumns+` FROM principals ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	defer rows.Close()
	out := []Principal{}
	for rows.Next() {
		p, err := scanPrincipal(rows)
		if err != nil {
			return nil, fmt.Errorf("list principals: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Bootstrap creates the admin principal if there is none and returns its
// token; it returns "" when an admin already exists.
func (d *Directory) Bootstrap(ctx context.Context) (string, error) {
	admins, err := d.admins(ctx, false)
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if len(admins) > 0 {
		return "", nil
	}
	_, issued, err := d.Add(ctx, "", NewPrincipal{Name: "admin", Roles: []string{RoleAdmin}})
	return issued.Token, err
}
