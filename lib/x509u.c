#include "x509u.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "banned.h"

/* ---- PEM scanning -------------------------------------------------------------------- */

struct pem_block {
	const char *label; /* not NUL-terminated */
	size_t label_len;
	const char *start; /* the BEGIN line up to and including the END line */
	size_t len;
	unsigned line; /* of the BEGIN line, 1-based */
};

/* Called per block; returns 0 or -X509U_E_* with err set. */
typedef int (*block_fn)(void *arg, const struct pem_block *b, char *err, size_t errlen);

static int label_is(const struct pem_block *b, const char *s)
{
	return b->label_len == strlen(s) && memcmp(b->label, s, b->label_len) == 0;
}

/* "-----BEGIN X-----" with X non-empty; sets the label. */
static int dash_line(const char *l, size_t n, const char *kw, const char **label, size_t *llen)
{
	size_t kl = strlen(kw);

	if (n < kl + 5 + 1 || memcmp(l, kw, kl) != 0 || memcmp(l + n - 5, "-----", 5) != 0)
		return 0;
	*label = l + kl;
	*llen = n - kl - 5;
	return 1;
}

static int pem_scan(const char *p, size_t n, block_fn fn, void *arg, const char *what, char *err,
                    size_t errlen)
{
	struct pem_block b = {0};
	size_t i, pos = 0, blocks = 0;
	unsigned line = 0, last_text = 0, last_end = 0;
	int in_block = 0, r;

	if (n > (size_t)INT_MAX) { /* BIO_new_mem_buf takes an int */
		snprintf(err, errlen, "%zu bytes: too large for a PEM file", n);
		return -X509U_E_MALFORMED;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') {
			snprintf(err, errlen, "binary data at byte %zu: not a PEM file%s", i,
			         (unsigned char)p[0] == 0x30
			             ? " (it looks like DER; convert it with openssl x509 "
			               "-inform der)"
			             : "");
			return -X509U_E_BINARY;
		}
	}
	while (pos < n) {
		const char *l = p + pos, *nl = memchr(l, '\n', n - pos);
		size_t ll = nl ? (size_t)(nl - l) : n - pos, next = nl ? pos + ll + 1 : n;
		const char *label;
		size_t llen, k;

		line++;
		while (ll > 0 && isspace((unsigned char)l[ll - 1]))
			ll--;
		if (in_block) {
			if (dash_line(l, ll, "-----END ", &label, &llen)) {
				if (llen != b.label_len || memcmp(label, b.label, llen) != 0) {
					snprintf(err, errlen,
					         "line %u: the END line does not match the BEGIN "
					         "line %u",
					         line, b.line);
					return -X509U_E_MALFORMED;
				}
				b.len = (size_t)(l + ll - b.start);
				r = fn(arg, &b, err, errlen);
				if (r < 0)
					return r;
				blocks++;
				in_block = 0;
				last_end = line;
			} else if (ll >= 5 && memcmp(l, "-----", 5) == 0) {
				snprintf(err, errlen,
				         "line %u: the PEM block that starts on line %u has no END "
				         "line",
				         line, b.line);
				return -X509U_E_MALFORMED;
			}
		} else if (dash_line(l, ll, "-----BEGIN ", &label, &llen)) {
			b.label = label;
			b.label_len = llen;
			b.start = l;
			b.line = line;
			in_block = 1;
		} else if (ll >= 9 && memcmp(l, "-----END ", 9) == 0) {
			snprintf(err, errlen, "line %u: an END line without its BEGIN line", line);
			return -X509U_E_MALFORMED;
		} else {
			for (k = 0; k < ll && isspace((unsigned char)l[k]); k++)
				;
			if (k < ll)
				last_text = line;
		}
		pos = next;
	}
	if (in_block) {
		snprintf(err, errlen,
		         "line %u: the PEM block that starts here has no END line (truncated?)",
		         b.line);
		return -X509U_E_MALFORMED;
	}
	if (blocks == 0) {
		snprintf(err, errlen, last_text ? "no PEM %s in the data" : "empty: no PEM %s",
		         what);
		return last_text ? -X509U_E_NOPEM : -X509U_E_EMPTY;
	}
	if (last_text > last_end) {
		snprintf(err, errlen, "line %u: text after the last PEM block (line %u)", last_text,
		         last_end);
		return -X509U_E_TRAILING;
	}
	return 0;
}

