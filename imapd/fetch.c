#include "imapd/fetch.h"

#include <string.h>

#include "imapd/imap_util.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/util.h"

enum fetch_att {
	FA_ENVELOPE = 0,
	FA_FLAGS,
	FA_INTERNALDATE,
	FA_RFC822,
	FA_RFC822_HEADER,
	FA_RFC822_SIZE,
	FA_RFC822_TEXT,
	FA_BODY,
	FA_BODYSTRUCTURE,
	FA_UID,
	FA_MODSEQ,
	FA_SECTION,		/* BODY[...] / BODY.PEEK[...] */
	FA_BINARY,		/* BINARY[...] / BINARY.PEEK[...] */
	FA_BINARY_SIZE,		/* BINARY.SIZE[...] */
};

struct fetch_item {
	enum fetch_att att;
	bool partial;
	uint32_t origin, length;
	struct kstr spec;	/* section spec handed to mime */
	struct kstr name;	/* as written in the response */
};

struct fetch_items {
	struct fetch_item *items;
	size_t n, cap;
	bool need_message;
	bool set_seen;
	bool has_flags;
	bool has_modseq;
};

struct simple_att {
	const char *name;
	enum fetch_att att;
	bool need_message;
	bool set_seen;
};

static const struct simple_att simple_atts[] = {
	{ "ENVELOPE", FA_ENVELOPE, false, false },
	{ "FLAGS", FA_FLAGS, false, false },
	{ "INTERNALDATE", FA_INTERNALDATE, false, false },
	{ "RFC822", FA_RFC822, true, true },
	{ "RFC822.HEADER", FA_RFC822_HEADER, true, false },
	{ "RFC822.SIZE", FA_RFC822_SIZE, false, false },
	{ "RFC822.TEXT", FA_RFC822_TEXT, true, true },
	{ "BODY", FA_BODY, false, false },
	{ "BODYSTRUCTURE", FA_BODYSTRUCTURE, false, false },
	{ "UID", FA_UID, false, false },
	{ "MODSEQ", FA_MODSEQ, false, false },
};

struct fparse {
	struct arena *a;
	struct fetch_items *it;
	const char *error;
};

static int fail(struct fparse *fp, const char *why)
{
	fp->error = why;
	return KURA_EINVAL;
}

