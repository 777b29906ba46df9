#include "issue.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "acme.h"
#include "afile.h"
#include "dnsupdate.h"
#include "log.h"
#include "x509u.h"

#include "banned.h"

#define KEY_MAX   65536
#define FILE_MAX  65536
#define PATH_LEN  4096
#define WAIT_STEP 500 /* ms between propagation polls */

struct flow {
	const struct issue_request *req;
	struct issue_result *res;
	const struct cs_config *cfg;
	struct acme_client *c;
	EVP_PKEY *account_key;
	struct dnsupdate *du;
	char acme_dir[PATH_LEN - 64];
	char order_json[PATH_LEN], order_key[PATH_LEN];
};

static void fail(struct flow *f, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct flow *f, const char *cls, const char *fmt, ...)
{
	va_list ap;

	snprintf(f->res->error_class, sizeof(f->res->error_class), "%s", cls);
	va_start(ap, fmt);
	vsnprintf(f->res->error, sizeof(f->res->error), fmt, ap);
	va_end(ap);
}

/* An ACME failure: its class is the problem type when the CA sent one. */
static void fail_acme(struct flow *f, const char *what, int rc)
{
	const struct acme_problem *p = acme_get0_problem(f->c);
	const char *cls = "internal";

	switch (-rc) {
	case ACME_E_NET:
		cls = "network";
		break;
	case ACME_E_TIMEOUT:
		cls = "timeout";
		break;
	case ACME_E_PROTO:
		cls = "protocol";
		break;
	case ACME_E_PROBLEM:
	case ACME_E_INVALID:
		cls = p && p->type[0] ? acme_problem_short(p) : "invalid";
		break;
	default:
		break;
	}
	if (p && p->retry_after > 0)
		f->res->retry_after = p->retry_after;
	fail(f, cls, "%s: %s", what, acme_errstr(f->c));
}

void issue_acme_dir(const char *state_dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/acme", state_dir);
}

/* The order files' stem: the hostname with its "*" as "_" (not a hostname character). */
static void order_paths(const char *state_dir, const char *hostname, char *json, char *key,
                        size_t len)
{
	char stem[300];

	snprintf(stem, sizeof(stem), "%s", hostname);
	if (stem[0] == '*')
		stem[0] = '_';
	snprintf(json, len, "%s/acme/orders/%s.json", state_dir, stem);
	snprintf(key, len, "%s/acme/orders/%s.key", state_dir, stem);
}

bool issue_order_pending(const char *state_dir, const char *hostname)
{
	char json[PATH_LEN], key[PATH_LEN];

	order_paths(state_dir, hostname, json, key, sizeof(json));
	return access(json, F_OK) == 0;
}

/* ---- account ---- */

static int account(struct flow *f)
{
	const struct cs_acme *a = &f->cfg->acme;
	char path[PATH_LEN], err[512], *url = NULL;
	uint8_t *buf = NULL, *eab = NULL;
	size_t len = 0, eablen = 0;
	json_t *j = NULL;
	bool created = false;
	int rc, ret = -1;

	snprintf(path, sizeof(path), "%s/account.key", f->acme_dir);
	if (acme_account_key_load(path, &f->account_key, &created, err, sizeof(err)) < 0) {
		fail(f, "internal", "account key: %s", err);
		return -1;
	}
	if (created)
		log_msg(LOG_INFO, "event=acme_account_key_created path=%s", path);
	snprintf(path, sizeof(path), "%s/account.json", f->acme_dir);
	if (afile_read(path, FILE_MAX, &buf, &len) == 0) {
		j = json_loadb((const char *)buf, len, 0, NULL);
		if (j && json_string_value(json_object_get(j, "url")) &&
		    strcmp(json_string_value(json_object_get(j, "directory")) ?: "",
		           a->directory) == 0)
			url = strdup(json_string_value(json_object_get(j, "url")));
	}
	if (url) {
		if ((rc = acme_account_resume(f->c, f->account_key, url)) < 0) {
			fail_acme(f, "account", rc);
			goto out;
		}
	} else {
		struct acme_account_req r = {.contact = (const char *const *)a->contact,
		                             .n_contact = a->n_contact};
		if (a->eab_kid) {
			if (acme_eab_key_load(a->eab_hmac_key_file, &eab, &eablen, err,
			                      sizeof(err)) < 0) {
				fail(f, "internal", "EAB key: %s", err);
				goto out;
			}
			r.eab_kid = a->eab_kid;
			r.eab_key = eab;
			r.eab_keylen = eablen;
		}
		if ((rc = acme_account_register(f->c, f->account_key, &r, &created)) < 0) {
			fail_acme(f, "account", rc);
			goto out;
		}
		json_decref(j);
		j = json_pack("{s:s,s:s}", "url", acme_get0_account_url(f->c), "directory",
		              a->directory);
		free(url);
		url = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
		if (!url || afile_write(path, url, strlen(url), 0644) < 0) {
			fail(f, "internal", "%s: cannot write the account URL", path);
			goto out;
		}
		log_msg(LOG_INFO, "event=acme_account account=%s created=%d",
		        acme_get0_account_url(f->c), created);
	}
	ret = 0;
out:
	if (eab)
		OPENSSL_clear_free(eab, eablen);
	json_decref(j);
	free(url);
	free(buf);
	return ret;
}

