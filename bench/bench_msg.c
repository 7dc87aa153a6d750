#include "bench/bench_msg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench_rng.h"
#include "lib/buf.h"
#include "lib/util.h"

enum msg_shape {
	SHAPE_TEXT = 0,
	SHAPE_HTML,
	SHAPE_MULTIPART,
};

static const struct {
	unsigned weight;	/* percent */
	size_t min, max;
	enum msg_shape shape;
} size_classes[6] = {
	{ 30, 1024, 3 * 1024, SHAPE_TEXT },
	{ 30, 3 * 1024, 10 * 1024, SHAPE_TEXT },
	{ 20, 10 * 1024, 50 * 1024, SHAPE_HTML },
	{ 12, 50 * 1024, 300 * 1024, SHAPE_MULTIPART },
	{ 6, 300 * 1024, 1024 * 1024, SHAPE_MULTIPART },
	{ 2, 1024 * 1024, 4 * 1024 * 1024, SHAPE_MULTIPART },
};

/* Messages generated per percent of weight: 200 in all. */
#define POOL_PER_PERCENT 2
#define POOL_FIXED_COUNT 32

static const char *const words[] = {
	"the", "quarterly", "report", "meeting", "server", "object", "store",
	"cluster", "please", "review", "attached", "draft", "thanks", "for",
	"budget", "schedule", "update", "mailbox", "release", "notes", "and",
	"tomorrow", "project", "deadline", "customer", "invoice", "a", "to",
	"latency", "storage", "backup", "weekend", "lunch", "we", "should",
	"discuss", "numbers", "before", "friday", "team", "agenda", "is",
	"ready", "let", "me", "know", "if", "you", "have", "questions", "on",
	"migration", "plan", "of", "new", "office", "network", "outage",
	"yesterday", "fixed", "now", "travel", "expenses", "approved", "in",
};

static const char *pick_word(uint64_t *rng)
{
	return words[bench_rng_below(rng, ARRAY_SIZE(words))];
}

/* Appends lines of words until b holds at least upto bytes. */
static void add_text(struct buf *b, uint64_t *rng, size_t upto,
		     const char *pre, const char *post)
{
	while (b->len < upto) {
		size_t line = 0;

		buf_append_str(b, pre);
		while (line < 64) {
			const char *w = pick_word(rng);

			if (line > 0) {
				buf_append_str(b, " ");
				line++;
			}
			buf_append_str(b, w);
			line += strlen(w);
		}
		buf_append_str(b, post);
		buf_append_str(b, "\r\n");
	}
}

static void add_header(struct buf *b, uint64_t *rng, const char *ctype)
{
	time_t when = (time_t)(1672531200 + bench_rng_below(rng, 365 * 86400));
	unsigned sender = (unsigned)bench_rng_below(rng, 500);
	struct tm tm;
	char date[64];
	unsigned nwords = 3 + (unsigned)bench_rng_below(rng, 6);

	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(b, "From: Sender %u <sender%u@example.org>\r\n"
		   "To: Bench User <user@example.net>\r\n"
		   "Subject:", sender, sender);
	for (unsigned i = 0; i < nwords; i++)
		buf_printf(b, " %s", pick_word(rng));
	buf_printf(b, "\r\nDate: %s\r\nMIME-Version: 1.0\r\n"
		   "Content-Type: %s\r\n\r\n", date, ctype);
}

static void add_base64(struct buf *b, uint64_t *rng, size_t upto)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	do {
		uint8_t *line = buf_reserve(b, 78);

		/* random bytes encode to uniformly random base64 digits */
		for (int i = 0; i < 76; i += 8) {
			uint64_t r = bench_rng_next(rng);

			for (int j = 0; j < 8 && i + j < 76; j++)
				line[i + j] = (uint8_t)alphabet[(r >> (6 * j)) & 63];
		}
		line[76] = '\r';
		line[77] = '\n';
		buf_commit(b, 78);
	} while (b->len + 78 <= upto);
}

static void gen_message(struct buf *b, uint64_t *rng, size_t target,
			enum msg_shape shape)
{
	char boundary[40];

