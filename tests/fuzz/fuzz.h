/* Fuzz target entry point: a libFuzzer target normally; under
 * FUZZ_REPLAY (the replay program make test runs over
 * tests/fuzz/regress/) a static function wrapped by fuzz_<name>_one(). */
#ifndef KURA_FUZZ_H
#define KURA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef FUZZ_REPLAY
#define FUZZ_ENTRY static int LLVMFuzzerTestOneInput
#else
#define FUZZ_ENTRY int LLVMFuzzerTestOneInput
#endif

#endif
