package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/state"
)

// Catalog is what a store holds for one host, from listings alone.
type Catalog struct {
	Segments  []segment.Info  // sequence order
	Manifests []manifest.Info // sequence order
	Strangers []string        // keys under the host's prefix that are neither
}

// List reads the host's catalog.
func List(ctx context.Context, store objstore.Store, host string) (*Catalog, error) {
	c := &Catalog{}
	err := store.List(ctx, segment.HostPrefix(host), func(o objstore.ObjectInfo) error {
		switch {
		case strings.HasPrefix(o.Key, segment.Prefix(host)):
			in, err := segment.ParseKey(o.Key)
			if err != nil {
				c.Strangers = append(c.Strangers, o.Key)
				return nil
			}
			in.Size = o.Size
			c.Segments = append(c.Segments, in)
		case strings.HasPrefix(o.Key, manifest.Prefix(host)):
			in, err := manifest.ParseKey(o.Key)
			if err != nil {
				c.Strangers = append(c.Strangers, o.Key)
				return nil
			}
			c.Manifests = append(c.Manifests, in)
		default:
			c.Strangers = append(c.Strangers, o.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", store, err)
	}
	sort.Slice(c.Segments, func(a, b int) bool {
		if c.Segments[a].FirstSeq != c.Segments[b].FirstSeq {
			return c.Segments[a].FirstSeq < c.Segments[b].FirstSeq
		}
		return c.Segments[a].LastSeq < c.Segments[b].LastSeq
	})
	sort.Slice(c.Manifests, func(a, b int) bool { return c.Manifests[a].Seq < c.Manifests[b].Seq })
	return c, nil
}

// Segments lists the host's segments in sequence order, with the keys under the host's
// prefix that are not segments or manifests.
func Segments(ctx context.Context, store objstore.Store, host string) ([]segment.Info, []string, error) {
	c, err := List(ctx, store, host)
	if err != nil {
		return nil, nil, err
	}
	return c.Segments, c.Strangers, nil
}

// Window is the recoverable window: the oldest and newest instants a restore can give.
func (c *Catalog) Window() (oldest, newest time.Time, ok bool) {
	if len(c.Segments) == 0 {
		return time.Time{}, time.Time{}, false
	}
	oldest, newest = c.Segments[0].FirstTime, c.Segments[0].LastTime
	for _, s := range c.Segments {
		if s.LastTime.After(newest) {
			newest = s.LastTime
		}
	}
	return oldest, newest, true
}

// Plan is what a restore at T reads: a starting index and the segments after it.
type Plan struct {
	Base     *manifest.Index // nil: start from nothing
	BaseKey  string
	Segments []segment.Info
}

// Start is the first record a replay of the plan needs: everything from there on must
// be stored, or the state it gives is incomplete.
func (p *Plan) Start() uint64 {
	if p.Base == nil {
		return 1
	}
	return Low(p.Base)
}

// ErrNotRetained is returned (wrapped) for an instant whose state retention has thinned
// away: the records after the nearest compacted manifest are gone.
var ErrNotRetained = errors.New("not retained")

// FirstSeq is the first sequence number the stored segments hold (0: none stored).
func (c *Catalog) FirstSeq() uint64 {
	if len(c.Segments) == 0 {
		return 0
	}
	return c.Segments[0].FirstSeq
}

// Low is the first record a restore from x must replay.
func Low(x *manifest.Index) uint64 {
	l := x.Seq + 1
	if m := x.MinSince(); m > 0 && m < l {
		l = m
	}
	return l
}

// exactFrom reports whether x gives the exact state at the instant: every record it
// still needs is stored (retention deletes segments oldest first, so that is everything
// from low on), or x is compacted and no record came between it and the instant.
func exactFrom(x *manifest.Index, first uint64, at time.Time, latest bool) (exact, held bool) {
	if first == 0 || Low(x) >= first {
		return true, false
	}
	if x.Compacted && !latest && at.UnixNano() < x.Until {
		return true, true
	}
	return false, false
}

// MakePlan picks the newest readable manifest at or before T that gives the exact state
// there, and the segments still needed after it: those holding live append/db content
// or anything newer than it. A manifest that cannot be read, or holds an entry that is
// not a valid state (see state.CheckEntry), counts as damaged: an older one is used and
// the damage is named in problems.
func MakePlan(ctx context.Context, store objstore.Store, c *Catalog, at time.Time, latest bool, problems *[]string) (Plan, error) {
	var p Plan
	first := c.FirstSeq()
	var fallback *manifest.Index
	var fallbackKey string
	var seen []*manifest.Index // compacted manifests read, for a not-retained message
	held := false
	for i := len(c.Manifests) - 1; i >= 0 && p.Base == nil; i-- {
		mi := c.Manifests[i]
		if !latest && mi.Time.After(at) {
			continue
		}
		x, err := ReadManifest(ctx, store, mi.Key)
		if err != nil {
			if ctx.Err() != nil {
				return p, ctx.Err()
			}
			// A damaged manifest costs time, not data: fall back to an older one.
			*problems = append(*problems, fmt.Sprintf("manifest %s: %v (used an older starting point)", mi.Key, err))
			continue
		}
		if x.Compacted {
			seen = append(seen, x)
		}
		var ok bool
		if ok, held = exactFrom(x, first, at, latest); ok {
			p.Base, p.BaseKey = x, mi.Key
		} else if fallback == nil && !x.Compacted {
			fallback, fallbackKey = x, mi.Key
		}
	}
	if p.Base == nil && first > 1 {
		if fallback == nil && len(c.Manifests) > 0 {
			return p, notRetained(ctx, store, c, at, seen)
		}
		// No manifest at all, or one whose records are missing, retention aside (a
		// lost object): replaying what is left rebuilds what it can and the replay
		// names the records it lacks.
		// Records this manifest needs are missing, retention aside (a lost object):
		// replaying what is left rebuilds what it can and names what it cannot.
		p.Base, p.BaseKey = fallback, fallbackKey
	}
	if held {
		return p, nil // nothing stored after it predates the instant
	}
	lo := uint64(0)
	if p.Base != nil {
		lo = Low(p.Base)
	}
	for _, s := range c.Segments {
		if s.LastSeq < lo {
			continue
		}
		if !latest && s.FirstTime.After(at) {
			continue
		}
		p.Segments = append(p.Segments, s)
	}
	return p, nil
}

// notRetained names the retained instants nearest to at: the compacted state before it
// (and until when it holds) and the next compacted manifest after it.
func notRetained(ctx context.Context, store objstore.Store, c *Catalog, at time.Time, before []*manifest.Index) error {
	var near []string
	if len(before) > 0 {
		x := before[0]
		near = append(near, fmt.Sprintf("%s (held until %s)", fmtTime(x.Time), fmtTime(x.Until-1)))
	}
	for _, mi := range c.Manifests {
		if !mi.Time.After(at) {
			continue
		}
		x, err := ReadManifest(ctx, store, mi.Key)
		if err != nil {
			continue
		}
		if ok, _ := exactFrom(x, c.FirstSeq(), mi.Time, false); ok {
			near = append(near, fmtTime(x.Time))
			break
		}
	}
	if len(near) == 0 {
		return fmt.Errorf("%w: %s: the records before it are no longer stored", ErrNotRetained, at.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Errorf("%w: %s: nearest retained points are %s", ErrNotRetained, at.UTC().Format(time.RFC3339Nano), strings.Join(near, " and "))
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// ReadManifest reads and decodes a manifest and checks every entry it holds.
func ReadManifest(ctx context.Context, store objstore.Store, key string) (*manifest.Index, error) {
	body, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	x, err := manifest.Decode(body)
	if err != nil {
		return nil, err
	}
	for _, k := range x.Sorted() {
		if err := state.CheckEntry(k, x.Files[k]); err != nil {
			return nil, fmt.Errorf("%w: %v", manifest.ErrCorrupt, err)
		}
	}
	return x, nil
}

// Gap is a run of records a replay needed and did not find.
type Gap struct {
	From, To uint64 // inclusive
	Before   string // the key of the segment that follows them, or why they are missing
}

func (g Gap) String() string {
	return fmt.Sprintf("records %d-%d missing before %s", g.From, g.To, g.Before)
}

// Sequence follows the records a replay applies, in order, and names the gaps between
// them. Records it has already seen (overlapping segments) are reported as such.
type Sequence struct {
	next uint64
}

// NewSequence starts following at record start (see Plan.Start).
func NewSequence(start uint64) *Sequence { return &Sequence{next: max(start, 1)} }

// Segment is called before the records of segment in are applied: it returns the gap
// before it, if any.
func (q *Sequence) Segment(in segment.Info) *Gap {
	if in.FirstSeq > q.next {
		return &Gap{From: q.next, To: in.FirstSeq - 1, Before: in.Key}
	}
	return nil
}

// Take reports whether record seq is new (false: an earlier segment held it, or the
// replay starts after it) and, if so, notes it as applied.
func (q *Sequence) Take(seq uint64) bool {
	if seq < q.next {
		return false
	}
	q.next = seq + 1
	return true
}

// State is the state of a host at an instant, as the store gives it.
type State struct {
	Index    *manifest.Index
	Manifest string   // the manifest it started from ("" for none)
	Problems []string // damaged objects, gaps and malformed records, by name
	Gaps     []Gap    // records missing after the starting point
}

// Complete reports whether the state holds every record up to its sequence number.
func (s *State) Complete() bool { return len(s.Gaps) == 0 }

// Load returns the host's state at T (latest: everything stored), from the newest
// usable manifest plus the records after it. Damaged objects are skipped; they, the
// records missing from the manifest's sequence number on and malformed records are
// named in Problems, and missing runs (a damaged segment's included) also in Gaps.
func Load(ctx context.Context, store objstore.Store, host string, at time.Time, latest bool) (*State, error) {
	c, err := List(ctx, store, host)
	if err != nil {
		return nil, err
	}
	out := &State{}
	p, err := MakePlan(ctx, store, c, at, latest, &out.Problems)
	if err != nil {
		return out, err
	}
	x := p.Base
	if x == nil {
		x = manifest.New(host)
	} else {
		x = x.Clone()
	}
	out.Index, out.Manifest = x, p.BaseKey
	gap := func(g Gap) {
		out.Gaps = append(out.Gaps, g)
		out.Problems = append(out.Problems, g.String())
	}
	// The index needs every record after its starting point (restore, which also
	// rebuilds content, needs more: see Plan.Start).
	q := NewSequence(x.Seq + 1)
	var damaged *segment.Info // the newest segment that could not be read
	var damagedErr error      // and why
	var need []segment.Info
	for _, s := range p.Segments {
		if s.LastSeq > x.Seq {
			need = append(need, s)
		}
	}
	// Segments are fetched and decoded a few ahead of the one being applied (in order):
	// on a store with any latency the fetches, not the applying, take the time.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		recs []journal.Record
		err  error
		done chan struct{}
	}
	slots := make([]*fetched, len(need))
	fetch := func(i int) {
		f := &fetched{done: make(chan struct{})}
		slots[i] = f
		s := need[i]
		go func() {
			defer close(f.done)
			body, err := store.Get(fctx, s.Key)
			if err == nil {
				f.recs, err = segment.Decode(body)
			}
			if err == nil {
				err = s.Check(f.recs)
			}
			f.err = err
		}()
	}
	for i := range min(loadAhead, len(need)) {
		fetch(i)
	}
	for i, s := range need {
		if i+loadAhead < len(need) {
			fetch(i + loadAhead)
		}
		<-slots[i].done
		recs, err := slots[i].recs, slots[i].err
		slots[i] = nil
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			if objstore.Temporary(err) {
				// Not damage: the store did not answer. Taking it for a gap would stop
				// the sink's manifests for nothing.
				return out, fmt.Errorf("segment %s: %w", s.Key, err)
			}
			out.Problems = append(out.Problems, fmt.Sprintf("segment %s: %v", s.Key, err))
			damaged, damagedErr = &s, err
			continue
		}
		if g := q.Segment(s); g != nil {
			gap(*g)
		}
		for i := range recs {
			r := &recs[i]
			if !latest && r.Time > at.UnixNano() {
				break
			}
			if !q.Take(r.Seq) {
				continue
			}
			if err := x.Apply(r); err != nil { // notes packed chunks' locations too
				out.Problems = append(out.Problems, fmt.Sprintf("segment %s: %v", s.Key, err))
			}
		}
	}
	// A damaged segment is named as a gap by the next readable one; the newest needs
	// saying here.
	if damaged != nil && damaged.LastSeq >= q.next && (latest || !damaged.FirstTime.After(at)) {
		gap(Gap{From: q.next, To: damaged.LastSeq, Before: fmt.Sprintf("the end (%s unreadable: %v)", damaged.Key, damagedErr)})
	}
	return out, nil
}

// loadAhead is how many segments Load fetches ahead of the one it applies.
const loadAhead = 8

// LoadIndex returns the index of the host's state at T (latest: everything stored), from
// the newest manifest plus the records after it. Damaged objects, missing records and
// malformed records are skipped and named in the returned problems (see Load).
func LoadIndex(ctx context.Context, store objstore.Store, host string, at time.Time, latest bool) (*manifest.Index, []string, error) {
	s, err := Load(ctx, store, host, at, latest)
	if err != nil {
		if s != nil {
			return nil, s.Problems, err
		}
		return nil, nil, err
	}
	return s.Index, s.Problems, nil
}

// Hosts lists the hosts that have objects in the store.
func Hosts(ctx context.Context, store objstore.Store) ([]string, error) {
	seen := map[string]bool{}
	err := store.List(ctx, "hosts/", func(o objstore.ObjectInfo) error {
		rest := strings.TrimPrefix(o.Key, "hosts/")
		if h, _, ok := strings.Cut(rest, "/"); ok {
			seen[h] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", store, err)
	}
	out := make([]string, 0, len(seen))
	for h := range seen {
		out = append(out, h)
	}
	sort.Strings(out)
	return out, nil
}

// ReadChunk fetches the bytes of one chunk and checks them against its hash: with a
// ranged read from the segment object that packs it when packs (a manifest's Packs, kept
// up to date with the records replayed since) locates it, else (or when that object is
// gone or does not hold it: compaction copies the chunks that outlive their segment into
// blobs) from its blob. Every reader of chunk content goes through here.
func ReadChunk(ctx context.Context, st objstore.Store, packs map[string]manifest.Pack, c journal.ChunkRef) ([]byte, error) {
	id := c.ID()
	var packErr error
	if p, ok := packs[id]; ok {
		if _, err := segment.ParseKey(p.Key); err != nil {
			packErr = fmt.Errorf("chunk %s: located in %q, which is not a segment", id, p.Key)
		} else {
			data, err := st.GetRange(ctx, p.Key, p.Off, int64(c.Size))
			switch {
			case err == nil && sha256.Sum256(data) == c.Hash:
				return data, nil
			case err == nil:
				packErr = fmt.Errorf("chunk %s in %s at %d: content does not match its hash", id, p.Key, p.Off)
			case ctx.Err() != nil || objstore.Temporary(err):
				return nil, fmt.Errorf("chunk %s in %s: %w", id, p.Key, err)
			default:
				packErr = fmt.Errorf("chunk %s in %s: %w", id, p.Key, err)
			}
		}
	}
	key := manifest.BlobKey(id)
	data, err := st.Get(ctx, key)
	if err != nil {
		if packErr != nil && errors.Is(err, objstore.ErrNotFound) {
			return nil, packErr
		}
		return nil, fmt.Errorf("blob %s: %w", key, err)
	}
	if sha256.Sum256(data) != c.Hash || len(data) != int(c.Size) {
		return nil, fmt.Errorf("blob %s: content does not match its hash", key)
	}
	return data, nil
}

// BlobKey is where the chunk id is stored, or an error when id is not a chunk id.
func BlobKey(id string) (string, error) {
	if err := state.CheckChunkID(id); err != nil {
		return "", err
	}
	return manifest.BlobKey(id), nil
}
