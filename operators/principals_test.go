package operators

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAddWithSeveralRoles(t *testing.T) {
	e := newEnv(t)
	size := e.log.Size()
	p, issued, err := e.d.Add(e.ctx, "admin", NewPrincipal{
		Name: " 杭州市数据局 checker ", Roles: []string{" reviewer", RoleProvider, RoleAdmin}, Organization: " " + civilAffairs + " ",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{RoleAdmin, RoleProvider, RoleReviewer} // trimmed and in the order of Roles
	if p.Name != "杭州市数据局 checker" || !slices.Equal(p.Roles, want) || p.Organization != civilAffairs || !p.CreatedAt.Equal(start) {
		t.Errorf("Add returned %+v", p)
	}
	if got := e.get(t, p.Name); got.Name != p.Name || !slices.Equal(got.Roles, want) || got.Organization != civilAffairs || got.DisabledAt != nil || !got.CreatedAt.Equal(start) {
		t.Errorf("Get after Add = %+v", got)
	}
	if !p.Has(RoleProvider) || !p.Owns(civilAffairs) || p.Owns(police) || p.Requester() {
		t.Errorf("role helpers of %+v are wrong", p)
	}
	if !strings.HasPrefix(issued.Token, tokenPrefix) || issued.Credential.Principal != p.Name || issued.Credential.Label != "initial" {
		t.Errorf("first token %+v", issued)
	}
	got, cred, err := e.d.Authenticate(e.ctx, issued.Token)
	if err != nil || got.Name != p.Name || cred.ID != issued.Credential.ID {
		t.Errorf("authenticate with the first token: %+v %+v %v", got, cred, err)
	}
	if e.log.Size() != size+1 {
		t.Fatalf("Add appended %d entries, want 1", e.log.Size()-size)
	}
	en := e.last(t)
	wantEntry(t, en, "principal.added", "admin", "principal/"+p.Name)
	d := data(t, en)
	if d["credential"] != issued.Credential.ID || d["organization"] != civilAffairs || len(d["roles"].([]any)) != 3 {
		t.Errorf("principal.added data = %v", d)
	}
	list, err := e.d.List(e.ctx)
	if err != nil || len(list) != 9 || !slices.IsSortedFunc(list, func(a, b Principal) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("List = %d principals, sorted by name: %v", len(list), err)
	}
}

func TestAddRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		what string
		np   NewPrincipal
		want string
	}{
		{"empty name", NewPrincipal{Name: "  ", Roles: []string{RoleOperator}}, "name"},
		{"name with ;", NewPrincipal{Name: "x; drop table", Roles: []string{RoleOperator}}, "name"},
		{"name with /", NewPrincipal{Name: "a/b", Roles: []string{RoleOperator}}, "name"},
		{"name starting with -", NewPrincipal{Name: "-x", Roles: []string{RoleOperator}}, "name"},
		{"name of 101 letters", NewPrincipal{Name: strings.Repeat("数", 101), Roles: []string{RoleOperator}}, "name"},
		{"no roles", NewPrincipal{Name: "x"}, "no roles"},
		{"unknown role", NewPrincipal{Name: "x", Roles: []string{"superuser"}}, `"superuser"`},
		{"empty role", NewPrincipal{Name: "x", Roles: []string{""}}, `""`},
		{"repeated role", NewPrincipal{Name: "x", Roles: []string{RoleOperator, " operator"}}, "named twice"},
		{"regulator and admin", NewPrincipal{Name: "x", Roles: []string{RoleRegulator, RoleAdmin}}, "regulator"},
		{"regulator and operator", NewPrincipal{Name: "x", Roles: []string{RoleOperator, RoleRegulator}}, "regulator"},
		{"regulator and reviewer", NewPrincipal{Name: "x", Roles: []string{RoleRegulator, RoleReviewer}}, "regulator"},
		{"operator and admin", NewPrincipal{Name: "x", Roles: []string{RoleOperator, RoleAdmin}}, "requester"},
		{"operator and provider", NewPrincipal{Name: "x", Roles: []string{RoleOperator, RoleProvider}, Organization: civilAffairs}, "requester"},
		{"operator and reviewer", NewPrincipal{Name: "x", Roles: []string{RoleOperator, RoleReviewer}}, "requester"},
		{"researcher and admin", NewPrincipal{Name: "x", Roles: []string{RoleResearcher, RoleAdmin}}, "requester"},
		{"researcher and provider", NewPrincipal{Name: "x", Roles: []string{RoleResearcher, RoleProvider}, Organization: civilAffairs}, "requester"},
		{"researcher and reviewer", NewPrincipal{Name: "x", Roles: []string{RoleReviewer, RoleResearcher}}, "requester"},
		{"provider without organization", NewPrincipal{Name: "x", Roles: []string{RoleProvider}, Organization: "  "}, "organization"},
	} {
		err := e.refused(t, tc.what, func() error {
			_, _, err := e.d.Add(e.ctx, "admin", tc.np)
			return err
		})
		wantErr[*InputError](t, tc.what, err, tc.want)
	}
	for _, name := range []string{"acme", " acme "} {
		err := e.refused(t, "duplicate "+name, func() error {
			_, _, err := e.d.Add(e.ctx, "admin", NewPrincipal{Name: name, Roles: []string{RoleResearcher}})
			return err
		})
		wantErr[*ConflictError](t, "duplicate name", err, "already exists")
	}
	// The edges of what is allowed.
	for _, np := range []NewPrincipal{
		{Name: strings.Repeat("数", 100), Roles: []string{RoleOperator}},
		{Name: "Zhejiang Univ. lab_2-b", Roles: []string{RoleOperator, RoleResearcher}},
		{Name: "ops", Roles: []string{RoleAdmin, RoleProvider, RoleReviewer}, Organization: police},
	} {
		if _, _, err := e.d.Add(e.ctx, "admin", np); err != nil {
			t.Errorf("Add(%+v): %v", np, err)
		}
	}
}

