package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
)

// ErrDrillFailed is returned (wrapped) by Drill when the restore ran but its result
// does not match the recorded state; DrillResult.Problems says what and where.
var ErrDrillFailed = errors.New("restore drill failed")

// DrillResult is what a restore drill found.
type DrillResult struct {
	At       time.Time     // the instant restored
	Duration time.Duration // restore plus checks
	Files    int           // files, links and databases checked (folders not counted)
	Bytes    int64         // bytes restored
	// Problems name every damaged or missing object and every file that does not
	// match the recorded state; empty when the drill passed.
	Problems []string
	// OldestRestorable and NewestRestorable are the recoverable window the store
	// held when the drill ran.
	OldestRestorable, NewestRestorable time.Time
}

// OK reports whether the drill passed.
func (r DrillResult) OK() bool { return len(r.Problems) == 0 }

// drillParallel bounds both the restore's downloads and the checks' file reads.
const drillParallel = 8

// Drill restores the host's state at `at` (the zero time: the newest state) into a
// fresh folder under tmpDir, checks every restored file against the state the store
// records, and removes the folder. Whole files are re-split at their recorded chunk
// sizes and every chunk's SHA-256 compared, so a restore is checked against the hashes
// taken on the host rather than against itself; append files must have their recorded
// size, files and append files their recorded mode, links their target; every recorded
// path must be there and nothing else. Problems the restore itself met (damaged or
// missing objects, named) are part of the result.
//
// An error wrapping ErrDrillFailed means the drill ran and found problems (listed in
// the result); any other error means it could not run (store unreachable, nothing to
// restore at that time, local disk trouble).
func Drill(ctx context.Context, store objstore.Store, host string, at time.Time, tmpDir string) (DrillResult, error) {
	start := time.Now()
	latest := at.IsZero()
	res := DrillResult{At: at}
	cat, err := List(ctx, store, host)
	if err != nil {
		return res, err
	}
	res.OldestRestorable, res.NewestRestorable, _ = cat.Window()
	if latest {
		res.At = res.NewestRestorable
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return res, fmt.Errorf("drill: %w", err)
	}
	dir, err := os.MkdirTemp(tmpDir, "mmreplicate-drill-")
	if err != nil {
		return res, fmt.Errorf("drill: %w", err)
	}
	defer os.RemoveAll(dir)
	to := filepath.Join(dir, "restore")

	problems := map[string]bool{}
	rr, err := Run(ctx, Options{Store: store, Host: host, At: at, Latest: latest, To: to,
		Parallel: drillParallel, Out: io.Discard})
	if err != nil && !errors.Is(err, ErrIncomplete) {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("drill: %w", err)
	}
	for _, p := range rr.Problems {
		problems[p] = true
	}
	// The state to compare with is read separately from the restore, so that a fault
	// in how the restore applies records shows as a mismatch rather than agreeing with
	// itself.
	x, lp, err := LoadIndex(ctx, store, host, at, latest)
	if err != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("drill: %w", err)
	}
	for _, p := range lp {
		problems[p] = true
	}
	files, bytes, cp, err := checkRestored(ctx, to, x)
	if err != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("drill: %w", err)
	}
	for _, p := range cp {
		problems[p] = true
	}
	res.Files, res.Bytes = files, bytes
	for p := range problems {
		res.Problems = append(res.Problems, p)
	}
	sort.Strings(res.Problems)
	res.Duration = time.Since(start)
	if len(res.Problems) > 0 {
		first := res.Problems[0]
		if n := len(res.Problems); n > 1 {
			first = fmt.Sprintf("%s (and %d more)", first, n-1)
		}
		return res, fmt.Errorf("%w: host %s at %s: %s", ErrDrillFailed, host, res.At.UTC().Format(time.RFC3339Nano), first)
	}
	return res, nil
}

