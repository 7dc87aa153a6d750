/* mime: one pass over a message into a tree of parts (byte ranges into
 * the message, nothing copied), then ENVELOPE / BODYSTRUCTURE / BODY
 * from the tree; section extraction and search walk the same tree.
 *
 * The parser looks at each line once: headers line by line, bodies by
 * searching for "\n--" and checking only those lines against the stack
 * of open boundaries (innermost first), so an outer boundary ends every
 * part inside it. */
#include "index/mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/arena.h"
#include "lib/errors.h"
#include "lib/util.h"

/* Parameters per Content-Type / Content-Disposition: more are ignored,
 * which bounds the RFC 2231 joining work. */
#define MIME_MAX_PARAMS 128

enum hdr_id {
	H_CONTENT_TYPE = 0,
	H_CTE,
	H_CONTENT_ID,
	H_CONTENT_DESC,
	H_CONTENT_MD5,
	H_CONTENT_DISP,
	H_CONTENT_LANG,
	H_CONTENT_LOC,
	H_DATE,
	H_SUBJECT,
	H_FROM,
	H_SENDER,
	H_REPLY_TO,
	H_TO,
	H_CC,
	H_BCC,
	H_IN_REPLY_TO,
	H_MESSAGE_ID,
	H_COUNT
};

static const struct kstr hdr_names[H_COUNT] = {
	[H_CONTENT_TYPE] = KSTR_LIT("content-type"),
	[H_CTE] = KSTR_LIT("content-transfer-encoding"),
	[H_CONTENT_ID] = KSTR_LIT("content-id"),
	[H_CONTENT_DESC] = KSTR_LIT("content-description"),
	[H_CONTENT_MD5] = KSTR_LIT("content-md5"),
	[H_CONTENT_DISP] = KSTR_LIT("content-disposition"),
	[H_CONTENT_LANG] = KSTR_LIT("content-language"),
	[H_CONTENT_LOC] = KSTR_LIT("content-location"),
	[H_DATE] = KSTR_LIT("date"),
	[H_SUBJECT] = KSTR_LIT("subject"),
	[H_FROM] = KSTR_LIT("from"),
	[H_SENDER] = KSTR_LIT("sender"),
	[H_REPLY_TO] = KSTR_LIT("reply-to"),
	[H_TO] = KSTR_LIT("to"),
	[H_CC] = KSTR_LIT("cc"),
	[H_BCC] = KSTR_LIT("bcc"),
	[H_IN_REPLY_TO] = KSTR_LIT("in-reply-to"),
	[H_MESSAGE_ID] = KSTR_LIT("message-id"),
};

enum part_kind {
	PART_LEAF = 0,
	PART_MULTIPART,
	PART_MESSAGE,
};

struct param {
	struct kstr name, value;
};

struct part {
	struct part *next, *children, *last_child;
	enum part_kind kind;
	/* A container past MIME_MAX_DEPTH: parsed and written as a leaf. */
	bool opaque;
	size_t hdr_start, hdr_end, body_start, body_end;
	/* Raw value (after the colon, folding and final line break
	 * included) of the first field of each kind; p == NULL if absent. */
	struct kstr hdr[H_COUNT];
	struct kstr type, subtype;
	struct param *params;
	size_t nparams;
};

struct delim {
	size_t start, next;	/* the delimiter line, the line after it */
	unsigned int idx;	/* which open boundary */
	bool close;
};

struct pctx {
	const uint8_t *m;
	size_t len, pos;
	struct kstr bound[MIME_MAX_DEPTH + 1];
	unsigned int nbound;
	uint32_t nparts;
	struct arena *arena;
};

/* An empty buf has data == NULL, and NULL + 0 is undefined behaviour
 * that UBSan reports: views of bufs go through here. */
static struct kstr bview(const struct buf *b)
{
	if (b->data == NULL)
		return kstr_make("", 0);
	return kstr_make(b->data + b->pos, b->len - b->pos);
}

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool kstr_ieq(struct kstr a, struct kstr b)
{
	return a.len == b.len &&
	       (a.len == 0 ||
		strncasecmp((const char *)a.p, (const char *)b.p, a.len) == 0);
}

static struct kstr trim_ws(struct kstr s)
{
	while (s.len > 0 && (is_wsp(s.p[0]) || s.p[0] == '\r' || s.p[0] == '\n')) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && (is_wsp(s.p[s.len - 1]) || s.p[s.len - 1] == '\r' ||
			     s.p[s.len - 1] == '\n'))
		s.len--;
	return s;
}

/* Header value without its line breaks (unfolded) and without the white
 * space around it, copied into the arena; p == NULL stays NULL. */
static struct kstr hval(struct arena *a, struct kstr raw)
{
	if (raw.p == NULL)
		return raw;
	raw = trim_ws(raw);
	uint8_t *d = arena_alloc(a, raw.len + 1);
	size_t n = 0;
	for (size_t i = 0; i < raw.len; i++) {
		if (raw.p[i] != '\r' && raw.p[i] != '\n')
			d[n++] = raw.p[i];
	}
	return kstr_make(d, n);
}

static size_t count_lf(const uint8_t *p, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += p[i] == '\n';
	return n;
}

/* body-fld-lines of nested message/rfc822 parts cover the same bytes
 * again and again: LF counts per block, built once, keep that linear. */
#define LC_BLOCK 4096

struct lcount {
	const uint8_t *m;
	size_t len;
	size_t *blk;		/* blk[i]: LFs in [0, i * LC_BLOCK) */
};

static size_t lf_before(struct lcount *lc, struct arena *a, size_t pos)
{
	if (lc->blk == NULL) {
		size_t nblk = lc->len / LC_BLOCK + 1;
		lc->blk = arena_alloc(a, nblk * sizeof(*lc->blk));
		lc->blk[0] = 0;
		for (size_t i = 1; i < nblk; i++)
			lc->blk[i] = lc->blk[i - 1] +
				count_lf(lc->m + (i - 1) * LC_BLOCK, LC_BLOCK);
	}
	size_t b = pos / LC_BLOCK;
	return lc->blk[b] + count_lf(lc->m + b * LC_BLOCK, pos - b * LC_BLOCK);
}

/* LF bytes, plus one for a last line without one. */
static size_t count_lines(struct lcount *lc, struct arena *a, size_t s,
			  size_t e)
{
	if (e <= s)
		return 0;
	size_t n = lf_before(lc, a, e) - lf_before(lc, a, s);
	return n + (lc->m[e - 1] != '\n');
}

/* ---- boundaries ---- */

