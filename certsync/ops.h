/*
 * ops: what certsync does, shared by the one-shot commands and the daemon — load the
 * configuration and the store, compile and write, apply to HAProxy, accept an upload,
 * describe every hostname's state.
 */
#ifndef EDGETLS_CS_OPS_H
#define EDGETLS_CS_OPS_H

#include <stdbool.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509_vfy.h>

#include "apply.h"
#include "compile.h"
#include "config.h"
#include "hapi.h"
#include "schedule.h"
#include "store.h"

struct ops {
	struct cs_config *cfg;
	struct store *store;
	struct hapi hapi;
	bool has_hapi; /* haproxy.runtime_api is configured */
};

/* Loads the configuration (diagnostics into d) and opens the store. */
int ops_open(struct ops *o, const char *config_path, struct cs_diags *d, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void ops_close(struct ops *o);

/* Compiles and writes the files; then, when apply and a runtime API is configured,
 * applies them (report filled; report->reachable false when HAProxy did not answer).
 * Returns -1 only when the files could not be built or written. */
int ops_sync(struct ops *o, time_t now, bool apply, struct compile_result *r,
             struct apply_report *report, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * An upload request {cert, chain, key, network?} → {ok, code, message, id, covers[],
 * network, serial, not_after}. Validates (upload_check), decides the network, stores,
 * then syncs. The request's key material is cleansed by the caller.
 */
json_t *ops_upload(struct ops *o, json_t *req, time_t now);

/* Every hostname's state (DESIGN §4.2 status --json), from a compile result and, for each
 * hostname, whether HAProxy serves its line (served[i]: 1, 0, or -1 unreachable; NULL
 * when not asked). *problems counts hostnames not served a valid certificate. acme (may be
 * NULL) is the daemon's ACME state (<state_dir>/acme/state.json): for hostnames of
 * environments with auto_certificates it gives delegation and caa ({"state", and when not
 * OK "record" — the exact record to add — and "message"}), next_renewal and last_error. */
json_t *ops_status(const struct ops *o, const struct compile_result *r, const int *served,
                   const struct sched_state *acme, time_t now, size_t *problems);

/* For each host of r, whether HAProxy serves its crt-list line: fills served[n_hosts]. */
void ops_served(const struct ops *o, const struct compile_result *r, int *served);

#endif