static bool parse_u32(struct kstr s, uint32_t *v_r)
{
	uint64_t v;

	if (!kstr_to_u64(s, &v) || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* section-part = nz-number *("." nz-number), or empty (RFC 3516
 * section-binary). */
static bool binary_part_is_valid(struct kstr s)
{
	size_t i = 0, parts = 0;

	if (s.len == 0)
		return true;
	while (i < s.len) {
		size_t start = i;
		uint32_t v;
		while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9')
			i++;
		if (i == start || s.p[start] == '0' ||
		    !parse_u32(kstr_make(s.p + start, i - start), &v))
			return false;
		if (++parts > MIME_MAX_DEPTH)
			return false;
		if (i < s.len) {
			if (s.p[i] != '.' || i + 1 == s.len)
				return false;
			i++;
		}
	}
	return true;
}

static void add_item(struct fparse *fp, const struct fetch_item *item)
{
	struct fetch_items *it = fp->it;

	/* A repeated item is answered once. */
	for (size_t i = 0; i < it->n; i++) {
		if (it->items[i].att == item->att &&
		    kstr_eq(it->items[i].name, item->name))
			return;
	}
	/* Room for the implicit UID and MODSEQ is kept at parse time. */
	if (it->n + 3 >= it->cap) {
		size_t ncap = it->cap * 2 + 8;
		struct fetch_item *n = arena_alloc(fp->a, ncap * sizeof(*n));
		if (it->n > 0)
			memcpy(n, it->items, it->n * sizeof(*n));
		it->items = n;
		it->cap = ncap;
	}
	it->items[it->n++] = *item;
	if (item->att == FA_FLAGS)
		it->has_flags = true;
	if (item->att == FA_MODSEQ)
		it->has_modseq = true;
}

/* UID FETCH answers UID first unless the client placed it. */
static void add_uid_first(struct fetch_items *it)
{
	for (size_t i = 0; i < it->n; i++) {
		if (it->items[i].att == FA_UID)
			return;
	}
	/* add_item always leaves room for one more. */
	memmove(it->items + 1, it->items, it->n * sizeof(*it->items));
	it->items[0] = (struct fetch_item){
		.att = FA_UID,
		.name = KSTR_LIT("UID"),
	};
	it->n++;
}

static void add_simple(struct fparse *fp, enum fetch_att att)
{
	for (size_t i = 0; i < ARRAY_SIZE(simple_atts); i++) {
		if (simple_atts[i].att == att) {
			struct fetch_item item = {
				.att = att,
				.name = kstr_cstr(simple_atts[i].name),
			};
			add_item(fp, &item);
			if (simple_atts[i].need_message)
				fp->it->need_message = true;
			if (simple_atts[i].set_seen)
				fp->it->set_seen = true;
			return;
		}
	}
}

/* "BODY[spec]<o.l>", "BODY.PEEK[...]", "BINARY[...]", "BINARY.PEEK[...]",
 * "BINARY.SIZE[...]": one atom, as the parser delivers it. */
static int parse_section_item(struct fparse *fp, struct kstr s, size_t lb)
{
	struct kstr prefix = kstr_make(s.p, lb);
	struct fetch_item item = { .att = FA_SECTION };
	bool peek = false, binary = false;
	size_t rb = s.len;
	struct buf name;

	if (kstr_eq_ci(prefix, "BODY")) {
		item.att = FA_SECTION;
	} else if (kstr_eq_ci(prefix, "BODY.PEEK")) {
		item.att = FA_SECTION;
		peek = true;
	} else if (kstr_eq_ci(prefix, "BINARY")) {
		item.att = FA_BINARY;
		binary = true;
	} else if (kstr_eq_ci(prefix, "BINARY.PEEK")) {
		item.att = FA_BINARY;
		binary = true;
		peek = true;
	} else if (kstr_eq_ci(prefix, "BINARY.SIZE")) {
		item.att = FA_BINARY_SIZE;
		binary = true;
		peek = true;
	} else {
		return fail(fp, "Unknown FETCH item");
	}

	/* The section ends at the last ']'; what follows is the partial. */
	for (size_t i = s.len; i > lb + 1; i--) {
		if (s.p[i - 1] == ']') {
			rb = i - 1;
			break;
		}
	}
	if (rb == s.len)
		return fail(fp, "Missing ] in FETCH section");
	item.spec = kstr_make(s.p + lb + 1, rb - lb - 1);

	if (rb + 1 < s.len) {
		struct kstr p = kstr_make(s.p + rb + 1, s.len - rb - 1);
		const uint8_t *dot;

		if (item.att == FA_BINARY_SIZE)
			return fail(fp, "BINARY.SIZE takes no partial");
		if (p.len < 5 || p.p[0] != '<' || p.p[p.len - 1] != '>')
			return fail(fp, "Invalid partial in FETCH item");
		dot = memchr(p.p, '.', p.len);
		if (dot == NULL ||
		    !parse_u32(kstr_make(p.p + 1, (size_t)(dot - p.p) - 1),
			       &item.origin) ||
		    !parse_u32(kstr_make(dot + 1,
					 (size_t)(p.p + p.len - 1 - dot) - 1),
			       &item.length) ||
		    item.length == 0)
			return fail(fp, "Invalid partial in FETCH item");
		item.partial = true;
	}

	if (binary ? !binary_part_is_valid(item.spec) :
		     !mime_section_is_valid(item.spec))
		return fail(fp, "Invalid section in FETCH item");

	/* Response name: keywords upper-cased, a HEADER.FIELDS list echoed
	 * as the client wrote it. */
	buf_init(&name, 0);
	buf_append_str(&name, item.att == FA_SECTION ? "BODY[" :
			      item.att == FA_BINARY ? "BINARY[" :
						       "BINARY.SIZE[");
	{
		const uint8_t *paren = memchr(item.spec.p, '(', item.spec.len);
		size_t upto = paren != NULL ? (size_t)(paren - item.spec.p) :
					      item.spec.len;
		uint8_t *w = buf_reserve(&name, item.spec.len + 24);
		for (size_t i = 0; i < item.spec.len; i++) {
			uint8_t ch = item.spec.p[i];
			if (i < upto && ch >= 'a' && ch <= 'z')
				ch = (uint8_t)(ch - 'a' + 'A');
			w[i] = ch;
		}
		buf_commit(&name, item.spec.len);
	}
	buf_append_str(&name, "]");
	if (item.partial)
		buf_printf(&name, "<%u>", item.origin);
	item.name = arena_kstr(fp->a, buf_kstr(&name));
	buf_deinit(&name);

	add_item(fp, &item);
	fp->it->need_message = true;
	if (!peek)
		fp->it->set_seen = true;
	return 0;
}

static int parse_item(struct fparse *fp, const struct imap_arg *arg)
{
	struct kstr s;
	const uint8_t *lb;

	if (arg->type != IMAP_ARG_ATOM)
		return fail(fp, "FETCH item expected");
	s = arg->str;
	lb = memchr(s.p, '[', s.len);
	if (lb != NULL)
		return parse_section_item(fp, s, (size_t)(lb - s.p));
	for (size_t i = 0; i < ARRAY_SIZE(simple_atts); i++) {
		if (kstr_eq_ci(s, simple_atts[i].name)) {
			add_simple(fp, simple_atts[i].att);
			return 0;
		}
	}
	return fail(fp, "Unknown FETCH item");
}

int fetch_parse(struct arena *a, const struct imap_arg *arg, bool uid_cmd,
		struct fetch_items **items_r, const char **error_r)
{
	struct fparse fp = { .a = a };
	int ret = 0;

	*items_r = NULL;
	*error_r = NULL;
	fp.it = arena_zalloc(a, sizeof(*fp.it));

	if (arg->type == IMAP_ARG_LIST) {
		if (arg->list_count == 0) {
			*error_r = "Empty FETCH item list";
			return KURA_EINVAL;
		}
		for (size_t i = 0; i < arg->list_count && ret == 0; i++)
			ret = parse_item(&fp, &arg->list[i]);
	} else if (arg->type == IMAP_ARG_ATOM && kstr_eq_ci(arg->str, "ALL")) {
		add_simple(&fp, FA_FLAGS);
		add_simple(&fp, FA_INTERNALDATE);
		add_simple(&fp, FA_RFC822_SIZE);
		add_simple(&fp, FA_ENVELOPE);
	} else if (arg->type == IMAP_ARG_ATOM && kstr_eq_ci(arg->str, "FAST")) {
		add_simple(&fp, FA_FLAGS);
		add_simple(&fp, FA_INTERNALDATE);
		add_simple(&fp, FA_RFC822_SIZE);
	} else if (arg->type == IMAP_ARG_ATOM && kstr_eq_ci(arg->str, "FULL")) {
		add_simple(&fp, FA_FLAGS);
		add_simple(&fp, FA_INTERNALDATE);
		add_simple(&fp, FA_RFC822_SIZE);
		add_simple(&fp, FA_ENVELOPE);
		add_simple(&fp, FA_BODY);
	} else {
		ret = parse_item(&fp, arg);
	}
	if (ret < 0) {
		*error_r = fp.error;
		return ret;
	}
	if (uid_cmd)
		add_uid_first(fp.it);
	*items_r = fp.it;
	return 0;
}

bool fetch_items_need_message(const struct fetch_items *it)
{
	return it->need_message;
}

bool fetch_items_set_seen(const struct fetch_items *it)
{
	return it->set_seen;
}

bool fetch_items_has_flags(const struct fetch_items *it)
{
	return it->has_flags;
}

bool fetch_items_has_modseq(const struct fetch_items *it)
{
	return it->has_modseq;
}

void fetch_items_add_modseq(struct fetch_items *it)
{
	if (it->has_modseq)
		return;
	/* add_item always leaves room for UID and this one. */
	it->items[it->n++] = (struct fetch_item){
		.att = FA_MODSEQ,
		.name = KSTR_LIT("MODSEQ"),
	};
	it->has_modseq = true;
}

/* buf_kstr() of a buffer that never allocated would offset NULL. */
static struct kstr buf_view(const struct buf *b)
{
	return b->data != NULL ? buf_kstr(b) : kstr_make(NULL, 0);
}

/* Output with a sticky failure flag: after the first refused append
 * nothing more is written, and the caller rolls back. */
struct wr {
	struct buf *b;
	bool ok;
};

static void w_bytes(struct wr *w, const void *p, size_t n)
{
	if (w->ok && n > 0 && !buf_append(w->b, p, n))
		w->ok = false;
}

static void w_str(struct wr *w, const char *s)
{
	w_bytes(w, s, strlen(s));
}

static void w_kstr(struct wr *w, struct kstr s)
{
	w_bytes(w, s.p, s.len);
}

static void w_u64(struct wr *w, uint64_t v)
{
	if (w->ok && !buf_printf(w->b, "%llu", (unsigned long long)v))
		w->ok = false;
}

/* Literal {n} (or literal8 ~{n}) with its bytes. */
static void w_literal(struct wr *w, struct kstr s, bool literal8)
{
	/* NUL is not a CHAR8: content that holds one (stored from a BINARY
	 * APPEND) can only travel as a literal8 (RFC 3516). */
	if (!literal8 && s.len > 0 && memchr(s.p, 0, s.len) != NULL)
		literal8 = true;
	if (w->ok && !buf_printf(w->b, "%s{%zu}\r\n", literal8 ? "~" : "",
				 s.len))
		w->ok = false;
	w_kstr(w, s);
}

static void w_flags(struct wr *w, struct buf *small, const struct mailbox *mb,
		    const struct index_msg *m, bool recent)
{
	buf_reset(small);
	index_flags_write(small, mb, m, recent);
	w_str(w, "(");
	w_kstr(w, buf_view(small));
	w_str(w, ")");
}

static struct kstr apply_partial(const struct fetch_item *item, struct kstr s)
{
	if (!item->partial)
		return s;
	if (item->origin >= s.len)
		return kstr_make(s.p, 0);
	size_t avail = s.len - item->origin;
	return kstr_make(s.p + item->origin,
			 KURA_MIN(avail, (size_t)item->length));
}

/* The bytes of a body section: a view into msg for the whole message,
 * else extracted into tmp. */
static int section_bytes(struct kstr msg, struct kstr spec, bool binary,
			 struct buf *tmp, struct kstr *r)
{
	int ret;

	if (spec.len == 0) {
		*r = msg;
		return 0;
	}
	buf_reset(tmp);
	ret = binary ? mime_section_binary(msg.p, msg.len, spec, tmp) :
		       mime_section(msg.p, msg.len, spec, tmp);
	if (ret < 0)
		return ret;
	*r = buf_view(tmp);
	return 0;
}

static const char fallback_envelope[] =
	"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

int fetch_render(struct buf *out, const struct fetch_items *it,
		 const struct mailbox *mb, const struct index_msg *m,
		 uint32_t msn, bool recent, bool add_flags, struct kstr msg)
{
	const size_t start_used = buf_used(out);
	struct wr w = { out, true };
	struct buf tmp, small;
	struct mime_info info;
	bool have_info = false;
	const char *envelope = NULL, *body = NULL, *bodystructure = NULL;
	int ret = 0;

	buf_init(&tmp, out->max);
	/* Writers that cannot report a full buffer go through this
	 * unbounded scratch buffer first. */
	buf_init(&small, 0);
	if (m->meta != NULL) {
		envelope = m->meta->envelope;
		body = m->meta->body;
		bodystructure = m->meta->bodystructure;
	}
	if ((envelope == NULL || body == NULL || bodystructure == NULL) &&
	    msg.p != NULL) {
		/* Meta missing (old index records): compute it from the
		 * bytes when we have them. */
		mime_parse(msg.p, msg.len, &info);
		have_info = true;
		if (envelope == NULL)
			envelope = info.envelope;
		if (body == NULL)
			body = info.body;
		if (bodystructure == NULL)
			bodystructure = info.bodystructure;
	}

	if (w.ok && !buf_printf(out, "* %u FETCH (", msn))
		w.ok = false;
	for (size_t i = 0; i < it->n && w.ok && ret == 0; i++) {
		const struct fetch_item *item = &it->items[i];
		struct kstr bytes;

		if (i > 0)
			w_str(&w, " ");
		w_kstr(&w, item->name);
		w_str(&w, " ");
		switch (item->att) {
		case FA_ENVELOPE:
			w_str(&w, envelope != NULL ? envelope :
						     fallback_envelope);
			break;
		case FA_BODY:
		case FA_BODYSTRUCTURE: {
			const char *v = item->att == FA_BODY ? body :
							       bodystructure;
			if (v != NULL) {
				w_str(&w, v);
			} else if (w.ok &&
				   !buf_printf(out, "(\"text\" \"plain\" NIL NIL "
					       "NIL \"7bit\" %llu 0)",
					       (unsigned long long)m->size)) {
				w.ok = false;
			}
			break;
		}
		case FA_FLAGS:
			w_flags(&w, &small, mb, m, recent);
			break;
		case FA_INTERNALDATE:
			buf_reset(&small);
			imap_datetime_write(&small, m->internaldate,
					    m->idate_tz_min);
			w_kstr(&w, buf_view(&small));
			break;
		case FA_RFC822_SIZE:
			w_u64(&w, m->size);
			break;
		case FA_UID:
			w_u64(&w, m->uid);
			break;
		case FA_MODSEQ:
			w_str(&w, "(");
			w_u64(&w, m->modseq);
			w_str(&w, ")");
			break;
		case FA_RFC822:
			w_literal(&w, msg, false);
			break;
		case FA_RFC822_HEADER:
		case FA_RFC822_TEXT:
			ret = section_bytes(msg, item->att == FA_RFC822_HEADER ?
						 KSTR_LIT("HEADER") :
						 KSTR_LIT("TEXT"),
					    false, &tmp, &bytes);
			if (ret == 0)
				w_literal(&w, bytes, false);
			break;
		case FA_SECTION:
			ret = section_bytes(msg, item->spec, false, &tmp,
					    &bytes);
			if (ret == 0)
				w_literal(&w, apply_partial(item, bytes),
					  false);
			break;
		case FA_BINARY:
			ret = section_bytes(msg, item->spec, true, &tmp,
					    &bytes);
			if (ret == 0) {
				bytes = apply_partial(item, bytes);
				w_literal(&w, bytes,
					  bytes.len > 0 &&
					  memchr(bytes.p, 0, bytes.len) != NULL);
			}
			break;
		case FA_BINARY_SIZE:
			ret = section_bytes(msg, item->spec, true, &tmp,
					    &bytes);
			if (ret == 0)
				w_u64(&w, bytes.len);
			break;
		}
	}
	if (add_flags && !it->has_flags && ret == 0) {
		w_str(&w, it->n > 0 ? " FLAGS " : "FLAGS ");
		w_flags(&w, &small, mb, m, recent);
	}
	w_str(&w, ")\r\n");

	if (have_info)
		mime_info_free(&info);
	buf_deinit(&tmp);
	buf_deinit(&small);
	if (ret == 0 && !w.ok)
		ret = KURA_ETOOBIG;
	if (ret < 0)
		out->len = out->pos + start_used;
	return ret;
}
