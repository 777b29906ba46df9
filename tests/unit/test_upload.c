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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "upload.h"
#include "x509u.h"

#include "testpki.h"

static X509_STORE *trust;
static time_t now;

static int setup(void **state)
{
	X509 *root;

	(void)state;
	if (pki_make("/tmp/upload-test-XXXXXX", pki_leaves_script) < 0)
		return -1;
	trust = X509_STORE_new();
	root = pem_cert("root.pem");
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
	X509 *x = pem_cert("leaf.pem");
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
	X509 *int1 = pem_cert("int.pem"), *int2 = pem_cert("int2.pem");
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
	X509 *x = pem_cert("leaf.pem");
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
