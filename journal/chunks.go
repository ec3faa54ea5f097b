package journal

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// ChunkRef names one chunk of a file by the SHA-256 of its bytes.
type ChunkRef struct {
	Hash [32]byte
	Size uint32
}

// ID is the chunk's hex hash, as blob keys and OpChunk records spell it.
func (c ChunkRef) ID() string { return hex.EncodeToString(c.Hash[:]) }

// EncodeChunks packs a chunk list into an OpFile record's Data.
func EncodeChunks(refs []ChunkRef) []byte {
	out := make([]byte, 0, len(refs)*36)
	for _, r := range refs {
		out = append(out, r.Hash[:]...)
		out = binary.AppendUvarint(out, uint64(r.Size))
	}
	return out
}

// DecodeChunks unpacks an OpFile record's Data.
func DecodeChunks(b []byte) ([]ChunkRef, error) {
	var out []ChunkRef
	for len(b) > 0 {
		if len(b) < 33 {
			return nil, fmt.Errorf("%w: chunk list cut short", ErrCorrupt)
		}
		var r ChunkRef
		copy(r.Hash[:], b[:32])
		n, used := binary.Uvarint(b[32:])
		if used <= 0 || n > MaxRecordSize {
			return nil, fmt.Errorf("%w: bad chunk size", ErrCorrupt)
		}
		r.Size = uint32(n)
		out = append(out, r)
		b = b[32+used:]
	}
	return out, nil
}

// ParseChunkID reads a hex chunk id back.
func ParseChunkID(id string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 32 {
		return h, fmt.Errorf("%w: bad chunk id %q", ErrCorrupt, id)
	}
	copy(h[:], b)
	return h, nil
}
