package s3gw

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"

	"github.com/mmreplicate/mmreplicate/journal"
)

// bruteList is S3's listing by definition: every key under prefix, rolled up at delim.
func bruteList(keys []string, prefix, delim string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		e := k
		if delim != "" {
			if j := strings.Index(k[len(prefix):], delim); j >= 0 {
				e = k[:len(prefix)+j+len(delim)]
			}
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

func TestWalkSortedPagesLikeS3(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "/", ".", "-", "0"}
	set := map[string]bool{}
	for len(set) < 300 {
		var b strings.Builder
		for n := 1 + rng.IntN(7); n > 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		set[b.String()] = true
	}
	var names []string
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, prefix := range []string{"", "a", "a/", "b.", "/", "zz"} {
		for _, delim := range []string{"", "/", ".", "a/"} {
			want := bruteList(names, prefix, delim)
			for _, max := range []int{1, 3, 1000} {
				var got []string
				marker := ""
				for pages := 0; ; pages++ {
					if pages > len(names)+1 {
						t.Fatalf("prefix %q delim %q max %d: paging does not end", prefix, delim, max)
					}
					p := &page{max: max, out: gofakes3.NewObjectList()}
					if _, err := walkSorted(names, "", prefix, delim, marker, p, func(int) (*gofakes3.Content, error) {
						return &gofakes3.Content{}, nil
					}); err != nil {
						t.Fatal(err)
					}
					var elems []string
					for _, c := range p.out.Contents {
						elems = append(elems, c.Key)
					}
					for _, cp := range p.out.CommonPrefixes {
						elems = append(elems, cp.Prefix)
					}
					sort.Strings(elems)
					got = append(got, elems...)
					if !p.full {
						break
					}
					marker = p.last
				}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Fatalf("prefix %q delim %q max %d:\n got %q\nwant %q", prefix, delim, max, got, want)
				}
			}
		}
	}
}

// manyFiles stores n files in segments of 500.
func manyFiles(t testing.TB, n int) (*fixture, []string) {
	f := newFixture(t)
	var recs []journal.Record
	var keys []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("agent%02d/session-%05d.jsonl", i%17, i)
		recs = append(recs, appendRec(time.Duration(i)*time.Millisecond, "sessions", p, 0, fmt.Sprintf("{\"n\":%d}\n", i)))
		keys = append(keys, "sessions/"+p)
		if len(recs) == 500 {
			f.put(recs...)
			recs = nil
		}
	}
	if len(recs) > 0 {
		f.put(recs...)
	}
	sort.Strings(keys)
	return f, keys
}

func TestListPagination(t *testing.T) {
	f, names := manyFiles(t, 1500)
	g, srv := f.serve(Options{Now: func() time.Time { return t0.Add(time.Hour) }})
	c := client(srv, testKey, testSecret)
	ctx := context.Background()
	bucket := aws.String(g.Bucket())
	for _, size := range []int32{0, 100, 999} {
		keys := listAll(t, c, g.Bucket(), "@latest/", size)
		if len(keys) != len(names) {
			t.Fatalf("page size %d: %d keys, want %d", size, len(keys), len(names))
		}
		for i, k := range keys {
			if k != "@latest/"+names[i] {
				t.Fatalf("page size %d: key %d is %s, want @latest/%s", size, i, k, names[i])
			}
		}
	}
	// ListObjects (v1) pages with markers.
	var v1 []string
	in := &s3.ListObjectsInput{Bucket: bucket, Prefix: aws.String("@-59m/sessions/"), MaxKeys: aws.Int32(400)}
	for {
		out, err := c.ListObjects(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			v1 = append(v1, *o.Key)
		}
		if !*out.IsTruncated {
			break
		}
		in.Marker = aws.String(v1[len(v1)-1])
	}
	if len(v1) != len(names) || v1[0] != "@-59m/"+names[0] {
		t.Fatalf("v1 listing: %d keys, first %q", len(v1), v1[0])
	}
	// The root: one entry per hour of the window, @history/ and @latest/.
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(prefixes(out.CommonPrefixes), " "); got != "@2026-11-26T18:00:00Z/ @history/ @latest/" || len(out.Contents) != 0 {
		t.Fatalf("root: %s, %d objects", got, len(out.Contents))
	}
	// A TIME typed as a prefix without its slash lists as a folder.
	out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("@2026-11-26T19:00:00.5+01:00"), Delimiter: aws.String("/")})
	if err != nil || strings.Join(prefixes(out.CommonPrefixes), " ") != "@2026-11-26T19:00:00.5+01:00/" {
		t.Fatalf("TIME prefix: %v %v", prefixes(out.CommonPrefixes), err)
	}
	// Folders page too: 17 agent folders, 5 at a time.
	var folders []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("@latest/sessions/"),
		Delimiter: aws.String("/"), MaxKeys: aws.Int32(5)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		folders = append(folders, prefixes(page.CommonPrefixes)...)
	}
	if len(folders) != 17 || folders[16] != "@latest/sessions/agent16/" {
		t.Fatalf("folders: %v", folders)
	}
	// Without a delimiter the root lists everything, namespace after namespace: the
	// state at 18:00:00 (one file), every version, the newest state.
	all := listAll(t, c, g.Bucket(), "", 700)
	if len(all) != 1+2*len(names) || !sort.StringsAreSorted(all) || !strings.HasPrefix(all[len(all)-1], "@latest/") {
		t.Fatalf("recursive root listing: %d keys (want %d), sorted %v", len(all), 1+2*len(names), sort.StringsAreSorted(all))
	}
}
