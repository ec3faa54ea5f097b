package git

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/sinks"
)

// Defaults of Options.
const (
	DefaultInterval       = time.Hour
	DefaultBigFileBytes   = 10 << 20
	DefaultChunkRetention = 7 * 24 * time.Hour
	DefaultGCEvery        = 24
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("git sink closed")

// Options configure a Sink.
type Options struct {
	// Repo is the data repository's folder; it is created (git init, branch main) when
	// absent.
	Repo string
	// Remote, when set, is pushed to after each commit: a path or file:// URL, ssh
	// (ssh://host/path or user@host:path) or https. Credentials come from the
	// environment: GIT_TOKEN, or GIT_USERNAME and GIT_PASSWORD, for https; the SSH agent
	// (SSH_AUTH_SOCK) or the default keys in ~/.ssh for ssh, with the host key checked
	// against known_hosts.
	Remote string
	// Interval between boundaries (default one hour); boundaries are its multiples.
	Interval time.Duration
	// BigFileBytes: files larger than this are committed as pointer files (default 10 MiB).
	BigFileBytes int64
	// StateDir holds the mirror, the chunk cache and the write-ahead log; it belongs
	// under the daemon's data_dir (default: beside Repo, named after it).
	StateDir string
	// Host names the host in commit messages and the author address.
	Host string
	// DB rebuilds SQLite databases from their page records. Without it, database files
	// are left out of the commits (and a warning is logged once).
	DB DBApplier
	// ChunkRetention is how long a cached chunk no live file refers to is kept (default
	// 7 days; negative: until the next commit).
	ChunkRetention time.Duration
	// GCEvery runs `git gc --auto` after this many commits (default 24; negative: never).
	GCEvery int
	Log     *slog.Logger
	// Now is the wall clock (tests replace it).
	Now func() time.Time
}

// DBApplier rebuilds a SQLite database image from the page records the watcher captures.
// The SQLite capture package provides one (DecodeTxn, Apply and Finalize).
type DBApplier interface {
	// ApplyPages applies the encoded page set of one OpDBBase or OpDBPages record to img
	// (an OpDBBase piece with Offset 0 is applied to an empty file). Applying the same
	// records again in order must give the same image. An error means the data is
	// unusable: the database is left out of commits until its next base image.
	ApplyPages(img *os.File, data []byte) error
	// Finalize makes img, a copy of an image after a whole number of transactions, a
	// standalone database file that opens without a -wal file.
	Finalize(img *os.File) error
}

// DBFuncs adapts two functions to DBApplier. With the SQLite capture package:
//
//	git.DBFuncs{
//		ApplyPagesFunc: func(img *os.File, data []byte) error {
//			tx, err := sqlite.DecodeTxn(data)
//			if err != nil {
//				return err
//			}
//			return sqlite.Apply(img, tx)
//		},
//		FinalizeFunc: sqlite.Finalize,
//	}
type DBFuncs struct {
	ApplyPagesFunc func(img *os.File, data []byte) error
	FinalizeFunc   func(img *os.File) error
}

// ApplyPages calls ApplyPagesFunc.
func (d DBFuncs) ApplyPages(img *os.File, data []byte) error { return d.ApplyPagesFunc(img, data) }

// Finalize calls FinalizeFunc.
func (d DBFuncs) Finalize(img *os.File) error { return d.FinalizeFunc(img) }

// Status is a snapshot for the status command and metrics.
type Status struct {
	LastCommit     string    // hash of the newest commit ("" before the first)
	LastCommitTime time.Time // when it was made (its boundary, for one found at start-up)
	Boundary       time.Time // newest boundary handled: committed, or found unchanged
	Pushed         bool      // LastCommit has reached the remote (false without a remote)
	PushError      string    // the last push failure, "" after a success
	Commits        uint64    // commits made by this process
}

// Sink commits the replicated state into a git repository at every interval boundary.
type Sink struct {
	o     Options
	log   *slog.Logger
	grace time.Duration

	mu        sync.Mutex
	repo      *gogit.Repository
	gitDir    string
	st        *state
	wal       *os.File
	walSize   int64
	dirty     map[string]bool // files written since the last checkpoint
	chunks    map[string]bool // chunk ids in the cache
	head      headInfo
	warned    map[string]bool
	lastWrite time.Time
	closed    bool

	smu    sync.Mutex // guards status alone, so that Status never waits for a commit
	status Status

	needRecover    bool // an apply failed half-way: reload from disk before going on
	needCheckpoint bool // a boundary was handled but not checkpointed

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Test hooks: fail after a number of applied records, or right after a commit.
	hookApply  func(r *journal.Record) error
	hookCommit func() error
}

var _ sinks.Sink = (*Sink)(nil)

// New opens (or creates) the repository and the state folder, recovers the mirror from its
// checkpoint and write-ahead log, and starts the boundary timer and, with a remote, the
// pusher.
func New(o Options) (*Sink, error) {
	if o.Repo == "" {
		return nil, errors.New("git sink: no repository path")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.BigFileBytes <= 0 {
		o.BigFileBytes = DefaultBigFileBytes
	}
	if o.ChunkRetention == 0 {
		o.ChunkRetention = DefaultChunkRetention
	}
	if o.GCEvery == 0 {
		o.GCEvery = DefaultGCEvery
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(filepath.Dir(filepath.Clean(o.Repo)), "."+filepath.Base(o.Repo)+".mmreplicate-state")
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sink{o: o, log: o.Log.With("sink", "git"), grace: min(o.Interval/10, 30*time.Second),
		warned: map[string]bool{}, kick: make(chan struct{}, 1)}
	if err := s.openRepo(); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		if s.wal != nil {
			s.wal.Close()
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go s.timerLoop(ctx)
	go s.backgroundLoop(ctx)
	s.kickPush()
	return s, nil
}

// Name is "git".
func (s *Sink) Name() string { return "git" }

// Status returns the current figures.
func (s *Sink) Status() Status {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.status
}

func (s *Sink) setStatus(f func(*Status)) {
	s.smu.Lock()
	f(&s.status)
	s.smu.Unlock()
}

// Close stops the timer and the pusher (a commit not yet pushed is pushed by the next
// run), checkpoints the mirror and closes its files.
func (s *Sink) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if !s.needRecover {
		err = s.checkpoint()
	}
	if s.wal != nil {
		err = errors.Join(err, s.wal.Close())
	}
	return err
}

// abandon drops the sink as a crash would: goroutines end, nothing is checkpointed.
func (s *Sink) abandon() {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.wal != nil {
		s.wal.Close()
	}
}

// Write logs recs ahead, applies them to the mirror and commits every boundary they pass.
// It returns nil once they are durable in the write-ahead log. Records at or below the
// newest sequence number already applied are skipped, so a batch written again after a
// failure changes nothing twice.
func (s *Sink) Write(ctx context.Context, recs []journal.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.needRecover {
		if err := s.recover(); err != nil {
			return err
		}
	}
	if s.needCheckpoint {
		if err := s.checkpoint(); err != nil {
			return err
		}
	}
	s.lastWrite = s.o.Now()
	todo := make([]journal.Record, 0, len(recs))
	last := s.st.Seq
	for _, r := range recs {
		if r.Seq > last {
			todo = append(todo, r)
			last = r.Seq
		}
	}
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, b, due := s.st.Clock.segment(todo, s.o.Interval)
		if n > 0 {
			if err := s.applySegment(todo[:n]); err != nil {
				return err
			}
			todo = todo[n:]
		}
		if due {
			if err := s.handleBoundary(b); err != nil {
				return err
			}
		}
	}
	if s.walSize > walLimit {
		return s.checkpoint()
	}
	return nil
}

// handleBoundary commits the mirror as the state at b (unless it equals the previous
// commit), prunes the chunk cache and checkpoints.
func (s *Sink) handleBoundary(b time.Time) error {
	if _, err := s.commitAt(b); err != nil {
		return fmt.Errorf("git sink: commit at %s: %w", b.Format(time.RFC3339Nano), err)
	}
	s.st.Clock.handled(b)
	s.setStatus(func(st *Status) { st.Boundary = b })
	s.prune(b)
	if err := s.checkpoint(); err != nil {
		s.needCheckpoint = true
		return err
	}
	return nil
}

// timerLoop commits a pending boundary when no record after it comes (see tick).
func (s *Sink) timerLoop(ctx context.Context) {
	defer s.wg.Done()
	every := min(max(s.grace/2, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.tick()
		}
	}
}

// tick commits the pending boundary B once the wall clock is past B plus the grace and no
// Write arrived within the grace: records are delivered within seconds, so every record
// at or before B is in by then. Waiting for a quiet grace as well keeps a backlog being
// drained after downtime (old records arriving back to back) from being cut short.
func (s *Sink) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.needRecover || !s.st.Clock.Dirty {
		return
	}
	b := s.st.Clock.pending(s.o.Interval)
	now := s.o.Now()
	if now.Before(b.Add(s.grace)) || now.Before(s.lastWrite.Add(s.grace)) {
		return
	}
	if err := s.handleBoundary(b); err != nil {
		s.log.Warn("timed commit failed; retrying", "boundary", b, "err", err)
	}
}

// AppliedSeq is the newest sequence number applied to the mirror: the worker feeding the
// sink starts after it.
func (s *Sink) AppliedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Seq
}
