/* index: the mailbox model of DESIGN.md §5. The state of a user is the
 * newest snapshot plus the change-log entries after it, all in the object
 * store; this module loads it, keeps it in memory per worker, and commits
 * changes as create-only log entries with retry on conflict and group
 * commit.
 *
 * Threading: an index is shared by all workers; an account belongs to one
 * worker thread (the connection layer routes every session of a user to
 * the same worker), so account state needs no locks.
 *
 * Suspension: functions marked "may suspend" do store I/O and must be
 * called from a task (lib/task.h). After such a call, every struct
 * mailbox / struct index_msg pointer obtained before it is invalid: look
 * it up again (by mailbox id and UID). */
#ifndef KURA_INDEX_H
#define KURA_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/kstr.h"

struct store;
struct cache;
struct bodycache;

/* System flags as bits. */
enum msg_flag {
	MSG_SEEN = 1 << 0,
	MSG_ANSWERED = 1 << 1,
	MSG_FLAGGED = 1 << 2,
	MSG_DELETED = 1 << 3,
	MSG_DRAFT = 1 << 4,
};

/* SPECIAL-USE attributes (RFC 6154) as bits. */
enum mbox_special {
	MBOX_SPECIAL_NONE = 0,
	MBOX_SPECIAL_ALL = 1 << 0,
	MBOX_SPECIAL_ARCHIVE = 1 << 1,
	MBOX_SPECIAL_DRAFTS = 1 << 2,
	MBOX_SPECIAL_FLAGGED = 1 << 3,
	MBOX_SPECIAL_JUNK = 1 << 4,
	MBOX_SPECIAL_SENT = 1 << 5,
	MBOX_SPECIAL_TRASH = 1 << 6,
};

#define INDEX_MAX_KEYWORDS 64
#define INDEX_GUID_LEN 16
/* Hierarchy separator of mailbox names. */
#define INDEX_HIER_SEP '/'

/* Fields computed once at APPEND (index/mime.h) and shared by every copy
 * of the message (refcounted). */
struct msg_meta {
	uint32_t refs;
	char *envelope;
	char *bodystructure;
	char *body;
	int64_t sent_date;
	int sent_tz_min;
	uint32_t header_size;
};

struct index_msg {
	uint32_t uid;
	uint32_t flags;		/* enum msg_flag bits */
	uint64_t keywords;	/* bit i: mailbox->keywords[i] */
	uint64_t modseq;
	uint64_t size;
	int64_t internaldate;	/* Unix time */
	int16_t idate_tz_min;	/* zone it was given in */
	uint8_t guid[INDEX_GUID_LEN];
	struct msg_meta *meta;
};

struct index_expunged {
	uint32_t uid;
	uint64_t modseq;
};

struct mailbox {
	uint64_t id;		/* never reused within an account */
	char *name;		/* wire form (modified UTF-7), "INBOX" exact */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t special_use;	/* enum mbox_special bits */
	/* Messages sorted by UID. */
	struct index_msg *msgs;
	size_t count, cap;
	char *keywords[INDEX_MAX_KEYWORDS];
	unsigned nkeywords;
	/* Expunged UIDs with the MODSEQ of their expunge, sorted by UID
	 * (for QRESYNC VANISHED). */
	struct index_expunged *expunged;
	size_t nexpunged, expunged_cap;
	uint64_t total_size;	/* sum of msgs[].size */
	/* Node-local: UIDs >= this are \Recent for the next session that
	 * claims them (index_mailbox_claim_recent). */
	uint32_t recent_floor;
};

struct account;
struct index;

struct index_settings {
	unsigned snapshot_every;	/* log entries between snapshots */
	uint64_t max_message_size;
	/* Local message-body cache (cache/bodycache.h), NULL = none. Not
	 * owned; must outlive the index. */
	struct bodycache *bodycache;
};

/* Creates the node-wide index over a store and an optional cache (NULL:
 * no cache). Neither is owned. */
