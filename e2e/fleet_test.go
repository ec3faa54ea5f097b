package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// TestFleetGapRepair runs a host publishing only (`run --no-sinks`) and an S3 sink worker
// in its own process, on a real NATS server. With the worker stopped, one message is
// deleted from the host's stream between publish and consume. The worker, started again,
// sees the gap, asks the host to send the missing records again, and the host (whose
// journal kept them, since the store did not have them yet) does. The store then restores
// byte-exact, and no sequence number is stored twice.
func TestFleetGapRepair(t *testing.T) {
	s3 := testenv.StartS3(t)
	port := testenv.FreePort(t)
	ns := startNATS(t, port, t.TempDir())
	defer ns.Shutdown()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	h := newHost(t, hostOpts{s3: s3, natsURL: url})
	host := h.hostName()

	d := startProc(t, "daemon", "objects land in", "run", "--no-sinks", "--config", h.config)
	worker := startProc(t, "sink worker", "serving hosts", "sink", "s3", "--config", h.config)
	h.appendLine("s1.jsonl", `{"turn":1}`+"\n")
	h.appendLine("s2.jsonl", `{"turn":1}`+"\n")
	h.waitStored(h.sourceState(), 30*time.Second)
	// The worker reports what the store has, and the host releases its journal up to it.
	waitFor(t, "the journal's first segment released after the store has it", 20*time.Second, func() bool {
		return journalFirst(t, h) > 1
	})
	worker.stop(t)

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.Stream(ctx, natsbus.StreamName(host))
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := func() uint64 {
		t.Helper()
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	// appendPublished appends a line and returns the stream sequence numbers of the
	// messages that carried it.
	appendPublished := func(rel, line string) (uint64, uint64) {
		t.Helper()
		before := lastSeq()
		h.appendLine(rel, line)
		deadline := time.Now().Add(20 * time.Second)
		for lastSeq() == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no message published within 20s", rel)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // the watcher may cut one change in two messages
		return before + 1, lastSeq()
	}
	from, to := appendPublished("s1.jsonl", `{"turn":2,"lost":"in NATS"}`+"\n")
	m, err := stream.GetMsg(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := journal.DecodeAll(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	lost := recs[0].Seq
	for seq := from; seq <= to; seq++ {
		if err := stream.DeleteMsg(ctx, seq); err != nil {
			t.Fatalf("delete message %d: %v", seq, err)
		}
	}
	t.Logf("deleted stream messages %d-%d (records from %d)", from, to, lost)
	appendPublished("s2.jsonl", `{"turn":2}`+"\n")
	appendPublished("s1.jsonl", `{"turn":3}`+"\n")
	want := h.sourceState()
	// The release loop runs every 2 s: give it the chance to drop what it must not.
	time.Sleep(5 * time.Second)
	if first := journalFirst(t, h); first > lost {
		t.Fatalf("the host released its journal up to %d while the store lacks record %d", first, lost)
	}

	worker = startProc(t, "sink worker", "serving hosts", "sink", "s3", "--config", h.config)
	h.waitStored(want, 60*time.Second)
	for _, say := range []string{"records wait behind a gap", "asked the host to send the missing records again"} {
		if !strings.Contains(worker.out.String(), say) {
			t.Errorf("worker log lacks %q", say)
		}
	}
	if !strings.Contains(d.out.String(), "sending records again from the journal") {
		t.Errorf("daemon log lacks the resend")
	}
	worker.stop(t)
	d.stop(t)

	if df := diff(tree(t, h.restore("latest")), want); df != "" {
		t.Fatalf("restore latest: %s", df)
	}
	// Every record once: the segments cover 1..last without a gap and without overlap.
	st := h.directStore()
	segs := segments(t, st, host)
	checkSegments(t, st, segs, false)
	t.Logf("%d segments, last seq %d", len(segs), segs[len(segs)-1].LastSeq)
}

// journalFirst is the first sequence number of the host's journal, from its segment
// names (a segment is named after its first record).
func journalFirst(t *testing.T, h *host) uint64 {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(h.data, "journal", "*.seg"))
	if err != nil || len(m) == 0 {
		t.Fatalf("journal segments: %v (%d found)", err, len(m))
	}
	sort.Strings(m)
	n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(m[0]), ".seg"), 10, 64)
	if err != nil {
		t.Fatalf("segment name %s: %v", m[0], err)
	}
	return n
}

// waitFor polls ok until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
