// Package cost holds the price tables of object-store providers (the one place they
// live) and the request budget that spaces a sink's uploads: a token bucket that lets
// bursts pass and coalesces sustained activity so that a month never exceeds the budget.
package cost

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Month is the month budgets and projections are counted in (30 days).
const Month = 30 * 24 * time.Hour

// Pricing is what a provider charges, in US dollars.
type Pricing struct {
	Name       string  // preset name, or "custom"
	PutPer1000 float64 // PUT, POST, LIST (class A) requests
	GetPer1000 float64 // GET, HEAD (class B) requests
	GBMonth    float64 // storage per GB-month
}

// presets are list prices (standard storage class, first tier) as the providers publish
// them; Hetzner's object storage charges no requests and a flat price per TB.
var presets = map[string]Pricing{
	"aws":     {Name: "aws", PutPer1000: 0.005, GetPer1000: 0.0004, GBMonth: 0.023},
	"r2":      {Name: "r2", PutPer1000: 0.0045, GetPer1000: 0.00036, GBMonth: 0.015},
	"b2":      {Name: "b2", PutPer1000: 0, GetPer1000: 0.0004, GBMonth: 0.006},
	"wasabi":  {Name: "wasabi", PutPer1000: 0, GetPer1000: 0, GBMonth: 0.0069},
	"hetzner": {Name: "hetzner", PutPer1000: 0, GetPer1000: 0, GBMonth: 0.0049},
}

// Preset returns the named price table.
func Preset(name string) (Pricing, bool) {
	p, ok := presets[name]
	return p, ok
}

// Presets lists the preset names.
func Presets() []string {
	out := make([]string, 0, len(presets))
	for n := range presets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Budget bounds what a target's requests may cost in a month. Zero fields bound nothing.
type Budget struct {
	RequestsPerMonth int64   // key requests_per_month
	MonthlyUSD       float64 // key monthly_usd: for requests, at Pricing
	Pricing          Pricing // key pricing
}

// DefaultMonthlyUSD is the default request budget: a host busy all day costs at most
// this much a month in requests (at the target's pricing, AWS by default).
const DefaultMonthlyUSD = 1.0

// Default is the budget of a target that sets none.
func Default() Budget {
	p, _ := Preset("aws")
	return Budget{MonthlyUSD: DefaultMonthlyUSD, Pricing: p}
}

// PutsPerMonth is the number of PUTs the budget allows in a month; +Inf when nothing
// bounds it (no budget, or a provider that does not charge uploads and no
// requests_per_month).
func (b Budget) PutsPerMonth() float64 {
	n := math.Inf(1)
	if b.RequestsPerMonth > 0 {
		n = float64(b.RequestsPerMonth)
	}
	if b.MonthlyUSD > 0 && b.Pricing.PutPer1000 > 0 {
		n = min(n, b.MonthlyUSD/b.Pricing.PutPer1000*1000)
	}
	return n
}

// String describes the budget for messages.
func (b Budget) String() string {
	n := b.PutsPerMonth()
	if math.IsInf(n, 1) {
		return fmt.Sprintf("no request budget (pricing %s)", b.Pricing.Name)
	}
	return fmt.Sprintf("%.0f PUTs a month (pricing %s)", n, b.Pricing.Name)
}

// Bucket is a token bucket of flushes. Each flush takes a token (the balance may go
// below zero when a flush could not wait, e.g. a batch that filled up); tokens come back
// at a steady rate up to a burst. Over any 30 days it grants at most burst + rate·Month,
// which NewBucket makes the budget. A nil *Bucket grants everything.
type Bucket struct {
	burst  float64
	rate   float64 // tokens per second
	tokens float64
	last   time.Time
}

// NewBucket spaces flushes so that, with reserve other PUTs a month (manifests), the month
// stays within puts; nil when puts is unbounded. It starts full at now.
func NewBucket(puts, reserve float64, now time.Time) *Bucket {
	if math.IsInf(puts, 1) || math.IsNaN(puts) {
		return nil
	}
	// Manifests come out of the same budget, but never more than half of it: a short
	// manifest_interval must not leave segments a token a month (it is logged instead).
	avail := max(puts-min(reserve, puts/2), 2)
	burst := max(1, math.Floor(avail/100))
	return &Bucket{burst: burst, rate: (avail - burst) / Month.Seconds(), tokens: burst, last: now}
}

func (b *Bucket) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// Delay is how long from now until a flush may go (0: at once).
func (b *Bucket) Delay(now time.Time) time.Duration {
	if b == nil {
		return 0
	}
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// Take records a flush at now.
func (b *Bucket) Take(now time.Time) {
	if b == nil {
		return
	}
	b.refill(now)
	b.tokens--
}

// Spacing is the interval between flushes that the budget sustains once the burst is
// spent (0: unbounded): the loss window it allows under constant activity.
func (b *Bucket) Spacing() time.Duration {
	if b == nil || b.rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / b.rate)
}

// Tokens is the number of flushes that may go at once now.
func (b *Bucket) Tokens(now time.Time) float64 {
	if b == nil {
		return math.Inf(1)
	}
	b.refill(now)
	return b.tokens
}

// Requests is the monthly cost of n PUTs and g GETs at p.
func (p Pricing) Requests(puts, gets float64) float64 {
	return puts/1000*p.PutPer1000 + gets/1000*p.GetPer1000
}

// Storage is the monthly cost of storing bytes at p.
func (p Pricing) Storage(bytes int64) float64 {
	return float64(bytes) / 1e9 * p.GBMonth
}
