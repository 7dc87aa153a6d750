/* Tests for imapd/compress: round trips between our own compressor and
 * decompressor in many shapes and splits, SYNC FLUSH boundaries, bounded
 * output (decompression bombs, full buffers), corrupt input, and interop
 * with an independent implementation (Python's zlib, raw mode wbits=-15)
 * in both directions when python3 is installed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "imapd/compress.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "tests/unit/test.h"

#define MIB (1024 * 1024)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* splitmix64: deterministic, so failures reproduce */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rnd_range(size_t lo, size_t hi)
{
	return lo + (size_t)(rnd() % (hi - lo + 1));
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* Text shaped like IMAP responses: repetitive but not trivially so. */
static void fill_imap_text(uint8_t *p, size_t n)
{
	static const char *const parts[] = {
		"* ", "FETCH (UID ", "FLAGS (\\Seen \\Answered) ",
		"BODY[HEADER.FIELDS (FROM SUBJECT DATE)] {", "}\r\n",
		"From: Alice Example <alice@example.org>\r\n",
		"Subject: Re: quarterly numbers\r\n",
		"Date: Tue, 4 Mar 2025 10:11:12 +0100\r\n", ")\r\n",
		"a001 OK FETCH completed\r\n", "RFC822.SIZE ",
	};
	size_t i = 0;

	while (i < n) {
		char num[24];
		const char *s = parts[rnd() % ARRAY_SIZE(parts)];
		size_t l = strlen(s);

		if (rnd() % 4 == 0) {
			snprintf(num, sizeof(num), "%u ",
				 (unsigned)(rnd() % 100000));
			s = num;
			l = strlen(num);
		}
		l = KURA_MIN(l, n - i);
		memcpy(p + i, s, l);
		i += l;
	}
}

/* Compresses data with writes of write_chunk bytes (0 = all at once) and
 * one flush at the end, appending to out (no max). */
static void compress_all(struct compress_out *co, const uint8_t *data,
			 size_t len, size_t write_chunk, struct buf *out)
{
	size_t off = 0;
	bool ok = true;

	do {
		size_t n = write_chunk ? KURA_MIN(write_chunk, len - off)
			: len - off;
		ssize_t w = compress_out_write(co, data + off, n, out);

		ok = ok && w == (ssize_t)n;
		off += n;
	} while (off < len && ok);
	CHECK(ok);
	CHECK_EQ_INT(compress_out_flush(co, out), 0);
}

struct drain {
	size_t max_cap;		/* largest capacity the plain buffer reached */
	size_t calls;
	int err;
};

/* Feeds comp in pieces of feed_chunk bytes (0 = all at once) into a
 * plain buffer bounded by dst_max, moving everything decoded to res.
 * Stops at the first error (kept in d->err). */
static void decompress_all(struct compress_in *ci, const uint8_t *comp,
			   size_t clen, size_t feed_chunk, size_t dst_max,
			   struct buf *res, struct drain *d)
{
	struct buf plain;
	size_t off = 0;

	buf_init(&plain, dst_max);
	memset(d, 0, sizeof(*d));
	for (;;) {
		size_t n = feed_chunk ? KURA_MIN(feed_chunk, clen - off)
			: clen - off;

		if (n == 0 && !compress_in_pending(ci))
			break;
		ssize_t r = compress_in_feed(ci, comp + off, n, &plain);

		d->calls++;
		if (r < 0) {
			d->err = (int)r;
			break;
		}
		off += (size_t)r;
		d->max_cap = KURA_MAX(d->max_cap, plain.cap);
		if (r == 0 && buf_used(&plain) == 0 && n > 0) {
			d->err = -EDEADLK;	/* no progress with room */
			break;
		}
		buf_append(res, buf_head(&plain), buf_used(&plain));
		buf_reset(&plain);
	}
	buf_deinit(&plain);
}

/* Round trip through a fresh pair; returns true if res equals data. */
static bool round_trip(const uint8_t *data, size_t len, size_t write_chunk,
		       size_t feed_chunk, size_t dst_max)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf comp, res;
	struct drain d;

	buf_init(&comp, 0);
	buf_init(&res, 0);
	compress_all(co, data, len, write_chunk, &comp);
	decompress_all(ci, buf_head(&comp), buf_used(&comp), feed_chunk,
		       dst_max, &res, &d);
	CHECK_EQ_INT(d.err, 0);
	CHECK(d.max_cap <= dst_max);
	CHECK(!compress_in_pending(ci));
	bool same = buf_used(&res) == len &&
		(len == 0 || memcmp(buf_head(&res), data, len) == 0);

	buf_deinit(&comp);
	buf_deinit(&res);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
	return same;
}

