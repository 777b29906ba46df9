/*
 * acmedrv: a small driver of certsync/acme for tests/e2e/acme_client.sh — the way the
 * daemon will use the client, one step after another, printing key=value lines.
 *
 *   acmedrv --dir URL [--ca FILE] [--max-wait S] COMMAND [options] [NAME...]
 *
 *   directory                         the directory: renewalInfo, profiles, CAA identities
 *   account --account-key F [--eab-kid K --eab-key-file F] [--only-existing]
 *   issue   --account-key F --state F --out PREFIX [--key-type T] [--eab-kid K
 *           --eab-key-file F] [--stop-after challenges] NAME...
 *           State (account URL, order URL in flight) persists in --state, so a second
 *           invocation resumes the order by URL instead of ordering again. The
 *           certificate key is written to PREFIX.key (0600, exclusive) before finalize,
 *           so a restart after finalize reuses it.
 *   order   --account-key F --account-url U [--profile P] [--replaces-cert F] [--poll]
 *           NAME...                   newOrder alone (for the stand-in server)
 *   ari     --cert F                  CertID and renewalInfo
 *
 * On failure: "error=<what> problem=<type> status=<http> detail=<text>" and exit 1.
 * No DNS here: with Pebble's PEBBLE_VA_ALWAYS_VALID the TXT values are printed, not
 * published (certsync's DNS side is tested on its own).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme.h"
#include "afile.h"
#include "log.h"
#include "x509u.h"

#define MAX_NAMES 32

struct args {
	const char *dir, *ca, *account_key, *state, *out, *eab_kid, *eab_key_file, *stop_after;
	const char *account_url, *profile, *replaces_cert, *cert;
	enum cs_key_type key_type;
	bool only_existing, poll;
	long max_wait;
	const char *names[MAX_NAMES];
	size_t n_names;
};

static int fail(struct acme_client *c, const char *what, int rc)
{
	const struct acme_problem *p = c ? acme_get0_problem(c) : NULL;

	printf("error=%s code=%d problem=%s status=%d detail=%s\n", what, rc, p ? p->type : "",
	       p ? p->http_status : 0, c ? acme_errstr(c) : "");
	return 1;
}

/* ---- the state file: "account=URL" and "order=URL" lines ---- */

struct state {
	char account[512], order[512];
};

static void state_load(const char *path, struct state *s)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *line, *save = NULL;

	memset(s, 0, sizeof(*s));
	if (afile_read(path, 65536, &buf, &len) < 0)
		return;
	for (line = strtok_r((char *)buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "account=", 8) == 0)
			snprintf(s->account, sizeof(s->account), "%s", line + 8);
		else if (strncmp(line, "order=", 6) == 0)
			snprintf(s->order, sizeof(s->order), "%s", line + 6);
	}
	free(buf);
}

static int state_save(const char *path, const struct state *s)
{
	char buf[1100];
	int n = snprintf(buf, sizeof(buf), "account=%s\norder=%s\n", s->account, s->order);

	return afile_write(path, buf, (size_t)n, 0600);
}

/* ---- keys ---- */

/* PREFIX.key: loaded when present, else created (0600, exclusive). */
static EVP_PKEY *cert_key(const char *path, enum cs_key_type t, bool *reused)
{
	EVP_PKEY *k = NULL;
	uint8_t *pem = NULL;
	size_t len = 0;
	BIO *b = NULL;
	char *mem = NULL, err[256];
	long ml;

	*reused = false;
	if (afile_read(path, 65536, &pem, &len) == 0) {
		int r = x509u_load_key_pem(pem, len, &k, err, sizeof(err));
		OPENSSL_cleanse(pem, len);
		free(pem);
		*reused = r == 0;
		return r == 0 ? k : NULL;
	}
	k = acme_cert_key_new(t);
	b = BIO_new(BIO_s_secmem());
	if (!k || !b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) ||
	    (ml = BIO_get_mem_data(b, &mem)) <= 0 ||
	    afile_create(path, mem, (size_t)ml, 0600) < 0) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	BIO_free(b);
	return k;
}

