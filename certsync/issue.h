/*
 * issue: obtain one certificate for one configured hostname by ACME dns-01 through the
 * CNAME delegation (DESIGN §4.3, research/acme.md §7), blocking. Run by the daemon's ACME
 * worker thread, never on the event loop.
 *
 * The flow, and what it promises:
 *   1. Account: the ES256 key at <state_dir>/acme/account.key (0600, created
 *      exclusively), the account URL persisted in <state_dir>/acme/account.json (with
 *      the directory it belongs to) and resumed without a request.
 *   2. Checks, before anything is ordered (a refused order burns the CA's rate limits):
 *      delegation_check and caa_check (acme.ca_identities, else the directory's
 *      caaIdentities; our account URI; dns-01). Then the validation zone's update server
 *      must answer (dnsupdate_open), or nothing is ordered either.
 *   3. The order: an order in flight for the hostname (<state_dir>/acme/orders/<f>.json
 *      with its URL, and <f>.key, the certificate key, 0600, created exclusively; <f> is
 *      the hostname with "*" as "_") is resumed by URL; otherwise newOrder (with
 *      `replaces` when renewing a certificate of ours and the CA offers ARI; retried
 *      without it on alreadyReplaced/malformed), persisted before any challenge is
 *      answered. One hostname per order: "*.x" alone, "x" alone (one certificate per
 *      hostname, DESIGN §4.3); their TXT values share a name and are added one record at
 *      a time, so both may be in flight.
 *   4. For each pending authorization: the TXT value is added at the delegation target,
 *      dnsupdate_wait on every authoritative server, the challenge answered, the
 *      authorization polled, and the TXT record deleted once it is final — also on
 *      failure.
 *   5. Finalize with the persisted key (acme.key_type), download, verify (the key
 *      matches, the names are the hostname, every certificate is signed by the next),
 *      store_add(STORE_ACME); the order files are removed once the order is valid and
 *      stored, or invalid.
 */
#ifndef EDGETLS_CS_ISSUE_H
#define EDGETLS_CS_ISSUE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "caa.h"
#include "config.h"
#include "delegation.h"
#include "store.h"

enum issue_order_result {
	ISSUE_ORDER_NONE = 0, /* nothing was ordered nor resumed */
	ISSUE_ORDER_VALID,    /* a certificate was obtained and stored */
	ISSUE_ORDER_INVALID,  /* the CA marked the order or an authorization invalid */
	ISSUE_ORDER_ERROR,    /* failed otherwise (network, DNS update, timeout); kept to resume */
};

struct issue_request {
	const struct cs_config *cfg;
	const char *hostname;   /* as configured, "*.x" for a wildcard */
	const char *renew_cert; /* PEM path of the certificate being renewed, or NULL */
	bool checks_only;       /* run the checks and stop */
	int dns_timeout_ms;     /* each DNS query; 0: 3000 */
	long poll_deadline_s;   /* authorizations and the order; 0: 300 */
	long propagation_s;     /* dnsupdate_wait; 0: 120 */
};

struct issue_result {
	bool checks_ran, checks_ok;
	bool delegation_ran, caa_ran;
	struct delegation_result delegation;
	struct caa_result caa;
	enum issue_order_result order;
	bool ordered; /* a newOrder was sent */
	bool resumed; /* an order in flight was resumed */
	char order_url[512];
	char error_class[48]; /* "" on success: "delegation", "caa", "dns-update", "propagation",
	                         "network", "timeout", "internal", or the ACME problem type
	                         ("unauthorized", "rateLimited", ...) */
	char error[1024];
	long retry_after; /* seconds the CA asked to wait, -1 none */
	/* on success */
	char store_id[STORE_ID_LEN];
	char serial[X509U_SERIAL_LEN];
	time_t not_before, not_after;
	bool has_window; /* ARI suggestedWindow of the new certificate */
	time_t win_start, win_end;
	unsigned dns_updates_ok, dns_updates_failed;
};

/* Runs the flow for req->hostname; fills *res. 0 when a certificate was stored (or, with
 * checks_only, when the checks passed); -1 otherwise, res saying why. */
int issue_run(const struct issue_request *req, struct issue_result *res)
    __attribute__((warn_unused_result));

/* Is an order in flight for hostname (its file under <state_dir>/acme/orders)? */
bool issue_order_pending(const char *state_dir, const char *hostname);

/* <state_dir>/acme into buf. */
void issue_acme_dir(const char *state_dir, char *buf, size_t len);

#endif
