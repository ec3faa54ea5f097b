package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rule makes one kind of file operation fail.
type rule struct {
	op    string // "open", "write", "sync", "truncate", "syncdir"
	match string // substring of the file name; "" matches every file
	times int    // failures left; -1 for ever
	err   error
	keep  int  // write: bytes written before the failure (-1: half)
	drop  bool // sync: the unsynced bytes are lost too (the page cache let go of them)
}

// faultOps is the real file system with failures injected by rules.
type faultOps struct {
	mu    sync.Mutex
	rules []*rule
	syncs map[string]int
	// durable is the size of each file at its last successful sync, for drop.
	durable map[string]int64
}

func newFaultOps() *faultOps {
	return &faultOps{syncs: map[string]int{}, durable: map[string]int64{}}
}

func (o *faultOps) add(r rule) { o.mu.Lock(); o.rules = append(o.rules, &r); o.mu.Unlock() }

func (o *faultOps) clear() { o.mu.Lock(); o.rules = nil; o.mu.Unlock() }

func (o *faultOps) fire(op, name string) *rule {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.rules {
		if r.op == op && r.times != 0 && strings.Contains(filepath.Base(name), r.match) {
			if r.times > 0 {
				r.times--
			}
			return r
		}
	}
	return nil
}

func (o *faultOps) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	if r := o.fire("open", name); r != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: r.err}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{f: f, o: o, name: name}, nil
}

func (o *faultOps) Remove(name string) error { return os.Remove(name) }

func (o *faultOps) SyncDir(dir string) error {
	if r := o.fire("syncdir", dir); r != nil {
		return r.err
	}
	return syncDir(dir)
}

type faultFile struct {
	f    *os.File
	o    *faultOps
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if r := f.o.fire("write", f.name); r != nil {
		keep := r.keep
		if keep < 0 {
			keep = len(p) / 2
		}
		n, _ := f.f.Write(p[:min(keep, len(p))])
		return n, r.err
	}
	return f.f.Write(p)
}

func (f *faultFile) Sync() error {
	if r := f.o.fire("sync", f.name); r != nil {
		if r.drop {
			f.o.mu.Lock()
			size := f.o.durable[f.name]
			f.o.mu.Unlock()
			_ = f.f.Truncate(size)
		}
		return &os.PathError{Op: "sync", Path: f.name, Err: r.err}
	}
	if err := f.f.Sync(); err != nil {
		return err
	}
	st, err := f.f.Stat()
	if err != nil {
		return err
	}
	f.o.mu.Lock()
	f.o.syncs[filepath.Base(f.name)]++
	f.o.durable[f.name] = st.Size()
	f.o.mu.Unlock()
	return nil
}

func (f *faultFile) Truncate(size int64) error {
	if r := f.o.fire("truncate", f.name); r != nil {
		return &os.PathError{Op: "truncate", Path: f.name, Err: r.err}
	}
	return f.f.Truncate(size)
}

func (f *faultFile) Close() error { return f.f.Close() }

// ledger remembers every record the journal acknowledged, and every record ever seen
// under a sequence number, to prove that none is lost and no number is given twice.
type ledger struct {
	t     *testing.T
	acked map[uint64]string
	seen  map[uint64]string
	n     int
}

func newLedger(t *testing.T) *ledger {
	return &ledger{t: t, acked: map[uint64]string{}, seen: map[uint64]string{}}
}

// append appends one record with unique content; it returns the journal's error.
func (l *ledger) append(j *Journal) (uint64, error) {
	l.n++
	r := []Record{rec("f", fmt.Sprintf("record %d %s\n", l.n, strings.Repeat("x", 40)), 0)}
	err := j.Append(r)
	if err == nil {
		l.acked[r[0].Seq] = string(r[0].Data)
		l.note(r[0].Seq, string(r[0].Data))
	}
	return r[0].Seq, err
}

