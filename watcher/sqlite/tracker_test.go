package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestCaptureUnderLoad runs an application writer against a capture loop polling every
// few milliseconds and checks the image at many intermediate points and at the end.
func TestCaptureUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		txns    int
		pragmas []string
	}{
		{"default-autocheckpoint", 1500, nil},
		{"autocheckpoint-100", 600, []string{"wal_autocheckpoint(100)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.db")
			app := openApp(t, path, tc.pragmas...)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 50 {
				if err := writeTxn(app, rng, i); err != nil {
					t.Fatal(err)
				}
			}
			c := newCapture(t, path)
			var done atomic.Bool
			werr := make(chan error, 1)
			go func() {
				defer done.Store(true)
				for i := 50; i < 50+tc.txns; i++ {
					if err := writeTxn(app, rng, i); err != nil {
						werr <- err
						return
					}
					if i%7 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
				werr <- nil
			}()
			for !done.Load() {
				c.poll()
				time.Sleep(2 * time.Millisecond)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			c.drain()
			c.im.matchSource(app)
			st := c.tr.Stats()
			t.Logf("%d writer txns: %d polls captured %d txns; %d new bases after gaps; %d WAL restarts/resets followed without a base; %d image checks",
				tc.txns, c.polls, c.txns, c.rebases, st.Continued, c.im.checks)
			t.Logf("new bases by reason: %v", c.reasons)
			if c.txns == 0 {
				t.Fatal("no transaction was captured incrementally")
			}
		})
	}
}

// TestCheckpointBetweenPolls runs each checkpoint mode between polls, once after the
// capture had read every frame (continuity is provable and must be kept) and once with
// commits the capture never saw (it must ask for a base, never continue).
func TestCheckpointBetweenPolls(t *testing.T) {
	for _, mode := range []string{"PASSIVE", "FULL", "RESTART", "TRUNCATE"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.db")
			app := openApp(t, path)
			rng := rand.New(rand.NewPCG(3, 4))
			seq := 0
			write := func(n int) {
				for range n {
					if err := writeTxn(app, rng, seq); err != nil {
						t.Fatal(err)
					}
					seq++
				}
			}
			write(20)
			c := newCapture(t, path)
			c.checkEvery = 0

			// All frames read, then a checkpoint, then new commits.
			write(5)
			if n := c.poll(); n != 5 {
				t.Fatalf("poll got %d txns, want 5", n)
			}
			mustExec(t, app, "PRAGMA wal_checkpoint("+mode+")")
			if n := c.poll(); n != 0 || c.rebases != 0 {
				t.Fatalf("after checkpoint: %d txns, %d bases", n, c.rebases)
			}
			write(3)
			if n := c.poll(); n != 3 || c.rebases != 0 {
				t.Fatalf("after checkpoint and 3 commits: %d txns, %d bases; want 3, 0", n, c.rebases)
			}
			c.im.matchSource(app)

			// Commits never polled, then a checkpoint, then new commits.
			write(4)
			mustExec(t, app, "PRAGMA wal_checkpoint("+mode+")")
			write(2)
			c.poll()
			if c.rebases != 1 {
				t.Fatalf("unread commits before a %s checkpoint: %d new bases, want 1", mode, c.rebases)
			}
			c.drain()
			c.im.matchSource(app)
			t.Logf("%s: continued %d times, %d new bases", mode, c.tr.Stats().Continued, c.rebases)
		})
	}
}

// TestTruncateWithoutNewWrites covers a reset WAL with nothing after it: whether the
// capture had read everything decides between continuing and a new base.
func TestTruncateWithoutNewWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 10 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	c := newCapture(t, path)
	mustExec(t, app, "PRAGMA wal_checkpoint(TRUNCATE)")
	for range 3 {
		if n := c.poll(); n != 0 || c.rebases != 0 {
			t.Fatalf("poll after truncate of read frames: %d txns, %d bases", n, c.rebases)
		}
	}
	if err := writeTxn(app, rng, 10); err != nil {
		t.Fatal(err)
	}
	mustExec(t, app, "PRAGMA wal_checkpoint(TRUNCATE)")
	c.poll()
	if c.rebases != 1 {
		t.Fatalf("truncate after an unread commit: %d bases, want 1", c.rebases)
	}
	c.im.matchSource(app)
}

