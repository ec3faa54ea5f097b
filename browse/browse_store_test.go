package browse

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// putSegments stores recs (numbered from 1, one second apart) as segments of the given
// lengths.
func putSegments(t *testing.T, st *file.Store, host string, recs []journal.Record, lens ...int) []string {
	t.Helper()
	for i := range recs {
		recs[i].Seq, recs[i].Time = uint64(i+1), t0.Add(time.Duration(i)*time.Second).UnixNano()
	}
	var keys []string
	for _, n := range lens {
		part := recs[:n]
		recs = recs[n:]
		k := segment.Key(host, part)
		if err := st.Put(context.Background(), k, segment.Encode(part)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func at(i int) When { return When{At: t0.Add(time.Duration(i) * time.Second)} }

// TestDiffAndLogOfRewrites: lines added count only appends that continue the file; a
// rewritten transcript is marked so, and log names each kind of change.
func TestDiffAndLogOfRewrites(t *testing.T) {
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app := func(p string, off int64, data string) journal.Record {
		return journal.Record{Op: journal.OpAppend, Source: "s", Path: p, Offset: off, Data: []byte(data), Mode: 0o644}
	}
	recs := []journal.Record{
		app("a.jsonl", 0, "1\n"),                             // 1
		app("b.jsonl", 0, "x\ny\n"),                          // 2
		app("a.jsonl", 2, "2\n3\n"),                          // 3
		app("b.jsonl", 0, "z\n"),                             // 4: rewritten
		app("a.jsonl", 6, "4\n"),                             // 5
		{Op: journal.OpDelete, Source: "s", Path: "b.jsonl"}, // 6
	}
	putSegments(t, st, "h", recs, 2, 2, 2)
	d, err := Diff(ctx, st, "h", at(1), at(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Problems) != 0 || len(d.Changes) != 2 {
		t.Fatalf("diff: %+v", d)
	}
	a, b := d.Changes[0], d.Changes[1]
	if a.Path != "s/a.jsonl" || a.LinesAdded == nil || *a.LinesAdded != 3 || a.Bytes != 6 || a.Rewritten {
		t.Errorf("a.jsonl: %+v", a)
	}
	if b.Path != "s/b.jsonl" || !b.Rewritten || b.LinesAdded != nil || b.NewSize != 2 {
		t.Errorf("b.jsonl: %+v", b)
	}
	l, err := Log(ctx, st, "h", "s/b.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, v := range l.Versions {
		changes = append(changes, v.Change)
	}
	if strings.Join(changes, ",") != "created,rewritten,deleted" {
		t.Errorf("log b.jsonl: %v", changes)
	}
	if _, err := Log(ctx, st, "h", "s/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("log of a path never stored: %v", err)
	}
}

// TestGapNamed: a segment missing between two stored ones is named by ls, diff, log and
// hosts with the records it held.
func TestGapNamed(t *testing.T) {
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var recs []journal.Record
	for i := range 6 {
		recs = append(recs, journal.Record{Op: journal.OpAppend, Source: "s", Path: "a.jsonl", Offset: int64(2 * i), Data: []byte("x\n")})
	}
	keys := putSegments(t, st, "h", recs, 2, 2, 2)
	if err := st.Delete(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	const want = "records 3-4 missing"
	l, err := Ls(ctx, st, "h", When{Latest: true}, nil)
	if err != nil || !strings.Contains(strings.Join(l.Problems, ";"), want) {
		t.Errorf("ls: %v %+v", err, l)
	}
	d, err := Diff(ctx, st, "h", at(0), When{Latest: true}, nil)
	if err != nil || !strings.Contains(strings.Join(d.Problems, ";"), want) {
		t.Errorf("diff: %v %+v", err, d)
	}
	lg, err := Log(ctx, st, "h", "s/a.jsonl")
	if err != nil || !strings.Contains(strings.Join(lg.Problems, ";"), want) {
		t.Errorf("log: %v %+v", err, lg)
	}
	hs, err := Hosts(ctx, st)
	if err != nil || len(hs.Hosts) != 1 || !strings.Contains(strings.Join(hs.Hosts[0].Problems, ";"), want) {
		t.Errorf("hosts: %v %+v", err, hs)
	}
	// Before the gap the state is whole.
	l, err = Ls(ctx, st, "h", at(1), nil)
	if err != nil || len(l.Problems) != 0 || len(l.Entries) != 1 || l.Entries[0].Size != 4 {
		t.Errorf("ls before the gap: %v %+v", err, l)
	}
	var out strings.Builder
	if err := Cat(ctx, st, "h", When{Latest: true}, "s/a.jsonl", t.TempDir(), &out); !errors.Is(err, ErrIncomplete) || out.Len() != 0 {
		t.Errorf("cat across the gap: %v, wrote %q", err, out.String())
	}
	out.Reset()
	if err := Cat(ctx, st, "h", at(1), "s/a.jsonl", t.TempDir(), &out); err != nil || out.String() != "x\nx\n" {
		t.Errorf("cat before the gap: %v %q", err, out.String())
	}
}
