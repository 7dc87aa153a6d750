/* Mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_util.h"
#include "imapd/imapd.h"
#include "imapd/session.h"
#include "index/index.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

#define HIER_SEP '/'

static void write_mailbox_name(struct session *s, struct buf *b, struct kstr name);

/* SPECIAL-USE attribute names (RFC 6154), for LIST and CREATE. */
static const struct {
	uint32_t bit;
	const char *name;
} special_uses[] = {
	{ MBOX_SPECIAL_ALL, "\\All" }, { MBOX_SPECIAL_ARCHIVE, "\\Archive" },
	{ MBOX_SPECIAL_DRAFTS, "\\Drafts" }, { MBOX_SPECIAL_FLAGGED, "\\Flagged" },
	{ MBOX_SPECIAL_JUNK, "\\Junk" }, { MBOX_SPECIAL_SENT, "\\Sent" },
	{ MBOX_SPECIAL_TRASH, "\\Trash" },
};


static void write_flags_list(struct buf *b, const struct mailbox *mb, bool star)
{
	buf_append_str(b, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (unsigned i = 0; i < mb->nkeywords; i++) {
		buf_append_str(b, " ");
		buf_append_str(b, mb->keywords[i]);
	}
	if (star)
		buf_append_str(b, " \\*");
}

/* QRESYNC parameters of SELECT/EXAMINE (RFC 7162 3.2.5). */
struct qresync_params {
	bool on;
	uint32_t uidvalidity;
	uint64_t modseq;
	struct kstr known_uids;	/* empty: all */
};

static bool parse_select_params(struct cmd_ctx *cx, const struct imap_arg *l,
				bool *condstore_r, struct qresync_params *qr)
{
	for (size_t i = 0; i < l->list_count; i++) {
		const struct imap_arg *a = &l->list[i];
		if (arg_is_atom(a, "CONDSTORE")) {
			*condstore_r = true;
			continue;
		}
		if (!arg_is_atom(a, "QRESYNC") || i + 1 >= l->list_count ||
		    l->list[i + 1].type != IMAP_ARG_LIST)
			return false;
		if (!cx->s->qresync)
			return false;	/* RFC 7162: needs ENABLE QRESYNC first */
		const struct imap_arg *q = &l->list[++i];
		uint64_t v, ms;
		if (q->list_count < 2 || q->list_count > 4 || q->list[0].type != IMAP_ARG_ATOM ||
		    q->list[1].type != IMAP_ARG_ATOM || !kstr_to_u64(q->list[0].str, &v) ||
		    v == 0 || v > UINT32_MAX || !kstr_to_u64(q->list[1].str, &ms))
			return false;
		qr->on = true;
		qr->uidvalidity = (uint32_t)v;
		qr->modseq = ms;
		if (q->list_count >= 3) {
			if (q->list[2].type == IMAP_ARG_ATOM) {
				if (!seqset_is_valid(q->list[2].str))
					return false;
				qr->known_uids = q->list[2].str;
			} else if (q->list[2].type != IMAP_ARG_LIST) {
				return false;
			}
		}
	}
	return true;
}

/* After a QRESYNC SELECT: what changed since the client's modseq. */
static void qresync_report(struct session *s, struct mailbox *mb, const struct qresync_params *qr)
{
	if (qr->uidvalidity != mb->uidvalidity)
		return;
	struct seqset known = { 0 };
	bool have_known = qr->known_uids.len > 0 &&
			  seqset_parse(qr->known_uids, mb->uidnext, 100000, &known);
	uint32_t *gone = NULL;
	size_t ngone = 0, cap = 0;
	for (size_t i = 0; i < mb->nexpunged; i++) {
		const struct index_expunged *e = &mb->expunged[i];
		if (e->modseq <= qr->modseq)
			continue;
		if (have_known && !seqset_contains(&known, e->uid))
			continue;
		xgrow((void **)&gone, &cap, ngone + 1, sizeof(uint32_t));
		gone[ngone++] = e->uid;
	}
	if (have_known)
		seqset_free(&known);
	if (ngone > 0) {
		struct buf b;
		buf_init(&b, 0);
		buf_append_str(&b, "* VANISHED (EARLIER) ");
		seqset_write(&b, gone, ngone);
		buf_append_str(&b, "\r\n");
		conn_write(s->conn, buf_head(&b), buf_used(&b));
		buf_deinit(&b);
	}
	free(gone);
	for (size_t i = 0; i < mb->count; i++) {
		struct index_msg *m = &mb->msgs[i];
		if (m->modseq > qr->modseq)
			session_write_flags_fetch(s, mb, m, (uint32_t)i + 1, true, true);
	}
}

static void do_select(struct cmd_ctx *cx, bool readonly)
{
	struct session *s = cx->s;
	struct kstr name;
	const char *what = readonly ? "EXAMINE" : "SELECT";
	bool condstore = false;
	struct qresync_params qr = { 0 };

	if (cx->nargs < 1 || cx->nargs > 2 || !arg_mailbox(cx, &cx->args[0], &name) ||
	    (cx->nargs == 2 && (cx->args[1].type != IMAP_ARG_LIST ||
				!parse_select_params(cx, &cx->args[1], &condstore, &qr)))) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s needs a valid mailbox name", what);
		return;
	}
	/* RFC 3501: a failed SELECT leaves no mailbox selected. */
	bool had = s->state == SESSION_SELECTED;
	session_unselect(s);
	if (had && (s->qresync || s->rev2))
		session_untagged(s, "OK [CLOSED] Previous mailbox closed");
	if (condstore)
		s->condstore = true;

	const char *error = NULL;
	int ret = account_refresh(s->acct, &error);
	if (ret < 0) {
		session_tagged_error(s, cx->tag, ret, error, what);
		return;
	}
	struct mailbox *mb = account_mailbox_find(s->acct, name);
	if (mb == NULL) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Mailbox does not exist");
		return;
	}
	s->state = SESSION_SELECTED;
	s->sel_id = mb->id;
	s->sel_readonly = readonly;
	s->sel_uidvalidity = mb->uidvalidity;
	session_view_load(s, mb);
	uint32_t floor = mailbox_claim_recent(mb, readonly);
	for (size_t i = 0; i < s->nuids && !readonly; i++) {
		if (s->uids[i] >= floor) {
			xgrow((void **)&s->recent_uids, &s->recent_cap, s->nrecent + 1,
			      sizeof(uint32_t));
			s->recent_uids[s->nrecent++] = s->uids[i];
		}
	}

	struct buf b;
	buf_init(&b, 0);
	write_flags_list(&b, mb, false);
	session_untagged(s, "FLAGS (%s)", buf_cstr(&b));
	buf_reset(&b);
	if (!readonly)
		write_flags_list(&b, mb, true);
	session_untagged(s, "OK [PERMANENTFLAGS (%s)] Flags permitted", buf_cstr(&b));
	buf_deinit(&b);
	session_untagged(s, "%zu EXISTS", s->nuids);
	if (!s->rev2) {
		session_untagged(s, "%zu RECENT", s->nrecent);
		for (size_t i = 0; i < mb->count; i++) {
			if (!(mb->msgs[i].flags & MSG_SEEN)) {
				session_untagged(s, "OK [UNSEEN %zu] First unseen", i + 1);
				break;
			}
		}
	} else {
		struct buf lb;
		buf_init(&lb, 0);
		buf_append_str(&lb, "* LIST () \"/\" ");
		imap_write_astring(&lb, kstr_cstr(mb->name));
		buf_append_str(&lb, "\r\n");
		conn_write(s->conn, buf_head(&lb), buf_used(&lb));
		buf_deinit(&lb);
	}
	session_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", mb->uidvalidity);
	session_untagged(s, "OK [UIDNEXT %u] Predicted next UID", mb->uidnext);
	session_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
			 (unsigned long long)mb->highestmodseq);
	if (qr.on)
		qresync_report(s, mb, &qr);
	session_tagged(s, cx->tag, "OK", readonly ? "READ-ONLY" : "READ-WRITE",
		       "%s completed", what);
}

