package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

var t0 = time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)

func app(seq uint64, sec int, path string, off int64, data string) journal.Record {
	return journal.Record{Seq: seq, Time: t0.Add(time.Duration(sec) * time.Second).UnixNano(), Op: journal.OpAppend,
		Source: "sessions", Path: path, Offset: off, Mode: 0o600, Data: []byte(data)}
}

func put(t *testing.T, st objstore.Store, recs ...journal.Record) string {
	t.Helper()
	key := segment.Key("h", recs)
	if err := st.Put(context.Background(), key, segment.Encode(recs)); err != nil {
		t.Fatal(err)
	}
	return key
}

func run(t *testing.T, st objstore.Store, at time.Time, latest bool) (map[string]string, error) {
	t.Helper()
	to := filepath.Join(t.TempDir(), "out")
	_, err := Run(context.Background(), Options{Store: st, Host: "h", At: at, Latest: latest, To: to, Parallel: 3})
	got := map[string]string{}
	filepath.Walk(to, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(to, p)
			got[rel] = string(b)
		}
		return nil
	})
	return got, err
}

func TestPointInTimeAndOverlap(t *testing.T) {
	st, _ := file.New(t.TempDir())
	put(t, st, app(1, 0, "a.jsonl", 0, "1\n"), app(2, 1, "b.jsonl", 0, "x\n"))
	put(t, st, app(3, 2, "a.jsonl", 2, "2\n"), app(4, 3, "a.jsonl", 4, "3\n"))
	// A retried batch cut differently: it overlaps the one above.
	put(t, st, app(3, 2, "a.jsonl", 2, "2\n"), app(4, 3, "a.jsonl", 4, "3\n"), app(5, 4, "b.jsonl", 0, "y\n"), journal.Record{Seq: 6, Time: t0.Add(5 * time.Second).UnixNano(), Op: journal.OpDelete, Source: "sessions", Path: "a.jsonl"})
	for _, c := range []struct {
		sec  int
		want map[string]string
	}{
		{0, map[string]string{"sessions/a.jsonl": "1\n"}},
		{2, map[string]string{"sessions/a.jsonl": "1\n2\n", "sessions/b.jsonl": "x\n"}},
		{4, map[string]string{"sessions/a.jsonl": "1\n2\n3\n", "sessions/b.jsonl": "y\n"}},
		{5, map[string]string{"sessions/b.jsonl": "y\n"}},
	} {
		got, err := run(t, st, t0.Add(time.Duration(c.sec)*time.Second), false)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("at +%ds: got %v want %v", c.sec, got, c.want)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Fatalf("at +%ds: %s = %q, want %q", c.sec, k, got[k], v)
			}
		}
	}
	if _, err := run(t, st, t0.Add(-time.Second), false); !errors.Is(err, ErrNothing) {
		t.Fatalf("before the first record: %v", err)
	}
}

func TestDamagedSegmentReportedRestGoesOn(t *testing.T) {
	dir := t.TempDir()
	st, _ := file.New(dir)
	put(t, st, app(1, 0, "a.jsonl", 0, "1\n"), app(2, 0, "b.jsonl", 0, "b1\n"))
	bad := put(t, st, app(3, 1, "a.jsonl", 2, "2\n"))
	put(t, st, app(4, 2, "a.jsonl", 4, "3\n"), app(5, 2, "b.jsonl", 3, "b2\n"))
	os.WriteFile(filepath.Join(dir, filepath.FromSlash(bad)), []byte("not zstd"), 0o644)
	got, err := run(t, st, time.Time{}, true)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "sessions/a.jsonl") {
		t.Fatalf("want an incomplete restore naming the object and the file, got %v", err)
	}
	// b.jsonl did not depend on the damaged object; a.jsonl keeps its whole-line prefix.
	if got["sessions/b.jsonl"] != "b1\nb2\n" || got["sessions/a.jsonl"] != "1\n" {
		t.Fatalf("got %v", got)
	}
	// A missing object (a gap in the sequence) is reported too.
	os.Remove(filepath.Join(dir, filepath.FromSlash(bad)))
	if _, err := run(t, st, time.Time{}, true); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "records 3-3 missing") {
		t.Fatalf("gap: %v", err)
	}
}

