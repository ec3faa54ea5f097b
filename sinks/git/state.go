package git

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	fstate "github.com/mmreplicate/mmreplicate/state"
)

// stateVersion is the checkpoint format written by this build.
const stateVersion = 1

// state is the mirror's index, checkpointed as JSON; the bytes of append-only files and
// database images live in content files, those of whole files in the chunk cache.
type state struct {
	Version  int                     `json:"v"`
	Seq      uint64                  `json:"seq"` // newest record applied
	Files    map[string]*entry       `json:"files"`
	Clock    clock                   `json:"clock"`
	Contents map[string]*contentInfo `json:"contents,omitempty"` // by chunk-list id
	Orphans  map[string]int64        `json:"orphans,omitempty"`  // chunk id: boundary it was first seen unreferenced
	SinceGC  int                     `json:"since_gc"`
}

func newState() *state {
	return &state{Version: stateVersion, Files: map[string]*entry{}, Contents: map[string]*contentInfo{}, Orphans: map[string]int64{}}
}

// entry is one live path. It is replaced or updated on every change, which also drops its
// cached blob hash.
type entry struct {
	Kind   string `json:"k"` // a manifest kind
	Mode   uint32 `json:"m,omitempty"`
	Size   int64  `json:"s,omitempty"`
	Seq    uint64 `json:"q"`           // record of its last change
	Chunks []byte `json:"c,omitempty"` // file: the OpFile record's chunk list
	Target string `json:"l,omitempty"` // symlink
	// DB: the image has a base; Broken: why it cannot be committed until its next base.
	DB     bool   `json:"db,omitempty"`
	Broken string `json:"x,omitempty"`
	// Blob is the committed blob of this content (hex), Ptr whether it is a pointer.
	Blob string `json:"b,omitempty"`
	Ptr  bool   `json:"p,omitempty"`
}

// contentInfo caches what a whole file's chunk list gives, so that a renamed file or one
// that changes back to earlier content needs neither its chunks nor a second read.
type contentInfo struct {
	Blob   string `json:"b,omitempty"` // blob of the bytes themselves
	SHA256 string `json:"h,omitempty"` // hash of the bytes, for pointers
	Seen   int64  `json:"t"`           // newest boundary that referred to it
}

// chunkListID names a chunk list.
func chunkListID(list []byte) string {
	h := sha256.Sum256(list)
	return hex.EncodeToString(h[:])
}

// contentPath is where an append-only file's bytes or a database image live.
func (s *Sink) contentPath(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(s.o.StateDir, "content", hex.EncodeToString(h[:16]))
}

// chunkPath is where a cached chunk lives.
func (s *Sink) chunkPath(id string) string {
	return filepath.Join(s.o.StateDir, "chunks", id[:2], id)
}

// apply changes the mirror by one record, with the meaning package state gives it (the
// same as restore's: the commit at B must equal `restore --at B`). replay is set
// while the write-ahead log is replayed after a crash.
func (s *Sink) apply(r *journal.Record, replay bool) error {
	if s.hookApply != nil {
		if err := s.hookApply(r); err != nil {
			return err
		}
	}
	if !replay && s.st.Clock.late(r) {
		s.log.Warn("record arrived after its boundary was committed; it goes into the next commit",
			"seq", r.Seq, "path", r.Source+"/"+r.Path, "captured", r.CaptureTime())
	}
	var err error
	if r.Op == journal.OpChunk {
		err = s.putChunk(r, replay)
	} else {
		var prev *fstate.Entry
		if e := s.st.Files[manifest.Key(r.Source, r.Path)]; e != nil {
			prev = &fstate.Entry{Kind: e.Kind, Mode: e.Mode, Size: e.Size, Seq: e.Seq, Target: e.Target}
		}
		ch, serr := fstate.Step(prev, r)
		if serr != nil {
			// Restore cannot apply this record either; the path keeps what it held.
			s.log.Warn("malformed record ignored", "seq", r.Seq, "err", serr)
		} else {
			err = s.change(r, ch)
		}
	}
	if err != nil {
		return fmt.Errorf("git sink: record %d (%s %s/%s): %w", r.Seq, r.Op, r.Source, r.Path, err)
	}
	s.st.Seq = r.Seq
	s.st.Clock.note(r)
	return nil
}

// change makes the mirror follow what fstate.Step says a record does to a path.
func (s *Sink) change(r *journal.Record, ch fstate.Change) error {
	next := ch.Next
	switch ch.Action {
	case fstate.Remove:
		return s.drop(ch.Key)
	case fstate.Skip:
		// The bytes before this record or the database's base image never arrived;
		// restore keeps what it has (or nothing), and so does the mirror.
		return nil
	case fstate.Replace:
		return s.reset(r, next.Kind, func(e *entry) {
			e.Mode, e.Size, e.Target = next.Mode, next.Size, next.Target
			if next.Kind == manifest.KindFile {
				e.Chunks = bytes.Clone(r.Data)
			}
		})
	case fstate.Write:
		return s.applyAppend(r, ch)
	case fstate.Pages:
		return s.applyDB(r, ch)
	}
	return nil
}

// reset gives a path a new kind, dropping what it held; like restore, the mode is kept
// unless the new record sets it.
func (s *Sink) reset(r *journal.Record, kind string, set func(*entry)) error {
	key := manifest.Key(r.Source, r.Path)
	old := s.st.Files[key]
	e := &entry{Kind: kind, Seq: r.Seq}
	if old != nil {
		e.Mode = old.Mode
		if err := s.dropContent(key, old); err != nil {
			return err
		}
	}
	set(e)
	s.st.Files[key] = e
	return nil
}

