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

	"github.com/mmreplicate/mmreplicate/journal"
)

// Worker feeds one Sink from one durable consumer.
type Worker struct {
	Sink     Sink
	Consumer jetstream.Consumer
	Interval time.Duration // flush_interval
	MaxBytes int           // flush early once a batch holds this many bytes
	Log      *slog.Logger
	// StartAfter: records at or below this sequence number are already stored (found in
	// the store at start-up) and are acknowledged without being written again.
	StartAfter uint64

	stored    atomic.Uint64 // highest sequence number stored
	lastFlush atomic.Int64  // unix nanos of the last successful write
	errs      atomic.Uint64
	pending   atomic.Int64 // records fetched but not yet stored
	oldest    atomic.Int64 // capture time (unix nanos) of the oldest pending record, 0 if none
	mu        sync.Mutex
	lastKey   string
}

// Stats is a snapshot of a worker for status and metrics.
type Stats struct {
	Sink          string
	StoredSeq     uint64
	LastSuccess   time.Time
	Errors        uint64
	Pending       int64
	OldestPending time.Time
}

// Stats returns the worker's current figures.
func (w *Worker) Stats() Stats {
	s := Stats{Sink: w.Sink.Name(), StoredSeq: w.stored.Load(), Errors: w.errs.Load(), Pending: w.pending.Load()}
	if t := w.lastFlush.Load(); t > 0 {
		s.LastSuccess = time.Unix(0, t)
	}
	if t := w.oldest.Load(); t > 0 {
		s.OldestPending = time.Unix(0, t)
	}
	return s
}

// StoredSeq is the highest sequence number the sink has stored.
func (w *Worker) StoredSeq() uint64 { return w.stored.Load() }

type batch struct {
	msgs  []jetstream.Msg
	recs  []journal.Record
	bytes int
}

// Run consumes until ctx ends, then stores what it holds (within drainTimeout) and returns.
func (w *Worker) Run(ctx context.Context) error {
	w.stored.Store(w.StartAfter)
	in := make(chan jetstream.Msg, 4096)
	cc, err := w.Consumer.Consume(func(m jetstream.Msg) { in <- m },
		jetstream.PullMaxMessages(1024), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
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
	for {
		select {
		case <-ctx.Done():
			return nil
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
			if len(b.msgs) == 0 {
				continue
			}
			if quiet || b.bytes >= w.MaxBytes {
				timer = nil
				if !w.flush(ctx, &b) {
					return nil
				}
				lastFlush, quiet = time.Now(), false
			} else if timer == nil {
				timer = time.After(time.Until(lastFlush.Add(w.Interval)))
			}
		case <-timer:
			timer = nil
			if len(b.msgs) == 0 {
				quiet = true
				continue
			}
			if !w.flush(ctx, &b) {
				return nil
			}
			lastFlush = time.Now()
			timer = time.After(w.Interval) // stay on the trailing edge while changes continue
		}
	}
}

// add decodes a message into the batch, dropping records already stored.
func (w *Worker) add(b *batch, m jetstream.Msg) {
	recs, err := journal.DecodeAll(m.Data())
	if err != nil {
		// A damaged message cannot be stored; the journal on the host still has the
		// records, but this worker cannot ask for them. Say so loudly and move on.
		w.errs.Add(1)
		w.Log.Error("dropping undecodable message", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	b.msgs = append(b.msgs, m)
	last := w.stored.Load()
	if n := len(b.recs); n > 0 {
		last = max(last, b.recs[n-1].Seq)
	}
	for _, r := range recs {
		if r.Seq <= last {
			continue
		}
		last = r.Seq
		if w.oldest.Load() == 0 {
			w.oldest.Store(r.Time)
		}
		b.recs = append(b.recs, r)
		b.bytes += len(r.Data)
		w.pending.Add(1)
	}
}

// flush writes the batch with retries until it succeeds or ctx ends, then acks its
// messages. It returns false when ctx ended first (nothing is acked then).
func (w *Worker) flush(ctx context.Context, b *batch) bool {
	backoff := 200 * time.Millisecond
	for len(b.recs) > 0 {
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
		for _, m := range b.msgs {
			_ = m.InProgress()
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	if n := len(b.recs); n > 0 {
		w.stored.Store(b.recs[n-1].Seq)
		w.lastFlush.Store(time.Now().UnixNano())
	}
	for _, m := range b.msgs {
		if err := m.Ack(); err != nil {
			// The batch is stored; a lost ack only means a redelivery that is dropped
			// as already stored.
			w.Log.Debug("ack failed", "err", err)
		}
	}
	w.pending.Add(-int64(len(b.recs)))
	w.oldest.Store(0)
	*b = batch{}
	return true
}

// Drain stores what the consumer still has, waiting until the sink has stored every
// record up to seq or timeout passes. The daemon calls it on shutdown after the
// publisher has caught up.
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
