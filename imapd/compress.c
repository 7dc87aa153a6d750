#include "imapd/compress.h"

#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* See compress.h for why SMALL and not DEFAULT. */
#define OUT_LEVEL 1
#define OUT_LEVEL_BUF_SIZE ISAL_DEF_LVL1_SMALL

/* Output is produced in steps of at most this much room, so a buf with no
 * max grows with the output instead of by a worst-case guess. */
#define OUT_STEP (16 * 1024)
/* Less room than this counts as full: ISA-L needs 8 bytes for any bit
 * buffer write and makes no progress below that; the margin avoids
 * calls that produce a handful of bytes each. */
#define OUT_MIN_ROOM 64
/* ISA-L keeps uint32_t byte counters and compares some of them without
 * wrap-around arithmetic. A 5 GiB stream survived the wrap in our test,
 * but restarting the compressor at a flush boundary well before 4 GiB
 * keeps us off that path, at the cost of one batch without
 * back-references per GiB. (The decompressor cannot be restarted: the
 * client decides; it survived the same test.) */
#define OUT_RESTART_AFTER (1u << 30)

#define IN_STEP (64 * 1024)
/* avail_in is a uint32_t. */
#define IO_STEP_MAX (1u << 30)

struct compress_out {
	struct isal_zstream *zs;	/* NULL before the first write and
					 * after compress_out_idle() */
	uint8_t *level_buf;
	bool dirty;		/* input taken since the last complete flush */
	bool flushing;		/* a SYNC FLUSH was started, not complete */
	bool failed;
};

struct compress_in {
	struct inflate_state *st;	/* NULL until the first byte is fed */
	bool failed;
};

/* isal_deflate() and isal_inflate() memcpy from next_in even when avail_in
 * is 0; a NULL source would be undefined behaviour. ISA-L's next_in is not
 * const, but it only ever reads through it (here and for the caller's
 * input below). */
static const uint8_t no_input[1];

struct compress_out *compress_out_create(void)
{
	return xcalloc(1, sizeof(struct compress_out));
}

static void out_free_state(struct compress_out *co)
{
	free(co->zs);
	free(co->level_buf);
	co->zs = NULL;
	co->level_buf = NULL;
}

void compress_out_destroy(struct compress_out **co)
{
	if (co == NULL || *co == NULL)
		return;
	out_free_state(*co);
	free(*co);
	*co = NULL;
}

static void out_start(struct compress_out *co)
{
	struct isal_zstream *zs = xcalloc(1, sizeof(*zs));

	isal_deflate_init(zs);
	co->level_buf = xmalloc(OUT_LEVEL_BUF_SIZE);
	zs->level = OUT_LEVEL;
	zs->level_buf = co->level_buf;
	zs->level_buf_size = OUT_LEVEL_BUF_SIZE;
	zs->gzip_flag = IGZIP_DEFLATE;
	zs->hist_bits = 0;	/* the full 32 KiB window */
	zs->end_of_stream = 0;	/* never: RFC 4978 streams do not end */
	zs->flush = NO_FLUSH;
	co->zs = zs;
}

/* Room for the next piece of output in dst, or NULL if dst is (nearly)
 * at its max. */
static uint8_t *out_room(struct buf *dst, size_t *n_r)
{
	size_t n = OUT_STEP;

	if (dst->max != 0) {
		size_t used = buf_used(dst);

		if (used >= dst->max || dst->max - used < OUT_MIN_ROOM)
			return NULL;
		n = KURA_MIN(n, dst->max - used);
	}
	*n_r = n;
	return buf_reserve(dst, n);
}

/* Drives a started SYNC FLUSH to its end. */
static int out_flush_run(struct compress_out *co, struct buf *dst)
{
	struct isal_zstream *zs = co->zs;

	zs->flush = SYNC_FLUSH;
	for (;;) {
		size_t n;
		uint8_t *p = out_room(dst, &n);

		if (p == NULL)
			return -ENOBUFS;
		zs->next_in = (uint8_t *)(uintptr_t)no_input;
		zs->avail_in = 0;
		zs->next_out = p;
		zs->avail_out = (uint32_t)n;
		if (isal_deflate(zs) != COMP_OK) {
			co->failed = true;
			return -EIO;
		}
		size_t made = n - zs->avail_out;

		buf_commit(dst, made);
		/* ISA-L's documented test for "all input flushed": the sync
		 * block is written and no input waits in its buffer. */
		if (zs->avail_out > 0 &&
		    zs->internal_state.state == ZSTATE_NEW_HDR &&
		    zs->internal_state.b_bytes_processed ==
		    zs->internal_state.b_bytes_valid)
			break;
		if (made == 0) {
			if (n < OUT_STEP)
				return -ENOBUFS;
			co->failed = true;	/* stalled with room: a bug */
			return -EIO;
		}
	}
	zs->flush = NO_FLUSH;
	co->flushing = false;
	co->dirty = false;
	if (zs->total_in >= OUT_RESTART_AFTER)
		out_free_state(co);
	return 0;
}

int compress_out_flush(struct compress_out *co, struct buf *dst)
{
	if (co->failed)
		return -EIO;
	if (!co->dirty)
		return 0;
	co->flushing = true;
	return out_flush_run(co, dst);
}

