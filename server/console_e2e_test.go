package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
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

	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/jobs"
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
