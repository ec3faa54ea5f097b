package git

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

// benchText is compressible like transcripts and notes: words from a small vocabulary.
func benchText(rng *rand.Rand, n int) []byte {
	words := strings.Fields("the agent session tool call result memory workspace file note todo plan error retry ok json line")
	out := make([]byte, 0, n+16)
	for len(out) < n {
		out = append(out, words[rng.IntN(len(words))]...)
		if rng.IntN(12) == 0 {
			out = append(out, '\n')
		} else {
			out = append(out, ' ')
		}
	}
	return out[:n]
}

// BenchmarkCommit10k commits a 10,000-file state (100 MB by default; set
// MMR_GIT_BENCH_MB for another total), then the same state with 10 files changed. It
// reports the first commit, the small one, and the ingest of the records before them.
func BenchmarkCommit10k(b *testing.B) {
	requireGit(b)
	const files = 10000
	total := 100 << 20
	if v, err := strconv.Atoi(os.Getenv("MMR_GIT_BENCH_MB")); err == nil && v > 0 {
		total = v << 20
	}
	var ingest, first, small time.Duration
	var gitBytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		clock := &fakeClock{t: t0}
		s, err := New(Options{Repo: filepath.Join(dir, "repo"), StateDir: filepath.Join(dir, "state"), Host: "bench",
			Now: clock.Now, GCEvery: -1, Log: discardLog()})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		bld := newBuilder()
		bld.chunk = 64 << 10
		var recs []journal.Record
		sizes := make([]int, files)
		for f := range files {
			sizes[f] = 1 + rng.IntN(2*total/files)
			p := fmt.Sprintf("w/d%03d/f%05d", f/100, f)
			ts := at(time.Second + time.Duration(f)*300*time.Millisecond)
			if f%5 == 0 {
				recs = append(recs, bld.appendTo(ts, p+".jsonl", 0, string(benchText(rng, sizes[f]))))
			} else {
				recs = append(recs, bld.file(ts, p+".md", 0o644, benchText(rng, sizes[f]))...)
			}
		}
		b.StartTimer()
		start := time.Now()
		for len(recs) > 0 {
			n := min(1000, len(recs))
			if err := s.Write(context.Background(), recs[:n]); err != nil {
				b.Fatal(err)
			}
			recs = recs[n:]
		}
		ingest += time.Since(start)

		// Records arrive over the hour before a boundary, so their bytes have long been
		// written back when it comes: flush them now, so the figure is the commit's.
		syncFS(dir)
		start = time.Now()
		if err := s.Write(context.Background(), []journal.Record{bld.appendTo(at(time.Hour+time.Second), "s/trigger.jsonl", 0, "x\n")}); err != nil {
			b.Fatal(err)
		}
		first += time.Since(start)

		var change []journal.Record
		for f := 0; f < 10; f++ {
			p := fmt.Sprintf("w/d%03d/f%05d.md", f*7/100, f*7+1)
			change = append(change, bld.file(at(time.Hour+time.Minute), p, 0o644, benchText(rng, 10000))...)
		}
		if err := s.Write(context.Background(), change); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := s.Write(context.Background(), []journal.Record{bld.appendTo(at(2*time.Hour+time.Second), "s/trigger.jsonl", 2, "y\n")}); err != nil {
			b.Fatal(err)
		}
		small += time.Since(start)
		b.StopTimer()
		if st := s.Status(); st.Commits != 2 {
			b.Fatalf("status %+v", st)
		}
		s.Close()
		out, _ := exec.Command("du", "-sb", filepath.Join(dir, "repo", ".git")).Output()
		if f := strings.Fields(string(out)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			gitBytes += n
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(ingest.Milliseconds())/n, "ms-ingest")
	b.ReportMetric(float64(first.Milliseconds())/n, "ms-commit-10k")
	b.ReportMetric(float64(small.Milliseconds())/n, "ms-commit-10-changed")
	b.ReportMetric(float64(gitBytes)/n/(1<<20), "MB-.git")
	b.ReportMetric(float64(total)/(1<<20), "MB-state")
}
