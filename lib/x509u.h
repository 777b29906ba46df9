/*
 * x509u: X.509 helpers shared by spoa-mtls and certsync (OpenSSL 3.0 API).
 *
 * Promises:
 * - Pure: bytes and OpenSSL objects in, results out; no files, no globals, no logging.
 * - PEM input is read strictly and every failure is named with its line: binary data (a DER
 *   file), no PEM block at all, a block of another type, a block without its END line, bad
 *   base64 or DER, text after the last block. Text *before* a block is allowed, as OpenSSL
 *   allows it and writes it itself ("Bag Attributes", "subject=" lines). Error messages
 *   never quote the input, so a key file's bytes never reach a message.
 * - Never prompts: an encrypted private key is reported as such (X509U_E_ENCRYPTED).
 * - The formatted values are byte for byte what the openssl command prints for the same
 *   certificate (DESIGN §2.4): `x509 -subject/-issuer -nameopt RFC2253`, `-serial`,
 *   `-fingerprint` without the colons, `-startdate/-enddate`.
 * - Fixed-size outputs go into caller buffers with explicit sizes and are never truncated
 *   (too small is an error). get1 results belong to the caller; get0 results are borrowed.
 */
#ifndef EDGETLS_X509U_H
#define EDGETLS_X509U_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Failure codes, returned negated (-X509U_E_EMPTY) by the loaders. */
enum x509u_err {
	X509U_E_NOMEM = 1,  /* allocation failed */
	X509U_E_EMPTY,      /* nothing but whitespace */
	X509U_E_NOPEM,      /* text, but no PEM block */
	X509U_E_BINARY,     /* binary bytes: a DER file, or not a text file at all */
	X509U_E_MALFORMED,  /* a block without END line, bad base64, DER that does not parse */
	X509U_E_WRONG_TYPE, /* a block of another type ("PRIVATE KEY" in a certificate file) */
	X509U_E_TRAILING,   /* non-blank text after the last block */
	X509U_E_ENCRYPTED,  /* the private key is encrypted */
	X509U_E_MULTIPLE,   /* more than one private key */
};

/* Buffer sizes that always suffice (serial: RFC 5280 caps it at 20 bytes; OpenSSL accepts
 * longer, up to X509U_SERIAL_MAX_BYTES here). */
#define X509U_SERIAL_MAX_BYTES 64
#define X509U_SERIAL_LEN       (2 * X509U_SERIAL_MAX_BYTES + 1)
#define X509U_SHA1_LEN         (2 * 20 + 1)
#define X509U_SHA256_LEN       (2 * 32 + 1)
#define X509U_TIME_LEN         40 /* "Aug 10 18:54:27 2023 GMT", fractions included */

/*
 * Every certificate of the PEM bytes, in file order, into *out (a new stack the caller
 * frees with sk_X509_pop_free(s, X509_free)). Blocks
 * labelled CERTIFICATE or X509 CERTIFICATE are certificates; any other label is
 * X509U_E_WRONG_TYPE. Returns the number of certificates (>= 1), or -X509U_E_* with the
 * reason in err ("line 12: ..."). Whitespace-only input is -X509U_E_EMPTY.
 */
