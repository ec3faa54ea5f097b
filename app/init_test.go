package app

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/config"
)

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInitPresets: each preset finds its layout in a fake home, writes a config that
// loads and checks, with the sources, globs and kinds it should have.
func TestInitPresets(t *testing.T) {
	cases := []struct {
		preset string
		dirs   []string
		want   map[string]string // source name -> path relative to home
		check  func(t *testing.T, c *config.Config)
	}{
		{"openclaw", []string{".openclaw/agents/main/sessions", ".openclaw/agents/coder/sessions", ".openclaw/workspace", ".openclaw/memory"},
			map[string]string{"sessions": ".openclaw/agents", "workspace": ".openclaw/workspace", "memory": ".openclaw/memory"},
			func(t *testing.T, c *config.Config) {
				s := c.Sources[0]
				if strings.Join(s.Include, ",") != "*/sessions/**" || !contains(s.Exclude, "**/*.bak-*") || !contains(s.Exclude, "**/*.lock") {
					t.Errorf("sessions globs: include %v exclude %v", s.Include, s.Exclude)
				}
			}},
		// Only what exists is configured.
		{"openclaw", []string{".openclaw/agents/main/sessions"}, map[string]string{"sessions": ".openclaw/agents"}, nil},
		{"claude-code", []string{".claude/projects/-home-me-app"}, map[string]string{"claude-projects": ".claude/projects"},
			func(t *testing.T, c *config.Config) {
				if c.Sources[0].Kind != "append" || strings.Join(c.Sources[0].Include, ",") != "**/*.jsonl" {
					t.Errorf("claude-code source: %+v", c.Sources[0])
				}
			}},
		{"codex", []string{".codex/sessions/2026/12/04"}, map[string]string{"codex-sessions": ".codex/sessions"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.preset, func(t *testing.T) {
			home := t.TempDir()
			mkdirs(t, home, tc.dirs...)
			file := filepath.Join(t.TempDir(), "mmreplicate.yml")
			var out bytes.Buffer
			if err := Init(InitOptions{Preset: tc.preset, Home: home, Write: file, Out: &out}); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Sources) != len(tc.want) {
				t.Fatalf("%d sources, want %d: %+v", len(c.Sources), len(tc.want), c.Sources)
			}
			for _, s := range c.Sources {
				if rel, ok := tc.want[s.Name]; !ok || s.Path != filepath.Join(home, rel) {
					t.Errorf("source %s at %s; want %v", s.Name, s.Path, tc.want)
				}
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			body, _ := os.ReadFile(file)
			if !strings.Contains(string(body), "# ") {
				t.Error("config has no comments")
			}
			// Never overwritten without --force.
			err = Init(InitOptions{Preset: tc.preset, Home: home, Write: file, Out: &out})
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--force") {
				t.Errorf("second init: %v", err)
			}
			if err := Init(InitOptions{Preset: tc.preset, Home: home, Write: file, Force: true, Out: &out}); err != nil {
				t.Errorf("init --force: %v", err)
			}
		})
	}
}

func TestInitNothingFound(t *testing.T) {
	home := t.TempDir()
	err := Init(InitOptions{Preset: "openclaw", Home: home, Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(home, ".openclaw", "agents")) {
		t.Errorf("init in an empty home: %v", err)
	}
	if err := Init(InitOptions{Preset: "cursor", Home: home}); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown preset: %v", err)
	}
	if err := Init(InitOptions{}); !errors.Is(err, ErrUsage) {
		t.Errorf("no preset, no folders: %v", err)
	}
}

// TestInitFolders: without a preset, one source per folder given, names made unique, the
// config printed when no file is asked for.
func TestInitFolders(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a/data", "b/data", "weird name!")
	var out, errb bytes.Buffer
	err := Init(InitOptions{Folders: []string{filepath.Join(root, "a/data"), filepath.Join(root, "b/data"), filepath.Join(root, "weird name!")},
		Out: &out, Err: &errb})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "c.yml")
	os.WriteFile(file, out.Bytes(), 0o600)
	c, err := config.Load(file)
	if err != nil {
		t.Fatalf("printed config: %v\n%s", err, out.String())
	}
	var names []string
	for _, s := range c.Sources {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "data,data-2,weird-name" {
		t.Errorf("source names %v", names)
	}
	if !strings.Contains(errb.String(), "checked") {
		t.Errorf("stderr: %q", errb.String())
	}
	if err := Init(InitOptions{Folders: []string{filepath.Join(root, "missing")}}); !errors.Is(err, ErrUsage) {
		t.Errorf("missing folder: %v", err)
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
