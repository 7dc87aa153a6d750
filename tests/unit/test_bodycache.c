/* Unit tests for cache/bodycache.c: hits and misses, ranges, damaged
 * files, LRU eviction, the index rebuilt from disk at open, threads and
 * tasks at once with the directory wiped under them, and the index
 * integration (a counting shim around the real fs store shows that a
 * second FETCH makes no store request). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/bodycache.h"
#include "index/index.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"
#include "tests/unit/test.h"

static char tmpdir[] = "/tmp/kura-test-bodycache-XXXXXX";

/* TEST_NO_TASKS=1: run only the parts outside tasks (for valgrind,
 * which does not follow the tasks' stack switches). */
static struct loop *test_loop_create(void)
{
	if (getenv("TEST_NO_TASKS") != NULL)
		return NULL;
	return loop_create(64, NULL);
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;	/* best effort: others may be writing meanwhile */
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void sub_dir(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%s", tmpdir, name);
}

/* Deterministic content of object i. */
static size_t obj_size(unsigned i)
{
	return 1 + (i * 7919u) % 20000u;
}

static void obj_fill(unsigned i, uint8_t *p, size_t n)
{
	for (size_t j = 0; j < n; j++)
		p[j] = (uint8_t)(i * 31u + j * 7u + (j >> 8));
}

static void obj_key(unsigned i, char *key, size_t len)
{
	snprintf(key, len, "u/%02x/user%u/m/%032x", i & 0xff, i % 7, i);
}

/* Fills out with the path of the cache file holding key (read from the
 * headers), or returns false. */
static bool file_for_key(const char *dir, const char *key, char *out,
			 size_t outlen)
{
	bool found = false;

	for (unsigned sub = 0; sub < 256 && !found; sub++) {
		char d[512];
		DIR *dp;
		struct dirent *de;

		snprintf(d, sizeof(d), "%s/%02x", dir, sub);
		dp = opendir(d);
		if (dp == NULL)
			continue;
		while (!found && (de = readdir(dp)) != NULL) {
			char p[768], hdr[32 + 1024];
			ssize_t n;
			int fd;

			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
			fd = open(p, O_RDONLY);
			if (fd < 0)
				continue;
			n = pread(fd, hdr, sizeof(hdr), 0);
			close(fd);
			if (n >= 32) {
				uint32_t kl = (uint32_t)(uint8_t)hdr[8] |
					      (uint32_t)(uint8_t)hdr[9] << 8;
				if (32 + kl <= (size_t)n &&
				    kl == strlen(key) &&
				    memcmp(hdr + 32, key, kl) == 0) {
					snprintf(out, outlen, "%s", p);
					found = true;
				}
			}
		}
		closedir(dp);
	}
	return found;
}

/* Number of final files (not temp files) and their total size. */
static size_t count_files(const char *dir, uint64_t *bytes_r, size_t *tmps_r)
{
	size_t n = 0, tmps = 0;
	uint64_t bytes = 0;

	for (unsigned sub = 0; sub < 256; sub++) {
		char d[512];
		DIR *dp;
		struct dirent *de;

		snprintf(d, sizeof(d), "%s/%02x", dir, sub);
		dp = opendir(d);
		if (dp == NULL)
			continue;
		while ((de = readdir(dp)) != NULL) {
			struct stat st;
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (de->d_name[0] == '.') {
				tmps++;
				continue;
			}
			if (fstatat(dirfd(dp), de->d_name, &st, 0) == 0) {
				n++;
				bytes += (uint64_t)st.st_size;
			}
		}
		closedir(dp);
	}
	if (bytes_r != NULL)
		*bytes_r = bytes;
	if (tmps_r != NULL)
		*tmps_r = tmps;
	return n;
}

static struct bodycache *open_cache(const char *dir, uint64_t max)
{
	struct bodycache *bc = NULL;
	const char *err = NULL;
	int r = bodycache_open(dir, max, &bc, &err);

