package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mmreplicate/mmreplicate/manifest"
)

// The store is untrusted input: a record may name any path, and a link record may point
// anywhere. Placement therefore never trusts a joined path. Every write goes through an
// os.Root opened on the target folder (or, for --in-place, on each source's own folder),
// which refuses to resolve a name outside it, symlinks included; on top of that every
// name is checked here (defense in depth: the records were checked once already when they
// were read), no folder on the way to a destination may be a link (a restored link is
// data, never a way to somewhere), and links are placed last, so that nothing is written
// through one.

// errRefused marks a record placement refuses: a path that would leave the target, or
// that runs through a link or a file. It names the path; the rest of the restore goes on
// and the restore ends incomplete.
var errRefused = errors.New("refused")

// checkName reports whether p is a clean relative slash path that stays where it is put:
// not empty, not absolute, no "." or ".." element, no NUL, no empty element.
func checkName(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty path", errRefused)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%w: path %q holds a NUL byte", errRefused, p)
	case path.IsAbs(p) || filepath.IsAbs(p):
		return fmt.Errorf("%w: absolute path %q", errRefused, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: path %q leaves its folder or is not clean", errRefused, p)
		}
	}
	return nil
}

// checkSource reports whether a source name is one folder name.
func checkSource(s string) error {
	if err := checkName(s); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("%w: source %q is not one folder name", errRefused, s)
	}
	return nil
}

// placer writes into the target folders through os.Root handles.
type placer struct {
	o      Options
	roots  map[string]*os.Root // by folder
	stage  string              // the staging folder (absolute)
	stRoot *os.Root            // the root the staging folder is in
	stName string              // its name in stRoot

	mu   sync.Mutex
	dirs map[*os.Root]map[string]bool // folders written into: fsynced at the end
}

// newPlacer opens a root on every target folder (creating it). The staging folder must
// lie directly inside one of them, so that finished files are renamed into place.
func newPlacer(o Options, stage string) (*placer, error) {
	p := &placer{o: o, roots: map[string]*os.Root{}, stage: stage, dirs: map[*os.Root]map[string]bool{}}
	for _, dir := range o.roots() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.close()
			return nil, fmt.Errorf("%w: target %s: %w", errFatal, dir, err)
		}
		r, err := os.OpenRoot(dir)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("%w: target %s: %w", errFatal, dir, err)
		}
		p.roots[dir] = r
		if stage != "" && filepath.Dir(stage) == filepath.Clean(dir) {
			p.stRoot, p.stName = r, filepath.Base(stage)
		}
	}
	return p, nil
}

func (p *placer) close() {
	for _, r := range p.roots {
		r.Close()
	}
}

// target is the root a path of a source goes into and its name there, checked.
func (p *placer) target(source, rel string) (*os.Root, string, error) {
	if err := checkSource(source); err != nil {
		return nil, "", err
	}
	if err := checkName(rel); err != nil {
		return nil, "", err
	}
	var r *os.Root
	name := rel
	if p.o.Roots != nil {
		r = p.roots[p.o.Roots[source]]
	} else {
		r = p.roots[p.o.To]
		name = source + "/" + rel
	}
	if r == nil {
		return nil, "", fmt.Errorf("%w: source %q has no target folder", errRefused, source)
	}
	if r == p.stRoot {
		if first, _, _ := strings.Cut(name, "/"); first == p.stName {
			return nil, "", fmt.Errorf("%w: %q is the restore's staging folder", errRefused, name)
		}
	}
	return r, name, nil
}

// mkdirs creates the folders of name (all of it when whole, else its parents) without
// following links: a link or a file on the way is refused, naming it.
func (p *placer) mkdirs(r *os.Root, name string, whole bool, mode os.FileMode) error {
	els := strings.Split(name, "/")
	if !whole {
		els = els[:len(els)-1]
	}
	for i := range els {
		dir := strings.Join(els[:i+1], "/")
		perm := os.FileMode(0o755)
		if whole && i == len(els)-1 {
			perm = mode
		}
		fi, err := r.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) {
			err = r.Mkdir(dir, perm)
			if errors.Is(err, os.ErrExist) { // made meanwhile by a file placed beside
				fi, err = r.Lstat(dir)
			} else if err == nil {
				p.wrote(r, dir)
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("%w: folder %s: %w", errFatal, dir, err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a link: nothing is written through one", errRefused, dir)
		case !fi.IsDir():
			return fmt.Errorf("%w: %s is not a folder", errRefused, dir)
		}
	}
	return nil
}

// wrote notes that the folder holding name changed, for the final fsync.
func (p *placer) wrote(r *os.Root, name string) {
	dir := path.Dir(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.dirs[r]
	if m == nil {
		m = map[string]bool{}
		p.dirs[r] = m
	}
	m[dir] = true
}

// moveIn puts a staged file (fsynced, closed, its mode and time set) at name, atomically:
// a rename when the staging folder is in the same root, else a copy beside the
// destination, fsynced, then a rename.
func (p *placer) moveIn(tmp string, r *os.Root, name string) error {
	if r == p.stRoot && filepath.Dir(tmp) == p.stage {
		if err := r.Rename(p.stName+"/"+filepath.Base(tmp), name); err != nil {
			return p.renameErr(r, name, err)
		}
		p.wrote(r, name)
		return nil
	}
	in, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	out, part, err := createBeside(r, name)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(fi.Mode().Perm())
	}
	if err == nil && !p.o.NoSync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = r.Remove(part)
		return fmt.Errorf("%w: %s: %w", errFatal, name, err)
	}
	_ = r.Chtimes(part, fi.ModTime(), fi.ModTime())
	if err := r.Rename(part, name); err != nil {
		_ = r.Remove(part)
		return p.renameErr(r, name, err)
	}
	p.wrote(r, name)
	return nil
}

