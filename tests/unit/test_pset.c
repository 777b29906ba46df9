/* Unit tests of agent/pset: hostname lookup (DESIGN §2.5), reload, publication. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pset.h"

static char path[] = "/tmp/pset-test-XXXXXX";

/* Writes a snapshot: policies p-exact (required), p-wild (optional), p-def (permissive);
 * hosts a.example.com, *.example.com, A.example.org is stored lowercase by certsync. */
static void write_snapshot(uint64_t generation, const char *default_policy)
{
	Edgetls__Snapshot s = EDGETLS__SNAPSHOT__INIT;
	Edgetls__Policy p[3], *pp[3];
	Edgetls__Host h[3], *hp[3];
	static char *ids[] = {"p-exact", "p-wild", "p-def"};
	static const Edgetls__Mode modes[] = {EDGETLS__MODE__MODE_REQUIRED,
	                                      EDGETLS__MODE__MODE_OPTIONAL,
	                                      EDGETLS__MODE__MODE_PERMISSIVE};
	static char *names[] = {"a.example.com", "*.example.com", "b.example.org"};
	static char *hpol[] = {"p-exact", "p-wild", "p-exact"};

	for (int i = 0; i < 3; i++) {
		edgetls__policy__init(&p[i]);
		p[i].id = ids[i];
		p[i].mode = modes[i];
		pp[i] = &p[i];
		edgetls__host__init(&h[i]);
		h[i].name = names[i];
		h[i].policy = hpol[i];
		h[i].environment = "e";
		hp[i] = &h[i];
	}
	s.schema_version = POLICY_SCHEMA_VERSION;
	s.generation = generation;
	s.policies = pp;
	s.n_policies = 3;
	s.hosts = hp;
	s.n_hosts = 3;
	s.default_policy = (char *)default_policy;
	assert_int_equal(policy_snapshot_save(path, &s), 0);
}

static const char *id_of(const struct pset *ps, const char *sni)
{
	const struct pset_policy *p = pset_lookup(ps, (const uint8_t *)sni, sni ? strlen(sni) : 0);
	return p ? p->p->id : "disabled";
}

static void test_lookup(void **state)
{
	struct pset *ps = NULL;
	char err[256];

	(void)state;
	write_snapshot(1, "p-def");
	assert_int_equal(pset_load(path, NULL, &ps, err, sizeof(err)), 0);
	assert_int_equal(pset_generation(ps), 1);
	assert_string_equal(id_of(ps, "a.example.com"), "p-exact"); /* exact beats wildcard */
	assert_string_equal(id_of(ps, "A.Example.COM"), "p-exact"); /* any case */
	assert_string_equal(id_of(ps, "c.example.com"), "p-wild");  /* one label */
	assert_string_equal(id_of(ps, "x.c.example.com"), "p-def"); /* not two labels */
	assert_string_equal(id_of(ps, "example.com"), "p-def");     /* not the apex */
	assert_string_equal(id_of(ps, "b.example.org"), "p-exact");
	assert_string_equal(id_of(ps, "nope.test"), "p-def");
	assert_string_equal(id_of(ps, NULL), "p-def"); /* no SNI */
	assert_string_equal(id_of(ps, ".example.com"), "p-def");
	{
		/* A NUL inside the SNI never matches a hostname. */
		const struct pset_policy *p =
		    pset_lookup(ps, (const uint8_t *)"a.example.com\0x", 15);
		assert_string_equal(p->p->id, "p-def");
	}
	pset_release(ps);
	/* Without a default policy, unknown names are disabled (NULL). */
	write_snapshot(2, "");
	assert_int_equal(pset_load(path, NULL, &ps, err, sizeof(err)), 0);
	assert_null(pset_lookup(ps, (const uint8_t *)"nope.test", 9));
	pset_release(ps);
}

static void test_counts_carry_over_and_publish(void **state)
{
	struct pset *a = NULL, *b = NULL, *cur;
	char err[256];
	uint64_t seq;

	(void)state;
	write_snapshot(3, "p-def");
	assert_int_equal(pset_load(path, NULL, &a, err, sizeof(err)), 0);
	atomic_fetch_add((_Atomic uint64_t *)&pset_lookup(a, (const uint8_t *)"a.example.com", 13)
	                     ->verdicts[PC_SUCCESS][PV_ALLOW],
	                 5);
	write_snapshot(4, "p-def");
	assert_int_equal(pset_load(path, a, &b, err, sizeof(err)), 0);
	assert_int_equal(atomic_load(&pset_lookup(b, (const uint8_t *)"a.example.com", 13)
	                                  ->verdicts[PC_SUCCESS][PV_ALLOW]),
	                 5);
	seq = pset_seq();
	pset_publish(a);
	assert_true(pset_seq() != seq);
	cur = pset_current();
	assert_ptr_equal(cur, a);
	pset_publish(b); /* a stays alive: cur holds it */
	assert_int_equal(pset_generation(cur), 3);
	pset_release(cur);
	cur = pset_current();
	assert_int_equal(pset_generation(cur), 4);
	pset_release(cur);
	pset_publish(NULL);
	assert_null(pset_current());
}

static void test_refused_files(void **state)
{
	struct pset *ps = NULL;
	char err[256];
	FILE *f;

	(void)state;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a snapshot at all", f);
	fclose(f);
	assert_int_equal(pset_load(path, NULL, &ps, err, sizeof(err)), -1);
	assert_null(ps);
	assert_non_null(strstr(err, "not a policy snapshot"));
}

static int setup(void **state)
{
	int fd = mkstemp(path);

	(void)state;
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_counts_carry_over_and_publish),
	    cmocka_unit_test(test_refused_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
