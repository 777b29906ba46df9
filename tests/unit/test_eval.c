/* Unit tests of agent/eval against a PKI made at run time by the openssl command: root,
 * three intermediate levels, leaves of every kind, CRLs. The depth matrix, resumption,
 * every mode against every certificate case, CRL coverage, the caps, and the one function
 * that turns errors into a verdict. */
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

#include <pthread.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "eval.h"

#include "testpki.h"

#define REQ  EDGETLS__MODE__MODE_REQUIRED
#define OPT  EDGETLS__MODE__MODE_OPTIONAL
#define NOCA EDGETLS__MODE__MODE_OPTIONAL_NO_CA
#define PERM EDGETLS__MODE__MODE_PERMISSIVE

/* Runs in a fresh directory ($1). i1 is under root, i2 under i1, i3 under i2; leaves under
 * i3 unless named otherwise. Dates are explicit so that days of month below 10 appear. */
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
    "crlnumber = crlnumber\n"
    "default_md = sha256\n"
    "default_crl_days = 30\n"
    "policy = pol\n"
    "unique_subject = no\n"
    "email_in_dn = no\n"
    "[pol]\n"
    "commonName = supplied\n"
    "organizationName = optional\n"
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
    "[server]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "[noeku]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "[self]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectKeyIdentifier = hash\n"
    "[crlext]\n"
    "authorityKeyIdentifier = keyid:always\n"
    "X\n"
    "touch index.txt\n"
    "echo 01 > crlnumber\n"
    "key() { [ -f \"$1\" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
    "-out \"$1\" 2>/dev/null; }\n"
    "# mk NAME KEY SUBJ ISSUER EXT START END SERIAL\n"
    "mk() { key \"$2.key\"\n"
    "  openssl req -new -config ext.cnf -key \"$2.key\" -subj \"$3\" -utf8 -out \"$1.csr\"\n"
    "  echo \"$8\" > serial\n"
    "  openssl ca -batch -config ext.cnf -cert \"$4.pem\" -keyfile \"$4.key\" -in \"$1.csr\" "
    "-out \"$1.pem\" \\\n"
    "    -startdate \"$6\" -enddate \"$7\" -extensions \"$5\" -notext -utf8 2>/dev/null\n"
    "  openssl x509 -in \"$1.pem\" -outform der -out \"$1.der\"; }\n"
    "# selfsigned NAME SUBJ EXT SERIAL\n"
    "selfsigned() { key \"$1.key\"\n"
    "  openssl req -new -x509 -config ext.cnf -key \"$1.key\" -subj \"$2\" -utf8 -days 3650 "
    "-set_serial \"$4\" -extensions \"$3\" -out \"$1.pem\"\n"
    "  openssl x509 -in \"$1.pem\" -outform der -out \"$1.der\"; }\n"
    "CA_S=20240102000000Z; CA_E=20400101000000Z\n"
    "selfsigned root '/O=Test/CN=Test Root' v3ca 1\n"
    "mk i1 i1 '/O=Test/CN=Test I1' root v3ca $CA_S $CA_E 11\n"
    "mk i2 i2 '/O=Test/CN=Test I2' i1 v3ca $CA_S $CA_E 12\n"
    "mk i3 i3 '/O=Test, Inc./CN=Test \"I3\"' i2 v3ca $CA_S $CA_E 13\n"
    "# the same key and name as i2, expired: an anchor that has expired\n"
    "mk i2exp i2 '/O=Test/CN=Test I2' i1 v3ca 20200101000000Z 20230101000000Z 14\n"
    "mk leaf leaf '/C=CH/L=Z\303\274rich/O=Foo, \"Bar\" Inc./CN=Zo\303\253 Client' i3 client "
    "20240105093005Z 20990107235959Z 80A1\n"
    "mk expired expired '/CN=Expired Client' i3 client 20200101000000Z 20230805185427Z 0100\n"
    "mk future future '/CN=Future Client' i3 client 20990101000000Z 20991231235959Z 0101\n"
    "mk server server '/CN=Server Only' i3 server $CA_S $CA_E 00FF\n"
    "mk noeku noeku '/CN=No EKU' i3 noeku $CA_S $CA_E 0102\n"
    "mk revoked revoked '/CN=Revoked Client' i3 client $CA_S $CA_E 0103\n"
    "selfsigned evil '/O=Test/CN=Evil Root' v3ca 666\n"
    "mk evilleaf evilleaf '/CN=Evil Client' evil client $CA_S $CA_E 0104\n"
    "mk evilexp evilexp '/CN=Evil Expired' evil client 20200101000000Z 20230101000000Z 0105\n"
    "selfsigned self '/CN=Self Client' self 0106\n"
    "# i3b: a second CA under i2, revoked by i2's CRL, with a leaf of its own\n"
    "mk i3b i3b '/O=Test/CN=Test I3b' i2 v3ca $CA_S $CA_E 15\n"
    "mk leafb leafb '/CN=Client B' i3b client $CA_S $CA_E 0107\n"
    "openssl ca -batch -config ext.cnf -cert i3.pem -keyfile i3.key -revoke revoked.pem "
    "2>/dev/null\n"
    "openssl ca -batch -config ext.cnf -cert i2.pem -keyfile i2.key -revoke i3b.pem "
    "2>/dev/null\n"
    "crl() { n=$1; shift; openssl ca -batch -config ext.cnf -cert \"$n.pem\" -keyfile "
    "\"$n.key\" -gencrl -crlexts crlext \"$@\" 2>/dev/null; }\n"
    "crl i3 -out i3.crl.pem\n"
    "crl i2 -out i2.crl.pem\n"
    "crl i3 -crl_lastupdate 20230101000000Z -crl_nextupdate 20230201000000Z -out "
    "i3stale.crl.pem\n"
    "for c in i3 i2 i3stale; do openssl crl -in $c.crl.pem -outform der -out $c.crl; done\n"
    "for c in root evil self; do openssl x509 -in $c.pem -outform der -out $c.der; done\n";

static time_t now_t;

static int pki_setup(void **state)
{
	(void)state;
	if (pki_make("/tmp/eval-test-XXXXXX", pki_script) < 0)
		return -1;
	/* after the PKI: the certificates made "now" must be valid */
	now_t = time(NULL);
	return 0;
}