func TestModeAndEmptyFile(t *testing.T) {
	st, _ := file.New(t.TempDir())
	put(t, st, app(1, 0, "e.jsonl", 0, ""), app(2, 0, "d/f.jsonl", 0, "z\n"))
	to := filepath.Join(t.TempDir(), "o")
	if _, err := Run(context.Background(), Options{Store: st, Host: "h", Latest: true, To: to}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(to, "sessions/e.jsonl"))
	if err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("empty file: %v %v", fi, err)
	}
	if entries, _ := os.ReadDir(to); len(entries) != 1 {
		t.Fatalf("staging folder left behind: %v", entries)
	}
}

func putManifest(t *testing.T, st objstore.Store, recs ...journal.Record) {
	t.Helper()
	x := manifest.New("h")
	for i := range recs {
		x.Apply(&recs[i])
	}
	body, err := manifest.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), manifest.ObjectKey(x), body); err != nil {
		t.Fatal(err)
	}
}

// TestManifestBoundsTheReplay: with a manifest, a restore reads only the segments that
// still hold live content or come after it, and gives the same state as a full replay.
func TestManifestBoundsTheReplay(t *testing.T) {
	st, _ := file.New(t.TempDir())
	s1 := []journal.Record{app(1, 0, "old.jsonl", 0, "gone\n"), app(2, 0, "w.jsonl", 0, "w1\n")}
	s2 := []journal.Record{app(3, 1, "old.jsonl", 0, "rewritten\n")}
	s3 := []journal.Record{app(4, 2, "w.jsonl", 0, "w-new\n"), {Seq: 5, Time: t0.Add(2 * time.Second).UnixNano(), Op: journal.OpDelete, Source: "sessions", Path: "old.jsonl"}}
	s4 := []journal.Record{app(6, 3, "w.jsonl", 6, "w2\n"), app(7, 3, "n.jsonl", 0, "n\n")}
	for _, s := range [][]journal.Record{s1, s2, s3, s4} {
		put(t, st, s...)
	}
	before, err := run(t, st, t0.Add(3*time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	putManifest(t, st, append(append(append([]journal.Record{}, s1...), s2...), s3...)...)
	to := filepath.Join(t.TempDir(), "o")
	res, err := Run(context.Background(), Options{Store: st, Host: "h", Latest: true, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest == "" || res.Segments != 2 {
		t.Fatalf("read %d segments (manifest %q); want the manifest plus the 2 segments holding live content", res.Segments, res.Manifest)
	}
	after, _ := run(t, st, time.Time{}, true)
	if len(after) != 2 || after["sessions/w.jsonl"] != "w-new\nw2\n" || after["sessions/n.jsonl"] != "n\n" || before["sessions/w.jsonl"] != after["sessions/w.jsonl"] {
		t.Fatalf("with manifest %v, without %v", after, before)
	}
	// An instant before the manifest still restores exactly.
	early, _ := run(t, st, t0.Add(1*time.Second), false)
	if early["sessions/old.jsonl"] != "rewritten\n" || early["sessions/w.jsonl"] != "w1\n" {
		t.Fatalf("before the manifest: %v", early)
	}
}

// TestTornLongLineCut: one capture of a long line spans several records; when only the
// first segment of it was stored (a crash between uploads), restore gives whole lines.
func TestTornLongLineCut(t *testing.T) {
	st, _ := file.New(t.TempDir())
	put(t, st, app(1, 0, "big.jsonl", 0, "{\"a\":1}\n"))
	put(t, st, app(2, 1, "big.jsonl", 8, "{\"long\":\"xxxx"), app(3, 1, "big.jsonl", 21, "xxxx"))
	got, err := run(t, st, time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got["sessions/big.jsonl"] != "{\"a\":1}\n" {
		t.Fatalf("torn line restored: %q", got["sessions/big.jsonl"])
	}
}
