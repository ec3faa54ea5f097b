package watcher

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/redact"
)

// secretsRig is a rig whose watcher runs with a secrets action.
func secretsRig(t *testing.T, action string) (*rig, *Watcher) {
	dir := t.TempDir()
	r := &rig{t: t, src: filepath.Join(dir, "src"), state: filepath.Join(dir, "state.json"), next: 1, files: map[string][]byte{},
		chunks: map[string][]byte{}, links: map[string]string{}, dirs: map[string]bool{}}
	os.MkdirAll(r.src, 0o755)
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.j = j
	t.Cleanup(func() { r.halt(); j.Close() })
	w, err := New(Options{Sources: []config.Source{{Name: "s", Path: r.src}}, Journal: j, StateFile: r.state,
		Debounce: 20 * time.Millisecond, ScanInterval: 200 * time.Millisecond, Secrets: action})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan error, 1)
	ready := make(chan struct{})
	go func() { r.done <- w.Run(ctx, func() { close(ready) }) }()
	<-ready
	return r, w
}

// testKey makes a string in a model provider's key format that is nobody's key.
func testKey(rng *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 93)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return "sk-ant-api03-" + string(b) + "AA"
}

// testPEM makes a private key block of random base64 lines.
func testPEM(rng *rand.Rand, lines int) (begin, body, end string) {
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b strings.Builder
	for range lines {
		for range 64 {
			b.WriteByte(b64[rng.IntN(len(b64))])
		}
		b.WriteByte('\n')
	}
	return "-----BEGIN OPENSSH PRIVATE KEY-----\n", b.String(), "-----END OPENSSH PRIVATE KEY-----\n"
}

// TestSecretsAppendAcrossCaptures: a private key written to an append file in three
// writes (the BEGIN line alone, half the body, the rest), each captured before the next,
// is masked as in one scan of the whole file.
func TestSecretsAppendAcrossCaptures(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r, _ := secretsRig(t, config.SecretsRedact)
	begin, body, end := testPEM(rng, 12)
	r.write("notes.log", "setting up the host\n"+begin, true)
	r.expect("notes.log", "setting up the host\n"+begin, false)
	// Half the body next, then the rest: a capture between each.
	half := strings.Index(body, "\n")*6 + 6
	r.write("notes.log", body[:half], true)
	want1, _ := redact.New().Redact([]byte("setting up the host\n" + begin + body[:half]))
	r.expect("notes.log", string(want1), false)
	r.write("notes.log", body[half:]+end+"done\n", true)
	whole := "setting up the host\n" + begin + body + end + "done\n"
	want, hits := redact.New().Redact([]byte(whole))
	if len(hits) != 1 {
		t.Fatalf("the whole has %d hits", len(hits))
	}
	r.expect("notes.log", string(want), false)
	for _, line := range strings.Split(body, "\n") {
		if line != "" && bytes.Contains(r.files["notes.log"], []byte(line)) {
			t.Fatal("a line of the key's body travelled")
		}
	}
}

// TestSecretsWithholdAppend: with withhold, an append file stops travelling at the line
// that holds a secret; what travelled before stays, nothing after it goes.
func TestSecretsWithholdAppend(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	r, w := secretsRig(t, config.SecretsWithhold)
	r.write("a.jsonl", "{\"n\":1}\n", true)
	r.expect("a.jsonl", "{\"n\":1}\n", false)
	r.write("a.jsonl", "{\"key\":\""+testKey(rng)+"\"}\n", true)
	r.write("a.jsonl", "{\"n\":3}\n", true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, withheld := w.Secrets(); withheld > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing withheld")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a scan or two more
	r.replay()
	if got := string(r.files["a.jsonl"]); got != "{\"n\":1}\n" {
		t.Fatalf("travelled: %q", got)
	}
}

// TestSecretsLargeFileStreamed: a whole file larger than any limit the scan had, with
// secrets across the scanner's block boundaries and near its end, travels masked, as
// one scan of the whole would mask it, and otherwise byte for byte.
func TestSecretsLargeFileStreamed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const size = 66 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = "abcdefghij klmnopqrstuvwxyz\n"[rng.IntN(28)]
	}
	k1, k2 := testKey(rng), testKey(rng)
	begin, body, end := testPEM(rng, 40)
	pem := begin + body + end
	copy(data[4<<20-50:], " "+k1+" ")
	copy(data[8<<20-1000:], "\n"+pem)
	copy(data[size-300:], " "+k2+" ")
	want, hits := redact.New().Redact(data)
	if len(hits) != 3 {
		t.Fatalf("the whole has %d hits", len(hits))
	}
	r, w := secretsRig(t, config.SecretsRedact)
	// Written aside and moved in, so the watcher never sees it half written.
	tmp := filepath.Join(filepath.Dir(r.src), "big.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.src, "big.bin")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.replay()
		if got, ok := r.files["big.bin"]; ok {
			if !bytes.Equal(got, want) {
				t.Fatalf("travelled %d bytes, not the masked file", len(got))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file did not travel")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, _ := w.Secrets(); got["anthropic-api-key"] != 2 || got["private-key"] != 1 {
		t.Fatalf("counted %v", got)
	}
}

// TestSecretsWithholdSQLite: with withhold, a database that comes to hold a secret stops
// travelling: no record of it carries the key, and the withholding is counted.
func TestSecretsWithholdSQLite(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	r, w := secretsRig(t, config.SecretsWithhold)
	path := filepath.Join(r.src, "mem.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO notes VALUES(1, 'clean')"); err != nil {
		t.Fatal(err)
	}
	waitDBRecord := func() []journal.Record {
		var all []journal.Record
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			all = append(all, r.replay()...)
			for _, rec := range all {
				if rec.Path == "mem.db" && (rec.Op == journal.OpDBBase || rec.Op == journal.OpDBPages) {
					return all
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	if waitDBRecord() == nil {
		t.Fatal("the clean database did not travel")
	}
	key := testKey(rng)
	if _, err := db.Exec("INSERT INTO notes VALUES(2, ?)", fmt.Sprint("my key ", key)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, withheld := w.Secrets(); withheld > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing withheld")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	for _, rec := range r.replay() {
		if rec.Path == "mem.db" {
			t.Fatalf("a %v record of the database travelled after it took a secret", rec.Op)
		}
		if bytes.Contains(rec.Data, []byte(key[20:60])) {
			t.Fatal("the key travelled")
		}
	}
}

// TestSecretsWithholdLargeFile: with withhold, a file large enough that its chunks would
// travel ahead of its file record, holding a key near its end, sends nothing at all: no
// file record and no chunk.
func TestSecretsWithholdLargeFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	data := make([]byte, 40<<20)
	for i := range data {
		data[i] = "abcdefghij klmnopqrstuvwxyz\n"[rng.IntN(28)]
	}
	copy(data[len(data)-500:], " "+testKey(rng)+" ")
	r, w := secretsRig(t, config.SecretsWithhold)
	tmp := filepath.Join(filepath.Dir(r.src), "big.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.src, "big.bin")); err != nil {
		t.Fatal(err)
	}
	r.write("small.txt", "clean\n", false)
	r.expect("small.txt", "clean\n", false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, withheld := w.Secrets(); withheld > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing withheld")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	r.replay()
	if _, ok := r.files["big.bin"]; ok {
		t.Fatal("the file travelled")
	}
	if len(r.chunks) != 1 {
		t.Fatalf("%d chunks travelled; only small.txt's should have", len(r.chunks))
	}
}
