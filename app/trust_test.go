package app

import (
	"testing"

	"github.com/mmreplicate/mmreplicate/config"
	s3sink "github.com/mmreplicate/mmreplicate/sinks/s3"
	"github.com/mmreplicate/mmreplicate/watcher"
)

// TestChunkTrustAgrees keeps the config's lower bound of retention.blob_grace in step with
// how long the watcher and the S3 sink actually trust a sent chunk.
func TestChunkTrustAgrees(t *testing.T) {
	if watcher.SentTTL != config.ChunkTrust || s3sink.KnownTTL != config.ChunkTrust {
		t.Fatalf("chunk trust: watcher %s, s3 sink %s, config %s: they must agree", watcher.SentTTL, s3sink.KnownTTL, config.ChunkTrust)
	}
	if config.MinBlobGrace <= config.ChunkTrust {
		t.Fatalf("MinBlobGrace %s must exceed the chunk trust %s", config.MinBlobGrace, config.ChunkTrust)
	}
}
