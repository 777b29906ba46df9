#include "jws.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#include "banned.h"

static const char b64u_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *jws_b64u_encode(const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t olen, i, o = 0;
	char *out;

	if (len > (SIZE_MAX - 4) / 4 * 3)
		return NULL;
	olen = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
	out = malloc(olen + 1);
	if (!out)
		return NULL;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64u_alphabet[v >> 18 & 63];
		out[o++] = b64u_alphabet[v >> 12 & 63];
		out[o++] = b64u_alphabet[v >> 6 & 63];
		out[o++] = b64u_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = b64u_alphabet[v >> 18 & 63];
		out[o++] = b64u_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64u_alphabet[v >> 18 & 63];
		out[o++] = b64u_alphabet[v >> 12 & 63];
		out[o++] = b64u_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

static int b64u_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int jws_b64u_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
	uint8_t *buf = NULL;
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;

	*out = NULL;
	*outlen = 0;
	if (len % 4 == 1)
		return -1;
	buf = malloc(len / 4 * 3 + 3);
	if (!buf)
		return -1;
	for (i = 0; i < len; i++) {
		int v = b64u_value(s[i]);
		if (v < 0)
			goto err;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Canonical encodings only: the bits left over are zero. */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		goto err;
	buf[o] = 0;
	*out = buf;
	*outlen = o;
	return 0;
err:
	OPENSSL_cleanse(buf, len / 4 * 3 + 3);
	free(buf);
	return -1;
}

/* Sets key's name to the b64u of bytes; 0 or -1. */
static int set_b64u(json_t *obj, const char *name, const void *bytes, size_t len)
{
	char *s = jws_b64u_encode(bytes, len);
	int r;

	if (!s)
		return -1;
	r = json_object_set_new(obj, name, json_string(s));
	free(s);
	return r == 0 ? 0 : -1;
}

static int is_p256(EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;

	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return 0;
	if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                    &glen))
		return 0;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

json_t *jws_jwk_get1(EVP_PKEY *key)
{
	BIGNUM *x = NULL, *y = NULL;
	uint8_t xb[32], yb[32];
	json_t *jwk = NULL, *ret = NULL;

	if (!is_p256(key))
		goto out;
	if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
		goto out;
	/* RFC 7518 §6.2.1.2: the full coordinate length, leading zeros kept. */
	if (BN_bn2binpad(x, xb, sizeof(xb)) != sizeof(xb) ||
	    BN_bn2binpad(y, yb, sizeof(yb)) != sizeof(yb))
		goto out;
	jwk = json_object();
	if (!jwk || json_object_set_new(jwk, "crv", json_string("P-256")) != 0 ||
	    json_object_set_new(jwk, "kty", json_string("EC")) != 0 ||
	    set_b64u(jwk, "x", xb, sizeof(xb)) < 0 || set_b64u(jwk, "y", yb, sizeof(yb)) < 0)
		goto out;
	ret = jwk;
	jwk = NULL;
out:
	json_decref(jwk);
	BN_free(x);
	BN_free(y);
	ERR_clear_error();
	return ret;
}

int jws_jwk_thumbprint(const json_t *jwk, char out[JWS_THUMBPRINT_LEN])
{
	static const char *const ec[] = {"crv", "kty", "x", "y", NULL};
	static const char *const rsa[] = {"e", "kty", "n", NULL};
	const char *const *members;
	const char *kty;
	json_t *req = NULL;
	char *canon = NULL, *b64 = NULL;
	uint8_t md[32];
	size_t i;
	int ret = -1;

	kty = json_string_value(json_object_get(jwk, "kty"));
	if (!kty)
		goto out;
	if (strcmp(kty, "EC") == 0)
		members = ec;
	else if (strcmp(kty, "RSA") == 0)
		members = rsa;
	else
		goto out;
	/* RFC 7638 §3.2: only the required members, lexicographic order, no whitespace. */
	req = json_object();
	if (!req)
		goto out;
	for (i = 0; members[i]; i++) {
		json_t *v = json_object_get(jwk, members[i]);
		if (!json_is_string(v) || json_object_set(req, members[i], v) != 0)
			goto out;
	}
	canon = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
	if (!canon || !EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL))
		goto out;
	b64 = jws_b64u_encode(md, sizeof(md));
	if (!b64 || strlen(b64) != JWS_THUMBPRINT_LEN - 1)
		goto out;
	memcpy(out, b64, JWS_THUMBPRINT_LEN);
	ret = 0;
out:
	free(b64);
	free(canon);
	json_decref(req);
	return ret;
}

