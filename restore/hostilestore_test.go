package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/hostile"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// TestHostileStores restores every crafted store, into a folder and in place (one root
// per source), and checks that nothing beside the target changed, that the restore
// fails naming what it refused, and that the well-formed file beside the hostile records
// is still restored.
func TestHostileStores(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		for _, c := range hostile.Cases() {
			name := c.Name
			if inPlace {
				name += "/in-place"
			}
			t.Run(name, func(t *testing.T) {
				l, err := hostile.NewLayout(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				st, err := file.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				if err := c.Build(ctx, st, "h", l.Outside); err != nil {
					t.Fatal(err)
				}
				before, err := hostile.Snapshot(l.Parent, l.Target)
				if err != nil {
					t.Fatal(err)
				}
				o := Options{Store: st, Host: "h", Latest: true, To: l.Target, Parallel: 4}
				sessions := filepath.Join(l.Target, hostile.Source)
				if inPlace {
					// Each source into its own folder; names that are not one folder
					// name have none and are left out.
					o.To, o.Roots = "", map[string]string{hostile.Source: sessions, "..": l.Target + "-dotdot"}
				}
				_, err = Run(ctx, o)
				t.Logf("restore: %v", err)
				after, serr := hostile.Snapshot(l.Parent, l.Target, l.Target+"-dotdot")
				if serr != nil {
					t.Fatal(serr)
				}
				if d := hostile.Diff(before, after); d != "" {
					t.Fatalf("outside the target changed (restore: %v):\n%s", err, d)
				}
				if _, err := os.Lstat(filepath.Join(l.Target+"-dotdot", "escaped.jsonl")); err == nil {
					t.Fatalf("wrote the records of source \"..\"")
				}
				switch {
				case c.Pass:
					if err != nil {
						t.Fatalf("restore of a well-formed state failed: %v", err)
					}
					b, err := os.ReadFile(filepath.Join(sessions, "d", "y.jsonl"))
					if err != nil || string(b) != "y\n" {
						t.Fatalf("d/y.jsonl: %q, %v", b, err)
					}
					if fi, err := os.Lstat(filepath.Join(sessions, "d")); err != nil || !fi.IsDir() {
						t.Fatalf("d is not a folder: %v", err)
					}
				case c.MayPass:
					if err != nil && !errors.Is(err, ErrIncomplete) {
						t.Logf("refused: %v", err)
					}
				case inPlace && c.Name == "source-with-slash":
					// The records' source is no source of this restore: left out.
				default:
					if err == nil {
						t.Fatalf("restore succeeded")
					}
					for _, w := range c.Want {
						if inPlace && strings.HasPrefix(w, "x/../..") {
							continue // not a source of this restore: left out, not refused
						}
						if !strings.Contains(err.Error(), w) {
							t.Fatalf("the error does not name %q: %v", w, err)
						}
					}
				}
				if c.Name != "manifest-hostile-keys" {
					if b, err := os.ReadFile(filepath.Join(sessions, "good.jsonl")); err != nil || string(b) != "{\"ok\":true}\n" {
						t.Fatalf("the well-formed file was not restored: %q, %v", b, err)
					}
				}
			})
		}
	}
}

// TestHostileStoresDrill runs the daily drill on every crafted store: it restores into
// its own folder and reads the restored files back against the recorded state (whose
// keys are the store's), and must neither write nor read beside that folder, and must
// fail naming what it refused.
func TestHostileStoresDrill(t *testing.T) {
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			l, err := hostile.NewLayout(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			st, err := file.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := c.Build(ctx, st, "h", l.Outside); err != nil {
				t.Fatal(err)
			}
			before, err := hostile.Snapshot(l.Parent, l.Target)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Drill(ctx, st, "h", time.Time{}, l.Target)
			t.Logf("drill: %v %q", err, res.Problems)
			after, serr := hostile.Snapshot(l.Parent, l.Target)
			if serr != nil {
				t.Fatal(serr)
			}
			if d := hostile.Diff(before, after); d != "" {
				t.Fatalf("outside the drill's folder changed (drill: %v):\n%s", err, d)
			}
			if left, _ := os.ReadDir(l.Target); len(left) != 0 {
				t.Fatalf("the drill left %d entries behind", len(left))
			}
			switch {
			case c.Pass:
				if err != nil || !res.OK() {
					t.Fatalf("drill of a well-formed state failed: %v %q", err, res.Problems)
				}
			case c.MayPass:
			default:
				if err == nil || res.OK() && !errors.Is(err, ErrIncomplete) {
					t.Fatalf("drill passed: %v %+v", err, res)
				}
				all := err.Error() + "\n" + strings.Join(res.Problems, "\n")
				for _, w := range c.Want {
					if !strings.Contains(all, w) {
						t.Fatalf("the drill does not name %q: %s", w, all)
					}
				}
			}
		})
	}
}

