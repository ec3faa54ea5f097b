package git

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

func cachedChunks(t *testing.T, state string) int {
	n := 0
	filepath.WalkDir(filepath.Join(state, "chunks"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// Chunks no file refers to leave the cache after the retention; content that comes back
// after that is still committed right, from the content cache, without its chunks.
func TestChunkPrune(t *testing.T) {
	e := newEnv(t)
	o := e.opts()
	o.ChunkRetention = 30 * time.Minute
	s := e.open(o)
	defer s.Close()
	b := newBuilder()
	v1 := []byte(strings.Repeat("a", 5000)) // two chunks
	v2 := []byte(strings.Repeat("b", 3000)) // one
	var all []journal.Record
	step := func(recs ...journal.Record) {
		all = append(all, recs...)
		e.write(s, recs)
	}
	m, h := time.Minute, time.Hour
	step(b.file(at(m), "w/f.txt", 0o644, v1)...)
	step(b.file(at(h+m), "w/f.txt", 0o644, v2)...)        // commits 11:00 (v1)
	step(b.appendTo(at(2*h+m), "s/tick.jsonl", 0, "1\n")) // commits 12:00 (v2): v1's chunks unreferenced
	step(b.appendTo(at(3*h+m), "s/tick.jsonl", 2, "2\n")) // commits 13:00: v1's chunks pruned
	if n := cachedChunks(t, e.state); n != 1 {
		t.Fatalf("%d chunks cached, want only v2's", n)
	}
	// v1 again: the watcher does not send chunks again that it sent in this run.
	step(b.file(at(3*h+2*m), "w/f.txt", 0o644, v1)...)
	step(b.file(at(3*h+3*m), "w/g.txt", 0o755, v1)...)
	step(b.appendTo(at(4*h+m), "s/tick.jsonl", 4, "3\n"))
	log := gitLog(t, e.repo)
	if len(log) != 4 {
		t.Fatalf("log %v", log)
	}
	for _, c := range log {
		sameState(t, c.subject, checkout(t, e.repo, c.hash), expectAt(all, c.when, 0))
	}
	fsck(t, e.repo)
}

// A file whose chunks never reached the cache is committed as a pointer, not dropped.
func TestMissingChunkPointer(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	recs := b.file(at(time.Minute), "w/f.txt", 0o644, []byte("hello"))
	recs = recs[1:] // lose the chunk
	recs = append(recs, b.appendTo(at(time.Hour+time.Minute), "s/x.jsonl", 0, "x\n"))
	e.write(s, recs)
	ptr := gitCmd(t, e.repo, "show", "main:w/f.txt")
	if !strings.HasPrefix(ptr, PointerHeader) || !strings.Contains(ptr, "sha256 unknown") || !strings.Contains(ptr, "blob blobs/") {
		t.Fatalf("pointer:\n%s", ptr)
	}
}

// fakeDB is a page applier: Data is size, offset (4 bytes each), then bytes written at
// the offset; Finalize marks the first byte, as the real one rewrites the header.
type fakeDB struct{}

func (fakeDB) ApplyPages(img *os.File, data []byte) error {
	if len(data) < 8 {
		return errors.New("short page set")
	}
	size, off := binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:])
	if _, err := img.WriteAt(data[8:], int64(off)); err != nil {
		return err
	}
	return img.Truncate(int64(size))
}

func (fakeDB) Finalize(img *os.File) error {
	_, err := img.WriteAt([]byte("F"), 0)
	return err
}

func pages(size, off uint32, b string) []byte {
	out := binary.BigEndian.AppendUint32(nil, size)
	out = binary.BigEndian.AppendUint32(out, off)
	return append(out, b...)
}

// Databases are committed as finalised copies; the image itself takes further pages.
func TestDatabase(t *testing.T) {
	e := newEnv(t)
	o := e.opts()
	o.DB = fakeDB{}
	s := e.open(o)
	defer s.Close()
	b := newBuilder()
	m := time.Minute
	e.write(s, []journal.Record{
		b.rec(at(m), journal.OpDBBase, "m/a.db", 0, 0o644, pages(8, 0, "abcd")),
		b.rec(at(m), journal.OpDBBase, "m/a.db", 1, 0o644, pages(8, 4, "efgh")),
		b.rec(at(2*m), journal.OpDBPages, "m/a.db", 0, 0, pages(8, 2, "XY")),
		b.rec(at(3*m), journal.OpDBPages, "m/orphan.db", 0, 0, pages(8, 0, "nobase")),
		b.rec(at(time.Hour+m), journal.OpDBPages, "m/a.db", 0, 0, pages(6, 0, "Zb")),
		b.rec(at(time.Hour+2*m), journal.OpDBBase, "m/bad.db", 0, 0, []byte("x")),
	})
	if got := gitCmd(t, e.repo, "show", "main:m/a.db"); got != "FbXYefgh" {
		t.Fatalf("database at 11:00: %q", got)
	}
	if out := gitCmd(t, e.repo, "ls-tree", "-r", "--name-only", "main"); strings.TrimSpace(out) != "m/a.db" {
		t.Fatalf("tree: %s", out)
	}
	e.write(s, []journal.Record{b.appendTo(at(2*time.Hour+m), "s/x.jsonl", 0, "x\n")})
	if got := gitCmd(t, e.repo, "show", "main:m/a.db"); got != "FbXYef" {
		t.Fatalf("database at 12:00: %q", got)
	}
	if out := gitCmd(t, e.repo, "ls-tree", "-r", "--name-only", "main"); strings.Contains(out, "bad.db") {
		t.Fatalf("a database whose pages failed is committed: %s", out)
	}
}

// Without an applier, databases are left out rather than committed wrong.
func TestDatabaseWithoutApplier(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	e.write(s, []journal.Record{
		b.rec(at(time.Minute), journal.OpDBBase, "m/a.db", 0, 0o644, pages(4, 0, "abcd")),
		b.appendTo(at(time.Minute), "s/x.jsonl", 0, "x\n"),
		b.appendTo(at(time.Hour+time.Minute), "s/x.jsonl", 2, "y\n"),
	})
	if out := gitCmd(t, e.repo, "ls-tree", "-r", "--name-only", "main"); strings.TrimSpace(out) != "s/x.jsonl" {
		t.Fatalf("tree: %s", out)
	}
}

// Paths git cannot hold are left out; a file shadowed by a folder of the same name gives
// way to it; fsck stays clean.
func TestAwkwardPaths(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	var recs []journal.Record
	recs = append(recs, b.file(at(time.Minute), "w/.git/config", 0o644, []byte("x"))...)
	recs = append(recs, b.file(at(time.Minute), "w/a", 0o644, []byte("file"))...)
	recs = append(recs, b.file(at(time.Minute), "w/a/b", 0o644, []byte("inside"))...)
	recs = append(recs, b.file(at(time.Minute), "w/a.txt", 0o644, []byte("sorts between"))...)
	recs = append(recs, b.file(at(time.Minute), "w/a-b", 0o644, []byte("dash"))...)
	recs = append(recs, b.file(at(time.Minute), "w/empty", 0o644, nil)...)
	recs = append(recs, b.appendTo(at(time.Hour+time.Minute), "s/x.jsonl", 0, "x\n"))
	e.write(s, recs)
	got := checkout(t, e.repo, "main")
	sameState(t, "awkward", got, map[string]want{"w/a/b": {data: []byte("inside")}, "w/a.txt": {data: []byte("sorts between")},
		"w/a-b": {data: []byte("dash")}, "w/empty": {data: []byte{}}})
	fsck(t, e.repo)
}

// Close and reopen: the next commit continues the history, and a reopened sink does not
// commit what is already committed.
func TestReopen(t *testing.T) {
	e := newEnv(t)
	b := newBuilder()
	s := e.open(e.opts())
	e.write(s, []journal.Record{b.appendTo(at(time.Minute), "s/a.jsonl", 0, "1\n"),
		b.appendTo(at(time.Hour+time.Minute), "s/a.jsonl", 2, "2\n")})
	s.Close()
	s = e.open(e.opts())
	defer s.Close()
	if st := s.Status(); st.LastCommit == "" || !st.Boundary.Equal(t0.Add(time.Hour)) {
		t.Fatalf("status after reopening: %+v", st)
	}
	e.write(s, []journal.Record{b.appendTo(at(2*time.Hour+time.Minute), "s/a.jsonl", 4, "3\n")})
	log := gitLog(t, e.repo)
	if len(log) != 2 {
		t.Fatalf("log %v", log)
	}
	if parent := strings.TrimSpace(gitCmd(t, e.repo, "rev-parse", "main^")); parent != log[0].hash {
		t.Fatalf("second commit's parent %s, want %s", parent, log[0].hash)
	}
}

// gc runs every GCEvery commits; the sink goes on committing into the repacked repository.
func TestGC(t *testing.T) {
	e := newEnv(t)
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	// A git that logs its calls and turns "gc --auto" into a full gc, so that the
	// repository really is repacked under the sink.
	bin := filepath.Join(e.dir, "bin")
	calls := filepath.Join(e.dir, "calls")
	os.Mkdir(bin, 0o755)
	script := "#!/bin/sh\ncase \"$*\" in\n*\" gc --auto \"*) echo \"$*\" >> " + calls + "; exec " + real + " -C \"$2\" gc -q ;;\nesac\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	o := e.opts()
	o.GCEvery = 2
	s := e.open(o)
	defer s.Close()
	b := newBuilder()
	var all []journal.Record
	for h := 0; h < 6; h++ {
		r := b.appendTo(at(time.Duration(h)*time.Hour+time.Minute), "s/a.jsonl", int64(2*h), "x\n")
		all = append(all, r)
		e.write(s, []journal.Record{r})
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "a pack", func() bool {
		packs, _ := filepath.Glob(filepath.Join(e.repo, ".git", "objects", "pack", "*.pack"))
		return len(packs) > 0
	})
	r := b.appendTo(at(7*time.Hour), "s/a.jsonl", 12, "y\n")
	all = append(all, r)
	e.write(s, []journal.Record{r})
	log := gitLog(t, e.repo)
	if len(log) != 6 {
		t.Fatalf("%d commits", len(log))
	}
	for _, c := range log {
		sameState(t, c.subject, checkout(t, e.repo, c.hash), expectAt(all, c.when, 0))
	}
	fsck(t, e.repo)
	if b, _ := os.ReadFile(calls); !strings.Contains(string(b), "gc --auto -q") {
		t.Fatalf("git calls: %s", b)
	}
}

// The write-ahead log is checkpointed once it grows large, between boundaries too.
func TestLogCheckpointBySize(t *testing.T) {
	defer func(old int64) { walLimit = old }(walLimit)
	walLimit = 4 << 20
	e := newEnv(t)
	s := e.open(e.opts())
	b := newBuilder()
	big := strings.Repeat("z", 1<<20)
	var off int64
	for i := 0; i < 12; i++ {
		e.write(s, []journal.Record{b.appendTo(at(time.Minute), "s/big.jsonl", off, big)})
		off += int64(len(big))
	}
	fi, err := os.Stat(filepath.Join(e.state, walName))
	if err != nil || fi.Size() > walLimit {
		t.Fatalf("log not checkpointed: %v %v", fi.Size(), err)
	}
	s.abandon()
	s = e.open(e.opts())
	defer s.Close()
	e.write(s, []journal.Record{b.appendTo(at(time.Hour+time.Minute), "s/x.jsonl", 0, "x\n")})
	if size := strings.TrimSpace(gitCmd(t, e.repo, "cat-file", "-s", "main:s/big.jsonl")); size == "" {
		t.Fatal("no big file")
	}
}

// Malformed records (a path that climbs out, an absolute path, a chunk list that does
// not add up to the declared size) are skipped with the meaning package state gives
// them: the mirror neither fails nor writes them, and what follows still commits.
func TestMalformedRecordsIgnored(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	b := newBuilder()
	recs := []journal.Record{b.appendTo(at(time.Minute), "s/ok.jsonl", 0, "ok\n"),
		b.dir(at(time.Minute), "s/../../escaped"),
		b.appendTo(at(time.Minute), "s//etc/abs.jsonl", 0, "x\n")}
	liar := b.file(at(time.Minute), "s/liar.bin", 0o644, []byte("four"))
	liar[len(liar)-1].Offset = 1 << 40
	recs = append(recs, liar...)
	recs = append(recs, b.appendTo(at(time.Hour+time.Minute), "s/ok.jsonl", 3, "more\n"))
	e.write(s, recs)
	got := checkout(t, e.repo, "main")
	if len(got) != 1 || string(got["s/ok.jsonl"].data) != "ok\n" {
		t.Fatalf("commit holds %v, want only s/ok.jsonl", got)
	}
}
