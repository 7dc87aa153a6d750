/* Commands on the selected mailbox: CLOSE, UNSELECT, EXPUNGE, SEARCH,
 * FETCH, STORE, COPY, MOVE (and their UID forms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/fetch.h"
#include "imapd/imap_util.h"
#include "imapd/imapd.h"
#include "imapd/search.h"
#include "imapd/session.h"
#include "index/index.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

#define FETCH_FLUSH_AT (256 * 1024)
#define FETCH_MSG_MAX (1ULL << 31)

/* UIDs of \Deleted messages of the view, optionally within uids_in. */
static size_t deleted_uids(struct session *s, struct arena *a, const uint32_t *uids_in,
			   size_t nin, bool use_set, uint32_t **out_r)
{
	struct mailbox *mb = session_mailbox(s);
	uint32_t *out = arena_alloc(a, (s->nuids ? s->nuids : 1) * sizeof(uint32_t));
	size_t n = 0, j = 0;
	if (mb == NULL) {
		*out_r = out;
		return 0;
	}
	for (size_t i = 0; i < s->nuids; i++) {
		uint32_t uid = s->uids[i];
		if (use_set) {
			while (j < nin && uids_in[j] < uid)
				j++;
			if (j >= nin || uids_in[j] != uid)
				continue;
		}
		struct index_msg *m = mailbox_msg_by_uid(mb, uid);
		if (m != NULL && (m->flags & MSG_DELETED))
			out[n++] = uid;
	}
	*out_r = out;
	return n;
}

static int expunge_deleted(struct cmd_ctx *cx, const uint32_t *set, size_t nset, bool use_set,
			   const char **error_r)
{
	struct session *s = cx->s;
	uint32_t *uids;
	size_t n = deleted_uids(s, cx->a, set, nset, use_set, &uids);
	if (n == 0)
		return 0;
	struct index_txn *t = index_txn_begin(s->acct);
	int op = index_txn_expunge(t, s->sel_id, uids, n);
	int ret = op < 0 ? op : index_txn_commit(t, error_r);
	index_txn_free(&t);
	return ret;
}

void cmd_close(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	if (cx->nargs != 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "CLOSE takes no arguments");
		return;
	}
	if (!s->sel_readonly && session_mailbox(s) != NULL) {
		const char *error = NULL;
		int ret = expunge_deleted(cx, NULL, 0, false, &error);
		if (ret < 0) {
			session_tagged_error(s, cx->tag, ret, error, "CLOSE");
			return;
		}
	}
	session_unselect(s);
	session_tagged(s, cx->tag, "OK", NULL, "CLOSE completed");
}

void cmd_unselect(struct cmd_ctx *cx)
{
	if (cx->nargs != 0) {
		session_tagged(cx->s, cx->tag, "BAD", NULL, "UNSELECT takes no arguments");
		return;
	}
	session_unselect(cx->s);
	session_tagged(cx->s, cx->tag, "OK", NULL, "UNSELECT completed");
}

void cmd_expunge(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	uint32_t *set = NULL;
	size_t nset = 0;
	const char *error = NULL;
	if (cx->nargs != (cx->uid ? 1u : 0u) ||
	    (cx->uid && cx->args[0].type != IMAP_ARG_ATOM)) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", cx->uid ?
			       "UID EXPUNGE needs a UID set" : "EXPUNGE takes no arguments");
		return;
	}
	if (cx->uid) {
		int ret = session_resolve_set(s, cx->a, cx->args[0].str, true, &set, &nset, &error);
		if (ret < 0) {
			session_tagged(s, cx->tag, "BAD", NULL, "%s", error);
			return;
		}
	}
	if (s->sel_readonly) {
		session_tagged(s, cx->tag, "NO", "READ-ONLY", "Mailbox is read-only");
		return;
	}
	int ret = expunge_deleted(cx, set, nset, cx->uid, &error);
	if (ret < 0) {
		session_tagged_error(s, cx->tag, ret, error, "EXPUNGE");
		return;
	}
	session_sync(s, true);
	session_tagged(s, cx->tag, "OK", NULL, "EXPUNGE completed");
}

/* ---- SEARCH ---- */

struct load_ctx {
	struct session *s;
	struct arena *a;
	uint8_t guid[INDEX_GUID_LEN];
	struct buf data;
};

