package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestTenThousandFiles: a tree of 10,000 files in 1,000 folders is watched within the
// default inotify limits and replicated; after a history of changes, a restore at an
// instant deep in it starts from a manifest and reads only the segments after it.
func TestTenThousandFiles(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3, extra: "  manifest_interval: 1s\n"})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	content := func(i, round int) []byte {
		return []byte(fmt.Sprintf("file %d round %d %s\n", i, round, strings.Repeat("x", i%4000)))
	}
	path := func(i int) string { return filepath.Join(h.src, fmt.Sprintf("d%03d/f%05d.txt", i%1000, i)) }
	for i := 0; i < 10000; i++ {
		os.MkdirAll(filepath.Dir(path(i)), 0o755)
		if err := os.WriteFile(path(i), content(i, 0), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	d := h.start()
	waitStatus(t, h, func(s map[string]any) bool {
		src := s["sources"].([]any)[0].(map[string]any)
		sink := s["sinks"].([]any)[0].(map[string]any)
		return src["files_watched"].(float64) == 10000 && sink["backlog_records"].(float64) == 0
	})
	t.Logf("10,000 files captured and stored in %s", time.Since(start).Round(time.Millisecond))
	var deep string
	for round := 1; round <= 4; round++ {
		for i := round; i < 10000; i += 97 {
			os.WriteFile(path(i), content(i, round), 0o644)
		}
		time.Sleep(1500 * time.Millisecond) // past the manifest interval
		if round == 3 {
			waitStatus(t, h, func(s map[string]any) bool {
				return s["sinks"].([]any)[0].(map[string]any)["backlog_records"].(float64) == 0
			})
			deep = time.Now().UTC().Format(time.RFC3339Nano)
			time.Sleep(100 * time.Millisecond)
		}
	}
	d.stop(t)
	to := filepath.Join(t.TempDir(), "deep")
	code, out, errs := mmr(t, "restore", "--config", h.config, "--at", deep, "--to", to)
	if code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, errs)
	}
	m := regexp.MustCompile(`restored (\d+) files .* from manifest \S+, (\d+) segment objects`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("restore did not start from a manifest: %s", out)
	}
	segs, _ := strconv.Atoi(m[2])
	if m[1] != "10000" || segs > 3 {
		t.Fatalf("restore at a deep instant: %s (want 10000 files from one manifest and at most a few segments)", out)
	}
	for _, i := range []int{0, 3, 100, 9999, 3 + 97*5} {
		want := content(i, 0)
		for round := 1; round <= 3; round++ {
			if i >= round && (i-round)%97 == 0 {
				want = content(i, round)
			}
		}
		got, _ := os.ReadFile(filepath.Join(to, "sessions", fmt.Sprintf("d%03d/f%05d.txt", i%1000, i)))
		if !bytes.Equal(got, want) {
			t.Fatalf("file %d at the deep instant: %q", i, got)
		}
	}
}

// waitStatus polls the daemon's /status until ok says so.
func waitStatus(t *testing.T, h *host, ok func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + h.http + "/status")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = map[string]any{}
			if json.Unmarshal(b, &last) == nil && ok(last) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("status never got there: %v", last)
}
