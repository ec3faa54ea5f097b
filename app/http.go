package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mmreplicate/mmreplicate/redact"
)

// Version, Commit and BuildDate are stamped at build time with -ldflags -X.
var (
	Version   = "dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// Status is what /status serves and `mmreplicate status` prints.
type Status struct {
	Host       string         `json:"host"`
	Version    string         `json:"version"`
	Started    time.Time      `json:"started"`
	Journal    JournalStatus  `json:"journal"`
	Sources    []SourceStatus `json:"sources"`
	Sinks      []SinkStatus   `json:"sinks"`
	Overflows  uint64         `json:"inotify_overflows"`
	Skipped    uint64         `json:"files_skipped"`
	CaptureErr uint64         `json:"capture_errors"`
	DBRebases  uint64         `json:"sqlite_rebases"`
	Drills     []DrillStatus  `json:"drills"`
	Git        *GitStatus     `json:"git,omitempty"`
	Capture    CaptureStatus  `json:"capture"`
	FreeBytes  int64          `json:"data_dir_free_bytes"` // space left in data_dir's file system; -1 unknown
}

// GitStatus is the git sink's last commit and push state.
type GitStatus struct {
	LastCommit     string    `json:"last_commit"`
	LastCommitTime time.Time `json:"last_commit_time,omitzero"`
	Boundary       time.Time `json:"boundary,omitzero"`
	Pushed         bool      `json:"pushed"`
	PushError      string    `json:"push_error,omitempty"`
	Commits        uint64    `json:"commits"`
}

// JournalStatus describes the local journal.
type JournalStatus struct {
	Dir           string `json:"dir"`
	Bytes         int64  `json:"bytes"`
	LastSeq       uint64 `json:"last_seq"`
	PublishedSeq  uint64 `json:"published_seq"`
	PublishErrors uint64 `json:"publish_errors"`
	Full          bool   `json:"full"`
}

// SourceStatus describes one source.
type SourceStatus struct {
	Name       string    `json:"name"`
	Files      int       `json:"files_watched"`
	LastChange time.Time `json:"last_change,omitzero"`
}

// SinkStatus describes one sink.
type SinkStatus struct {
	Name              string    `json:"name"`
	Target            string    `json:"target"`
	StoredSeq         uint64    `json:"stored_seq"`
	BacklogRecords    uint64    `json:"backlog_records"`
	LastSuccess       time.Time `json:"last_success,omitzero"`
	Errors            uint64    `json:"errors"`
	LossWindowSeconds float64   `json:"loss_window_seconds"`
	// StoreGap names records missing from the stored history, found when the sink
	// started; no manifest is written while it is set (run verify).
	StoreGap string `json:"store_gap,omitempty"`
	// Requests (segment PUTs) of this UTC hour and month, the month's projected request
	// cost at the target's pricing, and the loss window the budget allows right now.
	RequestsHour           uint64  `json:"requests_hour"`
	RequestsMonth          uint64  `json:"requests_month"`
	ProjectedRequestUSD    float64 `json:"projected_request_usd_month"`
	BudgetLossWindowSecond float64 `json:"budget_loss_window_seconds"`
}

func (d *daemon) status() Status {
	w := d.watcher()
	ov, sk, ce := w.Counters()
	s := Status{Host: d.cfg.Host, Version: Version, Started: d.started, Overflows: ov, Skipped: sk, CaptureErr: ce, DBRebases: w.DBRebases(),
		Journal: JournalStatus{Dir: d.j.Dir(), Bytes: d.j.Size(), LastSeq: d.j.LastSeq(), PublishedSeq: d.pub.Next() - 1,
			PublishErrors: d.pub.Errors(), Full: w.JournalFull()}}
	s.FreeBytes, s.Capture = d.diskStatus()
	for _, st := range w.Stats() {
		s.Sources = append(s.Sources, SourceStatus{Name: st.Name, Files: st.Files, LastChange: st.LastChange})
	}
	s.Drills = d.drills.snapshot()
	if d.git != nil {
		g := d.git.Status()
		s.Git = &GitStatus{LastCommit: g.LastCommit, LastCommitTime: g.LastCommitTime, Boundary: g.Boundary,
			Pushed: g.Pushed, PushError: g.PushError, Commits: g.Commits}
	}
	for i, w := range d.workers {
		ws := w.Stats()
		ss := SinkStatus{Name: ws.Sink, Target: d.targets[i], StoredSeq: ws.StoredSeq, LastSuccess: ws.LastSuccess, Errors: ws.Errors,
			RequestsHour: ws.RequestsHour, RequestsMonth: ws.RequestsMonth, ProjectedRequestUSD: ws.ProjectedRequestUSD,
			BudgetLossWindowSecond: ws.BudgetWindow.Seconds()}
		if s.Journal.LastSeq > ws.StoredSeq {
			ss.BacklogRecords = s.Journal.LastSeq - ws.StoredSeq
		}
		ss.LossWindowSeconds = d.lossWindow(ws.StoredSeq)
		for _, sk := range d.s3sinks {
			if sk.Name() == ws.Sink {
				ss.StoreGap = sk.Gap()
			}
		}
		s.Sinks = append(s.Sinks, ss)
	}
	return s
}

// lossWindow is the age of the oldest record the sink has not stored yet: what a host
// lost at this instant would cost.
func (d *daemon) lossWindow(stored uint64) float64 {
	if stored >= d.j.LastSeq() {
		return 0
	}
	seq := max(stored+1, d.j.FirstSeq())
	d.oldestMu.Lock()
	defer d.oldestMu.Unlock()
	// While a backlog lasts, status is polled far more often than the oldest unstored
	// record changes: read it from the journal once per sequence number.
	if t, ok := d.oldest[seq]; ok {
		return time.Since(t).Seconds()
	}
	r := d.j.NewReader(seq)
	defer r.Close()
	recs, err := r.Read(1)
	if err != nil || len(recs) == 0 {
		return 0
	}
	if len(d.oldest) > 64 {
		clear(d.oldest)
	}
	d.oldest[seq] = recs[0].CaptureTime()
	return time.Since(recs[0].CaptureTime()).Seconds()
}

// collector exposes the daemon's figures as Prometheus metrics, read at scrape time.
type collector struct{ d *daemon }

var (
	mJournalBytes  = prometheus.NewDesc("mmreplicate_journal_bytes", "Bytes of the local journal on disk.", nil, nil)
	mJournalSeq    = prometheus.NewDesc("mmreplicate_journal_last_sequence", "Sequence number of the newest durable record.", nil, nil)
	mJournalFull   = prometheus.NewDesc("mmreplicate_journal_full", "1 while the journal refuses appends for lack of space.", nil, nil)
	mDataDirFree   = prometheus.NewDesc("mmreplicate_data_dir_free_bytes", "Bytes free for the daemon in data_dir's file system.", nil, nil)
	mCapturePaused = prometheus.NewDesc("mmreplicate_capture_paused", "1 while captured changes cannot be journaled (reason: e.g. \"capture paused: disk full\"), 0 while capture runs.", []string{"reason"}, nil)
	mPublished     = prometheus.NewDesc("mmreplicate_published_sequence", "Sequence number of the newest record acknowledged by NATS.", nil, nil)
	mPubErrors     = prometheus.NewDesc("mmreplicate_publish_errors_total", "Failed publish attempts.", nil, nil)
	mFiles         = prometheus.NewDesc("mmreplicate_source_files_watched", "Files watched per source.", []string{"source"}, nil)
	mLastChange    = prometheus.NewDesc("mmreplicate_source_last_change_timestamp_seconds", "Time of the last change captured per source.", []string{"source"}, nil)
	mBacklog       = prometheus.NewDesc("mmreplicate_sink_backlog_records", "Records journaled but not yet stored by the sink.", []string{"sink"}, nil)
	mSinkErrors    = prometheus.NewDesc("mmreplicate_sink_errors_total", "Failed sink writes.", []string{"sink"}, nil)
	mLastSuccess   = prometheus.NewDesc("mmreplicate_sink_last_success_timestamp_seconds", "Time of the sink's last successful write.", []string{"sink"}, nil)
	mLossWindow    = prometheus.NewDesc("mmreplicate_sink_loss_window_seconds", "Age of the oldest record the sink has not stored.", []string{"sink"}, nil)
	mStoreGap      = prometheus.NewDesc("mmreplicate_sink_store_gap", "1 when the sink found records missing from the stored history at start (no manifest is written until repaired).", []string{"sink"}, nil)
	mReqHour       = prometheus.NewDesc("mmreplicate_sink_requests_hour", "PUTs of segments by the sink in the current UTC hour.", []string{"sink"}, nil)
	mReqMonth      = prometheus.NewDesc("mmreplicate_sink_requests_month", "PUTs of segments by the sink in the current UTC month (since the process started, if later).", []string{"sink"}, nil)
	mProjectedUSD  = prometheus.NewDesc("mmreplicate_sink_projected_request_usd_month", "This month's request cost at the pace so far, at the target's pricing (manifests included).", []string{"sink"}, nil)
	mBudgetWindow  = prometheus.NewDesc("mmreplicate_sink_budget_loss_window_seconds", "How long a change made now may wait for its upload: flush_interval, or longer while the request budget coalesces.", []string{"sink"}, nil)
	mOverflows     = prometheus.NewDesc("mmreplicate_inotify_overflows_total", "Inotify queue overflows (each triggers a full rescan).", nil, nil)
	mSkipped       = prometheus.NewDesc("mmreplicate_files_skipped_total", "Files not replicated (unsupported kind, bad name).", nil, nil)
	mCaptureErrors = prometheus.NewDesc("mmreplicate_capture_errors_total", "Files that could not be read.", nil, nil)
	mGitCommit     = prometheus.NewDesc("mmreplicate_git_last_commit_timestamp_seconds", "Boundary time of the git sink's last commit.", nil, nil)
	mGitPushed     = prometheus.NewDesc("mmreplicate_git_pushed", "1 when the last commit has reached the remote.", nil, nil)
	mGitCommits    = prometheus.NewDesc("mmreplicate_git_commits_total", "Commits made by the git sink.", nil, nil)
	mSecrets       = prometheus.NewDesc("mmreplicate_secrets_redacted_total", "Secrets masked before replication, per rule.", []string{"rule"}, nil)
	mWithheld      = prometheus.NewDesc("mmreplicate_files_withheld_total", "Files kept out because they hold a secret (secrets.action: withhold).", nil, nil)
	mDBRebases     = prometheus.NewDesc("mmreplicate_sqlite_rebases_total", "New SQLite base images taken because WAL continuity was lost (a checkpoint restarted the WAL before its frames were read).", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.status()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	cnt := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	g(mJournalBytes, float64(s.Journal.Bytes))
	g(mJournalSeq, float64(s.Journal.LastSeq))
	g(mJournalFull, b2f(s.Journal.Full))
	if s.FreeBytes >= 0 {
		g(mDataDirFree, float64(s.FreeBytes))
	}
	if s.Capture.Paused {
		g(mCapturePaused, 1, s.Capture.Reason)
	} else {
		g(mCapturePaused, 0, "")
	}
	g(mPublished, float64(s.Journal.PublishedSeq))
	cnt(mPubErrors, float64(s.Journal.PublishErrors))
	for _, src := range s.Sources {
		g(mFiles, float64(src.Files), src.Name)
		g(mLastChange, unix(src.LastChange), src.Name)
	}
	for _, sk := range s.Sinks {
		g(mBacklog, float64(sk.BacklogRecords), sk.Name)
		cnt(mSinkErrors, float64(sk.Errors), sk.Name)
		g(mLastSuccess, unix(sk.LastSuccess), sk.Name)
		g(mLossWindow, sk.LossWindowSeconds, sk.Name)
		g(mStoreGap, b2f(sk.StoreGap != ""), sk.Name)
		g(mReqHour, float64(sk.RequestsHour), sk.Name)
		g(mReqMonth, float64(sk.RequestsMonth), sk.Name)
		g(mProjectedUSD, sk.ProjectedRequestUSD, sk.Name)
		g(mBudgetWindow, sk.BudgetLossWindowSecond, sk.Name)
	}
	cnt(mOverflows, float64(s.Overflows))
	cnt(mSkipped, float64(s.Skipped))
	cnt(mCaptureErrors, float64(s.CaptureErr))
	cnt(mDBRebases, float64(s.DBRebases))
	bySecret, withheld := c.d.watcher().Secrets()
	for _, rule := range redact.Rules() {
		cnt(mSecrets, float64(bySecret[rule]), rule)
	}
	cnt(mWithheld, float64(withheld))
	c.d.drills.collect(ch)
	if s.Git != nil {
		g(mGitCommit, unix(s.Git.LastCommitTime))
		g(mGitPushed, b2f(s.Git.Pushed))
		cnt(mGitCommits, float64(s.Git.Commits))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// startHTTP serves /healthz, /status and /metrics on http.listen, and the web console
// at / (when web credentials are configured).
func (d *daemon) startHTTP() (func(), error) {
	if !d.cfg.HTTP.Enabled() {
		return func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.status())
	})
	console, closeConsole := d.webConsole(context.Background())
	mux.Handle("/", console)
	ln, err := net.Listen("tcp", d.cfg.HTTP.Listen)
	if err != nil {
		closeConsole()
		return nil, fmt.Errorf("http.listen %s: %w", d.cfg.HTTP.Listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server", "err", err)
		}
	}()
	d.log.Info("http listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		closeConsole()
	}, nil
}

// sdNotify sends a state ("READY=1", "WATCHDOG=1", "STOPPING=1") to the service
// manager when run under one with Type=notify; elsewhere it does nothing.
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}

// watchdogTicks ticks at half the service manager's watchdog period (WATCHDOG_USEC), or
// never when there is none.
func watchdogTicks() <-chan time.Time {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return nil
	}
	return time.NewTicker(time.Duration(usec) * time.Microsecond / 2).C
}
