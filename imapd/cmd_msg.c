/* Commands on the selected mailbox: CLOSE, UNSELECT, EXPUNGE, SEARCH,
 * FETCH, STORE, COPY, MOVE (and their UID forms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/fetch.h"
#include "imapd/imap_util.h"
#include "imapd/imapd.h"
#include "imapd/search.h"
#include "imapd/sort.h"
#include "imapd/thread.h"
#include "index/mime.h"
#include "imapd/session.h"
#include "index/index.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

#define FETCH_FLUSH_AT (256 * 1024)
#define FETCH_MSG_MAX (1ULL << 31)

/* Tagged OK that carries [HIGHESTMODSEQ n] once QRESYNC is on (RFC 7162
 * 3.2.10: after EXPUNGE and UID EXPUNGE). */
static void session_tagged_ok_modseq(struct session *s, struct kstr tag, const char *text)
{
	struct mailbox *mb = session_mailbox(s);
	if (s->qresync && mb != NULL) {
		char code[48];
		snprintf(code, sizeof(code), "HIGHESTMODSEQ %llu",
			 (unsigned long long)mb->highestmodseq);
		session_tagged(s, tag, "OK", code, "%s", text);
	} else {
		session_tagged(s, tag, "OK", NULL, "%s", text);
	}
}

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
	struct mailbox *mb = session_mailbox(s);
	uint64_t hms = mb != NULL ? mb->highestmodseq : 0;
	bool qr = s->qresync && mb != NULL;
	session_unselect(s);
	if (qr) {
		char code[48];
		snprintf(code, sizeof(code), "HIGHESTMODSEQ %llu", (unsigned long long)hms);
		session_tagged(s, cx->tag, "OK", code, "CLOSE completed");
	} else {
		session_tagged(s, cx->tag, "OK", NULL, "CLOSE completed");
	}
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
	session_tagged_ok_modseq(s, cx->tag, "EXPUNGE completed");
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

enum search_ret {
	SRET_MIN = 1 << 0,
	SRET_MAX = 1 << 1,
	SRET_ALL = 1 << 2,
	SRET_COUNT = 1 << 3,
	SRET_SAVE = 1 << 4,
};

/* "RETURN (...)" of ESEARCH (RFC 4731); returns the number of args
 * consumed, or -1 for bad syntax. */
static int parse_search_return(const struct imap_arg *args, size_t n, unsigned *ret_r,
			       bool *esearch_r)
{
	if (n < 2 || !arg_is_atom(&args[0], "RETURN"))
		return 0;
	if (args[1].type != IMAP_ARG_LIST)
		return -1;
	unsigned r = 0;
	for (size_t i = 0; i < args[1].list_count; i++) {
		const struct imap_arg *a = &args[1].list[i];
		if (arg_is_atom(a, "MIN"))
			r |= SRET_MIN;
		else if (arg_is_atom(a, "MAX"))
			r |= SRET_MAX;
		else if (arg_is_atom(a, "ALL"))
			r |= SRET_ALL;
		else if (arg_is_atom(a, "COUNT"))
			r |= SRET_COUNT;
		else if (arg_is_atom(a, "SAVE"))
			r |= SRET_SAVE;
		else
			return -1;
	}
	if (r == 0)
		r = SRET_ALL;
	*ret_r = r;
	*esearch_r = true;
	return 2;
}

/* Runs search criteria over the view: *hits_r gets matching UIDs in view
 * order (arena). Answers the client itself on failure (returns < 0). */
