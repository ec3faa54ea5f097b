package restore

import (
	"context"
	"crypto/sha256"
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
	Blobs     int          `json:"blobs"`
	BlobBytes int64        `json:"blob_bytes"`
	Problems  []string     `json:"problems"` // store-wide (blobs)
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

// Verify reads every segment and manifest of the hosts (all when hosts is empty), checks
// checksums, names and sequence continuity, and that every chunk they refer to is stored
// (readData: also that every blob's content matches its hash).
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
	refs := map[string]bool{}
	var mu sync.Mutex
	for _, h := range hosts {
		hr, err := verifyHost(ctx, store, h, parallel, func(id string) { mu.Lock(); refs[id] = true; mu.Unlock() })
		if err != nil {
			return nil, err
		}
		rep.Hosts = append(rep.Hosts, hr)
	}
	stored := map[string]int64{}
	if err := store.List(ctx, "blobs/", func(o objstore.ObjectInfo) error {
		stored[o.Key[strings.LastIndexByte(o.Key, '/')+1:]] = o.Size
		rep.BlobBytes += o.Size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list %s: %w", store, err)
	}
	rep.Blobs = len(stored)
	var missing []string
	for id := range refs {
		if _, ok := stored[id]; !ok {
			missing = append(missing, manifest.BlobKey(id))
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		rep.Problems = append(rep.Problems, fmt.Sprintf("blob %s: missing", k))
	}
	if readData {
		rep.Problems = append(rep.Problems, checkBlobs(ctx, store, stored, parallel)...)
	}
	return rep, nil
}

func verifyHost(ctx context.Context, store objstore.Store, host string, parallel int, ref func(string)) (HostReport, error) {
	hr := HostReport{Host: host, Problems: []string{}}
	cat, err := List(ctx, store, host)
	if err != nil {
		return hr, err
	}
	hr.Segments, hr.Manifests = len(cat.Segments), len(cat.Manifests)
	for _, k := range cat.Strangers {
		hr.Problems = append(hr.Problems, fmt.Sprintf("object %s: not a segment or manifest name", k))
	}
	var mu sync.Mutex // guards hr.Problems while manifests are checked
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
			for _, r := range recs {
				if r.Op == journal.OpFile {
					list, _ := journal.DecodeChunks(r.Data)
					for _, c := range list {
						ref(c.ID())
					}
				}
			}
			return nil
		})
	}
	for _, in := range cat.Manifests {
		g.Go(func() error {
			body, err := store.Get(gctx, in.Key)
			var x *manifest.Index
			if err == nil {
				x, err = manifest.Decode(body)
			}
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
					ref(c.ID())
				}
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
	}
	sort.Strings(hr.Problems)
	return hr, nil
}

func checkBlobs(ctx context.Context, store objstore.Store, stored map[string]int64, parallel int) []string {
	var out []string
	var omu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for id := range stored {
		g.Go(func() error {
			data, err := store.Get(gctx, manifest.BlobKey(id))
			msg := ""
			switch {
			case err != nil:
				msg = fmt.Sprintf("blob %s: %v", manifest.BlobKey(id), err)
			case fmt.Sprintf("%x", sha256.Sum256(data)) != id:
				msg = fmt.Sprintf("blob %s: content does not match its hash", manifest.BlobKey(id))
			}
			if msg != "" {
				omu.Lock()
				out = append(out, msg)
				omu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	sort.Strings(out)
	return out
}