func (s *Sink) drop(key string) error {
	if e := s.st.Files[key]; e != nil {
		if err := s.dropContent(key, e); err != nil {
			return err
		}
		delete(s.st.Files, key)
	}
	return nil
}

// dropContent removes the content file of an append-only file or a database.
func (s *Sink) dropContent(key string, e *entry) error {
	if e.Kind != manifest.KindAppend && e.Kind != manifest.KindDB {
		return nil
	}
	if err := os.Remove(s.contentPath(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	delete(s.dirty, s.contentPath(key))
	return nil
}

func (s *Sink) applyAppend(r *journal.Record, ch fstate.Change) error {
	if ch.Fresh {
		if err := s.reset(r, manifest.KindAppend, func(*entry) {}); err != nil {
			return err
		}
	}
	e := s.st.Files[ch.Key]
	if err := s.writeContent(ch.Key, ch.Fresh, r.Offset, r.Data); err != nil {
		return err
	}
	e.Mode, e.Size, e.Seq, e.Blob, e.Ptr = ch.Next.Mode, ch.Next.Size, r.Seq, "", false
	return nil
}

// writeContent truncates a content file to off and writes data there. It is not synced:
// the write-ahead log already holds the record, and the checkpoint syncs the file.
func (s *Sink) writeContent(key string, fresh bool, off int64, data []byte) error {
	p := s.contentPath(key)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if fresh {
		err = f.Truncate(0)
	}
	if err == nil {
		err = f.Truncate(off)
	}
	if err == nil && len(data) > 0 {
		_, err = f.WriteAt(data, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	s.dirty[p] = true
	return err
}

func (s *Sink) applyDB(r *journal.Record, ch fstate.Change) error {
	key := ch.Key
	if ch.Fresh {
		if err := s.reset(r, manifest.KindDB, func(e *entry) { e.DB = true }); err != nil {
			return err
		}
		if err := s.writeContent(key, true, 0, nil); err != nil {
			return err
		}
	}
	e := s.st.Files[key]
	if !e.DB || e.Broken != "" {
		return nil // pages that cannot be applied until the next base image
	}
	e.Mode, e.Seq, e.Blob, e.Ptr = ch.Next.Mode, r.Seq, "", false
	if s.o.DB == nil {
		e.Broken = "no SQLite applier in this build"
		return nil
	}
	p := s.contentPath(key)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	aerr := s.o.DB.ApplyPages(f, r.Data)
	if err := f.Close(); err != nil {
		return err
	}
	s.dirty[p] = true
	var pathErr *fs.PathError
	var errno syscall.Errno
	if errors.As(aerr, &pathErr) || errors.As(aerr, &errno) {
		return aerr // the disk failed, not the data: retried like any write
	}
	if aerr != nil {
		e.Broken = aerr.Error()
		s.log.Warn("database pages cannot be applied; the database is left out of commits until its next base image",
			"seq", r.Seq, "path", r.Source+"/"+r.Path, "err", aerr)
	}
	return nil
}

// putChunk stores a chunk in the cache under its hash. A chunk already cached is kept,
// except during a replay after a crash, when its file may hold whatever the crash left
// and is checked.
func (s *Sink) putChunk(r *journal.Record, replay bool) error {
	id := r.Path
	sum := sha256.Sum256(r.Data)
	if len(id) != 64 || hex.EncodeToString(sum[:]) != id {
		s.log.Warn("chunk does not match its id; ignored", "seq", r.Seq, "id", id)
		return nil
	}
	p := s.chunkPath(id)
	if s.chunks[id] && !replay {
		return nil
	}
	if s.chunks[id] {
		if b, err := os.ReadFile(p); err == nil && sha256.Sum256(b) == sum {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	// Written in place, without a temporary file and a rename: the log already holds the
	// chunk, and a replay checks every chunk it logged, so a torn file is rewritten.
	if err := os.WriteFile(p, r.Data, 0o600); err != nil {
		return err
	}
	s.chunks[id] = true
	s.dirty[p] = true
	s.dirty[filepath.Dir(p)] = true
	return nil
}

// prune drops cached chunks and content facts that no live file has referred to for
// ChunkRetention (at least until the next commit), counted in boundary time.
func (s *Sink) prune(b time.Time) {
	now := b.UnixNano()
	keep := max(s.o.ChunkRetention, 0).Nanoseconds()
	live := map[string]bool{}
	for _, e := range s.st.Files {
		if e.Kind != manifest.KindFile {
			continue
		}
		if ci := s.st.Contents[chunkListID(e.Chunks)]; ci != nil {
			ci.Seen = now
		}
		refs, _ := journal.DecodeChunks(e.Chunks)
		for _, c := range refs {
			live[c.ID()] = true
		}
	}
	for id := range s.chunks {
		if live[id] {
			delete(s.st.Orphans, id)
			continue
		}
		since, ok := s.st.Orphans[id]
		if !ok {
			s.st.Orphans[id] = now
			continue
		}
		if now-since > keep {
			if err := os.Remove(s.chunkPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("cannot remove cached chunk", "id", id, "err", err)
				continue
			}
			delete(s.chunks, id)
			delete(s.st.Orphans, id)
			delete(s.dirty, s.chunkPath(id))
		}
	}
	for id := range s.st.Orphans {
		if !s.chunks[id] {
			delete(s.st.Orphans, id)
		}
	}
	// Content facts are a few bytes each and name a blob the history keeps, so they are
	// kept four times as long as chunks: a file changing back to content from weeks ago
	// is still committed from that blob, its chunks long gone.
	for id, ci := range s.st.Contents {
		if now-ci.Seen > 4*keep {
			delete(s.st.Contents, id)
		}
	}
}
