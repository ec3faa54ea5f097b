package sqlite

import (
	"fmt"
	"os"
)

// Snapshot copies a database in rollback-journal mode consistently: it holds a read
// transaction (SQLite's shared lock, which no writer can commit through) only while the
// file is read, and returns every page as a Txn. WAL databases use Tracker instead.
func Snapshot(path string) (Txn, error) {
	var tx Txn
	_, err := withReadTxn(path, func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h, err := readDBHeader(f)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(data)%h.pageSize != 0 {
			return fmt.Errorf("%w: %d bytes is not a whole number of %d-byte pages", ErrNotDatabase, len(data), h.pageSize)
		}
		tx = Txn{PageSize: h.pageSize, DBPages: uint32(len(data) / h.pageSize)}
		for i := 0; i < len(data); i += h.pageSize {
			tx.Pages = append(tx.Pages, Page{No: uint32(i/h.pageSize) + 1, Data: data[i : i+h.pageSize]})
		}
		return nil
	})
	return tx, err
}
