/*
 * hist: the load generators' latency histogram (HdrHistogram's layout: 64 linear
 * sub-buckets per power of two, under 1.6 % error, bounded memory), per thread and merged.
 * Header-only: each benchmark program is one file.
 */
#ifndef EDGETLS_BENCH_HIST_H
#define EDGETLS_BENCH_HIST_H

#include <stdint.h>
#include <string.h>

#define H_SUB_BITS  7
#define H_HALF      (1u << (H_SUB_BITS - 1)) /* 64 */
#define H_MAX_SHIFT 40                       /* values up to ~2^46 ns (~19 hours) */
#define H_BUCKETS   ((H_MAX_SHIFT + 2) * H_HALF)

struct hist {
	uint64_t n[H_BUCKETS];
	uint64_t count, max;
	double sum;
};

static inline unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * H_HALF)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - (H_SUB_BITS - 1);
	if (shift > H_MAX_SHIFT)
		return H_BUCKETS - 1;
	return (shift + 1) * H_HALF + (unsigned)(v >> shift) - H_HALF;
}

/* The largest value that falls in bucket idx (HdrHistogram's highestEquivalentValue). */
static inline uint64_t hist_bucket_top(unsigned idx)
{
	unsigned shift;
	uint64_t m;

	if (idx < 2 * H_HALF)
		return idx;
	shift = idx / H_HALF - 1;
	m = idx % H_HALF + H_HALF;
	return ((m + 1) << shift) - 1;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->n[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

static inline void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		into->n[i] += from->n[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->max > into->max)
		into->max = from->max;
}

/* Value at quantile q (0..1), capped by the exact maximum; 0 when empty. */
static inline uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(q * (double)h->count + 0.999999);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want) {
			uint64_t top = hist_bucket_top(i);
			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}

#endif
