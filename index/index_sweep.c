/* Lazy expunge and the sweeper (DESIGN.md §4).
 *
 * The expunged list. Applying an "expunge" op, or a "delete" of a
 * mailbox holding messages, adds one record per message to the account
 * state (struct index_trash) with the entry's "time"; a "purge" op of
 * the sweeper drops records. Snapshots carry the list as one object,
 * referenced like a mailbox object while unchanged:
 *
 *   snap/<E:016x>/expunged
 *     {"v":1,"seq":E,"expunged":[
 *       {"guid":"<hex32>","mb":I,"mailbox":N,"uid":U,"flags":B,
 *        "size":Z,"idate":T,"tz":Z,"time":T[,"kw":"a b"][,"subject":S]},
 *       ...]}
 *
 * in the order the messages were expunged. Strings are byte strings as
 * in the rest of the index ({"b64":...} when not UTF-8).
 *
 * What the sweeper deletes, and why no node can still need it:
 *
 * - A message object, only once a "purge" entry it committed itself
 *   dropped the guid from the expunged list (the newest expunge of the
 *   guid older than the retention) and the state after that entry has
 *   no mailbox referencing it. The entry is the linearization point:
 *   every later entry is evaluated against a state where the guid is on
 *   no mailbox and not on the list, so nothing can reference it again
 *   (COPY needs a referencing message, a restore needs the list record
 *   and fails at commit time otherwise, APPEND uses fresh guids). A
 *   restore committed before the purge makes the purge leave the guid
 *   referenced, and the sweeper then keeps the object.
 *
 * - An object no mailbox and no list record references (an APPEND whose
 *   log entry never came), only when it is older than the orphan grace
 *   measured from *before* the state was read: the sweeper lists m/
 *   first, then refreshes the state, so an APPEND in flight would have
 *   to take longer than the grace between its object PUT and its entry.
 *
 * - Snapshot objects of snapshots other than the newest keep_snapshots
 *   complete ones (and all newer than the newest one that loads), only
 *   when older than log_grace, and never an object a kept snapshot
 *   references (an unchanged mailbox's object lives in an old snapshot's
 *   directory). The newest snapshot is verified by loading it.
 *
 * - Log entries at or below S - keep_entries, S being the newest
 *   snapshot that loads, older than log_grace, in ascending order
 *   (stopping at the first failure), after making sure the hint is >= S.
 *   A reader that finds log/N+1 missing checks the hint (at most
 *   INDEX_HINT_CHECK_SEC later) and reloads from the snapshot. A writer
 *   must not recreate a swept key with its create-only PUT: before a
 *   commit, a node whose state was not proven to be the head within
 *   INDEX_HINT_CHECK_SEC checks that its newest entry still exists
 *   (account_verify_head); ascending deletion makes that a proof that
 *   nothing above it was swept, and the grace makes sure an entry
 *   written after the last proof is not swept before the next one.
 *
 * Residual risks, accepted: a node paused longer than the grace in the
 * middle of an APPEND or of a snapshot write; a node keeping in memory a
 * reference to a snapshot object of a deleted snapshot writes snapshots
 * that do not load (readers fall back to the newest one that does; the
 * log above it is never swept). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/store.h"

static __thread char sweep_err[256];

static const char *errf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *errf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sweep_err, sizeof(sweep_err), fmt, ap);
	va_end(ap);
	return sweep_err;
}

void index_sweep_settings_init(struct index_sweep_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->retention_sec = INDEX_SWEEP_RETENTION_DEFAULT;
	set->orphan_grace_sec = INDEX_SWEEP_ORPHAN_GRACE_DEFAULT;
	set->log_grace_sec = INDEX_SWEEP_LOG_GRACE_DEFAULT;
	set->keep_entries = INDEX_SWEEP_KEEP_ENTRIES_DEFAULT;
	set->keep_snapshots = INDEX_SWEEP_KEEP_SNAPSHOTS_DEFAULT;
}

/* ---- the expunged-list format ---- */

/* One nstring at *pp (end: the string's end): NIL -> NULL, "quoted" or
 * {n}CRLF literal -> its bytes cut at INDEX_SUBJECT_MAX (malloc'ed).
 * *ok_r false on bad syntax. */
static char *env_nstring(const char **pp, const char *end, bool *ok_r)
{
	const char *p = *pp;
	struct buf b;

	*ok_r = false;
	if (end - p >= 3 && memcmp(p, "NIL", 3) == 0) {
		*pp = p + 3;
		*ok_r = true;
		return NULL;
	}
	buf_init(&b, 0);
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && ++p == end)
				break;
			if (buf_used(&b) < INDEX_SUBJECT_MAX)
				buf_append(&b, p, 1);
		}
		if (p == end)
			goto bad;
		p++;
	} else if (p < end && *p == '{') {
		uint64_t n = 0;
		for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
			n = n * 10 + (uint64_t)(*p - '0');
			if (n > (uint64_t)(end - p))
				goto bad;
		}
		if (end - p < 3 || memcmp(p, "}\r\n", 3) != 0)
			goto bad;
		p += 3;
		if (n > (uint64_t)(end - p))
			goto bad;
		buf_append(&b, p, KURA_MIN(n, INDEX_SUBJECT_MAX));
		p += n;
	} else {
		goto bad;
	}
	/* Cut at a character boundary. */
	size_t len = buf_used(&b);
	if (len == INDEX_SUBJECT_MAX) {
		while (len > 0 && ((uint8_t)b.data[len - 1] & 0xc0) == 0x80)
			len--;
		if (len > 0 && (uint8_t)b.data[len - 1] >= 0xc0)
			len--;
	}
	char *s = xmalloc(len + 1);
	if (len > 0)
		memcpy(s, b.data, len);
	s[len] = '\0';
	buf_deinit(&b);
	*pp = p;
	*ok_r = true;
	return s;
bad:
	buf_deinit(&b);
	return NULL;
}

