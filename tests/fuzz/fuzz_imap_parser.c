/* Fuzz target for imapd/imap_parser.
 *
 * Input: a 5-byte header, then the bytes a client sends.
 *   header[0]: bits 0-1 the limits (default, preauth, tiny, default with
 *              no BAD limit); bit 2 refuse every APPEND literal; bit 3
 *              switch between preauth and default limits after each
 *              command (like LOGIN does).
 *   header[1..4]: chunk sizes, cycled: the stream reaches the parser in
 *              pieces of 1 + h % 32 bytes, or 4096 when h >= 0xe0.
 * The stream is handled like a server would (CONT: go on; LITERAL: the
 * next bytes are the message, then literal_done; BAD: go on; FATAL:
 * stop), and every command tree is checked against the limits. The same
 * stream fed in one piece must give the same events and trees. */
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_parser.h"
#include "imapd/imap_util.h"
#include "lib/buf.h"
#include "tests/fuzz/fuzz.h"

static const struct imap_parser_limits fuzz_tiny_limits = {
	.max_line = 64,
	.max_literal = 16,
	.max_append = 32,
	.max_depth = 3,
	.max_args = 8,
	.max_bad = 3,
};

struct fuzz_run {
	struct imap_parser *p;
	struct imap_parser_limits lim[2];	/* current, and the other */
	bool flip;
	bool refuse;
	bool fatal;
	uint64_t stream_left;
	uint64_t hash;
	unsigned events;
	bool check_values;	/* once per input is enough */
};

static void fz_mix(struct fuzz_run *r, const void *p, size_t len)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++) {
		r->hash ^= b[i];
		r->hash *= 0x100000001b3ULL;
	}
}

static void fz_mix_u64(struct fuzz_run *r, uint64_t v)
{
	fz_mix(r, &v, sizeof(v));
}

/* The looser of the two limit sets (limits switch at a command start,
 * so a command obeys one of them). */
static uint64_t fz_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* buf_kstr() of a buf that never held a byte adds 0 to NULL (UBSan). */
static struct kstr fz_view(const struct buf *b)
{
	if (b->data == NULL)
		return KSTR_LIT("");
	return buf_kstr(b);
}

/* The value helpers get what handlers would hand them: atoms and
 * strings from real commands. Checked: mUTF-7 <-> UTF-8 are inverse,
 * dates survive write + parse, sequence sets are sorted and merged. */
static void fz_check_value(struct kstr s)
{
	struct buf u, m;

	buf_init(&u, 0);
	buf_init(&m, 0);
	if (mutf7_to_utf8(s, &u)) {
		if (!mutf7_is_valid(s) || !utf8_to_mutf7(fz_view(&u), &m) ||
		    !kstr_eq(fz_view(&m), s))
			__builtin_trap();
	} else if (mutf7_is_valid(s)) {
		__builtin_trap();
	}
	buf_reset(&m);
	buf_reset(&u);
	if (utf8_to_mutf7(s, &m)) {
		if (!mutf7_to_utf8(fz_view(&m), &u) || !kstr_eq(fz_view(&u), s))
			__builtin_trap();
	}
	buf_reset(&u);

	int64_t t, t2;
	int tz, tz2;
	if (imap_datetime_parse(s, &t, &tz)) {
		imap_datetime_write(&u, t, tz);
		struct kstr w = fz_view(&u);
		if (w.len != 28 ||
		    !imap_datetime_parse(kstr_make(w.p + 1, 26), &t2, &tz2) ||
		    t2 != t || tz2 != tz)
			__builtin_trap();
	}
	buf_reset(&u);
	if (imap_date_parse(s, &t) && t % 86400 != 0)
		__builtin_trap();

	struct seqset set;
	bool valid = seqset_is_valid(s);
	if (seqset_parse(s, 1000, 0, &set) != valid)
		__builtin_trap();
	if (valid) {
		if (set.count == 0)
			__builtin_trap();
		for (size_t i = 0; i < set.count; i++) {
			if (set.r[i].lo > set.r[i].hi ||
			    (i > 0 && set.r[i].lo <= set.r[i - 1].hi + 1ULL) ||
			    !seqset_contains(&set, set.r[i].lo) ||
			    !seqset_contains(&set, set.r[i].hi))
				__builtin_trap();
		}
		seqset_free(&set);
	}

	buf_deinit(&u);
	buf_deinit(&m);
}

