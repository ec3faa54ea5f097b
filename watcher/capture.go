package watcher

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/mmreplicate/mmreplicate/journal"
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
func captureAppend(source, rel, abs string, prev *fileState) (change, error) {
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

// captureWhole reads a whole file and ships it when its content changed. The file is
// read again if it changed while being read, so a torn copy never travels.
func captureWhole(source, rel, abs string, prev *fileState) (change, error) {
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
		if prev != nil && prev.Kind == "file" && prev.Dev == dev && prev.Ino == ino && prev.Offset == before.Size() && prev.MTime == before.ModTime().UnixNano() && prev.Mode == mode {
			return ch, nil
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			return ch, err
		}
		after, err := os.Lstat(abs)
		if err != nil {
			return ch, err
		}
		if after.Size() != int64(len(data)) || !after.ModTime().Equal(before.ModTime()) {
			if attempt < 5 {
				continue
			}
			return ch, fmt.Errorf("file keeps changing while read")
		}
		if bytes.HasPrefix(data, sqliteHeader) {
			return ch, fmt.Errorf("%w: SQLite database (WAL capture is not in this build)", errSkip)
		}
		sum := sha256.Sum256(data)
		st := &fileState{Kind: "file", Dev: dev, Ino: ino, Offset: int64(len(data)), Tail: sum, Mode: mode, MTime: before.ModTime().UnixNano()}
		ch.state = st
		if prev != nil && prev.Kind == "file" && prev.Tail == sum && prev.Mode == mode {
			return ch, nil // touched, same content: remember the new mtime only
		}
		ch.recs = splitData(source, rel, 0, mode, data)
		return ch, nil
	}
}
