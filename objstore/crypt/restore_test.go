package crypt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/segment"
)

// TestRestoreVerifyDrill runs the readers of the store over an encrypted one: verify
// (which must find blobs by key, not by listing), a drill, and both with the wrong
// identity.
func TestRestoreVerifyDrill(t *testing.T) {
	rcp, idFile := newIdentity(t)
	_, otherID := newIdentity(t)
	inner := newFile(t)
	s := newCrypt(t, inner, Options{Recipients: []string{rcp}, IdentityFile: idFile, KeyDir: t.TempDir()})
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)

	const marker = "a plaintext line of a session"
	chunk := []byte("whole file content: " + marker)
	ref := journal.ChunkRef{Hash: sha256.Sum256(chunk), Size: uint32(len(chunk))}
	if err := s.Put(ctx, manifest.BlobKey(ref.ID()), chunk); err != nil {
		t.Fatal(err)
	}
	recs := []journal.Record{
		{Seq: 1, Time: t0.UnixNano(), Op: journal.OpAppend, Source: "sessions", Path: "private/plan.jsonl", Mode: 0o600, Data: []byte(marker + "\n")},
		{Seq: 2, Time: t0.Add(time.Second).UnixNano(), Op: journal.OpFile, Source: "ws", Path: "notes.md", Mode: 0o644,
			Offset: int64(len(chunk)), Data: journal.EncodeChunks([]journal.ChunkRef{ref})},
	}
	if err := s.Put(ctx, segment.Key("h", recs), segment.Encode(recs)); err != nil {
		t.Fatal(err)
	}
	for name, body := range storedObjects(t, inner) {
		for _, leak := range []string{marker, "private/plan", "notes.md", ref.ID()} {
			if strings.Contains(name, leak) || bytes.Contains(body, []byte(leak)) {
				t.Errorf("%s: %q in the clear", name, leak)
			}
		}
	}

	rep, err := restore.Verify(ctx, s, nil, 4, true)
	if err != nil || !rep.OK() || rep.Blobs != 1 || len(rep.Hosts) != 1 || rep.Hosts[0].Records != 2 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	res, err := restore.Drill(ctx, s, "h", time.Time{}, t.TempDir())
	if err != nil || res.Files != 2 {
		t.Fatalf("drill: %v %+v", err, res)
	}

	// The wrong identity fails clearly, naming objects.
	wrong := newCrypt(t, inner, Options{IdentityFile: otherID})
	rep, err = restore.Verify(ctx, wrong, nil, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(append(rep.Problems, rep.Hosts[0].Problems...), "\n")
	if rep.OK() || !strings.Contains(all, "wrong identity") || !strings.Contains(all, segment.Key("h", recs)) {
		t.Fatalf("verify with the wrong identity:\n%s", all)
	}
	if _, err := restore.Drill(ctx, wrong, "h", time.Time{}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "wrong identity") {
		t.Fatalf("drill with the wrong identity: %v", err)
	}

	// A changed blob (stored name kept) fails verify --read-data and the drill.
	var blobFile string
	filepath.WalkDir(filepath.Join(inner.Dir(), "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			blobFile = p
		}
		return err
	})
	other, _ := s.seal([]byte(strings.ToUpper(string(chunk))))
	if err := os.WriteFile(blobFile, other, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _ = restore.Verify(ctx, s, nil, 4, true)
	if all := strings.Join(rep.Problems, "\n"); !strings.Contains(all, manifest.BlobKey(ref.ID())+": content does not match its hash") {
		t.Fatalf("verify --read-data over a changed blob: %s", all)
	}
	res, err = restore.Drill(ctx, s, "h", time.Time{}, t.TempDir())
	if !errors.Is(err, restore.ErrDrillFailed) || !strings.Contains(strings.Join(res.Problems, "\n"), "ws/notes.md") {
		t.Fatalf("drill over a changed blob: %v %+v", err, res)
	}
}
