/* eval: the mTLS verdict; see eval.h for what it promises and why. */
#include "eval.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "banned.h"

struct eval_trust {
	X509_STORE *store;
	/* The CRLs again, to tell which CAs publish one (see eval.h, CRLs). Read-only after
	 * eval_trust_new: their names were decoded from DER, so X509_NAME_cmp writes no
	 * cache and concurrent readers are safe. */
	STACK_OF(X509_CRL) * crls;
};

/* ---- reasons ------------------------------------------------------------------------- */

static const char *const tokens[EVAL_R_COUNT] = {
    [EVAL_R_NONE] = NULL,
    [EVAL_R_INTERNAL] = "internal",
    [EVAL_R_MALFORMED] = "malformed",
    [EVAL_R_BAD_SIGNATURE] = "bad-signature",
    [EVAL_R_REVOKED] = "revoked",
    [EVAL_R_EXPIRED] = "expired",
    [EVAL_R_NOT_YET_VALID] = "not-yet-valid",
    [EVAL_R_BAD_PURPOSE] = "bad-purpose",
    [EVAL_R_SELF_SIGNED_NOT_PINNED] = "self-signed-not-pinned",
    [EVAL_R_UNTRUSTED] = "untrusted",
    [EVAL_R_CHAIN_TOO_LONG] = "chain-too-long",
    [EVAL_R_CRL_INVALID] = "crl-invalid",
};

const char *eval_reason_token(enum eval_reason r)
{
	if ((int)r < 0 || r >= EVAL_R_COUNT)
		return NULL;
	return tokens[r];
}

enum eval_reason eval_reason_of(int code)
{
	switch (code) {
	case EVAL_ERR_INTERNAL:
	case X509_V_ERR_UNSPECIFIED:
	case X509_V_ERR_OUT_OF_MEM:
	case X509_V_ERR_INVALID_CALL:
	case X509_V_ERR_STORE_LOOKUP:
		return EVAL_R_INTERNAL;

	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_NO_ISSUER_PUBLIC_KEY:
	case X509_V_ERR_EE_KEY_TOO_SMALL:
	case X509_V_ERR_CA_KEY_TOO_SMALL:
	case X509_V_ERR_CA_MD_TOO_WEAK:
	case X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM:
	case X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH:
		return EVAL_R_BAD_SIGNATURE;

	case X509_V_ERR_CERT_REVOKED:
		return EVAL_R_REVOKED;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return EVAL_R_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return EVAL_R_NOT_YET_VALID;

	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
	case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
	case X509_V_ERR_PERMITTED_VIOLATION:
	case X509_V_ERR_EXCLUDED_VIOLATION:
	case X509_V_ERR_NO_EXPLICIT_POLICY:
	case X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED:
	case X509_V_ERR_PROXY_CERTIFICATES_NOT_ALLOWED:
	case X509_V_ERR_PROXY_SUBJECT_NAME_VIOLATION:
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_EMAIL_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
	case X509_V_ERR_NO_VALID_SCTS:
	case X509_V_ERR_CERT_REJECTED:
		return EVAL_R_BAD_PURPOSE;

	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return EVAL_R_SELF_SIGNED_NOT_PINNED;

	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_SUBJECT_ISSUER_MISMATCH:
	case X509_V_ERR_AKID_SKID_MISMATCH:
	case X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH:
	case X509_V_ERR_DANE_NO_MATCH:
		return EVAL_R_UNTRUSTED;

	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
		return EVAL_R_CHAIN_TOO_LONG;

	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
	case X509_V_ERR_OCSP_VERIFY_NEEDED:
	case X509_V_ERR_OCSP_VERIFY_FAILED:
	case X509_V_ERR_OCSP_CERT_UNKNOWN:
		return EVAL_R_CRL_INVALID;

	default:
		/* EVAL_ERR_MALFORMED/_TOO_MANY/_OVERFLOW, the structure checks, and every code
		 * this table does not know: an unknown error is never a pass. */
		return EVAL_R_MALFORMED;
	}
}

int eval_is_trust_error(int code)
{
	switch (code) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
		return 1;
	default:
		return 0;
	}
}

