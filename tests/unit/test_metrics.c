/*
 * Unit tests of agent/metrics: the Prometheus text exposition of the summed worker
 * counter blocks. The structure checks (HELP/TYPE, _total, cumulative buckets) follow
 * the exposition format; when promtool is installed its linter has the last word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics.h"
#include "stats.h"

#include "banned.h"

struct fixture {
	struct agent_stats a, b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static char *render(struct fixture *f, unsigned n, size_t *len)
{
	struct agent_stats *blocks[2] = {&f->a, &f->b};
	char *text = metrics_render(blocks, n, len);

	assert_non_null(text);
	assert_int_equal(strlen(text), *len);
	assert_true(*len > 0 && text[*len - 1] == '\n');
	return text;
}

/* The value of the sample line `series value`, which must appear exactly once. */
static double value_of(const char *text, const char *series)
{
	char needle[256];
	const char *p = NULL;
	size_t nlen, count = 0;
	double v;
	char *end;

	assert_true((size_t)snprintf(needle, sizeof(needle), "\n%s ", series) < sizeof(needle));
	nlen = strlen(needle);
	/* Walk line by line (every sample line follows a newline: the text opens with HELP). */
	for (const char *l = strchr(text, '\n'); l; l = strchr(l + 1, '\n')) {
		if (strncmp(l, needle, nlen) == 0) {
			p = l;
			count++;
		}
	}
	if (count != 1)
		fail_msg("series %s found %zu times", series, count);
	p += nlen;
	v = strtod(p, &end);
	assert_true(end != p);
	assert_true(*end == '\n');
	return v;
}

static void assert_value(const char *text, const char *series, double want)
{
	double got = value_of(text, series);

	if (got != want)
		fail_msg("%s = %.17g, want %.17g", series, got, want);
}

/* ---- line-level structure ---- */

#define MAX_FAMILIES 64

struct family {
	char name[128];
	char type[16];
	bool help;
};

static struct family *family_find(struct family *fam, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(fam[i].name) == len && memcmp(fam[i].name, name, len) == 0)
			return &fam[i];
	return NULL;
}

/* Walks every line: comments declare families, samples must belong to a declared one. */
static size_t check_structure(const char *text, struct family *fam)
{
	size_t nfam = 0, nsamples = 0;
	const char *line = text;

	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len;

		assert_non_null(eol);
		len = (size_t)(eol - line);
		assert_true(len > 0);
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			const char *name = line + 7, *sp = memchr(name, ' ', len - 7);
			struct family *f;

			assert_non_null(sp);
			f = family_find(fam, nfam, name, (size_t)(sp - name));
			if (!f) {
				assert_true(nfam < MAX_FAMILIES);
				f = &fam[nfam++];
				assert_true((size_t)(sp - name) < sizeof(f->name));
				memcpy(f->name, name, (size_t)(sp - name));
			}
			assert_true(eol - sp > 1); /* HELP text or TYPE present */
			if (line[2] == 'H') {
				assert_false(f->help); /* one HELP per family */
				f->help = true;
			} else {
				assert_int_equal(f->type[0], '\0');
				assert_true((size_t)(eol - sp - 1) < sizeof(f->type));
				memcpy(f->type, sp + 1, (size_t)(eol - sp - 1));
			}
		} else {
			size_t nlen = strcspn(line, "{ ");
			struct family *f = family_find(fam, nfam, line, nlen);

			assert_true(line[0] != '#');
			/* A histogram's series carry a suffix on the family's name. */
			if (!f) {
				static const char *const sfx[] = {"_bucket", "_sum", "_count"};
				for (size_t i = 0; i < 3 && !f; i++) {
					size_t sl = strlen(sfx[i]);
					if (nlen > sl && memcmp(line + nlen - sl, sfx[i], sl) == 0)
						f = family_find(fam, nfam, line, nlen - sl);
				}
				if (f)
					assert_string_equal(f->type, "histogram");
			}
			if (!f)
				fail_msg("sample without HELP/TYPE: %.*s", (int)len, line);
			/* HELP and TYPE come before the family's samples. */
			assert_true(f->help);
			assert_true(f->type[0] != '\0');
			nsamples++;
		}
		line = eol + 1;
	}
	assert_true(nsamples > 0);
	return nfam;
}

