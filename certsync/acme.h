/*
 * acme: a blocking ACME client (RFC 8555) for certsync's daemon, on libcurl + jansson +
 * OpenSSL, with External Account Binding, profiles, and ACME Renewal Information
 * (RFC 9773). DNS work (publishing the dns-01 TXT values, CAA) is the caller's.
 *
 * What it promises:
 * - Every request has a connect timeout and an overall timeout; every response body is
 *   capped (ACME_BODY_MAX by default) and a larger one is an error; only https:// is
 *   spoken, redirects are not followed. server_ca_file adds trust anchors for the ACME
 *   server's HTTPS to the system store (Pebble's test CA), it does not replace it.
 * - Signed requests are ES256 JWS (jws.h), POST-as-GET for every read (RFC 8555 §6.3)
 *   except the directory, newNonce and renewalInfo (RFC 9773 §4.1: unauthenticated GET).
 *   A badNonce answer is retried at once with the nonce of the error response, at most
 *   ACME_BADNONCE_RETRIES times; nothing else is retried behind the caller's back.
 * - Waits (polling an authorization or an order) honour Retry-After (delta-seconds or an
 *   HTTP-date), clamped to [1 s, max_wait], else back off 1, 2, 4 … s up to max_wait, and
 *   never go past the deadline the caller gives.
 * - A server error is surfaced as ACME_E_PROBLEM with the problem document's type (the
 *   full "urn:ietf:params:acme:error:…"), detail, subproblems and HTTP status in
 *   acme_get0_problem(); acme_errstr() always says what failed in words.
 * - Private keys (account and certificate) are never logged nor put into messages; the
 *   account key file is created 0600 exclusively (afile_create) and only loaded after.
 * - State that must survive a restart is the caller's: the account URL
 *   (acme_get0_account_url) and the URL of an order in flight (acme_order.url). An order
 *   is resumed with acme_order_fetch(url); an account with acme_account_resume(url).
 *
 * One struct acme_client serves one thread at a time. The program calls
 * curl_global_init(CURL_GLOBAL_DEFAULT) once before any thread starts (libcurl would
 * otherwise do it lazily in acme_client_new, which is not thread-safe). Returned strings
 * are owned by the struct they sit in (get0) and live until it is freed or refilled.
 */
#ifndef EDGETLS_CS_ACME_H
#define EDGETLS_CS_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "config.h"

#define ACME_BODY_MAX         (1024 * 1024)
#define ACME_BADNONCE_RETRIES 5
/* base64url(SHA-256): the dns-01 TXT value is always 43 characters (RFC 8555 §8.4). */
#define ACME_TXT_LEN 44
/* A CertID: b64u of a key identifier (RFC 5280 allows any length; 64 bytes covers every
 * CA we know) "." b64u of a serial of at most 64 bytes. */
#define ACME_CERTID_MAX 200

/* Results, returned negated (-ACME_E_NET). */
enum acme_err {
	ACME_E_NOMEM = 1,   /* allocation failed */
	ACME_E_NET,         /* connection, TLS, timeout of one request, body too large */
	ACME_E_PROTO,       /* the server answered something RFC 8555 does not allow */
	ACME_E_PROBLEM,     /* the server answered a problem document: acme_get0_problem() */
	ACME_E_TIMEOUT,     /* a poll reached the caller's deadline while still pending */
	ACME_E_INVALID,     /* a polled object became invalid (its error, if any, is the problem) */
	ACME_E_USAGE,       /* a call the client's state does not allow (no account, ...) */
	ACME_E_UNSUPPORTED, /* the CA does not offer it (profile unknown, no renewalInfo) */
	ACME_E_IO,          /* a local file (account key, EAB key) */
	ACME_E_CRYPTO,      /* OpenSSL failed (key generation, signing) */
};

struct acme_opts {
	const char *directory_url; /* https URL, required */
	const char *server_ca_file;
	long connect_timeout_ms; /* 0: 10 s */
	long timeout_ms;         /* one request, all included; 0: 30 s */
	size_t max_body;         /* 0: ACME_BODY_MAX */
	long max_wait_s;         /* longest single wait while polling; 0: 3600 */
	const char *user_agent;  /* NULL: "edgetls-certsync" */
};

