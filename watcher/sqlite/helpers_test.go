package sqlite

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// openApp opens the database the way an application would: WAL mode, the default
// automatic checkpoint unless pragmas say otherwise, one connection.
func openApp(t testing.TB, path string, pragmas ...string) *sql.DB {
	t.Helper()
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, v BLOB NOT NULL)`)
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)`)
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// writeTxn runs one application transaction: random inserts, updates and deletes of rows
// holding random blobs (so pages churn), sometimes many pages at once, and in the same
// transaction the row count and total size into meta, which lets a restored image be
// checked against itself.
func writeTxn(db *sql.DB, rng *rand.Rand, seq int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var maxID int64
	if err := tx.QueryRow(`SELECT coalesce(max(id),0) FROM items`).Scan(&maxID); err != nil {
		return err
	}
	pick := func() int64 { return rng.Int64N(maxID+1) + 1 }
	op := rng.IntN(10)
	switch {
	case op < 4 || maxID < 50:
		for range 1 + rng.IntN(3) {
			if _, err := tx.Exec(`INSERT INTO items(v) VALUES(?)`, blob(100+rng.IntN(2900))); err != nil {
				return err
			}
		}
	case op < 6:
		for range 1 + rng.IntN(3) {
			if _, err := tx.Exec(`UPDATE items SET v=? WHERE id=(SELECT id FROM items WHERE id>=? ORDER BY id LIMIT 1)`, blob(100+rng.IntN(2900)), pick()); err != nil {
				return err
			}
		}
	case op < 8:
		for range 1 + rng.IntN(3) {
			if _, err := tx.Exec(`DELETE FROM items WHERE id=(SELECT id FROM items WHERE id>=? ORDER BY id LIMIT 1)`, pick()); err != nil {
				return err
			}
		}
	case op < 9: // a transaction of many pages
		for range 20 {
			if _, err := tx.Exec(`INSERT INTO items(v) VALUES(?)`, blob(3000)); err != nil {
				return err
			}
		}
	default:
		if _, err := tx.Exec(`DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id>=? ORDER BY id LIMIT 15)`, pick()); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(`INSERT INTO meta(k,v) VALUES
		('count',(SELECT count(*) FROM items)),
		('size',(SELECT coalesce(sum(length(v)),0) FROM items)),
		('seq',?)
		ON CONFLICT(k) DO UPDATE SET v=excluded.v`, seq); err != nil {
		return err
	}
	return tx.Commit()
}

// image is a restore image built from captured transactions.
type image struct {
	t       testing.TB
	dir     string
	f       *os.File
	applied int // transactions applied since the last check
	checks  int
}

func newImage(t testing.TB) *image {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "image.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &image{t: t, dir: dir, f: f}
}

func (im *image) apply(tx Txn) {
	im.t.Helper()
	if err := Apply(im.f, tx); err != nil {
		im.t.Fatalf("apply: %v", err)
	}
}

// open copies the image, finalizes the copy and opens it with SQLite.
func (im *image) open() *sql.DB {
	im.t.Helper()
	im.checks++
	p := filepath.Join(im.dir, fmt.Sprintf("check-%d.db", im.checks))
	if err := copyFile(im.f.Name(), p); err != nil {
		im.t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		im.t.Fatal(err)
	}
	if err := Finalize(f); err != nil {
		im.t.Fatalf("finalize: %v", err)
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro")
	if err != nil {
		im.t.Fatal(err)
	}
	im.t.Cleanup(func() { db.Close(); os.Remove(p) })
	if _, err := os.Stat(p + "-wal"); err == nil {
		im.t.Fatalf("a finalized image must not use a WAL")
	}
	return db
}

// check opens a copy of the image and verifies that SQLite finds it intact and that it
// agrees with the meta row written in the same transaction as its data.
func (im *image) check() {
	im.t.Helper()
	db := im.open()
	defer db.Close()
	checkDB(im.t, db)
	im.applied = 0
}

// checkDB verifies integrity and the meta invariant of a database.
func checkDB(t testing.TB, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
	var n, size, wantN, wantSize int64
	if err := db.QueryRow(`SELECT count(*), coalesce(sum(length(v)),0) FROM items`).Scan(&n, &size); err != nil {
		t.Fatal(err)
	}
	err := db.QueryRow(`SELECT (SELECT v FROM meta WHERE k='count'), (SELECT v FROM meta WHERE k='size')`).Scan(&wantN, &wantSize)
	if err != nil {
		// No meta yet: only the schema exists.
		if n != 0 {
			t.Fatalf("rows without meta: %d (%v)", n, err)
		}
		return
	}
	if n != wantN || size != wantSize {
		t.Fatalf("image holds %d rows / %d bytes, its meta says %d / %d", n, size, wantN, wantSize)
	}
}

// dump returns a digest of every row of the test tables.
func dump(t testing.TB, db *sql.DB) string {
	t.Helper()
	h := sha256.New()
	rows, err := db.Query(`SELECT id, v FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d:%x\n", id, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	rows, err = db.Query(`SELECT k, v FROM meta ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s=%d\n", k, v)
	}
	rows.Close()
	return hex.EncodeToString(h.Sum(nil))
}

// matchSource checks that the image holds exactly the source database's rows.
func (im *image) matchSource(src *sql.DB) {
	im.t.Helper()
	db := im.open()
	defer db.Close()
	checkDB(im.t, db)
	if got, want := dump(im.t, db), dump(im.t, src); got != want {
		im.t.Fatalf("image content differs from the source database")
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// capture drives a Tracker the way the daemon does: a base, then polls, a new base
// whenever continuity is lost.
type capture struct {
	t          testing.TB
	tr         *Tracker
	im         *image
	rebases    int // bases after the first
	txns       int // transactions captured by Poll
	polls      int
	checkEvery int
	reasons    map[string]int // why each new base was needed
}

func newCapture(t testing.TB, path string) *capture {
	c := &capture{t: t, tr: NewTracker(path), im: newImage(t), checkEvery: 50, reasons: map[string]int{}}
	c.base()
	c.rebases = 0
	return c
}

// base takes a base, retrying while the database is briefly not in WAL mode or not yet
// a database.
func (c *capture) base() {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tx, err := c.tr.Base()
		if err == nil {
			c.im.apply(tx)
			c.rebases++
			c.im.check()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("base: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// poll runs one Poll and applies what it returns; it reports how many transactions it
// applied.
func (c *capture) poll() int {
	c.t.Helper()
	c.polls++
	txns, err := c.tr.Poll()
	if errors.Is(err, ErrNeedBase) {
		c.reasons[strings.TrimPrefix(err.Error(), ErrNeedBase.Error()+": ")]++
		c.base()
		return 0
	}
	if err != nil {
		c.t.Fatalf("poll: %v", err)
	}
	for _, tx := range txns {
		c.im.apply(tx)
		c.txns++
		c.im.applied++
		if c.checkEvery > 0 && c.im.applied >= c.checkEvery {
			c.im.check()
		}
	}
	return len(txns)
}

// drain polls until a poll returns nothing, so the image has caught up with the WAL.
func (c *capture) drain() {
	c.t.Helper()
	for c.poll() > 0 {
	}
	c.poll()
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}