static void openssl_reason(char *buf, size_t buflen)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, buflen, "%s", r ? r : "unknown error");
	ERR_clear_error();
}

/* ---- certificates -------------------------------------------------------------------- */

static int cert_block(void *arg, const struct pem_block *b, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = arg;
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *q;
	long dlen = 0;
	X509 *x = NULL;
	char reason[128];
	int ret = -X509U_E_MALFORMED;

	if (!label_is(b, "CERTIFICATE") && !label_is(b, "X509 CERTIFICATE")) {
		snprintf(err, errlen,
		         "line %u: a PEM block of type \"%.*s\" where a certificate "
		         "was expected",
		         b->line, (int)(b->label_len > 40 ? 40 : b->label_len), b->label);
		ret = -X509U_E_WRONG_TYPE;
		goto out;
	}
	bio = BIO_new_mem_buf(b->start, (int)b->len);
	if (!bio) {
		ret = -X509U_E_NOMEM;
		goto out;
	}
	if (!PEM_read_bio_ex(bio, &name, &header, &data, &dlen, PEM_FLAG_EAY_COMPATIBLE)) {
		openssl_reason(reason, sizeof(reason));
		snprintf(err, errlen, "line %u: the certificate's base64 does not decode (%s)",
		         b->line, reason);
		goto out;
	}
	q = data;
	x = d2i_X509(NULL, &q, dlen);
	if (!x) {
		openssl_reason(reason, sizeof(reason));
		snprintf(err, errlen, "line %u: the block does not hold a valid certificate (%s)",
		         b->line, reason);
		goto out;
	}
	if (q != data + dlen) {
		snprintf(err, errlen,
		         "line %u: %ld stray bytes after the certificate inside the PEM block",
		         b->line, (long)(data + dlen - q));
		goto out;
	}
	if (!sk_X509_push(certs, x)) {
		ret = -X509U_E_NOMEM;
		goto out;
	}
	x = NULL;
	ret = 0;
out:
	if (ret == -X509U_E_NOMEM)
		snprintf(err, errlen, "out of memory");
	X509_free(x);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return ret;
}

int x509u_load_certs_pem(const void *pem, size_t len, STACK_OF(X509) * *out, char *err,
                         size_t errlen)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	int r, ret = -X509U_E_NOMEM;

	*out = NULL;
	if (!certs) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r = pem_scan(pem, len, cert_block, certs, "certificate", err, errlen);
	if (r < 0) {
		ret = r;
		goto out;
	}
	ret = sk_X509_num(certs);
	*out = certs;
	certs = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	return ret;
}

/* ---- private keys -------------------------------------------------------------------- */

struct key_scan {
	EVP_PKEY *key;
	unsigned key_line;
};