/* "name" is "name.der"; ".crl" names are taken as they are. */
static ProtobufCBinaryData der(const char *name)
{
	ProtobufCBinaryData d;
	char file[64];

	snprintf(file, sizeof(file), "%s%s", name, strchr(name, '.') ? "" : ".der");
	d.data = (uint8_t *)slurp(file, &d.len);
	assert_true(d.len > 0);
	return d;
}

static X509 *cert(const char *name)
{
	ProtobufCBinaryData d = der(name);
	const unsigned char *p = d.data;
	X509 *x = d2i_X509(NULL, &p, (long)d.len);

	assert_non_null(x);
	free(d.data);
	return x;
}

/* A trust from comma-separated anchor and CRL names ("" for none). */
static struct eval_trust *trust(const char *anchors, const char *crls)
{
	ProtobufCBinaryData a[8], c[8];
	size_t na = 0, nc = 0, i;
	struct eval_trust *t = NULL;
	char buf[256], err[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", anchors);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		a[na++] = der(tok);
	snprintf(buf, sizeof(buf), "%s", crls);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		c[nc++] = der(tok);
	assert_int_equal(eval_trust_new(a, na, c, nc, &t, err, sizeof(err)), 0);
	assert_non_null(t);
	for (i = 0; i < na; i++)
		free(a[i].data);
	for (i = 0; i < nc; i++)
		free(c[i].data);
	return t;
}

/* Concatenated DER of comma-separated names, in that order. */
static ProtobufCBinaryData chain(const char *names)
{
	ProtobufCBinaryData out = {0, NULL};
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", names);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		ProtobufCBinaryData d = der(tok);

		out.data = realloc(out.data, out.len + d.len);
		assert_non_null(out.data);
		memcpy(out.data + out.len, d.data, d.len);
		out.len += d.len;
		free(d.data);
	}
	return out;
}

/* One evaluation: class, reason (NULL = none expected) and the path facts kept in res. */
static void run(const struct eval_trust *t, Edgetls__Mode mode, unsigned depth, const char *leaf,
                const char *chain_names, struct eval_result *res)
{
	ProtobufCBinaryData l = der(leaf), c = chain(chain_names);

	assert_int_equal(eval_run(t, mode, depth, l.data, l.len, c.data, c.len, NULL, now_t, res),
	                 0);
	free(l.data);
	free(c.data);
}

static void expect(const struct eval_trust *t, Edgetls__Mode mode, unsigned depth, const char *leaf,
                   const char *chain_names, enum eval_class cls, const char *reason)
{
	struct eval_result res;

	run(t, mode, depth, leaf, chain_names, &res);
	if (res.cls != cls || (reason == NULL) != (res.reason == NULL) ||
	    (reason && strcmp(reason, res.reason) != 0)) {
		size_t i;

		print_error("mode %d depth %u leaf %s chain [%s]: got %s %s, want %s %s\n", mode,
		            depth, leaf, chain_names, eval_class_name(res.cls),
		            res.reason ? res.reason : "-", eval_class_name(cls),
		            reason ? reason : "-");
		for (i = 0; i < res.nerr; i++)
			print_error("  error %d (%s) at depth %d\n", res.err[i].code,
			            eval_error_string(res.err[i].code), res.err[i].depth);
		eval_result_clear(&res);
		fail();
	}
	assert_non_null(res.leaf);
	eval_result_clear(&res);
}

/* ---- eval_classify ------------------------------------------------------------------- */

static const Edgetls__Mode modes[] = {REQ, OPT, NOCA, PERM};

static void test_classify_empty(void **state)
{
	const char *reason = "x";
	size_t m;
	(void)state;

	assert_int_equal(eval_classify(REQ, NULL, 0, &reason), EVAL_SUCCESS);
	assert_null(reason);
	for (m = 1; m < 4; m++) {
		reason = "x";
		assert_int_equal(eval_classify(modes[m], NULL, 0, &reason), EVAL_LENIENT);
		assert_null(reason);
	}
	/* disabled is never evaluated: asking is a failure, not a pass */
	assert_int_equal(eval_classify(EDGETLS__MODE__MODE_DISABLED, NULL, 0, &reason),
	                 EVAL_FAILED);
	assert_string_equal(reason, "internal");
	assert_int_equal(eval_classify((Edgetls__Mode)77, NULL, 0, &reason), EVAL_FAILED);
}

/* With one error, whatever it is, only optional-no-ca with a trust error is not FAILED. */
static void test_classify_single(void **state)
{
	static const int own[] = {EVAL_ERR_MALFORMED,
	                          EVAL_ERR_TOO_MANY,
	                          EVAL_ERR_OVERFLOW,
	                          EVAL_ERR_INTERNAL,
	                          -99,
	                          9999,
	                          95,
	                          200};
	int code, trust = 0;
	size_t m, k;
	(void)state;

	for (code = -10; code < 300; code++) {
		struct eval_error e = {code, 0};

		for (m = 0; m < 4; m++) {
			const char *reason = NULL;
			enum eval_class c = eval_classify(modes[m], &e, 1, &reason);

			assert_non_null(reason);
			if (modes[m] == NOCA && eval_is_trust_error(code))
				assert_int_equal(c, EVAL_LENIENT);
			else
				assert_int_equal(c, EVAL_FAILED);
		}
		trust += eval_is_trust_error(code);
	}
	/* exactly the six trust-class codes of DESIGN §2.3 */
	assert_int_equal(trust, 6);
	assert_true(eval_is_trust_error(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT));
	assert_true(eval_is_trust_error(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN));
	assert_true(eval_is_trust_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT));
	assert_true(eval_is_trust_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
	assert_true(eval_is_trust_error(X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE));
	assert_true(eval_is_trust_error(X509_V_ERR_CERT_UNTRUSTED));
	assert_false(eval_is_trust_error(X509_V_ERR_CERT_CHAIN_TOO_LONG));
	assert_false(eval_is_trust_error(X509_V_ERR_CERT_HAS_EXPIRED));
	/* unknown codes, ours and OpenSSL's future ones, are malformed and never pass */
	for (k = 0; k < sizeof(own) / sizeof(own[0]); k++) {
		struct eval_error e = {own[k], -1};
		const char *reason = NULL;

		for (m = 0; m < 4; m++)
			assert_int_equal(eval_classify(modes[m], &e, 1, &reason), EVAL_FAILED);
		if (own[k] == EVAL_ERR_INTERNAL)
			assert_string_equal(reason, "internal");
		else
			assert_string_equal(reason, "malformed");
	}
	/* a trust error among 15 that hides one non-trust error at the end */
	{
		struct eval_error e[EVAL_MAX_ERRORS];
		const char *reason = NULL;

		for (k = 0; k < EVAL_MAX_ERRORS - 1; k++)
			e[k] = (struct eval_error){X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, (int)k};
		e[k] = (struct eval_error){X509_V_ERR_CERT_NOT_YET_VALID, 3};
		assert_int_equal(eval_classify(NOCA, e, EVAL_MAX_ERRORS, &reason), EVAL_FAILED);
		assert_string_equal(reason, "not-yet-valid");
		assert_int_equal(eval_classify(NOCA, e, EVAL_MAX_ERRORS - 1, &reason),
		                 EVAL_LENIENT);
		assert_string_equal(reason, "untrusted");
	}
}

