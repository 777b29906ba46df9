#include "compile.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "afile.h"
#include "policy.h"

#include "banned.h"

#define CHAIN_MAX    (4u << 20)
#define CA_NAMES_MAX 65536 /* larger CertificateRequest CA lists break clients (mtls.md §8.4) */
#define NONE_CA_FILE "none.pem"

/* A growable byte buffer for the text files. */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = (b->cap ? b->cap * 2 : 4096) + n;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];

	EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static void compile_haproxy_dir(const struct cs_config *cfg, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%s/haproxy", cfg->state_dir);
}

/* ---- certificate choice ---- */

/* Every DNS name of every stored certificate, sorted, so that choosing the certificates
 * of 10,000 hostnames costs two binary searches each rather than a pass over the store. */
struct name_ref {
	const char *name;
	const struct store_cert *cert;
};

static int cmp_ref(const void *a, const void *b)
{
	return strcmp(((const struct name_ref *)a)->name, ((const struct name_ref *)b)->name);
}

static struct name_ref *name_index(const struct store *st, size_t *n)
{
	size_t total = 0, k = 0;
	struct name_ref *v;

	for (size_t i = 0; i < st->n; i++)
		total += st->v[i].names.n;
	v = calloc(total + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < st->n; i++)
		for (size_t j = 0; j < st->v[i].names.n; j++)
			v[k++] = (struct name_ref){st->v[i].names.name[j], &st->v[i]};
	qsort(v, k, sizeof(*v), cmp_ref);
	*n = k;
	return v;
}

static bool better(const struct store_cert *c, int kind, const struct store_cert *best,
                   int best_kind)
{
	if (!best || kind != best_kind)
		return !best || kind > best_kind;
	if (c->not_before != best->not_before)
		return c->not_before > best->not_before;
	if (c->not_after != best->not_after)
		return c->not_after > best->not_after;
	/* Issued in the same second: the one stored last is the replacement. */
	if (c->added_us != best->added_us)
		return c->added_us > best->added_us;
	return strcmp(c->id, best->id) > 0;
}

/* The best certificate for hostname in env at now (DESIGN §4.3): valid now, in the
 * environment's network for uploads, exact name over wildcard, then the most recently
 * issued. */
static const struct store_cert *pick_cert(const struct name_ref *idx, size_t n,
                                          const struct cs_env *env, const char *host, time_t now)
{
	const struct store_cert *best = NULL;
	int best_kind = 0;
	char wild[300];
	const char *dot = strchr(host, '.');

	snprintf(wild, sizeof(wild), "*%s", dot ? dot : "");
	for (int kind = 2; kind >= 1; kind--) {
		/* A configured wildcard is covered only by the same wildcard name. */
		const char *name = kind == 2 ? host : wild;
		struct name_ref key = {name, NULL};
		struct name_ref *hit;
		size_t lo;

		if (kind == 1 && (!dot || strncmp(host, "*.", 2) == 0))
			break;
		hit = bsearch(&key, idx, n, sizeof(*idx), cmp_ref);
		if (!hit)
			continue;
		lo = (size_t)(hit - idx);
		while (lo > 0 && strcmp(idx[lo - 1].name, name) == 0)
			lo--;
		for (size_t i = lo; i < n && strcmp(idx[i].name, name) == 0; i++) {
			const struct store_cert *c = idx[i].cert;
			if (now < c->not_before || now >= c->not_after)
				continue;
			/* Uploaded certificates serve their network only; ACME ones were
			 * ordered for their hostnames, whatever the network. */
			if (c->source == STORE_UPLOADED &&
			    (!c->network || strcmp(c->network, env->network) != 0))
				continue;
			if (better(c, kind, best, best_kind)) {
				best = c;
				best_kind = kind;
			}
		}
	}
	return best;
}

/* ---- chain-of-trust files ---- */

struct trust {
	char *file;     /* the configured chain file */
	char *ca_path;  /* where its certificates are written for HAProxy */
	char *ca_pem;   /* those certificates */
	bool big_names; /* the CA names list would exceed CA_NAMES_MAX */
	ProtobufCBinaryData *anchors, *crls;
	size_t n_anchors, n_crls;
	char digest[65]; /* over the anchors and CRLs, for policy ids */
};

