#include "imapd/sort.h"

#include <stdlib.h>
#include <string.h>

#include "imapd/envelope.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/util.h"

enum sort_kind {
	SK_ARRIVAL = 0,
	SK_CC,
	SK_DATE,
	SK_FROM,
	SK_SIZE,
	SK_SUBJECT,
	SK_TO,
	SK_DISPLAYFROM,
	SK_DISPLAYTO,
	SK_COUNT,
};

static const char *const sort_kind_names[SK_COUNT] = {
	[SK_ARRIVAL] = "ARRIVAL",
	[SK_CC] = "CC",
	[SK_DATE] = "DATE",
	[SK_FROM] = "FROM",
	[SK_SIZE] = "SIZE",
	[SK_SUBJECT] = "SUBJECT",
	[SK_TO] = "TO",
	[SK_DISPLAYFROM] = "DISPLAYFROM",
	[SK_DISPLAYTO] = "DISPLAYTO",
};

struct sort_crit {
	enum sort_kind kind;
	bool reverse;
};

struct sort_criteria {
	size_t n;
	struct sort_crit c[SORT_MAX_CRITERIA];
};

static bool kind_is_string(enum sort_kind k)
{
	return k != SK_ARRIVAL && k != SK_DATE && k != SK_SIZE;
}

int sort_parse_criteria(struct arena *a, const struct imap_arg *list,
			struct sort_criteria **crit_r, const char **error_r)
{
	struct sort_criteria *c;
	bool reverse = false;

	*crit_r = NULL;
	if (list == NULL || list->type != IMAP_ARG_LIST) {
		*error_r = "Sort criteria must be a parenthesized list";
		return KURA_EINVAL;
	}
	if (list->list_count == 0) {
		*error_r = "Empty sort criteria";
		return KURA_EINVAL;
	}
	c = arena_zalloc(a, sizeof(*c));
	for (size_t i = 0; i < list->list_count; i++) {
		const struct imap_arg *arg = &list->list[i];
		int kind = -1;

		if (arg->type != IMAP_ARG_ATOM) {
			*error_r = "Invalid sort criterion";
			return KURA_EINVAL;
		}
		if (kstr_eq_ci(arg->str, "REVERSE")) {
			if (reverse) {
				*error_r = "REVERSE must be followed by a sort key";
				return KURA_EINVAL;
			}
			reverse = true;
			continue;
		}
		for (int k = 0; k < SK_COUNT; k++) {
			if (kstr_eq_ci(arg->str, sort_kind_names[k])) {
				kind = k;
				break;
			}
		}
		if (kind < 0) {
			*error_r = "Unknown sort criterion";
			return KURA_EINVAL;
		}
		if (c->n == SORT_MAX_CRITERIA) {
			*error_r = "Too many sort criteria";
			return KURA_EINVAL;
		}
		c->c[c->n].kind = (enum sort_kind)kind;
		c->c[c->n].reverse = reverse;
		c->n++;
		reverse = false;
	}
	if (reverse) {
		*error_r = "REVERSE must be followed by a sort key";
		return KURA_EINVAL;
	}
	*crit_r = c;
	return 0;
}

bool sort_criteria_uses_display(const struct sort_criteria *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->c[i].kind == SK_DISPLAYFROM ||
		    c->c[i].kind == SK_DISPLAYTO)
			return true;
	}
	return false;
}

/* ---- Keys ---- */

/* NULL + 0 (an empty buf's view) is undefined behaviour UBSan reports. */
static struct kstr bview(const struct buf *b)
{
	if (b->data == NULL)
		return kstr_make("", 0);
	return kstr_make(b->data + b->pos, b->len - b->pos);
}

static uint8_t ascii_lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static bool has_prefix_ci(const uint8_t *p, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	if (len < pl)
		return false;
	for (size_t i = 0; i < pl; i++) {
		if (ascii_lower(p[i]) != (uint8_t)prefix[i])
			return false;
	}
	return true;
}

