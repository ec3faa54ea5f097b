// Package config loads and validates the mmreplicate YAML configuration
// described in SPEC.md. It turns every mistake into one line that names the
// file, the key and, where known, the line, so that `check-config` and the
// start of every command can tell the operator exactly what to fix.
package config

import (
	"errors"
	"fmt"
	"github.com/mmreplicate/mmreplicate/cost"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// ErrInvalid is wrapped by every error Load, Parse, CheckSources and Target
// return, so commands can map any config problem to exit status 2 with
// errors.Is instead of matching message text.
var ErrInvalid = errors.New("invalid config")

// Defaults, named so that documentation, tests and callers agree on them.
const (
	// DefaultFile is the config path used when neither --config nor
	// $MMREPLICATE_CONFIG names one.
	DefaultFile = "/etc/mmreplicate/mmreplicate.yml"
	// EnvConfig names the environment variable that overrides DefaultFile,
	// for containers and tests where /etc is not the right place.
	EnvConfig = "MMREPLICATE_CONFIG"
	// DefaultDataDir is relative on purpose: a first run from a checkout
	// works without root; it is made absolute against the working directory.
	DefaultDataDir = "./.mmreplicate"
	// DefaultNATSMaxBytes caps the JetStream stream on an external server so
	// a long sink outage cannot fill its disk. The embedded server keeps the
	// stream in memory, at most natsbus.EmbeddedStreamBytes.
	DefaultNATSMaxBytes int64 = 1 << 30
	// DefaultRegion is what AWS SDKs assume as well, and what most
	// S3-compatible servers accept.
	DefaultRegion = "us-east-1"
	// DefaultFlushInterval bounds the loss window of the S3 sink.
	DefaultFlushInterval = time.Second
	// DefaultBatchBytes makes a segment flush early when a burst of writes
	// would otherwise build one very large object.
	DefaultBatchBytes int64 = 8 << 20
	// DefaultManifestInterval bounds how many segments a restore reads past a manifest.
	DefaultManifestInterval = 10 * time.Minute
	// DefaultGitInterval matches "one commit per hour" in SPEC.md.
	DefaultGitInterval = time.Hour
	// DefaultHTTPListen keeps /metrics and /status on loopback unless the
	// operator chooses to expose them.
	DefaultHTTPListen = "127.0.0.1:9108"
	// HTTPOff is the http.listen value that disables the endpoint.
	HTTPOff = "off"
	// DefaultJournalMaxBytes caps the local journal on disk.
	DefaultJournalMaxBytes int64 = 10 << 30
	// DefaultJournalSyncInterval groups fsyncs of a burst of writes while
	// keeping the local loss window in the milliseconds.
	DefaultJournalSyncInterval = 2 * time.Millisecond
	// EmbeddedTargetName names the S3 target used when the config has no s3
	// section, so status output and --from can refer to it.
	EmbeddedTargetName = "local"
)

// Source kinds: how changes of a source's files are captured (see SPEC.md).
const (
	KindAuto   = "auto"   // decide per file from its name and header
	KindAppend = "append" // append-only logs: only new bytes travel
	KindFile   = "file"   // whole files: every change ships the file
	KindSQLite = "sqlite" // SQLite databases: captured through their WAL
)

// Config is a loaded, validated configuration with every default filled in,
// so callers never need to know which keys were absent.
type Config struct {
	Path       string      // file it came from (set by Load/Parse)
	Host       string      // default os.Hostname()
	DataDir    string      // default "./.mmreplicate"; absolute, resolved against the process working directory
	Sources    []Source    // at least one
	NATS       NATS        // external server, or the embedded one when URL is empty
	S3         []S3Target  // at least one; the embedded local folder when the config has no s3 section
	S3Default  bool        // true when the config had no s3 section (embedded default)
	Encryption *Encryption // nil when absent
	Git        *Git        // nil when absent
	ServeS3    ServeS3     // credentials serve-s3 requires from its clients
	HTTP       HTTP        // /metrics, /healthz, /status
	Web        Web         // the web console's credentials and address
	Journal    Journal
	Drill      Drill
	Retention  Retention
	Secrets    Secrets // local append-only journal limits

	// lines maps a key path ("sources[1].path") to its line in the file, so
	// checks made after parsing (CheckSources) can still point at the line.
	lines map[string]int
}

// Source is one directory tree to replicate. Its Name is the top folder in
// restores and in serve-s3 listings, so it must stay stable.
type Source struct {
	Name string // unique; letters, digits, '.', '_', '-'; not starting with '.'
	// Path is absolute; a relative path in the file is resolved against the
	// process working directory (not the config file's folder), like every
	// path a command-line tool is given.
	Path    string
	Include []string // doublestar globs relative to Path; empty means everything
	Exclude []string // doublestar globs relative to Path
	Kind    string   // auto | append | file | sqlite; default auto
}

// NATS says where records travel between the journal and the sinks.
type NATS struct {
	URL      string // empty: embedded server (stream in memory, see natsbus.InMemory)
	Creds    string // optional credentials file for an external server; absolute
	MaxBytes int64  // key max_bytes: stream size limit; default 1 GiB
}

// S3Target is one object store fed by its own S3 sink.
type S3Target struct {
	Name            string        // default "default" for a single mapping; required and unique in a list
	URL             string        // s3://bucket/prefix or file:///abs/path
	Endpoint        string        // empty: AWS
	Region          string        // default us-east-1
	AccessKeyID     string        // empty with SecretAccessKey: the SDK's default credential chain
	SecretAccessKey string        // set together with AccessKeyID
	FlushInterval   time.Duration // key flush_interval; default 1s
	BatchBytes      int64         // key batch_bytes; default 8 MiB
	// ManifestInterval (key manifest_interval, default 10m) is how often the sink stores
	// the whole state, bounding what a restore reads.
	ManifestInterval time.Duration
	// Budget (key budget: requests_per_month, monthly_usd, pricing) bounds what the
	// target's requests cost in a month; default $1 at AWS list prices. With a provider
	// that does not charge uploads and no requests_per_month, flush_interval alone
	// spaces uploads.
	Budget cost.Budget
}

// Encryption makes the host encrypt every S3 object before upload, so the
// store never holds readable data.
type Encryption struct {
	Recipients   []string // age public keys; at least one
	IdentityFile string   // private key restore needs; optional for run; absolute
}

// Secrets says what happens to content that holds a secret (API keys, tokens, private
// keys, password assignments) before it is journaled, uploaded or committed.
type Secrets struct {
	// Action (key action): "redact" (default) masks each secret with '*' of the same
	// length; "withhold" keeps what holds a secret out: a whole file holding one is not
	// shipped, an append-only file stops travelling at the capture that holds one (what
	// travelled before stays), and a SQLite database stops at its last state without one;
	// "off" ships content as it is.
	Action string
}

// Secrets actions.
const (
	SecretsRedact   = "redact"
	SecretsWithhold = "withhold"
	SecretsOff      = "off"
)

// Drill configures the daemon's automatic restore drills: every Interval it restores a
// random recent instant from each S3 target into a temporary folder and checks every file
// against the recorded hashes.
type Drill struct {
	Interval time.Duration // key interval; default 24h
	Enabled  bool          // key enabled; default true
}

// Retention thins the S3 history by compaction: every instant of the last KeepAll is
// kept, then one point per UTC hour for Hourly, then one per UTC day for Daily. KeepAll 0
// (the default) keeps everything forever.
type Retention struct {
	KeepAll   time.Duration // key keep_all
	Hourly    time.Duration // key hourly
	Daily     time.Duration // key daily
	BlobGrace time.Duration // key blob_grace; 0: the compaction default (24h); at least MinBlobGrace
}

// ChunkTrust is how long the watcher and the S3 sink trust that a chunk they sent is
// stored, referring to it without sending it again (watcher.SentTTL, s3.KnownTTL; a test
// in app keeps the three equal).
const ChunkTrust = 6 * time.Hour

// MinBlobGrace is the lowest retention.blob_grace accepted: the trust period plus an hour
// for the records that refer to a trusted chunk to reach the store.
const MinBlobGrace = ChunkTrust + time.Hour

// DefaultDrillInterval runs one restore drill a day.
const DefaultDrillInterval = 24 * time.Hour

// Git configures the hourly commit of the replicated state into a data
// repository, a readable logbook next to the S3 store.
type Git struct {
	Repo     string        // local repository path; absolute
	Remote   string        // optional URL to push to after each commit
	Interval time.Duration // default 1h
	Encrypt  bool          // key encrypt: commit encrypted files too (needs encryption)
}

// ServeS3 holds the SigV4 credentials serve-s3 checks; it refuses to start
// without them, but other commands do not need them, so they are optional here.
type ServeS3 struct {
	AccessKeyID     string // SigV4 access key clients must present
	SecretAccessKey string // its secret; set together with AccessKeyID
}

// Web configures the web console (`mmreplicate web`, and `/` on http.listen). The
// console is served only with both credentials set; it asks every browser for them
// (HTTP basic authentication).
type Web struct {
	Username string // key username
	Password string // key password; set together with Username
	// Listen is where `mmreplicate web` listens when --listen is not given; default
	// DefaultWebListen (this machine only).
	Listen string
}

// DefaultWebListen is where `mmreplicate web` listens by default.
const DefaultWebListen = "127.0.0.1:9109"

// Enabled reports whether credentials for the console are configured.
func (w Web) Enabled() bool { return w.Username != "" && w.Password != "" }

// HTTP configures the daemon's local endpoint that `status` reads.
type HTTP struct {
	// Listen is host:port (default 127.0.0.1:9108) or "off". An explicit ""
	// keeps the default, so a templated value that expands to nothing does
	// not silently turn monitoring off.
	Listen string
}

// Enabled reports whether the daemon should serve HTTP at all.
func (h HTTP) Enabled() bool { return h.Listen != HTTPOff }

// Journal limits the local append-only journal.
type Journal struct {
	MaxBytes     int64         // key max_bytes; default 10 GiB
	SyncInterval time.Duration // key sync_interval; default 2ms: longest an fsync waits for concurrent appends (group commit)
}

// DefaultPath is the config file commands read when --config is not given:
// $MMREPLICATE_CONFIG if set, else /etc/mmreplicate/mmreplicate.yml.
func DefaultPath() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	return DefaultFile
}

