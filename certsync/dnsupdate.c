#include "dnsupdate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "addr.h"
#include "dnsq.h"
#include "log.h"

#include "banned.h"

#define FUDGE       300 /* RFC 8945 §5.2.3's recommendation */
#define SECRET_MAX  1024
#define SERVERS_MAX 32

/* TSIG error codes (RFC 8945 §5.3). */
#define TSIG_BADSIG  16
#define TSIG_BADKEY  17
#define TSIG_BADTIME 18

struct dnsupdate {
	char zone[DNSUPDATE_NAME_MAX];
	char keyname[DNSUPDATE_NAME_MAX]; /* with the trailing dot, as ldns wants it */
	char alg[32];                     /* "hmac-sha256." */
	char *secret;                     /* base64, cleansed on close */
	char *update_server;
	struct addr update_addr;
	char *servers[SERVERS_MAX];
	size_t n_servers;
	int timeout_ms;
};

/* ---- small helpers ---- */

static int canon(const char *in, char *out, size_t len)
{
	size_t n = strlen(in), i;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= len)
		return -1;
	for (i = 0; i < n; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	out[n] = '\0';
	return 0;
}

/* 1 when name is zone or below it. */
static int in_zone(const char *name, const char *zone)
{
	size_t n = strlen(name), z = strlen(zone);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == z)
		return strncasecmp(name, zone, n) == 0;
	return n > z && name[n - z - 1] == '.' && strncasecmp(name + n - z, zone, z) == 0;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int add_server(struct dnsupdate *u, const char *hostport)
{
	size_t i;

	for (i = 0; i < u->n_servers; i++)
		if (strcmp(u->servers[i], hostport) == 0)
			return 0;
	if (u->n_servers >= SERVERS_MAX)
		return 0;
	u->servers[u->n_servers] = strdup(hostport);
	if (!u->servers[u->n_servers])
		return -1;
	u->n_servers++;
	return 0;
}

/* The secret file: the base64 secret alone, surrounding blanks and newlines ignored. */
static int read_secret(const char *path, char **out, char *err, size_t errlen)
{
	char buf[SECRET_MAX + 1];
	size_t n = 0, start = 0, i;
	ssize_t r;
	int fd, ret = -1;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read the TSIG secret file %s: %s", path,
		         strerror(errno));
		return -1;
	}
	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	while (start < n && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\n' ||
	                     buf[start] == '\r'))
		start++;
	while (n > start && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\n' ||
	                     buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (n == start) {
		snprintf(err, errlen, "the TSIG secret file %s is empty", path);
		goto out;
	}
	if (n - start >= SECRET_MAX) {
		snprintf(err, errlen, "the TSIG secret file %s is too long for a base64 secret",
		         path);
		goto out;
	}
	for (i = start; i < n; i++) {
		char c = buf[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '=')) {
			/* Never echo the secret: say where, not what. */
			snprintf(
			    err, errlen,
			    "the TSIG secret file %s must hold the base64 secret alone; byte %zu "
			    "is not base64",
			    path, i - start + 1);
			goto out;
		}
	}
	*out = strdup(buf + start);
	if (!*out) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return ret;
}

static int alg_name(const char *alg, char *out, size_t len)
{
	size_t n = strlen(alg);
	int r;

	if (n == 0)
		return -1;
	r = snprintf(out, len, "%s%s", alg, alg[n - 1] == '.' ? "" : ".");
	for (size_t i = 0; out[i]; i++)
		out[i] = (out[i] >= 'A' && out[i] <= 'Z') ? (char)(out[i] - 'A' + 'a') : out[i];
	return (r < 0 || (size_t)r >= len) ? -1 : 0;
}

