/*
 * promhttp: a Prometheus scrape endpoint (GET /metrics) on libmicrohttpd's own thread.
 *
 * The render callback runs on that thread, once per scrape, and returns a malloc'd
 * text exposition (format 0.0.4) that this module frees. Anything else than GET /metrics
 * is answered 404 or 405.
 */
#ifndef EDGETLS_PROMHTTP_H
#define EDGETLS_PROMHTTP_H

#include <stddef.h>

#include "addr.h"

typedef char *(*promhttp_render_fn)(void *arg, size_t *len);

struct promhttp;

int promhttp_start(struct promhttp **out, const struct addr *a, promhttp_render_fn render,
                   void *arg) __attribute__((warn_unused_result));
void promhttp_stop(struct promhttp *p);

#endif
