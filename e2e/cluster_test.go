package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/internal/faultproxy"
	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// natsNode is one server of an in-process NATS cluster, restartable as the same server:
// same name, ports and store.
type natsNode struct {
	name      string
	port      int
	routePort int
	store     string
	srv       *server.Server
}

// natsCluster is a JetStream cluster of three servers on 127.0.0.1.
type natsCluster struct {
	t      *testing.T
	nodes  []*natsNode
	routes string // nats://127.0.0.1:<route port>,... of every node
	url    string // nats://127.0.0.1:<client port>,... of every node, for clients
}

func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}
	var routes, urls []string
	for i := range n {
		nd := &natsNode{name: fmt.Sprintf("n%d", i+1), port: testenv.FreePort(t), routePort: testenv.FreePort(t), store: t.TempDir()}
		c.nodes = append(c.nodes, nd)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", nd.routePort))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
	}
	c.routes, c.url = strings.Join(routes, ","), strings.Join(urls, ",")
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.srv != nil {
				nd.srv.Shutdown()
				nd.srv.WaitForShutdown()
			}
		}
	})
	for i := range c.nodes {
		c.launch(i)
	}
	for _, nd := range c.nodes {
		if !nd.srv.ReadyForConnections(30 * time.Second) {
			t.Fatalf("nats %s not ready after 30s", nd.name)
		}
	}
	c.waitJetStream(60 * time.Second)
	return c
}

