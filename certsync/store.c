#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "afile.h"
#include "log.h"

#include "banned.h"

#define META_MAX (1u << 20)
#define PEM_MAX  (1u << 20)

const char *store_source_name(enum store_source src)
{
	return src == STORE_ACME ? "auto" : "uploaded";
}

static void cert_clear(struct store_cert *c)
{
	free(c->network);
	free(c->issuer_dn);
	free(c->subject_dn);
	x509u_names_free(&c->names);
	memset(c, 0, sizeof(*c));
}

void store_path(const struct store *s, const char *id, const char *file, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%s/%s/%s", s->dir, id, file);
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n != STORE_ID_LEN - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

static char *dup_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? strdup(s) : NULL;
}

static int meta_parse(const char *json, struct store_cert *c)
{
	json_error_t je;
	json_t *o = json_loads(json, 0, &je), *names;
	const char *src, *id, *serial, *sha;
	size_t i;
	int r = -1;

	if (!o)
		return -1;
	id = json_string_value(json_object_get(o, "id"));
	src = json_string_value(json_object_get(o, "source"));
	serial = json_string_value(json_object_get(o, "serial"));
	sha = json_string_value(json_object_get(o, "sha256"));
	names = json_object_get(o, "names");
	if (!id || !valid_id(id) || !src || !serial || !sha || !json_is_array(names) ||
	    strlen(serial) >= sizeof(c->serial) || strlen(sha) >= sizeof(c->sha256))
		goto out;
	memcpy(c->id, id, STORE_ID_LEN);
	c->source = strcmp(src, "auto") == 0 ? STORE_ACME : STORE_UPLOADED;
	memcpy(c->serial, serial, strlen(serial) + 1);
	memcpy(c->sha256, sha, strlen(sha) + 1);
	c->network = dup_str(o, "network");
	c->issuer_dn = dup_str(o, "issuer");
	c->subject_dn = dup_str(o, "subject");
	c->not_before = (time_t)json_integer_value(json_object_get(o, "not_before"));
	c->not_after = (time_t)json_integer_value(json_object_get(o, "not_after"));
	c->added = (time_t)json_integer_value(json_object_get(o, "added"));
	c->added_us = (int64_t)json_integer_value(json_object_get(o, "added_us"));
	c->wildcard = json_is_true(json_object_get(o, "wildcard"));
	c->names.name = calloc(json_array_size(names) + 1, sizeof(char *));
	if (!c->names.name || !c->issuer_dn || !c->subject_dn)
		goto out;
	for (i = 0; i < json_array_size(names); i++) {
		const char *n = json_string_value(json_array_get(names, i));
		if (!n || !(c->names.name[c->names.n] = strdup(n)))
			goto out;
		c->names.n++;
	}
	r = 0;
out:
	json_decref(o);
	return r;
}

/* Deletes an entry directory and the files an entry holds. */
static void remove_entry_dir(const char *dir)
{
	char path[PATH_MAX + 16];

	for (const char *f = "cert.pem\0key.pem\0meta.json\0"; *f; f += strlen(f) + 1) {
		snprintf(path, sizeof(path), "%s/%s", dir, f);
		unlink(path);
	}
	rmdir(dir);
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct store_cert *)a)->id, ((const struct store_cert *)b)->id);
}

int store_reload(struct store *s, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *e;
	struct store_cert *v = NULL;
	size_t n = 0, cap = 0;

	afile_sweep(s->dir);
	d = opendir(s->dir);
	if (!d) {
		snprintf(err, errlen, "%s: %s", s->dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		uint8_t *json = NULL;
		size_t len;
		struct store_cert c = {0};

		if (e->d_name[0] == '.')
			continue;
		if (strncmp(e->d_name, "tmp-", 4) == 0 || strncmp(e->d_name, "del-", 4) == 0) {
			/* An add or a removal that a crash interrupted: undo or finish it. */
			snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
			remove_entry_dir(path);
			continue;
		}
		if (!valid_id(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/meta.json", s->dir, e->d_name);
		if (afile_read(path, META_MAX, &json, &len) < 0 ||
		    meta_parse((char *)json, &c) < 0 || strcmp(c.id, e->d_name) != 0) {
			log_msg(LOG_WARN, "event=store_skip id=%s reason=\"unreadable metadata\"",
			        e->d_name);
			cert_clear(&c);
			free(json);
			continue;
		}
		free(json);
		if (n == cap) {
			struct store_cert *nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
			if (!nv) {
				cert_clear(&c);
				break;
			}
			v = nv;
		}
		v[n++] = c;
	}
	closedir(d);
	if (n) /* v may be NULL: qsort's first argument must not be */
		qsort(v, n, sizeof(*v), by_id);
	for (size_t i = 0; i < s->n; i++)
		cert_clear(&s->v[i]);
	free(s->v);
	s->v = v;
	s->n = n;
	return 0;
}

int store_open(const char *state_dir, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));

	if (!s || !(s->state_dir = strdup(state_dir)) ||
	    asprintf(&s->dir, "%s/store", state_dir) < 0) {
		if (s)
			free(s->state_dir);
		free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (afile_mkdirs(s->dir, 0700) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", s->dir, strerror(errno));
		store_close(s);
		return -1;
	}
	if (store_reload(s, err, errlen) < 0) {
		store_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		cert_clear(&s->v[i]);
	free(s->v);
	free(s->dir);
	free(s->state_dir);
	free(s);
}

static const struct store_cert *store_find(const struct store *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].id, id) == 0)
			return &s->v[i];
	return NULL;
}

