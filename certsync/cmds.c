#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "afile.h"
#include "ctl.h"
#include "log.h"
#include "ops.h"

#include "banned.h"

#define UPLOAD_FILE_MAX (1u << 20)

/* Loads configuration and store, printing the configuration's diagnostics on failure. */
static int open_or_report(struct ops *o, const char *config_path)
{
	struct cs_diags d;
	char err[512];
	int r;

	cs_diags_init(&d);
	r = ops_open(o, config_path, &d, err, sizeof(err));
	if (r < 0) {
		cs_diags_print(&d, stderr);
		fprintf(stderr, "certsync: %s\n", err);
	}
	cs_diags_free(&d);
	return r;
}

int cmd_compile(const char *config_path, int argc, char **argv)
{
	struct ops o;
	struct compile_result r;
	struct apply_report rep;
	char err[512];
	size_t without = 0;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "certsync: compile takes no arguments\n");
		return 2;
	}
	if (open_or_report(&o, config_path) < 0)
		return 2;
	if (ops_sync(&o, time(NULL), false, &r, &rep, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsync: compile: %s\n", err);
		ops_close(&o);
		return 2;
	}
	for (size_t i = 0; i < r.n_hosts; i++)
		if (!r.hosts[i].cert)
			without++;
	printf("compiled %zu hostnames in %zu environments: %zu policies, generation %llu\n",
	       r.n_hosts, o.cfg->n_envs, r.n_policies, (unsigned long long)r.generation);
	for (size_t i = 0; i < r.n_hosts; i++)
		if (!r.hosts[i].cert)
			printf("  no certificate: %s (environment %s)\n", r.hosts[i].hostname,
			       r.hosts[i].env->name);
	if (without)
		printf("%zu of %zu hostnames have no valid certificate: see certsync status\n",
		       without, r.n_hosts);
	compile_result_free(&r);
	ops_close(&o);
	return 0;
}

static void print_table(json_t *arr)
{
	size_t i;
	json_t *h;

	printf("%-32s %-14s %-14s %-9s %-20s %5s %-11s %s\n", "HOSTNAME", "ENVIRONMENT", "MODE",
	       "SOURCE", "NOT AFTER", "DAYS", "HAPROXY", "SERIAL");
	json_array_foreach(arr, i, h)
	{
		json_t *c = json_object_get(h, "certificate");
		const char *serial = json_string_value(json_object_get(c, "serial"));
		const char *na = json_string_value(json_object_get(c, "not_after"));
		const char *err = json_string_value(json_object_get(h, "last_error"));
		char days[16] = "-";

		if (json_object_get(c, "days_left"))
			snprintf(days, sizeof(days), "%lld",
			         (long long)json_integer_value(json_object_get(c, "days_left")));
		printf("%-32s %-14s %-14s %-9s %-20s %5s %-11s %s\n",
		       json_string_value(json_object_get(h, "hostname")),
		       json_string_value(json_object_get(h, "environment")),
		       json_string_value(json_object_get(h, "mode")),
		       json_string_value(json_object_get(c, "source")), na ? na : "-", days,
		       json_string_value(json_object_get(h, "haproxy")), serial ? serial : "-");
		{
			const char *ck[] = {"delegation", "caa"};
			for (size_t k = 0; k < 2; k++) {
				json_t *c2 = json_object_get(h, ck[k]);
				const char *st = json_string_value(json_object_get(c2, "state"));
				const char *rec = json_string_value(json_object_get(c2, "record"));
				if (!st || strcmp(st, "not-applicable") == 0)
					continue;
				printf("    %s: %s%s%s\n", ck[k], st,
				       rec && rec[0] ? "; add: " : "", rec && rec[0] ? rec : "");
			}
			if (json_string_value(json_object_get(h, "next_renewal")))
				printf("    next renewal: %s\n",
				       json_string_value(json_object_get(h, "next_renewal")));
		}
		if (err)
			printf("    ! %s\n", err);
	}
}

