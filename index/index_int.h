/* Private to index/: the in-memory account, the undo journal used while
 * evaluating transactions, and the functions the index_*.c files share.
 *
 * Files:
 *   index.c        index, per-thread account maps, accessors, helpers,
 *                  message bodies, object keys, the account lock
 *   index_apply.c  log entry ops (JSON) applied to the in-memory state,
 *                  with an undo journal; uid-set strings
 *   index_snap.c   snapshots: writing and loading
 *   index_txn.c    transactions: evaluation, commit with retry and group
 *                  commit, refresh, account load
 *   index_sweep.c  lazy expunge (the trash format), the sweeper, listing
 *                  and restoring expunged messages */
#ifndef KURA_INDEX_INT_H
#define KURA_INDEX_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "index/index.h"

#define INDEX_FORMAT_VERSION 1
#define INDEX_MAX_USER 255
#define INDEX_MAX_NAME 1000
#define INDEX_MAX_KEYWORD_LEN 255
#define INDEX_MAX_MAILBOXES 10000
/* Largest log entry / snapshot object read back. */
#define INDEX_ENTRY_MAX ((size_t)256 << 20)
#define INDEX_OBJECT_MAX ((size_t)1024 << 20)
#define INDEX_COMMIT_ATTEMPTS 1000
/* Time a commit keeps retrying against other nodes before NO [UNAVAILABLE]. */
#define INDEX_COMMIT_BUDGET_USEC (20ULL * 1000 * 1000)
#define INDEX_PUT_TRIES 3
#define INDEX_LRU_MAX 1000
/* A warm account checks the snapshot hint at most this often, to notice
 * log entries swept away under it (see index_txn.c). */
#define INDEX_HINT_CHECK_SEC 60

/* struct mailbox plus what only the index sees. */
struct mbox_priv {
	struct mailbox mb;
	/* Seq of the snapshot holding this mailbox's object (0: none). */
	uint64_t snap_ref;
	/* Seq of the last entry that changed the mailbox object (messages,
	 * keywords, uidnext, highestmodseq, expunged). */
	uint64_t last_change;
};

static inline struct mbox_priv *mbox_priv(struct mailbox *mb)
{
	return (struct mbox_priv *)mb;
}

struct index_thread;

struct index {
	struct store *store;
	struct cache *cache;
	struct index_settings set;
	char node[64];
	/* Per-thread account maps of this index (under the global lock). */
	struct index_thread *threads;
};

struct task;
struct commit_part;

/* A task waiting for the account lock. A commit participant waits as
 * one too (part != NULL): a leader may take its transaction into a group
 * commit and remove it from the queue instead of granting the lock. */
struct lock_waiter {
	struct task *task;
	struct lock_waiter *next;
	struct commit_part *part;
	bool granted;
};

struct account {
	struct index *idx;
	struct index_thread *ts;
	char *user;
	/* "u/<h>/<escaped user>/" */
	char *prefix;
	unsigned refs;
	bool loaded;

	/* The state as of log entry `seq`. */
	uint64_t seq;
	uint64_t modseq;
	uint64_t next_mailbox_id;
	uint32_t last_uidvalidity;
	struct mailbox **mbs;	/* sorted by name */
	size_t nmbs, mbs_cap;
	struct mailbox **by_id;	/* the same, sorted by id */
	size_t by_id_cap;
	char **subs;		/* sorted */
	size_t nsubs, subs_cap;

	/* Seq of the last snapshot loaded or started (the next one is due
	 * snapshot_every entries later), and of the newest one known to
	 * exist complete. */
	uint64_t snap_seq;
	uint64_t snap_good;
	bool snap_running;
	uint64_t hint_checked_usec;

	/* Store I/O that changes the state (load, refresh, commit) runs
	 * under this lock, handed from one task to the next. */
	bool locked;
	struct lock_waiter *wait_head, *wait_tail;
	struct commit_part *cq_head, *cq_tail;

	struct account_listener *listeners;

	/* Lazy expunge (index_sweep.c): messages expunged or in a deleted
	 * mailbox, in the order they went, until the sweeper purges them.
	 * The snapshot holding this list (0: none) and the seq of the last
	 * entry that changed it, like mbox_priv. */
	struct index_trash *trash;
	size_t ntrash, trash_cap;
	uint64_t trash_snap_ref, trash_last_change;
	/* "time" of the entry being applied: the expunge time of the
	 * trash records it adds. */
	int64_t apply_time;
	/* When the state was last proven to be the head of the log
	 * (account_verify_head); 0 = never. */
	uint64_t verified_usec;
	uint64_t last_commit_usec;	/* end of our last successful commit */
	uint64_t last_foreign_usec;	/* last entry applied from another node */
	uint64_t put_usec_avg;	/* moving average of a log PUT's latency */

