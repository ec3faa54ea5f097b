package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/timespec"
	"github.com/mmreplicate/mmreplicate/watcher"
)

// RestoreOptions are the flags of `mmreplicate restore`.
type RestoreOptions struct {
	Config   *config.Config
	At       string
	To       string
	Host     string
	Sources  []string
	Paths    []string
	DryRun   bool
	Parallel int
	From     string
	Force    bool
	InPlace  bool
	Out      io.Writer
	Progress io.Writer // a terminal for the progress bar, or nil
	Log      *slog.Logger
}

// Restore is `mmreplicate restore`.
func Restore(ctx context.Context, o RestoreOptions) error {
	at, latest, err := timespec.Parse(o.At, time.Now())
	if err != nil {
		return fmt.Errorf("%w: --at: %w", ErrUsage, err)
	}
	if o.InPlace && o.To != "" {
		return fmt.Errorf("%w: --in-place and --to exclude each other", ErrUsage)
	}
	if o.To == "" && !o.DryRun && !o.InPlace {
		return fmt.Errorf("%w: --to DIR (or --in-place) is required", ErrUsage)
	}
	var roots map[string]string
	if o.InPlace {
		// Each source goes back to its own path; sources the config no longer has are
		// left out (restore them with --to).
		roots = map[string]string{}
		for _, s := range o.Config.Sources {
			roots[s.Name] = s.Path
		}
	}
	host := o.Host
	if host == "" {
		host = o.Config.Host
	}
	st, name, err := openFirstAnswering(ctx, o.Config, o.From)
	if err != nil {
		return err
	}
	o.Log.Info("restoring", "host", host, "from", name, "store", st.String(), "at", o.At)
	res, err := restore.Run(ctx, restore.Options{Store: st, Host: host, At: at, Latest: latest, To: o.To, Roots: roots,
		Sources: o.Sources, Paths: o.Paths, DryRun: o.DryRun, Force: o.Force, Parallel: o.Parallel, Out: o.Out, Progress: o.Progress, Log: o.Log})
	if o.InPlace && !o.DryRun && err == nil && res.Files > 0 && host == o.Config.Host {
		// The first daemon start on this host must not send back what the store holds;
		// it must send what the store lacks, so only what this complete restore wrote is
		// recorded (an incomplete one records nothing: the daemon then sends everything).
		only := make(map[string]bool, len(res.Placed))
		for _, k := range res.Placed {
			only[k] = true
		}
		n, serr := watcher.Seed(watcher.Options{Sources: o.Config.Sources,
			StateFile: filepath.Join(o.Config.DataDir, "watch-state.json"), Ignore: []string{o.Config.DataDir},
			Secrets: o.Config.Secrets.Action, Log: o.Log}, only)
		if serr != nil {
			o.Log.Warn("watcher state not seeded: the next start sends the restored files again", "err", serr)
		} else {
			fmt.Fprintf(o.Out, "recorded %d restored paths as replicated: the daemon will not send them again\n", n)
		}
	}
	return err
}
