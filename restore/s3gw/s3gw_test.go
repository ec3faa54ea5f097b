package s3gw

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/segment"
)

var t0 = time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)

const (
	testKey    = "browse"
	testSecret = "browse-secret-0123456789"
)

// fixture is a folder store filled with segments the way the S3 sink writes them.
type fixture struct {
	t     testing.TB
	store objstore.Store
	host  string
	seq   uint64
	recs  []journal.Record
}

func newFixture(t testing.TB) *fixture {
	st, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: st, host: "Agent_Host.1"}
}

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

// appendRec is an append record at t0+d.
func appendRec(d time.Duration, source, path string, off int64, data string) journal.Record {
	return journal.Record{Time: at(d), Op: journal.OpAppend, Source: source, Path: path, Offset: off, Mode: 0o640, Data: []byte(data)}
}

func deleteRec(d time.Duration, source, path string) journal.Record {
	return journal.Record{Time: at(d), Op: journal.OpDelete, Source: source, Path: path}
}

// wholeFile stores content as a blob and returns the record that sets the file to it.
func (f *fixture) wholeFile(d time.Duration, source, path, content string) journal.Record {
	ref := journal.ChunkRef{Hash: sha256.Sum256([]byte(content)), Size: uint32(len(content))}
	if err := f.store.Put(context.Background(), manifest.BlobKey(ref.ID()), []byte(content)); err != nil {
		f.t.Fatal(err)
	}
	return journal.Record{Time: at(d), Op: journal.OpFile, Source: source, Path: path, Offset: int64(len(content)),
		Mode: 0o600, Data: journal.EncodeChunks([]journal.ChunkRef{ref})}
}

// put numbers recs and stores them as one segment.
func (f *fixture) put(recs ...journal.Record) {
	f.t.Helper()
	for i := range recs {
		f.seq++
		recs[i].Seq = f.seq
	}
	if err := f.store.Put(context.Background(), segment.Key(f.host, recs), segment.Encode(recs)); err != nil {
		f.t.Fatal(err)
	}
	f.recs = append(f.recs, recs...)
}

// serve starts a gateway and an HTTP server over the fixture's store.
func (f *fixture) serve(o Options) (*Gateway, *httptest.Server) {
	f.t.Helper()
	o.Store, o.Host = f.store, f.host
	if o.CacheDir == "" {
		o.CacheDir = f.t.TempDir()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := New(context.Background(), o)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler(Credentials{testKey, testSecret}))
	f.t.Cleanup(func() { srv.Close(); g.Close() })
	return g, srv
}

// client is an SDK client with path-style addressing against srv.
func client(srv *httptest.Server, key, secret string) *s3.Client {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
		RetryMaxAttempts: 1}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
}

// scenario fills a history with appends, a rewrite, a delete and recreation, a whole
// file, two sources and a quiet gap of an hour.
func scenario(t testing.TB) *fixture {
	f := newFixture(t)
	f.put(appendRec(0, "sessions", "a.jsonl", 0, "1\n"), appendRec(time.Second, "sessions", "b.jsonl", 0, "x\n"))
	f.put(appendRec(2*time.Second, "sessions", "a.jsonl", 2, "2\n"), f.wholeFile(2*time.Second, "workspaces", "notes.md", "# notes\n"))
	f.put(appendRec(3*time.Second, "sessions", "a.jsonl", 4, "3\n"), deleteRec(4500*time.Millisecond, "sessions", "b.jsonl"),
		appendRec(5*time.Second, "sessions", "b.jsonl", 0, "y\n"))
	f.put(f.wholeFile(6*time.Second, "workspaces", "notes.md", "# notes\nmore\n"),
		appendRec(6*time.Second, "sessions", "dir with space/c+d@e.jsonl", 0, "q\n"))
	f.put(appendRec(time.Hour+10*time.Second, "sessions", "deep/er/z.jsonl", 0, "z\n"))
	return f
}