char *index_envelope_subject(const char *envelope)
{
	if (envelope == NULL || envelope[0] != '(')
		return NULL;
	const char *p = envelope + 1, *end = envelope + strlen(envelope);
	bool ok;
	char *date = env_nstring(&p, end, &ok);
	free(date);
	if (!ok || p == end || *p != ' ')
		return NULL;
	p++;
	char *subject = env_nstring(&p, end, &ok);
	/* An empty subject reads like none. */
	if (subject != NULL && subject[0] == '\0') {
		free(subject);
		subject = NULL;
	}
	return subject;
}

char *index_trash_json(const struct account *a, uint64_t seq, size_t *len_r)
{
	struct buf b;
	char hex[INDEX_GUID_LEN * 2 + 1];

	buf_init(&b, 0);
	buf_printf(&b, "{\"v\":%d,\"seq\":%llu,\"expunged\":[",
		   INDEX_FORMAT_VERSION, (unsigned long long)seq);
	for (size_t i = 0; i < a->ntrash; i++) {
		const struct index_trash *t = &a->trash[i];
		hex_encode(t->guid, INDEX_GUID_LEN, hex);
		buf_printf(&b, "%s{\"guid\":\"%s\",\"mb\":%llu,\"mailbox\":",
			   i > 0 ? ",\n" : "\n", hex,
			   (unsigned long long)t->mbid);
		index_json_buf_bytes(&b, t->mailbox != NULL ? t->mailbox : "");
		buf_printf(&b, ",\"uid\":%u,\"flags\":%u,\"size\":%llu,"
			   "\"idate\":%lld,\"tz\":%d,\"time\":%lld", t->uid,
			   t->flags, (unsigned long long)t->size,
			   (long long)t->internaldate, t->idate_tz_min,
			   (long long)t->time);
		if (t->keywords != NULL) {
			buf_append_str(&b, ",\"kw\":");
			index_json_buf_bytes(&b, t->keywords);
		}
		if (t->subject != NULL) {
			buf_append_str(&b, ",\"subject\":");
			index_json_buf_bytes(&b, t->subject);
		}
		buf_append(&b, "}", 1);
	}
	buf_append_str(&b, "]}\n");
	*len_r = buf_used(&b);
	return (char *)b.data;
}

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

/* An optional byte string: absent is fine (NULL), malformed is not. */
static bool j_opt_bytes(json_t *o, const char *k, char **s_r)
{
	json_t *v = json_object_get(o, k);
	*s_r = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	*s_r = index_json_bytes_dup(v);
	return *s_r != NULL;
}

static bool trash_rec_parse(json_t *o, struct index_trash *t)
{
	const char *g = json_string_value(json_object_get(o, "guid"));
	uint64_t uid, flags;
	int64_t tz;

	memset(t, 0, sizeof(*t));
	if (!json_is_object(o) || g == NULL ||
	    !hex_decode(g, strlen(g), t->guid, INDEX_GUID_LEN) ||
	    !j_u64(o, "mb", &t->mbid) || !j_u64(o, "uid", &uid) ||
	    uid == 0 || uid >= UINT32_MAX || !j_u64(o, "flags", &flags) ||
	    !j_u64(o, "size", &t->size) ||
	    !j_i64(o, "idate", &t->internaldate) || !j_i64(o, "tz", &tz) ||
	    !j_i64(o, "time", &t->time))
		return false;
	t->uid = (uint32_t)uid;
	t->flags = (uint32_t)(flags & 0x1f);
	t->idate_tz_min = (int16_t)(tz < -1440 || tz > 1440 ? 0 : tz);
	t->mailbox = index_json_bytes_dup(json_object_get(o, "mailbox"));
	if (t->mailbox == NULL || !j_opt_bytes(o, "kw", &t->keywords) ||
	    !j_opt_bytes(o, "subject", &t->subject)) {
		index_trash_rec_free(t);
		return false;
	}
	return true;
}

int index_trash_parse(struct account *a, const char *data, size_t len,
		      uint64_t seq, const char **error_r)
{
	json_error_t jerr;
	json_t *j = json_loadb(data, len, 0, &jerr), *arr, *v;
	uint64_t ver, s;
	size_t i;

	index_trash_clear(a);
	arr = json_object_get(j, "expunged");
	if (!json_is_object(j) || !j_u64(j, "v", &ver) ||
	    ver != INDEX_FORMAT_VERSION || !j_u64(j, "seq", &s) || s != seq ||
	    !json_is_array(arr))
		goto bad;
	a->trash = xcalloc(json_array_size(arr) + 1, sizeof(*a->trash));
	a->trash_cap = json_array_size(arr) + 1;
	json_array_foreach(arr, i, v) {
		if (!trash_rec_parse(v, &a->trash[a->ntrash]))
			goto bad;
		a->ntrash++;
	}
	json_decref(j);
	return 0;
bad:
	json_decref(j);
	index_trash_clear(a);
	*error_r = "snapshot expunged object is malformed";
	return KURA_ECORRUPT;
}

/* ---- guid sets ---- */

struct guid_vec {
	uint8_t (*v)[INDEX_GUID_LEN];
	size_t n, cap;
};

static int guid_cmp(const void *x, const void *y)
{
	return memcmp(x, y, INDEX_GUID_LEN);
}

static void guid_push(struct guid_vec *g, const uint8_t *guid)
{
	xgrow((void **)&g->v, &g->cap, g->n + 1, sizeof(*g->v));
	memcpy(g->v[g->n++], guid, INDEX_GUID_LEN);
}

static bool guid_has(const struct guid_vec *g, const uint8_t *guid)
{
	return g->n > 0 &&
	       bsearch(guid, g->v, g->n, sizeof(*g->v), guid_cmp) != NULL;
}

