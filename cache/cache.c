/* LMDB cache: immutable store objects by key and small hints.
 *
 * Writes are batched: cache_put() records the value in an in-memory
 * pending map (visible to cache_get at once) and a background thread
 * writes the batch in one LMDB write transaction when it passes
 * CACHE_BATCH_ENTRIES / CACHE_BATCH_BYTES, or once a second. While a batch
 * is being written it stays visible in a second map ("flushing"), so a
 * reader never sees a key disappear between the two.
 *
 * Every stored value carries a checksum over key and value: the cache is
 * opened with MDB_NOMETASYNC for speed, and a value that fails its check
 * (disk trouble, a truncated file) is treated as a miss, never served.
 *
 * Keys longer than LMDB's key limit are stored under "#<hash>" with the
 * full key inside the value, verified on read. */
#include "cache/cache.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

#define CACHE_BATCH_ENTRIES 512
#define CACHE_BATCH_BYTES (8u << 20)
/* Beyond this the flusher cannot keep up: puts are dropped (a cache may
 * forget). */
#define CACHE_PENDING_MAX (64u << 20)
#define CACHE_FLUSH_MSEC 1000

#define CACHE_MAGIC0 'K'
#define CACHE_MAGIC1 'C'
#define CACHE_VERSION 1
#define CACHE_F_LONGKEY 1
/* magic(2) version(1) flags(1) check(8) */
#define CACHE_HDR 12

struct cache_ent {
	struct cache_ent *next;
	char *key;
	uint8_t *val;
	size_t len;
	bool del;
};

struct cache_map {
	struct cache_ent **tab;
	size_t nbuckets, count, bytes;
};

struct cache {
	MDB_env *env;
	MDB_dbi dbi;
	size_t maxkey;
	pthread_mutex_t lock;		/* pending, flushing, stop */
	pthread_mutex_t flush_lock;	/* one writer at a time */
	pthread_cond_t cond;
	struct cache_map pending, flushing;
	bool want_flush, stop;
	bool thread_started;
	pthread_t thread;
};

/* Detects damaged values, nothing more: 8 bytes per step, because a
 * byte-at-a-time hash costs more than the read of a large value. */
static uint64_t check_more(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	for (; i < len; i++) {
		h = (h ^ b[i]) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h ^ len;
}

static uint64_t value_check(const char *key, size_t klen, const void *val,
			    size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = check_more(h, key, klen);
	return check_more(h, val, len);
}

static void map_init(struct cache_map *m)
{
	m->nbuckets = 256;
	m->tab = xcalloc(m->nbuckets, sizeof(*m->tab));
	m->count = 0;
	m->bytes = 0;
}

static void ent_free(struct cache_ent *e)
{
	free(e->key);
	free(e->val);
	free(e);
}

static void map_clear(struct cache_map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct cache_ent *e = m->tab[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			ent_free(e);
		}
		m->tab[i] = NULL;
	}
	m->count = 0;
	m->bytes = 0;
}

static void map_deinit(struct cache_map *m)
{
	map_clear(m);
	free(m->tab);
	m->tab = NULL;
}

static size_t key_bucket(const struct cache_map *m, const char *key)
{
	return (size_t)(hash64(key, strlen(key)) & (m->nbuckets - 1));
}