// renameErr tells a destination that cannot be replaced (a folder stands there) from a
// local failure.
func (p *placer) renameErr(r *os.Root, name string, err error) error {
	if fi, lerr := r.Lstat(name); lerr == nil && fi.IsDir() {
		return fmt.Errorf("%w: %s is a folder, not replaced", errRefused, name)
	}
	return fmt.Errorf("%w: %s: %w", errFatal, name, err)
}

// createBeside creates a new, exclusive temporary file in the folder of name.
func createBeside(r *os.Root, name string) (*os.File, string, error) {
	dir := path.Dir(name)
	for i := 0; ; i++ {
		part := path.Join(dir, fmt.Sprintf(".mmreplicate-%d-%d", os.Getpid(), time.Now().UnixNano()+int64(i)))
		f, err := r.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s: %w", errFatal, name, err)
		}
		return f, part, nil
	}
}

// symlink places a link to target at name. The target is data: kept as recorded, never
// resolved. A new link is made beside the destination and renamed over it, so that an
// existing link is replaced rather than followed.
func (p *placer) symlink(r *os.Root, name, target string) error {
	if strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("%w: link target of %s holds a NUL byte", errRefused, name)
	}
	dir := path.Dir(name)
	var part string
	for i := 0; ; i++ {
		part = path.Join(dir, fmt.Sprintf(".mmreplicate-%d-%d", os.Getpid(), time.Now().UnixNano()+int64(i)))
		err := r.Symlink(target, part)
		if errors.Is(err, os.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: link %s: %w", errFatal, name, err)
		}
		break
	}
	if err := r.Rename(part, name); err != nil {
		_ = r.Remove(part)
		return p.renameErr(r, name, err)
	}
	p.wrote(r, name)
	return nil
}

// dirTimes sets the folders' recorded times, after everything is written into them.
func (p *placer) dirTimes(dirs []*fileState) {
	for _, st := range dirs {
		if st.time <= 0 {
			continue
		}
		r, name, err := p.target(st.source, st.path)
		if err != nil {
			continue // reported when the folder was made
		}
		if fi, err := r.Lstat(name); err == nil && fi.IsDir() {
			t := time.Unix(0, st.time)
			_ = r.Chtimes(name, t, t)
		}
	}
}

// syncDirs fsyncs every folder written into, deepest first, so that the renames that put
// the files in place are durable too.
func (p *placer) syncDirs() error {
	if p.o.NoSync {
		return nil // a rebuild into a cache
	}
	var errs []error
	for r, m := range p.dirs {
		dirs := make([]string, 0, len(m))
		for d := range m {
			dirs = append(dirs, d)
			// The parents of a folder created here changed as well.
			for d != "." {
				d = path.Dir(d)
				if !m[d] {
					dirs = append(dirs, d)
				}
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		seen := map[string]bool{}
		for _, d := range dirs {
			if seen[d] {
				continue
			}
			seen[d] = true
			f, err := r.Open(d)
			if err != nil {
				errs = append(errs, fmt.Errorf("fsync folder %s: %w", d, err))
				continue
			}
			if err := f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("fsync folder %s: %w", d, err))
			}
			f.Close()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	return nil
}

// checkStaged checks a staged file's size against the state's (want < 0: any size) and,
// when sync is set, fsyncs it.
func checkStaged(tmp string, want int64, sync bool) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	if want >= 0 && fi.Size() != want {
		return fmt.Errorf("rebuilt %d bytes, the recorded state says %d", fi.Size(), want)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("%w: fsync: %w", errFatal, err)
		}
	}
	return nil
}

// shadowed finds, for every path to be placed, an ancestor the state holds as something
// other than a folder (a link, a file): such a path cannot exist, and writing it would
// mean writing through that link. The answer maps the path's key to the ancestor's key.
func shadowed(keys []string, files map[string]*fileState) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		for a := k; ; {
			i := strings.LastIndexByte(a, '/')
			if i <= 0 {
				break
			}
			a = a[:i]
			if st := files[a]; st != nil && !st.deleted && st.kind != "" && st.kind != manifest.KindDir {
				out[k] = a
			}
		}
	}
	return out
}