/* Every guid a mailbox of the state references, sorted, unique. */
static void referenced_guids(const struct account *a, struct guid_vec *out)
{
	out->n = 0;
	for (size_t i = 0; i < a->nmbs; i++) {
		const struct mailbox *mb = a->mbs[i];
		for (size_t k = 0; k < mb->count; k++)
			guid_push(out, mb->msgs[k].guid);
	}
	if (out->n == 0)
		return;
	qsort(out->v, out->n, sizeof(*out->v), guid_cmp);
	size_t w = 1;
	for (size_t i = 1; i < out->n; i++) {
		if (memcmp(out->v[i], out->v[w - 1], INDEX_GUID_LEN) != 0)
			memcpy(out->v[w++], out->v[i], INDEX_GUID_LEN);
	}
	out->n = w;
}

/* Per guid on the expunged list: its newest expunge and its size. */
struct trash_sum {
	uint8_t guid[INDEX_GUID_LEN];	/* first: bsearch with guid_cmp */
	int64_t newest;
	uint64_t size;
};

static int trash_sum_cmp(const void *x, const void *y)
{
	return memcmp(x, y, INDEX_GUID_LEN);
}

static struct trash_sum *trash_summary(const struct account *a, size_t *n_r)
{
	struct trash_sum *v = xmalloc(a->ntrash * sizeof(*v) + 1);
	size_t n = 0;
	for (size_t i = 0; i < a->ntrash; i++) {
		memcpy(v[i].guid, a->trash[i].guid, INDEX_GUID_LEN);
		v[i].newest = a->trash[i].time;
		v[i].size = a->trash[i].size;
	}
	if (a->ntrash > 0) {
		qsort(v, a->ntrash, sizeof(*v), trash_sum_cmp);
		n = 1;
		for (size_t i = 1; i < a->ntrash; i++) {
			if (memcmp(v[i].guid, v[n - 1].guid,
				   INDEX_GUID_LEN) != 0)
				v[n++] = v[i];
			else if (v[i].newest > v[n - 1].newest)
				v[n - 1].newest = v[i].newest;
		}
	}
	*n_r = n;
	return v;
}

static bool trash_sum_has(const struct trash_sum *v, size_t n,
			  const uint8_t *guid)
{
	return n > 0 && bsearch(guid, v, n, sizeof(*v), trash_sum_cmp) != NULL;
}

/* ---- store helpers ---- */

/* fn(name below prefix, ctx) for every key under prefix, in key order;
 * a non-zero return of fn stops the walk and is returned. */
static int list_each(struct store *st, const char *prefix,
		     int (*fn)(const char *name, void *ctx), void *ctx,
		     const char **error_r)
{
	size_t plen = strlen(prefix);
	char *after = NULL;
	int rc = 0;

	for (;;) {
		struct store_list l = { 0 };
		rc = store_list(st, prefix, after, 1000, &l, error_r);
		if (rc != 0) {
			rc = KURA_EUNAVAIL;
			break;
		}
		for (size_t i = 0; i < l.count && rc == 0; i++) {
			if (strncmp(l.keys[i], prefix, plen) == 0)
				rc = fn(l.keys[i] + plen, ctx);
		}
		free(after);
		after = l.count > 0 ? xstrdup(l.keys[l.count - 1]) : NULL;
		bool more = l.truncated && l.count > 0;
		store_list_free(&l);
		if (rc != 0 || !more)
			break;
	}
	free(after);
	return rc;
}

/* Exactly 16 hex digits, then end or '/'. */
static bool parse_seq16(const char *s, uint64_t *seq_r)
{
	uint8_t raw[8];
	if (strlen(s) < 16 || (s[16] != '\0' && s[16] != '/') ||
	    !hex_decode(s, 16, raw, sizeof(raw)))
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | raw[i];
	*seq_r = v;
	return true;
}

/* The user exists in the store (and the name is one index_account_get
 * takes): so that tools never create an account by looking at it. */
static int user_check(struct index *idx, const char *user,
		      const char **error_r)
{
	size_t n = strlen(user);
	if (n == 0 || n > INDEX_MAX_USER) {
		*error_r = "invalid user name";
		return KURA_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c < 0x20 || c == 0x7f || c == '/') {
			*error_r = "invalid user name";
			return KURA_EINVAL;
		}
	}
	char *prefix = index_user_prefix(user);
	struct store_list l = { 0 };
	int rc = store_list(idx->store, prefix, NULL, 1, &l, error_r);
	free(prefix);
	if (rc != 0)
		return KURA_EUNAVAIL;
	rc = l.count > 0 ? 0 : KURA_ENOTFOUND;
	store_list_free(&l);
	if (rc != 0)
		*error_r = errf("no user %s in the store", user);
	return rc;
}

static int account_for_tool(struct index *idx, const char *user,
			    struct account **a_r, const char **error_r)
{
	int rc = user_check(idx, user, error_r);
	if (rc == 0)
		rc = index_account_get(idx, user, a_r, error_r);
	return rc;
}

static void resolve_settings(const struct index_sweep_settings *in,
			     struct index_sweep_settings *out)
{
	if (in != NULL)
		*out = *in;
	else
		index_sweep_settings_init(out);
	if (out->now == 0)
		out->now = time_wall_sec();
	if (out->keep_snapshots == 0)
		out->keep_snapshots = 1;
	/* log/S stays: a node loaded from snapshot S proves its state by
	 * it (account_verify_head). */
	if (out->keep_entries == 0)
		out->keep_entries = 1;
}

/* Whether an object's store time is at or before limit. A time the
 * backend did not give (0) counts as young: never delete on a guess. */
static bool older_than(int64_t mtime, int64_t limit)
{
	return mtime > 0 && mtime <= limit;
}

/* ---- the sweeper: message objects ---- */

struct sweep {
	struct account *a;
	struct store *st;
	const struct index_sweep_settings *set;
	struct index_sweep_stats *stats;
};

static int collect_guid(const char *name, void *ctx)
{
	uint8_t g[INDEX_GUID_LEN];
	if (strlen(name) == INDEX_GUID_LEN * 2 &&
	    hex_decode(name, INDEX_GUID_LEN * 2, g, INDEX_GUID_LEN))
		guid_push(ctx, g);
	return 0;
}

