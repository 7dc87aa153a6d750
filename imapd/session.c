/* session: IMAP state, the dispatcher, and untagged updates of the
 * selected mailbox. */
#include "imapd/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_util.h"
#include "imapd/users.h"
#include "index/index.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/task.h"
#include "lib/util.h"

#define SESSION_MAX_SET_RANGES 100000
#define SESSION_MAX_BAD 20

static void listener_changed(struct account_listener *l)
{
	struct session *s = (struct session *)((char *)l - offsetof(struct session, listener));
	conn_account_changed(s->conn);
}

struct session *session_create(struct conn *c)
{
	struct session *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->srv = c->w->srv;
	s->state = SESSION_NOTAUTH;
	s->listener.changed = listener_changed;
	return s;
}

void session_unselect(struct session *s)
{
	free(s->saved_uids);
	s->saved_uids = NULL;
	s->nsaved = 0;
	free(s->uids);
	s->uids = NULL;
	s->nuids = s->uids_cap = 0;
	free(s->recent_uids);
	s->recent_uids = NULL;
	s->nrecent = s->recent_cap = 0;
	s->sel_id = 0;
	s->sel_gone = false;
	s->own_nmodseq = 0;
	if (s->state == SESSION_SELECTED)
		s->state = SESSION_AUTH;
}

void session_destroy(struct session **sp)
{
	struct session *s = *sp;
	if (s == NULL)
		return;
	session_unselect(s);
	if (s->acct != NULL) {
		account_listener_remove(s->acct, &s->listener);
		index_account_unref(&s->acct);
	}
	free(s->user);
	free(s->login_tag);
	free(s->login_user);
	free(s);
	*sp = NULL;
}

/* ---- output ---- */

void session_tagged(struct session *s, struct kstr tag, const char *status,
		    const char *code, const char *fmt, ...)
{
	struct conn *c = s->conn;
	conn_write(c, tag.p, tag.len);
	conn_printf(c, " %s ", status);
	if (code != NULL)
		conn_printf(c, "[%s] ", code);
	va_list ap;
	va_start(ap, fmt);
	char text[512];
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	conn_printf(c, "%s\r\n", text);
	/* A client that sends nothing but bad commands is cut off. */
	if (strcmp(status, "BAD") == 0) {
		if (++c->bad_count >= SESSION_MAX_BAD && !c->closing) {
			conn_printf(c, "* BYE Too many invalid commands\r\n");
			conn_close_after_output(c);
		}
	} else {
		c->bad_count = 0;
	}
}

void session_untagged(struct session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	conn_write(s->conn, "* ", 2);
	conn_write(s->conn, line, (size_t)n);
	conn_write(s->conn, "\r\n", 2);
}

void session_tagged_error(struct session *s, struct kstr tag, int err,
			  const char *error, const char *what)
{
	const char *code = NULL;
	const char *text = error;
	switch (err) {
	case KURA_ENOTFOUND:
		code = "NONEXISTENT";
		break;
	case KURA_EEXISTS:
		code = "ALREADYEXISTS";
		break;
	case KURA_ENOPERM:
		code = "CANNOT";
		break;
	case KURA_ELIMIT:
		code = "LIMIT";
		break;
	case KURA_EOVERQUOTA:
		code = "OVERQUOTA";
		break;
	case KURA_ETOOBIG:
		code = "TOOBIG";
		break;
	case KURA_EINVAL:
		code = "CLIENTBUG";
		break;
	default:
		code = "UNAVAILABLE";
		log_warn("event=backend-error conn=%llu user=%s cmd=%s error=\"%s\"",
			 (unsigned long long)s->conn->id, s->user ? s->user : "-", what,
			 error ? error : kura_strerror(err));
		text = "Temporary storage failure, try again";
		break;
	}
	if (text == NULL)
		text = kura_strerror(err);
	session_tagged(s, tag, "NO", code, "%s failed: %s", what, text);
}

