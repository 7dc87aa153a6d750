/* Transactions, the commit protocol (DESIGN.md §5), refresh and load.
 *
 * Commit. The account has applied entries up to seq N. The leader
 * evaluates the queued transactions one after the other against the
 * in-memory state (each sees the effects of the ones before it; one that
 * fails is rolled back and left out), turning intents into resolved ops,
 * then reverts the state (no suspension in between, so nobody sees it)
 * and PUTs log/N+1 create-only:
 *   - stored: the ops are applied for real, listeners are told;
 *   - KURA_ECONFLICT: another node wrote N+1; read entries N+1.. until
 *     one is missing, apply them, evaluate again (fresh UIDs; a mailbox
 *     that vanished fails that transaction), retry, at most
 *     INDEX_COMMIT_ATTEMPTS times;
 *   - any other error: the PUT may still have happened. It is retried
 *     as is (same seq, same bytes, same random entry id); a later
 *     ECONFLICT whose entry carries our id is our own write, i.e. a
 *     success. After INDEX_PUT_TRIES failures every transaction gets
 *     KURA_EUNAVAIL and nothing is applied in memory (a later refresh
 *     applies the entry if it was written after all).
 *
 * Group commit. Store I/O on an account runs under the account lock. A
 * commit that finds the lock taken (a PUT in flight) queues its
 * transaction; the first queued committer to get the lock commits every
 * queued transaction as one entry and hands each its own result.
 *
 * Freshness. A refresh reads log/N+1 (cache first: entries are
 * immutable) and forward until one is missing. Every
 * INDEX_HINT_CHECK_SEC it also reads snap/latest: a snapshot newer than
 * N while log/N+1 is missing means the entries were swept away under a
 * node that was far behind; it reloads from the snapshot.
 *
 * Swept entries and commits. A create-only PUT of log/N+1 succeeds when
 * the key is absent, also when entry N+1 existed and the sweeper deleted
 * it: a node whose state is far behind would then write an entry nobody
 * reads. So before a commit, a state not proven to be the head within
 * INDEX_HINT_CHECK_SEC is checked (account_verify_head): read forward,
 * then HEAD log/N (our newest applied entry). The sweeper deletes entries
 * in ascending order only, so while log/N exists no entry above N is
 * gone, and log/N+1 missing means N is the head. If log/N is gone the
 * state is reloaded from the newest snapshot. The sweeper deletes only
 * entries older than a grace far longer than INDEX_HINT_CHECK_SEC, so an
 * entry created after our last proof cannot be swept before the next
 * check. A successful PUT of our own entry is such a proof too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "index/index_int.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"

enum intent_kind {
	IN_CREATE = 0,
	IN_DELETE,
	IN_RENAME,
	IN_SUB,
	IN_APPEND,
	IN_STORE,
	IN_EXPUNGE,
	IN_COPY,
	IN_PURGE,
};

struct intent {
	enum intent_kind kind;
	char *name, *name2;
	uint32_t special;
	bool on, move;
	uint64_t mb, dst;
	uint32_t *uids;
	size_t nuids;
	enum store_mode mode;
	uint32_t flags;
	char **kw;
	size_t nkw;
	uint64_t unchangedsince;
	uint8_t guid[INDEX_GUID_LEN];
	uint64_t size;
	int64_t idate;
	int tz;
	struct msg_meta *meta;
	bool need_trash;	/* restore: guid must be on the expunged list */
	uint8_t (*guids)[INDEX_GUID_LEN];	/* PURGE, sorted */
	size_t nguids;
	int64_t cutoff;
	struct index_op_result res;
};

struct index_txn {
	struct account *a;
	struct intent *in;
	size_t n, cap;
	bool committed;
	char err[256];
};

struct commit_part {
	struct index_txn *t;
	struct commit_part *next;
	struct lock_waiter w;
	json_t *ops;
	int rc;
	const char *err;
	bool done;
};

/* ---- transactions ---- */

struct index_txn *index_txn_begin(struct account *a)
{
	struct index_txn *t = xcalloc(1, sizeof(*t));
	t->a = a;
	a->refs++;
	return t;
}

static void result_reset(struct index_op_result *r)
{
	free(r->src_uids);
	free(r->uids);
	free(r->failed_uids);
	memset(r, 0, sizeof(*r));
}

static void intent_free(struct intent *in)
{
	free(in->name);
	free(in->name2);
	free(in->uids);
	for (size_t i = 0; i < in->nkw; i++)
		free(in->kw[i]);
	free(in->kw);
	index_meta_unref(&in->meta);
	free(in->guids);
	result_reset(&in->res);
}

void index_txn_free(struct index_txn **tp)
{
	struct index_txn *t = *tp;
	if (t == NULL)
		return;
	*tp = NULL;
	for (size_t i = 0; i < t->n; i++)
		intent_free(&t->in[i]);
	free(t->in);
	index_account_unref(&t->a);
	free(t);
}

static struct intent *intent_add(struct index_txn *t, enum intent_kind kind)
{
	xgrow((void **)&t->in, &t->cap, t->n + 1, sizeof(*t->in));
	struct intent *in = &t->in[t->n++];
	memset(in, 0, sizeof(*in));
	in->kind = kind;
	return in;
}

/* A mailbox name in wire form (modified UTF-7 is 7-bit). Returns the
 * normalized copy or NULL. A trailing separator is dropped (CREATE
 * "foo/" creates "foo"). */
static char *name_check(struct kstr name)
{
	if (name.len > 1 && name.p[name.len - 1] == INDEX_HIER_SEP)
		name.len--;
	if (name.len == 0 || name.len > INDEX_MAX_NAME ||
	    name.p[0] == INDEX_HIER_SEP)
		return NULL;
	for (size_t i = 0; i < name.len; i++) {
		uint8_t c = name.p[i];
		if (c < 0x20 || c >= 0x7f || c == '*' || c == '%')
			return NULL;
		if (c == INDEX_HIER_SEP && i + 1 < name.len &&
		    name.p[i + 1] == INDEX_HIER_SEP)
			return NULL;
	}
	return index_name_normalize(name);
}