static void test_lazy_and_empty(void)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf dst, plain;
	size_t out_handle = compress_out_memory(co);
	size_t in_handle = compress_in_memory(ci);

	buf_init(&dst, 0);
	buf_init(&plain, 1024);
	CHECK(out_handle < 128);
	CHECK(in_handle < 128);
	CHECK_EQ_INT(compress_out_write(co, "", 0, &dst), 0);
	CHECK_EQ_INT(compress_out_flush(co, &dst), 0);
	CHECK_EQ_INT(buf_used(&dst), 0);
	CHECK(!compress_out_idle(co));
	CHECK_EQ_INT(compress_out_memory(co), out_handle);

	CHECK_EQ_INT(compress_in_feed(ci, NULL, 0, &plain), 0);
	CHECK_EQ_INT(compress_in_memory(ci), in_handle);
	CHECK(!compress_in_pending(ci));
	CHECK(!compress_in_is_finished(ci));

	struct buf unbounded;

	buf_init(&unbounded, 0);
	CHECK_EQ_INT(compress_in_feed(ci, "\x03\x00", 2, &unbounded), -EINVAL);
	CHECK_EQ_INT(buf_used(&plain), 0);

	/* An empty round trip: nothing written, nothing to decode. */
	CHECK(round_trip((const uint8_t *)"", 0, 0, 0, 1024));

	compress_out_destroy(&co);
	compress_in_destroy(&ci);
	CHECK(co == NULL && ci == NULL);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
	compress_out_destroy(NULL);
	compress_in_destroy(NULL);
	buf_deinit(&dst);
	buf_deinit(&plain);
}

static void test_shapes(void)
{
	uint8_t *rand = xmalloc(MIB);
	uint8_t *rep = xmalloc(MIB);
	uint8_t *text = xmalloc(MIB);

	fill_random(rand, MIB);
	for (size_t i = 0; i < MIB; i++)
		rep[i] = (uint8_t)"abcdefghij\r\n"[i % 12];
	fill_imap_text(text, MIB);

	CHECK(round_trip((const uint8_t *)"x", 1, 0, 0, 64));
	CHECK(round_trip((const uint8_t *)"x", 1, 0, 1, 1));
	CHECK(round_trip(rand, MIB, 0, 0, 256 * 1024));
	CHECK(round_trip(rep, MIB, 0, 0, 256 * 1024));
	CHECK(round_trip(text, MIB, 0, 0, 256 * 1024));
	/* Writes of odd sizes, reads into small buffers. */
	CHECK(round_trip(rand, MIB, 4093, 1500, 4096));
	CHECK(round_trip(text, MIB, 77, 333, 1000));
	/* Compressed stream fed one byte at a time. */
	CHECK(round_trip(rep, MIB, 0, 1, 64 * 1024));
	CHECK(round_trip(text, 128 * 1024, 1000, 1, 64 * 1024));
	CHECK(round_trip(rand, 64 * 1024, 0, 1, 64 * 1024));
	/* Output room of one byte at a time. */
	CHECK(round_trip(text, 32 * 1024, 0, 0, 1));
	CHECK(round_trip(rand, 16 * 1024, 0, 7, 3));
	/* Many one-byte writes. */
	CHECK(round_trip(text, 100000, 1, 0, 64 * 1024));
	/* Sizes around ISA-L's 32 KiB history and 64 KiB buffer. */
	static const size_t sizes[] = {
		32767, 32768, 32769, 65535, 65536, 65537, 65536 + 288,
		131072 + 1,
	};
	bool ok = true;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		ok = ok && round_trip(text, sizes[i], 0, 0, 65536);
		ok = ok && round_trip(rand, sizes[i], 0, 0, 65536);
		ok = ok && round_trip(rep, sizes[i], 1000, 4096, 8192);
	}
	CHECK(ok);

	free(rand);
	free(rep);
	free(text);
}

/* Every flush makes everything written so far decodable from only the
 * bytes produced so far; a flush with nothing new adds nothing. */