// TestPlacementAloneRefuses hands hostile entries straight to placement, past every
// check done while records are read, over a target that already holds links pointing out
// of it (--force, as an in-place restore over a damaged host would): placement must be
// safe on its own.
func TestPlacementAloneRefuses(t *testing.T) {
	l, err := hostile.NewLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := []byte("placed\n")
	ref := journal.ChunkRef{Hash: sha256.Sum256(data), Size: uint32(len(data))}
	if err := st.Put(ctx, manifest.BlobKey(ref.ID()), data); err != nil {
		t.Fatal(err)
	}
	sessions := filepath.Join(l.Target, "sessions")
	if err := os.MkdirAll(sessions, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"pre": l.Outside, "pre2": "../../outside",
		"over": filepath.Join(l.Outside, "sentinel.txt")} {
		if err := os.Symlink(target, filepath.Join(sessions, name)); err != nil {
			t.Fatal(err)
		}
	}
	file := func() *manifest.Entry {
		return &manifest.Entry{Kind: manifest.KindFile, Size: int64(len(data)), Mode: 0o644, Chunks: []journal.ChunkRef{ref}}
	}
	x := manifest.New("h")
	refused := map[string]*manifest.Entry{
		"sessions/../../p-escaped.txt":                      file(),
		"sessions/" + filepath.Join(l.Outside, "p-abs.txt"): file(),
		"sessions/nul\x00.txt":                              file(),
		"../p-up.txt":                                       file(),
		"sessions/../../p-dir":                              {Kind: manifest.KindDir},
		"sessions/ln/x.txt":                                 file(),
		"sessions/ln/sub":                                   {Kind: manifest.KindDir},
		"sessions/rl/x.txt":                                 file(),
		"sessions/big.bin":                                  {Kind: manifest.KindFile, Size: 1 << 50, Chunks: []journal.ChunkRef{ref}},
		"sessions/weird":                                    {Kind: "weird"},
		"sessions/pre/x.txt":                                file(),
		"sessions/pre2/y.txt":                               file(),
		"sessions/pre2/deeper/z.txt":                        file(),
	}
	for k, e := range refused {
		x.Files[k] = e
	}
	x.Files["sessions/ok.txt"] = file()
	x.Files["sessions/over"] = file() // replaces the link standing there, not its target
	x.Files["sessions/ln"] = &manifest.Entry{Kind: manifest.KindSymlink, Target: l.Outside}
	x.Files["sessions/rl"] = &manifest.Entry{Kind: manifest.KindSymlink, Target: "../../outside"}

	before, err := hostile.Snapshot(l.Parent, l.Target)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Store: st, Host: "h", Latest: true, To: l.Target, Force: true, Parallel: 4, Out: io.Discard}
	stage, err := os.MkdirTemp(l.Target, ".mmreplicate-restore-")
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(ctx, st, stage)
	b.seed(x)
	var res Result
	if err := finish(ctx, o, b, &res); err != nil {
		t.Fatal(err)
	}
	after, err := hostile.Snapshot(l.Parent, l.Target)
	if err != nil {
		t.Fatal(err)
	}
	if d := hostile.Diff(before, after); d != "" {
		t.Fatalf("outside the target changed:\n%s", d)
	}
	all := strings.Join(res.Problems, "\n")
	t.Logf("problems:\n%s", all)
	for k := range refused {
		if !strings.Contains(all, show(k)) {
			t.Errorf("%q is not named among the problems:\n%s", k, all)
		}
	}
	if len(res.Problems) != len(refused) {
		t.Errorf("%d problems for %d refused entries:\n%s", len(res.Problems), len(refused), all)
	}
	for _, name := range []string{"ok.txt", "over"} {
		fi, err := os.Lstat(filepath.Join(sessions, name))
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
		if b, _ := os.ReadFile(filepath.Join(sessions, name)); string(b) != string(data) {
			t.Fatalf("%s: %q", name, b)
		}
	}
	for name, want := range map[string]string{"ln": l.Outside, "rl": "../../outside"} {
		if got, err := os.Readlink(filepath.Join(sessions, name)); err != nil || got != want {
			t.Fatalf("link %s: %q %v, want %q", name, got, err, want)
		}
	}
}
