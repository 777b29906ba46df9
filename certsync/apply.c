#include "apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "x509u.h"

#include "banned.h"

#define MAX_TOKENS 64

/* ---- crt-list lines ---- */

struct pline {
	char cert[1024];
	char opts[1024];    /* options as sorted "kw value" pairs joined by '|' */
	char filters[1024]; /* SNI filters as written */
	long lineno;        /* from `show ssl crt-list -n`, else 0 */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<cert>[:<n>] [<opts>] <filters>" into its parts; HAProxy prints the options of a line in
 * its own order and spacing, so they are compared as a sorted set of pairs. */
static int parse_line(const char *line, bool numbered, struct pline *out)
{
	char buf[4096], *p, *end, *tok[MAX_TOKENS], pairs[MAX_TOKENS][256], *pp[MAX_TOKENS];
	size_t n = 0, np = 0, o = 0;

	memset(out, 0, sizeof(*out));
	if (strlen(line) >= sizeof(buf))
		return -1;
	memcpy(buf, line, strlen(line) + 1);
	p = buf + strspn(buf, " \t");
	end = p + strcspn(p, " \t");
	if (end == p || (size_t)(end - p) >= sizeof(out->cert))
		return -1;
	memcpy(out->cert, p, (size_t)(end - p));
	if (numbered) {
		char *colon = strrchr(out->cert, ':');
		if (!colon)
			return -1;
		out->lineno = strtol(colon + 1, NULL, 10);
		*colon = '\0';
	}
	p = end + strspn(end, " \t");
	if (*p == '[') {
		char *close = strchr(p, ']');
		if (!close)
			return -1;
		*close = '\0';
		for (char *t = strtok_r(p + 1, " \t", &end); t; t = strtok_r(NULL, " \t", &end)) {
			if (n == MAX_TOKENS)
				return -1;
			tok[n++] = t;
		}
		for (size_t i = 0; i < n; i++) {
			bool flag =
			    strcmp(tok[i], "no-ca-names") == 0 || strcmp(tok[i], "allow-0rtt") == 0;
			snprintf(pairs[np], sizeof(pairs[np]), "%s%s%s", tok[i], flag ? "" : " ",
			         flag || i + 1 >= n ? "" : tok[i + 1]);
			pp[np] = pairs[np];
			np++;
			if (!flag)
				i++;
		}
		qsort(pp, np, sizeof(*pp), cmp_str);
		for (size_t i = 0; i < np; i++) {
			int w = snprintf(out->opts + o, sizeof(out->opts) - o, "%s%s", i ? "|" : "",
			                 pp[i]);
			if (w < 0 || (size_t)w >= sizeof(out->opts) - o)
				return -1;
			o += (size_t)w;
		}
		p = close + 1;
	}
	p += strspn(p, " \t");
	p[strcspn(p, "\r\n")] = '\0';
	while (*p && (p[strlen(p) - 1] == ' ' || p[strlen(p) - 1] == '\t'))
		p[strlen(p) - 1] = '\0';
	snprintf(out->filters, sizeof(out->filters), "%s", p);
	return 0;
}

/* A served crt-list line reduced to what matters: its canonical key, its certificate and
 * its number (for `del ssl crt-list <list> <cert>:<n>`). */
struct sline {
	char *key;
	char *cert;
	long lineno;
	bool keep;
};

/* cert, sorted options and filters, joined: equal keys mean equal lines. */
static char *line_key(const struct pline *p)
{
	char *k = NULL;

	if (asprintf(&k, "%s\x01%s\x01%s", p->cert, p->opts, p->filters) < 0)
		return NULL;
	return k;
}

static int cmp_sline(const void *a, const void *b)
{
	return strcmp(((const struct sline *)a)->key, ((const struct sline *)b)->key);
}

static void slines_free(struct sline *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].key);
		free(v[i].cert);
	}
	free(v);
}

/* HAProxy's lines of a crt-list (`show ssl crt-list -n`), sorted by key; NULL with
 * rep->error set when HAProxy does not know the list or does not answer. */
static struct sline *served_lines(const struct hapi *h, const char *list, size_t *n,
                                  struct apply_report *rep)
{
	char cmd[4200], *reply = NULL, *save = NULL;
	struct sline *v = NULL;
	size_t cap = 0;
	struct pline p;

