package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/internal/hostile"
	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
)

// hostileRestore runs `mmreplicate restore` on a crafted store and checks what a user
// must be able to rely on: nothing beside the target changes, the exit status is 1 with
// one line naming what was refused (0 for a well-formed state), and no stack trace.
func hostileRestore(t *testing.T, c hostile.Case, l hostile.Layout, storeCfg string, inPlace bool) {
	t.Helper()
	sources := filepath.Join(l.Target, hostile.Source)
	cfg := filepath.Join(t.TempDir(), "mmreplicate.yml")
	body := "host: hostile\ndata_dir: " + filepath.Join(t.TempDir(), "data") + "\nhttp:\n  listen: off\n" +
		"sources:\n  - name: " + hostile.Source + "\n    path: " + sources + "\n" + storeCfg
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := hostile.Snapshot(l.Parent, l.Target)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"restore", "--config", cfg, "--at", "latest"}
	if inPlace {
		args = append(args, "--in-place")
	} else {
		args = append(args, "--to", l.Target)
	}
	code, out, errs := mmr(t, args...)
	after, err := hostile.Snapshot(l.Parent, l.Target)
	if err != nil {
		t.Fatal(err)
	}
	if d := hostile.Diff(before, after); d != "" {
		t.Fatalf("outside the target changed (exit %d, %s):\n%s", code, errs, d)
	}
	if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine ") {
		t.Fatalf("restore panicked:\n%s", errs)
	}
	switch {
	case c.Pass:
		if code != 0 {
			t.Fatalf("a well-formed state: exit %d\n%s%s", code, out, errs)
		}
		if b, err := os.ReadFile(filepath.Join(sources, "d", "y.jsonl")); err != nil || string(b) != "y\n" {
			t.Fatalf("d/y.jsonl: %q %v", b, err)
		}
	case c.MayPass:
		if code != 0 && code != 1 {
			t.Fatalf("exit %d\n%s", code, errs)
		}
	default:
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
		}
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "mmreplicate restore: ") {
			t.Fatalf("the last line of stderr is not the error: %q", errs)
		}
		for _, w := range c.Want {
			if !strings.Contains(last, w) {
				t.Fatalf("the error does not name %q: %s", w, last)
			}
		}
	}
}

// TestHostileStoreRestore restores every crafted store from a folder store, into --to
// and --in-place.
func TestHostileStoreRestore(t *testing.T) {
	for _, c := range hostile.Cases() {
		for _, inPlace := range []bool{false, true} {
			name := c.Name
			if inPlace {
				name += "/in-place"
			}
			t.Run(name, func(t *testing.T) {
				if inPlace && strings.HasPrefix(c.Name, "source-") {
					t.Skip("the records' source is not in the config: an in-place restore leaves it out")
				}
				l, err := hostile.NewLayout(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				st, err := file.New(dir)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Build(context.Background(), st, "hostile", l.Outside); err != nil {
					t.Fatal(err)
				}
				cc := c
				if inPlace {
					// Keys of sources the config does not have are left out, not refused.
					cc.Want = nil
					for _, w := range c.Want {
						if !strings.HasPrefix(w, "../") {
							cc.Want = append(cc.Want, w)
						}
					}
				}
				hostileRestore(t, cc, l, "s3:\n  url: file://"+dir+"\n", inPlace)
			})
		}
	}
}

// TestHostileStoreRestoreS3 serves a few crafted stores from the real S3 server.
func TestHostileStoreRestoreS3(t *testing.T) {
	s3 := testenv.StartS3(t)
	bucket := "mmr-hostile"
	s3.CreateBucket(t, bucket)
	ctx := context.Background()
	for _, c := range hostile.Cases() {
		switch c.Name {
		case "link-out-then-file", "link-folder-link", "nul-byte", "chunk-hash-mismatch", "manifest-hostile-keys", "link-then-folder":
		default:
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			prefix := "p-" + c.Name
			var st objstore.Store
			st, err := s3store.New(ctx, s3store.Options{Bucket: bucket, Prefix: prefix, Endpoint: s3.Endpoint,
				AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			l, err := hostile.NewLayout(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Build(ctx, st, "hostile", l.Outside); err != nil {
				t.Fatal(err)
			}
			hostileRestore(t, c, l, "s3:\n  url: s3://"+bucket+"/"+prefix+"\n  endpoint: "+s3.Endpoint+
				"\n  access_key_id: "+s3.AccessKey+"\n  secret_access_key: "+s3.SecretKey+"\n", false)
		})
	}
}
