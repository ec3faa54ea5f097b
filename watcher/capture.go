package watcher

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/restic/chunker"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/redact"
)

// MaxRecordData bounds the data of one record so that every record, framed and batched,
// fits in a NATS message of the server's default size.
const MaxRecordData = 256 << 10

// maxCapture bounds how much of one file one pass reads; a longer backlog is shipped over
// several passes, each ending on a line boundary.
const maxCapture = 64 << 20

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// errSkip reports a file this build does not replicate.
var errSkip = errors.New("skipped")

// change is the outcome of capturing one file: records to journal and the state to keep
// once they are durable (nil state: forget the file).
type change struct {
	key   string
	recs  []journal.Record
	state *fileState
	more  bool // the file has more to read than this pass took
}

// identity returns the device and inode of a stat result.
func identity(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// captureAppend reads the new complete lines of an append-only file.
func (w *Watcher) captureAppend(source, rel, abs string, prev *fileState) (change, error) {
	ch := change{key: source + "/" + rel}
	f, err := os.Open(abs)
	if err != nil {
		return ch, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ch, err
	}
	if !fi.Mode().IsRegular() {
		return ch, errSkip
	}
	dev, ino := identity(fi)
	size := fi.Size()
	from := int64(0)
	if prev != nil && prev.Kind == "append" && prev.Dev == dev && prev.Ino == ino && size >= prev.Offset {
		head, tail, err := probes(f, prev.Offset)
		if err != nil {
			return ch, err
		}
		if head == prev.Head && tail == prev.Tail {
			from = prev.Offset
		}
	}
	mode := uint32(fi.Mode().Perm())
	if prev != nil && from == prev.Offset && size == from && prev.Mode == mode {
		return ch, nil // nothing new
	}
	end, err := lineEnd(f, from, size)
	if err != nil {
		return ch, err
	}
	if end == from && (from > 0 || prev != nil && prev.Kind == "append" && prev.Offset == 0 && prev.Dev == dev && prev.Ino == ino) {
		return ch, nil // only a partial line so far
	}
	data := make([]byte, end-from)
	if _, err := f.ReadAt(data, from); err != nil && !errors.Is(err, io.EOF) {
		return ch, err
	}
	// Secrets are masked with bytes of the same length, so offsets stay the file's own.
	data, hits, err := w.scrubAppend(ch.key, f, from, data)
	if err != nil {
		return ch, err
	}
	if hits > 0 && w.o.Secrets == config.SecretsWithhold {
		// Nothing from the first secret on travels; what was shipped before stays.
		return ch, errWithheld
	}
	ch.recs = splitData(source, rel, from, mode, data)
	st := &fileState{Kind: "append", Dev: dev, Ino: ino, Offset: end, Mode: mode}
	if st.Head, st.Tail, err = probes(f, end); err != nil {
		return ch, err
	}
	ch.state = st
	ch.more = end-from >= maxCapture
	return ch, nil
}

// lineEnd returns the offset just past the last newline in [from, size), reading at most
// maxCapture bytes unless a single line is longer (a line is never cut).
func lineEnd(f *os.File, from, size int64) (int64, error) {
	window := int64(maxCapture)
	for {
		stop := min(size, from+window)
		buf := make([]byte, stop-from)
		n, err := f.ReadAt(buf, from)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return from + int64(i) + 1, nil
		}
		if stop >= size {
			return from, nil
		}
		window *= 2
	}
}

// splitData cuts data written at offset into records of at most MaxRecordData bytes.
// They are journaled together and share one capture time, so no restore ever sees a
// part of them without the rest.
func splitData(source, rel string, offset int64, mode uint32, data []byte) []journal.Record {
	var recs []journal.Record
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), MaxRecordData)
		recs = append(recs, journal.Record{Op: journal.OpAppend, Source: source, Path: rel, Offset: offset, Mode: mode, Data: data[:n]})
		offset += int64(n)
		data = data[n:]
	}
	return recs
}

// Chunking parameters: content-defined boundaries (so an edit in the middle of a large
// file changes only the chunks around it), small enough that one chunk always fits a
// record and a NATS message of the server's default size.
const (
	chunkMin     = 64 << 10
	chunkMax     = MaxRecordData
	chunkAvgBits = 17 // 128 KiB on average
	// chunkPol is fixed so that every host cuts the same content the same way and equal
	// content is stored once.
	chunkPol = chunker.Pol(0x3DA3358B4DC173)
	// flushBytes is how much new chunk data a large file accumulates before it is
	// journaled ahead of its file record, which keeps memory bounded for any file size.
	flushBytes = 16 << 20
)

// chunkSink journals chunk records of a large file ahead of its OpFile record.
type chunkSink func(recs []journal.Record) error