	*n = 0;
	snprintf(cmd, sizeof(cmd), "show ssl crt-list -n %s", list);
	if (hapi_cmd(h, cmd, NULL, &reply, rep->error, sizeof(rep->error)) < 0) {
		rep->reachable = false;
		return NULL;
	}
	if (strstr(reply, "didn't find")) {
		snprintf(rep->error, sizeof(rep->error),
		         "HAProxy does not load the crt-list %s: name it on a bind line "
		         "(crt-list %s)",
		         list, list);
		free(reply);
		return NULL;
	}
	for (char *l = strtok_r(reply, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (l[0] == '#' || l[strspn(l, " \t\r")] == '\0' || parse_line(l, true, &p) < 0)
			continue;
		if (*n == cap) {
			struct sline *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[*n] = (struct sline){line_key(&p), strdup(p.cert), p.lineno, false};
		if (!v[*n].key || !v[*n].cert) {
			free(v[*n].key);
			free(v[*n].cert);
			continue;
		}
		(*n)++;
	}
	free(reply);
	if (!v)
		v = calloc(1, sizeof(*v));
	if (v)
		qsort(v, *n, sizeof(*v), cmp_sline);
	return v;
}

/* The first served line with this key not yet claimed, or NULL. */
static struct sline *find_line(struct sline *v, size_t n, const char *key)
{
	struct sline k = {.key = (char *)key};
	struct sline *hit = bsearch(&k, v, n, sizeof(*v), cmp_sline);
	size_t i;

	if (!hit)
		return NULL;
	i = (size_t)(hit - v);
	while (i > 0 && strcmp(v[i - 1].key, key) == 0)
		i--;
	for (; i < n && strcmp(v[i].key, key) == 0; i++)
		if (!v[i].keep)
			return &v[i];
	return NULL;
}

/* The key of a compiled host's line, or NULL without one. */
static char *host_key(const struct compile_host *ch)
{
	struct pline p;

	if (!ch->crtlist_line || parse_line(ch->crtlist_line, false, &p) < 0)
		return NULL;
	return line_key(&p);
}

/* ---- CA files ---- */

/* The serials of the certificates in pem, sorted and joined, into out. */
static void pem_serials(const uint8_t *pem, size_t len, char *out, size_t outlen)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	char *v[256], s[X509U_SERIAL_LEN];
	size_t n = 0, o = 0;

	out[0] = '\0';
	while (b && n < 256 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (x509u_serial_hex(x, s, sizeof(s)) == 0)
			v[n++] = strdup(s);
		X509_free(x);
	}
	BIO_free(b);
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (v[i] && o + strlen(v[i]) + 2 < outlen)
			o += (size_t)snprintf(out + o, outlen - o, "%s,", v[i]);
		free(v[i]);
	}
}

/* The same from HAProxy's `show ssl ca-file <file>`; 1 when HAProxy does not know it. */
static int served_serials(const struct hapi *h, const char *file, char *out, size_t outlen,
                          struct apply_report *rep)
{
	char cmd[4200], *reply = NULL, *v[256];
	size_t n = 0, o = 0;

	snprintf(cmd, sizeof(cmd), "show ssl ca-file %s", file);
	if (hapi_cmd(h, cmd, NULL, &reply, rep->error, sizeof(rep->error)) < 0) {
		rep->reachable = false;
		return -1;
	}
	out[0] = '\0';
	if (!strstr(reply, "Filename:")) {
		free(reply);
		return 1;
	}
	for (char *p = reply; n < 256 && (p = strstr(p, "\nSerial: ")) != NULL;) {
		p += strlen("\nSerial: ");
		v[n++] = strndup(p, strcspn(p, "\r\n"));
	}
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (v[i] && o + strlen(v[i]) + 2 < outlen)
			o += (size_t)snprintf(out + o, outlen - o, "%s,", v[i]);
		free(v[i]);
	}
	free(reply);
	return 0;
}

/* ---- maps ---- */

struct kv {
	char *key, *value;
};

