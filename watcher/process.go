package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

// maxBatch bounds the data journaled in one append (one fsync, one capture time).
// Smaller batches let the publisher and sinks start while the watcher still reads.
const maxBatch = 8 << 20

// process captures the files whose debounce has passed (all pending files when force)
// and journals their records together: one fsync, one capture time.
func (w *Watcher) process(force bool) {
	if !force && time.Now().Before(w.retryAt) {
		return // the journal refused the last append: the changes wait, still dirty
	}
	for {
		now := time.Now()
		var changes []change
		var refusal error
		size := 0
		more := false
		for key, p := range w.dirty {
			if !force && !p.immediate && !p.due(now, w.o.Debounce, w.o.MaxDelay) {
				continue
			}
			if size >= w.batchLimit() {
				more = true
				break
			}
			ch, err := w.capture(p)
			if errors.Is(err, errAppend) {
				// The file's early chunks found no room in the journal: it stays dirty
				// (its bytes are still in the source) and everything waits a while.
				refusal = err
				break
			}
			if err != nil {
				delete(w.dirty, key)
				continue
			}
			if ch.more {
				more = true
			} else {
				delete(w.dirty, key)
			}
			if ch.recs == nil && ch.state != nil && ch.state != w.files[key] {
				w.files[key] = ch.state // nothing to ship, e.g. a touched file
				w.unsaved = true
				continue
			}
			if ch.recs != nil {
				changes = append(changes, ch)
				for _, r := range ch.recs {
					size += len(r.Data)
				}
			}
		}
		if refusal != nil {
			if len(changes) > 0 {
				w.commit(changes) // what was captured is kept, or stays dirty
			}
			w.refused(refusal)
			return
		}
		if len(changes) == 0 {
			break
		}
		if !w.commit(changes) {
			return
		}
		if !more {
			break
		}
	}
	_ = w.save(false)
}

// capture reads one pending path. A vanished path becomes a delete record when it was
// shipped before.
func (w *Watcher) capture(p *pending) (change, error) {
	s := p.source
	key := s.Name + "/" + p.rel
	abs := filepath.Join(s.Path, filepath.FromSlash(p.rel))
	prev := w.files[key]
	fi, err := os.Lstat(abs)
	var ch change
	if err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			ch, err = captureSymlink(s.Name, p.rel, abs, fi, prev)
		case fi.IsDir():
			ch, err = captureDir(s.Name, p.rel, fi, prev)
		case !fi.Mode().IsRegular() || sqliteSide(p.rel):
			err = errSkip
		case isDB(s.Kind, abs):
			ch, err = w.captureDB(s.Name, p.rel, abs, fi, prev)
		case kindOf(s, p.rel) == "append":
			ch, err = w.captureAppend(s.Name, p.rel, abs, prev)
		default:
			ch, err = w.captureWhole(s.Name, p.rel, abs, prev, w.journalChunks)
		}
	}
	switch {
	case errors.Is(err, errAppend):
		return change{}, err
	case err == nil:
		if ch.state == nil && ch.recs == nil {
			ch.state = prev
		}
		return ch, nil
	case errors.Is(err, fs.ErrNotExist):
		if prev == nil {
			return change{}, err
		}
		delete(w.dbs, key)
		return change{key: key, recs: []journal.Record{{Op: journal.OpDelete, Source: s.Name, Path: p.rel}}}, nil
	default:
		if errors.Is(err, errWithheld) {
			w.withheld.Add(1)
		} else if errors.Is(err, errSkip) || errors.Is(err, errSQLite) {
			w.skipped.Add(1)
		} else {
			w.errs.Add(1)
		}
		if !w.warned[abs] {
			w.warned[abs] = true
			w.log.Warn("file not replicated", "path", abs, "err", err)
		}
		return change{}, err
	}
}

// errAppend marks a capture that stopped because the journal refused its records.
var errAppend = errors.New("journal refused the records")

// journalChunks journals the chunks of a large file ahead of its file record.
func (w *Watcher) journalChunks(recs []journal.Record) error {
	if err := w.o.Journal.Append(recs); err != nil {
		return fmt.Errorf("%w: %w", errAppend, err)
	}
	w.markSent(recs)
	return nil
}

// Appends refused by the journal are retried after a pause that doubles up to
// maxAppendBackoff, so a full disk is probed a few times a minute, not in a loop.
const (
	minAppendBackoff = 500 * time.Millisecond
	maxAppendBackoff = 15 * time.Second
)

