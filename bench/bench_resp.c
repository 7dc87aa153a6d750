#include "bench/bench_resp.h"

#include <errno.h>
#include <string.h>

#define TOK_MAX_DEPTH 64

/* ---- reader ---- */

void bench_resp_reader_init(struct bench_resp_reader *r, size_t max)
{
	buf_init(&r->acc, max);
	r->lit_left = 0;
	r->line_start = 0;
	r->complete = false;
}

void bench_resp_reader_deinit(struct bench_resp_reader *r)
{
	buf_deinit(&r->acc);
	r->lit_left = 0;
	r->line_start = 0;
	r->complete = false;
}

void bench_resp_reader_reset(struct bench_resp_reader *r)
{
	buf_reset(&r->acc);
	r->lit_left = 0;
	r->line_start = 0;
	r->complete = false;
}

/* 1 when the line segment p[0..len) (ending in LF) ends in "{n}", "{n+}"
 * before its line ending, with n in *n_r; 0 when it does not; -EPROTO for
 * a number that cannot be a literal length. */
static int tail_literal(const uint8_t *p, size_t len, uint64_t *n_r)
{
	size_t i = len, end;
	uint64_t n = 0;

	if (i > 0 && p[i - 1] == '\n')
		i--;
	if (i > 0 && p[i - 1] == '\r')
		i--;
	if (i == 0 || p[i - 1] != '}')
		return 0;
	i--;
	if (i > 0 && p[i - 1] == '+')
		i--;
	end = i;
	while (i > 0 && p[i - 1] >= '0' && p[i - 1] <= '9')
		i--;
	if (i == 0 || p[i - 1] != '{' || i == end)
		return 0;
	if (end - i > 19)
		return -EPROTO;
	for (; i < end; i++)
		n = n * 10 + (uint64_t)(p[i] - '0');
	*n_r = n;
	return 1;
}

int bench_resp_reader_feed(struct bench_resp_reader *r, const uint8_t *in,
			   size_t len, size_t *used_r, struct kstr *resp_r)
{
	size_t off = 0;

	if (r->complete)
		bench_resp_reader_reset(r);
	while (off < len) {
		const uint8_t *nl;
		size_t n;
		uint64_t lit;
		int rc;

		if (r->lit_left > 0) {
			n = len - off;
			if (n > r->lit_left)
				n = (size_t)r->lit_left;
			if (!buf_append(&r->acc, in + off, n)) {
				*used_r = off;
				return -EMSGSIZE;
			}
			off += n;
			r->lit_left -= n;
			if (r->lit_left == 0)
				r->line_start = r->acc.len;
			continue;
		}
		nl = memchr(in + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (in + off)) + 1 : len - off;
		if (!buf_append(&r->acc, in + off, n)) {
			*used_r = off;
			return -EMSGSIZE;
		}
		off += n;
		if (nl == NULL)
			break;
		rc = tail_literal(r->acc.data + r->line_start,
				  r->acc.len - r->line_start, &lit);
		if (rc < 0) {
			*used_r = off;
			return rc;
		}
		if (rc > 0) {
			if (r->acc.max != 0 && lit > r->acc.max - r->acc.len) {
				*used_r = off;
				return -EMSGSIZE;
			}
			r->lit_left = lit;
			r->line_start = r->acc.len;
			continue;
		}
		n = r->acc.len - 1;
		if (n > r->line_start && r->acc.data[n - 1] == '\r')
			n--;
		*resp_r = kstr_make(r->acc.data, n);
		r->complete = true;
		*used_r = off;
		return 1;
	}
	*used_r = off;
	return 0;
}

/* ---- tokenizer ---- */

static void tok_skip_sp(struct bench_resp_tok *t)
{
	while (t->p < t->end && *t->p == ' ')
		t->p++;
}

static bool is_atom_end(uint8_t c)
{
	return c == ' ' || c == '(' || c == ')' || c == '"' || c == '\r' ||
	       c == '\n';
}

static enum bench_resp_tok_type tok_literal(struct bench_resp_tok *t, struct kstr *val_r)
{
	const uint8_t *p = t->p;
	uint64_t n = 0;
	unsigned digits = 0;

