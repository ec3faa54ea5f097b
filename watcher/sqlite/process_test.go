package sqlite

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestExternalWriterProcess has another process, the sqlite3 command-line shell, write the
// database (its own SQLite build, its own locks) and run TRUNCATE and RESTART checkpoints
// now and then, while this process captures it.
func TestExternalWriterProcess(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("the sqlite3 shell is missing: install Debian's sqlite3 (`make test` does)")
	}
	path := filepath.Join(t.TempDir(), "app.db")
	setup := `PRAGMA journal_mode=WAL;
CREATE TABLE items(id INTEGER PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT INTO items(v) SELECT randomblob(1000) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3);
INSERT INTO meta(k,v) VALUES ('count',3), ('size',3000);`
	if out, err := exec.Command(shell, path, setup).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	c := newCapture(t, path)

	cmd := exec.Command(shell, path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &limitedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 400
	var exited atomic.Bool
	go func() {
		defer stdin.Close()
		io.WriteString(stdin, ".timeout 10000\nPRAGMA synchronous=NORMAL;\n")
		for i := range n {
			fmt.Fprintf(stdin, `BEGIN;
INSERT INTO items(v) SELECT randomblob(100 + abs(random() %% 2900)) FROM (SELECT 1 UNION ALL SELECT 2);
UPDATE items SET v=randomblob(700) WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 2);
DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 1);
INSERT INTO meta(k,v) VALUES ('count',(SELECT count(*) FROM items)),
  ('size',(SELECT coalesce(sum(length(v)),0) FROM items)), ('seq',%d)
  ON CONFLICT(k) DO UPDATE SET v=excluded.v;
COMMIT;
`, i)
			switch {
			case i%50 == 25:
				io.WriteString(stdin, "PRAGMA wal_checkpoint(TRUNCATE);\n")
			case i%50 == 49:
				io.WriteString(stdin, "PRAGMA wal_checkpoint(RESTART);\n")
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		cmd.Wait()
		exited.Store(true)
	}()
	for !exited.Load() {
		c.poll()
		time.Sleep(2 * time.Millisecond)
	}
	if !cmd.ProcessState.Success() {
		t.Fatalf("sqlite3 shell: %v: %s", cmd.ProcessState, out)
	}
	c.drain()
	c.im.matchSource(openApp(t, path))
	t.Logf("external writer, %d txns: %d captured by Poll, %d new bases, %d restarts/resets followed",
		n, c.txns, c.rebases, c.tr.Stats().Continued)
	t.Logf("new bases by reason: %v", c.reasons)
}

// limitedBuffer keeps the first few KB a child process writes.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 4096 {
		l.b = append(l.b, p[:min(len(p), 4096-len(l.b))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// TestBaseKeepsReadLock checks, from another process, that Base really holds its read
// mark while it copies: a TRUNCATE checkpoint by the sqlite3 shell must find the WAL busy.
// Opening and closing any file SQLite locks, inside Base, would silently drop that lock.
func TestBaseKeepsReadLock(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("the sqlite3 shell is missing: install Debian's sqlite3 (`make test` does)")
	}
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, "wal_autocheckpoint(0)")
	rng := rand.New(rand.NewPCG(29, 30))
	for i := range 10 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	app.Close()
	// The shell keeps the database open (so the WAL stays) and adds frames the copy
	// must protect.
	cmd := exec.Command(shell, path)
	stdin, _ := cmd.StdinPipe()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	io.WriteString(stdin, ".timeout 0\nPRAGMA wal_autocheckpoint=0;\nINSERT INTO items(v) VALUES(randomblob(5000));\nSELECT 'ready';\n")
	waitFor(t, out, "ready\n")
	var result string
	defer func() { baseHeld = nil }()
	baseHeld = func() {
		io.WriteString(stdin, "PRAGMA wal_checkpoint(TRUNCATE);\nSELECT 'done';\n")
		waitFor(t, out, "done\n")
		result = out.String()
	}
	if _, err := NewTracker(path).Base(); err != nil {
		t.Fatal(err)
	}
	t.Logf("shell output: %q", result)
	// The checkpoint's first column is 1 when it could not finish because of readers.
	if !strings.Contains(result, "ready\n1|") {
		t.Fatalf("a TRUNCATE checkpoint ran to the end while Base held its read transaction: %q", result)
	}
}

// syncBuffer collects a child's output for polling from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

func waitFor(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %q, got %q", s, out.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
