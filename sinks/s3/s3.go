// Package s3 is the sink that writes batches of records into an object store (S3, or the
// local folder of the embedded default): chunks as content-addressed blobs, everything
// else as one segment object per batch, and periodically a manifest of the whole state.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/sinks"
	"github.com/mmreplicate/mmreplicate/state"
	"github.com/mmreplicate/mmreplicate/store"
)

// knownTTL bounds how long the sink trusts that a blob it put is still stored.
const knownTTL = 6 * time.Hour

// Defaults for manifests: often enough that a restore reads little beyond one manifest,
// rarely enough that their PUTs cost nothing next to the segments'.
const (
	DefaultManifestEvery   = 10 * time.Minute
	DefaultManifestRecords = 100000
)

// Sink writes one segment object per batch. The key is derived from the batch's first and
// last records, so a retried batch rewrites the same key: at-least-once delivery becomes
// exactly-once storage.
type Sink struct {
	Store           objstore.Store
	Host            string
	Target          string // the target's name from the config
	ManifestEvery   time.Duration
	ManifestRecords uint64
	Log             *slog.Logger

	mu           sync.Mutex
	index        *manifest.Index
	known        map[string]bool // blob ids stored by this process recently
	knownSince   time.Time
	lastManifest time.Time
	manifestSeq  uint64
	manifests    uint64
	blobsPut     uint64
	gap          string // records missing from the stored history: no manifest may hide them
}

// Name is "s3-<target>".
func (s *Sink) Name() string { return "s3-" + s.Target }

// Open loads the state index from the store (newest manifest plus the segments after it)
// so that the manifests this sink writes continue the stored history.
func (s *Sink) Open(ctx context.Context) error {
	if s.ManifestEvery <= 0 {
		s.ManifestEvery = DefaultManifestEvery
	}
	if s.ManifestRecords == 0 {
		s.ManifestRecords = DefaultManifestRecords
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	st, err := store.Load(ctx, s.Store, s.Host, time.Time{}, true)
	if err != nil {
		return fmt.Errorf("sink %s: load index: %w", s.Name(), err)
	}
	for _, p := range st.Problems {
		s.Log.Warn("store problem while loading the index; run verify", "problem", p)
	}
	x := st.Index
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gap = ""
	if !st.Complete() {
		// A manifest written now would claim a state the store cannot give: restores
		// from it would no longer see that these records are missing.
		var gaps []string
		for _, g := range st.Gaps {
			gaps = append(gaps, g.String())
		}
		s.gap = strings.Join(gaps, "; ")
		s.Log.Error("the stored history of this host has a gap; no manifest will be written until it is repaired (run verify)",
			"sink", s.Name(), "host", s.Host, "gap", s.gap)
	}
	s.index, s.known = x, map[string]bool{}
	s.manifestSeq, s.lastManifest = x.Seq, time.Now()
	return nil
}

// Gap names the records missing from the stored history that Open found ("" when
// none). While it is set the sink stores segments but writes no manifest.
func (s *Sink) Gap() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gap
}

// Write uploads the batch's new chunks, then the segment, then (when due) a manifest.
// Errors a retry cannot cure wrap sinks.ErrPermanent.
func (s *Sink) Write(ctx context.Context, recs []journal.Record) error {
	if len(recs) == 0 {
		return nil
	}
	for i := range recs {
		if err := state.Check(&recs[i]); err != nil {
			return fmt.Errorf("%w: sink %s: host %s: %w", sinks.ErrPermanent, s.Name(), s.Host, err)
		}
	}
	if err := s.putBlobs(ctx, recs); err != nil {
		return classify(err)
	}
	stripped := make([]journal.Record, len(recs))
	copy(stripped, recs)
	for i := range stripped {
		if stripped[i].Op == journal.OpChunk {
			stripped[i].Data = nil // stored as a blob; the record keeps the sequence whole
		}
	}
	if err := s.Store.Put(ctx, segment.Key(s.Host, stripped), segment.Encode(stripped)); err != nil {
		return classify(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range stripped {
		if err := s.index.Apply(&stripped[i]); err != nil {
			s.Log.Error("record not applied to the index", "host", s.Host, "err", err) // checked above: not expected
		}
	}
	if s.index.Seq-s.manifestSeq >= s.ManifestRecords || time.Since(s.lastManifest) >= s.ManifestEvery {
		s.writeManifest(ctx)
	}
	return nil
}

// writeManifest stores the index. A failure only delays the next manifest: restores
// stay exact, they just read more segments.
func (s *Sink) writeManifest(ctx context.Context) {
	if s.gap != "" {
		s.lastManifest = time.Now()
		s.Log.Error("manifest not written: the stored history has a gap", "sink", s.Name(), "host", s.Host, "gap", s.gap)
		return
	}
	body, err := manifest.Encode(s.index)
	if err == nil {
		err = s.Store.Put(ctx, manifest.ObjectKey(s.index), body)
	}
	s.lastManifest = time.Now()
	if err != nil {
		s.Log.Warn("manifest upload failed; will try again later", "err", err)
		return
	}
	s.manifestSeq = s.index.Seq
	s.manifests++
}

// Flush writes a manifest now when anything changed since the last one (on shutdown).
func (s *Sink) Flush(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index != nil && s.index.Seq > s.manifestSeq {
		s.writeManifest(ctx)
	}
}

func (s *Sink) putBlobs(ctx context.Context, recs []journal.Record) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range recs {
		r := &recs[i]
		if r.Op != journal.OpChunk || len(r.Data) == 0 {
			continue
		}
		s.mu.Lock()
		if time.Since(s.knownSince) > knownTTL {
			// Retention sweeps unreferenced blobs after a grace; do not trust for long
			// that a blob put earlier is still there.
			clear(s.known)
			s.knownSince = time.Now()
		}
		known := s.known[r.Path]
		s.mu.Unlock()
		if known {
			continue
		}
		key, err := store.BlobKey(r.Path)
		if err != nil {
			_ = g.Wait()
			return fmt.Errorf("%w: host %s: record %d: %w", sinks.ErrPermanent, s.Host, r.Seq, err)
		}
		g.Go(func() error {
			if err := s.Store.Put(gctx, key, r.Data); err != nil {
				return err
			}
			s.mu.Lock()
			s.known[r.Path] = true
			s.blobsPut++
			s.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

func classify(err error) error {
	if !objstore.Temporary(err) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", sinks.ErrPermanent, err)
	}
	return err
}

// Last returns the newest segment stored for host: its last sequence number and capture
// time, or zero values when the store has none. A rebuilt host continues from there.
func Last(ctx context.Context, st objstore.Store, host string) (uint64, time.Time, error) {
	segs, _, err := store.Segments(ctx, st, host)
	if err != nil {
		return 0, time.Time{}, err
	}
	var seq uint64
	var t time.Time
	for _, in := range segs {
		if in.LastSeq > seq {
			seq, t = in.LastSeq, in.LastTime
		}
	}
	return seq, t, nil
}
