package s3gw

import (
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/timespec"
)

// state is the rebuilt state at one instant: its regular files, by key.
type state struct {
	root  string
	names []string // "<source>/<path>", sorted bytewise as S3 listings are
	files []fileMeta
	// problems name what the rebuild could not have (a gap, a damaged or missing object):
	// the state holds everything else.
	problems []string
}

// fileMeta is what listings and HEAD show of one file.
type fileMeta struct {
	size  int64
	mtime time.Time // capture time of the file's last change (restore sets the mtime)
	md5   [16]byte
}

func (s *state) find(name string) int {
	i := sort.SearchStrings(s.names, name)
	if i < len(s.names) && s.names[i] == name {
		return i
	}
	return -1
}

func (s *state) path(i int) string {
	return filepath.Join(s.root, filepath.FromSlash(s.names[i]))
}

// stateAt returns the state at t (or the newest), rebuilding it when it is not cached.
// The caller releases the entry.
func (g *Gateway) stateAt(t time.Time, latest bool) (*entry, *state, error) {
	c, err := g.catalogNow()
	if err != nil {
		return nil, nil, err
	}
	in := g.resolve(c, t, latest)
	e, err := g.states.acquire(in.key, func() (any, string, int64, error) { return g.buildState(in) })
	if err != nil {
		return nil, nil, err
	}
	return e, e.val.(*state), nil
}

func (g *Gateway) buildState(in instant) (any, string, int64, error) {
	if in.empty {
		return &state{}, "", 0, nil
	}
	start := time.Now()
	dir := filepath.Join(g.root, "state-"+in.key)
	_ = os.RemoveAll(dir)
	res, err := restore.Run(g.ctx, restore.Options{Store: g.o.Store, Host: g.o.Host, At: in.at, To: dir,
		Parallel: g.o.Parallel, Log: g.o.Log, NoSync: true})
	switch {
	case errors.Is(err, restore.ErrNothing):
		_ = os.RemoveAll(dir)
		return &state{}, "", 0, nil
	case errors.Is(err, restore.ErrIncomplete):
		g.o.Log.Warn("serve-s3: serving an incomplete state", "at", timespec.Format(in.at), "err", err)
	case err != nil:
		_ = os.RemoveAll(dir)
		return nil, "", 0, fmt.Errorf("rebuild the state at %s: %w", timespec.Format(in.at), err)
	}
	st, n, err := scan(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", 0, err
	}
	st.problems = res.Problems
	g.o.Log.Info("serve-s3: state rebuilt", "at", timespec.Format(in.at), "files", len(st.names), "bytes", n,
		"took", time.Since(start).Round(time.Millisecond))
	return st, dir, n, nil
}

// scan indexes the regular files under root with their sizes, times and MD5 sums.
// Symbolic links are not served: their targets are paths on the original host.
func scan(root string) (*state, int64, error) {
	st := &state{root: root}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			st.names = append(st.names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("scan the rebuilt state: %w", err)
	}
	sort.Strings(st.names)
	st.files = make([]fileMeta, len(st.names))
	var eg errgroup.Group
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for i := range st.names {
		eg.Go(func() error {
			m, err := hashFile(st.path(i))
			st.files[i] = m
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, 0, fmt.Errorf("scan the rebuilt state: %w", err)
	}
	var total int64
	for _, f := range st.files {
		total += f.size
	}
	return st, total, nil
}

// hashFile reads a file's size, time and MD5, making it readable to us first: the
// restored mode may lack the owner's read bit, and the cache is ours.
func hashFile(p string) (fileMeta, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return fileMeta{}, err
	}
	if fi.Mode().Perm()&0o400 == 0 {
		if err := os.Chmod(p, fi.Mode().Perm()|0o400); err != nil {
			return fileMeta{}, err
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return fileMeta{}, err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fileMeta{}, err
	}
	m := fileMeta{size: n, mtime: fi.ModTime().UTC()}
	copy(m.md5[:], h.Sum(nil))
	return m, nil
}

// errNoVersion means a history key names no stored version of a regular file.
var errNoVersion = errors.New("no such version")

// version is one file's content at one of its change times.
type version struct {
	path     string
	meta     fileMeta
	problems []string
}

// versionAt returns the content of file ("<source>/<path>") as of its change at t,
// rebuilding it with restore.Run filtered to that one path. The caller releases the entry.
func (g *Gateway) versionAt(file string, t int64) (*entry, *version, error) {
	key := fmt.Sprintf("%d-%016x", t, fnvString(fnvOffset, file))
	e, err := g.versions.acquire(key, func() (any, string, int64, error) { return g.buildVersion(key, file, t) })
	if err != nil {
		return nil, nil, err
	}
	return e, e.val.(*version), nil
}

func (g *Gateway) buildVersion(key, file string, t int64) (any, string, int64, error) {
	source, rel, _ := strings.Cut(file, "/")
	dir := filepath.Join(g.root, "version-"+key)
	_ = os.RemoveAll(dir)
	res, err := restore.Run(g.ctx, restore.Options{Store: g.o.Store, Host: g.o.Host, At: time.Unix(0, t), To: dir,
		Sources: []string{source}, Paths: []string{escapeGlob(rel)}, Parallel: g.o.Parallel, Log: g.o.Log, NoSync: true})
	if err != nil && !errors.Is(err, restore.ErrIncomplete) {
		_ = os.RemoveAll(dir)
		if errors.Is(err, restore.ErrNothing) {
			return nil, "", 0, errNoVersion
		}
		return nil, "", 0, fmt.Errorf("rebuild %s at %s: %w", file, timespec.Format(time.Unix(0, t)), err)
	}
	p := filepath.Join(dir, source, filepath.FromSlash(rel))
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		_ = os.RemoveAll(dir)
		return nil, "", 0, errNoVersion
	}
	m, err := hashFile(p)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", 0, err
	}
	return &version{path: p, meta: m, problems: res.Problems}, dir, m.size, nil
}

// escapeGlob quotes a path so that restore's glob filter matches exactly that path.
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
