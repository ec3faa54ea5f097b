package config

import (
	"errors"
	"github.com/mmreplicate/mmreplicate/cost"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// write puts a config file in a fresh temp dir and returns its path, so every
// test goes through Load and the real file-reading path.
func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// minimal is the smallest valid file; cases append or prepend to it.
const minimal = `
sources:
  - name: s
    path: /srv/s
`

// specExample is the example from SPEC.md, kept verbatim so the documented
// file is proven to load.
const specExample = `host: vps-1                        # default: the machine's hostname
data_dir: /var/lib/mmreplicate     # journal, cursors, embedded NATS store; default ./.mmreplicate
sources:
  - name: sessions                 # unique and stable: the top folder in restores and browsing
    path: /home/agentops/.openclaw/agents
    include: ["**/*.jsonl"]        # optional globs, relative to path; default: everything
    exclude: ["**/*.tmp"]          # optional
    kind: auto                     # auto | append | file | sqlite
  - name: workspaces
    path: /home/agentops/.openclaw/workspace
  - name: memory
    path: /home/agentops/.openclaw/memory
nats:
  url: ""                          # empty: embedded server with JetStream under data_dir
  creds: ""                        # optional credentials file for an external server
s3:                                # omit for the embedded default: a local folder, same layout;
                                   # or a list of targets, each with a ` + "`name`" + `, each fed on its own
  url: s3://mmreplicate/prod       # s3://bucket/prefix or file:///path
  endpoint: http://127.0.0.1:7070  # empty: AWS
  region: us-east-1
  access_key_id: ${AWS_ACCESS_KEY_ID}
  secret_access_key: ${AWS_SECRET_ACCESS_KEY}
  flush_interval: 1s
encryption:                        # optional: every S3 object encrypted on the host (git stays
                                   # a readable logbook unless git.encrypt: true)
  recipients: ["age1…"]            # age public keys; restore needs a matching identity file
  identity_file: /etc/mmreplicate/age.key
git:                               # optional
  repo: /var/lib/mmreplicate/data-repo
  remote: ""                       # optional URL to push to after each commit
  interval: 1h
serve_s3:
  access_key_id: ${MMR_S3_ACCESS_KEY}
  secret_access_key: ${MMR_S3_SECRET_KEY}
web:                               # the web console (HTTP basic authentication)
  username: admin
  password: ${MMR_WEB_PASSWORD}
http:
  listen: 127.0.0.1:9108           # /metrics (Prometheus), /healthz, /status (JSON)
`

func TestSpecExample(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "se/cret: #not a comment")
	t.Setenv("MMR_S3_ACCESS_KEY", "browse")
	t.Setenv("MMR_S3_SECRET_KEY", "browse-secret")
	t.Setenv("MMR_WEB_PASSWORD", "console-secret")
	p := write(t, specExample)
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got.lines = nil
	want := &Config{
		Path:    p,
		Host:    "vps-1",
		DataDir: "/var/lib/mmreplicate",
		Sources: []Source{
			{Name: "sessions", Path: "/home/agentops/.openclaw/agents", Include: []string{"**/*.jsonl"}, Exclude: []string{"**/*.tmp"}, Kind: KindAuto},
			{Name: "workspaces", Path: "/home/agentops/.openclaw/workspace", Kind: KindAuto},
			{Name: "memory", Path: "/home/agentops/.openclaw/memory", Kind: KindAuto},
		},
		NATS: NATS{MaxBytes: 1 << 30},
		S3: []S3Target{{
			Name: "default", URL: "s3://mmreplicate/prod", Endpoint: "http://127.0.0.1:7070", Region: "us-east-1",
			AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "se/cret: #not a comment",
			FlushInterval: time.Second, BatchBytes: 8 << 20, ManifestInterval: 10 * time.Minute, Budget: cost.Default(),
		}},
		Encryption: &Encryption{Recipients: []string{"age1…"}, IdentityFile: "/etc/mmreplicate/age.key"},
		Git:        &Git{Repo: "/var/lib/mmreplicate/data-repo", Interval: time.Hour},
		ServeS3:    ServeS3{AccessKeyID: "browse", SecretAccessKey: "browse-secret"},
		HTTP:       HTTP{Listen: "127.0.0.1:9108"},
		Web:        Web{Username: "admin", Password: "console-secret", Listen: DefaultWebListen},
		Journal:    Journal{MaxBytes: 10 << 30, SyncInterval: 2 * time.Millisecond},
		Drill:      Drill{Interval: 24 * time.Hour, Enabled: true},
		Secrets:    Secrets{Action: "redact"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", *got, *want)
	}
}

func TestDefaults(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(write(t, "sources:\n  - name: s\n    path: rel/dir\n"))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(cwd, ".mmreplicate")
	checks := []struct {
		what      string
		got, want any
	}{
		{"host", c.Host, host},
		{"data_dir", c.DataDir, dataDir},
		{"source path", c.Sources[0].Path, filepath.Join(cwd, "rel", "dir")},
		{"kind", c.Sources[0].Kind, KindAuto},
		{"nats", c.NATS, NATS{MaxBytes: 1 << 30}},
		{"s3", c.S3, []S3Target{{Name: "local", URL: "file://" + filepath.Join(dataDir, "store"), FlushInterval: time.Second, BatchBytes: 8 << 20, ManifestInterval: 10 * time.Minute}}},
		{"s3 default", c.S3Default, true},
		{"store dir", c.EmbeddedStoreDir(), filepath.Join(dataDir, "store")},
		{"encryption", c.Encryption, (*Encryption)(nil)},
		{"git", c.Git, (*Git)(nil)},
		{"serve_s3", c.ServeS3, ServeS3{}},
		{"http", c.HTTP, HTTP{Listen: "127.0.0.1:9108"}},
		{"http enabled", c.HTTP.Enabled(), true},
		{"journal", c.Journal, Journal{MaxBytes: 10 << 30, SyncInterval: 2 * time.Millisecond}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.what, ch.got, ch.want)
		}
	}
}

