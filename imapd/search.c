#include "imapd/search.h"

#include <stdlib.h>
#include <string.h>

#include "imapd/imap_util.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/util.h"

/* Own bound on NOT/OR/parenthesis nesting, on top of the parser's. */
#define SEARCH_MAX_DEPTH 100
/* Ranges in one sequence set; the command line bounds it anyway. */
#define SEARCH_MAX_RANGES 100000
/* Keyword results resolved on the stack up to this many KEYWORD keys. */
#define SEARCH_KW_STACK 64

enum search_op {
	SOP_ALL = 0,
	SOP_NONE,
	SOP_AND,
	SOP_OR,
	SOP_NOT,
	SOP_FLAG_SET,		/* all of `flags` set */
	SOP_FLAG_UNSET,		/* all of `flags` clear */
	SOP_RECENT,
	SOP_OLD,		/* not recent */
	SOP_NEW,		/* recent and not seen */
	SOP_KEYWORD,		/* kw_res[kw] (negated for UNKEYWORD) */
	SOP_SEQ,
	SOP_UID,
	SOP_LARGER,
	SOP_SMALLER,
	SOP_BEFORE,
	SOP_ON,
	SOP_SINCE,
	SOP_SENTBEFORE,
	SOP_SENTON,
	SOP_SENTSINCE,
	SOP_OLDER,
	SOP_YOUNGER,
	SOP_MODSEQ,
	SOP_HEADER,
	SOP_BODY,
	SOP_TEXT,
};

/* Evaluation cost classes. Index-only keys decide first (three-valued,
 * see eval()), and once the message is loaded AND/OR children still run
 * cheapest first: header scans before body scans. */
enum search_cost {
	COST_INDEX = 0,
	COST_HEADER,
	COST_BODY,
};

struct snode {
	enum search_op op;
	enum search_cost cost;
	bool negate;		/* UNKEYWORD */
	uint32_t flags;
	unsigned kw;
	uint64_t num;		/* sizes, MODSEQ */
	int64_t t;		/* day number or Unix time */
	struct seqset set;
	struct kstr name;	/* HEADER field name */
	struct kstr str;	/* needle / keyword */
	struct snode **kids;
	size_t nkids;
	struct snode *kw_next;	/* parse-time list of KEYWORD nodes */
};

struct search_prog {
	struct snode *root;
	struct kstr *kw_names;
	unsigned nkw;
	bool needs_message;
	bool uses_modseq;
};

struct cursor {
	const struct imap_arg *args;
	size_t n, i;
};

struct sparse {
	struct arena *a;
	uint32_t max_msn, max_uid;
	int64_t now;
	struct snode *kw_head;
	unsigned nkw;
	bool uses_modseq;
	const char *error;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static int64_t day_of(int64_t t, int tz_min)
{
	return floor_div(t + (int64_t)tz_min * 60, 86400);
}

static int fail(struct sparse *ps, const char *why)
{
	ps->error = why;
	return KURA_EINVAL;
}

static struct snode *node_new(struct sparse *ps, enum search_op op)
{
	struct snode *n = arena_zalloc(ps->a, sizeof(*n));
	n->op = op;
	return n;
}

static const struct imap_arg *next_arg(struct cursor *c)
{
	if (c->i >= c->n)
		return NULL;
	return &c->args[c->i++];
}

/* astring: atom, quoted string or (non-binary) literal. */
static int get_astring(struct sparse *ps, struct cursor *c, struct kstr *s_r)
{
	const struct imap_arg *arg = next_arg(c);

	if (arg == NULL)
		return fail(ps, "Missing argument to search key");
	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_STRING:
		break;
	case IMAP_ARG_LITERAL:
		if (arg->literal8)
			return fail(ps, "literal8 not allowed in SEARCH");
		break;
	default:
		return fail(ps, "Search key expects a string");
	}
	*s_r = arg->str;
	return 0;
}

static int get_number(struct sparse *ps, struct cursor *c, uint64_t max,
		      uint64_t *v_r)
{
	const struct imap_arg *arg = next_arg(c);

	if (arg == NULL)
		return fail(ps, "Missing number in search key");
	if (arg->type != IMAP_ARG_ATOM || !kstr_to_u64(arg->str, v_r) ||
	    *v_r > max)
		return fail(ps, "Invalid number in search key");
	return 0;
}

