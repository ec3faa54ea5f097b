package web

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read stored databases

	"github.com/mmreplicate/mmreplicate/timespec"
)

// content is how the console shows a file: exactly one of Text, Messages and Tables
// is set, or none (a binary file, offered for download).
type content struct {
	Kind      string    `json:"kind"` // text | transcript | sqlite | binary
	Text      *string   `json:"text,omitempty"`
	Messages  []message `json:"messages,omitempty"`
	Tables    []table   `json:"tables,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	Note      string    `json:"note,omitempty"`
}

// message is one line of a session transcript.
type message struct {
	Line  int    `json:"line"`
	Role  string `json:"role"`
	Time  string `json:"time,omitempty"`
	Parts []part `json:"parts"`
}

// part is a piece of a message: text, a tool call, a tool's result, or a line that is
// not the JSON of a message (shown raw).
type part struct {
	Kind string `json:"kind"` // text | call | result | raw
	Name string `json:"name,omitempty"`
	Text string `json:"text"`
}

// table is one table of a database with its first rows.
type table struct {
	Name    string     `json:"name"`
	Count   int64      `json:"count"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
	Error   string     `json:"error,omitempty"`
}

const (
	maxText     = 1 << 20 // bytes of text shown
	maxMessages = 5000
	maxTables   = 200
	firstRows   = 20
	maxCell     = 200
)

var sqliteHeader = []byte("SQLite format 3\x00")

// render reads a stored file and decides how to show it: by content first (a database
// starts with the SQLite header, a binary file is not UTF-8 or holds NUL bytes), then by
// name (*.jsonl and *.ndjson are transcripts).
func render(p, name string) (content, error) {
	f, err := os.Open(p)
	if err != nil {
		return content{}, fmt.Errorf("web: %w", err)
	}
	defer f.Close()
	head := make([]byte, maxText+1)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return content{}, fmt.Errorf("web: read %s: %w", name, err)
	}
	head = head[:n]
	truncated := n > maxText
	if truncated {
		head = head[:maxText]
	}
	switch {
	case bytes.HasPrefix(head, sqliteHeader):
		return renderSQLite(p), nil
	case !isText(head, truncated):
		return content{Kind: "binary", Note: "binary content: download it to look at it"}, nil
	case isTranscript(name):
		c := content{Kind: "transcript", Messages: conversation(head)}
		if len(c.Messages) > maxMessages {
			c.Messages, c.Truncated = c.Messages[:maxMessages], true
		}
		c.Truncated = c.Truncated || truncated
		return c, nil
	}
	s := string(head)
	return content{Kind: "text", Text: &s, Truncated: truncated}, nil
}

func isTranscript(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".jsonl" || ext == ".ndjson"
}

// isText: valid UTF-8 (a rune cut at the end of a truncated head aside) without NUL.
func isText(b []byte, truncated bool) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	if truncated {
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	return utf8.Valid(b)
}

// conversation reads a transcript's lines as messages. Lines that are not JSON objects
// are kept as raw parts, so nothing stored is hidden.
func conversation(b []byte) []message {
	var out []message
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxText+1)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			out = append(out, message{Line: line, Role: "?", Parts: []part{{Kind: "raw", Text: string(raw)}}})
			continue
		}
		out = append(out, toMessage(line, obj, raw))
	}
	return out
}