// restoreTree is the reference: restore.Run at T, read back.
func restoreTree(t testing.TB, st objstore.Store, host string, when time.Time, latest bool) map[string]string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "r")
	_, err := restore.Run(context.Background(), restore.Options{Store: st, Host: host, At: when, Latest: latest, To: to})
	if errors.Is(err, restore.ErrNothing) {
		return map[string]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	filepath.WalkDir(to, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(to, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return out
}

// served is one object as a client sees it.
type served struct {
	body     string
	modified time.Time // from the listing
	etag     string
}

// listAll lists every key under prefix, page by page.
func listAll(t testing.TB, c *s3.Client, bucket, prefix string, pageSize int32) []string {
	t.Helper()
	var keys []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	if pageSize > 0 {
		in.MaxKeys = aws.Int32(pageSize)
	}
	p := s3.NewListObjectsV2Paginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		if pageSize > 0 && len(out.Contents) > int(pageSize) {
			t.Fatalf("page of %d keys, asked for %d", len(out.Contents), pageSize)
		}
		for _, o := range out.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// fetchTree lists prefix and GETs every object under it.
func fetchTree(t testing.TB, c *s3.Client, bucket, prefix string) map[string]served {
	t.Helper()
	out := map[string]served{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", *o.Key, err)
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if *g.ETag != *o.ETag || *g.ContentLength != *o.Size || int64(len(b)) != *o.Size {
				t.Fatalf("%s: GET etag %s length %d (%d read), listing etag %s size %d", *o.Key, *g.ETag, *g.ContentLength, len(b), *o.ETag, *o.Size)
			}
			if !g.LastModified.Equal(o.LastModified.Truncate(time.Second)) {
				t.Fatalf("%s: GET Last-Modified %s, listing %s", *o.Key, g.LastModified, o.LastModified)
			}
			out[strings.TrimPrefix(*o.Key, prefix)] = served{body: string(b), modified: *o.LastModified, etag: *o.ETag}
		}
	}
	return out
}

// lastChange is the capture time of the last record that changed path at or before T.
func (f *fixture) lastChange(key string, when int64) time.Time {
	var last int64
	for _, r := range f.recs {
		if r.Source+"/"+r.Path == key && r.Time <= when && r.Op != journal.OpDelete {
			last = r.Time
		}
	}
	return time.Unix(0, last).UTC()
}

func TestStateAtTimesEqualsRestore(t *testing.T) {
	f := scenario(t)
	now := t0.Add(time.Hour + 20*time.Second)
	g, srv := f.serve(Options{Now: func() time.Time { return now }, MaxStates: 100})
	c := client(srv, testKey, testSecret)
	bucket := g.Bucket()
	if bucket != "agent-host.1" {
		t.Fatalf("bucket %q", bucket)
	}
	for _, spell := range []string{"2026-11-26T17:59:59Z", "2026-11-26T18:00:00Z", "2026-11-26T18:00:01Z",
		"2026-11-26T19:00:02.5+01:00", "2026-11-26T18:00:04.5Z", "2026-11-26T18:00:05Z", "2026-11-26T18:00:06Z",
		"2026-11-26T18:00:03.2Z", "2026-11-26T18:30:00Z", "2026-11-26T19:00:10Z", "latest", "-1h", "-1h10s", "-1h16.8s"} {
		when, latest := now, spell == "latest"
		switch {
		case strings.HasPrefix(spell, "-"):
			d, _ := time.ParseDuration(spell)
			when = now.Add(d)
		case !latest:
			when, _ = time.Parse(time.RFC3339Nano, spell)
		}
		want := restoreTree(t, f.store, f.host, when, latest)
		got := fetchTree(t, c, bucket, "@"+spell+"/")
		if len(got) != len(want) {
			t.Fatalf("@%s: %d objects, restore gives %d: %v vs %v", spell, len(got), len(want), got, want)
		}
		for k, w := range want {
			s := got[k]
			if s.body != w {
				t.Fatalf("@%s/%s = %q, restore gives %q", spell, k, s.body, w)
			}
			lc := f.lastChange(k, when.UnixNano())
			if latest {
				lc = f.lastChange(k, 1<<62)
			}
			if !s.modified.Equal(lc.Truncate(time.Millisecond)) {
				t.Fatalf("@%s/%s: Last-Modified %s, captured %s", spell, k, s.modified, lc)
			}
			if sum := md5.Sum([]byte(w)); s.etag != `"`+hex.EncodeToString(sum[:])+`"` {
				t.Fatalf("@%s/%s: ETag %s is not the MD5 of the content", spell, k, s.etag)
			}
		}
	}
	// Instants with no capture between them share one rebuilt state, whatever TIME
	// names them: the quiet hour (18:00:06 to 19:00:10) holds one, and so does the span
	// of the segment holding 18:00:03, 18:00:04.5 and 18:00:05 between its records.
	before := g.states.len()
	for _, spell := range []string{"2026-11-26T18:10:00Z", "2026-11-26T18:59:59.999Z", "2026-11-26T19:00:00Z",
		"2026-11-26T18:00:03Z", "2026-11-26T18:00:04.4Z", "2026-11-26T19:00:04.499+01:00"} {
		fetchTree(t, c, bucket, "@"+spell+"/")
	}
	if g.states.len() != before {
		t.Fatalf("instants in a quiet gap rebuilt new states: %d -> %d", before, g.states.len())
	}
	// Not a TIME: nothing there.
	if keys := listAll(t, c, bucket, "@yesterday/", 0); len(keys) != 0 {
		t.Fatalf("@yesterday/ lists %v", keys)
	}
}

func TestHistoryVersions(t *testing.T) {
	f := scenario(t)
	g, srv := f.serve(Options{})
	c := client(srv, testKey, testSecret)
	ctx := context.Background()
	for file, want := range map[string][]time.Duration{
		"sessions/a.jsonl":    {0, 2 * time.Second, 3 * time.Second},
		"sessions/b.jsonl":    {time.Second, 5 * time.Second}, // the delete at 4.5s is not a version
		"workspaces/notes.md": {2 * time.Second, 6 * time.Second},
	} {
		prefix := "@history/" + file + "/"
		vs := fetchTree(t, c, g.Bucket(), prefix)
		if len(vs) != len(want) {
			t.Fatalf("%s: versions %v, want %d", file, vs, len(want))
		}
		keys := listAll(t, c, g.Bucket(), prefix, 1)
		for i, d := range want {
			name := t0.Add(d).Format(versionLayout)
			if keys[i] != prefix+name {
				t.Fatalf("%s: version %d is %s, want %s", file, i, keys[i], prefix+name)
			}
			ref := restoreTree(t, f.store, f.host, t0.Add(d), false)[file]
			v := vs[name]
			if v.body != ref || !v.modified.Equal(t0.Add(d)) || !strings.HasSuffix(v.etag, `-1"`) {
				t.Fatalf("%s@%s: %q modified %s etag %s; restore gives %q", file, name, v.body, v.modified, v.etag, ref)
			}
			// Any TIME spelling of the same instant names the same version.
			h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(g.Bucket()),
				Key: aws.String(prefix + t0.Add(d).In(time.FixedZone("x", 3600)).Format(time.RFC3339Nano))})
			if err != nil || *h.ETag != v.etag {
				t.Fatalf("%s at %s in another zone: %v", file, name, err)
			}
		}
	}
	// A time that is not a change of the file is no object.
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(g.Bucket()), Key: aws.String("@history/sessions/a.jsonl/2026-11-26T18:00:01Z")})
	if !isCode(err, "NoSuchKey") {
		t.Fatalf("GET of a time without a change: %v", err)
	}
	// Folders of the history roll up at the delimiter.
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(g.Bucket()), Prefix: aws.String("@history/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if got := prefixes(out.CommonPrefixes); strings.Join(got, " ") != "@history/sessions/ @history/workspaces/" {
		t.Fatalf("@history/ folders: %v", got)
	}
}

