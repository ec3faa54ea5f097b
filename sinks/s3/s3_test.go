package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/sinks"
)

func newStore(t *testing.T) *file.Store {
	t.Helper()
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func rec(seq uint64, op journal.Op, path string, off int64, data string) journal.Record {
	return journal.Record{Seq: seq, Time: int64(seq) * int64(time.Second), Op: op, Source: "src", Path: path, Offset: off, Data: []byte(data)}
}

func keys(t *testing.T, st objstore.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := st.List(context.Background(), prefix, func(o objstore.ObjectInfo) error {
		out = append(out, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// The sink checks every record before it stores anything: a short or non-hex chunk id, a
// chunk whose data does not match its id and a path that climbs out are refused with a
// permanent error naming host and sequence number, and nothing reaches the store.
func TestWriteRejectsMalformedRecords(t *testing.T) {
	good := []byte("chunk bytes")
	sum := sha256.Sum256(good)
	id := journal.ChunkRef{Hash: sum}.ID()
	cases := map[string]journal.Record{
		"short id":      {Seq: 7, Op: journal.OpChunk, Path: "a", Data: []byte("x")},
		"empty id":      {Seq: 7, Op: journal.OpChunk, Path: "", Data: []byte("x")},
		"non-hex id":    {Seq: 7, Op: journal.OpChunk, Path: strings.Repeat("z", 64), Data: good},
		"hash mismatch": {Seq: 7, Op: journal.OpChunk, Path: id, Data: []byte("other bytes")},
		"climbs out":    rec(7, journal.OpAppend, "../../etc/x", 0, "x"),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			st := newStore(t)
			s := &Sink{Store: st, Host: "h1", Target: "t", Log: slog.New(slog.DiscardHandler)}
			if err := s.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			batch := []journal.Record{{Seq: 6, Op: journal.OpChunk, Path: id, Data: good}, bad}
			err := s.Write(context.Background(), batch)
			if err == nil || !errors.Is(err, sinks.ErrPermanent) || !strings.Contains(err.Error(), "host h1") || !strings.Contains(err.Error(), "record 7") {
				t.Fatalf("Write = %v, want a permanent error naming host h1 and record 7", err)
			}
			if k := keys(t, st, ""); len(k) != 0 {
				t.Fatalf("a refused batch stored %v", k)
			}
		})
	}
}

// A sink that starts on a store whose history has a gap says so and writes no manifest
// that would hide it; segments are still stored.
func TestOpenOnGapWritesNoManifest(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	put := func(recs ...journal.Record) {
		if err := st.Put(ctx, segment.Key("h1", recs), segment.Encode(recs)); err != nil {
			t.Fatal(err)
		}
	}
	put(rec(1, journal.OpAppend, "a.jsonl", 0, "1\n"), rec(2, journal.OpAppend, "a.jsonl", 2, "2\n"))
	put(rec(5, journal.OpAppend, "a.jsonl", 6, "5\n")) // 3-4 lost
	var logs bytes.Buffer
	s := &Sink{Store: st, Host: "h1", Target: "t", ManifestRecords: 1, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if g := s.Gap(); !strings.Contains(g, "records 3-4 missing") {
		t.Fatalf("Gap() = %q, want records 3-4 named", g)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "records 3-4 missing") {
		t.Fatalf("no error logged about the gap:\n%s", logs.String())
	}
	if err := s.Write(ctx, []journal.Record{rec(6, journal.OpAppend, "b.jsonl", 0, "6\n")}); err != nil {
		t.Fatal(err)
	}
	s.Flush(ctx)
	if m := keys(t, st, manifest.Prefix("h1")); len(m) != 0 {
		t.Fatalf("manifests written over a gap: %v", m)
	}
	if segs := keys(t, st, segment.Prefix("h1")); len(segs) != 3 {
		t.Fatalf("segments %v, want 3", segs)
	}

	// A store without a gap gets its manifest.
	st2 := newStore(t)
	s2 := &Sink{Store: st2, Host: "h1", Target: "t", ManifestRecords: 1, Log: slog.New(slog.DiscardHandler)}
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(ctx, []journal.Record{rec(1, journal.OpAppend, "b.jsonl", 0, "1\n")}); err != nil {
		t.Fatal(err)
	}
	if s2.Gap() != "" || len(keys(t, st2, manifest.Prefix("h1"))) != 1 {
		t.Fatalf("gap %q, manifests %v: want none and one", s2.Gap(), keys(t, st2, manifest.Prefix("h1")))
	}
}
