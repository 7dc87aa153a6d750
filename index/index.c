/* The node-wide index, the per-thread account maps, accessors and small
 * helpers shared with the protocol layer.
 *
 * Accounts live in a map per (index, worker thread): a thread-local list
 * of struct index_thread, one per index used on that thread. An account
 * whose last reference is dropped stays in memory in an LRU of at most
 * INDEX_LRU_MAX accounts per thread, so reopening it costs one freshness
 * request. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cache/bodycache.h"
#include "cache/cache.h"
#include "index/index_int.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"

struct index_thread {
	struct index *idx;		/* NULL once the index is destroyed */
	struct index_thread *tls_next;	/* this thread's list */
	struct index_thread *idx_next;	/* idx->threads */
	struct account **tab;
	size_t nbuckets, count;
	struct account *lru_head, *lru_tail;
	size_t nlru;
};

static __thread struct index_thread *tls_threads;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;

static void account_free(struct account *a);

static void ts_free_accounts(struct index_thread *ts)
{
	for (size_t i = 0; i < ts->nbuckets; i++) {
		struct account *a = ts->tab[i], *next;
		for (; a != NULL; a = next) {
			next = a->hnext;
			if (a->refs > 0)
				log_warn("event=index_account_leak user=%s refs=%u",
					 a->user, a->refs);
			account_free(a);
		}
	}
	free(ts->tab);
	ts->tab = NULL;
	ts->count = 0;
	ts->nlru = 0;
	ts->lru_head = ts->lru_tail = NULL;
}

static void idx_unlink_ts(struct index *idx, struct index_thread *ts)
{
	struct index_thread **pp = &idx->threads;
	while (*pp != NULL && *pp != ts)
		pp = &(*pp)->idx_next;
	if (*pp == ts)
		*pp = ts->idx_next;
}

/* Thread exit: the accounts of this thread go with it. */
static void tls_destructor(void *p)
{
	struct index_thread *ts = p, *next;
	pthread_mutex_lock(&g_lock);
	for (; ts != NULL; ts = next) {
		next = ts->tls_next;
		if (ts->idx != NULL) {
			idx_unlink_ts(ts->idx, ts);
			ts_free_accounts(ts);
		}
		free(ts);
	}
	pthread_mutex_unlock(&g_lock);
	tls_threads = NULL;
}

static void key_create(void)
{
	pthread_key_create(&g_key, tls_destructor);
}

static struct index_thread *thread_state(struct index *idx)
{
	struct index_thread *ts;
	for (ts = tls_threads; ts != NULL; ts = ts->tls_next) {
		if (ts->idx == idx)
			return ts;
	}
	pthread_once(&g_once, key_create);
	ts = xcalloc(1, sizeof(*ts));
	ts->idx = idx;
	ts->nbuckets = 64;
	ts->tab = xcalloc(ts->nbuckets, sizeof(*ts->tab));
	pthread_mutex_lock(&g_lock);
	ts->idx_next = idx->threads;
	idx->threads = ts;
	pthread_mutex_unlock(&g_lock);
	ts->tls_next = tls_threads;
	tls_threads = ts;
	pthread_setspecific(g_key, tls_threads);
	return ts;
}

struct index *index_create(struct store *store, struct cache *cache,
			   const struct index_settings *set)
{
	struct index *idx = xcalloc(1, sizeof(*idx));
	idx->store = store;
	idx->cache = cache;
	if (set != NULL)
		idx->set = *set;
	if (idx->set.snapshot_every == 0)
		idx->set.snapshot_every = 100;
	if (gethostname(idx->node, sizeof(idx->node) - 1) < 0)
		strcpy(idx->node, "unknown");
	idx->node[sizeof(idx->node) - 1] = '\0';
	return idx;
}

void index_destroy(struct index **idxp)
{
	struct index *idx = *idxp;
	if (idx == NULL)
		return;
	*idxp = NULL;
	pthread_mutex_lock(&g_lock);
	for (struct index_thread *ts = idx->threads; ts != NULL;
	     ts = ts->idx_next) {
		ts_free_accounts(ts);
		ts->idx = NULL;
	}
	idx->threads = NULL;
	pthread_mutex_unlock(&g_lock);
	/* This thread's states can go now; other threads drop theirs at
	 * exit (they only compare the pointer, which is NULL). */
	struct index_thread **pp = &tls_threads;
	bool changed = false;
	while (*pp != NULL) {
		struct index_thread *ts = *pp;
		if (ts->idx == NULL) {
			*pp = ts->tls_next;
			free(ts);
			changed = true;
		} else {
			pp = &ts->tls_next;
		}
	}
	/* The key exists: this thread made the states it just freed. */
	if (changed)
		pthread_setspecific(g_key, tls_threads);
	free(idx);
}

