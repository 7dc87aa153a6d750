/* The local message-body cache (cache/bodycache.h).
 *
 * File format (little endian), DIR/<xx>/<h:016x> where h is a mixed
 * 64-bit hash of the store key and xx its top byte:
 *
 *   0  "KBDY"             magic
 *   4  u16 version (1)
 *   6  u8  block shift (16: 64 KiB blocks), u8 0
 *   8  u32 key length
 *  12  u32 number of blocks
 *  16  u64 content length
 *  24  u32 CRC32C of bytes [0, data offset) with this field zero
 *  28  u32 0
 *  32  key, then one u32 CRC32C per block, then the content
 *
 * The key in the header makes a hash collision a miss instead of wrong
 * bytes. Per-block checksums let a range read (BODY[HEADER]) check only
 * the blocks it returns instead of the whole object.
 *
 * Accounting. The index maps h -> size on disk, in an LRU list. Two
 * orders keep it from ever losing track of a file: a file is inserted
 * after its rename, and removed from the index before its unlink. So a
 * file under a final name always has an entry; an entry may outlive its
 * file (directory wiped, a race with a concurrent put): it then
 * overcounts until a get sees the file missing or eviction reaches it.
 * Once the scan is done, a key without an entry is a miss without any
 * system call. */
#include "cache/bodycache.h"
#include "lib/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"

#define BC_MAGIC "KBDY"
#define BC_VERSION 1
#define BC_BLOCK_SHIFT 16
#define BC_BLOCK ((uint64_t)1 << BC_BLOCK_SHIFT)
#define BC_HDR 32
#define BC_KEY_MAX 1024
#define BC_BLOCKS_MAX (BODYCACHE_OBJECT_MAX >> BC_BLOCK_SHIFT)
#define BC_META_MAX (BC_HDR + BC_KEY_MAX + 4 * BC_BLOCKS_MAX)
/* The first read of a get: the whole header always, and small objects
 * entirely. */
#define BC_PROBE 16384
#define BC_TMP_PREFIX ".tmp."
#define BC_TMP_PREFIX_LEN (sizeof(BC_TMP_PREFIX) - 1)
/* Temp files older than this are leftovers of a crash (the scan deletes
 * them); younger ones may be a put in flight. */
#define BC_TMP_MAX_AGE_SEC 3600
/* Room for DIR plus "/xx/" and a name. */
#define BC_NAME_ROOM 40
#define BC_EVICT_BATCH 32
#define BC_MERGE_BATCH 1024
#define BC_WARN_EVERY_USEC (10 * 1000000ull)
#define BC_CRC_INIT 0xffffffffu

_Static_assert(BC_META_MAX <= BC_PROBE, "the probe holds every header");

struct bc_ent {
	uint64_t h;
	uint64_t size;		/* bytes on disk */
	struct bc_ent *hnext;
	struct bc_ent *prev, *next;	/* LRU: head = most recently used */
};

struct bodycache {
	char *dir;		/* absolute, no trailing '/' */
	size_t dir_len;
	uint64_t max_bytes;
	uint64_t object_max;

	pthread_mutex_t lock;	/* everything below up to the counters */
	pthread_cond_t scan_cond;
	struct bc_ent **tab;
	size_t nbuckets, count;
	struct bc_ent *head, *tail;
	uint64_t total;
	bool scanned;		/* the index knows every file */
	bool scan_finished;	/* ... and the scan's eviction is done */

	atomic_bool stop;
	bool thread_started;
	pthread_t thread;

	atomic_uint_fast64_t hits, misses, stores, evictions, corrupt;
	atomic_uint_fast64_t last_warn_usec;
};

static __thread char bc_errbuf[PATH_MAX + 128];

/* ---- small helpers ---- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t bc_crc(const void *p, size_t len)
{
	/* len <= BC_BLOCK or BC_META_MAX: fits an int */
	return crc32_iscsi((unsigned char *)p, (int)len, BC_CRC_INIT);
}

