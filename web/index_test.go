package web

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore"
)

// countingStore counts the content objects (blobs) read through it.
type countingStore struct {
	objstore.Store
	blobs atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, "blobs/") {
		s.blobs.Add(1)
	}
	return s.Store.Get(ctx, key)
}

func (s *countingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "blobs/") {
		s.blobs.Add(1)
	}
	return s.Store.Open(ctx, key)
}

// files lists the regular files under dir.
func files(t *testing.T, dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// Trees and the status page come from the index alone: no content is read or written;
// opening one file rebuilds that file only.
func TestListingsReadNoContent(t *testing.T) {
	f := scenario(t)
	cs := &countingStore{Store: f.store}
	f.store = cs
	cache := t.TempDir()
	srv := f.serveIn(cache)
	var tv treeView
	getJSON(t, srv, "/api/tree?dir=workspaces", &tv)
	if len(tv.Entries) != 3 || tv.Entries[1].Name != "notes.md" || tv.Entries[1].Size != 17 || tv.Entries[1].Time != "2026-11-26T18:00:10Z" {
		t.Fatalf("tree: %+v", tv.Entries)
	}
	getJSON(t, srv, "/api/tree?at=2026-11-26T18:00:05Z", &tv)
	var sv statusView
	getJSON(t, srv, "/api/status", &sv)
	if sv.Files != 4 || sv.Bytes != 17+40+9+int64(len(`{"role":"user","content":"hello there"}`+"\n"))+int64(len(`{"role":"assistant","content":[{"type":"text","text":"calling"},{"type":"tool_use","name":"grep","input":{"q":"x"}}]}`+"\n"+`{"role":"tool","content":"found it"}`+"\n")) {
		t.Fatalf("status: %+v", sv)
	}
	if n := cs.blobs.Load(); n != 0 {
		t.Fatalf("listings read %d content objects", n)
	}
	if got := files(t, cache); len(got) != 0 {
		t.Fatalf("listings wrote %q", got)
	}
	var fv fileView
	getJSON(t, srv, "/api/file?path=workspaces/notes.md", &fv)
	if fv.Kind != "text" || *fv.Text != "one\n2\nthree\nfour\n" || fv.Size != 17 {
		t.Fatalf("file: %+v", fv)
	}
	if n := cs.blobs.Load(); n != 1 {
		t.Fatalf("opening one file read %d content objects", n)
	}
	if got := files(t, cache); len(got) != 1 || !strings.HasSuffix(got[0], filepath.FromSlash("workspaces/notes.md")) {
		t.Fatalf("opening one file wrote %q", got)
	}
}

// A content object missing from the store is not in the index: it shows when the file is
// opened, and downloads of the file or a folder holding it are refused unless partial=1.
func TestMissingContentObject(t *testing.T) {
	f := scenario(t)
	lost := "lost content\n"
	ref := journal.ChunkRef{Hash: sha256.Sum256([]byte(lost)), Size: uint32(len(lost))}
	f.put(journal.Record{Time: at(20 * time.Second), Op: journal.OpFile, Source: "workspaces", Path: "docs/lost.md",
		Offset: int64(len(lost)), Mode: 0o644, Data: journal.EncodeChunks([]journal.ChunkRef{ref})})
	srv := f.serve()
	var tv treeView
	getJSON(t, srv, "/api/tree?dir=workspaces/docs", &tv)
	if len(tv.Entries) != 1 || tv.Entries[0].Size != int64(len(lost)) {
		t.Fatalf("tree: %+v", tv)
	}
	resp, body := get(t, srv, "/raw?path=workspaces/docs/lost.md", true)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "incomplete") {
		t.Fatalf("raw of a lost file: %d %s", resp.StatusCode, body)
	}
	for _, dir := range []string{"workspaces/docs", "workspaces", ""} {
		resp, body = get(t, srv, "/download?dir="+dir, true)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "incomplete") {
			t.Fatalf("download of %q holding a lost file: %d %s", dir, resp.StatusCode, body)
		}
	}
	// Another folder rebuilds only itself, so it is whole.
	resp, body = get(t, srv, "/download?dir=sessions", true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download of a whole folder: %d %s", resp.StatusCode, body)
	}
	for _, p := range []string{"/api/file?path=workspaces/docs/lost.md", "/raw?path=workspaces/docs/lost.md&partial=1"} {
		resp, body = get(t, srv, p, true)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "workspaces/docs/lost.md cannot be rebuilt") {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
}
