#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "addr.h"
#include "hostname.h"

#include "strhash.h"

#include "banned.h"

/* Largest PEM file read: a generous CA bundle. */
#define PEM_FILE_MAX (8u << 20)
/* Largest secret file (TSIG secret, EAB key): one base64 line. */
#define SECRET_FILE_MAX 4096u
/* A chain certificate expiring sooner than this draws a warning (DESIGN §4.1). */
#define EXPIRY_WARN_DAYS 30
#define ENV_NAME_MAX     64

/* ------------------------------------------------------------------ diagnostics */

void cs_diags_init(struct cs_diags *d)
{
	memset(d, 0, sizeof(*d));
}

void cs_diags_free(struct cs_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].message);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static void diags_push(struct cs_diags *d, enum cs_severity sev, const char *file, int line,
                       char *msg)
{
	struct cs_diag *e;

	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		struct cs_diag *nv;
		if (ncap > CS_DIAGS_MAX + 1)
			ncap = CS_DIAGS_MAX + 1;
		nv = realloc(d->v, ncap * sizeof(*nv));
		if (!nv) {
			free(msg);
			return;
		}
		d->v = nv;
		d->cap = ncap;
	}
	e = &d->v[d->n];
	e->file = strdup(file ? file : "?");
	e->line = line;
	e->severity = sev;
	e->message = msg;
	if (!e->file || !msg) {
		free(e->file);
		free(msg);
		return;
	}
	d->n++;
}

void cs_diags_add(struct cs_diags *d, enum cs_severity sev, const char *file, int line,
                  const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	if (sev == CS_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->truncated)
		return;
	if (d->n >= CS_DIAGS_MAX) {
		/* The cap keeps a pathological file from growing the list without bound;
		 * the last slot says so. */
		d->truncated = true;
		msg = strdup("too many problems; the rest are not shown");
		diags_push(d, CS_ERROR, file, 0, msg);
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	diags_push(d, sev, file, line, msg);
}

void cs_diags_print(const struct cs_diags *d, FILE *f)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct cs_diag *e = &d->v[i];
		const char *sev = e->severity == CS_ERROR ? "error" : "warning";
		if (e->line > 0)
			fprintf(f, "%s:%d: %s: %s\n", e->file, e->line, sev, e->message);
		else
			fprintf(f, "%s: %s: %s\n", e->file, sev, e->message);
	}
}

/* ------------------------------------------------------------------ names */

static const char *const validation_names[] = {
    [CS_VALIDATION_DISABLED] = "disabled",     [CS_VALIDATION_REQUIRED] = "required",
    [CS_VALIDATION_OPTIONAL] = "optional",     [CS_VALIDATION_OPTIONAL_NO_CA] = "optional-no-ca",
    [CS_VALIDATION_PERMISSIVE] = "permissive",
};

static const char *const key_type_names[] = {
    [CS_KEY_EC_P256] = "ec-p256",
    [CS_KEY_EC_P384] = "ec-p384",
    [CS_KEY_RSA_2048] = "rsa-2048",
    [CS_KEY_RSA_3072] = "rsa-3072",
};

static const char *const layout_names[] = {
    [CS_DNS_LAYOUT_PER_HOST] = "per-host",
    [CS_DNS_LAYOUT_SHARED] = "shared",
};

static const char *const tsig_algorithms[] = {
    "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *cs_validation_name(enum cs_validation v)
{
	return (size_t)v < NELEM(validation_names) ? validation_names[v] : "?";
}

const char *cs_key_type_name(enum cs_key_type t)
{
	return (size_t)t < NELEM(key_type_names) ? key_type_names[t] : "?";
}

/* Index of s in names, or -1. */
static int name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* "a | b | c" into buf. */
static const char *join_names(char *buf, size_t len, const char *const *names, size_t n,
                              const char *sep)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int r = snprintf(buf + off, len - off, "%s%s", i ? sep : "", names[i]);
		if (r < 0)
			break;
		off += (size_t)r;
	}
	return buf;
}

/* ------------------------------------------------------------------ load context */

/* Where each stored string of a list came from, for cross-checks after parsing. */
struct strlist {
	char **v;
	int *lines;
	size_t n;
};

struct env_aux {
	const char *file; /* the file the environment is in */
	int *host_lines;  /* parallel to env->hostnames */
	int *req_lines;   /* parallel to env->mtls.request_hostnames */
	int **chain_host_lines;
	int auto_line, depth_line, chains_line, req_line, send_headers_line, crt_list_line;
	int name_line;
};

struct ctx {
	const char *path; /* the configuration file */
	char *dir;        /* its directory, for relative paths */
	struct cs_diags *d;
	struct cs_config *c;
	struct env_aux *aux; /* parallel to c->envs */
	char **pem_seen;     /* PEM files already analysed: one report per file */
	size_t n_pem_seen;
	bool oom;
};

static const char *sfile(const struct ctx *x, const config_setting_t *s)
{
	const char *f = s ? config_setting_source_file(s) : NULL;
	return f ? f : x->path;
}

static int sline(const config_setting_t *s)
{
	return s ? (int)config_setting_source_line(s) : 0;
}

#define ERR(x, s, ...)  cs_diags_add((x)->d, CS_ERROR, sfile((x), (s)), sline(s), __VA_ARGS__)
#define WARN(x, s, ...) cs_diags_add((x)->d, CS_WARNING, sfile((x), (s)), sline(s), __VA_ARGS__)

static char *xstrdup(struct ctx *x, const char *s)
{
	char *r = strdup(s);
	if (!r)
		x->oom = true;
	return r;
}

static void *xcalloc(struct ctx *x, size_t n, size_t size)
{
	void *r = calloc(n ? n : 1, size);
	if (!r)
		x->oom = true;
	return r;
}

/* A path from the file, relative to the configuration's directory unless absolute. */
static char *resolve_path(struct ctx *x, const char *p)
{
	char *r = NULL;

	if (p[0] == '/' || !x->dir)
		return xstrdup(x, p);
	if (asprintf(&r, "%s/%s", x->dir, p) < 0) {
		x->oom = true;
		return NULL;
	}
	return r;
}

/* ------------------------------------------------------------------ typed access */

static const char *type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group { ... }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a number with a fraction";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array [ ... ]";
	case CONFIG_TYPE_LIST:
		return "a list ( ... )";
	default:
		return "nothing";
	}
}

/* Reports members of group g not in allowed (NULL-terminated). */
static void check_keys(struct ctx *x, const config_setting_t *g, const char *where,
                       const char *const *allowed)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		size_t k;
		char list[512];
		for (k = 0; allowed[k]; k++)
			if (strcmp(allowed[k], name) == 0)
				break;
		if (allowed[k])
			continue;
		for (k = 0; allowed[k]; k++)
			;
		ERR(x, m, "unknown key \"%s\" in %s; allowed: %s", name, where,
		    join_names(list, sizeof(list), allowed, k, ", "));
	}
}

/* Each getter returns 1 and the value when key is present with the right type, 0 when
 * absent, -1 (reported) when present with another type. *where_s receives the setting. */
