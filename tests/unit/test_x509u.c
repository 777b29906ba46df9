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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "x509u.h"

/* Runs in a fresh directory ($1): root, intermediates, leaves of every kind, keys. */
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
    "[v3ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "[ab]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "subjectAltName = DNS:a.example.com,DNS:b.example.com\n"
    "[wild]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "subjectAltName = DNS:*.example.com\n"
    "[cnonly]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "[iponly]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "subjectAltName = IP:192.0.2.1\n"
    "[client]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "subjectAltName = DNS:a.example.com\n"
    "[self]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "subjectKeyIdentifier = hash\n"
    "subjectAltName = DNS:a.example.com\n"
    "X\n"
    "touch index.txt\n"
    "echo 1000 > serial\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\" "
    "2>/dev/null; }\n"
    "req() { openssl req -new -config ext.cnf -key \"$1\" -subj \"$2\" -utf8 -out \"$3\"; }\n"
    "# sign KEYNAME SUBJ ISSUER EXT SERIAL DAYS OUT\n"
    "sign() { key \"$1.key\"; req \"$1.key\" \"$2\" \"$1.csr\"\n"
    "  openssl x509 -req -in \"$1.csr\" -CA \"$3.pem\" -CAkey \"$3.key\" -set_serial \"$5\" -days "
    "\"$6\" \\\n"
    "    -extfile ext.cnf -extensions \"$4\" -out \"$1.pem\" 2>/dev/null; }\n"
    "# casign NAME SUBJ ISSUER EXT START END\n"
    "casign() { key \"$1.key\"; req \"$1.key\" \"$2\" \"$1.csr\"\n"
    "  openssl ca -batch -config ext.cnf -cert \"$3.pem\" -keyfile \"$3.key\" -in \"$1.csr\" -out "
    "\"$1.pem\" \\\n"
    "    -startdate \"$5\" -enddate \"$6\" -extensions \"$4\" -notext -utf8 2>/dev/null; }\n"
    "key root.key\n"
    "openssl req -new -x509 -config ext.cnf -key root.key -subj \"/O=Test/CN=Test Root\" -days "
    "3650 \\\n"
    "  -set_serial 1 -extensions v3ca -out root.pem\n"
    "sign int \"/O=Test/CN=Test Intermediate\" root v3ca 2 3000\n"
    "sign int2 \"/O=Test/CN=Test Intermediate 2\" int v3ca 3 2900\n"
    "sign leaf \"/CN=a.example.com\" int ab 0x80A1 365\n"
    "sign wild \"/CN=*.example.com\" int wild 0x00FF 365\n"
    "sign deep \"/CN=a.example.com\" int2 ab 5 365\n"
    "sign cnonly \"/CN=cn.example.com\" int cnonly 6 365\n"
    "sign iponly \"/CN=ip.example.com\" int iponly 7 365\n"
    "sign weird '/C=CH/L=Zürich/O=Foo, \"Bar\" \\+ Baz/OU=a\\+b;c<d>e=f#/CN=Café.example.com' int "
    "ab 8 365\n"
    "sign client \"/CN=a.example.com\" int client 11 365\n"
    "sign fakeself \"/O=Test/CN=Test Intermediate\" int ab 12 365\n"
    "openssl x509 -in leaf.pem -outform der -out leaf.der\n"
    "openssl ec -in leaf.key -out trad.key 2>/dev/null\n"
    "openssl ecparam -genkey -name prime256v1 -out ecparam.key\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null\n"
    "casign expired \"/CN=a.example.com\" int ab 20230101000000Z 20230805185427Z\n"
    "casign future \"/CN=a.example.com\" int ab 20990101000000Z 20991231235959Z\n"
    "casign oldint \"/O=Test/CN=Old Intermediate\" root v3ca 20200101000000Z 20240101000000Z\n"
    "sign oldleaf \"/CN=a.example.com\" oldint ab 9 365\n"
    "key self.key\n"
    "openssl req -new -x509 -config ext.cnf -key self.key -subj \"/CN=a.example.com\" -days 365 "
    "\\\n"
    "  -set_serial 10 -extensions self -out self.pem\n"
    "key other.key\n"
    "openssl pkey -in leaf.key -aes256 -passout pass:x -out enc.key\n"
    "openssl ec -in leaf.key -aes256 -passout pass:x -out enctrad.key 2>/dev/null\n"
    "cat int.pem root.pem > chain_ir.pem\n"
    "cat root.pem int.pem > chain_ri.pem\n"
    "cp int.pem chain_i.pem\n"
    "cat int.pem int2.pem > chain_12.pem\n"
    "cat int2.pem int.pem > chain_21.pem\n";

static char dir[64];

static int run_script(const char *script, const char *arg)
{
	int st = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", script, "sh", arg, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int pki_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/x509u-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return run_script(pki_script, dir);
}

static int pki_teardown(void **state)
{
	(void)state;
	return run_script("rm -rf \"$1\"", dir);
}

/* The bytes of a file of the PKI directory, NUL-terminated; the caller frees. */
static char *slurp(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* The first certificate of a PEM file of the PKI directory. */
static X509 *cert(const char *name)
{
	STACK_OF(X509) *sk = NULL;
	char err[256];
	size_t len;
	char *pem = slurp(name, &len);
	X509 *x;

	assert_true(x509u_load_certs_pem(pem, len, &sk, err, sizeof(err)) >= 1);
	x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	free(pem);
	return x;
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
	X509 *x = cert("leaf.pem");
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
		X509 *x = cert(files[i]);
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
		X509 *x = cert("weird.pem");
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
		x = cert(files[i]);
		openssl_value(files[i], "-serial", 0, want, sizeof(want));
		assert_int_equal(x509u_serial_hex(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		X509_free(x);
	}
	x = cert("leaf.pem"); /* 0x80A1: DER 02 03 00 80 A1 */
	assert_int_equal(x509u_serial_hex(x, got, sizeof(got)), 0);
	assert_string_equal(got, "80A1");
	assert_int_equal(x509u_serial_hex(x, small, sizeof(small)), -1);
	X509_free(x);
	x = cert("wild.pem"); /* 0x00FF */
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
		X509 *x = cert(files[i]);
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
		x = cert(files[i]);
		openssl_value(files[i], "-enddate", 0, want, sizeof(want));
		assert_int_equal(x509u_not_after_str(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		openssl_value(files[i], "-startdate", 0, want, sizeof(want));
		assert_int_equal(x509u_not_before_str(x, got, sizeof(got)), 0);
		assert_string_equal(got, want);
		X509_free(x);
	}
	x = cert("expired.pem");
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
	X509 *x = cert(file);
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
		X509 *x = cert(t[i].file);
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
