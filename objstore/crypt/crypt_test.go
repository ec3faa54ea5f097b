package crypt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/objstore/objstoretest"
)

// newIdentity makes an X25519 identity and writes it to an identity file.
func newIdentity(t *testing.T) (recipient, idFile string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile = filepath.Join(t.TempDir(), "age.key")
	if err := os.WriteFile(idFile, []byte("# test identity\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String(), idFile
}

func newFile(t *testing.T) *file.Store {
	t.Helper()
	st, err := file.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newCrypt(t *testing.T, inner objstore.Store, o Options) *Store {
	t.Helper()
	s, err := New(context.Background(), inner, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plainSizes reports plaintext sizes in Stat and List, as the conformance suite
// expects; the Store itself reports stored sizes (see Store). It reads each object's
// header from the inner store and applies the age overhead, so the suite also checks
// that arithmetic.
type plainSizes struct{ *Store }

func (p plainSizes) plain(ctx context.Context, key string, stored int64) (int64, error) {
	r, err := p.inner.Open(ctx, key)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	hdr, err := age.ExtractHeader(r)
	if err != nil {
		return 0, err
	}
	const chunk, tag, nonce = 64 << 10, 16, 16
	payload := stored - int64(len(hdr)) - nonce
	chunks := max(1, (payload+chunk+tag-1)/(chunk+tag))
	return payload - chunks*tag, nil
}

func (p plainSizes) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	oi, err := p.Store.Stat(ctx, key)
	if err == nil {
		oi.Size, err = p.plain(ctx, key, oi.Size)
	}
	return oi, err
}

func (p plainSizes) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	return p.Store.List(ctx, prefix, func(oi objstore.ObjectInfo) error {
		var err error
		if oi.Size, err = p.plain(ctx, oi.Key, oi.Size); err != nil {
			return err
		}
		return fn(oi)
	})
}

func TestConformance(t *testing.T) {
	rcp, idFile := newIdentity(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return plainSizes{newCrypt(t, newFile(t), Options{Recipients: []string{rcp}, IdentityFile: idFile, KeyDir: t.TempDir()})}
	})
}

// storedObjects reads every object of a folder store as it lies on disk.
func storedObjects(t *testing.T, st *file.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(st.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(st.Dir(), p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func blobKeyOf(data []byte) (id, key string) {
	sum := sha256.Sum256(data)
	id = hex.EncodeToString(sum[:])
	return id, manifest.BlobKey(id)
}

func TestNothingInTheClear(t *testing.T) {
	rcp, idFile := newIdentity(t)
	inner := newFile(t)
	keyDir := t.TempDir()
	s := newCrypt(t, inner, Options{Recipients: []string{rcp}, IdentityFile: idFile, KeyDir: keyDir})
	ctx := context.Background()
	const marker = "MARKER-plaintext-line-of-a-session"
	seg := []byte(`{"path":"sessions/secret-plan.jsonl","line":"` + marker + `"}`)
	chunk := bytes.Repeat([]byte(marker+"\n"), 5000) // several age chunks
	id, bkey := blobKeyOf(chunk)
	if err := s.Put(ctx, "hosts/h/segments/1-1_x.seg", seg); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, bkey, chunk); err != nil {
		t.Fatal(err)
	}
	objs := storedObjects(t, inner)
	var blobs, keys int
	for name, body := range objs {
		for _, leak := range []string{marker, "secret-plan", id, id[:16]} {
			if strings.Contains(name, leak) || bytes.Contains(body, []byte(leak)) {
				t.Errorf("%s: %q in the clear", name, leak)
			}
		}
		if !bytes.HasPrefix(body, []byte(ageMagic)) {
			t.Errorf("%s: not an age file", name)
		}
		switch {
		case strings.HasPrefix(name, "blobs/"):
			blobs++
			if parts := strings.Split(name, "/"); len(parts) != 3 || len(parts[2]) != 64 || parts[2][:2] != parts[1] {
				t.Errorf("blob stored as %s, want blobs/<yy>/<64 hex>", name)
			}
		case strings.HasPrefix(name, KeyPrefix) && strings.HasSuffix(name, ".age"):
			keys++
		}
	}
	if blobs != 1 || keys != 1 || len(objs) != 3 {
		t.Fatalf("stored %d objects (%d blobs, %d keys): %v", len(objs), blobs, keys, objs)
	}
	// The local key is private to the host.
	if fi, err := os.Stat(filepath.Join(keyDir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("local dedup key: %v %v", fi, err)
	}
	// Reads give the plaintext back, whole and streamed.
	if got, err := s.Get(ctx, bkey); err != nil || !bytes.Equal(got, chunk) {
		t.Fatalf("Get blob: %d bytes, %v", len(got), err)
	}
	r, err := s.Open(ctx, bkey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, chunk) {
		t.Fatalf("Open blob: %d bytes, %v", len(got), err)
	}
	if oi, err := s.Stat(ctx, bkey); err != nil || oi.Key != bkey || oi.Size <= int64(len(chunk)) {
		t.Fatalf("Stat blob = %+v, %v", oi, err)
	}
}

func TestDedup(t *testing.T) {
	rcp, idFile := newIdentity(t)
	inner := newFile(t)
	keyDir := t.TempDir()
	ctx := context.Background()
	a, b := []byte("same content"), []byte("other content")
	_, ka := blobKeyOf(a)
	_, kb := blobKeyOf(b)
	for range 2 { // the second round is a restarted daemon with the same key folder
		s := newCrypt(t, inner, Options{Recipients: []string{rcp}, IdentityFile: idFile, KeyDir: keyDir})
		for _, c := range []struct {
			k string
			d []byte
		}{{ka, a}, {ka, a}, {kb, b}} {
			if err := s.Put(ctx, c.k, c.d); err != nil {
				t.Fatal(err)
			}
		}
	}
	var blobs []string
	inner.List(ctx, "blobs/", func(oi objstore.ObjectInfo) error { blobs = append(blobs, oi.Key); return nil })
	if len(blobs) != 2 {
		t.Fatalf("equal content did not dedup: %v", blobs)
	}
}

// TestSharedKeyDir is several targets of one daemon: each is its own Store over the
// same key folder, writing at once, and all must settle on one key.
func TestSharedKeyDir(t *testing.T) {
	rcp, _ := newIdentity(t)
	keyDir := t.TempDir()
	ctx := context.Background()
	inners := []*file.Store{newFile(t), newFile(t), newFile(t)}
	done := make(chan error)
	for _, inner := range inners {
		go func() {
			s, err := New(ctx, inner, Options{Recipients: []string{rcp}, KeyDir: keyDir})
			if err == nil {
				_, key := blobKeyOf([]byte("x"))
				err = s.Put(ctx, key, []byte("x"))
			}
			done <- err
		}()
	}
	for range inners {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, inner := range inners {
		inner.List(ctx, "", func(oi objstore.ObjectInfo) error { names = append(names, oi.Key); return nil })
	}
	if len(names) != 6 || names[0] != names[2] || names[2] != names[4] || names[1] != names[3] || names[3] != names[5] {
		t.Fatalf("targets disagree on the dedup key: %v", names)
	}
}

func TestMissingAndWrongIdentity(t *testing.T) {
	rcpA, idA := newIdentity(t)
	_, idB := newIdentity(t)
	inner := newFile(t)
	ctx := context.Background()
	chunk := []byte("chunk")
	_, bkey := blobKeyOf(chunk)
	const seg = "hosts/h/segments/1-1_x.seg"

	// A writer without an identity writes, and can still Stat its own blobs.
	w := newCrypt(t, inner, Options{Recipients: []string{rcpA}, KeyDir: t.TempDir()})
	if err := w.Put(ctx, seg, []byte("records")); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctx, bkey, chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Stat(ctx, bkey); err != nil {
		t.Fatalf("writer Stat of its blob: %v", err)
	}
	for _, key := range []string{seg, bkey} {
		_, err := w.Get(ctx, key)
		if !errors.Is(err, ErrNoIdentity) || objstore.Temporary(err) || !strings.Contains(err.Error(), "identity_file is not set") {
			t.Fatalf("Get %s without identity: %v", key, err)
		}
		r, err := w.Open(ctx, key)
		if r != nil || !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("Open %s without identity: %v", key, err)
		}
	}
	// A reader elsewhere without identity cannot even find blobs.
	if _, err := newCrypt(t, inner, Options{Recipients: []string{rcpA}}).Stat(ctx, bkey); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Stat of a blob with no key and no identity: %v", err)
	}

	// The wrong identity: a clear error naming the object.
	r := newCrypt(t, inner, Options{IdentityFile: idB})
	_, err := r.Get(ctx, seg)
	if !errors.Is(err, ErrWrongIdentity) || !strings.Contains(err.Error(), seg) || objstore.Temporary(err) {
		t.Fatalf("Get with the wrong identity: %v", err)
	}
	if _, err := r.Open(ctx, seg); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("Open with the wrong identity: %v", err)
	}
	if _, err := r.Get(ctx, bkey); !errors.Is(err, ErrWrongIdentity) || !strings.Contains(err.Error(), bkey) {
		t.Fatalf("Get blob with the wrong identity: %v", err)
	}
	// A reader without recipients cannot write.
	if err := r.Put(ctx, "x", []byte("x")); !errors.Is(err, ErrNoRecipients) {
		t.Fatalf("Put without recipients: %v", err)
	}

	// The right identity, on another machine (no key folder): everything reads.
	ok := newCrypt(t, inner, Options{IdentityFile: idA})
	if got, err := ok.Get(ctx, bkey); err != nil || string(got) != "chunk" {
		t.Fatalf("Get blob with the right identity: %q %v", got, err)
	}
	if _, err := ok.Get(ctx, manifest.BlobKey(strings.Repeat("ab", 32))); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("absent blob: %v", err)
	}
}

func TestRefusesPlaintextAndDamage(t *testing.T) {
	rcp, idFile := newIdentity(t)
	inner := newFile(t)
	s := newCrypt(t, inner, Options{Recipients: []string{rcp}, IdentityFile: idFile, KeyDir: t.TempDir()})
	ctx := context.Background()
	// Written before encryption was on, or by someone with write access to the bucket.
	if err := inner.Put(ctx, "hosts/h/manifests/1_x.man", []byte("plain manifest")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "hosts/h/manifests/1_x.man"); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("plaintext object: %v", err)
	}
	if _, err := s.Open(ctx, "hosts/h/manifests/1_x.man"); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("plaintext object (Open): %v", err)
	}
	// A flipped byte, and a cut-off object.
	big := bytes.Repeat([]byte("0123456789"), 20000)
	if err := s.Put(ctx, "k", big); err != nil {
		t.Fatal(err)
	}
	body, _ := inner.Get(ctx, "k")
	flipped := bytes.Clone(body)
	flipped[len(flipped)-100] ^= 1
	for name, bad := range map[string][]byte{"flipped": flipped, "cut": body[:len(body)-70000]} {
		inner.Put(ctx, "k", bad)
		if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrDamaged) || objstore.Temporary(err) {
			t.Fatalf("%s: Get: %v (temporary %v)", name, err, objstore.Temporary(err))
		}
		r, err := s.Open(ctx, "k")
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if !errors.Is(err, ErrDamaged) || objstore.Temporary(err) {
			t.Fatalf("%s: Open: %v", name, err)
		}
	}
}

