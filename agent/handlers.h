/*
 * handlers: what the agent answers to each SPOE message, by message name.
 *
 * A handler reads the message's arguments and appends set-var/unset-var actions to the
 * ACK being built, at most `room` bytes. It runs on the connection's worker thread with
 * that worker's context (one per thread, so no locks) and must not block.
 */
#ifndef EDGETLS_AGENT_HANDLERS_H
#define EDGETLS_AGENT_HANDLERS_H

#include <stddef.h>

#include "spop.h"

struct handler {
	const char *name;
	/* Appends actions to w; returns how many, or -1 when the message is unusable. */
	int (*fn)(const struct spop_message *m, struct spop_writer *w, size_t room, void *ctx);
};

/* The handler for a message name, or NULL. */
const struct handler *handler_find(struct spop_bytes name);

/* A worker thread's context for every handler, and its release. cache_entries sizes the
 * mtls verdict cache (0: no cache). */
void *handlers_worker_new(size_t cache_entries);
void handlers_worker_free(void *ctx);

#endif