static int get_typed(struct ctx *x, const config_setting_t *g, const char *key, const char *where,
                     int type, const char *expected, const config_setting_t **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	int t;

	*out = s;
	if (!s)
		return 0;
	t = config_setting_type(s);
	if (t == type || (type == CONFIG_TYPE_INT && t == CONFIG_TYPE_INT64) ||
	    (type == CONFIG_TYPE_LIST && t == CONFIG_TYPE_ARRAY && config_setting_length(s) == 0))
		return 1;
	ERR(x, s, "%s%s%s: expected %s, got %s", where, *where ? "." : "", key, expected,
	    type_name(t));
	return -1;
}

static int get_string(struct ctx *x, const config_setting_t *g, const char *key, const char *where,
                      const char **val, const config_setting_t **s)
{
	int r = get_typed(x, g, key, where, CONFIG_TYPE_STRING, "a string in double quotes", s);
	*val = r == 1 ? config_setting_get_string(*s) : NULL;
	return r;
}

/* A non-empty string. */
static int get_nonempty(struct ctx *x, const config_setting_t *g, const char *key,
                        const char *where, const char **val, const config_setting_t **s)
{
	int r = get_string(x, g, key, where, val, s);
	if (r == 1 && (*val)[0] == '\0') {
		ERR(x, *s, "%s%s%s: expected a non-empty string", where, *where ? "." : "", key);
		*val = NULL;
		return -1;
	}
	return r;
}

static int get_bool(struct ctx *x, const config_setting_t *g, const char *key, const char *where,
                    bool *val, const config_setting_t **s)
{
	int r = get_typed(x, g, key, where, CONFIG_TYPE_BOOL, "true or false", s);
	if (r == 1)
		*val = config_setting_get_bool(*s) != 0;
	return r;
}

static int get_int(struct ctx *x, const config_setting_t *g, const char *key, const char *where,
                   long long *val, const config_setting_t **s)
{
	int r = get_typed(x, g, key, where, CONFIG_TYPE_INT, "an integer", s);
	if (r == 1)
		*val = config_setting_get_int64(*s);
	return r;
}

static int get_group(struct ctx *x, const config_setting_t *g, const char *key, const char *where,
                     const config_setting_t **s)
{
	return get_typed(x, g, key, where, CONFIG_TYPE_GROUP, "a group { ... }", s);
}

/* A list of strings, written [ "a", "b" ] or ( "a", "b" ); elements of another type are
 * reported and skipped. Element i's value and line go to out (caller frees v and lines,
 * not the strings, which belong to libconfig). */
static int get_strlist(struct ctx *x, const config_setting_t *g, const char *key, const char *where,
                       const char ***vals, int **lines, size_t *n, const config_setting_t **s)
{
	const config_setting_t *l = config_setting_get_member(g, key);
	int len, t;

	*s = l;
	*vals = NULL;
	*lines = NULL;
	*n = 0;
	if (!l)
		return 0;
	t = config_setting_type(l);
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		ERR(x, l, "%s%s%s: expected a list of strings [ \"...\", ... ], got %s", where,
		    *where ? "." : "", key, type_name(t));
		return -1;
	}
	len = config_setting_length(l);
	*vals = xcalloc(x, (size_t)len, sizeof(**vals));
	*lines = xcalloc(x, (size_t)len, sizeof(**lines));
	if (!*vals || !*lines) {
		free(*vals);
		free(*lines);
		*vals = NULL;
		*lines = NULL;
		return -1;
	}
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			ERR(x, e, "%s%s%s[%d]: expected a string, got %s", where, *where ? "." : "",
			    key, i, type_name(config_setting_type(e)));
			continue;
		}
		(*vals)[*n] = config_setting_get_string(e);
		(*lines)[*n] = sline(e);
		(*n)++;
	}
	return 1;
}

/* ------------------------------------------------------------------ value checks */

static int check_addr(struct ctx *x, const config_setting_t *s, const char *what, const char *val,
                      bool allow_unix)
{
	struct addr a;
	char err[256];

	if (!allow_unix && strncmp(val, "unix:", 5) == 0) {
		ERR(x, s, "%s: expected HOST:PORT, got \"%s\" (a Unix socket is not possible here)",
		    what, val);
		return -1;
	}
	if (addr_parse(val, &a, err, sizeof(err)) != 0) {
		ERR(x, s, "%s: \"%s\" is not a usable address (%s); expected %s", what, val, err,
		    allow_unix ? "unix:PATH or tcp:HOST:PORT" : "HOST:PORT");
		return -1;
	}
	return 0;
}

