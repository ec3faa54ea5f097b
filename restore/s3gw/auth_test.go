package s3gw

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// rawGet sends req and returns the status and the body.
func rawDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signed is a request signed with the SDK's own SigV4 signer at the given time.
func signed(t *testing.T, method, u string, secret string, when time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds := aws.Credentials{AccessKeyID: testKey, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, emptySHA256, "s3", "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAuthRefusesUnsignedWrongAndWrites(t *testing.T) {
	f := scenario(t)
	g, srv := f.serve(Options{})
	ctx := context.Background()
	b, key := aws.String(g.Bucket()), aws.String("@latest/sessions/a.jsonl")
	objURL := srv.URL + "/" + g.Bucket() + "/" + url.PathEscape("@latest") + "/sessions/a.jsonl"
	good := client(srv, testKey, testSecret)
	if _, err := good.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: key}); err != nil {
		t.Fatalf("a signed read: %v", err)
	}
	if code, body := rawDo(t, signed(t, "GET", objURL, testSecret, time.Now())); code != 200 || body != "1\n2\n3\n" {
		t.Fatalf("signed by the SDK's signer: %d %q", code, body)
	}

	_, err := client(srv, testKey, "not-the-secret").GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key})
	if !isCode(err, "SignatureDoesNotMatch") || status(err) != 403 {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = client(srv, "nobody", testSecret).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b})
	if !isCode(err, "InvalidAccessKeyId") || status(err) != 403 {
		t.Fatalf("wrong key: %v", err)
	}
	if code, body := rawDo(t, signed(t, "GET", objURL, testSecret, time.Now().Add(-time.Hour))); code != 403 || !strings.Contains(body, "RequestTimeTooSkewed") {
		t.Fatalf("an hour-old signature: %d %s", code, body)
	}
	for _, u := range []string{objURL, srv.URL + "/" + g.Bucket() + "?list-type=2", srv.URL + "/"} {
		req, _ := http.NewRequest("GET", u, nil)
		if code, body := rawDo(t, req); code != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") {
			t.Fatalf("unsigned GET %s: %d %s", u, code, body)
		}
	}
	req, _ := http.NewRequest("GET", objURL, nil)
	req.Header.Set("Authorization", "AWS "+testKey+":c2lnbmF0dXJl")
	if code, body := rawDo(t, req); code != 403 || !strings.Contains(body, "Signature Version 2") {
		t.Fatalf("signature v2: %d %s", code, body)
	}

	// Every write is refused, signed or not, and the store is left as it was.
	before := restoreTree(t, f.store, f.host, time.Time{}, true)
	writes := map[string]func() error{
		"PutObject": func() error {
			_, err := good.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("@latest/sessions/new.jsonl"), Body: strings.NewReader("x\n")})
			return err
		},
		"DeleteObject": func() error { _, err := good.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: key}); return err },
		"DeleteObjects": func() error {
			_, err := good.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: key}}}})
			return err
		},
		"CreateMultipartUpload": func() error {
			_, err := good.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("@latest/x")})
			return err
		},
		"CopyObject": func() error {
			_, err := good.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("@latest/y"), CopySource: aws.String(g.Bucket() + "/" + *key)})
			return err
		},
		"CreateBucket": func() error {
			_, err := good.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("other")})
			return err
		},
		"DeleteBucket": func() error { _, err := good.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b}); return err },
	}
	for name, call := range writes {
		if err := call(); !isCode(err, "AccessDenied") || status(err) != 403 {
			t.Fatalf("%s: want 403 AccessDenied, got %v", name, err)
		}
	}
	if code, body := rawDo(t, signed(t, "PATCH", objURL, testSecret, time.Now())); code != 405 || !strings.Contains(body, "<Code>MethodNotAllowed</Code>") {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	if after := restoreTree(t, f.store, f.host, time.Time{}, true); len(after) != len(before) || after["sessions/a.jsonl"] != before["sessions/a.jsonl"] {
		t.Fatalf("the store changed: %v -> %v", before, after)
	}
	if code, body := rawDo(t, signed(t, "GET", srv.URL+"/"+g.Bucket()+"?acl", testSecret, time.Now())); code != 501 {
		t.Fatalf("?acl: %d %s", code, body)
	}
}

