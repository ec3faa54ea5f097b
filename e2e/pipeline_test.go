package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

var files = []string{"main/sessions/a.jsonl", "scout/sessions/b.jsonl", "site-builder/sessions/deep/c.jsonl"}

// TestPointInTimeRestore appends to several JSONL files in rounds and checks that restore
// at the instant after each round gives each file's exact byte prefix of that moment.
func TestPointInTimeRestore(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	h.appendLine(files[0], `{"round":0}`+"\n")
	d := h.start()
	type snap struct {
		at    string
		state map[string]string
	}
	var snaps []snap
	for round := 1; round <= 4; round++ {
		for i, f := range files {
			if round == 1 && i == 2 {
				continue // a file created later than the others
			}
			for n := 0; n < round; n++ {
				h.appendLine(f, fmt.Sprintf(`{"round":%d,"file":%d,"n":%d,"text":"%s"}`+"\n", round, i, n, strings.Repeat("x", rand.IntN(300))))
			}
		}
		// A partial line must not travel until it is complete.
		h.appendLine(files[1], fmt.Sprintf(`{"round":%d,"partial":`, round))
		want := h.sourceState()
		h.waitStored(want, 20*time.Second)
		snaps = append(snaps, snap{time.Now().UTC().Format(time.RFC3339Nano), want})
		time.Sleep(50 * time.Millisecond)
		h.appendLine(files[1], "true}\n")
	}
	d.stop(t)
	for i, s := range snaps {
		got := tree(t, h.restore(s.at))
		if d := diff(got, s.state); d != "" {
			t.Errorf("restore at round %d (%s): %s", i+1, s.at, d)
		}
	}
	// Before anything was captured there is nothing to restore: a clear failure.
	code, _, errs := mmr(t, "restore", "--config", h.config, "--at", "2020-01-01T00:00:00Z", "--to", t.TempDir()+"/x")
	if code != 1 || !strings.Contains(errs, "nothing to restore") {
		t.Errorf("restore before the first record: exit %d, %q", code, errs)
	}
	// Filters and dry run.
	to := h.restore("latest", "--path", "scout/**")
	if got := tree(t, to); len(got) != 1 || got["sessions/"+files[1]] == "" {
		t.Errorf("--path filter restored %v", keys(got))
	}
	code, out, _ := mmr(t, "restore", "--config", h.config, "--at", "latest", "--dry-run")
	if code != 0 || !strings.Contains(out, "would restore 3 files") || !strings.Contains(out, "segment objects") {
		t.Errorf("dry run: exit %d, %q", code, out)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// writer appends numbered lines to the files until stopped.
type writer struct {
	h     *host
	stop  chan struct{}
	wg    sync.WaitGroup
	lines atomic.Int64
}

func startWriter(h *host) *writer {
	w := &writer{h: h, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for n := 0; ; n++ {
			select {
			case <-w.stop:
				return
			default:
			}
			f := files[n%len(files)]
			h.appendLine(f, fmt.Sprintf(`{"n":%d,"at":%d,"pad":"%s"}`+"\n", n, time.Now().UnixNano(), strings.Repeat("p", n%200)))
			w.lines.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	return w
}

func (w *writer) halt() { close(w.stop); w.wg.Wait() }

// TestKill9LosesAndDuplicatesNothing kills the daemon with SIGKILL while lines are being
// appended, several times, and checks the restore holds every line exactly once.
func TestKill9LosesAndDuplicatesNothing(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	w := startWriter(h)
	for i := 0; i < 4; i++ {
		d := h.start()
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		d.kill()
	}
	d := h.start()
	time.Sleep(500 * time.Millisecond)
	w.halt()
	want := h.sourceState()
	settle := time.Now()
	h.waitStored(want, 60*time.Second)
	t.Logf("stored everything %s after the writer stopped", time.Since(settle).Round(time.Millisecond))
	d.stop(t)
	got := tree(t, h.restore("latest"))
	if d := diff(got, want); d != "" {
		t.Fatalf("after kill -9 cycles: %s", d)
	}
	for _, content := range got {
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
			if seen[line] {
				t.Fatalf("line stored twice: %s", line)
			}
			seen[line] = true
		}
	}
	t.Logf("%d lines written across 5 daemon lives", w.lines.Load())
}

// TestHostLoss kills the daemon, deletes its data dir (the host is gone) and restores from
// S3 alone: every line written more than 2 s before the kill must be there. A new daemon
// on the empty data dir then continues the host's history.
func TestHostLoss(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	d := h.start()
	w := startWriter(h)
	time.Sleep(3 * time.Second)
	mustHave := h.sourceState() // written before this instant, which is > 2 s before the kill
	time.Sleep(2100 * time.Millisecond)
	d.kill()
	w.halt()
	if err := os.RemoveAll(h.data); err != nil {
		t.Fatal(err)
	}
	final := h.sourceState()
	got := tree(t, h.restore("latest"))
	for k, want := range mustHave {
		g := got[k]
		if !strings.HasPrefix(g, want) || !strings.HasPrefix(final[k], g) {
			t.Fatalf("%s: restored %d bytes; want at least the %d bytes written 2 s before the loss, as a prefix of the file", k, len(g), len(want))
		}
	}
	// The rebuilt host: same config, empty data dir. Its numbering continues.
	h.appendLine(files[0], `{"after":"rebuild"}`+"\n")
	d2 := h.start()
	want := h.sourceState()
	h.waitStored(want, 20*time.Second)
	d2.stop(t)
	if d := diff(tree(t, h.restore("latest")), want); d != "" {
		t.Fatalf("after rebuild: %s", d)
	}
}

// TestRotationAndTruncation: a file that is truncated, rewritten or replaced is sent whole
// again, never mixed with what was there before.
func TestRotationAndTruncation(t *testing.T) {
	h := newHost(t, hostOpts{})
	d := h.start()
	h.appendLine("r/log.jsonl", "{\"v\":1}\n{\"v\":2}\n")
	h.appendLine("r/rot.jsonl", "{\"old\":1}\n")
	h.appendLine("r/empty.jsonl", "")
	h.waitStored(h.sourceState(), 10*time.Second)
	// Truncate and write shorter content; rotate by rename + new file; rewrite same size.
	if err := os.WriteFile(filepath.Join(h.src, "r/log.jsonl"), []byte("{\"v\":9}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(h.src, "r/rot.jsonl"), filepath.Join(h.src, "r/rot.1.jsonl")); err != nil {
		t.Fatal(err)
	}
	h.appendLine("r/rot.jsonl", "{\"new\":1}\n")
	h.waitStored(h.sourceState(), 10*time.Second)
	tmp := filepath.Join(h.src, "r/.swap")
	os.WriteFile(tmp, []byte("{\"v\":8}\n"), 0o644)
	os.Rename(tmp, filepath.Join(h.src, "r/log.jsonl"))
	os.Remove(filepath.Join(h.src, "r/rot.1.jsonl"))
	want := h.sourceState()
	h.waitStored(want, 10*time.Second)
	d.stop(t)
	if want["sessions/r/log.jsonl"] != "{\"v\":8}\n" || want["sessions/r/empty.jsonl"] != "" {
		t.Fatalf("test set-up: %v", want)
	}
}
