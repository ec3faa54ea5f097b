package git

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/mmreplicate/mmreplicate/manifest"
)

// maxMessagePaths caps the paths listed in a commit message; git diff has the rest.
const maxMessagePaths = 50

// headInfo is the newest commit of refs/heads/main and what its tree holds.
type headInfo struct {
	hash  plumbing.Hash
	tree  plumbing.Hash
	when  time.Time
	title string
	files map[string]leaf        // path: blob and mode
	known map[plumbing.Hash]bool // blobs and trees reachable from it
}

// leaf is one file of a tree.
type leaf struct {
	path string
	mode filemode.FileMode
	hash plumbing.Hash
}

// boundary reads the boundary a commit of this sink was made for from its title.
func (h *headInfo) boundary() (time.Time, bool) {
	if h.hash.IsZero() || !strings.HasPrefix(h.title, "mmreplicate ") {
		return time.Time{}, false
	}
	i := strings.LastIndex(h.title, " state at ")
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, h.title[i+len(" state at "):])
	return t.UTC(), err == nil
}

// openRepo opens the repository, creating it when absent, and points HEAD at main.
func (s *Sink) openRepo() error {
	s.gitDir = s.o.Repo
	if fi, err := os.Stat(filepath.Join(s.o.Repo, ".git")); err == nil && fi.IsDir() {
		s.gitDir = filepath.Join(s.o.Repo, ".git")
	}
	removeOrphanIndexes(s.gitDir)
	repo, err := gogit.PlainOpen(s.o.Repo)
	if errors.Is(err, gogit.ErrRepositoryNotExists) {
		repo, err = gogit.PlainInitWithOptions(s.o.Repo, &gogit.PlainInitOptions{
			InitOptions: gogit.InitOptions{DefaultBranch: plumbing.Main}})
	}
	if err != nil {
		return fmt.Errorf("git sink: repository %s: %w", s.o.Repo, err)
	}
	if fi, err := os.Stat(filepath.Join(s.o.Repo, ".git")); err == nil && fi.IsDir() {
		s.gitDir = filepath.Join(s.o.Repo, ".git")
	}
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err != nil || head.Type() != plumbing.SymbolicReference || head.Target() != plumbing.Main {
		if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.Main)); err != nil {
			return fmt.Errorf("git sink: repository %s: HEAD: %w", s.o.Repo, err)
		}
	}
	s.repo = repo
	return nil
}

// loadHead reads the newest commit and lists its tree, for the change list of the next
// commit message and to know which objects exist without asking the disk.
func (s *Sink) loadHead() error {
	h := headInfo{files: map[string]leaf{}, known: map[plumbing.Hash]bool{}}
	ref, err := s.repo.Storer.Reference(plumbing.Main)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		s.head = h
		return nil
	}
	if err != nil {
		return fmt.Errorf("git sink: %s: %w", plumbing.Main, err)
	}
	c, err := object.GetCommit(s.repo.Storer, ref.Hash())
	if err != nil {
		return fmt.Errorf("git sink: head commit %s: %w", ref.Hash(), err)
	}
	h.hash, h.tree, h.when = c.Hash, c.TreeHash, c.Committer.When
	h.title, _, _ = strings.Cut(c.Message, "\n")
	var walk func(prefix string, th plumbing.Hash) error
	walk = func(prefix string, th plumbing.Hash) error {
		h.known[th] = true
		t, err := object.GetTree(s.repo.Storer, th)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			switch e.Mode {
			case filemode.Dir:
				if err := walk(prefix+e.Name+"/", e.Hash); err != nil {
					return err
				}
			case filemode.Submodule:
			default:
				h.files[prefix+e.Name] = leaf{path: prefix + e.Name, mode: e.Mode, hash: e.Hash}
				h.known[e.Hash] = true
			}
		}
		return nil
	}
	if err := walk("", c.TreeHash); err != nil {
		return fmt.Errorf("git sink: head tree: %w", err)
	}
	s.head = h
	s.setStatus(func(st *Status) { st.LastCommit, st.LastCommitTime = h.hash.String(), h.when })
	return nil
}

