package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/journal"
)

func chunkOf(b []byte) (journal.ChunkRef, string) {
	ref := journal.ChunkRef{Hash: sha256.Sum256(b), Size: uint32(len(b))}
	return ref, ref.ID()
}

func TestCheckRejectsHostileRecords(t *testing.T) {
	ref, id := chunkOf([]byte("hello"))
	cases := []struct {
		name string
		r    journal.Record
		want string
	}{
		{"dotdot", journal.Record{Op: journal.OpDir, Source: "s", Path: "../../escaped-dir"}, "climbs out"},
		{"inner dotdot", journal.Record{Op: journal.OpAppend, Source: "s", Path: "a/../../b", Data: []byte("x")}, "not clean"},
		{"absolute", journal.Record{Op: journal.OpFile, Source: "s", Path: "/etc/passwd"}, "absolute"},
		{"nul", journal.Record{Op: journal.OpDelete, Source: "s", Path: "a\x00b"}, "NUL"},
		{"empty", journal.Record{Op: journal.OpDir, Source: "s", Path: ""}, "empty path"},
		{"dot", journal.Record{Op: journal.OpDir, Source: "s", Path: "."}, "empty path"},
		{"trailing slash", journal.Record{Op: journal.OpDir, Source: "s", Path: "a/"}, "not clean"},
		{"source slash", journal.Record{Op: journal.OpDir, Source: "a/b", Path: "x"}, "source"},
		{"source dotdot", journal.Record{Op: journal.OpDir, Source: "..", Path: "x"}, "source"},
		{"short chunk id", journal.Record{Op: journal.OpChunk, Path: "a"}, "chunk id of 1"},
		{"upper hex id", journal.Record{Op: journal.OpChunk, Path: strings.ToUpper(id)}, "lowercase hex"},
		{"non hex id", journal.Record{Op: journal.OpChunk, Path: strings.Repeat("g", 64)}, "lowercase hex"},
		{"chunk hash mismatch", journal.Record{Op: journal.OpChunk, Path: id, Data: []byte("other")}, "does not match"},
		{"huge file", journal.Record{Op: journal.OpFile, Source: "s", Path: "f", Offset: 1 << 60}, "out of range"},
		{"size lies", journal.Record{Op: journal.OpFile, Source: "s", Path: "f", Offset: 6, Data: journal.EncodeChunks([]journal.ChunkRef{ref})}, "declares 6"},
		{"bad chunk list", journal.Record{Op: journal.OpFile, Source: "s", Path: "f", Offset: 5, Data: []byte{1, 2, 3}}, "chunk list"},
		{"negative offset", journal.Record{Op: journal.OpAppend, Source: "s", Path: "f", Offset: -1}, "out of range"},
		{"append past bound", journal.Record{Op: journal.OpAppend, Source: "s", Path: "f", Offset: MaxSize, Data: []byte("x")}, "beyond"},
		{"mode bits", journal.Record{Op: journal.OpDir, Source: "s", Path: "d", Mode: 0o170755}, "permission bits"},
		{"empty link", journal.Record{Op: journal.OpSymlink, Source: "s", Path: "l"}, "link target"},
		{"unknown op", journal.Record{Op: 99, Source: "s", Path: "x"}, "unknown operation"},
		{"db without pages", journal.Record{Op: journal.OpDBPages, Source: "s", Path: "x.db"}, "without pages"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.r.Seq = 42
			f := Files{}
			_, err := f.Apply(&c.r)
			var se *Error
			if !errors.As(err, &se) || se.Seq != 42 || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "record 42") {
				t.Fatalf("Apply(%+v) = %v, want a *state.Error about %q naming record 42", c.r, err, c.want)
			}
			if len(f) != 0 {
				t.Fatalf("a rejected record changed the state: %v", f)
			}
		})
	}
	// Links are data: a target pointing anywhere is kept as it is.
	ok := []journal.Record{
		{Op: journal.OpSymlink, Source: "s", Path: "l", Data: []byte("/etc/../../outside")},
		{Op: journal.OpChunk, Path: id, Data: []byte("hello")},
		{Op: journal.OpChunk, Path: id}, // as segments store it: data stripped
		{Op: journal.OpFile, Source: "s", Path: "a b/c\\d", Offset: 5, Data: journal.EncodeChunks([]journal.ChunkRef{ref})},
	}
	for i := range ok {
		if err := Check(&ok[i]); err != nil {
			t.Errorf("Check(%+v) = %v, want nil", ok[i], err)
		}
	}
}

