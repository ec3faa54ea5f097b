// Package hostile crafts stores a careless or malicious writer could leave behind, with
// the product's own encoders (segments, manifests, blobs), for the tests of every reader:
// restore, drills and serve-s3 must write and read nothing outside their target, never
// panic, and name what they refuse.
//
// The cases assume this layout, which the tests build: one parent folder holding the
// target folder and a sibling "outside" folder (the sentinel, whose content must not
// change). Links point at the sentinel both by absolute path and by "../..".
package hostile

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
	"github.com/mmreplicate/mmreplicate/manifest"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/segment"
)

// T0 is the capture time of the first record of every case.
var T0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// Source is the source every well-formed record of the cases belongs to.
const Source = "sessions"

// Case is one crafted store.
type Case struct {
	Name string
	// Want are texts every reader's failure must contain: the object or path refused.
	Want []string
	// MayPass marks a case whose records a reader may ignore (they name no path it
	// writes): it passes when nothing leaks, whatever the exit status.
	MayPass bool
	// Pass marks a well-formed case built from hostile pieces: the reader must succeed.
	Pass bool
	// Build writes the case's objects for host into st; outside is the sentinel folder.
	Build func(ctx context.Context, st objstore.Store, host, outside string) error
}

// writer numbers records and stores them as segments.
type writer struct {
	ctx  context.Context
	st   objstore.Store
	host string
	seq  uint64
}

func (w *writer) at(i int) int64 { return T0.Add(time.Duration(i) * time.Second).UnixNano() }

// segment stores recs (numbered from the writer's next sequence number) as one segment.
func (w *writer) segment(recs ...journal.Record) error {
	for i := range recs {
		w.seq++
		recs[i].Seq = w.seq
		recs[i].Time = w.at(int(w.seq))
	}
	return w.st.Put(w.ctx, segment.Key(w.host, recs), segment.Encode(recs))
}

// blob stores data under the key of hash (its own hash unless forged).
func (w *writer) blob(hash [32]byte, data []byte) (journal.ChunkRef, error) {
	ref := journal.ChunkRef{Hash: hash, Size: uint32(len(data))}
	return ref, w.st.Put(w.ctx, manifest.BlobKey(ref.ID()), data)
}

// Append is an append record of the well-formed source.
func Append(path string, off int64, data string) journal.Record {
	return journal.Record{Op: journal.OpAppend, Source: Source, Path: path, Offset: off, Mode: 0o600, Data: []byte(data)}
}

func rec(op journal.Op, source, path string, data string) journal.Record {
	return journal.Record{Op: op, Source: source, Path: path, Mode: 0o755, Data: []byte(data)}
}

// good is the well-formed file every case holds beside its hostile records.
func good() journal.Record { return Append("good.jsonl", 0, "{\"ok\":true}\n") }

// segments builds a case from one segment of records.
func segments(recs ...journal.Record) func(context.Context, objstore.Store, string, string) error {
	return func(ctx context.Context, st objstore.Store, host, _ string) error {
		w := &writer{ctx: ctx, st: st, host: host}
		return w.segment(append([]journal.Record{good()}, recs...)...)
	}
}