// commitAt commits the mirror as the state at b. It reports false when the tree equals
// the head commit's, which makes no commit.
func (s *Sink) commitAt(b time.Time) (bool, error) {
	w := &objWriter{s: s, seen: map[plumbing.Hash]bool{}}
	defer w.cleanup()
	leaves, err := s.leaves(w, b)
	if err != nil {
		return false, err
	}
	leaves = s.resolveConflicts(leaves)
	root, trees, err := w.writeTree(leaves)
	if err != nil {
		return false, err
	}
	if root == s.head.tree || (s.head.hash.IsZero() && len(leaves) == 0) {
		return false, nil
	}
	if err := w.flushBlobs(); err != nil {
		return false, err
	}
	sig := object.Signature{Name: "mmreplicate", Email: "mmreplicate@" + emailHost(s.o.Host), When: b.UTC()}
	c := &object.Commit{Author: sig, Committer: sig, Message: s.message(b, leaves), TreeHash: root}
	if !s.head.hash.IsZero() {
		c.ParentHashes = []plumbing.Hash{s.head.hash}
	}
	obj := s.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return false, err
	}
	hash, err := w.put(obj)
	if err != nil {
		return false, err
	}
	// Every object must be on disk before the branch points at them.
	if err := w.sync(); err != nil {
		return false, err
	}
	if err := writeRef(s.gitDir, plumbing.Main, hash); err != nil {
		return false, err
	}
	next := headInfo{hash: hash, tree: root, when: b.UTC(), title: strings.SplitN(c.Message, "\n", 2)[0],
		files: make(map[string]leaf, len(leaves)), known: make(map[plumbing.Hash]bool, len(leaves)+len(trees))}
	for _, l := range leaves {
		next.files[l.path], next.known[l.hash] = l, true
	}
	for _, t := range trees {
		next.known[t] = true
	}
	s.head = next
	now := s.o.Now()
	s.setStatus(func(st *Status) {
		st.LastCommit, st.LastCommitTime, st.Pushed, st.Boundary = hash.String(), now, false, b.UTC()
		st.Commits++
	})
	s.st.SinceGC++
	s.log.Info("committed", "boundary", b.UTC(), "commit", hash.String(), "files", len(leaves))
	s.kickPush()
	if s.hookCommit != nil {
		if err := s.hookCommit(); err != nil {
			return true, err
		}
	}
	return true, nil
}

