package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mmreplicate/mmreplicate/chunk"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	bucket "github.com/mmreplicate/mmreplicate/store"
)

// DefaultBlobGrace is how old an unreferenced blob must be before the sweep deletes it:
// chunks are uploaded before the segment that refers to them, so a young unreferenced
// blob may belong to a batch still on its way.
const DefaultBlobGrace = 24 * time.Hour

// Policy says what retention keeps: every instant of the last KeepAll, then one point
// per UTC hour for Hourly, then one per UTC day for Daily. KeepAll 0 is retention off.
type Policy struct {
	KeepAll   time.Duration
	Hourly    time.Duration
	Daily     time.Duration
	BlobGrace time.Duration // 0: DefaultBlobGrace
	DryRun    bool          // build and count, write and delete nothing
}

// Usage is what a store holds.
type Usage struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// CompactReport sums up one compaction.
type CompactReport struct {
	Host             string    `json:"host"`
	DryRun           bool      `json:"dry_run,omitempty"`
	Cutoff           time.Time `json:"cutoff"` // every instant from here on is kept
	Points           int       `json:"points"` // retained marks before the cutoff
	ManifestsWritten int       `json:"manifests_written"`
	BlobsUploaded    int       `json:"blobs_uploaded"`
	SegmentsDeleted  int       `json:"segments_deleted"`
	ManifestsDeleted int       `json:"manifests_deleted"`
	BlobsDeleted     int       `json:"blobs_deleted"`
	BytesFreed       int64     `json:"bytes_freed"`
	Before           Usage     `json:"before"`
	After            Usage     `json:"after"`
	Skipped          []string  `json:"skipped,omitempty"` // points whose state was already gone
}

func (r CompactReport) String() string {
	verb := ""
	if r.DryRun {
		verb = " (dry run)"
	}
	return fmt.Sprintf("host %s%s: cutoff %s, %d points kept before it; %d compacted manifests written, %d blobs uploaded; deleted %d segments, %d manifests, %d blobs (%d bytes); store %d objects/%d bytes -> %d objects/%d bytes",
		r.Host, verb, r.Cutoff.Format(time.RFC3339), r.Points, r.ManifestsWritten, r.BlobsUploaded,
		r.SegmentsDeleted, r.ManifestsDeleted, r.BlobsDeleted, r.BytesFreed,
		r.Before.Objects, r.Before.Bytes, r.After.Objects, r.After.Bytes)
}

// Points returns the cutoff (every instant from it on is kept) and the retained marks
// before it, oldest first. The cutoff is rounded down to the hour so that it, and the
// compacted manifest written for it, move once an hour rather than at every run.
func Points(p Policy, now time.Time) (time.Time, []time.Time) {
	cutoff := now.Add(-p.KeepAll).Truncate(time.Hour).UTC()
	var marks []time.Time
	h0 := cutoff.Add(-p.Hourly)
	for t := cutoff.Add(-time.Hour); !t.Before(h0); t = t.Add(-time.Hour) {
		marks = append(marks, t)
	}
	d0 := h0.Add(-p.Daily)
	d := h0.Truncate(24 * time.Hour)
	if !d.Before(h0) {
		d = d.Add(-24 * time.Hour)
	}
	for ; p.Daily > 0 && !d.Before(d0); d = d.Add(-24 * time.Hour) {
		marks = append(marks, d)
	}
	sort.Slice(marks, func(a, b int) bool { return marks[a].Before(marks[b]) })
	return cutoff, marks
}

// stored is a manifest up to the cutoff and what it says.
type stored struct {
	info manifest.Info
	x    *manifest.Index // nil: unreadable
}

// covers reports whether a compacted manifest holds the exact state at t.
func (s stored) covers(t time.Time) bool {
	return s.x != nil && s.x.Compacted && s.x.Time <= t.UnixNano() && t.UnixNano() < s.x.Until
}

