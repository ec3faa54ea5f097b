package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/journal"
)

// Publisher moves records from the journal into the host's stream. Its cursor (the next
// sequence number to publish) advances only on the server's PubAck.
type Publisher struct {
	J         *journal.Journal
	JS        jetstream.JetStream
	NC        *nats.Conn
	Host      string
	CursorDir string
	Log       *slog.Logger

	// StartAt, when below the saved cursor, makes the publisher begin there: the sinks
	// in this process have stored less than NATS acknowledged (an embedded server may
	// lose acknowledged messages in a crash), so those records are sent again.
	StartAt uint64

	next   atomic.Uint64
	errors atomic.Uint64
	rewind atomic.Uint64 // a sequence number to send again from, 0 if none
	gen    uint64        // bumped by every rewind, part of message ids
}

// Rewind asks the publisher to send again from seq (a sink waits for it). The messages
// get new ids, so the server does not drop them as duplicates of ones it lost.
func (p *Publisher) Rewind(seq uint64) { p.rewind.Store(seq) }

// CursorName is the file name (without suffix) of the publisher's cursor.
const CursorName = "publish"

// Next is the sequence number of the next record to publish: everything below is in NATS.
func (p *Publisher) Next() uint64 { return p.next.Load() }

// Errors counts failed publish attempts.
func (p *Publisher) Errors() uint64 { return p.errors.Load() }

// maxInFlight is how many messages may await their PubAck at once: enough to keep the
// server busy while the next batch is read and encoded, few enough to re-send cheaply.
const maxInFlight = 8

type inFlight struct {
	fut  jetstream.PubAckFuture
	next uint64 // the cursor once this message is acknowledged
	done bool
	err  error
}

// settle reads the future's outcome once (its channels deliver a single value), waiting
// for it when wait is set. It returns false when the outcome is not known yet.
func (f *inFlight) settle(ctx context.Context, wait bool) bool {
	if f.done {
		return true
	}
	if !wait {
		select {
		case <-f.fut.Ok():
			f.done = true
		case err := <-f.fut.Err():
			f.done, f.err = true, err
		default:
		}
		return f.done
	}
	select {
	case <-f.fut.Ok():
		f.done = true
	case err := <-f.fut.Err():
		f.done, f.err = true, err
	case <-ctx.Done():
	case <-time.After(15 * time.Second): // the publish timeout fires before this
		f.done, f.err = true, errors.New("no acknowledgement")
	}
	return f.done
}