/* Opens path for reading as a regular file; -1 (reported) otherwise. */
static int open_regular(struct ctx *x, const config_setting_t *s, const char *what,
                        const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		ERR(x, s, "%s: cannot read \"%s\": %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ERR(x, s, "%s: \"%s\" is not a regular file", what, path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads at most max bytes of fd into a NUL-terminated buffer; -1 (reported) when the
 * file is larger or unreadable. */
static int read_fd(struct ctx *x, const config_setting_t *s, const char *what, const char *path,
                   int fd, size_t max, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);

	*buf = NULL;
	if (!b) {
		x->oom = true;
		return -1;
	}
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (cap >= max) {
				ERR(x, s, "%s: \"%s\" is larger than %zu bytes", what, path, max);
				OPENSSL_clear_free(b, cap + 1);
				return -1;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = OPENSSL_clear_realloc(b, n + 1, cap + 1);
			if (!nb) {
				OPENSSL_clear_free(b, n + 1);
				x->oom = true;
				return -1;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ERR(x, s, "%s: cannot read \"%s\": %s", what, path, strerror(errno));
			OPENSSL_clear_free(b, cap + 1);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* A file holding a secret (TSIG secret, EAB HMAC key): readable, one base64 (or base64url)
 * value, not world-readable. The content is never echoed in a message. */
static void check_secret_file(struct ctx *x, const config_setting_t *s, const char *what,
                              const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, i, start, end;
	int fd = open_regular(x, s, what, path);

	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH))
		WARN(x, s,
		     "%s: \"%s\" is readable by every user (mode %04o); expected 0600 or 0640",
		     what, path, (unsigned)(st.st_mode & 07777));
	if (read_fd(x, s, what, path, fd, SECRET_FILE_MAX, &buf, &len) != 0)
		goto out;
	for (start = 0; start < len && (buf[start] == ' ' || buf[start] == '\t'); start++)
		;
	for (end = len; end > start && strchr(" \t\r\n", buf[end - 1]); end--)
		;
	if (end == start) {
		ERR(x, s, "%s: \"%s\" is empty; expected the base64 secret on one line", what,
		    path);
		goto out;
	}
	for (i = start; i < end; i++) {
		char ch = buf[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' || ch == '-' ||
		      ch == '_' || ch == '=')) {
			ERR(x, s,
			    "%s: \"%s\" does not hold a base64 secret on one line (unexpected "
			    "character at offset %zu)",
			    what, path, i);
			goto out;
		}
	}
out:
	if (buf)
		OPENSSL_clear_free(buf, len + 1);
	close(fd);
}

/* RFC 2253 subject of x into buf. */
static const char *subject_of(X509 *c, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (!b)
		return buf;
	if (X509_NAME_print_ex(b, X509_get_subject_name(c), 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_read(b, buf, (int)len - 1);
		buf[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	if (buf[0] == '\0')
		snprintf(buf, len, "(empty subject)");
	return buf;
}

static const char *time_str(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	snprintf(buf, len, "?");
	if (!b)
		return buf;
	if (ASN1_TIME_print(b, t) == 1) {
		n = BIO_read(b, buf, (int)len - 1);
		buf[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	return buf;
}

static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, len, "%s", r ? r : "unknown error");
	return buf;
}

/* The checks DESIGN §4.1 asks of a file of trust anchors: at least one certificate, all
 * parseable, each a CA or self-signed (errors); expired, expiring within 30 days, or a
 * self-signature that does not verify (warnings, naming the certificate). */
static void check_anchor_file(struct ctx *x, const config_setting_t *s, const char *what,
                              const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *cert = NULL;
	int fd, count = 0;
	char subj[256], when[64], reason[128];
	time_t soon = time(NULL) + (time_t)EXPIRY_WARN_DAYS * 86400;

	for (size_t i = 0; i < x->n_pem_seen; i++)
		if (strcmp(x->pem_seen[i], path) == 0)
			return;
	{
		char **nv = realloc(x->pem_seen, (x->n_pem_seen + 1) * sizeof(*nv));
		if (!nv) {
			x->oom = true;
			return;
		}
		x->pem_seen = nv;
		if (!(nv[x->n_pem_seen] = xstrdup(x, path)))
			return;
		x->n_pem_seen++;
	}

	fd = open_regular(x, s, what, path);
	if (fd < 0)
		return;
	if (read_fd(x, s, what, path, fd, PEM_FILE_MAX, &buf, &len) != 0)
		goto out;
	if (strstr(buf, "PRIVATE KEY-----")) {
		/* A key among trust anchors is a leak waiting to happen and never needed. */
		ERR(x, s, "%s: \"%s\" holds a private key; expected CA certificates only", what,
		    path);
	}
	bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio) {
		x->oom = true;
		goto out;
	}
	ERR_clear_error();
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		int self, ca, v;
		uint32_t xflags;
		const ASN1_TIME *na = X509_get0_notAfter(cert);
		const ASN1_TIME *nb = X509_get0_notBefore(cert);

		count++;
		subject_of(cert, subj, sizeof(subj));
		xflags = X509_get_extension_flags(cert);
		if (xflags & EXFLAG_INVALID) {
			ERR(x, s, "%s: \"%s\": certificate #%d (%s) has malformed extensions", what,
			    path, count, subj);
		}
		self = X509_check_issued(cert, cert) == X509_V_OK;
		ca = (xflags & EXFLAG_CA) != 0;
		if (!ca && !self)
			ERR(x, s,
			    "%s: \"%s\": certificate #%d (%s) is not a CA (no basicConstraints "
			    "CA:TRUE) and not self-signed; expected CA certificates or a pinned "
			    "self-signed certificate",
			    what, path, count, subj);
		if (self) {
			EVP_PKEY *pk = X509_get0_pubkey(cert);
			v = pk ? X509_verify(cert, pk) : -1;
			if (v != 1)
				WARN(x, s,
				     "%s: \"%s\": certificate #%d (%s) is self-signed but its "
				     "signature does not verify",
				     what, path, count, subj);
		}
		if (X509_cmp_time(na, NULL) <= 0)
			WARN(x, s,
			     "%s: \"%s\": certificate #%d (%s) expired on %s; upload a renewed "
			     "chain",
			     what, path, count, subj, time_str(na, when, sizeof(when)));
		else if (X509_cmp_time(na, &soon) <= 0)
			WARN(x, s,
			     "%s: \"%s\": certificate #%d (%s) expires on %s, within %d days; "
			     "upload a renewed chain",
			     what, path, count, subj, time_str(na, when, sizeof(when)),
			     EXPIRY_WARN_DAYS);
		if (X509_cmp_time(nb, NULL) > 0)
			WARN(x, s, "%s: \"%s\": certificate #%d (%s) is not valid before %s", what,
			     path, count, subj, time_str(nb, when, sizeof(when)));
		X509_free(cert);
		cert = NULL;
	}
	{
		unsigned long e = ERR_peek_last_error();
		bool clean_end =
		    ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
		if (e && !clean_end)
			ERR(x, s, "%s: \"%s\": certificate #%d cannot be parsed: %s", what, path,
			    count + 1, ssl_reason(reason, sizeof(reason)));
		else if (count == 0)
			ERR(x, s,
			    "%s: \"%s\" holds no certificate; expected PEM \"-----BEGIN "
			    "CERTIFICATE-----\" blocks",
			    what, path);
	}
	ERR_clear_error();
out:
	BIO_free(bio);
	free(buf);
	close(fd);
}

static int env_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ENV_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ sections */

static const char *const root_keys[] = {
    "state_dir",
    "admin_group",
    "upload_ca_file",
    "default_environment",
    "metrics_listen",
    "haproxy",
    "agent",
    "acme",
    "dns",
    "environments",
    NULL,
};
static const char *const haproxy_keys[] = {"runtime_api", NULL};
static const char *const agent_keys[] = {"policy_file", NULL};
static const char *const acme_keys[] = {
    "directory", "contact", "key_type", "ca_identities", "server_ca_file", "eab", "profile", NULL,
};
static const char *const eab_keys[] = {"kid", "hmac_key_file", NULL};
static const char *const dns_keys[] = {
    "resolver", "validation_domain", "layout", "update", "authoritative", NULL,
};
static const char *const update_keys[] = {
    "server", "tsig_name", "tsig_algorithm", "tsig_secret_file", NULL,
};
static const char *const env_keys[] = {
    "name", "network", "crt_list", "auto_certificates", "hostnames", "mtls", NULL,
};
static const char *const mtls_keys[] = {
    "validation", "deny_on_failure", "depth", "request_hostnames", "send_headers", "chains", NULL,
};
static const char *const chain_keys[] = {"hostnames", "file", NULL};

static void parse_haproxy_agent(struct ctx *x, const config_setting_t *root)
{
	const config_setting_t *g, *s;
	const char *v;

	if (get_group(x, root, "haproxy", "", &g) == 1) {
		check_keys(x, g, "haproxy", haproxy_keys);
		if (get_nonempty(x, g, "runtime_api", "haproxy", &v, &s) == 1 &&
		    check_addr(x, s, "haproxy.runtime_api", v, true) == 0)
			x->c->runtime_api = xstrdup(x, v);
	}
	if (get_group(x, root, "agent", "", &g) == 1) {
		check_keys(x, g, "agent", agent_keys);
		if (get_nonempty(x, g, "policy_file", "agent", &v, &s) == 1)
			x->c->policy_file = resolve_path(x, v);
	}
}

static void parse_acme(struct ctx *x, const config_setting_t *g)
{
	struct cs_acme *a = &x->c->acme;
	const config_setting_t *s, *eab;
	const char *v, **vals = NULL;
	int *lines = NULL;
	size_t n = 0;
	char list[128], err[256];

	a->present = true;
	check_keys(x, g, "acme", acme_keys);
	if (get_nonempty(x, g, "directory", "acme", &v, &s) == 0)
		ERR(x, g, "acme: missing required key \"directory\" (the ACME directory URL)");
	else if (v && strncmp(v, "https://", 8) != 0)
		ERR(x, s, "acme.directory: expected an https:// URL, got \"%s\"", v);
	else if (v)
		a->directory = xstrdup(x, v);

	if (get_strlist(x, g, "contact", "acme", &vals, &lines, &n, &s) == 1) {
		a->contact = xcalloc(x, n, sizeof(char *));
		for (size_t i = 0; a->contact && i < n; i++) {
			if (!strchr(vals[i], ':')) {
				ERR(x, s,
				    "acme.contact[%zu]: expected a URI such as "
				    "\"mailto:ops@example.com\", got \"%s\"",
				    i, vals[i]);
				continue;
			}
			a->contact[a->n_contact++] = xstrdup(x, vals[i]);
		}
	}
	free(vals);
	free(lines);

	if (get_string(x, g, "key_type", "acme", &v, &s) == 1) {
		int k = name_index(key_type_names, NELEM(key_type_names), v);
		if (k < 0)
			ERR(x, s, "acme.key_type: expected one of %s, got \"%s\"",
			    join_names(list, sizeof(list), key_type_names, NELEM(key_type_names),
			               " | "),
			    v);
		else
			a->key_type = (enum cs_key_type)k;
	}

	if (get_strlist(x, g, "ca_identities", "acme", &vals, &lines, &n, &s) == 1) {
		a->ca_identities = xcalloc(x, n, sizeof(char *));
		for (size_t i = 0; a->ca_identities && i < n; i++) {
			char norm[CS_HOSTNAME_MAX + 1];
			if (cs_hostname_normalize(vals[i], norm, err, sizeof(err)) != 0 ||
			    cs_hostname_is_wildcard(norm)) {
				cs_diags_add(
				    x->d, CS_ERROR, sfile(x, s), lines[i],
				    "acme.ca_identities[%zu]: expected a CAA issuer domain "
				    "name such as \"letsencrypt.org\", got \"%s\"",
				    i, vals[i]);
				continue;
			}
			a->ca_identities[a->n_ca_identities++] = xstrdup(x, norm);
		}
	}
	free(vals);
	free(lines);

	if (get_string(x, g, "server_ca_file", "acme", &v, &s) == 1 && v[0] != '\0') {
		a->server_ca_file = resolve_path(x, v);
		if (a->server_ca_file) {
			int fd = open_regular(x, s, "acme.server_ca_file", a->server_ca_file);
			if (fd >= 0)
				close(fd);
		}
	}

	if (get_group(x, g, "eab", "acme", &eab) == 1) {
		const char *kid = NULL, *key = NULL;
		const config_setting_t *ks;
		check_keys(x, eab, "acme.eab", eab_keys);
		if (get_nonempty(x, eab, "kid", "acme.eab", &kid, &s) == 0)
			ERR(x, eab, "acme.eab: missing required key \"kid\"");
		if (get_nonempty(x, eab, "hmac_key_file", "acme.eab", &key, &ks) == 0)
			ERR(x, eab, "acme.eab: missing required key \"hmac_key_file\"");
		if (key) {
			char *p = resolve_path(x, key);
			if (p)
				check_secret_file(x, ks, "acme.eab.hmac_key_file", p);
			if (kid && p) {
				a->eab_kid = xstrdup(x, kid);
				a->eab_hmac_key_file = p;
			} else {
				free(p);
			}
		}
	}
	if (get_nonempty(x, g, "profile", "acme", &v, &s) == 1)
		a->profile = xstrdup(x, v);
}

static void parse_dns(struct ctx *x, const config_setting_t *g)
{
	struct cs_dns *dn = &x->c->dns;
	const config_setting_t *s, *u;
	const char *v, **vals = NULL;
	int *lines = NULL;
	size_t n = 0;
	char list[128], err[256], norm[CS_HOSTNAME_MAX + 1];

	dn->present = true;
	check_keys(x, g, "dns", dns_keys);
	if (get_nonempty(x, g, "resolver", "dns", &v, &s) == 1 &&
	    check_addr(x, s, "dns.resolver", v, false) == 0)
		dn->resolver = xstrdup(x, v);

	if (get_string(x, g, "validation_domain", "dns", &v, &s) == 0) {
		ERR(x, g,
		    "dns: missing required key \"validation_domain\" (the zone certsync "
		    "writes TXT records into)");
	} else if (v) {
		if (cs_hostname_normalize(v, norm, err, sizeof(err)) != 0)
			ERR(x, s, "dns.validation_domain: expected a DNS name: %s", err);
		else if (cs_hostname_is_wildcard(norm))
			ERR(x, s, "dns.validation_domain: expected a zone name, not a wildcard");
		else
			dn->validation_domain = xstrdup(x, norm);
	}

	if (get_string(x, g, "layout", "dns", &v, &s) == 1) {
		int k = name_index(layout_names, NELEM(layout_names), v);
		if (k < 0)
			ERR(x, s, "dns.layout: expected one of %s, got \"%s\"",
			    join_names(list, sizeof(list), layout_names, NELEM(layout_names),
			               " | "),
			    v);
		else
			dn->layout = (enum cs_dns_layout)k;
	}

	if (get_group(x, g, "update", "dns", &u) == 0) {
		ERR(x, g,
		    "dns: missing required group \"update\" { server; tsig_name; "
		    "tsig_secret_file; } (the RFC 2136 primary of the validation zone)");
	} else if (u) {
		check_keys(x, u, "dns.update", update_keys);
		if (get_nonempty(x, u, "server", "dns.update", &v, &s) == 0)
			ERR(x, u, "dns.update: missing required key \"server\" (HOST:PORT)");
		else if (v && check_addr(x, s, "dns.update.server", v, false) == 0)
			dn->update_server = xstrdup(x, v);
		if (get_nonempty(x, u, "tsig_name", "dns.update", &v, &s) == 0)
			ERR(x, u, "dns.update: missing required key \"tsig_name\"");
		else if (v)
			dn->tsig_name = xstrdup(x, v);
		if (get_string(x, u, "tsig_algorithm", "dns.update", &v, &s) == 1) {
			if (name_index(tsig_algorithms, NELEM(tsig_algorithms), v) < 0)
				ERR(x, s,
				    "dns.update.tsig_algorithm: expected one of %s, got \"%s\"",
				    join_names(list, sizeof(list), tsig_algorithms,
				               NELEM(tsig_algorithms), " | "),
				    v);
			else
				dn->tsig_algorithm = xstrdup(x, v);
		}
		if (!dn->tsig_algorithm)
			dn->tsig_algorithm = xstrdup(x, "hmac-sha256");
		if (get_nonempty(x, u, "tsig_secret_file", "dns.update", &v, &s) == 0) {
			ERR(x, u, "dns.update: missing required key \"tsig_secret_file\"");
		} else if (v) {
			dn->tsig_secret_file = resolve_path(x, v);
			if (dn->tsig_secret_file)
				check_secret_file(x, s, "dns.update.tsig_secret_file",
				                  dn->tsig_secret_file);
		}
	}

	if (get_strlist(x, g, "authoritative", "dns", &vals, &lines, &n, &s) == 1) {
		dn->authoritative = xcalloc(x, n, sizeof(char *));
		for (size_t i = 0; dn->authoritative && i < n; i++) {
			struct addr a;
			if (addr_parse(vals[i], &a, err, sizeof(err)) != 0 ||
			    strncmp(vals[i], "unix:", 5) == 0) {
				cs_diags_add(
				    x->d, CS_ERROR, sfile(x, s), lines[i],
				    "dns.authoritative[%zu]: expected HOST:PORT, got \"%s\"", i,
				    vals[i]);
				continue;
			}
			dn->authoritative[dn->n_authoritative++] = xstrdup(x, vals[i]);
		}
	}
	free(vals);
	free(lines);
}

/* Reads a list of hostnames (normalised, syntax-checked, duplicates within the list
 * reported) into out/lines. Returns the get_strlist result. */
static int parse_hostnames(struct ctx *x, const config_setting_t *g, const char *key,
                           const char *where, char ***out, int **out_lines, size_t *out_n,
                           const config_setting_t **s)
{
	const char **vals = NULL;
	int *lines = NULL, r;
	size_t n = 0, mask, *seen = NULL;
	char err[256], norm[CS_HOSTNAME_MAX + 1];

	*out = NULL;
	*out_lines = NULL;
	*out_n = 0;
	r = get_strlist(x, g, key, where, &vals, &lines, &n, s);
	if (r != 1)
		return r;
	*out = xcalloc(x, n, sizeof(char *));
	*out_lines = xcalloc(x, n, sizeof(int));
	/* Duplicates are found through an open-addressing table of indexes into *out (a
	 * list can hold 10,000 hostnames: no pairwise comparison). */
	for (mask = 16; mask < 2 * n; mask *= 2)
		;
	seen = xcalloc(x, mask, sizeof(*seen));
	mask--;
	if (!*out || !*out_lines || !seen)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t j = 0, k;
		if (cs_hostname_normalize(vals[i], norm, err, sizeof(err)) != 0) {
			cs_diags_add(x->d, CS_ERROR, sfile(x, *s), lines[i],
			             "%s.%s: invalid hostname: %s", where, key, err);
			continue;
		}
		for (k = (size_t)strhash(norm) & mask; seen[k]; k = (k + 1) & mask)
			if (strcmp((*out)[seen[k] - 1], norm) == 0)
				break;
		if (seen[k])
			j = seen[k] - 1;
		else
			j = *out_n;
		if (j < *out_n) {
			cs_diags_add(x->d, CS_ERROR, sfile(x, *s), lines[i],
			             "%s.%s: \"%s\" is listed twice (also on line %d)", where, key,
			             norm, (*out_lines)[j]);
			continue;
		}
		if (!((*out)[*out_n] = xstrdup(x, norm)))
			break;
		(*out_lines)[*out_n] = lines[i];
		(*out_n)++;
		seen[k] = *out_n;
	}
out:
	free(seen);
	free(vals);
	free(lines);
	return r;
}

static bool env_has_host(const struct cs_env *e, const char *h)
{
	for (size_t i = 0; i < e->n_hostnames; i++)
		if (strcmp(e->hostnames[i], h) == 0)
			return true;
	return false;
}

static void parse_chains(struct ctx *x, const config_setting_t *chains, const char *where,
                         struct cs_env *e, struct env_aux *aux)
{
	int n = config_setting_length(chains);
	struct cs_mtls *m = &e->mtls;
	char cw[160];

	m->chains = xcalloc(x, (size_t)n, sizeof(*m->chains));
	aux->chain_host_lines = xcalloc(x, (size_t)n, sizeof(int *));
	if (!m->chains || !aux->chain_host_lines)
		return;
	for (int i = 0; i < n; i++) {
		const config_setting_t *c = config_setting_get_elem(chains, (unsigned)i), *s, *hs;
		struct cs_chain *ch = &m->chains[m->n_chains];
		const char *file = NULL;
		int *hl = NULL;

		snprintf(cw, sizeof(cw), "%s.chains[%d]", where, i);
		if (config_setting_type(c) != CONFIG_TYPE_GROUP) {
			ERR(x, c,
			    "%s: expected a group { hostnames = [ ... ]; file = \"...\"; }, got "
			    "%s",
			    cw, type_name(config_setting_type(c)));
			continue;
		}
		check_keys(x, c, cw, chain_keys);
		if (parse_hostnames(x, c, "hostnames", cw, &ch->hostnames, &hl, &ch->n_hostnames,
		                    &hs) == 0)
			ERR(x, c, "%s: missing required key \"hostnames\"", cw);
		else if (hs && config_setting_length(hs) == 0)
			ERR(x, hs, "%s.hostnames: expected at least one hostname", cw);
		for (size_t j = 0; j < ch->n_hostnames; j++) {
			if (!env_has_host(e, ch->hostnames[j]))
				cs_diags_add(
				    x->d, CS_ERROR, sfile(x, hs), hl[j],
				    "%s.hostnames: \"%s\" is not a hostname of environment "
				    "\"%s\"; expected one of its hostnames",
				    cw, ch->hostnames[j], e->name ? e->name : "?");
			/* One chain of trust per hostname (DESIGN §2.2). */
			for (size_t k = 0; k < m->n_chains; k++)
				for (size_t l = 0; l < m->chains[k].n_hostnames; l++)
					if (strcmp(m->chains[k].hostnames[l], ch->hostnames[j]) ==
					    0)
						cs_diags_add(
						    x->d, CS_ERROR, sfile(x, hs), hl[j],
						    "%s.hostnames: \"%s\" already has a chain of "
						    "trust (line %d); expected one chain entry per "
						    "hostname",
						    cw, ch->hostnames[j],
						    aux->chain_host_lines[k][l]);
		}
		aux->chain_host_lines[m->n_chains] = hl;
		if (get_nonempty(x, c, "file", cw, &file, &s) == 0)
			ERR(x, c, "%s: missing required key \"file\" (a PEM of CA certificates)",
			    cw);
		ch->line = s ? sline(s) : sline(c);
		if (file) {
			char what[200];
			ch->file = resolve_path(x, file);
			snprintf(what, sizeof(what), "%s.file", cw);
			if (ch->file)
				check_anchor_file(x, s, what, ch->file);
		}
		m->n_chains++;
	}
}

static void parse_mtls(struct ctx *x, const config_setting_t *g, const char *where,
                       struct cs_env *e, struct env_aux *aux)
{
	struct cs_mtls *m = &e->mtls;
	const config_setting_t *s, *deny_s = NULL, *chains;
	const char *v;
	long long depth;
	char list[160];
	int r;

	check_keys(x, g, where, mtls_keys);
	if (get_string(x, g, "validation", where, &v, &s) == 1) {
		int k = name_index(validation_names, NELEM(validation_names), v);
		if (k < 0)
			ERR(x, s, "%s.validation: unknown mode \"%s\"; expected one of %s", where,
			    v,
			    join_names(list, sizeof(list), validation_names,
			               NELEM(validation_names), " | "));
		else
			m->validation = (enum cs_validation)k;
	}
	get_bool(x, g, "deny_on_failure", where, &m->deny_on_failure, &deny_s);
	if (get_int(x, g, "depth", where, &depth, &s) == 1) {
		if (depth < 0 || depth > CS_DEPTH_MAX) {
			ERR(x, s, "%s.depth: expected 0..%d, got %lld", where, CS_DEPTH_MAX, depth);
		} else {
			m->depth = (int)depth;
			aux->depth_line = sline(s);
		}
	}
	if (parse_hostnames(x, g, "request_hostnames", where, &m->request_hostnames,
	                    &aux->req_lines, &m->n_request_hostnames, &s) == 1) {
		aux->req_line = sline(s);
		for (size_t i = 0; i < m->n_request_hostnames; i++)
			if (!env_has_host(e, m->request_hostnames[i]))
				cs_diags_add(x->d, CS_ERROR, sfile(x, s), aux->req_lines[i],
				             "%s.request_hostnames: \"%s\" is not a hostname of "
				             "environment \"%s\"; expected one of its hostnames",
				             where, m->request_hostnames[i],
				             e->name ? e->name : "?");
	}
	if (get_bool(x, g, "send_headers", where, &m->send_headers, &s) == 1 && m->send_headers)
		aux->send_headers_line = sline(s);
	r = get_typed(x, g, "chains", where, CONFIG_TYPE_LIST,
	              "a list ( { hostnames = [ ... ]; file = \"...\"; }, ... )", &chains);
	if (r == 1) {
		aux->chains_line = sline(chains);
		parse_chains(x, chains, where, e, aux);
	}

	/* Mode consistency (DESIGN §2.1, §4.1). */
	if (m->deny_on_failure && m->validation != CS_VALIDATION_PERMISSIVE)
		ERR(x, deny_s,
		    "%s.deny_on_failure: true is only meaningful with validation = "
		    "\"permissive\" (this environment is \"%s\"); remove it or set it to false",
		    where, cs_validation_name(m->validation));
	if (aux->depth_line && (m->validation == CS_VALIDATION_DISABLED ||
	                        m->validation == CS_VALIDATION_OPTIONAL_NO_CA))
		cs_diags_add(x->d, CS_WARNING, sfile(x, g), aux->depth_line,
		             "%s.depth: ignored with validation = \"%s\"", where,
		             cs_validation_name(m->validation));
	if (m->validation == CS_VALIDATION_DISABLED) {
		if (aux->chains_line && m->n_chains > 0)
			cs_diags_add(x->d, CS_WARNING, sfile(x, g), aux->chains_line,
			             "%s.chains: ignored with validation = \"disabled\"", where);
		if (m->n_request_hostnames > 0)
			cs_diags_add(x->d, CS_WARNING, sfile(x, g), aux->req_line,
			             "%s.request_hostnames: ignored with validation = "
			             "\"disabled\" (no certificate is requested)",
			             where);
		if (aux->send_headers_line)
			cs_diags_add(x->d, CS_WARNING, sfile(x, g), aux->send_headers_line,
			             "%s.send_headers: ignored with validation = \"disabled\" (no "
			             "x-ssl-client-* header is set)",
			             where);
	}
	if (m->validation == CS_VALIDATION_REQUIRED && m->n_request_hostnames > 0) {
		size_t never = 0;
		const char *first = NULL;
		for (size_t i = 0; i < e->n_hostnames; i++) {
			bool asked = false;
			for (size_t j = 0; j < m->n_request_hostnames; j++)
				if (strcmp(e->hostnames[i], m->request_hostnames[j]) == 0)
					asked = true;
			if (!asked) {
				never++;
				if (!first)
					first = e->hostnames[i];
			}
		}
		if (never)
			cs_diags_add(
			    x->d, CS_WARNING, sfile(x, g), aux->req_line,
			    "%s.request_hostnames: with validation = \"required\", the %zu "
			    "hostname(s) not listed (first: \"%s\") are never asked for a "
			    "certificate and so can never pass",
			    where, never, first);
	}
}

static void parse_env(struct ctx *x, const config_setting_t *g, int idx, struct cs_env *e,
                      struct env_aux *aux)
{
	const config_setting_t *s, *hs, *mt;
	const char *v;
	char where[64], mw[96];

	e->line = sline(g);
	e->mtls.depth = 1;
	aux->file = sfile(x, g);
	snprintf(where, sizeof(where), "environments[%d]", idx);
	check_keys(x, g, where, env_keys);

	if (get_string(x, g, "name", where, &v, &s) == 0) {
		ERR(x, g, "%s: missing required key \"name\"", where);
	} else if (v) {
		aux->name_line = sline(s);
		if (!env_name_ok(v))
			ERR(x, s, "%s.name: expected 1..%d of A-Z a-z 0-9 _ -, got \"%s\"", where,
			    ENV_NAME_MAX, v);
		else
			e->name = xstrdup(x, v);
	}

	if (get_string(x, g, "network", where, &v, &s) == 1) {
		if (!env_name_ok(v))
			ERR(x, s, "%s.network: expected 1..%d of A-Z a-z 0-9 _ -, got \"%s\"",
			    where, ENV_NAME_MAX, v);
		else
			e->network = xstrdup(x, v);
	}
	if (get_nonempty(x, g, "crt_list", where, &v, &s) == 1) {
		e->crt_list = resolve_path(x, v);
		aux->crt_list_line = sline(s);
	}
	if (get_bool(x, g, "auto_certificates", where, &e->auto_certificates, &s) == 1)
		aux->auto_line = sline(s);

	if (parse_hostnames(x, g, "hostnames", where, &e->hostnames, &aux->host_lines,
	                    &e->n_hostnames, &hs) == 0)
		ERR(x, g, "%s: missing required key \"hostnames\" (a list of DNS names)", where);
	else if (hs && config_setting_type(hs) != CONFIG_TYPE_GROUP &&
	         config_setting_is_aggregate(hs) && config_setting_length(hs) == 0)
		ERR(x, hs, "%s.hostnames: expected at least one hostname", where);

	snprintf(mw, sizeof(mw), "%s.mtls", where);
	if (get_group(x, g, "mtls", where, &mt) == 1)
		parse_mtls(x, mt, mw, e, aux);
}

struct hostref {
	const char *name;
	size_t env;
	int line;
};

static int cmp_hostref(const void *a, const void *b)
{
	const struct hostref *x = a, *y = b;
	int r = strcmp(x->name, y->name);
	if (r)
		return r;
	if (x->env != y->env)
		return x->env < y->env ? -1 : 1;
	return (x->line > y->line) - (x->line < y->line);
}

/* A hostname belongs to one environment: sorted, duplicates are neighbours, which keeps
 * this O(n log n) for the 10,000-hostname configurations of DESIGN §5. */
static void check_cross_env(struct ctx *x)
{
	struct cs_config *c = x->c;
	struct hostref *refs;
	size_t n = 0;

	for (size_t i = 0; i < c->n_envs; i++)
		n += c->envs[i].n_hostnames;
	c->n_hostnames = n;
	refs = xcalloc(x, n, sizeof(*refs));
	if (!refs)
		return;
	n = 0;
	for (size_t i = 0; i < c->n_envs; i++)
		for (size_t j = 0; j < c->envs[i].n_hostnames; j++)
			refs[n++] =
			    (struct hostref){c->envs[i].hostnames[j], i, x->aux[i].host_lines[j]};
	qsort(refs, n, sizeof(*refs), cmp_hostref);
	for (size_t i = 1; i < n; i++) {
		const struct hostref *a = &refs[i - 1], *b = &refs[i];
		if (strcmp(a->name, b->name) != 0 || a->env == b->env)
			continue;
		cs_diags_add(x->d, CS_ERROR, x->aux[b->env].file, b->line,
		             "hostname \"%s\" is in environment \"%s\" (line %d) and in "
		             "environment \"%s\" (line %d); a hostname belongs to one environment",
		             b->name, c->envs[a->env].name ? c->envs[a->env].name : "?", a->line,
		             c->envs[b->env].name ? c->envs[b->env].name : "?", b->line);
	}
	free(refs);

	for (size_t i = 0; i < c->n_envs; i++) {
		for (size_t j = 0; j < i; j++) {
			if (c->envs[i].name && c->envs[j].name &&
			    strcmp(c->envs[i].name, c->envs[j].name) == 0) {
				cs_diags_add(x->d, CS_ERROR, x->aux[i].file, x->aux[i].name_line,
				             "environment name \"%s\" is already used on line %d; "
				             "expected unique names",
				             c->envs[i].name, x->aux[j].name_line);
				break;
			}
			if (c->envs[i].crt_list && c->envs[j].crt_list && x->aux[i].crt_list_line &&
			    strcmp(c->envs[i].crt_list, c->envs[j].crt_list) == 0)
				cs_diags_add(
				    x->d, CS_ERROR, x->aux[i].file, x->aux[i].crt_list_line,
				    "crt_list \"%s\" is also the crt-list of environment "
				    "\"%s\"; expected one file per environment",
				    c->envs[i].crt_list, c->envs[j].name ? c->envs[j].name : "?");
		}
	}
}

static void parse_envs(struct ctx *x, const config_setting_t *root)
{
	const config_setting_t *l;
	int r = get_typed(x, root, "environments", "", CONFIG_TYPE_LIST,
	                  "a list ( { name = ...; hostnames = [ ... ]; }, ... )", &l);
	int n;

	if (r == 0) {
		ERR(x, (const config_setting_t *)NULL,
		    "missing required key \"environments\" (a list of environments)");
		return;
	}
	if (r < 0)
		return;
	n = config_setting_length(l);
	if (n == 0) {
		ERR(x, l, "environments: expected at least one environment");
		return;
	}
	x->c->envs = xcalloc(x, (size_t)n, sizeof(*x->c->envs));
	x->aux = xcalloc(x, (size_t)n, sizeof(*x->aux));
	if (!x->c->envs || !x->aux)
		return;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(l, (unsigned)i);
		size_t k = x->c->n_envs;
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			ERR(x, g, "environments[%d]: expected a group { name = ...; ... }, got %s",
			    i, type_name(config_setting_type(g)));
			continue;
		}
		parse_env(x, g, i, &x->c->envs[k], &x->aux[k]);
		x->c->n_envs++;
	}
	check_cross_env(x);
}

