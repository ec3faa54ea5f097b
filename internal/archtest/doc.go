// Package archtest holds no code: its test checks the import rules between the parts of
// mmreplicate (readers import neither the watcher nor a sink; sinks never import
// restore; the record and store packages stay below everything that uses them).
package archtest
