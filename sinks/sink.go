// Package sinks holds the contract every sink implements and the worker that feeds a sink
// from its durable JetStream consumer: batching, leading-edge flushes, retries with
// backoff, and acknowledgement only after the sink has stored a batch.
package sinks

import (
	"context"
	"errors"

	"github.com/mmreplicate/mmreplicate/journal"
)

// Sink stores batches of records somewhere durable.
type Sink interface {
	// Name identifies the sink in logs, metrics and its consumer name, e.g. "s3-default".
	Name() string
	// Write stores recs (sorted by sequence number, none seen by an earlier successful
	// Write) durably before returning nil. Writing the same batch again after a failure
	// must leave the same stored state: the worker retries failed batches as they are.
	// An error wrapping ErrPermanent tells the worker that a retry cannot help.
	Write(ctx context.Context, recs []journal.Record) error
}

// ErrPermanent marks a sink error that retrying will not cure (bad credentials, missing
// bucket). The worker still retries, more slowly, because an operator may fix the cause
// while the daemon runs, but it logs such errors loudly.
var ErrPermanent = errors.New("permanent sink error")
