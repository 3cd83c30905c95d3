package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/privacy"
	"github.com/datasandbox/dsbx/server/console"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv names the directory the console tests write a picture of
// each view to (make screenshots: docs/screenshots, for the README); unset,
// the pictures go to the test's temporary directory.
const screenshotsEnv = "DSBX_SCREENSHOTS"

// TestConsoleAssetsAndHeaders checks the console without a browser: the
// security headers and content types of every asset, no inline script or
// style, no external URL, the redirect from /, and that the console is not
// listed among the API routes.
func TestConsoleAssetsAndHeaders(t *testing.T) {
	p := start(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(p.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /: %d to %q, want 302 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, ctype := range map[string]string{
		"/console/":          "text/html; charset=utf-8",
		"/console/app.js":    "text/javascript; charset=utf-8",
		"/console/i18n.js":   "text/javascript; charset=utf-8",
		"/console/style.css": "text/css; charset=utf-8",
	} {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusOK || h.Get("Content-Type") != ctype {
			t.Errorf("%s: %d %q, want 200 %q", path, resp.StatusCode, h.Get("Content-Type"), ctype)
		}
		if h.Get("Content-Security-Policy") != console.CSP || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
		if m := regexp.MustCompile(`https?://`).Find(body); m != nil {
			t.Errorf("%s names an external URL", path)
		}
		if strings.HasSuffix(path, "/") {
			for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(\s[^>]*)?>[^<]+</script>`), regexp.MustCompile(`<script(?:(?:\s+[a-z-]+(?:="[^"]*")?))*\s*>`), regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`)} {
				for _, m := range bad.FindAll(body, -1) {
					if !bytes.Contains(m, []byte(`src=`)) {
						t.Errorf("index.html has inline code or style: %s", m)
					}
				}
			}
		}
	}
	if resp, err := http.Get(p.base + "/console/nosuch.js"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: %v %v", resp.StatusCode, err)
	}
	for _, r := range p.srv.Routes() {
		if strings.Contains(r, "console") || r == "GET /{$}" {
			t.Errorf("the console is listed as API route %q", r)
		}
	}
}

// browser starts a headless Chromium for t, or skips t without one unless
// DSBX_REQUIRE_BROWSER=1. Console errors and exceptions (a CSP violation
// among them) are collected into the returned func's answer.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("DSBX_REQUIRE_BROWSER") == "1" {
			t.Fatalf("no browser at %s and DSBX_REQUIRE_BROWSER=1", chromiumPath)
		}
		t.Skipf("no browser at %s", chromiumPath)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })

	var mu sync.Mutex
	var problems []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(problems) }
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func signIn(t *testing.T, ctx context.Context, token, ready string) {
	t.Helper()
	do(t, ctx, "sign in",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(chromedp.CSS(ready)),
	)
}