static bool keyword_is_valid(struct kstr kw)
{
	if (kw.len == 0 || kw.len > INDEX_MAX_KEYWORD_LEN || kw.p[0] == '\\')
		return false;
	for (size_t i = 0; i < kw.len; i++) {
		uint8_t c = kw.p[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int keywords_copy(struct intent *in, const struct kstr *kw, size_t n)
{
	if (n > 0 && kw == NULL)
		return KURA_EINVAL;
	in->kw = xcalloc(n + 1, sizeof(*in->kw));
	for (size_t i = 0; i < n; i++) {
		if (!keyword_is_valid(kw[i]))
			return KURA_EINVAL;
		/* Duplicates (any case) count once. */
		bool dup = false;
		for (size_t j = 0; j < in->nkw && !dup; j++)
			dup = kstr_eq_ci(kw[i], in->kw[j]);
		if (!dup)
			in->kw[in->nkw++] = kstr_dup(kw[i]);
	}
	return 0;
}

static int uids_copy(struct intent *in, const uint32_t *uids, size_t n)
{
	if (n > 0 && uids == NULL)
		return KURA_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (uids[i] == 0 || (i > 0 && uids[i] <= uids[i - 1]))
			return KURA_EINVAL;
	}
	in->uids = xmalloc(n * sizeof(*in->uids) + 1);
	if (n > 0)
		memcpy(in->uids, uids, n * sizeof(*uids));
	in->nuids = n;
	return 0;
}

/* Drops a half-built intent after an argument error. */
static int intent_drop(struct index_txn *t, int rc)
{
	intent_free(&t->in[--t->n]);
	return rc;
}

int index_txn_create_mailbox(struct index_txn *t, struct kstr name,
			     uint32_t special_use)
{
	char *n = name_check(name);
	if (n == NULL)
		return KURA_EINVAL;
	struct intent *in = intent_add(t, IN_CREATE);
	in->name = n;
	in->special = special_use & 0x7f;
	return (int)t->n - 1;
}

int index_txn_delete_mailbox(struct index_txn *t, struct kstr name)
{
	char *n = name_check(name);
	if (n == NULL)
		return KURA_EINVAL;
	struct intent *in = intent_add(t, IN_DELETE);
	in->name = n;
	return (int)t->n - 1;
}

int index_txn_rename_mailbox(struct index_txn *t, struct kstr from,
			     struct kstr to)
{
	char *f = name_check(from), *n = name_check(to);
	if (f == NULL || n == NULL) {
		free(f);
		free(n);
		return KURA_EINVAL;
	}
	struct intent *in = intent_add(t, IN_RENAME);
	in->name = f;
	in->name2 = n;
	return (int)t->n - 1;
}

int index_txn_subscribe(struct index_txn *t, struct kstr name, bool on)
{
	char *n = name_check(name);
	if (n == NULL)
		return KURA_EINVAL;
	struct intent *in = intent_add(t, IN_SUB);
	in->name = n;
	in->on = on;
	return (int)t->n - 1;
}

int index_txn_append(struct index_txn *t, uint64_t mailbox_id,
		     const struct index_append *m)
{
	struct intent *in = intent_add(t, IN_APPEND);
	int rc;
	in->mb = mailbox_id;
	if ((rc = keywords_copy(in, m->keywords, m->nkeywords)) != 0)
		return intent_drop(t, rc);
	if (m->internaldate < 0 || m->idate_tz_min < -1440 ||
	    m->idate_tz_min > 1440)
		return intent_drop(t, KURA_EINVAL);
	memcpy(in->guid, m->guid, INDEX_GUID_LEN);
	in->size = m->size;
	in->idate = m->internaldate;
	in->tz = m->idate_tz_min;
	in->flags = m->flags & 0x1f;
	in->meta = index_meta_new();
	if (m->meta != NULL) {
		const struct msg_meta *s = m->meta;
		in->meta->envelope = s->envelope ? xstrdup(s->envelope) : NULL;
		in->meta->bodystructure =
			s->bodystructure ? xstrdup(s->bodystructure) : NULL;
		in->meta->body = s->body ? xstrdup(s->body) : NULL;
		in->meta->sent_date = s->sent_date;
		in->meta->sent_tz_min = s->sent_tz_min;
		in->meta->header_size = s->header_size;
	}
	return (int)t->n - 1;
}

int index_txn_store(struct index_txn *t, uint64_t mailbox_id,
		    const uint32_t *uids, size_t n, enum store_mode mode,
		    uint32_t flags, const struct kstr *keywords,
		    size_t nkeywords, uint64_t unchangedsince)
{
	struct intent *in = intent_add(t, IN_STORE);
	int rc;
	in->mb = mailbox_id;
	if (mode != STORE_MODE_REPLACE && mode != STORE_MODE_ADD &&
	    mode != STORE_MODE_REMOVE)
		return intent_drop(t, KURA_EINVAL);
	if ((rc = uids_copy(in, uids, n)) != 0 ||
	    (rc = keywords_copy(in, keywords, nkeywords)) != 0)
		return intent_drop(t, rc);
	in->mode = mode;
	in->flags = flags & 0x1f;
	in->unchangedsince = unchangedsince;
	return (int)t->n - 1;
}

int index_txn_expunge(struct index_txn *t, uint64_t mailbox_id,
		      const uint32_t *uids, size_t n)
{
	struct intent *in = intent_add(t, IN_EXPUNGE);
	int rc;
	in->mb = mailbox_id;
	if ((rc = uids_copy(in, uids, n)) != 0)
		return intent_drop(t, rc);
	return (int)t->n - 1;
}

int index_txn_copy(struct index_txn *t, uint64_t src_id,
		   const uint32_t *uids, size_t n, uint64_t dst_id, bool move)
{
	struct intent *in = intent_add(t, IN_COPY);
	int rc;
	in->mb = src_id;
	in->dst = dst_id;
	in->move = move;
	if ((rc = uids_copy(in, uids, n)) != 0)
		return intent_drop(t, rc);
	return (int)t->n - 1;
}

static int guid_cmp(const void *x, const void *y)
{
	return memcmp(x, y, INDEX_GUID_LEN);
}

int index_txn_purge(struct index_txn *t, const uint8_t (*guids)[INDEX_GUID_LEN],
		    size_t n, int64_t cutoff)
{
	if (n > 0 && guids == NULL)
		return KURA_EINVAL;
	struct intent *in = intent_add(t, IN_PURGE);
	in->guids = xmalloc(n * sizeof(*in->guids) + 1);
	if (n > 0)
		memcpy(in->guids, guids, n * sizeof(*in->guids));
	qsort(in->guids, n, sizeof(*in->guids), guid_cmp);
	in->nguids = n;
	in->cutoff = cutoff;
	return (int)t->n - 1;
}

int index_txn_restore(struct index_txn *t, uint64_t mailbox_id,
		      const struct index_append *m)
{
	int op = index_txn_append(t, mailbox_id, m);
	if (op >= 0)
		t->in[op].need_trash = true;
	return op;
}

const struct index_op_result *index_txn_result(const struct index_txn *t,
					       int op)
{
	if (op < 0 || (size_t)op >= t->n)
		return NULL;
	return &t->in[op].res;
}

/* ---- evaluation ---- */

struct eval {
	struct account *a;
	struct index_txn *t;
	struct undo *u;
	json_t *ops;
	uint64_t seq;
};

static void emit(struct eval *ev, json_t *op)
{
	index_apply_op(ev->a, op, ev->seq, ev->u);
	json_array_append_new(ev->ops, op);
}

static int fail(struct eval *ev, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct eval *ev, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev->t->err, sizeof(ev->t->err), fmt, ap);
	va_end(ap);
	return rc;
}

static struct mailbox *mbox_of(struct eval *ev, uint64_t id)
{
	return account_mailbox_by_id(ev->a, id);
}

static uint32_t new_uidvalidity(const struct account *a)
{
	int64_t now = time_wall_sec();
	uint32_t v = now > 0 && now < UINT32_MAX ? (uint32_t)now : 1;
	if (v <= a->last_uidvalidity)
		v = a->last_uidvalidity < UINT32_MAX - 1 ?
		    a->last_uidvalidity + 1 : a->last_uidvalidity;
	return v;
}

static json_t *create_op(struct account *a, uint64_t *id_r, const char *name,
			 uint32_t special, uint32_t *uidv_r, uint64_t *modseq_r)
{
	*id_r = a->next_mailbox_id;
	*uidv_r = new_uidvalidity(a);
	*modseq_r = a->modseq + 1;
	return json_pack("{s:s,s:I,s:s,s:I,s:I,s:I}", "op", "create",
			 "id", (json_int_t)*id_r, "name", name,
			 "uidvalidity", (json_int_t)*uidv_r,
			 "special", (json_int_t)special,
			 "modseq", (json_int_t)*modseq_r);
}

static int eval_create(struct eval *ev, struct intent *in)
{
	struct account *a = ev->a;
	uint64_t id, modseq;
	uint32_t uidv;
	if (index_mbox_by_name(a, in->name) != NULL)
		return fail(ev, KURA_EEXISTS, "mailbox %s already exists",
			    in->name);
	if (a->nmbs >= INDEX_MAX_MAILBOXES)
		return fail(ev, KURA_ELIMIT, "too many mailboxes (%s)",
			    in->name);
	emit(ev, create_op(a, &id, in->name, in->special, &uidv, &modseq));
	in->res.uidvalidity = uidv;
	in->res.modseq = modseq;
	return 0;
}

static int eval_delete(struct eval *ev, struct intent *in)
{
	struct mailbox *mb = index_mbox_by_name(ev->a, in->name);
	if (mb == NULL)
		return fail(ev, KURA_ENOTFOUND, "mailbox %s does not exist",
			    in->name);
	if (strcmp(mb->name, "INBOX") == 0)
		return fail(ev, KURA_ENOPERM, "cannot delete %s", "INBOX");
	in->res.uidvalidity = mb->uidvalidity;
	emit(ev, json_pack("{s:s,s:I}", "op", "delete", "id",
			   (json_int_t)mb->id));
	return 0;
}

static int rename_len_cmp(const void *x, const void *y)
{
	const struct mailbox *a = *(struct mailbox *const *)x;
	const struct mailbox *b = *(struct mailbox *const *)y;
	size_t la = strlen(a->name), lb = strlen(b->name);
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int eval_rename(struct eval *ev, struct intent *in)
{
	struct account *a = ev->a;
	struct mailbox *src = index_mbox_by_name(a, in->name);
	const char *to = in->name2;
	size_t flen = strlen(in->name);

	if (src == NULL)
		return fail(ev, KURA_ENOTFOUND, "mailbox %s does not exist",
			    in->name);
	if (index_mbox_by_name(a, to) != NULL)
		return fail(ev, KURA_EEXISTS, "mailbox %s already exists", to);
	in->res.uidvalidity = src->uidvalidity;
	if (strcmp(src->name, "INBOX") == 0) {
		/* RFC 3501 6.3.5: the messages move to the new name, INBOX
		 * stays (empty, new UIDVALIDITY), its children stay. */
		uint64_t id, modseq;
		uint32_t uidv;
		if (a->nmbs >= INDEX_MAX_MAILBOXES)
			return fail(ev, KURA_ELIMIT, "too many mailboxes (%s)",
				    to);
		emit(ev, json_pack("{s:s,s:I,s:s}", "op", "rename", "id",
				   (json_int_t)src->id, "name", to));
		emit(ev, create_op(a, &id, "INBOX", 0, &uidv, &modseq));
		return 0;
	}
	if (strncmp(to, in->name, flen) == 0 && to[flen] == INDEX_HIER_SEP)
		return fail(ev, KURA_ENOPERM,
			    "cannot rename %s into itself", in->name);

	struct mailbox **set = xmalloc((a->nmbs + 1) * sizeof(*set));
	size_t n = 0;
	for (size_t i = 0; i < a->nmbs; i++) {
		struct mailbox *mb = a->mbs[i];
		if (mb == src || (strncmp(mb->name, in->name, flen) == 0 &&
				  mb->name[flen] == INDEX_HIER_SEP))
			set[n++] = mb;
	}
	/* Shorter names first: a child's new name may be a name that a
	 * shorter one of the set is leaving. */
	qsort(set, n, sizeof(*set), rename_len_cmp);
	char **names = xcalloc(n + 1, sizeof(*names));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *suffix = set[i]->name + flen;
		size_t len = strlen(to) + strlen(suffix);
		if (len > INDEX_MAX_NAME) {
			rc = fail(ev, KURA_ELIMIT, "name too long under %s", to);
			break;
		}
		names[i] = xmalloc(len + 1);
		snprintf(names[i], len + 1, "%s%s", to, suffix);
		struct mailbox *other = index_mbox_by_name(a, names[i]);
		bool in_set = false;
		for (size_t j = 0; j < n && other != NULL && !in_set; j++)
			in_set = set[j] == other;
		if (other != NULL && !in_set)
			rc = fail(ev, KURA_EEXISTS,
				  "mailbox %s already exists", names[i]);
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		emit(ev, json_pack("{s:s,s:I,s:s}", "op", "rename", "id",
				   (json_int_t)set[i]->id, "name", names[i]));
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(set);
	return rc;
}

static int eval_sub(struct eval *ev, struct intent *in)
{
	size_t pos;
	bool on = index_subs_find(ev->a, in->name, &pos) != 0;
	if (on != in->on)
		emit(ev, json_pack("{s:s,s:s,s:b}", "op", "sub", "name",
				   in->name, "on", in->on));
	return 0;
}

/* Number of names not yet keywords of mb. */
static size_t keywords_new(const struct mailbox *mb, char *const *kw, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++) {
		if (index_keyword_find(mb, kw[i]) < 0)
			c++;
	}
	return c;
}

static json_t *kw_json(char *const *kw, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(kw[i]));
	return arr;
}