static int run_search(struct cmd_ctx *cx, const struct imap_arg *args, size_t nargs,
		      uint32_t **hits_r, uint32_t **msns_r, uint64_t **modseqs_r, size_t *nhits_r,
		      uint64_t *max_modseq_r, bool *want_modseq_r)
{
	struct session *s = cx->s;
	struct search_prog *prog;
	const char *error = NULL;
	if (nargs == 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "Missing search criteria");
		return -1;
	}
	uint32_t max_uid = s->nuids ? s->uids[s->nuids - 1] : 0;
	int ret = search_parse(cx->a, args, nargs, (uint32_t)s->nuids, max_uid, &prog, &error);
	if (ret == SEARCH_EBADCHARSET) {
		session_tagged(s, cx->tag, "NO", "BADCHARSET (UTF-8 US-ASCII)",
			       "Unsupported charset");
		return -1;
	}
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error ? error : "Invalid search");
		return -1;
	}
	*want_modseq_r = search_prog_uses_modseq(prog);
	if (*want_modseq_r)
		s->condstore = true;
	struct load_ctx lc = { .s = s, .a = cx->a };
	buf_init(&lc.data, FETCH_MSG_MAX);
	bool need = search_prog_needs_message(prog);
	/* Snapshot the view: loading bodies may suspend. */
	size_t n = s->nuids;
	uint32_t *view = arena_alloc(cx->a, (n ? n : 1) * sizeof(uint32_t));
	memcpy(view, s->uids, n * sizeof(uint32_t));
	uint32_t *hits = arena_alloc(cx->a, (n ? n : 1) * sizeof(uint32_t));
	uint32_t *msns = arena_alloc(cx->a, (n ? n : 1) * sizeof(uint32_t));
	uint64_t *modseqs = arena_alloc(cx->a, (n ? n : 1) * sizeof(uint64_t));
	size_t nhits = 0;
	uint64_t max_modseq = 0;
	for (size_t i = 0; i < n; i++) {
		struct mailbox *mb = session_mailbox(s);
		if (mb == NULL)
			break;
		struct index_msg *m = mailbox_msg_by_uid(mb, view[i]);
		if (m == NULL)
			continue;
		uint64_t modseq = m->modseq;
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
			buf_deinit(&lc.data);
			session_tagged_error(s, cx->tag, ret, NULL, "SEARCH");
			return -1;
		}
		if (match) {
			msns[nhits] = (uint32_t)i + 1;
			modseqs[nhits] = modseq;
			hits[nhits++] = view[i];
			if (modseq > max_modseq)
				max_modseq = modseq;
		}
	}
	buf_deinit(&lc.data);
	*hits_r = hits;
	*msns_r = msns;
	if (modseqs_r != NULL)
		*modseqs_r = modseqs;
	*nhits_r = nhits;
	*max_modseq_r = max_modseq;
	return 0;
}

/* SEARCHRES: "$" (or "UID $") in search criteria stands for the saved
 * result; it is rewritten as "(UID set)" or, when empty, "(NOT ALL)". */
static struct imap_arg *saved_as_args(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct imap_arg *l = arena_zalloc(cx->a, sizeof(*l));
	struct imap_arg *v = arena_zalloc(cx->a, 2 * sizeof(*v));
	l->type = IMAP_ARG_LIST;
	l->list = v;
	l->list_count = 2;
	v[0].type = v[1].type = IMAP_ARG_ATOM;
	uint32_t *live = arena_alloc(cx->a, (s->nsaved ? s->nsaved : 1) * sizeof(uint32_t));
	size_t n = 0;
	for (size_t i = 0; i < s->nsaved; i++)
		if (session_msn(s, s->saved_uids[i]) != 0)
			live[n++] = s->saved_uids[i];
	if (n == 0) {
		v[0].str = KSTR_LIT("NOT");
		v[1].str = KSTR_LIT("ALL");
		return l;
	}
	struct buf b;
	buf_init(&b, 0);
	seqset_write(&b, live, n);
	v[0].str = KSTR_LIT("UID");
	v[1].str = arena_kstr(cx->a, buf_kstr(&b));
	buf_deinit(&b);
	return l;
}

