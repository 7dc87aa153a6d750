#!/bin/sh
# Runs every unit test binary in BUILD/tests; prints their summary lines.
# Exit status: number of failing programs (capped).
B=${1:-build}
fails=0
for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	if [ -n "$KURA_TESTDIR" ]; then :; fi
	( cd "$(dirname "$0")/.." && "$t" ) || fails=$((fails + 1))
done
exit $fails