/* Revocation errors: the ones dropped at an anchor (eval.h, CRLs). */
static int is_crl_error(int code)
{
	return code == X509_V_ERR_CERT_REVOKED || eval_reason_of(code) == EVAL_R_CRL_INVALID;
}

const char *eval_error_string(int code)
{
	switch (code) {
	case EVAL_ERR_MALFORMED:
		return "certificate DER does not parse";
	case EVAL_ERR_TOO_MANY:
		return "client chain over the certificate or byte cap";
	case EVAL_ERR_OVERFLOW:
		return "too many errors to record";
	case EVAL_ERR_INTERNAL:
		return "internal error during verification";
	default:
		return code >= 0 ? X509_verify_cert_error_string(code) : "unknown error";
	}
}

const char *eval_class_name(enum eval_class c)
{
	switch (c) {
	case EVAL_SUCCESS:
		return "SUCCESS";
	case EVAL_LENIENT:
		return "LENIENT";
	default:
		return "FAILED";
	}
}

enum eval_class eval_classify(Edgetls__Mode mode, const struct eval_error *errs, size_t n,
                              const char **reason)
{
	enum eval_reason best = EVAL_R_NONE, best_bad = EVAL_R_NONE;
	enum eval_class cls;
	size_t i;

	if (!errs)
		n = 0;
	for (i = 0; i < n; i++) {
		enum eval_reason r = eval_reason_of(errs[i].code);

		if (best == EVAL_R_NONE || r < best)
			best = r;
		if (!eval_is_trust_error(errs[i].code) && (best_bad == EVAL_R_NONE || r < best_bad))
			best_bad = r;
	}
	switch (mode) {
	case EDGETLS__MODE__MODE_REQUIRED:
		cls = n == 0 ? EVAL_SUCCESS : EVAL_FAILED;
		break;
	case EDGETLS__MODE__MODE_OPTIONAL:
	case EDGETLS__MODE__MODE_PERMISSIVE:
		cls = n == 0 ? EVAL_LENIENT : EVAL_FAILED;
		break;
	case EDGETLS__MODE__MODE_OPTIONAL_NO_CA:
		/* DESIGN §2.3: trust errors only are tolerated; the failure is then named by
		 * what was not tolerated. */
		cls = best_bad == EVAL_R_NONE ? EVAL_LENIENT : EVAL_FAILED;
		if (cls == EVAL_FAILED)
			best = best_bad;
		break;
	default:
		cls = EVAL_FAILED;
		best = EVAL_R_INTERNAL;
		break;
	}
	if (reason)
		*reason = eval_reason_token(best);
	return cls;
}

/* ---- trust --------------------------------------------------------------------------- */

void eval_trust_free(struct eval_trust *t)
{
	if (!t)
		return;
	X509_STORE_free(t->store);
	sk_X509_CRL_pop_free(t->crls, X509_CRL_free);
	free(t);
}

int eval_trust_new(const ProtobufCBinaryData *anchors, size_t n, const ProtobufCBinaryData *crls,
                   size_t ncrl, struct eval_trust **out, char *err, size_t errlen)
{
	struct eval_trust *t = NULL;
	X509 *x = NULL;
	X509_CRL *c = NULL;
	size_t i;
	int ret = -1;

	*out = NULL;
	if ((n && !anchors) || (ncrl && !crls)) {
		snprintf(err, errlen, "no anchors or CRLs given");
		goto out;
	}
	t = calloc(1, sizeof(*t));
	if (!t || !(t->store = X509_STORE_new()) || !(t->crls = sk_X509_CRL_new_null())) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const unsigned char *p = anchors[i].data;

		if (anchors[i].len == 0 || anchors[i].len > LONG_MAX ||
		    !(x = d2i_X509(NULL, &p, (long)anchors[i].len)) ||
		    p != anchors[i].data + anchors[i].len) {
			snprintf(err, errlen, "anchor %zu: DER does not parse", i + 1);
			goto out;
		}
		if (!X509_STORE_add_cert(t->store, x)) {
			snprintf(err, errlen, "anchor %zu: cannot add it to the store", i + 1);
			goto out;
		}
		X509_free(x);
		x = NULL;
	}
	for (i = 0; i < ncrl; i++) {
		const unsigned char *p = crls[i].data;

		if (crls[i].len == 0 || crls[i].len > LONG_MAX ||
		    !(c = d2i_X509_CRL(NULL, &p, (long)crls[i].len)) ||
		    p != crls[i].data + crls[i].len) {
			snprintf(err, errlen, "CRL %zu: DER does not parse", i + 1);
			goto out;
		}
		if (!X509_STORE_add_crl(t->store, c) || !X509_CRL_up_ref(c) ||
		    !sk_X509_CRL_push(t->crls, c)) {
			snprintf(err, errlen, "CRL %zu: cannot add it to the store", i + 1);
			goto out;
		}
		X509_CRL_free(c);
		c = NULL;
	}
	*out = t;
	t = NULL;
	ret = 0;
