package journal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
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
	Logger  *slog.Logger
	Now     func() time.Time // for tests; default time.Now
}

type segment struct {
	first uint64 // sequence number of its first record (or the next one, when empty)
	path  string
	size  int64
}

// Journal is a segmented append-only log of records with fsync before acknowledgement.
// Append is safe for concurrent use; concurrent appenders share fsyncs (group commit).
type Journal struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	segs     []segment
	active   *os.File
	nextSeq  uint64
	lastTime int64
	total    int64
	written  uint64 // last sequence number written to the active file
	closed   bool
	seen     bool // load found at least one record

	syncMu sync.Mutex
	synced uint64 // last sequence number known durable (guarded by mu for reads)
	notify chan struct{}
}

// Open opens or creates the journal in dir. A torn record at the end of the newest
// segment (a write cut short by a crash) is cut off; a damaged record anywhere else is
// an error naming the segment and offset, because cutting it would lose later records.
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
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{dir: dir, opts: opts, log: opts.Logger.With("component", "journal"), notify: make(chan struct{})}
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
	for i := range j.segs {
		last := i == len(j.segs)-1
		if err := j.scanSegment(&j.segs[i], last); err != nil {
			return err
		}
		j.total += j.segs[i].size
	}
	j.synced = j.nextSeq - 1
	j.written = j.synced
	if len(j.segs) == 0 {
		return j.roll()
	}
	s := j.segs[len(j.segs)-1]
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.active = f
	return nil
}

// scanSegment validates a segment, updating nextSeq/lastTime and the segment's size.
func (j *Journal) scanSegment(s *segment, last bool) error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if len(data) < len(segMagic) {
		if !last {
			return fmt.Errorf("journal: segment %s: %w: header cut short", s.path, ErrCorrupt)
		}
		// A crash between creating the file and writing its header.
		if err := os.WriteFile(s.path, []byte(segMagic), 0o640); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		s.size = int64(len(segMagic))
		return nil
	}
	if string(data[:len(segMagic)]) != segMagic {
		return fmt.Errorf("journal: segment %s: %w: not a journal segment (bad header)", s.path, ErrCorrupt)
	}
	off := len(segMagic)
	for off < len(data) {
		r, n, err := DecodeFrame(data[off:])
		if err == nil {
			if j.seen && r.Seq != j.nextSeq {
				return fmt.Errorf("journal: segment %s offset %d: %w: sequence %d where %d was due", s.path, off, ErrCorrupt, r.Seq, j.nextSeq)
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
				return fmt.Errorf("journal: %w", terr)
			}
			break
		}
		return fmt.Errorf("journal: segment %s offset %d: %w", s.path, off, err)
	}
	s.size = int64(off)
	return nil
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

// roll starts a new segment whose first record will be nextSeq. Callers hold mu (or own j).
func (j *Journal) roll() error {
	if j.active != nil {
		if err := j.active.Sync(); err != nil {
			return fmt.Errorf("journal: sync: %w", err)
		}
		if err := j.active.Close(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.synced = j.written
	}
	path := filepath.Join(j.dir, segName(j.nextSeq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.WriteString(segMagic); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: sync: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	j.active = f
	j.segs = append(j.segs, segment{first: j.nextSeq, path: path, size: int64(len(segMagic))})
	j.total += int64(len(segMagic))
	return nil
}

// Append assigns sequence numbers and one capture time to recs (in place), writes them
// and returns once they are fsynced. On error nothing of recs is acknowledged; a record
// may still be on disk (it is then replayed, harmlessly, because records are idempotent).
func (j *Journal) Append(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
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
		j.mu.Unlock()
		return fmt.Errorf("%w: %d bytes of %d allowed in %s", ErrFull, j.total, j.opts.MaxBytes, j.dir)
	}
	if j.segs[len(j.segs)-1].size+int64(size) > j.opts.SegmentBytes && j.segs[len(j.segs)-1].size > int64(len(segMagic)) {
		if err := j.roll(); err != nil {
			j.mu.Unlock()
			return err
		}
	}
	buf := make([]byte, 0, size)
	for i := range recs {
		recs[i].Seq = j.nextSeq + uint64(i)
		recs[i].Time = t
		buf = AppendFrame(buf, &recs[i])
	}
	if _, err := j.active.Write(buf); err != nil {
		// Cut what may have been written so a later append does not follow a torn frame.
		if st, serr := j.active.Stat(); serr == nil {
			_ = j.active.Truncate(st.Size() - int64(len(buf)))
		}
		j.mu.Unlock()
		return fmt.Errorf("journal: write: %w", err)
	}
	j.nextSeq += uint64(len(recs))
	j.lastTime = t
	j.written = j.nextSeq - 1
	j.segs[len(j.segs)-1].size += int64(len(buf))
	j.total += int64(len(buf))
	target := j.written
	j.mu.Unlock()
	return j.syncTo(target)
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
	f, upTo := j.active, j.written
	j.mu.Unlock()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("journal: sync: %w", err)
	}
	j.mu.Lock()
	if upTo > j.synced {
		j.synced = upTo
	}
	close(j.notify)
	j.notify = make(chan struct{})
	j.mu.Unlock()
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
	if !j.closed && len(j.segs) > 0 && j.nextSeq <= seq && j.segs[len(j.segs)-1].size > int64(len(segMagic)) {
		if err := j.roll(); err != nil {
			return err
		}
	}
	for len(j.segs) > 1 && j.segs[1].first <= seq {
		if err := os.Remove(j.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("journal: release: %w", err)
		}
		j.total -= j.segs[0].size
		j.segs = j.segs[1:]
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
	err := j.active.Sync()
	if cerr := j.active.Close(); err == nil {
		err = cerr
	}
	j.synced = j.written
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
