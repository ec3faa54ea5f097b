// Package objstoretest is the conformance suite every objstore.Store
// implementation runs, so that the sinks and restore can rely on one
// behaviour whatever the target is.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/objstore"
	"golang.org/x/sync/errgroup"
)

// Run runs the suite. newStore must return an empty, usable store each time
// it is called (each subtest calls it once), cleaned up by t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"AtomicOverwrite", testAtomicOverwrite},
		{"Missing", testMissing},
		{"List", testList},
		{"ListPagination", testListPagination},
		{"ListStop", testListStop},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"Stat", testStat},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Canceled", testCanceled},
		{"Check", testCheck},
		{"GetRange", testGetRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, data); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func mustGet(t *testing.T, s objstore.Store, key string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: got %d bytes, want %d bytes (equal length: %v)", key, len(got), len(want), len(got) == len(want))
	}
}

func listKeys(t *testing.T, s objstore.Store, prefix string) []objstore.ObjectInfo {
	t.Helper()
	var out []objstore.ObjectInfo
	if err := s.List(t.Context(), prefix, func(oi objstore.ObjectInfo) error {
		out = append(out, oi)
		return nil
	}); err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	return out
}

func keysOf(infos []objstore.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, oi := range infos {
		keys[i] = oi.Key
	}
	return keys
}

