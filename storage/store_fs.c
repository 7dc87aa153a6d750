/* The fs backend: object key K is the file DIR/K.
 *
 * Every file operation goes through one small wrapper per syscall
 * (fs_openat, fs_pread, ...): inside a task it is an SQE on the loop's
 * ring and the task suspends; outside a task it is the plain blocking
 * syscall. Directory listing uses readdir in both cases.
 *
 * put writes DIR/.../.tmp.<random> next to the final name, fsyncs it,
 * then link()s it to the final name (create-only: link fails with EEXIST
 * atomically, also across processes) or rename()s it over the final
 * name, and fsyncs the directory. */
#include "storage/store.h"
#include "lib/fileio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"

#define FS_META_XATTR "user.kura.meta"
#define FS_META_MAX 2048	/* S3's limit for user metadata */
#define FS_TMP_PREFIX ".tmp."
#define FS_TMP_PREFIX_LEN (sizeof(FS_TMP_PREFIX) - 1)
#define FS_TMP_NAME_SIZE (FS_TMP_PREFIX_LEN + 16 + 1)
/* One read/write SQE moves at most this much (the SQE length is 32
 * bits, the kernel caps a single read near 2 GiB). */
/* A concurrent del may remove an empty directory between our mkdir and
 * our create; each retry starts the put over. */
#define FS_PUT_RETRIES 8

/* Internal: the directory vanished under us, start over. */
#define FS_RETRY 1

struct store_fs {
	struct store store;
	int root_fd;
	char *root;
};

static __thread char fs_errbuf[STORE_KEY_MAX + 256];

