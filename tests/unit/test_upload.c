/* Unit tests of certsync/upload: every refusal with its code and message, and the
 * accepted cases (chain order, root or not, wildcards), against a PKI made at run time by
 * the openssl command. */
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

#include "upload.h"
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
    "cat int2.pem int.pem > chain_21.pem\n"
    "cat int2.pem int.pem root.pem > chain_21r.pem\n"
    "cat root.pem int.pem int2.pem > chain_r12.pem\n"
    "cat leaf.pem int.pem > fullchain.pem\n"
    "cat wild.pem int.pem > chain_wi.pem\n"
    "cat leaf.key other.key > twokeys.key\n"
    "{ cat leaf.pem; echo; echo 'and some text'; } > leaf_junk.pem\n";

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
	snprintf(dir, sizeof(dir), "/tmp/upload-test-XXXXXX");
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

static X509_STORE *trust;
static time_t now;

static int setup(void **state)
{
	X509 *root;

	if (pki_setup(state) < 0)
		return -1;
	trust = X509_STORE_new();
	root = cert("root.pem");
	if (!trust || !X509_STORE_add_cert(trust, root))
		return -1;
	X509_free(root);
	now = time(NULL);
	return 0;
}

static int teardown(void **state)
{
	X509_STORE_free(trust);
	return pki_teardown(state);
}

struct up {
	const char *cert, *chain, *key;       /* file names; chain NULL: empty */
	const char *cert_s, *chain_s, *key_s; /* literal contents instead */
	const char *hosts[6];
	X509_STORE *store; /* NULL: the root */
	time_t now;        /* 0: now */
};

/* Runs upload_check; returns the code, res filled. */
static enum upload_code run(const struct up *u, struct upload_result *res)
{
	struct upload_input in = {0};
	char *c = u->cert ? slurp(u->cert, &in.cert_len) : NULL;
	char *ch = u->chain ? slurp(u->chain, &in.chain_len) : NULL;
	char *k = u->key ? slurp(u->key, &in.key_len) : NULL;
	size_t n = 0;
	int r;

	in.cert_pem = c;
	if (u->cert_s) {
		in.cert_pem = u->cert_s;
		in.cert_len = strlen(u->cert_s);
	}
	in.chain_pem = ch;
	if (u->chain_s) {
		in.chain_pem = u->chain_s;
		in.chain_len = strlen(u->chain_s);
	}
	in.key_pem = k;
	if (u->key_s) {
		in.key_pem = u->key_s;
		in.key_len = strlen(u->key_s);
	}
	while (n < 6 && u->hosts[n])
		n++;
	in.hostnames = u->hosts;
	in.nhostnames = n;
	in.trust = u->store ? u->store : trust;
	in.now = u->now ? u->now : now;
	r = upload_check(&in, res);
	if (r == 0) {
		assert_int_equal(res->code, UPLOAD_OK);
		assert_non_null(res->leaf);
		assert_non_null(res->key);
		assert_non_null(res->intermediates);
	} else {
		assert_int_equal(r, -1);
		assert_int_not_equal(res->code, UPLOAD_OK);
		assert_true(res->message[0] != '\0');
		assert_null(res->leaf);
		assert_null(res->issuer_dn);
	}
	free(c);
	free(ch);
	free(k);
	return res->code;
}

/* Expects a refusal with code and a message holding want. */
static void refused(const struct up *u, enum upload_code code, const char *want)
{
	struct upload_result res;
	enum upload_code got = run(u, &res);

	if (got != code || !strstr(res.message, want))
		fail_msg("expected %s \"%s\", got %s \"%s\"", upload_code_name(code), want,
		         upload_code_name(got), res.message);
	upload_result_free(&res);
}

