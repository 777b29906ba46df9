/*
 * eval: the agent's mTLS verdict for one client certificate (DESIGN §2.1-§2.3).
 *
 * Pure: DER bytes, a trust store built once per policy and a time in; a class, a reason
 * token and the full list of (error, depth) pairs out. No sockets, no libev, no globals.
 *
 * Promises:
 * - The modes are the snapshot's Edgetls__Mode (lib/policy.proto), used as they are.
 * - Every certificate of the chain-of-trust file is a trust anchor (PARTIAL_CHAIN). The
 *   path is built from the leaf by issuer name and key identifier, whatever the order in
 *   which the client sent its certificates, and stops at the first anchor; certificates
 *   beyond it are never consulted.
 * - depth N counts the CA certificates on the path up to and including that anchor; the
 *   path is valid only if the count is <= N. Depth 0 allows only a self-signed leaf that
 *   is itself in the trust file. A path that reaches no anchor is "untrusted" whatever N:
 *   OpenSSL's own depth limit is set far above any product depth so that it never cuts a
 *   path short (a cut path would read "chain-too-long" where the truth is "untrusted", or
 *   the reverse); the product depth is checked on the built path afterwards.
 * - Every certificate on the path up to and including the anchor is checked: signatures
 *   (the anchor's own excepted), validity at `now` (the anchor's too, and the top of a path
 *   that reaches no anchor), CA basic constraints and key usage, clientAuth when the leaf
 *   has an EKU, RFC 5280 strictness, revocation (see CRLs below). A self-signed leaf that
 *   is not pinned must carry a valid self-signature.
 * - Every error is recorded (the verify callback always says "go on"); the verdict comes
 *   only from eval_classify(), where an empty list is the only way to SUCCESS, and to
 *   LENIENT outside optional-no-ca. Internal failures are recorded: fail closed.
 * - Client input is capped before it is parsed: EVAL_MAX_CHAIN_CERTS certificates and
 *   EVAL_MAX_CHAIN_BYTES bytes of chain.
 * - A struct eval_trust is immutable once built and may be used by many threads at once.
 *
 * CRLs. With CRLs in the policy, OpenSSL checks every certificate of the path
 * (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL), then two kinds of its errors are
 * dropped:
 * - any revocation error at the anchor: an anchor is trusted as configured, like its
 *   signature (OpenSSL 3.0 would otherwise ask for a CRL of the anchor's issuer, which a
 *   trust file holding an intermediate cannot give: every path would fail). To distrust a
 *   CA, remove it from the trust file.
 * - "unable to get CRL" for a certificate whose issuer has no CRL at all in the policy:
 *   revocation is checked per CA, for the CAs that publish a CRL in the trust file. The
 *   CRLs come from the configuration, never from the client, so a client cannot switch a
 *   check off; a CA without a CRL is a configuration choice (certsync may warn about it).
 * Every other CRL problem of a CA that has a CRL (expired, not yet valid, bad signature,
 * issuer not found, unhandled critical extension, scope) fails closed: "crl-invalid".
 */
#ifndef EDGETLS_AGENT_EVAL_H
#define EDGETLS_AGENT_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "policy.pb-c.h"

#define EVAL_MAX_ERRORS      16          /* (error, depth) pairs kept per evaluation */
#define EVAL_MAX_CHAIN_CERTS 16          /* certificates accepted from the client */
#define EVAL_MAX_CHAIN_BYTES (64u << 10) /* bytes of chain accepted from the client */

enum eval_class {
	EVAL_SUCCESS, /* required, valid */
	EVAL_LENIENT, /* optional / permissive valid; optional-no-ca valid or trust errors only */
	EVAL_FAILED,
};

/*
 * Error codes of our own, next to OpenSSL's X509_V_ERR_* (which are >= 0).
 */
#define EVAL_ERR_MALFORMED (-1) /* DER that does not parse, or bytes after it */
#define EVAL_ERR_TOO_MANY  (-2) /* the client's chain is over the count or byte cap */
#define EVAL_ERR_OVERFLOW  (-3) /* more errors than EVAL_MAX_ERRORS: the rest is lost */
#define EVAL_ERR_INTERNAL  (-4) /* allocation or library failure: the checks did not run */

