package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
	"github.com/mmreplicate/mmreplicate/sinks"
)

// SinkOptions are the flags of `mmreplicate sink s3|git`.
type SinkOptions struct {
	Config *config.Config
	Kind   string   // "s3" or "git"
	Hosts  []string // hosts to serve (default: the config's host)
	Target string   // s3: one target by name (default: every target)
	Log    *slog.Logger
	Out    io.Writer
}

// RunSink is `mmreplicate sink s3|git`: sink workers alone, against the external NATS the
// hosts publish to. Several such processes may serve the same hosts: the server delivers
// each host's records to one of them at a time (pinned priority group) and moves them to
// another when it dies; unacknowledged batches are then written again, to the same keys.
func RunSink(ctx context.Context, o SinkOptions) error {
	cfg := o.Config
	if cfg.NATS.URL == "" {
		return fmt.Errorf("%w: sink workers need nats.url: the external NATS the hosts publish to", ErrUsage)
	}
	if o.Kind != "s3" && o.Kind != "git" {
		return fmt.Errorf("%w: unknown sink %q: use s3 or git", ErrUsage, o.Kind)
	}
	if o.Kind == "git" && cfg.Git == nil {
		return fmt.Errorf("%w: sink git needs a git section in the config", ErrUsage)
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []string{cfg.Host}
	}
	nc, err := natsbus.Connect(cfg.NATS.URL, cfg.NATS.Creds, nil, "mmreplicate sink "+o.Kind, o.Log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	var workers []*sinks.Worker
	for _, host := range o.Hosts {
		hc := *cfg
		hc.Host = host
		ws, err := sinkWorkers(ctx, &hc, o, nc, js)
		if err != nil {
			return err
		}
		for _, w := range ws {
			w.Resend = func(_ context.Context, seq uint64) error {
				return natsbus.AskResend(nc, host, seq, 5*time.Second)
			}
		}
		go reportStored(ctx, nc, host, ws)
		workers = append(workers, ws...)
	}
	fmt.Fprintf(o.Out, "mmreplicate %s: sink %s serving hosts %v with %d workers on %s\n", Version, o.Kind, o.Hosts, len(workers), cfg.NATS.URL)
	var wg sync.WaitGroup
	errc := make(chan error, len(workers))
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- w.Run(ctx) }()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func sinkWorkers(ctx context.Context, cfg *config.Config, o SinkOptions, nc *nats.Conn, js jetstream.JetStream) ([]*sinks.Worker, error) {
	setupCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var names []string
	var targets []config.S3Target
	if o.Kind == "git" {
		names = []string{"git"}
	} else {
		for _, t := range cfg.S3 {
			if o.Target == "" || o.Target == t.Name {
				names = append(names, "s3-"+t.Name)
				targets = append(targets, t)
			}
		}
		if len(targets) == 0 {
			return nil, fmt.Errorf("%w: --target %q is not an s3 target of the config", ErrUsage, o.Target)
		}
	}
	stream, err := natsbus.SetupWithRetry(setupCtx, nc, js, cfg.Host, cfg.NATS.MaxBytes, names, o.Log)
	if err != nil {
		return nil, err
	}
	if o.Kind == "git" {
		d := &daemon{cfg: cfg, log: o.Log}
		d.cfg.DataDir = filepath.Join(cfg.DataDir, "sink-"+cfg.Host)
		if err := d.addGitSink(ctx, stream); err != nil {
			return nil, err
		}
		return d.workers, nil
	}
	var out []*sinks.Worker
	for _, t := range targets {
		st, err := openStore(ctx, cfg, t, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		w, _, err := s3Worker(ctx, cfg, stream, t, st, 0, true, o.Log.With("host", cfg.Host))
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// storedReportEvery is how often sink workers tell a host what its targets store.
const storedReportEvery = 2 * time.Second

// reportStored tells host, until ctx ends, up to where each worker's target stores its
// records: the host releases its journal only below what every target has.
func reportStored(ctx context.Context, nc *nats.Conn, host string, ws []*sinks.Worker) {
	t := time.NewTicker(storedReportEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, w := range ws {
			if seq, ok := w.StoredKnown(); ok {
				_ = natsbus.ReportStored(nc, host, natsbus.StoredReport{Sink: w.Sink.Name(), Seq: seq})
			}
		}
	}
}
