package sqlite

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/redact"
)

// fakeKey makes a string in a model provider's key format that is nobody's key.
func fakeKey(rng *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 93)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return "sk-ant-api03-" + string(b) + "AA"
}

// filler is text without secrets, of n bytes.
func filler(rng *rand.Rand, n int) string {
	words := []string{"memory ", "agent ", "note ", "the ", "user ", "prefers ", "tabs ", "over ", "spaces ", "\n"}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.String()[:n]
}

// redactTxn is RedactTxn with the built-in rules.
func redactTxn(tx Txn) (Txn, bool) {
	s := redact.New()
	out, m := RedactTxn(tx, 0, func(b []byte) ([]byte, bool) {
		c, h := s.Redact(b)
		return c, len(h) > 0
	})
	return out, m.Any
}

// TestRedactPages: secrets in short text, in long text across the end of a page's
// local part and deep in its overflow chain, in a blob, in a row deleted since (its
// bytes left in free space), masked in a base image and in later transactions: the
// restored image passes integrity_check, holds no key, and every other byte of every
// value is as written.
func TestRedactPages(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "mem.db")
	db := openApp(t, path, "wal_autocheckpoint(0)")
	mustExec(t, db, `CREATE TABLE notes(id INTEGER PRIMARY KEY, topic TEXT, body TEXT, extra BLOB)`)
	mustExec(t, db, `CREATE INDEX notes_topic ON notes(topic)`)
	var keys []string
	want := map[int]string{}
	add := func(id int, body string, extra []byte) {
		mustExec(t, db, `INSERT INTO notes VALUES(?, ?, ?, ?)`, id, filler(rng, 20), body, extra)
		want[id] = body
	}
	key := func() string { k := fakeKey(rng); keys = append(keys, k); return k }
	add(1, "my key is "+key()+" keep it", nil)
	long := filler(rng, 4000) + " " + key() + " " + filler(rng, 9000) + " " + key() + " " + filler(rng, 3000)
	add(2, long, nil)
	spread := len(keys)
	// Keys back to back: every page boundary of the chain falls inside one.
	var dense strings.Builder
	for range 200 {
		dense.WriteString(key() + " ")
	}
	add(6, dense.String(), nil)
	add(3, filler(rng, 100), []byte(`{"password": "`+filler(rng, 3)+`x9Q2`+`hunter22"}`))
	add(4, "gone soon "+key(), nil)
	mustExec(t, db, `DELETE FROM notes WHERE id = 4`)
	delete(want, 4)

	tr := NewTracker(path)
	base, err := tr.Base()
	if err != nil {
		t.Fatal(err)
	}
	raw := pagesOf(base)
	for _, k := range append(keys[:spread:spread], keys[len(keys)-1]) {
		if !bytes.Contains(raw, []byte(k[20:60])) {
			t.Fatalf("the test proves nothing: key %d is not in the captured pages", len(k))
		}
	}
	clean, changed := redactTxn(base)
	if !changed {
		t.Fatal("nothing masked")
	}
	if !bytes.Equal(pagesOf(base), raw) {
		t.Fatal("RedactTxn wrote into the pages it was given")
	}
	im := newImage(t)
	im.apply(clean)
	checkNotes(t, im, keys, want)

	// Later transactions: a new long note, an update that puts a key into a short one.
	add(5, filler(rng, 5000)+" "+key()+" "+filler(rng, 200), nil)
	mustExec(t, db, `UPDATE notes SET body = ? WHERE id = 1`, "now "+key())
	want[1] = "now " + keys[len(keys)-1]
	txns, err := tr.Poll()
	if err != nil || len(txns) == 0 {
		t.Fatalf("poll: %d, %v", len(txns), err)
	}
	for _, tx := range txns {
		c, _ := redactTxn(tx)
		im.apply(c)
	}
	checkNotes(t, im, keys, want)
}

// pagesOf joins the page images of a transaction.
func pagesOf(tx Txn) []byte {
	var b []byte
	for _, p := range tx.Pages {
		b = append(b, p.Data...)
	}
	return b
}

