/* Unit tests for storage/store.c and the fs backend: the whole contract
 * of storage/store.h, once with blocking syscalls and once inside a task
 * (through the ring); the create-only race across processes and
 * threads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"
#include "tests/unit/test.h"

static char tmpdir[] = "/tmp/kura-test-store-XXXXXX";

static void rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", path);
}

static bool path_exists(const char *rel)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/data/%s", tmpdir, rel);
	return lstat(p, &st) == 0;
}

static void put_ok(struct store *s, const char *key, const char *data)
{
	const char *err = NULL;
	int r = store_put(s, key, data, strlen(data), STORE_PUT_NONE, NULL,
			  &err);

	if (r != 0)
		fprintf(stderr, "put %s: %s\n", key, err ? err : "?");
	CHECK_EQ_INT(r, 0);
}

static bool get_is(struct store *s, const char *key, const char *want)
{
	struct buf b;
	const char *err = NULL;
	bool ok;
	int r;

	buf_init(&b, 0);
	r = store_get(s, key, 0, STORE_LEN_ALL, &b, &err);
	ok = r == 0 && buf_used(&b) == strlen(want) &&
		memcmp(buf_head(&b), want, strlen(want)) == 0;
	buf_deinit(&b);
	return ok;
}

/* ---- the contract, run both outside and inside a task ---- */

static void check_get(struct store *s, const char *p)
{
	char key[128];
	struct buf b;
	const char *err;
	int r;

	snprintf(key, sizeof(key), "%s/obj/one", p);
	put_ok(s, key, "hello, world");
	CHECK(get_is(s, key, "hello, world"));

	/* ranges */
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, key, 7, 5, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 5);
	CHECK(memcmp(buf_head(&b), "world", 5) == 0);
	/* appends to what the buffer holds; a range past the end is cut */
	CHECK_EQ_INT(store_get(s, key, 10, 100, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 7);
	CHECK(memcmp(buf_head(&b), "worldld", 7) == 0);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, key, 12, STORE_LEN_ALL, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(store_get(s, key, 1000, 5, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(store_get(s, key, 0, 0, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	/* too big: checked before reading, buffer untouched */
	buf_init(&b, 8);
	CHECK(buf_append(&b, "ab", 2));
	err = NULL;
	r = store_get(s, key, 0, STORE_LEN_ALL, &b, &err);
	CHECK_EQ_INT(r, KURA_ETOOBIG);
	CHECK(err != NULL && strstr(err, key) != NULL);
	CHECK_EQ_INT(buf_used(&b), 2);
	/* a range that fits does */
	CHECK_EQ_INT(store_get(s, key, 0, 5, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 7);
	CHECK(memcmp(buf_head(&b), "abhello", 7) == 0);
	/* exactly full */
	CHECK_EQ_INT(store_get(s, key, 0, 1, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 8);
	CHECK_EQ_INT(store_get(s, key, 0, 1, &b, NULL), KURA_ETOOBIG);
	buf_deinit(&b);

	/* missing */
	buf_init(&b, 0);
	err = NULL;
	snprintf(key, sizeof(key), "%s/obj/missing", p);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, &err),
		     KURA_ENOTFOUND);
	CHECK(err != NULL);
	snprintf(key, sizeof(key), "%s/nodir/at/all", p);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL),
		     KURA_ENOTFOUND);
	/* a "directory" is not an object */
	snprintf(key, sizeof(key), "%s/obj", p);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL),
		     KURA_ENOTFOUND);
	/* below an object */
	snprintf(key, sizeof(key), "%s/obj/one/x", p);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	/* empty object */
	snprintf(key, sizeof(key), "%s/obj/empty", p);
	CHECK_EQ_INT(store_put(s, key, "", 0, STORE_PUT_NONE, NULL, NULL), 0);
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	/* a large object with every byte value */
	size_t big = 3 * 1024 * 1024 + 17;
	uint8_t *data = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 13));
	snprintf(key, sizeof(key), "%s/obj/big", p);
	CHECK_EQ_INT(store_put(s, key, data, big, STORE_PUT_NONE, NULL, NULL),
		     0);
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), big);
	CHECK(buf_used(&b) == big && memcmp(buf_head(&b), data, big) == 0);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, key, big - 100, 1000, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 100);
	CHECK(memcmp(buf_head(&b), data + big - 100, 100) == 0);
	buf_deinit(&b);
	free(data);
}