/* What imap_write_astring() writes reads back as the same bytes. */
static void fz_check_written(struct kstr s)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	struct buf w;
	size_t off = 0;
	bool done = false;

	buf_init(&w, 0);
	buf_append_str(&w, "t X ");
	imap_write_astring(&w, s);
	buf_append_str(&w, "\r\n");
	while (off < w.len && !done) {
		size_t used;
		struct imap_cmd *cmd;
		uint64_t n;
		enum imap_parse_rc rc = imap_parser_feed(p, w.data + off,
							 w.len - off, &used,
							 &cmd, &n);
		off += used;
		if (rc == IMAP_PARSE_DONE) {
			if (cmd->nargs != 1 ||
			    cmd->args[0].type == IMAP_ARG_LIST ||
			    !kstr_eq(cmd->args[0].str, s))
				__builtin_trap();
			done = true;
		} else if (rc != IMAP_PARSE_MORE && rc != IMAP_PARSE_CONT) {
			__builtin_trap();
		}
	}
	if (!done || off != w.len)
		__builtin_trap();
	buf_deinit(&w);
	imap_parser_destroy(&p);
}

static void fz_check_args(struct fuzz_run *r, const struct imap_arg *a,
			  size_t n, unsigned depth, size_t *total)
{
	unsigned max_depth = (unsigned)fz_max(r->lim[0].max_depth,
					      r->lim[1].max_depth);
	uint64_t max_lit = fz_max(r->lim[0].max_literal, r->lim[1].max_literal);
	uint64_t max_app = fz_max(r->lim[0].max_append, r->lim[1].max_append);
	size_t max_line = (size_t)fz_max(r->lim[0].max_line,
					 r->lim[1].max_line);

	if (depth > max_depth)
		__builtin_trap();
	*total += n;
	for (size_t i = 0; i < n; i++, a++) {
		fz_mix_u64(r, a->type);
		switch (a->type) {
		case IMAP_ARG_ATOM:
		case IMAP_ARG_STRING:
			if (a->str.len > max_line || a->str.p[a->str.len] != 0)
				__builtin_trap();
			if (a->type == IMAP_ARG_ATOM && a->str.len == 0)
				__builtin_trap();
			fz_mix(r, a->str.p, a->str.len);
			if (r->check_values) {
				fz_check_value(a->str);
				fz_check_written(a->str);
			}
			break;
		case IMAP_ARG_LITERAL:
			if (a->str.len > max_lit || a->str.p[a->str.len] != 0)
				__builtin_trap();
			if (!a->literal8 && memchr(a->str.p, 0, a->str.len))
				__builtin_trap();
			fz_mix(r, a->str.p, a->str.len);
			break;
		case IMAP_ARG_LIST:
			fz_check_args(r, a->list, a->list_count, depth + 1,
				      total);
			break;
		case IMAP_ARG_STREAMED:
			if (a->stream_len > max_app ||
			    a->stream_handle != (void *)r)
				__builtin_trap();
			fz_mix_u64(r, a->stream_len);
			break;
		default:
			__builtin_trap();
		}
	}
}

static void fz_check_cmd(struct fuzz_run *r, const struct imap_cmd *cmd)
{
	size_t total = 0;

	if (cmd->tag.len == 0 || cmd->name.len == 0)
		__builtin_trap();
	fz_mix(r, cmd->tag.p, cmd->tag.len);
	fz_mix(r, cmd->name.p, cmd->name.len);
	fz_check_args(r, cmd->args, cmd->nargs, 0, &total);
	if (total > fz_max(r->lim[0].max_args, r->lim[1].max_args))
		__builtin_trap();
}

/* MORE is left out: how often it comes depends on the chunking. */
static void fz_event(struct fuzz_run *r, enum imap_parse_rc rc)
{
	if (rc == IMAP_PARSE_MORE)
		return;
	fz_mix_u64(r, rc);
	r->events++;
}