void cmd_select(struct cmd_ctx *cx)
{
	do_select(cx, false);
}

void cmd_examine(struct cmd_ctx *cx)
{
	do_select(cx, true);
}

static bool name_is_creatable(struct kstr n)
{
	if (n.len == 0 || n.p[0] == HIER_SEP)
		return false;
	for (size_t i = 0; i < n.len; i++) {
		if (n.p[i] == '*' || n.p[i] == '%')
			return false;
		if (n.p[i] == HIER_SEP && i + 1 < n.len && n.p[i + 1] == HIER_SEP)
			return false;
	}
	return true;
}

/* Commits a transaction with one op, answering NO on failure. Returns
 * the op result or NULL (already answered). */
static const struct index_op_result *commit_one(struct cmd_ctx *cx, struct index_txn *t,
						int op, const char *what)
{
	const char *error = NULL;
	if (op < 0) {
		session_tagged_error(cx->s, cx->tag, op, NULL, what);
		return NULL;
	}
	int ret = index_txn_commit(t, &error);
	if (ret < 0) {
		session_tagged_error(cx->s, cx->tag, ret, error, what);
		return NULL;
	}
	return index_txn_result(t, op);
}

/* (USE (\\Drafts ...)) of CREATE-SPECIAL-USE (RFC 6154). */
static bool parse_create_params(const struct imap_arg *l, uint32_t *special_r)
{
	if (l->type != IMAP_ARG_LIST || l->list_count != 2 || !arg_is_atom(&l->list[0], "USE") ||
	    l->list[1].type != IMAP_ARG_LIST)
		return false;
	for (size_t i = 0; i < l->list[1].list_count; i++) {
		const struct imap_arg *a = &l->list[1].list[i];
		bool found = false;
		for (size_t k = 0; k < ARRAY_SIZE(special_uses); k++) {
			if (arg_is_atom(a, special_uses[k].name)) {
				*special_r |= special_uses[k].bit;
				found = true;
			}
		}
		if (!found)
			return false;
	}
	return true;
}

void cmd_create(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	uint32_t special = 0;
	if (cx->nargs < 1 || cx->nargs > 2 || !arg_mailbox(cx, &cx->args[0], &name) ||
	    (cx->nargs == 2 && !parse_create_params(&cx->args[1], &special))) {
		session_tagged(s, cx->tag, "BAD", NULL, "CREATE needs a valid mailbox name");
		return;
	}
	/* A trailing separator declares intent to create children. */
	if (name.len > 1 && name.p[name.len - 1] == HIER_SEP)
		name.len--;
	if (!name_is_creatable(name)) {
		session_tagged(s, cx->tag, "NO", "CANNOT", "Invalid mailbox name");
		return;
	}
	if (kstr_eq(name, KSTR_LIT("INBOX"))) {
		session_tagged(s, cx->tag, "NO", "ALREADYEXISTS", "INBOX always exists");
		return;
	}
	if (account_mailbox_find(s->acct, name) != NULL) {
		session_tagged(s, cx->tag, "NO", "ALREADYEXISTS", "Mailbox already exists");
		return;
	}
	struct index_txn *t = index_txn_begin(s->acct);
	int op = -1;
	/* Create missing superiors too (RFC 3501 6.3.3). */
	for (size_t i = 1; i < name.len; i++) {
		if (name.p[i] != HIER_SEP)
			continue;
		struct kstr parent = kstr_make(name.p, i);
		if (account_mailbox_find(s->acct, parent) == NULL &&
		    !kstr_eq(parent, KSTR_LIT("INBOX")))
			index_txn_create_mailbox(t, parent, 0);
	}
	op = index_txn_create_mailbox(t, name, special);
	if (commit_one(cx, t, op, "CREATE") != NULL)
		session_tagged(s, cx->tag, "OK", NULL, "CREATE completed");
	index_txn_free(&t);
}

