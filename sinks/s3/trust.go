package s3

// KnownTTL is how long the sink trusts that a blob it put is stored (it does not put the
// blob again meanwhile). retention.blob_grace must exceed it (config.ChunkTrust).
const KnownTTL = knownTTL