static int delete_message(struct sweep *sw, const uint8_t *guid,
			  const char **error_r)
{
	char hex[INDEX_GUID_LEN * 2 + 1];
	hex_encode(guid, INDEX_GUID_LEN, hex);
	if (sw->set->dry_run)
		return 0;
	char *key = account_key(sw->a, "m/%s", hex);
	int rc = store_del(sw->st, key, error_r);
	free(key);
	return rc != 0 ? KURA_EUNAVAIL : 0;
}

static int sweep_messages(struct sweep *sw, const char **error_r)
{
	struct account *a = sw->a;
	const struct index_sweep_settings *set = sw->set;
	struct index_sweep_stats *st = sw->stats;
	struct guid_vec listed = { 0 }, refs = { 0 }, purge = { 0 };
	struct trash_sum *sum = NULL;
	size_t nsum = 0;
	uint64_t *purge_size = NULL;
	size_t psize_cap = 0;
	int rc;

	/* Listing first, state second: see the top of the file. */
	char *prefix = account_key(a, "m/");
	rc = list_each(sw->st, prefix, collect_guid, &listed, error_r);
	free(prefix);
	/* Key order is guid order already; bsearch must not depend on the
	 * backend getting that right. */
	if (listed.n > 0)
		qsort(listed.v, listed.n, sizeof(*listed.v), guid_cmp);
	if (rc == 0)
		rc = account_refresh(a, error_r);
	if (rc != 0)
		goto out;

	int64_t cutoff = set->now - set->retention_sec;
	referenced_guids(a, &refs);
	sum = trash_summary(a, &nsum);
	for (size_t i = 0; i < nsum; i++) {
		if (sum[i].newest <= cutoff) {
			guid_push(&purge, sum[i].guid);
			xgrow((void **)&purge_size, &psize_cap, purge.n,
			      sizeof(*purge_size));
			purge_size[purge.n - 1] = sum[i].size;
		} else if (!guid_has(&refs, sum[i].guid)) {
			st->expunged_kept++;
		}
	}
	st->records_purged = purge.n;
	if (purge.n > 0 && !set->dry_run) {
		struct index_txn *t = index_txn_begin(a);
		rc = index_txn_purge(t, (const uint8_t (*)[INDEX_GUID_LEN])
				     purge.v, purge.n, cutoff);
		if (rc >= 0)
			rc = index_txn_commit(t, error_r);
		if (rc != 0 && error_r != NULL && *error_r != NULL)
			*error_r = errf("purge: %s", *error_r);
		index_txn_free(&t);
		if (rc != 0)
			goto out;
		/* The state after our entry decides. */
		referenced_guids(a, &refs);
		free(sum);
		sum = trash_summary(a, &nsum);
	}

	bool *gone = xcalloc(listed.n + 1, sizeof(*gone));
	for (size_t i = 0; i < purge.n && rc == 0; i++) {
		const uint8_t *g = purge.v[i];
		uint8_t (*lp)[INDEX_GUID_LEN] = listed.n > 0 ?
			bsearch(g, listed.v, listed.n, sizeof(*listed.v),
				guid_cmp) : NULL;
		/* Still referenced (moved, restored), re-expunged since, or
		 * already gone. */
		if (guid_has(&refs, g) || lp == NULL ||
		    (!set->dry_run && trash_sum_has(sum, nsum, g)))
			continue;
		rc = delete_message(sw, g, error_r);
		if (rc == 0) {
			gone[lp - listed.v] = true;
			st->expunged_deleted++;
			st->bytes_freed += purge_size[i];
		}
	}
	int64_t orphan_cutoff = set->now - set->orphan_grace_sec;
	for (size_t i = 0; i < listed.n && rc == 0; i++) {
		const uint8_t *g = listed.v[i];
		if (gone[i] || guid_has(&refs, g) || trash_sum_has(sum, nsum, g))
			continue;
		char hex[INDEX_GUID_LEN * 2 + 1];
		hex_encode(g, INDEX_GUID_LEN, hex);
		char *key = account_key(a, "m/%s", hex);
		struct store_stat ss;
		rc = store_head(sw->st, key, &ss, error_r);
		free(key);
		if (rc == KURA_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc != 0) {
			rc = KURA_EUNAVAIL;
			break;
		}
		if (!older_than(ss.mtime, orphan_cutoff))
			continue;
		rc = delete_message(sw, g, error_r);
		if (rc == 0) {
			st->orphans_deleted++;
			st->bytes_freed += ss.size;
		}
	}
	free(gone);
out:
	free(listed.v);
	free(refs.v);
	free(purge.v);
	free(purge_size);
	free(sum);
	return rc;
}

/* ---- the sweeper: snapshots ---- */

struct snap_dir {
	uint64_t seq;
	bool complete;		/* its mailboxes object exists */
	bool keep;
	char **names;		/* objects below snap/<seq>/ */
	size_t n, cap;
};

struct snap_dirs {
	struct snap_dir *v;
	size_t n, cap;
};

static int collect_snap(const char *name, void *ctx)
{
	struct snap_dirs *d = ctx;
	uint64_t seq;
	if (!parse_seq16(name, &seq) || name[16] != '/' || name[17] == '\0')
		return 0;	/* "latest", or not ours */
	if (d->n == 0 || d->v[d->n - 1].seq != seq) {
		xgrow((void **)&d->v, &d->cap, d->n + 1, sizeof(*d->v));
		memset(&d->v[d->n], 0, sizeof(*d->v));
		d->v[d->n++].seq = seq;
	}
	struct snap_dir *s = &d->v[d->n - 1];
	xgrow((void **)&s->names, &s->cap, s->n + 1, sizeof(*s->names));
	s->names[s->n++] = xstrdup(name + 17);
	if (strcmp(name + 17, "mailboxes") == 0)
		s->complete = true;
	return 0;
}

static void snap_dirs_free(struct snap_dirs *d)
{
	for (size_t i = 0; i < d->n; i++) {
		for (size_t k = 0; k < d->v[i].n; k++)
			free(d->v[i].names[k]);
		free(d->v[i].names);
	}
	free(d->v);
}

