// Command mmreplicate continuously replicates an AI-agent host's sessions, workspaces and
// memory databases to S3-compatible storage. This file only turns flags into options; the
// work is done in package app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/mmreplicate/mmreplicate/app"
	"github.com/mmreplicate/mmreplicate/config"
)

const usage = `mmreplicate: continuous replication of an AI-agent host to S3

usage: mmreplicate COMMAND [flags]

commands:
  run             the daemon: watch, journal, publish, upload
  restore         rebuild files as they were at a time: --at TIME --to DIR
  status          what the running daemon is doing (--json)
  sink s3|git     run sink workers alone against an external NATS (scale-out)
  verify          read the store back: checksums, gaps, missing blobs, recoverable window
  compact         apply retention: compact old history into manifests, delete what no retained point needs
  serve-s3        read-only S3 endpoint to browse any time with S3 clients: --listen ADDR
  ls              the files of the state at a time: [--at TIME] [GLOB...]
  cat             one file's bytes at a time to stdout: --at TIME SOURCE/PATH
  diff            what changed between two times: T1 T2 [GLOB...]
  log             every stored version of one file: SOURCE/PATH
  hosts           the hosts a store holds, their recoverable window and size
  init            write a config for the agent layout on this machine: [--preset NAME] [--write FILE]
  web             web console over the store: status, time slider, files, history, downloads
  check-config    validate the config file
  version         print version, commit and build date

every command takes --config FILE (default $MMREPLICATE_CONFIG or /etc/mmreplicate/mmreplicate.yml)
run 'mmreplicate COMMAND -h' for the flags of a command
`

// exitError carries an exit status with its message.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := dispatch(ctx, args[0], args[1:], stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := 1
	var ee exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if errors.Is(err, config.ErrInvalid) || errors.Is(err, app.ErrUsage) {
		code = 2
	}
	fmt.Fprintf(stderr, "mmreplicate %s: %s\n", args[0], oneLine(err))
	return code
}

// oneLine keeps every error to a single line, as operators and scripts expect.
func oneLine(err error) string {
	msg := strings.TrimPrefix(err.Error(), "usage: ")
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
}

// flags is a command's flag set with the shared --config flag.
type flags struct {
	*flag.FlagSet
	config   *string
	verbose  *bool
	synopsis string
	stderr   io.Writer
}

func newFlags(name, synopsis string, stderr io.Writer) flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse errors become one line (see parse); the full usage is for -h only.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return flags{FlagSet: fs, synopsis: synopsis, stderr: stderr,
		config:  fs.String("config", config.DefaultPath(), "config file"),
		verbose: fs.Bool("verbose", false, "log debug detail")}
}

func (f flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		return f.parseError(err)
	}
	if f.NArg() > 0 {
		return exitError{2, fmt.Errorf("unexpected argument %q", f.Arg(0))}
	}
	return nil
}

// parseError prints the usage for -h and turns any other parse error into one line.
func (f flags) parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(f.stderr, "usage: mmreplicate %s\n\nflags:\n", f.synopsis)
		f.SetOutput(f.stderr)
		f.PrintDefaults()
		return err
	}
	return exitError{2, fmt.Errorf("%w (see 'mmreplicate %s -h')", err, f.Name())}
}

