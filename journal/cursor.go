package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadCursor returns the sequence number stored under name in dir, or 0 when none is.
func ReadCursor(dir, name string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".cursor"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cursor %s: %w", name, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cursor %s: %w: %q", name, ErrCorrupt, b)
	}
	return v, nil
}

// WriteCursor stores seq under name in dir atomically: a temp file is written and
// fsynced, renamed over the old one, and the folder fsynced, so a crash leaves either
// the old or the new value, never a mix.
func WriteCursor(dir, name string, seq uint64) error {
	return WriteFileAtomic(filepath.Join(dir, name+".cursor"), []byte(strconv.FormatUint(seq, 10)+"\n"))
}

// WriteFileAtomic replaces path with data so that a crash leaves the old or new content.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}