static char *snap_key(struct account *a, uint64_t seq, const char *name)
{
	return account_key(a, "snap/%016llx/%s", (unsigned long long)seq,
			   name);
}

/* Whether snapshot seq loads completely, on a side copy of the account. */
static int snap_loads(struct account *a, uint64_t seq, const char **error_r)
{
	struct account *s = index_account_scratch(a->idx, a->user);
	int rc = index_snap_load(s, seq, error_r);
	index_account_scratch_free(&s);
	return rc;
}

/* Whether an object of the directory is younger than the log grace (for
 * a complete snapshot its mailboxes object, written last, tells). */
static int snap_is_young(struct sweep *sw, const struct snap_dir *d,
			 bool *young_r, const char **error_r)
{
	int64_t limit = sw->set->now - sw->set->log_grace_sec;
	*young_r = false;
	for (size_t i = 0; i < d->n && !*young_r; i++) {
		if (d->complete && strcmp(d->names[i], "mailboxes") != 0)
			continue;
		struct store_stat ss;
		char *key = snap_key(sw->a, d->seq, d->names[i]);
		int rc = store_head(sw->st, key, &ss, error_r);
		free(key);
		if (rc == KURA_ENOTFOUND)
			continue;
		if (rc != 0)
			return KURA_EUNAVAIL;
		*young_r = !older_than(ss.mtime, limit);
	}
	return 0;
}

struct str_vec {
	char **v;
	size_t n, cap;
};

static void str_push(struct str_vec *s, char *str)
{
	xgrow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = str;
}

static int str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Adds "<R:016x>/mbox/<id>" and "<E:016x>/expunged" for every object the
 * mailboxes object of snapshot seq references. */
static int snap_refs(struct sweep *sw, uint64_t seq, struct str_vec *refs,
		     const char **error_r)
{
	struct buf b;
	char name[64];
	buf_init(&b, INDEX_OBJECT_MAX);
	char *key = snap_key(sw->a, seq, "mailboxes");
	int rc = store_get(sw->st, key, 0, STORE_LEN_ALL, &b, error_r);
	free(key);
	if (rc != 0) {
		buf_deinit(&b);
		return rc == KURA_ENOTFOUND || rc == KURA_ETOOBIG ?
		       KURA_ECORRUPT : KURA_EUNAVAIL;
	}
	json_t *j = json_loadb(buf_chars(&b), buf_used(&b), 0, NULL), *v;
	json_t *mbs = json_object_get(j, "mailboxes");
	size_t i;
	buf_deinit(&b);
	rc = json_is_array(mbs) ? 0 : KURA_ECORRUPT;
	json_array_foreach(mbs, i, v) {
		uint64_t id, ref;
		if (!j_u64(v, "id", &id) || !j_u64(v, "snap", &ref)) {
			rc = KURA_ECORRUPT;
			break;
		}
		snprintf(name, sizeof(name), "%016llx/mbox/%llu",
			 (unsigned long long)ref, (unsigned long long)id);
		str_push(refs, xstrdup(name));
	}
	uint64_t e;
	if (j_u64(j, "expunged_snap", &e) && e != 0) {
		snprintf(name, sizeof(name), "%016llx/expunged",
			 (unsigned long long)e);
		str_push(refs, xstrdup(name));
	}
	json_decref(j);
	if (rc != 0)
		*error_r = errf("snapshot %llu: mailboxes object is malformed",
				(unsigned long long)seq);
	return rc;
}

/* Decides which snapshots stay; *s_r: the newest that loads (0: none,
 * then everything stays). */
static int snap_choose(struct sweep *sw, struct snap_dirs *d, uint64_t *s_r,
		       const char **error_r)
{
	unsigned kept = 0, attempts = 0;
	uint64_t s = 0;
	int rc;

	*s_r = 0;
	for (size_t i = d->n; i-- > 0;) {
		struct snap_dir *dir = &d->v[i];
		if (s == 0) {
			/* Everything from the newest that loads up stays. */
			dir->keep = true;
			if (!dir->complete || attempts >= 3)
				continue;
			attempts++;
			rc = snap_loads(sw->a, dir->seq, error_r);
			if (rc == 0) {
				s = dir->seq;
				kept = 1;
			} else if (rc == KURA_ENOTFOUND || rc == KURA_ECORRUPT) {
				log_warn("event=sweep_snapshot_unusable user=%s "
					 "seq=%llu error=\"%s\"", sw->a->user,
					 (unsigned long long)dir->seq,
					 *error_r != NULL ? *error_r : "");
			} else {
				return rc;
			}
			continue;
		}
		if (dir->complete && kept < sw->set->keep_snapshots) {
			dir->keep = true;
			kept++;
			continue;
		}
		rc = snap_is_young(sw, dir, &dir->keep, error_r);
		if (rc != 0)
			return rc;
	}
	*s_r = s;
	return 0;
}

