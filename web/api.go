package web

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// sourceView is one source as the store shows it at the newest state.
type sourceView struct {
	Name       string `json:"name"`
	Files      int    `json:"files"`
	Bytes      int64  `json:"bytes"`
	LastChange string `json:"last_change,omitempty"`
}

type statusView struct {
	Host   string `json:"host"`
	Now    string `json:"now"`
	Oldest string `json:"oldest,omitempty"`
	Newest string `json:"newest,omitempty"`
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	// CountedAt is the newest change of the state Files, Bytes and Sources were counted
	// in (that count is reused for a while).
	CountedAt string `json:"counted_at,omitempty"`
	// Hosts are every host the store holds (the console shows Host).
	Hosts    []string     `json:"hosts"`
	Sources  []sourceView `json:"sources"`
	Problems []string     `json:"problems,omitempty"`
	Daemon   any          `json:"daemon,omitempty"`
}

func (c *Console) apiStatus(w http.ResponseWriter, r *http.Request) {
	v := c.storeView()
	v.Now = fmtTime(c.o.Now())
	// The window is a listing only: always fresh.
	if oldest, newest, ok, err := c.r.window(); err == nil && ok {
		v.Oldest, v.Newest = fmtTime(oldest), fmtTime(newest)
	}
	if c.o.Status != nil {
		v.Daemon = c.o.Status()
	}
	writeJSON(w, http.StatusOK, v)
}

// storeView is the store's side of the status page. Counting files means reading the
// newest state's index, so the view is reused for StoreViewEvery (the page refreshes far
// more often, and on a busy host every refresh would otherwise read a new index).
func (c *Console) storeView() statusView {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if c.view != nil && time.Since(c.viewAt) < c.o.StoreViewEvery {
		return *c.view
	}
	v := statusView{Host: c.o.Host, Sources: []sourceView{}, Hosts: []string{}}
	if hosts, err := c.r.hosts(context.Background()); err == nil {
		v.Hosts = hosts
	} else {
		v.Problems = append(v.Problems, fmt.Sprintf("cannot list the hosts of the store: %v", err))
	}
	oldest, newest, ok, err := c.r.window()
	if err != nil {
		v.Problems = append(v.Problems, fmt.Sprintf("cannot list the store: %v", err))
		return v // not kept: the next refresh tries again
	}
	if ok {
		v.Oldest, v.Newest = fmtTime(oldest), fmtTime(newest)
	}
	snap, err := c.r.snapshot(time.Time{}, true)
	if err != nil {
		v.Problems = append(v.Problems, fmt.Sprintf("cannot read the newest state: %v", err))
		return v
	}
	v.CountedAt = fmtTime(snap.At)
	v.Problems = append(v.Problems, snap.Problems...)
	idx := map[string]int{}
	last := map[string]time.Time{}
	for i := range snap.Len() {
		f := snap.File(i)
		src, _, _ := strings.Cut(f.Name, "/")
		j, ok := idx[src]
		if !ok {
			j = len(v.Sources)
			idx[src] = j
			v.Sources = append(v.Sources, sourceView{Name: src})
		}
		v.Sources[j].Files++
		v.Sources[j].Bytes += max(f.Size, 0)
		if f.Time.After(last[src]) {
			last[src] = f.Time
		}
		v.Files++
		v.Bytes += max(f.Size, 0)
	}
	for i := range v.Sources {
		v.Sources[i].LastChange = fmtTime(last[v.Sources[i].Name])
	}
	c.view, c.viewAt = &v, time.Now()
	return v
}

// entry is one row of a folder listing.
type entry struct {
	Name  string `json:"name"`  // last element
	Path  string `json:"path"`  // "<source>/<path>"
	Dir   bool   `json:"dir"`   //
	Files int    `json:"files"` // regular files under a folder
	Size  int64  `json:"size"`  // bytes (of everything under a folder)
	Time  string `json:"time"`  // capture time of the last change (under a folder)
}

