package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/segment"
	s3sink "github.com/mmreplicate/mmreplicate/sinks/s3"
)

// TestClockStep steps a fake clock backwards and forwards between journal appends (and
// across a journal restart and a host rebuilt from its store), ships the records as the
// S3 sink does, and restores at many instants: capture times never go backwards, and a
// restore at T gives exactly the records captured at or before T.
func TestClockStep(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var clock time.Time
	now := func() time.Time { return clock }
	store, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const host = "clock"
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := journal.Open(dir, journal.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		at    time.Duration // wall clock, relative to base
		event string        // "restart": reopen the journal; "rebuild": new host from the store
	}
	steps := []step{
		{0, ""}, {time.Second, ""}, {2 * time.Second, ""},
		{-time.Hour, ""}, {-time.Hour + time.Second, ""}, // an hour backwards
		{-time.Hour + 2*time.Second, "restart"}, {3 * time.Second, ""}, // restart while behind
		{5 * time.Second, ""},
		{2 * time.Hour, ""}, {2*time.Hour + time.Second, ""}, // two hours forwards
		{6 * time.Second, ""}, {7 * time.Second, "restart"}, // back again
		{2*time.Hour + 3*time.Second, ""},
		{-24 * time.Hour, "rebuild"}, {2*time.Hour + 4*time.Second, ""}, // a day behind on a new host
	}
	var all []journal.Record // every record, as stored
	sizes := map[string]int64{}
	var shipped uint64
	ship := func() {
		// Read what is journaled and store it as the sink does: one segment per batch.
		r := j.NewReader(shipped + 1)
		defer r.Close()
		for {
			recs, err := r.Read(200)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				return
			}
			if err := store.Put(ctx, segment.Key(host, recs), segment.Encode(recs)); err != nil {
				t.Fatal(err)
			}
			all = append(all, recs...)
			shipped = recs[len(recs)-1].Seq
		}
	}
	paths := []string{"a.jsonl", "deep/b.jsonl"}
	for i, s := range steps {
		clock = base.Add(s.at)
		switch s.event {
		case "restart":
			ship()
			j.Close()
			if j, err = journal.Open(dir, journal.Options{Now: now}); err != nil {
				t.Fatal(err)
			}
		case "rebuild":
			// The host is lost; a new one continues from what the store holds, as the
			// daemon does at start-up.
			ship()
			j.Close()
			seq, last, err := s3sink.Last(ctx, store, host)
			if err != nil {
				t.Fatal(err)
			}
			dir = filepath.Join(t.TempDir(), "journal")
			if j, err = journal.Open(dir, journal.Options{Now: now, FirstSeq: seq + 1, MinTime: last}); err != nil {
				t.Fatal(err)
			}
		}
		var recs []journal.Record
		for k, p := range paths[:1+i%2] {
			data := fmt.Sprintf(`{"step":%d,"k":%d}`+"\n", i, k)
			recs = append(recs, journal.Record{Op: journal.OpAppend, Source: "sessions", Path: p, Offset: sizes[p], Data: []byte(data)})
			sizes[p] += int64(len(data))
		}
		if err := j.Append(recs); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			ship() // segments of varied sizes, some spanning clock steps
		}
	}
	ship()
	j.Close()

	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq+1 {
			t.Fatalf("record %d follows %d", all[i].Seq, all[i-1].Seq)
		}
		if all[i].Time < all[i-1].Time {
			t.Fatalf("capture time went backwards: record %d at %s after %d at %s", all[i].Seq, all[i].CaptureTime(), all[i-1].Seq, all[i-1].CaptureTime())
		}
	}
	// The state at T is every record captured at or before T, applied in order.
	stateAt := func(at int64) map[string]string {
		out := map[string]string{}
		for _, r := range all {
			if r.Time > at {
				break
			}
			out["sessions/"+r.Path] += string(r.Data)
		}
		return out
	}
	instants := map[int64]bool{base.Add(-time.Hour).UnixNano(): true, base.Add(-24 * time.Hour).UnixNano(): true, base.Add(time.Hour).UnixNano(): true}
	for _, r := range all {
		instants[r.Time-1], instants[r.Time], instants[r.Time+1] = true, true, true
	}
	checked := 0
	for at := range instants {
		to := filepath.Join(t.TempDir(), "r")
		_, err := restore.Run(ctx, restore.Options{Store: store, Host: host, At: time.Unix(0, at), To: to})
		want := stateAt(at)
		if len(want) == 0 {
			if !errors.Is(err, restore.ErrNothing) {
				t.Errorf("restore at %s, before the first capture: %v; want nothing to restore", time.Unix(0, at).UTC(), err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("restore at %s: %v", time.Unix(0, at).UTC(), err)
		}
		if d := diff(tree(t, to), want); d != "" {
			t.Errorf("restore at %s: %s", time.Unix(0, at).UTC(), d)
		}
		checked++
	}
	to := filepath.Join(t.TempDir(), "latest")
	if _, err := restore.Run(ctx, restore.Options{Store: store, Host: host, Latest: true, To: to}); err != nil {
		t.Fatal(err)
	}
	if d := diff(tree(t, to), stateAt(all[len(all)-1].Time)); d != "" {
		t.Errorf("restore latest: %s", d)
	}
	segs := segments(t, store, host)
	checkSegments(t, store, segs, false)
	t.Logf("%d records over %d clock steps in %d segments; capture times from %s to %s; %d restores at distinct instants matched",
		len(all), len(steps), len(segs), all[0].CaptureTime().Format(time.TimeOnly), all[len(all)-1].CaptureTime().Format(time.TimeOnly), checked)
}
