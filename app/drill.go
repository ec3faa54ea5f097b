package app

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/crypt"
	"github.com/mmreplicate/mmreplicate/restore"
)

// DrillStatus is the last restore drill of one S3 target.
type DrillStatus struct {
	Target          string    `json:"target"`
	LastRun         time.Time `json:"last_run,omitzero"`
	LastSuccess     time.Time `json:"last_success,omitzero"`
	At              time.Time `json:"restored_instant,omitzero"`
	DurationSeconds float64   `json:"duration_seconds"`
	Files           int       `json:"files"`
	WindowSeconds   float64   `json:"recoverable_window_seconds"`
	Failures        uint64    `json:"failures"`
	LastError       string    `json:"last_error,omitempty"`
}

// drills runs restore drills against every target.
type drills struct {
	d      *daemon
	stores []objstore.Store
	names  []string
	mu     sync.Mutex
	status []DrillStatus
}

// drillWindow is how far back a drill picks its instant: recent history is what a
// recovery would need.
const drillWindow = time.Hour

// run drills every interval until ctx ends: the first one soon after start, so a broken
// store shows up on the day it breaks, not a day later.
func (r *drills) run(ctx context.Context, interval time.Duration) {
	r.status = make([]DrillStatus, len(r.stores))
	for i := range r.status {
		r.status[i].Target = r.names[i]
	}
	wait := min(interval, time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = interval
		for i := range r.stores {
			r.once(ctx, i)
		}
	}
}

func (r *drills) once(ctx context.Context, i int) {
	st, log := r.stores[i], r.d.log.With("component", "drill", "target", r.names[i])
	start := time.Now()
	res, err := r.drill(ctx, st)
	if ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.status[i]
	s.LastRun, s.DurationSeconds = start, time.Since(start).Seconds()
	switch {
	case errors.Is(err, crypt.ErrNoIdentity):
		s.LastError = "encryption.identity_file is not set: drills cannot read the store"
		log.Warn("restore drill skipped", "err", s.LastError)
	case err != nil:
		s.Failures++
		s.LastError = err.Error()
		log.Error("RESTORE DRILL FAILED: this store may not restore", "err", err, "problems", res.Problems)
	default:
		s.LastSuccess, s.At, s.Files, s.LastError = time.Now(), res.At, res.Files, ""
		s.WindowSeconds = res.NewestRestorable.Sub(res.OldestRestorable).Seconds()
		log.Info("restore drill passed", "at", res.At, "files", res.Files, "bytes", res.Bytes, "took", time.Since(start).Round(time.Millisecond))
	}
}

// drill restores a random instant of the last hour of the store's window.
func (r *drills) drill(ctx context.Context, st objstore.Store) (restore.DrillResult, error) {
	cat, err := restore.List(ctx, st, r.d.cfg.Host)
	if err != nil {
		return restore.DrillResult{}, err
	}
	oldest, newest, ok := cat.Window()
	if !ok {
		return restore.DrillResult{}, errors.New("nothing stored yet")
	}
	from := newest.Add(-drillWindow)
	if from.Before(oldest) {
		from = oldest
	}
	at := from
	if span := newest.Sub(from); span > 0 {
		at = from.Add(rand.N(span + 1))
	}
	tmp := filepath.Join(r.d.cfg.DataDir, "drills")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return restore.DrillResult{}, err
	}
	return restore.Drill(ctx, st, r.d.cfg.Host, at, tmp)
}

func (r *drills) snapshot() []DrillStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]DrillStatus(nil), r.status...)
}

var (
	mDrillSuccess  = prometheus.NewDesc("mmreplicate_restore_drill_last_success_timestamp_seconds", "Time of the last restore drill that passed, per target.", []string{"target"}, nil)
	mDrillDuration = prometheus.NewDesc("mmreplicate_restore_drill_duration_seconds", "How long the last restore drill took, per target.", []string{"target"}, nil)
	mDrillFailures = prometheus.NewDesc("mmreplicate_restore_drill_failures_total", "Restore drills that failed, per target.", []string{"target"}, nil)
	mWindow        = prometheus.NewDesc("mmreplicate_recoverable_window_seconds", "Span of time the store can restore, as measured by the last drill, per target.", []string{"target"}, nil)
)

func (r *drills) collect(ch chan<- prometheus.Metric) {
	for _, s := range r.snapshot() {
		ch <- prometheus.MustNewConstMetric(mDrillSuccess, prometheus.GaugeValue, unix(s.LastSuccess), s.Target)
		ch <- prometheus.MustNewConstMetric(mDrillDuration, prometheus.GaugeValue, s.DurationSeconds, s.Target)
		ch <- prometheus.MustNewConstMetric(mDrillFailures, prometheus.CounterValue, float64(s.Failures), s.Target)
		ch <- prometheus.MustNewConstMetric(mWindow, prometheus.GaugeValue, s.WindowSeconds, s.Target)
	}
}
