package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mmreplicate/mmreplicate/journal"
)

// fileState is one file being rebuilt in the staging folder.
type fileState struct {
	source, path string
	size         int64
	mode         uint32
	deleted      bool
	incomplete   string // why the file stops short, when a record was missing
	tmp          string // staging file ("" in a dry run)
}

// builder applies records in sequence order to staged files.
type builder struct {
	stage  string // "" for a dry run
	files  map[string]*fileState
	open   map[string]*os.File
	nextID int
}

func newBuilder(stage string) *builder {
	return &builder{stage: stage, files: map[string]*fileState{}, open: map[string]*os.File{}}
}

// maxOpen bounds the staging files held open between records.
const maxOpen = 256

func (b *builder) apply(r *journal.Record) error {
	key := r.Source + "/" + r.Path
	st := b.files[key]
	if st == nil {
		st = &fileState{source: r.Source, path: r.Path, deleted: true}
		b.files[key] = st
	}
	switch r.Op {
	case journal.OpDelete:
		st.deleted, st.size, st.incomplete = true, 0, ""
		return b.truncate(key, st, 0)
	case journal.OpAppend:
		if st.deleted && r.Offset > 0 || r.Offset > st.size {
			// Bytes before this record never arrived (a damaged or missing segment):
			// keep the whole-line prefix we have rather than a file with a hole.
			if st.incomplete == "" {
				st.incomplete = fmt.Sprintf("bytes %d-%d missing (record %d)", st.size, r.Offset, r.Seq)
			}
			return nil
		}
		if r.Offset == 0 {
			st.incomplete = ""
		}
		st.deleted = false
		if r.Mode != 0 {
			st.mode = r.Mode
		}
		if err := b.truncate(key, st, r.Offset); err != nil {
			return err
		}
		st.size = r.End()
		if b.stage == "" {
			return nil
		}
		f, err := b.file(key, st)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(r.Data, r.Offset); err != nil {
			return fmt.Errorf("restore: write %s: %w", st.path, err)
		}
	}
	return nil
}

func (b *builder) truncate(key string, st *fileState, size int64) error {
	if b.stage == "" || st.tmp == "" {
		return nil
	}
	if f := b.open[key]; f != nil {
		if err := f.Truncate(size); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return nil
	}
	if err := os.Truncate(st.tmp, size); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

func (b *builder) file(key string, st *fileState) (*os.File, error) {
	if f := b.open[key]; f != nil {
		return f, nil
	}
	if len(b.open) >= maxOpen {
		b.closeAll()
	}
	if st.tmp == "" {
		b.nextID++
		st.tmp = filepath.Join(b.stage, strconv.Itoa(b.nextID))
	}
	f, err := os.OpenFile(st.tmp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	b.open[key] = f
	return f, nil
}

func (b *builder) closeAll() error {
	var errs []error
	for k, f := range b.open {
		errs = append(errs, f.Sync(), f.Close())
		delete(b.open, k)
	}
	return errors.Join(errs...)
}