func TestSetRoles(t *testing.T) {
	e := newEnv(t)
	size := e.log.Size()
	p, err := e.d.SetRoles(e.ctx, "admin", "check", []string{RoleReviewer, RoleProvider}, police)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Roles, []string{RoleProvider, RoleReviewer}) || p.Organization != police {
		t.Errorf("SetRoles returned %+v", p)
	}
	if got := e.get(t, "check"); !slices.Equal(got.Roles, p.Roles) || !got.Owns(police) {
		t.Errorf("after SetRoles Get = %+v", got)
	}
	if e.log.Size() != size+1 {
		t.Fatalf("SetRoles appended %d entries, want 1", e.log.Size()-size)
	}
	en := e.last(t)
	wantEntry(t, en, "principal.roles_changed", "admin", "principal/check")
	if d := data(t, en); len(d["from"].([]any)) != 1 || len(d["to"].([]any)) != 2 || d["organization"] != police {
		t.Errorf("principal.roles_changed data = %v", d)
	}

	wantErr[*InputError](t, "conflicting roles", e.refused(t, "conflicting roles", func() error {
		_, err := e.d.SetRoles(e.ctx, "admin", "acme", []string{RoleOperator, RoleReviewer}, "")
		return err
	}), "requester")
	wantErr[*InputError](t, "provider without organization", e.refused(t, "provider without organization", func() error {
		_, err := e.d.SetRoles(e.ctx, "admin", "check", []string{RoleProvider}, "")
		return err
	}), "organization")
	wantNotFound(t, "unknown principal", e.refused(t, "unknown principal", func() error {
		_, err := e.d.SetRoles(e.ctx, "admin", "nobody", []string{RoleOperator}, "")
		return err
	}))
	wantErr[*ConflictError](t, "last admin loses admin", e.refused(t, "last admin loses admin", func() error {
		_, err := e.d.SetRoles(e.ctx, "admin", "admin", []string{RoleReviewer}, "")
		return err
	}), "only enabled admin")

	// A second admin that is disabled does not count.
	if _, _, err := e.d.Add(e.ctx, "admin", NewPrincipal{Name: "admin2", Roles: []string{RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Disable(e.ctx, "admin", "admin2", "left the agency"); err != nil {
		t.Fatal(err)
	}
	wantErr[*ConflictError](t, "last enabled admin loses admin", e.refused(t, "last enabled admin loses admin", func() error {
		_, err := e.d.SetRoles(e.ctx, "admin2", "admin", []string{RoleReviewer}, "")
		return err
	}), "only enabled admin")
	// Once it is enabled again, the first admin may step down.
	if _, err := e.d.Enable(e.ctx, "admin", "admin2"); err != nil {
		t.Fatal(err)
	}
	if p, err := e.d.SetRoles(e.ctx, "admin2", "admin", []string{RoleReviewer}, ""); err != nil || p.Has(RoleAdmin) {
		t.Errorf("admin steps down with another admin enabled: %+v %v", p, err)
	}
}

func TestDisableRevokesEveryTokenAtOnce(t *testing.T) {
	e := newEnv(t)
	second, err := e.d.Issue(e.ctx, "acme", "acme", "laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := e.d.Issue(e.ctx, "admin", "acme", "ci", ptr(start.Add(240*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{e.tokens["acme"], second.Token, expiring.Token}
	for _, tok := range tokens {
		if _, _, err := e.d.Authenticate(e.ctx, tok); err != nil {
			t.Fatalf("before disabling: %v", err)
		}
	}

	wantErr[*InputError](t, "no reason", e.refused(t, "no reason", func() error {
		_, err := e.d.Disable(e.ctx, "admin", "acme", " \t")
		return err
	}), "reason")
	wantErr[*InputError](t, "disable yourself", e.refused(t, "disable yourself", func() error {
		_, err := e.d.Disable(e.ctx, "admin", "admin", "tired")
		return err
	}), "yourself")
	wantNotFound(t, "disable nobody", e.refused(t, "disable nobody", func() error {
		_, err := e.d.Disable(e.ctx, "admin", "nobody", "gone")
		return err
	}))
	wantErr[*ConflictError](t, "enable an enabled principal", e.refused(t, "enable an enabled principal", func() error {
		_, err := e.d.Enable(e.ctx, "admin", "acme")
		return err
	}), "not disabled")

	e.now = start.Add(time.Hour)
	size := e.log.Size()
	p, err := e.d.Disable(e.ctx, "admin", "acme", " licence withdrawn ")
	if err != nil {
		t.Fatal(err)
	}
	if p.DisabledAt == nil || !p.DisabledAt.Equal(e.now) || p.DisabledReason != "licence withdrawn" {
		t.Errorf("Disable returned %+v", p)
	}
	if got := e.get(t, "acme"); got.DisabledAt == nil || !got.DisabledAt.Equal(e.now) || got.DisabledReason != "licence withdrawn" {
		t.Errorf("Get after Disable = %+v", got)
	}
	if e.log.Size() != size+1 {
		t.Fatalf("Disable appended %d entries, want exactly 1 for all tokens", e.log.Size()-size)
	}
	en := e.last(t)
	wantEntry(t, en, "principal.disabled", "admin", "principal/acme")
	if d := data(t, en); d["reason"] != "licence withdrawn" {
		t.Errorf("principal.disabled data = %v", d)
	}
	creds, err := e.d.Credentials(e.ctx, "acme")
	if err != nil || len(creds) != 3 {
		t.Fatalf("credentials of acme: %v %v", creds, err)
	}
	for _, c := range creds {
		if c.RevokedAt == nil || !c.RevokedAt.Equal(e.now) || c.RevokedBy != "admin" {
			t.Errorf("token %s after Disable: revoked %v by %q, want now by admin", c.ID, c.RevokedAt, c.RevokedBy)
		}
	}
	for _, tok := range tokens {
		_, _, err := e.d.Authenticate(e.ctx, tok)
		wantErr[*AuthError](t, "token of a disabled principal", err, "disabled")
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("AuthError does not wrap ErrUnauthenticated: %v", err)
		}
	}
	// Other principals are untouched.
	if _, _, err := e.d.Authenticate(e.ctx, e.tokens["beta"]); err != nil {
		t.Errorf("beta after acme was disabled: %v", err)
	}

	wantErr[*ConflictError](t, "disable twice", e.refused(t, "disable twice", func() error {
		_, err := e.d.Disable(e.ctx, "admin", "acme", "again")
		return err
	}), "already disabled")
	wantErr[*ConflictError](t, "issue for a disabled principal", e.refused(t, "issue for a disabled principal", func() error {
		_, err := e.d.Issue(e.ctx, "admin", "acme", "new", nil)
		return err
	}), "disabled")

	p, err = e.d.Enable(e.ctx, "admin", "acme")
	if err != nil || p.DisabledAt != nil || p.DisabledReason != "" {
		t.Fatalf("Enable: %+v %v", p, err)
	}
	wantEntry(t, e.last(t), "principal.enabled", "admin", "principal/acme")
	if got := e.get(t, "acme"); got.DisabledAt != nil || got.DisabledReason != "" {
		t.Errorf("Get after Enable = %+v", got)
	}
	for _, tok := range tokens {
		_, _, err := e.d.Authenticate(e.ctx, tok)
		wantErr[*AuthError](t, "old token after Enable", err, "revoked")
	}
	issued, err := e.d.Issue(e.ctx, "admin", "acme", "after enable", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := e.d.Authenticate(e.ctx, issued.Token); err != nil || got.Name != "acme" {
		t.Errorf("new token after Enable: %+v %v", got, err)
	}
}

func TestLastEnabledAdminCannotBeDisabled(t *testing.T) {
	e := newEnv(t)
	// Only a caller other than the admin itself reaches the check.
	wantErr[*ConflictError](t, "disable the only admin", e.refused(t, "disable the only admin", func() error {
		_, err := e.d.Disable(e.ctx, "", "admin", "rotation")
		return err
	}), "only enabled admin")

	if _, _, err := e.d.Add(e.ctx, "admin", NewPrincipal{Name: "admin2", Roles: []string{RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Disable(e.ctx, "admin", "admin2", "on leave"); err != nil {
		t.Fatalf("disable one of two admins: %v", err)
	}
	wantErr[*ConflictError](t, "disable the last enabled admin", e.refused(t, "disable the last enabled admin", func() error {
		_, err := e.d.Disable(e.ctx, "admin2", "admin", "coup")
		return err
	}), "only enabled admin")
}

func TestBootstrapIsIdempotent(t *testing.T) {
	e := newBareEnv(t)
	token, err := e.d.Bootstrap(e.ctx)
	if err != nil || !strings.HasPrefix(token, tokenPrefix) {
		t.Fatalf("bootstrap: %q %v", token, err)
	}
	p, _, err := e.d.Authenticate(e.ctx, token)
	if err != nil || p.Name != "admin" || !slices.Equal(p.Roles, []string{RoleAdmin}) {
		t.Fatalf("bootstrap token authenticates as %+v %v", p, err)
	}
	wantEntry(t, e.last(t), "principal.added", "", "principal/admin")
	before := e.snapshot(t)
	again, err := e.d.Bootstrap(e.ctx)
	if err != nil || again != "" {
		t.Fatalf("second bootstrap: %q %v, want no new token", again, err)
	}
	if e.snapshot(t) != before {
		t.Error("second bootstrap changed something")
	}
	// Another admin under another name also counts.
	e2 := newBareEnv(t)
	if _, _, err := e2.d.Add(e2.ctx, "", NewPrincipal{Name: "root", Roles: []string{RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if again, err := e2.d.Bootstrap(e2.ctx); err != nil || again != "" {
		t.Errorf("bootstrap with an admin named root: %q %v", again, err)
	}
	if _, err := e2.d.Get(e2.ctx, "admin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bootstrap added admin beside root: %v", err)
	}
}