int dnsupdate_tsig_supported(const char *alg)
{
	char name[32];
	ldns_rdf *dn;
	ldns_pkt *p;
	ldns_status s;

	if (!alg || alg_name(alg, name, sizeof(name)) != 0)
		return 0;
	dn = ldns_dname_new_frm_str("probe.");
	if (!dn)
		return 0;
	p = ldns_pkt_query_new(dn, LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN, 0);
	if (!p)
		return 0;
	/* A throw-away key: the call fails with CRYPTO_UNKNOWN_ALGO before using it when the
	 * library does not know the algorithm. */
	s = ldns_pkt_tsig_sign(p, "probe.", "AAAAAAAAAAAAAAAAAAAAAA==", FUDGE, name, NULL);
	ldns_pkt_free(p);
	return s == LDNS_STATUS_OK;
}

/* TXT values owned by name in the answer section: the strings of one RR concatenated. */
static int txt_values(const ldns_pkt *p, const char *name, char ***vals, size_t *n)
{
	const ldns_rr_list *ans = ldns_pkt_answer(p);
	char owner[DNSUPDATE_NAME_MAX];
	char **v = NULL;
	size_t i, k = 0, count = ans ? ldns_rr_list_rr_count(ans) : 0;

	*vals = NULL;
	*n = 0;
	if (count == 0)
		return 0;
	v = calloc(count, sizeof(*v));
	if (!v)
		return -1;
	for (i = 0; i < count; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(ans, i);
		size_t j, total = 0;
		char *s;
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT ||
		    !dnsq_name_eq(dnsq_dname_str(ldns_rr_owner(rr), owner, sizeof(owner)), name))
			continue;
		for (j = 0; j < ldns_rr_rd_count(rr); j++)
			total += ldns_rdf_size(ldns_rr_rdf(rr, j));
		s = malloc(total + 1);
		if (!s)
			goto fail;
		total = 0;
		for (j = 0; j < ldns_rr_rd_count(rr); j++) {
			const ldns_rdf *rd = ldns_rr_rdf(rr, j);
			const uint8_t *d = ldns_rdf_data(rd);
			size_t sz = ldns_rdf_size(rd);
			/* A STR rdf: one length octet, then the bytes. */
			if (sz >= 1 && d[0] == sz - 1) {
				memcpy(s + total, d + 1, sz - 1);
				total += sz - 1;
			}
		}
		s[total] = '\0';
		v[k++] = s;
	}
	*vals = v;
	*n = k;
	return 0;
fail:
	for (i = 0; i < k; i++)
		free(v[i]);
	free(v);
	return -1;
}

static void free_values(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- open / close ---- */

static int discover_zone(struct dnsupdate *u, ldns_resolver *q, const char *vd, char *err,
                         size_t errlen)
{
	ldns_pkt *p = NULL;
	char why[128];
	enum dnsq_status st;
	const ldns_rr_list *lists[2];
	int ret = -1;

	st = dnsq_query(q, vd, LDNS_RR_TYPE_SOA, &p, why, sizeof(why));
	if (st == DNSQ_ERROR) {
		snprintf(err, errlen,
		         "asking the update server %s for the SOA of %s failed (%s): is it the "
		         "primary of the validation zone?",
		         u->update_server, vd, why);
		return -1;
	}
	lists[0] = ldns_pkt_answer(p);
	lists[1] = ldns_pkt_authority(p);
	for (int l = 0; l < 2 && ret != 0; l++) {
		for (size_t i = 0; lists[l] && i < ldns_rr_list_rr_count(lists[l]); i++) {
			const ldns_rr *rr = ldns_rr_list_rr(lists[l], i);
			if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA)
				continue;
			dnsq_dname_str(ldns_rr_owner(rr), u->zone, sizeof(u->zone));
			if (u->zone[0] && in_zone(vd, u->zone))
				ret = 0;
			break;
		}
	}
	if (ret != 0 || !ldns_pkt_aa(p)) {
		snprintf(err, errlen,
		         "the update server %s is not authoritative for %s (no SOA in its answer)",
		         u->update_server, vd);
		ret = -1;
	}
	ldns_pkt_free(p);
	return ret;
}

/* Addresses of the NS names of the zone, port 53: in-zone names from the primary, others
 * through the recursive resolver. */
