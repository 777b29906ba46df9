/*
 * mtls-verify: the raw baseline of DESIGN §5's cache-miss target — how many client chains
 * one thread verifies per second with plain X509_verify_cert, with the same checks the
 * agent's evaluator asks of OpenSSL (agent/eval.c, verify()).
 *
 *   mtls-verify --cert LEAF.der [--chain CHAIN.der] --ca ANCHORS.pem [--duration S]
 *               [--mode raw|parse|eval] [--depth N]
 *
 * raw (the baseline): leaf and chain parsed once; each iteration is an X509_STORE_CTX
 *   set up as eval.c does (store of every --ca certificate, the chain as untrusted, purpose
 *   sslclient, X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN, an explicit time,
 *   OpenSSL depth EVAL_MAX_CHAIN_CERTS + 2, a callback that records and goes on), then
 *   X509_verify_cert, then the context freed.
 * parse: the same, with the leaf and chain DER parsed again on every iteration, as the
 *   agent must (it receives DER in each NOTIFY).
 * eval: the agent's evaluator itself, eval_run (parse, verify, post-checks), under mode
 *   optional and --depth (default 2), with the trust built by eval_trust_new.
 * parse and eval break the agent's cache-miss cost down: protocol and headers aside, what
 * is left of the gap to raw is parsing and the evaluator's own checks.
 *
 * The chain must verify (no error at all): a benchmark of a failing path would measure
 * something else. Output: one key=value line; exit 1 on a verification error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "eval.h"

#include "banned.h"

#define MAX_DER_FILE (64 * 1024)
#define MAX_ANCHORS  64

enum mode { M_RAW, M_PARSE, M_EVAL };

struct input {
	uint8_t *leaf, *chain;
	size_t leaf_len, chain_len;
	X509_STORE *store;
	STACK_OF(X509) * anchors;
	unsigned depth;
	time_t now;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int read_file(const char *path, uint8_t **out, size_t *outlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n;
	int ret = -1;

	if (!f) {
		fprintf(stderr, "mtls-verify: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (!(buf = malloc(MAX_DER_FILE + 1)))
		goto out;
	n = fread(buf, 1, MAX_DER_FILE + 1, f);
	if (ferror(f) || n == 0 || n > MAX_DER_FILE) {
		fprintf(stderr, "mtls-verify: %s: unreadable, empty or over 64 KiB\n", path);
		goto out;
	}
	*out = buf;
	*outlen = n;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	if (f)
		fclose(f);
	return ret;
}

/* Every certificate of a PEM file into the store and the list. */
static int load_anchors(const char *path, struct input *in)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	int ret = -1;

	if (!f) {
		fprintf(stderr, "mtls-verify: %s: %s\n", path, strerror(errno));
		return -1;
	}
	in->store = X509_STORE_new();
	in->anchors = sk_X509_new_null();
	if (!in->store || !in->anchors)
		goto out;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_num(in->anchors) >= MAX_ANCHORS || !X509_STORE_add_cert(in->store, x) ||
		    !sk_X509_push(in->anchors, x)) {
			X509_free(x);
			goto out;
		}
	}
	ERR_clear_error(); /* the end of the file reads as an error */
	if (sk_X509_num(in->anchors) == 0) {
		fprintf(stderr, "mtls-verify: %s: no PEM certificate\n", path);
		goto out;
	}
	ret = 0;
out:
	fclose(f);
	return ret;
}

static int parse_certs(const struct input *in, X509 **leaf, STACK_OF(X509) * *chain)
{
	const unsigned char *p = in->leaf, *end;

	*chain = NULL;
	if (!(*leaf = d2i_X509(NULL, &p, (long)in->leaf_len)))
		return -1;
	if (!(*chain = sk_X509_new_null()))
		return -1;
	p = in->chain;
	end = in->chain + in->chain_len;
	while (in->chain && p < end) {
		X509 *x = d2i_X509(NULL, &p, end - p);
		if (!x || !sk_X509_push(*chain, x)) {
			X509_free(x);
			return -1;
		}
	}
	return 0;
}

static void free_certs(X509 *leaf, STACK_OF(X509) * chain)
{
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
}

/* eval.c's callback: note the error, always go on. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	unsigned *nerr = X509_STORE_CTX_get_app_data(ctx);

	if (!ok) {
		if (*nerr == 0)
			fprintf(stderr, "mtls-verify: verification error at depth %d: %s\n",
			        X509_STORE_CTX_get_error_depth(ctx),
			        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		(*nerr)++;
	}
	return 1;
}

/* One verification as eval.c's verify() sets it up; the number of errors, -1 on a
 * library failure. */
static int verify_once(const struct input *in, X509 *leaf, STACK_OF(X509) * chain)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	unsigned nerr = 0;
	int ret = -1;

	if (!ctx || !X509_STORE_CTX_init(ctx, in->store, leaf, chain) ||
	    !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) ||
	    !X509_STORE_CTX_set_app_data(ctx, &nerr))
		goto out;
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	param = X509_STORE_CTX_get0_param(ctx);
	if (!X509_VERIFY_PARAM_set_flags(param,
	                                 X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN))
		goto out;
	X509_VERIFY_PARAM_set_time(param, in->now);
	X509_VERIFY_PARAM_set_depth(param, EVAL_MAX_CHAIN_CERTS + 2);
	if (X509_verify_cert(ctx) != 1)
		goto out;
	ret = (int)nerr;
out:
	X509_STORE_CTX_free(ctx);
	return ret;
}