static json_t *append_op(uint64_t mbid, uint32_t uid, const uint8_t *guid,
			 uint64_t size, int64_t idate, int tz, uint32_t flags,
			 json_t *kw, uint64_t modseq,
			 const struct msg_meta *mt)
{
	char hex[INDEX_GUID_LEN * 2 + 1];
	hex_encode(guid, INDEX_GUID_LEN, hex);
	json_t *op = json_pack("{s:s,s:I,s:I,s:s,s:I,s:I,s:i,s:I,s:o,s:I}",
			       "op", "append", "mb", (json_int_t)mbid,
			       "uid", (json_int_t)uid, "guid", hex,
			       "size", (json_int_t)size,
			       "idate", (json_int_t)idate, "tz", tz,
			       "flags", (json_int_t)flags, "kw", kw,
			       "modseq", (json_int_t)modseq);
	json_object_set_new(op, "env", index_json_bytes(mt ? mt->envelope : NULL));
	json_object_set_new(op, "bs", index_json_bytes(mt ? mt->bodystructure : NULL));
	json_object_set_new(op, "body", index_json_bytes(mt ? mt->body : NULL));
	json_object_set_new(op, "sent",
			    json_integer(mt ? mt->sent_date : -1));
	json_object_set_new(op, "stz", json_integer(mt ? mt->sent_tz_min : 0));
	json_object_set_new(op, "hsize",
			    json_integer(mt ? mt->header_size : 0));
	return op;
}

