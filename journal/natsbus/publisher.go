package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

	next    atomic.Uint64
	errors  atomic.Uint64
	lastErr atomic.Value // string
}

// CursorName is the file name (without suffix) of the publisher's cursor.
const CursorName = "publish"

// Next is the sequence number of the next record to publish: everything below is in NATS.
func (p *Publisher) Next() uint64 { return p.next.Load() }

// Errors counts failed publish attempts.
func (p *Publisher) Errors() uint64 { return p.errors.Load() }

// Run publishes until ctx ends. It returns nil on cancellation.
func (p *Publisher) Run(ctx context.Context) error {
	start, err := journal.ReadCursor(p.CursorDir, CursorName)
	if err != nil {
		return err
	}
	// A journal that begins above the cursor (a rebuilt host) starts where it begins.
	start = max(start, p.firstSeq())
	p.next.Store(start)
	r := p.J.NewReader(start)
	defer r.Close()
	var saved uint64 = start
	backoff := 100 * time.Millisecond
	for {
		changed := p.J.Changed()
		max := int(p.NC.MaxPayload()) - 4096
		if max < 64<<10 {
			max = 64 << 10
		}
		recs, err := r.Read(max)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if len(recs) == 0 {
			if saved != p.next.Load() {
				if err := journal.WriteCursor(p.CursorDir, CursorName, p.next.Load()); err != nil {
					return err
				}
				saved = p.next.Load()
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			case <-time.After(time.Second):
			}
			continue
		}
		for _, batch := range split(recs, max) {
			for {
				err := p.publish(ctx, batch)
				if err == nil {
					backoff = 100 * time.Millisecond
					break
				}
				if ctx.Err() != nil {
					return nil
				}
				p.errors.Add(1)
				p.Log.Warn("publish failed; journal keeps the records", "first_seq", batch[0].Seq, "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff + rand.N(backoff/2)):
				}
				backoff = min(backoff*2, 5*time.Second)
			}
			p.next.Store(batch[len(batch)-1].Seq + 1)
		}
		// Cursor writes are cheap but not free; write when caught up or every batch of a
		// long backlog, whichever comes first.
		if p.next.Load()-saved > 10000 {
			if err := journal.WriteCursor(p.CursorDir, CursorName, p.next.Load()); err != nil {
				return err
			}
			saved = p.next.Load()
		}
	}
}

func (p *Publisher) firstSeq() uint64 {
	return p.J.FirstSeq()
}

func (p *Publisher) publish(ctx context.Context, batch []journal.Record) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	first, last := batch[0].Seq, batch[len(batch)-1].Seq
	_, err := p.JS.Publish(ctx, Subject(p.Host), journal.EncodeAll(batch), jetstream.WithMsgID(MsgID(p.Host, first, last)))
	if err != nil {
		return fmt.Errorf("records %d-%d: %w", first, last, err)
	}
	return nil
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