// parseArgs parses flags and positional arguments in any order (`ls GLOB --json` as well
// as `ls --json GLOB`); a negative duration such as -2h is a positional TIME, not a flag,
// unless it is a flag's value; "--" ends the flags.
func (f flags) parseArgs(args []string) ([]string, error) {
	var pos, flagArgs []string
	value := false // the next argument is the value of the flag before it
	for i, a := range args {
		switch {
		case value:
			flagArgs, value = append(flagArgs, a), false
		case a == "--":
			pos = append(pos, args[i+1:]...)
			return pos, f.parseFlags(flagArgs)
		case len(a) > 1 && a[0] == '-' && !negativeTime.MatchString(a):
			flagArgs = append(flagArgs, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if fl := f.Lookup(name); fl != nil && !hasValue {
				b, ok := fl.Value.(interface{ IsBoolFlag() bool })
				value = !ok || !b.IsBoolFlag()
			}
		default:
			pos = append(pos, a)
		}
	}
	return pos, f.parseFlags(flagArgs)
}

var negativeTime = regexp.MustCompile(`^-[0-9.]`)

func (f flags) parseFlags(args []string) error {
	if err := f.Parse(args); err != nil {
		return f.parseError(err)
	}
	return nil
}

// browseFlags adds the flags every store-reading command shares.
func browseFlags(f flags, o *app.BrowseOptions, stdout io.Writer) {
	o.Out = stdout
	f.StringVar(&o.Host, "host", "", "host whose history to read (default: the config's host)")
	f.StringVar(&o.From, "from", "", "S3 target to read (default: the first that answers)")
	f.BoolVar(&o.JSON, "json", false, "print the answer as JSON")
}

func (f flags) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if *f.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func dispatch(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "version":
		f := newFlags("version", "version", stderr)
		if err := f.parse(args); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mmreplicate %s (commit %s, built %s)\n", app.Version, app.Commit, app.BuildDate)
		return nil
	case "check-config":
		f := newFlags("check-config", "check-config [--config FILE]", stderr)
		if err := f.parse(args); err != nil {
			return err
		}
		cfg, err := config.Load(*f.config)
		if err != nil {
			return err
		}
		if err := cfg.CheckSources(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "config %s is valid: host %s, %d sources, %d S3 targets\n", cfg.Path, cfg.Host, len(cfg.Sources), len(cfg.S3))
		for _, t := range cfg.S3 {
			fmt.Fprintln(stdout, app.BudgetSummary(t))
		}
		return nil
	case "run":
		f := newFlags("run", "run [--config FILE] [--no-sinks]", stderr)
		noSinks := f.Bool("no-sinks", false, "watch, journal and publish only; sinks run as `mmreplicate sink` elsewhere (needs nats.url)")
		if err := f.parse(args); err != nil {
			return err
		}
		cfg, err := config.Load(*f.config)
		if err != nil {
			return err
		}
		if *noSinks && cfg.NATS.URL == "" {
			return exitError{2, errors.New("--no-sinks needs nats.url: with the embedded NATS nothing else could read the records")}
		}
		return app.Run(ctx, app.RunOptions{Config: cfg, Log: f.logger(stderr), Out: stdout, NoSinks: *noSinks})
	case "sink":
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return exitError{2, errors.New("which sink? use `mmreplicate sink s3` or `mmreplicate sink git`")}
		}
		kind := args[0]
		f := newFlags("sink "+kind, "sink s3|git [--host NAME]... [--target NAME]", stderr)
		var hosts multi
		o := app.SinkOptions{Kind: kind, Out: stdout}
		f.Var(&hosts, "host", "serve this host's stream (repeatable; default: the config's host)")
		f.StringVar(&o.Target, "target", "", "s3: only this target (default: every target)")
		if err := f.parse(args[1:]); err != nil {
			return err
		}
		cfg, err := config.Load(*f.config)
		if err != nil {
			return err
		}
		o.Config, o.Hosts, o.Log = cfg, hosts, f.logger(stderr)
		return app.RunSink(ctx, o)
	case "restore":
		return restoreCmd(ctx, args, stdout, stderr)
	case "serve-s3":
		return serveS3Cmd(ctx, args, stdout, stderr)
	case "web":
		return webCmd(ctx, args, stdout, stderr)
	case "verify":
		f := newFlags("verify", "verify [--json] [--host NAME] [--from NAME] [--read-data]", stderr)
		var hosts multi
		o := app.VerifyOptions{Out: stdout}
		f.Var(&hosts, "host", "verify only this host (repeatable; default: every host in the store)")
		f.StringVar(&o.From, "from", "", "S3 target to read (default: the first that answers)")
		f.BoolVar(&o.JSON, "json", false, "print the report as JSON")
		f.BoolVar(&o.ReadData, "read-data", false, "also read every blob and check its hash")
		f.IntVar(&o.Parallel, "parallel", 16, "objects read at once")
		if err := f.parse(args); err != nil {
			return err
		}
		cfg, err := config.Load(*f.config)
		if err != nil {
			return err
		}
		o.Config, o.Hosts = cfg, hosts
		return app.Verify(ctx, o)
	case "compact":
		f := newFlags("compact", "compact [--dry-run] [--host NAME] [--from NAME] [--json]", stderr)
		o := app.CompactOptions{Out: stdout}
		f.StringVar(&o.Host, "host", "", "host to compact (default: this host)")
		f.StringVar(&o.From, "from", "", "S3 target to compact (default: the first that answers)")
		f.BoolVar(&o.DryRun, "dry-run", false, "build and count, write and delete nothing")
		f.BoolVar(&o.JSON, "json", false, "print the report as JSON")
		if err := f.parse(args); err != nil {
			return err
		}
		cfg, err := config.Load(*f.config)
		if err != nil {
			return err
		}
		o.Config, o.Log = cfg, f.logger(stderr)
		return app.Compact(ctx, o)
	case "ls", "cat", "diff", "log", "hosts":
		return browseCmd(ctx, cmd, args, stdout, stderr)
	case "init":
		return initCmd(args, stdout, stderr)
	case "status":
		f := newFlags("status", "status [--json]", stderr)
		asJSON := f.Bool("json", false, "print the daemon's status as JSON")
		if err := f.parse(args); err != nil {
			return err
		}
		cfg, err := config.Load(*f.config)
		if err != nil {
			return err
		}
		return app.PrintStatus(ctx, cfg, *asJSON, stdout)
	}
	return exitError{2, fmt.Errorf("unknown command %q (run 'mmreplicate help')", cmd)}
}

