/*
 * apply: makes a running HAProxy serve what compile wrote, through its runtime API and
 * without a reload (DESIGN §4.3 "Installation"; research/acme.md §6).
 *
 * It compares what HAProxy has in memory (show ssl cert / crt-list / ca-file, show map)
 * with the compile result and changes only the difference, in an order that never leaves
 * a hostname without a certificate: CA files and new certificates first, then crt-list
 * lines are added before the lines they replace are deleted, then maps, then certificates
 * nothing uses any more are released. Files on disk are never touched here: compile wrote
 * them first, so a HAProxy restart serves the same thing.
 */
#ifndef EDGETLS_CS_APPLY_H
#define EDGETLS_CS_APPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "compile.h"
#include "hapi.h"

struct apply_report {
	size_t certs_loaded; /* new ssl cert + set + commit */
	size_t cafiles_set;  /* CA files created or replaced */
	size_t lines_added;  /* crt-list lines */
	size_t lines_deleted;
	size_t map_changes; /* set/add/del map */
	size_t certs_freed; /* del ssl cert of bundles no line uses */
	bool reachable;     /* HAProxy answered */
	bool in_sync;       /* HAProxy now serves exactly the compile result */
	char error[512];    /* the first problem, when !in_sync */
};

/* Applies r to the HAProxy behind h. Returns 0 when HAProxy is in sync afterwards, -1
 * otherwise (report->error says why; unreachable when !report->reachable). */
int apply_run(const struct hapi *h, const struct compile_result *r, struct apply_report *report);

/* For each host of r, whether HAProxy serves its crt-list line now (for status): 1 yes,
 * 0 no (or no certificate), -1 HAProxy unreachable. One query per crt-list. */
void apply_served(const struct hapi *h, const struct compile_result *r, int *served);

#endif
