package e2e

// Benchmarks of the store's read side and of its space use, behind `make bench` and
// docs/BENCHMARKS.md: restore against aws cli and rclone reading the same bytes from the
// same S3 server, the new bytes an edit in the middle of a large file costs, and the git
// sink's commit of a 10,000-file state against `git add -A && git commit`. Like the other
// benchmarks, each runs the real binary with default settings, measures once whatever
// b.N is, reports b.ReportMetric figures and prints one human-readable summary.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
)

// benchFile is one file of a generated tree, relative to the source folder.
type benchFile struct {
	rel  string
	data []byte
}

// treeBytes is the total size of a generated tree.
func treeBytes(files []benchFile) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.data))
	}
	return n
}

// logUniform draws a size between lo and hi whose logarithm is uniform: many small
// files and a few large ones, as in a workspace.
func logUniform(rng *rand.Rand, lo, hi int) int {
	return int(math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

// randomBytes is incompressible content (zstd and zlib gain nothing on it).
func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	buf := make([]byte, n)
	rand.NewChaCha8(s).Read(buf)
	return buf
}

// proseBytes is n bytes of markdown-like text (compresses about 3× with zlib).
func proseBytes(rng *rand.Rand, n int) []byte {
	words := strings.Fields(`the a to of and in is it that for with on this be are as not report draft
		result summary analysis table figure section next step agent tool model data source customer
		revenue week plan risk owner status done open blocked review notes meeting decision`)
	buf := make([]byte, 0, n+16)
	for len(buf) < n {
		switch rng.IntN(14) {
		case 0:
			buf = append(buf, "\n\n## "...)
		case 1:
			buf = fmt.Appendf(buf, " %d.%02d%% ", rng.IntN(100), rng.IntN(100))
		default:
			buf = append(append(buf, words[rng.IntN(len(words))]...), ' ')
		}
	}
	return append(buf[:n-1], '\n')
}

// sessionFiles is nFiles JSONL transcripts, total bytes in all, named agent-XX/sessions/N.jsonl.
func sessionFiles(nFiles, total int) []benchFile {
	d := makeIngestData(nFiles, total)
	out := make([]benchFile, nFiles)
	for i := range out {
		out[i] = benchFile{rel: fmt.Sprintf("agent-%02d/sessions/%04d.jsonl", i%20, i), data: d.files[i]}
	}
	return out
}

// scaleTo multiplies sizes so that they add up to about total.
func scaleTo(sizes []int, total int) {
	sum := 0
	for _, s := range sizes {
		sum += s
	}
	for i, s := range sizes {
		sizes[i] = max(1, int(float64(s)*float64(total)/float64(sum)))
	}
}

// writeTree writes every file under root.
func writeTree(b *testing.B, root string, files []benchFile) {
	b.Helper()
	for _, f := range files {
		p := filepath.Join(root, f.rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// wantDigest is what a copy of files must hold: relative path -> "size sha256".
func wantDigest(files []benchFile) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		out[f.rel] = fmt.Sprintf("%d %s", len(f.data), hex.EncodeToString(sum[:]))
	}
	return out
}

// digestTree reads every regular file under root as relative path -> "size sha256".
func digestTree(b *testing.B, root string) map[string]string {
	b.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = fmt.Sprintf("%d %s", len(data), hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// checkCopy fails the benchmark unless the tree under root holds exactly want, so that
// a figure is never taken from a copy that is incomplete or wrong.
func checkCopy(b *testing.B, who, root string, want map[string]string) {
	b.Helper()
	if d := diff(digestTree(b, root), want); d != "" {
		if len(d) > 2000 {
			d = d[:2000] + " …"
		}
		b.Fatalf("%s: the copy differs from the source: %s", who, d)
	}
}

// dirBytes is the apparent size (sum of file sizes) and the allocated size (blocks on
// disk) of everything under root.
func dirBytes(b *testing.B, root string) (apparent, allocated int64) {
	b.Helper()
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		}
		if fi.Mode().IsRegular() {
			apparent += fi.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return apparent, allocated
}

// allSources makes a bench host replicate every file of its source, not only JSONL,
// and appends extra to its config.
func (e *benchEnv) allSources(b *testing.B, extra string) {
	b.Helper()
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		b.Fatal(err)
	}
	cfg = append(bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), extra...)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchStatus is the part of the daemon's /status the benchmarks wait on.
type benchStatus struct {
	Journal struct {
		LastSeq uint64 `json:"last_seq"`
	} `json:"journal"`
	Sources []struct {
		Files int `json:"files_watched"`
	} `json:"sources"`
	Sinks []struct {
		Name      string `json:"name"`
		StoredSeq uint64 `json:"stored_seq"`
		Errors    uint64 `json:"errors"`
	} `json:"sinks"`
	Skipped    uint64 `json:"files_skipped"`
	CaptureErr uint64 `json:"capture_errors"`
}

func (e *benchEnv) status() (benchStatus, error) {
	var s benchStatus
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + e.http + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// settled says when a burst of changes got through the daemon, as sampled from /status
// every 50 ms (so each time is late by up to 50 ms).
type settled struct {
	seq       uint64               // the journal's last sequence number
	journaled time.Time            // the first sample that showed seq journaled
	stored    map[string]time.Time // per sink, the first sample that showed seq stored
	all       time.Time            // the latest of stored
}

// waitStoredAll waits until the daemon watches at least files files, has journaled past
// seq, and every sink has stored everything journaled, and that has held for a second
// with nothing new journaled.
func (e *benchEnv) waitStoredAll(b *testing.B, d *daemon, files int, seq uint64, timeout time.Duration) settled {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var last benchStatus
	r := settled{stored: map[string]time.Time{}}
	trace := os.Getenv("MMR_BENCH_TRACE") != ""
	for {
		s, err := e.status()
		if err == nil && len(s.Sinks) > 0 {
			last = s
			now := time.Now()
			if trace {
				b.Logf("%s status %+v", now.Format("15:04:05.000"), s)
			}
			if s.Journal.LastSeq != r.seq {
				r = settled{seq: s.Journal.LastSeq, journaled: now, stored: map[string]time.Time{}}
			}
			n := 0
			for _, src := range s.Sources {
				n += src.Files
			}
			done := n >= files && r.seq > seq
			for _, sk := range s.Sinks {
				if _, ok := r.stored[sk.Name]; !ok && sk.StoredSeq >= r.seq {
					r.stored[sk.Name] = now
					r.all = now
				}
				done = done && sk.StoredSeq >= r.seq
			}
			if done && now.Sub(r.journaled) >= time.Second && now.Sub(r.all) >= 200*time.Millisecond {
				if s.Skipped != 0 || s.CaptureErr != 0 {
					b.Fatalf("daemon skipped %d files and failed to read %d\n%s", s.Skipped, s.CaptureErr, d.out)
				}
				return r
			}
		}
		select {
		case <-d.done:
			b.Fatalf("daemon exited: %v\n%s", d.exit, d.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("not everything stored after %v: last status %+v\n%s", timeout, last, d.out)
		}
	}
}

// timed runs a command with env (nil: this process's) and returns its wall time and its
// standard output; a failure ends the benchmark.
func timed(b *testing.B, env []string, name string, args ...string) (time.Duration, string) {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errs.String())
	}
	return took, out.String()
}

// BenchmarkRestore replicates a tree of 2,000 files (209.7 MB: random binaries of many
// sizes and JSONL transcripts) through the daemon into a real S3 server, then times
// `mmreplicate restore --at latest` against `aws s3 sync` and `rclone copy` of the same
// files stored as plain objects on the same server, each with its default settings.
// Every copy is checked file by file (size and SHA-256) against the source.
func BenchmarkRestore(b *testing.B) {
	const (
		nSessions = 300
		nBinaries = 1700
		total     = 200 << 20
		jsonl     = 30 << 20
	)
	load := loadavg()
	files := sessionFiles(nSessions, jsonl)
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := make([]int, nBinaries)
	for i := range sizes {
		sizes[i] = logUniform(rng, 1<<10, 2<<20)
		if i%170 == 0 {
			sizes[i] = logUniform(rng, 4<<20, 8<<20) // ten large files
		}
	}
	scaleTo(sizes, total-int(treeBytes(files)))
	exts := []string{"bin", "png", "pdf", "tar.gz", "sqlite-export", "woff2"}
	for i, n := range sizes {
		rel := fmt.Sprintf("workspace/project-%02d/%s/file-%04d.%s", i%40, []string{"assets", "build", "data"}[i%3], i, exts[i%len(exts)])
		files = append(files, benchFile{rel: rel, data: randomBytes(uint64(i), n)})
	}
	size := treeBytes(files)
	mb := float64(size) / 1e6
	want := wantDigest(files)

	e := newBenchEnv(b, "bench-restore")
	e.allSources(b, "")
	d := e.start(b)
	start := time.Now()
	writeTree(b, e.src, files)
	written := time.Since(start)
	replicated := e.waitStoredAll(b, d, len(files), 0, 5*time.Minute).all.Sub(start)
	stopDaemon(b, d)
	var objects, objBytes int64
	if err := e.store(b).List(context.Background(), "", func(o objstore.ObjectInfo) error {
		objects++
		objBytes += o.Size
		return nil
	}); err != nil {
		b.Fatal(err)
	}

	// mmreplicate restore, the real binary, default --parallel.
	dir := b.TempDir()
	mmrDir := filepath.Join(dir, "mmreplicate")
	syscall.Sync()
	mmrTime, mmrOut := timed(b, nil, binary, "restore", "--config", e.config, "--at", "latest", "--to", mmrDir)
	mmrSync := timeSync()
	checkCopy(b, "mmreplicate restore", filepath.Join(mmrDir, "sessions"), want)

	// The same files as plain objects in another bucket of the same server.
	plain := "plain-" + strings.ToLower(randomName())
	e.s3.CreateBucket(b, plain)
	none := filepath.Join(dir, "none")
	if err := os.WriteFile(none, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	awsEnv := clientEnv("AWS_ACCESS_KEY_ID="+e.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+e.s3.SecretKey, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none, "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	upload, _ := timed(b, awsEnv, "aws", "--endpoint-url", e.s3.Endpoint, "s3", "sync", "--only-show-errors", e.src, "s3://"+plain+"/tree")

	awsDir := filepath.Join(dir, "aws")
	syscall.Sync()
	awsTime, _ := timed(b, awsEnv, "aws", "--endpoint-url", e.s3.Endpoint, "s3", "sync", "--only-show-errors", "s3://"+plain+"/tree", awsDir)
	awsSync := timeSync()
	checkCopy(b, "aws s3 sync", awsDir, want)

	// rclone refuses to start its S3 backend with AWS_CA_BUNDLE set (DESIGN.md), and
	// clientEnv drops every AWS_ variable.
	rcfg := filepath.Join(dir, "rclone.conf")
	if err := os.WriteFile(rcfg, []byte(fmt.Sprintf("[bench]\ntype = s3\nprovider = Other\nendpoint = %s\naccess_key_id = %s\n"+
		"secret_access_key = %s\nregion = us-east-1\n", e.s3.Endpoint, e.s3.AccessKey, e.s3.SecretKey)), 0o600); err != nil {
		b.Fatal(err)
	}
	rcloneDir := filepath.Join(dir, "rclone")
	syscall.Sync()
	rcloneTime, _ := timed(b, clientEnv(), "rclone", "--config", rcfg, "copy", "bench:"+plain+"/tree", rcloneDir)
	rcloneSync := timeSync()
	checkCopy(b, "rclone copy", rcloneDir, want)
	rclone16Dir := filepath.Join(dir, "rclone16")
	syscall.Sync()
	rclone16Time, _ := timed(b, clientEnv(), "rclone", "--config", rcfg, "copy", "--transfers", "16", "bench:"+plain+"/tree", rclone16Dir)
	checkCopy(b, "rclone copy --transfers 16", rclone16Dir, want)

	mbs := func(d time.Duration) float64 { return mb / d.Seconds() }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mbs(mmrTime), "MB/s")
	b.ReportMetric(mbs(awsTime), "aws-MB/s")
	b.ReportMetric(mbs(rcloneTime), "rclone-MB/s")
	b.ReportMetric(mbs(rclone16Time), "rclone16-MB/s")
	b.ReportMetric(awsTime.Seconds()/mmrTime.Seconds(), "ratio-aws")
	b.ReportMetric(rcloneTime.Seconds()/mmrTime.Seconds(), "ratio-rclone")
	b.ReportMetric(mb/replicated.Seconds(), "replicate-MB/s")
	fmt.Printf("restore, %d files, %.1f MB (%d JSONL, %d random binaries of 1 KiB-8 MiB) from the S3 server on loopback (load average at start %s):\n",
		len(files), mb, nSessions, nBinaries, load)
	fmt.Printf("  replicated by the daemon in %.2f s from the first write (writes took %.2f s): %d objects, %.1f MB in the bucket\n",
		replicated.Seconds(), written.Seconds(), objects, float64(objBytes)/1e6)
	fmt.Printf("  mmreplicate restore --at latest  %6.1f MB/s (%.2f s; then sync(2) %.2f s) | %s\n", mbs(mmrTime), mmrTime.Seconds(), mmrSync.Seconds(), strings.TrimSpace(mmrOut))
	fmt.Printf("  aws s3 sync                      %6.1f MB/s (%.2f s; then sync(2) %.2f s) ratio mmreplicate/aws %.2f\n",
		mbs(awsTime), awsTime.Seconds(), awsSync.Seconds(), awsTime.Seconds()/mmrTime.Seconds())
	fmt.Printf("  rclone copy                      %6.1f MB/s (%.2f s; then sync(2) %.2f s) ratio mmreplicate/rclone %.2f\n",
		mbs(rcloneTime), rcloneTime.Seconds(), rcloneSync.Seconds(), rcloneTime.Seconds()/mmrTime.Seconds())
	fmt.Printf("  rclone copy --transfers 16       %6.1f MB/s (%.2f s) ratio %.2f; aws s3 sync upload of the plain objects %.2f s; every copy checked (size, SHA-256)\n",
		mbs(rclone16Time), rclone16Time.Seconds(), rclone16Time.Seconds()/mmrTime.Seconds(), upload.Seconds())
}

// timeSync is how long sync(2) takes right after a copy: the write-back of the pages it
// left dirty (none of the tools fsyncs whole files; restore fsyncs the JSONL files).
func timeSync() time.Duration {
	start := time.Now()
	syscall.Sync()
	return time.Since(start)
}

// listObjects is every object of a store: key -> size and time.
func listObjects(b *testing.B, st objstore.Store) map[string]objstore.ObjectInfo {
	b.Helper()
	out := map[string]objstore.ObjectInfo{}
	if err := st.List(context.Background(), "", func(o objstore.ObjectInfo) error {
		out[o.Key] = o
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkDedupEdit replicates a 100 MiB file of random bytes, then overwrites 1 KiB in
// its middle in place, and measures what the edit added to the bucket: new blob objects,
// the segment that records the new chunk list, and anything else.
func BenchmarkDedupEdit(b *testing.B) {
	const (
		size = 100 << 20
		edit = 1 << 10
	)
	load := loadavg()
	e := newBenchEnv(b, "bench-dedup")
	e.allSources(b, "")
	d := e.start(b)
	data := randomBytes(7, size)
	// Written beside the source and renamed in, so the watcher sees it whole once.
	tmp := filepath.Join(filepath.Dir(e.src), "big.bin")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(e.src, "workspace", "big.bin")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	first := e.waitStoredAll(b, d, 1, 0, 2*time.Minute)
	st := e.store(b)
	before := listObjects(b, st)
	var firstBytes int64
	for _, o := range before {
		firstBytes += o.Size
	}

	patch := randomBytes(8, edit)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	editStart := time.Now()
	if _, err := f.WriteAt(patch, size/2); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	copy(data[size/2:], patch)
	editAt := e.waitStoredAll(b, d, 1, first.seq, 2*time.Minute).all
	after := listObjects(b, st)
	stopDaemon(b, d)

	var blobs, segs, other, rewritten []string
	var blobBytes, segBytes, otherBytes int64
	for k, o := range after {
		old, ok := before[k]
		switch {
		case ok && old.ModTime.Equal(o.ModTime) && old.Size == o.Size:
			continue
		case ok:
			rewritten = append(rewritten, k)
		case strings.HasPrefix(k, "blobs/"):
			blobs, blobBytes = append(blobs, k), blobBytes+o.Size
		case strings.Contains(k, "/segments/"):
			segs, segBytes = append(segs, k), segBytes+o.Size
		default:
			other, otherBytes = append(other, k), otherBytes+o.Size
		}
	}
	if len(rewritten) > 0 {
		b.Fatalf("the edit rewrote existing objects: %v", rewritten)
	}
	newBytes := blobBytes + segBytes + otherBytes

	// The figure counts only if a restore gives the edited file back.
	to := filepath.Join(b.TempDir(), "restore")
	timed(b, nil, binary, "restore", "--config", e.config, "--at", "latest", "--to", to)
	checkCopy(b, "restore after the edit", filepath.Join(to, "sessions"), wantDigest([]benchFile{{rel: "workspace/big.bin", data: data}}))

	ratio := float64(size) / float64(newBytes)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(newBytes)/1e3, "new-kB")
	b.ReportMetric(float64(blobBytes)/1e3, "new-blob-kB")
	b.ReportMetric(ratio, "dedup-ratio")
	slices.Sort(other)
	fmt.Printf("dedup, 1 KiB overwritten in the middle of a 100 MiB file of random bytes (load average at start %s):\n", load)
	fmt.Printf("  first upload: %d objects, %.1f MB, stored %.2f s after the rename\n", len(before), float64(firstBytes)/1e6, first.all.Sub(start).Seconds())
	fmt.Printf("  the edit added %.1f kB: %d blobs %.1f kB, %d segments %.1f kB, %d other objects %.1f kB %v; stored %.2f s after the write\n",
		float64(newBytes)/1e3, len(blobs), float64(blobBytes)/1e3, len(segs), float64(segBytes)/1e3, len(other), float64(otherBytes)/1e3, other,
		editAt.Sub(editStart).Seconds())
	fmt.Printf("  dedup ratio %.0f (104.9 MB / new bytes); restore after the edit checked (SHA-256)\n", ratio)
}

// gitHead is the newest commit of repo and its author time (the boundary, for commits of
// the git sink), or "" before the first commit.
func gitHead(repo string) (string, time.Time) {
	out, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%H %at").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		return "", time.Time{}
	}
	var sec int64
	fmt.Sscan(f[1], &sec)
	return f[0], time.Unix(sec, 0)
}

// gitOut runs git and returns its trimmed output; a failure ends the benchmark.
func gitOut(b *testing.B, args ...string) string {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost")
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// BenchmarkGitCommit runs the daemon with a git section and renames a 10,000-file,
// 100 MiB state (JSONL transcripts, markdown and random binaries, none over the 10 MiB
// pointer size) into its source just after a boundary; it measures the time from the next
// boundary until that commit is in the repository, and the size of .git. The interval is
// 20s: the git sink gets this state 9-13 s after the rename on the 2-core machine, so with
// 10s it would still be receiving it at the boundary (or the state would straddle one).
// The baseline, in the same run, is `git add -A && git commit` of the same files into a
// plain repository.
func BenchmarkGitCommit(b *testing.B) {
	const (
		interval  = 20 * time.Second
		nSessions = 2000
		nText     = 6000
		nBinary   = 2000
	)
	load := loadavg()
	files := sessionFiles(nSessions, 20<<20)
	rng := rand.New(rand.NewPCG(9, 10))
	text := make([]int, nText)
	for i := range text {
		text[i] = logUniform(rng, 256, 64<<10)
	}
	scaleTo(text, 50<<20)
	for i, n := range text {
		files = append(files, benchFile{rel: fmt.Sprintf("workspace/team-%02d/notes/%04d.md", i%50, i), data: proseBytes(rng, n)})
	}
	bin := make([]int, nBinary)
	for i := range bin {
		bin[i] = logUniform(rng, 1<<10, 128<<10)
	}
	scaleTo(bin, 100<<20-int(treeBytes(files)))
	for i, n := range bin {
		files = append(files, benchFile{rel: fmt.Sprintf("workspace/team-%02d/assets/%04d.png", i%50, i), data: randomBytes(uint64(100000+i), n)})
	}
	mb := float64(treeBytes(files)) / 1e6

	e := newBenchEnv(b, "bench-git")
	repo := filepath.Join(filepath.Dir(e.src), "data-repo")
	// The first restore drill runs a minute after start; it is turned off so that it
	// cannot run during the measurement.
	e.allSources(b, fmt.Sprintf("git:\n  repo: %s\n  interval: %v\ndrill:\n  enabled: false\n", repo, interval))
	// The files are written beside the source and renamed into it as one folder, so
	// that capture starts at once and is not stretched by 10,000 file creations.
	stage := filepath.Join(filepath.Dir(e.src), "stage")
	writeTree(b, filepath.Join(stage, "state"), files)
	syscall.Sync()
	d := e.start(b)

	// Every new head of the repository, with when it was first seen.
	type commit struct {
		hash           string
		boundary, seen time.Time
	}
	var mu sync.Mutex
	var commits []commit
	stop, polled := make(chan struct{}), make(chan struct{})
	go func(stop <-chan struct{}) {
		defer close(polled)
		prev := ""
		for {
			if h, at := gitHead(repo); h != "" && h != prev {
				mu.Lock()
				commits = append(commits, commit{h, at, time.Now()})
				mu.Unlock()
				prev = h
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}(stop)
	defer func() {
		if stop != nil {
			close(stop)
		}
	}()
	// Start just after a boundary, so that the whole state is normally captured before
	// the next one and its commit holds all of it.
	time.Sleep(time.Until(time.Now().Truncate(interval).Add(interval + 100*time.Millisecond)))
	start := time.Now()
	if err := os.Rename(filepath.Join(stage, "state"), filepath.Join(e.src, "state")); err != nil {
		b.Fatal(err)
	}
	st := e.waitStoredAll(b, d, len(files), 0, 3*time.Minute)
	boundary := st.journaled.Truncate(interval).Add(interval)
	var measured commit
	var earlier int
	for deadline := boundary.Add(time.Minute); measured.hash == ""; {
		mu.Lock()
		earlier = 0
		for _, c := range commits {
			if c.boundary.Equal(boundary) {
				measured = c
			} else if c.boundary.Before(boundary) {
				earlier++
			}
		}
		mu.Unlock()
		if time.Now().After(deadline) {
			b.Fatalf("no commit for the boundary %v within a minute (commits seen: %+v)\n%s", boundary.UTC(), commits, d.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	stop = nil
	<-polled
	stopDaemon(b, d)
	if head := gitOut(b, "-C", repo, "rev-parse", "HEAD"); head != measured.hash {
		b.Fatalf("HEAD is %s, not the commit for the boundary %s", head, measured.hash)
	}
	inCommit := strings.Count(gitOut(b, "-C", repo, "ls-tree", "-r", "--name-only", "HEAD"), "\n") + 1
	changed := strings.Count(gitOut(b, "-C", repo, "diff-tree", "--root", "-r", "--no-commit-id", "--name-only", "HEAD"), "\n") + 1
	latency := measured.seen.Sub(boundary)
	sinkApp, sinkAlloc := dirBytes(b, filepath.Join(repo, ".git"))
	stateApp, _ := dirBytes(b, filepath.Join(filepath.Dir(e.src), "data", "git"))

	// Baseline: a plain repository over the same files, with the machine otherwise idle.
	plain := filepath.Join(b.TempDir(), "plain")
	gitOut(b, "init", "-q", "-b", "main", plain)
	plainArgs := []string{"--git-dir", filepath.Join(plain, ".git"), "--work-tree", e.src}
	syscall.Sync()
	t0 := time.Now()
	gitOut(b, append(plainArgs, "add", "-A")...)
	gitOut(b, append(plainArgs, "commit", "-q", "-m", "state")...)
	plainTime := time.Since(t0)
	plainApp, plainAlloc := dirBytes(b, filepath.Join(plain, ".git"))

	// The sink's commit holds exactly the files: its sessions/ tree is the baseline's root tree.
	if got, want := gitOut(b, "-C", repo, "rev-parse", "HEAD:sessions"), gitOut(b, append(plainArgs, "rev-parse", "HEAD^{tree}")...); got != want {
		b.Fatalf("the sink's sessions/ tree %s differs from git add's tree %s", got, want)
	}

	grace := min(interval/10, 30*time.Second)
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(latency.Seconds(), "commit-s")
	b.ReportMetric(plainTime.Seconds(), "git-add-commit-s")
	b.ReportMetric(latency.Seconds()/plainTime.Seconds(), "ratio-time")
	b.ReportMetric(mib(sinkApp), "dotgit-MiB")
	b.ReportMetric(mib(plainApp), "git-dotgit-MiB")
	b.ReportMetric(float64(sinkApp)/float64(plainApp), "ratio-size")
	fmt.Printf("git commit of a %d-file, %.1f MB state (%d JSONL, %d markdown, %d random binaries; interval %v; load average at start %s):\n",
		len(files), mb, nSessions, nText, nBinary, interval, load)
	fmt.Printf("  renamed into the source just after a boundary; every record journaled %.2f s later, stored by the S3 sink %.2f s and by the git sink %.2f s later\n",
		st.journaled.Sub(start).Seconds(), st.stored["s3-default"].Sub(start).Seconds(), st.stored["git"].Sub(start).Seconds())
	fmt.Printf("  the commit for the next boundary (%s) holds %d files, %d of them new; %d earlier commits\n",
		boundary.UTC().Format(time.TimeOnly), inCommit, changed, earlier)
	fmt.Printf("  git sink: commit in the repository %.2f s after the boundary (the git sink had every record %+.2f s from it, and waits a grace of %v after the last one); .git %.1f MiB (%.1f MiB on disk); mirror under data_dir %.1f MiB\n",
		latency.Seconds(), st.stored["git"].Sub(boundary).Seconds(), grace, mib(sinkApp), mib(sinkAlloc), mib(stateApp))
	fmt.Printf("  git add -A && git commit: %.2f s, .git %.1f MiB (%.1f MiB on disk); ratios sink/baseline: time %.2f, .git %.2f; trees identical\n",
		plainTime.Seconds(), mib(plainApp), mib(plainAlloc), latency.Seconds()/plainTime.Seconds(), float64(sinkApp)/float64(plainApp))
}
