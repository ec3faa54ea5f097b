// Package e2e runs the mmreplicate binary as users do, against real NATS and a real S3
// server (Versity S3 Gateway, see internal/testenv), and checks what restore gives back.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mmr-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mmreplicate")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/mmreplicate").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// host is one simulated agent host: its source folders, data dir and config.
type host struct {
	t      *testing.T
	dir    string
	src    string
	data   string
	config string
	s3     *testenv.S3Server
	bucket string
	http   string
}

type hostOpts struct {
	natsURL string
	s3      *testenv.S3Server // nil: the embedded default (local folder)
	extra   string
}

func newHost(t *testing.T, o hostOpts) *host {
	t.Helper()
	dir := t.TempDir()
	h := &host{t: t, dir: dir, src: filepath.Join(dir, "agents"), data: filepath.Join(dir, "data"), s3: o.s3,
		http: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	if err := os.MkdirAll(h.src, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("host: e2e-%s\ndata_dir: %s\nsources:\n  - name: sessions\n    path: %s\n    include: [\"**/*.jsonl\"]\nhttp:\n  listen: %s\n",
		strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), h.data, h.src, h.http)
	if o.natsURL != "" {
		cfg += fmt.Sprintf("nats:\n  url: %s\n", o.natsURL)
	}
	if o.s3 != nil {
		h.bucket = "mmr-" + strings.ToLower(randomName())
		o.s3.CreateBucket(t, h.bucket)
		cfg += fmt.Sprintf("s3:\n  url: s3://%s/prod\n  endpoint: %s\n  access_key_id: %s\n  secret_access_key: %s\n  flush_interval: 250ms\n",
			h.bucket, o.s3.Endpoint, o.s3.AccessKey, o.s3.SecretKey)
	}
	cfg += o.extra
	h.config = filepath.Join(dir, "mmreplicate.yml")
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func randomName() string { return fmt.Sprintf("%x", time.Now().UnixNano()) }

// daemon is a running `mmreplicate run`.
type daemon struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	exit error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs the daemon and waits until it says it is running.
func (h *host) start() *daemon {
	h.t.Helper()
	d := &daemon{cmd: exec.Command(binary, "run", "--config", h.config), out: &syncBuf{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { d.exit = d.cmd.Wait(); close(d.done) }()
	h.t.Cleanup(func() {
		d.kill()
		if h.t.Failed() {
			h.t.Logf("daemon output:\n%s", d.out)
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(d.out.String(), "objects land in") {
		select {
		case <-d.done:
			h.t.Fatalf("daemon exited during start-up: %v\n%s", d.exit, d.out)
		case <-deadline:
			h.t.Fatalf("daemon not ready after 60s:\n%s", d.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return d
}

func (d *daemon) kill() {
	if d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
}

// stop sends SIGTERM and expects a clean exit 0.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not stop within 60s:\n%s", d.out)
	}
	if d.exit != nil {
		t.Fatalf("daemon exit: %v\n%s", d.exit, d.out)
	}
}

// mmr runs a CLI command and returns its exit code, stdout and stderr.
func mmr(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// restore runs `mmreplicate restore` into a new folder and returns it.
func (h *host) restore(at string, extra ...string) string {
	h.t.Helper()
	to := filepath.Join(h.t.TempDir(), "restore")
	args := append([]string{"restore", "--config", h.config, "--at", at, "--to", to}, extra...)
	code, out, errs := mmr(h.t, args...)
	if code != 0 {
		h.t.Fatalf("restore --at %s: exit %d\n%s%s", at, code, out, errs)
	}
	return to
}

// tree reads every file under root as relative path -> content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return out
}

// wholeLines is what restore must give for a file being appended: its complete lines.
func wholeLines(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[:i+1]
	}
	return ""
}

// sourceState is the expected restore of the host's sessions source now.
func (h *host) sourceState() map[string]string {
	out := map[string]string{}
	for rel, content := range tree(h.t, h.src) {
		out["sessions/"+rel] = wholeLines(content)
	}
	return out
}

// waitStored polls restore --at latest until it equals want.
func (h *host) waitStored(want map[string]string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]string
	var lastErr string
	for time.Now().Before(deadline) {
		to := filepath.Join(h.t.TempDir(), "poll")
		code, _, errs := mmr(h.t, "restore", "--config", h.config, "--at", "latest", "--to", to)
		lastErr = errs
		if code == 0 {
			got = tree(h.t, to)
			if equal(got, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("store never reached the expected state: %s\nlast restore said: %s", diff(got, want), lastErr)
}

func equal(a, b map[string]string) bool { return diff(a, b) == "" }

func diff(got, want map[string]string) string {
	var d []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("%s missing", k))
		case g != w:
			d = append(d, fmt.Sprintf("%s: got %d bytes (%d lines), want %d bytes (%d lines)", k, len(g), strings.Count(g, "\n"), len(w), strings.Count(w, "\n")))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s unexpected", k))
		}
	}
	return strings.Join(d, "; ")
}

// appendLine appends one line to a file under the host's source.
func (h *host) appendLine(rel, line string) {
	p := filepath.Join(h.src, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := f.WriteString(line); err != nil {
		h.t.Fatal(err)
	}
	f.Close()
}