static void expect_class(Edgetls__Mode mode, const int *codes, size_t n, enum eval_class cls,
                         const char *reason)
{
	struct eval_error e[8];
	const char *got = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		e[i] = (struct eval_error){codes[i], (int)i};
	assert_int_equal(eval_classify(mode, e, n, &got), cls);
	assert_non_null(got);
	assert_string_equal(got, reason);
}

static void test_classify_priority(void **state)
{
	static const int ue[] = {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
	                         X509_V_ERR_CERT_HAS_EXPIRED};
	static const int cu[] = {X509_V_ERR_CERT_CHAIN_TOO_LONG, X509_V_ERR_CERT_UNTRUSTED};
	static const int rc[] = {X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CERT_REVOKED};
	static const int ms[] = {X509_V_ERR_CERT_SIGNATURE_FAILURE, EVAL_ERR_MALFORMED};
	static const int se[] = {X509_V_ERR_INVALID_PURPOSE, X509_V_ERR_CERT_SIGNATURE_FAILURE,
	                         X509_V_ERR_CERT_NOT_YET_VALID};
	static const int ss[] = {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
	                         X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT};
	static const int su[] = {X509_V_ERR_CERT_UNTRUSTED, X509_V_ERR_CRL_SIGNATURE_FAILURE};
	static const int pn[] = {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_INVALID_PURPOSE,
	                         X509_V_ERR_CERT_NOT_YET_VALID};
	(void)state;

	expect_class(REQ, ue, 2, EVAL_FAILED, "expired");
	expect_class(NOCA, ue, 2, EVAL_FAILED, "expired");
	expect_class(PERM, cu, 2, EVAL_FAILED, "untrusted");
	expect_class(OPT, rc, 2, EVAL_FAILED, "revoked");
	expect_class(REQ, ms, 2, EVAL_FAILED, "malformed");
	expect_class(REQ, se, 3, EVAL_FAILED, "bad-signature");
	expect_class(REQ, ss, 2, EVAL_FAILED, "self-signed-not-pinned");
	expect_class(NOCA, ss, 2, EVAL_LENIENT, "self-signed-not-pinned");
	expect_class(REQ, su, 2, EVAL_FAILED, "untrusted");
	/* optional-no-ca names what it did not tolerate, not the tolerated trust error */
	expect_class(NOCA, su, 2, EVAL_FAILED, "crl-invalid");
	expect_class(NOCA, pn, 3, EVAL_FAILED, "not-yet-valid");
}

static void test_reason_table(void **state)
{
	static const char *const want[] = {
	    "internal",  "malformed",      "bad-signature", "revoked",
	    "expired",   "not-yet-valid",  "bad-purpose",   "self-signed-not-pinned",
	    "untrusted", "chain-too-long", "crl-invalid"};
	size_t i;
	(void)state;

	assert_null(eval_reason_token(EVAL_R_NONE));
	assert_null(eval_reason_token(EVAL_R_COUNT));
	assert_int_equal(EVAL_R_COUNT, 1 + sizeof(want) / sizeof(want[0]));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(eval_reason_token((enum eval_reason)(i + 1)), want[i]);
	assert_int_equal(eval_reason_of(X509_V_ERR_CERT_HAS_EXPIRED), EVAL_R_EXPIRED);
	assert_int_equal(eval_reason_of(X509_V_ERR_CERT_REVOKED), EVAL_R_REVOKED);
	assert_int_equal(eval_reason_of(X509_V_ERR_INVALID_CA), EVAL_R_BAD_PURPOSE);
	assert_int_equal(eval_reason_of(X509_V_ERR_UNABLE_TO_GET_CRL), EVAL_R_CRL_INVALID);
	assert_int_equal(eval_reason_of(X509_V_ERR_MISSING_AUTHORITY_KEY_IDENTIFIER),
	                 EVAL_R_MALFORMED);
	assert_string_equal(eval_class_name(EVAL_LENIENT), "LENIENT");
	assert_non_null(strstr(eval_error_string(EVAL_ERR_MALFORMED), "DER"));
	assert_non_null(eval_error_string(X509_V_ERR_CERT_HAS_EXPIRED));
}

/* ---- the depth matrix ---------------------------------------------------------------- */

static const char *const ladder[] = {"i3", "i2", "i1", "root"}; /* upwards from the leaf */

/* Every ordering of pool[k..n): calls fn with each comma-joined list. */
static void permute(const char **pool, size_t n, size_t k, void (*fn)(const char *names, void *arg),
                    void *arg)
{
	size_t i;

	if (k == n) {
		char buf[128] = "";
		size_t j;

		for (j = 0; j < n; j++) {
			if (j)
				strncat(buf, ",", sizeof(buf) - strlen(buf) - 1);
			strncat(buf, pool[j], sizeof(buf) - strlen(buf) - 1);
		}
		fn(buf, arg);
		return;
	}
	for (i = k; i < n; i++) {
		const char *tmp = pool[k];

		pool[k] = pool[i];
		pool[i] = tmp;
		permute(pool, n, k + 1, fn, arg);
		pool[i] = pool[k];
		pool[k] = tmp;
	}
}

struct matrix_case {
	struct eval_trust *t;
	unsigned depth;
	enum eval_class cls;
	const char *reason;
	unsigned runs;
};

