// Package natsbus carries journal records over NATS JetStream: the embedded server used
// when no external one is configured, the host-scoped stream and consumer names, and the
// publisher that moves records from the journal into the stream.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/journal"
)

// EmbeddedMaxPayload is the largest message the embedded server accepts. Publishers size
// their batches from the connection's own limit, so an external server's smaller default
// works too.
const EmbeddedMaxPayload = 8 << 20

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// Token turns a host name into a string safe in subjects, stream and consumer names, and
// tells every two names apart: letters, digits and '-' stay, every other byte becomes '_'
// and two hex digits ("a.b" is "a_2eb", "a_b" is "a_5fb"). Names of letters, digits and
// '-' alone are what they were before this encoding.
func Token(host string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// legacyToken is the earlier encoding, which gave "a.b" and "a_b" one stream. It names
// sinks in consumer names still (sink names are unique within a host's stream, and a
// changed name would leave an old consumer holding every message), and the stream that
// a host of an earlier version used (see LegacyStreamName).
func legacyToken(s string) string { return unsafeName.ReplaceAllString(s, "_") }

// StreamName is the host's stream. Every host has its own, so hosts never collide.
func StreamName(host string) string { return "MMR_" + Token(host) }

// LegacyStreamName is the stream that versions before the injective Token gave host; it
// differs from StreamName only for names holding characters other than letters, digits
// and '-'.
func LegacyStreamName(host string) string { return "MMR_" + legacyToken(host) }

// Subject is the subject a host's records are published on.
func Subject(host string) string { return "mmr." + Token(host) + ".records" }

// ConsumerName is the durable consumer of one sink (e.g. "s3-default", "git") for a host.
func ConsumerName(host, sink string) string { return Token(host) + "_" + legacyToken(sink) }

// EmbeddedStreamBytes caps the host's stream on the embedded server, which keeps it in
// memory (see InMemory): the journal is the durable copy, and a stream on disk would need
// free space next to it, which a small disk may not have.
const EmbeddedStreamBytes int64 = 48 << 20

// embeddedMaxMemory is the embedded server's memory budget: the stream and some room.
const embeddedMaxMemory = 64 << 20

// StreamOption adjusts the host's stream configuration.
type StreamOption func(*jetstream.StreamConfig)

// InMemory keeps the stream in memory. The journal stays the durable copy: after a
// restart the publisher sends again from what the sinks have stored.
func InMemory() StreamOption {
	return func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }
}

// StartEmbedded starts an in-process JetStream server storing under dir. It listens on no
// port: the daemon connects in-process, so nothing on the host can reach it.
func StartEmbedded(dir string, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName:         "mmreplicate-embedded",
		DontListen:         true,
		JetStream:          true,
		StoreDir:           dir,
		MaxPayload:         EmbeddedMaxPayload,
		NoSigs:             true,
		NoLog:              true,
		SyncInterval:       10 * time.Second, // the journal is the durable copy; see README
		JetStreamMaxMemory: embeddedMaxMemory,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats: not ready after 30s")
	}
	log.Info("embedded nats started", "store_dir", dir)
	return s, nil
}

// Connect opens a connection that keeps reconnecting for ever, so that a NATS outage only
// delays publishing (the journal keeps growing) instead of stopping the daemon.
func Connect(url, creds string, embedded *server.Server, name string, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if embedded != nil {
		opts = append(opts, nats.InProcessServer(embedded))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", redact(url), err)
	}
	return nc, nil
}

// StreamConfig is the host's stream: file storage, an explicit size cap that refuses new
// messages rather than dropping unread ones, and interest retention so that a message is
// gone once every sink has acknowledged it.
func StreamConfig(host string, maxBytes int64, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       StreamName(host),
		Subjects:   []string{Subject(host)},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.InterestPolicy,
		Discard:    jetstream.DiscardNew,
		MaxBytes:   maxBytes,
		Duplicates: 2 * time.Minute,
		Replicas:   max(replicas, 1),
	}
}

// PriorityGroup is the consumers' priority group: with the pinned policy, the server
// delivers a consumer's messages to one worker at a time and moves them to a standby
// worker when the pinned one stops pulling for PinnedTTL. Several `mmreplicate sink`
// processes can thus serve one host without ever interleaving its records.
const PriorityGroup = "sinks"