// Load reads the file at path and parses it. A file that cannot be read is
// reported as a config error too, since it is the operator's to fix.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The path is already at the start of the line; drop the copy the
		// os error carries.
		cause := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err
		}
		return nil, &Error{File: path, Msg: "cannot read: " + cause.Error(), Err: err}
	}
	return Parse(data, path)
}

// Parse decodes and validates data as the contents of the file at path. It
// checks everything that can be checked without touching the sources, because
// restore runs on a fresh host where the source paths do not exist yet; use
// CheckSources for those.
func Parse(data []byte, path string) (*Config, error) {
	d := &decoder{file: path, lines: map[string]int{}}
	c, err := d.decode(data)
	if err != nil {
		if e, ok := err.(*Error); ok && strings.Contains(e.Msg, "still holds the placeholder") {
			if all := placeholderLines(data); len(all) > 1 {
				// A template fresh from install: name every value still to fill in.
				e.Msg += fmt.Sprintf("; %d placeholders in all: %s", len(all), strings.Join(all, ", "))
			}
		}
		return nil, err
	}
	c.Path = path
	c.lines = d.lines
	return c, nil
}

// CheckSources verifies on the filesystem that every source path exists, is
// a directory and can be listed. `run` and `check-config` call it; Load does
// not, because restore must work where the sources are gone.
func (c *Config) CheckSources() error {
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d].path", i)
		fi, err := os.Stat(s.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return c.errorf(key, err, "%s does not exist", s.Path)
		case err != nil:
			return c.errorf(key, err, "%s cannot be checked: %v", s.Path, unwrapPath(err))
		case !fi.IsDir():
			return c.errorf(key, nil, "%s is not a directory", s.Path)
		}
		if _, err := os.ReadDir(s.Path); err != nil {
			return c.errorf(key, err, "%s cannot be read: %v", s.Path, unwrapPath(err))
		}
	}
	return nil
}