func testRoundTrip(t *testing.T, s objstore.Store) {
	cases := map[string][]byte{
		"rt/empty":           {},
		"rt/small.txt":       []byte("hello, store\n"),
		"rt/deep/a/b/c/blob": randomBytes(5<<20, 1),
	}
	for key, data := range cases {
		put(t, s, key, data)
	}
	for key, data := range cases {
		mustGet(t, s, key, data)
		r, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatalf("Open %s: %v", key, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Open %s: read %d bytes, err %v; want %d bytes", key, len(got), err, len(data))
		}
		oi, err := s.Stat(t.Context(), key)
		if err != nil || oi.Size != int64(len(data)) || oi.Key != key {
			t.Fatalf("Stat %s = %+v, %v; want size %d", key, oi, err, len(data))
		}
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	put(t, s, "ow/k", randomBytes(100_000, 2))
	short := []byte("shorter now")
	put(t, s, "ow/k", short)
	mustGet(t, s, "ow/k", short)
	if oi, err := s.Stat(t.Context(), "ow/k"); err != nil || oi.Size != int64(len(short)) {
		t.Fatalf("Stat after overwrite = %+v, %v; want size %d", oi, err, len(short))
	}
	if got := keysOf(listKeys(t, s, "")); !slices.Equal(got, []string{"ow/k"}) {
		t.Fatalf("List after overwrite = %q, want one key (no leftovers)", got)
	}
}

// testAtomicOverwrite reads while another goroutine keeps replacing the
// object: every read must return one whole version, never a mix or a part.
func testAtomicOverwrite(t *testing.T, s objstore.Store) {
	versions := [][]byte{randomBytes(256<<10, 3), randomBytes(200<<10, 4)}
	put(t, s, "atomic/k", versions[0])
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer cancel()
		for i := range 20 {
			if err := s.Put(gctx, "atomic/k", versions[i%2]); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		for gctx.Err() == nil {
			got, err := s.Get(gctx, "atomic/k")
			if err != nil {
				if gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("Get during overwrites: %w", err)
			}
			if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
				return fmt.Errorf("Get during overwrites returned %d bytes matching neither version", len(got))
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func testMissing(t *testing.T, s objstore.Store) {
	put(t, s, "present/x", []byte("x"))
	ctx := t.Context()
	for _, key := range []string{"missing", "present/y", "present/x/below", "present"} {
		_, err := s.Get(ctx, key)
		checkNotFound(t, "Get", key, err)
		_, err = s.Stat(ctx, key)
		checkNotFound(t, "Stat", key, err)
		r, err := s.Open(ctx, key)
		if r != nil {
			r.Close()
		}
		checkNotFound(t, "Open", key, err)
	}
}

func checkNotFound(t *testing.T, op, key string, err error) {
	t.Helper()
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("%s %s: err = %v, want ErrNotFound", op, key, err)
	}
	if objstore.Temporary(err) {
		t.Fatalf("%s %s: Temporary(%v) = true, want false", op, key, err)
	}
}

func testList(t *testing.T, s objstore.Store) {
	// Chosen so a naive depth-first folder walk gets the order wrong:
	// "b-c" and "b0" sort around "b/...", and upper case before lower.
	keys := []string{
		"list/b/z", "list/b-c", "list/a", "list/b0", "list/b/a", "list/c/d/e",
		"list/B", "list/\u00e4", "listx/other", "top",
	}
	for i, k := range keys {
		put(t, s, k, bytes.Repeat([]byte{'x'}, i))
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	all := listKeys(t, s, "")
	if got := keysOf(all); !slices.Equal(got, sorted) {
		t.Fatalf("List(\"\") = %q\nwant %q", got, sorted)
	}
	for _, oi := range all {
		if want := int64(slices.Index(keys, oi.Key)); oi.Size != want {
			t.Errorf("List: %s size %d, want %d", oi.Key, oi.Size, want)
		}
		if oi.ModTime.IsZero() {
			t.Errorf("List: %s has no ModTime", oi.Key)
		}
	}
	for prefix, want := range map[string][]string{
		"list/":     {"list/B", "list/a", "list/b-c", "list/b/a", "list/b/z", "list/b0", "list/c/d/e", "list/\u00e4"},
		"list/b":    {"list/b-c", "list/b/a", "list/b/z", "list/b0"},
		"list/b/":   {"list/b/a", "list/b/z"},
		"list/c/d":  {"list/c/d/e"},
		"list":      {"list/B", "list/a", "list/b-c", "list/b/a", "list/b/z", "list/b0", "list/c/d/e", "list/\u00e4", "listx/other"},
		"list/a":    {"list/a"},
		"nothing/":  nil,
		"list/zzz":  nil,
		"top":       {"top"},
		"list/b/zz": nil,
		"list/a/":   nil,
		"list/a/x":  nil,
	} {
		if got := keysOf(listKeys(t, s, prefix)); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func testListPagination(t *testing.T, s objstore.Store) {
	const n = 1100 // more than one 1000-key page of ListObjectsV2
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("page/%05d", i))
	}
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(8)
	for _, k := range want {
		g.Go(func() error { return s.Put(ctx, k, []byte(k)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Put: %v", err)
	}
	put(t, s, "pagf", []byte("outside the prefix"))
	got := keysOf(listKeys(t, s, "page/"))
	if !slices.Equal(got, want) {
		t.Fatalf("List(page/) returned %d keys (sorted: %v), want %d in order",
			len(got), slices.IsSorted(got), n)
	}
	if got := listKeys(t, s, ""); len(got) != n+1 {
		t.Fatalf("List(\"\") returned %d keys, want %d", len(got), n+1)
	}
}

func testListStop(t *testing.T, s objstore.Store) {
	for _, k := range []string{"s/1", "s/2", "s/3"} {
		put(t, s, k, []byte(k))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(t.Context(), "s/", func(objstore.ObjectInfo) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("List with failing fn: err %v after %d calls, want the fn's error unchanged after 1", err, calls)
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	put(t, s, "del/a/b", []byte("b"))
	put(t, s, "del/keep", []byte("k"))
	for range 2 {
		if err := s.Delete(ctx, "del/a/b"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if err := s.Delete(ctx, "del/never/was"); err != nil {
		t.Fatalf("Delete of a key that never existed: %v", err)
	}
	_, err := s.Stat(ctx, "del/a/b")
	checkNotFound(t, "Stat after Delete", "del/a/b", err)
	if got := keysOf(listKeys(t, s, "")); !slices.Equal(got, []string{"del/keep"}) {
		t.Fatalf("List after Delete = %q, want [del/keep]", got)
	}
	// The emptied folder must not block a key of the same name later.
	put(t, s, "del/a", []byte("now a file"))
	mustGet(t, s, "del/a", []byte("now a file"))
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	for _, key := range []string{"", "/abs", "a/../b", "..", "a/..", "../a", "a//b", "a/", "./a", "a/./b"} {
		errs := map[string]error{"Put": s.Put(ctx, key, []byte("x")), "Delete": s.Delete(ctx, key)}
		_, errs["Get"] = s.Get(ctx, key)
		_, errs["Stat"] = s.Stat(ctx, key)
		r, err := s.Open(ctx, key)
		if r != nil {
			r.Close()
		}
		errs["Open"] = err
		for op, err := range errs {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s(%q): err = %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	for _, prefix := range []string{"/abs", "a/../", "../"} {
		if err := s.List(ctx, prefix, func(objstore.ObjectInfo) error { return nil }); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("List(%q): err = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Fatalf("invalid keys left objects behind: %q", keysOf(got))
	}
}

func testStat(t *testing.T, s objstore.Store) {
	// Stores may keep whole seconds only; allow for that and a little skew.
	before := time.Now().Add(-2 * time.Second)
	put(t, s, "stat/k", randomBytes(12345, 5))
	after := time.Now().Add(2 * time.Second)
	oi, err := s.Stat(t.Context(), "stat/k")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if oi.Key != "stat/k" || oi.Size != 12345 {
		t.Fatalf("Stat = %+v, want key stat/k size 12345", oi)
	}
	if oi.ModTime.Before(before) || oi.ModTime.After(after) {
		t.Fatalf("Stat ModTime %v, want between %v and %v", oi.ModTime, before, after)
	}
}

func testConcurrentPuts(t *testing.T, s objstore.Store) {
	const writers, perWriter = 16, 8
	var mu sync.Mutex
	want := map[string][]byte{}
	g, ctx := errgroup.WithContext(t.Context())
	for w := range writers {
		g.Go(func() error {
			for i := range perWriter {
				key := fmt.Sprintf("conc/w%02d/%d", w, i)
				data := randomBytes(1000+w*100+i, uint64(w*perWriter+i))
				if err := s.Put(ctx, key, data); err != nil {
					return err
				}
				mu.Lock()
				want[key] = data
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent Put: %v", err)
	}
	for key, data := range want {
		mustGet(t, s, key, data)
	}
	if got := listKeys(t, s, "conc/"); len(got) != writers*perWriter {
		t.Fatalf("List after concurrent puts: %d keys, want %d", len(got), writers*perWriter)
	}
}

func testCanceled(t *testing.T, s objstore.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Put(ctx, "canceled/k", []byte("x"))
	if err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if !errors.Is(err, context.Canceled) || objstore.Temporary(err) {
		t.Fatalf("Put with a canceled context: err %v (Temporary %v), want context.Canceled, not temporary",
			err, objstore.Temporary(err))
	}
	if _, err := s.Stat(t.Context(), "canceled/k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Stat after canceled Put: %v, want ErrNotFound", err)
	}
}

func testCheck(t *testing.T, s objstore.Store) {
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if s.String() == "" {
		t.Fatal("String() is empty")
	}
}

func testGetRange(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	data := randomBytes(100000, 7)
	put(t, s, "range/obj", data)
	for _, r := range [][2]int64{{0, 1}, {0, 100000}, {12345, 4321}, {99999, 1}, {50000, 0}} {
		got, err := s.GetRange(ctx, "range/obj", r[0], r[1])
		if err != nil {
			t.Fatalf("GetRange %d+%d: %v", r[0], r[1], err)
		}
		if !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			t.Fatalf("GetRange %d+%d: got %d bytes, not the stored ones", r[0], r[1], len(got))
		}
	}
	for _, r := range [][2]int64{{99999, 2}, {100000, 1}, {200000, 5}, {-1, 3}} {
		if _, err := s.GetRange(ctx, "range/obj", r[0], r[1]); !errors.Is(err, objstore.ErrShortRange) {
			t.Fatalf("GetRange %d+%d past the end: %v, want ErrShortRange", r[0], r[1], err)
		}
	}
	_, err := s.GetRange(ctx, "range/missing", 0, 1)
	checkNotFound(t, "GetRange", "range/missing", err)
}