static int load_message(void *ctx, struct kstr *msg_r)
{
	struct load_ctx *lc = ctx;
	const char *error = NULL;
	buf_reset(&lc->data);
	int ret = index_message_get(lc->s->acct, lc->guid, 0, UINT64_MAX, &lc->data, &error);
	if (ret < 0)
		return ret;
	*msg_r = buf_kstr(&lc->data);
	return 0;
}

void cmd_search(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct search_prog *prog;
	const char *error = NULL;
	if (cx->nargs == 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "SEARCH needs criteria");
		return;
	}
	uint32_t max_uid = s->nuids ? s->uids[s->nuids - 1] : 0;
	int ret = search_parse(cx->a, cx->args, cx->nargs, (uint32_t)s->nuids, max_uid, &prog,
			       &error);
	if (ret == SEARCH_EBADCHARSET) {
		session_tagged(s, cx->tag, "NO", "BADCHARSET (UTF-8 US-ASCII)",
			       "Unsupported charset");
		return;
	}
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error ? error : "Invalid search");
		return;
	}
	struct load_ctx lc = { .s = s, .a = cx->a };
	buf_init(&lc.data, FETCH_MSG_MAX);
	bool need = search_prog_needs_message(prog);
	struct buf out;
	buf_init(&out, 0);
	buf_append_str(&out, "* SEARCH");
	/* Snapshot the view: loading bodies may suspend. */
	size_t n = s->nuids;
	uint32_t *view = arena_alloc(cx->a, (n ? n : 1) * sizeof(uint32_t));
	memcpy(view, s->uids, n * sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		struct mailbox *mb = session_mailbox(s);
		if (mb == NULL)
			break;
		struct index_msg *m = mailbox_msg_by_uid(mb, view[i]);
		if (m == NULL)
			continue;
		struct search_msg sm = {
			.mb = mb, .m = m, .msn = (uint32_t)i + 1,
			.recent = session_is_recent(s, view[i]),
			.load = load_message, .load_ctx = &lc,
		};
		if (need)
			memcpy(lc.guid, m->guid, INDEX_GUID_LEN);
		bool match = false;
		ret = search_match(prog, &sm, &match);
		if (ret < 0) {
			buf_deinit(&out);
			buf_deinit(&lc.data);
			session_tagged_error(s, cx->tag, ret, NULL, "SEARCH");
			return;
		}
		if (match)
			buf_printf(&out, " %u", cx->uid ? view[i] : (uint32_t)i + 1);
	}
	buf_append_str(&out, "\r\n");
	conn_write(s->conn, buf_head(&out), buf_used(&out));
	buf_deinit(&out);
	buf_deinit(&lc.data);
	session_tagged(s, cx->tag, "OK", NULL, "SEARCH completed");
}

/* ---- STORE ---- */

static void store_respond(struct session *s, const uint32_t *uids, size_t n, bool uid_cmd)
{
	struct mailbox *mb = session_mailbox(s);
	if (mb == NULL)
		return;
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		struct index_msg *m = mailbox_msg_by_uid(mb, uids[i]);
		uint32_t msn = session_msn(s, uids[i]);
		if (m == NULL || msn == 0)
			continue;
		buf_reset(&b);
		buf_printf(&b, "* %u FETCH (", msn);
		if (uid_cmd)
			buf_printf(&b, "UID %u ", m->uid);
		buf_append_str(&b, "FLAGS (");
		index_flags_write(&b, mb, m, session_is_recent(s, m->uid));
		buf_append_str(&b, "))\r\n");
		conn_write(s->conn, buf_head(&b), buf_used(&b));
	}
	buf_deinit(&b);
}

