/* Unit tests of agent/headers: every value compared with what `openssl x509` prints for the
 * same file (DNs with commas, quotes and UTF-8, serials with a leading zero byte, days of
 * month below 10), the URL-encoded PEM decoded back, sizes, and no CR/LF/NUL ever. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "headers.h"
#include "x509u.h"

#include "testpki.h"

static const char pki_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "cat > ext.cnf <<'X'\n"
    "[req]\n"
    "distinguished_name = dn\n"
    "[dn]\n"
    "[ca]\n"
    "default_ca = cad\n"
    "[cad]\n"
    "database = index.txt\n"
    "new_certs_dir = .\n"
    "serial = serial\n"
    "default_md = sha256\n"
    "policy = pol\n"
    "unique_subject = no\n"
    "email_in_dn = no\n"

    "[pol]\n"
    "commonName = supplied\n"
    "organizationName = optional\n"
    "organizationalUnitName = optional\n"
    "countryName = optional\n"
    "localityName = optional\n"
    "[v3ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "[client]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "X\n"
    "touch index.txt\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\" "
    "2>/dev/null; }\n"
    "# mk NAME SUBJ ISSUER EXT START END SERIAL\n"
    "mk() { key \"$1.key\"\n"
    "  openssl req -new -config ext.cnf -key \"$1.key\" -subj \"$2\" -utf8 -out \"$1.csr\"\n"
    "  echo \"$7\" > serial\n"
    "  openssl ca -batch -config ext.cnf -cert \"$3.pem\" -keyfile \"$3.key\" -in \"$1.csr\" "
    "-out \"$1.pem\" \\\n"
    "    -startdate \"$5\" -enddate \"$6\" -extensions \"$4\" -notext -utf8 2>/dev/null; }\n"
    "key root.key\n"
    "openssl req -new -x509 -config ext.cnf -key root.key -utf8 -days 3650 -set_serial 1 "
    "-extensions v3ca \\\n"
    "  -subj '/C=FR/O=Acme, \"Root\" Inc./CN=Racine \303\251t\303\251' -out root.pem\n"
    "mk int '/O=Test, Inc./OU=a\\+b;c<d>e=f#/CN=Test \"I\"' root v3ca 20240102000000Z "
    "20400101000000Z 0C\n"
    "mk leaf '/C=CH/L=Z\303\274rich/O=Foo, \"Bar\" Inc./CN=Zo\303\253 Client' int client "
    "20240105093005Z 20990107235959Z 80A1\n"
    "mk lead0 '/CN=Leading Zero' int client 20240809010203Z 20991009040506Z 00FF\n"
    "mk long '/CN=Long Serial' int client 20240110000000Z 20990110000000Z "
    "00DEADBEEF0102030405060708090A0B0C0D0E\n"
    "mk expired '/CN=Expired' int client 20200101000000Z 20230805185427Z 0100\n";

static int pki_setup(void **state)
{
	(void)state;
	return pki_make("/tmp/hdr-test-XXXXXX", pki_script);
}

static X509 *cert(const char *name)
{
	char path[256];
	FILE *f;
	X509 *x;

	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

/* All that `openssl x509 -in NAME.pem ARGS` prints; the caller frees. */
static char *openssl_out(const char *name, const char *args)
{
	char cmd[512];
	size_t len = 0, cap = 4096, n;
	char *buf = malloc(cap);
	FILE *p;

	assert_non_null(buf);
	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/%s.pem' %s", dir, name, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	assert_int_equal(pclose(p), 0);
	buf[len] = '\0';
	return buf;
}

/* The value after the first '=' of `openssl x509 -noout ARGS`, colons dropped if asked. */
static void openssl_value(const char *name, const char *args, int strip_colons, char *out,
                          size_t outlen)
{
	char a[128];
	char *s, *eq;
	size_t i, o = 0;

	snprintf(a, sizeof(a), "-noout %s", args);
	s = openssl_out(name, a);
	s[strcspn(s, "\n")] = '\0';
	eq = strchr(s, '=');
	assert_non_null(eq);
	for (i = 1; eq[i] && o + 1 < outlen; i++)
		if (!strip_colons || eq[i] != ':')
			out[o++] = eq[i];
	out[o] = '\0';
	free(s);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lowercase hex is not what we promise */
}