	if (p < t->end && *p == '~')
		p++;
	if (p >= t->end || *p != '{')
		return BENCH_RESP_TOK_ERROR;
	p++;
	while (p < t->end && *p >= '0' && *p <= '9') {
		if (++digits > 19)
			return BENCH_RESP_TOK_ERROR;
		n = n * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (digits == 0)
		return BENCH_RESP_TOK_ERROR;
	if (p < t->end && *p == '+')
		p++;
	if (p >= t->end || *p != '}')
		return BENCH_RESP_TOK_ERROR;
	p++;
	if (p < t->end && *p == '\r')
		p++;
	if (p >= t->end || *p != '\n')
		return BENCH_RESP_TOK_ERROR;
	p++;
	if (n > (uint64_t)(t->end - p))
		return BENCH_RESP_TOK_ERROR;
	*val_r = kstr_make(p, (size_t)n);
	t->p = p + n;
	return BENCH_RESP_TOK_LITERAL;
}

enum bench_resp_tok_type bench_resp_tok_next(struct bench_resp_tok *t, struct kstr *val_r)
{
	const uint8_t *start;

	*val_r = kstr_make(NULL, 0);
	tok_skip_sp(t);
	if (t->p >= t->end)
		return BENCH_RESP_TOK_END;
	switch (*t->p) {
	case '(':
		t->p++;
		return BENCH_RESP_TOK_LPAREN;
	case ')':
		t->p++;
		return BENCH_RESP_TOK_RPAREN;
	case '"':
		start = ++t->p;
		while (t->p < t->end && *t->p != '"') {
			if (*t->p == '\\') {
				t->p++;
				if (t->p >= t->end)
					return BENCH_RESP_TOK_ERROR;
			}
			if (*t->p == '\r' || *t->p == '\n')
				return BENCH_RESP_TOK_ERROR;
			t->p++;
		}
		if (t->p >= t->end)
			return BENCH_RESP_TOK_ERROR;
		*val_r = kstr_make(start, (size_t)(t->p - start));
		t->p++;
		return BENCH_RESP_TOK_QUOTED;
	case '{':
		return tok_literal(t, val_r);
	case '~':
		if (t->end - t->p > 1 && t->p[1] == '{')
			return tok_literal(t, val_r);
		break;
	case '\r':
	case '\n':
		return BENCH_RESP_TOK_ERROR;
	default:
		break;
	}
	start = t->p;
	while (t->p < t->end && !is_atom_end(*t->p)) {
		if (*t->p == '[') {
			const uint8_t *c = memchr(t->p, ']',
						  (size_t)(t->end - t->p));

			if (c == NULL)
				return BENCH_RESP_TOK_ERROR;
			t->p = c;
		}
		t->p++;
	}
	*val_r = kstr_make(start, (size_t)(t->p - start));
	return BENCH_RESP_TOK_ATOM;
}

enum bench_resp_tok_type bench_resp_tok_peek(const struct bench_resp_tok *t)
{
	struct bench_resp_tok copy = *t;
	struct kstr v;

