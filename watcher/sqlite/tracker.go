// Package sqlite captures the committed transactions of a SQLite database in WAL mode, as
// page images read from its -wal file, and applies them to a restore image.
//
// A Tracker follows one database: Base takes a consistent full image under a short SQLite
// read transaction, then Poll returns each transaction committed since, read from the WAL
// without any lock. Whenever Poll cannot prove that the transactions it would return follow
// on exactly from the last captured state, it returns ErrNeedBase instead, and the caller
// takes a new base: the captured history may then be coarser for that moment, never wrong.
//
// The process using this package must not hold SQLite connections of its own to a watched
// database outside Base: Poll opens and closes the database and -shm files, and closing any
// descriptor of a file drops every POSIX record lock the process holds on it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver Base reads through
)

var (
	// ErrNeedBase reports that Poll cannot prove continuity with the last captured state;
	// the caller must take a new base.
	ErrNeedBase = errors.New("sqlite: cannot prove continuity with the last capture; a new base is needed")
	// ErrNotDatabase reports a file that lacks the "SQLite format 3\x00" header.
	ErrNotDatabase = errors.New("sqlite: not a SQLite database")
	// ErrNotWAL reports a database in rollback-journal mode (header bytes 18/19 are 1),
	// whose changes never go through a WAL; it must be copied whole instead.
	ErrNotWAL = errors.New("sqlite: database is not in WAL mode")
	// ErrCorruptWAL reports WAL frames that SQLite counts as committed but that fail
	// validation here (salts or checksums): they are never returned.
	ErrCorruptWAL = errors.New("sqlite: committed WAL frames fail validation")
)

// Stats counts what a Tracker did, for metrics and test logs.
type Stats struct {
	Bases        int           // successful Base calls
	LastBaseHold time.Duration // how long the last Base held its read transaction
	Continued    int           // WAL restarts or resets proven continuous and followed without a base
	Gaps         int           // Poll calls that returned ErrNeedBase after a base
}

// Tracker follows one database's WAL. Not safe for concurrent use.
type Tracker struct {
	dbPath, walPath, shmPath string
	seed                     maphash.Seed

	based    bool
	dbFile   os.FileInfo // identity of the database file the base was read from
	pageSize int
	reserved int // reserved bytes at the end of each page (header byte 20)
	dbPages  uint32
	hashes   []uint64 // hash of each page of the captured state; page n at index n-1
	zeroHash uint64   // hash of an all-zero page

	hasGen bool      // false: no valid WAL header at the last look (WAL absent or reset)
	gen    walHeader // the WAL generation followed, when hasGen
	pos    walPos    // last consumed commit frame of gen

	// verified is the stamp of the database file when it was last proven equal to the
	// captured state while the WAL was empty; while it holds, no need to read it again.
	verified fileStamp
	compares int // full comparisons of the database file, for tests

	stats Stats
}

// NewTracker returns a Tracker for the database at dbPath. It touches no file until Base.
func NewTracker(dbPath string) *Tracker {
	return &Tracker{
		dbPath:  dbPath,
		walPath: dbPath + "-wal",
		shmPath: dbPath + "-shm",
		seed:    maphash.MakeSeed(),
	}
}

// Reserved returns the reserved bytes per page of the database as of the last Base,
// which RedactTxn needs for the transactions Poll returns.
func (t *Tracker) Reserved() int { return t.reserved }

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats { return t.stats }

// needBase wraps ErrNeedBase with the reason continuity was refused.
func needBase(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNeedBase}, args...)...)
}

// readOnlyDSN is the URI Base opens the database with: read-only, so nothing of ours can
// write into the user's database, checkpoint it or change its journal mode.
func readOnlyDSN(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?mode=ro&_pragma=busy_timeout(10000)"
}

