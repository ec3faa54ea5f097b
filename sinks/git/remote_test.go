package git

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

func bareRemote(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "remote.git")
	gitCmd(t, filepath.Dir(dir), "init", "-q", "--bare", dir)
	return dir
}

func remoteHead(t *testing.T, remote string) string {
	t.Helper()
	if _, err := os.Stat(remote); err != nil {
		return ""
	}
	out, _ := exec.Command("git", "-C", remote, "rev-parse", "-q", "--verify", "refs/heads/main").Output()
	return strings.TrimSpace(string(out))
}

// Every commit reaches a bare remote, in order.
func TestPush(t *testing.T) {
	e := newEnv(t)
	remote := bareRemote(t)
	o := e.opts()
	o.Remote = remote
	s := e.open(o)
	defer s.Close()
	for _, batch := range scenario(newBuilder()) {
		e.write(s, batch)
	}
	waitFor(t, 10*time.Second, "the push", func() bool { return s.Status().Pushed })
	local, pushed := gitLog(t, e.repo), gitLog(t, remote)
	if len(pushed) != len(local) || pushed[len(pushed)-1].hash != local[len(local)-1].hash {
		t.Fatalf("remote has %v, local %v", pushed, local)
	}
	fsck(t, remote)
}

// The remote is gone for several intervals, then back: no commit is lost and all arrive in
// order.
func TestPushRemoteDown(t *testing.T) {
	e := newEnv(t)
	remote := bareRemote(t)
	o := e.opts()
	o.Remote, o.Interval = remote, time.Second
	s := e.open(o)
	defer s.Close()
	b := newBuilder()
	sec := time.Second
	e.write(s, []journal.Record{b.appendTo(at(sec/2), "s/a.jsonl", 0, "0\n"),
		b.appendTo(at(sec+sec/2), "s/a.jsonl", 2, "1\n")})
	waitFor(t, 10*time.Second, "the first push", func() bool { return s.Status().Pushed })

	away := remote + ".away"
	if err := os.Rename(remote, away); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 7; i++ {
		e.write(s, []journal.Record{b.appendTo(at(time.Duration(i)*sec+sec/2), "s/a.jsonl", int64(2*i-2), "x\n")})
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "a push error", func() bool { return s.Status().PushError != "" })
	if st := s.Status(); st.Pushed || st.Commits != 6 {
		t.Fatalf("status while the remote is down: %+v", st)
	}
	time.Sleep(300 * time.Millisecond) // no push is pending on a commit any more: the retry brings them
	if err := os.Rename(away, remote); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the retried push", func() bool { return s.Status().Pushed })
	if st := s.Status(); st.PushError != "" {
		t.Fatalf("status after the remote came back: %+v", st)
	}
	local, pushed := gitLog(t, e.repo), gitLog(t, remote)
	if len(local) != 6 || len(pushed) != len(local) {
		t.Fatalf("local %d commits, remote %d", len(local), len(pushed))
	}
	for i := range local {
		if local[i].hash != pushed[i].hash {
			t.Fatalf("commit %d differs: %s on the remote, %s here", i, pushed[i].hash, local[i].hash)
		}
	}
	fsck(t, remote)
}

// Commits made before a restart are pushed by the next run.
func TestPushAfterRestart(t *testing.T) {
	e := newEnv(t)
	remote := bareRemote(t)
	s := e.open(e.opts()) // no remote yet
	for _, batch := range scenario(newBuilder()) {
		e.write(s, batch)
	}
	s.Close()
	o := e.opts()
	o.Remote = remote
	s = e.open(o)
	defer s.Close()
	waitFor(t, 10*time.Second, "the push at start", func() bool { return remoteHead(t, remote) != "" })
	if got, want := remoteHead(t, remote), s.Status().LastCommit; got != want {
		t.Fatalf("remote at %s, local at %s", got, want)
	}
}

func TestAuthFor(t *testing.T) {
	t.Setenv("GIT_TOKEN", "tok")
	t.Setenv("GIT_USERNAME", "")
	a, err := authFor("https://example.invalid/x.git")
	if err != nil || a == nil || !strings.Contains(a.String(), "mmreplicate") {
		t.Fatalf("token auth: %v %v", a, err)
	}
	t.Setenv("GIT_TOKEN", "")
	t.Setenv("GIT_USERNAME", "u")
	t.Setenv("GIT_PASSWORD", "p")
	if a, err := authFor("https://example.invalid/x.git"); err != nil || a == nil || !strings.Contains(a.String(), "u:") {
		t.Fatalf("basic auth: %v %v", a, err)
	}
	if a, err := authFor("/srv/backup.git"); err != nil || a != nil {
		t.Fatalf("file remote: %v %v", a, err)
	}
}
