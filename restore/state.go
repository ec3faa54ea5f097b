package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/state"
)

// fileState is one path being rebuilt.
type fileState struct {
	source, path string
	kind         string // a manifest kind
	size         int64
	mode         uint32
	time         int64 // capture time of its last change
	deleted      bool
	incomplete   string             // why the content stops short, when a record was missing
	tmp          string             // staging file of append and db content ("" in a dry run)
	chunks       []journal.ChunkRef // file content; append/db: compacted base not yet staged
	target       string
	db           *dbImage
}

// builder applies records in sequence order to staged files.
type builder struct {
	stage  string // "" for a dry run
	files  map[string]*fileState
	open   map[string]*os.File
	nextID int
	// ctx and store fetch compacted bases when a record extends one.
	ctx   context.Context
	store objstore.Store
	blobs int // blobs fetched that way
	// locs locates packed chunks: the starting manifest's Packs plus the chunk records
	// replayed since (only its Packs is used).
	locs *manifest.Index
	// noSync: staged files are closed without an fsync (a rebuild into a cache).
	noSync bool
}

func newBuilder(ctx context.Context, store objstore.Store, stage string) *builder {
	return &builder{stage: stage, files: map[string]*fileState{}, open: map[string]*os.File{}, ctx: ctx, store: store,
		locs: &manifest.Index{}}
}

// seed starts from a manifest: whole files, links and folders come from it; append and
// database content is rebuilt from the records it says are live, on top of its chunks
// when compaction stored it as a base image.
func (b *builder) seed(x *manifest.Index) {
	b.locs = &manifest.Index{Packs: x.Clone().Packs}
	for k, e := range x.Files {
		src, path := splitKey(k)
		st := &fileState{source: src, path: path, kind: e.Kind, size: e.Size, mode: e.Mode, time: e.Time,
			chunks: e.Chunks, target: e.Target}
		if e.Kind == manifest.KindAppend || e.Kind == manifest.KindDB {
			if len(e.Chunks) == 0 && e.Since > 0 {
				st.deleted, st.size = true, 0
			} else if e.Kind == manifest.KindDB {
				st.db = &dbImage{} // page size: taken from the next transaction
			}
		}
		b.files[k] = st
	}
}

// pending reports whether a path's append or db content still sits in its chunks.
func (st *fileState) pending() bool {
	return (st.kind == manifest.KindAppend || st.kind == manifest.KindDB) && len(st.chunks) > 0
}

// materialize copies a compacted base into the staging file before a record changes
// it, so that records apply to the bytes they were captured against. Fetching only
// then keeps restores that never touch the path from copying it twice.
func (b *builder) materialize(key string, st *fileState) error {
	if !st.pending() || st.deleted {
		return nil
	}
	chunks := st.chunks
	st.chunks = nil
	if b.stage == "" {
		return nil
	}
	f, err := b.file(key, st)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	if err := assemble(b.ctx, b.store, b.locs.Packs, f, chunks); err != nil {
		if errors.Is(err, errFatal) || b.ctx.Err() != nil {
			return err
		}
		// A damaged base: what follows cannot be applied to it.
		st.incomplete = fmt.Sprintf("compacted content lost: %v", err)
		st.size = 0
		_ = f.Truncate(0)
		return nil
	}
	b.blobs += len(chunks)
	return nil
}

func splitKey(k string) (string, string) { return state.SplitKey(k) }

// maxOpen bounds the staging files held open between records.
const maxOpen = 256

// entry is what the path holds, as package state sees it (nil: nothing).
func (st *fileState) entry() *state.Entry {
	if st == nil || st.deleted {
		return nil
	}
	return &state.Entry{Kind: st.kind, Mode: st.mode, Size: st.size, Time: st.time, Target: st.target}
}

