package sqlite

import "encoding/binary"

// Masker masks secrets in b, returning bytes of the same length and whether any changed.
// It must not change b itself.
type Masker func(b []byte) ([]byte, bool)

// RedactTxn masks secrets in the pages of a captured transaction or base image so that
// the database stays valid: a mask only ever replaces bytes inside the value of a text
// or blob column of a record (with bytes of the same length), or bytes of a page that
// no record uses (free space, freeblocks, freed pages), never a length, pointer, header
// or page number. Each value is scanned whole, its part on an overflow page included
// when the chain's pages are in the transaction (a base image has them all; a commit
// that writes a long value has them too). An overflow page whose cell is not in the
// transaction is scanned alone, past its next-page pointer.
//
// reserved is the database's reserved bytes per page (header byte 20), which the layout
// of cells depends on; page 1, when present, supplies it. It returns tx with the masked
// pages copied (tx's own page data is never written) and what was masked.
//
// Limits: a secret in an indexed column is masked in the table and in the index alike,
// which leaves the index entries out of order (integrity_check reports rows missing
// from the index; REINDEX rebuilds it); full-text indexes keep their own tokenized copy
// of text, which no rule recognizes.
func RedactTxn(tx Txn, reserved int, mask Masker) (Txn, Masked) {
	if tx.PageSize < minPageSize || len(tx.Pages) == 0 {
		return tx, Masked{}
	}
	r := &pageRedactor{tx: tx, mask: mask, index: make(map[uint32]int, len(tx.Pages)), used: make([]bool, len(tx.Pages))}
	for i, p := range tx.Pages {
		r.index[p.No] = i
		if p.No == 1 && len(p.Data) >= dbHeaderSize {
			reserved = int(p.Data[20])
		}
	}
	r.usable = tx.PageSize - reserved
	if r.usable < 480 { // the least SQLite allows
		return tx, Masked{}
	}
	// B-tree pages first: their cells claim the overflow pages they reach.
	for i := range tx.Pages {
		r.btree(i)
	}
	for i, p := range tx.Pages {
		if r.used[i] || isBTree(p) || len(p.Data) != tx.PageSize || p.No == 1 {
			continue
		}
		r.region(i, 4, r.usable) // an overflow or freed page past its first pointer
	}
	if !r.res.Any {
		return tx, Masked{}
	}
	return r.tx, r.res
}

// Masked says what RedactTxn masked.
type Masked struct {
	Any bool // some bytes
	// Index is set when a value in an index b-tree was masked: that index no longer
	// matches its table's order in the restored database until it is rebuilt.
	Index bool
}

// pageRedactor holds one RedactTxn call.
type pageRedactor struct {
	tx      Txn
	mask    Masker
	usable  int
	index   map[uint32]int // page number to index in tx.Pages
	used    []bool         // pages taken as overflow of a cell, or already parsed
	cow     []bool         // pages copied already
	res     Masked
	inIndex bool // the value being masked is an index key
}

// isBTree reports whether a page starts like a b-tree page.
func isBTree(p Page) bool {
	off := 0
	if p.No == 1 {
		off = dbHeaderSize
	}
	if len(p.Data) <= off {
		return false
	}
	switch p.Data[off] {
	case 0x02, 0x05, 0x0a, 0x0d:
		return true
	}
	return false
}

// write copies b into page i at off, copying the page first.
func (r *pageRedactor) write(i, off int, b []byte) {
	if r.cow == nil {
		r.cow = make([]bool, len(r.tx.Pages))
		pages := make([]Page, len(r.tx.Pages))
		copy(pages, r.tx.Pages)
		r.tx.Pages = pages
	}
	if !r.cow[i] {
		d := make([]byte, len(r.tx.Pages[i].Data))
		copy(d, r.tx.Pages[i].Data)
		r.tx.Pages[i].Data = d
		r.cow[i] = true
	}
	copy(r.tx.Pages[i].Data[off:], b)
	r.res.Any = true
}

// region masks page i's bytes [from, to), which no structure uses.
func (r *pageRedactor) region(i, from, to int) {
	d := r.tx.Pages[i].Data
	to = min(to, len(d))
	if from >= to {
		return
	}
	if clean, ok := r.mask(d[from:to]); ok && len(clean) == to-from {
		r.write(i, from, clean)
	}
}

