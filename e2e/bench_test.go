package e2e

// Benchmarks behind `make bench` and docs/BENCHMARKS.md. Each runs the real daemon
// against a real S3 server (Versity S3 Gateway) with the default flush_interval (1s),
// does its whole measurement once whatever b.N is, and reports its figures with
// b.ReportMetric plus one human-readable line.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
	"github.com/mmreplicate/mmreplicate/segment"
)

// benchEnv is one daemon's config against a real S3 server, with every setting that
// matters for the figures left at its default (flush_interval 1s, debounce 100ms).
type benchEnv struct {
	host, src, config string
	http              string // host:port of /status
	s3                *testenv.S3Server
	bucket            string
}

const benchPrefix = "prod"

func newBenchEnv(b *testing.B, host string) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	e := &benchEnv{host: host, src: filepath.Join(dir, "agents"), config: filepath.Join(dir, "mmreplicate.yml"),
		s3: testenv.StartS3(b), bucket: "mmr-" + strings.ToLower(randomName()),
		http: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))}
	if err := os.MkdirAll(e.src, 0o755); err != nil {
		b.Fatal(err)
	}
	e.s3.CreateBucket(b, e.bucket)
	cfg := fmt.Sprintf("host: %s\ndata_dir: %s\nsources:\n  - name: sessions\n    path: %s\n    include: [\"**/*.jsonl\"]\n"+
		"http:\n  listen: %s\ns3:\n  url: s3://%s/%s\n  endpoint: %s\n  access_key_id: %s\n  secret_access_key: %s\n",
		host, filepath.Join(dir, "data"), e.src, e.http, e.bucket, benchPrefix, e.s3.Endpoint, e.s3.AccessKey, e.s3.SecretKey)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return e
}

