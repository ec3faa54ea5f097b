package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
)

// Records whose paths leave the target are refused by their sequence number; nothing is
// written outside the target, nothing panics, and the rest is restored.
func TestHostileRecordPathsAreRefused(t *testing.T) {
	st, _ := file.New(t.TempDir())
	at := func(sec int) int64 { return t0.Add(time.Duration(sec) * time.Second).UnixNano() }
	put(t, st,
		journal.Record{Seq: 1, Time: at(0), Op: journal.OpDir, Source: "sessions", Path: "../../escaped-dir", Mode: 0o755},
		journal.Record{Seq: 2, Time: at(1), Op: journal.OpAppend, Source: "sessions", Path: "/tmp/abs.jsonl", Data: []byte("x\n")},
		journal.Record{Seq: 3, Time: at(2), Op: journal.OpAppend, Source: "sessions", Path: "a\x00b.jsonl", Data: []byte("x\n")},
		journal.Record{Seq: 4, Time: at(3), Op: journal.OpAppend, Source: "..", Path: "up.jsonl", Data: []byte("x\n")},
		journal.Record{Seq: 5, Time: at(4), Op: journal.OpFile, Source: "sessions", Path: "huge", Offset: 1 << 50},
		app(6, 5, "ok.jsonl", 0, "fine\n"),
	)
	parent := t.TempDir()
	to := filepath.Join(parent, "a", "b", "out")
	_, err := Run(context.Background(), Options{Store: st, Host: "h", Latest: true, To: to, Parallel: 2})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore: %v, want ErrIncomplete", err)
	}
	for _, seq := range []string{"record 1 ", "record 2 ", "record 3 ", "record 4 ", "record 5 "} {
		if !strings.Contains(err.Error(), seq) {
			t.Errorf("%q not named in %v", seq, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(parent, "escaped-dir")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a folder record climbed out of the target: %v", err)
	}
	if _, err := os.Lstat("/tmp/abs.jsonl"); err == nil {
		t.Fatal("an absolute path was written")
	}
	if b, err := os.ReadFile(filepath.Join(to, "sessions", "ok.jsonl")); err != nil || string(b) != "fine\n" {
		t.Fatalf("ok.jsonl: %q, %v", b, err)
	}
}

// A manifest holding an entry that climbs out is damaged: restore falls back to the
// segments and says which manifest it could not use.
func TestHostileManifestEntryIsDamage(t *testing.T) {
	st, _ := file.New(t.TempDir())
	recs := []journal.Record{app(1, 0, "a.jsonl", 0, "1\n")}
	put(t, st, recs...)
	x := manifest.New("h")
	for i := range recs {
		if err := x.Apply(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	x.Files["sessions/../../../etc/evil"] = &manifest.Entry{Kind: manifest.KindDir, Mode: 0o755}
	body, err := manifest.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	key := manifest.ObjectKey(x)
	if err := st.Put(context.Background(), key, body); err != nil {
		t.Fatal(err)
	}
	got, err := run(t, st, time.Time{}, true)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "climbs out") {
		t.Fatalf("restore: %v, want the manifest named as damaged", err)
	}
	if got["sessions/a.jsonl"] != "1\n" || len(got) != 1 {
		t.Fatalf("restored %v", got)
	}
}

// Verify names malformed records and hostile manifest entries.
func TestVerifyNamesMalformedRecords(t *testing.T) {
	st, _ := file.New(t.TempDir())
	key := put(t, st, app(1, 0, "ok.jsonl", 0, "1\n"),
		journal.Record{Seq: 2, Time: t0.Add(time.Second).UnixNano(), Op: journal.OpChunk, Path: "a"})
	rep, err := Verify(context.Background(), st, []string{"h"}, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Hosts[0].Problems, "\n")
	if rep.OK() || !strings.Contains(all, key) || !strings.Contains(all, "record 2") || !strings.Contains(all, "chunk id of 1") {
		t.Fatalf("verify problems %q: want the short chunk id of record 2 in %s named", all, key)
	}
}
