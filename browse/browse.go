// Package browse answers questions about a host's stored history from the store alone:
// the files of the state at an instant (ls), one file's bytes (cat), what changed between
// two instants (diff), every version of one path (log) and the hosts a store holds. It
// follows restore's completeness rule: whatever it could not read — a missing or damaged
// object, a gap in the sequence of records — is named in the answer's Problems, and the
// caller must treat the answer as incomplete.
package browse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
)

// ErrNotFound is returned (wrapped) when the asked path or host is not in the store.
var ErrNotFound = errors.New("not found")

// ErrIncomplete is returned (wrapped) by Cat when something the file needed was missing
// or damaged; nothing is written then.
var ErrIncomplete = errors.New("incomplete")

// parallel is how many objects are fetched at once.
const parallel = 8

// Entry is one path of a state.
type Entry struct {
	Path   string    `json:"path"` // source/path
	Kind   string    `json:"kind"` // append, file, symlink, dir, db
	Size   int64     `json:"size"` // bytes; -1 for a database (known only once rebuilt)
	Mode   uint32    `json:"mode"` // permission bits; 0 when unknown
	Time   time.Time `json:"time"` // capture time of its last change
	Target string    `json:"target,omitempty"`
}

// Listing is the state of a host at one instant.
type Listing struct {
	Host     string   `json:"host"`
	At       string   `json:"at"`
	Entries  []Entry  `json:"entries"`
	Problems []string `json:"problems"`
}

// When is an instant: a time, or the newest stored state.
type When struct {
	At     time.Time
	Latest bool
}

func (w When) String() string {
	if w.Latest {
		return "latest"
	}
	return w.At.UTC().Format(time.RFC3339Nano)
}

// Match reports whether source/path matches one of globs (every path when there are
// none). A glob matches the path within its source or the whole source/path.
func Match(globs []string, key string) bool {
	if len(globs) == 0 {
		return true
	}
	_, rel, _ := strings.Cut(key, "/")
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, key); ok {
			return true
		}
		if ok, _ := doublestar.Match(g, rel); ok {
			return true
		}
		// A folder matches everything under it, as `ls DIR` does.
		if dir := strings.TrimSuffix(g, "/") + "/"; g != "" && !strings.ContainsAny(g, "*?[{\\") &&
			(strings.HasPrefix(key, dir) || strings.HasPrefix(rel, dir)) {
			return true
		}
	}
	return false
}

func entryOf(key string, e *manifest.Entry) Entry {
	out := Entry{Path: key, Kind: e.Kind, Size: e.Size, Mode: e.Mode, Time: time.Unix(0, e.Time).UTC(), Target: e.Target}
	if e.Kind == manifest.KindDB && e.Size == 0 {
		out.Size = -1
	}
	if e.Kind == manifest.KindDir || e.Kind == manifest.KindSymlink {
		out.Size = 0
	}
	return out
}

// Ls lists the state of host at w, the paths matching globs only.
func Ls(ctx context.Context, st objstore.Store, host string, w When, globs []string) (*Listing, error) {
	x, problems, err := stateAt(ctx, st, host, w.At, w.Latest)
	if err != nil {
		return nil, err
	}
	l := &Listing{Host: host, At: w.String(), Entries: []Entry{}, Problems: nonNil(problems)}
	if len(x.Files) == 0 && len(problems) == 0 {
		if c, err := listCatalog(ctx, st, host); err == nil && len(c.Segments) == 0 && len(c.Manifests) == 0 {
			return nil, fmt.Errorf("%w: %s holds nothing of host %q", ErrNotFound, st, host)
		}
	}
	for _, k := range x.Sorted() {
		if Match(globs, k) {
			l.Entries = append(l.Entries, entryOf(k, x.Files[k]))
		}
	}
	return l, nil
}