/* ---- checks ---- */

static int checks(struct flow *f)
{
	const struct cs_config *cfg = f->cfg;
	const struct acme_directory *dir = acme_get0_directory(f->c);
	struct caa_params p = {.method = "dns-01", .account_uri = acme_get0_account_url(f->c)};
	int tmo = f->req->dns_timeout_ms ? f->req->dns_timeout_ms : 3000;
	char err[512];
	bool ok = true;

	f->res->checks_ran = true;
	if (delegation_check(cfg->dns.resolver, tmo, f->req->hostname, cfg->dns.layout,
	                     cfg->dns.validation_domain, &f->res->delegation, err,
	                     sizeof(err)) < 0) {
		fail(f, "internal", "delegation check: %s", err);
		return -1;
	}
	f->res->delegation_ran = true;
	if (cfg->acme.n_ca_identities) {
		p.ca_identities = (const char *const *)cfg->acme.ca_identities;
		p.n_ca_identities = cfg->acme.n_ca_identities;
	} else if (dir && dir->n_caa_identities) {
		p.ca_identities = (const char *const *)dir->caa_identities;
		p.n_ca_identities = dir->n_caa_identities;
	}
	if (!p.n_ca_identities) {
		/* Nothing names the CA in CAA terms: a CAA set allowing anyone else would be
		 * misread. Say so instead of guessing. */
		f->res->caa_ran = true;
		f->res->caa.verdict = CAA_LOOKUP_FAILED;
		snprintf(f->res->caa.message, sizeof(f->res->caa.message),
		         "the CA's directory names no caaIdentities: set acme.ca_identities");
	} else if (caa_check(cfg->dns.resolver, tmo, f->req->hostname, &p, &f->res->caa, err,
	                     sizeof(err)) < 0) {
		fail(f, "internal", "CAA check: %s", err);
		return -1;
	} else {
		f->res->caa_ran = true;
	}
	if (f->res->delegation.outcome != DELEGATION_OK) {
		ok = false;
		fail(f, "delegation", "%s", f->res->delegation.message);
	} else if (f->res->caa.verdict != CAA_ALLOWED) {
		ok = false;
		fail(f, "caa", "%s", f->res->caa.message);
	}
	f->res->checks_ok = ok;
	return ok ? 0 : -1;
}

/* ---- the order files ---- */

static int write_key_new(const char *path, enum cs_key_type t, EVP_PKEY **out)
{
	EVP_PKEY *k = acme_cert_key_new(t);
	BIO *b = BIO_new(BIO_s_secmem());
	char *mem = NULL;
	long ml;
	int ret = -1;

	if (k && b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) &&
	    (ml = BIO_get_mem_data(b, &mem)) > 0 &&
	    afile_create(path, mem, (size_t)ml, 0600) == 0) {
		*out = k;
		k = NULL;
		ret = 0;
	}
	EVP_PKEY_free(k);
	BIO_free(b);
	return ret;
}

static EVP_PKEY *read_key(const char *path)
{
	uint8_t *pem = NULL;
	size_t len = 0;
	EVP_PKEY *k = NULL;
	char err[256];

	if (afile_read(path, KEY_MAX, &pem, &len) < 0)
		return NULL;
	if (x509u_load_key_pem(pem, len, &k, err, sizeof(err)) < 0)
		k = NULL;
	OPENSSL_cleanse(pem, len);
	free(pem);
	return k;
}

