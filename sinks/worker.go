package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/cost"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// Worker feeds one Sink from one durable consumer.
//
// It stores records strictly in sequence order, without gaps. Messages can arrive out of
// order — after a crash, the unacknowledged messages of the previous process are
// redelivered only when their ack wait expires, while newer ones arrive at once — so
// records past a gap wait (unacknowledged) until the gap is filled, by that redelivery or
// by the publisher sending again from the gap (see Gap). Every stored segment is thus
// contiguous, and "everything up to the highest stored sequence number" is exact.
type Worker struct {
	Sink     Sink
	Consumer jetstream.Consumer
	Interval time.Duration // flush_interval
	MaxBytes int           // flush early once a batch holds this many bytes
	// Budget spaces flushes beyond Interval so that the month stays within the target's
	// request budget (nil: no budget). Only the Run goroutine uses it.
	Budget *cost.Bucket
	// Pricing and Reserve (other PUTs a month: manifests) price the projection in Stats.
	Pricing cost.Pricing
	Reserve float64
	Log     *slog.Logger
	// StartAfter: records at or below this sequence number are already stored (found in
	// the store at start-up) and are acknowledged without being written again.
	StartAfter uint64
	// Prepare, when set, runs first and is retried until it succeeds: it finds the
	// store's StartAfter for a target that did not answer when the daemon started.
	Prepare func(ctx context.Context) (uint64, error)
	// Resync, when set, is asked for the store's highest stored sequence number when
	// records wait behind a gap for a while: another worker (before a failover) may have
	// stored them, and then the wait is over.
	Resync func(ctx context.Context) (uint64, error)
	// Resend, when set, asks the host's publisher to send again every record from seq:
	// called when records have waited behind a gap for ResendAfter and Resync did not end
	// the wait (NATS lost the message). A worker in the daemon leaves it unset: the
	// daemon rewinds its own publisher (see Gap).
	Resend func(ctx context.Context, seq uint64) error
	// ResendAfter is how long a gap may last before Resend is called (default 10 s),
	// and then how often it is called again while the gap lasts.
	ResendAfter time.Duration

	stored    atomic.Uint64 // highest sequence number stored
	lastFlush atomic.Int64  // unix nanos of the last successful write
	errs      atomic.Uint64
	pending   atomic.Int64 // records received but not yet stored
	gapSince  atomic.Int64 // unix nanos since when records wait behind a gap, 0 if none
	reqs      requests
	known     atomic.Bool // stored is a fact about the store: a write or a resync set it

	// Owned by the Run goroutine.
	expect uint64                    // next sequence number to store
	ahead  map[uint64]journal.Record // records past a gap
	held   []heldMsg                 // messages not acknowledged yet
	gw     gapWatch                  // what was said and asked about the current gap
}

type heldMsg struct {
	msg    jetstream.Msg
	maxSeq uint64 // acknowledged once everything up to here is stored
}

// Stats is a snapshot of a worker for status and metrics.
type Stats struct {
	Sink        string
	StoredSeq   uint64
	LastSuccess time.Time
	Errors      uint64
	Pending     int64
	// PUTs of segments by this process in the current UTC hour and month.
	RequestsHour, RequestsMonth uint64
	// ProjectedRequestUSD is this month's request cost at the pace so far (manifests
	// included), at Pricing.
	ProjectedRequestUSD float64
	// BudgetWindow is how long a change made now may wait for its upload: the flush
	// interval, or longer while the budget coalesces sustained activity.
	BudgetWindow time.Duration
}

// requests counts the sink's PUTs by UTC hour and month.
type requests struct {
	mu          sync.Mutex
	since       time.Time // start of counting in this month (process start or month start)
	hour, month time.Time
	nHour       uint64
	nMonth      uint64
	budgetNext  time.Time // when the budget grants the next flush
}

func (r *requests) roll(now time.Time) {
	now = now.UTC()
	if h := now.Truncate(time.Hour); !h.Equal(r.hour) {
		r.hour, r.nHour = h, 0
	}
	if m := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC); !m.Equal(r.month) {
		r.month, r.nMonth, r.since = m, 0, now
	}
}

func (r *requests) put(now, budgetNext time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(now)
	r.nHour++
	r.nMonth++
	r.budgetNext = budgetNext
}