/* PEM of leaf and chain, malloc'd. */
static char *certs_pem(X509 *leaf, STACK_OF(X509) * chain, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out = NULL;
	long n;

	if (!b || !PEM_write_bio_X509(b, leaf))
		goto out;
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		if (!PEM_write_bio_X509(b, sk_X509_value(chain, i)))
			goto out;
	n = BIO_get_mem_data(b, &p);
	out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
		*len = (size_t)n;
	}
out:
	BIO_free(b);
	return out;
}

static char *key_pem(EVP_PKEY *key, size_t *len)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *p, *out = NULL;
	long n;

	if (!b)
		b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	n = BIO_get_mem_data(b, &p);
	out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
		*len = (size_t)n;
	}
	OPENSSL_cleanse(p, (size_t)n);
out:
	BIO_free(b);
	return out;
}

static char *meta_json(const struct store_cert *c)
{
	json_t *o = json_object(), *names = json_array();
	char *out;

	for (size_t i = 0; i < c->names.n; i++)
		json_array_append_new(names, json_string(c->names.name[i]));
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "source", json_string(store_source_name(c->source)));
	json_object_set_new(o, "network", c->network ? json_string(c->network) : json_null());
	json_object_set_new(o, "names", names);
	json_object_set_new(o, "serial", json_string(c->serial));
	json_object_set_new(o, "sha256", json_string(c->sha256));
	json_object_set_new(o, "issuer", json_string(c->issuer_dn));
	json_object_set_new(o, "subject", json_string(c->subject_dn));
	json_object_set_new(o, "not_before", json_integer((json_int_t)c->not_before));
	json_object_set_new(o, "not_after", json_integer((json_int_t)c->not_after));
	json_object_set_new(o, "added", json_integer((json_int_t)c->added));
	json_object_set_new(o, "added_us", json_integer((json_int_t)c->added_us));
	json_object_set_new(o, "wildcard", json_boolean(c->wildcard));
	out = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	return out;
}

static int facts(struct store_cert *c, X509 *leaf, char *err, size_t errlen)
{
	char dn[4096];

	if (x509u_serial_hex(leaf, c->serial, sizeof(c->serial)) < 0 ||
	    x509u_sha256_hex(leaf, c->sha256, sizeof(c->sha256)) < 0 ||
	    x509u_not_before(leaf, &c->not_before) < 0 ||
	    x509u_not_after(leaf, &c->not_after) < 0 || x509u_dns_names(leaf, &c->names) < 0 ||
	    x509u_issuer_dn(leaf, dn, sizeof(dn)) < 0 || !(c->issuer_dn = strdup(dn)) ||
	    x509u_subject_dn(leaf, dn, sizeof(dn)) < 0 || !(c->subject_dn = strdup(dn))) {
		snprintf(err, errlen, "cannot read the certificate's facts");
		return -1;
	}
	for (size_t i = 0; i < c->names.n; i++)
		if (strncmp(c->names.name[i], "*.", 2) == 0)
			c->wildcard = true;
	for (size_t i = 0; i < STORE_ID_LEN - 1; i++)
		c->id[i] = (char)(c->sha256[i] >= 'A' ? c->sha256[i] - 'A' + 'a' : c->sha256[i]);
	c->id[STORE_ID_LEN - 1] = '\0';
	return 0;
}

