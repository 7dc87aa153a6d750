/* Snapshots: the account state as of one log seq S, split so that a
 * reader fetches objects in proportion to what changed.
 *
 *   snap/<S:016x>/mailboxes   the account-level object:
 *     {"v":1,"seq":S,"modseq":M,"next_id":I,"last_uidvalidity":U,
 *      "subs":[names],
 *      "mailboxes":[{"id":I,"name":N,"uidvalidity":U,"special":B,
 *                    "uidnext":U,"highestmodseq":M,"count":C,"size":Z,
 *                    "snap":R}, ...][,"expunged_snap":E]}
 *     "snap" is the seq of the snapshot holding the mailbox's object:
 *     a mailbox unchanged since snapshot R is referenced, not rewritten.
 *     "expunged_snap" (absent or 0: the list is empty) likewise names
 *     the snapshot holding the expunged list (lazy expunge).
 *   snap/<R:016x>/mbox/<id>   one mailbox:
 *     {"v":1,"id":I,"seq":R,"uidnext":U,"highestmodseq":M,
 *      "keywords":[names],
 *      "msgs":[[uid,"guid",size,idate,tz,flags,kwbits,modseq,
 *               env,bs,body,sent,stz,hsize], ...],
 *      "expunged":[uid,modseq,uid,modseq,...]}
 *   snap/<E:016x>/expunged    the expunged list, format in index_sweep.c
 *   snap/latest               {"v":1,"seq":S}: a hint, overwritten,
 *                             never trusted without reading the snapshot.
 *
 * Snapshot objects are written create-only (two nodes writing the same
 * snapshot write the same state; the first wins) in the order mailbox
 * objects, mailboxes object, hint: a mailboxes object that exists names
 * only objects that exist. They are immutable, so the cache keeps them.
 *
 * Old snapshots and log entries are deleted by the sweeper
 * (index_sweep.c), which keeps every snapshot object a kept snapshot
 * references, and deletes log entries <= S only once snapshot S loads,
 * the hint is >= S, and a grace period far longer than
 * INDEX_HINT_CHECK_SEC has passed (a node that finds log/N+1 missing
 * checks the hint and reloads from the snapshot; a node about to commit
 * checks that its head entry still exists, account_verify_head). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "index/index_int.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"

static void json_buf_u64(struct buf *b, uint64_t v)
{
	char tmp[24];
	size_t n = sizeof(tmp);
	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	buf_append(b, tmp + n, sizeof(tmp) - n);
}

static void json_buf_i64(struct buf *b, int64_t v)
{
	if (v < 0) {
		buf_append(b, "-", 1);
		json_buf_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		json_buf_u64(b, (uint64_t)v);
	}
}

static void json_buf_sep(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

char *index_snap_mbox_json(const struct account *a, const struct mailbox *mb,
		     uint64_t seq, size_t *len_r)
{
	struct buf b;
	char guid[INDEX_GUID_LEN * 2 + 1];
	(void)a;

	buf_init(&b, 0);
	/* Roughly the final size, to avoid regrowing a large buffer. */
	size_t guess = 256 + mb->nexpunged * 24;
	for (size_t i = 0; i < mb->count; i++) {
		const struct msg_meta *mt = mb->msgs[i].meta;
		guess += 160;
		if (mt != NULL)
			guess += (mt->envelope ? strlen(mt->envelope) : 0) +
				 (mt->bodystructure ? strlen(mt->bodystructure) : 0) +
				 (mt->body ? strlen(mt->body) : 0);
	}
	buf_reserve(&b, guess + guess / 8);
	buf_printf(&b, "{\"v\":%d,\"id\":%llu,\"seq\":%llu,\"uidnext\":%u,"
		   "\"highestmodseq\":%llu,\"keywords\":[",
		   INDEX_FORMAT_VERSION, (unsigned long long)mb->id,
		   (unsigned long long)seq, mb->uidnext,
		   (unsigned long long)mb->highestmodseq);
	for (unsigned i = 0; i < mb->nkeywords; i++) {
		if (i > 0)
			json_buf_sep(&b, ',');
		index_json_buf_bytes(&b, mb->keywords[i]);
	}
	buf_append_str(&b, "],\"msgs\":[");
	for (size_t i = 0; i < mb->count; i++) {
		const struct index_msg *m = &mb->msgs[i];
		const struct msg_meta *mt = m->meta;
		hex_encode(m->guid, INDEX_GUID_LEN, guid);
		buf_append_str(&b, i > 0 ? ",\n[" : "[");
		json_buf_u64(&b, m->uid);
		buf_append(&b, ",\"", 2);
		buf_append(&b, guid, INDEX_GUID_LEN * 2);
		buf_append(&b, "\",", 2);
		json_buf_u64(&b, m->size);
		json_buf_sep(&b, ',');
		json_buf_i64(&b, m->internaldate);
		json_buf_sep(&b, ',');
		json_buf_i64(&b, m->idate_tz_min);
		json_buf_sep(&b, ',');
		json_buf_u64(&b, m->flags);
		json_buf_sep(&b, ',');
		/* All 64 bits, as a signed JSON integer. */
		json_buf_i64(&b, (int64_t)m->keywords);
		json_buf_sep(&b, ',');
		json_buf_u64(&b, m->modseq);
		json_buf_sep(&b, ',');
		index_json_buf_bytes(&b, mt != NULL ? mt->envelope : NULL);
		json_buf_sep(&b, ',');
		index_json_buf_bytes(&b, mt != NULL ? mt->bodystructure : NULL);
		json_buf_sep(&b, ',');
		index_json_buf_bytes(&b, mt != NULL ? mt->body : NULL);
		json_buf_sep(&b, ',');
		json_buf_i64(&b, mt != NULL ? mt->sent_date : -1);
		json_buf_sep(&b, ',');
		json_buf_i64(&b, mt != NULL ? mt->sent_tz_min : 0);
		json_buf_sep(&b, ',');
		json_buf_u64(&b, mt != NULL ? mt->header_size : 0);
		json_buf_sep(&b, ']');
	}
	buf_append_str(&b, "],\"expunged\":[");
	for (size_t i = 0; i < mb->nexpunged; i++) {
		if (i > 0)
			json_buf_sep(&b, ',');
		json_buf_u64(&b, mb->expunged[i].uid);
		json_buf_sep(&b, ',');
		json_buf_u64(&b, mb->expunged[i].modseq);
	}
	buf_append_str(&b, "]}\n");
	*len_r = buf_used(&b);
	return (char *)b.data;
}