// TestRotation adds a recipient: objects written from then on open with either
// identity, older ones with the old identity only.
func TestRotation(t *testing.T) {
	rcpA, idA := newIdentity(t)
	rcpB, idB := newIdentity(t)
	inner := newFile(t)
	keyDir := t.TempDir()
	ctx := context.Background()
	old, neu := []byte("written before rotation"), []byte("written after rotation")
	_, oldKey := blobKeyOf(old)
	_, newKey := blobKeyOf(neu)

	before := newCrypt(t, inner, Options{Recipients: []string{rcpA}, KeyDir: keyDir})
	if err := before.Put(ctx, "hosts/h/segments/1-1_x.seg", old); err != nil {
		t.Fatal(err)
	}
	if err := before.Put(ctx, oldKey, old); err != nil {
		t.Fatal(err)
	}
	after := newCrypt(t, inner, Options{Recipients: []string{rcpA, rcpB}, KeyDir: keyDir})
	if err := after.Put(ctx, "hosts/h/segments/2-2_x.seg", neu); err != nil {
		t.Fatal(err)
	}
	if err := after.Put(ctx, newKey, neu); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idFile string
		key    string
		want   []byte
	}{
		{idA, "hosts/h/segments/1-1_x.seg", old},
		{idA, oldKey, old},
		{idA, "hosts/h/segments/2-2_x.seg", neu},
		{idA, newKey, neu},
		{idB, "hosts/h/segments/2-2_x.seg", neu},
		{idB, newKey, neu},
		{idB, "hosts/h/segments/1-1_x.seg", nil},
		// The old blob's name is found (the key copy was re-encrypted to both), but
		// its content was encrypted to A only.
		{idB, oldKey, nil},
	} {
		// A fresh reader per case, with no key folder: a restore on another machine.
		got, err := newCrypt(t, inner, Options{IdentityFile: c.idFile}).Get(ctx, c.key)
		if c.want == nil {
			if !errors.Is(err, ErrWrongIdentity) {
				t.Errorf("%s with %s: %v, want ErrWrongIdentity", c.key, filepath.Base(filepath.Dir(c.idFile)), err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %q %v", c.key, got, err)
		}
	}
}

// TestRebuiltHost loses the key folder: the host writes with a new key, and readers
// still find the blobs of both keys through the keyring in the store.
func TestRebuiltHost(t *testing.T) {
	rcp, idFile := newIdentity(t)
	inner := newFile(t)
	ctx := context.Background()
	first, second := []byte("before the rebuild"), []byte("after the rebuild")
	_, k1 := blobKeyOf(first)
	_, k2 := blobKeyOf(second)
	if err := newCrypt(t, inner, Options{Recipients: []string{rcp}, KeyDir: t.TempDir()}).Put(ctx, k1, first); err != nil {
		t.Fatal(err)
	}
	rebuiltDir := t.TempDir()
	rebuilt := newCrypt(t, inner, Options{Recipients: []string{rcp}, IdentityFile: idFile, KeyDir: rebuiltDir})
	if err := rebuilt.Put(ctx, k2, second); err != nil {
		t.Fatal(err)
	}
	var keys []string
	inner.List(ctx, KeyPrefix, func(oi objstore.ObjectInfo) error { keys = append(keys, oi.Key); return nil })
	if len(keys) != 2 {
		t.Fatalf("keyring: %v, want two keys", keys)
	}
	for _, s := range []*Store{rebuilt, newCrypt(t, inner, Options{IdentityFile: idFile})} {
		for k, want := range map[string][]byte{k1: first, k2: second} {
			if got, err := s.Get(ctx, k); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %q %v", k, got, err)
			}
			if _, err := s.Stat(ctx, k); err != nil {
				t.Fatalf("Stat %s: %v", k, err)
			}
		}
	}
	// Delete finds the blob whichever key wrote it.
	if err := rebuilt.Delete(ctx, k1); err != nil {
		t.Fatal(err)
	}
	if _, err := rebuilt.Stat(ctx, k1); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, idFile := newIdentity(t)
	inner := newFile(t)
	id, _ := age.GenerateX25519Identity()
	pq, _ := age.GenerateHybridIdentity()
	for name, o := range map[string]Options{
		"nothing":          {},
		"bad recipient":    {Recipients: []string{"age1notakey"}},
		"secret key":       {Recipients: []string{id.String()}},
		"mixed pq":         {Recipients: []string{id.Recipient().String(), pq.Recipient().String()}},
		"no identity file": {IdentityFile: filepath.Join(t.TempDir(), "absent")},
		"not an identity":  {IdentityFile: idFile + ".nope"},
	} {
		if name == "not an identity" {
			os.WriteFile(o.IdentityFile, []byte("age1 is not a secret key\n"), 0o600)
		}
		_, err := New(context.Background(), inner, o)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "AGE-SECRET-KEY-1") {
			t.Errorf("%s: error shows the secret key: %v", name, err)
		}
	}
	keyDir := t.TempDir()
	os.WriteFile(filepath.Join(keyDir, KeyFile), []byte("short\n"), 0o600)
	if _, err := New(context.Background(), inner, Options{Recipients: []string{id.Recipient().String()}, KeyDir: keyDir}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged key file: %v", err)
	}
}

func TestPostQuantumRecipient(t *testing.T) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "age.key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	s := newCrypt(t, newFile(t), Options{Recipients: []string{id.Recipient().String()}, IdentityFile: idFile, KeyDir: t.TempDir()})
	ctx := context.Background()
	_, key := blobKeyOf([]byte("pq"))
	if err := s.Put(ctx, key, []byte("pq")); err != nil {
		t.Fatal(err)
	}
	if got, err := newCrypt(t, s.inner, Options{IdentityFile: idFile}).Get(ctx, key); err != nil || string(got) != "pq" {
		t.Fatalf("%q %v", got, err)
	}
}
