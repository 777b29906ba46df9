#include "delegation.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "dnsq.h"

#include "banned.h"

#define PREFIX "_acme-challenge."
/* A sibling of _acme-challenge that no zone has on purpose: if it gets the same answer,
 * that answer comes from a wildcard. */
#define PROBE "_certsync-wildcard-probe."

const char *delegation_outcome_token(enum delegation_outcome o)
{
	switch (o) {
	case DELEGATION_OK:
		return "ok";
	case DELEGATION_MISSING:
		return "missing";
	case DELEGATION_POINTS_ELSEWHERE:
		return "points-elsewhere";
	case DELEGATION_TXT_PRESENT:
		return "txt-present";
	case DELEGATION_WILDCARD_SYNTHESIZED:
		return "wildcard-synthesized";
	case DELEGATION_LOOKUP_FAILED:
		return "lookup-failed";
	}
	return "unknown";
}

/* Lowercase, without "*." (when strip_wild) and without the trailing dot. */
static int canon(const char *in, int strip_wild, char *out, size_t len)
{
	size_t n, i;

	if (!in)
		return -1;
	if (strip_wild && strncmp(in, "*.", 2) == 0)
		in += 2;
	n = strlen(in);
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= len)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	out[n] = '\0';
	return 0;
}

int delegation_label(const char *host, char *buf, size_t len)
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char h[DELEGATION_NAME_MAX];
	size_t i;

	if (len < DELEGATION_LABEL_LEN + 1 || canon(host, 1, h, sizeof(h)) != 0)
		return -1;
	if (!EVP_Digest(h, strlen(h), md, &mdlen, EVP_sha256(), NULL) || mdlen < 17)
		return -1;
	/* RFC 4648 §6: 5 bits per character, most significant first. */
	for (i = 0; i < DELEGATION_LABEL_LEN; i++) {
		size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
		unsigned v = ((unsigned)md[byte] << 8) | md[byte + 1];
		buf[i] = b32[(v >> (11 - shift)) & 31];
	}
	buf[DELEGATION_LABEL_LEN] = '\0';
	return 0;
}

int delegation_target(const char *host, enum cs_dns_layout layout, const char *validation_domain,
                      char *buf, size_t len)
{
	char vd[DELEGATION_NAME_MAX], label[DELEGATION_LABEL_LEN + 1];
	int n;

	if (canon(validation_domain, 0, vd, sizeof(vd)) != 0)
		return -1;
	if (layout == CS_DNS_LAYOUT_SHARED) {
		if (!host || !*host)
			return -1;
		n = snprintf(buf, len, PREFIX "%s", vd);
	} else {
		if (delegation_label(host, label, sizeof(label)) != 0)
			return -1;
		n = snprintf(buf, len, "%s.%s", label, vd);
	}
	return (n < 0 || (size_t)n >= len || n > 253) ? -1 : 0;
}

int delegation_name(const char *host, char *buf, size_t len)
{
	char h[DELEGATION_NAME_MAX];
	int n;

	if (canon(host, 1, h, sizeof(h)) != 0)
		return -1;
	n = snprintf(buf, len, PREFIX "%s", h);
	return (n < 0 || (size_t)n >= len || n > 253) ? -1 : 0;
}

