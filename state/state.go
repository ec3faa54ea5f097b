package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	"github.com/mmreplicate/mmreplicate/journal"
)

// Kinds of entries.
const (
	KindAppend  = "append"
	KindFile    = "file"
	KindSymlink = "symlink"
	KindDir     = "dir"
	KindDB      = "db"
)

// MaxSize bounds every size a record declares (a whole file's size, the end of an
// append): 16 TiB, far beyond any file the product replicates and far below what would
// overflow arithmetic on it.
const MaxSize = 1 << 44

// MaxMode bounds permission bits: a record carries permission bits only.
const MaxMode = 0o7777

// Entry is the state of one path. Chunks is a file's content; for an append or db entry
// it is a base image written by compaction (the content as of the manifest that stored
// it), which the records from Since on, when Since is set, extend.
type Entry struct {
	Kind   string             `json:"k"`
	Mode   uint32             `json:"m,omitempty"`
	Size   int64              `json:"s,omitempty"`
	Time   int64              `json:"t"`           // capture time of its last change (unix nanos)
	Seq    uint64             `json:"q"`           // sequence number of its last change
	Since  uint64             `json:"b,omitempty"` // append, db: first record still needed (0: none)
	Chunks []journal.ChunkRef `json:"c,omitempty"` // file; append, db: compacted base
	Target string             `json:"l,omitempty"` // symlink
}

// Files is a host's file state: every live path by Key.
type Files map[string]*Entry

// Key of a path in Files.
func Key(source, p string) string { return source + "/" + p }

// SplitKey returns the source and path of a key.
func SplitKey(k string) (source, p string) {
	source, p, _ = strings.Cut(k, "/")
	return source, p
}

// Error is a record that cannot be applied because it is malformed.
type Error struct {
	Seq    uint64
	Op     journal.Op
	Source string
	Path   string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("record %d (%s %q): %s", e.Seq, e.Op, Key(e.Source, e.Path), e.Reason)
}

// CheckPath reports why p cannot name a file inside a source: it must be relative,
// clean, not empty, without NUL and without a ".." element. A path that passes stays
// inside whatever folder it is joined to, as far as its text goes (links are another
// matter: placing files is the restorer's job).
func CheckPath(p string) error {
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path holds a NUL byte")
	case path.IsAbs(p):
		return fmt.Errorf("absolute path")
	case path.Clean(p) != p:
		return fmt.Errorf("path is not clean")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("path climbs out with \"..\"")
		}
	}
	return nil
}

// CheckSource reports why s cannot be a source name: one non-empty path element.
func CheckSource(s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("bad source name %q", s)
	}
	return nil
}

// CheckChunkID reports why id is not a chunk id: 64 lowercase hex digits (a SHA-256).
func CheckChunkID(id string) error {
	if len(id) != 64 {
		return fmt.Errorf("chunk id of %d characters, want 64", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("chunk id is not lowercase hex")
		}
	}
	return nil
}

// Check reports why r is malformed, as an *Error naming its sequence number and path,
// or nil. A chunk record that carries data must carry the bytes its id names; one
// without data (as segments store it) is checked by its id alone.
func Check(r *journal.Record) error {
	bad := func(format string, args ...any) error {
		return &Error{Seq: r.Seq, Op: r.Op, Source: r.Source, Path: r.Path, Reason: fmt.Sprintf(format, args...)}
	}
	if r.Op < journal.OpAppend || r.Op > journal.OpDBPages {
		return bad("unknown operation")
	}
	if r.Offset < 0 || r.Offset > MaxSize {
		return bad("offset %d out of range", r.Offset)
	}
	if r.Mode > MaxMode {
		return bad("mode %o is more than permission bits", r.Mode)
	}
	if r.Op == journal.OpChunk {
		if err := CheckChunkID(r.Path); err != nil {
			return bad("%v", err)
		}
		if len(r.Data) > 0 {
			if sum := sha256.Sum256(r.Data); hex.EncodeToString(sum[:]) != r.Path {
				return bad("chunk data does not match its id")
			}
		}
		return nil
	}
	if err := CheckSource(r.Source); err != nil {
		return bad("%v", err)
	}
	if err := CheckPath(r.Path); err != nil {
		return bad("%v", err)
	}
	switch r.Op {
	case journal.OpAppend:
		if r.End() > MaxSize {
			return bad("append ends at %d, beyond %d", r.End(), int64(MaxSize))
		}
	case journal.OpFile:
		refs, err := journal.DecodeChunks(r.Data)
		if err != nil {
			return bad("%v", err)
		}
		var sum int64
		for _, c := range refs {
			sum += int64(c.Size)
		}
		if sum != r.Offset {
			return bad("chunks hold %d bytes, the record declares %d", sum, r.Offset)
		}
	case journal.OpSymlink:
		if len(r.Data) == 0 || strings.IndexByte(string(r.Data), 0) >= 0 {
			return bad("link target is empty or holds a NUL byte")
		}
	case journal.OpDBBase, journal.OpDBPages:
		if len(r.Data) == 0 {
			return bad("database record without pages")
		}
	}
	return nil
}

// Action is what a record asks of whoever keeps a path's content.
type Action uint8

const (
	// Keep: the path's content is unchanged (chunk records, which name no path).
	Keep Action = iota
	// Remove: the path is gone; drop its content.
	Remove
	// Replace: the path takes a new kind and content described by Next alone (a whole
	// file's chunks, a link's target, a folder); drop what it held.
	Replace
	// Write: truncate the append-only content to the record's Offset and write its Data
	// there. With Fresh the path starts afresh: drop what it held first.
	Write
	// Pages: apply the record's Data (an encoded page set) to the database image. With
	// Fresh a new image starts: drop what it held first.
	Pages
	// Skip: the record cannot be applied to what the path holds (bytes before it or the
	// database's base image never arrived). The path keeps its state; Missing says why.
	Skip
)

