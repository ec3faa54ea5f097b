// Package crypt wraps an objstore.Store so that every object is encrypted with age on
// this host before it is stored and decrypted when it is read back: the object store
// (someone else's cloud) holds ciphertext only.
//
// Object names must not give content away either. Segment and manifest keys carry only
// the host, sequence numbers and times, so they are stored as they are. Chunk blobs are
// content-addressed (blobs/<id[:2]>/<id>, id = SHA-256 of the chunk), and a plaintext
// hash in a name would let anyone holding a candidate file prove it is stored; so a blob
// is stored under blobs/<yy>/<HMAC-SHA256(dedup key, id)> instead. Equal content under
// the same dedup key still gets the same name, so dedup keeps working.
//
// The dedup key is 32 random bytes made on first use and kept in Options.KeyDir. It is
// also uploaded, encrypted to the recipients, as keys/dedup-<8 hex>.age, so that a
// restore on another machine (or on this one after KeyDir was lost) can read it with the
// identity and find the blobs again. See Store for how readers use that keyring.
package crypt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/mmreplicate/mmreplicate/objstore"
)

// ageMagic opens every binary age file; an object without it was not written by this
// package.
const ageMagic = "age-encryption.org/v1\n"

// Sentinel errors. Errors are wrapped, so test with errors.Is; none of them is
// objstore.Temporary, since retrying cannot cure a key or data problem.
var (
	// ErrNoIdentity means an encrypted object was to be read but no identity is
	// configured.
	ErrNoIdentity = errors.New("encryption.identity_file is not set: objects in this store are encrypted")
	// ErrWrongIdentity means none of the configured identities can decrypt the object:
	// it was encrypted to other recipients.
	ErrWrongIdentity = errors.New("wrong identity: no key in encryption.identity_file can decrypt this object")
	// ErrNotEncrypted means an object in an encrypted store is plaintext (written
	// before encryption was turned on, or by something else). It is refused rather
	// than trusted, since anyone with write access to the bucket could have put it.
	ErrNotEncrypted = errors.New("object is not encrypted, but this store is")
	// ErrDamaged means an object looked encrypted but failed to decrypt or
	// authenticate: it was changed or truncated after it was written.
	ErrDamaged = errors.New("encrypted object is damaged")
	// ErrNoRecipients means a write was attempted on a store opened without
	// recipients (only an identity, to read).
	ErrNoRecipients = errors.New("encryption.recipients is empty: this store can be read but not written")
)

// Options configure encryption.
type Options struct {
	// Recipients are age public keys ("age1…", or "age1pq1…" for post-quantum ones);
	// every object written is readable by each of them. Adding one is key rotation:
	// objects written from then on are readable by the old and the new identity.
	Recipients []string
	// IdentityFile holds age secret keys, one a line; needed to read (restore,
	// verify, serve-s3, drills). A writer can do without.
	IdentityFile string
	// KeyDir is a local folder (the daemon's data_dir) where the dedup key is kept
	// as dedup.key. Empty: the key lives in memory only, so every run of a writer
	// starts a new key and dedup with earlier runs is lost (readers are unaffected).
	KeyDir string
}

// Store encrypts what it writes to an inner store and decrypts what it reads.
//
// Put, Get, Open, Stat and Delete take the same keys as any Store; keys under blobs/
// are mapped to their stored names on the way (see the package comment). To find a
// blob, a reader tries the dedup keys it knows: the one that found this id before
// (cached), the local one from KeyDir, then every keys/dedup-*.age its identity opens,
// newest first. A host that lost KeyDir writes with a new key from then on; its older
// blobs are still found through the uploaded keyring.
//
// List passes the inner listing through unchanged: blob names come back mapped (they
// cannot be given back to Get), and the keys/ objects show. Sizes reported by List and
// Stat are stored sizes, larger than the content by the age header (70 bytes plus 98
// per X25519 recipient), a 16-byte nonce and 16 bytes per 64 KiB (at least one): the
// exact plaintext size cannot be known without reading the object's header.
type Store struct {
	inner        objstore.Store
	recipients   []age.Recipient
	identities   []age.Identity
	identityFile string
	keys         *keyring
}

var _ objstore.Store = (*Store)(nil)