	if (r != 0)
		fprintf(stderr, "bodycache_open %s: %s\n", dir, err ? err : "?");
	CHECK_EQ_INT(r, 0);
	return bc;
}

static bool get_is(struct bodycache *bc, const char *key, const void *want,
		   size_t len)
{
	struct buf b;
	bool ok;

	buf_init(&b, 0);
	ok = bodycache_get(bc, key, 0, UINT64_MAX, &b) == 0 &&
	     buf_used(&b) == len &&
	     (len == 0 || memcmp(buf_head(&b), want, len) == 0);
	buf_deinit(&b);
	return ok;
}

static bool is_cached(struct bodycache *bc, const char *key)
{
	struct buf b;
	int r;

	buf_init(&b, 0);
	r = bodycache_get(bc, key, 0, 0, &b);
	buf_deinit(&b);
	return r == 0;
}

/* ---- basics ---- */

static void test_basic(void)
{
	char dir[256], key[128], path[768];
	struct bodycache_stats st;
	struct bodycache *bc;
	struct buf b;
	size_t big_len = 300000;	/* five 64 KiB blocks and a bit */
	uint8_t *big = xmalloc(big_len);
	const char *err = NULL;

	sub_dir(dir, sizeof(dir), "basic/a/b");
	bc = open_cache(dir, 16 << 20);
	bodycache_wait_scan(bc);
	CHECK_EQ_INT(bodycache_object_max(bc), 2 << 20);

	/* bad arguments */
	CHECK_EQ_INT(bodycache_open(dir, 1000, &(struct bodycache *){ NULL },
				    &err), KURA_EINVAL);
	CHECK(err != NULL);
	CHECK_EQ_INT(bodycache_put(bc, "", "x", 1), KURA_EINVAL);
	buf_init(&b, 0);
	CHECK_EQ_INT(bodycache_get(bc, "", 0, UINT64_MAX, &b),
		     KURA_ENOTFOUND);

	/* miss, put, hit */
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 0, UINT64_MAX, &b),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(bodycache_put(bc, "u/00/x/m/1", "hello, world", 12), 0);
	CHECK(get_is(bc, "u/00/x/m/1", "hello, world", 12));
	/* an existing key is not written again */
	CHECK_EQ_INT(bodycache_put(bc, "u/00/x/m/1", "hello, world", 12), 0);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.stores, 1);
	CHECK_EQ_INT(st.files, 1);
	CHECK_EQ_INT(st.hits, 1);
	CHECK_EQ_INT(st.misses, 2);
	CHECK(st.scanned);
	CHECK(file_for_key(dir, "u/00/x/m/1", path, sizeof(path)));
	CHECK_EQ_INT(count_files(dir, NULL, NULL), 1);
	{
		uint64_t bytes;
		count_files(dir, &bytes, NULL);
		CHECK_EQ_INT(bytes, st.bytes);
		CHECK_EQ_INT(bytes, 32 + 10 + 4 + 12);
	}

	/* ranges, appended after what the buffer holds, as store_get */
	CHECK(buf_append(&b, "ab", 2));
	buf_consume(&b, 1);
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 7, 5, &b), 0);
	CHECK_EQ_INT(buf_used(&b), 6);
	CHECK(memcmp(buf_head(&b), "bworld", 6) == 0);
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 10, 100, &b), 0);
	CHECK_EQ_INT(buf_used(&b), 8);
	CHECK(memcmp(buf_head(&b), "bworldld", 8) == 0);
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 12, UINT64_MAX, &b), 0);
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 1000, 5, &b), 0);
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 0, 0, &b), 0);
	CHECK_EQ_INT(buf_used(&b), 8);
	buf_deinit(&b);

	/* too big for the buffer: nothing appended, no miss */
	buf_init(&b, 8);
	CHECK(buf_append(&b, "ab", 2));
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 0, UINT64_MAX, &b),
		     KURA_ETOOBIG);
	CHECK_EQ_INT(buf_used(&b), 2);
	CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/1", 0, 6, &b), 0);
	CHECK_EQ_INT(buf_used(&b), 8);
	CHECK(memcmp(buf_head(&b), "abhello,", 8) == 0);
	buf_deinit(&b);

	/* empty object */
	CHECK_EQ_INT(bodycache_put(bc, "u/00/x/m/empty", NULL, 0), 0);
	CHECK(get_is(bc, "u/00/x/m/empty", NULL, 0));

	/* several blocks: whole, and ranges inside, across and at the end
	 * of blocks */
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 13 + (i >> 16));
	CHECK_EQ_INT(bodycache_put(bc, "u/00/x/m/big", big, big_len), 0);
	CHECK(get_is(bc, "u/00/x/m/big", big, big_len));
	static const uint64_t ranges[][2] = {
		{ 0, 100 }, { 65530, 20 }, { 65536, 65536 }, { 100, 200000 },
		{ 299990, 100 }, { 131072, 1 }, { 262143, 2 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ranges); i++) {
		uint64_t off = ranges[i][0], len = ranges[i][1];
		uint64_t n = off + len > big_len ? big_len - off : len;
		buf_init(&b, 0);
		CHECK_EQ_INT(bodycache_get(bc, "u/00/x/m/big", off, len, &b),
			     0);
		CHECK_EQ_INT(buf_used(&b), n);
		CHECK(memcmp(buf_head(&b), big + off, n) == 0);
		buf_deinit(&b);
	}

	/* larger than the per-object limit: not stored */
	{
		size_t huge = (2 << 20) + 1;
		uint8_t *p = xcalloc(1, huge);
		CHECK_EQ_INT(bodycache_put(bc, "u/00/x/m/huge", p, huge),
			     KURA_ETOOBIG);
		CHECK(!is_cached(bc, "u/00/x/m/huge"));
		CHECK_EQ_INT(bodycache_put(bc, "u/00/x/m/limit", p, huge - 1),
			     0);
		CHECK(get_is(bc, "u/00/x/m/limit", p, huge - 1));
		free(p);
	}

	/* remove */
	bodycache_remove(bc, "u/00/x/m/empty");
	CHECK(!is_cached(bc, "u/00/x/m/empty"));
	CHECK(!file_for_key(dir, "u/00/x/m/empty", path, sizeof(path)));

	/* a relative directory is made absolute */
	{
		char cwd[512];
		struct bodycache *rel;
		CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
		CHECK_EQ_INT(chdir(tmpdir), 0);
		rel = open_cache("rel/bodies", 1 << 20);
		CHECK_EQ_INT(chdir(cwd), 0);
		snprintf(key, sizeof(key), "u/01/y/m/rel");
		CHECK_EQ_INT(bodycache_put(rel, key, "rel", 3), 0);
		sub_dir(dir, sizeof(dir), "rel/bodies");
		CHECK(file_for_key(dir, key, path, sizeof(path)));
		bodycache_close(&rel);
		CHECK(rel == NULL);
	}
	bodycache_close(&bc);
	free(big);
}

