#!/bin/sh
# make bench / make bench-quick: measures kura on the fs backend, kura on
# S3 (a private Ceph RGW, or KURA_BENCH_S3_URL) and Debian's Dovecot, one
# server after the other, with the same kura-bench profiles, seeds and
# durations, plus
#   - a raw S3 baseline (PUT/GET of 4 KiB and 64 KiB objects at the bench's
#     concurrency, libs3 client: bench/s3_baseline.c; curl if libs3 fails),
#   - memory per idle connection (server RSS/PSS with M connections in
#     IDLE minus before, divided by M),
#   - the cold-cache time to UID FETCH 1:* (FLAGS ENVELOPE) on a
#     10,000-message mailbox (kura's cache directory deleted and kura
#     restarted; for Dovecot its index files deleted),
# and writes bench/BENCH.md (QUICK=1: bench/BENCH-quick.md, never
# BENCH.md) from the results in BENCH_OUT. Every failure is listed in the
# report; the exit status is 1 when there was one, 0 otherwise.
#
# Environment (defaults: full run / QUICK=1):
#   QUICK            1: a short run for development (under 3 minutes)
#   BENCH_SERVERS    ["kura kura-s3 dovecot"]
#   BENCH_PROFILES   ["login persistent append fetch idle"]
#   BENCH_DURATION   measured seconds per profile [25 / 2]
#   BENCH_WARMUP     unmeasured seconds before each profile [2 / 1]
#   BENCH_CLIENTS    concurrent sessions, also the S3 baseline's
#                    concurrency [20 / 10]
#   BENCH_USERS      users u1..uN (password pw<user>) [100 / 20]
#   BENCH_IDLE_CONNS connections held in IDLE by the idle profile and the
#                    memory measurement [1000 / 100]
#   BENCH_IDLE_CLIENTS  active sessions during the idle profile [BENCH_CLIENTS]
#   BENCH_SEED       [1]
#   BENCH_EXTRA      more kura-bench options for every profile, e.g. "--tls"
#   BENCH_COLD_MSGS  messages of the cold-cache mailbox [10000 / 1000]
#   BENCH_COLD_SERVERS  servers of the cold-cache test ["kura kura-s3 dovecot"]
#   BENCH_COLD_BATCH messages per APPEND when filling it (>1: MULTIAPPEND) [1]
#   BENCH_BASE_COUNT PUTs (and GETs) per object size in the S3 baseline
#                    [3000 / 300]
#   BENCH_MEM_HOLD   seconds the idle connections are held [8 / 5]
#   BENCH_MEM, BENCH_COLD, BENCH_BASELINE   0 skips that measurement [1]
#   BENCH_DROP_CACHES  1: also drop the OS page cache before the cold
#                    FETCH (sync; echo 3 > /proc/sys/vm/drop_caches) [0]
#   BENCH_OUT        result directory [bench/results/YYYYmmdd-HHMMSS, or
#                    bench/results/quick-YYYYmmdd-HHMMSS]
#   BENCH_REPORT     the report [bench/BENCH.md / bench/BENCH-quick.md]
#   BENCH_KEEP_WORK  1: keep the servers' temporary directory
#   KURA_WORKERS     kura-imapd worker threads [number of CPUs]
#   KURA_IMAPD       the kura-imapd binary [build/kura-imapd]
#   KURA_BENCH_S3_URL  s3:http[s]://HOST[:PORT]/BUCKET instead of the
#                    private RGW (MinIO, AWS S3; an empty bucket), with
#                    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [AWS_REGION,
#                    AWS_SESSION_TOKEN, KURA_S3_ADDRESSING, KURA_S3_CA_FILE]
# Servers run from a private temporary directory (/tmp/kura-bench.*) that
# is removed in the background at the end; nothing in /etc is changed. Dovecot (dovecot-imapd), Ceph
# (radosgw ceph-mon ceph-osd ceph-common) and libs3-dev are installed
# with apt if missing.
set -eu
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
STAMP=$(date +%Y%m%d-%H%M%S)
if [ "$QUICK" = 1 ]; then
	DURATION=${BENCH_DURATION:-2}
	WARMUP=${BENCH_WARMUP:-1}
	CLIENTS=${BENCH_CLIENTS:-10}
	USERS=${BENCH_USERS:-20}
	IDLE_CONNS=${BENCH_IDLE_CONNS:-100}
	COLD_MSGS=${BENCH_COLD_MSGS:-1000}
	BASE_COUNT=${BENCH_BASE_COUNT:-300}
	MEM_HOLD=${BENCH_MEM_HOLD:-5}
	OUT=${BENCH_OUT:-bench/results/quick-$STAMP}
	REPORT=${BENCH_REPORT:-bench/BENCH-quick.md}
