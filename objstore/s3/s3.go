// Package s3 implements objstore.Store on an S3-compatible object store
// (AWS S3 or any server speaking the S3 API, such as a local gateway).
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mmreplicate/mmreplicate/objstore"
)

// Options configure a Store.
type Options struct {
	// Bucket is required.
	Bucket string
	// Prefix is the folder inside the bucket that holds the store's keys;
	// slashes at either end are ignored. Empty means the bucket's root.
	Prefix string
	// Endpoint is the server's base URL, e.g. "http://127.0.0.1:7070";
	// empty means AWS. Setting it switches to path-style addressing, which
	// every S3-compatible server understands without DNS set-up.
	Endpoint string
	// Region defaults to the environment's AWS region, else "us-east-1".
	Region string
	// AccessKeyID and SecretAccessKey are static credentials. When
	// AccessKeyID is empty the standard AWS chain (environment, shared
	// files, instance roles) supplies them.
	AccessKeyID     string
	SecretAccessKey string
}

// SDK tuning, chosen because callers wrap the store in their own retry loop:
//   - maxAttempts keeps the SDK's retries to a quick absorb of a dropped
//     keep-alive connection or one 5xx, so an outage surfaces to the caller
//     (and its metrics) within seconds rather than after a long hidden wait;
//   - the client-side retry quota is off, because after a long outage it
//     would refuse even those first retries;
//   - maxIdlePerHost lets parallel restores reuse connections (the SDK's
//     default keeps 10 per host).
const (
	maxAttempts    = 3
	maxBackoff     = 2 * time.Second
	maxIdlePerHost = 64
)

// Store is an objstore.Store on one bucket and prefix.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string // no slashes at either end
	endpoint string
	url      string // "s3://bucket/prefix", the start of every error message
}

var _ objstore.Store = (*Store)(nil)

// New builds the client. It does not contact the server; call Check for that.
// responseTimeout bounds the wait for a response once a request is sent: long enough for
// a large PUT's body to be taken in on a slow link, short enough to notice a stalled server.
const responseTimeout = 60 * time.Second

func New(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3 store: no bucket")
	}
	prefix := strings.Trim(o.Prefix, "/")
	u := "s3://" + o.Bucket
	if prefix != "" {
		u += "/" + prefix
		if err := objstore.ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("%s: prefix: %w", u, err)
		}
	}
	loadOpts := []func(*config.LoadOptions) error{
		// The SDK's buildable client is the only kind LoadDefaultConfig can
		// add a custom CA bundle (AWS_CA_BUNDLE) to.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = maxIdlePerHost
			// A server that accepts a request and then stalls must fail the attempt, so
			// the caller retries and its status shows the trouble instead of hanging.
			tr.ResponseHeaderTimeout = responseTimeout
		})),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = maxAttempts
				so.MaxBackoff = maxBackoff
				so.RateLimiter = ratelimit.None
			})
		}),
		// Checksums only where the API requires them. Response validation
		// must be off: a gateway that stores an object's data and its
		// checksum separately can, while a key is being overwritten, serve
		// one version's bytes with the other's checksum, and the SDK then
		// rejects a correct read (seen in the conformance suite's
		// AtomicOverwrite test). Request checksums stay off too, because
		// over TLS they switch uploads to the aws-chunked trailer encoding
		// that not every S3-compatible server accepts; the body is still
		// covered by the SigV4 payload hash over plain HTTP and by TLS
		// otherwise, and stored objects carry their own checksums.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("%s: load AWS config: %w", u, err)
	}
	if cfg.Region == "" {
		// Most S3-compatible servers accept any region, but SigV4 needs one.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	})
	return &Store{client: client, bucket: o.Bucket, prefix: prefix, endpoint: o.Endpoint, url: u}, nil
}

// String names the store and, when not AWS, its server.
func (s *Store) String() string {
	if s.endpoint == "" {
		return s.url
	}
	return s.url + " (" + s.endpoint + ")"
}

// objectKey maps a store key to the bucket's key.
func (s *Store) objectKey(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// Put uploads data in one PutObject, which S3 applies atomically.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := objstore.ValidateKey(key); err != nil {
		return s.fail("put", key, err)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.objectKey(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// Get downloads the whole object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.get(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n))
	}
	// A connection cut short ends in io.ErrUnexpectedEOF (the length is
	// known), never in a silently short object.
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, s.fail("get", key, err)
	}
	return buf.Bytes(), nil
}

// GetRange reads n bytes from off with one ranged GetObject (a Range header).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, s.fail("get range", key, err)
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("s3 get range %s: %w: %d+%d", key, objstore.ErrShortRange, off, n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		var status interface{ HTTPStatusCode() int }
		if errors.As(err, &status) && status.HTTPStatusCode() == 416 {
			return nil, fmt.Errorf("s3 get range %s: %w: %d+%d", key, objstore.ErrShortRange, off, n)
		}
		return nil, s.fail("get range", key, err)
	}
	defer out.Body.Close()
	buf := make([]byte, 0, n)
	b := bytes.NewBuffer(buf)
	if _, err := b.ReadFrom(io.LimitReader(out.Body, n+1)); err != nil {
		return nil, s.fail("get range", key, err)
	}
	if int64(b.Len()) != n {
		return nil, fmt.Errorf("s3 get range %s: %w: got %d of %d bytes at %d", key, objstore.ErrShortRange, b.Len(), n, off)
	}
	return b.Bytes(), nil
}

// Open starts a download and returns its body for streaming.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.get(ctx, "open", key)
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

func (s *Store) get(ctx context.Context, op, key string) (*s3.GetObjectOutput, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, s.fail(op, key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	return out, nil
}

// Stat reads the object's metadata with HeadObject.
func (s *Store) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return objstore.ObjectInfo{}, s.fail("stat", key, err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil {
		return objstore.ObjectInfo{}, s.fail("stat", key, err)
	}
	return objstore.ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// Delete removes the object; S3 itself treats an absent key as success,
// and a server that answers NoSuchKey is treated the same.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return s.fail("delete", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil {
		if err = s.fail("delete", key, err); errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// List pages through ListObjectsV2, which returns keys in byte order.
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	root := ""
	if s.prefix != "" {
		root = s.prefix + "/"
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if p := root + prefix; p != "" {
		in.Prefix = aws.String(p)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return s.fail("list", prefix, err)
		}
		for _, obj := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(obj.Key), root)
			// Folder markers ("a/b/") made by other tools are not objects
			// of this store and cannot be addressed through it.
			if strings.HasSuffix(k, "/") {
				continue
			}
			err := fn(objstore.ObjectInfo{Key: k, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Check lists at most one key under the prefix: that needs the bucket to
// exist, the credentials to be valid and read permission, without writing.
func (s *Store) Check(ctx context.Context) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), MaxKeys: aws.Int32(1)}
	if s.prefix != "" {
		in.Prefix = aws.String(s.prefix + "/")
	}
	if _, err := s.client.ListObjectsV2(ctx, in); err != nil {
		return s.fail("check", "", err)
	}
	return nil
}