static void discover_ns(struct dnsupdate *u, ldns_resolver *q, const char *resolver)
{
	ldns_resolver *rec = NULL;
	ldns_pkt *p = NULL;
	char why[128], err[256];
	const ldns_rr_list *ans;

	if (dnsq_query(q, u->zone, LDNS_RR_TYPE_NS, &p, why, sizeof(why)) != DNSQ_OK) {
		log_msg(LOG_WARN, "event=dnsupdate_ns zone=%s error=\"%s\"", u->zone, why);
		return;
	}
	ans = ldns_pkt_answer(p);
	for (size_t i = 0; ans && i < ldns_rr_list_rr_count(ans); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(ans, i);
		char ns[DNSUPDATE_NAME_MAX];
		int found = 0;
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NS || ldns_rr_rd_count(rr) < 1)
			continue;
		dnsq_dname_str(ldns_rr_rdf(rr, 0), ns, sizeof(ns));
		for (int pass = 0; pass < 2 && !found; pass++) {
			ldns_resolver *r = q;
			if (pass == 1) {
				if (!rec && dnsq_resolver_new(resolver, u->timeout_ms, 2, true,
				                              &rec, err, sizeof(err)) != 0)
					break;
				r = rec;
			}
			for (int t = 0; t < 2; t++) {
				ldns_rr_type type = t ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A;
				ldns_pkt *a = NULL;
				const ldns_rr_list *al;
				if (dnsq_query(r, ns, type, &a, why, sizeof(why)) != DNSQ_OK)
					continue;
				al = ldns_pkt_answer(a);
				for (size_t j = 0; al && j < ldns_rr_list_rr_count(al); j++) {
					const ldns_rr *ar = ldns_rr_list_rr(al, j);
					char *ip, hp[80];
					if (ldns_rr_get_type(ar) != type ||
					    ldns_rr_rd_count(ar) < 1)
						continue;
					ip = ldns_rdf2str(ldns_rr_rdf(ar, 0));
					if (!ip)
						continue;
					snprintf(hp, sizeof(hp), t ? "[%s]:53" : "%s:53", ip);
					free(ip);
					if (add_server(u, hp) == 0)
						found = 1;
				}
				ldns_pkt_free(a);
			}
		}
		if (!found)
			log_msg(LOG_WARN,
			        "event=dnsupdate_ns zone=%s ns=%s error=\"no address: propagation "
			        "is not checked there\"",
			        u->zone, ns);
	}
	ldns_pkt_free(p);
	if (rec)
		ldns_resolver_deep_free(rec);
}