// New wraps inner. It reads the identity file and the local dedup key (when KeyDir
// holds one) but does no I/O on inner, so a target that is down at start-up does not
// fail it: the dedup key is uploaded before the first blob is written, and the keyring
// is read when the first blob is looked up. ctx is unused for that reason; it keeps
// the signature in line with the other store constructors.
func New(ctx context.Context, inner objstore.Store, o Options) (*Store, error) {
	if len(o.Recipients) == 0 && o.IdentityFile == "" {
		return nil, errors.New("encryption: set recipients (to write) or identity_file (to read), or both")
	}
	s := &Store{inner: inner, identityFile: o.IdentityFile}
	for i, r := range o.Recipients {
		r = strings.TrimSpace(r)
		if strings.HasPrefix(r, "AGE-SECRET-KEY-") {
			// Said plainly, and without echoing the key: a secret key in the recipients
			// list would end up in logs and config backups.
			return nil, fmt.Errorf("encryption.recipients[%d] is a secret key; recipients are the public keys (age1…)", i)
		}
		rs, err := age.ParseRecipients(strings.NewReader(r))
		if err != nil {
			return nil, fmt.Errorf("encryption.recipients[%d] %q: %v", i, r, err)
		}
		s.recipients = append(s.recipients, rs...)
	}
	if len(s.recipients) > 0 {
		// Recipients that cannot be used together (post-quantum beside classic ones)
		// are found now rather than at the first upload.
		if _, err := s.seal(nil); err != nil {
			return nil, fmt.Errorf("encryption.recipients: %w", err)
		}
	}
	if o.IdentityFile != "" {
		b, err := os.ReadFile(o.IdentityFile)
		if err != nil {
			return nil, fmt.Errorf("encryption.identity_file: %w", err)
		}
		if s.identities, err = age.ParseIdentities(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("encryption.identity_file %s: %v", o.IdentityFile, err)
		}
	}
	var err error
	if s.keys, err = newKeyring(s, o.KeyDir); err != nil {
		return nil, err
	}
	return s, nil
}

// String names the store for messages.
func (s *Store) String() string { return "encrypted " + s.inner.String() }

// Check checks the inner store.
func (s *Store) Check(ctx context.Context) error { return s.inner.Check(ctx) }

// List lists the inner store as it is (see Store).
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	return s.inner.List(ctx, prefix, fn)
}

// Put encrypts data to every recipient and stores it.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := objstore.ValidateKey(key); err != nil {
		return s.fail("put", key, err)
	}
	if len(s.recipients) == 0 {
		return s.fail("put", key, ErrNoRecipients)
	}
	if err := ctx.Err(); err != nil {
		return s.fail("put", key, err)
	}
	name, isBlob := blobName(key)
	stored := key
	var k *dedupKey
	if isBlob {
		var err error
		if k, err = s.keys.writeKey(ctx); err != nil {
			return s.fail("put", key, err)
		}
		stored = k.blobKey(name)
	}
	body, err := s.seal(data)
	if err != nil {
		return s.fail("put", key, err)
	}
	if err := s.inner.Put(ctx, stored, body); err != nil {
		return s.innerFail("put", key, stored, err)
	}
	if isBlob {
		s.keys.remember(name, k)
	}
	return nil
}

// Get fetches and decrypts the object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, s.fail("get", key, err)
	}
	var body []byte
	err := s.locate(ctx, "get", key, func(stored string) (err error) {
		body, err = s.inner.Get(ctx, stored)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.unseal(key, body)
}

// GetRange reads the whole object and returns the part asked for: objects are sealed
// whole, so an encrypted store gains nothing from a ranged read of the ciphertext.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	body, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 || off > int64(len(body)) || n > int64(len(body))-off {
		return nil, fmt.Errorf("crypt get range %s: %w: %d+%d of %d bytes", key, objstore.ErrShortRange, off, n, len(body))
	}
	return body[off : off+n], nil
}

// Open streams the decrypted object. Damage past the header shows as a Read error
// wrapping ErrDamaged.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return nil, s.fail("open", key, err)
	}
	var rc io.ReadCloser
	err := s.locate(ctx, "open", key, func(stored string) (err error) {
		rc, err = s.inner.Open(ctx, stored)
		return err
	})
	if err != nil {
		return nil, err
	}
	src := &recorder{r: rc}
	br := bufio.NewReader(src)
	head, err := br.Peek(len(ageMagic))
	if err != nil || string(head) != ageMagic {
		rc.Close()
		if src.err != nil && src.err != io.EOF {
			return nil, s.fail("open", key, src.err)
		}
		return nil, s.fail("open", key, ErrNotEncrypted)
	}
	if len(s.identities) == 0 {
		rc.Close()
		return nil, s.fail("open", key, ErrNoIdentity)
	}
	r, err := age.Decrypt(br, s.identities...)
	if err != nil {
		rc.Close()
		if src.err != nil && src.err != io.EOF {
			return nil, s.fail("open", key, src.err)
		}
		return nil, s.decryptFail("open", key, err)
	}
	return &reader{s: s, key: key, r: r, src: src, c: rc}, nil
}

// Stat reports the stored object's size (see Store) and time.
func (s *Store) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return objstore.ObjectInfo{}, s.fail("stat", key, err)
	}
	var oi objstore.ObjectInfo
	err := s.locate(ctx, "stat", key, func(stored string) (err error) {
		oi, err = s.inner.Stat(ctx, stored)
		return err
	})
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	oi.Key = key
	return oi, nil
}

