//go:build linux

package sqlite

import (
	"os"
	"syscall"
	"time"
)

// changeTime returns a file's status change time. Unlike the modification time, no one can
// set it back, so with the size and modification time it tells whether a file changed.
func changeTime(fi os.FileInfo) (time.Time, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec), true
}