static void matrix_one(const char *names, void *arg)
{
	struct matrix_case *mc = arg;

	expect(mc->t, REQ, mc->depth, "leaf", names, mc->cls, mc->reason);
	mc->runs++;
}

static void test_depth_matrix(void **state)
{
	unsigned anchor, depth, mask, runs = 0;
	(void)state;

	for (anchor = 0; anchor < 4; anchor++) {
		struct eval_trust *t = trust(ladder[anchor], "");

		for (mask = 0; mask < 16; mask++) {
			const char *pool[4];
			size_t n = 0, i;
			/* what reaching the anchor needs: every CA below it */
			unsigned need = (1u << anchor) - 1;

			for (i = 0; i < 4; i++)
				if (mask & (1u << i))
					pool[n++] = ladder[i];
			for (depth = 0; depth <= 5; depth++) {
				struct matrix_case mc = {t, depth, EVAL_FAILED, NULL, 0};
				/* CA certificates up to and including the anchor */
				unsigned cas = anchor + 1;

				if ((mask & need) != need)
					mc.reason = "untrusted"; /* whatever the depth */
				else if (cas > depth)
					mc.reason = "chain-too-long";
				else
					mc.cls = EVAL_SUCCESS;
				permute(pool, n, 0, matrix_one, &mc);
				runs += mc.runs;
			}
		}
		eval_trust_free(t);
	}
	assert_int_equal(runs, 4 * 6 * 65);
}

/* DESIGN §2.2's example, and anchors at several levels: the first one reached counts. */
static void test_depth_examples(void **state)
{
	struct eval_trust *t = trust("i2", "");
	struct eval_trust *t2 = trust("root,i2", "");
	struct eval_trust *none = trust("", "");
	struct eval_result res;
	(void)state;

	expect(t, REQ, 2, "leaf", "i3,i2,i1,root", EVAL_SUCCESS, NULL);
	expect(t, REQ, 2, "leaf", "root,i1,i3,i2", EVAL_SUCCESS, NULL);
	expect(t, REQ, 1, "leaf", "i3,i2,i1,root", EVAL_FAILED, "chain-too-long");
	run(t, REQ, 2, "leaf", "i3,i2,i1,root", &res);
	assert_int_equal(res.path_len, 3); /* leaf, i3, i2: i1 and root never consulted */
	assert_int_equal(res.anchored, 1);
	assert_int_equal(sk_X509_num(res.sent), 4);
	eval_result_clear(&res);

	expect(t2, REQ, 2, "leaf", "i3,i2,i1,root", EVAL_SUCCESS, NULL);
	expect(t2, REQ, 1, "leaf", "i3,i2,i1,root", EVAL_FAILED, "chain-too-long");

	/* no anchor anywhere: untrusted, even with a depth far above the path */
	expect(none, REQ, 10, "leaf", "i3,i2,i1,root", EVAL_FAILED, "untrusted");
	expect(NULL, REQ, 10, "leaf", "i3,i2,i1,root", EVAL_FAILED, "untrusted");
	expect(NULL, OPT, 0, "leaf", "i3", EVAL_FAILED, "untrusted");
	expect(t, REQ, 10, "evilleaf", "evil", EVAL_FAILED, "untrusted");
	expect(t, PERM, 0, "evilleaf", "", EVAL_FAILED, "untrusted");

	/* depth 0: a pinned self-signed leaf only */
	{
		struct eval_trust *ps = trust("self", "");
		struct eval_trust *pl = trust("leaf", "");
		struct eval_trust *i3 = trust("i3", "");

		expect(ps, REQ, 0, "self", "", EVAL_SUCCESS, NULL);
		expect(ps, REQ, 3, "self", "", EVAL_SUCCESS, NULL);
		expect(t, REQ, 0, "self", "", EVAL_FAILED, "self-signed-not-pinned");
		expect(i3, REQ, 0, "leaf", "i3", EVAL_FAILED, "chain-too-long");
		expect(i3, REQ, 0, "leaf", "", EVAL_FAILED, "chain-too-long");
		expect(i3, REQ, 1, "leaf", "", EVAL_SUCCESS, NULL);
		/* a CA-issued leaf pinned in the file: not at depth 0, yes from 1 */
		expect(pl, REQ, 0, "leaf", "", EVAL_FAILED, "chain-too-long");
		expect(pl, REQ, 1, "leaf", "", EVAL_SUCCESS, NULL);
		eval_trust_free(ps);
		eval_trust_free(pl);
		eval_trust_free(i3);
	}
	eval_trust_free(t);
	eval_trust_free(t2);
	eval_trust_free(none);
}

/* ---- resumption ---------------------------------------------------------------------- */

static STACK_OF(X509) * stack_of(const char *names)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	char buf[128], *tok, *save = NULL;

	assert_non_null(sk);
	snprintf(buf, sizeof(buf), "%s", names);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		assert_true(sk_X509_push(sk, cert(tok)) > 0);
	return sk;
}

