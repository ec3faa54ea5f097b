package restore

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

func TestVerifyFindsDamage(t *testing.T) {
	dir := t.TempDir()
	st, _ := file.New(dir)
	ctx := context.Background()
	chunk := []byte("chunk content")
	ref := journal.ChunkRef{Hash: sha256.Sum256(chunk), Size: uint32(len(chunk))}
	if err := st.Put(ctx, manifest.BlobKey(ref.ID()), chunk); err != nil {
		t.Fatal(err)
	}
	put(t, st, app(1, 0, "a.jsonl", 0, "1\n"))
	seg2 := put(t, st, journal.Record{Seq: 2, Time: t0.UnixNano() + 1, Op: journal.OpFile, Source: "w", Path: "f.bin", Offset: int64(len(chunk)), Data: journal.EncodeChunks([]journal.ChunkRef{ref})})
	put(t, st, app(3, 2, "a.jsonl", 2, "2\n"))
	rep, err := Verify(ctx, st, nil, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Hosts) != 1 || rep.Hosts[0].Records != 3 || rep.Hosts[0].Oldest.IsZero() || rep.Blobs != 1 {
		t.Fatalf("clean store: %+v", rep)
	}
	// Delete the blob and damage the last segment.
	os.Remove(filepath.Join(dir, filepath.FromSlash(manifest.BlobKey(ref.ID()))))
	segs, _, _ := Segments(ctx, st, "h")
	last := filepath.Join(dir, filepath.FromSlash(segs[2].Key))
	b, _ := os.ReadFile(last)
	b[len(b)-2] ^= 0xff
	os.WriteFile(last, b, 0o644)
	rep, err = Verify(ctx, st, nil, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(append(rep.Problems, rep.Hosts[0].Problems...), "\n")
	if rep.OK() || !strings.Contains(all, manifest.BlobKey(ref.ID())+": missing") || !strings.Contains(all, segs[2].Key) {
		t.Fatalf("damage not reported by name: %s", all)
	}
	// A missing segment is a gap.
	os.Remove(filepath.Join(dir, filepath.FromSlash(seg2)))
	rep, _ = Verify(ctx, st, nil, 4, false)
	if all := strings.Join(rep.Hosts[0].Problems, "\n"); !strings.Contains(all, "records 2-2 missing") {
		t.Fatalf("gap not reported: %s", all)
	}
}

// Packed chunks count as found when their segment is listed, and a deep verify reads
// them back by range: a damaged byte in the pack is named.
func TestVerifyPackedChunks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := file.New(dir)
	body := []byte(strings.Repeat("packed chunk content ", 50))
	ref := journal.ChunkRef{Hash: sha256.Sum256(body), Size: uint32(len(body))}
	recs := []journal.Record{
		{Seq: 1, Time: 1e9, Op: journal.OpChunk, Path: ref.ID(), Data: body},
		{Seq: 2, Time: 1e9, Op: journal.OpFile, Source: "s", Path: "f.txt", Offset: int64(len(body)), Mode: 0o644, Data: journal.EncodeChunks([]journal.ChunkRef{ref})},
	}
	key := segment.Key("h", recs)
	obj, _ := segment.EncodePacked(key, recs, func(string) bool { return true })
	if err := st.Put(ctx, key, obj); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, st, nil, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Blobs != 1 || rep.BlobBytes != int64(len(body)) {
		t.Fatalf("clean store: %+v", rep)
	}
	obj[segment.PackStart+10] ^= 0xff
	if err := st.Put(ctx, key, obj); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(ctx, st, nil, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], ref.ID()) {
		t.Fatalf("damaged pack not named: %+v", rep)
	}
}