void session_capabilities(struct session *s, struct buf *out)
{
	buf_append_str(out, "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE");
	if (s->state == SESSION_NOTAUTH) {
		if (s->srv->tls != NULL && !conn_is_tls(s->conn))
			buf_append_str(out, " STARTTLS");
		bool allowed = conn_is_tls(s->conn) ||
			s->srv->set.plaintext_auth == PLAINTEXT_AUTH_ALWAYS ||
			(s->srv->set.plaintext_auth == PLAINTEXT_AUTH_LOOPBACK &&
			 s->conn->peer_loopback);
		if (allowed)
			buf_append_str(out, " AUTH=PLAIN");
		else
			buf_append_str(out, " LOGINDISABLED");
	} else {
		buf_append_str(out, " NAMESPACE UIDPLUS UNSELECT CHILDREN MOVE SPECIAL-USE"
			       " CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC"
			       " ESEARCH MULTIAPPEND BINARY STATUS=SIZE QUOTA QUOTA=RES-STORAGE"
			       " UTF8=ACCEPT COMPRESS=DEFLATE SORT SORT=DISPLAY"
			       " THREAD=REFERENCES THREAD=ORDEREDSUBJECT SEARCHRES");
		buf_printf(out, " APPENDLIMIT=%llu", (unsigned long long)s->srv->set.max_append_size);
	}
}

void session_greeting(struct session *s)
{
	struct buf b;
	buf_init(&b, 0);
	session_capabilities(s, &b);
	conn_printf(s->conn, "* OK [CAPABILITY %.*s] kura ready\r\n", (int)buf_used(&b),
		    (const char *)buf_head(&b));
	buf_deinit(&b);
}

/* ---- the selected mailbox ---- */

struct mailbox *session_mailbox(struct session *s)
{
	if (s->state != SESSION_SELECTED || s->acct == NULL)
		return NULL;
	struct mailbox *mb = account_mailbox_by_id(s->acct, s->sel_id);
	if (mb != NULL && mb->uidvalidity != s->sel_uidvalidity)
		return NULL;
	return mb;
}

uint32_t session_msn(const struct session *s, uint32_t uid)
{
	size_t lo = 0, hi = s->nuids;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->nuids && s->uids[lo] == uid)
		return (uint32_t)lo + 1;
	return 0;
}

bool session_is_recent(const struct session *s, uint32_t uid)
{
	size_t lo = 0, hi = s->nrecent;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->recent_uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nrecent && s->recent_uids[lo] == uid;
}

static void recent_add(struct session *s, uint32_t uid)
{
	xgrow((void **)&s->recent_uids, &s->recent_cap, s->nrecent + 1, sizeof(uint32_t));
	s->recent_uids[s->nrecent++] = uid;
}

static void recent_drop_missing(struct session *s)
{
	size_t o = 0;
	for (size_t i = 0; i < s->nrecent; i++)
		if (session_msn(s, s->recent_uids[i]) != 0)
			s->recent_uids[o++] = s->recent_uids[i];
	s->nrecent = o;
}

void session_note_own_modseq(struct session *s, uint64_t modseq)
{
	if (modseq == 0)
		return;
	if (s->own_nmodseq < ARRAY_SIZE(s->own_modseq))
		s->own_modseq[s->own_nmodseq++] = modseq;
}

static bool own_modseq(const struct session *s, uint64_t modseq)
{
	for (unsigned i = 0; i < s->own_nmodseq; i++)
		if (s->own_modseq[i] == modseq)
			return true;
	return false;
}

void session_write_flags_fetch(struct session *s, const struct mailbox *mb,
			       const struct index_msg *m, uint32_t msn, bool with_uid,
			       bool with_flags)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* %u FETCH (", msn);
	const char *sep = "";
	if (with_uid) {
		buf_printf(&b, "UID %u", m->uid);
		sep = " ";
	}
	if (with_flags) {
		buf_printf(&b, "%sFLAGS (", sep);
		index_flags_write(&b, mb, m, session_is_recent(s, m->uid) && !s->rev2);
		buf_append_str(&b, ")");
		sep = " ";
	}
	if (s->condstore)
		buf_printf(&b, "%sMODSEQ (%llu)", sep, (unsigned long long)m->modseq);
	buf_append_str(&b, ")\r\n");
	conn_write(s->conn, buf_head(&b), buf_used(&b));
	buf_deinit(&b);
}