func TestS3List(t *testing.T) {
	c, err := Load(write(t, minimal+`
s3:
  - name: primary
    url: s3://bucket/prefix
    flush_interval: 500ms
    batch_bytes: 16MiB
  - name: backup
    url: file:///mnt/backup
    region: eu-west-1
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []S3Target{
		{Name: "primary", URL: "s3://bucket/prefix", Region: "us-east-1", FlushInterval: 500 * time.Millisecond, BatchBytes: 16 << 20, ManifestInterval: 10 * time.Minute, Budget: cost.Default()},
		{Name: "backup", URL: "file:///mnt/backup", Region: "eu-west-1", FlushInterval: time.Second, BatchBytes: 8 << 20, ManifestInterval: 10 * time.Minute},
	}
	if !reflect.DeepEqual(c.S3, want) || c.S3Default {
		t.Fatalf("S3 = %+v (default %v), want %+v", c.S3, c.S3Default, want)
	}
	for _, tt := range []struct{ name, want string }{{"", "primary"}, {"primary", "primary"}, {"backup", "backup"}} {
		got, err := c.Target(tt.name)
		if err != nil || got.Name != tt.want {
			t.Errorf("Target(%q) = %q, %v; want %q", tt.name, got.Name, err, tt.want)
		}
	}
	_, err = c.Target("nope")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `s3: no target named "nope" (have: primary, backup)`) {
		t.Errorf("Target(nope) error = %v", err)
	}
}

// TestValid covers accepted variations; each check inspects what it changed.
func TestValid(t *testing.T) {
	t.Setenv("MMR_TEST_BUCKET", "from-env")
	t.Setenv("MMR_TEST_ODD", `"quoted": [x] # y`)
	tests := []struct {
		name  string
		yaml  string
		check func(*Config) any // returns the value to compare
		want  any
	}{
		{"s3 null means embedded", minimal + "s3:\n", func(c *Config) any { return c.S3Default }, true},
		{"single target named", minimal + "s3:\n  name: main\n  url: s3://b\n", func(c *Config) any { return c.S3[0].Name }, "main"},
		{"empty listen keeps default", minimal + "http:\n  listen: \"\"\n", func(c *Config) any { return c.HTTP.Listen }, DefaultHTTPListen},
		{"listen off", minimal + "http:\n  listen: OFF\n", func(c *Config) any { return c.HTTP.Enabled() }, false},
		{"listen any host", minimal + "http:\n  listen: \":9200\"\n", func(c *Config) any { return c.HTTP.Listen }, ":9200"},
		{"env expansion", minimal + "s3:\n  url: s3://${MMR_TEST_BUCKET}/p\n", func(c *Config) any { return c.S3[0].URL }, "s3://from-env/p"},
		{"env value with YAML syntax", minimal + "serve_s3:\n  access_key_id: ${MMR_TEST_ODD}\n  secret_access_key: x\n", func(c *Config) any { return c.ServeS3.AccessKeyID }, `"quoted": [x] # y`},
		{"bare dollar literal", minimal + "serve_s3:\n  access_key_id: a$b$\n  secret_access_key: $HOME\n", func(c *Config) any { return c.ServeS3.AccessKeyID + " " + c.ServeS3.SecretAccessKey }, "a$b$ $HOME"},
		{"unset env means default", "host: ${MMR_TEST_UNSET}x\n" + minimal + "http:\n  listen: ${MMR_TEST_UNSET}\n", func(c *Config) any { return c.Host + " " + c.HTTP.Listen }, "x " + DefaultHTTPListen},
		{"sizes with units", minimal + "nats:\n  max_bytes: 512MiB\njournal:\n  max_bytes: 1.5GB\n", func(c *Config) any { return []int64{c.NATS.MaxBytes, c.Journal.MaxBytes} }, []int64{512 << 20, 1_500_000_000}},
		{"plain size", minimal + "nats:\n  max_bytes: 1048576\n", func(c *Config) any { return c.NATS.MaxBytes }, int64(1 << 20)},
		{"include as one string", "sources:\n  - name: s\n    path: /x\n    include: \"**/*.db\"\n", func(c *Config) any { return c.Sources[0].Include }, []string{"**/*.db"}},
		{"kinds", "sources:\n  - {name: a, path: /a, kind: append}\n  - {name: b, path: /b, kind: file}\n  - {name: c, path: /c, kind: sqlite}\n",
			func(c *Config) any { return c.Sources[0].Kind + c.Sources[1].Kind + c.Sources[2].Kind }, "appendfilesqlite"},
		{"anchors via merge in list", minimal + "s3:\n  - &a\n    name: one\n    url: s3://b/1\n    region: eu-1\n  - <<: *a\n    name: two\n",
			func(c *Config) any { return c.S3[1].Name + " " + c.S3[1].URL + " " + c.S3[1].Region }, "two s3://b/1 eu-1"},
		{"git", minimal + "encryption:\n  recipients: age1x\ngit:\n  repo: /r\n  interval: 30m\n  encrypt: true\n",
			func(c *Config) any { return *c.Git }, Git{Repo: "/r", Interval: 30 * time.Minute, Encrypt: true}},
		{"emptied sections", minimal + "git:\nencryption:\nnats:\n", func(c *Config) any { return c.Git == nil && c.Encryption == nil }, true},
		{"retention", minimal + "retention:\n  keep_all: 7d\n  hourly: 36h\n  daily: 30d\n",
			func(c *Config) any { return c.Retention }, Retention{KeepAll: 7 * 24 * time.Hour, Hourly: 36 * time.Hour, Daily: 30 * 24 * time.Hour}},
		{"retention off by default", minimal, func(c *Config) any { return c.Retention }, Retention{}},
		{"retention zero windows", minimal + "retention:\n  keep_all: 48h\n  hourly: 0\n  daily: 0d\n  blob_grace: 2d\n",
			func(c *Config) any { return c.Retention }, Retention{KeepAll: 48 * time.Hour, BlobGrace: 48 * time.Hour}},
		{"nats creds absolute", minimal + "nats:\n  url: nats://a:4222\n  creds: /etc/n.creds\n", func(c *Config) any { return c.NATS.Creds }, "/etc/n.creds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestErrors has one case per rule. Each asserts the key path (or line) and
// the gist of the message, that the error wraps ErrInvalid, and that it is
// one line starting with "config <file>: ".
func TestErrors(t *testing.T) {
	t.Setenv("MMR_TEST_PLACEHOLDER", "<<REPLACE_WITH_TOKEN>>")
	src := func(body string) string { return "sources:\n  - name: s\n    path: /srv/s\n" + body }
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		// Syntax and structure.
		{"invalid yaml", "sources:\n  - name: a\n   path: b\n", []string{"invalid YAML at line 2: did not find expected '-' indicator"}},
		{"invalid yaml flow", "host: a\nsources: [1, 2\nb: 3\n", []string{"invalid YAML at line 2: did not find expected ',' or ']'"}},
		{"invalid yaml scanner", "host: a\nsources: b: c\n", []string{"invalid YAML at line 2: mapping values are not allowed"}},
		{"unknown anchor", "host: *nope\n", []string{"invalid YAML: unknown anchor 'nope' referenced"}},
		{"tab indent", "host: a\n\tsources: x\n", []string{"invalid YAML at line 2"}},
		{"two documents", minimal + "---\nhost: b\n", []string{"line 5: a second YAML document"}},
		{"top not mapping", "- a\n- b\n", []string{"line 1: the file must hold key: value pairs"}},
		{"unknown top key", "host: a\n" + minimal + "sorces: []\n", []string{`line 6: unknown key "sorces" (did you mean "sources"?)`}},
		{"unknown far key", minimal + "zzzzzz: 1\n", []string{`unknown key "zzzzzz" (known keys: data_dir, drill, encryption, git,`}},
		{"unknown anchor holder", minimal + "x-common: &c\n  a: 1\n", []string{`line 5: unknown key "x-common"`}},
		{"unknown source key", minimal + "    inclde: [a]\n", []string{`line 5: unknown key "sources[0].inclde" (did you mean "include"?)`}},
		{"unknown s3 list key", minimal + "s3:\n  - name: a\n    url: s3://b\n  - name: c\n    urll: s3://b\n", []string{`line 9: unknown key "s3[1].urll"`}},
		{"unknown nested key", minimal + "journal:\n  max_byte: 1\n", []string{`unknown key "journal.max_byte"`}},
		{"repeated key", "host: a\nhost: b\n" + minimal, []string{`line 2: key "host" is repeated (first at line 1)`}},
		{"wrong type scalar", "host: [a]\n" + minimal, []string{"host: must be a single value, not a list (line 1)"}},
		{"wrong type section", minimal + "nats: yes\n", []string{"nats: must be a mapping"}},
		{"s3 scalar", minimal + "s3: s3://b\n", []string{"s3: must be a mapping (url: …) or a list of them"}},
		{"retention bad span", minimal + "retention:\n  keep_all: 7days\n", []string{`retention.keep_all: "7days" is not a duration`}},
		{"retention negative", minimal + "retention:\n  keep_all: 7d\n  daily: -1h\n", []string{"retention.daily: must not be negative"}},
		{"retention blob_grace below the chunk trust", minimal + "retention:\n  keep_all: 7d\n  blob_grace: 1h\n", []string{"retention.blob_grace: 1h0m0s is below the minimum 7h0m0s"}},
		{"retention windows without keep_all", minimal + "retention:\n  daily: 30d\n", []string{"retention.keep_all: is required"}},

		// Sources.
		{"empty file", "", []string{"sources: at least one source is required"}},
		{"no sources", "host: a\nsources: []\n", []string{"sources: at least one source is required"}},
		{"sources not list", "sources:\n  name: a\n", []string{"sources: must be a list of sources"}},
		{"name missing", "sources:\n  - path: /a\n", []string{"sources[0].name: is required (line 2)"}},
		{"name twice", src("  - name: t\n    path: /t\n  - name: s\n    path: /u\n"), []string{`sources[2].name: "s" is used twice (line 6)`}},
		{"name chars", "sources:\n  - name: a/b\n    path: /a\n", []string{`sources[0].name: "a/b" may only hold`}},
		{"name at", "sources:\n  - name: \"@latest\"\n    path: /a\n", []string{`sources[0].name: "@latest" may only hold`}},
		{"name dot", "sources:\n  - name: .hidden\n    path: /a\n", []string{`sources[0].name: ".hidden" must not start with '.'`}},
		{"path missing", "sources:\n  - name: a\n", []string{"sources[0].path: is required"}},
		{"path tilde", "sources:\n  - name: a\n    path: ~/x\n", []string{"sources[0].path: \"~/x\": ~ is not expanded"}},
		{"kind", "sources:\n  - name: a\n    path: /a\n    kind: wal\n", []string{`sources[0].kind: "wal" is not one of auto, append, file, sqlite (line 4)`}},
		{"bad include glob", "sources:\n  - name: a\n    path: /a\n    include: [\"ok/**\", \"[a\"]\n", []string{`sources[0].include[1]: "[a" is not a valid glob`}},
		{"absolute exclude glob", "sources:\n  - name: a\n    path: /a\n    exclude: [\"/tmp/**\"]\n", []string{`sources[0].exclude[0]: "/tmp/**" must be relative`}},
		{"empty glob", "sources:\n  - name: a\n    path: /a\n    include: [\"\"]\n", []string{"sources[0].include[0]: is empty"}},

		// Host and data_dir.
		{"host slash", "host: a/b\n" + minimal, []string{`host: "a/b" must not contain / (line 1)`}},
		{"host dotdot", "host: ..\n" + minimal, []string{`host: ".." cannot be a host name`}},
		{"host blank", "host: a b\n" + minimal, []string{`host: "a b" must not contain blanks`}},
		{"data_dir tilde", "data_dir: ~/m\n" + minimal, []string{"data_dir: \"~/m\": ~ is not expanded"}},

		// S3.
		{"s3 url missing", minimal + "s3:\n  region: x\n", []string{"s3.url: is required"}},
		{"s3 url scheme", minimal + "s3:\n  url: https://b/p\n", []string{`s3.url: "https://b/p" must start with s3:// or file://`}},
		{"s3 url no bucket", minimal + "s3:\n  url: s3:///p\n", []string{`s3.url: "s3:///p" needs a bucket`}},
		{"s3 url host port", minimal + "s3:\n  url: s3://minio:9000/b\n", []string{`s3.url: "s3://minio:9000/b": "minio:9000" is not a bucket name`}},
		{"s3 url creds", minimal + "s3:\n  url: s3://k:s@b/p\n", []string{`s3.url: "s3://k:s@b/p" must not hold credentials`}},
		{"file url relative", minimal + "s3:\n  url: file://rel/path\n", []string{`s3.url: "file://rel/path" needs an absolute path`}},
		{"file url opaque", minimal + "s3:\n  url: file:rel\n", []string{`s3.url: "file:rel" needs an absolute path`}},
		{"s3 empty list", minimal + "s3: []\n", []string{"s3: is an empty list"}},
		{"s3 list name missing", minimal + "s3:\n  - url: s3://b\n", []string{"s3[0].name: is required when s3 is a list of targets (line 6)"}},
		{"s3 list name twice", minimal + "s3:\n  - name: a\n    url: s3://b\n  - name: a\n    url: s3://c\n", []string{`s3[1].name: "a" is used twice (line 8)`}},
		{"s3 bad name", minimal + "s3:\n  name: a b\n  url: s3://b\n", []string{`s3.name: "a b" may only hold`}},
		{"flush interval", minimal + "s3:\n  url: s3://b\n  flush_interval: fast\n", []string{`s3.flush_interval: "fast" is not a Go duration (e.g. 1s, 500ms) (line 7)`}},
		{"flush interval zero", minimal + "s3:\n  url: s3://b\n  flush_interval: 0s\n", []string{`s3.flush_interval: must be positive, not "0s"`}},
		{"flush interval negative in list", minimal + "s3:\n  - name: a\n    url: s3://b\n    flush_interval: -1s\n", []string{`s3[0].flush_interval: must be positive`}},
		{"batch bytes", minimal + "s3:\n  url: s3://b\n  batch_bytes: 0\n", []string{`s3.batch_bytes: must be positive, not "0"`}},
		{"endpoint", minimal + "s3:\n  url: s3://b\n  endpoint: 127.0.0.1:7070\n", []string{`s3.endpoint: "127.0.0.1:7070" is not an http(s) URL`}},
		{"half credentials", minimal + "s3:\n  url: s3://b\n  access_key_id: k\n", []string{"s3.secret_access_key: is required when access_key_id is set"}},
		{"half credentials list", minimal + "s3:\n  - name: a\n    url: s3://b\n    secret_access_key: k\n", []string{"s3[0].access_key_id: is required when secret_access_key is set"}},

		// Placeholders.
		{"placeholder", minimal + "s3:\n  url: s3://b\n  access_key_id: k\n  secret_access_key: <<REPLACE_WITH_AWS_SECRET>>\n",
			[]string{"s3.secret_access_key: still holds the placeholder <<REPLACE_WITH_AWS_SECRET>>; put the real value in (line 8)"}},
		{"placeholder inside value", "host: vps-<<REPLACE_WITH_HOST>>-1\n" + minimal, []string{"host: still holds the placeholder <<REPLACE_WITH_HOST>>"}},
		{"placeholder from env", minimal + "serve_s3:\n  access_key_id: ${MMR_TEST_PLACEHOLDER}\n", []string{"serve_s3.access_key_id: still holds the placeholder <<REPLACE_WITH_TOKEN>> (from the environment)"}},
		{"placeholder in list", minimal + "encryption:\n  recipients: [age1a, \"<<REPLACE_WITH_AGE_KEY>>\"]\n", []string{"encryption.recipients[1]: still holds the placeholder <<REPLACE_WITH_AGE_KEY>>"}},
		{"placeholder in glob", "sources:\n  - name: a\n    path: /a\n    include: [\"<<REPLACE_WITH_GLOB>>\"]\n", []string{"sources[0].include[0]: still holds the placeholder"}},

		// Durations, sizes and other sections.
		{"git interval", minimal + "git:\n  repo: /r\n  interval: hourly\n", []string{`git.interval: "hourly" is not a Go duration`}},
		{"git repo", minimal + "git:\n  interval: 1h\n", []string{"git.repo: is required when git is configured"}},
		{"git encrypt needs encryption", minimal + "git:\n  repo: /r\n  encrypt: true\n", []string{"git.encrypt: needs an encryption section"}},
		{"git encrypt bool", minimal + "git:\n  repo: /r\n  encrypt: maybe\n", []string{`git.encrypt: "maybe" is not true or false`}},
		{"journal sync", minimal + "journal:\n  sync_interval: 0ms\n", []string{`journal.sync_interval: must be positive`}},
		{"nats max bytes", minimal + "nats:\n  max_bytes: lots\n", []string{`nats.max_bytes: "lots" is not a size in bytes`}},
		{"size overflow", minimal + "journal:\n  max_bytes: 99999999TiB\n", []string{`journal.max_bytes: "99999999TiB" is not a size`}},
		{"encryption recipients", minimal + "encryption:\n  identity_file: /k\n", []string{"encryption.recipients: needs at least one age public key"}},
		{"serve_s3 half", minimal + "serve_s3:\n  access_key_id: k\n", []string{"serve_s3.secret_access_key: is required"}},
		{"web password missing", minimal + "web:\n  username: admin\n", []string{"web.password: is required when web.username is set"}},
		{"web username missing", minimal + "web:\n  password: p\n", []string{"web.username: is required when web.password is set"}},
		{"web username colon", minimal + "web:\n  username: a:b\n  password: p\n", []string{"web.username: must not contain ':'"}},
		{"web listen garbage", minimal + "web:\n  listen: nope\n", []string{`web.listen: "nope" is not host:port`}},
		{"web unknown key", minimal + "web:\n  user: admin\n", []string{"web.user"}},
		{"listen garbage", minimal + "http:\n  listen: nope\n", []string{`http.listen: "nope" is not host:port (e.g. 127.0.0.1:9108) or "off"`}},
		{"listen port range", minimal + "http:\n  listen: 127.0.0.1:99999\n", []string{`http.listen: "127.0.0.1:99999" is not host:port`}},
		{"listen port name", minimal + "http:\n  listen: localhost:http\n", []string{`http.listen: "localhost:http" is not host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, tt.yaml)
			c, err := Load(p)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			assertConfigError(t, err, p, tt.want...)
		})
	}
}

// assertConfigError checks the shape every config error shares.
func assertConfigError(t *testing.T, err error, path string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	msg := err.Error()
	t.Log(msg)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", msg)
	}
	if !strings.HasPrefix(msg, "config "+path+": ") {
		t.Errorf("error %q does not start with %q", msg, "config "+path+": ")
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q\n  lacks %q", msg, w)
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yml")
	_, err := Load(missing)
	assertConfigError(t, err, missing, "cannot read: no such file or directory")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	dir := t.TempDir()
	_, err = Load(dir)
	assertConfigError(t, err, dir, "cannot read: is a directory")
}

func TestParseSetsPath(t *testing.T) {
	c, err := Parse([]byte(minimal), "inline.yml")
	if err != nil || c.Path != "inline.yml" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	_, err = Parse([]byte("sources: 1\n"), "inline.yml")
	assertConfigError(t, err, "inline.yml", "sources: must be a list")
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("MMREPLICATE_CONFIG", "")
	if got := DefaultPath(); got != "/etc/mmreplicate/mmreplicate.yml" {
		t.Errorf("DefaultPath() = %q", got)
	}
	t.Setenv("MMREPLICATE_CONFIG", "/tmp/x.yml")
	if got := DefaultPath(); got != "/tmp/x.yml" {
		t.Errorf("DefaultPath() with env = %q", got)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		include []string
		exclude []string
		rel     string
		want    bool
	}{
		{"no patterns", nil, nil, "any/file.bin", true},
		{"doublestar at top", []string{"**/*.jsonl"}, nil, "a.jsonl", true},
		{"doublestar deep", []string{"**/*.jsonl"}, nil, "x/y/a.jsonl", true},
		{"doublestar other ext", []string{"**/*.jsonl"}, nil, "x/a.json", false},
		{"single star stays in folder", []string{"*.jsonl"}, nil, "x/a.jsonl", false},
		{"single star top", []string{"*.jsonl"}, nil, "a.jsonl", true},
		{"second include", []string{"**/*.jsonl", "**/*.db"}, nil, "m/x.db", true},
		{"exclude wins", []string{"**/*.jsonl"}, []string{"**/*.tmp", "archive/**"}, "archive/a.jsonl", false},
		{"exclude only", nil, []string{"**/*.tmp"}, "x/a.tmp", false},
		{"exclude only other", nil, []string{"**/*.tmp"}, "x/a.txt", true},
		{"folder contents", []string{"logs/**"}, nil, "logs/2026/a.log", true},
		{"braces", []string{"**/*.{db,sqlite}"}, nil, "a/b.sqlite", true},
		{"class", []string{"s[0-9].txt"}, nil, "s7.txt", true},
		{"invalid pattern never matches", []string{"[a"}, nil, "[a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Source{Include: tt.include, Exclude: tt.exclude}
			if got := s.Match(tt.rel); got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.rel, got, tt.want)
			}
		})
	}
}

func TestCheckSources(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	file := filepath.Join(dir, "file")
	locked := filepath.Join(dir, "locked")
	for _, d := range []string{ok, locked} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })

	load := func(path string) (*Config, string) {
		p := write(t, "sources:\n  - name: ok\n    path: "+ok+"\n  - name: x\n    path: "+path+"\n")
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return c, p
	}
	c, _ := load(ok + "/../ok")
	if err := c.CheckSources(); err != nil {
		t.Errorf("readable sources: %v", err)
	}
	tests := []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "gone"), "sources[1].path: " + filepath.Join(dir, "gone") + " does not exist (line 5)"},
		{"not a directory", file, "sources[1].path: " + file + " is not a directory (line 5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := load(tt.path)
			assertConfigError(t, c.CheckSources(), p, tt.want)
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		c, p := load(locked)
		err := c.CheckSources()
		if os.Geteuid() == 0 {
			// root reads a mode-000 folder anyway, so the check must pass.
			if err != nil {
				t.Errorf("as root, CheckSources = %v, want nil", err)
			}
			return
		}
		assertConfigError(t, err, p, "sources[1].path: "+locked+" cannot be read: permission denied")
	})
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true}, {"1k", 1024, true}, {"1KB", 1000, true}, {"2 MiB", 2 << 20, true},
		{"1.5GiB", 3 << 29, true}, {"10GB", 10_000_000_000, true}, {"1TiB", 1 << 40, true}, {"7b", 7, true},
		{"", 0, false}, {"GiB", 0, false}, {"1.5", 0, false}, {"1 parsec", 0, false}, {"1e9", 0, false}, {"010", 10, true},
	}
	for _, tt := range tests {
		got, ok := parseSize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEveryPlaceholderNamed(t *testing.T) {
	p := write(t, "host: <<REPLACE_WITH_HOST>>\n# a comment naming <<REPLACE_WITH_NOTHING>> is fine\nsources:\n  - name: s\n    path: /tmp\nserve_s3:\n  access_key_id: <<REPLACE_WITH_KEY>>\n  secret_access_key: <<REPLACE_WITH_SECRET>>\n")
	_, err := Load(p)
	if err == nil {
		t.Fatal("placeholders accepted")
	}
	msg := err.Error()
	for _, want := range []string{"3 placeholders in all", "<<REPLACE_WITH_HOST>> (line 1)", "<<REPLACE_WITH_KEY>> (line 7)", "<<REPLACE_WITH_SECRET>> (line 8)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "NOTHING") || strings.Contains(msg, "\n") {
		t.Errorf("comment counted or several lines: %q", msg)
	}
}

func TestS3Budget(t *testing.T) {
	c, err := Load(write(t, minimal+`
s3:
  - name: a
    url: s3://bucket/a
    budget:
      requests_per_month: 50000
      pricing: r2
  - name: b
    url: s3://bucket/b
    budget:
      monthly_usd: 2.5
      pricing: {put_per_1000: 0.01, get_per_1000: 0.001, gb_month: 0.02}
  - name: c
    url: s3://bucket/c
    budget: {pricing: b2}
`))
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := cost.Preset("r2")
	b2, _ := cost.Preset("b2")
	want := []cost.Budget{
		{RequestsPerMonth: 50000, MonthlyUSD: cost.DefaultMonthlyUSD, Pricing: r2},
		{MonthlyUSD: 2.5, Pricing: cost.Pricing{Name: "custom", PutPer1000: 0.01, GetPer1000: 0.001, GBMonth: 0.02}},
		{MonthlyUSD: cost.DefaultMonthlyUSD, Pricing: b2},
	}
	for i, w := range want {
		if c.S3[i].Budget != w {
			t.Errorf("target %d budget %+v, want %+v", i, c.S3[i].Budget, w)
		}
	}
	if n := c.S3[1].Budget.PutsPerMonth(); n != 250000 {
		t.Errorf("$2.5 at $0.01/1000 = %v PUTs", n)
	}
	for yaml, msg := range map[string]string{
		"s3:\n  url: s3://b\n  budget:\n    pricing: gcs\n":               `s3.budget.pricing: unknown pricing "gcs"`,
		"s3:\n  url: s3://b\n  budget:\n    monthly_usd: -1\n":            "s3.budget.monthly_usd: must not be negative",
		"s3:\n  url: s3://b\n  budget:\n    requests_per_month: lots\n":   `s3.budget.requests_per_month: "lots" is not a number`,
		"s3:\n  url: s3://b\n  budget:\n    pricing: {put_per_1000: x}\n": `s3.budget.pricing.put_per_1000: "x" is not a number`,
		"s3:\n  url: s3://b\n  budget:\n    requests_per_month: 1.5\n":    "s3.budget.requests_per_month: must be a whole number",
	} {
		_, err := Load(write(t, minimal+yaml))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: got %v, want %q", yaml, err, msg)
		}
	}
}
