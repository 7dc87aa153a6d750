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

/* Opens a backend from a spec: "fs:DIR" or "s3:http(s)://HOST:PORT/BUCKET"
 * (keys from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * optional AWS_SESSION_TOKEN, AWS_REGION (default us-east-1),
 * KURA_S3_CA_FILE, KURA_S3_ADDRESSING=virtual for BUCKET.HOST URLs).
 * Returns 0 or a negative error with *error_r set. */
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

/* Wraps inner so that every key lives under prefix + "/" (takes
 * ownership of inner). For "s3:http://host/bucket/PREFIX" specs. */
struct store *store_prefix_wrap(struct store *inner, const char *prefix);

/* The fs backend: objects are files under dir (created if missing). */
int store_fs_create(const char *dir, struct store **store_r,
		    const char **error_r);

/* The s3 backend (storage/store_s3.c): objects in one bucket of an
 * S3-compatible store (AWS S3, Ceph RGW, MinIO), signed with AWS SigV4
 * through libcurl. Inside a task a request is driven by the thread's
 * loop (one curl multi handle per thread, sockets watched through the
 * ring) and only the calling task waits; outside a task it blocks.
 * Idempotent requests (GET, HEAD, DELETE, LIST, plain PUT) are retried
 * with jittered exponential backoff on 5xx, 408, 429, timeouts and
 * connection errors; so is a create-only PUT, whose 412 after a retry
 * counts as success when the stored object carries this call's put id
 * (x-amz-meta-kura-put-id). The backend must honour "If-None-Match: *"
 * on PUT (store_check_create_only()).
 *
 * Every store of one thread shares that thread's multi handle and
 * connection cache; a thread's tasks must all run on one loop at a time
 * (a task on another loop gets KURA_EUNAVAIL while requests of the
 * first are in flight). Destroy the stores before the loop they ran on.
 * User metadata names are sent as x-amz-meta-NAME (S3 folds them to
 * lower case); "kura-put-id" is reserved; an entry with an empty value
 * is not sent. */
struct store_s3_options {
	const char *access_key;		/* required */
	const char *secret_key;		/* required */
	const char *session_token;	/* NULL, or x-amz-security-token */
	const char *region;		/* NULL or "" = "us-east-1" */
	const char *ca_file;		/* NULL = the system's CA bundle */
	bool virtual_host;		/* BUCKET.HOST/KEY, not HOST/BUCKET/KEY */
	unsigned connect_timeout_ms;	/* 0 = 5000 */
	unsigned timeout_ms;		/* 0 = 30000, per attempt */
	unsigned max_attempts;		/* 0 = 4 (1 = no retries) */
	unsigned retry_base_ms;		/* 0 = 50: first backoff, doubling */
	unsigned max_host_connections;	/* 0 = 64, per thread and host */
};

/* url: "http://HOST[:PORT]/BUCKET" or "https://..." (an "s3:" in front
 * is skipped); no credentials, query or path below the bucket. The
 * strings of opt are copied. No request is made: a wrong endpoint or
 * key shows on the first call. Returns 0, or KURA_EINVAL with *error_r
 * set (the text never repeats the secret key). */
int store_s3_create(const char *url, const struct store_s3_options *opt,
		    struct store **store_r, const char **error_r);

/* Start-up check that s honours create-only PUT (DESIGN.md §5): puts a
 * fresh probe key "kura-probe/create-only/<random>" create-only twice
 * and deletes it. Returns 0 when the second put failed with
 * KURA_ECONFLICT; KURA_EINVAL when it succeeded (the backend ignores
 * If-None-Match: refuse multi-node operation); the store's error when a
 * request failed. May suspend. */
int store_check_create_only(struct store *s, const char **error_r);

#endif