int x509u_load_certs_pem(const void *pem, size_t len, STACK_OF(X509) * *out, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/*
 * The one private key of the PEM bytes (PKCS#8 "PRIVATE KEY", or the traditional "RSA/EC
 * PRIVATE KEY"; an "EC PARAMETERS" block is skipped) into *out, which the caller frees
 * with EVP_PKEY_free. Returns 0, or -X509U_E_* with the reason in err: ENCRYPTED for an
 * "ENCRYPTED PRIVATE KEY" or a "Proc-Type: 4,ENCRYPTED" block (no passphrase is ever
 * asked for), MULTIPLE for two keys, WRONG_TYPE for a certificate or other block.
 */
int x509u_load_key_pem(const void *pem, size_t len, EVP_PKEY **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A short English description of a loader code ("the data is binary, not PEM"). */
const char *x509u_strerror(int code);

/* 1 when key is the private half of cert's public key, 0 otherwise (EVP_PKEY_eq). */
int x509u_key_matches(const X509 *cert, const EVP_PKEY *key);

/*
 * A distinguished name in RFC 2253 form as `openssl x509 -nameopt RFC2253` prints it
 * (XN_FLAG_RFC2253: most specific RDN first, "," "+" "\"" and friends escaped, bytes >= 0x80
 * as \C3\A9, control characters escaped): ASCII, no CR/LF/NUL. The empty name is "".
 * Returns 0, or -1 when buflen is too small (buf is then "") or on allocation failure.
 */
int x509u_name_rfc2253(const X509_NAME *name, char *buf, size_t buflen)
    __attribute__((warn_unused_result));
/* The same as a heap string the caller frees with free(); NULL on allocation failure. */
char *x509u_name_rfc2253_get1(const X509_NAME *name);
int x509u_subject_dn(const X509 *cert, char *buf, size_t buflen)
    __attribute__((warn_unused_result));
int x509u_issuer_dn(const X509 *cert, char *buf, size_t buflen) __attribute__((warn_unused_result));

/* The serial number's magnitude in uppercase hex, two digits per byte, no separators and
 * no leading 00 byte ("80A1"; zero is "00"), as `openssl x509 -serial` prints it. 0, or -1
 * when buflen is too small (X509U_SERIAL_LEN always suffices). */
int x509u_serial_hex(const X509 *cert, char *buf, size_t buflen)
    __attribute__((warn_unused_result));

/* Fingerprints of the DER, uppercase hex without separators. 0, or -1 on failure or when
 * buflen is below X509U_SHA1_LEN / X509U_SHA256_LEN. */
int x509u_sha1_hex(const X509 *cert, char *buf, size_t buflen) __attribute__((warn_unused_result));
int x509u_sha256_hex(const X509 *cert, char *buf, size_t buflen)
    __attribute__((warn_unused_result));

/* notBefore / notAfter as time_t (UTC). 0, or -1 when the time does not convert. */
int x509u_not_before(const X509 *cert, time_t *out) __attribute__((warn_unused_result));
int x509u_not_after(const X509 *cert, time_t *out) __attribute__((warn_unused_result));
/* An ASN1_TIME as ASN1_TIME_print writes it ("Aug  1 18:54:27 2023 GMT", day padded with a
 * space). 0, or -1 on failure or when buflen is too small (X509U_TIME_LEN suffices). */
int x509u_time_str(const ASN1_TIME *t, char *buf, size_t buflen)
    __attribute__((warn_unused_result));
int x509u_not_before_str(const X509 *cert, char *buf, size_t buflen)
    __attribute__((warn_unused_result));
int x509u_not_after_str(const X509 *cert, char *buf, size_t buflen)
    __attribute__((warn_unused_result));
/* Whole days from now until notAfter, rounded down; 0 when expired (or unreadable). */
long x509u_days_remaining(const X509 *cert, time_t now);

/* The DNS names a certificate covers. */
struct x509u_names {
	size_t n;
	char **name; /* n lowercase strings */
};
/*
 * The subjectAltName dNSName entries, lowercased, in certificate order; the subject's
 * (most specific) commonName only when the certificate has no subjectAltName extension
 * at all. Entries holding bytes outside printable ASCII are skipped: no DNS name has them.
 * Fills *out (free with x509u_names_free); 0, or -1 on allocation failure or a
 * subjectAltName that does not decode. n may be 0.
 */
int x509u_dns_names(const X509 *cert, struct x509u_names *out) __attribute__((warn_unused_result));
void x509u_names_free(struct x509u_names *names);

/* 1 when the issuer name equals the subject name and the signature verifies with the
 * certificate's own key, else 0. */
int x509u_is_self_signed(const X509 *cert);
/* 1 when basicConstraints says CA:TRUE, else 0. */
int x509u_is_ca(const X509 *cert);

/* Adds a subjectAltName extension with one dNSName per name to a request (critical: for
 * an empty subject, RFC 5280 §4.2.1.6). 0, or -1 (an empty name, or OpenSSL failure). */
int x509u_req_add_dns_names(X509_REQ *req, const char *const *names, size_t n, int critical)
    __attribute__((warn_unused_result));

#endif