void cmd_delete(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	if (cx->nargs != 1 || !arg_mailbox(cx, &cx->args[0], &name)) {
		session_tagged(s, cx->tag, "BAD", NULL, "DELETE needs a valid mailbox name");
		return;
	}
	if (kstr_eq(name, KSTR_LIT("INBOX"))) {
		session_tagged(s, cx->tag, "NO", "CANNOT", "INBOX cannot be deleted");
		return;
	}
	struct mailbox *mb = account_mailbox_find(s->acct, name);
	if (mb == NULL) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Mailbox does not exist");
		return;
	}
	bool was_selected = s->state == SESSION_SELECTED && s->sel_id == mb->id;
	struct index_txn *t = index_txn_begin(s->acct);
	int op = index_txn_delete_mailbox(t, name);
	if (commit_one(cx, t, op, "DELETE") != NULL) {
		if (was_selected)
			session_unselect(s);
		session_tagged(s, cx->tag, "OK", NULL, "DELETE completed");
	}
	index_txn_free(&t);
}

void cmd_rename(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr from, to;
	if (cx->nargs != 2 || !arg_mailbox(cx, &cx->args[0], &from) ||
	    !arg_mailbox(cx, &cx->args[1], &to)) {
		session_tagged(s, cx->tag, "BAD", NULL, "RENAME needs two valid mailbox names");
		return;
	}
	if (to.len > 1 && to.p[to.len - 1] == HIER_SEP)
		to.len--;
	if (!name_is_creatable(to)) {
		session_tagged(s, cx->tag, "NO", "CANNOT", "Invalid mailbox name");
		return;
	}
	if (account_mailbox_find(s->acct, from) == NULL) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Mailbox does not exist");
		return;
	}
	if (account_mailbox_find(s->acct, to) != NULL) {
		session_tagged(s, cx->tag, "NO", "ALREADYEXISTS", "Target mailbox already exists");
		return;
	}
	struct index_txn *t = index_txn_begin(s->acct);
	for (size_t i = 1; i < to.len; i++) {
		if (to.p[i] != HIER_SEP)
			continue;
		struct kstr parent = kstr_make(to.p, i);
		if (account_mailbox_find(s->acct, parent) == NULL &&
		    !kstr_eq(parent, from))
			index_txn_create_mailbox(t, parent, 0);
	}
	int op = index_txn_rename_mailbox(t, from, to);
	if (commit_one(cx, t, op, "RENAME") != NULL)
		session_tagged(s, cx->tag, "OK", NULL, "RENAME completed");
	index_txn_free(&t);
}

static void do_subscribe(struct cmd_ctx *cx, bool on)
{
	struct session *s = cx->s;
	struct kstr name;
	const char *what = on ? "SUBSCRIBE" : "UNSUBSCRIBE";
	if (cx->nargs != 1 || !arg_mailbox(cx, &cx->args[0], &name)) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s needs a valid mailbox name", what);
		return;
	}
	if (on && account_mailbox_find(s->acct, name) == NULL) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Mailbox does not exist");
		return;
	}
	if (!on && !account_is_subscribed(s->acct, name)) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Not subscribed");
		return;
	}
	struct index_txn *t = index_txn_begin(s->acct);
	int op = index_txn_subscribe(t, name, on);
	if (commit_one(cx, t, op, what) != NULL)
		session_tagged(s, cx->tag, "OK", NULL, "%s completed", what);
	index_txn_free(&t);
}

void cmd_subscribe(struct cmd_ctx *cx)
{
	do_subscribe(cx, true);
}

void cmd_unsubscribe(struct cmd_ctx *cx)
{
	do_subscribe(cx, false);
}

/* ---- LIST / LSUB ---- */

/* IMAP wildcard match: '*' any run, '%' any run without the separator.
 * Iterative with one backtrack point per star kind: O(n*m) worst case
 * on names of at most 1000 bytes. */
static bool wild_match(const uint8_t *p, size_t pn, const uint8_t *s, size_t sn)
{
	size_t pi = 0, si = 0;
	size_t star_p = SIZE_MAX, star_s = 0;
	bool star_pct = false;
	while (si < sn) {
		if (pi < pn && (p[pi] == '*' || p[pi] == '%')) {
			star_pct = p[pi] == '%';
			star_p = pi++;
			star_s = si;
			continue;
		}
		if (pi < pn && p[pi] == s[si]) {
			pi++;
			si++;
			continue;
		}
		if (star_p != SIZE_MAX) {
			if (star_pct && s[star_s] == HIER_SEP)
				return false;
			pi = star_p + 1;
			si = ++star_s;
			continue;
		}
		return false;
	}
	while (pi < pn && (p[pi] == '*' || p[pi] == '%'))
		pi++;
	return pi == pn;
}

/* Matching with INBOX case-insensitive: a pattern whose first five bytes
 * spell inbox in any case matches "INBOX" names. */
