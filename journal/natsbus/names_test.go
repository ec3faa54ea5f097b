package natsbus

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// untoken inverts Token, proving that Token loses nothing.
func untoken(t string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '_' {
			b.WriteByte(t[i])
			continue
		}
		if i+2 >= len(t) {
			return "", false
		}
		v, err := strconv.ParseUint(t[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

var natsSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestNamesTellHostsApart(t *testing.T) {
	hosts := []string{"a.b", "a_b", "a-b", "ab", "a b", "a*b", "a>b", "a_2eb", "é", "web-01"}
	seen := map[string]string{}
	for _, h := range hosts {
		for _, name := range []string{StreamName(h), Subject(h), ResendSubject(h), StoredSubject(h), ConsumerName(h, "s3-x")} {
			if other, ok := seen[name]; ok {
				t.Errorf("hosts %q and %q share the name %q", other, h, name)
			}
			seen[name] = h
		}
		if tok := Token(h); !natsSafe.MatchString(tok) {
			t.Errorf("Token(%q) = %q holds characters NATS names must not", h, tok)
		}
	}
	// Names of letters, digits and '-' keep the stream they had.
	for _, h := range []string{"web-01", "Host7"} {
		if StreamName(h) != LegacyStreamName(h) {
			t.Errorf("StreamName(%q) = %q changed from %q", h, StreamName(h), LegacyStreamName(h))
		}
	}
	if got := StreamName("a.b"); got != "MMR_a_2eb" {
		t.Errorf(`StreamName("a.b") = %q, want MMR_a_2eb`, got)
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"a.b", "a_b", "", "x_2e", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		tok := Token(host)
		back, ok := untoken(tok)
		if !ok || back != host {
			t.Fatalf("Token(%q) = %q does not decode back (got %q)", host, tok, back)
		}
		if host != "" && !natsSafe.MatchString(tok) {
			t.Fatalf("Token(%q) = %q is not NATS-safe", host, tok)
		}
	})
}