static void test_accept(void **state)
{
	struct up u = {.cert = "leaf.pem",
	               .chain = "chain_i.pem",
	               .key = "leaf.key",
	               .hosts = {"c.example.com", "a.example.com"}};
	struct upload_result res;
	char want[256];
	X509 *x = cert("leaf.pem");
	time_t na;
	(void)state;

	assert_int_equal(run(&u, &res), UPLOAD_OK);
	assert_string_equal(res.message, "");
	assert_int_equal(res.covered.n, 1);
	assert_string_equal(res.covered.name[0], "a.example.com");
	assert_int_equal(res.names.n, 2);
	assert_string_equal(res.names.name[0], "a.example.com");
	assert_string_equal(res.names.name[1], "b.example.com");
	assert_string_equal(res.serial, "80A1");
	assert_string_equal(res.issuer_dn, "CN=Test Intermediate,O=Test");
	assert_string_equal(res.subject_dn, "CN=a.example.com");
	assert_int_equal(x509u_sha256_hex(x, want, sizeof(want)), 0);
	assert_string_equal(res.sha256, want);
	assert_int_equal(x509u_not_after(x, &na), 0);
	assert_int_equal((long long)res.not_after, (long long)na);
	assert_true(res.not_before < res.not_after);
	assert_int_equal(res.wildcard, 0);
	assert_int_equal(sk_X509_num(res.intermediates), 1);
	assert_int_equal(X509_cmp(res.leaf, x), 0);
	assert_int_equal(x509u_key_matches(res.leaf, res.key), 1);
	upload_result_free(&res);
	X509_free(x);
}

static void test_accept_chain_orders(void **state)
{
	static const char *const one[] = {"chain_i.pem", "chain_ir.pem", "chain_ri.pem"};
	static const char *const two[] = {"chain_12.pem", "chain_21.pem", "chain_21r.pem",
	                                  "chain_r12.pem"};
	struct upload_result res;
	X509 *int1 = cert("int.pem"), *int2 = cert("int2.pem");
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		struct up u = {.cert = "leaf.pem",
		               .chain = one[i],
		               .key = "leaf.key",
		               .hosts = {"a.example.com"}};
		if (run(&u, &res) != UPLOAD_OK)
			fail_msg("%s: %s", one[i], res.message);
		assert_int_equal(sk_X509_num(res.intermediates), 1);
		assert_int_equal(X509_cmp(sk_X509_value(res.intermediates, 0), int1), 0);
		upload_result_free(&res);
	}
	/* Two intermediates, in any order, with or without the root. */
	for (i = 0; i < sizeof(two) / sizeof(two[0]); i++) {
		struct up u = {.cert = "deep.pem",
		               .chain = two[i],
		               .key = "deep.key",
		               .hosts = {"b.example.com"}};
		if (run(&u, &res) != UPLOAD_OK)
			fail_msg("%s: %s", two[i], res.message);
		assert_int_equal(sk_X509_num(res.intermediates), 2);
		assert_int_equal(X509_cmp(sk_X509_value(res.intermediates, 0), int2), 0);
		assert_int_equal(X509_cmp(sk_X509_value(res.intermediates, 1), int1), 0);
		assert_string_equal(res.issuer_dn, "CN=Test Intermediate 2,O=Test");
		upload_result_free(&res);
	}
	X509_free(int1);
	X509_free(int2);
}

