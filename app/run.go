package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/mmreplicate/mmreplicate/cost"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/sinks"
	gitsink "github.com/mmreplicate/mmreplicate/sinks/git"
	s3sink "github.com/mmreplicate/mmreplicate/sinks/s3"
	"github.com/mmreplicate/mmreplicate/watcher"
	"github.com/mmreplicate/mmreplicate/watcher/sqlite"
)

// RunOptions configure the daemon.
type RunOptions struct {
	Config *config.Config
	Log    *slog.Logger
	Out    io.Writer // start-up banner
	// DrainTimeout bounds how long shutdown waits for the publisher and sinks to store
	// what the journal holds; records left over stay in the journal for the next start.
	DrainTimeout time.Duration
	// NoSinks runs no sink in this process (they run as `mmreplicate sink` elsewhere):
	// the daemon watches, journals and publishes only.
	NoSinks bool
}

// daemon is one running `mmreplicate run`.
type daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	j       *journal.Journal
	ns      *server.Server
	pub     *natsbus.Publisher
	workers []*sinks.Worker
	s3sinks []*s3sink.Sink
	drills  *drills
	git     *gitsink.Sink
	fleet   *fleetLink // with --no-sinks: the workers elsewhere (see fleet.go)
	targets []string
	started time.Time
	pending []config.Source // sources read on SIGHUP, swapped in by reload
	hup     chan os.Signal  // SIGHUP, caught from the start of Run

	watchMu sync.Mutex
	watch   *watcher.Watcher

	oldestMu sync.Mutex
	oldest   map[uint64]time.Time // capture time of the oldest unstored record, by seq

	disk diskState // data_dir's free space and why capture is paused (diskfull.go)
}

