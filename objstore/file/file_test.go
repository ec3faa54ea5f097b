package file_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmreplicate/mmreplicate/objstore"
	"github.com/mmreplicate/mmreplicate/objstore/file"
	"github.com/mmreplicate/mmreplicate/objstore/objstoretest"
)

func newStore(t *testing.T) *file.Store {
	t.Helper()
	s, err := file.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t) })
}

func TestTempFilesHidden(t *testing.T) {
	s := newStore(t)
	if err := s.Put(t.Context(), "d/k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A Put interrupted by a crash leaves a temp file behind.
	if err := os.WriteFile(filepath.Join(s.Dir(), "d", ".tmp-k-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.List(t.Context(), "", func(oi objstore.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "d/k" {
		t.Fatalf("List = %q, want [d/k]", keys)
	}
	if err := s.Put(t.Context(), "d/.tmp-x", []byte("x")); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Put of a reserved temp name: %v, want ErrInvalidKey", err)
	}
}

func TestStringAndMissingRoot(t *testing.T) {
	s := newStore(t)
	if !strings.HasPrefix(s.String(), "file:///") {
		t.Fatalf("String() = %q, want file:///…", s.String())
	}
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(t.Context()); !errors.Is(err, objstore.ErrNoBucket) {
		t.Fatalf("Check on a removed folder: %v, want ErrNoBucket", err)
	}
	err := s.List(t.Context(), "", func(objstore.ObjectInfo) error { return nil })
	if !errors.Is(err, objstore.ErrNoBucket) {
		t.Fatalf("List on a removed folder: %v, want ErrNoBucket", err)
	}
}