int dnsupdate_open(const struct cs_dns *dns, int timeout_ms, struct dnsupdate **out, char *err,
                   size_t errlen)
{
	struct dnsupdate *u = NULL;
	ldns_resolver *q = NULL;
	char vd[DNSUPDATE_NAME_MAX];
	int ret = -1, n;

	*out = NULL;
	if (!dns || !dns->validation_domain || !dns->update_server || !dns->tsig_name ||
	    !dns->tsig_secret_file || canon(dns->validation_domain, vd, sizeof(vd)) != 0) {
		snprintf(err, errlen, "incomplete dns configuration (validation_domain, update)");
		return -1;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	u->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	n = snprintf(u->keyname, sizeof(u->keyname), "%s%s", dns->tsig_name,
	             dns->tsig_name[0] && dns->tsig_name[strlen(dns->tsig_name) - 1] == '.' ? ""
	                                                                                    : ".");
	if (n < 0 || (size_t)n >= sizeof(u->keyname) || !dns->tsig_name[0]) {
		snprintf(err, errlen, "invalid TSIG key name");
		goto out;
	}
	if (alg_name(dns->tsig_algorithm ? dns->tsig_algorithm : "hmac-sha256", u->alg,
	             sizeof(u->alg)) != 0 ||
	    !dnsupdate_tsig_supported(u->alg)) {
		if (strcasecmp(u->alg, "hmac-sha384.") == 0)
			snprintf(
			    err, errlen,
			    "dns.update.tsig_algorithm hmac-sha384 cannot be used: libldns "
			    "(1.8.3) cannot sign with it (a typo in its tsig.c); use hmac-sha256 "
			    "(or hmac-sha512) for the key %s on both sides",
			    dns->tsig_name);
		else
			snprintf(err, errlen, "TSIG algorithm \"%s\" is not supported by libldns",
			         dns->tsig_algorithm ? dns->tsig_algorithm : "");
		goto out;
	}
	if (read_secret(dns->tsig_secret_file, &u->secret, err, errlen) != 0)
		goto out;
	u->update_server = strdup(dns->update_server);
	if (!u->update_server) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (addr_parse(dns->update_server, &u->update_addr, err, errlen) != 0)
		goto out;
	if (dnsq_resolver_new(dns->update_server, u->timeout_ms, 2, false, &q, err, errlen) != 0)
		goto out;
	if (discover_zone(u, q, vd, err, errlen) != 0)
		goto out;
	if (dns->n_authoritative > 0) {
		for (size_t i = 0; i < dns->n_authoritative; i++)
			if (add_server(u, dns->authoritative[i]) != 0) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
	} else {
		discover_ns(u, q, dns->resolver);
		if (add_server(u, dns->update_server) != 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	*out = u;
	u = NULL;
	ret = 0;
out:
	if (q)
		ldns_resolver_deep_free(q);
	dnsupdate_close(u);
	return ret;
}

void dnsupdate_close(struct dnsupdate *u)
{
	if (!u)
		return;
	if (u->secret) {
		OPENSSL_cleanse(u->secret, strlen(u->secret));
		free(u->secret);
	}
	free(u->update_server);
	for (size_t i = 0; i < u->n_servers; i++)
		free(u->servers[i]);
	free(u);
}

const char *dnsupdate_zone(const struct dnsupdate *u)
{
	return u->zone;
}

size_t dnsupdate_servers(const struct dnsupdate *u, const char *const **servers)
{
	*servers = (const char *const *)u->servers;
	return u->n_servers;
}

/* ---- updates ---- */

static const char *rcode_name(ldns_pkt_rcode rc, char *buf, size_t len)
{
	const ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, (int)rc);
	if (t)
		snprintf(buf, len, "%s", t->name);
	else
		snprintf(buf, len, "rcode %d", (int)rc);
	return buf;
}

static int send_update(struct dnsupdate *u, ldns_rr *rr, const char *what, const char *name,
                       char *err, size_t errlen)
{
	ldns_rr_list *list = NULL;
	ldns_rdf *zone = NULL, *mac = NULL;
	ldns_pkt *pkt = NULL, *ans = NULL;
	ldns_buffer *buf = NULL;
	uint8_t *wire = NULL;
	size_t wlen = 0;
	char fqzone[DNSUPDATE_NAME_MAX + 1], rc[32];
	struct timeval tv = {u->timeout_ms / 1000, (u->timeout_ms % 1000) * 1000};
	ldns_status s;
	ldns_pkt_rcode rcode;
	int ret = -1, terr = 0;

	list = ldns_rr_list_new();
	snprintf(fqzone, sizeof(fqzone), "%s.", u->zone);
	zone = ldns_dname_new_frm_str(fqzone);
	if (!list || !zone || !ldns_rr_list_push_rr(list, rr)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rr = NULL; /* the list owns it */
	pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, NULL, list, NULL);
	zone = NULL; /* the packet owns it (update.c) */
	if (!pkt) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ldns_pkt_set_rd(pkt, false);
	ldns_pkt_set_random_id(pkt);
	s = ldns_pkt_tsig_sign(pkt, u->keyname, u->secret, FUDGE, u->alg, NULL);
	if (s != LDNS_STATUS_OK || !ldns_pkt_tsig(pkt)) {
		snprintf(err, errlen, "cannot sign the update with TSIG key %s: %s", u->keyname,
		         ldns_get_errorstr_by_id(s));
		goto out;
	}
	mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(pkt), 3));
	buf = ldns_buffer_new(LDNS_MAX_PACKETLEN);
	if (!mac || !buf || ldns_pkt2buffer_wire(buf, pkt) != LDNS_STATUS_OK) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* TCP: updates and their answers are never truncated, and ACL logs name the peer. */
	s = ldns_tcp_send(&wire, buf, &u->update_addr.ss, u->update_addr.len, tv, &wlen);
	if (s != LDNS_STATUS_OK || !wire) {
		snprintf(err, errlen, "no answer from the update server %s (%s)", u->update_server,
		         ldns_get_errorstr_by_id(s));
		goto out;
	}
	if (ldns_wire2pkt(&ans, wire, wlen) != LDNS_STATUS_OK || !ans ||
	    ldns_pkt_id(ans) != ldns_pkt_id(pkt)) {
		snprintf(err, errlen, "the update server %s sent an unreadable answer",
		         u->update_server);
		goto out;
	}
	rcode = ldns_pkt_get_rcode(ans);
	if (ldns_pkt_tsig(ans) && ldns_rr_rd_count(ldns_pkt_tsig(ans)) >= 6)
		terr = ldns_rdf2native_int16(ldns_rr_rdf(ldns_pkt_tsig(ans), 5));
	if (rcode == LDNS_RCODE_NOERROR && terr == 0) {
		if (!ldns_pkt_tsig_verify(ans, wire, wlen, u->keyname, u->secret, mac)) {
			snprintf(
			    err, errlen,
			    "the update server %s answered NOERROR to %s at %s, but its answer's "
			    "TSIG signature does not verify with key %s",
			    u->update_server, what, name, u->keyname);
			goto out;
		}
		ret = 0;
		goto out;
	}
	rcode_name(rcode, rc, sizeof(rc));
	if (rcode == LDNS_RCODE_NOTAUTH && terr == TSIG_BADKEY)
		snprintf(err, errlen,
		         "the server's ACL refused this update (%s at %s in zone %s): %s answered "
		         "NOTAUTH with TSIG error BADKEY, which is how it refuses a change its ACL "
		         "does not allow key %s to make. Check the ACL for that key (Knot: "
		         "update-owner/update-type; BIND: update-policy); the same answer comes if "
		         "the server does not know the key name at all",
		         what, name, u->zone, u->update_server, u->keyname);
	else if (terr == TSIG_BADSIG)
		snprintf(err, errlen,
		         "the update server %s rejected the signature (%s/BADSIG): the secret in "
		         "the TSIG secret file differs from the server's for key %s (or the "
		         "algorithm %s does)",
		         u->update_server, rc, u->keyname, u->alg);
	else if (terr == TSIG_BADTIME)
		snprintf(
		    err, errlen,
		    "the update server %s rejected the signature time (%s/BADTIME): the clocks "
		    "of this host and the server differ by more than %d s; fix NTP",
		    u->update_server, rc, FUDGE);
	else if (rcode == LDNS_RCODE_NOTAUTH)
		snprintf(err, errlen,
		         "the update server %s is not authoritative for zone %s (NOTAUTH) or did "
		         "not accept key %s",
		         u->update_server, u->zone, u->keyname);
	else if (rcode == LDNS_RCODE_REFUSED)
		snprintf(err, errlen,
		         "the update server %s refused the update (REFUSED): no ACL of zone %s "
		         "allows updates from this address with key %s",
		         u->update_server, u->zone, u->keyname);
	else if (rcode == LDNS_RCODE_NOTZONE)
		snprintf(err, errlen, "%s is not inside zone %s (NOTZONE)", name, u->zone);
	else
		snprintf(err, errlen, "the update server %s answered %s to %s at %s%s",
		         u->update_server, rc, what, name, terr ? " with a TSIG error" : "");
out:
	if (rr)
		ldns_rr_free(rr);
	if (list)
		ldns_rr_list_deep_free(list);
	if (zone)
		ldns_rdf_deep_free(zone);
	if (mac)
		ldns_rdf_deep_free(mac);
	if (pkt)
		ldns_pkt_free(pkt);
	if (ans)
		ldns_pkt_free(ans);
	if (buf)
		ldns_buffer_free(buf);
	free(wire);
	return ret;
}