static void order_forget(struct flow *f)
{
	if (unlink(f->order_json) < 0 && errno != ENOENT)
		log_msg(LOG_WARN, "event=acme_order_file_error path=%s error=\"%s\"", f->order_json,
		        strerror(errno));
	if (unlink(f->order_key) < 0 && errno != ENOENT)
		log_msg(LOG_WARN, "event=acme_order_file_error path=%s error=\"%s\"", f->order_key,
		        strerror(errno));
}

/* The persisted order URL, or NULL. */
static char *order_url_load(struct flow *f)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	json_t *j;
	char *url = NULL;

	if (afile_read(f->order_json, FILE_MAX, &buf, &len) < 0)
		return NULL;
	j = json_loadb((const char *)buf, len, 0, NULL);
	if (j && json_string_value(json_object_get(j, "url")) &&
	    strcmp(json_string_value(json_object_get(j, "directory")) ?: "",
	           f->cfg->acme.directory) == 0)
		url = strdup(json_string_value(json_object_get(j, "url")));
	json_decref(j);
	free(buf);
	return url;
}

/* Resume the order in flight, or make one (persisted with its key before returning). */
static int order_get(struct flow *f, struct acme_order *o, EVP_PKEY **key)
{
	const char *names[1] = {f->req->hostname};
	char certid[ACME_CERTID_MAX], *url = order_url_load(f), *text = NULL;
	const char *replaces = NULL;
	json_t *j = NULL;
	int rc;

	if (url) {
		*key = read_key(f->order_key);
		rc = *key ? acme_order_fetch(f->c, url, o) : -ACME_E_IO;
		if (rc == 0 && o->status != ACME_ST_INVALID && o->status != ACME_ST_EXPIRED &&
		    o->n_identifiers == 1 && strcmp(o->identifiers[0], f->req->hostname) == 0) {
			f->res->resumed = true;
			snprintf(f->res->order_url, sizeof(f->res->order_url), "%s", url);
			log_msg(LOG_INFO, "event=acme_order_resumed hostname=%s order=%s status=%s",
			        f->req->hostname, url, acme_status_name(o->status));
			free(url);
			return 0;
		}
		log_msg(LOG_WARN, "event=acme_order_dropped hostname=%s order=%s reason=\"%s\"",
		        f->req->hostname, url,
		        rc < 0 ? acme_errstr(f->c) : acme_status_name(o->status));
		acme_order_free(o);
		memset(o, 0, sizeof(*o));
		EVP_PKEY_free(*key);
		*key = NULL;
		free(url);
		url = NULL;
	}
	/* A key without its order file is what a crash before newOrder leaves. */
	order_forget(f);
	if (write_key_new(f->order_key, f->cfg->acme.key_type, key) < 0) {
		fail(f, "internal", "%s: cannot create the certificate key", f->order_key);
		return -1;
	}
	if (f->req->renew_cert && acme_get0_directory(f->c)->renewal_info) {
		uint8_t *pem = NULL;
		size_t len = 0;
		STACK_OF(X509) *sk = NULL;
		char err[256];
		if (afile_read(f->req->renew_cert, 1 << 20, &pem, &len) == 0 &&
		    x509u_load_certs_pem(pem, len, &sk, err, sizeof(err)) == 0 &&
		    sk_X509_num(sk) > 0 &&
		    acme_ari_certid(sk_X509_value(sk, 0), certid, sizeof(certid)) == 0)
			replaces = certid;
		sk_X509_pop_free(sk, X509_free);
		free(pem);
	}
	rc = acme_order_new(f->c, names, 1, f->cfg->acme.profile, replaces, o);
	if (rc == -ACME_E_PROBLEM && replaces) {
		const char *t = acme_problem_short(acme_get0_problem(f->c));
		if (strcmp(t, "alreadyReplaced") == 0 || strcmp(t, "malformed") == 0) {
			/* research §1.11: order again without replaces. */
			log_msg(LOG_WARN, "event=acme_replaces_refused hostname=%s problem=%s",
			        f->req->hostname, t);
			rc = acme_order_new(f->c, names, 1, f->cfg->acme.profile, NULL, o);
		}
	}
	if (rc < 0) {
		fail_acme(f, "newOrder", rc);
		return -1;
	}
	f->res->ordered = true;
	snprintf(f->res->order_url, sizeof(f->res->order_url), "%s", o->url);
	j = json_pack("{s:s,s:s,s:s,s:I}", "url", o->url, "hostname", f->req->hostname, "directory",
	              f->cfg->acme.directory, "created", (json_int_t)time(NULL));
	text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
	json_decref(j);
	if (!text || afile_write(f->order_json, text, strlen(text), 0600) < 0) {
		free(text);
		fail(f, "internal", "%s: cannot persist the order", f->order_json);
		return -1;
	}
	free(text);
	log_msg(LOG_INFO, "event=acme_order_created hostname=%s order=%s status=%s replaces=%s",
	        f->req->hostname, o->url, acme_status_name(o->status), o->replaces ?: "-");
	return 0;
}

