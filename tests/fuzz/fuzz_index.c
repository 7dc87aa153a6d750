/* Fuzz target for the index parsers: log entries (parse + apply), the
 * snapshot mailbox object, the expunged-list object, a whole snapshot
 * load, and ENVELOPE subjects. No store I/O reaches a disk: snapshot
 * objects come from an in-memory store.
 *
 * Input: byte 0 selects the mode (% 5), the rest is the document.
 *   0  a log entry, applied to an account holding a few mailboxes,
 *      messages and expunged records. Checked: applying the ops with the
 *      undo journal gives the same state as applying the entry, and the
 *      rollback gives back the state before; the state keeps its
 *      invariants; every mailbox object and the expunged list written
 *      from it read back to the same state (a snapshot a node writes,
 *      every node can load).
 *   1  a mailbox object: parsed; when accepted, written and parsed
 *      again, it must read back the same.
 *   2  an expunged-list object: the same.
 *   3  a snapshot: the document is split at "\n--\n" into the mailboxes
 *      object, the objects served in turn for snap/.../mbox/<id>, and
 *      the last one, served for snap/.../expunged; loaded as snapshot
 *      seq 5.
 *   4  an ENVELOPE string: its subject.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/store.h"
#include "tests/fuzz/fuzz.h"

#ifdef FUZZ_REPLAY
int fuzz_index_one(const uint8_t *data, size_t size);
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif

#define FZ_SNAP_SEQ 5
#define FZ_MAX_PARTS 8

/* ---- an in-memory store serving the parts of mode 3 ---- */

struct fz_store {
	struct store base;
	const char *part[FZ_MAX_PARTS];
	size_t len[FZ_MAX_PARTS];
	size_t n;
	size_t next;	/* mailbox objects served so far */
};

static int fz_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		  struct buf *out, const char **error_r)
{
	struct fz_store *f = (struct fz_store *)s;
	const char *tail = strstr(key, "/snap/");
	size_t i;
	(void)off;
	(void)len;
	if (tail == NULL || f->n == 0)
		return KURA_ENOTFOUND;
	tail += 6 + 16;
	if (strcmp(tail, "/mailboxes") == 0) {
		i = 0;
	} else if (strcmp(tail, "/expunged") == 0) {
		i = f->n - 1;
	} else if (strncmp(tail, "/mbox/", 6) == 0 && f->n > 2) {
		i = 1 + f->next++ % (f->n - 2);
	} else {
		return KURA_ENOTFOUND;
	}
	if (!buf_append(out, f->part[i], f->len[i])) {
		*error_r = "too big";
		return KURA_ETOOBIG;
	}
	return 0;
}

static int fz_put(struct store *s, const char *key, const void *data,
		  size_t len, unsigned flags, const char *const *meta,
		  const char **error_r)
{
	(void)s;
	(void)key;
	(void)data;
	(void)len;
	(void)flags;
	(void)meta;
	*error_r = "read-only";
	return KURA_EUNAVAIL;
}

static int fz_head(struct store *s, const char *key, struct store_stat *st,
		   const char **error_r)
{
	(void)s;
	(void)key;
	(void)st;
	(void)error_r;
	return KURA_ENOTFOUND;
}

static int fz_del(struct store *s, const char *key, const char **error_r)
{
	(void)s;
	(void)key;
	(void)error_r;
	return 0;
}

static int fz_list(struct store *s, const char *prefix, const char *after,
		   size_t max, struct store_list *out, const char **error_r)
{
	(void)s;
	(void)prefix;
	(void)after;
	(void)max;
	(void)error_r;
	memset(out, 0, sizeof(*out));
	return 0;
}

static void fz_destroy(struct store *s)
{
	(void)s;
}

static const struct store_ops fz_ops = {
	"fuzz", fz_get, fz_put, fz_head, fz_del, fz_list, fz_destroy,
};

static struct fz_store fz_mem = { { &fz_ops }, { NULL }, { 0 }, 0, 0 };
static struct index *fz_idx;

/* ---- state dump and checks ---- */

