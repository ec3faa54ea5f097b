package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(path, data string, off int64) Record {
	return Record{Op: OpAppend, Source: "s", Path: path, Offset: off, Mode: 0o644, Data: []byte(data)}
}

func TestFrameRoundTrip(t *testing.T) {
	in := []Record{
		{Seq: 1, Time: 5, Op: OpAppend, Source: "sessions", Path: "a/b.jsonl", Offset: 10, Mode: 0o600, Data: []byte("{}\n")},
		{Seq: 2, Time: -1, Op: OpDelete, Source: "x", Path: "ü/名"},
		{Seq: 1 << 60, Time: 1 << 62, Op: OpAppend, Data: bytes.Repeat([]byte{0}, 70000)},
	}
	out, err := DecodeAll(EncodeAll(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d records", len(out))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Seq != b.Seq || a.Time != b.Time || a.Op != b.Op || a.Source != b.Source || a.Path != b.Path || a.Offset != b.Offset || a.Mode != b.Mode || !bytes.Equal(a.Data, b.Data) {
			t.Fatalf("record %d: %+v != %+v", i, b, a)
		}
	}
}

func TestFrameDetectsDamage(t *testing.T) {
	buf := EncodeAll([]Record{rec("p", "hello\n", 0)})
	for i := range buf {
		bad := append([]byte(nil), buf...)
		bad[i] ^= 0x40
		if _, _, err := DecodeFrame(bad); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	if _, _, err := DecodeFrame(buf[:len(buf)-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short buffer: %v", err)
	}
	if _, err := DecodeAll(buf[:len(buf)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeAll of cut buffer: %v", err)
	}
}

func openT(t *testing.T, dir string, o Options) *Journal {
	t.Helper()
	j, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func readAll(t *testing.T, j *Journal, from uint64) []Record {
	t.Helper()
	r := j.NewReader(from)
	defer r.Close()
	var out []Record
	for {
		recs, err := r.Read(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
	}
}

func TestAppendReadAcrossSegmentsAndReopen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, Options{SegmentBytes: 300})
	for i := 0; i < 50; i++ {
		if err := j.Append([]Record{rec("f", fmt.Sprintf("line %02d\n", i), int64(i*8))}); err != nil {
			t.Fatal(err)
		}
	}
	if len(j.segs) < 3 {
		t.Fatalf("expected several segments, got %d", len(j.segs))
	}
	got := readAll(t, j, 1)
	if len(got) != 50 || got[0].Seq != 1 || got[49].Seq != 50 || string(got[49].Data) != "line 49\n" {
		t.Fatalf("read back %d records", len(got))
	}
	if mid := readAll(t, j, 23); len(mid) != 28 || mid[0].Seq != 23 {
		t.Fatalf("read from 23: %d records", len(mid))
	}
	j.Close()
	j2 := openT(t, dir, Options{SegmentBytes: 300})
	if j2.LastSeq() != 50 {
		t.Fatalf("reopened LastSeq %d", j2.LastSeq())
	}
	if err := j2.Append([]Record{rec("f", "x\n", 400)}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, j2, 1); len(got) != 51 || got[50].Seq != 51 {
		t.Fatalf("after reopen: %d records", len(got))
	}
	if err := j2.Release(40); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, j2, 40); len(got) != 12 {
		t.Fatalf("after release: %d records", len(got))
	}
	if len(j2.segs) >= len(j.segs) {
		t.Fatalf("release removed nothing")
	}
}

func lastSegment(t *testing.T, dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(m) == 0 {
		t.Fatal("no segment")
	}
	return m[len(m)-1]
}

func TestTornTailIsCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail []byte
	}{
		{"half frame", EncodeAll([]Record{rec("f", "partial line that was cut\n", 0)})[:13]},
		{"zero fill", make([]byte, 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openT(t, dir, Options{})
			for i := 0; i < 3; i++ {
				if err := j.Append([]Record{rec("f", "abc\n", int64(4*i))}); err != nil {
					t.Fatal(err)
				}
			}
			j.Close()
			seg := lastSegment(t, dir)
			f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(tc.tail)
			f.Close()
			j2 := openT(t, dir, Options{})
			if j2.LastSeq() != 3 {
				t.Fatalf("LastSeq %d", j2.LastSeq())
			}
			if err := j2.Append([]Record{rec("f", "d\n", 12)}); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, j2, 1); len(got) != 4 || got[3].Seq != 4 {
				t.Fatalf("got %d records after cut", len(got))
			}
		})
	}
}