/* subj-blob at p[s..e): "[" *BLOBCHAR "]" *WSP; its length or 0. */
static size_t match_blob(const uint8_t *p, size_t s, size_t e)
{
	size_t i = s + 1;

	if (s >= e || p[s] != '[')
		return 0;
	while (i < e && p[i] != '[' && p[i] != ']' && p[i] != 0)
		i++;
	if (i >= e || p[i] != ']')
		return 0;
	i++;
	while (i < e && p[i] == ' ')
		i++;
	return i - s;
}

/* subj-refwd: ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; length or 0.
 * Taking the "d" greedily loses nothing: after a bare "fw" a 'd' could
 * not go on to match. */
static size_t match_refwd(const uint8_t *p, size_t s, size_t e)
{
	size_t i = s;

	if (has_prefix_ci(p + s, e - s, "re")) {
		i += 2;
	} else if (has_prefix_ci(p + s, e - s, "fw")) {
		i += 2;
		if (i < e && ascii_lower(p[i]) == 'd')
			i++;
	} else {
		return 0;
	}
	while (i < e && p[i] == ' ')
		i++;
	i += match_blob(p, i, e);
	if (i < e && p[i] == ':')
		return i + 1 - s;
	return 0;
}

/* Steps 2-6 of RFC 5256 2.1 on normalised text (only SP as white
 * space); narrows [*s_io, *e_io). */
static void extract_base(const uint8_t *p, size_t *s_io, size_t *e_io,
			 bool *is_reply)
{
	size_t s = *s_io, e = *e_io;

	for (;;) {
		/* (2) trailers */
		while (e > s) {
			if (p[e - 1] == ' ') {
				e--;
			} else if (e - s >= 5 &&
				   has_prefix_ci(p + e - 5, 5, "(fwd)")) {
				e -= 5;
				*is_reply = true;
			} else {
				break;
			}
		}
		/* A leader that failed at s because the chain of blobs from
		 * s ends in something that is not a subj-refwd fails the same
		 * way from every later blob of that chain; remembering the
		 * chain keeps "[a][a][a]...x" linear instead of quadratic. */
		size_t fail_from = SIZE_MAX, fail_to = 0;
		bool changed;
		do {
			changed = false;
			/* (3) leaders */
			while (s < e) {
				if (p[s] == ' ') {
					s++;
					changed = true;
					continue;
				}
				if (s >= fail_from && s <= fail_to)
					break;
				size_t i = s, b;
				while ((b = match_blob(p, i, e)) > 0)
					i += b;
				size_t r = match_refwd(p, i, e);
				if (r == 0) {
					fail_from = s;
					fail_to = i;
					break;
				}
				s = i + r;
				*is_reply = true;
				changed = true;
			}
			/* (4) one blob, if a non-empty base remains */
			size_t b = match_blob(p, s, e);
			if (b > 0 && s + b < e) {
				s += b;
				changed = true;
			}
		} while (changed);
		/* (6) [fwd: ... ] */
		if (e - s >= 6 && has_prefix_ci(p + s, e - s, "[fwd:") &&
		    p[e - 1] == ']') {
			s += 5;
			e -= 1;
			*is_reply = true;
			continue;
		}
		break;
	}
	*s_io = s;
	*e_io = e;
}

void sort_base_subject(struct kstr raw, struct buf *out, bool *is_reply_r)
{
	struct buf dec;
	bool is_reply = false;

	if (is_reply_r != NULL)
		*is_reply_r = false;
	if (raw.p == NULL || raw.len == 0)
		return;
	if (raw.len > SORT_MAX_SUBJECT)
		raw.len = SORT_MAX_SUBJECT;
	buf_init(&dec, 0);
	/* (1) */
	mime_header_decode(raw, &dec);
	struct kstr d = bview(&dec);
	uint8_t *p = xmalloc(d.len + 1);
	size_t n = 0;
	for (size_t i = 0; i < d.len; i++) {
		uint8_t c = d.p[i];
		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		if (c == ' ' && n > 0 && p[n - 1] == ' ')
			continue;
		p[n++] = c;
	}
	size_t s = 0, e = n;
	extract_base(p, &s, &e, &is_reply);
	buf_append(out, p + s, e - s);
	free(p);
	buf_deinit(&dec);
	if (is_reply_r != NULL)
		*is_reply_r = is_reply;
}

