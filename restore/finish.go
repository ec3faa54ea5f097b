package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
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
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %s", show(k), st.incomplete))
		}
	}
	sort.Strings(keys)
	blobs := map[[32]byte]bool{}
	var blobBytes int64
	for _, k := range keys {
		st := b.files[k]
		if st.incomplete != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %s", show(k), st.incomplete))
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
			fmt.Fprintf(o.Out, "%s\t%s\t%d bytes\n", show(k), st.kind, st.size)
		}
	}
	res.Blobs = len(blobs)
	if o.DryRun {
		fmt.Fprintf(o.Out, "plan: %d files, %d bytes, %d segment objects and %d blobs (%d bytes) to fetch\n",
			res.Files, res.Bytes, res.Segments, res.Blobs, blobBytes)
		return nil
	}
	return placeAll(ctx, o, b, keys, res)
}

// placeAll writes the paths of keys into the target: folders, then files and databases
// in parallel, then links, then the folders' times; the folders written into are fsynced
// at the end. A path refused or damaged is a problem in res; a local failure stops it.
func placeAll(ctx context.Context, o Options, b *builder, keys []string, res *Result) error {
	pl, err := newPlacer(o, b.stage)
	if err != nil {
		return err
	}
	defer pl.close()
	var mu sync.Mutex
	// fail records why a path was not restored, or returns the error that stops the
	// restore (a local failure: disk, permissions).
	fail := func(st *fileState, err error) error {
		if errors.Is(err, errFatal) || ctx.Err() != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		res.Problems = append(res.Problems, fmt.Sprintf("%s: %v", show(manifest.Key(st.source, st.path)), err))
		if st.kind != manifest.KindDir {
			res.Files--
			res.Bytes -= st.size
		}
		return nil
	}
	// placed notes a path the restore wrote (an in-place restore records only those as
	// replicated).
	placed := func(st *fileState) {
		mu.Lock()
		defer mu.Unlock()
		res.Placed = append(res.Placed, manifest.Key(st.source, st.path))
	}
	var dirs, regular, links []*fileState
	shadow := shadowed(keys, b.files)
	for _, k := range keys {
		st := b.files[k]
		if a, ok := shadow[k]; ok {
			err := fmt.Errorf("%w: inside %s, which the state holds as a %s: nothing is written through it",
				errRefused, show(a), b.files[a].kind)
			if err := fail(st, err); err != nil {
				return err
			}
			continue
		}
		switch st.kind {
		case manifest.KindDir:
			dirs = append(dirs, st)
		case manifest.KindSymlink:
			links = append(links, st)
		default:
			regular = append(regular, st)
		}
	}
	// Folders first (parents before children: keys are sorted), so files have somewhere
	// to go.
	for _, st := range dirs {
		r, name, err := pl.target(st.source, st.path)
		if err == nil {
			err = pl.mkdirs(r, name, true, dirMode(st.mode))
		}
		if err == nil {
			placed(st)
		} else if err := fail(st, err); err != nil {
			return err
		}
	}
	if err := placeFiles(ctx, pl, regular, placed, fail, newProgress(o.Progress, "bytes", res.Bytes)); err != nil {
		return err
	}
	// Links last: no file of this restore is ever written through one.
	for _, st := range links {
		r, name, err := pl.target(st.source, st.path)
		if err == nil {
			err = pl.mkdirs(r, name, false, 0)
		}
		if err == nil {
			err = pl.symlink(r, name, st.target)
		}
		if err == nil {
			placed(st)
		} else if err := fail(st, err); err != nil {
			return err
		}
	}
	pl.dirTimes(dirs)
	return pl.syncDirs()
}

// placeFiles places files and databases in parallel.
func placeFiles(ctx context.Context, pl *placer, files []*fileState, placed func(*fileState), fail func(*fileState, error) error, bar *progress) error {
	defer bar.done()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pl.o.Parallel)
	for _, st := range files {
		g.Go(func() error {
			err := place(gctx, pl, st)
			bar.add(st.size)
			if err == nil {
				placed(st)
				return nil
			}
			if gctx.Err() != nil && !errors.Is(err, errFatal) {
				return gctx.Err()
			}
			return fail(st, err)
		})
	}
	return g.Wait()
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

// show spells a key for a message: as it is when printable, quoted otherwise.
func show(k string) string {
	if strconv.CanBackquote(k) && !strings.ContainsAny(k, "`") {
		return k
	}
	return strconv.Quote(k)
}

// place writes one file or database into the target, atomically: staged, fsynced and
// size-checked, then renamed into place through the target's root.
func place(ctx context.Context, pl *placer, st *fileState) error {
	r, name, err := pl.target(st.source, st.path)
	if err != nil {
		return err
	}
	if err := pl.mkdirs(r, name, false, 0); err != nil {
		return err
	}
	stage := pl.stage
	if st.pending() {
		// Compacted content no later record touched: its chunks are the whole file.
		if st.tmp, err = stageChunks(ctx, pl.o.Store, pl.o.packs, !pl.o.NoSync, stage, "base-*", st.chunks); err != nil {
			return err
		}
	}
	tmp := st.tmp
	switch st.kind {
	case manifest.KindFile:
		if tmp, err = stageChunks(ctx, pl.o.Store, pl.o.packs, !pl.o.NoSync, stage, "blob-*", st.chunks); err != nil {
			return err
		}
		if err := checkStaged(tmp, st.size, false); err != nil { // fsynced by stageChunks
			os.Remove(tmp)
			return err
		}
	case manifest.KindDB:
		if tmp != "" {
			if err := checkStaged(tmp, st.size, false); err != nil {
				return err
			}
		}
		if err := finalizeDB(st); err != nil { // fsyncs the finished image
			return err
		}
	case manifest.KindAppend:
		if tmp != "" {
			if err := checkStaged(tmp, st.size, false); err != nil {
				return err
			}
			if err := wholeLines(tmp); err != nil {
				return fmt.Errorf("%w: %w", errFatal, err)
			}
			if err := checkStaged(tmp, -1, !pl.o.NoSync); err != nil {
				return err
			}
		} else if st.size != 0 {
			return fmt.Errorf("rebuilt 0 bytes, the recorded state says %d", st.size)
		}
	default:
		return fmt.Errorf("%w: unknown kind %q", errRefused, st.kind)
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
	return pl.moveIn(tmp, r, name)
}

// stageChunks writes chunks into a new staging file, fsynced when sync is set, and returns
// its name.
func stageChunks(ctx context.Context, store objstore.Store, packs map[string]manifest.Pack, sync bool, stage, pattern string, chunks []journal.ChunkRef) (string, error) {
	f, err := os.CreateTemp(stage, pattern)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errFatal, err)
	}
	err = assemble(ctx, store, packs, f, chunks)
	if err == nil && sync {
		if serr := f.Sync(); serr != nil {
			err = fmt.Errorf("%w: fsync: %w", errFatal, serr)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%w: %w", errFatal, cerr)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
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
