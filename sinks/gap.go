package sinks

import (
	"context"
	"time"
)

// gapWatch is the Run goroutine's memory of the current gap: what was said and asked.
type gapWatch struct {
	seq      uint64    // the sequence number waited for
	warned   time.Time // when the wait was last logged
	asked    time.Time // when the host was last asked to send again
	reported bool      // the wait was logged at least once
}

// stuckAfter is how long a gap lasts before the worker logs, at error level and once a
// minute, that it stores nothing more until the missing records arrive.
const stuckAfter = time.Minute

// watchGap logs a lasting gap loudly and asks the host to send the missing records again.
// Without it a sink whose message NATS lost would stop storing for good, in silence.
func (w *Worker) watchGap(ctx context.Context) {
	g := &w.gw
	seq, since, ok := w.Gap()
	if !ok {
		w.gapClosed()
		return
	}
	if g.seq != seq {
		*g = gapWatch{seq: seq}
	}
	waited := time.Since(since)
	if waited < 2*time.Second {
		return
	}
	after := w.ResendAfter
	if after <= 0 {
		after = 10 * time.Second
	}
	switch {
	case waited >= stuckAfter && time.Since(g.warned) >= stuckAfter:
		w.Log.Error("sink stuck on a gap: nothing more is stored until the missing records arrive",
			"missing_seq", seq, "waiting", waited.Round(time.Second), "records_behind", len(w.ahead))
		g.warned, g.reported = time.Now(), true
	case !g.reported:
		w.Log.Warn("records wait behind a gap", "missing_seq", seq, "records_behind", len(w.ahead))
		g.warned, g.reported = time.Now(), true
	}
	if w.Resend == nil || waited < after || time.Since(g.asked) < after {
		return
	}
	g.asked = time.Now()
	if err := w.Resend(ctx, seq); err != nil {
		w.errs.Add(1)
		w.Log.Warn("asking the host to send the missing records again failed", "missing_seq", seq, "err", err)
		return
	}
	w.Log.Warn("asked the host to send the missing records again", "missing_seq", seq)
}

// gapClosed forgets the gap, saying so if it was logged.
func (w *Worker) gapClosed() {
	if w.gw.reported {
		w.Log.Info("gap filled; storing again", "next_seq", w.expect)
	}
	w.gw = gapWatch{}
}
