package e2e

// BenchmarkSixAgents, behind the "Six-agent workload" section of docs/BENCHMARKS.md: the
// daemon with default settings against a real S3 server under a synthetic agent host,
// side by side with the 6-hourly `git add -A && git commit` approach on the same files.
// Like the other benchmarks, it measures once whatever b.N is.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/faultproxy"
	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/journal"
)

// putPricePer1000 is the public AWS list price (us-east-1, S3 Standard) for 1,000
// PUT, COPY, POST or LIST requests; GETs cost 0.0004 USD per 1,000.
const (
	putPricePer1000 = 0.005
	hoursPerMonth   = 730
)

// agentHost is the synthetic host: per agent a session transcript (JSONL, appended), a
// workspace report (rewritten through a temp file and a rename), a SQLite memory
// database in WAL mode, and new workspace files now and then.
type agentHost struct {
	src     string
	mu      sync.Mutex
	written map[string]time.Time // JSONL line id -> write() returned
	counts  struct{ lines, lineBytes, reports, commits, created int }
}

var agentWords = strings.Fields(`the a to of and in is it that for with on this be are as not
	file function return error value test line build config run data session agent tool call
	result output user assistant message context token model report draft revenue domain site`)

func agentText(rng *rand.Rand, n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(agentWords[rng.IntN(len(agentWords))])
		sb.WriteByte(' ')
	}
	return sb.String()[:n]
}