// Compact thins a host's history to the policy: it writes a self-contained (compacted)
// manifest at every retained point that lacks one, then deletes the segments older than
// the cutoff and the manifests at no retained point, then the blobs nothing refers to.
// Restores at retained points and at every instant from the cutoff on give the same
// state as before. Nothing is deleted unless every compacted manifest it depends on was
// written and read back.
func Compact(ctx context.Context, store objstore.Store, host string, pol Policy, now time.Time, log *slog.Logger) (CompactReport, error) {
	rep := CompactReport{Host: host, DryRun: pol.DryRun}
	if pol.KeepAll <= 0 {
		return rep, errors.New("compact: retention is off (retention.keep_all is 0)")
	}
	if pol.BlobGrace <= 0 {
		pol.BlobGrace = DefaultBlobGrace
	}
	if log == nil {
		log = slog.Default()
	}
	objects, err := listAll(ctx, store)
	if err != nil {
		return rep, err
	}
	rep.Before = total(objects)
	cutoff, marks := Points(pol, now)
	rep.Cutoff, rep.Points = cutoff, len(marks)
	cat, err := List(ctx, store, host)
	if err != nil {
		return rep, err
	}
	if len(cat.Segments) == 0 {
		rep.After = rep.Before
		return rep, nil
	}
	var old []stored
	for _, mi := range cat.Manifests {
		if mi.Time.After(cutoff) {
			continue
		}
		body, err := store.Get(ctx, mi.Key)
		if err != nil {
			return rep, fmt.Errorf("compact: %s: %w", mi.Key, err)
		}
		x, err := manifest.Decode(body)
		if err != nil {
			log.Warn("compact: unreadable manifest will be replaced", "key", mi.Key, "err", err)
		}
		old = append(old, stored{info: mi, x: x})
	}
	tmp, err := os.MkdirTemp("", "mmreplicate-compact-")
	if err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	defer os.RemoveAll(tmp)
	cp := &compactor{store: store, cat: cat, host: host, tmp: tmp, dry: pol.DryRun, known: map[string]bool{}}
	var written []*manifest.Index
	points := append(marks, cutoff)
	cutoffKept := false
	for _, p := range points {
		if i := coveredBy(old, p); i >= 0 {
			cutoffKept = p.Equal(cutoff)
			continue
		}
		x, err := cp.stateAt(ctx, p)
		if errors.Is(err, ErrNothing) {
			continue // before the host's first record
		}
		if errors.Is(err, ErrNotRetained) {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", p.Format(time.RFC3339), err))
			continue
		}
		if err != nil {
			return rep, err
		}
		key := manifest.ObjectKey(x)
		if !pol.DryRun {
			if err := putChecked(ctx, store, key, x); err != nil {
				return rep, err
			}
		}
		written = append(written, x)
		rep.ManifestsWritten++
		info, _ := manifest.ParseKey(key)
		old = replaceStored(old, stored{info: info, x: x})
		cutoffKept = p.Equal(cutoff)
		log.Info("compact: wrote compacted manifest", "host", host, "point", p, "key", key)
	}
	rep.BlobsUploaded = cp.uploaded
	if !cutoffKept {
		// Without the state at the cutoff, instants after it still need the old segments.
		rep.After = rep.Before
		return rep, nil
	}
	keep := map[string]bool{}
	for _, p := range points {
		if i := coveredBy(old, p); i >= 0 {
			keep[old[i].info.Key] = true
		}
	}
	gone := map[string]bool{}
	newest := cat.Segments[len(cat.Segments)-1].Key
	for _, s := range cat.Segments {
		// The newest segment stays whatever its age: a rebuilt host continues its
		// sequence from it.
		if s.LastTime.Before(cutoff) && s.Key != newest {
			gone[s.Key] = true
			rep.SegmentsDeleted++
		}
	}
	for _, s := range old {
		if s.info.Time.Before(cutoff) && !keep[s.info.Key] {
			gone[s.info.Key] = true
			rep.ManifestsDeleted++
		}
	}
	if err := cp.rescue(ctx, gone, cutoff.Add(pol.BlobGrace)); err != nil {
		return rep, err
	}
	rep.BlobsUploaded = cp.uploaded
	if err := deleteKeys(ctx, store, gone, objects, pol.DryRun, &rep.BytesFreed); err != nil {
		return rep, err
	}
	if len(gone) > 0 || len(written) > 0 {
		n, err := sweepBlobs(ctx, store, objects, gone, written, now.Add(-pol.BlobGrace), pol.DryRun, &rep.BytesFreed, log)
		rep.BlobsDeleted = n
		if err != nil {
			return rep, err
		}
	}
	if pol.DryRun {
		rep.After = Usage{Objects: rep.Before.Objects - len(gone) - rep.BlobsDeleted, Bytes: rep.Before.Bytes - rep.BytesFreed}
		return rep, nil
	}
	after, err := listAll(ctx, store)
	if err != nil {
		return rep, err
	}
	rep.After = total(after)
	return rep, nil
}

