package restore

import (
	"context"
	"time"

	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	bucket "github.com/mmreplicate/mmreplicate/store"
)

// Catalog is what a store holds for one host (package store owns it).
type Catalog = bucket.Catalog

// ErrNotRetained is returned (wrapped) for an instant whose state retention has thinned
// away (see store.ErrNotRetained).
var ErrNotRetained = bucket.ErrNotRetained

// List reads the host's catalog (see store.List).
func List(ctx context.Context, store objstore.Store, host string) (*Catalog, error) {
	return bucket.List(ctx, store, host)
}

// Segments lists the host's segments in sequence order (see store.Segments).
func Segments(ctx context.Context, store objstore.Store, host string) ([]segment.Info, []string, error) {
	return bucket.Segments(ctx, store, host)
}

// LoadIndex returns the index of the host's state at T (see store.LoadIndex).
func LoadIndex(ctx context.Context, store objstore.Store, host string, at time.Time, latest bool) (*manifest.Index, []string, error) {
	return bucket.LoadIndex(ctx, store, host, at, latest)
}

// Hosts lists the hosts that have objects in the store (see store.Hosts).
func Hosts(ctx context.Context, store objstore.Store) ([]string, error) {
	return bucket.Hosts(ctx, store)
}