// Base returns a consistent full image of the database as of the newest committed
// transaction, as a Txn whose Pages are every page 1..DBPages, and positions the tracker
// right after that transaction in the WAL, so the next Poll returns only later ones. It
// returns ErrNotDatabase for a file that is not a database and ErrNotWAL for a database in
// rollback-journal mode.
//
// It opens the database read-only with SQLite and holds a read transaction only while it
// copies the database file and the WAL: the read mark that transaction takes stops any
// checkpoint from overwriting pages of the database file this snapshot needs and stops the
// WAL from restarting under it. The copy is plain file reads, so the hold lasts about as
// long as reading the database once from the page cache: TestBaseHoldTime logs it for a
// 51 MB database with frames in the WAL: 26 to 90 ms over several runs on a 2-CPU VM.
func (t *Tracker) Base() (Txn, error) {
	t.based = false
	// The database and -shm files stay open until the SQLite connection is closed (the
	// deferred calls run in reverse): closing a descriptor of either while SQLite holds
	// its locks on them would release those locks, POSIX record locks being per process
	// and per file, and with them the read mark that keeps the copy consistent.
	dbf, err := os.Open(t.dbPath)
	if err != nil {
		return Txn{}, err
	}
	defer dbf.Close()
	shmf, err := os.Open(t.shmPath)
	if err == nil {
		defer shmf.Close()
	} else {
		shmf = nil // created by SQLite below, or not used: the check that needs it is skipped
	}
	fi, err := dbf.Stat()
	if err != nil {
		return Txn{}, err
	}
	h, err := readDBHeader(dbf)
	if err != nil {
		return Txn{}, err
	}
	if !h.wal() {
		return Txn{}, ErrNotWAL
	}
	var snap snapshot
	hold, err := withReadTxn(t.dbPath, func() error {
		var err error
		snap, err = t.copySnapshot(dbf, shmf)
		if err == nil && baseHeld != nil {
			baseHeld()
		}
		return err
	})
	if err != nil {
		return Txn{}, err
	}
	t.stats.LastBaseHold = hold
	t.stats.Bases++
	return t.install(fi, snap), nil
}

// baseHeld, when set by a test, runs inside Base's read transaction after the copy.
var baseHeld func()

// withReadTxn runs fn inside a read transaction on a read-only connection of its own and
// returns how long the transaction was held. The one read is what makes SQLite take its
// WAL read mark; BEGIN alone takes no lock.
func withReadTxn(path string, fn func() error) (time.Duration, error) {
	db, err := sql.Open("sqlite", readOnlyDSN(path))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return 0, fmt.Errorf("sqlite base: begin: %w", err)
	}
	var n int64
	err = conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
	if err != nil {
		err = fmt.Errorf("sqlite base: read: %w", err)
	} else {
		err = fn()
	}
	// Not ctx: its deadline bounds getting the lock, not the copy, and the read
	// transaction must end however long the copy took.
	_, rerr := conn.ExecContext(context.Background(), "ROLLBACK")
	hold := time.Since(start)
	if err == nil && rerr != nil {
		err = fmt.Errorf("sqlite base: end read transaction: %w", rerr)
	}
	return hold, err
}

// snapshot is a full database image with the WAL position it corresponds to.
type snapshot struct {
	pageSize int
	dbPages  uint32
	data     []byte // dbPages*pageSize bytes
	hasGen   bool
	gen      walHeader
	pos      walPos
}

// copySnapshot copies the database file and overlays the committed WAL frames. It must run
// under a read transaction. It retries when the WAL restarted during the copy (possible
// when the read mark lets SQLite read the database file alone) or disagreed with SQLite's
// wal-index.
func (t *Tracker) copySnapshot(dbf, shmf *os.File) (snapshot, error) {
	var why error
	for range 3 {
		s, err := t.copyOnce(dbf, shmf)
		if !errors.Is(err, errRetry) {
			return s, err
		}
		why = err
	}
	return snapshot{}, fmt.Errorf("sqlite base: no stable copy: %w", why)
}