static struct cache_ent *map_find(const struct cache_map *m, const char *key)
{
	struct cache_ent *e = m->tab[key_bucket(m, key)];
	for (; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static void map_grow(struct cache_map *m)
{
	size_t nb = m->nbuckets * 2;
	struct cache_ent **tab = xcalloc(nb, sizeof(*tab));
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct cache_ent *e = m->tab[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			size_t b = (size_t)(hash64(e->key, strlen(e->key)) &
					    (nb - 1));
			e->next = tab[b];
			tab[b] = e;
		}
	}
	free(m->tab);
	m->tab = tab;
	m->nbuckets = nb;
}

/* Takes ownership of val. */
static void map_set(struct cache_map *m, const char *key, uint8_t *val,
		    size_t len, bool del)
{
	struct cache_ent *e = map_find(m, key);
	if (e != NULL) {
		m->bytes -= e->len;
		free(e->val);
	} else {
		if (m->count >= m->nbuckets)
			map_grow(m);
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		size_t b = key_bucket(m, key);
		e->next = m->tab[b];
		m->tab[b] = e;
		m->count++;
	}
	e->val = val;
	e->len = len;
	e->del = del;
	m->bytes += len;
}

/* The LMDB key for key: itself, or "#<hash>" when too long. */
static bool lmdb_key(const struct cache *c, const char *key, char *tmp,
		     size_t tmplen, MDB_val *k_r)
{
	size_t klen = strlen(key);
	if (klen > 0 && klen <= c->maxkey && key[0] != '#') {
		k_r->mv_data = (void *)key;
		k_r->mv_size = klen;
		return false;
	}
	snprintf(tmp, tmplen, "#%016llx",
		 (unsigned long long)hash64(key, klen));
	k_r->mv_data = tmp;
	k_r->mv_size = strlen(tmp);
	return true;
}

static void *flusher_main(void *arg);

int cache_open(const char *dir, uint64_t map_size, struct cache **cache_r,
	       const char **error_r)
{
	struct cache *c;
	MDB_txn *txn;
	int rc;

	*cache_r = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*error_r = "cannot create cache directory";
		return -errno;
	}
	c = xcalloc(1, sizeof(*c));
	rc = mdb_env_create(&c->env);
	if (rc != 0)
		goto fail;
	rc = mdb_env_set_mapsize(c->env, (size_t)map_size);
	if (rc != 0)
		goto fail;
	rc = mdb_env_set_maxreaders(c->env, 512);
	if (rc != 0)
		goto fail;
	/* MDB_NOTLS: read transactions are used from tasks and threads, not
	 * bound to one thread. MDB_NOMETASYNC: a crash may lose the last
	 * batch, never the database's integrity. */
	rc = mdb_env_open(c->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0600);
	if (rc != 0)
		goto fail;
	int dead = 0;
	(void)mdb_reader_check(c->env, &dead);
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0)
		goto fail;
	rc = mdb_dbi_open(txn, NULL, 0, &c->dbi);
	if (rc != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		goto fail;
	c->maxkey = (size_t)mdb_env_get_maxkeysize(c->env);
	map_init(&c->pending);
	map_init(&c->flushing);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->flush_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	*cache_r = c;
	rc = pthread_create(&c->thread, NULL, flusher_main, c);
	c->thread_started = rc == 0;
	if (rc != 0) {
		*cache_r = NULL;
		cache_close(&c);
		*error_r = "cannot start cache flusher thread";
		return -rc;
	}
	return 0;
fail:
	*error_r = mdb_strerror(rc);
	log_error("event=cache_open dir=%s error=\"%s\"", dir,
		  mdb_strerror(rc));
	if (c->env != NULL)
		mdb_env_close(c->env);
	free(c);
	return rc > 0 ? -rc : KURA_EUNAVAIL;
}

/* Writes one entry into txn. Returns the LMDB code. */
static int write_ent(struct cache *c, MDB_txn *txn, const struct cache_ent *e)
{
	char tmp[32];
	MDB_val k, v;
	bool longkey = lmdb_key(c, e->key, tmp, sizeof(tmp), &k);
	int rc;

	if (e->del) {
		rc = mdb_del(txn, c->dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	size_t klen = strlen(e->key);
	size_t extra = longkey ? 2 + klen : 0;
	v.mv_size = CACHE_HDR + extra + e->len;
	rc = mdb_put(txn, c->dbi, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	uint8_t *p = v.mv_data;
	uint64_t check = value_check(e->key, klen, e->val, e->len);
	p[0] = CACHE_MAGIC0;
	p[1] = CACHE_MAGIC1;
	p[2] = CACHE_VERSION;
	p[3] = longkey ? CACHE_F_LONGKEY : 0;
	memcpy(p + 4, &check, 8);
	p += CACHE_HDR;
	if (longkey) {
		p[0] = (uint8_t)(klen >> 8);
		p[1] = (uint8_t)klen;
		memcpy(p + 2, e->key, klen);
		p += 2 + klen;
	}
	if (e->len > 0)
		memcpy(p, e->val, e->len);
	return 0;
}

static int write_batch(struct cache *c, struct cache_map *m)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < m->nbuckets && rc == 0; i++) {
		for (struct cache_ent *e = m->tab[i]; e != NULL && rc == 0;
		     e = e->next)
			rc = write_ent(c, txn, e);
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/* Everything is rebuilt from the store, so a full cache simply starts
 * over. */
static int drop_all(struct cache *c)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_drop(txn, c->dbi, 0);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

void cache_flush(struct cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->flush_lock);
	pthread_mutex_lock(&c->lock);
	if (c->pending.count == 0) {
		c->want_flush = false;
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->flush_lock);
		return;
	}
	/* flushing is empty here: only a holder of flush_lock fills it. */
	struct cache_map tmp = c->flushing;
	c->flushing = c->pending;
	c->pending = tmp;
	c->want_flush = false;
	pthread_mutex_unlock(&c->lock);

	size_t n = c->flushing.count;
	int rc = write_batch(c, &c->flushing);
	if (rc == MDB_MAP_FULL) {
		log_warn("event=cache_full action=clear");
		rc = drop_all(c);
		if (rc == 0)
			rc = write_batch(c, &c->flushing);
	}
	if (rc != 0)
		log_warn("event=cache_flush entries=%zu error=\"%s\"", n,
			 mdb_strerror(rc));

	pthread_mutex_lock(&c->lock);
	map_clear(&c->flushing);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->flush_lock);
}