static int fs_error(const char **error_r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fs_error(const char **error_r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fs_errbuf, sizeof(fs_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = fs_errbuf;
	return code;
}

/* "fs: open u/ab/x: Permission denied" */
static int fs_fail(const char **error_r, const char *op, const char *path,
		   int err)
{
	return fs_error(error_r, KURA_EUNAVAIL, "fs: %s %s: %s", op,
			path[0] != '\0' ? path : ".", strerror(-err));
}

/* ---- helpers ---- */

static struct store_fs *fs_of(struct store *s)
{
	return (struct store_fs *)s;
}

static int fs_check_key(const char *key, const char **error_r)
{
	const char *comp = key;
	char esc[96];

	if (key == NULL)
		return fs_error(error_r, KURA_EINVAL, "fs: no key");
	if (!store_key_is_valid(key))
		goto bad;
	/* Beyond the generic rules: a component must fit a file name and
	 * must not look like one of our temp files. */
	for (;;) {
		const char *slash = strchr(comp, '/');
		size_t len = slash != NULL ? (size_t)(slash - comp) :
			strlen(comp);
		if (len > NAME_MAX ||
		    strncmp(comp, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) == 0)
			goto bad;
		if (slash == NULL)
			return 0;
		comp = slash + 1;
	}
bad:
	log_escape(key, strlen(key), esc, sizeof(esc));
	return fs_error(error_r, KURA_EINVAL, "fs: invalid key \"%s\"", esc);
}

/* The directory part of key ("" for a top-level key) into dir. */
static size_t fs_dirname(const char *key, char *dir)
{
	const char *slash = strrchr(key, '/');
	size_t n = slash != NULL ? (size_t)(slash - key) : 0;

	memcpy(dir, key, n);
	dir[n] = '\0';
	return n;
}

/* Opens dir (relative to the root; "" is the root itself) for fsync. */
static int fs_open_dir(struct store_fs *s, const char *dir)
{
	return fileio_openat(s->root_fd, dir[0] != '\0' ? dir : ".",
			 O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
}

static int fs_fsync_dir(struct store_fs *s, const char *dir)
{
	int fd = fs_open_dir(s, dir);
	int r, r2;

	if (fd < 0)
		return fd;
	r = fileio_fsync(fd);
	r2 = fileio_close(fd);
	return r < 0 ? r : r2;
}

/* mkdir -p of dir (relative to the root, modified in place but restored).
 * The parent of every directory created is fsynced, so that a put that
 * returned survives a crash together with its path. Returns FS_RETRY
 * when a concurrent del removed a parent meanwhile. */
static int fs_mkdir_p(struct store_fs *s, char *dir, const char **error_r)
{
	char *slash = strrchr(dir, '/');
	int r;

	r = fileio_mkdirat(s->root_fd, dir, 0755);
	if (r == -ENOENT && slash != NULL) {
		*slash = '\0';
		r = fs_mkdir_p(s, dir, error_r);
		*slash = '/';
		if (r != 0)
			return r;
		r = fileio_mkdirat(s->root_fd, dir, 0755);
		if (r == -ENOENT)
			return FS_RETRY;
	}
	if (r == -EEXIST)
		return 0;
	if (r < 0)
		return fs_fail(error_r, "mkdir", dir, r);
	if (slash != NULL)
		*slash = '\0';
	r = fs_fsync_dir(s, slash != NULL ? dir : "");
	if (slash != NULL)
		*slash = '/';
	if (r == -ENOENT)
		return FS_RETRY;
	if (r < 0)
		return fs_fail(error_r, "fsync", dir, r);
	return 0;
}

/* Checks and packs meta as "name=value\0name=value\0". Names are
 * letters, digits, '-' and '_'; values printable ASCII; at most
 * FS_META_MAX bytes in all: what S3 can carry as x-amz-meta-*. */
static int fs_meta_encode(const char *const *meta, char *out, size_t *len_r,
			  const char **error_r)
{
	size_t n = 0;

	for (; meta != NULL && *meta != NULL; meta++) {
		const char *m = *meta, *eq = strchr(m, '='), *p;
		size_t len;

		if (eq == NULL || eq == m)
			goto bad;
		for (p = m; p < eq; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' &&
			    *p != '_')
				goto bad;
		for (p = eq + 1; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 ||
			    (unsigned char)*p > 0x7e)
				goto bad;
		len = (size_t)(p - m) + 1;
		if (len > FS_META_MAX - n)
			return fs_error(error_r, KURA_EINVAL,
					"fs: metadata larger than %d bytes",
					FS_META_MAX);
		memcpy(out + n, m, len);
		n += len;
	}
	*len_r = n;
	return 0;
bad:
	return fs_error(error_r, KURA_EINVAL, "fs: bad metadata entry");
}

/* ---- get / head ---- */

static int fs_get(struct store *st, const char *key, uint64_t off,
		  uint64_t len, struct buf *out, const char **error_r)
{
	struct store_fs *s = fs_of(st);
	struct statx stx;
	uint64_t size, n, got = 0;
	uint8_t *dst = NULL;
	int fd, r;

	r = fs_check_key(key, error_r);
	if (r < 0)
		return r;
	fd = fileio_openat(s->root_fd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd == -ENOENT || fd == -ENOTDIR)
		return fs_error(error_r, KURA_ENOTFOUND, "fs: %s: not found",
				key);
	if (fd < 0)
		return fs_fail(error_r, "open", key, fd);
	/* Size from the open file: a concurrent put replaces the name, not
	 * this inode. */
	r = fileio_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx);
	if (r < 0) {
		fs_fail(error_r, "stat", key, r);
		goto out;
	}
	if (!S_ISREG(stx.stx_mode)) {
		r = fs_error(error_r, KURA_ENOTFOUND, "fs: %s: not found",
			     key);
		goto out;
	}
	size = stx.stx_size;
	n = off >= size ? 0 : size - off;
	if (len < n)
		n = len;
	if (n > 0) {
		dst = n <= SIZE_MAX / 2 ? buf_reserve(out, (size_t)n) : NULL;
		if (dst == NULL) {
			r = fs_error(error_r, KURA_ETOOBIG,
				     "fs: %s: %" PRIu64 " bytes do not fit "
				     "the buffer", key, n);
			goto out;
		}
	}
	while (got < n) {
		r = fileio_pread(fd, dst + got, (size_t)(n - got), off + got);
		if (r < 0) {
			fs_fail(error_r, "read", key, r);
			goto out;
		}
		if (r == 0)
			break;	/* cannot happen: objects are never truncated */
		got += (uint64_t)r;
	}
	buf_commit(out, (size_t)got);
	r = 0;
out:
	fileio_close(fd);
	return r < 0 && r != KURA_ENOTFOUND && r != KURA_ETOOBIG ?
		KURA_EUNAVAIL : r;
}

static int fs_head(struct store *st, const char *key, struct store_stat *st_r,
		   const char **error_r)
{
	struct store_fs *s = fs_of(st);
	struct statx stx;
	int r;

	r = fs_check_key(key, error_r);
	if (r < 0)
		return r;
	r = fileio_statx(s->root_fd, key, AT_SYMLINK_NOFOLLOW,
		     STATX_TYPE | STATX_SIZE | STATX_MTIME, &stx);
	if (r == -ENOENT || r == -ENOTDIR ||
	    (r == 0 && !S_ISREG(stx.stx_mode)))
		return fs_error(error_r, KURA_ENOTFOUND, "fs: %s: not found",
				key);
	if (r < 0)
		return fs_fail(error_r, "stat", key, r);
	st_r->size = stx.stx_size;
	st_r->mtime = stx.stx_mtime.tv_sec;
	return 0;
}

/* ---- put ---- */

static void fs_tmp_name(char *out)
{
	uint8_t rnd[8];

	random_bytes(rnd, sizeof(rnd));
	memcpy(out, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN);
	hex_encode(rnd, sizeof(rnd), out + FS_TMP_PREFIX_LEN);
}

/* Links or renames tmp to base inside dfd. */
static int fs_publish(int dfd, const char *tmp, const char *base,
		      bool create_only, bool *tmp_exists)
{
	int r;

	if (!create_only) {
		r = fileio_renameat(dfd, tmp, base, 0);
		if (r == 0)
			*tmp_exists = false;
		return r;
	}
	r = fileio_linkat(dfd, tmp, base);
	if (r == -EPERM || r == -EOPNOTSUPP) {
		/* no hard links here: RENAME_NOREPLACE is just as atomic */
		r = fileio_renameat(dfd, tmp, base, RENAME_NOREPLACE);
		if (r == 0)
			*tmp_exists = false;
	}
	return r;
}

static int fs_put_once(struct store_fs *s, const char *key, char *dir,
		       const void *data, size_t len, bool create_only,
		       const char *meta, size_t meta_len,
		       const char **error_r)
{
	const char *base = key + strlen(dir) + (dir[0] != '\0');
	char tmp[FS_TMP_NAME_SIZE];
	bool tmp_exists = false;
	int dfd = s->root_fd, fd = -1, r;
	size_t done = 0;

	if (dir[0] != '\0') {
		dfd = fs_open_dir(s, dir);
		if (dfd == -ENOENT) {
			r = fs_mkdir_p(s, dir, error_r);
			if (r != 0)
				return r;
			dfd = fs_open_dir(s, dir);
			if (dfd == -ENOENT)
				return FS_RETRY;
		}
		if (dfd < 0)
			return fs_fail(error_r, "open", dir, dfd);
	}
	for (int i = 0; i < 4; i++) {
		fs_tmp_name(tmp);
		fd = fileio_openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			       0644);
		if (fd != -EEXIST)
			break;
	}
	if (fd == -ENOENT) {
		r = FS_RETRY;
		goto out;
	}
	if (fd < 0) {
		r = fs_fail(error_r, "create", key, fd);
		goto out;
	}
	tmp_exists = true;
	while (done < len) {
		r = fileio_pwrite(fd, (const uint8_t *)data + done, len - done,
			      done);
		if (r <= 0) {
			r = fs_fail(error_r, "write", key, r < 0 ? r : -EIO);
			goto out;
		}
		done += (size_t)r;
	}
	if (meta_len > 0) {
		r = fileio_fsetxattr(fd, FS_META_XATTR, meta, meta_len);
		if (r < 0 && r != -ENOTSUP && r != -EOPNOTSUPP) {
			r = fs_fail(error_r, "setxattr", key, r);
			goto out;
		}
	}
	r = fileio_fsync(fd);
	if (r < 0) {
		r = fs_fail(error_r, "fsync", key, r);
		goto out;
	}
	r = fileio_close(fd);
	fd = -1;
	if (r < 0) {
		r = fs_fail(error_r, "close", key, r);
		goto out;
	}
	r = fs_publish(dfd, tmp, base, create_only, &tmp_exists);
	if (r == -EEXIST && create_only) {
		r = fs_error(error_r, KURA_ECONFLICT, "fs: %s: exists", key);
		goto out;
	}
	if (r < 0) {
		r = fs_fail(error_r, create_only ? "link" : "rename", key, r);
		goto out;
	}
	if (tmp_exists) {
		/* before the directory fsync, so that a crash cannot bring
		 * the temp name back */
		r = fileio_unlinkat(dfd, tmp, 0);
		if (r < 0)
			log_warn("fs: unlink %s/%s: %s", dir, tmp,
				 strerror(-r));
		tmp_exists = false;
	}
	r = fileio_fsync(dfd);
	if (r < 0)
		r = fs_fail(error_r, "fsync", dir, r);
out:
	if (fd >= 0)
		fileio_close(fd);
	if (tmp_exists) {
		int r2 = fileio_unlinkat(dfd, tmp, 0);
		if (r2 < 0 && r2 != -ENOENT)
			log_warn("fs: unlink %s/%s: %s", dir, tmp,
				 strerror(-r2));
	}
	if (dfd != s->root_fd)
		fileio_close(dfd);
	return r;
}

static int fs_put(struct store *st, const char *key, const void *data,
		  size_t len, unsigned flags, const char *const *meta,
		  const char **error_r)
{
	struct store_fs *s = fs_of(st);
	char dir[STORE_KEY_MAX + 1];
	char meta_buf[FS_META_MAX];
	size_t meta_len = 0;
	int r;

	r = fs_check_key(key, error_r);
	if (r < 0)
		return r;
	r = fs_meta_encode(meta, meta_buf, &meta_len, error_r);
	if (r < 0)
		return r;
	fs_dirname(key, dir);
	for (int i = 0; i < FS_PUT_RETRIES; i++) {
		r = fs_put_once(s, key, dir, data, len,
				(flags & STORE_PUT_CREATE_ONLY) != 0,
				meta_buf, meta_len, error_r);
		if (r != FS_RETRY)
			return r;
	}
	return fs_error(error_r, KURA_EUNAVAIL,
			"fs: put %s: directory keeps disappearing", key);
}

/* ---- del ---- */

static int fs_del(struct store *st, const char *key, const char **error_r)
{
	struct store_fs *s = fs_of(st);
	char dir[STORE_KEY_MAX + 1];
	size_t n;
	int r;

	r = fs_check_key(key, error_r);
	if (r < 0)
		return r;
	r = fileio_unlinkat(s->root_fd, key, 0);
	if (r == -ENOENT || r == -ENOTDIR || r == -EISDIR)
		return 0;
	if (r < 0)
		return fs_fail(error_r, "unlink", key, r);
	/* Drop directories left empty (one per old snapshot would pile up
	 * otherwise). rmdir fails on a non-empty directory, and a put that
	 * loses its directory to this starts over. */
	n = fs_dirname(key, dir);
	while (n > 0) {
		char *slash;

		if (fileio_unlinkat(s->root_fd, dir, AT_REMOVEDIR) < 0)
			break;
		slash = strrchr(dir, '/');
		n = slash != NULL ? (size_t)(slash - dir) : 0;
		dir[n] = '\0';
	}
	r = fs_fsync_dir(s, dir);
	if (r == -ENOENT)
		r = 0;	/* a concurrent del removed it: nothing to sync */
	if (r < 0)
		return fs_fail(error_r, "fsync", dir, r);
	return 0;
}

/* ---- list ---- */

struct fs_lister {
	const char *prefix;
	size_t prefix_len;
	const char *after;
	size_t keep;		/* max + 1: one more tells "truncated" */
	char **heap;		/* max-heap of the smallest keys seen */
	size_t n, cap;
	bool dropped;		/* a key was pushed out of the heap */
	char path[STORE_KEY_MAX + NAME_MAX + 2];
};

static void fs_heap_down(char **h, size_t n, size_t i)
{
	char *x = h[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && strcmp(h[c + 1], h[c]) > 0)
			c++;
		if (strcmp(h[c], x) <= 0)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

static void fs_lister_add(struct fs_lister *w, const char *key)
{
	size_t i;

	if (w->n == w->keep) {
		if (w->keep == 0 || strcmp(key, w->heap[0]) >= 0) {
			w->dropped = true;
			return;
		}
		free(w->heap[0]);
		w->heap[0] = xstrdup(key);
		fs_heap_down(w->heap, w->n, 0);
		w->dropped = true;
		return;
	}
	xgrow((void **)&w->heap, &w->cap, w->n + 1, sizeof(*w->heap));
	i = w->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (strcmp(w->heap[p], key) >= 0)
			break;
		w->heap[i] = w->heap[p];
		i = p;
	}
	w->heap[i] = xstrdup(key);
}

/* Whether the subtree w->path (ending in '/') can hold a wanted key. */
static bool fs_lister_wants_dir(const struct fs_lister *w, size_t plen)
{
	const char *p = w->path;
	size_t m = plen < w->prefix_len ? plen : w->prefix_len;

	if (strncmp(p, w->prefix, m) != 0)
		return false;
	/* Every key under p is < after when p sorts before after and
	 * after is not inside p. */
	if (w->after != NULL && strcmp(p, w->after) < 0 &&
	    strncmp(w->after, p, plen) != 0)
		return false;
	/* Every key under p is > the largest kept one. */
	if (w->n == w->keep && w->keep > 0 && strcmp(p, w->heap[0]) > 0)
		return false;
	return true;
}

static int fs_walk(struct store_fs *s, struct fs_lister *w, size_t plen,
		   const char **error_r)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = openat(s->root_fd, plen > 0 ? w->path : ".",
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;	/* nothing there (or just removed) */
		return fs_fail(error_r, "opendir", w->path, -errno);
	}
	d = fdopendir(fd);
	if (d == NULL) {
		r = fs_fail(error_r, "opendir", w->path, -errno);
		close(fd);
		return r;
	}
	for (;;) {
		const char *name;
		size_t nlen;
		unsigned char type;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				r = fs_fail(error_r, "readdir", w->path,
					    -errno);
			break;
		}
		name = de->d_name;
		if (name[0] == '.' && (name[1] == '\0' ||
				       (name[1] == '.' && name[2] == '\0')))
			continue;
		if (strncmp(name, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) == 0)
			continue;
		nlen = strlen(name);
		if (plen + nlen > STORE_KEY_MAX)
			continue;
		memcpy(w->path + plen, name, nlen + 1);
		type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd(d), name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0)
				continue;	/* gone meanwhile */
			type = S_ISDIR(st.st_mode) ? DT_DIR :
				S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
		}
		if (type == DT_DIR) {
			w->path[plen + nlen] = '/';
			w->path[plen + nlen + 1] = '\0';
			if (!fs_lister_wants_dir(w, plen + nlen + 1))
				continue;
			r = fs_walk(s, w, plen + nlen + 1, error_r);
			if (r < 0)
				break;
		} else if (type == DT_REG) {
			if (strncmp(w->path, w->prefix, w->prefix_len) != 0)
				continue;
			if (w->after != NULL && strcmp(w->path, w->after) <= 0)
				continue;
			if (!store_key_is_valid(w->path))
				continue;
			fs_lister_add(w, w->path);
		}
	}
	w->path[plen] = '\0';
	closedir(d);
	return r;
}