func browseCmd(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	var b app.BrowseOptions
	var at string
	synopsis := map[string]string{
		"ls":    "ls [--at TIME] [--json] [GLOB...]",
		"cat":   "cat --at TIME SOURCE/PATH",
		"diff":  "diff [--json] T1 T2 [GLOB...]",
		"log":   "log [--json] SOURCE/PATH",
		"hosts": "hosts [--json]",
	}[cmd]
	f := newFlags(cmd, synopsis, stderr)
	browseFlags(f, &b, stdout)
	if cmd == "ls" || cmd == "cat" {
		f.StringVar(&at, "at", "", "TIME: RFC 3339 (2026-11-26T18:00:00Z), latest, or a negative duration (-90s)")
	}
	pos, err := f.parseArgs(args)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		return err
	}
	b.Config = cfg
	one := func(what string) (string, error) {
		switch len(pos) {
		case 1:
			return pos[0], nil
		case 0:
			return "", exitError{2, fmt.Errorf("which file? give %s", what)}
		}
		return "", exitError{2, fmt.Errorf("unexpected argument %q: give one %s", pos[1], what)}
	}
	switch cmd {
	case "ls":
		return app.Ls(ctx, app.LsOptions{BrowseOptions: b, At: at, Globs: pos})
	case "cat":
		p, err := one("SOURCE/PATH")
		if err != nil {
			return err
		}
		return app.Cat(ctx, app.CatOptions{BrowseOptions: b, At: at, Path: p})
	case "diff":
		if len(pos) < 2 {
			return exitError{2, errors.New("diff needs two times: T1 T2 [GLOB...]")}
		}
		return app.Diff(ctx, app.DiffOptions{BrowseOptions: b, From1: pos[0], To2: pos[1], Globs: pos[2:]})
	case "log":
		p, err := one("SOURCE/PATH")
		if err != nil {
			return err
		}
		return app.Log(ctx, app.LogOptions{BrowseOptions: b, Path: p})
	default:
		if len(pos) > 0 {
			return exitError{2, fmt.Errorf("unexpected argument %q", pos[0])}
		}
		return app.Hosts(ctx, b)
	}
}

