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

#include <sys/stat.h>
#include <time.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "mtls.h"
#include "promhttp.h"
#include "pset.h"
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
	    "                 [--max-frame-size N] [--cache-entries N] [--log-level LEVEL]\n"
	    "\n"
	    "The edgetls SPOE agent: HAProxy sends it one SPOP NOTIFY per TLS connection\n"
	    "(message \"mtls\") and applies the verdict and header variables it answers.\n"
	    "\n"
	    "  -l, --listen ADDR        where HAProxy connects: HOST:PORT, [IPv6]:PORT, unix:PATH\n"
	    "  -t, --threads N          worker threads, one event loop each (default: CPUs)\n"
	    "  -m, --metrics ADDR       serve Prometheus metrics on http://ADDR/metrics\n"
	    "  -p, --policy FILE        the policy snapshot written by `certsync compile`;\n"
	    "                           reloaded when the file is replaced and on SIGHUP.\n"
	    "                           Without it every hostname is answered as disabled.\n"
	    "      --max-frame-size N   largest SPOP frame to negotiate, 256..%u (default %u)\n"
	    "      --cache-entries N    verdicts cached per worker thread (default %u, 0: none)\n"
	    "      --log-level LEVEL    debug, info, warn or error (default info)\n"
	    "  -h, --help               this text\n"
	    "  -V, --version            the version\n"
	    "\n"
	    "Logs go to stderr, one key=value line per event. SIGTERM or SIGINT stops\n"
	    "gracefully: pending NOTIFYs are answered, each connection gets an\n"
	    "AGENT-DISCONNECT, no new connection is accepted.\n",
	    SERVER_MAX_FRAME_LIMIT, SPOP_MAX_FRAME_SIZE, MTLS_CACHE_DEFAULT);
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

#define POLICY_POLL_MS 250 /* DESIGN §3: a new snapshot is adopted within 1 s */

static _Atomic uint64_t reload_failures;

static char *render(void *arg, size_t *len)
{
	struct server *s = arg;
	struct agent_stats *blocks[256];
	struct mtls_stats *mblocks[256];
	unsigned n = server_workers(s);
	struct pset *ps = pset_current();
	size_t l1 = 0, l2 = 0;
	char *a, *b, *out = NULL;

	for (unsigned i = 0; i < n; i++) {
		blocks[i] = server_stats(s, i);
		mblocks[i] = mtls_worker_stats(server_handler_ctx(s, i));
	}
	a = metrics_render(blocks, n, &l1);
	b = metrics_render_policy(mblocks, n, ps, atomic_load(&reload_failures), &l2);
	pset_release(ps);
	if (a && b && (out = malloc(l1 + l2 + 1)) != NULL) {
		memcpy(out, a, l1);
		memcpy(out + l1, b, l2);
		out[l1 + l2] = '\0';
		*len = l1 + l2;
	}
	free(a);
	free(b);
	return out;
}

/* What identifies a version of the snapshot file: replaced files get a new inode. */
struct fstamp {
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int exists;
};

static struct fstamp stamp(const char *path)
{
	struct stat st;
	struct fstamp f = {0};

	if (stat(path, &st) == 0)
		f = (struct fstamp){st.st_ino, st.st_size, st.st_mtim, 1};
	return f;
}

static int same_stamp(const struct fstamp *a, const struct fstamp *b)
{
	return a->exists == b->exists && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Loads the snapshot and makes it current; on failure the current one keeps serving. */
static int load_policy(const char *path)
{
	struct pset *old = pset_current(), *ps = NULL;
	char err[512];
	int r = pset_load(path, old, &ps, err, sizeof(err));

	if (r < 0) {
		atomic_fetch_add(&reload_failures, 1);
		log_msg(LOG_ERROR, "event=policy_refused file=%s reason=\"%s\" action=\"%s\"", path,
		        err, old ? "keeping the loaded policy" : "none loaded");
	} else {
		log_msg(LOG_INFO, "event=policy_loaded file=%s generation=%llu policies=%zu", path,
		        (unsigned long long)pset_generation(ps), pset_count(ps));
		pset_publish(ps);
	}
	pset_release(old);
	return r;
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
	    {"cache-entries", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct server_config cfg = {.frame_size = SPOP_MAX_FRAME_SIZE,
	                            .drain_seconds = 5.0,
	                            .cache_entries = MTLS_CACHE_DEFAULT};
	const char *listen = NULL, *metrics = NULL, *policy = NULL;
	struct server *srv = NULL;
	struct promhttp *prom = NULL;
	struct addr maddr;
	enum log_level level;
	unsigned long v;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char err[256];
	sigset_t sigs;
	struct fstamp pstamp = {0};
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
		case 'C':
			if (parse_uint(optarg, 0, 1u << 20, &v) < 0) {
				fprintf(stderr,
				        "spoa-mtls: --cache-entries wants 0..1048576, got \"%s\"\n",
				        optarg);
				return 2;
			}
			cfg.cache_entries = (size_t)v;
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

	/* Workers inherit this mask: only this thread takes the signals, in sigwait(). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_msg(LOG_INFO, "event=start version=%s pid=%ld", EDGETLS_VERSION, (long)getpid());
	/* No policy at all would answer every hostname as disabled, required ones included:
	 * refuse to start instead (nothing listens, so HAProxy's fail-closed rules apply). */
	if (policy) {
		pstamp = stamp(policy);
		if (load_policy(policy) < 0) {
			fprintf(stderr, "spoa-mtls: --policy %s: cannot be loaded (see the log)\n",
			        policy);
			return 1;
		}
	} else {
		log_msg(LOG_WARN, "event=no_policy action=\"every hostname is answered as "
		                  "disabled\"");
	}
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
		struct timespec tick = {0, POLICY_POLL_MS * 1000000L};
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGHUP) {
			log_msg(LOG_INFO, "event=sighup action=%s", policy ? "reload" : "none");
			if (policy) {
				pstamp = stamp(policy);
				(void)load_policy(policy);
			}
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
		/* The snapshot is replaced by rename: a new inode means a new file. */
		if (policy) {
			struct fstamp now = stamp(policy);
			if (now.exists && !same_stamp(&now, &pstamp)) {
				pstamp = now;
				(void)load_policy(policy);
			}
		}
	}
	log_msg(LOG_INFO, "event=stopping signal=%s", sig == SIGTERM ? "TERM" : "INT");
	server_stop(srv);
	promhttp_stop(prom);
	server_free(srv);
	pset_publish(NULL);
	log_msg(LOG_INFO, "event=stopped");
	return 0;
}