// apply applies one record with the meaning package state gives it. A malformed record
// is returned as a *state.Error and changes nothing.
func (b *builder) apply(r *journal.Record) error {
	key := state.Key(r.Source, r.Path)
	st := b.files[key]
	ch, err := state.Step(st.entry(), r)
	if err == nil && r.Op == journal.OpChunk {
		b.locs.Locate(r)
	}
	if err != nil || r.Op == journal.OpChunk {
		return err
	}
	if st == nil {
		st = &fileState{source: r.Source, path: r.Path, deleted: true}
		b.files[key] = st
	}
	next := ch.Next
	switch ch.Action {
	case state.Remove:
		return b.reset(key, st, "", true)
	case state.Skip:
		// Bytes before this record never arrived (a damaged or missing object): keep
		// the whole-line prefix we have rather than a file with a hole.
		if st.incomplete == "" {
			st.incomplete = ch.Missing
		}
		return nil
	case state.Replace:
		if err := b.reset(key, st, next.Kind, false); err != nil {
			return err
		}
		st.chunks, st.size, st.target = next.Chunks, next.Size, next.Target
	case state.Write:
		if err := b.startContent(key, st, ch, state.KindAppend); err != nil {
			return err
		}
		if r.Offset > st.size {
			return nil // the compacted base it extends was lost (named by materialize)
		}
		if err := b.applyAppend(key, st, r); err != nil {
			return err
		}
		st.size = next.Size
	case state.Pages:
		if err := b.startContent(key, st, ch, state.KindDB); err != nil {
			return err
		}
		if err := b.applyDB(key, st, r); err != nil {
			return err
		}
	}
	st.mode, st.time = next.Mode, next.Time
	return nil
}

// startContent readies append-only or database content for a record: a fresh start
// drops what the path held; a record that extends a compacted base needs its bytes.
func (b *builder) startContent(key string, st *fileState, ch state.Change, kind string) error {
	if !ch.Fresh {
		return b.materialize(key, st)
	}
	if err := b.reset(key, st, kind, false); err != nil {
		return err
	}
	if kind == state.KindDB {
		st.db = &dbImage{}
	}
	return nil
}

// reset drops whatever the path held and gives it a new kind.
func (b *builder) reset(key string, st *fileState, kind string, deleted bool) error {
	st.kind, st.deleted, st.size, st.incomplete = kind, deleted, 0, ""
	st.chunks, st.target, st.db = nil, "", nil
	return b.truncate(key, st, 0)
}

// applyAppend writes an append record's bytes at its offset, after dropping anything
// beyond it (state.Step has checked that the bytes before it are there).
func (b *builder) applyAppend(key string, st *fileState, r *journal.Record) error {
	if err := b.truncate(key, st, r.Offset); err != nil {
		return err
	}
	if b.stage == "" {
		return nil
	}
	f, err := b.file(key, st)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(r.Data, r.Offset); err != nil {
		return fmt.Errorf("restore: write %s: %w", st.path, err)
	}
	return nil
}

func (b *builder) truncate(key string, st *fileState, size int64) error {
	if b.stage == "" || st.tmp == "" {
		return nil
	}
	if f := b.open[key]; f != nil {
		if err := f.Truncate(size); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return nil
	}
	if err := os.Truncate(st.tmp, size); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// file returns the open staging file of a path, creating it on first use.
func (b *builder) file(key string, st *fileState) (*os.File, error) {
	if f := b.open[key]; f != nil {
		return f, nil
	}
	if len(b.open) >= maxOpen {
		if err := b.closeAll(); err != nil {
			return nil, err
		}
	}
	if st.tmp == "" {
		b.nextID++
		st.tmp = filepath.Join(b.stage, strconv.Itoa(b.nextID))
	}
	f, err := os.OpenFile(st.tmp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	b.open[key] = f
	return f, nil
}

func (b *builder) closeAll() error {
	var errs []error
	for k, f := range b.open {
		if !b.noSync {
			errs = append(errs, f.Sync())
		}
		errs = append(errs, f.Close())
		delete(b.open, k)
	}
	return errors.Join(errs...)
}
