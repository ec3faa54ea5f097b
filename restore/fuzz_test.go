package restore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// FuzzRestore restores arbitrary records into a folder deep inside a temporary one and
// checks that nothing panics and nothing outside the target changed.
func FuzzRestore(f *testing.F) {
	f.Add(uint8(journal.OpAppend), "a/b.jsonl", []byte("x\n"), uint8(journal.OpAppend), "a/b.jsonl", int64(2), []byte("y\n"))
	f.Add(uint8(journal.OpDir), "../../escaped", []byte(nil), uint8(journal.OpAppend), "../../escaped/x.jsonl", int64(0), []byte("x\n"))
	f.Add(uint8(journal.OpSymlink), "l", []byte("../../.."), uint8(journal.OpDir), "l", int64(0), []byte(nil))
	f.Add(uint8(journal.OpFile), "/abs", []byte{1, 2, 3}, uint8(journal.OpDBPages), "d.db", int64(0), []byte{1})
	f.Add(uint8(journal.OpDBBase), "d.db", []byte{1, 0, 0, 2, 0}, uint8(journal.OpDelete), "d.db", int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, op1 uint8, p1 string, d1 []byte, op2 uint8, p2 string, off2 int64, d2 []byte) {
		st, err := file.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		at := t0.UnixNano()
		recs := []journal.Record{
			{Seq: 1, Time: at, Op: journal.Op(op1), Source: "s", Path: p1, Mode: 0o644, Data: d1},
			{Seq: 2, Time: at + 1, Op: journal.Op(op2), Source: "s", Path: p2, Offset: off2, Mode: 0o644, Data: d2},
		}
		if recs[0].Op == 0 || recs[0].Op > journal.OpDBPages || recs[1].Op == 0 || recs[1].Op > journal.OpDBPages || off2 < 0 {
			return // the record decoder refuses these before anything applies them
		}
		put(t, st, recs...)
		outer := t.TempDir()
		deep := filepath.Join(outer, "a", "b", "c")
		if err := os.MkdirAll(deep, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = Run(ctx, Options{Store: st, Host: "h", Latest: true, To: filepath.Join(deep, "out"), Parallel: 2})
		var outside []string
		filepath.Walk(outer, func(p string, fi os.FileInfo, err error) error {
			rel, _ := filepath.Rel(outer, p)
			switch rel {
			case ".", "a", filepath.Join("a", "b"), filepath.Join("a", "b", "c"):
				return nil
			case filepath.Join("a", "b", "c", "out"):
				return filepath.SkipDir
			}
			outside = append(outside, rel)
			return nil
		})
		if len(outside) > 0 {
			t.Fatalf("records %+v wrote outside the target: %v", recs, outside)
		}
	})
}
