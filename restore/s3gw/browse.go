package s3gw

import (
	"errors"
	"path"
	"sort"
	"strings"
	"time"
)

// This file is the reading API other front ends (the web console) use: the same
// rebuilt states, history index, single-file versions and resolution of instants the S3
// endpoint serves.

// ErrNoVersion means a file has no stored version (of a regular file) at the time asked.
var ErrNoVersion = errNoVersion

// FileInfo is one regular file of a state.
type FileInfo struct {
	Name string    // "<source>/<path>"
	Size int64     //
	Time time.Time // capture time of the file's last change
}

// Snapshot is the state at one instant, rebuilt on disk. Release it when done: until
// then its files stay in place.
type Snapshot struct {
	// At is the capture time of the newest change the state holds (zero when empty).
	At       time.Time
	Problems []string // what the rebuild could not have; the state holds everything else
	st       *state
	release  func()
}

// Release lets the cache drop the snapshot's files.
func (s *Snapshot) Release() { s.release() }

// Len is the number of regular files.
func (s *Snapshot) Len() int { return len(s.st.names) }

// File is the i-th file in bytewise name order.
func (s *Snapshot) File(i int) FileInfo {
	return FileInfo{Name: s.st.names[i], Size: s.st.files[i].size, Time: s.st.files[i].mtime}
}

// Find returns the index of a file name, or -1.
func (s *Snapshot) Find(name string) int { return s.st.find(name) }

// Prefix returns the index range [lo, hi) of the names starting with prefix.
func (s *Snapshot) Prefix(prefix string) (lo, hi int) {
	lo = sort.SearchStrings(s.st.names, prefix)
	hi = lo + sort.Search(len(s.st.names)-lo, func(i int) bool { return !strings.HasPrefix(s.st.names[lo+i], prefix) })
	return lo, hi
}

// Path is where the i-th file's content is on disk.
func (s *Snapshot) Path(i int) string { return s.st.path(i) }

// Snapshot returns the state at t (or the newest when latest).
func (g *Gateway) Snapshot(t time.Time, latest bool) (*Snapshot, error) {
	c, err := g.catalogNow()
	if err != nil {
		return nil, err
	}
	in := g.resolve(c, t, latest)
	e, err := g.states.acquire(in.key, func() (any, string, int64, error) { return g.buildState(in) })
	if err != nil {
		return nil, err
	}
	st := e.val.(*state)
	snap := &Snapshot{Problems: st.problems, st: st, release: func() { g.states.release(e) }}
	if !in.empty {
		snap.At = in.at
	}
	return snap, nil
}

// Window is the recoverable window: the capture times of the oldest and the newest
// stored change; ok is false when nothing is stored.
func (g *Gateway) Window() (oldest, newest time.Time, ok bool, err error) {
	c, err := g.catalogNow()
	if err != nil {
		return time.Time{}, time.Time{}, false, err
	}
	oldest, newest, ok = c.cat.Window()
	return oldest, newest, ok, nil
}

// Version is one stored change of a file.
type Version struct {
	Time time.Time
	Size int64 // -1 when the records alone cannot tell (databases)
	Gone bool  // deleted (or no longer a regular file) at Time
}

// Versions lists every stored change of file ("<source>/<path>"), oldest first.
func (g *Gateway) Versions(file string) ([]Version, error) {
	h, err := g.historyNow()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.files[file]
	out := make([]Version, 0, len(v))
	for _, c := range v {
		size := c.size
		if size < 0 {
			if n, ok := h.sizes[histRef{file, c.t}]; ok {
				size = n
			}
		}
		out = append(out, Version{Time: time.Unix(0, c.t).UTC(), Size: size, Gone: c.gone})
	}
	return out, nil
}

// VersionFile is a file's content as of one of its stored changes, on disk until released.
type VersionFile struct {
	Path     string
	Size     int64
	Problems []string
	release  func()
}

// Release lets the cache drop the version's file.
func (v *VersionFile) Release() { v.release() }

// VersionAt rebuilds file ("<source>/<path>") as it was at t (any instant, not only a
// change time). ErrNoVersion when it was not a regular file then.
func (g *Gateway) VersionAt(file string, t time.Time) (*VersionFile, error) {
	if !cleanName(file) {
		return nil, errNoVersion
	}
	e, v, err := g.versionAt(file, t.UnixNano())
	if err != nil {
		if errors.Is(err, errNoVersion) {
			return nil, ErrNoVersion
		}
		return nil, err
	}
	return &VersionFile{Path: v.path, Size: v.meta.size, Problems: v.problems, release: func() { g.versions.release(e) }}, nil
}

// cleanName accepts "<source>/<path>" names that stay inside a state: relative, clean,
// no ".." element, no NUL.
func cleanName(name string) bool {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.ContainsRune(name, 0) || !strings.Contains(name, "/") {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." || el == "." {
			return false
		}
	}
	return true
}

// Instant resolves t (or the newest state when latest) without rebuilding anything: at
// is the capture time of the newest change the state holds, key names that state (every
// t showing the same state gets the same key) and empty is true when the store holds
// nothing at or before t.
func (g *Gateway) Instant(t time.Time, latest bool) (at time.Time, key string, empty bool, err error) {
	c, err := g.catalogNow()
	if err != nil {
		return time.Time{}, "", false, err
	}
	in := g.resolve(c, t, latest)
	return in.at, in.key, in.empty, nil
}
