package e2e

// More benchmarks behind `make bench` and the "More figures" section of
// docs/BENCHMARKS.md: encryption on and off, a SQLite writer side by side with
// Litestream, sink workers in the cluster path, and an idle daemon over 10,000 files.
// Like those of bench_test.go, each measures once whatever b.N is and reports its
// figures with b.ReportMetric plus one human-readable summary.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/objstore"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
	"github.com/mmreplicate/mmreplicate/segment"
)

// moreStatus is the part of the daemon's /status these benchmarks read.
type moreStatus struct {
	Journal struct {
		LastSeq      uint64 `json:"last_seq"`
		PublishedSeq uint64 `json:"published_seq"`
	} `json:"journal"`
	Sources []struct {
		Files int `json:"files_watched"`
	} `json:"sources"`
	Sinks []struct {
		StoredSeq uint64 `json:"stored_seq"`
		Backlog   uint64 `json:"backlog_records"`
	} `json:"sinks"`
}

var moreClient = &http.Client{Timeout: 2 * time.Second}

func getMoreStatus(addr string) (moreStatus, error) {
	var s moreStatus
	resp, err := moreClient.Get("http://" + addr + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitSettled polls /status until the journal's last_seq has not moved for quiet, every
// record is published and (with sinks) stored, and ok holds; it returns last_seq.
func waitSettled(b *testing.B, addr string, quiet, timeout time.Duration, ok func(moreStatus) bool) uint64 {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var last uint64
	since := time.Now()
	for time.Now().Before(deadline) {
		s, err := getMoreStatus(addr)
		if err == nil {
			if s.Journal.LastSeq != last {
				last, since = s.Journal.LastSeq, time.Now()
			}
			done := s.Journal.PublishedSeq >= last && (ok == nil || ok(s))
			for _, k := range s.Sinks {
				done = done && k.StoredSeq >= last && k.Backlog == 0
			}
			if done && time.Since(since) >= quiet {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("daemon at %s not settled after %v (last_seq %d)", addr, timeout, last)
	return 0
}

// startMore starts `mmreplicate args...` and waits until its output holds ready.
func startMore(b *testing.B, label, ready string, args ...string) *daemon {
	b.Helper()
	d := &daemon{cmd: exec.Command(binary, args...), out: &syncBuf{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { d.exit = d.cmd.Wait(); close(d.done) }()
	b.Cleanup(d.kill)
	deadline := time.After(60 * time.Second)
	for !strings.Contains(d.out.String(), ready) {
		select {
		case <-d.done:
			b.Fatalf("%s exited during start-up: %v\n%s", label, d.exit, d.out)
		case <-deadline:
			b.Fatalf("%s not ready after 60s:\n%s", label, d.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return d
}

// moreConfig writes a daemon config: one source over src (every file, JSONL appended,
// the rest as whole files, SQLite as databases), one S3 target, and extra.
func moreConfig(b *testing.B, dir, host, src, httpAddr, s3URL string, s3 *testenv.S3Server, endpoint, extra string) string {
	b.Helper()
	cfg := fmt.Sprintf("host: %s\ndata_dir: %s\nsources:\n  - name: sessions\n    path: %s\nhttp:\n  listen: %s\n"+
		"s3:\n  url: %s\n  endpoint: %s\n  access_key_id: %s\n  secret_access_key: %s\n%s",
		host, filepath.Join(dir, "data"), src, httpAddr, s3URL, endpoint, s3.AccessKey, s3.SecretKey, extra)
	p := filepath.Join(dir, "mmreplicate.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

// sizeOfTree is the number of regular files under root and their bytes.
func sizeOfTree(root string) (files int, bytes int64) {
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files++
			bytes += fi.Size()
		}
		return nil
	})
	return
}

// BenchmarkEncryption runs the same ~100 MB workload (20 JSONL files appended line by
// line, 40 whole files) through the daemon to S3 with encryption off and then on (one
// age recipient, identity for restore), and measures ingest (first write until the sink
// stored the last journaled record, dated by /status samples every 50 ms) and
// `restore --at latest` of everything.
func BenchmarkEncryption(b *testing.B) {
	const (
		nFiles     = 20
		jsonlBytes = 90 << 20
		nWhole     = 40
		wholeBytes = 10 << 20
	)
	load := loadavg()
	data := makeIngestData(nFiles, jsonlBytes)
	whole := makeIngestData(nWhole, wholeBytes) // each file's bytes, written in one go
	total := data.total + whole.total
	mb := float64(total) / 1e6
	s3 := testenv.StartS3(b)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}

	type result struct{ ingest, restore, ingestMBs, restoreMBs float64 }
	run := func(name string, encrypt bool) result {
		dir := b.TempDir()
		src := filepath.Join(dir, "agents")
		if err := os.MkdirAll(filepath.Join(src, "workspace"), 0o755); err != nil {
			b.Fatal(err)
		}
		bucket := "mmr-" + strings.ToLower(randomName())
		s3.CreateBucket(b, bucket)
		extra := ""
		if encrypt {
			idFile := filepath.Join(dir, "age.key")
			if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
			extra = fmt.Sprintf("encryption:\n  recipients: [%q]\n  identity_file: %s\n", id.Recipient().String(), idFile)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
		cfg := moreConfig(b, dir, "bench-enc-"+name, src, addr, "s3://"+bucket+"/prod", s3, s3.Endpoint, extra)
		d := startMore(b, "daemon", "objects land in", "run", "--config", cfg)
		stages := &stageTimes{}
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() { stages.run(addr, stop); close(sampled) }()
		time.Sleep(200 * time.Millisecond)

		start := time.Now()
		for i, f := range whole.files {
			if err := os.WriteFile(filepath.Join(src, "workspace", fmt.Sprintf("notes-%02d.md", i)), f, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		fs, err := data.writeAll(src)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range fs {
			f.Close()
		}
		last := waitSettled(b, addr, 3*time.Second, 5*time.Minute, nil)
		close(stop)
		<-sampled
		took := stages.reached(stages.sink, last, start)
		if took <= 0 {
			b.Fatalf("%s: no /status sample showed stored_seq %d", name, last)
		}
		stopDaemon(b, d)

		to := filepath.Join(dir, "restore")
		rs := time.Now()
		out, err := exec.Command(binary, "restore", "--config", cfg, "--at", "latest", "--to", to).CombinedOutput()
		rt := time.Since(rs)
		if err != nil {
			b.Fatalf("%s: restore: %v\n%s", name, err, out)
		}
		if n, size := sizeOfTree(to); n != nFiles+nWhole || size != int64(total) {
			b.Fatalf("%s: restore gave %d files, %d bytes; want %d files, %d bytes", name, n, size, nFiles+nWhole, total)
		}
		os.RemoveAll(to)
		return result{took.Seconds(), rt.Seconds(), mb / took.Seconds(), mb / rt.Seconds()}
	}
	off := run("off", false)
	on := run("on", true)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(off.ingestMBs, "ingest-off-MB/s")
	b.ReportMetric(on.ingestMBs, "ingest-on-MB/s")
	b.ReportMetric(on.ingestMBs/off.ingestMBs, "ingest-on/off")
	b.ReportMetric(off.restoreMBs, "restore-off-MB/s")
	b.ReportMetric(on.restoreMBs, "restore-on-MB/s")
	b.ReportMetric(on.restoreMBs/off.restoreMBs, "restore-on/off")
	fmt.Printf("encryption, %.1f MB (%d JSONL files line by line + %d whole files) to S3, off then on (load average at start %s):\n", mb, nFiles, nWhole, load)
	fmt.Printf("  ingest  off %.1f MB/s (%.2f s)  on %.1f MB/s (%.2f s)  on/off %.2f\n", off.ingestMBs, off.ingest, on.ingestMBs, on.ingest, on.ingestMBs/off.ingestMBs)
	fmt.Printf("  restore off %.1f MB/s (%.2f s)  on %.1f MB/s (%.2f s)  on/off %.2f\n", off.restoreMBs, off.restore, on.restoreMBs, on.restore, on.restoreMBs/off.restoreMBs)
}

// sqlWriter commits one small transaction (one row of 200 bytes) at a steady rate and
// keeps every commit's latency (BEGIN to COMMIT returned) and the newest row committed.
type sqlWriter struct {
	db        *sql.DB
	next      int64
	newest    atomic.Int64 // id of the newest committed row
	newestAt  atomic.Int64 // its commit time, UnixNano
	latencies []time.Duration
}

func (w *sqlWriter) commit() error {
	w.next++
	t := time.Now()
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	if _, err := tx.Exec("INSERT INTO mem (id, t, v) VALUES (?, ?, randomblob(200))", w.next, t.UnixNano()); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	now := time.Now()
	w.latencies = append(w.latencies, now.Sub(t))
	w.newest.Store(w.next)
	w.newestAt.Store(now.UnixNano())
	return nil
}

// run commits every period until stop is closed or for at most d, paced against its
// start; it returns the latencies of this run.
func (w *sqlWriter) run(period, d time.Duration, stop <-chan struct{}) ([]time.Duration, error) {
	from := len(w.latencies)
	t0 := time.Now()
	for i := 0; time.Since(t0) < d; i++ {
		select {
		case <-stop:
			return w.latencies[from:], nil
		case <-time.After(time.Until(t0.Add(time.Duration(i) * period))):
		}
		if err := w.commit(); err != nil {
			return nil, err
		}
	}
	return w.latencies[from:], nil
}

// newestRow is the largest id in a restored database (0 if it cannot be read).
func newestRow(path string) int64 {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0
	}
	defer db.Close()
	var n sql.NullInt64
	if db.QueryRow("SELECT max(id) FROM mem").Scan(&n) != nil {
		return 0
	}
	return n.Int64
}

// litestreamBinary finds Litestream, installing it into the benchmark cache if missing.
func litestreamBinary() (string, error) {
	if p, err := exec.LookPath("litestream"); err == nil {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(home, ".cache", "mmreplicate", "bin")
	p := filepath.Join(bin, "litestream")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/benbjohnson/litestream/cmd/litestream@v0.5.16")
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install litestream: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return p, nil
}

// BenchmarkSQLiteSideBySide: one SQLite database in WAL mode (default autocheckpoint), a
// writer committing one small transaction every 5 ms. For 20 s each it runs with no
// replicator, with mmreplicate, and with Litestream (same S3 server, its own bucket):
// commit latency p50/p99 and each replicator's CPU. Then, with the writer still going,
// the replication lag of a few sampled commits: commit until a restore of the newest
// state holds that row (restores back to back; a sample's lag is the end of the first
// restore that holds it, so it is late by up to one restore's duration).
func BenchmarkSQLiteSideBySide(b *testing.B) {
	const (
		period     = 5 * time.Millisecond
		phase      = 20 * time.Second
		lagSamples = 4
	)
	load := loadavg()
	dir := b.TempDir()
	src := filepath.Join(dir, "agents")
	dbPath := filepath.Join(src, "memory", "agent.db")
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE mem (id INTEGER PRIMARY KEY, t INTEGER, v BLOB)"); err != nil {
		b.Fatal(err)
	}
	w := &sqlWriter{db: db}
	for range 200 { // a database with some pages before anything replicates it
		if err := w.commit(); err != nil {
			b.Fatal(err)
		}
	}
	s3 := testenv.StartS3(b)

	type phaseResult struct {
		name          string
		n             int
		p50, p99, max float64
		cpu           float64 // replicator CPU seconds during the latency phase
		lags          []time.Duration
		restore       time.Duration // mean restore duration during the lag phase
		note          string
	}
	measure := func(name string, pid int, restoreNewest func() (int64, error)) phaseResult {
		r := phaseResult{name: name}
		var cpu0 time.Duration
		if pid > 0 {
			cpu0 = procCPU(pid)
		}
		lat, err := w.run(period, phase, nil)
		if err != nil {
			b.Fatalf("%s: writer: %v", name, err)
		}
		if pid > 0 {
			r.cpu = (procCPU(pid) - cpu0).Seconds()
		}
		slices.Sort(lat)
		r.n, r.p50, r.p99, r.max = len(lat), pct(lat, 50), pct(lat, 99), pct(lat, 100)
		if restoreNewest == nil {
			return r
		}
		// Lag: the writer keeps going while restores run back to back.
		stop := make(chan struct{})
		werr := make(chan error, 1)
		go func() { _, err := w.run(period, 2*time.Minute, stop); werr <- err }()
		var restores []time.Duration
		for range lagSamples {
			time.Sleep(500 * time.Millisecond)
			want, at := w.newest.Load(), time.Unix(0, w.newestAt.Load())
			deadline := time.Now().Add(20 * time.Second)
			for {
				rs := time.Now()
				got, err := restoreNewest()
				restores = append(restores, time.Since(rs))
				if err == nil && got >= want {
					r.lags = append(r.lags, time.Since(at))
					break
				}
				if time.Now().After(deadline) {
					r.note = fmt.Sprintf("row %d not restored after 20 s (last error %v)", want, err)
					break
				}
			}
			if r.note != "" {
				break
			}
		}
		close(stop)
		if err := <-werr; err != nil {
			b.Fatalf("%s: writer: %v", name, err)
		}
		var sum time.Duration
		for _, d := range restores {
			sum += d
		}
		r.restore = sum / time.Duration(len(restores))
		slices.Sort(r.lags)
		return r
	}
	var results []phaseResult

	// 1. No replicator.
	results = append(results, measure("none", 0, nil))

	// 2. mmreplicate, from its initial sync on.
	{
		mdir := filepath.Join(dir, "mmr")
		os.MkdirAll(mdir, 0o755)
		bucket := "mmr-" + strings.ToLower(randomName())
		s3.CreateBucket(b, bucket)
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
		cfg := moreConfig(b, mdir, "bench-sqlite", src, addr, "s3://"+bucket+"/prod", s3, s3.Endpoint, "")
		d := startMore(b, "daemon", "objects land in", "run", "--config", cfg)
		waitSettled(b, addr, time.Second, time.Minute, nil)
		results = append(results, measure("mmreplicate", d.cmd.Process.Pid, func() (int64, error) {
			to := filepath.Join(mdir, "restore")
			os.RemoveAll(to)
			out, err := exec.Command(binary, "restore", "--config", cfg, "--at", "latest", "--to", to, "--path", "memory/agent.db").CombinedOutput()
			if err != nil {
				return 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
			}
			return newestRow(filepath.Join(to, "sessions", "memory", "agent.db")), nil
		}))
		stopDaemon(b, d)
	}

	// 3. Litestream, to its own bucket on the same S3 server.
	lsNote := ""
	if ls, err := litestreamBinary(); err != nil {
		lsNote = "Litestream not run: " + err.Error()
	} else {
		ldir := filepath.Join(dir, "litestream")
		os.MkdirAll(ldir, 0o755)
		bucket := "ls-" + strings.ToLower(randomName())
		s3.CreateBucket(b, bucket)
		cfg := filepath.Join(ldir, "litestream.yml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("dbs:\n  - path: %s\n    replica:\n      type: s3\n      bucket: %s\n      path: agent.db\n"+
			"      endpoint: %s\n      region: us-east-1\n      force-path-style: true\n      access-key-id: %s\n      secret-access-key: %s\n",
			dbPath, bucket, s3.Endpoint, s3.AccessKey, s3.SecretKey)), 0o600)
		// Litestream's S3 client refuses to start while AWS_CA_BUNDLE is set (as the
		// older rclone does); the server is plain http on loopback, so drop it.
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
				env = append(env, kv)
			}
		}
		cmd := exec.Command(ls, "replicate", "-config", cfg)
		cmd.Env = env
		out := &syncBuf{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			lsNote = "Litestream not run: " + err.Error()
		} else {
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			b.Cleanup(func() { cmd.Process.Kill(); <-exited })
			restoreNewest := func() (int64, error) {
				to := filepath.Join(ldir, "restore.db")
				os.Remove(to)
				os.Remove(to + "-wal")
				os.Remove(to + "-shm")
				rc := exec.Command(ls, "restore", "-config", cfg, "-o", to, dbPath)
				rc.Env = env
				o, err := rc.CombinedOutput()
				if err != nil {
					return 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(o)))
				}
				return newestRow(to), nil
			}
			// Ready once its first snapshot restores.
			var rerr error
			ready := false
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
				gone := false
				select {
				case <-exited:
					gone = true
				default:
				}
				if gone {
					rerr = fmt.Errorf("exited: %s", strings.TrimSpace(out.String()))
					break
				}
				if _, rerr = restoreNewest(); rerr == nil {
					ready = true
					break
				}
			}
			if !ready {
				lsNote = fmt.Sprintf("Litestream did not replicate: %v", rerr)
			} else {
				results = append(results, measure("litestream", cmd.Process.Pid, restoreNewest))
			}
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
			}
		}
	}

	base := results[0]
	b.ReportMetric(0, "ns/op")
	fmt.Printf("SQLite writer side by side, WAL, default autocheckpoint, 1 row of 200 B per transaction every %v, %v per phase (load average at start %s):\n", period, phase, load)
	for _, r := range results {
		b.ReportMetric(r.p50, r.name+"-p50-ms")
		b.ReportMetric(r.p99, r.name+"-p99-ms")
		line := fmt.Sprintf("  %-11s %4d commits: p50 %.2f ms  p99 %.2f ms  max %.1f ms", r.name, r.n, r.p50, r.p99, r.max)
		if r.name != "none" {
			b.ReportMetric(r.p99/base.p99, r.name+"-p99/none")
			b.ReportMetric(r.cpu, r.name+"-CPU-s")
			line += fmt.Sprintf(" (p99 %.2fx none) | CPU %.2f s (%.1f%% of a core)", r.p99/base.p99, r.cpu, r.cpu/phase.Seconds()*100)
			if len(r.lags) > 0 {
				b.ReportMetric(ms(r.lags[len(r.lags)/2]), r.name+"-lag-median-ms")
				b.ReportMetric(ms(r.lags[len(r.lags)-1]), r.name+"-lag-max-ms")
				var ls []string
				for _, l := range r.lags {
					ls = append(ls, fmt.Sprintf("%.0f", ms(l)))
				}
				line += fmt.Sprintf(" | lag %s ms (restore takes %.0f ms)", strings.Join(ls, ", "), ms(r.restore))
			}
			if r.note != "" {
				line += " | " + r.note
			}
		}
		fmt.Println(line)
	}
	if lsNote != "" {
		fmt.Println("  " + lsNote)
	}
}

// startMoreNATS starts a JetStream cluster of n servers on 127.0.0.1 and returns the
// client URL of every server.
func startMoreNATS(b *testing.B, n int) string {
	b.Helper()
	var nodes []*natsNode
	var routes, urls []string
	for i := range n {
		nd := &natsNode{name: fmt.Sprintf("n%d", i+1), port: testenv.FreePort(b), routePort: testenv.FreePort(b), store: b.TempDir()}
		nodes = append(nodes, nd)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", nd.routePort))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
	}
	b.Cleanup(func() {
		for _, nd := range nodes {
			if nd.srv != nil {
				nd.srv.Shutdown()
				nd.srv.WaitForShutdown()
			}
		}
	})
	for _, nd := range nodes {
		s, err := server.NewServer(&server.Options{
			ServerName: nd.name, Host: "127.0.0.1", Port: nd.port,
			JetStream: true, StoreDir: nd.store, NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "mmr", Host: "127.0.0.1", Port: nd.routePort},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			b.Fatal(err)
		}
		go s.Start()
		nd.srv = s
	}
	for _, nd := range nodes {
		if !nd.srv.ReadyForConnections(30 * time.Second) {
			b.Fatalf("nats %s not ready after 30s", nd.name)
		}
	}
	url := strings.Join(urls, ",")
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	var lastErr error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, lastErr = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "READY_PROBE", Subjects: []string{"ready.probe"}, Replicas: n})
		if lastErr == nil {
			lastErr = js.DeleteStream(ctx, "READY_PROBE")
		}
		cancel()
		if lastErr == nil {
			return url
		}
	}
	b.Fatalf("jetstream cluster not ready: %v", lastErr)
	return ""
}

