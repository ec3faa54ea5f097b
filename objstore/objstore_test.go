package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
)

func TestParseURL(t *testing.T) {
	good := []struct{ in, scheme, bucket, prefix string }{
		{"s3://bucket/some/prefix", "s3", "bucket", "some/prefix"},
		{"s3://bucket/some/prefix/", "s3", "bucket", "some/prefix"},
		{"s3://bucket", "s3", "bucket", ""},
		{"s3://bucket/", "s3", "bucket", ""},
		{"s3://my.bucket-1/p", "s3", "my.bucket-1", "p"},
		{"file:///abs/dir", "file", "", "/abs/dir"},
		{"file:///abs/dir/", "file", "", "/abs/dir"},
		{"file://localhost/abs", "file", "", "/abs"},
	}
	for _, g := range good {
		s, b, p, err := ParseURL(g.in)
		if err != nil || s != g.scheme || b != g.bucket || p != g.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %q, %v; want %q, %q, %q", g.in, s, b, p, err, g.scheme, g.bucket, g.prefix)
		}
	}
	for _, in := range []string{"", "bucket/prefix", "/abs/dir", "s3://", "s3:///prefix",
		"s3://bucket/a/../b", "s3://bucket/a//b", "s3://b:9000/p", "s3://bucket/p?x=1",
		"file://relative/dir", "file:relative", "gs://bucket/p", "http://host/p"} {
		if _, _, _, err := ParseURL(in); err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", in)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for _, k := range []string{"a", "a/b", "seg/2026-11-26T18:00:00Z-1-9", "a..b", ".hidden", "a/...", "\u00e4/\u00f6"} {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "..", "a/../b", "a/..", ".", "./a", "a//b", "a\x00b"} {
		if err := ValidateKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"", "a", "a/", "a/b-", "seg/"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "/a", "a//", "../", "a/.."} {
		if err := ValidatePrefix(p); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}

// apiErr mimics the SDK's error types through the interfaces Temporary uses.
type apiErr struct {
	code   string
	status int
}

func (e apiErr) Error() string       { return fmt.Sprintf("api error %s (%d)", e.code, e.status) }
func (e apiErr) ErrorCode() string   { return e.code }
func (e apiErr) HTTPStatusCode() int { return e.status }

type statusOnly int

func (e statusOnly) Error() string       { return fmt.Sprintf("status %d", int(e)) }
func (e statusOnly) HTTPStatusCode() int { return int(e) }

func TestTemporary(t *testing.T) {
	refused := &url.Error{Op: "Put", URL: "http://127.0.0.1:1/b/k", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", fmt.Errorf("get x: %w", ErrNotFound), false},
		{"access denied", fmt.Errorf("put x: %w", errors.Join(ErrAccessDenied, apiErr{"AccessDenied", 403})), false},
		{"no bucket", fmt.Errorf("check: %w", ErrNoBucket), false},
		{"invalid key", fmt.Errorf("put: %w", ErrInvalidKey), false},
		{"canceled", fmt.Errorf("put: %w", context.Canceled), false},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), false},
		{"canceled during dial", &url.Error{Op: "Put", URL: "u", Err: context.Canceled}, false},
		{"connection refused", fmt.Errorf("put: %w", refused), true},
		{"connection reset", fmt.Errorf("get: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", fmt.Errorf("get: %w", io.ErrUnexpectedEOF), true},
		{"dns", &net.DNSError{Err: "no such host", Name: "s3.example", IsTimeout: true}, true},
		{"500", apiErr{"InternalError", 500}, true},
		{"503 SlowDown", apiErr{"SlowDown", 503}, true},
		{"RequestTimeout 400", apiErr{"RequestTimeout", 400}, true},
		{"throttling 400", apiErr{"Throttling", 400}, true},
		{"429", statusOnly(429), true},
		{"502 no code", statusOnly(502), true},
		{"400 bad request", apiErr{"InvalidArgument", 400}, false},
		{"412", statusOnly(412), false},
		{"plain error", errors.New("something odd"), false},
	}
	for _, c := range cases {
		if got := Temporary(c.err); got != c.want {
			t.Errorf("%s: Temporary(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
