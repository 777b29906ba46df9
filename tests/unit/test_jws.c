/* Unit tests of certsync/jws: base64url (RFC 4648 §10 vectors), the RFC 7638 §3.1
 * thumbprint, HS256 (RFC 7515 A.1), ES256 as R||S verified by OpenSSL after converting
 * back to DER, the request body and the EAB inner JWS taken apart again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "jws.h"

static void check_enc(const char *in, const char *want)
{
	char *s = jws_b64u_encode(in, strlen(in));
	uint8_t *d = NULL;
	size_t dl = 0;

	assert_non_null(s);
	assert_string_equal(s, want);
	assert_int_equal(jws_b64u_decode(s, strlen(s), &d, &dl), 0);
	assert_int_equal(dl, strlen(in));
	assert_memory_equal(d, in, dl);
	free(d);
	free(s);
}

static void test_b64u_vectors(void **state)
{
	static const uint8_t bin[] = {0xfb, 0xff, 0xbf};
	char *s;
	(void)state;

	check_enc("", "");
	check_enc("f", "Zg");
	check_enc("fo", "Zm8");
	check_enc("foo", "Zm9v");
	check_enc("foob", "Zm9vYg");
	check_enc("fooba", "Zm9vYmE");
	check_enc("foobar", "Zm9vYmFy");
	/* the two characters that differ from base64 */
	s = jws_b64u_encode(bin, sizeof(bin));
	assert_string_equal(s, "-_-_");
	free(s);
}

static void test_b64u_rejects(void **state)
{
	static const char *const bad[] = {"Zg=",  "Z",    "Zh",    "Zm9v!",
	                                  "Zm+v", "Zm/v", "Zm9vY", "Zm 9v"};
	uint8_t *d = NULL;
	size_t dl = 99, i;
	(void)state;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(jws_b64u_decode(bad[i], strlen(bad[i]), &d, &dl), -1);
		assert_null(d);
		assert_int_equal(dl, 0);
	}
}

/* RFC 7638 §3.1: the example RSA key and its thumbprint. */
static void test_thumbprint_rfc7638(void **state)
{
	static const char jwk_text[] =
	    "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAt"
	    "VT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl"
	    "93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL"
	    "5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls"
	    "1jF44-csFCur-kEgU8awapJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-"
	    "29\"}";
	char tp[JWS_THUMBPRINT_LEN];
	json_t *jwk = json_loads(jwk_text, 0, NULL);
	(void)state;

	assert_non_null(jwk);
	/* alg and kid are not required members: they must not change the thumbprint */
	assert_int_equal(jws_jwk_thumbprint(jwk, tp), 0);
	assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	json_object_del(jwk, "e");
	assert_int_equal(jws_jwk_thumbprint(jwk, tp), -1);
	json_decref(jwk);
	jwk = json_pack("{s:s}", "kty", "oct");
	assert_int_equal(jws_jwk_thumbprint(jwk, tp), -1);
	json_decref(jwk);
}

