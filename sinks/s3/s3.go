// Package s3 is the sink that writes batches of records into an object store (S3, or the
// local folder of the embedded default): one segment object per batch, written by one PUT
// that also carries the bytes of the batch's new chunks (see segment.EncodePacked), and
// periodically a manifest of the whole state, which locates the packed chunks.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
	"github.com/mmreplicate/mmreplicate/sinks"
	"github.com/mmreplicate/mmreplicate/state"
	"github.com/mmreplicate/mmreplicate/store"
)

// knownTTL bounds how long the sink trusts that a chunk it packed is still where it put it.
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
	lastManifest time.Time
	manifestSeq  uint64
	manifests    uint64
	chunksPacked uint64
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
	s.index = x
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

// Write uploads the batch as one segment object carrying its new chunks, then (when due)
// a manifest.
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
	key := segment.Key(s.Host, recs)
	now := time.Now()
	s.mu.Lock()
	seen := map[string]bool{}
	body, stored := segment.EncodePacked(key, recs, func(id string) bool {
		// A retried batch rewrites its own key: it must carry its chunks again.
		if seen[id] || s.recentlyPacked(id, key, now) {
			return false
		}
		seen[id] = true
		return true
	})
	s.mu.Unlock()
	// One PUT carries the records and the bytes of every new chunk.
	if err := s.Store.Put(ctx, key, body); err != nil {
		return classify(err)
	}
	stripped := stored
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunksPacked += uint64(len(seen))
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
	prunePacks(s.index, time.Now())
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

// recentlyPacked reports whether chunk id is stored in a segment written within knownTTL,
// so that a new record may refer to it by id: retention deletes old segments (after
// copying the chunks still referred to into blobs), so an old location is not trusted.
func (s *Sink) recentlyPacked(id, key string, now time.Time) bool {
	p, ok := s.index.Packs[id]
	if !ok || p.Key == key {
		return false
	}
	in, err := segment.ParseKey(p.Key)
	return err == nil && now.Sub(in.LastTime) < knownTTL
}

// prunePacks forgets the locations of chunks no live entry refers to once they are old
// enough that no new record can refer to them by id (the watcher resends a chunk after
// the same TTL), so the index grows with the data, not with time.
func prunePacks(x *manifest.Index, now time.Time) {
	if len(x.Packs) == 0 {
		return
	}
	live := map[string]bool{}
	for _, e := range x.Files {
		for _, c := range e.Chunks {
			live[c.ID()] = true
		}
	}
	for id, p := range x.Packs {
		if live[id] {
			continue
		}
		if in, err := segment.ParseKey(p.Key); err != nil || now.Sub(in.LastTime) > 2*knownTTL {
			delete(x.Packs, id)
		}
	}
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