func TestCorruptMiddleIsAnError(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, Options{})
	for i := 0; i < 5; i++ {
		if err := j.Append([]Record{rec("f", "some data\n", int64(10*i))}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	b[len(segMagic)+30] ^= 0xff // inside the first record
	os.WriteFile(seg, b, 0o640)
	_, err := Open(dir, Options{})
	if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), "offset 8") {
		t.Fatalf("want corrupt error naming segment and offset, got %v", err)
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	j := openT(t, t.TempDir(), Options{SegmentBytes: 4096})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := j.Append([]Record{rec("f", "x\n", 0), rec("g", "y\n", 0)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := readAll(t, j, 1)
	if len(got) != 800 {
		t.Fatalf("got %d records", len(got))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if i > 0 && r.Time < got[i-1].Time {
			t.Fatalf("time went backwards at %d", i)
		}
	}
}

func TestCaptureTimeNeverGoesBackwards(t *testing.T) {
	clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	j := openT(t, t.TempDir(), Options{Now: func() time.Time { return clock }, FirstSeq: 1000})
	j.Append([]Record{rec("f", "a\n", 0)})
	clock = clock.Add(-time.Hour) // the wall clock steps back
	j.Append([]Record{rec("f", "b\n", 2)})
	clock = clock.Add(3 * time.Hour)
	j.Append([]Record{rec("f", "c\n", 4)})
	got := readAll(t, j, 1000)
	if got[0].Seq != 1000 || got[1].Time != got[0].Time || got[2].Time <= got[1].Time {
		t.Fatalf("times %d %d %d seq %d", got[0].Time, got[1].Time, got[2].Time, got[0].Seq)
	}
}

func TestJournalFull(t *testing.T) {
	j := openT(t, t.TempDir(), Options{MaxBytes: 200})
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		err = j.Append([]Record{rec("f", "0123456789\n", int64(11*i))})
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	n := j.LastSeq()
	if got := readAll(t, j, 1); uint64(len(got)) != n {
		t.Fatalf("records while full: %d, want %d", len(got), n)
	}
	// Once consumers are done with everything, space comes back, even from the active
	// segment.
	if err := j.Release(n + 1); err != nil {
		t.Fatal(err)
	}
	if err := j.Append([]Record{rec("f", "after\n", 0)}); err != nil {
		t.Fatalf("append after release: %v", err)
	}
	if got := readAll(t, j, n+1); len(got) != 1 || string(got[0].Data) != "after\n" {
		t.Fatalf("after release: %+v", got)
	}
}

func TestCursorAtomic(t *testing.T) {
	dir := t.TempDir()
	if v, err := ReadCursor(dir, "pub"); err != nil || v != 0 {
		t.Fatalf("missing cursor: %d %v", v, err)
	}
	if err := WriteCursor(dir, "pub", 42); err != nil {
		t.Fatal(err)
	}
	if err := WriteCursor(dir, "pub", 43); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadCursor(dir, "pub"); err != nil || v != 43 {
		t.Fatalf("cursor %d %v", v, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
	os.WriteFile(filepath.Join(dir, "bad.cursor"), []byte("xx"), 0o600)
	if _, err := ReadCursor(dir, "bad"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(EncodeAll([]Record{rec("a.jsonl", "{}\n", 3)}))
	f.Add(EncodeAll([]Record{{Op: OpDelete, Source: "s", Path: "p"}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeFrame(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		again := AppendFrame(nil, &r)
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