static int cmp_kv(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* "key value" lines (skip_addr: HAProxy's "0x... key value") into a sorted array. */
static struct kv *parse_map(char *text, bool skip_addr, size_t *n)
{
	struct kv *v = NULL;
	size_t cap = 0;
	char *save = NULL;

	*n = 0;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *k = l, *val;
		if (skip_addr) {
			k = strchr(l, ' ');
			if (!k)
				continue;
			k++;
		}
		val = strchr(k, ' ');
		if (!val || k[0] == '#')
			continue;
		*val++ = '\0';
		if (*n == cap) {
			struct kv *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[*n].key = k;
		v[*n].value = val;
		(*n)++;
	}
	if (v)
		qsort(v, *n, sizeof(*v), cmp_kv);
	return v;
}

static int apply_map(const struct hapi *h, const struct compile_file *f, struct apply_report *rep)
{
	char cmd[4200], *reply = NULL, *want = strndup((const char *)f->data, f->len);
	struct kv *cur = NULL, *des = NULL;
	size_t nc = 0, nd = 0, i = 0, j = 0;
	int r = -1;

	snprintf(cmd, sizeof(cmd), "show map %s", f->path);
	if (!want)
		goto out;
	if (hapi_cmd(h, cmd, NULL, &reply, rep->error, sizeof(rep->error)) < 0) {
		rep->reachable = false;
		goto out;
	}
	if (strstr(reply, "Unknown map identifier")) {
		snprintf(rep->error, sizeof(rep->error),
		         "HAProxy does not load the map %s: the haproxy/ rules reference it",
		         f->path);
		goto out;
	}
	cur = parse_map(reply, true, &nc);
	des = parse_map(want, false, &nd);
	/* A merge of two sorted lists: set what differs, delete what is gone. */
	while (i < nd || j < nc) {
		int c = i == nd ? 1 : j == nc ? -1 : strcmp(des[i].key, cur[j].key);
		if (c < 0 || (c == 0 && strcmp(des[i].value, cur[j].value) != 0)) {
			if (hapi_map_set(h, f->path, des[i].key, des[i].value, rep->error,
			                 sizeof(rep->error)) < 0)
				goto out;
			rep->map_changes++;
		} else if (c > 0) {
			if (hapi_map_del(h, f->path, cur[j].key, rep->error, sizeof(rep->error)) <
			    0)
				goto out;
			rep->map_changes++;
		}
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
	}
	r = 0;
out:
	free(cur);
	free(des);
	free(reply);
	free(want);
	return r;
}

/* ---- the whole ---- */

/* The hosts that have a certificate, sorted by bundle path, for quick lookups. */
static int cmp_host_path(const void *a, const void *b)
{
	return strcmp((*(const struct compile_host *const *)a)->cert_path,
	              (*(const struct compile_host *const *)b)->cert_path);
}

static const struct compile_host **by_cert(const struct compile_result *r, size_t *n)
{
	const struct compile_host **v = calloc(r->n_hosts + 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; v && i < r->n_hosts; i++)
		if (r->hosts[i].cert_path)
			v[(*n)++] = &r->hosts[i];
	if (v)
		qsort(v, *n, sizeof(*v), cmp_host_path);
	return v;
}

/* A host whose bundle is path, or NULL when no host uses it. */
static const struct compile_host *host_of_cert(const struct compile_host **v, size_t n,
                                               const char *path)
{
	struct compile_host key = {.cert_path = (char *)path};
	const struct compile_host *k = &key, **hit;

	hit = bsearch(&k, v, n, sizeof(*v), cmp_host_path);
	return hit ? *hit : NULL;
}

static int cmp_lineno_desc(const void *a, const void *b)
{
	long x = (*(struct sline *const *)a)->lineno, y = (*(struct sline *const *)b)->lineno;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int apply_crtlist(const struct hapi *h, const struct compile_result *r,
                         const struct compile_file *f, const struct compile_host **used,
                         size_t n_used, struct apply_report *rep)
{
	struct sline *cur, **del = NULL;
	size_t n, n_del = 0;
	char err2[512];
	int ret = -1;

	cur = served_lines(h, f->path, &n, rep);
	if (!cur)
		return -1;
	/* Add first, delete after: a hostname changing certificate is never without one. */
	for (size_t i = 0; i < r->n_hosts; i++) {
		const struct compile_host *ch = &r->hosts[i];
		struct sline *hit;
		char *key;

		if (!ch->crtlist_line || strcmp(ch->env->crt_list, f->path) != 0)
			continue;
		key = host_key(ch);
		hit = key ? find_line(cur, n, key) : NULL;
		free(key);
		if (hit) {
			hit->keep = true;
			continue;
		}
		if (hapi_crtlist_add(h, f->path, ch->crtlist_line, rep->error, sizeof(rep->error)) <
		    0)
			goto out;
		rep->lines_added++;
	}
	del = calloc(n + 1, sizeof(*del));
	if (!del)
		goto out;
	for (size_t j = 0; j < n; j++)
		if (!cur[j].keep)
			del[n_del++] = &cur[j];
	/* Highest line numbers first, so the lower ones still name the same lines. */
	qsort(del, n_del, sizeof(*del), cmp_lineno_desc);
	for (size_t k = 0; k < n_del; k++) {
		char target[4200];
		snprintf(target, sizeof(target), "%s:%ld", del[k]->cert, del[k]->lineno);
		if (hapi_crtlist_del(h, f->path, target, rep->error, sizeof(rep->error)) < 0)
			goto out;
		rep->lines_deleted++;
		/* Release the certificate when no line of ours uses it any more; HAProxy
		 * refuses while another line or a `crt` still does, which is fine. */
		if (!host_of_cert(used, n_used, del[k]->cert)) {
			char cmd[4200], *reply = NULL;
			snprintf(cmd, sizeof(cmd), "del ssl cert %s", del[k]->cert);
			if (hapi_cmd(h, cmd, NULL, &reply, err2, sizeof(err2)) == 0 &&
			    strstr(reply, "deleted"))
				rep->certs_freed++;
			free(reply);
		}
	}
	ret = 0;
out:
	free(del);
	slines_free(cur, n);
	return ret;
}

int apply_run(const struct hapi *h, const struct compile_result *r, struct apply_report *rep)
{
	char err[512];
	int bad = 0;
	size_t n_used;
	const struct compile_host **used = by_cert(r, &n_used);

	memset(rep, 0, sizeof(*rep));
	rep->reachable = true;
	if (!used) {
		snprintf(rep->error, sizeof(rep->error), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < r->n_files && rep->reachable; i++) {
		const struct compile_file *f = &r->files[i];
		int st;
		switch (f->kind) {
		case CF_CAFILE: {
			char want[8192], have[8192];
			pem_serials(f->data, f->len, want, sizeof(want));
			st = served_serials(h, f->path, have, sizeof(have), rep);
			if (st < 0)
				break;
			if (st == 0 && strcmp(want, have) == 0)
				break;
			{
				char *pem = strndup((const char *)f->data, f->len);
				int u = pem ? hapi_cafile_update(h, f->path, pem, st == 1, err,
				                                 sizeof(err))
				            : -1;
				free(pem);
				if (u < 0) {
					if (!bad++)
						snprintf(rep->error, sizeof(rep->error), "%s", err);
					break;
				}
			}
			rep->cafiles_set++;
			break;
		}
		case CF_CERT: {
			/* Any host whose bundle this is gives the expected serial. */
			const struct compile_host *ch = host_of_cert(used, n_used, f->path);
			char serial[X509U_SERIAL_LEN + 8];
			char *pem;
			int u;
			if (!ch)
				break;
			st = hapi_cert_serial(h, f->path, serial, sizeof(serial), err, sizeof(err));
			if (st < 0) {
				rep->reachable = strstr(err, "cannot connect") == NULL;
				snprintf(rep->error, sizeof(rep->error), "%s", err);
				bad++;
				break;
			}
			if (st == 0 && strcmp(serial, ch->cert->serial) == 0)
				break;
			pem = strndup((const char *)f->data, f->len);
			u = pem ? hapi_cert_update(h, f->path, pem, st == 1, err, sizeof(err)) : -1;
			if (pem) {
				OPENSSL_cleanse(pem, f->len);
				free(pem);
			}
			if (u < 0) {
				if (!bad++)
					snprintf(rep->error, sizeof(rep->error), "%s", err);
				break;
			}
			/* Trust, but verify: HAProxy now holds the serial we committed. */
			serial[0] = '\0';
			if (hapi_cert_serial(h, f->path, serial, sizeof(serial), err,
			                     sizeof(err)) != 0 ||
			    strcmp(serial, ch->cert->serial) != 0) {
				if (!bad++)
					snprintf(rep->error, sizeof(rep->error),
					         "after commit HAProxy serves serial %s for %s, "
					         "expected %s",
					         serial, f->path, ch->cert->serial);
				break;
			}
			rep->certs_loaded++;
			break;
		}
		case CF_CRTLIST:
			if (apply_crtlist(h, r, f, used, n_used, rep) < 0)
				bad++;
			break;
		case CF_MAP:
			if (apply_map(h, f, rep) < 0)
				bad++;
			break;
		case CF_SNAPSHOT:
			break; /* the agent reads it from disk */
		}
	}
	free((void *)used);
	if (!rep->reachable)
		bad++;
	rep->in_sync = bad == 0;
	return bad ? -1 : 0;
}

void apply_served(const struct hapi *h, const struct compile_result *r, int *served)
{
	for (size_t i = 0; i < r->n_hosts; i++)
		served[i] = 0;
	for (size_t f = 0; f < r->n_files; f++) {
		struct apply_report rep = {.reachable = true};
		struct sline *cur;
		size_t n;

		if (r->files[f].kind != CF_CRTLIST)
			continue;
		cur = served_lines(h, r->files[f].path, &n, &rep);
		for (size_t i = 0; i < r->n_hosts; i++) {
			const struct compile_host *ch = &r->hosts[i];
			char *key;
			if (strcmp(ch->env->crt_list, r->files[f].path) != 0)
				continue;
			if (!cur) {
				served[i] = rep.reachable ? 0 : -1;
				continue;
			}
			key = host_key(ch);
			served[i] = key && find_line(cur, n, key) != NULL;
			free(key);
		}
		slines_free(cur, n);
	}
}
