/*
 * headers: the x-ssl-client-* header values of DESIGN §2.4 for one leaf certificate.
 *
 * Pure: an X509 and a time in, strings out, into storage the caller provides.
 *
 * Promises:
 * - cert: the leaf as PEM (what `openssl x509` prints), URL-encoded: every byte outside
 *   A-Z a-z 0-9 - . _ ~ as %XX, uppercase ("-----BEGIN%20CERTIFICATE-----%0AMIIB...").
 * - s_dn / i_dn: RFC 2253 (`openssl x509 -nameopt RFC2253`), serial: uppercase hex without
 *   a leading 00 byte, sha1: uppercase hex of the DER's SHA-1, v_start / v_end:
 *   "Aug  1 18:54:27 2023 GMT" (ASN1_TIME_print), v_remain: whole days left, rounded down,
 *   0 when expired. All but cert come from lib/x509u.
 * - No value ever holds CR, LF, NUL or any other control byte: a value that would is
 *   refused (-1), never sent (x509u escapes them in DNs, so this does not happen).
 * - Nothing is truncated: storage too small is an error, and the sizes are known up front
 *   (hdr_need, hdr_cert_len) so the caller can leave `cert` out of an ACK that would
 *   exceed the negotiated frame size (hdr_values_len).
 */
#ifndef EDGETLS_AGENT_HEADERS_H
#define EDGETLS_AGENT_HEADERS_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

struct hdr_values {
	/* NUL-terminated strings inside the storage given to hdr_format; *_len excludes
	 * the NUL. */
	const char *cert;
	size_t cert_len;
	const char *s_dn;
	size_t s_dn_len;
	const char *i_dn;
	size_t i_dn_len;
	const char *serial;
	size_t serial_len;
	const char *sha1;
	size_t sha1_len;
	const char *v_start;
	size_t v_start_len;
	const char *v_end;
	size_t v_end_len;
	long v_remain;
};

/*
 * URL-encodes in[0..inlen) into out (NUL-terminated). Returns the encoded length, or -1
 * when outlen is too small (out is then "") or the result would exceed INT_MAX.
 */
int hdr_urlencode(const void *in, size_t inlen, char *out, size_t outlen)
    __attribute__((warn_unused_result));
/* The length hdr_urlencode produces for in[0..inlen), NUL excluded. */
size_t hdr_urlencoded_len(const void *in, size_t inlen);

/* The length of x's cert value, NUL excluded; 0 on failure. */
size_t hdr_cert_len(const X509 *x);
/* x's cert value into buf; returns its length, or -1 (buf too small: hdr_cert_len + 1
 * suffices; or failure). */
int hdr_cert(const X509 *x, char *buf, size_t buflen) __attribute__((warn_unused_result));

/* Bytes of storage hdr_format needs for x (every value and its NUL); 0 on failure. */
size_t hdr_need(const X509 *x);
/*
 * Every value of x into buf[0..buflen), described by *out. with_cert 0 leaves cert out
 * (out->cert is then "", storage for it is not needed). Returns 0, or -1 when buflen is
 * too small, a value does not format, or a value would hold a control byte; *out is then
 * zeroed.
 */
int hdr_format(const X509 *x, time_t now, int with_cert, char *buf, size_t buflen,
               struct hdr_values *out) __attribute__((warn_unused_result));

/* The sum of the string values' lengths (cert included when with_cert): what the values
 * add to an ACK, to be compared with the frame size. */
size_t hdr_values_len(const struct hdr_values *v, int with_cert);

/* 1 when s[0..len) holds no byte below 0x20 and no DEL (so no CR, LF or NUL). */
int hdr_value_safe(const char *s, size_t len);

#endif
