/*
 * dnsdrv: a certsync-independent driver of certsync's DNS modules (caa, delegation,
 * dnsupdate) for tests/e2e/dns_checks.sh. One command per run; results are printed as
 * key=value lines; the exit status is 0 when the command ran (whatever the verdict), 1 when
 * it failed (the error on stderr as "error=..."), 2 on usage errors.
 *
 *   dnsdrv caa IDENTIFIER                 env: DNS_RESOLVER, CAA_IDENTITIES (comma list,
 *                                         default letsencrypt.org), CAA_ACCOUNT
 *   dnsdrv delegation HOST [per-host|shared]   env: DNS_RESOLVER, DNS_VALIDATION_DOMAIN
 *   dnsdrv target HOST [per-host|shared]       env: DNS_VALIDATION_DOMAIN
 *   dnsdrv add NAME VALUE | delete NAME VALUE
 *   dnsdrv wait DEADLINE_MS NAME VALUE...
 *   dnsdrv sweep NAME...
 *   dnsdrv servers
 *       env for the last five: DNS_UPDATE_SERVER, DNS_TSIG_NAME, DNS_TSIG_ALG,
 *       DNS_TSIG_SECRET_FILE, DNS_VALIDATION_DOMAIN, DNS_AUTHORITATIVE (comma list,
 *       optional), DNS_RESOLVER (optional)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caa.h"
#include "config.h"
#include "delegation.h"
#include "dnsupdate.h"

#include "banned.h"

#define TIMEOUT_MS 3000
#define LIST_MAX   16

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Splits a comma list (modified in place) into at most LIST_MAX items. */
static size_t split(char *s, char **out)
{
	size_t n = 0;
	char *save = NULL, *tok;

	for (tok = strtok_r(s, ",", &save); tok && n < LIST_MAX; tok = strtok_r(NULL, ",", &save))
		out[n++] = tok;
	return n;
}

static enum cs_dns_layout layout_arg(int argc, char **argv, int i)
{
	return (argc > i && strcmp(argv[i], "shared") == 0) ? CS_DNS_LAYOUT_SHARED
	                                                    : CS_DNS_LAYOUT_PER_HOST;
}

static int cmd_caa(const char *ident)
{
	char ids_buf[512], err[256];
	char *ids[LIST_MAX];
	struct caa_params p;
	struct caa_result r;

	snprintf(ids_buf, sizeof(ids_buf), "%s",
	         env("CAA_IDENTITIES") ? env("CAA_IDENTITIES") : "letsencrypt.org");
	p.ca_identities = (const char *const *)ids;
	p.n_ca_identities = split(ids_buf, ids);
	p.account_uri = env("CAA_ACCOUNT");
	p.method = "dns-01";
	if (caa_check(env("DNS_RESOLVER"), TIMEOUT_MS, ident, &p, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "error=%s\n", err);
		return 1;
	}
	printf("verdict=%s\nfound_at=%s\nblocking=%s\nfix=%s\nmessage=%s\n",
	       caa_verdict_token(r.verdict), r.found_at, r.blocking, r.fix, r.message);
	return 0;
}

static int cmd_delegation(const char *host, enum cs_dns_layout layout)
{
	struct delegation_result r;
	char err[256];

	if (delegation_check(env("DNS_RESOLVER"), TIMEOUT_MS, host, layout,
	                     env("DNS_VALIDATION_DOMAIN"), &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "error=%s\n", err);
		return 1;
	}
	printf("outcome=%s\nname=%s\nexpected=%s\nfound=%s\nrecord=%s\nmessage=%s\n",
	       delegation_outcome_token(r.outcome), r.name, r.expected, r.found, r.record,
	       r.message);
	return 0;
}