/* ---- keys ---- */

static bool user_byte_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
	       c == '+' || c == '-';
}

void index_user_escape(const char *user, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; user[i] != '\0' && o + 4 < outlen; i++) {
		unsigned char c = (unsigned char)user[i];
		/* A '.' first or after another '.' could make "." or ".."
		 * a path component. */
		bool dot_risk = c == '.' && (i == 0 || user[i - 1] == '.');
		if (user_byte_ok(c) && !dot_risk) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

char *account_key(const struct account *a, const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	buf_init(&b, 0);
	buf_append_str(&b, a->prefix);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* ---- accounts ---- */

static size_t user_bucket(const struct index_thread *ts, const char *user)
{
	return (size_t)(hash64(user, strlen(user)) & (ts->nbuckets - 1));
}

static void ts_grow(struct index_thread *ts)
{
	size_t nb = ts->nbuckets * 2;
	struct account **tab = xcalloc(nb, sizeof(*tab));
	for (size_t i = 0; i < ts->nbuckets; i++) {
		struct account *a = ts->tab[i], *next;
		for (; a != NULL; a = next) {
			next = a->hnext;
			size_t b = (size_t)(hash64(a->user, strlen(a->user)) &
					    (nb - 1));
			a->hnext = tab[b];
			tab[b] = a;
		}
	}
	free(ts->tab);
	ts->tab = tab;
	ts->nbuckets = nb;
}

static void lru_remove(struct index_thread *ts, struct account *a)
{
	if (!a->in_lru)
		return;
	if (a->lru_prev != NULL)
		a->lru_prev->lru_next = a->lru_next;
	else
		ts->lru_head = a->lru_next;
	if (a->lru_next != NULL)
		a->lru_next->lru_prev = a->lru_prev;
	else
		ts->lru_tail = a->lru_prev;
	a->lru_prev = a->lru_next = NULL;
	a->in_lru = false;
	ts->nlru--;
}

static void map_remove(struct index_thread *ts, struct account *a)
{
	struct account **pp = &ts->tab[user_bucket(ts, a->user)];
	while (*pp != NULL && *pp != a)
		pp = &(*pp)->hnext;
	if (*pp == a) {
		*pp = a->hnext;
		ts->count--;
	}
}

void account_state_clear(struct account *a)
{
	for (size_t i = 0; i < a->nmbs; i++)
		index_mbox_free(a->mbs[i]);
	free(a->mbs);
	free(a->by_id);
	a->mbs = a->by_id = NULL;
	a->nmbs = a->mbs_cap = a->by_id_cap = 0;
	for (size_t i = 0; i < a->nsubs; i++)
		free(a->subs[i]);
	free(a->subs);
	a->subs = NULL;
	a->nsubs = a->subs_cap = 0;
	a->seq = 0;
	a->modseq = 0;
	a->next_mailbox_id = 1;
	a->last_uidvalidity = 0;
	a->snap_seq = 0;
	a->snap_good = 0;
	index_trash_clear(a);
}

static void account_free(struct account *a)
{
	account_state_clear(a);
	free(a->user);
	free(a->prefix);
	free(a);
}

static bool user_is_valid(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > INDEX_MAX_USER)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return false;
	}
	return true;
}

static struct account *account_new(struct index_thread *ts, const char *user)
{
	char esc[INDEX_MAX_USER * 3 + 1];
	char prefix[sizeof(esc) + 16];
	struct account *a = xcalloc(1, sizeof(*a));
	a->idx = ts->idx;
	a->ts = ts;
	a->user = xstrdup(user);
	index_user_escape(user, esc, sizeof(esc));
	snprintf(prefix, sizeof(prefix), "u/%02x/%s/",
		 (unsigned)(hash64(user, strlen(user)) & 0xff), esc);
	a->prefix = xstrdup(prefix);
	a->next_mailbox_id = 1;
	if (ts->count >= ts->nbuckets)
		ts_grow(ts);
	size_t b = user_bucket(ts, user);
	a->hnext = ts->tab[b];
	ts->tab[b] = a;
	ts->count++;
	return a;
}