// Run publishes until ctx ends. It returns nil on cancellation. Messages are published
// asynchronously with a small window; the cursor advances strictly in order, and after
// any failure everything from the first unacknowledged record is sent again (the
// server drops what it already has by message id).
func (p *Publisher) Run(ctx context.Context) error {
	start, err := journal.ReadCursor(p.CursorDir, CursorName)
	if err != nil {
		return err
	}
	if p.StartAt > 0 && p.StartAt < start {
		p.Log.Info("sending again what the sinks have not stored", "from_seq", p.StartAt, "cursor", start)
		start, p.gen = p.StartAt, uint64(time.Now().UnixNano())
	}
	// A journal that begins above the cursor (a rebuilt host) starts where it begins.
	start = max(start, p.firstSeq())
	p.next.Store(start)
	r := p.J.NewReader(start)
	defer func() { r.Close() }()
	saved := start
	backoff := 100 * time.Millisecond
	var window []*inFlight
	// expect chains each message to the previous one (the server refuses a message whose
	// predecessor is not the stream's last), so the stream never holds a later batch
	// without the earlier ones: sinks may then treat it as gap-free. After a start or a
	// failure the first message goes unchained, from the cursor, which is never past
	// what the stream holds.
	expect := ""
	cursorFailing := false
	lastFailure, lastSaid := "", time.Time{}
	for {
		// Settle what has been acknowledged, in order; wait only when the window is full.
		var failure error
		for len(window) > 0 && window[0].settle(ctx, len(window) >= maxInFlight) {
			if window[0].err != nil {
				failure = window[0].err
				break
			}
			p.next.Store(window[0].next)
			window = window[1:]
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return nil
		}
		if seq := p.rewind.Swap(0); seq > 0 && failure == nil {
			seq = max(seq, p.firstSeq())
			p.Log.Warn("a sink waits for records NATS no longer has; sending them again", "from_seq", seq)
			p.gen = uint64(time.Now().UnixNano())
			window, expect = nil, ""
			p.next.Store(min(p.next.Load(), seq))
			r.Close()
			r = p.J.NewReader(seq)
			continue
		}
		if failure != nil {
			p.errors.Add(1)
			// A full stream during a long sink outage fails every few seconds: the same
			// error is said once a minute.
			if msg := failure.Error(); msg != lastFailure || time.Since(lastSaid) > time.Minute {
				p.Log.Warn("publish failed; journal keeps the records", "from_seq", p.next.Load(), "err", failure, "retry_in", backoff)
				lastFailure, lastSaid = msg, time.Now()
			}
			window, expect = nil, ""
			r.Close()
			r = p.J.NewReader(p.next.Load())
			wait := backoff
			if streamFull(failure) {
				// The server is up and sinks are taking messages out: try again soon
				// rather than backing off as from an outage.
				wait = streamFullRetry
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait + rand.N(wait/2)):
			}
			if wait == backoff {
				backoff = min(backoff*2, 5*time.Second)
			}
			continue
		}
		if p.next.Load()-saved > 10000 || (len(window) == 0 && saved != p.next.Load()) {
			if err := journal.WriteCursor(p.CursorDir, CursorName, p.next.Load()); err != nil {
				// A full disk: the cursor only saves re-sending after a restart, and the
				// server drops what it already has, so publishing goes on.
				if !cursorFailing {
					p.Log.Warn("cannot save the publish cursor; publishing goes on", "err", err)
				}
				cursorFailing = true
			} else {
				cursorFailing = false
			}
			saved = p.next.Load()
		}
		changed := p.J.Changed()
		limit := max(int(p.NC.MaxPayload())-4096, 64<<10)
		recs, err := r.Read(limit)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if len(recs) == 0 {
			if len(window) > 0 {
				window[0].settle(ctx, true) // nothing to send: wait for the oldest ack
				continue
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			case <-time.After(time.Second):
			}
			continue
		}
		for _, batch := range split(recs, limit) {
			first, last := batch[0].Seq, batch[len(batch)-1].Seq
			msg := &nats.Msg{Subject: Subject(p.Host), Data: journal.EncodeAll(batch)}
			id := MsgID(p.Host, first, last)
			if p.gen > 0 {
				id = fmt.Sprintf("%s-r%d", id, p.gen)
			}
			opts := []jetstream.PublishOpt{jetstream.WithMsgID(id)}
			if expect != "" {
				opts = append(opts, jetstream.WithExpectLastMsgID(expect))
			}
			expect = id
			fut, err := p.JS.PublishMsgAsync(msg, opts...)
			if err != nil {
				// Not even queued (e.g. too many pending while disconnected): resend
				// from the first unacknowledged record after a pause.
				window = append(window, &inFlight{next: last + 1, done: true, err: err})
				break
			}
			window = append(window, &inFlight{fut: fut, next: last + 1})
		}
	}
}

// streamFullRetry is the pause before publishing again into a stream that was full.
const streamFullRetry = 200 * time.Millisecond

// streamFull tells a stream at its size cap (it refuses new messages until sinks
// acknowledge older ones) from other publish failures.
func streamFull(err error) bool {
	return strings.Contains(err.Error(), "maximum bytes exceeded")
}

func (p *Publisher) firstSeq() uint64 {
	return p.J.FirstSeq()
}

// split cuts recs into batches of at most limit encoded bytes (a record alone may exceed
// it only if producers ignored MaxData, which the journal would have refused earlier).
func split(recs []journal.Record, limit int) [][]journal.Record {
	var out [][]journal.Record
	start, size := 0, 0
	for i := range recs {
		n := recs[i].EncodedSize()
		if i > start && size+n > limit {
			out = append(out, recs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, recs[start:])
}
