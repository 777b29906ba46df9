/* Unit tests of lib/policy: snapshot round trip and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"

static uint8_t anchor[] = {0x30, 0x03, 0x02, 0x01, 0x01};

/* A snapshot with two policies and three hosts; callers may break it before packing. */
struct fixture {
	Edgetls__Snapshot s;
	Edgetls__Policy p[2], *pp[2];
	Edgetls__Host h[3], *hp[3];
	ProtobufCBinaryData anchors[1];
};

static void build(struct fixture *f)
{
	static char *names[] = {"a.example.com", "*.example.com", "b.example.org"};
	static char *pol[] = {"p1", "p2", "p1"};

	memset(f, 0, sizeof(*f));
	edgetls__snapshot__init(&f->s);
	for (int i = 0; i < 2; i++) {
		edgetls__policy__init(&f->p[i]);
		f->pp[i] = &f->p[i];
	}
	f->p[0].id = "p1";
	f->p[0].mode = EDGETLS__MODE__MODE_REQUIRED;
	f->p[0].depth = 2;
	f->p[0].send_headers = 1;
	f->p[0].request_certificate = 1;
	f->anchors[0].data = anchor;
	f->anchors[0].len = sizeof(anchor);
	f->p[0].anchors = f->anchors;
	f->p[0].n_anchors = 1;
	f->p[1].id = "p2";
	f->p[1].mode = EDGETLS__MODE__MODE_PERMISSIVE;
	f->p[1].deny_on_failure = 1;
	for (int i = 0; i < 3; i++) {
		edgetls__host__init(&f->h[i]);
		f->h[i].name = names[i];
		f->h[i].policy = pol[i];
		f->h[i].environment = "env";
		f->hp[i] = &f->h[i];
	}
	f->s.schema_version = POLICY_SCHEMA_VERSION;
	f->s.generation = 7;
	f->s.policies = f->pp;
	f->s.n_policies = 2;
	f->s.hosts = f->hp;
	f->s.n_hosts = 3;
}

static int decode(struct fixture *f, policy_snapshot **out, char *err, size_t errlen)
{
	size_t len = edgetls__snapshot__get_packed_size(&f->s);
	uint8_t *buf = malloc(len + 1);
	int r;

	assert_non_null(buf);
	edgetls__snapshot__pack(&f->s, buf);
	r = policy_snapshot_decode(buf, len, out, err, errlen);
	free(buf);
	return r;
}

static void test_round_trip_through_file(void **state)
{
	struct fixture f;
	policy_snapshot *s = NULL;
	char path[] = "/tmp/policy-test-XXXXXX", err[256];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	build(&f);
	assert_int_equal(policy_snapshot_save(path, &f.s), 0);
	assert_int_equal(policy_snapshot_load(path, &s, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(s->generation, 7);
	assert_int_equal(s->n_policies, 2);
	assert_string_equal(s->policies[0]->id, "p1");
	assert_int_equal(s->policies[0]->mode, EDGETLS__MODE__MODE_REQUIRED);
	assert_int_equal(s->policies[0]->depth, 2);
	assert_int_equal(s->policies[0]->n_anchors, 1);
	assert_memory_equal(s->policies[0]->anchors[0].data, anchor, sizeof(anchor));
	assert_true(s->policies[1]->deny_on_failure);
	assert_int_equal(s->n_hosts, 3);
	assert_string_equal(s->hosts[1]->name, "*.example.com");
	assert_string_equal(s->hosts[1]->policy, "p2");
	policy_snapshot_free(s);
}

static void expect_refusal(struct fixture *f, const char *needle)
{
	policy_snapshot *s = NULL;
	char err[256] = "";

	assert_int_equal(decode(f, &s, err, sizeof(err)), -1);
	assert_null(s);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_refusals(void **state)
{
	struct fixture f;

	(void)state;
	build(&f);
	f.s.schema_version = POLICY_SCHEMA_VERSION + 1;
	expect_refusal(&f, "schema version");
	build(&f);
	f.h[2].policy = "nope";
	expect_refusal(&f, "not defined");
	build(&f);
	f.p[1].id = "p1";
	expect_refusal(&f, "twice");
	build(&f);
	f.p[0].depth = POLICY_MAX_DEPTH + 1;
	expect_refusal(&f, "depth");
	build(&f);
	f.p[0].mode = (Edgetls__Mode)9;
	expect_refusal(&f, "mode");
	build(&f);
	f.s.default_policy = "p9";
	expect_refusal(&f, "default policy");
}

static void test_garbage_and_size(void **state)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	policy_snapshot *s = NULL;
	char err[256];

	(void)state;
	assert_int_equal(policy_snapshot_decode(junk, sizeof(junk), &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a policy snapshot"));
	/* The size is checked before a byte is read. */
	assert_int_equal(
	    policy_snapshot_decode(junk, (size_t)POLICY_MAX_BYTES + 1, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "limit"));
	assert_int_equal(policy_snapshot_load("/nonexistent/policy.pb", &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_through_file),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_garbage_and_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