static void test_flush_boundaries(void)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf comp, plain, sent;
	uint8_t chunk[5000];
	bool ok_write = true, ok_tail = true, ok_decode = true;
	bool ok_empty = true, ok_len = true;

	buf_init(&comp, 0);
	buf_init(&plain, 16 * MIB);
	buf_init(&sent, 0);
	for (int i = 0; i < 2000; i++) {
		size_t n = rnd_range(1, sizeof(chunk));

		if (i % 3 == 0)
			fill_random(chunk, n);
		else
			fill_imap_text(chunk, n);
		/* A batch of one to three writes, then a flush. */
		size_t parts = rnd_range(1, 3), off = 0;

		for (size_t k = 0; k < parts; k++) {
			size_t m = k + 1 == parts ? n - off
				: rnd_range(0, n - off);

			ok_write = ok_write &&
				compress_out_write(co, chunk + off, m, &comp) ==
				(ssize_t)m;
			off += m;
		}
		buf_append(&sent, chunk, n);
		ok_write = ok_write && compress_out_flush(co, &comp) == 0;
		size_t clen = buf_used(&comp);
		const uint8_t *c = buf_head(&comp);

		ok_tail = ok_tail && clen >= 4 &&
			memcmp(c + clen - 4, "\x00\x00\xff\xff", 4) == 0;
		ok_empty = ok_empty && compress_out_flush(co, &comp) == 0 &&
			buf_used(&comp) == clen;

		/* Only the bytes up to this flush, in one feed. */
		ssize_t r = compress_in_feed(ci, c, clen, &plain);

		ok_decode = ok_decode && r == (ssize_t)clen &&
			!compress_in_pending(ci);
		ok_len = ok_len && buf_used(&plain) == buf_used(&sent);
		buf_reset(&comp);
	}
	CHECK(ok_write);
	CHECK(ok_tail);
	CHECK(ok_empty);
	CHECK(ok_decode);
	CHECK(ok_len);
	CHECK(buf_used(&plain) == buf_used(&sent) &&
	      memcmp(buf_head(&plain), buf_head(&sent), buf_used(&sent)) == 0);

	buf_deinit(&comp);
	buf_deinit(&plain);
	buf_deinit(&sent);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
}

/* A small dst max: writes take what fits, the flush resumes, a write after
 * an unfinished flush finishes it first, and everything decodes. */
static void test_bounded_output(void)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf dst, all, res;
	size_t len = 512 * 1024;
	uint8_t *data = xmalloc(2 * len);
	size_t max_seen = 0, partial = 0, enobufs = 0;
	bool ok = true;

	fill_random(data, len);
	fill_imap_text(data + len, len);
	buf_init(&dst, 300);
	buf_init(&all, 0);
	buf_init(&res, 0);
	for (int round = 0; round < 2; round++) {
		const uint8_t *p = data + (size_t)round * len;
		size_t off = 0;

		while (off < len) {
			ssize_t w = compress_out_write(co, p + off, len - off,
						       &dst);

			ok = ok && w >= 0;
			if (w < 0)
				break;
			if ((size_t)w < len - off)
				partial++;
			off += (size_t)w;
			max_seen = KURA_MAX(max_seen, dst.cap);
			buf_append(&all, buf_head(&dst), buf_used(&dst));
			buf_reset(&dst);
		}
		/* Flush into a nearly full dst first. */
		for (;;) {
			int rc = compress_out_flush(co, &dst);

			max_seen = KURA_MAX(max_seen, dst.cap);
			buf_append(&all, buf_head(&dst), buf_used(&dst));
			buf_reset(&dst);
			if (rc == 0)
				break;
			ok = ok && rc == -ENOBUFS;
			if (rc != -ENOBUFS)
				break;
			enobufs++;
			if (enobufs == 2 && round == 0) {
				/* Interleave a write with the unfinished flush:
				 * it takes nothing until the flush is done. */
				ssize_t w;
				int tries = 0;

				do {
					w = compress_out_write(co, "tail", 4,
							       &dst);
					buf_append(&all, buf_head(&dst),
						   buf_used(&dst));
					buf_reset(&dst);
				} while (w == 0 && ++tries < 1000);
				ok = ok && w == 4 && tries > 0;
			}
		}
	}
	CHECK(ok);
	CHECK(partial > 0);
	CHECK(enobufs > 0);
	CHECK(max_seen <= 300);

	struct drain d;

	decompress_all(ci, buf_head(&all), buf_used(&all), 0, 64 * 1024,
		       &res, &d);
	CHECK_EQ_INT(d.err, 0);
	/* The "tail" write came after the flush was started, so it follows
	 * the first half. */
	CHECK_EQ_INT(buf_used(&res), 2 * len + 4);
	CHECK(buf_used(&res) == 2 * len + 4 &&
	      memcmp(buf_head(&res), data, len) == 0 &&
	      memcmp(buf_head(&res) + len, "tail", 4) == 0 &&
	      memcmp(buf_head(&res) + len + 4, data + len, len) == 0);

	/* A dst with less than the minimum room takes nothing. */
	struct buf tiny;

	buf_init(&tiny, 16);
	CHECK_EQ_INT(compress_out_write(co, "abc", 3, &tiny), 0);
	buf_deinit(&tiny);

	free(data);
	buf_deinit(&dst);
	buf_deinit(&all);
	buf_deinit(&res);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
}

/* 10 MB of zeros compress to a few KiB; decoding into a 64 KiB buffer
 * must stop at 64 KiB, report partial progress and resume. */