else
	DURATION=${BENCH_DURATION:-25}
	WARMUP=${BENCH_WARMUP:-2}
	CLIENTS=${BENCH_CLIENTS:-20}
	USERS=${BENCH_USERS:-100}
	IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
	COLD_MSGS=${BENCH_COLD_MSGS:-10000}
	BASE_COUNT=${BENCH_BASE_COUNT:-3000}
	MEM_HOLD=${BENCH_MEM_HOLD:-8}
	OUT=${BENCH_OUT:-bench/results/$STAMP}
	REPORT=${BENCH_REPORT:-bench/BENCH.md}
fi
SERVERS=${BENCH_SERVERS:-"kura kura-s3 dovecot"}
PROFILES=${BENCH_PROFILES:-"login persistent append fetch idle"}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-$CLIENTS}
SEED=${BENCH_SEED:-1}
EXTRA=${BENCH_EXTRA:-}
COLD_SERVERS=${BENCH_COLD_SERVERS:-"kura kura-s3 dovecot"}
COLD_BATCH=${BENCH_COLD_BATCH:-1}
DO_MEM=${BENCH_MEM:-1}
DO_COLD=${BENCH_COLD:-1}
DO_BASELINE=${BENCH_BASELINE:-1}
BIN=build/bench/kura-bench
S3B=build/bench/s3-baseline

if [ "$QUICK" = 1 ] && [ "$(realpath -m "$REPORT")" = "$(realpath -m bench/BENCH.md)" ]; then
	echo "bench: QUICK=1 never writes bench/BENCH.md" >&2
	exit 2
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/kura-bench.XXXXXX)
chmod 0755 "$WORK"
: > "$OUT/failures.txt"
: > "$OUT/steps.tsv"
BG_PID=""

# shellcheck source=bench/servers.sh
. bench/servers.sh

T_START=$(date +%s)
log() { echo "bench: +$(($(date +%s) - T_START))s $*" >&2; }
fail() {
	log "FAILED: $*"
	echo "$*" >> "$OUT/failures.txt"
}
step() {
	printf '%s\t%s\t%s\n' "$(date +%s)" "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/steps.tsv"
	log "$*"
}

CLEANED=0
cleanup() {
	[ "$CLEANED" = 1 ] && return 0
	CLEANED=1
	if [ -n "$BG_PID" ]; then
		kill "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
	stop_server
	s3_teardown
	if [ "${BENCH_KEEP_WORK:-0}" = 1 ]; then
		log "servers' files kept in $WORK"
	else
		# deleting a few GB of small files takes a minute on some disks
		# (ext4 with discard): not worth waiting for
		log "removing $WORK in the background"
		nohup rm -rf "$WORK" </dev/null >/dev/null 2>&1 &
	fi
}
trap cleanup EXIT
trap 'fail "interrupted"; cleanup; exit 130' INT TERM

# An argv as one shell-quoted line, for the report.
show_cmd() {
	line=""
	for a in "$@"; do
		case $a in
		'' | *[!A-Za-z0-9_./:=,@+%-]*) a="'$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'" ;;
		esac
		line="$line${line:+ }$a"
	done
	printf '%s\n' "$line"
}

# ---- build ----

# make bench has built kura-bench already (make all); by hand, build it
# when a source is newer
step "build"
if [ ! -x "$BIN" ] || [ -n "$(find bench lib/util.c lib/buf.c lib/kstr.c \
	-name '*.[ch]' ! -name s3_baseline.c -newer "$BIN" 2>/dev/null | head -n 1)" ]; then
	sh bench/build.sh build
