// Package testenv starts real servers for tests: an S3 server (Versity S3
// Gateway, a separate binary built by `make tools`) on a free loopback port.
// Tests fail, never skip, when a server cannot start, so a missing tool is
// noticed rather than silently reducing coverage.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// versityHint tells the reader how to get the binary.
const versityHint = "run `make tools` (which builds it into $HOME/.cache/mmreplicate/bin)"

// VersityBinary finds the Versity S3 Gateway binary: $MMR_VERSITYGW, then
// $HOME/.cache/mmreplicate/bin/versitygw, then "versitygw" on PATH. An
// explicit $MMR_VERSITYGW that does not exist is an error, not a fallback,
// so a typo does not quietly test against another build.
func VersityBinary() (string, error) {
	if p := os.Getenv("MMR_VERSITYGW"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("MMR_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "mmreplicate", "bin", "versitygw")
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("versitygw not found in $MMR_VERSITYGW, $HOME/.cache/mmreplicate/bin or PATH")
	}
	return p, nil
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// S3Server is a running S3 server with one root account.
type S3Server struct {
	// Endpoint is the base URL, e.g. "http://127.0.0.1:41234".
	Endpoint  string
	AccessKey string
	SecretKey string
	// Root is the folder holding the buckets (one sub-folder each).
	Root string

	bin     string
	logged  bool // request log on
	port    int
	sidecar string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *lockedBuffer
}

// StartS3 starts a Versity S3 Gateway process on 127.0.0.1 at a free port
// with a temporary root, waits until it answers, and stops it in t.Cleanup.
// The server's output is printed if the test fails.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	return startS3(t, false)
}

// StartS3Logged is StartS3 with the server's request log on (one stdout line per
// request, "… | PUT | /bucket/key | …"), for tests that count requests (see Requests).
func StartS3Logged(t testing.TB) *S3Server {
	t.Helper()
	return startS3(t, true)
}

// Requests counts the logged requests of method (e.g. "PUT") whose path starts with
// prefix (e.g. "/bucket/"). The server must have been started by StartS3Logged.
func (s *S3Server) Requests(method, prefix string) int {
	n := 0
	for _, line := range strings.Split(s.log.String(), "\n") {
		f := strings.Split(line, "|")
		for i := 0; i+1 < len(f); i++ {
			if strings.TrimSpace(f[i]) == method && strings.HasPrefix(strings.TrimSpace(f[i+1]), prefix) {
				n++
				break
			}
		}
	}
	return n
}

func startS3(t testing.TB, logged bool) *S3Server {
	t.Helper()
	bin, err := VersityBinary()
	if err != nil {
		t.Fatalf("testenv: Versity S3 Gateway binary missing (%v): %s", err, versityHint)
	}
	dir := t.TempDir()
	s := &S3Server{
		AccessKey: "mmr" + randomHex(8),
		SecretKey: randomHex(20),
		Root:      filepath.Join(dir, "root"),
		bin:       bin,
		sidecar:   filepath.Join(dir, "sidecar"),
		log:       &lockedBuffer{},
		logged:    logged,
	}
	for _, d := range []string{s.Root, s.sidecar} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", s.log.String())
		}
	})
	// The free port can be taken between FreePort and the server's bind;
	// a few attempts make that race harmless.
	for attempt := 1; ; attempt++ {
		s.port = FreePort(t)
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("testenv: start versitygw: %v\n%s", err, s.log.String())
		}
	}
}

// Restart starts the server again on the same port and root after Stop,
// for tests of outages; the buckets and objects are still there.
func (s *S3Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// The port was just released; retry briefly in case the kernel is slow.
	var err error
	for range 5 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: restart versitygw on port %d: %v\n%s", s.port, err, s.log.String())
}

func (s *S3Server) start() error {
	args := []string{"--port", "127.0.0.1:" + strconv.Itoa(s.port)}
	if !s.logged {
		args = append(args, "--quiet")
	}
	cmd := exec.Command(s.bin, append(args, "posix", "--sidecar", s.sidecar, s.Root)...)
	cmd.Env = append(cleanEnv(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	setDeathSignal(cmd)
	fmt.Fprintf(s.log, "--- %s %s\n", time.Now().Format(time.TimeOnly), strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// waitReady polls until the server gives any HTTP answer (an unsigned
// request gets 403, which proves the S3 handler is up).
func (s *S3Server) waitReady(done <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("versitygw exited during start-up")
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if strings.Contains(resp.Header.Get("Server"), "VERSITYGW") || resp.StatusCode == http.StatusForbidden {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("versitygw did not answer within 15s")
}

// Stop ends the server (SIGTERM, then SIGKILL after 5 s) and waits for it.
// Stopping a stopped server does nothing.
func (s *S3Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Log returns what the server printed so far.
func (s *S3Server) Log() string { return s.log.String() }

// CreateBucket creates a bucket with the root account's credentials.
func (s *S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := s.client(ctx)
	if err != nil {
		t.Fatalf("testenv: S3 client: %v", err)
	}
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
}

func (s *S3Server) client(ctx context.Context) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
	)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	}), nil
}

// cleanEnv drops variables the gateway reads (its VGW_* settings and root
// account) so the developer's environment cannot change the test server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedBuffer collects process output written from the exec goroutines
// while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tool returns the path of a program a test drives. When it is missing the test fails
// under CI=true (where `make test` has installed it) and is skipped elsewhere, naming the
// Debian package; it never passes without having run the tool.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed (apt-get install %s, or run `make test`, which installs it)", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
