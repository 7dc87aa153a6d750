# kura: one plain Makefile. See README.md.
#   make            build everything into build/
#   make run        install deps, build, start kura-imapd with a demo user
#   make test       install deps, build, run every test
#   make asan       the same tests under ASan + UBSan
#   make fuzz       build and run the libFuzzer targets for FUZZ_SECONDS
#   make bench      kura (fs, Ceph RGW) and Dovecot side by side -> bench/BENCH.md
#   make bench-quick  the same, short (under 3 minutes), -> bench/BENCH-quick.md
#   make unit       unit tests only

CC ?= cc
BUILD ?= build
OPT ?= -O2 -g
WARN = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wundef -Wvla \
       -Wstrict-prototypes -Wmissing-prototypes
CFLAGS += -std=gnu11 $(OPT) $(WARN) -I. -D_GNU_SOURCE -pthread $(EXTRA_CFLAGS)
LDFLAGS += -pthread $(EXTRA_LDFLAGS)
LIBS = -luring -llmdb -ljansson -lisal -lcurl -lssl -lcrypto -lcrypt

LIB_SRC := $(sort $(wildcard lib/*.c storage/*.c index/*.c cache/*.c \
	cluster/*.c imapd/*.c))
LIB_SRC := $(filter-out imapd/main.c cluster/kura_ctl.c,$(LIB_SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60

.PHONY: all deps run test unit asan fuzz fuzz-build clean bench bench-quick

all: $(BUILD)/kura-imapd $(BUILD)/kura-ctl $(UNIT_BIN) $(BUILD)/tests/fuzz-replay \
	$(BUILD)/bench/kura-bench $(BUILD)/bench/test_bench_resp

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libkura.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kura-imapd: $(BUILD)/imapd/main.o $(BUILD)/libkura.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/kura-ctl: $(BUILD)/cluster/kura_ctl.o $(BUILD)/libkura.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libkura.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Replays tests/fuzz/regress/ through every fuzz target's entry point,
# built without libFuzzer (so it runs under gcc and in make test).
$(BUILD)/tests/fuzz-replay: tests/fuzz/replay_main.c $(FUZZ_SRC) $(BUILD)/libkura.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_REPLAY -o $@ tests/fuzz/replay_main.c $(FUZZ_SRC) $(BUILD)/libkura.a $(LDFLAGS) $(LIBS)

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run-demo.sh

unit: all
	@sh tests/run-unit.sh $(BUILD)

test: deps
	@$(MAKE) --no-print-directory all
	@sh tests/run-all.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang \
		OPT="-O1 -g -fno-omit-frame-pointer" \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -Wno-unused-command-line-argument" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	@KURA_ASAN=1 sh tests/run-all.sh build-asan

fuzz: deps
	@sh tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS)

bench: deps all
	@sh bench/run-bench.sh

bench-quick: deps all
	@QUICK=1 sh bench/run-bench.sh

clean:
	rm -rf build build-asan build-fuzz

include bench/Makefile.inc

-include $(LIB_OBJ:.o=.d) $(wildcard $(BUILD)/imapd/main.d $(BUILD)/cluster/kura_ctl.d $(BUILD)/tests/unit/*.d)
