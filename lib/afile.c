#include "afile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "banned.h"

#define TMP_PREFIX ".afile-"

static int split(const char *path, char *dir, char *base)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (strlen(path) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(a, path, strlen(path) + 1);
	memcpy(b, path, strlen(path) + 1);
	snprintf(dir, PATH_MAX, "%s", dirname(a));
	snprintf(base, PATH_MAX, "%s", basename(b));
	return 0;
}

int afile_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

int afile_write_fd(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes data to a fresh temporary beside path (fsync'ed when sync); its name goes to
 * tmp. */
static int write_tmp(const char *path, const void *data, size_t len, mode_t mode, char *tmp,
                     char *dir, int sync)
{
	char base[PATH_MAX];
	int fd, saved;

	if (split(path, dir, base) < 0)
		return -1;
	if (snprintf(tmp, PATH_MAX, "%s/" TMP_PREFIX "%.64s-XXXXXX", dir, base) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* created 0600 */
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) < 0 || afile_write_fd(fd, data, len) < 0 || (sync && fsync(fd) < 0))
		goto err;
	if (close(fd) < 0) {
		fd = -1;
		goto err;
	}
	return 0;
err:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

int afile_write(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int saved;

	if (write_tmp(path, data, len, mode, tmp, dir, 1) < 0)
		return -1;
	if (rename(tmp, path) < 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return afile_sync_dir(dir);
}

int afile_create(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int r, saved;

	if (write_tmp(path, data, len, mode, tmp, dir, 1) < 0)
		return -1;
	/* link() fails with EEXIST instead of replacing: O_EXCL semantics, whole file. */
	r = link(tmp, path);
	saved = errno;
	unlink(tmp);
	if (r < 0) {
		errno = saved;
		return -1;
	}
	return afile_sync_dir(dir);
}

int afile_batch_add(struct afile_batch *b, const char *path, const void *data, size_t len,
                    mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];

	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 32;
		char **t = realloc(b->tmp, cap * sizeof(*t)), **d;
		if (!t)
			return -1;
		b->tmp = t;
		d = realloc(b->dst, cap * sizeof(*d));
		if (!d)
			return -1;
		b->dst = d;
		b->cap = cap;
	}
	if (write_tmp(path, data, len, mode, tmp, dir, 0) < 0)
		return -1;
	b->tmp[b->n] = strdup(tmp);
	b->dst[b->n] = strdup(path);
	if (!b->tmp[b->n] || !b->dst[b->n]) {
		unlink(tmp);
		free(b->tmp[b->n]);
		free(b->dst[b->n]);
		return -1;
	}
	b->n++;
	return 0;
}

static void batch_free(struct afile_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->tmp[i]);
		free(b->dst[i]);
	}
	free(b->tmp);
	free(b->dst);
	memset(b, 0, sizeof(*b));
}

void afile_batch_abort(struct afile_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->tmp[i])
			unlink(b->tmp[i]);
	batch_free(b);
}

int afile_batch_commit(struct afile_batch *b)
{
	char dir[PATH_MAX], base[PATH_MAX], last[PATH_MAX] = "";
	int fd, saved;

	if (b->n == 0) {
		batch_free(b);
		return 0;
	}
	/* Every temporary's content on disk before any rename makes it visible. */
	fd = open(b->tmp[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		afile_batch_abort(b);
		errno = saved;
		return -1;
	}
	close(fd);
	for (size_t i = 0; i < b->n; i++) {
		if (rename(b->tmp[i], b->dst[i]) < 0) {
			saved = errno;
			afile_batch_abort(b);
			errno = saved;
			return -1;
		}
		free(b->tmp[i]);
		b->tmp[i] = NULL;
	}
	/* The renames themselves: each directory once (targets come grouped by directory). */
	for (size_t i = 0; i < b->n; i++) {
		if (split(b->dst[i], dir, base) < 0 || strcmp(dir, last) == 0)
			continue;
		memcpy(last, dir, strlen(dir) + 1);
		if (afile_sync_dir(dir) < 0) {
			saved = errno;
			batch_free(b);
			errno = saved;
			return -1;
		}
	}
	batch_free(b);
	return 0;
}

int afile_read(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto err;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto err;
	}
	if ((uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto err;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto err;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto err;
		if (n == 0)
			break; /* shrank while reading: keep what is there */
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	*out = buf;
	*len = got;
	return 0;
err:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return -1;
}

int afile_mkdirs(const char *dir, mode_t mode)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -1;
		p[i] = i == n ? '\0' : '/';
	}
	return 0;
}

void afile_sweep(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}
