package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mmreplicate/mmreplicate/browse"
	"github.com/mmreplicate/mmreplicate/config"
	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/timespec"
)

// BrowseOptions are the flags shared by `ls`, `cat`, `diff`, `log` and `hosts`, which read
// the store alone.
type BrowseOptions struct {
	Config *config.Config
	Host   string // default: the config's host
	From   string // S3 target to read (default: the first that answers)
	JSON   bool
	Out    io.Writer
}

func (o BrowseOptions) open(ctx context.Context) (objstore.Store, string, error) {
	st, _, err := openFirstAnswering(ctx, o.Config, o.From)
	if err != nil {
		return nil, "", err
	}
	host := o.Host
	if host == "" {
		host = o.Config.Host
	}
	return st, host, nil
}

func parseWhen(flagName, s string) (browse.When, error) {
	t, latest, err := timespec.Parse(s, time.Now())
	if err != nil {
		return browse.When{}, fmt.Errorf("%w: %s: %w", ErrUsage, flagName, err)
	}
	return browse.When{At: t, Latest: latest}, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// incomplete is the error of an answer some of whose objects were missing or damaged.
func incomplete(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", browse.ErrIncomplete, strings.Join(problems, "; "))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

func fmtSize(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

func fmtMode(kind string, m uint32) string {
	mode := os.FileMode(m).Perm()
	switch kind {
	case "dir":
		mode |= os.ModeDir
	case "symlink":
		mode = os.ModeSymlink | 0o777 // a link's own bits mean nothing on Linux
	}
	return mode.String()
}

// LsOptions are the flags of `mmreplicate ls`.
type LsOptions struct {
	BrowseOptions
	At    string
	Globs []string
}

// Ls is `mmreplicate ls`.
func Ls(ctx context.Context, o LsOptions) error {
	if o.At == "" {
		o.At = timespec.Latest
	}
	w, err := parseWhen("--at", o.At)
	if err != nil {
		return err
	}
	st, host, err := o.open(ctx)
	if err != nil {
		return err
	}
	l, err := browse.Ls(ctx, st, host, w, o.Globs)
	if err != nil {
		return err
	}
	if o.JSON {
		if err := printJSON(o.Out, l); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(o.Out, 0, 0, 2, ' ', 0)
		for _, e := range l.Entries {
			name := e.Path
			if e.Kind == "symlink" {
				name += " -> " + e.Target
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Kind, fmtMode(e.Kind, e.Mode), fmtSize(e.Size), fmtTime(e.Time), name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return incomplete(l.Problems)
}

// CatOptions are the flags of `mmreplicate cat`.
type CatOptions struct {
	BrowseOptions
	At   string
	Path string // SOURCE/PATH
}

// Cat is `mmreplicate cat`: one file's bytes at a time, to Out.
func Cat(ctx context.Context, o CatOptions) error {
	if o.At == "" {
		return fmt.Errorf("%w: --at TIME is required: %s", ErrUsage, timeForms)
	}
	w, err := parseWhen("--at", o.At)
	if err != nil {
		return err
	}
	if o.Path == "" {
		return fmt.Errorf("%w: which file? give SOURCE/PATH", ErrUsage)
	}
	st, host, err := o.open(ctx)
	if err != nil {
		return err
	}
	return browse.Cat(ctx, st, host, w, strings.TrimPrefix(o.Path, "/"), "", o.Out)
}

const timeForms = "RFC 3339 (2026-11-26T18:00:00Z), latest, or a negative duration (-90s)"

// DiffOptions are the flags of `mmreplicate diff`.
type DiffOptions struct {
	BrowseOptions
	From1, To2 string // T1 and T2
	Globs      []string
}

// Diff is `mmreplicate diff`.
func Diff(ctx context.Context, o DiffOptions) error {
	t1, err := parseWhen("T1", o.From1)
	if err != nil {
		return err
	}
	t2, err := parseWhen("T2", o.To2)
	if err != nil {
		return err
	}
	if t1.Latest || (!t2.Latest && t1.At.After(t2.At)) {
		return fmt.Errorf("%w: T1 %s is after T2 %s: give the earlier instant first", ErrUsage, o.From1, o.To2)
	}
	st, host, err := o.open(ctx)
	if err != nil {
		return err
	}
	d, err := browse.Diff(ctx, st, host, t1, t2, o.Globs)
	if err != nil {
		return err
	}
	if o.JSON {
		if err := printJSON(o.Out, d); err != nil {
			return err
		}
	} else {
		for _, c := range d.Changes {
			mark := map[string]string{"added": "+", "removed": "-", "modified": "M"}[c.Change]
			var detail string
			switch c.Change {
			case "added":
				detail = fmtSize(c.NewSize) + " bytes"
			case "removed":
				detail = fmtSize(c.OldSize) + " bytes"
			default:
				detail = fmt.Sprintf("%s -> %s bytes", fmtSize(c.OldSize), fmtSize(c.NewSize))
				if c.OldSize >= 0 && c.NewSize >= 0 {
					detail += fmt.Sprintf(" (%+d)", c.Bytes)
				}
				if c.OldKind != "" {
					detail += fmt.Sprintf(", was %s", c.OldKind)
				}
			}
			if c.LinesAdded != nil {
				detail += fmt.Sprintf(", %d lines added", *c.LinesAdded)
			}
			if c.Rewritten {
				detail += ", rewritten"
			}
			fmt.Fprintf(o.Out, "%s %-8s %s  (%s)\n", mark, c.Kind, c.Path, detail)
		}
		if len(d.Changes) == 0 {
			fmt.Fprintf(o.Out, "no changes between %s and %s\n", d.From, d.To)
		}
	}
	return incomplete(d.Problems)
}

// LogOptions are the flags of `mmreplicate log`.
type LogOptions struct {
	BrowseOptions
	Path string // SOURCE/PATH
}

// Log is `mmreplicate log`.
func Log(ctx context.Context, o LogOptions) error {
	if o.Path == "" {
		return fmt.Errorf("%w: which file? give SOURCE/PATH", ErrUsage)
	}
	st, host, err := o.open(ctx)
	if err != nil {
		return err
	}
	l, err := browse.Log(ctx, st, host, strings.TrimPrefix(o.Path, "/"))
	if err != nil {
		return err
	}
	if o.JSON {
		if err := printJSON(o.Out, l); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(o.Out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tCHANGE\tSIZE\tBYTES")
		for _, v := range l.Versions {
			change := v.Change
			if v.Target != "" {
				change += " -> " + v.Target
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", fmtTime(v.Time), change, fmtSize(v.Size), v.Bytes)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return incomplete(l.Problems)
}

// Hosts is `mmreplicate hosts`.
func Hosts(ctx context.Context, o BrowseOptions) error {
	st, _, err := o.open(ctx)
	if err != nil {
		return err
	}
	r, err := browse.Hosts(ctx, st)
	if err != nil {
		return err
	}
	var problems []string
	for _, h := range r.Hosts {
		for _, p := range h.Problems {
			problems = append(problems, "host "+h.Host+": "+p)
		}
	}
	if o.JSON {
		if err := printJSON(o.Out, r); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(o.Out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tOLDEST\tNEWEST\tLAST CHANGE\tBYTES\tSEGMENTS\tMANIFESTS")
		for _, h := range r.Hosts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", h.Host, fmtTime(h.Oldest), fmtTime(h.Newest), fmtTime(h.LastChange), h.Bytes, h.Segments, h.Manifests)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%d hosts in %s; blobs shared by all hosts: %d bytes\n", len(r.Hosts), r.Store, r.BlobBytes)
	}
	return incomplete(problems)
}