// Cases returns every crafted store.
func Cases() []Case {
	return []Case{
		{Name: "dotdot-path", Want: []string{"../../escaped.jsonl"},
			Build: segments(Append("../../escaped.jsonl", 0, "x\n"))},
		{Name: "dotdot-inside-path", Want: []string{"a/../../../escaped.jsonl"},
			Build: segments(Append("a/../../../escaped.jsonl", 0, "x\n"))},
		{Name: "absolute-path", Want: []string{"abs.jsonl"},
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				return w.segment(good(), Append(filepath.ToSlash(filepath.Join(outside, "abs.jsonl")), 0, "x\n"))
			}},
		{Name: "nul-byte", Want: []string{`nul\x00.jsonl`},
			Build: segments(Append("nul\x00.jsonl", 0, "x\n"))},
		{Name: "folder-climbs-out", Want: []string{"../../escaped-dir"},
			Build: segments(rec(journal.OpDir, Source, "../../escaped-dir", ""))},
		{Name: "source-climbs-out", Want: []string{"../escaped.jsonl"},
			Build: segments(rec(journal.OpAppend, "..", "escaped.jsonl", "x\n"))},
		{Name: "source-with-slash", Want: []string{"x/../../escaped.jsonl"},
			Build: segments(rec(journal.OpAppend, "x/../..", "escaped.jsonl", "x\n"))},
		{Name: "link-out-then-file", Want: []string{Source + "/link/x.jsonl"},
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				return w.segment(good(), rec(journal.OpSymlink, Source, "link", outside), Append("link/x.jsonl", 0, "x\n"))
			}},
		{Name: "file-then-link-out", Want: []string{Source + "/link/x.jsonl"},
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				return w.segment(good(), Append("link/x.jsonl", 0, "x\n"), rec(journal.OpSymlink, Source, "link", outside))
			}},
		{Name: "relative-link-out-then-file", Want: []string{Source + "/rel/x.jsonl"},
			Build: segments(rec(journal.OpSymlink, Source, "rel", "../../outside"), Append("rel/x.jsonl", 0, "x\n"))},
		{Name: "link-out-then-folder-inside", Want: []string{Source + "/l2/sub"},
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				return w.segment(good(), rec(journal.OpSymlink, Source, "l2", outside), rec(journal.OpDir, Source, "l2/sub", ""))
			}},
		{Name: "link-folder-link", Want: []string{Source + "/d/x.jsonl"},
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				if err := w.segment(good(), rec(journal.OpSymlink, Source, "d", outside)); err != nil {
					return err
				}
				if err := w.segment(rec(journal.OpDir, Source, "d", ""), Append("d/x.jsonl", 0, "x\n")); err != nil {
					return err
				}
				return w.segment(rec(journal.OpSymlink, Source, "d", outside))
			}},
		// A link replaced by a folder: the folder is what the state holds, and the file
		// inside it is restored inside the target.
		{Name: "link-then-folder", Pass: true,
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				if err := w.segment(good(), rec(journal.OpSymlink, Source, "d", outside)); err != nil {
					return err
				}
				return w.segment(rec(journal.OpDir, Source, "d", ""), Append("d/y.jsonl", 0, "y\n"))
			}},
		{Name: "gigantic-file-size", Want: []string{Source + "/huge.bin"},
			Build: func(ctx context.Context, st objstore.Store, host, _ string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				data := []byte("small\n")
				ref, err := w.blob(sha256.Sum256(data), data)
				if err != nil {
					return err
				}
				r := rec(journal.OpFile, Source, "huge.bin", string(journal.EncodeChunks([]journal.ChunkRef{ref})))
				r.Offset = 1 << 50
				return w.segment(good(), r)
			}},
		{Name: "gigantic-chunk-size", Want: []string{Source + "/bigchunk.bin"},
			Build: func(ctx context.Context, st objstore.Store, host, _ string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				data := []byte("small\n")
				ref, err := w.blob(sha256.Sum256(data), data)
				if err != nil {
					return err
				}
				ref.Size = journal.MaxRecordSize
				r := rec(journal.OpFile, Source, "bigchunk.bin", string(journal.EncodeChunks([]journal.ChunkRef{ref})))
				r.Offset = journal.MaxRecordSize
				return w.segment(good(), r)
			}},
		{Name: "gigantic-append-offset", Want: []string{Source + "/gap.jsonl"},
			Build: segments(Append("gap.jsonl", 1<<50, "x\n"))},
		{Name: "short-chunk-id", MayPass: true,
			Build: segments(rec(journal.OpChunk, "", "a", "data"), rec(journal.OpChunk, "", "", "data"))},
		{Name: "non-hex-chunk-id", MayPass: true,
			Build: segments(rec(journal.OpChunk, "", strings.Repeat("zz", 32), "data"),
				rec(journal.OpChunk, "", "../../"+strings.Repeat("0", 58), "data"))},
		{Name: "chunk-hash-mismatch", Want: []string{manifest.BlobKey(fmt.Sprintf("%x", sha256.Sum256([]byte("expected\n"))))},
			Build: func(ctx context.Context, st objstore.Store, host, _ string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				ref, err := w.blob(sha256.Sum256([]byte("expected\n")), []byte("forged!!\n"))
				if err != nil {
					return err
				}
				r := rec(journal.OpFile, Source, "forged.txt", string(journal.EncodeChunks([]journal.ChunkRef{ref})))
				r.Offset = int64(ref.Size)
				return w.segment(good(), r)
			}},
		{Name: "missing-blob", Want: []string{Source + "/lost.txt", manifest.BlobKey(fmt.Sprintf("%x", sha256.Sum256([]byte("never stored\n"))))},
			Build: func(ctx context.Context, st objstore.Store, host, _ string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				ref := journal.ChunkRef{Hash: sha256.Sum256([]byte("never stored\n")), Size: 13}
				r := rec(journal.OpFile, Source, "lost.txt", string(journal.EncodeChunks([]journal.ChunkRef{ref})))
				r.Offset = int64(ref.Size)
				return w.segment(good(), r)
			}},
		{Name: "damaged-segment", Want: []string{"segments/"},
			Build: func(ctx context.Context, st objstore.Store, host, _ string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				if err := w.segment(good()); err != nil {
					return err
				}
				recs := []journal.Record{Append("later.jsonl", 0, "x\n")}
				recs[0].Seq, recs[0].Time = 2, w.at(2)
				body := segment.Encode(recs)
				body[len(body)/2] ^= 0xff
				return st.Put(ctx, segment.Key(host, recs), body)
			}},
		{Name: "manifest-hostile-keys", Want: []string{"m-escaped"},
			Build: func(ctx context.Context, st objstore.Store, host, outside string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				data := []byte("from the manifest\n")
				ref, err := w.blob(sha256.Sum256(data), data)
				if err != nil {
					return err
				}
				file := func() *manifest.Entry {
					return &manifest.Entry{Kind: manifest.KindFile, Size: int64(len(data)), Mode: 0o644, Time: w.at(1), Seq: 1,
						Chunks: []journal.ChunkRef{ref}}
				}
				x := manifest.New(host)
				x.Seq, x.Time = 1, w.at(1)
				x.Files[Source+"/ok.txt"] = file()
				x.Files[Source+"/../../m-escaped.jsonl"] = file()
				x.Files["../m-escaped-dir"] = &manifest.Entry{Kind: manifest.KindDir, Time: w.at(1), Seq: 1}
				x.Files[Source+"/ml"] = &manifest.Entry{Kind: manifest.KindSymlink, Target: outside, Time: w.at(1), Seq: 1}
				x.Files[Source+"/ml/x.txt"] = file()
				x.Files["/abs/"+Source+"/y.txt"] = file()
				body, err := manifest.Encode(x)
				if err != nil {
					return err
				}
				return st.Put(ctx, manifest.ObjectKey(x), body)
			}},
		{Name: "unknown-op", Want: []string{"segments/", "unknown op"},
			Build: func(ctx context.Context, st objstore.Store, host, _ string) error {
				w := &writer{ctx: ctx, st: st, host: host}
				if err := w.segment(good()); err != nil {
					return err
				}
				return w.segment(journal.Record{Op: 99, Source: Source, Path: "../../unknown.jsonl", Data: []byte("x\n")})
			}},
	}
}

