package sqlitepage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Page is one database page image.
type Page struct {
	No   uint32 // 1-based page number
	Data []byte // exactly PageSize bytes
}

// Txn is one committed transaction: the pages it wrote (latest image of each) and the
// database size after it. A base snapshot is a Txn whose Pages are every page 1..DBPages.
type Txn struct {
	PageSize int
	DBPages  uint32 // database size in pages after the transaction
	Pages    []Page // in ascending page order when built by this package
}

// NewTxn builds a Txn from the pages of one transaction in the WAL. Pages past the new end
// of the database can be in the WAL (written before a later step of the same transaction
// shrank the file); they are dead, and dropping them keeps the Txn small.
func NewTxn(pageSize int, dbPages uint32, pages []Page) Txn {
	out := make([]Page, 0, len(pages))
	for _, p := range pages {
		if p.No <= dbPages {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Page) int { return int(a.No) - int(b.No) })
	return Txn{PageSize: pageSize, DBPages: dbPages, Pages: out}
}

// Validate checks the invariants Apply and the codec rely on.
func (tx Txn) Validate() error {
	if !ValidPageSize(tx.PageSize) {
		return fmt.Errorf("sqlite txn: invalid page size %d", tx.PageSize)
	}
	if tx.DBPages == 0 {
		return errors.New("sqlite txn: database size is zero pages")
	}
	for _, p := range tx.Pages {
		if p.No == 0 || p.No > tx.DBPages {
			return fmt.Errorf("sqlite txn: page %d outside 1..%d", p.No, tx.DBPages)
		}
		if len(p.Data) != tx.PageSize {
			return fmt.Errorf("sqlite txn: page %d has %d bytes, want %d", p.No, len(p.Data), tx.PageSize)
		}
	}
	return nil
}

// applyRun bounds how many bytes of consecutive pages Apply gathers into one write.
const applyRun = 1 << 20

// Apply writes a Txn onto a restore image file: each page at (No-1)*PageSize, then
// truncates the file to DBPages*PageSize. A base snapshot is a Txn with all pages, applied
// to an empty file. The image is consistent only after every Txn up to a commit (and every
// piece of a split one) has been applied; it does not sync the file.
func Apply(img *os.File, tx Txn) error {
	if err := tx.Validate(); err != nil {
		return err
	}
	ps := int64(tx.PageSize)
	// Consecutive pages (a base, or a transaction that appended) go out in one write.
	var run []byte
	var runStart uint32
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		_, err := img.WriteAt(run, int64(runStart-1)*ps)
		run = run[:0]
		return err
	}
	for _, p := range tx.Pages {
		if len(run) > 0 && (p.No != runStart+uint32(len(run)/tx.PageSize) || len(run) >= applyRun) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(run) == 0 {
			runStart = p.No
		}
		run = append(run, p.Data...)
	}
	if err := flush(); err != nil {
		return err
	}
	return img.Truncate(int64(tx.DBPages) * ps)
}

// Finalize makes a restored image a standalone database file. It sets the file format
// write and read versions (offsets 18 and 19) to 1, rollback journal mode, so that opening
// it needs no -wal file; it sets the in-header database size (offset 28) to the file's page
// count and copies the change counter (offset 24) into the version-valid-for number
// (offset 92), because SQLite trusts the in-header size only when those two match and
// falls back to the file size otherwise.
func Finalize(img *os.File) error {
	fi, err := img.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, dbHeaderSize)
	if _, err := img.ReadAt(b, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrNotDatabase
		}
		return err
	}
	ps, err := headerPageSize(b)
	if err != nil {
		return err
	}
	if fi.Size()%int64(ps) != 0 {
		return fmt.Errorf("sqlite finalize: image size %d is not a multiple of the page size %d", fi.Size(), ps)
	}
	pages := fi.Size() / int64(ps)
	if pages > int64(^uint32(0)) {
		return fmt.Errorf("sqlite finalize: image has too many pages (%d)", pages)
	}
	b[18], b[19] = 1, 1
	binary.BigEndian.PutUint32(b[28:32], uint32(pages))
	copy(b[92:96], b[24:28])
	_, err = img.WriteAt(b, 0)
	return err
}

// Encoded form of a Txn, big-endian:
//
//	version   1 byte (txnFormat)
//	PageSize  4 bytes
//	DBPages   4 bytes
//	count     4 bytes
//	count x { page number 4 bytes, PageSize bytes of data }
const (
	txnFormat     = 1
	txnHeaderSize = 13
)

// EncodedSize returns the length of EncodeTxn(tx).
func EncodedSize(tx Txn) int {
	return txnHeaderSize + len(tx.Pages)*(4+tx.PageSize)
}

