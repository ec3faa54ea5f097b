package sqlite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// On-disk layout constants of the database file, the WAL and the wal-index, as described by
// SQLite's file format documentation.
const (
	dbHeaderSize       = 100
	walHeaderSize      = 32
	walFrameHeaderSize = 24
	// The low bit of the WAL magic says in which byte order the checksums were computed
	// (set: big-endian). The writer picks its native order, so both occur.
	walMagicLE  = 0x377f0682
	walMagicBE  = 0x377f0683
	walVersion  = 3007000
	minPageSize = 512
	maxPageSize = 65536

	// wal-index (-shm) layout: two copies of a 48-byte header, then the checkpoint info.
	shmHeaderSize            = 48
	shmOffNBackfill          = 2 * shmHeaderSize
	shmOffNBackfillAttempted = 2*shmHeaderSize + 32
	shmReadSize              = 2*shmHeaderSize + 40
	shmVersion               = 3007000
)

var sqliteMagic = []byte("SQLite format 3\x00")

// IsDatabase reports whether the first bytes are a SQLite header.
func IsDatabase(head []byte) bool {
	return len(head) >= len(sqliteMagic) && bytes.Equal(head[:len(sqliteMagic)], sqliteMagic)
}

// validPageSize reports whether n is a page size SQLite can use.
func validPageSize(n int) bool {
	return n >= minPageSize && n <= maxPageSize && n&(n-1) == 0
}

// decodePageSize reads the 2-byte page size field at offset 16, where 65536 does not fit
// and is written as 1.
func decodePageSize(b []byte) int {
	v := int(binary.BigEndian.Uint16(b))
	if v == 1 {
		return maxPageSize
	}
	return v
}

// dbHeader holds the fields of the 100-byte database header this package relies on.
type dbHeader struct {
	pageSize      int
	writeVersion  byte // 1: rollback journal, 2: WAL
	readVersion   byte
	changeCounter uint32
	sizeInHeader  uint32
	validFor      uint32
}

// wal reports whether the header marks the database as being in WAL mode.
func (h dbHeader) wal() bool { return h.writeVersion == 2 || h.readVersion == 2 }

// sizeValid reports whether SQLite would trust the in-header database size: it must be
// non-zero and written by a version that also kept the version-valid-for number in step
// with the change counter.
func (h dbHeader) sizeValid() bool {
	return h.sizeInHeader != 0 && h.changeCounter == h.validFor
}

// parseDBHeader decodes a database header; it wraps ErrNotDatabase when b does not start
// like a database.
func parseDBHeader(b []byte) (dbHeader, error) {
	if len(b) < dbHeaderSize || !IsDatabase(b) {
		return dbHeader{}, ErrNotDatabase
	}
	h := dbHeader{
		pageSize:      decodePageSize(b[16:18]),
		writeVersion:  b[18],
		readVersion:   b[19],
		changeCounter: binary.BigEndian.Uint32(b[24:28]),
		sizeInHeader:  binary.BigEndian.Uint32(b[28:32]),
		validFor:      binary.BigEndian.Uint32(b[92:96]),
	}
	if !validPageSize(h.pageSize) {
		return dbHeader{}, fmt.Errorf("%w: invalid page size %d", ErrNotDatabase, h.pageSize)
	}
	return h, nil
}

// readDBHeader reads and decodes the header of an open database file.
func readDBHeader(f *os.File) (dbHeader, error) {
	b := make([]byte, dbHeaderSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return dbHeader{}, err
	}
	return parseDBHeader(b[:n])
}

// walHeader is the decoded 32-byte WAL header. A WAL generation (the frames written between
// two restarts of the log) is identified by its salts.
type walHeader struct {
	bigEndian bool
	pageSize  int
	ckptSeq   uint32
	salt      [8]byte // salt-1 and salt-2 as stored; every frame of the generation repeats them
	cksum     [2]uint32
}

// sameGeneration reports whether two headers start the same WAL generation.
func (h walHeader) sameGeneration(o walHeader) bool {
	return h.salt == o.salt && h.bigEndian == o.bigEndian && h.pageSize == o.pageSize &&
		h.ckptSeq == o.ckptSeq
}