	return bench_resp_tok_next(&copy, &v);
}

bool bench_resp_tok_skip_value(struct bench_resp_tok *t)
{
	unsigned depth = 0;
	struct kstr v;

	do {
		switch (bench_resp_tok_next(t, &v)) {
		case BENCH_RESP_TOK_LPAREN:
			if (++depth > TOK_MAX_DEPTH)
				return false;
			break;
		case BENCH_RESP_TOK_RPAREN:
			if (depth == 0)
				return false;
			depth--;
			break;
		case BENCH_RESP_TOK_ATOM:
		case BENCH_RESP_TOK_QUOTED:
		case BENCH_RESP_TOK_LITERAL:
			break;
		case BENCH_RESP_TOK_END:
		case BENCH_RESP_TOK_ERROR:
		default:
			return false;
		}
	} while (depth > 0);
	return true;
}

/* ---- responses ---- */

static struct kstr take_word(const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp, *s = p;

	while (p < end && *p != ' ')
		p++;
	*pp = p;
	return kstr_make(s, (size_t)(p - s));
}

static bool kstr_is_status(struct kstr w)
{
	return kstr_eq_ci(w, "OK") || kstr_eq_ci(w, "NO") ||
	       kstr_eq_ci(w, "BAD") || kstr_eq_ci(w, "BYE") ||
	       kstr_eq_ci(w, "PREAUTH");
}

bool bench_resp_is_status(const struct bench_resp *r)
{
	return kstr_is_status(r->word);
}

int bench_resp_parse(struct kstr line, struct bench_resp *r)
{
	const uint8_t *p = line.p, *end = line.p + line.len;

	memset(r, 0, sizeof(*r));
	if (line.len == 0)
		return -EPROTO;
	if (*p == '+') {
		r->kind = BENCH_RESP_CONT;
		p++;
		if (p < end && *p == ' ')
			p++;
		r->rest = kstr_make(p, (size_t)(end - p));
		return 0;
	}
	if (*p == '*') {
		r->kind = BENCH_RESP_UNTAGGED;
		p++;
		if (p >= end || *p != ' ')
			return -EPROTO;
		p++;
		if (p < end && *p >= '0' && *p <= '9') {
			struct kstr num = take_word(&p, end);

			if (!kstr_to_u64(num, &r->num))
				return -EPROTO;
			r->has_num = true;
			if (p >= end)
				return -EPROTO;
			p++;
		}
	} else {
		r->kind = BENCH_RESP_TAGGED;
		r->tag = take_word(&p, end);
		if (p >= end)
			return -EPROTO;
		p++;
	}
	r->word = take_word(&p, end);
	if (r->word.len == 0)
		return -EPROTO;
	if (p < end)
		p++;
	if (!r->has_num && kstr_is_status(r->word) && p < end && *p == '[') {
		const uint8_t *c = memchr(p, ']', (size_t)(end - p));

		if (c == NULL)
			return -EPROTO;
		r->code = kstr_make(p + 1, (size_t)(c - p - 1));
		p = c + 1;
		if (p < end && *p == ' ')
			p++;
	}
	r->rest = kstr_make(p, (size_t)(end - p));
	return 0;
}

static bool tok_number(struct bench_resp_tok *t, uint64_t *v_r)
{
	struct kstr v;

	return bench_resp_tok_next(t, &v) == BENCH_RESP_TOK_ATOM && kstr_to_u64(v, v_r);
}

/* An nstring: a string, a literal or NIL. */
static bool tok_nstring(struct bench_resp_tok *t, struct kstr *v_r, bool *nil_r)
{
	switch (bench_resp_tok_next(t, v_r)) {
	case BENCH_RESP_TOK_QUOTED:
	case BENCH_RESP_TOK_LITERAL:
		*nil_r = false;
		return true;
	case BENCH_RESP_TOK_ATOM:
		*nil_r = true;
		return kstr_eq_ci(*v_r, "NIL");
	default:
		return false;
	}
}

static bool tok_astring(struct bench_resp_tok *t, struct kstr *v_r)
{
	enum bench_resp_tok_type ty = bench_resp_tok_next(t, v_r);

	return ty == BENCH_RESP_TOK_ATOM || ty == BENCH_RESP_TOK_QUOTED ||
	       ty == BENCH_RESP_TOK_LITERAL;
}

/* NIL or "(" 1*address ")", address = "(" 4 nstrings ")". */
static bool parse_addr_list(struct bench_resp_tok *t)
{
	struct kstr v;
	bool nil;
	unsigned n = 0;

	switch (bench_resp_tok_next(t, &v)) {
	case BENCH_RESP_TOK_ATOM:
		return kstr_eq_ci(v, "NIL");
	case BENCH_RESP_TOK_LPAREN:
		break;
	default:
		return false;
	}
	for (;;) {
		enum bench_resp_tok_type ty = bench_resp_tok_next(t, &v);

		if (ty == BENCH_RESP_TOK_RPAREN)
			return n > 0;
		if (ty != BENCH_RESP_TOK_LPAREN)
			return false;
		for (int i = 0; i < 4; i++)
			if (!tok_nstring(t, &v, &nil))
				return false;
		if (bench_resp_tok_next(t, &v) != BENCH_RESP_TOK_RPAREN)
			return false;
		n++;
	}
}

static bool parse_envelope(struct bench_resp_tok *t)
{
	struct kstr v;
	bool nil;

	if (bench_resp_tok_next(t, &v) != BENCH_RESP_TOK_LPAREN)
		return false;
	for (int i = 0; i < 10; i++) {
		if (i >= 2 && i <= 7) {
			if (!parse_addr_list(t))
				return false;
		} else if (!tok_nstring(t, &v, &nil)) {
			return false;
		}
	}
	return bench_resp_tok_next(t, &v) == BENCH_RESP_TOK_RPAREN;
}

static bool parse_flags(struct bench_resp_tok *t, unsigned *flags_r)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "\\Seen", BENCH_FLAG_SEEN },
		{ "\\Deleted", BENCH_FLAG_DELETED },
		{ "\\Flagged", BENCH_FLAG_FLAGGED },
		{ "\\Answered", BENCH_FLAG_ANSWERED },
		{ "\\Draft", BENCH_FLAG_DRAFT },
	};
	struct kstr v;
	unsigned flags = 0;

	if (bench_resp_tok_next(t, &v) != BENCH_RESP_TOK_LPAREN)
		return false;
	for (;;) {
		enum bench_resp_tok_type ty = bench_resp_tok_next(t, &v);

		if (ty == BENCH_RESP_TOK_RPAREN)
			break;
		if (ty != BENCH_RESP_TOK_ATOM)
			return false;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (kstr_eq_ci(v, names[i].name))
				flags |= names[i].bit;
	}
	*flags_r = flags;
	return true;
}

static int fetch_fail(struct bench_fetch *f, const char *why)
{
	f->error = why;
	return -EPROTO;
}