static void test_bomb(void)
{
	const size_t total = 10 * 1000 * 1000;
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf comp, plain;
	uint8_t *zeros = xcalloc(1, 64 * 1024);
	size_t left = total;

	buf_init(&comp, 0);
	while (left > 0) {
		size_t n = KURA_MIN(left, (size_t)64 * 1024);

		CHECK_EQ_INT(compress_out_write(co, zeros, n, &comp), n);
		left -= n;
	}
	CHECK_EQ_INT(compress_out_flush(co, &comp), 0);
	size_t clen = buf_used(&comp);

	CHECK(clen < 64 * 1024);

	buf_init(&plain, 64 * 1024);
	ssize_t r = compress_in_feed(ci, buf_head(&comp), clen, &plain);

	CHECK(r >= 0 && (size_t)r < clen);	/* partial progress */
	CHECK_EQ_INT(buf_used(&plain), 64 * 1024);
	CHECK(plain.cap <= 64 * 1024);
	size_t mem = compress_in_memory(ci);

	/* Full buffer: nothing taken, nothing appended, no error. */
	CHECK_EQ_INT(compress_in_feed(ci, buf_head(&comp) + r, clen - (size_t)r,
				      &plain), 0);
	CHECK_EQ_INT(buf_used(&plain), 64 * 1024);

	size_t off = (size_t)r, got = 0, calls = 1;
	bool all_zero = true, bounded = true;

	for (;;) {
		const uint8_t *p = buf_head(&plain);

		for (size_t i = 0; i < buf_used(&plain); i++)
			all_zero = all_zero && p[i] == 0;
		got += buf_used(&plain);
		buf_reset(&plain);
		if (off == clen && !compress_in_pending(ci))
			break;
		r = compress_in_feed(ci, buf_head(&comp) + off, clen - off,
				     &plain);
		calls++;
		if (r < 0 || calls > 10000)
			break;
		off += (size_t)r;
		bounded = bounded && plain.cap <= 64 * 1024 &&
			compress_in_memory(ci) == mem;
	}
	CHECK(r >= 0);
	CHECK_EQ_INT(got, total);
	CHECK(all_zero);
	CHECK(bounded);
	CHECK(calls >= total / (64 * 1024));

	free(zeros);
	buf_deinit(&comp);
	buf_deinit(&plain);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
}

/* All input taken but output still inside: pending says so, an empty feed
 * delivers it. */
static void test_pending(void)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf comp, plain, res;
	uint8_t text[20000];
	bool saw_pending = false;

	fill_imap_text(text, sizeof(text));
	buf_init(&comp, 0);
	buf_init(&plain, 100);
	buf_init(&res, 0);
	compress_all(co, text, sizeof(text), 0, &comp);

	size_t off = 0;
	int guard = 0;

	while (off < buf_used(&comp) || compress_in_pending(ci)) {
		if (off == buf_used(&comp))
			saw_pending = true;
		ssize_t r = compress_in_feed(ci, buf_head(&comp) + off,
					     buf_used(&comp) - off, &plain);
		if (r < 0 || ++guard > 100000)
			break;
		off += (size_t)r;
		buf_append(&res, buf_head(&plain), buf_used(&plain));
		buf_reset(&plain);
	}
	CHECK(saw_pending);
	CHECK(buf_used(&res) == sizeof(text) &&
	      memcmp(buf_head(&res), text, sizeof(text)) == 0);
	CHECK_EQ_INT(compress_in_feed(ci, NULL, 0, &plain), 0);
	CHECK_EQ_INT(buf_used(&plain), 0);

	buf_deinit(&comp);
	buf_deinit(&plain);
	buf_deinit(&res);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
}

/* Feeds one buffer to a fresh decompressor; returns the result. */
static ssize_t feed_fresh(const void *p, size_t n, struct buf *plain)
{
	struct compress_in *ci = compress_in_create();
	ssize_t r = compress_in_feed(ci, p, n, plain);

	compress_in_destroy(&ci);
	return r;
}