// BenchmarkClusterWorkers measures the sink side of the cluster path: two hosts, each
// running `run --no-sinks` against a 3-server NATS cluster, are loaded with ~40 MB of
// JSONL each until every record is in their streams; then `sink s3` workers start, and
// the time from their start until both hosts' segments in S3 reach the last journaled
// record gives records/s and MB/s. Once with one worker serving both hosts, once with
// two workers, one per host (a host's stream is served by one worker at a time).
func BenchmarkClusterWorkers(b *testing.B) {
	const (
		nFiles   = 10
		perHost  = 40 << 20
		nHosts   = 2
		pollEach = 50 * time.Millisecond
	)
	load := loadavg()
	began := time.Now()
	url := startMoreNATS(b, 3)
	clusterUp := time.Since(began)
	s3 := testenv.StartS3(b)
	data := makeIngestData(nFiles, perHost)
	mb := float64(nHosts*data.total) / 1e6

	type result struct {
		recs     uint64
		secs     float64
		recsPerS float64
		mbs      float64
		segs     int
		hosts    []time.Duration // per host: worker start until its last record stored
	}
	run := func(workers int) result {
		bucket := "mmr-" + strings.ToLower(randomName())
		s3.CreateBucket(b, bucket)
		var cfgs, names, addrs []string
		var daemons []*daemon
		for h := range nHosts {
			dir := b.TempDir()
			src := filepath.Join(dir, "agents")
			os.MkdirAll(src, 0o755)
			name := fmt.Sprintf("bench-cw%d-%c", workers, 'a'+h)
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
			cfg := moreConfig(b, dir, name, src, addr, "s3://"+bucket+"/prod", s3, s3.Endpoint, fmt.Sprintf("nats:\n  url: %s\n", url))
			daemons = append(daemons, startMore(b, "daemon "+name, "objects land in", "run", "--no-sinks", "--config", cfg))
			fs, err := data.writeAll(src)
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range fs {
				f.Close()
			}
			cfgs, names, addrs = append(cfgs, cfg), append(names, name), append(addrs, addr)
		}
		lasts := make([]uint64, nHosts)
		var recs uint64
		for h := range nHosts {
			lasts[h] = waitSettled(b, addrs[h], 3*time.Second, 5*time.Minute, nil)
			recs += lasts[h]
		}
		st, err := s3store.New(context.Background(), s3store.Options{Bucket: bucket, Prefix: "prod",
			Endpoint: s3.Endpoint, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		var ws []*daemon
		if workers == 1 {
			ws = append(ws, startMore(b, "sink worker", "serving hosts", "sink", "s3", "--config", cfgs[0], "--host", names[0], "--host", names[1]))
		} else {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for h := range nHosts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d := startMore(b, "sink worker", "serving hosts", "sink", "s3", "--config", cfgs[h], "--host", names[h])
					mu.Lock()
					ws = append(ws, d)
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		// Done when each host's segments reach its last record.
		segs := 0
		hostDone := make([]time.Duration, nHosts)
		deadline := time.Now().Add(5 * time.Minute)
		for {
			done, n := true, 0
			for h := range nHosts {
				if hostDone[h] > 0 {
					continue
				}
				var top uint64
				err := st.List(context.Background(), segment.Prefix(names[h]), func(o objstore.ObjectInfo) error {
					if in, err := segment.ParseKey(o.Key); err == nil {
						top = max(top, in.LastSeq)
						n++
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if top >= lasts[h] {
					hostDone[h] = time.Since(start)
				} else {
					done = false
				}
			}
			if done {
				segs = n
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d worker(s): segments incomplete after 5 minutes", workers)
			}
			time.Sleep(pollEach)
		}
		took := time.Since(start).Seconds()
		for _, d := range append(ws, daemons...) {
			d.kill()
		}
		return result{recs, took, float64(recs) / took, mb / took, segs, hostDone}
	}
	one := run(1)
	two := run(2)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(one.recsPerS, "one-records/s")
	b.ReportMetric(one.mbs, "one-MB/s")
	b.ReportMetric(two.recsPerS, "two-records/s")
	b.ReportMetric(two.mbs, "two-MB/s")
	b.ReportMetric(two.mbs/one.mbs, "two/one")
	fmt.Printf("cluster sink workers, 3 NATS servers (up in %.1f s), %d hosts x %.1f MB of JSONL already in their streams, drained to S3 (load average at start %s):\n",
		clusterUp.Seconds(), nHosts, float64(data.total)/1e6, load)
	for _, r := range []struct {
		name string
		r    result
	}{{"one worker ", one}, {"two workers", two}} {
		fmt.Printf("  %s %6d records in %.2f s: %7.0f records/s  %6.1f MB/s  (%d segments; hosts done at %.2f s, %.2f s)\n",
			r.name, r.r.recs, r.r.secs, r.r.recsPerS, r.r.mbs, r.r.segs, r.r.hosts[0].Seconds(), r.r.hosts[1].Seconds())
	}
	fmt.Printf("  two/one %.2f\n", two.mbs/one.mbs)
}

// bucketObjects opens the bucket's prod/ prefix directly on the S3 server and returns it
// with a function listing its objects (key → size).
func bucketObjects(b *testing.B, s3 *testenv.S3Server, bucket string) (objstore.Store, func() map[string]int64) {
	st, err := s3store.New(context.Background(), s3store.Options{Bucket: bucket, Prefix: "prod",
		Endpoint: s3.Endpoint, AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	return st, func() map[string]int64 {
		m := map[string]int64{}
		if err := st.List(context.Background(), "", func(o objstore.ObjectInfo) error { m[o.Key] = o.Size; return nil }); err != nil {
			b.Fatal(err)
		}
		return m
	}
}
