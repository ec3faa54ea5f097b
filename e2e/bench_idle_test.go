package e2e

// More benchmarks behind `make bench` and the "More figures" section of
// docs/BENCHMARKS.md: encryption on and off, a SQLite writer side by side with
// Litestream, sink workers in the cluster path, and an idle daemon over 10,000 files.
// Like those of bench_test.go, each measures once whatever b.N is and reports its
// figures with b.ReportMetric plus one human-readable summary.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/internal/faultproxy"
	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// BenchmarkIdle10k: 10,000 watched files in 1,000 folders. After the initial sync, the
// daemon is left idle for 30 s: its CPU (utime+stime over wall time), its RSS, and the
// requests it sends to S3 (counted by a pass-through proxy) in that time.
func BenchmarkIdle10k(b *testing.B) {
	const (
		nFiles = 10000
		idle   = 30 * time.Second
	)
	load := loadavg()
	dir := b.TempDir()
	src := filepath.Join(dir, "agents")
	for i := range nFiles {
		p := filepath.Join(src, fmt.Sprintf("d%03d/f%05d.txt", i%1000, i))
		if i < 1000 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d %s\n", i, strings.Repeat("x", i%2000))), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s3 := testenv.StartS3(b)
	px, err := faultproxy.New(s3.Endpoint, faultproxy.Options{MaxHold: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { px.Close() })
	bucket := "mmr-" + strings.ToLower(randomName())
	s3.CreateBucket(b, bucket)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	cfg := moreConfig(b, dir, "bench-idle", src, addr, "s3://"+bucket+"/prod", s3, px.URL(), "")
	start := time.Now()
	d := startMore(b, "daemon", "objects land in", "run", "--config", cfg)
	pid := d.cmd.Process.Pid
	waitSettled(b, addr, 3*time.Second, 5*time.Minute, func(s moreStatus) bool {
		return len(s.Sources) > 0 && s.Sources[0].Files == nFiles
	})
	synced := time.Since(start) - 3*time.Second
	_, objects := bucketObjects(b, s3, bucket)

	before := objects()
	req0 := px.Stats()
	cpu0, t0 := procCPU(pid), time.Now()
	var rssMax int64
	for time.Since(t0) < idle {
		time.Sleep(time.Second)
		rssMax = max(rssMax, procStatus(pid, "VmRSS"))
	}
	cpu, wall := procCPU(pid)-cpu0, time.Since(t0)
	req1 := px.Stats()
	rss, hwm := procStatus(pid, "VmRSS"), procStatus(pid, "VmHWM")
	after := objects()
	stopDaemon(b, d)

	var changed []string
	for k, n := range after {
		if m, ok := before[k]; !ok || m != n {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	puts := req1.ByMethod["PUT"].Seen - req0.ByMethod["PUT"].Seen
	all := req1.Seen - req0.Seen
	cpuPct := cpu.Seconds() / wall.Seconds() * 100
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(cpuPct, "idle-CPU-%")
	b.ReportMetric(float64(rssMax)/1024, "idle-RSS-MiB")
	b.ReportMetric(float64(puts), "idle-PUTs")
	b.ReportMetric(synced.Seconds(), "sync-s")
	fmt.Printf("idle, %d files in 1,000 folders (load average at start %s): initial sync %.1f s, then %.0f s idle:\n", nFiles, load, synced.Seconds(), wall.Seconds())
	fmt.Printf("  CPU %.2f s = %.2f%% of a core; RSS %.1f MiB at the end, %.1f MiB max while idle (peak since start VmHWM %.1f MiB); S3 requests while idle: %d (%d PUT), %d objects new or changed %v\n",
		cpu.Seconds(), cpuPct, float64(rss)/1024, float64(rssMax)/1024, float64(hwm)/1024, all, puts, len(changed), changed)
}
