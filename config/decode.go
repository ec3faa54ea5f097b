package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/mmreplicate/mmreplicate/cost"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The file is walked as a yaml.Node tree rather than unmarshalled into
// structs: that is what lets every error carry the key path and line, lets
// `s3` be either one mapping or a list, and lets ${VAR} expansion happen on
// parsed values, where an expanded secret full of YAML syntax cannot change
// the structure of the file.

// decoder carries what every error needs: the file name, and the line of each
// key path seen so far for checks made after the walk.
type decoder struct {
	file   string
	lines  map[string]int
	s3List bool // s3 was written as a list, so key paths carry an index
}

// fieldFunc decodes the value of one key; key is its full path.
type fieldFunc func(key string, v *yaml.Node) error

// fields maps the keys a mapping accepts to their decoders; any other key is
// an error, so typos are caught instead of silently ignored.
type fields map[string]fieldFunc

// yamlLineRE picks the line number out of the parser's messages so it can be
// placed the same way as in our own errors.
var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// envRE matches ${NAME} only: a bare $ stays literal, because secrets and
// URLs legitimately contain dollar signs.
var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// placeholderMark starts the markers our config templates ship with; a value
// still holding one would otherwise fail later in a confusing way (a 403 from
// S3, a bad age key), far from the line to fix.
const placeholderMark = "<<REPLACE_WITH_"

// decode parses data and returns the config with defaults filled in and
// every rule of the package checked.
func (d *decoder) decode(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, d.yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, d.lineErr(extra.Line, "a second YAML document starts here; the file must hold one")
	case !errors.Is(err, io.EOF):
		return nil, d.yamlError(err)
	}

	c := &Config{
		DataDir: DefaultDataDir,
		NATS:    NATS{MaxBytes: DefaultNATSMaxBytes},
		HTTP:    HTTP{Listen: DefaultHTTPListen},
		Journal: Journal{MaxBytes: DefaultJournalMaxBytes, SyncInterval: DefaultJournalSyncInterval},
		Drill:   Drill{Interval: DefaultDrillInterval, Enabled: true},
		Secrets: Secrets{Action: SecretsRedact},
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		if err := d.top(c, doc.Content[0]); err != nil {
			return nil, err
		}
	}
	if err := d.validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// top decodes the document's root mapping.
func (d *decoder) top(c *Config, n *yaml.Node) error {
	return d.mapping("", n, fields{
		"host":     d.str(&c.Host),
		"data_dir": d.str(&c.DataDir),
		"sources":  func(k string, v *yaml.Node) error { return d.sources(c, k, v) },
		"nats": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{
				"url":       d.str(&c.NATS.URL),
				"creds":     d.str(&c.NATS.Creds),
				"max_bytes": d.size(&c.NATS.MaxBytes),
			})
		},
		"s3": func(k string, v *yaml.Node) error { return d.s3(c, k, v) },
		"encryption": func(k string, v *yaml.Node) error {
			if isNull(v) {
				return nil // an emptied section means "not used", like an absent one
			}
			c.Encryption = &Encryption{}
			return d.mapping(k, v, fields{
				"recipients":    d.strList(&c.Encryption.Recipients),
				"identity_file": d.str(&c.Encryption.IdentityFile),
			})
		},
		"git": func(k string, v *yaml.Node) error {
			if isNull(v) {
				return nil
			}
			c.Git = &Git{Interval: DefaultGitInterval}
			return d.mapping(k, v, fields{
				"repo":     d.str(&c.Git.Repo),
				"remote":   d.str(&c.Git.Remote),
				"interval": d.duration(&c.Git.Interval),
				"encrypt":  d.boolean(&c.Git.Encrypt),
			})
		},
		"serve_s3": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{
				"access_key_id":     d.str(&c.ServeS3.AccessKeyID),
				"secret_access_key": d.str(&c.ServeS3.SecretAccessKey),
			})
		},
		"web": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{
				"username": d.str(&c.Web.Username),
				"password": d.str(&c.Web.Password),
				"listen":   d.str(&c.Web.Listen),
			})
		},
		"http": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{"listen": d.str(&c.HTTP.Listen)})
		},
		"secrets": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{"action": d.str(&c.Secrets.Action)})
		},
		"drill": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{
				"interval": d.duration(&c.Drill.Interval),
				"enabled":  d.boolean(&c.Drill.Enabled),
			})
		},
		"retention": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{
				"keep_all":   d.span(&c.Retention.KeepAll),
				"hourly":     d.span(&c.Retention.Hourly),
				"daily":      d.span(&c.Retention.Daily),
				"blob_grace": d.span(&c.Retention.BlobGrace),
			})
		},
		"journal": func(k string, v *yaml.Node) error {
			return d.mapping(k, v, fields{
				"max_bytes":     d.size(&c.Journal.MaxBytes),
				"sync_interval": d.duration(&c.Journal.SyncInterval),
			})
		},
	})
}