/* Fills the view from the mailbox (SELECT). */
void session_view_load(struct session *s, struct mailbox *mb)
{
	free(s->uids);
	s->uids_cap = mb->count ? mb->count : 1;
	s->uids = xmalloc(s->uids_cap * sizeof(uint32_t));
	for (size_t i = 0; i < mb->count; i++)
		s->uids[i] = mb->msgs[i].uid;
	s->nuids = mb->count;
	s->seen_modseq = mb->highestmodseq;
	s->view_uidnext = mb->uidnext;
}

void session_sync(struct session *s, bool allow_expunge)
{
	if (s->state != SESSION_SELECTED || s->sel_gone)
		return;
	struct mailbox *mb = session_mailbox(s);
	if (mb == NULL) {
		s->sel_gone = true;
		session_untagged(s, "BYE Selected mailbox was deleted, have to disconnect");
		conn_close_after_output(s->conn);
		return;
	}
	if (mb->highestmodseq == s->seen_modseq && mb->count == s->nuids &&
	    mb->uidnext == s->view_uidnext) {
		s->own_nmodseq = 0;
		return;
	}
	/* Expunges: UIDs in the view that the mailbox no longer has. */
	if (allow_expunge) {
		size_t o = 0, removed = 0;
		uint32_t *gone = NULL;
		size_t gone_cap = 0;
		for (size_t i = 0; i < s->nuids; i++) {
			uint32_t uid = s->uids[i];
			if (mailbox_msg_by_uid(mb, uid) == NULL) {
				if (s->qresync) {
					xgrow((void **)&gone, &gone_cap, removed + 1, sizeof(uint32_t));
					gone[removed] = uid;
				} else {
					session_untagged(s, "%zu EXPUNGE", i - removed + 1);
				}
				removed++;
			} else {
				s->uids[o++] = uid;
			}
		}
		s->nuids = o;
		if (removed > 0) {
			recent_drop_missing(s);
			if (s->qresync) {
				struct buf b;
				buf_init(&b, 0);
				buf_append_str(&b, "* VANISHED ");
				seqset_write(&b, gone, removed);
				buf_append_str(&b, "\r\n");
				conn_write(s->conn, buf_head(&b), buf_used(&b));
				buf_deinit(&b);
			}
		}
		free(gone);
	}
	/* Flag changes of messages in the view. */
	uint32_t last = s->nuids ? s->uids[s->nuids - 1] : 0;
	for (size_t i = 0; i < s->nuids; i++) {
		struct index_msg *m = mailbox_msg_by_uid(mb, s->uids[i]);
		if (m == NULL || m->modseq <= s->seen_modseq || own_modseq(s, m->modseq))
			continue;
		session_write_flags_fetch(s, mb, m, (uint32_t)i + 1, s->qresync, true);
	}
	/* New messages. */
	size_t first_new = mailbox_msg_lower_bound(mb, last + 1);
	if (first_new < mb->count) {
		uint32_t floor = mailbox_claim_recent(mb, s->sel_readonly);
		size_t added = mb->count - first_new;
		xgrow((void **)&s->uids, &s->uids_cap, s->nuids + added, sizeof(uint32_t));
		for (size_t i = first_new; i < mb->count; i++) {
			uint32_t uid = mb->msgs[i].uid;
			s->uids[s->nuids++] = uid;
			if (!s->sel_readonly && uid >= floor)
				recent_add(s, uid);
		}
		session_untagged(s, "%zu EXISTS", s->nuids);
		if (!s->rev2)
			session_untagged(s, "%zu RECENT", s->nrecent);
	}
	s->seen_modseq = mb->highestmodseq;
	s->view_uidnext = mb->uidnext;
	s->own_nmodseq = 0;
}

