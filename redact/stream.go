package redact

import (
	"bytes"
	"errors"
	"io"
)

// MaxSpan bounds how far a rule reads from where a secret starts: the longest secret a
// rule matches (a PEM private key body, up to 64 KiB) and the bytes it looks at past its
// end. A secret starting more than MaxSpan bytes before the end of the data a rule sees
// is seen whole, so callers that scan in pieces overlap them by MaxSpan.
const MaxSpan = 64<<10 + 4<<10

// lookBehind is how much already-scanned data a piece is scanned with in front of it:
// rules read back from a secret to its name ("password=", up to 48 bytes and blanks),
// its scheme ("postgres://") or its BEGIN line, and a boundary before it.
const lookBehind = 1 << 10

// redactIn masks in place the secrets of d that start in [from, before), or, with
// tail, those that reach past from wherever they start; a secret starting at before or
// later is left for a later call that sees more of what follows. A secret is always
// masked whole, never from a cut, so a mask never starts inside an escape sequence; the
// caller keeps only the bytes it owns. It returns the hits applied, with offsets into d,
// clipped to from.
func (s *Scanner) redactIn(d []byte, from, before int, tail bool) []Hit {
	ms := s.find(d, nil)
	if len(ms) == 0 {
		return nil
	}
	kept := ms[:0]
	for _, m := range ms {
		in := m.off >= from
		if tail {
			in = m.end > from
		}
		if in && m.off < before {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	for _, m := range kept {
		mask(d, m.off+m.keep, m.end, m.mode)
	}
	hits := report(kept)
	for i := range hits {
		if h := &hits[i]; h.Offset < from {
			h.Length -= from - h.Offset
			h.Offset = from
		}
	}
	return hits
}

// RedactTail is Redact for data appended to what was scanned before: it returns
// data[from:] with every secret masked that reaches into it, reading data[:from] (the
// bytes just before, as they are in the source, unmasked) only to see secrets that
// started there. A private key whose BEGIN line was in an earlier capture and whose body
// follows in this one is thus masked, as it would be in one scan of the whole. Hit
// offsets are relative to data[from:]. Without a hit it returns data[from:] itself and
// nil; otherwise data is left unchanged.
func (s *Scanner) RedactTail(data []byte, from int) ([]byte, []Hit) {
	from = min(max(from, 0), len(data))
	if from == 0 {
		return s.Redact(data)
	}
	// A cheap first look finds nothing in most appends.
	ms := s.find(data, nil)
	found := false
	for _, m := range ms {
		if m.end > from {
			found = true
			break
		}
	}
	if !found {
		return data[from:], nil
	}
	out := bytes.Clone(data)
	hits := s.redactIn(out, from, len(out), true)
	if len(hits) == 0 || bytes.Equal(out[from:], data[from:]) {
		return data[from:], nil // what reached past from was masked already
	}
	for i := range hits {
		hits[i].Offset -= from
	}
	return out[from:], hits
}

// block is how much new data a Reader scans at a time: large enough that rescanning the
// MaxSpan overlap costs little.
const block = 4 << 20

// Reader masks the secrets of a stream of any length in bounded memory (about 4 MiB
// plus MaxSpan): each block is scanned with the lookBehind bytes before it, and its last
// MaxSpan bytes are held back and scanned again with the next block, so a secret across
// a block boundary is masked as in one scan of the whole.
type Reader struct {
	s    *Scanner
	r    io.Reader
	buf  []byte // lookBehind context, then bytes not yet scanned to the end
	from int    // buf[:from] was returned already (context only)
	out  []byte // scanned bytes ready to be returned
	pos  int64  // stream offset of buf[0]
	hits []Hit
	err  error
}

// NewReader returns a Reader that yields r's bytes with every secret masked.
func (s *Scanner) NewReader(r io.Reader) *Reader {
	return &Reader{s: s, r: r}
}

// Hits returns the secrets masked so far, offsets counted from the stream's start.
func (r *Reader) Hits() []Hit { return r.hits }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// fill reads the next block, scans it and makes what is settled ready to return.
func (r *Reader) fill() {
	if len(r.out) == 0 && r.from > lookBehind {
		// Keep only the context the next scan needs in front.
		drop := r.from - lookBehind
		r.buf = append(r.buf[:0], r.buf[drop:]...)
		r.from -= drop
		r.pos += int64(drop)
	}
	want := len(r.buf) + block
	if cap(r.buf) < want {
		nb := make([]byte, len(r.buf), want+MaxSpan+lookBehind)
		copy(nb, r.buf)
		r.buf = nb
	}
	n, err := io.ReadFull(r.r, r.buf[len(r.buf):want])
	r.buf = r.buf[:len(r.buf)+n]
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !eof {
		r.err = err
		return
	}
	cut := len(r.buf)
	if !eof {
		cut = max(r.from, len(r.buf)-MaxSpan)
	}
	for _, h := range r.s.redactIn(r.buf, r.from, cut, false) {
		h.Offset += int(r.pos)
		r.hits = append(r.hits, h)
	}
	r.out = r.buf[r.from:cut]
	r.from = cut
	if eof {
		r.err = io.EOF
	}
}
