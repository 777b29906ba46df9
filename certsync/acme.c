#include "acme.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "afile.h"
#include "jws.h"
#include "log.h"
#include "x509u.h"

#include "banned.h"

#define PROBLEM_PREFIX "urn:ietf:params:acme:error:"
/* Exponential backoff while polling without Retry-After: 1, 2, 4 … s, at most this. */
#define BACKOFF_CAP_S 30
/* Far more than any key file or EAB key needs. */
#define KEYFILE_MAX (64 * 1024)

/* ---------------------------------------------------------------------------------------
 * the client */

struct acme_client {
	CURL *curl;
	char curl_err[CURL_ERROR_SIZE];
	char *directory_url, *user_agent;
	STACK_OF(X509) * extra_ca; /* server_ca_file */
	long connect_timeout_ms, timeout_ms, max_wait_s;
	size_t max_body;

	struct acme_directory dir;
	bool have_dir;
	char *nonce; /* one-slot cache: the latest Replay-Nonce */

	EVP_PKEY *key; /* borrowed */
	char *kid;     /* account URL */
	char thumbprint[JWS_THUMBPRINT_LEN];

	char err[1024];
	struct acme_problem prob;
	bool has_prob;
};

/* One HTTP response. Headers are those of the final response (a 1xx resets them). */
struct resp {
	long status;
	char *body;
	size_t len, cap, max;
	bool too_big;
	char *location, *nonce, *retry_after, *content_type;
	char **alternates;
	size_t n_alternates;
	bool oom;
};

static void resp_free(struct resp *r)
{
	size_t i;

	free(r->body);
	free(r->location);
	free(r->nonce);
	free(r->retry_after);
	free(r->content_type);
	for (i = 0; i < r->n_alternates; i++)
		free(r->alternates[i]);
	free(r->alternates);
	memset(r, 0, sizeof(*r));
}

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

__attribute__((format(printf, 2, 3))) static int seterr(struct acme_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return 0;
}

/* Copies s into out (outlen > 0), control characters replaced, so that server text can
 * be shown and logged safely. */
static void copy_clean(char *out, size_t outlen, const char *s)
{
	size_t i = 0;

	for (; s && *s && i + 1 < outlen; s++)
		out[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	out[i] = '\0';
}

const char *acme_errstr(const struct acme_client *c)
{
	return c->err;
}

const struct acme_problem *acme_get0_problem(const struct acme_client *c)
{
	return c->has_prob ? &c->prob : NULL;
}

const char *acme_problem_short(const struct acme_problem *p)
{
	size_t n = strlen(PROBLEM_PREFIX);

	return strncmp(p->type, PROBLEM_PREFIX, n) == 0 ? p->type + n : p->type;
}

static void directory_clear(struct acme_directory *d)
{
	free(d->new_nonce);
	free(d->new_account);
	free(d->new_order);
	free(d->revoke_cert);
	free(d->key_change);
	free(d->renewal_info);
	free(d->terms_of_service);
	free(d->website);
	strv_free(d->caa_identities, d->n_caa_identities);
	strv_free(d->profiles, d->n_profiles);
	strv_free(d->profile_descriptions, d->n_profiles);
	memset(d, 0, sizeof(*d));
}

int acme_client_new(const struct acme_opts *o, struct acme_client **out, char *err, size_t errlen)
{
	struct acme_client *c = NULL;
	uint8_t *pem = NULL;
	size_t pemlen = 0;
	char why[256];
	int r, ret = -ACME_E_NOMEM;

	*out = NULL;
	if (!o->directory_url || strncmp(o->directory_url, "https://", 8) != 0) {
		snprintf(err, errlen, "the ACME directory must be an https:// URL");
		return -ACME_E_USAGE;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->directory_url = strdup(o->directory_url);
	c->user_agent = strdup(o->user_agent ? o->user_agent : "edgetls-certsync");
	c->curl = curl_easy_init();
	if (!c->directory_url || !c->user_agent || !c->curl)
		goto fail;
	c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	c->max_body = o->max_body > 0 ? o->max_body : ACME_BODY_MAX;
	c->max_wait_s = o->max_wait_s > 0 ? o->max_wait_s : 3600;
	if (o->server_ca_file && *o->server_ca_file) {
		/* Loaded once here, so a bad file is reported at start and not per connection. */
		if (afile_read(o->server_ca_file, 4 * 1024 * 1024, &pem, &pemlen) < 0) {
			snprintf(err, errlen, "server_ca_file %s: %s", o->server_ca_file,
			         strerror(errno));
			ret = -ACME_E_IO;
			goto fail;
		}
		r = x509u_load_certs_pem(pem, pemlen, &c->extra_ca, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "server_ca_file %s: %s", o->server_ca_file, why);
			ret = -ACME_E_IO;
			goto fail;
		}
	}
	free(pem);
	*out = c;
	return 0;
fail:
	if (ret == -ACME_E_NOMEM)
		snprintf(err, errlen, "out of memory");
	free(pem);
	acme_client_free(c);
	return ret;
}

void acme_client_free(struct acme_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	sk_X509_pop_free(c->extra_ca, X509_free);
	directory_clear(&c->dir);
	free(c->directory_url);
	free(c->user_agent);
	free(c->nonce);
	free(c->kid);
	free(c);
}

/* ---------------------------------------------------------------------------------------
 * HTTP */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct resp *r = ud;
	size_t n = size * nmemb;

	if (n > r->max - r->len) {
		r->too_big = true;
		return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *b;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->max + 1)
			cap = r->max + 1;
		b = realloc(r->body, cap);
		if (!b) {
			r->oom = true;
			return 0;
		}
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* name: value; the value trimmed, or NULL when the line is not this header. */
static char *header_value(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name), b, e;
	char *v;

	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return NULL;
	b = nl + 1;
	e = len;
	while (b < e && (line[b] == ' ' || line[b] == '\t'))
		b++;
	while (e > b && (line[e - 1] == '\r' || line[e - 1] == '\n' || line[e - 1] == ' ' ||
	                 line[e - 1] == '\t'))
		e--;
	v = malloc(e - b + 1);
	if (!v)
		return NULL;
	memcpy(v, line + b, e - b);
	v[e - b] = '\0';
	return v;
}

static void set_header(char **slot, char *v)
{
	free(*slot);
	*slot = v;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
	struct resp *r = ud;
	size_t len = size * nitems;
	char *v;
	size_t i;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 1xx): forget the headers of the previous one. */
		set_header(&r->location, NULL);
		set_header(&r->nonce, NULL);
		set_header(&r->retry_after, NULL);
		set_header(&r->content_type, NULL);
		for (i = 0; i < r->n_alternates; i++)
			free(r->alternates[i]);
		r->n_alternates = 0;
		return len;
	}
	if ((v = header_value(line, len, "Location")))
		set_header(&r->location, v);
	else if ((v = header_value(line, len, "Replay-Nonce")))
		set_header(&r->nonce, v);
	else if ((v = header_value(line, len, "Retry-After")))
		set_header(&r->retry_after, v);
	else if ((v = header_value(line, len, "Content-Type")))
		set_header(&r->content_type, v);
	else if ((v = header_value(line, len, "Link"))) {
		if (acme_link_alternates(v, &r->alternates, &r->n_alternates) < 0)
			r->oom = true;
		free(v);
	}
	return len;
}

