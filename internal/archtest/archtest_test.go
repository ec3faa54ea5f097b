package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/mmreplicate/mmreplicate/"

// deps lists every package outside the standard library each of pkgs depends on, as
// `go list -deps` prints them.
func deps(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := map[string][]string{}
	for _, p := range pkgs {
		cmd := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+p)
		cmd.Dir = "../.."
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", p, err, b)
		}
		out[p] = strings.Fields(string(b))
	}
	return out
}

// forbid fails when a package of pkgs depends on a package whose import path starts
// with one of the prefixes.
func forbid(t *testing.T, pkgs []string, prefixes ...string) {
	t.Helper()
	for p, list := range deps(t, pkgs...) {
		for _, d := range list {
			for _, bad := range prefixes {
				if d == bad || strings.HasPrefix(d, bad+"/") {
					t.Errorf("%s depends on %s", p, d)
				}
			}
		}
	}
}

func TestReadersImportNeitherWatcherNorSinks(t *testing.T) {
	readers := []string{"restore", "restore/s3gw", "web", "browse", "store", "state", "manifest", "segment", "chunk", "sqlitepage"}
	forbid(t, readers, module+"watcher", module+"sinks", module+"redact", module+"config", "github.com/fsnotify/fsnotify")
}

func TestSinksDoNotImportRestore(t *testing.T) {
	forbid(t, []string{"sinks", "sinks/s3", "sinks/git"}, module+"restore", module+"watcher")
}

func TestStateImportsOnlyJournal(t *testing.T) {
	for _, d := range deps(t, "state")["state"] {
		if strings.HasPrefix(d, module) && d != module+"journal" && d != module+"state" {
			t.Errorf("state depends on %s", d)
		}
		if !strings.HasPrefix(d, module) {
			t.Errorf("state depends on the outside package %s", d)
		}
	}
}

func TestStoreDoesNotImportRestore(t *testing.T) {
	forbid(t, []string{"store"}, module+"restore")
}