func (l *ledger) mustAppend(j *Journal) uint64 {
	l.t.Helper()
	seq, err := l.append(j)
	if err != nil {
		l.t.Fatalf("append: %v", err)
	}
	return seq
}

func (l *ledger) note(seq uint64, data string) {
	l.t.Helper()
	if old, ok := l.seen[seq]; ok && old != data {
		l.t.Fatalf("sequence %d given to two records: %q and %q", seq, old, data)
	}
	l.seen[seq] = data
}

// check reads the whole journal through j: every acknowledged record is there under its
// number, numbers run without a gap, and no number names another record than before.
func (l *ledger) check(j *Journal) {
	l.t.Helper()
	got := readAll(l.t, j, j.FirstSeq())
	have := map[uint64]bool{}
	for i, r := range got {
		if i > 0 && r.Seq != got[i-1].Seq+1 {
			l.t.Fatalf("sequence %d follows %d", r.Seq, got[i-1].Seq)
		}
		l.note(r.Seq, string(r.Data))
		have[r.Seq] = true
	}
	for seq, data := range l.acked {
		if !have[seq] {
			l.t.Fatalf("acknowledged record %d (%q) is gone", seq, data)
		}
	}
}

// reopen closes j and opens the folder again with the real file system, then checks it
// and appends one more record, which must get a number never seen.
func (l *ledger) reopen(j *Journal, dir string, o Options) *Journal {
	l.t.Helper()
	j.Close()
	o.ops = nil
	j2 := openT(l.t, dir, o)
	l.check(j2)
	seq := l.mustAppend(j2)
	for s := range l.seen {
		if s > seq {
			l.t.Fatalf("new record got %d although %d exists", seq, s)
		}
	}
	l.check(j2)
	return j2
}

func segSizes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range m {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = st.Size()
	}
	return out
}

func TestFailedWriteLeavesLogAsItWas(t *testing.T) {
	cases := []struct {
		name string
		r    rule
	}{
		{"short write", rule{op: "write", times: 1, keep: -1}},
		{"ENOSPC after part of the batch", rule{op: "write", times: 1, keep: -1, err: syscall.ENOSPC}},
		{"ENOSPC before any byte", rule{op: "write", times: 1, keep: 0, err: syscall.ENOSPC}},
		{"EIO on write", rule{op: "write", times: 1, keep: 7, err: syscall.EIO}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ops := newFaultOps()
			o := Options{ops: ops}
			j, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			l := newLedger(t)
			for range 3 {
				l.mustAppend(j)
			}
			before := segSizes(t, dir)
			ops.add(c.r)
			if _, err := l.append(j); err == nil {
				t.Fatal("append succeeded through a failing write")
			} else if c.r.err == syscall.ENOSPC && !DiskFull(err) {
				t.Fatalf("DiskFull(%v) = false", err)
			}
			if after := segSizes(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("segments changed by a failed append: %v, was %v", after, before)
			}
			if err := j.Stopped(); err != nil {
				t.Fatalf("an undone write stopped the journal: %v", err)
			}
			if seq := l.mustAppend(j); seq != 4 {
				t.Fatalf("append after the failure got %d, want 4", seq)
			}
			l.check(j)
			l.reopen(j, dir, o)
		})
	}
}

func TestWriteThatCannotBeUndoneStops(t *testing.T) {
	dir := t.TempDir()
	ops := newFaultOps()
	o := Options{ops: ops}
	j, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger(t)
	l.mustAppend(j)
	l.mustAppend(j)
	ops.add(rule{op: "write", times: 1, keep: -1, err: syscall.ENOSPC})
	ops.add(rule{op: "truncate", times: -1, err: syscall.EIO})
	if _, err := l.append(j); err == nil {
		t.Fatal("append succeeded")
	}
	if j.Stopped() == nil {
		t.Fatal("journal runs on after a torn write it could not cut")
	}
	// Even with the disk healthy again, nothing is appended before Recover.
	ops.clear()
	ops.add(rule{op: "truncate", times: -1, err: syscall.EIO})
	if _, err := l.append(j); !errors.Is(err, ErrStopped) {
		t.Fatalf("append on a stopped journal: %v", err)
	}
	if err := j.Recover(); err == nil {
		t.Fatal("recover succeeded although it cannot truncate")
	}
	ops.clear()
	if err := j.Recover(); err != nil {
		t.Fatal(err)
	}
	if seq := l.mustAppend(j); seq != 3 {
		t.Fatalf("append after recovery got %d, want 3", seq)
	}
	l.check(j)
	l.reopen(j, dir, o)
}