// btree masks the values of the records on page i, and its free space.
func (r *pageRedactor) btree(i int) {
	p := r.tx.Pages[i]
	d := p.Data
	if len(d) != r.tx.PageSize || !isBTree(p) {
		return
	}
	r.used[i] = true
	h := 0
	if p.No == 1 {
		h = dbHeaderSize
	}
	typ := d[h]
	hsize := 8
	if typ == 0x02 || typ == 0x05 {
		hsize = 12
	}
	if h+hsize > r.usable {
		return
	}
	ncells := int(binary.BigEndian.Uint16(d[h+3:]))
	content := int(binary.BigEndian.Uint16(d[h+5:]))
	if content == 0 {
		content = 65536
	}
	ptrs := h + hsize
	if ptrs+2*ncells > r.usable {
		return
	}
	// Free space: between the cell pointers and the cell content, and freeblocks.
	if content <= r.usable {
		r.region(i, ptrs+2*ncells, content)
	}
	for fb, n := int(binary.BigEndian.Uint16(d[h+1:])), 0; fb != 0 && n < r.usable/4; n++ {
		if fb < ptrs+2*ncells || fb+4 > r.usable {
			break
		}
		size := int(binary.BigEndian.Uint16(d[fb+2:]))
		if size < 4 || fb+size > r.usable {
			break
		}
		r.region(i, fb+4, fb+size)
		next := int(binary.BigEndian.Uint16(d[fb:]))
		if next != 0 && next <= fb {
			break // freeblocks come in ascending order; anything else is damage
		}
		fb = next
	}
	if typ == 0x05 {
		return // interior table pages hold child pointers and keys only
	}
	maxLocal := (r.usable-12)*64/255 - 23
	if typ == 0x0d {
		maxLocal = r.usable - 35
	}
	minLocal := (r.usable-12)*32/255 - 23
	for c := range ncells {
		off := int(binary.BigEndian.Uint16(d[ptrs+2*c:]))
		if off < ptrs+2*ncells || off >= r.usable {
			continue
		}
		j := off
		if typ == 0x02 {
			j += 4 // left child pointer
		}
		size, n := varint(d[:r.usable], j)
		if n == 0 {
			continue
		}
		j += n
		if typ == 0x0d {
			if _, n = varint(d[:r.usable], j); n == 0 {
				continue
			}
			j += n
		}
		local := int64(size)
		if size > uint64(maxLocal) {
			k := int64(minLocal) + (int64(size)-int64(minLocal))%int64(r.usable-4)
			local = int64(minLocal)
			if k <= int64(maxLocal) {
				local = k
			}
		}
		if int64(j)+local > int64(r.usable) || (local < int64(size) && j+int(local)+4 > r.usable) {
			continue
		}
		r.inIndex = typ != 0x0d
		r.record(i, j, int(local), size)
		r.inIndex = false
	}
}

// segment is a run of a record's payload on one page.
type segment struct{ page, off, n int }

// record masks the text and blob values of the record whose payload of size bytes
// starts at page i's offset at with local bytes there, followed by its overflow chain.
func (r *pageRedactor) record(i, at, local int, size uint64) {
	d := r.tx.Pages[i].Data
	segs := []segment{{i, at, local}}
	payload := d[at : at+local]
	if uint64(local) < size {
		// Follow the chain through the pages of the transaction, as far as they go.
		next := binary.BigEndian.Uint32(d[at+local:])
		have := uint64(local)
		buf := append([]byte(nil), payload...)
		for next != 0 && have < size {
			k, ok := r.index[next]
			if !ok || r.used[k] || len(r.tx.Pages[k].Data) != r.tx.PageSize {
				break
			}
			r.used[k] = true
			od := r.tx.Pages[k].Data
			n := int(min(uint64(r.usable-4), size-have))
			segs = append(segs, segment{k, 4, n})
			buf = append(buf, od[4:4+n]...)
			have += uint64(n)
			next = binary.BigEndian.Uint32(od)
		}
		payload = buf
	}
	// The record: a header of serial types, then the values in that order.
	hlen, n := varint(payload, 0)
	if n == 0 || hlen > uint64(len(payload)) {
		return
	}
	body := int(hlen)
	for j := n; j < int(hlen); {
		st, m := varint(payload[:hlen], j)
		if m == 0 {
			return
		}
		j += m
		vlen := serialLen(st)
		if vlen < 0 || uint64(body)+uint64(vlen) > uint64(len(payload)) {
			if st >= 12 {
				// The value runs past what the transaction holds of it: scan what is there.
				r.value(payload, segs, body, len(payload))
			}
			return
		}
		if st >= 12 && vlen > 0 {
			r.value(payload, segs, body, body+vlen)
		}
		body += vlen
	}
}

// value masks payload[a:b], a text or blob value, writing changes back to the pages.
func (r *pageRedactor) value(payload []byte, segs []segment, a, b int) {
	if a >= b {
		return
	}
	clean, ok := r.mask(payload[a:b])
	if !ok || len(clean) != b-a {
		return
	}
	r.res.Index = r.res.Index || r.inIndex
	pos := 0
	for _, s := range segs {
		lo, hi := max(a, pos), min(b, pos+s.n)
		if lo < hi {
			r.write(s.page, s.off+lo-pos, clean[lo-a:hi-a])
		}
		pos += s.n
	}
}

// serialLen is the size of a value of a record serial type, -1 for a reserved type.
func serialLen(st uint64) int {
	switch {
	case st <= 4:
		return int(st)
	case st == 5:
		return 6
	case st == 6, st == 7:
		return 8
	case st == 8, st == 9:
		return 0
	case st == 10, st == 11:
		return -1
	case st > 1<<31:
		return -1
	}
	return int((st - 12) / 2)
}

// varint decodes SQLite's big-endian variable-length integer at b[j]: the value and its
// length in bytes, 0 when b ends first.
func varint(b []byte, j int) (uint64, int) {
	var v uint64
	for k := 0; k < 9; k++ {
		if j+k >= len(b) {
			return 0, 0
		}
		c := b[j+k]
		if k == 8 {
			return v<<8 | uint64(c), 9
		}
		v = v<<7 | uint64(c&0x7f)
		if c < 0x80 {
			return v, k + 1
		}
	}
	return 0, 0
}
