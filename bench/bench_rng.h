/* bench_rng: a small deterministic PRNG (splitmix64) for kura-bench.
 *
 * Every choice a session makes (next command, message, window) comes
 * from its own state seeded from --seed and the session number, so one
 * session's sequence of choices does not depend on the timing of the
 * others. Not for cryptography. */
#ifndef KURA_BENCH_RNG_H
#define KURA_BENCH_RNG_H

#include <stdint.h>

/* Next 64 random bits; advances *state. */
static inline uint64_t bench_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform-enough value in [0, n); 0 when n is 0. The modulo bias is
 * below 2^-40 for the small n used here. */
static inline uint64_t bench_rng_below(uint64_t *state, uint64_t n)
{
	return n == 0 ? 0 : bench_rng_next(state) % n;
}

/* A state for stream `stream` of seed `seed`. */
static inline uint64_t bench_rng_seed(uint64_t seed, uint64_t stream)
{
	uint64_t s = seed ^ (stream * 0xd1b54a32d192ed03ULL);

	(void)bench_rng_next(&s);
	return s;
}

#endif
