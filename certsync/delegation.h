/*
 * delegation: is _acme-challenge.<host> delegated to certsync's validation zone
 * (DESIGN §4.3)? The customer adds one CNAME; certsync then writes the dns-01 TXT
 * records at its target, inside the validation zone, by RFC 2136.
 *
 * Where the CNAME must point (delegation_target):
 *   layout per-host: <label>.<validation_domain>, where label is the first 26 characters
 *     of the lowercase RFC 4648 base32 (alphabet a-z2-7, no padding) of SHA-256 over the
 *     hostname in lowercase, without a leading "*." and without a trailing dot. 26
 *     characters carry 130 bits. The label is a contract with customers (they copy it
 *     into their zone): it never changes for a hostname. A wildcard *.example.com and
 *     example.com share _acme-challenge.example.com, hence one target.
 *   layout shared: _acme-challenge.<validation_domain> for every hostname.
 *
 * The check (delegation_check) asks a recursive resolver for TXT at
 * _acme-challenge.<host>, so the answer carries the whole CNAME chain:
 *   ok                   the chain ends at the expected name (whether that name exists
 *                        or not: between validations it usually does not)
 *   missing              no CNAME and no TXT at the name
 *   points-elsewhere     a CNAME to another name
 *   txt-present          a TXT record at the name itself instead of the CNAME
 *   wildcard-synthesized the CNAME (or TXT) comes from a "*" record: a sibling name that
 *                        surely does not exist gets the same answer
 *   lookup-failed        SERVFAIL, REFUSED, timeout, truncated answer
 * Every non-ok outcome carries the exact record to add, in zone-file form
 * ("_acme-challenge.example.com. CNAME k3h5....acme.validation.test.").
 */
#ifndef EDGETLS_CS_DELEGATION_H
#define EDGETLS_CS_DELEGATION_H

#include <stddef.h>

#include "config.h"

/* The per-host label's length. */
#define DELEGATION_LABEL_LEN 26
#define DELEGATION_NAME_MAX  256

enum delegation_outcome {
	DELEGATION_OK = 0,
	DELEGATION_MISSING,
	DELEGATION_POINTS_ELSEWHERE,
	DELEGATION_TXT_PRESENT,
	DELEGATION_WILDCARD_SYNTHESIZED,
	DELEGATION_LOOKUP_FAILED,
};

struct delegation_result {
	enum delegation_outcome outcome;
	char name[DELEGATION_NAME_MAX];     /* _acme-challenge.<host>, no trailing dot */
	char expected[DELEGATION_NAME_MAX]; /* where its CNAME must point, no trailing dot */
	char found[DELEGATION_NAME_MAX];    /* points-elsewhere / wildcard: the target found */
	char record[2 * DELEGATION_NAME_MAX + 16]; /* non-ok: the exact record to add */
	char message[1536];                        /* a sentence a customer can act on */
};

/* "ok", "missing", "points-elsewhere", "txt-present", "wildcard-synthesized",
 * "lookup-failed". */
const char *delegation_outcome_token(enum delegation_outcome o);

/* The per-host label of host (any case, "*." and a trailing dot ignored) into
 * buf[DELEGATION_LABEL_LEN + 1]. Returns 0, -1 for an empty or over-long host. */
int delegation_label(const char *host, char *buf, size_t len) __attribute__((warn_unused_result));

/* The name _acme-challenge.<host> must be a CNAME to, without trailing dot. Returns 0, or
 * -1 when buf is too small or an argument is empty. */
int delegation_target(const char *host, enum cs_dns_layout layout, const char *validation_domain,
                      char *buf, size_t len) __attribute__((warn_unused_result));

/* _acme-challenge.<host> (the owner of the CNAME; "*." stripped), without trailing dot. */
int delegation_name(const char *host, char *buf, size_t len) __attribute__((warn_unused_result));

/* The record the customer adds: "_acme-challenge.<host>. CNAME <target>." */
int delegation_record(const char *host, enum cs_dns_layout layout, const char *validation_domain,
                      char *buf, size_t len) __attribute__((warn_unused_result));

/*
 * Checks the delegation of host through a recursive resolver ("HOST:PORT", or NULL for
 * the system's), each query bounded by timeout_ms. Returns 0 with *out filled (DNS
 * failures are the outcome lookup-failed), or -1 with err when it could not run (bad
 * arguments, bad resolver address).
 */
int delegation_check(const char *resolver, int timeout_ms, const char *host,
                     enum cs_dns_layout layout, const char *validation_domain,
                     struct delegation_result *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
