// Package store owns the layout of a bucket and reading it: the object keys (segments
// and manifests through their codec packages segment and manifest, blobs), listing a
// host's objects (Catalog, List, Segments, Hosts), and "the state at T" (Load,
// LoadIndex, MakePlan): the newest usable manifest plus the segments after it, with
// every record missing from the manifest's sequence number on named as a gap.
//
// Everything it reads is untrusted: manifests are checked entry by entry and records go
// through package state. The S3 sink and every reader (restore, verify, serve-s3,
// drills, compaction) share it.
//
// It imports journal, state, objstore, segment and manifest, and must never import the
// watcher, a sink or restore.
package store
