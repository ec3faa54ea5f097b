package journal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// segMagic starts every journal segment file; the digit is the segment format version.
const segMagic = "MMRJNL1\n"

// DefaultSegmentBytes is the size at which the journal starts a new segment file.
const DefaultSegmentBytes = 64 << 20

// ErrFull is returned by Append when the journal has reached its size cap. Nothing was
// written; the caller keeps its own position and tries again once sinks drain.
var ErrFull = errors.New("journal full")

// ErrClosed is returned by operations on a closed journal.
var ErrClosed = errors.New("journal closed")

// Options tune a journal. Zero values take the defaults.
type Options struct {
	SegmentBytes int64 // roll to a new segment past this size
	MaxBytes     int64 // refuse appends past this total size (0: no cap)
	// FirstSeq is the sequence number of the first record of a journal that has none yet,
	// so that a host rebuilt from its store continues the numbering of the lost one.
	FirstSeq uint64
	// MinTime is the lowest capture time to assign, so that capture times never go
	// backwards across a rebuilt host either.
	MinTime time.Time
	// SyncInterval is the longest an fsync waits for other appenders that are writing at
	// the same moment, so that one fsync covers them all (group commit). An appender
	// alone never waits. 0 syncs at once.
	SyncInterval time.Duration
	Logger       *slog.Logger
	Now          func() time.Time // for tests; default time.Now

	ops fileOps // for tests; default the real file system
}

type segment struct {
	first uint64 // sequence number of its first record (or the next one, when empty)
	path  string
	size  int64
}

// Journal is a segmented append-only log of records with fsync before acknowledgement.
// Append is safe for concurrent use; concurrent appenders share fsyncs (group commit).
//
// A failed write is undone (the segment is cut back to its size before the write and
// fsynced), so the log is exactly as it was. A failed fsync stops the journal: after one,
// the page cache may hold bytes the disk does not, so nothing more is appended until
// Recover has cut the segment back to what was durable, written the records that were
// waiting for that fsync again (under the same sequence numbers) and read it back.
type Journal struct {
	dir  string
	opts Options
	ops  fileOps
	log  *slog.Logger

	mu        sync.Mutex
	segs      []segment
	active    file // nil until the first segment exists (or while stopped)
	nextSeq   uint64
	lastTime  int64
	total     int64
	written   uint64 // last sequence number written to the active file
	closed    bool
	seen      bool  // load found at least one record
	stopped   error // why appends are refused until Recover, nil when running
	durable   int64 // bytes of the active segment known to be on disk
	tail      []byte
	appenders atomic.Int32 // appends between their start and their fsync

	syncMu sync.Mutex
	synced uint64 // last sequence number known durable (guarded by mu for reads)
	notify chan struct{}
}

// Open opens or creates the journal in dir. A torn record at the end of the newest
// segment (a write cut short by a crash) is cut off; a damaged record anywhere else is
// an error naming the segment and offset, because cutting it would lose later records.
// Opening needs no free space: on a full disk, a journal without segments creates its
// first one at the first append.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
		// A cap must span several segments, or the one active segment could never be
		// released and a full journal would stay full.
		if opts.MaxBytes > 0 {
			opts.SegmentBytes = max(min(DefaultSegmentBytes, opts.MaxBytes/8), 4096)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ops := opts.ops
	if ops == nil {
		ops = osOps{}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{dir: dir, opts: opts, ops: ops, log: opts.Logger.With("component", "journal"), notify: make(chan struct{})}
	if err := j.load(); err != nil {
		return nil, err
	}
	return j, nil
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

func (j *Journal) load() error {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") || e.IsDir() {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			continue
		}
		j.segs = append(j.segs, segment{first: first, path: filepath.Join(j.dir, name)})
	}
	sort.Slice(j.segs, func(a, b int) bool { return j.segs[a].first < j.segs[b].first })
	j.nextSeq = max(j.opts.FirstSeq, 1)
	j.lastTime = j.opts.MinTime.UnixNano()
	if j.opts.MinTime.IsZero() {
		j.lastTime = 0
	}
	for i := 0; i < len(j.segs); i++ {
		last := i == len(j.segs)-1
		keep, err := j.scanSegment(&j.segs[i], last)
		if err != nil {
			return err
		}
		if !keep {
			j.segs = j.segs[:i]
			break
		}
		j.total += j.segs[i].size
	}
	j.synced = j.nextSeq - 1
	j.written = j.synced
	if len(j.segs) == 0 {
		if err := j.roll(); err != nil {
			j.log.Warn("journal cannot create its first segment yet; it tries again at the first append", "err", err)
		}
		return nil
	}
	s := j.segs[len(j.segs)-1]
	f, err := j.ops.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	// What was read back may so far be in the page cache only (the process stopped
	// before its fsync): make it durable before any reader hands it on.
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: sync %s: %w", s.path, err)
	}
	j.active, j.durable = f, s.size
	return nil
}