/* ---- damaged files ---- */

static void patch_file(const char *path, off_t off, uint8_t xor_mask)
{
	int fd = open(path, O_RDWR);
	uint8_t c = 0;

	CHECK(fd >= 0);
	CHECK_EQ_INT(pread(fd, &c, 1, off), 1);
	c ^= xor_mask;
	CHECK_EQ_INT(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_corrupt(void)
{
	char dir[256], path[768];
	struct bodycache_stats st;
	struct bodycache *bc;
	size_t len = 200000;
	uint8_t *data = xmalloc(len);
	const char *key = "u/07/c/m/damaged";
	size_t meta = 32 + strlen(key) + 4 * 4;	/* 4 blocks */
	struct buf b;

	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7);
	sub_dir(dir, sizeof(dir), "corrupt");
	bc = open_cache(dir, 16 << 20);
	bodycache_wait_scan(bc);

	/* a flipped content byte in block 0: a range in block 2 is still
	 * served (only the blocks read are checked), block 0 is a miss and
	 * the file goes */
	CHECK_EQ_INT(bodycache_put(bc, key, data, len), 0);
	CHECK(file_for_key(dir, key, path, sizeof(path)));
	patch_file(path, (off_t)(meta + 1000), 0x01);
	buf_init(&b, 0);
	CHECK_EQ_INT(bodycache_get(bc, key, 140000, 100, &b), 0);
	CHECK(memcmp(buf_head(&b), data + 140000, 100) == 0);
	buf_reset(&b);
	CHECK_EQ_INT(bodycache_get(bc, key, 0, 10, &b), KURA_ENOTFOUND);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(access(path, F_OK), -1);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.corrupt, 1);
	CHECK_EQ_INT(st.files, 0);
	CHECK_EQ_INT(st.bytes, 0);
	/* the next put stores it again */
	CHECK_EQ_INT(bodycache_put(bc, key, data, len), 0);
	CHECK(get_is(bc, key, data, len));

	/* a damaged block checksum, key, magic or length */
	static const off_t spots[] = { 32 + 2, 32 + 16 + 3, 0, 17, 24 };
	for (size_t i = 0; i < ARRAY_SIZE(spots); i++) {
		CHECK(file_for_key(dir, key, path, sizeof(path)));
		patch_file(path, spots[i], 0x40);
		CHECK(!get_is(bc, key, data, len));
		CHECK_EQ_INT(access(path, F_OK), -1);
		CHECK_EQ_INT(bodycache_put(bc, key, data, len), 0);
		CHECK(file_for_key(dir, key, path, sizeof(path)));
	}

	/* truncated (a crash before the data reached the disk) */
	CHECK_EQ_INT(truncate(path, (off_t)(meta + 70000)), 0);
	buf_reset(&b);
	CHECK_EQ_INT(bodycache_get(bc, key, 0, 1000, &b), 0);	/* block 0 */
	CHECK_EQ_INT(bodycache_get(bc, key, 0, UINT64_MAX, &b),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(access(path, F_OK), -1);
	/* zero-filled (same length, the data never written) */
	CHECK_EQ_INT(bodycache_put(bc, key, data, len), 0);
	CHECK(file_for_key(dir, key, path, sizeof(path)));
	{
		uint8_t *z = xcalloc(1, len);
		int fd = open(path, O_WRONLY);
		CHECK_EQ_INT(pwrite(fd, z, len, (off_t)meta), (ssize_t)len);
		close(fd);
		free(z);
	}
	CHECK(!get_is(bc, key, data, len));
	/* a whole file of zeros */
	CHECK_EQ_INT(bodycache_put(bc, key, data, len), 0);
	CHECK(file_for_key(dir, key, path, sizeof(path)));
	CHECK_EQ_INT(truncate(path, 0), 0);
	CHECK_EQ_INT(truncate(path, (off_t)(meta + len)), 0);
	CHECK(!get_is(bc, key, data, len));
	CHECK_EQ_INT(access(path, F_OK), -1);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.corrupt, 9);
	CHECK_EQ_INT(st.files, 0);
	buf_deinit(&b);
	bodycache_close(&bc);
	free(data);
}

/* ---- eviction and the rebuild at open ---- */

struct used_time {
	int k;
	time_t t;
};

/* Sets atime and mtime of the files of keys. Every path is found first:
 * reading a file moves its atime (relatime), which is what the scan
 * reads. */
