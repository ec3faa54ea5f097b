package crypt

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
)

const (
	// KeyFile is the name of the dedup key in Options.KeyDir: 64 hex digits. Losing
	// it loses nothing (a copy is in the store, and a new key is made), it only
	// restarts dedup.
	KeyFile = "dedup.key"
	// KeyPrefix starts the stored copies of dedup keys: keys/dedup-<8 hex>.age,
	// encrypted to the recipients. The 8 hex digits are the start of the key's
	// SHA-256, to tell keys apart; they reveal nothing of the key.
	KeyPrefix = "keys/dedup-"
	keySuffix = ".age"

	// refreshEvery bounds how often a miss re-reads the keyring: a long-running
	// reader (serve-s3, drills) must see keys that hosts upload later, but a store
	// with many missing blobs must not list keys/ once per blob.
	refreshEvery = 30 * time.Second
	// maxCached bounds the per-id cache of which key found a blob (about 150 bytes
	// an entry); when full it starts over, which only costs extra lookups.
	maxCached = 1 << 16
)

// dedupKey is one HMAC key that blob names are derived with.
type dedupKey struct {
	secret  []byte
	id      string // first 8 hex digits of SHA-256(secret)
	created time.Time
}

func newDedupKey(secret []byte, created time.Time) *dedupKey {
	sum := sha256.Sum256(secret)
	return &dedupKey{secret: secret, id: hex.EncodeToString(sum[:4]), created: created}
}

// blobKey is the stored name of a blob: blobs/<yy>/<hex HMAC-SHA256(key, name)>.
func (k *dedupKey) blobKey(name string) string {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(name))
	h := hex.EncodeToString(m.Sum(nil))
	return "blobs/" + h[:2] + "/" + h
}

// objectKey is where the key's encrypted copy is stored.
func (k *dedupKey) objectKey() string { return KeyPrefix + k.id + keySuffix }

// keyObject is the plaintext of a stored key.
type keyObject struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Key     string    `json:"key"` // hex
}

// keyring holds the dedup keys a Store knows: the local one (from KeyDir, or made by
// the first blob Put) and those read from keys/ in the store.
type keyring struct {
	s   *Store
	dir string

	wmu  sync.Mutex // serialises making and uploading the write key
	wkey *dedupKey  // the local key once its copy is uploaded by this process

	lmu sync.Mutex // one keyring load at a time

	mu         sync.Mutex
	local      *dedupKey
	ring       []*dedupKey // from keys/, newest first, without the local key
	seen       map[string]bool
	unreadable int
	loadedAt   time.Time
	lastHit    *dedupKey // the ring key that found the last blob, tried early
	cache      map[string]*dedupKey
}

