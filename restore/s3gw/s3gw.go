// Package s3gw serves one host's replicated state, at any time, as a read-only S3 bucket:
//
//	@latest/<source>/<path>            the newest state
//	@<TIME>/<source>/<path>            the state at TIME (any TIME form timespec accepts)
//	@history/<source>/<path>/<TIME>    every stored version of one file
//
// The S3 protocol itself (request routing, XML, listings, ranges, error bodies) is
// gofakes3's; this package is the backend behind it, plus the Signature V4 check and the
// read-only guard in front of it (gofakes3 has neither). A state is rebuilt once with
// restore.Run into a cache folder and reused for every listing and read at that instant.
package s3gw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/segment"
)

// Options configure a Gateway.
type Options struct {
	Store objstore.Store
	Host  string
	// CacheDir holds the rebuilt states; the gateway works in a new folder inside it and
	// removes that folder on Close. Default: the system's temporary folder.
	CacheDir string
	// MaxStates is how many states (distinct instants) stay rebuilt on disk; default 4.
	MaxStates int
	// MaxVersions is how many single-file history versions stay on disk; default 256.
	MaxVersions int
	// MaxBytes bounds the disk used by the cached states and versions together; the
	// entry being served is kept even when it alone is larger. Default 2 GiB.
	MaxBytes int64
	// Refresh is how long one listing of the store's catalog is reused, so that @latest
	// stays fresh without listing the store on every request. Default 1s.
	Refresh time.Duration
	// Parallel is how many objects a rebuild fetches at once; default 16.
	Parallel int
	Log      *slog.Logger
	// Now tells the time relative TIMEs ("-1h") are taken from; default time.Now.
	Now func() time.Time
}

// Gateway is the store-backed bucket of one host.
type Gateway struct {
	o      Options
	bucket string
	root   string // our folder inside CacheDir
	ctx    context.Context
	cancel context.CancelFunc

	catMu sync.Mutex
	cat   *catalog

	states   *lru
	versions *lru
	hist     *history

	timesMu sync.Mutex
	times   map[string][]int64 // record times of segments an instant fell inside
}

// New opens a gateway over o.Store for o.Host. It does not touch the store yet: the
// first request lists it.
func New(ctx context.Context, o Options) (*Gateway, error) {
	if o.Store == nil || o.Host == "" {
		return nil, errors.New("s3gw: a store and a host are required")
	}
	if o.CacheDir == "" {
		o.CacheDir = os.TempDir()
	}
	if o.MaxStates <= 0 {
		o.MaxStates = 4
	}
	if o.MaxVersions <= 0 {
		o.MaxVersions = 256
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 2 << 30
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("s3gw: cache folder: %w", err)
	}
	root, err := os.MkdirTemp(o.CacheDir, "mmreplicate-serve-s3-")
	if err != nil {
		return nil, fmt.Errorf("s3gw: cache folder: %w", err)
	}
	g := &Gateway{o: o, bucket: BucketName(o.Host), root: root}
	g.ctx, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	g.states = newLRU(o.MaxStates, o.MaxBytes)
	g.versions = newLRU(o.MaxVersions, o.MaxBytes/4)
	g.hist = newHistory()
	g.times = map[string][]int64{}
	return g, nil
}

// Bucket is the bucket name the gateway answers to.
func (g *Gateway) Bucket() string { return g.bucket }

// CacheRoot is the folder the gateway rebuilds states in.
func (g *Gateway) CacheRoot() string { return g.root }

// Close stops rebuilds in progress and removes the cache folder.
func (g *Gateway) Close() error {
	g.cancel()
	return os.RemoveAll(g.root)
}

// BucketName is the bucket of a host: lowercased, with every character outside a-z, 0-9,
// '.' and '-' turned into '-'.
func BucketName(host string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, host)
}

// catalog is one listing of the host's objects, with what resolving a TIME needs.
type catalog struct {
	at  time.Time
	cat *restore.Catalog
	// byFirst holds the segments ordered by first capture time; maxLast[k] is the newest
	// last capture time among byFirst[:k] and fp[k] a fingerprint of their keys.
	byFirst []segInfo
	maxLast []int64
	fp      []uint64
}

type segInfo struct {
	first, last int64
	key         string
}

// catalogNow returns the host's catalog, listing the store again when the last listing
// is older than Refresh.
func (g *Gateway) catalogNow() (*catalog, error) {
	g.catMu.Lock()
	defer g.catMu.Unlock()
	now := time.Now()
	if g.cat != nil && now.Sub(g.cat.at) < g.o.Refresh {
		return g.cat, nil
	}
	rc, err := restore.List(g.ctx, g.o.Store, g.o.Host)
	if err != nil {
		if g.cat != nil && g.ctx.Err() == nil {
			// Keep serving what was listed last; the next request tries again.
			g.o.Log.Warn("serve-s3: cannot list the store; serving its previous listing", "err", err)
			return g.cat, nil
		}
		return nil, err
	}
	c := &catalog{at: now, cat: rc}
	for _, s := range rc.Segments {
		c.byFirst = append(c.byFirst, segInfo{s.FirstTime.UnixNano(), s.LastTime.UnixNano(), s.Key})
	}
	sortSegs(c.byFirst)
	c.maxLast = make([]int64, len(c.byFirst)+1)
	c.fp = make([]uint64, len(c.byFirst)+1)
	c.fp[0] = fnvOffset
	for i, s := range c.byFirst {
		c.maxLast[i+1] = max(c.maxLast[i], s.last)
		c.fp[i+1] = fnvString(c.fp[i], s.key)
	}
	g.cat = c
	return c, nil
}