// Cat writes the bytes of one regular file (source/path) at w to out: an append file's
// whole lines, a whole file, a database as one consistent file. It rebuilds the file the
// way restore does, in a temporary folder under tmp ("" for the system's), and writes
// nothing when anything the state needed was missing.
func Cat(ctx context.Context, st objstore.Store, host string, w When, key, tmp string, out io.Writer) error {
	source, rel, ok := strings.Cut(key, "/")
	if !ok || source == "" || rel == "" || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return fmt.Errorf("%w: %q: want SOURCE/PATH", ErrNotFound, key)
	}
	dir, err := os.MkdirTemp(tmp, "mmreplicate-cat-")
	if err != nil {
		return fmt.Errorf("cat: %w", err)
	}
	defer os.RemoveAll(dir)
	problems, err := rebuild(ctx, st, host, w.At, w.Latest, []string{quoteGlob(key)}, dir)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s at %s: %s", ErrIncomplete, key, w, strings.Join(problems, "; "))
	}
	root, err := os.OpenRoot(filepath.Join(dir, source))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: no file %s in the state of host %s at %s", ErrNotFound, key, host, w)
	}
	if err != nil {
		return fmt.Errorf("cat: %w", err)
	}
	defer root.Close()
	fi, err := root.Lstat(filepath.FromSlash(rel))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: no file %s in the state of host %s at %s", ErrNotFound, key, host, w)
	case err != nil:
		return fmt.Errorf("cat: %w", err)
	case fi.Mode()&os.ModeSymlink != 0:
		target, _ := root.Readlink(filepath.FromSlash(rel))
		return fmt.Errorf("%w: %s is a symbolic link to %q at %s, not a file", ErrNotFound, key, target, w)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is a folder at %s, not a file", ErrNotFound, key, w)
	}
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return fmt.Errorf("cat: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(out, f); err != nil {
		return fmt.Errorf("cat: write: %w", err)
	}
	return nil
}

// quoteGlob makes a path a glob that matches only itself.
func quoteGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]{}`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Change is one path that differs between two instants.
type Change struct {
	Path    string `json:"path"`
	Change  string `json:"change"` // added, removed, modified
	Kind    string `json:"kind"`   // the kind at the later instant (the earlier one when removed)
	OldKind string `json:"old_kind,omitempty"`
	OldSize int64  `json:"old_size"`
	NewSize int64  `json:"new_size"`
	// Bytes is the change in size (new minus old).
	Bytes int64 `json:"bytes"`
	// LinesAdded counts the lines appended to an append-only file (absent when the file
	// was rewritten or is no append-only file).
	LinesAdded *int64 `json:"lines_added,omitempty"`
	// Rewritten marks an append-only file that was truncated or rewritten in between.
	Rewritten bool `json:"rewritten,omitempty"`
}

// DiffResult is what changed on a host between two instants.
type DiffResult struct {
	Host     string   `json:"host"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Changes  []Change `json:"changes"`
	Problems []string `json:"problems"`
}

// appendTrack follows one append-only file through the records between two instants.
type appendTrack struct {
	lines     int64
	rewritten bool
}