func TestFreshLatestAndBoundedCache(t *testing.T) {
	f := scenario(t)
	g, srv := f.serve(Options{Refresh: time.Millisecond, MaxStates: 2})
	c := client(srv, testKey, testSecret)
	if got := fetchTree(t, c, g.Bucket(), "@latest/"); got["sessions/deep/er/z.jsonl"].body != "z\n" {
		t.Fatalf("latest: %v", got)
	}
	f.put(appendRec(time.Hour+20*time.Second, "sessions", "deep/er/z.jsonl", 2, "zz\n"))
	time.Sleep(5 * time.Millisecond)
	if got := fetchTree(t, c, g.Bucket(), "@latest/"); got["sessions/deep/er/z.jsonl"].body != "z\nzz\n" {
		t.Fatalf("@latest did not follow a new segment: %v", got)
	}
	for _, s := range []string{"0", "1", "2", "3", "5", "6"} {
		fetchTree(t, c, g.Bucket(), "@2026-11-26T18:00:0"+s+"Z/")
	}
	dirs, _ := filepath.Glob(filepath.Join(g.CacheRoot(), "state-*"))
	if len(dirs) > 2 || g.states.len() > 2 {
		t.Fatalf("cache holds %d states on disk (%d indexed), limit 2", len(dirs), g.states.len())
	}
	g.Close()
	if _, err := os.Stat(g.CacheRoot()); !os.IsNotExist(err) {
		t.Fatalf("Close left the cache: %v", err)
	}
}

func TestBucketName(t *testing.T) {
	for in, want := range map[string]string{"vps-1": "vps-1", "VPS_1.example": "vps-1.example", "höst 2": "h-st-2"} {
		if got := BucketName(in); got != want {
			t.Fatalf("BucketName(%q) = %q, want %q", in, got, want)
		}
	}
}

func prefixes(ps []types.CommonPrefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, *p.Prefix)
	}
	sort.Strings(out)
	return out
}

// countingStore counts reads of segment objects.
type countingStore struct {
	objstore.Store
	mu   sync.Mutex
	segs int
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.Contains(key, "/segments/") {
		c.mu.Lock()
		c.segs++
		c.mu.Unlock()
	}
	return c.Store.Get(ctx, key)
}

func TestConcurrentRequestsShareOneRebuild(t *testing.T) {
	f := scenario(t)
	cs := &countingStore{Store: f.store}
	f.store = cs
	g, srv := f.serve(Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(srv, testKey, testSecret)
			if n := len(listAll(t, c, g.Bucket(), "@latest/", 2)); n != 5 {
				t.Errorf("listed %d keys", n)
			}
		}()
	}
	wg.Wait()
	if cs.segs != 5 || g.states.len() != 1 {
		t.Fatalf("8 concurrent listings read %d segment objects (5 stored) and built %d states", cs.segs, g.states.len())
	}
}
