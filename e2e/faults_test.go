package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/app"
	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/internal/faultproxy"
	"github.com/mmreplicate/mmreplicate/internal/testenv"
	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore"
	s3store "github.com/mmreplicate/mmreplicate/objstore/s3"
	"github.com/mmreplicate/mmreplicate/segment"
)

// startProxy puts a fault-injecting proxy in front of the S3 server. maxHold bounds the
// Timeout mode, so that a client without a request timeout cannot hang the test.
func startProxy(t *testing.T, s3 *testenv.S3Server, maxHold time.Duration) *faultproxy.Proxy {
	t.Helper()
	px, err := faultproxy.New(s3.Endpoint, faultproxy.Options{MaxHold: maxHold})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}

// viaProxy points the host's S3 endpoint at the proxy: the daemon, restore and verify
// then all go through it.
func (h *host) viaProxy(px *faultproxy.Proxy) {
	h.t.Helper()
	cfg, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	old := "endpoint: " + h.s3.Endpoint + "\n"
	if !strings.Contains(string(cfg), old) {
		h.t.Fatalf("config has no %q", old)
	}
	cfg = []byte(strings.Replace(string(cfg), old, "endpoint: "+px.URL()+"\n", 1))
	if err := os.WriteFile(h.config, cfg, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// status reads the daemon's /status.
func (h *host) status() (app.Status, error) {
	var s app.Status
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + h.http + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, err
	}
	if len(s.Sinks) == 0 {
		return s, errors.New("/status lists no sink")
	}
	return s, nil
}

// pollStatus polls /status until ok or timeout, and returns the last status read and
// whether ok held.
func (h *host) pollStatus(timeout time.Duration, ok func(app.Status) bool) (app.Status, bool) {
	deadline := time.Now().Add(timeout)
	var last app.Status
	for {
		s, err := h.status()
		if err == nil {
			last = s
			if ok(s) {
				return s, true
			}
		}
		if time.Now().After(deadline) {
			return last, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustStatus reads /status or fails the test.
func (h *host) mustStatus() app.Status {
	h.t.Helper()
	s, err := h.status()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// hostName is the host name the daemon writes under.
func (h *host) hostName() string {
	h.t.Helper()
	cfg, err := config.Load(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg.Host
}

// directStore opens the host's bucket on the S3 server itself, not through any proxy.
func (h *host) directStore() objstore.Store {
	h.t.Helper()
	st, err := s3store.New(context.Background(), s3store.Options{Bucket: h.bucket, Prefix: "prod",
		Endpoint: h.s3.Endpoint, AccessKeyID: h.s3.AccessKey, SecretAccessKey: h.s3.SecretKey})
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// segments lists the host's segment objects by their keys alone.
func segments(t *testing.T, st objstore.Store, host string) []segment.Info {
	t.Helper()
	var out []segment.Info
	err := st.List(context.Background(), segment.Prefix(host), func(o objstore.ObjectInfo) error {
		in, err := segment.ParseKey(o.Key)
		if err != nil {
			return err
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		t.Fatalf("list segments: %v", err)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].FirstSeq != out[b].FirstSeq {
			return out[a].FirstSeq < out[b].FirstSeq
		}
		return out[a].LastSeq < out[b].LastSeq
	})
	return out
}

// checkSegments asserts that the segments hold every sequence number from 1 to the last
// without a gap. Distinct keys must not overlap unless allowOverlap; where they do, the
// records both hold must be identical (the same record stored twice, never two different
// records under one number). It returns the number of overlapping pairs.
func checkSegments(t *testing.T, st objstore.Store, segs []segment.Info, allowOverlap bool) int {
	t.Helper()
	if len(segs) == 0 {
		t.Fatal("no segments stored")
	}
	if segs[0].FirstSeq != 1 {
		t.Errorf("first segment %s starts at %d, want 1", segs[0].Key, segs[0].FirstSeq)
	}
	overlaps := 0
	var prev segment.Info
	var next uint64 = 1
	for i, s := range segs {
		if s.FirstSeq > next {
			t.Errorf("records %d-%d missing before %s", next, s.FirstSeq-1, s.Key)
		}
		if i > 0 && s.FirstSeq < next {
			overlaps++
			if !allowOverlap {
				t.Errorf("segments overlap: %s and %s", prev.Key, s.Key)
			} else {
				sameRecords(t, st, prev, s)
			}
		}
		next = max(next, s.LastSeq+1)
		prev = s
	}
	return overlaps
}

// sameRecords asserts that two overlapping segments agree on the records they share.
func sameRecords(t *testing.T, st objstore.Store, a, b segment.Info) {
	t.Helper()
	read := func(in segment.Info) map[uint64]journal.Record {
		body, err := st.Get(context.Background(), in.Key)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := segment.Decode(body)
		if err != nil {
			t.Fatalf("%s: %v", in.Key, err)
		}
		out := map[uint64]journal.Record{}
		for _, r := range recs {
			out[r.Seq] = r
		}
		return out
	}
	ra, rb := read(a), read(b)
	for seq, r := range ra {
		if o, ok := rb[seq]; ok && !reflect.DeepEqual(r, o) {
			t.Errorf("record %d differs between %s and %s", seq, a.Key, b.Key)
		}
	}
}

// linesOnce asserts that no file of a restored tree holds the same line twice (every line
// the writers append is unique).
func linesOnce(t *testing.T, got map[string]string) int {
	t.Helper()
	n := 0
	for name, content := range got {
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
			if line == "" {
				continue
			}
			if seen[line] {
				t.Fatalf("%s: line stored twice: %s", name, line)
			}
			seen[line] = true
			n++
		}
	}
	return n
}

// verifyStore runs `mmreplicate verify`, which reads every object back and checks it.
func (h *host) verifyStore() {
	h.t.Helper()
	if code, out, errs := mmr(h.t, "verify", "--config", h.config); code != 0 {
		h.t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
}

// waitRestored polls restore --at latest until it equals want, like waitStored, and on
// failure says why: the last restore's own output, the daemon's status and log.
func (h *host) waitRestored(d *daemon, want map[string]string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var got map[string]string
	var last string
	for time.Now().Before(deadline) {
		to := filepath.Join(h.t.TempDir(), "poll")
		code, out, errs := mmr(h.t, "restore", "--config", h.config, "--at", "latest", "--to", to)
		last = fmt.Sprintf("exit %d: %s%s", code, out, errs)
		if code == 0 {
			got = tree(h.t, to)
			if equal(got, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s, err := h.status()
	h.t.Fatalf("store never reached the expected state: %s\nlast restore: %s\nstatus: %+v (%v)\n%s", diff(got, want), last, s, err, d.out)
}

// finalCheck restores latest (after the daemon stopped), asserts that it equals want and
// that no line is there twice, and returns the number of lines.
func (h *host) finalCheck(want map[string]string) int {
	h.t.Helper()
	got := tree(h.t, h.restore("latest"))
	if d := diff(got, want); d != "" {
		h.t.Fatalf("restore latest differs from the source: %s", d)
	}
	return linesOnce(h.t, got)
}

// haltOnExit stops the writer when the test ends early, so that it does not write into
// folders being removed.
func haltOnExit(t *testing.T, w *writer) {
	t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			w.halt()
		}
	})
}

// TestS3Faults runs the daemon against an S3 server that answers 500, 503 SlowDown,
// resets connections, drops answers to requests it applied, and stalls, phase after
// phase under a steady append load, then fails every request for 20 s. After each phase
// the sink must catch up; at the end every line is restored exactly once and the stored
// segments hold every sequence number exactly once.
func TestS3Faults(t *testing.T) {
	began := time.Now()
	s3 := testenv.StartS3(t)
	// Timeouts are held for at most 3 s: long enough to see whether the daemon gives up
	// by itself, short enough for the test's budget.
	px := startProxy(t, s3, 3*time.Second)
	h := newHost(t, hostOpts{s3: s3})
	h.viaProxy(px)
	d := h.start()
	w := startWriter(h)
	haltOnExit(t, w)
	time.Sleep(500 * time.Millisecond)

	phases := []struct {
		name    string
		inject  func()
		minFail int64 // failed requests that make the phase count
	}{
		{"500 InternalError", func() { px.SetMode(faultproxy.Error500) }, 6},
		{"503 SlowDown", func() { px.SetMode(faultproxy.Error503SlowDown) }, 6},
		{"connection reset", func() { px.SetMode(faultproxy.Reset) }, 6},
		// Stored by the server, reported failed to the daemon: the retry must rewrite
		// the same key, not store the records again under another.
		{"answer dropped after the PUT was applied", func() { px.FailNext(3, faultproxy.DropResponse) }, 3},
		{"server stalls", func() { px.SetMode(faultproxy.Timeout) }, 2},
	}
	for _, ph := range phases {
		before := px.Stats()
		errsBefore := h.mustStatus().Sinks[0].Errors
		ph.inject()
		deadline := time.Now().Add(20 * time.Second)
		for px.Stats().Failed-before.Failed < ph.minFail && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		px.SetMode(faultproxy.Pass)
		failed := px.Stats().Failed - before.Failed
		if failed < ph.minFail {
			t.Fatalf("%s: only %d requests failed in 20 s; the daemon stopped sending; status %+v\n%s", ph.name, failed, h.mustStatus(), d.out)
		}
		// Recovery: everything journaled before the fault ended gets stored.
		ended := time.Now()
		target := h.mustStatus().Journal.LastSeq
		s, ok := h.pollStatus(60*time.Second, func(s app.Status) bool { return s.Sinks[0].StoredSeq >= target })
		if !ok {
			t.Fatalf("%s: the sink did not catch up within 60 s after the fault ended: stored %d, want %d\n%s", ph.name, s.Sinks[0].StoredSeq, target, d.out)
		}
		t.Logf("%s: %d requests failed, %d sink write errors, caught up %s after the fault ended", ph.name, failed,
			s.Sinks[0].Errors-errsBefore, time.Since(ended).Round(10*time.Millisecond))
	}
	st := px.Stats()
	t.Logf("timeouts: the daemon gave up on %d held requests itself; the proxy cut %d after holding them 3 s", st.GaveUp, st.HeldToLimit)

	// Every request fails for 20 s, cycling through the failure kinds.
	before := px.Stats()
	stored := h.mustStatus().Sinks[0].StoredSeq
	outage := time.Now()
	kinds := []faultproxy.Mode{faultproxy.Error503SlowDown, faultproxy.Error500, faultproxy.Reset, faultproxy.Error503SlowDown}
	for _, m := range kinds {
		px.FailRatio(1, m)
		time.Sleep(5 * time.Second)
	}
	during := h.mustStatus()
	px.FailRatio(0, faultproxy.Pass)
	failed := px.Stats().Failed - before.Failed
	t.Logf("total outage of %s: %d requests in a row failed (%.1f/s); sink errors %d", time.Since(outage).Round(time.Millisecond),
		failed, float64(failed)/time.Since(outage).Seconds(), during.Sinks[0].Errors)
	if during.Sinks[0].StoredSeq != stored {
		t.Errorf("the sink reported records %d-%d stored while every request failed", stored+1, during.Sinks[0].StoredSeq)
	}
	// The worker backs off up to 10 s between attempts of 3 SDK tries each, so 20 s of
	// failures are about 15-25 requests, not hundreds; at least 10 shows that it kept
	// retrying through the whole outage.
	if failed < 10 {
		t.Errorf("only %d requests during a 20 s outage: the daemon stopped retrying", failed)
	}

	time.Sleep(500 * time.Millisecond)
	w.halt()
	s, ok := h.pollStatus(60*time.Second, func(s app.Status) bool { return s.Sinks[0].BacklogRecords == 0 })
	if !ok {
		t.Fatalf("backlog did not drain within 60 s: %+v\n%s", s.Sinks[0], d.out)
	}
	want := h.sourceState()
	h.waitRestored(d, want, 30*time.Second)
	d.stop(t)
	lines := h.finalCheck(want)
	segs := segments(t, h.directStore(), h.hostName())
	checkSegments(t, h.directStore(), segs, false)
	h.verifyStore()
	t.Logf("%d lines restored exactly once from %d segments (last seq %d), no overlap or gap; proxy: %s; %s in all",
		lines, len(segs), segs[len(segs)-1].LastSeq, px.Stats(), time.Since(began).Round(time.Second))
}

// spawn starts `mmreplicate run` without waiting for it to be ready.
func (h *host) spawn() *daemon {
	h.t.Helper()
	d := &daemon{cmd: exec.Command(binary, "run", "--config", h.config), out: &syncBuf{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { d.exit = d.cmd.Wait(); close(d.done) }()
	h.t.Cleanup(func() { d.kill() })
	return d
}

func (d *daemon) ready() bool { return strings.Contains(d.out.String(), "objects land in") }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// TestKill9Loop kills the daemon with SIGKILL at 50+ random moments under a steady append
// load: half of them 100-600 ms after it said it was running, half 100-600 ms after the
// process started (so some land in start-up: journal repair, NATS recovery, index load).
// A final clean run must then store every line exactly once.
func TestKill9Loop(t *testing.T) {
	began := time.Now()
	s3 := testenv.StartS3(t)
	h := newHost(t, hostOpts{s3: s3})
	w := startWriter(h)
	haltOnExit(t, w)
	deadline := time.Now().Add(90 * time.Second)
	kills, inStartup := 0, 0
	for kills < 55 && time.Now().Before(deadline) {
		d := h.spawn()
		if kills%2 == 0 {
			limit := time.Now().Add(30 * time.Second)
			for !d.ready() && !d.exited() && time.Now().Before(limit) {
				time.Sleep(10 * time.Millisecond)
			}
			if !d.ready() {
				d.kill()
				t.Fatalf("life %d: daemon not running after 30 s (exit %v):\n%s", kills+1, d.exit, d.out)
			}
		}
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		if d.exited() {
			t.Fatalf("life %d: daemon exited by itself (%v):\n%s", kills+1, d.exit, d.out)
		}
		if !d.ready() {
			inStartup++
		}
		d.kill()
		kills++
	}
	if kills < 50 {
		t.Fatalf("only %d kills in 90 s", kills)
	}
	d := h.start()
	time.Sleep(500 * time.Millisecond)
	w.halt()
	want := h.sourceState()
	h.waitRestored(d, want, 60*time.Second)
	d.stop(t)
	lines := h.finalCheck(want)
	st := h.directStore()
	segs := segments(t, st, h.hostName())
	overlaps := checkSegments(t, st, segs, true)
	h.verifyStore()
	t.Logf("%d kills (%d during start-up), then a clean run: %d lines written, %d restored exactly once; %d segments, %d overlapping pairs (identical records); %s in all",
		kills, inStartup, w.lines.Load(), lines, len(segs), overlaps, time.Since(began).Round(time.Second))
}

// TestJournalDiskFull caps the journal at 200,000 bytes and makes S3 refuse every request
// so that the journal cannot drain. Appends go on until the journal is full: the daemon
// must say so (status and one clear log line), keep the lines written meanwhile pending,
// and once S3 answers again drain the journal, capture those lines and store everything
// exactly once. A restart afterwards proves the journal was not damaged.
func TestJournalDiskFull(t *testing.T) {
	began := time.Now()
	s3 := testenv.StartS3(t)
	px := startProxy(t, s3, 3*time.Second)
	h := newHost(t, hostOpts{s3: s3, extra: "journal:\n  max_bytes: 200000\n"})
	h.viaProxy(px)
	d := h.start()
	n := 0
	line := func() string {
		n++
		return fmt.Sprintf(`{"n":%d,"text":"%s"}`+"\n", n, strings.Repeat("f", 100+n%100))
	}
	for range 30 {
		h.appendLine(files[n%len(files)], line())
	}
	h.waitRestored(d, h.sourceState(), 20*time.Second)

	px.SetMode(faultproxy.Error503SlowDown)
	deadline := time.Now().Add(60 * time.Second)
	var s app.Status
	for {
		for range 20 {
			h.appendLine(files[n%len(files)], line())
		}
		time.Sleep(20 * time.Millisecond)
		s = h.mustStatus()
		if s.Journal.Full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal never full after %d lines: %+v", n, s.Journal)
		}
	}
	fullAt := n
	t.Logf("journal full after %d lines: %d bytes on disk, last seq %d", n, s.Journal.Bytes, s.Journal.LastSeq)
	if s.Journal.Bytes > 200000 {
		t.Errorf("journal holds %d bytes, over its 200000 cap", s.Journal.Bytes)
	}
	logged := func() bool { return strings.Contains(d.out.String(), "journal full") }
	for limit := time.Now().Add(5 * time.Second); !logged() && time.Now().Before(limit); {
		time.Sleep(50 * time.Millisecond)
	}
	var errLine string
	for _, l := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(l, "journal full") {
			errLine = l
			break
		}
	}
	if errLine == "" || !strings.Contains(errLine, "ERROR") {
		t.Fatalf("no error line naming the full journal in the log:\n%s", d.out)
	}
	t.Logf("log: %s", errLine)
	// Lines written while full stay pending in the watcher.
	for range 200 {
		h.appendLine(files[n%len(files)], line())
	}
	time.Sleep(time.Second)
	if s = h.mustStatus(); !s.Journal.Full {
		t.Fatalf("journal no longer full while S3 is still down: %+v", s.Journal)
	}

	px.SetMode(faultproxy.Pass)
	recovered := time.Now()
	s, ok := h.pollStatus(60*time.Second, func(s app.Status) bool { return !s.Journal.Full && s.Sinks[0].BacklogRecords == 0 })
	if !ok {
		t.Fatalf("60 s after S3 came back the journal has not recovered: full %v, %d bytes on disk (cap 200000), last seq %d, stored seq %d, backlog %d; %d lines written since it filled are not captured",
			s.Journal.Full, s.Journal.Bytes, s.Journal.LastSeq, s.Sinks[0].StoredSeq, s.Sinks[0].BacklogRecords, n-fullAt)
	}
	t.Logf("recovered %s after S3 came back: %d bytes on disk", time.Since(recovered).Round(10*time.Millisecond), s.Journal.Bytes)
	want := h.sourceState()
	h.waitRestored(d, want, 30*time.Second)
	d.stop(t)
	if !strings.Contains(d.out.String(), "journal accepts appends again") {
		t.Errorf("the log does not say the journal recovered")
	}
	// The journal reopens (every record's CRC checked) and takes new lines.
	d = h.start()
	h.appendLine(files[0], line())
	want = h.sourceState()
	h.waitRestored(d, want, 20*time.Second)
	d.stop(t)
	lines := h.finalCheck(want)
	h.verifyStore()
	t.Logf("%d lines restored exactly once; proxy: %s; %s in all", lines, px.Stats(), time.Since(began).Round(time.Second))
}

// TestInotifyOverflow: a storm of 50,000 file operations (creates, appends, removes over
// 400 files in 20 folders, each at least one inotify event), with the daemon on default
// settings. Appends go through files kept open, one write each, so the storm is fast.
// The daemon keeps up with the first half; during the second half it is frozen (SIGSTOP,
// as a daemon starved of CPU or stuck in I/O would be), so more events pile up than the
// kernel queue holds (16,384 by default) and it overflows. The rescan that follows must
// make the store match the source anyway.
func TestInotifyOverflow(t *testing.T) {
	began := time.Now()
	h := newHost(t, hostOpts{})
	d := h.start()
	const nFiles, nOps = 400, 50000
	path := func(i int) string { return filepath.Join(h.src, fmt.Sprintf("storm/d%02d/f%03d.jsonl", i%20, i)) }
	open := map[int]*os.File{}
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	created, appended, removed := 0, 0, 0
	deadline := time.Now().Add(60 * time.Second)
	stormStart := time.Now()
	ops := 0
	frozen := false
	for ; ops < nOps && time.Now().Before(deadline); ops++ {
		if ops == nOps/2 {
			if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			frozen = true
		}
		i := rand.IntN(nFiles)
		p := path(i)
		f := open[i]
		var err error
		switch {
		case f == nil:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
			}
			if err == nil {
				open[i] = f
				_, err = fmt.Fprintf(f, `{"op":%d,"new":%d}`+"\n", ops, i)
			}
			created++
		case rand.IntN(12) == 0:
			f.Close()
			delete(open, i)
			err = os.Remove(p)
			removed++
		default:
			_, err = fmt.Fprintf(f, `{"op":%d,"file":%d}`+"\n", ops, i)
			appended++
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	storm := time.Since(stormStart)
	if frozen {
		if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if ops < nOps {
		t.Fatalf("only %d operations in 60 s", ops)
	}
	want := h.sourceState()
	settle := time.Now()
	h.waitRestored(d, want, 90*time.Second)
	s := h.mustStatus()
	metric := ""
	if resp, err := http.Get("http://" + h.http + "/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "mmreplicate_inotify_overflows_total ") {
				metric = sc.Text()
			}
		}
		resp.Body.Close()
	}
	d.stop(t)
	lines := h.finalCheck(want)
	if s.Overflows == 0 {
		t.Log("no inotify overflow happened: the rescan after one was not exercised")
	}
	t.Logf("%d operations in %s (%d creates, %d appends, %d removes); store matched %s later; inotify_overflows %d (metrics: %q); %d files, %d lines restored exactly once; %s in all",
		ops, storm.Round(time.Millisecond), created, appended, removed, time.Since(settle).Round(10*time.Millisecond),
		s.Overflows, metric, len(want), lines, time.Since(began).Round(time.Second))
}

// TestNATSRestartLoop restarts the external NATS server five times at random moments,
// each time down for a random 0.1-3 s, while lines are appended.
func TestNATSRestartLoop(t *testing.T) {
	began := time.Now()
	s3 := testenv.StartS3(t)
	port := testenv.FreePort(t)
	store := t.TempDir()
	ns := startNATS(t, port, store)
	t.Cleanup(func() { ns.Shutdown() })
	h := newHost(t, hostOpts{s3: s3, natsURL: fmt.Sprintf("nats://127.0.0.1:%d", port)})
	d := h.start()
	w := startWriter(h)
	haltOnExit(t, w)
	var down time.Duration
	for range 5 {
		time.Sleep(time.Duration(300+rand.IntN(1700)) * time.Millisecond)
		ns.Shutdown()
		ns.WaitForShutdown()
		pause := time.Duration(100+rand.IntN(2900)) * time.Millisecond
		time.Sleep(pause)
		down += pause
		ns = startNATS(t, port, store)
	}
	time.Sleep(time.Second)
	w.halt()
	want := h.sourceState()
	h.waitRestored(d, want, 60*time.Second)
	s := h.mustStatus()
	d.stop(t)
	lines := h.finalCheck(want)
	st := h.directStore()
	segs := segments(t, st, h.hostName())
	overlaps := checkSegments(t, st, segs, true)
	t.Logf("5 restarts, NATS down %s in all; %d publish errors; %d lines restored exactly once; %d segments, %d overlapping pairs (identical records); %s in all",
		down.Round(time.Millisecond), s.Journal.PublishErrors, lines, len(segs), overlaps, time.Since(began).Round(time.Second))
}