// toMessage understands the common transcript shapes: {role, content} with content a
// string or a list of parts ({type: text|tool_use|toolCall|tool_result|toolResult}),
// the same under "message", OpenAI-style tool_calls, and {type, text}.
func toMessage(line int, obj map[string]any, raw []byte) message {
	m := message{Line: line}
	body := obj
	if inner, ok := obj["message"].(map[string]any); ok {
		body = inner
	}
	m.Role = firstString(body, "role", "type")
	if m.Role == "" {
		m.Role = firstString(obj, "role", "type")
	}
	m.Time = firstString(obj, "timestamp", "time", "ts")
	if m.Time == "" {
		m.Time = firstString(body, "timestamp", "time")
	}
	isResult := m.Role == "tool" || m.Role == "toolResult" || m.Role == "tool_result"
	addText := func(s string) {
		kind := "text"
		if isResult {
			kind = "result"
		}
		if s != "" {
			m.Parts = append(m.Parts, part{Kind: kind, Text: s})
		}
	}
	switch c := firstValue(body, "content", "text"); c := c.(type) {
	case string:
		addText(c)
	case []any:
		for _, it := range c {
			p, ok := it.(map[string]any)
			if !ok {
				addText(compact(it))
				continue
			}
			switch typ, _ := p["type"].(string); typ {
			case "text", "input_text", "output_text":
				addText(firstString(p, "text"))
			case "tool_use", "toolCall", "tool_call", "function_call":
				m.Parts = append(m.Parts, part{Kind: "call", Name: firstString(p, "name"),
					Text: compact(firstValue(p, "input", "arguments", "args"))})
			case "tool_result", "toolResult", "function_call_output":
				m.Parts = append(m.Parts, part{Kind: "result", Name: firstString(p, "name", "tool_use_id"),
					Text: flatten(firstValue(p, "content", "output", "text"))})
			default:
				m.Parts = append(m.Parts, part{Kind: "raw", Name: typ, Text: compact(p)})
			}
		}
	case nil:
	default:
		addText(compact(c))
	}
	if calls, ok := body["tool_calls"].([]any); ok {
		for _, it := range calls {
			p, _ := it.(map[string]any)
			fn, _ := p["function"].(map[string]any)
			if fn == nil {
				fn = p
			}
			m.Parts = append(m.Parts, part{Kind: "call", Name: firstString(fn, "name"), Text: compact(firstValue(fn, "arguments", "input"))})
		}
	}
	if len(m.Parts) == 0 {
		m.Parts = []part{{Kind: "raw", Text: string(raw)}}
	}
	if m.Role == "" {
		m.Role = "?"
	}
	return m
}

func firstValue(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			return v
		}
	}
	return nil
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func compact(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// flatten turns a tool result (a string or a list of text parts) into text.
func flatten(v any) string {
	if list, ok := v.([]any); ok {
		var parts []string
		for _, it := range list {
			if p, ok := it.(map[string]any); ok {
				if s := firstString(p, "text"); s != "" {
					parts = append(parts, s)
					continue
				}
			}
			parts = append(parts, compact(it))
		}
		return strings.Join(parts, "\n")
	}
	return compact(v)
}

// renderSQLite opens a copy of the database read-only in a temporary folder (so that
// nothing, not even a journal or WAL file, is written beside the stored state) and
// lists its tables with their row counts and first rows.
func renderSQLite(p string) content {
	c := content{Kind: "sqlite", Tables: []table{}}
	dir, err := os.MkdirTemp("", "mmreplicate-web-db-")
	if err != nil {
		c.Note = fmt.Sprintf("cannot open the database: %v", err)
		return c
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "db.sqlite")
	if err := copyFile(p, cp); err != nil {
		c.Note = fmt.Sprintf("cannot open the database: %v", err)
		return c
	}
	u := url.URL{Scheme: "file", Path: cp, RawQuery: "mode=ro&immutable=1"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		c.Note = fmt.Sprintf("cannot open the database: %v", err)
		return c
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		c.Note = fmt.Sprintf("cannot read the database: %v", err)
		return c
	}
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			names = append(names, n)
		}
	}
	rows.Close()
	if len(names) > maxTables {
		names, c.Truncated = names[:maxTables], true
	}
	for _, n := range names {
		c.Tables = append(c.Tables, readTable(ctx, db, n))
	}
	return c
}

func readTable(ctx context.Context, db *sql.DB, name string) table {
	t := table{Name: name, Columns: []string{}, Rows: [][]string{}}
	q := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+q).Scan(&t.Count); err != nil {
		t.Error = err.Error()
		return t
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %s LIMIT %d", q, firstRows))
	if err != nil {
		t.Error = err.Error()
		return t
	}
	defer rows.Close()
	t.Columns, _ = rows.Columns()
	for rows.Next() {
		vals := make([]any, len(t.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Error = err.Error()
			return t
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = cell(v)
		}
		t.Rows = append(t.Rows, row)
	}
	if err := rows.Err(); err != nil {
		t.Error = err.Error()
	}
	return t
}

func cell(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		if !utf8.Valid(v) || bytes.IndexByte(v, 0) >= 0 {
			return fmt.Sprintf("<%d bytes>", len(v))
		}
		s = string(v)
	case time.Time:
		s = timespec.Format(v)
	default:
		s = fmt.Sprint(v)
	}
	if len(s) > maxCell {
		cut := maxCell
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// parseTime reads a TIME parameter (empty is latest).
func parseTime(s string, now time.Time) (time.Time, bool, error) {
	if strings.TrimSpace(s) == "" {
		s = timespec.Latest
	}
	t, latest, err := timespec.Parse(s, now)
	if err != nil {
		return time.Time{}, false, badRequest("%v", err)
	}
	return t, latest, nil
}
