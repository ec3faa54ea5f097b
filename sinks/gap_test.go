package sinks

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// TestWorkerAsksForMissingRecords: a message NATS lost leaves a gap that no redelivery
// fills. The worker logs it and asks (Resend) for the records again; once they arrive it
// stores everything in order, and says that what it reports is in the store.
func TestWorkerAsksForMissingRecords(t *testing.T) {
	ns, err := natsbus.StartEmbedded(t.TempDir(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := natsbus.Connect("", "", ns, "test", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := natsbus.Setup(ctx, js, "h", 1<<20, 1, []string{"mem"})
	if err != nil {
		t.Fatal(err)
	}
	cons, _ := st.Consumer(ctx, natsbus.ConsumerName("h", "mem"))
	pub := func(a, b uint64) {
		t.Helper()
		if _, err := js.Publish(ctx, natsbus.Subject("h"), recs(a, b)); err != nil {
			t.Error(err)
		}
	}
	var logs syncBuffer
	var mu sync.Mutex
	var asked []uint64
	sink := &memSink{}
	w := &Worker{Sink: sink, Consumer: cons, Interval: 50 * time.Millisecond, MaxBytes: 1 << 20,
		Log: slog.New(slog.NewTextHandler(&logs, nil)), ResendAfter: 3 * time.Second,
		Resend: func(_ context.Context, seq uint64) error {
			mu.Lock()
			asked = append(asked, seq)
			mu.Unlock()
			pub(seq, 8) // the host sends again from its journal
			return nil
		}}
	if _, ok := w.StoredKnown(); ok {
		t.Fatal("a worker that stored nothing says its start is in the store")
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(wctx) }()
	pub(1, 3)
	pub(7, 8) // 4-6 were lost
	deadline := time.Now().Add(15 * time.Second)
	for w.StoredSeq() < 8 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	got := sink.seqs()
	if len(got) != 8 {
		t.Fatalf("stored %v, want 1-8 once each", got)
	}
	for i, s := range got {
		if s != uint64(1+i) {
			t.Fatalf("stored out of order or twice: %v", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != 4 {
		t.Fatalf("Resend asked for %v, want [4]", asked)
	}
	if seq, ok := w.StoredKnown(); !ok || seq != 8 {
		t.Fatalf("StoredKnown = %d, %v; want 8, true", seq, ok)
	}
	for _, say := range []string{"records wait behind a gap", "asked the host to send the missing records again", "gap filled"} {
		if !strings.Contains(logs.String(), say) {
			t.Errorf("log lacks %q:\n%s", say, logs.String())
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