// errRetry marks a copy attempt that met a WAL changing under it.
var errRetry = errors.New("retry")

// copyOnce makes one attempt of copySnapshot.
//
// Why the result is consistent: if SQLite gave the read transaction a mark in the WAL,
// checkpoints copy no frame past that mark into the database file and the WAL cannot
// restart, so every frame up to the mark is still in the WAL and overlaying all committed
// frames corrects any page a concurrent checkpoint is rewriting. If SQLite read the
// database file alone (the WAL was fully checkpointed), no checkpoint can write the file at
// all while we hold it; the WAL may restart, and then its new frames apply on top of
// exactly that file, or the generation changed mid-read and we retry.
func (t *Tracker) copyOnce(dbf, shmf *os.File) (snapshot, error) {
	h, err := readDBHeader(dbf)
	if err != nil {
		return snapshot{}, err
	}
	if !h.wal() {
		return snapshot{}, ErrNotWAL
	}
	fi, err := dbf.Stat()
	if err != nil {
		return snapshot{}, err
	}
	// What SQLite's wal-index says before the WAL is read: every frame it counts as
	// committed then must be found valid below (checked at the end).
	var shm shmInfo
	var shmOK bool
	if shmf != nil {
		if shm, shmOK, err = readShmFile(shmf); err != nil {
			return snapshot{}, err
		}
	}
	s := snapshot{pageSize: h.pageSize}
	overlay := map[uint32][]byte{}
	var commitSize uint32
	wf, wh, wsize, ok, err := readWALHeader(t.walPath)
	if err != nil {
		return snapshot{}, err
	}
	if wf != nil {
		defer wf.Close()
	}
	if ok {
		if wh.pageSize != h.pageSize {
			return snapshot{}, fmt.Errorf("%w: WAL page size %d differs from the database's %d", errRetry, wh.pageSize, h.pageSize)
		}
		s.pos, err = scanWAL(wf, wh, walPos{cksum: wh.cksum}, wsize, func(tx Txn) error {
			for _, p := range tx.Pages {
				overlay[p.No] = p.Data
			}
			commitSize = tx.DBPages
			return nil
		})
		if err != nil {
			return snapshot{}, err
		}
		f2, wh2, _, ok2, err := readWALHeader(t.walPath)
		if err != nil {
			return snapshot{}, err
		}
		if f2 != nil {
			f2.Close()
		}
		if !ok2 || !wh2.sameGeneration(wh) {
			return snapshot{}, fmt.Errorf("%w: the WAL restarted during the copy", errRetry)
		}
		s.hasGen, s.gen = true, wh
	}
	if shmOK {
		// A WAL damaged in a way SQLite does not see (it keeps using its index) would
		// make the copy miss committed data: refuse rather than ship it.
		if s.hasGen && shm.salt == s.gen.salt && shm.mxFrame > s.pos.frame {
			return snapshot{}, fmt.Errorf("%w: %w: SQLite counts %d, only %d validate", errRetry, ErrCorruptWAL, shm.mxFrame, s.pos.frame)
		}
		if !s.hasGen && shm.mxFrame > shm.nBackfill {
			return snapshot{}, fmt.Errorf("%w: %w: the WAL header does not validate but SQLite reads frames from it", errRetry, ErrCorruptWAL)
		}
	}
	ps := int64(h.pageSize)
	switch {
	case commitSize > 0:
		s.dbPages = commitSize
	case h.sizeValid():
		s.dbPages = h.sizeInHeader
	default:
		s.dbPages = uint32(fi.Size() / ps)
	}
	if s.dbPages == 0 {
		return snapshot{}, ErrNotDatabase
	}
	// Pages past the end of the file and absent from the WAL read as zeros, as they do
	// for SQLite.
	s.data = make([]byte, int64(s.dbPages)*ps)
	if _, err := dbf.ReadAt(s.data[:min(int64(len(s.data)), fi.Size())], 0); err != nil && !errors.Is(err, io.EOF) {
		return snapshot{}, err
	}
	for no, d := range overlay {
		if no <= s.dbPages {
			copy(s.data[int64(no-1)*ps:], d)
		}
	}
	return s, nil
}

