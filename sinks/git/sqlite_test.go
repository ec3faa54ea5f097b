package git

import (
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/watcher/sqlite"
)

// realDB plugs the SQLite capture's applier in, as the daemon does.
var realDB = DBFuncs{
	ApplyPagesFunc: func(img *os.File, data []byte) error {
		tx, err := sqlite.DecodeTxn(data)
		if err != nil {
			return err
		}
		return sqlite.Apply(img, tx)
	},
	FinalizeFunc: sqlite.Finalize,
}

// imageTxn reads a whole database file as one transaction of all its pages.
func imageTxn(t *testing.T, path string) sqlite.Txn {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.BigEndian.Uint16(b[16:]))
	if ps == 1 {
		ps = 65536
	}
	tx := sqlite.Txn{PageSize: ps, DBPages: uint32(len(b) / ps)}
	for i := 0; i < len(b)/ps; i++ {
		tx.Pages = append(tx.Pages, sqlite.Page{No: uint32(i + 1), Data: b[i*ps : (i+1)*ps]})
	}
	return tx
}

func execSQL(t *testing.T, path string, stmts ...string) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(DELETE)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A database captured as a base image in pieces plus a transaction is committed as a
// standalone database file that passes integrity_check and holds exactly the rows of the
// boundary.
func TestSQLiteDatabase(t *testing.T) {
	e := newEnv(t)
	o := e.opts()
	o.DB = realDB
	s := e.open(o)
	defer s.Close()
	app := filepath.Join(e.dir, "app.db")
	execSQL(t, app, "CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) INSERT INTO items(v) SELECT printf('row %d %0200d', i, i) FROM n")
	b := newBuilder()
	var recs []journal.Record
	for i, piece := range sqlite.SplitTxn(imageTxn(t, app), 8<<10) {
		recs = append(recs, b.rec(at(time.Minute), journal.OpDBBase, "memory/app.db", int64(i), 0o644, sqlite.EncodeTxn(piece)))
	}
	e.write(s, recs)
	execSQL(t, app, "DELETE FROM items WHERE id > 100", "INSERT INTO items(v) VALUES ('late')")
	e.write(s, []journal.Record{b.rec(at(time.Hour+time.Minute), journal.OpDBPages, "memory/app.db", 0, 0, sqlite.EncodeTxn(imageTxn(t, app)))})
	e.clock.Set(t0.Add(2*time.Hour + time.Minute))
	s.tick()

	for _, c := range []struct {
		rev  string
		rows int
	}{{"main~1", 500}, {"main", 101}} {
		out := filepath.Join(e.dir, "out.db")
		blob, err := exec.Command("git", "-C", e.repo, "show", c.rev+":memory/app.db").Output()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(out, blob, 0o644)
		db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		var check string
		var n int
		if err := db.QueryRowContext(context.Background(), "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Fatalf("%s: integrity_check %q %v", c.rev, check, err)
		}
		if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != c.rows {
			t.Fatalf("%s: %d rows (%v), want %d", c.rev, n, err, c.rows)
		}
		db.Close()
		os.Remove(out)
	}
}