/* Decodes a value of hdr_urlencode, checking that it is in the promised form. */
static size_t urldecode(const char *s, size_t len, unsigned char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			assert_true(i + 2 < len);
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			assert_true(hi >= 0 && lo >= 0);
			out[o] = (unsigned char)(hi << 4 | lo);
			/* an unreserved byte is never encoded */
			assert_false((out[o] >= 'A' && out[o] <= 'Z') ||
			             (out[o] >= 'a' && out[o] <= 'z') ||
			             (out[o] >= '0' && out[o] <= '9') || out[o] == '-' ||
			             out[o] == '.' || out[o] == '_' || out[o] == '~');
			o++;
			i += 2;
		} else {
			assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			            c == '~');
			out[o++] = c;
		}
	}
	return o;
}

static const char *const files[] = {"leaf", "lead0", "long", "expired", "int", "root"};

static void format(X509 *x, time_t now, int with_cert, struct hdr_values *v, char **store)
{
	size_t need = hdr_need(x);

	assert_true(need > 0);
	*store = malloc(need);
	assert_non_null(*store);
	assert_int_equal(hdr_format(x, now, with_cert, *store, need, v), 0);
}

static void test_against_openssl(void **state)
{
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		X509 *x = cert(files[i]);
		struct hdr_values v;
		char want[4096], *store;

		format(x, time(NULL), 1, &v, &store);
		openssl_value(files[i], "-subject -nameopt RFC2253", 0, want, sizeof(want));
		assert_string_equal(v.s_dn, want);
		assert_int_equal(v.s_dn_len, strlen(want));
		openssl_value(files[i], "-issuer -nameopt RFC2253", 0, want, sizeof(want));
		assert_string_equal(v.i_dn, want);
		openssl_value(files[i], "-serial", 0, want, sizeof(want));
		assert_string_equal(v.serial, want);
		openssl_value(files[i], "-fingerprint -sha1", 1, want, sizeof(want));
		assert_string_equal(v.sha1, want);
		assert_int_equal(v.sha1_len, 40);
		openssl_value(files[i], "-startdate", 0, want, sizeof(want));
		assert_string_equal(v.v_start, want);
		openssl_value(files[i], "-enddate", 0, want, sizeof(want));
		assert_string_equal(v.v_end, want);
		free(store);
		X509_free(x);
	}
}

/* The exact forms DESIGN §2.4 names, on the files made for them. */
static void test_forms(void **state)
{
	struct hdr_values v;
	X509 *leaf = cert("leaf"), *lead0 = cert("lead0"), *lng = cert("long");
	char *s1, *s2, *s3;
	(void)state;

	format(leaf, time(NULL), 0, &v, &s1);
	/* `openssl ca` orders the subject as its policy section does */
	assert_string_equal(v.s_dn,
	                    "L=Z\\C3\\BCrich,C=CH,O=Foo\\, \\\"Bar\\\" Inc.,CN=Zo\\C3\\AB Client");
	assert_string_equal(v.i_dn, "OU=a\\+b\\;c\\<d\\>e=f#,O=Test\\, Inc.,CN=Test \\\"I\\\"");
	assert_string_equal(v.serial, "80A1"); /* DER 00 80 A1 */
	assert_string_equal(v.v_start, "Jan  5 09:30:05 2024 GMT");
	assert_string_equal(v.v_end, "Jan  7 23:59:59 2099 GMT");
	assert_string_equal(v.cert, "");
	assert_int_equal(v.cert_len, 0);
	format(lead0, time(NULL), 0, &v, &s2);
	assert_string_equal(v.serial, "FF");
	assert_string_equal(v.v_start, "Aug  9 01:02:03 2024 GMT");
	format(lng, time(NULL), 0, &v, &s3);
	assert_string_equal(v.serial, "DEADBEEF0102030405060708090A0B0C0D0E");
	free(s1);
	free(s2);
	free(s3);
	X509_free(leaf);
	X509_free(lead0);
	X509_free(lng);
}