// instant is a resolved TIME: what to hand restore.Run and the cache key of that state.
type instant struct {
	at    time.Time
	empty bool // nothing is stored at or before it
	key   string
}

// resolve maps a TIME onto the state it names, keyed by the newest capture time at or
// before it. Two TIMEs with no capture between them name the same state and share one
// rebuild, so "@latest", "@-5m" (resolved anew on each request) and a recent RFC 3339
// instant reuse the same folder; a segment arriving late for an instant changes the
// fingerprint of the segments at or before it, and with it the key.
func (g *Gateway) resolve(c *catalog, t time.Time, latest bool) instant {
	tn := t.UnixNano()
	k := len(c.byFirst)
	if !latest {
		k = searchFirst(c.byFirst, tn)
	}
	if k == 0 {
		// Segments may have been pruned behind a manifest: restore.Run can still start
		// from one, so ask it (keyed by the manifest) rather than declare the state empty.
		for i := len(c.cat.Manifests) - 1; i >= 0; i-- {
			if m := c.cat.Manifests[i]; latest || !m.Time.After(t) {
				return instant{at: m.Time, key: fmt.Sprintf("m-%d-%016x", m.Time.UnixNano(), fnvString(fnvOffset, m.Key))}
			}
		}
		return instant{empty: true, key: "empty"}
	}
	eff := c.maxLast[k]
	if !latest && eff > tn {
		// t falls inside segments: the newest of their records at or before t decides.
		eff = 0
		for _, s := range c.byFirst[:k] {
			if s.last <= tn {
				eff = max(eff, s.last)
				continue
			}
			times, err := g.segmentTimes(s.key)
			if err != nil {
				g.o.Log.Warn("serve-s3: cannot read a segment's times; keying the state by the instant asked", "key", s.key, "err", err)
				eff = tn
				break
			}
			if j := sort.Search(len(times), func(i int) bool { return times[i] > tn }); j > 0 {
				eff = max(eff, times[j-1])
			}
		}
	}
	return instant{at: time.Unix(0, eff).UTC(), key: fmt.Sprintf("s-%d-%d-%016x", eff, k, c.fp[k])}
}

// maxTimed bounds the segments whose record times are kept for resolve.
const maxTimed = 1024

// segmentTimes returns the capture times of a segment's records (ascending).
func (g *Gateway) segmentTimes(key string) ([]int64, error) {
	g.timesMu.Lock()
	times, ok := g.times[key]
	g.timesMu.Unlock()
	if ok {
		return times, nil
	}
	body, err := g.o.Store.Get(g.ctx, key)
	if err != nil {
		return nil, err
	}
	recs, err := segment.Decode(body)
	if err != nil {
		return nil, err
	}
	times = make([]int64, len(recs))
	for i := range recs {
		times[i] = recs[i].Time
	}
	g.timesMu.Lock()
	if len(g.times) >= maxTimed {
		clear(g.times)
	}
	g.times[key] = times
	g.timesMu.Unlock()
	return times, nil
}

const fnvOffset = 14695981039346656037

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= 0xff // separator
	h *= 1099511628211
	return h
}

func sortSegs(s []segInfo) {
	sort.Slice(s, func(a, b int) bool {
		if s[a].first != s[b].first {
			return s[a].first < s[b].first
		}
		return s[a].key < s[b].key
	})
}

// searchFirst counts the segments whose first record is at or before tn.
func searchFirst(s []segInfo, tn int64) int {
	return sort.Search(len(s), func(i int) bool { return s[i].first > tn })
}

// maxHours bounds the hourly entries of the bucket root (the newest are kept).
const maxHours = 100_000

// hourly names one "@<hour>" entry per hour of the recoverable window, from the hour of
// the first capture to the hour of the last, oldest first.
func (c *catalog) hourly() []string {
	oldest, newest, ok := c.cat.Window()
	if !ok {
		return nil
	}
	from, to := oldest.UTC().Truncate(time.Hour), newest.UTC().Truncate(time.Hour)
	if n := int(to.Sub(from)/time.Hour) + 1; n > maxHours {
		from = to.Add(-(maxHours - 1) * time.Hour)
	}
	var out []string
	for h := from; !h.After(to); h = h.Add(time.Hour) {
		out = append(out, "@"+h.Format(time.RFC3339))
	}
	return out
}
