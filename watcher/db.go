package watcher

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/redact"
	"github.com/mmreplicate/mmreplicate/watcher/sqlite"
)

// rebaseEvery bounds how many transactions a restore replays on top of a database's base
// image: past it a new base is taken.
const rebaseEvery = 30 * time.Minute

// dbTrack is the capture state of one database.
type dbTrack struct {
	t        *sqlite.Tracker
	based    time.Time
	rollback bool      // rollback-journal mode: copied whole after each change
	withheld time.Time // when the database was last withheld for holding a secret
}

// withholdRetry is how long a database withheld for holding a secret waits before it is
// read whole again to see whether the secret is gone.
const withholdRetry = time.Minute

// dbOf maps a -wal, -shm or -journal file to its database.
func dbOf(rel string) (string, bool) {
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if db, ok := strings.CutSuffix(rel, suffix); ok {
			return db, true
		}
	}
	return "", false
}

// isDB tells whether a file is replicated as a SQLite database.
func isDB(kind, abs string) bool {
	if kind == "sqlite" {
		return true
	}
	if kind != "auto" && kind != "" {
		return false
	}
	f, err := os.Open(abs)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, _ := f.Read(head)
	return sqlite.IsDatabase(head[:n])
}

// captureDB journals a database's committed transactions from its WAL, or a consistent
// base image when continuity cannot be proven (first sight, a checkpoint that restarted
// the WAL before its frames were read, a replaced file) and periodically.
func (w *Watcher) captureDB(source, rel, abs string, fi os.FileInfo, prev *fileState) (change, error) {
	key := source + "/" + rel
	ch := change{key: key}
	dev, ino := identity(fi)
	mode := uint32(fi.Mode().Perm())
	tr := w.dbs[key]
	if tr != nil && !tr.withheld.IsZero() {
		if time.Since(tr.withheld) < withholdRetry {
			return ch, errWithheld
		}
		tr = nil // look again, from a new base
	}
	if tr == nil || prev == nil || prev.Kind != "db" || prev.Dev != dev || prev.Ino != ino {
		tr = &dbTrack{t: sqlite.NewTracker(abs)}
		w.dbs[key] = tr
	}
	var txns []sqlite.Txn
	base := tr.based.IsZero() || time.Since(tr.based) > rebaseEvery
	if !base && !tr.rollback {
		var err error
		txns, err = tr.t.Poll()
		switch {
		case errors.Is(err, sqlite.ErrNeedBase):
			w.dbGaps.Add(1)
			base = true
		case errors.Is(err, sqlite.ErrCorruptWAL):
			// Never shipped: what came before the bad frame is returned with it, the rest
			// waits for the application (or a checkpoint) to put things right.
			w.errs.Add(1)
			if !w.warned[abs+"#wal"] {
				w.warned[abs+"#wal"] = true
				w.log.Error("corrupt WAL frames are not replicated", "path", abs, "err", err)
			}
		case err != nil:
			return ch, err
		}
	}
	if tr.rollback && !base {
		// A rollback-journal database has no WAL to follow: a change is a new copy.
		base = prev == nil || prev.MTime != fi.ModTime().UnixNano() || prev.Offset != fi.Size()
	}
	var recs []journal.Record
	var baseTx sqlite.Txn
	for _, tx := range txns {
		recs = append(recs, dbRecords(journal.OpDBPages, source, rel, mode, tx)...)
	}
	if base {
		tx, err := tr.t.Base()
		if errors.Is(err, sqlite.ErrNotWAL) {
			tr.rollback = true
			tx, err = sqlite.Snapshot(abs)
		}
		if err != nil {
			return ch, fmt.Errorf("database base image: %w", err)
		}
		tr.based = time.Now()
		baseTx = tx
		recs = dbRecords(journal.OpDBBase, source, rel, mode, tx)
	}
	if w.scanner != nil && len(recs) > 0 {
		var hits []redact.Hit
		indexed := false
		redactedTxn := func(tx sqlite.Txn, reserved int, mask sqlite.Masker) sqlite.Txn {
			out, m := sqlite.RedactTxn(tx, reserved, mask)
			indexed = indexed || m.Index
			return out
		}
		mask := func(b []byte) ([]byte, bool) {
			c, h := w.scanner.Redact(b)
			hits = append(hits, h...)
			return c, len(h) > 0
		}
		if base {
			recs = dbRecords(journal.OpDBBase, source, rel, mode, redactedTxn(baseTx, tr.t.Reserved(), mask))
		} else {
			recs = nil
			for _, tx := range txns {
				recs = append(recs, dbRecords(journal.OpDBPages, source, rel, mode, redactedTxn(tx, tr.t.Reserved(), mask))...)
			}
		}
		w.count(key, hits)
		if indexed && !w.warned[abs+"#index"] {
			w.warned[abs+"#index"] = true
			w.log.Warn("a secret was masked in an index of a database: run REINDEX on restored copies", "path", abs)
		}
		if len(hits) > 0 && w.o.Secrets == config.SecretsWithhold {
			// Nothing of this database travels while it holds a secret. What the tracker
			// consumed is not shipped, so it starts again with a base next time, which
			// is taken at most once per withholdRetry however often the database changes.
			w.dbs[key] = &dbTrack{withheld: time.Now()}
			return ch, errWithheld
		}
	}
	st := &fileState{Kind: "db", Dev: dev, Ino: ino, Offset: fi.Size(), Mode: mode, MTime: fi.ModTime().UnixNano()}
	st.WalSize, st.WalMTime = walStamp(abs)
	ch.state, ch.recs = st, recs
	return ch, nil
}

// dbRecords cuts a base image or transaction into records that each fit a message. They
// are journaled together and share one capture time, so a restore sees all or none.
func dbRecords(op journal.Op, source, rel string, mode uint32, tx sqlite.Txn) []journal.Record {
	var recs []journal.Record
	for i, piece := range sqlite.SplitTxn(tx, MaxRecordData) {
		recs = append(recs, journal.Record{Op: op, Source: source, Path: rel, Offset: int64(i), Mode: mode, Data: sqlite.EncodeTxn(piece)})
	}
	return recs
}

// walStamp is the size and modification time of a database's WAL (zero when absent), so
// the reconcile scan notices commits that inotify did not report.
func walStamp(abs string) (int64, int64) {
	fi, err := os.Stat(abs + "-wal")
	if err != nil {
		return 0, 0
	}
	return fi.Size(), fi.ModTime().UnixNano()
}