static bool list_match(struct kstr pat, struct kstr name)
{
	if (name.len >= 5 && memcmp(name.p, "INBOX", 5) == 0 && pat.len >= 5 &&
	    kstr_has_prefix_ci(pat, "INBOX") && (pat.len == 5 || pat.p[5] == HIER_SEP ||
						 pat.p[5] == '*' || pat.p[5] == '%')) {
		return wild_match((const uint8_t *)"INBOX", 5, name.p, 5) &&
		       wild_match(pat.p + 5, pat.len - 5, name.p + 5, name.len - 5);
	}
	return wild_match(pat.p, pat.len, name.p, name.len);
}

static bool has_children(struct account *a, struct kstr name)
{
	size_t n = account_mailbox_count(a);
	for (size_t i = 0; i < n; i++) {
		struct mailbox *mb = account_mailbox_at(a, i);
		size_t l = strlen(mb->name);
		if (l > name.len && mb->name[name.len] == HIER_SEP &&
		    memcmp(mb->name, name.p, name.len) == 0)
			return true;
	}
	return false;
}

static void special_use_attrs(struct buf *b, uint32_t su)
{
	for (size_t i = 0; i < ARRAY_SIZE(special_uses); i++) {
		if (su & special_uses[i].bit) {
			buf_append_str(b, " ");
			buf_append_str(b, special_uses[i].name);
		}
	}
}

/* Writes a mailbox name as the client reads it: modified UTF-7, or
 * UTF-8 once UTF8=ACCEPT is enabled. */
static void write_mailbox_name(struct session *s, struct buf *b, struct kstr name)
{
	if (s->utf8_enabled) {
		struct buf u;
		buf_init(&u, 0);
		if (mutf7_to_utf8(name, &u)) {
			imap_write_astring(b, buf_kstr(&u));
			buf_deinit(&u);
			return;
		}
		buf_deinit(&u);
	}
	imap_write_astring(b, name);
}

static void list_reply(struct session *s, const char *kind, const char *attrs, struct kstr name)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* %s (%s) \"/\" ", kind, attrs);
	write_mailbox_name(s, &b, name);
	buf_append_str(&b, "\r\n");
	conn_write(s->conn, buf_head(&b), buf_used(&b));
	buf_deinit(&b);
}

/* Names seen already (phantom parents are reported once). */
struct name_set {
	char **v;
	size_t n, cap;
};

static bool name_set_add(struct name_set *ns, struct kstr name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strlen(ns->v[i]) == name.len && memcmp(ns->v[i], name.p, name.len) == 0)
			return false;
	xgrow((void **)&ns->v, &ns->cap, ns->n + 1, sizeof(char *));
	ns->v[ns->n++] = kstr_dup(name);
	return true;
}