int bench_resp_parse_fetch(struct kstr rest, struct bench_fetch *f)
{
	struct bench_resp_tok t;
	struct kstr name, v;
	bool nil;

	memset(f, 0, sizeof(*f));
	bench_resp_tok_init(&t, rest);
	if (bench_resp_tok_next(&t, &v) != BENCH_RESP_TOK_LPAREN)
		return fetch_fail(f, "FETCH data is not a list");
	for (;;) {
		enum bench_resp_tok_type ty = bench_resp_tok_next(&t, &name);

		if (ty == BENCH_RESP_TOK_RPAREN)
			return 0;
		if (ty == BENCH_RESP_TOK_END)
			return fetch_fail(f, "unterminated FETCH list");
		if (ty != BENCH_RESP_TOK_ATOM)
			return fetch_fail(f, "FETCH item name expected");
		if (kstr_eq_ci(name, "UID")) {
			if (!tok_number(&t, &f->uid) || f->uid == 0 ||
			    f->uid > UINT32_MAX)
				return fetch_fail(f, "bad UID value");
			f->items |= BENCH_FI_UID;
		} else if (kstr_eq_ci(name, "FLAGS")) {
			if (!parse_flags(&t, &f->flags))
				return fetch_fail(f, "bad FLAGS list");
			f->items |= BENCH_FI_FLAGS;
		} else if (kstr_eq_ci(name, "RFC822.SIZE")) {
			if (!tok_number(&t, &f->size))
				return fetch_fail(f, "bad RFC822.SIZE value");
			f->items |= BENCH_FI_SIZE;
		} else if (kstr_eq_ci(name, "INTERNALDATE")) {
			if (bench_resp_tok_next(&t, &v) != BENCH_RESP_TOK_QUOTED ||
			    v.len < 20)
				return fetch_fail(f, "bad INTERNALDATE value");
			f->items |= BENCH_FI_INTERNALDATE;
		} else if (kstr_eq_ci(name, "ENVELOPE")) {
			if (!parse_envelope(&t))
				return fetch_fail(f, "malformed ENVELOPE");
			f->items |= BENCH_FI_ENVELOPE;
		} else if (kstr_eq_ci(name, "BODY[]")) {
			if (!tok_nstring(&t, &f->body, &nil))
				return fetch_fail(f, "bad BODY[] value");
			f->body_nil = nil;
			f->items |= BENCH_FI_BODY;
		} else if (kstr_eq_ci(name, "BODY[HEADER]")) {
			if (!tok_nstring(&t, &f->header, &nil))
				return fetch_fail(f, "bad BODY[HEADER] value");
			f->header_nil = nil;
			f->items |= BENCH_FI_HEADER;
		} else if (!bench_resp_tok_skip_value(&t)) {
			return fetch_fail(f, "malformed FETCH item value");
		}
	}
}

int bench_resp_parse_status(struct kstr rest, struct kstr *mailbox_r,
			    unsigned *have_r, uint64_t vals_r[3])
{
	static const char *const names[3] = { "MESSAGES", "UNSEEN", "UIDNEXT" };
	struct bench_resp_tok t;
	struct kstr v;

	*have_r = 0;
	bench_resp_tok_init(&t, rest);
	if (!tok_astring(&t, mailbox_r))
		return -EPROTO;
	if (bench_resp_tok_next(&t, &v) != BENCH_RESP_TOK_LPAREN)
		return -EPROTO;
	for (;;) {
		enum bench_resp_tok_type ty = bench_resp_tok_next(&t, &v);
		uint64_t n;

		if (ty == BENCH_RESP_TOK_RPAREN)
			return 0;
		if (ty != BENCH_RESP_TOK_ATOM || !tok_number(&t, &n))
			return -EPROTO;
		for (unsigned i = 0; i < 3; i++) {
			if (kstr_eq_ci(v, names[i])) {
				*have_r |= 1u << i;
				vals_r[i] = n;
			}
		}
	}
}

int bench_resp_parse_list(struct kstr rest, struct kstr *mailbox_r)
{
	struct bench_resp_tok t;
	struct kstr v;
	enum bench_resp_tok_type ty;

	bench_resp_tok_init(&t, rest);
	if (bench_resp_tok_peek(&t) != BENCH_RESP_TOK_LPAREN || !bench_resp_tok_skip_value(&t))
		return -EPROTO;
	ty = bench_resp_tok_next(&t, &v);
	if (ty != BENCH_RESP_TOK_QUOTED && !(ty == BENCH_RESP_TOK_ATOM &&
					kstr_eq_ci(v, "NIL")))
		return -EPROTO;
	if (!tok_astring(&t, mailbox_r))
		return -EPROTO;
	return 0;
}