/* date = date-text / DQUOTE date-text DQUOTE; the result is a day number
 * (days since 1970-01-01). */
static int get_date(struct sparse *ps, struct cursor *c, int64_t *day_r)
{
	const struct imap_arg *arg = next_arg(c);
	int64_t t;

	if (arg == NULL)
		return fail(ps, "Missing date in search key");
	if ((arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_STRING) ||
	    !imap_date_parse(arg->str, &t))
		return fail(ps, "Invalid date in search key");
	*day_r = floor_div(t, 86400);
	return 0;
}

static int parse_set(struct sparse *ps, struct kstr s, uint32_t star,
		     struct snode *n)
{
	struct seqset set;

	if (!seqset_parse(s, star, SEARCH_MAX_RANGES, &set)) {
		/* An empty mailbox has no '*': the set matches nothing. */
		if (star == 0 && seqset_is_valid(s)) {
			n->op = SOP_NONE;
			return 0;
		}
		return fail(ps, "Invalid sequence set in SEARCH");
	}
	n->set.count = set.count;
	n->set.r = arena_alloc(ps->a, (set.count ? set.count : 1) *
					      sizeof(*set.r));
	if (set.count > 0)
		memcpy(n->set.r, set.r, set.count * sizeof(*set.r));
	seqset_free(&set);
	return 0;
}

static bool is_header_name(struct kstr s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < 33 || s.p[i] > 126 || s.p[i] == ':')
			return false;
	}
	return true;
}

static int parse_and(struct sparse *ps, struct cursor *c, unsigned depth,
		     struct snode **node_r);

static int parse_header_key(struct sparse *ps, struct cursor *c,
			    struct snode *n, const char *field)
{
	n->op = SOP_HEADER;
	n->cost = COST_HEADER;
	n->name = kstr_cstr(field);
	return get_astring(ps, c, &n->str);
}

struct flag_key {
	const char *name;
	enum search_op op;
	uint32_t flags;
};

static const struct flag_key flag_keys[] = {
	{ "ALL", SOP_ALL, 0 },
	{ "ANSWERED", SOP_FLAG_SET, MSG_ANSWERED },
	{ "DELETED", SOP_FLAG_SET, MSG_DELETED },
	{ "DRAFT", SOP_FLAG_SET, MSG_DRAFT },
	{ "FLAGGED", SOP_FLAG_SET, MSG_FLAGGED },
	{ "SEEN", SOP_FLAG_SET, MSG_SEEN },
	{ "UNANSWERED", SOP_FLAG_UNSET, MSG_ANSWERED },
	{ "UNDELETED", SOP_FLAG_UNSET, MSG_DELETED },
	{ "UNDRAFT", SOP_FLAG_UNSET, MSG_DRAFT },
	{ "UNFLAGGED", SOP_FLAG_UNSET, MSG_FLAGGED },
	{ "UNSEEN", SOP_FLAG_UNSET, MSG_SEEN },
	{ "RECENT", SOP_RECENT, 0 },
	{ "OLD", SOP_OLD, 0 },
	{ "NEW", SOP_NEW, 0 },
};

struct date_key {
	const char *name;
	enum search_op op;
};

static const struct date_key date_keys[] = {
	{ "BEFORE", SOP_BEFORE },
	{ "ON", SOP_ON },
	{ "SINCE", SOP_SINCE },
	{ "SENTBEFORE", SOP_SENTBEFORE },
	{ "SENTON", SOP_SENTON },
	{ "SENTSINCE", SOP_SENTSINCE },
};

static const char *const header_keys[][2] = {
	{ "BCC", "Bcc" },
	{ "CC", "Cc" },
	{ "FROM", "From" },
	{ "SUBJECT", "Subject" },
	{ "TO", "To" },
};

