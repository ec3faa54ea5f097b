package sinks

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// memSink records what it is given.
type memSink struct {
	mu      sync.Mutex
	batches [][]journal.Record
}

func (m *memSink) Name() string { return "mem" }
func (m *memSink) Write(_ context.Context, recs []journal.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches = append(m.batches, append([]journal.Record(nil), recs...))
	return nil
}

func (m *memSink) seqs() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []uint64
	for _, b := range m.batches {
		for _, r := range b {
			out = append(out, r.Seq)
		}
	}
	return out
}

func recs(from, to uint64) []byte {
	var rs []journal.Record
	for s := from; s <= to; s++ {
		rs = append(rs, journal.Record{Seq: s, Time: int64(s), Op: journal.OpAppend, Source: "s", Path: "p", Data: []byte("x\n")})
	}
	return journal.EncodeAll(rs)
}

// TestWorkerStoresInOrderWithoutGaps: messages arriving out of order (as after a crash,
// when the dead process's messages are redelivered late) are stored strictly in sequence,
// records past a gap wait for it, and duplicates are dropped.
func TestWorkerStoresInOrderWithoutGaps(t *testing.T) {
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
	sink := &memSink{}
	w := &Worker{Sink: sink, Consumer: cons, Interval: 50 * time.Millisecond, MaxBytes: 1 << 20, Log: slog.Default(), StartAfter: 3}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(wctx) }()
	pub := func(a, b uint64) {
		if _, err := js.Publish(ctx, natsbus.Subject("h"), recs(a, b)); err != nil {
			t.Fatal(err)
		}
	}
	pub(1, 5)   // 1-3 already stored before this worker started
	pub(9, 12)  // past a gap
	pub(6, 8)   // fills it
	pub(10, 14) // overlaps
	deadline := time.Now().Add(5 * time.Second)
	for w.StoredSeq() < 14 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	got := sink.seqs()
	if len(got) != 11 {
		t.Fatalf("stored %v", got)
	}
	for i, s := range got {
		if s != uint64(4+i) {
			t.Fatalf("stored out of order or with gaps: %v", got)
		}
	}
	if _, _, gap := w.Gap(); gap {
		t.Fatal("gap still reported")
	}
}
