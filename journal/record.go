// Package journal owns the record type every part of mmreplicate exchanges, its binary
// encoding, and the local append-only log (segments, group-commit fsync, cursors) that is
// the source of truth on the host until the store has a record.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Op says what a record does to the file it names.
type Op uint8

const (
	// OpAppend truncates the file to Offset, then writes Data at Offset. Replaying the same
	// record twice gives the same bytes, which is what makes redelivery harmless. A record
	// with Offset 0 starts the file afresh (new, truncated or rewritten file).
	OpAppend Op = 1
	// OpDelete removes the file (or the empty folder).
	OpDelete Op = 2
	// OpChunk carries one content-addressed chunk: Path is its hex SHA-256, Data its bytes.
	// It names no file; OpFile records refer to it. Chunks travel once and are stored as
	// blobs, outside segments (a segment keeps the record without its data).
	OpChunk Op = 3
	// OpFile sets the whole content of a file: Data is its chunk list (see ChunkRef),
	// Offset its size, Mode its permission bits.
	OpFile Op = 4
	// OpSymlink records a symbolic link (never followed): Data is its target.
	OpSymlink Op = 5
	// OpDir records a folder, so that empty folders are restored too.
	OpDir Op = 6
	// OpDBBase is one piece of a consistent full image of a SQLite database; the piece
	// with Offset 0 starts a new image. Data is an encoded page set.
	OpDBBase Op = 7
	// OpDBPages is one piece of a committed SQLite transaction applied to the image.
	OpDBPages Op = 8
	lastOp    Op = OpDBPages
)

func (o Op) String() string {
	switch o {
	case OpAppend:
		return "append"
	case OpDelete:
		return "delete"
	case OpChunk:
		return "chunk"
	case OpFile:
		return "file"
	case OpSymlink:
		return "symlink"
	case OpDir:
		return "dir"
	case OpDBBase:
		return "db-base"
	case OpDBPages:
		return "db-pages"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Version is the record encoding version written by this build.
const Version = 1

// MaxRecordSize bounds one encoded record so that a corrupt length field cannot make the
// decoder allocate without limit. Producers split data well below it.
const MaxRecordSize = 64 << 20

// frameHeader is the length (uint32) and CRC32C (uint32) before every record body.
const frameHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned (wrapped) when a record's checksum or structure is wrong.
var ErrCorrupt = errors.New("corrupt record")

// ErrTruncated is returned (wrapped) when the input ends inside a record.
var ErrTruncated = errors.New("truncated record")

// Record is one captured change. Seq and Time are assigned by the journal.
type Record struct {
	Seq    uint64 // host-scoped, strictly increasing
	Time   int64  // capture time, Unix nanoseconds, never decreasing with Seq
	Op     Op
	Source string // source name from the config
	Path   string // slash-separated, relative to the source's path
	Offset int64  // OpAppend: where Data starts
	Mode   uint32 // file permission bits, 0 when unknown
	Data   []byte
}

// CaptureTime returns Time as a time.Time in UTC.
func (r *Record) CaptureTime() time.Time { return time.Unix(0, r.Time).UTC() }

// End is the file size after an OpAppend record is applied.
func (r *Record) End() int64 { return r.Offset + int64(len(r.Data)) }

// EncodedSize is the number of bytes AppendFrame adds for r.
func (r *Record) EncodedSize() int {
	return frameHeader + 2 + 3*binary.MaxVarintLen64 + 4*binary.MaxVarintLen32 +
		len(r.Source) + len(r.Path) + len(r.Data)
}

// AppendFrame appends r's framed encoding (length, CRC32C, body) to dst.
func AppendFrame(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = append(dst, Version, byte(r.Op))
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = binary.AppendVarint(dst, r.Time)
	dst = appendBytes(dst, []byte(r.Source))
	dst = appendBytes(dst, []byte(r.Path))
	dst = binary.AppendVarint(dst, r.Offset)
	dst = binary.AppendUvarint(dst, uint64(r.Mode))
	dst = appendBytes(dst, r.Data)
	body := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// DecodeFrame decodes the first framed record in buf and returns it with the number of
// bytes it used. Data aliases buf. It returns ErrTruncated when buf ends inside the frame
// and ErrCorrupt when the checksum or the body is wrong.
func DecodeFrame(buf []byte) (Record, int, error) {
	if len(buf) < frameHeader {
		return Record{}, 0, fmt.Errorf("%w: %d header bytes", ErrTruncated, len(buf))
	}
	n := binary.LittleEndian.Uint32(buf)
	if n > MaxRecordSize || n < 2 {
		return Record{}, 0, fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	if uint64(len(buf)-frameHeader) < uint64(n) {
		return Record{}, 0, fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, n, len(buf)-frameHeader)
	}
	body := buf[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
		return Record{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r, err := decodeBody(body)
	if err != nil {
		return Record{}, 0, err
	}
	return r, frameHeader + int(n), nil
}

// decoder reads the fields of a record body in order and remembers the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: field of %d bytes overruns the record", ErrCorrupt, n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func decodeBody(body []byte) (Record, error) {
	if body[0] != Version {
		return Record{}, fmt.Errorf("%w: unknown version %d", ErrCorrupt, body[0])
	}
	r := Record{Op: Op(body[1])}
	if r.Op == 0 || r.Op > lastOp {
		return Record{}, fmt.Errorf("%w: unknown op %d", ErrCorrupt, body[1])
	}
	d := decoder{b: body[2:]}
	r.Seq = d.uvarint()
	r.Time = d.varint()
	r.Source = string(d.bytes())
	r.Path = string(d.bytes())
	r.Offset = d.varint()
	mode := d.uvarint()
	r.Data = d.bytes()
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if mode > 0xFFFFFFFF || r.Offset < 0 {
		return Record{}, fmt.Errorf("%w: field out of range", ErrCorrupt)
	}
	r.Mode = uint32(mode)
	return r, nil
}

// DecodeAll decodes a buffer made of whole frames, as a NATS message or a segment object
// body holds. Unlike the journal's tail, a truncated frame here is corruption.
func DecodeAll(buf []byte) ([]Record, error) {
	var out []Record
	for off := 0; off < len(buf); {
		r, n, err := DecodeFrame(buf[off:])
		if err != nil {
			if errors.Is(err, ErrTruncated) {
				err = fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			return out, fmt.Errorf("offset %d: %w", off, err)
		}
		out = append(out, r)
		off += n
	}
	return out, nil
}

// EncodeAll frames every record into one buffer.
func EncodeAll(recs []Record) []byte {
	size := 0
	for i := range recs {
		size += recs[i].EncodedSize()
	}
	buf := make([]byte, 0, size)
	for i := range recs {
		buf = AppendFrame(buf, &recs[i])
	}
	return buf
}