// start runs `mmreplicate run` and waits until it says where objects land.
func (e *benchEnv) start(b *testing.B) *daemon {
	b.Helper()
	d := &daemon{cmd: exec.Command(binary, "run", "--config", e.config), out: &syncBuf{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { d.exit = d.cmd.Wait(); close(d.done) }()
	b.Cleanup(d.kill)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(d.out.String(), "objects land in") {
		select {
		case <-d.done:
			b.Fatalf("daemon exited during start-up: %v\n%s", d.exit, d.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("daemon not ready after 60s:\n%s", d.out)
		}
	}
	return d
}

// stopDaemon sends SIGTERM and expects a clean exit.
func stopDaemon(b *testing.B, d *daemon) {
	b.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		b.Fatalf("daemon did not stop within 60s:\n%s", d.out)
	}
	if d.exit != nil {
		b.Fatalf("daemon exit: %v\n%s", d.exit, d.out)
	}
}

// store is a client of the daemon's target, used only to watch what has arrived.
func (e *benchEnv) store(b *testing.B) objstore.Store {
	b.Helper()
	st, err := s3store.New(context.Background(), s3store.Options{Bucket: e.bucket, Prefix: benchPrefix,
		Endpoint: e.s3.Endpoint, AccessKeyID: e.s3.AccessKey, SecretAccessKey: e.s3.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// segPoller lists a host's segment prefix and hands each segment to fn once, with the
// time the listing that first showed it returned: an upper bound on when it was in S3.
type segPoller struct {
	store  objstore.Store
	prefix string
	seen   map[string]bool
	starts []time.Time // start of every listing, for the resolution figure
	lists  time.Duration
	gets   time.Duration
}

func newSegPoller(st objstore.Store, host string) *segPoller {
	return &segPoller{store: st, prefix: segment.Prefix(host), seen: map[string]bool{}}
}

func (p *segPoller) poll(ctx context.Context, fn func(recs []journal.Record, listed time.Time)) error {
	start := time.Now()
	p.starts = append(p.starts, start)
	var fresh []string
	err := p.store.List(ctx, p.prefix, func(o objstore.ObjectInfo) error {
		if !p.seen[o.Key] {
			fresh = append(fresh, o.Key)
		}
		return nil
	})
	listed := time.Now()
	p.lists += listed.Sub(start)
	if err != nil {
		return err
	}
	for _, key := range fresh {
		in, err := segment.ParseKey(key)
		if err != nil {
			return err
		}
		body, err := p.store.Get(ctx, key)
		if err != nil {
			return err
		}
		recs, err := segment.Decode(body)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if err := in.Check(recs); err != nil {
			return err
		}
		p.seen[key] = true
		fn(recs, listed)
	}
	p.gets += time.Since(listed)
	return nil
}

// run polls every period until stop is closed; the first error ends it. A poll in
// flight finishes rather than being cancelled, which keeps the S3 client quiet.
func (p *segPoller) run(stop <-chan struct{}, period time.Duration, fn func([]journal.Record, time.Time)) error {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		if err := p.poll(context.Background(), fn); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

// cycle is the mean and the largest time between the starts of two listings.
func (p *segPoller) cycle() (mean, worst time.Duration) {
	if len(p.starts) < 2 {
		return 0, 0
	}
	for i := 1; i < len(p.starts); i++ {
		worst = max(worst, p.starts[i].Sub(p.starts[i-1]))
	}
	return p.starts[len(p.starts)-1].Sub(p.starts[0]) / time.Duration(len(p.starts)-1), worst
}

// loadavg is /proc/loadavg's first three fields: other work on the machine shows in
// the figures, so each benchmark prints it.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// pct is the nearest-rank percentile of sorted durations, in milliseconds.
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return ms(sorted[min(max(i, 0), len(sorted)-1)])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkLossWindow measures, per line, the time from its write() returning to the
// first listing of the S3 bucket that shows a segment holding it: under a steady load
// (4 files, one line every 20 ms round-robin) and in quiet spells (one line every 2 s),
// where the sink's leading-edge flush applies. It is the loss window on total host loss.
func BenchmarkLossWindow(b *testing.B) {
	const (
		nFiles       = 4
		steadyPeriod = 20 * time.Millisecond
		steadyFor    = 20 * time.Second
		quietPeriod  = 2 * time.Second
		quietLines   = 10
		pollPeriod   = 10 * time.Millisecond
	)
	load := loadavg()
	e := newBenchEnv(b, "bench-loss")
	files := make([]*os.File, nFiles)
	for i := range files {
		p := filepath.Join(e.src, fmt.Sprintf("agent-%d/sessions/s%d.jsonl", i, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	d := e.start(b)

	// What the poller learns, per line id: when a listing first showed it, and its
	// capture time (the journal's time stamp), which splits the latency in two.
	seen := map[string]time.Time{}
	captured := map[string]time.Time{}
	var segTimes []time.Time // listing time of each new segment
	var mu sync.Mutex
	poller := newSegPoller(e.store(b), e.host)
	stop := make(chan struct{})
	pollErr := make(chan error, 1)
	go func() {
		pollErr <- poller.run(stop, pollPeriod, func(recs []journal.Record, listed time.Time) {
			mu.Lock()
			defer mu.Unlock()
			segTimes = append(segTimes, listed)
			for _, r := range recs {
				for _, line := range bytes.SplitAfter(r.Data, []byte("\n")) {
					var l struct{ ID string }
					if len(line) == 0 || json.Unmarshal(line, &l) != nil || l.ID == "" {
						continue
					}
					if _, ok := seen[l.ID]; !ok {
						seen[l.ID], captured[l.ID] = listed, r.CaptureTime()
					}
				}
			}
		})
	}()
	defer func() {
		if stop != nil {
			close(stop)
		}
	}()

	written := map[string]time.Time{}
	pad := strings.Repeat("lorem ipsum dolor sit amet ", 8)
	write := func(id string, file int) {
		line := fmt.Sprintf(`{"id":%q,"t":%d,"type":"message","role":"assistant","text":%q}`+"\n", id, time.Now().UnixNano(), pad)
		if _, err := files[file].WriteString(line); err != nil {
			b.Fatal(err)
		}
		written[id] = time.Now()
	}
	waitSeen := func(ids []string, timeout time.Duration) {
		deadline := time.Now().Add(timeout)
		for {
			mu.Lock()
			missing := 0
			for _, id := range ids {
				if _, ok := seen[id]; !ok {
					missing++
				}
			}
			mu.Unlock()
			if missing == 0 {
				return
			}
			select {
			case err := <-pollErr:
				b.Fatalf("poller: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d lines not in S3 after %v\n%s", missing, len(ids), timeout, d.out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Warm up: every file known to the watcher, the S3 connection open.
	var warm []string
	for i := range files {
		id := fmt.Sprintf("w-%d", i)
		write(id, i)
		warm = append(warm, id)
	}
	waitSeen(warm, 30*time.Second)
	time.Sleep(2 * time.Second)

	// Steady load, paced against the start so that slow writes do not stretch it.
	var steady []string
	segsBefore := func() int { mu.Lock(); defer mu.Unlock(); return len(segTimes) }()
	t0 := time.Now()
	for i := 0; time.Since(t0) < steadyFor; i++ {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * steadyPeriod)))
		id := fmt.Sprintf("s-%d", i)
		write(id, i%nFiles)
		steady = append(steady, id)
	}
	steadyEnd := time.Now()
	// Quiet spells: each line comes well after the previous upload.
	var quiet []string
	for i := range quietLines {
		time.Sleep(time.Until(steadyEnd.Add(time.Duration(i+1) * quietPeriod)))
		id := fmt.Sprintf("q-%d", i)
		write(id, i%nFiles)
		quiet = append(quiet, id)
	}
	waitSeen(append(slices.Clone(steady), quiet...), 30*time.Second)
	close(stop)
	stop = nil
	if err := <-pollErr; err != nil {
		b.Fatalf("poller: %v", err)
	}
	stopDaemon(b, d)

	type split struct{ total, capture, upload []time.Duration }
	measure := func(ids []string) split {
		var s split
		for _, id := range ids {
			w := written[id]
			s.total = append(s.total, seen[id].Sub(w))
			s.capture = append(s.capture, captured[id].Sub(w))
			s.upload = append(s.upload, seen[id].Sub(captured[id]))
		}
		slices.Sort(s.total)
		slices.Sort(s.capture)
		slices.Sort(s.upload)
		return s
	}
	st, qu := measure(steady), measure(quiet)
	steadySegs := 0
	for _, t := range segTimes[segsBefore:] {
		if t.After(t0) && !t.After(steadyEnd.Add(time.Second)) {
			steadySegs++
		}
	}
	mean, worst := poller.cycle()

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(pct(st.total, 50), "steady-p50-ms")
	b.ReportMetric(pct(st.total, 99), "steady-p99-ms")
	b.ReportMetric(pct(st.total, 100), "steady-max-ms")
	b.ReportMetric(pct(qu.total, 50), "quiet-p50-ms")
	b.ReportMetric(pct(qu.total, 99), "quiet-p99-ms")
	b.ReportMetric(pct(qu.total, 100), "quiet-max-ms")
	b.ReportMetric(ms(mean), "poll-ms")
	b.ReportMetric(float64(steadySegs)/steadyEnd.Add(time.Second).Sub(t0).Seconds(), "steady-PUT/s")
	fmt.Printf("loss window, write() to line in an S3 object (flush_interval 1s, poll every %.1f ms, worst gap %.1f ms; load average at start %s):\n", ms(mean), ms(worst), load)
	for _, r := range []struct {
		name string
		n    int
		s    split
	}{{"steady", len(steady), st}, {"quiet", len(quiet), qu}} {
		fmt.Printf("  %-6s %4d lines: p50 %6.0f ms  p99 %6.0f ms  max %6.0f ms | write->journal p50 %4.0f max %4.0f ms | journal->S3 p50 %4.0f max %4.0f ms\n",
			r.name, r.n, pct(r.s.total, 50), pct(r.s.total, 99), pct(r.s.total, 100),
			pct(r.s.capture, 50), pct(r.s.capture, 100), pct(r.s.upload, 50), pct(r.s.upload, 100))
	}
	fmt.Printf("  steady: %d segments in %.1f s\n", steadySegs, steadyEnd.Add(time.Second).Sub(t0).Seconds())
}

// ingestData is a realistic JSONL load: per file, its bytes; and the order in which
// lines are written (round-robin over the files), one write() per line.
type ingestData struct {
	files [][]byte
	order []struct{ file, start, end int }
	total int
}

func makeIngestData(nFiles, total int) *ingestData {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields(`the a to of and in is it that for you with on this be are as not
		file function return error value test line build config we can will should run data
		session agent tool call result output user assistant message context token model
		import package go struct type string int bool nil err if else range make append`)
	d := &ingestData{files: make([][]byte, nFiles)}
	perFile := make([][][2]int, nFiles)
	for f := 0; d.total < total; f = (f + 1) % nFiles {
		buf := d.files[f]
		start := len(buf)
		size := 200 + rng.IntN(3900)
		buf = fmt.Appendf(buf, `{"type":"message","id":"%016x","timestamp":"2026-11-26T18:00:%02d.%03dZ","role":"%s","content":[{"type":"text","text":"`,
			rng.Uint64(), rng.IntN(60), rng.IntN(1000), []string{"user", "assistant", "toolResult"}[rng.IntN(3)])
		for len(buf)-start < size-40 {
			if rng.IntN(20) == 0 {
				buf = fmt.Appendf(buf, "%016x%016x ", rng.Uint64(), rng.Uint64()) // hashes, ids
			} else {
				buf = append(append(buf, words[rng.IntN(len(words))]...), ' ')
			}
		}
		buf = append(buf, `"}],"usage":{"input":`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(200000)), 10)
		buf = append(buf, "}}\n"...)
		d.files[f] = buf
		perFile[f] = append(perFile[f], [2]int{start, len(buf)})
		d.total += len(buf) - start
	}
	for i := 0; ; i++ {
		more := false
		for f := range perFile {
			if i < len(perFile[f]) {
				d.order = append(d.order, struct{ file, start, end int }{f, perFile[f][i][0], perFile[f][i][1]})
				more = true
			}
		}
		if !more {
			break
		}
	}
	return d
}

// writeAll appends every line to its file under dir, one write() per line.
func (d *ingestData) writeAll(dir string) ([]*os.File, error) {
	fs := make([]*os.File, len(d.files))
	for i := range fs {
		p := filepath.Join(dir, fmt.Sprintf("agent-%02d/sessions/main.jsonl", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		fs[i] = f
	}
	for _, o := range d.order {
		if _, err := fs[o.file].Write(d.files[o.file][o.start:o.end]); err != nil {
			return nil, err
		}
	}
	return fs, nil
}

// stageTimes samples the daemon's /status every 50 ms until stop is closed, so that an
// ingest can be split into stages: journaled, acknowledged by NATS, stored by the sink.
// Not more often: each /status reads the oldest unstored record from the journal, which
// under a backlog costs the daemon measurable CPU.
type stageTimes struct {
	at                       []time.Time
	journal, published, sink []uint64
}

func (st *stageTimes) run(addr string, stop <-chan struct{}) {
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get("http://" + addr + "/status")
		if err != nil {
			continue
		}
		var s struct {
			Journal struct {
				LastSeq      uint64 `json:"last_seq"`
				PublishedSeq uint64 `json:"published_seq"`
			}
			Sinks []struct {
				StoredSeq uint64 `json:"stored_seq"`
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil || len(s.Sinks) == 0 {
			continue
		}
		st.at = append(st.at, time.Now())
		st.journal = append(st.journal, s.Journal.LastSeq)
		st.published = append(st.published, s.Journal.PublishedSeq)
		st.sink = append(st.sink, s.Sinks[0].StoredSeq)
	}
}

// reached is the first sample time at which seqs got to seq, relative to start.
func (st *stageTimes) reached(seqs []uint64, seq uint64, start time.Time) time.Duration {
	for i, v := range seqs {
		if v >= seq {
			return st.at[i].Sub(start)
		}
	}
	return -1
}

// procStatus reads one "Key: value kB" field of /proc/<pid>/status, in kB.
func procStatus(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// procCPU is a process's user+system CPU time so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)  // utime, field 14
	k, _ := strconv.ParseInt(fields[12], 10, 64)  // stime, field 15
	return time.Duration(u+k) * time.Second / 100 // USER_HZ is 100 on Linux
}

// BenchmarkIngest writes ~200 MB of JSONL into 20 files as fast as it can with the daemon
// running against a real S3 server, and measures the time from the first write until
// the bucket's segments hold every byte. The baseline, in the same run on the same disk,
// is a raw append-copy of the same bytes in the same order, fsynced at the end.
func BenchmarkIngest(b *testing.B) {
	const (
		nFiles     = 20
		totalBytes = 200 << 20
		pollPeriod = 50 * time.Millisecond
	)
	load := loadavg()
	data := makeIngestData(nFiles, totalBytes)
	mb := float64(data.total) / 1e6

	// Baseline: the same bytes, same order, same write() calls, then fsync each file.
	rawDir := filepath.Join(b.TempDir(), "raw")
	rawStart := time.Now()
	fs, err := data.writeAll(rawDir)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fs {
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	rawTime := time.Since(rawStart)
	if err := os.RemoveAll(rawDir); err != nil {
		b.Fatal(err)
	}

	e := newBenchEnv(b, "bench-ingest")
	d := e.start(b)
	pid := d.cmd.Process.Pid
	cpu0 := procCPU(pid)
	want := map[string]int64{}
	for i := range data.files {
		want[fmt.Sprintf("agent-%02d/sessions/main.jsonl", i)] = int64(len(data.files[i]))
	}
	var mu sync.Mutex
	var stored int64
	var lastCapture, doneAt time.Time
	var lastSeq uint64
	ends := map[string]int64{}
	done := make(chan struct{})
	complete := func() bool {
		for p, n := range want {
			if ends[p] != n {
				return false
			}
		}
		return stored >= int64(data.total)
	}
	trace := os.Getenv("MMR_BENCH_TRACE") != ""
	start := time.Now() // reset just before the first write
	poller := newSegPoller(e.store(b), e.host)
	stop := make(chan struct{})
	pollErr := make(chan error, 1)
	go func() {
		pollErr <- poller.run(stop, pollPeriod, func(recs []journal.Record, listed time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if trace {
				n := 0
				for _, r := range recs {
					n += len(r.Data)
				}
				b.Logf("segment listed at %.3f s: %d records, %.1f MB, captured %.3f-%.3f s",
					listed.Sub(start).Seconds(), len(recs), float64(n)/1e6,
					recs[0].CaptureTime().Sub(start).Seconds(), recs[len(recs)-1].CaptureTime().Sub(start).Seconds())
			}
			for _, r := range recs {
				stored += int64(len(r.Data))
				ends[r.Path] = max(ends[r.Path], r.End())
				if r.Seq > lastSeq {
					lastSeq, lastCapture = r.Seq, r.CaptureTime()
				}
			}
			if doneAt.IsZero() && complete() {
				doneAt = listed
				close(done)
			}
		})
	}()

	stages := &stageTimes{}
	stagesDone := make(chan struct{})
	go func() { stages.run(e.http, stop); close(stagesDone) }()

	self0 := procCPU(os.Getpid())
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	fs, err = data.writeAll(e.src)
	if err != nil {
		b.Fatal(err)
	}
	writeTime := time.Since(start)
	for _, f := range fs {
		f.Close()
	}
	select {
	case <-done:
	case err := <-pollErr:
		b.Fatalf("poller: %v", err)
	case <-time.After(10 * time.Minute):
		b.Fatalf("store incomplete after 10 minutes: %d of %d bytes\n%s", stored, data.total, d.out)
	}
	close(stop)
	if err := <-pollErr; err != nil {
		b.Fatalf("poller: %v", err)
	}
	<-stagesDone
	hwm, cpu, self := procStatus(pid, "VmHWM"), procCPU(pid)-cpu0, procCPU(os.Getpid())-self0
	stopDaemon(b, d)

	mu.Lock()
	pipeTime, captured := doneAt.Sub(start), lastCapture.Sub(start)
	journaled := stages.reached(stages.journal, lastSeq, start)
	published := stages.reached(stages.published, lastSeq, start)
	put := stages.reached(stages.sink, lastSeq, start)
	mu.Unlock()
	segs := len(poller.seen)
	rawMBs, pipeMBs := mb/rawTime.Seconds(), mb/pipeTime.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(pipeMBs, "MB/s")
	b.ReportMetric(rawMBs, "raw-MB/s")
	b.ReportMetric(pipeMBs/rawMBs, "ratio")
	b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
	b.ReportMetric(cpu.Seconds(), "daemon-CPU-s")
	fmt.Printf("ingest, %d files, %.1f MB of JSONL to S3 (flush_interval 1s, poll every %v; load average at start %s):\n", nFiles, mb, pollPeriod, load)
	fmt.Printf("  pipeline %.1f MB/s in %.2f s; from the first write: writes done %.2f s, last capture %.2f s, journaled %.2f s, in NATS %.2f s, sink PUT done %.2f s, seen in S3 %.2f s (%d segments)\n",
		pipeMBs, pipeTime.Seconds(), writeTime.Seconds(), captured.Seconds(), journaled.Seconds(), published.Seconds(), put.Seconds(), pipeTime.Seconds(), segs)
	fmt.Printf("  raw append-copy + fsync %.1f MB/s (%.2f s); ratio %.2f; daemon peak RSS %.0f MiB, daemon CPU %.1f s; writer and poller CPU %.1f s\n",
		rawMBs, rawTime.Seconds(), pipeMBs/rawMBs, float64(hwm)/1024, cpu.Seconds(), self.Seconds())
}
