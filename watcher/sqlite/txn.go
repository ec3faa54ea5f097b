package sqlite

import (
	"os"

	"github.com/mmreplicate/mmreplicate/sqlitepage"
)

// Page is one database page image (package sqlitepage owns the page-set codec).
type Page = sqlitepage.Page

// Txn is one committed transaction or a base image (see sqlitepage.Txn).
type Txn = sqlitepage.Txn

// newTxn builds a Txn from the pages of one transaction in the WAL (sqlitepage.NewTxn).
func newTxn(pageSize int, dbPages uint32, pages []Page) Txn {
	return sqlitepage.NewTxn(pageSize, dbPages, pages)
}

// Apply writes a Txn onto an image file (sqlitepage.Apply).
func Apply(img *os.File, tx Txn) error { return sqlitepage.Apply(img, tx) }

// Finalize makes a restored image a standalone database file (sqlitepage.Finalize).
func Finalize(img *os.File) error { return sqlitepage.Finalize(img) }

// EncodedSize returns the length of EncodeTxn(tx).
func EncodedSize(tx Txn) int { return sqlitepage.EncodedSize(tx) }

// EncodeTxn encodes a Txn for journal records (sqlitepage.EncodeTxn).
func EncodeTxn(tx Txn) []byte { return sqlitepage.EncodeTxn(tx) }

// DecodeTxn parses the form written by EncodeTxn (sqlitepage.DecodeTxn).
func DecodeTxn(b []byte) (Txn, error) { return sqlitepage.DecodeTxn(b) }

// SplitTxn cuts a Txn into pieces that each fit a journal record (sqlitepage.SplitTxn).
func SplitTxn(tx Txn, maxBytes int) []Txn { return sqlitepage.SplitTxn(tx, maxBytes) }