ssize_t compress_out_write(struct compress_out *co, const void *plain,
			   size_t len, struct buf *dst)
{
	if (co->failed)
		return -EIO;
	if (len == 0)
		return 0;
	if (co->flushing) {
		int rc = out_flush_run(co, dst);

		if (rc == -ENOBUFS)
			return 0;
		if (rc < 0)
			return rc;
	}
	if (co->zs == NULL)
		out_start(co);

	struct isal_zstream *zs = co->zs;
	const uint8_t *in = plain;
	size_t done = 0;

	zs->flush = NO_FLUSH;
	while (done < len) {
		size_t n;
		uint8_t *p = out_room(dst, &n);

		if (p == NULL)
			break;
		size_t step = KURA_MIN(len - done, (size_t)IO_STEP_MAX);

		zs->next_in = (uint8_t *)(uintptr_t)(in + done);
		zs->avail_in = (uint32_t)step;
		zs->next_out = p;
		zs->avail_out = (uint32_t)n;
		if (isal_deflate(zs) != COMP_OK) {
			co->failed = true;
			return -EIO;
		}
		size_t took = step - zs->avail_in;
		size_t made = n - zs->avail_out;

		buf_commit(dst, made);
		done += took;
		if (took > 0)
			co->dirty = true;
		if (took == 0 && made == 0) {
			if (n < OUT_STEP)
				break;
			co->failed = true;
			return -EIO;
		}
	}
	return (ssize_t)done;
}

bool compress_out_idle(struct compress_out *co)
{
	if (co->zs == NULL || co->dirty || co->flushing || co->failed)
		return false;
	out_free_state(co);
	return true;
}

size_t compress_out_memory(const struct compress_out *co)
{
	size_t n = sizeof(*co);

	if (co->zs != NULL)
		n += sizeof(*co->zs) + OUT_LEVEL_BUF_SIZE;
	return n;
}

struct compress_in *compress_in_create(void)
{
	return xcalloc(1, sizeof(struct compress_in));
}

void compress_in_destroy(struct compress_in **ci)
{
	if (ci == NULL || *ci == NULL)
		return;
	free((*ci)->st);
	free(*ci);
	*ci = NULL;
}

bool compress_in_pending(const struct compress_in *ci)
{
	return ci->st != NULL && !ci->failed &&
		ci->st->tmp_out_valid > ci->st->tmp_out_processed;
}

bool compress_in_is_finished(const struct compress_in *ci)
{
	return ci->st != NULL && !ci->failed &&
		ci->st->block_state == ISAL_BLOCK_FINISH;
}

ssize_t compress_in_feed(struct compress_in *ci, const void *compressed,
			 size_t len, struct buf *plain_dst)
{
	if (ci->failed)
		return -EPROTO;
	if (plain_dst->max == 0)
		return -EINVAL;
	if (ci->st == NULL) {
		if (len == 0)
			return 0;
		ci->st = xcalloc(1, sizeof(*ci->st));
		isal_inflate_init(ci->st);
		ci->st->crc_flag = ISAL_DEFLATE;
		ci->st->hist_bits = 0;
	}

	struct inflate_state *st = ci->st;
	const uint8_t *in = compressed;
	size_t taken = 0, appended = 0;

	for (;;) {
		if (st->block_state == ISAL_BLOCK_FINISH) {
			/* Bytes after the final block: left over, or read
			 * ahead into ISA-L's bit buffer (up to 8 bytes it
			 * counts as taken; fewer than 8 bits are padding). */
			if (taken < len || st->read_in_length >= 8)
				goto fail;
			break;
		}
		if (taken == len && !compress_in_pending(ci))
			break;

		size_t used = buf_used(plain_dst);

		if (used >= plain_dst->max)
			break;
		size_t n = KURA_MIN((size_t)IN_STEP, plain_dst->max - used);
		uint8_t *p = buf_reserve(plain_dst, n);

		if (p == NULL)
			break;
		size_t step = KURA_MIN(len - taken, (size_t)IO_STEP_MAX);

		st->next_in = step > 0 ? (uint8_t *)(uintptr_t)(in + taken)
			: (uint8_t *)(uintptr_t)no_input;
		st->avail_in = (uint32_t)step;
		st->next_out = p;
		st->avail_out = (uint32_t)n;
		int rc = isal_inflate(st);
		size_t took = step - st->avail_in;
		size_t made = n - st->avail_out;

		if (rc < 0)
			goto fail;
		buf_commit(plain_dst, made);
		appended += made;
		taken += took;
		if (took == 0 && made == 0 &&
		    st->block_state != ISAL_BLOCK_FINISH)
			break;
	}
	return (ssize_t)taken;

fail:
	/* Reservation may have compacted the buffer, which keeps buf_used()
	 * and the bytes; only what this call appended is taken back. */
	plain_dst->len -= appended;
	ci->failed = true;
	return -EPROTO;
}

size_t compress_in_memory(const struct compress_in *ci)
{
	size_t n = sizeof(*ci);

	if (ci->st != NULL)
		n += sizeof(*ci->st);
	return n;
}