// captureWhole reads a whole file as content-defined chunks and ships it when its
// content or mode changed. Chunks already sent travel no more. A file that changes while
// being read is read again, so a torn copy never travels.
func (w *Watcher) captureWhole(source, rel, abs string, prev *fileState, early chunkSink) (change, error) {
	ch := change{key: source + "/" + rel}
	for attempt := 0; ; attempt++ {
		before, err := os.Lstat(abs)
		if err != nil {
			return ch, err
		}
		if !before.Mode().IsRegular() {
			return ch, errSkip
		}
		dev, ino := identity(before)
		mode := uint32(before.Mode().Perm())
		mtime := before.ModTime().UnixNano()
		if prev != nil && prev.Kind == "file" && prev.Dev == dev && prev.Ino == ino && prev.Offset == before.Size() && prev.MTime == mtime && prev.Mode == mode {
			return ch, nil
		}
		refs, recs, sum, hits, err := w.chunkFile(abs, early)
		if err != nil {
			return ch, err
		}
		after, err := os.Lstat(abs)
		if err != nil {
			return ch, err
		}
		if after.Size() != before.Size() || after.ModTime().UnixNano() != mtime {
			if attempt < 5 {
				continue
			}
			return ch, fmt.Errorf("file keeps changing while read")
		}
		st := &fileState{Kind: "file", Dev: dev, Ino: ino, Offset: before.Size(), Tail: sum, Mode: mode, MTime: mtime}
		ch.state = st
		if prev != nil && prev.Kind == "file" && prev.Tail == sum && prev.Mode == mode {
			return ch, nil // touched, same content: remember the new mtime only
		}
		w.count(abs, hits) // once per version shipped, not per read
		ch.recs = append(recs, journal.Record{Op: journal.OpFile, Source: source, Path: rel, Offset: before.Size(), Mode: mode, Data: journal.EncodeChunks(refs)})
		return ch, nil
	}
}

// chunkFile splits a file into chunks, returning the chunk list, records for the chunks
// not sent before (large batches go out early through early), the hash of the list and
// the secrets masked.
func (w *Watcher) chunkFile(abs string, early chunkSink) ([]journal.ChunkRef, []journal.Record, [32]byte, []redact.Hit, error) {
	f, err := os.Open(abs)
	if err != nil {
		return nil, nil, [32]byte{}, nil, err
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	if n, _ := io.ReadFull(f, head); n == len(head) && bytes.Equal(head, sqliteHeader) {
		return nil, nil, [32]byte{}, nil, errSQLite
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, [32]byte{}, nil, err
	}
	// Files of every size are scanned as a stream, in bounded memory: blocks overlap by
	// the longest span a rule matches, so no secret hides across a block or chunk
	// boundary. With withhold, a first pass decides before any chunk travels (large
	// files send chunks early).
	var src io.Reader = f
	var rd *redact.Reader
	if w.scanner != nil {
		if w.o.Secrets == config.SecretsWithhold {
			scan := w.scanner.NewReader(f)
			if _, err := io.Copy(io.Discard, scan); err != nil {
				return nil, nil, [32]byte{}, nil, err
			}
			if hits := scan.Hits(); len(hits) > 0 {
				w.count(abs, hits)
				return nil, nil, [32]byte{}, nil, errWithheld
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return nil, nil, [32]byte{}, nil, err
			}
		}
		rd = w.scanner.NewReader(f)
		src = rd
	}
	c := chunker.NewWithBoundaries(src, chunkPol, chunkMin, chunkMax)
	c.SetAverageBits(chunkAvgBits)
	buf := make([]byte, chunkMax)
	var refs []journal.ChunkRef
	var recs []journal.Record
	pending := 0
	list := sha256.New()
	for {
		chunk, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, [32]byte{}, nil, err
		}
		ref := journal.ChunkRef{Hash: sha256.Sum256(chunk.Data), Size: uint32(chunk.Length)}
		list.Write(ref.Hash[:])
		refs = append(refs, ref)
		if w.sentChunk(ref.Hash) {
			continue
		}
		recs = append(recs, journal.Record{Op: journal.OpChunk, Path: ref.ID(), Data: append([]byte(nil), chunk.Data...)})
		pending += len(chunk.Data)
		if pending >= flushBytes && early != nil {
			if err := early(recs); err != nil {
				return nil, nil, [32]byte{}, nil, err
			}
			recs, pending = nil, 0
		}
	}
	var hits []redact.Hit
	if rd != nil {
		hits = rd.Hits()
	}
	var sum [32]byte
	copy(sum[:], list.Sum(nil))
	return refs, recs, sum, hits, nil
}

// errWithheld reports a file kept out because it holds a secret (secrets.action: withhold).
var errWithheld = errors.New("withheld: holds a secret")