static bool delim_at(const struct pctx *c, size_t ls, struct delim *d)
{
	const uint8_t *p = c->m + ls;
	size_t avail = c->len - ls;

	if (c->nbound == 0 || avail < 2 || p[0] != '-' || p[1] != '-')
		return false;
	const uint8_t *nl = memchr(p, '\n', avail);
	size_t le = nl != NULL ? (size_t)(nl - c->m) : c->len;
	size_t ce = le;
	if (ce > ls && c->m[ce - 1] == '\r')
		ce--;
	size_t cl = ce - ls;
	for (unsigned int i = c->nbound; i-- > 0;) {
		struct kstr b = c->bound[i];
		if (cl < 2 + b.len || memcmp(p + 2, b.p, b.len) != 0)
			continue;
		size_t r = 2 + b.len;
		bool close = false;
		if (r + 2 <= cl && p[r] == '-' && p[r + 1] == '-') {
			close = true;
			r += 2;
		}
		/* RFC 2046: only transport padding may follow a boundary;
		 * "--abcd" is not a delimiter for boundary "abc". Anything
		 * after a close delimiter is epilogue anyway. */
		if (!close && r < cl && !is_wsp(p[r]))
			continue;
		d->start = ls;
		d->next = nl != NULL ? le + 1 : c->len;
		d->idx = i;
		d->close = close;
		return true;
	}
	return false;
}

/* Next delimiter line of any open boundary at or after line start from. */
static bool find_delim(const struct pctx *c, size_t from, struct delim *d)
{
	if (c->nbound == 0)
		return false;
	if (delim_at(c, from, d))
		return true;
	/* memchr rather than memmem(): sanitizers check memmem's whole
	 * haystack on each call, which would make this quadratic there. */
	size_t pos = from;
	while (pos < c->len) {
		const uint8_t *q = memchr(c->m + pos, '\n', c->len - pos);
		if (q == NULL)
			return false;
		size_t ls = (size_t)(q - c->m) + 1;
		if (ls < c->len && c->m[ls] == '-' && delim_at(c, ls, d))
			return true;
		pos = ls;
	}
	return false;
}

/* Where a body that is followed by the delimiter line at ls ends: the
 * line break before a delimiter belongs to it (RFC 2046 5.1.1). */
static size_t body_end_before(const struct pctx *c, size_t ls, size_t body_start)
{
	size_t e = ls;
	if (e > body_start && c->m[e - 1] == '\n') {
		e--;
		if (e > body_start && c->m[e - 1] == '\r')
			e--;
	}
	return e;
}

/* ---- headers ---- */

static int hdr_lookup(struct kstr name)
{
	for (int i = 0; i < H_COUNT; i++) {
		if (kstr_ieq(name, hdr_names[i]))
			return i;
	}
	return -1;
}

static struct kstr field_name(const uint8_t *ls, const uint8_t *colon)
{
	struct kstr n = kstr_make(ls, (size_t)(colon - ls));
	while (n.len > 0 && is_wsp(n.p[n.len - 1]))
		n.len--;
	return n;
}

/* Reads the header at c->pos up to the blank line (included), the end
 * of the message, or a delimiter line of an open boundary (a part cut
 * short has no blank line). */
static void parse_header(struct pctx *c, struct part *pt)
{
	size_t pos = c->pos;
	int cur = -1;
	size_t val_start = 0;
	struct delim d;

	pt->hdr_start = pos;
	while (pos < c->len) {
		const uint8_t *lp = c->m + pos;
		const uint8_t *nl = memchr(lp, '\n', c->len - pos);
		size_t le = nl != NULL ? (size_t)(nl - c->m) : c->len;
		size_t next = nl != NULL ? le + 1 : c->len;
		size_t ce = le;
		if (ce > pos && c->m[ce - 1] == '\r')
			ce--;
		bool blank = ce == pos;
		bool delim = !blank && lp[0] == '-' && delim_at(c, pos, &d);
		if (blank || delim || !is_wsp(lp[0])) {
			if (cur >= 0 && pt->hdr[cur].p == NULL)
				pt->hdr[cur] = kstr_make(c->m + val_start,
							 pos - val_start);
			cur = -1;
		}
		if (blank) {
			pt->hdr_end = pt->body_start = c->pos = next;
			return;
		}
		if (delim) {
			pt->hdr_end = pt->body_start = c->pos = pos;
			return;
		}
		if (!is_wsp(lp[0])) {
			const uint8_t *colon = memchr(lp, ':', ce - pos);
			if (colon != NULL) {
				cur = hdr_lookup(field_name(lp, colon));
				val_start = (size_t)(colon - c->m) + 1;
			}
		}
		pos = next;
	}
	if (cur >= 0 && pt->hdr[cur].p == NULL)
		pt->hdr[cur] = kstr_make(c->m + val_start, c->len - val_start);
	pt->hdr_end = pt->body_start = c->pos = c->len;
}

/* Iterates the fields of a header region: name (trailing white space
 * trimmed), raw value after the colon, the whole field with its
 * continuation lines. Lines without a colon are skipped. */
struct fiter {
	const uint8_t *m;
	size_t pos, end;
};

static bool fiter_next(struct fiter *it, struct kstr *name_r,
		       struct kstr *value_r, struct kstr *whole_r)
{
	while (it->pos < it->end) {
		size_t ls = it->pos;
		const uint8_t *nl = memchr(it->m + ls, '\n', it->end - ls);
		size_t le = nl != NULL ? (size_t)(nl - it->m) : it->end;
		size_t ce = le > ls && it->m[le - 1] == '\r' ? le - 1 : le;
		if (ce == ls) {
			it->pos = it->end;
			return false;
		}
		size_t fe = nl != NULL ? le + 1 : it->end;
		while (fe < it->end && is_wsp(it->m[fe])) {
			const uint8_t *n2 = memchr(it->m + fe, '\n', it->end - fe);
			fe = n2 != NULL ? (size_t)(n2 - it->m) + 1 : it->end;
		}
		it->pos = fe;
		if (is_wsp(it->m[ls]))
			continue;
		const uint8_t *colon = memchr(it->m + ls, ':', ce - ls);
		if (colon == NULL)
			continue;
		*name_r = field_name(it->m + ls, colon);
		size_t vs = (size_t)(colon - it->m) + 1;
		*value_r = kstr_make(it->m + vs, fe - vs);
		*whole_r = kstr_make(it->m + ls, fe - ls);
		return true;
	}
	return false;
}