/* refs[i]: snapshot seq holding mbs[i]'s object. */
static char *snap_mailboxes_json(const struct account *a, uint64_t seq,
				 const uint64_t *refs, uint64_t trash_ref,
				 size_t *len_r)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "{\"v\":%d,\"seq\":%llu,\"modseq\":%llu,"
		   "\"next_id\":%llu,\"last_uidvalidity\":%u,\"subs\":[",
		   INDEX_FORMAT_VERSION, (unsigned long long)seq,
		   (unsigned long long)a->modseq,
		   (unsigned long long)a->next_mailbox_id,
		   a->last_uidvalidity);
	for (size_t i = 0; i < a->nsubs; i++) {
		if (i > 0)
			buf_append(&b, ",", 1);
		index_json_buf_bytes(&b, a->subs[i]);
	}
	buf_append_str(&b, "],\"mailboxes\":[");
	for (size_t i = 0; i < a->nmbs; i++) {
		const struct mailbox *mb = a->mbs[i];
		buf_printf(&b, "%s{\"id\":%llu,\"name\":", i > 0 ? ",\n" : "",
			   (unsigned long long)mb->id);
		index_json_buf_bytes(&b, mb->name);
		buf_printf(&b, ",\"uidvalidity\":%u,\"special\":%u,"
			   "\"uidnext\":%u,\"highestmodseq\":%llu,"
			   "\"count\":%zu,\"size\":%llu,\"snap\":%llu}",
			   mb->uidvalidity, mb->special_use, mb->uidnext,
			   (unsigned long long)mb->highestmodseq, mb->count,
			   (unsigned long long)mb->total_size,
			   (unsigned long long)refs[i]);
	}
	buf_append_str(&b, "]");
	if (trash_ref != 0)
		buf_printf(&b, ",\"expunged_snap\":%llu",
			   (unsigned long long)trash_ref);
	buf_append_str(&b, "}\n");
	*len_r = buf_used(&b);
	return (char *)b.data;
}

/* ---- writing ---- */

struct snap_blob {
	char *key;
	char *data;
	size_t len;
	uint64_t mbid;		/* mailbox object of this mailbox, or 0 */
	bool trash;		/* the expunged list */
};

