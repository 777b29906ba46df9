/*
 * certsync configuration: every error of DESIGN §4.1 at its line, all of a file's errors
 * at once, defaults, chain-of-trust checks on certificates made at test time, and the
 * hostname rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "hostname.h"

#include "banned.h"

static char dir[] = "/tmp/test_config.XXXXXX";

/* ------------------------------------------------------------------ helpers */

static void write_file(const char *name, const char *content, mode_t mode)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Loads content written as DIR/c.conf. */
static int load(const char *content, struct cs_config **c, struct cs_diags *d)
{
	char path[512];

	write_file("c.conf", content, 0644);
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	cs_diags_init(d);
	return cs_config_load(path, c, d);
}

static void dump(const struct cs_diags *d)
{
	cs_diags_print(d, stderr);
}

static size_t count(const struct cs_diags *d, enum cs_severity sev, int line, const char *needle)
{
	size_t n = 0;

	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].severity == sev && (line < 0 || d->v[i].line == line) &&
		    strstr(d->v[i].message, needle))
			n++;
	return n;
}

/* Fails, showing every diagnostic, unless one matches. */
static void expect(const struct cs_diags *d, enum cs_severity sev, int line, const char *needle)
{
	if (count(d, sev, line, needle) == 0) {
		dump(d);
		fail_msg("no %s on line %d containing \"%s\"",
		         sev == CS_ERROR ? "error" : "warning", line, needle);
	}
}

static void expect_clean_load(int r, struct cs_config *c, const struct cs_diags *d)
{
	if (r != 0 || d->errors != 0) {
		dump(d);
		fail_msg("load failed: %d", r);
	}
	assert_non_null(c);
}

/* A certificate made with the OpenSSL API, for what the command line of OpenSSL 3.0
 * cannot do (dates in the past, a broken self-signature). */
static void make_cert(const char *name, const char *cn, int ca, long from_days, long to_days,
                      int bad_sig)
{
	EVP_PKEY *key = EVP_EC_gen("P-256"), *other = bad_sig ? EVP_EC_gen("P-256") : NULL;
	X509 *x = X509_new();
	X509_EXTENSION *ext;
	char path[512];
	FILE *f;

	assert_non_null(key);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400));
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
	                          ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, bad_sig ? other : key, EVP_sha256()) > 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		fail_msg("command failed (%d): %s", r, cmd);
}

static void cat(const char *out, const char *a, const char *b)
{
	sh("cd %s && cat %s %s > %s", dir, a, b, out);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	/* A CA and a leaf it signed (not a CA), made by the openssl command. */
	sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	   "-keyout ca.key -out ca.pem -days 3650 -subj '/CN=Test Root CA' >/dev/null 2>&1",
	   dir);
	sh("cd %s && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	   "-keyout leaf.key -out leaf.csr -subj '/CN=leaf.example.com' >/dev/null 2>&1 && "
	   "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 "
	   "-out leaf.pem >/dev/null 2>&1",
	   dir);
	sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	   "-keyout pin.key -out pinned.pem -days 365 -subj '/CN=pinned.example.com' "
	   "-addext basicConstraints=critical,CA:FALSE >/dev/null 2>&1",
	   dir);
	make_cert("expired.pem", "Expired CA", 1, -400, -10, 0);
	make_cert("soon.pem", "Soon CA", 1, -10, 5, 0);
	make_cert("badsig.pem", "Bad Signature CA", 1, -1, 300, 1);
	cat("chain-expired.pem", "ca.pem", "expired.pem");
	cat("chain-leaf.pem", "ca.pem", "leaf.pem");
	write_file("empty.pem", "", 0644);
	write_file("garbage.pem", "hello, I am not a certificate\n", 0644);
	write_file("broken.pem",
	           "-----BEGIN CERTIFICATE-----\nMIIB!!!notbase64@@\n-----END CERTIFICATE-----\n",
	           0644);
	sh("cd %s && cat ca.pem broken.pem > ca-then-broken.pem", dir);
	write_file("tsig.secret", "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IQ==\n", 0600);
	write_file("eab.key", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n",
	           0600);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sh("rm -rf %s", dir);
	return 0;
}