/* One iteration of the chosen mode; the number of errors, -1 on a failure. */
static int iteration(const struct input *in, enum mode mode, X509 *leaf, STACK_OF(X509) * chain,
                     const struct eval_trust *trust)
{
	struct eval_result res;
	int r;

	switch (mode) {
	case M_RAW:
		return verify_once(in, leaf, chain);
	case M_PARSE:
		leaf = NULL;
		chain = NULL;
		r = parse_certs(in, &leaf, &chain) < 0 ? -1 : verify_once(in, leaf, chain);
		free_certs(leaf, chain);
		return r;
	default:
		if (eval_run(trust, EDGETLS__MODE__MODE_OPTIONAL, in->depth, in->leaf, in->leaf_len,
		             in->chain, in->chain_len, NULL, in->now, &res) < 0)
			return -1;
		r = (int)res.nerr;
		if (res.cls != EVAL_LENIENT || res.nerr) {
			fprintf(stderr, "mtls-verify: eval_run: %s (%s, %zu error(s))\n",
			        eval_class_name(res.cls), res.reason ? res.reason : "-", res.nerr);
			r = r ? r : 1;
		}
		eval_result_clear(&res);
		return r;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mtls-verify --cert LEAF.der [--chain CHAIN.der] --ca ANCHORS.pem\n"
	           "                   [--duration SECONDS] [--mode raw|parse|eval] [--depth N]\n"
	           "\n"
	           "Verifies the same client chain in a loop on one thread for SECONDS and prints\n"
	           "verifications per second (raw: X509_verify_cert with the evaluator's flags;\n"
	           "parse: with the DER parsed each time; eval: the agent's eval_run).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cert", required_argument, NULL, 'C'}, {"chain", required_argument, NULL, 'H'},
	    {"ca", required_argument, NULL, 'A'},   {"duration", required_argument, NULL, 'd'},
	    {"mode", required_argument, NULL, 'm'}, {"depth", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	const char *cert = NULL, *chainf = NULL, *ca = NULL, *mode_name = "raw";
	struct input in = {.depth = 2};
	struct eval_trust *trust = NULL;
	ProtobufCBinaryData *ders = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	enum mode mode = M_RAW;
	double duration = 5.0;
	uint64_t n = 0, t0, t1, deadline;
	char err[256], *end;
	int c, r, ret = 2;

	while ((c = getopt_long(argc, argv, "d:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'C':
			cert = optarg;
			break;
		case 'H':
			chainf = optarg;
			break;
		case 'A':
			ca = optarg;
			break;
		case 'd':
			errno = 0;
			duration = strtod(optarg, &end);
			if (errno || *end || !(duration > 0.0) || duration > 3600.0)
				goto bad;
			break;
		case 'k': {
			unsigned long v;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || v > 64)
				goto bad;
			in.depth = (unsigned)v;
			break;
		}
		case 'm':
			mode_name = optarg;
			if (strcmp(optarg, "raw") == 0)
				mode = M_RAW;
			else if (strcmp(optarg, "parse") == 0)
				mode = M_PARSE;
			else if (strcmp(optarg, "eval") == 0)
				mode = M_EVAL;
			else
				goto bad;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !cert || !ca) {
		usage(stderr);
		return 2;
	}
	ret = 1;
	if (read_file(cert, &in.leaf, &in.leaf_len) < 0 ||
	    (chainf && read_file(chainf, &in.chain, &in.chain_len) < 0) ||
	    load_anchors(ca, &in) < 0)
		goto out;
	in.now = time(NULL);
	if (parse_certs(&in, &leaf, &chain) < 0) {
		fprintf(stderr, "mtls-verify: the leaf or the chain is not DER\n");
		goto out;
	}
	if (mode == M_EVAL) {
		int na = sk_X509_num(in.anchors);

		if (!(ders = calloc((size_t)na, sizeof(*ders))))
			goto out;
		for (int i = 0; i < na; i++) {
			unsigned char *p = NULL;
			int len = i2d_X509(sk_X509_value(in.anchors, i), &p);
			if (len <= 0)
				goto out;
			ders[i].data = p;
			ders[i].len = (size_t)len;
		}
		if (eval_trust_new(ders, (size_t)na, NULL, 0, &trust, err, sizeof(err)) < 0) {
			fprintf(stderr, "mtls-verify: eval_trust_new: %s\n", err);
			goto out;
		}
	}
	/* The chain must verify before it is measured. */
	r = iteration(&in, mode, leaf, chain, trust);
	if (r != 0) {
		fprintf(stderr, "mtls-verify: the chain does not verify cleanly (%d)\n", r);
		goto out;
	}
	t0 = now_ns();
	deadline = t0 + (uint64_t)(duration * 1e9);
	do {
		/* The clock is read every 16 verifications: each takes tens of microseconds. */
		for (int i = 0; i < 16; i++) {
			if (iteration(&in, mode, leaf, chain, trust) != 0) {
				fprintf(stderr,
				        "mtls-verify: a verification failed during the run\n");
				goto out;
			}
		}
		n += 16;
		t1 = now_ns();
	} while (t1 < deadline);
	printf("mode=%s verifications=%" PRIu64 " duration_s=%.3f rate=%.0f/s us_per_verify=%.2f "
	       "errors=0\n",
	       mode_name, n, (double)(t1 - t0) / 1e9, (double)n / ((double)(t1 - t0) / 1e9),
	       (double)(t1 - t0) / 1e3 / (double)n);
	ret = 0;
	goto out;
bad:
	fprintf(stderr, "mtls-verify: bad value \"%s\"\n", optarg);
	return 2;
out:
	if (ders) {
		for (int i = 0; in.anchors && i < sk_X509_num(in.anchors); i++)
			OPENSSL_free(ders[i].data);
		free(ders);
	}
	eval_trust_free(trust);
	free_certs(leaf, chain);
	X509_STORE_free(in.store);
	sk_X509_pop_free(in.anchors, X509_free);
	free(in.leaf);
	free(in.chain);
	return ret;
}
