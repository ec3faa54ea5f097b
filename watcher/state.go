package watcher

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mmreplicate/mmreplicate/journal"
)

// probeBytes is how much of a file's head and of the bytes just before the shipped
// offset is hashed to notice a file that was rewritten rather than appended to.
const probeBytes = 4096

// fileState is what the watcher remembers of one file. It is saved only after the records
// that produced it are fsynced in the journal; a crash in between makes the watcher send
// the same bytes again at the same offsets, which restore applies idempotently.
type fileState struct {
	Kind   string   `json:"kind"` // "append" or "file"
	Dev    uint64   `json:"dev"`
	Ino    uint64   `json:"ino"`
	Offset int64    `json:"offset"` // append: bytes shipped; file: size shipped
	Head   [32]byte `json:"head"`   // append: hash of the first min(Offset, probeBytes) bytes
	Tail   [32]byte `json:"tail"`   // append: hash of the probeBytes before Offset; file: content hash
	Mode   uint32   `json:"mode"`
	MTime  int64    `json:"mtime,omitempty"` // file, db: modification time shipped
	// db: the WAL's size and time when last read, so the scan notices missed commits.
	WalSize  int64 `json:"wal_size,omitempty"`
	WalMTime int64 `json:"wal_mtime,omitempty"`
}

// savedState is the file the watcher keeps under data_dir.
type savedState struct {
	Version int                   `json:"version"`
	Files   map[string]*fileState `json:"files"`
}

func loadState(path string) (map[string]*fileState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*fileState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watcher state: %w", err)
	}
	var s savedState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("watcher state %s: %w (delete it to re-send every file whole)", path, err)
	}
	if s.Files == nil {
		s.Files = map[string]*fileState{}
	}
	return s.Files, nil
}

func saveState(path string, files map[string]*fileState) error {
	b, err := json.Marshal(savedState{Version: 1, Files: files})
	if err != nil {
		return fmt.Errorf("watcher state: %w", err)
	}
	return journal.WriteFileAtomic(path, b)
}

// hashRange hashes n bytes of f at off.
func hashRange(f *os.File, off, n int64) ([32]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// probes returns the head and tail hashes of f for a shipped offset.
func probes(f *os.File, offset int64) (head, tail [32]byte, err error) {
	head, err = hashRange(f, 0, min(offset, probeBytes))
	if err != nil {
		return
	}
	start := max(0, offset-probeBytes)
	tail, err = hashRange(f, start, offset-start)
	return
}