/* A passphrase callback that always fails: we never prompt, never guess. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int ends_with_private_key(const struct pem_block *b)
{
	static const char suf[] = "PRIVATE KEY";
	size_t sl = sizeof(suf) - 1;

	return b->label_len >= sl && memcmp(b->label + b->label_len - sl, suf, sl) == 0;
}

static int key_block(void *arg, const struct pem_block *b, char *err, size_t errlen)
{
	struct key_scan *ks = arg;
	BIO *bio = NULL;
	EVP_PKEY *k = NULL;
	const char *proc;
	char reason[128];
	int ret = -X509U_E_MALFORMED;

	if (label_is(b, "EC PARAMETERS")) /* written by `openssl ecparam -genkey` */
		return 0;
	if (!ends_with_private_key(b)) {
		snprintf(err, errlen,
		         "line %u: a PEM block of type \"%.*s\" where a private key "
		         "was expected",
		         b->line, (int)(b->label_len > 40 ? 40 : b->label_len), b->label);
		return -X509U_E_WRONG_TYPE;
	}
	if (ks->key) {
		snprintf(err, errlen, "line %u: a second private key (the first is on line %u)",
		         b->line, ks->key_line);
		return -X509U_E_MULTIPLE;
	}
	/* PKCS#8 encryption, or the traditional form's RFC 1421 header. */
	proc = memmem(b->start, b->len, "Proc-Type:", 10);
	if (label_is(b, "ENCRYPTED PRIVATE KEY") ||
	    (proc && memmem(proc, b->len - (size_t)(proc - b->start), "ENCRYPTED", 9))) {
		snprintf(err, errlen, "line %u: the private key is encrypted", b->line);
		return -X509U_E_ENCRYPTED;
	}
	bio = BIO_new_mem_buf(b->start, (int)b->len);
	if (!bio) {
		snprintf(err, errlen, "out of memory");
		ret = -X509U_E_NOMEM;
		goto out;
	}
	k = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
	if (!k) {
		openssl_reason(reason, sizeof(reason));
		snprintf(err, errlen, "line %u: the block does not hold a valid private key (%s)",
		         b->line, reason);
		goto out;
	}
	ks->key = k;
	ks->key_line = b->line;
	k = NULL;
	ret = 0;
out:
	EVP_PKEY_free(k);
	BIO_free(bio);
	return ret;
}

int x509u_load_key_pem(const void *pem, size_t len, EVP_PKEY **out, char *err, size_t errlen)
{
	struct key_scan ks = {0};
	int r;

	*out = NULL;
	r = pem_scan(pem, len, key_block, &ks, "private key", err, errlen);
	if (r == 0 && !ks.key) { /* only EC PARAMETERS */
		snprintf(err, errlen, "no PEM private key in the data");
		r = -X509U_E_NOPEM;
	}
	if (r < 0)
		goto out;
	*out = ks.key;
	ks.key = NULL;
out:
	EVP_PKEY_free(ks.key);
	ERR_clear_error();
	return r;
}

const char *x509u_strerror(int code)
{
	switch (code < 0 ? -code : code) {
	case 0:
		return "success";
	case X509U_E_NOMEM:
		return "out of memory";
	case X509U_E_EMPTY:
		return "empty";
	case X509U_E_NOPEM:
		return "no PEM block";
	case X509U_E_BINARY:
		return "binary data, not PEM";
	case X509U_E_MALFORMED:
		return "malformed PEM block";
	case X509U_E_WRONG_TYPE:
		return "a PEM block of the wrong type";
	case X509U_E_TRAILING:
		return "text after the last PEM block";
	case X509U_E_ENCRYPTED:
		return "the private key is encrypted";
	case X509U_E_MULTIPLE:
		return "more than one private key";
	default:
		return "unknown error";
	}
}

/* ---- facts --------------------------------------------------------------------------- */

int x509u_key_matches(const X509 *cert, const EVP_PKEY *key)
{
	const EVP_PKEY *pub = X509_get0_pubkey(cert);
	int r = pub && key && EVP_PKEY_eq(pub, key) == 1;

	ERR_clear_error();
	return r;
}

/* Copies a memory BIO's contents into buf as a string; 0 or -1 when it does not fit. */
static int bio_to_buf(BIO *bio, char *buf, size_t buflen)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);

	if (buflen == 0)
		return -1;
	buf[0] = '\0';
	if (n < 0 || (size_t)n >= buflen)
		return -1;
	if (n > 0)
		memcpy(buf, data, (size_t)n);
	buf[n] = '\0';
	return 0;
}

static BIO *name_bio(const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		BIO_free(bio);
		bio = NULL;
	}
	return bio;
}

int x509u_name_rfc2253(const X509_NAME *name, char *buf, size_t buflen)
{
	BIO *bio = name_bio(name);
	int r = -1;

	if (buflen > 0)
		buf[0] = '\0';
	if (bio)
		r = bio_to_buf(bio, buf, buflen);
	BIO_free(bio);
	return r;
}