static X509 *load_cert(const char *path)
{
	STACK_OF(X509) *sk = NULL;
	uint8_t *pem = NULL;
	size_t len = 0;
	char err[256];
	X509 *x = NULL;

	if (afile_read(path, 1 << 20, &pem, &len) < 0)
		return NULL;
	if (x509u_load_certs_pem(pem, len, &sk, err, sizeof(err)) > 0) {
		x = sk_X509_shift(sk);
		sk_X509_pop_free(sk, X509_free);
	}
	free(pem);
	return x;
}

static int account(struct acme_client *c, const struct args *a, EVP_PKEY *key, bool *created)
{
	struct acme_account_req req = {.only_return_existing = a->only_existing};
	char err[256];
	int rc;

	if (a->eab_kid) {
		if (!a->eab_key_file) {
			fprintf(stderr, "--eab-kid needs --eab-key-file\n");
			return -ACME_E_USAGE;
		}
		rc = acme_eab_key_load(a->eab_key_file, (uint8_t **)&req.eab_key, &req.eab_keylen,
		                       err, sizeof(err));
		if (rc < 0) {
			printf("error=eab-key detail=%s\n", err);
			return rc;
		}
		req.eab_kid = a->eab_kid;
	}
	rc = acme_account_register(c, key, &req, created);
	OPENSSL_clear_free((void *)req.eab_key, req.eab_keylen);
	return rc;
}

/* ---- commands ---- */

static int cmd_directory(struct acme_client *c)
{
	const struct acme_directory *d;
	size_t i;
	int rc = acme_directory_fetch(c);

	if (rc < 0)
		return fail(c, "directory", rc);
	d = acme_get0_directory(c);
	printf("new_order=%s\n", d->new_order);
	printf("renewal_info=%s\n", d->renewal_info ? d->renewal_info : "");
	printf("external_account_required=%d\n", d->external_account_required);
	printf("has_profiles=%d\n", d->has_profiles);
	for (i = 0; i < d->n_profiles; i++)
		printf("profile=%s\n", d->profiles[i]);
	for (i = 0; i < d->n_caa_identities; i++)
		printf("caa_identity=%s\n", d->caa_identities[i]);
	return 0;
}

static int cmd_account(struct acme_client *c, const struct args *a, EVP_PKEY *key)
{
	bool created = false;
	int rc = account(c, a, key, &created);

	if (rc < 0)
		return fail(c, "account", rc);
	printf("account=%s\ncreated=%d\n", acme_get0_account_url(c), created);
	return 0;
}