// Stats returns the worker's current figures.
func (w *Worker) Stats() Stats {
	s := Stats{Sink: w.Sink.Name(), StoredSeq: w.stored.Load(), Errors: w.errs.Load(), Pending: w.pending.Load()}
	now := time.Now()
	w.reqs.mu.Lock()
	if w.reqs.since.IsZero() {
		w.reqs.since = now
	}
	w.reqs.roll(now)
	s.RequestsHour, s.RequestsMonth = w.reqs.nHour, w.reqs.nMonth
	s.BudgetWindow = max(w.Interval, w.reqs.budgetNext.Sub(now))
	elapsed := now.Sub(w.reqs.since)
	w.reqs.mu.Unlock()
	if elapsed > time.Minute {
		puts := float64(s.RequestsMonth)/elapsed.Seconds()*cost.Month.Seconds() + w.Reserve
		s.ProjectedRequestUSD = w.Pricing.Requests(puts, 0)
	}
	if t := w.lastFlush.Load(); t > 0 {
		s.LastSuccess = time.Unix(0, t)
	}
	return s
}

// StoredSeq is the highest sequence number the sink has stored; everything below is
// stored too.
func (w *Worker) StoredSeq() uint64 { return w.stored.Load() }

// StoredKnown is StoredSeq when it is known to be in the store (the worker wrote or
// found it there since it started); ok is false before that, when StoredSeq is only
// where the worker was told to start.
func (w *Worker) StoredKnown() (seq uint64, ok bool) {
	if !w.known.Load() {
		return 0, false
	}
	return w.stored.Load(), true
}

// Gap reports the sequence number the worker is waiting for while newer records wait
// behind it, and since when; ok is false when there is no gap.
func (w *Worker) Gap() (seq uint64, since time.Time, ok bool) {
	t := w.gapSince.Load()
	if t == 0 {
		return 0, time.Time{}, false
	}
	return w.stored.Load() + 1, time.Unix(0, t), true
}

type batch struct {
	recs  []journal.Record
	bytes int
}

// Run consumes until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	for backoff := time.Second; w.Prepare != nil; backoff = min(backoff*2, time.Minute) {
		after, err := w.Prepare(ctx)
		if err == nil {
			w.StartAfter, w.Prepare = after, nil
			w.Log.Info("store answers; sink starts", "after_seq", after)
			break
		}
		w.errs.Add(1)
		w.Log.Warn("store still unreachable", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	w.stored.Store(w.StartAfter)
	w.expect, w.ahead = w.StartAfter+1, map[uint64]journal.Record{}
	in := make(chan jetstream.Msg, 4096)
	cc, err := w.Consumer.Consume(func(m jetstream.Msg) {
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(1024), jetstream.PullPriorityGroup(natsbus.PriorityGroup), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			w.Log.Debug("consume", "err", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("sink %s: consume: %w", w.Sink.Name(), err)
	}
	defer cc.Stop()
	var b batch
	var timer <-chan time.Time
	quiet := true // no flush within the last interval: the next change goes out at once
	var lastFlush time.Time
	keepAlive := time.NewTicker(5 * time.Second) // well within the 20 s ack wait
	defer keepAlive.Stop()
	gapCheck := time.NewTicker(time.Second)
	defer gapCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-keepAlive.C:
			// Held messages must not be redelivered while they wait behind a gap.
			for _, h := range w.held {
				_ = h.msg.InProgress()
			}
		case <-gapCheck.C:
			if _, since, gap := w.Gap(); gap && w.Resync != nil && time.Since(since) > 2*time.Second {
				w.resync(ctx, &b)
				if len(b.recs) > 0 && !w.flush(ctx, &b) {
					return nil
				}
			}
			w.watchGap(ctx)
		case m := <-in:
			w.add(&b, m)
			// Take whatever else is already queued before deciding.
			for drained := false; !drained && b.bytes < w.MaxBytes; {
				select {
				case m := <-in:
					w.add(&b, m)
				default:
					drained = true
				}
			}
			if len(b.recs) == 0 {
				w.ackStored()
				continue
			}
			if b.bytes >= w.MaxBytes || due(quiet, lastFlush, time.Now(), w.Interval, w.Budget) == 0 {
				timer = nil
				if !w.flush(ctx, &b) {
					return nil
				}
				lastFlush, quiet = time.Now(), false
				w.Budget.Take(lastFlush)
				w.reqs.put(lastFlush, lastFlush.Add(w.Budget.Delay(lastFlush)))
				timer = time.After(w.Interval) // the trailing edge: see what came meanwhile
			} else if timer == nil {
				timer = time.After(due(quiet, lastFlush, time.Now(), w.Interval, w.Budget))
			}
		case <-timer:
			timer = nil
			if len(b.recs) == 0 {
				quiet = true
				continue
			}
			if d := due(false, lastFlush, time.Now(), w.Interval, w.Budget); d > 0 {
				timer = time.After(d) // the budget holds the batch a little longer
				continue
			}
			if !w.flush(ctx, &b) {
				return nil
			}
			lastFlush = time.Now()
			w.Budget.Take(lastFlush)
			w.reqs.put(lastFlush, lastFlush.Add(w.Budget.Delay(lastFlush)))
			timer = time.After(w.Interval) // stay on the trailing edge while changes continue
		}
	}
}

