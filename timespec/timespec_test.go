package timespec

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// now is fixed, and deliberately not in UTC, so the tests prove that relative
// times and "latest" come back in UTC.
var now = time.Date(2026, time.November, 26, 19, 30, 0, 0, time.FixedZone("CET", 3600))

func TestParseGood(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Time
		latest bool
	}{
		{"2026-11-26T18:00:00Z", time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC), false},
		{"2026-11-26T19:00:00.250+01:00", time.Date(2026, 11, 26, 18, 0, 0, 250e6, time.UTC), false},
		{"2026-11-26T18:00:00.123456789Z", time.Date(2026, 11, 26, 18, 0, 0, 123456789, time.UTC), false},
		{"2026-11-26T13:00:00-05:00", time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC), false},
		{" 2026-11-26T18:00:00Z\n", time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC), false},
		{"latest", now.UTC(), true},
		{"-90s", time.Date(2026, 11, 26, 18, 28, 30, 0, time.UTC), false},
		{"-1h30m", time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC), false},
		{"-1ns", time.Date(2026, 11, 26, 18, 29, 59, 999999999, time.UTC), false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, latest, err := Parse(tt.in, now)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) || latest != tt.latest {
				t.Fatalf("Parse(%q) = %v, %v; want %v, %v", tt.in, got, latest, tt.want, tt.latest)
			}
			if got.Location() != time.UTC {
				t.Fatalf("Parse(%q) location = %v, want UTC", tt.in, got.Location())
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []string{
		"",
		"   ",
		"yesterday",
		"90s",
		"1h",
		"-0s",
		"-",
		"--1s",
		"-1x",
		"Latest",
		"2026-11-26T18:00:00",       // no zone
		"2026-11-26 18:00:00Z",      // space instead of T
		"2026-11-26",                // date only
		"2026-11-26T25:00:00Z",      // bad hour
		"2026-02-30T18:00:00Z",      // bad day
		"0000-01-01T00:00:00+01:00", // before year 0 once in UTC
		"9999-12-31T23:00:00-01:00", // after year 9999 once in UTC
		"1767225600",
		"line\nbreak",
	}
	for _, in := range tests {
		t.Run(strconv.Quote(in), func(t *testing.T) {
			got, latest, err := Parse(in, now)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, %v; want an error", in, got, latest)
			}
			if !errors.Is(err, ErrBadTime) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrBadTime", in, err)
			}
			msg := err.Error()
			for _, want := range []string{strconv.Quote(in), "RFC 3339", "latest", "negative duration", "-90s"} {
				if !strings.Contains(msg, want) {
					t.Errorf("Parse(%q) error %q lacks %q", in, msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("Parse(%q) error spans lines: %q", in, msg)
			}
		})
	}
}

func TestParseMessage(t *testing.T) {
	_, _, err := Parse("yesterday", now)
	want := `bad TIME "yesterday": use RFC 3339 (2026-11-26T18:00:00Z, 2026-11-26T19:00:00.250+01:00), latest, or a negative duration (-90s, -1h30m)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC), "2026-11-26T18:00:00Z"},
		{time.Date(2026, 11, 26, 19, 0, 0, 250e6, time.FixedZone("", 3600)), "2026-11-26T18:00:00.25Z"},
		{time.Date(2026, 11, 26, 18, 0, 0, 1, time.UTC), "2026-11-26T18:00:00.000000001Z"},
	}
	for _, tt := range tests {
		if got := Format(tt.in); got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParse checks that no input panics, that failures always wrap
// ErrBadTime, and that every accepted instant survives Format and Parse
// unchanged, which is what keys and listings built with Format rely on.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"2026-11-26T18:00:00Z", "2026-11-26T19:00:00.250+01:00", "latest",
		"-90s", "-1h30m", "90s", "", "yesterday", "2026-11-26T18:00:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, latest, err := Parse(s, now)
		if err != nil {
			if !errors.Is(err, ErrBadTime) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrBadTime", s, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("Parse(%q) error spans lines: %q", s, err)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("Parse(%q) location = %v, want UTC", s, got.Location())
		}
		if latest {
			if !got.Equal(now) {
				t.Fatalf("Parse(%q) latest time = %v, want %v", s, got, now)
			}
			return
		}
		text := Format(got)
		back, latest2, err := Parse(text, now)
		if err != nil || latest2 || !back.Equal(got) {
			t.Fatalf("Parse(%q) = %v; Format = %q; Parse again = %v, %v, %v", s, got, text, back, latest2, err)
		}
	})
}
