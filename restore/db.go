package restore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the pure-Go driver: integrity checks of restored databases

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/sqlitepage"
)

// dbImage tracks a SQLite database being rebuilt from a base image and transactions.
type dbImage struct {
	pageSize int
}

// applyDB applies one piece of a database base image or transaction (state.Step has
// checked that the image has a base). A page set that cannot be read or does not fit
// the image leaves the database incomplete, named by its record.
func (b *builder) applyDB(key string, st *fileState, r *journal.Record) error {
	if st.db == nil {
		st.db = &dbImage{} // a compacted base: page size taken from this transaction
	}
	tx, err := sqlitepage.DecodeTxn(r.Data)
	if err != nil {
		if st.incomplete == "" {
			st.incomplete = fmt.Sprintf("record %d: %v", r.Seq, err)
		}
		return nil
	}
	if st.db.pageSize != 0 && tx.PageSize != st.db.pageSize && r.Op == journal.OpDBPages {
		st.incomplete = fmt.Sprintf("page size changed without a new base (record %d)", r.Seq)
		return nil
	}
	st.db.pageSize = tx.PageSize
	st.size = int64(tx.DBPages) * int64(tx.PageSize)
	if b.stage == "" {
		return nil
	}
	f, err := b.file(key, st)
	if err != nil {
		return err
	}
	if err := sqlitepage.Apply(f, tx); err != nil {
		return fmt.Errorf("restore: %s: %w", st.path, err)
	}
	return nil
}

// finalizeDB makes the staged image a standalone database (no -wal needed) and checks it
// with SQLite's own integrity check before it is put in place.
func finalizeDB(st *fileState) error {
	if st.tmp == "" {
		return fmt.Errorf("database has no image")
	}
	f, err := os.OpenFile(st.tmp, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	err = sqlitepage.Finalize(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	return integrityCheck(st.tmp)
}

// integrityCheck runs PRAGMA integrity_check on a database file, read-only.
func integrityCheck(path string) error {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", "file:"+esc+"?mode=ro&immutable=1")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity check failed: %s", res)
	}
	return nil
}