func coveredBy(list []stored, t time.Time) int {
	for i, s := range list {
		if s.covers(t) {
			return i
		}
	}
	return -1
}

// replaceStored adds s, replacing a manifest of the same key (a compacted manifest takes
// the key of a plain one at the same record: it holds the same state).
func replaceStored(list []stored, s stored) []stored {
	for i := range list {
		if list[i].info.Key == s.info.Key {
			list[i] = s
			return list
		}
	}
	return append(list, s)
}

// putChecked stores a compacted manifest and reads it back, so that nothing is deleted
// on the strength of a manifest the store did not keep.
func putChecked(ctx context.Context, store objstore.Store, key string, x *manifest.Index) error {
	body, err := manifest.Encode(x)
	if err != nil {
		return err
	}
	if err := store.Put(ctx, key, body); err != nil {
		return fmt.Errorf("compact: put %s: %w", key, err)
	}
	back, err := store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("compact: read back %s: %w", key, err)
	}
	y, err := manifest.Decode(back)
	if err != nil || !y.Compacted || y.Seq != x.Seq || y.Until != x.Until || len(y.Files) != len(x.Files) {
		return fmt.Errorf("compact: %s does not read back as written (%v)", key, err)
	}
	return nil
}

func deleteKeys(ctx context.Context, store objstore.Store, gone map[string]bool, objects map[string]objstore.ObjectInfo, dry bool, freed *int64) error {
	keys := make([]string, 0, len(gone))
	for k := range gone {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !dry {
			if err := store.Delete(ctx, k); err != nil {
				return fmt.Errorf("compact: delete %s: %w", k, err)
			}
		}
		*freed += objects[k].Size
	}
	return nil
}

func listAll(ctx context.Context, store objstore.Store) (map[string]objstore.ObjectInfo, error) {
	out := map[string]objstore.ObjectInfo{}
	err := store.List(ctx, "", func(o objstore.ObjectInfo) error { out[o.Key] = o; return nil })
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", store, err)
	}
	return out, nil
}

func total(objects map[string]objstore.ObjectInfo) Usage {
	var u Usage
	for _, o := range objects {
		u.Objects++
		u.Bytes += o.Size
	}
	return u
}

// compactor builds the states at successive points in one pass over the segments.
type compactor struct {
	store    objstore.Store
	cat      *Catalog
	host     string
	tmp      string
	dry      bool
	known    map[string]bool // blobs known to be stored
	uploaded int
	cur      *cursor
}

// cursor is a state being carried forward record by record.
type cursor struct {
	b       *builder
	x       *manifest.Index
	base    *manifest.Index
	segs    []segment.Info
	next    int
	recs    []journal.Record
	pos     int
	applied uint64
	dirty   map[string]bool               // paths changed since the last snapshot
	prev    map[string][]journal.ChunkRef // their chunks at the last snapshot
}

var errGap = errors.New("records missing")

// stateAt returns the compacted index of the state at t, continuing the current cursor
// when it can, else starting from the best manifest before t.
func (c *compactor) stateAt(ctx context.Context, t time.Time) (*manifest.Index, error) {
	if c.cur != nil {
		if err := c.advance(ctx, t); err != nil && !errors.Is(err, errGap) {
			return nil, err
		} else if err != nil {
			c.cur = nil
		}
	}
	if c.cur == nil {
		if err := c.open(ctx, t); err != nil {
			return nil, err
		}
		if err := c.advance(ctx, t); err != nil {
			c.cur = nil
			if errors.Is(err, errGap) {
				return nil, fmt.Errorf("compact: state at %s: %w", t.Format(time.RFC3339), err)
			}
			return nil, err
		}
	}
	return c.snapshot(ctx, t)
}