fi
build_s3_baseline() {
	if [ ! -f /usr/include/libs3.h ]; then
		log "installing libs3-dev"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			-o DPkg::Lock::Timeout=300 --no-install-recommends libs3-dev \
			> "$OUT/apt-libs3.log" 2>&1 || return 1
	fi
	# shellcheck disable=SC2086
	${CC:-cc} -std=gnu11 ${OPT:--O2 -g} -Wall -Wextra -Werror -Wformat=2 -Wshadow \
		-Wundef -Wvla -Wstrict-prototypes -Wmissing-prototypes -I. -D_GNU_SOURCE \
		-o "$S3B" bench/s3_baseline.c bench/bench_hist.c lib/util.c \
		-ls3 -ljansson > "$OUT/s3-baseline-build.log" 2>&1
}
S3B_OK=1
if [ "$DO_BASELINE" = 1 ] && { [ -x "$S3B" ] && [ -z "$(find bench/s3_baseline.c \
	bench/bench_hist.c bench/bench_hist.h lib/util.c -newer "$S3B")" ]; } ; then
	:
elif [ "$DO_BASELINE" = 1 ] && ! build_s3_baseline; then
	S3B_OK=0
	fail "s3-baseline (libs3) could not be built (see $OUT/apt-libs3.log, $OUT/s3-baseline-build.log); the S3 baseline uses curl"
fi

python3 - "$OUT/meta.json" "$QUICK" <<'EOF' || fail "cannot describe the machine (meta.json)"
import json, os, platform, subprocess, sys, time
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
cpu = ""
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break
mem = ""
for l in open("/proc/meminfo"):
    if l.startswith("MemTotal"):
        mem = "%.1f GiB" % (int(l.split()[1]) / 1048576)
m = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": sys.argv[2] == "1",
     "nproc": os.cpu_count(), "memory": mem, "kernel": platform.release(),
     "cpu": cpu, "load_start": open("/proc/loadavg").read().split()[:3],
     "kura_commit": sh("git rev-parse --short HEAD 2>/dev/null"),
     "dovecot": sh("dovecot --version 2>/dev/null"),
     "radosgw": sh("radosgw --version 2>/dev/null | head -1"),
     "libs3": sh("dpkg-query -W -f='${Version}' libs3-2 2>/dev/null"),
     "curl": sh("curl --version | head -1")}
json.dump(m, open(sys.argv[1], "w"), indent=2)
EOF
cat > "$OUT/config.json" <<EOF
{"duration": $DURATION, "warmup": $WARMUP, "clients": $CLIENTS, "users": $USERS,
 "idle_conns": $IDLE_CONNS, "idle_clients": $IDLE_CLIENTS, "seed": $SEED,
 "cold_msgs": $COLD_MSGS, "base_count": $BASE_COUNT, "mem_hold": $MEM_HOLD,
 "servers": "$SERVERS", "profiles": "$PROFILES", "extra": "$EXTRA",
 "cold_servers": "$COLD_SERVERS", "cold_batch": $COLD_BATCH,
 "mem": $DO_MEM, "cold": $DO_COLD, "baseline": $DO_BASELINE,
 "drop_caches": ${BENCH_DROP_CACHES:-0}, "s3_url_external": "${KURA_BENCH_S3_URL:-}"}
EOF

# ---- kura-bench profiles ----

run_profile() { # server profile
	srv=$1
	prof=$2
	clients=$CLIENTS
	idle=""
	if [ "$prof" = idle ]; then
		clients=$IDLE_CLIENTS
		idle="--idle-conns $IDLE_CONNS"
	fi
	# shellcheck disable=SC2086
	set -- "$BIN" --host 127.0.0.1 --port "$PORT" --users 'u%d' \
		--user-count "$USERS" --password 'pw%s' --clients "$clients" $idle \
		--duration "$DURATION" --warmup "$WARMUP" --seed "$SEED" \
		--profile "$prof" --json "$OUT/$srv-$prof.json" $EXTRA
	show_cmd "$@" > "$OUT/$srv-$prof.cmd"
	step "$srv: profile $prof (${DURATION}s)"
	rm -f "$OUT/$srv-$prof.json"
	if ! "$@" > "$OUT/$srv-$prof.txt" 2> "$OUT/$srv-$prof.err"; then
		fail "$srv: kura-bench --profile $prof exited with an error: $(tail -n 2 "$OUT/$srv-$prof.err" | tr '\n' ' ')"
		return 0
	fi
	cat "$OUT/$srv-$prof.txt" >&2
}

