package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mmreplicate/mmreplicate/browse"
	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestBrowseCommands: ls, cat, diff, log and hosts read a real S3 store alone (the daemon
// is stopped), in text and JSON; then a segment deleted from the bucket mid-history makes
// each of them name the missing records and exit 1.
func TestBrowseCommands(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, []byte(strings.Replace(string(cfg), "    include: [\"**/*.jsonl\"]\n", "", 1)), 0o600)
	write := func(rel, content string) {
		p := filepath.Join(h.src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	settle := func() string {
		want := map[string]string{}
		for rel, c := range tree(t, h.src) {
			want["sessions/"+rel] = c
		}
		h.waitStored(want, 30*time.Second)
		at := time.Now().UTC().Format(time.RFC3339Nano)
		time.Sleep(20 * time.Millisecond)
		return at
	}
	d := h.start()
	h.appendLine("agent/s1.jsonl", "{\"n\":1}\n")
	write("notes.md", "first\n")
	write("old.txt", "to be removed\n")
	t1 := settle()
	h.appendLine("agent/s1.jsonl", "{\"n\":2}\n{\"n\":3}\n")
	t2 := settle()
	write("notes.md", "second, longer\n")
	os.Remove(filepath.Join(h.src, "old.txt"))
	write("agent/new.md", "new\n")
	t3 := settle()
	d.stop(t)
	run := func(args ...string) (string, string) {
		t.Helper()
		code, out, errs := mmr(t, append([]string{args[0], "--config", h.config}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		return out, errs
	}

	// ls: the state at t1 and the newest, as text and JSON.
	var l browse.Listing
	out, _ := run("ls", "--at", t1, "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	got := map[string]int64{}
	for _, e := range l.Entries {
		if e.Kind != "dir" {
			got[e.Path] = e.Size
		}
	}
	want := map[string]int64{"sessions/agent/s1.jsonl": 8, "sessions/notes.md": 6, "sessions/old.txt": 14}
	if len(got) != len(want) {
		t.Fatalf("ls at t1: %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("ls at t1: %s is %d bytes, want %d", k, got[k], n)
		}
	}
	out, _ = run("ls", "sessions/agent/**")
	if !strings.Contains(out, "sessions/agent/new.md") || !strings.Contains(out, "-rw-r-----") || strings.Contains(out, "notes.md") {
		t.Errorf("ls sessions/agent/** at latest:\n%s", out)
	}

	// cat: an append file and a whole file at earlier instants, byte-exact.
	if out, _ := run("cat", "--at", t1, "sessions/agent/s1.jsonl"); out != "{\"n\":1}\n" {
		t.Errorf("cat s1.jsonl at t1: %q", out)
	}
	if out, _ := run("cat", "--at", t2, "sessions/agent/s1.jsonl"); out != "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n" {
		t.Errorf("cat s1.jsonl at t2: %q", out)
	}
	if out, _ := run("cat", "--at", t2, "sessions/notes.md"); out != "first\n" {
		t.Errorf("cat notes.md at t2: %q", out)
	}
	if code, _, errs := mmr(t, "cat", "--config", h.config, "--at", t3, "sessions/old.txt"); code != 1 || !strings.Contains(errs, "no file sessions/old.txt") {
		t.Errorf("cat of a deleted file: exit %d, %s", code, errs)
	}

	// diff: t1 to t3 in JSON; lines added to the transcript.
	var df browse.DiffResult
	out, _ = run("diff", t1, t3, "--json")
	if err := json.Unmarshal([]byte(out), &df); err != nil {
		t.Fatalf("diff --json: %v\n%s", err, out)
	}
	changes := map[string]browse.Change{}
	for _, c := range df.Changes {
		changes[c.Path] = c
	}
	if c := changes["sessions/agent/s1.jsonl"]; c.Change != "modified" || c.Bytes != 16 || c.LinesAdded == nil || *c.LinesAdded != 2 {
		t.Errorf("diff s1.jsonl: %+v", c)
	}
	if c := changes["sessions/notes.md"]; c.Change != "modified" || c.OldSize != 6 || c.NewSize != 15 {
		t.Errorf("diff notes.md: %+v", c)
	}
	if c := changes["sessions/old.txt"]; c.Change != "removed" {
		t.Errorf("diff old.txt: %+v", c)
	}
	if c := changes["sessions/agent/new.md"]; c.Change != "added" || c.NewSize != 4 {
		t.Errorf("diff new.md: %+v", c)
	}
	if out, _ := run("diff", t2, t3, "sessions/agent/**"); strings.Contains(out, "notes.md") || !strings.Contains(out, "+ file") {
		t.Errorf("diff t2 t3 sessions/agent/**:\n%s", out)
	}

	// log: every version of one file.
	var lg browse.LogResult
	out, _ = run("log", "--json", "sessions/agent/s1.jsonl")
	if err := json.Unmarshal([]byte(out), &lg); err != nil {
		t.Fatalf("log --json: %v\n%s", err, out)
	}
	if len(lg.Versions) != 2 || lg.Versions[0].Change != "created" || lg.Versions[1].Change != "appended" || lg.Versions[1].Size != 24 {
		t.Errorf("log s1.jsonl: %+v", lg.Versions)
	}
	if out, _ := run("log", "sessions/old.txt"); !strings.Contains(out, "created") || !strings.Contains(out, "deleted") {
		t.Errorf("log old.txt:\n%s", out)
	}

	// hosts: this host with its window and bytes.
	var hs browse.HostsResult
	out, _ = run("hosts", "--json")
	if err := json.Unmarshal([]byte(out), &hs); err != nil {
		t.Fatalf("hosts --json: %v\n%s", err, out)
	}
	if len(hs.Hosts) != 1 || hs.Hosts[0].Host != h.hostName() || hs.Hosts[0].Bytes == 0 || hs.Hosts[0].Oldest.IsZero() ||
		hs.Hosts[0].Newest.Before(hs.Hosts[0].Oldest) {
		t.Errorf("hosts: %+v", hs.Hosts)
	}

	// Usage errors are exit 2.
	for _, args := range [][]string{{"cat", "sessions/notes.md"}, {"diff", t1}, {"ls", "--at", "yesterday"}, {"diff", t3, t1}} {
		if code, _, errs := mmr(t, append([]string{args[0], "--config", h.config}, args[1:]...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errs)
		}
	}

	// A segment lost mid-history: every command names the missing records, exit 1.
	st := h.directStore()
	segs := segments(t, st, h.hostName())
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, have %d", len(segs))
	}
	lost := segs[len(segs)/2]
	if err := st.Delete(context.Background(), lost.Key); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ls"}, {"cat", "--at", "latest", "sessions/agent/s1.jsonl"}, {"diff", t1, "latest"},
		{"log", "sessions/agent/s1.jsonl"}, {"hosts"}} {
		code, out, errs := mmr(t, append([]string{args[0], "--config", h.config}, args[1:]...)...)
		if code != 1 || !strings.Contains(errs, "missing") || !strings.Contains(errs, "records") {
			t.Errorf("%v after losing %s: exit %d, stderr %q", args, lost.Key, code, errs)
		}
		if args[0] == "cat" && out != "" {
			t.Errorf("cat wrote %q from an incomplete state", out)
		}
	}
}

// TestBrowseEncrypted: over an encrypted store ls, cat and log read with the identity
// file, and without it fail in one line naming it.
func TestBrowseEncrypted(t *testing.T) {
	s3 := testenv.StartS3(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "age.key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	h := newHost(t, hostOpts{s3: s3, extra: fmt.Sprintf("encryption:\n  recipients: [%q]\n  identity_file: %s\n", id.Recipient().String(), idFile)})
	d := h.start()
	h.appendLine("main/s.jsonl", "{\"text\":\"readable with the key alone\"}\n")
	h.waitStored(h.sourceState(), 30*time.Second)
	d.stop(t)
	code, out, errs := mmr(t, "cat", "--config", h.config, "--at", "latest", "sessions/main/s.jsonl")
	if code != 0 || out != "{\"text\":\"readable with the key alone\"}\n" {
		t.Fatalf("cat: exit %d %q %s", code, out, errs)
	}
	code, out, errs = mmr(t, "ls", "--config", h.config)
	if code != 0 || !strings.Contains(out, "sessions/main/s.jsonl") {
		t.Fatalf("ls: exit %d %q %s", code, out, errs)
	}
	if code, out, errs = mmr(t, "log", "--config", h.config, "sessions/main/s.jsonl"); code != 0 || !strings.Contains(out, "created") {
		t.Fatalf("log: exit %d %q %s", code, out, errs)
	}
	if code, out, errs = mmr(t, "hosts", "--config", h.config); code != 0 || !strings.Contains(out, h.hostName()) {
		t.Fatalf("hosts: exit %d %q %s", code, out, errs)
	}
	noID := filepath.Join(t.TempDir(), "noid.yml")
	os.WriteFile(noID, []byte(strings.Replace(string(mustRead(t, h.config)), "  identity_file: "+idFile+"\n", "", 1)), 0o600)
	code, _, errs = mmr(t, "ls", "--config", noID)
	if code == 0 || !strings.Contains(errs, "identity_file") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Errorf("ls without the identity: exit %d, %q", code, errs)
	}
}

// TestCatSQLite: `cat` of a SQLite memory database writes one consistent database file
// (integrity_check passes) holding exactly the transactions committed, and `ls` shows it
// as a database.
func TestCatSQLite(t *testing.T) {
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, []byte(strings.Replace(string(cfg), "    include: [\"**/*.jsonl\"]\n", "", 1)), 0o600)
	dbPath := filepath.Join(h.src, "memory", "agent.db")
	os.MkdirAll(filepath.Dir(dbPath), 0o755)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"CREATE TABLE mem (id INTEGER PRIMARY KEY, v BLOB)",
		"INSERT INTO mem VALUES (1, randomblob(3000))", "INSERT INTO mem VALUES (2, randomblob(5000))"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	d := h.start()
	if _, err := db.Exec("UPDATE mem SET v = randomblob(100) WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	want := digest(t, db)
	out := filepath.Join(t.TempDir(), "agent.db")
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, _ := mmr(t, "cat", "--config", h.config, "--at", "latest", "sessions/memory/agent.db")
		if code == 0 {
			os.WriteFile(out, []byte(body), 0o600)
			if c, err := sql.Open("sqlite", "file:"+out+"?mode=ro"); err == nil {
				got := digest(t, c)
				c.Close()
				if got == want {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cat never gave the committed database (exit %d)", code)
		}
		time.Sleep(300 * time.Millisecond)
	}
	d.stop(t)
	checkRestored(t, out, want)
	code, ls, errs := mmr(t, "ls", "--config", h.config, "memory")
	if code != 0 || !strings.Contains(ls, "db ") || !strings.Contains(ls, "sessions/memory/agent.db") {
		t.Errorf("ls memory: exit %d\n%s%s", code, ls, errs)
	}
}
