/*
 * jws: the JSON Web Signature pieces ACME needs (RFC 8555 §6.2), pure — no network, no
 * files, no logging.
 *
 * - base64url without padding (RFC 4648 §5, RFC 7515 §2), strict when decoding;
 * - the JWK of an EC P-256 public key (RFC 7518 §6.2.1, full 32-byte coordinates) and the
 *   RFC 7638 thumbprint of a JWK (EC or RSA);
 * - ES256 signatures as the raw 64-byte R||S that JWS uses (RFC 7518 §3.4), not DER;
 * - a request body in the flattened JSON serialization (RFC 7515 §7.2.2) with the
 *   protected header {alg, nonce, url, jwk | kid};
 * - the External Account Binding inner JWS (RFC 8555 §7.3.4): HS256 over the account JWK.
 *
 * Promises: strings handed out are malloc'd, NUL-terminated and the caller's to free();
 * HMAC keys are read only, never copied. The signed bytes are exactly the bytes of the body
 * returned (no re-serialisation after signing). Keys other than EC P-256 are refused for
 * signing (the ACME account key is always ES256, DESIGN §4.1).
 */
#ifndef EDGETLS_CS_JWS_H
#define EDGETLS_CS_JWS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

/* 43 characters: base64url of a SHA-256 digest, plus the NUL. */
#define JWS_THUMBPRINT_LEN 44
#define JWS_ES256_SIG_LEN  64

/* base64url of len bytes, no padding; NULL on allocation failure. */
char *jws_b64u_encode(const void *data, size_t len);
/* Decodes len characters of base64url (no padding, no whitespace; the unused low bits of
 * the last character must be zero) into a malloc'd buffer (*out, *outlen; a NUL follows the
 * data, not counted). 0, or -1 on a character outside the alphabet, a length that no
 * encoding has (len % 4 == 1), non-zero trailing bits, or allocation failure. */
int jws_b64u_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));

/* The JWK of key's public half: {"crv":"P-256","kty":"EC","x":..,"y":..}. NULL when key is
 * not EC P-256. The caller json_decref()s it. */
json_t *jws_jwk_get1(EVP_PKEY *key);
/* RFC 7638: b64u(SHA-256(the required members of jwk, sorted, no whitespace)) into out
 * (JWS_THUMBPRINT_LEN bytes). kty EC (crv, x, y) and RSA (e, n) are known. 0 or -1. */
int jws_jwk_thumbprint(const json_t *jwk, char out[JWS_THUMBPRINT_LEN])
    __attribute__((warn_unused_result));
/* The thumbprint of key's JWK (EC P-256). 0 or -1. */
int jws_key_thumbprint(EVP_PKEY *key, char out[JWS_THUMBPRINT_LEN])
    __attribute__((warn_unused_result));

/* ES256: SHA-256 + ECDSA P-256 over data, as R||S, each left-padded to 32 bytes. 0 or -1. */
int jws_es256_sign(EVP_PKEY *key, const void *data, size_t len, uint8_t sig[JWS_ES256_SIG_LEN])
    __attribute__((warn_unused_result));
/* HMAC-SHA256 of data under key. 0 or -1. */
int jws_hs256(const uint8_t *key, size_t keylen, const void *data, size_t len, uint8_t mac[32])
    __attribute__((warn_unused_result));

/*
 * The body of an ACME POST: {"protected":..,"payload":..,"signature":..} signed with key
 * (ES256). The protected header holds alg, nonce (required), url, and kid when kid is not
 * NULL, else the key's jwk (newAccount, RFC 8555 §6.2). payload NULL means POST-as-GET:
 * the empty payload "" (RFC 8555 §6.3); otherwise payload_len bytes are encoded. Returns a
 * malloc'd compact JSON string, or NULL.
 */
char *jws_sign_request(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                       const void *payload, size_t payload_len);

/*
 * The externalAccountBinding value of a newAccount payload (RFC 8555 §7.3.4): a flattened
 * JWS with protected {"alg":"HS256","kid":eab_kid,"url":url} (no nonce), payload = the JWK of
 * account_key, signed with HMAC-SHA256 under the decoded MAC key. NULL on failure. The
 * caller json_decref()s it.
 */
json_t *jws_eab_get1(EVP_PKEY *account_key, const char *eab_kid, const uint8_t *hmac_key,
                     size_t hmac_keylen, const char *url);

#endif
