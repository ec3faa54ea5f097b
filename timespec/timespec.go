// Package timespec reads and writes the TIME values that restore, serve-s3 and
// the other commands accept, so every command agrees on one grammar and one
// error message.
package timespec

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBadTime is wrapped by every error Parse returns, so callers can map a bad
// TIME to the "bad usage" exit status with errors.Is instead of matching text.
var ErrBadTime = errors.New("bad TIME")

// Latest is the keyword that names the newest replicated state; it is exported
// so callers that build paths such as "@latest/" use the same spelling.
const Latest = "latest"

// accepted lists every form in one line; it is repeated in each error so the
// operator can fix the argument without opening the documentation.
const accepted = "use RFC 3339 (2026-11-26T18:00:00Z, 2026-11-26T19:00:00.250+01:00), latest, or a negative duration (-90s, -1h30m)"

// Bounds of what Format can write and Parse can read back: RFC 3339 has a
// four-digit year, and a zone offset can push a parsed time just outside it.
var (
	minTime = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999999999, time.UTC)
)

// Parse reads a TIME as SPEC.md defines: RFC 3339 with optional fraction and zone
// ("2026-11-26T18:00:00Z", "2026-11-26T19:00:00.250+01:00"), "latest", or a negative Go
// duration relative to now ("-90s", "-1h30m").
//
// "latest" returns latest=true and t=now. Every returned time is in UTC so
// that callers compare and format instants without caring about the zone the
// operator typed. Surrounding blanks are ignored because shell quoting and
// copy-paste often add them. A zone is required: a time without one is
// ambiguous between the operator's zone and the host's, and guessing wrong
// would restore the wrong hour.
func Parse(s string, now time.Time) (t time.Time, latest bool, err error) {
	v := strings.TrimSpace(s)
	switch {
	case v == Latest:
		return now.UTC(), true, nil
	case strings.HasPrefix(v, "-"):
		d, perr := time.ParseDuration(v)
		if perr != nil || d >= 0 {
			return time.Time{}, false, bad(s)
		}
		t = now.Add(d).UTC()
	default:
		// A duration-shaped value without the minus sign ("90s") would point
		// into the future; it falls through to the RFC 3339 parse and fails
		// there with the message that shows the negative form.
		var perr error
		t, perr = time.Parse(time.RFC3339Nano, v)
		if perr != nil {
			return time.Time{}, false, bad(s)
		}
		t = t.UTC()
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, false, bad(s)
	}
	return t, false, nil
}

// bad builds the single error shape for every rejected input; %q keeps the
// message on one line whatever the input holds.
func bad(s string) error {
	return fmt.Errorf("%w %q: %s", ErrBadTime, s, accepted)
}

// Format writes t the way Parse reads it back: RFC 3339 in UTC with as many
// fraction digits as needed (none for whole seconds), so the same instant
// always prints the same text in keys, listings and logs.
func Format(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