// Snapshot describes every entry under dir (type, mode, size, content or link target),
// without following links, skipping the folders named in skip (absolute paths).
func Snapshot(dir string, skip ...string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, s := range skip {
			if p == s {
				return filepath.SkipDir
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + t
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[p] = desc
		return nil
	})
	return out, err
}

// Layout is a parent folder with the sentinel folder "outside" (holding one file) and
// the place of a target folder beside it.
type Layout struct {
	Parent, Outside, Target string
}

// NewLayout makes the sentinel under parent and names the target (not created).
func NewLayout(parent string) (Layout, error) {
	l := Layout{Parent: parent, Outside: filepath.Join(parent, "outside"), Target: filepath.Join(parent, "target")}
	if err := os.MkdirAll(l.Outside, 0o755); err != nil {
		return l, err
	}
	return l, os.WriteFile(filepath.Join(l.Outside, "sentinel.txt"), []byte("must not change\n"), 0o644)
}

// Diff says how two snapshots differ ("" when they are equal).
func Diff(before, after map[string]string) string {
	var b strings.Builder
	for k, v := range before {
		if w, ok := after[k]; !ok {
			fmt.Fprintf(&b, "removed %s\n", k)
		} else if w != v {
			fmt.Fprintf(&b, "changed %s: %s -> %s\n", k, v, w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(&b, "added %s\n", k)
		}
	}
	return b.String()
}