out:
	X509_free(x);
	X509_CRL_free(c);
	eval_trust_free(t);
	return ret;
}

/* ---- recording ----------------------------------------------------------------------- */

static int has_error(const struct eval_result *res, int code, int depth)
{
	size_t i;

	for (i = 0; i < res->nerr; i++)
		if (res->err[i].code == code && res->err[i].depth == depth)
			return 1;
	return 0;
}

/* Appends (code, depth) unless already there. A full list ends with EVAL_ERR_OVERFLOW, so
 * that losing errors can never turn into a pass. */
static void record(struct eval_result *res, int code, int depth)
{
	if (has_error(res, code, depth))
		return;
	if (has_error(res, EVAL_ERR_OVERFLOW, -1))
		return;
	if (res->nerr == EVAL_MAX_ERRORS - 1) {
		res->err[res->nerr].code = EVAL_ERR_OVERFLOW;
		res->err[res->nerr].depth = -1;
		res->nerr++;
		return;
	}
	res->err[res->nerr].code = code;
	res->err[res->nerr].depth = depth;
	res->nerr++;
}

static void drop_error(struct eval_result *res, size_t i)
{
	memmove(&res->err[i], &res->err[i + 1], (res->nerr - i - 1) * sizeof(res->err[0]));
	res->nerr--;
}

/* OpenSSL calls this for every certificate and every error; saying "go on" (1) makes it
 * run every check, so the list is complete (mtls.md §4.3). */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	struct eval_result *res = X509_STORE_CTX_get_app_data(ctx);

	if (!ok && res)
		record(res, X509_STORE_CTX_get_error(ctx), X509_STORE_CTX_get_error_depth(ctx));
	return 1;
}

/* ---- parsing ------------------------------------------------------------------------- */

/* One certificate from p[0..len); *used gets the bytes it took. NULL when it does not
 * parse. */
static X509 *parse_one(const uint8_t *p, size_t len, size_t *used)
{
	const unsigned char *q = p;
	X509 *x;

	if (len == 0 || len > LONG_MAX)
		return NULL;
	x = d2i_X509(NULL, &q, (long)len);
	if (x)
		*used = (size_t)(q - p);
	return x;
}

/* The client's chain into res->sent; 0, or -1 with the error recorded. */
static int parse_chain(struct eval_result *res, const uint8_t *der, size_t len)
{
	size_t off = 0, used = 0;
	int pos = 1;
	X509 *x = NULL;

	if (len == 0)
		return 0;
	if (len > EVAL_MAX_CHAIN_BYTES) {
		record(res, EVAL_ERR_TOO_MANY, -1);
		return -1;
	}
	if (!(res->sent = sk_X509_new_null())) {
		record(res, EVAL_ERR_INTERNAL, -1);
		return -1;
	}
	while (off < len) {
		if (sk_X509_num(res->sent) >= EVAL_MAX_CHAIN_CERTS) {
			record(res, EVAL_ERR_TOO_MANY, pos);
			return -1;
		}
		if (!(x = parse_one(der + off, len - off, &used))) {
			record(res, EVAL_ERR_MALFORMED, pos);
			return -1;
		}
		off += used;
		pos++;
		if (X509_cmp(x, res->leaf) == 0) { /* the leaf again: not an intermediate */
			X509_free(x);
			continue;
		}
		if (!sk_X509_push(res->sent, x)) {
			X509_free(x);
			record(res, EVAL_ERR_INTERNAL, -1);
			return -1;
		}
	}
	if (sk_X509_num(res->sent) == 0) { /* nothing but copies of the leaf */
		sk_X509_free(res->sent);
		res->sent = NULL;
	}
	return 0;
}

