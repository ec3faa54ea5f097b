package restore

import "github.com/mmreplicate/mmreplicate/journal"

// Version is what one record says about the stored versions of the path it names: the
// file's size after it, or that the path stopped being a file there. Both `mmreplicate
// log` and serve-s3's @history build a path's versions from it.
type Version struct {
	Size int64 // the size after the record; -1 when records alone cannot tell (databases)
	Gone bool  // deleted, or now a link or a folder: no file version
}

// VersionOf reads one record as a version of its path; ok is false for records that name
// no path (chunks).
func VersionOf(r *journal.Record) (v Version, ok bool) {
	switch r.Op {
	case journal.OpChunk:
		return Version{}, false
	case journal.OpAppend:
		return Version{Size: r.End()}, true
	case journal.OpFile:
		return Version{Size: r.Offset}, true
	case journal.OpDBBase, journal.OpDBPages:
		return Version{Size: -1}, true
	}
	return Version{Gone: true}, true
}
