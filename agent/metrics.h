/*
 * metrics: the agent's Prometheus exposition, summed over the workers' counter blocks.
 * Pure: it reads counters and returns text; lib/promhttp serves it.
 */
#ifndef EDGETLS_AGENT_METRICS_H
#define EDGETLS_AGENT_METRICS_H

#include <stddef.h>

#include "stats.h"

/* A malloc'd exposition of the sums of blocks[0..n), or NULL when out of memory. */
char *metrics_render(struct agent_stats *const *blocks, unsigned n, size_t *len);

#endif