restart_server() { # server
	stop_server
	"start_$(echo "$1" | tr - _)"
}

# ---- memory per idle connection ----

# True while background job $1 runs (kill -0 also succeeds on a zombie).
bg_running() {
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ "$st" != Z ]
}

mem_test() { # server
	step "$1: memory with $IDLE_CONNS idle connections"
	if ! restart_server "$1"; then
		fail "$1: restart for the memory measurement failed"
		return 0
	fi
	sleep 1
	root=$SERVER_ROOT_PID
	if ! sh bench/proc-mem.sh "$root" > "$OUT/mem-$1-before.json"; then
		fail "$1: cannot read the memory of process $root"
		return 0
	fi
	srv=$1
	set -- "$BIN" --host 127.0.0.1 --port "$PORT" --users 'u%d' \
		--user-count "$USERS" --password 'pw%s' --profile idle \
		--idle-conns "$IDLE_CONNS" --clients 0 --duration "$MEM_HOLD" \
		--seed "$SEED" --json "$OUT/mem-$srv.bench.json"
	{
		echo "# restart the server, wait 1 s, then: sh bench/proc-mem.sh $root"
		show_cmd "$@"
		echo "# 1 s after it reports all connections in IDLE: sh bench/proc-mem.sh $root, 3 times 0.3 s apart (median)"
	} > "$OUT/mem-$srv.cmd"
	err=$OUT/mem-$srv.err
	"$@" > "$OUT/mem-$srv.txt" 2> "$err" &
	BG_PID=$!
	i=0
	while ! grep -q 'idle connections in IDLE' "$err" 2>/dev/null; do
		bg_running "$BG_PID" || break
		i=$((i + 1))
		[ $i -gt 1500 ] && break
		sleep 0.2
	done
	grep -q 'idle connections in IDLE' "$err" ||
		fail "$srv: kura-bench never reported its idle connections established"
	sleep 1
	for k in 1 2 3; do
		sh bench/proc-mem.sh "$root" > "$OUT/mem-$srv-during-$k.json" || true
		sleep 0.3
	done
	if ! bg_running "$BG_PID"; then
		fail "$srv: the idle connections were closed before the memory was sampled (BENCH_MEM_HOLD=$MEM_HOLD too short?)"
	fi
	if ! wait "$BG_PID"; then
		fail "$srv: kura-bench (memory) exited with an error: $(tail -n 2 "$err" | tr '\n' ' ')"
	fi
	BG_PID=""
	sleep 1
	sh bench/proc-mem.sh "$root" > "$OUT/mem-$srv-after.json" || true
}

# ---- cold cache ----

rgw_log() {
	echo "$RGW_DIR/log/client.rgw.kura.log"
}

# Counts the S3 requests radosgw logged after byte offset $1 of its log.
# The request lines go to out.log.
rgw_count() { # offset out.json
	python3 - "$(rgw_log)" "$1" "${2%.json}.log" > "$2" <<'EOF'
import json, re, sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2]))
    data = f.read().decode("utf-8", "replace")
c = {}
lines = open(sys.argv[3], "w")
for m in re.finditer(r'beast: .*?"([A-Z]+) (\S+) HTTP.*', data):
    lines.write(m.group(0) + "\n")
    meth, path = m.groups()
    if meth == "GET" and ("list-type=" in path or re.match(r"^/[^/?]+/?(\?|$)", path)):
        meth = "LIST"
    c[meth] = c.get(meth, 0) + 1
c["total"] = sum(c.values())
print(json.dumps(c))
EOF
}

