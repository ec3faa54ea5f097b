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
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// memLimit is the size up to which a blob is read into memory to be hashed rather than
// streamed.
const memLimit = 1 << 20

// packMin is the number of new blobs from which a commit stores them as one pack (one
// file, compressed in parallel) rather than one loose object file each: creating
// thousands of small files costs far more than writing their bytes.
const packMin = 32

// objWriter stores the objects of one commit, skipping those the repository has. Blobs
// are only hashed at first and stored together by flushBlobs, which lets a large commit
// go into a single pack; trees and the commit are stored at once.
type objWriter struct {
	s       *Sink
	seen    map[plumbing.Hash]bool // known to exist, or pending
	pending []pendingBlob
	temps   []string // scratch files pending blobs read from
	written []plumbing.Hash
	packed  bool
}

// pendingBlob is a new blob hashed but not stored yet: its bytes, or how to read them.
type pendingBlob struct {
	hash plumbing.Hash
	size int64
	data []byte
	open func() (io.ReadCloser, error)
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

// putBytes queues a small blob held in memory.
func (w *objWriter) putBytes(b []byte) (plumbing.Hash, error) {
	h := plumbing.ComputeHash(plumbing.BlobObject, b)
	if !w.has(h) {
		w.seen[h] = true
		w.pending = append(w.pending, pendingBlob{hash: h, size: int64(len(b)), data: b})
	}
	return h, nil
}

// putStream hashes a blob of size bytes read from open and queues it when it is new; the
// bytes are read again when stored, so no more than one blob is held in memory.
func (w *objWriter) putStream(size int64, open func() (io.ReadCloser, error)) (plumbing.Hash, error) {
	hasher := plumbing.NewHasher(plumbing.BlobObject, size)
	if size <= memLimit {
		b, err := readAll(open, size)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		hasher.Write(b)
	} else if err := copyFrom(hasher, open, size); err != nil {
		return plumbing.ZeroHash, err
	}
	h := hasher.Sum()
	if !w.has(h) {
		w.seen[h] = true
		w.pending = append(w.pending, pendingBlob{hash: h, size: size, open: open})
	}
	return h, nil
}

func (pb *pendingBlob) reader() (io.ReadCloser, error) {
	if pb.open == nil {
		return io.NopCloser(bytes.NewReader(pb.data)), nil
	}
	return pb.open()
}

// flushBlobs stores the queued blobs: as one pack when they are many, else loose.
func (w *objWriter) flushBlobs() error {
	defer func() { w.pending = nil }()
	if pw, ok := w.s.repo.Storer.(storer.PackfileWriter); ok && len(w.pending) >= packMin {
		if err := writePack(pw, w.pending); err != nil {
			return fmt.Errorf("store %d blobs as a pack: %w", len(w.pending), err)
		}
		w.packed = true
		return nil
	}
	lw, lazy := w.s.repo.Storer.(lazyWriter)
	for i := range w.pending {
		pb := &w.pending[i]
		if pb.open == nil || !lazy {
			b := pb.data
			if b == nil {
				var err error
				if b, err = readAll(pb.reader, pb.size); err != nil {
					return err
				}
			}
			obj := &plumbing.MemoryObject{}
			obj.SetType(plumbing.BlobObject)
			obj.Write(b)
			if _, err := w.s.repo.Storer.SetEncodedObject(obj); err != nil {
				return fmt.Errorf("store blob %s: %w", pb.hash, err)
			}
		} else if err := storeLazy(lw, pb); err != nil {
			return err
		}
		w.written = append(w.written, pb.hash)
	}
	return nil
}

// lazyWriter is the go-git storer method that stores an object as it is streamed.
type lazyWriter interface {
	LazyWriter() (io.WriteCloser, func(plumbing.ObjectType, int64) error, error)
}

func storeLazy(lw lazyWriter, pb *pendingBlob) error {
	out, header, err := lw.LazyWriter()
	if err != nil {
		return err
	}
	err = header(plumbing.BlobObject, pb.size)
	if err == nil {
		err = copyFrom(out, pb.reader, pb.size)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store blob %s: %w", pb.hash, err)
	}
	return nil
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

// cleanup removes the scratch files of the commit.
func (w *objWriter) cleanup() {
	for _, p := range w.temps {
		os.Remove(p)
	}
}

// sync makes the objects written so far durable: one file-system sync, or one fsync per
// object file where that is not available.
func (w *objWriter) sync() error {
	if (len(w.written) == 0 && !w.packed) || syncFS(w.s.gitDir) == nil {
		return nil
	}
	files := map[string]bool{}
	for _, h := range w.written {
		hex := h.String()
		files[filepath.Join(w.s.gitDir, "objects", hex[:2], hex[2:])] = true
	}
	if w.packed {
		packs, _ := filepath.Glob(filepath.Join(w.s.gitDir, "objects", "pack", "pack-*"))
		for _, p := range packs {
			files[p] = true
		}
	}
	dirs := map[string]bool{}
	for p := range files {
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