int delegation_record(const char *host, enum cs_dns_layout layout, const char *validation_domain,
                      char *buf, size_t len)
{
	char name[DELEGATION_NAME_MAX], target[DELEGATION_NAME_MAX];
	int n;

	if (delegation_name(host, name, sizeof(name)) != 0 ||
	    delegation_target(host, layout, validation_domain, target, sizeof(target)) != 0)
		return -1;
	n = snprintf(buf, len, "%s. CNAME %s.", name, target);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static int has_txt_at(const ldns_pkt *p, const char *name)
{
	const ldns_rr_list *ans = ldns_pkt_answer(p);
	char owner[DELEGATION_NAME_MAX];
	size_t i;

	for (i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(ans, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_TXT &&
		    dnsq_name_eq(dnsq_dname_str(ldns_rr_owner(rr), owner, sizeof(owner)), name))
			return 1;
	}
	return 0;
}

/* What a sibling of name that does not exist gets: 1 when it is the same CNAME target
 * (first != NULL) or, for first == NULL, a TXT record. 0 otherwise or on error. */
static int probe_same(ldns_resolver *r, const char *base, const char *first)
{
	char probe[DELEGATION_NAME_MAX + 32], why[128], last[DELEGATION_NAME_MAX],
	    pfirst[DELEGATION_NAME_MAX];
	ldns_pkt *p = NULL;
	int same = 0;

	snprintf(probe, sizeof(probe), PROBE "%s", base);
	if (dnsq_query(r, probe, LDNS_RR_TYPE_TXT, &p, why, sizeof(why)) == DNSQ_ERROR)
		return 0;
	if (first) {
		if (dnsq_cname_chain(ldns_pkt_answer(p), probe, last, sizeof(last), pfirst,
		                     sizeof(pfirst)) > 0 &&
		    dnsq_name_eq(pfirst, first))
			same = 1;
	} else {
		same = has_txt_at(p, probe);
	}
	ldns_pkt_free(p);
	return same;
}

int delegation_check(const char *resolver, int timeout_ms, const char *host,
                     enum cs_dns_layout layout, const char *validation_domain,
                     struct delegation_result *out, char *err, size_t errlen)
{
	char base[DELEGATION_NAME_MAX], last[DELEGATION_NAME_MAX], first[DELEGATION_NAME_MAX],
	    why[128];
	ldns_resolver *r = NULL;
	ldns_pkt *p = NULL;
	enum dnsq_status st;
	int hops, ret = -1;

	memset(out, 0, sizeof(*out));
	if (canon(host, 1, base, sizeof(base)) != 0 ||
	    delegation_name(host, out->name, sizeof(out->name)) != 0 ||
	    delegation_target(host, layout, validation_domain, out->expected,
	                      sizeof(out->expected)) != 0 ||
	    delegation_record(host, layout, validation_domain, out->record, sizeof(out->record)) !=
	        0) {
		snprintf(err, errlen, "invalid hostname or validation domain");
		return -1;
	}
	if (dnsq_resolver_new(resolver, timeout_ms, 2, true, &r, err, errlen) != 0)
		return -1;

	st = dnsq_query(r, out->name, LDNS_RR_TYPE_TXT, &p, why, sizeof(why));
	if (st == DNSQ_ERROR) {
		out->outcome = DELEGATION_LOOKUP_FAILED;
		snprintf(out->message, sizeof(out->message),
		         "Looking up %s failed (%s), so certsync cannot tell whether it is "
		         "delegated. Check that the domain's nameservers answer, then recheck; "
		         "the record needed is %s",
		         out->name, why, out->record);
		ret = 0;
		goto out;
	}
	hops = dnsq_cname_chain(ldns_pkt_answer(p), out->name, last, sizeof(last), first,
	                        sizeof(first));
	if (hops > 0) {
		if (dnsq_name_eq(first, out->expected) || dnsq_name_eq(last, out->expected)) {
			out->outcome = DELEGATION_OK;
			out->record[0] = '\0';
			snprintf(out->message, sizeof(out->message),
			         "%s is a CNAME to %s, as expected.", out->name, out->expected);
		} else if (probe_same(r, base, first)) {
			out->outcome = DELEGATION_WILDCARD_SYNTHESIZED;
			snprintf(out->found, sizeof(out->found), "%s", first);
			snprintf(out->message, sizeof(out->message),
			         "%s has no record of its own: its CNAME to %s comes from a "
			         "wildcard (*) record. Add an explicit %s",
			         out->name, first, out->record);
		} else {
			out->outcome = DELEGATION_POINTS_ELSEWHERE;
			snprintf(out->found, sizeof(out->found), "%s", first);
			snprintf(out->message, sizeof(out->message),
			         "%s is a CNAME to %s, not to %s. Replace it with %s", out->name,
			         first, out->expected, out->record);
		}
	} else if (has_txt_at(p, out->name)) {
		if (probe_same(r, base, NULL)) {
			out->outcome = DELEGATION_WILDCARD_SYNTHESIZED;
			snprintf(
			    out->message, sizeof(out->message),
			    "%s has no record of its own: the TXT records it answers come from "
			    "a wildcard (*) record. Add an explicit %s",
			    out->name, out->record);
		} else {
			out->outcome = DELEGATION_TXT_PRESENT;
			snprintf(out->message, sizeof(out->message),
			         "%s has TXT records instead of a CNAME, and a name with a CNAME "
			         "can hold nothing else. Delete the TXT records at %s, then add %s",
			         out->name, out->name, out->record);
		}
	} else {
		out->outcome = DELEGATION_MISSING;
		snprintf(out->message, sizeof(out->message), "%s has no CNAME. Add %s", out->name,
		         out->record);
	}
	ret = 0;
out:
	if (p)
		ldns_pkt_free(p);
	ldns_resolver_deep_free(r);
	return ret;
}
