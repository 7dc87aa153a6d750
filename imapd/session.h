/* session: the IMAP state of one connection (RFC 3501 section 3) and
 * the command dispatcher. Handlers run in a task (lib/task.h) and write
 * responses through the connection. */
#ifndef KURA_SESSION_H
#define KURA_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "imapd/imap_parser.h"
#include "imapd/imapd.h"
#include "index/index.h"

enum session_state {
	SESSION_NOTAUTH = 0,
	SESSION_AUTH,
	SESSION_SELECTED,
	SESSION_LOGOUT,
};

struct session {
	struct conn *conn;
	struct server *srv;
	enum session_state state;
	char *user;
	struct account *acct;
	struct account_listener listener;

	/* selected mailbox: this session's view of it */
	uint64_t sel_id;
	bool sel_readonly;
	uint32_t sel_uidvalidity;
	uint32_t *uids;		/* msn-1 -> uid, sorted */
	size_t nuids, uids_cap;
	uint32_t *recent_uids;	/* \Recent for this session, sorted */
	size_t nrecent, recent_cap;
	uint64_t own_modseq[16];	/* this session's changes, not to echo */
	unsigned own_nmodseq;
	uint64_t seen_modseq;	/* changes up to here were reported */
	uint32_t view_uidnext;

	/* ENABLE / capability state */
	bool utf8_enabled;
	bool condstore;
	bool qresync;
	bool rev2;

	uint64_t quota;		/* bytes, 0 = none (users file) */
	uint32_t *saved_uids;	/* SEARCHRES "$" (RFC 5182), sorted */
	size_t nsaved;

	/* set by a handler; acted on after the task ends */
	bool want_handoff;
	char *login_tag;	/* tagged reply pending across a handoff */
	char *login_user;
	bool sel_gone;
};

struct session *session_create(struct conn *c);
void session_destroy(struct session **s);

/* The task body: runs c->cmd. */
void session_run_command(struct session *s, struct imap_cmd *cmd);
/* Greeting line for a new connection. */
void session_greeting(struct session *s);
/* Sends untagged updates for changes to the selected mailbox.
 * allow_expunge: EXPUNGE responses may be sent (not during FETCH, STORE,
 * SEARCH). Never suspends. */
void session_sync(struct session *s, bool allow_expunge);
/* CAPABILITY string for the current state (no leading "CAPABILITY "). */
void session_capabilities(struct session *s, struct buf *out);

/* Response helpers. code may be NULL; text is plain ASCII. */
void session_tagged(struct session *s, struct kstr tag, const char *status,
		    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void session_untagged(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Tagged NO for an error code from index/store (maps it to a response
 * code and logs backend failures). */
void session_tagged_error(struct session *s, struct kstr tag, int err,
			  const char *error, const char *what);

/* The selected mailbox in the account, or NULL if it is gone. Valid until
 * the next suspension. */
struct mailbox *session_mailbox(struct session *s);
/* Resolves a sequence set (msn or uid) against the session view into a
 * sorted array of UIDs (in arena a). Returns 0, or KURA_EINVAL for a
 * bad set / msn out of range (*error_r). */
int session_resolve_set(struct session *s, struct arena *a, struct kstr set,
			bool uid, uint32_t **uids_r, size_t *n_r,
			const char **error_r);
/* msn of a uid in the view, 0 if absent. */
uint32_t session_msn(const struct session *s, uint32_t uid);
bool session_is_recent(const struct session *s, uint32_t uid);
/* Claims the account after login (refresh, listener). */
int session_login(struct session *s, const char *user, const char **error_r);
void session_unselect(struct session *s);
/* Writes "* msn FETCH ([UID u] [FLAGS (...)] [MODSEQ (m)])" (MODSEQ when
 * CONDSTORE is on). */
void session_write_flags_fetch(struct session *s, const struct mailbox *mb,
			       const struct index_msg *m, uint32_t msn, bool with_uid,
			       bool with_flags);
/* Loads the view from mb (SELECT/EXAMINE). */
void session_view_load(struct session *s, struct mailbox *mb);
/* Remembers a MODSEQ this session assigned, so that session_sync does not
 * report the change back as if another session had made it. */
void session_note_own_modseq(struct session *s, uint64_t modseq);
/* After LOGIN/AUTHENTICATE verified the password: runs (as a task, on the
 * user's worker) the account load and the tagged reply. */
void session_finish_handoff(struct session *s);

/* Command handlers (cmd_*.c). */
struct cmd_ctx {
	struct session *s;
	struct imap_cmd *cmd;
	struct kstr tag;
	struct arena *a;
	bool uid;		/* UID prefix */
	const struct imap_arg *args;
	size_t nargs;
};

typedef void cmd_fn(struct cmd_ctx *cx);

cmd_fn cmd_capability, cmd_noop, cmd_logout, cmd_starttls, cmd_login,
	cmd_authenticate, cmd_id, cmd_enable, cmd_namespace, cmd_select,
	cmd_examine, cmd_create, cmd_delete, cmd_rename, cmd_subscribe,
	cmd_unsubscribe, cmd_list, cmd_lsub, cmd_status, cmd_append,
	cmd_check, cmd_close, cmd_unselect, cmd_expunge, cmd_search,
	cmd_fetch, cmd_store, cmd_copy, cmd_move, cmd_idle, cmd_getquota,
	cmd_getquotaroot, cmd_setquota, cmd_compress, cmd_sort, cmd_thread;

/* Bytes the account uses (sum of message sizes over all mailboxes). */
uint64_t session_usage(struct session *s);
/* Whether adding `more` bytes stays within the quota. */
bool session_quota_allows(struct session *s, uint64_t more);

/* Argument helpers: an astring (atom, quoted or literal). */
bool arg_is_astring(const struct imap_arg *a);
bool arg_is_atom(const struct imap_arg *a, const char *ci);
/* Mailbox name argument into wire form: INBOX in any case becomes
 * "INBOX"; validates modified UTF-7 (or UTF-8 when UTF8=ACCEPT is
 * enabled, converted to wire form). */
bool arg_mailbox(struct cmd_ctx *cx, const struct imap_arg *a,
		 struct kstr *name_r);

/* STATUS items (shared by STATUS and LIST RETURN (STATUS ...)). */
bool status_items_valid(const struct imap_arg *items, size_t n);
void status_write(struct session *s, struct buf *b, struct mailbox *mb,
		  const struct imap_arg *items, size_t n);
/* Parses a flag list (atoms) into system flag bits and keywords (in
 * arena a, duplicates removed); \Recent is ignored. false: bad syntax. */
bool parse_flag_list(struct arena *a, const struct imap_arg *args, size_t n,
		     uint32_t *flags_r, struct kstr **kw_r, size_t *nkw_r);

#endif