// leaves gives every committable path of the mirror its blob, in path order.
func (s *Sink) leaves(w *objWriter, b time.Time) ([]leaf, error) {
	keys := make([]string, 0, len(s.st.Files))
	for k := range s.st.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]leaf, 0, len(keys))
	for _, k := range keys {
		e := s.st.Files[k]
		switch {
		case e.Kind == manifest.KindDir:
			continue // git keeps no empty folders; the files inside make the others
		case e.Kind == manifest.KindDB && (!e.DB || e.Broken != ""):
			s.warnOnce(k+"\x00db"+e.Broken, "database left out of the commit", "path", k, "why", e.Broken)
			continue
		}
		if why := badPath(k); why != "" {
			s.warnOnce(k, "path cannot be committed to git; left out", "path", k, "why", why)
			continue
		}
		l, err := s.leafOf(w, k, e, b)
		if errors.Is(err, errLeaveOut) || errors.Is(err, os.ErrNotExist) {
			// A mirror file gone (the state folder was tampered with) must not stop
			// every later commit: the path is left out, loudly, until it changes.
			s.log.Warn("path left out of the commit", "path", k, "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// leafOf returns a path's blob: the cached one while the path is unchanged (and the blob
// still exists), else built from the mirror.
func (s *Sink) leafOf(w *objWriter, key string, e *entry, b time.Time) (leaf, error) {
	mode := filemode.Regular
	switch {
	case e.Kind == manifest.KindSymlink:
		mode = filemode.Symlink
	case e.Mode&0o100 != 0:
		mode = filemode.Executable
	}
	if e.Blob != "" {
		h := plumbing.NewHash(e.Blob)
		if e.Ptr {
			mode = filemode.Regular
		}
		if e.Ptr == s.wantPointer(key, e) && (s.head.known[h] || w.has(h)) {
			return leaf{path: key, mode: mode, hash: h}, nil
		}
	}
	var h plumbing.Hash
	var ptr bool
	var err error
	switch e.Kind {
	case manifest.KindSymlink:
		h, err = w.putBytes([]byte(e.Target))
	case manifest.KindFile:
		h, ptr, err = s.fileBlob(w, key, e, b)
	case manifest.KindAppend:
		h, ptr, err = s.contentBlob(w, key, e, s.contentPath(key))
	case manifest.KindDB:
		h, ptr, err = s.dbBlob(w, key, e)
	default:
		return leaf{}, fmt.Errorf("unknown kind %q", e.Kind)
	}
	if err != nil {
		return leaf{}, err
	}
	if ptr {
		mode = filemode.Regular
	}
	e.Blob, e.Ptr = h.String(), ptr
	return leaf{path: key, mode: mode, hash: h}, nil
}

// resolveConflicts drops a file whose path is also a folder of other files (git cannot
// hold both; the folder's files are kept).
func (s *Sink) resolveConflicts(leaves []leaf) []leaf {
	dirs := map[string]bool{}
	for _, l := range leaves {
		for i := strings.IndexByte(l.path, '/'); i >= 0; {
			dirs[l.path[:i]] = true
			j := strings.IndexByte(l.path[i+1:], '/')
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	out := leaves[:0]
	for _, l := range leaves {
		if dirs[l.path] {
			s.warnOnce(l.path+"\x00dir", "a file has the path of a folder of other files; left out", "path", l.path)
			continue
		}
		out = append(out, l)
	}
	return out
}

// badPath says why git cannot hold a path ("" when it can): empty, "." or ".."
// components, or a .git folder (which fsck rejects and which would hijack a checkout).
func badPath(p string) string {
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == "." || c == "..":
			return "empty, . or .. component"
		case strings.EqualFold(c, ".git") || strings.EqualFold(c, "git~1"):
			return "a .git component"
		case strings.ContainsRune(c, 0):
			return "NUL in a name"
		}
	}
	return ""
}

// message is the commit message: title, record range, counts, then the changed paths.
func (s *Sink) message(b time.Time, leaves []leaf) string {
	var lines []string
	var added, changed, removed int
	now := make(map[string]bool, len(leaves))
	for _, l := range leaves {
		now[l.path] = true
		old, ok := s.head.files[l.path]
		switch {
		case !ok:
			added++
			lines = append(lines, "A "+l.path)
		case old.hash != l.hash || old.mode != l.mode:
			changed++
			lines = append(lines, "M "+l.path)
		}
	}
	for p := range s.head.files {
		if !now[p] {
			removed++
			lines = append(lines, "D "+p)
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][2:] < lines[j][2:] })
	first, last := s.st.Clock.FirstSeq, s.st.Clock.LastSeq
	if first == 0 {
		first = last
	}
	var m strings.Builder
	fmt.Fprintf(&m, "mmreplicate %s state at %s\n\nsequence %d-%d\nadded %d, changed %d, removed %d\n",
		s.o.Host, b.UTC().Format(time.RFC3339Nano), first, last, added, changed, removed)
	if len(lines) > 0 {
		m.WriteString("\n")
	}
	for i, l := range lines {
		if i == maxMessagePaths {
			fmt.Fprintf(&m, "... and %d more\n", len(lines)-i)
			break
		}
		m.WriteString(l + "\n")
	}
	return m.String()
}

// writeRef moves a branch the way git does: the new value into a lock file, synced, then
// renamed over the ref, so a crash leaves the old value or the new one, never neither.
func writeRef(gitDir string, name plumbing.ReferenceName, h plumbing.Hash) error {
	p := filepath.Join(gitDir, filepath.FromSlash(name.String()))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	lock := p + ".lock"
	f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(h.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(lock, p)
	}
	if err != nil {
		os.Remove(lock)
		return fmt.Errorf("update %s: %w", name, err)
	}
	return fsyncPath(filepath.Dir(p))
}

func (s *Sink) warnOnce(key, msg string, args ...any) {
	if s.warned[key] {
		return
	}
	s.warned[key] = true
	s.log.Warn(msg, args...)
}

// emailHost keeps a host name usable in the author's address: characters git would
// choke on (spaces, angle brackets, newlines) become "-".
func emailHost(h string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, h)
}

func unixUTC(ns int64) time.Time { return time.Unix(0, ns).UTC() }
