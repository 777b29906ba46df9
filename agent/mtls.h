/*
 * mtls: the handler of the `mtls` SPOE message (DESIGN §2, §3): the verdict and header
 * variables for one TLS connection, from the current policy set (pset.h), the evaluator
 * (eval.h) and the header formatters (headers.h).
 *
 * Per worker thread (no locks on the hot path): the policy set in use and a verdict
 * cache. A cache entry is found by a 64-bit hash of (leaf, chain, policy, generation) and
 * confirmed by comparing those bytes in full, so two certificates never share an entry;
 * it holds the ACK's actions ready to copy and the period in which they stay true (every
 * certificate's validity, and the day `v_remain` counts), so a cached verdict never
 * outlives a certificate. Process-wide, behind a mutex: the intermediates each leaf came
 * with on its last full handshake, the only chain a resumed session can be checked with
 * (HAProxy gives no chain on resumption).
 */
#ifndef EDGETLS_AGENT_MTLS_H
#define EDGETLS_AGENT_MTLS_H

#include <stddef.h>

#include "eval.h"
#include "spop.h"
#include "stats.h"

#define MTLS_CACHE_DEFAULT  4096 /* entries per worker */
#define MTLS_RESUME_ENTRIES 8192 /* leaves whose intermediates are remembered */

struct mtls_stats {
	stat_t cache_hit, cache_miss;
	stat_t no_policy;      /* SNI with no policy and no default: disabled */
	stat_t resumed;        /* resumed sessions evaluated */
	stat_t resumed_helped; /* ... with intermediates remembered from a full handshake */
	stat_t cert_dropped;   /* `cert` left out: the ACK would exceed the frame size */
	stat_t reasons[EVAL_R_COUNT];
	stat_t eval_bucket[STAT_LAT_BUCKETS + 1];
	stat_t eval_sum_ns;
};

struct mtls_worker;

struct mtls_worker *mtls_worker_new(size_t cache_entries);
void mtls_worker_free(struct mtls_worker *w);
struct mtls_stats *mtls_worker_stats(struct mtls_worker *w);

/* The handler (handlers.h): appends the actions of one `mtls` message to out, at most
 * room bytes. */
int mtls_handle(const struct spop_message *m, struct spop_writer *out, size_t room, void *ctx);

#endif