struct snap_job {
	struct account *a;
	uint64_t seq;
	struct snap_blob *blobs;
	size_t n;
};

static void snap_job_free(struct snap_job *job)
{
	for (size_t i = 0; i < job->n; i++) {
		free(job->blobs[i].key);
		free(job->blobs[i].data);
	}
	free(job->blobs);
	free(job);
}

static void snap_job_run(struct snap_job *job)
{
	struct account *a = job->a;
	struct store *st = a->idx->store;
	const char *err = NULL;
	uint64_t t0 = time_mono_usec();
	int rc = 0;
	size_t bytes = 0;

	for (size_t i = 0; i < job->n && rc == 0; i++) {
		struct snap_blob *bl = &job->blobs[i];
		rc = store_put(st, bl->key, bl->data, bl->len,
			       STORE_PUT_CREATE_ONLY, NULL, &err);
		/* Someone wrote this snapshot already: same state. */
		if (rc == KURA_ECONFLICT)
			rc = 0;
		if (rc == 0 && a->idx->cache != NULL)
			cache_put(a->idx->cache, bl->key, bl->data, bl->len);
		bytes += bl->len;
	}
	if (rc == 0) {
		char hint[64];
		int n = snprintf(hint, sizeof(hint), "{\"v\":%d,\"seq\":%llu}\n",
				 INDEX_FORMAT_VERSION,
				 (unsigned long long)job->seq);
		char *key = account_key(a, "snap/latest");
		rc = store_put(st, key, hint, (size_t)n, STORE_PUT_NONE, NULL,
			       &err);
		free(key);
	}
	if (rc != 0) {
		log_warn("event=snapshot_failed user=%s seq=%llu error=\"%s\"",
			 a->user, (unsigned long long)job->seq,
			 err != NULL ? err : kura_strerror(rc));
	} else {
		for (size_t i = 0; i < job->n; i++) {
			if (job->blobs[i].trash &&
			    a->trash_last_change <= job->seq &&
			    a->trash_snap_ref < job->seq)
				a->trash_snap_ref = job->seq;
			if (job->blobs[i].mbid == 0)
				continue;
			struct mailbox *mb =
				account_mailbox_by_id(a, job->blobs[i].mbid);
			if (mb != NULL &&
			    mbox_priv(mb)->last_change <= job->seq &&
			    mbox_priv(mb)->snap_ref < job->seq)
				mbox_priv(mb)->snap_ref = job->seq;
		}
		if (job->seq > a->snap_good)
			a->snap_good = job->seq;
		log_info("event=snapshot user=%s seq=%llu objects=%zu bytes=%zu "
			 "usec=%llu", a->user, (unsigned long long)job->seq,
			 job->n, bytes,
			 (unsigned long long)(time_mono_usec() - t0));
	}
	a->snap_running = false;
	index_account_unref(&job->a);
	snap_job_free(job);
}

static void snap_task(void *arg)
{
	snap_job_run(arg);
}

/* The expunged list: referenced when unchanged since the snapshot
 * holding it, else a new blob. Returns the seq to reference (0: empty
 * list, no object). */
static uint64_t snap_trash_blob(struct account *a, struct snap_job *job,
				size_t *cap)
{
	if (a->ntrash == 0)
		return 0;
	if (a->trash_snap_ref != 0 && a->trash_last_change <= a->trash_snap_ref)
		return a->trash_snap_ref;
	xgrow((void **)&job->blobs, cap, job->n + 1, sizeof(*job->blobs));
	struct snap_blob *bl = &job->blobs[job->n++];
	memset(bl, 0, sizeof(*bl));
	bl->key = account_key(a, "snap/%016llx/expunged",
			      (unsigned long long)job->seq);
	bl->data = index_trash_json(a, job->seq, &bl->len);
	bl->trash = true;
	return job->seq;
}