func rec(seq uint64, op journal.Op, path string, off int64, mode uint32, data string) *journal.Record {
	return &journal.Record{Seq: seq, Time: int64(seq) * 1000, Op: op, Source: "src", Path: path, Offset: off, Mode: mode, Data: []byte(data)}
}

func TestApplySemantics(t *testing.T) {
	f := Files{}
	step := func(r *journal.Record) Change {
		t.Helper()
		ch, err := f.Apply(r)
		if err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		return ch
	}
	// An append-only file: a fresh start, an extension, a hole, a restart.
	if ch := step(rec(1, journal.OpAppend, "log", 0, 0o600, "ab")); ch.Action != Write || !ch.Fresh || ch.Next.Size != 2 || ch.Next.Since != 1 {
		t.Fatalf("fresh append: %+v", ch)
	}
	if ch := step(rec(2, journal.OpAppend, "log", 2, 0, "cd")); ch.Action != Write || ch.Fresh || ch.Next.Size != 4 || ch.Next.Mode != 0o600 || ch.Next.Since != 1 {
		t.Fatalf("extension: %+v (the mode must be kept)", ch)
	}
	if ch := step(rec(3, journal.OpAppend, "log", 9, 0, "zz")); ch.Action != Skip || !strings.Contains(ch.Missing, "bytes 4-9 missing (record 3)") || f[Key("src", "log")].Size != 4 {
		t.Fatalf("hole: %+v, entry %+v", ch, f[Key("src", "log")])
	}
	if ch := step(rec(4, journal.OpAppend, "log", 0, 0, "x")); ch.Action != Write || !ch.Fresh || ch.Next.Size != 1 || ch.Next.Mode != 0o600 {
		t.Fatalf("restart: %+v", ch)
	}
	// A database: pages need a base.
	if ch := step(rec(5, journal.OpDBPages, "x.db", 0, 0, "p")); ch.Action != Skip || f[Key("src", "x.db")] != nil {
		t.Fatalf("pages without base: %+v", ch)
	}
	if ch := step(rec(6, journal.OpDBBase, "x.db", 0, 0o640, "b")); ch.Action != Pages || !ch.Fresh || ch.Next.Kind != KindDB {
		t.Fatalf("base: %+v", ch)
	}
	if ch := step(rec(7, journal.OpDBPages, "x.db", 0, 0, "p")); ch.Action != Pages || ch.Fresh || ch.Next.Mode != 0o640 || ch.Next.Seq != 7 {
		t.Fatalf("pages: %+v", ch)
	}
	// A link replaced by a folder and back; a file; a delete.
	step(rec(8, journal.OpSymlink, "l", 0, 0, "/outside"))
	if ch := step(rec(9, journal.OpDir, "l", 0, 0o755, "")); ch.Action != Replace || ch.Next.Kind != KindDir || ch.Next.Target != "" {
		t.Fatalf("link to folder: %+v", ch)
	}
	if ch := step(rec(10, journal.OpSymlink, "l", 0, 0, "../x")); ch.Action != Replace || ch.Next.Target != "../x" || ch.Next.Kind != KindSymlink {
		t.Fatalf("folder to link: %+v", ch)
	}
	data := []byte("whole")
	ref, _ := chunkOf(data)
	r := rec(11, journal.OpFile, "l", 5, 0o644, string(journal.EncodeChunks([]journal.ChunkRef{ref})))
	if ch := step(r); ch.Action != Replace || ch.Next.Kind != KindFile || len(ch.Next.Chunks) != 1 || ch.Next.Chunks[0] != ref {
		t.Fatalf("file: %+v", ch)
	}
	if ch := step(rec(12, journal.OpDelete, "l", 0, 0, "")); ch.Action != Remove || f[Key("src", "l")] != nil {
		t.Fatalf("delete: %+v", ch)
	}
	// A compacted base extended by a record: its chunks stay, Since starts there.
	f[Key("src", "c")] = &Entry{Kind: KindAppend, Size: 5, Chunks: []journal.ChunkRef{ref}}
	if ch := step(rec(13, journal.OpAppend, "c", 5, 0, "++")); ch.Action != Write || ch.Next.Since != 13 || len(ch.Next.Chunks) != 1 || ch.Next.Size != 7 {
		t.Fatalf("compacted extension: %+v", ch)
	}
	if f[Key("src", "c")].Since != 13 {
		t.Fatal("Apply did not store the change")
	}
}

