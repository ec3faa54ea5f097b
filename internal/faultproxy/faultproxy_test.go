package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// env is a real S3 server with a bucket, a proxy in front of it, and an SDK client that
// talks to the proxy. The client does not retry, so one call is one request and each
// fault shows as the error it causes.
type env struct {
	srv    *testenv.S3Server
	px     *Proxy
	client *s3.Client
	bucket string
}

func newEnv(t *testing.T, o Options, clientTimeout time.Duration) *env {
	t.Helper()
	srv := testenv.StartS3(t)
	px, err := New(srv.Endpoint, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	e := &env{srv: srv, px: px, bucket: "faults"}
	srv.CreateBucket(t, e.bucket)
	e.client = newClient(srv, px.URL(), clientTimeout)
	return e
}

func newClient(srv *testenv.S3Server, endpoint string, timeout time.Duration) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Retryer:                    aws.NopRetryer{},
		HTTPClient:                 &http.Client{Timeout: timeout},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (e *env) put(key, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	return err
}

func (e *env) get(key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := e.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// apiError returns the HTTP status and S3 error code of err, or 0 and "" when the
// request got no answer.
func apiError(err error) (int, string) {
	var resp *awshttp.ResponseError
	if !errors.As(err, &resp) || resp.Response == nil {
		return 0, ""
	}
	code := ""
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	return resp.HTTPStatusCode(), code
}

// TestPassForwardsSignedRequests: signed PUT, GET, HEAD and LIST work through the proxy,
// including a key that needs escaping (the canonical URI is signed too).
func TestPassForwardsSignedRequests(t *testing.T) {
	e := newEnv(t, Options{}, 10*time.Second)
	for _, key := range []string{"a/b.txt", "dir/a b+c=d&e.txt"} {
		if err := e.put(key, "hello "+key); err != nil {
			t.Fatalf("put %q through the proxy: %v", key, err)
		}
		got, err := e.get(key)
		if err != nil || got != "hello "+key {
			t.Fatalf("get %q through the proxy: %q, %v", key, got, err)
		}
	}
	ctx := context.Background()
	if _, err := e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("a/b.txt")}); err != nil {
		t.Fatalf("head: %v", err)
	}
	list, err := e.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket), Prefix: aws.String("dir/")})
	if err != nil || len(list.Contents) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	// The object is really on the server: read it without the proxy (not counted).
	direct := &env{client: newClient(e.srv, e.srv.Endpoint, 10*time.Second), bucket: e.bucket}
	if got, err := direct.get("a/b.txt"); err != nil || got != "hello a/b.txt" {
		t.Fatalf("direct get: %q, %v", got, err)
	}
	s := e.px.Stats()
	if s.Seen != 6 || s.Failed != 0 || s.ByMethod["PUT"].Seen != 2 || s.ByMethod["GET"].Seen != 3 || s.ByMethod["HEAD"].Seen != 1 {
		t.Fatalf("stats %s", s)
	}
}

// TestHostHeaderMustBeKept shows why the proxy keeps the client's Host: the server checks
// the signature against the Host it receives, and the client signed the proxy's address.
func TestHostHeaderMustBeKept(t *testing.T) {
	e := newEnv(t, Options{rewriteHost: true}, 10*time.Second)
	err := e.put("k", "v")
	if status, code := apiError(err); status != http.StatusForbidden || code != "SignatureDoesNotMatch" {
		t.Fatalf("put with the Host rewritten to the server's address: %v (status %d, code %q); want 403 SignatureDoesNotMatch", err, status, code)
	}
}

func TestErrorModes(t *testing.T) {
	e := newEnv(t, Options{}, 10*time.Second)
	for _, c := range []struct {
		mode   Mode
		status int
		code   string
	}{
		{Error500, 500, "InternalError"},
		{Error503SlowDown, 503, "SlowDown"},
	} {
		e.px.SetMode(c.mode)
		err := e.put("x/"+c.mode.String(), "data")
		if status, code := apiError(err); status != c.status || code != c.code {
			t.Errorf("%s: put gave %v (status %d, code %q); want %d %s", c.mode, err, status, code, c.status, c.code)
		}
		_, err = e.client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("x")})
		if status, _ := apiError(err); status != c.status {
			t.Errorf("%s: head gave %v (status %d); want %d", c.mode, err, status, c.status)
		}
	}
	e.px.SetMode(Pass)
	// The failed PUTs never reached the server.
	for _, m := range []Mode{Error500, Error503SlowDown} {
		if _, err := e.get("x/" + m.String()); err == nil {
			t.Errorf("%s: the object exists; the proxy must not forward a request it fails", m)
		}
	}
	s := e.px.Stats()
	if s.ByMethod["PUT"].Failed != 2 || s.ByMethod["HEAD"].Failed != 2 || s.ByMode[Error500] != 2 || s.ByMode[Error503SlowDown] != 2 {
		t.Fatalf("stats %s", s)
	}
}

