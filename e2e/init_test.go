package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitPreset: `init --preset openclaw` in a fake home writes a config that
// check-config accepts, names what it found, and refuses to overwrite it.
func TestInitPreset(t *testing.T) {
	home := t.TempDir()
	for _, d := range []string{".openclaw/agents/main/sessions", ".openclaw/workspace", ".openclaw/memory"} {
		os.MkdirAll(filepath.Join(home, d), 0o755)
	}
	file := filepath.Join(t.TempDir(), "mmreplicate.yml")
	run := func(args ...string) (int, string) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	code, out := run("init", "--preset", "openclaw", "--write", file)
	if code != 0 || !strings.Contains(out, "3 sources") {
		t.Fatalf("init: exit %d: %s", code, out)
	}
	code, out = run("check-config", "--config", file)
	if code != 0 || !strings.Contains(out, "3 sources") {
		t.Fatalf("check-config: exit %d: %s", code, out)
	}
	if code, out = run("init", "--preset", "openclaw", "--write", file); code != 2 || !strings.Contains(out, "--force") {
		t.Errorf("init over an existing file: exit %d: %s", code, out)
	}
	if code, out = run("init", "--preset", "codex"); code != 1 || !strings.Contains(out, ".codex/sessions") {
		t.Errorf("init --preset codex without ~/.codex: exit %d: %s", code, out)
	}
}