static void check_put(struct store *s, const char *p)
{
	char key[128];
	const char *err;
	struct store_stat st;
	int64_t now = time_wall_sec();

	/* replace */
	snprintf(key, sizeof(key), "%s/put/a", p);
	put_ok(s, key, "v1");
	put_ok(s, key, "version two");
	CHECK(get_is(s, key, "version two"));

	/* create-only */
	snprintf(key, sizeof(key), "%s/put/c", p);
	CHECK_EQ_INT(store_put(s, key, "first", 5, STORE_PUT_CREATE_ONLY,
			       NULL, NULL), 0);
	err = NULL;
	CHECK_EQ_INT(store_put(s, key, "second", 6, STORE_PUT_CREATE_ONLY,
			       NULL, &err), KURA_ECONFLICT);
	CHECK(err != NULL);
	CHECK(get_is(s, key, "first"));
	/* a plain put still replaces it */
	put_ok(s, key, "third");
	CHECK(get_is(s, key, "third"));

	/* head */
	CHECK_EQ_INT(store_head(s, key, &st, NULL), 0);
	CHECK_EQ_INT(st.size, 5);
	CHECK(st.mtime >= now - 5 && st.mtime <= now + 5);
	snprintf(key, sizeof(key), "%s/put/none", p);
	err = NULL;
	CHECK_EQ_INT(store_head(s, key, &st, &err), KURA_ENOTFOUND);
	CHECK(err != NULL);
	snprintf(key, sizeof(key), "%s/put", p);
	CHECK_EQ_INT(store_head(s, key, &st, NULL), KURA_ENOTFOUND);

	/* deep new directories */
	snprintf(key, sizeof(key), "%s/deep/a/b/c/d/e/f", p);
	put_ok(s, key, "deep");
	CHECK(get_is(s, key, "deep"));

	/* metadata: kept in an xattr where the file system has them */
	static const char *const meta[] = { "guid=0123abcd", "x-size=12",
					    NULL };
	snprintf(key, sizeof(key), "%s/put/meta", p);
	CHECK_EQ_INT(store_put(s, key, "m", 1, STORE_PUT_CREATE_ONLY, meta,
			       NULL), 0);
	char path[512], val[128];
	snprintf(path, sizeof(path), "%s/data/%s", tmpdir, key);
	ssize_t n = getxattr(path, "user.kura.meta", val, sizeof(val));
	if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP)) {
		fprintf(stderr, "note: no user xattrs on %s\n", tmpdir);
	} else {
		static const char want[] = "guid=0123abcd\0x-size=12";
		CHECK_EQ_INT(n, sizeof(want));
		CHECK(n == sizeof(want) && memcmp(val, want, sizeof(want)) == 0);
	}
	static const char *const bad_meta1[] = { "novalue", NULL };
	static const char *const bad_meta2[] = { "=x", NULL };
	static const char *const bad_meta3[] = { "a b=c", NULL };
	static const char *const bad_meta4[] = { "a=\x01", NULL };
	snprintf(key, sizeof(key), "%s/put/badmeta", p);
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, bad_meta1, NULL),
		     KURA_EINVAL);
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, bad_meta2, NULL),
		     KURA_EINVAL);
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, bad_meta3, NULL),
		     KURA_EINVAL);
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, bad_meta4, NULL),
		     KURA_EINVAL);
	char *huge = xmalloc(3000);
	memset(huge, 'v', 2999);
	huge[0] = 'k';
	huge[1] = '=';
	huge[2999] = '\0';
	const char *const big_meta[] = { huge, NULL };
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, big_meta, NULL),
		     KURA_EINVAL);
	free(huge);
	CHECK_EQ_INT(store_head(s, key, &st, NULL), KURA_ENOTFOUND);

	/* a backend error: the parent "directory" is an object */
	snprintf(key, sizeof(key), "%s/put/a/below", p);
	err = NULL;
	CHECK_EQ_INT(store_put(s, key, "x", 1, 0, NULL, &err), KURA_EUNAVAIL);
	CHECK(err != NULL && strncmp(err, "fs: ", 4) == 0 &&
	      strstr(err, "Not a directory") != NULL);

	/* no temp file is left behind */
	char dirp[512];
	snprintf(dirp, sizeof(dirp), "%s/data/%s/put", tmpdir, p);
	DIR *d = opendir(dirp);
	CHECK(d != NULL);
	int tmps = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".tmp.", 5) == 0)
			tmps++;
	if (d != NULL)
		closedir(d);
	CHECK_EQ_INT(tmps, 0);
}

