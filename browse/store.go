package browse

// Every call this package makes into the store-reading API is in this file, so that a
// move of that API touches one place.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/segment"
	bucket "github.com/mmreplicate/mmreplicate/store"
)

// catalog is what the store holds for one host, from listings alone.
type catalog = bucket.Catalog

func listCatalog(ctx context.Context, st objstore.Store, host string) (*catalog, error) {
	return bucket.List(ctx, st, host)
}

func listHosts(ctx context.Context, st objstore.Store) ([]string, error) {
	return bucket.Hosts(ctx, st)
}

// stateAt is the index of the host's state at T, with every missing or damaged object it
// needed named in problems (a gap in the stored sequence up to T included).
func stateAt(ctx context.Context, st objstore.Store, host string, at time.Time, latest bool) (*manifest.Index, []string, error) {
	x, problems, err := bucket.LoadIndex(ctx, st, host, at, latest)
	if err != nil {
		return nil, problems, err
	}
	c, err := listCatalog(ctx, st, host)
	if err != nil {
		return nil, problems, err
	}
	for _, g := range gaps(c, at, latest) {
		if !slices.Contains(problems, g) {
			problems = append(problems, g)
		}
	}
	return x, problems, nil
}

// gaps names the sequence numbers missing between the stored segments that begin at or
// before T, also before the manifest a state starts from (the store's own gap detection
// starts there): the history that log and diff read must be whole too. Retention deletes
// the oldest segments first, so a hole between two stored segments is always a loss.
func gaps(c *catalog, at time.Time, latest bool) []string {
	var out []string
	var next uint64
	for _, in := range c.Segments {
		if !latest && in.FirstTime.After(at) {
			break
		}
		if next > 0 && in.FirstSeq > next {
			out = append(out, fmt.Sprintf("records %d-%d missing before %s", next, in.FirstSeq-1, in.Key))
		}
		next = max(next, in.LastSeq+1)
	}
	return out
}

// readSegment fetches one segment and checks it against its name.
func readSegment(ctx context.Context, st objstore.Store, in segment.Info) ([]journal.Record, error) {
	body, err := st.Get(ctx, in.Key)
	if err != nil {
		return nil, err
	}
	recs, err := segment.Decode(body)
	if err == nil {
		err = in.Check(recs)
	}
	return recs, err
}

// readManifest fetches and decodes one manifest.
func readManifest(ctx context.Context, st objstore.Store, key string) (*manifest.Index, error) {
	return bucket.ReadManifest(ctx, st, key)
}

// rebuild writes the state at T of the paths matching globs into the empty folder to,
// as `mmreplicate restore` does, and returns what was missing or damaged.
func rebuild(ctx context.Context, st objstore.Store, host string, at time.Time, latest bool, globs []string, to string) ([]string, error) {
	res, err := restore.Run(ctx, restore.Options{Store: st, Host: host, At: at, Latest: latest, To: to, Paths: globs, Force: true})
	if errors.Is(err, restore.ErrIncomplete) {
		return res.Problems, nil
	}
	if errors.Is(err, restore.ErrNothing) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return res.Problems, err
}

// versionOf reads one record as a version of its path.
func versionOf(r *journal.Record) (restore.Version, bool) { return restore.VersionOf(r) }