// launch starts node i without waiting for it.
func (c *natsCluster) launch(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	s, err := server.NewServer(&server.Options{
		ServerName: nd.name, Host: "127.0.0.1", Port: nd.port,
		JetStream: true, StoreDir: nd.store, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "mmr", Host: "127.0.0.1", Port: nd.routePort},
		Routes:  server.RoutesFromStr(c.routes),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	nd.srv = s
}

// stop shuts node i down.
func (c *natsCluster) stop(i int) {
	c.nodes[i].srv.Shutdown()
	c.nodes[i].srv.WaitForShutdown()
	c.nodes[i].srv = nil
}

// restart starts node i again, on its ports and store, and waits until it is current.
func (c *natsCluster) restart(i int) {
	c.t.Helper()
	c.launch(i)
	if !c.nodes[i].srv.ReadyForConnections(30 * time.Second) {
		c.t.Fatalf("nats %s not ready after a restart", c.nodes[i].name)
	}
}

// waitJetStream waits until every node's JetStream is current and a meta leader takes a
// replicated stream.
func (c *natsCluster) waitJetStream(timeout time.Duration) {
	c.t.Helper()
	nc, err := nats.Connect(c.url, nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		current := true
		for _, nd := range c.nodes {
			current = current && nd.srv.JetStreamIsCurrent()
		}
		if current {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, lastErr = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "READY_PROBE", Subjects: []string{"ready.probe"}, Replicas: len(c.nodes)})
			if lastErr == nil {
				lastErr = js.DeleteStream(ctx, "READY_PROBE")
			}
			cancel()
			if lastErr == nil {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Fatalf("jetstream cluster not ready after %s: %v", timeout, lastErr)
}

// index is the position of the node named name.
func (c *natsCluster) index(name string) int {
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	c.t.Fatalf("no nats node named %q", name)
	return -1
}

// startProc starts `mmreplicate args...` and waits until its output says ready; label
// names it in logs.
func startProc(t *testing.T, label, ready string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(binary, args...), out: &syncBuf{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exit = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", label, d.out)
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(d.out.String(), ready) {
		select {
		case <-d.done:
			t.Fatalf("%s exited during start-up: %v\n%s", label, d.exit, d.out)
		case <-deadline:
			t.Fatalf("%s not ready after 60s:\n%s", label, d.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return d
}

// editConfig replaces old by new (once) in the host's config.
func (h *host) editConfig(old, new string) {
	h.t.Helper()
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	if !strings.Contains(string(cfg), old) {
		h.t.Fatalf("config has no %q", old)
	}
	if err := os.WriteFile(h.config, []byte(strings.Replace(string(cfg), old, new, 1)), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// streamInfo reads a host's stream from the cluster.
func streamInfo(t *testing.T, js jetstream.JetStream, host string) *jetstream.StreamInfo {
	t.Helper()
	var lastErr error
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, natsbus.StreamName(host))
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = st.Info(ctx)
		}
		cancel()
		if err == nil {
			return info
		}
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("stream of %s: %v", host, lastErr)
	return nil
}

// TestClusterScaleOut runs two hosts' daemons (publishing only) against a three-server
// NATS JetStream cluster and two S3 sink worker processes that both serve both hosts, into
// one bucket. Under an append load one NATS server (the leader of a host's stream) is
// shut down and started again, and the sink worker doing the work is killed with SIGKILL,
// so that the other takes over. Every host must restore byte-exact at instants before,
// between and after the faults, and the bucket must hold every record of each host
// without a gap and never two different records under one number.
func TestClusterScaleOut(t *testing.T) {
	began := time.Now()
	cl := startNATSCluster(t, 3)
	t.Logf("nats cluster of 3 ready in %s", time.Since(began).Round(time.Millisecond))
	s3 := testenv.StartS3(t)

	// Two hosts, one bucket: the second host's config names the first one's bucket.
	a := newHost(t, hostOpts{s3: s3, natsURL: cl.url})
	b := newHost(t, hostOpts{s3: s3, natsURL: cl.url})
	base := a.hostName()
	a.editConfig("host: "+base+"\n", "host: "+base+"-a\n")
	b.editConfig("host: "+base+"\n", "host: "+base+"-b\n")
	b.editConfig("s3://"+b.bucket+"/", "s3://"+a.bucket+"/")
	b.bucket = a.bucket
	hosts := []*host{a, b}
	names := []string{a.hostName(), b.hostName()}

	var daemons []*daemon
	for i, h := range hosts {
		daemons = append(daemons, startProc(t, "daemon "+names[i], "objects land in", "run", "--no-sinks", "--config", h.config))
	}

	// Two sink workers, each serving both hosts. Each reaches S3 through its own
	// pass-through proxy, whose request counts tell which worker is doing the work.
	cfgA, err := os.ReadFile(a.config)
	if err != nil {
		t.Fatal(err)
	}
	var workers []*daemon
	var proxies []*faultproxy.Proxy
	for i := range 2 {
		px := startProxy(t, s3, 10*time.Second)
		cfg := strings.Replace(string(cfgA), "endpoint: "+s3.Endpoint+"\n", "endpoint: "+px.URL()+"\n", 1)
		path := fmt.Sprintf("%s/worker%d.yml", t.TempDir(), i+1)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, px)
		workers = append(workers, startProc(t, fmt.Sprintf("sink worker %d", i+1), "serving hosts",
			"sink", "s3", "--config", path, "--host", names[0], "--host", names[1]))
	}
	puts := func(i int) int64 { return proxies[i].Stats().ByMethod["PUT"].Seen }

	// The streams are replicated on three servers.
	nc, err := nats.Connect(cl.url, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if info := streamInfo(t, js, name); info.Config.Replicas != 3 {
			t.Fatalf("stream %s has %d replicas on a cluster of 3, want 3", info.Config.Name, info.Config.Replicas)
		}
	}

	// Load, with pauses at which the stored state is confirmed and the instant noted.
	var ws []*writer
	load := func() {
		ws = ws[:0]
		for _, h := range hosts {
			w := startWriter(h)
			haltOnExit(t, w)
			ws = append(ws, w)
		}
	}
	type instant struct {
		label string
		at    string
		want  []map[string]string
	}
	var instants []instant
	var lines int64
	checkpoint := func(label string, timeout time.Duration) {
		t.Helper()
		for _, w := range ws {
			w.halt()
			lines += w.lines.Load()
		}
		paused := time.Now()
		in := instant{label: label}
		for _, h := range hosts {
			want := h.sourceState()
			h.waitStored(want, timeout)
			in.want = append(in.want, want)
		}
		in.at = time.Now().UTC().Format(time.RFC3339Nano)
		instants = append(instants, in)
		t.Logf("instant %d (%s) at %.1fs: stored %s after the writers paused", len(instants), label,
			time.Since(began).Seconds(), time.Since(paused).Round(10*time.Millisecond))
		time.Sleep(50 * time.Millisecond) // later lines are captured after the instant
	}

	loadStart := time.Now()
	load()
	time.Sleep(2 * time.Second)
	checkpoint("before the faults", 30*time.Second)
	load()

	// SIGKILL the sink worker that is doing the work (the more S3 PUTs in a window).
	before := []int64{puts(0), puts(1)}
	time.Sleep(1500 * time.Millisecond)
	busy := []int64{puts(0) - before[0], puts(1) - before[1]}
	victim := 0
	if busy[1] > busy[0] {
		victim = 1
	}
	survivor := 1 - victim
	workers[victim].kill()
	killedAt := time.Now()
	survivorPuts := puts(survivor)
	tookOver := make(chan time.Duration, 1) // when the survivor first wrote after the kill
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	go func() {
		for time.Since(killedAt) < 120*time.Second {
			if puts(survivor) > survivorPuts {
				tookOver <- time.Since(killedAt)
				return
			}
			select {
			case <-ended:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Logf("sink worker %d killed with SIGKILL at %.1fs (S3 PUTs in the last 1.5s: worker 1 %d, worker 2 %d)",
		victim+1, time.Since(began).Seconds(), busy[0], busy[1])

	// Shut down the NATS server leading host a's stream, and start it again 6 s later.
	time.Sleep(2 * time.Second)
	leader := streamInfo(t, js, names[0]).Cluster.Leader
	down := cl.index(leader)
	cl.stop(down)
	t.Logf("nats %s (leader of %s) shut down at %.1fs", leader, natsbus.StreamName(names[0]), time.Since(began).Seconds())
	time.Sleep(6 * time.Second)
	cl.restart(down)
	t.Logf("nats %s started again at %.1fs", leader, time.Since(began).Seconds())

	// Keep loading until the load has lasted about 20 s, past the pinned TTL (15 s): the
	// surviving worker takes over under load. The messages the killed worker had received
	// but not acknowledged come back only when their ack wait (60 s) ends, so the store
	// may complete only then.
	time.Sleep(time.Until(loadStart.Add(20 * time.Second)))
	checkpoint("after the worker kill and the nats restart", 90*time.Second)
	select {
	case d := <-tookOver:
		t.Logf("sink worker %d took over: first S3 write %s after the kill, %d PUTs since", survivor+1,
			d.Round(100*time.Millisecond), puts(survivor)-survivorPuts)
	default:
		t.Fatalf("sink worker %d wrote nothing after worker %d was killed", survivor+1, victim+1)
	}
	load()
	time.Sleep(3 * time.Second)
	checkpoint("at the end", 60*time.Second)

	// The restarted server is a current replica of both streams again.
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for {
			info := streamInfo(t, js, name)
			ok := info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2
			var state []string
			for _, r := range info.Cluster.Replicas {
				ok = ok && r.Current && !r.Offline
				state = append(state, fmt.Sprintf("%s current=%v offline=%v lag=%d", r.Name, r.Current, r.Offline, r.Lag))
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s: leader %q, replicas %v, want 2 current replicas", info.Config.Name, info.Cluster.Leader, state)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	// Clean stop: daemons, the surviving worker, then the cluster.
	for _, d := range daemons {
		d.stop(t)
	}
	workers[survivor].stop(t)
	for i := range cl.nodes {
		cl.stop(i)
	}
	t.Logf("everything stopped at %.1fs", time.Since(began).Seconds())

	// Every host restores byte-exact at every instant, each line once.
	for i, h := range hosts {
		for n, in := range instants {
			got := tree(t, h.restore(in.at))
			if d := diff(got, in.want[i]); d != "" {
				t.Errorf("%s: restore at instant %d (%s, %s): %s", names[i], n+1, in.label, in.at, d)
			}
			if n == len(instants)-1 {
				linesOnce(t, got)
			}
		}
	}

	// Each host's records are stored without a gap, and never as two different records
	// under one number. A worker killed after writing a segment but before acknowledging
	// its messages leaves them to be written again by the other worker, whose batch may
	// be cut differently: such overlaps must hold identical records.
	st := a.directStore()
	var summary []string
	for _, name := range names {
		segs := segments(t, st, name)
		overlaps := checkSegments(t, st, segs, true)
		summary = append(summary, fmt.Sprintf("%s: %d segments, last seq %d, %d overlapping pairs (identical records)",
			name, len(segs), segs[len(segs)-1].LastSeq, overlaps))
	}
	a.verifyStore()
	t.Logf("%d lines written; restores exact at %d instants; %s; S3 PUTs: worker 1 %d, worker 2 %d; %s in all",
		lines, len(instants), strings.Join(summary, "; "), puts(0), puts(1), time.Since(began).Round(time.Second))
}
