package git

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole file system holding dir with one syncfs(2): far cheaper than
// thousands of fsyncs when a commit or a checkpoint wrote thousands of small files.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
