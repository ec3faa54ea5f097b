package web

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

func TestRenderSQLiteReadsACopy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.db")
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`CREATE TABLE "odd ""name""" (k TEXT, v BLOB)`,
		`INSERT INTO "odd ""name""" VALUES ('a', x'00ff'), ('b', 'text'), (NULL, NULL)`,
		"CREATE TABLE empty (x)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	before, _ := os.ReadFile(p)
	c, err := render(p, "s/m.db")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != "sqlite" || len(c.Tables) != 2 {
		t.Fatalf("tables: %+v", c)
	}
	odd := c.Tables[1]
	if c.Tables[0].Name != "empty" || c.Tables[0].Count != 0 || odd.Name != `odd "name"` || odd.Count != 3 ||
		odd.Rows[0][1] != "<2 bytes>" || odd.Rows[1][1] != "text" || odd.Rows[2][0] != "NULL" {
		t.Fatalf("tables: %+v", c.Tables)
	}
	after, _ := os.ReadFile(p)
	if string(before) != string(after) {
		t.Fatal("rendering changed the stored database")
	}
	if m, _ := filepath.Glob(p + "-*"); len(m) != 0 {
		t.Fatalf("rendering left files beside the database: %v", m)
	}
}

func TestConversationShapes(t *testing.T) {
	msgs := conversation([]byte(`{"message":{"role":"user","content":[{"type":"text","text":"hi"}]},"timestamp":"2026-11-26T03:00:00Z"}
{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"search","arguments":"{\"q\":1}"}}]}
{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"result text"}]}]}
not json at all
{"type":"session","id":"x"}
`))
	if len(msgs) != 5 {
		t.Fatalf("%d messages: %+v", len(msgs), msgs)
	}
	if msgs[0].Role != "user" || msgs[0].Time != "2026-11-26T03:00:00Z" || msgs[0].Parts[0].Text != "hi" {
		t.Fatalf("nested message: %+v", msgs[0])
	}
	if p := msgs[1].Parts[0]; p.Kind != "call" || p.Name != "search" || p.Text != `{"q":1}` {
		t.Fatalf("tool_calls: %+v", msgs[1])
	}
	if p := msgs[2].Parts[0]; p.Kind != "result" || p.Text != "result text" {
		t.Fatalf("tool_result: %+v", msgs[2])
	}
	if msgs[3].Parts[0].Kind != "raw" || msgs[3].Parts[0].Text != "not json at all" {
		t.Fatalf("raw line: %+v", msgs[3])
	}
	if msgs[4].Role != "session" || msgs[4].Parts[0].Kind != "raw" {
		t.Fatalf("no content: %+v", msgs[4])
	}
}