static int parse_keyword(struct sparse *ps, struct cursor *c, struct snode *n,
			 bool negate)
{
	const struct imap_arg *arg = next_arg(c);

	if (arg == NULL)
		return fail(ps, "Missing keyword");
	if (arg->type != IMAP_ARG_ATOM || arg->str.len == 0)
		return fail(ps, "Invalid keyword");
	for (size_t i = 0; i < arg->str.len; i++) {
		uint8_t ch = arg->str.p[i];
		/* A leading '\' names a system flag, which some clients send
		 * here; a keyword itself is a plain atom. */
		if (i == 0 && ch == '\\')
			continue;
		if (!imap_is_atom_char(ch) || ch == ']')
			return fail(ps, "Invalid keyword");
	}
	if (arg->str.p[0] == '\\') {
		uint32_t bit = index_flag_from_name(arg->str);
		if (bit != 0) {
			n->op = negate ? SOP_FLAG_UNSET : SOP_FLAG_SET;
			n->flags = bit;
		} else if (kstr_eq_ci(arg->str, "\\Recent")) {
			n->op = negate ? SOP_OLD : SOP_RECENT;
		} else {
			/* No such flag exists on any message. */
			n->op = negate ? SOP_ALL : SOP_NONE;
		}
		return 0;
	}
	n->op = SOP_KEYWORD;
	n->negate = negate;
	n->str = arg->str;
	n->kw = ps->nkw++;
	n->kw_next = ps->kw_head;
	ps->kw_head = n;
	return 0;
}

/* MODSEQ [entry-name entry-type] n (RFC 7162 3.1.5). The per-flag entry
 * is accepted and ignored: a message's MODSEQ covers all its flags. */
static int parse_modseq(struct sparse *ps, struct cursor *c, struct snode *n)
{
	const struct imap_arg *arg;
	uint64_t v;

	n->op = SOP_MODSEQ;
	ps->uses_modseq = true;
	if (c->i < c->n && c->args[c->i].type != IMAP_ARG_ATOM) {
		struct kstr name;
		int ret = get_astring(ps, c, &name);
		if (ret < 0)
			return ret;
		if (!kstr_has_prefix_ci(name, "/flags/") || name.len <= 7)
			return fail(ps, "Invalid MODSEQ entry name");
		arg = next_arg(c);
		if (arg == NULL || arg->type != IMAP_ARG_ATOM ||
		    (!kstr_eq_ci(arg->str, "priv") &&
		     !kstr_eq_ci(arg->str, "shared") &&
		     !kstr_eq_ci(arg->str, "all")))
			return fail(ps, "Invalid MODSEQ entry type");
	}
	if (get_number(ps, c, INT64_MAX, &v) < 0)
		return fail(ps, "Invalid MODSEQ value");
	n->num = v;
	return 0;
}

static int parse_key(struct sparse *ps, struct cursor *c, unsigned depth,
		     struct snode **node_r)
{
	const struct imap_arg *arg = next_arg(c);
	struct snode *n;
	struct kstr k;
	uint64_t v;
	int ret = 0;

	if (arg == NULL)
		return fail(ps, "Missing search key");
	if (depth > SEARCH_MAX_DEPTH)
		return fail(ps, "Search criteria nested too deeply");

	if (arg->type == IMAP_ARG_LIST) {
		struct cursor sub = { arg->list, arg->list_count, 0 };
		if (arg->list_count == 0)
			return fail(ps, "Empty list in search criteria");
		return parse_and(ps, &sub, depth + 1, node_r);
	}
	if (arg->type != IMAP_ARG_ATOM)
		return fail(ps, "Search key expected");
	k = arg->str;
	n = node_new(ps, SOP_ALL);
	*node_r = n;

	if (k.len > 0 && ((k.p[0] >= '0' && k.p[0] <= '9') || k.p[0] == '*')) {
		n->op = SOP_SEQ;
		return parse_set(ps, k, ps->max_msn, n);
	}

