package chunk

import (
	"io"

	"github.com/restic/chunker"
)

// Parameters of the content-defined chunker. They are part of the store format: changing
// any of them makes new chunks differ from stored ones.
const (
	// Min is the smallest chunk cut (except a file's last).
	Min = 64 << 10
	// Max is the largest chunk cut, which also fits one journal record.
	Max = 256 << 10
	// AvgBits sets the average chunk size to 2^AvgBits bytes (128 KiB).
	AvgBits = 17
	// Pol is the fixed polynomial: every host cuts the same content the same way.
	Pol = chunker.Pol(0x3DA3358B4DC173)
)

// New returns a chunker that cuts r with the store's parameters. Its Next needs a buffer
// of Max bytes.
func New(r io.Reader) *chunker.Chunker {
	c := chunker.NewWithBoundaries(r, Pol, Min, Max)
	c.SetAverageBits(AvgBits)
	return c
}