// ConsumerConfig is a sink's durable pull consumer. AckWait covers an upload with retries;
// workers also send in-progress acks while they retry or wait.
func ConsumerConfig(host, sink string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(host, sink),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        20 * time.Second,
		MaxAckPending:  20000,
		MaxDeliver:     -1,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      15 * time.Second,
	}
}

// Setup creates or updates the host's stream and the durable consumers of sinks, which
// must exist before the first publish: with interest retention a message no consumer is
// interested in is dropped at once.
func Setup(ctx context.Context, js jetstream.JetStream, host string, maxBytes int64, replicas int, sinks []string, opts ...StreamOption) (jetstream.Stream, error) {
	cfg := StreamConfig(host, maxBytes, replicas)
	for _, o := range opts {
		o(&cfg)
	}
	if old, err := js.Stream(ctx, cfg.Name); err == nil && old.CachedInfo().Config.Storage != cfg.Storage {
		// A stream's storage cannot change in place. Its messages are copies of what the
		// journal holds: the publisher sends again what the sinks have not stored.
		if err := js.DeleteStream(ctx, cfg.Name); err != nil {
			return nil, fmt.Errorf("nats: stream %s: replacing its %v storage: %w", cfg.Name, old.CachedInfo().Config.Storage, err)
		}
	}
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", StreamName(host), err)
	}
	for _, s := range sinks {
		if _, err := st.CreateOrUpdateConsumer(ctx, ConsumerConfig(host, s)); err != nil {
			return nil, fmt.Errorf("nats: consumer %s: %w", ConsumerName(host, s), err)
		}
	}
	return st, nil
}

// MsgID is the de-duplication id of a message holding records first..last of host.
// Both ends are in it: a batch re-published after a restart may be cut differently, and an
// id naming only its first record would make the server drop its new records as duplicates.
func MsgID(host string, first, last uint64) string {
	return fmt.Sprintf("%s-%d-%d", host, first, last)
}

// redact keeps credentials out of logs.
func redact(url string) string {
	if i := strings.Index(url, "@"); i >= 0 {
		if j := strings.Index(url, "://"); j >= 0 && j < i {
			return url[:j+3] + "***" + url[i:]
		}
	}
	return url
}

// Replicas is how many copies the stream keeps: three on a cluster of three or more
// servers, so that losing one loses nothing; one on a single server.
func Replicas(nc *nats.Conn) int {
	if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// SetupWithRetry is Setup, waiting (until ctx ends) for a server that is not up yet.
func SetupWithRetry(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, host string, maxBytes int64, sinks []string, log *slog.Logger, opts ...StreamOption) (jetstream.Stream, error) {
	for {
		// Each attempt gets its own short deadline: on a cluster that is still electing
		// its leaders one request can hang, and a retry then succeeds.
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := Setup(actx, js, host, maxBytes, Replicas(nc), sinks, opts...)
		cancel()
		if err == nil {
			warnLegacy(ctx, js, host, log)
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (is nats.url reachable?)", err)
		}
		log.Warn("nats not ready; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// FirstRecord is the sequence number of the oldest record the host's stream still holds
// (0 when it holds none). A sink with nothing stored yet starts there: the first message
// it is handed may be a newer one while older ones wait for redelivery.
func FirstRecord(ctx context.Context, st jetstream.Stream) (uint64, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("nats: stream info: %w", err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	msg, err := st.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		return 0, fmt.Errorf("nats: first message: %w", err)
	}
	recs, err := journal.DecodeAll(msg.Data)
	if err != nil || len(recs) == 0 {
		return 0, fmt.Errorf("nats: first message: %w", err)
	}
	return recs[0].Seq, nil
}

// warnLegacy says when the stream an earlier version gave host is still there: this
// version publishes to StreamName, and the old stream only takes space (and, in fleet
// mode, feeds sink workers of the earlier version).
func warnLegacy(ctx context.Context, js jetstream.JetStream, host string, log *slog.Logger) {
	legacy := LegacyStreamName(host)
	if legacy == StreamName(host) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, legacy); err == nil {
		log.Warn("the stream an earlier version used for this host is still there; this version uses another: "+
			"delete the old one once every host and sink worker runs this version (records it held and the store lacks are sent again from the journal)",
			"host", host, "old_stream", legacy, "stream", StreamName(host))
	}
}