/* Defaults that depend on other settings, once everything is read. */
static void fill_defaults(struct ctx *x)
{
	struct cs_config *c = x->c;

	if (c->state_dir && !c->policy_file &&
	    asprintf(&c->policy_file, "%s/policy.pb", c->state_dir) < 0) {
		c->policy_file = NULL;
		x->oom = true;
	}
	for (size_t i = 0; i < c->n_envs; i++) {
		struct cs_env *e = &c->envs[i];
		if (!e->network)
			e->network = xstrdup(x, "default");
		if (!e->crt_list && e->name && c->state_dir &&
		    asprintf(&e->crt_list, "%s/haproxy/%s.crt-list", c->state_dir, e->name) < 0) {
			e->crt_list = NULL;
			x->oom = true;
		}
	}
}

static void parse_root(struct ctx *x, const config_setting_t *root)
{
	struct cs_config *c = x->c;
	const config_setting_t *s, *g;
	const char *v;
	int auto_env = -1;

	check_keys(x, root, "the top level", root_keys);

	if (get_nonempty(x, root, "state_dir", "", &v, &s) == 0) {
		ERR(x, (const config_setting_t *)NULL,
		    "missing required key \"state_dir\" (where certificates, keys and the "
		    "policy are kept)");
	} else if (v) {
		struct stat st;
		c->state_dir = resolve_path(x, v);
		if (c->state_dir && stat(c->state_dir, &st) == 0 && !S_ISDIR(st.st_mode))
			ERR(x, s, "state_dir: \"%s\" exists and is not a directory", c->state_dir);
	}
	if (get_nonempty(x, root, "admin_group", "", &v, &s) == 1) {
		c->admin_group = xstrdup(x, v);
		errno = 0;
		if (!getgrnam(v))
			WARN(x, s,
			     "admin_group: group \"%s\" does not exist on this system; until it "
			     "does, only root may change things",
			     v);
	}
	if (get_nonempty(x, root, "upload_ca_file", "", &v, &s) == 1) {
		c->upload_ca_file = resolve_path(x, v);
		if (c->upload_ca_file)
			check_anchor_file(x, s, "upload_ca_file", c->upload_ca_file);
	}
	if (get_nonempty(x, root, "metrics_listen", "", &v, &s) == 1 &&
	    check_addr(x, s, "metrics_listen", v, false) == 0)
		c->metrics_listen = xstrdup(x, v);

	parse_haproxy_agent(x, root);
	if (get_group(x, root, "acme", "", &g) == 1)
		parse_acme(x, g);
	if (get_group(x, root, "dns", "", &g) == 1)
		parse_dns(x, g);
	parse_envs(x, root);

	for (size_t i = 0; i < c->n_envs; i++)
		if (c->envs[i].auto_certificates) {
			auto_env = (int)i;
			break;
		}
	if (auto_env >= 0) {
		const struct cs_env *e = &c->envs[auto_env];
		const struct env_aux *a = &x->aux[auto_env];
		if (!c->acme.present && !config_setting_get_member(root, "acme"))
			cs_diags_add(x->d, CS_ERROR, a->file, a->auto_line,
			             "environment \"%s\" has auto_certificates = true but there is "
			             "no acme { directory = ...; } section",
			             e->name ? e->name : "?");
		if (!c->dns.present && !config_setting_get_member(root, "dns"))
			cs_diags_add(x->d, CS_ERROR, a->file, a->auto_line,
			             "environment \"%s\" has auto_certificates = true but there is "
			             "no dns { validation_domain = ...; update { ... }; } section",
			             e->name ? e->name : "?");
	}

	if (get_nonempty(x, root, "default_environment", "", &v, &s) == 1) {
		if (!cs_config_env_named(c, v)) {
			char names[512];
			size_t off = 0;
			names[0] = '\0';
			for (size_t i = 0; i < c->n_envs && off < sizeof(names); i++) {
				int r = snprintf(names + off, sizeof(names) - off, "%s\"%s\"",
				                 off ? ", " : "",
				                 c->envs[i].name ? c->envs[i].name : "?");
				if (r < 0)
					break;
				off += (size_t)r;
			}
			ERR(x, s,
			    "default_environment: no environment is named \"%s\"; expected "
			    "one of %s",
			    v, names[0] ? names : "(none)");
		} else {
			c->default_environment = xstrdup(x, v);
		}
	}
	fill_defaults(x);
}

