// Package sqlitepage owns the page-set encoding of SQLite database content in journal
// records (a base image or one committed transaction) and applying it to a database
// image: what every reader of the store needs to rebuild a database, without the WAL
// tracking the watcher does.
//
// It must never import the watcher, a sink or a reader of the store.
package sqlitepage
