package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// mountTmpfs mounts a tmpfs of the given size (e.g. "16m") on dir: a real disk that
// fills up. Under CI=true a test that cannot mount fails; elsewhere it is skipped.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a %s tmpfs on %s (needs root): %v %s", size, dir, err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// TestDefaultConfigOnSmallDisk: the default config starts and replicates with a data_dir
// of 16 MB.
func TestDefaultConfigOnSmallDisk(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	mountTmpfs(t, h.data, "16m")
	h.appendLine("main/a.jsonl", "{\"a\":1}\n")
	d := h.start()
	for i := range 50 {
		h.appendLine(fmt.Sprintf("agent%d/s.jsonl", i%3), fmt.Sprintf("{\"n\":%d,\"pad\":%q}\n", i, strings.Repeat("x", 1000)))
	}
	h.waitStored(h.sourceState(), 30*time.Second)
	d.stop(t)
}

// TestDiskFullIsAState: with data_dir on a 16 MB tmpfs and the S3 server down, agents'
// transcripts grow past the disk. The daemon stays up and says "capture paused: disk
// full" in its log, status and metrics; a SIGKILL and a restart with the disk full to the
// last byte are safe; once space and the server are back it uploads what the journal
// holds, capture resumes by itself, and restore of latest equals every transcript byte
// for byte.
func TestDiskFullIsAState(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	mountTmpfs(t, h.data, "16m")
	d := h.start()
	h.appendLine("main/a.jsonl", "{\"start\":true}\n")
	h.waitStored(h.sourceState(), 30*time.Second)

	s3.Stop()
	line := func(agent, n int) string {
		return fmt.Sprintf("{\"agent\":%d,\"n\":%d,\"pad\":%q}\n", agent, n, strings.Repeat(string(rune('a'+agent)), 4000))
	}
	// About 24 MB of transcript lines, more than the whole disk.
	n := 0
	for ; n < 1500; n++ {
		for a := range 4 {
			h.appendLine(fmt.Sprintf("agent%d/session.jsonl", a), line(a, n))
		}
	}
	waitFor(t, "status to say capture paused: disk full", 60*time.Second, func() bool {
		c := captureStatus(t, h)
		return c["paused"] == true && c["reason"] == "capture paused: disk full"
	})
	m := metrics(t, h)
	if !strings.Contains(m, `mmreplicate_capture_paused{reason="capture paused: disk full"} 1`) ||
		!regexp.MustCompile(`(?m)^mmreplicate_data_dir_free_bytes \d`).MatchString(m) {
		t.Fatalf("metrics while the disk is full:\n%s", grep(m, "capture_paused|data_dir_free"))
	}
	if !strings.Contains(d.out.String(), "capture paused: disk full") {
		t.Fatalf("no disk-full line in the log:\n%s", d.out)
	}

	// A restart while the disk is full to the last byte: it comes up, and is still paused.
	filler := filepath.Join(h.data, "filler")
	fillDisk(t, filler)
	d.kill()
	d = h.start()
	for a := range 4 {
		h.appendLine(fmt.Sprintf("agent%d/session.jsonl", a), line(a, n))
	}
	n++
	waitFor(t, "status after the restart to say capture paused: disk full", 60*time.Second, func() bool {
		return captureStatus(t, h)["reason"] == "capture paused: disk full"
	})

	if free := captureStatusFree(t, h); free > 64<<10 {
		t.Fatalf("data_dir has %d bytes free after filling it", free)
	}

	// Space and the server come back: the journal drains, capture resumes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s3.Restart(t)
	h.waitStored(h.sourceState(), 120*time.Second)
	for a := range 4 {
		h.appendLine(fmt.Sprintf("agent%d/session.jsonl", a), line(a, n))
	}
	h.waitStored(h.sourceState(), 60*time.Second)
	select {
	case <-d.done:
		t.Fatalf("daemon exited: %v", d.exit)
	default:
	}
	if c := captureStatus(t, h); c["paused"] != false {
		t.Fatalf("capture still paused: %v", c)
	}
	if !strings.Contains(d.out.String(), "capture resumed") {
		t.Fatalf("no resume line in the log:\n%s", d.out)
	}
	d.stop(t)
	if got, want := tree(t, h.restore("latest")), h.sourceState(); !equal(got, want) {
		t.Fatalf("restore of latest: %s", diff(got, want))
	}
}

// fillDisk writes path until its file system has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func captureStatusFree(t *testing.T, h *host) int64 {
	t.Helper()
	code, out, errs := mmr(t, "status", "--config", h.config, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, errs)
	}
	var s struct {
		Free int64 `json:"data_dir_free_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	return s.Free
}

func captureStatus(t *testing.T, h *host) map[string]any {
	t.Helper()
	code, out, errs := mmr(t, "status", "--config", h.config, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, errs)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	c, _ := s["capture"].(map[string]any)
	if _, ok := s["data_dir_free_bytes"]; !ok || c == nil {
		t.Fatalf("status without capture or data_dir_free_bytes: %s", out)
	}
	return c
}

func metrics(t *testing.T, h *host) string {
	t.Helper()
	resp, err := http.Get("http://" + h.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, pattern string) string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