static void test_corrupt(void)
{
	struct buf plain;

	buf_init(&plain, 64 * 1024);
	/* BTYPE 11 is reserved (final and not final). */
	CHECK_EQ_INT(feed_fresh("\x07\x00\x00\x00", 4, &plain), -EPROTO);
	CHECK_EQ_INT(feed_fresh("\x06\x00\x00\x00", 4, &plain), -EPROTO);
	/* Stored block whose NLEN is not the complement of LEN. */
	CHECK_EQ_INT(feed_fresh("\x00\x05\x00\x00\x00hello", 10, &plain),
		     -EPROTO);
	/* Fixed-Huffman block starting with a match of distance 1: nothing
	 * to refer back to yet. */
	CHECK_EQ_INT(feed_fresh("\x02\x02\x00\x00\x00\x00", 6, &plain),
		     -EPROTO);
	CHECK_EQ_INT(buf_used(&plain), 0);

	/* Valid output before the error is taken back, the error sticks. */
	struct compress_in *ci = compress_in_create();
	uint8_t bad[32] = "\x00\x05\x00\xfa\xffhello\x06\x00\x00\x00";

	buf_append(&plain, "keep", 4);
	CHECK_EQ_INT(compress_in_feed(ci, bad, 14, &plain), -EPROTO);
	CHECK_EQ_INT(buf_used(&plain), 4);
	CHECK_EQ_INT(compress_in_feed(ci, "\x03\x00", 2, &plain), -EPROTO);
	CHECK_EQ_INT(compress_in_feed(ci, NULL, 0, &plain), -EPROTO);
	CHECK(!compress_in_pending(ci));
	compress_in_destroy(&ci);
	buf_reset(&plain);

	/* A valid stream with bytes flipped, and pure garbage: never a crash
	 * or an overflow; count how many are caught. */
	struct compress_out *co = compress_out_create();
	struct buf comp;
	uint8_t text[30000];
	int caught = 0, runs = 0;
	bool bounded = true;

	fill_imap_text(text, sizeof(text));
	buf_init(&comp, 0);
	compress_all(co, text, sizeof(text), 1000, &comp);
	for (int i = 0; i < 300; i++) {
		struct buf copy;
		struct drain d;
		struct buf res;

		buf_init(&copy, 0);
		buf_init(&res, 0);
		buf_append(&copy, buf_head(&comp), buf_used(&comp));
		if (i < 200) {
			for (int k = 0; k < 1 + i % 4; k++)
				copy.data[rnd() % copy.len] ^=
					(uint8_t)(1u << (rnd() % 8));
		} else {
			fill_random(copy.data, copy.len);
		}
		ci = compress_in_create();
		decompress_all(ci, copy.data, copy.len, 1 + rnd() % 5000,
			       4096, &res, &d);
		bounded = bounded && d.max_cap <= 4096 && d.err != -EDEADLK;
		if (d.err == -EPROTO)
			caught++;
		else if (d.err != 0)
			bounded = false;
		runs++;
		compress_in_destroy(&ci);
		buf_deinit(&copy);
		buf_deinit(&res);
	}
	CHECK(bounded);
	CHECK(caught > runs / 2);
	printf("corrupt streams: %d of %d rejected with -EPROTO\n", caught,
	       runs);

	buf_deinit(&comp);
	buf_deinit(&plain);
	compress_out_destroy(&co);
}

/* A client that ends its stream with a final block: finished, and any byte
 * after it is an error. */
static void test_final_block(void)
{
	struct compress_in *ci = compress_in_create();
	struct buf plain;

	buf_init(&plain, 1024);
	/* Final empty stored block. */
	CHECK_EQ_INT(compress_in_feed(ci, "\x01\x00\x00\xff\xff", 5, &plain),
		     5);
	CHECK(compress_in_is_finished(ci));
	CHECK_EQ_INT(compress_in_feed(ci, NULL, 0, &plain), 0);
	CHECK_EQ_INT(compress_in_feed(ci, "x", 1, &plain), -EPROTO);
	compress_in_destroy(&ci);

	/* "hi" in a final stored block, then garbage in the same feed. */
	ci = compress_in_create();
	CHECK_EQ_INT(compress_in_feed(ci, "\x01\x02\x00\xfd\xffhiXYZ", 10,
				      &plain), -EPROTO);
	CHECK_EQ_INT(buf_used(&plain), 0);
	compress_in_destroy(&ci);

	/* Final fixed-Huffman block with only end-of-block. */
	ci = compress_in_create();
	CHECK_EQ_INT(compress_in_feed(ci, "\x03\x00", 2, &plain), 2);
	CHECK(compress_in_is_finished(ci));
	compress_in_destroy(&ci);

	/* Garbage short enough to vanish into ISA-L's 64-bit read-ahead,
	 * right after a final block, in the same feed: still caught. */
	static const struct {
		const char *s;
		size_t len;
	} trail[] = {
		{ "\x03\x00x", 3 },
		{ "\x03\x00xyzw", 6 },
		{ "\x01\x02\x00\xfd\xffhiX", 8 },
		{ "\x2b\xff\x03\x00\x80", 5 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(trail); i++) {
		ci = compress_in_create();
		CHECK_EQ_INT(compress_in_feed(ci, trail[i].s, trail[i].len,
					      &plain), -EPROTO);
		CHECK_EQ_INT(buf_used(&plain), 0);
		compress_in_destroy(&ci);
	}
	/* The same final blocks without the garbage are fine. */
	ci = compress_in_create();
	CHECK_EQ_INT(compress_in_feed(ci, "\x2b\xff\x03\x00", 4, &plain), 4);
	CHECK(compress_in_is_finished(ci));
	CHECK_EQ_INT(buf_used(&plain), 2);
	compress_in_destroy(&ci);
	buf_deinit(&plain);
}

/* compress_out_idle() frees the compressor; the stream continues. */
static void test_idle(void)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf comp, res;
	struct drain d;
	uint8_t a[40000], b[40000];
	size_t handle = compress_out_memory(co);

	fill_imap_text(a, sizeof(a));
	fill_imap_text(b, sizeof(b));
	buf_init(&comp, 0);
	buf_init(&res, 0);
	CHECK_EQ_INT(compress_out_write(co, a, sizeof(a), &comp), sizeof(a));
	CHECK(compress_out_memory(co) > handle);
	CHECK(!compress_out_idle(co));	/* not flushed yet */
	CHECK_EQ_INT(compress_out_flush(co, &comp), 0);
	CHECK(compress_out_idle(co));
	CHECK_EQ_INT(compress_out_memory(co), handle);
	CHECK(!compress_out_idle(co));
	CHECK_EQ_INT(compress_out_flush(co, &comp), 0);
	size_t first = buf_used(&comp);

	CHECK_EQ_INT(compress_out_write(co, b, sizeof(b), &comp), sizeof(b));
	CHECK_EQ_INT(compress_out_write(co, a, sizeof(a), &comp), sizeof(a));
	CHECK_EQ_INT(compress_out_flush(co, &comp), 0);
	CHECK(buf_used(&comp) > first);
	decompress_all(ci, buf_head(&comp), buf_used(&comp), 0, 64 * 1024,
		       &res, &d);
	CHECK_EQ_INT(d.err, 0);
	CHECK(buf_used(&res) == 3 * sizeof(a) &&
	      memcmp(buf_head(&res), a, sizeof(a)) == 0 &&
	      memcmp(buf_head(&res) + sizeof(a), b, sizeof(b)) == 0 &&
	      memcmp(buf_head(&res) + 2 * sizeof(a), a, sizeof(a)) == 0);

	buf_deinit(&comp);
	buf_deinit(&res);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
}