	for (size_t i = 0; i < ARRAY_SIZE(flag_keys); i++) {
		if (kstr_eq_ci(k, flag_keys[i].name)) {
			n->op = flag_keys[i].op;
			n->flags = flag_keys[i].flags;
			return 0;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(date_keys); i++) {
		if (kstr_eq_ci(k, date_keys[i].name)) {
			n->op = date_keys[i].op;
			return get_date(ps, c, &n->t);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(header_keys); i++) {
		if (kstr_eq_ci(k, header_keys[i][0]))
			return parse_header_key(ps, c, n, header_keys[i][1]);
	}

	if (kstr_eq_ci(k, "NOT")) {
		n->op = SOP_NOT;
		n->kids = arena_alloc(ps->a, sizeof(*n->kids));
		n->nkids = 1;
		ret = parse_key(ps, c, depth + 1, &n->kids[0]);
		if (ret == 0)
			n->cost = n->kids[0]->cost;
	} else if (kstr_eq_ci(k, "OR")) {
		n->op = SOP_OR;
		n->kids = arena_alloc(ps->a, 2 * sizeof(*n->kids));
		n->nkids = 2;
		ret = parse_key(ps, c, depth + 1, &n->kids[0]);
		if (ret == 0)
			ret = parse_key(ps, c, depth + 1, &n->kids[1]);
		if (ret == 0) {
			n->cost = KURA_MAX(n->kids[0]->cost, n->kids[1]->cost);
			/* Cheaper side first: a true there skips the other. */
			if (n->kids[1]->cost < n->kids[0]->cost) {
				struct snode *tmp = n->kids[0];
				n->kids[0] = n->kids[1];
				n->kids[1] = tmp;
			}
		}
	} else if (kstr_eq_ci(k, "HEADER")) {
		n->op = SOP_HEADER;
		n->cost = COST_HEADER;
		ret = get_astring(ps, c, &n->name);
		if (ret == 0 && !is_header_name(n->name))
			ret = fail(ps, "Invalid header field name");
		if (ret == 0)
			ret = get_astring(ps, c, &n->str);
	} else if (kstr_eq_ci(k, "BODY") || kstr_eq_ci(k, "TEXT")) {
		n->op = kstr_eq_ci(k, "BODY") ? SOP_BODY : SOP_TEXT;
		n->cost = COST_BODY;
		ret = get_astring(ps, c, &n->str);
	} else if (kstr_eq_ci(k, "KEYWORD")) {
		ret = parse_keyword(ps, c, n, false);
	} else if (kstr_eq_ci(k, "UNKEYWORD")) {
		ret = parse_keyword(ps, c, n, true);
	} else if (kstr_eq_ci(k, "LARGER") || kstr_eq_ci(k, "SMALLER")) {
		n->op = kstr_eq_ci(k, "LARGER") ? SOP_LARGER : SOP_SMALLER;
		ret = get_number(ps, c, UINT64_MAX, &n->num);
	} else if (kstr_eq_ci(k, "UID")) {
		const struct imap_arg *set = next_arg(c);
		if (set == NULL || set->type != IMAP_ARG_ATOM)
			return fail(ps, "UID expects a sequence set");
		n->op = SOP_UID;
		ret = parse_set(ps, set->str, ps->max_uid, n);
	} else if (kstr_eq_ci(k, "OLDER") || kstr_eq_ci(k, "YOUNGER")) {
		n->op = kstr_eq_ci(k, "OLDER") ? SOP_OLDER : SOP_YOUNGER;
		ret = get_number(ps, c, UINT32_MAX, &v);
		if (ret == 0 && v == 0)
			ret = fail(ps, "Interval must be positive");
		n->t = ps->now - (int64_t)v;
	} else if (kstr_eq_ci(k, "MODSEQ")) {
		ret = parse_modseq(ps, c, n);
	} else {
		ret = fail(ps, "Unknown search key");
	}
	return ret;
}

/* Parses all remaining keys of the cursor into one AND node (or the single
 * key itself), children ordered by cost. */
static int parse_and(struct sparse *ps, struct cursor *c, unsigned depth,
		     struct snode **node_r)
{
	struct snode *first = NULL, **kids;
	size_t nkids = 0, cap = 0;
	int ret;

	if (depth > SEARCH_MAX_DEPTH)
		return fail(ps, "Search criteria nested too deeply");
	ret = parse_key(ps, c, depth, &first);
	if (ret < 0)
		return ret;
	if (c->i >= c->n) {
		*node_r = first;
		return 0;
	}
	/* Every key consumes at least one argument. */
	cap = 1 + (c->n - c->i);
	kids = arena_alloc(ps->a, cap * sizeof(*kids));
	kids[nkids++] = first;
	while (c->i < c->n) {
		ret = parse_key(ps, c, depth, &kids[nkids]);
		if (ret < 0)
			return ret;
		nkids++;
	}
	/* Stable insertion sort by cost. */
	for (size_t i = 1; i < nkids; i++) {
		struct snode *x = kids[i];
		size_t j = i;
		while (j > 0 && kids[j - 1]->cost > x->cost) {
			kids[j] = kids[j - 1];
			j--;
		}
		kids[j] = x;
	}
	struct snode *n = node_new(ps, SOP_AND);
	n->kids = kids;
	n->nkids = nkids;
	n->cost = kids[nkids - 1]->cost;
	*node_r = n;
	return 0;
}

int search_parse(struct arena *a, const struct imap_arg *args, size_t n,
		 uint32_t max_msn, uint32_t max_uid,
		 struct search_prog **prog_r, const char **error_r)
{
	struct sparse ps = {
		.a = a,
		.max_msn = max_msn,
		.max_uid = max_uid,
		.now = time_wall_sec(),
	};
	struct cursor c = { args, n, 0 };
	struct search_prog *prog;
	struct snode *root;
	int ret;

	*prog_r = NULL;
	*error_r = NULL;
	if (n > 0 && args[0].type == IMAP_ARG_ATOM &&
	    kstr_eq_ci(args[0].str, "CHARSET")) {
		struct kstr cs;
		c.i = 1;
		ret = get_astring(&ps, &c, &cs);
		if (ret < 0) {
			*error_r = "Missing charset name";
			return ret;
		}
		if (!kstr_eq_ci(cs, "UTF-8") && !kstr_eq_ci(cs, "US-ASCII")) {
			*error_r = "Unsupported charset";
			return SEARCH_EBADCHARSET;
		}
	}
	if (c.i >= c.n) {
		*error_r = "Missing search criteria";
		return KURA_EINVAL;
	}
	ret = parse_and(&ps, &c, 0, &root);
	if (ret < 0) {
		*error_r = ps.error;
		return ret;
	}

	prog = arena_zalloc(a, sizeof(*prog));
	prog->root = root;
	prog->needs_message = root->cost != COST_INDEX;
	prog->uses_modseq = ps.uses_modseq;
	prog->nkw = ps.nkw;
	if (ps.nkw > 0) {
		prog->kw_names = arena_alloc(a, ps.nkw * sizeof(struct kstr));
		for (struct snode *k = ps.kw_head; k != NULL; k = k->kw_next)
			prog->kw_names[k->kw] = k->str;
	}
	*prog_r = prog;
	return 0;
}

bool search_prog_needs_message(const struct search_prog *p)
{
	return p->needs_message;
}

bool search_prog_uses_modseq(const struct search_prog *p)
{
	return p->uses_modseq;
}

/* The message as it was when evaluation started: load() may suspend, after
 * which sm->mb and sm->m must not be touched. */
struct seval {
	uint32_t uid, msn, flags;
	uint64_t modseq, size;
	int64_t idate;
	int idate_tz;
	int64_t sent;
	int sent_tz;
	bool recent;
	const bool *kw_res;
	bool loaded;
	struct kstr msg;
};

/* Three-valued result: keys that need the message are UNKNOWN until it is
 * loaded, so the index alone decides whenever it can. */
enum tv {
	TV_FALSE = 0,
	TV_TRUE,
	TV_UNKNOWN,
};

static enum tv tv_of(bool b)
{
	return b ? TV_TRUE : TV_FALSE;
}

static enum tv eval(const struct seval *e, const struct snode *n)
{
	enum tv r, acc;

	switch (n->op) {
	case SOP_ALL:
		return TV_TRUE;
	case SOP_NONE:
		return TV_FALSE;
	case SOP_AND:
		acc = TV_TRUE;
		for (size_t i = 0; i < n->nkids; i++) {
			r = eval(e, n->kids[i]);
			if (r == TV_FALSE)
				return TV_FALSE;
			if (r == TV_UNKNOWN)
				acc = TV_UNKNOWN;
		}
		return acc;
	case SOP_OR:
		acc = TV_FALSE;
		for (size_t i = 0; i < n->nkids; i++) {
			r = eval(e, n->kids[i]);
			if (r == TV_TRUE)
				return TV_TRUE;
			if (r == TV_UNKNOWN)
				acc = TV_UNKNOWN;
		}
		return acc;
	case SOP_NOT:
		r = eval(e, n->kids[0]);
		return r == TV_UNKNOWN ? TV_UNKNOWN : tv_of(r == TV_FALSE);
	case SOP_FLAG_SET:
		return tv_of((e->flags & n->flags) == n->flags);
	case SOP_FLAG_UNSET:
		return tv_of((e->flags & n->flags) == 0);
	case SOP_RECENT:
		return tv_of(e->recent);
	case SOP_OLD:
		return tv_of(!e->recent);
	case SOP_NEW:
		return tv_of(e->recent && (e->flags & MSG_SEEN) == 0);
	case SOP_KEYWORD:
		return tv_of(e->kw_res[n->kw] != n->negate);
	case SOP_SEQ:
		return tv_of(seqset_contains(&n->set, e->msn));
	case SOP_UID:
		return tv_of(seqset_contains(&n->set, e->uid));
	case SOP_LARGER:
		return tv_of(e->size > n->num);
	case SOP_SMALLER:
		return tv_of(e->size < n->num);
	case SOP_BEFORE:
		return tv_of(day_of(e->idate, e->idate_tz) < n->t);
	case SOP_ON:
		return tv_of(day_of(e->idate, e->idate_tz) == n->t);
	case SOP_SINCE:
		return tv_of(day_of(e->idate, e->idate_tz) >= n->t);
	case SOP_SENTBEFORE:
		return tv_of(day_of(e->sent, e->sent_tz) < n->t);
	case SOP_SENTON:
		return tv_of(day_of(e->sent, e->sent_tz) == n->t);
	case SOP_SENTSINCE:
		return tv_of(day_of(e->sent, e->sent_tz) >= n->t);
	case SOP_OLDER:
		return tv_of(e->idate <= n->t);
	case SOP_YOUNGER:
		return tv_of(e->idate >= n->t);
	case SOP_MODSEQ:
		return tv_of(e->modseq >= n->num);
	case SOP_HEADER:
		if (!e->loaded)
			return TV_UNKNOWN;
		return tv_of(mime_search_header(e->msg.p, e->msg.len, n->name,
						n->str));
	case SOP_BODY:
	case SOP_TEXT:
		if (!e->loaded)
			return TV_UNKNOWN;
		return tv_of(mime_search_text(e->msg.p, e->msg.len, n->str,
					      n->op == SOP_TEXT));
	}
	return TV_FALSE;
}

int search_match(const struct search_prog *p, const struct search_msg *sm,
		 bool *match_r)
{
	const struct index_msg *m = sm->m;
	bool kw_stack[SEARCH_KW_STACK];
	bool *kw_res = kw_stack;
	struct seval e = {
		.uid = m->uid,
		.msn = sm->msn,
		.flags = m->flags,
		.modseq = m->modseq,
		.size = m->size,
		.idate = m->internaldate,
		.idate_tz = m->idate_tz_min,
		.sent = m->internaldate,
		.sent_tz = m->idate_tz_min,
		.recent = sm->recent,
	};
	enum tv r;
	int ret;

	if (m->meta != NULL && m->meta->sent_date >= 0) {
		e.sent = m->meta->sent_date;
		e.sent_tz = m->meta->sent_tz_min;
	}
	if (p->nkw > SEARCH_KW_STACK)
		kw_res = xcalloc(p->nkw, sizeof(*kw_res));
	/* Keywords are resolved by name now, while sm->mb is still valid. */
	for (unsigned i = 0; i < p->nkw; i++) {
		int idx = mailbox_keyword_find(sm->mb, p->kw_names[i]);
		kw_res[i] = idx >= 0 && idx < INDEX_MAX_KEYWORDS &&
			    (m->keywords & ((uint64_t)1 << idx)) != 0;
	}
	e.kw_res = kw_res;

	*match_r = false;
	ret = 0;
	r = eval(&e, p->root);
	if (r == TV_UNKNOWN) {
		ret = sm->load(sm->load_ctx, &e.msg);
		if (ret == 0) {
			e.loaded = true;
			r = eval(&e, p->root);
		}
	}
	if (kw_res != kw_stack)
		free(kw_res);
	*match_r = ret == 0 && r == TV_TRUE;
	return ret;
}
