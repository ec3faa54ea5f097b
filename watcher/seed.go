package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mmreplicate/mmreplicate/journal"
)

// Seed records the files now under the sources that are in only ("source/path", the
// paths a restore wrote) as already shipped, without journaling anything. `restore
// --in-place` calls it on a rebuilt host after a complete restore: the files it wrote are
// the store's own content, and without a seed the first daemon start would send every one
// of them again. Files not in only (present locally, absent from the store) are left for
// the daemon to send. Databases are left out: they need a base image anyway. It returns
// how many paths it recorded.
func Seed(o Options, only map[string]bool) (int, error) {
	if _, err := os.Stat(o.StateFile); err == nil {
		return 0, fmt.Errorf("watcher state %s exists: a daemon already ran with this data_dir; not seeding", o.StateFile)
	}
	if err := os.MkdirAll(filepath.Dir(o.StateFile), 0o750); err != nil {
		return 0, err
	}
	w, err := New(o)
	if err != nil {
		return 0, err
	}
	drop := func([]journal.Record) error { return nil }
	n := 0
	for _, s := range o.Sources {
		err := filepath.WalkDir(s.Path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || w.ignored(p) {
				return nil
			}
			rel, _ := filepath.Rel(s.Path, p)
			rel = filepath.ToSlash(rel)
			fi, err := os.Lstat(p)
			if err != nil || rel == "." || !only[s.Name+"/"+rel] {
				return nil
			}
			var ch change
			switch {
			case fi.Mode()&os.ModeSymlink != 0 && w.wanted(s, rel, false):
				ch, err = captureSymlink(s.Name, rel, p, fi, nil)
			case fi.IsDir() && w.wanted(s, rel, true):
				ch, err = captureDir(s.Name, rel, fi, nil)
			case !fi.Mode().IsRegular() || fi.IsDir() || sqliteSide(rel) || !w.wanted(s, rel, false) || isDB(s.Kind, p):
				return nil
			case kindOf(s, rel) == "append":
				ch, err = w.captureAppend(s.Name, rel, p, nil)
			default:
				ch, err = w.captureWhole(s.Name, rel, p, nil, drop)
			}
			if err == nil && ch.state != nil {
				w.files[s.Name+"/"+rel] = ch.state
				n++
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
	}
	w.unsaved = true
	return n, w.save(true)
}