/*
 * Reason tokens (DESIGN §2.4), stable and lowercase. When several errors are recorded the
 * one earliest in this table names the failure (in optional-no-ca: the earliest among the
 * errors that are not tolerated). "internal" and "crl-invalid" are additions to DESIGN's
 * list.
 *
 * | token                  | meaning                          | codes                          |
 * |------------------------|----------------------------------|--------------------------------|
 * | internal               | the evaluation could not run     | EVAL_ERR_INTERNAL, UNSPECIFIED,|
 * |                        | (allocation, library failure)    | OUT_OF_MEM, INVALID_CALL,      |
 * |                        |                                  | STORE_LOOKUP                   |
 * | malformed              | does not parse, or breaks the    | EVAL_ERR_MALFORMED, _TOO_MANY, |
 * |                        | structure rules of RFC 5280      | _OVERFLOW, UNABLE_TO_DECODE_   |
 * |                        | (X509_V_FLAG_X509_STRICT)        | ISSUER_PUBLIC_KEY, ERROR_IN_   |
 * |                        |                                  | CERT_NOT_BEFORE/AFTER_FIELD,   |
 * |                        |                                  | UNHANDLED_CRITICAL_EXTENSION,  |
 * |                        |                                  | INVALID_NON_CA, INVALID_(POLICY|
 * |                        |                                  | _)EXTENSION, UNSUPPORTED_*,    |
 * |                        |                                  | UNNESTED_RESOURCE, SUBTREE_    |
 * |                        |                                  | MINMAX, APPLICATION_VERIFICA-  |
 * |                        |                                  | TION, PATH_LOOP, SUITE_B_*,    |
 * |                        |                                  | SIGNATURE_ALGORITHM_INCONSIS-  |
 * |                        |                                  | TENCY, 80-94 (strict checks),  |
 * |                        |                                  | and any code not in this table |
 * | bad-signature          | a signature does not verify, or  | UNABLE_TO_DECRYPT_CERT_SIGNA-  |
 * |                        | uses a refused algorithm/key     | TURE, CERT_SIGNATURE_FAILURE,  |
 * |                        |                                  | NO_ISSUER_PUBLIC_KEY, EE/CA_   |
 * |                        |                                  | KEY_TOO_SMALL, CA_MD_TOO_WEAK, |
 * |                        |                                  | UNSUPPORTED_SIGNATURE_ALGO-    |
 * |                        |                                  | RITHM, SIGNATURE_ALGORITHM_    |
 * |                        |                                  | MISMATCH                       |
 * | revoked                | listed in a CRL                  | CERT_REVOKED                   |
 * | expired                | notAfter before now              | CERT_HAS_EXPIRED               |
 * | not-yet-valid          | notBefore after now              | CERT_NOT_YET_VALID             |
 * | bad-purpose            | not allowed to do what the path  | INVALID_PURPOSE, INVALID_CA,   |
 * |                        | makes it do: no clientAuth, a    | PATH_LENGTH_EXCEEDED, KEYUSAGE_|
 * |                        | non-CA as issuer, key usage,     | NO_CERTSIGN/_DIGITAL_SIGNATURE,|
 * |                        | path length, name constraints,   | PERMITTED/EXCLUDED_VIOLATION,  |
 * |                        | policies, proxy certificates     | NO_EXPLICIT_POLICY, PROXY_*,   |
 * |                        |                                  | HOSTNAME/EMAIL/IP_ADDRESS_MIS- |
 * |                        |                                  | MATCH, NO_VALID_SCTS, CERT_    |
 * |                        |                                  | REJECTED                       |
 * | self-signed-not-pinned | a self-signed leaf absent from   | DEPTH_ZERO_SELF_SIGNED_CERT    |
 * |                        | the trust file                   |                                |
 * | untrusted              | the path reaches no anchor       | UNABLE_TO_GET_ISSUER_CERT(_LO- |
 * |                        |                                  | CALLY), UNABLE_TO_VERIFY_LEAF_ |
 * |                        |                                  | SIGNATURE, SELF_SIGNED_CERT_IN_|
 * |                        |                                  | CHAIN, CERT_UNTRUSTED, SUBJECT_|
 * |                        |                                  | ISSUER_MISMATCH, AKID_*_MIS-   |
 * |                        |                                  | MATCH, DANE_NO_MATCH           |
 * | chain-too-long         | an anchor is reached beyond the  | CERT_CHAIN_TOO_LONG            |
 * |                        | depth (depth 0: any leaf that is |                                |
 * |                        | not a pinned self-signed one)    |                                |
 * | crl-invalid            | a CA on the path has a CRL in    | UNABLE_TO_GET_CRL, UNABLE_TO_  |
 * |                        | the policy but its revocation    | DECRYPT_CRL_SIGNATURE, CRL_    |
 * |                        | status cannot be established     | SIGNATURE_FAILURE, CRL_NOT_YET_|
 * |                        | (stale CRL, bad CRL signature,   | VALID, CRL_HAS_EXPIRED, ERROR_ |
 * |                        | no usable CRL, CRL issuer not    | IN_CRL_*_FIELD, UNABLE_TO_GET_ |
 * |                        | found): fail closed              | CRL_ISSUER, KEYUSAGE_NO_CRL_   |
 * |                        |                                  | SIGN, UNHANDLED_CRITICAL_CRL_  |
 * |                        |                                  | EXTENSION, DIFFERENT_CRL_SCOPE,|
 * |                        |                                  | CRL_PATH_VALIDATION_ERROR,     |
 * |                        |                                  | OCSP_*                         |
 *
 * Trust class (the only errors optional-no-ca tolerates): UNABLE_TO_GET_ISSUER_CERT,
 * UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE,
 * DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN, CERT_UNTRUSTED.
 * "crl-invalid" comes last: it is a fact about the configuration, not the certificate,
 * and the facts about the certificate are what a client or an operator acts on first.
 */
