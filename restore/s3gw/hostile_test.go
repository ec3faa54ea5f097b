package s3gw

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mmreplicate/mmreplicate/internal/hostile"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// lockedBuf collects the HTTP server's own log, where a recovered panic would show.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestHostileStores serves every crafted store: the newest state, every history version
// listed, and the well-formed file. A state or history that cannot be rebuilt whole is an
// error naming what is wrong (never a partial tree), nothing beside the gateway's cache
// changes, and no request panics.
func TestHostileStores(t *testing.T) {
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			l, err := hostile.NewLayout(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			st, err := file.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := c.Build(ctx, st, "h", l.Outside); err != nil {
				t.Fatal(err)
			}
			before, err := hostile.Snapshot(l.Parent, l.Target)
			if err != nil {
				t.Fatal(err)
			}
			g, err := New(ctx, Options{Store: st, Host: "h", CacheDir: l.Target, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(g.Handler(Credentials{testKey, testSecret}))
			var serverLog lockedBuf
			srv.Config.ErrorLog = log.New(&serverLog, "", 0)
			srv.Start()
			defer func() { srv.Close(); g.Close() }()
			cl := client(srv, testKey, testSecret)
			bucket := aws.String(g.Bucket())

			_, listErr := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("@latest/")})
			got, getErr := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("@latest/" + hostile.Source + "/good.jsonl")})
			if getErr == nil {
				got.Body.Close()
			}
			switch {
			case c.Pass:
				if listErr != nil || getErr != nil {
					t.Fatalf("a well-formed state is not served: %v, %v", listErr, getErr)
				}
				o, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("@latest/" + hostile.Source + "/d/y.jsonl")})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(o.Body)
				o.Body.Close()
				if string(b) != "y\n" {
					t.Fatalf("d/y.jsonl: %q", b)
				}
			case c.MayPass:
			default:
				for _, err := range []error{listErr, getErr} {
					if err == nil {
						t.Fatalf("an incomplete state was served")
					}
					for _, w := range c.Want {
						if !strings.Contains(err.Error(), w) {
							t.Fatalf("the answer does not name %q: %v", w, err)
						}
					}
				}
			}
			// Every version the history lists, hostile names included: each is rebuilt
			// through a filtered restore and opened through a root.
			hist, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("@history/")})
			if err != nil {
				t.Logf("history: %v", err)
				if !strings.Contains(err.Error(), "segments/") {
					t.Fatalf("a history listing failed without naming a segment: %v", err)
				}
			} else {
				for _, o := range hist.Contents {
					r, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: o.Key})
					if err != nil {
						continue
					}
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					if bytes.Contains(b, []byte("must not change")) {
						t.Fatalf("%s served the sentinel", *o.Key)
					}
				}
			}
			after, err := hostile.Snapshot(l.Parent, l.Target)
			if err != nil {
				t.Fatal(err)
			}
			if d := hostile.Diff(before, after); d != "" {
				t.Fatalf("outside the cache changed:\n%s", d)
			}
			if s := serverLog.String(); strings.Contains(s, "panic") {
				t.Fatalf("a request panicked:\n%s", s)
			}
		})
	}
}