func (c *compactor) open(ctx context.Context, t time.Time) error {
	var problems []string
	p, err := bucket.MakePlan(ctx, c.store, c.cat, t, false, &problems)
	if err != nil {
		return err
	}
	if p.Base == nil && len(p.Segments) == 0 {
		return ErrNothing
	}
	if len(problems) > 0 {
		return fmt.Errorf("compact: state at %s: %v", t.Format(time.RFC3339), problems)
	}
	stage, err := os.MkdirTemp(c.tmp, "state-")
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	cur := &cursor{b: newBuilder(ctx, c.store, stage), x: manifest.New(c.host), base: p.Base,
		dirty: map[string]bool{}, prev: map[string][]journal.ChunkRef{}}
	lo := uint64(1)
	if p.Base != nil {
		cur.b.seed(p.Base)
		cur.x = p.Base.Clone()
		lo = bucket.Low(p.Base)
	}
	cur.applied = lo - 1
	for _, s := range c.cat.Segments {
		if s.LastSeq >= lo {
			cur.segs = append(cur.segs, s)
		}
	}
	c.cur = cur
	return nil
}

// advance applies every record captured at or before t.
func (c *compactor) advance(ctx context.Context, t time.Time) error {
	cur := c.cur
	for {
		if cur.pos >= len(cur.recs) {
			if cur.next >= len(cur.segs) || cur.segs[cur.next].FirstTime.After(t) {
				return nil
			}
			s := cur.segs[cur.next]
			body, err := c.store.Get(ctx, s.Key)
			var recs []journal.Record
			if err == nil {
				recs, err = segment.Decode(body)
			}
			if err == nil {
				err = s.Check(recs)
			}
			if err != nil {
				return fmt.Errorf("compact: segment %s: %w", s.Key, err)
			}
			cur.recs, cur.pos = recs, 0
			cur.next++
			continue
		}
		r := &cur.recs[cur.pos]
		if r.Seq <= cur.applied {
			cur.pos++
			continue
		}
		if r.Time > t.UnixNano() {
			return nil
		}
		if r.Seq != cur.applied+1 {
			return fmt.Errorf("%w: %d-%d", errGap, cur.applied+1, r.Seq-1)
		}
		cur.applied = r.Seq
		cur.pos++
		if cur.base != nil && r.Seq <= cur.base.Seq && !cur.base.Needs(r) {
			continue
		}
		// A malformed record stops compaction: the segments holding it stay, named.
		if err := cur.x.Apply(r); err != nil {
			return fmt.Errorf("compact: host %s: %w", c.host, err)
		}
		if err := cur.b.apply(r); err != nil {
			return err
		}
		if r.Op != journal.OpChunk {
			cur.dirty[manifest.Key(r.Source, r.Path)] = true
		}
	}
}

// until is when the state just built stops holding: the capture time of the next record
// (the first segment not yet read starts no earlier), or just after t when none is stored.
func (cur *cursor) until(t time.Time) int64 {
	for i := cur.pos; i < len(cur.recs); i++ {
		if cur.recs[i].Seq > cur.applied {
			return cur.recs[i].Time
		}
	}
	if cur.next < len(cur.segs) {
		return cur.segs[cur.next].FirstTime.UnixNano()
	}
	return t.UnixNano() + 1
}

