package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// The paths the kit installs, relative to DESTDIR.
const (
	binPath  = "/usr/local/bin/mmreplicate"
	confDir  = "/etc/mmreplicate"
	confFile = "/etc/mmreplicate/mmreplicate.yml"
	dataDir  = "/var/lib/mmreplicate"
	unitFile = "/etc/systemd/system/mmreplicate.service"
)

// The real binary, built once for every test that needs it.
var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// mmreplicate returns the path of the binary built from ../cmd/mmreplicate.
func mmreplicate(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mmreplicate-deploy-test-")
		if buildErr != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		builtBin = filepath.Join(buildDir, "mmreplicate")
		cmd := exec.Command(goTool, "build", "-o", builtBin, "../cmd/mmreplicate")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ../cmd/mmreplicate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// result is one run of a command.
type result struct {
	out  string // stdout and stderr, interleaved
	code int
}

func run(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), append([]string{"LC_ALL=C"}, env...)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result{buf.String(), 0}
	case errors.As(err, &ee) && ctx.Err() == nil:
		return result{buf.String(), ee.ExitCode()}
	}
	t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, buf.String())
	return result{}
}

// install runs install.sh with DESTDIR=root.
func install(t *testing.T, root string, args ...string) result {
	t.Helper()
	return run(t, []string{"DESTDIR=" + root}, "bash", append([]string{"install.sh"}, args...)...)
}