// sources decodes the list of sources.
func (d *decoder) sources(c *Config, key string, n *yaml.Node) error {
	items, err := d.seq(key, n, "a list of sources (- name: …)")
	if err != nil {
		return err
	}
	for i, item := range items {
		s := Source{Kind: KindAuto}
		err := d.mapping(fmt.Sprintf("%s[%d]", key, i), item, fields{
			"name":    d.str(&s.Name),
			"path":    d.str(&s.Path),
			"include": d.strList(&s.Include),
			"exclude": d.strList(&s.Exclude),
			"kind":    d.str(&s.Kind),
		})
		if err != nil {
			return err
		}
		c.Sources = append(c.Sources, s)
	}
	return nil
}

// s3 decodes either one target mapping or a list of them; a null value is
// treated like an absent section so commenting out every key falls back to
// the embedded default.
func (d *decoder) s3(c *Config, key string, n *yaml.Node) error {
	n = resolve(n)
	d.lines[key] = n.Line
	target := func(k string, item *yaml.Node, name string) error {
		t := S3Target{Name: name, Region: DefaultRegion, FlushInterval: DefaultFlushInterval, BatchBytes: DefaultBatchBytes, ManifestInterval: DefaultManifestInterval}
		budget, budgetSet := cost.Default(), false
		err := d.mapping(k, item, fields{
			"budget": func(k string, v *yaml.Node) error {
				budgetSet = true
				return d.budget(&budget)(k, v)
			},
			"name":              d.str(&t.Name),
			"url":               d.str(&t.URL),
			"endpoint":          d.str(&t.Endpoint),
			"region":            d.str(&t.Region),
			"access_key_id":     d.str(&t.AccessKeyID),
			"secret_access_key": d.str(&t.SecretAccessKey),
			"flush_interval":    d.duration(&t.FlushInterval),
			"batch_bytes":       d.size(&t.BatchBytes),
			"manifest_interval": d.duration(&t.ManifestInterval),
		})
		// A folder costs no requests: only an S3 target gets the default budget.
		if budgetSet || strings.HasPrefix(t.URL, "s3://") {
			t.Budget = budget
		}
		c.S3 = append(c.S3, t)
		return err
	}
	switch {
	case isNull(n):
		return nil
	case n.Kind == yaml.MappingNode:
		return target(key, n, "default")
	case n.Kind == yaml.SequenceNode:
		d.s3List = true
		if len(n.Content) == 0 {
			return d.errAt(key, "is an empty list; give at least one target, or omit s3 for the embedded local store")
		}
		for i, item := range n.Content {
			if err := target(fmt.Sprintf("%s[%d]", key, i), item, ""); err != nil {
				return err
			}
		}
		return nil
	default:
		return d.errAt(key, "must be a mapping (url: …) or a list of them, not %s", kindName(n))
	}
}