void cmd_store(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	const char *error = NULL;
	if (cx->nargs < 3 || cx->args[0].type != IMAP_ARG_ATOM ||
	    cx->args[1].type != IMAP_ARG_ATOM) {
		session_tagged(s, cx->tag, "BAD", NULL, "STORE needs a set, an item and flags");
		return;
	}
	struct kstr item = cx->args[1].str;
	enum store_mode mode = STORE_MODE_REPLACE;
	if (item.len > 0 && item.p[0] == '+') {
		mode = STORE_MODE_ADD;
		item.p++;
		item.len--;
	} else if (item.len > 0 && item.p[0] == '-') {
		mode = STORE_MODE_REMOVE;
		item.p++;
		item.len--;
	}
	bool silent = false;
	if (kstr_eq_ci(item, "FLAGS.SILENT"))
		silent = true;
	else if (!kstr_eq_ci(item, "FLAGS")) {
		session_tagged(s, cx->tag, "BAD", NULL, "Unknown STORE item");
		return;
	}
	const struct imap_arg *fl = &cx->args[2];
	size_t nfl = cx->nargs - 2;
	if (fl->type == IMAP_ARG_LIST) {
		if (cx->nargs != 3) {
			session_tagged(s, cx->tag, "BAD", NULL, "Too many arguments");
			return;
		}
		nfl = fl->list_count;
		fl = fl->list;
	}
	uint32_t flags;
	struct kstr *kw;
	size_t nkw;
	if (!parse_flag_list(cx->a, fl, nfl, &flags, &kw, &nkw)) {
		session_tagged(s, cx->tag, "BAD", NULL, "Invalid flags");
		return;
	}
	uint32_t *uids;
	size_t n;
	int ret = session_resolve_set(s, cx->a, cx->args[0].str, cx->uid, &uids, &n, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error);
		return;
	}
	if (s->sel_readonly) {
		session_tagged(s, cx->tag, "NO", "READ-ONLY", "Mailbox is read-only");
		return;
	}
	if (n > 0) {
		struct index_txn *t = index_txn_begin(s->acct);
		int op = index_txn_store(t, s->sel_id, uids, n, mode, flags, kw, nkw, 0);
		ret = op < 0 ? op : index_txn_commit(t, &error);
		if (ret < 0) {
			index_txn_free(&t);
			session_tagged_error(s, cx->tag, ret, error, "STORE");
			return;
		}
		const struct index_op_result *r = index_txn_result(t, op);
		if (r != NULL)
			session_note_own_modseq(s, r->modseq);
		index_txn_free(&t);
	}
	if (!silent)
		store_respond(s, uids, n, cx->uid);
	session_tagged(s, cx->tag, "OK", NULL, "STORE completed");
}

/* ---- FETCH ---- */

void cmd_fetch(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct conn *c = s->conn;
	const char *error = NULL;
	struct fetch_items *items;
	if (cx->nargs != 2 || cx->args[0].type != IMAP_ARG_ATOM) {
		session_tagged(s, cx->tag, "BAD", NULL, "FETCH needs a set and data items");
		return;
	}
	int ret = fetch_parse(cx->a, &cx->args[1], cx->uid, &items, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error ? error : "Invalid data items");
		return;
	}
	uint32_t *uids;
	size_t n;
	ret = session_resolve_set(s, cx->a, cx->args[0].str, cx->uid, &uids, &n, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error);
		return;
	}
	/* Implicit \Seen first, in one commit, so responses show it. */
	bool seen_set = false;
	if (fetch_items_set_seen(items) && !s->sel_readonly && n > 0) {
		struct mailbox *mb = session_mailbox(s);
		uint32_t *unseen = arena_alloc(cx->a, n * sizeof(uint32_t));
		size_t nu = 0;
		for (size_t i = 0; mb != NULL && i < n; i++) {
			struct index_msg *m = mailbox_msg_by_uid(mb, uids[i]);
			if (m != NULL && !(m->flags & MSG_SEEN))
				unseen[nu++] = uids[i];
		}
		if (nu > 0) {
			struct index_txn *t = index_txn_begin(s->acct);
			int op = index_txn_store(t, s->sel_id, unseen, nu, STORE_MODE_ADD, MSG_SEEN,
						 NULL, 0, 0);
			ret = op < 0 ? op : index_txn_commit(t, &error);
			if (ret < 0) {
				index_txn_free(&t);
				session_tagged_error(s, cx->tag, ret, error, "FETCH");
				return;
			}
			const struct index_op_result *r = index_txn_result(t, op);
			if (r != NULL)
				session_note_own_modseq(s, r->modseq);
			index_txn_free(&t);
			seen_set = true;
		}
	}
	bool need = fetch_items_need_message(items);
	bool add_flags = seen_set && !fetch_items_has_flags(items);
	struct buf msg;
	buf_init(&msg, FETCH_MSG_MAX);
	struct buf out;
	buf_init(&out, 0);
	bool expunged = false;
	for (size_t i = 0; i < n; i++) {
		struct mailbox *mb = session_mailbox(s);
		if (mb == NULL)
			break;
		struct index_msg *m = mailbox_msg_by_uid(mb, uids[i]);
		if (m == NULL) {
			expunged = true;
			continue;
		}
		if (need) {
			uint8_t guid[INDEX_GUID_LEN];
			memcpy(guid, m->guid, sizeof(guid));
			buf_reset(&msg);
			ret = index_message_get(s->acct, guid, 0, UINT64_MAX, &msg, &error);
			if (ret < 0) {
				buf_deinit(&msg);
				buf_deinit(&out);
				session_tagged_error(s, cx->tag, ret, error, "FETCH");
				return;
			}
			mb = session_mailbox(s);
			m = mb ? mailbox_msg_by_uid(mb, uids[i]) : NULL;
			if (m == NULL) {
				expunged = true;
				continue;
			}
		}
		uint32_t msn = session_msn(s, uids[i]);
		buf_reset(&out);
		ret = fetch_render(&out, items, mb, m, msn, session_is_recent(s, m->uid),
				   add_flags, buf_kstr(&msg));
		if (ret == KURA_ECORRUPT) {
			buf_deinit(&msg);
			buf_deinit(&out);
			session_tagged(s, cx->tag, "NO", "UNKNOWN-CTE",
				       "Unknown content-transfer-encoding");
			return;
		}
		if (ret < 0) {
			buf_deinit(&msg);
			buf_deinit(&out);
			session_tagged_error(s, cx->tag, ret, NULL, "FETCH");
			return;
		}
		conn_write(c, buf_head(&out), buf_used(&out));
		if (c->out.len > FETCH_FLUSH_AT && !conn_flush_wait(c, FETCH_FLUSH_AT / 4))
			break;
	}
	buf_deinit(&msg);
	buf_deinit(&out);
	if (expunged)
		session_tagged(s, cx->tag, "NO", "EXPUNGEISSUED",
			       "Some messages were expunged meanwhile");
	else
		session_tagged(s, cx->tag, "OK", NULL, "FETCH completed");
}

