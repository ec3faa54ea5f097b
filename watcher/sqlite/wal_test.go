package sqlite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBigEndianWAL rewrites a WAL with big-endian checksums, as a big-endian host writes
// it, and checks that it yields the same transactions.
func TestBigEndianWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, "wal_autocheckpoint(0)")
	rng := rand.New(rand.NewPCG(21, 22))
	for i := range 10 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	le, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	h, ok := parseWALHeader(le)
	if !ok || h.bigEndian {
		t.Fatal("expected a valid little-endian WAL")
	}
	fs := int(frameSize(h.pageSize))
	n := (len(le) - walHeaderSize) / fs
	be := append([]byte(nil), le[:walHeaderSize+n*fs]...)
	binary.BigEndian.PutUint32(be[0:], walMagicBE)
	s0, s1 := walChecksum(true, be[:24], 0, 0)
	binary.BigEndian.PutUint32(be[24:], s0)
	binary.BigEndian.PutUint32(be[28:], s1)
	for i := range n {
		fr := be[walHeaderSize+i*fs : walHeaderSize+(i+1)*fs]
		s0, s1 = walChecksum(true, fr[:8], s0, s1)
		s0, s1 = walChecksum(true, fr[walFrameHeaderSize:], s0, s1)
		binary.BigEndian.PutUint32(fr[16:], s0)
		binary.BigEndian.PutUint32(fr[20:], s1)
	}
	scan := func(b []byte) []Txn {
		p := filepath.Join(t.TempDir(), "wal")
		os.WriteFile(p, b, 0o644)
		f, wh, size, ok, err := readWALHeader(p)
		if err != nil || !ok {
			t.Fatalf("header: %v %v", ok, err)
		}
		defer f.Close()
		var txns []Txn
		if _, err := scanWAL(f, wh, walPos{cksum: wh.cksum}, size, func(tx Txn) error {
			txns = append(txns, tx)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return txns
	}
	a, b := scan(le), scan(be)
	if len(a) < 10 || len(a) != len(b) {
		t.Fatalf("%d little-endian txns, %d big-endian", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(EncodeTxn(a[i]), EncodeTxn(b[i])) {
			t.Fatalf("txn %d differs", i)
		}
	}
}

// TestRestartAfterBackfillRefused: the WAL restarted after frames the capture had read,
// but a checkpoint has since copied frames of the new generation into the database file,
// so the file no longer shows the state at the restart. Continuity is not provable.
func TestRestartAfterBackfillRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path)
	rng := rand.New(rand.NewPCG(23, 24))
	seq := 0
	write := func(n int) {
		for range n {
			if err := writeTxn(app, rng, seq); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	write(10)
	c := newCapture(t, path)
	write(3)
	c.poll()
	mustExec(t, app, "PRAGMA wal_checkpoint(PASSIVE)")
	write(3)
	mustExec(t, app, "PRAGMA wal_checkpoint(PASSIVE)")
	c.poll()
	if c.rebases != 1 || c.tr.Stats().Continued != 0 {
		t.Fatalf("%d new bases, %d continued; want 1, 0", c.rebases, c.tr.Stats().Continued)
	}
	c.im.matchSource(app)
}

// TestNoWALStamp follows a database whose WAL is gone (its application closed it): polls
// then trust the file's stamp instead of reading it again, until the file changes.
func TestNoWALStamp(t *testing.T) {
	defer func(d time.Duration) { stampSettle = d }(stampSettle)
	stampSettle = 0
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path)
	rng := rand.New(rand.NewPCG(25, 26))
	for i := range 10 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	app.Close()
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WAL still there after the last connection closed: %v", err)
	}
	c := newCapture(t, path)
	time.Sleep(20 * time.Millisecond)
	c.poll()
	before := c.tr.compares
	for range 5 {
		c.poll()
	}
	if c.tr.compares != before || c.rebases != 0 {
		t.Fatalf("unchanged file compared %d more times, %d bases", c.tr.compares-before, c.rebases)
	}
	app = openApp(t, path)
	if err := writeTxn(app, rng, 10); err != nil {
		t.Fatal(err)
	}
	app.Close()
	c.poll()
	if c.rebases != 1 {
		t.Fatalf("changed file: %d new bases, want 1", c.rebases)
	}
	c.im.matchSource(openApp(t, path))
}

// TestCorruptLiveWAL damages a frame of the WAL an application is using: SQLite keeps
// counting it as committed, so Poll returns the transactions before it, then reports
// ErrCorruptWAL instead of returning nothing forever, and Base refuses too.
func TestCorruptLiveWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, "wal_autocheckpoint(0)")
	rng := rand.New(rand.NewPCG(27, 28))
	for i := range 5 {
		if err := writeTxn(app, rng, i); err != nil {
			t.Fatal(err)
		}
	}
	c := newCapture(t, path)
	start := c.tr.pos.frame
	for i := range 6 {
		if err := writeTxn(app, rng, 5+i); err != nil {
			t.Fatal(err)
		}
	}
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	fs := int(frameSize(c.tr.pageSize))
	var commits []int
	for n := int(start) + 1; walHeaderSize+n*fs <= len(wal); n++ {
		if binary.BigEndian.Uint32(wal[walHeaderSize+(n-1)*fs+4:]) != 0 {
			commits = append(commits, n)
		}
	}
	f, err := os.OpenFile(path+"-wal", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(walHeaderSize + commits[1]*fs + walFrameHeaderSize + 10)
	if _, err := f.WriteAt([]byte{wal[off] ^ 0xff}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n := c.poll(); n != 2 {
		t.Fatalf("poll returned %d txns, want the 2 before the damaged frame", n)
	}
	c.im.check()
	if _, err := c.tr.Poll(); !errors.Is(err, ErrCorruptWAL) {
		t.Fatalf("poll at the damaged frame: %v, want ErrCorruptWAL", err)
	}
	if _, err := NewTracker(path).Base(); !errors.Is(err, ErrCorruptWAL) {
		t.Fatalf("base of a damaged WAL: %v, want ErrCorruptWAL", err)
	}
}