func newKeyring(s *Store, dir string) (*keyring, error) {
	kr := &keyring{s: s, dir: dir, seen: map[string]bool{}, cache: map[string]*dedupKey{}}
	if dir == "" {
		return kr, nil
	}
	k, err := readKeyFile(filepath.Join(dir, KeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	kr.local = k
	return kr, nil
}

// readKeyFile loads a local dedup key; its creation time is the file's.
func readKeyFile(path string) (*dedupKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dedup key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dedup key: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) != 32 {
		return nil, fmt.Errorf("dedup key %s is damaged (want 64 hex digits): move it away and a new key is made (dedup restarts; nothing stored is lost)", path)
	}
	return newDedupKey(secret, fi.ModTime()), nil
}

// createKeyFile makes a new key in dir, unless another process just did, in which
// case that one is used: the file is linked into place, which fails if it exists.
func createKeyFile(dir string) (*dedupKey, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	if dir == "" {
		return newDedupKey(secret, time.Now()), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dedup key: %w", err)
	}
	final := filepath.Join(dir, KeyFile)
	f, err := os.CreateTemp(dir, ".dedup.key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("dedup key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(hex.EncodeToString(secret) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dedup key: %w", err)
	}
	err = os.Link(tmp, final)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(final)
	}
	if err != nil {
		// Some file systems have no hard links; only the daemon writes this file,
		// so a plain rename is safe enough there.
		if err = os.Rename(tmp, final); err != nil {
			return nil, fmt.Errorf("dedup key: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return readKeyFile(final)
}

// writeKey returns the key new blobs are named with, making it on first use and
// uploading its encrypted copy once per process before any blob depends on it (so
// that the copy is encrypted to the current recipients, which is what makes an added
// recipient able to find the blobs written from then on).
func (kr *keyring) writeKey(ctx context.Context) (*dedupKey, error) {
	kr.wmu.Lock()
	defer kr.wmu.Unlock()
	if kr.wkey != nil {
		return kr.wkey, nil
	}
	kr.mu.Lock()
	k := kr.local
	kr.mu.Unlock()
	if k == nil {
		var err error
		if k, err = createKeyFile(kr.dir); err != nil {
			return nil, err
		}
		kr.mu.Lock()
		kr.local = k
		kr.ring = slices.DeleteFunc(kr.ring, func(r *dedupKey) bool { return r.id == k.id })
		kr.mu.Unlock()
	}
	body, err := json.Marshal(keyObject{Version: 1, Created: k.created.UTC(), Key: hex.EncodeToString(k.secret)})
	if err != nil {
		return nil, err
	}
	sealed, err := kr.s.seal(body)
	if err != nil {
		return nil, err
	}
	if err := kr.s.inner.Put(ctx, k.objectKey(), sealed); err != nil {
		return nil, fmt.Errorf("upload dedup key %s: %w", k.objectKey(), err)
	}
	kr.wkey = k
	return k, nil
}

// candidates are the keys to try for a blob name, best first: the one that found it
// before, the local key, the ring key that found the last blob, then the ring, newest
// first.
func (kr *keyring) candidates(name string) []*dedupKey {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	out := make([]*dedupKey, 0, len(kr.ring)+3)
	for _, k := range []*dedupKey{kr.cache[name], kr.local, kr.lastHit} {
		if k != nil && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, k := range kr.ring {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// find calls try with the candidate keys until one finds the blob (it is returned) or
// try fails otherwise (that error is returned unchanged). When none finds it, the
// keyring is read (again, if it may have grown) and the new keys are tried. tried
// counts the keys tried.
func (kr *keyring) find(ctx context.Context, name string, try func(*dedupKey) error) (found *dedupKey, tried int, err error) {
	done := map[*dedupKey]bool{}
	attempt := func(keys []*dedupKey) (*dedupKey, error) {
		for _, k := range keys {
			if done[k] {
				continue
			}
			done[k] = true
			tried++
			err := try(k)
			if err == nil {
				kr.remember(name, k)
				return k, nil
			}
			if !errors.Is(err, objstore.ErrNotFound) {
				return nil, err
			}
		}
		return nil, nil
	}
	if found, err = attempt(kr.candidates(name)); found != nil || err != nil {
		return found, tried, err
	}
	if len(kr.s.identities) > 0 && kr.stale() {
		if err := kr.load(ctx); err != nil {
			return nil, tried, err
		}
		if found, err = attempt(kr.candidates(name)); found != nil || err != nil {
			return found, tried, err
		}
	}
	if tried == 0 {
		kr.mu.Lock()
		unreadable := kr.unreadable
		kr.mu.Unlock()
		switch {
		case len(kr.s.identities) == 0:
			return nil, 0, fmt.Errorf("%w (blob names are derived from a dedup key, and there is none in the key folder to find them with)", ErrNoIdentity)
		case unreadable > 0:
			return nil, 0, fmt.Errorf("%w: none of the %d dedup keys under keys/ opens with identity file %s",
				ErrWrongIdentity, unreadable, kr.s.identityFile)
		}
	}
	return nil, tried, nil
}

func (kr *keyring) stale() bool {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	return kr.loadedAt.IsZero() || time.Since(kr.loadedAt) > refreshEvery
}

// load reads the key copies under keys/ that it has not read yet. Copies no identity
// opens are counted, not fatal: several hosts may share a bucket with different
// recipients.
func (kr *keyring) load(ctx context.Context) error {
	kr.lmu.Lock()
	defer kr.lmu.Unlock()
	if !kr.stale() {
		return nil // another goroutine just did
	}
	var names []string
	err := kr.s.inner.List(ctx, KeyPrefix, func(oi objstore.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, keySuffix) {
			names = append(names, oi.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the dedup keys: %w", err)
	}
	for _, name := range names {
		kr.mu.Lock()
		seen := kr.seen[name]
		kr.mu.Unlock()
		if seen {
			continue
		}
		body, err := kr.s.inner.Get(ctx, name)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("read the dedup keys: %w", err)
		}
		k, err := kr.parse(name, body)
		kr.mu.Lock()
		kr.seen[name] = true
		if err != nil {
			kr.unreadable++
		} else if kr.local == nil || kr.local.id != k.id {
			kr.ring = append(kr.ring, k)
		}
		kr.mu.Unlock()
	}
	kr.mu.Lock()
	slices.SortStableFunc(kr.ring, func(a, b *dedupKey) int { return b.created.Compare(a.created) })
	kr.loadedAt = time.Now()
	kr.mu.Unlock()
	return nil
}

// parse decrypts a key copy and checks it is the key its name says.
func (kr *keyring) parse(name string, body []byte) (*dedupKey, error) {
	plain, err := kr.s.unseal(name, body)
	if err != nil {
		return nil, err
	}
	var ko keyObject
	if err := json.Unmarshal(plain, &ko); err != nil {
		return nil, fmt.Errorf("dedup key %s: %w", name, err)
	}
	secret, err := hex.DecodeString(ko.Key)
	if err != nil || len(secret) != 32 {
		return nil, fmt.Errorf("dedup key %s: not a 32-byte key", name)
	}
	k := newDedupKey(secret, ko.Created)
	if k.objectKey() != name {
		return nil, fmt.Errorf("dedup key %s: holds key %s", name, k.id)
	}
	return k, nil
}

// all returns every key known, reading the keyring first when there is an identity.
func (kr *keyring) all(ctx context.Context) ([]*dedupKey, error) {
	if len(kr.s.identities) > 0 && kr.stale() {
		if err := kr.load(ctx); err != nil {
			return nil, err
		}
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	var out []*dedupKey
	if kr.local != nil {
		out = append(out, kr.local)
	}
	return append(out, kr.ring...), nil
}

// remember notes which key found a blob.
func (kr *keyring) remember(name string, k *dedupKey) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if k == kr.local {
		return // tried first anyway, after the cache
	}
	kr.lastHit = k
	if len(kr.cache) >= maxCached {
		clear(kr.cache)
	}
	kr.cache[name] = k
}

// forget drops a deleted blob from the cache.
func (kr *keyring) forget(name string) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	delete(kr.cache, name)
}

// unreadableNote says, for a not-found message, how many keys could not be read.
func (kr *keyring) unreadableNote() string {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if kr.unreadable == 0 {
		return ""
	}
	return fmt.Sprintf("; %d more under keys/ do not open with identity file %s", kr.unreadable, kr.s.identityFile)
}
