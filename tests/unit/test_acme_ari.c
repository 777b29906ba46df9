/* Unit tests of certsync/acme's pure parts: the ARI CertID of RFC 9773 Appendix A, the
 * RenewalInfo object, Retry-After (seconds and the three HTTP-date forms), RFC 3339, Link
 * rel="alternate", the newOrder payload, the dns-01 TXT value, the CSR, and the account
 * and EAB key files. No network. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "jws.h"

/* RFC 9773 Appendix A. */
static const char rfc9773_cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt\n"
    "cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS\n"
    "BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu\n"
    "7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf\n"
    "qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B\n"
    "yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb\n"
    "+FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK\n"
    "-----END CERTIFICATE-----\n";

static X509 *load_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	return x;
}

static void test_certid_rfc9773(void **state)
{
	X509 *x = load_cert(rfc9773_cert);
	char id[ACME_CERTID_MAX], small[20];
	(void)state;

	assert_non_null(x);
	assert_int_equal(acme_ari_certid(x, id, sizeof(id)), 0);
	/* the serial 0x87654321 keeps its 0x00 sign byte: "AIdlQyE", not "h2VDIQ" */
	assert_string_equal(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	assert_int_equal(acme_ari_certid(x, small, sizeof(small)), -1);
	X509_free(x);
}

/* A self-signed certificate without AKI: no CertID. Serial 0x01 (no sign byte). */
static void test_certid_without_aki(void **state)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	char id[ACME_CERTID_MAX];
	(void)state;

	assert_true(k && x);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_int_equal(acme_ari_certid(x, id, sizeof(id)), -1);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_retry_after(void **state)
{
	const time_t date = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	static const char *const bad[] = {"",
	                                  "  ",
	                                  "abc",
	                                  "-5",
	                                  "12a",
	                                  "1.5",
	                                  "Sun, 06 Nov 1994 08:49:37 UTC",
	                                  "Sun, 06 Foo 1994 08:49:37 GMT",
	                                  "Sun, 30 Feb 1994 08:49:37 GMT",
	                                  "Sun, 06 Nov 1994 25:49:37 GMT",
	                                  "Sun, 06 Nov 1994 08:49:37 GMT trailing"};
	long s = -7;
	size_t i;
	(void)state;

	assert_int_equal(acme_retry_after_parse("120", 0, &s), 0);
	assert_int_equal(s, 120);
	assert_int_equal(acme_retry_after_parse(" 5\t", 0, &s), 0);
	assert_int_equal(s, 5);
	assert_int_equal(acme_retry_after_parse("0", 0, &s), 0);
	assert_int_equal(s, 0);
	/* absurd values saturate (the caller clamps to its own bound) */
	assert_int_equal(acme_retry_after_parse("99999999999999999999999", 0, &s), 0);
	assert_int_equal(s, 3155760000L);
	/* the three HTTP-date forms of RFC 9110 §5.6.7, relative to now */
	assert_int_equal(acme_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", date - 100, &s),
	                 0);
	assert_int_equal(s, 100);
	assert_int_equal(acme_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", date - 7, &s), 0);
	assert_int_equal(s, 7);
	assert_int_equal(acme_retry_after_parse("Sun Nov  6 08:49:37 1994", date - 1, &s), 0);
	assert_int_equal(s, 1);
	/* a date in the past: retry now */
	assert_int_equal(acme_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", date + 50, &s), 0);
	assert_int_equal(s, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = -7;
		assert_int_equal(acme_retry_after_parse(bad[i], date, &s), -1);
		assert_int_equal(s, -7);
	}
	assert_int_equal(acme_retry_after_parse(NULL, date, &s), -1);
}

static void test_rfc3339(void **state)
{
	time_t t;
	(void)state;

	assert_int_equal(acme_rfc3339_parse("2025-01-02T04:00:00Z", &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(acme_rfc3339_parse("2025-01-02t04:00:00.123456789z", &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(acme_rfc3339_parse("2025-01-02T06:30:00+02:30", &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(acme_rfc3339_parse("2025-01-01T23:00:00-05:00", &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(acme_rfc3339_parse("2025-01-02T04:00:00", &t), -1);
	assert_int_equal(acme_rfc3339_parse("2025-13-02T04:00:00Z", &t), -1);
	assert_int_equal(acme_rfc3339_parse("2025-01-02T04:00:00.Z", &t), -1);
	assert_int_equal(acme_rfc3339_parse("2025-01-02T04:00:00+0200", &t), -1);
	assert_int_equal(acme_rfc3339_parse("2025-01-02T04:00:00Zjunk", &t), -1);
}

static void test_renewal_info(void **state)
{
	static const char ok[] = "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\","
	                         "\"end\":\"2025-01-03T04:00:00Z\"},"
	                         "\"explanationURL\":\"https://acme.example.com/docs/ari\"}";
	static const char *const bad[] = {
	    "{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\",\"end\":\"2025-01-03T04:00:"
	    "00Z\"}}",
	    "{\"suggestedWindow\":{\"start\":\"2025-01-04T04:00:00Z\",\"end\":\"2025-01-03T04:00:"
	    "00Z\"}}",
	    "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\"}}",
	    "{\"suggestedWindow\":{\"start\":\"soon\",\"end\":\"2025-01-03T04:00:00Z\"}}",
	    "{}",
	    "not json",
	};
	struct acme_renewal_info ri;
	size_t i;
	(void)state;

	assert_int_equal(acme_renewal_info_parse(ok, strlen(ok), &ri), 0);
	assert_int_equal(ri.start, 1735790400);
	assert_int_equal(ri.end, 1735876800);
	assert_string_equal(ri.explanation_url, "https://acme.example.com/docs/ari");
	assert_int_equal(ri.retry_after, -1);
	acme_renewal_info_free(&ri);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(acme_renewal_info_parse(bad[i], strlen(bad[i]), &ri), -1);
		acme_renewal_info_free(&ri);
	}
}

static void test_link_alternates(void **state)
{
	char **v = NULL;
	size_t n = 0, i;
	(void)state;

	assert_int_equal(
	    acme_link_alternates("<https://ca.test/cert/1/alt/1>;rel=\"alternate\", "
	                         "<https://ca.test/dir>;rel=\"index\", "
	                         "<https://ca.test/cert/1/alt/2> ; title=\"a, b; c\" ; "
	                         "rel=alternate",
	                         &v, &n),
	    0);
	assert_int_equal(acme_link_alternates("<https://ca.test/x>; rel=\"up alternate\"", &v, &n),
	                 0);
	assert_int_equal(acme_link_alternates("garbage", &v, &n), 0);
	assert_int_equal(acme_link_alternates("<https://ca.test/unterminated", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "https://ca.test/cert/1/alt/1");
	assert_string_equal(v[1], "https://ca.test/cert/1/alt/2");
	assert_string_equal(v[2], "https://ca.test/x");
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void test_new_order_payload(void **state)
{
	const char *names[] = {"a.example.test", "*.example.test"};
	json_t *j, *ids;
	char *s;
	(void)state;

	s = acme_new_order_payload(names, 2, "tlsserver", "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	j = json_loads(s, 0, NULL);
	ids = json_object_get(j, "identifiers");
	assert_int_equal(json_array_size(ids), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ids, 1), "value")),
	                    "*.example.test");
	assert_string_equal(json_string_value(json_object_get(json_array_get(ids, 1), "type")),
	                    "dns");
	assert_string_equal(json_string_value(json_object_get(j, "profile")), "tlsserver");
	assert_string_equal(json_string_value(json_object_get(j, "replaces")),
	                    "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	json_decref(j);
	free(s);
	s = acme_new_order_payload(names, 1, NULL, NULL);
	assert_string_equal(s,
	                    "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"}]}");
	free(s);
	assert_null(acme_new_order_payload(names, 0, NULL, NULL));
}

static void test_dns01_value(void **state)
{
	char v[ACME_TXT_LEN];
	(void)state;

	/* computed independently (Python hashlib) for the RFC 7638 thumbprint */
	assert_int_equal(acme_dns01_value_of("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
	                                     "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", v),
	                 0);
	assert_string_equal(v, "ZTRx1Ckl1-tM05o5zaizTTA0yUy5AGereMgSNWC6Ll8");
}

static void test_csr(void **state)
{
	const char *names[] = {"a.example.test", "*.example.test"};
	static const enum cs_key_type types[] = {CS_KEY_EC_P256, CS_KEY_EC_P384, CS_KEY_RSA_2048};
	size_t t;
	(void)state;

	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		EVP_PKEY *k = acme_cert_key_new(types[t]);
		uint8_t *der = NULL;
		const unsigned char *p;
		size_t len = 0;
		X509_REQ *req;
		STACK_OF(X509_EXTENSION) * exts;
		GENERAL_NAMES *gens;
		int crit = -1;

		assert_non_null(k);
		assert_int_equal(acme_csr_der(k, names, 2, &der, &len), 0);
		p = der;
		req = d2i_X509_REQ(NULL, &p, (long)len);
		assert_non_null(req);
		assert_int_equal(X509_REQ_verify(req, k), 1);
		assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
		exts = X509_REQ_get_extensions(req);
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
		assert_non_null(gens);
		assert_int_equal(crit, 1);
		assert_int_equal(sk_GENERAL_NAME_num(gens), 2);
		assert_string_equal(
		    ASN1_STRING_get0_data(sk_GENERAL_NAME_value(gens, 1)->d.dNSName),
		    "*.example.test");
		GENERAL_NAMES_free(gens);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		X509_REQ_free(req);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
}

static void test_key_files(void **state)
{
	char dir[] = "/tmp/acme-test-XXXXXX", path[128], err[256], cmd[160];
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	uint8_t *key = NULL;
	size_t keylen = 0;
	bool created = false;
	struct stat st;
	FILE *f;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/account.key", dir);
	assert_int_equal(acme_account_key_load(path, &k1, &created, err, sizeof(err)), 0);
	assert_true(created);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(acme_account_key_load(path, &k2, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_int_equal(EVP_PKEY_eq(k1, k2), 1);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	k2 = NULL;

	/* a key that cannot sign ES256 is refused, without quoting the file */
	snprintf(path, sizeof(path), "%s/p384.key", dir);
	k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, k1, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(k1);
	assert_int_equal(acme_account_key_load(path, &k2, &created, err, sizeof(err)), -ACME_E_IO);
	assert_null(k2);
	assert_non_null(strstr(err, "P-256"));
	assert_null(strstr(err, "BEGIN"));

	/* EAB MAC key: base64url, padding and whitespace tolerated */
	snprintf(path, sizeof(path), "%s/eab.key", dir);
	f = fopen(path, "w");
	fputs("  AAEC-_8=\n", f);
	fclose(f);
	assert_int_equal(acme_eab_key_load(path, &key, &keylen, err, sizeof(err)), 0);
	assert_int_equal(keylen, 5);
	assert_memory_equal(key, "\x00\x01\x02\xfb\xff", 5);
	OPENSSL_clear_free(key, keylen);
	f = fopen(path, "w");
	fputs("not base64!\n", f);
	fclose(f);
	assert_int_equal(acme_eab_key_load(path, &key, &keylen, err, sizeof(err)), -ACME_E_IO);
	assert_null(strstr(err, "not base64!"));

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_client_refuses_http(void **state)
{
	struct acme_opts o = {.directory_url = "http://127.0.0.1:1/dir"};
	struct acme_client *c = (struct acme_client *)1;
	char err[256];
	(void)state;

	assert_int_equal(acme_client_new(&o, &c, err, sizeof(err)), -ACME_E_USAGE);
	assert_null(c);
	o.directory_url = "https://127.0.0.1:1/dir";
	o.server_ca_file = "/nonexistent/ca.pem";
	assert_int_equal(acme_client_new(&o, &c, err, sizeof(err)), -ACME_E_IO);
	assert_non_null(strstr(err, "server_ca_file"));
}

/* Nothing listens on port 1: a network error, reported with the URL, quickly. */
static void test_client_unreachable(void **state)
{
	struct acme_opts o = {.directory_url = "https://127.0.0.1:1/dir",
	                      .connect_timeout_ms = 2000,
	                      .timeout_ms = 3000};
	struct acme_client *c = NULL;
	char err[256];
	(void)state;

	assert_int_equal(acme_client_new(&o, &c, err, sizeof(err)), 0);
	assert_int_equal(acme_directory_fetch(c), -ACME_E_NET);
	assert_non_null(strstr(acme_errstr(c), "https://127.0.0.1:1/dir"));
	assert_null(acme_get0_directory(c));
	acme_client_free(c);
}

static void test_problem_short(void **state)
{
	struct acme_problem p = {0};
	(void)state;

	snprintf(p.type, sizeof(p.type), "urn:ietf:params:acme:error:badNonce");
	assert_string_equal(acme_problem_short(&p), "badNonce");
	snprintf(p.type, sizeof(p.type), "about:blank");
	assert_string_equal(acme_problem_short(&p), "about:blank");
	assert_string_equal(acme_status_name(ACME_ST_PROCESSING), "processing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_certid_rfc9773),
	    cmocka_unit_test(test_certid_without_aki),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_renewal_info),
	    cmocka_unit_test(test_link_alternates),
	    cmocka_unit_test(test_new_order_payload),
	    cmocka_unit_test(test_dns01_value),
	    cmocka_unit_test(test_csr),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_client_refuses_http),
	    cmocka_unit_test(test_client_unreachable),
	    cmocka_unit_test(test_problem_short),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
