package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/restore/s3gw"
)

// ServeS3Options are the flags of `mmreplicate serve-s3`.
type ServeS3Options struct {
	Config   *config.Config
	Listen   string // ADDR; a bare port (or ":port") binds 127.0.0.1
	From     string // S3 target to read (default: the first that answers)
	Host     string // host whose state to serve (default: the config's host)
	CacheDir string // where states are rebuilt (default: the system's temporary folder)
	// CacheBytes bounds the disk the rebuilt states use (default 2 GiB).
	CacheBytes int64
	Log        *slog.Logger
	Out        io.Writer
}

// ServeS3 is `mmreplicate serve-s3`: a read-only S3 endpoint over the store with time in
// the path, until ctx is cancelled.
func ServeS3(ctx context.Context, o ServeS3Options) error {
	creds := o.Config.ServeS3
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return fmt.Errorf("%w: %s: serve-s3 needs serve_s3.access_key_id and serve_s3.secret_access_key (the SigV4 credentials its clients sign with)",
			config.ErrInvalid, o.Config.Path)
	}
	addr, err := listenAddr(o.Listen)
	if err != nil {
		return err
	}
	host := o.Host
	if host == "" {
		host = o.Config.Host
	}
	st, name, err := openFirstAnswering(ctx, o.Config, o.From)
	if err != nil {
		return err
	}
	gw, err := s3gw.New(ctx, s3gw.Options{Store: st, Host: host, CacheDir: o.CacheDir, MaxBytes: o.CacheBytes, Log: o.Log})
	if err != nil {
		return err
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve-s3: %w", err)
	}
	srv := &http.Server{
		Handler:           gw.Handler(s3gw.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(slogWriter{o.Log}, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if ip := net.ParseIP(strings.Trim(hostPart(ln.Addr().String()), "[]")); ip == nil || !ip.IsLoopback() {
		o.Log.Warn("serve-s3 listens beyond this machine over plain HTTP: put TLS in front of it", "listen", ln.Addr().String())
	}
	o.Log.Info("serving", "host", host, "from", name, "store", st.String(), "cache", gw.CacheRoot())
	fmt.Fprintf(o.Out, "mmreplicate serve-s3: endpoint http://%s bucket %s (host %s, store %s; read-only, path-style, SigV4 with the serve_s3 credentials)\n",
		ln.Addr(), gw.Bucket(), host, st)
	select {
	case err := <-done:
		return fmt.Errorf("serve-s3: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("serve-s3: shutdown: %w", err)
	}
	o.Log.Info("serve-s3 stopped")
	return nil
}

// listenAddr reads --listen: HOST:PORT, or a bare PORT or :PORT, which binds 127.0.0.1
// (exposing the endpoint takes an explicit address such as 0.0.0.0:9000).
func listenAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: --listen ADDR is required (e.g. 127.0.0.1:9000)", ErrUsage)
	}
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil || p == "" {
		return "", fmt.Errorf("%w: --listen %q: want HOST:PORT or PORT", ErrUsage, s)
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p), nil
}

func hostPart(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// slogWriter sends the HTTP server's own complaints (bad requests, TLS probes) to the log.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("serve-s3 http", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}
