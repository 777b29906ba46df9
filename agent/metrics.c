#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "eval.h"
#include "mtls.h"
#include "pset.h"

#include "banned.h"

#ifndef EDGETLS_VERSION
#define EDGETLS_VERSION "unknown"
#endif

static const char *const frame_in_names[SF_IN_COUNT] = {"haproxy-hello", "haproxy-disconnect",
                                                        "notify", "other"};
static const char *const frame_out_names[SF_OUT_COUNT] = {"agent-hello", "agent-disconnect", "ack"};

#define SUM(field) sum_of((void *const *)blocks, n, offsetof(struct agent_stats, field))

/* The sum of one counter (at byte offset off) over per-worker blocks of any stats type. */
static uint64_t sum_of(void *const *blocks, unsigned n, size_t off)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < n; i++)
		t += stat_get((stat_t *)((char *)blocks[i] + off));
	return t;
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void status_series(FILE *f, const char *name, struct agent_stats *const *blocks, unsigned n,
                          size_t off)
{
	for (unsigned st = 0; st <= SPOP_ST_COUNT; st++) {
		uint64_t v = sum_of((void *const *)blocks, n, off + st * sizeof(stat_t));
		if (st < SPOP_ST_COUNT)
			fprintf(f, "%s{status=\"%u\"} %llu\n", name, st, (unsigned long long)v);
		else
			fprintf(f, "%s{status=\"other\"} %llu\n", name, (unsigned long long)v);
	}
}

/* A latency histogram over per-worker blocks of any stats type: STAT_LAT_BUCKETS + 1
 * counters from byte offset buckets_off (the last one is +Inf), nanoseconds at sum_off. */
static void histogram(FILE *f, const char *name, const char *help, void *const *blocks, unsigned n,
                      size_t buckets_off, size_t sum_off)
{
	uint64_t cum = 0;

	head(f, name, "histogram", help);
	for (unsigned i = 0; i <= STAT_LAT_BUCKETS; i++) {
		cum += sum_of(blocks, n, buckets_off + i * sizeof(stat_t));
		if (i < STAT_LAT_BUCKETS)
			fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, stat_lat_bounds[i],
			        (unsigned long long)cum);
		else
			fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	fprintf(f, "%s_sum %.9f\n", name, (double)sum_of(blocks, n, sum_off) / 1e9);
	/* The count is the +Inf bucket, read once, so the two always agree. */
	fprintf(f, "%s_count %llu\n", name, (unsigned long long)cum);
}

