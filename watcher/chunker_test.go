package watcher

import (
	"testing"

	"github.com/mmreplicate/mmreplicate/chunk"
)

// The watcher cuts captured files with its own constants; they must be the chunk
// package's, or compaction would cut the same content differently.
func TestChunkParametersMatchPackageChunk(t *testing.T) {
	if chunkMin != chunk.Min || chunkMax != chunk.Max || chunkAvgBits != chunk.AvgBits || chunkPol != chunk.Pol {
		t.Fatalf("watcher chunk parameters (%d, %d, %d, %x) differ from package chunk's (%d, %d, %d, %x)",
			chunkMin, chunkMax, chunkAvgBits, uint64(chunkPol), chunk.Min, chunk.Max, chunk.AvgBits, uint64(chunk.Pol))
	}
}
