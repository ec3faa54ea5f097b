package sqlite

import (
	"encoding/binary"
	"testing"
)

func TestWALChecksum(t *testing.T) {
	// A header written by SQLite's rules: the checksum covers the first 24 bytes.
	b := make([]byte, walHeaderSize)
	binary.BigEndian.PutUint32(b[0:], walMagicLE)
	binary.BigEndian.PutUint32(b[4:], walVersion)
	binary.BigEndian.PutUint32(b[8:], 4096)
	s0, s1 := walChecksum(false, b[:24], 0, 0)
	binary.BigEndian.PutUint32(b[24:], s0)
	binary.BigEndian.PutUint32(b[28:], s1)
	if _, ok := parseWALHeader(b); !ok {
		t.Fatal("valid header rejected")
	}
	b[20] ^= 1
	if _, ok := parseWALHeader(b); ok {
		t.Fatal("corrupt header accepted")
	}
	// The checksum reads words in the byte order the magic names.
	x := []byte{1, 0, 0, 0, 2, 0, 0, 0}
	le0, le1 := walChecksum(false, x, 0, 0)
	be0, be1 := walChecksum(true, []byte{0, 0, 0, 1, 0, 0, 0, 2}, 0, 0)
	if le0 != 1 || le1 != 3 || be0 != le0 || be1 != le1 {
		t.Fatalf("checksum: %d %d / %d %d", le0, le1, be0, be1)
	}
}