struct index *index_create(struct store *store, struct cache *cache,
			   const struct index_settings *set);
void index_destroy(struct index **idx);

/* The account of `user` on this worker, loaded from cache/snapshot/log
 * and refreshed; creates INBOX (and the default special-use mailboxes
 * Drafts, Sent, Trash, Junk, Archive, all subscribed) for a new user.
 * Reference counted: every call needs an index_account_unref(); an
 * unreferenced account stays in a per-thread LRU (cheap to get again:
 * one freshness request). May suspend. Returns 0 or KURA_EUNAVAIL /
 * KURA_ECORRUPT with *error_r, KURA_EINVAL for a user name that is
 * empty, longer than 255 bytes, or has control bytes or '/'. Called
 * outside a task while a task of this thread is doing store I/O on the
 * account, it cannot wait and returns KURA_EUNAVAIL. */
int index_account_get(struct index *idx, const char *user,
		      struct account **acct_r, const char **error_r);
void index_account_unref(struct account **acct);
const char *account_user(const struct account *a);

/* Freshness: reads log entries other nodes committed after ours and
 * applies them (normally one GET of the next, missing, entry). May
 * suspend. Returns 0, KURA_EUNAVAIL, or KURA_ECORRUPT when a stored
 * entry cannot be read (logged; the account stays at its last good
 * state). */
int account_refresh(struct account *a, const char **error_r);

/* Mailboxes, sorted by name (byte order). Pointers valid until the next
 * suspension. */
size_t account_mailbox_count(const struct account *a);
struct mailbox *account_mailbox_at(struct account *a, size_t i);
/* By wire name ("inbox" in any case finds INBOX, "inbox/x" finds
 * "INBOX/x"), or NULL. */
struct mailbox *account_mailbox_find(struct account *a, struct kstr name);
struct mailbox *account_mailbox_by_id(struct account *a, uint64_t id);
/* Subscriptions (names, which need not exist), sorted. */
size_t account_subscription_count(const struct account *a);
const char *account_subscription_at(const struct account *a, size_t i);
bool account_is_subscribed(const struct account *a, struct kstr name);
/* Highest MODSEQ assigned in the account (for new mailboxes). */
uint64_t account_modseq(const struct account *a);

/* Message by UID (binary search), or NULL. */
struct index_msg *mailbox_msg_by_uid(struct mailbox *mb, uint32_t uid);
/* Index of the first message with UID >= uid (may be mb->count). */
size_t mailbox_msg_lower_bound(const struct mailbox *mb, uint32_t uid);
/* Keyword index in mb, or -1. */
int mailbox_keyword_find(const struct mailbox *mb, struct kstr kw);
/* Marks UIDs >= recent_floor as claimed by the caller and returns the old
 * floor: messages with uid >= the returned value are \Recent for the
 * caller. read_only: do not claim, just report 0 recent (returns
 * uidnext). \Recent is node-local: an account loaded on this node starts
 * with nothing recent; messages arriving later (own commits or refresh)
 * are recent for the next session that claims them. */
uint32_t mailbox_claim_recent(struct mailbox *mb, bool read_only);

/* Listeners are told after every change applied to the account (own
 * commit or refresh), from the account's worker thread, outside any
 * suspension of the caller. A listener may remove itself from its
 * callback. */
struct account_listener {
	void (*changed)(struct account_listener *l);
	struct account_listener *next;	/* private */
};
void account_listener_add(struct account *a, struct account_listener *l);
void account_listener_remove(struct account *a, struct account_listener *l);

/* ---- Message bodies ---- */

/* Stores a new message object (fresh random guid) before any log entry
 * references it: exactly one create-only PUT, with metadata kura-user
 * and kura-time. May suspend. Returns 0 or KURA_EUNAVAIL (the object
 * may exist anyway: garbage for the sweeper). */
