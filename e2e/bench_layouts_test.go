package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// BenchmarkAgentLayouts measures, from the store, the bytes of new objects that the
// agent layouts' habits cost: an OpenClaw transcript renamed <id>.jsonl.deleted.<time>,
// a *.bak-* repair copy of a transcript, a Claude Code session forked into a new file
// that repeats 90 % of the old one, and OpenClaw's sessions.json rewritten on a turn.
// Each figure is reported next to its size (issue 15's targets: a rename stores no new
// content, a fork at most 15 % of its size, a .bak copy almost nothing).
func BenchmarkAgentLayouts(b *testing.B) {
	s3 := testenv.StartS3(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "agents")
	sess := filepath.Join(src, "main", "sessions")
	if err := os.MkdirAll(sess, 0o755); err != nil {
		b.Fatal(err)
	}
	bucket := "mmr-" + strings.ToLower(randomName())
	s3.CreateBucket(b, bucket)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	cfg := moreConfig(b, dir, "layouts", src, httpAddr, "s3://"+bucket+"/prod", s3, s3.Endpoint, "  flush_interval: 250ms\n")
	_, list := bucketObjects(b, s3, bucket)

	rng := rand.New(rand.NewPCG(15, 3))
	transcript := func(id string, n int) []byte {
		var buf bytes.Buffer
		for i := 0; buf.Len() < n; i++ {
			fmt.Fprintf(&buf, `{"type":"message","id":"%s-%05d","timestamp":"2026-12-04T10:%02d:%02d.000Z","message":{"role":"assistant","content":[{"type":"text","text":%q}]}}`+"\n",
				id, i, i/60%60, i%60, agentText(rng, 300+rng.IntN(3000)))
		}
		return buf.Bytes()
	}
	// One transcript per habit, so that no measurement profits from another's chunks.
	names := []string{"s1", "s3", "s4"}
	content := map[string][]byte{}
	for _, id := range names {
		content[id] = transcript(id, 2<<20)
		os.WriteFile(filepath.Join(sess, id+".jsonl"), content[id], 0o644)
	}
	index := []byte(fmt.Sprintf(`{"main:s1":{"sessionId":"s1","updatedAt":1,"file":"s1.jsonl","summary":%q}}`, agentText(rng, 20<<10)))
	os.WriteFile(filepath.Join(sess, "sessions.json"), index, 0o644)
	startMore(b, "daemon", "objects land in", "run", "--config", cfg)
	settle := func() { waitSettled(b, httpAddr, 700*time.Millisecond, 60*time.Second, nil) }
	settle()
	step := func(name string, size int, act func()) {
		before := list()
		act()
		settle()
		var added int64
		for k, n := range list() {
			if _, ok := before[k]; !ok {
				added += n
			}
		}
		b.Logf("%-40s %9d bytes of file, %9d bytes of new objects (%5.1f %%)", name, size, added, 100*float64(added)/float64(size))
		b.ReportMetric(100*float64(added)/float64(size), strings.ReplaceAll(name, " ", "_")+"_%")
	}
	step("openclaw sessions.json rewritten", len(index), func() {
		index = bytes.Replace(index, []byte(`"updatedAt":1`), []byte(`"updatedAt":2`), 1)
		os.WriteFile(filepath.Join(sess, "sessions.json.tmp"), index, 0o644)
		os.Rename(filepath.Join(sess, "sessions.json.tmp"), filepath.Join(sess, "sessions.json"))
	})
	step("openclaw rename to .deleted", len(content["s1"]), func() {
		os.Rename(filepath.Join(sess, "s1.jsonl"), filepath.Join(sess, "s1.jsonl.deleted.2026-12-04T10-20-00.000Z"))
	})
	step("openclaw .bak copy", len(content["s3"]), func() {
		os.WriteFile(filepath.Join(sess, "s3.jsonl.bak-20261204T101500"), content["s3"], 0o644)
	})
	old := content["s4"]
	cut := bytes.LastIndexByte(old[:len(old)*9/10], '\n') + 1
	fork := append(append([]byte{}, old[:cut]...), transcript("s5", len(old)/10)...)
	step("claude-code fork (90 % repeated)", len(fork), func() {
		os.WriteFile(filepath.Join(sess, "s5.jsonl"), fork, 0o644)
	})
}
