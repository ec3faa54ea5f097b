package app

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// fleetLink is a `run --no-sinks` host's end of fleet mode. It answers the resend
// requests of sink workers elsewhere (the publisher sends again from its journal what NATS
// lost), keeps what each target reports as stored, and says up to where the journal may
// be released: only records that every target of the host has stored. A target that has
// not reported (its worker is down, or has not started) holds the journal back.
type fleetLink struct {
	host  string
	pub   *natsbus.Publisher
	j     *journal.Journal
	log   *slog.Logger
	sinks []string // the sink names of the host's targets ("s3-NAME", "git")
	// tailPatience and tailEvery: see tailLoop (fields so that tests can shorten them).
	tailPatience, tailEvery time.Duration

	mu         sync.Mutex
	stored     map[string]uint64    // highest stored sequence number, by sink
	moved      map[string]time.Time // when a sink's stored number last moved
	rewoundSeq uint64               // the last resend made, and when
	rewoundAt  time.Time
	started    time.Time
	heldWarned time.Time     // when warnHeld last spoke
	heldAfter  time.Duration // see warnHeld (a field so that tests can shorten it)
}

// tailPatience is how long a target may stay behind what was published, while its
// consumer has nothing left to deliver, before the publisher sends the rest again: the
// stream lost the newest messages, and no later message shows the workers a gap.
const tailPatience = 30 * time.Second

func newFleetLink(host string, pub *natsbus.Publisher, j *journal.Journal, sinks []string, log *slog.Logger) *fleetLink {
	return &fleetLink{host: host, pub: pub, j: j, sinks: sinks, log: log.With("component", "fleet"),
		stored: map[string]uint64{}, moved: map[string]time.Time{}, tailPatience: tailPatience, tailEvery: 5 * time.Second,
		started: time.Now(), heldAfter: heldAfter}
}

// seed records what the host itself found in a target's store at start.
func (f *fleetLink) seed(sink string, seq uint64) {
	f.note(natsbus.StoredReport{Sink: sink, Seq: seq})
}

// start subscribes to the host's fleet subjects and runs the tail check until ctx ends.
func (f *fleetLink) start(ctx context.Context, nc *nats.Conn, stream jetstream.Stream) error {
	if _, err := nc.Subscribe(natsbus.ResendSubject(f.host), f.onResend); err != nil {
		return err
	}
	if _, err := nc.Subscribe(natsbus.StoredSubject(f.host), f.onStored); err != nil {
		return err
	}
	go f.tailLoop(ctx, stream)
	return nil
}

func (f *fleetLink) onResend(m *nats.Msg) {
	reply := func(s string) { _ = m.Respond([]byte(s)) }
	seq, err := natsbus.ParseResend(m.Data)
	if err != nil {
		f.log.Warn("ignoring a bad resend request", "err", err)
		reply("error: " + err.Error())
		return
	}
	if err := f.resend(seq, "a sink worker waits for them behind a gap"); err != nil {
		reply("error: " + err.Error())
		return
	}
	reply("ok")
}

// resend makes the publisher send again from seq, unless a resend from at or before seq
// is under way (several workers, or one asking again, must not restart it for ever). It
// fails when the journal no longer holds seq.
func (f *fleetLink) resend(seq uint64, why string) error {
	if first := f.j.FirstSeq(); seq < first {
		f.log.Error("records a target lacks are no longer in the journal: they cannot be sent again ("+why+")", "from_seq", seq, "journal_first_seq", first)
		return fmt.Errorf("the journal no longer holds records before %d", first)
	}
	if seq >= f.pub.Next() {
		return nil // not published yet: it goes out anyway
	}
	f.mu.Lock()
	if f.rewoundSeq != 0 && f.rewoundSeq <= seq && time.Since(f.rewoundAt) < gapPatience {
		f.mu.Unlock()
		return nil
	}
	f.rewoundSeq, f.rewoundAt = seq, time.Now()
	f.mu.Unlock()
	f.log.Warn("sending records again from the journal: "+why, "from_seq", seq, "published_below", f.pub.Next())
	f.pub.Rewind(seq)
	return nil
}

func (f *fleetLink) onStored(m *nats.Msg) {
	r, err := natsbus.ParseStored(m.Data)
	if err != nil {
		f.log.Debug("ignoring a bad stored report", "err", err)
		return
	}
	f.note(r)
}

func (f *fleetLink) note(r natsbus.StoredReport) {
	known := false
	for _, s := range f.sinks {
		known = known || s == r.Sink
	}
	if !known {
		return // a sink of another configuration: it does not hold this host's journal
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Any worker's report is a fact about the target's store, and a standby worker
	// reports less than the busy one: the highest report counts.
	if old, ok := f.stored[r.Sink]; !ok || r.Seq > old {
		f.stored[r.Sink] = r.Seq
		f.moved[r.Sink] = time.Now()
	}
}

// releasable is the sequence number below which every target has stored every record.
func (f *fleetLink) releasable() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	up := uint64(math.MaxUint64)
	for _, s := range f.sinks {
		v, ok := f.stored[s]
		if !ok {
			return 0
		}
		up = min(up, v+1)
	}
	return up
}

// tailLoop finds a target that stays behind what was published while its consumer has
// nothing more to deliver: the stream lost the newest messages (a worker sees a gap only
// when a later message arrives), and the publisher sends them again.
func (f *fleetLink) tailLoop(ctx context.Context, stream jetstream.Stream) {
	t := time.NewTicker(f.tailEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.warnHeld()
		for _, s := range f.sinks {
			f.mu.Lock()
			v, ok := f.stored[s]
			still := time.Since(f.moved[s])
			f.mu.Unlock()
			if !ok || v+1 >= f.pub.Next() || still < f.tailPatience {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			info, err := natsbus.ConsumerInfo(cctx, stream, f.host, s)
			cancel()
			if err != nil {
				f.log.Debug("consumer info", "sink", s, "err", err)
				continue
			}
			if info.NumPending == 0 && info.NumAckPending == 0 {
				_ = f.resend(v+1, "target "+s+" stays behind and its consumer has nothing left to deliver")
			}
		}
	}
}

// heldAfter is how long a target may leave published records unstored before the host
// says, once per heldAfter, that its journal is kept for it.
const heldAfter = 10 * time.Minute

// warnHeld says which targets keep the journal from being released: their sink workers
// have not reported storing what was published for heldAfter (down, or never started).
func (f *fleetLink) warnHeld() {
	if time.Since(f.heldWarned) < f.heldAfter {
		return
	}
	next := f.pub.Next()
	f.mu.Lock()
	var held []string
	for _, s := range f.sinks {
		v, ok := f.stored[s]
		since := f.started
		if ok {
			since = f.moved[s]
		}
		if (!ok || v+1 < next) && time.Since(since) >= f.heldAfter {
			held = append(held, s)
		}
	}
	f.mu.Unlock()
	if len(held) > 0 {
		f.heldWarned = time.Now()
		f.log.Warn("the journal is kept for targets whose sink workers have not reported storing the published records for a while; are `mmreplicate sink` workers running for this host?",
			"targets", held, "published_below", next, "journal_first_seq", f.j.FirstSeq(), "journal_bytes", f.j.Size())
	}
}
