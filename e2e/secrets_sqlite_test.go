package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

// TestSecretsSQLite: fake API keys written into a memory database in WAL mode (a short
// note, a long note whose text runs over overflow pages, a note deleted again so its
// bytes sit in free space), both before the daemon first sees the database (its base
// image) and after (WAL transactions). The restored database passes integrity_check, has
// every note at its length with each key's secret part masked and the rest as written,
// and no key is in any object in the S3 bucket or in the git repository.
func TestSecretsSQLite(t *testing.T) {
	s3 := testenv.StartS3(t)
	repo := filepath.Join(t.TempDir(), "data-repo")
	h := newHost(t, hostOpts{s3: s3, extra: fmt.Sprintf("git:\n  repo: %s\n  interval: 2s\n", repo)})
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
	exec1 := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec1("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
	var keys []string
	want := map[int]string{}
	note := func(id int, body string) { exec1("INSERT INTO notes VALUES (?, ?)", id, body); want[id] = body }
	key := func() string { k := fakeAPIKey(); keys = append(keys, k); return k }
	filler := strings.Repeat("the agent remembers the user prefers short answers. ", 120) // 6 KB
	// Before the daemon starts: these travel in the base image.
	note(1, "my key is "+key()+" keep it safe")
	note(2, filler+key()+" "+filler+key()+" end")
	note(3, "soon gone "+key())
	exec1("DELETE FROM notes WHERE id = 3")
	delete(want, 3)
	d := h.start()
	time.Sleep(1500 * time.Millisecond)
	// While it runs: these travel as WAL transactions.
	note(4, "and another "+key())
	note(5, filler+" "+key()+" "+filler)
	exec1("UPDATE notes SET body = ? WHERE id = 1", "replaced by "+keys[len(keys)-1])
	want[1] = "replaced by " + keys[len(keys)-1]
	time.Sleep(5 * time.Second) // stored, and two git boundaries
	d.stop(t)

	to := h.restore("latest", "--path", "memory/agent.db")
	restored := filepath.Join(to, "sessions", "memory", "agent.db")
	rdb, err := sql.Open("sqlite", "file:"+restored+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var ic string
	if err := rdb.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check: %q %v", ic, err)
	}
	rows, err := rdb.Query("SELECT id, body FROM notes")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id int
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			t.Fatal(err)
		}
		n++
		w := want[id]
		if len(body) != len(w) {
			t.Fatalf("note %d: %d bytes, want %d", id, len(body), len(w))
		}
		for _, k := range keys {
			if i := strings.Index(w, k); i >= 0 && strings.Trim(body[i+len("sk-ant-"):i+len(k)], "*") != "" {
				t.Fatalf("note %d: the key is readable: %q", id, body[i:i+len(k)])
			}
		}
		for i := range body {
			if body[i] != w[i] && body[i] != '*' {
				t.Fatalf("note %d differs at %d beyond a mask", id, i)
			}
		}
	}
	rows.Close()
	if n != len(want) {
		t.Fatalf("%d notes restored, want %d", n, len(want))
	}

	// Every object in the bucket (segments decoded), and every git object.
	objects := 0
	filepath.WalkDir(filepath.Join(s3.Root, h.bucket), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".seg") {
			recs, err := segment.Decode(body)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			for _, r := range recs {
				body = append(body, r.Data...)
			}
		}
		for _, k := range keys {
			if bytes.Contains(body, []byte(k[20:60])) {
				t.Fatalf("a key is in stored object %s", p)
			}
		}
		objects++
		return nil
	})
	if objects == 0 {
		t.Fatal("no objects in the bucket")
	}
	cmd := exec.Command("git", "cat-file", "--batch-all-objects", "--batch")
	cmd.Dir = repo
	objs, err := cmd.Output()
	if err != nil || len(objs) == 0 {
		t.Fatalf("git objects: %v", err)
	}
	for _, k := range keys {
		if bytes.Contains(objs, []byte(k[20:60])) {
			t.Fatal("a key is in a git object")
		}
	}
	if !bytes.Contains(objs, []byte("keep it safe")) && !bytes.Contains(objs, []byte("and another")) {
		t.Fatal("the database did not reach git")
	}
	t.Logf("%d objects in the bucket and %d bytes of git objects checked", objects, len(objs))
}

// TestSecretsWithholdEveryKind: with secrets.action withhold, the real daemon keeps a
// secret out of every kind of file: a session file travels up to the line before the
// one holding a key and no further, a notes file holding one is not stored, and a
// memory database stops at the state before the transaction that wrote one, while a
// clean file beside them travels.
func TestSecretsWithholdEveryKind(t *testing.T) {
	h := newHost(t, hostOpts{extra: "secrets:\n  action: withhold\n"})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	key := fakeAPIKey()
	dbPath := filepath.Join(h.src, "memory", "agent.db")
	os.MkdirAll(filepath.Dir(dbPath), 0o755)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}
	d := h.start()
	h.appendLine("main/s.jsonl", `{"n":1}`+"\n")
	os.WriteFile(filepath.Join(h.src, "clean.md"), []byte("nothing secret\n"), 0o644)
	time.Sleep(1500 * time.Millisecond)
	h.appendLine("main/s.jsonl", `{"key":"`+key+`"}`+"\n")
	h.appendLine("main/s.jsonl", `{"n":3}`+"\n")
	os.WriteFile(filepath.Join(h.src, "notes.md"), []byte("ANTHROPIC_API_KEY="+key+"\n"), 0o644)
	if _, err := db.Exec("INSERT INTO notes VALUES (1, ?)", "my key "+key); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	d.stop(t)
	to := h.restore("latest")
	got := tree(t, to)
	if s := got["sessions/main/s.jsonl"]; s != `{"n":1}`+"\n" {
		t.Fatalf("session file restored as %q", s)
	}
	if got["sessions/clean.md"] != "nothing secret\n" {
		t.Fatalf("the clean file did not travel: %v", keysOf(got))
	}
	if _, ok := got["sessions/notes.md"]; ok {
		t.Fatal("notes.md travelled although it holds a key")
	}
	// The database travelled while it was clean, and stopped with the secret.
	rdb, err := sql.Open("sqlite", "file:"+filepath.Join(to, "sessions", "memory", "agent.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var n int
	if err := rdb.QueryRow("SELECT count(*) FROM notes").Scan(&n); err != nil || n != 0 {
		t.Fatalf("restored database: %d notes, %v; want the empty table it had before the key", n, err)
	}
	st, _ := file.New(filepath.Join(h.data, "store"))
	ctx := context.Background()
	st.List(ctx, "", func(o objstore.ObjectInfo) error {
		body, err := st.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(o.Key, ".seg") {
			recs, err := segment.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				body = append(body, r.Data...)
			}
		}
		if bytes.Contains(body, []byte(key[20:60])) {
			t.Fatalf("the key is in stored object %s", o.Key)
		}
		return nil
	})
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