enum eval_reason {
	EVAL_R_NONE = 0, /* no error */
	EVAL_R_INTERNAL,
	EVAL_R_MALFORMED,
	EVAL_R_BAD_SIGNATURE,
	EVAL_R_REVOKED,
	EVAL_R_EXPIRED,
	EVAL_R_NOT_YET_VALID,
	EVAL_R_BAD_PURPOSE,
	EVAL_R_SELF_SIGNED_NOT_PINNED,
	EVAL_R_UNTRUSTED,
	EVAL_R_CHAIN_TOO_LONG,
	EVAL_R_CRL_INVALID,
	EVAL_R_COUNT
};

struct eval_error {
	int code;  /* X509_V_ERR_* or EVAL_ERR_* */
	int depth; /* 0 = leaf, upwards along the built path; for EVAL_ERR_MALFORMED, the
	              position in what the client sent (0 leaf, 1.. chain); -1 = none */
};

struct eval_result {
	enum eval_class cls;
	const char *reason; /* token of the primary error; NULL exactly when nerr == 0 (a
	                       LENIENT optional-no-ca result names its tolerated error) */
	size_t nerr;
	struct eval_error err[EVAL_MAX_ERRORS];
	int path_len;          /* certificates on the built path, leaf included; 0 if not built */
	int anchored;          /* 1 when the path reached an anchor */
	X509 *leaf;            /* the parsed leaf, owned; NULL when it did not parse */
	STACK_OF(X509) * sent; /* owned: the certificates the client sent with the leaf (copies
	                          of the leaf left out), in its order; NULL when none */
};

struct eval_trust;

/*
 * Builds the trust of one policy: an X509_STORE holding every anchor (DER of every
 * certificate of the chain-of-trust file) and every CRL (DER). n and ncrl may be 0.
 * Returns 0 and *out (free with eval_trust_free), or -1 with the reason in err
 * ("anchor 3: DER does not parse").
 */
int eval_trust_new(const ProtobufCBinaryData *anchors, size_t n, const ProtobufCBinaryData *crls,
                   size_t ncrl, struct eval_trust **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void eval_trust_free(struct eval_trust *t);

/*
 * Evaluates one client certificate under mode (required, optional, optional-no-ca or
 * permissive) and depth. t may be NULL (no chain-of-trust file: nothing is an anchor).
 * chain_der is the concatenated DER the client sent after its leaf, in its order, maybe
 * empty; extra, the intermediates seen earlier with this leaf, is used only when chain_len
 * is 0 (a resumed session) and may be NULL. now is the time of the check.
 * Fills *res (release with eval_result_clear) and returns 0. Returns -1 when the call
 * itself is wrong (res NULL, mode disabled or unknown); res, if any, then says FAILED,
 * "internal". An empty leaf is "malformed": "no certificate" is the caller's NONE.
 */
int eval_run(const struct eval_trust *t, Edgetls__Mode mode, unsigned depth,
             const uint8_t *leaf_der, size_t leaf_len, const uint8_t *chain_der, size_t chain_len,
             STACK_OF(X509) * extra, time_t now, struct eval_result *res)
    __attribute__((warn_unused_result));

/* Frees what res owns and zeroes it. */
void eval_result_clear(struct eval_result *res);

/*
 * The one function that turns recorded errors into a class (DESIGN §2.1): no error is
 * SUCCESS in required and LENIENT in optional, optional-no-ca and permissive; in
 * optional-no-ca, errors that are all of the trust class are LENIENT; anything else is
 * FAILED. Any other mode (disabled is never evaluated) is FAILED. *reason (if reason is
 * not NULL) gets the primary token, NULL when n is 0.
 */
enum eval_class eval_classify(Edgetls__Mode mode, const struct eval_error *errs, size_t n,
                              const char **reason);

/* The reason of one error code (unknown codes: EVAL_R_MALFORMED). */
enum eval_reason eval_reason_of(int code);
/* The token of a reason ("expired"); NULL for EVAL_R_NONE or out of range. */
const char *eval_reason_token(enum eval_reason r);
/* 1 when code is of the trust class that optional-no-ca tolerates. */
int eval_is_trust_error(int code);
/* A description of a code for logs (OpenSSL's for X509_V_ERR_*). */
const char *eval_error_string(int code);
/* "SUCCESS", "LENIENT", "FAILED". */
const char *eval_class_name(enum eval_class c);

#endif
