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
	"github.com/mmreplicate/mmreplicate/web"
)

// WebOptions are the flags of `mmreplicate web`.
type WebOptions struct {
	Config   *config.Config
	Listen   string // ADDR; default web.listen from the config; a bare port binds 127.0.0.1
	From     string // S3 target to read (default: the first that answers)
	Host     string // host to show (default: the config's host)
	CacheDir string // where states are rebuilt (default: the system's temporary folder)
	// CacheBytes bounds the disk the rebuilt states use (default 2 GiB).
	CacheBytes int64
	Log        *slog.Logger
	Out        io.Writer
}

// errWebCredentials says what the console needs before it serves anything.
func errWebCredentials(cfg *config.Config) error {
	return fmt.Errorf("%w: %s: the web console needs web.username and web.password (the credentials it asks every browser for)",
		config.ErrInvalid, cfg.Path)
}

// Web is `mmreplicate web`: the web console over the store, until ctx is cancelled.
func Web(ctx context.Context, o WebOptions) error {
	if !o.Config.Web.Enabled() {
		return errWebCredentials(o.Config)
	}
	listen := o.Listen
	if listen == "" {
		listen = o.Config.Web.Listen
	}
	addr, err := listenAddr(listen)
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
	con, err := web.New(ctx, web.Options{Store: st, Host: host, Username: o.Config.Web.Username, Password: o.Config.Web.Password,
		ConfigPath: o.Config.Path, HostFlag: host != o.Config.Host, CacheDir: o.CacheDir, CacheBytes: o.CacheBytes, Log: o.Log})
	if err != nil {
		return err
	}
	defer con.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	srv := &http.Server{Handler: con, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(slogWriter{o.Log}, "", 0)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if ip := net.ParseIP(strings.Trim(hostPart(ln.Addr().String()), "[]")); ip == nil || !ip.IsLoopback() {
		o.Log.Warn("the web console listens beyond this machine over plain HTTP: put TLS in front of it", "listen", ln.Addr().String())
	}
	o.Log.Info("web console serving", "host", host, "from", name, "store", st.String())
	fmt.Fprintf(o.Out, "mmreplicate web: console http://%s/ (host %s, store %s; read-only, basic authentication with the web credentials)\n",
		ln.Addr(), host, st)
	select {
	case err := <-done:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("web: shutdown: %w", err)
	}
	return nil
}

// webConsole is the console the daemon serves at / on http.listen, over its first
// target; without web credentials / says how to turn it on.
func (d *daemon) webConsole(ctx context.Context) (http.Handler, func()) {
	if !d.cfg.Web.Enabled() {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			http.Error(w, "the web console is off: set web.username and web.password in the config to turn it on", http.StatusNotFound)
		}), func() {}
	}
	if d.drills == nil || len(d.drills.stores) == 0 {
		return http.NotFoundHandler(), func() {}
	}
	con, err := web.New(ctx, web.Options{Store: d.drills.stores[0], Host: d.cfg.Host, Username: d.cfg.Web.Username,
		Password: d.cfg.Web.Password, ConfigPath: d.cfg.Path, Status: func() any { return d.status() }, Log: d.log,
		// The daemon's own figures are live; counting the store's files rebuilds the
		// newest state, which on a busy host is new every time: do it rarely.
		StoreViewEvery: 10 * time.Minute})
	if err != nil {
		d.log.Error("web console", "err", err)
		return http.NotFoundHandler(), func() {}
	}
	return con, func() { _ = con.Close() }
}
