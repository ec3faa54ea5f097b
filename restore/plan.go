package restore

import (
	"context"
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

// manifestAt is the newest manifest whose state is at or before at (latest: the newest).
func (c *Catalog) manifestAt(at time.Time, latest bool) (manifest.Info, bool) {
	for i := len(c.Manifests) - 1; i >= 0; i-- {
		if latest || !c.Manifests[i].Time.After(at) {
			return c.Manifests[i], true
		}
	}
	return manifest.Info{}, false
}

// plan is what a restore at T reads: a starting index and the segments after it.
type plan struct {
	base     *manifest.Index // nil: start from nothing
	baseKey  string
	segments []segment.Info
}

// makePlan picks the newest readable manifest at or before T and the segments still
// needed after it: those holding live append/db content or anything newer than it.
func makePlan(ctx context.Context, store objstore.Store, c *Catalog, at time.Time, latest bool, problems *[]string) (plan, error) {
	var p plan
	for {
		mi, ok := c.manifestAt(at, latest)
		if !ok {
			break
		}
		body, err := store.Get(ctx, mi.Key)
		var x *manifest.Index
		if err == nil {
			x, err = manifest.Decode(body)
		}
		if err == nil {
			p.base, p.baseKey = x, mi.Key
			break
		}
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
		// A damaged manifest costs time, not data: fall back to an older one.
		*problems = append(*problems, fmt.Sprintf("manifest %s: %v (used an older starting point)", mi.Key, err))
		c = &Catalog{Segments: c.Segments, Manifests: without(c.Manifests, mi.Key)}
	}
	low := uint64(0)
	if p.base != nil {
		low = p.base.Seq + 1
		if m := p.base.MinSince(); m > 0 && m < low {
			low = m
		}
	}
	for _, s := range c.Segments {
		if s.LastSeq < low {
			continue
		}
		if !latest && s.FirstTime.After(at) {
			continue
		}
		p.segments = append(p.segments, s)
	}
	return p, nil
}

func without(list []manifest.Info, key string) []manifest.Info {
	var out []manifest.Info
	for _, m := range list {
		if m.Key != key {
			out = append(out, m)
		}
	}
	return out
}

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