// TestVacuum checks that a VACUUM (one large transaction through the WAL that usually
// shrinks the file) is captured or re-based correctly.
func TestVacuum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 150 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, app, `DELETE FROM items WHERE id % 3 = 0`)
	mustExec(t, app, `UPDATE meta SET v=(SELECT count(*) FROM items) WHERE k='count'`)
	mustExec(t, app, `UPDATE meta SET v=(SELECT coalesce(sum(length(v)),0) FROM items) WHERE k='size'`)
	c := newCapture(t, path)
	mustExec(t, app, `VACUUM`)
	c.drain()
	c.im.matchSource(app)
	for i := range 20 {
		if err := writeTxn(app, rng, 200+i); err != nil {
			t.Fatal(err)
		}
	}
	c.drain()
	c.im.matchSource(app)
	t.Logf("vacuum: %d txns captured, %d new bases, %d continued", c.txns, c.rebases, c.tr.Stats().Continued)
}

// TestPageSizeChange changes the page size the only way SQLite allows for a WAL database:
// back to a rollback journal, VACUUM with the new size, then WAL again.
func TestPageSizeChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path)
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 30 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	c := newCapture(t, path)
	mustExec(t, app, `PRAGMA journal_mode=DELETE`)
	if _, err := c.tr.Poll(); !errors.Is(err, ErrNotWAL) || !errors.Is(err, ErrNeedBase) {
		t.Fatalf("poll of a rollback-journal database: %v, want ErrNotWAL and ErrNeedBase", err)
	}
	if _, err := c.tr.Base(); !errors.Is(err, ErrNotWAL) {
		t.Fatalf("base of a rollback-journal database: %v, want ErrNotWAL", err)
	}
	mustExec(t, app, `PRAGMA page_size=8192`)
	mustExec(t, app, `VACUUM`)
	mustExec(t, app, `PRAGMA journal_mode=WAL`)
	for i := range 10 {
		if err := writeTxn(app, rng, 30+i); err != nil {
			t.Fatal(err)
		}
	}
	c.base()
	if c.tr.pageSize != 8192 {
		t.Fatalf("page size after change: %d", c.tr.pageSize)
	}
	c.im.matchSource(app)
	for i := range 10 {
		if err := writeTxn(app, rng, 40+i); err != nil {
			t.Fatal(err)
		}
	}
	c.drain()
	c.im.matchSource(app)
}

