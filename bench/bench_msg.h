/* bench_msg: the messages kura-bench APPENDs.
 *
 * A pool is either loaded from an mbox file (sent verbatim, line endings
 * made CRLF) or generated deterministically from the seed with a
 * realistic size mix:
 *
 *   share  size           shape
 *   30 %   1-3 KiB        short text/plain
 *   30 %   3-10 KiB       longer text/plain
 *   20 %   10-50 KiB      text/html newsletter
 *   12 %   50-300 KiB     multipart/mixed, text + base64 attachment
 *    6 %   300 KiB-1 MiB  multipart/mixed, text + base64 attachment
 *    2 %   1-4 MiB        multipart/mixed, text + base64 attachment
 *
 * (mean about 120 KiB, median about 4 KiB). Generated messages carry
 * no Message-ID: the caller prefixes a unique one per APPEND, so the
 * same pool bytes never make two identical messages. */
#ifndef KURA_BENCH_MSG_H
#define KURA_BENCH_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages at most this big count as "small" (persistent APPEND). */
#define BENCH_MSG_SMALL_MAX 8192
/* Larger mbox messages are skipped. */
#define BENCH_MSG_MAX (64u << 20)

struct bench_msg {
	uint8_t *data;
	size_t len;
};

struct bench_msg_pool {
	struct bench_msg *msgs;
	size_t count;
	size_t *small;		/* indices of messages <= BENCH_MSG_SMALL_MAX */
	size_t small_count;
	size_t total_bytes;
	bool generated;		/* true: prefix a Message-ID per APPEND */
	/* generated pools: the messages of size class c are
	 * msgs[class_first[c] .. class_first[c + 1]) */
	size_t class_first[7];
};

/* Loads every message of an mbox file into *pool (which need not be
 * initialised). "From " lines separate messages; ">From " lines lose one
 * '>' (mboxrd); the blank line before a separator is dropped; line
 * endings become CRLF. Messages above BENCH_MSG_MAX are skipped.
 * Returns 0, or -errno / -EINVAL (no message found, not an mbox) with a
 * static reason in *error_r. */
int bench_msg_pool_load_mbox(struct bench_msg_pool *pool, const char *path,
			     const char **error_r);

/* Fills *pool with generated messages: the mix above, or all of about
 * fixed_size bytes when fixed_size is not 0. Deterministic for a seed. */
void bench_msg_pool_generate(struct bench_msg_pool *pool, uint64_t seed,
			     size_t fixed_size);

/* Picks a message with *rng: a small one when small is true (any one
 * if the pool has none), else by the size mix (generated pools) or
 * uniformly (mbox pools). The pool owns the message. */
const struct bench_msg *bench_msg_pool_pick(const struct bench_msg_pool *pool,
					    uint64_t *rng, bool small);

void bench_msg_pool_free(struct bench_msg_pool *pool);

#endif
