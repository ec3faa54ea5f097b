package watcher

import (
	"io"

	"github.com/restic/chunker"

	"github.com/mmreplicate/mmreplicate/chunk"
)

// NewChunker cuts r with the parameters whole files are captured with (package chunk).
func NewChunker(r io.Reader) *chunker.Chunker { return chunk.New(r) }

// ChunkMax is the largest chunk NewChunker cuts (the buffer its Next needs).
const ChunkMax = chunk.Max
