#!/bin/sh
# Builds kura-bench (and the bench's own unit test) with the project's
# warning flags. Usage: bench/build.sh [BUILD_DIR]   (default: build)
# Environment: CC (cc), OPT (-O2 -g), EXTRA_CFLAGS, EXTRA_LDFLAGS, e.g.
#   CC=clang OPT="-O1 -g" EXTRA_CFLAGS="-fsanitize=address,undefined \
#     -fno-sanitize-recover=all" EXTRA_LDFLAGS="-fsanitize=address,undefined" \
#     bench/build.sh build-asan
set -e
cd "$(dirname "$0")/.."
B=${1:-build}
CC=${CC:-cc}
OPT=${OPT:-"-O2 -g"}
WARN="-Wall -Wextra -Werror -Wformat=2 -Wshadow -Wundef -Wvla -Wstrict-prototypes -Wmissing-prototypes"
CFLAGS="-std=gnu11 $OPT $WARN -I. -D_GNU_SOURCE $EXTRA_CFLAGS"
SRC="bench/kura_bench.c bench/bench_resp.c bench/bench_hist.c bench/bench_msg.c lib/util.c lib/buf.c lib/kstr.c"
mkdir -p "$B/bench"
# shellcheck disable=SC2086
$CC $CFLAGS -o "$B/bench/kura-bench" $SRC $EXTRA_LDFLAGS -ljansson -lssl -lcrypto -lm
# shellcheck disable=SC2086
$CC $CFLAGS -o "$B/bench/test_bench_resp" tests/bench/test_bench_resp.c \
	bench/bench_resp.c bench/bench_hist.c bench/bench_msg.c lib/util.c lib/buf.c lib/kstr.c \
	$EXTRA_LDFLAGS -lm