static void fill(struct fixture *f)
{
	struct agent_stats *a = &f->a, *b = &f->b;

	stat_add(&a->conn_opened, 10);
	stat_add(&b->conn_opened, 32);
	stat_add(&a->conn_closed, 4);
	stat_add(&b->conn_closed, 30);
	stat_add(&a->healthchecks, 3);
	stat_add(&b->healthchecks, 4);
	stat_add(&a->frames_in[SF_IN_HELLO], 5);
	stat_add(&b->frames_in[SF_IN_HELLO], 6);
	stat_add(&a->frames_in[SF_IN_NOTIFY], 1000);
	stat_add(&b->frames_in[SF_IN_NOTIFY], 234);
	stat_add(&b->frames_in[SF_IN_OTHER], 2);
	stat_add(&a->frames_out[SF_OUT_ACK], 999);
	stat_add(&b->frames_out[SF_OUT_ACK], 234);
	stat_add(&a->frames_out[SF_OUT_HELLO], 5);
	stat_add(&a->frames_out[SF_OUT_DISCONNECT], 1);
	stat_add(&b->frames_out[SF_OUT_DISCONNECT], 8);
	stat_add(&a->notify_processed, 999);
	stat_add(&b->notify_processed, 234);
	stat_add(&a->messages_unknown, 7);
	stat_add(&b->ack_too_big, 1);
	stat_add(&a->disco_sent[SPOP_ST_NORMAL], 1);
	stat_add(&b->disco_sent[SPOP_ST_NORMAL], 2);
	stat_add(&a->disco_sent[SPOP_ST_TOO_BIG], 2);
	stat_add(&b->disco_sent[SPOP_ST_TOO_BIG], 5);
	stat_add(&b->disco_sent[SPOP_ST_COUNT], 9); /* "other" */
	stat_add(&a->disco_received[SPOP_ST_TIMEOUT], 11);
	stat_add(&b->disco_received[SPOP_ST_TIMEOUT], 1);
	/* 3 µs, 5 µs (on the bound: le is inclusive), 7 µs, 30 ms, 2 s. */
	stat_latency(a, 3000);
	stat_latency(b, 5000);
	stat_latency(a, 7000);
	stat_latency(b, 30000000);
	stat_latency(a, 2000000000);
}

static void test_sums_across_blocks(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *t;

	fill(f);
	t = render(f, 2, &len);
	assert_value(t, "spoa_mtls_worker_threads", 2);
	assert_value(t, "spoa_mtls_connections_total", 42);
	assert_value(t, "spoa_mtls_connections", 42 - 34);
	assert_value(t, "spoa_mtls_health_checks_total", 7);
	assert_value(t, "spoa_mtls_frames_received_total{type=\"haproxy-hello\"}", 11);
	assert_value(t, "spoa_mtls_frames_received_total{type=\"notify\"}", 1234);
	assert_value(t, "spoa_mtls_frames_received_total{type=\"haproxy-disconnect\"}", 0);
	assert_value(t, "spoa_mtls_frames_received_total{type=\"other\"}", 2);
	assert_value(t, "spoa_mtls_frames_sent_total{type=\"ack\"}", 1233);
	assert_value(t, "spoa_mtls_frames_sent_total{type=\"agent-hello\"}", 5);
	assert_value(t, "spoa_mtls_frames_sent_total{type=\"agent-disconnect\"}", 9);
	assert_value(t, "spoa_mtls_notify_processed_total", 1233);
	assert_value(t, "spoa_mtls_messages_unknown_total", 7);
	assert_value(t, "spoa_mtls_ack_too_big_total", 1);
	free(t);

	/* One block only: the second is not added. */
	t = render(f, 1, &len);
	assert_value(t, "spoa_mtls_worker_threads", 1);
	assert_value(t, "spoa_mtls_connections_total", 10);
	assert_value(t, "spoa_mtls_frames_received_total{type=\"notify\"}", 1000);
	free(t);
}

static void test_connections_gauge_never_negative(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *t;

	/* A scrape can read `closed` ahead of `opened` (relaxed loads, stats.h). */
	stat_add(&f->a.conn_opened, 3);
	stat_add(&f->b.conn_closed, 5);
	t = render(f, 2, &len);
	assert_value(t, "spoa_mtls_connections", 0);
	assert_value(t, "spoa_mtls_connections_total", 3);
	free(t);
}

