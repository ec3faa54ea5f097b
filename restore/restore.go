// Package restore reads the store: which segments and manifests exist, the state of every
// file at a time T, and writing that state into a folder.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/state"
	bucket "github.com/mmreplicate/mmreplicate/store"
)

// ErrIncomplete is returned (wrapped) when some object was damaged or missing; every
// file that could be rebuilt was, and the message names what was not.
var ErrIncomplete = errors.New("restore incomplete")

// ErrNotEmpty is returned when the target folder holds files and Force is not set.
var ErrNotEmpty = errors.New("target is not empty")

// ErrNothing is returned when the store holds nothing for the host at or before T.
var ErrNothing = errors.New("nothing to restore")

// Options say what to restore, from where, and to where.
type Options struct {
	packs  map[string]manifest.Pack // set by finish: where packed chunks are
	Store  objstore.Store
	Host   string
	At     time.Time // inclusive; ignored when Latest
	Latest bool
	To     string
	// Roots, when set, puts each source's files under its own folder instead of
	// To/<source> (restore --in-place); records of other sources are left out.
	Roots   map[string]string
	Sources []string // only these sources (all when empty)
	Paths   []string // only paths matching one of these globs (relative path or source/path)
	DryRun  bool
	Force   bool // allow a non-empty target
	// NoSync skips the fsync of each staged file and of the folders written into: for
	// rebuilds into a cache (serve-s3, the web console) that are thrown away after a
	// crash anyway.
	NoSync   bool
	Parallel int
	Out      io.Writer // the plan and the summary
	Progress io.Writer // a terminal to draw progress on, or nil
	Log      *slog.Logger
}

// Result sums up a restore.
type Result struct {
	Files    int
	Bytes    int64
	Segments int
	Blobs    int
	Fetched  int64 // stored bytes of the segments read
	Manifest string
	Problems []string
	// Placed lists, as "source/path", every file, folder and link the restore wrote
	// (none for a dry run): what a seeded watcher may take as already in the store.
	Placed []string
}

// Run rebuilds the state at o.At into o.To.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if !o.DryRun {
		for _, root := range o.roots() {
			if err := checkTarget(root, o.Force); err != nil {
				return Result{}, err
			}
		}
	}
	cat, err := List(ctx, o.Store, o.Host)
	if err != nil {
		return Result{}, err
	}
	var res Result
	p, err := bucket.MakePlan(ctx, o.Store, cat, o.At, o.Latest, &res.Problems)
	if err != nil {
		return res, err
	}
	if len(p.Segments) == 0 && p.Base == nil {
		if len(res.Problems) > 0 { // damaged objects, not an empty store
			return res, fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(res.Problems, "; "))
		}
		return res, fmt.Errorf("%w: %s has no records of host %q at or before %s", ErrNothing, o.Store, o.Host, describe(o))
	}
	var stage string
	if !o.DryRun {
		// Stage inside the first target, so that finished files are renamed into place
		// through its root (other targets get a copy beside each destination).
		base := o.roots()[0]
		if err := os.MkdirAll(base, 0o755); err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		if stage, err = os.MkdirTemp(base, ".mmreplicate-restore-"); err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
		defer os.RemoveAll(stage)
	}
	b := newBuilder(ctx, o.Store, stage)
	b.noSync = o.NoSync
	if p.Base != nil {
		b.seed(p.Base)
		res.Manifest = p.BaseKey
	}
	res.Segments = len(p.Segments)
	bar := newProgress(o.Progress, "segments", int64(len(p.Segments)))
	err = replay(ctx, o, p, b, &res, bar)
	bar.done()
	if cerr := b.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	if err := finish(ctx, o, b, &res); err != nil {
		return res, err
	}
	verb := "restored"
	if o.DryRun {
		verb = "would restore"
	}
	from := "no manifest"
	if res.Manifest != "" {
		from = "manifest " + res.Manifest
	}
	fmt.Fprintf(o.Out, "%s %d files (%d bytes) from %s, %d segment objects (%d bytes) and %d blobs of host %s at %s\n",
		verb, res.Files, res.Bytes, from, res.Segments, res.Fetched, res.Blobs, o.Host, describe(o))
	if len(res.Problems) > 0 {
		return res, fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(res.Problems, "; "))
	}
	return res, nil
}

