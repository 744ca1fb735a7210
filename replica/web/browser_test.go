package web

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	dfs "github.com/doozerfs/doozerfs/fs"
	"github.com/doozerfs/doozerfs/replica"
)

// chromium finds a headless-capable Chromium: Debian's `chromium`
// package (.ci/deps installs it when CI=true). Without one the browser
// test is skipped, except in CI where a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("DOOZERFS_BROWSER_TESTS") == "0" {
		t.Skip("DOOZERFS_BROWSER_TESTS=0")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: CI needs it for the browser test (.ci/deps installs Debian's chromium package)")
	}
	t.Skip("no chromium on PATH (apt-get install -y chromium); skipping the browser test")
	return ""
}

// TestBrowserShowsLiveChanges opens the web view in headless Chromium on a
// file set through the API, then SETs it again through the replica and
// checks that the page shows the new value within a second, without a
// reload. It saves a screenshot under the test's temporary directory (or
// in $DOOZERFS_SCREENSHOT_DIR) and logs its path.
func TestBrowserShowsLiveChanges(t *testing.T) {
	exe := chromium(t)
	r := startReplica(t, nil)
	ts, _ := startWeb(t, r, Options{})
	ctx := testCtx(t)

	// Some tree to look at, set through the HTTP API.
	for p, body := range map[string]string{
		"/app/web/config.toml": "listen = \":8080\"\nworkers = 4\n",
		"/app/web/deploy.json": `{"replicas": 3, "image": "web:1.4.2"}`,
		"/svc/web/host-a":      "10.0.0.5:8080",
		"/demo/greeting":       "hello, v1",
	} {
		if st, b := put(t, ts.URL, p, "-1", body); st != 200 {
			t.Fatalf("PUT %s: %d %s", p, st, b)
		}
	}

	bctx, jsErrors := newBrowser(t, exe)
	js, waitJS := jsHelpers(t, bctx)

	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/#/demo/greeting")); err != nil {
		t.Fatal(err)
	}
	body := `document.getElementById("file-body").textContent`
	waitJS("the page shows the file", body, "hello, v1", 10*time.Second)
	waitJS("the page follows the tree live", `document.getElementById("live").className`, "live on", 10*time.Second)
	waitJS("the page shows the leader", `document.getElementById("leader").textContent`, "w1", 10*time.Second)

	// A marker that a reload would lose.
	js(`window.__noReload = "still here"; "ok"`)
	rev, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/demo/greeting", Rev: -1, Body: []byte("hello, v2")}})
	if err != nil {
		t.Fatal(err)
	}
	took := waitJS("the page shows the second SET", body, "hello, v2", time.Second)
	t.Logf("the page showed the new value %v after the SET", took.Round(time.Millisecond))
	if got := js(`String(window.__noReload)`); got != "still here" {
		t.Fatalf("the page was reloaded (marker %q)", got)
	}
	waitJS("the page shows the new revision", `document.getElementById("rev").textContent`, strconv.FormatInt(rev, 10), time.Second)
	meta := js(`document.getElementById("meta").textContent`)
	if !strings.Contains(meta, "rev"+strconv.FormatInt(rev, 10)) {
		t.Fatalf("the file's details do not show rev %d: %q", rev, meta)
	}
	members := js(`document.getElementById("members").textContent`)
	if !strings.Contains(members, "w1") || !strings.Contains(members, "voter") || !strings.Contains(members, "alive") {
		t.Fatalf("members table: %q", members)
	}
	listing := js(`document.getElementById("listing").textContent`)
	if !strings.Contains(listing, "greeting") {
		t.Fatalf("the directory listing lacks the file: %q", listing)
	}
	events := js(`document.getElementById("events").textContent`)
	if !strings.Contains(events, "/demo/greeting") {
		t.Fatalf("recent changes lack the SET: %q", events)
	}
	// Every resource the page loaded came from this server.
	others := js(`performance.getEntriesByType("resource").map(e => e.name).filter(n => !n.startsWith(location.origin)).join(" ")`)
	if others != "" {
		t.Fatalf("the page requested other hosts: %s", others)
	}

	// Browsing: a directory through the hash, as a click on it does.
	js(`location.hash = "#/app/web"; "ok"`)
	waitJS("a directory's listing", `String(document.querySelectorAll("#listing tbody tr[data-path]").length)`, "2", 5*time.Second)
	js(`location.hash = "#/app/web/config.toml"; "ok"`)
	waitJS("another file", `document.getElementById("file-body").textContent.includes("workers = 4") ? "yes" : "no"`, "yes", 5*time.Second)
	js(`location.hash = "#/demo/greeting"; "ok"`)
	waitJS("back to the greeting", body, "hello, v2", 5*time.Second)

	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("DOOZERFS_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "web-view.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the web view: %s", shot)

	// Edit: a compare-and-set on the revision shown.
	js(`document.getElementById("edit-btn").click(); "ok"`)
	waitJS("the editor", `String(document.getElementById("editor").hidden)`, "false", 5*time.Second)
	js(`document.getElementById("editor-text").value = "edited in the browser"; document.getElementById("editor-save").click(); "ok"`)
	waitJS("the saved body", body, "edited in the browser", 5*time.Second)
	if b, _, err := r.Tree().View().Get("/demo/greeting"); err != nil || string(b) != "edited in the browser" {
		t.Fatalf("the store after an edit: %q %v", b, err)
	}
	// An edit of a file someone else changed meanwhile writes nothing.
	js(`document.getElementById("edit-btn").click(); "ok"`)
	waitJS("the editor again", `String(document.getElementById("editor").hidden)`, "false", 5*time.Second)
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/demo/greeting", Rev: -1, Body: []byte("changed elsewhere")}}); err != nil {
		t.Fatal(err)
	}
	js(`document.getElementById("editor-text").value = "stale edit"; document.getElementById("editor-save").click(); "ok"`)
	waitJS("the conflict note", `document.getElementById("editor-note").className`, "error", 5*time.Second)
	if b, _, _ := r.Tree().View().Get("/demo/greeting"); string(b) != "changed elsewhere" {
		t.Fatalf("a stale edit was written: %q", b)
	}

	if errs := jsErrors(); len(errs) > 0 {
		t.Fatalf("JavaScript errors on the page: %q", errs)
	}
}

