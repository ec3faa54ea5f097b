package s3gw

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"

	"github.com/mmreplicate/mmreplicate/timespec"
)

// historyNS is the namespace of file versions.
const historyNS = "@history"

// etagHeader carries a history version's ETag from the backend to the guard, which
// puts it in place of the hex-of-Hash ETag gofakes3 writes (see guard.fix).
const etagHeader = "X-Mmreplicate-Etag"

// backend adapts a Gateway to gofakes3.Backend. Every write answers NotImplemented;
// the guard refuses writes before they get here, so that is only a second line.
type backend struct{ g *Gateway }

var _ gofakes3.Backend = backend{}

var errReadOnly = gofakes3.ErrorMessage(gofakes3.ErrNotImplemented, "this endpoint is read-only")

// ListBuckets lists the one bucket.
func (b backend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	created := time.Unix(0, 0).UTC()
	if c, err := b.g.catalogNow(); err == nil {
		if oldest, _, ok := c.cat.Window(); ok {
			created = oldest
		}
	}
	return []gofakes3.BucketInfo{{Name: b.g.bucket, CreationDate: gofakes3.NewContentTime(created)}}, nil
}

// BucketExists is true for the host's bucket only.
func (b backend) BucketExists(name string) (bool, error) { return name == b.g.bucket, nil }

// ListBucket lists keys; see list.go for the key space.
func (b backend) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if name != b.g.bucket {
		return nil, gofakes3.BucketNotFound(name)
	}
	var p, d, marker string
	if prefix != nil {
		if prefix.HasPrefix {
			p = prefix.Prefix
		}
		if prefix.HasDelimiter {
			d = prefix.Delimiter
		}
	}
	if page.HasMarker {
		marker = page.Marker
	}
	out, err := b.g.list(p, d, marker, int(page.MaxKeys))
	return out, b.g.s3Error(err)
}

// GetObject returns an object's content, or the asked range of it.
func (b backend) GetObject(bucket, key string, rr *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	return b.g.object(bucket, key, rr, true)
}

// HeadObject returns an object's metadata.
func (b backend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	return b.g.object(bucket, key, nil, false)
}

// CreateBucket is refused.
func (backend) CreateBucket(string) error { return errReadOnly }

// DeleteBucket is refused.
func (backend) DeleteBucket(string) error { return errReadOnly }

// ForceDeleteBucket is refused.
func (backend) ForceDeleteBucket(string) error { return errReadOnly }

// DeleteObject is refused.
func (backend) DeleteObject(string, string) (gofakes3.ObjectDeleteResult, error) {
	return gofakes3.ObjectDeleteResult{}, errReadOnly
}

// PutObject is refused.
func (backend) PutObject(string, string, map[string]string, io.Reader, int64, *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	return gofakes3.PutObjectResult{}, errReadOnly
}

// DeleteMulti is refused.
func (backend) DeleteMulti(string, ...string) (gofakes3.MultiDeleteResult, error) {
	return gofakes3.MultiDeleteResult{}, errReadOnly
}

// CopyObject is refused.
func (backend) CopyObject(string, string, string, string, map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObjectResult{}, errReadOnly
}

// parseTime reads the TIME of a "@<TIME>" namespace.
func (g *Gateway) parseTime(s string) (time.Time, bool, error) {
	return timespec.Parse(s, g.o.Now())
}

// object resolves a key to its content (body) or only its metadata.
func (g *Gateway) object(bucket, key string, rr *gofakes3.ObjectRangeRequest, body bool) (*gofakes3.Object, error) {
	if bucket != g.bucket {
		return nil, gofakes3.BucketNotFound(bucket)
	}
	ns, rest, ok := strings.Cut(key, "/")
	if !ok || rest == "" || !strings.HasPrefix(ns, "@") {
		return nil, gofakes3.KeyNotFound(key)
	}
	if ns == historyNS {
		return g.historyObject(key, rest, rr, body)
	}
	t, latest, err := g.parseTime(ns[1:])
	if err != nil {
		return nil, gofakes3.KeyNotFound(key)
	}
	e, st, err := g.stateAt(t, latest)
	if err != nil {
		return nil, g.s3Error(err)
	}
	defer g.states.release(e)
	if err := problem(st.problems); err != nil { // never a partial tree
		return nil, incomplete("the state at "+ns[1:], err)
	}
	i := st.find(rest)
	if i < 0 {
		return nil, gofakes3.KeyNotFound(key)
	}
	f := st.files[i]
	obj := &gofakes3.Object{Name: key, Metadata: metadata(rest, f.mtime), Size: f.size, Hash: f.md5[:]}
	return g.withBody(obj, st.path(i), rr, body)
}

