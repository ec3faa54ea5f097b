// Package watcher turns changes to the files of each source into journal records:
// fsnotify on every directory, a periodic reconcile scan because inotify drops events,
// per-file debouncing, and the per-file state (offset and identity) that decides what is
// new.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/redact"
)

// Append-only files are read almost at once: only complete lines travel, so reading a
// file mid-write costs nothing, and every millisecond here is loss window.
const (
	appendDebounce = 10 * time.Millisecond
	appendMaxDelay = 50 * time.Millisecond
	pollEvery      = 10 * time.Millisecond
	// maxScanInterval bounds how long a change inotify missed can wait on a huge tree.
	maxScanInterval = time.Minute
)

// Options configure a Watcher. Zero durations take the defaults.
type Options struct {
	Sources      []config.Source
	Journal      *journal.Journal
	StateFile    string
	Ignore       []string      // absolute folders never watched (the data dir)
	Debounce     time.Duration // quiet time before a changed file is read; default 100ms
	MaxDelay     time.Duration // read a file that keeps changing at least this often; default 1s
	ScanInterval time.Duration // reconcile scan period; default 3s
	// Secrets is config.Secrets.Action: redact (default), withhold or off.
	Secrets string
	Log     *slog.Logger
}

// SourceStats is what status shows per source.
type SourceStats struct {
	Name       string
	Files      int
	LastChange time.Time
}

// Watcher captures changes of all sources. Run it once.
type Watcher struct {
	o     Options
	log   *slog.Logger
	fsw   *fsnotify.Watcher
	files map[string]*fileState // key: source + "/" + rel
	dirty map[string]*pending
	roots map[string]config.Source

	mu          sync.Mutex
	lastSeen    map[string]time.Time
	counts      map[string]int
	saved       time.Time
	unsaved     bool
	overflows   atomic.Uint64
	skipped     atomic.Uint64
	errs        atomic.Uint64
	full        atomic.Bool
	paused      atomic.Pointer[error] // the journal's refusal while changes wait for it
	retryAt     time.Time             // no append is tried before this after a refusal
	backoff     time.Duration
	saveFailing bool
	warned      map[string]bool
	sent        map[[32]byte]struct{} // chunks journaled recently (see sentTTL)
	sentSince   time.Time
	dbs         map[string]*dbTrack // SQLite databases followed through their WAL
	dbGaps      atomic.Uint64       // WAL continuity lost: a new base image was needed
	scanner     *redact.Scanner     // nil when secrets are shipped as they are
	secretsMu   sync.Mutex
	secrets     map[string]uint64 // redactions per rule
	withheld    atomic.Uint64
}

type pending struct {
	source    config.Source
	rel       string
	appendy   bool // an append-only file: a shorter debounce
	first     time.Time
	last      time.Time
	immediate bool
}

// New prepares a watcher; it loads the saved per-file state.
func New(o Options) (*Watcher, error) {
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Second
	}
	if o.ScanInterval <= 0 {
		o.ScanInterval = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	files, err := loadState(o.StateFile)
	if err != nil {
		return nil, err
	}
	w := &Watcher{o: o, log: o.Log.With("component", "watcher"), files: files, dirty: map[string]*pending{},
		roots: map[string]config.Source{}, lastSeen: map[string]time.Time{}, counts: map[string]int{}, warned: map[string]bool{}, sent: map[[32]byte]struct{}{}, sentSince: time.Now(), dbs: map[string]*dbTrack{}, secrets: map[string]uint64{}}
	if o.Secrets != config.SecretsOff {
		w.scanner = redact.New()
	}
	for _, s := range o.Sources {
		w.roots[s.Name] = s
	}
	return w, nil
}

// Stats returns per-source figures.
func (w *Watcher) Stats() []SourceStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]SourceStats, 0, len(w.o.Sources))
	for _, s := range w.o.Sources {
		out = append(out, SourceStats{Name: s.Name, Files: w.counts[s.Name], LastChange: w.lastSeen[s.Name]})
	}
	return out
}

// Counters returns inotify overflows, skipped files and capture errors so far.
func (w *Watcher) Counters() (overflows, skipped, errs uint64) {
	return w.overflows.Load(), w.skipped.Load(), w.errs.Load()
}

// Secrets returns how many secrets each rule redacted, and how many files were withheld.
func (w *Watcher) Secrets() (map[string]uint64, uint64) {
	w.secretsMu.Lock()
	defer w.secretsMu.Unlock()
	out := make(map[string]uint64, len(w.secrets))
	for k, v := range w.secrets {
		out[k] = v
	}
	return out, w.withheld.Load()
}

