#!/usr/bin/env bash
# install.sh: set up mmreplicate as a systemd service on a Debian or Ubuntu host.
#
# Idempotent: every run brings the host to the same state and prints one line per
# action; a run that finds everything in place changes nothing and says so. The config
# is created from the template only when absent and is never overwritten. The service
# is enabled and started only once `mmreplicate check-config` accepts the config (no
# <<REPLACE_WITH_...>> placeholder left); otherwise the script prints the next steps
# and exits 0 with the unit installed but not started.
#
# DESTDIR=DIR prefixes every path (a staged install, used by the tests); it skips
# user and group creation, chown and systemctl.
set -euo pipefail

readonly SERVICE=mmreplicate
readonly SERVICE_USER=mmreplicate
readonly SERVICE_GROUP=mmreplicate
readonly BIN_PATH=/usr/local/bin/mmreplicate
readonly CONF_DIR=/etc/mmreplicate
readonly CONF_FILE=/etc/mmreplicate/mmreplicate.yml
readonly ENV_FILE=/etc/mmreplicate/env
readonly DATA_DIR=/var/lib/mmreplicate
readonly UNIT_FILE=/etc/systemd/system/mmreplicate.service

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly TEMPLATE_SRC=$SCRIPT_DIR/mmreplicate.yml.template
readonly UNIT_SRC=$SCRIPT_DIR/mmreplicate.service

usage() {
	cat <<EOF
usage: install.sh [--binary PATH] [--watch-group NAME] [--no-start] [--dry-run]

Sets up mmreplicate as a systemd service on a Debian or Ubuntu host. Safe to re-run.

  --binary PATH        the mmreplicate binary to install to $BIN_PATH
                       (default ./bin/mmreplicate, as built by 'make build')
  --watch-group NAME   add user $SERVICE_USER to group NAME, the group that can read the
                       agent's files (sessions, workspaces, memory databases)
  --no-start           install everything but do not enable or start the service
                       (disaster recovery: restore the data first, see RECOVERY.md)
  --dry-run            print every action without changing anything
  -h, --help           this help

What it does: system user and group $SERVICE_USER; $CONF_DIR (0750);
$DATA_DIR (0750, owned by $SERVICE_USER); the binary; $CONF_FILE
from the template if absent (never overwritten); the unit $UNIT_FILE;
then, if 'mmreplicate check-config' accepts the config, enables and starts the service.

Environment: DESTDIR=DIR installs under DIR (staged install): no user or group,
no chown, no systemctl.
EOF
}

die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

usage_error() {
	printf 'install.sh: %s (see install.sh -h)\n' "$*" >&2
	exit 2
}