/* Reports the memory of one connection at rest after traffic. */
static void test_memory(void)
{
	struct compress_out *co = compress_out_create();
	struct compress_in *ci = compress_in_create();
	struct buf comp, plain;
	uint8_t text[50000];

	fill_imap_text(text, sizeof(text));
	buf_init(&comp, 0);
	buf_init(&plain, 64 * 1024);
	compress_all(co, text, sizeof(text), 0, &comp);
	CHECK_EQ_INT(compress_in_feed(ci, buf_head(&comp), buf_used(&comp),
				      &plain), buf_used(&comp));
	size_t out = compress_out_memory(co), in = compress_in_memory(ci);

	CHECK(out > 100 * 1024 && out < 200 * 1024);
	CHECK(in > 64 * 1024 && in < 100 * 1024);
	CHECK(compress_out_idle(co));
	printf("memory per connection after a flush: out %zu B, in %zu B, "
	       "total %zu B; out after compress_out_idle(): %zu B\n",
	       out, in, out + in, compress_out_memory(co));

	buf_deinit(&comp);
	buf_deinit(&plain);
	compress_out_destroy(&co);
	compress_in_destroy(&ci);
}

/* ---- interop with Python's zlib ---- */

static char tmpdir[] = "/tmp/kura-test-compress.XXXXXX";

static const char py_inflate[] =
	"import sys, zlib\n"
	"d = zlib.decompressobj(-15)\n"
	"data = open(sys.argv[1], 'rb').read()\n"
	"sys.stdout.buffer.write(d.decompress(data))\n";

/* Compresses a file in random pieces, each followed by a sync flush
 * (sometimes a full flush); "1" as the last argument ends the stream. */
static const char py_deflate[] =
	"import random, sys, zlib\n"
	"data = open(sys.argv[1], 'rb').read()\n"
	"rnd = random.Random(int(sys.argv[3]))\n"
	"c = zlib.compressobj(int(sys.argv[2]), zlib.DEFLATED, -15, 9)\n"
	"out = sys.stdout.buffer\n"
	"i = 0\n"
	"while i < len(data):\n"
	"    n = rnd.randint(1, 70000)\n"
	"    out.write(c.compress(data[i:i + n]))\n"
	"    f = zlib.Z_SYNC_FLUSH\n"
	"    if rnd.random() < 0.1:\n"
	"        f = zlib.Z_FULL_FLUSH\n"
	"    out.write(c.flush(f))\n"
	"    i += n\n"
	"if sys.argv[4] == '1':\n"
	"    out.write(c.flush(zlib.Z_FINISH))\n";

/* Client-like traffic: commands, each followed by a flush of the given
 * kind; writes frames "clen:u32be total:u32be compressed plain" so the
 * test can feed exactly the bytes of one flush at a time. */