static int sweep_snapshots(struct sweep *sw, uint64_t *s_r,
			   const char **error_r)
{
	struct account *a = sw->a;
	struct snap_dirs d = { 0 };
	struct str_vec refs = { 0 };
	uint64_t s = 0, hint = 0;

	*s_r = 0;
	char *prefix = account_key(a, "snap/");
	int rc = list_each(sw->st, prefix, collect_snap, &d, error_r);
	free(prefix);
	if (rc == 0)
		rc = snap_choose(sw, &d, &s, error_r);
	if (rc != 0 || s == 0)
		goto out;
	sw->stats->snapshot_seq = s;
	*s_r = s;

	for (size_t i = 0; i < d.n && rc == 0; i++) {
		if (d.v[i].keep && d.v[i].complete)
			rc = snap_refs(sw, d.v[i].seq, &refs, error_r);
	}
	if (rc == KURA_ECORRUPT) {
		/* Not knowing what a kept snapshot needs: delete no
		 * snapshot object; the log may still go (S loads). */
		log_warn("event=sweep_snapshots_skipped user=%s error=\"%s\"",
			 a->user, *error_r);
		rc = 0;
		goto out;
	}
	if (rc != 0)
		goto out;
	if (refs.n > 0)
		qsort(refs.v, refs.n, sizeof(*refs.v), str_cmp);

	/* Readers that miss swept entries find the snapshot by the hint. */
	rc = index_snap_read_hint(a, &hint, error_r);
	if (rc == 0 && hint < s && !sw->set->dry_run) {
		char val[64];
		int n = snprintf(val, sizeof(val), "{\"v\":%d,\"seq\":%llu}\n",
				 INDEX_FORMAT_VERSION, (unsigned long long)s);
		char *key = account_key(a, "snap/latest");
		rc = store_put(sw->st, key, val, (size_t)n, STORE_PUT_NONE,
			       NULL, error_r);
		free(key);
		if (rc != 0)
			rc = KURA_EUNAVAIL;
	}

	for (size_t i = 0; i < d.n && rc == 0; i++) {
		struct snap_dir *dir = &d.v[i];
		if (dir->keep)
			continue;
		bool any = false;
		/* The mailboxes object first: a half-deleted snapshot is
		 * then an incomplete one nobody starts to load. */
		for (int pass = 0; pass < 2 && rc == 0; pass++) {
			for (size_t k = 0; k < dir->n && rc == 0; k++) {
				bool list = strcmp(dir->names[k],
						   "mailboxes") == 0;
				if (list != (pass == 0))
					continue;
				char rel[STORE_KEY_MAX + 32];
				snprintf(rel, sizeof(rel), "%016llx/%s",
					 (unsigned long long)dir->seq,
					 dir->names[k]);
				char *rp = rel;
				if (refs.n > 0 &&
				    bsearch(&rp, refs.v, refs.n, sizeof(*refs.v),
					    str_cmp) != NULL)
					continue;
				if (!sw->set->dry_run) {
					char *key = snap_key(a, dir->seq,
							     dir->names[k]);
					rc = store_del(sw->st, key, error_r);
					free(key);
					if (rc != 0) {
						rc = KURA_EUNAVAIL;
						break;
					}
				}
				sw->stats->snap_objects_deleted++;
				any = true;
			}
		}
		if (any)
			sw->stats->snapshots_deleted++;
	}
out:
	for (size_t i = 0; i < refs.n; i++)
		free(refs.v[i]);
	free(refs.v);
	snap_dirs_free(&d);
	return rc;
}

/* ---- the sweeper: log entries ---- */

struct seq_vec {
	uint64_t *v;
	size_t n, cap;
	uint64_t max;		/* only seqs <= max */
};

static int collect_log(const char *name, void *ctx)
{
	struct seq_vec *s = ctx;
	uint64_t seq;
	if (!parse_seq16(name, &seq) || name[16] != '\0' || seq > s->max)
		return 0;
	xgrow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = seq;
	return 0;
}

static int sweep_log(struct sweep *sw, uint64_t s, const char **error_r)
{
	struct account *a = sw->a;
	struct seq_vec seqs = { 0 };
	int rc;

	if (s <= sw->set->keep_entries)
		return 0;
	seqs.max = s - sw->set->keep_entries;
	char *prefix = account_key(a, "log/");
	rc = list_each(sw->st, prefix, collect_log, &seqs, error_r);
	free(prefix);

	/* Entries are written in seq order, so their ages fall with the
	 * seq: find the first one younger than the grace. */
	int64_t limit = sw->set->now - sw->set->log_grace_sec;
	size_t lo = 0, hi = seqs.n;
	while (rc == 0 && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct store_stat ss;
		char *key = account_key(a, "log/%016llx",
					(unsigned long long)seqs.v[mid]);
		rc = store_head(sw->st, key, &ss, error_r);
		free(key);
		if (rc == KURA_ENOTFOUND ||
		    (rc == 0 && older_than(ss.mtime, limit))) {
			rc = 0;
			lo = mid + 1;
		} else if (rc == 0) {
			hi = mid;
		} else {
			rc = KURA_EUNAVAIL;
		}
	}
	/* Ascending, stopping at the first failure: while log/N exists no
	 * entry above N is gone (account_verify_head relies on it). */
	for (size_t i = 0; i < lo && rc == 0; i++) {
		if (!sw->set->dry_run) {
			char *key = account_key(a, "log/%016llx",
						(unsigned long long)seqs.v[i]);
			rc = store_del(sw->st, key, error_r);
			free(key);
			if (rc != 0) {
				rc = KURA_EUNAVAIL;
				break;
			}
		}
		sw->stats->log_deleted++;
	}
	free(seqs.v);
	return rc;
}

int index_sweep_user(struct index *idx, const char *user,
		     const struct index_sweep_settings *set,
		     struct index_sweep_stats *st, const char **error_r)
{
	struct index_sweep_settings s;
	struct account *a = NULL;
	const char *err = NULL;
	uint64_t snap = 0;
	uint64_t t0 = time_mono_usec();

	memset(st, 0, sizeof(*st));
	resolve_settings(set, &s);
	int rc = account_for_tool(idx, user, &a, &err);
	if (rc == 0) {
		struct sweep sw = { a, idx->store, &s, st };
		rc = sweep_messages(&sw, &err);
		if (rc == 0)
			rc = sweep_snapshots(&sw, &snap, &err);
		if (rc == 0 && snap != 0)
			rc = sweep_log(&sw, snap, &err);
	}
	index_account_unref(&a);
	if (rc != 0) {
		if (err == NULL)
			err = kura_strerror(rc);
		log_warn("event=sweep_failed user=%s error=\"%s\"", user, err);
		if (error_r != NULL)
			*error_r = err;
		return rc;
	}
	log_info("event=sweep user=%s dry_run=%d log=%llu snapshots=%llu "
		 "snap_objects=%llu expunged=%llu expunged_kept=%llu "
		 "purged=%llu orphans=%llu bytes=%llu usec=%llu", user,
		 s.dry_run ? 1 : 0, (unsigned long long)st->log_deleted,
		 (unsigned long long)st->snapshots_deleted,
		 (unsigned long long)st->snap_objects_deleted,
		 (unsigned long long)st->expunged_deleted,
		 (unsigned long long)st->expunged_kept,
		 (unsigned long long)st->records_purged,
		 (unsigned long long)st->orphans_deleted,
		 (unsigned long long)st->bytes_freed,
		 (unsigned long long)(time_mono_usec() - t0));
	return 0;
}

