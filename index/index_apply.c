/* Log entry ops applied to the in-memory account state.
 *
 * Entry format (version 1), one JSON object per log/<seq> object:
 *
 *   {"v":1,"seq":N,"time":unix,"node":"host","id":"<128-bit hex>",
 *    "ops":[...]}
 *
 * Ops are resolved effects, so replay is deterministic: every node that
 * applies the same entries to the same state gets the same state.
 *
 *   {"op":"create","id":I,"name":S,"uidvalidity":U,"special":B,"modseq":M}
 *   {"op":"delete","id":I}
 *   {"op":"rename","id":I,"name":S}
 *   {"op":"sub","name":S,"on":true|false}
 *   {"op":"append","mb":I,"uid":U,"guid":"<hex32>","size":N,"idate":T,
 *    "tz":Z,"flags":B,"kw":[...],"modseq":M,"env":S,"bs":S,"body":S,
 *    "sent":T,"stz":Z,"hsize":N[,"from":[I,U]]}
 *       "from" names the message a COPY/MOVE duplicated: when it still
 *       exists with the same guid its cached fields are shared in memory
 *       (the op carries them anyway, so it stands alone).
 *   {"op":"store","mb":I,"uids":"1:5,7","mode":"+"|"-"|"=","flags":B,
 *    "kw":[...],"modseq":M}
 *       Messages of the set whose flags change get MODSEQ M; applying it
 *       again to the same state changes nothing more.
 *   {"op":"expunge","mb":I,"uids":"3,5","modseq":M}
 *   {"op":"purge","guids":["<hex32>",...]}
 *       The sweeper's: drops the expunged-list records of these guids
 *       (no MODSEQ: nothing a client sees changes). Added in a
 *       backward-compatible way: an older reader skips it.
 *
 * Lazy expunge: applying "expunge", and "delete" of a mailbox that
 * holds messages, also adds a record per message to the account's
 * expunged list (struct index_trash), with the entry's "time" as the
 * expunge time. The list is derived from the state, so the format of
 * those ops did not change.
 *
 * Flags are enum msg_flag bits; "kw" are keyword names (the bit a name
 * gets is per mailbox, assigned in order of first use). Every op with a
 * "modseq" raises the account MODSEQ and the mailbox HIGHESTMODSEQ to it.
 *
 * While a transaction is evaluated, ops are applied with an undo journal
 * so that later intents see the effect of earlier ones; the journal then
 * reverts everything (without any suspension in between), and the ops
 * are applied for real only once their log entry is stored. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "index/index_int.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"

/* ---- mailboxes ---- */

struct mailbox *index_mbox_alloc(uint64_t id, const char *name, uint32_t uidvalidity,
			   uint32_t special, uint64_t modseq)
{
	struct mbox_priv *p = xcalloc(1, sizeof(*p));
	struct mailbox *mb = &p->mb;
	mb->id = id;
	mb->name = xstrdup(name);
	mb->uidvalidity = uidvalidity;
	mb->uidnext = 1;
	mb->highestmodseq = modseq;
	mb->special_use = special;
	mb->recent_floor = 1;
	return mb;
}

struct msg_meta *index_meta_new(void)
{
	struct msg_meta *m = xcalloc(1, sizeof(*m));
	m->refs = 1;
	m->sent_date = -1;
	return m;
}

struct msg_meta *index_meta_ref(struct msg_meta *m)
{
	if (m != NULL)
		m->refs++;
	return m;
}

void index_meta_unref(struct msg_meta **mp)
{
	struct msg_meta *m = *mp;
	*mp = NULL;
	if (m == NULL || --m->refs > 0)
		return;
	free(m->envelope);
	free(m->bodystructure);
	free(m->body);
	free(m);
}

void index_mbox_free(struct mailbox *mb)
{
	if (mb == NULL)
		return;
	for (size_t i = 0; i < mb->count; i++)
		index_meta_unref(&mb->msgs[i].meta);
	free(mb->msgs);
	for (unsigned i = 0; i < mb->nkeywords; i++)
		free(mb->keywords[i]);
	free(mb->expunged);
	free(mb->name);
	free(mbox_priv(mb));
}