// Run is `mmreplicate run`: it returns nil after a clean shutdown when ctx ends.
func Run(ctx context.Context, o RunOptions) error {
	// SIGHUP asks for a reload; it must never kill the daemon, even one still starting:
	// a SIGHUP before the first scan ends waits and is handled once the daemon runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg := o.Config
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := cfg.CheckSources(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	d := &daemon{cfg: cfg, log: o.Log, started: time.Now(), oldest: map[uint64]time.Time{}, hup: hup}

	stores := make([]objstore.Store, len(cfg.S3))
	var lastSeq uint64
	var lastTime time.Time
	startAfter := make([]uint64, len(cfg.S3))
	down := make([]bool, len(cfg.S3))
	reachable := 0
	for i, t := range cfg.S3 {
		st, err := openStore(ctx, cfg, t, cfg.DataDir)
		if err != nil {
			return err
		}
		stores[i] = st
		seq, tm, err := lastStored(ctx, st, cfg.Host)
		if err != nil && objstore.Temporary(err) {
			// One provider's outage must not stop replication: its sink starts once the
			// store answers, and NATS keeps what it has not taken yet.
			o.Log.Warn("s3 target unreachable at start; its sink waits for it", "target", t.Name, "store", st.String(), "err", err)
			down[i] = true
			continue
		}
		if err != nil {
			return fmt.Errorf("s3 target %s (%s): %w", t.Name, st, err)
		}
		reachable++
		startAfter[i] = seq
		if seq > lastSeq {
			lastSeq, lastTime = seq, tm
		}
	}
	if reachable == 0 && !journalExists(filepath.Join(cfg.DataDir, "journal")) {
		return fmt.Errorf("no s3 target answers, and a new journal must continue the numbering the store holds: start again once a target is reachable")
	}
	// A host rebuilt from its store continues the numbering and the clock of the lost one,
	// so its records never collide with what the store already holds.
	d.j, err = journal.Open(filepath.Join(cfg.DataDir, "journal"), journal.Options{
		MaxBytes: cfg.Journal.MaxBytes, SyncInterval: cfg.Journal.SyncInterval, FirstSeq: lastSeq + 1, MinTime: lastTime, Logger: o.Log})
	if err != nil {
		return err
	}
	defer d.j.Close()
	if d.j.LastSeq() < lastSeq && d.j.FirstSeq() <= lastSeq {
		d.log.Warn("the store holds records newer than this journal: another daemon with the same host name may be writing to it", "host", cfg.Host, "store_seq", lastSeq, "journal_seq", d.j.LastSeq())
	}

	nc, js, err := d.connect()
	if err != nil {
		return err
	}
	defer func() {
		nc.Drain()
		if d.ns != nil {
			d.ns.Shutdown()
			d.ns.WaitForShutdown()
		}
	}()
	names := make([]string, len(cfg.S3))
	for i, t := range cfg.S3 {
		names[i] = "s3-" + t.Name
	}
	if cfg.Git != nil {
		names = append(names, "git")
	}
	setupCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	stream, err := natsbus.SetupWithRetry(setupCtx, nc, js, cfg.Host, d.streamBytes(), names, d.log, d.streamOptions()...)
	cancel()
	if err != nil {
		return err
	}

	d.pub = &natsbus.Publisher{J: d.j, JS: js, NC: nc, Host: cfg.Host, CursorDir: cfg.DataDir, Log: d.log.With("component", "publisher")}
	for i, s := range startAfter {
		if !down[i] && (d.pub.StartAt == 0 || s+1 < d.pub.StartAt) {
			d.pub.StartAt = s + 1
		}
	}
	d.memoryStreamStart(down)
	for i, t := range cfg.S3 {
		d.targets = append(d.targets, stores[i].String())
		if o.NoSinks {
			continue
		}
		w, sink, err := s3Worker(ctx, cfg, stream, t, stores[i], startAfter[i], down[i], d.log)
		if err != nil {
			return err
		}
		d.s3sinks = append(d.s3sinks, sink)
		d.workers = append(d.workers, w)
	}
	if cfg.Git != nil && !o.NoSinks {
		if err := d.addGitSink(ctx, stream); err != nil {
			return err
		}
	}
	if o.NoSinks {
		d.fleet = newFleetLink(cfg.Host, d.pub, d.j, names, d.log)
		for i := range cfg.S3 {
			if !down[i] {
				d.fleet.seed(names[i], startAfter[i])
			}
		}
		if err := d.fleet.start(ctx, nc, stream); err != nil {
			return fmt.Errorf("nats: fleet subjects: %w", err)
		}
	}
	targetNames := make([]string, len(cfg.S3))
	for i, t := range cfg.S3 {
		targetNames[i] = t.Name
	}
	d.drills = &drills{d: d, stores: stores, names: targetNames}
	if err := d.newWatcher(cfg.Sources); err != nil {
		return err
	}
	return d.serve(ctx, o)
}

// serve runs every component until ctx ends, then shuts down in order so that what was
// captured reaches the store: watcher, then publisher, then sinks.
func (d *daemon) serve(ctx context.Context, o RunOptions) error {
	stop := context.WithoutCancel(ctx)
	watchCtx, stopWatch := context.WithCancel(stop)
	pubCtx, stopPub := context.WithCancel(stop)
	sinkCtx, stopSinks := context.WithCancel(stop)
	defer stopSinks()
	defer stopPub()
	defer func() { stopWatch() }()

	// Room for every worker's and the publisher's result: after the loop below stops
	// reading, they must still be able to return.
	errc := make(chan error, len(d.workers)+1)
	var sinkWG, pubWG sync.WaitGroup
	for _, w := range d.workers {
		sinkWG.Add(1)
		go func() { defer sinkWG.Done(); errc <- w.Run(sinkCtx) }()
	}
	pubWG.Add(1)
	go func() { defer pubWG.Done(); errc <- d.pub.Run(pubCtx) }()
	httpStop, err := d.startHTTP()
	if err != nil {
		return err
	}
	defer httpStop()
	go d.releaseLoop(sinkCtx)
	go d.diskLoop(sinkCtx)
	if d.cfg.Drill.Enabled {
		go d.drills.run(sinkCtx, d.cfg.Drill.Interval)
	}
	if d.cfg.Retention.KeepAll > 0 {
		go d.compactLoop(sinkCtx, d.drills.stores, d.drills.names)
	}
	ready := make(chan struct{})
	watchDone := d.startWatcher(watchCtx, func() { close(ready) })
	select {
	case <-ready:
		fmt.Fprintf(o.Out, "mmreplicate %s: host %s, %d sources, journal %s, nats %s, objects land in %v\n",
			Version, d.cfg.Host, len(d.cfg.Sources), d.j.Dir(), d.natsName(), d.targets)
		d.log.Info("running", "host", d.cfg.Host, "sources", len(d.cfg.Sources), "targets", d.targets)
		sdNotify("READY=1")
	case err := <-watchDone:
		return err
	case <-ctx.Done():
	}

	hup := d.hup
	watchdog := watchdogTicks()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case runErr = <-errc:
			d.log.Error("component failed; shutting down", "err", runErr)
			break loop
		case runErr = <-watchDone:
			watchDone = nil
			d.log.Error("watcher stopped; shutting down", "err", runErr)
			break loop
		case <-hup:
			if d.reloadable() {
				stopWatch()
				if err := <-watchDone; err != nil {
					d.log.Error("watcher", "err", err)
				}
				watchCtx, stopWatch = context.WithCancel(stop)
				if err := d.reload(); err != nil {
					d.log.Error("reload failed; the new sources are not watched", "err", err)
				}
				watchDone = d.startWatcher(watchCtx, nil)
			}
		case <-watchdog:
			sdNotify("WATCHDOG=1")
		}
	}
	sdNotify("STOPPING=1")
	stopWatch()
	if watchDone != nil {
		if err := <-watchDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	last := d.j.LastSeq()
	deadline := time.Now().Add(o.DrainTimeout)
	for d.pub.Next() <= last && time.Now().Before(deadline) && runErr == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stopPub()
	pubWG.Wait()
	drained := true
	for _, w := range d.workers {
		if !w.Drain(min(last, d.pub.Next()-1), time.Until(deadline)) {
			drained = false
		}
	}
	stopSinks()
	sinkWG.Wait()
	if d.git != nil {
		if err := d.git.Close(); err != nil {
			d.log.Warn("git sink close", "err", err)
		}
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 10*time.Second)
	for _, s := range d.s3sinks {
		s.Flush(flushCtx) // a manifest of the final state: the next restore reads little
	}
	cancelFlush()
	_ = journal.WriteCursor(d.cfg.DataDir, natsbus.CursorName, d.pub.Next())
	if !drained || d.pub.Next() <= last {
		d.log.Warn("shutdown before every record reached the store; the journal keeps them for the next start", "journal_seq", last, "published_below", d.pub.Next())
	} else {
		d.log.Info("stopped; every captured record is in the store", "last_seq", last)
	}
	return runErr
}

