// Package file implements objstore.Store on a local folder. It is the
// embedded default target (same layout as S3) and the reference the S3
// implementation is compared against in tests.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/mmreplicate/mmreplicate/objstore"
)

// tempPrefix marks files that a Put has not yet renamed into place; List
// skips them and keys may not use it, so a crash mid-Put never shows a
// partial object.
const tempPrefix = ".tmp-"

// Store is a folder-backed objstore.Store. Keys map to paths below the folder.
type Store struct {
	dir string
}

var _ objstore.Store = (*Store)(nil)

// New returns a store rooted at dir, creating the folder if needed.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file store %s: %w", abs, err)
	}
	return &Store{dir: abs}, nil
}

// String names the store as a file URL.
func (s *Store) String() string { return "file://" + filepath.ToSlash(s.dir) }

// Dir returns the folder the store lives in.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(key string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, tempPrefix) {
			return "", fmt.Errorf("%w %q: segment starts with %s (reserved for temporary files)",
				objstore.ErrInvalidKey, key, tempPrefix)
		}
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

func (s *Store) fail(op, key string, err error) error {
	// ENOTDIR means a folder on the key's path is a file: for a read that is
	// simply an absent key; for a write it is a real conflict.
	if errors.Is(err, fs.ErrNotExist) || (op != "put" && errors.Is(err, syscall.ENOTDIR)) {
		err = fmt.Errorf("%w (%v)", objstore.ErrNotFound, err)
	} else if errors.Is(err, fs.ErrPermission) {
		err = fmt.Errorf("%w (%v)", objstore.ErrAccessDenied, err)
	}
	if key == "" {
		return fmt.Errorf("%s: %s: %w", s, op, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, key, err)
}

// Put writes data to a temporary file next to the target, fsyncs it, renames
// it over the target and fsyncs the folder, so that after Put returns the
// object survives a crash and readers never see a partial file.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return s.fail("put", key, err)
	}
	if err := ctx.Err(); err != nil {
		return s.fail("put", key, err)
	}
	dir := filepath.Dir(p)
	if err := s.mkdirDurable(dir); err != nil {
		return s.fail("put", key, err)
	}
	// Temporary files are created with mode 0600 and kept that way: the
	// store holds copies of private agent state, and nothing but this
	// process (and its user) needs to read them.
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(p)+"-*")
	if err != nil {
		return s.fail("put", key, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return s.fail("put", key, err)
	}
	if err := syncDir(dir); err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// mkdirDurable creates dir and any missing parents below the root, then
// fsyncs each parent whose entries changed, so a new folder's name is as
// durable as the object later renamed into it.
func (s *Store) mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var created []string
	for d := dir; d != s.dir && len(d) > len(s.dir); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get reads the whole object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	r, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	return data, nil
}

// GetRange reads n bytes from off.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("file get range %s: %w: %d+%d", key, objstore.ErrShortRange, off, n)
	}
	r, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, ok := r.(*os.File)
	if !ok {
		return nil, fmt.Errorf("file get range %s: not a file", key)
	}
	buf := make([]byte, n)
	got, err := f.ReadAt(buf, off)
	if int64(got) == n {
		return buf, nil
	}
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("file get range %s: %w: got %d of %d bytes at %d", key, objstore.ErrShortRange, got, n, off)
	}
	return nil, s.fail("get range", key, err)
}

// Open returns the object's file for streaming.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, s.fail("open", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail("open", key, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, s.fail("open", key, err)
	}
	// A folder that only holds other keys is not an object.
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, s.fail("open", key, err)
	}
	return f, nil
}

// Stat reports the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return objstore.ObjectInfo{}, s.fail("stat", key, err)
	}
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, s.fail("stat", key, err)
	}
	fi, err := os.Stat(p)
	if err == nil && fi.IsDir() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return objstore.ObjectInfo{}, s.fail("stat", key, err)
	}
	return objstore.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object and then any folders it leaves empty, so the
// tree does not fill with empty folders as old objects are pruned.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return s.fail("delete", key, err)
	}
	if err := ctx.Err(); err != nil {
		return s.fail("delete", key, err)
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil // a folder of other keys, not an object: nothing to delete
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return s.fail("delete", key, err)
	}
	// Best effort: a concurrent Put may have just filled the folder, and
	// os.Remove refuses non-empty folders, which is exactly right.
	for d := filepath.Dir(p); d != s.dir && len(d) > len(s.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// Check verifies the folder exists and a file can be created in it.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return s.fail("check", "", err)
	}
	fi, err := os.Stat(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s.fail("check", "", fmt.Errorf("%w: folder %s is missing", objstore.ErrNoBucket, s.dir))
		}
		return s.fail("check", "", err)
	}
	if !fi.IsDir() {
		return s.fail("check", "", fmt.Errorf("%w: %s is not a folder", objstore.ErrNoBucket, s.dir))
	}
	f, err := os.CreateTemp(s.dir, tempPrefix+"check-*")
	if err != nil {
		return s.fail("check", "", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return s.fail("check", "", err)
	}
	return nil
}

// List walks the folder in key order. Each folder's entries are sorted with
// sub-folders compared as "name/", which makes the depth-first walk yield
// keys in global byte order ("a-b" before "a/c") without collecting them all.
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	// Start at the deepest folder the prefix names in full.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	err := s.walkDir(ctx, start, prefix, fn)
	var le listErr
	if errors.As(err, &le) {
		return le.err // fn's own error, returned unchanged
	}
	if err != nil {
		return s.fail("list", prefix, err)
	}
	return nil
}

// listErr carries fn's error out of the walk so it is not decorated.
type listErr struct{ err error }

func (e listErr) Error() string { return e.err.Error() }
func (e listErr) Unwrap() error { return e.err }

func (s *Store) walkDir(ctx context.Context, rel, prefix string, fn func(objstore.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if rel == "" {
				return fmt.Errorf("%w: folder %s is missing", objstore.ErrNoBucket, s.dir)
			}
			// Not created yet, or emptied by a concurrent Delete.
			return nil
		}
		if rel != "" && errors.Is(err, syscall.ENOTDIR) {
			return nil // the prefix names an object, not a folder: "a/b" under key "a"
		}
		return err
	}
	type ent struct {
		key   string // full key, with "/" appended for folders
		isDir bool
		entry fs.DirEntry
	}
	list := make([]ent, 0, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		k := e.Name()
		if rel != "" {
			k = rel + "/" + k
		}
		if e.IsDir() {
			k += "/"
		}
		// Keep an entry only if it can hold keys with the prefix.
		if !strings.HasPrefix(k, prefix) && !strings.HasPrefix(prefix, k) {
			continue
		}
		list = append(list, ent{k, e.IsDir(), e})
	}
	slices.SortFunc(list, func(a, b ent) int { return strings.Compare(a.key, b.key) })
	for _, e := range list {
		if e.isDir {
			if err := s.walkDir(ctx, strings.TrimSuffix(e.key, "/"), prefix, fn); err != nil {
				return err
			}
			continue
		}
		if !e.entry.Type().IsRegular() || !strings.HasPrefix(e.key, prefix) {
			continue
		}
		fi, err := e.entry.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return err
		}
		if err := fn(objstore.ObjectInfo{Key: e.key, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return listErr{err}
		}
	}
	return nil
}