static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *ud)
{
	struct acme_client *c = ud;
	X509_STORE *st = SSL_CTX_get_cert_store(sslctx);
	int i;

	(void)curl;
	for (i = 0; i < sk_X509_num(c->extra_ca); i++)
		if (!X509_STORE_add_cert(st, sk_X509_value(c->extra_ca, i))) {
			ERR_clear_error();
			return CURLE_SSL_CERTPROBLEM;
		}
	return CURLE_OK;
}

/* One request. method "GET", "HEAD" or "POST" (body: a JWS). The response is in *r,
 * whatever its status. 0 or -ACME_E_NET / -ACME_E_NOMEM (c->err set). */
static int http(struct acme_client *c, const char *method, const char *url, const char *body,
                const char *accept, struct resp *r)
{
	struct curl_slist *hdrs = NULL, *t;
	char qurl[512];
	CURLcode cc;
	int ret = -ACME_E_NET;

	resp_free(r);
	r->max = c->max_body;
	curl_easy_reset(c->curl); /* keeps the connection cache */
	c->curl_err[0] = '\0';
	if (accept) {
		char h[128];
		snprintf(h, sizeof(h), "Accept: %s", accept);
		if (!(t = curl_slist_append(hdrs, h)))
			goto oom;
		hdrs = t;
	}
	if (body) {
		if (!(t = curl_slist_append(hdrs, "Content-Type: application/jose+json")))
			goto oom;
		hdrs = t;
	}
	/* RFC 8555 §6.1: TLS only; a redirect is never followed (a signed url would not match). */
	if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK)
		goto oom;
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	if (c->extra_ca) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_DATA, c);
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
	else if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	cc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	log_msg(LOG_DEBUG, "event=acme_http method=%s url=%s status=%ld curl=%d", method,
	        log_quote(qurl, sizeof(qurl), url, strlen(url)), r->status, (int)cc);
	if (r->oom)
		goto oom;
	if (r->too_big) {
		seterr(c, "%s %s: the response is larger than %zu bytes", method, url, r->max);
		goto out;
	}
	if (cc != CURLE_OK) {
		seterr(c, "%s %s: %s", method, url,
		       c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc));
		goto out;
	}
	ret = 0;
	goto out;
oom:
	seterr(c, "%s %s: out of memory", method, url);
	ret = -ACME_E_NOMEM;
out:
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return ret;
}

/* Keeps the response's Replay-Nonce for the next request (RFC 8555 §7.2). */
static void take_nonce(struct acme_client *c, struct resp *r)
{
	if (r->nonce) {
		free(c->nonce);
		c->nonce = r->nonce;
		r->nonce = NULL;
	}
}

static long retry_after_of(const struct resp *r)
{
	long s;

	if (r->retry_after && acme_retry_after_parse(r->retry_after, time(NULL), &s) == 0)
		return s;
	return -1;
}

/* Fills p from a problem document (RFC 7807); 0, or -1 when json is not one. */
static int parse_problem(const json_t *doc, struct acme_problem *p)
{
	const char *type = json_string_value(json_object_get(doc, "type"));
	const char *detail = json_string_value(json_object_get(doc, "detail"));
	json_t *subs = json_object_get(doc, "subproblems"), *sp;
	size_t i, used;

	if (!json_is_object(doc) || !type)
		return -1;
	copy_clean(p->type, sizeof(p->type), type);
	copy_clean(p->detail, sizeof(p->detail), detail ? detail : "");
	/* Per-identifier failures (Boulder's CAA recheck at finalize, RFC 8555 §6.7.1). */
	json_array_foreach(subs, i, sp)
	{
		const char *st = json_string_value(json_object_get(sp, "type"));
		const char *sd = json_string_value(json_object_get(sp, "detail"));
		const char *id =
		    json_string_value(json_object_get(json_object_get(sp, "identifier"), "value"));
		char one[512], clean[512];
		used = strlen(p->detail);
		if (used + 3 >= sizeof(p->detail))
			break;
		snprintf(one, sizeof(one), "; %s: %s %s", id ? id : "?",
		         st && strncmp(st, PROBLEM_PREFIX, strlen(PROBLEM_PREFIX)) == 0
		             ? st + strlen(PROBLEM_PREFIX)
		             : (st ? st : "?"),
		         sd ? sd : "");
		copy_clean(clean, sizeof(clean), one);
		snprintf(p->detail + used, sizeof(p->detail) - used, "%s", clean);
	}
	return 0;
}

/* An error status: the problem into c->prob. Returns -ACME_E_PROBLEM, or -ACME_E_PROTO
 * when the body is not a problem document. */
static int response_problem(struct acme_client *c, const char *method, const char *url,
                            const struct resp *r)
{
	json_t *doc = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	int ret;

	memset(&c->prob, 0, sizeof(c->prob));
	c->prob.http_status = (int)r->status;
	c->prob.retry_after = retry_after_of(r);
	if (doc && parse_problem(doc, &c->prob) == 0) {
		c->has_prob = true;
		seterr(c, "%s %s: HTTP %ld %s: %s", method, url, r->status, c->prob.type,
		       c->prob.detail);
		ret = -ACME_E_PROBLEM;
	} else {
		seterr(c, "%s %s: HTTP %ld without a problem document", method, url, r->status);
		ret = -ACME_E_PROTO;
	}
	json_decref(doc);
	return ret;
}

static bool problem_is(const struct acme_client *c, const char *shortname)
{
	return c->has_prob && strcmp(acme_problem_short(&c->prob), shortname) == 0;
}

static void clear_error(struct acme_client *c)
{
	c->err[0] = '\0';
	c->has_prob = false;
}

/* An unauthenticated GET (directory, renewalInfo). Non-2xx: the problem. */
static int get(struct acme_client *c, const char *url, struct resp *r)
{
	int rc = http(c, "GET", url, NULL, "application/json", r);

	if (rc < 0)
		return rc;
	take_nonce(c, r);
	if (r->status < 200 || r->status > 299)
		return response_problem(c, "GET", url, r);
	return 0;
}

static int new_nonce(struct acme_client *c)
{
	struct resp r = {0};
	int rc;

	rc = http(c, "HEAD", c->dir.new_nonce, NULL, NULL, &r);
	if (rc == 0 && (r.status < 200 || r.status > 299)) {
		seterr(c, "HEAD %s: HTTP %ld", c->dir.new_nonce, r.status);
		rc = -ACME_E_PROTO;
	} else if (rc == 0 && !r.nonce) {
		seterr(c, "HEAD %s: no Replay-Nonce", c->dir.new_nonce);
		rc = -ACME_E_PROTO;
	}
	if (rc == 0)
		take_nonce(c, &r);
	resp_free(&r);
	return rc;
}