// mustInstall runs install.sh and fails the test unless it exits 0.
func mustInstall(t *testing.T, root string, args ...string) string {
	t.Helper()
	r := install(t, root, args...)
	if r.code != 0 {
		t.Fatalf("install.sh %s: exit %d\n%s", strings.Join(args, " "), r.code, r.out)
	}
	return r.out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// entry is what a snapshot records of one path.
type entry struct {
	mode  fs.FileMode
	sum   [32]byte
	mtime time.Time
}

// snapshot records every path under root with its mode, content hash and mtime, so
// two snapshots are equal only if nothing was created, changed or rewritten.
func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	snap := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: fi.Mode(), mtime: fi.ModTime()}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256(b)
		}
		rel, _ := filepath.Rel(root, p)
		snap["/"+filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func diffSnapshots(a, b map[string]entry) []string {
	var diffs []string
	for p, ea := range a {
		eb, ok := b[p]
		switch {
		case !ok:
			diffs = append(diffs, "removed "+p)
		case ea != eb:
			diffs = append(diffs, fmt.Sprintf("changed %s: %v %x %v -> %v %x %v", p, ea.mode, ea.sum[:4], ea.mtime, eb.mode, eb.sum[:4], eb.mtime))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			diffs = append(diffs, "created "+p)
		}
	}
	sort.Strings(diffs)
	return diffs
}

// changeLines returns the output lines that report a change.
func changeLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		for _, verb := range []string{"create ", "install ", "update ", "set ", "add ", "enable ", "start ", "restart ", "reload "} {
			if strings.HasPrefix(l, verb) {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

func TestInstallLaysOutFilesAndIsIdempotent(t *testing.T) {
	bin := mmreplicate(t)
	root := t.TempDir()

	out := mustInstall(t, root, "--binary", bin, "--watch-group", "agents")
	for _, want := range []string{
		"create dir " + root + confDir + " (0750)",
		"create dir " + root + dataDir + " (0750)",
		"install binary " + root + binPath,
		"create " + root + confFile + " from the template",
		"install systemd unit " + root + unitFile,
		"skip user and group mmreplicate (DESTDIR set)",
		"skip adding mmreplicate to group agents (DESTDIR set)",
		"skip systemctl",
		"not started: the config is not ready",
		"placeholder",
		"next steps:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first run: output lacks %q:\n%s", want, out)
		}
	}

	for _, f := range []struct {
		path string
		mode fs.FileMode
		same string // file whose content it must equal
	}{
		{confDir, fs.ModeDir | 0o750, ""},
		{dataDir, fs.ModeDir | 0o750, ""},
		{binPath, 0o755, bin},
		{confFile, 0o640, "mmreplicate.yml.template"},
		{unitFile, 0o644, "mmreplicate.service"},
	} {
		fi, err := os.Stat(root + f.path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
		if f.same != "" && read(t, root+f.path) != read(t, f.same) {
			t.Errorf("%s differs from %s", f.path, f.same)
		}
	}

	// The operator edits the config; a re-run keeps the edit and changes nothing.
	edited := read(t, root+confFile) + "# edited by the operator\n"
	if err := os.WriteFile(root+confFile, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	out = mustInstall(t, root, "--binary", bin, "--watch-group", "agents")
	if got := read(t, root+confFile); got != edited {
		t.Errorf("the second run overwrote the config:\n%s", got)
	}
	if !strings.Contains(out, "keep existing "+root+confFile+" (never overwritten)") {
		t.Errorf("second run does not say it keeps the config:\n%s", out)
	}
	if !strings.Contains(out, "nothing changed") {
		t.Errorf("second run does not say nothing changed:\n%s", out)
	}
	if lines := changeLines(out); len(lines) > 0 {
		t.Errorf("second run reports changes %q:\n%s", lines, out)
	}
	if d := diffSnapshots(before, snapshot(t, root)); len(d) > 0 {
		t.Errorf("second run changed the tree:\n%s", strings.Join(d, "\n"))
	}
}

func TestInstallConvergesDriftAndUpdates(t *testing.T) {
	bin := mmreplicate(t)
	root := t.TempDir()
	mustInstall(t, root, "--binary", bin)

	// A new binary replaces the old one; a drifted mode is put back; the config stays.
	newBin := filepath.Join(t.TempDir(), "mmreplicate")
	if err := os.WriteFile(newBin, []byte("#!/bin/sh\necho 'mmreplicate test-2 (commit x, built y)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root+confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := read(t, root+confFile)
	out := mustInstall(t, root, "--binary", newBin)
	for _, want := range []string{
		"update binary " + root + binPath,
		"set mode 0750 on " + root + confDir + " (was 755)",
		"keep existing " + root + confFile,
		"done: 2 change(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if read(t, root+binPath) != read(t, newBin) {
		t.Error("the binary was not replaced")
	}
	if fi, _ := os.Stat(root + confDir); fi.Mode().Perm() != 0o750 {
		t.Errorf("%s: mode %v, want 0750", confDir, fi.Mode().Perm())
	}
	if read(t, root+confFile) != conf {
		t.Error("the config was rewritten")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	bin := mmreplicate(t)
	root := t.TempDir()
	out := mustInstall(t, root, "--dry-run", "--binary", bin)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("--dry-run created %d entries under DESTDIR, e.g. %s", len(entries), entries[0].Name())
	}
	for _, want := range []string{
		"[dry-run] create dir " + root + confDir,
		"[dry-run] create dir " + root + dataDir,
		"[dry-run] install binary " + root + binPath,
		"[dry-run] create " + root + confFile + " from the template",
		"[dry-run] install systemd unit " + root + unitFile,
		"nothing was changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, out)
		}
	}
	if lines := changeLines(out); len(lines) > 0 {
		t.Errorf("--dry-run reports changes as done: %q", lines)
	}

	// On an installed tree a dry run touches nothing either.
	mustInstall(t, root, "--binary", bin)
	before := snapshot(t, root)
	mustInstall(t, root, "--dry-run", "--binary", bin)
	if d := diffSnapshots(before, snapshot(t, root)); len(d) > 0 {
		t.Errorf("--dry-run changed the tree:\n%s", strings.Join(d, "\n"))
	}
}

func TestInstallFlags(t *testing.T) {
	root := t.TempDir()
	if r := install(t, root, "-h"); r.code != 0 || !strings.Contains(r.out, "usage: install.sh") || !strings.Contains(r.out, "--dry-run") {
		t.Errorf("-h: exit %d\n%s", r.code, r.out)
	}
	if r := install(t, root, "--bogus"); r.code != 2 || !strings.Contains(r.out, "unknown argument '--bogus'") {
		t.Errorf("--bogus: exit %d, want 2\n%s", r.code, r.out)
	}
	if r := install(t, root, "--binary"); r.code != 2 {
		t.Errorf("--binary without a path: exit %d, want 2\n%s", r.code, r.out)
	}
	missing := filepath.Join(root, "nope")
	if r := install(t, root, "--binary", missing); r.code != 1 || !strings.Contains(r.out, "binary "+missing+" not found") {
		t.Errorf("missing binary: exit %d, want 1\n%s", r.code, r.out)
	}
	if entries, _ := os.ReadDir(root); len(entries) > 0 {
		t.Errorf("a refused run created %s", entries[0].Name())
	}
}

// unit is a parsed systemd unit: section -> key -> values in file order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(read(t, path)))
	keyRE := regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasSuffix(line, `\`):
			t.Errorf("%s:%d: line continuations make the unit hard to read and check", path, n)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Errorf("%s:%d: section [%s] repeated", path, n, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || !keyRE.MatchString(k) || section == "" {
				t.Errorf("%s:%d: not a Key=value line in a section: %q", path, n, line)
				continue
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func TestUnitFile(t *testing.T) {
	u := parseUnit(t, "mmreplicate.service")
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	want := map[string]map[string]string{
		"Unit": {"After": "network-online.target", "Wants": "network-online.target"},
		"Service": {
			"Type":                    "notify",
			"ExecStartPre":            "/usr/local/bin/mmreplicate check-config --config /etc/mmreplicate/mmreplicate.yml",
			"ExecStart":               "/usr/local/bin/mmreplicate run --config /etc/mmreplicate/mmreplicate.yml",
			"ExecReload":              "/bin/kill -HUP $MAINPID",
			"Restart":                 "always",
			"RestartSec":              "2",
			"WatchdogSec":             "60s",
			"User":                    "mmreplicate",
			"Group":                   "mmreplicate",
			"EnvironmentFile":         "-/etc/mmreplicate/env",
			"TimeoutStopSec":          "60",
			"LimitNOFILE":             "65536",
			"ProtectSystem":           "strict",
			"ReadWritePaths":          "/var/lib/mmreplicate",
			"ProtectHome":             "read-only",
			"NoNewPrivileges":         "yes",
			"PrivateTmp":              "yes",
			"ProtectKernelTunables":   "yes",
			"ProtectKernelModules":    "yes",
			"ProtectControlGroups":    "yes",
			"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
			"LockPersonality":         "yes",
			"MemoryDenyWriteExecute":  "yes",
			"SystemCallArchitectures": "native",
			"CapabilityBoundingSet":   "",
		},
		"Install": {"WantedBy": "multi-user.target"},
	}
	for section, keys := range want {
		for k, v := range keys {
			got, ok := u[section][k]
			switch {
			case !ok:
				t.Errorf("[%s] lacks %s=%s", section, k, v)
			case len(got) != 1:
				t.Errorf("[%s] %s is set %d times: %q", section, k, len(got), got)
			case got[0] != v:
				t.Errorf("[%s] %s=%s, want %s", section, k, got[0], v)
			}
		}
	}
	if _, ok := u["Service"]["AmbientCapabilities"]; ok {
		t.Error("AmbientCapabilities must stay commented out: it is only for files the group cannot read")
	}
	if !strings.Contains(read(t, "mmreplicate.service"), "\n#AmbientCapabilities=CAP_DAC_READ_SEARCH\n") {
		t.Error("the unit lacks the commented AmbientCapabilities=CAP_DAC_READ_SEARCH line")
	}

	// The unit, the template and the installer agree on the paths.
	tmpl := read(t, "mmreplicate.yml.template")
	if !regexp.MustCompile(`(?m)^data_dir: /var/lib/mmreplicate\s*(#.*)?$`).MatchString(tmpl) {
		t.Error("the template's data_dir is not /var/lib/mmreplicate, the unit's ReadWritePaths")
	}
	script := read(t, "install.sh")
	for _, p := range []string{binPath, confFile, dataDir, unitFile} {
		if !strings.Contains(script, "="+p+"\n") {
			t.Errorf("install.sh does not install to %s", p)
		}
	}
}

func TestUnitVerifies(t *testing.T) {
	analyze := testenv.Tool(t, "systemd-analyze", "systemd")
	unitPath, err := filepath.Abs("mmreplicate.service")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, analyze, "verify", unitPath)
	var complaints []string
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		// The binary is not installed on the test machine; that is the one complaint allowed.
		if l == "" || strings.Contains(l, binPath) && strings.Contains(l, "is not executable") {
			continue
		}
		complaints = append(complaints, l)
	}
	if len(complaints) > 0 {
		t.Errorf("systemd-analyze verify (exit %d):\n%s", r.code, strings.Join(complaints, "\n"))
	}
}

// uncomment enables the template's commented-out optional sections (a "#key:" line
// and its "#  key:" lines), so their keys can be checked too.
func uncomment(tmpl string) string {
	return regexp.MustCompile(`(?m)^#([a-z_]+:|  +[a-z_]+:)`).ReplaceAllString(tmpl, "$1")
}

var placeholderRE = regexp.MustCompile(`<<REPLACE_WITH_[A-Z0-9_]+>>`)

func TestTemplateHasEveryKey(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(uncomment(read(t, "mmreplicate.yml.template"))), &doc); err != nil {
		t.Fatalf("the template with its optional sections enabled is not YAML: %v", err)
	}
	have := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				have[prefix+k] = true
				walk(prefix+k+".", c)
			}
		case []any:
			for _, c := range v {
				if m, ok := c.(map[string]any); ok {
					walk(prefix, m)
				}
			}
		}
	}
	walk("", doc)
	for _, k := range []string{
		"host", "data_dir",
		"sources", "sources.name", "sources.path", "sources.include", "sources.exclude", "sources.kind",
		"nats.url", "nats.creds",
		"s3.url", "s3.endpoint", "s3.region", "s3.access_key_id", "s3.secret_access_key", "s3.flush_interval",
		"encryption.recipients", "encryption.identity_file",
		"git.repo", "git.remote", "git.interval",
		"serve_s3.access_key_id", "serve_s3.secret_access_key",
		"http.listen",
	} {
		if !have[k] {
			t.Errorf("the template lacks the key %s", k)
		}
	}

	// The sources follow the agent host's layout, under the agent user's home.
	sources, _ := doc["sources"].([]any)
	got := map[string]string{}
	for _, s := range sources {
		m, _ := s.(map[string]any)
		name, _ := m["name"].(string)
		path, _ := m["path"].(string)
		got[name] = path
		if name == "sessions" && fmt.Sprint(m["include"]) != "[**/*.jsonl]" {
			t.Errorf("sessions include %v, want [**/*.jsonl]", m["include"])
		}
	}
	home := "/home/<<REPLACE_WITH_AGENT_USER>>/.openclaw/"
	for name, rel := range map[string]string{"sessions": "agents", "workspaces": "workspace", "memory": "memory"} {
		if got[name] != home+rel {
			t.Errorf("source %s: path %q, want %q", name, got[name], home+rel)
		}
	}
}