static void test_large_counter(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *t;
	char want[64];

	stat_add(&f->a.notify_processed, (uint64_t)1 << 53);
	stat_add(&f->b.notify_processed, 1);
	t = render(f, 2, &len);
	/* Printed as an exact integer, not a rounded float. */
	assert_true((size_t)snprintf(want, sizeof(want),
	                             "\nspoa_mtls_notify_processed_total %llu\n",
	                             (unsigned long long)(((uint64_t)1 << 53) + 1)) < sizeof(want));
	assert_non_null(strstr(t, want));
	free(t);
}

static void test_histogram_cumulative(void **state)
{
	struct fixture *f = *state;
	size_t len, nb = 0;
	char *t;
	const char *p;
	double prev_le = -1, prev = -1, inf = -1, count;
	uint64_t cum = 0;

	fill(f);
	t = render(f, 2, &len);
	for (p = strstr(t, "\nspoa_mtls_processing_seconds_bucket{le=\""); p;
	     p = strstr(p + 1, "\nspoa_mtls_processing_seconds_bucket{le=\"")) {
		const char *le = p + strlen("\nspoa_mtls_processing_seconds_bucket{le=\"");
		char *end;
		double v, bound;

		assert_true(nb <= STAT_LAT_BUCKETS);
		cum += stat_get(&f->a.lat_bucket[nb]) + stat_get(&f->b.lat_bucket[nb]);
		if (strncmp(le, "+Inf\"} ", 7) == 0) {
			assert_int_equal(nb, STAT_LAT_BUCKETS); /* +Inf is last */
			v = strtod(le + 7, &end);
			inf = v;
		} else {
			bound = strtod(le, &end);
			assert_true(end != le && strncmp(end, "\"} ", 3) == 0);
			assert_true(nb < STAT_LAT_BUCKETS);
			assert_true(bound == stat_lat_bounds[nb]);
			assert_true(bound > prev_le);
			prev_le = bound;
			v = strtod(end + 3, &end);
		}
		assert_true(*end == '\n');
		/* Cumulative: each bucket holds everything at or below its bound. */
		assert_true(v >= prev);
		assert_true(v == (double)cum);
		prev = v;
		nb++;
	}
	assert_int_equal(nb, STAT_LAT_BUCKETS + 1);
	assert_true(inf == 5);
	count = value_of(t, "spoa_mtls_processing_seconds_count");
	assert_true(count == inf);
	/* 3 µs and 5 µs fall in le=5e-06; 7 µs in le=1e-05; 2 s only in +Inf. */
	assert_value(t, "spoa_mtls_processing_seconds_bucket{le=\"5e-06\"}", 2);
	assert_value(t, "spoa_mtls_processing_seconds_bucket{le=\"1e-05\"}", 3);
	assert_value(t, "spoa_mtls_processing_seconds_bucket{le=\"0.025\"}", 3);
	assert_value(t, "spoa_mtls_processing_seconds_bucket{le=\"0.05\"}", 4);
	assert_value(t, "spoa_mtls_processing_seconds_bucket{le=\"0.1\"}", 4);
	{
		double sum = value_of(t, "spoa_mtls_processing_seconds_sum");
		double want = (3000.0 + 5000 + 7000 + 30000000 + 2000000000) / 1e9;
		assert_true(sum > want - 1e-9 && sum < want + 1e-9);
	}
	free(t);
}

/* stats.c files a latency equal to a bound in that bound's bucket (le is inclusive). */
static void test_latency_bounds_inclusive(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < STAT_LAT_BUCKETS; i++) {
		uint64_t ns = (uint64_t)(stat_lat_bounds[i] * 1e9 + 0.5);

		memset(&f->a, 0, sizeof(f->a));
		stat_latency(&f->a, ns);
		stat_latency(&f->a, ns + 1);
		assert_int_equal(stat_get(&f->a.lat_bucket[i]), 1);
		assert_int_equal(stat_get(&f->a.lat_bucket[i + 1]), 1);
		assert_true(stat_get(&f->a.lat_sum_ns) == 2 * ns + 1);
	}
}

