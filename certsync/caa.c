#include "caa.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsq.h"

#include "banned.h"

const char *caa_verdict_token(enum caa_verdict v)
{
	switch (v) {
	case CAA_ALLOWED:
		return "allowed";
	case CAA_FORBIDDEN:
		return "forbidden";
	case CAA_LOOKUP_FAILED:
		return "lookup-failed";
	}
	return "unknown";
}

/* ---- the value parser (RFC 8659 §4.2 as Boulder's parseCAARecord reads it) ---- */

struct seg {
	const char *p;
	size_t n;
};

struct caa_value {
	struct seg domain;
	struct seg accounturi;
	int n_accounturi;
	struct seg methods;
	int n_methods;
};

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static struct seg trim(struct seg s)
{
	while (s.n > 0 && is_wsp(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && is_wsp(s.p[s.n - 1]))
		s.n--;
	return s;
}

static int is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int seg_is(struct seg s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* 0 when v parses; -1 when it is malformed (Boulder then skips the record). */
static int parse_value(const char *v, struct caa_value *out)
{
	const char *semi = strchr(v, ';'), *p, *end;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->domain = trim((struct seg){v, semi ? (size_t)(semi - v) : strlen(v)});
	if (!semi)
		return 0;
	p = semi + 1;
	/* "ca.example;" with nothing (but blanks) after the single ';': no parameters. */
	if (!strchr(p, ';') && trim((struct seg){p, strlen(p)}).n == 0)
		return 0;
	for (;;) {
		struct seg param, tag, val;
		const char *eq;

		end = strchr(p, ';');
		param = (struct seg){p, end ? (size_t)(end - p) : strlen(p)};
		eq = memchr(param.p, '=', param.n);
		if (!eq)
			return -1; /* not tag=value (this includes an empty parameter) */
		tag = trim((struct seg){param.p, (size_t)(eq - param.p)});
		val = trim((struct seg){eq + 1, param.n - (size_t)(eq - param.p) - 1});
		/* Boulder accepts letters and digits only: no '-' although the ABNF allows it. */
		for (i = 0; i < tag.n; i++)
			if (!is_alnum(tag.p[i]))
				return -1;
		for (i = 0; i < val.n; i++) {
			unsigned char c = (unsigned char)val.p[i];
			if (c < 0x21 || c == 0x3b || c > 0x7e)
				return -1;
		}
		/* Parameter tags compare exactly (Boulder looks them up as given). */
		if (seg_is(tag, "accounturi")) {
			out->accounturi = val;
			out->n_accounturi++;
		} else if (seg_is(tag, "validationmethods")) {
			out->methods = val;
			out->n_methods++;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* RFC 8657 §4 as Boulder applies it: every label must be 1*(ALPHA / DIGIT / "-"), else
 * the whole record fails; the method must be one of the labels. */
static int methods_allow(struct seg m, const char *method)
{
	size_t i = 0, start, ml = strlen(method);
	int found = 0;

	for (;;) {
		start = i;
		while (i < m.n && m.p[i] != ',')
			i++;
		if (i == start)
			return 0;
		for (size_t j = start; j < i; j++)
			if (!is_alnum(m.p[j]) && m.p[j] != '-')
				return 0;
		if (i - start == ml && memcmp(m.p + start, method, ml) == 0)
			found = 1;
		if (i == m.n)
			break;
		i++; /* the comma */
	}
	return found;
}

/* Why one issue/issuewild record does or does not let us issue, best reason last. */
enum why {
	W_OTHER_CA = 0, /* names another CA */
	W_UNPARSEABLE,  /* malformed value */
	W_EMPTY_ISSUER, /* ";" */
	W_CASE,         /* our CA, but spelled with other letter case */
	W_METHOD,       /* our CA; validationmethods without our method (or malformed) */
	W_ACCOUNT,      /* our CA; accounturi of another account, repeated, or unknown to us */
	W_MATCH,
};

static enum why judge(const char *value, const struct caa_params *p, int *ca_index)
{
	struct caa_value v;
	size_t i;
	int ours = -1, folded = -1;

	*ca_index = 0;
	if (parse_value(value, &v) != 0)
		return W_UNPARSEABLE;
	if (v.domain.n == 0)
		return W_EMPTY_ISSUER;
	for (i = 0; i < p->n_ca_identities; i++) {
		const char *id = p->ca_identities[i];
		if (seg_is(v.domain, id)) {
			ours = (int)i;
			break;
		}
		if (folded < 0 && v.domain.n == strlen(id) &&
		    strncasecmp(v.domain.p, id, v.domain.n) == 0)
			folded = (int)i;
	}
	if (ours < 0) {
		if (folded >= 0) {
			*ca_index = folded;
			return W_CASE;
		}
		return W_OTHER_CA;
	}
	*ca_index = ours;
	if (v.n_accounturi > 1)
		return W_ACCOUNT;
	if (v.n_accounturi == 1 && (!p->account_uri || !seg_is(v.accounturi, p->account_uri)))
		return W_ACCOUNT;
	if (v.n_methods > 1)
		return W_METHOD;
	if (v.n_methods == 1 && !methods_allow(v.methods, p->method))
		return W_METHOD;
	return W_MATCH;
}

/* ---- formatting ---- */

static void appendf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* A record in zone-file form: owner. CAA flags tag "value" (quotes, backslashes and
 * non-printable bytes escaped as in RFC 1035 §5.1). */
static void format_rr(char *buf, size_t len, const char *owner, const struct caa_rr *rr)
{
	const unsigned char *s;

	appendf(buf, len, "%s. CAA %u %s \"", owner, (unsigned)rr->flags, rr->tag);
	for (s = (const unsigned char *)rr->value; *s; s++) {
		if (*s == '"' || *s == '\\')
			appendf(buf, len, "\\%c", *s);
		else if (*s < 0x20 || *s > 0x7e)
			appendf(buf, len, "\\%03u", *s);
		else
			appendf(buf, len, "%c", *s);
	}
	appendf(buf, len, "\"");
}

static int is_tag(const char *tag, const char *lit)
{
	return strcasecmp(tag, lit) == 0;
}

/* Lower-case name without "*." and trailing dot; sets *wildcard. -1 when too long/empty. */
static int base_name(const char *identifier, char *out, size_t len, int *wildcard)
{
	size_t n, i;

	*wildcard = 0;
	if (strncmp(identifier, "*.", 2) == 0) {
		*wildcard = 1;
		identifier += 2;
	}
	n = strlen(identifier);
	if (n > 0 && identifier[n - 1] == '.')
		n--;
	if (n == 0 || n >= len)
		return -1;
	for (i = 0; i < n; i++) {
		char c = identifier[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
	return 0;
}

static void set_lookup_failed(struct caa_result *out, const struct caa_lookup *l,
                              const char *identifier, const char *why)
{
	out->verdict = CAA_LOOKUP_FAILED;
	snprintf(out->found_at, sizeof(out->found_at), "%s", l->name);
	snprintf(out->message, sizeof(out->message),
	         "Looking up CAA for %s failed (%s), so the CA would refuse to issue for %s "
	         "too. The nameservers of %s must answer CAA queries with NOERROR (an empty "
	         "answer is fine): ask the DNS provider to fix this, then recheck.",
	         l->name, why, identifier, l->name);
}

int caa_evaluate(const char *identifier, const struct caa_lookup *climb, size_t n_climb,
                 const struct caa_params *p, struct caa_result *out)
{
	char name[CAA_NAME_MAX], display[CAA_NAME_MAX + 2];
	const struct caa_lookup *rel = NULL;
	const struct caa_rr *best_rr = NULL;
	const char *owner, *kind, *ca;
	size_t i, n_issue = 0, n_wild = 0;
	enum why best = W_OTHER_CA;
	int wildcard, best_ca = 0, use_wild;

	memset(out, 0, sizeof(*out));
	if (!identifier || !climb || n_climb == 0 || !p || !p->method || p->n_ca_identities == 0 ||
	    !p->ca_identities || base_name(identifier, name, sizeof(name), &wildcard) != 0)
		return -1;
	snprintf(display, sizeof(display), "%s%s", wildcard ? "*." : "", name);

	/* selectCAA: the first error before a non-empty RRset fails closed. */
	for (i = 0; i < n_climb; i++) {
		const struct caa_lookup *l = &climb[i];
		if (l->status == CAA_LOOKUP_ERROR) {
			set_lookup_failed(out, l, display, l->error ? l->error : "DNS error");
			return 0;
		}
		if (l->status == CAA_LOOKUP_NXDOMAIN) {
			/* bdns: NXDOMAIN is "no records" except for a TLD. */
			if (!strchr(l->name, '.')) {
				set_lookup_failed(out, l, display,
				                  "NXDOMAIN for a top-level domain");
				return 0;
			}
			continue;
		}
		if (l->n_rrs > 0) {
			rel = l;
			break;
		}
	}
	ca = p->ca_identities[0];
	if (!rel) {
		out->verdict = CAA_ALLOWED;
		snprintf(out->message, sizeof(out->message),
		         "No CAA record restricts issuance for %s: %s may issue.", display, ca);
		return 0;
	}
	snprintf(out->found_at, sizeof(out->found_at), "%s", rel->name);
	owner = rel->cname ? rel->cname : rel->name;

	/* filterCAA: unknown tags with flag 128 or 1 forbid; iodef and friends never do. */
	for (i = 0; i < rel->n_rrs; i++) {
		const struct caa_rr *rr = &rel->rrs[i];
		if (is_tag(rr->tag, "issue"))
			n_issue++;
		else if (is_tag(rr->tag, "issuewild"))
			n_wild++;
		else if (is_tag(rr->tag, "iodef") || is_tag(rr->tag, "issuemail") ||
		         is_tag(rr->tag, "issuevmc"))
			continue;
		else if (rr->flags & (128 | 1)) {
			out->verdict = CAA_FORBIDDEN;
			format_rr(out->blocking, sizeof(out->blocking), owner, rr);
			snprintf(
			    out->message, sizeof(out->message),
			    "The CAA record %s is marked critical and its tag \"%s\" is unknown "
			    "to CAs, so no CA may issue for %s. Delete that record or set its "
			    "flags to 0.",
			    out->blocking, rr->tag, display);
			return 0;
		}
	}
	use_wild = wildcard && n_wild > 0;
	kind = use_wild ? "issuewild" : "issue";
	if ((use_wild ? n_wild : n_issue) == 0) {
		out->verdict = CAA_ALLOWED;
		snprintf(out->message, sizeof(out->message),
		         "The CAA records at %s do not restrict issuance for %s: %s may issue.",
		         owner, display, ca);
		return 0;
	}
	for (i = 0; i < rel->n_rrs; i++) {
		const struct caa_rr *rr = &rel->rrs[i];
		enum why w;
		int idx;
		if (!is_tag(rr->tag, kind))
			continue;
		w = judge(rr->value, p, &idx);
		if (w == W_MATCH) {
			char rec[1024] = "";
			format_rr(rec, sizeof(rec), owner, rr);
			out->verdict = CAA_ALLOWED;
			snprintf(out->message, sizeof(out->message),
			         "The CAA record %s allows %s to issue for %s.", rec,
			         p->ca_identities[idx], display);
			return 0;
		}
		if (!best_rr || w > best) {
			best = w;
			best_rr = rr;
			best_ca = idx;
		}
		if (out->blocking[0])
			appendf(out->blocking, sizeof(out->blocking), ", ");
		format_rr(out->blocking, sizeof(out->blocking), owner, rr);
	}

	out->verdict = CAA_FORBIDDEN;
	if (best >= W_METHOD)
		ca = p->ca_identities[best_ca];
	/* The record to add: our CA, keeping the restrictions the customer evidently wants. */
	snprintf(out->fix, sizeof(out->fix), "%s. CAA 0 %s \"%s", owner, kind, ca);
	if (best == W_ACCOUNT && p->account_uri)
		appendf(out->fix, sizeof(out->fix), "; accounturi=%s", p->account_uri);
	if (best == W_METHOD) {
		struct caa_value v;
		if (parse_value(best_rr->value, &v) == 0 && v.n_accounturi == 1 && p->account_uri &&
		    seg_is(v.accounturi, p->account_uri))
			appendf(out->fix, sizeof(out->fix), "; accounturi=%s", p->account_uri);
		appendf(out->fix, sizeof(out->fix), "; validationmethods=%s", p->method);
	}
	appendf(out->fix, sizeof(out->fix), "\"");

	snprintf(out->message, sizeof(out->message),
	         "The CAA %s record%s at %s (%s) do%s not allow %s to issue for %s: ", kind,
	         (use_wild ? n_wild : n_issue) > 1 ? "s" : "", owner, out->blocking,
	         (use_wild ? n_wild : n_issue) > 1 ? "" : "es", ca, display);
	switch (best) {
	case W_OTHER_CA:
		appendf(out->message, sizeof(out->message), "they name other CAs only.");
		break;
	case W_UNPARSEABLE:
		appendf(out->message, sizeof(out->message),
		        "the value \"%s\" is malformed, and a malformed record allows no CA.",
		        best_rr->value);
		break;
	case W_EMPTY_ISSUER:
		appendf(out->message, sizeof(out->message),
		        "an empty issuer (\";\") forbids every CA.");
		break;
	case W_CASE:
		appendf(out->message, sizeof(out->message),
		        "CAs compare the issuer name exactly, so \"%s\" must be written \"%s\".",
		        best_rr->value, ca);
		break;
	case W_METHOD:
		appendf(out->message, sizeof(out->message),
		        "its validationmethods parameter does not allow %s, the method certsync "
		        "uses (or is malformed or repeated).",
		        p->method);
		break;
	case W_ACCOUNT:
		if (p->account_uri)
			appendf(out->message, sizeof(out->message),
			        "its accounturi does not name certsync's ACME account %s (or is "
			        "repeated).",
			        p->account_uri);
		else
			appendf(
			    out->message, sizeof(out->message),
			    "it is limited to one ACME account (accounturi) and certsync has no "
			    "registered account yet.");
		break;
	case W_MATCH:
		break;
	}
	if (use_wild)
		appendf(out->message, sizeof(out->message),
		        " For a wildcard only the issuewild records count when there are any.");
	appendf(out->message, sizeof(out->message), " Add %s", out->fix);
	if (best == W_EMPTY_ISSUER)
		appendf(out->message, sizeof(out->message), " (or delete the \";\" record)");
	appendf(out->message, sizeof(out->message), ".");
	if (rel->cname)
		appendf(out->message, sizeof(out->message),
		        " %s is an alias (CNAME) of %s, so the CAA records of %s apply and must be "
		        "changed there.",
		        rel->name, rel->cname, rel->cname);
	return 0;
}

/* ---- the climb through a resolver ---- */

#define CLIMB_MAX 128 /* labels of a 253-character name */
#define RR_MAX    64  /* CAA records kept per name */

struct climb_store {
	char names[CLIMB_MAX][CAA_NAME_MAX];
	char errors[CLIMB_MAX][128];
	char cnames[CLIMB_MAX][CAA_NAME_MAX];
	struct caa_lookup l[CLIMB_MAX];
	struct caa_rr rrs[RR_MAX];
	char *texts[RR_MAX * 2];
	size_t n_texts;
};

/* The CAA rdata of rr as tag and value text (ldns: int8 flags, TAG, LONG_STR). */
static int caa_rdata(const ldns_rr *rr, struct climb_store *s, struct caa_rr *out)
{
	const ldns_rdf *f, *t, *v;
	const uint8_t *td;
	size_t tl, vl;
	char *tag = NULL, *val = NULL;

	if (ldns_rr_rd_count(rr) != 3 || s->n_texts + 2 > RR_MAX * 2)
		return -1;
	f = ldns_rr_rdf(rr, 0);
	t = ldns_rr_rdf(rr, 1);
	v = ldns_rr_rdf(rr, 2);
	if (ldns_rdf_size(f) != 1)
		return -1;
	td = ldns_rdf_data(t);
	tl = ldns_rdf_size(t);
	/* The TAG rdf holds its length octet first. */
	if (tl < 1 || td[0] != tl - 1)
		return -1;
	vl = ldns_rdf_size(v);
	tag = malloc(tl);
	val = malloc(vl + 1);
	if (!tag || !val) {
		free(tag);
		free(val);
		return -1;
	}
	memcpy(tag, td + 1, tl - 1);
	tag[tl - 1] = '\0';
	memcpy(val, ldns_rdf_data(v), vl);
	val[vl] = '\0';
	/* An embedded NUL would cut the value short and could make a malformed value look
	 * well-formed: replace it with a byte the parser rejects (as Boulder would). */
	for (size_t i = 0; i < vl; i++)
		if (val[i] == '\0')
			val[i] = '\x01';
	s->texts[s->n_texts++] = tag;
	s->texts[s->n_texts++] = val;
	out->flags = ldns_rdf_data(f)[0];
	out->tag = tag;
	out->value = val;
	return 0;
}

int caa_check(const char *resolver, int timeout_ms, const char *identifier,
              const struct caa_params *p, struct caa_result *out, char *err, size_t errlen)
{
	struct climb_store *s = NULL;
	ldns_resolver *res = NULL;
	char name[CAA_NAME_MAX];
	const char *cur;
	size_t n = 0, n_rrs = 0;
	int wildcard, ret = -1;

	memset(out, 0, sizeof(*out));
	if (!identifier || base_name(identifier, name, sizeof(name), &wildcard) != 0) {
		snprintf(err, errlen, "invalid identifier");
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (dnsq_resolver_new(resolver, timeout_ms, 2, true, &res, err, errlen) != 0)
		goto out;

	/* Sequential and stopping at the first decisive answer: the same outcome as Boulder's
	 * parallel lookups followed by selectCAA. */
	for (cur = name; cur && n < CLIMB_MAX; n++) {
		struct caa_lookup *l = &s->l[n];
		ldns_pkt *pkt = NULL;
		enum dnsq_status st;
		char first[CAA_NAME_MAX], last[CAA_NAME_MAX];

		snprintf(s->names[n], sizeof(s->names[n]), "%s", cur);
		l->name = s->names[n];
		st = dnsq_query(res, cur, LDNS_RR_TYPE_CAA, &pkt, s->errors[n],
		                sizeof(s->errors[n]));
		if (st == DNSQ_ERROR) {
			l->status = CAA_LOOKUP_ERROR;
			l->error = s->errors[n];
			n++;
			break;
		}
		l->status = st == DNSQ_NXDOMAIN ? CAA_LOOKUP_NXDOMAIN : CAA_LOOKUP_OK;
		if (st == DNSQ_OK) {
			ldns_rr_list *ans = ldns_pkt_answer(pkt);
			size_t i, start = n_rrs;
			if (dnsq_cname_chain(ans, cur, last, sizeof(last), first, sizeof(first)) >
			    0) {
				snprintf(s->cnames[n], sizeof(s->cnames[n]), "%s", last);
				l->cname = s->cnames[n];
			}
			for (i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
				const ldns_rr *rr = ldns_rr_list_rr(ans, i);
				if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CAA ||
				    ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || n_rrs >= RR_MAX)
					continue;
				if (caa_rdata(rr, s, &s->rrs[n_rrs]) == 0)
					n_rrs++;
			}
			l->rrs = &s->rrs[start];
			l->n_rrs = n_rrs - start;
		}
		ldns_pkt_free(pkt);
		if (l->n_rrs > 0) {
			n++;
			break;
		}
		cur = strchr(cur, '.');
		if (cur)
			cur++;
	}
	if (caa_evaluate(identifier, s->l, n, p, out) != 0) {
		snprintf(err, errlen, "invalid CAA parameters (no CA identity or method)");
		goto out;
	}
	ret = 0;
out:
	if (res)
		ldns_resolver_deep_free(res);
	for (size_t i = 0; i < s->n_texts; i++)
		free(s->texts[i]);
	free(s);
	return ret;
}