static void test_resumption(void **state)
{
	static const char *const sets[] = {"i3", "i2,i3", "i1,i3,i2", "root,i2,i1,i3", "i2", ""};
	static const char *const anchors[] = {"root", "i1", "i2", "i3"};
	ProtobufCBinaryData l = der("leaf");
	size_t s, a;
	unsigned depth;
	(void)state;

	for (a = 0; a < 4; a++) {
		struct eval_trust *t = trust(anchors[a], "");

		for (s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
			for (depth = 0; depth < 5; depth++) {
				struct eval_result full, resumed, bare;
				ProtobufCBinaryData c = chain(sets[s]);
				STACK_OF(X509) * extra;

				assert_int_equal(eval_run(t, REQ, depth, l.data, l.len, c.data,
				                          c.len, NULL, now_t, &full),
				                 0);
				/* what the caller remembers is what the client sent */
				extra = full.sent;
				full.sent = NULL;
				assert_int_equal(eval_run(t, REQ, depth, l.data, l.len, NULL, 0,
				                          extra, now_t, &resumed),
				                 0);
				assert_int_equal(resumed.cls, full.cls);
				assert_true((full.reason == NULL && resumed.reason == NULL) ||
				            strcmp(full.reason, resumed.reason) == 0);
				assert_int_equal(resumed.path_len, full.path_len);
				assert_null(resumed.sent);
				/* extra is ignored when the client sent a chain */
				assert_int_equal(eval_run(t, REQ, depth, l.data, l.len, c.data,
				                          c.len, extra, now_t, &bare),
				                 0);
				assert_int_equal(bare.cls, full.cls);
				eval_result_clear(&bare);
				sk_X509_pop_free(extra, X509_free);
				eval_result_clear(&full);
				eval_result_clear(&resumed);
				free(c.data);
			}
		}
		eval_trust_free(t);
	}
	/* a resumed session with nothing remembered completes only from the trust file */
	{
		struct eval_trust *t = trust("i3", "");
		struct eval_trust *r = trust("root", "");
		STACK_OF(X509) *extra = stack_of("i1,i3,i2");
		struct eval_result res;

		expect(t, REQ, 1, "leaf", "", EVAL_SUCCESS, NULL);
		expect(r, REQ, 4, "leaf", "", EVAL_FAILED, "untrusted");
		assert_int_equal(eval_run(r, REQ, 4, l.data, l.len, NULL, 0, extra, now_t, &res),
		                 0);
		assert_int_equal(res.cls, EVAL_SUCCESS);
		eval_result_clear(&res);
		sk_X509_pop_free(extra, X509_free);
		eval_trust_free(t);
		eval_trust_free(r);
	}
	free(l.data);
}

/* ---- every mode against every certificate case --------------------------------------- */

struct mode_case {
	const char *leaf, *chain, *anchors, *crls;
	enum eval_class cls[4]; /* required, optional, optional-no-ca, permissive */
	const char *reason[4];
};

#define S EVAL_SUCCESS
#define L EVAL_LENIENT
#define F EVAL_FAILED

static void test_modes(void **state)
{
	static const struct mode_case cases[] = {
	    {"leaf", "i3,i2,i1", "root", "", {S, L, L, L}, {NULL, NULL, NULL, NULL}},
	    {"noeku", "i3,i2", "i1", "", {S, L, L, L}, {NULL, NULL, NULL, NULL}},
	    {"expired",
	     "i2,i3",
	     "i1",
	     "",
	     {F, F, F, F},
	     {"expired", "expired", "expired", "expired"}},
	    {"future",
	     "i3,i2",
	     "i1",
	     "",
	     {F, F, F, F},
	     {"not-yet-valid", "not-yet-valid", "not-yet-valid", "not-yet-valid"}},
	    {"evilleaf",
	     "evil",
	     "i1",
	     "",
	     {F, F, L, F},
	     {"untrusted", "untrusted", "untrusted", "untrusted"}},
	    {"evilleaf",
	     "",
	     "",
	     "",
	     {F, F, L, F},
	     {"untrusted", "untrusted", "untrusted", "untrusted"}},
	    /* unknown CA and expired: optional-no-ca tolerates the first, not the second */
	    {"evilexp",
	     "evil",
	     "i1",
	     "",
	     {F, F, F, F},
	     {"expired", "expired", "expired", "expired"}},
	    {"self", "", "self,i1", "", {S, L, L, L}, {NULL, NULL, NULL, NULL}},
	    {"self",
	     "",
	     "i1",
	     "",
	     {F, F, L, F},
	     {"self-signed-not-pinned", "self-signed-not-pinned", "self-signed-not-pinned",
	      "self-signed-not-pinned"}},
	    {"self",
	     "",
	     "",
	     "",
	     {F, F, L, F},
	     {"self-signed-not-pinned", "self-signed-not-pinned", "self-signed-not-pinned",
	      "self-signed-not-pinned"}},
	    {"server",
	     "i3,i2",
	     "i1",
	     "",
	     {F, F, F, F},
	     {"bad-purpose", "bad-purpose", "bad-purpose", "bad-purpose"}},
	    /* serverAuth only and untrusted: the purpose is not a trust error */
	    {"server",
	     "i3",
	     "evil",
	     "",
	     {F, F, F, F},
	     {"bad-purpose", "bad-purpose", "bad-purpose", "bad-purpose"}},
	    {"revoked",
	     "i3,i2",
	     "i1",
	     "i3.crl",
	     {F, F, F, F},
	     {"revoked", "revoked", "revoked", "revoked"}},
	    {"leaf", "i3,i2", "i1", "i3.crl", {S, L, L, L}, {NULL, NULL, NULL, NULL}},
	    /* a leaf under a stale CRL: its status is unknown, fail closed */
	    {"leaf",
	     "i3,i2",
	     "i1",
	     "i3stale.crl",
	     {F, F, F, F},
	     {"crl-invalid", "crl-invalid", "crl-invalid", "crl-invalid"}},
	    /* the anchor has expired (same key and name as i2) */
	    {"leaf", "i3", "i2exp", "", {F, F, F, F}, {"expired", "expired", "expired", "expired"}},
	    /* an intermediate in the chain has expired: i2exp under i1 */
	    {"leaf",
	     "i3,i2exp",
	     "i1",
	     "",
	     {F, F, F, F},
	     {"expired", "expired", "expired", "expired"}},
	    /* the top of an unanchored path is checked too */
	    {"leaf",
	     "i3,i2exp",
	     "",
	     "",
	     {F, F, F, F},
	     {"expired", "expired", "expired", "expired"}},
	    /* depth does not apply to optional-no-ca: depth 0 below */
	    {"leaf",
	     "i3,i2,i1",
	     "root",
	     "",
	     {F, F, L, F},
	     {"chain-too-long", "chain-too-long", NULL, "chain-too-long"}},
	};
	size_t i, m;
	(void)state;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct mode_case *c = &cases[i];
		struct eval_trust *t = trust(c->anchors, c->crls);
		unsigned depth = i == sizeof(cases) / sizeof(cases[0]) - 1 ? 0 : 4;

		for (m = 0; m < 4; m++)
			expect(t, modes[m], depth, c->leaf, c->chain, c->cls[m], c->reason[m]);
		eval_trust_free(t);
	}
}

