package git

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/restore"
	"github.com/mmreplicate/mmreplicate/sinks/s3"
)

// Each commit equals what `restore --at <its boundary>` rebuilds from the S3 store fed the
// same batches, including the corners of the record semantics.
func TestSameAsRestore(t *testing.T) {
	e := newEnv(t)
	s := e.open(e.opts())
	defer s.Close()
	store, err := file.New(filepath.Join(e.dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s3sink := &s3.Sink{Store: store, Host: "vps-1", Target: "test", Log: discardLog()}
	if err := s3sink.Open(ctx); err != nil {
		t.Fatal(err)
	}
	b := newBuilder()
	batches := scenario(b)
	m := time.Minute
	corners := []journal.Record{
		b.appendTo(at(5*time.Hour+m), "s/gap.jsonl", 10, "no start\n"),                // bytes before it never came
		b.rec(at(5*time.Hour+2*m), journal.OpFile, "w/exec", 0, 0o755, nil),           // empty executable
		b.rec(at(5*time.Hour+3*m), journal.OpAppend, "w/exec", 0, 0, []byte("log\n")), // restarts as append, keeps the mode
		b.del(at(5*time.Hour+4*m), "workspaces/empty"),
		b.link(at(5*time.Hour+5*m), "w/dangling", "../nowhere"),
		b.appendTo(at(5*time.Hour+6*m), "sessions/agent-1/s.jsonl", 4, "at:4\n"), // cut short, then appended
	}
	corners = append(corners, b.file(at(5*time.Hour+7*m), "w/zero-mode", 0, []byte("0"))...)
	batches = append(batches, corners, []journal.Record{b.appendTo(at(6*time.Hour+m), "s/end.jsonl", 0, "end\n")})
	for _, batch := range batches {
		e.write(s, batch)
		if err := s3sink.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	log := gitLog(t, e.repo)
	if len(log) < 4 {
		t.Fatalf("only %d commits", len(log))
	}
	for _, c := range log {
		dst := t.TempDir()
		if _, err := restore.Run(ctx, restore.Options{Store: store, Host: "vps-1", At: c.when, To: dst, Out: io.Discard, Log: discardLog()}); err != nil {
			t.Logf("restore at %s: %v", c.when, err) // a gap is reported, the rest restored
		}
		sameState(t, c.subject, checkout(t, e.repo, c.hash), readTree(t, dst))
	}
}