static void name_set_free(struct name_set *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

/* LIST-EXTENDED options (RFC 5258, 5819, 6154). */
enum {
	LSEL_SUBSCRIBED = 1 << 0,
	LSEL_RECURSIVE = 1 << 1,
	LSEL_SPECIAL = 1 << 2,
	LRET_SUBSCRIBED = 1 << 3,
	LRET_CHILDREN = 1 << 4,
	LRET_SPECIAL = 1 << 5,
	LRET_STATUS = 1 << 6,
};

struct list_req {
	unsigned opts;
	bool extended;
	struct kstr ref;
	struct kstr *pats;	/* full patterns (ref applied) */
	size_t npats;
	const struct imap_arg *status_items;
	size_t nstatus;
};

/* Mailbox names are at most 1000 bytes; a longer pattern can match
 * nothing, and would only cost the wildcard matcher O(pattern * name). */
#define LIST_PATTERN_MAX 2048

static struct kstr join_pattern(struct cmd_ctx *cx, struct kstr ref, struct kstr mbox)
{
	/* UTF8=ACCEPT: patterns may be UTF-8; names are kept in mUTF-7. */
	if (cx->s->utf8_enabled) {
		struct kstr *parts[2] = { &ref, &mbox };
		for (int k = 0; k < 2; k++) {
			if (mutf7_is_valid(*parts[k]))
				continue;
			struct buf b;
			buf_init(&b, 0);
			if (utf8_to_mutf7(*parts[k], &b))
				*parts[k] = arena_kstr(cx->a, buf_kstr(&b));
			buf_deinit(&b);
		}
	}
	if (mbox.len > 0 && mbox.p[0] == HIER_SEP)
		ref.len = 0;
	char *p = arena_alloc(cx->a, ref.len + mbox.len + 1);
	if (ref.len > 0)
		memcpy(p, ref.p, ref.len);
	if (mbox.len > 0)
		memcpy(p + ref.len, mbox.p, mbox.len);
	p[ref.len + mbox.len] = '\0';
	return kstr_make(p, ref.len + mbox.len);
}

static bool list_parse(struct cmd_ctx *cx, struct list_req *r, bool *empty_r)
{
	const struct imap_arg *a = cx->args;
	size_t n = cx->nargs, i = 0;
	memset(r, 0, sizeof(*r));
	if (i < n && a[i].type == IMAP_ARG_LIST) {
		r->extended = true;
		for (size_t k = 0; k < a[i].list_count; k++) {
			const struct imap_arg *o = &a[i].list[k];
			if (arg_is_atom(o, "SUBSCRIBED"))
				r->opts |= LSEL_SUBSCRIBED | LRET_SUBSCRIBED;
			else if (arg_is_atom(o, "RECURSIVEMATCH"))
				r->opts |= LSEL_RECURSIVE;
			else if (arg_is_atom(o, "SPECIAL-USE"))
				r->opts |= LSEL_SPECIAL | LRET_SPECIAL;
			else if (!arg_is_atom(o, "REMOTE"))
				return false;
		}
		/* RECURSIVEMATCH alone is an error (RFC 5258 3.1). */
		if ((r->opts & LSEL_RECURSIVE) && !(r->opts & (LSEL_SUBSCRIBED | LSEL_SPECIAL)))
			return false;
		i++;
	}
	if (n - i < 2 || !arg_is_astring(&a[i]))
		return false;
	r->ref = a[i++].str;
	const struct imap_arg *pat = &a[i++];
	*empty_r = false;
	if (pat->type == IMAP_ARG_LIST) {
		r->extended = true;
		if (pat->list_count == 0)
			return false;
		r->pats = arena_alloc(cx->a, pat->list_count * sizeof(struct kstr));
		for (size_t k = 0; k < pat->list_count; k++) {
			if (!arg_is_astring(&pat->list[k]))
				return false;
			r->pats[r->npats++] = join_pattern(cx, r->ref, pat->list[k].str);
		}
	} else if (arg_is_astring(pat)) {
		*empty_r = pat->str.len == 0 && !r->extended;
		r->pats = arena_alloc(cx->a, sizeof(struct kstr));
		r->pats[r->npats++] = join_pattern(cx, r->ref, pat->str);
	} else {
		return false;
	}
	for (size_t k = 0; k < r->npats; k++)
		if (r->pats[k].len > LIST_PATTERN_MAX)
			return false;
	if (i < n) {
		if (n - i != 2 || !arg_is_atom(&a[i], "RETURN") || a[i + 1].type != IMAP_ARG_LIST)
			return false;
		r->extended = true;
		const struct imap_arg *l = &a[i + 1];
		for (size_t k = 0; k < l->list_count; k++) {
			const struct imap_arg *o = &l->list[k];
			if (arg_is_atom(o, "SUBSCRIBED")) {
				r->opts |= LRET_SUBSCRIBED;
			} else if (arg_is_atom(o, "CHILDREN")) {
				r->opts |= LRET_CHILDREN;
			} else if (arg_is_atom(o, "SPECIAL-USE")) {
				r->opts |= LRET_SPECIAL;
			} else if (arg_is_atom(o, "STATUS") && k + 1 < l->list_count &&
				   l->list[k + 1].type == IMAP_ARG_LIST &&
				   status_items_valid(l->list[k + 1].list, l->list[k + 1].list_count)) {
				r->opts |= LRET_STATUS;
				r->status_items = l->list[k + 1].list;
				r->nstatus = l->list[k + 1].list_count;
				k++;
			} else {
				return false;
			}
		}
	}
	return true;
}

static bool list_any_match(const struct list_req *r, struct kstr name)
{
	for (size_t k = 0; k < r->npats; k++)
		if (list_match(r->pats[k], name))
			return true;
	return false;
}

static bool has_unmatched_subscribed_child(struct account *a, const struct list_req *r,
					   struct kstr name)
{
	size_t n = account_subscription_count(a);
	for (size_t i = 0; i < n; i++) {
		const char *sub = account_subscription_at(a, i);
		size_t l = strlen(sub);
		if (l > name.len && sub[name.len] == HIER_SEP && memcmp(sub, name.p, name.len) == 0 &&
		    !list_any_match(r, kstr_make(sub, l)))
			return true;
	}
	return false;
}

static void list_emit(struct session *s, const struct list_req *r, struct kstr name,
		      struct mailbox *mb, bool phantom, bool childinfo)
{
	struct buf attrs;
	buf_init(&attrs, 0);
	bool subscribed = account_is_subscribed(s->acct, name);
	if (mb == NULL)
		buf_append_str(&attrs, r->extended && !phantom ? "\\NonExistent" : "\\Noselect");
	bool kids = has_children(s->acct, name);
	if (mb != NULL || phantom)
		buf_printf(&attrs, "%s%s", buf_used(&attrs) ? " " : "",
			   kids ? "\\HasChildren" : "\\HasNoChildren");
	if ((r->opts & LRET_SUBSCRIBED) && subscribed)
		buf_printf(&attrs, "%s\\Subscribed", buf_used(&attrs) ? " " : "");
	if (mb != NULL && mb->special_use) {
		struct buf su;
		buf_init(&su, 0);
		special_use_attrs(&su, mb->special_use);
		buf_append_str(&attrs, buf_used(&attrs) ? buf_cstr(&su) : buf_cstr(&su) + 1);
		buf_deinit(&su);
	}
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* LIST (%s) \"/\" ", buf_used(&attrs) ? buf_cstr(&attrs) : "");
	write_mailbox_name(s, &b, name);
	if (childinfo)
		buf_append_str(&b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	buf_append_str(&b, "\r\n");
	bool selected = !(r->opts & LSEL_SUBSCRIBED) || subscribed;
	if ((r->opts & LRET_STATUS) && mb != NULL && selected)
		status_write(s, &b, mb, r->status_items, r->nstatus);
	conn_write(s->conn, buf_head(&b), buf_used(&b));
	buf_deinit(&b);
	buf_deinit(&attrs);
}

void cmd_list(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct list_req r;
	bool empty;
	if (!list_parse(cx, &r, &empty)) {
		session_tagged(s, cx->tag, "BAD", NULL, "Invalid LIST arguments");
		return;
	}
	if (empty) {
		list_reply(s, "LIST", "\\Noselect", kstr_make("", 0));
		session_tagged(s, cx->tag, "OK", NULL, "LIST completed");
		return;
	}
	/* Folders created on other devices (other nodes) should show up:
	 * one freshness check, as for SELECT. */
	const char *error = NULL;
	int ret = account_refresh(s->acct, &error);
	if (ret < 0) {
		session_tagged_error(s, cx->tag, ret, error, "LIST");
		return;
	}
	struct name_set seen = { 0 };
	if (r.opts & LSEL_SUBSCRIBED) {
		/* Candidates: subscribed names and, for RECURSIVEMATCH, their
		 * superiors (RFC 5258 3.5: a name that is not returned itself
		 * but has a subscribed inferior the pattern does not return
		 * gets CHILDINFO). */
		size_t n = account_subscription_count(s->acct);
		for (size_t i = 0; i < n; i++) {
			struct kstr sub = kstr_cstr(account_subscription_at(s->acct, i));
			for (size_t k = 1; k <= sub.len; k++) {
				if (k < sub.len && sub.p[k] != HIER_SEP)
					continue;
				if (k < sub.len && !(r.opts & LSEL_RECURSIVE))
					continue;
				struct kstr name = kstr_make(sub.p, k);
				if (!list_any_match(&r, name) || !name_set_add(&seen, name))
					continue;
				bool subscribed = account_is_subscribed(s->acct, name);
				bool childinfo = (r.opts & LSEL_RECURSIVE) &&
					has_unmatched_subscribed_child(s->acct, &r, name);
				if (subscribed || childinfo)
					list_emit(s, &r, name, account_mailbox_find(s->acct, name),
						  false, childinfo);
			}
		}
		name_set_free(&seen);
		session_tagged(s, cx->tag, "OK", NULL, "LIST completed");
		return;
	}
	bool pct = false;
	for (size_t k = 0; k < r.npats; k++)
		pct = pct || memchr(r.pats[k].p, '%', r.pats[k].len) != NULL;
	size_t n = account_mailbox_count(s->acct);
	for (size_t i = 0; i < n; i++) {
		struct mailbox *mb = account_mailbox_at(s->acct, i);
		struct kstr name = kstr_cstr(mb->name);
		if ((r.opts & LSEL_SPECIAL) && mb->special_use == 0)
			continue;
		if (list_any_match(&r, name) && name_set_add(&seen, name))
			list_emit(s, &r, name, mb, false, false);
		if (!pct || (r.opts & LSEL_SPECIAL))
			continue;
		/* Superiors that are not mailboxes but match a '%' level. */
		for (size_t k = 1; k < name.len; k++) {
			if (name.p[k] != HIER_SEP)
				continue;
			struct kstr parent = kstr_make(name.p, k);
			if (account_mailbox_find(s->acct, parent) != NULL)
				continue;
			if (list_any_match(&r, parent) && name_set_add(&seen, parent))
				list_emit(s, &r, parent, NULL, true, false);
		}
	}
	name_set_free(&seen);
	session_tagged(s, cx->tag, "OK", NULL, "LIST completed");
}

static bool list_pattern(struct cmd_ctx *cx, struct kstr *pat_r, bool *empty_r)
{
	if (cx->nargs != 2 || !arg_is_astring(&cx->args[0]) || !arg_is_astring(&cx->args[1]))
		return false;
	*empty_r = cx->args[1].str.len == 0;
	*pat_r = join_pattern(cx, cx->args[0].str, cx->args[1].str);
	return pat_r->len <= LIST_PATTERN_MAX;
}

void cmd_lsub(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr pat;
	bool empty;
	if (!list_pattern(cx, &pat, &empty)) {
		session_tagged(s, cx->tag, "BAD", NULL, "LSUB needs a reference and a pattern");
		return;
	}
	if (empty) {
		list_reply(s, "LSUB", "\\Noselect", kstr_make("", 0));
		session_tagged(s, cx->tag, "OK", NULL, "LSUB completed");
		return;
	}
	bool pct = memchr(pat.p, '%', pat.len) != NULL;
	struct name_set seen = { 0 };
	size_t n = account_subscription_count(s->acct);
	for (size_t i = 0; i < n; i++) {
		struct kstr name = kstr_cstr(account_subscription_at(s->acct, i));
		if (list_match(pat, name) && name_set_add(&seen, name)) {
			bool exists = account_mailbox_find(s->acct, name) != NULL;
			list_reply(s, "LSUB", exists ? "" : "\\Noselect", name);
		}
		if (!pct)
			continue;
		for (size_t k = 1; k < name.len; k++) {
			if (name.p[k] != HIER_SEP)
				continue;
			struct kstr parent = kstr_make(name.p, k);
			if (account_is_subscribed(s->acct, parent))
				continue;
			if (list_match(pat, parent) && name_set_add(&seen, parent))
				list_reply(s, "LSUB", "\\Noselect", parent);
		}
	}
	name_set_free(&seen);
	session_tagged(s, cx->tag, "OK", NULL, "LSUB completed");
}

/* ---- STATUS ---- */

static const char *const status_items[] = {
	"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ",
	"SIZE", "DELETED", "APPENDLIMIT", "DELETED-STORAGE",
};

bool status_items_valid(const struct imap_arg *items, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool ok = false;
		for (size_t k = 0; k < ARRAY_SIZE(status_items); k++)
			ok = ok || arg_is_atom(&items[i], status_items[k]);
		if (!ok)
			return false;
	}
	return true;
}

