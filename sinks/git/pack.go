package git

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// packObjBlob is the blob type in a pack's object headers.
const packObjBlob = 3

// writePack streams blobs as a version 2 pack (no deltas) into the storer, which indexes
// it. Objects are compressed in parallel at zlib's fastest level (git's own default for
// loose objects; `git gc` recompresses and deltifies later) and written in order; each
// one's bytes are checked against its hash on the way.
func writePack(pw storer.PackfileWriter, blobs []pendingBlob) (err error) {
	out, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	sum := sha1.New()
	bw := bufio.NewWriterSize(io.MultiWriter(out, sum), 1<<20)
	var hdr [12]byte
	copy(hdr[:], "PACK")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(blobs)))
	bw.Write(hdr[:])

	type result struct {
		buf  bytes.Buffer
		err  error
		done chan struct{}
	}
	results := make([]*result, len(blobs))
	for i := range results {
		results[i] = &result{done: make(chan struct{})}
	}
	workers := runtime.GOMAXPROCS(0)
	window := make(chan struct{}, 2*workers) // bounds the compressed blobs held in memory
	next := make(chan int)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(next)
		for i := range blobs {
			select {
			case window <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case next <- i:
			case <-stop:
				return
			}
		}
	}()
	for range workers {
		go func() {
			// One compressor per worker, reset for each blob: a new one allocates
			// about a megabyte of state, which dominated small blobs.
			zw, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
			for i := range next {
				results[i].err = compressBlob(zw, &results[i].buf, &blobs[i])
				close(results[i].done)
			}
		}()
	}
	for i := range blobs {
		r := results[i]
		<-r.done
		if r.err != nil {
			return r.err
		}
		bw.Write(packObjectHeader(packObjBlob, blobs[i].size))
		if _, err := bw.Write(r.buf.Bytes()); err != nil {
			return err
		}
		results[i] = nil
		<-window
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = out.Write(sum.Sum(nil))
	return err
}

// compressBlob deflates a blob's bytes into buf, checking them against the blob's hash.
func compressBlob(zw *zlib.Writer, buf *bytes.Buffer, pb *pendingBlob) error {
	zw.Reset(buf)
	hasher := plumbing.NewHasher(plumbing.BlobObject, pb.size)
	if err := copyFrom(io.MultiWriter(zw, hasher), pb.reader, pb.size); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if h := hasher.Sum(); h != pb.hash {
		return fmt.Errorf("blob %s changed while being stored (now %s)", pb.hash, h)
	}
	return nil
}

// packObjectHeader encodes an object's type and size as a pack entry header.
func packObjectHeader(typ byte, size int64) []byte {
	b := []byte{typ<<4 | byte(size&0x0f)}
	size >>= 4
	for size > 0 {
		b[len(b)-1] |= 0x80
		b = append(b, byte(size&0x7f))
		size >>= 7
	}
	return b
}

// removeOrphanIndexes deletes pack indexes without their pack, which a crash while a pack
// was being stored can leave (go-git writes the index before it renames the pack into
// place): a reader trusting such an index would take missing objects for present.
func removeOrphanIndexes(gitDir string) {
	idxs, _ := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "pack-*.idx"))
	for _, idx := range idxs {
		if _, err := os.Stat(strings.TrimSuffix(idx, ".idx") + ".pack"); os.IsNotExist(err) {
			os.Remove(idx)
		}
	}
}
