package app

import (
	"fmt"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/cost"
)

// BudgetSummary says what a target's request budget allows: the PUTs a month, the
// loss window it sustains under constant activity, and what a month busy all day costs
// in requests at the target's pricing.
func BudgetSummary(t config.S3Target) string {
	manifests := 0.0
	if t.ManifestInterval > 0 {
		manifests = cost.Month.Seconds() / t.ManifestInterval.Seconds()
	}
	bk := cost.NewBucket(t.Budget.PutsPerMonth(), manifests, time.Now())
	window := t.FlushInterval
	if s := bk.Spacing(); s > window {
		window = s
	}
	busy := cost.Month.Seconds()/window.Seconds() + manifests
	return fmt.Sprintf("target %s: %s; loss window %s after a quiet spell, at most %s under constant activity; a month busy all day costs $%.2f in requests",
		t.Name, t.Budget, t.FlushInterval, window.Round(100*time.Millisecond), t.Budget.Pricing.Requests(busy, 0))
}