/* ---- post-checks on the built path --------------------------------------------------- */

/* 1 when the policy holds a CRL issued under the name that issued x. */
static int issuer_has_crl(const struct eval_trust *t, const X509 *x)
{
	const X509_NAME *in = X509_get_issuer_name(x);
	int i;

	for (i = 0; t && i < sk_X509_CRL_num(t->crls); i++)
		if (X509_NAME_cmp(X509_CRL_get_issuer(sk_X509_CRL_value(t->crls, i)), in) == 0)
			return 1;
	return 0;
}

/* The CRL errors the policy does not treat as failures (eval.h, CRLs). */
static void filter_crl_errors(struct eval_result *res, const struct eval_trust *t,
                              STACK_OF(X509) * chain, int anchored)
{
	int len = sk_X509_num(chain);
	size_t i = 0;

	while (i < res->nerr) {
		const struct eval_error *e = &res->err[i];
		int drop = 0;

		if (is_crl_error(e->code) && e->depth >= 0 && e->depth < len) {
			if (anchored && e->depth == len - 1)
				drop = 1;
			else if (e->code == X509_V_ERR_UNABLE_TO_GET_CRL &&
			         !issuer_has_crl(t, sk_X509_value(chain, e->depth)))
				drop = 1;
		}
		if (drop)
			drop_error(res, i);
		else
			i++;
	}
}

/* Validity of every certificate on the path, the anchor and the top of an unanchored path
 * included. OpenSSL checks most of them itself (has_error keeps this from counting twice);
 * this makes the rule hold whatever the library version skips. */
static void check_times(struct eval_result *res, STACK_OF(X509) * chain, time_t now)
{
	int i;

	for (i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		int nb = X509_cmp_time(X509_get0_notBefore(x), &now);
		int na = X509_cmp_time(X509_get0_notAfter(x), &now);

		if (nb == 0)
			record(res, X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD, i);
		else if (nb > 0)
			record(res, X509_V_ERR_CERT_NOT_YET_VALID, i);
		if (na == 0)
			record(res, X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD, i);
		else if (na < 0)
			record(res, X509_V_ERR_CERT_HAS_EXPIRED, i);
	}
}

static int has_trust_error(const struct eval_result *res)
{
	size_t i;

	for (i = 0; i < res->nerr; i++)
		if (eval_is_trust_error(res->err[i].code))
			return 1;
	return 0;
}

/* ---- evaluation ---------------------------------------------------------------------- */

void eval_result_clear(struct eval_result *res)
{
	if (!res)
		return;
	X509_free(res->leaf);
	sk_X509_pop_free(res->sent, X509_free);
	memset(res, 0, sizeof(*res));
}

static void finish(struct eval_result *res, Edgetls__Mode mode)
{
	res->cls = eval_classify(mode, res->err, res->nerr, &res->reason);
}

