package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestGitSink: with a short interval, the daemon commits the state at each boundary into
// the data repository and pushes to a bare remote; git fsck is clean, and every commit
// equals `restore --at <its boundary>`.
func TestGitSink(t *testing.T) {
	s3 := testenv.StartS3(t)
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	git(t, dir, "init", "-q", "--bare", remote)
	repo := filepath.Join(dir, "data-repo")
	h := newHost(t, hostOpts{s3: s3, extra: fmt.Sprintf("git:\n  repo: %s\n  remote: %s\n  interval: 5s\n", repo, remote)})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	d := h.start()
	for i := 0; i < 24; i++ {
		h.appendLine("main/sessions/s.jsonl", fmt.Sprintf("{\"i\":%d}\n", i))
		os.WriteFile(filepath.Join(h.src, "workspace", "report.md"), []byte(fmt.Sprintf("# report %d\n", i/3)), 0o644)
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(6 * time.Second) // past the last boundary and its grace
	d.stop(t)
	log := git(t, remote, "log", "--format=%H %s", "main")
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) < 2 {
		t.Fatalf("remote has %d commits:\n%s", len(lines), log)
	}
	git(t, remote, "fsck", "--strict")
	re := regexp.MustCompile(`^([0-9a-f]{40}) mmreplicate \S+ state at (\S+)$`)
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected commit line %q", l)
		}
		out := filepath.Join(t.TempDir(), "commit")
		os.MkdirAll(out, 0o755)
		arch := exec.Command("sh", "-c", fmt.Sprintf("git archive %s | tar -x -C %s", m[1], out))
		arch.Dir = remote
		if b, err := arch.CombinedOutput(); err != nil {
			t.Fatalf("archive: %v %s", err, b)
		}
		got := tree(t, out)
		want := tree(t, h.restore(m[2]))
		if dd := diff(got, want); dd != "" {
			t.Fatalf("commit %s (%s) differs from restore at its boundary: %s", m[1][:8], m[2], dd)
		}
	}
	t.Logf("%d commits, each equal to restore --at its boundary", len(lines))
}