// gapPatience is how long a sink may wait for missing records before the publisher sends
// them again; redelivery of a crashed process's messages normally fills a gap sooner.
const gapPatience = 10 * time.Second

// releaseLoop deletes journal segments that the publisher and every in-process sink are
// done with: NATS is a transport, not the only copy.
func (d *daemon) releaseLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		upTo := d.pub.Next()
		if d.fleet != nil {
			upTo = min(upTo, d.fleet.releasable()) // what every target reports stored
		}
		for _, w := range d.workers {
			upTo = min(upTo, w.StoredSeq()+1)
			// A gap that redelivery has not filled within a while means NATS lost the
			// messages (an embedded server killed before it wrote them out); the journal
			// still has the records.
			if seq, since, ok := w.Gap(); ok && time.Since(since) > gapPatience {
				d.pub.Rewind(seq)
			}
		}
		if err := d.j.Release(upTo); err != nil {
			d.log.Warn("journal release", "err", err)
		}
	}
}

func (d *daemon) natsName() string {
	if d.ns != nil {
		return "embedded"
	}
	return d.cfg.NATS.URL
}

func (d *daemon) connect() (*nats.Conn, jetstream.JetStream, error) {
	if d.cfg.NATS.URL == "" {
		ns, err := natsbus.StartEmbedded(filepath.Join(d.cfg.DataDir, "nats"), d.log)
		if err != nil {
			return nil, nil, err
		}
		d.ns = ns
	}
	nc, err := natsbus.Connect(d.cfg.NATS.URL, d.cfg.NATS.Creds, d.ns, "mmreplicate "+d.cfg.Host, d.log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second), jetstream.WithPublishAsyncMaxPending(64))
	if err != nil {
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	return nc, js, nil
}