char *metrics_render(struct agent_stats *const *blocks, unsigned n, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	uint64_t opened, closed;

	if (!f)
		return NULL;
	head(f, "spoa_mtls_build_info", "gauge", "Version of the running spoa-mtls.");
	fprintf(f, "spoa_mtls_build_info{version=\"%s\"} 1\n", EDGETLS_VERSION);
	head(f, "spoa_mtls_worker_threads", "gauge", "Worker threads, one event loop each.");
	fprintf(f, "spoa_mtls_worker_threads %u\n", n);

	opened = SUM(conn_opened);
	closed = SUM(conn_closed);
	head(f, "spoa_mtls_connections", "gauge", "SPOP connections open now.");
	fprintf(f, "spoa_mtls_connections %llu\n",
	        (unsigned long long)(opened >= closed ? opened - closed : 0));
	head(f, "spoa_mtls_connections_total", "counter", "SPOP connections accepted.");
	fprintf(f, "spoa_mtls_connections_total %llu\n", (unsigned long long)opened);
	head(f, "spoa_mtls_health_checks_total", "counter",
	     "Health-check HELLOs answered (option spop-check).");
	fprintf(f, "spoa_mtls_health_checks_total %llu\n", (unsigned long long)SUM(healthchecks));

	head(f, "spoa_mtls_frames_received_total", "counter", "SPOP frames received, by type.");
	for (unsigned i = 0; i < SF_IN_COUNT; i++)
		fprintf(f, "spoa_mtls_frames_received_total{type=\"%s\"} %llu\n", frame_in_names[i],
		        (unsigned long long)SUM(frames_in[i]));
	head(f, "spoa_mtls_frames_sent_total", "counter", "SPOP frames sent, by type.");
	for (unsigned i = 0; i < SF_OUT_COUNT; i++)
		fprintf(f, "spoa_mtls_frames_sent_total{type=\"%s\"} %llu\n", frame_out_names[i],
		        (unsigned long long)SUM(frames_out[i]));

	head(f, "spoa_mtls_notify_processed_total", "counter",
	     "NOTIFY frames answered with an ACK.");
	fprintf(f, "spoa_mtls_notify_processed_total %llu\n",
	        (unsigned long long)SUM(notify_processed));
	head(f, "spoa_mtls_messages_unknown_total", "counter",
	     "NOTIFY messages with no handler (answered with no variable).");
	fprintf(f, "spoa_mtls_messages_unknown_total %llu\n",
	        (unsigned long long)SUM(messages_unknown));
	head(f, "spoa_mtls_ack_too_big_total", "counter",
	     "ACKs whose actions exceeded the negotiated frame size (answered without them).");
	fprintf(f, "spoa_mtls_ack_too_big_total %llu\n", (unsigned long long)SUM(ack_too_big));

	head(f, "spoa_mtls_disconnects_sent_total", "counter",
	     "AGENT-DISCONNECT frames sent, by SPOP status code (0 is a normal close).");
	status_series(f, "spoa_mtls_disconnects_sent_total", blocks, n,
	              offsetof(struct agent_stats, disco_sent));
	head(f, "spoa_mtls_disconnects_received_total", "counter",
	     "HAPROXY-DISCONNECT frames received, by SPOP status code.");
	status_series(f, "spoa_mtls_disconnects_received_total", blocks, n,
	              offsetof(struct agent_stats, disco_received));

	histogram(f, "spoa_mtls_processing_seconds",
	          "Time from a decoded NOTIFY to its encoded ACK.", (void *const *)blocks, n,
	          offsetof(struct agent_stats, lat_bucket),
	          offsetof(struct agent_stats, lat_sum_ns));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

#define MSUM(field) sum_of((void *const *)blocks, n, offsetof(struct mtls_stats, field))

static const char *const class_names[PC_COUNT] = {"none", "success", "lenient", "failed"};
static const char *const verdict_names[PV_COUNT] = {"allow", "deny", "reject"};
static const char *const mode_names[] = {"disabled", "required", "optional", "optional-no-ca",
                                         "permissive"};

char *metrics_render_policy(struct mtls_stats *const *blocks, unsigned n, const struct pset *ps,
                            uint64_t reload_failures, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	head(f, "spoa_mtls_policy_loaded", "gauge", "1 when a policy snapshot is loaded.");
	fprintf(f, "spoa_mtls_policy_loaded %d\n", ps ? 1 : 0);
	head(f, "spoa_mtls_policy_generation", "gauge", "Generation of the loaded snapshot.");
	fprintf(f, "spoa_mtls_policy_generation %llu\n", (unsigned long long)pset_generation(ps));
	head(f, "spoa_mtls_policy_reload_failures_total", "counter",
	     "Snapshots refused (corrupt, incompatible): the previous one kept serving.");
	fprintf(f, "spoa_mtls_policy_reload_failures_total %llu\n",
	        (unsigned long long)reload_failures);
	head(f, "spoa_mtls_verdicts_total", "counter",
	     "Verdicts, one per TLS connection, by policy, mode, result class and verdict.");
	for (size_t i = 0; i < pset_count(ps); i++) {
		const struct pset_policy *p = pset_at(ps, i);
		const char *mode = (unsigned)p->p->mode < 5 ? mode_names[p->p->mode] : "unknown";
		for (int c = 0; c < PC_COUNT; c++)
			for (int v = 0; v < PV_COUNT; v++) {
				uint64_t x = atomic_load_explicit(
				    (_Atomic uint64_t *)&p->verdicts[c][v], memory_order_relaxed);
				if (x)
					fprintf(
					    f,
					    "spoa_mtls_verdicts_total{policy=\"%s\",mode=\"%s\","
					    "class=\"%s\",verdict=\"%s\"} %llu\n",
					    p->p->id, mode, class_names[c], verdict_names[v],
					    (unsigned long long)x);
			}
	}
	fprintf(f,
	        "spoa_mtls_verdicts_total{policy=\"disabled\",mode=\"disabled\",class=\"none\","
	        "verdict=\"allow\"} %llu\n",
	        (unsigned long long)MSUM(no_policy));
	head(f, "spoa_mtls_failures_total", "counter",
	     "Failed validations by primary reason (the FAILED:<reason> token).");
	for (int r = 1; r < EVAL_R_COUNT; r++)
		fprintf(f, "spoa_mtls_failures_total{reason=\"%s\"} %llu\n",
		        eval_reason_token((enum eval_reason)r),
		        (unsigned long long)MSUM(reasons[r]));
	head(f, "spoa_mtls_cache_total", "counter", "Verdict cache lookups, by result.");
	fprintf(f, "spoa_mtls_cache_total{result=\"hit\"} %llu\n",
	        (unsigned long long)MSUM(cache_hit));
	fprintf(f, "spoa_mtls_cache_total{result=\"miss\"} %llu\n",
	        (unsigned long long)MSUM(cache_miss));
	head(f, "spoa_mtls_resumed_total", "counter",
	     "Resumed TLS sessions evaluated, and those completed with remembered intermediates.");
	fprintf(f, "spoa_mtls_resumed_total{chain=\"none\"} %llu\n",
	        (unsigned long long)(MSUM(resumed) - MSUM(resumed_helped)));
	fprintf(f, "spoa_mtls_resumed_total{chain=\"remembered\"} %llu\n",
	        (unsigned long long)MSUM(resumed_helped));
	head(f, "spoa_mtls_cert_dropped_total", "counter",
	     "Answers without the cert variable: the ACK would have exceeded the frame size.");
	fprintf(f, "spoa_mtls_cert_dropped_total %llu\n", (unsigned long long)MSUM(cert_dropped));
	histogram(f, "spoa_mtls_evaluation_seconds",
	          "Certificate evaluations (cache misses), time spent in the evaluator.",
	          (void *const *)blocks, n, offsetof(struct mtls_stats, eval_bucket),
	          offsetof(struct mtls_stats, eval_sum_ns));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