/* RFC 7515 Appendix A.1: HS256 with the example key. */
static void test_hs256_rfc7515(void **state)
{
	static const char key_b64u[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aK"
	                               "tMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
	static const char input[] =
	    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzOD"
	    "AsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
	uint8_t *key = NULL, mac[32];
	size_t keylen = 0;
	char *s;
	(void)state;

	assert_int_equal(jws_b64u_decode(key_b64u, strlen(key_b64u), &key, &keylen), 0);
	assert_int_equal(keylen, 64);
	assert_int_equal(jws_hs256(key, keylen, input, strlen(input), mac), 0);
	s = jws_b64u_encode(mac, sizeof(mac));
	assert_string_equal(s, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	free(s);
	free(key);
}

/* R||S back to DER, verified by OpenSSL with key's public half. */
static int verify_rs(EVP_PKEY *key, const void *data, size_t len, const uint8_t *rs, size_t rslen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	int dlen, ok;

	assert_int_equal(rslen, 64);
	assert_true(sig && r && s && md);
	assert_int_equal(ECDSA_SIG_set0(sig, r, s), 1);
	dlen = i2d_ECDSA_SIG(sig, &der);
	assert_true(dlen > 0);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
	ok = EVP_DigestVerify(md, der, (size_t)dlen, data, len);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return ok;
}

static void test_es256_verifies(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	uint8_t sig[JWS_ES256_SIG_LEN];
	int i;
	(void)state;

	assert_non_null(key);
	/* several signatures: some r or s have leading zero bytes, which must be kept */
	for (i = 0; i < 32; i++) {
		char msg[32];
		snprintf(msg, sizeof(msg), "message %d", i);
		assert_int_equal(jws_es256_sign(key, msg, strlen(msg), sig), 0);
		assert_int_equal(verify_rs(key, msg, strlen(msg), sig, sizeof(sig)), 1);
		assert_int_equal(verify_rs(key, "other", 5, sig, sizeof(sig)), 0);
	}
	EVP_PKEY_free(key);
}

static void test_jwk_p256(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	json_t *jwk = jws_jwk_get1(key);
	char tp1[JWS_THUMBPRINT_LEN], tp2[JWS_THUMBPRINT_LEN], *canon;
	uint8_t *x = NULL, sig[64];
	size_t xl = 0;
	(void)state;

	assert_non_null(jwk);
	assert_int_equal(json_object_size(jwk), 4);
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
	assert_int_equal(jws_b64u_decode(json_string_value(json_object_get(jwk, "x")), 43, &x, &xl),
	                 0);
	assert_int_equal(xl, 32);
	free(x);
	canon = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(strstr(canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""));
	free(canon);
	assert_int_equal(jws_key_thumbprint(key, tp1), 0);
	assert_int_equal(jws_jwk_thumbprint(jwk, tp2), 0);
	assert_string_equal(tp1, tp2);
	assert_int_equal(strlen(tp1), 43);
	/* the account key is ES256 only */
	assert_null(jws_jwk_get1(p384));
	assert_null(jws_jwk_get1(rsa));
	assert_int_equal(jws_es256_sign(p384, "x", 1, sig), -1);
	assert_null(jws_sign_request(rsa, NULL, "n", "https://x/", NULL, 0));
	json_decref(jwk);
	EVP_PKEY_free(key);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
}

/* Decodes a b64u member of o as JSON (NULL when the payload is empty or not JSON). */
static json_t *b64u_member_json(const json_t *o, const char *name, char **raw)
{
	const char *s = json_string_value(json_object_get(o, name));
	uint8_t *d = NULL;
	size_t dl = 0;
	json_t *j;

	assert_non_null(s);
	assert_int_equal(jws_b64u_decode(s, strlen(s), &d, &dl), 0);
	j = json_loadb((const char *)d, dl, 0, NULL);
	if (raw)
		*raw = (char *)d;
	else
		free(d);
	return j;
}

static void check_signature(EVP_PKEY *key, const json_t *body)
{
	const char *prot = json_string_value(json_object_get(body, "protected"));
	const char *pl = json_string_value(json_object_get(body, "payload"));
	const char *sig = json_string_value(json_object_get(body, "signature"));
	uint8_t *rs = NULL;
	size_t rl = 0;
	char input[4096];

	assert_true(prot && pl && sig);
	snprintf(input, sizeof(input), "%s.%s", prot, pl);
	assert_int_equal(jws_b64u_decode(sig, strlen(sig), &rs, &rl), 0);
	assert_int_equal(verify_rs(key, input, strlen(input), rs, rl), 1);
	free(rs);
}

static void test_sign_request(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	const char *payload = "{\"identifiers\":[]}";
	json_t *body, *hdr, *jwk;
	char *s, *raw = NULL;
	(void)state;

	/* newAccount style: jwk, no kid */
	s = jws_sign_request(key, NULL, "nonce-1", "https://ca.test/new-acct", payload,
	                     strlen(payload));
	assert_non_null(s);
	body = json_loads(s, 0, NULL);
	assert_int_equal(json_object_size(body), 3);
	hdr = b64u_member_json(body, "protected", NULL);
	assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(hdr, "nonce")), "nonce-1");
	assert_string_equal(json_string_value(json_object_get(hdr, "url")),
	                    "https://ca.test/new-acct");
	assert_null(json_object_get(hdr, "kid"));
	jwk = jws_jwk_get1(key);
	assert_true(json_equal(json_object_get(hdr, "jwk"), jwk));
	json_decref(b64u_member_json(body, "payload", &raw));
	assert_string_equal(raw, payload);
	free(raw);
	check_signature(key, body);
	json_decref(hdr);
	json_decref(body);
	free(s);

	/* POST-as-GET with kid: payload "" and no jwk */
	s = jws_sign_request(key, "https://ca.test/acct/1", "nonce-2", "https://ca.test/order/1",
	                     NULL, 0);
	body = json_loads(s, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(body, "payload")), "");
	hdr = b64u_member_json(body, "protected", NULL);
	assert_string_equal(json_string_value(json_object_get(hdr, "kid")),
	                    "https://ca.test/acct/1");
	assert_null(json_object_get(hdr, "jwk"));
	check_signature(key, body);
	json_decref(hdr);
	json_decref(body);
	free(s);

	/* a nonce is mandatory */
	assert_null(jws_sign_request(key, NULL, NULL, "https://ca.test/x", NULL, 0));
	json_decref(jwk);
	EVP_PKEY_free(key);
}