int index_message_put(struct account *a, const void *data, size_t len,
		      uint8_t guid_r[INDEX_GUID_LEN], const char **error_r);
/* Appends the message bytes [off, off+len) (len may be UINT64_MAX) to
 * out. May suspend. Returns 0, KURA_ENOTFOUND, KURA_ETOOBIG (out->max)
 * or KURA_EUNAVAIL. */
int index_message_get(struct account *a, const uint8_t guid[INDEX_GUID_LEN],
		      uint64_t off, uint64_t len, struct buf *out,
		      const char **error_r);

/* ---- Changes ----
 *
 * A transaction collects intentions; index_txn_commit() turns them into
 * one log entry against the current state (assigning UIDs and MODSEQs),
 * PUTs it create-only, and on conflict reloads, re-evaluates and retries.
 * Several transactions of one account committed at once share one entry
 * (group commit). Each op is evaluated in order; an op that fails
 * evaluation (mailbox gone, name taken, ...) fails the whole transaction
 * with nothing applied. A transaction holds a reference on its account.
 *
 * Names: wire form; 1..1000 bytes of printable 7-bit ASCII without '*',
 * '%', a leading or doubled INDEX_HIER_SEP (a trailing one is dropped:
 * CREATE "foo/" creates "foo"); "INBOX" as first component in any case
 * means INBOX. Keywords: atoms, 1..255 bytes, not starting with '\';
 * compared case-insensitively. Adders return KURA_EINVAL for these and
 * for UID arrays that are not strictly ascending. Parent mailboxes are
 * not created implicitly (LIST shows missing parents as \NonExistent). */

enum store_mode {
	STORE_MODE_REPLACE = 0,
	STORE_MODE_ADD,
	STORE_MODE_REMOVE,
};

struct index_append {
	uint8_t guid[INDEX_GUID_LEN];
	uint64_t size;
	int64_t internaldate;
	int idate_tz_min;
	uint32_t flags;
	const struct kstr *keywords;
	size_t nkeywords;
	const struct msg_meta *meta;	/* copied; strings duplicated */
};

/* Results of one op after commit. */
struct index_op_result {
	uint32_t uidvalidity;	/* of the target mailbox */
	uint32_t *src_uids;	/* COPY/MOVE: source UIDs that existed */
	/* APPEND/COPY/MOVE: new UIDs, in order (COPY: src_uids[i] became
	 * uids[i]); EXPUNGE: the UIDs that were expunged. */
	uint32_t *uids;
	size_t nuids;
	/* STORE: UIDs not changed because of UNCHANGEDSINCE (MODIFIED) */
	uint32_t *failed_uids;
	size_t nfailed;
	/* MODSEQ the op assigned (0 if none, e.g. a STORE that changed
	 * nothing: such an op writes nothing). */
	uint64_t modseq;
};

struct index_txn;

struct index_txn *index_txn_begin(struct account *a);
/* Frees an uncommitted or committed transaction and its results. */
void index_txn_free(struct index_txn **t);

/* Each adder returns the op's number (for index_txn_result) or a
 * negative error for an argument invalid in itself. Names are wire form. */
int index_txn_create_mailbox(struct index_txn *t, struct kstr name,
			     uint32_t special_use);
/* Deleting a mailbox with children keeps the children (RFC 3501). */
int index_txn_delete_mailbox(struct index_txn *t, struct kstr name);
/* Renames name and its children; renaming INBOX moves its messages to
 * the new mailbox and leaves INBOX empty (RFC 3501 6.3.5). */
int index_txn_rename_mailbox(struct index_txn *t, struct kstr from,
			     struct kstr to);
int index_txn_subscribe(struct index_txn *t, struct kstr name, bool on);
int index_txn_append(struct index_txn *t, uint64_t mailbox_id,
		     const struct index_append *m);
/* Flags change for the UIDs listed (sorted). unchangedsince: 0 = no
 * condition (CONDSTORE UNCHANGEDSINCE otherwise). */
