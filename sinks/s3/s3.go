// Package s3 is the sink that writes batches of records as segment objects into an
// object store (S3, or the local folder of the embedded default).
package s3

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/sinks"
)

// Sink writes one segment object per batch. The key is derived from the batch's first and
// last records, so a retried batch rewrites the same key: at-least-once delivery becomes
// exactly-once storage.
type Sink struct {
	Store  objstore.Store
	Host   string
	Target string // the target's name from the config
}

// Name is "s3-<target>".
func (s *Sink) Name() string { return "s3-" + s.Target }

// Write uploads recs as one segment. Errors a retry cannot cure wrap sinks.ErrPermanent.
func (s *Sink) Write(ctx context.Context, recs []journal.Record) error {
	if len(recs) == 0 {
		return nil
	}
	key := segment.Key(s.Host, recs)
	if err := s.Store.Put(ctx, key, segment.Encode(recs)); err != nil {
		if !objstore.Temporary(err) && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %w", sinks.ErrPermanent, err)
		}
		return err
	}
	return nil
}

// Last returns the newest segment stored for host: its last sequence number and capture
// time, or zero values when the store has none. A rebuilt host continues from there.
func Last(ctx context.Context, store objstore.Store, host string) (uint64, time.Time, error) {
	var seq uint64
	var t time.Time
	err := store.List(ctx, segment.Prefix(host), func(o objstore.ObjectInfo) error {
		in, err := segment.ParseKey(o.Key)
		if err != nil {
			return nil // not ours; verify reports strangers
		}
		if in.LastSeq > seq {
			seq, t = in.LastSeq, in.LastTime
		}
		return nil
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("list %s: %w", store, err)
	}
	return seq, t, nil
}
