// Package state owns the one meaning of journal records: how a record changes a host's
// file state (files, links, folders, append-only content, chunk lists, database images,
// deletes). It validates every record once — paths relative, clean and inside their
// source, chunk ids, declared sizes, chunk lists — and reports anything malformed as an
// error naming the record's sequence number and path, never a panic.
//
// The S3 sink's index and the manifests it writes, restore, verify, serve-s3, the git
// sink, compaction and drills all step records through this package; each keeps only
// the bytes (staging files, a mirror, blobs) the change it returns asks for.
//
// It imports only journal and the standard library, and must never import the watcher,
// a sink, the store or a reader.
package state
