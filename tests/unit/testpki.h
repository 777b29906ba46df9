/* Scaffolding shared by the unit tests that run against a PKI made at run time by the
 * openssl command: a fresh directory per test program, the script that fills it, the files
 * read back, and the directory removed at the end. Each test keeps its own script when its
 * PKI differs (test_headers, test_eval); test_upload and test_x509u share pki_leaves_script.
 *
 * Everything here is static: each test program is one translation unit. Functions are
 * `static inline` and data `unused` so that a test not calling all of them still builds
 * under -Wall -Wextra -Werror. */
#ifndef TESTPKI_H
#define TESTPKI_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/x509.h>

#include "x509u.h"

/* The PKI directory of this test program, made by pki_make. */
__attribute__((unused)) static char dir[64];

/* The PKI of test_upload and test_x509u. Runs in a fresh directory ($1): root,
 * intermediates, leaves of every kind, keys, chains in every order. */
__attribute__((unused)) static const char pki_leaves_script[] =
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

/* Runs `sh -c SCRIPT sh ARG`: 0 when it exits with status 0. */
static inline int run_script(const char *script, const char *arg)
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

/* Makes dir from the mkdtemp template (a name per test keeps leftovers telling) and runs
 * script in it. */
static inline int pki_make(const char *tmpl, const char *script)
{
	snprintf(dir, sizeof(dir), "%s", tmpl);
	if (!mkdtemp(dir))
		return -1;
	return run_script(script, dir);
}

/* A cmocka group teardown: removes dir. */
static inline int pki_teardown(void **state)
{
	(void)state;
	return run_script("rm -rf \"$1\"", dir);
}

/* The bytes of a file of the PKI directory, NUL-terminated; the caller frees. */
static inline char *slurp(const char *name, size_t *len)
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
static inline X509 *pem_cert(const char *name)
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

#endif
