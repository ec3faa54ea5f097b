package s3gw

import (
	"errors"
	"sort"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// The key space is a set of namespaces ("@latest", "@<TIME>", "@history"), each a sorted
// list of names under "<namespace>/". A listing walks the namespaces its prefix can reach,
// in key order, rolling names up at the delimiter and stopping when the page is full.
// gofakes3's own prefix matching is not used: it is a best-effort approximation, and
// paging over virtual namespaces needs the exact S3 rules.

// page collects one page of a listing.
type page struct {
	max  int
	out  *gofakes3.ObjectList
	n    int
	last string // the last key or common prefix added: the next marker
	full bool   // something more was left out
}

func (p *page) room() bool {
	if p.n >= p.max {
		p.full = true
		return false
	}
	return true
}

func (p *page) content(c *gofakes3.Content) bool {
	if !p.room() {
		return false
	}
	p.out.Contents = append(p.out.Contents, c)
	p.n++
	p.last = c.Key
	return true
}

func (p *page) prefix(cp string) bool {
	if !p.room() {
		return false
	}
	p.out.CommonPrefixes = append(p.out.CommonPrefixes, gofakes3.CommonPrefix{Prefix: cp})
	p.n++
	p.last = cp
	return true
}

// walkSorted adds to p the names (sorted) that start with prefix and sort after marker,
// each as base+name, rolled up at delim; content builds the entry of names[i] (nil:
// leave it out). It returns false when the page filled up.
func walkSorted(names []string, base, prefix, delim, marker string, p *page, content func(i int) (*gofakes3.Content, error)) (bool, error) {
	i := sort.SearchStrings(names, prefix)
	if marker != "" {
		if j := sort.Search(len(names), func(i int) bool { return names[i] > marker }); j > i {
			i = j
		}
	}
	for i < len(names) && strings.HasPrefix(names[i], prefix) {
		name := names[i]
		if delim != "" {
			if j := strings.Index(name[len(prefix):], delim); j >= 0 {
				cp := name[:len(prefix)+j+len(delim)]
				from := i
				i += sort.Search(len(names)-from, func(x int) bool { return !strings.HasPrefix(names[from+x], cp) })
				if cp > marker && !p.prefix(base+cp) {
					return false, nil
				}
				continue
			}
		}
		c, err := content(i)
		if err != nil {
			return false, err
		}
		if c == nil { // nothing to show after all
			i++
			continue
		}
		c.Key = base + name
		if !p.content(c) {
			return false, nil
		}
		i++
	}
	return true, nil
}

// relMarker turns a bucket-wide marker into one relative to a namespace's base; skip is
// true when the whole namespace sorts at or before the marker.
func relMarker(marker, base string) (rel string, skip bool) {
	switch {
	case strings.HasPrefix(marker, base):
		return marker[len(base):], false
	case marker < base:
		return "", false
	default:
		return "", true
	}
}

// list answers one ListObjects call.
func (g *Gateway) list(prefix, delim, marker string, max int) (*gofakes3.ObjectList, error) {
	out := gofakes3.NewObjectList()
	if max <= 0 {
		return out, nil
	}
	p := &page{max: max, out: out}
	var err error
	if ns, _, ok := strings.Cut(prefix, "/"); ok {
		_, err = g.listNamespace(ns, prefix, delim, marker, p)
	} else {
		err = g.listRoot(prefix, delim, marker, p)
	}
	if err != nil {
		return nil, err
	}
	if p.full {
		out.IsTruncated = true
		out.NextMarker = p.last
	}
	return out, nil
}

// listRoot lists from a prefix that has not chosen a namespace yet ("", "@2026-11").
func (g *Gateway) listRoot(prefix, delim, marker string, p *page) error {
	nss, err := g.rootNamespaces(prefix)
	if err != nil {
		return err
	}
	lastCP := ""
	for _, ns := range nss {
		base := ns + "/"
		if delim != "" {
			if j := strings.Index(base[len(prefix):], delim); j >= 0 {
				cp := base[:len(prefix)+j+len(delim)]
				if cp > marker && cp != lastCP && !p.prefix(cp) {
					return nil
				}
				lastCP = cp
				continue
			}
		}
		if _, skip := relMarker(marker, base); skip {
			continue
		}
		more, err := g.listNamespace(ns, base, delim, marker, p)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// rootNamespaces are the namespaces whose base starts with prefix, in key order: one
// per hour of the recoverable window, @history and @latest, and the TIME the prefix
// spells when it is one ("@-1h" lists as "@-1h/").
func (g *Gateway) rootNamespaces(prefix string) ([]string, error) {
	c, err := g.catalogNow()
	if err != nil {
		return nil, err
	}
	all := append(c.hourly(), "@history", "@latest")
	if strings.HasPrefix(prefix, "@") {
		if _, _, err := g.parseTime(prefix[1:]); err == nil {
			all = append(all, prefix)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, ns := range all {
		if !seen[ns] && strings.HasPrefix(ns+"/", prefix) {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a]+"/" < out[b]+"/" })
	return out, nil
}

// listNamespace lists keys under one namespace; prefix starts with ns + "/".
func (g *Gateway) listNamespace(ns, prefix, delim, marker string, p *page) (bool, error) {
	base := ns + "/"
	rel, skip := relMarker(marker, base)
	if skip {
		return true, nil
	}
	relPrefix := prefix[len(base):]
	if ns == historyNS {
		h, err := g.historyNow()
		if err != nil {
			return false, err
		}
		if err := h.problem(); err != nil {
			return false, incomplete("the history", err)
		}
		names, refs := h.keys()
		return walkSorted(names, base, relPrefix, delim, rel, p, func(i int) (*gofakes3.Content, error) {
			return g.historyContent(h, refs[i])
		})
	}
	if !strings.HasPrefix(ns, "@") {
		return true, nil
	}
	t, latest, err := g.parseTime(ns[1:])
	if err != nil {
		return true, nil // not a TIME: nothing there
	}
	e, st, err := g.stateAt(t, latest)
	if err != nil {
		return false, err
	}
	defer g.states.release(e)
	if err := problem(st.problems); err != nil { // never a partial tree
		return false, incomplete("the state at "+ns[1:], err)
	}
	return walkSorted(st.names, base, relPrefix, delim, rel, p, func(i int) (*gofakes3.Content, error) {
		f := st.files[i]
		return &gofakes3.Content{LastModified: gofakes3.NewContentTime(f.mtime), ETag: md5ETag(f.md5),
			Size: f.size, StorageClass: gofakes3.StorageStandard}, nil
	})
}

// historyContent is the listing entry of one version. A version whose size the records
// do not give (a database) is rebuilt once to learn it.
func (g *Gateway) historyContent(h *history, ref histRef) (*gofakes3.Content, error) {
	c, ok := h.lookup(ref.file, ref.t)
	if !ok {
		return nil, gofakes3.KeyNotFound(ref.file)
	}
	if c.size < 0 {
		e, v, err := g.versionAt(ref.file, ref.t)
		if errors.Is(err, errNoVersion) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		c.size = v.meta.size
		g.versions.release(e)
		h.learnSize(ref, c.size)
	}
	return &gofakes3.Content{LastModified: gofakes3.NewContentTime(timeOf(ref.t)),
		ETag: versionETag(g.o.Host, ref.file, ref.t), Size: c.size, StorageClass: gofakes3.StorageStandard}, nil
}
