/* Unit tests of lib/afile: atomic replacement, exclusive creation, bounded reads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "afile.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/afile-test-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void test_write_replaces_and_sets_mode(void **state)
{
	char p[128];
	uint8_t *buf;
	size_t len;
	struct stat st;

	(void)state;
	path_of(p, sizeof(p), "a.pem");
	assert_int_equal(afile_write(p, "old", 3, 0644), 0);
	assert_int_equal(afile_write(p, "new content", 11, 0600), 0);
	assert_int_equal(afile_read(p, 100, &buf, &len), 0);
	assert_int_equal(len, 11);
	assert_memory_equal(buf, "new content", 11);
	assert_int_equal(buf[len], 0);
	free(buf);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_failed_write_keeps_old(void **state)
{
	char p[128];
	uint8_t *buf;
	size_t len;

	(void)state;
	path_of(p, sizeof(p), "keep");
	assert_int_equal(afile_write(p, "v1", 2, 0644), 0);
	/* A target that is a directory cannot be replaced by rename(): v1 stays. */
	path_of(p, sizeof(p), "sub");
	assert_int_equal(afile_mkdirs(p, 0700), 0);
	path_of(p, sizeof(p), "sub/x");
	assert_int_equal(afile_mkdirs(p, 0700), 0);
	assert_int_not_equal(afile_write(p, "v2", 2, 0644), 0);
	path_of(p, sizeof(p), "keep");
	assert_int_equal(afile_read(p, 100, &buf, &len), 0);
	assert_memory_equal(buf, "v1", 2);
	free(buf);
}

static void test_create_is_exclusive(void **state)
{
	char p[128];
	uint8_t *buf;
	size_t len;
	struct stat st;

	(void)state;
	path_of(p, sizeof(p), "key.pem");
	assert_int_equal(afile_create(p, "secret1", 7, 0600), 0);
	assert_int_equal(afile_create(p, "secret2", 7, 0600), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(afile_read(p, 100, &buf, &len), 0);
	assert_memory_equal(buf, "secret1", 7);
	free(buf);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_read_is_bounded(void **state)
{
	char p[128];
	uint8_t *buf = NULL;
	size_t len;

	(void)state;
	path_of(p, sizeof(p), "big");
	assert_int_equal(afile_write(p, "0123456789", 10, 0644), 0);
	assert_int_equal(afile_read(p, 9, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_null(buf);
	assert_int_equal(afile_read(p, 10, &buf, &len), 0);
	free(buf);
	assert_int_equal(afile_read(dir, 10, &buf, &len), -1); /* not a regular file */
}

static void test_sweep_removes_only_temporaries(void **state)
{
	char p[128], q[128];

	(void)state;
	path_of(p, sizeof(p), ".afile-x.pem-abcdef");
	assert_int_equal(afile_write(p, "torn", 4, 0600), 0);
	path_of(q, sizeof(q), "x.pem");
	assert_int_equal(afile_write(q, "ok", 2, 0600), 0);
	afile_sweep(dir);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(access(q, F_OK), 0);
}

static void test_batch_commit_and_abort(void **state)
{
	struct afile_batch b = {0};
	char p1[128], p2[128];
	uint8_t *buf;
	size_t len;

	(void)state;
	path_of(p1, sizeof(p1), "b1");
	path_of(p2, sizeof(p2), "b2");
	assert_int_equal(afile_write(p1, "old1", 4, 0644), 0);
	assert_int_equal(afile_batch_add(&b, p1, "new1", 4, 0644), 0);
	assert_int_equal(afile_batch_add(&b, p2, "new2", 4, 0600), 0);
	/* Before the commit the targets are untouched. */
	assert_int_equal(afile_read(p1, 100, &buf, &len), 0);
	assert_memory_equal(buf, "old1", 4);
	free(buf);
	assert_int_equal(access(p2, F_OK), -1);
	assert_int_equal(afile_batch_commit(&b), 0);
	assert_int_equal(afile_read(p1, 100, &buf, &len), 0);
	assert_memory_equal(buf, "new1", 4);
	free(buf);
	assert_int_equal(afile_read(p2, 100, &buf, &len), 0);
	assert_memory_equal(buf, "new2", 4);
	free(buf);
	/* An aborted batch changes nothing and leaves no temporary. */
	assert_int_equal(afile_batch_add(&b, p1, "gone", 4, 0644), 0);
	afile_batch_abort(&b);
	assert_int_equal(afile_read(p1, 100, &buf, &len), 0);
	assert_memory_equal(buf, "new1", 4);
	free(buf);
	{
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q '^.afile-'", dir);
		assert_int_equal(system(cmd), 256); /* grep found no temporary */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_write_replaces_and_sets_mode),
	    cmocka_unit_test(test_failed_write_keeps_old),
	    cmocka_unit_test(test_create_is_exclusive),
	    cmocka_unit_test(test_read_is_bounded),
	    cmocka_unit_test(test_sweep_removes_only_temporaries),
	    cmocka_unit_test(test_batch_commit_and_abort),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