func TestTemplateHoldsNoSecrets(t *testing.T) {
	tmpl := read(t, "mmreplicate.yml.template")
	secretKey := regexp.MustCompile(`^\s*#?\s*(access_key_id|secret_access_key|recipients|remote|password|token):\s*(.*?)\s*(#.*)?$`)
	allowed := regexp.MustCompile(`^(""|\["?<<REPLACE_WITH_[A-Z0-9_]+>>"?\]|"?<<REPLACE_WITH_[A-Z0-9_]+>>"?|\$\{[A-Z0-9_]+\})$`)
	n := 0
	for i, line := range strings.Split(tmpl, "\n") {
		m := secretKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n++
		if !allowed.MatchString(m[2]) {
			t.Errorf("line %d: %s holds %q; a secret must be a <<REPLACE_WITH_...>> placeholder", i+1, m[1], m[2])
		}
	}
	if n < 4 {
		t.Errorf("found only %d secret keys; the S3 and serve_s3 credentials must be in the template", n)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`AKIA[0-9A-Z]{16}`),           // an access key id
		regexp.MustCompile(`-----BEGIN`),                 // a private key
		regexp.MustCompile(`AGE-SECRET-KEY-`),            // an encryption identity
		regexp.MustCompile(`[A-Za-z0-9+/]{32,}`),         // a long random token
		regexp.MustCompile(`://[^/\s:@]+:[^/\s@]+@`),     // credentials inside a URL
		regexp.MustCompile(`(?i)\b(xox[bp]|ghp|glpat)-`), // well-known token shapes
	} {
		if m := re.FindString(placeholderRE.ReplaceAllString(tmpl, "")); m != "" {
			t.Errorf("the template holds what looks like a secret: %q", m)
		}
	}
}

