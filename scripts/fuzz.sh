#!/usr/bin/env bash
# Runs one fuzz target for a while: scripts/fuzz.sh PACKAGE TARGET FUZZTIME.
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" at the end of
# a duration-based -fuzztime when a worker is still busy (go.dev/issue/75804, fixed in
# Go 1.27); no input failed then, and none is written. Such a run is tried once more; any
# other failure, and above all one that wrote a failing input, fails at once.
set -uo pipefail
pkg=$1 target=$2 fuzztime=$3
go=${GO:-go}
for attempt in 1 2; do
  out=$("$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1)
  rc=$?
  printf '%s\n' "$out"
  if [ $rc -eq 0 ]; then
    exit 0
  fi
  if [ "$attempt" -eq 1 ] &&
     grep -q 'context deadline exceeded' <<<"$out" &&
     ! grep -Eq 'Failing input written|panic:|_test\.go:[0-9]+:' <<<"$out"; then
    echo "fuzz: $target stopped on the coordinator's deadline with no failing input; running it once more"
    continue
  fi
  exit $rc
done
