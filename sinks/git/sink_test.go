package git

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

// scenario is a day of changes: files, appends, a link, an executable, an empty folder,
// no-op rewrites and a delete, spread so that some boundaries change and some do not.
func scenario(b *builder) [][]journal.Record {
	m := time.Minute
	var b1 []journal.Record
	b1 = append(b1, b.file(at(5*m), "workspaces/notes.md", 0o644, []byte("# notes\nfirst\n"))...)
	b1 = append(b1, b.file(at(6*m), "workspaces/bin/run.sh", 0o755, []byte("#!/bin/sh\necho hi\n"))...)
	b1 = append(b1, b.appendTo(at(7*m), "sessions/agent-1/s.jsonl", 0, `{"a":1}`+"\n"))
	b1 = append(b1, b.link(at(8*m), "workspaces/current", "notes.md"))
	b1 = append(b1, b.dir(at(9*m), "workspaces/empty"))
	b1 = append(b1, b.file(at(10*m), "workspaces/deep/a/b/c.txt", 0o600, []byte(strings.Repeat("x", 10000)))...)
	b1 = append(b1, b.appendTo(at(50*m), "sessions/agent-1/s.jsonl", 8, `{"a":2}`+"\n"))
	// Batch 2 crosses 11:00: the commit for 11:00 comes before the 11:10 record.
	b2 := []journal.Record{b.appendTo(at(55*m), "sessions/agent-1/s.jsonl", 16, `{"a":3}`+"\n")}
	b2 = append(b2, b.file(at(70*m), "workspaces/notes.md", 0o644, []byte("# notes\nsecond\n"))...)
	b2 = append(b2, b.appendTo(at(80*m), "sessions/agent-2/t.jsonl", 0, "line\n"))
	// Batch 3 at 13:30 and 13:40 changes nothing (same content again): neither 12:00's
	// state (committed before it) nor 13:00's nor 14:00's differs from 11:xx's last.
	b3 := b.file(at(210*m), "workspaces/notes.md", 0o644, []byte("# notes\nsecond\n"))
	b3 = append(b3, b.appendTo(at(220*m), "sessions/agent-2/t.jsonl", 0, "line\n"))
	// Batch 4 after 14:00: a delete, a rewrite from scratch, a mode change.
	b4 := []journal.Record{b.del(at(250*m), "workspaces/deep/a/b/c.txt")}
	b4 = append(b4, b.appendTo(at(255*m), "sessions/agent-1/s.jsonl", 0, "rotated\n"))
	b4 = append(b4, b.file(at(260*m), "workspaces/bin/run.sh", 0o644, []byte("#!/bin/sh\necho hi\n"))...)
	return [][]journal.Record{b1, b2, b3, b4}
}

func TestBoundaries(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	batches := scenario(newBuilder())
	var all []journal.Record
	for _, batch := range batches {
		all = append(all, batch...)
		e.write(s, batch)
	}
	// No record after 15:00 comes: the timer commits it once the grace has passed.
	e.clock.Set(t0.Add(5*time.Hour + 29*time.Second))
	s.tick()
	if n := len(gitLog(t, e.repo)); n != 2 {
		t.Fatalf("%d commits before the grace passed, want 2", n)
	}
	e.clock.Set(t0.Add(5*time.Hour + 31*time.Second))
	s.tick()

	log := gitLog(t, e.repo)
	wantB := []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(5 * time.Hour)}
	if len(log) != len(wantB) {
		t.Fatalf("got %d commits %v, want one per changed boundary %v", len(log), log, wantB)
	}
	for i, c := range log {
		if !c.when.Equal(wantB[i]) {
			t.Errorf("commit %d at %s, want %s", i, c.when, wantB[i])
		}
		if want := "mmreplicate vps-1 state at " + wantB[i].Format(time.RFC3339); c.subject != want {
			t.Errorf("subject %q, want %q", c.subject, want)
		}
		sameState(t, c.subject, checkout(t, e.repo, c.hash), expectAt(all, wantB[i], 0))
	}
	fsck(t, e.repo)
	body := gitCmd(t, e.repo, "log", "-1", "--format=%B%n%an <%ae>", log[1].hash)
	for _, want := range []string{"sequence ", "added 1, changed 1, removed 0", "A sessions/agent-2/t.jsonl",
		"M workspaces/notes.md", "mmreplicate <mmreplicate@vps-1>"} {
		if !strings.Contains(body, want) {
			t.Errorf("message of the second commit lacks %q:\n%s", want, body)
		}
	}
	ls := gitCmd(t, e.repo, "ls-tree", "-r", log[0].hash)
	for _, want := range []string{"120000 blob", "100755 blob"} {
		if !strings.Contains(ls, want) {
			t.Errorf("first tree lacks a %s entry:\n%s", want, ls)
		}
	}
	st := s.Status()
	if st.LastCommit != log[2].hash || st.Commits != 3 || !st.Boundary.Equal(wantB[2]) || st.Pushed {
		t.Errorf("status %+v", st)
	}
}