type treeView struct {
	Host     string   `json:"host"`
	At       string   `json:"at"`       // the instant asked, resolved
	Latest   bool     `json:"latest"`   //
	StateAt  string   `json:"state_at"` // capture time of the newest change the state holds
	Oldest   string   `json:"oldest,omitempty"`
	Newest   string   `json:"newest,omitempty"`
	Dir      string   `json:"dir"`
	Entries  []entry  `json:"entries"`
	Problems []string `json:"problems,omitempty"`
	Command  string   `json:"command"`
}

func (c *Console) apiTree(w http.ResponseWriter, r *http.Request) {
	t, latest, err := c.instant(r)
	if err != nil {
		c.fail(w, err)
		return
	}
	dir, err := dirParam(r)
	if err != nil {
		c.fail(w, err)
		return
	}
	snap, err := c.r.snapshot(t, latest)
	if err != nil {
		c.fail(w, err)
		return
	}
	v := treeView{Host: c.o.Host, At: fmtTime(t), Latest: latest, StateAt: fmtTime(snap.At), Dir: dir,
		Entries: []entry{}, Problems: snap.Problems}
	if oldest, newest, ok, err := c.r.window(); err == nil && ok {
		v.Oldest, v.Newest = fmtTime(oldest), fmtTime(newest)
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	lo, hi := snap.Prefix(prefix)
	if dir != "" && lo == hi {
		c.fail(w, notFound("%s holds no files at %s", dir, v.At))
		return
	}
	var times []time.Time
	for i := lo; i < hi; i++ {
		f := snap.File(i)
		rest := f.Name[len(prefix):]
		name, _, isDir := strings.Cut(rest, "/")
		n := len(v.Entries)
		if n == 0 || v.Entries[n-1].Name != name || v.Entries[n-1].Dir != isDir {
			v.Entries = append(v.Entries, entry{Name: name, Path: prefix + name, Dir: isDir})
			times = append(times, time.Time{})
			n++
		}
		e := &v.Entries[n-1]
		e.Files++
		e.Size += max(f.Size, 0)
		if !isDir && f.Size < 0 {
			e.Size = -1 // a database: its size shows once it is opened
		}
		if f.Time.After(times[n-1]) {
			times[n-1] = f.Time
		}
	}
	for i := range v.Entries {
		v.Entries[i].Time = fmtTime(times[i])
	}
	v.Command = c.restoreCommand(instantArg(t, latest, snap.At), dir, true)
	writeJSON(w, http.StatusOK, v)
}

// instantArg is the --at of a restore command that gives the state on screen: the
// instant asked, or for "latest" the newest change the state holds (a later restore
// at "latest" could hold more).
func instantArg(t time.Time, latest bool, stateAt time.Time) string {
	if latest {
		if stateAt.IsZero() {
			return "latest"
		}
		return fmtTime(stateAt)
	}
	return fmtTime(t)
}

// restoreCommand is the `mmreplicate restore` that writes what the page shows.
func (c *Console) restoreCommand(at, name string, dir bool) string {
	var b strings.Builder
	b.WriteString("mmreplicate restore")
	if c.o.ConfigPath != "" {
		b.WriteString(" --config " + shellQuote(c.o.ConfigPath))
	}
	if c.o.HostFlag {
		b.WriteString(" --host " + shellQuote(c.o.Host))
	}
	b.WriteString(" --at " + shellQuote(at))
	if name != "" {
		src, rel, _ := strings.Cut(name, "/")
		b.WriteString(" --source " + shellQuote(src))
		if rel != "" {
			glob := escapeGlob(rel)
			if dir {
				glob += "/**"
			}
			b.WriteString(" --path " + shellQuote(glob))
		}
	}
	b.WriteString(" --to ./mmreplicate-restore")
	return b.String()
}

func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:+=@,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// escapeGlob quotes a path so that restore's --path glob matches exactly that path.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// openAt finds a file in the state at the instant of the request.
func (c *Console) openAt(r *http.Request) (*snapshot, int, time.Time, bool, error) {
	t, latest, err := c.instant(r)
	if err != nil {
		return nil, 0, t, latest, err
	}
	name, err := fileParam(r, "path")
	if err != nil {
		return nil, 0, t, latest, err
	}
	snap, err := c.r.snapshot(t, latest)
	if err != nil {
		return nil, 0, t, latest, err
	}
	i := snap.Find(name)
	if i < 0 {
		return nil, 0, t, latest, notFound("%s is not a file at %s", name, fmtTime(t))
	}
	return snap, i, t, latest, nil
}

type fileView struct {
	Host     string   `json:"host"`
	Path     string   `json:"path"`
	At       string   `json:"at"`
	Latest   bool     `json:"latest"`
	StateAt  string   `json:"state_at"`
	Oldest   string   `json:"oldest,omitempty"`
	Newest   string   `json:"newest,omitempty"`
	Size     int64    `json:"size"`
	Time     string   `json:"time"`
	Problems []string `json:"problems,omitempty"`
	Command  string   `json:"command"`
	content
}

func (c *Console) apiFile(w http.ResponseWriter, r *http.Request) {
	snap, i, t, latest, err := c.openAt(r)
	if err != nil {
		c.fail(w, err)
		return
	}
	f := snap.File(i)
	body, err := c.r.content(snap, i)
	if err != nil {
		c.fail(w, err)
		return
	}
	defer body.Release()
	v := fileView{Host: c.o.Host, Path: f.Name, At: fmtTime(t), Latest: latest, StateAt: fmtTime(snap.At), Size: body.Size,
		Time: fmtTime(f.Time), Problems: joinProblems(snap.Problems, body.Problems)}
	if oldest, newest, ok, err := c.r.window(); err == nil && ok {
		v.Oldest, v.Newest = fmtTime(oldest), fmtTime(newest)
	}
	v.Command = c.restoreCommand(instantArg(t, latest, snap.At), f.Name, false)
	v.content, err = render(body.Path, f.Name)
	if err != nil {
		c.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type historyView struct {
	Path     string        `json:"path"`
	Versions []versionView `json:"versions"`
}

type versionView struct {
	Time string `json:"time"`
	Size int64  `json:"size"` // -1: not known from the records (databases)
	Gone bool   `json:"gone"` // deleted at this time
}

func (c *Console) apiHistory(w http.ResponseWriter, r *http.Request) {
	name, err := fileParam(r, "path")
	if err != nil {
		c.fail(w, err)
		return
	}
	vs, err := c.r.versions(name)
	if err != nil {
		c.fail(w, err)
		return
	}
	if len(vs) == 0 {
		c.fail(w, notFound("%s has no stored versions", name))
		return
	}
	v := historyView{Path: name, Versions: make([]versionView, len(vs))}
	for i, x := range vs {
		v.Versions[i] = versionView{Time: fmtTime(x.Time), Size: x.Size, Gone: x.Gone}
	}
	writeJSON(w, http.StatusOK, v)
}

func (c *Console) apiDiff(w http.ResponseWriter, r *http.Request) {
	name, err := fileParam(r, "path")
	if err != nil {
		c.fail(w, err)
		return
	}
	q := r.URL.Query()
	var sides [2][]byte
	var problems []string
	for k, key := range []string{"a", "b"} {
		t, latest, err := parseTime(q.Get(key), c.o.Now())
		if err != nil {
			c.fail(w, err)
			return
		}
		if latest {
			_, t, _, _ = c.r.window()
		}
		body, probs, err := c.readVersion(name, t)
		if err != nil {
			c.fail(w, err)
			return
		}
		sides[k] = body
		problems = append(problems, probs...)
	}
	d := diff(name, sides[0], sides[1])
	d.Problems = problems
	writeJSON(w, http.StatusOK, d)
}

// maxDiffBytes bounds each side of a difference.
const maxDiffBytes = 8 << 20

// readVersion reads a file as it was at t: empty when it did not exist then.
func (c *Console) readVersion(name string, t time.Time) ([]byte, []string, error) {
	v, err := c.r.versionAt(name, t)
	if errors.Is(err, errNoVersion) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer v.Release()
	if v.Size > maxDiffBytes {
		return nil, nil, badRequest("%s is %d bytes at %s: too large to compare here (limit %d); restore both versions and compare them locally", name, v.Size, fmtTime(t), maxDiffBytes)
	}
	b, err := os.ReadFile(v.Path)
	return b, v.Problems, err
}

// raw serves a file's bytes as plain text (never as HTML, whatever they hold).
func (c *Console) raw(w http.ResponseWriter, r *http.Request) {
	c.serveFile(w, r, false)
}

func (c *Console) serveFile(w http.ResponseWriter, r *http.Request, attach bool) {
	snap, i, _, _, err := c.openAt(r)
	if err != nil {
		c.fail(w, err)
		return
	}
	partial := r.URL.Query().Get("partial") == "1"
	if len(snap.Problems) > 0 && !partial {
		c.fail(w, incomplete(snap.Problems))
		return
	}
	body, err := c.r.content(snap, i)
	if err != nil {
		c.fail(w, err)
		return
	}
	defer body.Release()
	if len(body.Problems) > 0 && !partial {
		c.fail(w, incomplete(body.Problems))
		return
	}
	f, err := os.Open(body.Path)
	if err != nil {
		c.fail(w, err)
		return
	}
	defer f.Close()
	h := w.Header()
	if attach {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", attachment(path.Base(snap.File(i).Name)))
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Disposition", "inline")
	}
	http.ServeContent(w, r, "", snap.File(i).Time, f)
}

func incomplete(problems []string) error {
	return &httpError{http.StatusConflict, "the state at this instant is incomplete: " + strings.Join(problems, "; ") +
		" (add partial=1 to download what is there)"}
}

func attachment(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii, pathEscape(name))
}

func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// download sends a file (path=) or a folder as .tar.gz (dir=, empty for everything).
func (c *Console) download(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("path") {
		c.serveFile(w, r, true)
		return
	}
	t, latest, err := c.instant(r)
	if err != nil {
		c.fail(w, err)
		return
	}
	dir, err := dirParam(r)
	if err != nil {
		c.fail(w, err)
		return
	}
	snap, err := c.r.snapshot(t, latest)
	if err != nil {
		c.fail(w, err)
		return
	}
	partial := q.Get("partial") == "1"
	if len(snap.Problems) > 0 && !partial {
		c.fail(w, incomplete(snap.Problems))
		return
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	lo, hi := snap.Prefix(prefix)
	if lo == hi {
		c.fail(w, notFound("%q holds no files at %s", dir, fmtTime(t)))
		return
	}
	name := c.o.Host
	if dir != "" {
		name += "-" + strings.ReplaceAll(dir, "/", "-")
	}
	name += "-" + instantArg(t, latest, snap.At) + ".tar.gz"
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Content-Disposition", attachment(name))
	if r.Method == http.MethodHead {
		return
	}
	// Only the folder asked is rebuilt, and before the answer starts, so that what the
	// rebuild lacks can still refuse it.
	tmp, problems, err := c.r.folder(r.Context(), snap, dir)
	if err != nil {
		c.fail(w, err)
		return
	}
	defer os.RemoveAll(tmp)
	if len(problems) > 0 && !partial {
		c.fail(w, incomplete(problems))
		return
	}
	if err := writeTar(w, snap, lo, hi, filepath.Join(tmp, "state")); err != nil {
		// Headers are gone: cut the stream short so that the archive does not end cleanly.
		c.o.Log.Warn("web: folder download failed", "dir", dir, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// writeTar writes files [lo, hi) of a snapshot, rebuilt under root, with their paths as
// restore lays them out (<source>/<path>), their sizes and capture times. A file the
// rebuild could not have (only with partial=1) is left out.
func writeTar(w io.Writer, snap *snapshot, lo, hi int, root string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for i := lo; i < hi; i++ {
		f := snap.File(i)
		p := filepath.Join(root, filepath.FromSlash(f.Name))
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o400 == 0 {
			// The restored mode may lack the owner's read bit; the rebuilt copy is ours.
			if err := os.Chmod(p, st.Mode().Perm()|0o400); err != nil {
				return err
			}
		}
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Size: st.Size(), Mode: int64(st.Mode().Perm()),
			ModTime: f.Time, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			fh.Close()
			return err
		}
		_, err = io.Copy(tw, fh)
		fh.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// joinProblems is a's problems then b's not already named.
func joinProblems(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, p := range b {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