/* ------------------------------------------------------------------ public */

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void cs_config_free(struct cs_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_envs; i++) {
		struct cs_env *e = &c->envs[i];
		free(e->name);
		free(e->network);
		free(e->crt_list);
		free_strv(e->hostnames, e->n_hostnames);
		free_strv(e->mtls.request_hostnames, e->mtls.n_request_hostnames);
		for (size_t j = 0; j < e->mtls.n_chains; j++) {
			free_strv(e->mtls.chains[j].hostnames, e->mtls.chains[j].n_hostnames);
			free(e->mtls.chains[j].file);
		}
		free(e->mtls.chains);
	}
	free(c->envs);
	free(c->acme.directory);
	free_strv(c->acme.contact, c->acme.n_contact);
	free_strv(c->acme.ca_identities, c->acme.n_ca_identities);
	free(c->acme.server_ca_file);
	free(c->acme.eab_kid);
	free(c->acme.eab_hmac_key_file);
	free(c->acme.profile);
	free(c->dns.resolver);
	free(c->dns.validation_domain);
	free(c->dns.update_server);
	free(c->dns.tsig_name);
	free(c->dns.tsig_algorithm);
	free(c->dns.tsig_secret_file);
	free_strv(c->dns.authoritative, c->dns.n_authoritative);
	free(c->path);
	free(c->state_dir);
	free(c->admin_group);
	free(c->upload_ca_file);
	free(c->default_environment);
	free(c->metrics_listen);
	free(c->runtime_api);
	free(c->policy_file);
	free(c);
}

