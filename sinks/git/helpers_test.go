package git

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

// t0 is a boundary the tests start from.
var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

// fakeClock is a wall clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func requireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("these tests need the git command")
	}
}

// gitCmd runs the git command in dir and returns its output.
func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// env is one sink's folders.
type env struct {
	t     *testing.T
	dir   string
	repo  string
	state string
	clock *fakeClock
}

func newEnv(t *testing.T) *env {
	requireGit(t)
	d := t.TempDir()
	return &env{t: t, dir: d, repo: filepath.Join(d, "repo"), state: filepath.Join(d, "state"), clock: &fakeClock{t: t0}}
}

func (e *env) opts() Options {
	return Options{Repo: e.repo, StateDir: e.state, Interval: time.Hour, Host: "vps-1", Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (e *env) open(o Options) *Sink {
	e.t.Helper()
	s, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// write sends a batch with the wall clock just after its newest record, as in steady
// running.
func (e *env) write(s *Sink, recs []journal.Record) {
	e.t.Helper()
	if n := len(recs); n > 0 {
		e.clock.Set(time.Unix(0, recs[n-1].Time).Add(time.Second))
	}
	if err := s.Write(context.Background(), recs); err != nil {
		e.t.Fatal(err)
	}
}

// commit is one line of git log.
type commit struct {
	hash, tree string
	when       time.Time
	subject    string
}

func gitLog(t testing.TB, gitDir string) []commit {
	t.Helper()
	out := gitCmd(t, gitDir, "log", "--reverse", "--format=%H %T %at %s", "main")
	var cs []commit
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 4)
		var sec int64
		fmt.Sscan(f[2], &sec)
		cs = append(cs, commit{hash: f[0], tree: f[1], when: time.Unix(sec, 0).UTC(), subject: f[3]})
	}
	return cs
}

// builder makes records the way the watcher does: sequence numbers in order, chunks sent
// once per run ahead of the file record that needs them.
type builder struct {
	seq   uint64
	sent  map[string]bool
	chunk int
}

func newBuilder() *builder { return &builder{sent: map[string]bool{}, chunk: 4096} }

func (b *builder) rec(t int64, op journal.Op, path string, off int64, mode uint32, data []byte) journal.Record {
	b.seq++
	src, rel, _ := strings.Cut(path, "/")
	return journal.Record{Seq: b.seq, Time: t, Op: op, Source: src, Path: rel, Offset: off, Mode: mode, Data: data}
}

// file gives the chunk records a whole file needs, then its file record.
func (b *builder) file(t int64, path string, mode uint32, content []byte) []journal.Record {
	var out []journal.Record
	var refs []journal.ChunkRef
	for off := 0; off < len(content) || (off == 0 && len(content) == 0); off += b.chunk {
		if len(content) == 0 {
			break
		}
		part := content[off:min(off+b.chunk, len(content))]
		ref := journal.ChunkRef{Hash: sha256.Sum256(part), Size: uint32(len(part))}
		refs = append(refs, ref)
		if !b.sent[ref.ID()] {
			b.sent[ref.ID()] = true
			b.seq++
			out = append(out, journal.Record{Seq: b.seq, Time: t, Op: journal.OpChunk, Path: ref.ID(), Data: part})
		}
	}
	return append(out, b.rec(t, journal.OpFile, path, int64(len(content)), mode, journal.EncodeChunks(refs)))
}

func (b *builder) appendTo(t int64, path string, off int64, data string) journal.Record {
	return b.rec(t, journal.OpAppend, path, off, 0o644, []byte(data))
}

func (b *builder) del(t int64, path string) journal.Record {
	return b.rec(t, journal.OpDelete, path, 0, 0, nil)
}

func (b *builder) link(t int64, path, target string) journal.Record {
	return b.rec(t, journal.OpSymlink, path, 0, 0, []byte(target))
}

func (b *builder) dir(t int64, path string) journal.Record {
	return b.rec(t, journal.OpDir, path, 0, 0o755, nil)
}

// want is what a checkout must hold at one path.
type want struct {
	data []byte
	exec bool
	link string
}

// model applies records with restore's meaning, independently of the sink, and answers
// what a commit at a boundary must hold.
type model struct {
	chunks map[string][]byte
	files  map[string]*mfile
}

type mfile struct {
	kind string
	data []byte
	mode uint32
	link string
}

func newModel() *model { return &model{chunks: map[string][]byte{}, files: map[string]*mfile{}} }

func (m *model) apply(r journal.Record) {
	key := r.Source + "/" + r.Path
	f := m.files[key]
	switch r.Op {
	case journal.OpChunk:
		m.chunks[r.Path] = r.Data
	case journal.OpDelete:
		delete(m.files, key)
	case journal.OpFile:
		refs, _ := journal.DecodeChunks(r.Data)
		var data []byte
		for _, c := range refs {
			data = append(data, m.chunks[c.ID()]...)
		}
		m.files[key] = &mfile{kind: "file", data: data, mode: r.Mode}
	case journal.OpSymlink:
		m.files[key] = &mfile{kind: "link", link: string(r.Data)}
	case journal.OpDir:
		m.files[key] = &mfile{kind: "dir"}
	case journal.OpAppend:
		if r.Offset == 0 {
			mode := uint32(0)
			if f != nil {
				mode = f.mode
			}
			f = &mfile{kind: "append", mode: mode}
			m.files[key] = f
		}
		if f == nil || f.kind != "append" || r.Offset > int64(len(f.data)) {
			return
		}
		if r.Mode != 0 {
			f.mode = r.Mode
		}
		f.data = append(f.data[:r.Offset:r.Offset], r.Data...)
	}
}

// at is the expected checkout after every record with Time <= b.
func expectAt(recs []journal.Record, b time.Time, big int64) map[string]want {
	m := newModel()
	for _, r := range recs {
		if r.Time <= b.UnixNano() {
			m.apply(r)
		}
	}
	out := map[string]want{}
	for k, f := range m.files {
		switch f.kind {
		case "dir":
		case "link":
			out[k] = want{link: f.link}
		default:
			if big > 0 && int64(len(f.data)) > big {
				out[k] = want{data: []byte("pointer")}
				continue
			}
			out[k] = want{data: f.data, exec: f.mode&0o100 != 0}
		}
	}
	return out
}

// checkout extracts a commit with git archive and reads it back.
func checkout(t testing.TB, gitDir, rev string) map[string]want {
	t.Helper()
	dst := t.TempDir()
	cmd := exec.Command("sh", "-c", "git archive --format=tar "+rev+" | tar -x -C "+dst)
	cmd.Dir = gitDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("archive %s: %v\n%s", rev, err, out)
	}
	return readTree(t, dst)
}