	/* Per-thread map and LRU of unreferenced accounts. */
	struct account *hnext;
	struct account *lru_prev, *lru_next;
	bool in_lru;
};

/* An expunged message kept for lazy expunge (DESIGN.md §4). Derived
 * from the state when an expunge or mailbox delete is applied, so every
 * node gets the same list; dropped by a "purge" op of the sweeper. */
struct index_trash {
	uint8_t guid[INDEX_GUID_LEN];
	uint64_t mbid;		/* mailbox it was expunged from */
	char *mailbox;		/* that mailbox's name then */
	uint32_t uid;
	uint32_t flags;
	uint64_t size;
	int64_t internaldate;
	int16_t idate_tz_min;
	int64_t time;		/* expunge time (entry "time"), Unix */
	char *keywords;		/* "kw1 kw2", or NULL */
	char *subject;		/* raw ENVELOPE subject (cut), or NULL */
};

/* Unread bytes of b as chars; never NULL (an empty buffer may have no
 * memory). */
static inline const char *buf_chars(const struct buf *b)
{
	return b->data != NULL ? (const char *)b->data + b->pos : "";
}

/* ---- index.c ---- */

/* Object key under the account's prefix: prefix + printf(fmt). */
char *account_key(const struct account *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Escapes a user name for keys: bytes outside [A-Za-z0-9._@+-] and dots
 * that could form "." / ".." path components as %XX. */
void index_user_escape(const char *user, char *out, size_t outlen);

/* Lock for store I/O on an account. Inside a task, waits; outside a
 * task, fails with KURA_EUNAVAIL when another task holds it. */
int account_lock(struct account *a, const char **error_r);
void account_unlock(struct account *a);
void account_notify(struct account *a);
/* Drops the whole in-memory state (before a reload). */
void account_state_clear(struct account *a);

/* Reads an immutable object into out (emptied first; out->max bounds
 * it): cache first, then the store (the copy is put into the cache).
 * Returns 0, KURA_ENOTFOUND, KURA_EUNAVAIL, KURA_ECORRUPT (too big). */
int index_obj_get(struct index *idx, const char *key, struct buf *out,
		  const char **error_r);
/* Sleeps msec: task_sleep_ms inside a task, nanosleep outside. */
void index_sleep_ms(uint64_t msec);

/* ---- mailbox structure (index_apply.c) ---- */

struct mailbox *index_mbox_alloc(uint64_t id, const char *name, uint32_t uidvalidity,
			   uint32_t special, uint64_t modseq);
void index_mbox_free(struct mailbox *mb);
/* Inserts mb into both sorted arrays. */
void index_mbox_insert(struct account *a, struct mailbox *mb);
/* Removes mb from both arrays (does not free). */
void index_mbox_remove(struct account *a, struct mailbox *mb);
struct mailbox *index_mbox_by_name(const struct account *a, const char *name);
/* "inbox" in any case -> "INBOX", also as the first component. Returns
 * a malloc'ed string. */
char *index_name_normalize(struct kstr name);
/* Keyword index in mb (case-insensitive), or -1. */
int index_keyword_find(const struct mailbox *mb, const char *kw);
struct msg_meta *index_meta_new(void);
struct msg_meta *index_meta_ref(struct msg_meta *m);
void index_meta_unref(struct msg_meta **m);
int index_subs_find(const struct account *a, const char *name, size_t *pos_r);

/* ---- byte strings in JSON ---- */

bool index_utf8_is_valid(const char *s, size_t n);
/* A JSON value for s: a string, {"b64":...} when s is not UTF-8, or null
 * for NULL. */
json_t *index_json_bytes(const char *s);
/* The bytes of such a value (malloc'ed), or NULL. */
char *index_json_bytes_dup(json_t *v);
/* Writes such a value as JSON text into b. */
void index_json_buf_bytes(struct buf *b, const char *s);

/* ---- uid sets "1:5,7" ---- */

struct uid_range {
	uint32_t lo, hi;
};
/* Appends the ranges of sorted uids to out. */
void index_uidset_write(struct buf *out, const uint32_t *uids, size_t n);
/* Parses a uid set. Returns false on bad syntax. *r_r is malloc'ed. */
bool index_uidset_parse(const char *s, struct uid_range **r_r, size_t *n_r);

/* ---- the undo journal ---- */

struct undo_rec;
struct undo {
	struct undo_rec *r;
	size_t n, cap;
};
void index_undo_init(struct undo *u);
/* Reverts records [mark, n) in reverse order. */
void index_undo_rollback(struct account *a, struct undo *u, size_t mark);
void index_undo_deinit(struct account *a, struct undo *u);
/* Records the account scalars (seq, modseq, ids) for rollback. */
void index_undo_save_account(struct account *a, struct undo *u);

/* Applies one op (a JSON object, format in index_apply.c) to the state,
 * recording undo information when u is not NULL. `seq` is the entry
 * being applied. A malformed op is skipped with a log line (every node
 * skips it the same way). */
void index_apply_op(struct account *a, json_t *op, uint64_t seq, struct undo *u);
/* Checks the envelope of an entry read from the store and applies its
 * ops. Returns 0 or KURA_ECORRUPT (nothing applied). */
int index_apply_entry(struct account *a, json_t *entry, uint64_t seq);

/* ---- snapshots (index_snap.c) ---- */

/* Loads the snapshot `seq` into an empty account state. Returns 0,
 * KURA_ENOTFOUND (no such snapshot or part missing), KURA_ECORRUPT,
 * KURA_EUNAVAIL. On error the state is cleared. */
int index_snap_load(struct account *a, uint64_t seq, const char **error_r);
/* Newest snapshot by listing the store (0 if none). */
int index_snap_find_newest(struct account *a, uint64_t below, uint64_t *seq_r,
		     const char **error_r);
/* Reads the hint "snap/latest"; 0 if absent. */
int index_snap_read_hint(struct account *a, uint64_t *seq_r, const char **error_r);
/* Starts a snapshot of the current state if one is due; the writes
 * happen in a task of their own (or inline outside a task). Call with
 * the lock held. */
void index_snap_maybe_start(struct account *a);

/* Serializes one mailbox object / the mailboxes object (exposed for
 * tests and kura-ctl dumps). */
char *index_snap_mbox_json(const struct account *a, const struct mailbox *mb,
		     uint64_t seq, size_t *len_r);

/* The mailbox object parser alone (for the fuzz target): fills a
 * fresh mb (id set, no messages) from bytes. Returns 0 or KURA_ECORRUPT;
 * on error mb may hold part of the object (free it). */
int index_snap_mbox_parse(struct mailbox *mb, const char *data, size_t len,
			  const char **error_r);

/* ---- the trash (index_apply.c) ---- */

void index_trash_clear(struct account *a);
/* Index of the newest record of guid (latest expunge time), or -1. */
ssize_t index_trash_find(const struct account *a,
			 const uint8_t guid[INDEX_GUID_LEN]);
void index_trash_rec_free(struct index_trash *t);

/* ---- lazy expunge and the sweeper (index_sweep.c) ---- */

/* The subject of an IMAP ENVELOPE string (unquoted, at most
 * INDEX_SUBJECT_MAX bytes, malloc'ed), or NULL when NIL or malformed. */
#define INDEX_SUBJECT_MAX 200
char *index_envelope_subject(const char *envelope);
/* The snapshot object snap/<seq>/expunged of the trash (malloc'ed JSON). */
char *index_trash_json(const struct account *a, uint64_t seq, size_t *len_r);
/* Replaces the trash of a by the records of such an object. Returns 0
 * or KURA_ECORRUPT (the trash is then empty). */
int index_trash_parse(struct account *a, const char *data, size_t len,
		      uint64_t seq, const char **error_r);

/* "u/<h>/<escaped user>/" (malloc'ed). */
char *index_user_prefix(const char *user);
/* An account outside every map, with an empty state, for work on a
 * side copy (snapshot checks) and for tests and fuzzing (idx may be
 * NULL when nothing does store I/O with it). */
struct account *index_account_scratch(struct index *idx, const char *user);
void index_account_scratch_free(struct account **a);

/* ---- transactions (index_txn.c) ---- */

/* Loads the account state (lock held). */
int account_load(struct account *a, const char **error_r);
/* Reads and applies entries after a->seq (lock held). *changed_r tells
 * whether anything was applied. */
int account_read_forward(struct account *a, bool *changed_r,
			 const char **error_r);
/* Before a commit (lock held): unless proven within
 * INDEX_HINT_CHECK_SEC, proves that the state is the head of the log,
 * i.e. that no entry after it was swept away (see index_txn.c), and
 * reloads from the newest snapshot when it was. */
int account_verify_head(struct account *a, bool *changed_r,
			const char **error_r);
/* The sweeper's op: drops the trash records of the guids (sorted) whose
 * newest expunge is at or before cutoff, evaluated at commit time. */
int index_txn_purge(struct index_txn *t, const uint8_t (*guids)[INDEX_GUID_LEN],
		    size_t n, int64_t cutoff);
/* APPEND of an expunged message back (index_expunged_restore): fails
 * with KURA_ENOTFOUND at commit time when the guid is no longer in the
 * trash (a sweeper purged it first). */
int index_txn_restore(struct index_txn *t, uint64_t mailbox_id,
		      const struct index_append *m);

#endif