static const char py_frames[] =
	"import random, struct, sys, zlib\n"
	"rnd = random.Random(int(sys.argv[3]))\n"
	"mode = getattr(zlib, sys.argv[1])\n"
	"c = zlib.compressobj(int(sys.argv[2]), zlib.DEFLATED, -15)\n"
	"words = [b'a001 ', b'UID FETCH ', b'1:* ', b'(FLAGS BODY.PEEK[]) ',\n"
	"         b'NOOP', b'IDLE', b'DONE', b'x', b'SELECT INBOX',\n"
	"         b'\\r\\n']\n"
	"total = 0\n"
	"out = sys.stdout.buffer\n"
	"for i in range(1500):\n"
	"    k = rnd.randint(1, 8)\n"
	"    p = b''.join(rnd.choice(words) for _ in range(k))\n"
	"    if rnd.random() < 0.02:\n"
	"        k = rnd.randint(1, 3000)\n"
	"        p += bytes(rnd.randrange(256) for _ in range(k))\n"
	"    z = c.compress(p) + c.flush(mode)\n"
	"    total += len(p)\n"
	"    out.write(struct.pack('>II', len(z), total) + z + p)\n";

static bool write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return false;
	bool ok = fwrite(p, 1, n, f) == n;

	return fclose(f) == 0 && ok;
}

/* Runs a shell command and collects its stdout; true if it exited 0. */
static bool run_collect(const char *cmd, struct buf *out)
{
	FILE *f = popen(cmd, "r");
	uint8_t tmp[65536];
	size_t n;

	if (f == NULL)
		return false;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(out, tmp, n);
	int st = pclose(f);

	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Our stream, decoded by Python: in full, and cut at a flush. */
static void test_python_inflates_ours(const uint8_t *data, size_t len)
{
	struct compress_out *co = compress_out_create();
	struct buf comp, out;
	char cmd[512], cpath[300];
	size_t cut_plain = 0, cut_comp = 0, off = 0;
	int batch = 0;

	buf_init(&comp, 0);
	snprintf(cpath, sizeof(cpath), "%s/ours.deflate", tmpdir);
	while (off < len) {
		/* KURA_MIN evaluates its arguments twice. */
		size_t want = rnd_range(1, 50000);
		size_t n = KURA_MIN(want, len - off);
		bool ok = compress_out_write(co, data + off, n, &comp) ==
			(ssize_t)n;

		off += n;
		/* Not every batch is flushed, so blocks span writes. */
		if (rnd() % 3 != 0 || off == len)
			ok = ok && compress_out_flush(co, &comp) == 0;
		if (!ok) {
			CHECK(ok);
			break;
		}
		if (++batch == 20) {
			CHECK_EQ_INT(compress_out_flush(co, &comp), 0);
			cut_plain = off;
			cut_comp = buf_used(&comp);
		}
		if (batch == 25) {
			CHECK_EQ_INT(compress_out_flush(co, &comp), 0);
			CHECK(compress_out_idle(co));
		}
	}

	CHECK(write_file(cpath, buf_head(&comp), buf_used(&comp)));
	snprintf(cmd, sizeof(cmd), "python3 %s/inflate.py %s", tmpdir, cpath);
	buf_init(&out, 0);
	CHECK(run_collect(cmd, &out));
	CHECK_EQ_INT(buf_used(&out), len);
	CHECK(buf_used(&out) == len &&
	      memcmp(buf_head(&out), data, len) == 0);

	if (cut_comp > 0) {
		buf_reset(&out);
		CHECK(write_file(cpath, buf_head(&comp), cut_comp));
		CHECK(run_collect(cmd, &out));
		CHECK(buf_used(&out) == cut_plain &&
		      memcmp(buf_head(&out), data, cut_plain) == 0);
	}
	buf_deinit(&out);
	buf_deinit(&comp);
	compress_out_destroy(&co);
}

/* Python's stream (zlib at a given level, random sync/full flushes),
 * decoded by us in random pieces. */
static void test_we_inflate_python(const char *dpath, const uint8_t *data,
				   size_t len, int level, bool finish)
{
	struct compress_in *ci = compress_in_create();
	struct buf comp, res, plain;
	char cmd[512];
	size_t off = 0;
	int err = 0, guard = 0;

	buf_init(&comp, 0);
	buf_init(&res, 0);
	buf_init(&plain, 32 * 1024);
	snprintf(cmd, sizeof(cmd), "python3 %s/deflate.py %s %d %d %d",
		 tmpdir, dpath, level, level * 7 + 1, finish ? 1 : 0);
	CHECK(run_collect(cmd, &comp));
	while (off < buf_used(&comp) || compress_in_pending(ci)) {
		size_t want = rnd_range(0, 9000);
		size_t n = KURA_MIN(want, buf_used(&comp) - off);
		ssize_t r = compress_in_feed(ci, buf_head(&comp) + off, n,
					     &plain);

		if (r < 0 || ++guard > 1000000) {
			err = r < 0 ? (int)r : -EDEADLK;
			break;
		}
		off += (size_t)r;
		buf_append(&res, buf_head(&plain), buf_used(&plain));
		buf_reset(&plain);
	}
	CHECK_EQ_INT(err, 0);
	CHECK_EQ_INT(buf_used(&res), len);
	CHECK(buf_used(&res) == len && memcmp(buf_head(&res), data, len) == 0);
	CHECK(compress_in_is_finished(ci) == finish);

	buf_deinit(&comp);
	buf_deinit(&res);
	buf_deinit(&plain);
	compress_in_destroy(&ci);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		(uint32_t)p[2] << 8 | p[3];
}

/* After each flush of Python's zlib (sync, full, partial, or even
 * Z_BLOCK) the bytes so far decode to everything sent so far: a client's
 * command never waits inside the decompressor. */
static void test_python_flush_kinds(const char *fpath)
{
	static const char *const modes[] = {
		"Z_SYNC_FLUSH", "Z_FULL_FLUSH", "Z_PARTIAL_FLUSH", "Z_BLOCK",
	};

	for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
		for (int level = 1; level <= 9; level += 4) {
			struct compress_in *ci = compress_in_create();
			struct buf frames, plain, sent;
			char cmd[512];
			size_t off = 0, nframes = 0, lagged = 0;
			bool ok = true;

			buf_init(&frames, 0);
			buf_init(&plain, 16 * MIB);
			buf_init(&sent, 0);
			snprintf(cmd, sizeof(cmd), "python3 %s %s %d %d", fpath,
				 modes[m], level, (int)m * 10 + level);
			CHECK(run_collect(cmd, &frames));
			const uint8_t *f = buf_head(&frames);
			size_t flen = buf_used(&frames);

			while (ok && off + 8 <= flen) {
				size_t clen = get_be32(f + off);
				size_t total = get_be32(f + off + 4);
				size_t plen = total - buf_used(&sent);

				off += 8;
				if (off + clen + plen > flen) {
					ok = false;
					break;
				}
				ssize_t r = compress_in_feed(ci, f + off, clen,
							     &plain);

				ok = r == (ssize_t)clen;
				buf_append(&sent, f + off + clen, plen);
				off += clen + plen;
				nframes++;
				if (buf_used(&plain) != buf_used(&sent))
					lagged++;
			}
			CHECK(ok);
			CHECK_EQ_INT(nframes, 1500);
			CHECK_EQ_INT(lagged, 0);
			CHECK(buf_used(&plain) == buf_used(&sent) &&
			      memcmp(buf_head(&plain), buf_head(&sent),
				     buf_used(&sent)) == 0);
			buf_deinit(&frames);
			buf_deinit(&plain);
			buf_deinit(&sent);
			compress_in_destroy(&ci);
		}
	}
}

