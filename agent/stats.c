#include "stats.h"

#include "banned.h"

const double stat_lat_bounds[STAT_LAT_BUCKETS] = {
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001,    0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,
};

void stat_hist(stat_t *buckets, stat_t *sum_ns, uint64_t ns)
{
	unsigned i = 0;

	while (i < STAT_LAT_BUCKETS && (double)ns > stat_lat_bounds[i] * 1e9)
		i++;
	stat_add(&buckets[i], 1);
	stat_add(sum_ns, ns);
}

void stat_latency(struct agent_stats *s, uint64_t ns)
{
	stat_hist(s->lat_bucket, &s->lat_sum_ns, ns);
}