static void trust_free(struct trust *t)
{
	for (size_t i = 0; i < t->n_anchors; i++)
		OPENSSL_free(t->anchors[i].data);
	for (size_t i = 0; i < t->n_crls; i++)
		OPENSSL_free(t->crls[i].data);
	free(t->anchors);
	free(t->crls);
	free(t->file);
	free(t->ca_path);
	free(t->ca_pem);
}

static int push_der(ProtobufCBinaryData **v, size_t *n, unsigned char *der, int len)
{
	ProtobufCBinaryData *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv || len <= 0) {
		OPENSSL_free(der);
		if (nv)
			*v = nv;
		return -1;
	}
	*v = nv;
	nv[*n].data = der;
	nv[*n].len = (size_t)len;
	(*n)++;
	return 0;
}

/* Every certificate of the file is an anchor (DESIGN §2.2); every CRL is kept. */
static int trust_load(struct trust *t, const char *file, const char *cadir, char *err,
                      size_t errlen)
{
	uint8_t *pem = NULL;
	size_t len = 0, names = 0;
	BIO *in = NULL, *out = NULL;
	struct buf dig = {0};
	X509_INFO *xi;
	STACK_OF(X509_INFO) *infos = NULL;
	char *p, hex[65];
	long n;
	int r = -1;

	memset(t, 0, sizeof(*t));
	if (!(t->file = strdup(file)))
		goto oom;
	if (afile_read(file, CHAIN_MAX, &pem, &len) < 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		goto out;
	}
	in = BIO_new_mem_buf(pem, (int)len);
	out = BIO_new(BIO_s_mem());
	if (!in || !out || !(infos = PEM_X509_INFO_read_bio(in, NULL, NULL, NULL)))
		goto bad;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		unsigned char *der = NULL;
		int dl;
		xi = sk_X509_INFO_value(infos, i);
		if (xi->x509) {
			dl = i2d_X509(xi->x509, &der);
			sha256_hex(der, dl > 0 ? (size_t)dl : 0, hex);
			buf_str(&dig, "a:");
			buf_str(&dig, hex);
			if (push_der(&t->anchors, &t->n_anchors, der, dl) < 0 ||
			    !PEM_write_bio_X509(out, xi->x509))
				goto oom;
			names += (size_t)i2d_X509_NAME(X509_get_subject_name(xi->x509), NULL);
		}
		if (xi->crl) {
			/* A certificate and the CRL after it share one X509_INFO: der still
			 * points at the certificate's DER, now owned by the anchors. */
			der = NULL;
			dl = i2d_X509_CRL(xi->crl, &der);
			sha256_hex(der, dl > 0 ? (size_t)dl : 0, hex);
			buf_str(&dig, "c:");
			buf_str(&dig, hex);
			if (push_der(&t->crls, &t->n_crls, der, dl) < 0)
				goto oom;
		}
	}
	if (t->n_anchors == 0)
		goto bad;
	n = BIO_get_mem_data(out, &p);
	if (!(t->ca_pem = strndup(p, (size_t)n)) || dig.oom)
		goto oom;
	sha256_hex(dig.p, dig.len, t->digest);
	sha256_hex(t->ca_pem, strlen(t->ca_pem), hex);
	hex[16] = '\0';
	if (asprintf(&t->ca_path, "%s/%s.pem", cadir, hex) < 0) {
		t->ca_path = NULL;
		goto oom;
	}
	t->big_names = names > CA_NAMES_MAX;
	r = 0;
	goto out;
bad:
	snprintf(err, errlen, "%s: no certificate could be read from this chain-of-trust file",
	         file);
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(in);
	BIO_free(out);
	free(pem);
	free(dig.p);
	return r;
}

/* The placeholder CA for lines that ask for a certificate without a chain of trust:
 * HAProxy needs a ca-file with `verify`; `no-ca-names` keeps it out of the handshake.
 * Created once and then read back, so compiles stay stable. */