func TestPresignedURLs(t *testing.T) {
	f := scenario(t)
	g, srv := f.serve(Options{})
	ctx := context.Background()
	ps := s3.NewPresignClient(client(srv, testKey, testSecret))
	req, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(g.Bucket()), Key: aws.String("@history/sessions/b.jsonl/2026-11-26T18:00:05.000000000Z")})
	if err != nil {
		t.Fatal(err)
	}
	get, _ := http.NewRequest("GET", req.URL, nil)
	if code, body := rawDo(t, get); code != 200 || body != "y\n" {
		t.Fatalf("presigned GET: %d %q", code, body)
	}
	tampered, _ := http.NewRequest("GET", strings.Replace(req.URL, "b.jsonl", "a.jsonl", 1), nil)
	if code, body := rawDo(t, tampered); code != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("tampered presigned URL: %d %s", code, body)
	}
	// Signed two hours ago, valid for one minute.
	old, _ := http.NewRequest("GET", srv.URL+"/"+g.Bucket()+"/%40latest/sessions/a.jsonl?X-Amz-Expires=60", nil)
	u, _, err := v4.NewSigner().PresignHTTP(ctx, aws.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}, old,
		"UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := http.NewRequest("GET", u, nil)
	if code, body := rawDo(t, expired); code != 403 || !strings.Contains(body, "expired") {
		t.Fatalf("expired presigned URL: %d %s", code, body)
	}
}

func TestGetHeadRange(t *testing.T) {
	f := scenario(t)
	g, srv := f.serve(Options{})
	c := client(srv, testKey, testSecret)
	ctx := context.Background()
	b, key := aws.String(g.Bucket()), aws.String("@latest/sessions/a.jsonl")
	sum := md5.Sum([]byte("1\n2\n3\n"))
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if *h.ContentLength != 6 || *h.ETag != `"`+hex.EncodeToString(sum[:])+`"` || !h.LastModified.Equal(t0.Add(3*time.Second)) ||
		h.Metadata["capture-time"] != "2026-11-26T18:00:03Z" {
		t.Fatalf("HEAD: length %d etag %s modified %s meta %v", *h.ContentLength, *h.ETag, h.LastModified, h.Metadata)
	}
	for rng, want := range map[string]string{"bytes=2-3": "2\n", "bytes=-2": "3\n", "bytes=4-": "3\n", "bytes=0-100": "1\n2\n3\n"} {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key, Range: aws.String(rng)})
		if err != nil {
			t.Fatalf("%s: %v", rng, err)
		}
		body, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(body) != want || *out.ContentLength != int64(len(want)) || !strings.HasSuffix(*out.ContentRange, "/6") {
			t.Fatalf("%s: %q length %d range %s", rng, body, *out.ContentLength, *out.ContentRange)
		}
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key, Range: aws.String("bytes=10-")}); status(err) != 416 {
		t.Fatalf("range past the end: %v", err)
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("@latest/sessions/none.jsonl")}); !isCode(err, "NoSuchKey") {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("@latest/sessions/b.jsonl"), IfNoneMatch: aws.String(`"` + hex.EncodeToString(md5Of("y\n")) + `"`)}); status(err) != 304 {
		t.Fatalf("If-None-Match: %v", err)
	}
	if _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("another-host")}); !isCode(err, "NoSuchBucket") {
		t.Fatalf("another bucket: %v", err)
	}
	buckets, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(buckets.Buckets) != 1 || *buckets.Buckets[0].Name != g.Bucket() {
		t.Fatalf("ListBuckets: %v %v", buckets, err)
	}
}

func md5Of(s string) []byte {
	sum := md5.Sum([]byte(s))
	return sum[:]
}
