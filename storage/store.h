/* store: the object store interface (DESIGN.md §4). A backend is a
 * vtable; IMAP never reaches into a backend, a backend never knows IMAP.
 *
 * Every call may suspend the calling task (lib/task.h) while I/O is in
 * flight; called outside a task it blocks instead (tools, tests).
 *
 * Keys are printable ASCII (0x20-0x7e) without "..", not starting with
 * '/', without empty or "." components (no "//", no trailing '/'), at
 * most 1024 bytes (store_key_is_valid()). The fs backend also refuses a
 * component longer than 255 bytes or starting with ".tmp.", and cannot
 * hold both K and K/...: do not use a key as a prefix directory of
 * another. Errors (negative returns):
 *   KURA_ENOTFOUND  the key does not exist
 *   KURA_ECONFLICT  STORE_PUT_CREATE_ONLY and the key exists (412)
 *   KURA_ETOOBIG    the object does not fit in out->max
 *   KURA_EUNAVAIL   the backend failed; *error_r says how
 *   KURA_EINVAL     a bad key
 * error_r may be NULL; the text it gets is static or thread-local and
 * valid until the next call on this thread. On error nothing is appended
 * to a get's buffer. */
#ifndef KURA_STORE_H
#define KURA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define STORE_KEY_MAX 1024
#define STORE_LEN_ALL UINT64_MAX

enum store_put_flags {
	STORE_PUT_NONE = 0,
	/* Fails with KURA_ECONFLICT when the key exists; atomic against
	 * concurrent create-only PUTs of the same key. */
	STORE_PUT_CREATE_ONLY = 1 << 0,
};

struct store_stat {
	uint64_t size;
	int64_t mtime;	/* seconds since the epoch */
};

struct store_list {
	char **keys;		/* malloc'ed, sorted ascending */
	size_t count;
	bool truncated;		/* more keys exist after keys[count-1] */
};

struct store;

struct store_ops {
	const char *name;
	/* Appends bytes [off, off+len) of the object to out (len may be
	 * STORE_LEN_ALL; a range past the end is cut at the end). */
	int (*get)(struct store *s, const char *key, uint64_t off,
		   uint64_t len, struct buf *out, const char **error_r);
	/* Stores data durably (fsynced / acknowledged by the backend)
	 * before returning 0. meta: NULL or NULL-terminated "name=value"
	 * strings kept with the object (x-amz-meta-name; the fs backend
	 * keeps them NUL-separated in the xattr "user.kura.meta" where the
	 * file system has xattrs). Names are letters, digits, '-', '_';
	 * values printable ASCII; at most 2 KiB in all (S3's limit), else
	 * KURA_EINVAL. */
	int (*put)(struct store *s, const char *key, const void *data,
		   size_t len, unsigned flags, const char *const *meta,
		   const char **error_r);
	int (*head)(struct store *s, const char *key, struct store_stat *st_r,
		    const char **error_r);
	/* Deleting a missing key is not an error. Durable on return. */
	int (*del)(struct store *s, const char *key, const char **error_r);
	/* Keys starting with prefix and sorting (strcmp) strictly after
	 * `after` (NULL = from the start), at most max of them; out is
	 * filled on success and must be released with store_list_free().
	 * Page with after = the last key of the previous page while
	 * out->truncated. */
	int (*list)(struct store *s, const char *prefix, const char *after,
		    size_t max, struct store_list *out, const char **error_r);
	void (*destroy)(struct store *s);
};

struct store {
	const struct store_ops *ops;
};

/* Opens a backend from a spec: "fs:DIR". Returns 0 or a negative error
 * with *error_r set. */
int store_open(const char *spec, struct store **store_r, const char **error_r);
void store_close(struct store **s);
void store_list_free(struct store_list *l);
bool store_key_is_valid(const char *key);

static inline int store_get(struct store *s, const char *key, uint64_t off,
			    uint64_t len, struct buf *out, const char **error_r)
{
	return s->ops->get(s, key, off, len, out, error_r);
}
static inline int store_put(struct store *s, const char *key, const void *data,
			    size_t len, unsigned flags, const char *const *meta,
			    const char **error_r)
{
	return s->ops->put(s, key, data, len, flags, meta, error_r);
}
static inline int store_head(struct store *s, const char *key,
			     struct store_stat *st_r, const char **error_r)
{
	return s->ops->head(s, key, st_r, error_r);
}
static inline int store_del(struct store *s, const char *key,
			    const char **error_r)
{
	return s->ops->del(s, key, error_r);
}
static inline int store_list(struct store *s, const char *prefix,
			     const char *after, size_t max,
			     struct store_list *out, const char **error_r)
{
	return s->ops->list(s, prefix, after, max, out, error_r);
}

/* The fs backend: objects are files under dir (created if missing). */
int store_fs_create(const char *dir, struct store **store_r,
		    const char **error_r);

#endif