static char *none_ca_pem(const char *path)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	uint8_t *old = NULL;
	size_t len;
	char *p, *out = NULL;
	long n;

	if (afile_read(path, CHAIN_MAX, &old, &len) == 0)
		return (char *)old;
	key = EVP_EC_gen("P-256");
	x = X509_new();
	b = BIO_new(BIO_s_mem());
	if (!key || !x || !b)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 100L * 365 * 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"edgetls placeholder: no client CA", -1,
	                           -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	if (!X509_sign(x, key, EVP_sha256()) || !PEM_write_bio_X509(b, x))
		goto out;
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
out:
	EVP_PKEY_free(key);
	X509_free(x);
	BIO_free(b);
	return out;
}

/* ---- results ---- */

/* Takes data (freed on failure too). Callers add each path once. */
static int add_file(struct compile_result *r, enum compile_file_kind kind, const char *path,
                    void *data, size_t len, mode_t mode, const char *env)
{
	struct compile_file *nv;

	if (r->n_files == r->cap_files) {
		size_t cap = r->cap_files ? 2 * r->cap_files : 64;
		nv = realloc(r->files, cap * sizeof(*nv));
		if (!nv) {
			free(data);
			return -1;
		}
		r->files = nv;
		r->cap_files = cap;
	}
	nv = r->files;
	nv[r->n_files] = (struct compile_file){kind, strdup(path), data, len, mode, env};
	if (!nv[r->n_files].path) {
		free(data);
		return -1;
	}
	r->n_files++;
	return 0;
}

static const char *mode_token(enum cs_validation v)
{
	return cs_validation_name(v);
}

static Edgetls__Mode mode_proto(enum cs_validation v)
{
	switch (v) {
	case CS_VALIDATION_REQUIRED:
		return EDGETLS__MODE__MODE_REQUIRED;
	case CS_VALIDATION_OPTIONAL:
		return EDGETLS__MODE__MODE_OPTIONAL;
	case CS_VALIDATION_OPTIONAL_NO_CA:
		return EDGETLS__MODE__MODE_OPTIONAL_NO_CA;
	case CS_VALIDATION_PERMISSIVE:
		return EDGETLS__MODE__MODE_PERMISSIVE;
	case CS_VALIDATION_DISABLED:
		break;
	}
	return EDGETLS__MODE__MODE_DISABLED;
}

/*
 * The effective policy of one hostname, reduced to what affects a verdict (DESIGN §2.5):
 * a disabled policy is just "disabled"; depth counts only where the mode uses it; deny
 * only in permissive.
 */
struct eff {
	enum cs_validation mode;
	int depth;
	bool deny, headers, request;
	const struct trust *trust;
	char id[COMPILE_POLICY_ID_LEN];
};

static void eff_id(struct eff *e)
{
	char canon[512], hex[65];
	int n;

	if (e->mode == CS_VALIDATION_DISABLED) {
		e->depth = 0;
		e->deny = e->headers = e->request = false;
		e->trust = NULL;
	}
	if (e->mode != CS_VALIDATION_REQUIRED && e->mode != CS_VALIDATION_OPTIONAL &&
	    e->mode != CS_VALIDATION_PERMISSIVE)
		e->depth = 0;
	if (e->mode != CS_VALIDATION_PERMISSIVE)
		e->deny = false;
	n = snprintf(canon, sizeof(canon),
	             "v1;mode=%s;depth=%d;deny=%d;headers=%d;request=%d;trust=%s",
	             mode_token(e->mode), e->depth, e->deny, e->headers, e->request,
	             e->trust ? e->trust->digest : "-");
	sha256_hex(canon, (size_t)n, hex);
	snprintf(e->id, sizeof(e->id), "p%.12s", hex);
}

/* The snapshot's policy for e, appended to pols when its id is new: one message per id.
 * NULL when out of memory; a message already appended is freed with pols. */
static const Edgetls__Policy *policy_of(Edgetls__Policy **pols, size_t *n_pols, const struct eff *e)
{
	Edgetls__Policy *pm;

	for (size_t p = 0; p < *n_pols; p++)
		if (strcmp(pols[p]->id, e->id) == 0)
			return pols[p];
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	edgetls__policy__init(pm);
	pols[(*n_pols)++] = pm;
	pm->id = strdup(e->id);
	pm->mode = mode_proto(e->mode);
	pm->depth = (uint32_t)e->depth;
	pm->deny_on_failure = e->deny;
	pm->send_headers = e->headers;
	pm->request_certificate = e->request;
	if (e->trust) {
		/* Borrowed from the trust: not freed with the policy. */
		pm->anchors = e->trust->anchors;
		pm->n_anchors = e->trust->n_anchors;
		pm->crls = e->trust->crls;
		pm->n_crls = e->trust->n_crls;
	}
	return pm->id ? pm : NULL;
}

