package watcher

import (
	"io"

	"github.com/restic/chunker"
)

// NewChunker cuts r with the parameters whole files are captured with, so that content
// chunked elsewhere (compaction of append and database content) is cut the same way
// and shares blobs with what the watcher sent.
func NewChunker(r io.Reader) *chunker.Chunker {
	c := chunker.NewWithBoundaries(r, chunkPol, chunkMin, chunkMax)
	c.SetAverageBits(chunkAvgBits)
	return c
}

// ChunkMax is the largest chunk NewChunker cuts (the buffer its Next needs).
const ChunkMax = chunkMax