int session_resolve_set(struct session *s, struct arena *a, struct kstr set,
			bool uid, uint32_t **uids_r, size_t *n_r,
			const char **error_r)
{
	struct seqset ss;
	uint32_t star;

	if (uid)
		star = s->nuids ? s->uids[s->nuids - 1] : 0;
	else
		star = (uint32_t)s->nuids;
	bool saved = set.len == 1 && set.p[0] == '$';
	memset(&ss, 0, sizeof(ss));
	if (!saved && !seqset_parse(set, star, SESSION_MAX_SET_RANGES, &ss)) {
		*error_r = "Invalid sequence set";
		return KURA_EINVAL;
	}
	uint32_t *out;
	size_t n = 0;
	if (set.len == 1 && set.p[0] == '$') {
		/* SEARCHRES: the saved result, less what was expunged since. */
		seqset_free(&ss);
		out = arena_alloc(a, (s->nsaved ? s->nsaved : 1) * sizeof(uint32_t));
		for (size_t i = 0; i < s->nsaved; i++)
			if (session_msn(s, s->saved_uids[i]) != 0)
				out[n++] = s->saved_uids[i];
		*uids_r = out;
		*n_r = n;
		return 0;
	}
	if (uid) {
		/* Intersect the ranges with the view: O(view + ranges). */
		out = arena_alloc(a, (s->nuids ? s->nuids : 1) * sizeof(uint32_t));
		size_t r = 0;
		for (size_t i = 0; i < s->nuids && r < ss.count; i++) {
			uint32_t u = s->uids[i];
			while (r < ss.count && ss.r[r].hi < u)
				r++;
			if (r < ss.count && ss.r[r].lo <= u)
				out[n++] = u;
		}
	} else {
		for (size_t r = 0; r < ss.count; r++) {
			if (ss.r[r].hi > s->nuids || ss.r[r].lo == 0) {
				seqset_free(&ss);
				*error_r = "Invalid message sequence number";
				return KURA_EINVAL;
			}
		}
		size_t total = 0;
		for (size_t r = 0; r < ss.count; r++)
			total += (size_t)ss.r[r].hi - ss.r[r].lo + 1;
		out = arena_alloc(a, (total ? total : 1) * sizeof(uint32_t));
		for (size_t r = 0; r < ss.count; r++)
			for (uint32_t m = ss.r[r].lo; m <= ss.r[r].hi && m != 0; m++)
				out[n++] = s->uids[m - 1];
	}
	seqset_free(&ss);
	*uids_r = out;
	*n_r = n;
	return 0;
}

/* ---- login ---- */

int session_login(struct session *s, const char *user, const char **error_r)
{
	struct account *a = NULL;
	int ret = index_account_get(s->srv->index, user, &a, error_r);
	if (ret < 0)
		return ret;
	free(s->user);
	s->user = xstrdup(user);
	s->acct = a;
	struct user_info info;
	if (users_lookup(s->srv->users, kstr_cstr(user), &info))
		s->quota = info.quota;
	account_listener_add(a, &s->listener);
	s->state = SESSION_AUTH;
	imap_parser_set_limits(s->conn->parser, &s->srv->auth_limits);
	return 0;
}

static void finish_login_task(void *arg)
{
	struct conn *c = arg;
	struct session *s = c->sess;
	struct kstr tag = kstr_cstr(s->login_tag);
	const char *error = NULL;
	int ret = session_login(s, s->login_user, &error);
	if (ret < 0) {
		log_warn("event=login-failed conn=%llu peer=%s user=%s error=\"%s\"",
			 (unsigned long long)c->id, c->peer, s->login_user,
			 error ? error : kura_strerror(ret));
		session_tagged(s, tag, "NO", "UNAVAILABLE",
			       "Mail storage is temporarily unavailable, try again");
	} else {
		log_info("event=login conn=%llu peer=%s user=%s worker=%u tls=%d",
			 (unsigned long long)c->id, c->peer, s->user, c->w->id, conn_is_tls(c));
		struct buf b;
		buf_init(&b, 0);
		session_capabilities(s, &b);
		session_tagged(s, tag, "OK", NULL, "[CAPABILITY %.*s] Logged in",
			       (int)buf_used(&b), (const char *)buf_head(&b));
		buf_deinit(&b);
	}
	free(s->login_tag);
	s->login_tag = NULL;
	free(s->login_user);
	s->login_user = NULL;
	conn_task_done(c);
}

void session_finish_handoff(struct session *s)
{
	conn_run_task(s->conn, finish_login_task, s);
}

/* ---- dispatch ---- */

