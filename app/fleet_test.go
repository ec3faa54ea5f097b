package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestFleetLink runs a host's publisher on a real (embedded) NATS server and checks the
// fleet link: the journal is releasable only below what every target reports stored (the
// highest report of a target counts, unknown sinks are ignored), a resend request makes
// the publisher send again from the journal, and one for records the journal no longer
// holds is refused.
func TestFleetLink(t *testing.T) {
	dir := t.TempDir()
	var logs lockedBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ns, err := natsbus.StartEmbedded(filepath.Join(dir, "nats"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := natsbus.Connect("", "", ns, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sinks := []string{"s3-a", "s3-b"}
	stream, err := natsbus.Setup(ctx, js, "h.1", 1<<20, 1, sinks)
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{SegmentBytes: 200, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := range 10 {
		if err := j.Append([]journal.Record{{Op: journal.OpAppend, Source: "s", Path: "p", Offset: int64(i * 2), Data: []byte("x\n")}}); err != nil {
			t.Fatal(err)
		}
	}
	pub := &natsbus.Publisher{J: j, JS: js, NC: nc, Host: "h.1", CursorDir: dir, Log: log}
	go pub.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for pub.Next() <= 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pub.Next() != 11 {
		t.Fatalf("published below %d, want 11", pub.Next())
	}

	f := newFleetLink("h.1", pub, j, sinks, log)
	f.tailPatience, f.tailEvery, f.heldAfter = time.Second, 100*time.Millisecond, 2*time.Second
	if err := f.start(ctx, nc, stream); err != nil {
		t.Fatal(err)
	}
	report := func(sink string, seq uint64) {
		t.Helper()
		if err := natsbus.ReportStored(nc, "h.1", natsbus.StoredReport{Sink: sink, Seq: seq}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the subscription is served on its own goroutine
	}
	if got := f.releasable(); got != 0 {
		t.Fatalf("releasable %d with no report, want 0", got)
	}
	report("s3-a", 7)
	report("s3-x", 10) // not a target of this host
	if got := f.releasable(); got != 0 {
		t.Fatalf("releasable %d while s3-b has not reported, want 0", got)
	}
	report("s3-b", 4)
	report("s3-b", 2) // a standby worker knows less: the store still has 1-4
	if got := f.releasable(); got != 5 {
		t.Fatalf("releasable %d, want 5 (s3-b stores up to 4)", got)
	}

	// A worker behind a gap at 6 asks; the publisher sends 6-10 again.
	before := streamMsgs(t, stream)
	if err := natsbus.AskResend(nc, "h.1", 6, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for streamMsgs(t, stream) == before && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	if streamMsgs(t, stream) == before {
		t.Fatal("nothing sent again after the resend request")
	}
	if !strings.Contains(logs.String(), "sending records again from the journal") {
		t.Errorf("host log lacks the resend:\n%s", logs.String())
	}

	// Once released, records cannot be sent again: the request is refused, loudly.
	if err := j.Release(6); err != nil {
		t.Fatal(err)
	}
	if j.FirstSeq() <= 1 {
		m, _ := filepath.Glob(filepath.Join(dir, "journal", "*"))
		t.Fatalf("journal first seq %d after release; the test needs small segments: %v", j.FirstSeq(), m)
	}
	err = natsbus.AskResend(nc, "h.1", 1, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no longer holds") {
		t.Fatalf("resend of released records: %v, want a refusal", err)
	}
	if err := natsbus.AskResend(nc, "nobody", 1, time.Second); !errors.Is(err, natsbus.ErrNoPublisher) {
		t.Fatalf("resend to a host without publisher: %v, want ErrNoPublisher", err)
	}

	// A lost tail: both targets stay at 9 of 10 while their consumers have nothing left
	// to deliver; no later record shows a worker the gap, so the host sends 10 again.
	if err := stream.Purge(ctx); err != nil { // NATS lost every message
		t.Fatal(err)
	}
	report("s3-a", 9)
	report("s3-b", 9)
	f.mu.Lock()
	f.rewoundAt = time.Time{} // the resend above is not under way any more
	f.mu.Unlock()
	before = streamMsgs(t, stream)
	end := time.Now().Add(15 * time.Second)
	for streamMsgs(t, stream) == before && time.Now().Before(end) {
		time.Sleep(50 * time.Millisecond)
	}
	if streamMsgs(t, stream) == before || !strings.Contains(logs.String(), "stays behind") {
		t.Fatalf("lost tail not sent again:\n%s", logs.String())
	}
	// Nothing reports 10 stored: the host says its journal is kept for both targets.
	for !strings.Contains(logs.String(), "the journal is kept for targets") && time.Now().Before(end) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `targets="[s3-a s3-b]"`) {
		t.Fatalf("no warning that the journal is kept for s3-a and s3-b:\n%s", logs.String())
	}
}

func streamMsgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}