static void dump_str(struct buf *b, const char *s)
{
	if (s == NULL)
		buf_append_str(b, "-|");
	else
		buf_printf(b, "%zu:%s|", strlen(s), s);
}

static void dump_mbox(struct buf *b, const struct mailbox *mb, bool priv)
{
	char hex[INDEX_GUID_LEN * 2 + 1];
	buf_printf(b, "mb %llu uv=%u next=%u hms=%llu sp=%u size=%llu ",
		   (unsigned long long)mb->id, mb->uidvalidity, mb->uidnext,
		   (unsigned long long)mb->highestmodseq, mb->special_use,
		   (unsigned long long)mb->total_size);
	dump_str(b, mb->name);
	if (priv)
		buf_printf(b, " lc=%llu",
			   (unsigned long long)mbox_priv((struct mailbox *)mb)->last_change);
	buf_append_str(b, "\nkw ");
	for (unsigned i = 0; i < mb->nkeywords; i++)
		dump_str(b, mb->keywords[i]);
	buf_append_str(b, "\n");
	for (size_t i = 0; i < mb->count; i++) {
		const struct index_msg *m = &mb->msgs[i];
		const struct msg_meta *mt = m->meta;
		hex_encode(m->guid, INDEX_GUID_LEN, hex);
		buf_printf(b, " m %u %s f=%u k=%llx ms=%llu sz=%llu d=%lld/%d ",
			   m->uid, hex, m->flags,
			   (unsigned long long)m->keywords,
			   (unsigned long long)m->modseq,
			   (unsigned long long)m->size,
			   (long long)m->internaldate, m->idate_tz_min);
		if (mt == NULL) {
			buf_append_str(b, "nometa\n");
			continue;
		}
		dump_str(b, mt->envelope);
		dump_str(b, mt->bodystructure);
		dump_str(b, mt->body);
		buf_printf(b, "%lld/%d/%u\n", (long long)mt->sent_date,
			   mt->sent_tz_min, mt->header_size);
	}
	for (size_t i = 0; i < mb->nexpunged; i++)
		buf_printf(b, " x %u %llu\n", mb->expunged[i].uid,
			   (unsigned long long)mb->expunged[i].modseq);
}

static void dump_trash(struct buf *b, const struct account *a)
{
	char hex[INDEX_GUID_LEN * 2 + 1];
	for (size_t i = 0; i < a->ntrash; i++) {
		const struct index_trash *t = &a->trash[i];
		hex_encode(t->guid, INDEX_GUID_LEN, hex);
		buf_printf(b, "t %s %llu %u f=%u sz=%llu d=%lld/%d t=%lld ",
			   hex, (unsigned long long)t->mbid, t->uid, t->flags,
			   (unsigned long long)t->size,
			   (long long)t->internaldate, t->idate_tz_min,
			   (long long)t->time);
		dump_str(b, t->mailbox);
		dump_str(b, t->keywords);
		dump_str(b, t->subject);
		buf_append_str(b, "\n");
	}
}

/* Everything that is state (not node-local, not seq). */
static char *dump(const struct account *a)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "modseq=%llu next_id=%llu luv=%u tlc=%llu\n",
		   (unsigned long long)a->modseq,
		   (unsigned long long)a->next_mailbox_id,
		   a->last_uidvalidity,
		   (unsigned long long)a->trash_last_change);
	for (size_t i = 0; i < a->nsubs; i++) {
		buf_append_str(&b, "sub ");
		dump_str(&b, a->subs[i]);
		buf_append_str(&b, "\n");
	}
	for (size_t i = 0; i < a->nmbs; i++)
		dump_mbox(&b, a->mbs[i], true);
	dump_trash(&b, a);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static void check_same(char *x, char *y)
{
	if (strcmp(x, y) != 0) {
		fprintf(stderr, "---- expected:\n%s---- got:\n%s", x, y);
		__builtin_trap();
	}
	free(x);
	free(y);
}

/* derived: the state came from applying ops (not from a loaded
 * snapshot, whose expunged list may hold what an older or other writer
 * put there). */
