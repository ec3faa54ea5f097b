package restore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

// history writes five simulated days of a host: append files that grow, get rewritten
// and deleted, whole files whose content changes, a link and a folder; a segment per
// batch every 20 minutes and a manifest every 2 hours. It returns the last record time.
func history(t *testing.T, st objstore.Store, start time.Time) time.Time {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(7))
	x := manifest.New("h")
	size := map[string]int64{}
	var seq uint64
	var last time.Time
	rec := func(at time.Time, r journal.Record) journal.Record {
		seq++
		r.Seq, r.Time = seq, at.UnixNano()
		if r.Source == "" && r.Op != journal.OpChunk {
			r.Source = "s"
		}
		return r
	}
	appendTo := func(at time.Time, path string, data string, restart bool) journal.Record {
		off := size[path]
		if restart {
			off = 0
		}
		size[path] = off + int64(len(data))
		return rec(at, journal.Record{Op: journal.OpAppend, Path: path, Offset: off, Mode: 0o640, Data: []byte(data)})
	}
	batches := 0
	for at := start; at.Before(start.Add(5 * 24 * time.Hour)); at = at.Add(20 * time.Minute) {
		var recs []journal.Record
		noise := make([]byte, 1500+rng.Intn(1500))
		rng.Read(noise)
		line := fmt.Sprintf("%s %s\n", at.Format(time.RFC3339), base64.StdEncoding.EncodeToString(noise))
		// The log is rotated every 4 hours: what it held before is no longer live.
		recs = append(recs, appendTo(at, "log.jsonl", line, batches%12 == 0))
		switch n := batches % 11; {
		case n == 3:
			recs = append(recs, appendTo(at, "chat/a.jsonl", "start "+line, true))
		case n == 7 || n == 9:
			recs = append(recs, appendTo(at, "chat/a.jsonl", line, false))
		case n == 10 && batches%3 == 0:
			delete(size, "chat/a.jsonl")
			recs = append(recs, rec(at, journal.Record{Op: journal.OpDelete, Path: "chat/a.jsonl"}))
		}
		if batches%50 == 0 { // a long-lived file that only grows
			recs = append(recs, appendTo(at, "audit.jsonl", line[:200]+"\n", false))
		}
		if batches%17 == 0 {
			body := []byte(fmt.Sprintf("config version %d\n%s", batches, strings.Repeat("y", 100+batches)))
			ref := journal.ChunkRef{Hash: sha256.Sum256(body), Size: uint32(len(body))}
			if batches%34 == 0 {
				// Stored the old way, as a blob.
				if err := st.Put(ctx, manifest.BlobKey(ref.ID()), body); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec(at, journal.Record{Op: journal.OpChunk, Path: ref.ID()}))
			} else {
				// Packed into the batch's segment, as the S3 sink stores it.
				recs = append(recs, rec(at, journal.Record{Op: journal.OpChunk, Path: ref.ID(), Data: body}))
			}
			recs = append(recs, rec(at, journal.Record{Op: journal.OpFile, Path: "etc/app.conf", Offset: int64(len(body)), Mode: 0o600,
				Data: journal.EncodeChunks([]journal.ChunkRef{ref})}))
		}
		if batches == 1 {
			recs = append(recs, rec(at, journal.Record{Op: journal.OpDir, Path: "empty", Mode: 0o750}),
				rec(at, journal.Record{Op: journal.OpSymlink, Path: "current", Data: []byte("log.jsonl")}))
		}
		key := segment.Key("h", recs)
		body, stored := segment.EncodePacked(key, recs, func(string) bool { return true })
		if err := st.Put(ctx, key, body); err != nil {
			t.Fatal(err)
		}
		for i := range stored {
			x.Apply(&stored[i])
		}
		if batches%6 == 5 {
			body, err := manifest.Encode(x)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Put(ctx, manifest.ObjectKey(x), body); err != nil {
				t.Fatal(err)
			}
		}
		last = at
		batches++
	}
	return last
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func usage(t *testing.T, st objstore.Store) Usage {
	t.Helper()
	all, err := listAll(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return total(all)
}

// age sets every stored object's time to when it was (in simulated time) written, so the
// blob grace applies as it would in a store that grew over those days.
func age(t *testing.T, dir string, when time.Time) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(p, when, when)
		}
		return nil
	})
}

