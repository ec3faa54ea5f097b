package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

// craftedStore is a store written with the project's own encoders into a folder, read by
// the real binary through a file:// target.
type craftedStore struct {
	t      *testing.T
	host   string
	st     *file.Store
	config string
	base   time.Time
}

func newCraftedStore(t *testing.T) *craftedStore {
	t.Helper()
	dir := t.TempDir()
	st, err := file.New(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	c := &craftedStore{t: t, host: "crafted", st: st, base: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	src := filepath.Join(dir, "agents")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("host: %s\ndata_dir: %s\nsources:\n  - name: sessions\n    path: %s\ns3:\n  url: file://%s\n",
		c.host, filepath.Join(dir, "data"), src, filepath.Join(dir, "bucket"))
	c.config = filepath.Join(dir, "mmreplicate.yml")
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *craftedStore) rec(seq uint64, op journal.Op, path string, off int64, data []byte) journal.Record {
	return journal.Record{Seq: seq, Time: c.base.Add(time.Duration(seq) * time.Second).UnixNano(), Op: op,
		Source: "sessions", Path: path, Offset: off, Mode: 0o644, Data: data}
}

// file returns the chunk record and the file record of a whole file, and stores its blob.
func (c *craftedStore) file(seq uint64, path, content string) []journal.Record {
	ref := journal.ChunkRef{Hash: sha256.Sum256([]byte(content)), Size: uint32(len(content))}
	if err := c.st.Put(context.Background(), manifest.BlobKey(ref.ID()), []byte(content)); err != nil {
		c.t.Fatal(err)
	}
	return []journal.Record{
		{Seq: seq, Time: c.base.Add(time.Duration(seq) * time.Second).UnixNano(), Op: journal.OpChunk, Path: ref.ID()},
		c.rec(seq+1, journal.OpFile, path, int64(len(content)), journal.EncodeChunks([]journal.ChunkRef{ref})),
	}
}

func (c *craftedStore) segment(recs ...journal.Record) {
	if err := c.st.Put(context.Background(), segment.Key(c.host, recs), segment.Encode(recs)); err != nil {
		c.t.Fatal(err)
	}
}

// manifest stores the index the records give.
func (c *craftedStore) manifest(recs ...journal.Record) {
	x := manifest.New(c.host)
	for i := range recs {
		if err := x.Apply(&recs[i]); err != nil {
			c.t.Fatal(err)
		}
	}
	body, err := manifest.Encode(x)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.st.Put(context.Background(), manifest.ObjectKey(x), body); err != nil {
		c.t.Fatal(err)
	}
}

// restoreFails runs the real restore and wants exit 1 with every text named.
func (c *craftedStore) restoreFails(want ...string) string {
	c.t.Helper()
	to := filepath.Join(c.t.TempDir(), "restore")
	code, out, errs := mmr(c.t, "restore", "--config", c.config, "--at", "latest", "--to", to)
	if code != 1 {
		c.t.Fatalf("restore: exit %d, want 1\n%s%s", code, out, errs)
	}
	for _, w := range want {
		if !strings.Contains(out+errs, w) {
			c.t.Fatalf("restore does not say %q:\n%s%s", w, out, errs)
		}
	}
	return to
}

// A restore that begins from a manifest holding every file whole, with records after it
// missing: the manifest is at 2, the segments hold 5-6.
func TestGapAfterWholeFileManifest(t *testing.T) {
	c := newCraftedStore(t)
	early := c.file(1, "notes.md", "# notes\n")
	c.segment(early...)
	c.manifest(early...)
	late := c.file(5, "later.md", "later\n")
	c.segment(late...)
	to := c.restoreFails("records 3-4 missing")
	// What could be rebuilt still was.
	if b, err := os.ReadFile(filepath.Join(to, "sessions", "later.md")); err != nil || string(b) != "later\n" {
		t.Fatalf("later.md: %q, %v", b, err)
	}
}

// A restore that begins from a manifest whose append-only content is replayed from the
// segments, then misses records 4-5.
func TestGapAfterAppendManifest(t *testing.T) {
	c := newCraftedStore(t)
	recs := []journal.Record{
		c.rec(1, journal.OpAppend, "s.jsonl", 0, []byte("{\"a\":1}\n")),
		c.rec(2, journal.OpAppend, "s.jsonl", 8, []byte("{\"a\":2}\n")),
		c.rec(3, journal.OpAppend, "s.jsonl", 16, []byte("{\"a\":3}\n")),
	}
	c.segment(recs[:2]...)
	c.segment(recs[2:]...)
	c.manifest(recs...)
	c.segment(c.rec(6, journal.OpAppend, "s.jsonl", 40, []byte("{\"a\":6}\n")), c.rec(7, journal.OpAppend, "other.jsonl", 0, []byte("{}\n")))
	to := c.restoreFails("records 4-5 missing", "sessions/s.jsonl: bytes 24-40 missing (record 6)")
	if b, err := os.ReadFile(filepath.Join(to, "sessions", "s.jsonl")); err != nil || string(b) != "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n" {
		t.Fatalf("s.jsonl: %q, %v (want the prefix before the gap)", b, err)
	}
}

// A restore that begins from no manifest: records 3-4 between two segments are missing,
// and a store whose first segment starts at 3 lacks records 1-2.
func TestGapWithoutManifest(t *testing.T) {
	c := newCraftedStore(t)
	c.segment(c.rec(1, journal.OpAppend, "a.jsonl", 0, []byte("1\n")), c.rec(2, journal.OpAppend, "a.jsonl", 2, []byte("2\n")))
	c.segment(c.rec(5, journal.OpAppend, "b.jsonl", 0, []byte("5\n")), c.rec(6, journal.OpAppend, "b.jsonl", 2, []byte("6\n")))
	c.restoreFails("records 3-4 missing")

	d := newCraftedStore(t)
	d.segment(d.rec(3, journal.OpAppend, "a.jsonl", 0, []byte("3\n")))
	d.restoreFails("records 1-2 missing")
}