cold_test() { # server
	srv=$1
	step "$srv: cold cache, filling $COLD_MSGS messages"
	set -- sh bench/cold-fetch.sh fill --port "$PORT" --user cold --password pwcold \
		--count "$COLD_MSGS" --seed "$SEED" --batch "$COLD_BATCH"
	show_cmd "$@" > "$OUT/cold-$srv-fill.cmd"
	if ! "$@" > "$OUT/cold-$srv-fill.json"; then
		fail "$srv: filling the cold-cache mailbox failed: $(cat "$OUT/cold-$srv-fill.json")"
		return 0
	fi
	set -- sh bench/cold-fetch.sh time --port "$PORT" --user cold \
		--password pwcold --expect "$COLD_MSGS"
	"$@" > "$OUT/cold-$srv-warm.json" ||
		fail "$srv: the warm FETCH failed: $(cat "$OUT/cold-$srv-warm.json")"
	stop_server
	case $srv in
	kura*)
		what="rm -rf $SERVER_CACHE"
		rm -rf "$SERVER_CACHE"
		;;
	dovecot)
		what="rm Maildir/dovecot.index* dovecot.list.index* of user cold"
		dovecot_drop_index cold
		;;
	esac
	if [ "${BENCH_DROP_CACHES:-0}" = 1 ]; then
		sync
		echo 3 > /proc/sys/vm/drop_caches || fail "cannot drop the page cache"
		what="$what; sync; echo 3 > /proc/sys/vm/drop_caches"
	fi
	if ! "start_$(echo "$srv" | tr - _)"; then
		fail "$srv: restart with an empty cache failed"
		return 0
	fi
	step "$srv: cold FETCH"
	off=""
	if [ "$srv" = kura-s3 ] && [ "$S3_KIND" = rgw ]; then
		sleep 1
		off=$(stat -c %s "$(rgw_log)" 2>/dev/null) || {
			fail "kura-s3: no radosgw log at $(rgw_log); S3 requests not counted"
			off=""
		}
	fi
	# the port is new after the restart
	set -- sh bench/cold-fetch.sh time --port "$PORT" --user cold \
		--password pwcold --expect "$COLD_MSGS"
	{
		echo "# stop the server; $what; start it again; then:"
		show_cmd "$@"
		if [ -n "$off" ]; then
			echo "# S3 requests: the lines radosgw logged meanwhile (cold-$srv-requests.log)"
		fi
	} > "$OUT/cold-$srv.cmd"
	"$@" > "$OUT/cold-$srv-cold.json" ||
		fail "$srv: the cold FETCH failed: $(cat "$OUT/cold-$srv-cold.json")"
	if [ -n "$off" ]; then
		sleep 1.5
		rgw_count "$off" "$OUT/cold-$srv-requests.json" ||
			fail "$srv: counting the RGW requests failed"
	fi
	"$@" > "$OUT/cold-$srv-again.json" ||
		fail "$srv: the FETCH after the cold one failed"
}

# ---- raw S3 baseline ----