// Delete removes the object; a blob is removed under every dedup key this store
// knows, so that it is gone whichever key wrote it.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return s.fail("delete", key, err)
	}
	name, isBlob := blobName(key)
	if !isBlob {
		return s.inner.Delete(ctx, key)
	}
	keys, err := s.keys.all(ctx)
	if err != nil {
		return s.fail("delete", key, err)
	}
	var errs []error
	for _, k := range keys {
		if err := s.inner.Delete(ctx, k.blobKey(name)); err != nil {
			errs = append(errs, s.innerFail("delete", key, k.blobKey(name), err))
		}
	}
	s.keys.forget(name)
	return errors.Join(errs...)
}

// locate runs op on the stored name of key: the key itself, or for a blob the mapped
// name under each dedup key that may have written it, until one is not ErrNotFound.
func (s *Store) locate(ctx context.Context, op, key string, try func(stored string) error) error {
	name, isBlob := blobName(key)
	if !isBlob {
		return try(key)
	}
	var innerErr error
	var stored string
	found, tried, err := s.keys.find(ctx, name, func(k *dedupKey) error {
		stored = k.blobKey(name)
		innerErr = try(stored)
		return innerErr
	})
	switch {
	case err != nil && err == innerErr:
		return s.innerFail(op, key, stored, err)
	case err != nil:
		return s.fail(op, key, err)
	case found == nil && tried == 0:
		return s.fail(op, key, objstore.ErrNotFound) // no dedup key anywhere: no blob was ever written
	case found == nil:
		return s.fail(op, key, fmt.Errorf("%w under any of the %d dedup keys known%s",
			objstore.ErrNotFound, tried, s.keys.unreadableNote()))
	}
	return nil
}

// seal encrypts data to every recipient.
func (s *Store) seal(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(data) + len(data)>>12 + 128*len(s.recipients) + 128)
	w, err := age.Encrypt(&buf, s.recipients...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// unseal decrypts a whole object read under key.
func (s *Store) unseal(key string, body []byte) ([]byte, error) {
	if !bytes.HasPrefix(body, []byte(ageMagic)) {
		return nil, s.fail("get", key, ErrNotEncrypted)
	}
	if len(s.identities) == 0 {
		return nil, s.fail("get", key, ErrNoIdentity)
	}
	r, err := age.Decrypt(bytes.NewReader(body), s.identities...)
	if err != nil {
		return nil, s.decryptFail("get", key, err)
	}
	var out bytes.Buffer
	out.Grow(len(body))
	if _, err := out.ReadFrom(r); err != nil {
		return nil, s.decryptFail("get", key, err)
	}
	return out.Bytes(), nil
}

// decryptFail sorts an age error into wrong identity or damage. The age error is
// kept as text only: it may wrap io.ErrUnexpectedEOF for a truncated object, which
// objstore.Temporary would take for a network hiccup worth retrying.
func (s *Store) decryptFail(op, key string, err error) error {
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return fmt.Errorf("%s: %s %s: %w (identity file %s)", s, op, key, ErrWrongIdentity, s.identityFile)
	}
	return fmt.Errorf("%s: %s %s: %w: %v", s, op, key, ErrDamaged, err)
}

func (s *Store) fail(op, key string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", s, op, key, err)
}

// innerFail wraps an inner store's error; for a blob the inner message names the
// stored (mapped) key, so the caller's key is put in front.
func (s *Store) innerFail(op, key, stored string, err error) error {
	if stored == key {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// blobName tells whether key is a blob key and returns what its stored name is
// derived from: the id for the canonical blobs/<id[:2]>/<id>, or "/" + the rest for any
// other key under blobs/ (the slash keeps the two kinds from ever colliding, since an
// id holds none).
func blobName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "blobs/")
	if !ok {
		return "", false
	}
	if dir, id, ok := strings.Cut(rest, "/"); ok && len(dir) == 2 && strings.HasPrefix(id, dir) && !strings.Contains(id, "/") {
		return id, true
	}
	return "/" + rest, true
}

// recorder remembers the inner stream's error, to tell a failed download (worth a
// retry) from damaged content (not).
type recorder struct {
	r   io.Reader
	err error
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// reader is what Open returns: the decrypting stream over the inner one.
type reader struct {
	s   *Store
	key string
	r   io.Reader
	src *recorder
	c   io.Closer
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	if r.src.err != nil && r.src.err != io.EOF {
		return n, fmt.Errorf("%s: read %s: %w", r.s, r.key, r.src.err)
	}
	return n, r.s.decryptFail("read", r.key, err)
}

func (r *reader) Close() error { return r.c.Close() }
