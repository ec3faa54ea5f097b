package app

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mmreplicate/mmreplicate/config"
)

// InitOptions are the flags of `mmreplicate init`.
type InitOptions struct {
	Preset  string   // openclaw, claude-code, codex, or "" for Folders
	Folders []string // without a preset: the folders to replicate
	Write   string   // the file to write; "" prints the config to Out
	Force   bool     // overwrite Write when it exists
	Home    string   // where the preset looks (default: the user's home)
	Out     io.Writer
	Err     io.Writer // where the check's verdict goes when the config is printed
}

// initSource is one source of a generated config.
type initSource struct {
	comment string
	name    string
	path    string
	include []string
	exclude []string
	kind    string
}

// Presets are the agent layouts `init --preset` knows.
var Presets = []string{"openclaw", "claude-code", "codex"}

var (
	tempExcludes = []string{"**/*.tmp", "**/*.swp", "**/*.lock"}
	nameClean    = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// presetSources finds a preset's layout under home; it names what it looked for when
// nothing is there.
func presetSources(preset, home string) ([]initSource, error) {
	var want []initSource
	switch preset {
	case "openclaw":
		agents := filepath.Join(home, ".openclaw", "agents")
		// Only the sessions folders of each agent: its other files are settings.
		want = []initSource{{
			comment: "session transcripts of every agent (<agent>/sessions/<id>.jsonl), the sessions.json\n" +
				"# index rewritten every turn, and transcripts renamed <id>.jsonl.deleted.<time> when a\n" +
				"# session is deleted (kept: they are the only copy left). *.bak-* repair copies are left\n" +
				"# out: the transcript's whole history is replicated already; remove that line to keep them.",
			name: "sessions", path: agents, include: []string{"*/sessions/**"},
			exclude: append([]string{"**/*.bak-*"}, tempExcludes...), kind: "auto",
		}, {
			comment: "the agents' working files and outputs",
			name:    "workspace", path: filepath.Join(home, ".openclaw", "workspace"),
			exclude: append(append([]string{}, tempExcludes...), "**/node_modules/**"), kind: "auto",
		}, {
			comment: "memory: SQLite databases are captured through their WAL and restored as one\n" +
				"# consistent file each; other files as they are",
			name: "memory", path: filepath.Join(home, ".openclaw", "memory"), exclude: tempExcludes, kind: "auto",
		}}
	case "claude-code":
		want = []initSource{{
			comment: "session transcripts, one JSONL file per session under a folder per project; a\n" +
				"# resumed or forked session is a new file",
			name: "claude-projects", path: filepath.Join(home, ".claude", "projects"),
			include: []string{"**/*.jsonl"}, kind: "append",
		}}
	case "codex":
		want = []initSource{{
			comment: "session transcripts (sessions/<year>/<month>/<day>/rollout-*.jsonl)",
			name:    "codex-sessions", path: filepath.Join(home, ".codex", "sessions"),
			include: []string{"**/*.jsonl"}, kind: "append",
		}}
	default:
		return nil, fmt.Errorf("%w: --preset %q: want one of %s", ErrUsage, preset, strings.Join(Presets, ", "))
	}
	var found []initSource
	var looked []string
	for _, s := range want {
		looked = append(looked, s.path)
		if fi, err := os.Stat(s.path); err == nil && fi.IsDir() {
			found = append(found, s)
		}
	}
	if preset == "openclaw" && len(found) > 0 && found[0].name == "sessions" {
		// Say which agents were found; a new agent is picked up without a change here.
		agents, _ := filepath.Glob(filepath.Join(found[0].path, "*", "sessions"))
		var names []string
		for _, a := range agents {
			names = append(names, filepath.Base(filepath.Dir(a)))
		}
		sort.Strings(names)
		if len(names) > 0 {
			found[0].comment += "\n# Agents found: " + strings.Join(names, ", ") + "."
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("no %s layout on this machine: looked for %s", preset, strings.Join(looked, ", "))
	}
	return found, nil
}

// folderSources makes one source per folder, named after the folder.
func folderSources(folders []string) ([]initSource, error) {
	if len(folders) == 0 {
		return nil, fmt.Errorf("%w: give --preset %s, or the folders to replicate", ErrUsage, strings.Join(Presets, "|"))
	}
	used := map[string]bool{}
	var out []initSource
	for _, f := range folders {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("init: %s: %w", f, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("%w: folder %s: %w", ErrUsage, f, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%w: %s is not a folder", ErrUsage, f)
		}
		name := strings.Trim(nameClean.ReplaceAllString(filepath.Base(abs), "-"), ".-")
		if name == "" {
			name = "source"
		}
		base := name
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		out = append(out, initSource{comment: "everything under " + abs, name: name, path: abs, exclude: tempExcludes, kind: "auto"})
	}
	return out, nil
}

// yamlString quotes s for YAML (JSON strings are YAML).
func yamlString(s string) string { return fmt.Sprintf("%q", s) }

func yamlList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = yamlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// renderConfig writes the commented config.
func renderConfig(title string, sources []initSource) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# mmreplicate configuration written by 'mmreplicate init' for %s.
# Check it with 'mmreplicate check-config --config FILE'; the daemon is 'mmreplicate run'.

# The name this host's data is stored under. Keep it stable: a rebuilt host given the
# same name continues the same history. Default: the machine's hostname.
#host: my-agent-host

# Journal, cursors and the embedded NATS store; keep a few GiB free there. Default:
# ./.mmreplicate in the folder the daemon starts in (the systemd unit uses the line below).
#data_dir: /var/lib/mmreplicate

# What to replicate. Each name is the top folder in restores and listings: never rename
# a source, or its history starts over under the new name. Globs are relative to path.
# kind: auto makes *.jsonl, *.ndjson, *.log append-only (only new bytes travel), files
# with the SQLite header databases, everything else whole files.
sources:
`, title)
	for _, s := range sources {
		fmt.Fprintf(&b, "  # %s\n", strings.ReplaceAll(s.comment, "\n# ", "\n  # "))
		fmt.Fprintf(&b, "  - name: %s\n    path: %s\n", s.name, yamlString(s.path))
		if len(s.include) > 0 {
			fmt.Fprintf(&b, "    include: %s\n", yamlList(s.include))
		}
		if len(s.exclude) > 0 {
			fmt.Fprintf(&b, "    exclude: %s\n", yamlList(s.exclude))
		}
		fmt.Fprintf(&b, "    kind: %s\n", s.kind)
	}
	b.WriteString(`
# Where the objects go. Without this section they stay in a local folder under data_dir,
# which dies with the host: set an S3 bucket before relying on it.
#s3:
#  url: s3://my-bucket/mmreplicate
#  endpoint: ""                    # empty: AWS; or the https:// URL of any S3-compatible service
#  region: us-east-1
#  access_key_id: ${AWS_ACCESS_KEY_ID}
#  secret_access_key: ${AWS_SECRET_ACCESS_KEY}
#  flush_interval: 1s

# /metrics, /healthz and /status (read by 'mmreplicate status').
http:
  listen: 127.0.0.1:9108
`)
	return b.String()
}

// Init is `mmreplicate init`: a commented config for the layout found, checked.
func Init(o InitOptions) error {
	var sources []initSource
	var err error
	title := "the folders " + strings.Join(o.Folders, ", ")
	if o.Preset != "" {
		if len(o.Folders) > 0 {
			return fmt.Errorf("%w: --preset finds the folders itself; give either a preset or folders", ErrUsage)
		}
		home := o.Home
		if home == "" {
			if home, err = os.UserHomeDir(); err != nil {
				return fmt.Errorf("init: %w", err)
			}
		}
		sources, err = presetSources(o.Preset, home)
		title = "the " + o.Preset + " layout under " + home
	} else {
		sources, err = folderSources(o.Folders)
	}
	if err != nil {
		return err
	}
	text := renderConfig(title, sources)
	path := o.Write
	if path == "" {
		// Check a copy, then print it.
		dir, err := os.MkdirTemp("", "mmreplicate-init-")
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "mmreplicate.yml")
	} else if _, err := os.Lstat(path); err == nil && !o.Force {
		return fmt.Errorf("%w: %s exists; pass --force to overwrite it", ErrUsage, path)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.CheckSources()
	}
	if err != nil {
		return fmt.Errorf("init: the config written to %s does not check: %w", path, err)
	}
	if o.Write == "" {
		_, err := io.WriteString(o.Out, text)
		fmt.Fprintf(o.Err, "config checked: %d sources; save it with --write FILE\n", len(cfg.Sources))
		return err
	}
	fmt.Fprintf(o.Out, "wrote %s: %d sources (%s); checked\n", o.Write, len(cfg.Sources), sourceNames(sources))
	return nil
}

func sourceNames(s []initSource) string {
	var n []string
	for _, x := range s {
		n = append(n, x.name+" "+x.path)
	}
	return strings.Join(n, ", ")
}
