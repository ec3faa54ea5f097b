package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// drillStore holds one of each kind: an append file, a whole file of two chunks, a
// link and a folder, then a later change, so a drill at T must pick the right state.
func drillStore(t *testing.T, st objstore.Store) (chunks [][]byte) {
	t.Helper()
	ctx := context.Background()
	chunks = [][]byte{[]byte("first chunk of a whole file\n"), []byte("second chunk\n")}
	var refs []journal.ChunkRef
	for _, c := range chunks {
		ref := journal.ChunkRef{Hash: sha256.Sum256(c), Size: uint32(len(c))}
		if err := st.Put(ctx, manifest.BlobKey(ref.ID()), c); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	at := func(sec int) int64 { return t0.Add(time.Duration(sec) * time.Second).UnixNano() }
	put(t, st,
		app(1, 0, "a.jsonl", 0, "1\n"),
		journal.Record{Seq: 2, Time: at(1), Op: journal.OpDir, Source: "w", Path: "d", Mode: 0o750},
		journal.Record{Seq: 3, Time: at(1), Op: journal.OpFile, Source: "w", Path: "d/f.bin", Mode: 0o640,
			Offset: int64(len(chunks[0]) + len(chunks[1])), Data: journal.EncodeChunks(refs)},
		journal.Record{Seq: 4, Time: at(1), Op: journal.OpSymlink, Source: "w", Path: "link", Data: []byte("d/f.bin")},
	)
	put(t, st, app(5, 2, "a.jsonl", 2, "2\n"), journal.Record{Seq: 6, Time: at(2), Op: journal.OpDelete, Source: "w", Path: "link"})
	return chunks
}

func TestDrillClean(t *testing.T) {
	st, _ := file.New(t.TempDir())
	drillStore(t, st)
	tmp := t.TempDir()
	for _, c := range []struct {
		at    time.Time
		files int
	}{
		{t0.Add(time.Second), 3},     // a.jsonl, f.bin, link
		{t0.Add(2 * time.Second), 2}, // the link is gone
		{time.Time{}, 2},             // latest
	} {
		res, err := Drill(context.Background(), st, "h", c.at, tmp)
		if err != nil || !res.OK() {
			t.Fatalf("at %v: %v %+v", c.at, err, res)
		}
		if res.Files != c.files || res.Bytes == 0 || res.Duration <= 0 {
			t.Fatalf("at %v: %+v, want %d files", c.at, res, c.files)
		}
		if !res.OldestRestorable.Equal(t0) || !res.NewestRestorable.Equal(t0.Add(2*time.Second)) {
			t.Fatalf("window %v - %v", res.OldestRestorable, res.NewestRestorable)
		}
		if c.at.IsZero() && !res.At.Equal(res.NewestRestorable) {
			t.Fatalf("latest drill At = %v", res.At)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("drill left %d entries in its temp folder", len(entries))
	}
}

func TestDrillReportsTamperedBlob(t *testing.T) {
	dir := t.TempDir()
	st, _ := file.New(dir)
	chunks := drillStore(t, st)
	// Same name, same length, other content: only the hashes can tell.
	key := manifest.BlobKey(journal.ChunkRef{Hash: sha256.Sum256(chunks[1])}.ID())
	bad := []byte(strings.ToUpper(string(chunks[1])))
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(key)), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Drill(context.Background(), st, "h", time.Time{}, t.TempDir())
	if !errors.Is(err, ErrDrillFailed) || res.OK() {
		t.Fatalf("tampered blob passed the drill: %v %+v", err, res)
	}
	all := strings.Join(res.Problems, "\n")
	if !strings.Contains(all, "w/d/f.bin") || !strings.Contains(all, key) {
		t.Fatalf("problems do not name the file and the object:\n%s", all)
	}
	if !strings.Contains(err.Error(), "w/d/f.bin") {
		t.Fatalf("error does not name the file: %v", err)
	}
	if strings.Contains(all, "a.jsonl") {
		t.Fatalf("an undamaged file was reported:\n%s", all)
	}
}

func TestDrillChecksAgainstRecordedHashes(t *testing.T) {
	dir := t.TempDir()
	st, _ := file.New(dir)
	drillStore(t, st)
	ctx := context.Background()
	x, _, err := LoadIndex(ctx, st, "h", time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the restored folder itself, as a faulty restore would.
	to := t.TempDir()
	if _, err := Run(ctx, Options{Store: st, Host: "h", Latest: true, To: to}); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(to, "w", "d", "f.bin")
	b, _ := os.ReadFile(f)
	b[len(b)-2] ^= 1
	os.WriteFile(f, b, 0o640)
	os.WriteFile(filepath.Join(to, "w", "stray"), []byte("x"), 0o644)
	os.Truncate(filepath.Join(to, "sessions", "a.jsonl"), 2)
	_, _, problems, err := checkRestored(ctx, to, x)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{"w/d/f.bin: chunk 1", "w/stray: restored but not in the recorded state", "sessions/a.jsonl: 2 bytes, recorded 4"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
}

func TestDrillNothing(t *testing.T) {
	st, _ := file.New(t.TempDir())
	if _, err := Drill(context.Background(), st, "h", time.Time{}, t.TempDir()); err == nil || errors.Is(err, ErrDrillFailed) {
		t.Fatalf("empty store: %v, want an error that is not a failed drill", err)
	}
}