binary=""
watch_group=""
dry_run=0
no_start=0
while (($# > 0)); do
	case $1 in
	--binary)
		(($# >= 2)) || usage_error "--binary needs a PATH"
		binary=$2
		shift 2
		;;
	--binary=*)
		binary=${1#*=}
		shift
		;;
	--watch-group)
		(($# >= 2)) || usage_error "--watch-group needs a group NAME"
		watch_group=$2
		shift 2
		;;
	--watch-group=*)
		watch_group=${1#*=}
		shift
		;;
	--dry-run)
		dry_run=1
		shift
		;;
	--no-start)
		no_start=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage_error "unknown argument '$1'"
		;;
	esac
done

DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
staged=0
[[ -z $DESTDIR ]] || staged=1

umask 022
changes=0

out() { printf '%s\n' "$*"; }

# act DESCRIPTION COMMAND...: one line saying what is done, then doing it (unless
# --dry-run). Every change the script makes goes through here, so it is counted.
act() {
	local desc=$1
	shift
	changes=$((changes + 1))
	if ((dry_run)); then
		out "[dry-run] $desc"
		return 0
	fi
	out "$desc"
	"$@"
}

# root PATH: PATH under DESTDIR.
root() { printf '%s%s' "$DESTDIR" "$1"; }

# owner_note OWNER GROUP: " root:mmreplicate" for messages, nothing when staged.
owner_note() {
	((staged)) || printf ' %s:%s' "$1" "$2"
}

# --- checks before any change ---------------------------------------------------------

if ((!staged && !dry_run)) && [[ $EUID -ne 0 ]]; then
	die "must run as root (sudo $0 ...); or use --dry-run to see the actions, or DESTDIR=DIR for a staged install"
fi
[[ -f $TEMPLATE_SRC ]] || die "template $TEMPLATE_SRC is missing: run install.sh from a complete deploy/ folder"
[[ -f $UNIT_SRC ]] || die "unit $UNIT_SRC is missing: run install.sh from a complete deploy/ folder"

if [[ -z $binary ]]; then
	binary=./bin/mmreplicate
	if [[ ! -e $binary && -e $SCRIPT_DIR/../bin/mmreplicate ]]; then
		binary=$SCRIPT_DIR/../bin/mmreplicate
	fi
fi
[[ -f $binary ]] || die "binary $binary not found: build it with 'make build' or pass --binary PATH"
[[ -x $binary ]] || die "binary $binary is not executable (chmod 0755 $binary)"
new_version=$("$binary" version 2>/dev/null) ||
	die "'$binary version' failed: not an mmreplicate binary, or built for another machine"

if [[ -n $watch_group ]] && ((!staged)); then
	getent group "$watch_group" >/dev/null ||
		die "group $watch_group does not exist: give the group owning the agent's files (ls -ld /home/USER/.openclaw)"
fi
if ((!staged)); then
	for cmd in getent groupadd useradd usermod stat cmp install; do
		command -v "$cmd" >/dev/null || die "$cmd is missing: install.sh expects a Debian or Ubuntu host"
	done
fi

if ((staged)); then
	out "DESTDIR=$DESTDIR: staged install under it; skipping useradd, chown and systemctl"
fi
if ((dry_run)); then
	out "dry run: nothing will be changed"
fi
out "binary $binary: $new_version"

# --- user and group -------------------------------------------------------------------

group_changed=0
setup_user() {
	if ((staged)); then
		out "skip user and group $SERVICE_USER (DESTDIR set)"
		[[ -z $watch_group ]] || out "skip adding $SERVICE_USER to group $watch_group (DESTDIR set)"
		return 0
	fi
	if getent group "$SERVICE_GROUP" >/dev/null; then
		out "keep existing group $SERVICE_GROUP"
	else
		act "create system group $SERVICE_GROUP" groupadd --system "$SERVICE_GROUP"
	fi
	if id -u "$SERVICE_USER" >/dev/null 2>&1; then
		out "keep existing user $SERVICE_USER"
	else
		act "create system user $SERVICE_USER (home $DATA_DIR, no login shell)" \
			useradd --system --gid "$SERVICE_GROUP" --home-dir "$DATA_DIR" --no-create-home \
			--shell /usr/sbin/nologin --comment "mmreplicate daemon" "$SERVICE_USER"
	fi
	if [[ -n $watch_group ]]; then
		if id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qxF -- "$watch_group"; then
			out "keep user $SERVICE_USER in group $watch_group"
		else
			act "add user $SERVICE_USER to group $watch_group (reads the agent's files)" \
				usermod -aG "$watch_group" "$SERVICE_USER"
			group_changed=1
		fi
	fi
}

# --- directories and files ------------------------------------------------------------

# ensure_parent DIR: a system directory (/etc, /usr/local/bin, ...) that must exist; its
# mode and owner are left alone when it does.
ensure_parent() {
	local p
	p=$(root "$1")
	[[ -d $p ]] || act "create dir $p" mkdir -p -- "$p"
}

# ensure_dir DIR MODE OWNER GROUP: one of our directories, with exactly that mode and owner.
ensure_dir() {
	local dir=$1 mode=$2 owner=$3 group=$4 p cur kept=1
	p=$(root "$dir")
	ensure_parent "$(dirname -- "$dir")"
	if [[ ! -d $p ]]; then
		[[ ! -e $p ]] || die "$p exists and is not a directory"
		act "create dir $p ($mode$(owner_note "$owner" "$group"))" make_dir "$p" "$mode" "$owner" "$group"
		return 0
	fi
	cur=$(stat -c %a -- "$p")
	if [[ $cur != "${mode#0}" ]]; then
		act "set mode $mode on $p (was $cur)" chmod "$mode" -- "$p"
		kept=0
	fi
	if ((!staged)); then
		cur=$(stat -c %U:%G -- "$p")
		if [[ $cur != "$owner:$group" ]]; then
			act "set owner $owner:$group on $p (was $cur)" chown "$owner:$group" -- "$p"
			kept=0
		fi
	fi
	((!kept)) || out "keep dir $p"
}

make_dir() {
	install -d -m "$2" -- "$1"
	((staged)) || chown "$3:$4" -- "$1"
}

# put_file SRC DST MODE OWNER GROUP: copy atomically (a running binary is replaced, not
# rewritten in place).
put_file() {
	local tmp
	tmp=$(mktemp "$(dirname -- "$2")/.$(basename -- "$2").XXXXXX")
	if cp -- "$1" "$tmp" && chmod "$3" -- "$tmp" && { ((staged)) || chown "$4:$5" -- "$tmp"; } &&
		mv -f -- "$tmp" "$2"; then
		return 0
	fi
	rm -f -- "$tmp"
	return 1
}

# install_file SRC DST MODE OWNER GROUP WHAT: a file this script owns (binary, unit):
# replaced when its content differs. Sets file_changed.
file_changed=0
install_file() {
	local src=$1 dst=$2 mode=$3 owner=$4 group=$5 what=$6 p cur kept=1 note
	p=$(root "$dst")
	file_changed=0
	ensure_parent "$(dirname -- "$dst")"
	if [[ -f $p ]] && cmp -s -- "$src" "$p"; then
		cur=$(stat -c %a -- "$p")
		if [[ $cur != "${mode#0}" ]]; then
			act "set mode $mode on $p (was $cur)" chmod "$mode" -- "$p"
			kept=0
		fi
		if ((!staged)); then
			cur=$(stat -c %U:%G -- "$p")
			if [[ $cur != "$owner:$group" ]]; then
				act "set owner $owner:$group on $p (was $cur)" chown "$owner:$group" -- "$p"
				kept=0
			fi
		fi
		((!kept)) || out "keep $what $p (unchanged)"
		return 0
	fi
	note="$mode$(owner_note "$owner" "$group")"
	if [[ -e $p ]]; then
		act "update $what $p ($note)" put_file "$src" "$p" "$mode" "$owner" "$group"
	else
		act "install $what $p ($note)" put_file "$src" "$p" "$mode" "$owner" "$group"
	fi
	file_changed=1
}

# mode_warn FILE MASK ADVICE: a warning (not an action) when FILE has any bit of MASK.
mode_warn() {
	local perm
	perm=$(stat -c %a -- "$1")
	if (((8#$perm & $2) != 0)); then
		out "warning: $1 has mode $perm and holds secrets: $3"
	fi
}

install_config() {
	local p
	p=$(root "$CONF_FILE")
	if [[ -e $p ]]; then
		out "keep existing $p (never overwritten)"
		mode_warn "$p" 8#007 "chmod 0640 $p"
		return 0
	fi
	act "create $p from the template (0640$(owner_note root "$SERVICE_GROUP"))" \
		put_file "$TEMPLATE_SRC" "$p" 0640 root "$SERVICE_GROUP"
}

# --- start ----------------------------------------------------------------------------

# load_env FILE: export the KEY=value lines of a systemd EnvironmentFile, so the config
# check sees the same ${NAME} values as the service.
load_env() {
	local line key val
	[[ -r $1 ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line#"${line%%[![:space:]]*}"}
		[[ -n $line && $line != \#* && $line != \;* ]] || continue
		line=${line#export }
		[[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
		key=${BASH_REMATCH[1]}
		val=${BASH_REMATCH[2]}
		val=${val%"${val##*[![:space:]]}"}
		if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then
			val=${BASH_REMATCH[1]}
		fi
		export "$key=$val"
	done <"$1"
}

# check_config: run check-config the way the service will: as its user, with its
# environment file, from /. Staged: the staged binary on the staged config.
check_config() {
	if ((staged)); then
		"$(root "$BIN_PATH")" check-config --config "$(root "$CONF_FILE")"
		return
	fi
	(
		cd /
		load_env "$ENV_FILE"
		if command -v setpriv >/dev/null; then
			exec setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_GROUP" --init-groups -- \
				"$BIN_PATH" check-config --config "$CONF_FILE"
		fi
		exec "$BIN_PATH" check-config --config "$CONF_FILE"
	)
}

# rerun_command: this script's command line without --no-start and --dry-run.
rerun_command() {
	local cmd
	cmd="sudo $0"
	((!staged)) || cmd="DESTDIR=$DESTDIR $0"
	[[ $binary == ./bin/mmreplicate ]] || cmd+=" --binary $binary"
	[[ -z $watch_group ]] || cmd+=" --watch-group $watch_group"
	printf '%s' "$cmd"
}

not_ready() {
	local msg=$1 conf left n=0
	conf=$(root "$CONF_FILE")
	out "not started: the config is not ready: $msg"
	left=$(grep -n -o '<<REPLACE_WITH_[A-Za-z0-9_]*>>' -- "$conf" 2>/dev/null |
		while IFS=: read -r line ph; do
			sed -n "${line}p" -- "$conf" | grep -q '^[[:space:]]*#' || printf 'line %s %s, ' "$line" "$ph"
		done) || true
	out "next steps:"
	if [[ -n $left ]]; then
		out "  $((++n)). edit $conf and replace every placeholder (its top comment says what each is;"
		out "     a rebuilt host takes the values from the password manager, with the same host name):"
		out "     ${left%, }"
		out "  $((++n)). secrets written as \${NAME} in the config go in $(root "$ENV_FILE") as NAME=value lines, mode 0600"
	else
		out "  $((++n)). fix what the line above names in $conf (or in $(root "$ENV_FILE"))"
	fi
	if [[ $msg == *"permission denied"* ]]; then
		out "  $((++n)). let user $SERVICE_USER read the agent's files: re-run with --watch-group GROUP (the group"
		out "     owning them, which must be able to read them), or see AmbientCapabilities= in $UNIT_FILE"
	fi
	out "  $((++n)). re-run: $(rerun_command)"
	((!staged)) || return 0
	out "     (it checks the config as user $SERVICE_USER, then enables and starts $SERVICE;"
	out "     by hand: systemctl enable --now $SERVICE; logs: journalctl -u $SERVICE -n 50)"
}

start_service() {
	local msg systemd=1
	if ((staged)); then
		out "skip systemctl daemon-reload, enable and start (DESTDIR set)"
		systemd=0
	elif [[ ! -d /run/systemd/system ]]; then
		out "skip systemctl: systemd is not running on this machine (start '$BIN_PATH run' another way)"
		systemd=0
	fi
	if ((systemd && unit_changed)); then
		act "reload systemd units (daemon-reload)" systemctl daemon-reload
	fi
	if ((dry_run)); then
		out "[dry-run] then: check the config with 'mmreplicate check-config' as user $SERVICE_USER; if it passes, enable and start $SERVICE"
		return 0
	fi
	if ! msg=$(check_config 2>&1); then
		not_ready "$(printf '%s' "$msg" | tail -n 1)"
		if ((systemd)) && systemctl is-active --quiet "$SERVICE"; then
			out "note: $SERVICE is running; it keeps the config it started with until restarted"
		fi
		return 0
	fi
	out "config $(root "$CONF_FILE") is valid"
	if ((no_start)); then
		out "not started (--no-start): when ready, run: systemctl enable --now $SERVICE"
		return 0
	fi
	((systemd)) || return 0
	if systemctl is-enabled --quiet "$SERVICE"; then
		out "keep $SERVICE enabled"
	else
		act "enable $SERVICE (starts at boot)" systemctl enable --quiet "$SERVICE"
	fi
	if ! systemctl is-active --quiet "$SERVICE"; then
		act "start $SERVICE" systemctl start "$SERVICE" ||
			die "$SERVICE did not start: see journalctl -u $SERVICE -n 50 --no-pager"
	elif ((bin_changed || unit_changed || group_changed)); then
		act "restart $SERVICE (binary, unit or groups changed)" systemctl restart "$SERVICE" ||
			die "$SERVICE did not restart: see journalctl -u $SERVICE -n 50 --no-pager"
	else
		out "keep $SERVICE running"
	fi
}

# --- main -----------------------------------------------------------------------------

setup_user
ensure_dir "$CONF_DIR" 0750 root "$SERVICE_GROUP"
ensure_dir "$DATA_DIR" 0750 "$SERVICE_USER" "$SERVICE_GROUP"

install_file "$binary" "$BIN_PATH" 0755 root root binary
bin_changed=$file_changed
install_config
if [[ -e $(root "$ENV_FILE") ]]; then
	mode_warn "$(root "$ENV_FILE")" 8#077 "chmod 0600 $(root "$ENV_FILE")"
fi
install_file "$UNIT_SRC" "$UNIT_FILE" 0644 root root "systemd unit"
unit_changed=$file_changed

start_service

if ((dry_run)); then
	out "dry run: $changes change(s) would be made; nothing was changed"
elif ((changes == 0)); then
	out "nothing changed: everything was already in place"
else
	out "done: $changes change(s)"
fi
