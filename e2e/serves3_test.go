package e2e

// serve-s3 against real S3 clients from Debian packages: the AWS CLI, s3cmd and rclone.
// The test fails, never skips, when a client is missing: install them with
// `apt-get install -y awscli s3cmd rclone` (`make test` does).

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/journal"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
	"github.com/mmreplicate/mmreplicate/segment"
)

const (
	serveKey    = "e2e-browse"
	serveSecret = "e2e-browse-secret-0123456789"
	serveCreds  = "serve_s3:\n  access_key_id: " + serveKey + "\n  secret_access_key: " + serveSecret + "\n"
)

// serveS3 is a running `mmreplicate serve-s3`.
type serveS3 struct {
	cmd      *exec.Cmd
	out      *syncBuf
	done     chan struct{}
	exit     error
	endpoint string
	bucket   string
}

var endpointLine = regexp.MustCompile(`endpoint (http://\S+) bucket (\S+)`)

// startServeS3 runs serve-s3 on a free loopback port and waits for its endpoint line.
func startServeS3(t testing.TB, config string) *serveS3 {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := &serveS3{cmd: exec.Command(binary, "serve-s3", "--config", config, "--listen", addr), out: &syncBuf{}, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exit = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
	deadline := time.After(30 * time.Second)
	for {
		if m := endpointLine.FindStringSubmatch(s.out.String()); m != nil {
			s.endpoint, s.bucket = m[1], m[2]
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("serve-s3 exited during start-up: %v\n%s", s.exit, s.out)
		case <-deadline:
			t.Fatalf("serve-s3 not ready after 30s:\n%s", s.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and expects exit 0.
func (s *serveS3) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve-s3 did not stop within 30s:\n%s", s.out)
	}
	if s.exit != nil {
		t.Fatalf("serve-s3 exit after SIGTERM: %v\n%s", s.exit, s.out)
	}
}

// s3client runs one CLI S3 client with its own config files in dir.
type s3client struct {
	t    *testing.T
	name string
	path string
	env  []string
	args []string
}

// lookClient finds a client on PATH or fails the test.
func lookClient(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (apt-get install -y awscli s3cmd rclone): %v", name, err)
	}
	return p
}

// clientEnv is the environment without any AWS_* settings of the machine.
func clientEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "RCLONE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func newClients(t *testing.T, s *serveS3, secret string) (awsCLI, s3cmd, rclone *s3client) {
	dir := t.TempDir()
	hostPort := strings.TrimPrefix(s.endpoint, "http://")
	none := filepath.Join(dir, "none")
	os.WriteFile(none, nil, 0o600)
	awsCLI = &s3client{t: t, name: "aws", path: lookClient(t, "aws"), args: []string{"--endpoint-url", s.endpoint},
		env: clientEnv("AWS_ACCESS_KEY_ID="+serveKey, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none, "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")}
	s3cfg := filepath.Join(dir, "s3cfg")
	os.WriteFile(s3cfg, []byte(fmt.Sprintf("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"+
		"use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n", serveKey, secret, hostPort, hostPort)), 0o600)
	s3cmd = &s3client{t: t, name: "s3cmd", path: lookClient(t, "s3cmd"), args: []string{"-c", s3cfg}, env: clientEnv()}
	rcfg := filepath.Join(dir, "rclone.conf")
	os.WriteFile(rcfg, []byte(fmt.Sprintf("[mmr]\ntype = s3\nprovider = Other\nendpoint = %s\naccess_key_id = %s\n"+
		"secret_access_key = %s\nregion = us-east-1\n", s.endpoint, serveKey, secret)), 0o600)
	rclone = &s3client{t: t, name: "rclone", path: lookClient(t, "rclone"), args: []string{"--config", rcfg}, env: clientEnv()}
	return awsCLI, s3cmd, rclone
}

// run runs the client and returns its exit code, stdout and stderr.
func (c *s3client) run(args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.Command(c.path, append(slices.Clone(c.args), args...)...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return code, out.String(), errb.String()
}

// ok runs the client and fails the test unless it exits 0.
func (c *s3client) ok(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("%s %s: exit %d\n%s%s", c.name, strings.Join(args, " "), code, out, errs)
	}
	return out
}

// refused runs a write and fails the test unless the client reports it refused.
func (c *s3client) refused(args ...string) {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code == 0 || !regexp.MustCompile(`AccessDenied|403|Forbidden`).MatchString(out+errs) {
		c.t.Fatalf("%s %s was not refused: exit %d\n%s%s", c.name, strings.Join(args, " "), code, out, errs)
	}
}

func TestServeS3Clients(t *testing.T) {
	h := newHost(t, hostOpts{s3: testenv.StartS3(t), extra: serveCreds})
	d := h.start()
	h.appendLine("main/sessions/s1.jsonl", "{\"n\":1}\n{\"n\":2}\n")
	h.appendLine("main/sessions/notes+ideas 2.jsonl", "{\"idea\":\"a\"}\n")
	h.appendLine("other/s2.jsonl", "{\"x\":1}\n")
	h.waitStored(h.sourceState(), 30*time.Second)
	t1 := time.Now().UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	h.appendLine("main/sessions/s1.jsonl", "{\"n\":3}\n")
	h.appendLine("main/sessions/s3.jsonl", "{\"n\":1}\n")
	h.waitStored(h.sourceState(), 30*time.Second)
	d.stop(t)
	at1 := t1.Format(time.RFC3339Nano)
	want1, wantLatest := tree(t, h.restore(at1)), tree(t, h.restore("latest"))
	if len(want1) != 3 || len(wantLatest) != 4 {
		t.Fatalf("restore: %d files at T1, %d latest", len(want1), len(wantLatest))
	}

	srv := startServeS3(t, h.config)
	if srv.bucket != "e2e-testserves3clients" {
		t.Fatalf("bucket %q, want the host name", srv.bucket)
	}
	awsCLI, s3cmd, rclone := newClients(t, srv, serveSecret)
	b := "s3://" + srv.bucket

	// aws s3 ls / cp --recursive.
	root := awsCLI.ok("s3", "ls", b+"/")
	hour := "@" + t1.Truncate(time.Hour).Format(time.RFC3339) + "/"
	for _, p := range []string{"PRE @latest/", "PRE @history/", "PRE " + hour} {
		if !strings.Contains(root, p) {
			t.Fatalf("aws s3 ls of the bucket root lacks %q:\n%s", p, root)
		}
	}
	if out := awsCLI.ok("s3", "ls", "--recursive", b+"/@"+at1+"/"); strings.Count(out, "\n") != len(want1) {
		t.Fatalf("aws s3 ls --recursive @%s: want %d objects:\n%s", at1, len(want1), out)
	}
	for at, want := range map[string]map[string]string{at1: want1, "latest": wantLatest} {
		dir := filepath.Join(t.TempDir(), "aws")
		awsCLI.ok("s3", "cp", "--recursive", "--only-show-errors", b+"/@"+at+"/", dir)
		if got := tree(t, dir); !equal(got, want) {
			t.Fatalf("aws s3 cp --recursive @%s/ differs from restore --at %s: %s", at, at, diff(got, want))
		}
	}
	local := filepath.Join(t.TempDir(), "up.jsonl")
	os.WriteFile(local, []byte("{}\n"), 0o644)
	awsCLI.refused("s3", "cp", local, b+"/@latest/sessions/up.jsonl")
	awsCLI.refused("s3", "rm", b+"/@latest/sessions/main/sessions/s1.jsonl")
	awsCLI.refused("s3", "mb", "s3://another-bucket")
	badAWS, _, _ := newClients(t, srv, "not-the-secret")
	if code, out, errs := badAWS.run("s3", "ls", b+"/"); code == 0 || !strings.Contains(out+errs, "SignatureDoesNotMatch") {
		t.Fatalf("aws with a wrong secret: exit %d\n%s%s", code, out, errs)
	}

	// s3cmd ls / get.
	if out := s3cmd.ok("ls", b+"/@"+at1+"/sessions/main/sessions/"); !strings.Contains(out, "s1.jsonl") || !strings.Contains(out, "notes+ideas 2.jsonl") {
		t.Fatalf("s3cmd ls:\n%s", out)
	}
	if out := s3cmd.ok("ls", "--recursive", b+"/@latest/"); strings.Count(out, "\n") != len(wantLatest) {
		t.Fatalf("s3cmd ls --recursive @latest/: want %d objects:\n%s", len(wantLatest), out)
	}
	for _, rel := range []string{"sessions/main/sessions/s1.jsonl", "sessions/main/sessions/notes+ideas 2.jsonl"} {
		dst := filepath.Join(t.TempDir(), "got")
		s3cmd.ok("get", "--no-progress", b+"/@"+at1+"/"+rel, dst)
		if got, _ := os.ReadFile(dst); string(got) != want1[rel] {
			t.Fatalf("s3cmd get @%s/%s = %q, restore gives %q", at1, rel, got, want1[rel])
		}
	}
	s3cmd.refused("put", local, b+"/@latest/sessions/up.jsonl")
	s3cmd.refused("del", b+"/@latest/sessions/other/s2.jsonl")

	// rclone ls / copy (the machine's CA bundle setting is for HTTPS and trips rclone).
	remote := "mmr:" + srv.bucket
	if out := rclone.ok("ls", remote+"/@"+at1+"/"); strings.Count(out, "\n") != len(want1) || !strings.Contains(out, "sessions/other/s2.jsonl") {
		t.Fatalf("rclone ls @%s/:\n%s", at1, out)
	}
	for at, want := range map[string]map[string]string{at1: want1, "latest": wantLatest} {
		dir := filepath.Join(t.TempDir(), "rclone")
		rclone.ok("copy", remote+"/@"+at+"/", dir)
		if got := tree(t, dir); !equal(got, want) {
			t.Fatalf("rclone copy @%s/ differs from restore --at %s: %s", at, at, diff(got, want))
		}
	}
	if out := rclone.ok("lsf", remote+"/@history/sessions/main/sessions/s1.jsonl/"); strings.Count(out, "\n") != 2 {
		t.Fatalf("rclone lsf of s1.jsonl's history: want 2 versions:\n%s", out)
	}
	rclone.refused("copyto", local, remote+"/@latest/sessions/up.jsonl")
	rclone.refused("deletefile", remote+"/@latest/sessions/other/s2.jsonl")

	srv.stop(t)
}

func TestServeS3RefusesToStartWithoutCredentials(t *testing.T) {
	h := newHost(t, hostOpts{})
	code, _, errs := mmr(t, "serve-s3", "--config", h.config, "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errs, "serve_s3.access_key_id") || !strings.Contains(errs, "serve_s3.secret_access_key") {
		t.Fatalf("serve-s3 without serve_s3 credentials: exit %d, %s", code, errs)
	}
	h = newHost(t, hostOpts{extra: serveCreds})
	if code, _, errs := mmr(t, "serve-s3", "--config", h.config); code != 2 || !strings.Contains(errs, "--listen") {
		t.Fatalf("serve-s3 without --listen: exit %d, %s", code, errs)
	}
}

// Benchmarks behind `make bench` (docs/BENCHMARKS.md, "serve-s3"): the serve-s3 binary over
// a real S3 server filled with segments as the sink writes them, measured with the Go SDK.
// Each does its measurement once whatever b.N is.

// serveBench is a store on a real S3 server and a config that serves it.
type serveBench struct {
	srv    *testenv.S3Server
	bucket string
	store  *s3store.Store
	host   string
	config string
	seq    uint64
}

var benchT0 = time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)