static int cmd_issue(struct acme_client *c, const struct args *a, EVP_PKEY *akey)
{
	struct acme_order o = {0};
	struct acme_authz az = {0};
	struct acme_chain ch = {0};
	struct x509u_names names = {0};
	struct state st;
	EVP_PKEY *ckey = NULL;
	X509 *leaf = NULL;
	uint8_t *csr = NULL;
	size_t csrlen = 0, i;
	char path[512], txt[ACME_TXT_LEN], certid[ACME_CERTID_MAX];
	time_t deadline = time(NULL) + 120;
	bool created, reused;
	int rc, ret = 1;

	state_load(a->state, &st);
	/* the account: resumed by URL when persisted, else newAccount (then persisted) */
	if (st.account[0]) {
		if ((rc = acme_account_resume(c, akey, st.account)) < 0) {
			ret = fail(c, "account", rc);
			goto out;
		}
		printf("account_resumed=%s\n", st.account);
	} else {
		if ((rc = account(c, a, akey, &created)) < 0) {
			ret = fail(c, "account", rc);
			goto out;
		}
		snprintf(st.account, sizeof(st.account), "%s", acme_get0_account_url(c));
		if (state_save(a->state, &st) < 0) {
			perror(a->state);
			goto out;
		}
		printf("account_created=%d account=%s\n", created, st.account);
	}

	/* the order: resumed by URL when one is in flight (no second newOrder) */
	if (st.order[0]) {
		if ((rc = acme_order_fetch(c, st.order, &o)) < 0) {
			ret = fail(c, "order-fetch", rc);
			goto out;
		}
		printf("order_resumed=%s status=%s\n", o.url, acme_status_name(o.status));
	} else {
		if ((rc = acme_order_new(c, a->names, a->n_names, a->profile, NULL, &o)) < 0) {
			ret = fail(c, "new-order", rc);
			goto out;
		}
		snprintf(st.order, sizeof(st.order), "%s", o.url);
		if (state_save(a->state, &st) < 0) {
			perror(a->state);
			goto out;
		}
		printf("order_created=%s status=%s\n", o.url, acme_status_name(o.status));
	}
	printf("authorizations=%zu\n", o.n_authorizations);

	/* every pending authorization: its TXT value, then "validate now" */
	for (i = 0; i < o.n_authorizations; i++) {
		if ((rc = acme_authz_fetch(c, o.authorizations[i], &az)) < 0) {
			ret = fail(c, "authz", rc);
			goto out;
		}
		printf("authz identifier=%s wildcard=%d status=%s dns01=%s\n", az.identifier,
		       az.wildcard, acme_status_name(az.status),
		       az.dns01_url ? acme_status_name(az.dns01_status) : "none");
		if (az.status != ACME_ST_PENDING)
			continue;
		if (!az.dns01_url) {
			printf("error=no-dns01 identifier=%s\n", az.identifier);
			goto out;
		}
		if ((rc = acme_dns01_value(c, az.dns01_token, txt)) < 0) {
			ret = fail(c, "dns01-value", rc);
			goto out;
		}
		printf("txt name=_acme-challenge.%s value=%s\n", az.identifier, txt);
		if (az.dns01_status == ACME_ST_PENDING &&
		    (rc = acme_challenge_respond(c, az.dns01_url)) < 0) {
			ret = fail(c, "respond", rc);
			goto out;
		}
	}
	if (a->stop_after && strcmp(a->stop_after, "challenges") == 0) {
		printf("stopped=challenges\n");
		ret = 0;
		goto out;
	}
	for (i = 0; i < o.n_authorizations; i++) {
		if ((rc = acme_authz_poll(c, o.authorizations[i], deadline, &az)) < 0) {
			ret = fail(c, "authz-poll", rc);
			goto out;
		}
		printf("authz_final identifier=%s%s status=%s\n", az.wildcard ? "*." : "",
		       az.identifier, acme_status_name(az.status));
	}

	/* ready -> finalize (key written first, so a restart reuses it) -> valid */
	if ((rc = acme_order_poll(c, &o, deadline)) < 0) {
		ret = fail(c, "order-poll", rc);
		goto out;
	}
	if (o.status == ACME_ST_READY) {
		snprintf(path, sizeof(path), "%s.key", a->out);
		ckey = cert_key(path, a->key_type, &reused);
		if (!ckey) {
			printf("error=cert-key path=%s\n", path);
			goto out;
		}
		printf("cert_key=%s reused=%d\n", path, reused);
		if (acme_csr_der(ckey, (const char *const *)o.identifiers, o.n_identifiers, &csr,
		                 &csrlen) < 0) {
			printf("error=csr\n");
			goto out;
		}
		if ((rc = acme_order_finalize(c, &o, csr, csrlen)) < 0) {
			ret = fail(c, "finalize", rc);
			goto out;
		}
		printf("finalized status=%s\n", acme_status_name(o.status));
		if ((rc = acme_order_poll(c, &o, deadline)) < 0) {
			ret = fail(c, "order-poll", rc);
			goto out;
		}
	}
	if (o.status != ACME_ST_VALID) {
		printf("error=order-status status=%s\n", acme_status_name(o.status));
		goto out;
	}
	printf("order_valid certificate=%s\n", o.certificate);

	/* download, with the alternate chains */
	if ((rc = acme_certificate_download(c, o.certificate, &ch)) < 0) {
		ret = fail(c, "download", rc);
		goto out;
	}
	snprintf(path, sizeof(path), "%s.pem", a->out);
	if (afile_write(path, ch.pem, ch.len, 0644) < 0) {
		perror(path);
		goto out;
	}
	printf("chain=%s alternates=%zu\n", path, ch.n_alternates);
	for (i = 0; i < ch.n_alternates; i++) {
		struct acme_chain alt = {0};
		char ap[512];
		if ((rc = acme_certificate_download(c, ch.alternates[i], &alt)) < 0) {
			ret = fail(c, "download-alternate", rc);
			goto out;
		}
		snprintf(ap, sizeof(ap), "%s.alt%zu.pem", a->out, i + 1);
		rc = afile_write(ap, alt.pem, alt.len, 0644);
		acme_chain_free(&alt);
		if (rc < 0) {
			perror(ap);
			goto out;
		}
		printf("alternate=%s\n", ap);
	}

	/* the leaf: key matches, names, CertID */
	leaf = load_cert(path);
	if (!ckey) {
		snprintf(path, sizeof(path), "%s.key", a->out);
		ckey = cert_key(path, a->key_type, &reused);
	}
	if (!leaf || !ckey || x509u_dns_names(leaf, &names) < 0) {
		printf("error=leaf\n");
		goto out;
	}
	printf("key_matches=%d\n", x509u_key_matches(leaf, ckey));
	for (i = 0; i < names.n; i++)
		printf("san=%s\n", names.name[i]);
	if (acme_ari_certid(leaf, certid, sizeof(certid)) == 0)
		printf("certid=%s\n", certid);

	/* done: nothing in flight any more */
	st.order[0] = '\0';
	if (state_save(a->state, &st) < 0) {
		perror(a->state);
		goto out;
	}
	ret = 0;
out:
	x509u_names_free(&names);
	X509_free(leaf);
	OPENSSL_free(csr);
	EVP_PKEY_free(ckey);
	acme_chain_free(&ch);
	acme_authz_free(&az);
	acme_order_free(&o);
	return ret;
}

