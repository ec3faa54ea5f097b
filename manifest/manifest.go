// Package manifest keeps the index of a host's replicated state — every live path with
// its kind, size, mode and, for whole files, chunk list — and stores it periodically as a
// manifest object, so that a restore at T reads one manifest plus the segments after it
// (and, for append-only files, the records since their current content began) however
// long the history is.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/state"
)

// Kinds of entries (package state owns them).
const (
	KindAppend  = state.KindAppend
	KindFile    = state.KindFile
	KindSymlink = state.KindSymlink
	KindDir     = state.KindDir
	KindDB      = state.KindDB
)

// ErrCorrupt is returned (wrapped) when a manifest object cannot be read.
var ErrCorrupt = errors.New("corrupt manifest")

// Entry is the state of one path (see state.Entry).
type Entry = state.Entry

// Index is the state of a host after every record up to Seq.
type Index struct {
	Host  string            `json:"host"`
	Seq   uint64            `json:"seq"`
	Time  int64             `json:"time"`
	Files map[string]*Entry `json:"files"` // key: source + "/" + path
	// Compacted marks a manifest written by compaction: every append and db entry holds
	// its content as chunks, so it needs no segment at all. It stays exact for every
	// instant from Time up to (not including) Until, the capture time of the next record,
	// even after the segments holding that record are gone.
	Compacted bool  `json:"compacted,omitempty"`
	Until     int64 `json:"until,omitempty"`
	// Packs locates the chunks stored inside segment objects (see segment.EncodePacked)
	// by chunk id, so that a reader fetches one with a ranged read and never scans the
	// segments. A chunk without a location here is stored as a blob (BlobKey).
	Packs map[string]Pack `json:"p,omitempty"`
}

// Pack is where a chunk's bytes are: in the object Key, from offset Off on (its length
// is the size its chunk reference gives).
type Pack struct {
	Key string `json:"k"`
	Off int64  `json:"o"`
}

// Locate notes where a stored chunk record says its bytes are (see
// segment.EncodePacked); records of other kinds, and chunk records that carry their
// data or name no location, change nothing.
func (x *Index) Locate(r *journal.Record) {
	if r.Op != journal.OpChunk || len(r.Data) > 0 || r.Source == "" || r.Offset <= 0 {
		return
	}
	if x.Packs == nil {
		x.Packs = map[string]Pack{}
	}
	x.Packs[r.Path] = Pack{Key: r.Source, Off: r.Offset}
}

// New returns an empty index.
func New(host string) *Index { return &Index{Host: host, Files: map[string]*Entry{}} }

// Key of a path in Files.
func Key(source, path string) string { return state.Key(source, path) }

// Apply advances the index by one record (records must come in sequence order; one at
// or below the index's sequence number is ignored). A malformed record changes nothing
// but the sequence number and is returned as a *state.Error; a record that cannot
// extend what a path holds (its earlier bytes or base image are missing) leaves the
// path as it was. Either way the caller decides whether to go on.
func (x *Index) Apply(r *journal.Record) error {
	if r.Seq <= x.Seq && x.Seq != 0 {
		return nil
	}
	x.Seq, x.Time = r.Seq, r.Time
	x.Locate(r)
	_, err := state.Files(x.Files).Apply(r)
	return err
}

// Clone returns a deep-enough copy (entries are replaced, never mutated in place, except
// append/db entries, which are copied).
func (x *Index) Clone() *Index {
	// A clone is a plain index: once records are applied to it, it is no compacted state.
	c := &Index{Host: x.Host, Seq: x.Seq, Time: x.Time, Files: make(map[string]*Entry, len(x.Files))}
	for k, e := range x.Files {
		cp := *e
		c.Files[k] = &cp
	}
	if len(x.Packs) > 0 {
		c.Packs = make(map[string]Pack, len(x.Packs))
		for id, p := range x.Packs {
			c.Packs[id] = p
		}
	}
	return c
}

// MinSince is the lowest Since of the append and db entries (0 when there are none):
// records from there on may still be needed for their content.
func (x *Index) MinSince() uint64 {
	var m uint64
	for _, e := range x.Files {
		if e.Since > 0 && (m == 0 || e.Since < m) {
			m = e.Since
		}
	}
	return m
}

// Needs reports whether a record at or below x.Seq still carries live content.
func (x *Index) Needs(r *journal.Record) bool {
	e := x.Files[Key(r.Source, r.Path)]
	// Since 0 is an entry whose content is all in its chunks (compacted).
	if e == nil || e.Since == 0 || r.Seq < e.Since {
		return false
	}
	switch r.Op {
	case journal.OpAppend:
		return e.Kind == KindAppend
	case journal.OpDBBase, journal.OpDBPages:
		return e.Kind == KindDB
	}
	return false
}

// Sorted returns the keys in order.
func (x *Index) Sorted() []string {
	keys := make([]string, 0, len(x.Files))
	for k := range x.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const magic = "MMRMAN1\n"

var (
	once sync.Once
	enc  *zstd.Encoder
	dec  *zstd.Decoder
)

func codecs() {
	once.Do(func() {
		enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		dec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(4<<30))
	})
}

// Encode serialises an index as a manifest object body.
func Encode(x *Index) ([]byte, error) {
	codecs()
	body, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return enc.EncodeAll(append([]byte(magic), body...), nil), nil
}

// Decode reads a manifest object body.
func Decode(b []byte) (*Index, error) {
	codecs()
	raw, err := dec.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	body, ok := strings.CutPrefix(string(raw), magic)
	if !ok {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	x := &Index{}
	if err := json.Unmarshal([]byte(body), x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if x.Files == nil {
		x.Files = map[string]*Entry{}
	}
	return x, nil
}

// Prefix is where a host's manifests live.
func Prefix(host string) string { return "hosts/" + host + "/manifests/" }

const timeLayout = "20060102T150405.000000000Z"

// ObjectKey names the manifest of x.
func ObjectKey(x *Index) string {
	return fmt.Sprintf("%s%020d_%s.man", Prefix(x.Host), x.Seq, time.Unix(0, x.Time).UTC().Format(timeLayout))
}

// Info is what a manifest key tells.
type Info struct {
	Key  string
	Seq  uint64
	Time time.Time
}

// ParseKey reads a manifest key.
func ParseKey(key string) (Info, error) {
	i := strings.LastIndex(key, "/manifests/")
	if i < 0 {
		return Info{}, fmt.Errorf("not a manifest key: %q", key)
	}
	name, ok := strings.CutSuffix(key[i+len("/manifests/"):], ".man")
	seqS, timeS, ok2 := strings.Cut(name, "_")
	seq, err := strconv.ParseUint(seqS, 10, 64)
	t, err2 := time.Parse(timeLayout, timeS)
	if !ok || !ok2 || err != nil || err2 != nil {
		return Info{}, fmt.Errorf("not a manifest key: %q", key)
	}
	return Info{Key: key, Seq: seq, Time: t}, nil
}

// BlobKey is where a chunk is stored. Blobs are shared by all hosts of a store, so the
// same content is stored once.
// An id too short to have a fan-out folder (never a valid id: see state.CheckChunkID)
// still gets a key rather than a panic.
func BlobKey(id string) string {
	if len(id) < 2 {
		return "blobs/_/" + id
	}
	return "blobs/" + id[:2] + "/" + id
}