static size_t mbs_lower_bound(const struct account *a, const char *name)
{
	size_t lo = 0, hi = a->nmbs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(a->mbs[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t by_id_lower_bound(const struct account *a, uint64_t id)
{
	size_t lo = 0, hi = a->nmbs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a->by_id[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct mailbox *index_mbox_by_name(const struct account *a, const char *name)
{
	size_t i = mbs_lower_bound(a, name);
	if (i < a->nmbs && strcmp(a->mbs[i]->name, name) == 0)
		return a->mbs[i];
	return NULL;
}

struct mailbox *account_mailbox_by_id(struct account *a, uint64_t id)
{
	size_t i = by_id_lower_bound(a, id);
	if (i < a->nmbs && a->by_id[i]->id == id)
		return a->by_id[i];
	return NULL;
}

static void name_array_insert(struct account *a, struct mailbox *mb)
{
	size_t i = mbs_lower_bound(a, mb->name);
	memmove(&a->mbs[i + 1], &a->mbs[i], (a->nmbs - i) * sizeof(*a->mbs));
	a->mbs[i] = mb;
}

static void name_array_remove(struct account *a, struct mailbox *mb)
{
	/* Names may collide transiently inside a rename; search around. */
	size_t i = mbs_lower_bound(a, mb->name);
	while (i < a->nmbs && a->mbs[i] != mb)
		i++;
	if (i == a->nmbs) {
		for (i = 0; i < a->nmbs && a->mbs[i] != mb; i++)
			;
	}
	if (i == a->nmbs)
		return;
	memmove(&a->mbs[i], &a->mbs[i + 1],
		(a->nmbs - i - 1) * sizeof(*a->mbs));
}

void index_mbox_insert(struct account *a, struct mailbox *mb)
{
	size_t cap = a->mbs_cap;
	xgrow((void **)&a->mbs, &a->mbs_cap, a->nmbs + 1, sizeof(*a->mbs));
	xgrow((void **)&a->by_id, &cap, a->nmbs + 1, sizeof(*a->by_id));
	a->by_id_cap = cap;
	name_array_insert(a, mb);
	size_t j = by_id_lower_bound(a, mb->id);
	memmove(&a->by_id[j + 1], &a->by_id[j],
		(a->nmbs - j) * sizeof(*a->by_id));
	a->by_id[j] = mb;
	a->nmbs++;
}

void index_mbox_remove(struct account *a, struct mailbox *mb)
{
	size_t j = by_id_lower_bound(a, mb->id);
	if (j >= a->nmbs || a->by_id[j] != mb)
		return;
	name_array_remove(a, mb);
	memmove(&a->by_id[j], &a->by_id[j + 1],
		(a->nmbs - j - 1) * sizeof(*a->by_id));
	a->nmbs--;
}

static void mbox_set_name(struct account *a, struct mailbox *mb, char *name)
{
	name_array_remove(a, mb);
	a->nmbs--;
	free(mb->name);
	mb->name = name;
	name_array_insert(a, mb);
	a->nmbs++;
}

char *index_name_normalize(struct kstr name)
{
	char *s = kstr_dup(name);
	if (name.len >= 5 && strncasecmp(s, "INBOX", 5) == 0 &&
	    (name.len == 5 || s[5] == INDEX_HIER_SEP))
		memcpy(s, "INBOX", 5);
	return s;
}

int index_keyword_find(const struct mailbox *mb, const char *kw)
{
	for (unsigned i = 0; i < mb->nkeywords; i++) {
		if (strcasecmp(mb->keywords[i], kw) == 0)
			return (int)i;
	}
	return -1;
}

int index_subs_find(const struct account *a, const char *name, size_t *pos_r)
{
	size_t lo = 0, hi = a->nsubs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(a->subs[mid], name);
		if (c == 0) {
			*pos_r = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos_r = lo;
	return 0;
}

/* ---- uid sets ---- */

void index_uidset_write(struct buf *out, const uint32_t *uids, size_t n)
{
	size_t i = 0;
	bool first = true;
	while (i < n) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (!first)
			buf_append(out, ",", 1);
		first = false;
		if (i == j)
			buf_printf(out, "%u", uids[i]);
		else
			buf_printf(out, "%u:%u", uids[i], uids[j]);
		i = j + 1;
	}
}

static bool parse_u32(const char **sp, uint32_t *v_r)
{
	const char *s = *sp;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
		s++;
	}
	*sp = s;
	*v_r = (uint32_t)v;
	return true;
}

bool index_uidset_parse(const char *s, struct uid_range **r_r, size_t *n_r)
{
	struct uid_range *r = NULL;
	size_t n = 0, cap = 0;

	*r_r = NULL;
	*n_r = 0;
	if (*s == '\0')
		return true;
	for (;;) {
		uint32_t lo, hi;
		if (!parse_u32(&s, &lo))
			goto bad;
		hi = lo;
		if (*s == ':') {
			s++;
			if (!parse_u32(&s, &hi))
				goto bad;
		}
		if (hi < lo || (n > 0 && lo <= r[n - 1].hi))
			goto bad;
		xgrow((void **)&r, &cap, n + 1, sizeof(*r));
		r[n].lo = lo;
		r[n].hi = hi;
		n++;
		if (*s == '\0')
			break;
		if (*s != ',')
			goto bad;
		s++;
	}
	*r_r = r;
	*n_r = n;
	return true;
bad:
	free(r);
	return false;
}

/* ---- the undo journal ---- */

enum undo_kind {
	UNDO_ACCOUNT = 0,
	UNDO_MB_INSERT,
	UNDO_MB_REMOVE,
	UNDO_MB_RENAME,
	UNDO_MB_SCALARS,
	UNDO_MSG_APPEND,
	UNDO_MSG_FLAGS,
	UNDO_MSG_REMOVE,
	UNDO_EXP_ADD,
	UNDO_SUB,
	UNDO_TRASH_ADD,
	UNDO_TRASH_SET,
};

struct undo_flags {
	size_t pos;
	uint32_t flags;
	uint64_t keywords, modseq;
};

struct undo_rec {
	enum undo_kind kind;
	struct mailbox *mb;
	union {
		struct {
			uint64_t seq, modseq, next_id;
			uint32_t last_uidvalidity;
		} acct;
		struct {
			uint32_t uidnext;
			uint64_t highestmodseq, total_size, last_change;
			unsigned nkeywords;
		} sc;
		char *name;		/* RENAME: old name */
		struct {
			char *name;
			bool was_on;
		} sub;
		struct {
			struct undo_flags *v;
			size_t n;
		} fl;
		struct {
			struct index_msg *v;
			size_t n;
		} rm;
		struct {
			uint32_t *v;
			size_t n;
		} exp;
		/* TRASH_ADD: the old count; TRASH_SET: the old list. */
		struct {
			struct index_trash *v;
			size_t n, cap;
			uint64_t last_change;
		} trash;
	} u;
};

void index_undo_init(struct undo *u)
{
	memset(u, 0, sizeof(*u));
}

static struct undo_rec *undo_push(struct undo *u, enum undo_kind kind,
				  struct mailbox *mb)
{
	xgrow((void **)&u->r, &u->cap, u->n + 1, sizeof(*u->r));
	struct undo_rec *r = &u->r[u->n++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->mb = mb;
	return r;
}

void index_undo_save_account(struct account *a, struct undo *u)
{
	struct undo_rec *r = undo_push(u, UNDO_ACCOUNT, NULL);
	r->u.acct.seq = a->seq;
	r->u.acct.modseq = a->modseq;
	r->u.acct.next_id = a->next_mailbox_id;
	r->u.acct.last_uidvalidity = a->last_uidvalidity;
}

static void undo_save_scalars(struct undo *u, struct mailbox *mb)
{
	if (u == NULL)
		return;
	struct undo_rec *r = undo_push(u, UNDO_MB_SCALARS, mb);
	r->u.sc.uidnext = mb->uidnext;
	r->u.sc.highestmodseq = mb->highestmodseq;
	r->u.sc.total_size = mb->total_size;
	r->u.sc.last_change = mbox_priv(mb)->last_change;
	r->u.sc.nkeywords = mb->nkeywords;
}

static void expunged_remove(struct mailbox *mb, const uint32_t *uids, size_t n)
{
	size_t w = 0, j = 0;
	for (size_t i = 0; i < mb->nexpunged; i++) {
		while (j < n && uids[j] < mb->expunged[i].uid)
			j++;
		if (j < n && uids[j] == mb->expunged[i].uid)
			continue;
		mb->expunged[w++] = mb->expunged[i];
	}
	mb->nexpunged = w;
}

/* Merges removed messages (sorted) back into mb->msgs. */
static void msgs_merge_back(struct mailbox *mb, const struct index_msg *v,
			    size_t n)
{
	xgrow((void **)&mb->msgs, &mb->cap, mb->count + n, sizeof(*mb->msgs));
	size_t i = mb->count, j = n, k = mb->count + n;
	while (j > 0) {
		if (i > 0 && mb->msgs[i - 1].uid > v[j - 1].uid)
			mb->msgs[--k] = mb->msgs[--i];
		else
			mb->msgs[--k] = v[--j];
	}
	mb->count += n;
}

static void trash_free_array(struct index_trash *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		index_trash_rec_free(&v[i]);
	free(v);
}

static void undo_one(struct account *a, struct undo_rec *r)
{
	struct mailbox *mb = r->mb;
	switch (r->kind) {
	case UNDO_ACCOUNT:
		a->seq = r->u.acct.seq;
		a->modseq = r->u.acct.modseq;
		a->next_mailbox_id = r->u.acct.next_id;
		a->last_uidvalidity = r->u.acct.last_uidvalidity;
		break;
	case UNDO_MB_INSERT:
		index_mbox_remove(a, mb);
		index_mbox_free(mb);
		break;
	case UNDO_MB_REMOVE:
		index_mbox_insert(a, mb);
		break;
	case UNDO_MB_RENAME:
		mbox_set_name(a, mb, r->u.name);
		r->u.name = NULL;
		break;
	case UNDO_MB_SCALARS:
		mb->uidnext = r->u.sc.uidnext;
		mb->highestmodseq = r->u.sc.highestmodseq;
		mb->total_size = r->u.sc.total_size;
		mbox_priv(mb)->last_change = r->u.sc.last_change;
		while (mb->nkeywords > r->u.sc.nkeywords)
			free(mb->keywords[--mb->nkeywords]);
		break;
	case UNDO_MSG_APPEND:
		if (mb->count > 0)
			index_meta_unref(&mb->msgs[--mb->count].meta);
		break;
	case UNDO_MSG_FLAGS:
		for (size_t i = r->u.fl.n; i > 0; i--) {
			struct undo_flags *f = &r->u.fl.v[i - 1];
			struct index_msg *m = &mb->msgs[f->pos];
			m->flags = f->flags;
			m->keywords = f->keywords;
			m->modseq = f->modseq;
		}
		break;
	case UNDO_MSG_REMOVE:
		msgs_merge_back(mb, r->u.rm.v, r->u.rm.n);
		r->u.rm.n = 0;
		break;
	case UNDO_EXP_ADD:
		expunged_remove(mb, r->u.exp.v, r->u.exp.n);
		break;
	case UNDO_SUB: {
		size_t pos;
		int found = index_subs_find(a, r->u.sub.name, &pos);
		if (r->u.sub.was_on && !found) {
			xgrow((void **)&a->subs, &a->subs_cap, a->nsubs + 1,
			      sizeof(*a->subs));
			memmove(&a->subs[pos + 1], &a->subs[pos],
				(a->nsubs - pos) * sizeof(*a->subs));
			a->subs[pos] = r->u.sub.name;
			r->u.sub.name = NULL;
			a->nsubs++;
		} else if (!r->u.sub.was_on && found) {
			free(a->subs[pos]);
			memmove(&a->subs[pos], &a->subs[pos + 1],
				(a->nsubs - pos - 1) * sizeof(*a->subs));
			a->nsubs--;
		}
		break;
	}
	case UNDO_TRASH_ADD:
		while (a->ntrash > r->u.trash.n)
			index_trash_rec_free(&a->trash[--a->ntrash]);
		a->trash_last_change = r->u.trash.last_change;
		break;
	case UNDO_TRASH_SET:
		trash_free_array(a->trash, a->ntrash);
		a->trash = r->u.trash.v;
		a->ntrash = r->u.trash.n;
		a->trash_cap = r->u.trash.cap;
		a->trash_last_change = r->u.trash.last_change;
		r->u.trash.v = NULL;
		r->u.trash.n = 0;
		break;
	}
}

/* Releases what a record holds once it will not be undone. */
static void undo_rec_release(struct undo_rec *r)
{
	switch (r->kind) {
	case UNDO_MB_REMOVE:
		index_mbox_free(r->mb);
		break;
	case UNDO_MB_RENAME:
		free(r->u.name);
		break;
	case UNDO_SUB:
		free(r->u.sub.name);
		break;
	case UNDO_MSG_FLAGS:
		free(r->u.fl.v);
		break;
	case UNDO_MSG_REMOVE:
		for (size_t i = 0; i < r->u.rm.n; i++)
			index_meta_unref(&r->u.rm.v[i].meta);
		free(r->u.rm.v);
		break;
	case UNDO_EXP_ADD:
		free(r->u.exp.v);
		break;
	case UNDO_TRASH_SET:
		trash_free_array(r->u.trash.v, r->u.trash.n);
		break;
	default:
		break;
	}
}

void index_undo_rollback(struct account *a, struct undo *u, size_t mark)
{
	while (u->n > mark) {
		struct undo_rec *r = &u->r[--u->n];
		undo_one(a, r);
		/* What undo_one consumed is NULL/0 now; free the rest. */
		if (r->kind == UNDO_MB_REMOVE)
			r->mb = NULL;
		if (r->kind != UNDO_MB_REMOVE)
			undo_rec_release(r);
	}
}

void index_undo_deinit(struct account *a, struct undo *u)
{
	(void)a;
	for (size_t i = 0; i < u->n; i++)
		undo_rec_release(&u->r[i]);
	free(u->r);
	memset(u, 0, sizeof(*u));
}

/* ---- JSON field access ---- */

static bool j_u64(json_t *o, const char *k, uint64_t *v_r)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*v_r = (uint64_t)json_integer_value(v);
	return true;
}

static bool j_i64(json_t *o, const char *k, int64_t *v_r)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		return false;
	*v_r = json_integer_value(v);
	return true;
}

static bool j_u32(json_t *o, const char *k, uint32_t *v_r)
{
	uint64_t v;
	if (!j_u64(o, k, &v) || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

static const char *j_str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static char *j_bytes_dup(json_t *o, const char *k)
{
	return index_json_bytes_dup(json_object_get(o, k));
}

static void op_skip(const struct account *a, const char *op, uint64_t seq,
		    const char *why)
{
	log_warn("event=index_op_skipped user=%s seq=%llu op=%s reason=\"%s\"",
		 a->user, (unsigned long long)seq, op ? op : "?", why);
}

static void raise_modseq(struct account *a, struct mailbox *mb, uint64_t m)
{
	if (m > a->modseq)
		a->modseq = m;
	if (mb != NULL && m > mb->highestmodseq)
		mb->highestmodseq = m;
}

/* Keyword names of an op -> bits; registers new names in mb when `add`
 * (as far as the limit allows). */
static uint64_t keyword_bits(struct mailbox *mb, json_t *kw, bool add)
{
	uint64_t bits = 0;
	size_t i;
	json_t *v;
	json_array_foreach(kw, i, v) {
		const char *name = json_string_value(v);
		if (name == NULL || name[0] == '\0')
			continue;
		int k = index_keyword_find(mb, name);
		if (k < 0 && add && mb->nkeywords < INDEX_MAX_KEYWORDS) {
			mb->keywords[mb->nkeywords] = xstrdup(name);
			k = (int)mb->nkeywords++;
		}
		if (k >= 0)
			bits |= (uint64_t)1 << k;
	}
	return bits;
}

static size_t msg_lower_bound(const struct mailbox *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mb->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- the trash (lazy expunge) ---- */

void index_trash_rec_free(struct index_trash *t)
{
	free(t->mailbox);
	free(t->keywords);
	free(t->subject);
	memset(t, 0, sizeof(*t));
}

void index_trash_clear(struct account *a)
{
	trash_free_array(a->trash, a->ntrash);
	a->trash = NULL;
	a->ntrash = a->trash_cap = 0;
	a->trash_snap_ref = a->trash_last_change = 0;
}

ssize_t index_trash_find(const struct account *a,
			 const uint8_t guid[INDEX_GUID_LEN])
{
	ssize_t best = -1;
	for (size_t i = 0; i < a->ntrash; i++) {
		if (memcmp(a->trash[i].guid, guid, INDEX_GUID_LEN) == 0 &&
		    (best < 0 || a->trash[i].time >= a->trash[best].time))
			best = (ssize_t)i;
	}
	return best;
}

/* "kw1 kw2" for the keyword bits of m, or NULL. */
static char *keyword_names(const struct mailbox *mb, uint64_t bits)
{
	struct buf b;
	buf_init(&b, 0);
	for (unsigned k = 0; k < mb->nkeywords; k++) {
		if ((bits & ((uint64_t)1 << k)) == 0)
			continue;
		if (buf_used(&b) > 0)
			buf_append(&b, " ", 1);
		buf_append_str(&b, mb->keywords[k]);
	}
	if (buf_used(&b) == 0)
		return NULL;
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* Records msgs [0, n) of mb as expunged at a->apply_time. */
static void trash_add(struct account *a, const struct mailbox *mb,
		      const struct index_msg *msgs, size_t n, uint64_t seq,
		      struct undo *u)
{
	if (n == 0)
		return;
	if (u != NULL) {
		struct undo_rec *r = undo_push(u, UNDO_TRASH_ADD, NULL);
		r->u.trash.n = a->ntrash;
		r->u.trash.last_change = a->trash_last_change;
	}
	xgrow((void **)&a->trash, &a->trash_cap, a->ntrash + n,
	      sizeof(*a->trash));
	for (size_t i = 0; i < n; i++) {
		const struct index_msg *m = &msgs[i];
		struct index_trash *t = &a->trash[a->ntrash++];
		memset(t, 0, sizeof(*t));
		memcpy(t->guid, m->guid, INDEX_GUID_LEN);
		t->mbid = mb->id;
		t->mailbox = xstrdup(mb->name);
		t->uid = m->uid;
		t->flags = m->flags;
		t->size = m->size;
		t->internaldate = m->internaldate;
		t->idate_tz_min = m->idate_tz_min;
		t->time = a->apply_time;
		t->keywords = keyword_names(mb, m->keywords);
		t->subject = index_envelope_subject(m->meta != NULL ?
						    m->meta->envelope : NULL);
	}
	a->trash_last_change = seq;
}

static int guid_cmp(const void *x, const void *y)
{
	return memcmp(x, y, INDEX_GUID_LEN);
}

static struct index_trash trash_rec_dup(const struct index_trash *t)
{
	struct index_trash c = *t;
	c.mailbox = t->mailbox != NULL ? xstrdup(t->mailbox) : NULL;
	c.keywords = t->keywords != NULL ? xstrdup(t->keywords) : NULL;
	c.subject = t->subject != NULL ? xstrdup(t->subject) : NULL;
	return c;
}

/* ---- ops ---- */

static void apply_create(struct account *a, json_t *op, uint64_t seq,
			 struct undo *u)
{
	uint64_t id, modseq = 0;
	uint32_t uidv, special = 0;
	const char *name = j_str(op, "name");

	if (!j_u64(op, "id", &id) || !j_u32(op, "uidvalidity", &uidv) ||
	    name == NULL || name[0] == '\0') {
		op_skip(a, "create", seq, "bad fields");
		return;
	}
	(void)j_u32(op, "special", &special);
	(void)j_u64(op, "modseq", &modseq);
	if (account_mailbox_by_id(a, id) != NULL ||
	    index_mbox_by_name(a, name) != NULL) {
		op_skip(a, "create", seq, "mailbox exists");
		return;
	}
	struct mailbox *mb = index_mbox_alloc(id, name, uidv, special, modseq);
	mbox_priv(mb)->last_change = seq;
	index_mbox_insert(a, mb);
	if (u != NULL)
		undo_push(u, UNDO_MB_INSERT, mb);
	if (id >= a->next_mailbox_id)
		a->next_mailbox_id = id + 1;
	if (uidv > a->last_uidvalidity)
		a->last_uidvalidity = uidv;
	raise_modseq(a, NULL, modseq);
}

static void apply_delete(struct account *a, json_t *op, uint64_t seq,
			 struct undo *u)
{
	uint64_t id;
	struct mailbox *mb;
	if (!j_u64(op, "id", &id) ||
	    (mb = account_mailbox_by_id(a, id)) == NULL) {
		op_skip(a, "delete", seq, "no such mailbox");
		return;
	}
	trash_add(a, mb, mb->msgs, mb->count, seq, u);
	index_mbox_remove(a, mb);
	if (u != NULL)
		undo_push(u, UNDO_MB_REMOVE, mb);
	else
		index_mbox_free(mb);
}

static void apply_rename(struct account *a, json_t *op, uint64_t seq,
			 struct undo *u)
{
	uint64_t id;
	struct mailbox *mb;
	const char *name = j_str(op, "name");
	if (!j_u64(op, "id", &id) || name == NULL || name[0] == '\0' ||
	    (mb = account_mailbox_by_id(a, id)) == NULL) {
		op_skip(a, "rename", seq, "bad fields or no such mailbox");
		return;
	}
	struct mailbox *other = index_mbox_by_name(a, name);
	if (other != NULL && other != mb) {
		op_skip(a, "rename", seq, "target exists");
		return;
	}
	char *old = mb->name;
	mb->name = xstrdup(old);
	mbox_set_name(a, mb, xstrdup(name));
	if (u != NULL) {
		struct undo_rec *r = undo_push(u, UNDO_MB_RENAME, mb);
		r->u.name = old;
	} else {
		free(old);
	}
}

static void apply_sub(struct account *a, json_t *op, uint64_t seq,
		      struct undo *u)
{
	const char *name = j_str(op, "name");
	json_t *on = json_object_get(op, "on");
	size_t pos;
	if (name == NULL || !json_is_boolean(on)) {
		op_skip(a, "sub", seq, "bad fields");
		return;
	}
	int found = index_subs_find(a, name, &pos);
	if (json_is_true(on) && !found) {
		xgrow((void **)&a->subs, &a->subs_cap, a->nsubs + 1,
		      sizeof(*a->subs));
		memmove(&a->subs[pos + 1], &a->subs[pos],
			(a->nsubs - pos) * sizeof(*a->subs));
		a->subs[pos] = xstrdup(name);
		a->nsubs++;
		if (u != NULL) {
			struct undo_rec *r = undo_push(u, UNDO_SUB, NULL);
			r->u.sub.name = xstrdup(name);
			r->u.sub.was_on = false;
		}
	} else if (json_is_false(on) && found) {
		if (u != NULL) {
			struct undo_rec *r = undo_push(u, UNDO_SUB, NULL);
			r->u.sub.name = a->subs[pos];
			r->u.sub.was_on = true;
		} else {
			free(a->subs[pos]);
		}
		memmove(&a->subs[pos], &a->subs[pos + 1],
			(a->nsubs - pos - 1) * sizeof(*a->subs));
		a->nsubs--;
	}
}

static void apply_append(struct account *a, json_t *op, uint64_t seq,
			 struct undo *u)
{
	uint64_t mbid, size, modseq, hsize = 0;
	uint32_t uid, flags;
	int64_t idate, tz = 0, sent = -1, stz = 0;
	struct mailbox *mb;
	struct index_msg m;
	const char *guid = j_str(op, "guid");

	memset(&m, 0, sizeof(m));
	if (!j_u64(op, "mb", &mbid) || !j_u32(op, "uid", &uid) ||
	    !j_u64(op, "size", &size) || !j_i64(op, "idate", &idate) ||
	    !j_u32(op, "flags", &flags) || !j_u64(op, "modseq", &modseq) ||
	    guid == NULL ||
	    !hex_decode(guid, strlen(guid), m.guid, INDEX_GUID_LEN) ||
	    uid == 0 || uid == UINT32_MAX) {
		op_skip(a, "append", seq, "bad fields");
		return;
	}
	if ((mb = account_mailbox_by_id(a, mbid)) == NULL) {
		op_skip(a, "append", seq, "no such mailbox");
		return;
	}
	size_t pos = msg_lower_bound(mb, uid);
	if (pos < mb->count && mb->msgs[pos].uid == uid) {
		op_skip(a, "append", seq, "uid exists");
		return;
	}
	if (pos != mb->count) {
		/* Out of order: only a damaged log does this; keep order. */
		op_skip(a, "append", seq, "uid below the highest");
		return;
	}
	(void)j_i64(op, "tz", &tz);
	(void)j_i64(op, "sent", &sent);
	(void)j_i64(op, "stz", &stz);
	(void)j_u64(op, "hsize", &hsize);
	undo_save_scalars(u, mb);

	m.uid = uid;
	m.flags = flags & 0x1f;
	m.keywords = keyword_bits(mb, json_object_get(op, "kw"), true);
	m.modseq = modseq;
	m.size = size;
	m.internaldate = idate;
	m.idate_tz_min = (int16_t)(tz < -1440 || tz > 1440 ? 0 : tz);

	json_t *from = json_object_get(op, "from");
	if (json_is_array(from) && json_array_size(from) == 2) {
		json_t *fm = json_array_get(from, 0), *fu = json_array_get(from, 1);
		struct mailbox *src = json_is_integer(fm) ?
			account_mailbox_by_id(a, (uint64_t)json_integer_value(fm)) :
			NULL;
		struct index_msg *sm = src != NULL && json_is_integer(fu) ?
			mailbox_msg_by_uid(src,
					   (uint32_t)json_integer_value(fu)) :
			NULL;
		if (sm != NULL && sm->meta != NULL &&
		    memcmp(sm->guid, m.guid, INDEX_GUID_LEN) == 0)
			m.meta = index_meta_ref(sm->meta);
	}
	if (m.meta == NULL) {
		m.meta = index_meta_new();
		m.meta->envelope = j_bytes_dup(op, "env");
		m.meta->bodystructure = j_bytes_dup(op, "bs");
		m.meta->body = j_bytes_dup(op, "body");
		m.meta->sent_date = sent;
		m.meta->sent_tz_min = (int)(stz < -1440 || stz > 1440 ? 0 : stz);
		m.meta->header_size = (uint32_t)KURA_MIN(hsize, UINT32_MAX);
	}
	xgrow((void **)&mb->msgs, &mb->cap, mb->count + 1, sizeof(*mb->msgs));
	mb->msgs[mb->count++] = m;
	if (u != NULL)
		undo_push(u, UNDO_MSG_APPEND, mb);
	if (uid >= mb->uidnext)
		mb->uidnext = uid + 1;
	mb->total_size += size;
	mbox_priv(mb)->last_change = seq;
	raise_modseq(a, mb, modseq);
}

static void apply_store(struct account *a, json_t *op, uint64_t seq,
			struct undo *u)
{
	uint64_t mbid, modseq;
	uint32_t flags;
	struct mailbox *mb;
	const char *set = j_str(op, "uids"), *mode = j_str(op, "mode");
	struct uid_range *r;
	size_t nr;

	if (!j_u64(op, "mb", &mbid) || !j_u32(op, "flags", &flags) ||
	    !j_u64(op, "modseq", &modseq) || set == NULL || mode == NULL ||
	    (strcmp(mode, "+") != 0 && strcmp(mode, "-") != 0 &&
	     strcmp(mode, "=") != 0) ||
	    !index_uidset_parse(set, &r, &nr)) {
		op_skip(a, "store", seq, "bad fields");
		return;
	}
	if ((mb = account_mailbox_by_id(a, mbid)) == NULL) {
		free(r);
		op_skip(a, "store", seq, "no such mailbox");
		return;
	}
	undo_save_scalars(u, mb);
	flags &= 0x1f;
	uint64_t kw = keyword_bits(mb, json_object_get(op, "kw"),
				   mode[0] != '-');
	struct undo_flags *saved = NULL;
	size_t nsaved = 0, saved_cap = 0;
	for (size_t k = 0; k < nr; k++) {
		for (size_t i = msg_lower_bound(mb, r[k].lo);
		     i < mb->count && mb->msgs[i].uid <= r[k].hi; i++) {
			struct index_msg *m = &mb->msgs[i];
			uint32_t nf;
			uint64_t nk;
			switch (mode[0]) {
			case '+':
				nf = m->flags | flags;
				nk = m->keywords | kw;
				break;
			case '-':
				nf = m->flags & ~flags;
				nk = m->keywords & ~kw;
				break;
			default:
				nf = flags;
				nk = kw;
				break;
			}
			if (nf == m->flags && nk == m->keywords)
				continue;
			if (u != NULL) {
				xgrow((void **)&saved, &saved_cap, nsaved + 1,
				      sizeof(*saved));
				saved[nsaved++] = (struct undo_flags){
					i, m->flags, m->keywords, m->modseq };
			}
			m->flags = nf;
			m->keywords = nk;
			m->modseq = modseq;
		}
	}
	free(r);
	if (u != NULL) {
		struct undo_rec *rec = undo_push(u, UNDO_MSG_FLAGS, mb);
		rec->u.fl.v = saved;
		rec->u.fl.n = nsaved;
	}
	mbox_priv(mb)->last_change = seq;
	raise_modseq(a, mb, modseq);
}

/* Merges sorted uids (with modseq) into mb->expunged; returns in
 * *added_r the uids actually added (malloc'ed). */
static void expunged_merge(struct mailbox *mb, const uint32_t *uids, size_t n,
			   uint64_t modseq, uint32_t **added_r,
			   size_t *nadded_r)
{
	uint32_t *added = xmalloc(n * sizeof(*added) + 1);
	size_t na = 0;
	xgrow((void **)&mb->expunged, &mb->expunged_cap, mb->nexpunged + n,
	      sizeof(*mb->expunged));
	/* Common case: all new uids above the existing ones. */
	if (mb->nexpunged == 0 || (n > 0 &&
	    uids[0] > mb->expunged[mb->nexpunged - 1].uid)) {
		for (size_t i = 0; i < n; i++) {
			mb->expunged[mb->nexpunged++] =
				(struct index_expunged){ uids[i], modseq };
			added[na++] = uids[i];
		}
	} else {
		struct index_expunged *old = xmalloc(mb->nexpunged *
						     sizeof(*old) + 1);
		size_t nold = mb->nexpunged, i = 0, j = 0, w = 0;
		memcpy(old, mb->expunged, nold * sizeof(*old));
		while (i < nold || j < n) {
			if (j == n || (i < nold && old[i].uid < uids[j])) {
				mb->expunged[w++] = old[i++];
			} else if (i < nold && old[i].uid == uids[j]) {
				mb->expunged[w++] = old[i++];
				j++;
			} else {
				mb->expunged[w++] = (struct index_expunged){
					uids[j], modseq };
				added[na++] = uids[j++];
			}
		}
		mb->nexpunged = w;
		free(old);
	}
	*added_r = added;
	*nadded_r = na;
}

static void apply_expunge(struct account *a, json_t *op, uint64_t seq,
			  struct undo *u)
{
	uint64_t mbid, modseq;
	struct mailbox *mb;
	const char *set = j_str(op, "uids");
	struct uid_range *r;
	size_t nr;

	if (!j_u64(op, "mb", &mbid) || !j_u64(op, "modseq", &modseq) ||
	    set == NULL || !index_uidset_parse(set, &r, &nr)) {
		op_skip(a, "expunge", seq, "bad fields");
		return;
	}
	if ((mb = account_mailbox_by_id(a, mbid)) == NULL) {
		free(r);
		op_skip(a, "expunge", seq, "no such mailbox");
		return;
	}
	undo_save_scalars(u, mb);
	struct index_msg *removed = NULL;
	uint32_t *uids = NULL;
	size_t nrem = 0, rem_cap = 0, w = 0, k = 0;
	for (size_t i = 0; i < mb->count; i++) {
		struct index_msg *m = &mb->msgs[i];
		while (k < nr && r[k].hi < m->uid)
			k++;
		if (k < nr && r[k].lo <= m->uid) {
			xgrow((void **)&removed, &rem_cap, nrem + 1,
			      sizeof(*removed));
			removed[nrem++] = *m;
			mb->total_size -= m->size;
			continue;
		}
		mb->msgs[w++] = *m;
	}
	mb->count = w;
	free(r);
	trash_add(a, mb, removed, nrem, seq, u);
	uids = xmalloc(nrem * sizeof(*uids) + 1);
	for (size_t i = 0; i < nrem; i++)
		uids[i] = removed[i].uid;
	uint32_t *added;
	size_t nadded;
	expunged_merge(mb, uids, nrem, modseq, &added, &nadded);
	free(uids);
	if (u != NULL) {
		struct undo_rec *rec = undo_push(u, UNDO_MSG_REMOVE, mb);
		rec->u.rm.v = removed;
		rec->u.rm.n = nrem;
		rec = undo_push(u, UNDO_EXP_ADD, mb);
		rec->u.exp.v = added;
		rec->u.exp.n = nadded;
	} else {
		for (size_t i = 0; i < nrem; i++)
			index_meta_unref(&removed[i].meta);
		free(removed);
		free(added);
	}
	mbox_priv(mb)->last_change = seq;
	raise_modseq(a, mb, modseq);
}

static void apply_purge(struct account *a, json_t *op, uint64_t seq,
			struct undo *u)
{
	json_t *arr = json_object_get(op, "guids"), *v;
	size_t n = json_array_size(arr), i;
	if (!json_is_array(arr)) {
		op_skip(a, "purge", seq, "bad fields");
		return;
	}
	uint8_t (*g)[INDEX_GUID_LEN] = xmalloc(n * sizeof(*g) + 1);
	json_array_foreach(arr, i, v) {
		const char *h = json_string_value(v);
		if (h == NULL ||
		    !hex_decode(h, strlen(h), g[i], INDEX_GUID_LEN)) {
			free(g);
			op_skip(a, "purge", seq, "bad guid");
			return;
		}
	}
	qsort(g, n, sizeof(*g), guid_cmp);
	size_t keep = 0;
	for (i = 0; i < a->ntrash; i++) {
		if (bsearch(a->trash[i].guid, g, n, sizeof(*g),
			    guid_cmp) == NULL)
			keep++;
	}
	if (keep == a->ntrash) {
		free(g);
		return;
	}
	if (u != NULL) {
		/* Rare (the sweeper's own entries): keep the whole old list
		 * for the rollback. */
		struct undo_rec *r = undo_push(u, UNDO_TRASH_SET, NULL);
		r->u.trash.v = a->trash;
		r->u.trash.n = a->ntrash;
		r->u.trash.cap = a->trash_cap;
		r->u.trash.last_change = a->trash_last_change;
		struct index_trash *nv = xcalloc(keep + 1, sizeof(*nv));
		size_t w = 0;
		for (i = 0; i < a->ntrash; i++) {
			if (bsearch(a->trash[i].guid, g, n, sizeof(*g),
				    guid_cmp) == NULL)
				nv[w++] = trash_rec_dup(&a->trash[i]);
		}
		a->trash = nv;
		a->ntrash = w;
		a->trash_cap = keep + 1;
	} else {
		size_t w = 0;
		for (i = 0; i < a->ntrash; i++) {
			if (bsearch(a->trash[i].guid, g, n, sizeof(*g),
				    guid_cmp) == NULL)
				a->trash[w++] = a->trash[i];
			else
				index_trash_rec_free(&a->trash[i]);
		}
		a->ntrash = w;
	}
	a->trash_last_change = seq;
	free(g);
}

void index_apply_op(struct account *a, json_t *op, uint64_t seq, struct undo *u)
{
	const char *kind = j_str(op, "op");
	if (kind == NULL) {
		op_skip(a, NULL, seq, "no op name");
		return;
	}
	if (strcmp(kind, "append") == 0)
		apply_append(a, op, seq, u);
	else if (strcmp(kind, "store") == 0)
		apply_store(a, op, seq, u);
	else if (strcmp(kind, "expunge") == 0)
		apply_expunge(a, op, seq, u);
	else if (strcmp(kind, "create") == 0)
		apply_create(a, op, seq, u);
	else if (strcmp(kind, "delete") == 0)
		apply_delete(a, op, seq, u);
	else if (strcmp(kind, "rename") == 0)
		apply_rename(a, op, seq, u);
	else if (strcmp(kind, "sub") == 0)
		apply_sub(a, op, seq, u);
	else if (strcmp(kind, "purge") == 0)
		apply_purge(a, op, seq, u);
	else
		op_skip(a, kind, seq, "unknown op");
}

int index_apply_entry(struct account *a, json_t *entry, uint64_t seq)
{
	uint64_t v, eseq;
	json_t *ops = json_object_get(entry, "ops");
	if (!json_is_object(entry) || !j_u64(entry, "v", &v) ||
	    !j_u64(entry, "seq", &eseq) || !json_is_array(ops))
		return KURA_ECORRUPT;
	if (v != INDEX_FORMAT_VERSION || eseq != seq)
		return KURA_ECORRUPT;
	int64_t t = 0;
	(void)j_i64(entry, "time", &t);
	a->apply_time = t;
	size_t i;
	json_t *op;
	json_array_foreach(ops, i, op) {
		if (json_is_object(op))
			index_apply_op(a, op, seq, NULL);
	}
	a->seq = seq;
	return 0;
}

/* ---- byte strings in JSON ----
 *
 * Cached fields (ENVELOPE etc.) may hold 8-bit bytes that are not UTF-8,
 * which JSON cannot carry: such a string is written as {"b64":"..."}. */

bool index_utf8_is_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			if (c == 0)
				return false;
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(struct buf *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char q[4] = { b64chars[(v >> 18) & 63], b64chars[(v >> 12) & 63],
			      i + 1 < n ? b64chars[(v >> 6) & 63] : '=',
			      i + 2 < n ? b64chars[v & 63] : '=' };
		buf_append(out, q, 4);
	}
}

static int b64_val(char c)
{
	const char *p = c != '\0' ? strchr(b64chars, c) : NULL;
	return p != NULL ? (int)(p - b64chars) : -1;
}

static char *b64_decode(const char *s)
{
	size_t n = strlen(s);
	if (n % 4 != 0)
		return NULL;
	char *out = xmalloc(n / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++)
			v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ?
			       0 : b64_val(s[i + k]);
		if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
			free(out);
			return NULL;
		}
		uint32_t x = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
			     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		out[o++] = (char)(x >> 16);
		if (s[i + 2] != '=')
			out[o++] = (char)(x >> 8);
		if (s[i + 3] != '=')
			out[o++] = (char)x;
	}
	out[o] = '\0';
	if (strlen(out) != o) {
		free(out);
		return NULL;
	}
	return out;
}

json_t *index_json_bytes(const char *s)
{
	if (s == NULL)
		return json_null();
	size_t n = strlen(s);
	if (index_utf8_is_valid(s, n))
		return json_stringn(s, n);
	struct buf b;
	buf_init(&b, 0);
	b64_encode(&b, (const uint8_t *)s, n);
	json_t *v = json_pack("{s:s%}", "b64", b.data != NULL ?
			      (const char *)b.data : "", buf_used(&b));
	buf_deinit(&b);
	return v;
}

char *index_json_bytes_dup(json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_object(v)) {
		const char *s = json_string_value(json_object_get(v, "b64"));
		return s != NULL ? b64_decode(s) : NULL;
	}
	return NULL;
}

void index_json_buf_bytes(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (s == NULL) {
		buf_append(b, "null", 4);
		return;
	}
	size_t n = strlen(s);
	if (!index_utf8_is_valid(s, n)) {
		buf_append_str(b, "{\"b64\":\"");
		b64_encode(b, (const uint8_t *)s, n);
		buf_append(b, "\"}", 2);
		return;
	}
	uint8_t *o = buf_reserve(b, n * 6 + 2);
	size_t k = 0;
	o[k++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			o[k++] = '\\';
			o[k++] = c;
		} else if (c < 0x20) {
			o[k++] = '\\';
			o[k++] = 'u';
			o[k++] = '0';
			o[k++] = '0';
			o[k++] = (uint8_t)hex[c >> 4];
			o[k++] = (uint8_t)hex[c & 15];
		} else {
			o[k++] = c;
		}
	}
	o[k++] = '"';
	buf_commit(b, k);
}