s3_baseline() {
	u=${S3_STORE_URL#s3:}
	scheme=${u%%://*}
	rest=${u#*://}
	hostport=${rest%%/*}
	bucket=${rest#*/}
	bucket=${bucket%/}
	flags=""
	[ "$scheme" = https ] && flags="--https"
	url=$scheme://$hostport/$bucket
	if [ "${KURA_S3_ADDRESSING:-path}" = virtual ]; then
		flags="$flags --vhost"
		url=$scheme://$bucket.$hostport
	fi
	for size in 4096 65536; do
		step "S3 baseline: $size-byte objects"
		j=$OUT/s3-baseline-$size.json
		# shellcheck disable=SC2086
		set -- "$S3B" --host "$hostport" --bucket "$bucket" $flags --size "$size" \
			--concurrency "$CLIENTS" --count "$BASE_COUNT" --seed "$SEED" \
			--prefix "s3-baseline-$$" --json "$j"
		if [ "$S3B_OK" = 1 ]; then
			show_cmd "$@" > "$OUT/s3-baseline-$size.cmd"
			if "$@" > "$OUT/s3-baseline-$size.txt" 2> "$OUT/s3-baseline-$size.err"; then
				cat "$OUT/s3-baseline-$size.txt" >&2
				continue
			fi
			fail "S3 baseline ($size bytes): libs3 failed ($(sort -u "$OUT/s3-baseline-$size.err" | head -n 3 | tr '\n' ' ')); measured with curl instead"
		fi
		set -- sh bench/s3-curl-baseline.sh --url "$url" --size "$size" \
			--concurrency "$CLIENTS" --count "$BASE_COUNT" --seed "$SEED" \
			--prefix "s3-curl-baseline-$$" --json "$j"
		show_cmd "$@" > "$OUT/s3-baseline-$size.cmd"
		if "$@" > "$OUT/s3-baseline-$size.txt" 2> "$OUT/s3-baseline-$size.err"; then
			cat "$OUT/s3-baseline-$size.txt" >&2
		else
			fail "S3 baseline ($size bytes): curl failed too: $(sed 's/^s3-curl-baseline: [a-z]* error: //' "$OUT/s3-baseline-$size.err" | sort -u | head -n 3 | tr '\n' ' ')"
		fi
	done
}

# ---- one server after the other ----

S3_SETUP_FAILED=0
for server in $SERVERS; do
	case $server in
	kura | kura-s3 | dovecot) ;;
	*)
		fail "unknown server $server"
		continue
		;;
	esac
	step "== $server"
	if [ "$server" = kura-s3 ]; then
		if [ "$S3_SETUP_FAILED" = 1 ] || ! s3_setup; then
			S3_SETUP_FAILED=1
			fail "kura-s3: no S3 endpoint (see $WORK/rgw/start.err or KURA_BENCH_S3_URL); kura-s3 not measured"
			continue
		fi
		echo "$S3_KIND $S3_STORE_URL" > "$OUT/s3-endpoint.txt"
		if [ "$DO_BASELINE" = 1 ]; then
			s3_baseline || fail "S3 baseline: unexpected error"
		fi
	fi
	if ! "start_$(echo "$server" | tr - _)"; then
		fail "$server: did not start (log: $SERVER_LOG)"
		# shellcheck disable=SC2086
		tail -n 20 $SERVER_LOG >> "$OUT/crashes.txt" 2>/dev/null || true
		stop_server
		continue
	fi
	for p in $PROFILES; do
		if ! server_alive; then
			fail "$server died during the profile before $p; restarted on the same data"
			{
				echo "== $server died before $p"
				# shellcheck disable=SC2086
				tail -n 20 $SERVER_LOG 2>/dev/null || true
			} >> "$OUT/crashes.txt"
			if ! restart_server "$server"; then
				fail "$server: restart failed; its remaining profiles are not measured"
				break
			fi
		fi
		run_profile "$server" "$p" || fail "$server: profile $p: unexpected error"
	done
	if ! server_alive; then
		fail "$server died during its last profile"
		restart_server "$server" || true
	fi
	if [ "$DO_MEM" = 1 ]; then
		mem_test "$server" || fail "$server: memory measurement: unexpected error"
	fi
	if [ "$DO_COLD" = 1 ]; then
		case " $COLD_SERVERS " in
		*" $server "*)
			if server_alive || restart_server "$server"; then
				cold_test "$server" || fail "$server: cold-cache test: unexpected error"
			else
				fail "$server: not running for the cold-cache test"
			fi
			;;
		esac
	fi
	if ! server_alive; then
		fail "$server died during the memory or cold-cache measurement"
	fi
	stop_server
done
s3_teardown
RGW_DIR=""

step "report"
printf '%s\n' "$(($(date +%s) - T_START))" > "$OUT/elapsed.txt"
cut -d' ' -f1-3 /proc/loadavg > "$OUT/load-end.txt"
if ! sh bench/report.sh "$OUT" "$REPORT"; then
	log "writing $REPORT failed"
	exit 1
fi
log "results in $OUT, report in $REPORT"
if [ -s "$OUT/failures.txt" ]; then
	log "$(wc -l < "$OUT/failures.txt") failure(s), listed in $REPORT"
	exit 1
fi