func TestFailedFsyncStopsUntilRecover(t *testing.T) {
	for _, drop := range []bool{false, true} {
		for _, how := range []string{"recover", "restart"} {
			t.Run(fmt.Sprintf("lost=%v/%s", drop, how), func(t *testing.T) {
				dir := t.TempDir()
				ops := newFaultOps()
				o := Options{ops: ops}
				j, err := Open(dir, o)
				if err != nil {
					t.Fatal(err)
				}
				l := newLedger(t)
				l.mustAppend(j)
				l.mustAppend(j)
				ops.add(rule{op: "sync", times: 1, err: syscall.EIO, drop: drop})
				failed, err := l.append(j)
				if err == nil {
					t.Fatal("append acknowledged although its fsync failed")
				}
				if j.LastSeq() != 2 {
					t.Fatalf("LastSeq %d after a failed fsync, want 2", j.LastSeq())
				}
				if _, err := l.append(j); !errors.Is(err, ErrStopped) {
					t.Fatalf("append after a failed fsync: %v (want ErrStopped)", err)
				}
				if n := len(readAll(t, j, 1)); n != 2 {
					t.Fatalf("reader sees %d records of a stopped journal, want the 2 durable ones", n)
				}
				if how == "restart" {
					// The process ends before it recovers; a new one opens what is on disk.
					j = l.reopen(j, dir, o)
					return
				}
				if err := j.Recover(); err != nil {
					t.Fatal(err)
				}
				// The record whose fsync failed keeps its number: it is written again.
				got := readAll(t, j, failed)
				if len(got) != 1 || got[0].Seq != failed {
					t.Fatalf("after recovery: %d records from %d", len(got), failed)
				}
				l.note(got[0].Seq, string(got[0].Data))
				if seq := l.mustAppend(j); seq != failed+1 {
					t.Fatalf("append after recovery got %d, want %d", seq, failed+1)
				}
				l.reopen(j, dir, o)
			})
		}
	}
}

func TestConcurrentAppendersAcrossFailedFsync(t *testing.T) {
	dir := t.TempDir()
	ops := newFaultOps()
	o := Options{ops: ops, SegmentBytes: 2048}
	j, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				r := []Record{rec("f", fmt.Sprintf("g%d-%d\n", g, i), 0)}
				if err := j.Append(r); err == nil {
					mu.Lock()
					acked[r[0].Seq] = string(r[0].Data)
					mu.Unlock()
				} else if errors.Is(err, ErrStopped) {
					_ = j.Recover()
				}
			}
		}()
	}
	for range 5 {
		ops.add(rule{op: "sync", times: 1, err: syscall.EIO, drop: true})
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	_ = j.Recover()
	l := newLedger(t)
	l.acked = acked
	for s, d := range acked {
		l.seen[s] = d
	}
	l.check(j)
	l.reopen(j, dir, Options{SegmentBytes: 2048})
}

