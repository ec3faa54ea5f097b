package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestReloadSourcesOnSIGHUP: a source added to the config is watched after SIGHUP, and
// lines appended across the reload all arrive.
func TestReloadSourcesOnSIGHUP(t *testing.T) {
	h := newHost(t, hostOpts{})
	d := h.start()
	w := startWriter(h)
	time.Sleep(500 * time.Millisecond)
	other := filepath.Join(h.dir, "memory")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.jsonl"), []byte("{\"m\":1}\n"), 0o644)
	cfg, _ := os.ReadFile(h.config)
	added := strings.Replace(string(cfg), "http:\n", fmt.Sprintf("  - name: memory\n    path: %s\nhttp:\n", other), 1)
	os.WriteFile(h.config, []byte(added), 0o600)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	w.halt()
	want := h.sourceState()
	want["memory/notes.jsonl"] = "{\"m\":1}\n"
	h.waitStored(want, 20*time.Second)
	d.stop(t)
	if !strings.Contains(d.out.String(), "sources reloaded") {
		t.Fatalf("no reload in the log:\n%s", d.out)
	}
}

// TestServiceManagerNotify: under a service manager (NOTIFY_SOCKET, WATCHDOG_USEC) the
// daemon reports READY=1 once running, pings the watchdog, and says STOPPING=1.
func TestServiceManagerNotify(t *testing.T) {
	h := newHost(t, hostOpts{})
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd := exec.Command(binary, "run", "--config", h.config)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	got := map[string]int{}
	buf := make([]byte, 256)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && (got["READY=1"] == 0 || got["WATCHDOG=1"] < 2) {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := conn.Read(buf); err == nil {
			got[string(buf[:n])]++
		}
	}
	if got["READY=1"] != 1 || got["WATCHDOG=1"] < 2 {
		t.Fatalf("notifications %v\n%s", got, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for time.Now().Before(deadline.Add(10*time.Second)) && got["STOPPING=1"] == 0 {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := conn.Read(buf); err == nil {
			got[string(buf[:n])]++
		}
	}
	if err := cmd.Wait(); err != nil || got["STOPPING=1"] != 1 {
		t.Fatalf("stop: %v, notifications %v", err, got)
	}
}

// TestRestoreInPlace walks the runbook: a host with data is lost (sources and data dir
// gone), `restore --at latest --in-place` writes each source back to its own path (and
// refuses to overwrite a non-empty one without --force), and the daemon started again
// continues without sending the restored files again.
func TestRestoreInPlace(t *testing.T) {
	h := newHost(t, hostOpts{})
	cfg, _ := os.ReadFile(h.config)
	// The store outlives the host: keep it outside the data dir.
	os.WriteFile(h.config, append(cfg, []byte("s3:\n  url: file://"+filepath.Join(h.dir, "bucket")+"\n")...), 0o600)
	h.appendLine("main/sessions/a.jsonl", "{\"a\":1}\n{\"a\":2}\n")
	h.appendLine("scout/b.jsonl", "{\"b\":1}\n")
	os.WriteFile(filepath.Join(h.src, "big.jsonl"), []byte(strings.Repeat("{\"pad\":\"xxxxxxxxxxxxxxxx\"}\n", 50000)), 0o644)
	d := h.start()
	want := h.sourceState()
	h.waitStored(want, 20*time.Second)
	d.stop(t)
	if code, _, errs := mmr(t, "restore", "--config", h.config, "--at", "latest", "--in-place"); code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("in-place over existing files: exit %d %q", code, errs)
	}
	if err := os.RemoveAll(h.src); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(h.data) // the host is gone
	code, out, errs := mmr(t, "restore", "--config", h.config, "--at", "latest", "--in-place")
	if code != 0 || !strings.Contains(out, "will not send them again") {
		t.Fatalf("in-place restore: exit %d %s %s", code, out, errs)
	}
	got := map[string]string{}
	for k, v := range tree(t, h.src) {
		got["sessions/"+k] = v
	}
	if dd := diff(got, want); dd != "" {
		t.Fatalf("in place: %s", dd)
	}
	if m, _ := filepath.Glob(filepath.Join(h.dir, ".mmreplicate-restore-*")); len(m) != 0 {
		t.Fatalf("staging left behind: %v", m)
	}
	// The daemon on the rebuilt host journals nothing for the restored files...
	d = h.start()
	time.Sleep(1500 * time.Millisecond)
	var s struct {
		Journal struct {
			Bytes int64 `json:"bytes"`
		} `json:"journal"`
	}
	_, js, _ := mmr(t, "status", "--config", h.config, "--json")
	if err := json.Unmarshal([]byte(js), &s); err != nil || s.Journal.Bytes > 4096 {
		t.Fatalf("the rebuilt host journaled %d bytes for files the store already has (%v)", s.Journal.Bytes, err)
	}
	// ...and picks up new lines after them.
	h.appendLine("scout/b.jsonl", "{\"b\":2}\n")
	want = h.sourceState()
	h.waitStored(want, 20*time.Second)
	d.stop(t)
}

// TestStatusFollowsAnOutage: /metrics and `status --json` show the backlog, the last
// success and the loss window growing while S3 is down, and recovering when it is back.
func TestStatusFollowsAnOutage(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	d := h.start()
	h.appendLine("a.jsonl", "{\"n\":0}\n")
	h.waitStored(h.sourceState(), 20*time.Second)
	status := func() map[string]any {
		code, out, errs := mmr(t, "status", "--config", h.config, "--json")
		if code != 0 {
			t.Fatalf("status: %d %s", code, errs)
		}
		var s map[string]any
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatal(err)
		}
		return s["sinks"].([]any)[0].(map[string]any)
	}
	before := status()
	if before["backlog_records"].(float64) != 0 || before["last_success"] == nil {
		t.Fatalf("before the outage: %v", before)
	}
	s3.Stop()
	for i := 0; i < 5; i++ {
		h.appendLine("a.jsonl", fmt.Sprintf("{\"n\":%d}\n", i+1))
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(time.Second)
	during := status()
	if during["backlog_records"].(float64) == 0 || during["loss_window_seconds"].(float64) < 1 || during["last_success"] != before["last_success"] {
		t.Fatalf("during the outage: %v", during)
	}
	resp, err := http.Get("http://" + h.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`mmreplicate_sink_loss_window_seconds\{sink="s3-default"\} [1-9]`).Match(m) ||
		!regexp.MustCompile(`mmreplicate_sink_backlog_records\{sink="s3-default"\} [1-9]`).Match(m) {
		t.Fatalf("metrics during the outage:\n%s", m)
	}
	s3.Restart(t)
	h.waitStored(h.sourceState(), 60*time.Second)
	after := status()
	if after["backlog_records"].(float64) != 0 || after["loss_window_seconds"].(float64) != 0 || after["last_success"] == before["last_success"] {
		t.Fatalf("after the outage: %v", after)
	}
	d.stop(t)
}
