package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownManySinks stops a daemon with eight sink workers (eight S3 targets, here
// local folders): every worker's result must find room, or the shutdown waits for ever.
func TestShutdownManySinks(t *testing.T) {
	h := newHost(t, hostOpts{})
	var cfg strings.Builder
	cfg.WriteString("s3:\n")
	for i := range 8 {
		fmt.Fprintf(&cfg, "  - name: t%d\n    url: file://%s\n    flush_interval: 100ms\n", i, filepath.Join(h.dir, fmt.Sprintf("store%d", i)))
	}
	f, err := os.OpenFile(h.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(cfg.String())
	f.Close()
	d := h.start()
	h.appendLine("s.jsonl", `{"turn":1}`+"\n")
	time.Sleep(time.Second)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(45 * time.Second):
		t.Fatalf("a daemon with 8 sink workers did not stop within 45s after SIGTERM:\n%s", d.out)
	}
	if d.exit != nil {
		t.Fatalf("exit: %v\n%s", d.exit, d.out)
	}
}

// TestSIGHUPDuringFirstScan sends SIGHUP while the daemon is still starting (its first
// scan not finished): the daemon must take it as a reload request, not die of it.
func TestSIGHUPDuringFirstScan(t *testing.T) {
	h := newHost(t, hostOpts{})
	for i := range 2000 {
		h.appendLine(fmt.Sprintf("d%02d/s%04d.jsonl", i%50, i), `{"turn":1}`+"\n")
	}
	d := &daemon{cmd: exec.Command(binary, "run", "--config", h.config), out: &syncBuf{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exit = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.out)
		}
	})
	// Once the daemon has begun (its log speaks), SIGHUP it until it is ready.
	deadline := time.Now().Add(60 * time.Second)
	sent := 0
	for !strings.Contains(d.out.String(), "objects land in") {
		if time.Now().After(deadline) {
			t.Fatal("daemon not ready after 60s")
		}
		select {
		case <-d.done:
			t.Fatalf("daemon died after %d SIGHUPs during start-up: %v", sent, d.exit)
		case <-time.After(10 * time.Millisecond):
		}
		if strings.Contains(d.out.String(), "embedded nats started") {
			_ = d.cmd.Process.Signal(syscall.SIGHUP)
			sent++
		}
	}
	if sent == 0 {
		t.Fatal("the daemon was ready before a SIGHUP could be sent; the test proves nothing")
	}
	time.Sleep(500 * time.Millisecond)
	select {
	case <-d.done:
		t.Fatalf("daemon died after %d SIGHUPs: %v", sent, d.exit)
	default:
	}
	t.Logf("%d SIGHUPs sent before the daemon was ready", sent)
	d.stop(t)
}