static void check_del(struct store *s, const char *p)
{
	char key[128], rel[128];
	struct store_stat st;

	snprintf(key, sizeof(key), "%s/del/x/y/z", p);
	put_ok(s, key, "z");
	snprintf(key, sizeof(key), "%s/del/x/keep", p);
	put_ok(s, key, "k");
	snprintf(key, sizeof(key), "%s/del/x/y/z", p);
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	CHECK_EQ_INT(store_head(s, key, &st, NULL), KURA_ENOTFOUND);
	/* the emptied directory went, the non-empty parent stayed */
	snprintf(rel, sizeof(rel), "%s/del/x/y", p);
	CHECK(!path_exists(rel));
	snprintf(rel, sizeof(rel), "%s/del/x", p);
	CHECK(path_exists(rel));
	/* missing keys and missing directories are fine */
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	snprintf(key, sizeof(key), "%s/del/nothing/here", p);
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	/* a directory is not an object */
	snprintf(key, sizeof(key), "%s/del", p);
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	CHECK(path_exists(rel));
	snprintf(key, sizeof(key), "%s/del/x/keep", p);
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	snprintf(rel, sizeof(rel), "%s/del", p);
	CHECK(!path_exists(rel));
	CHECK(path_exists(p));
	/* put works again where directories were removed */
	put_ok(s, key, "again");
	CHECK(get_is(s, key, "again"));
}

