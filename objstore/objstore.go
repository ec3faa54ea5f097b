// Package objstore defines Store, the small object-store contract that the
// replication sinks write to and restore reads from, with the sentinel
// errors and helpers shared by its implementations (objstore/s3,
// objstore/file). The conformance suite in objstore/objstoretest pins the
// contract down; every implementation runs it.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is relative to the store's root, never to the bucket.
	Key  string
	Size int64
	// ModTime is when the object was last written, as the store reports it.
	ModTime time.Time
}

// Store is a flat key space of immutable-ish objects under one root (bucket
// plus prefix, or a folder).
//
// Keys are slash-separated. Because folder-backed stores (objstore/file, and
// S3 servers that map keys onto a file system) cannot hold both "a" and
// "a/b", callers never use one key as the folder of another.
//
// Every method returns errors wrapped so that errors.Is finds ErrNotFound,
// ErrAccessDenied, ErrNoBucket or ErrInvalidKey where they apply, and
// Temporary tells whether a retry may help. Implementations do not retry
// for long themselves: retries, rate limits and metrics wrap a Store.
type Store interface {
	// Put writes data under key; readers see either the old object or the
	// whole new one, never a part.
	Put(ctx context.Context, key string, data []byte) error
	// Get returns the whole object; ErrNotFound (wrapped) when absent.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange returns n bytes of the object starting at off (a ranged GET);
	// ErrNotFound (wrapped) when absent, ErrShortRange (wrapped) when the
	// object ends before off+n.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	// Open streams an object (for large blobs); ErrNotFound when absent.
	// The caller closes the reader.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's size and time; ErrNotFound when absent.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn for every key that starts with prefix, recursively, in
	// ascending lexical (byte) order; an empty prefix lists everything.
	// fn's error stops the listing and is returned unchanged.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Check verifies the store is reachable and looks usable (the bucket or
	// folder exists, credentials work), so start-up fails fast with a clear
	// message rather than at the first upload.
	Check(ctx context.Context) error
	// String names the store for messages, e.g.
	// "s3://bucket/prefix (http://127.0.0.1:7070)" or "file:///x".
	String() string
}

// Sentinel errors. Implementations wrap them, so test with errors.Is.
var (
	// ErrNotFound means the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAccessDenied means the credentials were refused or lack permission.
	ErrAccessDenied = errors.New("access denied")
	// ErrNoBucket means the bucket (or root folder) does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrInvalidKey means a key or prefix broke the key rules (see ValidateKey).
	ErrInvalidKey = errors.New("invalid key")
	// ErrShortRange means a ranged read asked for bytes past the object's end,
	// or for a negative range.
	ErrShortRange = errors.New("range outside the object")
)

// ValidateKey enforces the key rules every implementation shares: not empty,
// not starting or ending with "/", no empty, "." or ".." segments, no NUL.
// The rules are stricter than S3's so that every key maps to exactly one
// file path and can never escape a folder-backed store's root.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: starts or ends with /", ErrInvalidKey, key)
	}
	if strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("%w %q: contains NUL", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty segment", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty is allowed, and so is a partial
// last segment ("seg/2026-"), but the complete segments follow ValidateKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasSuffix(prefix, "/") {
		return ValidateKey(strings.TrimSuffix(prefix, "/"))
	}
	// A trailing ".." or "." could still grow into a valid name ("..x"), but
	// letting it through would allow "a/.." as a prefix, so the last segment is
	// checked as if complete.
	return ValidateKey(prefix)
}

// Temporary reports whether retrying the failed operation may help: network
// errors, timeouts, HTTP 5xx, 408 and 429, throttling and request-timeout
// error codes. It is false for nil, ErrNotFound, ErrAccessDenied,
// ErrNoBucket, ErrInvalidKey, other 4xx answers, context cancellation and
// a passed context deadline (the caller's own deadline: retrying under it
// cannot succeed), and for anything it does not recognise.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	for _, perm := range []error{context.Canceled, context.DeadlineExceeded, ErrShortRange,
		ErrNotFound, ErrAccessDenied, ErrNoBucket, ErrInvalidKey} {
		if errors.Is(err, perm) {
			return false
		}
	}
	// The interfaces below are what the S3 SDK's error types implement;
	// matching on behaviour keeps this package free of SDK imports.
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && temporaryCodes[coded.ErrorCode()] {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		if c := status.HTTPStatusCode(); c >= 500 || c == 408 || c == 429 {
			return true
		}
		if c := status.HTTPStatusCode(); c >= 400 {
			return false
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	var urlErr *url.Error
	if errors.As(err, &opErr) || errors.As(err, &urlErr) {
		return true
	}
	for _, e := range []error{io.ErrUnexpectedEOF, io.EOF, syscall.ECONNREFUSED,
		syscall.ECONNRESET, syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// temporaryCodes are S3 error codes that mean "try again later".
var temporaryCodes = map[string]bool{
	"SlowDown":                      true,
	"Throttling":                    true,
	"ThrottlingException":           true,
	"ThrottledException":            true,
	"RequestThrottled":              true,
	"RequestThrottledException":     true,
	"TooManyRequestsException":      true,
	"RequestLimitExceeded":          true,
	"RequestTimeout":                true,
	"RequestTimeoutException":       true,
	"InternalError":                 true,
	"ServiceUnavailable":            true,
	"OperationAborted":              true,
	"RequestTimeTooSkewed":          true,
	"PriorRequestNotComplete":       true,
	"ProvisionedThroughputExceeded": true,
}

// ParseURL splits a store URL: "s3://bucket/some/prefix" gives
// ("s3", "bucket", "some/prefix") and "file:///abs/dir" gives
// ("file", "", "/abs/dir"). The S3 prefix has no leading or trailing slash.
func ParseURL(u string) (scheme, bucket, prefix string, err error) {
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("store URL %q: %s (want s3://bucket/prefix or file:///absolute/path)", u, why)
	}
	pu, perr := url.Parse(u)
	if perr != nil {
		return bad("cannot parse")
	}
	if pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil {
		return bad("query, fragment or user info not allowed")
	}
	switch pu.Scheme {
	case "s3":
		if pu.Host == "" {
			return bad("no bucket")
		}
		if pu.Port() != "" || strings.ContainsAny(pu.Host, " _") {
			return bad("invalid bucket name " + pu.Host)
		}
		p := strings.Trim(pu.Path, "/")
		if p != "" {
			if err := ValidateKey(p); err != nil {
				return bad("invalid prefix")
			}
		}
		return "s3", pu.Host, p, nil
	case "file":
		if pu.Host != "" && pu.Host != "localhost" {
			return bad("file URLs need three slashes and an absolute path")
		}
		if pu.Opaque != "" || !path.IsAbs(pu.Path) {
			return bad("path must be absolute")
		}
		return "file", "", path.Clean(pu.Path), nil
	case "":
		return bad("no scheme")
	default:
		return bad("unsupported scheme " + pu.Scheme)
	}
}
