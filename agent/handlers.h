/*
 * handlers: what the agent answers to each SPOE message, by message name.
 *
 * A handler reads the message's arguments and appends set-var/unset-var actions to the
 * ACK being built. It runs on the connection's worker thread and must not block.
 */
#ifndef EDGETLS_AGENT_HANDLERS_H
#define EDGETLS_AGENT_HANDLERS_H

#include "spop.h"

struct handler {
	const char *name;
	/* Appends actions to w; returns how many, or -1 when the message is unusable. */
	int (*fn)(const struct spop_message *m, struct spop_writer *w, void *ctx);
};

/* The handler for a message name, or NULL. */
const struct handler *handler_find(struct spop_bytes name);

#endif