// scanSegment validates a segment, updating nextSeq/lastTime and the segment's size. It
// returns false for a newest segment that holds not even its header (a crash between
// creating the file and writing it): that file is removed, the next append starts it again.
func (j *Journal) scanSegment(s *segment, last bool) (bool, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, fmt.Errorf("journal: %w", err)
	}
	if len(data) < len(segMagic) {
		if !last {
			return false, fmt.Errorf("journal: segment %s: %w: header cut short", s.path, ErrCorrupt)
		}
		if err := j.ops.Remove(s.path); err != nil {
			return false, fmt.Errorf("journal: %w", err)
		}
		if !j.seen {
			j.nextSeq = max(j.nextSeq, s.first)
		}
		return false, nil
	}
	if string(data[:len(segMagic)]) != segMagic {
		return false, fmt.Errorf("journal: segment %s: %w: not a journal segment (bad header)", s.path, ErrCorrupt)
	}
	off := len(segMagic)
	for off < len(data) {
		r, n, err := DecodeFrame(data[off:])
		if err == nil {
			if j.seen && r.Seq != j.nextSeq {
				return false, fmt.Errorf("journal: segment %s offset %d: %w: sequence %d where %d was due", s.path, off, ErrCorrupt, r.Seq, j.nextSeq)
			}
			j.seen = true
			j.nextSeq = r.Seq + 1
			j.lastTime = max(j.lastTime, r.Time)
			off += n
			continue
		}
		if last && tornTail(data[off:], err) {
			j.log.Warn("cutting torn record at journal tail", "segment", s.path, "offset", off, "bytes", len(data)-off)
			if terr := os.Truncate(s.path, int64(off)); terr != nil {
				return false, fmt.Errorf("journal: %w", terr)
			}
			break
		}
		return false, fmt.Errorf("journal: segment %s offset %d: %w", s.path, off, err)
	}
	s.size = int64(off)
	return true, nil
}

// tornTail tells a write cut short by a crash (the frame runs past the end of the file,
// or everything from here on is zero fill) from damage in the middle of the log.
func tornTail(rest []byte, err error) bool {
	if errors.Is(err, ErrTruncated) {
		return true
	}
	for _, b := range rest {
		if b != 0 {
			return false
		}
	}
	return true
}

// stop refuses appends until Recover. Callers hold mu.
func (j *Journal) stop(cause error) {
	if j.stopped == nil {
		j.stopped = cause
		j.log.Error("journal stopped: it takes no records until it has been re-read from disk", "err", cause)
	}
}