func TestFailedRollKeepsTheJournal(t *testing.T) {
	cases := []struct {
		name  string
		r     rule
		stops bool
	}{
		{"new segment cannot be created (ENOSPC)", rule{op: "open", match: "000000000000000000", times: 1, err: syscall.ENOSPC}, false},
		{"header write fails", rule{op: "write", times: 1, keep: 3, err: syscall.ENOSPC}, false},
		{"new segment fsync fails", rule{op: "sync", times: 1, err: syscall.EIO, match: "new"}, false},
		{"folder fsync fails", rule{op: "syncdir", times: 1, err: syscall.EIO}, false},
		{"old segment fsync fails", rule{op: "sync", times: 1, err: syscall.EIO}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ops := newFaultOps()
			o := Options{ops: ops, SegmentBytes: 200}
			j, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			l := newLedger(t)
			l.mustAppend(j)
			l.mustAppend(j) // the next one rolls
			before := segSizes(t, dir)
			r := c.r
			if r.match == "new" {
				r.match = segName(3)
			}
			ops.add(r)
			if _, err := l.append(j); err == nil {
				t.Fatal("append succeeded through a failing roll")
			}
			if got := j.Stopped() != nil; got != c.stops {
				t.Fatalf("stopped = %v (%v), want %v", got, j.Stopped(), c.stops)
			}
			if after := segSizes(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("segments after a failed roll: %v, was %v", after, before)
			}
			if c.stops {
				if err := j.Recover(); err != nil {
					t.Fatal(err)
				}
			}
			if seq := l.mustAppend(j); seq != 3 {
				t.Fatalf("append after the failed roll got %d, want 3", seq)
			}
			if n := len(segSizes(t, dir)); n != 2 {
				t.Fatalf("%d segments, want 2", n)
			}
			l.check(j)
			l.reopen(j, dir, Options{SegmentBytes: 200})
		})
	}
}

func TestOpenNeedsNoFreeSpace(t *testing.T) {
	dir := t.TempDir()
	// A segment whose header never made it (a crash right after creating it) on a disk
	// where nothing new can be created.
	j := openT(t, dir, Options{})
	l := newLedger(t)
	l.mustAppend(j)
	j.Close()
	if err := os.WriteFile(filepath.Join(dir, segName(2)), []byte("MMR"), 0o640); err != nil {
		t.Fatal(err)
	}
	ops := newFaultOps()
	ops.add(rule{op: "open", match: segName(2), times: -1, err: syscall.ENOSPC})
	ops.add(rule{op: "write", times: -1, err: syscall.ENOSPC})
	o := Options{ops: ops}
	j2, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	l.check(j2)
	if _, err := l.append(j2); !DiskFull(err) {
		t.Fatalf("append on a full disk: %v", err)
	}
	ops.clear()
	if seq := l.mustAppend(j2); seq != 2 {
		t.Fatalf("append once space is back got %d, want 2", seq)
	}
	l.reopen(j2, dir, Options{})

	// An empty folder on a full disk opens too; the first segment comes with the first
	// append that finds space.
	empty := t.TempDir()
	ops = newFaultOps()
	ops.add(rule{op: "open", times: -1, err: syscall.ENOSPC})
	j3, err := Open(empty, Options{ops: ops, FirstSeq: 40})
	if err != nil {
		t.Fatalf("open of an empty journal on a full disk: %v", err)
	}
	defer j3.Close()
	if j3.FirstSeq() != 40 || j3.LastSeq() != 39 {
		t.Fatalf("first %d last %d", j3.FirstSeq(), j3.LastSeq())
	}
	if err := j3.Append([]Record{rec("f", "x\n", 0)}); !DiskFull(err) {
		t.Fatalf("append: %v", err)
	}
	ops.clear()
	r := []Record{rec("f", "y\n", 0)}
	if err := j3.Append(r); err != nil || r[0].Seq != 40 {
		t.Fatalf("append once space is back: seq %d, %v", r[0].Seq, err)
	}
}

