package web

// Every call the console makes into the store's reader goes through this file, so that
// a change of the reader API touches nothing else.
//
// Listings (the tree, the status page) come from the index of a state alone (package
// store: the newest manifest at or before the instant plus the records after it), which
// holds every file's kind, size, mode and capture time: no content is fetched. Content
// is rebuilt only for what is asked: one file (restore filtered to that path, cached by
// the gateway) or one folder for a download (restore filtered to that folder).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/restore/s3gw"
	"github.com/mmreplicate/mmreplicate/store"
	"github.com/mmreplicate/mmreplicate/timespec"
)

// errNoVersion means a file was not a regular file at the instant asked.
var errNoVersion = s3gw.ErrNoVersion

// version is one stored change of a file.
type version = s3gw.Version

// versionFile is one file's content at an instant, on disk until released.
type versionFile = s3gw.VersionFile

// fileInfo is one regular file of a snapshot.
type fileInfo struct {
	Name string    // "<source>/<path>"
	Size int64     // -1 when the index alone cannot tell (databases)
	Time time.Time // capture time of the file's last change
}

// snapshot is the index of the state at one instant: its regular files with their sizes
// and capture times, no content.
type snapshot struct {
	// At is the capture time of the newest change the state holds (zero when empty).
	At time.Time
	// Problems name what the state lacks (gaps, damaged segments or manifests, malformed
	// records). Damaged blobs only show when a file's content is rebuilt.
	Problems []string
	files    []fileInfo // sorted bytewise by name
}

// Len is the number of regular files.
func (s *snapshot) Len() int { return len(s.files) }

// File is the i-th file in bytewise name order.
func (s *snapshot) File(i int) fileInfo { return s.files[i] }

// Find returns the index of a file name, or -1.
func (s *snapshot) Find(name string) int {
	i := sort.Search(len(s.files), func(i int) bool { return s.files[i].Name >= name })
	if i < len(s.files) && s.files[i].Name == name {
		return i
	}
	return -1
}

// Prefix returns the index range [lo, hi) of the names starting with prefix.
func (s *snapshot) Prefix(prefix string) (lo, hi int) {
	lo = sort.Search(len(s.files), func(i int) bool { return s.files[i].Name >= prefix })
	hi = lo + sort.Search(len(s.files)-lo, func(i int) bool { return !strings.HasPrefix(s.files[lo+i].Name, prefix) })
	return lo, hi
}

// maxIndexes is how many states' indexes stay in memory (about 200 bytes a file).
const maxIndexes = 4

// indexEntry is one cached index, built once even when many requests ask together.
type indexEntry struct {
	ready chan struct{}
	snap  *snapshot
	err   error
	used  uint64
}

// reader is what the console reads the store through.
type reader struct {
	gw   *s3gw.Gateway
	st   objstore.Store
	host string
	log  *slog.Logger
	ctx  context.Context

	mu   sync.Mutex
	tick uint64
	idx  map[string]*indexEntry
}

func openReader(ctx context.Context, st objstore.Store, host, cacheDir string, cacheBytes int64, log *slog.Logger) (*reader, error) {
	gw, err := s3gw.New(ctx, s3gw.Options{Store: st, Host: host, CacheDir: cacheDir, MaxBytes: cacheBytes, Log: log})
	if err != nil {
		return nil, err
	}
	return &reader{gw: gw, st: st, host: host, log: log, ctx: context.WithoutCancel(ctx), idx: map[string]*indexEntry{}}, nil
}

func (r *reader) close() error { return r.gw.Close() }

