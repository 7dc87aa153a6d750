#include "lib/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "lib/loop.h"
#include "lib/task.h"

static struct loop *fileio_ring(void)
{
	return task_current() != NULL ? loop_current() : NULL;
}

int fileio_openat(int dfd, const char *path, int flags, mode_t mode)
{
	struct loop *l = fileio_ring();
	int r;

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_openat(sqe, dfd, path, flags, mode);
		return task_io(sqe);
	}
	do {
		r = openat(dfd, path, flags, mode);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int fileio_close(int fd)
{
	struct loop *l = fileio_ring();

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_close(sqe, fd);
		return task_io(sqe);
	}
	/* No retry on EINTR: Linux has released the descriptor anyway. */
	return close(fd) < 0 ? -errno : 0;
}

int fileio_pread(int fd, void *p, size_t len, uint64_t off)
{
	struct loop *l = fileio_ring();
	ssize_t r;

	if (len > FILEIO_CHUNK)
		len = FILEIO_CHUNK;
	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_read(sqe, fd, p, (unsigned)len, off);
		return task_io(sqe);
	}
	do {
		r = pread(fd, p, len, (off_t)off);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : (int)r;
}

int fileio_pwrite(int fd, const void *p, size_t len, uint64_t off)
{
	struct loop *l = fileio_ring();
	ssize_t r;

	if (len > FILEIO_CHUNK)
		len = FILEIO_CHUNK;
	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_write(sqe, fd, p, (unsigned)len, off);
		return task_io(sqe);
	}
	do {
		r = pwrite(fd, p, len, (off_t)off);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : (int)r;
}

int fileio_fsync(int fd)
{
	struct loop *l = fileio_ring();
	int r;

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_fsync(sqe, fd, 0);
		return task_io(sqe);
	}
	do {
		r = fsync(fd);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

int fileio_linkat(int dfd, const char *from, const char *to)
{
	struct loop *l = fileio_ring();

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_linkat(sqe, dfd, from, dfd, to, 0);
		return task_io(sqe);
	}
	return linkat(dfd, from, dfd, to, 0) < 0 ? -errno : 0;
}

int fileio_renameat(int dfd, const char *from, const char *to,
		       unsigned flags)
{
	struct loop *l = fileio_ring();

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_renameat(sqe, dfd, from, dfd, to, flags);
		return task_io(sqe);
	}
	return renameat2(dfd, from, dfd, to, flags) < 0 ? -errno : 0;
}

int fileio_unlinkat(int dfd, const char *path, int flags)
{
	struct loop *l = fileio_ring();

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_unlinkat(sqe, dfd, path, flags);
		return task_io(sqe);
	}
	return unlinkat(dfd, path, flags) < 0 ? -errno : 0;
}

int fileio_mkdirat(int dfd, const char *path, mode_t mode)
{
	struct loop *l = fileio_ring();

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_mkdirat(sqe, dfd, path, mode);
		return task_io(sqe);
	}
	return mkdirat(dfd, path, mode) < 0 ? -errno : 0;
}

int fileio_statx(int dfd, const char *path, int flags, unsigned mask,
		    struct statx *stx)
{
	struct loop *l = fileio_ring();
	int r;

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_statx(sqe, dfd, path, flags, mask, stx);
		return task_io(sqe);
	}
	do {
		r = statx(dfd, path, flags, mask, stx);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

int fileio_fsetxattr(int fd, const char *name, const void *value,
			size_t len)
{
	struct loop *l = fileio_ring();

	if (l != NULL) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_fsetxattr(sqe, fd, name, value, 0,
					(unsigned)len);
		return task_io(sqe);
	}
	return fsetxattr(fd, name, value, len, 0) < 0 ? -errno : 0;
}