// Target returns the S3 target called name; "" picks the first, which is the
// one commands use when the operator did not choose.
func (c *Config) Target(name string) (S3Target, error) {
	if len(c.S3) == 0 {
		return S3Target{}, c.errorf("s3", nil, "no target is configured")
	}
	if name == "" {
		return c.S3[0], nil
	}
	names := make([]string, len(c.S3))
	for i, t := range c.S3 {
		if t.Name == name {
			return t, nil
		}
		names[i] = t.Name
	}
	return S3Target{}, c.errorf("s3", nil, "no target named %q (have: %s)", name, strings.Join(names, ", "))
}

// EmbeddedStoreDir is where the embedded default target keeps its objects.
func (c *Config) EmbeddedStoreDir() string {
	return filepath.Join(c.DataDir, "store")
}

// Match reports whether the file at rel (slash-separated, relative to
// s.Path) belongs to the source: it matches an Include pattern (or there are
// none) and no Exclude pattern. Patterns follow doublestar rules, so
// "**/*.jsonl" matches "a.jsonl" and "x/y/a.jsonl"; a folder pattern such as
// "cache" matches the folder only, so write "cache/**" for its contents.
func (s Source) Match(rel string) bool {
	if len(s.Include) > 0 && !matchAny(s.Include, rel) {
		return false
	}
	return !matchAny(s.Exclude, rel)
}