// EncodeTxn returns a compact binary form of a Txn for journal records. Every page must be
// PageSize bytes long (as Apply requires); a page of another length is cut or zero-padded
// to PageSize.
func EncodeTxn(tx Txn) []byte {
	b := make([]byte, EncodedSize(tx))
	b[0] = txnFormat
	binary.BigEndian.PutUint32(b[1:], uint32(tx.PageSize))
	binary.BigEndian.PutUint32(b[5:], tx.DBPages)
	binary.BigEndian.PutUint32(b[9:], uint32(len(tx.Pages)))
	off := txnHeaderSize
	for _, p := range tx.Pages {
		binary.BigEndian.PutUint32(b[off:], p.No)
		copy(b[off+4:off+4+tx.PageSize], p.Data)
		off += 4 + tx.PageSize
	}
	return b
}

// DecodeTxn parses the form written by EncodeTxn. It rejects malformed input (unknown
// version, invalid page size, zero database size, a length that does not match the page
// count, page numbers outside 1..DBPages) with an error. The pages are copies: b may be
// reused afterwards.
func DecodeTxn(b []byte) (Txn, error) {
	if len(b) < txnHeaderSize {
		return Txn{}, fmt.Errorf("sqlite txn: record of %d bytes is too short", len(b))
	}
	if b[0] != txnFormat {
		return Txn{}, fmt.Errorf("sqlite txn: unknown format %d", b[0])
	}
	ps := binary.BigEndian.Uint32(b[1:])
	if ps > MaxPageSize || !ValidPageSize(int(ps)) {
		return Txn{}, fmt.Errorf("sqlite txn: invalid page size %d", ps)
	}
	tx := Txn{PageSize: int(ps), DBPages: binary.BigEndian.Uint32(b[5:])}
	if tx.DBPages == 0 {
		return Txn{}, errors.New("sqlite txn: database size is zero pages")
	}
	count := uint64(binary.BigEndian.Uint32(b[9:]))
	if want := uint64(txnHeaderSize) + count*(4+uint64(ps)); want != uint64(len(b)) {
		return Txn{}, fmt.Errorf("sqlite txn: %d pages need %d bytes, record has %d", count, want, len(b))
	}
	data := make([]byte, int(count)*int(ps))
	tx.Pages = make([]Page, count)
	off := txnHeaderSize
	for i := range tx.Pages {
		no := binary.BigEndian.Uint32(b[off:])
		if no == 0 || no > tx.DBPages {
			return Txn{}, fmt.Errorf("sqlite txn: page %d outside 1..%d", no, tx.DBPages)
		}
		d := data[i*int(ps) : (i+1)*int(ps)]
		copy(d, b[off+4:])
		tx.Pages[i] = Page{No: no, Data: d}
		off += 4 + int(ps)
	}
	return tx, nil
}

// SplitTxn cuts a Txn into pieces of at most maxBytes encoded each, so that each fits a
// journal record; every piece keeps PageSize and DBPages, and applying the pieces in order
// equals applying the whole. A piece always holds at least one page, so when maxBytes is
// smaller than one encoded page the pieces exceed it. A restore must apply all pieces of a
// transaction before the image is consistent again.
func SplitTxn(tx Txn, maxBytes int) []Txn {
	per := (maxBytes - txnHeaderSize) / (4 + tx.PageSize)
	if per < 1 {
		per = 1
	}
	if len(tx.Pages) <= per {
		return []Txn{tx}
	}
	out := make([]Txn, 0, (len(tx.Pages)+per-1)/per)
	for i := 0; i < len(tx.Pages); i += per {
		end := min(i+per, len(tx.Pages))
		out = append(out, Txn{PageSize: tx.PageSize, DBPages: tx.DBPages, Pages: tx.Pages[i:end:end]})
	}
	return out
}

// Layout constants of the database file header.
const (
	dbHeaderSize = 100
	minPageSize  = 512
	// MaxPageSize is the largest page size SQLite allows.
	MaxPageSize = 65536
)

// ErrNotDatabase reports an image that lacks the "SQLite format 3\x00" header.
var ErrNotDatabase = errors.New("sqlite: not a SQLite database")

var sqliteMagic = []byte("SQLite format 3\x00")

// IsDatabase reports whether the first bytes are a SQLite header.
func IsDatabase(head []byte) bool {
	return len(head) >= len(sqliteMagic) && bytes.Equal(head[:len(sqliteMagic)], sqliteMagic)
}

// ValidPageSize reports whether n is a page size SQLite can use.
func ValidPageSize(n int) bool {
	return n >= minPageSize && n <= MaxPageSize && n&(n-1) == 0
}

// headerPageSize reads the page size of a database header (65536 is written as 1).
func headerPageSize(b []byte) (int, error) {
	if len(b) < dbHeaderSize || !IsDatabase(b) {
		return 0, ErrNotDatabase
	}
	ps := int(binary.BigEndian.Uint16(b[16:18]))
	if ps == 1 {
		ps = MaxPageSize
	}
	if !ValidPageSize(ps) {
		return 0, fmt.Errorf("%w: invalid page size %d", ErrNotDatabase, ps)
	}
	return ps, nil
}
