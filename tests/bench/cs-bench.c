/*
 * cs-bench: certsync's benchmarks (issue 3): compiling many hostnames, and applying one
 * changed certificate to a HAProxy that already serves them all.
 *
 *   cs-bench prepare DIR HOSTS ENVS    a CA, one certificate per hostname in the store,
 *                                      DIR/certsync.conf (runtime API at DIR/admin.sock)
 *   cs-bench compile DIR               compile and write, cold then unchanged
 *   cs-bench apply DIR                 sync with HAProxy, then replace one certificate
 *                                      and time compile + write + apply
 *
 * Figures are printed as key=value lines; nothing passes or fails on time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>
#include <openssl/x509v3.h>

#include "ops.h"
#include "store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *ca_key, X509 *ca, const char *cn, long serial,
                       int is_ca)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char san[300];

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 90L * 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, ca ? ca : x, x, NULL, NULL, 0);
	if (is_ca) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		ext =
		    X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		snprintf(san, sizeof(san), "DNS:%s", cn);
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "serverAuth");
	}
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, ca_key ? ca_key : key, EVP_sha256());
	return x;
}

static int prepare(const char *dir, int hosts, int envs)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	X509 *ca = make_cert(ca_key, NULL, NULL, "cs-bench CA", 1, 1);
	struct store *st = NULL;
	char path[4096], err[512], id[STORE_ID_LEN];
	FILE *f;
	double t0 = now_s();

	snprintf(path, sizeof(path), "%s/state", dir);
	if (store_open(path, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (int i = 0; i < hosts; i++) {
		char cn[256];
		EVP_PKEY *k = EVP_EC_gen("P-256");
		X509 *x;
		snprintf(cn, sizeof(cn), "h%d.env%d.example.com", i, i % envs);
		x = make_cert(k, ca_key, ca, cn, 1000 + i, 0);
		if (store_add(st, STORE_ACME, NULL, x, NULL, k, time(NULL), id, err, sizeof(err)) <
		    0) {
			fprintf(stderr, "store_add: %s\n", err);
			return 1;
		}
		X509_free(x);
		EVP_PKEY_free(k);
	}
	store_close(st);
	snprintf(path, sizeof(path), "%s/certsync.conf", dir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f,
	        "state_dir = \"%s/state\";\nhaproxy: { runtime_api = \"unix:%s/admin.sock\"; };\n"
	        "environments = (\n",
	        dir, dir);
	for (int e = 0; e < envs; e++) {
		fprintf(f, "  { name = \"env%d\"; hostnames = [", e);
		for (int i = e; i < hosts; i += envs)
			fprintf(f, "%s\"h%d.env%d.example.com\"", i == e ? "" : ", ", i, e);
		fprintf(f, " ];\n    mtls: { validation = \"%s\"; }; }%s\n",
		        e % 2 ? "permissive" : "optional", e + 1 < envs ? "," : "");
	}
	fprintf(f, ");\n");
	fclose(f);
	/* The CA key is kept for `apply`, which issues one more certificate. */
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	PEM_write_PrivateKey(f, ca_key, NULL, NULL, 0, NULL, NULL);
	PEM_write_X509(f, ca);
	fclose(f);
	printf("prepare_hosts=%d envs=%d seconds=%.2f\n", hosts, envs, now_s() - t0);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return 0;
}

static int open_ops(struct ops *o, const char *dir)
{
	char path[4096], err[512];
	struct cs_diags d;
	int r;

	snprintf(path, sizeof(path), "%s/certsync.conf", dir);
	cs_diags_init(&d);
	r = ops_open(o, path, &d, err, sizeof(err));
	if (r < 0) {
		cs_diags_print(&d, stderr);
		fprintf(stderr, "%s\n", err);
	}
	cs_diags_free(&d);
	return r;
}

static int compile(const char *dir)
{
	struct ops o;
	struct compile_result r;
	struct apply_report rep;
	char err[512];
	double t0, t1, t2;

	t0 = now_s();
	if (open_ops(&o, dir) < 0)
		return 1;
	t1 = now_s();
	if (ops_sync(&o, time(NULL), false, &r, &rep, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	t2 = now_s();
	printf("compile_hosts=%zu policies=%zu load_seconds=%.3f cold_compile_write_seconds=%.3f\n",
	       r.n_hosts, r.n_policies, t1 - t0, t2 - t1);
	compile_result_free(&r);
	t1 = now_s();
	if (ops_sync(&o, time(NULL), false, &r, &rep, err, sizeof(err)) < 0)
		return 1;
	printf("unchanged_compile_seconds=%.3f\n", now_s() - t1);
	compile_result_free(&r);
	ops_close(&o);
	return 0;
}

static int apply(const char *dir)
{
	struct ops o;
	struct compile_result r;
	struct apply_report rep;
	char err[512], path[4096], id[STORE_ID_LEN];
	EVP_PKEY *ca_key, *k;
	X509 *ca, *x;
	FILE *f;
	double t0;

	if (open_ops(&o, dir) < 0)
		return 1;
	t0 = now_s();
	if (ops_sync(&o, time(NULL), true, &r, &rep, err, sizeof(err)) < 0 || !rep.in_sync) {
		fprintf(stderr, "initial sync: %s %s\n", err, rep.error);
		return 1;
	}
	printf("initial_sync_seconds=%.3f (HAProxy already loaded the files)\n", now_s() - t0);
	compile_result_free(&r);
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	f = fopen(path, "r");
	if (!f)
		return 1;
	ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	ca = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	/* A renewed certificate for one hostname: newer, so it replaces the old one. */
	sleep(1);
	k = EVP_EC_gen("P-256");
	x = make_cert(k, ca_key, ca, "h7.env7.example.com", 999999, 0);
	if (store_add(o.store, STORE_ACME, NULL, x, NULL, k, time(NULL), id, err, sizeof(err)) < 0)
		return 1;
	t0 = now_s();
	if (ops_sync(&o, time(NULL), true, &r, &rep, err, sizeof(err)) < 0 || !rep.in_sync) {
		fprintf(stderr, "apply: %s %s\n", err, rep.error);
		return 1;
	}
	printf("apply_one_change_seconds=%.3f certs_loaded=%zu lines_added=%zu lines_deleted=%zu "
	       "hostnames=%zu\n",
	       now_s() - t0, rep.certs_loaded, rep.lines_added, rep.lines_deleted, r.n_hosts);
	compile_result_free(&r);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ca_key);
	ops_close(&o);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "prepare") == 0)
		return prepare(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 3 && strcmp(argv[1], "compile") == 0)
		return compile(argv[2]);
	if (argc == 3 && strcmp(argv[1], "apply") == 0)
		return apply(argv[2]);
	fprintf(stderr, "usage: cs-bench prepare DIR HOSTS ENVS | compile DIR | apply DIR\n");
	return 2;
}
