package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader reads durable records in sequence order. One consumer owns one Reader; it is
// not safe for concurrent use.
type Reader struct {
	j    *Journal
	f    *os.File
	seg  segment
	off  int64
	next uint64
	buf  []byte
}

// NewReader returns a reader positioned at sequence number from.
func (j *Journal) NewReader(from uint64) *Reader { return &Reader{j: j, next: from} }

// Next is the sequence number the next Read starts at.
func (r *Reader) Next() uint64 { return r.next }

// Close releases the reader's open segment.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Read returns the durable records from Next on, about maxBytes of them (always at least
// one when any is available), or none when the reader has caught up.
func (r *Reader) Read(maxBytes int) ([]Record, error) {
	if r.f != nil && !r.j.holds(r.seg) {
		// Released (or emptied and renamed): an open file would keep its space in use.
		_ = r.Close()
	}
	durable := r.j.LastSeq()
	var out []Record
	size := 0
	for r.next <= durable && (size < maxBytes || len(out) == 0) {
		if err := r.position(); err != nil {
			return out, err
		}
		rec, n, err := r.readFrame()
		if errors.Is(err, io.EOF) {
			// The end of this segment: the record is in the next one.
			if err := r.advanceSegment(); err != nil {
				return out, err
			}
			continue
		}
		if err != nil {
			return out, fmt.Errorf("journal: segment %s offset %d: %w", r.seg.path, r.off, err)
		}
		r.off += int64(n)
		if rec.Seq < r.next {
			continue
		}
		if rec.Seq > r.next {
			return out, fmt.Errorf("journal: segment %s offset %d: %w: found sequence %d, expected %d (released?)", r.seg.path, r.off, ErrCorrupt, rec.Seq, r.next)
		}
		r.next++
		size += n
		out = append(out, rec)
	}
	return out, nil
}

// position opens the segment that holds r.next when the reader has none open.
func (r *Reader) position() error {
	if r.f != nil {
		return nil
	}
	seg, ok := r.j.segmentFor(r.next)
	if !ok {
		return fmt.Errorf("journal: sequence %d is no longer in the journal", r.next)
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	r.f, r.seg, r.off = f, seg, int64(len(segMagic))
	return nil
}

func (r *Reader) advanceSegment() error {
	next, ok := r.j.segmentFor(r.next)
	if !ok || next.first == r.seg.first {
		return fmt.Errorf("journal: segment %s ends before durable sequence %d", r.seg.path, r.next)
	}
	_ = r.Close()
	return r.position()
}

// readFrame reads one frame at r.off; io.EOF at a clean end of the segment file.
func (r *Reader) readFrame() (Record, int, error) {
	var hdr [frameHeader]byte
	n, err := r.f.ReadAt(hdr[:], r.off)
	if n == 0 && errors.Is(err, io.EOF) {
		return Record{}, 0, io.EOF
	}
	if n < frameHeader {
		return Record{}, 0, fmt.Errorf("%w: frame header", ErrTruncated)
	}
	total := frameHeader + int(binary.LittleEndian.Uint32(hdr[:]))
	if total > MaxRecordSize+frameHeader {
		return Record{}, 0, fmt.Errorf("%w: length %d", ErrCorrupt, total)
	}
	if cap(r.buf) < total {
		r.buf = make([]byte, total)
	}
	buf := r.buf[:total]
	if _, err := r.f.ReadAt(buf, r.off); err != nil {
		return Record{}, 0, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	rec, used, err := DecodeFrame(buf)
	if err != nil {
		return Record{}, 0, err
	}
	// The buffer is reused; the caller keeps records beyond the next read.
	rec.Data = append([]byte(nil), rec.Data...)
	return rec, used, nil
}

// holds reports whether seg is still one of the journal's segments under its name.
func (j *Journal) holds(seg segment) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := len(j.segs) - 1; i >= 0; i-- {
		if j.segs[i].first == seg.first {
			return j.segs[i].path == seg.path
		}
	}
	return false
}