	switch (shape) {
	case SHAPE_TEXT:
		add_header(b, rng, "text/plain; charset=utf-8");
		add_text(b, rng, target, "", "");
		break;
	case SHAPE_HTML:
		add_header(b, rng, "text/html; charset=utf-8");
		buf_append_str(b, "<html><body>\r\n");
		add_text(b, rng, target > 20 ? target - 20 : 0, "<p>", "</p>");
		buf_append_str(b, "</body></html>\r\n");
		break;
	case SHAPE_MULTIPART:
	default:
		snprintf(boundary, sizeof(boundary), "=_kb_%016llx",
			 (unsigned long long)bench_rng_next(rng));
		{
			char ctype[96];

			snprintf(ctype, sizeof(ctype),
				 "multipart/mixed; boundary=\"%s\"", boundary);
			add_header(b, rng, ctype);
		}
		buf_printf(b, "This is a multi-part message in MIME format.\r\n"
			   "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
			   boundary);
		add_text(b, rng, b->len + 1000 + bench_rng_below(rng, 1000), "", "");
		buf_printf(b, "\r\n--%s\r\nContent-Type: application/octet-stream;"
			   " name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
			   "Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n",
			   boundary);
		add_base64(b, rng, target > 60 ? target - 60 : 0);
		buf_printf(b, "\r\n--%s--\r\n", boundary);
		break;
	}
}

static void pool_add(struct bench_msg_pool *pool, size_t *cap, uint8_t *data,
		     size_t len)
{
	xgrow((void **)&pool->msgs, cap, pool->count + 1, sizeof(*pool->msgs));
	pool->msgs[pool->count].data = data;
	pool->msgs[pool->count].len = len;
	pool->count++;
	pool->total_bytes += len;
}

static void pool_index_small(struct bench_msg_pool *pool)
{
	pool->small = xcalloc(pool->count ? pool->count : 1, sizeof(size_t));
	pool->small_count = 0;
	for (size_t i = 0; i < pool->count; i++)
		if (pool->msgs[i].len <= BENCH_MSG_SMALL_MAX)
			pool->small[pool->small_count++] = i;
}

static void take_buf(struct bench_msg_pool *pool, size_t *cap, struct buf *b)
{
	uint8_t *copy = xmalloc(b->len ? b->len : 1);

	memcpy(copy, b->data, b->len);
	pool_add(pool, cap, copy, b->len);
	buf_reset(b);
}

void bench_msg_pool_generate(struct bench_msg_pool *pool, uint64_t seed,
			     size_t fixed_size)
{
	uint64_t rng = bench_rng_seed(seed, 0x6d736731);
	struct buf b;
	size_t cap = 0;

	memset(pool, 0, sizeof(*pool));
	pool->generated = true;
	buf_init(&b, 0);
	if (fixed_size != 0) {
		enum msg_shape shape = fixed_size <= 10 * 1024 ? SHAPE_TEXT :
				       fixed_size <= 50 * 1024 ? SHAPE_HTML :
				       SHAPE_MULTIPART;

		for (size_t i = 0; i < POOL_FIXED_COUNT; i++) {
			gen_message(&b, &rng, fixed_size, shape);
			take_buf(pool, &cap, &b);
		}
		for (size_t c = 0; c < ARRAY_SIZE(pool->class_first); c++)
			pool->class_first[c] = c == 0 ? 0 : pool->count;
	} else {
		for (size_t c = 0; c < ARRAY_SIZE(size_classes); c++) {
			double lmin = log((double)size_classes[c].min);
			double lmax = log((double)size_classes[c].max);
			unsigned n = size_classes[c].weight * POOL_PER_PERCENT;

			pool->class_first[c] = pool->count;
			for (unsigned i = 0; i < n; i++) {
				double u = (double)bench_rng_below(&rng, 1u << 20) /
					   (double)(1u << 20);
				size_t target = (size_t)exp(lmin + u * (lmax - lmin));

				gen_message(&b, &rng, target, size_classes[c].shape);
				take_buf(pool, &cap, &b);
			}
		}
		pool->class_first[ARRAY_SIZE(size_classes)] = pool->count;
	}
	buf_deinit(&b);
	pool_index_small(pool);
}