func TestTemplatePlaceholdersAreRefused(t *testing.T) {
	bin := mmreplicate(t)
	root := t.TempDir()
	mustInstall(t, root, "--binary", bin)

	r := run(t, nil, bin, "check-config", "--config", root+confFile)
	if r.code != 2 || !strings.Contains(r.out, "placeholder") {
		t.Errorf("check-config on the installed template: exit %d, want 2 naming a placeholder\n%s", r.code, r.out)
	}

	// With every placeholder filled in (and the optional sections enabled), the template
	// is a valid config: the placeholders are the only thing to do.
	home := filepath.Join(t.TempDir(), "home", "agent")
	for _, d := range []string{"agents", "workspace", "memory"} {
		if err := os.MkdirAll(filepath.Join(home, ".openclaw", d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	filled := strings.ReplaceAll(uncomment(read(t, "mmreplicate.yml.template")), "/home/<<REPLACE_WITH_AGENT_USER>>", home)
	filled = placeholderRE.ReplaceAllString(filled, "filled-in")
	path := filepath.Join(t.TempDir(), "mmreplicate.yml")
	if err := os.WriteFile(path, []byte(filled), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, bin, "check-config", "--config", path)
	if r.code != 0 {
		t.Errorf("check-config on the filled-in template: exit %d, want 0\n%s", r.code, r.out)
	}
}

func TestInstallScriptLint(t *testing.T) {
	if r := run(t, nil, "bash", "-n", "install.sh"); r.code != 0 {
		t.Fatalf("bash -n install.sh:\n%s", r.out)
	}
	sc := testenv.Tool(t, "shellcheck", "shellcheck")
	if r := run(t, nil, sc, "install.sh"); r.code != 0 {
		t.Errorf("shellcheck install.sh:\n%s", r.out)
	}
}