static void fz_recv(struct fuzz_run *r, const uint8_t *data, size_t len)
{
	size_t off = 0;

	while (off < len && !r->fatal) {
		if (r->stream_left > 0) {
			size_t n = len - off;
			if (n > r->stream_left)
				n = (size_t)r->stream_left;
			off += n;
			r->stream_left -= n;
			if (r->stream_left == 0)
				imap_parser_literal_done(r->p, r);
			continue;
		}
		size_t used = 0;
		struct imap_cmd *cmd;
		uint64_t n = 0;
		enum imap_parse_rc rc = imap_parser_feed(r->p, data + off,
							 len - off, &used,
							 &cmd, &n);
		if (used > len - off || (used == 0 && rc != IMAP_PARSE_FATAL))
			__builtin_trap();
		off += used;
		fz_event(r, rc);
		switch (rc) {
		case IMAP_PARSE_MORE:
			if (off != len)
				__builtin_trap();
			break;
		case IMAP_PARSE_DONE:
			fz_check_cmd(r, cmd);
			if (imap_parser_mem_used(r->p) == 0)
				__builtin_trap();
			if (r->flip) {
				struct imap_parser_limits t = r->lim[0];
				r->lim[0] = r->lim[1];
				r->lim[1] = t;
				imap_parser_set_limits(r->p, &r->lim[0]);
			}
			break;
		case IMAP_PARSE_CONT:
			break;
		case IMAP_PARSE_LITERAL: {
			const struct imap_cmd *part = imap_parser_partial(r->p);
			size_t total = 0;
			if (part->nargs == 0 ||
			    !kstr_eq_ci(part->name, "APPEND"))
				__builtin_trap();
			fz_check_args(r, part->args, part->nargs, 0, &total);
			fz_mix_u64(r, n);
			fz_mix_u64(r, imap_parser_literal_sync(r->p));
			if (r->refuse) {
				imap_parser_literal_refuse(r->p);
				struct kstr t = imap_parser_bad_tag(r->p);
				fz_mix(r, t.p, t.len);
				break;
			}
			r->stream_left = n;
			if (n == 0)
				imap_parser_literal_done(r->p, r);
			break;
		}
		case IMAP_PARSE_BAD: {
			struct kstr t = imap_parser_bad_tag(r->p);
			const char *e = imap_parser_error(r->p);
			if (t.len == 0 || e[0] == '\0')
				__builtin_trap();
			fz_mix(r, t.p, t.len);
			fz_mix(r, e, strlen(e));
			break;
		}
		case IMAP_PARSE_FATAL:
			r->fatal = true;
			break;
		default:
			__builtin_trap();
		}
	}
}

static uint64_t fz_run(const uint8_t *hdr, const uint8_t *data, size_t len,
		       bool chunked, bool check_values)
{
	struct fuzz_run r;

	memset(&r, 0, sizeof(r));
	r.check_values = check_values;
	r.hash = 0xcbf29ce484222325ULL;
	switch (hdr[0] & 3) {
	case 0:
		r.lim[0] = imap_parser_limits_default;
		break;
	case 1:
		r.lim[0] = imap_parser_limits_preauth;
		break;
	case 2:
		r.lim[0] = fuzz_tiny_limits;
		break;
	default:
		r.lim[0] = imap_parser_limits_default;
		r.lim[0].max_bad = 0;
		break;
	}
	r.refuse = (hdr[0] & 4) != 0;
	r.flip = (hdr[0] & 8) != 0;
	r.lim[1] = r.flip ? ((hdr[0] & 3) == 1 ? imap_parser_limits_default :
			     imap_parser_limits_preauth) : r.lim[0];
	r.p = imap_parser_create(&r.lim[0]);

	size_t pos = 0, k = 0;
	while (pos < len && !r.fatal) {
		size_t n = len - pos;
		if (chunked) {
			uint8_t h = hdr[1 + k++ % 4];
			size_t want = h >= 0xe0 ? 4096 : 1 + (size_t)h % 32;
			if (n > want)
				n = want;
		}
		fz_recv(&r, data + pos, n);
		pos += n;
	}
	/* A disconnect in the middle of anything frees everything. */
	imap_parser_destroy(&r.p);
	fz_mix_u64(&r, r.events);
	return r.hash;
}

/* Prototypes for -Wmissing-prototypes. */
#ifdef FUZZ_REPLAY
int fuzz_imap_parser_one(const uint8_t *data, size_t size);
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	static const uint8_t no_hdr[5] = { 0, 0xff, 0xff, 0xff, 0xff };
	const uint8_t *hdr = no_hdr;

	if (size >= 5) {
		hdr = data;
		data += 5;
		size -= 5;
	}
	uint64_t a = fz_run(hdr, data, size, true, true);
	uint64_t b = fz_run(hdr, data, size, false, false);
	if (a != b)
		__builtin_trap();	/* the result depends on the chunking */
	return 0;
}

#ifdef FUZZ_REPLAY
int fuzz_imap_parser_one(const uint8_t *data, size_t size)
{
	return LLVMFuzzerTestOneInput(data, size);
}
#endif
