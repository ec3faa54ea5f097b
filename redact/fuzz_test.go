package redact

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// FuzzRedact checks the invariants of checkInvariants on any input (same length, only
// '*' written and only inside hits, never a quote, backslash or control byte, nothing
// found on a second pass), and that valid JSON, as a whole and line by line, stays
// valid. The seed corpus in testdata/fuzz/FuzzRedact holds transcript lines with
// secrets at several JSON nesting depths; the samples and near misses of the unit tests
// are added too.
func FuzzRedact(f *testing.F) {
	for _, c := range samples() {
		f.Add([]byte(c.text))
	}
	for _, n := range negatives() {
		f.Add([]byte(n))
	}
	s := New()
	f.Fuzz(func(t *testing.T, data []byte) {
		out, hits := checkInvariants(t, s, data)
		if hits == nil {
			return
		}
		if json.Valid(data) && !json.Valid(out) {
			t.Fatalf("valid JSON became invalid:\n%q\n%q", data, out)
		}
		// JSONL records are objects; a line of a PEM body such as "0" may be valid JSON
		// by chance, and is masked without regard to that.
		ol := bytes.SplitAfter(out, []byte("\n"))
		for i, l := range bytes.SplitAfter(data, []byte("\n")) {
			if r := bytes.TrimSpace(l); len(r) > 0 && r[0] == '{' && json.Valid(l) && !json.Valid(ol[i]) {
				t.Fatalf("valid JSON line became invalid:\n%q\n%q", l, ol[i])
			}
		}
	})
}

// TestMixtures runs the invariants over random mixtures of the pieces secrets and their
// surroundings are made of: prefixes, keywords, separators, quotes at several escape
// depths, masked text, near misses. Plain fuzzing seldom builds such pieces; this finds
// the interactions of rules (a mask next to a name, inside a value, across quotes).
func TestMixtures(t *testing.T) {
	var pieces []string
	for _, c := range samples() {
		pieces = append(pieces, c.text, c.secret)
		if len(c.secret) > 12 {
			pieces = append(pieces, c.secret[:len(c.secret)/2], c.secret[len(c.secret)/2:])
		}
	}
	pieces = append(pieces, negatives()[:20]...)
	pieces = append(pieces,
		"password", "PASSWORD", "passwd", "secret", "token", "api_key", "X-API-Key", "aws_", "next_", "Bearer ", "bot",
		"=", ":", ": ", " = ", "=>", ":=", "==", "--", "&", "?", "@", "://", "/", ".", ",", ";", "(", ")", "{", "}", "<", ">", "$",
		`"`, `\"`, `\\\"`, `'`, `\'`, `\`, `\\`, `\n`, `\\n`, "\n", `\u00e9`, `\u003e`, " ", "\t",
		"*", "***", "********", "abc", "hunter2hunter2", "12345678", "AA", "eyJ", "MT", "xoxb-", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
		"sk-", "sk-ant-", "ghp_", "AKIA", "AIza", "hf_", "gsk_", "xai-", "sk_live_", "github_pat_", "db://u:",
		fake("mix1", 40, b64url), fake("mix2", 16, base32), fake("mix3", 35, b64url), fake("mix4", 64, b64std),
	)
	r := rand.New(rand.NewPCG(5, 6))
	s := New()
	n := 30000
	if testing.Short() {
		n = 3000
	}
	for range n {
		var b []byte
		for range 1 + r.IntN(12) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		checkInvariants(t, s, b)
		if json.Valid(b) {
			if out, _ := s.Redact(b); !json.Valid(out) {
				t.Fatalf("valid JSON became invalid:\n%q\n%q", b, out)
			}
		}
		// The same as a JSON string, once and twice encoded.
		j1, _ := json.Marshal(string(b))
		j2, _ := json.Marshal(string(j1))
		for _, j := range [][]byte{j1, j2} {
			out, _ := checkInvariants(t, s, j)
			if !json.Valid(out) {
				t.Fatalf("JSON string became invalid:\n%s\n%s", j, out)
			}
		}
	}
}