char *index_user_prefix(const char *user)
{
	char esc[INDEX_MAX_USER * 3 + 1];
	char prefix[sizeof(esc) + 16];
	index_user_escape(user, esc, sizeof(esc));
	snprintf(prefix, sizeof(prefix), "u/%02x/%s/",
		 (unsigned)(hash64(user, strlen(user)) & 0xff), esc);
	return xstrdup(prefix);
}

struct account *index_account_scratch(struct index *idx, const char *user)
{
	struct account *a = xcalloc(1, sizeof(*a));
	a->idx = idx;
	a->user = xstrdup(user);
	a->prefix = index_user_prefix(user);
	a->next_mailbox_id = 1;
	a->refs = 1;
	return a;
}

void index_account_scratch_free(struct account **ap)
{
	struct account *a = *ap;
	*ap = NULL;
	if (a != NULL)
		account_free(a);
}

int index_account_get(struct index *idx, const char *user,
		      struct account **acct_r, const char **error_r)
{
	struct index_thread *ts;
	struct account *a;
	const char *err = NULL;
	int rc;

	*acct_r = NULL;
	if (!user_is_valid(user)) {
		if (error_r != NULL)
			*error_r = "invalid user name";
		return KURA_EINVAL;
	}
	ts = thread_state(idx);
	for (a = ts->tab[user_bucket(ts, user)]; a != NULL; a = a->hnext) {
		if (strcmp(a->user, user) == 0)
			break;
	}
	if (a == NULL)
		a = account_new(ts, user);
	lru_remove(ts, a);
	a->refs++;
	rc = account_lock(a, &err);
	if (rc == 0) {
		bool changed = false;
		if (!a->loaded)
			rc = account_load(a, &err);
		else
			rc = account_read_forward(a, &changed, &err);
		account_unlock(a);
		if (changed)
			account_notify(a);
	}
	if (rc != 0) {
		if (error_r != NULL)
			*error_r = err;
		index_account_unref(&a);
		return rc;
	}
	*acct_r = a;
	return 0;
}

void index_account_unref(struct account **ap)
{
	struct account *a = *ap;
	if (a == NULL)
		return;
	*ap = NULL;
	if (--a->refs > 0)
		return;
	struct index_thread *ts = a->ts;
	a->lru_prev = NULL;
	a->lru_next = ts->lru_head;
	if (ts->lru_head != NULL)
		ts->lru_head->lru_prev = a;
	ts->lru_head = a;
	if (ts->lru_tail == NULL)
		ts->lru_tail = a;
	a->in_lru = true;
	ts->nlru++;
	while (ts->nlru > INDEX_LRU_MAX) {
		struct account *old = ts->lru_tail;
		lru_remove(ts, old);
		map_remove(ts, old);
		account_free(old);
	}
}

const char *account_user(const struct account *a)
{
	return a->user;
}

/* ---- the account lock ---- */

int account_lock(struct account *a, const char **error_r)
{
	if (!a->locked) {
		a->locked = true;
		return 0;
	}
	struct task *t = task_current();
	if (t == NULL) {
		*error_r = "account busy (held by a task)";
		return KURA_EUNAVAIL;
	}
	struct lock_waiter w = { t, NULL, NULL, false };
	if (a->wait_tail != NULL)
		a->wait_tail->next = &w;
	else
		a->wait_head = &w;
	a->wait_tail = &w;
	while (!w.granted)
		task_suspend();
	return 0;
}

void account_unlock(struct account *a)
{
	struct lock_waiter *w = a->wait_head;
	if (w == NULL) {
		a->locked = false;
		return;
	}
	/* Hand the lock over: it stays taken. */
	a->wait_head = w->next;
	if (a->wait_head == NULL)
		a->wait_tail = NULL;
	w->next = NULL;
	w->granted = true;
	task_wake(w->task);
}

void account_notify(struct account *a)
{
	struct account_listener *l = a->listeners, *next;
	for (; l != NULL; l = next) {
		next = l->next;
		l->changed(l);
	}
}

void account_listener_add(struct account *a, struct account_listener *l)
{
	l->next = a->listeners;
	a->listeners = l;
}

void account_listener_remove(struct account *a, struct account_listener *l)
{
	struct account_listener **pp = &a->listeners;
	while (*pp != NULL && *pp != l)
		pp = &(*pp)->next;
	if (*pp == l)
		*pp = l->next;
	l->next = NULL;
}

