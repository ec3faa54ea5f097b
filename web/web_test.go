package web

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

var t0 = time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)

type fixture struct {
	t     testing.TB
	store objstore.Store
	seq   uint64
}

const testHost = "web-test"

func newFixture(t testing.TB) *fixture {
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: st}
}

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

func appendRec(d time.Duration, path string, off int64, data string) journal.Record {
	return journal.Record{Time: at(d), Op: journal.OpAppend, Source: "sessions", Path: path, Offset: off, Mode: 0o640, Data: []byte(data)}
}

func (f *fixture) wholeFile(d time.Duration, source, path, content string) journal.Record {
	ref := journal.ChunkRef{Hash: sha256.Sum256([]byte(content)), Size: uint32(len(content))}
	if err := f.store.Put(context.Background(), manifest.BlobKey(ref.ID()), []byte(content)); err != nil {
		f.t.Fatal(err)
	}
	return journal.Record{Time: at(d), Op: journal.OpFile, Source: source, Path: path, Offset: int64(len(content)),
		Mode: 0o644, Data: journal.EncodeChunks([]journal.ChunkRef{ref})}
}

func (f *fixture) put(recs ...journal.Record) string {
	f.t.Helper()
	for i := range recs {
		f.seq++
		recs[i].Seq = f.seq
	}
	key := segment.Key(testHost, recs)
	if err := f.store.Put(context.Background(), key, segment.Encode(recs)); err != nil {
		f.t.Fatal(err)
	}
	return key
}

func (f *fixture) serve() *httptest.Server {
	f.t.Helper()
	return f.serveIn(f.t.TempDir())
}

