/* A store seen through a key prefix: "s3:http://host/bucket/some/prefix"
 * keeps every key under "some/prefix/" of the bucket, so that several
 * deployments (or test runs) can share one bucket. Wraps any backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "storage/store.h"

struct store_prefix {
	struct store s;
	struct store *inner;
	char *prefix;		/* ends with '/' */
	size_t plen;
};

static int full_key(struct store_prefix *p, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	if (p->plen + klen + 1 > outlen)
		return KURA_EINVAL;
	memcpy(out, p->prefix, p->plen);
	memcpy(out + p->plen, key, klen + 1);
	return 0;
}

#define WITH_KEY(p, key, k)                                            \
	char k[STORE_KEY_MAX + 256];                                   \
	if (full_key(p, key, k, sizeof(k)) < 0) {                      \
		if (error_r != NULL)                                   \
			*error_r = "store: key too long with prefix";  \
		return KURA_EINVAL;                                    \
	}

static int px_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, const char **error_r)
{
	struct store_prefix *p = (struct store_prefix *)s;
	WITH_KEY(p, key, k);
	return store_get(p->inner, k, off, len, out, error_r);
}

static int px_put(struct store *s, const char *key, const void *data, size_t len,
		  unsigned flags, const char *const *meta, const char **error_r)
{
	struct store_prefix *p = (struct store_prefix *)s;
	WITH_KEY(p, key, k);
	return store_put(p->inner, k, data, len, flags, meta, error_r);
}

static int px_head(struct store *s, const char *key, struct store_stat *st_r,
		   const char **error_r)
{
	struct store_prefix *p = (struct store_prefix *)s;
	WITH_KEY(p, key, k);
	return store_head(p->inner, k, st_r, error_r);
}

static int px_del(struct store *s, const char *key, const char **error_r)
{
	struct store_prefix *p = (struct store_prefix *)s;
	WITH_KEY(p, key, k);
	return store_del(p->inner, k, error_r);
}

static int px_list(struct store *s, const char *prefix, const char *after, size_t max,
		   struct store_list *out, const char **error_r)
{
	struct store_prefix *p = (struct store_prefix *)s;
	WITH_KEY(p, prefix, k);
	char a[STORE_KEY_MAX + 256];
	if (after != NULL && full_key(p, after, a, sizeof(a)) < 0)
		return KURA_EINVAL;
	int ret = store_list(p->inner, k, after != NULL ? a : NULL, max, out, error_r);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < out->count; i++) {
		char *key = out->keys[i];
		size_t l = strlen(key);
		if (l >= p->plen && memcmp(key, p->prefix, p->plen) == 0)
			memmove(key, key + p->plen, l - p->plen + 1);
	}
	return 0;
}

static void px_destroy(struct store *s)
{
	struct store_prefix *p = (struct store_prefix *)s;
	store_close(&p->inner);
	free(p->prefix);
	free(p);
}

static const struct store_ops prefix_ops = {
	.name = "prefix",
	.get = px_get,
	.put = px_put,
	.head = px_head,
	.del = px_del,
	.list = px_list,
	.destroy = px_destroy,
};

struct store *store_prefix_wrap(struct store *inner, const char *prefix)
{
	struct store_prefix *p = xcalloc(1, sizeof(*p));
	size_t l = strlen(prefix);
	while (l > 0 && prefix[l - 1] == '/')
		l--;
	p->prefix = xmalloc(l + 2);
	memcpy(p->prefix, prefix, l);
	p->prefix[l] = '/';
	p->prefix[l + 1] = '\0';
	p->plen = l + 1;
	p->inner = inner;
	p->s.ops = &prefix_ops;
	return &p->s;
}