static void check_invariants(const struct account *a, bool derived)
{
	for (size_t i = 0; i < a->nmbs; i++) {
		const struct mailbox *mb = a->mbs[i];
		if (i > 0 && strcmp(a->mbs[i - 1]->name, mb->name) >= 0)
			__builtin_trap();
		if (i > 0 && a->by_id[i - 1]->id >= a->by_id[i]->id)
			__builtin_trap();
		if (mb->id >= a->next_mailbox_id ||
		    mb->nkeywords > INDEX_MAX_KEYWORDS)
			__builtin_trap();
		uint64_t total = 0;
		for (size_t k = 0; k < mb->count; k++) {
			const struct index_msg *m = &mb->msgs[k];
			if (m->uid == 0 || m->uid >= mb->uidnext ||
			    (k > 0 && m->uid <= mb->msgs[k - 1].uid) ||
			    m->modseq > mb->highestmodseq || m->meta == NULL ||
			    (m->flags & ~0x1fu) != 0)
				__builtin_trap();
			total += m->size;
		}
		if (total != mb->total_size)
			__builtin_trap();
		for (size_t k = 1; k < mb->nexpunged; k++) {
			if (mb->expunged[k].uid <= mb->expunged[k - 1].uid)
				__builtin_trap();
		}
		if (mb->highestmodseq > a->modseq)
			__builtin_trap();
	}
	for (size_t i = 1; i < a->nsubs; i++) {
		if (strcmp(a->subs[i - 1], a->subs[i]) >= 0)
			__builtin_trap();
	}
	for (size_t i = 0; i < a->ntrash; i++) {
		const struct index_trash *t = &a->trash[i];
		if (t->mailbox == NULL || t->uid == 0 ||
		    (derived && t->subject != NULL &&
		     (t->subject[0] == '\0' ||
		      strlen(t->subject) > INDEX_SUBJECT_MAX)))
			__builtin_trap();
	}
}

/* What a snapshot writes of a mailbox reads back the same. */
static void check_mbox_roundtrip(const struct account *a,
				 const struct mailbox *mb)
{
	const char *err = NULL;
	size_t len;
	char *json = index_snap_mbox_json(a, mb, FZ_SNAP_SEQ, &len);
	struct mailbox *back = index_mbox_alloc(mb->id, mb->name,
						mb->uidvalidity,
						mb->special_use, 0);
	if (index_snap_mbox_parse(back, json, len, &err) != 0) {
		fprintf(stderr, "written mailbox object rejected: %s\n%.*s\n",
			err, (int)len, json);
		__builtin_trap();
	}
	struct buf x, y;
	buf_init(&x, 0);
	buf_init(&y, 0);
	dump_mbox(&x, mb, false);
	dump_mbox(&y, back, false);
	buf_append(&x, "", 1);
	buf_append(&y, "", 1);
	check_same((char *)x.data, (char *)y.data);
	index_mbox_free(back);
	free(json);
}

static void check_trash_roundtrip(const struct account *a)
{
	const char *err = NULL;
	size_t len;
	char *json = index_trash_json(a, FZ_SNAP_SEQ, &len);
	struct account *b = index_account_scratch(NULL, "fuzz");
	if (index_trash_parse(b, json, len, FZ_SNAP_SEQ, &err) != 0) {
		fprintf(stderr, "written expunged object rejected: %s\n%.*s\n",
			err, (int)len, json);
		__builtin_trap();
	}
	struct buf x, y;
	buf_init(&x, 0);
	buf_init(&y, 0);
	dump_trash(&x, a);
	dump_trash(&y, b);
	buf_append(&x, "", 1);
	buf_append(&y, "", 1);
	check_same((char *)x.data, (char *)y.data);
	index_account_scratch_free(&b);
	free(json);
}

static void check_state(const struct account *a, bool derived)
{
	check_invariants(a, derived);
	for (size_t i = 0; i < a->nmbs; i++)
		check_mbox_roundtrip(a, a->mbs[i]);
	check_trash_roundtrip(a);
}

/* ---- mode 0: log entries ---- */