void index_snap_maybe_start(struct account *a)
{
	uint64_t every = a->idx->set.snapshot_every;
	if (a->snap_running || a->seq == 0 || a->seq < a->snap_seq + every)
		return;

	struct snap_job *job = xcalloc(1, sizeof(*job));
	uint64_t *refs = xcalloc(a->nmbs + 1, sizeof(*refs));
	size_t cap = 0;
	job->seq = a->seq;
	for (size_t i = 0; i < a->nmbs; i++) {
		struct mailbox *mb = a->mbs[i];
		struct mbox_priv *p = mbox_priv(mb);
		if (p->snap_ref != 0 && p->last_change <= p->snap_ref) {
			refs[i] = p->snap_ref;
			continue;
		}
		refs[i] = job->seq;
		xgrow((void **)&job->blobs, &cap, job->n + 1,
		      sizeof(*job->blobs));
		struct snap_blob *bl = &job->blobs[job->n++];
		bl->key = account_key(a, "snap/%016llx/mbox/%llu",
				      (unsigned long long)job->seq,
				      (unsigned long long)mb->id);
		bl->data = index_snap_mbox_json(a, mb, job->seq, &bl->len);
		bl->mbid = mb->id;
		bl->trash = false;
	}
	uint64_t trash_ref = snap_trash_blob(a, job, &cap);
	xgrow((void **)&job->blobs, &cap, job->n + 1, sizeof(*job->blobs));
	struct snap_blob *bl = &job->blobs[job->n++];
	bl->key = account_key(a, "snap/%016llx/mailboxes",
			      (unsigned long long)job->seq);
	bl->data = snap_mailboxes_json(a, job->seq, refs, trash_ref, &bl->len);
	bl->mbid = 0;
	bl->trash = false;
	free(refs);

	/* Not retried before another snapshot_every entries, even if it
	 * fails: the log stays the truth. */
	a->snap_seq = job->seq;
	a->snap_running = true;
	a->refs++;
	job->a = a;
	struct loop *l = loop_current();
	if (task_current() != NULL && l != NULL)
		task_spawn(l, snap_task, job);
	else
		snap_job_run(job);
}

/* ---- reading ---- */

static bool j_u64(json_t *o, const char *k, uint64_t *v_r)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*v_r = (uint64_t)json_integer_value(v);
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

static json_t *parse(const struct buf *b, const char **error_r)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf_chars(b), buf_used(b), 0,
			       &jerr);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		*error_r = "snapshot object is not valid JSON";
		return NULL;
	}
	uint64_t v;
	if (!j_u64(j, "v", &v) || v != INDEX_FORMAT_VERSION) {
		json_decref(j);
		*error_r = "snapshot object has an unknown format version";
		return NULL;
	}
	return j;
}

/* ---- a pull parser for mailbox objects ----
 *
 * A 10,000-message mailbox object is ~15 MB of JSON; building a jansson
 * tree for it and copying out of it costs several times more than
 * parsing it straight into the mailbox. This parser accepts any valid
 * JSON for the fields it knows (unknown keys are skipped) and rejects
 * everything else. */

struct jp {
	const char *p, *end;
	bool err;
};

static void jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' ||
				 *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static bool jp_eat(struct jp *j, char c)
{
	jp_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static bool jp_lit(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);
	jp_ws(j);
	if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lit, n) == 0) {
		j->p += n;
		return true;
	}
	return false;
}

static int64_t jp_int(struct jp *j)
{
	bool neg = false;
	uint64_t v = 0;
	jp_ws(j);
	if (j->p < j->end && *j->p == '-') {
		neg = true;
		j->p++;
	}
	const char *start = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		uint64_t d = (uint64_t)(*j->p - '0');
		if (v > (UINT64_MAX - d) / 10) {
			j->err = true;
			return 0;
		}
		v = v * 10 + d;
		j->p++;
	}
	if (j->p == start || v > (uint64_t)INT64_MAX + (neg ? 1 : 0) ||
	    (j->p < j->end && (*j->p == '.' || *j->p == 'e' ||
			       *j->p == 'E'))) {
		j->err = true;
		return 0;
	}
	return neg ? (int64_t)(0 - v) : (int64_t)v;
}

static uint64_t jp_u64(struct jp *j)
{
	int64_t v = jp_int(j);
	if (v < 0)
		j->err = true;
	return (uint64_t)v;
}

static int jp_hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Writes cp as UTF-8 at o; returns the length. */
static size_t utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string value, unescaped, malloc'ed (NUL inside is an error). The
 * unescaped form is never longer than the escaped one, so one
 * allocation of the raw length suffices. */
