package watcher

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
)

// A journal that refuses appends (here: its size cap) keeps the change pending; the
// per-file state is not saved ahead of the records, so neither a retry nor a restart in
// the middle loses the bytes.
func TestRefusedAppendStaysPending(t *testing.T) {
	r := newRigWith(t, config.Source{Name: "s"}, journal.Options{MaxBytes: 64 << 10})
	r.write("a.jsonl", "one\n", false)
	r.expect("a.jsonl", "one\n", false)
	// Fill the journal to its cap.
	fill(t, r.j)
	r.replay()
	r.write("a.jsonl", "two\n", true)
	deadline := time.Now().Add(5 * time.Second)
	for r.w.Paused() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never reported the refused append")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(r.w.Paused(), journal.ErrFull) || !r.w.JournalFull() {
		t.Fatalf("paused because of %v", r.w.Paused())
	}
	r.replay()
	if got := string(r.files["a.jsonl"]); got != "one\n" {
		t.Fatalf("journal holds %q while full", got)
	}
	// A restart while the journal is still full: shutdown tries once more and saves its
	// state, which must not claim the second line.
	r.halt()
	if err := r.j.Release(r.j.LastSeq() + 1); err != nil {
		t.Fatal(err)
	}
	r.startWith(config.Source{Name: "s", Path: r.src})
	r.expect("a.jsonl", "one\ntwo\n", false)
	if r.w.Paused() != nil {
		t.Fatalf("still paused: %v", r.w.Paused())
	}

	// Without a restart: the pending change goes once space returns.
	fill(t, r.j)
	r.replay()
	r.write("a.jsonl", "three\n", true)
	for r.w.Paused() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.j.Release(r.j.LastSeq() + 1); err != nil {
		t.Fatal(err)
	}
	r.expect("a.jsonl", "one\ntwo\nthree\n", false)
}

// fill appends to j until not even a one-byte record fits.
func fill(t *testing.T, j *journal.Journal) {
	t.Helper()
	for _, n := range []int{3000, 100, 1} {
		for {
			err := j.Append([]journal.Record{{Op: journal.OpAppend, Source: "s", Path: "f", Data: []byte(strings.Repeat("f", n))}})
			if errors.Is(err, journal.ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A database change the journal refused is not lost with the WAL frames the tracker has
// already read: once the journal takes records again, a new base image goes.
func TestRefusedDatabaseChangeSendsBase(t *testing.T) {
	r := newRigWith(t, config.Source{Name: "s"}, journal.Options{MaxBytes: 256 << 10})
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.src, "mem.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE m(id INTEGER PRIMARY KEY, v TEXT)")
	exec("INSERT INTO m(v) VALUES ('one')")
	// waitDB waits for the next database record and returns its op.
	waitDB := func() journal.Op {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, rec := range r.replay() {
				if rec.Path == "mem.db" && (rec.Op == journal.OpDBBase || rec.Op == journal.OpDBPages) {
					return rec.Op
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no database record journaled")
		return 0
	}
	if op := waitDB(); op != journal.OpDBBase {
		t.Fatalf("first record of the database: op %d", op)
	}
	exec("INSERT INTO m(v) VALUES ('two')")
	if op := waitDB(); op != journal.OpDBPages {
		t.Fatalf("a transaction: op %d", op)
	}
	fill(t, r.j)
	r.replay()
	exec("INSERT INTO m(v) VALUES ('three')")
	for r.w.Paused() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.j.Release(r.j.LastSeq() + 1); err != nil {
		t.Fatal(err)
	}
	if op := waitDB(); op != journal.OpDBBase {
		t.Fatalf("after the refusal: op %d, want a base image", op)
	}
}