static void replace_saved_in(struct cmd_ctx *cx, struct imap_arg *args, size_t *nargs_io)
{
	size_t n = *nargs_io, o = 0;
	for (size_t i = 0; i < n; i++) {
		struct imap_arg *a = &args[i];
		if (a->type == IMAP_ARG_LIST) {
			struct imap_arg *copy = arena_alloc(cx->a, (a->list_count ? a->list_count : 1) *
							    sizeof(*copy));
			memcpy(copy, a->list, a->list_count * sizeof(*copy));
			a->list = copy;
			replace_saved_in(cx, copy, &a->list_count);
			args[o++] = *a;
			continue;
		}
		bool uid_dollar = arg_is_atom(a, "UID") && i + 1 < n &&
				  arg_is_atom(&args[i + 1], "$");
		if (uid_dollar || arg_is_atom(a, "$")) {
			args[o++] = *saved_as_args(cx);
			if (uid_dollar)
				i++;
			continue;
		}
		args[o++] = *a;
	}
	*nargs_io = o;
}

static void replace_saved_result(struct cmd_ctx *cx, const struct imap_arg **args_io,
				 size_t *nargs_io)
{
	struct imap_arg *copy = arena_alloc(cx->a, (*nargs_io ? *nargs_io : 1) * sizeof(*copy));
	memcpy(copy, *args_io, *nargs_io * sizeof(*copy));
	replace_saved_in(cx, copy, nargs_io);
	*args_io = copy;
}

void cmd_search(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	unsigned retopts = 0;
	bool esearch = false;
	int skip = parse_search_return(cx->args, cx->nargs, &retopts, &esearch);
	if (skip < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "Invalid RETURN options");
		return;
	}
	if (s->rev2 && !esearch) {
		/* IMAP4rev2 answers every SEARCH with ESEARCH. */
		esearch = true;
		retopts = SRET_ALL;
	}
	uint32_t *uids, *msns;
	size_t nhits;
	uint64_t max_modseq;
	bool want_modseq;
	uint64_t *modseqs;
	const struct imap_arg *args = cx->args + skip;
	size_t nargs = cx->nargs - (size_t)skip;
	replace_saved_result(cx, &args, &nargs);
	if (run_search(cx, args, nargs, &uids, &msns, &modseqs, &nhits, &max_modseq,
		       &want_modseq) < 0) {
		if (retopts & SRET_SAVE) {
			free(s->saved_uids);	/* RFC 5182: a failed SEARCH empties $ */
			s->saved_uids = NULL;
			s->nsaved = 0;
		}
		return;
	}
	if (retopts & SRET_SAVE) {
		free(s->saved_uids);
		s->saved_uids = xmalloc((nhits ? nhits : 1) * sizeof(uint32_t));
		s->nsaved = 0;
		if ((retopts & (SRET_MIN | SRET_MAX)) && !(retopts & (SRET_ALL | SRET_COUNT))) {
			/* SAVE with MIN/MAX keeps just those (RFC 5182 2.1). */
			if ((retopts & SRET_MIN) && nhits > 0)
				s->saved_uids[s->nsaved++] = uids[0];
			if ((retopts & SRET_MAX) && nhits > 0 && (s->nsaved == 0 ||
								 uids[nhits - 1] != uids[0]))
				s->saved_uids[s->nsaved++] = uids[nhits - 1];
		} else {
			memcpy(s->saved_uids, uids, nhits * sizeof(uint32_t));
			s->nsaved = nhits;
		}
		retopts &= ~(unsigned)SRET_SAVE;
		if (retopts == 0) {
			/* SAVE alone: no ESEARCH response (RFC 5182 2.4). */
			session_tagged(s, cx->tag, "OK", NULL, "SEARCH completed (saved)");
			return;
		}
	}
	/* ESEARCH with only MIN/MAX: MODSEQ of what is returned (RFC 7162
	 * 3.1.5 with RFC 4731). */
	if (esearch && !(retopts & (SRET_ALL | SRET_COUNT)) && nhits > 0) {
		max_modseq = 0;
		if ((retopts & SRET_MIN) && modseqs[0] > max_modseq)
			max_modseq = modseqs[0];
		if ((retopts & SRET_MAX) && modseqs[nhits - 1] > max_modseq)
			max_modseq = modseqs[nhits - 1];
	}
	uint32_t *hits = cx->uid ? uids : msns;
	struct buf out;
	buf_init(&out, 0);
	if (!esearch) {
		buf_append_str(&out, "* SEARCH");
		for (size_t i = 0; i < nhits; i++)
			buf_printf(&out, " %u", hits[i]);
		if (want_modseq && nhits > 0)
			buf_printf(&out, " (MODSEQ %llu)", (unsigned long long)max_modseq);
		buf_append_str(&out, "\r\n");
	} else {
		buf_append_str(&out, "* ESEARCH (TAG ");
		imap_write_string(&out, cx->tag);
		buf_append_str(&out, ")");
		if (cx->uid)
			buf_append_str(&out, " UID");
		if ((retopts & SRET_MIN) && nhits > 0)
			buf_printf(&out, " MIN %u", hits[0]);
		if ((retopts & SRET_MAX) && nhits > 0)
			buf_printf(&out, " MAX %u", hits[nhits - 1]);
		if (retopts & SRET_COUNT)
			buf_printf(&out, " COUNT %zu", nhits);
		if ((retopts & SRET_ALL) && nhits > 0) {
			buf_append_str(&out, " ALL ");
			seqset_write(&out, hits, nhits);
		}
		if (want_modseq && nhits > 0)
			buf_printf(&out, " MODSEQ %llu", (unsigned long long)max_modseq);
		buf_append_str(&out, "\r\n");
	}
	conn_write(s->conn, buf_head(&out), buf_used(&out));
	buf_deinit(&out);
	session_tagged(s, cx->tag, "OK", NULL, "SEARCH completed");
}