// checkNotes opens the image: integrity_check passes, no key is in the file, and each
// note is its text with every key masked to the same length.
func checkNotes(t *testing.T, im *image, keys []string, want map[int]string) {
	t.Helper()
	db := im.open()
	defer db.Close()
	var ic string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check: %q %v", ic, err)
	}
	file, err := os.ReadFile(im.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if bytes.Contains(file, []byte(k[20:60])) {
			t.Fatal("a key is in the restored file")
		}
	}
	rows, err := db.Query(`SELECT id, body, extra FROM notes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int
		var body string
		var extra []byte
		if err := rows.Scan(&id, &body, &extra); err != nil {
			t.Fatal(err)
		}
		n++
		w := want[id]
		if len(body) != len(w) {
			t.Fatalf("note %d: %d bytes, want %d", id, len(body), len(w))
		}
		// Every key's body (after its readable "sk-ant-") is masked whole.
		for _, k := range keys {
			for from := 0; ; {
				i := strings.Index(w[from:], k)
				if i < 0 {
					break
				}
				i += from
				if m := body[i+7 : i+len(k)]; strings.Trim(m, "*") != "" {
					t.Fatalf("note %d: a key is readable at %d: %q", id, i, m)
				}
				from = i + len(k)
			}
		}
		for i := range body {
			if body[i] != w[i] && body[i] != '*' {
				t.Fatalf("note %d differs at %d: %q", id, i, body[max(0, i-20):i+20])
			}
		}
		if extra != nil && bytes.Contains(extra, []byte("hunter22")) {
			t.Fatalf("note %d: the password in the blob is readable: %s", id, extra)
		}
	}
	if n != len(want) {
		t.Fatalf("%d notes, want %d", n, len(want))
	}
}

// FuzzRedactTxn: pages of any content never make RedactTxn panic, and it keeps every
// page's length and number.
func FuzzRedactTxn(f *testing.F) {
	page := make([]byte, 512)
	page[0] = 0x0d
	f.Add(page, uint32(2))
	f.Add(append([]byte("SQLite format 3\x00"), make([]byte, 600)...), uint32(1))
	s := redact.New()
	f.Fuzz(func(t *testing.T, data []byte, no uint32) {
		var pages []Page
		for i := 0; i+512 <= len(data) && i < 8*512; i += 512 {
			pages = append(pages, Page{No: no + uint32(i/512), Data: data[i : i+512]})
		}
		if len(pages) == 0 {
			return
		}
		tx := Txn{PageSize: 512, DBPages: no + uint32(len(pages)), Pages: pages}
		out, _ := RedactTxn(tx, 0, func(b []byte) ([]byte, bool) {
			c, h := s.Redact(b)
			return c, len(h) > 0
		})
		for i, p := range out.Pages {
			if p.No != pages[i].No || len(p.Data) != 512 {
				t.Fatalf("page %d changed shape", i)
			}
		}
	})
}

// BenchmarkRedactBase masks a base image of about 10 MB of notes without a secret: the
// cost a base image adds when secrets are scanned.
func BenchmarkRedactBase(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	path := filepath.Join(b.TempDir(), "mem.db")
	db := openApp(b, path)
	mustExec(b, db, `CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)`)
	for i := range 5000 {
		mustExec(b, db, `INSERT INTO notes VALUES(?, ?)`, i, filler(rng, 200+rng.IntN(3800)))
	}
	base, err := NewTracker(path).Base()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(base.Pages) * base.PageSize))
	for b.Loop() {
		if _, changed := redactTxn(base); changed {
			b.Fatal("masked clean notes")
		}
	}
}

// TestRedactIndexed: a secret in an indexed column is masked in the index too, which
// RedactTxn reports, and the README's remedy holds: REINDEX on the restored copy makes
// integrity_check pass again, and the key is nowhere in the file.
func TestRedactIndexed(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	path := filepath.Join(t.TempDir(), "kv.db")
	db := openApp(t, path)
	mustExec(t, db, `CREATE TABLE kv(id INTEGER PRIMARY KEY, k TEXT)`)
	mustExec(t, db, `CREATE INDEX kv_k ON kv(k)`)
	var keys []string
	for i := range 200 {
		v := filler(rng, 30) + fmt.Sprint(i)
		if i%3 == 0 {
			keys = append(keys, fakeKey(rng))
			v = "key " + keys[len(keys)-1]
		}
		mustExec(t, db, `INSERT INTO kv VALUES(?, ?)`, i, v)
	}
	base, err := NewTracker(path).Base()
	if err != nil {
		t.Fatal(err)
	}
	s := redact.New()
	clean, m := RedactTxn(base, 0, func(b []byte) ([]byte, bool) {
		c, h := s.Redact(b)
		return c, len(h) > 0
	})
	if !m.Any || !m.Index {
		t.Fatalf("masked %+v, want the index reported", m)
	}
	p := filepath.Join(t.TempDir(), "restored.db")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(f, clean); err != nil {
		t.Fatal(err)
	}
	if err := Finalize(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rdb, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	mustExec(t, rdb, `REINDEX`)
	var ic string
	if err := rdb.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("after REINDEX: integrity_check %q %v", ic, err)
	}
	rdb.Close()
	file, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if bytes.Contains(file, []byte(k[20:60])) {
			t.Fatal("a key is in the restored file")
		}
	}
}
