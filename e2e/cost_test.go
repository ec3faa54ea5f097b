package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestPackedChunksOnePut: twenty new small files that arrive together are stored by one
// PUT (counted from the S3 server's request log): their chunks travel inside the segment
// object, no blob is written, and a restore, which reads them back by ranged GETs, is
// byte-exact.
func TestPackedChunksOnePut(t *testing.T) {
	s3 := testenv.StartS3Logged(t)
	h := newHost(t, hostOpts{s3: s3})
	cfg, _ := os.ReadFile(h.config)
	cfg = bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1)
	cfg = bytes.Replace(cfg, []byte("flush_interval: 250ms"), []byte("flush_interval: 3s"), 1)
	os.WriteFile(h.config, cfg, 0o600)
	h.appendLine("main/s.jsonl", "{\"a\":1}\n")
	h.start()
	want := map[string]string{"sessions/main/s.jsonl": "{\"a\":1}\n"}
	h.waitStored(want, 30*time.Second)

	// The files are written outside the source and moved in by one rename, so that they
	// reach the watcher together.
	stage := filepath.Join(h.dir, "stage")
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		b := make([]byte, 200+rng.IntN(3000))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		rel := fmt.Sprintf("reports/r%02d.bin", i)
		os.MkdirAll(filepath.Join(stage, "reports"), 0o755)
		if err := os.WriteFile(filepath.Join(stage, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
		want["sessions/"+rel] = string(b)
	}
	prefix := "/" + h.bucket + "/"
	segs := func() int { return countSegPuts(s3, prefix) }
	before, blobsBefore := segs(), s3.Requests("PUT", prefix+"prod/blobs/")
	if err := os.Rename(filepath.Join(stage, "reports"), filepath.Join(h.src, "reports")); err != nil {
		t.Fatal(err)
	}
	h.waitStored(want, 30*time.Second)
	if n := s3.Requests("PUT", prefix+"prod/blobs/") - blobsBefore; n != 0 {
		t.Fatalf("%d blob PUTs for 20 new files, want none", n)
	}
	if n := segs() - before; n != 1 {
		t.Fatalf("%d segment PUTs for 20 new files arriving together, want 1", n)
	}
	if n := s3.Requests("GET", prefix+"prod/hosts/"); n == 0 {
		t.Fatal("no GET of a segment in the request log: the count above proves nothing")
	}
}

// countSegPuts counts the PUTs of segment objects in the request log.
func countSegPuts(s3 *testenv.S3Server, prefix string) int {
	n := 0
	for _, l := range bytes.Split([]byte(s3.Log()), []byte("\n")) {
		if bytes.Contains(l, []byte("| PUT |")) && bytes.Contains(l, []byte(prefix)) && bytes.Contains(l, []byte("/segments/")) {
			n++
		}
	}
	return n
}