char *x509u_name_rfc2253_get1(const X509_NAME *name)
{
	BIO *bio = name_bio(name);
	char *data = NULL, *s = NULL;
	long n;

	if (!bio)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	if (n < 0)
		goto out;
	s = malloc((size_t)n + 1);
	if (!s)
		goto out;
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n] = '\0';
out:
	BIO_free(bio);
	return s;
}

int x509u_subject_dn(const X509 *cert, char *buf, size_t buflen)
{
	return x509u_name_rfc2253(X509_get_subject_name(cert), buf, buflen);
}

int x509u_issuer_dn(const X509 *cert, char *buf, size_t buflen)
{
	return x509u_name_rfc2253(X509_get_issuer_name(cert), buf, buflen);
}

static int hex_upper(const unsigned char *p, size_t n, char *buf, size_t buflen)
{
	static const char hx[] = "0123456789ABCDEF";
	size_t i;

	if (buflen == 0)
		return -1;
	buf[0] = '\0';
	if (n > (buflen - 1) / 2)
		return -1;
	for (i = 0; i < n; i++) {
		buf[2 * i] = hx[p[i] >> 4];
		buf[2 * i + 1] = hx[p[i] & 15];
	}
	buf[2 * n] = '\0';
	return 0;
}

int x509u_serial_hex(const X509 *cert, char *buf, size_t buflen)
{
	const ASN1_INTEGER *sn = X509_get0_serialNumber(cert);
	const unsigned char *p;
	size_t n;

	if (buflen > 0)
		buf[0] = '\0';
	if (!sn)
		return -1;
	p = ASN1_STRING_get0_data(sn);
	n = (size_t)ASN1_STRING_length(sn);
	/* The ASN1_INTEGER holds the magnitude; the DER sign byte is already gone. A zero
	 * serial has no content byte and prints as "00", as i2a_ASN1_INTEGER does. */
	if (n == 0) {
		if (buflen < 3)
			return -1;
		memcpy(buf, "00", 3);
		return 0;
	}
	return hex_upper(p, n, buf, buflen);
}

static int digest_hex(const X509 *cert, const EVP_MD *md, char *buf, size_t buflen)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;

	if (buflen > 0)
		buf[0] = '\0';
	if (!X509_digest(cert, md, d, &dl)) {
		ERR_clear_error();
		return -1;
	}
	return hex_upper(d, dl, buf, buflen);
}

int x509u_sha1_hex(const X509 *cert, char *buf, size_t buflen)
{
	return digest_hex(cert, EVP_sha1(), buf, buflen);
}

int x509u_sha256_hex(const X509 *cert, char *buf, size_t buflen)
{
	return digest_hex(cert, EVP_sha256(), buf, buflen);
}

static int time_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || !ASN1_TIME_to_tm(t, &tm)) {
		ERR_clear_error();
		return -1;
	}
	*out = timegm(&tm);
	return 0;
}

int x509u_not_before(const X509 *cert, time_t *out)
{
	return time_to_time_t(X509_get0_notBefore(cert), out);
}

int x509u_not_after(const X509 *cert, time_t *out)
{
	return time_to_time_t(X509_get0_notAfter(cert), out);
}