/* ---- SORT / THREAD (RFC 5256) ---- */

/* SORT and THREAD: args[0] is the criteria or algorithm, args[1] the
 * charset, the rest search criteria; run as "CHARSET cs criteria..." so
 * that search_parse checks the charset as SEARCH does. */
static int search_after_charset(struct cmd_ctx *cx, uint32_t **uids_r, uint32_t **msns_r,
				size_t *n_r, uint64_t *max_modseq_r, bool *want_modseq_r)
{
	struct imap_arg *args = arena_alloc(cx->a, cx->nargs * sizeof(*args));
	memset(&args[0], 0, sizeof(args[0]));
	args[0].type = IMAP_ARG_ATOM;
	args[0].str = KSTR_LIT("CHARSET");
	memcpy(args + 1, cx->args + 1, (cx->nargs - 1) * sizeof(*args));
	return run_search(cx, args, cx->nargs, uids_r, msns_r, NULL, n_r, max_modseq_r,
			  want_modseq_r);
}

void cmd_sort(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct sort_criteria *crit;
	const char *error = NULL;
	if (cx->nargs < 3 || sort_parse_criteria(cx->a, &cx->args[0], &crit, &error) < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s",
			       error ? error : "SORT needs criteria, a charset and a search");
		return;
	}
	uint32_t *uids, *msns;
	size_t n;
	uint64_t max_modseq;
	bool want_modseq;
	if (search_after_charset(cx, &uids, &msns, &n, &max_modseq, &want_modseq) < 0)
		return;
	struct mailbox *mb = session_mailbox(s);
	if (mb != NULL)
		sort_messages(crit, mb, uids, n);
	struct buf out;
	buf_init(&out, 0);
	buf_append_str(&out, "* SORT");
	for (size_t i = 0; i < n; i++)
		buf_printf(&out, " %u", cx->uid ? uids[i] : session_msn(s, uids[i]));
	if (want_modseq && n > 0)
		buf_printf(&out, " (MODSEQ %llu)", (unsigned long long)max_modseq);
	buf_append_str(&out, "\r\n");
	conn_write(s->conn, buf_head(&out), buf_used(&out));
	buf_deinit(&out);
	session_tagged(s, cx->tag, "OK", NULL, "SORT completed");
}

struct refs_ctx {
	struct session *s;
	struct buf hdr, val;
};