static int eval_append(struct eval *ev, struct intent *in)
{
	struct mailbox *mb = mbox_of(ev, in->mb);
	if (mb == NULL)
		return fail(ev, KURA_ENOTFOUND, "mailbox %s does not exist",
			    "for APPEND");
	if (in->need_trash && index_trash_find(ev->a, in->guid) < 0)
		return fail(ev, KURA_ENOTFOUND, "%s",
			    "the message is no longer on the expunged list");
	if (mb->uidnext >= UINT32_MAX - 1)
		return fail(ev, KURA_ELIMIT, "%s: no UIDs left", mb->name);
	if (mb->nkeywords + keywords_new(mb, in->kw, in->nkw) >
	    INDEX_MAX_KEYWORDS)
		return fail(ev, KURA_ELIMIT, "too many keywords in %s",
			    mb->name);
	uint32_t uid = mb->uidnext;
	uint64_t modseq = ev->a->modseq + 1;
	in->res.uidvalidity = mb->uidvalidity;
	emit(ev, append_op(mb->id, uid, in->guid, in->size, in->idate, in->tz,
			   in->flags, kw_json(in->kw, in->nkw), modseq,
			   in->meta));
	in->res.uids = xmalloc(sizeof(uint32_t));
	in->res.uids[0] = uid;
	in->res.nuids = 1;
	in->res.modseq = modseq;
	return 0;
}

static void u32_push(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	xgrow((void **)v, cap, *n + 1, sizeof(**v));
	(*v)[(*n)++] = x;
}

static json_t *uidset_json(const uint32_t *uids, size_t n)
{
	struct buf b;
	buf_init(&b, 0);
	index_uidset_write(&b, uids, n);
	json_t *s = json_stringn(b.data != NULL ? (const char *)b.data : "",
				 buf_used(&b));
	buf_deinit(&b);
	return s;
}

static int eval_store(struct eval *ev, struct intent *in)
{
	struct mailbox *mb = mbox_of(ev, in->mb);
	if (mb == NULL)
		return fail(ev, KURA_ENOTFOUND, "mailbox %s does not exist",
			    "for STORE");
	in->res.uidvalidity = mb->uidvalidity;
	/* The bits the keywords will have once registered. */
	uint64_t kwbits = 0;
	unsigned next = mb->nkeywords;
	for (size_t i = 0; i < in->nkw; i++) {
		int k = index_keyword_find(mb, in->kw[i]);
		if (k < 0 && in->mode != STORE_MODE_REMOVE) {
			if (next >= INDEX_MAX_KEYWORDS)
				return fail(ev, KURA_ELIMIT,
					    "too many keywords in %s",
					    mb->name);
			k = (int)next++;
		}
		if (k >= 0)
			kwbits |= (uint64_t)1 << k;
	}
	uint32_t *changed = NULL;
	size_t nchanged = 0, ccap = 0, fcap = 0;
	for (size_t i = 0; i < in->nuids; i++) {
		struct index_msg *m = mailbox_msg_by_uid(mb, in->uids[i]);
		if (m == NULL)
			continue;
		if (in->unchangedsince != 0 &&
		    m->modseq > in->unchangedsince) {
			u32_push(&in->res.failed_uids, &in->res.nfailed, &fcap,
				 m->uid);
			continue;
		}
		uint32_t nf;
		uint64_t nk;
		switch (in->mode) {
		case STORE_MODE_ADD:
			nf = m->flags | in->flags;
			nk = m->keywords | kwbits;
			break;
		case STORE_MODE_REMOVE:
			nf = m->flags & ~in->flags;
			nk = m->keywords & ~kwbits;
			break;
		default:
			nf = in->flags;
			nk = kwbits;
			break;
		}
		if (nf != m->flags || nk != m->keywords)
			u32_push(&changed, &nchanged, &ccap, m->uid);
	}
	if (nchanged > 0) {
		static const char *const modes[] = { "=", "+", "-" };
		uint64_t modseq = ev->a->modseq + 1;
		json_t *op = json_pack("{s:s,s:I,s:o,s:s,s:I,s:o,s:I}",
				       "op", "store", "mb", (json_int_t)mb->id,
				       "uids", uidset_json(changed, nchanged),
				       "mode", modes[in->mode],
				       "flags", (json_int_t)in->flags,
				       "kw", kw_json(in->kw, in->nkw),
				       "modseq", (json_int_t)modseq);
		emit(ev, op);
		in->res.modseq = modseq;
	}
	free(changed);
	return 0;
}

static int eval_expunge(struct eval *ev, struct intent *in)
{
	struct mailbox *mb = mbox_of(ev, in->mb);
	size_t cap = 0;
	if (mb == NULL)
		return fail(ev, KURA_ENOTFOUND, "mailbox %s does not exist",
			    "for EXPUNGE");
	in->res.uidvalidity = mb->uidvalidity;
	for (size_t i = 0; i < in->nuids; i++) {
		if (mailbox_msg_by_uid(mb, in->uids[i]) != NULL)
			u32_push(&in->res.uids, &in->res.nuids, &cap,
				 in->uids[i]);
	}
	if (in->res.nuids == 0)
		return 0;
	uint64_t modseq = ev->a->modseq + 1;
	emit(ev, json_pack("{s:s,s:I,s:o,s:I}", "op", "expunge",
			   "mb", (json_int_t)mb->id,
			   "uids", uidset_json(in->res.uids, in->res.nuids),
			   "modseq", (json_int_t)modseq));
	in->res.modseq = modseq;
	return 0;
}