// due is how long a waiting batch waits before its flush (0: now). The first change after
// a quiet spell goes at once (the leading edge) while the budget has a token; while
// changes keep coming, flushes are at least interval apart and spaced by the budget.
func due(quiet bool, last, now time.Time, interval time.Duration, budget *cost.Bucket) time.Duration {
	var d time.Duration
	if !quiet {
		d = last.Add(interval).Sub(now)
	}
	return max(d, budget.Delay(now), 0)
}

// add takes a message's records: those already stored are dropped, the next ones in
// sequence join the batch, and those past a gap wait in w.ahead.
func (w *Worker) add(b *batch, m jetstream.Msg) {
	recs, err := journal.DecodeAll(m.Data())
	if err != nil {
		// A damaged message cannot be stored; the journal on the host still has the
		// records and the gap it leaves makes the publisher send them again.
		w.errs.Add(1)
		w.Log.Error("dropping undecodable message", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	var maxSeq uint64
	for _, r := range recs {
		maxSeq = max(maxSeq, r.Seq)
		if r.Seq < w.expect {
			continue
		}
		if _, dup := w.ahead[r.Seq]; !dup {
			w.ahead[r.Seq] = r
			w.pending.Add(1)
		}
	}
	w.held = append(w.held, heldMsg{msg: m, maxSeq: maxSeq})
	w.advance(b)
	if len(w.ahead) > 0 {
		if w.gapSince.Load() == 0 {
			w.gapSince.Store(time.Now().UnixNano())
		}
	} else {
		w.gapSince.Store(0)
		w.gapClosed()
	}
}

// resync moves past a gap that the store shows is already filled.
func (w *Worker) resync(ctx context.Context, b *batch) {
	if len(b.recs) > 0 {
		return // what the batch holds goes first
	}
	seq, err := w.Resync(ctx)
	if err != nil || seq < w.expect {
		return
	}
	w.Log.Info("records behind the gap were stored by another worker; moving on", "stored_seq", seq)
	for s := range w.ahead {
		if s <= seq {
			delete(w.ahead, s)
			w.pending.Add(-1)
		}
	}
	w.stored.Store(seq)
	w.known.Store(true)
	w.expect = seq + 1
	w.advance(b)
	if len(w.ahead) == 0 {
		w.gapSince.Store(0)
		w.gapClosed()
	}
	w.ackStored()
}

// advance moves the records that are next in sequence from w.ahead into the batch.
func (w *Worker) advance(b *batch) {
	for {
		r, ok := w.ahead[w.expect]
		if !ok {
			return
		}
		delete(w.ahead, w.expect)
		w.expect++
		b.recs = append(b.recs, r)
		b.bytes += len(r.Data)
	}
}

// flush writes the batch with retries until it succeeds or ctx ends, then acks the
// messages it completes. It returns false when ctx ended first (nothing is acked then).
func (w *Worker) flush(ctx context.Context, b *batch) bool {
	backoff := 200 * time.Millisecond
	for {
		err := w.Sink.Write(ctx, b.recs)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		w.errs.Add(1)
		level := slog.LevelWarn
		if errors.Is(err, ErrPermanent) {
			level = slog.LevelError
		}
		w.Log.Log(ctx, level, "sink write failed; will retry", "records", len(b.recs), "first_seq", b.recs[0].Seq, "err", err, "retry_in", backoff)
		for _, h := range w.held {
			_ = h.msg.InProgress()
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	w.stored.Store(b.recs[len(b.recs)-1].Seq)
	w.known.Store(true)
	w.lastFlush.Store(time.Now().UnixNano())
	w.pending.Add(-int64(len(b.recs)))
	*b = batch{}
	w.ackStored()
	return true
}

// ackStored acknowledges the held messages whose records are all stored. A lost ack only
// means a redelivery, whose records are then dropped as stored.
func (w *Worker) ackStored() {
	stored := w.stored.Load()
	kept := w.held[:0]
	for _, h := range w.held {
		if h.maxSeq <= stored {
			if err := h.msg.Ack(); err != nil {
				w.Log.Debug("ack failed", "err", err)
			}
			continue
		}
		kept = append(kept, h)
	}
	clear(w.held[len(kept):])
	w.held = kept
}

// Drain waits until the sink has stored every record up to seq or timeout passes. The
// daemon calls it on shutdown after the publisher has caught up.
func (w *Worker) Drain(seq uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if w.stored.Load() >= seq {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w.stored.Load() >= seq
}