static bool listed(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static const struct cs_chain *chain_of(const struct cs_env *env, const char *host)
{
	for (size_t i = 0; i < env->mtls.n_chains; i++)
		if (listed(env->mtls.chains[i].hostnames, env->mtls.chains[i].n_hostnames, host))
			return &env->mtls.chains[i];
	return NULL;
}

struct line {
	const char *host;
	const char *policy;
	const char *mode;
	const char *env;
	char *text; /* crt-list line, NULL without a certificate */
};

static int by_host(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->host, ((const struct line *)b)->host);
}

static int by_policy(const void *a, const void *b)
{
	return strcmp((*(Edgetls__Policy *const *)a)->id, (*(Edgetls__Policy *const *)b)->id);
}

static int by_hostmsg(const void *a, const void *b)
{
	return strcmp((*(Edgetls__Host *const *)a)->name, (*(Edgetls__Host *const *)b)->name);
}

static int by_path(const void *a, const void *b)
{
	const struct compile_file *x = a, *y = b;
	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	return strcmp(x->path, y->path);
}

/* Builds the snapshot bytes, keeping the generation and date of the current file when
 * nothing else changed. */
static int snapshot_bytes(const struct cs_config *cfg, Edgetls__Snapshot *s, uint8_t **out,
                          size_t *len, uint64_t *generation)
{
	policy_snapshot *old = NULL;
	char err[256];
	size_t l1, l2;
	uint8_t *a = NULL, *b = NULL;
	bool same = false;

	s->generation = 0;
	s->created_unix = 0;
	if (policy_snapshot_load(cfg->policy_file, &old, err, sizeof(err)) == 0) {
		uint64_t g = old->generation;
		int64_t c = old->created_unix;
		old->generation = 0;
		old->created_unix = 0;
		l1 = edgetls__snapshot__get_packed_size(s);
		l2 = edgetls__snapshot__get_packed_size(old);
		a = malloc(l1 + 1);
		b = malloc(l2 + 1);
		if (a && b && l1 == l2) {
			edgetls__snapshot__pack(s, a);
			edgetls__snapshot__pack(old, b);
			same = memcmp(a, b, l1) == 0;
		}
		s->generation = same ? g : g + 1;
		s->created_unix = same ? c : (int64_t)time(NULL);
		free(a);
		free(b);
		policy_snapshot_free(old);
	} else {
		s->generation = 1;
		s->created_unix = (int64_t)time(NULL);
	}
	*len = edgetls__snapshot__get_packed_size(s);
	*out = malloc(*len + 1);
	if (!*out)
		return -1;
	edgetls__snapshot__pack(s, *out);
	*generation = s->generation;
	return 0;
}

int compile_build(const struct cs_config *cfg, const struct store *st, time_t now,
                  struct compile_result *out, char *err, size_t errlen)
{
	char hadir[PATH_MAX], cadir[PATH_MAX + 8], certdir[PATH_MAX + 8], path[PATH_MAX + 80];
	struct trust *trusts = NULL;
	size_t n_trusts = 0;
	struct line *lines = NULL;
	size_t n_lines = 0;
	Edgetls__Policy **pols = NULL;
	Edgetls__Host **hosts = NULL;
	size_t n_pols = 0, n_hostmsgs = 0;
	Edgetls__Snapshot snap = EDGETLS__SNAPSHOT__INIT;
	struct buf pmap = {0}, mmap = {0};
	char *none_pem = NULL, none_path[PATH_MAX + 32], default_id[COMPILE_POLICY_ID_LEN] = "";
	struct name_ref *idx = NULL;
	size_t n_idx = 0;
	bool *bundled = NULL, *ca_added = NULL;
	int r = -1;

	memset(out, 0, sizeof(*out));
	compile_haproxy_dir(cfg, hadir, sizeof(hadir));
	snprintf(cadir, sizeof(cadir), "%s/ca", hadir);
	snprintf(certdir, sizeof(certdir), "%s/certs", hadir);
	snprintf(none_path, sizeof(none_path), "%s/" NONE_CA_FILE, cadir);