func newServeBench(b *testing.B, host string) *serveBench {
	b.Helper()
	e := &serveBench{srv: testenv.StartS3(b), bucket: "mmr-" + strings.ToLower(randomName()), host: host}
	e.srv.CreateBucket(b, e.bucket)
	st, err := s3store.New(context.Background(), s3store.Options{Bucket: e.bucket, Prefix: "prod", Endpoint: e.srv.Endpoint,
		Region: "us-east-1", AccessKeyID: e.srv.AccessKey, SecretAccessKey: e.srv.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	e.store = st
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	e.config = filepath.Join(dir, "mmreplicate.yml")
	cfg := fmt.Sprintf("host: %s\ndata_dir: %s\nsources:\n  - name: sessions\n    path: %s\ns3:\n  url: s3://%s/prod\n"+
		"  endpoint: %s\n  access_key_id: %s\n  secret_access_key: %s\n%s", host, filepath.Join(dir, "data"), filepath.Join(dir, "src"),
		e.bucket, e.srv.Endpoint, e.srv.AccessKey, e.srv.SecretKey, serveCreds)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return e
}

// put stores recs as one segment and returns its key.
func (e *serveBench) put(b *testing.B, recs []journal.Record) string {
	for i := range recs {
		e.seq++
		recs[i].Seq = e.seq
	}
	key := segment.Key(e.host, recs)
	if err := e.store.Put(context.Background(), key, segment.Encode(recs)); err != nil {
		b.Fatal(err)
	}
	return key
}

func sdkClient(endpoint, key, secret string) *s3.Client {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
}

// listKeys lists every key under prefix and returns how many there were.
func listKeys(b *testing.B, c *s3.Client, bucket, prefix string) int {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += len(page.Contents)
	}
	return n
}

// getAll GETs keys and returns the bytes read.
func getAll(b *testing.B, c *s3.Client, bucket string, keys ...string) int64 {
	var n int64
	for _, k := range keys {
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			b.Fatal(err)
		}
		m, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		n += m
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkServeS3List10k lists the 10,000 keys of a state at a T: cold (the first
// listing, which rebuilds the state from the store) and warm (cached).
func BenchmarkServeS3List10k(b *testing.B) {
	const files = 10_000
	e := newServeBench(b, "bench-list")
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
	srv := startServeS3(b, e.config)
	c := sdkClient(srv.endpoint, serveKey, serveSecret)
	prefix := "@" + benchT0.Add(time.Minute).Format(time.RFC3339) + "/"
	start := time.Now()
	if n := listKeys(b, c, srv.bucket, prefix); n != files {
		b.Fatalf("listed %d keys, want %d", n, files)
	}
	cold := time.Since(start)
	var warm []time.Duration
	for range 5 {
		start = time.Now()
		listKeys(b, c, srv.bucket, prefix)
		warm = append(warm, time.Since(start))
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
	b.ReportMetric(float64(median(warm).Microseconds())/1000, "warm-ms")
	b.Logf("serve-s3: listing %d keys (10 pages of 1000) at %s: cold %v (rebuilds the state), warm %v (median of 5)",
		files, prefix, cold.Round(time.Millisecond), median(warm).Round(time.Millisecond))
}

// BenchmarkServeS3Get streams one 256 MiB file through serve-s3 and compares with
// GETs of the raw segment objects holding the same bytes on the S3 server behind it.
func BenchmarkServeS3Get(b *testing.B) {
	const piece, pieces, perSegment = 4 << 20, 64, 8
	e := newServeBench(b, "bench-get")
	var segKeys []string
	var recs []journal.Record
	for i := range pieces {
		data := make([]byte, piece)
		rand.Read(data)          // incompressible: segment objects are as large as the file
		data[len(data)-1] = '\n' // an append-only file is restored up to its last newline
		recs = append(recs, journal.Record{Time: benchT0.Add(time.Duration(i) * time.Millisecond).UnixNano(), Op: journal.OpAppend,
			Source: "sessions", Path: "big/blob.log", Offset: int64(i * piece), Mode: 0o600, Data: data})
		if len(recs) == perSegment {
			segKeys = append(segKeys, "prod/"+e.put(b, recs))
			recs = nil
		}
	}
	srv := startServeS3(b, e.config)
	c := sdkClient(srv.endpoint, serveKey, serveSecret)
	raw := sdkClient(e.srv.Endpoint, e.srv.AccessKey, e.srv.SecretKey)
	key := "@latest/sessions/big/blob.log"
	start := time.Now()
	if n := getAll(b, c, srv.bucket, key); n != piece*pieces {
		b.Fatalf("read %d bytes, want %d", n, piece*pieces)
	}
	cold := time.Since(start)
	const rounds = 3
	mbs := func(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
	start = time.Now()
	var n int64
	for range rounds {
		n += getAll(b, c, srv.bucket, key)
	}
	warm := mbs(n, time.Since(start))
	start, n = time.Now(), 0
	for range rounds {
		n += getAll(b, raw, e.bucket, segKeys...)
	}
	rawMBs := mbs(n, time.Since(start))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
	b.ReportMetric(warm, "MB/s")
	b.ReportMetric(rawMBs, "raw-MB/s")
	b.ReportMetric(warm/rawMBs, "ratio")
	b.Logf("serve-s3: GET of a 256 MiB file: first %v (rebuilds the state), then %.0f MB/s; raw segment objects %.0f MB/s; ratio %.2f",
		cold.Round(time.Millisecond), warm, rawMBs, warm/rawMBs)
}
