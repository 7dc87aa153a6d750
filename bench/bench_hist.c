#include "bench/bench_hist.h"

#include <math.h>
#include <string.h>

static unsigned hist_index(uint64_t v)
{
	unsigned msb, e;

	if (v < 2 * BENCH_HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	e = msb - BENCH_HIST_SUB_BITS;
	return 2 * BENCH_HIST_SUB + (e - 1) * BENCH_HIST_SUB +
	       (unsigned)((v >> e) - BENCH_HIST_SUB);
}

static uint64_t hist_upper(unsigned idx)
{
	unsigned e;
	uint64_t mant;

	if (idx < 2 * BENCH_HIST_SUB)
		return idx;
	e = (idx - 2 * BENCH_HIST_SUB) / BENCH_HIST_SUB + 1;
	mant = (idx - 2 * BENCH_HIST_SUB) % BENCH_HIST_SUB + BENCH_HIST_SUB;
	/* the top bucket's bound does not fit: saturate */
	if (e + BENCH_HIST_SUB_BITS + 1 >= 64)
		return UINT64_MAX;
	return ((mant + 1) << e) - 1;
}

void bench_hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void bench_hist_add(struct bench_hist *h, uint64_t value)
{
	if (h->count == 0 || value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
	h->count++;
	h->sum += value;
	h->buckets[hist_index(value)]++;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	if (src->count == 0)
		return;
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	if (p >= 100.0)
		return h->max;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = hist_upper(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->count == 0 ? 0.0 : (double)h->sum / (double)h->count;
}
