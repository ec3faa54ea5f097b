package git

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// memLimit is the size up to which a blob is read into memory once rather than streamed
// twice (once to hash it, once to store it when it is new).
const memLimit = 1 << 20

// objWriter stores the objects of one commit, skipping those the repository has.
type objWriter struct {
	s       *Sink
	seen    map[plumbing.Hash]bool // known to exist
	written []plumbing.Hash
}

func (w *objWriter) has(h plumbing.Hash) bool {
	if w.seen[h] || w.s.head.known[h] {
		return true
	}
	if w.s.repo.Storer.HasEncodedObject(h) == nil {
		w.seen[h] = true
		return true
	}
	return false
}

// put stores an encoded object unless it exists.
func (w *objWriter) put(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	h := obj.Hash()
	if w.has(h) {
		return h, nil
	}
	if _, err := w.s.repo.Storer.SetEncodedObject(obj); err != nil {
		return h, fmt.Errorf("store object %s: %w", h, err)
	}
	w.seen[h] = true
	w.written = append(w.written, h)
	return h, nil
}

func (w *objWriter) putBytes(b []byte) (plumbing.Hash, error) {
	obj := &plumbing.MemoryObject{}
	obj.SetType(plumbing.BlobObject)
	if _, err := obj.Write(b); err != nil {
		return plumbing.ZeroHash, err
	}
	return w.put(obj)
}

// lazyWriter is the go-git storer method that stores an object as it is streamed.
type lazyWriter interface {
	LazyWriter() (io.WriteCloser, func(plumbing.ObjectType, int64) error, error)
}

// putStream stores a blob of size bytes read from open, without holding it in memory when
// it is large.
func (w *objWriter) putStream(size int64, open func() (io.ReadCloser, error)) (plumbing.Hash, error) {
	lw, lazy := w.s.repo.Storer.(lazyWriter)
	if size <= memLimit || !lazy {
		b, err := readAll(open, size)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		return w.putBytes(b)
	}
	hasher := plumbing.NewHasher(plumbing.BlobObject, size)
	if err := copyFrom(hasher, open, size); err != nil {
		return plumbing.ZeroHash, err
	}
	h := hasher.Sum()
	if w.has(h) {
		return h, nil
	}
	out, header, err := lw.LazyWriter()
	if err != nil {
		return h, err
	}
	err = header(plumbing.BlobObject, size)
	if err == nil {
		err = copyFrom(out, open, size)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return h, fmt.Errorf("store blob %s: %w", h, err)
	}
	w.seen[h] = true
	w.written = append(w.written, h)
	return h, nil
}

func readAll(open func() (io.ReadCloser, error), size int64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(size))
	if err := copyFrom(&buf, open, size); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyFrom copies exactly size bytes of a fresh reader into dst.
func copyFrom(dst io.Writer, open func() (io.ReadCloser, error), size int64) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(dst, io.LimitReader(r, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("content has %d bytes, expected %d", n, size)
	}
	return nil
}

// sync makes the objects written so far durable: one file-system sync, or one fsync per
// object where that is not available.
func (w *objWriter) sync() error {
	if len(w.written) == 0 || syncFS(w.s.gitDir) == nil {
		return nil
	}
	dirs := map[string]bool{}
	for _, h := range w.written {
		hex := h.String()
		p := filepath.Join(w.s.gitDir, "objects", hex[:2], hex[2:])
		if err := fsyncPath(p); err != nil {
			return err
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := fsyncPath(d); err != nil {
			return err
		}
	}
	return nil
}

// dirNode is one folder of the tree being built.
type dirNode struct {
	files map[string]leaf
	dirs  map[string]*dirNode
}

func newDirNode() *dirNode { return &dirNode{files: map[string]leaf{}, dirs: map[string]*dirNode{}} }

// writeTree stores the trees of leaves (free of file/folder conflicts) and returns the
// root's hash and every tree's. The same leaves always give the same root.
func (w *objWriter) writeTree(leaves []leaf) (plumbing.Hash, []plumbing.Hash, error) {
	root := newDirNode()
	for _, l := range leaves {
		n := root
		rest := l.path
		for {
			name, tail, more := strings.Cut(rest, "/")
			if !more {
				n.files[name] = l
				break
			}
			d := n.dirs[name]
			if d == nil {
				d = newDirNode()
				n.dirs[name] = d
			}
			n, rest = d, tail
		}
	}
	var trees []plumbing.Hash
	h, err := w.encodeDir(root, &trees)
	return h, trees, err
}

func (w *objWriter) encodeDir(n *dirNode, trees *[]plumbing.Hash) (plumbing.Hash, error) {
	entries := make([]object.TreeEntry, 0, len(n.files)+len(n.dirs))
	for name, l := range n.files {
		entries = append(entries, object.TreeEntry{Name: name, Mode: l.mode, Hash: l.hash})
	}
	for name, d := range n.dirs {
		h, err := w.encodeDir(d, trees)
		if err != nil {
			return h, err
		}
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}
	// git orders entries by name, a folder's name compared as if it ended in "/".
	sortKey := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return sortKey(entries[i]) < sortKey(entries[j]) })
	obj := w.s.repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := w.put(obj)
	if err != nil {
		return h, err
	}
	*trees = append(*trees, h)
	return h, nil
}

// errMissingChunk says a whole file's chunk is not in the cache.
var errMissingChunk = errors.New("chunk not in the cache")

// chunkReader reads a whole file from its cached chunks, one open file at a time.
type chunkReader struct {
	s    *Sink
	ids  []string
	cur  *os.File
	next int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if r.next == len(r.ids) {
				return 0, io.EOF
			}
			f, err := os.Open(r.s.chunkPath(r.ids[r.next]))
			if errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("%w: %s", errMissingChunk, r.ids[r.next])
			}
			if err != nil {
				return 0, err
			}
			r.cur = f
			r.next++
		}
		n, err := r.cur.Read(p)
		if errors.Is(err, io.EOF) {
			r.cur.Close()
			r.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (r *chunkReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}