func describe(o Options) string {
	if o.Latest {
		return "latest"
	}
	return o.At.UTC().Format(time.RFC3339Nano)
}

// checkTarget refuses to mix a restore into files that are already there.
func checkTarget(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: target %s: %w", dir, err)
	}
	if len(entries) > 0 && !force {
		return fmt.Errorf("%w: %s holds %d entries; choose an empty folder or pass --force", ErrNotEmpty, dir, len(entries))
	}
	return nil
}

// fetched is one segment's records, or why they could not be had.
type fetched struct {
	recs []journal.Record
	err  error
	done chan struct{}
}

// replay fetches segments in parallel and applies them strictly in order.
func replay(ctx context.Context, o Options, p bucket.Plan, b *builder, res *Result, bar *progress) error {
	pick := p.Segments
	slots := make([]fetched, len(pick))
	for i := range slots {
		slots[i].done = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallel)
	go func() {
		for i := range pick {
			g.Go(func() error {
				defer close(slots[i].done)
				body, err := o.Store.Get(gctx, pick[i].Key)
				if err == nil {
					slots[i].recs, err = segment.Decode(body)
				}
				if err == nil {
					err = pick[i].Check(slots[i].recs)
				}
				slots[i].err = err
				return nil
			})
		}
	}()
	var baseSeq uint64
	if p.Base != nil {
		baseSeq = p.Base.Seq
	}
	seq := bucket.NewSequence(p.Start())
	for i, in := range pick {
		select {
		case <-slots[i].done:
		case <-ctx.Done():
			return ctx.Err()
		}
		bar.add(1)
		if s := slots[i]; s.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.Problems = append(res.Problems, fmt.Sprintf("segment %s: %v", in.Key, s.err))
			continue
		}
		if g := seq.Segment(in); g != nil {
			res.Problems = append(res.Problems, g.String())
		}
		res.Fetched += in.Size
		for j := range slots[i].recs {
			r := &slots[i].recs[j]
			if !o.Latest && r.Time > o.At.UnixNano() {
				break
			}
			if !seq.Take(r.Seq) {
				continue // also held by an overlapping segment, or before the start: apply once
			}
			if r.Seq <= baseSeq && !p.Base.Needs(r) {
				continue // the manifest already holds its effect
			}
			// A chunk record names no file: where it was packed matters to every filter.
			if r.Op != journal.OpChunk && !o.wants(r) {
				continue
			}
			if err := b.apply(r); err != nil {
				var bad *state.Error
				if !errors.As(err, &bad) {
					return err
				}
				res.Problems = append(res.Problems, fmt.Sprintf("segment %s: %v", in.Key, err))
			}
		}
		slots[i].recs = nil
	}
	return nil
}

func (o Options) wants(r *journal.Record) bool {
	return o.wantsPath(r.Source, r.Path)
}

func (o Options) wantsPath(source, path string) bool {
	if len(o.Sources) > 0 && !contains(o.Sources, source) {
		return false
	}
	if _, ok := o.Roots[source]; o.Roots != nil && !ok {
		return false
	}
	if len(o.Paths) == 0 {
		return true
	}
	for _, p := range o.Paths {
		if ok, _ := doublestar.Match(p, path); ok {
			return true
		}
		if ok, _ := doublestar.Match(p, source+"/"+path); ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// roots are the folders a restore writes into, sorted.
func (o Options) roots() []string {
	if o.Roots == nil {
		return []string{o.To}
	}
	var out []string
	for src, r := range o.Roots {
		if len(o.Sources) == 0 || contains(o.Sources, src) {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}