static int eval_copy(struct eval *ev, struct intent *in)
{
	struct mailbox *src = mbox_of(ev, in->mb), *dst = mbox_of(ev, in->dst);
	size_t scap = 0, dcap = 0, n = 0;
	if (src == NULL || dst == NULL)
		return fail(ev, KURA_ENOTFOUND, "mailbox %s does not exist",
			    src == NULL ? "(source)" : "(destination)");
	in->res.uidvalidity = dst->uidvalidity;
	for (size_t i = 0; i < in->nuids; i++) {
		if (mailbox_msg_by_uid(src, in->uids[i]) != NULL)
			u32_push(&in->res.src_uids, &n, &scap, in->uids[i]);
	}
	if (n == 0)
		return 0;
	if ((uint64_t)dst->uidnext + n >= UINT32_MAX - 1)
		return fail(ev, KURA_ELIMIT, "%s: no UIDs left", dst->name);
	/* Keywords the copies bring into dst. */
	char *names[INDEX_MAX_KEYWORDS];
	size_t nnames = 0;
	uint64_t used = 0;
	for (size_t i = 0; i < n; i++)
		used |= mailbox_msg_by_uid(src, in->res.src_uids[i])->keywords;
	for (unsigned k = 0; k < src->nkeywords; k++) {
		if ((used & ((uint64_t)1 << k)) != 0)
			names[nnames++] = src->keywords[k];
	}
	if (dst->nkeywords + keywords_new(dst, names, nnames) >
	    INDEX_MAX_KEYWORDS)
		return fail(ev, KURA_ELIMIT, "too many keywords in %s",
			    dst->name);

	uint64_t modseq = ev->a->modseq + 1;
	for (size_t i = 0; i < n; i++) {
		/* Looked up each time: appending to src itself moves it. */
		struct index_msg *m = mailbox_msg_by_uid(src,
							 in->res.src_uids[i]);
		json_t *kw = json_array();
		for (unsigned k = 0; k < src->nkeywords; k++) {
			if ((m->keywords & ((uint64_t)1 << k)) != 0)
				json_array_append_new(kw, json_string(
					src->keywords[k]));
		}
		uint32_t uid = dst->uidnext;
		json_t *op = append_op(dst->id, uid, m->guid, m->size,
				       m->internaldate, m->idate_tz_min,
				       m->flags, kw, modseq, m->meta);
		json_object_set_new(op, "from",
				    json_pack("[I,I]", (json_int_t)src->id,
					      (json_int_t)m->uid));
		emit(ev, op);
		u32_push(&in->res.uids, &in->res.nuids, &dcap, uid);
	}
	in->res.modseq = modseq;
	if (in->move) {
		uint64_t m2 = ev->a->modseq + 1;
		emit(ev, json_pack("{s:s,s:I,s:o,s:I}", "op", "expunge",
				   "mb", (json_int_t)src->id,
				   "uids", uidset_json(in->res.src_uids, n),
				   "modseq", (json_int_t)m2));
	}
	return 0;
}

/* Only guids whose every expunge is at or before the cutoff go: one
 * expunged again (or restored and expunged) since stays. */
static int eval_purge(struct eval *ev, struct intent *in)
{
	struct account *a = ev->a;
	int64_t *newest = xmalloc(in->nguids * sizeof(*newest) + 1);
	for (size_t i = 0; i < in->nguids; i++)
		newest[i] = INT64_MIN;
	for (size_t i = 0; i < a->ntrash; i++) {
		uint8_t (*g)[INDEX_GUID_LEN] = bsearch(a->trash[i].guid,
			in->guids, in->nguids, sizeof(*in->guids), guid_cmp);
		if (g != NULL && a->trash[i].time > newest[g - in->guids])
			newest[g - in->guids] = a->trash[i].time;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < in->nguids; i++) {
		char hex[INDEX_GUID_LEN * 2 + 1];
		if (newest[i] == INT64_MIN || newest[i] > in->cutoff)
			continue;
		hex_encode(in->guids[i], INDEX_GUID_LEN, hex);
		json_array_append_new(arr, json_string(hex));
	}
	free(newest);
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return 0;
	}
	emit(ev, json_pack("{s:s,s:o}", "op", "purge", "guids", arr));
	return 0;
}

static int eval_txn(struct account *a, struct index_txn *t, struct undo *u,
		    json_t *ops, uint64_t seq)
{
	struct eval ev = { a, t, u, ops, seq };
	t->err[0] = '\0';
	/* Expunge time of what this evaluation adds to the trash (the
	 * entry, once stored, carries its own "time"). */
	a->apply_time = time_wall_sec();
	for (size_t i = 0; i < t->n; i++) {
		struct intent *in = &t->in[i];
		int rc = 0;
		result_reset(&in->res);
		switch (in->kind) {
		case IN_CREATE:
			rc = eval_create(&ev, in);
			break;
		case IN_DELETE:
			rc = eval_delete(&ev, in);
			break;
		case IN_RENAME:
			rc = eval_rename(&ev, in);
			break;
		case IN_SUB:
			rc = eval_sub(&ev, in);
			break;
		case IN_APPEND:
			rc = eval_append(&ev, in);
			break;
		case IN_STORE:
			rc = eval_store(&ev, in);
			break;
		case IN_EXPUNGE:
			rc = eval_expunge(&ev, in);
			break;
		case IN_COPY:
			rc = eval_copy(&ev, in);
			break;
		case IN_PURGE:
			rc = eval_purge(&ev, in);
			break;
		}
		if (rc != 0) {
			for (size_t j = 0; j <= i; j++)
				result_reset(&t->in[j].res);
			return rc;
		}
	}
	return 0;
}

/* ---- reading the log ---- */

static void cache_hint_put(struct account *a)
{
	if (a->idx->cache == NULL)
		return;
	char val[96];
	int n = snprintf(val, sizeof(val), "{\"seq\":%llu,\"snap\":%llu}",
			 (unsigned long long)a->seq,
			 (unsigned long long)a->snap_good);
	char *key = account_key(a, "#hint");
	cache_put(a->idx->cache, key, val, (size_t)n);
	free(key);
}

static uint64_t cache_hint_snap(struct account *a)
{
	uint64_t snap = 0;
	if (a->idx->cache == NULL)
		return 0;
	struct buf b;
	buf_init(&b, 4096);
	char *key = account_key(a, "#hint");
	if (cache_get(a->idx->cache, key, &b) == 0) {
		json_t *j = json_loadb(buf_chars(&b),
				       buf_used(&b), 0, NULL);
		json_t *v = json_object_get(j, "snap");
		if (json_is_integer(v) && json_integer_value(v) > 0)
			snap = (uint64_t)json_integer_value(v);
		json_decref(j);
	}
	free(key);
	buf_deinit(&b);
	return snap;
}