static void set_used(const char *dir, char (*key)[64],
		     const struct used_time *u, size_t n)
{
	char (*path)[768] = xcalloc(n, sizeof(*path));

	for (size_t i = 0; i < n; i++)
		CHECK(file_for_key(dir, key[u[i].k], path[i],
				   sizeof(path[i])));
	for (size_t i = 0; i < n; i++) {
		struct timespec ts[2] = { { u[i].t, 0 }, { u[i].t, 0 } };
		CHECK_EQ_INT(utimensat(AT_FDCWD, path[i], ts, 0), 0);
	}
	free(path);
}

static void test_evict(void)
{
	enum { N = 16, SZ = 8000 };
	char dir[256], key[N + 4][64];
	uint8_t data[SZ];
	struct bodycache_stats st;
	struct bodycache *bc;
	uint64_t fsize, bytes;
	struct used_time u[N + 4];
	size_t nu = 0;

	sub_dir(dir, sizeof(dir), "evict");
	for (int i = 0; i < N + 4; i++)
		snprintf(key[i], sizeof(key[i]), "u/aa/ev/m/k%02d", i);
	fsize = 32 + strlen(key[0]) + 4 + SZ;
	/* 16 files of 8049 bytes fit 128 KiB, the 17th does not */
	bc = open_cache(dir, 128 << 10);
	bodycache_wait_scan(bc);
	for (int i = 0; i < N; i++) {
		memset(data, 'a' + i, SZ);
		CHECK_EQ_INT(bodycache_put(bc, key[i], data, SZ), 0);
	}
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.files, N);
	CHECK_EQ_INT(st.bytes, N * fsize);
	CHECK_EQ_INT(st.evictions, 0);
	/* k00 is used again: k01 and k02 are now the oldest */
	memset(data, 'a', SZ);
	CHECK(get_is(bc, key[0], data, SZ));
	/* a put of a known key counts as a use too */
	memset(data, 'a' + 1, SZ);
	CHECK_EQ_INT(bodycache_put(bc, key[1], data, SZ), 0);
	for (int i = N; i < N + 2; i++) {
		memset(data, 'a' + i, SZ);
		CHECK_EQ_INT(bodycache_put(bc, key[i], data, SZ), 0);
	}
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.evictions, 2);
	CHECK_EQ_INT(st.files, N);
	CHECK(st.bytes <= 128 << 10);
	CHECK_EQ_INT(count_files(dir, &bytes, NULL), N);
	CHECK_EQ_INT(bytes, st.bytes);
	CHECK(is_cached(bc, key[0]));
	CHECK(is_cached(bc, key[1]));
	CHECK(!is_cached(bc, key[2]));
	CHECK(!is_cached(bc, key[3]));
	for (int i = 4; i < N + 2; i++)
		CHECK(is_cached(bc, key[i]));
	bodycache_close(&bc);

	/* Reopen: the index comes back from the files, recency from their
	 * times. Make k17 the oldest, then k16, ..., k04 (k00/k01 newest). */
	time_t base = time(NULL) - 100000;
	for (int i = 4; i < N + 2; i++)
		u[nu++] = (struct used_time){ i, base + (N + 2 - i) * 100 };
	u[nu++] = (struct used_time){ 0, base + 5000 };
	u[nu++] = (struct used_time){ 1, base + 5001 };
	set_used(dir, key, u, nu);
	bc = open_cache(dir, 128 << 10);
	/* before (or while) the scan runs, files are served directly */
	memset(data, 'a' + 10, SZ);
	CHECK(get_is(bc, key[10], data, SZ));
	bodycache_wait_scan(bc);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.files, N);
	CHECK_EQ_INT(st.bytes, N * fsize);
	CHECK_EQ_INT(st.evictions, 0);
	/* two more puts evict k17 and k16, the oldest by file time */
	for (int i = N + 2; i < N + 4; i++) {
		memset(data, 'a' + i, SZ);
		CHECK_EQ_INT(bodycache_put(bc, key[i], data, SZ), 0);
	}
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.evictions, 2);
	CHECK(!is_cached(bc, key[17]));
	CHECK(!is_cached(bc, key[16]));
	CHECK(is_cached(bc, key[15]));
	CHECK(is_cached(bc, key[0]));
	CHECK(is_cached(bc, key[10]));
	bodycache_close(&bc);

	/* Reopen smaller: the scan itself evicts down to the limit, oldest
	 * first. Order, oldest first: k10, k15 k14 ... k11, k09 ... k04,
	 * k00, k01, k18, k19. 8 of the 16 fit. */
	nu = 0;
	for (int i = 4; i < N; i++)
		u[nu++] = (struct used_time){ i, base + (N + 2 - i) * 100 };
	u[10 - 4].t = base + 10;
	u[nu++] = (struct used_time){ 0, base + 5000 };
	u[nu++] = (struct used_time){ 1, base + 5001 };
	u[nu++] = (struct used_time){ 18, base + 6000 };
	u[nu++] = (struct used_time){ 19, base + 6001 };
	set_used(dir, key, u, nu);
	bc = open_cache(dir, 64 << 10);
	bodycache_wait_scan(bc);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.files, 8);	/* 8 * 8049 <= 65536 < 9 * 8049 */
	CHECK_EQ_INT(st.bytes, 8 * fsize);
	CHECK_EQ_INT(st.evictions, 8);
	CHECK_EQ_INT(count_files(dir, NULL, NULL), 8);
	static const int kept[] = { 19, 18, 1, 0, 4, 5, 6, 7 };
	for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
		CHECK(is_cached(bc, key[kept[i]]));
	static const int gone[] = { 10, 15, 14, 13, 12, 11, 9, 8 };
	for (size_t i = 0; i < ARRAY_SIZE(gone); i++)
		CHECK(!is_cached(bc, key[gone[i]]));
	bodycache_close(&bc);

	/* leftovers of a crash: old temp files go at the scan, young ones
	 * (a put in flight) stay, foreign names are left alone */
	{
		char p[512];
		struct timespec old[2] = { { base, 0 }, { base, 0 } };
		snprintf(p, sizeof(p), "%s/00", dir);
		mkdir(p, 0700);
		snprintf(p, sizeof(p), "%s/00/.tmp.0123456789abcdef", dir);
		FILE *f = fopen(p, "w");
		CHECK(f != NULL);
		if (f != NULL)
			fclose(f);
		CHECK_EQ_INT(utimensat(AT_FDCWD, p, old, 0), 0);
		snprintf(p, sizeof(p), "%s/00/.tmp.fedcba9876543210", dir);
		f = fopen(p, "w");
		if (f != NULL)
			fclose(f);
		snprintf(p, sizeof(p), "%s/00/README", dir);
		f = fopen(p, "w");
		if (f != NULL)
			fclose(f);
		bc = open_cache(dir, 64 << 10);
		bodycache_wait_scan(bc);
		size_t tmps = 0;
		count_files(dir, NULL, &tmps);
		CHECK_EQ_INT(tmps, 1);
		CHECK_EQ_INT(access(p, F_OK), 0);
		bodycache_get_stats(bc, &st);
		CHECK_EQ_INT(st.files, 8);
		bodycache_close(&bc);
	}
}