/* References of a message for THREAD=REFERENCES: reads only its header. */
static int thread_get_refs(void *ctx, uint32_t uid, struct kstr *refs_r)
{
	struct refs_ctx *rc = ctx;
	struct mailbox *mb = session_mailbox(rc->s);
	struct index_msg *m = mb ? mailbox_msg_by_uid(mb, uid) : NULL;
	*refs_r = kstr_make(NULL, 0);
	if (m == NULL)
		return 0;
	uint8_t guid[INDEX_GUID_LEN];
	memcpy(guid, m->guid, sizeof(guid));
	uint64_t hsize = m->meta != NULL && m->meta->header_size > 0 ? m->meta->header_size :
			 UINT64_MAX;
	const char *error = NULL;
	buf_reset(&rc->hdr);
	buf_reset(&rc->val);
	int ret = index_message_get(rc->s->acct, guid, 0, hsize, &rc->hdr, &error);
	if (ret == KURA_ETOOBIG || ret == KURA_ENOTFOUND)
		return 0;	/* treated as a message without References */
	if (ret < 0)
		return ret;
	struct kstr h = buf_kstr(&rc->hdr);
	if (h.p != NULL && mime_header_decoded(h.p, h.len, KSTR_LIT("References"), &rc->val))
		*refs_r = buf_kstr(&rc->val);
	return 0;
}

void cmd_thread(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	enum thread_alg alg;
	if (cx->nargs < 3 || cx->args[0].type != IMAP_ARG_ATOM ||
	    thread_parse_algorithm(cx->args[0].str, &alg) < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "THREAD needs an algorithm, a charset and a search");
		return;
	}
	uint32_t *uids, *msns;
	size_t n;
	uint64_t max_modseq;
	bool want_modseq;
	if (search_after_charset(cx, &uids, &msns, &n, &max_modseq, &want_modseq) < 0)
		return;
	struct mailbox *mb = session_mailbox(s);
	struct refs_ctx rc = { .s = s };
	buf_init(&rc.hdr, 1024 * 1024);
	buf_init(&rc.val, 0);
	struct buf out;
	buf_init(&out, 64 * 1024 * 1024);
	int ret = mb == NULL ? 0 :
		thread_build(alg, mb, uids, n, cx->uid, msns, thread_get_refs, &rc, &out);
	buf_deinit(&rc.hdr);
	buf_deinit(&rc.val);
	if (ret < 0) {
		buf_deinit(&out);
		session_tagged_error(s, cx->tag, ret, NULL, "THREAD");
		return;
	}
	conn_printf(s->conn, "* THREAD%s", buf_used(&out) ? " " : "");
	conn_write(s->conn, buf_head(&out), buf_used(&out));
	conn_printf(s->conn, "\r\n");
	buf_deinit(&out);
	session_tagged(s, cx->tag, "OK", NULL, "THREAD completed");
}

/* ---- STORE ---- */

/* FETCH responses after STORE: FLAGS (and MODSEQ under CONDSTORE), or
 * only MODSEQ for .SILENT with UNCHANGEDSINCE (RFC 7162 3.1.3). */
static void store_respond(struct session *s, const uint32_t *uids, size_t n, bool uid_cmd,
			  bool with_flags)
{
	struct mailbox *mb = session_mailbox(s);
	for (size_t i = 0; mb != NULL && i < n; i++) {
		struct index_msg *m = mailbox_msg_by_uid(mb, uids[i]);
		uint32_t msn = session_msn(s, uids[i]);
		if (m != NULL && msn != 0)
			session_write_flags_fetch(s, mb, m, msn, uid_cmd || s->qresync, with_flags);
	}
}

