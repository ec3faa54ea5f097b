package sqlitepage

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func randomTxn(rng *rand.Rand, ps int, n int) Txn {
	tx := Txn{PageSize: ps, DBPages: uint32(n + 5)}
	for i := range n {
		d := make([]byte, ps)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		tx.Pages = append(tx.Pages, Page{No: uint32(i*2%n + 1), Data: d})
	}
	return tx
}

func TestEncodeDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, ps := range []int{512, 4096, 65536} {
		tx := randomTxn(rng, ps, 7)
		b := EncodeTxn(tx)
		if len(b) != EncodedSize(tx) {
			t.Fatalf("encoded %d bytes, EncodedSize says %d", len(b), EncodedSize(tx))
		}
		got, err := DecodeTxn(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(EncodeTxn(got), b) || got.PageSize != ps || got.DBPages != tx.DBPages || len(got.Pages) != 7 {
			t.Fatalf("round trip differs for page size %d", ps)
		}
	}
	good := EncodeTxn(randomTxn(rng, 512, 2))
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:12],
		"truncated": good[:len(good)-1],
		"longer":    append(append([]byte(nil), good...), 0),
		"version":   append([]byte{9}, good[1:]...),
	} {
		if _, err := DecodeTxn(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	mut := func(off int, v uint32) []byte {
		b := append([]byte(nil), good...)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}
	for name, b := range map[string][]byte{
		"page size":  mut(1, 1000),
		"zero size":  mut(5, 0),
		"count":      mut(9, 3),
		"huge count": mut(9, 1<<31),
		"page zero":  mut(13, 0),
		"page past":  mut(13, 100),
	} {
		if _, err := DecodeTxn(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestSplitApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	tx := randomTxn(rng, 1024, 40)
	dir := t.TempDir()
	whole, _ := os.Create(filepath.Join(dir, "whole"))
	pieces, _ := os.Create(filepath.Join(dir, "pieces"))
	defer whole.Close()
	defer pieces.Close()
	// Start both from a longer file so truncation is exercised too.
	junk := bytes.Repeat([]byte{7}, 100*1024)
	whole.Write(junk)
	pieces.Write(junk)
	if err := Apply(whole, tx); err != nil {
		t.Fatal(err)
	}
	parts := SplitTxn(tx, 5000)
	if len(parts) < 5 {
		t.Fatalf("%d pieces", len(parts))
	}
	n := 0
	for _, p := range parts {
		if len(EncodeTxn(p)) > 5000 || p.DBPages != tx.DBPages || p.PageSize != tx.PageSize {
			t.Fatalf("bad piece: %d bytes", len(EncodeTxn(p)))
		}
		n += len(p.Pages)
		if err := Apply(pieces, p); err != nil {
			t.Fatal(err)
		}
	}
	if n != len(tx.Pages) {
		t.Fatalf("pieces hold %d pages, want %d", n, len(tx.Pages))
	}
	a, _ := os.ReadFile(whole.Name())
	b, _ := os.ReadFile(pieces.Name())
	if !bytes.Equal(a, b) || len(a) != int(tx.DBPages)*1024 {
		t.Fatal("applying the pieces differs from applying the whole")
	}
	if got := SplitTxn(tx, 10); len(got) != len(tx.Pages) {
		t.Fatalf("tiny maxBytes: %d pieces", len(got))
	}
	bad := tx
	bad.Pages = []Page{{No: 1, Data: []byte{1}}}
	if Apply(whole, bad) == nil {
		t.Fatal("applied a short page")
	}
}

func FuzzDecodeTxn(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 3))
	f.Add(EncodeTxn(randomTxn(rng, 512, 1)))
	f.Add(EncodeTxn(Txn{PageSize: 4096, DBPages: 1}))
	f.Add([]byte{1, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := DecodeTxn(b)
		if err != nil {
			return
		}
		if err := tx.Validate(); err != nil {
			t.Fatalf("decoded an invalid txn: %v", err)
		}
		if !bytes.Equal(EncodeTxn(tx), b) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}
