// Package chunk owns how whole-file content is cut into content-addressed chunks: the
// fixed parameters every host uses, so that equal content is cut the same way everywhere
// and stored once. The watcher cuts captured files with it and compaction cuts rebuilt
// append-only files and database images with it.
//
// It must never import the watcher, a sink or a reader of the store.
package chunk