func TestCompactKeepsRetainedPointsExact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := file.New(dir)
	start := time.Date(2026, 3, 1, 0, 10, 0, 0, time.UTC)
	last := history(t, st, start)
	age(t, dir, start)
	now := last.Add(30 * time.Minute)
	pol := Policy{KeepAll: 24 * time.Hour, Hourly: 6 * time.Hour, Daily: 3 * 24 * time.Hour}
	cutoff, marks := Points(pol, now)
	if len(marks) != 6+3 || !marks[0].Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("cutoff %s marks %v", cutoff, marks)
	}
	// Instants to compare: every retained mark, the cutoff, and instants after it.
	points := append(append([]time.Time{}, marks...), cutoff, cutoff.Add(17*time.Minute+3*time.Second),
		cutoff.Add(7*time.Hour+20*time.Minute), now.Add(-time.Hour))
	want := map[time.Time]map[string]string{}
	for _, p := range points {
		got, err := run(t, st, p, false)
		if err != nil {
			t.Fatalf("before compaction, at %s: %v", p, err)
		}
		want[p] = got
	}
	latest, err := run(t, st, time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	oldInstant := start.Add(2*24*time.Hour + 5*time.Hour + 7*time.Minute)
	if _, err := run(t, st, oldInstant, false); err != nil {
		t.Fatal(err)
	}
	idxBefore, _, err := LoadIndex(ctx, st, "h", time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	before := usage(t, st)

	// A young unreferenced blob (chunks of a batch still on its way) survives the sweep.
	young := []byte("uploaded just now")
	youngKey := manifest.BlobKey(fmt.Sprintf("%x", sha256.Sum256(young)))
	if err := st.Put(ctx, youngKey, young); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dir, filepath.FromSlash(youngKey)), now, now)

	dry, err := Compact(ctx, st, "h", Policy{KeepAll: pol.KeepAll, Hourly: pol.Hourly, Daily: pol.Daily, DryRun: true}, now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if u := usage(t, st); u.Objects != before.Objects+1 || dry.ManifestsWritten == 0 || dry.SegmentsDeleted == 0 {
		t.Fatalf("dry run changed the store or found nothing: %+v", dry)
	}
	rep, err := Compact(ctx, st, "h", pol, now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep)
	after := usage(t, st)
	if after.Objects >= before.Objects/3 || after.Bytes >= before.Bytes*3/4 || rep.SegmentsDeleted == 0 || rep.ManifestsDeleted == 0 || rep.BlobsDeleted == 0 {
		t.Fatalf("storage did not shrink enough: before %+v after %+v, %s", before, after, rep)
	}
	if rep.ManifestsWritten != dry.ManifestsWritten || rep.SegmentsDeleted != dry.SegmentsDeleted || rep.BlobsDeleted != dry.BlobsDeleted {
		t.Fatalf("dry run %s differs from the run %s", dry, rep)
	}
	if _, err := st.Stat(ctx, youngKey); err != nil {
		t.Fatalf("young blob swept: %v", err)
	}
	for _, p := range points {
		got, err := run(t, st, p, false)
		if err != nil {
			t.Fatalf("after compaction, at %s: %v", p, err)
		}
		if !reflect.DeepEqual(got, want[p]) {
			t.Fatalf("at %s: state changed by compaction:\n got %v\nwant %v", p, keys(got), keys(want[p]))
		}
	}
	if got, err := run(t, st, time.Time{}, true); err != nil || !reflect.DeepEqual(got, latest) {
		t.Fatalf("latest after compaction: %v", err)
	}
	// An instant that is no longer retained fails by name rather than giving a wrong state.
	if _, err := run(t, st, oldInstant, false); !errors.Is(err, ErrNotRetained) || !strings.Contains(err.Error(), "nearest retained points") {
		t.Fatalf("restore at a thinned instant: %v", err)
	}
	idxAfter, problems, err := LoadIndex(ctx, st, "h", time.Time{}, true)
	if err != nil || len(problems) > 0 || idxAfter.Seq != idxBefore.Seq || len(idxAfter.Files) != len(idxBefore.Files) {
		t.Fatalf("index after compaction: %v %v", err, problems)
	}
	for k, e := range idxBefore.Files {
		if a := idxAfter.Files[k]; a == nil || a.Kind != e.Kind || a.Size != e.Size {
			t.Fatalf("index entry %s: %+v, was %+v", k, a, e)
		}
	}
	vr, err := Verify(ctx, st, nil, 4, true)
	if err != nil || !vr.OK() {
		t.Fatalf("verify after compaction: %v %+v", err, vr)
	}
	if o := vr.Hosts[0].Oldest; o.After(marks[0]) {
		t.Fatalf("oldest restorable %s, want the first retained point %s or before", o, marks[0])
	}
	again, err := Compact(ctx, st, "h", pol, now.Add(10*time.Minute), quiet)
	if err != nil || again.ManifestsWritten+again.SegmentsDeleted+again.ManifestsDeleted+again.BlobsDeleted+again.BlobsUploaded != 0 {
		t.Fatalf("second run is not a no-op: %s (%v)", again, err)
	}

	// The host goes on: records extend content whose base is compacted, a manifest is
	// written from the loaded index (as the sink does after a restart), and restores
	// from that manifest and from the records agree.
	segs, _, _ := Segments(ctx, st, "h")
	seq := segs[len(segs)-1].LastSeq
	at := now.Add(time.Minute)
	more := []journal.Record{
		{Seq: seq + 1, Time: at.UnixNano(), Op: journal.OpAppend, Source: "s", Path: "audit.jsonl", Offset: idxAfter.Files["s/audit.jsonl"].Size, Data: []byte("after\n")},
	}
	put(t, st, more...)
	x, _, err := LoadIndex(ctx, st, "h", time.Time{}, true)
	if e := x.Files["s/audit.jsonl"]; err != nil || e.Since == 0 || len(e.Chunks) == 0 {
		t.Fatalf("index over a compacted base: %+v %v", e, err)
	}
	viaRecords, err := run(t, st, time.Time{}, true)
	if err != nil || viaRecords["s/audit.jsonl"] != latest["s/audit.jsonl"]+"after\n" {
		t.Fatalf("append over a compacted base: %v", err)
	}
	body, _ := manifest.Encode(x)
	st.Put(ctx, manifest.ObjectKey(x), body)
	to := filepath.Join(t.TempDir(), "o")
	res, err := Run(ctx, Options{Store: st, Host: "h", Latest: true, To: to})
	if err != nil || res.Manifest != manifest.ObjectKey(x) {
		t.Fatalf("restore from a manifest over a compacted base: %+v %v", res, err)
	}
	if got, _ := run(t, st, time.Time{}, true); !reflect.DeepEqual(got, viaRecords) {
		t.Fatal("manifest over a compacted base restores a different state")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s(%d)", k, len(v)))
	}
	return out
}

func TestPointsWindows(t *testing.T) {
	now := time.Date(2026, 5, 10, 13, 45, 0, 0, time.UTC)
	cutoff, marks := Points(Policy{KeepAll: 48 * time.Hour, Hourly: 3 * time.Hour, Daily: 2 * 24 * time.Hour}, now)
	if !cutoff.Equal(time.Date(2026, 5, 8, 13, 0, 0, 0, time.UTC)) {
		t.Fatalf("cutoff %s", cutoff)
	}
	want := []time.Time{
		time.Date(2026, 5, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 8, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC), time.Date(2026, 5, 8, 11, 0, 0, 0, time.UTC), time.Date(2026, 5, 8, 12, 0, 0, 0, time.UTC),
	}
	if !reflect.DeepEqual(marks, want) {
		t.Fatalf("marks %v", marks)
	}
	if _, m := Points(Policy{KeepAll: time.Hour}, now); len(m) != 0 {
		t.Fatalf("no thinning windows: %v", m)
	}
}