/* FNV-1a spreads short keys poorly in its high bits, which name the
 * fan-out directory: finish it with the splitmix64 mixer. */
static uint64_t bc_hash(const char *key)
{
	uint64_t h = hash64(key, strlen(key));

	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

/* DIR/xx/<h:016x>, or DIR/xx with name == false. */
static void bc_path(const struct bodycache *bc, uint64_t h, bool name,
		    char *out)
{
	if (name)
		snprintf(out, PATH_MAX, "%s/%02x/%016" PRIx64, bc->dir,
			 (unsigned)(h >> 56), h);
	else
		snprintf(out, PATH_MAX, "%s/%02x", bc->dir,
			 (unsigned)(h >> 56));
}

static void bc_warn(struct bodycache *bc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A full or failing disk would otherwise log on every FETCH. */
static void bc_warn(struct bodycache *bc, const char *fmt, ...)
{
	uint64_t now = time_mono_usec();
	uint64_t last = atomic_load_explicit(&bc->last_warn_usec,
					     memory_order_relaxed);
	char line[PATH_MAX + 256];
	va_list ap;

	if (last != 0 && now - last < BC_WARN_EVERY_USEC)
		return;
	if (!atomic_compare_exchange_strong(&bc->last_warn_usec, &last, now))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warn("%s", line);
}

static void bc_count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* File I/O goes through lib/fileio.h: the ring inside a task, a
 * blocking syscall elsewhere. */

/* Reads up to len bytes at off, stopping early only at the end of the
 * file. Returns the count or -errno. */
static int64_t bc_read_full(int fd, void *p, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		int r = fileio_pread(fd, (uint8_t *)p + got, len - got, off + got);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (int64_t)got;
}

static int bc_write_full(int fd, const void *p, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		int r = fileio_pwrite(fd, (const uint8_t *)p + done, len - done,
				  off + done);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

/* mkdir -p of an absolute path (modified in place, restored). */
static int bc_mkdir_p(char *path)
{
	size_t len = strlen(path);
	int r = 0;

	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		r = fileio_mkdirat(AT_FDCWD, path, 0700);
		if (i < len)
			path[i] = '/';
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/* ---- the index (callers hold bc->lock) ---- */

static struct bc_ent *map_find(struct bodycache *bc, uint64_t h)
{
	struct bc_ent *e = bc->tab[h & (bc->nbuckets - 1)];

	while (e != NULL && e->h != h)
		e = e->hnext;
	return e;
}

static void map_grow(struct bodycache *bc)
{
	size_t n = bc->nbuckets * 2;
	struct bc_ent **tab = xcalloc(n, sizeof(*tab));

	for (size_t i = 0; i < bc->nbuckets; i++) {
		struct bc_ent *e = bc->tab[i], *next;
		for (; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = tab[e->h & (n - 1)];
			tab[e->h & (n - 1)] = e;
		}
	}
	free(bc->tab);
	bc->tab = tab;
	bc->nbuckets = n;
}

static void lru_unlink(struct bodycache *bc, struct bc_ent *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		bc->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		bc->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_head(struct bodycache *bc, struct bc_ent *e)
{
	e->prev = NULL;
	e->next = bc->head;
	if (bc->head != NULL)
		bc->head->prev = e;
	else
		bc->tail = e;
	bc->head = e;
}

static void lru_push_tail(struct bodycache *bc, struct bc_ent *e)
{
	e->next = NULL;
	e->prev = bc->tail;
	if (bc->tail != NULL)
		bc->tail->next = e;
	else
		bc->head = e;
	bc->tail = e;
}

static struct bc_ent *map_insert(struct bodycache *bc, uint64_t h,
				 uint64_t size, bool at_head)
{
	struct bc_ent *e;
	size_t b;

	if (bc->count >= bc->nbuckets)
		map_grow(bc);
	e = xcalloc(1, sizeof(*e));
	e->h = h;
	e->size = size;
	b = h & (bc->nbuckets - 1);
	e->hnext = bc->tab[b];
	bc->tab[b] = e;
	bc->count++;
	bc->total += size;
	if (at_head)
		lru_push_head(bc, e);
	else
		lru_push_tail(bc, e);
	return e;
}

static void map_remove(struct bodycache *bc, struct bc_ent *e)
{
	struct bc_ent **pp = &bc->tab[e->h & (bc->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(bc, e);
	bc->count--;
	bc->total -= e->size;
	free(e);
}

/* Marks h as just used (inserting it when unknown) with its size. */
static void bc_touch(struct bodycache *bc, uint64_t h, uint64_t size)
{
	struct bc_ent *e;

	pthread_mutex_lock(&bc->lock);
	e = map_find(bc, h);
	if (e == NULL) {
		map_insert(bc, h, size, true);
	} else {
		bc->total = bc->total - e->size + size;
		e->size = size;
		if (bc->head != e) {
			lru_unlink(bc, e);
			lru_push_head(bc, e);
		}
	}
	pthread_mutex_unlock(&bc->lock);
}

static void bc_forget(struct bodycache *bc, uint64_t h)
{
	struct bc_ent *e;

	pthread_mutex_lock(&bc->lock);
	e = map_find(bc, h);
	if (e != NULL)
		map_remove(bc, e);
	pthread_mutex_unlock(&bc->lock);
}

/* Deletes least recently used files while the total passes the limit.
 * Nothing goes before the scan is done: the index does not know every
 * file yet, and the recently used ones are the ones it knows. */
static void bc_evict(struct bodycache *bc)
{
	char path[PATH_MAX];
	uint64_t victims[BC_EVICT_BATCH];

	for (;;) {
		size_t n = 0;

		if (atomic_load(&bc->stop))
			return;	/* closing: the next start evicts */
		pthread_mutex_lock(&bc->lock);
		while (bc->scanned && bc->total > bc->max_bytes &&
		       bc->tail != NULL && n < BC_EVICT_BATCH) {
			victims[n++] = bc->tail->h;
			map_remove(bc, bc->tail);
		}
		pthread_mutex_unlock(&bc->lock);
		if (n == 0)
			return;
		for (size_t i = 0; i < n; i++) {
			bc_path(bc, victims[i], true, path);
			int r = fileio_unlinkat(AT_FDCWD, path, 0);
			if (r == 0)
				bc_count(&bc->evictions);
			else if (r != -ENOENT && r != -ENOTDIR)
				bc_warn(bc, "event=bodycache_unlink file=%s "
					"error=\"%s\"", path, strerror(-r));
		}
	}
}

/* A file that failed a check: forget it, then delete it (that order:
 * see the top of the file). */
static void bc_drop_bad(struct bodycache *bc, uint64_t h, const char *path,
			const char *why)
{
	bc_forget(bc, h);
	bc_count(&bc->corrupt);
	bc_warn(bc, "event=bodycache_bad_file file=%s reason=\"%s\"", path,
		why);
	int r = fileio_unlinkat(AT_FDCWD, path, 0);
	if (r < 0 && r != -ENOENT)
		bc_warn(bc, "event=bodycache_unlink file=%s error=\"%s\"", path,
			strerror(-r));
}

/* ---- the file header ---- */

struct bc_meta {
	uint64_t data_len;
	uint32_t nblocks;
	size_t meta_len;	/* offset of the content */
	const uint8_t *crcs;	/* nblocks little-endian u32 */
};

enum bc_check {
	BC_OK = 0,
	BC_BAD,			/* damaged or not ours: delete */
	BC_OTHER_KEY,		/* a sound file of a colliding key */
};

static uint32_t bc_blocks(uint64_t len)
{
	return (uint32_t)((len + BC_BLOCK - 1) >> BC_BLOCK_SHIFT);
}

/* Checks the header in p[0..got) for key. */
static enum bc_check bc_parse(const uint8_t *p, size_t got, const char *key,
			      struct bc_meta *m, const char **why_r)
{
	static const uint8_t zero4[4];
	size_t klen = strlen(key);
	uint32_t file_klen, crc;

	*why_r = "short header";
	if (got < BC_HDR)
		return BC_BAD;
	*why_r = "bad magic or version";
	if (memcmp(p, BC_MAGIC, 4) != 0 || get_le16(p + 4) != BC_VERSION ||
	    p[6] != BC_BLOCK_SHIFT || p[7] != 0)
		return BC_BAD;
	file_klen = get_le32(p + 8);
	m->nblocks = get_le32(p + 12);
	m->data_len = get_le64(p + 16);
	*why_r = "bad header fields";
	if (file_klen == 0 || file_klen > BC_KEY_MAX ||
	    m->data_len > BODYCACHE_OBJECT_MAX ||
	    m->nblocks != bc_blocks(m->data_len))
		return BC_BAD;
	m->meta_len = BC_HDR + file_klen + 4 * (size_t)m->nblocks;
	*why_r = "short header";
	if (got < m->meta_len)
		return BC_BAD;
	/* The CRC covers the header with its own field zeroed. */
	crc = crc32_iscsi((unsigned char *)p, 24, BC_CRC_INIT);
	crc = crc32_iscsi((unsigned char *)zero4, 4, crc);
	crc = crc32_iscsi((unsigned char *)p + 28, (int)(m->meta_len - 28),
			  crc);
	*why_r = "header checksum";
	if (crc != get_le32(p + 24))
		return BC_BAD;
	m->crcs = p + BC_HDR + file_klen;
	*why_r = "other key";
	if (file_klen != klen || memcmp(p + BC_HDR, key, klen) != 0)
		return BC_OTHER_KEY;
	*why_r = NULL;
	return BC_OK;
}

/* The header for key and data: meta_len bytes, malloc'ed. */
static uint8_t *bc_build_meta(const char *key, const uint8_t *data,
			      size_t len, size_t *meta_len_r)
{
	size_t klen = strlen(key);
	uint32_t nblocks = bc_blocks(len);
	size_t meta_len = BC_HDR + klen + 4 * (size_t)nblocks;
	uint8_t *p = xcalloc(1, meta_len);
	uint8_t *crcs = p + BC_HDR + klen;

	memcpy(p, BC_MAGIC, 4);
	put_le16(p + 4, BC_VERSION);
	p[6] = BC_BLOCK_SHIFT;
	put_le32(p + 8, (uint32_t)klen);
	put_le32(p + 12, nblocks);
	put_le64(p + 16, len);
	memcpy(p + BC_HDR, key, klen);
	for (uint32_t i = 0; i < nblocks; i++) {
		uint64_t off = (uint64_t)i << BC_BLOCK_SHIFT;
		size_t blen = (size_t)KURA_MIN(BC_BLOCK, len - off);
		put_le32(crcs + 4 * (size_t)i, bc_crc(data + off, blen));
	}
	put_le32(p + 24, bc_crc(p, meta_len));
	*meta_len_r = meta_len;
	return p;
}

static bool bc_key_ok(const char *key)
{
	size_t klen = key != NULL ? strnlen(key, BC_KEY_MAX + 1) : 0;

	return klen > 0 && klen <= BC_KEY_MAX;
}

/* ---- get ---- */

/* Fills sp with content bytes [s0, s1): what the probe already holds is
 * copied, the rest read. Returns 0, or BC_BAD when the file is short. */
static int bc_fill(int fd, const uint8_t *probe, size_t got,
		   const struct bc_meta *m, uint64_t s0, uint64_t s1,
		   uint8_t *sp, int *err_r)
{
	uint64_t a = m->meta_len + s0, b = m->meta_len + s1;
	size_t done = 0;
	int64_t r;

	if (a < got) {
		uint64_t c = KURA_MIN(b, (uint64_t)got);
		done = (size_t)(c - a);
		memcpy(sp, probe + a, done);
	}
	if (a + done < b) {
		size_t want = (size_t)(b - a - done);
		r = bc_read_full(fd, sp + done, want, a + done);
		if (r < 0) {
			*err_r = (int)r;
			return BC_BAD;
		}
		if ((size_t)r < want)
			return BC_BAD;
	}
	return 0;
}

static bool bc_blocks_ok(const struct bc_meta *m, const uint8_t *sp,
			 uint64_t s0, uint64_t s1)
{
	for (uint64_t off = s0; off < s1; off += BC_BLOCK) {
		uint64_t blk = off >> BC_BLOCK_SHIFT;
		size_t blen = (size_t)KURA_MIN(BC_BLOCK, m->data_len - off);
		if (bc_crc(sp + (off - s0), blen) !=
		    get_le32(m->crcs + 4 * blk))
			return false;
	}
	return true;
}

static int bc_miss(struct bodycache *bc)
{
	bc_count(&bc->misses);
	return KURA_ENOTFOUND;
}

int bodycache_get(struct bodycache *bc, const char *key, uint64_t off,
		  uint64_t len, struct buf *out)
{
	char path[PATH_MAX];
	struct bc_meta m;
	const char *why;
	uint8_t *probe = NULL, *tmp = NULL, *dst, *sp;
	uint64_t n, s0, s1;
	int64_t got;
	int fd, rc, err = 0;
	bool known, scanned;
	uint64_t h;

	if (!bc_key_ok(key))
		return bc_miss(bc);
	h = bc_hash(key);
	pthread_mutex_lock(&bc->lock);
	known = map_find(bc, h) != NULL;
	scanned = bc->scanned;
	pthread_mutex_unlock(&bc->lock);
	if (!known && scanned)
		return bc_miss(bc);

	bc_path(bc, h, true, path);
	fd = fileio_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd == -ENOENT || fd == -ENOTDIR) {
		/* vanished (directory wiped): the entry is stale */
		bc_forget(bc, h);
		return bc_miss(bc);
	}
	if (fd < 0) {
		/* e.g. out of descriptors: the file may be fine */
		bc_warn(bc, "event=bodycache_open file=%s error=\"%s\"", path,
			strerror(-fd));
		return bc_miss(bc);
	}
	probe = xmalloc(BC_PROBE);
	got = bc_read_full(fd, probe, BC_PROBE, 0);
	if (got < 0) {
		err = (int)got;
		why = "read error";
		goto bad;
	}
	switch (bc_parse(probe, (size_t)got, key, &m, &why)) {
	case BC_OK:
		break;
	case BC_OTHER_KEY:
		rc = bc_miss(bc);
		goto out;
	case BC_BAD:
	default:
		goto bad;
	}

	n = off >= m.data_len ? 0 : m.data_len - off;
	if (len < n)
		n = len;
	if (n == 0) {
		rc = 0;
		goto hit;
	}
	dst = buf_reserve(out, (size_t)n);
	if (dst == NULL) {
		rc = KURA_ETOOBIG;
		goto hit;
	}
	/* Whole blocks around the range, so that each can be checked. */
	s0 = off & ~(BC_BLOCK - 1);
	s1 = KURA_MIN(((off + n - 1) | (BC_BLOCK - 1)) + 1, m.data_len);
	if (s0 == off && s1 == off + n) {
		sp = dst;
	} else {
		tmp = xmalloc((size_t)(s1 - s0));
		sp = tmp;
	}
	if (bc_fill(fd, probe, (size_t)got, &m, s0, s1, sp, &err) != 0) {
		why = err != 0 ? "read error" : "short file";
		goto bad;
	}
	if (!bc_blocks_ok(&m, sp, s0, s1)) {
		why = "content checksum";
		goto bad;
	}
	if (tmp != NULL)
		memcpy(dst, tmp + (off - s0), (size_t)n);
	buf_commit(out, (size_t)n);
	rc = 0;
hit:
	bc_count(&bc->hits);
	bc_touch(bc, h, m.meta_len + m.data_len);
	goto out;
bad:
	/* A read error drops the file as well: it costs one refill at most,
	 * and a disk that fails there would fail the next time too. */
	if (err != 0)
		bc_warn(bc, "event=bodycache_read file=%s error=\"%s\"", path,
			strerror(-err));
	bc_drop_bad(bc, h, path, why);
	rc = bc_miss(bc);
out:
	fileio_close(fd);
	free(probe);
	free(tmp);
	return rc;
}

/* ---- put ---- */

static void bc_tmp_path(const struct bodycache *bc, uint64_t h, char *out)
{
	uint8_t rnd[8];
	char hex[17];

	random_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(out, PATH_MAX, "%s/%02x/" BC_TMP_PREFIX "%s", bc->dir,
		 (unsigned)(h >> 56), hex);
}

/* Creates DIR/xx (and DIR, after a wipe). */
static int bc_make_subdir(struct bodycache *bc, uint64_t h)
{
	char path[PATH_MAX];
	int r;

	bc_path(bc, h, false, path);
	r = fileio_mkdirat(AT_FDCWD, path, 0700);
	if (r == -ENOENT) {
		char root[PATH_MAX];
		memcpy(root, bc->dir, bc->dir_len + 1);
		r = bc_mkdir_p(root);
		if (r == 0)
			r = fileio_mkdirat(AT_FDCWD, path, 0700);
	}
	return r == -EEXIST ? 0 : r;
}

int bodycache_put(struct bodycache *bc, const char *key, const void *data,
		  size_t len)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	uint8_t *meta = NULL;
	size_t meta_len = 0;
	struct bc_ent *e;
	const char *op = "create";
	int fd = -1, r;
	uint64_t h;

	if (!bc_key_ok(key))
		return KURA_EINVAL;
	if (len > bc->object_max)
		return KURA_ETOOBIG;
	h = bc_hash(key);
	/* Objects never change: a known one is only marked used. A stale
	 * entry (file gone) was dropped by the get that missed before this
	 * put. */
	pthread_mutex_lock(&bc->lock);
	e = map_find(bc, h);
	if (e != NULL && bc->head != e) {
		lru_unlink(bc, e);
		lru_push_head(bc, e);
	}
	pthread_mutex_unlock(&bc->lock);
	if (e != NULL)
		return 0;

	meta = bc_build_meta(key, data, len, &meta_len);
	bc_tmp_path(bc, h, tmp);
	fd = fileio_openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -ENOENT) {
		r = bc_make_subdir(bc, h);
		if (r < 0) {
			op = "mkdir";
			fd = r;
		} else {
			fd = fileio_openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_EXCL |
				     O_CLOEXEC, 0600);
		}
	}
	if (fd < 0) {
		r = fd;
		goto fail_notmp;
	}
	op = "write";
	r = bc_write_full(fd, meta, meta_len, 0);
	if (r == 0 && len > 0)
		r = bc_write_full(fd, data, len, meta_len);
	if (r == 0) {
		op = "close";
		r = fileio_close(fd);
	} else {
		fileio_close(fd);
	}
	if (r < 0)
		goto fail;
	op = "rename";
	bc_path(bc, h, true, path);
	r = fileio_renameat(AT_FDCWD, tmp, path, 0);
	if (r < 0)
		goto fail;
	free(meta);
	bc_touch(bc, h, meta_len + len);
	bc_count(&bc->stores);
	bc_evict(bc);
	return 0;
fail:
	fileio_unlinkat(AT_FDCWD, tmp, 0);
fail_notmp:
	free(meta);
	bc_warn(bc, "event=bodycache_put op=%s file=%s error=\"%s\"", op, tmp,
		strerror(-r));
	return r;
}

void bodycache_remove(struct bodycache *bc, const char *key)
{
	char path[PATH_MAX];
	uint64_t h;

	if (!bc_key_ok(key))
		return;
	h = bc_hash(key);
	bc_forget(bc, h);
	bc_path(bc, h, true, path);
	fileio_unlinkat(AT_FDCWD, path, 0);
}

/* ---- the start-up scan ---- */

struct bc_found {
	uint64_t h;
	uint64_t size;
	int64_t used_ns;
};

static int found_cmp_recent_first(const void *a, const void *b)
{
	const struct bc_found *x = a, *y = b;

	return x->used_ns < y->used_ns ? 1 : x->used_ns > y->used_ns ? -1 : 0;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool parse_name(const char *name, unsigned sub, uint64_t *h_r)
{
	uint64_t h = 0;

	if (strlen(name) != 16)
		return false;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		unsigned v;
		if (c >= '0' && c <= '9')
			v = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (unsigned)(c - 'a' + 10);
		else
			return false;
		h = (h << 4) | v;
	}
	if ((h >> 56) != sub)
		return false;
	*h_r = h;
	return true;
}

static void scan_dir(struct bodycache *bc, unsigned sub,
		     struct bc_found **v, size_t *n, size_t *cap)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int64_t now = time_wall_sec();

	snprintf(path, sizeof(path), "%s/%02x", bc->dir, sub);
	d = opendir(path);
	if (d == NULL)
		return;
	while (!atomic_load(&bc->stop) && (de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		struct stat st;
		uint64_t h;

		if (strncmp(name, BC_TMP_PREFIX, BC_TMP_PREFIX_LEN) == 0) {
			if (fstatat(dirfd(d), name, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - st.st_mtim.tv_sec > BC_TMP_MAX_AGE_SEC)
				unlinkat(dirfd(d), name, 0);
			continue;
		}
		if (!parse_name(name, sub, &h))
			continue;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		xgrow((void **)v, cap, *n + 1, sizeof(**v));
		(*v)[*n].h = h;
		(*v)[*n].size = (uint64_t)st.st_size;
		/* relatime moves atime on the first read after a write and
		 * then daily: a coarse but persistent "last used" */
		(*v)[*n].used_ns = KURA_MAX(ts_ns(st.st_atim),
					    ts_ns(st.st_mtim));
		(*n)++;
	}
	closedir(d);
}

static void *scan_main(void *arg)
{
	struct bodycache *bc = arg;
	struct bc_found *v = NULL;
	size_t n = 0, cap = 0, added = 0;
	uint64_t t0 = time_mono_usec();

	for (unsigned sub = 0; sub < 256 && !atomic_load(&bc->stop); sub++)
		scan_dir(bc, sub, &v, &n, &cap);
	if (n > 1)
		qsort(v, n, sizeof(*v), found_cmp_recent_first);
	/* Most recent first, each appended at the tail: the oldest ends
	 * last. Entries used meanwhile are already known and more recent. */
	for (size_t i = 0; i < n && !atomic_load(&bc->stop);) {
		size_t end = KURA_MIN(n, i + BC_MERGE_BATCH);
		pthread_mutex_lock(&bc->lock);
		for (; i < end; i++) {
			if (map_find(bc, v[i].h) == NULL) {
				map_insert(bc, v[i].h, v[i].size, false);
				added++;
			}
		}
		pthread_mutex_unlock(&bc->lock);
	}
	free(v);
	pthread_mutex_lock(&bc->lock);
	bc->scanned = true;
	pthread_mutex_unlock(&bc->lock);
	if (!atomic_load(&bc->stop)) {
		log_info("event=bodycache_scan dir=%s files=%zu msec=%" PRIu64,
			 bc->dir, added, (time_mono_usec() - t0) / 1000);
		bc_evict(bc);
	}
	pthread_mutex_lock(&bc->lock);
	bc->scan_finished = true;
	pthread_cond_broadcast(&bc->scan_cond);
	pthread_mutex_unlock(&bc->lock);
	return NULL;
}

/* ---- open / close / stats ---- */

static int bc_open_fail(const char **error_r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bc_open_fail(const char **error_r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(bc_errbuf, sizeof(bc_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = bc_errbuf;
	return err;
}

int bodycache_open(const char *dir, uint64_t max_bytes,
		   struct bodycache **bc_r, const char **error_r)
{
	char path[PATH_MAX], cwd[PATH_MAX];
	struct bodycache *bc;
	size_t len;
	int r;

	*bc_r = NULL;
	if (dir == NULL || dir[0] == '\0')
		return bc_open_fail(error_r, KURA_EINVAL,
				    "body cache: no directory");
	if (max_bytes < BODYCACHE_MIN_SIZE)
		return bc_open_fail(error_r, KURA_EINVAL,
				    "body cache: size below %" PRIu64 " bytes",
				    BODYCACHE_MIN_SIZE);
	if (dir[0] == '/') {
		r = snprintf(path, sizeof(path), "%s", dir);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return bc_open_fail(error_r, -errno,
					    "body cache: getcwd: %s",
					    strerror(errno));
		r = snprintf(path, sizeof(path), "%s/%s",
			     strcmp(cwd, "/") == 0 ? "" : cwd, dir);
	}
	len = (size_t)r;
	if (r < 0 || len + BC_NAME_ROOM >= sizeof(path))
		return bc_open_fail(error_r, -ENAMETOOLONG,
				    "body cache: directory name too long");
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	r = bc_mkdir_p(path);
	if (r < 0)
		return bc_open_fail(error_r, r, "body cache: mkdir %s: %s",
				    path, strerror(-r));

	bc = xcalloc(1, sizeof(*bc));
	bc->dir = xstrdup(len == 1 ? "" : path);	/* "/" + "/xx" */
	bc->dir_len = strlen(bc->dir);
	bc->max_bytes = max_bytes;
	bc->object_max = KURA_MIN(BODYCACHE_OBJECT_MAX, max_bytes / 8);
	bc->nbuckets = 1024;
	bc->tab = xcalloc(bc->nbuckets, sizeof(*bc->tab));
	pthread_mutex_init(&bc->lock, NULL);
	pthread_cond_init(&bc->scan_cond, NULL);
	atomic_init(&bc->stop, false);
	r = pthread_create(&bc->thread, NULL, scan_main, bc);
	if (r != 0) {
		bodycache_close(&bc);
		return bc_open_fail(error_r, -r,
				    "body cache: cannot start scan thread");
	}
	bc->thread_started = true;
	*bc_r = bc;
	return 0;
}

void bodycache_close(struct bodycache **bcp)
{
	struct bodycache *bc = *bcp;

	if (bc == NULL)
		return;
	*bcp = NULL;
	atomic_store(&bc->stop, true);
	if (bc->thread_started)
		pthread_join(bc->thread, NULL);
	for (size_t i = 0; i < bc->nbuckets; i++) {
		struct bc_ent *e = bc->tab[i], *next;
		for (; e != NULL; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	free(bc->tab);
	pthread_cond_destroy(&bc->scan_cond);
	pthread_mutex_destroy(&bc->lock);
	free(bc->dir);
	free(bc);
}

uint64_t bodycache_object_max(const struct bodycache *bc)
{
	return bc->object_max;
}

void bodycache_get_stats(struct bodycache *bc, struct bodycache_stats *st_r)
{
	memset(st_r, 0, sizeof(*st_r));
	st_r->hits = atomic_load(&bc->hits);
	st_r->misses = atomic_load(&bc->misses);
	st_r->stores = atomic_load(&bc->stores);
	st_r->evictions = atomic_load(&bc->evictions);
	st_r->corrupt = atomic_load(&bc->corrupt);
	pthread_mutex_lock(&bc->lock);
	st_r->bytes = bc->total;
	st_r->files = bc->count;
	st_r->scanned = bc->scan_finished;
	pthread_mutex_unlock(&bc->lock);
}

void bodycache_wait_scan(struct bodycache *bc)
{
	pthread_mutex_lock(&bc->lock);
	while (!bc->scan_finished)
		pthread_cond_wait(&bc->scan_cond, &bc->lock);
	pthread_mutex_unlock(&bc->lock);
}