// TestRecreated deletes the database and creates another at the same path.
func TestRecreated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	app := openApp(t, path)
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 30 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	c := newCapture(t, path)
	app.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	if _, err := c.tr.Poll(); !errors.Is(err, ErrNeedBase) {
		t.Fatalf("poll of a deleted database: %v", err)
	}
	app = openApp(t, path)
	for i := range 5 {
		if err := writeTxn(app, rng, 100+i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.tr.Poll(); !errors.Is(err, ErrNeedBase) {
		t.Fatalf("poll before a new base: %v", err)
	}
	c.base()
	c.im.matchSource(app)
	// Replaced by rename, as VACUUM INTO and many tools do.
	other := filepath.Join(dir, "other.db")
	o := openApp(t, other)
	if err := writeTxn(o, rng, 500); err != nil {
		t.Fatal(err)
	}
	mustExec(t, o, `PRAGMA wal_checkpoint(TRUNCATE)`)
	o.Close()
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.tr.Poll(); !errors.Is(err, ErrNeedBase) {
		t.Fatalf("poll of a replaced database: %v", err)
	}
}

// TestCorruptWAL flips a byte in a frame of a WAL we control: Poll must return the
// transactions before that frame, exactly, and nothing from it on.
func TestCorruptWAL(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	app := openApp(t, src, "wal_autocheckpoint(0)")
	rng := rand.New(rand.NewPCG(13, 14))
	for i := range 5 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, app, `PRAGMA wal_checkpoint(TRUNCATE)`)
	for i := range 12 {
		if err := writeTxn(app, rng, 5+i); err != nil {
			t.Fatal(err)
		}
	}
	wal, err := os.ReadFile(src + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	h, ok := parseWALHeader(wal)
	if !ok {
		t.Fatal("source WAL header invalid")
	}
	// Find the commit frames of the source WAL.
	fs := int(frameSize(h.pageSize))
	var commits []int // frame count at each commit
	for n := 1; walHeaderSize+n*fs <= len(wal); n++ {
		fr := wal[walHeaderSize+(n-1)*fs:]
		if fr[4]|fr[5]|fr[6]|fr[7] != 0 {
			commits = append(commits, n)
		}
	}
	if len(commits) < 10 {
		t.Fatalf("only %d commits in the WAL", len(commits))
	}

	dir := t.TempDir()
	db := filepath.Join(dir, "copy.db")
	if err := copyFile(src, db); err != nil {
		t.Fatal(err)
	}
	// The copy starts with the first 4 transactions.
	cut := walHeaderSize + commits[3]*fs
	if err := os.WriteFile(db+"-wal", wal[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(db)
	if _, err := tr.Base(); err != nil {
		t.Fatal(err)
	}
	// Then the rest arrives with one byte flipped in the first frame of the 8th
	// transaction.
	bad := append([]byte(nil), wal...)
	flip := walHeaderSize + commits[6]*fs + walFrameHeaderSize + 100
	bad[flip] ^= 0x40
	f, err := os.OpenFile(db+"-wal", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bad[cut:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	txns, err := tr.Poll()
	if err != nil {
		t.Fatal(err)
	}
	if len(txns) != 3 {
		t.Fatalf("poll returned %d txns, want the 3 before the corrupt frame", len(txns))
	}
	// Every page returned is the image of the frame that wrote it last in its transaction.
	first := commits[3] + 1
	for i, tx := range txns {
		last := commits[4+i]
		want := map[uint32][]byte{}
		for n := first; n <= last; n++ {
			fr := wal[walHeaderSize+(n-1)*fs:]
			no := uint32(fr[0])<<24 | uint32(fr[1])<<16 | uint32(fr[2])<<8 | uint32(fr[3])
			want[no] = fr[walFrameHeaderSize:fs]
		}
		if len(tx.Pages) != len(want) {
			t.Fatalf("txn %d: %d pages, want %d", i, len(tx.Pages), len(want))
		}
		for _, p := range tx.Pages {
			if string(p.Data) != string(want[p.No]) {
				t.Fatalf("txn %d: page %d differs from its frame", i, p.No)
			}
		}
		first = last + 1
	}
	for range 3 {
		if txns, err := tr.Poll(); err != nil || len(txns) != 0 {
			t.Fatalf("poll past the corrupt frame: %d txns, %v", len(txns), err)
		}
	}
}

// TestNotDatabase covers files that are not databases and rollback-journal databases.
func TestNotDatabase(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	text := filepath.Join(dir, "notes.db")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(text, []byte("these are not the pages you are looking for, not at all....................................................................."), 0o644)
	for _, p := range []string{empty, text} {
		if _, err := NewTracker(p).Base(); !errors.Is(err, ErrNotDatabase) {
			t.Errorf("base of %s: %v, want ErrNotDatabase", filepath.Base(p), err)
		}
	}
	if _, err := NewTracker(filepath.Join(dir, "missing.db")).Base(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("base of a missing file: %v", err)
	}
	if _, err := NewTracker(text).Poll(); !errors.Is(err, ErrNeedBase) {
		t.Errorf("poll before base: %v", err)
	}
	rb := filepath.Join(dir, "rollback.db")
	db, err := sql.Open("sqlite", "file:"+rb)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `CREATE TABLE t(x)`)
	db.Close()
	if _, err := NewTracker(rb).Base(); !errors.Is(err, ErrNotWAL) {
		t.Errorf("base of a rollback-journal database: %v, want ErrNotWAL", err)
	}
	if IsDatabase(nil) || IsDatabase([]byte("SQLite format 3")) || !IsDatabase([]byte("SQLite format 3\x00....")) {
		t.Error("IsDatabase")
	}
}

// TestBaseLeavesDatabaseAlone takes a base of a database no one else has open and checks
// that the database file and the WAL are untouched: no checkpoint, no WAL removal.
func TestBaseLeavesDatabaseAlone(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	app := openApp(t, src, "wal_autocheckpoint(0)")
	rng := rand.New(rand.NewPCG(15, 16))
	for i := range 30 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "copy.db")
	for _, sfx := range []string{"", "-wal"} {
		if err := copyFile(src+sfx, db+sfx); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]string{}
	for _, sfx := range []string{"", "-wal"} {
		b, _ := os.ReadFile(db + sfx)
		before[sfx] = string(b)
	}
	c := newCapture(t, db)
	for _, sfx := range []string{"", "-wal"} {
		b, err := os.ReadFile(db + sfx)
		if err != nil || string(b) != before[sfx] {
			t.Fatalf("base changed %q (%v)", "copy.db"+sfx, err)
		}
	}
	c.im.matchSource(app)
}

// TestBaseHoldTime measures how long Base holds its read transaction on a 50 MB
// database with frames in the WAL.
func TestBaseHoldTime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 50 MB database")
	}
	path := filepath.Join(t.TempDir(), "big.db")
	app := openApp(t, path)
	mustExec(t, app, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<12500)
		INSERT INTO items(v) SELECT randomblob(4000) FROM c`)
	mustExec(t, app, `PRAGMA wal_checkpoint(TRUNCATE)`)
	rng := rand.New(rand.NewPCG(17, 18))
	for i := range 20 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	c := newCapture(t, path)
	fi, _ := os.Stat(path)
	t.Logf("Base of a %.1f MB database held its read transaction for %v", float64(fi.Size())/1e6, c.tr.Stats().LastBaseHold)
	c.im.matchSource(app)
}

// TestCommitLatency measures the writer's commit latency with and without a capture
// polling every 10 ms.
func TestCommitLatency(t *testing.T) {
	measure := func(poll bool) time.Duration {
		path := filepath.Join(t.TempDir(), "app.db")
		app := openApp(t, path)
		rng := rand.New(rand.NewPCG(19, 20))
		for i := range 20 {
			if err := writeTxn(app, rng, i); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		stopped := make(chan struct{})
		var pollErr error
		if poll {
			// What the daemon does: poll, and take a new base when continuity is lost.
			tr := NewTracker(path)
			if _, err := tr.Base(); err != nil {
				t.Fatal(err)
			}
			go func() {
				defer close(stopped)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						_, err := tr.Poll()
						if errors.Is(err, ErrNeedBase) {
							_, err = tr.Base()
						}
						if err != nil && pollErr == nil {
							pollErr = err
						}
					}
				}
			}()
		} else {
			close(stopped)
		}
		var lat []time.Duration
		for i := range 1000 {
			start := time.Now()
			if _, err := app.Exec(`INSERT INTO items(v) VALUES(?)`, fmt.Appendf(nil, "row %d %x", i, rng.Uint64())); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			time.Sleep(time.Millisecond)
		}
		close(stop)
		<-stopped
		if pollErr != nil {
			t.Fatalf("poll: %v", pollErr)
		}
		return percentile(lat, 0.99)
	}
	without := measure(false)
	with := measure(true)
	t.Logf("writer commit latency p99: %v without capture, %v with Poll every 10ms", without, with)
}