	out->hosts = calloc(cfg->n_hostnames + 1, sizeof(*out->hosts));
	lines = calloc(cfg->n_hostnames + 1, sizeof(*lines));
	hosts = calloc(cfg->n_hostnames + 1, sizeof(*hosts));
	pols = calloc(cfg->n_hostnames + 2, sizeof(*pols));
	trusts = calloc(cfg->n_hostnames + 1, sizeof(*trusts));
	idx = name_index(st, &n_idx);
	bundled = calloc(st->n + 1, sizeof(*bundled));
	ca_added = calloc(cfg->n_hostnames + 1, sizeof(*ca_added));
	if (!out->hosts || !lines || !hosts || !pols || !trusts || !idx || !bundled || !ca_added)
		goto oom;

	for (size_t e = 0; e < cfg->n_envs; e++) {
		const struct cs_env *env = &cfg->envs[e];
		for (size_t h = 0; h < env->n_hostnames; h++) {
			const char *host = env->hostnames[h];
			struct compile_host *ch = &out->hosts[out->n_hosts];
			const struct cs_chain *chain = chain_of(env, host);
			struct eff ef = {.mode = env->mtls.validation,
			                 .depth = env->mtls.depth,
			                 .deny = env->mtls.deny_on_failure,
			                 .headers = env->mtls.send_headers};
			const struct trust *tr = NULL;
			const Edgetls__Policy *pol;
			const char *verify;

			ef.request = ef.mode != CS_VALIDATION_DISABLED &&
			             (env->mtls.n_request_hostnames == 0 ||
			              listed(env->mtls.request_hostnames,
			                     env->mtls.n_request_hostnames, host));
			if (chain && ef.mode != CS_VALIDATION_DISABLED) {
				size_t t;
				for (t = 0; t < n_trusts; t++)
					if (strcmp(trusts[t].file, chain->file) == 0)
						break;
				if (t == n_trusts) {
					if (trust_load(&trusts[t], chain->file, cadir, err,
					               errlen) < 0) {
						trust_free(&trusts[t]);
						goto out;
					}
					n_trusts++;
				}
				tr = &trusts[t];
			}
			ef.trust = tr;
			eff_id(&ef);

			pol = policy_of(pols, &n_pols, &ef);
			if (!pol)
				goto oom;
			hosts[n_hostmsgs] = calloc(1, sizeof(Edgetls__Host));
			if (!hosts[n_hostmsgs])
				goto oom;
			edgetls__host__init(hosts[n_hostmsgs]);
			hosts[n_hostmsgs]->name = (char *)host;
			hosts[n_hostmsgs]->policy = pol->id;
			hosts[n_hostmsgs]->environment = env->name;
			n_hostmsgs++;

			ch->hostname = host;
			ch->env = env;
			ch->request_certificate = ef.request;
			memcpy(ch->policy, ef.id, sizeof(ch->policy));
			ch->cert = pick_cert(idx, n_idx, env, host, now);
			lines[n_lines] =
			    (struct line){host, pol->id, mode_token(ef.mode), env->name, NULL};
			if (ch->cert) {
				char *bundle = NULL, *ca_opt = NULL;
				size_t blen = 0;
				if (asprintf(&ch->cert_path, "%s/%s.pem", certdir, ch->cert->id) <
				    0) {
					ch->cert_path = NULL;
					goto oom;
				}
				if (!bundled[ch->cert - st->v]) {
					if (store_bundle(st, ch->cert->id, &bundle, &blen, err,
					                 errlen) < 0)
						goto out;
					if (add_file(out, CF_CERT, ch->cert_path, bundle, blen,
					             0600, NULL) < 0)
						goto oom;
					bundled[ch->cert - st->v] = true;
				}
				verify = !ef.request                         ? "none"
				         : ef.mode == CS_VALIDATION_REQUIRED ? "required"
				                                             : "optional";
				if (!ef.request) {
					ca_opt = strdup("");
				} else if (tr) {
					if (!ca_added[tr - trusts]) {
						char *ca = strdup(tr->ca_pem);
						if (!ca || add_file(out, CF_CAFILE, tr->ca_path, ca,
						                    strlen(ca), 0644, NULL) < 0)
							goto oom;
						ca_added[tr - trusts] = true;
					}
					/* A CA list over 64 KiB breaks clients: verify with
					 * the file, but send no names (mtls.md §8.4). */
					if (asprintf(&ca_opt,
					             tr->big_names
					                 ? " ca-verify-file %s no-ca-names"
					                 : " ca-file %s",
					             tr->ca_path) < 0)
						ca_opt = NULL;
				} else {
					if (!none_pem) {
						none_pem = none_ca_pem(none_path);
						if (!none_pem ||
						    add_file(out, CF_CAFILE, none_path,
						             strdup(none_pem), strlen(none_pem),
						             0644, NULL) < 0)
							goto oom;
					}
					if (asprintf(&ca_opt, " ca-file %s no-ca-names",
					             none_path) < 0)
						ca_opt = NULL;
				}
				if (!ca_opt || asprintf(&ch->crtlist_line, "%s [verify %s%s] %s",
				                        ch->cert_path, verify, ca_opt, host) < 0) {
					free(ca_opt);
					ch->crtlist_line = NULL;
					goto oom;
				}
				free(ca_opt);
				lines[n_lines].text = ch->crtlist_line;
			}
			n_lines++;
			out->n_hosts++;
		}
	}

