package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/restore"
)

// CompactOptions are the flags of `mmreplicate compact`.
type CompactOptions struct {
	Config *config.Config
	Host   string // default: the config's host
	From   string // S3 target (default: the first that answers)
	DryRun bool
	JSON   bool
	Out    io.Writer
	Log    *slog.Logger
}

// Policy is the retention policy of a config.
func Policy(c *config.Config) restore.Policy {
	r := c.Retention
	return restore.Policy{KeepAll: r.KeepAll, Hourly: r.Hourly, Daily: r.Daily, BlobGrace: r.BlobGrace}
}

// Compact is `mmreplicate compact`: one retention pass over a host's history.
func Compact(ctx context.Context, o CompactOptions) error {
	if o.Config.Retention.KeepAll <= 0 {
		return fmt.Errorf("compact: retention is off; set retention.keep_all (e.g. 7d) in the config")
	}
	host := o.Host
	if host == "" {
		host = o.Config.Host
	}
	st, name, err := openFirstAnswering(ctx, o.Config, o.From)
	if err != nil {
		return err
	}
	pol := Policy(o.Config)
	pol.DryRun = o.DryRun
	rep, err := restore.Compact(ctx, st, host, pol, time.Now(), o.Log)
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Fprintf(o.Out, "target %s: %s\n", name, rep)
		for _, s := range rep.Skipped {
			fmt.Fprintf(o.Out, "  skipped %s\n", s)
		}
	}
	return err
}

// compactFirst is how long after start the first retention pass waits, so that a daemon
// restarted in a loop does not compact at every start, and start-up traffic comes first.
const compactFirst = 10 * time.Minute

// compactLoop applies retention to this host's history in every S3 target once an hour.
// A failed pass deletes nothing it should not (Compact deletes only after the compacted
// manifests are written and read back) and is simply tried again an hour later.
func (d *daemon) compactLoop(ctx context.Context, stores []objstore.Store, names []string) {
	log := d.log.With("component", "retention")
	timer := time.NewTimer(compactFirst)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		for i, st := range stores {
			rep, err := restore.Compact(ctx, st, d.cfg.Host, Policy(d.cfg), time.Now(), log)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("compaction failed; trying again in an hour", "target", names[i], "err", err)
				continue
			}
			log.Info("compacted", "target", names[i], "report", rep.String())
		}
		timer.Reset(time.Hour)
	}
}