int store_add(struct store *s, enum store_source source, const char *network, X509 *leaf,
              STACK_OF(X509) * chain, EVP_PKEY *key, time_t now, char id[STORE_ID_LEN], char *err,
              size_t errlen)
{
	struct store_cert c = {0};
	char tmp[PATH_MAX] = "", final[PATH_MAX], path[PATH_MAX + 16];
	char *certs = NULL, *keyp = NULL, *meta = NULL;
	size_t certs_len = 0, key_len = 0;
	struct store_cert *nv;
	int r = -1;

	if (facts(&c, leaf, err, errlen) < 0)
		goto out;
	memcpy(id, c.id, STORE_ID_LEN);
	if (store_find(s, c.id)) {
		r = 1;
		goto out;
	}
	c.source = source;
	c.added = now;
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		c.added_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	}
	if (network && !(c.network = strdup(network)))
		goto oom;
	certs = certs_pem(leaf, chain, &certs_len);
	keyp = key_pem(key, &key_len);
	meta = meta_json(&c);
	if (!certs || !keyp || !meta)
		goto oom;
	snprintf(final, sizeof(final), "%s/%s", s->dir, c.id);
	snprintf(tmp, sizeof(tmp), "%s/tmp-%s-XXXXXX", s->dir, c.id);
	if (!mkdtemp(tmp)) {
		snprintf(err, errlen, "cannot create a directory in %s: %s", s->dir,
		         strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/key.pem", tmp);
	if (afile_create(path, keyp, key_len, 0600) < 0)
		goto io;
	snprintf(path, sizeof(path), "%s/cert.pem", tmp);
	if (afile_write(path, certs, certs_len, 0644) < 0)
		goto io;
	snprintf(path, sizeof(path), "%s/meta.json", tmp);
	if (afile_write(path, meta, strlen(meta), 0644) < 0)
		goto io;
	/* The rename makes the entry appear whole; it must reach the disk before we say so. */
	snprintf(path, sizeof(path), "%s", final);
	if (chmod(tmp, 0700) < 0 || rename(tmp, final) < 0 || afile_sync_dir(s->dir) < 0)
		goto io;
	nv = realloc(s->v, (s->n + 1) * sizeof(*s->v));
	if (!nv)
		goto oom;
	s->v = nv;
	s->v[s->n++] = c;
	memset(&c, 0, sizeof(c));
	qsort(s->v, s->n, sizeof(*s->v), by_id);
	r = 0;
	goto out;
io:
	snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	if (r < 0 && tmp[0] && access(tmp, F_OK) == 0)
		remove_entry_dir(tmp);
	if (keyp) {
		OPENSSL_cleanse(keyp, key_len);
		free(keyp);
	}
	free(certs);
	free(meta);
	cert_clear(&c);
	return r;
}

int store_remove(struct store *s, const char *id, char *err, size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX];
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].id, id) == 0)
			break;
	if (i == s->n || !valid_id(id)) {
		snprintf(err, errlen, "no certificate %s in the store", id);
		return -1;
	}
	snprintf(from, sizeof(from), "%s/%s", s->dir, id);
	snprintf(to, sizeof(to), "%s/del-%s", s->dir, id);
	/* Renamed away first: a crash leaves either the entry or a del- directory that the
	 * next store_reload() finishes deleting. */
	if (rename(from, to) < 0) {
		snprintf(err, errlen, "removing %s: %s", from, strerror(errno));
		return -1;
	}
	remove_entry_dir(to);
	cert_clear(&s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	return 0;
}

int store_bundle(const struct store *s, const char *id, char **out, size_t *len, char *err,
                 size_t errlen)
{
	char path[PATH_MAX];
	uint8_t *certs = NULL, *key = NULL;
	size_t cl = 0, kl = 0;
	char *b;

	store_path(s, id, "cert.pem", path, sizeof(path));
	if (afile_read(path, PEM_MAX, &certs, &cl) < 0)
		goto io;
	store_path(s, id, "key.pem", path, sizeof(path));
	if (afile_read(path, PEM_MAX, &key, &kl) < 0)
		goto io;
	b = malloc(cl + kl + 2);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(b, certs, cl);
	if (cl && certs[cl - 1] != '\n')
		b[cl++] = '\n';
	memcpy(b + cl, key, kl);
	b[cl + kl] = '\0';
	*out = b;
	*len = cl + kl;
	OPENSSL_cleanse(key, kl);
	free(key);
	free(certs);
	return 0;
io:
	snprintf(err, errlen, "reading %s: %s", path, strerror(errno));
fail:
	if (key) {
		OPENSSL_cleanse(key, kl);
		free(key);
	}
	free(certs);
	return -1;
}
