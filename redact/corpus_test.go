package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// transcript returns about size bytes of JSONL in the shape of an agent's session
// transcripts: user and assistant messages of prose and markdown with code, tool calls
// and their outputs (listings, logs, diffs, hashes), usage counters, ids and times, and
// now and then a pasted image. With every > 0 a line holding a made-up secret follows
// each every bytes. The text is full of near misses: "password reset", "token_count",
// "task-sk-1", "--verbose", URLs, timestamps.
func transcript(size, every int) []byte {
	r := rand.New(rand.NewPCG(42, 43))
	secrets := samples()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	session := uuid(r)
	parent := uuid(r)
	nextSecret, n := every, 0
	for buf.Len() < size {
		line := map[string]any{
			"parentUuid": parent, "isSidechain": false, "userType": "external",
			"cwd": "/home/agent/workspace/project", "sessionId": session, "version": "1.4.2",
			"gitBranch": "main", "uuid": uuid(r),
			"timestamp": t0.Add(time.Duration(buf.Len()) * time.Millisecond).Format(time.RFC3339Nano),
		}
		parent = line["uuid"].(string)
		switch k := r.IntN(20); {
		case every > 0 && buf.Len() >= nextSecret:
			nextSecret += every
			s := secrets[n%len(secrets)]
			n++
			line["type"] = "user"
			line["note"] = "planted"
			line["message"] = map[string]any{"role": "user", "content": "here is the config I use:\n" + s.text + "\ncan you check it?"}
		case k < 6:
			line["type"] = "user"
			line["message"] = map[string]any{"role": "user", "content": prose(r, 20+r.IntN(80))}
		case k < 12:
			line["type"] = "assistant"
			line["requestId"] = "req_" + fake(fmt.Sprint(r.Uint64()), 24, alnum)
			line["message"] = map[string]any{
				"id": "msg_" + fake(fmt.Sprint(r.Uint64()), 24, alnum), "type": "message", "role": "assistant",
				"model": "model-large-4", "stop_reason": "end_turn", "stop_sequence": nil,
				"content": []any{map[string]any{"type": "text", "text": markdown(r)}},
				"usage": map[string]any{
					"input_tokens": r.IntN(5000), "cache_creation_input_tokens": r.IntN(20000),
					"cache_read_input_tokens": r.IntN(200000), "output_tokens": r.IntN(4000),
					"service_tier": "standard",
				},
			}
		case k < 15:
			line["type"] = "assistant"
			cmd := commands[r.IntN(len(commands))]
			line["message"] = map[string]any{"role": "assistant", "content": []any{map[string]any{
				"type": "tool_use", "id": "toolu_" + fake(fmt.Sprint(r.Uint64()), 24, alnum), "name": "Bash",
				"input": map[string]any{"command": cmd, "description": "Run " + strings.Fields(cmd)[0]},
			}}}
		case k < 19:
			line["type"] = "user"
			line["toolUseResult"] = map[string]any{"stdout": toolOutput(r), "stderr": "", "interrupted": false}
			line["message"] = map[string]any{"role": "user", "content": []any{map[string]any{
				"type": "tool_result", "tool_use_id": "toolu_" + fake(fmt.Sprint(r.Uint64()), 24, alnum),
				"content": toolOutput(r), "is_error": false,
			}}}
		default:
			img := make([]byte, 6000+r.IntN(30000))
			for i := range img {
				img[i] = byte(r.Uint32())
			}
			line["type"] = "user"
			line["message"] = map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "image", "source": map[string]any{"type": "base64", "media_type": "image/png", "data": base64.StdEncoding.EncodeToString(img)}},
				map[string]any{"type": "text", "text": "what is wrong in this screenshot?"},
			}}
		}
		if err := enc.Encode(line); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