/* DER bytes of a file, changed by fn; evaluated in every mode. */
static void expect_bytes(const struct eval_trust *t, const uint8_t *leaf, size_t leaf_len,
                         const uint8_t *ch, size_t ch_len, enum eval_class nocacls,
                         const char *reason)
{
	size_t m;

	for (m = 0; m < 4; m++) {
		struct eval_result res;

		assert_int_equal(
		    eval_run(t, modes[m], 4, leaf, leaf_len, ch, ch_len, NULL, now_t, &res), 0);
		assert_int_equal(res.cls, modes[m] == NOCA ? nocacls : EVAL_FAILED);
		assert_non_null(res.reason);
		assert_string_equal(res.reason, reason);
		eval_result_clear(&res);
	}
}

static void test_malformed(void **state)
{
	struct eval_trust *t = trust("i1", "");
	ProtobufCBinaryData l = der("leaf"), c = chain("i3,i2");
	uint8_t *buf = malloc(l.len + c.len + 8);
	struct eval_result res;
	(void)state;

	assert_non_null(buf);
	/* truncated leaf */
	expect_bytes(t, l.data, l.len - 1, c.data, c.len, EVAL_FAILED, "malformed");
	expect_bytes(t, l.data, 10, c.data, c.len, EVAL_FAILED, "malformed");
	/* trailing garbage after the leaf */
	memcpy(buf, l.data, l.len);
	memcpy(buf + l.len, "\x00\x01", 2);
	expect_bytes(t, buf, l.len + 2, c.data, c.len, EVAL_FAILED, "malformed");
	/* empty and absent leaf */
	expect_bytes(t, l.data, 0, NULL, 0, EVAL_FAILED, "malformed");
	expect_bytes(t, NULL, 5, NULL, 0, EVAL_FAILED, "malformed");
	/* a truncated chain element, trailing garbage after the chain */
	expect_bytes(t, l.data, l.len, c.data, c.len - 3, EVAL_FAILED, "malformed");
	memcpy(buf, c.data, c.len);
	memcpy(buf + c.len, "\x30\x03\x02\x01", 4);
	expect_bytes(t, l.data, l.len, buf, c.len + 4, EVAL_FAILED, "malformed");
	expect_bytes(t, l.data, l.len, buf, c.len + 1, EVAL_FAILED, "malformed");
	/* the leaf still parsed: headers can be made even though the chain was bad */
	assert_int_equal(eval_run(t, PERM, 4, l.data, l.len, buf, c.len + 1, NULL, now_t, &res), 0);
	assert_non_null(res.leaf);
	assert_int_equal(res.err[0].code, EVAL_ERR_MALFORMED);
	assert_int_equal(res.err[0].depth, 3); /* the third element the client sent */
	eval_result_clear(&res);
	assert_int_equal(eval_run(t, PERM, 4, l.data, 3, NULL, 0, NULL, now_t, &res), 0);
	assert_null(res.leaf);
	assert_int_equal(res.err[0].depth, 0);
	eval_result_clear(&res);

	/* a self-signed leaf whose self-signature is broken: rejected even by
	 * optional-no-ca, which tolerates self-signed leaves */
	{
		ProtobufCBinaryData s = der("self");
		struct eval_trust *none = trust("", "");

		s.data[s.len - 1] ^= 0x55;
		expect_bytes(none, s.data, s.len, NULL, 0, EVAL_FAILED, "bad-signature");
		expect_bytes(NULL, s.data, s.len, NULL, 0, EVAL_FAILED, "bad-signature");
		eval_trust_free(none);
		free(s.data);
	}
	/* a CA-issued leaf with a broken signature */
	memcpy(buf, l.data, l.len);
	buf[l.len - 1] ^= 0x55;
	expect_bytes(t, buf, l.len, c.data, c.len, EVAL_FAILED, "bad-signature");
	free(buf);
	free(l.data);
	free(c.data);
	eval_trust_free(t);
}

/* The client's chain is capped in count and bytes before anything is parsed. */
static void test_caps(void **state)
{
	struct eval_trust *t = trust("i1", "");
	ProtobufCBinaryData l = der("leaf"), one = der("i3"), two = chain("i3,i2");
	size_t n = EVAL_MAX_CHAIN_CERTS + 1, i;
	uint8_t *many = malloc(one.len * n), *big = calloc(1, EVAL_MAX_CHAIN_BYTES + 1);
	struct eval_result res;
	STACK_OF(X509) *extra = sk_X509_new_null();
	(void)state;

	assert_non_null(many);
	assert_non_null(big);
	for (i = 0; i < n; i++)
		memcpy(many + i * one.len, one.data, one.len);
	/* at the cap it is evaluated (i2 missing: untrusted), one more is refused */
	expect_bytes(t, l.data, l.len, many, one.len * (n - 1), EVAL_LENIENT, "untrusted");
	expect_bytes(t, l.data, l.len, many, one.len * n, EVAL_FAILED, "malformed");
	memcpy(big, two.data, two.len);
	expect_bytes(t, l.data, l.len, big, EVAL_MAX_CHAIN_BYTES + 1, EVAL_FAILED, "malformed");
	assert_int_equal(
	    eval_run(t, REQ, 4, l.data, l.len, big, EVAL_MAX_CHAIN_BYTES + 1, NULL, now_t, &res),
	    0);
	assert_int_equal(res.err[0].code, EVAL_ERR_TOO_MANY);
	assert_null(res.sent);
	eval_result_clear(&res);
	/* remembered intermediates are capped as well */
	for (i = 0; i < n; i++)
		assert_true(sk_X509_push(extra, cert("i3")) > 0);
	assert_int_equal(eval_run(t, REQ, 4, l.data, l.len, NULL, 0, extra, now_t, &res), 0);
	assert_int_equal(res.cls, EVAL_FAILED);
	assert_string_equal(res.reason, "malformed");
	eval_result_clear(&res);
	sk_X509_pop_free(extra, X509_free);
	/* a copy of the leaf in the chain is not an intermediate */
	{
		ProtobufCBinaryData c = chain("leaf,i3,i2");

		assert_int_equal(
		    eval_run(t, REQ, 4, l.data, l.len, c.data, c.len, NULL, now_t, &res), 0);
		assert_int_equal(res.cls, EVAL_SUCCESS);
		assert_int_equal(sk_X509_num(res.sent), 2);
		eval_result_clear(&res);
		free(c.data);
		/* only copies of the leaf: nothing was sent, and extra is still not used */
		c = chain("leaf");
		extra = stack_of("i3,i2");
		assert_int_equal(
		    eval_run(t, REQ, 4, l.data, l.len, c.data, c.len, extra, now_t, &res), 0);
		assert_null(res.sent);
		assert_int_equal(res.cls, EVAL_FAILED);
		assert_string_equal(res.reason, "untrusted");
		eval_result_clear(&res);
		sk_X509_pop_free(extra, X509_free);
		free(c.data);
	}
	free(many);
	free(big);
	free(l.data);
	free(one.data);
	free(two.data);
	eval_trust_free(t);
}

