package redact

import (
	"bytes"
	"testing"
)

// The benchmarks report MB/s; ingest runs at 100 MB/s or more, so redaction should stay
// well above that: the aim is 500 MB/s on clean data on a small two-core machine.

func benchRedact(b *testing.B, every int) {
	data := transcript(10<<20, every)
	s := New()
	if _, hits := s.Redact(data); (hits == nil) != (every == 0) {
		b.Fatalf("every %d: %d hits", every, len(hits))
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		s.Redact(data)
	}
}

// BenchmarkRedactClean is the hot path: 10 MB of transcript without a secret.
func BenchmarkRedactClean(b *testing.B) { benchRedact(b, 0) }

// BenchmarkRedactDirty has a secret every 10 KB.
func BenchmarkRedactDirty(b *testing.B) { benchRedact(b, 10<<10) }

// BenchmarkTemplate scans the same clean data, with its placeholders taken out so that
// the scan goes to the end, for config-template placeholders.
func BenchmarkTemplate(b *testing.B) {
	data := bytes.ReplaceAll(transcript(10<<20, 0), templateOpen, []byte("<<REPLACE_WIT_"))
	s := New()
	if s.Template(data) {
		b.Fatal("placeholder left")
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s.Template(data)
	}
}

// BenchmarkReader streams 10 MB of clean transcript through a Reader: the block overlap
// must cost little next to BenchmarkRedactClean.
func BenchmarkReader(b *testing.B) {
	data := transcript(10<<20, 0)
	s := New()
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r := s.NewReader(bytes.NewReader(data))
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}