// seed gives each agent some history before the daemon starts: a 256 KB transcript, a
// report and a memory database of 500 rows.
func (h *agentHost) seed(a int) error {
	rng := rand.New(rand.NewPCG(uint64(a), 7))
	dir := filepath.Join(h.src, fmt.Sprintf("agent-%d", a))
	for _, sub := range []string{"sessions", "workspace/drafts", "memory"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	for i := 0; buf.Len() < 256<<10; i++ {
		fmt.Fprintf(&buf, `{"id":"seed-%d-%d","type":"message","role":"user","text":%q}`+"\n", a, i, agentText(rng, 200+rng.IntN(3800)))
	}
	if err := os.WriteFile(filepath.Join(dir, "sessions", "main.jsonl"), buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "workspace", "report.md"), []byte(agentText(rng, 20<<10)), 0o644); err != nil {
		return err
	}
	db, err := openAgentDB(filepath.Join(dir, "memory", "memory.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE mem (id INTEGER PRIMARY KEY, t INTEGER, v BLOB)"); err != nil {
		return err
	}
	for i := range 500 {
		if _, err := db.Exec("INSERT INTO mem (t, v) VALUES (?, randomblob(?))", i, 200+rng.IntN(1800)); err != nil {
			return err
		}
	}
	return nil
}

func openAgentDB(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// run is one agent for d: a JSONL line (200 B-4 KB) every 1-5 s, the report (5-50 KB)
// rewritten every 12-18 s, a SQLite transaction every 4-6 s, and a new workspace file
// (1-20 KB) every 60 s. Every loop is bounded by d.
func (h *agentHost) run(a int, d time.Duration) error {
	rng := rand.New(rand.NewPCG(uint64(a), 11))
	dir := filepath.Join(h.src, fmt.Sprintf("agent-%d", a))
	f, err := os.OpenFile(filepath.Join(dir, "sessions", "main.jsonl"), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	db, err := openAgentDB(filepath.Join(dir, "memory", "memory.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	secs := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(time.Second))
	}
	t0 := time.Now()
	end := t0.Add(d)
	nextLine, nextReport, nextSQL, nextNew := t0.Add(secs(0, 2)), t0.Add(secs(0, 15)), t0.Add(secs(0, 5)), t0.Add(secs(5, 60))
	for line, created := 0, 0; ; {
		next := nextLine
		for _, t := range []time.Time{nextReport, nextSQL, nextNew} {
			if t.Before(next) {
				next = t
			}
		}
		if next.After(end) {
			return nil
		}
		time.Sleep(time.Until(next))
		switch next {
		case nextLine:
			id := fmt.Sprintf("a%d-%d", a, line)
			line++
			s := fmt.Sprintf(`{"id":%q,"t":%d,"type":"message","role":%q,"text":%q}`+"\n",
				id, time.Now().UnixNano(), []string{"user", "assistant", "toolResult"}[rng.IntN(3)], agentText(rng, 150+rng.IntN(3850)))
			if _, err := f.WriteString(s); err != nil {
				return err
			}
			h.mu.Lock()
			h.written[id] = time.Now()
			h.counts.lines++
			h.counts.lineBytes += len(s)
			h.mu.Unlock()
			nextLine = nextLine.Add(secs(1, 5))
		case nextReport:
			tmp := filepath.Join(dir, "workspace", ".report.md.tmp")
			if err := os.WriteFile(tmp, []byte(agentText(rng, 5<<10+rng.IntN(45<<10))), 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, filepath.Join(dir, "workspace", "report.md")); err != nil {
				return err
			}
			h.mu.Lock()
			h.counts.reports++
			h.mu.Unlock()
			nextReport = nextReport.Add(secs(12, 18))
		case nextSQL:
			tx, err := db.Begin()
			if err != nil {
				return err
			}
			for range 1 + rng.IntN(3) {
				if _, err := tx.Exec("INSERT INTO mem (t, v) VALUES (?, randomblob(?))", time.Now().UnixNano(), 200+rng.IntN(1800)); err != nil {
					tx.Rollback()
					return err
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			h.mu.Lock()
			h.counts.commits++
			h.mu.Unlock()
			nextSQL = nextSQL.Add(secs(4, 6))
		case nextNew:
			p := filepath.Join(dir, "workspace", "drafts", fmt.Sprintf("draft-%03d.md", created))
			created++
			if err := os.WriteFile(p, []byte(agentText(rng, 1<<10+rng.IntN(19<<10))), 0o644); err != nil {
				return err
			}
			h.mu.Lock()
			h.counts.created++
			h.mu.Unlock()
			nextNew = nextNew.Add(60 * time.Second)
		}
	}
}

// timedCPU runs a command and returns its wall time and its CPU (user+system, children
// included since the command waited for them).
func timedCPU(b *testing.B, dir string, name string, args ...string) (wall, cpu time.Duration) {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost")
	t := time.Now()
	out, err := cmd.CombinedOutput()
	wall = time.Since(t)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkSixAgents runs six synthetic agents for 90 s under the daemon (default
// settings, one source over everything, a real S3 server behind a pass-through proxy that
// counts requests) and measures the daemon's CPU and RSS, the objects and bytes it adds
// to the bucket, the requests it sends, and each JSONL line's loss window (write() until
// a listing of the bucket, every 50 ms, shows a segment holding it). The baseline, in the
// same run, is one 6-hourly tick of the git approach over the same files: `cp -a` of the
// tree into a plain repository holding the state from before the window, then
// `git add -A && git commit`.
func BenchmarkSixAgents(b *testing.B) {
	const (
		nAgents    = 6
		window     = 90 * time.Second
		pollPeriod = 50 * time.Millisecond
		gitTick    = 6 * time.Hour
	)
	load := loadavg()
	dir := b.TempDir()
	h := &agentHost{src: filepath.Join(dir, "agents"), written: map[string]time.Time{}}
	for a := range nAgents {
		if err := h.seed(a); err != nil {
			b.Fatal(err)
		}
	}

	// Baseline repository: the state before the window, already committed.
	repo := filepath.Join(dir, "data-repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		b.Fatal(err)
	}
	gitOut(b, "-C", repo, "init", "-q")
	timedCPU(b, dir, "cp", "-a", h.src+"/.", repo+"/")
	gitOut(b, "-C", repo, "add", "-A")
	gitOut(b, "-C", repo, "commit", "-q", "-m", "before")
	_, git0 := sizeOfTree(filepath.Join(repo, ".git"))

	s3 := testenv.StartS3(b)
	px, err := faultproxy.New(s3.Endpoint, faultproxy.Options{MaxHold: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { px.Close() })
	bucket := "mmr-" + strings.ToLower(randomName())
	s3.CreateBucket(b, bucket)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	host := "bench-agents"
	cfg := moreConfig(b, filepath.Join(dir), host, h.src, addr, "s3://"+bucket+"/prod", s3, px.URL(), "")
	d := startMore(b, "daemon", "objects land in", "run", "--config", cfg)
	pid := d.cmd.Process.Pid
	waitSettled(b, addr, 3*time.Second, 3*time.Minute, nil)

	st, objects := bucketObjects(b, s3, bucket)

	// The poller reads the bucket directly, not through the counting proxy.
	seen := map[string]time.Time{}
	var mu sync.Mutex
	poller := newSegPoller(st, host)
	if err := poller.poll(context.Background(), func([]journal.Record, time.Time) {}); err != nil {
		b.Fatal(err) // segments of the initial sync: seen, not decoded for lines
	}
	stop := make(chan struct{})
	pollErr := make(chan error, 1)
	go func() {
		pollErr <- poller.run(stop, pollPeriod, func(recs []journal.Record, listed time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				if !strings.HasSuffix(r.Path, ".jsonl") {
					continue
				}
				for _, line := range bytes.SplitAfter(r.Data, []byte("\n")) {
					var l struct{ ID string }
					if len(line) == 0 || json.Unmarshal(line, &l) != nil || l.ID == "" {
						continue
					}
					if _, ok := seen[l.ID]; !ok {
						seen[l.ID] = listed
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

	before := objects()
	req0 := px.Stats()
	cpu0, t0 := procCPU(pid), time.Now()
	var rssMax int64
	samplerDone := make(chan struct{})
	windowOver := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for {
			if r := procStatus(pid, "VmRSS"); r > 0 {
				mu.Lock()
				rssMax = max(rssMax, r)
				mu.Unlock()
			}
			select {
			case <-windowOver:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	errs := make(chan error, nAgents)
	for a := range nAgents {
		go func() { errs <- h.run(a, window) }()
	}
	for range nAgents {
		if err := <-errs; err != nil {
			b.Fatalf("agent: %v", err)
		}
	}
	cpu, wall := procCPU(pid)-cpu0, time.Since(t0)
	close(windowOver)
	<-samplerDone

	// Every line written must reach a segment; then everything settles.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for id := range h.written {
			if _, ok := seen[id]; !ok {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case err := <-pollErr:
			b.Fatalf("poller: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d lines not in S3 60 s after the window\n%s", missing, len(h.written), d.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	stop = nil
	if err := <-pollErr; err != nil {
		b.Fatalf("poller: %v", err)
	}
	waitSettled(b, addr, 2*time.Second, time.Minute, nil)
	req1 := px.Stats()
	after := objects()
	stopDaemon(b, d)

	var newSegs, newBlobs, newManifests, newOther int
	var added, segBytes, blobBytes int64
	for k, n := range after {
		if m, ok := before[k]; ok && m == n {
			continue
		}
		added += n - before[k]
		switch {
		case strings.Contains(k, "/segments/"):
			newSegs++
			segBytes += n - before[k]
		case strings.Contains(k, "/manifests/"):
			newManifests++
		case strings.HasPrefix(k, "blobs/") || strings.Contains(k, "/blobs/"):
			newBlobs++
			blobBytes += n - before[k]
		default:
			newOther++
		}
	}
	newObjects := newSegs + newBlobs + newManifests + newOther
	puts := req1.ByMethod["PUT"].Seen - req0.ByMethod["PUT"].Seen
	posts := req1.ByMethod["POST"].Seen - req0.ByMethod["POST"].Seen
	gets := req1.ByMethod["GET"].Seen - req0.ByMethod["GET"].Seen
	allReqs := req1.Seen - req0.Seen
	perHour := 3600 / wall.Seconds()
	putsPerHour := float64(puts+posts) * perHour
	objPerHour := float64(newObjects) * perHour
	monthly := putsPerHour * hoursPerMonth / 1000 * putPricePer1000
	// Upper bound: every other request (GET, HEAD, LIST) priced as a LIST, like a PUT.
	monthlyAll := float64(allReqs) * perHour * hoursPerMonth / 1000 * putPricePer1000

	var lat []time.Duration
	for id, w := range h.written {
		lat = append(lat, seen[id].Sub(w))
	}
	slices.Sort(lat)

	// Baseline: one 6-hourly tick over the same files, now that the writers stopped.
	cpWall, cpCPU := timedCPU(b, dir, "cp", "-a", h.src+"/.", repo+"/")
	addWall, addCPU := timedCPU(b, repo, "git", "add", "-A")
	ciWall, ciCPU := timedCPU(b, repo, "git", "commit", "-q", "-m", "tick")
	_, git1 := sizeOfTree(filepath.Join(repo, ".git"))
	gitWall, gitCPU := cpWall+addWall+ciWall, cpCPU+addCPU+ciCPU
	gitGrowth := git1 - git0

	mmrCPUPerHour := cpu.Seconds() * perHour
	gitCPUPerHour := gitCPU.Seconds() / gitTick.Hours()
	cpuPct := cpu.Seconds() / wall.Seconds() * 100
	mmrBytesPerHour := float64(added) * perHour
	gitBytesPerHour := float64(gitGrowth) / gitTick.Hours()

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(cpuPct, "CPU-%")
	b.ReportMetric(float64(rssMax)/1024, "RSS-max-MiB")
	b.ReportMetric(putsPerHour, "PUTs/h")
	b.ReportMetric(monthly, "USD/month")
	b.ReportMetric(monthlyAll, "USD/month-all-req")
	b.ReportMetric(pct(lat, 50), "loss-p50-ms")
	b.ReportMetric(pct(lat, 100), "loss-max-ms")
	b.ReportMetric(mmrCPUPerHour, "CPU-s/h")
	b.ReportMetric(gitCPUPerHour, "git-CPU-s/h")
	b.ReportMetric(mmrBytesPerHour/1e6, "bucket-MB/h")
	b.ReportMetric(float64(gitGrowth)/1e6, "git-tick-MB")

	h.mu.Lock()
	c := h.counts
	h.mu.Unlock()
	fmt.Printf("six agents for %.1f s (%d JSONL lines, %.2f MB; %d report rewrites; %d SQLite commits; %d new files), daemon defaults, poll every %v (load average at start %s):\n",
		wall.Seconds(), c.lines, float64(c.lineBytes)/1e6, c.reports, c.commits, c.created, pollPeriod, load)
	fmt.Printf("  mmreplicate: CPU %.2f s = %.2f%% of a core (%.0f CPU-s/h); RSS max %.1f MiB; new objects %d (%d segments, %d blobs, %d manifests, %d other) = %.0f/h; "+
		"requests %d (PUT %d, POST %d, GET %d) = %.0f PUT/h = %.2f USD/month at %.3f USD per 1,000 PUT (%.2f with every request priced as a PUT); bucket +%.2f MB (segments %.2f, blobs %.2f; %.1f MB/h); loss window p50 %.0f ms, max %.0f ms over %d lines\n",
		cpu.Seconds(), cpuPct, mmrCPUPerHour, float64(rssMax)/1024, newObjects, newSegs, newBlobs, newManifests, newOther, objPerHour,
		allReqs, puts, posts, gets, putsPerHour, monthly, putPricePer1000, monthlyAll, float64(added)/1e6, float64(segBytes)/1e6, float64(blobBytes)/1e6, mmrBytesPerHour/1e6, pct(lat, 50), pct(lat, 100), len(lat))
	fmt.Printf("  git tick (cp -a + git add -A + git commit): %.2f s wall, CPU %.2f s (cp %.2f, add %.2f, commit %.2f) = %.2f CPU-s/h at one tick per 6 h; .git %.2f -> %.2f MB (+%.2f MB = %.2f MB/h); loss window p50 3 h, max 6 h\n",
		gitWall.Seconds(), gitCPU.Seconds(), cpCPU.Seconds(), addCPU.Seconds(), ciCPU.Seconds(), gitCPUPerHour, float64(git0)/1e6, float64(git1)/1e6, float64(gitGrowth)/1e6, gitBytesPerHour/1e6)
}