static void test_wildcard(void **state)
{
	struct up u = {.cert = "wild.pem",
	               .chain = "chain_i.pem",
	               .key = "wild.key",
	               .hosts = {"example.com", "x.y.example.com", "a.example.com", "*.example.com",
	                         "a.example.org"}};
	struct upload_result res;
	(void)state;

	assert_int_equal(run(&u, &res), UPLOAD_OK);
	assert_int_equal(res.wildcard, 1);
	assert_string_equal(res.serial, "FF");
	assert_int_equal(res.covered.n, 2);
	assert_string_equal(res.covered.name[0], "a.example.com");
	assert_string_equal(res.covered.name[1], "*.example.com");
	upload_result_free(&res);

	/* Neither the apex nor two labels deep. */
	u.hosts[2] = NULL;
	u.hosts[1] = NULL;
	refused(&u, UPLOAD_E_NO_HOSTNAME,
	        "the certificate covers *.example.com; none of them is configured");
	/* A configured wildcard needs the same wildcard, not a list of names. */
	{
		struct up v = {.cert = "leaf.pem",
		               .chain = "chain_i.pem",
		               .key = "leaf.key",
		               .hosts = {"*.example.com", "example.com"}};
		refused(&v, UPLOAD_E_NO_HOSTNAME,
		        "the certificate covers a.example.com, b.example.com; none of them is "
		        "configured");
	}
	{
		struct up v = {.cert = "iponly.pem",
		               .chain = "chain_i.pem",
		               .key = "iponly.key",
		               .hosts = {"ip.example.com"}};
		refused(&v, UPLOAD_E_NO_HOSTNAME, "holds no DNS name");
	}
}

static void test_name_covers(void **state)
{
	(void)state;
	assert_int_equal(upload_name_covers("a.example.com", "a.example.com"), 1);
	assert_int_equal(upload_name_covers("A.Example.COM", "a.example.com"), 1);
	assert_int_equal(upload_name_covers("*.example.com", "a.example.com"), 1);
	assert_int_equal(upload_name_covers("*.example.com", "example.com"), 0);
	assert_int_equal(upload_name_covers("*.example.com", "a.b.example.com"), 0);
	assert_int_equal(upload_name_covers("*.example.com", ".example.com"), 0);
	assert_int_equal(upload_name_covers("*.example.com", "*.example.com"), 1);
	assert_int_equal(upload_name_covers("a.example.com", "*.example.com"), 0);
	assert_int_equal(upload_name_covers("*.com", "example.com"), 0);
	assert_int_equal(upload_name_covers("*.example.com", "a.example.org"), 0);
	assert_int_equal(upload_name_covers("a*.example.com", "ab.example.com"), 0);
}

static void test_refuse_pem(void **state)
{
	struct up u = {.cert = "leaf.pem",
	               .chain = "chain_i.pem",
	               .key = "leaf.key",
	               .hosts = {"a.example.com"}};
	struct up v;
	(void)state;

	v = u;
	v.cert = NULL;
	v.cert_s = "";
	refused(&v, UPLOAD_E_CERT_PEM, "the certificate file holds no PEM certificate");
	v.cert_s = "this is my certificate\n";
	refused(&v, UPLOAD_E_CERT_PEM, "the certificate file holds no PEM certificate");
	v.cert_s = NULL;
	v.cert = "leaf.der";
	refused(&v, UPLOAD_E_CERT_PEM, "binary data");
	v.cert = "leaf.key";
	refused(&v, UPLOAD_E_CERT_PEM, "\"PRIVATE KEY\" where a certificate was expected");
	v.cert = "leaf_junk.pem";
	refused(&v, UPLOAD_E_CERT_PEM, "text after the last PEM block");

	v = u;
	v.chain = NULL;
	v.chain_s = "garbage\n";
	refused(&v, UPLOAD_E_CHAIN_PEM, "the chain file holds no PEM certificate");
	v.chain_s = NULL;
	v.chain = "leaf_junk.pem";
	refused(&v, UPLOAD_E_CHAIN_PEM, "the chain file is not valid PEM: line ");

	v = u;
	v.key = NULL;
	v.key_s = "";
	refused(&v, UPLOAD_E_KEY_PEM, "the key file holds no PEM private key");
	v.key_s = NULL;
	v.key = "leaf.pem";
	refused(&v, UPLOAD_E_KEY_PEM, "\"CERTIFICATE\" where a private key was expected");
	v.key = "twokeys.key";
	refused(&v, UPLOAD_E_KEY_PEM, "a second private key");
}

