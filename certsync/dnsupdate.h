/*
 * dnsupdate: publishing dns-01 TXT records in the validation zone by RFC 2136 dynamic
 * update signed with TSIG (RFC 8945), checking that every authoritative server serves
 * them, and listing leftovers.
 *
 * Promises:
 *   - Records are added and deleted one at a time (add: class IN, TTL DNSUPDATE_TTL;
 *     delete: class NONE, the exact value, RFC 2136 §2.5.4). The RRset is never replaced:
 *     an apex and its wildcard need two values at one name at once.
 *   - Updates go over TCP to dns.update.server, signed with the key dns.update.tsig_name /
 *     tsig_algorithm and the base64 secret read from tsig_secret_file; the reply's TSIG is
 *     verified. The secret is kept only in memory and cleansed by dnsupdate_close().
 *   - Errors say what the server meant: NOTAUTH with TSIG error BADKEY on a signed update
 *     is how Knot (and BIND) refuse an update their ACL does not allow (wrong owner or
 *     type for the key): it is reported as an ACL refusal, not as a bad key (research
 *     §3.7). BADSIG means the secrets differ, BADTIME that the clocks do.
 *   - hmac-sha384: libldns 1.8.3 cannot sign with it (a typo, "hmac-shac384.", in its
 *     tsig.c). dnsupdate_open() probes the library and refuses the algorithm with that
 *     explanation instead of failing on the first update; hmac-sha256 is the advice.
 *   - Zone: the zone apex is discovered with a SOA query for dns.validation_domain at the
 *     update server, so the validation domain may be a name inside the zone
 *     (acme.validation.example under the zone validation.example).
 *   - Propagation (dnsupdate_wait) is checked by asking every authoritative server
 *     directly (RD=0), never a caching resolver: dns.authoritative when configured, else
 *     the addresses of the zone's NS names on port 53, plus dns.update.server.
 * Every call blocks (ldns is synchronous) for at most its timeout.
 */
#ifndef EDGETLS_CS_DNSUPDATE_H
#define EDGETLS_CS_DNSUPDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define DNSUPDATE_TTL      60  /* seconds; DESIGN §4.3 wants <= 60 */
#define DNSUPDATE_NAME_MAX 256 /* a name in text form, NUL included */

struct dnsupdate;

/* One TXT record found by dnsupdate_sweep(). */
struct dnsupdate_txt {
	char *name;  /* owner, no trailing dot */
	char *value; /* the character-strings of the record, concatenated */
};

/*
 * Reads the TSIG secret, checks the algorithm against libldns, discovers the zone and
 * the authoritative servers. timeout_ms bounds each network exchange. Returns 0 and
 * *out, or -1 with a reason in err.
 */
int dnsupdate_open(const struct cs_dns *dns, int timeout_ms, struct dnsupdate **out, char *err,
                   size_t errlen) __attribute__((warn_unused_result));
void dnsupdate_close(struct dnsupdate *u);

/* The zone apex the updates name (no trailing dot). */
const char *dnsupdate_zone(const struct dnsupdate *u);
/* The servers dnsupdate_wait() asks, as HOST:PORT. */
size_t dnsupdate_servers(const struct dnsupdate *u, const char *const **servers);

/* Adds the TXT record (name, value); adding a record already present changes nothing.
 * name is inside the zone; value printable ASCII, at most 255 bytes. 0 or -1 with err. */
int dnsupdate_add_txt(struct dnsupdate *u, const char *name, const char *value, char *err,
                      size_t errlen) __attribute__((warn_unused_result));
/* Deletes that one TXT record, leaving any other value at name. 0 or -1 with err. */
int dnsupdate_delete_txt(struct dnsupdate *u, const char *name, const char *value, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/*
 * Polls every authoritative server every interval_ms until each serves all n values at
 * name (other values may be there too), or deadline_ms passes. 0 when all do; -1 with
 * err naming the first server that does not (and what it answered) otherwise.
 */
int dnsupdate_wait(struct dnsupdate *u, const char *name, const char *const *values, size_t n,
                   int deadline_ms, int interval_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Lists the TXT records at each of names (the validation names certsync owns: see
 * delegation_target) as the update server serves them, so stale ones can be deleted at
 * start. *out is an array of *n_out records to free with dnsupdate_txt_free(). 0 or -1.
 */
int dnsupdate_sweep(struct dnsupdate *u, const char *const *names, size_t n_names,
                    struct dnsupdate_txt **out, size_t *n_out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void dnsupdate_txt_free(struct dnsupdate_txt *v, size_t n);

/* 1 when libldns can sign TSIG with alg ("hmac-sha256", ...), else 0 (hmac-sha384 on
 * libldns 1.8.3). For `certsync check`. */
int dnsupdate_tsig_supported(const char *alg);

#endif
