package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
)

// rig runs a watcher over a temp source with a real journal and replays what it journals
// into file contents, as restore would.
type rig struct {
	t      *testing.T
	src    string
	j      *journal.Journal
	state  string
	stop   context.CancelFunc
	done   chan error
	next   uint64
	w      *Watcher
	files  map[string][]byte
	chunks map[string][]byte
	links  map[string]string
	dirs   map[string]bool
}

func newRig(t *testing.T, s config.Source) *rig { return newRigWith(t, s, journal.Options{}) }

func newRigWith(t *testing.T, s config.Source, jo journal.Options) *rig {
	dir := t.TempDir()
	r := &rig{t: t, src: filepath.Join(dir, "src"), state: filepath.Join(dir, "state.json"), next: 1, files: map[string][]byte{},
		chunks: map[string][]byte{}, links: map[string]string{}, dirs: map[string]bool{}}
	os.MkdirAll(r.src, 0o755)
	j, err := journal.Open(filepath.Join(dir, "journal"), jo)
	if err != nil {
		t.Fatal(err)
	}
	r.j = j
	t.Cleanup(func() { r.halt(); j.Close() })
	if s.Name == "" {
		s.Name = "s"
	}
	s.Path = r.src
	r.startWith(s)
	return r
}

func (r *rig) startWith(s config.Source) {
	w, err := New(Options{Sources: []config.Source{s}, Journal: r.j, StateFile: r.state, Debounce: 20 * time.Millisecond, ScanInterval: 200 * time.Millisecond})
	if err != nil {
		r.t.Fatal(err)
	}
	r.w = w
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan error, 1)
	ready := make(chan struct{})
	go func() { r.done <- w.Run(ctx, func() { close(ready) }) }()
	<-ready
}

func (r *rig) halt() {
	if r.stop != nil {
		r.stop()
		if err := <-r.done; err != nil {
			r.t.Error(err)
		}
		r.stop = nil
	}
}

// replay applies the journal's new records to r.files and returns them.
func (r *rig) replay() []journal.Record {
	rd := r.j.NewReader(r.next)
	defer rd.Close()
	recs, err := rd.Read(1 << 30)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, rec := range recs {
		switch rec.Op {
		case journal.OpChunk:
			if _, dup := r.chunks[rec.Path]; dup {
				r.t.Fatalf("chunk %s journaled twice", rec.Path)
			}
			r.chunks[rec.Path] = rec.Data
		case journal.OpFile:
			refs, err := journal.DecodeChunks(rec.Data)
			if err != nil {
				r.t.Fatal(err)
			}
			var b []byte
			for _, c := range refs {
				data, ok := r.chunks[c.ID()]
				if !ok {
					r.t.Fatalf("%s refers to chunk %s that was never journaled", rec.Path, c.ID())
				}
				b = append(b, data...)
			}
			if int64(len(b)) != rec.Offset {
				r.t.Fatalf("%s: chunks hold %d bytes, record says %d", rec.Path, len(b), rec.Offset)
			}
			r.files[rec.Path] = b
		case journal.OpSymlink:
			r.links[rec.Path] = string(rec.Data)
		case journal.OpDir:
			r.dirs[rec.Path] = true
		case journal.OpDelete:
			delete(r.files, rec.Path)
			delete(r.links, rec.Path)
			delete(r.dirs, rec.Path)
		case journal.OpAppend:
			b := r.files[rec.Path]
			if int64(len(b)) < rec.Offset {
				r.t.Fatalf("record %d for %s at %d leaves a hole after %d bytes", rec.Seq, rec.Path, rec.Offset, len(b))
			}
			if int64(len(b)) == rec.Offset {
				// A plain append grows the slice: copying the whole file for each
				// record made replaying a 200 MB line quadratic (minutes of copying).
				r.files[rec.Path] = append(b, rec.Data...)
				break
			}
			r.files[rec.Path] = append(append([]byte(nil), b[:rec.Offset]...), rec.Data...)
		}
		r.next = rec.Seq + 1
	}
	return recs
}

// expect waits until the replayed state holds want for path ("" = absent).
func (r *rig) expect(path, want string, absent bool) {
	r.t.Helper()
	// Generous: a 100 MB file is chunked and hashed on a machine that may be busy.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r.replay()
		got, ok := r.files[path]
		if absent && !ok || !absent && ok && string(got) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("%s: have %s (present %v), want %s (absent %v)", path, brief(r.files[path]), r.files[path] != nil, brief([]byte(want)), absent)
}

