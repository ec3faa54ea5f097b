package main

import (
	"io"
	"strings"
	"testing"
)

// TestParseArgs: flags and positional arguments mix in any order, and a negative
// duration is a TIME unless it is a flag's value.
func TestParseArgs(t *testing.T) {
	cases := []struct {
		args []string
		pos  string
		at   string
		json bool
	}{
		{[]string{"-2h", "latest", "--json"}, "-2h latest", "", true},
		{[]string{"--json", "-90s", "-1m", "sessions/**"}, "-90s -1m sessions/**", "", true},
		{[]string{"--at", "-90s", "a", "b"}, "a b", "-90s", false},
		{[]string{"--at=-1h", "x"}, "x", "-1h", false},
		{[]string{"a", "--", "--json"}, "a --json", "", false},
	}
	for _, c := range cases {
		f := newFlags("t", "t", io.Discard)
		at := f.String("at", "", "")
		js := f.Bool("json", false, "")
		pos, err := f.parseArgs(c.args)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if strings.Join(pos, " ") != c.pos || *at != c.at || *js != c.json {
			t.Errorf("%q: positional %q at %q json %v; want %q %q %v", c.args, pos, *at, *js, c.pos, c.at, c.json)
		}
	}
	f := newFlags("t", "t", io.Discard)
	if _, err := f.parseArgs([]string{"--nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown flag: %v", err)
	}
}
