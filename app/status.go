package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/mmreplicate/mmreplicate/config"
)

// ErrNotRunning is returned by status when no daemon answers on http.listen.
var ErrNotRunning = errors.New("no daemon running")

// PrintStatus is `mmreplicate status`: it asks the running daemon over its HTTP endpoint.
func PrintStatus(ctx context.Context, cfg *config.Config, asJSON bool, out io.Writer) error {
	if !cfg.HTTP.Enabled() {
		return fmt.Errorf("%w: http.listen is off, so status cannot reach the daemon", ErrUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.HTTP.Listen+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w on %s (is `mmreplicate run` started with this config?): %v", ErrNotRunning, cfg.HTTP.Listen, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status from %s: %s %v", cfg.HTTP.Listen, resp.Status, err)
	}
	if asJSON {
		_, err := out.Write(body)
		return err
	}
	var s Status
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("status from %s: %w", cfg.HTTP.Listen, err)
	}
	fmt.Fprintf(out, "host %s, mmreplicate %s, up since %s\n", s.Host, s.Version, s.Started.Format(time.RFC3339))
	fmt.Fprintf(out, "journal %s: %d bytes, last seq %d, published %d, full %v\n", s.Journal.Dir, s.Journal.Bytes, s.Journal.LastSeq, s.Journal.PublishedSeq, s.Journal.Full)
	if s.Capture.Paused {
		fmt.Fprintf(out, "%s (since %s); data_dir free: %d bytes\n\n", s.Capture.Reason, ago(s.Capture.Since), s.FreeBytes)
	} else {
		fmt.Fprintf(out, "capture running; data_dir free: %d bytes\n\n", s.FreeBytes)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tFILES\tLAST CHANGE")
	for _, src := range s.Sources {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", src.Name, src.Files, ago(src.LastChange))
	}
	fmt.Fprintln(tw, "\nSINK\tBACKLOG\tLAST UPLOAD\tERRORS\tLOSS WINDOW\tTARGET")
	for _, sk := range s.Sinks {
		fmt.Fprintf(tw, "%s\t%d records\t%s\t%d\t%.1fs\t%s\n", sk.Name, sk.BacklogRecords, ago(sk.LastSuccess), sk.Errors, sk.LossWindowSeconds, sk.Target)
	}
	fmt.Fprintln(tw, "\nSINK\tPUTS THIS HOUR\tPUTS THIS MONTH\tPROJECTED REQUESTS/MONTH\tBUDGET ALLOWS")
	for _, sk := range s.Sinks {
		fmt.Fprintf(tw, "%s\t%d\t%d\t$%.2f\t%.1fs loss window\n", sk.Name, sk.RequestsHour, sk.RequestsMonth, sk.ProjectedRequestUSD, sk.BudgetLossWindowSecond)
	}
	for _, sk := range s.Sinks {
		if sk.StoreGap != "" {
			fmt.Fprintf(tw, "\n%s: the stored history has a gap, no manifest is written (run verify): %s\n", sk.Name, sk.StoreGap)
		}
	}
	if s.Git != nil {
		fmt.Fprintf(tw, "\ngit: last commit %s at %s, pushed %v %s\n", s.Git.LastCommit, ago(s.Git.LastCommitTime), s.Git.Pushed, s.Git.PushError)
	}
	if len(s.Drills) > 0 {
		fmt.Fprintln(tw, "\nDRILL\tLAST RUN\tLAST SUCCESS\tFILES\tWINDOW\tERROR")
		for _, dr := range s.Drills {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", dr.Target, ago(dr.LastRun), ago(dr.LastSuccess), dr.Files,
				time.Duration(dr.WindowSeconds*float64(time.Second)).Round(time.Second), dr.LastError)
		}
	}
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), time.Since(t).Round(time.Second))
}