int cmd_status(const char *config_path, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
	struct ops o;
	struct compile_result r;
	char err[512];
	int json = 0, c, *served = NULL;
	size_t problems = 0;
	json_t *arr;
	time_t now = time(NULL);

	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c != 'j') {
			fprintf(stderr, "usage: certsync -c FILE status [--json]\n");
			return 2;
		}
		json = 1;
	}
	if (open_or_report(&o, config_path) < 0)
		return 2;
	/* What the files say now (nothing is written), and what HAProxy serves. */
	if (compile_build(o.cfg, o.store, now, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsync: status: %s\n", err);
		ops_close(&o);
		return 2;
	}
	if (o.has_hapi) {
		served = calloc(r.n_hosts + 1, sizeof(*served));
		if (served)
			ops_served(&o, &r, served);
	}
	{
		struct sched_state acme = {0};
		char path[4096];
		sched_path(o.cfg->state_dir, path, sizeof(path));
		if (sched_load(path, &acme, err, sizeof(err)) < 0)
			fprintf(stderr, "certsync: status: %s (ACME state not shown)\n", err);
		arr = ops_status(&o, &r, served, &acme, now, &problems);
		sched_free(&acme);
	}
	if (json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
	} else {
		print_table(arr);
		printf("\n%zu hostnames, %zu with a problem\n", r.n_hosts, problems);
	}
	json_decref(arr);
	free(served);
	compile_result_free(&r);
	ops_close(&o);
	return problems ? 1 : 0;
}

/* Reads a file for an upload; key files are cleansed by the caller. */
static char *read_upload(const char *what, const char *path)
{
	uint8_t *p = NULL;
	size_t n;

	if (afile_read(path, UPLOAD_FILE_MAX, &p, &n) < 0) {
		fprintf(stderr, "certsync: upload: %s file %s: %s\n", what, path,
		        errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return NULL;
	}
	return (char *)p;
}

int cmd_upload(const char *config_path, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cert", required_argument, NULL, 'c'}, {"chain", required_argument, NULL, 'i'},
	    {"key", required_argument, NULL, 'k'},  {"network", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},       {NULL, 0, NULL, 0},
	};
	const char *certf = NULL, *chainf = NULL, *keyf = NULL, *network = NULL;
	char *cert = NULL, *chain = NULL, *key = NULL, err[512];
	struct cs_diags d;
	struct cs_config *cfg = NULL;
	json_t *req = NULL, *ans = NULL;
	int c, json = 0, ret = 2;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			certf = optarg;
			break;
		case 'i':
			chainf = optarg;
			break;
		case 'k':
			keyf = optarg;
			break;
		case 'n':
			network = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			goto usage;
		}
	}
	if (!certf || !keyf || optind < argc)
		goto usage;
	cs_diags_init(&d);
	if (cs_config_load(config_path, &cfg, &d) != 0) {
		cs_diags_print(&d, stderr);
		cs_diags_free(&d);
		return 2;
	}
	cs_diags_free(&d);
	if (!(cert = read_upload("certificate", certf)) ||
	    (chainf && !(chain = read_upload("chain", chainf))) ||
	    !(key = read_upload("key", keyf)))
		goto out;
	req = json_pack("{s:s,s:s,s:s,s:s}", "op", "upload", "cert", cert, "chain",
	                chain ? chain : "", "key", key);
	if (!req) {
		fprintf(stderr, "certsync: upload: the files are not text (PEM expected)\n");
		ret = 1;
		goto out;
	}
	if (network)
		json_object_set_new(req, "network", json_string(network));
	ans = ctl_call(cfg->state_dir, req, err, sizeof(err));
	if (!ans) {
		fprintf(stderr, "certsync: upload: %s\n", err);
		goto out;
	}
	if (json) {
		char *s = json_dumps(ans, JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
	}
	if (!json_is_true(json_object_get(ans, "ok"))) {
		if (!json)
			fprintf(stderr, "certsync: upload refused (%s): %s\n",
			        json_string_value(json_object_get(ans, "code")),
			        json_string_value(json_object_get(ans, "message")));
		ret = 1;
		goto out;
	}
	if (!json) {
		size_t i;
		json_t *h;
		printf("uploaded: certificate %s (serial %s) for network %s%s\n",
		       json_string_value(json_object_get(ans, "id")),
		       json_string_value(json_object_get(ans, "serial")),
		       json_string_value(json_object_get(ans, "network")),
		       json_is_true(json_object_get(ans, "already_stored")) ? " (already stored)"
		                                                            : "");
		json_array_foreach(json_object_get(ans, "covers"), i, h)
		    printf("  serves %s\n", json_string_value(h));
		json_array_foreach(json_object_get(ans, "preferred_elsewhere"), i, h)
		    printf("  does not serve %s: an exact or more recent certificate is "
		           "preferred there\n",
		           json_string_value(h));
		printf("  HAProxy: %s%s%s\n", json_string_value(json_object_get(ans, "haproxy")),
		       json_object_get(ans, "sync_error") ? ": " : "",
		       json_object_get(ans, "sync_error")
		           ? json_string_value(json_object_get(ans, "sync_error"))
		           : "");
	}
	ret = 0;
	goto out;
usage:
	fprintf(stderr, "usage: certsync -c FILE upload --cert F [--chain F] --key F "
	                "[--network NAME] [--json]\n");
	return 2;
out:
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	if (req) {
		/* jansson copied the key into the request. */
		json_t *k = json_object_get(req, "key");
		if (k && json_string_value(k))
			OPENSSL_cleanse((char *)json_string_value(k), json_string_length(k));
	}
	json_decref(req);
	json_decref(ans);
	free(cert);
	free(chain);
	cs_config_free(cfg);
	return ret;
}

