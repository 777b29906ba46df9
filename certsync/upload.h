/*
 * upload: the validation of an uploaded certificate (DESIGN §4.3 "Uploads"), and nothing
 * else — no files, no store, no control socket.
 *
 * Input: the three files' bytes (certificate, chain — possibly empty —, key), the
 * configured hostnames, the trust store the caller built, and "now". Output: either an
 * acceptance with the facts the store needs, or one refusal with a stable code and a
 * message a customer can act on (it names files, certificates and dates; it never quotes
 * the key file).
 *
 * Promises: the chain is verified with X509_verify_cert (the chain file as untrusted
 * certificates, in any order, with or without the root; X509_V_FLAG_X509_STRICT; purpose
 * sslserver; at "now"). A name covers a configured hostname when equal (case-insensitive),
 * or when the certificate's "*.example.com" stands for exactly one label of it
 * ("a.example.com", not "example.com" nor "a.b.example.com"); a configured wildcard
 * hostname is covered only by the same wildcard.
 */
#ifndef EDGETLS_CS_UPLOAD_H
#define EDGETLS_CS_UPLOAD_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "x509u.h"

/* Stable codes: never renumbered, new ones appended. upload_code_name() gives a token. */
enum upload_code {
	UPLOAD_OK = 0,
	UPLOAD_E_CERT_PEM = 1,        /* cert file empty, not PEM, wrong block, junk */
	UPLOAD_E_CHAIN_PEM = 2,       /* the same for the chain file */
	UPLOAD_E_KEY_PEM = 3,         /* the same for the key file */
	UPLOAD_E_CERT_MULTIPLE = 4,   /* more than one certificate in the cert file */
	UPLOAD_E_LEAF_IN_CHAIN = 5,   /* a server (non-CA) certificate in the chain file */
	UPLOAD_E_KEY_ENCRYPTED = 6,   /* the key is encrypted */
	UPLOAD_E_KEY_MISMATCH = 7,    /* the key is not the certificate's */
	UPLOAD_E_EXPIRED = 8,         /* now > notAfter */
	UPLOAD_E_NOT_YET_VALID = 9,   /* now < notBefore */
	UPLOAD_E_SELF_SIGNED = 10,    /* the certificate signed itself */
	UPLOAD_E_MISSING_ISSUER = 11, /* an issuer is neither in the chain nor trusted */
	UPLOAD_E_CHAIN_EXPIRED = 12,  /* an intermediate (or the root) has expired */
	UPLOAD_E_CHAIN_INVALID = 13,  /* any other verification error */
	UPLOAD_E_NO_HOSTNAME = 14,    /* covers none of the configured hostnames */
	UPLOAD_E_CERT_IS_CA = 15,     /* the cert file holds a CA certificate */
	UPLOAD_E_INTERNAL = 16,       /* out of memory, OpenSSL failure */
};

struct upload_input {
	const void *cert_pem;
	size_t cert_len;
	const void *chain_pem; /* may be NULL/0 or whitespace: no chain */
	size_t chain_len;
	const void *key_pem;
	size_t key_len;
	const char *const *hostnames; /* the configured hostnames; "*.x.y" allowed */
	size_t nhostnames;
	X509_STORE *trust; /* trust anchors, built by the caller */
	time_t now;
};

struct upload_result {
	enum upload_code code;
	char message[1024]; /* "" on success */

	/* On success (and only then) the facts and objects, owned by the result: */
	X509 *leaf;
	STACK_OF(X509) * intermediates; /* the verified path, leaf and anchor excluded,
	                                   in order (issuer of the leaf first) */
	EVP_PKEY *key;
	char serial[X509U_SERIAL_LEN]; /* uppercase hex */
	char sha256[X509U_SHA256_LEN]; /* uppercase hex */
	char *issuer_dn;               /* RFC 2253 */
	char *subject_dn;              /* RFC 2253 */
	time_t not_before, not_after;
	struct x509u_names names;   /* every DNS name of the certificate */
	struct x509u_names covered; /* the configured hostnames it covers, config order */
	int wildcard;               /* 1 when some name of the certificate is "*.something" */
};

/*
 * Validates an upload. Always fills *res (free it with upload_result_free, whatever the
 * outcome). Returns 0 when accepted, -1 when refused or on internal failure: res->code
 * and res->message say which.
 */
int upload_check(const struct upload_input *in, struct upload_result *res)
    __attribute__((warn_unused_result));
void upload_result_free(struct upload_result *res);

/* A stable lowercase token per code ("key-mismatch"), for JSON and metrics. */
const char *upload_code_name(enum upload_code code);

/* 1 when the certificate name cert_name covers the configured hostname host, else 0
 * (the rule above). */
int upload_name_covers(const char *cert_name, const char *host);

#endif