// checkRestored compares the folder a restore wrote (to/<source>/<path>) with the
// index. Problems are about files; the error is for local failures only.
func checkRestored(ctx context.Context, to string, x *manifest.Index) (files int, bytes int64, problems []string, err error) {
	// Everything on disk that is not a folder; folders appear for any file below them,
	// so only recorded ones are checked, and only for being folders.
	onDisk := map[string]bool{}
	err = filepath.WalkDir(to, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == to {
			return filepath.SkipAll // nothing restored: every recorded path is reported below
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(to, p)
			onDisk[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, err
	}
	// The keys come from the store: every check goes through a root on the restored
	// folder, so that no key, however crafted, reads anything outside it.
	if err := os.MkdirAll(to, 0o700); err != nil {
		return 0, 0, nil, err
	}
	root, err := os.OpenRoot(to)
	if err != nil {
		return 0, 0, nil, err
	}
	defer root.Close()
	var mu sync.Mutex
	add := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(drillParallel)
	for _, k := range x.Sorted() {
		e := x.Files[k]
		delete(onDisk, k)
		if err := checkKey(k); err != nil {
			add("%s: %v", show(k), err)
			continue
		}
		p := k
		if e.Kind == manifest.KindDir {
			if fi, err := root.Lstat(p); err != nil || !fi.IsDir() {
				add("%s: folder missing from the restore", show(k))
			}
			continue
		}
		files++
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			n, msg := checkEntry(root, p, e)
			mu.Lock()
			bytes += n
			mu.Unlock()
			if msg != "" {
				add("%s: %s", show(k), msg)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, nil, err
	}
	for k := range onDisk {
		problems = append(problems, fmt.Sprintf("%s: restored but not in the recorded state", show(k)))
	}
	return files, bytes, problems, nil
}

// checkEntry checks one restored path against its entry; it returns the bytes found
// and what is wrong ("" when nothing).
func checkEntry(root *os.Root, p string, e *manifest.Entry) (int64, string) {
	fi, err := root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "missing from the restore"
	}
	if err != nil {
		return 0, err.Error()
	}
	switch e.Kind {
	case manifest.KindSymlink:
		if fi.Mode()&fs.ModeSymlink == 0 {
			return 0, "restored as " + fi.Mode().Type().String() + ", recorded as a link"
		}
		target, err := root.Readlink(p)
		if err != nil {
			return 0, err.Error()
		}
		if target != e.Target {
			return 0, fmt.Sprintf("link to %q, recorded %q", target, e.Target)
		}
		return 0, ""
	case manifest.KindFile, manifest.KindAppend, manifest.KindDB:
	default:
		return 0, "unknown kind " + e.Kind
	}
	if !fi.Mode().IsRegular() {
		return 0, "restored as " + fi.Mode().Type().String() + ", recorded as a " + e.Kind + " file"
	}
	// Databases are left out: their mode is whatever the database restore gives them.
	if want := fs.FileMode(e.Mode & 0o777); e.Kind != manifest.KindDB && want != 0 && fi.Mode().Perm() != want {
		return fi.Size(), fmt.Sprintf("mode %o, recorded %o", fi.Mode().Perm(), want)
	}
	switch e.Kind {
	case manifest.KindAppend:
		if fi.Size() != e.Size {
			return fi.Size(), fmt.Sprintf("%d bytes, recorded %d", fi.Size(), e.Size)
		}
	case manifest.KindFile:
		if fi.Size() != e.Size {
			return fi.Size(), fmt.Sprintf("%d bytes, recorded %d", fi.Size(), e.Size)
		}
		if msg := checkChunks(root, p, e); msg != "" {
			return fi.Size(), msg
		}
	}
	return fi.Size(), ""
}

// checkKey checks a key of the recorded state ("<source>/<path>") as placement does.
func checkKey(k string) error {
	source, rel, ok := strings.Cut(k, "/")
	if !ok {
		return fmt.Errorf("%w: key %q names no path", errRefused, k)
	}
	if err := checkSource(source); err != nil {
		return err
	}
	return checkName(rel)
}

// checkChunks re-splits a whole file at its recorded chunk sizes and compares each
// piece's SHA-256 with the recorded one.
func checkChunks(root *os.Root, p string, e *manifest.Entry) string {
	f, err := root.Open(p)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var off int64
	for i, c := range e.Chunks {
		h := sha256.New()
		n, err := io.CopyN(h, f, int64(c.Size))
		if err != nil && err != io.EOF {
			return err.Error()
		}
		if n != int64(c.Size) {
			return fmt.Sprintf("ends inside chunk %d (bytes %d-%d)", i, off, off+int64(c.Size))
		}
		if [32]byte(h.Sum(nil)) != c.Hash {
			return fmt.Sprintf("chunk %d (bytes %d-%d) does not match its recorded hash (blob %s)",
				i, off, off+int64(c.Size), manifest.BlobKey(c.ID()))
		}
		off += n
	}
	if n, _ := io.Copy(io.Discard, f); n > 0 {
		return fmt.Sprintf("%d bytes beyond the recorded chunks", n)
	}
	return ""
}