int cmd_recheck(const char *config_path, int argc, char **argv)
{
	struct cs_diags d;
	struct cs_config *cfg = NULL;
	json_t *req = NULL, *ans = NULL;
	char err[512];
	int ret = 2, json = 0;
	const char *host = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!host)
			host = argv[i];
		else
			host = NULL, i = argc;
	}
	if (!host) {
		fprintf(stderr, "usage: certsync -c FILE recheck [--json] HOST\n");
		return 2;
	}
	cs_diags_init(&d);
	if (cs_config_load(config_path, &cfg, &d) != 0) {
		cs_diags_print(&d, stderr);
		cs_diags_free(&d);
		return 2;
	}
	cs_diags_free(&d);
	req = json_pack("{s:s,s:s}", "op", "recheck", "hostname", host);
	ans = req ? ctl_call(cfg->state_dir, req, err, sizeof(err)) : NULL;
	if (!ans) {
		fprintf(stderr, "certsync: recheck: %s\n", req ? err : "out of memory");
		goto out;
	}
	if (json) {
		char *s = json_dumps(ans, JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
	} else {
		const char *ck[] = {"delegation", "caa"};
		const char *code = json_string_value(json_object_get(ans, "code"));
		if (code) {
			fprintf(stderr, "certsync: recheck refused (%s): %s\n", code,
			        json_string_value(json_object_get(ans, "message")));
			ret = 1;
			goto out;
		}
		printf("%s\n", host);
		for (size_t k = 0; k < 2; k++) {
			json_t *c = json_object_get(ans, ck[k]);
			const char *rec = json_string_value(json_object_get(c, "record"));
			if (!c) {
				printf("  %-10s not checked\n", ck[k]);
				continue;
			}
			printf("  %-10s %s\n", ck[k],
			       json_string_value(json_object_get(c, "state")));
			if (rec && rec[0])
				printf("             add: %s\n", rec);
			if (rec && rec[0] && json_string_value(json_object_get(c, "message")))
				printf("             %s\n",
				       json_string_value(json_object_get(c, "message")));
		}
		if (json_is_true(json_object_get(ans, "ok")))
			printf("  issued     serial %s%s\n",
			       json_string_value(json_object_get(ans, "serial")),
			       json_is_true(json_object_get(ans, "resumed")) ? " (order resumed)"
			                                                     : "");
		else
			printf("  not issued (%s%s): %s\n",
			       json_string_value(json_object_get(ans, "error_class")),
			       json_is_true(json_object_get(ans, "ordered")) ? ", ordered"
			                                                     : ", nothing ordered",
			       json_string_value(json_object_get(ans, "error")));
	}
	ret = json_is_true(json_object_get(ans, "ok")) ? 0 : 1;
out:
	json_decref(req);
	json_decref(ans);
	cs_config_free(cfg);
	return ret;
}
