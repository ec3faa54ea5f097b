package sinks

import (
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/cost"
)

// The flush rules with a fake clock: the first change after a quiet spell goes at once,
// changes that keep coming wait for the interval, and once the budget's burst is spent
// the budget spaces flushes further; a quiet spell brings the leading edge back.
func TestDueLeadingEdgeAndBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const interval = time.Second
	if d := due(true, time.Time{}, t0, interval, nil); d != 0 {
		t.Fatalf("leading edge without budget waits %v", d)
	}
	if d := due(false, t0, t0.Add(300*time.Millisecond), interval, nil); d != 700*time.Millisecond {
		t.Fatalf("trailing edge waits %v, want 700ms", d)
	}
	bk := cost.NewBucket(10000, 0, t0) // a burst of 100 flushes
	now, last, flushes := t0, time.Time{}, 0
	quiet := true
	// A change every 100 ms for ten minutes; flush whenever due says 0.
	for ; now.Before(t0.Add(10 * time.Minute)); now = now.Add(100 * time.Millisecond) {
		if due(quiet, last, now, interval, bk) == 0 {
			bk.Take(now)
			last, quiet = now, false
			flushes++
		}
	}
	// 100 from the burst at one a second, then a few at the budget's pace.
	if flushes < 100 || flushes > 101+int(10*time.Minute/bk.Spacing()) {
		t.Fatalf("%d flushes in ten busy minutes (spacing %v)", flushes, bk.Spacing())
	}
	if d := due(false, last, now, interval, bk); d <= interval {
		t.Fatalf("with the burst spent a change waits only %v", d)
	}
	// A quiet hour refills the bucket: the next change goes at once.
	now = now.Add(time.Hour)
	if d := due(true, last, now, interval, bk); d != 0 {
		t.Fatalf("after a quiet hour a change waits %v", d)
	}
}