/*
 * A signed POST: payload NULL is POST-as-GET. With jwk the account key's JWK goes into the
 * header (newAccount), else its kid. badNonce is retried with the nonce of the error
 * response (RFC 8555 §6.5), a fresh one from newNonce when it carried none. Non-2xx
 * answers: the problem.
 */
static int post(struct acme_client *c, const char *url, const char *payload, bool jwk,
                const char *accept, struct resp *r)
{
	char *body = NULL;
	int attempt, rc;

	if (!c->key || (!jwk && !c->kid)) {
		seterr(c, "POST %s: no account (acme_account_register first)", url);
		return -ACME_E_USAGE;
	}
	for (attempt = 0;; attempt++) {
		if (!c->nonce && (rc = new_nonce(c)) < 0)
			return rc;
		body = jws_sign_request(c->key, jwk ? NULL : c->kid, c->nonce, url, payload,
		                        payload ? strlen(payload) : 0);
		/* A nonce is good for one request, whatever happens next. */
		free(c->nonce);
		c->nonce = NULL;
		if (!body) {
			seterr(c, "POST %s: cannot sign the request", url);
			return -ACME_E_CRYPTO;
		}
		rc = http(c, "POST", url, body, accept, r);
		free(body);
		if (rc < 0)
			return rc;
		take_nonce(c, r);
		if (r->status >= 200 && r->status <= 299)
			return 0;
		rc = response_problem(c, "POST", url, r);
		if (rc == -ACME_E_PROBLEM && problem_is(c, "badNonce") &&
		    attempt < ACME_BADNONCE_RETRIES) {
			log_msg(LOG_INFO, "event=acme_bad_nonce url=%s attempt=%d", url,
			        attempt + 1);
			continue;
		}
		return rc;
	}
}

/* ---------------------------------------------------------------------------------------
 * JSON helpers */

/* *out = a copy of the string member k of o, or NULL when absent or not a string.
 * -1 only on allocation failure. */
static int getstr(const json_t *o, const char *k, char **out)
{
	const char *s = json_string_value(json_object_get(o, k));

	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -1;
}

/* A JSON array of strings into a string vector (non-strings skipped). */
static int getstrv(const json_t *a, char ***out, size_t *n)
{
	size_t i, k = 0;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (!json_is_array(a) || json_array_size(a) == 0)
		return 0;
	*out = calloc(json_array_size(a), sizeof(char *));
	if (!*out)
		return -1;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			continue;
		if (!((*out)[k] = strdup(json_string_value(v))))
			return -1;
		*n = ++k;
	}
	return 0;
}

