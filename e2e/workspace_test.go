package e2e

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// workspaceTree reads files (content and mode), links and folders under root.
func workspaceTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil // a folder that is not there (yet) is an empty tree
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link -> " + target
		case fi.IsDir():
			out[rel+"/"] = "dir"
		default:
			b, _ := os.ReadFile(p)
			out[rel] = fi.Mode().Perm().String() + " " + string(b)
		}
		return nil
	})
	return out
}

// TestWorkspaceFiles: whole files created, rewritten by temp file + rename, renamed (files
// and folders), deleted, chmodded; empty files and folders; symlinks; a large file edited
// in the middle. Restore at several instants is byte-exact with modes.
func TestWorkspaceFiles(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3, extra: "  manifest_interval: 1s\n"})
	// This host replicates everything under its source, not only sessions.
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	ws := h.src
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(ws, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		tmp := p + ".tmp-write"
		if err := os.WriteFile(tmp, data, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(tmp, mode)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 12<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	write("site/index.html", []byte("<h1>v1</h1>"), 0o644)
	write("reports/q1.md", []byte("# Q1\n"), 0o600)
	write("empty.txt", nil, 0o644)
	write("data/big.bin", big, 0o644)
	os.MkdirAll(filepath.Join(ws, "drafts/empty-folder"), 0o755)
	os.Symlink("reports/q1.md", filepath.Join(ws, "latest-report"))
	h.appendLine("main/sessions/s.jsonl", "{\"a\":1}\n")
	d := h.start()
	var snaps []struct {
		at   string
		want map[string]string
	}
	settle := func() {
		deadline := time.Now().Add(30 * time.Second)
		want := workspaceTree(t, ws)
		for {
			to := filepath.Join(t.TempDir(), "poll")
			code, out, errs := mmr(t, "restore", "--config", h.config, "--at", "latest", "--to", to)
			got := workspaceTree(t, filepath.Join(to, "sessions"))
			if code == 0 && diff(got, want) == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store never caught up: %s\nlast restore (exit %d) said: %s%s", diff(got, want), code, out, errs)
			}
			time.Sleep(300 * time.Millisecond)
		}
		snaps = append(snaps, struct {
			at   string
			want map[string]string
		}{time.Now().UTC().Format(time.RFC3339Nano), want})
		time.Sleep(50 * time.Millisecond)
	}
	settle()
	write("site/index.html", []byte("<h1>v2, rewritten via rename</h1>"), 0o644)
	os.Chmod(filepath.Join(ws, "reports/q1.md"), 0o640)
	copy(big[6<<20:], []byte("an edit in the middle of a large file"))
	write("data/big.bin", big, 0o644)
	os.Rename(filepath.Join(ws, "reports"), filepath.Join(ws, "archive"))
	os.Remove(filepath.Join(ws, "empty.txt"))
	settle()
	os.RemoveAll(filepath.Join(ws, "site"))
	write("archive/q2.md", []byte("# Q2\n"), 0o644)
	settle()
	d.stop(t)
	for i, s := range snaps {
		got := workspaceTree(t, filepath.Join(h.restore(s.at), "sessions"))
		if dd := diff(got, s.want); dd != "" {
			t.Errorf("restore at step %d: %s", i, dd)
		}
	}
	// verify reads every object and finds nothing wrong.
	code, out, errs := mmr(t, "verify", "--config", h.config)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
}
