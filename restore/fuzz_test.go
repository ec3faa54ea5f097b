package restore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/mmreplicate/mmreplicate/internal/hostile"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

// fuzzSources and fuzzTargets are the names records pick from: well-formed ones and the
// ones a hostile store would try.
var (
	fuzzSources = []string{"sessions", "sessions", "..", "", ".", "a/b", "x/../..", "/abs", "nul\x00"}
	fuzzTargets = []string{"OUTSIDE", "../../outside", "../../outside/sentinel.txt", "d", ".", "/", ""}
	fuzzOffsets = []int64{0, 0, 0, 1, 2, 7, 4096, 1 << 40, -1}
)

// fuzzRecords reads records from fuzz bytes: per record an op, a source, a path, an
// offset, a mode and data, each from a few bytes. OpFile records refer to blobs stored
// here (their data names how many), or carry raw bytes as their chunk list.
func fuzzRecords(b []byte, outside string, blob func([]byte) journal.ChunkRef) []journal.Record {
	next := func() byte {
		if len(b) == 0 {
			return 0
		}
		c := b[0]
		b = b[1:]
		return c
	}
	take := func(n int) []byte {
		n = min(n, len(b))
		out := b[:n]
		b = b[n:]
		return out
	}
	var recs []journal.Record
	for seq := uint64(1); len(b) > 0 && seq < 64; seq++ {
		r := journal.Record{Seq: seq, Time: int64(seq) * 1e9}
		r.Op = journal.Op(next()%8 + 1)
		r.Source = fuzzSources[int(next())%len(fuzzSources)]
		r.Path = string(take(int(next() % 24)))
		r.Offset = fuzzOffsets[int(next())%len(fuzzOffsets)]
		r.Mode = uint32(next())<<3 | 0o400
		data := take(int(next() % 32))
		switch r.Op {
		case journal.OpSymlink:
			t := fuzzTargets[int(next())%len(fuzzTargets)]
			if t == "OUTSIDE" {
				t = outside
			}
			r.Data = []byte(t)
		case journal.OpFile:
			if next()%4 == 0 {
				r.Data = data // a raw chunk list: mostly malformed
				break
			}
			var refs []journal.ChunkRef
			var size int64
			for i := range int(next() % 3) {
				ref := blob(append([]byte{byte(i)}, data...))
				refs = append(refs, ref)
				size += int64(ref.Size)
			}
			r.Data = journal.EncodeChunks(refs)
			if next()%8 != 0 {
				r.Offset = size // else: a declared size that does not match
			}
		case journal.OpChunk:
			r.Data = data
		default:
			r.Data = data
		}
		recs = append(recs, r)
	}
	return recs
}

// FuzzRestore restores arbitrary records into a folder inside a parent folder that also
// holds a sentinel folder, and checks that nothing beside the target changed and that
// nothing panicked.
func FuzzRestore(f *testing.F) {
	rec := func(op journal.Op, src, path byte, plen byte, p string, off, mode, dlen byte, d string, extra ...byte) []byte {
		out := []byte{byte(op - 1), src, plen}
		out = append(out, p...)
		out = append(out, off, mode, dlen)
		out = append(out, d...)
		return append(out, extra...)
	}
	// A link out of the target, then a file inside it; a folder record climbing out; a
	// link replaced by a folder and back; an absolute path; a whole file.
	f.Add(append(rec(journal.OpSymlink, 0, 0, 4, "link", 0, 0, 0, "", 0),
		rec(journal.OpAppend, 0, 0, 12, "link/x.jsonl", 0, 0, 2, "x\n")...))
	f.Add(rec(journal.OpDir, 0, 0, 17, "../../escaped-dir", 0, 0, 0, ""))
	f.Add(append(append(append(rec(journal.OpSymlink, 0, 0, 1, "d", 0, 0, 0, "", 1),
		rec(journal.OpDir, 0, 0, 1, "d", 0, 0, 0, "")...),
		rec(journal.OpAppend, 0, 0, 3, "d/x", 0, 0, 2, "x\n")...),
		rec(journal.OpSymlink, 0, 0, 1, "d", 0, 0, 0, "", 0)...))
	f.Add(rec(journal.OpAppend, 7, 0, 5, "a.txt", 0, 0, 2, "x\n"))
	f.Add(rec(journal.OpFile, 0, 0, 5, "f.bin", 0, 0, 3, "abc", 1, 2, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := hostile.NewLayout(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		st, err := file.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		blob := func(data []byte) journal.ChunkRef {
			ref := journal.ChunkRef{Hash: sha256.Sum256(data), Size: uint32(len(data))}
			if len(data) > 0 && data[len(data)-1]%5 == 0 {
				data = binary.LittleEndian.AppendUint32(nil, 0xbad) // stored content that does not match
			}
			if err := st.Put(ctx, manifest.BlobKey(ref.ID()), data); err != nil {
				t.Fatal(err)
			}
			return ref
		}
		recs := fuzzRecords(b, l.Outside, blob)
		if len(recs) == 0 {
			return
		}
		// Two segments, so that records apply across a segment boundary too.
		half := len(recs) / 2
		for _, part := range [][]journal.Record{recs[:half], recs[half:]} {
			if len(part) == 0 {
				continue
			}
			if err := st.Put(ctx, segment.Key("h", part), segment.Encode(part)); err != nil {
				t.Fatal(err)
			}
		}
		before, err := hostile.Snapshot(l.Parent, l.Target)
		if err != nil {
			t.Fatal(err)
		}
		_, rerr := Run(ctx, Options{Store: st, Host: "h", Latest: true, To: l.Target, Parallel: 2})
		after, err := hostile.Snapshot(l.Parent, l.Target)
		if err != nil {
			t.Fatal(err)
		}
		if d := hostile.Diff(before, after); d != "" {
			t.Fatalf("outside the target changed (restore: %v):\n%s", rerr, d)
		}
	})
}
