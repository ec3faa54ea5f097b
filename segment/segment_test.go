package segment

import (
	"errors"
	"testing"
	"time"

	"github.com/mmreplicate/mmreplicate/journal"
)

func TestKeyRoundTripAndOrder(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 18, 0, 0, 123456789, time.UTC).UnixNano()
	recs := []journal.Record{{Seq: 9, Time: t0}, {Seq: 12, Time: t0 + 5e9}}
	k := Key("vps-1", recs)
	in, err := ParseKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if in.Host != "vps-1" || in.FirstSeq != 9 || in.LastSeq != 12 || in.FirstTime.UnixNano() != t0 || in.LastTime.UnixNano() != t0+5e9 {
		t.Fatalf("parsed %+v from %s", in, k)
	}
	later := Key("vps-1", []journal.Record{{Seq: 13, Time: t0 + 6e9}})
	if later <= k {
		t.Fatalf("keys do not sort by sequence: %s <= %s", later, k)
	}
	for _, bad := range []string{"", "hosts/x/segments/1-2.seg", "hosts//segments/" + k[len("hosts/vps-1/segments/"):], "other/" + k, k + ".tmp"} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v", bad, err)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	recs := []journal.Record{
		{Seq: 1, Time: 10, Op: journal.OpAppend, Source: "s", Path: "a.jsonl", Data: []byte("{\"a\":1}\n")},
		{Seq: 2, Time: 11, Op: journal.OpDelete, Source: "s", Path: "b.jsonl"},
	}
	body := Encode(recs)
	got, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].Data) != "{\"a\":1}\n" || got[1].Op != journal.OpDelete {
		t.Fatalf("got %+v", got)
	}
	in, _ := ParseKey(Key("h", recs))
	if err := in.Check(got); err != nil {
		t.Fatal(err)
	}
	if err := in.Check(got[:1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short segment passed Check: %v", err)
	}
	body[len(body)/2] ^= 0xff
	if _, err := Decode(body); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged body: %v", err)
	}
	if _, err := Decode(body[:len(body)-3]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated body: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]journal.Record{{Seq: 1, Op: journal.OpAppend, Source: "s", Path: "p", Data: []byte("x\n")}}))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must survive a round trip unchanged.
		again, err := Decode(Encode(recs))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("round trip: %d records, then %d (%v)", len(recs), len(again), err)
		}
		for i := range recs {
			if again[i].Seq != recs[i].Seq || again[i].Time != recs[i].Time || string(again[i].Data) != string(recs[i].Data) || again[i].Path != recs[i].Path {
				t.Fatalf("record %d changed in a round trip", i)
			}
		}
	})
}
