package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/store"
)

// chunkRecs is a batch holding one whole file made of two new chunks.
func chunkRecs(seq uint64, a, b []byte) ([]journal.Record, []journal.ChunkRef) {
	now := time.Now().UnixNano()
	ra := journal.ChunkRef{Hash: sha256.Sum256(a), Size: uint32(len(a))}
	rb := journal.ChunkRef{Hash: sha256.Sum256(b), Size: uint32(len(b))}
	refs := []journal.ChunkRef{ra, rb}
	return []journal.Record{
		{Seq: seq, Time: now, Op: journal.OpChunk, Path: ra.ID(), Data: a},
		{Seq: seq + 1, Time: now, Op: journal.OpChunk, Path: rb.ID(), Data: b},
		{Seq: seq + 2, Time: now, Op: journal.OpFile, Source: "src", Path: "f.bin", Offset: int64(len(a) + len(b)), Mode: 0o644, Data: journal.EncodeChunks(refs)},
	}, refs
}

// A batch with new chunks is one object: no blob is written, the chunks are read back by
// ranged reads through the locations the sink's manifest carries, and a retried batch
// (its first upload stored, the acknowledgement lost) rewrites the same key with the same
// bytes, so the chunks its records locate there are still there.
func TestOneObjectPerBatchAndRetry(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	s := &Sink{Store: st, Host: "h", Target: "t"}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := bytes.Repeat([]byte("a"), 5000), []byte("second chunk")
	recs, refs := chunkRecs(1, a, b)
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	all := keys(t, st, "")
	if len(all) != 1 || !bytes.HasPrefix([]byte(all[0]), []byte(segment.Prefix("h"))) {
		t.Fatalf("stored objects %v, want one segment", all)
	}
	first, err := st.Get(ctx, all[0])
	if err != nil {
		t.Fatal(err)
	}
	// The retry: the same records again.
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	again, _ := st.Get(ctx, all[0])
	if got := keys(t, st, ""); len(got) != 1 || !bytes.Equal(first, again) {
		t.Fatalf("retry stored %v (same bytes: %v)", got, bytes.Equal(first, again))
	}
	s.Flush(ctx)
	x, _, err := store.LoadIndex(ctx, st, "h", time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]byte{a, b} {
		got, err := store.ReadChunk(ctx, st, x.Packs, refs[i])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: %q, %v", i, got, err)
		}
	}
	// A later batch that refers to the same content packs nothing new.
	now := time.Now().UnixNano()
	later := []journal.Record{{Seq: 4, Time: now, Op: journal.OpFile, Source: "src", Path: "g.bin", Offset: int64(len(a) + len(b)), Data: journal.EncodeChunks(refs)}}
	if err := s.Write(ctx, later); err != nil {
		t.Fatal(err)
	}
	if s.chunksPacked != 4 { // two in the batch, the same two in its retry, none since
		t.Fatalf("%d chunks packed, want 4", s.chunksPacked)
	}
	// A damaged location is no silent success: the hash check names the chunk.
	bad := map[string]manifest.Pack{refs[0].ID(): {Key: x.Packs[refs[0].ID()].Key, Off: x.Packs[refs[0].ID()].Off + 1}}
	if _, err := store.ReadChunk(ctx, st, bad, refs[0]); err == nil {
		t.Fatal("a wrong offset read back as the chunk")
	}
}
