package git

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/segment"
)

// PointerHeader is the first line of a pointer file, which stands in the repository for
// a file larger than Options.BigFileBytes (see the package documentation).
const PointerHeader = "mmreplicate-pointer v1"

// pointerText is a pointer file's content. It holds no time, so the same file at the same
// path always gives the same blob.
func pointerText(host, path, kind string, size int64, sum string, refs []journal.ChunkRef) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\npath %s\nkind %s\nsize %d\n", PointerHeader, path, kind, size)
	if sum == "" {
		b.WriteString("sha256 unknown (the chunks had left the local cache)\n")
	} else {
		fmt.Fprintf(&b, "sha256 %s\n", sum)
	}
	if kind == manifest.KindFile {
		for _, c := range refs {
			fmt.Fprintf(&b, "blob %s %d\n", manifest.BlobKey(c.ID()), c.Size)
		}
	} else {
		fmt.Fprintf(&b, "segments %s\n", segment.Prefix(host))
	}
	fmt.Fprintf(&b, "fetch mmreplicate restore --at <this commit's time> --path %s --to DIR\n", shellQuote(path))
	return []byte(b.String())
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// wantPointer reports whether a path's content is committed as a pointer.
func (s *Sink) wantPointer(key string, e *entry) bool {
	switch e.Kind {
	case manifest.KindFile, manifest.KindAppend:
		return e.Size > s.o.BigFileBytes
	case manifest.KindDB:
		fi, err := os.Stat(s.contentPath(key))
		return err == nil && fi.Size() > s.o.BigFileBytes
	}
	return false
}

// fileBlob is a whole file's blob, streamed from its cached chunks, or its pointer.
func (s *Sink) fileBlob(w *objWriter, key string, e *entry, b time.Time) (plumbing.Hash, bool, error) {
	refs, err := journal.DecodeChunks(e.Chunks)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	ids := make([]string, len(refs))
	var size int64
	for i, c := range refs {
		ids[i] = c.ID()
		size += int64(c.Size)
	}
	id := chunkListID(e.Chunks)
	ci := s.st.Contents[id]
	if ci == nil {
		ci = &contentInfo{}
		s.st.Contents[id] = ci
	}
	ci.Seen = b.UnixNano()
	open := func() (io.ReadCloser, error) { return &chunkReader{s: s, ids: ids}, nil }
	if size <= s.o.BigFileBytes {
		if ci.Blob != "" && w.has(plumbing.NewHash(ci.Blob)) {
			return plumbing.NewHash(ci.Blob), false, nil
		}
		h, err := w.putStream(size, open)
		if err == nil {
			ci.Blob = h.String()
			return h, false, nil
		}
		if !errors.Is(err, errMissingChunk) {
			return h, false, err
		}
		s.log.Warn("chunks of a file are no longer cached; committing a pointer to the store instead",
			"path", key, "err", err)
	} else if ci.SHA256 == "" {
		sum, err := sha256Of(open, size)
		if err != nil && !errors.Is(err, errMissingChunk) {
			return plumbing.ZeroHash, false, err
		}
		ci.SHA256 = sum
	}
	h, err := w.putBytes(pointerText(s.o.Host, key, manifest.KindFile, size, ci.SHA256, refs))
	return h, true, err
}

// contentBlob is the blob (or pointer) of a content file: an append-only file's bytes or
// a finalised database copy.
func (s *Sink) contentBlob(w *objWriter, key string, e *entry, path string) (plumbing.Hash, bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && e.Kind == manifest.KindAppend && e.Size == 0 {
		h, err := w.putBytes(nil)
		return h, false, err
	}
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	size := fi.Size()
	if e.Kind == manifest.KindAppend && size != e.Size {
		// The index and the bytes disagree only if the state folder was tampered with;
		// commit what the index says exists, as far as the bytes go.
		s.warnOnce(key+"\x00size", "mirror file size differs from the index", "path", key, "index", e.Size, "file", size)
		size = min(size, e.Size)
	}
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	if size > s.o.BigFileBytes {
		sum, err := sha256Of(open, size)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		h, err := w.putBytes(pointerText(s.o.Host, key, e.Kind, size, sum, nil))
		return h, true, err
	}
	h, err := w.putStream(size, open)
	return h, false, err
}

// dbBlob finalises a copy of a database image (the image itself takes further pages) and
// commits that.
func (s *Sink) dbBlob(w *objWriter, key string, e *entry) (plumbing.Hash, bool, error) {
	src, err := os.Open(s.contentPath(key))
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(s.o.StateDir, "db-*.tmp")
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	w.temps = append(w.temps, tmp.Name()) // read again when the blob is stored
	defer tmp.Close()
	if _, err := io.Copy(tmp, src); err != nil {
		return plumbing.ZeroHash, false, err
	}
	if err := s.o.DB.Finalize(tmp); err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("%w: finalize database: %v", errLeaveOut, err)
	}
	return s.contentBlob(w, key, e, tmp.Name())
}

// errLeaveOut marks a path that cannot be committed this time (logged, not fatal).
var errLeaveOut = errors.New("left out of the commit")

// sha256Of hashes size bytes of a fresh reader.
func sha256Of(open func() (io.ReadCloser, error), size int64) (string, error) {
	h := sha256.New()
	if err := copyFrom(h, open, size); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