static void test_refuse_placement(void **state)
{
	struct up u = {.cert = "leaf.pem",
	               .chain = "chain_i.pem",
	               .key = "leaf.key",
	               .hosts = {"a.example.com"}};
	struct up v;
	(void)state;

	v = u;
	v.cert = "fullchain.pem"; /* leaf + intermediate in the cert file */
	refused(&v, UPLOAD_E_CERT_MULTIPLE,
	        "the certificate file holds 2 certificates (the first is CN=a.example.com, "
	        "the second CN=Test Intermediate,O=Test)");
	v = u;
	v.chain = "fullchain.pem"; /* the leaf again in the chain file */
	refused(&v, UPLOAD_E_LEAF_IN_CHAIN,
	        "the chain file holds the server certificate CN=a.example.com (certificate 1");
	v = u;
	v.cert = "int.pem"; /* swapped */
	v.chain = "leaf.pem";
	refused(&v, UPLOAD_E_LEAF_IN_CHAIN,
	        "the files are swapped: the certificate file holds the CA certificate "
	        "CN=Test Intermediate,O=Test and the chain file holds the server certificate "
	        "CN=a.example.com");
	v = u;
	v.chain = "chain_wi.pem"; /* another leaf before the intermediate */
	refused(&v, UPLOAD_E_LEAF_IN_CHAIN, "the chain file holds a server certificate");
	v = u;
	v.cert = "int.pem";
	v.chain = "root.pem";
	v.key = "int.key";
	refused(&v, UPLOAD_E_CERT_IS_CA, "holds the CA certificate CN=Test Intermediate,O=Test");
}

static void test_refuse_key(void **state)
{
	struct up u = {.cert = "leaf.pem",
	               .chain = "chain_i.pem",
	               .key = "enc.key",
	               .hosts = {"a.example.com"}};
	struct upload_result res;
	(void)state;

	assert_int_equal(run(&u, &res), UPLOAD_E_KEY_ENCRYPTED);
	assert_string_equal(res.message, "the private key is encrypted; upload it unencrypted");
	upload_result_free(&res);
	u.key = "enctrad.key";
	refused(&u, UPLOAD_E_KEY_ENCRYPTED, "the private key is encrypted; upload it unencrypted");
	u.key = "other.key";
	refused(&u, UPLOAD_E_KEY_MISMATCH, "the private key does not match the certificate");
	u.key = "int.key";
	refused(&u, UPLOAD_E_KEY_MISMATCH,
	        "it is the key of CN=Test Intermediate,O=Test in the chain file");
}

static void test_refuse_times(void **state)
{
	struct up u = {.cert = "expired.pem",
	               .chain = "chain_i.pem",
	               .key = "expired.key",
	               .hosts = {"a.example.com"}};
	struct upload_result res;
	X509 *x = cert("leaf.pem");
	time_t nb, na;
	(void)state;

	assert_int_equal(run(&u, &res), UPLOAD_E_EXPIRED);
	assert_string_equal(res.message, "the certificate expired on Aug  5 18:54:27 2023 GMT");
	upload_result_free(&res);
	u.cert = "future.pem";
	u.key = "future.key";
	refused(&u, UPLOAD_E_NOT_YET_VALID,
	        "the certificate is not valid before Jan  1 00:00:00 2099 GMT");

	/* The same certificate, with time moved. */
	assert_int_equal(x509u_not_before(x, &nb), 0);
	assert_int_equal(x509u_not_after(x, &na), 0);
	u.cert = "leaf.pem";
	u.key = "leaf.key";
	u.now = na;
	refused(&u, UPLOAD_E_EXPIRED, "the certificate expired on ");
	u.now = nb - 1;
	refused(&u, UPLOAD_E_NOT_YET_VALID, "the certificate is not valid before ");
	u.now = na - 1;
	assert_int_equal(run(&u, &res), UPLOAD_OK);
	upload_result_free(&res);
	X509_free(x);
}

