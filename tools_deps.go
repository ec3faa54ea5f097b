//go:build tools

// Package tools pins modules that packages under construction will import, so that
// parallel work does not race on go.mod.
package tools

import (
	_ "filippo.io/age"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/johannesboyne/gofakes3"
	_ "github.com/restic/chunker"
	_ "github.com/schollz/progressbar/v3"
	_ "modernc.org/sqlite"
)
