package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestInPlaceRestoreSeedsOnlyRestored rebuilds a host over a source folder that holds a
// file the store never had: `restore --in-place --force` must record as replicated only
// what it wrote, so the first daemon start sends the local-only file (and not the
// restored one again).
func TestInPlaceRestoreSeedsOnlyRestored(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	h.appendLine("stored.jsonl", `{"turn":1}`+"\n")
	d := h.start()
	h.waitStored(h.sourceState(), 30*time.Second)
	d.stop(t)

	// The host is rebuilt: a new data_dir, and a file the store never saw.
	if err := os.RemoveAll(h.data); err != nil {
		t.Fatal(err)
	}
	h.appendLine("local-only.jsonl", `{"never":"stored"}`+"\n")
	if err := os.Remove(filepath.Join(h.src, "stored.jsonl")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := mmr(t, "restore", "--config", h.config, "--at", "latest", "--in-place", "--force")
	if code != 0 {
		t.Fatalf("restore --in-place: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "recorded 1 restored paths as replicated") {
		t.Errorf("restore output: %q, want exactly the one restored path recorded", out)
	}
	want := h.sourceState()
	if len(want) != 2 {
		t.Fatalf("sources after the restore: %v, want the restored and the local-only file", want)
	}
	d = h.start()
	h.waitStored(want, 30*time.Second)
	d.stop(t)
}
