#include "upload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "banned.h"

static void refuse(struct upload_result *res, enum upload_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct upload_result *res, enum upload_code code, const char *fmt, ...)
{
	va_list ap;

	res->code = code;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

/* A DN for a message: RFC 2253, shortened with "..." when it does not fit. */
static const char *dn_msg(const X509_NAME *name, char *buf, size_t buflen)
{
	char *s = x509u_name_rfc2253_get1(name);
	size_t n;

	snprintf(buf, buflen, "%s", s ? s : "?");
	n = s ? strlen(s) : 0;
	if (n >= buflen && buflen > 4)
		memcpy(buf + buflen - 4, "...", 4);
	free(s);
	return buf;
}

static const char *subject_msg(const X509 *x, char *buf, size_t buflen)
{
	return dn_msg(X509_get_subject_name(x), buf, buflen);
}

static const char *time_msg(const ASN1_TIME *t, char *buf, size_t buflen)
{
	if (x509u_time_str(t, buf, buflen) < 0)
		snprintf(buf, buflen, "?");
	return buf;
}

int upload_name_covers(const char *cert_name, const char *host)
{
	const char *dot;

	if (strcasecmp(cert_name, host) == 0)
		return 1;
	/* A configured wildcard is covered only by the same wildcard (equality above). */
	if (host[0] == '*')
		return 0;
	/* "*.example.com" stands for exactly one label, and never for a public suffix
	 * alone ("*.com"). RFC 6125 §6.4.3, as browsers apply it. */
	if (cert_name[0] != '*' || cert_name[1] != '.' || !strchr(cert_name + 2, '.'))
		return 0;
	dot = strchr(host, '.');
	return dot && dot != host && strcasecmp(dot, cert_name + 1) == 0;
}

const char *upload_code_name(enum upload_code code)
{
	switch (code) {
	case UPLOAD_OK:
		return "ok";
	case UPLOAD_E_CERT_PEM:
		return "cert-pem";
	case UPLOAD_E_CHAIN_PEM:
		return "chain-pem";
	case UPLOAD_E_KEY_PEM:
		return "key-pem";
	case UPLOAD_E_CERT_MULTIPLE:
		return "cert-multiple";
	case UPLOAD_E_LEAF_IN_CHAIN:
		return "leaf-in-chain";
	case UPLOAD_E_KEY_ENCRYPTED:
		return "key-encrypted";
	case UPLOAD_E_KEY_MISMATCH:
		return "key-mismatch";
	case UPLOAD_E_EXPIRED:
		return "expired";
	case UPLOAD_E_NOT_YET_VALID:
		return "not-yet-valid";
	case UPLOAD_E_SELF_SIGNED:
		return "self-signed";
	case UPLOAD_E_MISSING_ISSUER:
		return "missing-intermediate";
	case UPLOAD_E_CHAIN_EXPIRED:
		return "chain-expired";
	case UPLOAD_E_CHAIN_INVALID:
		return "chain-invalid";
	case UPLOAD_E_NO_HOSTNAME:
		return "no-hostname";
	case UPLOAD_E_CERT_IS_CA:
		return "cert-is-ca";
	case UPLOAD_E_INTERNAL:
		return "internal";
	}
	return "unknown";
}

/* The three files. Returns 0, or -1 with res filled. */
static int load_files(const struct upload_input *in, struct upload_result *res,
                      STACK_OF(X509) * *certs, STACK_OF(X509) * *chain, EVP_PKEY **key)
{
	char err[256];
	int r;

	r = x509u_load_certs_pem(in->cert_pem, in->cert_pem ? in->cert_len : 0, certs, err,
	                         sizeof(err));
	if (r == -X509U_E_EMPTY || r == -X509U_E_NOPEM) {
		refuse(res, UPLOAD_E_CERT_PEM, "the certificate file holds no PEM certificate");
		return -1;
	} else if (r == -X509U_E_NOMEM) {
		refuse(res, UPLOAD_E_INTERNAL, "out of memory");
		return -1;
	} else if (r < 0) {
		refuse(res, UPLOAD_E_CERT_PEM,
		       "the certificate file is not a valid PEM "
		       "certificate: %s",
		       err);
		return -1;
	}

	r = x509u_load_certs_pem(in->chain_pem, in->chain_pem ? in->chain_len : 0, chain, err,
	                         sizeof(err));
	if (r == -X509U_E_EMPTY) { /* no chain: the leaf may be issued by a trusted root */
		*chain = sk_X509_new_null();
		if (!*chain) {
			refuse(res, UPLOAD_E_INTERNAL, "out of memory");
			return -1;
		}
	} else if (r == -X509U_E_NOPEM) {
		refuse(res, UPLOAD_E_CHAIN_PEM,
		       "the chain file holds no PEM certificate (leave it empty when there "
		       "is no intermediate)");
		return -1;
	} else if (r == -X509U_E_NOMEM) {
		refuse(res, UPLOAD_E_INTERNAL, "out of memory");
		return -1;
	} else if (r < 0) {
		refuse(res, UPLOAD_E_CHAIN_PEM, "the chain file is not valid PEM: %s", err);
		return -1;
	}

	r = x509u_load_key_pem(in->key_pem, in->key_pem ? in->key_len : 0, key, err, sizeof(err));
	if (r == -X509U_E_EMPTY || r == -X509U_E_NOPEM) {
		refuse(res, UPLOAD_E_KEY_PEM, "the key file holds no PEM private key");
		return -1;
	} else if (r == -X509U_E_ENCRYPTED) {
		refuse(res, UPLOAD_E_KEY_ENCRYPTED,
		       "the private key is encrypted; upload it unencrypted");
		return -1;
	} else if (r == -X509U_E_NOMEM) {
		refuse(res, UPLOAD_E_INTERNAL, "out of memory");
		return -1;
	} else if (r < 0) {
		/* err never quotes the key file's bytes. */
		refuse(res, UPLOAD_E_KEY_PEM, "the key file is not a valid PEM private key: %s",
		       err);
		return -1;
	}
	return 0;
}

/* Which file holds what: one server certificate alone in the cert file, CA certificates
 * alone in the chain file. Returns 0, or -1 with res filled. */
static int check_placement(struct upload_result *res, STACK_OF(X509) * certs,
                           STACK_OF(X509) * chain)
{
	X509 *leaf = sk_X509_value(certs, 0);
	char a[256], b[256];
	int i, n = sk_X509_num(certs);

	if (n > 1) {
		refuse(res, UPLOAD_E_CERT_MULTIPLE,
		       "the certificate file holds %d certificates (the first is %s, the "
		       "second %s); it must hold only the server certificate: put the "
		       "intermediate certificates in the chain file",
		       n, subject_msg(leaf, a, sizeof(a)),
		       subject_msg(sk_X509_value(certs, 1), b, sizeof(b)));
		return -1;
	}
	for (i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (x509u_is_ca(c))
			continue;
		if (X509_cmp(c, leaf) == 0)
			refuse(res, UPLOAD_E_LEAF_IN_CHAIN,
			       "the chain file holds the server certificate %s (certificate "
			       "%d of the chain file) as well as the certificate file; the "
			       "chain file must hold only the intermediate certificates",
			       subject_msg(c, a, sizeof(a)), i + 1);
		else if (x509u_is_ca(leaf))
			refuse(res, UPLOAD_E_LEAF_IN_CHAIN,
			       "the files are swapped: the certificate file holds the CA "
			       "certificate %s and the chain file holds the server certificate "
			       "%s (certificate %d of the chain file)",
			       subject_msg(leaf, a, sizeof(a)), subject_msg(c, b, sizeof(b)),
			       i + 1);
		else
			refuse(res, UPLOAD_E_LEAF_IN_CHAIN,
			       "the chain file holds a server certificate, %s (certificate %d "
			       "of the chain file), which is not a CA; the chain file must hold "
			       "only the intermediate certificates",
			       subject_msg(c, a, sizeof(a)), i + 1);
		return -1;
	}
	if (x509u_is_ca(leaf)) {
		refuse(res, UPLOAD_E_CERT_IS_CA,
		       "the certificate file holds the CA certificate %s, not a server "
		       "certificate",
		       subject_msg(leaf, a, sizeof(a)));
		return -1;
	}
	return 0;
}

static int check_key(struct upload_result *res, X509 *leaf, STACK_OF(X509) * chain, EVP_PKEY *key)
{
	char a[256];
	int i;

	if (x509u_key_matches(leaf, key))
		return 0;
	for (i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (x509u_key_matches(c, key)) {
			refuse(res, UPLOAD_E_KEY_MISMATCH,
			       "the private key does not match the certificate; it is the key "
			       "of %s in the chain file",
			       subject_msg(c, a, sizeof(a)));
			return -1;
		}
	}
	refuse(res, UPLOAD_E_KEY_MISMATCH,
	       "the private key does not match the certificate %s: upload the key the "
	       "certificate was issued for",
	       subject_msg(leaf, a, sizeof(a)));
	return -1;
}

static int check_times(struct upload_result *res, X509 *leaf, time_t now)
{
	char t[X509U_TIME_LEN];
	time_t nb, na;

	if (x509u_not_before(leaf, &nb) < 0 || x509u_not_after(leaf, &na) < 0) {
		refuse(res, UPLOAD_E_CERT_PEM, "the certificate's validity dates do not parse");
		return -1;
	}
	/* The bounds as X509_verify_cert applies them: expired when notAfter <= now. */
	if (na <= now) {
		refuse(res, UPLOAD_E_EXPIRED, "the certificate expired on %s",
		       time_msg(X509_get0_notAfter(leaf), t, sizeof(t)));
		return -1;
	}
	if (nb > now) {
		refuse(res, UPLOAD_E_NOT_YET_VALID, "the certificate is not valid before %s",
		       time_msg(X509_get0_notBefore(leaf), t, sizeof(t)));
		return -1;
	}
	res->not_before = nb;
	res->not_after = na;
	return 0;
}

static int verify_chain(const struct upload_input *in, struct upload_result *res, X509 *leaf,
                        STACK_OF(X509) * chain, STACK_OF(X509) * *path)
{
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	X509 *cur;
	char a[256], b[256], t[X509U_TIME_LEN];
	int e, depth, ret = -1;

	*path = NULL;
	if (!in->trust) {
		refuse(res, UPLOAD_E_INTERNAL, "no trust store");
		goto out;
	}
	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, in->trust, leaf, chain)) {
		refuse(res, UPLOAD_E_INTERNAL, "out of memory");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	X509_VERIFY_PARAM_set_time(param, in->now);
	if (!X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER)) {
		refuse(res, UPLOAD_E_INTERNAL, "cannot set the verification purpose");
		goto out;
	}
	if (X509_verify_cert(ctx) == 1) {
		*path = X509_STORE_CTX_get1_chain(ctx);
		if (!*path) {
			refuse(res, UPLOAD_E_INTERNAL, "out of memory");
			goto out;
		}
		ret = 0;
		goto out;
	}
	e = X509_STORE_CTX_get_error(ctx);
	depth = X509_STORE_CTX_get_error_depth(ctx);
	cur = X509_STORE_CTX_get_current_cert(ctx);
	if (!cur)
		cur = leaf;
	switch (e) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
		if (depth == 0 || cur == leaf)
			refuse(res, UPLOAD_E_MISSING_ISSUER,
			       "missing intermediate: the certificate was issued by %s, which "
			       "is neither in the chain file nor a trusted root",
			       dn_msg(X509_get_issuer_name(cur), a, sizeof(a)));
		else
			refuse(res, UPLOAD_E_MISSING_ISSUER,
			       "missing intermediate: the chain certificate %s was issued by "
			       "%s, which is neither in the chain file nor a trusted root",
			       subject_msg(cur, b, sizeof(b)),
			       dn_msg(X509_get_issuer_name(cur), a, sizeof(a)));
		break;
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		refuse(res, UPLOAD_E_CHAIN_INVALID,
		       "the chain ends at the root %s, which is not a trusted root "
		       "(OpenSSL: %s, depth %d)",
		       subject_msg(cur, a, sizeof(a)), X509_verify_cert_error_string(e), depth);
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		refuse(res, depth == 0 ? UPLOAD_E_EXPIRED : UPLOAD_E_CHAIN_EXPIRED,
		       "the %s %s expired on %s", depth == 0 ? "certificate" : "chain certificate",
		       subject_msg(cur, a, sizeof(a)),
		       time_msg(X509_get0_notAfter(cur), t, sizeof(t)));
		break;
	default:
		refuse(res, UPLOAD_E_CHAIN_INVALID,
		       "the chain does not verify: %s (certificate at depth %d, %s)",
		       X509_verify_cert_error_string(e), depth, subject_msg(cur, a, sizeof(a)));
		break;
	}
out:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

static int names_push(struct x509u_names *nm, const char *s)
{
	char **v = realloc(nm->name, (nm->n + 1) * sizeof(*v));
	char *c;

	if (!v)
		return -1;
	nm->name = v;
	c = strdup(s);
	if (!c)
		return -1;
	nm->name[nm->n++] = c;
	return 0;
}

static int check_names(const struct upload_input *in, struct upload_result *res)
{
	size_t i, j, used;

	for (i = 0; i < res->names.n; i++)
		if (strncmp(res->names.name[i], "*.", 2) == 0)
			res->wildcard = 1;
	for (i = 0; i < in->nhostnames; i++) {
		for (j = 0; j < res->names.n; j++) {
			if (!upload_name_covers(res->names.name[j], in->hostnames[i]))
				continue;
			if (names_push(&res->covered, in->hostnames[i]) < 0) {
				refuse(res, UPLOAD_E_INTERNAL, "out of memory");
				return -1;
			}
			break;
		}
	}
	if (res->covered.n > 0)
		return 0;
	if (res->names.n == 0) {
		refuse(res, UPLOAD_E_NO_HOSTNAME, "the certificate holds no DNS name");
		return -1;
	}
	refuse(res, UPLOAD_E_NO_HOSTNAME, "the certificate covers ");
	used = strlen(res->message);
	for (i = 0; i < res->names.n; i++) {
		const char *sep = i ? ", " : "";
		size_t room = sizeof(res->message) - used;
		/* Keep room for "..." and the closing words. */
		if (room < 64 || strlen(sep) + strlen(res->names.name[i]) >= room - 48) {
			snprintf(res->message + used, room, "%s...", sep);
			used = strlen(res->message);
			break;
		}
		snprintf(res->message + used, room, "%s%s", sep, res->names.name[i]);
		used = strlen(res->message);
	}
	snprintf(res->message + used, sizeof(res->message) - used, "; none of them is configured");
	return -1;
}