static void test_help_type_and_total(void **state)
{
	struct fixture *f = *state;
	struct family fam[MAX_FAMILIES];
	size_t len, nfam;
	char *t;
	bool hist = false;

	fill(f);
	t = render(f, 2, &len);
	memset(fam, 0, sizeof(fam));
	nfam = check_structure(t, fam);
	assert_true(nfam >= 10);
	for (size_t i = 0; i < nfam; i++) {
		size_t n = strlen(fam[i].name);

		if (!fam[i].help || fam[i].type[0] == '\0')
			fail_msg("%s lacks HELP or TYPE", fam[i].name);
		assert_true(strcmp(fam[i].type, "counter") == 0 ||
		            strcmp(fam[i].type, "gauge") == 0 ||
		            strcmp(fam[i].type, "histogram") == 0);
		if (strcmp(fam[i].type, "counter") == 0 &&
		    (n < 6 || strcmp(fam[i].name + n - 6, "_total") != 0))
			fail_msg("counter %s does not end in _total", fam[i].name);
		/* Everything is ours: one namespace. */
		assert_true(strncmp(fam[i].name, "spoa_mtls_", 10) == 0);
		hist |= strcmp(fam[i].type, "histogram") == 0;
	}
	assert_true(hist);
	free(t);
}

static void test_disconnect_series_by_status(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *t;
	char series[128];

	fill(f);
	t = render(f, 2, &len);
	/* One series per code 0..13, plus "other". */
	for (unsigned st = 0; st < SPOP_ST_COUNT; st++) {
		double want =
		    (double)(stat_get(&f->a.disco_sent[st]) + stat_get(&f->b.disco_sent[st]));
		assert_true((size_t)snprintf(series, sizeof(series),
		                             "spoa_mtls_disconnects_sent_total{status=\"%u\"}",
		                             st) < sizeof(series));
		assert_value(t, series, want);
		want = (double)(stat_get(&f->a.disco_received[st]) +
		                stat_get(&f->b.disco_received[st]));
		assert_true((size_t)snprintf(series, sizeof(series),
		                             "spoa_mtls_disconnects_received_total{status=\"%u\"}",
		                             st) < sizeof(series));
		assert_value(t, series, want);
	}
	assert_value(t, "spoa_mtls_disconnects_sent_total{status=\"0\"}", 3);
	assert_value(t, "spoa_mtls_disconnects_sent_total{status=\"3\"}", 7);
	assert_value(t, "spoa_mtls_disconnects_sent_total{status=\"other\"}", 9);
	assert_value(t, "spoa_mtls_disconnects_received_total{status=\"2\"}", 12);
	assert_value(t, "spoa_mtls_disconnects_received_total{status=\"other\"}", 0);
	assert_null(strstr(t, "status=\"14\""));
	free(t);
}

static void test_zero_blocks(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *t;

	t = render(f, 0, &len);
	assert_value(t, "spoa_mtls_worker_threads", 0);
	assert_value(t, "spoa_mtls_connections", 0);
	assert_value(t, "spoa_mtls_processing_seconds_count", 0);
	assert_value(t, "spoa_mtls_processing_seconds_bucket{le=\"+Inf\"}", 0);
	free(t);
}

/* ---- promtool ---- */

static bool have_promtool(void)
{
	return system("command -v promtool >/dev/null 2>&1") == 0;
}

/* `promtool check metrics < file`; returns its exit status. */
static int promtool_check(const char *text, size_t len)
{
	char path[] = "/tmp/test_metrics.XXXXXX", cmd[128];
	int fd = mkstemp(path), st;
	ssize_t w;

	assert_true(fd >= 0);
	w = write(fd, text, len);
	assert_int_equal(w, (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_true((size_t)snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path) <
	            sizeof(cmd));
	st = system(cmd);
	unlink(path);
	assert_true(st != -1 && WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_promtool_accepts(void **state)
{
	struct fixture *f = *state;
	size_t len;
	char *t;

	if (!have_promtool()) {
		fprintf(stderr, "\n*** WARNING: promtool not on PATH (Debian package prometheus): "
		                "the promtool check of the exposition is SKIPPED ***\n\n");
		skip();
	}
	fill(f);
	t = render(f, 2, &len);
	assert_int_equal(promtool_check(t, len), 0);
	free(t);
	/* And the promtool run can fail: a counter without _total is linted. */
	assert_int_not_equal(promtool_check("# HELP x_y a.\n# TYPE x_y counter\nx_y 1\n",
	                                    strlen("# HELP x_y a.\n# TYPE x_y counter\nx_y 1\n")),
	                     0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_sums_across_blocks),
	    T(test_connections_gauge_never_negative),
	    T(test_large_counter),
	    T(test_histogram_cumulative),
	    T(test_latency_bounds_inclusive),
	    T(test_help_type_and_total),
	    T(test_disconnect_series_by_status),
	    T(test_zero_blocks),
	    T(test_promtool_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