const struct bench_msg *bench_msg_pool_pick(const struct bench_msg_pool *pool,
					    uint64_t *rng, bool small)
{
	if (pool->count == 0)
		return NULL;
	if (small && pool->small_count > 0)
		return &pool->msgs[pool->small[bench_rng_below(rng,
							       pool->small_count)]];
	if (pool->generated &&
	    pool->class_first[ARRAY_SIZE(size_classes)] == pool->count &&
	    pool->class_first[1] != pool->count) {
		uint64_t w = bench_rng_below(rng, 100);
		size_t c = 0, lo, hi;

		while (c + 1 < ARRAY_SIZE(size_classes) &&
		       w >= size_classes[c].weight) {
			w -= size_classes[c].weight;
			c++;
		}
		lo = pool->class_first[c];
		hi = pool->class_first[c + 1];
		if (hi > lo)
			return &pool->msgs[lo + bench_rng_below(rng, hi - lo)];
	}
	return &pool->msgs[bench_rng_below(rng, pool->count)];
}

/* Appends one mbox line (without its line ending) to b, unescaping
 * ">From " and ending it in CRLF. */
static void mbox_line(struct buf *b, const uint8_t *p, size_t len)
{
	size_t gt = 0;

	while (gt < len && p[gt] == '>')
		gt++;
	if (gt > 0 && len - gt >= 5 && memcmp(p + gt, "From ", 5) == 0) {
		p++;
		len--;
	}
	buf_append(b, p, len);
	buf_append(b, "\r\n", 2);
}

static void mbox_finish(struct bench_msg_pool *pool, size_t *cap, struct buf *b,
			size_t *skipped)
{
	if (b->len == 0)
		return;
	if (b->len > BENCH_MSG_MAX) {
		(*skipped)++;
		buf_reset(b);
		return;
	}
	take_buf(pool, cap, b);
}

int bench_msg_pool_load_mbox(struct bench_msg_pool *pool, const char *path,
			     const char **error_r)
{
	FILE *fp;
	struct stat st;
	uint8_t *data;
	size_t len, off = 0, cap = 0, skipped = 0, blank_lines = 0;
	bool in_msg = false;
	struct buf b;

	memset(pool, 0, sizeof(*pool));
	fp = fopen(path, "rb");
	if (fp == NULL) {
		*error_r = "cannot open the mbox file";
		return -errno;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)(4ULL << 30)) {
		fclose(fp);
		*error_r = "the mbox is not a regular file of at most 4 GiB";
		return -EINVAL;
	}
	len = (size_t)st.st_size;
	data = xmalloc(len ? len : 1);
	if (fread(data, 1, len, fp) != len) {
		fclose(fp);
		free(data);
		*error_r = "cannot read the mbox file";
		return -EIO;
	}
	fclose(fp);
	if (len < 5 || memcmp(data, "From ", 5) != 0) {
		free(data);
		*error_r = "not an mbox file (does not start with \"From \")";
		return -EINVAL;
	}
	buf_init(&b, 0);
	while (off < len) {
		const uint8_t *nl = memchr(data + off, '\n', len - off);
		size_t end = nl != NULL ? (size_t)(nl - data) : len;
		size_t llen = end - off;

		if (llen > 0 && data[off + llen - 1] == '\r')
			llen--;
		if (llen >= 5 && memcmp(data + off, "From ", 5) == 0) {
			/* the blank line(s) before a separator belong to the
			 * mbox format; keep all but one */
			while (blank_lines > 1) {
				buf_append(&b, "\r\n", 2);
				blank_lines--;
			}
			blank_lines = 0;
			if (in_msg)
				mbox_finish(pool, &cap, &b, &skipped);
			in_msg = true;
		} else if (llen == 0) {
			blank_lines++;
		} else {
			while (blank_lines > 0) {
				buf_append(&b, "\r\n", 2);
				blank_lines--;
			}
			if (b.len <= BENCH_MSG_MAX)
				mbox_line(&b, data + off, llen);
		}
		off = end + 1;
	}
	/* at end of file the final blank line (if any) is the separator's */
	while (blank_lines > 1) {
		buf_append(&b, "\r\n", 2);
		blank_lines--;
	}
	mbox_finish(pool, &cap, &b, &skipped);
	buf_deinit(&b);
	free(data);
	if (pool->count == 0) {
		*error_r = "the mbox holds no message of a usable size";
		return -EINVAL;
	}
	pool_index_small(pool);
	return 0;
}

void bench_msg_pool_free(struct bench_msg_pool *pool)
{
	for (size_t i = 0; i < pool->count; i++)
		free(pool->msgs[i].data);
	free(pool->msgs);
	free(pool->small);
	memset(pool, 0, sizeof(*pool));
}
