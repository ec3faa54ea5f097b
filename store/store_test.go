package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

func rec(seq uint64, path string, off int64, data string) journal.Record {
	return journal.Record{Seq: seq, Time: int64(seq) * int64(time.Second), Op: journal.OpAppend, Source: "s", Path: path, Offset: off, Data: []byte(data)}
}

func putSeg(t *testing.T, st objstore.Store, recs ...journal.Record) {
	t.Helper()
	if err := st.Put(context.Background(), segment.Key("h", recs), segment.Encode(recs)); err != nil {
		t.Fatal(err)
	}
}

func putMan(t *testing.T, st objstore.Store, recs ...journal.Record) {
	t.Helper()
	x := manifest.New("h")
	for i := range recs {
		if err := x.Apply(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	body, err := manifest.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), manifest.ObjectKey(x), body); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNamesGaps(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		fill func(t *testing.T, st objstore.Store)
		want string // "" when complete
	}{
		{"complete", func(t *testing.T, st objstore.Store) {
			putSeg(t, st, rec(1, "a", 0, "1\n"), rec(2, "a", 2, "2\n"))
			putSeg(t, st, rec(3, "a", 4, "3\n"))
		}, ""},
		{"manifest then gap", func(t *testing.T, st objstore.Store) {
			r := []journal.Record{rec(1, "a", 0, "1\n"), rec(2, "a", 2, "2\n")}
			putSeg(t, st, r...)
			putMan(t, st, r...)
			putSeg(t, st, rec(5, "b", 0, "5\n"), rec(6, "b", 2, "6\n"))
		}, "records 3-4 missing"},
		{"manifest then gap, early segments gone", func(t *testing.T, st objstore.Store) {
			putMan(t, st, rec(1, "a", 0, "1\n"), rec(2, "a", 2, "2\n"))
			putSeg(t, st, rec(5, "b", 0, "5\n"))
		}, "records 3-4 missing"},
		{"no manifest, hole", func(t *testing.T, st objstore.Store) {
			putSeg(t, st, rec(1, "a", 0, "1\n"))
			putSeg(t, st, rec(4, "a", 2, "4\n"))
		}, "records 2-3 missing"},
		{"no manifest, late start", func(t *testing.T, st objstore.Store) {
			putSeg(t, st, rec(3, "a", 0, "3\n"))
		}, "records 1-2 missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := file.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			c.fill(t, st)
			s, err := Load(ctx, st, "h", time.Time{}, true)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if !s.Complete() || len(s.Problems) != 0 {
					t.Fatalf("gaps %v, problems %v: want none", s.Gaps, s.Problems)
				}
				return
			}
			if s.Complete() || !strings.Contains(strings.Join(s.Problems, "; "), c.want) {
				t.Fatalf("gaps %v, problems %v: want %q", s.Gaps, s.Problems, c.want)
			}
			_, problems, err := LoadIndex(ctx, st, "h", time.Time{}, true)
			if err != nil || !strings.Contains(strings.Join(problems, "; "), c.want) {
				t.Fatalf("LoadIndex: %v, %v: want %q", problems, err, c.want)
			}
		})
	}
}

func TestBlobKeyRefusesBadIDs(t *testing.T) {
	for _, id := range []string{"", "a", "ab", strings.Repeat("A", 64), "../../" + strings.Repeat("a", 58)} {
		if k, err := BlobKey(id); err == nil {
			t.Errorf("BlobKey(%q) = %q, want an error", id, k)
		}
	}
	id := strings.Repeat("ab", 32)
	if k, err := BlobKey(id); err != nil || k != "blobs/ab/"+id {
		t.Fatalf("BlobKey(%q) = %q, %v", id, k, err)
	}
}

// The newest segment damaged: its records are a gap too, though no segment follows.
func TestLoadNamesDamagedLastSegment(t *testing.T) {
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	putSeg(t, st, rec(1, "a", 0, "1\n"))
	last := []journal.Record{rec(2, "a", 2, "2\n"), rec(3, "a", 4, "3\n")}
	if err := st.Put(context.Background(), segment.Key("h", last), []byte("not zstd")); err != nil {
		t.Fatal(err)
	}
	s, err := Load(context.Background(), st, "h", time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Complete() || len(s.Gaps) != 1 || s.Gaps[0].From != 2 || s.Gaps[0].To != 3 {
		t.Fatalf("gaps %+v, problems %v: want records 2-3", s.Gaps, s.Problems)
	}
}