static char *jp_str(struct jp *j)
{
	jp_ws(j);
	if (j->p >= j->end || *j->p != '"') {
		j->err = true;
		return NULL;
	}
	const char *s = ++j->p, *q = s;
	bool escaped = false;
	while (q < j->end && *q != '"') {
		if ((unsigned char)*q < 0x20)
			goto bad;
		if (*q == '\\') {
			escaped = true;
			q++;
		}
		q++;
	}
	if (q >= j->end)
		goto bad;
	size_t n = (size_t)(q - s);
	char *r = xmalloc(n + 1);
	j->p = q + 1;
	if (!escaped) {
		memcpy(r, s, n);
		r[n] = '\0';
		return r;
	}
	size_t o = 0;
	const char *e = q;
	q = s;
	while (q < e) {
		if (*q != '\\') {
			r[o++] = *q++;
			continue;
		}
		q++;
		char c = *q++;
		switch (c) {
		case '"': r[o++] = '"'; break;
		case '\\': r[o++] = '\\'; break;
		case '/': r[o++] = '/'; break;
		case 'b': r[o++] = '\b'; break;
		case 'f': r[o++] = '\f'; break;
		case 'n': r[o++] = '\n'; break;
		case 'r': r[o++] = '\r'; break;
		case 't': r[o++] = '\t'; break;
		case 'u': {
			int cp = e - q >= 4 ? jp_hex4(q) : -1;
			q += 4;
			if (cp <= 0)
				goto bad_r;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (e - q < 6 || q[0] != '\\' || q[1] != 'u')
					goto bad_r;
				int lo = jp_hex4(q + 2);
				if (lo < 0xdc00 || lo > 0xdfff)
					goto bad_r;
				q += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				goto bad_r;
			}
			o += utf8_put(r + o, (uint32_t)cp);
			break;
		}
		default:
			goto bad_r;
		}
	}
	r[o] = '\0';
	return r;
bad_r:
	free(r);
bad:
	j->err = true;
	return NULL;
}

/* A byte string as written by index_json_buf_bytes (string, {"b64":..},
 * null -> NULL without error). */
static char *jp_bytes(struct jp *j)
{
	jp_ws(j);
	if (jp_lit(j, "null"))
		return NULL;
	if (j->p < j->end && *j->p == '{') {
		json_error_t jerr;
		const char *start = j->p;
		/* Rare: let jansson find the end and decode it. */
		json_t *v = json_loadb(start, (size_t)(j->end - start),
				       JSON_DISABLE_EOF_CHECK, &jerr);
		if (v == NULL) {
			j->err = true;
			return NULL;
		}
		j->p = start + jerr.position;
		char *r = index_json_bytes_dup(v);
		json_decref(v);
		if (r == NULL)
			j->err = true;
		return r;
	}
	return jp_str(j);
}

static void jp_skip(struct jp *j, int depth)
{
	jp_ws(j);
	if (depth > 64 || j->p >= j->end) {
		j->err = true;
		return;
	}
	char c = *j->p;
	if (c == '"') {
		free(jp_str(j));
	} else if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		j->p++;
		if (jp_eat(j, close))
			return;
		do {
			if (c == '{') {
				free(jp_str(j));
				if (!jp_eat(j, ':'))
					j->err = true;
			}
			jp_skip(j, depth + 1);
		} while (!j->err && jp_eat(j, ','));
		if (!jp_eat(j, close))
			j->err = true;
	} else if (jp_lit(j, "null") || jp_lit(j, "true") ||
		   jp_lit(j, "false")) {
		return;
	} else {
		/* A number, possibly with fraction or exponent. */
		const char *s = j->p;
		while (j->p < j->end && strchr("+-.eE0123456789", *j->p))
			j->p++;
		if (j->p == s)
			j->err = true;
	}
}

/* One message: [uid,"guid",size,idate,tz,flags,kwbits,modseq,
 * env,bs,body,sent,stz,hsize]. Appended to mb unless j->err. */