	/* The policy for connections without a known SNI (DESIGN §2.5): the default
	 * environment's settings, no chain, no certificate asked (HAProxy's default
	 * certificate line asks for none). */
	if (cfg->default_environment) {
		const struct cs_env *env = cs_config_env_named(cfg, cfg->default_environment);
		struct eff ef = {.mode = env->mtls.validation,
		                 .depth = env->mtls.depth,
		                 .deny = env->mtls.deny_on_failure,
		                 .headers = env->mtls.send_headers};
		eff_id(&ef);
		if (!policy_of(pols, &n_pols, &ef))
			goto oom;
		memcpy(default_id, ef.id, sizeof(default_id));
	}

	/* crt-lists, one per environment, sorted by hostname. */
	qsort(lines, n_lines, sizeof(*lines), by_host);
	for (size_t e = 0; e < cfg->n_envs; e++) {
		struct buf b = {0};
		buf_str(&b,
		        "# Written by certsync compile: do not edit, changes are overwritten.\n");
		for (size_t i = 0; i < n_lines; i++) {
			if (!lines[i].text || strcmp(lines[i].env, cfg->envs[e].name) != 0)
				continue;
			buf_str(&b, lines[i].text);
			buf_str(&b, "\n");
		}
		if (b.oom) {
			free(b.p);
			goto oom;
		}
		if (add_file(out, CF_CRTLIST, cfg->envs[e].crt_list, b.p, b.len, 0644,
		             cfg->envs[e].name) < 0)
			goto oom;
	}
	/* Maps: for the Host/SNI check and the fail-closed rules of haproxy/. The key "."
	 * (never a hostname) holds what applies to an unknown or absent name: the default
	 * environment's policy and mode, else "disabled" for both, as the agent answers. */
	{
		const struct cs_env *denv = cfg->default_environment
		                                ? cs_config_env_named(cfg, cfg->default_environment)
		                                : NULL;
		buf_str(&pmap, ". ");
		buf_str(&pmap, default_id[0] ? default_id : "disabled");
		buf_str(&pmap, "\n");
		buf_str(&mmap, ". ");
		buf_str(&mmap, denv ? mode_token(denv->mtls.validation) : "disabled");
		buf_str(&mmap, "\n");
	}
	for (size_t i = 0; i < n_lines; i++) {
		buf_str(&pmap, lines[i].host);
		buf_str(&pmap, " ");
		buf_str(&pmap, lines[i].policy);
		buf_str(&pmap, "\n");
		buf_str(&mmap, lines[i].host);
		buf_str(&mmap, " ");
		buf_str(&mmap, lines[i].mode);
		buf_str(&mmap, "\n");
	}
	if (pmap.oom || mmap.oom)
		goto oom;
	snprintf(path, sizeof(path), "%s/policy.map", hadir);
	r = add_file(out, CF_MAP, path, pmap.p, pmap.len, 0644, NULL);
	pmap.p = NULL;
	if (r < 0)
		goto oom;
	snprintf(path, sizeof(path), "%s/mode.map", hadir);
	r = add_file(out, CF_MAP, path, mmap.p, mmap.len, 0644, NULL);
	mmap.p = NULL;
	if (r < 0)
		goto oom;
	r = -1;