static int cmd_order(struct acme_client *c, const struct args *a, EVP_PKEY *key)
{
	struct acme_order o = {0};
	char certid[ACME_CERTID_MAX];
	const char *replaces = NULL;
	struct timespec t0, t1;
	X509 *x = NULL;
	int rc, ret = 1;

	if (!a->account_url) {
		fprintf(stderr, "order needs --account-url\n");
		return 2;
	}
	if (a->replaces_cert) {
		x = load_cert(a->replaces_cert);
		if (!x || acme_ari_certid(x, certid, sizeof(certid)) < 0) {
			printf("error=replaces-cert\n");
			goto out;
		}
		replaces = certid;
	}
	if ((rc = acme_account_resume(c, key, a->account_url)) < 0 ||
	    (rc = acme_order_new(c, a->names, a->n_names, a->profile, replaces, &o)) < 0) {
		ret = fail(c, "new-order", rc);
		goto out;
	}
	printf("order=%s status=%s profile=%s replaces=%s retry_after=%ld\n", o.url,
	       acme_status_name(o.status), o.profile ? o.profile : "", o.replaces ? o.replaces : "",
	       o.retry_after);
	if (a->poll) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = acme_order_poll(c, &o, time(NULL) + 60);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc < 0) {
			ret = fail(c, "order-poll", rc);
			goto out;
		}
		printf("polled status=%s waited=%.1f\n", acme_status_name(o.status),
		       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	ret = 0;
out:
	X509_free(x);
	acme_order_free(&o);
	return ret;
}