static void jp_msg(struct jp *j, struct mailbox *mb)
{
	struct index_msg m;
	int64_t v[13];
	char *guid = NULL;
	struct msg_meta *mt = NULL;

	memset(&m, 0, sizeof(m));
	if (!jp_eat(j, '['))
		goto bad;
	v[0] = jp_int(j);
	if (!jp_eat(j, ',') || (guid = jp_str(j)) == NULL ||
	    !hex_decode(guid, strlen(guid), m.guid, INDEX_GUID_LEN))
		goto bad;
	for (int i = 1; i <= 6; i++) {
		if (!jp_eat(j, ','))
			goto bad;
		v[i] = jp_int(j);
	}
	mt = index_meta_new();
	if (!jp_eat(j, ','))
		goto bad;
	mt->envelope = jp_bytes(j);
	if (!jp_eat(j, ','))
		goto bad;
	mt->bodystructure = jp_bytes(j);
	if (!jp_eat(j, ','))
		goto bad;
	mt->body = jp_bytes(j);
	for (int i = 7; i <= 9; i++) {
		if (!jp_eat(j, ','))
			goto bad;
		v[i] = jp_int(j);
	}
	if (!jp_eat(j, ']') || j->err)
		goto bad;
	/* uid, size, idate, tz, flags, kwbits (64 bits, signed in JSON),
	 * modseq, sent, stz, hsize */
	if (v[0] <= 0 || v[0] >= UINT32_MAX || v[1] < 0 || v[6] < 0 ||
	    v[9] < 0 || v[9] > UINT32_MAX)
		goto bad;
	m.uid = (uint32_t)v[0];
	m.size = (uint64_t)v[1];
	m.internaldate = v[2];
	m.idate_tz_min = (int16_t)(v[3] < -1440 || v[3] > 1440 ? 0 : v[3]);
	m.flags = (uint32_t)v[4] & 0x1f;
	m.keywords = (uint64_t)v[5];
	m.modseq = (uint64_t)v[6];
	mt->sent_date = v[7];
	mt->sent_tz_min = (int)(v[8] < -1440 || v[8] > 1440 ? 0 : v[8]);
	mt->header_size = (uint32_t)v[9];
	m.meta = mt;
	free(guid);
	xgrow((void **)&mb->msgs, &mb->cap, mb->count + 1, sizeof(*mb->msgs));
	mb->msgs[mb->count++] = m;
	return;
bad:
	free(guid);
	index_meta_unref(&mt);
	j->err = true;
}

/* Fills mb from its object (bytes). */
static int load_mbox_object(struct mailbox *mb, const char *data, size_t len,
			    const char **error_r)
{
	struct jp j = { data, data + len, false };
	bool have_v = false, have_id = false, have_next = false,
	     have_hms = false, have_msgs = false;

	if (!jp_eat(&j, '{'))
		goto bad;
	do {
		char *key = jp_str(&j);
		if (key == NULL || !jp_eat(&j, ':')) {
			free(key);
			goto bad;
		}
		if (strcmp(key, "v") == 0) {
			have_v = jp_int(&j) == INDEX_FORMAT_VERSION;
		} else if (strcmp(key, "id") == 0) {
			have_id = jp_u64(&j) == mb->id;
		} else if (strcmp(key, "uidnext") == 0) {
			uint64_t u = jp_u64(&j);
			have_next = u > 0 && u <= UINT32_MAX;
			mb->uidnext = (uint32_t)u;
		} else if (strcmp(key, "highestmodseq") == 0) {
			mb->highestmodseq = jp_u64(&j);
			have_hms = true;
		} else if (strcmp(key, "keywords") == 0) {
			if (!jp_eat(&j, '['))
				j.err = true;
			else if (!jp_eat(&j, ']')) {
				do {
					char *kw = jp_bytes(&j);
					if (kw == NULL ||
					    mb->nkeywords >= INDEX_MAX_KEYWORDS) {
						free(kw);
						j.err = true;
						break;
					}
					mb->keywords[mb->nkeywords++] = kw;
				} while (jp_eat(&j, ','));
				if (!j.err && !jp_eat(&j, ']'))
					j.err = true;
			}
		} else if (strcmp(key, "msgs") == 0) {
			have_msgs = true;
			if (!jp_eat(&j, '['))
				j.err = true;
			else if (!jp_eat(&j, ']')) {
				do {
					size_t before = mb->count;
					jp_msg(&j, mb);
					if (!j.err && mb->count > 1 &&
					    mb->msgs[before].uid <=
					    mb->msgs[before - 1].uid)
						j.err = true;
				} while (!j.err && jp_eat(&j, ','));
				if (!j.err && !jp_eat(&j, ']'))
					j.err = true;
			}
		} else if (strcmp(key, "expunged") == 0) {
			if (!jp_eat(&j, '['))
				j.err = true;
			else if (!jp_eat(&j, ']')) {
				do {
					struct index_expunged e;
					e.uid = (uint32_t)jp_u64(&j);
					if (!jp_eat(&j, ',')) {
						j.err = true;
						break;
					}
					e.modseq = jp_u64(&j);
					xgrow((void **)&mb->expunged,
					      &mb->expunged_cap,
					      mb->nexpunged + 1,
					      sizeof(*mb->expunged));
					mb->expunged[mb->nexpunged++] = e;
				} while (!j.err && jp_eat(&j, ','));
				if (!j.err && !jp_eat(&j, ']'))
					j.err = true;
			}
		} else {
			jp_skip(&j, 0);
		}
		free(key);
		if (j.err)
			goto bad;
	} while (jp_eat(&j, ','));
	if (!jp_eat(&j, '}'))
		goto bad;
	jp_ws(&j);
	if (j.p != j.end || !have_v || !have_id || !have_next || !have_hms ||
	    !have_msgs)
		goto bad;
	if (mb->count > 0 && mb->uidnext <= mb->msgs[mb->count - 1].uid)
		goto bad;
	for (size_t i = 1; i < mb->nexpunged; i++) {
		if (mb->expunged[i].uid <= mb->expunged[i - 1].uid)
			goto bad;
	}
	for (size_t i = 0; i < mb->count; i++) {
		mb->total_size += mb->msgs[i].size;
		if (mb->msgs[i].modseq > mb->highestmodseq)
			goto bad;
	}
	return 0;
bad:
	*error_r = "mailbox snapshot object is malformed";
	return KURA_ECORRUPT;
}

