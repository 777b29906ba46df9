/* Unit tests of lib/x509u against a PKI made at run time by the openssl command: PEM
 * loading (garbage, wrong types, trailing junk, encrypted keys), and every formatted value
 * compared with what `openssl x509` prints for the same file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "x509u.h"

#include "testpki.h"

static int pki_setup(void **state)
{
	(void)state;
	return pki_make("/tmp/x509u-test-XXXXXX", pki_leaves_script);
}

/* What `openssl x509 -in F -noout ARGS` prints after the first '=' (colons dropped when
 * strip_colons). */
static void openssl_value(const char *file, const char *args, int strip_colons, char *out,
                          size_t outlen)
{
	char cmd[512], line[1024];
	const char *eq;
	FILE *p;
	size_t i, o = 0;

	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/%s' -noout %s", dir, file, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	line[strcspn(line, "\n")] = '\0';
	eq = strchr(line, '=');
	assert_non_null(eq);
	for (i = 1; eq[i] && o + 1 < outlen; i++)
		if (!strip_colons || eq[i] != ':')
			out[o++] = eq[i];
	out[o] = '\0';
}

static int load_certs_str(const char *s, char *err, size_t errlen)
{
	STACK_OF(X509) *sk = NULL;
	int r = x509u_load_certs_pem(s, strlen(s), &sk, err, errlen);

	if (r >= 0)
		assert_non_null(sk);
	else
		assert_null(sk);
	sk_X509_pop_free(sk, X509_free);
	return r;
}

static int load_key_str(const char *s, char *err, size_t errlen)
{
	EVP_PKEY *k = NULL;
	int r = x509u_load_key_pem(s, strlen(s), &k, err, errlen);

	if (r == 0)
		assert_non_null(k);
	else
		assert_null(k);
	EVP_PKEY_free(k);
	return r;
}