void status_write(struct session *s, struct buf *b, struct mailbox *mb,
		  const struct imap_arg *items, size_t n)
{
	buf_append_str(b, "* STATUS ");
	write_mailbox_name(s, b, kstr_cstr(mb->name));
	buf_append_str(b, " (");
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *it = &items[i];
		if (i > 0)
			buf_append_str(b, " ");
		if (arg_is_atom(it, "MESSAGES")) {
			buf_printf(b, "MESSAGES %zu", mb->count);
		} else if (arg_is_atom(it, "RECENT")) {
			size_t first = mailbox_msg_lower_bound(mb, mb->recent_floor);
			buf_printf(b, "RECENT %zu", mb->count - first);
		} else if (arg_is_atom(it, "UIDNEXT")) {
			buf_printf(b, "UIDNEXT %u", mb->uidnext);
		} else if (arg_is_atom(it, "UIDVALIDITY")) {
			buf_printf(b, "UIDVALIDITY %u", mb->uidvalidity);
		} else if (arg_is_atom(it, "UNSEEN") || arg_is_atom(it, "DELETED")) {
			uint32_t flag = arg_is_atom(it, "UNSEEN") ? MSG_SEEN : MSG_DELETED;
			size_t cnt = 0;
			for (size_t k = 0; k < mb->count; k++)
				if (!!(mb->msgs[k].flags & flag) == (flag == MSG_DELETED))
					cnt++;
			buf_printf(b, "%s %zu", flag == MSG_SEEN ? "UNSEEN" : "DELETED", cnt);
		} else if (arg_is_atom(it, "HIGHESTMODSEQ")) {
			buf_printf(b, "HIGHESTMODSEQ %llu", (unsigned long long)mb->highestmodseq);
		} else if (arg_is_atom(it, "SIZE")) {
			buf_printf(b, "SIZE %llu", (unsigned long long)mb->total_size);
		} else if (arg_is_atom(it, "DELETED-STORAGE")) {
			/* RFC 9208: storage an EXPUNGE would free, in KiB. */
			uint64_t bytes = 0;
			for (size_t k = 0; k < mb->count; k++)
				if (mb->msgs[k].flags & MSG_DELETED)
					bytes += mb->msgs[k].size;
			buf_printf(b, "DELETED-STORAGE %llu", (unsigned long long)((bytes + 1023) / 1024));
		} else if (arg_is_atom(it, "APPENDLIMIT")) {
			buf_printf(b, "APPENDLIMIT %llu",
				   (unsigned long long)s->srv->set.max_append_size);
		}
	}
	buf_append_str(b, ")\r\n");
}