static void test_cert_pem(void **state)
{
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		X509 *x = cert(files[i]);
		struct hdr_values v;
		char *store, *pem = openssl_out(files[i], "");
		unsigned char *dec;
		size_t n, cl = hdr_cert_len(x);
		char *one = malloc(cl + 1);

		format(x, time(NULL), 1, &v, &store);
		assert_int_equal(v.cert_len, cl);
		assert_int_equal(strlen(v.cert), cl);
		assert_memory_equal(v.cert, "-----BEGIN%20CERTIFICATE-----%0AMII", 35);
		dec = malloc(v.cert_len + 1);
		assert_non_null(dec);
		n = urldecode(v.cert, v.cert_len, dec);
		assert_int_equal(n, strlen(pem));
		assert_memory_equal(dec, pem, n);
		/* the one-value function gives the same bytes, and needs room for its NUL */
		assert_non_null(one);
		assert_int_equal(hdr_cert(x, one, cl + 1), (int)cl);
		assert_string_equal(one, v.cert);
		assert_int_equal(hdr_cert(x, one, cl), -1);
		assert_string_equal(one, "");
		free(one);
		free(dec);
		free(pem);
		free(store);
		X509_free(x);
	}
}

static void test_urlencode(void **state)
{
	unsigned char all[256], back[256];
	char out[3 * 256 + 1];
	size_t i;
	int n;
	(void)state;

	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	n = hdr_urlencode(all, sizeof(all), out, sizeof(out));
	assert_int_equal(n, 3 * 256 - 2 * 66); /* 66 unreserved bytes stay as they are */
	assert_int_equal((size_t)n, hdr_urlencoded_len(all, sizeof(all)));
	assert_int_equal(strlen(out), (size_t)n);
	assert_int_equal(urldecode(out, (size_t)n, back), 256);
	assert_memory_equal(back, all, 256);
	assert_true(hdr_value_safe(out, (size_t)n));
	assert_int_equal(hdr_urlencode("a b\n", 4, out, sizeof(out)), 8);
	assert_string_equal(out, "a%20b%0A");
	assert_int_equal(hdr_urlencode("-._~/+=", 7, out, sizeof(out)), 13);
	assert_string_equal(out, "-._~%2F%2B%3D");
	/* exact fit and one short */
	assert_int_equal(hdr_urlencode("a b", 3, out, 6), 5);
	assert_int_equal(hdr_urlencode("a b", 3, out, 5), -1);
	assert_string_equal(out, "");
	assert_int_equal(hdr_urlencode("", 0, out, 1), 0);
	assert_int_equal(hdr_urlencode("", 0, out, 0), -1);
}

static void test_remain(void **state)
{
	X509 *x = cert("leaf"), *e = cert("expired");
	time_t end;
	struct hdr_values v;
	char *s;
	(void)state;

	assert_int_equal(x509u_not_after(x, &end), 0);
	format(x, end - 10 * 86400, 0, &v, &s);
	assert_int_equal(v.v_remain, 10);
	free(s);
	format(x, end - 10 * 86400 + 1, 0, &v, &s);
	assert_int_equal(v.v_remain, 9); /* rounded down */
	free(s);
	format(x, end - 1, 0, &v, &s);
	assert_int_equal(v.v_remain, 0);
	free(s);
	format(x, end + 5, 0, &v, &s);
	assert_int_equal(v.v_remain, 0);
	free(s);
	format(e, time(NULL), 0, &v, &s);
	assert_int_equal(v.v_remain, 0);
	assert_string_equal(v.v_end, "Aug  5 18:54:27 2023 GMT");
	free(s);
	X509_free(x);
	X509_free(e);
}

/* Storage: hdr_need always suffices, too little is an error that leaves nothing behind,
 * and hdr_values_len adds up what an ACK carries with and without cert. */
