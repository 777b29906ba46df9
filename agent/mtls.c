#include "mtls.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>

#include "headers.h"
#include "log.h"
#include "pset.h"
#include "x509u.h"

#include "banned.h"

#define ACTIONS_MAX (64u << 10) /* an ACK's actions never exceed a frame anyway */

/* ---- hashing ---- */

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t v;

	while (n >= 8) {
		memcpy(&v, b, 8);
		h = (h ^ v) * 0x9E3779B97F4A7C15ull;
		h ^= h >> 29;
		b += 8;
		n -= 8;
	}
	v = 0;
	memcpy(&v, b, n);
	h = (h ^ v ^ (uint64_t)n << 56) * 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 31);
}

/* ---- intermediates remembered for resumed sessions ---- */

struct resume_entry {
	uint64_t h;
	uint8_t *leaf, *chain;
	size_t leaf_len, chain_len;
};

static pthread_mutex_t resume_mu = PTHREAD_MUTEX_INITIALIZER;
static struct resume_entry resume_tab[MTLS_RESUME_ENTRIES];

static void resume_remember(const uint8_t *leaf, size_t ll, const uint8_t *chain, size_t cl)
{
	uint64_t h = mix(0, leaf, ll);
	struct resume_entry *e = &resume_tab[h % MTLS_RESUME_ENTRIES];
	uint8_t *l2 = malloc(ll), *c2 = malloc(cl);

	if (!l2 || !c2) {
		free(l2);
		free(c2);
		return;
	}
	memcpy(l2, leaf, ll);
	memcpy(c2, chain, cl);
	pthread_mutex_lock(&resume_mu);
	/* Direct-mapped: the latest leaf takes the slot (bounded memory, no eviction list). */
	free(e->leaf);
	free(e->chain);
	*e = (struct resume_entry){h, l2, c2, ll, cl};
	pthread_mutex_unlock(&resume_mu);
}

/* The intermediates last seen with this leaf, parsed; NULL when none. */
static STACK_OF(X509) * resume_lookup(const uint8_t *leaf, size_t ll)
{
	uint64_t h = mix(0, leaf, ll);
	struct resume_entry *e = &resume_tab[h % MTLS_RESUME_ENTRIES];
	uint8_t *chain = NULL;
	size_t cl = 0;
	STACK_OF(X509) *sk = NULL;

	pthread_mutex_lock(&resume_mu);
	if (e->leaf && e->h == h && e->leaf_len == ll && memcmp(e->leaf, leaf, ll) == 0 &&
	    (chain = malloc(e->chain_len)) != NULL) {
		memcpy(chain, e->chain, e->chain_len);
		cl = e->chain_len;
	}
	pthread_mutex_unlock(&resume_mu);
	if (!chain)
		return NULL;
	sk = sk_X509_new_null();
	for (const uint8_t *p = chain, *end = chain + cl; sk && p < end;) {
		X509 *x = d2i_X509(NULL, &p, end - p);
		if (!x || !sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	}
	free(chain);
	if (sk && sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		sk = NULL;
	}
	return sk;
}

/* ---- the per-worker verdict cache ---- */

/* Where in a DER certificate two certificates differ for sure: the end, which holds the
 * signature. The index hashes that tail, the lengths and the policy id; a hit is then
 * confirmed by comparing every byte, so hashing all 2-3 KB would buy nothing. */
#define TAIL 64

static uint64_t tail_mix(uint64_t h, struct spop_bytes b)
{
	size_t n = b.len < TAIL ? b.len : TAIL;

	if (n == 0)
		return mix(h, "", 0); /* no chain: b.p may be NULL */
	return mix(h ^ b.len, b.p + b.len - n, n);
}

/* memcmp/memcpy of possibly empty (NULL) byte strings. */
static bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

static void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
	if (n)
		memcpy(dst, src, n);
}

struct args;
static uint64_t cache_hash(const struct args *a, const char *policy_id);

struct centry {
	uint64_t h;
	const void *ps; /* the set it was computed with: a new set invalidates it */
	uint64_t gen;   /* and its generation, should a new set reuse the address */
	uint8_t *key;   /* leaf, chain and policy id, compared in full */
	size_t key_len;
	uint8_t *actions;
	size_t actions_len;
	int nactions;
	time_t valid_from, valid_until;
	enum pset_class cls;
	enum pset_verdict verdict;
};

struct mtls_worker {
	struct pset *ps;
	uint64_t seq;
	struct centry *cache;
	size_t ncache;
	struct mtls_stats stats;
	uint8_t scratch[ACTIONS_MAX];
	char hbuf[ACTIONS_MAX];
};