void cmd_status(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	if (cx->nargs != 2 || !arg_mailbox(cx, &cx->args[0], &name) ||
	    cx->args[1].type != IMAP_ARG_LIST ||
	    !status_items_valid(cx->args[1].list, cx->args[1].list_count)) {
		session_tagged(s, cx->tag, "BAD", NULL, "STATUS needs a mailbox and a list of items");
		return;
	}
	for (size_t i = 0; i < cx->args[1].list_count; i++)
		if (arg_is_atom(&cx->args[1].list[i], "HIGHESTMODSEQ"))
			s->condstore = true;
	const char *error = NULL;
	int ret = account_refresh(s->acct, &error);
	if (ret < 0) {
		session_tagged_error(s, cx->tag, ret, error, "STATUS");
		return;
	}
	struct mailbox *mb = account_mailbox_find(s->acct, name);
	if (mb == NULL) {
		session_tagged(s, cx->tag, "NO", "NONEXISTENT", "Mailbox does not exist");
		return;
	}
	struct buf b;
	buf_init(&b, 0);
	status_write(s, &b, mb, cx->args[1].list, cx->args[1].list_count);
	conn_write(s->conn, buf_head(&b), buf_used(&b));
	buf_deinit(&b);
	session_tagged(s, cx->tag, "OK", NULL, "STATUS completed");
}

/* ---- APPEND ---- */

/* Parses a flag list into bits and keywords (arena). false: bad syntax.
 * Shared with STORE. */
bool parse_flag_list(struct arena *a, const struct imap_arg *args, size_t n,
		     uint32_t *flags_r, struct kstr **kw_r, size_t *nkw_r)
{
	struct kstr *kw = arena_alloc(a, (n ? n : 1) * sizeof(struct kstr));
	size_t nkw = 0;
	uint32_t flags = 0;
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *f = &args[i];
		if (f->type != IMAP_ARG_ATOM || f->str.len == 0)
			return false;
		if (f->str.p[0] == '\\') {
			if (kstr_eq_ci(f->str, "\\Recent"))
				continue;
			uint32_t bit = index_flag_from_name(f->str);
			if (bit == 0)
				return false;
			flags |= bit;
			continue;
		}
		for (size_t k = 0; k < f->str.len; k++)
			if (!imap_is_atom_char(f->str.p[k]) || f->str.p[k] == ']')
				return false;
		bool dup = false;
		for (size_t k = 0; k < nkw; k++)
			if (kstr_eq_ci(kw[k], (const char *)f->str.p) && kw[k].len == f->str.len)
				dup = true;
		if (!dup)
			kw[nkw++] = f->str;
	}
	*flags_r = flags;
	*kw_r = kw;
	*nkw_r = nkw;
	return true;
}

struct append_item {
	uint32_t flags;
	struct kstr *kw;
	size_t nkw;
	int64_t idate;
	int tz;
	struct kstr data;
};