// readTree reads the files and links under dir (folders only hold them).
func readTree(t testing.TB, dst string) map[string]want {
	t.Helper()
	got := map[string]want{}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		rel = filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			got[rel] = want{link: l}
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		if bytes.HasPrefix(b, []byte(PointerHeader)) {
			b = []byte("pointer")
		}
		got[rel] = want{data: b, exec: fi.Mode()&0o100 != 0}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameState(t testing.TB, label string, got, exp map[string]want) {
	t.Helper()
	var problems []string
	for k, w := range exp {
		g, ok := got[k]
		switch {
		case !ok:
			problems = append(problems, "missing "+k)
		case g.link != w.link || g.exec != w.exec || !bytes.Equal(g.data, w.data):
			problems = append(problems, fmt.Sprintf("%s differs: got %q exec=%v link=%q, want %q exec=%v link=%q",
				k, trunc(g.data), g.exec, g.link, trunc(w.data), w.exec, w.link))
		}
	}
	for k := range got {
		if _, ok := exp[k]; !ok {
			problems = append(problems, "unexpected "+k)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Fatalf("%s: checkout differs from the expected state:\n%s", label, strings.Join(problems, "\n"))
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func fsck(t testing.TB, gitDir string) {
	t.Helper()
	gitCmd(t, gitDir, "fsck", "--strict", "--no-dangling")
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