/* ---- through the ring inside a task ---- */

static char order[16];
static size_t norder;

struct task_arg {
	struct bodycache *bc;
	const char *dir;
};

static void ring_task(void *arg)
{
	struct task_arg *ta = arg;
	struct buf b;

	order[norder++] = 'G';
	buf_init(&b, 0);
	CHECK_EQ_INT(bodycache_get(ta->bc, "u/01/t/m/ring", 0, UINT64_MAX, &b),
		     0);
	CHECK_EQ_INT(buf_used(&b), 9);
	CHECK(buf_used(&b) == 9 && memcmp(buf_head(&b), "ring data", 9) == 0);
	buf_deinit(&b);
	order[norder++] = 'g';
	CHECK_EQ_INT(bodycache_put(ta->bc, "u/01/t/m/ring2", "two", 3), 0);
	CHECK(get_is(ta->bc, "u/01/t/m/ring2", "two", 3));
	/* a wipe under a task: a miss, then a put recreates the dirs */
	rm_rf(ta->dir);
	CHECK(!get_is(ta->bc, "u/01/t/m/ring2", "two", 3));
	CHECK_EQ_INT(bodycache_put(ta->bc, "u/01/t/m/ring2", "two", 3), 0);
	CHECK(get_is(ta->bc, "u/01/t/m/ring2", "two", 3));
	order[norder++] = 'e';
}

static void other_task(void *arg)
{
	(void)arg;
	order[norder++] = 'o';
}

static void run_tasks(struct loop *l)
{
	uint64_t end = time_mono_usec() + 15 * 1000000ull;

	while (task_count() > 0 && time_mono_usec() < end)
		loop_run_once(l, 100);
	CHECK_EQ_INT(task_count(), 0);
}

static void test_task(void)
{
	char dir[256];
	struct task_arg ta;
	struct loop *l = test_loop_create();

	if (l == NULL) {
		fprintf(stderr, "task test skipped\n");
		return;
	}
	sub_dir(dir, sizeof(dir), "task");
	ta.bc = open_cache(dir, 1 << 20);
	ta.dir = dir;
	bodycache_wait_scan(ta.bc);
	CHECK_EQ_INT(bodycache_put(ta.bc, "u/01/t/m/ring", "ring data", 9), 0);
	task_spawn(l, ring_task, &ta);
	task_spawn(l, other_task, NULL);
	run_tasks(l);
	/* the get suspended its task: the other one ran in between */
	order[norder] = '\0';
	CHECK_EQ_STR(order, "Goge");
	bodycache_close(&ta.bc);
	loop_destroy(&l);
}

/* ---- threads and tasks at once, with wipes ---- */

enum {
	CC_KEYS = 120,
	CC_ROUNDS = 400,
	CC_TASKS = 6,
	CC_MAX = 256 << 10,
};

struct cc {
	struct bodycache *bc;
	char dir[256];
	atomic_int bad;		/* hits with wrong bytes */
	atomic_int hits, puts, errors;
	atomic_bool stop_wiper;
	atomic_int wipes;
};

struct cc_worker {
	struct cc *cc;
	unsigned seed;
};