// roll starts a new segment whose first record will be nextSeq. Callers hold mu (or own
// j). The old segment is fsynced first (a failure stops the journal) and stays the
// active one until the new segment is on disk, so a roll that fails (say, the disk is
// full) leaves the journal as it was.
func (j *Journal) roll() error {
	if j.active != nil {
		if err := j.active.Sync(); err != nil {
			j.stop(fmt.Errorf("sync before roll: %w", err))
			return fmt.Errorf("journal: sync: %w", err)
		}
		j.synced = j.written
		j.durable, j.tail = j.segs[len(j.segs)-1].size, nil
	}
	path := filepath.Join(j.dir, segName(j.nextSeq))
	f, err := j.ops.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("journal: new segment: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		if rerr := j.ops.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			j.log.Warn("cannot remove a segment that could not be started", "segment", path, "err", rerr)
		}
		return fmt.Errorf("journal: new segment: %w", err)
	}
	if n, err := f.Write([]byte(segMagic)); err != nil || n != len(segMagic) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync: %w", err))
	}
	if err := j.ops.SyncDir(j.dir); err != nil {
		return fail(err)
	}
	if j.active != nil {
		if err := j.active.Close(); err != nil {
			j.log.Warn("closing a full segment", "err", err)
		}
	}
	if n := len(j.segs); n > 0 && j.segs[n-1].first == j.nextSeq {
		// An empty segment (only its header) is replaced by the file just created.
		j.total -= j.segs[n-1].size
		j.segs = j.segs[:n-1]
	}
	j.active, j.durable, j.tail = f, int64(len(segMagic)), nil
	j.segs = append(j.segs, segment{first: j.nextSeq, path: path, size: int64(len(segMagic))})
	j.total += int64(len(segMagic))
	return nil
}

// Append assigns sequence numbers and one capture time to recs (in place), writes them
// and returns once they are fsynced. On error nothing of recs is acknowledged. A failed
// write leaves the journal as it was (a full disk is such a failure: DiskFull tells it);
// a failed fsync stops the journal (ErrStopped) until Recover. Records whose fsync failed
// keep their sequence numbers: Recover writes them again, so a number is never given
// to two records, and the caller's retry is a harmless duplicate (records are idempotent).
func (j *Journal) Append(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	j.appenders.Add(1)
	defer j.appenders.Add(-1)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	if j.stopped != nil {
		err := j.stopped
		j.mu.Unlock()
		return fmt.Errorf("journal: %w", stoppedError(err))
	}
	target, err := j.write(recs)
	j.mu.Unlock()
	if err != nil {
		return err
	}
	return j.syncTo(target)
}

// write numbers recs and writes them to the active segment, returning the sequence
// number the caller waits to see durable. Callers hold mu.
func (j *Journal) write(recs []Record) (uint64, error) {
	if j.active == nil {
		if err := j.roll(); err != nil {
			return 0, err
		}
	}
	now := j.opts.Now().UnixNano()
	// Capture times never go backwards, even when the wall clock does, so that the order
	// of records and the order of their times agree and restore --at stays exact.
	t := max(now, j.lastTime)
	size := 0
	for i := range recs {
		size += recs[i].EncodedSize()
	}
	if j.opts.MaxBytes > 0 && j.total+int64(size) > j.opts.MaxBytes {
		return 0, fmt.Errorf("%w: %d bytes of %d allowed in %s", ErrFull, j.total, j.opts.MaxBytes, j.dir)
	}
	if j.segs[len(j.segs)-1].size+int64(size) > j.opts.SegmentBytes && j.segs[len(j.segs)-1].size > int64(len(segMagic)) {
		if err := j.roll(); err != nil {
			return 0, err
		}
	}
	buf := make([]byte, 0, size)
	for i := range recs {
		recs[i].Seq = j.nextSeq + uint64(i)
		recs[i].Time = t
		buf = AppendFrame(buf, &recs[i])
	}
	seg := &j.segs[len(j.segs)-1]
	if n, err := j.active.Write(buf); err != nil || n != len(buf) {
		if err == nil {
			err = io.ErrShortWrite
		}
		j.undo(seg, err)
		return 0, fmt.Errorf("journal: write: %w", err)
	}
	j.nextSeq += uint64(len(recs))
	j.lastTime = t
	j.written = j.nextSeq - 1
	seg.size += int64(len(buf))
	j.total += int64(len(buf))
	j.tail = append(j.tail, buf...)
	return j.written, nil
}

