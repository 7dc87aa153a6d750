#!/bin/sh
# Starts a single-node Ceph cluster (one mon, one memstore OSD, one
# radosgw) on 127.0.0.1 with all its state in DIR, creates an S3 user with
# fixed test keys and a bucket, and waits until a PUT works.
#
#   tests/s3/start-rgw.sh DIR
#
# Prints shell `export` lines (also written to DIR/env) on stdout:
#   KURA_S3_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
# Everything else goes to stderr; daemon logs are in DIR/log/.
#
# Environment (all optional):
#   KURA_RGW_PORT     radosgw's HTTP port (7480)
#   KURA_MON_PORT     the mon's msgr2 port (13300); the OSD binds in
#                     KURA_MON_PORT+1 .. KURA_MON_PORT+40
#   KURA_RGW_BUCKET   bucket to create (kura-test)
#   KURA_RGW_TIMEOUT  seconds to wait for each step (60)
#
# Installs radosgw ceph-mon ceph-osd ceph-common when missing (as root).
# Re-runnable: daemons of an earlier run in DIR are stopped (by the PIDs
# it recorded) and the cluster is made anew; memstore keeps objects in
# memory only, so nothing of value is lost. tests/s3/stop-rgw.sh DIR stops
# it.
set -eu

DIR=${1:-}
if [ -z "$DIR" ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
RGW_PORT=${KURA_RGW_PORT:-7480}
MON_PORT=${KURA_MON_PORT:-13300}
BUCKET=${KURA_RGW_BUCKET:-kura-test}
TIMEOUT=${KURA_RGW_TIMEOUT:-60}
ACCESS_KEY=KURATESTACCESSKEY001
SECRET_KEY=kuraTestSecretKey0123456789abcdefghijklm
REGION=us-east-1
RGW_NAME=client.rgw.kura
PORT_MIN=$((MON_PORT + 1))
PORT_MAX=$((MON_PORT + 40))

log() {
	echo "start-rgw: $*" >&2
}

# Step timings, for KURA_RGW_VERBOSE=1.
step() {
	[ -z "${KURA_RGW_VERBOSE:-}" ] || log "+$(($(now_ms) - T0)) ms: $*"
}

die() {
	echo "start-rgw: $*" >&2
	exit 1
}

now_ms() {
	date +%s%3N
}

T0=$(now_ms)

# ---- packages ----
need_pkgs=""
for p in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw \
	radosgw-admin:radosgw ceph:ceph-common monmaptool:ceph-common \
	curl:curl; do
	cmd=${p%%:*}
	pkg=${p#*:}
	if ! command -v "$cmd" >/dev/null 2>&1; then
		case " $need_pkgs " in
		*" $pkg "*) ;;
		*) need_pkgs="$need_pkgs $pkg" ;;
		esac
	fi
done
if [ -n "$need_pkgs" ]; then
	[ "$(id -u)" = 0 ] || die "missing$need_pkgs; run as root to install"
	log "installing$need_pkgs"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	if ! apt-get install -y -q -o DPkg::Lock::Timeout=300 \
		--no-install-recommends $need_pkgs \
		>"${TMPDIR:-/tmp}/kura-rgw-apt.log" 2>&1; then
		apt-get update -q >>"${TMPDIR:-/tmp}/kura-rgw-apt.log" 2>&1 ||:
		# shellcheck disable=SC2086
		apt-get install -y -q -o DPkg::Lock::Timeout=300 \
			--no-install-recommends $need_pkgs \
			>>"${TMPDIR:-/tmp}/kura-rgw-apt.log" 2>&1 ||
			die "apt-get install failed, see ${TMPDIR:-/tmp}/kura-rgw-apt.log"
	fi
	T0=$(now_ms)
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# Unix sockets (admin sockets) are limited to 107 bytes; ceph.conf
# values and our command lines do not quote.
if [ ${#DIR} -gt 60 ]; then
	die "DIR path too long for admin sockets (max 60 bytes): $DIR"
fi
case $DIR in
*[!A-Za-z0-9/._-]*) die "DIR may hold only A-Z a-z 0-9 / . _ -: $DIR" ;;
esac

# One start or stop at a time per directory.
exec 9>"$DIR/.lock"
flock -w "$TIMEOUT" 9 || die "$DIR is locked by another start/stop"

# ---- stop what an earlier run left ----
HERE=$(cd "$(dirname "$0")" && pwd)
sh "$HERE/stop-rgw.sh" "$DIR" --locked >&2

step "old daemons stopped"
port_busy() {
	# ss is in iproute2, which a minimal image may lack: fall back to
	# bash's /dev/tcp, then to curl.
	if command -v ss >/dev/null 2>&1; then
		ss -Htln "sport = :$1" 2>/dev/null | grep -q .
	elif command -v bash >/dev/null 2>&1; then
		bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
	else
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"
	fi
}
for p in "$RGW_PORT" "$MON_PORT"; do
	if port_busy "$p"; then
		die "port $p on 127.0.0.1 is in use (set KURA_RGW_PORT / KURA_MON_PORT)"
	fi
done

rm -rf "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/log" "$DIR/monmap" \
	"$DIR/ceph.conf" "$DIR/env" "$DIR/pids"
mkdir -p "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/log"
: >"$DIR/pids"
# A failed start leaves nothing running.
# shellcheck disable=SC2154
trap 'rc=$?; if [ $rc -ne 0 ]; then sh "$HERE/stop-rgw.sh" "$DIR" --locked >&2; fi' EXIT

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
CONF=$DIR/ceph.conf

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon_host = v2:127.0.0.1:$MON_PORT
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# with auth none, radosgw loops on error -13 unless the mon client mode
# is crc
ms_mon_client_mode = crc
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_port_min = $PORT_MIN
ms_bind_port_max = $PORT_MAX
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
pid_file = $DIR/run/\$name.pid
keyring = $DIR/keyring
mon_data = $DIR/mon/\$cluster-\$id
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = 4294967296
osd_max_object_name_len = 1024
osd_max_object_namespace_len = 256
err_to_stderr = true
log_to_stderr = false

[mon]
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
mon_osd_down_out_interval = 0

[$RGW_NAME]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw_thread_pool_size = 64
# bucket.localhost:PORT works for virtual-host style (curl resolves
# *.localhost to loopback itself)
rgw_dns_name = localhost
EOF
: >"$DIR/keyring"

CEPH="ceph -c $CONF --connect-timeout $TIMEOUT"

# Starts a daemon in the foreground mode in the background and records
# its PID; stdio goes to DIR/log so that a caller's pipe is not held.
start_daemon() {
	name=$1
	shift
	"$@" -f </dev/null >"$DIR/log/$name.out" 2>&1 9>&- &
	echo "$! $name" >>"$DIR/pids"
}

wait_for() {
	what=$1
	shift
	end=$(($(date +%s) + TIMEOUT))
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$end" ]; then
			die "timed out waiting for $what (logs in $DIR/log)"
		fi
		sleep 0.1
	done
}

step mon
# ---- mon ----
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" \
	"$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" \
	>"$DIR/log/mon-mkfs.out" 2>&1 || {
	cat "$DIR/log/mon-mkfs.out" >&2
	die "ceph-mon --mkfs failed"
}
start_daemon mon.a ceph-mon -c "$CONF" -i a