// matchAny uses the unvalidated matcher because Parse already rejected bad
// patterns, and a malformed pattern in a hand-built Source should simply not
// match rather than fail every file.
func matchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if doublestar.MatchUnvalidated(p, rel) {
			return true
		}
	}
	return false
}

// errorf builds an error about key, with its line when Parse recorded one.
func (c *Config) errorf(key string, cause error, format string, args ...any) error {
	return &Error{File: c.Path, Key: key, Line: c.lines[key], Msg: fmt.Sprintf(format, args...), Err: cause}
}

// unwrapPath drops the path an os error repeats, since the message already
// names it.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Error is one config problem. Its text is a single line,
// "config <file>: <key>: <what is wrong> (line N)", so it reads well on
// stderr and in journald; the fields let callers act on it without parsing.
type Error struct {
	File string // config file as given to Load or Parse
	Key  string // key path such as "sources[1].name"; empty for file-wide problems
	Line int    // 1-based line in the file; 0 when unknown
	Msg  string // what is wrong, one line
	Err  error  // underlying cause, if any
}

// Error formats the problem on one line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config ")
	b.WriteString(e.File)
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Key != "" && e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return strings.ReplaceAll(b.String(), "\n", " ")
}

// Unwrap exposes ErrInvalid, so every config error is recognised by
// errors.Is, and the cause, so callers can still test for fs.ErrNotExist.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.Err}
}

// placeholderLines lists every <<REPLACE_WITH_…>> marker outside comments, with its line.
func placeholderLines(data []byte) []string {
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		if j := strings.Index(line, "#"); j >= 0 && !strings.Contains(line[:j], placeholderMark) {
			line = line[:j]
		}
		for rest := line; ; {
			p := placeholder(rest)
			if p == "" {
				break
			}
			out = append(out, fmt.Sprintf("%s (line %d)", p, i+1))
			rest = rest[strings.Index(rest, p)+len(p):]
		}
	}
	return out
}