// isTransportError reports an error without any HTTP answer, as a reset connection gives.
func isTransportError(err error) bool {
	if err == nil {
		return false
	}
	if status, _ := apiError(err); status != 0 {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset")
}

func TestReset(t *testing.T) {
	e := newEnv(t, Options{}, 10*time.Second)
	e.px.SetMode(Reset)
	err := e.put("r", "data")
	if !isTransportError(err) {
		t.Fatalf("put with Reset: %v; want a transport error without an answer", err)
	}
	if _, err := e.get("r"); !isTransportError(err) {
		t.Fatalf("get with Reset: %v; want a transport error", err)
	}
	e.px.SetMode(Pass)
	if _, err := e.get("r"); err == nil {
		t.Fatal("the reset PUT reached the server")
	}
	if s := e.px.Stats(); s.ByMode[Reset] != 2 {
		t.Fatalf("stats %s", s)
	}
}

// TestDropResponse: the server applies the request but the client sees a failure.
func TestDropResponse(t *testing.T) {
	e := newEnv(t, Options{}, 10*time.Second)
	e.px.FailNext(1, DropResponse)
	if err := e.put("d", "applied"); !isTransportError(err) {
		t.Fatalf("put with DropResponse: %v; want a transport error", err)
	}
	if got, err := e.get("d"); err != nil || got != "applied" {
		t.Fatalf("after DropResponse the object should be stored: %q, %v", got, err)
	}
}

// TestTimeout: a held request ends when the client gives up; a client that never does is
// cut off at MaxHold.
func TestTimeout(t *testing.T) {
	e := newEnv(t, Options{MaxHold: 20 * time.Second}, 500*time.Millisecond)
	e.px.SetMode(Timeout)
	start := time.Now()
	err := e.put("t", "data")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("put with Timeout: %v; want a client timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("client gave up after %s; its timeout is 500ms", d)
	}
	waitFor(t, func() bool { return e.px.Stats().GaveUp == 1 }, "the proxy to see the client give up")

	// A client without a timeout: the proxy's bound ends the request.
	px2, err := New(e.srv.Endpoint, Options{MaxHold: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer px2.Close()
	px2.SetMode(Timeout)
	patient := &env{client: newClient(e.srv, px2.URL(), 0), bucket: e.bucket}
	start = time.Now()
	if err := patient.put("t2", "data"); !isTransportError(err) {
		t.Fatalf("put held to MaxHold: %v; want a transport error", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("held request ended after %s; MaxHold is 300ms", d)
	}
	if s := px2.Stats(); s.HeldToLimit != 1 || s.GaveUp != 0 {
		t.Fatalf("stats %s", s)
	}
	// Close ends a held request at once.
	px2.SetMode(Timeout)
	done := make(chan error, 1)
	go func() { done <- patient.put("t3", "data") }()
	waitFor(t, func() bool { return px2.Stats().Seen == 2 }, "the second held request")
	px2.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("held request succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left a held request hanging")
	}
}

func TestFailNextAndRatio(t *testing.T) {
	e := newEnv(t, Options{Seed: 7}, 10*time.Second)
	e.px.FailNext(2, Error500)
	for i, wantFail := range []bool{true, true, false, false} {
		if err := e.put("n", "v"); (err != nil) != wantFail {
			t.Fatalf("request %d after FailNext(2): err %v", i+1, err)
		}
	}
	e.px.FailRatio(1, Error503SlowDown)
	for range 5 {
		if status, _ := apiError(e.put("n", "v")); status != 503 {
			t.Fatal("FailRatio(1) let a request through")
		}
	}
	// FailNext comes before the ratio, and the ratio before the mode.
	e.px.FailNext(1, Reset)
	if err := e.put("n", "v"); !isTransportError(err) {
		t.Fatalf("FailNext under FailRatio: %v; want a reset", err)
	}
	e.px.FailRatio(0.5, Error500)
	failed := 0
	for range 40 {
		if err := e.put("n", "v"); err != nil {
			failed++
		}
	}
	if failed < 5 || failed > 35 {
		t.Fatalf("FailRatio(0.5): %d of 40 failed", failed)
	}
	e.px.FailRatio(0, Pass)
	e.px.SetMode(Error500)
	if err := e.put("n", "v"); err == nil {
		t.Fatal("the mode applies once the ratio is off")
	}
	s := e.px.Stats()
	if want := int64(2 + 5 + 1 + failed + 1); s.Failed != want || s.Seen != int64(4+5+1+40+1) {
		t.Fatalf("stats %s; want %d failed", s, want)
	}
	t.Log(s)
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