// TestConsoleEndToEnd drives the console in headless Chromium: a reviewer
// approves a held result, a regulator filters the log and verifies a job's
// timeline against the signed checkpoint, alerts are listed, and the
// language switch relabels the page.
func TestConsoleEndToEnd(t *testing.T) {
	ctx, problems := browser(t)
	p := start(t)
	bg := context.Background()
	toks := p.tokens(t)

	held := p.run(t, "SELECT district, max(income) AS top FROM people GROUP BY district")
	if held.State != jobs.StateHeld || held.Review == nil {
		t.Fatalf("setup: held job is %s %+v", held.State, held.Checks)
	}
	released := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if released.State != jobs.StateReleased {
		t.Fatalf("setup: released job is %s", released.State)
	}
	for range 5 { // repeated denials raise an alert
		if j := p.run(t, "SELECT district, count(DISTINCT id_number) FROM people GROUP BY district"); j.State != jobs.StateDenied {
			t.Fatalf("setup: denied job is %s", j.State)
		}
	}
	suppressed := 0
	for _, m := range held.Remedies {
		if m.Action == disclosure.ActionSuppressed {
			suppressed++
		}
	}
	t.Logf("held job %d: %d reviewer(s) needed, %d remedies (%d suppressed)", held.ID, held.Review.Required, len(held.Remedies), suppressed)
	reviewers := []string{toks[rReviewer]}
	for i := 1; i < held.Review.Required; i++ {
		reviewers = append(reviewers, tokenOf(t, p.add(t, "checker"+strconv.Itoa(i+1), "", "reviewer")))
	}

	do(t, ctx, "open the console", chromedp.Navigate(p.base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/") {
		t.Fatalf("/ led to %s, want the console", loc)
	}
	screenshot(t, ctx, "signin")

	t.Run("ReviewerApproves", func(t *testing.T) {
		for i, tok := range reviewers {
			openJob := fmt.Sprintf(`#reviews-list button[data-job="%d"]`, held.ID)
			signIn(t, ctx, tok, openJob)
			do(t, ctx, "open the held job", chromedp.Click(chromedp.CSS(openJob)), chromedp.WaitVisible(chromedp.CSS("#candidate")))

			checks := eval[[]string](t, ctx, `[...document.querySelectorAll("#review-job table.checks tbody tr td:first-child")].map(e => e.textContent)`)
			if len(checks) != len(held.Checks) || !slices.Contains(checks, "extremes") {
				t.Errorf("checks shown %v, want the job's %d including extremes", checks, len(held.Checks))
			}
			rows := eval[int](t, ctx, `document.querySelectorAll("#candidate tbody tr").length`)
			if rows == 0 {
				t.Error("the candidate table is empty")
			}
			marked := eval[[]string](t, ctx, `[...document.querySelectorAll("#candidate td.suppressed")].map(e => e.dataset.row + "/" + e.dataset.column)`)
			var want []string
			for _, m := range held.Remedies {
				if m.Action == disclosure.ActionSuppressed {
					want = append(want, fmt.Sprintf("%d/%s", m.Row, m.Column))
				}
			}
			if !slices.Equal(marked, want) {
				t.Errorf("highlighted cells %v, want the suppressed %v", marked, want)
			}
			if n := eval[int](t, ctx, `document.querySelectorAll(".legend .swatch.suppressed").length`); n != 1 {
				t.Error("no legend for suppressed cells")
			}
			if i == 0 {
				screenshot(t, ctx, "review")
			}
			do(t, ctx, "approve",
				chromedp.SendKeys(chromedp.CSS("#review-reason"), "extremes are district maxima of a synthetic register; acceptable"),
				chromedp.Click(chromedp.CSS("#approve")),
				chromedp.WaitVisible(chromedp.CSS("#review-result")),
			)
			result, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#review-result")))
			last := i == len(reviewers)-1
			if last && !strings.Contains(result, "released") {
				t.Errorf("result shown %q, want released", result)
			}
			if !last {
				do(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
			}
		}
		j, err := p.admin.Job(bg, held.ID)
		if err != nil || j.State != jobs.StateReleased {
			t.Fatalf("after approval the job is %s (%v), want released", j.State, err)
		}

		// Language switch: the headings, the nav and the result are relabelled.
		do(t, ctx, "switch to Chinese", chromedp.Click(chromedp.CSS("#lang-zh")))
		heading, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#reviews-heading")))
		result, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#review-result")))
		lang := eval[string](t, ctx, `document.documentElement.lang`)
		if heading != "审核队列" || !strings.HasPrefix(result, "决定已记录") || lang != "zh-CN" {
			t.Errorf("after 中文: heading %q, result %q, lang %q", heading, result, lang)
		}
		do(t, ctx, "switch to English", chromedp.Click(chromedp.CSS("#lang-en")))
		if heading, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#reviews-heading"))); heading != "Review queue" {
			t.Errorf("after English: heading %q", heading)
		}
		do(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
		if tok := eval[string](t, ctx, `sessionStorage.getItem("dsbx.token") || ""`); tok != "" {
			t.Error("the token stayed in sessionStorage after sign-out")
		}
	})

	t.Run("RegulatorVerifiesTimeline", func(t *testing.T) {
		timelineButton := fmt.Sprintf(`#audit-list button[data-job="%d"]`, released.ID)
		signIn(t, ctx, toks[rRegulator], "#audit-filter")
		do(t, ctx, "filter by operator",
			chromedp.SendKeys(chromedp.CSS("#f-operator"), "acme"),
			chromedp.Click(chromedp.CSS("#audit-apply")),
			chromedp.WaitVisible(chromedp.CSS(timelineButton)),
		)
		subjects := eval[[]string](t, ctx, `[...document.querySelectorAll("#audit-list tbody tr td:nth-child(5)")].map(e => e.textContent)`)
		if len(subjects) == 0 {
			t.Fatal("no entries for acme")
		}
		do(t, ctx, "open the timeline", chromedp.Click(chromedp.CSS(timelineButton)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#timeline td.verify").length > 0 && document.querySelectorAll("#timeline td.verify.pending").length === 0`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("verification did not finish: %v", err)
		}
		verdicts := eval[[]string](t, ctx, `[...document.querySelectorAll("#timeline td.verify")].map(e => e.textContent)`)
		events, err := p.admin.AuditEvents(bg, map[string][]string{"job": {strconv.FormatInt(released.ID, 10)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(verdicts) != len(events) {
			t.Errorf("%d entries verified, the job has %d", len(verdicts), len(events))
		}
		for i, v := range verdicts {
			want := fmt.Sprintf("verified: entry %d is in the log of ", events[min(i, len(events)-1)].Seq)
			if !strings.HasPrefix(v, want) || !strings.Contains(v, "entries signed by ") {
				t.Errorf("entry %d: %q, want %q…", i, v, want)
			}
		}
		screenshot(t, ctx, "timeline")

		// The same verification on altered input fails, naming the entry.
		seq := events[0].Seq
		type outcome struct {
			OK  bool   `json:"ok"`
			Seq int64  `json:"seq"`
			Why string `json:"why"`
		}
		res := eval[map[string]outcome](t, ctx, `(async () => {
			const h = {Authorization: "Bearer " + sessionStorage.getItem("dsbx.token")};
			const cp = await (await fetch("/v1/audit/checkpoint", {headers: h})).text();
			const key = (await (await fetch("/v1/audit/key")).json()).key;
			const size = Number(cp.split("\n")[1]);
			const p = await (await fetch("/v1/audit/proof/inclusion?seq=`+strconv.FormatInt(seq, 10)+`&size=" + size, {headers: h})).json();
			const v = dsbxVerify.verifyInclusion;
			const lines = cp.split("\n");
			const root = atob(lines[2]);
			lines[2] = btoa(String.fromCharCode(root.charCodeAt(0) ^ 1) + root.slice(1));
			const flipped = p.proof.map((x, i) => i ? x : btoa(String.fromCharCode(atob(x).charCodeAt(0) ^ 1) + atob(x).slice(1)));
			return {
				good: await v(p, cp, key),
				record: await v(Object.assign({}, p, {record: p.record.replace('"kind":"', '"kind":"x')}), cp, key),
				proof: await v(Object.assign({}, p, {proof: flipped}), cp, key),
				short: await v(Object.assign({}, p, {proof: p.proof.slice(1)}), cp, key),
				checkpoint: await v(p, lines.join("\n"), key),
			};
		})()`)
		if !res["good"].OK {
			t.Fatalf("untouched entry %d: %+v", seq, res["good"])
		}
		for _, k := range []string{"record", "proof", "short", "checkpoint"} {
			if r := res[k]; r.OK || r.Seq != seq || r.Why == "" {
				t.Errorf("altered %s: %+v, want a failure naming entry %d", k, r, seq)
			}
		}
		t.Logf("tampering: %+v", res)

		// Alerts.
		do(t, ctx, "open alerts", chromedp.Click(chromedp.CSS(`#nav button[data-view="alerts"]`)), chromedp.WaitVisible(chromedp.CSS("#alerts-list table")))
		rules := eval[[]string](t, ctx, `[...document.querySelectorAll("#alerts-list tbody tr td:nth-child(3)")].map(e => e.textContent)`)
		if !slices.Contains(rules, "repeated_denials") {
			t.Errorf("alerts shown %v, want repeated_denials", rules)
		}
		screenshot(t, ctx, "alerts")

		// A regulator sees no review queue.
		if hidden := eval[bool](t, ctx, `document.querySelector('#nav li[data-role="reviewer"]').hidden`); !hidden {
			t.Error("the review queue is offered to a regulator")
		}
	})

	t.Run("LanguageSwitch", func(t *testing.T) {
		do(t, ctx, "switch to Chinese", chromedp.Click(chromedp.CSS("#lang-zh")))
		labels := eval[[]string](t, ctx, `[document.querySelector('#nav button[data-view="audit"]').textContent, document.querySelector("#alerts-list caption").textContent, document.querySelector("label[for=f-operator]").textContent, document.querySelector("#signout").textContent]`)
		if !slices.Equal(labels, []string{"审计日志", "已产生的告警", "运营单位", "退出登录"}) {
			t.Errorf("labels after 中文: %v", labels)
		}
		// Every label carrying a key has a Chinese entry.
		missing := eval[[]string](t, ctx, `[...document.querySelectorAll("[data-i18n]")].map(e => e.dataset.i18n).filter(k => !(k in I18N.zh))`)
		if len(missing) > 0 {
			t.Errorf("labels without Chinese: %v", missing)
		}
		enKeys := eval[[]string](t, ctx, `Object.keys(I18N.en).filter(k => !(k in I18N.zh))`)
		if len(enKeys) > 0 {
			t.Errorf("dictionary keys without Chinese: %v", enKeys)
		}
		do(t, ctx, "switch back", chromedp.Click(chromedp.CSS("#lang-en")))
	})

	if ps := problems(); len(ps) > 0 {
		t.Errorf("browser console errors:\n%s", strings.Join(ps, "\n"))
	}
}

// xssSQL and xssPurpose carry markup that must be shown as text.
const (
	xssImg     = `<img src=x onerror="document.title='pwned'">`
	xssScript  = `<script>document.title='pwned'</script>`
	xssPurpose = "study " + xssImg + " " + xssScript
)

// xssSQL holds both in SQL string literals (quotes doubled); its result
// is held (district maxima), so a reviewer sees it too.
var xssSQL = "SELECT district, max(income) AS top FROM people WHERE district <> '" + strings.ReplaceAll(xssImg, "'", "''") +
	"' AND district <> '" + strings.ReplaceAll(xssScript, "'", "''") + "' GROUP BY district"

// TestConsoleRoles drives the console as every role: a provider answers an
// application and an objection and reads the catalog's detail, an operator
// follows its own jobs and justifies a held one, a researcher sees only its
// own, a regulator and the admin read the dashboard (the regulator with no
// action offered anywhere), and markup in a job's text stays inert.
func TestConsoleRoles(t *testing.T) {
	ctx, problems := browser(t)
	p := start(t)
	bg := context.Background()
	toks := p.tokens(t)
	lab := client.New(p.base, toks[rResearch])

	// Setup: a held and a released job of acme, a job of another operator,
	// a denied job, a DP budget partly spent, and a job carrying markup.
	held := p.run(t, "SELECT district, max(income) AS top FROM people GROUP BY district")
	if held.State != jobs.StateHeld {
		t.Fatalf("setup: held job is %s", held.State)
	}
	released := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if released.State != jobs.StateReleased {
		t.Fatalf("setup: released job is %s", released.State)
	}
	if j := p.run(t, "SELECT district, count(DISTINCT id_number) FROM people GROUP BY district"); j.State != jobs.StateDenied {
		t.Fatalf("setup: denied job is %s", j.State)
	}
	beta := p.add(t, "beta", "", operators.RoleOperator)
	p.agree(t, beta, operators.Approval{})
	other, err := beta.Submit(bg, jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district", Purpose: purpose})
	if err != nil {
		t.Fatal(err)
	}
	dp := p.add(t, "dplab", "", operators.RoleOperator)
	p.agree(t, dp, operators.Approval{
		Fields: map[string]map[string]string{"people": {"district": "raw", "income": "raw"}},
		Outputs: operators.OutputRules{Privacy: &privacy.Config{Mechanism: privacy.Laplace, Epsilon: 1, EpsilonPerJob: 0.4, PersonKey: "id_number",
			MaxContributions: 1, Bounds: map[string][2]float64{"income": {0, 5000}}}},
	})
	if j, err := dp.Submit(bg, jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) AS n, sum(income) AS total FROM people GROUP BY district", Purpose: purpose}); err != nil || j.State == jobs.StateDenied {
		t.Fatalf("setup: DP job %s %v", j.State, err)
	}
	mallory := p.add(t, "mallory", "", operators.RoleOperator)
	app, err := mallory.Apply(bg, operators.Request{Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"district", "income"}}}, Purpose: xssPurpose, ValidUntil: "2027-06-30"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.provider.Approve(bg, app.ID, operators.Approval{}); err != nil {
		t.Fatal(err)
	}
	xss, err := mallory.Submit(bg, jobs.Request{Dataset: "people", SQL: xssSQL, Purpose: xssPurpose})
	if err != nil {
		t.Fatal(err)
	}
	if xss, err = mallory.Wait(bg, xss.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("markup job %d is %s", xss.ID, xss.State)

	signOut := func(t *testing.T) {
		t.Helper()
		do(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	}
	visibleViews := func(t *testing.T) []string {
		t.Helper()
		return eval[[]string](t, ctx, `[...document.querySelectorAll("#nav li:not([hidden]) button")].map(b => b.dataset.view)`)
	}
	do(t, ctx, "open the console", chromedp.Navigate(p.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))

	t.Run("ProviderApprovesApplication", func(t *testing.T) {
		app, err := lab.Apply(bg, operators.Request{
			Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"district", "income", "id_number"}}},
			Purpose:  "income inequality study", Scenario: "peer-reviewed research", ValidUntil: "2027-11-22", Outputs: "district statistics",
		})
		if err != nil {
			t.Fatal(err)
		}
		openApp := fmt.Sprintf(`#apps-list button[data-app="%d"]`, app.ID)
		signIn(t, ctx, toks[rProvider], openApp)
		if v := visibleViews(t); !slices.Equal(v, []string{"catalog", "applications", "objections"}) {
			t.Errorf("provider's views %v", v)
		}
		due := eval[string](t, ctx, `document.querySelector('`+openApp+`').closest("tr").children[5].textContent`)
		if !strings.HasPrefix(due, "2026-12-07 16:00:00") {
			t.Errorf("due date shown %q, want 2026-12-07 16:00:00Z (end of 2026-12-07 CST)", due)
		}
		do(t, ctx, "open the application", chromedp.Click(chromedp.CSS(openApp)), chromedp.WaitVisible(chromedp.CSS("#approve-form")))
		asked := eval[[]string](t, ctx, `[...document.querySelectorAll("#app table.asked tbody tr td:nth-child(2)")].map(e => e.textContent)`)
		if !slices.Equal(asked, []string{"district", "income", "id_number"}) {
			t.Errorf("fields asked shown %v", asked)
		}
		do(t, ctx, "narrow and approve",
			chromedp.SetValue(chromedp.CSS("#form-people-income"), "generalised"),
			chromedp.SetValue(chromedp.CSS("#form-people-id_number"), "none"),
			chromedp.Click(chromedp.CSS("#ap-aggregates")),
			chromedp.SendKeys(chromedp.CSS("#ap-mincell"), "15"),
			chromedp.SendKeys(chromedp.CSS("#ap-note"), "identifiers are not needed"),
		)
		if sel := eval[string](t, ctx, `(s => s.selectedIndex + ":" + (s.selectedOptions[0] ? s.selectedOptions[0].textContent : ""))(document.querySelector("#form-people-id_number"))`); sel != "0:not granted" {
			t.Errorf("id_number's form shows %q, want not granted", sel)
		}
		if term := eval[string](t, ctx, `document.querySelector("#app dl.facts").textContent`); !strings.Contains(term, "approval to 2027-11-22") {
			t.Errorf("term shown in %q, want up to 2027-11-22", term)
		}
		do(t, ctx, "settle", chromedp.Blur(chromedp.CSS("#ap-note")), chromedp.Sleep(300*time.Millisecond))
		screenshot(t, ctx, "applications")
		do(t, ctx, "approve", chromedp.Click(chromedp.CSS("#app-approve")), chromedp.WaitVisible(chromedp.CSS("#app-result")))
		got, err := p.admin.Application(bg, app.ID)
		if err != nil || got.Status != operators.ApplicationApproved || got.AgreementID == 0 {
			t.Fatalf("application after approval: %+v %v", got, err)
		}
		a, err := p.admin.Agreement(bg, got.AgreementID)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Scope) != 1 || !maps.Equal(a.Scope[0].Fields, map[string]string{"district": "raw", "income": "generalised"}) ||
			!a.Outputs.AggregatesOnly || a.Outputs.MinCellCount != 15 || a.Holder != "lab" {
			t.Errorf("agreement %+v, want district raw, income generalised, aggregates only, 15 per cell", a)
		}
		if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#app-result"))); !strings.Contains(text, strconv.FormatInt(a.ID, 10)) {
			t.Errorf("result shown %q, want agreement %d", text, a.ID)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("#apps-list tbody tr").length`); n != 0 {
			t.Errorf("%d pending applications still listed", n)
		}
	})

	t.Run("ProviderDecidesObjection", func(t *testing.T) {
		o, err := p.operator.Object(bg, "people", "income", "my income is identifiable")
		if err != nil {
			t.Fatal(err)
		}
		openObj := fmt.Sprintf(`#objections-list button[data-objection="%d"]`, o.ID)
		do(t, ctx, "open objections", chromedp.Click(chromedp.CSS(`#nav button[data-view="objections"]`)), chromedp.WaitVisible(chromedp.CSS(openObj)))
		do(t, ctx, "dismiss",
			chromedp.Click(chromedp.CSS(openObj)), chromedp.WaitVisible(chromedp.CSS("#objection-form")),
			chromedp.SendKeys(chromedp.CSS("#objection-reason"), "incomes are bounded and aggregated"),
			chromedp.Click(chromedp.CSS("#dismiss")), chromedp.WaitVisible(chromedp.CSS("#objection-result")),
		)
		list, err := p.admin.Objections(bg, "people", "")
		if err != nil || len(list) != 1 || list[0].Status != datasets.ObjectionDismissed || list[0].Decider != "registry" {
			t.Fatalf("objections after the decision: %+v %v", list, err)
		}
		// The catalog's detail: versions and objections of people.
		do(t, ctx, "open the catalog", chromedp.Click(chromedp.CSS(`#nav button[data-view="catalog"]`)),
			chromedp.Click(chromedp.CSS(`#catalog-list button[data-dataset="people"]`)),
			chromedp.WaitVisible(chromedp.CSS("#catalog-objections table")))
		e, _ := p.admin.Dataset(bg, "people")
		versions := eval[[]string](t, ctx, `[...document.querySelectorAll("#catalog-fields table.versions tbody tr td:first-child")].map(e => e.textContent)`)
		if len(versions) != len(e.Versions) || versions[0] != e.Versions[0].ID {
			t.Errorf("versions shown %v, want %d", versions, len(e.Versions))
		}
		objs := eval[[]string](t, ctx, `[...document.querySelectorAll("#catalog-objections tbody tr td:nth-child(7)")].map(e => e.textContent)`)
		if !slices.Equal(objs, []string{"dismissed"}) {
			t.Errorf("objections shown %v", objs)
		}
		signOut(t)
	})

	t.Run("OperatorSeesOwnJobs", func(t *testing.T) {
		openHeld := fmt.Sprintf(`#jobs-list button[data-job="%d"]`, held.ID)
		signIn(t, ctx, toks[rOperator], openHeld)
		if v := visibleViews(t); !slices.Equal(v, []string{"catalog", "jobs"}) {
			t.Errorf("operator's views %v", v)
		}
		listed := eval[[]string](t, ctx, `[...document.querySelectorAll("#jobs-list tbody tr td:nth-child(2)")].map(e => e.textContent)`)
		mine, _ := p.operator.Jobs(bg)
		if len(listed) != len(mine) || slices.ContainsFunc(listed, func(s string) bool { return s != "acme" }) {
			t.Errorf("operators listed %v, want %d of acme's", listed, len(mine))
		}
		if n := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll('#jobs-list button[data-job="%d"]').length`, other.ID)); n != 0 {
			t.Errorf("beta's job %d is listed to acme", other.ID)
		}
		do(t, ctx, "open the held job", chromedp.Click(chromedp.CSS(openHeld)), chromedp.WaitVisible(chromedp.CSS("#justify-form")))
		checks := eval[int](t, ctx, `document.querySelectorAll("#job table.checks tbody tr").length`)
		if checks != len(held.Checks) {
			t.Errorf("%d checks shown, the job has %d", checks, len(held.Checks))
		}
		const why = "district maxima are published yearly by the bureau"
		do(t, ctx, "justify",
			chromedp.SendKeys(chromedp.CSS("#justification"), why),
			chromedp.Click(chromedp.CSS("#justify")), chromedp.WaitVisible(chromedp.CSS("#justify-result")))
		j, err := p.admin.Job(bg, held.ID)
		if err != nil || j.Review == nil || j.Review.Justification != why {
			t.Fatalf("justification recorded: %+v %v", j.Review, err)
		}
		if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-justification"))); text != why {
			t.Errorf("justification shown %q", text)
		}
		do(t, ctx, "settle", chromedp.Blur(chromedp.CSS("#justify-result")), chromedp.Sleep(300*time.Millisecond))
		screenshot(t, ctx, "jobs")
		do(t, ctx, "open the released job",
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`#jobs-list button[data-job="%d"]`, released.ID))),
			chromedp.WaitVisible(chromedp.CSS("#fetch-result")), chromedp.Click(chromedp.CSS("#fetch-result")),
			chromedp.WaitVisible(chromedp.CSS("#result-table")))
		head := eval[[]string](t, ctx, `[...document.querySelectorAll("#result-table thead th")].map(e => e.textContent)`)
		rows := eval[int](t, ctx, `document.querySelectorAll("#result-table tbody tr").length`)
		if !slices.Equal(head, []string{"district", "n"}) || rows != 3 {
			t.Errorf("released result shown: %v, %d rows", head, rows)
		}
		signOut(t)

		// A researcher sees its jobs only, and no provider's or overseer's view.
		signIn(t, ctx, toks[rResearch], "#jobs-list p, #jobs-list table")
		if v := visibleViews(t); !slices.Equal(v, []string{"catalog", "jobs"}) {
			t.Errorf("researcher's views %v", v)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll("#jobs-list tbody tr").length`); n != 0 {
			t.Errorf("the researcher, with no job, sees %d", n)
		}
		signOut(t)
	})

	t.Run("RegulatorDashboard", func(t *testing.T) {
		// What the charts must show, from the API.
		type key struct{ day, outcome string }
		segs := map[key]int{}
		codes := map[string]int{}
		cst := time.FixedZone("CST", 8*3600)
		for _, kind := range []string{"job.", "result.released"} {
			es, err := p.admin.AuditEvents(bg, url.Values{"kind": {kind}, "limit": {"1000"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				var d struct {
					State    string `json:"state"`
					Decision struct {
						Reasons []struct{ Code string } `json:"reasons"`
					} `json:"decision"`
				}
				json.Unmarshal(e.Data, &d)
				o := map[string]string{"job.held": "held", "result.released": "released", "job.rejected": "rejected", "job.failed": "failed"}[e.Kind]
				if e.Kind == "job.decided" && d.State == "denied" {
					o = "denied"
					seen := map[string]bool{}
					for _, r := range d.Decision.Reasons {
						if !seen[r.Code] {
							seen[r.Code] = true
							codes[r.Code]++
						}
					}
				}
				if o != "" {
					segs[key{e.Time.In(cst).Format("2006-01-02"), o}]++
				}
			}
		}
		budgets, err := p.admin.Budgets(bg)
		if err != nil || len(budgets) == 0 {
			t.Fatalf("budgets %v %v", budgets, err)
		}

		signIn(t, ctx, toks[rRegulator], "#audit-filter")
		if v := visibleViews(t); !slices.Equal(v, []string{"catalog", "applications", "objections", "jobs", "dashboard", "audit", "alerts"}) {
			t.Errorf("regulator's views %v", v)
		}
		do(t, ctx, "open the dashboard", chromedp.Click(chromedp.CSS(`#nav button[data-view="dashboard"]`)),
			chromedp.WaitVisible(chromedp.CSS("#chart-jobs")), chromedp.WaitVisible(chromedp.CSS("#chart-denials")), chromedp.WaitVisible(chromedp.CSS("#chart-budgets")))
		type drawn struct {
			NS      string         `json:"ns"`
			Segs    map[string]int `json:"segs"`
			Codes   map[string]int `json:"codes"`
			Spent   []float64      `json:"spent"`
			Titles  int            `json:"titles"`
			Tables  int            `json:"tables"`
			Labeled bool           `json:"labeled"`
		}
		got := eval[drawn](t, ctx, `(() => {
			const segs = {}, codes = {};
			document.querySelectorAll("#chart-jobs rect.seg").forEach(r => { segs[r.parentNode.dataset.day + "/" + r.dataset.outcome] = Number(r.dataset.count); });
			document.querySelectorAll("#chart-denials rect.hbar").forEach(r => { codes[r.dataset.code] = Number(r.dataset.count); });
			const svgs = [...document.querySelectorAll("#view-dashboard svg")];
			return {
				ns: document.querySelector("#chart-jobs").namespaceURI,
				segs, codes,
				spent: [...document.querySelectorAll("#chart-budgets rect.budget-spent")].map(r => Number(r.dataset.spent)),
				titles: svgs.filter(s => s.querySelector(":scope > title") && s.querySelector(":scope > desc")).length,
				tables: document.querySelectorAll("#view-dashboard details.fallback table").length,
				labeled: svgs.every(s => s.getAttribute("role") === "img" && s.getAttribute("aria-labelledby").split(" ").every(id => document.getElementById(id))),
			};
		})()`)
		want := map[string]int{}
		for k, n := range segs {
			want[k.day+"/"+k.outcome] = n
		}
		if got.NS != "http://www.w3.org/2000/svg" || !maps.Equal(got.Segs, want) {
			t.Errorf("jobs chart %s %v, want %v", got.NS, got.Segs, want)
		}
		if !maps.Equal(got.Codes, codes) || len(codes) == 0 {
			t.Errorf("denials chart %v, want %v", got.Codes, codes)
		}
		if len(got.Spent) != len(budgets) || got.Spent[0] != budgets[0].Spent.Epsilon || budgets[0].Spent.Epsilon == 0 {
			t.Errorf("budget bars %v, want %d with ε %v spent", got.Spent, len(budgets), budgets[0].Spent.Epsilon)
		}
		if got.Titles != 3 || got.Tables != 3 || !got.Labeled {
			t.Errorf("charts: %d with title and desc, %d tables, labelled %v; want 3, 3, true", got.Titles, got.Tables, got.Labeled)
		}
		do(t, ctx, "settle", chromedp.Sleep(200*time.Millisecond))
		screenshot(t, ctx, "dashboard")

		// Read-only everywhere: no form or decision button in any view.
		noActions := func(what string) {
			t.Helper()
			if n := eval[int](t, ctx, `document.querySelectorAll("main form.decision, #approve, #reject, #app-approve, #app-refuse, #uphold, #dismiss, #justify").length`); n != 0 {
				t.Errorf("%s: %d decision controls offered to the regulator", what, n)
			}
		}
		do(t, ctx, "applications", chromedp.Click(chromedp.CSS(`#nav button[data-view="applications"]`)),
			chromedp.SetValue(chromedp.CSS("#a-status"), ""), chromedp.Click(chromedp.CSS("#apps-apply")),
			chromedp.WaitVisible(chromedp.CSS(`#apps-list button[data-app]`)), chromedp.Click(chromedp.CSS(`#apps-list button[data-app]`)),
			chromedp.WaitVisible(chromedp.CSS("#app")))
		noActions("application")
		do(t, ctx, "objections", chromedp.Click(chromedp.CSS(`#nav button[data-view="objections"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#objections-list button[data-objection]`)), chromedp.Click(chromedp.CSS(`#objections-list button[data-objection]`)),
			chromedp.WaitVisible(chromedp.CSS("#objection")))
		noActions("objection")
		do(t, ctx, "jobs", chromedp.Click(chromedp.CSS(`#nav li:not([hidden]) button[data-view="jobs"]`)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#jobs-list button[data-job="%d"]`, held.ID))),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`#jobs-list button[data-job="%d"]`, held.ID))), chromedp.WaitVisible(chromedp.CSS("#job")))
		noActions("held job")
		signOut(t)

		// The admin reads the same dashboard, and may not answer another
		// agency's applications (only the provider does).
		signIn(t, ctx, toks[rAdmin], "#audit-filter")
		if v := visibleViews(t); !slices.Equal(v, []string{"catalog", "applications", "objections", "jobs", "dashboard", "audit", "alerts"}) {
			t.Errorf("admin's views %v", v)
		}
		do(t, ctx, "admin's dashboard", chromedp.Click(chromedp.CSS(`#nav button[data-view="dashboard"]`)), chromedp.WaitVisible(chromedp.CSS("#chart-jobs rect.seg")))
		signOut(t)
	})

	t.Run("XSSIsInert", func(t *testing.T) {
		title := eval[string](t, ctx, `document.title`)
		inert := func(t *testing.T, where string) {
			t.Helper()
			if got := eval[string](t, ctx, `document.title`); got != title {
				t.Errorf("%s: document.title is %q, want %q", where, got, title)
			}
			if n := eval[int](t, ctx, `document.querySelectorAll("main img, main script, header img, header script").length`); n != 0 {
				t.Errorf("%s: %d img or script elements in the views", where, n)
			}
		}
		openJob := fmt.Sprintf(`#jobs-list button[data-job="%d"]`, xss.ID)
		signIn(t, ctx, toks[rRegulator], "#audit-filter")
		do(t, ctx, "regulator opens the job", chromedp.Click(chromedp.CSS(`#nav li:not([hidden]) button[data-view="jobs"]`)),
			chromedp.WaitVisible(chromedp.CSS(openJob)), chromedp.Click(chromedp.CSS(openJob)), chromedp.WaitVisible(chromedp.CSS("#job-sql")))
		time.Sleep(300 * time.Millisecond) // an onerror would fire by now
		inert(t, "job detail")
		sql, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-sql")))
		purposeShown, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#job-purpose")))
		if sql != xssSQL || purposeShown != xssPurpose {
			t.Errorf("shown SQL %q and purpose %q, want them literally", sql, purposeShown)
		}
		listed := eval[bool](t, ctx, `[...document.querySelectorAll("#jobs-list td")].some(td => td.textContent === `+strconv.Quote(xssPurpose)+`)`)
		if !listed {
			t.Error("the purpose is not listed literally")
		}
		// The audit log holds the same text.
		do(t, ctx, "audit", chromedp.Click(chromedp.CSS(`#nav button[data-view="audit"]`)), chromedp.WaitVisible(chromedp.CSS("#audit-list table")))
		inert(t, "audit log")
		signOut(t)

		// A reviewer sees the held result, if it is held.
		if xss.State == jobs.StateHeld {
			openReview := fmt.Sprintf(`#reviews-list button[data-job="%d"]`, xss.ID)
			signIn(t, ctx, toks[rReviewer], openReview)
			do(t, ctx, "reviewer opens the job", chromedp.Click(chromedp.CSS(openReview)), chromedp.WaitVisible(chromedp.CSS("#candidate")))
			time.Sleep(300 * time.Millisecond)
			inert(t, "review")
			if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#review-job pre.sql"))); text != xssSQL {
				t.Errorf("review shows SQL %q", text)
			}
			signOut(t)
		} else {
			// The reviewer still signs in: its queue shows only review.
			signIn(t, ctx, toks[rReviewer], "#reviews-list p, #reviews-list table")
			if v := visibleViews(t); !slices.Equal(v, []string{"catalog", "reviews"}) {
				t.Errorf("reviewer's views %v", v)
			}
			signOut(t)
		}
	})

	t.Run("LanguageSwitch", func(t *testing.T) {
		signIn(t, ctx, toks[rRegulator], "#audit-filter")
		do(t, ctx, "dashboard", chromedp.Click(chromedp.CSS(`#nav button[data-view="dashboard"]`)), chromedp.WaitVisible(chromedp.CSS("#chart-jobs")),
			chromedp.Click(chromedp.CSS("#lang-zh")))
		missing := eval[[]string](t, ctx, `[...document.querySelectorAll("[data-i18n]")].map(e => e.dataset.i18n).filter(k => !(k in I18N.zh))`)
		if len(missing) > 0 {
			t.Errorf("labels without Chinese: %v", missing)
		}
		if h, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#dashboard-heading"))); h != "监管看板" {
			t.Errorf("dashboard heading in Chinese: %q", h)
		}
		do(t, ctx, "switch back", chromedp.Click(chromedp.CSS("#lang-en")))
		signOut(t)
	})

	if ps := problems(); len(ps) > 0 {
		t.Errorf("browser console errors:\n%s", strings.Join(ps, "\n"))
	}
}