/* ---- CRLs ---------------------------------------------------------------------------- */

static void test_crls(void **state)
{
	struct eval_trust *a = trust("i2", "i3.crl");
	struct eval_trust *b = trust("i1", "i3.crl,i2.crl");
	struct eval_trust *c = trust("root", "i3.crl");
	struct eval_trust *d = trust("self,i1", "i3.crl");
	struct eval_trust *e = trust("i3", "i3.crl");
	struct eval_trust *f = trust("i1", "i2.crl");
	struct eval_trust *g = trust("i1", "i3stale.crl,i2.crl");
	struct eval_result res;
	(void)state;

	/* the anchor and CAs without a CRL are not revocation-checked; i3's leaves are */
	expect(a, REQ, 4, "leaf", "i3", EVAL_SUCCESS, NULL);
	expect(a, REQ, 4, "revoked", "i3", EVAL_FAILED, "revoked");
	expect(b, REQ, 4, "leaf", "i3,i2", EVAL_SUCCESS, NULL);
	expect(b, OPT, 4, "revoked", "i2,i3", EVAL_FAILED, "revoked");
	expect(c, REQ, 4, "leaf", "i3,i2,i1", EVAL_SUCCESS, NULL);
	expect(c, PERM, 4, "revoked", "i3,i2,i1", EVAL_FAILED, "revoked");
	expect(d, REQ, 0, "self", "", EVAL_SUCCESS, NULL);
	expect(e, REQ, 1, "leaf", "", EVAL_SUCCESS, NULL);
	expect(e, NOCA, 1, "revoked", "", EVAL_FAILED, "revoked");
	/* i3 has no CRL here: its leaves are not checked; i3 itself is, against i2's */
	expect(f, REQ, 4, "revoked", "i3,i2", EVAL_SUCCESS, NULL);
	/* a stale CRL for the leaf's issuer, a good one above */
	expect(g, REQ, 4, "leaf", "i3,i2", EVAL_FAILED, "crl-invalid");
	/* CHECK_ALL: a revoked CA on the path, below the anchor */
	expect(f, REQ, 4, "leafb", "i3b,i2", EVAL_FAILED, "revoked");
	expect(f, NOCA, 4, "leafb", "i2,i3b", EVAL_FAILED, "revoked");
	run(f, REQ, 4, "leafb", "i3b,i2", &res);
	assert_int_equal(res.nerr, 1);
	assert_int_equal(res.err[0].code, X509_V_ERR_CERT_REVOKED);
	assert_int_equal(res.err[0].depth, 1);
	eval_result_clear(&res);
	/* an anchor is not revocation-checked, even when its issuer has a CRL in the policy
	 * (OpenSSL 3.0 would ask for that issuer, which a trust file holding only the
	 * intermediate cannot give), and even when that CRL lists it: distrust is removing
	 * it from the trust file */
	{
		struct eval_trust *i3 = trust("i3", "i2.crl");
		struct eval_trust *i3b = trust("i3b", "i2.crl");

		expect(i3, REQ, 1, "leaf", "", EVAL_SUCCESS, NULL);
		expect(i3b, REQ, 1, "leafb", "", EVAL_SUCCESS, NULL);
		eval_trust_free(i3);
		eval_trust_free(i3b);
	}
	/* the revocation is recorded at the leaf */
	run(a, REQ, 4, "revoked", "i3", &res);
	assert_int_equal(res.nerr, 1);
	assert_int_equal(res.err[0].code, X509_V_ERR_CERT_REVOKED);
	assert_int_equal(res.err[0].depth, 0);
	eval_result_clear(&res);
	/* untrusted (no anchor) but the leaf's CA has a CRL: its status is still checked */
	{
		struct eval_trust *h = trust("", "i3.crl");

		expect(h, NOCA, 4, "revoked", "i3,i2", EVAL_FAILED, "revoked");
		expect(h, NOCA, 4, "leaf", "i3,i2", EVAL_LENIENT, "untrusted");
		eval_trust_free(h);
	}
	eval_trust_free(a);
	eval_trust_free(b);
	eval_trust_free(c);
	eval_trust_free(d);
	eval_trust_free(e);
	eval_trust_free(f);
	eval_trust_free(g);
}

/* What OpenSSL 3.0 does by itself: it checks the dates of a partial-chain anchor (so the
 * eval's own pass over the dates is a second line, not the only one). */
static int raw_cb(int ok, X509_STORE_CTX *ctx)
{
	int *seen = X509_STORE_CTX_get_app_data(ctx);

	if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_HAS_EXPIRED)
		*seen = X509_STORE_CTX_get_error_depth(ctx);
	return 1;
}

static void test_openssl_anchor_dates(void **state)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *anchor = cert("i2exp"), *leaf = cert("leaf");
	STACK_OF(X509) *un = stack_of("i3");
	int seen = -1;
	(void)state;

	assert_true(X509_STORE_add_cert(st, anchor));
	assert_true(X509_STORE_CTX_init(ctx, st, leaf, un));
	X509_STORE_CTX_set_app_data(ctx, &seen);
	X509_STORE_CTX_set_verify_cb(ctx, raw_cb);
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now_t);
	assert_int_equal(X509_verify_cert(ctx), 1);
	assert_int_equal(seen, 2);
	assert_int_equal(sk_X509_num(X509_STORE_CTX_get0_chain(ctx)), 3);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	X509_free(anchor);
	X509_free(leaf);
	sk_X509_pop_free(un, X509_free);
}

/* ---- time, errors list, trust building ----------------------------------------------- */

