package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// In fleet mode (`run --no-sinks` on the hosts, `mmreplicate sink` elsewhere) the sink
// workers and a host's publisher talk over two core NATS subjects of the host, beside its
// stream's subject (they are not stored in the stream):
//
//   - ResendSubject: a worker whose records wait behind a gap asks the publisher to send
//     them again from the journal (NATS lost the message: deleted, or a server lost it);
//   - StoredSubject: workers report, every few seconds, the highest sequence number their
//     target stores, so that the host releases its journal only for what every target has.

// ResendSubject is where sink workers ask host's publisher to send records again.
func ResendSubject(host string) string { return "mmr." + Token(host) + ".resend" }

// StoredSubject is where sink workers report what their target stores for host.
func StoredSubject(host string) string { return "mmr." + Token(host) + ".stored" }

// StoredReport says that the target of Sink (a consumer's sink name, e.g. "s3-default")
// stores every record of the host up to Seq.
type StoredReport struct {
	Sink string `json:"sink"`
	Seq  uint64 `json:"seq"`
}

// ErrNoPublisher means no publisher of the host answered a resend request: its daemon is
// not running (or cannot reach NATS). The worker asks again later.
var ErrNoPublisher = errors.New("the host's publisher does not answer")

// AskResend asks host's publisher to send again every record from seq. It returns
// ErrNoPublisher when no publisher answers and the publisher's refusal (e.g. the journal
// no longer holds seq) as an error.
func AskResend(nc *nats.Conn, host string, seq uint64, timeout time.Duration) error {
	msg, err := nc.Request(ResendSubject(host), []byte(strconv.FormatUint(seq, 10)), timeout)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
		return fmt.Errorf("resend from %d: %w (is `mmreplicate run` of host %s up?)", seq, ErrNoPublisher, host)
	}
	if err != nil {
		return fmt.Errorf("resend from %d: %w", seq, err)
	}
	if reply := string(msg.Data); reply != "ok" {
		return fmt.Errorf("resend from %d: host %s refused: %s", seq, host, strings.TrimPrefix(reply, "error: "))
	}
	return nil
}

// ParseResend reads a resend request's sequence number.
func ParseResend(data []byte) (uint64, error) {
	seq, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("resend request %q: not a sequence number", truncate(data))
	}
	return seq, nil
}

// ReportStored publishes a StoredReport for host.
func ReportStored(nc *nats.Conn, host string, r StoredReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return nc.Publish(StoredSubject(host), b)
}

// ParseStored reads a StoredReport; anything else on the subject is an error.
func ParseStored(data []byte) (StoredReport, error) {
	var r StoredReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("stored report %q: %w", truncate(data), err)
	}
	if r.Sink == "" {
		return r, fmt.Errorf("stored report %q: no sink name", truncate(data))
	}
	return r, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// ConsumerInfo reads the state of one sink's consumer of host's stream.
func ConsumerInfo(ctx context.Context, st jetstream.Stream, host, sink string) (*jetstream.ConsumerInfo, error) {
	c, err := st.Consumer(ctx, ConsumerName(host, sink))
	if err != nil {
		return nil, fmt.Errorf("nats: consumer %s: %w", ConsumerName(host, sink), err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("nats: consumer %s: %w", ConsumerName(host, sink), err)
	}
	return info, nil
}
