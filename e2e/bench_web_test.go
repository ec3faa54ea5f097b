package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

// BenchmarkWeb10k measures how fast the pages of `mmreplicate web` answer for a host of
// 10,000 files on a real S3 server: the first tree of the newest state and of an earlier
// instant (each reads that state's index from the store: the newest manifest at or
// before it plus the segments after it, no content), the first view of one file (which
// rebuilds that file only) and of a folder's download (that folder only), and then 20
// requests of each page (the index cached), as the browser asks for them. It does its
// measurement once whatever b.N is, and reports the median and the slowest answer of
// each page.
func BenchmarkWeb10k(b *testing.B) {
	const files = 10_000
	e := newServeBench(b, "bench-web")
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(e.config, append(cfg, webCreds...), 0o600); err != nil {
		b.Fatal(err)
	}
	var recs []journal.Record
	for i := range files {
		recs = append(recs, journal.Record{Time: benchT0.Add(time.Duration(i) * time.Millisecond).UnixNano(), Op: journal.OpAppend,
			Source: "sessions", Path: fmt.Sprintf("agent%02d/session-%05d.jsonl", i%20, i), Mode: 0o600,
			Data: []byte(fmt.Sprintf("{\"role\":\"user\",\"n\":%d,\"text\":\"%s\"}\n", i, strings.Repeat("x", 64)))})
		if len(recs) == 1000 {
			e.put(b, recs)
			recs = nil
		}
	}
	// One transcript with 200 more lines, so that it has a history.
	const talk = "agent07/session-00007.jsonl"
	off := int64(len(fmt.Sprintf("{\"role\":\"user\",\"n\":%d,\"text\":\"%s\"}\n", 7, strings.Repeat("x", 64))))
	for i := range 200 {
		line := fmt.Sprintf("{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"step %d\"},{\"type\":\"tool_use\",\"name\":\"grep\",\"input\":{\"q\":\"%d\"}}]}\n", i, i)
		recs = append(recs, journal.Record{Time: benchT0.Add(time.Minute + time.Duration(i)*time.Second).UnixNano(), Op: journal.OpAppend,
			Source: "sessions", Path: talk, Offset: off, Mode: 0o600, Data: []byte(line)})
		off += int64(len(line))
	}
	e.put(b, recs)

	w := startWeb(b, e.config)
	get := func(path string) time.Duration {
		start := time.Now()
		code, _, body := webGet(b, w.url+path, true)
		d := time.Since(start)
		if code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, code, body)
		}
		return d
	}
	at := url.QueryEscape(benchT0.Add(2 * time.Minute).Format(time.RFC3339))
	cpu0 := procCPU(w.cmd.Process.Pid)
	cold := get("/api/tree?dir=sessions")
	coldCPU := procCPU(w.cmd.Process.Pid) - cpu0
	pages := []struct{ name, path string }{
		{"index", "/"},
		{"status", "/api/status"},
		{"tree-root", "/api/tree"},
		{"tree-500", "/api/tree?dir=sessions/agent07"},
		{"tree-at-T", "/api/tree?dir=sessions/agent07&at=" + at},
		{"file", "/api/file?path=sessions/" + talk},
		{"history", "/api/history?path=sessions/" + talk},
	}
	moved := get("/api/tree?at=" + at) // the slider moved to another instant: its index is read once
	firstFile := get("/api/file?path=sessions/" + talk)
	folder := get("/download?dir=sessions/agent03") // 500 files rebuilt, then archived
	get("/api/history?path=sessions/" + talk)
	var summary []string
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
	b.ReportMetric(float64(coldCPU.Milliseconds()), "cold-cpu-ms")
	b.ReportMetric(float64(moved.Milliseconds()), "new-instant-ms")
	b.ReportMetric(float64(firstFile.Milliseconds()), "first-file-ms")
	b.ReportMetric(float64(folder.Milliseconds()), "folder-500-tar-ms")
	for _, p := range pages {
		var ds []time.Duration
		for range 20 {
			ds = append(ds, get(p.path))
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, p.name+"-p50-ms")
		b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, p.name+"-max-ms")
		summary = append(summary, fmt.Sprintf("%s p50 %v max %v", p.name, ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond)))
	}
	b.Logf("web console over %d files: first page %v (reads the newest index; %v of CPU time), first page at another instant %v, "+
		"first view of a file %v, a folder of 500 as .tar.gz %v; then, 20 requests each: %s",
		files, cold.Round(time.Millisecond), coldCPU, moved.Round(time.Millisecond), firstFile.Round(time.Millisecond),
		folder.Round(time.Millisecond), strings.Join(summary, "; "))
}