// undo cuts what a failed write may have left past the segment's size before it, and
// fsyncs that, so that the next append does not follow a torn frame. When even that
// fails, the journal stops. Callers hold mu.
func (j *Journal) undo(seg *segment, cause error) {
	if err := j.active.Truncate(seg.size); err != nil {
		j.stop(fmt.Errorf("cannot undo a failed write (%v): truncate: %w", cause, err))
		return
	}
	if err := j.active.Sync(); err != nil {
		j.stop(fmt.Errorf("cannot undo a failed write (%v): sync: %w", cause, err))
		return
	}
	j.synced, j.durable, j.tail = j.written, seg.size, nil
	close(j.notify)
	j.notify = make(chan struct{})
}

// syncTo makes every record up to seq durable. Appenders that arrive while one fsync runs
// wait for it and are then usually covered by the next one: that is the group commit.
func (j *Journal) syncTo(seq uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	if j.synced >= seq {
		j.mu.Unlock()
		return nil
	}
	if j.stopped != nil {
		err := j.stopped
		j.mu.Unlock()
		return fmt.Errorf("journal: %w", stoppedError(err))
	}
	if j.opts.SyncInterval > 0 && j.appenders.Load() > 1 {
		// Others are appending too: give them a moment to join this fsync.
		j.mu.Unlock()
		time.Sleep(j.opts.SyncInterval)
		j.mu.Lock()
	}
	f, upTo, size := j.active, j.written, j.segs[len(j.segs)-1].size
	j.mu.Unlock()
	err := f.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		if j.synced >= seq {
			return nil // a roll synced and closed the file meanwhile
		}
		j.stop(fmt.Errorf("sync: %w", err))
		return fmt.Errorf("journal: sync: %w", err)
	}
	if upTo > j.synced {
		j.synced = upTo
	}
	if f == j.active && size > j.durable {
		j.tail = j.tail[size-j.durable:]
		j.durable = size
		if len(j.tail) == 0 {
			j.tail = nil
		}
	}
	close(j.notify)
	j.notify = make(chan struct{})
	return nil
}

// Stopped is why the journal refuses appends (nil while it takes them).
func (j *Journal) Stopped() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stopped
}

// Recover brings a stopped journal back: the active segment is opened again, cut back to
// what the last successful fsync made durable, the records written since (acknowledged to
// nobody) are written again under their own sequence numbers, fsynced, and the segment is
// read back from disk and checked. A recovery that fails leaves the journal stopped, to
// be tried again. It does nothing to a running journal.
func (j *Journal) Recover() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopped == nil || j.closed || len(j.segs) == 0 {
		return nil
	}
	if j.active != nil {
		_ = j.active.Close() // its page cache state is not trusted any more
		j.active = nil
	}
	seg := j.segs[len(j.segs)-1]
	f, err := j.ops.OpenFile(seg.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("journal: recover: %w", err)
	}
	err = f.Truncate(j.durable)
	if err == nil && len(j.tail) > 0 {
		var n int
		if n, err = f.Write(j.tail); err == nil && n != len(j.tail) {
			err = io.ErrShortWrite
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = j.verify(seg)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("journal: recover: %w", err)
	}
	j.log.Info("journal recovered: re-read from disk, appends resume", "segment", seg.path, "last_seq", j.written, "was", j.stopped)
	j.active, j.stopped = f, nil
	j.synced, j.durable, j.tail = j.written, seg.size, nil
	close(j.notify)
	j.notify = make(chan struct{})
	return nil
}

