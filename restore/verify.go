package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/state"
	bucket "github.com/mmreplicate/mmreplicate/store"
)

// HostReport is what verify found for one host.
type HostReport struct {
	Host      string    `json:"host"`
	Segments  int       `json:"segments"`
	Records   uint64    `json:"records"`
	Manifests int       `json:"manifests"`
	FirstSeq  uint64    `json:"first_seq"`
	LastSeq   uint64    `json:"last_seq"`
	Oldest    time.Time `json:"oldest_restorable,omitzero"`
	Newest    time.Time `json:"newest_restorable,omitzero"`
	Problems  []string  `json:"problems"`
}

// Report is the result of verify over a store.
type Report struct {
	Store     string       `json:"store"`
	Hosts     []HostReport `json:"hosts"`
	Blobs     int          `json:"blobs"`      // referenced blobs found
	BlobBytes int64        `json:"blob_bytes"` // their stored size
	Problems  []string     `json:"problems"`   // store-wide (blobs)
}

// OK reports whether nothing is missing or damaged.
func (r *Report) OK() bool {
	if len(r.Problems) > 0 {
		return false
	}
	for _, h := range r.Hosts {
		if len(h.Problems) > 0 {
			return false
		}
	}
	return true
}

// Verify reads every segment and manifest of the hosts (all when hosts is empty), checks
// checksums, names and sequence continuity, and that every chunk they refer to is stored
// (readData: also that every referenced blob's content matches its hash).
func Verify(ctx context.Context, store objstore.Store, hosts []string, parallel int, readData bool) (*Report, error) {
	if parallel <= 0 {
		parallel = 16
	}
	if len(hosts) == 0 {
		var err error
		if hosts, err = Hosts(ctx, store); err != nil {
			return nil, err
		}
	}
	rep := &Report{Store: store.String()}
	refs := map[string]journal.ChunkRef{}
	loc := &chunkLocs{packs: map[string]manifest.Pack{}, sizes: map[string]int64{}}
	var mu sync.Mutex
	for _, h := range hosts {
		hr, err := verifyHost(ctx, store, h, parallel, func(c journal.ChunkRef) { mu.Lock(); refs[c.ID()] = c; mu.Unlock() }, loc)
		if err != nil {
			return nil, err
		}
		rep.Hosts = append(rep.Hosts, hr)
	}
	ids := make([]journal.ChunkRef, 0, len(refs))
	for _, c := range refs {
		ids = append(ids, c)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a].ID() < ids[b].ID() })
	blobs, bytes, problems, err := checkBlobs(ctx, store, ids, loc, parallel, readData)
	if err != nil {
		return nil, err
	}
	rep.Blobs, rep.BlobBytes = blobs, bytes
	rep.Problems = append(rep.Problems, problems...)
	return rep, nil
}

