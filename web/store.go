package web

// Every call the console makes into the store's reader goes through this file, so that
// a change of the reader API touches nothing else.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/restore/s3gw"
	"github.com/mmreplicate/mmreplicate/store"
)

// errNoVersion means a file was not a regular file at the instant asked.
var errNoVersion = s3gw.ErrNoVersion

// fileInfo is one regular file of a snapshot.
type fileInfo = s3gw.FileInfo

// snapshot is the state at one instant, on disk until released.
type snapshot = s3gw.Snapshot

// version is one stored change of a file.
type version = s3gw.Version

// versionFile is one file's content at an instant, on disk until released.
type versionFile = s3gw.VersionFile

// reader is what the console reads the store through.
type reader struct {
	gw *s3gw.Gateway
	st objstore.Store
}

func openReader(ctx context.Context, st objstore.Store, host, cacheDir string, cacheBytes int64, log *slog.Logger) (*reader, error) {
	gw, err := s3gw.New(ctx, s3gw.Options{Store: st, Host: host, CacheDir: cacheDir, MaxBytes: cacheBytes, Log: log})
	if err != nil {
		return nil, err
	}
	return &reader{gw: gw, st: st}, nil
}

func (r *reader) close() error { return r.gw.Close() }

func (r *reader) snapshot(t time.Time, latest bool) (*snapshot, error) {
	return r.gw.Snapshot(t, latest)
}

func (r *reader) window() (oldest, newest time.Time, ok bool, err error) { return r.gw.Window() }

func (r *reader) versions(file string) ([]version, error) { return r.gw.Versions(file) }

func (r *reader) versionAt(file string, t time.Time) (*versionFile, error) {
	v, err := r.gw.VersionAt(file, t)
	if errors.Is(err, s3gw.ErrNoVersion) {
		return nil, errNoVersion
	}
	return v, err
}

// hosts lists the hosts the store holds.
func (r *reader) hosts(ctx context.Context) ([]string, error) { return store.Hosts(ctx, r.st) }
