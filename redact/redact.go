// Package redact keeps secrets out of what the daemon replicates: it finds API keys of
// the common model providers and code hosts, cloud, chat-bot and payment tokens, private
// keys, bearer tokens and password-style assignments, and masks them in place.
//
// Two properties let a caller redact a file that is later appended to, and redact one
// JSONL line at a time:
//
//   - A mask has exactly the length of what it replaces, so every later byte keeps its
//     offset: offsets into an append-only file stay valid after redaction.
//   - A mask writes only '*', and never over a double quote, a backslash, the character
//     an escaping backslash applies to or a control character, so a valid JSON line
//     stays valid JSON (secrets in session transcripts sit inside JSON strings, often
//     escaped once or twice).
//
// Redaction sits on the ingest path, so clean data must cost next to nothing. Every rule
// is anchored on a triple of adjacent bytes that its format fixes (such as "sk-", "AIz",
// "ssw" in "password"), and one pass over the data runs a shift-and automaton over the
// triples of all rules at once: a table load, a shift, an OR and an AND per byte. Only
// at the rare triples that anchor some rule does a rule look further, with plain byte
// comparisons rather than regular expressions. Data without a hit is returned as is.
package redact

import (
	"bytes"
	"slices"
)

// Hit is one secret found by Redact.
type Hit struct {
	// Rule names the format that matched, e.g. "anthropic-api-key" (see Rules).
	Rule string
	// Offset is the position of the secret's first byte in the input.
	Offset int
	// Length is the secret's length in bytes. The mask covers all of it except, for
	// some rules, a short recognisable prefix (such as "sk-ant-") and the separators of
	// dotted tokens, which are left readable.
	Length int
}

// Scanner finds and masks secrets. Its rules are built in and their tables computed
// once per process; a Scanner is safe for concurrent use, and the zero Scanner is as
// good as New().
type Scanner struct{}

// New returns a Scanner with the built-in rules.
func New() *Scanner {
	return &Scanner{}
}

// Rules lists the names that Hit.Rule takes, in priority order: when two rules match
// the same bytes only the first is reported. Callers use it to pre-declare metric labels.
func Rules() []string {
	return slices.Clone(ruleNames[:])
}

// Redact returns data with every secret masked, and the hits in order of offset. The
// result has the same length as data and differs from it only where bytes became '*'.
// Without a hit it returns data itself (not a copy) and nil; otherwise data is left
// unchanged and the result is a new slice. Redacting the result again finds nothing.
//
// Rules see only data: a secret split between two calls is not found, so a caller
// passes whole lines (of JSONL) or whole files, not arbitrary chunks; a stream of any
// length goes through NewReader, and data appended to scanned data through RedactTail.
func (s *Scanner) Redact(data []byte) ([]byte, []Hit) {
	ms := s.find(data, nil)
	if len(ms) == 0 {
		return data, nil
	}
	out := bytes.Clone(data)
	for _, m := range ms {
		mask(out, m.off+m.keep, m.end, m.mode)
	}
	return out, report(ms)
}

// templateOpen starts a placeholder of a config template, as in
// "api_key: <<REPLACE_WITH_API_KEY>>".
var templateOpen = []byte("<<REPLACE_WITH_")

// Template reports whether data holds a config-template placeholder of the form
// <<REPLACE_WITH_NAME>> (NAME being letters, digits and underscores), so that a file
// that is still a template, or a filled-in copy that kept some of them, can be withheld
// or flagged. The text "<<REPLACE_WITH_" alone, as in prose about the convention, does
// not count.
func (s *Scanner) Template(data []byte) bool {
	for {
		i := bytes.Index(data, templateOpen)
		if i < 0 {
			return false
		}
		j := i + len(templateOpen)
		k := j
		for k < len(data) && (isAlnum(data[k]) || data[k] == '_') {
			k++
		}
		if k > j && bytes.HasPrefix(data[k:], []byte(">>")) {
			return true
		}
		data = data[i+1:]
	}
}

// find appends to ms a match for every rule that fires in d.
//
// This loop is the whole cost of clean data. It is a shift-and automaton: a state word
// holds three fields of one bit per anchor, set when the last byte can start that
// anchor, when the last two bytes can start it, and when the last three bytes are one
// of its triples. Each byte shifts the fields up one place, sets every bit of the first
// field, and ANDs in the byte's row of anchorTab, whose fields hold the anchors its
// byte can be the first, second and third byte of. The rare non-zero third field
// (under 1% of bytes) sends the position to check.
//
// A step depends on the one before (shift, OR, AND: three cycles), which would leave
// most of a core idle, so two automata run interleaved over the two halves of the data.
// The second starts two bytes before the middle: it finds every triple that ends in
// its half, and the first every triple that ends in the first half.
func (s *Scanner) find(d []byte, ms []match) []match {
	// A line break is assumed before the data, so that a token that needs a boundary
	// before it is found at offset 0 too.
	sa := anchorTab['\n'] & field0
	if len(d) < 64 {
		return run(d, 0, sa, ms)
	}
	t := &anchorTab
	mid := len(d) / 2
	a, b := d[:mid], d[mid-2:2*mid-2]
	var sb uint64
	for i, c := range a {
		sa = (sa<<field | field0) & t[c]
		sb = (sb<<field | field0) & t[b[i]]
		if (sa|sb)&field2 != 0 {
			if sa&field2 != 0 {
				ms = check(d, i-2, uint32(sa>>(2*field)), ms)
			}
			if sb&field2 != 0 {
				ms = check(d, mid-2+i-2, uint32(sb>>(2*field)), ms)
			}
		}
	}
	return run(d, 2*mid-2, sb, ms)
}