static void cc_round(struct cc *cc, unsigned *seed)
{
	unsigned i = (unsigned)rand_r(seed) % CC_KEYS;
	size_t n = obj_size(i);
	uint8_t *want = xmalloc(n);
	char key[128];
	struct buf b;
	int r;

	obj_key(i, key, sizeof(key));
	obj_fill(i, want, n);
	buf_init(&b, 0);
	if (rand_r(seed) % 4 == 0) {
		/* a range, as BODY[HEADER] */
		uint64_t off = (uint64_t)rand_r(seed) % n;
		r = bodycache_get(cc->bc, key, off, 100, &b);
		if (r == 0) {
			size_t m = KURA_MIN(100, n - off);
			if (buf_used(&b) != m ||
			    memcmp(buf_head(&b), want + off, m) != 0)
				atomic_fetch_add(&cc->bad, 1);
		}
	} else {
		r = bodycache_get(cc->bc, key, 0, UINT64_MAX, &b);
		if (r == 0 && (buf_used(&b) != n ||
			       memcmp(buf_head(&b), want, n) != 0))
			atomic_fetch_add(&cc->bad, 1);
	}
	if (r == 0) {
		atomic_fetch_add(&cc->hits, 1);
	} else if (r == KURA_ENOTFOUND) {
		/* errors are expected while the directory is wiped */
		if (bodycache_put(cc->bc, key, want, n) == 0)
			atomic_fetch_add(&cc->puts, 1);
		else
			atomic_fetch_add(&cc->errors, 1);
	} else {
		atomic_fetch_add(&cc->bad, 1);
	}
	buf_deinit(&b);
	free(want);
}

static void cc_task(void *arg)
{
	struct cc_worker *w = arg;

	for (int i = 0; i < CC_ROUNDS / CC_TASKS; i++)
		cc_round(w->cc, &w->seed);
}

static void *cc_thread_tasks(void *arg)
{
	struct cc_worker *w = arg;
	struct cc_worker tw[CC_TASKS];
	struct loop *l = test_loop_create();

	if (l == NULL) {
		for (int i = 0; i < CC_ROUNDS; i++)
			cc_round(w->cc, &w->seed);
		return NULL;
	}
	for (int i = 0; i < CC_TASKS; i++) {
		tw[i].cc = w->cc;
		tw[i].seed = w->seed * 31 + (unsigned)i;
		task_spawn(l, cc_task, &tw[i]);
	}
	run_tasks(l);
	loop_destroy(&l);
	return NULL;
}

static void *cc_thread_plain(void *arg)
{
	struct cc_worker *w = arg;

	for (int i = 0; i < CC_ROUNDS; i++)
		cc_round(w->cc, &w->seed);
	return NULL;
}

static void *cc_wiper(void *arg)
{
	struct cc *cc = arg;

	for (int i = 0; i < 3 && !atomic_load(&cc->stop_wiper); i++) {
		usleep(20000);
		rm_rf(cc->dir);
		atomic_fetch_add(&cc->wipes, 1);
	}
	return NULL;
}

/* Every file on disk is sound and counted: reads each through a cache
 * opened afresh. */
static void cc_verify_disk(const char *dir)
{
	struct bodycache *bc = open_cache(dir, CC_MAX);
	struct bodycache_stats st;
	uint64_t bytes;
	size_t files = count_files(dir, &bytes, NULL);
	unsigned found = 0;

	bodycache_wait_scan(bc);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.files, files);
	CHECK_EQ_INT(st.bytes, bytes);
	CHECK(bytes <= CC_MAX);
	for (unsigned i = 0; i < CC_KEYS; i++) {
		char key[128];
		size_t n = obj_size(i);
		uint8_t *want = xmalloc(n);
		obj_key(i, key, sizeof(key));
		obj_fill(i, want, n);
		if (is_cached(bc, key)) {
			CHECK(get_is(bc, key, want, n));
			found++;
		}
		free(want);
	}
	CHECK_EQ_INT(found, files);
	bodycache_get_stats(bc, &st);
	CHECK_EQ_INT(st.corrupt, 0);
	bodycache_close(&bc);
}

