// Package restore reads the store: which segments exist, the state of every file at a
// time T, and writing that state into a folder.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
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
	Store    objstore.Store
	Host     string
	At       time.Time // inclusive; ignored when Latest
	Latest   bool
	To       string
	Sources  []string // only these sources (all when empty)
	Paths    []string // only paths matching one of these globs (relative path or source/path)
	DryRun   bool
	Force    bool // allow a non-empty target
	Parallel int
	Out      io.Writer // the plan and the summary
	Log      *slog.Logger
}

// Result sums up a restore.
type Result struct {
	Files    int
	Bytes    int64
	Segments int
	Fetched  int64 // stored bytes of the segments read
	Problems []string
}

// Segments lists the host's segments in sequence order, with the keys that are not
// segment keys reported separately.
func Segments(ctx context.Context, store objstore.Store, host string) ([]segment.Info, []string, error) {
	var infos []segment.Info
	var strangers []string
	err := store.List(ctx, segment.Prefix(host), func(o objstore.ObjectInfo) error {
		in, err := segment.ParseKey(o.Key)
		if err != nil {
			strangers = append(strangers, o.Key)
			return nil
		}
		in.Size = o.Size
		infos = append(infos, in)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", store, err)
	}
	sort.Slice(infos, func(a, b int) bool {
		if infos[a].FirstSeq != infos[b].FirstSeq {
			return infos[a].FirstSeq < infos[b].FirstSeq
		}
		return infos[a].LastSeq < infos[b].LastSeq
	})
	return infos, strangers, nil
}

// Run rebuilds the state at opts.At into opts.To.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if !o.DryRun {
		if err := checkTarget(o.To, o.Force); err != nil {
			return Result{}, err
		}
	}
	infos, _, err := Segments(ctx, o.Store, o.Host)
	if err != nil {
		return Result{}, err
	}
	var pick []segment.Info
	for _, in := range infos {
		if o.Latest || !in.FirstTime.After(o.At) {
			pick = append(pick, in)
		}
	}
	if len(pick) == 0 {
		return Result{}, fmt.Errorf("%w: %s has no records of host %q at or before %s", ErrNothing, o.Store, o.Host, describe(o))
	}
	var stage string
	if !o.DryRun {
		if err := os.MkdirAll(o.To, 0o755); err != nil {
			return Result{}, fmt.Errorf("restore: %w", err)
		}
		stage, err = os.MkdirTemp(o.To, ".mmreplicate-restore-")
		if err != nil {
			return Result{}, fmt.Errorf("restore: %w", err)
		}
		defer os.RemoveAll(stage)
	}
	b := newBuilder(stage)
	res := Result{Segments: len(pick)}
	if err := replay(ctx, o, pick, b, &res); err != nil {
		b.closeAll()
		return res, err
	}
	if err := b.closeAll(); err != nil {
		return res, err
	}
	if err := finish(o, b, &res); err != nil {
		return res, err
	}
	verb := "restored"
	if o.DryRun {
		verb = "would restore"
	}
	fmt.Fprintf(o.Out, "%s %d files (%d bytes) from %d segment objects (%d bytes) of host %s at %s\n",
		verb, res.Files, res.Bytes, res.Segments, res.Fetched, o.Host, describe(o))
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
func replay(ctx context.Context, o Options, pick []segment.Info, b *builder, res *Result) error {
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
			i := i
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
	var applied uint64
	for i, in := range pick {
		select {
		case <-slots[i].done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if s := slots[i]; s.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.Problems = append(res.Problems, fmt.Sprintf("segment %s: %v", in.Key, s.err))
			continue
		}
		if applied > 0 && in.FirstSeq > applied+1 {
			res.Problems = append(res.Problems, fmt.Sprintf("records %d-%d missing before %s", applied+1, in.FirstSeq-1, in.Key))
		}
		res.Fetched += in.Size
		for j := range slots[i].recs {
			r := &slots[i].recs[j]
			if r.Seq <= applied {
				continue // also held by an overlapping segment: apply once
			}
			if !o.Latest && r.Time > o.At.UnixNano() {
				break
			}
			applied = r.Seq
			if !o.wants(r) {
				continue
			}
			if err := b.apply(r); err != nil {
				return err
			}
		}
		slots[i].recs = nil
	}
	return nil
}

func (o Options) wants(r *journal.Record) bool {
	if len(o.Sources) > 0 && !contains(o.Sources, r.Source) {
		return false
	}
	if len(o.Paths) == 0 {
		return true
	}
	for _, p := range o.Paths {
		if ok, _ := doublestar.Match(p, r.Path); ok {
			return true
		}
		if ok, _ := doublestar.Match(p, r.Source+"/"+r.Path); ok {
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

// finish moves staged files to their places and fills in the result.
func finish(o Options, b *builder, res *Result) error {
	keys := make([]string, 0, len(b.files))
	for k := range b.files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		st := b.files[k]
		if st.incomplete != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("%s/%s: %s", st.source, st.path, st.incomplete))
		}
		if st.deleted {
			continue
		}
		res.Files++
		res.Bytes += st.size
		if o.DryRun {
			fmt.Fprintf(o.Out, "%s/%s\t%d bytes\n", st.source, st.path, st.size)
			continue
		}
		if err := place(o.To, st); err != nil {
			return err
		}
	}
	return nil
}

func place(root string, st *fileState) error {
	dst := filepath.Join(root, st.source, filepath.FromSlash(st.path))
	if rel, err := filepath.Rel(root, dst); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("restore: refusing path %q outside the target", st.source+"/"+st.path)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if st.tmp == "" { // an empty file never got a staging file
		f, err := os.Create(dst)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		f.Close()
	} else if err := os.Rename(st.tmp, dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	mode := os.FileMode(st.mode & 0o7777)
	if mode == 0 {
		mode = 0o644
	}
	if err := os.Chmod(dst, mode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}