int index_txn_store(struct index_txn *t, uint64_t mailbox_id,
		    const uint32_t *uids, size_t n, enum store_mode mode,
		    uint32_t flags, const struct kstr *keywords,
		    size_t nkeywords, uint64_t unchangedsince);
int index_txn_expunge(struct index_txn *t, uint64_t mailbox_id,
		      const uint32_t *uids, size_t n);
/* COPY (move=false) or MOVE of UIDs (sorted) from src to dst; no message
 * bytes are copied. */
int index_txn_copy(struct index_txn *t, uint64_t src_id,
		   const uint32_t *uids, size_t n, uint64_t dst_id, bool move);

/* Commits. May suspend. A transaction whose ops all turn out to change
 * nothing commits without writing. *error_r stays valid until
 * index_txn_free(). Returns 0 (results available), or:
 *   KURA_ENOTFOUND  a mailbox the transaction names does not exist
 *                   (*error_r says which);
 *   KURA_EEXISTS    CREATE/RENAME target exists;
 *   KURA_ENOPERM    DELETE INBOX, RENAME to a name inside itself;
 *   KURA_ELIMIT     more keywords than a mailbox can hold;
 *   KURA_EUNAVAIL   the store failed; nothing was committed that a
 *                   retry of the same command could not finish (the
 *                   entry may have been stored although no answer came
 *                   back: it is not applied here, a later refresh
 *                   applies it);
 *   KURA_ECORRUPT   the log could not be read while catching up;
 *   KURA_EINVAL     the transaction was already committed. */
int index_txn_commit(struct index_txn *t, const char **error_r);
/* (*error_r is thread-local text, valid until the next commit on this
 * thread: it survives index_txn_free().) */
const struct index_op_result *index_txn_result(const struct index_txn *t,
					       int op);

/* ---- Helpers shared with the protocol layer ---- */

/* Flag name ("\\Seen", case-insensitive) to bit, or 0 if not a system
 * flag. "\\Recent" is not settable and yields 0. */
uint32_t index_flag_from_name(struct kstr name);
/* Writes "\\Seen \\Deleted kw1 kw2" (space-separated, no parentheses)
 * for a message. */
void index_flags_write(struct buf *out, const struct mailbox *mb,
		       const struct index_msg *m, bool recent);

/* ---- Lazy expunge and the sweeper (index/index_sweep.c) ----
 *
 * Expunged messages (and the messages of a deleted mailbox) stay in the
 * store for a retention period: the account state keeps a list of them
 * (guid, mailbox, UID, expunge time, subject, ...) until the sweeper
 * purges it. The sweeper is just another node: it works through the
 * normal commit protocol and deletes only what no node can need any
 * more (the reasoning is at the top of index_sweep.c and in
 * docs/formats.md). All of these may suspend; outside a task they block
 * (kura-ctl). None of them creates an account: a user without objects
 * in the store gets KURA_ENOTFOUND. */

struct index_sweep_settings {
	/* Wall clock (Unix seconds) every age is measured against; 0 = the
	 * real clock. Tests move it forward. */
	int64_t now;
	/* Expunged messages are kept at least this long. */
	int64_t retention_sec;
	/* Unreferenced message objects (failed or interrupted APPENDs) are
	 * kept this long; must exceed the longest APPEND (object PUT to log
	 * entry). */
	int64_t orphan_grace_sec;
	/* Log entries and snapshots younger than this are kept; must be far
	 * longer than INDEX_HINT_CHECK_SEC (60 s) plus clock skew. */
	int64_t log_grace_sec;
	/* Log entries kept at and below the newest snapshot (at least 1). */
	unsigned keep_entries;
	/* Newest complete snapshots kept (at least 1). */
	unsigned keep_snapshots;
	/* Count what would be deleted, delete nothing, commit nothing. */
	bool dry_run;
};