// DBRebases counts the times a database's WAL could not be followed continuously (a
// checkpoint restarted it before its frames were read, the file was replaced, ...) and a
// new base image was taken: restores stay exact, only coarser around that moment.
func (w *Watcher) DBRebases() uint64 { return w.dbGaps.Load() }

// JournalFull reports whether the last append was refused for lack of journal space.
func (w *Watcher) JournalFull() bool { return w.full.Load() }

// Paused is the journal's error while captured changes wait for it (a full disk, a
// stopped journal), nil while appends succeed.
func (w *Watcher) Paused() error {
	if p := w.paused.Load(); p != nil {
		return *p
	}
	return nil
}

// Run watches until ctx ends, then captures whatever is still pending and saves its state.
func (w *Watcher) Run(ctx context.Context, ready func()) error {
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watcher: %w", err)
	}
	w.fsw = fsw
	defer fsw.Close()
	w.scan(true)
	w.process(true)
	if ready != nil {
		ready()
	}
	// The debounce timer runs only while something is pending, so an idle watcher
	// wakes up for nothing but the reconcile scan.
	var tick <-chan time.Time
	arm := func() {
		if tick == nil && len(w.dirty) > 0 {
			tick = time.After(pollEvery)
		}
	}
	scan := time.NewTicker(w.o.ScanInterval)
	defer scan.Stop()
	for {
		select {
		case <-ctx.Done():
			// The last word: whatever changed before shutdown is journaled now.
			w.scan(false)
			w.process(true)
			if err := w.save(true); err != nil && !journal.DiskFull(err) {
				return err
			}
			// On a full disk the journal has every record the state would describe:
			// the next start reads those files again, and the store drops what it has.
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return nil
			}
			w.event(ev)
			arm()
		case err, ok := <-fsw.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.overflows.Add(1)
				w.log.Warn("inotify queue overflowed; rescanning every source")
			} else {
				w.log.Warn("inotify error; rescanning", "err", err)
			}
			w.scan(false)
			arm()
		case <-tick:
			tick = nil
			w.process(false)
			arm()
		case <-scan.C:
			start := time.Now()
			w.scan(false)
			arm()
			// A large tree scans less often: the scan is a safety net for events inotify
			// dropped (an overflow triggers a full scan at once), so it may cost at most
			// about half a percent of a core.
			scan.Reset(min(max(w.o.ScanInterval, 200*time.Since(start)), maxScanInterval))
		}
	}
}

// locate maps an absolute path to its source and relative path.
func (w *Watcher) locate(abs string) (config.Source, string, bool) {
	for _, s := range w.o.Sources {
		if rel, err := filepath.Rel(s.Path, abs); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return s, filepath.ToSlash(rel), true
		}
	}
	return config.Source{}, "", false
}