func TestSyncIntervalGroupsFsyncs(t *testing.T) {
	ops := newFaultOps()
	j := openT(t, t.TempDir(), Options{ops: ops, SyncInterval: time.Hour})
	syncs := func() int {
		ops.mu.Lock()
		defer ops.mu.Unlock()
		n := 0
		for _, c := range ops.syncs {
			n += c
		}
		return n
	}
	// An appender alone never waits for company.
	done := make(chan error, 1)
	go func() { done <- j.Append([]Record{rec("f", "alone\n", 0)}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a lone appender waited for sync_interval")
	}

	// With another append under way, the fsync waits for it and covers both.
	j2 := openT(t, t.TempDir(), Options{ops: ops, SyncInterval: time.Second})
	before := syncs()
	j2.appenders.Add(1) // the second appender has begun (until its Append returns)
	first := make(chan error, 1)
	go func() { first <- j2.Append([]Record{rec("f", "first\n", 0)}) }()
	for j2.LastSeq() == 0 {
		j2.mu.Lock()
		written := j2.written
		j2.mu.Unlock()
		if written == 1 {
			break // the first record is written; its fsync is waiting
		}
		time.Sleep(time.Millisecond)
	}
	err := j2.Append([]Record{rec("f", "second\n", 0)})
	j2.appenders.Add(-1)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := syncs() - before; n != 1 {
		t.Fatalf("%d fsyncs for two appends that overlapped, want 1", n)
	}
	if got := len(readAll(t, j2, 1)); got != 2 {
		t.Fatalf("%d records", got)
	}
}

// On a full disk, releasing every record frees the space although no new segment can be
// created: the active one is emptied in place.
func TestReleaseOnFullDiskFreesSpace(t *testing.T) {
	dir := t.TempDir()
	ops := newFaultOps()
	o := Options{ops: ops, SegmentBytes: 200}
	j, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger(t)
	for range 5 {
		l.mustAppend(j)
	}
	ops.add(rule{op: "open", times: -1, err: syscall.ENOSPC})
	ops.add(rule{op: "write", times: -1, err: syscall.ENOSPC})
	if _, err := l.append(j); !DiskFull(err) {
		t.Fatalf("append: %v", err)
	}
	if err := j.Release(j.LastSeq() + 1); err != nil {
		t.Fatal(err)
	}
	sizes := segSizes(t, dir)
	if len(sizes) != 1 || sizes[segName(6)] != int64(len(segMagic)) {
		t.Fatalf("segments after releasing everything on a full disk: %v", sizes)
	}
	if j.Size() != int64(len(segMagic)) || j.FirstSeq() != 6 {
		t.Fatalf("size %d first %d", j.Size(), j.FirstSeq())
	}
	ops.clear()
	l.acked = map[uint64]string{} // released on purpose
	if seq := l.mustAppend(j); seq != 6 {
		t.Fatalf("append after release got %d, want 6", seq)
	}
	l.check(j)
	l.reopen(j, dir, Options{SegmentBytes: 200})
}

// A reader that has caught up lets go of a released segment: an open file would keep
// the space of a deleted one in use, and on a full disk nothing could be appended.
func TestReaderLetsGoOfReleasedSegment(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, Options{SegmentBytes: 200})
	l := newLedger(t)
	for range 3 {
		l.mustAppend(j)
	}
	r := j.NewReader(1)
	defer r.Close()
	if recs, err := r.Read(1 << 20); err != nil || len(recs) != 3 {
		t.Fatalf("read %d, %v", len(recs), err)
	}
	if r.f == nil {
		t.Fatal("reader holds no segment after reading")
	}
	if err := j.Release(4); err != nil {
		t.Fatal(err)
	}
	if recs, err := r.Read(1 << 20); err != nil || len(recs) != 0 {
		t.Fatalf("read after release: %d, %v", len(recs), err)
	}
	if r.f != nil {
		t.Fatal("reader still holds a released segment open")
	}
	seq := l.mustAppend(j)
	if recs, err := r.Read(1 << 20); err != nil || len(recs) != 1 || recs[0].Seq != seq {
		t.Fatalf("read of the next record: %v, %v", recs, err)
	}
}
