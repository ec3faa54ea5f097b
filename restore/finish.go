package restore

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
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	bucket "github.com/mmreplicate/mmreplicate/store"
)

// finish writes the final state: folders, append files from staging, whole files from
// their blobs (fetched in parallel, every hash checked), links and databases.
func finish(ctx context.Context, o Options, b *builder, res *Result) error {
	o.packs = b.locs.Packs
	keys := make([]string, 0, len(b.files))
	for k, st := range b.files {
		if !st.deleted && o.wantsPath(st.source, st.path) {
			keys = append(keys, k)
		} else if st.incomplete != "" && o.wantsPath(st.source, st.path) {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %s", k, st.incomplete))
		}
	}
	sort.Strings(keys)
	blobs := map[[32]byte]bool{}
	var blobBytes int64
	for _, k := range keys {
		st := b.files[k]
		if st.incomplete != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %s", k, st.incomplete))
		}
		if st.kind == manifest.KindDir {
			continue
		}
		res.Files++
		res.Bytes += st.size
		for _, c := range st.chunks {
			if !blobs[c.Hash] {
				blobs[c.Hash] = true
				blobBytes += int64(c.Size)
			}
		}
		if o.DryRun {
			fmt.Fprintf(o.Out, "%s\t%s\t%d bytes\n", k, st.kind, st.size)
		}
	}
	res.Blobs = len(blobs)
	if o.DryRun {
		fmt.Fprintf(o.Out, "plan: %d files, %d bytes, %d segment objects and %d blobs (%d bytes) to fetch\n",
			res.Files, res.Bytes, res.Segments, res.Blobs, blobBytes)
		return nil
	}
	// Folders first (deepest last), so files and links have somewhere to go.
	for _, k := range keys {
		if st := b.files[k]; st.kind == manifest.KindDir {
			_, dst := o.dest(st.source, st.path)
			if err := os.MkdirAll(dst, dirMode(st.mode)); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		}
	}
	bar := newProgress(o.Progress, "bytes", res.Bytes)
	defer bar.done()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	for _, k := range keys {
		st := b.files[k]
		if st.kind == manifest.KindDir {
			continue
		}
		g.Go(func() error {
			err := place(gctx, o, b.stage, st)
			bar.add(st.size)
			if err == nil {
				mu.Lock()
				res.Placed = append(res.Placed, st.source+"/"+st.path)
				mu.Unlock()
				return nil
			}
			if errors.Is(err, errFatal) || gctx.Err() != nil {
				return err
			}
			mu.Lock()
			res.Problems = append(res.Problems, fmt.Sprintf("%s/%s: %v", st.source, st.path, err))
			res.Files--
			res.Bytes -= st.size
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Folder times last: writing files into them changed them.
	for _, k := range keys {
		if st := b.files[k]; st.kind == manifest.KindDir {
			res.Placed = append(res.Placed, st.source+"/"+st.path)
		}
		if st := b.files[k]; st.kind == manifest.KindDir && st.time > 0 {
			t := time.Unix(0, st.time)
			_, dst := o.dest(st.source, st.path)
			_ = os.Chtimes(dst, t, t)
		}
	}
	return nil
}

// errFatal marks a local failure (disk, permissions) that stops the restore, as opposed to
// a damaged object, which is reported while the rest goes on.
var errFatal = errors.New("restore failed")

func dirMode(m uint32) os.FileMode {
	if m&0o777 == 0 {
		return 0o755
	}
	return os.FileMode(m & 0o777)
}

// place writes one file, link or database into the target, atomically.
func place(ctx context.Context, o Options, stage string, st *fileState) error {
	root, dst := o.dest(st.source, st.path)
	if rel, err := filepath.Rel(root, dst); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("refusing path outside the target")
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	if st.kind == manifest.KindSymlink {
		_ = os.Remove(dst)
		if err := os.Symlink(st.target, dst); err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
		return nil
	}
	if st.pending() {
		// Compacted content no later record touched: its chunks are the whole file.
		f, err := os.CreateTemp(stage, "base-*")
		if err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
		st.tmp = f.Name()
		err = assemble(ctx, o.Store, o.packs, f, st.chunks)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%w: %w", errFatal, cerr)
		}
		if err != nil {
			os.Remove(st.tmp)
			return err
		}
	}
	tmp := st.tmp
	switch st.kind {
	case manifest.KindFile:
		f, err := os.CreateTemp(stage, "blob-*")
		if err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
		tmp = f.Name()
		err = assemble(ctx, o.Store, o.packs, f, st.chunks)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%w: %w", errFatal, cerr)
		}
		if err != nil {
			os.Remove(tmp)
			return err
		}
	case manifest.KindDB:
		if err := finalizeDB(st); err != nil {
			return err
		}
	case manifest.KindAppend:
		if tmp != "" {
			if err := wholeLines(tmp); err != nil {
				return fmt.Errorf("%w: %w", errFatal, err)
			}
		}
	}
	if tmp == "" { // an empty file never got a staging file
		f, err := os.CreateTemp(stage, "empty-*")
		if err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
		f.Close()
		tmp = f.Name()
	}
	mode := os.FileMode(st.mode & 0o7777)
	if mode == 0 {
		mode = 0o644
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	if st.time > 0 {
		t := time.Unix(0, st.time)
		_ = os.Chtimes(tmp, t, t) // the capture time, which serve-s3 shows as Last-Modified
	}
	if err := os.Rename(tmp, dst); errors.Is(err, syscall.EXDEV) {
		err = copyAcross(tmp, dst, mode)
	} else if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	return nil
}

// copyAcross moves a staged file to another file system: copy beside the destination,
// fsync, rename, so the destination still changes atomically.
func copyAcross(tmp, dst string, mode os.FileMode) error {
	in, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".mmreplicate-*")
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(out.Name(), mode)
	}
	if fi, serr := in.Stat(); err == nil && serr == nil {
		_ = os.Chtimes(out.Name(), fi.ModTime(), fi.ModTime())
	}
	if err == nil {
		err = os.Rename(out.Name(), dst)
	}
	if err != nil {
		os.Remove(out.Name())
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	return nil
}

// assemble writes a file's chunks in order, each checked against its hash (see
// store.ReadChunk).
func assemble(ctx context.Context, st objstore.Store, packs map[string]manifest.Pack, w io.Writer, chunks []journal.ChunkRef) error {
	for _, c := range chunks {
		data, err := bucket.ReadChunk(ctx, st, packs, c)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
	}
	return nil
}

// progress draws a bar on a terminal; every method is a no-op without one.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(w io.Writer, what string, total int64) *progress {
	if w == nil || total <= 0 {
		return &progress{}
	}
	opts := []progressbar.Option{progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("restore " + what),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionClearOnFinish()}
	if what == "bytes" {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	return &progress{bar: progressbar.NewOptions64(total, opts...)}
}

func (p *progress) add(n int64) {
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// wholeLines cuts an append-only file back to its last newline. The watcher only ships
// complete lines, but one capture of a very long line spans several records, and a crash
// between two segment uploads can leave only the first part stored: that part must not
// come back as a torn line.
func wholeLines(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for end := fi.Size(); end > 0; {
		start := max(0, end-int64(len(buf)))
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			if start+int64(i)+1 == fi.Size() {
				return nil
			}
			return f.Truncate(start + int64(i) + 1)
		}
		end = start
	}
	return f.Truncate(0)
}