// Diff compares the states of host at t1 and t2 (t1 before t2), the paths matching
// globs only.
func Diff(ctx context.Context, st objstore.Store, host string, t1, t2 When, globs []string) (*DiffResult, error) {
	x1, problems, err := stateAt(ctx, st, host, t1.At, t1.Latest)
	if err != nil {
		return nil, fmt.Errorf("state at %s: %w", t1, err)
	}
	c, err := listCatalog(ctx, st, host)
	if err != nil {
		return nil, err
	}
	x2 := x1.Clone()
	tracks := map[string]*appendTrack{}
	// The records after x1 up to t2, in order, from the segments holding them.
	var todo []segment.Info
	for _, in := range c.Segments {
		if in.LastSeq <= x1.Seq || (!t2.Latest && in.FirstTime.After(t2.At)) {
			continue
		}
		todo = append(todo, in)
	}
	next := x1.Seq + 1
	err = eachSegment(ctx, st, todo, func(in segment.Info, recs []journal.Record, problem string) {
		if problem != "" {
			problems = append(problems, problem)
			return
		}
		if in.FirstSeq > next {
			problems = append(problems, fmt.Sprintf("records %d-%d missing before %s", next, in.FirstSeq-1, in.Key))
		}
		for j := range recs {
			r := &recs[j]
			if r.Seq < next {
				continue
			}
			if !t2.Latest && r.Time > t2.At.UnixNano() {
				break
			}
			next = r.Seq + 1
			k := manifest.Key(r.Source, r.Path)
			if r.Op == journal.OpAppend && Match(globs, k) {
				tr := tracks[k]
				if tr == nil {
					tr = &appendTrack{}
					tracks[k] = tr
				}
				prev := x2.Files[k]
				cont := prev != nil && prev.Kind == manifest.KindAppend && r.Offset > 0 && r.Offset == prev.Size
				if !cont {
					if prev != nil || x1.Files[k] != nil {
						tr.rewritten = true
					}
					tr.lines = 0
				}
				tr.lines += int64(bytes.Count(r.Data, []byte{'\n'}))
			} else if r.Op != journal.OpChunk && tracks[k] != nil {
				tracks[k].rewritten = true
			}
			if err := x2.Apply(r); err != nil {
				problems = append(problems, fmt.Sprintf("segment %s: %v", in.Key, err))
			}
		}
	})
	if err != nil {
		return nil, err
	}
	d := &DiffResult{Host: host, From: t1.String(), To: t2.String(), Changes: []Change{}}
	keys := map[string]bool{}
	for k := range x1.Files {
		keys[k] = true
	}
	for k := range x2.Files {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if Match(globs, k) {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		a, b := x1.Files[k], x2.Files[k]
		var ch Change
		switch {
		case a == nil:
			eb := entryOf(k, b)
			ch = Change{Path: k, Change: "added", Kind: b.Kind, NewSize: eb.Size}
		case b == nil:
			ea := entryOf(k, a)
			ch = Change{Path: k, Change: "removed", Kind: a.Kind, OldSize: ea.Size}
		case a.Seq == b.Seq:
			continue
		default:
			ea, eb := entryOf(k, a), entryOf(k, b)
			ch = Change{Path: k, Change: "modified", Kind: b.Kind, OldSize: ea.Size, NewSize: eb.Size}
			if a.Kind != b.Kind {
				ch.OldKind = a.Kind
			}
		}
		if ch.OldSize >= 0 && ch.NewSize >= 0 {
			ch.Bytes = ch.NewSize - ch.OldSize
		}
		if tr := tracks[k]; tr != nil && b != nil && b.Kind == manifest.KindAppend {
			ch.Rewritten = tr.rewritten
			if !tr.rewritten {
				n := tr.lines
				ch.LinesAdded = &n
			}
		}
		d.Changes = append(d.Changes, ch)
	}
	d.Problems = nonNil(problems)
	return d, nil
}

// eachSegment reads segments in parallel, at most parallel of them ahead of fn, and
// calls fn with each one's records in list order; a segment that cannot be read comes
// with its problem instead. Memory stays bounded however long the history is.
func eachSegment(ctx context.Context, st objstore.Store, list []segment.Info, fn func(in segment.Info, recs []journal.Record, problem string)) error {
	type slot struct {
		recs    []journal.Record
		problem string
		done    chan struct{}
	}
	slots := make([]slot, len(list))
	for i := range slots {
		slots[i].done = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tokens := make(chan struct{}, parallel)
	go func() {
		for i, in := range list {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer close(slots[i].done)
				r, err := readSegment(ctx, st, in)
				if err != nil {
					slots[i].problem = fmt.Sprintf("segment %s: %v", in.Key, err)
				}
				slots[i].recs = r
			}()
		}
	}()
	for i, in := range list {
		select {
		case <-slots[i].done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fn(in, slots[i].recs, slots[i].problem)
		slots[i].recs = nil
		<-tokens
	}
	return nil
}

// Version is one stored version of a path: the changes of one capture time.
type Version struct {
	Time   time.Time `json:"time"`
	Seq    uint64    `json:"seq"`    // the newest record of this capture time
	Change string    `json:"change"` // created, appended, rewritten, changed, deleted, link, folder, db-image, db-transaction, retained
	Size   int64     `json:"size"`   // after the change; -1 when unknown (databases), 0 when deleted
	Bytes  int64     `json:"bytes"`  // bytes the change carried (appended bytes; the new size of a rewrite)
	Target string    `json:"target,omitempty"`
}

// LogResult is every stored version of one path.
type LogResult struct {
	Host     string    `json:"host"`
	Path     string    `json:"path"`
	Versions []Version `json:"versions"`
	Problems []string  `json:"problems"`
}

// Log lists every stored version of one path (source/path), oldest first. Versions older
// than the stored records come from the retained manifests that still hold them.
func Log(ctx context.Context, st objstore.Store, host, key string) (*LogResult, error) {
	c, err := listCatalog(ctx, st, host)
	if err != nil {
		return nil, err
	}
	if len(c.Segments) == 0 && len(c.Manifests) == 0 {
		return nil, fmt.Errorf("%w: %s holds nothing of host %q", ErrNotFound, st, host)
	}
	res := &LogResult{Host: host, Path: key, Versions: []Version{}}
	problems := gaps(c, time.Time{}, true)
	var first uint64
	if len(c.Segments) > 0 {
		first = c.Segments[0].FirstSeq
	}
	type state struct {
		exists bool
		kind   string
		size   int64
	}
	var cur state
	add := func(v Version) {
		if n := len(res.Versions); n > 0 && res.Versions[n-1].Time.Equal(v.Time) && v.Change != "deleted" && res.Versions[n-1].Change != "deleted" {
			last := &res.Versions[n-1]
			last.Seq, last.Size, last.Bytes, last.Target = v.Seq, v.Size, last.Bytes+v.Bytes, v.Target
			return
		}
		res.Versions = append(res.Versions, v)
	}
	// Retained manifests from before the first stored record: their entry is the path's
	// last change before then.
	for _, mi := range c.Manifests {
		if first != 0 && mi.Seq+1 >= first {
			break
		}
		x, err := readManifest(ctx, st, mi.Key)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			problems = append(problems, fmt.Sprintf("manifest %s: %v", mi.Key, err))
			continue
		}
		e := x.Files[key]
		if e == nil || (len(res.Versions) > 0 && res.Versions[len(res.Versions)-1].Seq >= e.Seq) {
			continue
		}
		en := entryOf(key, e)
		res.Versions = append(res.Versions, Version{Time: en.Time, Seq: e.Seq, Change: "retained", Size: en.Size, Target: e.Target})
		cur = state{exists: e.Kind != manifest.KindSymlink && e.Kind != manifest.KindDir, kind: e.Kind, size: en.Size}
	}
	var applied uint64
	err = eachSegment(ctx, st, c.Segments, func(_ segment.Info, recs []journal.Record, problem string) {
		if problem != "" {
			problems = append(problems, problem)
			return
		}
		for j := range recs {
			r := &recs[j]
			if r.Seq <= applied {
				continue // also held by an overlapping segment
			}
			applied = r.Seq
			if manifest.Key(r.Source, r.Path) != key {
				continue
			}
			v, ok := versionOf(r)
			if !ok {
				continue
			}
			out := Version{Time: r.CaptureTime(), Seq: r.Seq, Size: v.Size}
			switch r.Op {
			case journal.OpAppend:
				out.Bytes = int64(len(r.Data))
				switch {
				case !cur.exists || cur.kind != manifest.KindAppend:
					out.Change = "created"
				case r.Offset == 0 || r.Offset != cur.size:
					out.Change = "rewritten"
				default:
					out.Change = "appended"
				}
			case journal.OpFile:
				out.Bytes = r.Offset
				out.Change = "changed"
				if !cur.exists {
					out.Change = "created"
				}
			case journal.OpDBBase:
				out.Change = "db-image"
			case journal.OpDBPages:
				out.Change = "db-transaction"
			case journal.OpSymlink:
				out.Change, out.Target = "link", string(r.Data)
			case journal.OpDir:
				out.Change = "folder"
			default:
				out.Change = "deleted"
			}
			add(out)
			kind := map[journal.Op]string{journal.OpAppend: manifest.KindAppend, journal.OpFile: manifest.KindFile,
				journal.OpDBBase: manifest.KindDB, journal.OpDBPages: manifest.KindDB}[r.Op]
			cur = state{exists: !v.Gone, kind: kind, size: v.Size}
		}
	})
	if err != nil {
		return nil, err
	}
	if len(res.Versions) == 0 && len(problems) == 0 {
		return nil, fmt.Errorf("%w: the store holds no version of %s on host %s", ErrNotFound, key, host)
	}
	res.Problems = nonNil(problems)
	return res, nil
}

// HostInfo is one host of a store.
type HostInfo struct {
	Host string `json:"host"`
	// Oldest and Newest bound the recoverable window.
	Oldest     time.Time `json:"oldest"`
	Newest     time.Time `json:"newest"`
	LastChange time.Time `json:"last_change"`
	Segments   int       `json:"segments"`
	Manifests  int       `json:"manifests"`
	// Bytes is what the host's segments and manifests take in the store; the blobs of
	// whole files are shared between hosts and counted in HostsResult.BlobBytes.
	Bytes    int64    `json:"bytes"`
	Problems []string `json:"problems"`
}

// HostsResult lists the hosts of a store.
type HostsResult struct {
	Store     string     `json:"store"`
	Hosts     []HostInfo `json:"hosts"`
	BlobBytes int64      `json:"blob_bytes"`
}

// Hosts lists the hosts a store holds, from listings alone: the recoverable window, the
// size stored and the last change of each, and any hole in its sequence of records.
func Hosts(ctx context.Context, st objstore.Store) (*HostsResult, error) {
	names, err := listHosts(ctx, st)
	if err != nil {
		return nil, err
	}
	out := &HostsResult{Store: st.String(), Hosts: []HostInfo{}}
	for _, h := range names {
		c, err := listCatalog(ctx, st, h)
		if err != nil {
			return nil, err
		}
		hi := HostInfo{Host: h, Segments: len(c.Segments), Manifests: len(c.Manifests), Problems: nonNil(gaps(c, time.Time{}, true))}
		if o, n, ok := c.Window(); ok {
			hi.Oldest, hi.Newest, hi.LastChange = o, n, n
			if c.Segments[0].FirstSeq > 1 && len(c.Manifests) > 0 && c.Manifests[0].Time.Before(o) {
				hi.Oldest = c.Manifests[0].Time // a retained point before the stored records
			}
		} else if len(c.Manifests) > 0 {
			m := c.Manifests[len(c.Manifests)-1]
			hi.Oldest, hi.Newest, hi.LastChange = c.Manifests[0].Time, m.Time, m.Time
		}
		if hi.Bytes, err = prefixBytes(ctx, st, segment.HostPrefix(h)); err != nil {
			return nil, err
		}
		out.Hosts = append(out.Hosts, hi)
	}
	if out.BlobBytes, err = prefixBytes(ctx, st, "blobs/"); err != nil {
		return nil, err
	}
	return out, nil
}

func prefixBytes(ctx context.Context, st objstore.Store, prefix string) (int64, error) {
	var n int64
	err := st.List(ctx, prefix, func(o objstore.ObjectInfo) error { n += o.Size; return nil })
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", st, err)
	}
	return n, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