static void test_refuse_self_signed(void **state)
{
	struct up u = {
	    .cert = "self.pem", .chain = NULL, .key = "self.key", .hosts = {"a.example.com"}};
	(void)state;

	refused(&u, UPLOAD_E_SELF_SIGNED, "the certificate CN=a.example.com is self-signed");
}

static void test_refuse_chain(void **state)
{
	struct up u = {
	    .cert = "leaf.pem", .chain = NULL, .key = "leaf.key", .hosts = {"a.example.com"}};
	X509_STORE *empty = X509_STORE_new();
	(void)state;

	refused(&u, UPLOAD_E_MISSING_ISSUER,
	        "missing intermediate: the certificate was issued by CN=Test Intermediate,O=Test, "
	        "which is neither in the chain file nor a trusted root");
	u.chain_s = "\n  \n"; /* a blank chain file is no chain */
	refused(&u, UPLOAD_E_MISSING_ISSUER, "missing intermediate");
	u.chain_s = NULL;
	u.chain = "root.pem";
	refused(&u, UPLOAD_E_MISSING_ISSUER,
	        "missing intermediate: the certificate was issued by CN=Test Intermediate,O=Test");

	u.cert = "deep.pem";
	u.key = "deep.key";
	u.chain = "chain_i.pem"; /* int2 missing */
	refused(&u, UPLOAD_E_MISSING_ISSUER,
	        "the certificate was issued by CN=Test Intermediate 2,O=Test, which is neither");
	u.chain = "int2.pem"; /* int missing */
	refused(&u, UPLOAD_E_MISSING_ISSUER,
	        "missing intermediate: the chain certificate CN=Test Intermediate 2,O=Test was "
	        "issued by CN=Test Intermediate,O=Test, which is neither in the chain file nor a "
	        "trusted root");

	/* A root that is not trusted. */
	assert_non_null(empty);
	u.cert = "leaf.pem";
	u.key = "leaf.key";
	u.chain = "chain_ir.pem";
	u.store = empty;
	refused(&u, UPLOAD_E_CHAIN_INVALID,
	        "the chain ends at the root CN=Test Root,O=Test, which is not a trusted root");
	X509_STORE_free(empty);
	u.store = NULL;

	/* An expired intermediate. */
	u.cert = "oldleaf.pem";
	u.key = "oldleaf.key";
	u.chain = "oldint.pem";
	refused(&u, UPLOAD_E_CHAIN_EXPIRED,
	        "the chain certificate O=Test,CN=Old Intermediate expired on Jan  1 00:00:00 "
	        "2024 GMT");

	/* Any other error: the OpenSSL reason, depth and subject. */
	u.cert = "client.pem";
	u.key = "client.key";
	u.chain = "chain_i.pem";
	refused(&u, UPLOAD_E_CHAIN_INVALID,
	        "the chain does not verify: unsuitable certificate purpose (certificate at "
	        "depth 0, CN=a.example.com)");
}

static void test_code_names(void **state)
{
	int c;
	(void)state;

	assert_string_equal(upload_code_name(UPLOAD_E_KEY_MISMATCH), "key-mismatch");
	assert_string_equal(upload_code_name(UPLOAD_E_MISSING_ISSUER), "missing-intermediate");
	for (c = UPLOAD_OK; c <= UPLOAD_E_INTERNAL; c++)
		assert_string_not_equal(upload_code_name((enum upload_code)c), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accept),
	    cmocka_unit_test(test_accept_chain_orders),
	    cmocka_unit_test(test_wildcard),
	    cmocka_unit_test(test_name_covers),
	    cmocka_unit_test(test_refuse_pem),
	    cmocka_unit_test(test_refuse_placement),
	    cmocka_unit_test(test_refuse_key),
	    cmocka_unit_test(test_refuse_times),
	    cmocka_unit_test(test_refuse_self_signed),
	    cmocka_unit_test(test_refuse_chain),
	    cmocka_unit_test(test_code_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