void cmd_store(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	const char *error = NULL;
	uint64_t unchangedsince = 0;
	bool all_fail = false;
	const struct imap_arg *args = cx->args;
	size_t nargs = cx->nargs;
	if (nargs >= 2 && args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = &args[1];
		if (l->list_count != 2 || !arg_is_atom(&l->list[0], "UNCHANGEDSINCE") ||
		    l->list[1].type != IMAP_ARG_ATOM ||
		    !kstr_to_u64(l->list[1].str, &unchangedsince)) {
			session_tagged(s, cx->tag, "BAD", NULL, "Invalid STORE modifier");
			return;
		}
		s->condstore = true;
		/* UNCHANGEDSINCE 0 can never hold (every MODSEQ is above 0):
		 * every message fails, nothing is written. */
		all_fail = unchangedsince == 0;
		/* Rebuild the argument vector without the modifier. */
		struct imap_arg *v = arena_alloc(cx->a, (nargs - 1) * sizeof(*v));
		v[0] = cx->args[0];
		memcpy(v + 1, cx->args + 2, (nargs - 2) * sizeof(*v));
		args = v;
		nargs--;
	}
	if (nargs < 3 || args[0].type != IMAP_ARG_ATOM || args[1].type != IMAP_ARG_ATOM) {
		session_tagged(s, cx->tag, "BAD", NULL, "STORE needs a set, an item and flags");
		return;
	}
	struct kstr item = args[1].str;
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
	const struct imap_arg *fl = &args[2];
	size_t nfl = nargs - 2;
	if (fl->type == IMAP_ARG_LIST) {
		if (nargs != 3) {
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
	int ret = session_resolve_set(s, cx->a, args[0].str, cx->uid, &uids, &n, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error);
		return;
	}
	if (s->sel_readonly) {
		session_tagged(s, cx->tag, "NO", "READ-ONLY", "Mailbox is read-only");
		return;
	}
	struct buf modified;
	buf_init(&modified, 0);
	if (all_fail && n > 0) {
		uint32_t *v = arena_alloc(cx->a, n * sizeof(uint32_t));
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			uint32_t x = cx->uid ? uids[i] : session_msn(s, uids[i]);
			if (x != 0)
				v[k++] = x;
		}
		buf_append_str(&modified, "MODIFIED ");
		seqset_write(&modified, v, k);
		n = 0;
	}
	if (n > 0) {
		struct index_txn *t = index_txn_begin(s->acct);
		int op = index_txn_store(t, s->sel_id, uids, n, mode, flags, kw, nkw,
					 unchangedsince);
		ret = op < 0 ? op : index_txn_commit(t, &error);
		if (ret < 0) {
			index_txn_free(&t);
			session_tagged_error(s, cx->tag, ret, error, "STORE");
			return;
		}
		const struct index_op_result *r = index_txn_result(t, op);
		if (r != NULL) {
			session_note_own_modseq(s, r->modseq);
			if (r->nfailed > 0) {
				/* MODIFIED names UIDs for UID STORE, else msns. */
				uint32_t *v = arena_alloc(cx->a, r->nfailed * sizeof(uint32_t));
				size_t k = 0;
				for (size_t i = 0; i < r->nfailed; i++) {
					uint32_t x = cx->uid ? r->failed_uids[i] :
						session_msn(s, r->failed_uids[i]);
					if (x != 0)
						v[k++] = x;
				}
				buf_append_str(&modified, "MODIFIED ");
				seqset_write(&modified, v, k);
				/* failed messages get no FETCH response */
				size_t o = 0, f = 0;
				for (size_t i = 0; i < n; i++) {
					while (f < r->nfailed && r->failed_uids[f] < uids[i])
						f++;
					if (f < r->nfailed && r->failed_uids[f] == uids[i])
						continue;
					uids[o++] = uids[i];
				}
				n = o;
			}
		}
		index_txn_free(&t);
	}
	if (!silent)
		store_respond(s, uids, n, cx->uid, true);
	else if (s->condstore && unchangedsince != 0)
		store_respond(s, uids, n, cx->uid, false);
	session_tagged(s, cx->tag, "OK", buf_used(&modified) ? buf_cstr(&modified) : NULL,
		       "%s", buf_used(&modified) ? "Some messages were modified" :
		       "STORE completed");
	buf_deinit(&modified);
}

/* ---- FETCH ---- */

