package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/bmatcuk/doublestar/v4"
)

// nameRE limits source and target names to characters that are safe as a
// folder name, an S3 key segment and a metric label without escaping.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// bucketRE is deliberately looser than AWS's rules so S3-compatible servers
// with their own naming still work, while catching a host:port pasted where
// the bucket goes.
var bucketRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// validate checks the rules that span keys or need defaults resolved, in
// file order, so the first error reported is the first one in the file.
func (d *decoder) validate(c *Config) error {
	if err := d.validateHost(c); err != nil {
		return err
	}
	dir, err := d.absPath("data_dir", c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = dir
	if err := d.validateSources(c); err != nil {
		return err
	}
	if c.NATS.Creds != "" {
		if c.NATS.Creds, err = d.absPath("nats.creds", c.NATS.Creds); err != nil {
			return err
		}
	}
	if err := d.validateS3(c); err != nil {
		return err
	}
	switch c.Secrets.Action {
	case "":
		c.Secrets.Action = SecretsRedact
	case SecretsRedact, SecretsWithhold, SecretsOff:
	default:
		return d.errAt("secrets.action", "%q is not one of redact, withhold, off", c.Secrets.Action)
	}
	if r := c.Retention; r.KeepAll == 0 && (r.Hourly > 0 || r.Daily > 0) {
		// Thinning windows start where keep_all ends; without it nothing is thinned.
		return d.errAt("retention.keep_all", "is required (e.g. 7d) when retention.hourly or retention.daily is set")
	}
	if g := c.Retention.BlobGrace; g != 0 && g < MinBlobGrace {
		// The watcher and the S3 sink trust for ChunkTrust that a chunk they sent is
		// stored, and then refer to it without sending it again: a blob swept sooner
		// than that could be referred to after it is gone.
		return d.errAt("retention.blob_grace", "%s is below the minimum %s (chunks are trusted as stored for %s after they are sent, plus %s for the records that refer to them to arrive)",
			g, MinBlobGrace, ChunkTrust, MinBlobGrace-ChunkTrust)
	}
	if e := c.Encryption; e != nil {
		if len(e.Recipients) == 0 {
			return d.errAt("encryption.recipients", "needs at least one age public key (age1…); omit encryption to store objects unencrypted")
		}
		if e.IdentityFile != "" {
			if e.IdentityFile, err = d.absPath("encryption.identity_file", e.IdentityFile); err != nil {
				return err
			}
		}
	}
	if g := c.Git; g != nil {
		if g.Repo == "" {
			return d.errAt("git.repo", "is required when git is configured")
		}
		if g.Repo, err = d.absPath("git.repo", g.Repo); err != nil {
			return err
		}
		if g.Encrypt && c.Encryption == nil {
			return d.errAt("git.encrypt", "needs an encryption section with recipients")
		}
	}
	if err := d.pair("serve_s3", c.ServeS3.AccessKeyID, c.ServeS3.SecretAccessKey); err != nil {
		return err
	}
	if err := d.validateWeb(c); err != nil {
		return err
	}
	return d.validateHTTP(c)
}

// validateWeb wants both credentials or neither, a username without ':' (basic
// authentication cannot carry one) and a listen address of host:port.
func (d *decoder) validateWeb(c *Config) error {
	w := &c.Web
	switch {
	case w.Username != "" && w.Password == "":
		return d.errAt("web.password", "is required when web.username is set")
	case w.Username == "" && w.Password != "":
		return d.errAt("web.username", "is required when web.password is set")
	case strings.Contains(w.Username, ":"):
		return d.errAt("web.username", "must not contain ':'")
	}
	if w.Listen == "" {
		w.Listen = DefaultWebListen
		return nil
	}
	_, port, err := net.SplitHostPort(w.Listen)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return d.errAt("web.listen", "%q is not host:port (e.g. 127.0.0.1:9109)", w.Listen)
	}
	return nil
}

// validateHost fills in the machine's name and refuses names that cannot be
// a single path segment, since the host is the top level of the store.
func (d *decoder) validateHost(c *Config) error {
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return d.errAt("host", "is not set and the machine's hostname is unknown; set host")
		}
		c.Host = h
	}
	switch {
	case c.Host == "." || c.Host == "..":
		return d.errAt("host", "%q cannot be a host name", c.Host)
	case strings.Contains(c.Host, "/"):
		return d.errAt("host", "%q must not contain /", c.Host)
	case strings.IndexFunc(c.Host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return d.errAt("host", "%q must not contain blanks or control characters", c.Host)
	}
	return nil
}

// validateSources checks each source and that names are unique, since the
// name is the folder a restore writes into.
func (d *decoder) validateSources(c *Config) error {
	if len(c.Sources) == 0 {
		return d.errAt("sources", "at least one source is required (- name: …, path: …)")
	}
	seen := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		key := fmt.Sprintf("sources[%d]", i)
		if err := d.name(key+".name", s.Name); err != nil {
			return err
		}
		if seen[s.Name] {
			return d.errAt(key+".name", "%q is used twice", s.Name)
		}
		seen[s.Name] = true
		if s.Path == "" {
			return d.errAt(key+".path", "is required")
		}
		p, err := d.absPath(key+".path", s.Path)
		if err != nil {
			return err
		}
		s.Path = p
		switch s.Kind {
		case KindAuto, KindAppend, KindFile, KindSQLite:
		default:
			return d.errAt(key+".kind", "%q is not one of auto, append, file, sqlite", s.Kind)
		}
		if err := d.globs(key+".include", s.Include); err != nil {
			return err
		}
		if err := d.globs(key+".exclude", s.Exclude); err != nil {
			return err
		}
	}
	return nil
}

