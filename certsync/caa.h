/*
 * caa: may our CA issue for a hostname? CAA (RFC 8659, RFC 8657) evaluated exactly the
 * way Let's Encrypt's Boulder evaluates it (va/caa.go; research/acme.md §2.4), so that
 * certsync predicts the CA's answer before ordering (a refused order burns rate limits).
 *
 * Two layers:
 *
 *   caa_evaluate()  PURE: takes the results of the tree climb (one struct caa_lookup per
 *                   name, from the hostname up to its TLD) and decides. No I/O.
 *   caa_check()     performs the climb with ldns through a recursive resolver (the
 *                   configured dns.resolver HOST:PORT, or the system's), then evaluates.
 *
 * What the evaluator promises (each point is Boulder's behaviour):
 *   - The identifier is lower-cased; "*.x" is a wildcard request for x (the climb starts
 *     at x and issuewild applies).
 *   - The relevant RRset is that of the most specific name with any CAA record (any tag).
 *     A lookup error at a name before that one fails closed (CAA_LOOKUP_FAILED); errors
 *     above it are ignored. NXDOMAIN counts as "no records" except at the TLD (one label),
 *     where it is an error. A CNAME at a name is the resolver's business: the CAA records
 *     of the alias target answer for the name, and the climb continues with the parents
 *     of the name, never of the target (RFC 8659 §3).
 *   - Tags compare case-insensitively. issue/issuewild are used; iodef/issuemail/issuevmc
 *     are ignored even when critical; any other tag with flag 128 or flag 1 (Boulder's
 *     alias for the critical bit) forbids issuance.
 *   - For a wildcard, the issuewild records are used when there is at least one, else the
 *     issue records; for a non-wildcard only issue records. No records of the chosen kind
 *     allows issuance.
 *   - A record allows issuance when its value parses (RFC 8659 §4.2 as Boulder parses it:
 *     split on ';', trim SP/HTAB, parameters tag=value with alphanumeric tags (no '-')
 *     and values of %x21-3A / %x3C-7E), its issuer-domain-name equals one of the CA
 *     identities byte for byte (Boulder does not fold case: "LetsEncrypt.org" does not
 *     match; the message then says so), its accounturi (if any, at most one) equals our
 *     account URI, and its validationmethods (if any, at most one, every label matching
 *     [A-Za-z0-9-]+) lists the method. Records are additive: one match suffices. An
 *     empty issuer (";") or an unparseable value matches nothing.
 *
 * Results carry a stable token (caa_verdict_token), the record that blocks, the exact
 * record to add, and a sentence a customer can act on.
 */
#ifndef EDGETLS_CS_CAA_H
#define EDGETLS_CS_CAA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAA_NAME_MAX 256 /* a presentation-format name with its trailing dot, and NUL */

enum caa_lookup_status {
	CAA_LOOKUP_OK = 0,   /* NOERROR: the RRset below (possibly empty = NODATA) */
	CAA_LOOKUP_NXDOMAIN, /* the name does not exist */
	CAA_LOOKUP_ERROR,    /* SERVFAIL, REFUSED, timeout, truncated answer, ... */
};

/* One CAA resource record, its tag and value as received (NUL-terminated text). */
struct caa_rr {
	uint8_t flags;
	const char *tag;
	const char *value;
};

/* The answer to "CAA? name" through a recursive resolver. */
struct caa_lookup {
	const char *name; /* the name queried, no trailing dot */
	enum caa_lookup_status status;
	const char *error; /* CAA_LOOKUP_ERROR: what failed ("SERVFAIL", "timeout"); may be NULL */
	const char *cname; /* non-NULL when name is an alias: the target whose records these are */
	const struct caa_rr *rrs;
	size_t n_rrs;
};

struct caa_params {
	const char *const *ca_identities; /* acme.ca_identities or the directory's caaIdentities */
	size_t n_ca_identities;
	const char *account_uri; /* our ACME account URL; NULL when not registered yet */
	const char *method;      /* the validation method, "dns-01" */
};

enum caa_verdict {
	CAA_ALLOWED = 0,
	CAA_FORBIDDEN,
	CAA_LOOKUP_FAILED,
};

struct caa_result {
	enum caa_verdict verdict;
	char found_at[CAA_NAME_MAX]; /* the name whose RRset decided (or failed); "" if none */
	char blocking[1024];         /* CAA_FORBIDDEN: the record(s) that block, zone-file form */
	char fix[1024]; /* the exact record to add ("example.com. CAA 0 issue \"letsencrypt.org\"");
	                   "" when adding a record cannot help (critical tag, lookup failure) */
	char message[2048]; /* one or two sentences a customer can act on */
};

/* "allowed", "forbidden", "lookup-failed": stable words for status output and metrics. */
const char *caa_verdict_token(enum caa_verdict v);

/*
 * Evaluates the climb for identifier ("www.example.com" or "*.example.com", any case, an
 * optional trailing dot). climb[0] is the answer for the identifier's name (without "*."),
 * climb[i + 1] for the parent of climb[i], down to the TLD; entries past the decisive one
 * are not read, so a caller may stop the climb there. Returns 0 and fills *out, or -1
 * when the input is unusable (no climb, no CA identity, no method).
 */
int caa_evaluate(const char *identifier, const struct caa_lookup *climb, size_t n_climb,
                 const struct caa_params *p, struct caa_result *out)
    __attribute__((warn_unused_result));

/*
 * The climb through a recursive resolver and the evaluation. resolver is "HOST:PORT"
 * (dns.resolver) or NULL for the system's (/etc/resolv.conf). timeout_ms bounds each query
 * (one retry); answers are asked with EDNS0 4096 and retried over TCP when truncated (a
 * still-truncated answer is a lookup error). Returns 0 with *out filled (a DNS failure is
 * the verdict CAA_LOOKUP_FAILED, not an error), or -1 with a reason in err when the check
 * could not run at all (bad resolver address, invalid identifier).
 */
int caa_check(const char *resolver, int timeout_ms, const char *identifier,
              const struct caa_params *p, struct caa_result *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