// install makes a snapshot the captured state and returns it as a Txn of every page.
func (t *Tracker) install(fi os.FileInfo, s snapshot) Txn {
	t.dbFile = fi
	t.pageSize = s.pageSize
	t.reserved = int(s.data[20])
	t.dbPages = s.dbPages
	t.zeroHash = maphash.Bytes(t.seed, make([]byte, s.pageSize))
	t.hashes = make([]uint64, s.dbPages)
	pages := make([]Page, s.dbPages)
	for i := range pages {
		d := s.data[i*s.pageSize : (i+1)*s.pageSize : (i+1)*s.pageSize]
		pages[i] = Page{No: uint32(i + 1), Data: d}
		t.hashes[i] = maphash.Bytes(t.seed, d)
	}
	t.hasGen, t.gen, t.pos = s.hasGen, s.gen, s.pos
	t.verified = fileStamp{}
	t.based = true
	return Txn{PageSize: s.pageSize, DBPages: s.dbPages, Pages: pages}
}

// Poll returns the transactions committed in the WAL since the last Base or Poll, each
// complete (frames up to and including a commit frame, salts and checksums valid), never a
// partial one. It reads the -wal file directly, without any SQLite lock.
//
// It returns an error wrapping ErrNeedBase, and forgets its position, whenever it cannot
// prove continuity: no base yet; the database file replaced, deleted, no longer a database
// (also wrapping ErrNotDatabase) or no longer in WAL mode (also wrapping ErrNotWAL); the
// page size changed; the WAL shrank or no longer holds the frames last read; or the WAL was
// restarted or reset and Poll cannot prove that nothing but the frames it had already
// returned went into the database file (see proveRestart).
//
// It returns ErrCorruptWAL, without losing its position, when frames SQLite counts as
// committed fail validation; the transactions before them are returned first.
func (t *Tracker) Poll() ([]Txn, error) {
	if !t.based {
		return nil, needBase("no base taken")
	}
	txns, err := t.poll()
	if errors.Is(err, ErrNeedBase) {
		t.based = false
		t.stats.Gaps++
		return nil, err
	}
	return txns, err
}

