package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/journal/natsbus"
)

// CaptureStatus says whether the watcher is journaling changes, and if not, why.
type CaptureStatus struct {
	Paused bool      `json:"paused"`
	Reason string    `json:"reason,omitempty"` // e.g. "capture paused: disk full"
	Since  time.Time `json:"since,omitzero"`
}

// ReasonDiskFull is the pause reason while the data_dir's file system has no room for
// the journal.
const ReasonDiskFull = "capture paused: disk full"

// diskState follows the data_dir's free space and the reason capture is paused.
type diskState struct {
	mu      sync.Mutex
	free    int64 // bytes available to the daemon in data_dir, -1 when unknown
	reason  string
	since   time.Time
	logged  time.Time
	recover time.Time // last failed journal recovery, to space the next try
}

// diskCheckEvery is how often the daemon looks at data_dir's free space, tries to bring
// back a stopped journal and updates the pause reason.
const diskCheckEvery = 2 * time.Second

// diskLogEvery is how often a pause is repeated in the log while it lasts.
const diskLogEvery = time.Minute

// streamOptions is how the host's stream is kept: in memory on the embedded server (the
// journal is the durable copy; a stream on the same disk would compete with it for
// space and refuse to start on a small one), as configured on an external server.
func (d *daemon) streamOptions() []natsbus.StreamOption {
	if d.ns != nil {
		return []natsbus.StreamOption{natsbus.InMemory()}
	}
	return nil
}

// streamBytes is the stream's size cap: nats.max_bytes, within the embedded server's
// memory budget when the stream lives there.
func (d *daemon) streamBytes() int64 {
	if d.ns != nil {
		return min(d.cfg.NATS.MaxBytes, natsbus.EmbeddedStreamBytes)
	}
	return d.cfg.NATS.MaxBytes
}

// freeBytes is the space available to an unprivileged writer on dir's file system.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// diskLoop keeps the disk state current until ctx ends: free space, a stopped journal
// recovered as soon as it can be, and a pause said once per minute in the log while it
// lasts. Uploads are not its business: the publisher and sinks go on meanwhile.
func (d *daemon) diskLoop(ctx context.Context) {
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		d.checkDisk()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *daemon) checkDisk() {
	free, ferr := freeBytes(d.cfg.DataDir)
	if d.j.Stopped() != nil {
		if err := d.j.Recover(); err != nil {
			d.disk.mu.Lock()
			if time.Since(d.disk.recover) > diskLogEvery {
				d.log.Error("journal still stopped; recovery retried", "err", err)
				d.disk.recover = time.Now()
			}
			d.disk.mu.Unlock()
		}
	}
	reason := d.pauseReason()
	d.disk.mu.Lock()
	defer d.disk.mu.Unlock()
	d.disk.free = free
	if ferr != nil {
		d.disk.free = -1
	}
	now := time.Now()
	switch {
	case reason == "" && d.disk.reason != "":
		d.log.Info("capture resumed", "was", d.disk.reason, "paused_for", now.Sub(d.disk.since).Round(time.Second), "data_dir_free_bytes", free)
		d.disk.reason, d.disk.since = "", time.Time{}
	case reason != "":
		if d.disk.reason == "" {
			d.disk.since, d.disk.logged = now, time.Time{}
		}
		d.disk.reason = reason
		if now.Sub(d.disk.logged) >= diskLogEvery {
			d.log.Error(reason, "data_dir", d.cfg.DataDir, "data_dir_free_bytes", free, "journal_bytes", d.j.Size(),
				"since", d.disk.since.Format(time.RFC3339), "uploads", "go on from the journal while a target answers")
			d.disk.logged = now
		}
	}
}

// pauseReason says why capture is paused, "" when it is not.
func (d *daemon) pauseReason() string {
	if err := d.j.Stopped(); err != nil {
		if journal.DiskFull(err) {
			return ReasonDiskFull
		}
		return "capture paused: journal stopped after a failed write: " + err.Error()
	}
	w := d.watcher()
	if w == nil {
		return ""
	}
	err := w.Paused()
	switch {
	case err == nil:
		return ""
	case journal.DiskFull(err):
		return ReasonDiskFull
	case errors.Is(err, journal.ErrFull):
		return "capture paused: journal full (journal.max_bytes)"
	case errors.Is(err, journal.ErrStopped):
		return "capture paused: journal stopped after a failed write"
	default:
		return "capture paused: " + err.Error()
	}
}

// diskStatus is the status and metrics view of the disk state.
func (d *daemon) diskStatus() (free int64, c CaptureStatus) {
	d.disk.mu.Lock()
	defer d.disk.mu.Unlock()
	return d.disk.free, CaptureStatus{Paused: d.disk.reason != "", Reason: d.disk.reason, Since: d.disk.since}
}

// memoryStreamStart makes the publisher begin at the journal's oldest record when the
// stream lives in memory and the start points of the sinks are not all known (a target
// did not answer at start): the stream came back empty, and the publish cursor only
// says what an earlier stream held. Sinks drop what they have stored already.
func (d *daemon) memoryStreamStart(down []bool) {
	if d.ns == nil {
		return
	}
	unknown := d.pub.StartAt == 0
	for _, dn := range down {
		unknown = unknown || dn
	}
	if unknown {
		d.pub.StartAt = d.j.FirstSeq()
	}
}
