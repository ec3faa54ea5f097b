package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestBadInput: every operator mistake is one clear line on stderr with the right exit
// status (2 for usage and config, 1 for runtime failures), and no stack trace.
func TestBadInput(t *testing.T) {
	s3 := testenv.StartS3(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	aFile := filepath.Join(dir, "file.txt")
	os.WriteFile(aFile, []byte("x"), 0o644)
	loop := filepath.Join(dir, "loop")
	os.Symlink(loop, loop) // a source path that is a loop of symlinks
	bucket := "mmr-bad-input"
	s3.CreateBucket(t, bucket)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := "host: bad\ndata_dir: " + filepath.Join(dir, "data") + "\nhttp:\n  listen: off\n"
	good := write("good.yml", base+"sources:\n  - name: s\n    path: "+src+"\n")
	s3cfg := func(name, bucket, secret string) string {
		return write(name, base+"sources:\n  - name: s\n    path: "+src+"\ns3:\n  url: s3://"+bucket+"/p\n  endpoint: "+s3.Endpoint+
			"\n  access_key_id: "+s3.AccessKey+"\n  secret_access_key: "+secret+"\n")
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing source path", []string{"check-config", "--config", write("missing.yml", base+"sources:\n  - name: s\n    path: "+filepath.Join(dir, "nope")+"\n")}, 2, "sources[0].path"},
		{"source path is a file", []string{"run", "--config", write("file.yml", base+"sources:\n  - name: s\n    path: "+aFile+"\n")}, 2, "not a directory"},
		{"source path is a symlink loop", []string{"check-config", "--config", write("loop.yml", base+"sources:\n  - name: s\n    path: "+loop+"\n")}, 2, "sources[0].path"},
		{"invalid yaml", []string{"check-config", "--config", write("yaml.yml", "host: [unclosed\n")}, 2, "YAML"},
		{"unknown key", []string{"check-config", "--config", write("unknown.yml", base+"sorces: []\n")}, 2, `unknown key "sorces"`},
		{"placeholder", []string{"check-config", "--config", write("ph.yml", base+"sources:\n  - name: s\n    path: "+src+"\nserve_s3:\n  access_key_id: <<REPLACE_WITH_KEY>>\n  secret_access_key: x\n")}, 2, "placeholder"},
		{"config file missing", []string{"check-config", "--config", filepath.Join(dir, "absent.yml")}, 2, "absent.yml"},
		{"bad TIME", []string{"restore", "--config", good, "--at", "yesterday", "--to", filepath.Join(dir, "r")}, 2, "RFC 3339"},
		{"future-free positive duration", []string{"restore", "--config", good, "--at", "90s", "--to", filepath.Join(dir, "r")}, 2, "negative duration"},
		{"no --at", []string{"restore", "--config", good, "--to", filepath.Join(dir, "r")}, 2, "--at"},
		{"unknown flag", []string{"restore", "--config", good, "--frobnicate"}, 2, "frobnicate"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bucket missing", []string{"run", "--config", s3cfg("nobucket.yml", "no-such-bucket", s3.SecretKey)}, 1, "does not exist"},
		{"wrong credentials", []string{"run", "--config", s3cfg("badkey.yml", bucket, "wrong-secret")}, 1, "access denied"},
		{"ls bad TIME", []string{"ls", "--config", good, "--at", "yesterday"}, 2, "RFC 3339"},
		{"cat without --at", []string{"cat", "--config", good, "s/a.jsonl"}, 2, "--at"},
		{"cat without a path", []string{"cat", "--config", good, "--at", "latest"}, 2, "SOURCE/PATH"},
		{"diff with one time", []string{"diff", "--config", good, "-1h"}, 2, "two times"},
		{"log of two paths", []string{"log", "--config", good, "s/a", "s/b"}, 2, "unexpected argument"},
		{"init with an unknown preset", []string{"init", "--preset", "frobnicate"}, 2, "openclaw"},
		{"ls with wrong credentials", []string{"ls", "--config", s3cfg("badkey3.yml", bucket, "wrong-secret")}, 1, "access denied"},
		{"ls of an empty store", []string{"ls", "--config", s3cfg("empty.yml", bucket, s3.SecretKey)}, 1, "holds nothing"},
		{"restore with wrong credentials", []string{"restore", "--config", s3cfg("badkey2.yml", bucket, "wrong-secret"), "--at", "latest", "--to", filepath.Join(dir, "r2")}, 1, "access denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := mmr(t, c.args...)
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if code != c.code || len(lines) != 1 || !strings.Contains(errs, c.want) || strings.Contains(errs, "goroutine") {
				t.Fatalf("exit %d (want %d), stderr %q (want one line containing %q)", code, c.code, errs, c.want)
			}
		})
	}
	// A restore into a folder that holds files is refused without --force.
	full := filepath.Join(dir, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "keep"), []byte("mine"), 0o644)
	code, _, errs := mmr(t, "restore", "--config", good, "--at", "latest", "--to", full)
	if code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("non-empty target: exit %d %q", code, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep")); string(b) != "mine" {
		t.Fatal("existing file touched")
	}
}
