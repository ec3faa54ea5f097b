package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// Records whose paths leave the target are refused by their sequence number; nothing is
// written outside the target, nothing panics, and the rest is restored.
func TestHostileRecordPathsAreRefused(t *testing.T) {
	st, _ := file.New(t.TempDir())
	at := func(sec int) int64 { return t0.Add(time.Duration(sec) * time.Second).UnixNano() }
	put(t, st,
		journal.Record{Seq: 1, Time: at(0), Op: journal.OpDir, Source: "sessions", Path: "../../escaped-dir", Mode: 0o755},
		journal.Record{Seq: 2, Time: at(1), Op: journal.OpAppend, Source: "sessions", Path: "/tmp/abs.jsonl", Data: []byte("x\n")},
		journal.Record{Seq: 3, Time: at(2), Op: journal.OpAppend, Source: "sessions", Path: "a\x00b.jsonl", Data: []byte("x\n")},
		journal.Record{Seq: 4, Time: at(3), Op: journal.OpAppend, Source: "..", Path: "up.jsonl", Data: []byte("x\n")},
		journal.Record{Seq: 5, Time: at(4), Op: journal.OpFile, Source: "sessions", Path: "huge", Offset: 1 << 50},
		app(6, 5, "ok.jsonl", 0, "fine\n"),
	)
	parent := t.TempDir()
	to := filepath.Join(parent, "a", "b", "out")
	_, err := Run(context.Background(), Options{Store: st, Host: "h", Latest: true, To: to, Parallel: 2})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore: %v, want ErrIncomplete", err)
	}
	for _, seq := range []string{"record 1 ", "record 2 ", "record 3 ", "record 4 ", "record 5 "} {
		if !strings.Contains(err.Error(), seq) {
			t.Errorf("%q not named in %v", seq, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(parent, "escaped-dir")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a folder record climbed out of the target: %v", err)
	}
	if _, err := os.Lstat("/tmp/abs.jsonl"); err == nil {
		t.Fatal("an absolute path was written")
	}
	if b, err := os.ReadFile(filepath.Join(to, "sessions", "ok.jsonl")); err != nil || string(b) != "fine\n" {
		t.Fatalf("ok.jsonl: %q, %v", b, err)
	}
}

// A manifest holding an entry that climbs out is damaged: restore falls back to the
// segments and says which manifest it could not use.
func TestHostileManifestEntryIsDamage(t *testing.T) {
	st, _ := file.New(t.TempDir())
	recs := []journal.Record{app(1, 0, "a.jsonl", 0, "1\n")}
	put(t, st, recs...)
	x := manifest.New("h")
	for i := range recs {
		if err := x.Apply(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	x.Files["sessions/../../../etc/evil"] = &manifest.Entry{Kind: manifest.KindDir, Mode: 0o755}
	body, err := manifest.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	key := manifest.ObjectKey(x)
	if err := st.Put(context.Background(), key, body); err != nil {
		t.Fatal(err)
	}
	got, err := run(t, st, time.Time{}, true)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "climbs out") {
		t.Fatalf("restore: %v, want the manifest named as damaged", err)
	}
	if got["sessions/a.jsonl"] != "1\n" || len(got) != 1 {
		t.Fatalf("restored %v", got)
	}
}

// Verify names malformed records and hostile manifest entries.
func TestVerifyNamesMalformedRecords(t *testing.T) {
	st, _ := file.New(t.TempDir())
	key := put(t, st, app(1, 0, "ok.jsonl", 0, "1\n"),
		journal.Record{Seq: 2, Time: t0.Add(time.Second).UnixNano(), Op: journal.OpChunk, Path: "a"})
	rep, err := Verify(context.Background(), st, []string{"h"}, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Hosts[0].Problems, "\n")
	if rep.OK() || !strings.Contains(all, key) || !strings.Contains(all, "record 2") || !strings.Contains(all, "chunk id of 1") {
		t.Fatalf("verify problems %q: want the short chunk id of record 2 in %s named", all, key)
	}
}

// A drill over a store with a gap fails and names the missing records.
func TestDrillNamesGap(t *testing.T) {
	st, _ := file.New(t.TempDir())
	put(t, st, app(1, 0, "a.jsonl", 0, "1\n"), app(2, 1, "a.jsonl", 2, "2\n"))
	put(t, st, app(5, 4, "b.jsonl", 0, "5\n"))
	res, err := Drill(context.Background(), st, "h", time.Time{}, t.TempDir())
	if !errors.Is(err, ErrDrillFailed) || !strings.Contains(strings.Join(res.Problems, "; "), "records 3-4 missing") {
		t.Fatalf("drill: %v, problems %v: want a failure naming records 3-4", err, res.Problems)
	}
}

// Compaction stops at a malformed record, naming host and record, and deletes nothing.
func TestCompactStopsAtMalformedRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := file.New(dir)
	start := time.Date(2026, 3, 1, 0, 10, 0, 0, time.UTC)
	rec := func(seq uint64, h int, r journal.Record) journal.Record {
		r.Seq, r.Time, r.Source = seq, start.Add(time.Duration(h)*time.Hour).UnixNano(), "s"
		return r
	}
	put(t, st, rec(1, 0, journal.Record{Op: journal.OpAppend, Path: "a.jsonl", Data: []byte("1\n")}))
	put(t, st, rec(2, 30, journal.Record{Op: journal.OpDir, Path: "../../escaped", Mode: 0o755}))
	put(t, st, rec(3, 60, journal.Record{Op: journal.OpAppend, Path: "a.jsonl", Offset: 2, Data: []byte("3\n")}))
	age(t, dir, start)
	before, err := listAll(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	pol := Policy{KeepAll: time.Hour, Hourly: time.Hour, Daily: 24 * time.Hour}
	_, err = Compact(ctx, st, "h", pol, start.Add(5*24*time.Hour), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "host h") || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("compact: %v, want an error naming host h and record 2", err)
	}
	after, err := listAll(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("compaction deleted %s", k)
		}
	}
}

// A record extending a compacted base whose blob is lost is not written after a hole:
// the file is named incomplete and holds no zero-filled gap.
func TestLostCompactedBaseLeavesNoHole(t *testing.T) {
	st, _ := file.New(t.TempDir())
	base := []byte("1\n")
	ref := journal.ChunkRef{Hash: sha256.Sum256(base), Size: uint32(len(base))}
	x := manifest.New("h")
	x.Seq, x.Time, x.Compacted, x.Until = 1, t0.UnixNano(), true, t0.Add(time.Second).UnixNano()
	x.Files["sessions/a.jsonl"] = &manifest.Entry{Kind: manifest.KindAppend, Size: 2, Mode: 0o600, Seq: 1, Time: x.Time, Chunks: []journal.ChunkRef{ref}}
	body, err := manifest.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), manifest.ObjectKey(x), body); err != nil {
		t.Fatal(err)
	}
	put(t, st, app(2, 1, "a.jsonl", 2, "2\n"))
	got, err := run(t, st, time.Time{}, true)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "compacted content lost") {
		t.Fatalf("restore: %v, want the lost base named", err)
	}
	if strings.Contains(got["sessions/a.jsonl"], "\x00") {
		t.Fatalf("a.jsonl restored with a hole: %q", got["sessions/a.jsonl"])
	}
}