func initCmd(args []string, stdout, stderr io.Writer) error {
	f := newFlags("init", "init [--preset openclaw|claude-code|codex] [--write FILE] [--force] [FOLDER...]", stderr)
	o := app.InitOptions{Out: stdout, Err: stderr}
	f.StringVar(&o.Preset, "preset", "", "agent layout to look for under $HOME: "+strings.Join(app.Presets, ", "))
	f.StringVar(&o.Write, "write", "", "write the config to FILE (default: print it)")
	f.BoolVar(&o.Force, "force", false, "overwrite FILE when it exists")
	pos, err := f.parseArgs(args)
	if err != nil {
		return err
	}
	o.Folders = pos
	return app.Init(o)
}

func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("restore", "restore --at TIME --to DIR [flags]", stderr)
	var o app.RestoreOptions
	var sources, paths multi
	f.StringVar(&o.At, "at", "", "TIME: RFC 3339 (2026-11-26T18:00:00Z), latest, or a negative duration (-90s)")
	f.StringVar(&o.To, "to", "", "folder to write DIR/<source>/<path> into")
	f.StringVar(&o.Host, "host", "", "host whose state to restore (default: the config's host)")
	f.Var(&sources, "source", "restore only this source (repeatable)")
	f.Var(&paths, "path", "restore only paths matching this glob (repeatable)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan (files, bytes, objects) without writing")
	f.IntVar(&o.Parallel, "parallel", 8, "objects fetched at once")
	f.StringVar(&o.From, "from", "", "S3 target to read (default: the first that answers)")
	f.BoolVar(&o.Force, "force", false, "write into a folder that is not empty")
	f.BoolVar(&o.InPlace, "in-place", false, "write each source back to its own path from the config (refuses non-empty paths without --force)")
	if err := f.parse(args); err != nil {
		return err
	}
	if o.At == "" {
		return exitError{2, errors.New("--at TIME is required: RFC 3339 (2026-11-26T18:00:00Z), latest, or a negative duration (-90s)")}
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		return err
	}
	o.Config, o.Sources, o.Paths, o.Out, o.Log = cfg, sources, paths, stdout, f.logger(stderr)
	if isTerminal(stderr) {
		o.Progress = stderr
	}
	return app.Restore(ctx, o)
}

func serveS3Cmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("serve-s3", "serve-s3 --listen ADDR [flags]", stderr)
	var o app.ServeS3Options
	var cacheMB int64
	f.StringVar(&o.Listen, "listen", "", "ADDR to serve on: HOST:PORT, or a bare PORT for 127.0.0.1:PORT")
	f.StringVar(&o.Host, "host", "", "host whose state to serve (default: the config's host)")
	f.StringVar(&o.From, "from", "", "S3 target to read (default: the first that answers)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "folder to rebuild states in (default: the system's temporary folder)")
	f.Int64Var(&cacheMB, "cache-mb", 2048, "disk the rebuilt states may use, in MiB")
	if err := f.parse(args); err != nil {
		return err
	}
	if o.Listen == "" {
		return exitError{2, errors.New("--listen ADDR is required (e.g. 127.0.0.1:9000)")}
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		return err
	}
	o.Config, o.CacheBytes, o.Out, o.Log = cfg, cacheMB<<20, stdout, f.logger(stderr)
	return app.ServeS3(ctx, o)
}

func webCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("web", "web [--listen ADDR] [flags]", stderr)
	var o app.WebOptions
	var cacheMB int64
	f.StringVar(&o.Listen, "listen", "", "ADDR to serve on: HOST:PORT, or a bare PORT for 127.0.0.1:PORT (default: web.listen, 127.0.0.1:9109)")
	f.StringVar(&o.Host, "host", "", "host whose state to show (default: the config's host)")
	f.StringVar(&o.From, "from", "", "S3 target to read (default: the first that answers)")
	f.StringVar(&o.CacheDir, "cache-dir", "", "folder to rebuild states in (default: the system's temporary folder)")
	f.Int64Var(&cacheMB, "cache-mb", 2048, "disk the rebuilt states may use, in MiB")
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*f.config)
	if err != nil {
		return err
	}
	o.Config, o.CacheBytes, o.Out, o.Log = cfg, cacheMB<<20, stdout, f.logger(stderr)
	return app.Web(ctx, o)
}

// isTerminal reports whether w is a character device (a terminal), where a progress bar
// helps; in logs and pipes it would be noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