static void test_eab(void **state)
{
	static const uint8_t mac_key[] = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsU"
	                                 "DkMTQ12W";
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	json_t *eab, *hdr, *pl, *jwk;
	uint8_t mac[32];
	char input[2048], *sig;
	(void)state;

	eab =
	    jws_eab_get1(key, "kid-1", mac_key, sizeof(mac_key) - 1, "https://ca.test/sign-me-up");
	assert_non_null(eab);
	assert_int_equal(json_object_size(eab), 3);
	hdr = b64u_member_json(eab, "protected", NULL);
	assert_int_equal(json_object_size(hdr), 3);
	assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "HS256");
	assert_string_equal(json_string_value(json_object_get(hdr, "kid")), "kid-1");
	assert_string_equal(json_string_value(json_object_get(hdr, "url")),
	                    "https://ca.test/sign-me-up");
	assert_null(json_object_get(hdr, "nonce")); /* RFC 8555 §7.3.4: MUST NOT */
	pl = b64u_member_json(eab, "payload", NULL);
	jwk = jws_jwk_get1(key);
	assert_true(json_equal(pl, jwk));
	/* the MAC recomputed over protected "." payload */
	snprintf(input, sizeof(input), "%s.%s",
	         json_string_value(json_object_get(eab, "protected")),
	         json_string_value(json_object_get(eab, "payload")));
	assert_int_equal(jws_hs256(mac_key, sizeof(mac_key) - 1, input, strlen(input), mac), 0);
	sig = jws_b64u_encode(mac, sizeof(mac));
	assert_string_equal(json_string_value(json_object_get(eab, "signature")), sig);
	free(sig);
	assert_null(jws_eab_get1(key, "kid-1", mac_key, 0, "https://ca.test/x"));
	json_decref(jwk);
	json_decref(pl);
	json_decref(hdr);
	json_decref(eab);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64u_vectors),       cmocka_unit_test(test_b64u_rejects),
	    cmocka_unit_test(test_thumbprint_rfc7638), cmocka_unit_test(test_hs256_rfc7515),
	    cmocka_unit_test(test_es256_verifies),     cmocka_unit_test(test_jwk_p256),
	    cmocka_unit_test(test_sign_request),       cmocka_unit_test(test_eab),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
