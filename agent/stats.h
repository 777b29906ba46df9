/*
 * stats: the agent's counters, one block per worker thread.
 *
 * Each block has a single writer (its worker thread), so updates are a relaxed load and
 * store, no locked instruction; the metrics thread sums the blocks with relaxed loads.
 * A scrape may see one counter a few events ahead of another: Prometheus tolerates that.
 */
#ifndef EDGETLS_AGENT_STATS_H
#define EDGETLS_AGENT_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "spop.h"

enum stat_frame_in { SF_IN_HELLO, SF_IN_DISCONNECT, SF_IN_NOTIFY, SF_IN_OTHER, SF_IN_COUNT };
enum stat_frame_out { SF_OUT_HELLO, SF_OUT_DISCONNECT, SF_OUT_ACK, SF_OUT_COUNT };

/* Upper bounds (seconds) of the processing-latency histogram, then +Inf. */
#define STAT_LAT_BUCKETS 14
extern const double stat_lat_bounds[STAT_LAT_BUCKETS];

typedef _Atomic uint64_t stat_t;

struct agent_stats {
	stat_t conn_opened;
	stat_t conn_closed;
	stat_t healthchecks;
	stat_t frames_in[SF_IN_COUNT];
	stat_t frames_out[SF_OUT_COUNT];
	stat_t notify_processed;
	stat_t messages_unknown;
	stat_t ack_too_big;
	/* DISCONNECT status codes 0..13, and [SPOP_ST_COUNT] for any other code. */
	stat_t disco_sent[SPOP_ST_COUNT + 1];
	stat_t disco_received[SPOP_ST_COUNT + 1];
	stat_t lat_bucket[STAT_LAT_BUCKETS + 1];
	stat_t lat_sum_ns;
};

static inline void stat_add(stat_t *s, uint64_t n)
{
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

static inline uint64_t stat_get(stat_t *s)
{
	return atomic_load_explicit(s, memory_order_relaxed);
}

static inline unsigned stat_status_index(unsigned status)
{
	return status < SPOP_ST_COUNT ? status : SPOP_ST_COUNT;
}

/* Counts ns in a histogram of STAT_LAT_BUCKETS + 1 buckets and adds it to *sum_ns. */
void stat_hist(stat_t *buckets, stat_t *sum_ns, uint64_t ns);
void stat_latency(struct agent_stats *s, uint64_t ns);

#endif