/* ---- dns-01 ---- */

static int authorize(struct flow *f, const char *authz_url, time_t deadline)
{
	struct acme_authz az = {0};
	char txt[ACME_TXT_LEN], target[DELEGATION_NAME_MAX], err[512];
	const char *vals[1] = {txt};
	bool published = false;
	long prop = f->req->propagation_s ? f->req->propagation_s : 120;
	int rc, ret = -1;

	if ((rc = acme_authz_fetch(f->c, authz_url, &az)) < 0) {
		fail_acme(f, "authorization", rc);
		goto out;
	}
	if (az.status == ACME_ST_VALID) {
		ret = 0;
		goto out;
	}
	if (az.status != ACME_ST_PENDING) {
		fail(f, "invalid", "authorization of %s is %s", az.identifier,
		     acme_status_name(az.status));
		f->res->order = ISSUE_ORDER_INVALID;
		goto out;
	}
	if (!az.dns01_url) {
		fail(f, "unsupportedChallenge", "the CA offers no dns-01 challenge for %s",
		     az.identifier);
		goto out;
	}
	if ((rc = acme_dns01_value(f->c, az.dns01_token, txt)) < 0 ||
	    delegation_target(f->req->hostname, f->cfg->dns.layout, f->cfg->dns.validation_domain,
	                      target, sizeof(target)) < 0) {
		fail(f, "internal", "cannot compute the TXT record of %s", az.identifier);
		goto out;
	}
	if (dnsupdate_add_txt(f->du, target, txt, err, sizeof(err)) < 0) {
		f->res->dns_updates_failed++;
		fail(f, "dns-update", "adding the TXT record at %s: %s", target, err);
		goto out;
	}
	f->res->dns_updates_ok++;
	published = true;
	log_msg(LOG_INFO, "event=acme_txt_added hostname=%s name=%s", f->req->hostname, target);
	if (dnsupdate_wait(f->du, target, vals, 1, (int)(prop * 1000), WAIT_STEP, err,
	                   sizeof(err)) < 0) {
		fail(f, "propagation", "the TXT record at %s is not served everywhere: %s", target,
		     err);
		goto out;
	}
	if (az.dns01_status == ACME_ST_PENDING &&
	    (rc = acme_challenge_respond(f->c, az.dns01_url)) < 0) {
		fail_acme(f, "challenge", rc);
		goto out;
	}
	acme_authz_free(&az);
	memset(&az, 0, sizeof(az));
	if ((rc = acme_authz_poll(f->c, authz_url, deadline, &az)) < 0) {
		fail_acme(f, "validation", rc);
		if (rc == -ACME_E_INVALID)
			f->res->order = ISSUE_ORDER_INVALID;
		goto out;
	}
	ret = 0;
out:
	if (published) {
		if (dnsupdate_delete_txt(f->du, target, txt, err, sizeof(err)) < 0) {
			f->res->dns_updates_failed++;
			log_msg(LOG_WARN, "event=acme_txt_delete_failed name=%s error=\"%s\"",
			        target, err);
		} else {
			f->res->dns_updates_ok++;
		}
	}
	acme_authz_free(&az);
	return ret;
}

/* ---- the certificate ---- */

/* Each certificate signed by the next, the last trusted as given (partial chain): the
 * CA's chain is coherent. The root is not ours to judge here: HAProxy serves the chain,
 * clients judge the root. */