/* The state the fuzzed entry meets: two mailboxes with keywords,
 * messages (one a COPY sharing its fields), expunged UIDs and records. */
static const char *const base_entries[] = {
	"{\"v\":1,\"seq\":1,\"time\":1700000000,\"ops\":["
	"{\"op\":\"create\",\"id\":1,\"name\":\"INBOX\",\"uidvalidity\":7,"
	"\"special\":0,\"modseq\":1},"
	"{\"op\":\"create\",\"id\":2,\"name\":\"Work\",\"uidvalidity\":8,"
	"\"special\":64,\"modseq\":2},"
	"{\"op\":\"sub\",\"name\":\"INBOX\",\"on\":true}]}",
	"{\"v\":1,\"seq\":2,\"time\":1700000100,\"ops\":["
	"{\"op\":\"append\",\"mb\":1,\"uid\":1,"
	"\"guid\":\"00112233445566778899aabbccddeeff\",\"size\":100,"
	"\"idate\":1700000000,\"tz\":60,\"flags\":1,\"kw\":[\"$Label\"],"
	"\"modseq\":3,\"env\":\"(NIL \\\"hello\\\" NIL NIL NIL NIL NIL NIL "
	"NIL NIL)\",\"bs\":\"(\\\"TEXT\\\")\",\"body\":null,\"sent\":-1,"
	"\"stz\":0,\"hsize\":20},"
	"{\"op\":\"append\",\"mb\":1,\"uid\":2,"
	"\"guid\":\"ffeeddccbbaa99887766554433221100\",\"size\":200,"
	"\"idate\":1700000001,\"tz\":0,\"flags\":8,\"kw\":[],\"modseq\":3,"
	"\"env\":{\"b64\":\"KE5JTCB7M30NCv/+/SBOSUwp\"},\"bs\":null,"
	"\"body\":null,\"sent\":5,\"stz\":-60,\"hsize\":1},"
	"{\"op\":\"append\",\"mb\":2,\"uid\":1,"
	"\"guid\":\"00112233445566778899aabbccddeeff\",\"size\":100,"
	"\"idate\":1700000000,\"tz\":60,\"flags\":1,\"kw\":[\"$Other\"],"
	"\"modseq\":3,\"env\":null,\"bs\":null,\"body\":null,\"sent\":-1,"
	"\"stz\":0,\"hsize\":0,\"from\":[1,1]}]}",
	"{\"v\":1,\"seq\":3,\"time\":1700000200,\"ops\":["
	"{\"op\":\"append\",\"mb\":1,\"uid\":3,"
	"\"guid\":\"0102030405060708090a0b0c0d0e0f10\",\"size\":300,"
	"\"idate\":1,\"tz\":0,\"flags\":0,\"kw\":[],\"modseq\":4,"
	"\"env\":\"(NIL {5}\\r\\nabcde NIL)\",\"bs\":null,\"body\":null,"
	"\"sent\":-1,\"stz\":0,\"hsize\":0},"
	"{\"op\":\"expunge\",\"mb\":1,\"uids\":\"2\",\"modseq\":5}]}",
};

static struct account *base_account(void)
{
	struct account *a = index_account_scratch(fz_idx, "fuzz");
	for (size_t i = 0; i < ARRAY_SIZE(base_entries); i++) {
		json_t *e = json_loads(base_entries[i], 0, NULL);
		if (e == NULL || index_apply_entry(a, e, i + 1) != 0)
			__builtin_trap();
		json_decref(e);
	}
	return a;
}

