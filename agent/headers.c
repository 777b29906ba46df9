/* headers: x-ssl-client-* values; see headers.h. */
#include "headers.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "x509u.h"

#include "banned.h"

/* RFC 3986 §2.3 unreserved characters pass; everything else is %XX. */
static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

size_t hdr_urlencoded_len(const void *in, size_t inlen)
{
	const unsigned char *p = in;
	size_t i, n = 0;

	for (i = 0; i < inlen; i++)
		n += unreserved(p[i]) ? 1 : 3;
	return n;
}

int hdr_urlencode(const void *in, size_t inlen, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = in;
	size_t i, o = 0, need;

	if (outlen > 0)
		out[0] = '\0';
	if (inlen > (size_t)INT_MAX / 3)
		return -1;
	need = hdr_urlencoded_len(in, inlen);
	if (need >= outlen)
		return -1;
	for (i = 0; i < inlen; i++) {
		if (unreserved(p[i])) {
			out[o++] = (char)p[i];
		} else {
			out[o++] = '%';
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 15];
		}
	}
	out[o] = '\0';
	return (int)o;
}

int hdr_value_safe(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return 0;
	return 1;
}

/* The PEM of x in a memory BIO; *pem points into it. NULL on failure. */
static BIO *pem_of(const X509 *x, const char **pem, size_t *len)
{
	BIO *b = x ? BIO_new(BIO_s_mem()) : NULL;
	char *p = NULL;
	long n;

	/* PEM_write_bio_X509 only reads x; its prototype predates const */
	if (!b || !PEM_write_bio_X509(b, (X509 *)x)) {
		BIO_free(b);
		return NULL;
	}
	n = BIO_get_mem_data(b, &p);
	if (n <= 0 || !p) {
		BIO_free(b);
		return NULL;
	}
	*pem = p;
	*len = (size_t)n;
	return b;
}

size_t hdr_cert_len(const X509 *x)
{
	const char *pem;
	size_t len, n;
	BIO *b = pem_of(x, &pem, &len);

	if (!b)
		return 0;
	n = hdr_urlencoded_len(pem, len);
	BIO_free(b);
	return n;
}

int hdr_cert(const X509 *x, char *buf, size_t buflen)
{
	const char *pem;
	size_t len;
	BIO *b = pem_of(x, &pem, &len);
	int r;

	if (!b) {
		if (buflen > 0)
			buf[0] = '\0';
		return -1;
	}
	r = hdr_urlencode(pem, len, buf, buflen);
	BIO_free(b);
	return r;
}

/* A heap copy of a DN; NULL on failure. */
static char *dn(const X509 *x, int subject)
{
	return x509u_name_rfc2253_get1(subject ? X509_get_subject_name(x)
	                                       : X509_get_issuer_name(x));
}

size_t hdr_need(const X509 *x)
{
	char *s = x ? dn(x, 1) : NULL, *i = x ? dn(x, 0) : NULL;
	size_t c = hdr_cert_len(x), n = 0;

	if (s && i && c > 0)
		n = c + 1 + strlen(s) + 1 + strlen(i) + 1 + X509U_SERIAL_LEN + X509U_SHA1_LEN +
		    2 * X509U_TIME_LEN;
	free(s);
	free(i);
	return n;
}

/* Carves n bytes off the storage; NULL when they are not there. */
static char *carve(char **p, size_t *left, size_t n)
{
	char *r = *p;

	if (n > *left)
		return NULL;
	*p += n;
	*left -= n;
	return r;
}

/* Copies s (len bytes) into fresh storage; NULL when there is no room. */
static const char *put(char **p, size_t *left, const char *s, size_t len)
{
	char *d = carve(p, left, len + 1);

	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

int hdr_format(const X509 *x, time_t now, int with_cert, char *buf, size_t buflen,
               struct hdr_values *out)
{
	struct hdr_values v = {0};
	char serial[X509U_SERIAL_LEN], sha1[X509U_SHA1_LEN];
	char vs[X509U_TIME_LEN], ve[X509U_TIME_LEN];
	char *s_dn = NULL, *i_dn = NULL, *p = buf, *c;
	size_t left = buflen;
	int r, ret = -1;

	memset(out, 0, sizeof(*out));
	if (!x || !buf)
		goto out;
	if (!(s_dn = dn(x, 1)) || !(i_dn = dn(x, 0)) ||
	    x509u_serial_hex(x, serial, sizeof(serial)) < 0 ||
	    x509u_sha1_hex(x, sha1, sizeof(sha1)) < 0 ||
	    x509u_not_before_str(x, vs, sizeof(vs)) < 0 ||
	    x509u_not_after_str(x, ve, sizeof(ve)) < 0)
		goto out;
	if (with_cert) {
		size_t cl = hdr_cert_len(x);

		if (cl == 0 || !(c = carve(&p, &left, cl + 1)) || (r = hdr_cert(x, c, cl + 1)) < 0)
			goto out;
		v.cert = c;
		v.cert_len = (size_t)r;
	} else {
		v.cert = "";
	}
	v.s_dn_len = strlen(s_dn);
	v.i_dn_len = strlen(i_dn);
	v.serial_len = strlen(serial);
	v.sha1_len = strlen(sha1);
	v.v_start_len = strlen(vs);
	v.v_end_len = strlen(ve);
	if (!(v.s_dn = put(&p, &left, s_dn, v.s_dn_len)) ||
	    !(v.i_dn = put(&p, &left, i_dn, v.i_dn_len)) ||
	    !(v.serial = put(&p, &left, serial, v.serial_len)) ||
	    !(v.sha1 = put(&p, &left, sha1, v.sha1_len)) ||
	    !(v.v_start = put(&p, &left, vs, v.v_start_len)) ||
	    !(v.v_end = put(&p, &left, ve, v.v_end_len)))
		goto out;
	v.v_remain = x509u_days_remaining(x, now);
	/* DESIGN §2.4: values never contain CR, LF or NUL. Checked on what is sent, not
	 * assumed from how it was made. */
	if (!hdr_value_safe(v.cert, v.cert_len) || !hdr_value_safe(v.s_dn, v.s_dn_len) ||
	    !hdr_value_safe(v.i_dn, v.i_dn_len) || !hdr_value_safe(v.serial, v.serial_len) ||
	    !hdr_value_safe(v.sha1, v.sha1_len) || !hdr_value_safe(v.v_start, v.v_start_len) ||
	    !hdr_value_safe(v.v_end, v.v_end_len) || v.v_remain < 0)
		goto out;
	*out = v;
	ret = 0;
out:
	free(s_dn);
	free(i_dn);
	return ret;
}

size_t hdr_values_len(const struct hdr_values *v, int with_cert)
{
	return (with_cert ? v->cert_len : 0) + v->s_dn_len + v->i_dn_len + v->serial_len +
	       v->sha1_len + v->v_start_len + v->v_end_len;
}
