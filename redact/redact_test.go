package redact

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// checkInvariants asserts what every Redact result must satisfy, whatever the input:
// same length, nothing but '*' written, nothing written outside the hits, no copy when
// clean, hits sorted and in bounds, and a second pass finding nothing.
func checkInvariants(t testing.TB, s *Scanner, in []byte) ([]byte, []Hit) {
	t.Helper()
	orig := bytes.Clone(in)
	out, hits := s.Redact(in)
	if !bytes.Equal(in, orig) {
		t.Fatalf("Redact modified its input")
	}
	if len(out) != len(in) {
		t.Fatalf("output length %d, input length %d", len(out), len(in))
	}
	if hits == nil {
		if len(in) > 0 && &out[0] != &in[0] {
			t.Fatalf("no hits but the data was copied")
		}
		return out, nil
	}
	if len(hits) == 0 {
		t.Fatalf("empty non-nil hits")
	}
	covered := make([]bool, len(in))
	for i, h := range hits {
		if h.Offset < 0 || h.Length <= 0 || h.Offset+h.Length > len(in) {
			t.Fatalf("hit %+v out of bounds (len %d)", h, len(in))
		}
		if i > 0 && h.Offset < hits[i-1].Offset {
			t.Fatalf("hits not sorted: %+v", hits)
		}
		if !slices.Contains(ruleNames[:], h.Rule) {
			t.Fatalf("unknown rule %q", h.Rule)
		}
		for j := h.Offset; j < h.Offset+h.Length; j++ {
			covered[j] = true
		}
	}
	changed := false
	for j := range in {
		if out[j] == in[j] {
			continue
		}
		changed = true
		if out[j] != '*' {
			t.Fatalf("byte %d became %q, not '*'", j, out[j])
		}
		if !covered[j] {
			t.Fatalf("byte %d masked outside every hit %+v", j, hits)
		}
		if in[j] == '"' || in[j] == '\\' || in[j] < ' ' {
			t.Fatalf("byte %d (%q) masked", j, in[j])
		}
	}
	if !changed {
		t.Fatalf("hits %+v but nothing masked", hits)
	}
	if again, more := s.Redact(out); more != nil {
		t.Fatalf("second pass found %+v in %q\nfirst pass %+v from %q", more, again, hits, in)
	}
	return out, hits
}

func TestRules(t *testing.T) {
	s := New()
	seen := map[string]bool{}
	for _, c := range samples() {
		t.Run(c.name, func(t *testing.T) {
			in := []byte(c.text)
			off := strings.Index(c.text, c.secret)
			if off < 0 {
				t.Fatalf("bad sample: secret not in text")
			}
			out, hits := checkInvariants(t, s, in)
			var hit *Hit
			for i := range hits {
				if hits[i].Rule == c.rule {
					hit = &hits[i]
				}
			}
			if hit == nil {
				t.Fatalf("no %s hit in %q; hits %+v", c.rule, c.text, hits)
			}
			if hit.Offset != off || hit.Length != len(c.secret) {
				t.Errorf("hit spans %q, want %q", c.text[hit.Offset:hit.Offset+hit.Length], c.secret)
			}
			// Of the secret at most a short prefix and separators stay readable.
			kept := 0
			for j := off; j < off+len(c.secret); j++ {
				if out[j] != '*' && strings.IndexByte(".\n\r\\", out[j]) < 0 && !(out[j] == 'n' && out[j-1] == '\\') {
					kept++
				}
			}
			if limit := min(16, len(c.secret)/4); kept > limit {
				t.Errorf("%d bytes of the secret left readable: %q", kept, out[off:off+len(c.secret)])
			}
			if len(hits) != 1 {
				t.Errorf("one secret reported %d times: %+v", len(hits), hits)
			}
			seen[c.rule] = true
		})
	}
	for _, r := range Rules() {
		if !seen[r] {
			t.Errorf("rule %s has no positive sample", r)
		}
	}
}

func TestKeptPrefixes(t *testing.T) {
	s := New()
	for _, c := range []struct{ in, want string }{
		{"k=sk-ant-api03-" + fake("p1", 40, alnum), "k=sk-ant-" + strings.Repeat("*", 46)},
		{"k=sk-proj-" + fake("p2", 40, alnum), "k=sk-proj-" + strings.Repeat("*", 40)},
		{"AKIA" + fake("p3", 16, base32) + " ", "AKIA" + strings.Repeat("*", 16) + " "},
		{"password=hunter2hunter2\n", "password=**************\n"},
		{`"password": "pa\"ss\\word"`, `"password": "**\"**\\****"`},
		{`{"passphrase":"caf\u00e9 au lait"}`, `{"passphrase":"***\u00e9********"}`},
	} {
		out, _ := s.Redact([]byte(c.in))
		if string(out) != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, out, c.want)
		}
	}
}

func TestNegatives(t *testing.T) {
	s := New()
	for _, text := range negatives() {
		in := []byte(text)
		out, hits := s.Redact(in)
		if hits != nil {
			for _, h := range hits {
				t.Errorf("false positive %s: %q in %.120q", h.Rule, text[h.Offset:h.Offset+h.Length], text)
			}
			continue
		}
		if len(in) > 0 && &out[0] != &in[0] {
			t.Errorf("clean data copied")
		}
	}
}

