package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/hostile"
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
