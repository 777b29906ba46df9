#include "pset.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strhash.h"

#include "banned.h"

#define MAX_HOSTNAME 253

struct slot {
	const char *name; /* lowercase, in the snapshot */
	uint32_t policy;
};

struct pset {
	_Atomic long refs;
	policy_snapshot *snap;
	struct pset_policy *pol;
	size_t npol;
	struct slot *tab; /* open addressing, power-of-two size, at most half full */
	size_t mask;
	const struct pset_policy *deflt;
};

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pset *cur;
static _Atomic uint64_t cur_seq;

static void free_set(struct pset *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->npol; i++)
		eval_trust_free(ps->pol[i].trust);
	free(ps->pol);
	free(ps->tab);
	policy_snapshot_free(ps->snap);
	free(ps);
}

void pset_hold(struct pset *ps)
{
	if (ps)
		atomic_fetch_add(&ps->refs, 1);
}

void pset_release(struct pset *ps)
{
	if (ps && atomic_fetch_sub(&ps->refs, 1) == 1)
		free_set(ps);
}

static int index_of(const struct pset *ps, const char *id, uint32_t *out)
{
	for (size_t i = 0; i < ps->npol; i++) {
		if (strcmp(ps->pol[i].p->id, id) == 0) {
			*out = (uint32_t)i;
			return 0;
		}
	}
	return -1;
}

int pset_load(const char *path, const struct pset *prev, struct pset **out, char *err,
              size_t errlen)
{
	struct pset *ps = calloc(1, sizeof(*ps));
	size_t cap = 16;

	if (!ps) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	atomic_init(&ps->refs, 1);
	if (policy_snapshot_load(path, &ps->snap, err, errlen) < 0)
		goto fail;
	ps->npol = ps->snap->n_policies;
	ps->pol = calloc(ps->npol + 1, sizeof(*ps->pol));
	while (cap < 2 * ps->snap->n_hosts + 2)
		cap *= 2;
	ps->tab = calloc(cap, sizeof(*ps->tab));
	ps->mask = cap - 1;
	if (!ps->pol || !ps->tab) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < ps->npol; i++) {
		const Edgetls__Policy *p = ps->snap->policies[i];
		char e2[256];
		ps->pol[i].p = p;
		if ((p->n_anchors || p->n_crls) &&
		    eval_trust_new(p->anchors, p->n_anchors, p->crls, p->n_crls, &ps->pol[i].trust,
		                   e2, sizeof(e2)) < 0) {
			snprintf(err, errlen, "policy %s: %s", p->id, e2);
			goto fail;
		}
		if (prev) {
			uint32_t j;
			if (index_of(prev, p->id, &j) == 0)
				for (int c = 0; c < PC_COUNT; c++)
					for (int v = 0; v < PV_COUNT; v++)
						atomic_init(
						    &ps->pol[i].verdicts[c][v],
						    atomic_load(&prev->pol[j].verdicts[c][v]));
		}
	}
	for (size_t i = 0; i < ps->snap->n_hosts; i++) {
		const Edgetls__Host *h = ps->snap->hosts[i];
		size_t n = strlen(h->name), k;
		uint32_t pi;
		if (index_of(ps, h->policy, &pi) < 0) {
			snprintf(err, errlen, "host %s: unknown policy", h->name);
			goto fail;
		}
		for (k = strhash_n(h->name, n) & ps->mask; ps->tab[k].name; k = (k + 1) & ps->mask)
			if (strcmp(ps->tab[k].name, h->name) == 0)
				break;
		ps->tab[k].name = h->name;
		ps->tab[k].policy = pi;
	}
	if (ps->snap->default_policy && ps->snap->default_policy[0]) {
		uint32_t pi;
		if (index_of(ps, ps->snap->default_policy, &pi) == 0)
			ps->deflt = &ps->pol[pi];
	}
	*out = ps;
	return 0;
fail:
	free_set(ps);
	return -1;
}

static const struct pset_policy *find(const struct pset *ps, const char *name, size_t n)
{
	for (size_t k = strhash_n(name, n) & ps->mask; ps->tab[k].name; k = (k + 1) & ps->mask)
		if (strncmp(ps->tab[k].name, name, n) == 0 && ps->tab[k].name[n] == '\0')
			return &ps->pol[ps->tab[k].policy];
	return NULL;
}

const struct pset_policy *pset_lookup(const struct pset *ps, const uint8_t *sni, size_t len)
{
	char name[MAX_HOSTNAME + 2];
	const struct pset_policy *p;
	const char *dot;

	if (!ps)
		return NULL;
	if (!sni || len == 0 || len > MAX_HOSTNAME)
		return ps->deflt;
	/* name = "*" + lowercase SNI, so the wildcard key is built in place. */
	name[0] = '*';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = sni[i];
		if (c == 0)
			return ps->deflt;
		name[i + 1] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	name[len + 1] = '\0';
	p = find(ps, name + 1, len);
	if (p)
		return p;
	/* "*.example.com" stands for exactly one label: a.example.com, not example.com. */
	dot = memchr(name + 1, '.', len);
	if (dot && dot > name + 1) {
		size_t rest = len - (size_t)(dot - (name + 1));
		char *w = (char *)dot - 1;
		*w = '*';
		p = find(ps, w, rest + 1);
		if (p)
			return p;
	}
	return ps->deflt;
}

uint64_t pset_generation(const struct pset *ps)
{
	return ps ? ps->snap->generation : 0;
}

size_t pset_count(const struct pset *ps)
{
	return ps ? ps->npol : 0;
}

const struct pset_policy *pset_at(const struct pset *ps, size_t i)
{
	return &ps->pol[i];
}

void pset_publish(struct pset *ps)
{
	struct pset *old;

	pthread_mutex_lock(&cur_mu);
	old = cur;
	cur = ps;
	atomic_fetch_add(&cur_seq, 1);
	pthread_mutex_unlock(&cur_mu);
	pset_release(old);
}

struct pset *pset_current(void)
{
	struct pset *ps;

	pthread_mutex_lock(&cur_mu);
	ps = cur;
	pset_hold(ps);
	pthread_mutex_unlock(&cur_mu);
	return ps;
}

uint64_t pset_seq(void)
{
	return atomic_load_explicit(&cur_seq, memory_order_acquire);
}