static int verify_chain(X509 *leaf, STACK_OF(X509) * chain, char *err, size_t errlen)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	if (!st || !ctx || sk_X509_num(chain) < 1)
		goto out;
	X509_STORE_add_cert(st, sk_X509_value(chain, sk_X509_num(chain) - 1));
	X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
	if (!X509_STORE_CTX_init(ctx, st, leaf, chain))
		goto out;
	ok = X509_verify_cert(ctx) == 1;
	if (!ok)
		snprintf(err, errlen, "%s",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
out:
	if (!ok && !err[0])
		snprintf(err, errlen, "no intermediate in the chain");
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return ok ? 0 : -1;
}

static int finish(struct flow *f, struct acme_order *o, EVP_PKEY *key, time_t deadline)
{
	const char *names[1] = {f->req->hostname};
	struct acme_chain ch = {0};
	STACK_OF(X509) *sk = NULL;
	X509 *leaf = NULL;
	struct x509u_names sans = {0};
	struct store *st = NULL;
	uint8_t *csr = NULL;
	size_t csrlen = 0;
	char err[512] = "";
	int rc, ret = -1;

	/* The order we hold was read before the challenges were answered: read it again
	 * first (it is usually `ready` by now) rather than wait a polling interval. */
	if (o->url && o->status == ACME_ST_PENDING) {
		char *url = strdup(o->url);
		rc = url ? acme_order_fetch(f->c, url, o) : -ACME_E_NOMEM;
		free(url);
		if (rc < 0) {
			fail_acme(f, "order", rc);
			goto out;
		}
	}
	if ((rc = acme_order_poll(f->c, o, deadline)) < 0) {
		fail_acme(f, "order", rc);
		if (rc == -ACME_E_INVALID)
			f->res->order = ISSUE_ORDER_INVALID;
		goto out;
	}
	if (o->status == ACME_ST_READY) {
		if (acme_csr_der(key, names, 1, &csr, &csrlen) < 0) {
			fail(f, "internal", "cannot build the CSR");
			goto out;
		}
		if ((rc = acme_order_finalize(f->c, o, csr, csrlen)) < 0 ||
		    (rc = acme_order_poll(f->c, o, deadline)) < 0) {
			fail_acme(f, "finalize", rc);
			if (rc == -ACME_E_INVALID)
				f->res->order = ISSUE_ORDER_INVALID;
			goto out;
		}
	}
	if (o->status != ACME_ST_VALID || !o->certificate) {
		fail(f, "invalid", "the order is %s", acme_status_name(o->status));
		if (o->status == ACME_ST_INVALID)
			f->res->order = ISSUE_ORDER_INVALID;
		goto out;
	}
	if ((rc = acme_certificate_download(f->c, o->certificate, &ch)) < 0) {
		fail_acme(f, "download", rc);
		goto out;
	}
	if (x509u_load_certs_pem(ch.pem, ch.len, &sk, err, sizeof(err)) < 0 ||
	    sk_X509_num(sk) < 1) {
		fail(f, "protocol", "the downloaded chain does not parse: %s", err);
		goto out;
	}
	leaf = sk_X509_shift(sk);
	err[0] = '\0';
	if (!x509u_key_matches(leaf, key) || x509u_dns_names(leaf, &sans) < 0 || sans.n != 1 ||
	    strcmp(sans.name[0], f->req->hostname) != 0) {
		fail(f, "protocol", "the certificate does not match the order (key or names)");
		goto out;
	}
	if (verify_chain(leaf, sk, err, sizeof(err)) < 0) {
		fail(f, "protocol", "the chain does not verify: %s", err);
		goto out;
	}
	if (store_open(f->cfg->state_dir, &st, err, sizeof(err)) < 0 ||
	    store_add(st, STORE_ACME, NULL, leaf, sk, key, time(NULL), f->res->store_id, err,
	              sizeof(err)) < 0) {
		fail(f, "internal", "store: %s", err);
		goto out;
	}
	if (x509u_serial_hex(leaf, f->res->serial, sizeof(f->res->serial)) < 0 ||
	    x509u_not_before(leaf, &f->res->not_before) < 0 ||
	    x509u_not_after(leaf, &f->res->not_after) < 0) {
		fail(f, "internal", "cannot read the certificate's serial or dates");
		goto out;
	}
	if (acme_get0_directory(f->c)->renewal_info) {
		/* RFC 9773 §4.2: fetch the window right after issuance. */
		struct acme_renewal_info ri = {0};
		if (acme_renewal_info_fetch(f->c, leaf, &ri) == 0) {
			f->res->has_window = true;
			f->res->win_start = ri.start;
			f->res->win_end = ri.end;
		}
		acme_renewal_info_free(&ri);
	}
	ret = 0;
out:
	store_close(st);
	x509u_names_free(&sans);
	X509_free(leaf);
	sk_X509_pop_free(sk, X509_free);
	acme_chain_free(&ch);
	OPENSSL_free(csr);
	return ret;
}

