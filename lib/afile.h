/*
 * afile: files that are replaced whole or not at all, and bounded reads.
 *
 * A write goes to a temporary file in the same directory, is fsync'ed, renamed over the
 * target, and the directory is fsync'ed: a crash at any point leaves either the old or
 * the new content, never a torn file. Temporary names start with ".afile-" so that
 * afile_sweep() can remove what a crash left behind.
 */
#ifndef EDGETLS_AFILE_H
#define EDGETLS_AFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Replaces path with data, mode applied before the rename. 0 or -1 (errno set). */
int afile_write(const char *path, const void *data, size_t len, mode_t mode)
    __attribute__((warn_unused_result));
/* Like afile_write, but fails with EEXIST when path exists (for private keys): the file
 * appears complete under its name or not at all. */
int afile_create(const char *path, const void *data, size_t len, mode_t mode)
    __attribute__((warn_unused_result));
/* Reads a whole regular file of at most max bytes into a malloc'd buffer (NUL added
 * after the data, not counted in *len). -1 with errno (EFBIG when larger than max). */
int afile_read(const char *path, size_t max, uint8_t **out, size_t *len)
    __attribute__((warn_unused_result));
/* Creates dir and its missing parents with mode. */
int afile_mkdirs(const char *dir, mode_t mode) __attribute__((warn_unused_result));
/*
 * Many files replaced at once, as durable as afile_write() but with one syncfs() for
 * all their contents instead of one fsync() each: add() writes temporaries, commit()
 * flushes them, renames each over its target and fsyncs the directories. Until commit,
 * every target keeps its old content; abort() (or a failed commit) removes the
 * temporaries not yet renamed.
 */
struct afile_batch {
	char **tmp, **dst;
	size_t n, cap;
};

int afile_batch_add(struct afile_batch *b, const char *path, const void *data, size_t len,
                    mode_t mode) __attribute__((warn_unused_result));
int afile_batch_commit(struct afile_batch *b) __attribute__((warn_unused_result));
void afile_batch_abort(struct afile_batch *b);

/* Writes all of data to fd, resuming after EINTR and short writes. 0 or -1 (errno set). */
int afile_write_fd(int fd, const void *data, size_t len) __attribute__((warn_unused_result));
/* fsync()s a directory, so that a rename or link in it is durable. */
int afile_sync_dir(const char *dir) __attribute__((warn_unused_result));
/* Removes the ".afile-*" temporaries left in dir by an interrupted write. */
void afile_sweep(const char *dir);

#endif
