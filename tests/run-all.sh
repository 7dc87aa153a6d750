#!/bin/sh
# Runs every test: unit programs, the fuzz regression replay, and the
# integration suite against a real kura-imapd. Ends with one line
# "N passed, N failed" summing all of them.
# Usage: tests/run-all.sh BUILD_DIR
B=${1:-build}
cd "$(dirname "$0")/.." || exit 1
LOG=$(mktemp -d /tmp/kura-test.XXXXXX)
status=0

# A real S3 server (Ceph RGW) on 127.0.0.1 for the s3 backend's tests.
RGW=/tmp/kura-rgw.$$
# Free ports, so that a run never meets another RGW on this machine.
KURA_RGW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KURA_MON_PORT=$(python3 -c 'import random; print(random.randrange(20000, 30000, 50))')
export KURA_RGW_PORT KURA_MON_PORT
if sh tests/s3/start-rgw.sh "$RGW" >/dev/null 2>"$LOG/rgw.log"; then
	. "$RGW/env"
	export KURA_S3_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
else
	echo "rgw: start failed:"; tail -20 "$LOG/rgw.log"
	echo "rgw: 0 passed, 1 failed" > "$LOG/rgw-start.out"
	status=1
fi
trap 'sh tests/s3/stop-rgw.sh "$RGW" >/dev/null 2>&1' EXIT

echo "== unit tests"
for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	if ! "$t" > "$LOG/$name.out" 2>&1; then
		status=1
		echo "-- $name failed:"; tail -30 "$LOG/$name.out"
	fi
	grep -E '^unit .*: [0-9]+ passed, [0-9]+ failed' "$LOG/$name.out" || {
		echo "unit $name: 0 passed, 1 failed (no summary line)" | tee -a "$LOG/$name.out"; status=1; }
done

echo "== bench harness tests"
if [ -x "$B/bench/test_bench_resp" ]; then
	"$B/bench/test_bench_resp" > "$LOG/bench-resp.out" 2>&1 || status=1
	tail -1 "$LOG/bench-resp.out"
fi
KURA_BENCH_BIN="$B/bench/kura-bench" python3 tests/bench/test_kura_bench.py > "$LOG/bench.out" 2>&1 || status=1
tail -1 "$LOG/bench.out"

echo "== fuzz regression replay"
if [ -x "$B/tests/fuzz-replay" ]; then
	"$B/tests/fuzz-replay" tests/fuzz/regress > "$LOG/fuzz.out" 2>&1 || status=1
	tail -1 "$LOG/fuzz.out"
fi

echo "== integration tests (fs backend)"
KURA_BIN="$B/kura-imapd" python3 tests/integ/run.py > "$LOG/integ.out" 2>&1 || status=1
grep -vE '^(ok|PASS) ' "$LOG/integ.out" | tail -60

echo "== imapflow client test"
KURA_BIN="$B/kura-imapd" sh tests/imapflow/run.sh > "$LOG/imapflow.out" 2>&1 || status=1
tail -1 "$LOG/imapflow.out"

if [ -n "$KURA_S3_URL" ]; then
	echo "== integration tests (s3 backend, Ceph RGW)"
	KURA_BIN="$B/kura-imapd" KURA_STORE="$KURA_S3_URL/run$$/{module}" \
		python3 tests/integ/run.py > "$LOG/integ-s3.out" 2>&1 || status=1
	grep -vE '^(ok|PASS) ' "$LOG/integ-s3.out" | tail -60

	echo "== fault tests (two nodes, kills, RGW outage, fault proxy, cold node)"
	KURA_BIN="$B/kura-imapd" python3 tests/fault/run.py > "$LOG/fault.out" 2>&1 || status=1
	grep -vE '^(ok|PASS) ' "$LOG/fault.out" | tail -40
fi

passed=0; failed=0
for f in "$LOG"/*.out; do
	for line in $(grep -hoE '[0-9]+ passed, [0-9]+ failed' "$f" | tr ' ,' '_;'); do
		p=$(echo "$line" | sed -E 's/^([0-9]+)_passed.*/\1/')
		q=$(echo "$line" | sed -E 's/.*_([0-9]+)_failed$/\1/')
		passed=$((passed + p)); failed=$((failed + q))
	done
done
rm -rf "$LOG"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