func uuid(r *rand.Rand) string {
	h := fake(fmt.Sprint(r.Uint64()), 32, hexLow)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

var words = strings.Fields(`the a to of and in is it that for on with as this be are was at by
not or from but have an they which you your we can will all there their so if about would
when what up out do them some could more time into just like other than then now only its
over also after first two how our work well way even new want because any these give day
most us file files function test tests error errors build config server client request
response session message messages token tokens password passwords secret secrets key keys
reset link login user users account bearer header headers process class less pass passed
passes look book ok okay pipeline scanner replicate upload bucket commit branch merge
import export module package value values field fields string bytes offset length check
task tasks disk desk risk ask asked asking basket whisky high through thought night might
light right sight eight weight neighbour api apis capital typical topic pick pipe ripe
secretary secretly crash create credit across scroll describe discrete increase`)

func prose(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		w := words[r.IntN(len(words))]
		if i == 0 || r.IntN(12) == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		switch r.IntN(14) {
		case 0:
			b.WriteString(". ")
		case 1:
			b.WriteString(", ")
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteString(extras[r.IntN(len(extras))])
	return b.String()
}

// extras are near misses that sentences end with.
var extras = []string{
	"Click the password reset link in the email.",
	"See task-sk-1 and task-sk-2 on the board.",
	"The token_count is 123 and max_tokens is 4096.",
	"Run it with --verbose --dry-run to see more.",
	"Docs: https://docs.example.com/guide/setup#tokens",
	"The bearer token is sent in the Authorization header.",
	"Set the password: use at least 12 characters.",
	"Store the secret in the secret store, not in the repo.",
	"Passwords and API keys belong in environment variables.",
	"It is OK to look at the book.",
	"Commit e3b0c44298fc1c149afbf4c8996fb92427ae41e4 is on main.",
}

func markdown(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString(prose(r, 30+r.IntN(60)))
	b.WriteString("\n\n## Changes\n\n- ")
	b.WriteString(prose(r, 12))
	b.WriteString("\n- ")
	b.WriteString(prose(r, 10))
	b.WriteString("\n\n```go\n")
	b.WriteString(codeSnippets[r.IntN(len(codeSnippets))])
	b.WriteString("\n```\n\n")
	b.WriteString(prose(r, 20+r.IntN(40)))
	return b.String()
}

var codeSnippets = []string{
	"func (s *Scanner) Redact(data []byte) ([]byte, []Hit) {\n\tms := s.find(data, nil)\n\tif len(ms) == 0 {\n\t\treturn data, nil\n\t}\n\treturn out, hits\n}",
	"token := os.Getenv(\"API_TOKEN\")\nif token == \"\" {\n\treturn errors.New(\"API_TOKEN not set\")\n}\nreq.Header.Set(\"Authorization\", \"Bearer \"+token)",
	"password = getpass.getpass(\"Password: \")\nconn = db.connect(host=host, password=password)\nprint(f\"connected as {user}\")",
	"for i, line := range lines {\n\tif strings.HasPrefix(line, \"---\") {\n\t\tcontinue\n\t}\n\tcount += len(tokens[i])\n}",
	"const { apiKey } = config;\nconst client = new Client({ apiKey: config.apiKey, timeout: 30_000 });\nawait client.messages.create({ max_tokens: 1024 });",
	"SELECT id, email, password_hash FROM users WHERE reset_token = $1 -- expires after 1h",
	"secret, err := store.Get(ctx, \"db/password\")\nif err != nil {\n\treturn fmt.Errorf(\"read secret: %w\", err)\n}",
}

var commands = []string{
	"go test ./... -run TestPipeline -count=1 -v",
	"grep -rn \"password reset\" src/ --include=*.go",
	"git log --oneline -n 20 && git status --short",
	"ls -la /home/agent/workspace/project/.config",
	"curl -sS -H \"Authorization: Bearer $API_TOKEN\" https://api.example.com/v1/status",
	"compose -f deploy/compose.yml up -d --build",
	"sha256sum dist/*.tar.gz",
	"secrets-tool list -n prod -o name",
	"python3 -m pytest tests/test_tokens.py -q",
	"cat config/app.yml.template",
}

func toolOutput(r *rand.Rand) string {
	var b strings.Builder
	switch r.IntN(6) {
	case 0:
		for range 10 + r.IntN(30) {
			fmt.Fprintf(&b, "-rw-r--r--  1 agent agent %8d Mar  1 09:%02d %s.go\n", r.IntN(90000), r.IntN(60), words[r.IntN(len(words))])
		}
	case 1:
		for range 5 + r.IntN(20) {
			fmt.Fprintf(&b, "%s %s\n", fake(fmt.Sprint(r.Uint64()), 7, hexLow), prose(r, 6))
		}
	case 2:
		for range 10 + r.IntN(30) {
			fmt.Fprintf(&b, "2026-03-01T09:%02d:%02d.%03dZ INFO pipeline: uploaded segment seq=%d bytes=%d key=hosts/vps-1/segments/%020d.seg\n",
				r.IntN(60), r.IntN(60), r.IntN(1000), r.IntN(1e6), r.IntN(1e7), r.IntN(1e9))
		}
	case 3:
		for range 5 + r.IntN(15) {
			fmt.Fprintf(&b, "%s  dist/mmreplicate_%d.tar.gz\n", fake(fmt.Sprint(r.Uint64()), 64, hexLow), r.IntN(100))
		}
	case 4:
		b.WriteString("--- a/config/app.yml\n+++ b/config/app.yml\n@@ -1,6 +1,7 @@\n api:\n   url: https://api.example.com\n-  timeout: 10s\n+  timeout: 30s\n+  api_key: ${API_KEY}\n   password: <<REPLACE_WITH_DB_PASSWORD>>\n")
	default:
		fmt.Fprintf(&b, "=== RUN   TestTokens\n--- PASS: TestTokens (0.%02ds)\nPASS\nok  \texample.com/project/tokens\t%d.%03ds\n", r.IntN(100), r.IntN(5), r.IntN(1000))
		b.WriteString(prose(r, 40))
	}
	return b.String()
}