// scrub masks the secrets in data, counting them per rule and logging the path and rule
// (never the secret), and returns the clean bytes (data itself when there is none) and
// the number of secrets found.
func (w *Watcher) scrub(what string, data []byte) ([]byte, int) {
	if w.scanner == nil || len(data) == 0 {
		return data, 0
	}
	clean, hits := w.scanner.Redact(data)
	if len(hits) == 0 {
		return data, 0
	}
	w.count(what, hits)
	return clean, len(hits)
}

// scrubAppend masks the secrets in data, appended to f at from. Captures end on line
// boundaries, so the one secret that can run from an earlier capture into this one is a
// multi-line private key block whose BEGIN line (and maybe part of its body) travelled
// before. Rather than hold back lines that might start one (which would delay every
// capture of a plain-text file for the rest of a block that may never come), the bytes
// before from are read again from the file, unmasked as they are there, and scanned as
// context: the rest of the block is masked as in one scan of the whole file. Bodies run
// at most redact.MaxSpan bytes, so that much context is enough. It is read only when the
// last line before from could belong to a block (a JSONL line, with its braces and
// quotes, cannot), and used only when a BEGIN line is in it.
func (w *Watcher) scrubAppend(what string, f *os.File, from int64, data []byte) ([]byte, int, error) {
	if w.scanner == nil || len(data) == 0 {
		return data, 0, nil
	}
	open, err := mayOpenPEM(f, from)
	if err != nil {
		return nil, 0, err
	}
	if !open {
		clean, hits := w.scrub(what, data)
		return clean, hits, nil
	}
	n := min(from, int64(redact.MaxSpan))
	buf := make([]byte, n, n+int64(len(data)))
	if _, err := f.ReadAt(buf, from-n); err != nil {
		return nil, 0, err
	}
	if !bytes.Contains(buf, pemBegin) {
		clean, hits := w.scrub(what, data)
		return clean, hits, nil
	}
	clean, hits := w.scanner.RedactTail(append(buf, data...), int(n))
	w.count(what, hits)
	if len(hits) == 0 {
		return data, 0, nil
	}
	return clean, len(hits), nil
}

// mayOpenPEM reports whether the line that ends at from (the last one shipped) could be
// the BEGIN line or a line of the body of a private key block, which the data after from
// could continue. It reads at most 4 KiB; a longer line is no PEM line.
func mayOpenPEM(f *os.File, from int64) (bool, error) {
	if from == 0 {
		return false, nil
	}
	n := min(from, 4096)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, from-n); err != nil {
		return false, err
	}
	line := bytes.TrimRight(buf, "\r\n")
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	} else if n < from {
		return false, nil
	}
	if bytes.Contains(line, pemBegin) {
		return true, nil
	}
	for _, c := range line {
		if !pemByte(c) {
			return false, nil
		}
	}
	return true, nil
}

// pemByte reports whether c can be in a line of a PEM body: base64, or header text
// such as "Proc-Type: 4,ENCRYPTED".
func pemByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		bytes.IndexByte([]byte("+/=,.:- \t\\"), c) >= 0
}

// pemBegin starts the BEGIN line of a PEM block.
var pemBegin = []byte("-----BEGIN ")

// count adds hits to the per-rule counters and logs the path and first rule (never the
// secret).
func (w *Watcher) count(what string, hits []redact.Hit) {
	if len(hits) == 0 {
		return
	}
	w.secretsMu.Lock()
	for _, h := range hits {
		w.secrets[h.Rule]++
	}
	w.secretsMu.Unlock()
	w.log.Warn("secret redacted before replication", "path", what, "rule", hits[0].Rule, "count", len(hits))
}

// errSQLite reports a SQLite database met by whole-file capture.
var errSQLite = errors.New("SQLite database")

// captureSymlink records a link's target; links are never followed.
func captureSymlink(source, rel, abs string, fi os.FileInfo, prev *fileState) (change, error) {
	ch := change{key: source + "/" + rel}
	target, err := os.Readlink(abs)
	if err != nil {
		return ch, err
	}
	sum := sha256.Sum256([]byte(target))
	ch.state = &fileState{Kind: "symlink", Tail: sum, MTime: fi.ModTime().UnixNano()}
	if prev != nil && prev.Kind == "symlink" && prev.Tail == sum {
		return ch, nil
	}
	ch.recs = []journal.Record{{Op: journal.OpSymlink, Source: source, Path: rel, Data: []byte(target)}}
	return ch, nil
}

// captureDir records a folder, so that empty folders come back in a restore.
func captureDir(source, rel string, fi os.FileInfo, prev *fileState) (change, error) {
	ch := change{key: source + "/" + rel}
	mode := uint32(fi.Mode().Perm())
	ch.state = &fileState{Kind: "dir", Mode: mode}
	if prev != nil && prev.Kind == "dir" && prev.Mode == mode {
		return ch, nil
	}
	ch.recs = []journal.Record{{Op: journal.OpDir, Source: source, Path: rel, Mode: mode}}
	return ch, nil
}