/* The directory (RFC 8555 §7.1.1); absent optional members are NULL / 0. */
struct acme_directory {
	char *new_nonce, *new_account, *new_order, *revoke_cert, *key_change;
	char *renewal_info; /* RFC 9773 §3; NULL: no ARI */
	char *terms_of_service, *website;
	char **caa_identities; /* meta.caaIdentities */
	size_t n_caa_identities;
	char **profiles; /* the names of meta.profiles (draft-aaron-acme-profiles) */
	char **profile_descriptions;
	size_t n_profiles;
	bool has_profiles; /* meta.profiles present (possibly empty) */
	bool external_account_required;
};

/* An RFC 7807 / RFC 8555 §6.7 problem document. */
struct acme_problem {
	int http_status;
	char type[128];    /* "urn:ietf:params:acme:error:badNonce"; "" when none */
	char detail[1024]; /* detail, then "; <identifier>: <type> <detail>" per subproblem */
	long retry_after;  /* seconds, -1 when the response had none */
};

enum acme_status {
	ACME_ST_UNKNOWN = 0,
	ACME_ST_PENDING,
	ACME_ST_READY,
	ACME_ST_PROCESSING,
	ACME_ST_VALID,
	ACME_ST_INVALID,
	ACME_ST_DEACTIVATED,
	ACME_ST_EXPIRED,
	ACME_ST_REVOKED,
};

struct acme_order {
	char *url; /* Location of newOrder; persist it to resume the order */
	enum acme_status status;
	char *expires;      /* RFC 3339 as sent, or NULL */
	char **identifiers; /* dns values as ordered ("*.example.com") */
	size_t n_identifiers;
	char **authorizations; /* URLs */
	size_t n_authorizations;
	char *finalize;
	char *certificate; /* once valid */
	char *profile, *replaces;
	bool has_error;
	struct acme_problem error; /* the order's "error" member */
	long retry_after;          /* of the last response, -1 none */
};

struct acme_authz {
	char *url;
	enum acme_status status;
	char *identifier; /* the dns value, without "*." */
	bool wildcard;
	char *expires;
	/* the dns-01 challenge; NULL when the CA offered none */
	char *dns01_url, *dns01_token;
	enum acme_status dns01_status;
	bool has_error;
	struct acme_problem error; /* of the dns-01 challenge */
	long retry_after;
};

struct acme_chain {
	char *pem; /* leaf first, then intermediates, as served */
	size_t len;
	char **alternates; /* Link: <url>;rel="alternate" (RFC 8555 §7.4.2) */
	size_t n_alternates;
};

struct acme_renewal_info {
	time_t start, end; /* suggestedWindow, end > start */
	char *explanation_url;
	long retry_after; /* seconds as the server sent it (unclamped), -1 none */
};

struct acme_client;

/* ---- the client ---- */

