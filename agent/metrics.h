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

struct mtls_stats;
struct pset;

/* The policy side: verdicts per policy of the current set (ps may be NULL), failure
 * reasons, cache and resumption counts and evaluation latency summed over the workers'
 * blocks, the snapshot generation and reload failures. */
char *metrics_render_policy(struct mtls_stats *const *blocks, unsigned n, const struct pset *ps,
                            uint64_t reload_failures, size_t *len);

#endif
