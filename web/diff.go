package web

import (
	"bytes"
	"strings"
)

// diffView is the difference between two versions of a file.
type diffView struct {
	Path string `json:"path"`
	// Kind is "lines" (a line diff) or "appended" (the later version of a transcript
	// only added lines: those are listed).
	Kind      string     `json:"kind"`
	Binary    bool       `json:"binary,omitempty"`
	ASize     int        `json:"a_size"`
	BSize     int        `json:"b_size"`
	Added     int        `json:"added"`
	Removed   int        `json:"removed"`
	Lines     []diffLine `json:"lines"`
	Coarse    bool       `json:"coarse,omitempty"`    // too large for a line-by-line match: shown as replaced
	Truncated bool       `json:"truncated,omitempty"` // only the first maxDiffLines lines are listed
	Problems  []string   `json:"problems,omitempty"`
}

// diffLine is one line of a difference: Op is ' ' (in both), '-' (only in a) or '+'.
type diffLine struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// maxCells bounds the work of the line matching (lines of a times lines of b, after
// the common start and end are set aside).
const maxCells = 4 << 20

// maxDiffLines bounds the lines a difference lists (the counts cover all of them).
const maxDiffLines = 20000

func diff(name string, a, b []byte) diffView {
	d := diffAll(name, a, b)
	if len(d.Lines) > maxDiffLines {
		d.Lines, d.Truncated = d.Lines[:maxDiffLines], true
	}
	return d
}

func diffAll(name string, a, b []byte) diffView {
	d := diffView{Path: name, Kind: "lines", ASize: len(a), BSize: len(b), Lines: []diffLine{}}
	if !isText(a, false) || !isText(b, false) {
		d.Binary = true
		return d
	}
	if isTranscript(name) && bytes.HasPrefix(b, a) {
		d.Kind = "appended"
		for _, l := range splitLines(b[len(a):]) {
			d.Lines = append(d.Lines, diffLine{"+", l})
		}
		d.Added = len(d.Lines)
		return d
	}
	la, lb := splitLines(a), splitLines(b)
	pre := 0
	for pre < len(la) && pre < len(lb) && la[pre] == lb[pre] {
		pre++
	}
	suf := 0
	for suf < len(la)-pre && suf < len(lb)-pre && la[len(la)-1-suf] == lb[len(lb)-1-suf] {
		suf++
	}
	for _, l := range la[:pre] {
		d.Lines = append(d.Lines, diffLine{" ", l})
	}
	ma, mb := la[pre:len(la)-suf], lb[pre:len(lb)-suf]
	if len(ma)*len(mb) > maxCells {
		d.Coarse = true
		for _, l := range ma {
			d.Lines = append(d.Lines, diffLine{"-", l})
		}
		for _, l := range mb {
			d.Lines = append(d.Lines, diffLine{"+", l})
		}
	} else {
		d.Lines = append(d.Lines, lcs(ma, mb)...)
	}
	for _, l := range la[len(la)-suf:] {
		d.Lines = append(d.Lines, diffLine{" ", l})
	}
	for _, l := range d.Lines {
		switch l.Op {
		case "+":
			d.Added++
		case "-":
			d.Removed++
		}
	}
	return d
}

// lcs is the line diff of a and b by their longest common subsequence.
func lcs(a, b []string) []diffLine {
	n, m := len(a), len(b)
	// t[i][j]: length of the LCS of a[i:] and b[j:].
	t := make([]int32, (n+1)*(m+1))
	at := func(i, j int) int32 { return t[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				t[i*(m+1)+j] = at(i+1, j+1) + 1
			} else {
				t[i*(m+1)+j] = max(at(i+1, j), at(i, j+1))
			}
		}
	}
	var out []diffLine
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			out = append(out, diffLine{" ", a[i]})
			i++
			j++
		case at(i+1, j) >= at(i, j+1):
			out = append(out, diffLine{"-", a[i]})
			i++
		default:
			out = append(out, diffLine{"+", b[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, diffLine{"-", a[i]})
	}
	for ; j < m; j++ {
		out = append(out, diffLine{"+", b[j]})
	}
	return out
}

// splitLines cuts text into lines without their newlines; a last line without one
// still counts.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.Split(s, "\n")
}
