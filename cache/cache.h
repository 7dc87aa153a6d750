/* cache: the node's disposable LMDB cache (DESIGN.md §6). It may be
 * deleted at any time; everything in it can be rebuilt from the store.
 *
 * Content: immutable store objects by key (log entries and snapshot
 * parts never change once written, so a cached copy is always right),
 * and small hints (e.g. the newest log seq a node has seen for a user)
 * that only ever speed things up. Shared by all worker threads. */
#ifndef KURA_CACHE_H
#define KURA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct cache;

/* Opens (creating dir if needed) an LMDB environment of at most
 * map_size bytes. Returns 0 or a negative error with *error_r. */
int cache_open(const char *dir, uint64_t map_size, struct cache **cache_r,
	       const char **error_r);
void cache_close(struct cache **c);

/* Appends the value of key to out. Returns 0, KURA_ENOTFOUND, or
 * KURA_ETOOBIG when out->max would be passed. Never suspends (LMDB reads
 * are memory-mapped). */
int cache_get(struct cache *c, const char *key, struct buf *out);
/* Stores key=value. Writes may be batched: a put is visible to
 * cache_get at once (same process) and durable at the next flush.
 * Failures are logged and ignored (it is a cache). */
void cache_put(struct cache *c, const char *key, const void *val, size_t len);
void cache_del(struct cache *c, const char *key);
/* Writes batched puts. */
void cache_flush(struct cache *c);

#endif