// batchLimit is maxBatch, smaller while the disk is full: a batch that fits the space
// that is left goes when a big one would not.
func (w *Watcher) batchLimit() int {
	if w.backoff == 0 {
		return maxBatch
	}
	return max(maxBatch>>min(int(w.backoff/minAppendBackoff), 10), 64<<10)
}

// refused notes an append the journal refused: the changes stay pending and the next
// try waits. It logs the first refusal of a spell; the daemon repeats it once a minute.
func (w *Watcher) refused(err error) {
	w.backoff = min(max(2*w.backoff, minAppendBackoff), maxAppendBackoff)
	w.retryAt = time.Now().Add(w.backoff)
	if errors.Is(err, journal.ErrFull) {
		w.full.Store(true)
	}
	if w.paused.Swap(&err) == nil {
		w.log.Error("journal append failed; changes stay pending and are retried", "err", err, "retry_in", w.backoff)
	}
}

// accepted ends a spell of refused appends.
func (w *Watcher) accepted() {
	w.backoff, w.retryAt = 0, time.Time{}
	w.full.Store(false)
	if w.paused.Swap(nil) != nil {
		w.log.Info("journal accepts appends again; capture resumes")
	}
}

// sentChunk reports whether a chunk was journaled already in this run, so it need not
// travel again. After a restart chunks are sent once more; the store keeps one copy.
func (w *Watcher) sentChunk(h [32]byte) bool {
	if time.Since(w.sentSince) > sentTTL {
		// Retention may sweep a blob no file refers to any more (after its grace of a day
		// by default); forgetting what was sent well within that grace means content that
		// comes back is sent again rather than referring to a swept blob.
		clear(w.sent)
		w.sentSince = time.Now()
	}
	_, ok := w.sent[h]
	return ok
}

// sentTTL bounds how long the watcher trusts that a chunk it sent is still stored.
const sentTTL = 6 * time.Hour

func (w *Watcher) markSent(recs []journal.Record) {
	for _, r := range recs {
		if r.Op == journal.OpChunk {
			if h, err := journal.ParseChunkID(r.Path); err == nil {
				w.sent[h] = struct{}{}
			}
		}
	}
}

// commit journals the changes; their new states are kept only once the journal has
// fsynced them. It returns false when the journal refused them (they stay dirty).
func (w *Watcher) commit(changes []change) bool {
	var recs []journal.Record
	inBatch := map[string]bool{}
	for _, c := range changes {
		for _, r := range c.recs {
			if r.Op == journal.OpChunk {
				if inBatch[r.Path] {
					continue // two files with the same content: one copy travels
				}
				inBatch[r.Path] = true
			}
			recs = append(recs, r)
		}
	}
	if err := w.o.Journal.Append(recs); err != nil {
		w.refused(err)
		for _, c := range changes {
			if tr := w.dbs[c.key]; tr != nil {
				// The tracker has read these WAL frames already: the retry sends a new
				// base image of the database instead.
				tr.based = time.Time{}
			}
			src, rel := splitKey(c.key)
			if s, ok := w.roots[src]; ok {
				w.mark(s, rel, false)
			}
		}
		return false
	}
	w.markSent(recs)
	w.accepted()
	now := time.Now()
	w.mu.Lock()
	for _, c := range changes {
		src, _ := splitKey(c.key)
		w.lastSeen[src] = now
	}
	w.mu.Unlock()
	for _, c := range changes {
		if c.state == nil {
			delete(w.files, c.key)
		} else {
			w.files[c.key] = c.state
		}
	}
	w.unsaved = true
	return true
}

func splitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

// save writes the per-file state at most once a second unless forced.
func (w *Watcher) save(force bool) error {
	if !w.unsaved || (!force && time.Since(w.saved) < time.Second) {
		return nil
	}
	if err := saveState(w.o.StateFile, w.files); err != nil {
		// On a full disk this fails until space returns; the journal has the records,
		// so the state only costs a re-read after a restart. Say it once per spell.
		if !w.saveFailing {
			w.log.Error("cannot save watcher state", "err", err)
		}
		w.saveFailing = true
		return err
	}
	w.saveFailing = false
	w.saved, w.unsaved = time.Now(), false
	return nil
}

// due reports whether a pending path has settled (or waited long enough) to be read.
func (p *pending) due(now time.Time, debounce, maxDelay time.Duration) bool {
	if p.appendy {
		debounce, maxDelay = appendDebounce, appendMaxDelay
	}
	return now.Sub(p.last) >= debounce || now.Sub(p.first) >= maxDelay
}