static char *cat2(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	assert_non_null(s);
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

static void test_load_certs(void **state)
{
	char err[256], *leaf = slurp("leaf.pem", NULL), *key = slurp("leaf.key", NULL);
	char *chain = slurp("chain_ir.pem", NULL), *s, *der, *p;
	size_t derlen;
	STACK_OF(X509) *sk = NULL;
	(void)state;

	assert_int_equal(load_certs_str(leaf, err, sizeof(err)), 1);
	assert_int_equal(load_certs_str(chain, err, sizeof(err)), 2);
	/* Commentary before a block, as openssl writes it, and CRLF line ends. */
	s = cat2("subject=CN = a.example.com\nissuer=CN = x\n\n", leaf);
	assert_int_equal(load_certs_str(s, err, sizeof(err)), 1);
	free(s);
	s = malloc(2 * strlen(leaf) + 1);
	assert_non_null(s);
	for (p = leaf, derlen = 0; *p; p++) {
		if (*p == '\n')
			s[derlen++] = '\r';
		s[derlen++] = *p;
	}
	s[derlen] = '\0';
	assert_int_equal(load_certs_str(s, err, sizeof(err)), 1);
	free(s);

	assert_int_equal(load_certs_str("", err, sizeof(err)), -X509U_E_EMPTY);
	assert_int_equal(load_certs_str(" \n\t\n", err, sizeof(err)), -X509U_E_EMPTY);
	assert_int_equal(load_certs_str("hello world\n", err, sizeof(err)), -X509U_E_NOPEM);
	assert_int_equal(x509u_load_certs_pem(NULL, 0, &sk, err, sizeof(err)), -X509U_E_EMPTY);

	der = slurp("leaf.der", &derlen);
	assert_int_equal(x509u_load_certs_pem(der, derlen, &sk, err, sizeof(err)), -X509U_E_BINARY);
	assert_non_null(strstr(err, "DER"));
	assert_null(sk);
	free(der);

	/* A key where a certificate belongs, alone and as the second block. */
	assert_int_equal(load_certs_str(key, err, sizeof(err)), -X509U_E_WRONG_TYPE);
	assert_non_null(strstr(err, "line 1:"));
	assert_non_null(strstr(err, "\"PRIVATE KEY\""));
	s = cat2(leaf, key);
	assert_int_equal(load_certs_str(s, err, sizeof(err)), -X509U_E_WRONG_TYPE);
	assert_null(strstr(err, "line 1:"));
	free(s);

	/* Junk after the last block, with its line number. */
	s = cat2(leaf, "\n-- end of file --\n");
	assert_int_equal(load_certs_str(s, err, sizeof(err)), -X509U_E_TRAILING);
	assert_non_null(strstr(err, "text after the last PEM block"));
	free(s);

	/* Truncated: the END line is missing. */
	s = strdup(leaf);
	assert_non_null(s);
	*strstr(s, "-----END") = '\0';
	assert_int_equal(load_certs_str(s, err, sizeof(err)), -X509U_E_MALFORMED);
	assert_non_null(strstr(err, "no END line"));
	free(s);

	/* END of another type; END without BEGIN; bad base64; base64 that is no certificate. */
	assert_int_equal(
	    load_certs_str("-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n", err,
	                   sizeof(err)),
	    -X509U_E_MALFORMED);
	assert_int_equal(load_certs_str("-----END CERTIFICATE-----\n", err, sizeof(err)),
	                 -X509U_E_MALFORMED);
	assert_int_equal(
	    load_certs_str("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", err,
	                   sizeof(err)),
	    -X509U_E_MALFORMED);
	assert_int_equal(load_certs_str("-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END "
	                                "CERTIFICATE-----\n",
	                                err, sizeof(err)),
	                 -X509U_E_MALFORMED);
	assert_non_null(strstr(err, "line 1:"));
	free(leaf);
	free(key);
	free(chain);
}

static void test_load_key(void **state)
{
	char err[256], *s, *k = slurp("leaf.key", NULL), *o = slurp("other.key", NULL);
	char *c = slurp("leaf.pem", NULL), *t;
	(void)state;

	assert_int_equal(load_key_str(k, err, sizeof(err)), 0);
	t = slurp("trad.key", NULL);
	assert_non_null(strstr(t, "BEGIN EC PRIVATE KEY"));
	assert_int_equal(load_key_str(t, err, sizeof(err)), 0);
	free(t);
	t = slurp("ecparam.key", NULL); /* EC PARAMETERS, then the key */
	assert_int_equal(load_key_str(t, err, sizeof(err)), 0);
	free(t);
	t = slurp("rsa.key", NULL);
	assert_int_equal(load_key_str(t, err, sizeof(err)), 0);
	free(t);

	t = slurp("enc.key", NULL);
	assert_int_equal(load_key_str(t, err, sizeof(err)), -X509U_E_ENCRYPTED);
	free(t);
	t = slurp("enctrad.key", NULL);
	assert_non_null(strstr(t, "Proc-Type: 4,ENCRYPTED"));
	assert_int_equal(load_key_str(t, err, sizeof(err)), -X509U_E_ENCRYPTED);
	free(t);

	s = cat2(k, o);
	assert_int_equal(load_key_str(s, err, sizeof(err)), -X509U_E_MULTIPLE);
	free(s);
	assert_int_equal(load_key_str(c, err, sizeof(err)), -X509U_E_WRONG_TYPE);
	assert_non_null(strstr(err, "\"CERTIFICATE\""));
	assert_int_equal(load_key_str("", err, sizeof(err)), -X509U_E_EMPTY);
	assert_int_equal(load_key_str("my key\n", err, sizeof(err)), -X509U_E_NOPEM);
	s = cat2(k, "oops\n");
	assert_int_equal(load_key_str(s, err, sizeof(err)), -X509U_E_TRAILING);
	free(s);
	/* A broken key: the message never quotes the file. */
	assert_int_equal(load_key_str("-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END "
	                              "PRIVATE KEY-----\n",
	                              err, sizeof(err)),
	                 -X509U_E_MALFORMED);
	assert_null(strstr(err, "U0VDUkVU"));
	assert_string_equal(x509u_strerror(-X509U_E_ENCRYPTED), "the private key is encrypted");
	free(k);
	free(o);
	free(c);
}

static void test_key_matches(void **state)
{
	X509 *x = pem_cert("leaf.pem");
	EVP_PKEY *k = NULL, *o = NULL;
	char err[256], *kp = slurp("leaf.key", NULL), *op = slurp("other.key", NULL);
	(void)state;

	assert_int_equal(x509u_load_key_pem(kp, strlen(kp), &k, err, sizeof(err)), 0);
	assert_int_equal(x509u_load_key_pem(op, strlen(op), &o, err, sizeof(err)), 0);
	assert_int_equal(x509u_key_matches(x, k), 1);
	assert_int_equal(x509u_key_matches(x, o), 0);
	EVP_PKEY_free(k);
	EVP_PKEY_free(o);
	X509_free(x);
	free(kp);
	free(op);
}

static void test_dn(void **state)
{
	static const char *const files[] = {"leaf.pem",   "weird.pem", "int.pem",
	                                    "oldint.pem", "root.pem",  "fakeself.pem"};
	char want[1024], got[1024], small[8], *g;
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		X509 *x = pem_cert(files[i]);
		openssl_value(files[i], "-subject -nameopt RFC2253", 0, want, sizeof(want));
		assert_int_equal(x509u_subject_dn(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		g = x509u_name_rfc2253_get1(X509_get_subject_name(x));
		assert_non_null(g);
		assert_string_equal(g, want);
		free(g);
		openssl_value(files[i], "-issuer -nameopt RFC2253", 0, want, sizeof(want));
		assert_int_equal(x509u_issuer_dn(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		X509_free(x);
	}
	{
		X509 *x = pem_cert("weird.pem");
		const char *p;
		assert_int_equal(x509u_subject_dn(x, got, sizeof(got)), 0);
		assert_string_equal(got, "CN=Caf\\C3\\A9.example.com,OU=a\\+b\\;c\\<d\\>e=f#,"
		                         "O=Foo\\, \\\"Bar\\\" \\+ Baz,L=Z\\C3\\BCrich,C=CH");
		for (p = got; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
		assert_int_equal(x509u_subject_dn(x, small, sizeof(small)), -1);
		assert_string_equal(small, "");
		X509_free(x);
	}
}

static void test_serial(void **state)
{
	static const char *const files[] = {"leaf.pem", "wild.pem", "weird.pem", "expired.pem",
	                                    "root.pem"};
	char want[256], got[X509U_SERIAL_LEN], small[4];
	size_t i;
	X509 *x;
	(void)state;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		x = pem_cert(files[i]);
		openssl_value(files[i], "-serial", 0, want, sizeof(want));
		assert_int_equal(x509u_serial_hex(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		X509_free(x);
	}
	x = pem_cert("leaf.pem"); /* 0x80A1: DER 02 03 00 80 A1 */
	assert_int_equal(x509u_serial_hex(x, got, sizeof(got)), 0);
	assert_string_equal(got, "80A1");
	assert_int_equal(x509u_serial_hex(x, small, sizeof(small)), -1);
	X509_free(x);
	x = pem_cert("wild.pem"); /* 0x00FF */
	assert_int_equal(x509u_serial_hex(x, got, sizeof(got)), 0);
	assert_string_equal(got, "FF");
	X509_free(x);
}

static void test_fingerprints(void **state)
{
	static const char *const files[] = {"leaf.pem", "weird.pem", "root.pem"};
	char want[256], got[X509U_SHA256_LEN];
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		X509 *x = pem_cert(files[i]);
		openssl_value(files[i], "-fingerprint -sha1", 1, want, sizeof(want));
		assert_int_equal(x509u_sha1_hex(x, got, sizeof(got)), 0);
		assert_int_equal(strlen(got), 40);
		assert_string_equal(got, want);
		openssl_value(files[i], "-fingerprint -sha256", 1, want, sizeof(want));
		assert_int_equal(x509u_sha256_hex(x, got, sizeof(got)), 0);
		assert_int_equal(strlen(got), 64);
		assert_string_equal(got, want);
		assert_int_equal(x509u_sha256_hex(x, got, 64), -1);
		X509_free(x);
	}
}

static void test_dates(void **state)
{
	static const char *const files[] = {"leaf.pem", "expired.pem", "oldint.pem"};
	char want[256], got[X509U_TIME_LEN];
	struct tm tm = {0};
	time_t t, nb;
	size_t i;
	X509 *x;
	(void)state;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		x = pem_cert(files[i]);
		openssl_value(files[i], "-enddate", 0, want, sizeof(want));
		assert_int_equal(x509u_not_after_str(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		openssl_value(files[i], "-startdate", 0, want, sizeof(want));
		assert_int_equal(x509u_not_before_str(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		X509_free(x);
	}
	x = pem_cert("expired.pem");
	assert_int_equal(x509u_not_after_str(x, got, sizeof(got)), 0);
	assert_string_equal(got, "Aug  5 18:54:27 2023 GMT"); /* %e: space-padded day */
	assert_int_equal(x509u_not_after(x, &t), 0);
	tm.tm_year = 2023 - 1900;
	tm.tm_mon = 7;
	tm.tm_mday = 5;
	tm.tm_hour = 18;
	tm.tm_min = 54;
	tm.tm_sec = 27;
	assert_int_equal((long long)t, (long long)timegm(&tm));
	assert_int_equal(x509u_not_before(x, &nb), 0);
	assert_true(nb < t);
	assert_int_equal(x509u_days_remaining(x, t - 2 * 86400 - 1), 2);
	assert_int_equal(x509u_days_remaining(x, t - 2 * 86400), 2);
	assert_int_equal(x509u_days_remaining(x, t - 86400 + 1), 0);
	assert_int_equal(x509u_days_remaining(x, t + 1), 0);
	assert_int_equal(x509u_not_after_str(x, got, 10), -1);
	X509_free(x);
}

static void expect_names(const char *file, const char *const *want, size_t n)
{
	struct x509u_names nm;
	X509 *x = pem_cert(file);
	size_t i;

	assert_int_equal(x509u_dns_names(x, &nm), 0);
	assert_int_equal(nm.n, n);
	for (i = 0; i < n; i++)
		assert_string_equal(nm.name[i], want[i]);
	x509u_names_free(&nm);
	assert_int_equal(nm.n, 0);
	X509_free(x);
}

static void test_dns_names(void **state)
{
	static const char *const ab[] = {"a.example.com", "b.example.com"};
	static const char *const wild[] = {"*.example.com"};
	static const char *const cn[] = {"cn.example.com"};
	(void)state;

	expect_names("leaf.pem", ab, 2);
	expect_names("weird.pem", ab, 2); /* SAN present: the odd CN is not a name */
	expect_names("wild.pem", wild, 1);
	expect_names("cnonly.pem", cn, 1);   /* no SAN extension: the CN */
	expect_names("iponly.pem", NULL, 0); /* SAN without dNSName: nothing, not the CN */
}

static void test_kinds(void **state)
{
	static const struct {
		const char *file;
		int self, ca;
	} t[] = {
	    {"self.pem", 1, 0}, {"root.pem", 1, 1},     {"int.pem", 0, 1}, {"leaf.pem", 0, 0},
	    {"wild.pem", 0, 0}, {"fakeself.pem", 0, 0}, /* issuer == subject, signed by another key
	                                                 */
	};
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		X509 *x = pem_cert(t[i].file);
		assert_int_equal(x509u_is_self_signed(x), t[i].self);
		assert_int_equal(x509u_is_ca(x), t[i].ca);
		X509_free(x);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_certs),  cmocka_unit_test(test_load_key),
	    cmocka_unit_test(test_key_matches), cmocka_unit_test(test_dn),
	    cmocka_unit_test(test_serial),      cmocka_unit_test(test_fingerprints),
	    cmocka_unit_test(test_dates),       cmocka_unit_test(test_dns_names),
	    cmocka_unit_test(test_kinds),
	};
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
