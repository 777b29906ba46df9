/*
 * server: the agent's sockets and threads.
 *
 * One libev loop per worker thread; every connection is owned by the thread that
 * accepted it for its whole life, so connection state needs no lock. TCP listeners are
 * one SO_REUSEPORT socket per worker (the kernel spreads connections); a Unix listener is
 * shared. The only cross-thread calls are server_stop() (an ev_async) and the metrics
 * thread's relaxed reads of the per-worker counters.
 */
#ifndef EDGETLS_AGENT_SERVER_H
#define EDGETLS_AGENT_SERVER_H

#include <stdint.h>

#include "addr.h"
#include "stats.h"

struct server_config {
	struct addr listen;
	unsigned threads;
	uint32_t frame_size;  /* what we announce at most, in [256, SPOP_MAX_FRAME_LIMIT] */
	double drain_seconds; /* graceful stop: longest wait for peers to read our replies */
	size_t cache_entries; /* verdict cache per worker (handlers_worker_new) */
};

/* Largest max-frame-size we accept to configure (HAProxy's tune.bufsize can be large). */
#define SERVER_MAX_FRAME_LIMIT (1u << 20)

struct server;

/* Binds and starts the workers; the listening address (port 0 resolved) is logged. */
int server_start(struct server **out, const struct server_config *cfg)
    __attribute__((warn_unused_result));
/*
 * Graceful stop, from any thread: no new connections; whole frames already received are
 * answered; each connection gets an AGENT-DISCONNECT "normal" after its pending ACKs and
 * is closed once the peer has read them (or after drain_seconds). Returns when every
 * worker has finished.
 */
void server_stop(struct server *s);
void server_free(struct server *s);

unsigned server_workers(const struct server *s);
struct agent_stats *server_stats(struct server *s, unsigned worker);
/* A worker's handler context (handlers_worker_new), for the metrics thread's reads. */
void *server_handler_ctx(struct server *s, unsigned worker);

#endif