int index_snap_mbox_parse(struct mailbox *mb, const char *data, size_t len,
			  const char **error_r)
{
	return load_mbox_object(mb, data, len, error_r);
}

int index_snap_load(struct account *a, uint64_t seq, const char **error_r)
{
	struct buf b;
	json_t *j = NULL;
	int rc;

	account_state_clear(a);
	buf_init(&b, INDEX_OBJECT_MAX);
	char *key = account_key(a, "snap/%016llx/mailboxes",
				(unsigned long long)seq);
	rc = index_obj_get(a->idx, key, &b, error_r);
	free(key);
	if (rc != 0)
		goto out;
	rc = KURA_ECORRUPT;
	if ((j = parse(&b, error_r)) == NULL)
		goto out;
	uint64_t sseq;
	json_t *subs = json_object_get(j, "subs");
	json_t *mbs = json_object_get(j, "mailboxes");
	if (!j_u64(j, "seq", &sseq) || sseq != seq ||
	    !j_u64(j, "modseq", &a->modseq) ||
	    !j_u64(j, "next_id", &a->next_mailbox_id) ||
	    !j_u32(j, "last_uidvalidity", &a->last_uidvalidity) ||
	    !json_is_array(subs) || !json_is_array(mbs)) {
		*error_r = "snapshot mailboxes object is malformed";
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(subs, i, v) {
		char *name = index_json_bytes_dup(v);
		size_t pos;
		if (name == NULL || index_subs_find(a, name, &pos)) {
			free(name);
			continue;
		}
		xgrow((void **)&a->subs, &a->subs_cap, a->nsubs + 1,
		      sizeof(*a->subs));
		memmove(&a->subs[pos + 1], &a->subs[pos],
			(a->nsubs - pos) * sizeof(*a->subs));
		a->subs[pos] = name;
		a->nsubs++;
	}
	json_array_foreach(mbs, i, v) {
		uint64_t id, ref, hms = 0;
		uint32_t uidv, special = 0;
		char *name = index_json_bytes_dup(json_object_get(v, "name"));
		if (name == NULL || !j_u64(v, "id", &id) ||
		    !j_u32(v, "uidvalidity", &uidv) ||
		    !j_u64(v, "snap", &ref) || ref > seq ||
		    account_mailbox_by_id(a, id) != NULL ||
		    index_mbox_by_name(a, name) != NULL) {
			free(name);
			*error_r = "snapshot mailbox entry is malformed";
			/* rc is 0 after an earlier mailbox loaded. */
			rc = KURA_ECORRUPT;
			goto out;
		}
		(void)j_u32(v, "special", &special);
		(void)j_u64(v, "highestmodseq", &hms);
		struct mailbox *mb = index_mbox_alloc(id, name, uidv, special, hms);
		free(name);
		index_mbox_insert(a, mb);
		mbox_priv(mb)->snap_ref = ref;
		mbox_priv(mb)->last_change = ref;

		key = account_key(a, "snap/%016llx/mbox/%llu",
				  (unsigned long long)ref,
				  (unsigned long long)id);
		rc = index_obj_get(a->idx, key, &b, error_r);
		free(key);
		if (rc == KURA_ENOTFOUND)
			*error_r = "snapshot mailbox object missing";
		if (rc != 0)
			goto out;
		rc = load_mbox_object(mb, buf_chars(&b),
				      buf_used(&b), error_r);
		if (rc != 0)
			goto out;
		/* What the next ops assign must stay above what exists:
		 * a new mailbox id, a new MODSEQ. */
		if (id >= a->next_mailbox_id || mb->highestmodseq > a->modseq) {
			*error_r = "snapshot mailbox is ahead of its account";
			rc = KURA_ECORRUPT;
			goto out;
		}
		mb->recent_floor = mb->uidnext;
	}
	uint64_t tref = 0;
	json_t *tv = json_object_get(j, "expunged_snap");
	if (tv != NULL && (!j_u64(j, "expunged_snap", &tref) || tref > seq)) {
		*error_r = "snapshot expunged_snap is malformed";
		rc = KURA_ECORRUPT;
		goto out;
	}
	if (tref != 0) {
		key = account_key(a, "snap/%016llx/expunged",
				  (unsigned long long)tref);
		rc = index_obj_get(a->idx, key, &b, error_r);
		free(key);
		if (rc == KURA_ENOTFOUND)
			*error_r = "snapshot expunged object missing";
		if (rc != 0)
			goto out;
		rc = index_trash_parse(a, buf_chars(&b), buf_used(&b), tref,
				       error_r);
		if (rc != 0)
			goto out;
		a->trash_snap_ref = a->trash_last_change = tref;
	}
	a->seq = seq;
	a->snap_seq = seq;
	a->snap_good = seq;
	rc = 0;
out:
	json_decref(j);
	buf_deinit(&b);
	if (rc != 0)
		account_state_clear(a);
	return rc;
}

int index_snap_read_hint(struct account *a, uint64_t *seq_r, const char **error_r)
{
	struct buf b;
	char *key = account_key(a, "snap/latest");
	int rc;

	*seq_r = 0;
	buf_init(&b, 4096);
	/* Mutable: never from the cache. */
	rc = store_get(a->idx->store, key, 0, STORE_LEN_ALL, &b, error_r);
	free(key);
	if (rc == 0) {
		json_t *j = json_loadb(buf_chars(&b),
				       buf_used(&b), 0, NULL);
		uint64_t v;
		if (j == NULL || !j_u64(j, "v", &v) ||
		    v != INDEX_FORMAT_VERSION || !j_u64(j, "seq", seq_r))
			log_warn("event=snapshot_hint_bad user=%s", a->user);
		json_decref(j);
	} else if (rc == KURA_ENOTFOUND) {
		rc = 0;
	} else {
		rc = KURA_EUNAVAIL;
	}
	buf_deinit(&b);
	return rc;
}

int index_snap_find_newest(struct account *a, uint64_t below, uint64_t *seq_r,
		     const char **error_r)
{
	char *prefix = account_key(a, "snap/");
	size_t plen = strlen(prefix);
	char *after = NULL;
	int rc = 0;

	*seq_r = 0;
	for (;;) {
		struct store_list l = { 0 };
		rc = store_list(a->idx->store, prefix, after, 1000, &l,
				error_r);
		if (rc != 0) {
			rc = KURA_EUNAVAIL;
			break;
		}
		for (size_t i = 0; i < l.count; i++) {
			const char *k = l.keys[i] + plen;
			unsigned long long s;
			char tail[16];
			if (strncmp(l.keys[i], prefix, plen) != 0)
				continue;
			if (sscanf(k, "%16llx/%11s", &s, tail) == 2 &&
			    strlen(k) == 16 + 1 + 9 &&
			    strcmp(tail, "mailboxes") == 0 && s < below &&
			    s > *seq_r)
				*seq_r = s;
		}
		free(after);
		after = l.count > 0 ? xstrdup(l.keys[l.count - 1]) : NULL;
		bool more = l.truncated && l.count > 0;
		store_list_free(&l);
		if (!more)
			break;
	}
	free(after);
	free(prefix);
	return rc;
}
