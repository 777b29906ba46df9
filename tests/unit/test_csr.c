/* Unit tests of certsync/csr: csr_main called as `certsync csr` would call it, checked
 * with the openssl command (signature, CN, SANs), file modes and the refusals. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "csr.h"
#include "x509u.h"

static char dir[64];
static char out[8192]; /* csr_main's stdout of the last run */

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/csr-test-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, name);
	return buf;
}

/* csr_main on a NULL-terminated argument list, stdout captured into out. */
static int csr(const char *arg0, ...)
{
	char *argv[32], tmpl[128];
	va_list ap;
	int argc = 0, fd, saved, r;
	ssize_t n;

	argv[argc++] = (char *)arg0;
	va_start(ap, arg0);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;

	snprintf(tmpl, sizeof(tmpl), "%s/stdout-XXXXXX", dir);
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(1);
	assert_true(saved >= 0);
	assert_true(dup2(fd, 1) >= 0);
	r = csr_main(argc, argv);
	fflush(stdout);
	assert_true(dup2(saved, 1) >= 0);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(tmpl);
	return r;
}

/* The output of a shell command; its exit status in *status. */
static char *sh(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sh(int *status, const char *fmt, ...)
{
	char cmd[1024], *buf = malloc(65536);
	size_t n = 0, r;
	va_list ap;
	FILE *p;

	assert_non_null(buf);
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((r = fread(buf + n, 1, 65535 - n, p)) > 0)
		n += r;
	buf[n] = '\0';
	*status = pclose(p);
	return buf;
}

static char *slurp(const char *file)
{
	int st;
	char *s = sh(&st, "cat '%s'", file);

	assert_int_equal(st, 0);
	return s;
}

static int exists(const char *file)
{
	struct stat st;
	return stat(file, &st) == 0;
}

static void check_csr(const char *csrf, const char *keyf, const char *cn, const char *san_text,
                      const char *alg, int bits)
{
	struct stat st;
	char *text, *kp, err[256];
	int status;
	EVP_PKEY *key = NULL;
	X509_REQ *req;
	BIO *bio;

	/* The signature verifies, the subject and SANs are right. */
	text = sh(&status, "openssl req -in '%s' -noout -verify 2>&1", csrf);
	assert_int_equal(status, 0);
	assert_non_null(strstr(text, "verify OK"));
	free(text);
	text = sh(&status, "openssl req -in '%s' -noout -text", csrf);
	assert_int_equal(status, 0);
	assert_non_null(strstr(text, cn));
	assert_non_null(strstr(text, san_text));
	assert_non_null(strstr(text, "Signature Algorithm: "));
	assert_non_null(strstr(text, alg));
	free(text);

	/* The key: 0600, loads, is the CSR's, of the right size. */
	assert_int_equal(stat(keyf, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	kp = slurp(keyf);
	assert_non_null(strstr(kp, "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(x509u_load_key_pem(kp, strlen(kp), &key, err, sizeof(err)), 0);
	OPENSSL_cleanse(kp, strlen(kp));
	free(kp);
	bio = BIO_new_file(csrf, "r");
	assert_non_null(bio);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	assert_non_null(req);
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
	assert_int_equal(EVP_PKEY_get_bits(key), bits);
	X509_REQ_free(req);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

static void test_default_ec_p256(void **state)
{
	char k[128], c[128];
	(void)state;

	path("p256.key", k, sizeof(k));
	path("p256.csr", c, sizeof(c));
	assert_int_equal(csr("csr", "--host", "a.example.com", "--host", "*.example.com",
	                     "--key-out", k, "--csr-out", c, NULL),
	                 0);
	check_csr(c, k, "Subject: CN = a.example.com", "DNS:a.example.com, DNS:*.example.com",
	          "ecdsa-with-SHA256", 256);
	/* The summary names the files, the type and the names; never the key. */
	assert_non_null(strstr(out, k));
	assert_non_null(strstr(out, c));
	assert_non_null(strstr(out, "ec-p256"));
	assert_non_null(strstr(out, "a.example.com, *.example.com"));
	assert_null(strstr(out, "PRIVATE KEY"));
}

static void test_key_types(void **state)
{
	static const struct {
		const char *type, *alg;
		int bits;
	} t[] = {
	    {"ec-p256", "ecdsa-with-SHA256", 256},
	    {"ec-p384", "ecdsa-with-SHA256", 384},
	    {"rsa-2048", "sha256WithRSAEncryption", 2048},
	    {"rsa-3072", "sha256WithRSAEncryption", 3072},
	};
	char k[128], c[128], name[64];
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(name, sizeof(name), "%s.key", t[i].type);
		path(name, k, sizeof(k));
		snprintf(name, sizeof(name), "%s.csr", t[i].type);
		path(name, c, sizeof(c));
		assert_int_equal(csr("csr", "--key-type", t[i].type, "--host", "Shop.Example.COM",
		                     "--key-out", k, "--csr-out", c, NULL),
		                 0);
		assert_non_null(strstr(out, t[i].type));
		/* Hosts are written lowercase. */
		check_csr(c, k, "Subject: CN = shop.example.com", "DNS:shop.example.com", t[i].alg,
		          t[i].bits);
	}
}

static void test_no_overwrite(void **state)
{
	char k[128], c[128], k2[128], c2[128], *before, *after;
	(void)state;

	path("once.key", k, sizeof(k));
	path("once.csr", c, sizeof(c));
	path("fresh.key", k2, sizeof(k2));
	path("fresh.csr", c2, sizeof(c2));
	assert_int_equal(
	    csr("csr", "--host", "a.example.com", "--key-out", k, "--csr-out", c, NULL), 0);
	before = slurp(k);

	/* Both exist. */
	assert_int_equal(
	    csr("csr", "--host", "b.example.com", "--key-out", k, "--csr-out", c, NULL), 1);
	after = slurp(k);
	assert_string_equal(before, after);
	free(after);
	/* Only the CSR exists: no key is left behind either. */
	assert_int_equal(
	    csr("csr", "--host", "b.example.com", "--key-out", k2, "--csr-out", c, NULL), 1);
	assert_false(exists(k2));
	/* Only the key exists. */
	assert_int_equal(
	    csr("csr", "--host", "b.example.com", "--key-out", k, "--csr-out", c2, NULL), 1);
	assert_false(exists(c2));
	after = slurp(k);
	assert_string_equal(before, after);
	OPENSSL_cleanse(before, strlen(before));
	OPENSSL_cleanse(after, strlen(after));
	free(before);
	free(after);
}

static void test_refuse_overwrite_message(void **state)
{
	char k[128], c[128], cmd[512], *text;
	int st;
	(void)state;

	/* Run in a child to capture stderr: the refusal names the file and says why. */
	path("msg.key", k, sizeof(k));
	path("msg.csr", c, sizeof(c));
	assert_int_equal(
	    csr("csr", "--host", "a.example.com", "--key-out", k, "--csr-out", c, NULL), 0);
	snprintf(cmd, sizeof(cmd), "%s/stderr", dir);
	{
		int fd = open(cmd, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(2);
		assert_true(fd >= 0 && saved >= 0);
		assert_true(dup2(fd, 2) >= 0);
		st = csr("csr", "--host", "a.example.com", "--key-out", k, "--csr-out", c, NULL);
		assert_true(dup2(saved, 2) >= 0);
		close(saved);
		close(fd);
	}
	assert_int_equal(st, 1);
	text = slurp(cmd);
	assert_non_null(strstr(text, "refusing to overwrite"));
	assert_non_null(strstr(text, k));
	free(text);
}

static void test_usage(void **state)
{
	char k[128], c[128];
	(void)state;

	path("u.key", k, sizeof(k));
	path("u.csr", c, sizeof(c));
	assert_int_equal(csr("csr", NULL), 2);
	assert_int_equal(csr("csr", "--host", "a.example.com", "--csr-out", c, NULL), 2);
	assert_int_equal(csr("csr", "--host", "a.example.com", "--key-out", k, NULL), 2);
	assert_int_equal(csr("csr", "--key-out", k, "--csr-out", c, NULL), 2);
	assert_int_equal(csr("csr", "--host", "a.example.com", "--key-type", "dsa-1024",
	                     "--key-out", k, "--csr-out", c, NULL),
	                 2);
	assert_int_equal(
	    csr("csr", "--host", "a.example.com", "--bogus", "--key-out", k, "--csr-out", c, NULL),
	    2);
	assert_int_equal(
	    csr("csr", "--host", "a.example.com", "--key-out", k, "--csr-out", c, "extra", NULL),
	    2);
	assert_int_equal(csr("csr", "--host", "a.example.com", "--host", "A.example.com",
	                     "--key-out", k, "--csr-out", c, NULL),
	                 2);
	assert_int_equal(
	    csr("csr", "--host", "a.example.com", "--key-out", k, "--csr-out", k, NULL), 2);
	assert_int_equal(
	    csr("csr", "--host", "a.example.com", "--key-out", k, "--csr-out", c, "--host", NULL),
	    2);
	assert_false(exists(k));
	assert_false(exists(c));
}

static void test_bad_hosts(void **state)
{
	static const char *const bad[] = {
	    "example",
	    "a..example.com",
	    "-a.example.com",
	    "a-.example.com",
	    "a.*.example.com",
	    "*a.example.com",
	    "*.com",
	    "a.example.com.",
	    "a_b.example.com",
	    "caf\xc3\xa9.example.com",
	    "",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com",
	};
	char k[128], c[128];
	size_t i;
	(void)state;

	path("h.key", k, sizeof(k));
	path("h.csr", c, sizeof(c));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (csr("csr", "--host", bad[i], "--key-out", k, "--csr-out", c, NULL) != 2)
			fail_msg("host \"%s\" accepted", bad[i]);
	}
	assert_false(exists(k));
	assert_false(exists(c));
}

static void test_long_first_host(void **state)
{
	/* 66 characters: too long for a CN, so the subject is empty and the SAN critical. */
	static const char host[] =
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com";
	char k[128], c[128], *text;
	int st;
	(void)state;

	path("long.key", k, sizeof(k));
	path("long.csr", c, sizeof(c));
	assert_true(strlen(host) > 64);
	assert_int_equal(csr("csr", "--host", host, "--host", "b.example.com", "--key-out", k,
	                     "--csr-out", c, NULL),
	                 0);
	text = sh(&st, "openssl req -in '%s' -noout -verify -text 2>&1", c);
	assert_int_equal(st, 0);
	assert_non_null(strstr(text, "X509v3 Subject Alternative Name: critical"));
	assert_non_null(strstr(text, "DNS:b.example.com"));
	assert_null(strstr(text, "CN ="));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_ec_p256), cmocka_unit_test(test_key_types),
	    cmocka_unit_test(test_no_overwrite),    cmocka_unit_test(test_refuse_overwrite_message),
	    cmocka_unit_test(test_usage),           cmocka_unit_test(test_bad_hosts),
	    cmocka_unit_test(test_long_first_host),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