struct mtls_worker *mtls_worker_new(size_t cache_entries)
{
	struct mtls_worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->ncache = cache_entries;
	if (cache_entries && !(w->cache = calloc(cache_entries, sizeof(*w->cache)))) {
		free(w);
		return NULL;
	}
	return w;
}

void mtls_worker_free(struct mtls_worker *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->ncache; i++) {
		free(w->cache[i].key);
		free(w->cache[i].actions);
	}
	free(w->cache);
	pset_release(w->ps);
	free(w);
}

struct mtls_stats *mtls_worker_stats(struct mtls_worker *w)
{
	return &w->stats;
}

/* ---- the handler ---- */

struct args {
	struct spop_bytes sni, cert, chain;
	bool used, resumed;
};

static void read_args(const struct spop_message *m, struct args *a)
{
	memset(a, 0, sizeof(*a));
	for (unsigned i = 0; i < m->nargs; i++) {
		const struct spop_arg *g = &m->args[i];
		const struct spop_value *v = &g->value;
		if (spop_bytes_eq(g->name, "sni") && v->type == SPOP_T_STRING)
			a->sni = v->s;
		else if (spop_bytes_eq(g->name, "cert") && v->type == SPOP_T_BINARY)
			a->cert = v->s;
		else if (spop_bytes_eq(g->name, "chain") && v->type == SPOP_T_BINARY)
			a->chain = v->s;
		else if (spop_bytes_eq(g->name, "used") && v->type == SPOP_T_BOOL)
			a->used = v->b;
		else if (spop_bytes_eq(g->name, "resumed") && v->type == SPOP_T_BOOL)
			a->resumed = v->b;
	}
}

static uint64_t cache_hash(const struct args *a, const char *policy_id)
{
	uint64_t h = tail_mix(tail_mix(0, a->cert), a->chain);
	return mix(h, policy_id, strlen(policy_id)) ^ (uint64_t)a->resumed;
}

static const char *const verdict_names[PV_COUNT] = {"allow", "deny", "reject"};

static void count(const struct pset_policy *p, enum pset_class c, enum pset_verdict v)
{
	/* Shared by the workers: an atomic add, once per TLS connection. */
	atomic_fetch_add_explicit((_Atomic uint64_t *)&p->verdicts[c][v], 1, memory_order_relaxed);
}

/* The five variables every answer carries (DESIGN §3). */
static void put_common(struct spop_writer *w, const char *verdict, const char *verify,
                       const char *policy, bool hdr)
{
	struct spop_value v = spop_bool(true);

	spop_put_set_var(w, SPOP_SCOPE_SESS, "seen", &v);
	v = spop_str(verdict);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "verdict", &v);
	v = spop_str(verify);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "verify", &v);
	v = spop_str(policy);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "policy", &v);
	v = spop_bool(hdr);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "hdr", &v);
}

static int put_headers(struct spop_writer *w, const struct hdr_values *h, bool with_cert)
{
	struct spop_value v;
	int n = 7;

	if (with_cert) {
		v = spop_strn(h->cert, h->cert_len);
		spop_put_set_var(w, SPOP_SCOPE_SESS, "cert", &v);
		n++;
	}
	v = spop_strn(h->s_dn, h->s_dn_len);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "s_dn", &v);
	v = spop_strn(h->i_dn, h->i_dn_len);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "i_dn", &v);
	v = spop_strn(h->serial, h->serial_len);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "serial", &v);
	v = spop_strn(h->sha1, h->sha1_len);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "sha1", &v);
	v = spop_strn(h->v_start, h->v_start_len);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "v_start", &v);
	v = spop_strn(h->v_end, h->v_end_len);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "v_end", &v);
	v = spop_int(h->v_remain);
	spop_put_set_var(w, SPOP_SCOPE_SESS, "v_remain", &v);
	return n;
}

static void refresh(struct mtls_worker *w)
{
	uint64_t seq = pset_seq();

	if (seq == w->seq)
		return;
	pset_release(w->ps);
	w->ps = pset_current();
	w->seq = seq;
}

/* The period during which a verdict on these certificates stays what it is now. */
static void window(const struct eval_result *r, STACK_OF(X509) * extra, time_t now, time_t *from,
                   time_t *until)
{
	STACK_OF(X509) * lists[2] = {r->sent, extra};
	time_t nb, na;

	*from = 0;
	*until = now + 3600; /* and at least hourly, whatever else */
	if (r->leaf && x509u_not_before(r->leaf, &nb) == 0 && x509u_not_after(r->leaf, &na) == 0) {
		long days = x509u_days_remaining(r->leaf, now);
		time_t day_change = na - (time_t)days * 86400; /* when v_remain drops by one */
		if (nb > *from)
			*from = nb;
		if (na < *until)
			*until = na;
		if (day_change > now && day_change < *until)
			*until = day_change;
	}
	for (int l = 0; l < 2; l++)
		for (int i = 0; lists[l] && i < sk_X509_num(lists[l]); i++) {
			X509 *x = sk_X509_value(lists[l], i);
			if (x509u_not_before(x, &nb) == 0 && nb > *from)
				*from = nb;
			if (x509u_not_after(x, &na) == 0 && na < *until)
				*until = na;
		}
}