static void check_list(struct store *s, const char *p)
{
	static const char *const names[] = {
		"log/0000000000000003", "log/0000000000000001",
		"log/0000000000000002", "log/0000000000000010",
		"m/aa", "m/ab", "m/b", "snap/0000000000000002/list",
		"snap/0000000000000002/mbox-1", "top",
	};
	char key[128], pre[128], after[128];
	struct store_list l;
	const char *err;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(key, sizeof(key), "%s/list/%s", p, names[i]);
		put_ok(s, key, names[i]);
	}
	/* a stray temp file and a non-key name are skipped */
	char tp[512];
	snprintf(tp, sizeof(tp), "%s/data/%s/list/log/.tmp.0123456789abcdef",
		 tmpdir, p);
	int fd = open(tp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	snprintf(tp, sizeof(tp), "%s/data/%s/list/m/bad..name", tmpdir, p);
	fd = open(tp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);

	/* everything, sorted */
	snprintf(pre, sizeof(pre), "%s/list/", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 100, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 10);
	CHECK(!l.truncated);
	int sorted = 1;
	for (size_t i = 1; i < l.count; i++)
		if (strcmp(l.keys[i - 1], l.keys[i]) >= 0)
			sorted = 0;
	CHECK(sorted);
	snprintf(key, sizeof(key), "%s/list/log/0000000000000001", p);
	CHECK(l.count > 0 && strcmp(l.keys[0], key) == 0);
	snprintf(key, sizeof(key), "%s/list/top", p);
	CHECK(l.count == 10 && strcmp(l.keys[9], key) == 0);
	store_list_free(&l);
	CHECK(l.keys == NULL && l.count == 0);

	/* prefix that ends inside a name */
	snprintf(pre, sizeof(pre), "%s/list/m/a", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 100, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	snprintf(key, sizeof(key), "%s/list/m/ab", p);
	CHECK(l.count == 2 && strcmp(l.keys[1], key) == 0);
	store_list_free(&l);
	snprintf(pre, sizeof(pre), "%s/list/s", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 100, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	store_list_free(&l);

	/* paging with max and after */
	snprintf(pre, sizeof(pre), "%s/list/log/", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 2, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	CHECK(l.truncated);
	snprintf(key, sizeof(key), "%s/list/log/0000000000000002", p);
	CHECK(l.count == 2 && strcmp(l.keys[1], key) == 0);
	snprintf(after, sizeof(after), "%s", l.count == 2 ? l.keys[1] : "");
	store_list_free(&l);
	CHECK_EQ_INT(store_list(s, pre, after, 2, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	CHECK(!l.truncated);
	snprintf(key, sizeof(key), "%s/list/log/0000000000000003", p);
	CHECK(l.count == 2 && strcmp(l.keys[0], key) == 0);
	store_list_free(&l);
	/* exactly max left: not truncated */
	CHECK_EQ_INT(store_list(s, pre, NULL, 4, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 4);
	CHECK(!l.truncated);
	store_list_free(&l);
	/* max 0 */
	CHECK_EQ_INT(store_list(s, pre, NULL, 0, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(l.truncated);
	store_list_free(&l);
	/* after that is not a key, and after past everything */
	snprintf(after, sizeof(after), "%s/list/log/00000000000000025", p);
	CHECK_EQ_INT(store_list(s, pre, after, 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	store_list_free(&l);
	snprintf(after, sizeof(after), "%s/list/m/", p);
	snprintf(pre, sizeof(pre), "%s/list/", p);
	CHECK_EQ_INT(store_list(s, pre, after, 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 6);
	store_list_free(&l);
	CHECK_EQ_INT(store_list(s, pre, "~", 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(!l.truncated);
	store_list_free(&l);
	/* paging across subdirectories gives every key once */
	size_t total = 0;
	after[0] = '\0';
	for (int page = 0; page < 20; page++) {
		CHECK_EQ_INT(store_list(s, pre, after[0] ? after : NULL, 3, &l,
					NULL), 0);
		total += l.count;
		if (l.count > 0)
			snprintf(after, sizeof(after), "%s",
				 l.keys[l.count - 1]);
		bool more = l.truncated;
		store_list_free(&l);
		if (!more)
			break;
	}
	CHECK_EQ_INT(total, 10);

	/* nothing there */
	snprintf(pre, sizeof(pre), "%s/list/nothing/", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(!l.truncated);
	store_list_free(&l);
	err = NULL;
	CHECK_EQ_INT(store_list(s, "../x", NULL, 10, &l, &err), KURA_EINVAL);
	CHECK(err != NULL);
}

static void check_invalid(struct store *s)
{
	static const char *const bad[] = {
		"", "/a", "a/../b", "..", "a/..", "a..b", "a//b", "a/", "./a",
		"a/./b", "a/.", ".", "a\nb", "a\x7f", "caf\xc3\xa9",
		".tmp.1234", "x/.tmp.abc",
	};
	struct buf b;
	struct store_stat st;
	struct store_list l;
	char longkey[STORE_KEY_MAX + 2];
	char longname[300];

	buf_init(&b, 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *err = NULL;
		CHECK_EQ_INT(store_put(s, bad[i], "x", 1, 0, NULL, &err),
			     KURA_EINVAL);
		CHECK(err != NULL);
		CHECK_EQ_INT(store_get(s, bad[i], 0, 1, &b, NULL),
			     KURA_EINVAL);
		CHECK_EQ_INT(store_head(s, bad[i], &st, NULL), KURA_EINVAL);
		CHECK_EQ_INT(store_del(s, bad[i], NULL), KURA_EINVAL);
	}
	buf_deinit(&b);
	memset(longkey, 'k', sizeof(longkey));
	for (size_t i = 100; i < sizeof(longkey); i += 100)
		longkey[i] = '/';
	longkey[STORE_KEY_MAX] = '\0';
	CHECK(store_key_is_valid(longkey));
	longkey[STORE_KEY_MAX] = 'k';
	longkey[STORE_KEY_MAX + 1] = '\0';
	CHECK(!store_key_is_valid(longkey));
	CHECK_EQ_INT(store_put(s, longkey, "x", 1, 0, NULL, NULL), KURA_EINVAL);
	/* a component longer than a file name */
	memset(longname, 'n', sizeof(longname));
	longname[sizeof(longname) - 1] = '\0';
	CHECK(store_key_is_valid(longname));
	CHECK_EQ_INT(store_put(s, longname, "x", 1, 0, NULL, NULL),
		     KURA_EINVAL);
	/* a maximal valid key works */
	longkey[STORE_KEY_MAX] = '\0';
	CHECK_EQ_INT(store_put(s, longkey, "x", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(store_head(s, longkey, &st, NULL), 0);
	CHECK_EQ_INT(store_list(s, "kkk", NULL, 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 1);
	store_list_free(&l);
	CHECK_EQ_INT(store_del(s, longkey, NULL), 0);

	CHECK(store_key_is_valid("u/ab/user@example.com/m/0123"));
	CHECK(store_key_is_valid("a b/c.d/.e/f-_~!"));
	CHECK(store_key_is_valid("x"));
	CHECK(!store_key_is_valid(NULL));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (i != 15 && i != 16)	/* .tmp. is fs-only */
			CHECK(!store_key_is_valid(bad[i]));
}

static void run_suite(struct store *s, const char *p)
{
	check_get(s, p);
	check_put(s, p);
	check_del(s, p);
	check_list(s, p);
}

/* ---- inside a task ---- */

struct suite_arg {
	struct store *s;
	const char *prefix;
	int done;
};

static void suite_task(void *arg)
{
	struct suite_arg *a = arg;

	run_suite(a->s, a->prefix);
	check_invalid(a->s);
	a->done = 1;
}

/* While one task waits for its put, another runs: the ring is in use. */
static char interleave[16];
static size_t interleave_n;

static void il_put(void *arg)
{
	struct store *s = arg;

	interleave[interleave_n++] = 'P';
	CHECK_EQ_INT(store_put(s, "il/key", "data", 4, 0, NULL, NULL), 0);
	interleave[interleave_n++] = 'p';
}

static void il_other(void *arg)
{
	(void)arg;
	interleave[interleave_n++] = 'o';
}

static void run_in_task(struct loop *l, task_fn *fn, void *arg)
{
	uint64_t end = time_mono_usec() + 15 * 1000000ull;

	task_spawn(l, fn, arg);
	while (task_count() > 0 && time_mono_usec() < end)
		loop_run_once(l, 100);
	CHECK_EQ_INT(task_count(), 0);
}

/* ---- create-only race ---- */

enum { RACERS = 8, PROC_ROUNDS = 50, THREAD_ROUNDS = 20 };

struct race_task {
	struct store *s;
	const char *key;
	char val[16];
	int res;
};

static void race_put_task(void *arg)
{
	struct race_task *rt = arg;

	rt->res = store_put(rt->s, rt->key, rt->val, strlen(rt->val),
			    STORE_PUT_CREATE_ONLY, NULL, NULL);
}

/* One racer's put: through a task on a fresh loop, or blocking. */
static int race_put(const char *dir, const char *key, int id, bool use_task)
{
	struct race_task rt;
	struct store *s;
	struct loop *l = NULL;

	if (store_fs_create(dir, &s, NULL) < 0)
		return -1;
	memset(&rt, 0, sizeof(rt));
	rt.s = s;
	rt.key = key;
	snprintf(rt.val, sizeof(rt.val), "racer-%d", id);
	if (use_task)
		l = loop_create(32, NULL);
	if (l != NULL) {
		task_spawn(l, race_put_task, &rt);
		while (task_count() > 0)
			loop_run_once(l, 100);
		loop_destroy(&l);
	} else {
		race_put_task(&rt);
	}
	store_close(&s);
	return rt.res;
}

static void check_winner(struct store *s, const char *key, int winner)
{
	char want[16];

	snprintf(want, sizeof(want), "racer-%d", winner);
	CHECK(get_is(s, key, want));
}

static void test_race_procs(struct store *s, const char *dir)
{
	int bad_rounds = 0;

	for (int round = 0; round < PROC_ROUNDS; round++) {
		char key[64];
		int gate[2];
		pid_t pids[RACERS];
		int wins = 0, conflicts = 0, winner = -1;

		snprintf(key, sizeof(key), "race/p/%02d/log/0000000000000001",
			 round);
		if (pipe(gate) < 0) {
			CHECK(0);
			return;
		}
		for (int i = 0; i < RACERS; i++) {
			pids[i] = fork();
			if (pids[i] == 0) {
				char c;
				close(gate[1]);
				/* all block here until the gate closes */
				if (read(gate[0], &c, 1) < 0)
					_exit(3);
				int r = race_put(dir, key, i, i % 2 == 0);
				_exit(r == 0 ? 0 : r == KURA_ECONFLICT ? 1 : 2);
			}
			CHECK(pids[i] > 0);
		}
		close(gate[0]);
		close(gate[1]);
		for (int i = 0; i < RACERS; i++) {
			int status;
			if (pids[i] <= 0 || waitpid(pids[i], &status, 0) < 0)
				continue;
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				wins++;
				winner = i;
			} else if (WIFEXITED(status) &&
				   WEXITSTATUS(status) == 1) {
				conflicts++;
			}
		}
		if (wins != 1 || conflicts != RACERS - 1)
			bad_rounds++;
		else
			check_winner(s, key, winner);
	}
	CHECK_EQ_INT(bad_rounds, 0);
}

struct race_thread {
	const char *dir;
	const char *key;
	int id;
	pthread_barrier_t *barrier;
	int res;
};

static void *race_thread_main(void *arg)
{
	struct race_thread *rt = arg;

	pthread_barrier_wait(rt->barrier);
	rt->res = race_put(rt->dir, rt->key, rt->id, rt->id % 2 == 1);
	return NULL;
}

static void test_race_threads(struct store *s, const char *dir)
{
	int bad_rounds = 0;

	for (int round = 0; round < THREAD_ROUNDS; round++) {
		char key[64];
		pthread_barrier_t barrier;
		pthread_t th[RACERS];
		struct race_thread rt[RACERS];
		int wins = 0, conflicts = 0, winner = -1;

		snprintf(key, sizeof(key), "race/t/%02d/x", round);
		pthread_barrier_init(&barrier, NULL, RACERS);
		for (int i = 0; i < RACERS; i++) {
			rt[i] = (struct race_thread){ dir, key, i, &barrier,
						      -1 };
			CHECK_EQ_INT(pthread_create(&th[i], NULL,
						    race_thread_main, &rt[i]),
				     0);
		}
		for (int i = 0; i < RACERS; i++) {
			pthread_join(th[i], NULL);
			if (rt[i].res == 0) {
				wins++;
				winner = i;
			} else if (rt[i].res == KURA_ECONFLICT) {
				conflicts++;
			}
		}
		pthread_barrier_destroy(&barrier);
		if (wins != 1 || conflicts != RACERS - 1)
			bad_rounds++;
		else
			check_winner(s, key, winner);
	}
	CHECK_EQ_INT(bad_rounds, 0);
}

/* Concurrent puts and dels in one directory: dels remove the emptied
 * directory while puts create in it. */
struct churn {
	const char *dir;
	int id;
	int failures;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct store *s;
	char key[64];

	if (store_fs_create(c->dir, &s, NULL) < 0) {
		c->failures++;
		return NULL;
	}
	for (int i = 0; i < 200; i++) {
		const char *err = NULL;
		snprintf(key, sizeof(key), "churn/a/b/k%d-%d", c->id, i % 3);
		if (store_put(s, key, "v", 1, 0, NULL, &err) != 0) {
			fprintf(stderr, "churn put: %s\n", err ? err : "?");
			c->failures++;
		}
		if (store_del(s, key, &err) != 0) {
			fprintf(stderr, "churn del: %s\n", err ? err : "?");
			c->failures++;
		}
	}
	store_close(&s);
	return NULL;
}

static void test_churn(const char *dir)
{
	pthread_t th[4];
	struct churn c[4];
	int failures = 0;

	for (int i = 0; i < 4; i++) {
		c[i] = (struct churn){ dir, i, 0 };
		pthread_create(&th[i], NULL, churn_main, &c[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		failures += c[i].failures;
	}
	CHECK_EQ_INT(failures, 0);
}

/* ---- store_open ---- */

static void test_open(const char *dir)
{
	struct store *s = (struct store *)1;
	const char *err = NULL;
	char spec[256];

	CHECK_EQ_INT(store_open("swift:https://secret@host/bucket", &s, &err),
		     KURA_EINVAL);
	CHECK(s == NULL);
	CHECK(err != NULL && strstr(err, "unknown store type") != NULL);
	CHECK(err != NULL && strstr(err, "secret") == NULL);
	err = NULL;
	CHECK_EQ_INT(store_open("nonsense", &s, &err), KURA_EINVAL);
	CHECK(err != NULL && strstr(err, "unknown store type") != NULL);
	CHECK_EQ_INT(store_open("fs:", &s, &err), KURA_EINVAL);
	/* a root below a file cannot be created */
	snprintf(spec, sizeof(spec), "fs:%s/file/sub", dir);
	char fp[256];
	snprintf(fp, sizeof(fp), "%s/file", dir);
	int fd = open(fp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	err = NULL;
	CHECK_EQ_INT(store_open(spec, &s, &err), KURA_EUNAVAIL);
	CHECK(err != NULL && strstr(err, "Not a directory") != NULL);
	/* created when missing, nested */
	snprintf(spec, sizeof(spec), "fs:%s/new/nested/root", dir);
	CHECK_EQ_INT(store_open(spec, &s, &err), 0);
	CHECK(s != NULL && strcmp(s->ops->name, "fs") == 0);
	put_ok(s, "k", "v");
	store_close(&s);
	CHECK(s == NULL);
	store_close(&s);
}

int main(void)
{
	char data_dir[128], spec[160];
	struct store *s;
	const char *err = NULL;
	struct loop *l;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(data_dir, sizeof(data_dir), "%s/data", tmpdir);
	snprintf(spec, sizeof(spec), "fs:%s", data_dir);
	if (store_open(spec, &s, &err) != 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return 1;
	}
	CHECK(task_current() == NULL);
	run_suite(s, "sync");
	check_invalid(s);

	l = loop_create(64, &err);
	if (l == NULL) {
		fprintf(stderr, "loop_create: %s (skipping task tests)\n",
			err);
	} else {
		struct suite_arg a = { s, "task", 0 };
		run_in_task(l, suite_task, &a);
		CHECK_EQ_INT(a.done, 1);
		task_spawn(l, il_put, s);
		task_spawn(l, il_other, NULL);
		run_in_task(l, il_other, NULL);
		CHECK_EQ_INT(interleave_n, 4);
		/* P first; the others ran while the put waited on the ring */
		CHECK_EQ_STR(interleave, "Poop");
		loop_destroy(&l);
	}

	test_race_procs(s, data_dir);
	test_race_threads(s, data_dir);
	test_churn(data_dir);
	test_open(tmpdir);
	store_close(&s);
	rm_rf(tmpdir);
	return test_done("store_fs");
}