void cmd_append(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	if (cx->nargs < 2 || !arg_mailbox(cx, &cx->args[0], &name)) {
		session_tagged(s, cx->tag, "BAD", NULL, "APPEND needs a mailbox and a message");
		return;
	}
	/* Parse every message's arguments before storing anything. */
	size_t cap = cx->nargs, nitems = 0;
	struct append_item *items = arena_zalloc(cx->a, cap * sizeof(*items));
	size_t i = 1;
	while (i < cx->nargs) {
		struct append_item *it = &items[nitems];
		it->idate = time_wall_sec();
		it->tz = 0;
		if (cx->args[i].type == IMAP_ARG_LIST) {
			if (!parse_flag_list(cx->a, cx->args[i].list, cx->args[i].list_count,
					     &it->flags, &it->kw, &it->nkw)) {
				session_tagged(s, cx->tag, "BAD", NULL, "Invalid flags");
				return;
			}
			i++;
		}
		if (i < cx->nargs && (cx->args[i].type == IMAP_ARG_STRING)) {
			if (!imap_datetime_parse(cx->args[i].str, &it->idate, &it->tz)) {
				session_tagged(s, cx->tag, "BAD", NULL, "Invalid date-time");
				return;
			}
			i++;
		}
		if (i >= cx->nargs) {
			session_tagged(s, cx->tag, "BAD", NULL, "APPEND needs a message literal");
			return;
		}
		const struct imap_arg *m = &cx->args[i++];
		/* RFC 6855: APPEND ... UTF8 (~{n}...) after ENABLE UTF8=ACCEPT */
		if (arg_is_atom(m, "UTF8") && s->utf8_enabled && i < cx->nargs &&
		    cx->args[i].type == IMAP_ARG_LIST && cx->args[i].list_count == 1) {
			m = &cx->args[i++].list[0];
		}
		if (m->type == IMAP_ARG_STREAMED) {
			it->data = conn_literal_bytes(m->stream_handle);
		} else if (m->type == IMAP_ARG_LITERAL) {
			it->data = m->str;
		} else {
			session_tagged(s, cx->tag, "BAD", NULL, "APPEND needs a message literal");
			return;
		}
		/* NUL is not a CHAR8 (RFC 3501 9): only a literal8 (BINARY) may
		 * carry one. */
		if (!m->literal8 && it->data.len > 0 && memchr(it->data.p, 0, it->data.len)) {
			session_tagged(s, cx->tag, "NO", "PARSE",
				       "Message contains NUL; use a literal8 (BINARY)");
			return;
		}
		nitems++;
	}
	/* RFC 3502: a zero-length message in MULTIAPPEND cancels the whole
	 * command. */
	for (size_t k = 0; nitems > 1 && k < nitems; k++) {
		if (items[k].data.len == 0) {
			session_tagged(s, cx->tag, "NO", NULL, "APPEND cancelled by an empty message");
			return;
		}
	}
	const char *error = NULL;
	struct mailbox *mb = account_mailbox_find(s->acct, name);
	if (mb == NULL) {
		int ret = account_refresh(s->acct, &error);
		if (ret < 0) {
			session_tagged_error(s, cx->tag, ret, error, "APPEND");
			return;
		}
		mb = account_mailbox_find(s->acct, name);
		if (mb == NULL) {
			session_tagged(s, cx->tag, "NO", "TRYCREATE", "Mailbox does not exist");
			return;
		}
	}
	uint64_t mbid = mb->id;
	uint64_t total = 0;
	for (size_t k = 0; k < nitems; k++)
		total += items[k].data.len;
	if (!session_quota_allows(s, total)) {
		session_tagged(s, cx->tag, "NO", "OVERQUOTA", "Quota exceeded");
		return;
	}
	struct index_txn *t = index_txn_begin(s->acct);
	int first_op = -1;
	for (size_t k = 0; k < nitems; k++) {
		struct append_item *it = &items[k];
		struct mime_info mi;
		mime_parse(it->data.p, it->data.len, &mi);
		struct msg_meta meta = {
			.refs = 1,
			.envelope = mi.envelope,
			.bodystructure = mi.bodystructure,
			.body = mi.body,
			.sent_date = mi.sent_date,
			.sent_tz_min = mi.sent_tz_min,
			.header_size = mi.header_size,
		};
		struct index_append ap;
		memset(&ap, 0, sizeof(ap));
		int ret = index_message_put(s->acct, it->data.p, it->data.len, ap.guid, &error);
		if (ret < 0) {
			mime_info_free(&mi);
			index_txn_free(&t);
			session_tagged_error(s, cx->tag, ret, error, "APPEND");
			return;
		}
		ap.size = it->data.len;
		ap.internaldate = it->idate;
		ap.idate_tz_min = it->tz;
		ap.flags = it->flags;
		ap.keywords = it->kw;
		ap.nkeywords = it->nkw;
		ap.meta = &meta;
		int op = index_txn_append(t, mbid, &ap);
		mime_info_free(&mi);
		if (op < 0) {
			index_txn_free(&t);
			session_tagged_error(s, cx->tag, op, NULL, "APPEND");
			return;
		}
		if (first_op < 0)
			first_op = op;
	}
	int ret = index_txn_commit(t, &error);
	if (ret < 0) {
		index_txn_free(&t);
		if (ret == KURA_ENOTFOUND)
			session_tagged(s, cx->tag, "NO", "TRYCREATE", "Mailbox does not exist");
		else
			session_tagged_error(s, cx->tag, ret, error, "APPEND");
		return;
	}
	uint32_t *uids = arena_alloc(cx->a, nitems * sizeof(uint32_t));
	uint32_t uidvalidity = 0;
	for (size_t k = 0; k < nitems; k++) {
		const struct index_op_result *r = index_txn_result(t, first_op + (int)k);
		uids[k] = r && r->nuids ? r->uids[0] : 0;
		if (r)
			uidvalidity = r->uidvalidity;
	}
	index_txn_free(&t);
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "APPENDUID %u ", uidvalidity);
	seqset_write(&b, uids, nitems);
	session_tagged(s, cx->tag, "OK", buf_cstr(&b), "APPEND completed");
	buf_deinit(&b);
}