static int fs_cmp_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fs_list(struct store *st, const char *prefix, const char *after,
		   size_t max, struct store_list *out, const char **error_r)
{
	struct store_fs *s = fs_of(st);
	struct fs_lister *w;
	const char *slash;
	size_t plen;
	int r;

	memset(out, 0, sizeof(*out));
	if (prefix == NULL)
		prefix = "";
	if (strlen(prefix) > STORE_KEY_MAX || prefix[0] == '/' ||
	    strstr(prefix, "..") != NULL)
		return fs_error(error_r, KURA_EINVAL, "fs: invalid prefix");
	w = xcalloc(1, sizeof(*w));
	w->prefix = prefix;
	w->prefix_len = strlen(prefix);
	w->after = after;
	w->keep = max == SIZE_MAX ? max : max + 1;
	/* Start in the deepest directory the prefix names. */
	slash = strrchr(prefix, '/');
	plen = slash != NULL ? (size_t)(slash - prefix) + 1 : 0;
	memcpy(w->path, prefix, plen);
	w->path[plen] = '\0';
	r = fs_walk(s, w, plen, error_r);
	if (r < 0) {
		for (size_t i = 0; i < w->n; i++)
			free(w->heap[i]);
		free(w->heap);
		free(w);
		return r;
	}
	if (w->n > 1)
		qsort(w->heap, w->n, sizeof(*w->heap), fs_cmp_keys);
	out->truncated = w->dropped;
	if (w->n > max) {
		/* the extra key only proves there is more */
		for (size_t i = max; i < w->n; i++)
			free(w->heap[i]);
		w->n = max;
		out->truncated = true;
	}
	out->keys = w->heap;
	out->count = w->n;
	free(w);
	return 0;
}

/* ---- create / destroy ---- */

static void fs_destroy(struct store *st)
{
	struct store_fs *s = fs_of(st);

	if (close(s->root_fd) < 0)
		log_warn("fs: close %s: %s", s->root, strerror(errno));
	free(s->root);
	free(s);
}

static const struct store_ops fs_ops = {
	.name = "fs",
	.get = fs_get,
	.put = fs_put,
	.head = fs_head,
	.del = fs_del,
	.list = fs_list,
	.destroy = fs_destroy,
};

/* mkdir -p for the root, with plain syscalls (runs once, at start). */
static int fs_mkdir_root(const char *dir)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (i < len)
			path[i] = '/';
	}
	return 0;
}

int store_fs_create(const char *dir, struct store **store_r,
		    const char **error_r)
{
	struct store_fs *s;
	int fd, r;

	*store_r = NULL;
	r = fs_mkdir_root(dir);
	if (r < 0)
		return fs_fail(error_r, "mkdir", dir, r);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fs_fail(error_r, "open", dir, -errno);
	s = xcalloc(1, sizeof(*s));
	s->store.ops = &fs_ops;
	s->root_fd = fd;
	s->root = xstrdup(dir);
	*store_r = &s->store;
	return 0;
}