// A record captured exactly at a boundary belongs to it; one captured a nanosecond later
// does not.
func TestRecordOnBoundary(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	recs := []journal.Record{b.appendTo(at(time.Hour), "s/a.jsonl", 0, "on\n"),
		b.appendTo(at(time.Hour)+1, "s/a.jsonl", 3, "after\n")}
	e.write(s, recs)
	log := gitLog(t, e.repo)
	if len(log) != 1 || !log[0].when.Equal(t0.Add(time.Hour)) {
		t.Fatalf("log %v", log)
	}
	sameState(t, "on boundary", checkout(t, e.repo, "main"), expectAt(recs, t0.Add(time.Hour), 0))
}

// After downtime the backlog arrives at once: one commit per boundary with a change.
func TestBacklogAfterDowntime(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	var recs []journal.Record
	hours := []int{0, 1, 2, 5, 6, 9} // changes at 10:30, 11:30, ...; none in 13:xx, 14:xx, 17:xx, 18:xx
	for i, h := range hours {
		recs = append(recs, b.appendTo(at(time.Duration(h)*time.Hour+30*time.Minute), "s/log.jsonl", int64(i*2), "x\n"))
	}
	e.write(s, recs)
	e.clock.Set(t0.Add(11 * time.Hour))
	s.tick()
	log := gitLog(t, e.repo)
	if len(log) != len(hours) {
		t.Fatalf("%d commits, want %d: %v", len(log), len(hours), log)
	}
	for i, c := range log {
		bnd := t0.Add(time.Duration(hours[i]+1) * time.Hour)
		if !c.when.Equal(bnd) {
			t.Errorf("commit %d at %s, want %s", i, c.when, bnd)
		}
		sameState(t, c.subject, checkout(t, e.repo, c.hash), expectAt(recs, bnd, 0))
	}
	fsck(t, e.repo)
}

// A record arriving after its boundary was committed by the timer goes into the next one.
func TestLateRecord(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	e.write(s, []journal.Record{b.appendTo(at(10*time.Minute), "s/a.jsonl", 0, "a\n")})
	e.clock.Set(t0.Add(time.Hour + time.Minute))
	s.tick()
	late := b.appendTo(at(20*time.Minute), "s/a.jsonl", 2, "late\n")
	if err := s.Write(context.Background(), []journal.Record{late}); err != nil {
		t.Fatal(err)
	}
	e.write(s, []journal.Record{b.appendTo(at(2*time.Hour+time.Minute), "s/b.jsonl", 0, "b\n")})
	log := gitLog(t, e.repo)
	if len(log) != 2 || !log[1].when.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("log %v", log)
	}
	got := checkout(t, e.repo, log[1].hash)
	if string(got["s/a.jsonl"].data) != "a\nlate\n" {
		t.Fatalf("late record not in the next commit: %q", got["s/a.jsonl"].data)
	}
}

