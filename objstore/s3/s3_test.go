package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/objstoretest"
)

func newStore(t testing.TB, srv *testenv.S3Server, bucket, prefix string) *Store {
	t.Helper()
	s, err := New(t.Context(), Options{
		Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: "us-east-1",
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "conf")
	var n atomic.Int32
	t.Run("Prefix", func(t *testing.T) {
		objstoretest.Run(t, func(t *testing.T) objstore.Store {
			return newStore(t, srv, "conf", fmt.Sprintf("/run/%d/", n.Add(1)))
		})
	})
	t.Run("BucketRoot", func(t *testing.T) {
		objstoretest.Run(t, func(t *testing.T) objstore.Store {
			bucket := fmt.Sprintf("root-%d", n.Add(1))
			srv.CreateBucket(t, bucket)
			return newStore(t, srv, bucket, "")
		})
	})
}

// TestKeyLayout checks where keys land in the bucket: the gateway stores
// each object as a file, so the layout is visible on disk.
func TestKeyLayout(t *testing.T) {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "layout")
	for prefix, want := range map[string]string{"": "a/b", "p/q": "p/q/a/b", "/slashes/": "slashes/a/b"} {
		s := newStore(t, srv, "layout", prefix)
		if err := s.Put(t.Context(), "a/b", []byte("x")); err != nil {
			t.Fatalf("Put with prefix %q: %v", prefix, err)
		}
		if _, err := os.Stat(filepath.Join(srv.Root, "layout", want)); err != nil {
			t.Errorf("prefix %q: object not at %s: %v", prefix, want, err)
		}
	}
}

