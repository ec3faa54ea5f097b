package redact

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestReaderEqualsRedact: a stream of several blocks, with secrets planted across every
// block boundary (a key cut by the boundary, a private key block around it), reads back
// exactly as one Redact of the whole, and reports the same hits.
func TestReaderEqualsRedact(t *testing.T) {
	s := New()
	data := transcript(3*block+block/2, 0)
	key := "sk-ant-api03-" + fake("boundary", 93, b64url) + "AA"
	pem := pemBlock("RSA PRIVATE KEY", "boundary", 60) // about 4 KB
	for i, b := range []int{block, 2 * block, 3 * block} {
		plant := key
		at := b - len(key)/2
		if i == 1 {
			plant, at = pem, b-len(pem)/3
		}
		copy(data[at:], "\n"+plant+"\n")
	}
	want, wantHits := s.Redact(data)
	if len(wantHits) < 3 {
		t.Fatalf("only %d hits in the whole", len(wantHits))
	}
	// Read in small, odd pieces, as a chunker does.
	r := s.NewReader(io.MultiReader(bytes.NewReader(data[:1000]), bytes.NewReader(data[1000:])))
	var got bytes.Buffer
	buf := make([]byte, 7777)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		for i := range want {
			if got.Bytes()[i] != want[i] {
				t.Fatalf("stream differs from the whole at %d: %q vs %q", i, got.Bytes()[max(0, i-40):i+40], want[max(0, i-40):i+40])
			}
		}
		t.Fatalf("stream has %d bytes, want %d", got.Len(), len(want))
	}
	if bytes.Contains(got.Bytes(), []byte(key[20:])) || bytes.Contains(got.Bytes(), []byte(pemBodyOf(pem)[100:200])) {
		t.Fatal("a planted secret is readable")
	}
	if len(r.Hits()) != len(wantHits) {
		t.Fatalf("%d hits streamed, %d in the whole", len(r.Hits()), len(wantHits))
	}
	for i, h := range r.Hits() {
		if h != wantHits[i] {
			t.Fatalf("hit %d: %+v, want %+v", i, h, wantHits[i])
		}
	}
}

// TestReaderSmall: short and empty streams, and a clean stream is returned unchanged.
func TestReaderSmall(t *testing.T) {
	s := New()
	for _, in := range []string{"", "x", "token=" + fake("small", 30, alnum) + "\n"} {
		got, err := io.ReadAll(s.NewReader(strings.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := s.Redact([]byte(in))
		if string(got) != string(want) {
			t.Fatalf("%q: got %q, want %q", in, got, want)
		}
	}
	clean := transcript(block+100, 0)
	got, _ := io.ReadAll(s.NewReader(bytes.NewReader(clean)))
	if !bytes.Equal(got, clean) {
		t.Fatal("clean data changed")
	}
}

// errReader fails after its data.
type errReader struct{ r io.Reader }

func (e errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, io.ErrClosedPipe
	}
	return n, err
}

// TestReaderError: a read error of the source reaches the caller.
func TestReaderError(t *testing.T) {
	_, err := io.ReadAll(New().NewReader(errReader{strings.NewReader("abc")}))
	if err != io.ErrClosedPipe {
		t.Fatalf("got %v", err)
	}
}

// TestRedactTailPEM: a private key written in two appends, the BEGIN line and half the
// body in the first and the rest in the second, is masked in the second too, knowing the
// first from the bytes before it.
func TestRedactTailPEM(t *testing.T) {
	s := New()
	pem := pemBlock("OPENSSH PRIVATE KEY", "tail", 10)
	text := "notes\n" + pem + "more notes\n"
	for _, split := range []int{
		strings.Index(text, "-----\n") + 6,        // after the BEGIN line
		strings.Index(text, "-----\n") + 6 + 65*4, // in the middle of the body
		strings.Index(text, "-----END"),           // before the END line
	} {
		first, second := text[:split], text[split:]
		// The first capture is scanned alone.
		c1, _ := s.Redact([]byte(first))
		// The second is scanned with the source's bytes before it as context.
		c2, hits := s.RedactTail([]byte(text), split)
		if len(c2) != len(second) {
			t.Fatalf("split %d: %d bytes, want %d", split, len(c2), len(second))
		}
		joined := string(c1) + string(c2)
		whole, _ := s.Redact([]byte(text))
		if joined != string(whole) {
			t.Fatalf("split %d: two captures give\n%s\nthe whole gives\n%s", split, joined, whole)
		}
		if split == strings.Index(text, "-----END") {
			if hits != nil {
				t.Fatalf("split %d: hits %+v in the END line", split, hits)
			}
			continue
		}
		if len(hits) == 0 || hits[0].Offset < 0 || hits[0].Offset+hits[0].Length > len(second) {
			t.Fatalf("split %d: hits %+v", split, hits)
		}
		// Without the context, the second part leaks (the reason for RedactTail).
		if alone, _ := s.Redact([]byte(second)); string(alone) == string(c2) {
			t.Fatalf("split %d: the part alone is masked the same; the test proves nothing", split)
		}
	}
	// Nothing new holds a secret: the tail comes back as it is.
	data := []byte(pem + "clean line\n")
	got, hits := s.RedactTail(data, len(pem))
	if hits != nil || string(got) != "clean line\n" {
		t.Fatalf("clean tail: %q %v", got, hits)
	}
}

// FuzzRedactTail: for data cut after a line break, RedactTail gives exactly the part
// after the cut of Redact on the whole.
func FuzzRedactTail(f *testing.F) {
	for _, s := range samples() {
		f.Add(s.text, uint16(len(s.text)/2))
	}
	pem := pemBlock("RSA PRIVATE KEY", "fuzz", 4)
	f.Add("x\n"+pem+"y\n", uint16(40))
	s := New()
	f.Fuzz(func(t *testing.T, text string, at uint16) {
		data := []byte(text)
		from := min(int(at), len(data))
		if i := bytes.LastIndexByte(data[:from], '\n'); i >= 0 {
			from = i + 1
		} else {
			from = 0
		}
		whole, _ := s.Redact(data)
		got, hits := s.RedactTail(data, from)
		if !bytes.Equal(got, whole[from:]) {
			t.Fatalf("from %d: %q, want %q", from, got, whole[from:])
		}
		if (len(hits) > 0) != !bytes.Equal(got, data[from:]) {
			t.Fatalf("from %d: %d hits, changed %v", from, len(hits), !bytes.Equal(got, data[from:]))
		}
	})
}
