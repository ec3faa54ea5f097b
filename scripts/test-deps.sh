#!/usr/bin/env bash
# Installs the programs the integration tests drive, on a fresh Debian or Ubuntu machine:
# S3 clients for serve-s3, the sqlite3 shell as an outside writer, git for the git sink,
# the shell linter for deploy/install.sh, systemd-analyze for the unit file, promtool for the
# alert rules and chromium for the web console's browser tests.
# As root with apt-get it installs what is missing; otherwise it names the packages and
# exits 1, so `make test` never runs with a test tool silently absent.
set -euo pipefail

# command:package pairs, one per program a test runs.
pairs=(
  git:git
  aws:awscli
  s3cmd:s3cmd
  rclone:rclone
  sqlite3:sqlite3
  shellcheck:shellcheck
  systemd-analyze:systemd
  promtool:prometheus
  chromium:chromium
)

need=()
for pair in "${pairs[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1; then
    need+=("$pkg")
  fi
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "make test needs these Debian/Ubuntu packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi

echo "installing test tools: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null

missing=()
for pair in "${pairs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "still missing after apt-get install: ${missing[*]}" >&2
  exit 1
fi