// newBrowser starts headless Chromium for the test, and returns its
// context and a function listing the JavaScript exceptions seen so far.
func newBrowser(t *testing.T, exe string) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(testCtx(t), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil { // start the browser and the tab
		t.Fatalf("starting %s: %v", exe, err)
	}
	var mu sync.Mutex
	var jsErrors []string
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			mu.Lock()
			jsErrors = append(jsErrors, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return bctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), jsErrors...)
	}
}

// jsHelpers returns js, which evaluates an expression in the page, and
// waitJS, which polls one until it equals want and returns how long it
// took (failing the test after d).
func jsHelpers(t *testing.T, bctx context.Context) (func(string) string, func(what, expr, want string, d time.Duration) time.Duration) {
	js := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	waitJS := func(what, expr, want string, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			got := js(expr)
			if got == want {
				return time.Since(start)
			}
			if time.Since(start) > d {
				t.Fatalf("%s: %s is %q after %v, want %q", what, expr, got, d, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return js, waitJS
}

// TestBrowserAsksForTheToken opens the web view of a replica with secrets:
// the page asks for a token, and with the read-only one shows the tree,
// live, with a read-only badge.
func TestBrowserAsksForTheToken(t *testing.T) {
	exe := chromium(t)
	r := startReplica(t, func(c *replica.Config) { c.Secret, c.ROSecret = "rw-secret", "ro-secret" })
	ts, _ := startWeb(t, r, Options{})
	ctx := testCtx(t)
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/s/f", Rev: -1, Body: []byte("secret v1")}}); err != nil {
		t.Fatal(err)
	}
	bctx, jsErrors := newBrowser(t, exe)
	js, waitJS := jsHelpers(t, bctx)
	if err := chromedp.Do(bctx, chromedp.Navigate(ts.URL+"/#/s/f")); err != nil {
		t.Fatal(err)
	}
	waitJS("the token dialog", `String(document.getElementById("token-dialog").open)`, "true", 10*time.Second)
	js(`document.getElementById("token-input").value = "ro-secret"; document.querySelector("#token-form button[type=submit]").click(); "ok"`)
	body := `document.getElementById("file-body").textContent`
	waitJS("the file, with the token", body, "secret v1", 10*time.Second)
	waitJS("the live stream, with the token", `document.getElementById("live").className`, "live on", 10*time.Second)
	waitJS("the read-only badge", `document.getElementById("writable").textContent`, "read-only token", 10*time.Second)
	if _, err := r.Txn(ctx, []dfs.Op{{Kind: dfs.OpSet, Path: "/s/f", Rev: -1, Body: []byte("secret v2")}}); err != nil {
		t.Fatal(err)
	}
	waitJS("the second SET", body, "secret v2", time.Second)
	if errs := jsErrors(); len(errs) > 0 {
		t.Fatalf("JavaScript errors on the page: %q", errs)
	}
}