static void test_concurrent(bool wipe)
{
	enum { PLAIN = 2, TASKED = 2 };
	struct cc *cc = xcalloc(1, sizeof(*cc));
	struct cc_worker w[PLAIN + TASKED];
	pthread_t th[PLAIN + TASKED], wiper;
	struct bodycache_stats st;
	uint64_t bytes;

	sub_dir(cc->dir, sizeof(cc->dir), wipe ? "cc-wipe" : "cc");
	cc->bc = open_cache(cc->dir, CC_MAX);
	/* no wait for the scan: it races with the first puts */
	if (wipe)
		pthread_create(&wiper, NULL, cc_wiper, cc);
	for (int i = 0; i < PLAIN + TASKED; i++) {
		w[i].cc = cc;
		w[i].seed = (unsigned)i * 7919u + (wipe ? 1 : 0);
		pthread_create(&th[i], NULL,
			       i < PLAIN ? cc_thread_plain : cc_thread_tasks,
			       &w[i]);
	}
	for (int i = 0; i < PLAIN + TASKED; i++)
		pthread_join(th[i], NULL);
	if (wipe) {
		atomic_store(&cc->stop_wiper, true);
		pthread_join(wiper, NULL);
	}
	CHECK_EQ_INT(atomic_load(&cc->bad), 0);
	CHECK(atomic_load(&cc->hits) > 0);
	CHECK(atomic_load(&cc->puts) > 0);
	if (!wipe)
		CHECK_EQ_INT(atomic_load(&cc->errors), 0);
	bodycache_get_stats(cc->bc, &st);
	if (getenv("TEST_BODYCACHE_VERBOSE") != NULL)
		fprintf(stderr, "concurrent wipe=%d: hits=%d puts=%d errors=%d "
			"evictions=%llu files=%llu bytes=%llu wipes=%d\n", wipe,
			atomic_load(&cc->hits), atomic_load(&cc->puts),
			atomic_load(&cc->errors),
			(unsigned long long)st.evictions,
			(unsigned long long)st.files,
			(unsigned long long)st.bytes, atomic_load(&cc->wipes));
	CHECK(st.scanned);
	CHECK(st.bytes <= CC_MAX);
	CHECK(st.evictions > 0);
	CHECK_EQ_INT(st.corrupt, 0);
	/* a file on disk always has an entry: the disk holds at most what
	 * the index counts */
	count_files(cc->dir, &bytes, NULL);
	CHECK(bytes <= st.bytes);
	bodycache_close(&cc->bc);
	cc_verify_disk(cc->dir);
	free(cc);
}

/* ---- the index: a counting shim around the real fs store ---- */

struct count_store {
	struct store base;
	struct store *inner;
	atomic_uint msg_gets, msg_puts;
};

static struct count_store *cs_of(struct store *s)
{
	return (struct count_store *)s;
}

static bool is_msg_key(const char *key)
{
	return strstr(key, "/m/") != NULL;
}

static int cs_get(struct store *s, const char *key, uint64_t off,
		  uint64_t len, struct buf *out, const char **error_r)
{
	if (is_msg_key(key))
		atomic_fetch_add(&cs_of(s)->msg_gets, 1);
	return store_get(cs_of(s)->inner, key, off, len, out, error_r);
}

static int cs_put(struct store *s, const char *key, const void *data,
		  size_t len, unsigned flags, const char *const *meta,
		  const char **error_r)
{
	if (is_msg_key(key))
		atomic_fetch_add(&cs_of(s)->msg_puts, 1);
	return store_put(cs_of(s)->inner, key, data, len, flags, meta,
			 error_r);
}

static int cs_head(struct store *s, const char *key, struct store_stat *st,
		   const char **error_r)
{
	return store_head(cs_of(s)->inner, key, st, error_r);
}

static int cs_del(struct store *s, const char *key, const char **error_r)
{
	return store_del(cs_of(s)->inner, key, error_r);
}

static int cs_list(struct store *s, const char *prefix, const char *after,
		   size_t max, struct store_list *out, const char **error_r)
{
	return store_list(cs_of(s)->inner, prefix, after, max, out, error_r);
}

static void cs_destroy(struct store *s)
{
	store_close(&cs_of(s)->inner);
	free(s);
}

static const struct store_ops count_ops = {
	.name = "count",
	.get = cs_get,
	.put = cs_put,
	.head = cs_head,
	.del = cs_del,
	.list = cs_list,
	.destroy = cs_destroy,
};

struct idx_env {
	struct count_store *cs;
	struct index *plain;	/* no body cache: another node */
	struct index *cached;
	struct bodycache *bc;
	char bcdir[256];
	const char *msg;
};

static bool fetch_is(struct index *idx, const uint8_t *guid, uint64_t off,
		     uint64_t len, const char *want)
{
	struct account *a = NULL;
	const char *err = NULL;
	struct buf b;
	size_t wl = strlen(want);
	bool ok;
	int rc;

	rc = index_account_get(idx, "dora", &a, &err);
	CHECK_EQ_INT(rc, 0);
	if (rc != 0)
		return false;
	buf_init(&b, 1 << 20);
	rc = index_message_get(a, guid, off, len, &b, &err);
	ok = rc == 0 && buf_used(&b) == wl && memcmp(buf_head(&b), want,
						     wl) == 0;
	if (rc != 0)
		fprintf(stderr, "message_get: %s\n", err ? err : "?");
	buf_deinit(&b);
	index_account_unref(&a);
	return ok;
}

static bool append_msg(struct index *idx, const char *msg, uint8_t *guid)
{
	struct account *a = NULL;
	const char *err = NULL;
	int rc = index_account_get(idx, "dora", &a, &err);

	CHECK_EQ_INT(rc, 0);
	if (rc != 0)
		return false;
	rc = index_message_put(a, msg, strlen(msg), guid, &err);
	CHECK_EQ_INT(rc, 0);
	index_account_unref(&a);
	return rc == 0;
}

static unsigned gets_of(struct idx_env *e)
{
	return atomic_load(&e->cs->msg_gets);
}