void index_sleep_ms(uint64_t msec)
{
	if (task_current() != NULL) {
		task_sleep_ms(msec);
		return;
	}
	struct timespec ts = { (time_t)(msec / 1000),
			       (long)(msec % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int index_obj_get(struct index *idx, const char *key, struct buf *out,
		  const char **error_r)
{
	int rc;
	buf_reset(out);
	if (idx->cache != NULL && cache_get(idx->cache, key, out) == 0)
		return 0;
	buf_reset(out);
	rc = store_get(idx->store, key, 0, STORE_LEN_ALL, out, error_r);
	if (rc == 0) {
		if (idx->cache != NULL)
			cache_put(idx->cache, key, buf_chars(out),
				  buf_used(out));
		return 0;
	}
	buf_reset(out);
	if (rc == KURA_ENOTFOUND)
		return rc;
	if (rc == KURA_ETOOBIG) {
		*error_r = "stored object too big";
		return KURA_ECORRUPT;
	}
	return KURA_EUNAVAIL;
}

/* ---- accessors ---- */

size_t account_mailbox_count(const struct account *a)
{
	return a->nmbs;
}

struct mailbox *account_mailbox_at(struct account *a, size_t i)
{
	return i < a->nmbs ? a->mbs[i] : NULL;
}

/* Normalized name in buf (or NULL when too long). */
static const char *name_norm(struct kstr name, char *buf, size_t buflen)
{
	if (name.len + 1 > buflen || memchr(name.p, '\0', name.len) != NULL)
		return NULL;
	memcpy(buf, name.p, name.len);
	buf[name.len] = '\0';
	if (name.len >= 5 && strncasecmp(buf, "INBOX", 5) == 0 &&
	    (name.len == 5 || buf[5] == INDEX_HIER_SEP))
		memcpy(buf, "INBOX", 5);
	return buf;
}

struct mailbox *account_mailbox_find(struct account *a, struct kstr name)
{
	char tmp[INDEX_MAX_NAME + 1];
	const char *n = name_norm(name, tmp, sizeof(tmp));
	return n != NULL ? index_mbox_by_name(a, n) : NULL;
}

size_t account_subscription_count(const struct account *a)
{
	return a->nsubs;
}

const char *account_subscription_at(const struct account *a, size_t i)
{
	return i < a->nsubs ? a->subs[i] : NULL;
}

bool account_is_subscribed(const struct account *a, struct kstr name)
{
	char tmp[INDEX_MAX_NAME + 1];
	size_t pos;
	const char *n = name_norm(name, tmp, sizeof(tmp));
	return n != NULL && index_subs_find(a, n, &pos);
}

uint64_t account_modseq(const struct account *a)
{
	return a->modseq;
}

size_t mailbox_msg_lower_bound(const struct mailbox *mb, uint32_t uid)
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

struct index_msg *mailbox_msg_by_uid(struct mailbox *mb, uint32_t uid)
{
	size_t i = mailbox_msg_lower_bound(mb, uid);
	if (i < mb->count && mb->msgs[i].uid == uid)
		return &mb->msgs[i];
	return NULL;
}

int mailbox_keyword_find(const struct mailbox *mb, struct kstr kw)
{
	for (unsigned i = 0; i < mb->nkeywords; i++) {
		if (kstr_eq_ci(kw, mb->keywords[i]))
			return (int)i;
	}
	return -1;
}

uint32_t mailbox_claim_recent(struct mailbox *mb, bool read_only)
{
	if (read_only)
		return mb->uidnext;
	uint32_t old = mb->recent_floor;
	mb->recent_floor = mb->uidnext;
	return old;
}

/* ---- flags ---- */

static const struct {
	uint32_t bit;
	const char *name;
} flag_names[] = {
	{ MSG_SEEN, "\\Seen" },
	{ MSG_ANSWERED, "\\Answered" },
	{ MSG_FLAGGED, "\\Flagged" },
	{ MSG_DELETED, "\\Deleted" },
	{ MSG_DRAFT, "\\Draft" },
};

uint32_t index_flag_from_name(struct kstr name)
{
	for (size_t i = 0; i < ARRAY_SIZE(flag_names); i++) {
		if (kstr_eq_ci(name, flag_names[i].name))
			return flag_names[i].bit;
	}
	return 0;
}

void index_flags_write(struct buf *out, const struct mailbox *mb,
		       const struct index_msg *m, bool recent)
{
	bool first = true;
	for (size_t i = 0; i < ARRAY_SIZE(flag_names); i++) {
		if ((m->flags & flag_names[i].bit) == 0)
			continue;
		if (!first)
			buf_append(out, " ", 1);
		buf_append_str(out, flag_names[i].name);
		first = false;
	}
	if (recent) {
		if (!first)
			buf_append(out, " ", 1);
		buf_append_str(out, "\\Recent");
		first = false;
	}
	for (unsigned i = 0; i < mb->nkeywords; i++) {
		if ((m->keywords & ((uint64_t)1 << i)) == 0)
			continue;
		if (!first)
			buf_append(out, " ", 1);
		buf_append_str(out, mb->keywords[i]);
		first = false;
	}
}

/* ---- message bodies ---- */

int index_message_put(struct account *a, const void *data, size_t len,
		      uint8_t guid_r[INDEX_GUID_LEN], const char **error_r)
{
	char hex[INDEX_GUID_LEN * 2 + 1];
	char esc[INDEX_MAX_USER * 3 + 1];
	char meta_user[sizeof(esc) + 16], meta_time[48];
	const char *meta[3] = { meta_user, meta_time, NULL };
	const char *err = NULL;
	int rc = KURA_ECONFLICT;

	index_user_escape(a->user, esc, sizeof(esc));
	/* Enough to find the owner and age of an object from a listing. */
	snprintf(meta_user, sizeof(meta_user), "kura-user=%s", esc);
	snprintf(meta_time, sizeof(meta_time), "kura-time=%lld",
		 (long long)time_wall_sec());
	for (int tries = 0; tries < 3 && rc == KURA_ECONFLICT; tries++) {
		random_bytes(guid_r, INDEX_GUID_LEN);
		hex_encode(guid_r, INDEX_GUID_LEN, hex);
		char *key = account_key(a, "m/%s", hex);
		rc = store_put(a->idx->store, key, data, len,
			       STORE_PUT_CREATE_ONLY, meta, &err);
		/* ---- body cache: write-through (cache/bodycache.h) ----
		 * A just-appended message is often fetched next. Only after
		 * the store has it: the cache never holds what the store
		 * does not. */
		if (rc == 0 && a->idx->set.bodycache != NULL)
			(void)bodycache_put(a->idx->set.bodycache, key, data,
					    len);
		/* ---- end body cache ---- */
		free(key);
	}
	if (rc == 0)
		return 0;
	log_warn("event=message_put user=%s error=\"%s\"", a->user,
		 err != NULL ? err : kura_strerror(rc));
	if (error_r != NULL)
		*error_r = err != NULL ? err : kura_strerror(rc);
	return KURA_EUNAVAIL;
}

int index_message_get(struct account *a, const uint8_t guid[INDEX_GUID_LEN],
		      uint64_t off, uint64_t len, struct buf *out,
		      const char **error_r)
{
	char hex[INDEX_GUID_LEN * 2 + 1];
	const char *err = NULL;
	hex_encode(guid, INDEX_GUID_LEN, hex);
	char *key = account_key(a, "m/%s", hex);
	/* ---- body cache (cache/bodycache.h) ----
	 * Message objects are immutable, so a cached copy is always right:
	 * a hit (or a hit too big for out) makes no store request. A miss
	 * for the whole object fills the cache from the store's answer; a
	 * range miss (BODY[HEADER] of a big message) does not, so as not to
	 * pull whole attachments for a header. */
	struct bodycache *bc = a->idx->set.bodycache;
	size_t before = buf_used(out);
	int rc;
	if (bc != NULL) {
		rc = bodycache_get(bc, key, off, len, out);
		if (rc == 0 || rc == KURA_ETOOBIG) {
			free(key);
			if (rc != 0 && error_r != NULL)
				*error_r = kura_strerror(rc);
			return rc;
		}
	}
	rc = store_get(a->idx->store, key, off, len, out, &err);
	if (rc == 0 && bc != NULL && off == 0 && len == UINT64_MAX &&
	    buf_head(out) != NULL)
		(void)bodycache_put(bc, key, buf_head(out) + before,
				    buf_used(out) - before);
	/* ---- end body cache ---- */
	free(key);
	if (rc == 0 || rc == KURA_ENOTFOUND || rc == KURA_ETOOBIG) {
		if (rc != 0 && error_r != NULL)
			*error_r = kura_strerror(rc);
		return rc;
	}
	if (error_r != NULL)
		*error_r = err != NULL ? err : kura_strerror(rc);
	return KURA_EUNAVAIL;
}