/* The shared sections of a valid file, 25 lines: envs start on line 26. */
#define PRELUDE                                                                                    \
	"state_dir = \"/var/lib/edgetls\";\n"                             /* 1 */                  \
	"haproxy: { runtime_api = \"unix:/run/haproxy/admin.sock\"; };\n" /* 2 */                  \
	"acme: {\n"                                                       /* 3 */                  \
	"  directory = \"https://acme.example.net/dir\";\n"               /* 4 */                  \
	"  contact = [ \"mailto:ops@example.com\" ];\n"                   /* 5 */                  \
	"  key_type = \"ec-p384\";\n"                                     /* 6 */                  \
	"  ca_identities = [ \"letsencrypt.org\" ];\n"                    /* 7 */                  \
	"  server_ca_file = \"\";\n"                                      /* 8 */                  \
	"  eab = { kid = \"kid-1\"; hmac_key_file = \"eab.key\"; };\n"    /* 9 */                  \
	"};\n"                                                            /* 10 */                 \
	"dns: {\n"                                                        /* 11 */                 \
	"  resolver = \"127.0.0.1:53\";\n"                                /* 12 */                 \
	"  validation_domain = \"Validation.example.net\";\n"             /* 13 */                 \
	"  update: {\n"                                                   /* 14 */                 \
	"    server = \"127.0.0.1:5353\";\n"                              /* 15 */                 \
	"    tsig_name = \"certsync\";\n"                                 /* 16 */                 \
	"    tsig_secret_file = \"tsig.secret\";\n"                       /* 17 */                 \
	"  };\n"                                                          /* 18 */                 \
	"  authoritative = [ \"127.0.0.1:5353\", \"[::1]:53\" ];\n"       /* 19 */                 \
	"};\n"                                                            /* 20 */                 \
	"metrics_listen = \"127.0.0.1:9465\";\n"                          /* 21 */                 \
	"admin_group = \"root\";\n"                                       /* 22 */                 \
	"upload_ca_file = \"ca.pem\";\n"                                  /* 23 */                 \
	"# environments follow\n"                                         /* 24 */                 \
	"\n"                                                              /* 25 */

/* A minimal valid file around one environment body (line 3 onwards is the body). */
#define MINI(body)                                                                                 \
	"state_dir = \"/var/lib/edgetls\";\n" /* 1 */                                              \
	"environments = ( {\n"                /* 2 */                                              \
	    body "} );\n"

/* ------------------------------------------------------------------ hostnames */

