package restore

import (
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
)

// dbImage tracks a SQLite database being rebuilt from a base image and transactions.
type dbImage struct {
	pageSize int
	pages    uint32
}

// applyDB applies one piece of a database base image or transaction.
func (b *builder) applyDB(key string, st *fileState, r *journal.Record) error {
	if r.Op == journal.OpDBBase && r.Offset == 0 {
		if err := b.reset(key, st, manifest.KindDB, false); err != nil {
			return err
		}
		st.db = &dbImage{}
	}
	if st.db == nil {
		if st.incomplete == "" {
			st.incomplete = "database pages without a base image"
		}
		return nil
	}
	return b.applyPages(key, st, r)
}

// applyPages is replaced by the SQLite page applier.
func (b *builder) applyPages(key string, st *fileState, r *journal.Record) error {
	st.incomplete = "database capture is not supported by this build"
	return nil
}

// finalizeDB is replaced by the SQLite finaliser.
func finalizeDB(st *fileState) error { return nil }