// globs refuses patterns that could never match a relative path.
func (d *decoder) globs(key string, patterns []string) error {
	for i, p := range patterns {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case !doublestar.ValidatePattern(p):
			return d.errAt(k, "%q is not a valid glob", p)
		case strings.HasPrefix(p, "/"):
			return d.errAt(k, "%q must be relative to the source path (drop the leading /)", p)
		}
	}
	return nil
}

// validateS3 fills in the embedded default when there is no s3 section and
// checks each target otherwise.
func (d *decoder) validateS3(c *Config) error {
	if len(c.S3) == 0 {
		c.S3Default = true
		c.S3 = []S3Target{{
			Name:             EmbeddedTargetName,
			URL:              "file://" + c.EmbeddedStoreDir(),
			FlushInterval:    DefaultFlushInterval,
			BatchBytes:       DefaultBatchBytes,
			ManifestInterval: DefaultManifestInterval,
		}}
		return nil
	}
	list := d.s3List
	seen := map[string]bool{}
	for i := range c.S3 {
		t := &c.S3[i]
		key := "s3"
		if list {
			key = fmt.Sprintf("s3[%d]", i)
		}
		if list && t.Name == "" {
			return d.errAt(key+".name", "is required when s3 is a list of targets")
		}
		if err := d.name(key+".name", t.Name); err != nil {
			return err
		}
		if seen[t.Name] {
			return d.errAt(key+".name", "%q is used twice", t.Name)
		}
		seen[t.Name] = true
		if err := d.storeURL(key+".url", t.URL); err != nil {
			return err
		}
		if t.Endpoint != "" {
			u, err := url.Parse(t.Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return d.errAt(key+".endpoint", "%q is not an http(s) URL (e.g. http://127.0.0.1:7070)", t.Endpoint)
			}
		}
		if err := d.pair(key, t.AccessKeyID, t.SecretAccessKey); err != nil {
			return err
		}
	}
	return nil
}

// storeURL checks s3://bucket/prefix and file:///abs/path.
func (d *decoder) storeURL(key, raw string) error {
	if raw == "" {
		return d.errAt(key, "is required (s3://bucket/prefix or file:///abs/path)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return d.errAt(key, "%q is not a URL (s3://bucket/prefix or file:///abs/path)", raw)
	}
	switch u.Scheme {
	case "s3":
		switch {
		case u.User != nil:
			return d.errAt(key, "%q must not hold credentials; use access_key_id and secret_access_key", raw)
		case u.Host == "":
			return d.errAt(key, "%q needs a bucket (s3://bucket/prefix)", raw)
		case !bucketRE.MatchString(u.Host):
			return d.errAt(key, "%q: %q is not a bucket name; a server address goes in endpoint", raw, u.Host)
		}
	case "file":
		if u.Host != "" || u.Opaque != "" || !strings.HasPrefix(strings.ToLower(raw), "file://") || !filepath.IsAbs(u.Path) {
			return d.errAt(key, "%q needs an absolute path (file:///abs/path)", raw)
		}
	default:
		return d.errAt(key, "%q must start with s3:// or file://", raw)
	}
	return nil
}

// pair refuses half-set credentials, which would otherwise fall back to the
// default credential chain without the operator noticing.
func (d *decoder) pair(key, id, secret string) error {
	switch {
	case id != "" && secret == "":
		return d.errAt(key+".secret_access_key", "is required when access_key_id is set")
	case id == "" && secret != "":
		return d.errAt(key+".access_key_id", "is required when secret_access_key is set")
	}
	return nil
}

// validateHTTP accepts host:port or "off" (any case).
func (d *decoder) validateHTTP(c *Config) error {
	if strings.EqualFold(c.HTTP.Listen, HTTPOff) {
		c.HTTP.Listen = HTTPOff
		return nil
	}
	_, port, err := net.SplitHostPort(c.HTTP.Listen)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return d.errAt("http.listen", "%q is not host:port (e.g. 127.0.0.1:9108) or \"off\"", c.HTTP.Listen)
	}
	return nil
}

// name checks a source or target name.
func (d *decoder) name(key, name string) error {
	switch {
	case name == "":
		return d.errAt(key, "is required")
	case !nameRE.MatchString(name):
		return d.errAt(key, "%q may only hold letters, digits, '.', '_' and '-'", name)
	case name[0] == '.':
		return d.errAt(key, "%q must not start with '.'", name)
	}
	return nil
}

// absPath makes p absolute against the process working directory, the way
// command-line tools treat paths, and refuses a leading "~", which no shell
// expands inside a config file.
func (d *decoder) absPath(key, p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		return "", d.errAt(key, "%q: ~ is not expanded here; write the full path or use ${HOME}", p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", d.errAt(key, "%q cannot be made absolute: %v", p, err)
	}
	return abs, nil
}