static void test_hostname_check(void **state)
{
	char err[256], out[CS_HOSTNAME_MAX + 1];
	char label64[80], long_name[400];

	(void)state;
	assert_int_equal(cs_hostname_check("cdn.example.com", err, sizeof(err)), 0);
	assert_int_equal(cs_hostname_check("a-b.x1.example", err, sizeof(err)), 0);
	assert_int_equal(cs_hostname_check("xn--bcher-kva.example", err, sizeof(err)), 0);
	assert_int_equal(cs_hostname_normalize("API.Example.COM", out, err, sizeof(err)), 0);
	assert_string_equal(out, "api.example.com");
	assert_int_equal(cs_hostname_check("*.a.b", err, sizeof(err)), 0);
	assert_true(cs_hostname_is_wildcard("*.a.b"));

	assert_int_equal(cs_hostname_check("a.*.b", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "leftmost"));
	assert_int_equal(cs_hostname_check("*", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("*a.b.c", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("*.com", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("x_y.example.com", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'_'"));
	assert_int_equal(cs_hostname_check("example.com.", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "dot"));
	assert_int_equal(cs_hostname_check("localhost", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "single label"));
	assert_int_equal(cs_hostname_check("", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("a..b", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("-a.b", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("a-.b", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("192.168.0.1", err, sizeof(err)), -1);
	assert_int_equal(cs_hostname_check("caf\xc3\xa9.example", err, sizeof(err)), -1);

	memset(label64, 'a', 64);
	label64[64] = '\0';
	snprintf(long_name, sizeof(long_name), "%s.example.com", label64);
	assert_int_equal(cs_hostname_check(long_name, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most 63"));
	long_name[0] = '\0';
	label64[63] = '\0'; /* 63 is fine */
	snprintf(long_name, sizeof(long_name), "%s.example.com", label64);
	assert_int_equal(cs_hostname_check(long_name, err, sizeof(err)), 0);

	/* 4 x 63 + 3 dots = 255 > 253 */
	snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", label64, label64, label64, label64);
	assert_int_equal(cs_hostname_check(long_name, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most 253"));
}

/* ------------------------------------------------------------------ whole files */

static void test_valid_full(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;
	const struct cs_env *e;
	char want[600];
	int r;

	(void)state;
	r = load(PRELUDE
	         "environments = (\n"                                                    /* 26 */
	         "  {\n"                                                                 /* 27 */
	         "    name = \"production\";\n"                                          /* 28 */
	         "    network = \"standard\";\n"                                         /* 29 */
	         "    auto_certificates = true;\n"                                       /* 30 */
	         "    hostnames = [ \"CDN.example.com\", \"api.example.com\",\n"         /* 31 */
	         "                  \"*.img.example.com\" ];\n"                          /* 32 */
	         "    mtls: {\n"                                                         /* 33 */
	         "      validation = \"permissive\";\n"                                  /* 34 */
	         "      deny_on_failure = true;\n"                                       /* 35 */
	         "      depth = 2;\n"                                                    /* 36 */
	         "      request_hostnames = [ \"api.example.com\" ];\n"                  /* 37 */
	         "      send_headers = true;\n"                                          /* 38 */
	         "      chains = ( { hostnames = [ \"api.example.com\" ];\n"             /* 39 */
	         "                   file = \"chain-expired.pem\"; } );\n"               /* 40 */
	         "    };\n"                                                              /* 41 */
	         "  },\n"                                                                /* 42 */
	         "  { name = \"staging\"; hostnames = [ \"staging.example.com\" ]; },\n" /* 43 */
	         "  { name = \"pinned\"; hostnames = [ \"p.example.org\", \"q.example.org\" ];\n"
	         "    crt_list = \"/etc/haproxy/pinned.crt-list\";\n"   /* 45 */
	         "    mtls = { validation = \"required\"; depth = 0;\n" /* 46 */
	         "      chains = ( { hostnames = [ \"p.example.org\", \"q.example.org\" ];\n"
	         "                   file = \"pinned.pem\"; } ); };\n" /* 48 */
	         "  }\n"                                               /* 49 */
	         ");\n"                                                /* 50 */
	         "default_environment = \"staging\";\n",               /* 51 */
	         &c, &d);
	expect_clean_load(r, c, &d);
	/* The expired CA in the chain file is a warning, at the "file" line, named. */
	expect(&d, CS_WARNING, 40, "certificate #2 (CN=Expired CA) expired");
	assert_int_equal(d.warnings, 1);

	assert_string_equal(c->state_dir, "/var/lib/edgetls");
	assert_string_equal(c->runtime_api, "unix:/run/haproxy/admin.sock");
	assert_string_equal(c->policy_file, "/var/lib/edgetls/policy.pb");
	assert_string_equal(c->metrics_listen, "127.0.0.1:9465");
	assert_string_equal(c->admin_group, "root");
	snprintf(want, sizeof(want), "%s/ca.pem", dir);
	assert_string_equal(c->upload_ca_file, want);
	assert_string_equal(c->default_environment, "staging");
	assert_true(c->acme.present);
	assert_string_equal(c->acme.directory, "https://acme.example.net/dir");
	assert_int_equal(c->acme.key_type, CS_KEY_EC_P384);
	assert_int_equal(c->acme.n_contact, 1);
	assert_int_equal(c->acme.n_ca_identities, 1);
	assert_null(c->acme.server_ca_file);
	assert_string_equal(c->acme.eab_kid, "kid-1");
	snprintf(want, sizeof(want), "%s/eab.key", dir);
	assert_string_equal(c->acme.eab_hmac_key_file, want);
	assert_true(c->dns.present);
	assert_string_equal(c->dns.validation_domain, "validation.example.net");
	assert_int_equal(c->dns.layout, CS_DNS_LAYOUT_PER_HOST);
	assert_string_equal(c->dns.tsig_algorithm, "hmac-sha256");
	assert_string_equal(c->dns.update_server, "127.0.0.1:5353");
	assert_int_equal(c->dns.n_authoritative, 2);

	assert_int_equal(c->n_envs, 3);
	assert_int_equal(c->n_hostnames, 6);
	e = &c->envs[0];
	assert_string_equal(e->name, "production");
	assert_string_equal(e->network, "standard");
	assert_string_equal(e->crt_list, "/var/lib/edgetls/haproxy/production.crt-list");
	assert_true(e->auto_certificates);
	assert_int_equal(e->n_hostnames, 3);
	assert_string_equal(e->hostnames[0], "cdn.example.com");
	assert_int_equal(e->mtls.validation, CS_VALIDATION_PERMISSIVE);
	assert_true(e->mtls.deny_on_failure);
	assert_int_equal(e->mtls.depth, 2);
	assert_true(e->mtls.send_headers);
	assert_int_equal(e->mtls.n_request_hostnames, 1);
	assert_int_equal(e->mtls.n_chains, 1);
	snprintf(want, sizeof(want), "%s/chain-expired.pem", dir);
	assert_string_equal(e->mtls.chains[0].file, want);
	assert_int_equal(e->mtls.chains[0].line, 40);

	/* Defaults of an environment without mtls. */
	e = &c->envs[1];
	assert_string_equal(e->network, "default");
	assert_string_equal(e->crt_list, "/var/lib/edgetls/haproxy/staging.crt-list");
	assert_false(e->auto_certificates);
	assert_int_equal(e->mtls.validation, CS_VALIDATION_DISABLED);
	assert_int_equal(e->mtls.depth, 1);
	assert_false(e->mtls.send_headers);
	assert_false(e->mtls.deny_on_failure);
	assert_int_equal(e->mtls.n_request_hostnames, 0);
	assert_int_equal(e->mtls.n_chains, 0);
	assert_string_equal(c->envs[2].crt_list, "/etc/haproxy/pinned.crt-list");
	assert_int_equal(c->envs[2].mtls.depth, 0);

	/* Lookup: exact (any case), then a one-label wildcard, else none. */
	assert_ptr_equal(cs_config_env_of(c, "cdn.EXAMPLE.com"), &c->envs[0]);
	assert_ptr_equal(cs_config_env_of(c, "q.example.org"), &c->envs[2]);
	assert_ptr_equal(cs_config_env_of(c, "a.img.example.com"), &c->envs[0]);
	assert_null(cs_config_env_of(c, "img.example.com"));
	assert_null(cs_config_env_of(c, "a.b.img.example.com"));
	assert_null(cs_config_env_of(c, "unknown.example.com"));
	assert_ptr_equal(cs_config_env_named(c, "staging"), &c->envs[1]);
	assert_null(cs_config_env_named(c, "nope"));

	cs_config_free(c);
	cs_diags_free(&d);
}

static void test_syntax_error(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(load("state_dir = \"/x\";\n"
	                      "environments = (\n"
	                      "  { name = ; hostnames = [ \"a.example.com\" ]; }\n"
	                      ");\n",
	                      &c, &d),
	                 CS_CONFIG_EINVALID);
	assert_null(c);
	expect(&d, CS_ERROR, 3, "syntax error");
	assert_int_equal(d.errors, 1);
	cs_diags_free(&d);
}

static void test_unreadable_config(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;
	char path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", dir);
	cs_diags_init(&d);
	assert_int_equal(cs_config_load(path, &c, &d), CS_CONFIG_EUNREADABLE);
	assert_null(c);
	expect(&d, CS_ERROR, 0, "No such file or directory");
	cs_diags_free(&d);
}

static void test_unknown_keys(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(
	    load("state_dir = \"/x\";\n" /* 1 */
	         "statedir = \"/y\";\n"  /* 2 */
	         "dns = { validation_domain = \"v.example.net\"; resolvr = \"x\";\n"
	         "  update = { server = \"127.0.0.1:53\"; tsig_name = \"k\";\n" /* 4 */
	         "    tsig_secret_file = \"tsig.secret\"; tsig_key = \"x\"; }; };\n"
	         "acme = { directory = \"https://a.example/d\";\n" /* 6 */
	         "  eab = { kid = \"k\"; hmac_key_file = \"eab.key\"; hmac = \"x\"; }; };\n"
	         "environments = ( {\n"                                   /* 8 */
	         "  name = \"a\"; hostnames = [ \"a.example.com\" ];\n"   /* 9 */
	         "  hostname = \"b.example.com\";\n"                      /* 10 */
	         "  mtls = { validation = \"optional\"; verify = true;\n" /* 11 */
	         "    chains = ( { hostnames = [ \"a.example.com\" ]; file = \"ca.pem\";\n"
	         "                 depth = 1; } );\n" /* 13 */
	         "  };\n"
	         "} );\n",
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 2, "unknown key \"statedir\" in the top level; allowed: state_dir,");
	expect(&d, CS_ERROR, 3, "unknown key \"resolvr\" in dns; allowed: resolver,");
	expect(&d, CS_ERROR, 5, "unknown key \"tsig_key\" in dns.update; allowed: server,");
	expect(&d, CS_ERROR, 7, "unknown key \"hmac\" in acme.eab; allowed: kid, hmac_key_file");
	expect(&d, CS_ERROR, 10, "unknown key \"hostname\" in environments[0]; allowed: name,");
	expect(&d, CS_ERROR, 11, "unknown key \"verify\" in environments[0].mtls; allowed:");
	expect(&d, CS_ERROR, 13, "unknown key \"depth\" in environments[0].mtls.chains[0]");
	assert_int_equal(d.errors, 7);
	cs_diags_free(&d);
}

static void test_wrong_types(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(load(MINI("  name = \"a\";\n"                        /* 3 */
	                           "  hostnames = \"a.example.com\";\n"       /* 4 */
	                           "  auto_certificates = \"yes\";\n"         /* 5 */
	                           "  mtls = { validation = \"optional\";\n"  /* 6 */
	                           "    depth = \"2\";\n"                     /* 7 */
	                           "    send_headers = 1;\n"                  /* 8 */
	                           "    request_hostnames = [ 1, 2 ]; };\n"), /* 9 */
	                      &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 4, "hostnames: expected a list of strings");
	expect(&d, CS_ERROR, 5, "auto_certificates: expected true or false, got a string");
	expect(&d, CS_ERROR, 7, "depth: expected an integer, got a string");
	expect(&d, CS_ERROR, 8, "send_headers: expected true or false, got an integer");
	expect(&d, CS_ERROR, 9, "request_hostnames[0]: expected a string, got an integer");
	expect(&d, CS_ERROR, 9, "request_hostnames[1]: expected a string");
	cs_diags_free(&d);

	assert_int_equal(load("state_dir = 5;\nenvironments = { a = 1; };\n", &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 1, "state_dir: expected a string in double quotes, got an integer");
	expect(&d, CS_ERROR, 2, "environments: expected a list");
	cs_diags_free(&d);
}

static void test_missing_required(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(load("metrics_listen = \"127.0.0.1:9000\";\n", &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 0, "missing required key \"state_dir\"");
	expect(&d, CS_ERROR, 0, "missing required key \"environments\"");
	assert_int_equal(d.errors, 2);
	cs_diags_free(&d);

	assert_int_equal(load("state_dir = \"/x\";\n"
	                      "environments = (\n"
	                      "  { hostnames = [ \"a.example.com\" ]; },\n" /* 3 */
	                      "  { name = \"b\"; },\n"                      /* 4 */
	                      "  { name = \"c\"; hostnames = [ ]; }\n"      /* 5 */
	                      ");\n",
	                      &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 3, "environments[0]: missing required key \"name\"");
	expect(&d, CS_ERROR, 4, "environments[1]: missing required key \"hostnames\"");
	expect(&d, CS_ERROR, 5, "environments[2].hostnames: expected at least one hostname");
	assert_int_equal(d.errors, 3);
	cs_diags_free(&d);

	assert_int_equal(load("state_dir = \"/x\";\nenvironments = ( );\n", &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 2, "expected at least one environment");
	cs_diags_free(&d);
}

static void test_mode_and_depth(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(load("state_dir = \"/x\";\n"
	                      "environments = (\n"
	                      "  { name = \"a\"; hostnames = [ \"a.example.com\" ];\n"      /* 3 */
	                      "    mtls = { validation = \"strict\"; }; },\n"               /* 4 */
	                      "  { name = \"b\"; hostnames = [ \"b.example.com\" ];\n"      /* 5 */
	                      "    mtls = { validation = \"required\"; depth = 11; }; },\n" /* 6 */
	                      "  { name = \"c\"; hostnames = [ \"c.example.com\" ];\n"      /* 7 */
	                      "    mtls = { validation = \"optional\"; depth = -1; }; },\n" /* 8 */
	                      "  { name = \"d\"; hostnames = [ \"d.example.com\" ];\n"      /* 9 */
	                      "    mtls = { validation = \"optional\";\n"                   /* 10 */
	                      "             deny_on_failure = true; }; }\n"                 /* 11 */
	                      ");\n",
	                      &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 4,
	       "unknown mode \"strict\"; expected one of disabled | required | optional | "
	       "optional-no-ca | permissive");
	expect(&d, CS_ERROR, 6, "depth: expected 0..10, got 11");
	expect(&d, CS_ERROR, 8, "depth: expected 0..10, got -1");
	expect(&d, CS_ERROR, 11,
	       "deny_on_failure: true is only meaningful with validation = "
	       "\"permissive\"");
	assert_int_equal(d.errors, 4);
	cs_diags_free(&d);
}

static void test_mode_warnings(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;
	int r;

	(void)state;
	r = load("state_dir = \"/x\";\n"
	         "environments = (\n"
	         "  { name = \"a\"; hostnames = [ \"a.example.com\" ];\n" /* 3 */
	         "    mtls = { depth = 3;\n"                              /* 4 */
	         "      chains = ( { hostnames = [ \"a.example.com\" ]; file = \"ca.pem\"; } );\n"
	         "    }; },\n"                                                      /* 6 */
	         "  { name = \"b\"; hostnames = [ \"b.example.com\" ];\n"           /* 7 */
	         "    mtls = { validation = \"optional-no-ca\"; depth = 2; }; },\n" /* 8 */
	         "  { name = \"c\"; hostnames = [ \"c.example.com\", \"d.example.com\" ];\n"
	         "    mtls = { validation = \"required\";\n"               /* 10 */
	         "      request_hostnames = [ \"c.example.com\" ]; }; }\n" /* 11 */
	         ");\n",
	         &c, &d);
	expect_clean_load(r, c, &d);
	expect(&d, CS_WARNING, 4, "depth: ignored with validation = \"disabled\"");
	expect(&d, CS_WARNING, 5, "chains: ignored with validation = \"disabled\"");
	expect(&d, CS_WARNING, 8, "depth: ignored with validation = \"optional-no-ca\"");
	expect(&d, CS_WARNING, 11, "can never pass");
	assert_int_equal(d.warnings, 4);
	cs_config_free(c);
	cs_diags_free(&d);
}

static void test_bad_hostnames(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(
	    load(MINI("  name = \"a\";\n"                                   /* 3 */
	              "  hostnames = [ \"ok.example.com\",\n"               /* 4 */
	              "    \"a.*.example.com\",\n"                          /* 5 */
	              "    \"under_score.example.com\",\n"                  /* 6 */
	              "    \"trailing.example.com.\",\n"                    /* 7 */
	              "    \"single\",\n"                                   /* 8 */
	              "    \"OK.example.com\" ];\n"                         /* 9 */
	              "  mtls = { validation = \"optional\";\n"             /* 10 */
	              "    request_hostnames = [ \"bad..example.com\" ];\n" /* 11 */
	              "    chains = ( { hostnames = [ \"*\" ]; file = \"ca.pem\"; } );\n"
	              "  };\n"),
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 5, "invalid hostname: \"a.*.example.com\"");
	expect(&d, CS_ERROR, 6, "'_' is not allowed");
	expect(&d, CS_ERROR, 7, "ends with a dot");
	expect(&d, CS_ERROR, 8, "single label");
	/* Case-insensitive: OK.example.com is ok.example.com again. */
	expect(&d, CS_ERROR, 9, "\"ok.example.com\" is listed twice (also on line 4)");
	expect(&d, CS_ERROR, 11, "request_hostnames: invalid hostname: \"bad..example.com\"");
	expect(&d, CS_ERROR, 12, "chains[0].hostnames: invalid hostname: \"*\"");
	assert_int_equal(d.errors, 7);
	cs_diags_free(&d);
}

static void test_cross_environment(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "environments = (\n"
	         "  { name = \"prod\";\n"                                      /* 3 */
	         "    hostnames = [ \"a.example.com\",\n"                      /* 4 */
	         "                  \"b.example.com\" ]; },\n"                 /* 5 */
	         "  { name = \"stage\";\n"                                     /* 6 */
	         "    hostnames = [ \"c.example.com\", \"B.example.com\" ];\n" /* 7 */
	         "    mtls = { validation = \"optional\";\n"                   /* 8 */
	         "      request_hostnames = [ \"a.example.com\" ];\n"          /* 9 */
	         "      chains = ( { hostnames = [ \"c.example.com\" ]; file = \"ca.pem\"; },\n"
	         "                 { hostnames = [ \"d.example.com\",\n"            /* 11 */
	         "                                 \"c.example.com\" ];\n"          /* 12 */
	         "                   file = \"ca.pem\"; } ); }; },\n"               /* 13 */
	         "  { name = \"prod\"; hostnames = [ \"e.example.com\" ]; },\n"     /* 14 */
	         "  { name = \"bad name!\"; hostnames = [ \"f.example.com\" ]; }\n" /* 15 */
	         ");\n"
	         "default_environment = \"production\";\n", /* 17 */
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 7,
	       "hostname \"b.example.com\" is in environment \"prod\" (line 5) and in "
	       "environment \"stage\" (line 7)");
	expect(&d, CS_ERROR, 9, "\"a.example.com\" is not a hostname of environment \"stage\"");
	expect(&d, CS_ERROR, 11, "\"d.example.com\" is not a hostname of environment \"stage\"");
	expect(&d, CS_ERROR, 12, "\"c.example.com\" already has a chain of trust (line 10)");
	expect(&d, CS_ERROR, 14, "environment name \"prod\" is already used on line 3");
	expect(&d, CS_ERROR, 15, "name: expected 1..64 of A-Z a-z 0-9 _ -, got \"bad name!\"");
	expect(&d, CS_ERROR, 17, "no environment is named \"production\"");
	assert_int_equal(d.errors, 7);
	cs_diags_free(&d);
}

static void test_unreadable_files(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "acme = { directory = \"https://a.example/d\";\n"              /* 2 */
	         "  server_ca_file = \"nope-ca.pem\";\n"                        /* 3 */
	         "  eab = { kid = \"k\";\n"                                     /* 4 */
	         "          hmac_key_file = \"nope-eab.key\"; }; };\n"          /* 5 */
	         "dns = { validation_domain = \"v.example.net\";\n"             /* 6 */
	         "  update = { server = \"127.0.0.1:53\"; tsig_name = \"k\";\n" /* 7 */
	         "    tsig_secret_file = \"nope.secret\"; }; };\n"              /* 8 */
	         "upload_ca_file = \"/nonexistent/upload-ca.pem\";\n"           /* 9 */
	         "environments = ( { name = \"a\"; hostnames = [ \"a.example.com\" ];\n"
	         "  mtls = { validation = \"required\";\n"                     /* 11 */
	         "    chains = ( { hostnames = [ \"a.example.com\" ];\n"       /* 12 */
	         "                 file = \"nope-chain.pem\"; } ); }; } );\n", /* 13 */
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 3, "acme.server_ca_file: cannot read");
	expect(&d, CS_ERROR, 5, "acme.eab.hmac_key_file: cannot read");
	expect(&d, CS_ERROR, 8, "dns.update.tsig_secret_file: cannot read");
	expect(&d, CS_ERROR, 9, "upload_ca_file: cannot read \"/nonexistent/upload-ca.pem\"");
	expect(&d, CS_ERROR, 13, "chains[0].file: cannot read");
	assert_int_equal(count(&d, CS_ERROR, -1, "No such file or directory"), 5);
	assert_int_equal(d.errors, 5);
	cs_diags_free(&d);
}

static void test_secret_files(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	write_file("open.secret", "c2VjcmV0\n", 0644);
	write_file("empty.secret", "\n", 0600);
	write_file("bad.secret", "not base64 at all!\n", 0600);
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "acme = { directory = \"https://a.example/d\";\n"                /* 2 */
	         "  eab = { kid = \"k\"; hmac_key_file = \"bad.secret\"; }; };\n" /* 3 */
	         "dns = { validation_domain = \"v.example.net\";\n"               /* 4 */
	         "  update = { server = \"127.0.0.1:53\"; tsig_name = \"k\";\n"   /* 5 */
	         "    tsig_secret_file = \"empty.secret\"; }; };\n"               /* 6 */
	         "environments = ( { name = \"a\"; hostnames = [ \"a.example.com\" ]; } );\n",
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 3, "does not hold a base64 secret");
	expect(&d, CS_ERROR, 6, "is empty");
	/* The secret itself never appears in a message. */
	assert_int_equal(count(&d, CS_ERROR, -1, "not base64 at all"), 0);
	cs_diags_free(&d);

	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "dns = { validation_domain = \"v.example.net\";\n"
	         "  update = { server = \"127.0.0.1:53\"; tsig_name = \"k\";\n"
	         "    tsig_secret_file = \"open.secret\"; }; };\n" /* 4 */
	         "environments = ( { name = \"a\"; hostnames = [ \"a.example.com\" ]; } );\n",
	         &c, &d),
	    0);
	expect(&d, CS_WARNING, 4, "readable by every user (mode 0644)");
	cs_config_free(c);
	cs_diags_free(&d);
}

static void test_acme_dns_needed(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(load(MINI("  name = \"a\"; hostnames = [ \"a.example.com\" ];\n" /* 3 */
	                           "  auto_certificates = true;\n"),                      /* 4 */
	                      &c, &d),
	                 CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 4, "auto_certificates = true but there is no acme");
	expect(&d, CS_ERROR, 4, "auto_certificates = true but there is no dns");
	assert_int_equal(d.errors, 2);
	cs_diags_free(&d);

	/* Without auto_certificates neither section is needed. */
	assert_int_equal(load(MINI("  name = \"a\"; hostnames = [ \"a.example.com\" ];\n"
	                           "  auto_certificates = false;\n"),
	                      &c, &d),
	                 0);
	assert_false(c->acme.present);
	assert_false(c->dns.present);
	cs_config_free(c);
	cs_diags_free(&d);
}

static void test_enums_and_addresses(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "haproxy = { runtime_api = \"/run/haproxy.sock\"; };\n"   /* 2 */
	         "metrics_listen = \"localhost\";\n"                       /* 3 */
	         "acme = { directory = \"http://a.example/d\";\n"          /* 4 */
	         "  key_type = \"ed25519\"; };\n"                          /* 5 */
	         "dns = { validation_domain = \"*.v.example.net\";\n"      /* 6 */
	         "  resolver = \"unix:/run/resolver\";\n"                  /* 7 */
	         "  layout = \"flat\";\n"                                  /* 8 */
	         "  update = { server = \"no-port\"; tsig_name = \"k\";\n" /* 9 */
	         "    tsig_algorithm = \"hmac-md5\";\n"                    /* 10 */
	         "    tsig_secret_file = \"tsig.secret\"; }; };\n"         /* 11 */
	         "environments = ( { name = \"a\"; hostnames = [ \"a.example.com\" ]; } );\n",
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 2,
	       "haproxy.runtime_api: \"/run/haproxy.sock\" is not a usable address");
	expect(&d, CS_ERROR, 2, "expected unix:PATH or tcp:HOST:PORT");
	expect(&d, CS_ERROR, 3, "metrics_listen: \"localhost\" is not a usable address");
	expect(&d, CS_ERROR, 4, "acme.directory: expected an https:// URL");
	expect(&d, CS_ERROR, 5,
	       "acme.key_type: expected one of ec-p256 | ec-p384 | rsa-2048 | rsa-3072, got "
	       "\"ed25519\"");
	expect(&d, CS_ERROR, 6, "dns.validation_domain: expected a zone name, not a wildcard");
	expect(&d, CS_ERROR, 7, "dns.resolver: expected HOST:PORT");
	expect(&d, CS_ERROR, 8, "dns.layout: expected one of per-host | shared, got \"flat\"");
	expect(&d, CS_ERROR, 9, "dns.update.server: \"no-port\" is not a usable address");
	expect(&d, CS_ERROR, 10, "tsig_algorithm: expected one of hmac-sha1");
	assert_int_equal(d.errors, 9);
	cs_diags_free(&d);

	/* Both runtime API forms, and the shared layout. */
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "haproxy = { runtime_api = \"tcp:127.0.0.1:9999\"; };\n"
	         "dns = { validation_domain = \"v.example.net\"; layout = \"shared\";\n"
	         "  update = { server = \"[::1]:53\"; tsig_name = \"k\";\n"
	         "    tsig_algorithm = \"hmac-sha512\";\n"
	         "    tsig_secret_file = \"tsig.secret\"; }; };\n"
	         "environments = ( { name = \"a\"; hostnames = [ \"a.example.com\" ]; } );\n",
	         &c, &d),
	    0);
	assert_string_equal(c->runtime_api, "tcp:127.0.0.1:9999");
	assert_int_equal(c->dns.layout, CS_DNS_LAYOUT_SHARED);
	assert_string_equal(c->dns.tsig_algorithm, "hmac-sha512");
	assert_null(c->dns.resolver);
	cs_config_free(c);
	cs_diags_free(&d);
}

static void test_chain_files(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "environments = ( { name = \"a\";\n" /* 2 */
	         "  hostnames = [ \"a.example.com\", \"b.example.com\", \"c.example.com\",\n"
	         "                \"d.example.com\", \"e.example.com\", \"f.example.com\" ];\n"
	         "  mtls = { validation = \"required\";\n" /* 5 */
	         "    chains = (\n"                        /* 6 */
	         "      { hostnames = [ \"a.example.com\" ]; file = \"empty.pem\"; },\n"
	         "      { hostnames = [ \"b.example.com\" ]; file = \"garbage.pem\"; },\n"
	         "      { hostnames = [ \"c.example.com\" ]; file = \"chain-leaf.pem\"; },\n"
	         "      { hostnames = [ \"d.example.com\" ]; file = \"ca-then-broken.pem\"; },\n"
	         "      { hostnames = [ \"e.example.com\" ]; file = \"leaf.key\"; },\n" /* 11 */
	         "      { hostnames = [ \"f.example.com\" ]; file = \".\"; }\n"         /* 12 */
	         "    ); }; } );\n",
	         &c, &d),
	    CS_CONFIG_EINVALID);
	expect(&d, CS_ERROR, 7, "holds no certificate");
	expect(&d, CS_ERROR, 8, "holds no certificate");
	expect(&d, CS_ERROR, 9,
	       "certificate #2 (CN=leaf.example.com) is not a CA (no basicConstraints CA:TRUE)");
	expect(&d, CS_ERROR, 10, "certificate #2 cannot be parsed");
	expect(&d, CS_ERROR, 11, "holds a private key");
	expect(&d, CS_ERROR, 12, "is not a regular file");
	cs_diags_free(&d);

	/* Warnings only: expired, expiring, bad self-signature, and a pinned self-signed
	 * non-CA certificate, which is fine. */
	assert_int_equal(
	    load("state_dir = \"/x\";\n"
	         "environments = ( { name = \"a\";\n"
	         "  hostnames = [ \"a.example.com\", \"b.example.com\", \"c.example.com\",\n"
	         "                \"d.example.com\" ];\n"
	         "  mtls = { validation = \"required\"; depth = 0;\n" /* 5 */
	         "    chains = (\n"                                   /* 6 */
	         "      { hostnames = [ \"a.example.com\" ]; file = \"expired.pem\"; },\n"
	         "      { hostnames = [ \"b.example.com\" ]; file = \"soon.pem\"; },\n"
	         "      { hostnames = [ \"c.example.com\" ]; file = \"badsig.pem\"; },\n"
	         "      { hostnames = [ \"d.example.com\" ]; file = \"pinned.pem\"; }\n"
	         "    ); }; } );\n",
	         &c, &d),
	    0);
	expect(&d, CS_WARNING, 7, "certificate #1 (CN=Expired CA) expired on");
	expect(&d, CS_WARNING, 8, "certificate #1 (CN=Soon CA) expires on");
	expect(&d, CS_WARNING, 8, "within 30 days");
	expect(&d, CS_WARNING, 9,
	       "certificate #1 (CN=Bad Signature CA) is self-signed but its signature does "
	       "not verify");
	assert_int_equal(d.warnings, 3);
	assert_int_equal(d.errors, 0);
	cs_config_free(c);
	cs_diags_free(&d);
}

/* Every error of a file is reported, not only the first. */
static void test_five_errors(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;

	(void)state;
	assert_int_equal(load("state_dir = \"/x\";\n"
	                      "colour = \"blue\";\n"                                         /* 2 */
	                      "environments = ( { name = \"a\";\n"                           /* 3 */
	                      "  hostnames = [ \"a_b.example.com\", \"ok.example.com\" ];\n" /* 4 */
	                      "  mtls = { validation = \"sometimes\";\n"                     /* 5 */
	                      "    depth = 99; }; } );\n"                                    /* 6 */
	                      "default_environment = \"b\";\n",                              /* 7 */
	                      &c, &d),
	                 CS_CONFIG_EINVALID);
	assert_null(c);
	if (d.errors != 5) {
		dump(&d);
		fail_msg("%zu errors, expected 5", d.errors);
	}
	assert_int_equal(d.warnings, 0);
	/* In reading order. */
	assert_int_equal(d.v[0].line, 2);
	assert_int_equal(d.v[1].line, 4);
	assert_int_equal(d.v[2].line, 5);
	assert_int_equal(d.v[3].line, 6);
	assert_int_equal(d.v[4].line, 7);
	cs_diags_free(&d);
}

static void test_print_format(void **state)
{
	struct cs_diags d;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	cs_diags_init(&d);
	cs_diags_add(&d, CS_ERROR, "x.conf", 12, "depth: expected 0..%d", 10);
	cs_diags_add(&d, CS_WARNING, "x.conf", 0, "something");
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	cs_diags_print(&d, f);
	fclose(f);
	assert_string_equal(buf, "x.conf:12: error: depth: expected 0..10\n"
	                         "x.conf: warning: something\n");
	assert_int_equal(d.errors, 1);
	assert_int_equal(d.warnings, 1);
	free(buf);
	cs_diags_free(&d);
}

/* The commented example in the repository is accepted. */
static void test_example_file(void **state)
{
	struct cs_config *c = NULL;
	struct cs_diags d;
	const char *path = "examples/certsync.conf";

	(void)state;
	if (access(path, R_OK) != 0)
		skip(); /* run from elsewhere than the repository root */
	cs_diags_init(&d);
	if (cs_config_load(path, &c, &d) != 0) {
		dump(&d);
		fail_msg("examples/certsync.conf does not load");
	}
	assert_true(c->n_envs >= 2);
	cs_config_free(c);
	cs_diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostname_check),      cmocka_unit_test(test_valid_full),
	    cmocka_unit_test(test_syntax_error),        cmocka_unit_test(test_unreadable_config),
	    cmocka_unit_test(test_unknown_keys),        cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_missing_required),    cmocka_unit_test(test_mode_and_depth),
	    cmocka_unit_test(test_mode_warnings),       cmocka_unit_test(test_bad_hostnames),
	    cmocka_unit_test(test_cross_environment),   cmocka_unit_test(test_unreadable_files),
	    cmocka_unit_test(test_secret_files),        cmocka_unit_test(test_acme_dns_needed),
	    cmocka_unit_test(test_enums_and_addresses), cmocka_unit_test(test_chain_files),
	    cmocka_unit_test(test_five_errors),         cmocka_unit_test(test_print_format),
	    cmocka_unit_test(test_example_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