/* Reads log/<seq> (cache first). *entry_r: parsed entry. */
static int log_read(struct account *a, uint64_t seq, json_t **entry_r,
		    const char **error_r)
{
	struct buf b;
	char *key = account_key(a, "log/%016llx", (unsigned long long)seq);
	int rc;

	*entry_r = NULL;
	buf_init(&b, INDEX_ENTRY_MAX);
	rc = index_obj_get(a->idx, key, &b, error_r);
	if (rc == 0) {
		json_error_t jerr;
		*entry_r = json_loadb(buf_chars(&b), buf_used(&b),
				      0, &jerr);
		if (*entry_r == NULL) {
			log_error("event=index_entry_corrupt user=%s seq=%llu "
				  "error=\"%s\"", a->user,
				  (unsigned long long)seq, jerr.text);
			if (a->idx->cache != NULL)
				cache_del(a->idx->cache, key);
			*error_r = "log entry is not valid JSON";
			rc = KURA_ECORRUPT;
		}
	}
	free(key);
	buf_deinit(&b);
	return rc;
}

static int read_entries(struct account *a, bool *changed_r,
			const char **error_r)
{
	for (;;) {
		json_t *e;
		uint64_t seq = a->seq + 1;
		int rc = log_read(a, seq, &e, error_r);
		if (rc == KURA_ENOTFOUND)
			return 0;
		if (rc != 0)
			return rc;
		rc = index_apply_entry(a, e, seq);
		json_decref(e);
		if (rc != 0) {
			log_error("event=index_entry_corrupt user=%s seq=%llu "
				  "error=\"bad entry envelope\"", a->user,
				  (unsigned long long)seq);
			*error_r = "log entry is malformed";
			return rc;
		}
		*changed_r = true;
		a->last_foreign_usec = time_mono_usec();
	}
}

int account_read_forward(struct account *a, bool *changed_r,
			 const char **error_r)
{
	uint64_t before = a->seq;
	int rc = read_entries(a, changed_r, error_r);
	if (rc != 0)
		return rc;
	uint64_t now = time_mono_usec();
	if (now - a->hint_checked_usec >= INDEX_HINT_CHECK_SEC * 1000000ull) {
		uint64_t hint;
		rc = index_snap_read_hint(a, &hint, error_r);
		if (rc != 0)
			return rc;
		a->hint_checked_usec = now;
		if (hint > a->seq) {
			log_warn("event=index_log_gap user=%s seq=%llu "
				 "snapshot=%llu action=reload", a->user,
				 (unsigned long long)a->seq,
				 (unsigned long long)hint);
			rc = index_snap_load(a, hint, error_r);
			if (rc == 0)
				rc = read_entries(a, changed_r, error_r);
			*changed_r = true;
			if (rc != 0) {
				a->loaded = false;
				return rc == KURA_ENOTFOUND ? KURA_ECORRUPT :
				       rc;
			}
		}
	}
	if (a->seq != before) {
		cache_hint_put(a);
		index_snap_maybe_start(a);
	}
	return 0;
}

/* ---- commit ---- */

static void set_parts_error(struct commit_part *parts, int rc,
			    const char *err)
{
	for (struct commit_part *p = parts; p != NULL; p = p->next) {
		if (p->rc == 0) {
			struct index_txn *t = p->t;
			p->rc = rc;
			/* Copied: a store's error text does not live long. */
			snprintf(t->err, sizeof(t->err), "%s",
				 err != NULL ? err : kura_strerror(rc));
			p->err = t->err;
			for (size_t i = 0; i < t->n; i++)
				result_reset(&t->in[i].res);
		}
	}
}

/* Whether log/<seq> is the entry with our id. When it is another
 * node's, it is applied at once (*applied_r): the caller then tries the
 * next seq without another round trip. */
static int entry_is_ours(struct account *a, uint64_t seq, const char *id,
			 bool *ours_r, bool *applied_r, const char **error_r)
{
	json_t *e;
	*ours_r = false;
	*applied_r = false;
	int rc = log_read(a, seq, &e, error_r);
	if (rc != 0)
		return rc;
	const char *eid = json_string_value(json_object_get(e, "id"));
	*ours_r = eid != NULL && strcmp(eid, id) == 0;
	if (!*ours_r && seq == a->seq + 1) {
		rc = index_apply_entry(a, e, seq);
		if (rc != 0) {
			*error_r = "log entry is malformed";
			rc = KURA_ECORRUPT;
		} else {
			*applied_r = true;
			a->last_foreign_usec = time_mono_usec();
		}
	}
	json_decref(e);
	return rc;
}

/* Commits the parts as one entry. Lock held. Sets every part's rc.
 * Returns true when an entry was applied (own or others'). */
