#include "dnsq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "addr.h"

#include "banned.h"

#define CHAIN_MAX 16

int dnsq_resolver_new(const char *hostport, int timeout_ms, int retries, bool recursive,
                      ldns_resolver **out, char *err, size_t errlen)
{
	ldns_resolver *r = NULL;
	ldns_rdf *ns = NULL;
	struct timeval tv;
	int ret = -1;

	*out = NULL;
	if (timeout_ms <= 0)
		timeout_ms = 1;
	if (retries < 1)
		retries = 1;
	if (retries > 255)
		retries = 255;
	if (hostport) {
		struct addr a;
		uint16_t port = 53;

		if (addr_parse(hostport, &a, err, errlen) != 0)
			goto out;
		if (a.ss.ss_family != AF_INET && a.ss.ss_family != AF_INET6) {
			snprintf(err, errlen, "\"%s\": a DNS server is HOST:PORT", hostport);
			goto out;
		}
		r = ldns_resolver_new();
		ns = ldns_sockaddr_storage2rdf(&a.ss, &port);
		if (!r || !ns || ldns_resolver_push_nameserver(r, ns) != LDNS_STATUS_OK) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ldns_resolver_set_port(r, port);
	} else {
		ldns_status s = ldns_resolver_new_frm_file(&r, NULL);
		if (s != LDNS_STATUS_OK) {
			snprintf(err, errlen, "cannot read the system resolver configuration: %s",
			         ldns_get_errorstr_by_id(s));
			r = NULL;
			goto out;
		}
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	ldns_resolver_set_timeout(r, tv);
	ldns_resolver_set_retry(r, (uint8_t)retries);
	ldns_resolver_set_retrans(r, 0); /* no sleep between attempts: the timeout paces them */
	ldns_resolver_set_recursive(r, recursive);
	ldns_resolver_set_defnames(r, false);
	ldns_resolver_set_dnssec(r, false);
	ldns_resolver_set_fallback(r, true);
	ldns_resolver_set_edns_udp_size(r, 4096);
	*out = r;
	r = NULL;
	ret = 0;
out:
	if (ns)
		ldns_rdf_deep_free(ns);
	if (r)
		ldns_resolver_deep_free(r);
	return ret;
}

enum dnsq_status dnsq_query(ldns_resolver *r, const char *name, ldns_rr_type type,
                            ldns_pkt **answer, char *why, size_t whylen)
{
	ldns_rdf *dn = NULL;
	ldns_pkt *p = NULL;
	ldns_status s;
	enum dnsq_status st = DNSQ_ERROR;
	char fqdn[CHAIN_MAX * 32];
	size_t n = strlen(name);

	*answer = NULL;
	snprintf(why, whylen, "no answer");
	if (n == 0 || n + 2 > sizeof(fqdn)) {
		snprintf(why, whylen, "invalid name");
		return DNSQ_ERROR;
	}
	/* Absolute, so no search domain is ever appended. */
	snprintf(fqdn, sizeof(fqdn), "%s%s", name, name[n - 1] == '.' ? "" : ".");
	dn = ldns_dname_new_frm_str(fqdn);
	if (!dn) {
		snprintf(why, whylen, "invalid name \"%s\"", name);
		goto out;
	}
	s = ldns_resolver_send(&p, r, dn, type, LDNS_RR_CLASS_IN,
	                       ldns_resolver_recursive(r) ? LDNS_RD : 0);
	if (s != LDNS_STATUS_OK || !p) {
		snprintf(why, whylen, "no answer (%s)", ldns_get_errorstr_by_id(s));
		goto out;
	}
	if (ldns_pkt_tc(p)) {
		snprintf(why, whylen, "truncated answer");
		goto out;
	}
	switch (ldns_pkt_get_rcode(p)) {
	case LDNS_RCODE_NOERROR:
		st = DNSQ_OK;
		break;
	case LDNS_RCODE_NXDOMAIN:
		st = DNSQ_NXDOMAIN;
		break;
	default: {
		const ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, ldns_pkt_get_rcode(p));
		if (t)
			snprintf(why, whylen, "%s", t->name);
		else
			snprintf(why, whylen, "rcode %d", (int)ldns_pkt_get_rcode(p));
		goto out;
	}
	}
	*answer = p;
	p = NULL;
out:
	if (p)
		ldns_pkt_free(p);
	if (dn)
		ldns_rdf_deep_free(dn);
	return st;
}

const char *dnsq_dname_str(const ldns_rdf *dname, char *buf, size_t len)
{
	char *s = dname ? ldns_rdf2str(dname) : NULL;
	size_t n, i;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (!s)
		return buf;
	n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n >= len)
		n = len - 1;
	for (i = 0; i < n; i++)
		buf[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	buf[n] = '\0';
	free(s);
	return buf;
}

int dnsq_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

int dnsq_cname_chain(const ldns_rr_list *answer, const char *name, char *out, size_t outlen,
                     char *first, size_t firstlen)
{
	char cur[LDNS_MAX_DOMAINLEN + 2], owner[LDNS_MAX_DOMAINLEN + 2];
	int hops = 0;
	size_t i;

	snprintf(cur, sizeof(cur), "%s", name);
	if (first && firstlen)
		first[0] = '\0';
	while (answer && hops < CHAIN_MAX) {
		int found = 0;
		for (i = 0; i < ldns_rr_list_rr_count(answer); i++) {
			const ldns_rr *rr = ldns_rr_list_rr(answer, i);
			if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME || ldns_rr_rd_count(rr) < 1)
				continue;
			if (!dnsq_name_eq(dnsq_dname_str(ldns_rr_owner(rr), owner, sizeof(owner)),
			                  cur))
				continue;
			dnsq_dname_str(ldns_rr_rdf(rr, 0), cur, sizeof(cur));
			if (hops == 0 && first && firstlen)
				snprintf(first, firstlen, "%s", cur);
			found = 1;
			break;
		}
		if (!found)
			break;
		hops++;
	}
	snprintf(out, outlen, "%s", cur);
	return hops;
}