// serveIn serves the fixture's store with its rebuilds under cache.
func (f *fixture) serveIn(cache string) *httptest.Server {
	f.t.Helper()
	c, err := New(context.Background(), Options{Store: f.store, Host: testHost, Username: "admin", Password: "pw",
		ConfigPath: "/etc/mmreplicate/mmreplicate.yml", CacheDir: cache,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	f.t.Cleanup(func() { srv.Close(); c.Close() })
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string, auth bool) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if auth {
		req.SetBasicAuth("admin", "pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func getJSON(t *testing.T, srv *httptest.Server, path string, v any) {
	t.Helper()
	resp, b := get(t, srv, path, true)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func scenario(t *testing.T) *fixture {
	f := newFixture(t)
	f.put(appendRec(0, "main/s.jsonl", 0, `{"role":"user","content":"hello there"}`+"\n"),
		f.wholeFile(0, "workspaces", "notes.md", "one\ntwo\nthree\n"))
	f.put(appendRec(10*time.Second, "main/s.jsonl", 40,
		`{"role":"assistant","content":[{"type":"text","text":"calling"},{"type":"tool_use","name":"grep","input":{"q":"x"}}]}`+"\n"+
			`{"role":"tool","content":"found it"}`+"\n"),
		f.wholeFile(10*time.Second, "workspaces", "notes.md", "one\n2\nthree\nfour\n"),
		f.wholeFile(10*time.Second, "workspaces", "page.html", "<script>document.title='pwned'</script>\n"),
		f.wholeFile(10*time.Second, "workspaces", "bin.dat", "\x00\x01\x02binary"))
	return f
}

func TestAuthHeadersAndReadOnly(t *testing.T) {
	srv := scenario(t).serve()
	resp, _ := get(t, srv, "/", false)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/status", nil)
	req.SetBasicAuth("admin", "wrong")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
		t.Fatalf("wrong password: %v %v", r, err)
	}
	resp, body := get(t, srv, "/", true)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/assets/app.js") {
		t.Fatalf("index: %d %s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("nosniff missing")
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		req, _ := http.NewRequest(m, srv.URL+"/api/tree", strings.NewReader("x"))
		req.SetBasicAuth("admin", "pw")
		r, err := http.DefaultClient.Do(req)
		if err != nil || r.StatusCode != 405 {
			t.Fatalf("%s: %v %v", m, r, err)
		}
	}
	// A stored HTML file comes back as plain text or an attachment, never as HTML.
	resp, body = get(t, srv, "/raw?path=workspaces/page.html", true)
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || !strings.Contains(string(body), "<script>") {
		t.Fatalf("raw: %q %s", ct, body)
	}
	resp, _ = get(t, srv, "/download?path=workspaces/page.html", true)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("download: %q %q", cd, resp.Header.Get("Content-Type"))
	}
}

func TestTreeAtInstantsAndFileKinds(t *testing.T) {
	srv := scenario(t).serve()
	var tv treeView
	getJSON(t, srv, "/api/tree?dir=workspaces&at="+url.QueryEscape(t0.Add(5*time.Second).Format(time.RFC3339)), &tv)
	if len(tv.Entries) != 1 || tv.Entries[0].Name != "notes.md" || tv.Entries[0].Size != 14 {
		t.Fatalf("tree at +5s: %+v", tv.Entries)
	}
	if tv.Command != "mmreplicate restore --config /etc/mmreplicate/mmreplicate.yml --at 2026-11-26T18:00:05Z --source workspaces --to ./mmreplicate-restore" {
		t.Fatalf("command %q", tv.Command)
	}
	getJSON(t, srv, "/api/tree", &tv)
	if !tv.Latest || len(tv.Entries) != 2 || tv.Entries[0].Name != "sessions" || tv.Entries[1].Files != 3 {
		t.Fatalf("tree latest: %+v", tv)
	}
	var sv statusView
	getJSON(t, srv, "/api/status", &sv)
	if len(sv.Hosts) != 1 || sv.Hosts[0] != testHost || sv.Files != 4 || len(sv.Sources) != 2 || sv.Sources[1].Files != 3 {
		t.Fatalf("status: %+v", sv)
	}
	var fv fileView
	getJSON(t, srv, "/api/file?path=workspaces/notes.md&at=-59m55s", &fv)
	if fv.Kind != "text" || *fv.Text != "one\ntwo\nthree\n" {
		t.Fatalf("notes at -59m55s: %+v", fv)
	}
	getJSON(t, srv, "/api/file?path=sessions/main/s.jsonl", &fv)
	if fv.Kind != "transcript" || len(fv.Messages) != 3 || fv.Messages[1].Role != "assistant" ||
		fv.Messages[1].Parts[1].Kind != "call" || fv.Messages[1].Parts[1].Name != "grep" || fv.Messages[2].Parts[0].Kind != "result" {
		t.Fatalf("transcript: %+v", fv.content)
	}
	getJSON(t, srv, "/api/file?path=workspaces/bin.dat", &fv)
	if fv.Kind != "binary" {
		t.Fatalf("binary: %+v", fv.content)
	}
	for _, bad := range []string{"../etc/passwd", "workspaces/../../x", "/etc/passwd", "workspaces//notes.md"} {
		resp, _ := get(t, srv, "/api/file?path="+url.QueryEscape(bad), true)
		if resp.StatusCode != 400 {
			t.Fatalf("path %q: %d", bad, resp.StatusCode)
		}
	}
	resp, body := get(t, srv, "/api/tree?at=yesterday", true)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "latest") {
		t.Fatalf("bad TIME: %d %s", resp.StatusCode, body)
	}
}

func TestHistoryDiffAndTar(t *testing.T) {
	srv := scenario(t).serve()
	var hv historyView
	getJSON(t, srv, "/api/history?path=workspaces/notes.md", &hv)
	if len(hv.Versions) != 2 || hv.Versions[0].Size != 14 || hv.Versions[1].Size != 17 {
		t.Fatalf("history: %+v", hv)
	}
	var d diffView
	getJSON(t, srv, "/api/diff?path=workspaces/notes.md&a="+hv.Versions[0].Time+"&b="+hv.Versions[1].Time, &d)
	var got []string
	for _, l := range d.Lines {
		got = append(got, l.Op+l.Text)
	}
	if strings.Join(got, "|") != " one|-two|+2| three|+four" {
		t.Fatalf("diff: %q", got)
	}
	getJSON(t, srv, "/api/history?path=sessions/main/s.jsonl", &hv)
	getJSON(t, srv, "/api/diff?path=sessions/main/s.jsonl&a="+hv.Versions[0].Time+"&b="+hv.Versions[1].Time, &d)
	if d.Kind != "appended" || d.Added != 2 {
		t.Fatalf("transcript diff: %+v", d)
	}
	resp, body := get(t, srv, "/download?dir=workspaces", true)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("tar: %d %s", resp.StatusCode, body)
	}
	gz, err := gzip.NewReader(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if len(files) != 3 || files["workspaces/notes.md"] != "one\n2\nthree\nfour\n" || files["workspaces/bin.dat"] != "\x00\x01\x02binary" {
		t.Fatalf("tar: %q", files)
	}
}

// A gap in the records is shown, and downloads refuse a silently partial state.
func TestGapIsShown(t *testing.T) {
	f := scenario(t)
	f.seq += 5 // records 7-11 never stored
	f.put(appendRec(20*time.Second, "main/s.jsonl", 0, "{}\n"))
	srv := f.serve()
	var tv treeView
	getJSON(t, srv, "/api/tree", &tv)
	if len(tv.Problems) == 0 || !strings.Contains(strings.Join(tv.Problems, " "), "missing") {
		t.Fatalf("gap not reported: %+v", tv.Problems)
	}
	resp, body := get(t, srv, "/download?dir=workspaces", true)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "incomplete") {
		t.Fatalf("partial download: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, srv, "/download?dir=workspaces&partial=1", true)
	if resp.StatusCode != 200 {
		t.Fatalf("partial=1: %d", resp.StatusCode)
	}
}

func TestDiffBounds(t *testing.T) {
	gen := func(n int) (string, string) {
		var a, b strings.Builder
		for i := range n {
			fmt.Fprintf(&a, "line %d\n", i)
			fmt.Fprintf(&b, "line %d\n", i)
			if i%2 == 0 {
				fmt.Fprintf(&b, "new %d\n", i)
			}
		}
		return a.String(), b.String()
	}
	a, b := gen(1500) // matched line by line
	if d := diff("x.txt", []byte(a), []byte(b)); d.Added != 750 || d.Removed != 0 || len(d.Lines) != 2250 || d.Truncated || d.Coarse {
		t.Fatalf("1500 lines: added %d removed %d lines %d truncated %v coarse %v", d.Added, d.Removed, len(d.Lines), d.Truncated, d.Coarse)
	}
	a, b = gen(30000) // too large to match: shown as replaced, listing bounded
	if d := diff("x.txt", []byte(a), []byte(b)); !d.Coarse || !d.Truncated || len(d.Lines) != maxDiffLines || d.Added+d.Removed != 30000+45000-4 {
		t.Fatalf("30000 lines: added %d removed %d lines %d truncated %v coarse %v", d.Added, d.Removed, len(d.Lines), d.Truncated, d.Coarse)
	}
	if d := diff("x.bin", []byte("a\x00"), []byte("b")); !d.Binary {
		t.Fatal("binary content not flagged")
	}
	if d := diff("t.jsonl", []byte("{}\n"), []byte("{}\n{\"a\":1}\n")); d.Kind != "appended" || d.Added != 1 {
		t.Fatalf("appended: %+v", d)
	}
}

// An empty store is a page saying so, not an error.
func TestEmptyStore(t *testing.T) {
	srv := newFixture(t).serve()
	var tv treeView
	getJSON(t, srv, "/api/tree", &tv)
	if len(tv.Entries) != 0 || tv.StateAt != "" || len(tv.Problems) != 0 {
		t.Fatalf("empty tree: %+v", tv)
	}
	var sv statusView
	getJSON(t, srv, "/api/status", &sv)
	if sv.Files != 0 || sv.Newest != "" {
		t.Fatalf("empty status: %+v", sv)
	}
	resp, _ := get(t, srv, "/api/file?path=sessions/a.jsonl", true)
	if resp.StatusCode != 404 {
		t.Fatalf("file in an empty store: %d", resp.StatusCode)
	}
}