static bool commit_batch(struct account *a, struct commit_part *parts)
{
	struct store *st = a->idx->store;
	bool changed = false;

	uint64_t started = time_mono_usec();
	for (int attempt = 0; attempt < INDEX_COMMIT_ATTEMPTS; attempt++) {
		/* Busy accounts on several nodes: retry for a while rather
		 * than a fixed number of times. */
		if (attempt > 0 && time_mono_usec() - started > INDEX_COMMIT_BUDGET_USEC)
			break;
		/* Fairness between nodes: while another node is writing this
		 * account too, a node that committed a moment ago waits a
		 * random few ms before its next entry, so
		 * that a node that lost the race (and retries at once) gets its
		 * turn instead of starving behind back-to-back commits. Group
		 * commit gathers what arrives meanwhile. */
		uint64_t now = time_mono_usec();
		if (attempt == 0 && a->last_commit_usec != 0 &&
		    now - a->last_commit_usec < 2 * a->put_usec_avg + 1000) {
			/* About one to two PUT round trips: what a loser needs
			 * to read our entry and write the next one. */
			uint32_t r;
			random_bytes(&r, sizeof(r));
			uint64_t us = a->put_usec_avg + r % (a->put_usec_avg + 1);
			if (us > 4000)
				us = 4000;
			index_sleep_ms((uint32_t)((us + 999) / 1000));
		}
		uint64_t seq = a->seq + 1;
		json_t *all = json_array();
		struct undo u;
		const char *err = NULL;

		index_undo_init(&u);
		index_undo_save_account(a, &u);
		for (struct commit_part *p = parts; p != NULL; p = p->next) {
			size_t mark = u.n;
			index_undo_save_account(a, &u);
			json_decref(p->ops);
			p->ops = json_array();
			p->rc = eval_txn(a, p->t, &u, p->ops, seq);
			p->err = p->rc != 0 ? p->t->err : NULL;
			if (p->rc != 0) {
				index_undo_rollback(a, &u, mark);
				continue;
			}
			json_array_extend(all, p->ops);
		}
		index_undo_rollback(a, &u, 0);
		index_undo_deinit(a, &u);
		if (json_array_size(all) == 0) {
			json_decref(all);
			return changed;
		}

		char idhex[33];
		uint8_t idraw[16];
		random_bytes(idraw, sizeof(idraw));
		hex_encode(idraw, sizeof(idraw), idhex);
		json_t *entry = json_pack("{s:i,s:I,s:I,s:s,s:s,s:o}",
					  "v", INDEX_FORMAT_VERSION,
					  "seq", (json_int_t)seq,
					  "time", (json_int_t)time_wall_sec(),
					  "node", a->idx->node, "id", idhex,
					  "ops", all);
		size_t len = 0;
		char *bytes = json_dumps(entry, JSON_COMPACT);
		len = strlen(bytes);
		char *key = account_key(a, "log/%016llx",
					(unsigned long long)seq);
		bool ours = false, conflict = false, applied = false;
		int rc = 0;
		for (int put = 0; put < INDEX_PUT_TRIES; put++) {
			uint64_t t0 = time_mono_usec();
			rc = store_put(st, key, bytes, len,
				       STORE_PUT_CREATE_ONLY, NULL, &err);
			if (rc == 0 || rc == KURA_ECONFLICT) {
				uint64_t d = time_mono_usec() - t0;
				a->put_usec_avg = a->put_usec_avg == 0 ? d :
					(a->put_usec_avg * 7 + d) / 8;
			}
			if (rc == 0) {
				ours = true;
				break;
			}
			if (rc == KURA_ECONFLICT) {
				/* Always look: a lost answer can hide on any
				 * layer (a resent request, a truncated reply),
				 * so "conflict" may be our own earlier write.
				 * The entry's id decides. */
				conflict = true;
				rc = entry_is_ours(a, seq, idhex, &ours, &applied, &err);
				break;
			}
			/* The write may have happened: same bytes again. */
			log_warn("event=index_put_failed user=%s seq=%llu "
				 "try=%d error=\"%s\"", a->user,
				 (unsigned long long)seq, put + 1,
				 err != NULL ? err : kura_strerror(rc));
			if (put + 1 < INDEX_PUT_TRIES)
				index_sleep_ms(20u * (unsigned)(put + 1));
		}
		if (ours) {
			rc = index_apply_entry(a, entry, seq);
			if (rc == 0 && a->idx->cache != NULL)
				cache_put(a->idx->cache, key, bytes, len);
		}
		free(key);
		free(bytes);
		json_decref(entry);
		if (ours) {
			cache_hint_put(a);
			/* log/seq was absent: the state is the head (the PUT
			 * returns within seconds, far below the sweeper's
			 * grace). */
			a->verified_usec = time_mono_usec();
			a->last_commit_usec = a->verified_usec;
			return true;
		}
		if (!conflict || rc != 0) {
			set_parts_error(parts, KURA_EUNAVAIL,
					"the object store is unavailable");
			return changed;
		}
		/* Another node wrote seq. We applied it already: try seq+1 at
		 * once (one round trip per lost race, so a node does not
		 * starve behind a busy one). Reading forward until a 404
		 * first would only widen the window in which we lose again. */
		if (applied) {
			changed = true;
			if (attempt >= 4) {
				/* A little jitter once races repeat. */
				uint32_t r;
				random_bytes(&r, sizeof(r));
				index_sleep_ms(r % 4);
			}
			continue;
		}
		rc = read_entries(a, &changed, &err);
		if (rc != 0) {
			set_parts_error(parts, rc == KURA_ECORRUPT ?
					KURA_ECORRUPT : KURA_EUNAVAIL,
					"cannot read the account log");
			return changed;
		}
	}
	log_warn("event=index_commit_gave_up user=%s usec=%llu", a->user,
		 (unsigned long long)(time_mono_usec() - started));
	set_parts_error(parts, KURA_EUNAVAIL, "too many concurrent updates");
	return changed;
}

static void cq_remove(struct account *a, struct commit_part *p)
{
	struct commit_part **pp = &a->cq_head, *prev = NULL;
	while (*pp != NULL && *pp != p) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = p->next;
	if (a->cq_tail == p)
		a->cq_tail = prev;
	p->next = NULL;
}

static void waiters_remove(struct account *a, struct lock_waiter *w)
{
	struct lock_waiter **pp = &a->wait_head, *prev = NULL;
	while (*pp != NULL && *pp != w) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = w->next;
	if (a->wait_tail == w)
		a->wait_tail = prev;
	w->next = NULL;
}

static int txn_commit(struct index_txn *t, const char **error_r);

int index_txn_commit(struct index_txn *t, const char **error_r)
{
	/* The error text may live in the transaction; callers often free it
	 * before they report: hand out a thread-local copy. */
	static __thread char errbuf[256];
	const char *err = NULL;
	int rc = txn_commit(t, &err);
	if (error_r != NULL) {
		*error_r = NULL;
		if (err != NULL) {
			snprintf(errbuf, sizeof(errbuf), "%s", err);
			*error_r = errbuf;
		}
	}
	return rc;
}

static int txn_commit(struct index_txn *t, const char **error_r)
{
	struct account *a = t->a;
	struct commit_part p;

	if (t->committed) {
		if (error_r != NULL)
			*error_r = "transaction already committed";
		return KURA_EINVAL;
	}
	t->committed = true;
	memset(&p, 0, sizeof(p));
	p.t = t;
	p.w.task = task_current();
	p.w.part = &p;
	if (a->cq_tail != NULL)
		a->cq_tail->next = &p;
	else
		a->cq_head = &p;
	a->cq_tail = &p;

	if (a->locked) {
		if (p.w.task == NULL) {
			cq_remove(a, &p);
			if (error_r != NULL)
				*error_r = "account busy (held by a task)";
			return KURA_EUNAVAIL;
		}
		if (a->wait_tail != NULL)
			a->wait_tail->next = &p.w;
		else
			a->wait_head = &p.w;
		a->wait_tail = &p.w;
		while (!p.done && !p.w.granted)
			task_suspend();
		if (p.done) {
			if (error_r != NULL)
				*error_r = p.err;
			return p.rc;
		}
	} else {
		a->locked = true;
	}

	/* Leader: everything queued goes into one entry. */
	struct commit_part *batch = a->cq_head;
	a->cq_head = a->cq_tail = NULL;
	for (struct commit_part *q = batch; q != NULL; q = q->next) {
		if (q != &p)
			waiters_remove(a, &q->w);
	}
	bool changed;
	if (!a->loaded) {
		const char *err = NULL;
		int rc = account_load(a, &err);
		changed = true;
		if (rc != 0)
			set_parts_error(batch, rc, err);
		else
			changed = commit_batch(a, batch);
	} else {
		const char *err = NULL;
		bool reloaded = false;
		int rc = account_verify_head(a, &reloaded, &err);
		if (rc != 0)
			set_parts_error(batch, rc, err);
		changed = (rc == 0 && commit_batch(a, batch)) || reloaded;
	}
	if (changed)
		index_snap_maybe_start(a);
	struct commit_part *q = batch, *next;
	for (; q != NULL; q = next) {
		next = q->next;
		json_decref(q->ops);
		q->ops = NULL;
		q->next = NULL;
		q->done = true;
		if (q != &p)
			task_wake(q->w.task);
	}
	account_unlock(a);
	if (changed)
		account_notify(a);
	if (error_r != NULL)
		*error_r = p.err;
	return p.rc;
}