// budget decodes a request budget: requests_per_month, monthly_usd and pricing (a preset
// name or explicit prices). Keys left out keep the default's values.
func (d *decoder) budget(dst *cost.Budget) fieldFunc {
	return func(key string, n *yaml.Node) error {
		if isNull(resolve(n)) {
			return nil
		}
		return d.mapping(key, n, fields{
			"requests_per_month": func(k string, v *yaml.Node) error {
				var f float64
				if err := d.number(&f)(k, v); err != nil {
					return err
				}
				if f != float64(int64(f)) {
					return d.errAt(k, "must be a whole number")
				}
				dst.RequestsPerMonth = int64(f)
				return nil
			},
			"monthly_usd": d.number(&dst.MonthlyUSD),
			"pricing": func(k string, v *yaml.Node) error {
				if r := resolve(v); r.Kind == yaml.ScalarNode {
					s, _, err := d.scalar(k, r)
					if err != nil || s == "" {
						return err
					}
					p, ok := cost.Preset(strings.ToLower(s))
					if !ok {
						return d.errAt(k, "unknown pricing %q: use one of %s, or put_per_1000/get_per_1000/gb_month", s, strings.Join(cost.Presets(), ", "))
					}
					dst.Pricing = p
					return nil
				}
				p := cost.Pricing{Name: "custom"}
				err := d.mapping(k, v, fields{
					"put_per_1000": d.number(&p.PutPer1000),
					"get_per_1000": d.number(&p.GetPer1000),
					"gb_month":     d.number(&p.GBMonth),
				})
				dst.Pricing = p
				return err
			},
		})
	}
}

// number decodes a number that is not negative.
func (d *decoder) number(dst *float64) fieldFunc {
	return func(key string, n *yaml.Node) error {
		s, _, err := d.scalar(key, n)
		if err != nil || s == "" {
			return err
		}
		v, perr := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return d.errAt(key, "%q is not a number", s)
		}
		if v < 0 {
			return d.errAt(key, "must not be negative, not %q", s)
		}
		*dst = v
		return nil
	}
}

// mapping walks a mapping node, refusing unknown and repeated keys, and
// calls the decoder of each known key in file order.
func (d *decoder) mapping(key string, n *yaml.Node, fs fields) error {
	n = resolve(n)
	if key != "" {
		d.lines[key] = n.Line
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if key == "" {
			return d.lineErr(n.Line, "the file must hold key: value pairs (host:, sources:, …), not %s", kindName(n))
		}
		return d.errAt(key, "must be a mapping (key: value pairs), not %s", kindName(n))
	}
	entries, err := d.entries(key, n)
	if err != nil {
		return err
	}
	for _, e := range entries {
		child := join(key, e.k.Value)
		fn, ok := fs[e.k.Value]
		if !ok {
			return d.lineErr(e.k.Line, "unknown key %q%s", child, suggest(e.k.Value, fs))
		}
		if err := fn(child, e.v); err != nil {
			return err
		}
	}
	return nil
}

// entry is one key and its value.
type entry struct{ k, v *yaml.Node }

// entries lists the pairs of a mapping, applying YAML merge keys ("<<:
// *defaults") so anchors can share settings between targets. Keys written in
// the mapping override merged ones; among merged mappings the first wins.
func (d *decoder) entries(key string, n *yaml.Node) ([]entry, error) {
	var own, merged []entry
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			src := resolve(v)
			list := []*yaml.Node{src}
			if src.Kind == yaml.SequenceNode {
				list = src.Content
			}
			for _, m := range list {
				m = resolve(m)
				if m.Kind != yaml.MappingNode {
					return nil, d.lineErr(k.Line, "the merge key << of %s needs a mapping or a list of mappings", orRoot(key))
				}
				sub, err := d.entries(key, m)
				if err != nil {
					return nil, err
				}
				merged = append(merged, sub...)
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return nil, d.lineErr(k.Line, "a key of %s is %s; keys must be plain words", orRoot(key), kindName(k))
		}
		if prev, dup := seen[k.Value]; dup {
			return nil, d.lineErr(k.Line, "key %q is repeated (first at line %d)", join(key, k.Value), prev)
		}
		seen[k.Value] = k.Line
		own = append(own, entry{k, v})
	}
	for _, e := range merged {
		if _, dup := seen[e.k.Value]; !dup {
			seen[e.k.Value] = e.k.Line
			own = append(own, e)
		}
	}
	return own, nil
}

