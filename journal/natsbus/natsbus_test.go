package natsbus

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A stream in memory at its cap refuses the next message with an error streamFull
// recognises, and a file stream of the same name is replaced by the in-memory one.
func TestInMemoryStreamFull(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := StartEmbedded(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := Connect("", "", ns, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Setup(ctx, js, "h", 1<<20, 1, []string{"s"}); err != nil {
		t.Fatal(err)
	}
	st, err := Setup(ctx, js, "h", 4096, 1, []string{"s"}, InMemory())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Storage; got != jetstream.MemoryStorage {
		t.Fatalf("storage %v", got)
	}
	var full error
	for i := 0; i < 10 && full == nil; i++ {
		_, full = js.PublishMsg(ctx, &nats.Msg{Subject: Subject("h"), Data: []byte(strings.Repeat("x", 1000))})
	}
	if full == nil || !streamFull(full) {
		t.Fatalf("publishing past the cap: %v", full)
	}
}