static void test_time(void **state)
{
	struct eval_trust *t = trust("i1", "");
	ProtobufCBinaryData l = der("expired"), c = chain("i3,i2");
	struct eval_result res;
	/* 2023-08-01: before expired.pem's notAfter (Aug 5 2023), after its notBefore; but
	 * before the CAs' notBefore (Jan 2 2024) */
	time_t then = 1690848000;
	(void)state;

	assert_int_equal(eval_run(t, REQ, 4, l.data, l.len, c.data, c.len, NULL, then, &res), 0);
	assert_int_equal(res.cls, EVAL_FAILED);
	assert_string_equal(res.reason, "not-yet-valid");
	eval_result_clear(&res);
	/* 2025: every CA valid, the leaf expired */
	assert_int_equal(eval_run(t, REQ, 4, l.data, l.len, c.data, c.len, NULL, 1735689600, &res),
	                 0);
	assert_string_equal(res.reason, "expired");
	assert_int_equal(res.nerr, 1);
	assert_int_equal(res.err[0].depth, 0);
	eval_result_clear(&res);
	free(l.data);
	free(c.data);
	eval_trust_free(t);
}

static void test_trust_new(void **state)
{
	ProtobufCBinaryData a[2] = {der("i1"), der("root")};
	ProtobufCBinaryData bad = {a[0].len - 1, a[0].data};
	ProtobufCBinaryData crl = der("i3.crl");
	struct eval_trust *t = NULL;
	char err[128];
	(void)state;

	assert_int_equal(eval_trust_new(a, 2, &crl, 1, &t, err, sizeof(err)), 0);
	assert_non_null(t);
	eval_trust_free(t);
	t = NULL;
	assert_int_equal(eval_trust_new(&bad, 1, NULL, 0, &t, err, sizeof(err)), -1);
	assert_null(t);
	assert_string_equal(err, "anchor 1: DER does not parse");
	bad.len = crl.len - 2;
	bad.data = crl.data;
	assert_int_equal(eval_trust_new(a, 2, &bad, 1, &t, err, sizeof(err)), -1);
	assert_null(t);
	assert_string_equal(err, "CRL 1: DER does not parse");
	/* a certificate where a CRL belongs, and the reverse */
	assert_int_equal(eval_trust_new(&crl, 1, NULL, 0, &t, err, sizeof(err)), -1);
	assert_int_equal(eval_trust_new(NULL, 0, a, 1, &t, err, sizeof(err)), -1);
	assert_int_equal(eval_trust_new(NULL, 0, NULL, 0, &t, err, sizeof(err)), 0);
	eval_trust_free(t);
	eval_trust_free(NULL);
	free(a[0].data);
	free(a[1].data);
	free(crl.data);
}

static void test_bad_calls(void **state)
{
	ProtobufCBinaryData l = der("leaf");
	struct eval_result res;
	(void)state;

	assert_int_equal(eval_run(NULL, REQ, 1, l.data, l.len, NULL, 0, NULL, now_t, NULL), -1);
	assert_int_equal(eval_run(NULL, EDGETLS__MODE__MODE_DISABLED, 1, l.data, l.len, NULL, 0,
	                          NULL, now_t, &res),
	                 -1);
	assert_int_equal(res.cls, EVAL_FAILED);
	assert_string_equal(res.reason, "internal");
	assert_null(res.leaf);
	eval_result_clear(&res);
	assert_int_equal(
	    eval_run(NULL, (Edgetls__Mode)9, 1, l.data, l.len, NULL, 0, NULL, now_t, &res), -1);
	assert_int_equal(res.cls, EVAL_FAILED);
	eval_result_clear(&res);
	eval_result_clear(NULL);
	free(l.data);
}

/* Several errors at once are all recorded, each at its depth. */
static void test_error_list(void **state)
{
	struct eval_trust *t = trust("", "");
	struct eval_result res;
	int exp0 = 0, untrusted = 0;
	size_t i;
	(void)state;

	run(t, REQ, 4, "evilexp", "", &res);
	for (i = 0; i < res.nerr; i++) {
		if (res.err[i].code == X509_V_ERR_CERT_HAS_EXPIRED && res.err[i].depth == 0)
			exp0++;
		if (eval_is_trust_error(res.err[i].code))
			untrusted++;
	}
	assert_int_equal(exp0, 1); /* recorded once, though two passes look at dates */
	assert_true(untrusted >= 1);
	assert_int_equal(res.anchored, 0);
	assert_string_equal(res.reason, "expired");
	eval_result_clear(&res);
	eval_trust_free(t);
}

/* One eval_trust shared by several threads at once: every verdict as when alone. */
struct thread_arg {
	const struct eval_trust *t;
	ProtobufCBinaryData good, bad, ch;
	int wrong;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	int i;

	for (i = 0; i < 150; i++) {
		struct eval_result r1, r2;

		if (eval_run(a->t, REQ, 4, a->good.data, a->good.len, a->ch.data, a->ch.len, NULL,
		             now_t, &r1) != 0 ||
		    r1.cls != EVAL_SUCCESS)
			a->wrong++;
		if (eval_run(a->t, REQ, 4, a->bad.data, a->bad.len, a->ch.data, a->ch.len, NULL,
		             now_t, &r2) != 0 ||
		    r2.cls != EVAL_FAILED || !r2.reason || strcmp(r2.reason, "revoked") != 0)
			a->wrong++;
		eval_result_clear(&r1);
		eval_result_clear(&r2);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct eval_trust *t = trust("i1", "i3.crl,i2.crl");
	ProtobufCBinaryData good = der("leaf"), bad = der("revoked"), ch = chain("i2,i3");
	struct thread_arg a[4];
	pthread_t th[4];
	size_t i;
	(void)state;

	for (i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){t, good, bad, ch, 0};
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(a[i].wrong, 0);
	}
	free(good.data);
	free(bad.data);
	free(ch.data);
	eval_trust_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify_empty),
	    cmocka_unit_test(test_classify_single),
	    cmocka_unit_test(test_classify_priority),
	    cmocka_unit_test(test_reason_table),
	    cmocka_unit_test(test_depth_matrix),
	    cmocka_unit_test(test_depth_examples),
	    cmocka_unit_test(test_resumption),
	    cmocka_unit_test(test_modes),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_crls),
	    cmocka_unit_test(test_openssl_anchor_dates),
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_trust_new),
	    cmocka_unit_test(test_bad_calls),
	    cmocka_unit_test(test_error_list),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