static void test_python(void)
{
	if (system("python3 -c 'import zlib' >/dev/null 2>&1") != 0) {
		printf("python3 with zlib not found: interop tests skipped\n");
		return;
	}
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		CHECK(false);
		return;
	}
	char ipath[300], dpath[300], fpath[300], p1[300], p2[300];

	snprintf(ipath, sizeof(ipath), "%s/inflate.py", tmpdir);
	snprintf(dpath, sizeof(dpath), "%s/deflate.py", tmpdir);
	snprintf(fpath, sizeof(fpath), "%s/frames.py", tmpdir);
	snprintf(p1, sizeof(p1), "%s/plain", tmpdir);
	snprintf(p2, sizeof(p2), "%s/ours.deflate", tmpdir);
	CHECK(write_file(ipath, py_inflate, strlen(py_inflate)));
	CHECK(write_file(dpath, py_deflate, strlen(py_deflate)));
	CHECK(write_file(fpath, py_frames, strlen(py_frames)));

	size_t len = 2 * MIB;
	uint8_t *data = xmalloc(len);

	/* Text with random stretches, so stored and coded blocks mix. */
	fill_imap_text(data, len);
	for (size_t i = 0; i < 20; i++)
		fill_random(data + rnd() % (len - 20000), rnd_range(1, 20000));

	test_python_inflates_ours(data, len);
	test_python_inflates_ours((const uint8_t *)"x", 1);

	CHECK(write_file(p1, data, len));
	test_we_inflate_python(p1, data, len, 1, false);
	test_we_inflate_python(p1, data, len, 6, false);
	test_we_inflate_python(p1, data, len, 9, true);
	test_we_inflate_python(p1, data, len, 0, false);	/* stored */
	test_python_flush_kinds(fpath);

	unlink(ipath);
	unlink(dpath);
	unlink(fpath);
	unlink(p1);
	unlink(p2);
	rmdir(tmpdir);
	free(data);
}

int main(void)
{
	test_lazy_and_empty();
	test_shapes();
	test_flush_boundaries();
	test_bounded_output();
	test_bomb();
	test_pending();
	test_corrupt();
	test_final_block();
	test_idle();
	test_memory();
	test_python();
	return test_done("compress");
}