step osd
# ---- osd ----
osd_id=$($CEPH osd new "$OSD_UUID" 2>"$DIR/log/osd-new.out") || {
	cat "$DIR/log/osd-new.out" >&2
	die "ceph osd new failed"
}
mkdir -p "$DIR/osd/ceph-$osd_id"
ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$OSD_UUID" \
	>"$DIR/log/osd-mkfs.out" 2>&1 || {
	cat "$DIR/log/osd-mkfs.out" >&2
	die "ceph-osd --mkfs failed"
}
start_daemon "osd.$osd_id" ceph-osd -c "$CONF" -i "$osd_id"

osd_up() {
	$CEPH osd stat -f json 2>/dev/null |
		grep -q '"num_up_osds":1,.*"num_in_osds":1'
}
wait_for "the OSD to be up and in" osd_up

step radosgw
# ---- radosgw ----
start_daemon "$RGW_NAME" radosgw -c "$CONF" -n "$RGW_NAME"

rgw_answers() {
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$RGW_PORT/"
}
wait_for "radosgw on port $RGW_PORT" rgw_answers

step user
radosgw-admin -c "$CONF" user create --uid kura-test \
	--display-name "kura tests" --access-key "$ACCESS_KEY" \
	--secret-key "$SECRET_KEY" >"$DIR/log/user-create.out" 2>&1 ||
	radosgw-admin -c "$CONF" user info --uid kura-test \
		>>"$DIR/log/user-create.out" 2>&1 || {
	cat "$DIR/log/user-create.out" >&2
	die "radosgw-admin user create failed"
}

# SigV4 with curl: x-amz-content-sha256 must be sent (radosgw answers 403
# without it).
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_put() {
	code=$(curl -s -o "$DIR/log/curl.out" -w '%{http_code}' --max-time 5 \
		--aws-sigv4 "aws:amz:$REGION:s3" \
		--user "$ACCESS_KEY:$SECRET_KEY" \
		-H "x-amz-content-sha256: $EMPTY_SHA" \
		-X PUT --data-binary '' \
		"http://127.0.0.1:$RGW_PORT/$1") || return 1
	[ "$code" = 200 ]
}
bucket_ready() {
	s3_put "$BUCKET" && s3_put "$BUCKET/.kura-rgw-probe"
}
step bucket
wait_for "a PUT into bucket $BUCKET" bucket_ready

cat >"$DIR/env" <<EOF
export KURA_S3_URL='s3:http://127.0.0.1:$RGW_PORT/$BUCKET'
export AWS_ACCESS_KEY_ID='$ACCESS_KEY'
export AWS_SECRET_ACCESS_KEY='$SECRET_KEY'
export AWS_REGION='$REGION'
EOF
T1=$(now_ms)
log "radosgw ready on 127.0.0.1:$RGW_PORT bucket $BUCKET" \
	"in $((T1 - T0)) ms (state in $DIR)"
cat "$DIR/env"
