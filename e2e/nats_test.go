package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// startNATS runs a real JetStream server on a fixed port and store, so that it can be
// stopped and started again as the same server.
func startNATS(t *testing.T, port int, store string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		t.Fatal("nats not ready")
	}
	return s
}

// TestNATSOutage stops the external NATS server for 10 s while lines are appended: the
// journal keeps them and everything arrives once the server is back.
func TestNATSOutage(t *testing.T) {
	s3 := testenv.StartS3(t)
	port := testenv.FreePort(t)
	store := t.TempDir()
	ns := startNATS(t, port, store)
	h := newHost(t, hostOpts{s3: s3, natsURL: fmt.Sprintf("nats://127.0.0.1:%d", port)})
	d := h.start()
	w := startWriter(h)
	time.Sleep(time.Second)
	ns.Shutdown()
	ns.WaitForShutdown()
	outage := time.Now()
	time.Sleep(10 * time.Second)
	ns = startNATS(t, port, store)
	defer ns.Shutdown()
	t.Logf("nats was down %s", time.Since(outage).Round(time.Millisecond))
	time.Sleep(time.Second)
	w.halt()
	want := h.sourceState()
	h.waitStored(want, 60*time.Second)
	d.stop(t)
	if d := diff(tree(t, h.restore("latest")), want); d != "" {
		t.Fatalf("after the outage: %s", d)
	}
}