// TestJSONL checks that transcript lines holding secrets stay valid JSON, whether the
// secret sits in a string once, in JSON inside a string, or in a tool's command.
func TestJSONL(t *testing.T) {
	s := New()
	for _, c := range samples() {
		type content struct {
			Type  string         `json:"type"`
			Text  string         `json:"text,omitempty"`
			Input map[string]any `json:"input,omitempty"`
		}
		type line struct {
			Type    string    `json:"type"`
			UUID    string    `json:"uuid"`
			Content []content `json:"content"`
		}
		inner, _ := json.Marshal(map[string]string{"file": "config.json", "body": c.text})
		lines := []line{
			{Type: "user", UUID: "550e8400-e29b-41d4-a716-446655440000", Content: []content{{Type: "text", Text: c.text}}},
			{Type: "assistant", Content: []content{{Type: "tool_use", Input: map[string]any{"command": "cat <<EOF\n" + c.text + "\nEOF"}}}},
			{Type: "user", Content: []content{{Type: "tool_result", Text: string(inner)}}},
		}
		for i, l := range lines {
			in, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			out, hits := checkInvariants(t, s, in)
			if len(hits) == 0 {
				t.Errorf("%s, line %d: no hit in %s", c.name, i, in)
				continue
			}
			if !json.Valid(out) {
				t.Errorf("%s, line %d: invalid JSON after redaction:\n%s\n%s", c.name, i, in, out)
			}
			// Decoding shows the secret gone at whatever depth it was.
			var back line
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			if dec, _ := json.Marshal(back); bytes.Contains(dec, []byte(jsonEscape(c.secret))) {
				t.Errorf("%s, line %d: secret survives: %s", c.name, i, out)
			}
		}
	}
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func TestCleanTranscript(t *testing.T) {
	s := New()
	data := transcript(2<<20, 0)
	out, hits := s.Redact(data)
	for i, h := range hits {
		if i == 10 {
			break
		}
		t.Errorf("false positive %s: %q", h.Rule, context(data, h))
	}
	if hits == nil && &out[0] != &data[0] {
		t.Errorf("clean data copied")
	}
}

func TestDirtyTranscript(t *testing.T) {
	s := New()
	data := transcript(1<<20, 10<<10)
	out, hits := checkInvariants(t, s, data)
	planted := bytes.Count(data, []byte(`"note":"planted"`))
	if len(hits) < planted {
		t.Errorf("%d hits for %d planted secrets", len(hits), planted)
	}
	for l := range bytes.Lines(out) {
		if !json.Valid(l) {
			t.Fatalf("invalid JSON line after redaction: %s", l)
		}
	}
}

func context(d []byte, h Hit) string {
	return string(d[max(0, h.Offset-40):min(len(d), h.Offset+h.Length+20)])
}

// TestOffsetsStable is the reason masks keep the length: a file redacted as a whole and
// redacted in appended pieces gives the same bytes, so an offset into the replicated
// copy is an offset into the original.
func TestOffsetsStable(t *testing.T) {
	s := New()
	data := transcript(256<<10, 4<<10)
	whole, _ := s.Redact(data)
	var pieces []byte
	rest := data
	for len(rest) > 0 {
		// Append at line boundaries, as a transcript grows.
		n := bytes.IndexByte(rest[min(len(rest)-1, 7000):], '\n')
		if n < 0 {
			n = len(rest)
		} else {
			n += min(len(rest)-1, 7000) + 1
		}
		out, _ := s.Redact(rest[:n])
		pieces = append(pieces, out...)
		rest = rest[n:]
	}
	if !bytes.Equal(whole, pieces) {
		t.Fatalf("redacting in pieces differs from redacting the whole")
	}
}

func TestZeroScanner(t *testing.T) {
	var s Scanner
	in := []byte("password=hunter2hunter2")
	if _, hits := s.Redact(in); len(hits) != 1 {
		t.Fatalf("zero Scanner: hits %+v", hits)
	}
}

func TestRulesList(t *testing.T) {
	r := Rules()
	if len(r) != int(numRules) || r[0] != "anthropic-api-key" {
		t.Fatalf("Rules() = %v", r)
	}
	r[0] = "changed"
	if Rules()[0] != "anthropic-api-key" {
		t.Fatalf("Rules returned the package's own slice")
	}
}

func TestTemplate(t *testing.T) {
	s := New()
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"api_key: <<REPLACE_WITH_API_KEY>>\n", true},
		{`{"token": "<<REPLACE_WITH_BOT_TOKEN>>"}`, true},
		{"a: 1\nb: <<REPLACE_WITH_x_2>>", true},
		{"<<<<REPLACE_WITH_A>>", true},
		{"", false},
		{"api_key: sk-real-looking\n", false},
		{"placeholders look like <<REPLACE_WITH_…>> in templates", false},
		{"<<REPLACE_WITH_>>", false},
		{"<<REPLACE_WITH_NAME>", false},
		{"<<replace_with_name>>", false},
		{"<<REPLACE_WITH_A B>>", false},
		{"<<REPLACE_WITH_", false},
	} {
		if got := s.Template([]byte(c.in)); got != c.want {
			t.Errorf("Template(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
