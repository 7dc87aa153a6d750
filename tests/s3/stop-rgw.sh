#!/bin/sh
# Stops the daemons that tests/s3/start-rgw.sh DIR started, by the PIDs it
# recorded in DIR/pids. Removes nothing but DIR/pids; a PID that now
# belongs to another program (not started with DIR/ceph.conf) is left
# alone.
#
#   tests/s3/stop-rgw.sh DIR
set -eu

DIR=${1:-}
if [ -z "$DIR" ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
[ -f "$DIR/pids" ] || exit 0

if [ "${2:-}" != "--locked" ]; then
	exec 9>"$DIR/.lock"
	flock -w 60 9 || {
		echo "stop-rgw: $DIR is locked by another start/stop" >&2
		exit 1
	}
fi

# Ours: alive and started with our config file.
is_ours() {
	[ -r "/proc/$1/cmdline" ] &&
		tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$DIR/ceph.conf"
}

pids=""
# radosgw first, the mon last: a daemon whose mon is gone hangs in
# shutdown.
for pid in $(tac "$DIR/pids" | awk '{ print $1 }'); do
	case $pid in
	'' | *[!0-9]*) continue ;;
	esac
	if is_ours "$pid"; then
		# radosgw keeps no state of its own (everything is in
		# RADOS) and takes about 3 s to exit on SIGTERM.
		sig=TERM
		grep -q "^$pid client\.rgw\." "$DIR/pids" && sig=KILL
		kill "-$sig" "$pid" 2>/dev/null || :
		pids="$pids $pid"
	fi
done

# Up to 10 s for a clean exit, then SIGKILL.
i=0
while [ -n "$pids" ] && [ $i -lt 100 ]; do
	left=""
	for pid in $pids; do
		if is_ours "$pid"; then
			left="$left $pid"
		fi
	done
	pids=$left
	[ -n "$pids" ] || break
	sleep 0.1
	i=$((i + 1))
done
for pid in $pids; do
	if is_ours "$pid"; then
		echo "stop-rgw: $pid did not exit, killing it" >&2
		kill -KILL "$pid" 2>/dev/null || :
	fi
done
rm -f "$DIR/pids"
