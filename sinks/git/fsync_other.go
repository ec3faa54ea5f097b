//go:build !linux

package git

import "errors"

// syncFS is not available here; callers fall back to syncing file by file.
func syncFS(dir string) error { return errors.ErrUnsupported }