void sort_collate_key(struct kstr utf8, struct buf *out)
{
	size_t start = out->len;

	if (utf8.len == 0)
		return;
	utf8_casefold(utf8, out);
	for (size_t i = start; i < out->len; i++) {
		if (out->data[i] >= 'a' && out->data[i] <= 'z')
			out->data[i] -= 32;
	}
	if (out->len - start > SORT_MAX_KEY)
		out->len = start + SORT_MAX_KEY;
}

void sort_subject_key(struct kstr raw, struct buf *out, bool *is_reply_r)
{
	struct buf base;

	buf_init(&base, 0);
	sort_base_subject(raw, &base, is_reply_r);
	sort_collate_key(bview(&base), out);
	buf_deinit(&base);
}

int64_t sort_sent_date(const struct index_msg *m)
{
	if (m->meta != NULL && m->meta->sent_date >= 0)
		return m->meta->sent_date;
	return m->internaldate;
}

/* The addr-mailbox without the quotes of a quoted local part: the
 * index keeps them ("\"john smith\""), a sort by local part should not
 * put every quoted one first. */
static void mailbox_unquoted(struct kstr mbx, struct buf *out)
{
	if (mbx.len == 0 || mbx.p[0] != '"') {
		buf_append(out, mbx.p, mbx.len);
		return;
	}
	for (size_t i = 0; i < mbx.len; i++) {
		uint8_t c = mbx.p[i];
		if (c == '"')
			continue;
		if (c == '\\' && i + 1 < mbx.len)
			c = mbx.p[++i];
		buf_append(out, &c, 1);
	}
}

static bool is_blank(struct kstr s)
{
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] != ' ' && s.p[i] != '\t')
			return false;
	}
	return true;
}

/* Text of an address key into tmp (not yet collated). */
static void address_text(const struct envelope *env, enum envelope_list l,
			 bool display, struct buf *tmp)
{
	const struct envelope_addr *ad = &env->first[l];

	if (env->naddrs[l] == 0)
		return;
	if (!display) {
		if (ad->mailbox.p != NULL)
			mailbox_unquoted(ad->mailbox, tmp);
		return;
	}
	if (ad->name.p != NULL) {
		size_t start = tmp->len;
		mime_header_decode(ad->name, tmp);
		if (tmp->len > start &&
		    !is_blank(kstr_make(tmp->data + start, tmp->len - start)))
			return;
		tmp->len = start;
	}
	if (ad->mailbox.p != NULL) {
		mailbox_unquoted(ad->mailbox, tmp);
		if (ad->host.p != NULL) {
			buf_append(tmp, "@", 1);
			buf_append(tmp, ad->host.p, ad->host.len);
		}
	}
}

/* ---- Sorting ---- */

/* A key of one kind for one message: a number, or bytes [off, off+len)
 * of the key pool (offsets, since the pool moves while it grows). */
struct skey {
	int64_t num;
	size_t off, len;
};

struct sitem {
	uint32_t uid;
	size_t idx;
};

struct sctx {
	const struct sort_criteria *c;
	int slot[SK_COUNT];	/* kind -> column in keys, -1: unused */
	size_t nslots;
	const struct skey *keys;
	const uint8_t *pool;
};

static const struct index_msg *find_msg(const struct mailbox *mb,
					uint32_t uid)
{
	size_t lo = 0, hi = mb->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < mb->count && mb->msgs[lo].uid == uid)
		return &mb->msgs[lo];
	return NULL;
}