// parseWALHeader decodes a WAL header and reports whether it is valid: known magic and
// version, a usable page size and a matching checksum. SQLite itself ignores a WAL whose
// header fails these checks.
func parseWALHeader(b []byte) (walHeader, bool) {
	if len(b) < walHeaderSize {
		return walHeader{}, false
	}
	magic := binary.BigEndian.Uint32(b[0:4])
	if magic != walMagicLE && magic != walMagicBE {
		return walHeader{}, false
	}
	if binary.BigEndian.Uint32(b[4:8]) != walVersion {
		return walHeader{}, false
	}
	h := walHeader{
		bigEndian: magic&1 == 1,
		pageSize:  int(binary.BigEndian.Uint32(b[8:12])),
		ckptSeq:   binary.BigEndian.Uint32(b[12:16]),
	}
	copy(h.salt[:], b[16:24])
	if !validPageSize(h.pageSize) {
		return walHeader{}, false
	}
	s0, s1 := walChecksum(h.bigEndian, b[:24], 0, 0)
	if s0 != binary.BigEndian.Uint32(b[24:28]) || s1 != binary.BigEndian.Uint32(b[28:32]) {
		return walHeader{}, false
	}
	h.cksum = [2]uint32{s0, s1}
	return h, true
}

// walChecksum continues SQLite's WAL checksum over b (a multiple of 8 bytes) from (s0, s1).
// The words are read in the byte order named by the WAL magic.
func walChecksum(bigEndian bool, b []byte, s0, s1 uint32) (uint32, uint32) {
	var order binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// frameSize is the size of one WAL frame (header and page) for a page size.
func frameSize(pageSize int) int64 { return int64(walFrameHeaderSize + pageSize) }

// frameOffset is where frame n (1-based) starts in the WAL.
func frameOffset(n uint32, pageSize int) int64 {
	return walHeaderSize + int64(n-1)*frameSize(pageSize)
}

// readWALHeader opens the WAL and decodes its header. f is nil when the WAL does not exist;
// ok is false when it is shorter than a header or the header is invalid.
func readWALHeader(path string) (f *os.File, h walHeader, size int64, ok bool, err error) {
	f, err = os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, walHeader{}, 0, false, nil
	}
	if err != nil {
		return nil, walHeader{}, 0, false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, walHeader{}, 0, false, err
	}
	b := make([]byte, walHeaderSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, walHeader{}, 0, false, err
	}
	h, ok = parseWALHeader(b[:n])
	return f, h, fi.Size(), ok, nil
}

// walPos is a position in a WAL generation: the last frame consumed and the running
// checksum after it (the header's checksum before the first frame).
type walPos struct {
	frame uint32
	cksum [2]uint32
}

// frameAt reads frame n's header and reports whether it belongs to generation h and carries
// the running checksum want. It proves that the WAL still holds the frames a position
// refers to.
func frameAt(f *os.File, h walHeader, n uint32, want [2]uint32) (bool, error) {
	b := make([]byte, walFrameHeaderSize)
	if _, err := f.ReadAt(b, frameOffset(n, h.pageSize)); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	}
	return bytes.Equal(b[8:16], h.salt[:]) &&
		binary.BigEndian.Uint32(b[16:20]) == want[0] &&
		binary.BigEndian.Uint32(b[20:24]) == want[1], nil
}