enum {
	ST_NOTAUTH = 1 << SESSION_NOTAUTH,
	ST_AUTH = 1 << SESSION_AUTH,
	ST_SELECTED = 1 << SESSION_SELECTED,
	ST_ANY = ST_NOTAUTH | ST_AUTH | ST_SELECTED,
	ST_LOGGEDIN = ST_AUTH | ST_SELECTED,
};

struct cmd_def {
	const char *name;
	unsigned states;
	cmd_fn *fn;
	bool uid_ok;		/* valid after UID */
	bool no_expunge;	/* no EXPUNGE responses (FETCH, STORE, SEARCH) */
	bool no_sync;
};

static const struct cmd_def commands[] = {
	{ "CAPABILITY", ST_ANY, cmd_capability, false, false, false },
	{ "NOOP", ST_ANY, cmd_noop, false, false, false },
	{ "LOGOUT", ST_ANY, cmd_logout, false, false, true },
	{ "STARTTLS", ST_NOTAUTH, cmd_starttls, false, false, true },
	{ "LOGIN", ST_NOTAUTH, cmd_login, false, false, true },
	{ "AUTHENTICATE", ST_NOTAUTH, cmd_authenticate, false, false, true },
	{ "ID", ST_ANY, cmd_id, false, false, false },
	{ "ENABLE", ST_LOGGEDIN, cmd_enable, false, false, false },
	{ "NAMESPACE", ST_LOGGEDIN, cmd_namespace, false, false, false },
	{ "SELECT", ST_LOGGEDIN, cmd_select, false, false, true },
	{ "EXAMINE", ST_LOGGEDIN, cmd_examine, false, false, true },
	{ "CREATE", ST_LOGGEDIN, cmd_create, false, false, false },
	{ "DELETE", ST_LOGGEDIN, cmd_delete, false, false, false },
	{ "RENAME", ST_LOGGEDIN, cmd_rename, false, false, false },
	{ "SUBSCRIBE", ST_LOGGEDIN, cmd_subscribe, false, false, false },
	{ "UNSUBSCRIBE", ST_LOGGEDIN, cmd_unsubscribe, false, false, false },
	{ "LIST", ST_LOGGEDIN, cmd_list, false, false, false },
	{ "LSUB", ST_LOGGEDIN, cmd_lsub, false, false, false },
	{ "STATUS", ST_LOGGEDIN, cmd_status, false, false, false },
	{ "APPEND", ST_LOGGEDIN, cmd_append, false, false, false },
	{ "IDLE", ST_LOGGEDIN, cmd_idle, false, false, true },
	{ "CHECK", ST_SELECTED, cmd_check, false, false, false },
	{ "CLOSE", ST_SELECTED, cmd_close, false, false, true },
	{ "UNSELECT", ST_SELECTED, cmd_unselect, false, false, true },
	{ "EXPUNGE", ST_SELECTED, cmd_expunge, true, false, false },
	{ "SEARCH", ST_SELECTED, cmd_search, true, true, false },
	{ "FETCH", ST_SELECTED, cmd_fetch, true, true, false },
	{ "STORE", ST_SELECTED, cmd_store, true, true, false },
	{ "COPY", ST_SELECTED, cmd_copy, true, false, false },
	{ "MOVE", ST_SELECTED, cmd_move, true, false, false },
	{ "SORT", ST_SELECTED, cmd_sort, true, true, false },
	{ "THREAD", ST_SELECTED, cmd_thread, true, true, false },
	{ "COMPRESS", ST_LOGGEDIN, cmd_compress, false, false, true },
	{ "GETQUOTA", ST_LOGGEDIN, cmd_getquota, false, false, false },
	{ "GETQUOTAROOT", ST_LOGGEDIN, cmd_getquotaroot, false, false, false },
	{ "SETQUOTA", ST_LOGGEDIN, cmd_setquota, false, false, false },
};

static const struct cmd_def *cmd_find(struct kstr name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (kstr_eq_ci(name, commands[i].name))
			return &commands[i];
	return NULL;
}

