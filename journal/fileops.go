package journal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// file is the part of an open segment the journal writes through. Tests wrap it to
// produce short writes, a full disk or a failing fsync on demand.
type file interface {
	Write(p []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// fileOps opens, removes and syncs the journal's files.
type fileOps interface {
	OpenFile(name string, flag int, perm os.FileMode) (file, error)
	Remove(name string) error
	SyncDir(dir string) error
}

// osOps is the real file system.
type osOps struct{}

func (osOps) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osOps) Remove(name string) error { return os.Remove(name) }

func (osOps) SyncDir(dir string) error { return syncDir(dir) }

// ErrStopped is returned by Append after an fsync failed, or after a failed write could
// not be undone: the journal takes no more records until Recover has re-read it from disk.
var ErrStopped = errors.New("journal stopped")

// DiskFull reports whether err comes from a file system without free space (or over its
// quota).
func DiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func stoppedError(cause error) error {
	return fmt.Errorf("%w (recover re-reads it from disk): %w", ErrStopped, cause)
}
