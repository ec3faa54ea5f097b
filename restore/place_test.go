package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// smallDisk mounts a tmpfs of size bytes on a new folder and returns it. Where mounting
// is not possible (not root) the test is skipped, except under CI=true, where it fails.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs for a full disk: %v", err)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestRestoreOnFullDisk restores more than the target's disk holds: the restore stops
// with the disk's error (not a damaged object), and no file is left in place cut short:
// every file is complete or absent, and no staging file is left behind.
func TestRestoreOnFullDisk(t *testing.T) {
	disk := smallDisk(t, "1m")
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	blob := func(data []byte) journal.ChunkRef {
		ref := journal.ChunkRef{Hash: sha256.Sum256(data), Size: uint32(len(data))}
		if err := st.Put(ctx, manifest.BlobKey(ref.ID()), data); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	small := []byte(strings.Repeat("s", 1000))
	var big []journal.ChunkRef
	for i := range 3 {
		big = append(big, blob([]byte(strings.Repeat(string(rune('a'+i)), 700<<10))))
	}
	put(t, st,
		journal.Record{Seq: 1, Time: t0.UnixNano(), Op: journal.OpFile, Source: "w", Path: "small.txt", Mode: 0o644,
			Offset: int64(len(small)), Data: journal.EncodeChunks([]journal.ChunkRef{blob(small)})},
		journal.Record{Seq: 2, Time: t0.UnixNano(), Op: journal.OpFile, Source: "w", Path: "big.bin", Mode: 0o644,
			Offset: 3 * 700 << 10, Data: journal.EncodeChunks(big)},
		app(3, 1, "a.jsonl", 0, "1\n"))
	to := filepath.Join(disk, "target")
	_, err = Run(ctx, Options{Store: st, Host: "h", Latest: true, To: to, Parallel: 1})
	t.Logf("restore: %v", err)
	if err == nil || errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("restore onto a full disk: %v, want the disk's error", err)
	}
	want := map[string]int64{"small.txt": int64(len(small)), "big.bin": 3 * 700 << 10, "a.jsonl": 2}
	entries, _ := os.ReadDir(filepath.Join(to, "w"))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := want[e.Name()]; !ok || fi.Size() != n {
			t.Errorf("%s: %d bytes left in place (want %d, or nothing)", e.Name(), fi.Size(), n)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(to, ".mmreplicate-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
}