/* ---- Content-Type and friends (RFC 2045 5.1, 2183, 2231) ---- */

struct tok {
	const uint8_t *p;
	size_t len, pos;
};

static void tok_cfws(struct tok *t)
{
	while (t->pos < t->len) {
		uint8_t c = t->p[t->pos];
		if (is_wsp(c) || c == '\r' || c == '\n') {
			t->pos++;
		} else if (c == '(') {
			unsigned int depth = 0;
			while (t->pos < t->len) {
				c = t->p[t->pos++];
				if (c == '\\' && t->pos < t->len)
					t->pos++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

static bool is_tspecial(uint8_t c)
{
	static const bool ts[256] = {
		['('] = true, [')'] = true, ['<'] = true, ['>'] = true,
		['@'] = true, [','] = true, [';'] = true, [':'] = true,
		['\\'] = true, ['"'] = true, ['/'] = true, ['['] = true,
		[']'] = true, ['?'] = true, ['='] = true,
	};
	return ts[c];
}

static struct kstr tok_token(struct tok *t)
{
	size_t s = t->pos;
	while (t->pos < t->len) {
		uint8_t c = t->p[t->pos];
		if (c <= ' ' || c == 0x7f || is_tspecial(c))
			break;
		t->pos++;
	}
	return kstr_make(t->p + s, t->pos - s);
}

static int tok_peek(const struct tok *t)
{
	return t->pos < t->len ? t->p[t->pos] : -1;
}

static void tok_skip_to_semicolon(struct tok *t)
{
	while (t->pos < t->len && t->p[t->pos] != ';') {
		if (t->p[t->pos] == '"') {
			t->pos++;
			while (t->pos < t->len && t->p[t->pos] != '"') {
				if (t->p[t->pos] == '\\')
					t->pos++;
				t->pos++;
			}
		}
		t->pos++;
	}
}

/* attribute-char of RFC 2231 7: what may stay unencoded in an extended
 * value. */
static bool is_attr_char(uint8_t c)
{
	return c > ' ' && c < 0x7f && c != '*' && c != '\'' && c != '%' &&
	       !is_tspecial(c);
}

struct rawparam {
	struct kstr name, base, value;
	int section;		/* -1: not a continuation */
	bool ext;		/* value is charset'lang'%xx or %xx */
	bool used;
};

static size_t piece_find(const struct rawparam *rp, size_t from, size_t nraw,
			 struct kstr base, int sec)
{
	for (size_t j = from; j < nraw; j++) {
		if (rp[j].section == sec && kstr_ieq(rp[j].base, base))
			return j;
	}
	return nraw;
}

/* Joins RFC 2231 continuations; keeps the first of repeated names. */
static void params_finish(struct arena *a, struct rawparam *rp, size_t nraw,
			  struct param **params_r, size_t *n_r)
{
	struct param *out = arena_alloc(a, sizeof(*out) * (nraw + 1));
	size_t n = 0;

	for (size_t i = 0; i < nraw; i++) {
		if (rp[i].used)
			continue;
		struct kstr name = rp[i].name, value = rp[i].value;
		if (rp[i].section >= 0) {
			struct kstr base = rp[i].base;
			size_t pieces[MIME_MAX_PARAMS];
			size_t np = 0;
			bool any_ext = false;
			for (size_t j = i; j < nraw; j++) {
				if (rp[j].section >= 0 && kstr_ieq(rp[j].base, base))
					rp[j].used = true;
			}
			/* In order from 0 up to the first missing piece. */
			for (int sec = 0; np < MIME_MAX_PARAMS; sec++) {
				size_t j = piece_find(rp, i, nraw, base, sec);
				if (j == nraw)
					break;
				pieces[np++] = j;
				any_ext = any_ext || rp[j].ext;
			}
			if (np == 0)
				continue;
			struct buf v;
			buf_init(&v, 0);
			if (any_ext && !rp[pieces[0]].ext)
				buf_append_str(&v, "''");
			for (size_t k = 0; k < np; k++) {
				struct kstr pv = rp[pieces[k]].value;
				if (!any_ext || rp[pieces[k]].ext) {
					buf_append_kstr(&v, pv);
					continue;
				}
				for (size_t q = 0; q < pv.len; q++) {
					uint8_t ch = pv.p[q];
					if (is_attr_char(ch))
						buf_append(&v, &ch, 1);
					else
						buf_printf(&v, "%%%02X", ch);
				}
			}
			char *nm = arena_alloc(a, base.len + 2);
			memcpy(nm, base.p, base.len);
			nm[base.len] = '*';
			name = kstr_make(nm, base.len + (any_ext ? 1 : 0));
			uint8_t *vd = arena_alloc(a, v.len + 1);
			if (v.len > 0)
				memcpy(vd, v.data, v.len);
			value = kstr_make(vd, v.len);
			buf_deinit(&v);
		}
		rp[i].used = true;
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = kstr_ieq(out[k].name, name);
		if (!dup)
			out[n++] = (struct param){ name, value };
	}
	*params_r = out;
	*n_r = n;
}

/* Parses "type/subtype *(; param)" (want_sub) or "type *(; param)" from a
 * raw header value. false when the type part is not valid. */
static bool parse_typed(struct arena *a, struct kstr raw, bool want_sub,
			struct kstr *type_r, struct kstr *sub_r,
			struct param **params_r, size_t *nparams_r)
{
	struct kstr v = hval(a, raw);
	struct tok t = { v.p, v.len, 0 };

	tok_cfws(&t);
	*type_r = tok_token(&t);
	if (type_r->len == 0)
		return false;
	if (want_sub) {
		tok_cfws(&t);
		if (tok_peek(&t) != '/')
			return false;
		t.pos++;
		tok_cfws(&t);
		*sub_r = tok_token(&t);
		if (sub_r->len == 0)
			return false;
	}

	struct rawparam rp[MIME_MAX_PARAMS];
	size_t nraw = 0;
	tok_cfws(&t);
	while (t.pos < t.len) {
		if (t.p[t.pos] != ';') {
			tok_skip_to_semicolon(&t);
			continue;
		}
		t.pos++;
		tok_cfws(&t);
		struct kstr name = tok_token(&t);
		tok_cfws(&t);
		if (name.len == 0 || tok_peek(&t) != '=') {
			tok_skip_to_semicolon(&t);
			continue;
		}
		t.pos++;
		tok_cfws(&t);
		struct kstr value;
		if (tok_peek(&t) == '"') {
			/* Measure first: allocating "the rest" per value
			 * would be quadratic in the number of values. */
			size_t qs = ++t.pos, n = 0;
			while (t.pos < t.len && t.p[t.pos] != '"') {
				if (t.p[t.pos] == '\\' && t.pos + 1 < t.len)
					t.pos++;
				t.pos++;
				n++;
			}
			uint8_t *d = arena_alloc(a, n + 1);
			n = 0;
			for (size_t q = qs; q < t.pos; q++) {
				if (t.p[q] == '\\' && q + 1 < t.pos)
					q++;
				d[n++] = t.p[q];
			}
			if (t.pos < t.len)
				t.pos++;
			value = kstr_make(d, n);
		} else {
			/* Lenient: unquoted values with tspecials in them
			 * ("boundary==_x", "name=a b.pdf" up to the space)
			 * are common. */
			size_t s = t.pos;
			while (t.pos < t.len && t.p[t.pos] != ';' &&
			       t.p[t.pos] != '"' && !is_wsp(t.p[t.pos]))
				t.pos++;
			value = kstr_make(t.p + s, t.pos - s);
		}
		tok_cfws(&t);
		if (nraw == MIME_MAX_PARAMS)
			continue;
		struct rawparam *r = &rp[nraw++];
		memset(r, 0, sizeof(*r));
		r->name = name;
		r->value = value;
		r->section = -1;
		const uint8_t *star = memchr(name.p, '*', name.len);
		if (star != NULL) {
			struct kstr base = kstr_make(name.p, (size_t)(star - name.p));
			struct kstr rest = kstr_make(star + 1, name.len - base.len - 1);
			if (rest.len == 0) {
				/* name*=charset'lang'value: one piece, kept as
				 * "name*" with its encoded value. */
				r->ext = true;
			} else {
				bool ext = rest.p[rest.len - 1] == '*';
				if (ext)
					rest.len--;
				uint64_t sec;
				if (base.len > 0 && kstr_to_u64(rest, &sec) &&
				    sec < MIME_MAX_PARAMS &&
				    (rest.len == 1 || rest.p[0] != '0')) {
					r->base = base;
					r->section = (int)sec;
					r->ext = ext;
				}
			}
		}
	}
	params_finish(a, rp, nraw, params_r, nparams_r);
	return true;
}

static struct kstr param_get(const struct part *pt, const char *name)
{
	for (size_t i = 0; i < pt->nparams; i++) {
		if (kstr_eq_ci(pt->params[i].name, name))
			return pt->params[i].value;
	}
	return (struct kstr){ NULL, 0 };
}

static bool part_is(const struct part *pt, const char *type, const char *sub)
{
	return kstr_eq_ci(pt->type, type) && (sub == NULL || kstr_eq_ci(pt->subtype, sub));
}

static void part_content_type(struct pctx *c, struct part *pt, bool digest)
{
	if (pt->hdr[H_CONTENT_TYPE].p != NULL &&
	    parse_typed(c->arena, pt->hdr[H_CONTENT_TYPE], true, &pt->type,
			&pt->subtype, &pt->params, &pt->nparams))
		return;
	/* Missing or invalid: RFC 2045 5.2 / RFC 2046 5.1.5 defaults. */
	pt->params = NULL;
	pt->nparams = 0;
	if (digest) {
		pt->type = KSTR_LIT("message");
		pt->subtype = KSTR_LIT("rfc822");
	} else {
		pt->type = KSTR_LIT("text");
		pt->subtype = KSTR_LIT("plain");
	}
}

/* ---- the tree ---- */

static struct part *parse_entity(struct pctx *c, unsigned int depth,
				 bool digest);

static void parse_multipart_body(struct pctx *c, struct part *pt,
				 unsigned int depth)
{
	unsigned int own = c->nbound - 1;
	bool digest = kstr_eq_ci(pt->subtype, "digest");
	struct delim d;
	bool found = find_delim(c, c->pos, &d);

	for (;;) {
		if (!found) {
			pt->body_end = c->pos = c->len;
			break;
		}
		if (d.idx != own) {
			/* An enclosing boundary: this multipart was never
			 * closed. */
			pt->body_end = body_end_before(c, d.start, pt->body_start);
			c->pos = d.start;
			break;
		}
		if (d.close) {
			c->nbound--;
			/* The epilogue runs up to an enclosing boundary. */
			if (find_delim(c, d.next, &d)) {
				pt->body_end = body_end_before(c, d.start, pt->body_start);
				c->pos = d.start;
			} else {
				pt->body_end = c->pos = c->len;
			}
			return;
		}
		if (d.next == c->len) {
			/* A delimiter with nothing after it (a message cut
			 * there) starts no part. */
			pt->body_end = c->pos = c->len;
			break;
		}
		if (c->nparts >= MIME_MAX_PARTS) {
			found = find_delim(c, d.next, &d);
			continue;
		}
		c->pos = d.next;
		struct part *child = parse_entity(c, depth + 1, digest);
		if (pt->last_child != NULL)
			pt->last_child->next = child;
		else
			pt->children = child;
		pt->last_child = child;
		found = find_delim(c, c->pos, &d);
	}
	c->nbound--;
}

static struct part *parse_entity(struct pctx *c, unsigned int depth,
				 bool digest)
{
	struct part *pt = arena_zalloc(c->arena, sizeof(*pt));
	c->nparts++;
	parse_header(c, pt);
	part_content_type(c, pt, digest);

	bool multipart = part_is(pt, "multipart", NULL);
	bool message = part_is(pt, "message", "rfc822");
	if ((multipart || message) &&
	    (depth >= MIME_MAX_DEPTH || (message && c->nparts >= MIME_MAX_PARTS)))
		pt->opaque = true;
	if (multipart && !pt->opaque) {
		pt->kind = PART_MULTIPART;
		struct kstr b = param_get(pt, "boundary");
		if (b.len > 0) {
			c->bound[c->nbound++] = b;
			parse_multipart_body(c, pt, depth);
			return pt;
		}
	} else if (message && !pt->opaque) {
		pt->kind = PART_MESSAGE;
		struct part *child = parse_entity(c, depth + 1, false);
		pt->children = pt->last_child = child;
		pt->body_end = child->body_end;
		return pt;
	}
	struct delim d;
	if (find_delim(c, c->pos, &d)) {
		pt->body_end = body_end_before(c, d.start, pt->body_start);
		c->pos = d.start;
	} else {
		pt->body_end = c->pos = c->len;
	}
	return pt;
}

static struct part *tree_parse(const uint8_t *msg, size_t len,
			       struct arena *a)
{
	struct pctx c = { .m = msg, .len = len, .arena = a };
	return parse_entity(&c, 0, false);
}

/* ---- ENVELOPE and BODYSTRUCTURE ---- */

struct wctx {
	const uint8_t *m;
	struct arena *a;
	struct buf *out;
	struct lcount lc;
};

static void w_raw(struct wctx *w, const char *s)
{
	buf_append_str(w->out, s);
}

static void w_str(struct wctx *w, struct kstr s)
{
	mime_imap_string(w->out, s.p, s.len);
}

static void w_nstr(struct wctx *w, struct kstr s)
{
	if (s.p == NULL)
		w_raw(w, "NIL");
	else
		w_str(w, s);
}

static void w_addr(struct kstr raw, struct buf *tmp, bool *written_r)
{
	*written_r = false;
	buf_reset(tmp);
	if (raw.p == NULL)
		buf_append_str(tmp, "NIL");
	else
		mime_address_list(raw, tmp, written_r);
}

static void write_envelope(struct wctx *w, const struct part *pt)
{
	static const enum hdr_id addrs[] = {
		H_FROM, H_SENDER, H_REPLY_TO, H_TO, H_CC, H_BCC,
	};
	struct buf from, tmp;
	bool written;

	buf_init(&from, 0);
	buf_init(&tmp, 0);
	w_raw(w, "(");
	w_nstr(w, hval(w->a, pt->hdr[H_DATE]));
	w_raw(w, " ");
	w_nstr(w, hval(w->a, pt->hdr[H_SUBJECT]));
	for (size_t i = 0; i < ARRAY_SIZE(addrs); i++) {
		w_raw(w, " ");
		if (addrs[i] == H_FROM) {
			w_addr(pt->hdr[H_FROM], &from, &written);
			buf_append_kstr(w->out, bview(&from));
			continue;
		}
		w_addr(pt->hdr[addrs[i]], &tmp, &written);
		/* RFC 3501 7.4.2: absent or empty Sender and Reply-To are
		 * the From value. */
		if (!written && (addrs[i] == H_SENDER || addrs[i] == H_REPLY_TO))
			buf_append_kstr(w->out, bview(&from));
		else
			buf_append_kstr(w->out, bview(&tmp));
	}
	w_raw(w, " ");
	w_nstr(w, hval(w->a, pt->hdr[H_IN_REPLY_TO]));
	w_raw(w, " ");
	w_nstr(w, hval(w->a, pt->hdr[H_MESSAGE_ID]));
	w_raw(w, ")");
	buf_deinit(&from);
	buf_deinit(&tmp);
}

static void w_params(struct wctx *w, const struct param *p, size_t n,
		     bool add_charset)
{
	if (n == 0 && !add_charset) {
		w_raw(w, "NIL");
		return;
	}
	w_raw(w, "(");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			w_raw(w, " ");
		w_str(w, p[i].name);
		w_raw(w, " ");
		w_str(w, p[i].value);
	}
	if (add_charset)
		w_raw(w, n > 0 ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
	w_raw(w, ")");
}

static void w_disposition(struct wctx *w, const struct part *pt)
{
	struct kstr type, sub;
	struct param *params;
	size_t n;

	if (pt->hdr[H_CONTENT_DISP].p == NULL ||
	    !parse_typed(w->a, pt->hdr[H_CONTENT_DISP], false, &type, &sub,
			 &params, &n)) {
		w_raw(w, "NIL");
		return;
	}
	w_raw(w, "(");
	w_str(w, type);
	w_raw(w, " ");
	w_params(w, params, n, false);
	w_raw(w, ")");
}

static void w_language(struct wctx *w, const struct part *pt)
{
	struct kstr v = hval(w->a, pt->hdr[H_CONTENT_LANG]);
	struct tok t = { v.p, v.len, 0 };
	bool any = false;

	while (v.p != NULL && t.pos < t.len) {
		tok_cfws(&t);
		/* Language tags are tokens; '-' is fine, ',' separates. */
		struct kstr tag = tok_token(&t);
		if (tag.len == 0) {
			if (t.pos < t.len)
				t.pos++;
			continue;
		}
		w_raw(w, any ? " " : "(");
		any = true;
		w_str(w, tag);
	}
	w_raw(w, any ? ")" : "NIL");
}

static struct kstr part_cte(struct arena *a, const struct part *pt)
{
	struct kstr v = hval(a, pt->hdr[H_CTE]);
	struct tok t = { v.p, v.len, 0 };
	if (v.p == NULL)
		return v;
	tok_cfws(&t);
	return tok_token(&t);
}

#define EMPTY_PART_FIELDS \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0"
#define EMPTY_PART EMPTY_PART_FIELDS ")"
#define EMPTY_PART_EXT EMPTY_PART_FIELDS " NIL NIL NIL NIL)"

static void write_part(struct wctx *w, const struct part *pt, bool ext);

static void w_ext_tail(struct wctx *w, const struct part *pt)
{
	w_raw(w, " ");
	w_disposition(w, pt);
	w_raw(w, " ");
	w_language(w, pt);
	w_raw(w, " ");
	w_nstr(w, hval(w->a, pt->hdr[H_CONTENT_LOC]));
}

static void write_part(struct wctx *w, const struct part *pt, bool ext)
{
	if (pt->kind == PART_MULTIPART) {
		w_raw(w, "(");
		/* The grammar needs one part: an empty text/plain. */
		if (pt->children == NULL)
			w_raw(w, ext ? EMPTY_PART_EXT : EMPTY_PART);
		for (const struct part *ch = pt->children; ch != NULL; ch = ch->next)
			write_part(w, ch, ext);
		w_raw(w, " ");
		w_str(w, pt->subtype);
		if (ext) {
			w_raw(w, " ");
			w_params(w, pt->params, pt->nparams, false);
			w_ext_tail(w, pt);
		}
		w_raw(w, ")");
		return;
	}

	bool text = !pt->opaque && kstr_eq_ci(pt->type, "text");
	size_t size = pt->body_end - pt->body_start;
	w_raw(w, "(");
	if (pt->opaque) {
		w_raw(w, "\"application\" \"octet-stream\"");
	} else {
		w_str(w, pt->type);
		w_raw(w, " ");
		w_str(w, pt->subtype);
	}
	w_raw(w, " ");
	w_params(w, pt->params, pt->nparams,
		 text && param_get(pt, "charset").p == NULL);
	w_raw(w, " ");
	w_nstr(w, hval(w->a, pt->hdr[H_CONTENT_ID]));
	w_raw(w, " ");
	w_nstr(w, hval(w->a, pt->hdr[H_CONTENT_DESC]));
	w_raw(w, " ");
	struct kstr cte = part_cte(w->a, pt);
	if (cte.p == NULL || cte.len == 0)
		w_raw(w, "\"7BIT\"");
	else
		w_str(w, cte);
	buf_printf(w->out, " %zu", size);
	if (text)
		buf_printf(w->out, " %zu", count_lines(&w->lc, w->a,
						       pt->body_start, pt->body_end));
	if (pt->kind == PART_MESSAGE) {
		w_raw(w, " ");
		write_envelope(w, pt->children);
		w_raw(w, " ");
		write_part(w, pt->children, ext);
		buf_printf(w->out, " %zu", count_lines(&w->lc, w->a,
						       pt->body_start, pt->body_end));
	}
	if (ext) {
		w_raw(w, " ");
		w_nstr(w, hval(w->a, pt->hdr[H_CONTENT_MD5]));
		w_ext_tail(w, pt);
	}
	w_raw(w, ")");
}

static char *buf_to_cstr(struct buf *b)
{
	struct kstr v = bview(b);
	return kstr_dup(v);
}

int mime_parse(const uint8_t *msg, size_t len, struct mime_info *info_r)
{
	struct arena *a = arena_create(16384);
	struct part *root;
	struct buf out;
	struct wctx w;

	if (msg == NULL)
		msg = (const uint8_t *)"";
	memset(info_r, 0, sizeof(*info_r));
	root = tree_parse(msg, len, a);
	buf_init(&out, 0);
	w = (struct wctx){
		.m = msg, .a = a, .out = &out, .lc = { .m = msg, .len = len },
	};

	write_envelope(&w, root);
	info_r->envelope = buf_to_cstr(&out);
	buf_reset(&out);
	write_part(&w, root, true);
	info_r->bodystructure = buf_to_cstr(&out);
	buf_reset(&out);
	write_part(&w, root, false);
	info_r->body = buf_to_cstr(&out);
	buf_deinit(&out);

	int64_t t;
	int tz;
	struct kstr date = hval(a, root->hdr[H_DATE]);
	if (date.p != NULL && mime_date_parse(date, &t, &tz)) {
		info_r->sent_date = t;
		info_r->sent_tz_min = tz;
	} else {
		info_r->sent_date = -1;
		info_r->sent_tz_min = 0;
	}
	info_r->header_size = root->hdr_end > UINT32_MAX ? UINT32_MAX :
		(uint32_t)root->hdr_end;
	size_t lines = count_lines(&w.lc, a, 0, len);
	info_r->lines = lines > UINT32_MAX ? UINT32_MAX : (uint32_t)lines;
	arena_destroy(&a);
	return 0;
}

void mime_info_free(struct mime_info *info)
{
	free(info->envelope);
	free(info->bodystructure);
	free(info->body);
	info->envelope = info->bodystructure = info->body = NULL;
}

/* ---- sections (RFC 3501 6.4.5) ---- */

enum sect_kind {
	SECT_ALL = 0,
	SECT_HEADER,
	SECT_FIELDS,
	SECT_FIELDS_NOT,
	SECT_TEXT,
	SECT_MIME,
};

struct sect {
	uint32_t path[MIME_MAX_DEPTH];
	unsigned int npath;
	enum sect_kind kind;
	struct kstr *fields;
	size_t nfields, cap;
};

static bool is_astring_char(uint8_t c)
{
	return c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '{' &&
	       c != '%' && c != '*' && c != '"' && c != '\\';
}

static void sect_add_field(struct sect *s, struct arena *a, const uint8_t *p,
			   size_t n)
{
	if (a == NULL)
		return;
	if (s->nfields == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		struct kstr *nf = arena_alloc(a, ncap * sizeof(*nf));
		if (s->nfields > 0)
			memcpy(nf, s->fields, s->nfields * sizeof(*nf));
		s->fields = nf;
		s->cap = ncap;
	}
	s->fields[s->nfields++] = kstr_make(p, n);
}

/* header-list = "(" astring *(SP astring) ")" and the end of spec. */
static bool sect_parse_fields(struct kstr spec, size_t i, struct sect *s,
			      struct arena *a)
{
	if (i >= spec.len || spec.p[i] != '(')
		return false;
	i++;
	for (;;) {
		if (i >= spec.len)
			return false;
		uint8_t c = spec.p[i];
		if (c == '"') {
			size_t qlen = 0;
			for (size_t q = i + 1; q < spec.len && spec.p[q] != '"'; q++, qlen++) {
				if (spec.p[q] == '\\')
					q++;
			}
			uint8_t *d = a != NULL ? arena_alloc(a, qlen + 1) : NULL;
			size_t n = 0;
			i++;
			for (;;) {
				if (i >= spec.len)
					return false;
				c = spec.p[i];
				if (c == '"')
					break;
				if (c == '\\') {
					if (i + 1 >= spec.len ||
					    (spec.p[i + 1] != '"' && spec.p[i + 1] != '\\'))
						return false;
					c = spec.p[++i];
				} else if (c == '\r' || c == '\n' || c == 0 || c >= 0x80) {
					return false;
				}
				if (d != NULL)
					d[n++] = c;
				i++;
			}
			i++;
			sect_add_field(s, a, d, n);
		} else if (c == '{') {
			size_t j = i + 1;
			uint64_t n = 0;
			while (j < spec.len && spec.p[j] >= '0' && spec.p[j] <= '9') {
				if (n > (uint64_t)spec.len)
					return false;
				n = n * 10 + (spec.p[j] - '0');
				j++;
			}
			if (j == i + 1)
				return false;
			if (j < spec.len && spec.p[j] == '+')
				j++;
			if (j + 3 > spec.len || spec.p[j] != '}' ||
			    spec.p[j + 1] != '\r' || spec.p[j + 2] != '\n')
				return false;
			j += 3;
			if (n > spec.len - j)
				return false;
			if (memchr(spec.p + j, 0, (size_t)n) != NULL)
				return false;
			sect_add_field(s, a, spec.p + j, (size_t)n);
			i = j + (size_t)n;
		} else if (is_astring_char(c)) {
			size_t st = i;
			while (i < spec.len && is_astring_char(spec.p[i]))
				i++;
			sect_add_field(s, a, spec.p + st, i - st);
		} else {
			return false;
		}
		if (i >= spec.len)
			return false;
		if (spec.p[i] == ')')
			return i + 1 == spec.len;
		if (spec.p[i] != ' ')
			return false;
		i++;
	}
}

static bool sect_parse(struct kstr spec, struct sect *s, struct arena *a)
{
	size_t i = 0;

	memset(s, 0, sizeof(*s));
	while (i < spec.len && spec.p[i] >= '0' && spec.p[i] <= '9') {
		if (spec.p[i] == '0' || s->npath == MIME_MAX_DEPTH)
			return false;
		uint64_t v = 0;
		while (i < spec.len && spec.p[i] >= '0' && spec.p[i] <= '9') {
			v = v * 10 + (uint64_t)(spec.p[i] - '0');
			if (v > UINT32_MAX)
				return false;
			i++;
		}
		s->path[s->npath++] = (uint32_t)v;
		if (i == spec.len)
			return true;
		if (spec.p[i] != '.' || ++i == spec.len)
			return false;
	}
	struct kstr rest = kstr_make(spec.p + i, spec.len - i);
	if (rest.len == 0)
		return true;
	if (kstr_eq_ci(rest, "HEADER")) {
		s->kind = SECT_HEADER;
		return true;
	}
	if (kstr_eq_ci(rest, "TEXT")) {
		s->kind = SECT_TEXT;
		return true;
	}
	if (kstr_eq_ci(rest, "MIME")) {
		s->kind = SECT_MIME;
		return s->npath > 0;
	}
	if (kstr_has_prefix_ci(rest, "HEADER.FIELDS.NOT ")) {
		s->kind = SECT_FIELDS_NOT;
		return sect_parse_fields(spec, i + 18, s, a);
	}
	if (kstr_has_prefix_ci(rest, "HEADER.FIELDS ")) {
		s->kind = SECT_FIELDS;
		return sect_parse_fields(spec, i + 14, s, a);
	}
	return false;
}

bool mime_section_is_valid(struct kstr spec)
{
	struct sect s;
	return sect_parse(spec, &s, NULL);
}

/* The entity a part path names (see RFC 3501 6.4.5): numbers index the
 * children of a multipart; a message/rfc822 part opens its message; the
 * body of a message that is not multipart is its part 1. */
static const struct part *sect_find(const struct part *root,
				    const uint32_t *path, unsigned int n)
{
	const struct part *e = root;
	bool msgview = true;

	for (unsigned int i = 0; i < n; i++) {
		if (!msgview && e->kind == PART_MESSAGE) {
			e = e->children;
			msgview = true;
		}
		if (e->kind == PART_MULTIPART) {
			const struct part *ch = e->children;
			for (uint32_t k = 1; ch != NULL && k < path[i]; k++)
				ch = ch->next;
			if (ch == NULL)
				return NULL;
			e = ch;
		} else if (!msgview || path[i] != 1) {
			return NULL;
		}
		msgview = false;
	}
	return e;
}

static int out_range(struct buf *out, const uint8_t *m, size_t s, size_t e)
{
	if (e <= s)
		return 0;
	return buf_append(out, m + s, e - s) ? 0 : KURA_ETOOBIG;
}

static int out_fields(struct buf *out, const uint8_t *m, size_t hs, size_t he,
		      const struct sect *s)
{
	struct fiter it = { m, hs, he };
	struct kstr name, value, whole;

	while (fiter_next(&it, &name, &value, &whole)) {
		bool match = false;
		for (size_t i = 0; i < s->nfields && !match; i++)
			match = kstr_ieq(name, s->fields[i]);
		if (match == (s->kind == SECT_FIELDS) &&
		    !buf_append_kstr(out, whole))
			return KURA_ETOOBIG;
	}
	return buf_append(out, "\r\n", 2) ? 0 : KURA_ETOOBIG;
}

int mime_section(const uint8_t *msg, size_t len, struct kstr spec,
		 struct buf *out)
{
	struct arena *a = arena_create(4096);
	struct sect s;
	int ret = 0;

	if (msg == NULL)
		msg = (const uint8_t *)"";
	if (!sect_parse(spec, &s, a)) {
		arena_destroy(&a);
		return KURA_EINVAL;
	}
	if (s.npath == 0 && s.kind == SECT_ALL) {
		ret = out_range(out, msg, 0, len);
	} else if (s.npath == 0) {
		/* Only the top header matters: no need to look at the
		 * body. */
		struct pctx c = { .m = msg, .len = len, .arena = a };
		struct part top;
		memset(&top, 0, sizeof(top));
		parse_header(&c, &top);
		if (s.kind == SECT_HEADER)
			ret = out_range(out, msg, 0, top.hdr_end);
		else if (s.kind == SECT_TEXT)
			ret = out_range(out, msg, top.hdr_end, len);
		else
			ret = out_fields(out, msg, 0, top.hdr_end, &s);
	} else {
		const struct part *e = sect_find(tree_parse(msg, len, a), s.path,
						 s.npath);
		if (e != NULL && s.kind != SECT_ALL && s.kind != SECT_MIME) {
			/* HEADER / TEXT of a part: only message/rfc822 has
			 * them. */
			e = e->kind == PART_MESSAGE ? e->children : NULL;
		}
		if (e == NULL)
			ret = 0;
		else if (s.kind == SECT_ALL)
			ret = out_range(out, msg, e->body_start, e->body_end);
		else if (s.kind == SECT_MIME || s.kind == SECT_HEADER)
			ret = out_range(out, msg, e->hdr_start, e->hdr_end);
		else if (s.kind == SECT_TEXT)
			ret = out_range(out, msg, e->body_start, e->body_end);
		else
			ret = out_fields(out, msg, e->hdr_start, e->hdr_end, &s);
	}
	arena_destroy(&a);
	return ret;
}

enum cte_kind {
	CTE_IDENTITY = 0,
	CTE_BASE64,
	CTE_QP,
	CTE_UNKNOWN,
};

static enum cte_kind cte_of(struct arena *a, const struct part *pt)
{
	struct kstr cte = part_cte(a, pt);
	if (cte.p == NULL || cte.len == 0 || kstr_eq_ci(cte, "7bit") ||
	    kstr_eq_ci(cte, "8bit") || kstr_eq_ci(cte, "binary"))
		return CTE_IDENTITY;
	if (kstr_eq_ci(cte, "base64"))
		return CTE_BASE64;
	if (kstr_eq_ci(cte, "quoted-printable"))
		return CTE_QP;
	return CTE_UNKNOWN;
}

int mime_section_binary(const uint8_t *msg, size_t len, struct kstr spec,
			struct buf *out)
{
	struct arena *a;
	struct sect s;
	int ret = 0;

	if (msg == NULL)
		msg = (const uint8_t *)"";
	if (!sect_parse(spec, &s, NULL) || s.kind != SECT_ALL)
		return KURA_EINVAL;
	if (s.npath == 0)
		return out_range(out, msg, 0, len);
	a = arena_create(4096);
	const struct part *e = sect_find(tree_parse(msg, len, a), s.path, s.npath);
	if (e != NULL) {
		struct kstr body = kstr_make(msg + e->body_start,
					     e->body_end - e->body_start);
		switch (e->kind == PART_MULTIPART ? CTE_IDENTITY : cte_of(a, e)) {
		case CTE_IDENTITY:
			ret = out_range(out, msg, e->body_start, e->body_end);
			break;
		case CTE_BASE64:
			ret = mime_base64_decode(body, out) ? 0 : KURA_ETOOBIG;
			break;
		case CTE_QP:
			ret = mime_qp_decode(body, out) ? 0 : KURA_ETOOBIG;
			break;
		case CTE_UNKNOWN:
			ret = KURA_ECORRUPT;
			break;
		}
	}
	arena_destroy(&a);
	return ret;
}

/* ---- search ---- */

struct sctx {
	const uint8_t *m;
	struct arena *a;
	struct kstr needle;	/* folded */
	bool with_headers;
	struct buf b1, b2, b3;
};

static bool folded_contains(struct sctx *s, struct kstr text)
{
	buf_reset(&s->b3);
	utf8_casefold(text, &s->b3);
	struct kstr f = bview(&s->b3);
	return memmem(f.p, f.len, s->needle.p, s->needle.len) != NULL;
}

static bool search_header_block(struct sctx *s, size_t hs, size_t he)
{
	struct fiter it = { s->m, hs, he };
	struct kstr name, value, whole;

	buf_reset(&s->b1);
	while (fiter_next(&it, &name, &value, &whole)) {
		buf_append_kstr(&s->b1, name);
		buf_append(&s->b1, ": ", 2);
		mime_header_decode(trim_ws(value), &s->b1);
		buf_append(&s->b1, "\n", 1);
	}
	return folded_contains(s, bview(&s->b1));
}

static bool search_leaf(struct sctx *s, const struct part *pt)
{
	if (pt->opaque || !(part_is(pt, "text", NULL) || part_is(pt, "message", NULL)))
		return false;
	struct kstr body = kstr_make(s->m + pt->body_start,
				     pt->body_end - pt->body_start);
	buf_reset(&s->b1);
	switch (cte_of(s->a, pt)) {
	case CTE_BASE64:
		mime_base64_decode(body, &s->b1);
		body = bview(&s->b1);
		break;
	case CTE_QP:
		mime_qp_decode(body, &s->b1);
		body = bview(&s->b1);
		break;
	default:
		break;
	}
	struct kstr cs = param_get(pt, "charset");
	if (cs.p != NULL && cs.len > 0) {
		buf_reset(&s->b2);
		mime_charset_to_utf8(cs, body, &s->b2);
		body = bview(&s->b2);
	}
	return folded_contains(s, body);
}

static bool search_walk(struct sctx *s, const struct part *pt, bool msg_hdr,
			bool root)
{
	if ((s->with_headers || (msg_hdr && !root)) &&
	    search_header_block(s, pt->hdr_start, pt->hdr_end))
		return true;
	switch (pt->kind) {
	case PART_MULTIPART:
		for (const struct part *ch = pt->children; ch != NULL; ch = ch->next) {
			if (search_walk(s, ch, false, false))
				return true;
		}
		return false;
	case PART_MESSAGE:
		return search_walk(s, pt->children, true, false);
	case PART_LEAF:
		break;
	}
	return search_leaf(s, pt);
}

bool mime_search_text(const uint8_t *msg, size_t len, struct kstr needle,
		      bool with_headers)
{
	struct sctx s;
	struct buf nf;
	bool found;

	if (needle.len == 0)
		return true;
	if (msg == NULL)
		msg = (const uint8_t *)"";
	buf_init(&nf, 0);
	utf8_casefold(needle, &nf);
	memset(&s, 0, sizeof(s));
	s.m = msg;
	s.a = arena_create(16384);
	s.needle = bview(&nf);
	s.with_headers = with_headers;
	buf_init(&s.b1, 0);
	buf_init(&s.b2, 0);
	buf_init(&s.b3, 0);
	found = search_walk(&s, tree_parse(msg, len, s.a), true, true);
	buf_deinit(&s.b1);
	buf_deinit(&s.b2);
	buf_deinit(&s.b3);
	buf_deinit(&nf);
	arena_destroy(&s.a);
	return found;
}

/* End of the top header (blank line included), without a tree. */
static size_t top_header_end(const uint8_t *msg, size_t len)
{
	struct pctx c = { .m = msg, .len = len };
	struct part top;
	memset(&top, 0, sizeof(top));
	parse_header(&c, &top);
	return top.hdr_end;
}

bool mime_search_header(const uint8_t *msg, size_t len, struct kstr name,
			struct kstr needle)
{
	struct buf nf, dec, fold;
	struct kstr fname, value, whole;
	bool found = false;

	if (msg == NULL)
		msg = (const uint8_t *)"";
	struct fiter it = { msg, 0, top_header_end(msg, len) };
	buf_init(&nf, 0);
	buf_init(&dec, 0);
	buf_init(&fold, 0);
	utf8_casefold(needle, &nf);
	while (!found && fiter_next(&it, &fname, &value, &whole)) {
		if (!kstr_ieq(fname, name))
			continue;
		if (needle.len == 0) {
			found = true;
			break;
		}
		buf_reset(&dec);
		buf_reset(&fold);
		mime_header_decode(trim_ws(value), &dec);
		utf8_casefold(bview(&dec), &fold);
		struct kstr f = bview(&fold), n = bview(&nf);
		found = memmem(f.p, f.len, n.p, n.len) != NULL;
	}
	buf_deinit(&nf);
	buf_deinit(&dec);
	buf_deinit(&fold);
	return found;
}

bool mime_header_decoded(const uint8_t *msg, size_t len, struct kstr name,
			 struct buf *out)
{
	struct kstr fname, value, whole;

	if (msg == NULL)
		msg = (const uint8_t *)"";
	struct fiter it = { msg, 0, top_header_end(msg, len) };
	while (fiter_next(&it, &fname, &value, &whole)) {
		if (kstr_ieq(fname, name)) {
			mime_header_decode(trim_ws(value), out);
			return true;
		}
	}
	return false;
}