int issue_run(const struct issue_request *req, struct issue_result *res)
{
	struct flow f = {.req = req, .res = res, .cfg = req->cfg};
	struct acme_opts ao = {0};
	struct acme_order o = {0};
	EVP_PKEY *key = NULL;
	char err[512];
	time_t deadline;
	int rc, ret = -1;

	memset(res, 0, sizeof(*res));
	res->retry_after = -1;
	if (!f.cfg->acme.present || !f.cfg->dns.present) {
		fail(&f, "internal", "auto_certificates needs the acme and dns sections");
		return -1;
	}
	issue_acme_dir(f.cfg->state_dir, f.acme_dir, sizeof(f.acme_dir));
	{
		char od[PATH_LEN];
		/* acme_dir is PATH_LEN - 64: room for the file names. */
		snprintf(od, sizeof(od), "%s/orders", f.acme_dir);
		if (afile_mkdirs(od, 0700) < 0) {
			fail(&f, "internal", "%s: %s", od, strerror(errno));
			return -1;
		}
	}
	order_paths(f.cfg->state_dir, req->hostname, f.order_json, f.order_key,
	            sizeof(f.order_json));
	ao.directory_url = f.cfg->acme.directory;
	ao.server_ca_file = f.cfg->acme.server_ca_file;
	ao.max_wait_s = 10;
	if (acme_client_new(&ao, &f.c, err, sizeof(err)) < 0) {
		fail(&f, "internal", "ACME client: %s", err);
		return -1;
	}
	if ((rc = acme_directory_fetch(f.c)) < 0) {
		fail_acme(&f, "directory", rc);
		goto out;
	}
	if (account(&f) < 0)
		goto out;
	if (checks(&f) < 0 || req->checks_only) {
		ret = req->checks_only && res->checks_ok ? 0 : -1;
		goto out;
	}
	/* Our own side must work too before anything is ordered. */
	if (dnsupdate_open(&f.cfg->dns, req->dns_timeout_ms ? req->dns_timeout_ms : 3000, &f.du,
	                   err, sizeof(err)) < 0) {
		fail(&f, "dns-update", "the validation zone's update server: %s", err);
		goto out;
	}
	if (order_get(&f, &o, &key) < 0)
		goto out;
	res->order = ISSUE_ORDER_ERROR;
	deadline = time(NULL) + (req->poll_deadline_s ? req->poll_deadline_s : 300);
	for (size_t i = 0; i < o.n_authorizations; i++)
		if (authorize(&f, o.authorizations[i], deadline) < 0)
			goto out;
	if (finish(&f, &o, key, deadline) < 0)
		goto out;
	res->order = ISSUE_ORDER_VALID;
	res->error_class[0] = res->error[0] = '\0';
	log_msg(LOG_INFO, "event=acme_issued hostname=%s serial=%s id=%s not_after=%lld resumed=%d",
	        req->hostname, res->serial, res->store_id, (long long)res->not_after, res->resumed);
	ret = 0;
out:
	/* An order that is done (stored, or invalid) is forgotten; one that merely failed
	 * (network, DNS) stays to be resumed at the next attempt. */
	if (res->order == ISSUE_ORDER_VALID || res->order == ISSUE_ORDER_INVALID)
		order_forget(&f);
	if (ret < 0 && res->order != ISSUE_ORDER_NONE)
		log_msg(LOG_WARN, "event=acme_order_failed hostname=%s class=%s error=\"%s\"",
		        req->hostname, res->error_class, res->error);
	EVP_PKEY_free(key);
	acme_order_free(&o);
	dnsupdate_close(f.du);
	acme_client_free(f.c);
	EVP_PKEY_free(f.account_key);
	return ret;
}