// seq returns the items of a list; null means no items.
func (d *decoder) seq(key string, n *yaml.Node, want string) ([]*yaml.Node, error) {
	n = resolve(n)
	d.lines[key] = n.Line
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, d.errAt(key, "must be %s, not %s", want, kindName(n))
	}
	return n.Content, nil
}

// scalar returns the expanded text of a single value. ok is false for a null
// value. Placeholders are refused both as written and after expansion, since
// either way the real value was never filled in.
func (d *decoder) scalar(key string, n *yaml.Node) (s string, ok bool, err error) {
	n = resolve(n)
	d.lines[key] = n.Line
	if isNull(n) {
		return "", false, nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", false, d.errAt(key, "must be a single value, not %s", kindName(n))
	}
	if p := placeholder(n.Value); p != "" {
		return "", false, d.errAt(key, "still holds the placeholder %s; put the real value in", p)
	}
	s = expand(n.Value)
	if p := placeholder(s); p != "" {
		return "", false, d.errAt(key, "still holds the placeholder %s (from the environment); put the real value in", p)
	}
	return s, true, nil
}

// str decodes a string. An empty value leaves the default in place, so a
// ${VAR} that expands to nothing behaves like an omitted key.
func (d *decoder) str(dst *string) fieldFunc {
	return func(key string, n *yaml.Node) error {
		s, _, err := d.scalar(key, n)
		if err == nil && s != "" {
			*dst = s
		}
		return err
	}
}

// strList decodes a list of strings; a single value is taken as a list of
// one, since `include: "**/*.jsonl"` has an obvious meaning.
func (d *decoder) strList(dst *[]string) fieldFunc {
	return func(key string, n *yaml.Node) error {
		if r := resolve(n); r.Kind == yaml.ScalarNode && !isNull(r) {
			s, _, err := d.scalar(key, r)
			if err == nil {
				*dst = []string{s}
			}
			return err
		}
		items, err := d.seq(key, n, "a list of values")
		if err != nil {
			return err
		}
		for i, item := range items {
			k := fmt.Sprintf("%s[%d]", key, i)
			s, _, err := d.scalar(k, item)
			if err != nil {
				return err
			}
			if s == "" {
				return d.errAt(k, "is empty")
			}
			*dst = append(*dst, s)
		}
		return nil
	}
}

// duration decodes a positive Go duration.
func (d *decoder) duration(dst *time.Duration) fieldFunc {
	return func(key string, n *yaml.Node) error {
		s, _, err := d.scalar(key, n)
		if err != nil || s == "" {
			return err
		}
		v, perr := time.ParseDuration(s)
		if perr != nil {
			return d.errAt(key, "%q is not a Go duration (e.g. 1s, 500ms)", s)
		}
		if v <= 0 {
			return d.errAt(key, "must be positive, not %q", s)
		}
		*dst = v
		return nil
	}
}

// span decodes a retention length: a Go duration or a whole number of days ("7d"),
// zero allowed (that window is not kept).
func (d *decoder) span(dst *time.Duration) fieldFunc {
	return func(key string, n *yaml.Node) error {
		s, _, err := d.scalar(key, n)
		if err != nil || s == "" {
			return err
		}
		var v time.Duration
		var perr error
		if days, ok := strings.CutSuffix(s, "d"); ok {
			var k int64
			k, perr = strconv.ParseInt(days, 10, 32)
			v = time.Duration(k) * 24 * time.Hour
		} else {
			v, perr = time.ParseDuration(s)
		}
		if perr != nil {
			return d.errAt(key, "%q is not a duration (e.g. 36h, 7d)", s)
		}
		if v < 0 {
			return d.errAt(key, "must not be negative, not %q", s)
		}
		*dst = v
		return nil
	}
}

