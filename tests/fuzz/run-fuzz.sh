#!/bin/sh
# make fuzz: builds each libFuzzer target with clang (ASan + UBSan) and
# runs it for SECONDS seconds with its dictionary and seed corpus. New
# crashes land in tests/fuzz/regress/<target>/, which make test replays.
set -e
SECONDS_EACH=${1:-60}
cd "$(dirname "$0")/../.."
OUT=build-fuzz
mkdir -p "$OUT"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -I. -D_GNU_SOURCE -pthread \
 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
LIBSRC=$(ls lib/*.c storage/*.c index/*.c cache/*.c imapd/*.c | grep -v imapd/main.c)
LIBS="-luring -llmdb -ljansson -lisal -lcurl -lssl -lcrypto -lcrypt"
fail=0
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	target=${name#fuzz_}
	# FUZZ_TARGETS="mime index" runs only those.
	if [ -n "$FUZZ_TARGETS" ] && ! echo " $FUZZ_TARGETS " | grep -q " $target "; then
		continue
	fi
	echo "== $name (${SECONDS_EACH}s)"
	clang $CFLAGS -o "$OUT/$name" "$src" $LIBSRC $LIBS
	mkdir -p "tests/fuzz/regress/$target" "$OUT/corpus-$target"
	dict=""
	[ -f "tests/fuzz/$target.dict" ] && dict="-dict=tests/fuzz/$target.dict -max_len=65536"
	seeds=""
	[ -d "tests/fuzz/corpus/$target" ] && seeds="tests/fuzz/corpus/$target"
	if "$OUT/$name" $dict -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
		-artifact_prefix="tests/fuzz/regress/$target/" -print_final_stats=1 \
		"$OUT/corpus-$target" $seeds > "$OUT/$name.log" 2>&1; then
		tail -12 "$OUT/$name.log"
	else
		tail -40 "$OUT/$name.log"
		fail=1
	fi
done
exit $fail