int jws_key_thumbprint(EVP_PKEY *key, char out[JWS_THUMBPRINT_LEN])
{
	json_t *jwk = jws_jwk_get1(key);
	int r;

	if (!jwk)
		return -1;
	r = jws_jwk_thumbprint(jwk, out);
	json_decref(jwk);
	return r;
}

int jws_es256_sign(EVP_PKEY *key, const void *data, size_t len, uint8_t sig[JWS_ES256_SIG_LEN])
{
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t derlen = 0;
	int ret = -1;

	if (!is_p256(key))
		goto out;
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &derlen, data, len) != 1)
		goto out;
	der = OPENSSL_malloc(derlen);
	if (!der || EVP_DigestSign(md, der, &derlen, data, len) != 1)
		goto out;
	/* OpenSSL signs in DER (SEQUENCE of two INTEGERs); JWS wants R||S (RFC 7518 §3.4). */
	p = der;
	es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (!es)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
		goto out;
	ret = 0;
out:
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ret;
}

int jws_hs256(const uint8_t *key, size_t keylen, const void *data, size_t len, uint8_t mac[32])
{
	size_t outlen = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len, mac, 32,
	               &outlen) ||
	    outlen != 32) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* b64u(compact JSON of obj); NULL on failure. */
static char *b64u_json(const json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS), *r;

	if (!s)
		return NULL;
	r = jws_b64u_encode(s, strlen(s));
	free(s);
	return r;
}

/* "<a>.<b>" (the JWS signing input); NULL on failure. */
static char *signing_input(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '.';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/* {"protected":p,"payload":pl,"signature":b64u(sig)}; NULL on failure. */
static json_t *flattened(const char *prot, const char *payload, const uint8_t *sig, size_t len)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "protected", json_string(prot)) != 0 ||
	    json_object_set_new(o, "payload", json_string(payload)) != 0 ||
	    set_b64u(o, "signature", sig, len) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *jws_sign_request(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                       const void *payload, size_t payload_len)
{
	json_t *hdr = NULL, *body = NULL;
	char *prot = NULL, *pl = NULL, *input = NULL, *ret = NULL;
	uint8_t sig[JWS_ES256_SIG_LEN];

	if (!nonce || !url)
		goto out;
	hdr = json_object();
	if (!hdr || json_object_set_new(hdr, "alg", json_string("ES256")) != 0 ||
	    json_object_set_new(hdr, "nonce", json_string(nonce)) != 0 ||
	    json_object_set_new(hdr, "url", json_string(url)) != 0)
		goto out;
	/* RFC 8555 §6.2: exactly one of jwk and kid. */
	if (kid) {
		if (json_object_set_new(hdr, "kid", json_string(kid)) != 0)
			goto out;
	} else {
		json_t *jwk = jws_jwk_get1(key);
		if (!jwk || json_object_set_new(hdr, "jwk", jwk) != 0)
			goto out;
	}
	prot = b64u_json(hdr);
	pl = payload ? jws_b64u_encode(payload, payload_len) : strdup("");
	if (!prot || !pl)
		goto out;
	input = signing_input(prot, pl);
	if (!input || jws_es256_sign(key, input, strlen(input), sig) < 0)
		goto out;
	body = flattened(prot, pl, sig, sizeof(sig));
	if (body)
		ret = json_dumps(body, JSON_COMPACT);
out:
	json_decref(body);
	json_decref(hdr);
	free(input);
	free(pl);
	free(prot);
	return ret;
}

json_t *jws_eab_get1(EVP_PKEY *account_key, const char *eab_kid, const uint8_t *hmac_key,
                     size_t hmac_keylen, const char *url)
{
	json_t *hdr = NULL, *jwk = NULL, *ret = NULL;
	char *prot = NULL, *pl = NULL, *input = NULL;
	uint8_t mac[32];

	if (!eab_kid || !url || !hmac_key || hmac_keylen == 0)
		goto out;
	jwk = jws_jwk_get1(account_key);
	hdr = json_object();
	if (!jwk || !hdr || json_object_set_new(hdr, "alg", json_string("HS256")) != 0 ||
	    json_object_set_new(hdr, "kid", json_string(eab_kid)) != 0 ||
	    json_object_set_new(hdr, "url", json_string(url)) != 0)
		goto out;
	prot = b64u_json(hdr);
	pl = b64u_json(jwk);
	if (!prot || !pl)
		goto out;
	input = signing_input(prot, pl);
	if (!input || jws_hs256(hmac_key, hmac_keylen, input, strlen(input), mac) < 0)
		goto out;
	ret = flattened(prot, pl, mac, sizeof(mac));
	OPENSSL_cleanse(mac, sizeof(mac));
out:
	json_decref(hdr);
	json_decref(jwk);
	free(input);
	free(pl);
	free(prot);
	return ret;
}