static json_t *parse_body(struct acme_client *c, const char *url, const struct resp *r)
{
	json_error_t je;
	json_t *j = r->body ? json_loadb(r->body, r->len, 0, &je) : NULL;

	if (!json_is_object(j)) {
		seterr(c, "%s: the answer is not a JSON object", url);
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char *const status_names[] = {
    [ACME_ST_UNKNOWN] = "unknown",
    [ACME_ST_PENDING] = "pending",
    [ACME_ST_READY] = "ready",
    [ACME_ST_PROCESSING] = "processing",
    [ACME_ST_VALID] = "valid",
    [ACME_ST_INVALID] = "invalid",
    [ACME_ST_DEACTIVATED] = "deactivated",
    [ACME_ST_EXPIRED] = "expired",
    [ACME_ST_REVOKED] = "revoked",
};

const char *acme_status_name(enum acme_status s)
{
	if ((size_t)s < sizeof(status_names) / sizeof(status_names[0]))
		return status_names[s];
	return "unknown";
}

static enum acme_status status_of(const json_t *o)
{
	const char *s = json_string_value(json_object_get(o, "status"));
	size_t i;

	for (i = 1; s && i < sizeof(status_names) / sizeof(status_names[0]); i++)
		if (strcmp(s, status_names[i]) == 0)
			return (enum acme_status)i;
	return ACME_ST_UNKNOWN;
}

/* ---------------------------------------------------------------------------------------
 * directory */

int acme_directory_fetch(struct acme_client *c)
{
	struct acme_directory d = {0};
	struct resp r = {0};
	json_t *j = NULL, *meta, *profiles, *v;
	const char *name;
	size_t i;
	int rc;

	clear_error(c);
	if (c->have_dir)
		return 0;
	rc = get(c, c->directory_url, &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!(j = parse_body(c, c->directory_url, &r)))
		goto out;
	meta = json_object_get(j, "meta");
	rc = -ACME_E_NOMEM;
	if (getstr(j, "newNonce", &d.new_nonce) < 0 ||
	    getstr(j, "newAccount", &d.new_account) < 0 ||
	    getstr(j, "newOrder", &d.new_order) < 0 ||
	    getstr(j, "revokeCert", &d.revoke_cert) < 0 ||
	    getstr(j, "keyChange", &d.key_change) < 0 ||
	    getstr(j, "renewalInfo", &d.renewal_info) < 0 ||
	    getstr(meta, "termsOfService", &d.terms_of_service) < 0 ||
	    getstr(meta, "website", &d.website) < 0 ||
	    getstrv(json_object_get(meta, "caaIdentities"), &d.caa_identities,
	            &d.n_caa_identities) < 0)
		goto out;
	d.external_account_required =
	    json_is_true(json_object_get(meta, "externalAccountRequired"));
	profiles = json_object_get(meta, "profiles");
	if (json_is_object(profiles)) {
		size_t n = json_object_size(profiles);
		d.has_profiles = true;
		if (n) {
			d.profiles = calloc(n, sizeof(char *));
			d.profile_descriptions = calloc(n, sizeof(char *));
			if (!d.profiles || !d.profile_descriptions)
				goto out;
		}
		i = 0;
		json_object_foreach(profiles, name, v)
		{
			const char *desc = json_string_value(v);
			d.profiles[i] = strdup(name);
			d.profile_descriptions[i] = strdup(desc ? desc : "");
			d.n_profiles = ++i;
			if (!d.profiles[i - 1] || !d.profile_descriptions[i - 1])
				goto out;
		}
	}
	if (!d.new_nonce || !d.new_account || !d.new_order) {
		seterr(c, "%s: the directory lacks newNonce, newAccount or newOrder",
		       c->directory_url);
		rc = -ACME_E_PROTO;
		goto out;
	}
	c->dir = d;
	memset(&d, 0, sizeof(d));
	c->have_dir = true;
	rc = 0;
out:
	if (rc == -ACME_E_NOMEM)
		seterr(c, "out of memory");
	directory_clear(&d);
	json_decref(j);
	resp_free(&r);
	return rc;
}

const struct acme_directory *acme_get0_directory(const struct acme_client *c)
{
	return c->have_dir ? &c->dir : NULL;
}

/* ---------------------------------------------------------------------------------------
 * account */

static bool is_p256(EVP_PKEY *k)
{
	json_t *jwk = jws_jwk_get1(k);
	bool ok = jwk != NULL;

	json_decref(jwk);
	return ok;
}

int acme_account_key_load(const char *path, EVP_PKEY **out, bool *created, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	uint8_t *pem = NULL;
	size_t pemlen = 0;
	char *mem = NULL, why[256];
	long memlen;
	int r, attempt, ret = -ACME_E_IO;

	*out = NULL;
	*created = false;
	for (attempt = 0; attempt < 2; attempt++) {
		if (afile_read(path, KEYFILE_MAX, &pem, &pemlen) == 0) {
			r = x509u_load_key_pem(pem, pemlen, &key, why, sizeof(why));
			OPENSSL_cleanse(pem, pemlen);
			free(pem);
			pem = NULL;
			if (r < 0) {
				snprintf(err, errlen, "account key %s: %s", path, why);
				goto out;
			}
			if (!is_p256(key)) {
				snprintf(err, errlen, "account key %s: not an EC P-256 key (ES256)",
				         path);
				goto out;
			}
			*out = key;
			key = NULL;
			ret = 0;
			goto out;
		}
		if (errno != ENOENT) {
			snprintf(err, errlen, "account key %s: %s", path, strerror(errno));
			goto out;
		}
		/* None yet: a new one, written whole, 0600, never over an existing file. */
		ret = -ACME_E_CRYPTO;
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		bio = BIO_new(BIO_s_secmem());
		if (!key || !bio ||
		    !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ||
		    (memlen = BIO_get_mem_data(bio, &mem)) <= 0) {
			snprintf(err, errlen, "account key: cannot generate an EC P-256 key");
			goto out;
		}
		ret = -ACME_E_IO;
		if (afile_create(path, mem, (size_t)memlen, 0600) == 0) {
			*out = key;
			key = NULL;
			*created = true;
			ret = 0;
			goto out;
		}
		if (errno != EEXIST) {
			snprintf(err, errlen, "account key %s: cannot create: %s", path,
			         strerror(errno));
			goto out;
		}
		/* Someone else created it meanwhile: theirs wins, load it. */
		EVP_PKEY_free(key);
		key = NULL;
		BIO_free(bio);
		bio = NULL;
	}
	snprintf(err, errlen, "account key %s: cannot load or create", path);
out:
	BIO_free(bio); /* secure memory: cleared on free */
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ret;
}

int acme_eab_key_load(const char *path, uint8_t **key, size_t *keylen, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0, b = 0, e, i;
	int ret = -ACME_E_IO;

	*key = NULL;
	*keylen = 0;
	if (afile_read(path, 4096, &buf, &len) < 0) {
		snprintf(err, errlen, "EAB key %s: %s", path, strerror(errno));
		return -ACME_E_IO;
	}
	e = len;
	while (b < e && isspace(buf[b]))
		b++;
	while (e > b && (isspace(buf[e - 1]) || buf[e - 1] == '='))
		e--;
	for (i = b; i < e; i++) {
		if (buf[i] == '+')
			buf[i] = '-';
		else if (buf[i] == '/')
			buf[i] = '_';
	}
	if (e == b || jws_b64u_decode((const char *)buf + b, e - b, key, keylen) < 0) {
		snprintf(err, errlen, "EAB key %s: not a base64url key", path);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(buf, len);
	free(buf);
	return ret;
}

static int set_account(struct acme_client *c, EVP_PKEY *key, const char *url)
{
	char *kid = strdup(url);

	if (!kid)
		return -ACME_E_NOMEM;
	if (jws_key_thumbprint(key, c->thumbprint) < 0) {
		free(kid);
		seterr(c, "the account key is not an EC P-256 key");
		return -ACME_E_USAGE;
	}
	free(c->kid);
	c->kid = kid;
	c->key = key;
	return 0;
}

int acme_account_register(struct acme_client *c, EVP_PKEY *key, const struct acme_account_req *req,
                          bool *created)
{
	json_t *pl = NULL, *contact = NULL, *eab = NULL, *acct = NULL;
	struct resp r = {0};
	char *payload = NULL;
	size_t i;
	int rc;

	if (created)
		*created = false;
	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	if (!is_p256(key)) {
		seterr(c, "the account key is not an EC P-256 key");
		return -ACME_E_USAGE;
	}
	rc = -ACME_E_NOMEM;
	pl = json_object();
	if (!pl)
		goto out;
	if (req->only_return_existing) {
		if (json_object_set_new(pl, "onlyReturnExisting", json_true()) != 0)
			goto out;
	} else {
		if (json_object_set_new(pl, "termsOfServiceAgreed", json_true()) != 0)
			goto out;
		if (req->n_contact) {
			contact = json_array();
			if (!contact)
				goto out;
			for (i = 0; i < req->n_contact; i++)
				if (json_array_append_new(contact, json_string(req->contact[i])) !=
				    0)
					goto out;
			if (json_object_set(pl, "contact", contact) != 0)
				goto out;
		}
		if (req->eab_kid) {
			eab = jws_eab_get1(key, req->eab_kid, req->eab_key, req->eab_keylen,
			                   c->dir.new_account);
			if (!eab) {
				seterr(c, "cannot build the external account binding");
				rc = -ACME_E_CRYPTO;
				goto out;
			}
			if (json_object_set(pl, "externalAccountBinding", eab) != 0)
				goto out;
		}
	}
	payload = json_dumps(pl, JSON_COMPACT);
	if (!payload)
		goto out;
	/* The key is needed for signing before the account URL is known. */
	c->key = key;
	rc = post(c, c->dir.new_account, payload, true, NULL, &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!r.location) {
		seterr(c, "POST %s: HTTP %ld without Location", c->dir.new_account, r.status);
		goto out;
	}
	if ((acct = parse_body(c, c->dir.new_account, &r)) && status_of(acct) != ACME_ST_VALID) {
		seterr(c, "account %s is %s", r.location,
		       json_string_value(json_object_get(acct, "status"))
		           ? json_string_value(json_object_get(acct, "status"))
		           : "without status");
		goto out;
	}
	if ((rc = set_account(c, key, r.location)) < 0)
		goto out;
	if (created)
		*created = r.status == 201;
	clear_error(c);
	rc = 0;
out:
	if (rc == -ACME_E_NOMEM)
		seterr(c, "out of memory");
	if (rc < 0 && !c->kid)
		c->key = NULL;
	free(payload);
	json_decref(acct);
	json_decref(eab);
	json_decref(contact);
	json_decref(pl);
	resp_free(&r);
	return rc;
}

int acme_account_resume(struct acme_client *c, EVP_PKEY *key, const char *account_url)
{
	clear_error(c);
	if (!account_url || !*account_url) {
		seterr(c, "no account URL");
		return -ACME_E_USAGE;
	}
	return set_account(c, key, account_url);
}

const char *acme_get0_account_url(const struct acme_client *c)
{
	return c->kid;
}

/* ---------------------------------------------------------------------------------------
 * orders */

char *acme_new_order_payload(const char *const *names, size_t n, const char *profile,
                             const char *replaces)
{
	json_t *pl = json_object(), *ids = json_array(), *id;
	char *ret = NULL;
	size_t i;

	if (!pl || !ids || n == 0)
		goto out;
	for (i = 0; i < n; i++) {
		id = json_pack("{s:s, s:s}", "type", "dns", "value", names[i]);
		if (!id || json_array_append_new(ids, id) != 0)
			goto out;
	}
	if (json_object_set(pl, "identifiers", ids) != 0)
		goto out;
	if (profile && json_object_set_new(pl, "profile", json_string(profile)) != 0)
		goto out;
	if (replaces && json_object_set_new(pl, "replaces", json_string(replaces)) != 0)
		goto out;
	ret = json_dumps(pl, JSON_COMPACT);
out:
	json_decref(ids);
	json_decref(pl);
	return ret;
}

void acme_order_free(struct acme_order *o)
{
	free(o->url);
	free(o->expires);
	strv_free(o->identifiers, o->n_identifiers);
	strv_free(o->authorizations, o->n_authorizations);
	free(o->finalize);
	free(o->certificate);
	free(o->profile);
	free(o->replaces);
	memset(o, 0, sizeof(*o));
}

/* The order object j into *o (url taken over). 0 or -ACME_E_*. */
static int parse_order(struct acme_client *c, const json_t *j, char *url, long retry_after,
                       struct acme_order *o)
{
	struct acme_order n = {0};
	json_t *ids, *v, *err;
	size_t i, k = 0;
	int rc = -ACME_E_NOMEM;

	n.url = url;
	n.status = status_of(j);
	n.retry_after = retry_after;
	if (getstr(j, "expires", &n.expires) < 0 || getstr(j, "finalize", &n.finalize) < 0 ||
	    getstr(j, "certificate", &n.certificate) < 0 || getstr(j, "profile", &n.profile) < 0 ||
	    getstr(j, "replaces", &n.replaces) < 0 ||
	    getstrv(json_object_get(j, "authorizations"), &n.authorizations, &n.n_authorizations) <
	        0)
		goto out;
	ids = json_object_get(j, "identifiers");
	if (json_array_size(ids)) {
		n.identifiers = calloc(json_array_size(ids), sizeof(char *));
		if (!n.identifiers)
			goto out;
		json_array_foreach(ids, i, v)
		{
			const char *val = json_string_value(json_object_get(v, "value"));
			if (!val)
				continue;
			if (!(n.identifiers[k] = strdup(val)))
				goto out;
			n.n_identifiers = ++k;
		}
	}
	err = json_object_get(j, "error");
	if (json_is_object(err) && parse_problem(err, &n.error) == 0) {
		n.has_error = true;
		n.error.retry_after = -1;
	}
	rc = -ACME_E_PROTO;
	if (n.status == ACME_ST_UNKNOWN || !n.finalize) {
		seterr(c, "%s: not an order object (status or finalize missing)", url);
		goto out;
	}
	if (n.status == ACME_ST_VALID && !n.certificate) {
		seterr(c, "%s: a valid order without certificate URL", url);
		goto out;
	}
	acme_order_free(o);
	*o = n;
	return 0;
out:
	if (rc == -ACME_E_NOMEM)
		seterr(c, "out of memory");
	n.url = NULL; /* the caller's on failure */
	acme_order_free(&n);
	return rc;
}

static bool has_profile(const struct acme_directory *d, const char *p)
{
	size_t i;

	for (i = 0; i < d->n_profiles; i++)
		if (strcmp(d->profiles[i], p) == 0)
			return true;
	return false;
}

int acme_order_new(struct acme_client *c, const char *const *names, size_t n, const char *profile,
                   const char *replaces, struct acme_order *out)
{
	struct resp r = {0};
	json_t *j = NULL;
	char *payload = NULL, *url = NULL;
	int rc;

	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	if (n == 0) {
		seterr(c, "newOrder without identifiers");
		return -ACME_E_USAGE;
	}
	/* Checked here: an unknown profile would be refused (invalidProfile) after counting
	 * against the CA's order rate limit. */
	if (profile && !has_profile(&c->dir, profile)) {
		seterr(c, "the CA does not offer the profile \"%s\"%s", profile,
		       c->dir.has_profiles ? "" : " (its directory lists no profiles)");
		return -ACME_E_UNSUPPORTED;
	}
	if (!c->dir.renewal_info)
		replaces = NULL; /* RFC 9773 §5 */
	payload = acme_new_order_payload(names, n, profile, replaces);
	if (!payload) {
		seterr(c, "out of memory");
		return -ACME_E_NOMEM;
	}
	rc = post(c, c->dir.new_order, payload, false, NULL, &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!r.location) {
		seterr(c, "POST %s: HTTP %ld without Location", c->dir.new_order, r.status);
		goto out;
	}
	if (!(j = parse_body(c, c->dir.new_order, &r)))
		goto out;
	url = r.location;
	r.location = NULL;
	rc = parse_order(c, j, url, retry_after_of(&r), out);
	if (rc < 0)
		free(url);
	else
		clear_error(c);
out:
	json_decref(j);
	free(payload);
	resp_free(&r);
	return rc;
}

int acme_order_fetch(struct acme_client *c, const char *url, struct acme_order *out)
{
	struct resp r = {0};
	json_t *j = NULL;
	char *u = NULL;
	int rc;

	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	rc = post(c, url, NULL, false, NULL, &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!(j = parse_body(c, url, &r)))
		goto out;
	rc = -ACME_E_NOMEM;
	if (!(u = strdup(url)))
		goto out;
	rc = parse_order(c, j, u, retry_after_of(&r), out);
	if (rc < 0)
		free(u);
	else
		clear_error(c);
out:
	json_decref(j);
	resp_free(&r);
	return rc;
}

static void sleep_s(long s)
{
	struct timespec ts = {.tv_sec = s, .tv_nsec = 0};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The next wait: Retry-After when the server sent one, else the backoff (doubled for next
 * time); clamped to [1 s, max_wait] and to the deadline. -1 when the deadline is reached. */
static long next_wait(const struct acme_client *c, long retry_after, long *backoff, time_t deadline)
{
	time_t now = time(NULL);
	long cap = c->max_wait_s < BACKOFF_CAP_S ? c->max_wait_s : BACKOFF_CAP_S, w;

	if (now >= deadline)
		return -1;
	if (retry_after >= 0) {
		w = retry_after;
	} else {
		w = *backoff;
		*backoff = *backoff * 2 > cap ? cap : *backoff * 2;
	}
	if (w < 1)
		w = 1;
	if (w > c->max_wait_s)
		w = c->max_wait_s;
	if (w > deadline - now)
		w = (long)(deadline - now);
	return w;
}

int acme_order_poll(struct acme_client *c, struct acme_order *o, time_t deadline)
{
	long backoff = 1, w;
	char *url;
	int rc;

	if (!o->url) {
		seterr(c, "an order without URL");
		return -ACME_E_USAGE;
	}
	for (;;) {
		if (o->status == ACME_ST_INVALID) {
			if (o->has_error) {
				c->prob = o->error;
				c->has_prob = true;
			}
			seterr(c, "order %s is invalid%s%s", o->url, o->has_error ? ": " : "",
			       o->has_error ? o->error.detail : "");
			return -ACME_E_INVALID;
		}
		if (o->status != ACME_ST_PENDING && o->status != ACME_ST_PROCESSING)
			return 0;
		w = next_wait(c, o->retry_after, &backoff, deadline);
		if (w < 0) {
			seterr(c, "order %s still %s at the deadline", o->url,
			       acme_status_name(o->status));
			return -ACME_E_TIMEOUT;
		}
		sleep_s(w);
		url = strdup(o->url);
		if (!url)
			return -ACME_E_NOMEM;
		rc = acme_order_fetch(c, url, o);
		free(url);
		if (rc < 0)
			return rc;
	}
}

int acme_order_finalize(struct acme_client *c, struct acme_order *o, const uint8_t *csr_der,
                        size_t csr_len)
{
	struct resp r = {0};
	json_t *j = NULL;
	char *b64 = NULL, *payload = NULL, *url = NULL;
	int rc = -ACME_E_NOMEM;

	if (!o->finalize || !o->url) {
		seterr(c, "an order without finalize URL");
		return -ACME_E_USAGE;
	}
	b64 = jws_b64u_encode(csr_der, csr_len);
	if (!b64)
		goto out;
	j = json_pack("{s:s}", "csr", b64);
	if (!j || !(payload = json_dumps(j, JSON_COMPACT)))
		goto out;
	json_decref(j);
	j = NULL;
	rc = post(c, o->finalize, payload, false, NULL, &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!(j = parse_body(c, o->finalize, &r)))
		goto out;
	rc = -ACME_E_NOMEM;
	if (!(url = strdup(o->url)))
		goto out;
	rc = parse_order(c, j, url, retry_after_of(&r), o);
	if (rc < 0)
		free(url);
	else
		clear_error(c);
out:
	if (rc == -ACME_E_NOMEM)
		seterr(c, "out of memory");
	json_decref(j);
	free(payload);
	free(b64);
	resp_free(&r);
	return rc;
}

/* ---------------------------------------------------------------------------------------
 * authorizations */

void acme_authz_free(struct acme_authz *a)
{
	free(a->url);
	free(a->identifier);
	free(a->expires);
	free(a->dns01_url);
	free(a->dns01_token);
	memset(a, 0, sizeof(*a));
}

/* RFC 8555 §8.1: a token is base64url characters only (it ends up in a TXT digest, and
 * in logs). */
static bool token_ok(const char *t)
{
	size_t n = strlen(t), i;

	if (n < 16 || n > 256)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '_')
			return false;
	return true;
}

static int parse_authz(struct acme_client *c, const json_t *j, const char *url, long retry_after,
                       struct acme_authz *a)
{
	struct acme_authz n = {0};
	json_t *chals, *ch;
	size_t i;
	int rc = -ACME_E_NOMEM;

	n.status = status_of(j);
	n.retry_after = retry_after;
	n.wildcard = json_is_true(json_object_get(j, "wildcard"));
	if (!(n.url = strdup(url)) || getstr(j, "expires", &n.expires) < 0 ||
	    getstr(json_object_get(j, "identifier"), "value", &n.identifier) < 0)
		goto out;
	chals = json_object_get(j, "challenges");
	json_array_foreach(chals, i, ch)
	{
		const char *type = json_string_value(json_object_get(ch, "type"));
		json_t *err;
		if (!type || strcmp(type, "dns-01") != 0)
			continue;
		if (getstr(ch, "url", &n.dns01_url) < 0 || getstr(ch, "token", &n.dns01_token) < 0)
			goto out;
		n.dns01_status = status_of(ch);
		err = json_object_get(ch, "error");
		if (json_is_object(err) && parse_problem(err, &n.error) == 0) {
			n.has_error = true;
			n.error.retry_after = -1;
		}
		break;
	}
	rc = -ACME_E_PROTO;
	if (n.status == ACME_ST_UNKNOWN || !n.identifier) {
		seterr(c, "%s: not an authorization object", url);
		goto out;
	}
	if (n.dns01_url && (!n.dns01_token || !token_ok(n.dns01_token))) {
		seterr(c, "%s: the dns-01 challenge has no valid token", url);
		goto out;
	}
	acme_authz_free(a);
	*a = n;
	return 0;
out:
	if (rc == -ACME_E_NOMEM)
		seterr(c, "out of memory");
	acme_authz_free(&n);
	return rc;
}

int acme_authz_fetch(struct acme_client *c, const char *url, struct acme_authz *out)
{
	struct resp r = {0};
	json_t *j = NULL;
	int rc;

	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	rc = post(c, url, NULL, false, NULL, &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!(j = parse_body(c, url, &r)))
		goto out;
	rc = parse_authz(c, j, url, retry_after_of(&r), out);
	if (rc == 0)
		clear_error(c);
out:
	json_decref(j);
	resp_free(&r);
	return rc;
}

int acme_authz_poll(struct acme_client *c, const char *url, time_t deadline, struct acme_authz *out)
{
	long backoff = 1, w;
	int rc;

	for (;;) {
		if ((rc = acme_authz_fetch(c, url, out)) < 0)
			return rc;
		if (out->status == ACME_ST_INVALID) {
			if (out->has_error) {
				c->prob = out->error;
				c->has_prob = true;
			}
			seterr(c, "authorization of %s%s is invalid%s%s", out->wildcard ? "*." : "",
			       out->identifier, out->has_error ? ": " : "",
			       out->has_error ? out->error.detail : "");
			return -ACME_E_INVALID;
		}
		if (out->status != ACME_ST_PENDING)
			return 0;
		w = next_wait(c, out->retry_after, &backoff, deadline);
		if (w < 0) {
			seterr(c, "authorization of %s still pending at the deadline",
			       out->identifier);
			return -ACME_E_TIMEOUT;
		}
		sleep_s(w);
	}
}

/* POSTs payload to url when only success matters, not the answer. */
static int post_only(struct acme_client *c, const char *url, const char *payload)
{
	struct resp r = {0};
	int rc;

	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	rc = post(c, url, payload, false, NULL, &r);
	if (rc == 0)
		clear_error(c);
	resp_free(&r);
	return rc;
}

int acme_challenge_respond(struct acme_client *c, const char *challenge_url)
{
	/* RFC 8555 §7.5.1: the payload is the empty object (Pebble -strict wants exactly {}). */
	return post_only(c, challenge_url, "{}");
}

int acme_dns01_value_of(const char *token, const char *thumbprint, char out[ACME_TXT_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t dg[32];
	char *b64 = NULL;
	int ret = -1;

	/* keyAuthorization = token "." thumbprint (RFC 8555 §8.1); TXT = b64u(SHA-256). */
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, token, strlen(token)) || !EVP_DigestUpdate(md, ".", 1) ||
	    !EVP_DigestUpdate(md, thumbprint, strlen(thumbprint)) ||
	    !EVP_DigestFinal_ex(md, dg, NULL))
		goto out;
	b64 = jws_b64u_encode(dg, sizeof(dg));
	if (!b64 || strlen(b64) != ACME_TXT_LEN - 1)
		goto out;
	memcpy(out, b64, ACME_TXT_LEN);
	ret = 0;
out:
	free(b64);
	EVP_MD_CTX_free(md);
	return ret;
}

int acme_dns01_value(const struct acme_client *c, const char *token, char out[ACME_TXT_LEN])
{
	if (!c->key)
		return -ACME_E_USAGE;
	return acme_dns01_value_of(token, c->thumbprint, out) == 0 ? 0 : -ACME_E_CRYPTO;
}

/* ---------------------------------------------------------------------------------------
 * certificate */

EVP_PKEY *acme_cert_key_new(enum cs_key_type type)
{
	switch (type) {
	case CS_KEY_EC_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case CS_KEY_EC_P384:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	case CS_KEY_RSA_2048:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	case CS_KEY_RSA_3072:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	}
	return NULL;
}

int acme_csr_der(EVP_PKEY *key, const char *const *names, size_t n, uint8_t **der, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *out = NULL;
	int dlen, ret = -ACME_E_CRYPTO;

	*der = NULL;
	*len = 0;
	if (!req || n == 0 || !X509_REQ_set_version(req, X509_REQ_VERSION_1))
		goto out;
	/* Empty subject, so the SAN is critical (RFC 5280 §4.2.1.6). */
	if (x509u_req_add_dns_names(req, names, n, 1) < 0 || !X509_REQ_set_pubkey(req, key) ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	dlen = i2d_X509_REQ(req, &out);
	if (dlen <= 0)
		goto out;
	*der = out;
	*len = (size_t)dlen;
	ret = 0;
out:
	X509_REQ_free(req);
	ERR_clear_error();
	return ret;
}

void acme_chain_free(struct acme_chain *ch)
{
	free(ch->pem);
	strv_free(ch->alternates, ch->n_alternates);
	memset(ch, 0, sizeof(*ch));
}

/* An absolute-path reference ("/certZ/1/alternate/1") resolved against base's origin;
 * absolute https URLs as they are; NULL for anything else. */
static char *resolve(const char *base, const char *ref)
{
	const char *host, *path;
	char *s;

	if (strncmp(ref, "https://", 8) == 0)
		return strdup(ref);
	if (ref[0] != '/' || ref[1] == '/' || strncmp(base, "https://", 8) != 0)
		return NULL;
	host = base + 8;
	path = strchr(host, '/');
	if (!path)
		path = host + strlen(host);
	s = malloc((size_t)(path - base) + strlen(ref) + 1);
	if (!s)
		return NULL;
	memcpy(s, base, (size_t)(path - base));
	memcpy(s + (path - base), ref, strlen(ref) + 1);
	return s;
}

int acme_certificate_download(struct acme_client *c, const char *url, struct acme_chain *out)
{
	struct acme_chain ch = {0};
	struct resp r = {0};
	size_t i;
	int rc;

	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	rc = post(c, url, NULL, false, "application/pem-certificate-chain", &r);
	if (rc < 0)
		goto out;
	rc = -ACME_E_PROTO;
	if (!r.body || !strstr(r.body, "-----BEGIN CERTIFICATE-----")) {
		seterr(c, "%s: the answer holds no PEM certificate", url);
		goto out;
	}
	rc = -ACME_E_NOMEM;
	if (r.n_alternates) {
		ch.alternates = calloc(r.n_alternates, sizeof(char *));
		if (!ch.alternates)
			goto out;
		for (i = 0; i < r.n_alternates; i++) {
			char *u = resolve(url, r.alternates[i]);
			if (u)
				ch.alternates[ch.n_alternates++] = u;
		}
	}
	ch.pem = r.body;
	ch.len = r.len;
	r.body = NULL;
	acme_chain_free(out);
	*out = ch;
	memset(&ch, 0, sizeof(ch));
	clear_error(c);
	rc = 0;
out:
	if (rc == -ACME_E_NOMEM)
		seterr(c, "out of memory");
	acme_chain_free(&ch);
	resp_free(&r);
	return rc;
}

/* ---------------------------------------------------------------------------------------
 * ARI */

int acme_ari_certid(const X509 *cert, char *out, size_t outlen)
{
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id((X509 *)cert);
	unsigned char *der = NULL;
	char *a = NULL, *s = NULL;
	size_t hdr, clen;
	int dlen, ret = -1;

	if (!aki || ASN1_STRING_length(aki) <= 0)
		goto out;
	/* The serial's DER content octets, the 0x00 sign byte included (RFC 9773 §4.1):
	 * ASN1_STRING_get0_data() would give the magnitude without it. */
	dlen = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &der);
	if (dlen < 3 || der[0] != 0x02)
		goto out;
	if (der[1] < 0x80) {
		hdr = 2;
		clen = der[1];
	} else if (der[1] == 0x81 && dlen > 3) {
		hdr = 3;
		clen = der[2];
	} else {
		goto out; /* longer than 255 bytes: no real serial */
	}
	if (hdr + clen != (size_t)dlen)
		goto out;
	a = jws_b64u_encode(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
	s = jws_b64u_encode(der + hdr, clen);
	if (!a || !s || strlen(a) + 1 + strlen(s) + 1 > outlen)
		goto out;
	snprintf(out, outlen, "%s.%s", a, s);
	ret = 0;
out:
	free(a);
	free(s);
	OPENSSL_free(der);
	return ret;
}

void acme_renewal_info_free(struct acme_renewal_info *ri)
{
	free(ri->explanation_url);
	memset(ri, 0, sizeof(*ri));
	ri->retry_after = -1;
}

int acme_renewal_info_parse(const char *json, size_t len, struct acme_renewal_info *out)
{
	json_t *j = json_loadb(json, len, 0, NULL), *w;
	const char *s, *e, *x;
	time_t ts, te;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	out->retry_after = -1;
	w = json_object_get(j, "suggestedWindow");
	s = json_string_value(json_object_get(w, "start"));
	e = json_string_value(json_object_get(w, "end"));
	if (!s || !e || acme_rfc3339_parse(s, &ts) < 0 || acme_rfc3339_parse(e, &te) < 0 ||
	    te <= ts)
		goto out;
	x = json_string_value(json_object_get(j, "explanationURL"));
	if (x && !(out->explanation_url = strdup(x)))
		goto out;
	out->start = ts;
	out->end = te;
	ret = 0;
out:
	json_decref(j);
	return ret;
}

int acme_renewal_info_fetch(struct acme_client *c, const X509 *cert, struct acme_renewal_info *out)
{
	struct resp r = {0};
	char certid[ACME_CERTID_MAX], *url = NULL;
	size_t n;
	int rc;

	if ((rc = acme_directory_fetch(c)) < 0)
		return rc;
	if (!c->dir.renewal_info) {
		seterr(c, "the CA offers no renewalInfo (RFC 9773)");
		return -ACME_E_UNSUPPORTED;
	}
	if (acme_ari_certid(cert, certid, sizeof(certid)) < 0) {
		seterr(c, "the certificate has no authority key identifier");
		return -ACME_E_USAGE;
	}
	n = strlen(c->dir.renewal_info);
	url = malloc(n + 1 + strlen(certid) + 1);
	if (!url) {
		seterr(c, "out of memory");
		return -ACME_E_NOMEM;
	}
	snprintf(url, n + 1 + strlen(certid) + 1, "%s%s%s", c->dir.renewal_info,
	         n && c->dir.renewal_info[n - 1] == '/' ? "" : "/", certid);
	rc = get(c, url, &r);
	if (rc < 0)
		goto out;
	if (!r.body || acme_renewal_info_parse(r.body, r.len, out) < 0) {
		seterr(c, "GET %s: not a valid RenewalInfo object", url);
		rc = -ACME_E_PROTO;
		goto out;
	}
	out->retry_after = retry_after_of(&r);
	clear_error(c);
out:
	free(url);
	resp_free(&r);
	return rc;
}

/* ---------------------------------------------------------------------------------------
 * pure helpers */

static int month_of(const char *m)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int i;

	for (i = 0; i < 12; i++)
		if (strcmp(m, months[i]) == 0)
			return i;
	return -1;
}

static int make_time(int y, int mon, int d, int h, int mi, int s, time_t *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	struct tm tm = {0};

	if (y < 1970 || y > 9999 || mon < 0 || mon > 11 || d < 1 || d > mdays[mon] || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

int acme_retry_after_parse(const char *value, time_t now, long *seconds)
{
	char wd[16], mon[4], v[64];
	int d, y, h, mi, s, end = 0, m;
	size_t n, i;
	time_t t;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(v))
		return -1;
	memcpy(v, value, n);
	v[n] = '\0';
	if (isdigit((unsigned char)v[0])) {
		long acc = 0;
		for (i = 0; i < n; i++) {
			if (!isdigit((unsigned char)v[i]))
				return -1;
			/* Saturate: a century is as good as forever here. */
			if (acc < 3155760000L)
				acc = acc * 10 + (v[i] - '0');
		}
		*seconds = acc > 3155760000L ? 3155760000L : acc;
		return 0;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (sscanf(v, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wd, &d, mon, &y, &h, &mi,
	           &s, &end) == 7 &&
	    (size_t)end == n) {
		/* fall through to the conversion */
	} else if (end = 0, sscanf(v, "%9[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", wd, &d,
	                           mon, &y, &h, &mi, &s, &end) == 7 &&
	                        (size_t)end == n) {
		/* RFC 850: two-digit year; RFC 9110 §5.6.7 says a year more than 50 years in the
		 * future is in the past century — for a retry time, 19xx vs 20xx suffices. */
		y += y < 70 ? 2000 : 1900;
	} else if (end = 0, sscanf(v, "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wd, mon, &d,
	                           &h, &mi, &s, &y, &end) == 7 &&
	                        (size_t)end == n) {
		/* asctime: "Sun Nov  6 08:49:37 1994" */
	} else {
		return -1;
	}
	m = month_of(mon);
	if (m < 0 || make_time(y, m, d, h, mi, s, &t) < 0)
		return -1;
	*seconds = t > now ? (long)(t - now) : 0;
	return 0;
}

static int digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int acme_rfc3339_parse(const char *s, time_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p;
	time_t t;

	/* date-time = full-date "T" full-time (RFC 3339 §5.6; "t" and " " accepted too). */
	if (!s || strlen(s) < 20 || digits(s, 4, &y) < 0 || s[4] != '-' ||
	    digits(s + 5, 2, &mo) < 0 || s[7] != '-' || digits(s + 8, 2, &d) < 0 ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) < 0 ||
	    s[13] != ':' || digits(s + 14, 2, &mi) < 0 || s[16] != ':' ||
	    digits(s + 17, 2, &sec) < 0)
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		sign = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) == 0 &&
	           p[3] == ':' && digits(p + 4, 2, &om) == 0 && oh < 24 && om < 60) {
		sign = *p == '+' ? 1 : -1;
	} else {
		return -1;
	}
	if (make_time(y, mo - 1, d, h, mi, sec, &t) < 0)
		return -1;
	/* local = UTC + offset, so UTC = local - offset. */
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
}

static int push_url(char ***urls, size_t *n, const char *b, size_t len)
{
	char **v = realloc(*urls, (*n + 1) * sizeof(char *));
	char *s;

	if (!v)
		return -1;
	*urls = v;
	s = malloc(len + 1);
	if (!s)
		return -1;
	memcpy(s, b, len);
	s[len] = '\0';
	v[(*n)++] = s;
	return 0;
}

/* Whether a rel value (possibly a space-separated list, RFC 8288 §3.3) names alternate. */
static bool rel_alternate(const char *v, size_t len)
{
	size_t i = 0, b;

	while (i < len) {
		while (i < len && v[i] == ' ')
			i++;
		b = i;
		while (i < len && v[i] != ' ')
			i++;
		if (i - b == 9 && strncasecmp(v + b, "alternate", 9) == 0)
			return true;
	}
	return false;
}

int acme_link_alternates(const char *value, char ***urls, size_t *n)
{
	const char *p = value, *ub, *ue;

	/* link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param ), comma-separated
	 * (RFC 8288 §3). */
	while (*p) {
		bool alt = false;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p != '<')
			return 0; /* malformed: ignore the rest */
		ub = ++p;
		while (*p && *p != '>')
			p++;
		if (!*p)
			return 0;
		ue = p++;
		while (*p && *p != ',') {
			const char *nb, *ne, *vb, *ve;
			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			nb = p;
			while (*p && *p != '=' && *p != ';' && *p != ',' && *p != ' ')
				p++;
			ne = p;
			while (*p == ' ')
				p++;
			vb = ve = p;
			if (*p == '=') {
				p++;
				while (*p == ' ')
					p++;
				if (*p == '"') {
					vb = ++p;
					while (*p && *p != '"')
						p++;
					ve = p;
					if (*p)
						p++;
				} else {
					vb = p;
					while (*p && *p != ';' && *p != ',' && *p != ' ')
						p++;
					ve = p;
				}
			}
			if (ne - nb == 3 && strncasecmp(nb, "rel", 3) == 0 &&
			    rel_alternate(vb, (size_t)(ve - vb)))
				alt = true;
			if (ne == nb && vb == ve && *p && *p != ',' && *p != ';')
				p++; /* no progress: skip a stray character */
		}
		if (alt && push_url(urls, n, ub, (size_t)(ue - ub)) < 0)
			return -1;
	}
	return 0;
}