func TestString(t *testing.T) {
	srv := testenv.StartS3(t)
	if got, want := newStore(t, srv, "b", "p/q/").String(), "s3://b/p/q ("+srv.Endpoint+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	s, err := New(t.Context(), Options{Bucket: "b", Region: "eu-west-1", AccessKeyID: "x", SecretAccessKey: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "s3://b" {
		t.Errorf("String() without endpoint = %q, want s3://b", got)
	}
	if _, err := New(t.Context(), Options{Prefix: "p"}); err == nil {
		t.Error("New without a bucket succeeded")
	}
	if _, err := New(t.Context(), Options{Bucket: "b", Prefix: "a/../b"}); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("New with prefix a/../b: %v, want ErrInvalidKey", err)
	}
}

func TestMissingBucket(t *testing.T) {
	srv := testenv.StartS3(t)
	s := newStore(t, srv, "no-such-bucket", "p")
	err := s.Check(t.Context())
	if !errors.Is(err, objstore.ErrNoBucket) || objstore.Temporary(err) {
		t.Fatalf("Check: %v (Temporary %v), want ErrNoBucket, not temporary", err, objstore.Temporary(err))
	}
	if !strings.Contains(err.Error(), `"no-such-bucket"`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Check error %q should name the bucket on one line", err)
	}
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, objstore.ErrNoBucket) {
		t.Fatalf("Get: %v, want ErrNoBucket", err)
	}
	if err := s.Put(t.Context(), "k", []byte("x")); !errors.Is(err, objstore.ErrNoBucket) {
		t.Fatalf("Put: %v, want ErrNoBucket", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "bkt")
	for name, o := range map[string]Options{
		"secret": {AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong"},
		"key":    {AccessKeyID: "nobody", SecretAccessKey: srv.SecretKey},
	} {
		o.Bucket, o.Prefix, o.Endpoint = "bkt", "prefix", srv.Endpoint
		s, err := New(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Check(t.Context())
		if !errors.Is(err, objstore.ErrAccessDenied) || objstore.Temporary(err) {
			t.Fatalf("%s: Check: %v (Temporary %v), want ErrAccessDenied, not temporary", name, err, objstore.Temporary(err))
		}
		err = s.Put(t.Context(), "seg/x", []byte("x"))
		msg := err.Error()
		if !errors.Is(err, objstore.ErrAccessDenied) ||
			!strings.HasPrefix(msg, "s3://bkt/prefix: put seg/x: access denied (") ||
			!strings.HasSuffix(msg, "): check access_key_id/secret_access_key") {
			t.Fatalf("%s: Put error %q, want ErrAccessDenied in the documented form", name, msg)
		}
		t.Logf("%s: %s", name, msg)
	}
}

func TestServerDown(t *testing.T) {
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	s, err := New(t.Context(), Options{Bucket: "b", Endpoint: endpoint, AccessKeyID: "a", SecretAccessKey: "b"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Put(t.Context(), "k", []byte("x"))
	if err == nil || !objstore.Temporary(err) {
		t.Fatalf("Put to a closed port: %v (Temporary %v), want a temporary error", err, objstore.Temporary(err))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Put to a closed port took %v; the SDK's own retries should be short", d)
	}
	if !strings.Contains(err.Error(), "cannot reach "+endpoint) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q should say it cannot reach %s, on one line", err, endpoint)
	}
	if err := s.Check(t.Context()); !objstore.Temporary(err) {
		t.Errorf("Check against a closed port: %v, want a temporary error", err)
	}
}

// TestOutage stops the server between requests: the store reports a
// temporary error while it is down and works again, with the same client
// and its pooled connections, once it is back.
func TestOutage(t *testing.T) {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "bkt")
	s := newStore(t, srv, "bkt", "p")
	if err := s.Put(t.Context(), "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err := s.Put(t.Context(), "during", []byte("2"))
	if err == nil || !objstore.Temporary(err) {
		t.Fatalf("Put while down: %v, want a temporary error", err)
	}
	srv.Restart(t)
	if err := s.Put(t.Context(), "after", []byte("3")); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	if got, err := s.Get(t.Context(), "before"); err != nil || string(got) != "1" {
		t.Fatalf("Get after restart = %q, %v", got, err)
	}
}

// TestCABundle checks that New and requests work with AWS_CA_BUNDLE set,
// which makes the SDK refuse HTTP clients it cannot add the bundle to.
func TestCABundle(t *testing.T) {
	bundle := os.Getenv("AWS_CA_BUNDLE")
	if bundle == "" {
		bundle = "/etc/ssl/certs/ca-certificates.crt"
	}
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("CA bundle %s: %v", bundle, err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "bkt")
	s := newStore(t, srv, "bkt", "")
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("Check with AWS_CA_BUNDLE=%s: %v", bundle, err)
	}
}

func TestCanceledNotTemporary(t *testing.T) {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "bkt")
	s := newStore(t, srv, "bkt", "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := s.Put(ctx, "k", []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) || objstore.Temporary(err) {
		t.Fatalf("Put with an expired context: %v (Temporary %v)", err, objstore.Temporary(err))
	}
}

// TestErrorMapping feeds SDK-shaped errors through fail: codes and statuses
// the server did not produce in the tests above (throttling, 5xx).
func TestErrorMapping(t *testing.T) {
	s := &Store{bucket: "bkt", prefix: "pre", url: "s3://bkt/pre", endpoint: "http://h"}
	resp := func(status int, code string) error {
		var inner error = &smithy.GenericAPIError{Code: code, Message: "msg"}
		return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      inner,
			},
			RequestID: "REQ",
		}}
	}
	cases := []struct {
		op        string
		err       error
		sentinel  error
		temporary bool
		msg       string
	}{
		{"put", resp(503, "SlowDown"), nil, true, "s3://bkt/pre: put k: SlowDown: msg (HTTP 503)"},
		{"put", resp(500, "InternalError"), nil, true, ""},
		{"put", resp(400, "RequestTimeout"), nil, true, ""},
		{"put", resp(400, "InvalidArgument"), nil, false, ""},
		{"get", resp(404, "NoSuchKey"), objstore.ErrNotFound, false, "s3://bkt/pre: get k: not found"},
		{"stat", resp(404, "NotFound"), objstore.ErrNotFound, false, ""},
		{"check", resp(404, "NotFound"), objstore.ErrNoBucket, false, ""},
		{"get", resp(404, "NoSuchBucket"), objstore.ErrNoBucket, false,
			`s3://bkt/pre: get k: bucket "bkt" does not exist (NoSuchBucket)`},
		{"put", resp(403, "SignatureDoesNotMatch"), objstore.ErrAccessDenied, false,
			"s3://bkt/pre: put k: access denied (SignatureDoesNotMatch): check access_key_id/secret_access_key"},
		{"stat", resp(403, "Forbidden"), objstore.ErrAccessDenied, false, ""},
	}
	for _, c := range cases {
		key := "k"
		if c.op == "check" {
			key = ""
		}
		err := s.fail(c.op, key, c.err)
		if c.sentinel != nil && !errors.Is(err, c.sentinel) {
			t.Errorf("%s %v: %v, want %v", c.op, c.err, err, c.sentinel)
		}
		if objstore.Temporary(err) != c.temporary {
			t.Errorf("%s %v: Temporary = %v, want %v", c.op, c.err, !c.temporary, c.temporary)
		}
		if c.msg != "" && err.Error() != c.msg {
			t.Errorf("%s: message %q, want %q", c.op, err, c.msg)
		}
	}
}