// run continues one automaton of find over d[i:], in state st.
func run(d []byte, i int, st uint64, ms []match) []match {
	for ; i < len(d); i++ {
		if st = (st<<field | field0) & anchorTab[d[i]]; st&field2 != 0 {
			ms = check(d, i-2, uint32(st>>(2*field)), ms)
		}
	}
	return ms
}

// report turns matches into hits sorted by offset. A match lying wholly inside an
// earlier-reported one (the same key found by a format rule and as the value of a
// "token=" assignment, say) is not reported again, so each secret is counted once;
// for equal spans the rule earlier in Rules wins.
func report(ms []match) []Hit {
	slices.SortFunc(ms, func(a, b match) int {
		if a.off != b.off {
			return a.off - b.off
		}
		if a.end != b.end {
			return b.end - a.end
		}
		return int(a.rule) - int(b.rule)
	})
	hits := make([]Hit, 0, len(ms))
	lastEnd := -1
	for _, m := range ms {
		if m.end <= lastEnd {
			continue // inside the reported hit that reaches lastEnd, which starts no later
		}
		hits = append(hits, Hit{Rule: ruleNames[m.rule], Offset: m.off, Length: m.end - m.off})
		lastEnd = max(lastEnd, m.end)
	}
	return hits
}

// match is a rule firing: the secret spans d[off:end], of which the first keep bytes
// stay readable and the rest are masked according to mode.
type match struct {
	off, end, keep int
	rule           rule
	mode           maskMode
}

// maskMode says which bytes of a secret's span a mask overwrites. Neither mode ever
// overwrites a backslash, the run of backslashes that escapes a character, or that
// character (so "\n", "\\\"" and "\u00e9" survive at any JSON nesting depth), nor a
// control character.
type maskMode uint8

const (
	// maskToken overwrites only characters of keys and base64 ([A-Za-z0-9+/=_~-]) and
	// leaves the dots of JWTs, and the line structure and header punctuation of PEM
	// blocks, readable.
	maskToken maskMode = iota
	// maskValue overwrites every other byte too: a password may hold any character.
	maskValue
)

// maskable reports whether mode overwrites c (outside an escape sequence).
func maskable(c byte, mode maskMode) bool {
	if mode == maskValue {
		return c >= ' ' && c != 0x7f && c != '\\'
	}
	return isAlnum(c) || c == '+' || c == '/' || c == '=' || c == '_' || c == '-' || c == '~'
}

// escapeEnd returns the end of the escape sequence whose backslashes start at d[j]: the
// run of backslashes, and the character it escapes (with four hex digits after a 'u').
// An odd run escapes the next character at this level of JSON nesting; an even run is
// escaped backslashes here, but in text nested deeper it escapes the next character
// when that is one JSON escapes ("\\n" is a line break one level down), so that one is
// kept too.
func escapeEnd(d []byte, j, to int) int {
	k := j
	for k < to && d[k] == '\\' {
		k++
	}
	if k >= to {
		return to
	}
	switch c := d[k]; {
	case c == 'u' && k+5 <= to && isHex(d[k+1]) && isHex(d[k+2]) && isHex(d[k+3]) && isHex(d[k+4]):
		return k + 5
	case (k-j)%2 == 1, bytes.IndexByte([]byte(`nrtbf"/`), c) >= 0:
		return k + 1
	}
	return k
}

// mask overwrites with '*' the bytes of d[from:to] that mode masks.
func mask(d []byte, from, to int, mode maskMode) {
	for j := from; j < to; {
		c := d[j]
		if c == '\\' {
			j = escapeEnd(d, j, to)
			continue
		}
		if maskable(c, mode) {
			d[j] = '*'
		}
		j++
	}
}

// secretLen counts the bytes of d[from:to] that mask would overwrite and that are not
// '*' already. Rules measure a candidate with it, so a masked secret, counting zero,
// never matches again.
func secretLen(d []byte, from, to int, mode maskMode) int {
	n := 0
	for j := from; j < to; {
		c := d[j]
		if c == '\\' {
			j = escapeEnd(d, j, to)
			continue
		}
		if c != '*' && maskable(c, mode) {
			n++
		}
		j++
	}
	return n
}

// field is the width of a state field of find: one bit per anchor.
const field = 21

const (
	field0 = 1<<field - 1
	field2 = field0 << (2 * field)
)

// Every anchor must have its bit in a field.
var _ [field - numAnchors]struct{}

// anchorTab[b] holds, from the low field up, the anchors whose first, second and third
// byte b can be; see find.
var anchorTab = buildAnchors()

func buildAnchors() (t [256]uint64) {
	for a, def := range anchorDefs {
		for k, set := range []string{def.first, def.second, def.third} {
			for _, c := range []byte(set) {
				t[c] |= 1 << (k*field + a)
			}
		}
	}
	return t
}

// Byte-class helpers, written out rather than via a table: the compiler turns them into
// a compare or two, and they only run off the hot loop.

func isAlnum(c byte) bool { return isDigit(c) || isUpper(c) || isLower(c) }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isLetter(c byte) bool {
	return isUpper(c) || isLower(c)
}
func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// isTok reports whether c can be part of a token in the URL-safe base64 style most API
// keys use.
func isTok(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

// isB64 reports whether c belongs to standard base64.
func isB64(c byte) bool { return isAlnum(c) || c == '+' || c == '/' || c == '=' }