// snapshot turns the cursor's state into a compacted index: append and db content is cut
// into blobs (reusing the chunks of content unchanged since the last snapshot).
func (c *compactor) snapshot(ctx context.Context, t time.Time) (*manifest.Index, error) {
	cur := c.cur
	if cur.x.Seq == 0 {
		return nil, ErrNothing
	}
	out := &manifest.Index{Host: c.host, Seq: cur.x.Seq, Time: cur.x.Time, Compacted: true,
		Until: cur.until(t), Files: make(map[string]*manifest.Entry, len(cur.x.Files))}
	prev := map[string][]journal.ChunkRef{}
	for _, k := range cur.x.Sorted() {
		e := *cur.x.Files[k]
		if e.Kind == manifest.KindAppend || e.Kind == manifest.KindDB {
			st := cur.b.files[k]
			if st == nil || st.deleted || st.kind != e.Kind || st.incomplete != "" {
				why := "not rebuilt"
				if st != nil && st.incomplete != "" {
					why = st.incomplete
				}
				return nil, fmt.Errorf("compact: state at %s: %s: %s", t.Format(time.RFC3339), k, why)
			}
			chunks, ok := cur.prev[k]
			switch {
			case st.pending():
				chunks = st.chunks
			case ok && !cur.dirty[k]:
			default:
				var err error
				if chunks, err = c.chunkFile(ctx, st.tmp); err != nil {
					return nil, err
				}
			}
			var size int64
			for _, ch := range chunks {
				size += int64(ch.Size)
			}
			if e.Kind == manifest.KindAppend && size != st.size {
				return nil, fmt.Errorf("compact: %s: staged %d bytes, want %d", k, size, st.size)
			}
			e.Chunks, e.Since, e.Size = chunks, 0, st.size
			prev[k] = chunks
		}
		if e.Kind == manifest.KindFile {
			// Its chunks may sit in segments retention deletes: keep them as blobs.
			for _, ref := range e.Chunks {
				if err := c.keepChunk(ctx, ref, cur.b.locs.Packs); err != nil {
					return nil, err
				}
			}
		}
		out.Files[k] = &e
	}
	cur.prev, cur.dirty = prev, map[string]bool{}
	return out, nil
}

