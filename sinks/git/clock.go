package git

import (
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

// clock tracks which boundary the mirror's changes belong to.
type clock struct {
	HasLast  bool   `json:"has_last"`
	Last     int64  `json:"last"`      // newest boundary handled (unix nanos)
	Dirty    bool   `json:"dirty"`     // changes applied since then
	LastTime int64  `json:"last_time"` // capture time of the newest change applied
	FirstSeq uint64 `json:"first_seq"` // first record since the last commit
	LastSeq  uint64 `json:"last_seq"`  // newest record applied
}

// boundaryOf is the first boundary at or after t: the state at that boundary includes a
// change made at t.
func boundaryOf(t int64, interval time.Duration) time.Time {
	tt := time.Unix(0, t).UTC()
	b := tt.Truncate(interval)
	if b.Equal(tt) {
		return b
	}
	return b.Add(interval)
}

// pending is the boundary whose commit will hold the changes applied so far: the boundary
// of the newest change, or the one after the last handled boundary when a record arrived
// late (after its own boundary was already committed).
func (c *clock) pending(interval time.Duration) time.Time {
	b := boundaryOf(c.LastTime, interval)
	if c.HasLast && b.UnixNano() <= c.Last {
		b = time.Unix(0, c.Last).UTC().Add(interval)
	}
	return b
}

// due reports whether the pending boundary must be committed before a record captured at
// t is applied.
func (c *clock) due(t int64, interval time.Duration) (time.Time, bool) {
	if !c.Dirty {
		return time.Time{}, false
	}
	b := c.pending(interval)
	return b, t > b.UnixNano()
}

// note accounts for an applied record. Chunks change no file, so they move no boundary.
func (c *clock) note(r *journal.Record) {
	if r.Op == journal.OpChunk {
		return
	}
	if !c.Dirty {
		c.Dirty, c.FirstSeq = true, r.Seq
	}
	c.LastTime = max(c.LastTime, r.Time)
	c.LastSeq = r.Seq
}

// handled records that the state at b is committed (or was found unchanged).
func (c *clock) handled(b time.Time) {
	c.HasLast, c.Last = true, b.UnixNano()
	c.Dirty, c.FirstSeq = false, 0
}

// late reports whether a record belongs to a boundary already handled.
func (c *clock) late(r *journal.Record) bool {
	return r.Op != journal.OpChunk && c.HasLast && r.Time <= c.Last
}

// segment returns how many of recs can be applied before a boundary commit is due, the
// boundary, and whether one is due. It plays the records through a copy of the clock,
// so the whole segment can be logged ahead in one write.
func (c clock) segment(recs []journal.Record, interval time.Duration) (int, time.Time, bool) {
	for i := range recs {
		if b, ok := c.due(recs[i].Time, interval); ok && recs[i].Op != journal.OpChunk {
			return i, b, true
		}
		c.note(&recs[i])
	}
	return len(recs), time.Time{}, false
}