static void test_sizes(void **state)
{
	X509 *x = cert("leaf");
	size_t need = hdr_need(x), total, cert_len;
	char *buf = malloc(need);
	struct hdr_values v;
	(void)state;

	assert_non_null(buf);
	assert_int_equal(hdr_format(x, time(NULL), 1, buf, need, &v), 0);
	total = hdr_values_len(&v, 1);
	cert_len = v.cert_len;
	assert_int_equal(total, v.cert_len + v.s_dn_len + v.i_dn_len + v.serial_len + v.sha1_len +
	                            v.v_start_len + v.v_end_len);
	assert_int_equal(hdr_values_len(&v, 0), total - v.cert_len);
	assert_true(cert_len > 500);
	/* every value lies inside the storage */
	assert_true(v.cert >= buf && v.v_end + v.v_end_len < buf + need);
	/* what the seven values take exactly, each with its NUL: one byte less fails and
	 * leaves nothing behind */
	assert_int_equal(hdr_format(x, time(NULL), 1, buf, total + 7, &v), 0);
	assert_int_equal(hdr_format(x, time(NULL), 1, buf, total + 6, &v), -1);
	assert_null(v.s_dn);
	assert_null(v.cert);
	assert_int_equal(v.cert_len, 0);
	/* without cert: the other six values only */
	assert_int_equal(hdr_format(x, time(NULL), 0, buf, total - cert_len + 6, &v), 0);
	assert_int_equal(hdr_values_len(&v, 1), total - cert_len);
	assert_int_equal(hdr_format(x, time(NULL), 0, buf, total - cert_len + 5, &v), -1);
	assert_int_equal(hdr_format(NULL, time(NULL), 0, buf, need, &v), -1);
	assert_int_equal(hdr_need(NULL), 0);
	free(buf);
	X509_free(x);
}

/* A certificate made here with CR, LF, NUL, DEL and other control bytes in its names. */
static X509 *hostile_cert(void)
{
	static const unsigned char cn[] = {'a', '\r', '\n', 'b', 0, 'c', 0x7f, 0x1b, 'd'};
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	assert_non_null(k);
	assert_non_null(x);
	assert_non_null(n);
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", V_ASN1_UTF8STRING, cn, sizeof(cn), -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"x\ny",
	                                       -1, -1, 0));
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
	assert_true(X509_set_subject_name(x, n));
	assert_true(X509_set_issuer_name(x, n));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30));
	assert_true(X509_set_pubkey(x, k));
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	X509_NAME_free(n);
	EVP_PKEY_free(k);
	return x;
}

static void assert_safe(const char *s, size_t len)
{
	size_t i;

	assert_int_equal(strlen(s), len); /* no NUL inside */
	for (i = 0; i < len; i++) {
		assert_true(s[i] != '\r' && s[i] != '\n');
		assert_true((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] != 0x7f);
	}
}

static void test_no_control_bytes(void **state)
{
	const char *const names[] = {"leaf", "root", "int"};
	X509 *x = hostile_cert();
	struct hdr_values v;
	char *s;
	size_t i;
	(void)state;

	for (i = 0; i <= sizeof(names) / sizeof(names[0]); i++) {
		X509 *c = i < sizeof(names) / sizeof(names[0]) ? cert(names[i]) : x;

		format(c, time(NULL), 1, &v, &s);
		assert_safe(v.cert, v.cert_len);
		assert_safe(v.s_dn, v.s_dn_len);
		assert_safe(v.i_dn, v.i_dn_len);
		assert_safe(v.serial, v.serial_len);
		assert_safe(v.sha1, v.sha1_len);
		assert_safe(v.v_start, v.v_start_len);
		assert_safe(v.v_end, v.v_end_len);
		if (c == x) {
			/* escaped, as `-nameopt RFC2253` escapes them */
			assert_non_null(strstr(v.s_dn, "a\\0D\\0Ab\\00c\\7F\\1Bd"));
			assert_non_null(strstr(v.s_dn, "O=x\\0Ay"));
		} else {
			X509_free(c);
		}
		free(s);
	}
	X509_free(x);
	/* the guard itself */
	assert_true(hdr_value_safe("abc", 3));
	assert_false(hdr_value_safe("a\rb", 3));
	assert_false(hdr_value_safe("a\nb", 3));
	assert_false(hdr_value_safe("a\0b", 3));
	assert_false(hdr_value_safe("a\x7f", 2));
	assert_true(hdr_value_safe("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_against_openssl),  cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_cert_pem),         cmocka_unit_test(test_urlencode),
	    cmocka_unit_test(test_remain),           cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_no_control_bytes),
	};
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
