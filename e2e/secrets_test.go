package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/segment"
)

// fakeAPIKey makes a key of a model provider's format that is nobody's key.
func fakeAPIKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 93)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return "sk-ant-api03-" + string(b) + "AA"
}

// TestSecretsStayOut plants a fake API key in a session line and in a workspace file: it
// appears in no stored object (segments decoded, blobs, manifests), in no git object, and
// the redaction is counted.
func TestSecretsStayOut(t *testing.T) {
	key := fakeAPIKey()
	dir := t.TempDir()
	repo := filepath.Join(dir, "data-repo")
	h := newHost(t, hostOpts{extra: fmt.Sprintf("git:\n  repo: %s\n  interval: 3s\n", repo)})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	d := h.start()
	h.appendLine("main/sessions/s.jsonl", `{"role":"user","text":"here is my key `+key+` please use it"}`+"\n")
	os.WriteFile(filepath.Join(h.src, "notes.md"), []byte("ANTHROPIC_API_KEY="+key+"\nother notes\n"), 0o644)
	time.Sleep(7 * time.Second) // two git boundaries
	resp, err := http.Get("http://" + h.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.stop(t)
	if !bytes.Contains(metrics, []byte(`mmreplicate_secrets_redacted_total{rule="anthropic-api-key"} 2`)) {
		t.Fatalf("redactions not counted:\n%s", grepLines(string(metrics), "secrets"))
	}
	// Every stored object, decoded where it is compressed.
	st, _ := file.New(filepath.Join(h.data, "store"))
	ctx := context.Background()
	n := 0
	st.List(ctx, "", func(o objstore.ObjectInfo) error {
		body, err := st.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(o.Key, ".seg") {
			recs, err := segment.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				body = append(body, r.Data...)
			}
		}
		if bytes.Contains(body, []byte(key)) || bytes.Contains(body, []byte(key[20:60])) {
			t.Fatalf("the key is in stored object %s", o.Key)
		}
		n++
		return nil
	})
	// Every git object, uncompressed.
	cmd := exec.Command("sh", "-c", "git cat-file --batch-all-objects --batch")
	cmd.Dir = repo
	objs, err := cmd.Output()
	if err != nil || len(objs) == 0 {
		t.Fatalf("git objects: %v", err)
	}
	if bytes.Contains(objs, []byte(key[20:60])) {
		t.Fatal("the key is in a git object")
	}
	if !bytes.Contains(objs, []byte("please use it")) || !bytes.Contains(objs, []byte("other notes")) {
		t.Fatal("the rest of the content did not reach git")
	}
	// The rest is intact, and offsets still line up: the masked line has its length.
	got := tree(t, h.restore("latest"))
	line := got["sessions/main/sessions/s.jsonl"]
	if strings.Contains(line, key[20:60]) || len(line) != len(`{"role":"user","text":"here is my key `+key+` please use it"}`+"\n") {
		t.Fatalf("restored line %q", line)
	}
	t.Logf("%d stored objects and %d bytes of git objects checked", n, len(objs))
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