func verifyHost(ctx context.Context, store objstore.Store, host string, parallel int, ref func(journal.ChunkRef), loc *chunkLocs) (HostReport, error) {
	hr := HostReport{Host: host, Problems: []string{}}
	cat, err := List(ctx, store, host)
	if err != nil {
		return hr, err
	}
	for _, in := range cat.Segments {
		loc.sized(in.Key, in.Size)
	}
	hr.Segments, hr.Manifests = len(cat.Segments), len(cat.Manifests)
	for _, k := range cat.Strangers {
		hr.Problems = append(hr.Problems, fmt.Sprintf("object %s: not a segment or manifest name", k))
	}
	var mu sync.Mutex // guards hr.Problems and compacted while manifests are checked
	var compacted []*manifest.Index
	problems := make([]string, len(cat.Segments))
	counts := make([]uint64, len(cat.Segments))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, in := range cat.Segments {
		g.Go(func() error {
			body, err := store.Get(gctx, in.Key)
			var recs []journal.Record
			if err == nil {
				recs, err = segment.Decode(body)
			}
			if err == nil {
				err = in.Check(recs)
			}
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				problems[i] = fmt.Sprintf("segment %s: %v", in.Key, err)
				return nil
			}
			counts[i] = uint64(len(recs))
			var bad []string
			for _, r := range recs {
				if err := state.Check(&r); err != nil {
					bad = append(bad, err.Error())
					continue
				}
				if r.Op == journal.OpFile {
					list, _ := journal.DecodeChunks(r.Data)
					for _, c := range list {
						ref(c)
					}
				}
				loc.note(&r)
			}
			if len(bad) > 0 {
				problems[i] = fmt.Sprintf("segment %s: malformed %s", in.Key, strings.Join(bad, "; "))
			}
			return nil
		})
	}
	for _, in := range cat.Manifests {
		g.Go(func() error {
			x, err := bucket.ReadManifest(gctx, store, in.Key)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				mu.Lock()
				hr.Problems = append(hr.Problems, fmt.Sprintf("manifest %s: %v", in.Key, err))
				mu.Unlock()
				return nil
			}
			for _, e := range x.Files {
				for _, c := range e.Chunks {
					ref(c)
				}
			}
			loc.add(x.Packs)
			if x.Compacted {
				mu.Lock()
				compacted = append(compacted, x)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return hr, err
	}
	var next uint64
	for i, in := range cat.Segments {
		if problems[i] != "" {
			hr.Problems = append(hr.Problems, problems[i])
		}
		hr.Records += counts[i]
		if next > 0 && in.FirstSeq > next {
			hr.Problems = append(hr.Problems, fmt.Sprintf("records %d-%d missing before %s", next, in.FirstSeq-1, in.Key))
		}
		next = max(next, in.LastSeq+1)
	}
	if len(cat.Segments) > 0 {
		hr.FirstSeq, hr.LastSeq = cat.Segments[0].FirstSeq, next-1
		hr.Oldest, hr.Newest, _ = cat.Window()
		// Retention deletes the oldest segments once compacted manifests hold their state:
		// that is no gap, but one compacted manifest must pick up where the segments start.
		if first := cat.FirstSeq(); first > 1 {
			joined := false
			for _, x := range compacted {
				joined = joined || x.Seq+1 >= first
			}
			if !joined {
				hr.Problems = append(hr.Problems, fmt.Sprintf("records 1-%d are not stored and no compacted manifest holds their state", first-1))
			}
		}
		for _, x := range compacted {
			if t := time.Unix(0, x.Time).UTC(); t.Before(hr.Oldest) {
				hr.Oldest = t // retained points before the segments start
			}
		}
	}
	sort.Strings(hr.Problems)
	return hr, nil
}

// chunkLocs gathers where packed chunks are (from segments' chunk records and manifests'
// Packs) and the listed sizes of the segments holding them.
type chunkLocs struct {
	mu    sync.Mutex
	packs map[string]manifest.Pack
	sizes map[string]int64
}

func (l *chunkLocs) sized(key string, n int64) {
	l.mu.Lock()
	l.sizes[key] = n
	l.mu.Unlock()
}

func (l *chunkLocs) note(r *journal.Record) {
	x := manifest.Index{}
	x.Locate(r)
	l.add(x.Packs)
}

func (l *chunkLocs) add(p map[string]manifest.Pack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, at := range p {
		// The location in a listed segment wins over one that is gone.
		if old, ok := l.packs[id]; ok && l.sizes[old.Key] > 0 && l.sizes[at.Key] == 0 {
			continue
		}
		l.packs[id] = at
	}
}

// checkBlobs looks up every referenced blob through the store (readData: reads it and
// checks its hash too). Each is asked for by its key rather than found in a listing of
// blobs/, because a store may keep blobs under other names (objstore/crypt maps them to
// keyed hashes) and only resolves them by key. It returns how many were found, their
// stored bytes, and a problem per missing or damaged blob; the error is for a canceled
// context only.
func checkBlobs(ctx context.Context, store objstore.Store, refs []journal.ChunkRef, loc *chunkLocs, parallel int, readData bool) (int, int64, []string, error) {
	var (
		mu       sync.Mutex
		found    int
		bytes    int64
		problems []string
	)
	report := func(msg string) {
		mu.Lock()
		problems = append(problems, msg)
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, c := range refs {
		id := c.ID()
		g.Go(func() error {
			if p, ok := loc.packs[id]; ok && loc.sizes[p.Key] >= p.Off+int64(c.Size) {
				// Packed in a listed segment: found without a request of its own.
				if readData {
					if _, err := bucket.ReadChunk(gctx, store, loc.packs, c); err != nil {
						if gctx.Err() != nil {
							return gctx.Err()
						}
						report(fmt.Sprintf("chunk %s: %v", id, err))
						return nil
					}
				}
				mu.Lock()
				found++
				bytes += int64(c.Size)
				mu.Unlock()
				return nil
			}
			key := manifest.BlobKey(id)
			oi, err := store.Stat(gctx, key)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if errors.Is(err, objstore.ErrNotFound) {
					report(fmt.Sprintf("blob %s: missing", key))
				} else {
					report(fmt.Sprintf("blob %s: %v", key, err))
				}
				return nil
			}
			mu.Lock()
			found++
			bytes += oi.Size
			mu.Unlock()
			if !readData {
				return nil
			}
			data, err := store.Get(gctx, key)
			switch {
			case err != nil && gctx.Err() != nil:
				return gctx.Err()
			case err != nil:
				report(fmt.Sprintf("blob %s: %v", key, err))
			case fmt.Sprintf("%x", sha256.Sum256(data)) != id:
				report(fmt.Sprintf("blob %s: content does not match its hash", key))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, nil, err
	}
	sort.Strings(problems)
	return found, bytes, problems, nil
}
