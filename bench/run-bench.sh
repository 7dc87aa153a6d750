#!/bin/sh
# make bench: builds kura-bench, starts each server under test on
# 127.0.0.1 with the same users, runs every profile against it and writes
# the results (one JSON and one table per server and profile, plus
# summary.md, a Markdown table for bench/BENCH.md).
#
# Environment (defaults in brackets):
#   BENCH_SERVERS    servers to measure ["kura dovecot"]; also "kura-s3"
#   BENCH_PROFILES   ["login persistent fetch append idle"]
#   BENCH_DURATION   seconds per profile [30]
#   BENCH_WARMUP     unmeasured seconds before each profile [2]
#   BENCH_CLIENTS    concurrent sessions [20]
#   BENCH_USERS      users u1..uN (password pw<user>) [100]
#   BENCH_IDLE_CONNS connections held in IDLE by the idle profile [1000]
#   BENCH_IDLE_CLIENTS  active sessions during the idle profile [BENCH_CLIENTS]
#   BENCH_SEED       [1]
#   BENCH_OUT        result directory [bench/results/YYYYmmdd-HHMMSS]
#   BENCH_EXTRA      more kura-bench options, e.g. "--tls" or "--mbox FILE"
#   KURA_WORKERS     kura-imapd worker threads [number of CPUs]
#   KURA_IMAPD       the kura-imapd binary [build/kura-imapd]
# Servers run from a private temporary directory that is removed at the
# end; nothing in /etc is changed. Dovecot (Debian dovecot-imapd) is
# installed with apt if missing.
set -eu
cd "$(dirname "$0")/.."

SERVERS=${BENCH_SERVERS:-"kura dovecot"}
PROFILES=${BENCH_PROFILES:-"login persistent fetch append idle"}
DURATION=${BENCH_DURATION:-30}
WARMUP=${BENCH_WARMUP:-2}
CLIENTS=${BENCH_CLIENTS:-20}
USERS=${BENCH_USERS:-100}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-$CLIENTS}
SEED=${BENCH_SEED:-1}
OUT=${BENCH_OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
EXTRA=${BENCH_EXTRA:-}
BIN=build/bench/kura-bench

sh bench/build.sh build
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/kura-bench.XXXXXX)
chmod 0755 "$WORK"

cleanup() {
	stop_server
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# shellcheck source=bench/servers.sh
. bench/servers.sh

# ---- profiles ----

run_profile() { # server profile
	extra=""
	clients=$CLIENTS
	case $2 in
	idle) extra="--idle-conns $IDLE_CONNS"; clients=$IDLE_CLIENTS ;;
	esac
	log "$1: $2 for ${DURATION}s"
	# shellcheck disable=SC2086
	"$BIN" --host 127.0.0.1 --port "$PORT" --users 'u%d' --user-count "$USERS" \
		--password 'pw%s' --clients "$clients" --duration "$DURATION" \
		--warmup "$WARMUP" --seed "$SEED" --profile "$2" \
		--json "$OUT/$1-$2.json" $extra $EXTRA > "$OUT/$1-$2.txt" 2> "$OUT/$1-$2.err" || {
		log "$1: $2 failed, see $OUT/$1-$2.err"
		return 0
	}
	cat "$OUT/$1-$2.txt"
}

for server in $SERVERS; do
	case $server in
	kura) start_kura || { stop_server; continue; } ;;
	kura-s3) start_kura_s3 || { stop_server; continue; } ;;
	dovecot) start_dovecot || { stop_server; continue; } ;;
	*) log "unknown server $server"; continue ;;
	esac
	# TODO(lead): more peers (e.g. a kura cluster of two nodes behind
	# one address) go here as further cases.
	for p in $PROFILES; do
		if ! server_alive; then
			# keep going: the data directory survives, the crash is
			# reported in the previous profile's errors
			log "$server died during the previous profile; restarting it"
			{
				echo "== $server died before $p"
				# shellcheck disable=SC2086
				tail -n 20 $SERVER_LOG 2>/dev/null || true
			} >> "$OUT/crashes.txt"
			stop_server
			start_"$(echo "$server" | tr - _)" || break
		fi
		run_profile "$server" "$p"
	done
	stop_server
done

python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
rows = []
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    server, profile = os.path.basename(path)[:-5].split("-", 1) if "-" in os.path.basename(path) else ("?", "?")
    if os.path.basename(path).startswith("kura-s3-"):
        server, profile = "kura-s3", os.path.basename(path)[8:-5]
    with open(path) as f:
        r = json.load(f)
    for name, c in r["commands"].items():
        if c["ops"] == 0 and c["errors"] == 0:
            continue
        l = c["latency_us"]
        rows.append("| %s | %s | %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %d |" % (
            server, profile, name, c["ops"], c["ops_per_s"], l["p50"] / 1e3,
            l["p90"] / 1e3, l["p99"] / 1e3, l["max"] / 1e3, c["errors"]))
    t = r["total"]
    rows.append("| %s | %s | **total** | %d | **%.1f** | | | | | %d |" % (
        server, profile, t["ops"], t["ops_per_s"], t["errors"]))
    if "idle" in r:
        i = r["idle"]
        rows.append("| %s | %s | idle conns | %d healthy of %d | | | | | | %d dropped |" % (
            server, profile, i["healthy"], i["requested"], i["dropped"]))
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("| server | profile | command | ops | ops/s | p50 ms | p90 ms | p99 ms | max ms | errors |\n")
    f.write("|---|---|---|---|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
print("bench: results in %s (summary.md)" % out)
EOF
