package watcher

// SentTTL is how long the watcher trusts that a chunk it sent is stored (it refers to
// the chunk without sending it again meanwhile). retention.blob_grace must exceed it
// (config.ChunkTrust).
const SentTTL = sentTTL
