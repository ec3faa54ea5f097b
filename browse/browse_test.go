package browse

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		globs []string
		key   string
		want  bool
	}{
		{nil, "s/a/b.jsonl", true},
		{[]string{"s/a/*.jsonl"}, "s/a/b.jsonl", true},
		{[]string{"a/*.jsonl"}, "s/a/b.jsonl", true}, // the path within its source
		{[]string{"**/*.md"}, "s/a/b.jsonl", false},
		{[]string{"a"}, "s/a/b.jsonl", true}, // a folder: everything under it
		{[]string{"s/a/"}, "s/a/deep/b.jsonl", true},
		{[]string{"s"}, "s/a/b.jsonl", true},
		{[]string{"a"}, "s/ab/c", false},
		{[]string{"x", "s/a/b.jsonl"}, "s/a/b.jsonl", true},
	}
	for _, c := range cases {
		if got := Match(c.globs, c.key); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.globs, c.key, got, c.want)
		}
	}
}

func TestQuoteGlob(t *testing.T) {
	for _, p := range []string{"s/a[1]/b*.jsonl", `s/we{ir}d?\name`, "s/plain.txt"} {
		if !Match([]string{quoteGlob(p)}, p) {
			t.Errorf("quoteGlob(%q) does not match itself", p)
		}
	}
	if Match([]string{quoteGlob("s/a*")}, "s/abc") {
		t.Error("a quoted * still matches other names")
	}
}
