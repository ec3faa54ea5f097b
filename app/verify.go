package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/restore"
)

// ErrVerifyFailed is returned when verify found missing or damaged objects.
var ErrVerifyFailed = errors.New("store has problems")

// VerifyOptions are the flags of `mmreplicate verify`.
type VerifyOptions struct {
	Config   *config.Config
	Hosts    []string // empty: every host in the store
	From     string
	JSON     bool
	ReadData bool
	Parallel int
	Out      io.Writer
}

// Verify is `mmreplicate verify`.
func Verify(ctx context.Context, o VerifyOptions) error {
	st, name, err := openFirstAnswering(ctx, o.Config, o.From)
	if err != nil {
		return err
	}
	rep, err := restore.Verify(ctx, st, o.Hosts, o.Parallel, o.ReadData)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(o.Out, name, rep)
	}
	if !rep.OK() {
		n := len(rep.Problems)
		for _, h := range rep.Hosts {
			n += len(h.Problems)
		}
		return fmt.Errorf("%w: %d problems in %s", ErrVerifyFailed, n, rep.Store)
	}
	return nil
}

func printReport(w io.Writer, target string, rep *restore.Report) {
	fmt.Fprintf(w, "store %s (target %s): %d blobs, %d bytes\n", rep.Store, target, rep.Blobs, rep.BlobBytes)
	for _, h := range rep.Hosts {
		fmt.Fprintf(w, "host %s: %d segments, %d records (seq %d-%d), %d manifests\n", h.Host, h.Segments, h.Records, h.FirstSeq, h.LastSeq, h.Manifests)
		if !h.Oldest.IsZero() {
			fmt.Fprintf(w, "  recoverable window: %s .. %s\n", h.Oldest.Format(time.RFC3339Nano), h.Newest.Format(time.RFC3339Nano))
		}
		for _, p := range h.Problems {
			fmt.Fprintf(w, "  PROBLEM %s\n", p)
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	if rep.OK() {
		fmt.Fprintln(w, "ok: every object read back intact")
	}
}
