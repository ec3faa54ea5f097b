package git

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// pushTimeout bounds one push, so that a remote that hangs is retried like one that fails.
const pushTimeout = 10 * time.Minute

// remoteName names the remote in push options only; the repository's config is not
// touched.
const remoteName = "mmreplicate"

// kickPush asks the background loop to push now.
func (s *Sink) kickPush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// backgroundLoop pushes after each commit and retries failed pushes with a growing delay
// (a push carries every local commit the remote lacks, so none is lost while it is down),
// and runs the periodic gc.
func (s *Sink) backgroundLoop(ctx context.Context) {
	defer s.wg.Done()
	lo := max(min(time.Second, s.o.Interval/4), 50*time.Millisecond)
	hi := min(max(s.o.Interval, lo), 5*time.Minute)
	backoff := lo
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry:
		}
		retry = nil
		if s.o.Remote != "" {
			if err := s.pushOnce(ctx); err != nil && ctx.Err() == nil {
				retry = time.After(backoff + rand.N(backoff/4+1))
				backoff = min(2*backoff, hi)
			} else {
				backoff = lo
			}
		}
		s.maybeGC(ctx)
	}
}

// pushOnce pushes main to the remote through its own repository handle, so that a slow
// remote never holds up Write.
func (s *Sink) pushOnce(ctx context.Context) error {
	repo, err := gogit.PlainOpen(s.o.Repo)
	if err != nil {
		return s.pushDone(plumbing.ZeroHash, err)
	}
	ref, err := repo.Storer.Reference(plumbing.Main)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil // nothing committed yet
	}
	if err != nil {
		return s.pushDone(plumbing.ZeroHash, err)
	}
	auth, err := authFor(s.o.Remote)
	if err != nil {
		return s.pushDone(plumbing.ZeroHash, err)
	}
	remote := gogit.NewRemote(repo.Storer, &config.RemoteConfig{Name: remoteName, URLs: []string{s.o.Remote}})
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	err = remote.PushContext(pctx, &gogit.PushOptions{RemoteName: remoteName, Auth: auth,
		RefSpecs: []config.RefSpec{config.RefSpec(plumbing.Main + ":" + plumbing.Main)}})
	if errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		err = nil
	}
	return s.pushDone(ref.Hash(), err)
}

// pushDone records a push's outcome; it logs a failure when it differs from the previous
// one, so a remote down for hours does not flood the log.
func (s *Sink) pushDone(h plumbing.Hash, err error) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	if err != nil {
		err = fmt.Errorf("git sink: push to %s: %w", s.o.Remote, err)
		if s.status.PushError != err.Error() {
			s.log.Warn("push failed; commits stay local and are retried", "remote", s.o.Remote, "err", err)
		}
		s.status.PushError = err.Error()
		return err
	}
	if s.status.PushError != "" {
		s.log.Info("push succeeded again", "remote", s.o.Remote, "commit", h.String())
	}
	s.status.PushError = ""
	if h.String() == s.status.LastCommit {
		s.status.Pushed = true
	}
	return nil
}

// authFor picks credentials for a remote from the environment: GIT_TOKEN (with
// GIT_USERNAME, default "mmreplicate") or GIT_USERNAME and GIT_PASSWORD for http(s); the
// SSH agent, else ~/.ssh/id_ed25519, id_ecdsa or id_rsa (passphrase in
// GIT_SSH_KEY_PASSPHRASE) for ssh. None for a local path.
func authFor(url string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, err
	}
	switch ep.Protocol {
	case "http", "https":
		user, pass := os.Getenv("GIT_USERNAME"), os.Getenv("GIT_PASSWORD")
		if tok := os.Getenv("GIT_TOKEN"); tok != "" {
			if user == "" {
				user = "mmreplicate" // token hosts accept any user name with a token
			}
			return &githttp.BasicAuth{Username: user, Password: tok}, nil
		}
		if user != "" || pass != "" {
			return &githttp.BasicAuth{Username: user, Password: pass}, nil
		}
		return nil, nil // credentials in the URL, or a public remote
	case "ssh":
		user := ep.User
		if user == "" {
			user = "git"
		}
		if os.Getenv("SSH_AUTH_SOCK") != "" {
			if a, err := gitssh.NewSSHAgentAuth(user); err == nil {
				return a, nil
			}
		}
		home, _ := os.UserHomeDir()
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			p := filepath.Join(home, ".ssh", k)
			if _, err := os.Stat(p); err == nil {
				return gitssh.NewPublicKeysFromFile(user, p, os.Getenv("GIT_SSH_KEY_PASSPHRASE"))
			}
		}
		return nil, errors.New("ssh remote: no SSH agent (SSH_AUTH_SOCK) and no key in ~/.ssh")
	}
	return nil, nil
}

// maybeGC runs `git gc --auto` every GCEvery commits, in the foreground (gc.autoDetach
// off) and holding the sink's lock, so that it never races a commit; then it reopens the
// repository, whose pack list gc may have changed. Without the git command it does
// nothing: the repository stays correct, only less compact.
func (s *Sink) maybeGC(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.o.GCEvery < 0 || s.st.SinceGC < s.o.GCEvery {
		return
	}
	s.st.SinceGC = 0
	bin, err := exec.LookPath("git")
	if err != nil {
		s.warnOnce("\x00nogit", "git command not found; the repository is not repacked")
		return
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, "-C", s.o.Repo, "-c", "gc.autoDetach=false", "gc", "--auto", "-q").CombinedOutput()
	if err != nil {
		s.log.Warn("git gc failed", "err", err, "output", string(out))
	} else {
		s.log.Debug("git gc --auto done", "took", time.Since(start))
	}
	if repo, err := gogit.PlainOpen(s.o.Repo); err == nil {
		s.repo = repo
	}
}