int x509u_time_str(const ASN1_TIME *t, char *buf, size_t buflen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int r = -1;

	if (buflen > 0)
		buf[0] = '\0';
	/* ASN1_TIME_print itself, so the form is exactly the openssl command's. */
	if (bio && t && ASN1_TIME_print(bio, t) == 1)
		r = bio_to_buf(bio, buf, buflen);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int x509u_not_before_str(const X509 *cert, char *buf, size_t buflen)
{
	return x509u_time_str(X509_get0_notBefore(cert), buf, buflen);
}

int x509u_not_after_str(const X509 *cert, char *buf, size_t buflen)
{
	return x509u_time_str(X509_get0_notAfter(cert), buf, buflen);
}

long x509u_days_remaining(const X509 *cert, time_t now)
{
	time_t end;

	if (x509u_not_after(cert, &end) < 0 || end <= now)
		return 0;
	return (long)((end - now) / 86400);
}

/* ---- names --------------------------------------------------------------------------- */

/* Appends a lowercase copy of an ASN.1 string that holds a plausible DNS name. */
static int names_add(struct x509u_names *nm, const unsigned char *p, int len)
{
	char **v;
	char *s;
	int i;

	if (len <= 0)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return 0;
	s = malloc((size_t)len + 1);
	if (!s)
		return -1;
	for (i = 0; i < len; i++)
		s[i] = (char)tolower(p[i]);
	s[len] = '\0';
	v = realloc(nm->name, (nm->n + 1) * sizeof(*v));
	if (!v) {
		free(s);
		return -1;
	}
	nm->name = v;
	nm->name[nm->n++] = s;
	return 0;
}

int x509u_dns_names(const X509 *cert, struct x509u_names *out)
{
	struct x509u_names nm = {0, NULL};
	GENERAL_NAMES *gens = NULL;
	unsigned char *utf8 = NULL;
	int crit = -1, i, ret = -1;

	out->n = 0;
	out->name = NULL;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (gens) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
			if (g->type != GEN_DNS)
				continue;
			if (names_add(&nm, ASN1_STRING_get0_data(g->d.dNSName),
			              ASN1_STRING_length(g->d.dNSName)) < 0)
				goto out;
		}
	} else if (crit == -1) { /* no subjectAltName: the most specific commonName */
		const X509_NAME *sub = X509_get_subject_name(cert);
		int idx = -1, last = -1, len;
		while ((idx = X509_NAME_get_index_by_NID(sub, NID_commonName, idx)) >= 0)
			last = idx;
		if (last >= 0) {
			const X509_NAME_ENTRY *e = X509_NAME_get_entry(sub, last);
			len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
			if (len >= 0 && names_add(&nm, utf8, len) < 0)
				goto out;
		}
	} else { /* present but undecodable (crit -2: several, >= 0: bad DER) */
		goto out;
	}
	*out = nm;
	nm.n = 0;
	nm.name = NULL;
	ret = 0;
out:
	x509u_names_free(&nm);
	GENERAL_NAMES_free(gens);
	OPENSSL_free(utf8);
	ERR_clear_error();
	return ret;
}

void x509u_names_free(struct x509u_names *names)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; i < names->n; i++)
		free(names->name[i]);
	free(names->name);
	names->name = NULL;
	names->n = 0;
}

/* ---- kinds --------------------------------------------------------------------------- */

int x509u_is_self_signed(const X509 *cert)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	int r;

	if (!pub || X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(cert)) != 0)
		return 0;
	/* X509_verify takes a non-const X509 in OpenSSL 3.0 but only reads it. */
	r = X509_verify((X509 *)cert, pub) == 1;
	ERR_clear_error();
	return r;
}

int x509u_is_ca(const X509 *cert)
{
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, NULL, NULL);
	int r = bc && bc->ca;

	BASIC_CONSTRAINTS_free(bc);
	ERR_clear_error();
	return r;
}

int x509u_req_add_dns_names(X509_REQ *req, const char *const *names, size_t n, int critical)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAME *g = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	size_t i;
	int ret = -1;

	if (!gens)
		goto out;
	for (i = 0; i < n; i++) {
		g = GENERAL_NAME_new();
		ia5 = ASN1_IA5STRING_new();
		if (!g || !ia5 || !names[i] || !*names[i] || !ASN1_STRING_set(ia5, names[i], -1))
			goto out;
		GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
		ia5 = NULL;
		if (!sk_GENERAL_NAME_push(gens, g))
			goto out;
		g = NULL;
	}
	if (X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT) != 1 ||
	    !X509_REQ_add_extensions(req, exts))
		goto out;
	ret = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ret;
}