// chunkFile cuts a staged file as the watcher cuts whole files and stores the chunks
// the store lacks.
func (c *compactor) chunkFile(ctx context.Context, path string) ([]journal.ChunkRef, error) {
	if path == "" {
		return nil, nil // empty content never got a staging file
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	defer f.Close()
	ch := chunk.New(f)
	buf := make([]byte, chunk.Max)
	var refs []journal.ChunkRef
	for {
		piece, err := ch.Next(buf)
		if errors.Is(err, io.EOF) {
			return refs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("compact: chunk %s: %w", filepath.Base(path), err)
		}
		ref := journal.ChunkRef{Hash: sha256Sum(piece.Data), Size: uint32(piece.Length)}
		refs = append(refs, ref)
		if err := c.putBlob(ctx, ref.ID(), piece.Data); err != nil {
			return nil, err
		}
	}
}

func (c *compactor) putBlob(ctx context.Context, id string, data []byte) error {
	if c.known[id] {
		return nil
	}
	key := manifest.BlobKey(id)
	_, err := c.store.Stat(ctx, key)
	switch {
	case err == nil:
	case !errors.Is(err, objstore.ErrNotFound):
		return fmt.Errorf("compact: stat %s: %w", key, err)
	case !c.dry:
		if err := c.store.Put(ctx, key, data); err != nil {
			return fmt.Errorf("compact: put %s: %w", key, err)
		}
		fallthrough
	default:
		c.uploaded++
	}
	c.known[id] = true
	return nil
}

// keepChunk makes sure a chunk is stored as a blob, copying it out of the segment that
// packs it when it is not (a compacted manifest refers to blobs only, so that it outlives
// the segments it was built from).
func (c *compactor) keepChunk(ctx context.Context, ref journal.ChunkRef, packs map[string]manifest.Pack) error {
	id := ref.ID()
	if c.known[id] {
		return nil
	}
	key := manifest.BlobKey(id)
	_, err := c.store.Stat(ctx, key)
	switch {
	case err == nil:
		c.known[id] = true
		return nil
	case !errors.Is(err, objstore.ErrNotFound):
		return fmt.Errorf("compact: stat %s: %w", key, err)
	}
	data, err := bucket.ReadChunk(ctx, c.store, packs, ref)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return c.putBlob(ctx, id, data)
}

// rescue copies into blobs the chunks that segments about to be deleted pack and that a
// segment kept refers to by id (the sink refers to a chunk it packed recently rather than
// packing it again, for a few hours at most: only kept segments begun before until are
// read).
func (c *compactor) rescue(ctx context.Context, gone map[string]bool, until time.Time) error {
	if c.cur == nil {
		return nil
	}
	packs := c.cur.b.locs.Packs
	for _, s := range c.cat.Segments {
		if gone[s.Key] || !s.FirstTime.Before(until) {
			continue
		}
		body, err := c.store.Get(ctx, s.Key)
		var recs []journal.Record
		if err == nil {
			recs, err = segment.Decode(body)
		}
		if err != nil {
			return fmt.Errorf("compact: segment %s: %w", s.Key, err)
		}
		for _, r := range recs {
			if r.Op != journal.OpFile {
				continue
			}
			list, _ := journal.DecodeChunks(r.Data)
			for _, ref := range list {
				if p, ok := packs[ref.ID()]; ok && gone[p.Key] {
					if err := c.keepChunk(ctx, ref, packs); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// sweepBlobs deletes the blobs that no remaining manifest or segment of any host refers
// to and that were written before the grace cutoff. Any object it cannot read stops the
// sweep: its references are unknown. A listed blob the store cannot find under its own
// name (an encrypted store keeps blobs under mapped names) is left alone.
func sweepBlobs(ctx context.Context, store objstore.Store, objects map[string]objstore.ObjectInfo, gone map[string]bool,
	extra []*manifest.Index, grace time.Time, dry bool, freed *int64, log *slog.Logger) (int, error) {
	refs := map[string]bool{}
	for _, x := range extra {
		for _, e := range x.Files {
			for _, c := range e.Chunks {
				refs[c.ID()] = true
			}
		}
	}
	hosts, err := Hosts(ctx, store)
	if err != nil {
		return 0, err
	}
	for _, h := range hosts {
		cat, err := List(ctx, store, h)
		if err != nil {
			return 0, err
		}
		for _, mi := range cat.Manifests {
			if gone[mi.Key] {
				continue
			}
			body, err := store.Get(ctx, mi.Key)
			var x *manifest.Index
			if err == nil {
				x, err = manifest.Decode(body)
			}
			if err != nil {
				return 0, fmt.Errorf("compact: blob sweep stopped: %s: %w", mi.Key, err)
			}
			for _, e := range x.Files {
				for _, c := range e.Chunks {
					refs[c.ID()] = true
				}
			}
		}
		for _, s := range cat.Segments {
			if gone[s.Key] {
				continue
			}
			body, err := store.Get(ctx, s.Key)
			var recs []journal.Record
			if err == nil {
				recs, err = segment.Decode(body)
			}
			if err != nil {
				return 0, fmt.Errorf("compact: blob sweep stopped: %s: %w", s.Key, err)
			}
			for _, r := range recs {
				switch r.Op {
				case journal.OpChunk:
					refs[r.Path] = true
				case journal.OpFile:
					list, _ := journal.DecodeChunks(r.Data)
					for _, c := range list {
						refs[c.ID()] = true
					}
				}
			}
		}
	}
	var n, unresolved int
	keys := make([]string, 0)
	for k := range objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := objects[k]
		id := filepath.Base(k)
		if k != "blobs/"+id[:min(2, len(id))]+"/"+id || len(id) != 64 || refs[id] || !o.ModTime.Before(grace) {
			continue
		}
		if _, err := store.Stat(ctx, k); errors.Is(err, objstore.ErrNotFound) {
			unresolved++
			continue
		} else if err != nil {
			return n, fmt.Errorf("compact: stat %s: %w", k, err)
		}
		if !dry {
			if err := store.Delete(ctx, k); err != nil {
				return n, fmt.Errorf("compact: delete %s: %w", k, err)
			}
		}
		n++
		*freed += o.Size
	}
	if unresolved > 0 {
		log.Info("compact: blobs stored under mapped names were not swept", "count", unresolved)
	}
	return n, nil
}