static ldns_rr *txt_rr(const char *name, const char *value, ldns_rr_class cls, uint32_t ttl)
{
	char fq[DNSUPDATE_NAME_MAX + 1];
	uint8_t data[256];
	size_t n = strlen(value);
	ldns_rr *rr;
	ldns_rdf *owner, *rd;

	snprintf(fq, sizeof(fq), "%s%s", name, name[strlen(name) - 1] == '.' ? "" : ".");
	owner = ldns_dname_new_frm_str(fq);
	if (!owner)
		return NULL;
	data[0] = (uint8_t)n;
	memcpy(data + 1, value, n);
	rd = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, data);
	rr = ldns_rr_new();
	if (!rd || !rr) {
		ldns_rdf_deep_free(owner);
		if (rd)
			ldns_rdf_deep_free(rd);
		if (rr)
			ldns_rr_free(rr);
		return NULL;
	}
	ldns_rr_set_owner(rr, owner);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	ldns_rr_set_class(rr, cls);
	ldns_rr_set_ttl(rr, ttl);
	ldns_rr_push_rdf(rr, rd);
	return rr;
}

static int check_args(struct dnsupdate *u, const char *name, const char *value, char *err,
                      size_t errlen)
{
	size_t n;

	if (!u || !name || !*name || !value) {
		snprintf(err, errlen, "missing name or value");
		return -1;
	}
	if (strlen(name) > 253 || !in_zone(name, u->zone)) {
		snprintf(err, errlen, "%s is not inside the validation zone %s", name, u->zone);
		return -1;
	}
	n = strlen(value);
	if (n == 0 || n > 255) {
		snprintf(err, errlen, "a TXT value holds 1 to 255 bytes, got %zu", n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e) {
			snprintf(err, errlen, "the TXT value must be printable ASCII");
			return -1;
		}
	return 0;
}

int dnsupdate_add_txt(struct dnsupdate *u, const char *name, const char *value, char *err,
                      size_t errlen)
{
	ldns_rr *rr;

	if (check_args(u, name, value, err, errlen) != 0)
		return -1;
	rr = txt_rr(name, value, LDNS_RR_CLASS_IN, DNSUPDATE_TTL);
	if (!rr) {
		snprintf(err, errlen, "invalid name %s", name);
		return -1;
	}
	return send_update(u, rr, "adding a TXT record", name, err, errlen);
}

int dnsupdate_delete_txt(struct dnsupdate *u, const char *name, const char *value, char *err,
                         size_t errlen)
{
	ldns_rr *rr;

	if (check_args(u, name, value, err, errlen) != 0)
		return -1;
	/* RFC 2136 §2.5.4: class NONE, TTL 0, the RDATA to remove. */
	rr = txt_rr(name, value, LDNS_RR_CLASS_NONE, 0);
	if (!rr) {
		snprintf(err, errlen, "invalid name %s", name);
		return -1;
	}
	return send_update(u, rr, "deleting a TXT record", name, err, errlen);
}

/* ---- propagation ---- */

/* 1 when server serves every value at name; 0 when not (why says what it served); -1 on
 * a failed lookup (why says how). */
static int server_has(ldns_resolver *r, const char *name, const char *const *values, size_t n,
                      char *why, size_t whylen)
{
	ldns_pkt *p = NULL;
	char **got = NULL;
	size_t ngot = 0, i, j;
	int ok = 1;

	if (dnsq_query(r, name, LDNS_RR_TYPE_TXT, &p, why, whylen) == DNSQ_ERROR)
		return -1;
	if (!ldns_pkt_aa(p)) {
		snprintf(why, whylen, "a non-authoritative answer");
		ldns_pkt_free(p);
		return -1;
	}
	if (txt_values(p, name, &got, &ngot) != 0) {
		ldns_pkt_free(p);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	ldns_pkt_free(p);
	for (i = 0; i < n && ok; i++) {
		int found = 0;
		for (j = 0; j < ngot && !found; j++)
			found = strcmp(values[i], got[j]) == 0;
		if (!found) {
			ok = 0;
			snprintf(why, whylen, "%zu TXT record%s at %s, without \"%s\"", ngot,
			         ngot == 1 ? "" : "s", name, values[i]);
		}
	}
	free_values(got, ngot);
	return ok;
}

int dnsupdate_wait(struct dnsupdate *u, const char *name, const char *const *values, size_t n,
                   int deadline_ms, int interval_ms, char *err, size_t errlen)
{
	ldns_resolver *rs[SERVERS_MAX] = {0};
	int done[SERVERS_MAX] = {0};
	char why[SERVERS_MAX][256];
	long end = now_ms() + (deadline_ms > 0 ? deadline_ms : 0);
	size_t i, remaining = u->n_servers;
	int ret = -1;

	if (interval_ms < 10)
		interval_ms = 10;
	if (u->n_servers == 0) {
		snprintf(err, errlen, "no authoritative server to check for zone %s", u->zone);
		return -1;
	}
	for (i = 0; i < u->n_servers; i++) {
		snprintf(why[i], sizeof(why[i]), "not asked yet");
		if (dnsq_resolver_new(u->servers[i], u->timeout_ms, 1, false, &rs[i], err,
		                      errlen) != 0)
			goto out;
	}
	for (;;) {
		for (i = 0; i < u->n_servers; i++) {
			if (done[i])
				continue;
			if (server_has(rs[i], name, values, n, why[i], sizeof(why[i])) == 1) {
				done[i] = 1;
				remaining--;
			}
		}
		if (remaining == 0) {
			ret = 0;
			goto out;
		}
		if (now_ms() + interval_ms > end)
			break;
		sleep_ms(interval_ms);
	}
	for (i = 0; i < u->n_servers && done[i]; i++)
		;
	snprintf(err, errlen,
	         "after %d ms, %zu of %zu authoritative servers of %s do not serve all %zu "
	         "value%s at %s; %s answered %s",
	         deadline_ms, remaining, u->n_servers, u->zone, n, n == 1 ? "" : "s", name,
	         u->servers[i], why[i]);
out:
	for (i = 0; i < u->n_servers; i++)
		if (rs[i])
			ldns_resolver_deep_free(rs[i]);
	return ret;
}

/* ---- sweep ---- */

void dnsupdate_txt_free(struct dnsupdate_txt *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

int dnsupdate_sweep(struct dnsupdate *u, const char *const *names, size_t n_names,
                    struct dnsupdate_txt **out, size_t *n_out, char *err, size_t errlen)
{
	ldns_resolver *q = NULL;
	struct dnsupdate_txt *v = NULL;
	size_t n = 0, cap = 0;
	int ret = -1;

	*out = NULL;
	*n_out = 0;
	if (dnsq_resolver_new(u->update_server, u->timeout_ms, 2, false, &q, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n_names; i++) {
		ldns_pkt *p = NULL;
		char **vals = NULL, why[128];
		size_t nv = 0;
		if (!in_zone(names[i], u->zone))
			continue;
		if (dnsq_query(q, names[i], LDNS_RR_TYPE_TXT, &p, why, sizeof(why)) == DNSQ_ERROR) {
			snprintf(err, errlen, "listing TXT at %s on %s failed (%s)", names[i],
			         u->update_server, why);
			goto out;
		}
		if (txt_values(p, names[i], &vals, &nv) != 0) {
			ldns_pkt_free(p);
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ldns_pkt_free(p);
		for (size_t j = 0; j < nv; j++) {
			char nm[DNSUPDATE_NAME_MAX];
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct dnsupdate_txt *t = realloc(v, nc * sizeof(*v));
				if (!t) {
					free_values(vals, nv);
					snprintf(err, errlen, "out of memory");
					goto out;
				}
				v = t;
				cap = nc;
			}
			canon(names[i], nm, sizeof(nm));
			v[n].name = strdup(nm);
			v[n].value = vals[j];
			vals[j] = NULL;
			if (!v[n].name) {
				free(v[n].value);
				free_values(vals, nv);
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			n++;
		}
		free_values(vals, nv);
	}
	*out = v;
	*n_out = n;
	v = NULL;
	ret = 0;
out:
	dnsupdate_txt_free(v, n);
	ldns_resolver_deep_free(q);
	return ret;
}
