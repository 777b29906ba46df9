/* Unit tests of certsync/schedule: renewal times with and without an ARI window, 1/2 of
 * the lifetime below 10 days, jitter bounds, the two backoff sequences, due-ness, and the
 * state file round trip. Times are passed in; no clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "schedule.h"

#define DAY 86400

static void test_ideal(void **state)
{
	(void)state;
	/* 90 days: 2/3 = 60 days in */
	assert_int_equal(sched_ideal_renewal(1000, 1000 + 90 * DAY), 1000 + 60 * DAY);
	/* 6 days (< 10): 1/2 = 3 days in */
	assert_int_equal(sched_ideal_renewal(0, 6 * DAY), 3 * DAY);
	/* exactly 10 days uses 2/3 */
	assert_int_equal(sched_ideal_renewal(0, 10 * DAY), 10 * DAY * 2 / 3);
	/* 120 s test certificates: 60 s */
	assert_int_equal(sched_ideal_renewal(500, 620), 560);
	/* nonsense dates: never later than notAfter */
	assert_int_equal(sched_ideal_renewal(100, 50), 50);
}

static void test_jitter_bounds(void **state)
{
	time_t nb = 1000, na = 1000 + 90 * DAY, ideal = sched_ideal_renewal(nb, na);

	(void)state;
	assert_int_equal(sched_renewal_time(nb, na, false, 0, 0, 0), ideal);
	/* the largest jitter is lifetime / 50 earlier, never later */
	assert_true(sched_renewal_time(nb, na, false, 0, 0, UINT32_MAX) >= ideal - 90 * DAY / 50);
	assert_true(sched_renewal_time(nb, na, false, 0, 0, UINT32_MAX) < ideal);
	for (uint32_t r = 0; r < 4000000000u; r += 123456789u) {
		time_t t = sched_renewal_time(nb, na, false, 0, 0, r);
		assert_true(t <= ideal && t >= ideal - 90 * DAY / 50);
	}
}

static void test_ari_window(void **state)
{
	time_t nb = 0, na = 90 * DAY, ws = 50 * DAY, we = 52 * DAY;

	(void)state;
	assert_int_equal(sched_renewal_time(nb, na, true, ws, we, 0), ws);
	assert_true(sched_renewal_time(nb, na, true, ws, we, UINT32_MAX) < we);
	assert_int_equal(sched_renewal_time(nb, na, true, ws, we, 1u << 31), ws + DAY);
	/* an invalid window (end <= start) is ignored: the 2/3 rule applies */
	assert_int_equal(sched_renewal_time(nb, na, true, we, ws, 0), 60 * DAY);
	/* a window past notAfter is clamped to notAfter; one before notBefore to it */
	assert_int_equal(sched_renewal_time(nb, na, true, na + 10, na + 20, 0), na);
	assert_int_equal(sched_renewal_time(100, na, true, 0, 50, 0), 100);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(sched_order_backoff(0), 0);
	assert_int_equal(sched_order_backoff(1), 60);
	assert_int_equal(sched_order_backoff(2), 600);
	assert_int_equal(sched_order_backoff(3), 6000);
	assert_int_equal(sched_order_backoff(4), 86400);
	assert_int_equal(sched_order_backoff(40), 86400);
	assert_int_equal(sched_check_backoff(1), 60);
	assert_int_equal(sched_check_backoff(2), 120);
	assert_int_equal(sched_check_backoff(3), 240);
	assert_int_equal(sched_check_backoff(6), 1920);
	assert_int_equal(sched_check_backoff(7), 3600);
	assert_int_equal(sched_check_backoff(1000), 3600);
}

static void test_due(void **state)
{
	struct sched_host h = {0};

	(void)state;
	assert_true(sched_due(&h, false, 100));
	h.next_attempt = 200;
	assert_false(sched_due(&h, false, 100));
	assert_true(sched_due(&h, false, 200));
	h.next_attempt = 0;
	h.renew_at = 500;
	assert_false(sched_due(&h, true, 400));
	assert_true(sched_due(&h, true, 500));
	/* without a certificate renew_at does not hold an issuance back */
	assert_true(sched_due(&h, false, 400));
	/* a backoff holds a due renewal back */
	h.next_attempt = 600;
	assert_false(sched_due(&h, true, 550));
}

static void test_roundtrip(void **state)
{
	char dir[] = "/tmp/test_sched.XXXXXX", path[256], err[256];
	struct sched_state s = {0}, t = {0};
	struct sched_host *h;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.json", dir);
	/* missing file: empty state */
	assert_int_equal(sched_load(path, &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 0);
	h = sched_host_get(&s, "*.example.com");
	assert_non_null(h);
	h->next_attempt = 123;
	h->renew_at = 456;
	snprintf(h->cert_serial, sizeof(h->cert_serial), "0ABC");
	h->failures = 2;
	h->check_failures = 3;
	snprintf(h->last_error_class, sizeof(h->last_error_class), "caa");
	snprintf(h->last_error, sizeof(h->last_error), "CAA \"forbids\" it");
	snprintf(h->delegation.state, sizeof(h->delegation.state), "missing");
	snprintf(h->delegation.record, sizeof(h->delegation.record), "_acme-challenge.x. CNAME y.");
	snprintf(h->caa.state, sizeof(h->caa.state), "forbidden");
	assert_ptr_equal(sched_host_get(&s, "*.example.com"), h);
	assert_non_null(sched_host_get(&s, "b.example.com"));
	assert_int_equal(sched_save(path, &s, err, sizeof(err)), 0);
	assert_int_equal(sched_load(path, &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 2);
	{
		const struct sched_host *g = sched_host_find(&t, "*.example.com");
		assert_non_null(g);
		assert_int_equal(g->next_attempt, 123);
		assert_int_equal(g->renew_at, 456);
		assert_string_equal(g->cert_serial, "0ABC");
		assert_int_equal(g->failures, 2);
		assert_int_equal(g->check_failures, 3);
		assert_string_equal(g->last_error_class, "caa");
		assert_string_equal(g->last_error, "CAA \"forbids\" it");
		assert_string_equal(g->delegation.state, "missing");
		assert_string_equal(g->delegation.record, "_acme-challenge.x. CNAME y.");
		assert_string_equal(g->caa.state, "forbidden");
		assert_false(g->busy);
	}
	assert_null(sched_host_find(&t, "c.example.com"));
	sched_free(&t);
	/* a corrupt file is an error, not an empty state */
	{
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs("{ not json", f);
		fclose(f);
	}
	assert_int_equal(sched_load(path, &t, err, sizeof(err)), -1);
	unlink(path);
	rmdir(dir);
	sched_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ideal),      cmocka_unit_test(test_jitter_bounds),
	    cmocka_unit_test(test_ari_window), cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_due),        cmocka_unit_test(test_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