static int cmp_num(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_items(const void *pa, const void *pb, void *pctx)
{
	const struct sitem *a = pa, *b = pb;
	const struct sctx *x = pctx;

	for (size_t i = 0; i < x->c->n; i++) {
		const struct sort_crit *cr = &x->c->c[i];
		size_t col = (size_t)x->slot[cr->kind];
		const struct skey *ka = &x->keys[a->idx * x->nslots + col];
		const struct skey *kb = &x->keys[b->idx * x->nslots + col];
		int r;

		if (kind_is_string(cr->kind)) {
			size_t l = KURA_MIN(ka->len, kb->len);
			r = l > 0 ? memcmp(x->pool + ka->off, x->pool + kb->off,
					   l) : 0;
			if (r == 0)
				r = cmp_num((int64_t)ka->len, (int64_t)kb->len);
			else
				r = r < 0 ? -1 : 1;
		} else {
			r = cmp_num(ka->num, kb->num);
		}
		if (r != 0)
			return cr->reverse ? -r : r;
	}
	return cmp_num(a->uid, b->uid);
}

static void compute_keys(const struct sctx *x, const struct index_msg *m,
			 struct arena *a, struct buf *pool, struct buf *tmp,
			 struct skey *row)
{
	struct envelope env;
	bool have_env = false;

	memset(&env, 0, sizeof(env));
	for (int k = 0; k < SK_COUNT; k++) {
		if (x->slot[k] < 0)
			continue;
		struct skey *key = &row[x->slot[k]];
		if (!kind_is_string((enum sort_kind)k)) {
			if (m == NULL)
				key->num = 0;
			else if (k == SK_ARRIVAL)
				key->num = m->internaldate;
			else if (k == SK_DATE)
				key->num = sort_sent_date(m);
			else
				key->num = m->size > INT64_MAX ?
					   INT64_MAX : (int64_t)m->size;
			continue;
		}
		if (!have_env && m != NULL && m->meta != NULL &&
		    m->meta->envelope != NULL) {
			envelope_parse(a, kstr_cstr(m->meta->envelope), &env);
			have_env = true;
		}
		key->off = pool->len;
		buf_reset(tmp);
		switch ((enum sort_kind)k) {
		case SK_SUBJECT:
			sort_subject_key(env.subject, pool, NULL);
			break;
		case SK_FROM:
			address_text(&env, ENVELOPE_FROM, false, tmp);
			break;
		case SK_TO:
			address_text(&env, ENVELOPE_TO, false, tmp);
			break;
		case SK_CC:
			address_text(&env, ENVELOPE_CC, false, tmp);
			break;
		case SK_DISPLAYFROM:
			address_text(&env, ENVELOPE_FROM, true, tmp);
			break;
		case SK_DISPLAYTO:
			address_text(&env, ENVELOPE_TO, true, tmp);
			break;
		default:
			break;
		}
		if (k != SK_SUBJECT)
			sort_collate_key(bview(tmp), pool);
		key->len = pool->len - key->off;
	}
}

void sort_messages(const struct sort_criteria *c, const struct mailbox *mb,
		   uint32_t *uids, size_t n)
{
	struct sctx x = { .c = c };
	struct buf pool, tmp;
	struct arena *a;

	if (n < 2 || c->n == 0)
		return;
	for (int k = 0; k < SK_COUNT; k++)
		x.slot[k] = -1;
	for (size_t i = 0; i < c->n; i++) {
		if (x.slot[c->c[i].kind] < 0)
			x.slot[c->c[i].kind] = (int)x.nslots++;
	}
	struct skey *keys = xcalloc(n * x.nslots, sizeof(*keys));
	struct sitem *items = xmalloc(n * sizeof(*items));
	buf_init(&pool, 0);
	buf_init(&tmp, 0);
	a = arena_create(4096);
	for (size_t i = 0; i < n; i++) {
		items[i].uid = uids[i];
		items[i].idx = i;
		compute_keys(&x, find_msg(mb, uids[i]), a, &pool, &tmp,
			     &keys[i * x.nslots]);
		arena_reset(a);
	}
	x.keys = keys;
	x.pool = pool.data;
	qsort_r(items, n, sizeof(*items), cmp_items, &x);
	for (size_t i = 0; i < n; i++)
		uids[i] = items[i].uid;
	arena_destroy(&a);
	buf_deinit(&tmp);
	buf_deinit(&pool);
	free(items);
	free(keys);
}