// The timer commits a quiet boundary by the real clock.
func TestTimerRealClock(t *testing.T) {
	e := newEnv(t)
	o := e.opts()
	o.Interval, o.Now = 200*time.Millisecond, nil
	s := e.open(o)
	defer s.Close()
	b := newBuilder()
	now := time.Now()
	r := b.appendTo(now.UnixNano(), "s/a.jsonl", 0, "hello\n")
	if err := s.Write(context.Background(), []journal.Record{r}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a timed commit", func() bool { return s.Status().Commits == 1 })
	if got, want := s.Status().Boundary, boundaryOf(r.Time, o.Interval); !got.Equal(want) {
		t.Fatalf("boundary %s, want %s", got, want)
	}
	sameState(t, "timer", checkout(t, e.repo, "main"), map[string]want{"s/a.jsonl": {data: []byte("hello\n")}})
}

// A batch written, the sink dropped without Close, then the same batch again plus more:
// the same commits as a run without the crash, none twice.
func TestCrashRecovery(t *testing.T) {
	batches := scenario(newBuilder())
	var all []journal.Record
	for _, b := range batches {
		all = append(all, b...)
	}
	ref := newEnv(t)
	rs := ref.open(ref.opts())
	for _, b := range batches {
		ref.write(rs, b)
	}
	rs.Close()

	e := newEnv(t)
	s := e.open(e.opts())
	e.write(s, batches[0])
	e.write(s, batches[1])
	s.abandon()

	// Again, with a failure half-way through a batch, then a crash.
	s = e.open(e.opts())
	e.write(s, batches[1])
	failAt := batches[2][len(batches[2])-1].Seq
	s.hookApply = func(r *journal.Record) error {
		if r.Seq == failAt {
			return errors.New("disk on fire")
		}
		return nil
	}
	if err := s.Write(context.Background(), batches[2]); err == nil {
		t.Fatal("the hook did not fail the write")
	}
	s.abandon()

	// Again, crashing right after the timed commit, before its checkpoint.
	s = e.open(e.opts())
	e.write(s, append(append([]journal.Record{}, batches[2]...), batches[3]...))
	s.hookCommit = func() error { return errors.New("power cut") }
	e.clock.Set(t0.Add(6 * time.Hour))
	s.tick()
	if s.Status().Commits != 1 {
		t.Fatalf("status after the timed commit: %+v", s.Status())
	}
	s.abandon()

	s = e.open(e.opts())
	defer s.Close()
	e.write(s, batches[2])
	e.write(s, batches[3])
	e.clock.Set(t0.Add(7 * time.Hour))
	s.tick()
	ref.clock.Set(t0.Add(6 * time.Hour))
	rs = ref.open(ref.opts())
	rs.tick()
	rs.Close()

	got, want := gitLog(t, e.repo), gitLog(t, ref.repo)
	if len(got) != len(want) {
		t.Fatalf("%d commits after crashes, %d without: %v", len(got), len(want), got)
	}
	for i := range got {
		if got[i].tree != want[i].tree || !got[i].when.Equal(want[i].when) {
			t.Errorf("commit %d: %s at %s, want tree %s at %s", i, got[i].tree, got[i].when, want[i].tree, want[i].when)
		}
		sameState(t, got[i].subject, checkout(t, e.repo, got[i].hash), expectAt(all, got[i].when, 0))
	}
	fsck(t, e.repo)
}

// A torn frame at the end of the log (a Write that never returned) is cut off.
func TestTornLog(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	b := newBuilder()
	first := []journal.Record{b.appendTo(at(time.Minute), "s/a.jsonl", 0, "one\n")}
	e.write(s, first)
	s.abandon()
	f, err := os.OpenFile(filepath.Join(e.state, walName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	second := b.appendTo(at(2*time.Minute), "s/a.jsonl", 4, "two\n")
	frame := journal.AppendFrame(nil, &second)
	f.Write(frame[:len(frame)-3])
	f.Close()
	s = e.open(e.opts())
	defer s.Close()
	e.write(s, []journal.Record{second, b.appendTo(at(time.Hour+time.Minute), "s/b.jsonl", 0, "x\n")})
	sameState(t, "after a torn log", checkout(t, e.repo, "main"), map[string]want{"s/a.jsonl": {data: []byte("one\ntwo\n")}})
}

// Files over BigFileBytes become pointers naming their blobs and hash.
func TestBigFilePointer(t *testing.T) {
	e := newEnv(t)
	o := e.opts()
	o.BigFileBytes = 5000
	s := e.open(o)
	defer s.Close()
	b := newBuilder()
	big := []byte(strings.Repeat("0123456789", 1000))
	var recs []journal.Record
	recs = append(recs, b.file(at(time.Minute), "w/big.bin", 0o755, big)...)
	recs = append(recs, b.file(at(time.Minute), "w/small.txt", 0o644, []byte("small"))...)
	recs = append(recs, b.appendTo(at(time.Minute), "s/big.jsonl", 0, strings.Repeat("y", 6000)))
	recs = append(recs, b.appendTo(at(2*time.Hour), "s/later.jsonl", 0, "z"))
	e.write(s, recs)
	sameState(t, "pointers", checkout(t, e.repo, "main"), expectAt(recs, t0.Add(time.Hour), o.BigFileBytes))
	ptr := gitCmd(t, e.repo, "show", "main:w/big.bin")
	sum := sha256hex(big)
	for _, want := range []string{PointerHeader + "\n", "path w/big.bin\n", "kind file\n", "size 10000\n",
		"sha256 " + sum + "\n", "blob blobs/", "mmreplicate restore --at", "--path 'w/big.bin'"} {
		if !strings.Contains(ptr, want) {
			t.Errorf("pointer lacks %q:\n%s", want, ptr)
		}
	}
	if n := strings.Count(ptr, "\nblob "); n != 3 {
		t.Errorf("pointer lists %d blobs, want 3:\n%s", n, ptr)
	}
	ptr = gitCmd(t, e.repo, "show", "main:s/big.jsonl")
	if !strings.Contains(ptr, "kind append\n") || !strings.Contains(ptr, "sha256 "+sha256hex([]byte(strings.Repeat("y", 6000)))) {
		t.Errorf("append pointer:\n%s", ptr)
	}
	if size := gitCmd(t, e.repo, "cat-file", "-s", "main:w/big.bin"); len(strings.TrimSpace(size)) > 3 {
		t.Errorf("pointer blob is %s bytes", size)
	}
}

// The same state gives the same tree whichever repository, batching and interval it went
// through.
func TestIdenticalTrees(t *testing.T) {
	var trees []string
	for _, iv := range []time.Duration{time.Hour, 30 * time.Minute} {
		e := newEnv(t)
		o := e.opts()
		o.Interval = iv
		s := e.open(o)
		var all []journal.Record
		for _, batch := range scenario(newBuilder()) {
			all = append(all, batch...)
		}
		if iv == time.Hour {
			e.write(s, all)
		} else {
			for i := range all {
				e.write(s, all[i:i+1])
			}
		}
		e.clock.Set(t0.Add(6 * time.Hour))
		s.tick()
		s.Close()
		trees = append(trees, strings.TrimSpace(gitCmd(t, e.repo, "rev-parse", "main^{tree}")))
	}
	if trees[0] != trees[1] {
		t.Fatalf("the same state gave trees %s and %s", trees[0], trees[1])
	}
}

func sha256hex(b []byte) string {
	return chunkListID(b) // the hex SHA-256 of b
}