/* ---- refresh and load ---- */

int account_verify_head(struct account *a, bool *changed_r,
			const char **error_r)
{
	uint64_t now = time_mono_usec();
	if (a->verified_usec != 0 &&
	    now - a->verified_usec < INDEX_HINT_CHECK_SEC * 1000000ull)
		return 0;
	int rc = account_read_forward(a, changed_r, error_r);
	if (rc != 0 || a->seq == 0)
		return rc;
	struct store_stat stat;
	char *key = account_key(a, "log/%016llx", (unsigned long long)a->seq);
	rc = store_head(a->idx->store, key, &stat, error_r);
	free(key);
	if (rc == KURA_ENOTFOUND) {
		/* Swept under us: entries after a->seq may have been too.
		 * The newest snapshot (by listing: the hint may lag) and its
		 * tail are the head. */
		uint64_t newest;
		rc = index_snap_find_newest(a, UINT64_MAX, &newest, error_r);
		if (rc != 0)
			return rc;
		if (newest > a->seq) {
			log_warn("event=index_log_gap user=%s seq=%llu "
				 "snapshot=%llu action=reload", a->user,
				 (unsigned long long)a->seq,
				 (unsigned long long)newest);
			*changed_r = true;
			rc = index_snap_load(a, newest, error_r);
			if (rc == 0)
				rc = read_entries(a, changed_r, error_r);
			else
				rc = account_load(a, error_r);
			if (rc != 0) {
				a->loaded = false;
				return rc == KURA_ENOTFOUND ? KURA_ECORRUPT : rc;
			}
			cache_hint_put(a);
		}
	} else if (rc != 0) {
		return KURA_EUNAVAIL;
	}
	a->verified_usec = now;
	return 0;
}

int account_refresh(struct account *a, const char **error_r)
{
	const char *err = NULL;
	bool changed = false;
	int rc = account_lock(a, &err);
	if (rc == 0) {
		if (!a->loaded) {
			rc = account_load(a, &err);
			changed = rc == 0;
		} else {
			rc = account_read_forward(a, &changed, &err);
		}
		account_unlock(a);
	}
	if (changed)
		account_notify(a);
	if (rc != 0 && error_r != NULL)
		*error_r = err;
	return rc;
}

static const struct {
	const char *name;
	uint32_t special;
} default_mailboxes[] = {
	{ "INBOX", MBOX_SPECIAL_NONE },
	{ "Drafts", MBOX_SPECIAL_DRAFTS },
	{ "Sent", MBOX_SPECIAL_SENT },
	{ "Trash", MBOX_SPECIAL_TRASH },
	{ "Junk", MBOX_SPECIAL_JUNK },
	{ "Archive", MBOX_SPECIAL_ARCHIVE },
};

/* A new user: the first entry creates the default mailboxes, create-only
 * like any entry, so two nodes racing make one INBOX. */
static int create_initial(struct account *a, const char **error_r)
{
	struct index_txn t;
	struct commit_part p;
	memset(&t, 0, sizeof(t));
	t.a = a;
	for (size_t i = 0; i < ARRAY_SIZE(default_mailboxes); i++) {
		struct intent *in = intent_add(&t, IN_CREATE);
		in->name = xstrdup(default_mailboxes[i].name);
		in->special = default_mailboxes[i].special;
	}
	for (size_t i = 0; i < ARRAY_SIZE(default_mailboxes); i++) {
		struct intent *in = intent_add(&t, IN_SUB);
		in->name = xstrdup(default_mailboxes[i].name);
		in->on = true;
	}
	memset(&p, 0, sizeof(p));
	p.t = &t;
	commit_batch(a, &p);
	json_decref(p.ops);
	int rc = p.rc;
	/* Lost the race to another node's first entry: fine. */
	if (rc != 0 && a->seq > 0)
		rc = 0;
	if (rc != 0 && error_r != NULL)
		*error_r = p.err != NULL ? p.err : kura_strerror(rc);
	for (size_t i = 0; i < t.n; i++)
		intent_free(&t.in[i]);
	free(t.in);
	return rc;
}

int account_load(struct account *a, const char **error_r)
{
	uint64_t t0 = time_mono_usec();
	uint64_t hint = 0, snap = 0, found = 0;
	bool changed = false;
	size_t nmsgs = 0;
	int rc;

	account_state_clear(a);
	rc = index_snap_read_hint(a, &hint, error_r);
	if (rc != 0)
		return rc;
	snap = KURA_MAX(hint, cache_hint_snap(a));
	rc = KURA_ENOTFOUND;
	if (snap > 0)
		rc = index_snap_load(a, snap, error_r);
	/* The hint is only a hint: fall back to the newest snapshot that
	 * loads, by listing. */
	uint64_t below = UINT64_MAX;
	while (rc == KURA_ENOTFOUND || rc == KURA_ECORRUPT) {
		if (snap > 0)
			log_warn("event=snapshot_unusable user=%s seq=%llu "
				 "error=\"%s\"", a->user,
				 (unsigned long long)snap,
				 *error_r != NULL ? *error_r : kura_strerror(rc));
		if (snap > 0 && snap < below)
			below = snap;
		rc = index_snap_find_newest(a, snap > 0 ? below : UINT64_MAX, &found,
				      error_r);
		if (rc != 0)
			return rc;
		if (found == 0) {
			rc = KURA_ENOTFOUND;
			break;
		}
		snap = found;
		rc = index_snap_load(a, snap, error_r);
	}
	bool any_snapshot = snap > 0 || hint > 0;
	if (rc == KURA_ENOTFOUND)
		account_state_clear(a);
	else if (rc != 0)
		return rc;
	rc = read_entries(a, &changed, error_r);
	if (rc != 0) {
		account_state_clear(a);
		return rc;
	}
	if (a->seq == 0) {
		if (any_snapshot) {
			/* Snapshots exist but none loads and the log is gone:
			 * never start the account over on top of that. */
			*error_r = "no usable snapshot and no log";
			return KURA_ECORRUPT;
		}
		rc = create_initial(a, error_r);
		if (rc != 0) {
			account_state_clear(a);
			return rc;
		}
	}
	a->loaded = true;
	a->hint_checked_usec = time_mono_usec();
	for (size_t i = 0; i < a->nmbs; i++) {
		a->mbs[i]->recent_floor = a->mbs[i]->uidnext;
		nmsgs += a->mbs[i]->count;
	}
	cache_hint_put(a);
	log_info("event=account_load user=%s seq=%llu snapshot=%llu "
		 "mailboxes=%zu messages=%zu usec=%llu", a->user,
		 (unsigned long long)a->seq, (unsigned long long)a->snap_seq,
		 a->nmbs, nmsgs, (unsigned long long)(time_mono_usec() - t0));
	index_snap_maybe_start(a);
	return 0;
}
