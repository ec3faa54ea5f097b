//go:build !linux

package sqlite

import (
	"os"
	"time"
)

// changeTime is not implemented here; without it a database file is compared with the
// captured state on every Poll that finds no WAL, rather than trusted by its stamp.
func changeTime(os.FileInfo) (time.Time, bool) { return time.Time{}, false }
