package s3gw

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/segment"
)

// versionLayout names history versions: RFC 3339 with a fixed nine-digit fraction, so
// that the bytewise order of keys (which S3 listings use) is the order in time.
const versionLayout = "2006-01-02T15:04:05.000000000Z07:00"

// change is one version of a file: the records of one capture time.
type change struct {
	t    int64
	seq  uint64 // the newest record of this file at t
	size int64  // the file's size after it; -1 when records alone cannot tell (databases)
	gone bool   // the path was deleted (or became a link or folder) at t: not a version
}

// history indexes every stored change of every path, from reading each segment once;
// a refresh reads only the segments it has not seen.
type history struct {
	refresh sync.Mutex // one refresh at a time
	mu      sync.Mutex
	read    map[string]bool // segment keys applied
	covered []seqRange      // sequence numbers applied, merged
	files   map[string][]change
	gen     uint64

	keysGen uint64
	names   []string // "<source>/<path>/<version>", sorted
	refs    []histRef
	sizes   map[histRef]int64 // sizes learnt by rebuilding a version
}

type histRef struct {
	file string
	t    int64
}

type seqRange struct{ lo, hi uint64 }

func newHistory() *history {
	return &history{read: map[string]bool{}, files: map[string][]change{}, sizes: map[histRef]int64{}}
}

// historyNow brings the index up to date with the current catalog.
func (g *Gateway) historyNow() (*history, error) {
	c, err := g.catalogNow()
	if err != nil {
		return nil, err
	}
	h := g.hist
	h.refresh.Lock()
	defer h.refresh.Unlock()
	h.mu.Lock()
	var todo []segment.Info
	for _, s := range c.cat.Segments {
		if !h.read[s.Key] {
			todo = append(todo, s)
		}
	}
	h.mu.Unlock()
	if len(todo) == 0 {
		return h, nil
	}
	// Fetch in parallel, apply as they come: the index does not depend on the order.
	var eg errgroup.Group
	eg.SetLimit(g.o.Parallel)
	for _, s := range todo {
		eg.Go(func() error {
			body, err := g.o.Store.Get(g.ctx, s.Key)
			var recs []journal.Record
			if err == nil {
				recs, err = segment.Decode(body)
			}
			if err == nil {
				err = s.Check(recs)
			}
			switch {
			case errors.Is(err, segment.ErrCorrupt) || errors.Is(err, journal.ErrCorrupt):
				g.o.Log.Warn("serve-s3: history skips a damaged segment", "key", s.Key, "err", err)
				h.mu.Lock()
				h.read[s.Key] = true
				h.mu.Unlock()
			case err != nil:
				// Perhaps passing (network, or the object is being replaced): the next
				// refresh tries again.
				g.o.Log.Warn("serve-s3: history cannot read a segment yet", "key", s.Key, "err", err)
			default:
				h.apply(s, recs)
			}
			return nil
		})
	}
	_ = eg.Wait()
	return h, g.ctx.Err()
}

// apply adds one segment's records.
func (h *history) apply(s segment.Info, recs []journal.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.read[s.Key] {
		return
	}
	for i := range recs {
		r := &recs[i]
		if h.has(r.Seq) {
			continue // also held by an overlapping segment
		}
		v, ok := restore.VersionOf(r)
		if !ok {
			continue // a blob, not a path
		}
		c := change{t: r.Time, seq: r.Seq, size: v.Size, gone: v.Gone}
		h.add(r.Source+"/"+r.Path, c)
	}
	h.cover(s.FirstSeq, s.LastSeq)
	h.read[s.Key] = true
	h.gen++
}

func (h *history) add(file string, c change) {
	v := h.files[file]
	i := sort.Search(len(v), func(i int) bool { return v[i].t >= c.t })
	switch {
	case i < len(v) && v[i].t == c.t:
		if c.seq > v[i].seq {
			v[i] = c // the newest record of a capture time decides
		}
	case i == len(v):
		v = append(v, c)
	default:
		v = append(v, change{})
		copy(v[i+1:], v[i:])
		v[i] = c
	}
	h.files[file] = v
}

func (h *history) has(seq uint64) bool {
	i := sort.Search(len(h.covered), func(i int) bool { return h.covered[i].hi >= seq })
	return i < len(h.covered) && h.covered[i].lo <= seq
}

func (h *history) cover(lo, hi uint64) {
	h.covered = append(h.covered, seqRange{lo, hi})
	sort.Slice(h.covered, func(a, b int) bool { return h.covered[a].lo < h.covered[b].lo })
	out := h.covered[:1]
	for _, r := range h.covered[1:] {
		last := &out[len(out)-1]
		if r.lo <= last.hi+1 {
			last.hi = max(last.hi, r.hi)
		} else {
			out = append(out, r)
		}
	}
	h.covered = out
}

// keys returns the sorted version names and what each refers to.
func (h *history) keys() ([]string, []histRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names != nil && h.keysGen == h.gen {
		return h.names, h.refs
	}
	type kv struct {
		name string
		ref  histRef
	}
	var all []kv
	for f, v := range h.files {
		for _, c := range v {
			if !c.gone {
				all = append(all, kv{f + "/" + versionName(c.t), histRef{f, c.t}})
			}
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a].name < all[b].name })
	h.names, h.refs = make([]string, len(all)), make([]histRef, len(all))
	for i, e := range all {
		h.names[i], h.refs[i] = e.name, e.ref
	}
	h.keysGen = h.gen
	return h.names, h.refs
}

// lookup finds the version of file at exactly t.
func (h *history) lookup(file string, t int64) (change, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.files[file]
	i := sort.Search(len(v), func(i int) bool { return v[i].t >= t })
	if i < len(v) && v[i].t == t && !v[i].gone {
		c := v[i]
		if c.size < 0 {
			if n, ok := h.sizes[histRef{file, t}]; ok {
				c.size = n
			}
		}
		return c, true
	}
	return change{}, false
}

func (h *history) learnSize(ref histRef, n int64) {
	h.mu.Lock()
	h.sizes[ref] = n
	h.mu.Unlock()
}

func versionName(t int64) string { return time.Unix(0, t).UTC().Format(versionLayout) }

// versionETag identifies a version without reading it: the content of a file at one of
// its change times never changes, so its name is as stable as a content hash. The "-1"
// suffix (the multipart form) tells clients not to take it for the MD5 of the body.
func versionETag(host, file string, t int64) string {
	sum := sha256.Sum256([]byte(host + "\x00" + file + "\x00" + strconv.FormatInt(t, 10)))
	return `"` + hex.EncodeToString(sum[:16]) + `-1"`
}