static int collect_facts(struct upload_result *res, X509 *leaf)
{
	if (x509u_serial_hex(leaf, res->serial, sizeof(res->serial)) < 0 ||
	    x509u_sha256_hex(leaf, res->sha256, sizeof(res->sha256)) < 0) {
		refuse(res, UPLOAD_E_INTERNAL, "cannot read the serial number or fingerprint");
		return -1;
	}
	res->issuer_dn = x509u_name_rfc2253_get1(X509_get_issuer_name(leaf));
	res->subject_dn = x509u_name_rfc2253_get1(X509_get_subject_name(leaf));
	if (!res->issuer_dn || !res->subject_dn) {
		refuse(res, UPLOAD_E_INTERNAL, "out of memory");
		return -1;
	}
	if (x509u_dns_names(leaf, &res->names) < 0) {
		refuse(res, UPLOAD_E_CERT_PEM,
		       "the certificate's subjectAltName extension does not decode");
		return -1;
	}
	return 0;
}

int upload_check(const struct upload_input *in, struct upload_result *res)
{
	STACK_OF(X509) *certs = NULL, *chain = NULL, *path = NULL, *inter = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf;
	char a[256];
	int i, ret = -1;

	memset(res, 0, sizeof(*res));
	res->code = UPLOAD_E_INTERNAL;
	if (load_files(in, res, &certs, &chain, &key) < 0)
		goto out;
	if (check_placement(res, certs, chain) < 0)
		goto out;
	leaf = sk_X509_value(certs, 0);
	if (check_key(res, leaf, chain, key) < 0)
		goto out;
	if (check_times(res, leaf, in->now) < 0)
		goto out;
	if (x509u_is_self_signed(leaf)) {
		refuse(res, UPLOAD_E_SELF_SIGNED,
		       "the certificate %s is self-signed; upload a certificate issued by a "
		       "certificate authority",
		       subject_msg(leaf, a, sizeof(a)));
		goto out;
	}
	if (verify_chain(in, res, leaf, chain, &path) < 0)
		goto out;
	if (collect_facts(res, leaf) < 0 || check_names(in, res) < 0)
		goto out;

	/* The verified path without the leaf (first) and the trust anchor (last). */
	inter = sk_X509_new_null();
	if (!inter) {
		refuse(res, UPLOAD_E_INTERNAL, "out of memory");
		goto out;
	}
	for (i = 1; i < sk_X509_num(path) - 1; i++) {
		X509 *x = sk_X509_value(path, i);
		if (!X509_up_ref(x))
			goto nomem;
		if (!sk_X509_push(inter, x)) {
			X509_free(x);
			goto nomem;
		}
	}
	if (!X509_up_ref(leaf))
		goto nomem;
	res->leaf = leaf;
	res->intermediates = inter;
	inter = NULL;
	res->key = key;
	key = NULL;
	res->code = UPLOAD_OK;
	res->message[0] = '\0';
	ret = 0;
	goto out;
nomem:
	refuse(res, UPLOAD_E_INTERNAL, "out of memory");
out:
	if (ret < 0) {
		/* Facts are handed out only on success. */
		x509u_names_free(&res->names);
		x509u_names_free(&res->covered);
		free(res->issuer_dn);
		free(res->subject_dn);
		res->issuer_dn = res->subject_dn = NULL;
		res->serial[0] = res->sha256[0] = '\0';
		res->not_before = res->not_after = 0;
		res->wildcard = 0;
	}
	sk_X509_pop_free(inter, X509_free);
	sk_X509_pop_free(path, X509_free);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ret;
}

void upload_result_free(struct upload_result *res)
{
	if (!res)
		return;
	X509_free(res->leaf);
	sk_X509_pop_free(res->intermediates, X509_free);
	EVP_PKEY_free(res->key);
	free(res->issuer_dn);
	free(res->subject_dn);
	x509u_names_free(&res->names);
	x509u_names_free(&res->covered);
	memset(res, 0, sizeof(*res));
}