/* (CHANGEDSINCE n [VANISHED]) of RFC 7162. */
static bool parse_fetch_modifiers(struct cmd_ctx *cx, const struct imap_arg *l,
				  uint64_t *changedsince_r, bool *vanished_r)
{
	if (l->type != IMAP_ARG_LIST || l->list_count == 0)
		return false;
	for (size_t i = 0; i < l->list_count; i++) {
		const struct imap_arg *a = &l->list[i];
		if (arg_is_atom(a, "CHANGEDSINCE") && i + 1 < l->list_count &&
		    l->list[i + 1].type == IMAP_ARG_ATOM &&
		    kstr_to_u64(l->list[i + 1].str, changedsince_r) && *changedsince_r > 0) {
			i++;
		} else if (arg_is_atom(a, "VANISHED") && cx->uid && cx->s->qresync) {
			*vanished_r = true;
		} else {
			return false;
		}
	}
	/* VANISHED needs CHANGEDSINCE (RFC 7162 3.2.6). */
	return !*vanished_r || *changedsince_r > 0;
}

/* UID FETCH ... (CHANGEDSINCE m VANISHED): expunged UIDs of the set
 * with a MODSEQ above m. */
static void report_vanished(struct session *s, struct kstr set, uint64_t since)
{
	struct mailbox *mb = session_mailbox(s);
	struct seqset ss;
	if (mb == NULL || !seqset_parse(set, mb->uidnext, 100000, &ss))
		return;
	uint32_t *gone = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < mb->nexpunged; i++) {
		const struct index_expunged *e = &mb->expunged[i];
		if (e->modseq > since && seqset_contains(&ss, e->uid)) {
			xgrow((void **)&gone, &cap, n + 1, sizeof(uint32_t));
			gone[n++] = e->uid;
		}
	}
	seqset_free(&ss);
	if (n > 0) {
		struct buf b;
		buf_init(&b, 0);
		buf_append_str(&b, "* VANISHED (EARLIER) ");
		seqset_write(&b, gone, n);
		buf_append_str(&b, "\r\n");
		conn_write(s->conn, buf_head(&b), buf_used(&b));
		buf_deinit(&b);
	}
	free(gone);
}

void cmd_fetch(struct cmd_ctx *cx)
{
	struct session *s = cx->s;
	struct conn *c = s->conn;
	const char *error = NULL;
	struct fetch_items *items;
	uint64_t changedsince = 0;
	bool vanished = false;
	if (cx->nargs < 2 || cx->nargs > 3 || cx->args[0].type != IMAP_ARG_ATOM ||
	    (cx->nargs == 3 && !parse_fetch_modifiers(cx, &cx->args[2], &changedsince, &vanished))) {
		session_tagged(s, cx->tag, "BAD", NULL, "FETCH needs a set and data items");
		return;
	}
	int ret = fetch_parse(cx->a, &cx->args[1], cx->uid, &items, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error ? error : "Invalid data items");
		return;
	}
	if (fetch_items_has_modseq(items) || cx->nargs == 3)
		s->condstore = true;
	if (s->condstore)
		fetch_items_add_modseq(items);
	uint32_t *uids;
	size_t n;
	ret = session_resolve_set(s, cx->a, cx->args[0].str, cx->uid, &uids, &n, &error);
	if (ret < 0) {
		session_tagged(s, cx->tag, "BAD", NULL, "%s", error);
		return;
	}
	if (vanished)
		report_vanished(s, cx->args[0].str, changedsince);
	if (changedsince > 0) {
		struct mailbox *mb = session_mailbox(s);
		size_t o = 0;
		for (size_t i = 0; mb != NULL && i < n; i++) {
			struct index_msg *m = mailbox_msg_by_uid(mb, uids[i]);
			if (m != NULL && m->modseq > changedsince)
				uids[o++] = uids[i];
		}
		n = o;
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
		ret = fetch_render(&out, items, mb, m, msn, session_is_recent(s, m->uid) && !s->rev2,
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
	if (!move || dst->id != s->sel_id) {
		struct mailbox *src = session_mailbox(s);
		uint64_t more = 0;
		for (size_t i = 0; src != NULL && i < n && !move; i++) {
			struct index_msg *m = mailbox_msg_by_uid(src, uids[i]);
			if (m != NULL)
				more += m->size;
		}
		if (!session_quota_allows(s, more)) {
			session_tagged(s, cx->tag, "NO", "OVERQUOTA", "Quota exceeded");
			return;
		}
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