/* A client; nothing is fetched yet. 0 or -ACME_E_*; on failure err says why. */
int acme_client_new(const struct acme_opts *o, struct acme_client **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Frees the client; the account key it was given is the caller's. */
void acme_client_free(struct acme_client *c);
/* What the last failing call did wrong, in words ("" after success). */
const char *acme_errstr(const struct acme_client *c);
/* The problem document of the last ACME_E_PROBLEM / ACME_E_INVALID, else NULL. */
const struct acme_problem *acme_get0_problem(const struct acme_client *c);
/* "badNonce" for "urn:ietf:params:acme:error:badNonce"; the type itself when it has no
 * such prefix. */
const char *acme_problem_short(const struct acme_problem *p);

/* GET the directory (once; later calls are free). */
int acme_directory_fetch(struct acme_client *c) __attribute__((warn_unused_result));
/* The directory, or NULL before a successful acme_directory_fetch. */
const struct acme_directory *acme_get0_directory(const struct acme_client *c);

/* ---- the account ---- */

/* Loads the ES256 account key at path, or creates one there (0600, exclusively; a
 * concurrent creator's key is loaded instead). *created says which. The key must be
 * EC P-256. 0 or -ACME_E_IO / -ACME_E_CRYPTO with err set (never quoting the file). */
int acme_account_key_load(const char *path, EVP_PKEY **out, bool *created, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Reads an EAB MAC key file: base64url (padding and surrounding whitespace tolerated;
 * standard base64 '+' '/' as well). *key is cleansed and freed by the caller
 * (OPENSSL_clear_free). 0 or -ACME_E_IO. */
int acme_eab_key_load(const char *path, uint8_t **key, size_t *keylen, char *err, size_t errlen)
    __attribute__((warn_unused_result));

struct acme_account_req {
	const char *const *contact; /* "mailto:..." */
	size_t n_contact;
	const char *eab_kid; /* NULL: no External Account Binding */
	const uint8_t *eab_key;
	size_t eab_keylen;
	bool only_return_existing; /* look up without creating (accountDoesNotExist if none) */
};

/* newAccount with key (which the client borrows until freed or replaced): creates the
 * account or finds the existing one of this key (RFC 8555 §7.3, §7.3.1), agreeing to the
 * terms of service. *created (may be NULL): 201 rather than 200. */
int acme_account_register(struct acme_client *c, EVP_PKEY *key, const struct acme_account_req *req,
                          bool *created) __attribute__((warn_unused_result));
/* Uses a known account (URL persisted by the caller) without a request. */
int acme_account_resume(struct acme_client *c, EVP_PKEY *key, const char *account_url)
    __attribute__((warn_unused_result));
const char *acme_get0_account_url(const struct acme_client *c);

/* ---- orders ---- */

/* The newOrder payload (pure, for tests): {"identifiers":[{"type":"dns","value":..}..],
 * "profile":..,"replaces":..}; profile / replaces omitted when NULL. malloc'd, or NULL. */
char *acme_new_order_payload(const char *const *names, size_t n, const char *profile,
                             const char *replaces);
/*
 * newOrder for names (wildcards as "*.example.com"; a wildcard and its apex may be in one
 * order). profile (NULL: the CA's default) must be one of the directory's meta.profiles,
 * else ACME_E_UNSUPPORTED without a request. replaces (an ARI CertID, NULL: none) is sent
 * only when the directory has renewalInfo (RFC 9773 §5: SHOULD NOT otherwise) — else it is
 * dropped and out->replaces stays NULL. 409 alreadyReplaced comes back as ACME_E_PROBLEM.
 * Fills *out (acme_order_free); out->url is the URL to persist.
 */
int acme_order_new(struct acme_client *c, const char *const *names, size_t n, const char *profile,
                   const char *replaces, struct acme_order *out)
    __attribute__((warn_unused_result));
/* POST-as-GET an order by URL (resuming one after a restart). */
int acme_order_fetch(struct acme_client *c, const char *url, struct acme_order *out)
    __attribute__((warn_unused_result));
/* Re-reads o until its status is neither pending nor processing, or until deadline
 * (time(NULL) based): ACME_E_TIMEOUT. An invalid order is ACME_E_INVALID with its error
 * as the problem. Other final states return 0; the caller checks o->status. */
int acme_order_poll(struct acme_client *c, struct acme_order *o, time_t deadline)
    __attribute__((warn_unused_result));
/* POSTs {"csr": b64u(csr_der)} to o->finalize and updates o from the answer. An
 * orderNotReady answer is ACME_E_PROBLEM (poll until ready, then call again). */
int acme_order_finalize(struct acme_client *c, struct acme_order *o, const uint8_t *csr_der,
                        size_t csr_len) __attribute__((warn_unused_result));
void acme_order_free(struct acme_order *o);

/* ---- authorizations and dns-01 ---- */

int acme_authz_fetch(struct acme_client *c, const char *url, struct acme_authz *out)
    __attribute__((warn_unused_result));
/* Re-reads the authorization until it is no longer pending (RFC 8555 §7.5.1: poll the
 * authorization, not the challenge) or deadline. invalid: ACME_E_INVALID with the
 * challenge's error as the problem. */
int acme_authz_poll(struct acme_client *c, const char *url, time_t deadline, struct acme_authz *out)
    __attribute__((warn_unused_result));
/* POSTs {} to a challenge: "the TXT record is in place, validate now". */
int acme_challenge_respond(struct acme_client *c, const char *challenge_url)
    __attribute__((warn_unused_result));
void acme_authz_free(struct acme_authz *a);

/* The dns-01 TXT value for token with the account key of c: b64u(SHA-256(token "."
 * thumbprint)) (RFC 8555 §8.1, §8.4). 0, or -ACME_E_USAGE without an account key. */
int acme_dns01_value(const struct acme_client *c, const char *token, char out[ACME_TXT_LEN])
    __attribute__((warn_unused_result));
/* The same, pure: key authorization from token and a JWK thumbprint. 0 or -1. */
int acme_dns01_value_of(const char *token, const char *thumbprint, char out[ACME_TXT_LEN])
    __attribute__((warn_unused_result));

/* ---- certificate ---- */

/* A new certificate key of the configured type (never the account key). NULL on failure. */
EVP_PKEY *acme_cert_key_new(enum cs_key_type type);
/* A CSR for names signed by key: empty subject, one critical subjectAltName with a
 * dNSName per name (RFC 8555 §7.4; Let's Encrypt's tlsserver profile drops the CN anyway).
 * DER into *der (OPENSSL_free). 0 or -ACME_E_CRYPTO. */
int acme_csr_der(EVP_PKEY *key, const char *const *names, size_t n, uint8_t **der, size_t *len)
    __attribute__((warn_unused_result));
/* POST-as-GET a certificate URL (Accept: application/pem-certificate-chain): the chain and
 * the URLs of the alternate chains. Fill *out (acme_chain_free). */
int acme_certificate_download(struct acme_client *c, const char *url, struct acme_chain *out)
    __attribute__((warn_unused_result));
void acme_chain_free(struct acme_chain *ch);

/* ---- ACME Renewal Information (RFC 9773) ---- */

/* b64u(AKI keyIdentifier) "." b64u(DER content octets of the serial, sign byte kept)
 * (RFC 9773 §4.1). 0, or -1 when the certificate has no AKI keyIdentifier or out is too
 * small (ACME_CERTID_MAX suffices). */
int acme_ari_certid(const X509 *cert, char *out, size_t outlen) __attribute__((warn_unused_result));
/* Parses a RenewalInfo object (pure). 0, or -1 when suggestedWindow is missing, a time
 * does not parse, or end <= start (RFC 9773 §4.2: treat as no answer). retry_after is left
 * as -1. */
int acme_renewal_info_parse(const char *json, size_t len, struct acme_renewal_info *out)
    __attribute__((warn_unused_result));
/* GET <renewalInfo>/<CertID of cert>. ACME_E_UNSUPPORTED without renewalInfo. */
int acme_renewal_info_fetch(struct acme_client *c, const X509 *cert, struct acme_renewal_info *out)
    __attribute__((warn_unused_result));
void acme_renewal_info_free(struct acme_renewal_info *ri);

/* ---- pure helpers ---- */

/* A Retry-After value (RFC 9110 §10.2.3): delta-seconds, or an HTTP-date (IMF-fixdate, and
 * the obsolete RFC 850 and asctime forms) taken relative to now (a date in the past is 0).
 * *seconds is the unclamped wait. 0, or -1 when it parses as neither. */
int acme_retry_after_parse(const char *value, time_t now, long *seconds)
    __attribute__((warn_unused_result));
/* An RFC 3339 date-time ("2025-01-02T04:00:00Z", fractions and offsets allowed). 0 or -1. */
int acme_rfc3339_parse(const char *s, time_t *out) __attribute__((warn_unused_result));
/* Every <url> whose parameters include rel="alternate" (or rel=alternate, or a rel list
 * naming it) in one Link header value, appended to *urls / *n. 0 or -1 (allocation). */
int acme_link_alternates(const char *value, char ***urls, size_t *n)
    __attribute__((warn_unused_result));
const char *acme_status_name(enum acme_status s);

#endif
