package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mmreplicate/mmreplicate/internal/testenv"
)

// TestTwoTargetsEncryptedWithDrills: two real S3 servers as two targets, every object
// encrypted on the host. Stopping one target loses nothing on the other and it catches up
// when back; restore --from reads either; the raw objects hold no plaintext and blob
// names reveal no content hash; restore without the identity is a clear error; the
// daemon's restore drills pass and show in status and metrics.
func TestTwoTargetsEncryptedWithDrills(t *testing.T) {
	a, b := testenv.StartS3(t), testenv.StartS3(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	idFile := filepath.Join(dir, "age.key")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	a.CreateBucket(t, "first")
	b.CreateBucket(t, "second")
	target := func(name, bucket string, s *testenv.S3Server) string {
		return fmt.Sprintf("  - name: %s\n    url: s3://%s/prod\n    endpoint: %s\n    access_key_id: %s\n    secret_access_key: %s\n    flush_interval: 250ms\n",
			name, bucket, s.Endpoint, s.AccessKey, s.SecretKey)
	}
	extra := "s3:\n" + target("primary", "first", a) + target("backup", "second", b) +
		fmt.Sprintf("encryption:\n  recipients: [%q]\n  identity_file: %s\ndrill:\n  interval: 2s\nserve_s3:\n  access_key_id: browse\n  secret_access_key: browse-secret\n", id.Recipient().String(), idFile)
	h := newHost(t, hostOpts{extra: extra})
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, bytes.Replace(cfg, []byte("    include: [\"**/*.jsonl\"]\n"), nil, 1), 0o600)
	marker := "PLAINTEXT-MARKER-" + randomName()
	h.appendLine("main/s.jsonl", `{"text":"`+marker+`"}`+"\n")
	os.WriteFile(filepath.Join(h.src, "report.md"), []byte("# "+marker+"\n"+strings.Repeat("body ", 5000)), 0o644)
	b.Stop() // the backup provider is down even before the daemon starts
	d := h.start()
	w := startWriter(h)
	time.Sleep(2 * time.Second)
	w.halt()
	want := h.sourceState()
	want["sessions/report.md"] = "# " + marker + "\n" + strings.Repeat("body ", 5000)
	waitFrom(t, h, "primary", want)
	b.Restart(t)
	waitFrom(t, h, "backup", want)
	// Drills ran against both targets and passed.
	waitStatus(t, h, func(s map[string]any) bool {
		drills, _ := s["drills"].([]any)
		ok := 0
		for _, x := range drills {
			if m := x.(map[string]any); m["last_success"] != nil && m["last_error"] == nil {
				ok++
			}
		}
		return ok == 2
	})
	resp, err := http.Get("http://" + h.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`mmreplicate_restore_drill_last_success_timestamp_seconds{target="backup"}`)) {
		t.Fatal("no drill metric per target")
	}
	// serve-s3 decrypts: the file comes back exact through an S3 client.
	port := testenv.FreePort(t)
	gw := exec.Command(binary, "serve-s3", "--config", h.config, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	gwOut := &syncBuf{}
	gw.Stdout, gw.Stderr = gwOut, gwOut
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Process.Kill()
	bucket := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	var body []byte
	for i := 0; i < 100; i++ {
		cp := exec.Command("aws", "--endpoint-url", fmt.Sprintf("http://127.0.0.1:%d", port), "s3", "cp", "s3://e2e-"+bucket+"/@latest/sessions/report.md", "-")
		cp.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=browse", "AWS_SECRET_ACCESS_KEY=browse-secret", "AWS_DEFAULT_REGION=us-east-1")
		if body, err = cp.Output(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(body) != want["sessions/report.md"] {
		t.Fatalf("serve-s3 over the encrypted store gave %d bytes (%v)\n%s", len(body), err, gwOut)
	}
	gw.Process.Signal(os.Interrupt)
	gw.Wait()
	// A damaged object makes the next drill fail, naming it. New chunks travel inside
	// segment objects, so damaging the segments damages both.
	damaged := 0
	filepath.Walk(filepath.Join(a.Root, "first", "prod"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && (strings.Contains(p, "/segments/") || strings.Contains(p, "/blobs/")) {
			os.WriteFile(p, []byte("damaged"), 0o644)
			damaged++
		}
		return nil
	})
	if damaged == 0 {
		t.Fatal("no segment or blob objects found to damage")
	}
	waitStatus(t, h, func(s map[string]any) bool {
		for _, x := range s["drills"].([]any) {
			m := x.(map[string]any)
			if e, _ := m["last_error"].(string); m["target"] == "primary" && (strings.Contains(e, "blobs/") || strings.Contains(e, "segments/")) {
				return true
			}
		}
		return false
	})
	d.stop(t)
	// Nothing readable in the raw buckets.
	for _, root := range []string{a.Root, b.Root} {
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
			data, _ := os.ReadFile(p)
			if bytes.Contains(data, []byte(marker)) || bytes.Contains([]byte(p), []byte("report.md")) || bytes.Contains(data, []byte("main/s.jsonl")) {
				t.Fatalf("plaintext in stored object %s", p)
			}
			return nil
		})
	}
	// Without the identity, restore says what is missing.
	noIDPath := filepath.Join(dir, "noid.yml")
	os.WriteFile(noIDPath, []byte(strings.Replace(string(mustRead(t, h.config)), "  identity_file: "+idFile+"\n", "", 1)), 0o600)
	code, _, errs := mmr(t, "restore", "--config", noIDPath, "--at", "latest", "--to", filepath.Join(dir, "r"))
	if code == 0 || !strings.Contains(errs, "identity_file") || strings.Count(strings.TrimSpace(errs), "\n") > 1 {
		t.Fatalf("restore without identity: exit %d %q", code, errs)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFrom polls restore --from target until it equals want.
func waitFrom(t *testing.T, h *host, target string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]string
	var last string
	for time.Now().Before(deadline) {
		to := filepath.Join(t.TempDir(), "poll")
		code, _, errs := mmr(t, "restore", "--config", h.config, "--from", target, "--at", "latest", "--to", to)
		last = errs
		if code == 0 {
			if got = tree(t, to); equal(got, want) {
				return
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("target %s never reached the state: %s\n%s", target, diff(got, want), last)
}