func (t *Tracker) poll() ([]Txn, error) {
	dbf, err := os.Open(t.dbPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, needBase("database file is gone: %w", err)
	}
	if err != nil {
		return nil, err
	}
	defer dbf.Close()
	fi, err := dbf.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(fi, t.dbFile) {
		return nil, needBase("database file was replaced")
	}
	h, err := readDBHeader(dbf)
	if errors.Is(err, ErrNotDatabase) {
		return nil, fmt.Errorf("%w: %w", ErrNeedBase, err)
	}
	if err != nil {
		return nil, err
	}
	if !h.wal() {
		return nil, fmt.Errorf("%w: %w", ErrNeedBase, ErrNotWAL)
	}
	if h.pageSize != t.pageSize {
		return nil, needBase("page size changed from %d to %d", t.pageSize, h.pageSize)
	}
	// Read before the WAL, the wal-index tells how many frames SQLite had committed then;
	// all of them must validate below, or the WAL is damaged.
	shm, shmOK, err := readShm(t.shmPath)
	if err != nil {
		return nil, err
	}
	corrupt := func(pos walPos, wh walHeader) error {
		if !shmOK || shm.salt != wh.salt || shm.mxFrame <= pos.frame {
			return nil
		}
		// Unless a restart rewrote the header (which SQLite does before overwriting any
		// frame), the frames read were all of this generation: the damage is real.
		f, wh2, _, ok, err := readWALHeader(t.walPath)
		if f != nil {
			f.Close()
		}
		if err != nil || !ok || !wh2.sameGeneration(wh) {
			return err
		}
		return fmt.Errorf("%w: SQLite counts %d frames in %s, only %d validate", ErrCorruptWAL, shm.mxFrame, t.walPath, pos.frame)
	}
	wf, wh, wsize, ok, err := readWALHeader(t.walPath)
	if err != nil {
		return nil, err
	}
	if wf != nil {
		defer wf.Close()
	}
	if !ok {
		return nil, t.checkReset(dbf)
	}
	if wh.pageSize != t.pageSize {
		return nil, needBase("WAL page size %d differs from %d", wh.pageSize, t.pageSize)
	}
	var txns []Txn
	collect := func(tx Txn) error { txns = append(txns, tx); return nil }
	if t.hasGen && wh.sameGeneration(t.gen) {
		// Same generation: the frames up to our position cannot have been overwritten,
		// since SQLite rewrites committed frames only after restarting the WAL, which
		// changes the salts. Check that they are still there all the same. Frames after
		// it that still validate are later commits of this generation, even when the
		// wal-index has already been restarted and is about to overwrite them.
		if wsize < frameOffset(t.pos.frame+1, t.pageSize) {
			return nil, needBase("WAL shrank below the last frame read")
		}
		if t.pos.frame > 0 {
			ok, err := frameAt(wf, wh, t.pos.frame, t.pos.cksum)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, needBase("WAL no longer holds the last frame read")
			}
		}
		pos, err := scanWAL(wf, wh, t.pos, wsize, collect)
		if err != nil {
			return nil, err
		}
		if len(txns) == 0 {
			// Transactions before a damaged frame are returned first; the damage is
			// reported once there is nothing else to return.
			if err := corrupt(pos, wh); err != nil {
				return nil, err
			}
		}
		t.advance(txns, pos)
		return txns, nil
	}
	// A new generation: its frames apply on top of the database file as the restart left
	// it, which holds everything up to the old generation's last commit.
	pos, err := scanWAL(wf, wh, walPos{cksum: wh.cksum}, wsize, collect)
	if err != nil {
		return nil, err
	}
	if len(txns) == 0 {
		if err := corrupt(pos, wh); err != nil {
			return nil, err
		}
	}
	if err := t.proveRestart(dbf, wh); err != nil {
		return nil, err
	}
	t.stats.Continued++
	t.hasGen, t.gen = true, wh
	t.advance(txns, pos)
	return txns, nil
}

// advance folds returned transactions into the captured state and moves the position.
func (t *Tracker) advance(txns []Txn, pos walPos) {
	for _, tx := range txns {
		n := int(tx.DBPages)
		if n < len(t.hashes) {
			t.hashes = t.hashes[:n]
		}
		for len(t.hashes) < n {
			t.hashes = append(t.hashes, t.zeroHash)
		}
		for _, p := range tx.Pages {
			t.hashes[p.No-1] = maphash.Bytes(t.seed, p.Data)
		}
		t.dbPages = tx.DBPages
	}
	t.pos = pos
	t.verified = fileStamp{}
}