func (w *Watcher) ignored(abs string) bool {
	for _, ig := range w.o.Ignore {
		if abs == ig || strings.HasPrefix(abs, ig+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func (w *Watcher) event(ev fsnotify.Event) {
	if w.ignored(ev.Name) {
		return
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// A new folder: watch it and pick up whatever was created in it before the
			// watch was in place.
			w.walk(ev.Name, false)
			return
		}
	}
	src, rel, ok := w.locate(ev.Name)
	if !ok {
		return
	}
	if db, side := dbOf(rel); side {
		// A commit shows up as a write to the WAL: it is the database that changed.
		if _, known := w.files[src.Name+"/"+db]; known {
			w.mark(src, db, false)
		}
		return
	}
	key := src.Name + "/" + rel
	if st, known := w.files[key]; known && st.Kind == "dir" && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		// A folder moved or went away: everything shipped under it is gone from here.
		prefix := key + "/"
		for k := range w.files {
			if strings.HasPrefix(k, prefix) {
				w.mark(src, k[len(src.Name)+1:], true)
			}
		}
	}
	if _, known := w.files[key]; !known && !w.wanted(src, rel, false) {
		return
	}
	w.mark(src, rel, false)
}

// wanted applies the source's globs. Folders are recorded (for empty folders) only when
// the source has no include globs; excluded folders are never recorded.
func (w *Watcher) wanted(s config.Source, rel string, dir bool) bool {
	if dir {
		return len(s.Include) == 0 && s.Match(rel)
	}
	return s.Match(rel)
}

func (w *Watcher) mark(src config.Source, rel string, immediate bool) {
	key := src.Name + "/" + rel
	now := time.Now()
	p := w.dirty[key]
	if p == nil {
		// Append-only files and databases are read almost at once: both ship only what
		// is complete (whole lines, committed transactions).
		st := w.files[key]
		p = &pending{source: src, rel: rel, first: now, appendy: kindOf(src, rel) == "append" || st != nil && st.Kind == "db"}
		w.dirty[key] = p
	}
	p.last = now
	p.immediate = p.immediate || immediate
}

// scan walks every source, adding watches for folders and marking files whose size, time
// or identity differ from what was shipped, and files that are gone.
func (w *Watcher) scan(initial bool) {
	seen := map[string]bool{}
	for _, s := range w.o.Sources {
		w.walkSource(s, seen, initial, s.Path)
	}
	for key := range w.files {
		if !seen[key] {
			src, rel, _ := strings.Cut(key, "/")
			if s, ok := w.roots[src]; ok {
				w.mark(s, rel, true)
			} else {
				// The source left the config: forget its files without deleting them.
				delete(w.files, key)
			}
		}
	}
}

// walk covers a folder that appeared after the last scan.
func (w *Watcher) walk(dir string, initial bool) {
	for _, s := range w.o.Sources {
		if rel, err := filepath.Rel(s.Path, dir); err == nil && !strings.HasPrefix(rel, "..") {
			w.walkSource(s, nil, initial, dir)
			return
		}
	}
}

// walkSource walks root (the source's path, or a folder inside it) and records the files
// it saw in seen (nil: a partial walk that must not count or forget files).
func (w *Watcher) walkSource(s config.Source, seen map[string]bool, initial bool, root string) {
	count := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			w.log.Warn("cannot read", "path", p, "err", err)
			return nil
		}
		if w.ignored(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(s.Path, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if err := w.fsw.Add(p); err != nil && !w.warned[p] {
				w.warned[p] = true
				w.log.Warn("cannot watch folder; the periodic scan covers it", "path", p, "err", err)
			}
			if rel == "." || !w.wanted(s, rel, true) {
				return nil
			}
		} else if !(d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0) || !w.wanted(s, rel, false) || sqliteSide(rel) {
			return nil
		}
		if !utf8.ValidString(rel) {
			if !w.warned[p] {
				w.warned[p] = true
				w.skipped.Add(1)
				w.log.Warn("skipping file whose name is not UTF-8", "path", p)
			}
			return nil
		}
		key := s.Name + "/" + rel
		if !d.IsDir() {
			count++
		}
		if seen != nil {
			seen[key] = true
		}
		st := w.files[key]
		if st == nil || initial {
			w.mark(s, rel, true)
			return nil
		}
		if fi, err := d.Info(); err == nil && changedSince(st, fi, p) {
			w.mark(s, rel, true)
		}
		return nil
	})
	if err != nil {
		w.errs.Add(1)
		if !w.warned[root] {
			w.warned[root] = true
			w.log.Error("cannot read source", "source", s.Name, "path", root, "err", err)
		}
	}
	if seen != nil {
		w.mu.Lock()
		w.counts[s.Name] = count
		w.mu.Unlock()
	}
}

// kindOf decides how a file is replicated (SPEC.md, kind: auto).
func kindOf(s config.Source, rel string) string {
	switch s.Kind {
	case "append", "file":
		return s.Kind
	}
	switch strings.ToLower(filepath.Ext(rel)) {
	case ".jsonl", ".ndjson", ".log":
		return "append"
	}
	return "file"
}

// sqliteSide reports the files SQLite keeps beside a database; they are never replicated
// as files of their own.
func sqliteSide(rel string) bool {
	_, ok := dbOf(rel)
	return ok
}

// changedSince tells from a stat whether a path may differ from what was shipped.
func changedSince(st *fileState, fi fs.FileInfo, abs string) bool {
	switch st.Kind {
	case "db":
		size, mtime := walStamp(abs)
		return fi.Size() != st.Offset || fi.ModTime().UnixNano() != st.MTime || size != st.WalSize || mtime != st.WalMTime
	case "dir":
		return !fi.IsDir() || uint32(fi.Mode().Perm()) != st.Mode
	case "symlink":
		return fi.Mode()&fs.ModeSymlink == 0 || fi.ModTime().UnixNano() != st.MTime
	}
	dev, ino := identity(fi)
	return dev != st.Dev || ino != st.Ino || fi.Size() != st.Offset ||
		(st.Kind == "file" && (fi.ModTime().UnixNano() != st.MTime || uint32(fi.Mode().Perm()) != st.Mode))
}