static int cmd_update(int argc, char **argv)
{
	struct cs_dns dns = {0};
	struct dnsupdate *u = NULL;
	char auth_buf[1024], err[1024];
	char *auth[LIST_MAX];
	int ret = 1;

	dns.present = true;
	dns.resolver = (char *)env("DNS_RESOLVER");
	dns.validation_domain = (char *)env("DNS_VALIDATION_DOMAIN");
	dns.update_server = (char *)env("DNS_UPDATE_SERVER");
	dns.tsig_name = (char *)env("DNS_TSIG_NAME");
	dns.tsig_algorithm = (char *)(env("DNS_TSIG_ALG") ? env("DNS_TSIG_ALG") : "hmac-sha256");
	dns.tsig_secret_file = (char *)env("DNS_TSIG_SECRET_FILE");
	if (env("DNS_AUTHORITATIVE")) {
		snprintf(auth_buf, sizeof(auth_buf), "%s", env("DNS_AUTHORITATIVE"));
		dns.n_authoritative = split(auth_buf, auth);
		dns.authoritative = auth;
	}
	if (dnsupdate_open(&dns, TIMEOUT_MS, &u, err, sizeof(err)) != 0) {
		fprintf(stderr, "error=%s\n", err);
		return 1;
	}
	printf("zone=%s\n", dnsupdate_zone(u));
	if (strcmp(argv[1], "add") == 0 && argc == 4) {
		if (dnsupdate_add_txt(u, argv[2], argv[3], err, sizeof(err)) != 0)
			goto fail;
	} else if (strcmp(argv[1], "delete") == 0 && argc == 4) {
		if (dnsupdate_delete_txt(u, argv[2], argv[3], err, sizeof(err)) != 0)
			goto fail;
	} else if (strcmp(argv[1], "wait") == 0 && argc >= 5) {
		if (dnsupdate_wait(u, argv[3], (const char *const *)argv + 4, (size_t)(argc - 4),
		                   (int)strtol(argv[2], NULL, 10), 200, err, sizeof(err)) != 0)
			goto fail;
	} else if (strcmp(argv[1], "sweep") == 0 && argc >= 3) {
		struct dnsupdate_txt *v = NULL;
		size_t n = 0;
		if (dnsupdate_sweep(u, (const char *const *)argv + 2, (size_t)(argc - 2), &v, &n,
		                    err, sizeof(err)) != 0)
			goto fail;
		for (size_t i = 0; i < n; i++)
			printf("txt=%s %s\n", v[i].name, v[i].value);
		dnsupdate_txt_free(v, n);
	} else if (strcmp(argv[1], "servers") == 0) {
		const char *const *s;
		size_t n = dnsupdate_servers(u, &s);
		for (size_t i = 0; i < n; i++)
			printf("server=%s\n", s[i]);
	} else {
		fprintf(stderr, "usage: see the comment at the top of tests/e2e/dnsdrv.c\n");
		ret = 2;
		goto out;
	}
	printf("result=ok\n");
	ret = 0;
	goto out;
fail:
	fprintf(stderr, "error=%s\n", err);
out:
	dnsupdate_close(u);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "caa") == 0)
		return cmd_caa(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "delegation") == 0)
		return cmd_delegation(argv[2], layout_arg(argc, argv, 3));
	if (argc >= 3 && strcmp(argv[1], "target") == 0) {
		char buf[DELEGATION_NAME_MAX], rec[2 * DELEGATION_NAME_MAX + 16];
		if (delegation_target(argv[2], layout_arg(argc, argv, 3),
		                      env("DNS_VALIDATION_DOMAIN"), buf, sizeof(buf)) != 0 ||
		    delegation_record(argv[2], layout_arg(argc, argv, 3),
		                      env("DNS_VALIDATION_DOMAIN"), rec, sizeof(rec)) != 0) {
			fprintf(stderr, "error=invalid host or DNS_VALIDATION_DOMAIN\n");
			return 1;
		}
		printf("target=%s\nrecord=%s\n", buf, rec);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "delete") == 0 ||
	                  strcmp(argv[1], "wait") == 0 || strcmp(argv[1], "sweep") == 0 ||
	                  strcmp(argv[1], "servers") == 0))
		return cmd_update(argc, argv);
	fprintf(stderr, "usage: see the comment at the top of tests/e2e/dnsdrv.c\n");
	return 2;
}
