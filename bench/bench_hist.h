/* bench_hist: a log-bucketed latency histogram (HDR-like).
 *
 * Values (microseconds) below 128 are counted exactly; above, each power
 * of two is split into 64 buckets, so a reported percentile is at most
 * 1/64 (1.6 %) above the true sample, and never above the recorded
 * maximum. Fixed size, no allocation; count, min, max and sum are exact. */
#ifndef KURA_BENCH_HIST_H
#define KURA_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS (2 * BENCH_HIST_SUB + \
			    (64 - BENCH_HIST_SUB_BITS - 1) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t count, min, max, sum;
	uint64_t buckets[BENCH_HIST_BUCKETS];
};

/* Empties h. A zeroed struct is also an empty histogram. */
void bench_hist_reset(struct bench_hist *h);
/* Records one value. */
void bench_hist_add(struct bench_hist *h, uint64_t value);
/* Adds every sample of src to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at percentile p (0 < p <= 100): the upper bound of the bucket
 * holding the ceil(p% * count)-th smallest sample, capped at max. 0 for
 * an empty histogram. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);
/* Mean of the samples, 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

#endif