// lockDataDir keeps a second daemon off the same journal.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data_dir %s is in use by another mmreplicate run", dir)
		}
		return nil, fmt.Errorf("data_dir %s: lock: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// newWatcher prepares the watcher of sources (at start and on reload).
func (d *daemon) newWatcher(sources []config.Source) error {
	w, err := watcher.New(watcher.Options{Sources: sources, Journal: d.j,
		StateFile: filepath.Join(d.cfg.DataDir, "watch-state.json"), Ignore: []string{d.cfg.DataDir}, Log: d.log,
		Secrets: d.cfg.Secrets.Action})
	if err != nil {
		return err
	}
	d.watchMu.Lock()
	d.watch = w
	d.watchMu.Unlock()
	return nil
}

func (d *daemon) watcher() *watcher.Watcher {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	return d.watch
}

func (d *daemon) startWatcher(ctx context.Context, ready func()) chan error {
	done := make(chan error, 1)
	w := d.watcher()
	go func() { done <- w.Run(ctx, ready) }()
	return done
}

// reloadable reads the config again and says whether its sources can be taken over. Only
// sources are reloaded; everything else needs a restart, which the log says.
func (d *daemon) reloadable() bool {
	cfg, err := config.Load(d.cfg.Path)
	if err == nil {
		err = cfg.CheckSources()
	}
	if err != nil {
		d.log.Error("SIGHUP: config refused; keeping the running one", "err", err)
		return false
	}
	if cfg.Host != d.cfg.Host || cfg.DataDir != d.cfg.DataDir || !reflect.DeepEqual(cfg.S3, d.cfg.S3) || cfg.NATS != d.cfg.NATS {
		d.log.Warn("SIGHUP: host, data_dir, s3 and nats changes need a restart; reloading sources only")
	}
	d.pending = cfg.Sources
	return true
}

// reload swaps in the sources read by reloadable. The old watcher has journaled what it
// saw before it stopped, and the new one starts with a full scan, so nothing is lost in
// between.
func (d *daemon) reload() error {
	if err := d.newWatcher(d.pending); err != nil {
		return err
	}
	d.cfg.Sources = d.pending
	d.log.Info("SIGHUP: sources reloaded", "sources", len(d.pending))
	return nil
}

// lastStored checks a store and returns the newest sequence number and time it holds for
// host.
func lastStored(ctx context.Context, st objstore.Store, host string) (uint64, time.Time, error) {
	if err := st.Check(ctx); err != nil {
		return 0, time.Time{}, err
	}
	return s3sink.Last(ctx, st, host)
}

// journalExists reports whether a journal folder already holds segments.
func journalExists(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	return len(m) > 0
}

// addGitSink sets up the hourly commits into the data repository.
func (d *daemon) addGitSink(ctx context.Context, stream jetstream.Stream) error {
	g := d.cfg.Git
	sink, err := gitsink.New(gitsink.Options{Repo: g.Repo, Remote: g.Remote, Interval: g.Interval,
		StateDir: filepath.Join(d.cfg.DataDir, "git"), Host: d.cfg.Host, Log: d.log.With("component", "git"),
		DB: gitsink.DBFuncs{
			ApplyPagesFunc: func(img *os.File, data []byte) error {
				tx, err := sqlite.DecodeTxn(data)
				if err != nil {
					return err
				}
				return sqlite.Apply(img, tx)
			},
			FinalizeFunc: sqlite.Finalize,
		}})
	if err != nil {
		return fmt.Errorf("git: %w", err)
	}
	cons, err := stream.Consumer(ctx, natsbus.ConsumerName(d.cfg.Host, "git"))
	if err != nil {
		return fmt.Errorf("nats: consumer git: %w", err)
	}
	d.git = sink
	after := sink.AppliedSeq()
	if after == 0 {
		if after, err = startOfStream(ctx, stream); err != nil {
			return err
		}
	}
	d.workers = append(d.workers, &sinks.Worker{Sink: sink, Consumer: cons, Interval: 200 * time.Millisecond, MaxBytes: 8 << 20,
		Log: d.log.With("component", "sink", "sink", "git"), StartAfter: after})
	d.targets = append(d.targets, g.Repo)
	return nil
}

// s3Worker builds the sink and worker of one S3 target. A target that did not answer
// (down) gets its starting point once it does.
func s3Worker(ctx context.Context, cfg *config.Config, stream jetstream.Stream, t config.S3Target, store objstore.Store,
	startAfter uint64, down bool, log *slog.Logger) (*sinks.Worker, *s3sink.Sink, error) {
	name := "s3-" + t.Name
	cons, err := stream.Consumer(ctx, natsbus.ConsumerName(cfg.Host, name))
	if err != nil {
		return nil, nil, fmt.Errorf("nats: consumer %s: %w", name, err)
	}
	log = log.With("component", "sink", "sink", name)
	sink := &s3sink.Sink{Store: store, Host: cfg.Host, Target: t.Name, ManifestEvery: t.ManifestInterval, Log: log}
	if !down && startAfter == 0 {
		if startAfter, err = startOfStream(ctx, stream); err != nil {
			return nil, nil, err
		}
	}
	manifests := 0.0
	if t.ManifestInterval > 0 {
		manifests = cost.Month.Seconds() / t.ManifestInterval.Seconds()
	}
	w := &sinks.Worker{Sink: sink, Consumer: cons, Interval: t.FlushInterval, MaxBytes: int(t.BatchBytes), Log: log, StartAfter: startAfter,
		Budget: cost.NewBucket(t.Budget.PutsPerMonth(), manifests, time.Now()), Pricing: t.Budget.Pricing, Reserve: manifests}
	w.Resync = func(ctx context.Context) (uint64, error) {
		seq, _, err := lastStored(ctx, store, cfg.Host)
		if err == nil && seq >= w.StoredSeq()+1 {
			err = sink.Open(ctx) // the index too: another worker wrote segments
		}
		return seq, err
	}
	if down {
		w.Prepare = func(ctx context.Context) (uint64, error) {
			seq, _, err := lastStored(ctx, store, cfg.Host)
			if err == nil && seq == 0 {
				seq, err = startOfStream(ctx, stream)
			}
			if err == nil {
				err = sink.Open(ctx)
			}
			return seq, err
		}
	} else if err := sink.Open(ctx); err != nil {
		return nil, nil, err
	}
	return w, sink, nil
}

// startOfStream is where a sink with nothing stored starts: just before the oldest record
// the stream still holds.
func startOfStream(ctx context.Context, stream jetstream.Stream) (uint64, error) {
	first, err := natsbus.FirstRecord(ctx, stream)
	if first == 0 || err != nil {
		return 0, err
	}
	return first - 1, nil
}
