// Package web is the web console: the status of a host, its tree at any instant, one
// file at an instant (text, a session transcript as a conversation, a SQLite database
// as its tables), a file's history with the difference between two versions, and
// downloads of a file or a folder. It reads the store only (never the watcher or the
// sinks), treats everything stored as untrusted data (shown as text, never as HTML),
// and is read-only.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/timespec"
)

//go:embed assets
var assets embed.FS

// Options configure a console.
type Options struct {
	Store objstore.Store
	Host  string
	// Username and Password are the HTTP basic authentication every request must carry;
	// both are required.
	Username, Password string
	// Status, when set, is the daemon's own status (what /status serves), shown beside
	// the store's view.
	Status func() any
	// ConfigPath goes into the restore commands the console shows.
	ConfigPath string
	// HostFlag adds --host to those commands (the console serves another host than
	// the config's).
	HostFlag bool
	// StoreViewEvery is how long the store's side of the status page (files and bytes
	// per source, which take reading the newest state's index) is reused; default 1 minute.
	StoreViewEvery time.Duration
	CacheDir       string // where files and folders are rebuilt; default the system's temporary folder
	CacheBytes     int64  // bound of the disk they use; default 2 GiB
	Log            *slog.Logger
	Now            func() time.Time // default time.Now
}

// Console serves the pages and their JSON API.
type Console struct {
	o   Options
	r   *reader
	mux *http.ServeMux

	viewMu sync.Mutex
	view   *statusView
	viewAt time.Time
}

// New opens a console over o.Store. It lists the store on the first request.
func New(ctx context.Context, o Options) (*Console, error) {
	if o.Store == nil || o.Host == "" {
		return nil, errors.New("web: a store and a host are required")
	}
	if o.Username == "" || o.Password == "" {
		return nil, errors.New("web: web.username and web.password are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StoreViewEvery <= 0 {
		o.StoreViewEvery = time.Minute
	}
	r, err := openReader(ctx, o.Store, o.Host, o.CacheDir, o.CacheBytes, o.Log)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	c := &Console{o: o, r: r, mux: http.NewServeMux()}
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	c.mux.Handle("GET /assets/", http.StripPrefix("/assets/", files))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("assets/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	})
	c.mux.HandleFunc("GET /api/status", c.apiStatus)
	c.mux.HandleFunc("GET /api/tree", c.apiTree)
	c.mux.HandleFunc("GET /api/file", c.apiFile)
	c.mux.HandleFunc("GET /api/history", c.apiHistory)
	c.mux.HandleFunc("GET /api/diff", c.apiDiff)
	c.mux.HandleFunc("GET /raw", c.raw)
	c.mux.HandleFunc("GET /download", c.download)
	return c, nil
}

// Close removes the rebuilt files and folders.
func (c *Console) Close() error { return c.r.close() }

// ServeHTTP checks the credentials, refuses anything but reads and sets the headers that
// keep stored content from ever running as part of the page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !c.authorized(r) {
		h.Set("WWW-Authenticate", `Basic realm="mmreplicate", charset="UTF-8"`)
		http.Error(w, "web console: credentials required (web.username and web.password in the config)", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "web console: read-only", http.StatusMethodNotAllowed)
		return
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hu, hp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	wu, wp := sha256.Sum256([]byte(c.o.Username)), sha256.Sum256([]byte(c.o.Password))
	return subtle.ConstantTimeCompare(hu[:], wu[:])&subtle.ConstantTimeCompare(hp[:], wp[:]) == 1
}

// httpError is an error with the status it answers with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// fail answers a JSON request with {"error": ...}.
func (c *Console) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	} else {
		c.o.Log.Warn("web: request failed", "err", err)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// instant reads the at parameter (any TIME form; empty is latest).
func (c *Console) instant(r *http.Request) (time.Time, bool, error) {
	s := r.URL.Query().Get("at")
	if strings.TrimSpace(s) == "" {
		s = timespec.Latest
	}
	t, latest, err := timespec.Parse(s, c.o.Now())
	if err != nil {
		return time.Time{}, false, badRequest("%v", err)
	}
	return t, latest, nil
}

// fileParam reads a "<source>/<path>" parameter and refuses names that could leave a
// state: absolute, unclean, with a ".." element or a NUL.
func fileParam(r *http.Request, key string) (string, error) {
	p := r.URL.Query().Get(key)
	if !cleanName(p) {
		return "", badRequest("%s %q is not a stored file name (<source>/<path>)", key, p)
	}
	return p, nil
}

func cleanName(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsRune(p, 0) || strings.Contains(p, "\\") {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// dirParam reads a folder: "" (everything) or "<source>/<path>" without a trailing slash.
func dirParam(r *http.Request) (string, error) {
	d := strings.Trim(r.URL.Query().Get("dir"), "/")
	if d != "" && !cleanName(d) {
		return "", badRequest("dir %q is not a stored folder name", d)
	}
	return d, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return timespec.Format(t)
}