// proveRestart decides whether a new WAL generation continues the captured state.
//
// The old generation may have had commits after the last one we read; a checkpoint then
// copied them into the database file before the restart, and their frames are gone. So
// continuity holds exactly when the database file, as the restart left it, equals the
// captured state. Restarting requires every frame of the old generation to be in the
// database file already, so it is enough to compare the file now with the captured state,
// provided nothing of the new generation has reached the file: the wal-index of this
// generation must show no checkpoint started (nBackfill and nBackfillAttempted both zero;
// SQLite sets the latter before copying any page) before and after the comparison. Any
// doubt (no readable -shm file, another generation in it, a checkpoint, a different page)
// refuses continuity.
//
// Equal content means any commits we missed left no trace in the file (say a row inserted
// and deleted again): the states we return are still exactly states SQLite committed, only
// the missed intermediate ones are absent, as they would be with a new base.
func (t *Tracker) proveRestart(dbf *os.File, wh walHeader) error {
	check := func() (bool, error) {
		info, ok, err := readShm(t.shmPath)
		if err != nil || !ok {
			return false, err
		}
		return info.salt == wh.salt && info.nBackfill == 0 && info.nBackfillAttempted == 0, nil
	}
	ok, err := check()
	if err != nil {
		return err
	}
	if !ok {
		return needBase("WAL restarted and the wal-index cannot show the database file untouched since")
	}
	same, err := t.dbMatches(dbf)
	if err != nil {
		return err
	}
	if !same {
		return needBase("WAL restarted after commits that were not captured")
	}
	if ok, err = check(); err != nil {
		return err
	}
	if !ok {
		return needBase("WAL restarted and a checkpoint ran while checking the database file")
	}
	return nil
}

// checkReset handles a WAL that is absent, empty or without a valid header: everything
// committed is then in the database file, so the captured state is current exactly when
// the file equals it. A file that matches while changing under the read is caught by the
// next comparison, since the stamp then is not recorded.
func (t *Tracker) checkReset(dbf *os.File) error {
	fi, err := dbf.Stat()
	if err != nil {
		return err
	}
	st := stampOf(fi)
	if !t.hasGen && t.verified.valid && st.equal(t.verified) {
		return nil
	}
	same, err := t.dbMatches(dbf)
	if err != nil {
		return err
	}
	if !same {
		return needBase("WAL was reset after commits that were not captured")
	}
	if t.hasGen {
		t.stats.Continued++
	}
	t.hasGen, t.gen, t.pos = false, walHeader{}, walPos{}
	t.verified = fileStamp{}
	if fi2, err := dbf.Stat(); err == nil {
		if st2 := stampOf(fi2); st2.equal(st) && st2.settled(time.Now()) {
			t.verified = st2
		}
	}
	return nil
}

// dbMatches reports whether the database file holds exactly the captured state: the same
// size and the same content in every page.
func (t *Tracker) dbMatches(dbf *os.File) (bool, error) {
	t.compares++
	fi, err := dbf.Stat()
	if err != nil {
		return false, err
	}
	ps := t.pageSize
	if fi.Size() != int64(t.dbPages)*int64(ps) {
		return false, nil
	}
	buf := make([]byte, max(ps, (1<<20)/ps*ps))
	for first := 0; first < int(t.dbPages); first += len(buf) / ps {
		n := min(len(buf)/ps, int(t.dbPages)-first)
		if _, err := dbf.ReadAt(buf[:n*ps], int64(first)*int64(ps)); err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
		for i := range n {
			if maphash.Bytes(t.seed, buf[i*ps:(i+1)*ps]) != t.hashes[first+i] {
				return false, nil
			}
		}
	}
	return true, nil
}

// fileStamp is what a stat says about a file's content: its size and change times.
type fileStamp struct {
	valid        bool
	size         int64
	mtime, ctime time.Time
}

// stampSettle is how old a file's times must be before a stamp can stand for its content:
// file systems store times coarsely, so a write just after a stat could leave them equal;
// one that comes later than this after the last change cannot.
var stampSettle = 3 * time.Second

func stampOf(fi os.FileInfo) fileStamp {
	ct, ok := changeTime(fi)
	return fileStamp{valid: ok, size: fi.Size(), mtime: fi.ModTime(), ctime: ct}
}

// equal reports whether two stamps are the same.
func (s fileStamp) equal(o fileStamp) bool {
	return s.valid == o.valid && s.size == o.size && s.mtime.Equal(o.mtime) && s.ctime.Equal(o.ctime)
}

// settled reports whether the stamp can detect any later write.
func (s fileStamp) settled(now time.Time) bool {
	return s.valid && now.Sub(s.mtime) > stampSettle && now.Sub(s.ctime) > stampSettle
}