// Change is the effect of one record on one path.
type Change struct {
	Action  Action
	Key     string
	Fresh   bool   // Write, Pages: the content starts afresh
	Next    *Entry // the entry after the record; nil when the path is gone
	Missing string // Skip: what is missing
}

// Step computes the effect of r on a path whose entry is prev (nil: the path does not
// exist). It never changes prev: Next is a new entry or prev itself. It returns an
// *Error when r is malformed (see Check). Append-only and database content is
// extended only when what it holds is what the record was captured against; otherwise
// the record is skipped and the entry kept, so content never gets a hole.
//
// The mode of a path is kept unless the record sets one (whole files and folders
// always set theirs).
func Step(prev *Entry, r *journal.Record) (Change, error) {
	if err := Check(r); err != nil {
		return Change{}, err
	}
	if r.Op == journal.OpChunk {
		return Change{Action: Keep, Next: prev}, nil
	}
	ch := Change{Key: Key(r.Source, r.Path)}
	fresh := func(kind string) *Entry {
		e := &Entry{Kind: kind}
		if prev != nil {
			e.Mode = prev.Mode
		}
		return e
	}
	var e *Entry
	switch r.Op {
	case journal.OpDelete:
		ch.Action = Remove
		return ch, nil
	case journal.OpFile:
		refs, _ := journal.DecodeChunks(r.Data) // checked above
		e = &Entry{Kind: KindFile, Size: r.Offset, Mode: r.Mode, Chunks: refs}
		ch.Action = Replace
	case journal.OpSymlink:
		e = fresh(KindSymlink)
		e.Target = string(r.Data)
		ch.Action = Replace
	case journal.OpDir:
		e = &Entry{Kind: KindDir, Mode: r.Mode}
		ch.Action = Replace
	case journal.OpAppend:
		ch.Action = Write
		switch {
		case r.Offset == 0:
			e, ch.Fresh = fresh(KindAppend), true
			e.Since = r.Seq
		case prev == nil || prev.Kind != KindAppend || r.Offset > prev.Size:
			have := int64(0)
			if prev != nil && prev.Kind == KindAppend {
				have = prev.Size
			}
			ch.Action, ch.Next = Skip, prev
			ch.Missing = fmt.Sprintf("bytes %d-%d missing (record %d)", have, r.Offset, r.Seq)
			return ch, nil
		default:
			cp := *prev
			e = &cp
			if e.Since == 0 {
				e.Since = r.Seq // extends a compacted base: records from here on are needed
			}
		}
		e.Size = r.End()
	case journal.OpDBBase, journal.OpDBPages:
		ch.Action = Pages
		if r.Op == journal.OpDBBase && r.Offset == 0 {
			e, ch.Fresh = fresh(KindDB), true
			e.Since = r.Seq
			break
		}
		if prev == nil || prev.Kind != KindDB {
			ch.Action, ch.Next = Skip, prev
			ch.Missing = fmt.Sprintf("database pages without a base image (record %d)", r.Seq)
			return ch, nil
		}
		cp := *prev
		e = &cp
		if e.Since == 0 {
			e.Since = r.Seq // extends a compacted base
		}
	}
	if r.Mode != 0 {
		e.Mode = r.Mode
	}
	e.Time, e.Seq = r.Time, r.Seq
	ch.Next = e
	return ch, nil
}

// Apply advances the state by one record: it computes the change (see Step) and stores
// its result. A malformed record changes nothing and returns an *Error.
func (f Files) Apply(r *journal.Record) (Change, error) {
	var prev *Entry
	if r.Op != journal.OpChunk {
		prev = f[Key(r.Source, r.Path)]
	}
	ch, err := Step(prev, r)
	if err != nil {
		return ch, err
	}
	switch ch.Action {
	case Remove:
		delete(f, ch.Key)
	case Replace, Write, Pages:
		f[ch.Key] = ch.Next
	}
	return ch, nil
}

// CheckEntry reports why e, stored under key, is not a valid entry (a manifest is read
// from the store, so every entry is checked like a record): the key must name a valid
// source and path, the kind must be known, sizes and modes in range, a whole file's
// chunks must add up to its size and a link must have a target.
func CheckEntry(key string, e *Entry) error {
	src, p := SplitKey(key)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("entry %q: %s", key, fmt.Sprintf(format, args...))
	}
	if err := CheckSource(src); err != nil {
		return bad("%v", err)
	}
	if err := CheckPath(p); err != nil {
		return bad("%v", err)
	}
	if e == nil {
		return bad("no entry")
	}
	if e.Size < 0 || e.Size > MaxSize {
		return bad("size %d out of range", e.Size)
	}
	if e.Mode > MaxMode {
		return bad("mode %o is more than permission bits", e.Mode)
	}
	var sum int64
	for _, c := range e.Chunks {
		sum += int64(c.Size)
	}
	switch e.Kind {
	case KindFile:
		if sum != e.Size {
			return bad("chunks hold %d bytes, the entry declares %d", sum, e.Size)
		}
	case KindAppend:
		if sum > e.Size {
			return bad("base of %d bytes is larger than the file (%d)", sum, e.Size)
		}
	case KindDB, KindDir:
	case KindSymlink:
		if e.Target == "" || strings.IndexByte(e.Target, 0) >= 0 {
			return bad("link target is empty or holds a NUL byte")
		}
	default:
		return bad("unknown kind %q", e.Kind)
	}
	return nil
}
