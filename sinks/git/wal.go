package git

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/sinks"
)

// walLimit is the write-ahead log size past which a Write checkpoints, so that a replay
// after a crash stays short between boundaries far apart. (A variable for tests.)
var walLimit int64 = 64 << 20

const (
	checkpointName = "checkpoint.json"
	walName        = "wal"
)

// applySegment logs recs ahead (one write, one fsync), then applies them. A failure while
// applying leaves the mirror half-changed: the next Write reloads it from the checkpoint
// and the log, which already holds the records.
func (s *Sink) applySegment(recs []journal.Record) error {
	buf := journal.EncodeAll(recs)
	if _, err := s.wal.Write(buf); err != nil {
		return s.walFailed(err)
	}
	if err := s.wal.Sync(); err != nil {
		return s.walFailed(err)
	}
	s.walSize += int64(len(buf))
	for i := range recs {
		if err := s.apply(&recs[i], false); err != nil {
			s.needRecover = true
			return err
		}
	}
	return nil
}

// walFailed cuts a partly written frame off the log, so that later frames do not follow
// garbage; when even that fails, the next Write recovers (which cuts it on reading).
func (s *Sink) walFailed(err error) error {
	if terr := s.wal.Truncate(s.walSize); terr != nil {
		s.needRecover = true
	}
	return fmt.Errorf("git sink: write-ahead log: %w", err)
}

// recover loads the mirror: the checkpoint, then every record of the write-ahead log after
// it (re-applying a record that was already applied is harmless), then the head commit.
func (s *Sink) recover() error {
	if s.wal != nil {
		s.wal.Close()
		s.wal = nil
	}
	for _, d := range []string{s.o.StateDir, filepath.Join(s.o.StateDir, "content"), filepath.Join(s.o.StateDir, "chunks")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("git sink: state folder: %w", err)
		}
	}
	st, err := loadCheckpoint(filepath.Join(s.o.StateDir, checkpointName))
	if err != nil {
		return err
	}
	s.st, s.dirty = st, map[string]bool{}
	if s.chunks, err = s.scanChunks(); err != nil {
		return err
	}
	if err := s.replay(); err != nil {
		return err
	}
	if err := s.loadHead(); err != nil {
		return err
	}
	// A commit newer than the checkpoint was made just before a crash that kept its
	// checkpoint from being written: the log then holds exactly what it committed.
	if b, ok := s.head.boundary(); ok && (!s.st.Clock.HasLast || b.UnixNano() > s.st.Clock.Last) {
		s.st.Clock.handled(b)
	}
	if s.st.Clock.HasLast {
		s.setStatus(func(st *Status) { st.Boundary = unixUTC(s.st.Clock.Last) })
	}
	s.needRecover = false
	return nil
}

// replay applies the log's records after the checkpoint and cuts off a torn tail (the
// frames of a Write that never returned).
func (s *Sink) replay() error {
	f, err := os.OpenFile(filepath.Join(s.o.StateDir, walName), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("git sink: write-ahead log: %w", err)
	}
	s.wal = f
	buf, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("git sink: write-ahead log: %w", err)
	}
	off := 0
	for off < len(buf) {
		r, n, err := journal.DecodeFrame(buf[off:])
		if err != nil {
			s.log.Warn("write-ahead log ends in a torn or damaged frame; cut there", "offset", off, "err", err)
			break
		}
		if r.Seq > s.st.Seq {
			if err := s.apply(&r, true); err != nil {
				return err
			}
		}
		off += n
	}
	if off < len(buf) {
		if err := f.Truncate(int64(off)); err != nil {
			return fmt.Errorf("git sink: write-ahead log: %w", err)
		}
	}
	s.walSize = int64(off)
	return nil
}

func loadCheckpoint(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("git sink: checkpoint: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("git sink: checkpoint %s is damaged (%v); remove the state folder to rebuild it from a fresh stream: %w", path, err, sinks.ErrPermanent)
	}
	if st.Version > stateVersion {
		return nil, fmt.Errorf("git sink: checkpoint %s has format %d, newer than this build: %w", path, st.Version, sinks.ErrPermanent)
	}
	if st.Files == nil {
		st.Files = map[string]*entry{}
	}
	if st.Contents == nil {
		st.Contents = map[string]*contentInfo{}
	}
	if st.Orphans == nil {
		st.Orphans = map[string]int64{}
	}
	return st, nil
}

// checkpoint makes the mirror durable as it is and empties the log: content and chunk
// files are synced, then the index is written beside and renamed over the old one.
func (s *Sink) checkpoint() error {
	if err := s.syncDirty(); err != nil {
		return fmt.Errorf("git sink: checkpoint: %w", err)
	}
	b, err := json.Marshal(s.st)
	if err != nil {
		return fmt.Errorf("git sink: checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.o.StateDir, checkpointName), b); err != nil {
		return fmt.Errorf("git sink: checkpoint: %w", err)
	}
	if err := s.wal.Truncate(0); err != nil {
		return fmt.Errorf("git sink: checkpoint: %w", err)
	}
	if err := s.wal.Sync(); err != nil {
		return fmt.Errorf("git sink: checkpoint: %w", err)
	}
	s.walSize, s.dirty, s.needCheckpoint = 0, map[string]bool{}, false
	return nil
}

// syncDirty syncs the files and folders written since the last checkpoint: one by one
// when they are few, with one file-system sync when they are many.
func (s *Sink) syncDirty() error {
	s.dirty[filepath.Join(s.o.StateDir, "content")] = true
	s.dirty[filepath.Join(s.o.StateDir, "chunks")] = true
	if len(s.dirty) > 64 {
		if err := syncFS(s.o.StateDir); err == nil {
			return nil
		}
	}
	for p := range s.dirty {
		if err := fsyncPath(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// scanChunks lists the chunk cache and removes temporary files a crash left.
func (s *Sink) scanChunks() (map[string]bool, error) {
	out := map[string]bool{}
	root := filepath.Join(s.o.StateDir, "chunks")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("git sink: chunk cache: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		names, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("git sink: chunk cache: %w", err)
		}
		for _, n := range names {
			if strings.HasSuffix(n.Name(), ".tmp") {
				_ = os.Remove(filepath.Join(root, d.Name(), n.Name()))
				continue
			}
			if len(n.Name()) == 64 {
				out[n.Name()] = true
			}
		}
	}
	return out, nil
}

// writeFileAtomic replaces path with b durably (the journal's temp, fsync, rename, fsync
// folder sequence).
func writeFileAtomic(path string, b []byte) error { return journal.WriteFileAtomic(path, b) }

// fsyncPath syncs a file or a folder.
func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