static int cmd_ari(struct acme_client *c, const struct args *a)
{
	struct acme_renewal_info ri = {0};
	char certid[ACME_CERTID_MAX];
	X509 *x = a->cert ? load_cert(a->cert) : NULL;
	int rc, ret = 1;

	if (!x || acme_ari_certid(x, certid, sizeof(certid)) < 0) {
		printf("error=cert\n");
		goto out;
	}
	printf("certid=%s\n", certid);
	if ((rc = acme_renewal_info_fetch(c, x, &ri)) < 0) {
		ret = fail(c, "renewal-info", rc);
		goto out;
	}
	printf("window_start=%lld window_end=%lld retry_after=%ld explanation=%s\n",
	       (long long)ri.start, (long long)ri.end, ri.retry_after,
	       ri.explanation_url ? ri.explanation_url : "");
	ret = 0;
out:
	acme_renewal_info_free(&ri);
	X509_free(x);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"ca", required_argument, NULL, 'c'},
	    {"max-wait", required_argument, NULL, 'w'},
	    {"account-key", required_argument, NULL, 'k'},
	    {"state", required_argument, NULL, 's'},
	    {"out", required_argument, NULL, 'o'},
	    {"key-type", required_argument, NULL, 't'},
	    {"eab-kid", required_argument, NULL, 'e'},
	    {"eab-key-file", required_argument, NULL, 'E'},
	    {"stop-after", required_argument, NULL, 'S'},
	    {"only-existing", no_argument, NULL, 'x'},
	    {"account-url", required_argument, NULL, 'u'},
	    {"profile", required_argument, NULL, 'p'},
	    {"replaces-cert", required_argument, NULL, 'r'},
	    {"poll", no_argument, NULL, 'P'},
	    {"cert", required_argument, NULL, 'C'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const key_types[] = {"ec-p256", "ec-p384", "rsa-2048", "rsa-3072"};
	struct args a = {.key_type = CS_KEY_EC_P256};
	struct acme_client *c = NULL;
	EVP_PKEY *akey = NULL;
	const char *cmd;
	char err[512];
	bool created = false;
	int ch, i, rc, ret = 2;

	log_set_prog("acmedrv");
	log_set_level(getenv("ACMEDRV_DEBUG") ? LOG_DEBUG : LOG_INFO);
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			a.dir = optarg;
			break;
		case 'c':
			a.ca = optarg;
			break;
		case 'w':
			a.max_wait = strtol(optarg, NULL, 10);
			break;
		case 'k':
			a.account_key = optarg;
			break;
		case 's':
			a.state = optarg;
			break;
		case 'o':
			a.out = optarg;
			break;
		case 't':
			for (i = 0; i < 4 && strcmp(optarg, key_types[i]) != 0; i++)
				;
			if (i == 4) {
				fprintf(stderr, "unknown key type %s\n", optarg);
				return 2;
			}
			a.key_type = (enum cs_key_type)i;
			break;
		case 'e':
			a.eab_kid = optarg;
			break;
		case 'E':
			a.eab_key_file = optarg;
			break;
		case 'S':
			a.stop_after = optarg;
			break;
		case 'x':
			a.only_existing = true;
			break;
		case 'u':
			a.account_url = optarg;
			break;
		case 'p':
			a.profile = optarg;
			break;
		case 'r':
			a.replaces_cert = optarg;
			break;
		case 'P':
			a.poll = true;
			break;
		case 'C':
			a.cert = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc || !a.dir) {
		fprintf(stderr, "usage: acmedrv --dir URL [--ca FILE] COMMAND ...\n");
		return 2;
	}
	cmd = argv[optind++];
	for (; optind < argc && a.n_names < MAX_NAMES; optind++)
		a.names[a.n_names++] = argv[optind];

	{
		struct acme_opts o = {.directory_url = a.dir,
		                      .server_ca_file = a.ca,
		                      .connect_timeout_ms = 5000,
		                      .timeout_ms = 15000,
		                      .max_wait_s = a.max_wait};
		if ((rc = acme_client_new(&o, &c, err, sizeof(err))) < 0) {
			printf("error=client code=%d detail=%s\n", rc, err);
			return 1;
		}
	}
	if (strcmp(cmd, "account") == 0 || strcmp(cmd, "issue") == 0 || strcmp(cmd, "order") == 0) {
		if (!a.account_key) {
			fprintf(stderr, "%s needs --account-key\n", cmd);
			goto out;
		}
		if ((rc = acme_account_key_load(a.account_key, &akey, &created, err, sizeof(err))) <
		    0) {
			printf("error=account-key code=%d detail=%s\n", rc, err);
			ret = 1;
			goto out;
		}
		printf("account_key=%s new=%d\n", a.account_key, created);
	}
	if (strcmp(cmd, "directory") == 0)
		ret = cmd_directory(c);
	else if (strcmp(cmd, "account") == 0)
		ret = cmd_account(c, &a, akey);
	else if (strcmp(cmd, "issue") == 0) {
		if (!a.state || !a.out || a.n_names == 0) {
			fprintf(stderr, "issue needs --state, --out and names\n");
			goto out;
		}
		ret = cmd_issue(c, &a, akey);
	} else if (strcmp(cmd, "order") == 0)
		ret = cmd_order(c, &a, akey);
	else if (strcmp(cmd, "ari") == 0)
		ret = cmd_ari(c, &a);
	else
		fprintf(stderr, "unknown command %s\n", cmd);
out:
	acme_client_free(c);
	EVP_PKEY_free(akey);
	return ret;
}