static void *flusher_main(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!c->want_flush) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += CACHE_FLUSH_MSEC / 1000;
			pthread_cond_timedwait(&c->cond, &c->lock, &ts);
		}
		if (c->stop)
			break;
		if (c->pending.count == 0)
			continue;
		pthread_mutex_unlock(&c->lock);
		cache_flush(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

void cache_close(struct cache **cp)
{
	struct cache *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->thread_started)
		pthread_join(c->thread, NULL);
	cache_flush(c);
	map_deinit(&c->pending);
	map_deinit(&c->flushing);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->flush_lock);
	mdb_env_close(c->env);
	free(c);
}

/* Looks in the in-memory maps. Returns 1 if found there (value appended
 * or ETOOBIG in *rc_r), 0 if not. */
static int get_pending(struct cache *c, const char *key, struct buf *out,
		       int *rc_r)
{
	int found = 0;
	pthread_mutex_lock(&c->lock);
	struct cache_ent *e = map_find(&c->pending, key);
	if (e == NULL)
		e = map_find(&c->flushing, key);
	if (e != NULL) {
		found = 1;
		if (e->del)
			*rc_r = KURA_ENOTFOUND;
		else if (!buf_append(out, e->val, e->len))
			*rc_r = KURA_ETOOBIG;
		else
			*rc_r = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

int cache_get(struct cache *c, const char *key, struct buf *out)
{
	char tmp[32];
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (c == NULL)
		return KURA_ENOTFOUND;
	if (get_pending(c, key, out, &rc))
		return rc;
	bool longkey = lmdb_key(c, key, tmp, sizeof(tmp), &k);
	if (mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn) != 0)
		return KURA_ENOTFOUND;
	rc = mdb_get(txn, c->dbi, &k, &v);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return KURA_ENOTFOUND;
	}
	const uint8_t *p = v.mv_data;
	size_t n = v.mv_size;
	size_t klen = strlen(key);
	rc = KURA_ENOTFOUND;
	if (n < CACHE_HDR || p[0] != CACHE_MAGIC0 || p[1] != CACHE_MAGIC1 ||
	    p[2] != CACHE_VERSION)
		goto out;
	uint64_t check;
	memcpy(&check, p + 4, 8);
	bool has_key = (p[3] & CACHE_F_LONGKEY) != 0;
	p += CACHE_HDR;
	n -= CACHE_HDR;
	if (has_key != longkey)
		goto out;
	if (has_key) {
		if (n < 2)
			goto out;
		size_t sklen = ((size_t)p[0] << 8) | p[1];
		if (sklen != klen || n < 2 + sklen ||
		    memcmp(p + 2, key, klen) != 0)
			goto out;
		p += 2 + sklen;
		n -= 2 + sklen;
	}
	if (value_check(key, klen, p, n) != check) {
		log_warn("event=cache_bad_checksum");
		goto out;
	}
	/* Copied before the read transaction ends (the map may move). */
	rc = buf_append(out, p, n) ? 0 : KURA_ETOOBIG;
out:
	mdb_txn_abort(txn);
	return rc;
}

static void put_ent(struct cache *c, const char *key, const void *val,
		    size_t len, bool del)
{
	if (c == NULL || key[0] == '\0')
		return;
	uint8_t *copy = NULL;
	if (len > 0) {
		copy = xmalloc(len);
		memcpy(copy, val, len);
	}
	pthread_mutex_lock(&c->lock);
	if (c->pending.bytes + len > CACHE_PENDING_MAX) {
		pthread_mutex_unlock(&c->lock);
		free(copy);
		if (!del) {
			log_warn("event=cache_put_dropped reason=backlog");
			return;
		}
		/* A delete must not be lost: a stale hint could survive. */
		cache_flush(c);
		put_ent(c, key, NULL, 0, true);
		return;
	}
	map_set(&c->pending, key, copy, len, del);
	if (!c->want_flush && (c->pending.count >= CACHE_BATCH_ENTRIES ||
			       c->pending.bytes >= CACHE_BATCH_BYTES)) {
		c->want_flush = true;
		pthread_cond_signal(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

void cache_put(struct cache *c, const char *key, const void *val, size_t len)
{
	put_ent(c, key, val, len, false);
}

void cache_del(struct cache *c, const char *key)
{
	put_ent(c, key, NULL, 0, true);
}