// verify reads seg back and checks that it holds, whole, records seg.first..j.written.
func (j *Journal) verify(seg segment) error {
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return err
	}
	if int64(len(data)) != seg.size || len(data) < len(segMagic) || string(data[:len(segMagic)]) != segMagic {
		return fmt.Errorf("segment %s: %w: %d bytes on disk, %d expected", seg.path, ErrCorrupt, len(data), seg.size)
	}
	want := seg.first
	for off := len(segMagic); off < len(data); {
		r, n, err := DecodeFrame(data[off:])
		if err != nil {
			return fmt.Errorf("segment %s offset %d: %w", seg.path, off, err)
		}
		if r.Seq != want {
			return fmt.Errorf("segment %s offset %d: %w: sequence %d where %d was due", seg.path, off, ErrCorrupt, r.Seq, want)
		}
		want++
		off += n
	}
	if want != j.written+1 {
		return fmt.Errorf("segment %s: %w: ends before sequence %d", seg.path, ErrCorrupt, j.written)
	}
	return nil
}

// Changed returns a channel closed at the next durable append.
func (j *Journal) Changed() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.notify
}

// LastSeq is the sequence number of the newest durable record (FirstSeq-1 when none).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.synced
}

// FirstSeq is the sequence number of the oldest record still in the journal (or of the
// next one, when it holds none).
func (j *Journal) FirstSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.segs) == 0 {
		return j.nextSeq
	}
	return j.segs[0].first
}

// Size is the bytes the journal's segments take on disk.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.total
}

// Dir is the journal's folder.
func (j *Journal) Dir() string { return j.dir }

// Release deletes segments whose every record is below seq (consumers are done with
// them). The active segment always stays.
func (j *Journal) Release(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	// The active segment too, once every record in it is released: start a fresh one.
	var rollErr error
	if !j.closed && j.stopped == nil && j.active != nil && j.nextSeq <= seq && j.segs[len(j.segs)-1].size > int64(len(segMagic)) {
		if rollErr = j.roll(); rollErr != nil && j.stopped == nil {
			// A full disk has no room for a new segment; the released one is emptied
			// in place instead, which needs none.
			rollErr = j.emptyActive()
		}
	}
	for len(j.segs) > 1 && j.segs[1].first <= seq {
		if err := os.Remove(j.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("journal: release: %w", err)
		}
		j.total -= j.segs[0].size
		j.segs = j.segs[1:]
	}
	return rollErr
}

// emptyActive cuts the active segment, every record of which is released, back to its
// header and renames it for the next record: a roll that needs no free space. Callers
// hold mu.
func (j *Journal) emptyActive() error {
	seg := &j.segs[len(j.segs)-1]
	if err := j.active.Truncate(int64(len(segMagic))); err != nil {
		return fmt.Errorf("journal: release: %w", err)
	}
	if err := j.active.Sync(); err != nil {
		j.stop(fmt.Errorf("sync after emptying a released segment: %w", err))
		return fmt.Errorf("journal: release: sync: %w", err)
	}
	j.total -= seg.size - int64(len(segMagic))
	seg.size, j.durable, j.tail = int64(len(segMagic)), int64(len(segMagic)), nil
	path := filepath.Join(j.dir, segName(j.nextSeq))
	if err := os.Rename(seg.path, path); err != nil {
		// Readers find records by their numbers, not by the file name: this only makes
		// FirstSeq report an older number until the next roll.
		j.log.Warn("cannot rename an emptied segment", "segment", seg.path, "err", err)
		return nil
	}
	seg.first, seg.path = j.nextSeq, path
	if err := j.ops.SyncDir(j.dir); err != nil {
		j.log.Warn("emptied segment: folder sync", "err", err)
	}
	return nil
}

// Close syncs and closes the active segment.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	if j.active == nil {
		return nil
	}
	err := j.active.Sync()
	if err == nil && j.stopped == nil {
		j.synced = j.written
	}
	if cerr := j.active.Close(); err == nil {
		err = cerr
	}
	return err
}

// segmentFor returns the path of the segment holding seq and the first seq in it.
func (j *Journal) segmentFor(seq uint64) (segment, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	i := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].first > seq }) - 1
	if i < 0 {
		return segment{}, false
	}
	return j.segs[i], true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync dir: %w", err)
	}
	return nil
}
