/* Unit tests for cache/: put/get/del/flush, batch visibility, long keys,
 * persistence across reopen, concurrent threads. */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "tests/unit/test.h"

#define MAP_SIZE (64ull << 20)

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Gets key into a fresh buffer and compares with want (NULL: expect
 * not found). */
static bool get_is(struct cache *c, const char *key, const char *want)
{
	struct buf b;
	buf_init(&b, 0);
	int rc = cache_get(c, key, &b);
	bool ok;
	if (want == NULL)
		ok = rc == KURA_ENOTFOUND;
	else
		ok = rc == 0 && buf_used(&b) == strlen(want) &&
		     (b.data == NULL ||
		      memcmp(buf_head(&b), want, strlen(want)) == 0);
	buf_deinit(&b);
	return ok;
}

struct thr_arg {
	struct cache *c;
	int id;
	int errors;
};

static void *thr_main(void *p)
{
	struct thr_arg *ta = p;
	char key[64], val[64];
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "t%d/k%d", ta->id, i);
		snprintf(val, sizeof(val), "value-%d-%d", ta->id, i);
		cache_put(ta->c, key, val, strlen(val));
		if (!get_is(ta->c, key, val))
			ta->errors++;
		if (i % 7 == 0) {
			/* Another thread's keys: absent or right, never
			 * wrong. */
			int other = (ta->id + 1) % 4;
			snprintf(key, sizeof(key), "t%d/k%d", other, i / 2);
			struct buf b;
			buf_init(&b, 0);
			int rc = cache_get(ta->c, key, &b);
			snprintf(val, sizeof(val), "value-%d-%d", other,
				 i / 2);
			if (rc == 0 && (buf_used(&b) != strlen(val) ||
					memcmp(buf_head(&b), val,
					       strlen(val)) != 0))
				ta->errors++;
			else if (rc != 0 && rc != KURA_ENOTFOUND)
				ta->errors++;
			buf_deinit(&b);
		}
		if (i % 500 == 0)
			cache_flush(ta->c);
	}
	return NULL;
}

int main(void)
{
	char dir[] = "/tmp/kura-test-cache-XXXXXX";
	const char *error = NULL;
	struct cache *c = NULL;
	char longkey[1100];

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	char cdir[sizeof(dir) + 8];
	snprintf(cdir, sizeof(cdir), "%s/lmdb", dir);

	CHECK_EQ_INT(cache_open(cdir, MAP_SIZE, &c, &error), 0);
	CHECK(c != NULL);

	/* Missing key, then a put visible before any flush. */
	CHECK(get_is(c, "a/b", NULL));
	cache_put(c, "a/b", "hello", 5);
	CHECK(get_is(c, "a/b", "hello"));
	cache_put(c, "a/b", "world!", 6);
	CHECK(get_is(c, "a/b", "world!"));
	cache_put(c, "empty", "", 0);
	CHECK(get_is(c, "empty", ""));
	cache_flush(c);
	CHECK(get_is(c, "a/b", "world!"));
	CHECK(get_is(c, "empty", ""));

	/* Bounded output buffer. */
	struct buf small;
	buf_init(&small, 3);
	CHECK_EQ_INT(cache_get(c, "a/b", &small), KURA_ETOOBIG);
	buf_deinit(&small);

	/* Appends to existing content. */
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "x:");
	CHECK_EQ_INT(cache_get(c, "a/b", &b), 0);
	CHECK(buf_used(&b) == 8 && memcmp(buf_head(&b), "x:world!", 8) == 0);
	buf_deinit(&b);

	/* Delete: pending, then flushed. */
	cache_del(c, "a/b");
	CHECK(get_is(c, "a/b", NULL));
	cache_flush(c);
	CHECK(get_is(c, "a/b", NULL));
	cache_del(c, "never-existed");
	cache_flush(c);
	CHECK(get_is(c, "never-existed", NULL));

	/* Keys longer than LMDB allows, and keys that look like hashed
	 * ones. */
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	cache_put(c, longkey, "long", 4);
	CHECK(get_is(c, longkey, "long"));
	cache_flush(c);
	CHECK(get_is(c, longkey, "long"));
	longkey[5] = 'x';
	CHECK(get_is(c, longkey, NULL));
	longkey[5] = 'k';
	cache_put(c, "#0000000000000001", "hash-like", 9);
	cache_flush(c);
	CHECK(get_is(c, "#0000000000000001", "hash-like"));

	/* A batch bigger than the flush threshold: the background flusher
	 * writes while puts go on; every value stays visible. */
	char key[64], val[64];
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "batch/%05d", i);
		snprintf(val, sizeof(val), "v%d", i * 7);
		cache_put(c, key, val, strlen(val));
	}
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "batch/%05d", i);
		snprintf(val, sizeof(val), "v%d", i * 7);
		if (!get_is(c, key, val))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);

	/* A large value. */
	size_t big_len = 3u << 20;
	char *big = malloc(big_len + 1);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + i % 26);
	big[big_len] = '\0';
	cache_put(c, "big", big, big_len);
	CHECK(get_is(c, "big", big));

	/* Persistence: close flushes; reopen sees everything. */
	cache_put(c, "unflushed", "still here", 10);
	cache_close(&c);
	CHECK(c == NULL);
	CHECK_EQ_INT(cache_open(cdir, MAP_SIZE, &c, &error), 0);
	CHECK(get_is(c, "unflushed", "still here"));
	CHECK(get_is(c, "empty", ""));
	CHECK(get_is(c, "a/b", NULL));
	CHECK(get_is(c, longkey, "long"));
	CHECK(get_is(c, "big", big));
	bad = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "batch/%05d", i);
		snprintf(val, sizeof(val), "v%d", i * 7);
		if (!get_is(c, key, val))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	free(big);

	/* Concurrent threads putting, getting and flushing. */
	pthread_t th[4];
	struct thr_arg ta[4];
	for (int i = 0; i < 4; i++) {
		ta[i] = (struct thr_arg){ c, i, 0 };
		pthread_create(&th[i], NULL, thr_main, &ta[i]);
	}
	int errs = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		errs += ta[i].errors;
	}
	CHECK_EQ_INT(errs, 0);
	cache_close(&c);
	CHECK_EQ_INT(cache_open(cdir, MAP_SIZE, &c, &error), 0);
	CHECK(get_is(c, "t3/k2999", "value-3-2999"));
	CHECK(get_is(c, "t0/k0", "value-0-0"));

	/* A full map starts over instead of failing forever. */
	cache_close(&c);
	char cdir2[sizeof(dir) + 8];
	snprintf(cdir2, sizeof(cdir2), "%s/tiny", dir);
	CHECK_EQ_INT(cache_open(cdir2, 1u << 20, &c, &error), 0);
	char *chunk = calloc(1, 100000);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "chunk/%d", i);
		cache_put(c, key, chunk, 100000);
		cache_flush(c);
	}
	free(chunk);
	cache_put(c, "after-full", "ok", 2);
	cache_flush(c);
	CHECK(get_is(c, "after-full", "ok"));
	cache_close(&c);

	/* NULL cache is a no-op. */
	cache_put(NULL, "x", "y", 1);
	cache_flush(NULL);
	CHECK(get_is(NULL, "x", NULL));

	/* Opening a path that cannot be a directory fails cleanly. */
	CHECK(cache_open("/proc/version/x", MAP_SIZE, &c, &error) < 0);
	CHECK(c == NULL);

	rm_tree(dir);
	return test_done("cache");
}