	/* The snapshot. */
	qsort(pols, n_pols, sizeof(*pols), by_policy);
	qsort(hosts, n_hostmsgs, sizeof(*hosts), by_hostmsg);
	snap.schema_version = POLICY_SCHEMA_VERSION;
	snap.policies = pols;
	snap.n_policies = n_pols;
	snap.hosts = hosts;
	snap.n_hosts = n_hostmsgs;
	snap.default_policy = default_id;
	{
		uint8_t *sb = NULL;
		size_t sl = 0;
		if (snapshot_bytes(cfg, &snap, &sb, &sl, &out->generation) < 0) {
			free(sb);
			goto oom;
		}
		if (add_file(out, CF_SNAPSHOT, cfg->policy_file, sb, sl, 0644, NULL) < 0)
			goto oom;
	}
	out->n_policies = n_pols;
	qsort(out->files, out->n_files, sizeof(*out->files), by_path);
	r = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	for (size_t i = 0; i < n_pols; i++) {
		free(pols[i]->id);
		free(pols[i]);
	}
	for (size_t i = 0; i < n_hostmsgs; i++)
		free(hosts[i]);
	for (size_t i = 0; i < n_trusts; i++)
		trust_free(&trusts[i]);
	free(trusts);
	free(pols);
	free(hosts);
	free(lines);
	free(pmap.p);
	free(mmap.p);
	free(none_pem);
	free(idx);
	free(bundled);
	free(ca_added);
	if (r < 0)
		compile_result_free(out);
	return r;
}

static int dir_of(const char *path, char *dir, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (!slash || (size_t)(slash - path) >= n)
		return -1;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return 0;
}

int compile_write(const struct compile_result *r, size_t *changed, char *err, size_t errlen)
{
	struct afile_batch batch = {0};
	enum compile_file_kind stage = CF_CERT;

	*changed = 0;
	/* files[] is sorted by kind: bundles and CA files, then lists and maps, then the
	 * snapshot, so nothing ever names a file that is not there yet. */
	for (size_t i = 0; i < r->n_files; i++) {
		const struct compile_file *f = &r->files[i];
		uint8_t *old = NULL;
		size_t olen = 0;
		char dir[PATH_MAX];
		bool same;

		same = afile_read(f->path, f->len + 1, &old, &olen) == 0 && olen == f->len &&
		       memcmp(old, f->data, f->len) == 0;
		if (old) {
			OPENSSL_cleanse(old, olen);
			free(old);
		}
		if (same)
			continue;
		if (dir_of(f->path, dir, sizeof(dir)) == 0 &&
		    afile_mkdirs(dir, f->kind == CF_CERT ? 0700 : 0755) < 0) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			afile_batch_abort(&batch);
			return -1;
		}
		/* One batch per stage: a stage's files are durable before the next stage
		 * (which names them) is renamed into place. */
		if (f->kind != stage) {
			if (afile_batch_commit(&batch) < 0) {
				snprintf(err, errlen, "writing %s: %s", f->path, strerror(errno));
				return -1;
			}
			stage = f->kind;
		}
		if (afile_batch_add(&batch, f->path, f->data, f->len, f->mode) < 0) {
			snprintf(err, errlen, "writing %s: %s", f->path, strerror(errno));
			afile_batch_abort(&batch);
			return -1;
		}
		(*changed)++;
	}
	if (afile_batch_commit(&batch) < 0) {
		snprintf(err, errlen, "writing the compiled files: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void compile_result_free(struct compile_result *r)
{
	for (size_t i = 0; i < r->n_files; i++) {
		if (r->files[i].kind == CF_CERT)
			OPENSSL_cleanse(r->files[i].data, r->files[i].len);
		free(r->files[i].data);
		free(r->files[i].path);
	}
	for (size_t i = 0; i < r->n_hosts; i++) {
		free(r->hosts[i].crtlist_line);
		free(r->hosts[i].cert_path);
	}
	free(r->files);
	free(r->hosts);
	memset(r, 0, sizeof(*r));
}
