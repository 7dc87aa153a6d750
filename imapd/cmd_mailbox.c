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

static void do_select(struct cmd_ctx *cx, bool readonly)
{
	struct session *s = cx->s;
	struct kstr name;
	const char *what = readonly ? "EXAMINE" : "SELECT";

	if (cx->nargs != 1 || !arg_mailbox(cx, &cx->args[0], &name)) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s needs a valid mailbox name", what);
		return;
	}
	/* RFC 3501: a failed SELECT leaves no mailbox selected. */
	bool had = s->state == SESSION_SELECTED;
	session_unselect(s);
	if (had && (s->qresync || s->rev2))
		session_untagged(s, "OK [CLOSED] Previous mailbox closed");

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
	session_untagged(s, "%zu RECENT", s->nrecent);
	for (size_t i = 0; i < mb->count; i++) {
		if (!(mb->msgs[i].flags & MSG_SEEN)) {
			session_untagged(s, "OK [UNSEEN %zu] First unseen", i + 1);
			break;
		}
	}
	session_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", mb->uidvalidity);
	session_untagged(s, "OK [UIDNEXT %u] Predicted next UID", mb->uidnext);
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

void cmd_create(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	if (cx->nargs < 1 || !arg_mailbox(cx, &cx->args[0], &name)) {
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
	op = index_txn_create_mailbox(t, name, 0);
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
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ MBOX_SPECIAL_ALL, "\\All" }, { MBOX_SPECIAL_ARCHIVE, "\\Archive" },
		{ MBOX_SPECIAL_DRAFTS, "\\Drafts" }, { MBOX_SPECIAL_FLAGGED, "\\Flagged" },
		{ MBOX_SPECIAL_JUNK, "\\Junk" }, { MBOX_SPECIAL_SENT, "\\Sent" },
		{ MBOX_SPECIAL_TRASH, "\\Trash" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (su & names[i].bit) {
			buf_append_str(b, " ");
			buf_append_str(b, names[i].name);
		}
	}
}

static void list_reply(struct session *s, const char *kind, const char *attrs, struct kstr name)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* %s (%s) \"/\" ", kind, attrs);
	imap_write_astring(&b, name);
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

static bool list_pattern(struct cmd_ctx *cx, struct kstr *pat_r, bool *empty_r)
{
	if (cx->nargs != 2 || !arg_is_astring(&cx->args[0]) || !arg_is_astring(&cx->args[1]))
		return false;
	struct kstr ref = cx->args[0].str, mbox = cx->args[1].str;
	*empty_r = mbox.len == 0;
	if (mbox.len > 0 && mbox.p[0] == HIER_SEP)
		ref.len = 0;
	char *p = arena_alloc(cx->a, ref.len + mbox.len + 1);
	memcpy(p, ref.p, ref.len);
	memcpy(p + ref.len, mbox.p, mbox.len);
	p[ref.len + mbox.len] = '\0';
	*pat_r = kstr_make(p, ref.len + mbox.len);
	return true;
}

void cmd_list(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr pat;
	bool empty;
	if (!list_pattern(cx, &pat, &empty)) {
		session_tagged(s, cx->tag, "BAD", NULL, "LIST needs a reference and a pattern");
		return;
	}
	if (empty) {
		list_reply(s, "LIST", "\\Noselect", kstr_make("", 0));
		session_tagged(s, cx->tag, "OK", NULL, "LIST completed");
		return;
	}
	bool pct = memchr(pat.p, '%', pat.len) != NULL;
	struct name_set seen = { 0 };
	size_t n = account_mailbox_count(s->acct);
	for (size_t i = 0; i < n; i++) {
		struct mailbox *mb = account_mailbox_at(s->acct, i);
		struct kstr name = kstr_cstr(mb->name);
		if (list_match(pat, name)) {
			struct buf attrs;
			buf_init(&attrs, 0);
			buf_append_str(&attrs, has_children(s->acct, name) ? "\\HasChildren" :
					       "\\HasNoChildren");
			special_use_attrs(&attrs, mb->special_use);
			list_reply(s, "LIST", buf_cstr(&attrs), name);
			buf_deinit(&attrs);
			name_set_add(&seen, name);
		}
		if (!pct)
			continue;
		/* Superiors that are not mailboxes but match a '%' level. */
		for (size_t k = 1; k < name.len; k++) {
			if (name.p[k] != HIER_SEP)
				continue;
			struct kstr parent = kstr_make(name.p, k);
			if (account_mailbox_find(s->acct, parent) != NULL)
				continue;
			if (list_match(pat, parent) && name_set_add(&seen, parent))
				list_reply(s, "LIST", "\\Noselect \\HasChildren", parent);
		}
	}
	name_set_free(&seen);
	session_tagged(s, cx->tag, "OK", NULL, "LIST completed");
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

void cmd_status(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct kstr name;
	if (cx->nargs != 2 || !arg_mailbox(cx, &cx->args[0], &name) ||
	    cx->args[1].type != IMAP_ARG_LIST || cx->args[1].list_count == 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "STATUS needs a mailbox and a list of items");
		return;
	}
	const struct imap_arg *items = cx->args[1].list;
	size_t nitems = cx->args[1].list_count;
	for (size_t i = 0; i < nitems; i++) {
		const struct imap_arg *it = &items[i];
		if (!(arg_is_atom(it, "MESSAGES") || arg_is_atom(it, "RECENT") ||
		      arg_is_atom(it, "UIDNEXT") || arg_is_atom(it, "UIDVALIDITY") ||
		      arg_is_atom(it, "UNSEEN"))) {
			session_tagged(s, cx->tag, "BAD", NULL, "Unknown STATUS item");
			return;
		}
	}
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
	buf_append_str(&b, "* STATUS ");
	imap_write_astring(&b, name);
	buf_append_str(&b, " (");
	for (size_t i = 0; i < nitems; i++) {
		const struct imap_arg *it = &items[i];
		if (i > 0)
			buf_append_str(&b, " ");
		if (arg_is_atom(it, "MESSAGES")) {
			buf_printf(&b, "MESSAGES %zu", mb->count);
		} else if (arg_is_atom(it, "RECENT")) {
			size_t first = mailbox_msg_lower_bound(mb, mb->recent_floor);
			buf_printf(&b, "RECENT %zu", mb->count - first);
		} else if (arg_is_atom(it, "UIDNEXT")) {
			buf_printf(&b, "UIDNEXT %u", mb->uidnext);
		} else if (arg_is_atom(it, "UIDVALIDITY")) {
			buf_printf(&b, "UIDVALIDITY %u", mb->uidvalidity);
		} else if (arg_is_atom(it, "UNSEEN")) {
			size_t unseen = 0;
			for (size_t k = 0; k < mb->count; k++)
				if (!(mb->msgs[k].flags & MSG_SEEN))
					unseen++;
			buf_printf(&b, "UNSEEN %zu", unseen);
		}
	}
	buf_append_str(&b, ")\r\n");
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
		if (m->type == IMAP_ARG_STREAMED) {
			struct conn_literal *l = m->stream_handle;
			it->data = buf_kstr(&l->data);
		} else if (m->type == IMAP_ARG_LITERAL) {
			it->data = m->str;
		} else {
			session_tagged(s, cx->tag, "BAD", NULL, "APPEND needs a message literal");
			return;
		}
		nitems++;
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