/* ---- users ---- */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 :
	       c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The user whose prefix key starts with ("u/<h>/<esc>/"), or NULL; *plen_r
 * gets the prefix length. */
static char *user_of_key(const char *key, size_t *plen_r)
{
	const char *esc = key + 5, *slash;
	if (strncmp(key, "u/", 2) != 0 || strlen(key) < 6 || key[4] != '/' ||
	    (slash = strchr(esc, '/')) == NULL || slash == esc ||
	    (size_t)(slash - esc) > INDEX_MAX_USER * 3)
		return NULL;
	*plen_r = (size_t)(slash + 1 - key);
	char *user = xmalloc((size_t)(slash - esc) + 1);
	size_t o = 0;
	for (const char *p = esc; p < slash; p++) {
		if (*p == '%' && slash - p >= 3 && hexval(p[1]) >= 0 &&
		    hexval(p[2]) >= 0) {
			user[o++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		} else {
			user[o++] = *p;
		}
	}
	user[o] = '\0';
	/* Only a name that maps back to exactly this prefix. */
	char *prefix = index_user_prefix(user);
	bool ok = o > 0 && strlen(user) == o &&
		  strlen(prefix) == *plen_r &&
		  strncmp(prefix, key, *plen_r) == 0;
	free(prefix);
	if (!ok) {
		free(user);
		return NULL;
	}
	return user;
}

int index_users_list(struct index *idx, char ***users_r, size_t *count_r,
		     const char **error_r)
{
	char **users = NULL;
	size_t n = 0, cap = 0;
	char *after = NULL;
	int rc = 0;

	for (;;) {
		struct store_list l = { 0 };
		rc = store_list(idx->store, "u/", after, 1, &l, error_r);
		if (rc != 0) {
			rc = KURA_EUNAVAIL;
			break;
		}
		if (l.count == 0) {
			store_list_free(&l);
			break;
		}
		size_t plen = 0;
		char *user = user_of_key(l.keys[0], &plen);
		free(after);
		if (user == NULL) {
			/* Not an account's key: step over it alone. */
			after = xstrdup(l.keys[0]);
		} else {
			xgrow((void **)&users, &cap, n + 1, sizeof(*users));
			users[n++] = user;
			/* Past every key of this user: all our names under
			 * the prefix sort below '~'. */
			after = xmalloc(plen + 9);
			memcpy(after, l.keys[0], plen);
			memcpy(after + plen, "~~~~~~~~", 9);
		}
		store_list_free(&l);
	}
	free(after);
	if (rc != 0) {
		index_users_free(users, n);
		return rc;
	}
	*users_r = users;
	*count_r = n;
	return 0;
}

void index_users_free(char **users, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(users[i]);
	free(users);
}

/* ---- listing and restoring expunged messages ---- */

int index_expunged_list(struct index *idx, const char *user,
			const struct index_sweep_settings *set,
			struct index_expunged_msg **list_r, size_t *count_r,
			const char **error_r)
{
	struct index_sweep_settings s;
	struct account *a = NULL;
	struct guid_vec refs = { 0 };
	const char *err = NULL;

	*list_r = NULL;
	*count_r = 0;
	resolve_settings(set, &s);
	int rc = account_for_tool(idx, user, &a, &err);
	if (rc != 0) {
		if (error_r != NULL)
			*error_r = err;
		return rc;
	}
	referenced_guids(a, &refs);
	size_t nsum;
	struct trash_sum *sum = trash_summary(a, &nsum);
	bool *listed = xcalloc(nsum + 1, sizeof(*listed));
	struct index_expunged_msg *v = xcalloc(a->ntrash + 1, sizeof(*v));
	size_t n = 0;
	/* One line per message: its newest record (a MOVE then a DELETE
	 * of the target leave two). Newest first, reversed below. */
	for (size_t i = a->ntrash; i-- > 0;) {
		const struct index_trash *t = &a->trash[i];
		struct trash_sum *ts = bsearch(t->guid, sum, nsum, sizeof(*sum),
					       trash_sum_cmp);
		if (t->time <= s.now - s.retention_sec ||
		    guid_has(&refs, t->guid) || ts == NULL ||
		    listed[ts - sum] || t->time != ts->newest)
			continue;
		listed[ts - sum] = true;
		struct index_expunged_msg *e = &v[n++];
		memcpy(e->guid, t->guid, INDEX_GUID_LEN);
		e->mailbox = xstrdup(t->mailbox != NULL ? t->mailbox : "");
		e->mailbox_id = t->mbid;
		e->uid = t->uid;
		e->flags = t->flags;
		e->size = t->size;
		e->internaldate = t->internaldate;
		e->expunged = t->time;
		e->subject = t->subject != NULL ? xstrdup(t->subject) : NULL;
	}
	for (size_t i = 0; i < n / 2; i++) {
		struct index_expunged_msg tmp = v[i];
		v[i] = v[n - 1 - i];
		v[n - 1 - i] = tmp;
	}
	free(listed);
	free(sum);
	free(refs.v);
	index_account_unref(&a);
	*list_r = v;
	*count_r = n;
	return 0;
}

void index_expunged_list_free(struct index_expunged_msg *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(list[i].mailbox);
		free(list[i].subject);
	}
	free(list);
}

/* The restore target: the mailbox named, or the one the message came
 * from (by id, then by its old name, recreated when deleted). Returns
 * its id or 0 with *rc_r. */