static void free_aux(struct ctx *x)
{
	if (x->aux && x->c) {
		for (size_t i = 0; i < x->c->n_envs; i++) {
			struct env_aux *a = &x->aux[i];
			free(a->host_lines);
			free(a->req_lines);
			if (a->chain_host_lines)
				for (size_t j = 0; j < x->c->envs[i].mtls.n_chains; j++)
					free(a->chain_host_lines[j]);
			free(a->chain_host_lines);
		}
	}
	free(x->aux);
	free_strv(x->pem_seen, x->n_pem_seen);
	free(x->dir);
}

struct diag_key {
	struct cs_diag diag;
	size_t file_rank, seq;
};

static int cmp_diag_key(const void *a, const void *b)
{
	const struct diag_key *x = a, *y = b;

	if (x->file_rank != y->file_rank)
		return x->file_rank < y->file_rank ? -1 : 1;
	if (x->diag.line != y->diag.line)
		return x->diag.line < y->diag.line ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Diagnostics d->v[from..] in reading order: by file (in order of first mention), then
 * line; the checks themselves run in whatever order suits them. */
static void sort_diags(struct cs_diags *d, size_t from)
{
	size_t n = d->n - from;
	struct diag_key *k;

	if (n < 2 || !(k = calloc(n, sizeof(*k))))
		return;
	for (size_t i = 0; i < n; i++) {
		k[i].diag = d->v[from + i];
		k[i].seq = i;
		k[i].file_rank = i;
		for (size_t j = 0; j < i; j++)
			if (strcmp(k[j].diag.file, k[i].diag.file) == 0) {
				k[i].file_rank = k[j].file_rank;
				break;
			}
	}
	qsort(k, n, sizeof(*k), cmp_diag_key);
	for (size_t i = 0; i < n; i++)
		d->v[from + i] = k[i].diag;
	free(k);
}

int cs_config_load(const char *path, struct cs_config **out, struct cs_diags *d)
{
	size_t diags_before = d->n;
	struct ctx x = {.path = path, .d = d};
	config_t lc;
	size_t errors_before = d->errors;
	int fd, ret = CS_CONFIG_EINVALID;
	char *slash;

	*out = NULL;
	config_init(&lc);
	/* libconfig says only "file I/O error"; open it first for the reason. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cs_diags_add(d, CS_ERROR, path, 0, "cannot read the configuration: %s",
		             strerror(errno));
		ret = CS_CONFIG_EUNREADABLE;
		goto out;
	}
	close(fd);
	x.dir = strdup(path);
	if (!x.dir) {
		cs_diags_add(d, CS_ERROR, path, 0, "out of memory");
		goto out;
	}
	slash = strrchr(x.dir, '/');
	if (slash) {
		*slash = '\0';
		if (x.dir[0] == '\0') {
			free(x.dir);
			x.dir = strdup("/");
		}
	} else {
		free(x.dir);
		x.dir = NULL;
	}
	config_set_include_dir(&lc, x.dir ? x.dir : ".");
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			cs_diags_add(d, CS_ERROR, path, 0, "cannot read the configuration");
			ret = CS_CONFIG_EUNREADABLE;
		} else {
			const char *f = config_error_file(&lc);
			cs_diags_add(d, CS_ERROR, f ? f : path, config_error_line(&lc),
			             "syntax error: %s", config_error_text(&lc));
		}
		goto out;
	}
	x.c = calloc(1, sizeof(*x.c));
	if (!x.c || !(x.c->path = strdup(path))) {
		cs_diags_add(d, CS_ERROR, path, 0, "out of memory");
		goto out;
	}
	parse_root(&x, config_root_setting(&lc));
	if (x.oom)
		cs_diags_add(d, CS_ERROR, path, 0, "out of memory");
	if (d->errors == errors_before)
		ret = 0;
out:
	sort_diags(d, diags_before);
	free_aux(&x);
	if (ret == 0)
		*out = x.c;
	else
		cs_config_free(x.c);
	config_destroy(&lc);
	return ret;
}

const struct cs_env *cs_config_env_named(const struct cs_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_envs; i++)
		if (c->envs[i].name && strcmp(c->envs[i].name, name) == 0)
			return &c->envs[i];
	return NULL;
}

const struct cs_env *cs_config_env_of(const struct cs_config *c, const char *hostname)
{
	const char *dot;
	size_t rest;

	for (size_t i = 0; i < c->n_envs; i++)
		for (size_t j = 0; j < c->envs[i].n_hostnames; j++)
			if (strcasecmp(c->envs[i].hostnames[j], hostname) == 0)
				return &c->envs[i];
	/* "*.example.com" matches exactly one label (DESIGN §2.5). */
	dot = strchr(hostname, '.');
	if (!dot || dot == hostname)
		return NULL;
	rest = strlen(dot);
	for (size_t i = 0; i < c->n_envs; i++)
		for (size_t j = 0; j < c->envs[i].n_hostnames; j++) {
			const char *h = c->envs[i].hostnames[j];
			if (h[0] == '*' && strlen(h + 1) == rest && strcasecmp(h + 1, dot) == 0)
				return &c->envs[i];
		}
	return NULL;
}
