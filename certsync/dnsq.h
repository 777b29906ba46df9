/*
 * dnsq: the ldns plumbing certsync's DNS modules share (caa, delegation, dnsupdate):
 * making a resolver for one server or for the system's, asking one question and sorting
 * the answer into ok / nxdomain / error with a reason a person can read.
 *
 * Names are handled as text without the trailing dot and compared case-insensitively.
 * ldns is synchronous: every call here blocks for at most the resolver's timeout (times
 * its retry count, doubled when a truncated UDP answer is retried over TCP).
 */
#ifndef EDGETLS_CS_DNSQ_H
#define EDGETLS_CS_DNSQ_H

#include <stdbool.h>
#include <stddef.h>

#include <ldns/ldns.h>

enum dnsq_status {
	DNSQ_OK = 0,   /* NOERROR (the answer may hold no record of the type: NODATA) */
	DNSQ_NXDOMAIN, /* NXDOMAIN (the answer may still hold a CNAME chain) */
	DNSQ_ERROR,    /* any other rcode, a timeout, a network error, a truncated answer */
};

/*
 * A resolver asking hostport ("HOST:PORT", "[v6]:PORT"; HOST may be a name) or, when
 * hostport is NULL, the servers of /etc/resolv.conf. recursive sets RD on queries.
 * timeout_ms bounds one attempt; retries is the number of attempts (>= 1). EDNS0 with a
 * 4096-byte buffer and TCP fallback on truncation are on. Returns 0, or -1 with err.
 */
int dnsq_resolver_new(const char *hostport, int timeout_ms, int retries, bool recursive,
                      ldns_resolver **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Asks r for (name, type, IN). On DNSQ_OK and DNSQ_NXDOMAIN *answer holds the reply (the
 * caller frees it with ldns_pkt_free); on DNSQ_ERROR *answer is NULL and why says what
 * failed ("SERVFAIL", "REFUSED", "timeout", "truncated answer", ...).
 */
enum dnsq_status dnsq_query(ldns_resolver *r, const char *name, ldns_rr_type type,
                            ldns_pkt **answer, char *why, size_t whylen);

/* The owner (or a dname rdata) as text, lowercase, without the trailing dot ("" for the
 * root). Returns buf. */
const char *dnsq_dname_str(const ldns_rdf *dname, char *buf, size_t len);

/* 1 when a and b name the same node (ASCII case-insensitive, trailing dots ignored). */
int dnsq_name_eq(const char *a, const char *b);

/* Follows the CNAME RRs of an answer section from name: writes the last name of the chain
 * (name itself when there is no CNAME) into out and returns the number of hops (at most
 * 16; loops stop there). first, when non-NULL, receives the first hop's target ("" when
 * none). */
int dnsq_cname_chain(const ldns_rr_list *answer, const char *name, char *out, size_t outlen,
                     char *first, size_t firstlen);

#endif
