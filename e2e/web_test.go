package e2e

// The web console in a real browser: Debian's chromium, headless, driven by chromedp,
// against a real daemon replicating to a real S3 server. The test fails, never skips,
// when chromium is missing: `make test` installs it (apt-get install -y chromium).
//
// MMR_WEB_SCREENSHOTS=DIR saves PNGs of the main pages there (make screenshots).

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

const (
	webUser  = "admin"
	webPass  = "e2e-console-secret"
	webCreds = "web:\n  username: " + webUser + "\n  password: " + webPass + "\n"
)

// chromiumPath finds the system browser; missing it is a failure.
func chromiumPath(t testing.TB) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: apt-get install -y chromium (make test does)")
	return ""
}

// browser starts a headless chromium that sends the console credentials with every
// request, and returns its chromedp context.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(webUser+":"+webPass))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// page runs browser steps with a bound, failing the test with what the page shows.
func page(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ''`))
		t.Fatalf("%s: %v\npage shows:\n%s", what, err, body)
	}
}

// until waits for a JavaScript condition on the page.
func until(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(time.Until(deadline)))(ctx, tg)
			if err == nil {
				return nil
			}
			// A navigation that is still settling replaces the page's JavaScript context
			// under the poll; that is not an answer, so ask the new context again.
			if contextReplaced(err) && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("waiting for %s: %w", cond, err)
		}
	})
}

// contextReplaced tells the browser's "the page's context went away" answers, which a
// navigation produces while it is under way.
func contextReplaced(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") ||
		strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Inspected target navigated or closed")
}

func evalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func screenshot(t testing.TB, ctx context.Context, name string) {
	dir := os.Getenv("MMR_WEB_SCREENSHOTS")
	if dir == "" {
		return
	}
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// webServer is a running `mmreplicate web`.
type webServer struct {
	url  string
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
}

var consoleLine = regexp.MustCompile(`console (http://\S+/)`)

func startWeb(t testing.TB, config string) *webServer {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := &webServer{cmd: exec.Command(binary, "web", "--config", config, "--listen", addr), out: &syncBuf{}, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		if t.Failed() {
			t.Logf("mmreplicate web output:\n%s", s.out)
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if m := consoleLine.FindStringSubmatch(s.out.String()); m != nil {
			s.url = strings.TrimSuffix(m[1], "/")
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("mmreplicate web exited during start-up:\n%s", s.out)
		case <-deadline:
			t.Fatalf("mmreplicate web not ready after 30s:\n%s", s.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// webGet fetches a console URL with (or without) the credentials.
func webGet(t testing.TB, u string, auth bool) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.SetBasicAuth(webUser, webPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// untar reads a .tar.gz into path -> content.
func untar(t testing.TB, b []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(c)
	}
}

// waitLatest polls restore --at latest until ok accepts the tree.
func (h *host) waitLatest(ok func(map[string]string) bool, timeout time.Duration) map[string]string {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]string
	for time.Now().Before(deadline) {
		to := filepath.Join(h.t.TempDir(), "poll")
		if code, _, _ := mmr(h.t, "restore", "--config", h.config, "--at", "latest", "--to", to); code == 0 {
			if got = tree(h.t, to); ok(got) {
				return got
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("store never reached the expected state; last restore held %d files", len(got))
	return nil
}

func (h *host) writeFile(rel, content string) {
	p := filepath.Join(h.src, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		h.t.Fatal(err)
	}
}

const (
	transcriptV1 = `{"role":"user","content":"Summarise the scout report","timestamp":"2026-11-26T03:00:00Z"}` + "\n" +
		`{"role":"assistant","content":[{"type":"text","text":"Reading it now."},{"type":"tool_use","id":"t1","name":"read_file","input":{"path":"reports/scout.md"}}]}` + "\n" +
		`{"role":"tool","content":"status: draft v1"}` + "\n"
	transcriptV2 = `{"role":"assistant","content":"The scout report is final."}` + "\n"
	reportV1     = "# Scout report\nstatus: draft v1\n<script>window.__pwned = 1; document.title = 'pwned';</script>\n"
	reportV2     = "# Scout report\nstatus: final v2\n<script>window.__pwned = 1; document.title = 'pwned';</script>\n"
	hostileName  = `<img src=x onerror="window.__pwned=4">.md`
	hostilePage  = "<html><head><title>pwned</title><script>window.__pwned = 2; document.title = 'pwned';</script></head>" +
		"<body><img src=x onerror=\"window.__pwned = 3\"><p>hello</p></body></html>\n"
)

func TestWebConsoleInBrowser(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3, extra: webCreds})
	cfg, _ := os.ReadFile(h.config)
	// Every file of the source, not only transcripts.
	cfg = []byte(strings.Replace(string(cfg), "    include: [\"**/*.jsonl\"]\n", "", 1))
	if err := os.WriteFile(h.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	d := h.start()

	h.appendLine("main/sessions/scout.jsonl", transcriptV1)
	h.writeFile("reports/scout.md", reportV1)
	h.writeFile("reports/page.html", hostilePage)
	h.writeFile("reports/"+hostileName, "a file whose name is markup\n")
	dbPath := filepath.Join(h.src, "db", "tasks.sqlite")
	os.MkdirAll(filepath.Dir(dbPath), 0o755)
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT, done INTEGER)",
		"INSERT INTO tasks (title, done) VALUES ('scout the repo', 1), ('write report', 0), ('<b>not bold</b>', 0)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	h.waitLatest(func(m map[string]string) bool {
		return m["sessions/reports/scout.md"] == reportV1 && m["sessions/main/sessions/scout.jsonl"] == transcriptV1 &&
			m["sessions/db/tasks.sqlite"] != "" && m["sessions/reports/page.html"] == hostilePage && m["sessions/reports/"+hostileName] != ""
	}, 30*time.Second)
	t1 := time.Now().UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	h.writeFile("reports/scout.md", reportV2)
	h.appendLine("main/sessions/scout.jsonl", transcriptV2)
	h.waitLatest(func(m map[string]string) bool {
		return m["sessions/reports/scout.md"] == reportV2 && m["sessions/main/sessions/scout.jsonl"] == transcriptV1+transcriptV2
	}, 30*time.Second)

	ctx := browser(t)

	// The daemon serves the console on http.listen, behind the credentials, with its
	// own figures on the status page.
	daemonURL := "http://" + h.http
	if code, _, _ := webGet(t, daemonURL+"/", false); code != http.StatusUnauthorized {
		t.Fatalf("daemon console without credentials: %d", code)
	}
	if code, _, _ := webGet(t, daemonURL+"/healthz", false); code != http.StatusOK {
		t.Fatalf("/healthz must stay open: %d", code)
	}
	page(t, ctx, "daemon status page", chromedp.Navigate(daemonURL+"/#status"),
		until(`!!document.querySelector('#daemon-sinks') && document.querySelector('#store-sources').innerText.includes('sessions')`))
	if sinks := evalJS[string](t, ctx, `document.querySelector('#daemon-sinks').innerText`); !strings.Contains(sinks, "Loss window") || !strings.Contains(sinks, "s3") {
		t.Fatalf("daemon status lacks the targets:\n%s", sinks)
	}
	screenshot(t, ctx, "web-status")
	d.stop(t)

	// From here on: `mmreplicate web`, reading the bucket alone.
	w := startWeb(t, h.config)
	at1 := t1.Format(time.RFC3339Nano)

	// A file at the newest instant, then the slider moved to T1 shows its earlier
	// content without a page load.
	page(t, ctx, "report at latest", chromedp.Navigate(w.url+"/#file?path=sessions/reports/scout.md"),
		until(`!!document.querySelector('#filetext') && document.querySelector('#filetext').textContent.includes('final v2')`))
	evalJS[bool](t, ctx, `window.__sameDocument = true`)
	page(t, ctx, "slider to T1", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const s = document.querySelector('#slider');
			s.focus(); s.value = String(%d); s.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, t1.UnixMilli()))(ctx, tg)
		return err
	}), until(`document.querySelector('#filetext') && document.querySelector('#filetext').textContent.includes('draft v1')`))
	if !evalJS[bool](t, ctx, `window.__sameDocument === true`) {
		t.Fatal("moving the slider reloaded the page")
	}
	if hash := evalJS[string](t, ctx, `location.hash`); !strings.Contains(hash, "at=") {
		t.Fatalf("the slider's instant is not in the address: %s", hash)
	}
	cmd := evalJS[string](t, ctx, `document.querySelector('#cmd').textContent`)
	if !strings.Contains(cmd, "mmreplicate restore --config "+h.config+" --at ") || !strings.Contains(cmd, "--source sessions --path reports/scout.md") {
		t.Fatalf("restore command: %s", cmd)
	}
	// The TIME field takes every form: back to latest.
	page(t, ctx, "TIME field latest", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { document.querySelector('#timefield').value = 'latest';
			document.querySelector('#timego').click(); return true; })()`)(ctx, tg)
		return err
	}), until(`document.querySelector('#filetext').textContent.includes('final v2')`))
	page(t, ctx, "TIME field RFC 3339", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { document.querySelector('#timefield').value = %q;
			document.querySelector('#timego').click(); return true; })()`, at1))(ctx, tg)
		return err
	}), until(`document.querySelector('#filetext').textContent.includes('draft v1')`))
	page(t, ctx, "TIME field relative", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { document.querySelector('#timefield').value = '-1s';
			document.querySelector('#timego').click(); return true; })()`)(ctx, tg)
		return err
	}), until(`document.querySelector('#filetext').textContent.includes('final v2')`))
	if v := evalJS[bool](t, ctx, `(() => { const s = document.querySelector('#slider'); return s.value === s.max; })()`); !v {
		t.Fatal("at -1s the slider is not at the end of the window")
	}
	screenshot(t, ctx, "web-file")

	// Stored scripts in a Markdown and an HTML file never run: not in the console, not
	// from the raw link.
	page(t, ctx, "hostile html", chromedp.Navigate(w.url+"/#file?path=sessions/reports/page.html"),
		until(`!!document.querySelector('#filetext') && document.querySelector('#filetext').textContent.includes('onerror')`))
	for _, raw := range []string{"sessions/reports/page.html", "sessions/reports/scout.md"} {
		if pwned := evalJS[bool](t, ctx, `window.__pwned !== undefined || document.title === 'pwned' || document.querySelectorAll('#main img, #main script').length > 0`); pwned {
			t.Fatal("a stored script ran in the console")
		}
		page(t, ctx, "raw "+raw, chromedp.Navigate(w.url+"/raw?path="+url.QueryEscape(raw)), until(`document.readyState === 'complete'`))
		if pwned := evalJS[bool](t, ctx, `window.__pwned !== undefined || document.title === 'pwned' || document.querySelectorAll('script, img').length > 0`); pwned {
			t.Fatalf("the raw view of %s ran or rendered it as HTML", raw)
		}
		if txt := evalJS[string](t, ctx, `document.body.innerText`); !strings.Contains(txt, "<script>") {
			t.Fatalf("the raw view of %s is not its text: %q", raw, txt)
		}
	}

	// A transcript as a conversation, tool calls and results folded.
	page(t, ctx, "transcript", chromedp.Navigate(w.url+"/#file?path=sessions/main/sessions/scout.jsonl"),
		until(`document.querySelectorAll('#messages .msg').length === 4`))
	roles := evalJS[[]string](t, ctx, `[...document.querySelectorAll('#messages .msg')].map(m => m.dataset.role)`)
	if strings.Join(roles, ",") != "user,assistant,tool,assistant" {
		t.Fatalf("roles %v", roles)
	}
	if call := evalJS[string](t, ctx, `document.querySelector('#messages details.call summary').textContent`); call != "tool call: read_file" {
		t.Fatalf("tool call %q", call)
	}
	if open := evalJS[bool](t, ctx, `document.querySelector('#messages details.result').open`); open {
		t.Fatal("a tool result is not folded")
	}
	screenshot(t, ctx, "web-transcript")

	// A database as its tables.
	page(t, ctx, "database", chromedp.Navigate(w.url+"/#file?path=sessions/db/tasks.sqlite"),
		until(`!!document.querySelector('[data-table=tasks]')`))
	if txt := evalJS[string](t, ctx, `document.querySelector('[data-table=tasks]').innerText`); !strings.Contains(txt, "3 rows") ||
		!strings.Contains(txt, "scout the repo") || !strings.Contains(txt, "<b>not bold</b>") {
		t.Fatalf("tasks table:\n%s", txt)
	}

	// History and the difference between two versions.
	page(t, ctx, "history", chromedp.Navigate(w.url+"/#history?path=sessions/reports/scout.md"),
		until(`!!document.querySelector('#diff') && document.querySelector('#main h2').textContent.includes('scout.md')`))
	if n := evalJS[int](t, ctx, `document.querySelectorAll('#versions tr[data-time]').length`); n != 2 {
		t.Fatalf("history of scout.md: %d versions, want 2", n)
	}
	lines := evalJS[[]string](t, ctx, `[...document.querySelectorAll('#diff div')].map(d => d.textContent)`)
	if j := strings.Join(lines, "\n"); !strings.Contains(j, "- status: draft v1\n+ status: final v2") {
		t.Fatalf("diff:\n%s", j)
	}
	screenshot(t, ctx, "web-history")
	page(t, ctx, "transcript history", chromedp.Navigate(w.url+"/#history?path=sessions/main/sessions/scout.jsonl"),
		until(`!!document.querySelector('#diff') && document.querySelector('#main h2').textContent.includes('scout.jsonl')`))
	if kind := evalJS[string](t, ctx, `document.querySelector('#diff').dataset.kind`); kind != "appended" {
		t.Fatalf("transcript diff kind %q", kind)
	}

	// The tree at T1, and its folder download equals restore at T1 byte for byte.
	page(t, ctx, "sessions at T1", chromedp.Navigate(w.url+"/#browse?at="+url.QueryEscape(at1)+"&dir=sessions"),
		until(`!!document.querySelector('#tree tr[data-path="sessions/reports"]')`))
	screenshot(t, ctx, "web-browse")
	page(t, ctx, "tree at T1", chromedp.Navigate(w.url+"/#browse?at="+url.QueryEscape(at1)),
		until(`!!document.querySelector('#download-dir') && !document.querySelector('#tree tr[data-path="sessions/reports"]')`))
	href := evalJS[string](t, ctx, `document.querySelector('#download-dir').href`)
	code, hdr, body := webGet(t, href, true)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("download %s: %d %q %s", href, code, hdr.Get("Content-Disposition"), body)
	}
	got, want := untar(t, body), tree(t, h.restore(at1))
	if len(want) != 5 || !equal(got, want) {
		t.Fatalf("the .tar.gz at T1 differs from restore --at %s: %s", at1, diff(got, want))
	}
	if got["sessions/reports/scout.md"] != reportV1 {
		t.Fatal("the download at T1 does not hold the earlier report")
	}
	// And a folder below a source.
	page(t, ctx, "reports at T1", chromedp.Navigate(w.url+"/#browse?at="+url.QueryEscape(at1)+"&dir=sessions/reports"),
		until(`!!document.querySelector('#download-dir') && document.querySelector('#crumbs').textContent.includes('reports')`))
	if evalJS[bool](t, ctx, `window.__pwned !== undefined || document.querySelectorAll('#main img').length > 0`) {
		t.Fatal("a stored file name was rendered as HTML")
	}
	if names := evalJS[string](t, ctx, `document.querySelector('#tree').innerText`); !strings.Contains(names, hostileName) {
		t.Fatalf("the file named like markup is not listed by its name:\n%s", names)
	}
	href = evalJS[string](t, ctx, `document.querySelector('#download-dir').href`)
	_, _, body = webGet(t, href, true)
	if got := untar(t, body); len(got) != 3 || got["sessions/reports/page.html"] != want["sessions/reports/page.html"] || got["sessions/reports/scout.md"] != want["sessions/reports/scout.md"] {
		t.Fatalf("reports folder at T1: %v", got)
	}

	// Status in store mode.
	page(t, ctx, "store status", chromedp.Navigate(w.url+"/#status"), until(`!!document.querySelector('#store-only')`))
	var st struct {
		Files  int    `json:"files"`
		Newest string `json:"newest"`
	}
	_, _, body = webGet(t, w.url+"/api/status", true)
	if err := json.Unmarshal(body, &st); err != nil || st.Files != 5 || st.Newest == "" {
		t.Fatalf("store status: %v %s", err, body)
	}
}

// Without web credentials `mmreplicate web` refuses to start (exit 2, naming the keys),
// and the daemon's / says how to turn the console on while /status keeps working.
func TestWebNeedsCredentials(t *testing.T) {
	h := newHost(t, hostOpts{})
	code, _, errs := mmr(t, "web", "--config", h.config, "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errs, "web.username and web.password") {
		t.Fatalf("web without credentials: exit %d, %s", code, errs)
	}
	h.start()
	code, _, body := webGet(t, "http://"+h.http+"/", false)
	if code != http.StatusNotFound || !strings.Contains(string(body), "web.username and web.password") {
		t.Fatalf("daemon / without web credentials: %d %s", code, body)
	}
	if code, _, _ := webGet(t, "http://"+h.http+"/status", false); code != http.StatusOK {
		t.Fatalf("/status: %d", code)
	}
}
