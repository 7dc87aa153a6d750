/* bodycache: message bytes on local disk, bounded in size, LRU
 * (DESIGN.md §6). Store objects under "u/<h>/<user>/m/<guid>" never
 * change once written, so a cached copy is always right; the cache may be
 * deleted at any time (a vanished file is a miss).
 *
 * One file per object, DIR/<xx>/<16 hex digits of a hash of the key>,
 * written under a temporary name and renamed, so no torn file is ever
 * visible under a final name. Each file starts with a header (magic,
 * version, the key, the length and a CRC32C per 64 KiB block of the
 * content, and a CRC32C of the header itself); every read checks the
 * blocks it returns. A file that fails a check is a miss and is deleted.
 * Files are not fsynced: after a crash the checks catch what the disk
 * lost.
 *
 * The total size is bounded by an in-memory LRU index shared by all
 * threads (one mutex, held only for map and list updates, never across
 * I/O). At open it is rebuilt by a background thread that scans DIR
 * (recency from each file's atime/mtime); until the scan is done, lookups
 * go to the files directly and nothing is evicted.
 *
 * I/O: inside a task (lib/task.h) every open/read/write/rename/unlink/
 * mkdir is an SQE on the thread's ring and only the calling task waits;
 * outside a task the same calls block. Functions marked "may suspend"
 * follow the task rules of lib/task.h.
 *
 * All functions are thread-safe. One cache directory belongs to one
 * process at a time. */
#ifndef KURA_BODYCACHE_H
#define KURA_BODYCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* Objects larger than this (or than 1/8 of the cache) are not cached. */
#define BODYCACHE_OBJECT_MAX ((uint64_t)64 << 20)
/* Smallest accepted max_bytes. */
#define BODYCACHE_MIN_SIZE ((uint64_t)1 << 16)

struct bodycache;

struct bodycache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t stores;	/* objects written */
	uint64_t evictions;	/* files deleted to stay under the limit */
	uint64_t corrupt;	/* files that failed a check (deleted) */
	uint64_t bytes;		/* bytes on disk the index knows of */
	uint64_t files;		/* files the index knows of */
	bool scanned;		/* the start-up scan (and its eviction) is done */
};

/* Opens (creating it and its parents if needed) a cache in dir holding at
 * most max_bytes (>= BODYCACHE_MIN_SIZE; files and headers counted, not
 * the file system's block rounding) and starts the scan thread. dir is
 * made absolute (against the current directory), so a later chdir does
 * not matter. Returns 0, or a negative error with *error_r set (static
 * or thread-local text). Blocks (call at start-up, not from a task). */
int bodycache_open(const char *dir, uint64_t max_bytes,
		   struct bodycache **bc_r, const char **error_r);
/* Stops the scan thread and frees the index; the files stay. No other
 * call may be running or start on bc. Sets *bc to NULL. */
void bodycache_close(struct bodycache **bc);

/* Largest object bodycache_put() keeps: min(BODYCACHE_OBJECT_MAX,
 * max_bytes / 8). */
uint64_t bodycache_object_max(const struct bodycache *bc);

/* Appends bytes [off, off+len) of the cached object `key` to out (len
 * may be UINT64_MAX; a range past the end is cut at the end, as
 * store_get does). May suspend. Returns:
 *   0               hit, the bytes are appended;
 *   KURA_ENOTFOUND  miss: not cached, vanished, or failed a check
 *                   (then deleted); nothing appended;
 *   KURA_ETOOBIG    hit, but the bytes do not fit out->max; nothing
 *                   appended.
 * I/O errors count as misses (logged). */
int bodycache_get(struct bodycache *bc, const char *key, uint64_t off,
		  uint64_t len, struct buf *out);

/* Keeps a copy of the whole object `key` (data is not retained), then
 * evicts least recently used files while the total passes the limit.
 * May suspend. Returns 0 (stored), KURA_ETOOBIG (larger than
 * bodycache_object_max(): not stored), KURA_EINVAL (key empty or longer
 * than 1024 bytes) or a negative errno (logged; nothing stored). Callers
 * may ignore the result: it is a cache. */
int bodycache_put(struct bodycache *bc, const char *key, const void *data,
		  size_t len);

/* Forgets key (deletes its file). May suspend. */
void bodycache_remove(struct bodycache *bc, const char *key);

/* Counters and sizes at the time of the call. */
void bodycache_get_stats(struct bodycache *bc, struct bodycache_stats *st_r);

/* Blocks until the start-up scan is done, including the eviction it
 * makes when the files found pass the limit (tests, tools). Not from a
 * task. */
void bodycache_wait_scan(struct bodycache *bc);

#endif