static void idx_scenario(void *arg)
{
	struct idx_env *e = arg;
	const char *msg = e->msg;
	uint8_t g1[INDEX_GUID_LEN], g2[INDEX_GUID_LEN];
	unsigned before;

	/* appended by a node without a body cache */
	if (!append_msg(e->plain, msg, g1))
		return;
	before = gets_of(e);
	CHECK(fetch_is(e->cached, g1, 0, UINT64_MAX, msg));
	CHECK_EQ_INT(gets_of(e), before + 1);	/* the first FETCH: a GET */
	CHECK(fetch_is(e->cached, g1, 0, UINT64_MAX, msg));
	CHECK_EQ_INT(gets_of(e), before + 1);	/* the second: none */
	/* a range (BODY[HEADER]) of a cached message: none either */
	CHECK(fetch_is(e->cached, g1, 0, 9, "Subject: "));
	CHECK_EQ_INT(gets_of(e), before + 1);
	/* the node without a cache reads the store every time */
	CHECK(fetch_is(e->plain, g1, 0, UINT64_MAX, msg));
	CHECK_EQ_INT(gets_of(e), before + 2);

	/* write-through: a message appended by the cached node is fetched
	 * without any GET */
	if (!append_msg(e->cached, msg, g2))
		return;
	before = gets_of(e);
	CHECK(fetch_is(e->cached, g2, 0, UINT64_MAX, msg));
	CHECK(fetch_is(e->cached, g2, 9, 5, "hello"));
	CHECK_EQ_INT(gets_of(e), before);

	/* a range miss goes to the store and does not fill the cache */
	rm_rf(e->bcdir);
	before = gets_of(e);
	CHECK(fetch_is(e->cached, g1, 9, 5, "hello"));
	CHECK_EQ_INT(gets_of(e), before + 1);
	/* the cache wiped: one GET, then cached again */
	CHECK(fetch_is(e->cached, g1, 0, UINT64_MAX, msg));
	CHECK_EQ_INT(gets_of(e), before + 2);
	CHECK(fetch_is(e->cached, g1, 0, UINT64_MAX, msg));
	CHECK_EQ_INT(gets_of(e), before + 2);

	/* a hit too big for the buffer: KURA_ETOOBIG, still no GET */
	{
		struct account *a = NULL;
		const char *err = NULL;
		struct buf b;
		CHECK_EQ_INT(index_account_get(e->cached, "dora", &a, &err),
			     0);
		buf_init(&b, 4);
		CHECK_EQ_INT(index_message_get(a, g1, 0, UINT64_MAX, &b, &err),
			     KURA_ETOOBIG);
		CHECK_EQ_INT(buf_used(&b), 0);
		buf_deinit(&b);
		index_account_unref(&a);
		CHECK_EQ_INT(gets_of(e), before + 2);
	}

	/* an unknown message is still KURA_ENOTFOUND (from the store) */
	{
		struct account *a = NULL;
		const char *err = NULL;
		uint8_t g3[INDEX_GUID_LEN] = { 1, 2, 3 };
		struct buf b;
		CHECK_EQ_INT(index_account_get(e->cached, "dora", &a, &err),
			     0);
		buf_init(&b, 0);
		CHECK_EQ_INT(index_message_get(a, g3, 0, UINT64_MAX, &b, &err),
			     KURA_ENOTFOUND);
		buf_deinit(&b);
		index_account_unref(&a);
	}
}

static void test_index(void)
{
	char sdir[256];
	struct idx_env e;
	struct store *inner = NULL;
	const char *err = NULL;
	struct index_settings set = { .snapshot_every = 100,
				      .max_message_size = 64u << 20 };
	struct loop *l;

	memset(&e, 0, sizeof(e));
	e.msg = "Subject: hello\r\n\r\nbody of the message\r\n";
	sub_dir(sdir, sizeof(sdir), "store");
	sub_dir(e.bcdir, sizeof(e.bcdir), "idx-bodies");
	CHECK_EQ_INT(store_fs_create(sdir, &inner, &err), 0);
	if (inner == NULL)
		return;
	e.cs = xcalloc(1, sizeof(*e.cs));
	e.cs->base.ops = &count_ops;
	e.cs->inner = inner;
	e.bc = open_cache(e.bcdir, 1 << 20);
	bodycache_wait_scan(e.bc);
	e.plain = index_create(&e.cs->base, NULL, &set);
	set.bodycache = e.bc;
	e.cached = index_create(&e.cs->base, NULL, &set);

	/* outside a task (blocking), then inside one (the ring) */
	idx_scenario(&e);
	l = test_loop_create();
	if (l != NULL) {
		task_spawn(l, idx_scenario, &e);
		run_tasks(l);
	}
	index_destroy(&e.cached);
	index_destroy(&e.plain);
	if (l != NULL)
		loop_destroy(&l);
	bodycache_close(&e.bc);
	struct store *st = &e.cs->base;
	store_close(&st);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(LOG_ERROR);
	test_basic();
	test_corrupt();
	test_evict();
	test_task();
	test_concurrent(false);
	test_concurrent(true);
	test_index();
	rm_rf(tmpdir);
	return test_done("bodycache");
}