static enum eval_reason reason_enum(const char *token)
{
	for (int r = 1; r < EVAL_R_COUNT; r++)
		if (token && eval_reason_token((enum eval_reason)r) &&
		    strcmp(token, eval_reason_token((enum eval_reason)r)) == 0)
			return (enum eval_reason)r;
	return EVAL_R_INTERNAL;
}

static void log_verdict(const struct args *a, const struct pset_policy *p,
                        const struct eval_result *r, const char *verify, const char *verdict)
{
	char errs[512] = "", sni[300];
	size_t o = 0;

	for (size_t i = 0; i < r->nerr && o < sizeof(errs) - 40; i++)
		o += (size_t)snprintf(errs + o, sizeof(errs) - o, "%s%d@%d", i ? "," : "",
		                      r->err[i].code, r->err[i].depth);
	log_msg(r->cls == EVAL_FAILED ? LOG_INFO : LOG_DEBUG,
	        "event=verdict policy=%s sni=%s verify=%s verdict=%s errors=\"%s\"", p->p->id,
	        log_quote(sni, sizeof(sni), (const char *)a->sni.p, a->sni.len), verify, verdict,
	        errs);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Evaluates a presented certificate; the actions go to sw (a scratch writer). */
static int evaluate(struct mtls_worker *w, const struct args *a, const struct pset_policy *p,
                    time_t now, size_t room, struct spop_writer *sw, struct centry *ce)
{
	Edgetls__Mode mode = p->p->mode;
	struct eval_result r;
	STACK_OF(X509) *extra = NULL;
	struct hdr_values hv;
	enum pset_class cls;
	enum pset_verdict verdict;
	char verify[64];
	bool hdr;
	int n;
	uint64_t t0 = now_ns();

	if (a->resumed && a->chain.len == 0) {
		stat_add(&w->stats.resumed, 1);
		extra = resume_lookup(a->cert.p, a->cert.len);
		if (extra)
			stat_add(&w->stats.resumed_helped, 1);
	}
	if (eval_run(p->trust, mode, p->p->depth, a->cert.p, a->cert.len, a->chain.p, a->chain.len,
	             extra, now, &r) < 0)
		r.cls = EVAL_FAILED;
	stat_hist(w->stats.eval_bucket, &w->stats.eval_sum_ns, now_ns() - t0);
	if (a->chain.len && r.leaf)
		resume_remember(a->cert.p, a->cert.len, a->chain.p, a->chain.len);
	switch (r.cls) {
	case EVAL_SUCCESS:
		cls = PC_SUCCESS;
		verdict = PV_ALLOW;
		snprintf(verify, sizeof(verify), "SUCCESS");
		break;
	case EVAL_LENIENT:
		cls = PC_LENIENT;
		verdict = PV_ALLOW;
		snprintf(verify, sizeof(verify), "LENIENT");
		break;
	default:
		cls = PC_FAILED;
		stat_add(&w->stats.reasons[reason_enum(r.reason)], 1);
		snprintf(verify, sizeof(verify), "FAILED:%s", r.reason ? r.reason : "internal");
		verdict = mode != EDGETLS__MODE__MODE_PERMISSIVE ? PV_REJECT
		          : p->p->deny_on_failure                ? PV_DENY
		                                                 : PV_ALLOW;
	}
	log_verdict(a, p, &r, verify, verdict_names[verdict]);
	/* Headers go with a forwarded request: permissive failures included (§2.4). */
	hdr = p->p->send_headers && verdict == PV_ALLOW;
	put_common(sw, verdict_names[verdict], verify, p->p->id, hdr);
	n = 5;
	if (hdr && r.leaf) {
		size_t base = sw->len;
		/* A leaf too large for our storage is formatted without `cert`. */
		int fit = hdr_need(r.leaf) <= sizeof(w->hbuf);
		if (hdr_format(r.leaf, now, fit, w->hbuf, sizeof(w->hbuf), &hv) == 0) {
			/* A frame too small for the PEM loses `cert`, never the verdict. */
			size_t with = hdr_values_len(&hv, 1) + 120;
			bool with_cert = fit && base + with <= room;
			if (!with_cert) {
				stat_add(&w->stats.cert_dropped, 1);
				log_msg(LOG_WARN, "event=cert_dropped policy=%s bytes=%zu room=%zu",
				        p->p->id, hv.cert_len, room);
			}
			n += put_headers(sw, &hv, with_cert);
		}
	}
	count(p, cls, verdict);
	ce->cls = cls;
	ce->verdict = verdict;
	window(&r, extra, now, &ce->valid_from, &ce->valid_until);
	/* A resumed session checked without its intermediates is not cached: the next full
	 * handshake may bring them. */
	if (extra == NULL && a->resumed && a->chain.len == 0)
		ce->valid_until = 0;
	sk_X509_pop_free(extra, X509_free);
	eval_result_clear(&r);
	return n;
}

int mtls_handle(const struct spop_message *m, struct spop_writer *out, size_t room, void *ctx)
{
	struct mtls_worker *w = ctx;
	const struct pset_policy *p;
	struct args a;
	time_t now = time(NULL);
	struct spop_writer sw;
	struct centry tmp = {0}, *ce = NULL;
	uint64_t h = 0;
	int n;

	if (!w)
		return -1; /* no worker state: no answer, so HAProxy's fail-closed rules apply */
	refresh(w);
	read_args(m, &a);
	p = pset_lookup(w->ps, a.sni.p, a.sni.len);
	if (!p || p->p->mode == EDGETLS__MODE__MODE_DISABLED) {
		/* disabled: nothing is validated and no header is set (§2.1, §2.4). */
		if (p)
			count(p, PC_NONE, PV_ALLOW);
		else
			stat_add(&w->stats.no_policy, 1);
		put_common(out, "allow", "NONE", p ? p->p->id : "disabled", false);
		return 5;
	}
	if (!a.used || a.cert.len == 0) {
		/* No certificate: NONE; `required` rejects (§2.1). */
		bool req = p->p->mode == EDGETLS__MODE__MODE_REQUIRED;
		count(p, PC_NONE, req ? PV_REJECT : PV_ALLOW);
		put_common(out, req ? "reject" : "allow", "NONE", p->p->id,
		           !req && p->p->send_headers);
		return 5;
	}
	/* The cache: leaf, chain and policy, within the current set. */
	if (w->ncache) {
		h = cache_hash(&a, p->p->id);
		ce = &w->cache[h % w->ncache];
		if (ce->key && ce->h == h && ce->ps == w->ps && ce->gen == pset_generation(w->ps) &&
		    now >= ce->valid_from && now < ce->valid_until && ce->actions_len <= room &&
		    ce->key_len == a.cert.len + a.chain.len + strlen(p->p->id) + 1 &&
		    same_bytes(ce->key, a.cert.p, a.cert.len) &&
		    same_bytes(ce->key + a.cert.len, a.chain.p, a.chain.len) &&
		    memcmp(ce->key + a.cert.len + a.chain.len, p->p->id, strlen(p->p->id)) == 0 &&
		    ce->key[ce->key_len - 1] == (uint8_t)a.resumed) {
			stat_add(&w->stats.cache_hit, 1);
			count(p, ce->cls, ce->verdict);
			spop_put_raw(out, ce->actions, ce->actions_len);
			return ce->nactions;
		}
		stat_add(&w->stats.cache_miss, 1);
	}
	spop_writer_init(&sw, w->scratch, room < sizeof(w->scratch) ? room : sizeof(w->scratch));
	n = evaluate(w, &a, p, now, sw.cap, &sw, &tmp);
	if (sw.overflow) {
		/* Not even the five variables fit: let the engine answer without them. */
		return -1;
	}
	if (ce && tmp.valid_until > now) {
		uint8_t *key = malloc(a.cert.len + a.chain.len + strlen(p->p->id) + 1);
		uint8_t *acts = malloc(sw.len);
		if (key && acts) {
			copy_bytes(key, a.cert.p, a.cert.len);
			copy_bytes(key + a.cert.len, a.chain.p, a.chain.len);
			memcpy(key + a.cert.len + a.chain.len, p->p->id, strlen(p->p->id));
			key[a.cert.len + a.chain.len + strlen(p->p->id)] = (uint8_t)a.resumed;
			memcpy(acts, sw.buf, sw.len);
			free(ce->key);
			free(ce->actions);
			*ce = tmp;
			ce->h = h;
			ce->ps = w->ps;
			ce->gen = pset_generation(w->ps);
			ce->key = key;
			ce->key_len = a.cert.len + a.chain.len + strlen(p->p->id) + 1;
			ce->actions = acts;
			ce->actions_len = sw.len;
			ce->nactions = n;
		} else {
			free(key);
			free(acts);
		}
	}
	spop_put_raw(out, sw.buf, sw.len);
	return n;
}