static uint64_t restore_target(struct account *a, const char *mailbox,
			       const struct index_trash *rec, int *rc_r,
			       const char **error_r)
{
	struct mailbox *mb;
	*rc_r = 0;
	if (mailbox != NULL) {
		mb = account_mailbox_find(a, kstr_cstr(mailbox));
		if (mb == NULL) {
			*rc_r = KURA_ENOTFOUND;
			*error_r = errf("mailbox %s does not exist", mailbox);
			return 0;
		}
		return mb->id;
	}
	mb = account_mailbox_by_id(a, rec->mbid);
	if (mb == NULL)
		mb = account_mailbox_find(a, kstr_cstr(rec->mailbox));
	if (mb != NULL)
		return mb->id;
	struct index_txn *t = index_txn_begin(a);
	const char *err = NULL;
	int rc = index_txn_create_mailbox(t, kstr_cstr(rec->mailbox), 0);
	if (rc >= 0)
		rc = index_txn_commit(t, &err);
	/* Created meanwhile by someone else: as good. */
	if (rc != 0 && rc != KURA_EEXISTS) {
		*rc_r = rc;
		*error_r = errf("cannot recreate mailbox %s: %s", rec->mailbox,
				err != NULL ? err : kura_strerror(rc));
	}
	index_txn_free(&t);
	if (*rc_r != 0)
		return 0;
	mb = account_mailbox_find(a, kstr_cstr(rec->mailbox));
	if (mb == NULL) {
		*rc_r = KURA_ENOTFOUND;
		*error_r = errf("mailbox %s vanished", rec->mailbox);
		return 0;
	}
	return mb->id;
}

/* Copies the newest record of guid (strings duplicated). */
static bool trash_rec_copy(const struct account *a, const uint8_t *guid,
			   struct index_trash *out)
{
	ssize_t i = index_trash_find(a, guid);
	if (i < 0)
		return false;
	*out = a->trash[i];
	out->mailbox = xstrdup(out->mailbox != NULL ? out->mailbox : "INBOX");
	out->keywords = out->keywords != NULL ? xstrdup(out->keywords) : NULL;
	out->subject = NULL;
	return true;
}

int index_expunged_restore(struct index *idx, const char *user,
			   const uint8_t guid[INDEX_GUID_LEN],
			   const char *mailbox, uint32_t *uidvalidity_r,
			   uint32_t *uid_r, const char **error_r)
{
	struct account *a = NULL;
	struct index_trash rec;
	struct mime_info info;
	struct buf body;
	const char *err = NULL;
	struct kstr kw[INDEX_MAX_KEYWORDS];
	size_t nkw = 0;
	bool have_rec = false, have_info = false;
	int rc;

	memset(&rec, 0, sizeof(rec));
	memset(&info, 0, sizeof(info));
	buf_init(&body, idx->set.max_message_size != 0 ?
		 idx->set.max_message_size : INDEX_OBJECT_MAX);
	rc = account_for_tool(idx, user, &a, &err);
	if (rc != 0)
		goto out;
	have_rec = trash_rec_copy(a, guid, &rec);
	if (!have_rec) {
		rc = KURA_ENOTFOUND;
		err = "no such message on the expunged list (swept, or "
		      "never expunged)";
		goto out;
	}
	rc = index_message_get(a, guid, 0, UINT64_MAX, &body, &err);
	if (rc == KURA_ENOTFOUND)
		err = "the message object is gone from the store";
	if (rc != 0)
		goto out;
	/* The cached fields are not on the list: parse them again, as at
	 * APPEND. */
	mime_parse(body.data != NULL ? buf_head(&body) : (const uint8_t *)"",
		   buf_used(&body), &info);
	have_info = true;

	uint64_t mbid = restore_target(a, mailbox, &rec, &rc, &err);
	if (rc != 0)
		goto out;
	for (char *p = rec.keywords; p != NULL && *p != '\0' &&
	     nkw < INDEX_MAX_KEYWORDS;) {
		char *sp = strchr(p, ' ');
		size_t len = sp != NULL ? (size_t)(sp - p) : strlen(p);
		if (len > 0)
			kw[nkw++] = kstr_make(p, len);
		p += len + (sp != NULL ? 1 : 0);
	}
	struct msg_meta meta = {
		0, info.envelope, info.bodystructure, info.body,
		info.sent_date, info.sent_tz_min, info.header_size,
	};
	struct index_append app = {
		.size = buf_used(&body),
		.internaldate = rec.internaldate >= 0 ? rec.internaldate : 0,
		.idate_tz_min = rec.idate_tz_min,
		.flags = rec.flags & ~(uint32_t)MSG_DELETED,
		.keywords = nkw > 0 ? kw : NULL,
		.nkeywords = nkw,
		.meta = &meta,
	};
	memcpy(app.guid, guid, INDEX_GUID_LEN);
	struct index_txn *t = index_txn_begin(a);
	int op = index_txn_restore(t, mbid, &app);
	rc = op < 0 ? op : index_txn_commit(t, &err);
	if (rc == 0) {
		const struct index_op_result *r = index_txn_result(t, op);
		if (uidvalidity_r != NULL)
			*uidvalidity_r = r->uidvalidity;
		if (uid_r != NULL)
			*uid_r = r->nuids == 1 ? r->uids[0] : 0;
		char hex[INDEX_GUID_LEN * 2 + 1];
		hex_encode(guid, INDEX_GUID_LEN, hex);
		log_info("event=expunged_restore user=%s guid=%s mailbox_id=%llu "
			 "uid=%u", user, hex, (unsigned long long)mbid,
			 r->nuids == 1 ? r->uids[0] : 0);
	} else if (err != NULL) {
		err = errf("%s", err);	/* outlives the transaction */
	}
	index_txn_free(&t);
out:
	if (have_info)
		mime_info_free(&info);
	if (have_rec)
		index_trash_rec_free(&rec);
	buf_deinit(&body);
	index_account_unref(&a);
	if (rc != 0 && error_r != NULL)
		*error_r = err != NULL ? err : kura_strerror(rc);
	return rc;
}