// brief quotes short contents whole and long ones by length and a little of each end, so
// a failure on a 100 MB file stays readable.
func brief(b []byte) string {
	if len(b) <= 200 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%d bytes %q…%q", len(b), b[:40], b[len(b)-40:])
}

func (r *rig) write(rel, content string, appendTo bool) {
	p := filepath.Join(r.src, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(p, flag, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	f.WriteString(content)
	f.Close()
}

func TestAppendOnlyCompleteLines(t *testing.T) {
	r := newRig(t, config.Source{})
	r.write("a.jsonl", "", false)
	r.expect("a.jsonl", "", false) // a 0-byte file is tracked from its first byte
	r.write("a.jsonl", "{\"x\":1}\n{\"x\":", true)
	r.expect("a.jsonl", "{\"x\":1}\n", false)
	time.Sleep(100 * time.Millisecond)
	if recs := r.replay(); len(recs) != 0 {
		t.Fatalf("a partial line travelled: %+v", recs)
	}
	r.write("a.jsonl", "2}\n", true)
	r.expect("a.jsonl", "{\"x\":1}\n{\"x\":2}\n", false)
}

func TestNewFolderPickedUp(t *testing.T) {
	r := newRig(t, config.Source{})
	r.write("new/deeper/b.jsonl", "{}\n", false)
	r.expect("new/deeper/b.jsonl", "{}\n", false)
	r.write("new/deeper/b.jsonl", "{\"more\":1}\n", true)
	r.expect("new/deeper/b.jsonl", "{}\n{\"more\":1}\n", false)
}

func TestTruncateAndRewriteSentWhole(t *testing.T) {
	r := newRig(t, config.Source{})
	r.write("log.jsonl", "aaaa\nbbbb\n", false)
	r.expect("log.jsonl", "aaaa\nbbbb\n", false)
	r.write("log.jsonl", "cc\n", false) // shrinks
	r.expect("log.jsonl", "cc\n", false)
	r.write("log.jsonl", "dd\n", false) // same size, other bytes, same inode
	r.expect("log.jsonl", "dd\n", false)
	r.write("log.jsonl", "zz\nmore\n", false) // grows, but its start changed
	r.expect("log.jsonl", "zz\nmore\n", false)
	os.Rename(filepath.Join(r.src, "log.jsonl"), filepath.Join(r.src, "log.1.jsonl"))
	r.write("log.jsonl", "fresh\n", false)
	r.expect("log.jsonl", "fresh\n", false)
	r.expect("log.1.jsonl", "zz\nmore\n", false)
	os.Remove(filepath.Join(r.src, "log.1.jsonl"))
	r.expect("log.1.jsonl", "", true)
}

func TestIncludeExclude(t *testing.T) {
	r := newRig(t, config.Source{Include: []string{"**/*.jsonl"}, Exclude: []string{"tmp/**"}})
	r.write("keep.jsonl", "1\n", false)
	r.write("tmp/skip.jsonl", "2\n", false)
	r.write("notes.txt", "3\n", false)
	r.expect("keep.jsonl", "1\n", false)
	time.Sleep(300 * time.Millisecond)
	r.replay()
	if len(r.files) != 1 {
		t.Fatalf("files journaled: %v", r.files)
	}
}

func TestWholeFileKind(t *testing.T) {
	r := newRig(t, config.Source{})
	r.write("report.md", "# v1\n", false)
	r.expect("report.md", "# v1\n", false)
	r.write("report.md", "# v2, longer\n", false)
	r.expect("report.md", "# v2, longer\n", false)
	big := randomText(3 << 20) // many chunks
	r.write("big.bin", big, false)
	r.expect("big.bin", big, false)
	// An edit in the middle of a large file sends only the chunks around it.
	before := len(r.chunks)
	edited := []byte(big)
	copy(edited[len(edited)/2:], "EDITED")
	r.write("big.bin", string(edited), false)
	r.expect("big.bin", string(edited), false)
	if sent := len(r.chunks) - before; sent > 2 {
		t.Fatalf("a 6-byte edit sent %d new chunks", sent)
	}
	// A renamed file travels as a new record with the same chunks.
	before = len(r.chunks)
	os.Rename(filepath.Join(r.src, "big.bin"), filepath.Join(r.src, "moved.bin"))
	r.expect("moved.bin", string(edited), false)
	r.expect("big.bin", "", true)
	if len(r.chunks) != before {
		t.Fatal("a rename sent chunks again")
	}
	os.WriteFile(filepath.Join(r.src, "db.sqlite"), append([]byte("SQLite format 3\x00"), make([]byte, 100)...), 0o644)
	r.write("db.sqlite-wal", "x", false)
	time.Sleep(300 * time.Millisecond)
	r.replay()
	if _, ok := r.files["db.sqlite"]; ok {
		t.Fatal("a SQLite database was shipped as a whole file")
	}
	if _, ok := r.files["db.sqlite-wal"]; ok {
		t.Fatal("a -wal file was shipped")
	}
}

// TestRestartResumesFromSavedState: after a restart nothing already shipped travels again
// and what changed while the watcher was down is picked up.
func TestRestartResumesFromSavedState(t *testing.T) {
	r := newRig(t, config.Source{Name: "s"})
	r.write("a.jsonl", "one\n", false)
	r.expect("a.jsonl", "one\n", false)
	r.halt()
	r.write("a.jsonl", "two\n", true)
	r.startWith(config.Source{Name: "s", Path: r.src})
	r.expect("a.jsonl", "one\ntwo\n", false)
	rd := r.j.NewReader(1)
	all, _ := rd.Read(1 << 30)
	rd.Close()
	shipped := 0
	for _, rec := range all {
		shipped += len(rec.Data)
	}
	if shipped != len("one\ntwo\n") {
		t.Fatalf("%d bytes journaled for 8 bytes of lines: something travelled twice", shipped)
	}
}

func randomText(n int) string {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}

func TestSymlinksAndEmptyFolders(t *testing.T) {
	r := newRig(t, config.Source{})
	os.MkdirAll(filepath.Join(r.src, "empty/inner"), 0o750)
	os.Symlink("../elsewhere/target", filepath.Join(r.src, "link"))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (!r.dirs["empty/inner"] || r.links["link"] == "") {
		r.replay()
		time.Sleep(20 * time.Millisecond)
	}
	if !r.dirs["empty"] || !r.dirs["empty/inner"] || r.links["link"] != "../elsewhere/target" {
		t.Fatalf("dirs %v links %v", r.dirs, r.links)
	}
	// A folder renamed: its files are deleted at the old path and appear at the new one.
	r.write("docs/a.md", "A", false)
	r.expect("docs/a.md", "A", false)
	os.Rename(filepath.Join(r.src, "docs"), filepath.Join(r.src, "papers"))
	r.expect("papers/a.md", "A", false)
	r.expect("docs/a.md", "", true)
}

// TestLargeFileEditDedup: 1 KB edited in the middle of a 100 MB file sends under 1 MB of
// new chunks.
func TestLargeFileEditDedup(t *testing.T) {
	r := newRig(t, config.Source{})
	data := []byte(randomText(100 << 20))
	r.write("model.bin", string(data), false)
	r.expect("model.bin", string(data), false)
	chunkBytes := func() int {
		n := 0
		for _, c := range r.chunks {
			n += len(c)
		}
		return n
	}
	before := chunkBytes()
	copy(data[50<<20:], []byte(randomText(1024)))
	r.write("model.bin", string(data), false)
	r.expect("model.bin", string(data), false)
	sent := chunkBytes() - before
	t.Logf("1 KB edit in 100 MB: %d bytes of new chunks (dedup ratio %.0f:1)", sent, float64(len(data))/float64(max(sent, 1)))
	if sent >= 1<<20 {
		t.Fatalf("edit sent %d bytes of chunks", sent)
	}
}

// TestHugeLineAndBinaryInJSONL: a single 200 MB line travels whole (split into records
// that share one capture time), and binary bytes in a .jsonl file are shipped as they are,
// up to the last newline.
func TestHugeLineAndBinaryInJSONL(t *testing.T) {
	r := newRig(t, config.Source{})
	huge := strings.Repeat("y", 200<<20) + "\n"
	r.write("huge.jsonl", huge, false)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && len(r.files["huge.jsonl"]) != len(huge) {
		recs := r.replay()
		for i := 1; i < len(recs); i++ {
			if recs[i].Path == "huge.jsonl" && recs[i-1].Path == "huge.jsonl" && recs[i].Time != recs[i-1].Time {
				t.Fatal("one line was captured at two different times")
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if string(r.files["huge.jsonl"]) != huge {
		t.Fatalf("huge line: %d bytes arrived", len(r.files["huge.jsonl"]))
	}
	delete(r.files, "huge.jsonl")
	bin := []byte(randomText(4096))
	for i := range bin {
		bin[i] ^= byte(i * 7) // bytes of every value, newlines among them
	}
	bin = append(bin, '\n')
	r.write("bin.jsonl", string(bin), false)
	r.expect("bin.jsonl", string(bin), false)
}