// scanWAL reads the frames after pos, validating each one (salts of generation h, page
// number, running checksum), and calls commit for every complete transaction, in order.
// It stops at the first invalid or incomplete frame: the frames after the last commit frame
// belong to a transaction still being written, or to none, and are left for a later scan.
// It returns the position after the last commit frame.
func scanWAL(f *os.File, h walHeader, pos walPos, size int64, commit func(Txn) error) (walPos, error) {
	ps := h.pageSize
	fs := frameSize(ps)
	off := frameOffset(pos.frame+1, ps)
	if size < off {
		return pos, nil
	}
	// Reading in chunks of about 1 MiB keeps system calls few; a chunk always holds
	// whole frames, and is no larger than what there is to read, so a poll that finds
	// little allocates little.
	chunk := max(1, (1<<20)/fs) * fs
	buf := make([]byte, min(chunk, (size-off)/fs*fs))
	cur := pos
	var pending []Page
	index := map[uint32]int{}
	for off+fs <= size {
		want := min(int64(len(buf)), (size-off)/fs*fs)
		n, err := f.ReadAt(buf[:want], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return pos, err
		}
		n -= n % int(fs)
		if n == 0 {
			break
		}
		for i := 0; i < n; i += int(fs) {
			fr := buf[i : i+int(fs)]
			pgno := binary.BigEndian.Uint32(fr[0:4])
			dbSize := binary.BigEndian.Uint32(fr[4:8])
			if pgno == 0 || !bytes.Equal(fr[8:16], h.salt[:]) {
				return pos, nil
			}
			s0, s1 := walChecksum(h.bigEndian, fr[0:8], cur.cksum[0], cur.cksum[1])
			s0, s1 = walChecksum(h.bigEndian, fr[walFrameHeaderSize:], s0, s1)
			if s0 != binary.BigEndian.Uint32(fr[16:20]) || s1 != binary.BigEndian.Uint32(fr[20:24]) {
				return pos, nil
			}
			cur = walPos{frame: cur.frame + 1, cksum: [2]uint32{s0, s1}}
			data := make([]byte, ps)
			copy(data, fr[walFrameHeaderSize:])
			// A transaction may write a page more than once (a page spilled from the
			// cache and written again at commit); the later image wins.
			if j, ok := index[pgno]; ok {
				pending[j].Data = data
			} else {
				index[pgno] = len(pending)
				pending = append(pending, Page{No: pgno, Data: data})
			}
			if dbSize == 0 {
				continue
			}
			if err := commit(newTxn(ps, dbSize, pending)); err != nil {
				return pos, err
			}
			pos = cur
			pending = nil
			clear(index)
		}
		off += int64(n)
	}
	return pos, nil
}

// shmInfo is what the wal-index says about the current WAL generation.
type shmInfo struct {
	salt               [8]byte
	mxFrame            uint32
	nBackfill          uint32
	nBackfillAttempted uint32
}

// readShm reads the wal-index header and checkpoint info from the -shm file without any
// lock. SQLite updates the header's second copy, then the first, each with a checksum, so a
// torn read shows as copies that differ or a bad checksum; then it is retried. ok is false
// when the file is missing or never settles. The -shm file is native byte order.
//
// Opening and closing the file drops any POSIX lock this process holds on it, so it must
// not be called while a SQLite connection of this process has the database open; Base
// uses readShmFile on a descriptor opened before its connection.
func readShm(path string) (info shmInfo, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return shmInfo{}, false, nil
	}
	if err != nil {
		return shmInfo{}, false, err
	}
	defer f.Close()
	return readShmFile(f)
}

// readShmFile is readShm on an open -shm file.
func readShmFile(f *os.File) (info shmInfo, ok bool, err error) {
	b := make([]byte, shmReadSize)
	for range 5 {
		n, err := f.ReadAt(b, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return shmInfo{}, false, err
		}
		if n < shmReadSize {
			return shmInfo{}, false, nil
		}
		h1, h2 := b[:shmHeaderSize], b[shmHeaderSize:2*shmHeaderSize]
		ne := binary.NativeEndian
		if bytes.Equal(h1, h2) && ne.Uint32(h1[0:4]) == shmVersion && h1[12] == 1 {
			s0, s1 := shmChecksum(h1[:40])
			if s0 == ne.Uint32(h1[40:44]) && s1 == ne.Uint32(h1[44:48]) {
				info.mxFrame = ne.Uint32(h1[16:20])
				copy(info.salt[:], h1[32:40])
				info.nBackfill = ne.Uint32(b[shmOffNBackfill:])
				info.nBackfillAttempted = ne.Uint32(b[shmOffNBackfillAttempted:])
				return info, true, nil
			}
		}
	}
	return shmInfo{}, false, nil
}

// shmChecksum is the WAL checksum over native-order words, as the wal-index header uses.
func shmChecksum(b []byte) (uint32, uint32) {
	nativeBig := binary.NativeEndian.Uint16([]byte{0, 1}) == 1
	return walChecksum(nativeBig, b, 0, 0)
}