/* Runs OpenSSL's verification and the product's own checks; errors go to res. */
static void verify(struct eval_result *res, const struct eval_trust *t, Edgetls__Mode mode,
                   unsigned depth, STACK_OF(X509) * extra, time_t now)
{
	X509_STORE *tmp = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	STACK_OF(X509) *untrusted = NULL, *chain;
	STACK_OF(X509) *src = res->sent ? res->sent : extra; /* extra is NULL unless resumed */
	unsigned long flags = X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN;
	int i, len, r, self_signed;

	if (extra && sk_X509_num(extra) > EVAL_MAX_CHAIN_CERTS) {
		record(res, EVAL_ERR_TOO_MANY, -1);
		goto out;
	}
	if (!(untrusted = sk_X509_new_null()))
		goto internal;
	for (i = 0; src && i < sk_X509_num(src); i++) /* borrowed: res and extra outlive ctx */
		if (!sk_X509_push(untrusted, sk_X509_value(src, i)))
			goto internal;
	if (!t && !(tmp = X509_STORE_new()))
		goto internal;
	if (!(ctx = X509_STORE_CTX_new()) ||
	    !X509_STORE_CTX_init(ctx, t ? t->store : tmp, res->leaf, untrusted) ||
	    !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) ||
	    !X509_STORE_CTX_set_app_data(ctx, res))
		goto internal;
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	param = X509_STORE_CTX_get0_param(ctx);
	if (t && sk_X509_CRL_num(t->crls) > 0)
		flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
	if (!X509_VERIFY_PARAM_set_flags(param, flags))
		goto internal;
	X509_VERIFY_PARAM_set_time(param, now);
	/* Far above any path the capped input can build: OpenSSL must never cut the path
	 * (eval.h); the product depth is checked below. */
	X509_VERIFY_PARAM_set_depth(param, EVAL_MAX_CHAIN_CERTS + 2);

	r = X509_verify_cert(ctx);
	if (r != 1) {
		/* The callback always says "go on": anything but 1 is the library failing. */
		int e = X509_STORE_CTX_get_error(ctx);

		if (e != X509_V_OK)
			record(res, e, X509_STORE_CTX_get_error_depth(ctx));
		record(res, EVAL_ERR_INTERNAL, -1);
	}
	chain = X509_STORE_CTX_get0_chain(ctx);
	len = chain ? sk_X509_num(chain) : 0;
	if (len <= 0) {
		record(res, EVAL_ERR_INTERNAL, -1);
		goto out;
	}
	res->path_len = len;
	/* PARTIAL_CHAIN stops at the first certificate from the store: when there is one,
	 * it is the last of the path. */
	res->anchored = X509_STORE_CTX_get_num_untrusted(ctx) < len;

	if (t && sk_X509_CRL_num(t->crls) > 0)
		filter_crl_errors(res, t, chain, res->anchored);
	check_times(res, chain, now);

	/* OpenSSL never checks the signature of what it takes for a root; a self-signed
	 * leaf that is not the pinned anchor must prove its own key (DESIGN §2.3). */
	self_signed = X509_self_signed(res->leaf, 0) == 1;
	if (self_signed && !(res->anchored && len == 1) && X509_self_signed(res->leaf, 1) != 1)
		record(res, X509_V_ERR_CERT_SIGNATURE_FAILURE, 0);

	/* Fail closed if the library ever reports no anchor without saying so. */
	if (!res->anchored && !has_trust_error(res))
		record(res, X509_V_ERR_CERT_UNTRUSTED, len - 1);

	/* The product depth (DESIGN §2.2): CA certificates up to and including the anchor. */
	if (res->anchored && mode != EDGETLS__MODE__MODE_OPTIONAL_NO_CA) {
		unsigned cas = (unsigned)(len - 1);

		if (cas > depth || (depth == 0 && !self_signed))
			record(res, X509_V_ERR_CERT_CHAIN_TOO_LONG, len - 1);
	}
	goto out;
internal:
	record(res, EVAL_ERR_INTERNAL, -1);
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(tmp);
	sk_X509_free(untrusted);
}

int eval_run(const struct eval_trust *t, Edgetls__Mode mode, unsigned depth,
             const uint8_t *leaf_der, size_t leaf_len, const uint8_t *chain_der, size_t chain_len,
             STACK_OF(X509) * extra, time_t now, struct eval_result *res)
{
	size_t used = 0;

	if (!res)
		return -1;
	memset(res, 0, sizeof(*res));
	switch (mode) {
	case EDGETLS__MODE__MODE_REQUIRED:
	case EDGETLS__MODE__MODE_OPTIONAL:
	case EDGETLS__MODE__MODE_OPTIONAL_NO_CA:
	case EDGETLS__MODE__MODE_PERMISSIVE:
		break;
	default:
		record(res, EVAL_ERR_INTERNAL, -1);
		finish(res, mode);
		return -1;
	}
	if (!leaf_der || !(res->leaf = parse_one(leaf_der, leaf_len, &used)) || used != leaf_len) {
		X509_free(res->leaf);
		res->leaf = NULL;
		record(res, EVAL_ERR_MALFORMED, 0);
		goto out;
	}
	if (chain_len > 0 && !chain_der) {
		record(res, EVAL_ERR_MALFORMED, 1);
		goto out;
	}
	if (parse_chain(res, chain_der, chain_len) < 0)
		goto out;
	/* DESIGN §2.2: remembered intermediates only on a resumed session (no chain) */
	verify(res, t, mode, depth, chain_len == 0 ? extra : NULL, now);
out:
	finish(res, mode);
	return 0;
}
