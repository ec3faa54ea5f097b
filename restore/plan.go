package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
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

// plan is what a restore at T reads: a starting index and the segments after it.
type plan struct {
	base     *manifest.Index // nil: start from nothing
	baseKey  string
	segments []segment.Info
}

// ErrNotRetained is returned (wrapped) for an instant whose state retention has thinned
// away: the records after the nearest compacted manifest are gone.
var ErrNotRetained = errors.New("not retained")

// firstSeq is the first sequence number the stored segments hold (0: none stored).
func (c *Catalog) firstSeq() uint64 {
	if len(c.Segments) == 0 {
		return 0
	}
	return c.Segments[0].FirstSeq
}

// low is the first record a restore from x must replay.
func low(x *manifest.Index) uint64 {
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
	if first == 0 || low(x) >= first {
		return true, false
	}
	if x.Compacted && !latest && at.UnixNano() < x.Until {
		return true, true
	}
	return false, false
}

// makePlan picks the newest readable manifest at or before T that gives the exact state
// there, and the segments still needed after it: those holding live append/db content
// or anything newer than it.
func makePlan(ctx context.Context, store objstore.Store, c *Catalog, at time.Time, latest bool, problems *[]string) (plan, error) {
	var p plan
	first := c.firstSeq()
	var fallback *manifest.Index
	var fallbackKey string
	var seen []*manifest.Index // compacted manifests read, for a not-retained message
	held := false
	for i := len(c.Manifests) - 1; i >= 0 && p.base == nil; i-- {
		mi := c.Manifests[i]
		if !latest && mi.Time.After(at) {
			continue
		}
		body, err := store.Get(ctx, mi.Key)
		var x *manifest.Index
		if err == nil {
			x, err = manifest.Decode(body)
		}
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
			p.base, p.baseKey = x, mi.Key
		} else if fallback == nil && !x.Compacted {
			fallback, fallbackKey = x, mi.Key
		}
	}
	if p.base == nil && first > 1 {
		if fallback == nil {
			return p, notRetained(ctx, store, c, at, seen)
		}
		// Records this manifest needs are missing, retention aside (a lost object):
		// replaying what is left rebuilds what it can and names what it cannot.
		p.base, p.baseKey = fallback, fallbackKey
	}
	if held {
		return p, nil // nothing stored after it predates the instant
	}
	lo := uint64(0)
	if p.base != nil {
		lo = low(p.base)
	}
	for _, s := range c.Segments {
		if s.LastSeq < lo {
			continue
		}
		if !latest && s.FirstTime.After(at) {
			continue
		}
		p.segments = append(p.segments, s)
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
		body, err := store.Get(ctx, mi.Key)
		if err != nil {
			continue
		}
		x, err := manifest.Decode(body)
		if err != nil {
			continue
		}
		if ok, _ := exactFrom(x, c.firstSeq(), mi.Time, false); ok {
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

// LoadIndex returns the index of the host's state at T (latest: everything stored), from
// the newest manifest plus the records after it. Damaged objects are skipped and named
// in the returned problems.
func LoadIndex(ctx context.Context, store objstore.Store, host string, at time.Time, latest bool) (*manifest.Index, []string, error) {
	c, err := List(ctx, store, host)
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	p, err := makePlan(ctx, store, c, at, latest, &problems)
	if err != nil {
		return nil, problems, err
	}
	x := p.base
	if x == nil {
		x = manifest.New(host)
	} else {
		x = x.Clone()
	}
	start := x.Seq
	for _, s := range p.segments {
		if s.LastSeq <= start {
			continue
		}
		body, err := store.Get(ctx, s.Key)
		var recs []journal.Record
		if err == nil {
			recs, err = segment.Decode(body)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, problems, ctx.Err()
			}
			problems = append(problems, fmt.Sprintf("segment %s: %v", s.Key, err))
			continue
		}
		for i := range recs {
			if !latest && recs[i].Time > at.UnixNano() {
				break
			}
			x.Apply(&recs[i])
		}
	}
	return x, problems, nil
}