func TestCheckEntry(t *testing.T) {
	ref, _ := chunkOf([]byte("abc"))
	good := map[string]*Entry{
		"s/a/b":  {Kind: KindFile, Size: 3, Chunks: []journal.ChunkRef{ref}},
		"s/link": {Kind: KindSymlink, Target: "/anywhere"},
		"s/log":  {Kind: KindAppend, Size: 10, Chunks: []journal.ChunkRef{ref}},
	}
	for k, e := range good {
		if err := CheckEntry(k, e); err != nil {
			t.Errorf("CheckEntry(%q) = %v", k, err)
		}
	}
	bad := map[string]*Entry{
		"s/../x":  {Kind: KindDir},
		"s//etc":  {Kind: KindDir},
		"s":       {Kind: KindDir},
		"s/f":     {Kind: KindFile, Size: 4, Chunks: []journal.ChunkRef{ref}},
		"s/huge":  {Kind: KindFile, Size: 1 << 62},
		"s/what":  {Kind: "fifo"},
		"s/nolnk": {Kind: KindSymlink},
		"s/nil":   nil,
	}
	for k, e := range bad {
		if err := CheckEntry(k, e); err == nil {
			t.Errorf("CheckEntry(%q, %+v) = nil, want an error", k, e)
		}
	}
}

// FuzzApply feeds arbitrary records to Apply: it never panics, a rejected record
// changes nothing, and every entry the state holds is one CheckEntry accepts.
func FuzzApply(f *testing.F) {
	ref, id := chunkOf([]byte("seed"))
	list := journal.EncodeChunks([]journal.ChunkRef{ref})
	f.Add(uint8(journal.OpAppend), "src", "a/b.jsonl", int64(0), uint32(0o644), []byte("line\n"), uint8(journal.OpAppend), "a/b.jsonl", int64(5), []byte("more\n"))
	f.Add(uint8(journal.OpFile), "src", "f", int64(4), uint32(0o600), list, uint8(journal.OpDelete), "f", int64(0), []byte(nil))
	f.Add(uint8(journal.OpChunk), "", id, int64(0), uint32(0), []byte("seed"), uint8(journal.OpSymlink), "l", int64(0), []byte("/outside"))
	f.Add(uint8(journal.OpDir), "src", "../../x", int64(0), uint32(0o755), []byte(nil), uint8(journal.OpDBPages), "d.db", int64(3), []byte{1})
	f.Add(uint8(journal.OpDBBase), "src", "d.db", int64(0), uint32(0o644), []byte{1, 2}, uint8(journal.OpDBPages), "d.db", int64(0), []byte{3})
	f.Fuzz(func(t *testing.T, op1 uint8, source, path1 string, off1 int64, mode uint32, data1 []byte, op2 uint8, path2 string, off2 int64, data2 []byte) {
		files := Files{}
		recs := []journal.Record{
			{Seq: 1, Time: 1, Op: journal.Op(op1), Source: source, Path: path1, Offset: off1, Mode: mode, Data: data1},
			{Seq: 2, Time: 2, Op: journal.Op(op2), Source: source, Path: path2, Offset: off2, Mode: mode, Data: data2},
			{Seq: 3, Time: 3, Op: journal.Op(op1), Source: source, Path: path2, Offset: off2, Mode: mode, Data: data1},
		}
		for i := range recs {
			before := len(files)
			snapshot := map[string]Entry{}
			for k, e := range files {
				snapshot[k] = *e
			}
			ch, err := files.Apply(&recs[i])
			if err != nil {
				var se *Error
				if !errors.As(err, &se) || se.Seq != recs[i].Seq {
					t.Fatalf("error %v is not a *state.Error naming record %d", err, recs[i].Seq)
				}
				if len(files) != before {
					t.Fatalf("rejected record %d changed the number of paths", recs[i].Seq)
				}
				for k, e := range files {
					if s, ok := snapshot[k]; !ok || s.Seq != e.Seq || s.Size != e.Size || s.Kind != e.Kind {
						t.Fatalf("rejected record %d changed %q", recs[i].Seq, k)
					}
				}
				continue
			}
			if ch.Action == Skip && ch.Missing == "" {
				t.Fatal("a skipped record must say what is missing")
			}
			for k, e := range files {
				if err := CheckEntry(k, e); err != nil {
					t.Fatalf("after record %d: %v", recs[i].Seq, err)
				}
			}
		}
		if err := CheckPath(path1); err == nil {
			if strings.HasPrefix(path1, "/") || strings.Contains("/"+path1+"/", "/../") || strings.Contains(path1, "\x00") {
				t.Fatalf("CheckPath accepted %q", path1)
			}
		}
	})
}

func TestChunkIDLength(t *testing.T) {
	sum := sha256.Sum256(nil)
	if err := CheckChunkID(hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
}