// size decodes a positive byte count.
func (d *decoder) size(dst *int64) fieldFunc {
	return func(key string, n *yaml.Node) error {
		s, _, err := d.scalar(key, n)
		if err != nil || s == "" {
			return err
		}
		v, ok := parseSize(s)
		if !ok {
			return d.errAt(key, "%q is not a size in bytes (e.g. 1073741824, 512MiB, 10GiB)", s)
		}
		if v <= 0 {
			return d.errAt(key, "must be positive, not %q", s)
		}
		*dst = v
		return nil
	}
}

// boolean decodes true/false and the yes/no/on/off spellings YAML 1.1 users
// still write.
func (d *decoder) boolean(dst *bool) fieldFunc {
	return func(key string, n *yaml.Node) error {
		s, _, err := d.scalar(key, n)
		if err != nil || s == "" {
			return err
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on", "1":
			*dst = true
		case "false", "no", "off", "0":
			*dst = false
		default:
			return d.errAt(key, "%q is not true or false", s)
		}
		return nil
	}
}

// sizeUnits maps suffixes to multipliers: the IEC ones and single letters are
// powers of 1024, the SI ones powers of 1000, as operators of storage expect.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseSize reads a plain integer or a number with a unit such as "512MiB"
// or "1.5 GB", because raw byte counts for gigabytes are error-prone to type.
func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, false
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// expand replaces ${NAME} with the environment variable's value; an unset
// variable becomes empty, which then means "use the default".
func expand(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return envRE.ReplaceAllStringFunc(s, func(m string) string {
		return os.Getenv(m[2 : len(m)-1])
	})
}

// placeholder returns the first <<REPLACE_WITH_…>> marker in s, or "".
func placeholder(s string) string {
	i := strings.Index(s, placeholderMark)
	if i < 0 {
		return ""
	}
	p := s[i:]
	if j := strings.Index(p, ">>"); j >= 0 {
		p = p[:j+2]
	}
	if len(p) > 80 {
		p = p[:80] + "…"
	}
	return p
}

// suggest names the closest known key, or lists them all when none is
// close, so the operator sees the right spelling in the same line.
func suggest(key string, fs fields) string {
	known := make([]string, 0, len(fs))
	for k := range fs {
		known = append(known, k)
	}
	sort.Strings(known)
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (known keys: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance, enough to catch typos in keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlError rewrites a parser error into our one-line shape.
func (d *decoder) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserProblem(m[2]) {
			line++
		}
		msg = "invalid YAML at line " + strconv.Itoa(line) + ": " + m[2]
	} else {
		msg = "invalid YAML: " + msg
	}
	return &Error{File: d.file, Msg: msg, Err: err}
}

// parserProblems are the messages of the YAML parser stage (as opposed to
// the scanner). For those the library reports a 0-based line, pointing one
// line above the block that failed; recognising them is how we correct it.
var parserProblems = []string{
	"did not find expected <",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ','",
	"found undefined tag handle",
	"found duplicate %",
	"found incompatible YAML document",
}

// parserProblem reports whether msg comes from the parser stage.
func parserProblem(msg string) bool {
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// errAt reports a problem with the value at key, with the line of the
// nearest key path that was seen in the file.
func (d *decoder) errAt(key, format string, args ...any) error {
	return &Error{File: d.file, Key: key, Line: lineOf(d.lines, key), Msg: fmt.Sprintf(format, args...)}
}

// lineErr reports a problem that is about a place in the file rather than a
// value, such as an unknown key.
func (d *decoder) lineErr(line int, format string, args ...any) error {
	return &Error{File: d.file, Msg: fmt.Sprintf("line %d: ", line) + fmt.Sprintf(format, args...)}
}

// lineOf finds the line of key, or of its closest parent, because a missing
// key has no line of its own but its mapping does.
func lineOf(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports an empty value ("key:", "key: ~", "key: null").
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName words a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// join builds a dotted key path.
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// orRoot names the top level in messages, where the key path is empty.
func orRoot(key string) string {
	if key == "" {
		return "the top level"
	}
	return strconv.Quote(key)
}