/* ---- COPY / MOVE ---- */

static void do_copy(struct cmd_ctx *cx, bool move)
{
	struct session *s = cx->s;
	const char *what = move ? "MOVE" : "COPY";
	const char *error = NULL;
	struct kstr name;
	if (cx->nargs != 2 || cx->args[0].type != IMAP_ARG_ATOM ||
	    !arg_mailbox(cx, &cx->args[1], &name)) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s needs a set and a mailbox", what);
		return;
	}
	uint32_t *uids;
	size_t n;
	int ret = session_resolve_set(s, cx->a, cx->args[0].str, cx->uid, &uids, &n, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error);
		return;
	}
	if (move && s->sel_readonly) {
		session_tagged(s, cx->tag, "NO", "READ-ONLY", "Mailbox is read-only");
		return;
	}
	struct mailbox *dst = account_mailbox_find(s->acct, name);
	if (dst == NULL) {
		session_tagged(s, cx->tag, "NO", "TRYCREATE", "Mailbox does not exist");
		return;
	}
	if (n == 0) {
		session_tagged(s, cx->tag, "OK", NULL, "%s completed (no messages)", what);
		return;
	}
	struct index_txn *t = index_txn_begin(s->acct);
	int op = index_txn_copy(t, s->sel_id, uids, n, dst->id, move);
	ret = op < 0 ? op : index_txn_commit(t, &error);
	if (ret < 0) {
		index_txn_free(&t);
		if (ret == KURA_ENOTFOUND)
			session_tagged(s, cx->tag, "NO", "TRYCREATE", "Mailbox does not exist");
		else
			session_tagged_error(s, cx->tag, ret, error, what);
		return;
	}
	const struct index_op_result *r = index_txn_result(t, op);
	struct buf code;
	buf_init(&code, 0);
	if (r != NULL && r->nuids > 0) {
		buf_printf(&code, "COPYUID %u ", r->uidvalidity);
		seqset_write(&code, r->src_uids, r->nuids);
		buf_append_str(&code, " ");
		seqset_write(&code, r->uids, r->nuids);
	}
	index_txn_free(&t);
	if (move) {
		if (buf_used(&code) > 0)
			session_untagged(s, "OK [%s] Moved", buf_cstr(&code));
		session_sync(s, true);
		session_tagged(s, cx->tag, "OK", NULL, "MOVE completed");
	} else {
		session_tagged(s, cx->tag, "OK", buf_used(&code) ? buf_cstr(&code) : NULL,
			       "COPY completed");
	}
	buf_deinit(&code);
}

void cmd_copy(struct cmd_ctx *cx)
{
	do_copy(cx, false);
}

void cmd_move(struct cmd_ctx *cx)
{
	do_copy(cx, true);
}