// historyObject serves "@history/<source>/<path>/<TIME>".
func (g *Gateway) historyObject(key, rest string, rr *gofakes3.ObjectRangeRequest, body bool) (*gofakes3.Object, error) {
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return nil, gofakes3.KeyNotFound(key)
	}
	file := rest[:i]
	t, latest, err := g.parseTime(rest[i+1:])
	if err != nil || latest {
		return nil, gofakes3.KeyNotFound(key)
	}
	h, err := g.historyNow()
	if err != nil {
		return nil, g.s3Error(err)
	}
	if _, ok := h.lookup(file, t.UnixNano()); !ok {
		return nil, gofakes3.KeyNotFound(key)
	}
	e, v, err := g.versionAt(file, t.UnixNano())
	if errors.Is(err, errLost) { // the history holds it: the store lost what it needs
		return nil, incomplete(file+" at "+rest[i+1:], err)
	}
	if errors.Is(err, errNoVersion) {
		return nil, gofakes3.KeyNotFound(key)
	}
	if err != nil {
		return nil, g.s3Error(err)
	}
	defer g.versions.release(e)
	if err := problem(v.problems); err != nil {
		return nil, incomplete(file+" at "+rest[i+1:], err)
	}
	meta := metadata(file, timeOf(t.UnixNano()))
	meta[etagHeader] = versionETag(g.o.Host, file, t.UnixNano())
	obj := &gofakes3.Object{Name: key, Metadata: meta, Size: v.meta.size, Hash: v.meta.md5[:]}
	return g.withBody(obj, v.path, rr, body)
}

// withBody opens the file behind obj (a range of it when asked). The file stays readable
// after its cache entry is evicted: the open descriptor keeps it.
func (g *Gateway) withBody(obj *gofakes3.Object, p string, rr *gofakes3.ObjectRangeRequest, body bool) (*gofakes3.Object, error) {
	if !body {
		obj.Contents = noBody{}
		return obj, nil
	}
	rnge, err := rr.Range(obj.Size)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, g.s3Error(err)
	}
	obj.Range = rnge
	if rnge == nil {
		obj.Contents = f
	} else {
		obj.Contents = section{io.NewSectionReader(f, rnge.Start, rnge.Length), f}
	}
	return obj, nil
}

type noBody struct{}

func (noBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noBody) Close() error             { return nil }

type section struct {
	io.Reader
	io.Closer
}

// metadata holds the headers gofakes3 copies onto GET and HEAD answers.
func metadata(name string, mtime time.Time) map[string]string {
	ct := mime.TypeByExtension(path.Ext(name))
	switch {
	case ct != "":
	case strings.HasSuffix(name, ".jsonl"), strings.HasSuffix(name, ".ndjson"):
		ct = "application/x-ndjson"
	default:
		ct = "application/octet-stream"
	}
	return map[string]string{
		"Last-Modified":           mtime.UTC().Format(http.TimeFormat),
		"Content-Type":            ct,
		"X-Amz-Meta-Capture-Time": timespec.Format(mtime),
	}
}

func md5ETag(sum [16]byte) string { return `"` + hex.EncodeToString(sum[:]) + `"` }

func timeOf(nanos int64) time.Time { return time.Unix(0, nanos).UTC() }

// s3Error passes gofakes3 errors through and logs anything else, which gofakes3 then
// answers as a 500 InternalError.
func (g *Gateway) s3Error(err error) error {
	if err == nil {
		return nil
	}
	var ge gofakes3.Error
	if errors.As(err, &ge) {
		return err
	}
	g.o.Log.Error("serve-s3: request failed", "err", err)
	return err
}

// fakesLog sends gofakes3's own messages to the gateway's logger.
type fakesLog struct{ log *slog.Logger }

// Print implements gofakes3.Logger.
func (l fakesLog) Print(level gofakes3.LogLevel, v ...interface{}) {
	switch level {
	case gofakes3.LogErr:
		l.log.Warn("serve-s3: protocol error", "detail", strings.TrimSpace(fmt.Sprintln(v...)))
	default:
		l.log.Debug("serve-s3", "detail", strings.TrimSpace(fmt.Sprintln(v...)))
	}
}
