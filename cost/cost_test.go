package cost

import (
	"math"
	"testing"
	"time"
)

// The default budget keeps a host that flushes whenever it may within $1 a month in
// PUTs at AWS list prices, even when something flushes every second all month.
func TestDefaultBudgetBoundsTheMonth(t *testing.T) {
	b := Default()
	puts := b.PutsPerMonth()
	if puts != 200000 {
		t.Fatalf("default allows %.0f PUTs a month, want 200000 ($1 at $0.005 per 1000)", puts)
	}
	reserve := Month.Seconds() / (10 * time.Minute).Seconds() // manifests
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	bk := NewBucket(puts, reserve, t0)
	granted := 0
	// A change every second for 30 days: flush whenever the bucket allows.
	for now := t0; now.Before(t0.Add(Month)); now = now.Add(time.Second) {
		if bk.Delay(now) == 0 {
			bk.Take(now)
			granted++
		}
	}
	total := float64(granted) + reserve
	if total > puts {
		t.Fatalf("%d flushes + %.0f manifests = %.0f PUTs, over the budget of %.0f", granted, reserve, total, puts)
	}
	if cost := b.Pricing.Requests(total, 0); cost > DefaultMonthlyUSD {
		t.Fatalf("month costs $%.3f", cost)
	}
	// Not much left on the table either.
	if total < 0.95*puts {
		t.Fatalf("only %.0f of %.0f PUTs used by a host busy all month", total, puts)
	}
	if s := bk.Spacing(); s < 10*time.Second || s > 20*time.Second {
		t.Fatalf("sustained spacing %v", s)
	}
}

// Bursts pass at once; once spent, flushes are spaced by the rate; a quiet spell refills.
func TestBucketBurstThenSpacingThenRefill(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	bk := NewBucket(10000, 0, t0) // burst 100, rate (9900)/month
	now := t0
	for i := range 100 {
		if d := bk.Delay(now); d != 0 {
			t.Fatalf("flush %d of a burst waits %v", i, d)
		}
		bk.Take(now)
	}
	d := bk.Delay(now)
	if want := bk.Spacing(); d < want-time.Second || d > want+time.Second {
		t.Fatalf("after the burst the next flush waits %v, want about %v", d, want)
	}
	now = now.Add(d)
	if bk.Delay(now) != 0 {
		t.Fatal("not granted after waiting the delay it named")
	}
	bk.Take(now)
	now = now.Add(30 * 24 * time.Hour)
	if got := bk.Tokens(now); got != 100 {
		t.Fatalf("after a quiet month %v tokens, want the full burst", got)
	}
	var nilBk *Bucket
	if nilBk.Delay(now) != 0 || !math.IsInf(nilBk.Tokens(now), 1) {
		t.Fatal("a nil bucket must grant everything")
	}
}

// Free-upload providers have no PUT bound unless requests_per_month sets one; the
// smaller of the two bounds wins.
func TestBudgetBounds(t *testing.T) {
	b2, _ := Preset("b2")
	if n := (Budget{MonthlyUSD: 1, Pricing: b2}).PutsPerMonth(); !math.IsInf(n, 1) {
		t.Fatalf("b2 with a dollar budget: %v PUTs, want unbounded", n)
	}
	if NewBucket(math.Inf(1), 0, time.Now()) != nil {
		t.Fatal("unbounded budget made a bucket")
	}
	aws, _ := Preset("aws")
	if n := (Budget{RequestsPerMonth: 1000, MonthlyUSD: 1, Pricing: aws}).PutsPerMonth(); n != 1000 {
		t.Fatalf("got %v, want the smaller bound 1000", n)
	}
	if n := (Budget{RequestsPerMonth: 1000, Pricing: b2}).PutsPerMonth(); n != 1000 {
		t.Fatalf("got %v", n)
	}
}

// A manifest reserve larger than the budget (manifest_interval: 1s) must not starve the
// segments: half the budget stays theirs.
func TestReserveNeverStarvesSegments(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	b := NewBucket(200000, Month.Seconds(), now)
	if sp := b.Spacing(); sp <= 0 || sp > time.Minute {
		t.Fatalf("with a reserve above the budget, flushes are spaced %v (want at most a minute)", sp)
	}
	for b.Tokens(now) >= 1 {
		b.Take(now)
	}
	if d := b.Delay(now); d > time.Minute {
		t.Fatalf("after the burst, the next flush waits %v", d)
	}
}