#define INDEX_SWEEP_RETENTION_DEFAULT (7 * 86400)
#define INDEX_SWEEP_ORPHAN_GRACE_DEFAULT 86400
#define INDEX_SWEEP_LOG_GRACE_DEFAULT 3600
#define INDEX_SWEEP_KEEP_ENTRIES_DEFAULT 100
#define INDEX_SWEEP_KEEP_SNAPSHOTS_DEFAULT 2

/* Fills the defaults above (now = 0, dry_run = false). */
void index_sweep_settings_init(struct index_sweep_settings *set);

struct index_sweep_stats {
	uint64_t log_deleted;		/* log entries */
	uint64_t snapshots_deleted;	/* snapshots (seqs) removed */
	uint64_t snap_objects_deleted;	/* their objects */
	uint64_t expunged_deleted;	/* message objects past retention */
	uint64_t expunged_kept;		/* expunged messages within retention */
	uint64_t records_purged;	/* expunged-list guids dropped */
	uint64_t orphans_deleted;	/* unreferenced objects past grace */
	uint64_t bytes_freed;		/* message bytes deleted */
	uint64_t snapshot_seq;		/* newest snapshot that loads (0: none) */
};

/* Sweeps one user (set NULL: defaults): purges expunged-list records
 * past retention and deletes their message objects when no mailbox
 * references them, deletes unreferenced objects past the orphan grace,
 * snapshots beyond the newest keep_snapshots (keeping every object a kept
 * snapshot references), and log entries at or below the newest snapshot
 * minus keep_entries that are older than log_grace. *st is filled (also
 * on error: what was done). Returns 0, KURA_ENOTFOUND (no such user),
 * KURA_EINVAL (bad user name), KURA_EUNAVAIL, KURA_ECORRUPT. */
int index_sweep_user(struct index *idx, const char *user,
		     const struct index_sweep_settings *set,
		     struct index_sweep_stats *st, const char **error_r);

/* Every user with objects in the store (names unescaped), sorted by
 * their keys; *users_r is malloc'ed, each name too (free with
 * index_users_free). One LIST request per user. */
int index_users_list(struct index *idx, char ***users_r, size_t *count_r,
		     const char **error_r);
void index_users_free(char **users, size_t count);

struct index_expunged_msg {
	uint8_t guid[INDEX_GUID_LEN];
	char *mailbox;		/* name of the mailbox it was expunged from */
	uint64_t mailbox_id;
	uint32_t uid;		/* its UID there */
	uint32_t flags;
	uint64_t size;
	int64_t internaldate;
	int64_t expunged;	/* Unix time of the expunge */
	char *subject;		/* raw ENVELOPE subject, or NULL */
};

/* The expunged messages of user still within retention (set NULL:
 * defaults), oldest first; a message that a mailbox references again
 * (MOVE, or restored) is left out. *list_r is malloc'ed (free with
 * index_expunged_list_free). */
int index_expunged_list(struct index *idx, const char *user,
			const struct index_sweep_settings *set,
			struct index_expunged_msg **list_r, size_t *count_r,
			const char **error_r);
void index_expunged_list_free(struct index_expunged_msg *list, size_t count);

/* Appends the expunged message guid back as a new message (new UID,
 * flags as when it was expunged minus \Deleted) through a normal
 * transaction, into `mailbox` (wire name; must exist) or, when NULL,
 * into the mailbox it came from (recreated under its old name when it
 * was deleted). Works for every message still on the expunged list,
 * also past retention until a sweep removes it. Returns 0 with the new
 * UID, KURA_ENOTFOUND (not on the list any more, object gone, or no such
 * mailbox / user), or the errors of index_txn_commit. */
int index_expunged_restore(struct index *idx, const char *user,
			   const uint8_t guid[INDEX_GUID_LEN],
			   const char *mailbox, uint32_t *uidvalidity_r,
			   uint32_t *uid_r, const char **error_r);

#endif