void session_run_command(struct session *s, struct imap_cmd *cmd)
{
	struct conn *c = s->conn;
	struct cmd_ctx cx;
	char esc[64];

	memset(&cx, 0, sizeof(cx));
	cx.s = s;
	cx.cmd = cmd;
	cx.tag = cmd->tag;
	cx.a = c->cmd_arena;
	cx.args = cmd->args;
	cx.nargs = cmd->nargs;

	struct kstr name = cmd->name;
	if (kstr_eq_ci(name, "UID")) {
		if (cx.nargs == 0 || cx.args[0].type != IMAP_ARG_ATOM) {
			session_tagged(s, cx.tag, "BAD", NULL, "UID needs a command");
			return;
		}
		cx.uid = true;
		name = cx.args[0].str;
		cx.args++;
		cx.nargs--;
	}
	const struct cmd_def *def = cmd_find(name);
	if (def == NULL || (cx.uid && !def->uid_ok)) {
		session_tagged(s, cx.tag, "BAD", NULL, "Unknown command %s",
			       log_escape(name.p, name.len, esc, sizeof(esc)));
		return;
	}
	if (!(def->states & (1u << s->state))) {
		const char *why = s->state == SESSION_NOTAUTH ? "Please log in first" :
			s->state == SESSION_AUTH && (def->states & ST_SELECTED) ?
			"No mailbox selected" : "Command not valid in this state";
		session_tagged(s, cx.tag, "BAD", NULL, "%s", why);
		return;
	}
	uint64_t t0 = time_mono_usec();
	def->fn(&cx);
	if (!def->no_sync && s->state == SESSION_SELECTED && !c->idling)
		session_sync(s, !def->no_expunge || cx.uid);
	log_debug("event=cmd conn=%llu user=%s cmd=%s%s usec=%llu", (unsigned long long)c->id,
		  s->user ? s->user : "-", cx.uid ? "UID " : "", def->name,
		  (unsigned long long)(time_mono_usec() - t0));
}

/* ---- quota ---- */

uint64_t session_usage(struct session *s)
{
	uint64_t total = 0;
	size_t n = account_mailbox_count(s->acct);
	for (size_t i = 0; i < n; i++)
		total += account_mailbox_at(s->acct, i)->total_size;
	return total;
}

bool session_quota_allows(struct session *s, uint64_t more)
{
	return s->quota == 0 || session_usage(s) + more <= s->quota;
}

/* ---- argument helpers ---- */

bool arg_is_astring(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING ||
	       a->type == IMAP_ARG_LITERAL;
}

bool arg_is_atom(const struct imap_arg *a, const char *ci)
{
	return a->type == IMAP_ARG_ATOM && kstr_eq_ci(a->str, ci);
}

bool arg_mailbox(struct cmd_ctx *cx, const struct imap_arg *a, struct kstr *name_r)
{
	if (!arg_is_astring(a))
		return false;
	struct kstr n = a->str;
	if (n.len == 0 || n.len > 1000 || memchr(n.p, '\0', n.len) != NULL)
		return false;
	if (kstr_eq_ci(n, "INBOX")) {
		*name_r = KSTR_LIT("INBOX");
		return true;
	}
	if (kstr_has_prefix_ci(n, "INBOX/")) {
		char *p = arena_strndup(cx->a, n.p, n.len);
		memcpy(p, "INBOX", 5);
		n = kstr_make(p, n.len);
	}
	if (!mutf7_is_valid(n)) {
		if (!cx->s->utf8_enabled)
			return false;
		/* UTF-8 names: no C1 controls (RFC 6855 3, RFC 5198). */
		for (size_t i = 0; i + 1 < n.len; i++)
			if (n.p[i] == 0xc2 && n.p[i + 1] >= 0x80 && n.p[i + 1] <= 0x9f)
				return false;
		struct buf b;
		buf_init(&b, 4096);
		if (!utf8_to_mutf7(n, &b)) {
			buf_deinit(&b);
			return false;
		}
		n = arena_kstr(cx->a, buf_kstr(&b));
		buf_deinit(&b);
	}
	for (size_t i = 0; i < n.len; i++)
		if (n.p[i] < 0x20 || n.p[i] == 0x7f)
			return false;
	*name_r = n;
	return true;
}