static void fuzz_entry(const char *data, size_t size)
{
	json_t *e = json_loadb(data, size, 0, NULL);
	if (e == NULL)
		return;
	uint64_t seq = ARRAY_SIZE(base_entries) + 1;
	json_t *ops = json_object_get(e, "ops");
	json_t *t = json_object_get(e, "time");

	/* As a commit evaluates: with the journal, then rolled back. */
	struct account *a = base_account();
	char *before = dump(a);
	struct undo u;
	index_undo_init(&u);
	index_undo_save_account(a, &u);
	a->apply_time = json_is_integer(t) ? json_integer_value(t) : 0;
	size_t i;
	json_t *op;
	json_array_foreach(ops, i, op) {
		if (json_is_object(op))
			index_apply_op(a, op, seq, &u);
	}
	char *with_undo = dump(a);
	check_invariants(a, true);
	index_undo_rollback(a, &u, 0);
	index_undo_deinit(a, &u);
	check_same(xstrdup(before), dump(a));

	/* As a stored entry is applied: the same state. */
	if (index_apply_entry(a, e, seq) == 0) {
		check_same(with_undo, dump(a));
		check_state(a, true);
	} else {
		free(with_undo);
		check_same(before, dump(a));
		before = NULL;
	}
	free(before);
	index_account_scratch_free(&a);
	json_decref(e);
}

/* ---- modes 1-4 ---- */

static void fuzz_mbox_object(const char *data, size_t size)
{
	const char *err = NULL;
	struct mailbox *mb = index_mbox_alloc(3, "X", 1, 0, 0);
	if (index_snap_mbox_parse(mb, data, size, &err) == 0) {
		struct account *a = index_account_scratch(NULL, "fuzz");
		check_mbox_roundtrip(a, mb);
		index_account_scratch_free(&a);
	}
	index_mbox_free(mb);
}

static void fuzz_trash_object(const char *data, size_t size)
{
	const char *err = NULL;
	struct account *a = index_account_scratch(NULL, "fuzz");
	if (index_trash_parse(a, data, size, FZ_SNAP_SEQ, &err) == 0)
		check_trash_roundtrip(a);
	else if (a->ntrash != 0)
		__builtin_trap();
	index_account_scratch_free(&a);
}

static void fuzz_snapshot(const char *data, size_t size)
{
	const char *err = NULL;
	const char *p = data, *end = data + size;

	fz_mem.n = 0;
	fz_mem.next = 0;
	while (fz_mem.n < FZ_MAX_PARTS) {
		const char *sep = memmem(p, (size_t)(end - p), "\n--\n", 4);
		size_t n = sep != NULL ? (size_t)(sep - p) : (size_t)(end - p);
		fz_mem.part[fz_mem.n] = p;
		fz_mem.len[fz_mem.n++] = n;
		if (sep == NULL)
			break;
		p = sep + 4;
	}
	struct account *a = index_account_scratch(fz_idx, "fuzz");
	int rc = index_snap_load(a, FZ_SNAP_SEQ, &err);
	if (rc == 0) {
		if (a->seq != FZ_SNAP_SEQ)
			__builtin_trap();
		check_state(a, false);
	} else if (a->nmbs != 0 || a->ntrash != 0 || a->nsubs != 0) {
		__builtin_trap();	/* a failed load leaves nothing */
	}
	index_account_scratch_free(&a);
	fz_mem.n = 0;
}

static void fuzz_subject(const char *data, size_t size)
{
	char *env = xmalloc(size + 1);
	memcpy(env, data, size);
	env[size] = '\0';
	char *s = index_envelope_subject(env);
	if (s != NULL && (strlen(s) > INDEX_SUBJECT_MAX || s[0] == '\0'))
		__builtin_trap();
	free(s);
	free(env);
}

FUZZ_ENTRY(const uint8_t *data, size_t size)
{
	if (fz_idx == NULL) {
		log_set_level(LOG_ERROR);
		fz_idx = index_create(&fz_mem.base, NULL, NULL);
	}
	if (size == 0)
		return 0;
	const char *doc = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 5) {
	case 0:
		fuzz_entry(doc, n);
		break;
	case 1:
		fuzz_mbox_object(doc, n);
		break;
	case 2:
		fuzz_trash_object(doc, n);
		break;
	case 3:
		fuzz_snapshot(doc, n);
		break;
	default:
		fuzz_subject(doc, n);
		break;
	}
	return 0;
}

#ifdef FUZZ_REPLAY
int fuzz_index_one(const uint8_t *data, size_t size)
{
	return LLVMFuzzerTestOneInput(data, size);
}
#endif
