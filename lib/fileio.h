/* fileio: local file operations through the worker's ring when called
 * from a task (lib/task.h), as plain blocking syscalls otherwise (tools,
 * tests, threads without a loop). One function per operation; each
 * returns the syscall's result or -errno, retrying EINTR where that is
 * safe. Reads and writes move at most FILEIO_CHUNK bytes per call.
 * Used by the fs store and the body cache. */
#ifndef KURA_FILEIO_H
#define KURA_FILEIO_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define FILEIO_CHUNK (1u << 30)

int fileio_openat(int dfd, const char *path, int flags, mode_t mode);
int fileio_close(int fd);
int fileio_pread(int fd, void *p, size_t len, uint64_t off);
int fileio_pwrite(int fd, const void *p, size_t len, uint64_t off);
int fileio_fsync(int fd);
int fileio_linkat(int dfd, const char *from, const char *to);
/* flags: renameat2() flags (RENAME_NOREPLACE, ...). */
int fileio_renameat(int dfd, const char *from, const char *to, unsigned flags);
int fileio_unlinkat(int dfd, const char *path, int flags);
int fileio_mkdirat(int dfd, const char *path, mode_t mode);
int fileio_statx(int dfd, const char *path, int flags, unsigned mask,
		 struct statx *stx);
int fileio_fsetxattr(int fd, const char *name, const void *value, size_t len);

#endif