// snapshot returns the index of the state at t (or the newest when latest), loading it
// when it is not cached.
func (r *reader) snapshot(t time.Time, latest bool) (*snapshot, error) {
	at, key, empty, err := r.gw.Instant(t, latest)
	if err != nil {
		return nil, err
	}
	if empty {
		return &snapshot{}, nil
	}
	r.mu.Lock()
	r.tick++
	e := r.idx[key]
	if e != nil {
		e.used = r.tick
		r.mu.Unlock()
		<-e.ready
		return e.snap, e.err
	}
	e = &indexEntry{ready: make(chan struct{}), used: r.tick}
	r.idx[key] = e
	for len(r.idx) > maxIndexes {
		oldest := ""
		for k, x := range r.idx {
			if oldest == "" || x.used < r.idx[oldest].used {
				oldest = k
			}
		}
		delete(r.idx, oldest)
	}
	r.mu.Unlock()
	e.snap, e.err = r.loadIndex(at)
	close(e.ready)
	if e.err != nil {
		r.mu.Lock()
		if r.idx[key] == e {
			delete(r.idx, key) // not kept: the next request tries again
		}
		r.mu.Unlock()
	}
	return e.snap, e.err
}

func (r *reader) loadIndex(at time.Time) (*snapshot, error) {
	start := time.Now()
	s, err := store.Load(r.ctx, r.st, r.host, at, false)
	if err != nil {
		return nil, fmt.Errorf("read the state at %s: %w", timespec.Format(at), err)
	}
	snap := &snapshot{At: at, Problems: s.Problems, files: make([]fileInfo, 0, len(s.Index.Files))}
	for k, f := range s.Index.Files {
		size := f.Size
		switch f.Kind {
		case manifest.KindFile, manifest.KindAppend:
		case manifest.KindDB:
			size = -1 // the pages' records do not say the file's size
		default:
			continue // links and folders are not shown (their targets are paths on the host)
		}
		snap.files = append(snap.files, fileInfo{Name: k, Size: size, Time: time.Unix(0, f.Time).UTC()})
	}
	sort.Slice(snap.files, func(a, b int) bool { return snap.files[a].Name < snap.files[b].Name })
	r.log.Debug("web: index read", "at", timespec.Format(at), "files", len(snap.files), "took", time.Since(start).Round(time.Millisecond))
	return snap, nil
}

// content rebuilds one file of a snapshot (only that file) and returns it on disk.
func (r *reader) content(snap *snapshot, i int) (*versionFile, error) {
	v, err := r.versionAt(snap.File(i).Name, snap.At)
	if errors.Is(err, errNoVersion) {
		// The index holds the file but the rebuild could not have it: its content objects
		// are missing or damaged (restore named them in its log).
		return nil, incomplete([]string{fmt.Sprintf("%s cannot be rebuilt at %s: a content object of it is missing or damaged",
			snap.File(i).Name, fmtTime(snap.At))})
	}
	return v, err
}

// folder rebuilds the files under dir ("" for all, else "<source>" or "<source>/<path>")
// at a snapshot's instant into a new folder, which the caller removes.
func (r *reader) folder(ctx context.Context, snap *snapshot, dir string) (string, []string, error) {
	tmp, err := os.MkdirTemp(r.gw.CacheRoot(), "folder-")
	if err != nil {
		return "", nil, err
	}
	o := restore.Options{Store: r.st, Host: r.host, At: snap.At, To: filepath.Join(tmp, "state"), NoSync: true, Log: r.log}
	if dir != "" {
		src, rel, _ := strings.Cut(dir, "/")
		o.Sources = []string{src}
		if rel != "" {
			o.Paths = []string{escapeGlob(rel) + "/**"}
		}
	}
	res, err := restore.Run(ctx, o)
	if err != nil && !errors.Is(err, restore.ErrIncomplete) {
		_ = os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("rebuild %q at %s: %w", dir, fmtTime(snap.At), err)
	}
	return tmp, res.Problems, nil
}

func (r *reader) window() (oldest, newest time.Time, ok bool, err error) { return r.gw.Window() }

func (r *reader) versions(file string) ([]version, error) { return r.gw.Versions(file) }

func (r *reader) versionAt(file string, t time.Time) (*versionFile, error) {
	v, err := r.gw.VersionAt(file, t)
	if errors.Is(err, s3gw.ErrNoVersion) {
		return nil, errNoVersion
	}
	return v, err
}

// hosts lists the hosts the store holds.
func (r *reader) hosts(ctx context.Context) ([]string, error) { return store.Hosts(ctx, r.st) }
