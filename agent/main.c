/*
 * spoa-mtls: the SPOE agent HAProxy asks, once per TLS connection, for the mTLS verdict.
 * This file owns the command line, signals and the lifetime of the server and metrics.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "promhttp.h"
#include "server.h"

#include "banned.h"

#ifndef EDGETLS_VERSION
#define EDGETLS_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: spoa-mtls --listen ADDR [--threads N] [--metrics ADDR] [--policy FILE]\n"
	    "                 [--max-frame-size N] [--log-level LEVEL]\n"
	    "\n"
	    "The edgetls SPOE agent: HAProxy sends it one SPOP NOTIFY per TLS connection\n"
	    "(message \"mtls\") and applies the verdict and header variables it answers.\n"
	    "\n"
	    "  -l, --listen ADDR        where HAProxy connects: HOST:PORT, [IPv6]:PORT, unix:PATH\n"
	    "  -t, --threads N          worker threads, one event loop each (default: CPUs)\n"
	    "  -m, --metrics ADDR       serve Prometheus metrics on http://ADDR/metrics\n"
	    "  -p, --policy FILE        the policy snapshot written by `certsync compile`\n"
	    "      --max-frame-size N   largest SPOP frame to negotiate, 256..%u (default %u)\n"
	    "      --log-level LEVEL    debug, info, warn or error (default info)\n"
	    "  -h, --help               this text\n"
	    "  -V, --version            the version\n"
	    "\n"
	    "Logs go to stderr, one key=value line per event. SIGTERM or SIGINT stops\n"
	    "gracefully: pending NOTIFYs are answered, each connection gets an\n"
	    "AGENT-DISCONNECT, no new connection is accepted.\n",
	    SERVER_MAX_FRAME_LIMIT, SPOP_MAX_FRAME_SIZE);
}

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static char *render(void *arg, size_t *len)
{
	struct server *s = arg;
	struct agent_stats *blocks[256];
	unsigned n = server_workers(s);

	for (unsigned i = 0; i < n; i++)
		blocks[i] = server_stats(s, i);
	return metrics_render(blocks, n, len);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"threads", required_argument, NULL, 't'},
	    {"metrics", required_argument, NULL, 'm'},
	    {"policy", required_argument, NULL, 'p'},
	    {"max-frame-size", required_argument, NULL, 'F'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct server_config cfg = {.frame_size = SPOP_MAX_FRAME_SIZE, .drain_seconds = 5.0};
	const char *listen = NULL, *metrics = NULL, *policy = NULL;
	struct server *srv = NULL;
	struct promhttp *prom = NULL;
	struct addr maddr;
	enum log_level level;
	unsigned long v;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char err[256];
	sigset_t sigs;
	int c, sig;

	log_set_prog("spoa-mtls");
	cfg.threads = ncpu > 0 ? (unsigned)ncpu : 1;
	while ((c = getopt_long(argc, argv, "l:t:m:p:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 't':
			if (parse_uint(optarg, 1, 256, &v) < 0) {
				fprintf(stderr, "spoa-mtls: --threads wants 1..256, got \"%s\"\n",
				        optarg);
				return 2;
			}
			cfg.threads = (unsigned)v;
			break;
		case 'm':
			metrics = optarg;
			break;
		case 'p':
			policy = optarg;
			break;
		case 'F':
			if (parse_uint(optarg, SPOP_MIN_FRAME_SIZE, SERVER_MAX_FRAME_LIMIT, &v) <
			    0) {
				fprintf(stderr,
				        "spoa-mtls: --max-frame-size wants %u..%u, got \"%s\"\n",
				        SPOP_MIN_FRAME_SIZE, SERVER_MAX_FRAME_LIMIT, optarg);
				return 2;
			}
			cfg.frame_size = (uint32_t)v;
			break;
		case 'L':
			if (log_parse_level(optarg, &level) < 0) {
				fprintf(stderr,
				        "spoa-mtls: --log-level wants debug, info, warn or "
				        "error, got \"%s\"\n",
				        optarg);
				return 2;
			}
			log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("spoa-mtls %s\n", EDGETLS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !listen) {
		fprintf(stderr, "spoa-mtls: %s\n",
		        listen ? "unexpected argument" : "--listen ADDR is required");
		usage(stderr);
		return 2;
	}
	if (addr_parse(listen, &cfg.listen, err, sizeof(err)) < 0) {
		fprintf(stderr, "spoa-mtls: --listen: %s\n", err);
		return 2;
	}
	if (metrics && addr_parse(metrics, &maddr, err, sizeof(err)) < 0) {
		fprintf(stderr, "spoa-mtls: --metrics: %s\n", err);
		return 2;
	}
	if (policy && access(policy, R_OK) != 0) {
		fprintf(stderr, "spoa-mtls: --policy %s: %s\n", policy, strerror(errno));
		return 2;
	}

	/* Workers inherit this mask: only this thread takes the signals, in sigwait(). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_msg(LOG_INFO, "event=start version=%s pid=%ld", EDGETLS_VERSION, (long)getpid());
	if (policy)
		log_msg(LOG_INFO,
		        "event=policy file=%s mode=disabled-for-all "
		        "reason=\"no policy evaluator in this version\"",
		        policy);
	if (server_start(&srv, &cfg) < 0)
		return 1;
	if (metrics) {
		if (promhttp_start(&prom, &maddr, render, srv) < 0) {
			log_msg(LOG_ERROR, "event=metrics_failed addr=%s", metrics);
			server_stop(srv);
			server_free(srv);
			return 1;
		}
		log_msg(LOG_INFO, "event=metrics_listen addr=%s", metrics);
	}
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_msg(LOG_INFO, "event=sighup action=none");
			continue;
		}
		break;
	}
	log_msg(LOG_INFO, "event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
	server_stop(srv);
	promhttp_stop(prom);
	server_free(srv);
	log_msg(LOG_INFO, "event=stopped");
	return 0;
}
