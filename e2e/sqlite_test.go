package e2e

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// digest summarises a database's rows, as the test's writer committed them.
func digest(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("SELECT id, v FROM mem ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	n := 0
	for rows.Next() {
		var id int
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d:%x;", id, v)
		n++
	}
	return fmt.Sprintf("%d rows %x", n, h.Sum(nil)[:8])
}

// checkRestored opens a restored database: it must pass integrity_check and hold want.
func checkRestored(t *testing.T, path, want string) {
	t.Helper()
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatalf("%s: restore left a -wal file", path)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ic string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("%s: integrity_check %q %v", path, ic, err)
	}
	if got := digest(t, db); got != want {
		t.Fatalf("%s: holds %s, want %s", path, got, want)
	}
}

// TestSQLiteMemory: a writer (this test process, not the replicator) commits inserts,
// updates and deletes into a WAL database with automatic checkpoints at their default and
// at 100 pages, and explicit PASSIVE, FULL, RESTART and TRUNCATE checkpoints in between,
// while the daemon is once killed with SIGKILL. Restores at many instants each equal the
// state committed at that instant and pass integrity_check.
func TestSQLiteMemory(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	dbPath := filepath.Join(h.src, "memory", "agent.db")
	os.MkdirAll(filepath.Dir(dbPath), 0o755)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE mem (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 9))
	txn := func() {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1+rng.IntN(20); i++ {
			id := rng.IntN(2000)
			switch rng.IntN(4) {
			case 0:
				_, err = tx.Exec("DELETE FROM mem WHERE id = ?", id)
			case 1:
				_, err = tx.Exec("UPDATE mem SET v = ? WHERE id = ?", bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(3000)), id)
			default:
				_, err = tx.Exec("INSERT OR REPLACE INTO mem VALUES (?, ?)", id, bytes.Repeat([]byte{byte(rng.IntN(256))}, 100+rng.IntN(4000)))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	d := h.start()
	type snap struct{ at, want string }
	var snaps []snap
	checkpoints := []string{"", "PASSIVE", "FULL", "RESTART", "TRUNCATE", ""}
	for round, cp := range checkpoints {
		if round == 3 {
			if _, err := db.Exec("PRAGMA wal_autocheckpoint = 100"); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 40; i++ {
			txn()
			if i == 20 && cp != "" {
				if _, err := db.Exec("PRAGMA wal_checkpoint(" + cp + ")"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if round == 2 {
			d.kill() // a crash in the middle of the history
			txn()
			d = h.start()
		}
		want := digest(t, db)
		time.Sleep(1500 * time.Millisecond) // captured and stored; nothing commits meanwhile
		snaps = append(snaps, snap{time.Now().UTC().Format(time.RFC3339Nano), want})
		time.Sleep(20 * time.Millisecond)
	}
	d.stop(t)
	for i, s := range snaps {
		to := h.restore(s.at, "--path", "memory/agent.db")
		checkRestored(t, filepath.Join(to, "sessions", "memory", "agent.db"), s.want)
		t.Logf("restore at round %d: %s ok", i, s.want)
	}
	// The host is gone: restore from the store alone.
	os.RemoveAll(h.data)
	to := h.restore("latest")
	checkRestored(t, filepath.Join(to, "sessions", "memory", "agent.db"), snaps[len(snaps)-1].want)
}
