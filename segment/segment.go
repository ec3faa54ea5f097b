// Package segment names and encodes the segment objects the S3 sink writes and restore
// reads: one zstd-compressed object per batch of journal records, whose key carries its
// first and last sequence numbers and capture times so that restore can pick segments by
// time from a listing alone, and a retried upload rewrites the same key.
package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mmreplicate/mmreplicate/journal"
)

// Magic starts every decompressed segment body; the digit is the format version.
const Magic = "MMRSEG1\n"

// MagicPacked starts a segment object that also carries the bytes of new chunks (a pack):
// MagicPacked, the pack's length as 8 big-endian bytes, the pack (raw chunk bytes, one
// after the other), then the compressed records as Encode writes them.
const MagicPacked = "MMRSEG2\n"

// PackStart is where the pack of a packed segment object begins.
const PackStart = int64(len(MagicPacked) + 8)

// timeLayout is fixed-width so that keys sort the same way as the times they carry.
const timeLayout = "20060102T150405.000000000Z"

// ErrBadKey is returned by ParseKey for a key that is not a segment key.
var ErrBadKey = errors.New("not a segment key")

// ErrCorrupt is returned (wrapped) when a segment body cannot be read back.
var ErrCorrupt = errors.New("corrupt segment")

// Info describes one segment object as its key tells it.
type Info struct {
	Host      string
	FirstSeq  uint64
	LastSeq   uint64
	FirstTime time.Time
	LastTime  time.Time
	Key       string
	Size      int64 // stored size, from the listing (0 when unknown)
}

// HostPrefix is the key prefix under which everything of one host lives.
func HostPrefix(host string) string { return "hosts/" + host + "/" }

// Prefix is the key prefix of a host's segments.
func Prefix(host string) string { return HostPrefix(host) + "segments/" }

// Key names the segment holding recs (sorted by sequence number) for host.
func Key(host string, recs []journal.Record) string {
	first, last := recs[0], recs[len(recs)-1]
	return fmt.Sprintf("%s%020d-%020d_%s_%s.seg", Prefix(host), first.Seq, last.Seq,
		time.Unix(0, first.Time).UTC().Format(timeLayout), time.Unix(0, last.Time).UTC().Format(timeLayout))
}

// ParseKey reads a segment key back into its Info.
func ParseKey(key string) (Info, error) {
	rest, ok := strings.CutPrefix(key, "hosts/")
	if !ok {
		return Info{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	host, name, ok := strings.Cut(rest, "/segments/")
	if !ok || host == "" || strings.Contains(name, "/") {
		return Info{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	name, ok = strings.CutSuffix(name, ".seg")
	parts := strings.Split(name, "_")
	if !ok || len(parts) != 3 {
		return Info{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	seqs := strings.Split(parts[0], "-")
	if len(seqs) != 2 {
		return Info{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	in := Info{Host: host, Key: key}
	var err1, err2, err3, err4 error
	in.FirstSeq, err1 = strconv.ParseUint(seqs[0], 10, 64)
	in.LastSeq, err2 = strconv.ParseUint(seqs[1], 10, 64)
	in.FirstTime, err3 = time.Parse(timeLayout, parts[1])
	in.LastTime, err4 = time.Parse(timeLayout, parts[2])
	if err := errors.Join(err1, err2, err3, err4); err != nil || in.LastSeq < in.FirstSeq || in.LastTime.Before(in.FirstTime) {
		return Info{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return in, nil
}

var (
	encOnce sync.Once
	enc     *zstd.Encoder
	dec     *zstd.Decoder
)

func codecs() {
	encOnce.Do(func() {
		enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<31))
	})
}

// Encode compresses recs into a segment body.
func Encode(recs []journal.Record) []byte {
	codecs()
	size := len(Magic)
	for i := range recs {
		size += recs[i].EncodedSize()
	}
	raw := append(make([]byte, 0, size), Magic...)
	for i := range recs {
		raw = journal.AppendFrame(raw, &recs[i])
	}
	return enc.EncodeAll(raw, make([]byte, 0, len(raw)/2))
}

// EncodePacked writes recs as one segment object stored under key, so that one PUT
// carries the batch with its new chunks: the data of every chunk record for which pack
// reports true goes into the object's pack, and the stored record keeps no data but
// names where the bytes are (Source: key; Offset: their position in the object). Every
// other chunk record is stored without data and Offset 0 (its bytes were stored
// before). It returns the body and the records as stored.
func EncodePacked(key string, recs []journal.Record, pack func(id string) bool) ([]byte, []journal.Record) {
	stored := make([]journal.Record, len(recs))
	copy(stored, recs)
	var raw []byte
	for i := range stored {
		r := &stored[i]
		if r.Op != journal.OpChunk {
			continue
		}
		data := r.Data
		r.Data, r.Source, r.Offset = nil, "", 0
		if len(data) == 0 || !pack(r.Path) {
			continue
		}
		r.Source, r.Offset = key, PackStart+int64(len(raw))
		raw = append(raw, data...)
	}
	if len(raw) == 0 {
		return Encode(stored), stored
	}
	body := Encode(stored)
	out := make([]byte, 0, int(PackStart)+len(raw)+len(body))
	out = append(out, MagicPacked...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(raw)))
	out = append(out, raw...)
	return append(out, body...), stored
}

// Decode reads a segment body (packed or not) back into its records. Every record's CRC
// is checked.
func Decode(b []byte) ([]journal.Record, error) {
	codecs()
	if bytes.HasPrefix(b, []byte(MagicPacked)) {
		if int64(len(b)) < PackStart {
			return nil, fmt.Errorf("%w: packed header cut short", ErrCorrupt)
		}
		n := binary.BigEndian.Uint64(b[len(MagicPacked):PackStart])
		if n > uint64(int64(len(b))-PackStart) {
			return nil, fmt.Errorf("%w: pack of %d bytes in an object of %d", ErrCorrupt, n, len(b))
		}
		b = b[PackStart+int64(n):]
	}
	raw, err := dec.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !bytes.HasPrefix(raw, []byte(Magic)) {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	recs, err := journal.DecodeAll(raw[len(Magic):])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return recs, nil
}

// Check verifies that a decoded segment matches what its key promised.
func (in Info) Check(recs []journal.Record) error {
	if len(recs) == 0 {
		return fmt.Errorf("%w: %s holds no records", ErrCorrupt, in.Key)
	}
	first, last := recs[0], recs[len(recs)-1]
	if first.Seq != in.FirstSeq || last.Seq != in.LastSeq || first.Time != in.FirstTime.UnixNano() || last.Time != in.LastTime.UnixNano() {
		return fmt.Errorf("%w: %s holds sequence %d-%d, its name says %d-%d", ErrCorrupt, in.Key, first.Seq, last.Seq, in.FirstSeq, in.LastSeq)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq || recs[i].Time < recs[i-1].Time {
			return fmt.Errorf("%w: %s: records out of order at %d", ErrCorrupt, in.Key, recs[i].Seq)
		}
	}
	return nil
}
