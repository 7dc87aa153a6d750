/* Unit tests for index/: the mailbox model over the real fs backend in a
 * temporary directory. Two struct index on one store stand for two
 * nodes; a wrapper store around the fs backend injects faults. */
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "index/index.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"
#include "tests/unit/test.h"

static char tmpdir[] = "/tmp/kura-test-index-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* ---- a fault-injecting wrapper around the fs store ---- */

struct fault_store {
	struct store base;
	struct store *inner;
	int fail_puts;		/* next puts fail without writing */
	int lost_acks;		/* next puts write, then report failure */
	int then_fail;		/* fail_puts after a lost acknowledgement */
	unsigned puts, gets, heads, lists;
	const char *hook_suffix;	/* before a put of a key ending so */
	void (*hook)(void *arg);
	void *hook_arg;
};

static struct fault_store *fs_of(struct store *s)
{
	return (struct fault_store *)s;
}

static int f_get(struct store *s, const char *key, uint64_t off, uint64_t len,
		 struct buf *out, const char **error_r)
{
	fs_of(s)->gets++;
	if (getenv("TEST_INDEX_TRACE"))
		fprintf(stderr, "GET %s\n", key);
	return store_get(fs_of(s)->inner, key, off, len, out, error_r);
}

static int f_put(struct store *s, const char *key, const void *data,
		 size_t len, unsigned flags, const char *const *meta,
		 const char **error_r)
{
	struct fault_store *f = fs_of(s);
	f->puts++;
	if (f->hook != NULL && f->hook_suffix != NULL &&
	    strlen(key) >= strlen(f->hook_suffix) &&
	    strcmp(key + strlen(key) - strlen(f->hook_suffix),
		   f->hook_suffix) == 0) {
		void (*hook)(void *) = f->hook;
		f->hook = NULL;
		hook(f->hook_arg);
	}
	if (f->fail_puts > 0) {
		f->fail_puts--;
		if (error_r != NULL)
			*error_r = "injected failure";
		return KURA_EUNAVAIL;
	}
	int rc = store_put(f->inner, key, data, len, flags, meta, error_r);
	if (f->lost_acks > 0) {
		f->lost_acks--;
		f->fail_puts = f->then_fail;
		f->then_fail = 0;
		if (rc == 0) {
			if (error_r != NULL)
				*error_r = "injected lost acknowledgement";
			return KURA_EUNAVAIL;
		}
	}
	return rc;
}

static int f_head(struct store *s, const char *key, struct store_stat *st,
		  const char **error_r)
{
	fs_of(s)->heads++;
	return store_head(fs_of(s)->inner, key, st, error_r);
}

static int f_del(struct store *s, const char *key, const char **error_r)
{
	return store_del(fs_of(s)->inner, key, error_r);
}

static int f_list(struct store *s, const char *prefix, const char *after,
		  size_t max, struct store_list *out, const char **error_r)
{
	fs_of(s)->lists++;
	return store_list(fs_of(s)->inner, prefix, after, max, out, error_r);
}

static void f_destroy(struct store *s)
{
	(void)s;
}

static const struct store_ops fault_ops = {
	"fault", f_get, f_put, f_head, f_del, f_list, f_destroy,
};

/* ---- helpers ---- */

static struct store *fs_store;	/* the real backend */

static struct index *new_index(struct store *st, struct cache *c,
			       unsigned every)
{
	struct index_settings set = { .snapshot_every = every, .max_message_size = 64u << 20 };
	return index_create(st, c, &set);
}

static struct account *get_acct(struct index *idx, const char *user)
{
	struct account *a = NULL;
	const char *err = NULL;
	int rc = index_account_get(idx, user, &a, &err);
	if (rc != 0)
		fprintf(stderr, "account_get %s: %s (%s)\n", user,
			kura_strerror(rc), err ? err : "");
	return a;
}

static uint64_t mbid(struct account *a, const char *name)
{
	struct mailbox *mb = account_mailbox_find(a, kstr_cstr(name));
	return mb != NULL ? mb->id : 0;
}

static struct mailbox *mbox(struct account *a, const char *name)
{
	return account_mailbox_find(a, kstr_cstr(name));
}

static char *user_prefix(const char *user)
{
	char buf[600];
	snprintf(buf, sizeof(buf), "u/%02x/%s/",
		 (unsigned)(hash64(user, strlen(user)) & 0xff), user);
	return xstrdup(buf);
}

static size_t count_keys(const char *user, const char *sub)
{
	char prefix[700];
	char *p = user_prefix(user);
	snprintf(prefix, sizeof(prefix), "%s%s", p, sub);
	free(p);
	size_t n = 0;
	char *after = NULL;
	for (;;) {
		struct store_list l = { 0 };
		if (store_list(fs_store, prefix, after, 1000, &l, NULL) != 0)
			break;
		n += l.count;
		free(after);
		after = l.count ? xstrdup(l.keys[l.count - 1]) : NULL;
		bool more = l.truncated && l.count > 0;
		store_list_free(&l);
		if (!more)
			break;
	}
	free(after);
	return n;
}

static size_t log_count(const char *user)
{
	return count_keys(user, "log/");
}

static json_t *read_json(const char *user, const char *sub)
{
	char key[700];
	char *p = user_prefix(user);
	snprintf(key, sizeof(key), "%s%s", p, sub);
	free(p);
	struct buf b;
	buf_init(&b, 0);
	json_t *j = NULL;
	if (store_get(fs_store, key, 0, STORE_LEN_ALL, &b, NULL) == 0)
		j = json_loadb((const char *)buf_head(&b), buf_used(&b), 0,
			       NULL);
	buf_deinit(&b);
	return j;
}

static void del_key(const char *user, const char *sub)
{
	char key[700];
	char *p = user_prefix(user);
	snprintf(key, sizeof(key), "%s%s", p, sub);
	free(p);
	store_del(fs_store, key, NULL);
}


static void put_key(const char *user, const char *sub, const char *data)
{
	char key[700];
	char *p = user_prefix(user);
	snprintf(key, sizeof(key), "%s%s", p, sub);
	free(p);
	CHECK_EQ_INT(store_put(fs_store, key, data, strlen(data),
			       STORE_PUT_NONE, NULL, NULL), 0);
}

static uint64_t hint_seq(const char *user)
{
	json_t *j = read_json(user, "snap/latest");
	uint64_t s = j ? (uint64_t)json_integer_value(json_object_get(j, "seq")) : 0;
	json_decref(j);
	return s;
}

static const struct msg_meta sample_meta = {
	0,
	(char *)"(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Test \\\"quoted\\\"\" "
	"((\"Fred\" NIL \"fred\" \"example.org\")) NIL NIL NIL NIL NIL NIL "
	"\"<1@example.org>\")",
	(char *)"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	"\"7BIT\" 12 1 NIL NIL NIL NIL)",
	(char *)"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	"\"7BIT\" 12 1)",
	760006345, -480, 120,
};

/* Appends n messages to mailbox `name` in one transaction; uids_r gets
 * the new UIDs. Returns the commit result. */
static int append_n(struct account *a, const char *name, size_t n,
		    uint32_t flags, const char *kw, uint32_t *uids_r)
{
	struct index_txn *t = index_txn_begin(a);
	uint64_t id = mbid(a, name);
	struct kstr k = kw ? kstr_cstr(kw) : KSTR_LIT("");
	int ops[64];
	for (size_t i = 0; i < n && i < 64; i++) {
		struct index_append m;
		memset(&m, 0, sizeof(m));
		random_bytes(m.guid, sizeof(m.guid));
		m.size = 100 + i;
		m.internaldate = 1700000000 + (int64_t)i;
		m.idate_tz_min = 60;
		m.flags = flags;
		m.keywords = kw ? &k : NULL;
		m.nkeywords = kw ? 1 : 0;
		m.meta = &sample_meta;
		ops[i] = index_txn_append(t, id ? id : 999999, &m);
	}
	const char *err = NULL;
	int rc = index_txn_commit(t, &err);
	if (rc == 0 && uids_r != NULL) {
		for (size_t i = 0; i < n && i < 64; i++) {
			const struct index_op_result *r =
				index_txn_result(t, ops[i]);
			uids_r[i] = r->nuids == 1 ? r->uids[0] : 0;
		}
	}
	index_txn_free(&t);
	return rc;
}

static int simple_txn_rc(struct account *a, int kind, const char *n1,
			 const char *n2)
{
	struct index_txn *t = index_txn_begin(a);
	int op;
	switch (kind) {
	case 'c':
		op = index_txn_create_mailbox(t, kstr_cstr(n1), 0);
		break;
	case 'd':
		op = index_txn_delete_mailbox(t, kstr_cstr(n1));
		break;
	case 'r':
		op = index_txn_rename_mailbox(t, kstr_cstr(n1), kstr_cstr(n2));
		break;
	case 's':
		op = index_txn_subscribe(t, kstr_cstr(n1), n2 != NULL);
		break;
	default:
		op = -1;
	}
	int rc = op;
	if (op >= 0) {
		const char *err = NULL;
		rc = index_txn_commit(t, &err);
	}
	index_txn_free(&t);
	return rc;
}

static int txn_store(struct account *a, const char *name, const uint32_t *uids,
		     size_t n, enum store_mode mode, uint32_t flags,
		     const char *kw, uint64_t unchangedsince,
		     struct index_op_result *res_r)
{
	struct index_txn *t = index_txn_begin(a);
	struct kstr k = kw ? kstr_cstr(kw) : KSTR_LIT("");
	int op = index_txn_store(t, mbid(a, name), uids, n, mode, flags,
				 kw ? &k : NULL, kw ? 1 : 0, unchangedsince);
	int rc = op;
	if (op >= 0) {
		const char *err = NULL;
		rc = index_txn_commit(t, &err);
		if (rc == 0 && res_r != NULL) {
			const struct index_op_result *r =
				index_txn_result(t, op);
			*res_r = *r;
			res_r->failed_uids = NULL;
			res_r->src_uids = NULL;
			res_r->uids = NULL;
		}
	}
	index_txn_free(&t);
	return rc;
}

/* The full state of an account as text (node-local fields excluded). */
static char *dump(struct account *a)
{
	struct buf b;
	char guid[33];
	buf_init(&b, 0);
	buf_printf(&b, "modseq=%llu\n", (unsigned long long)account_modseq(a));
	for (size_t i = 0; i < account_subscription_count(a); i++)
		buf_printf(&b, "sub %s\n", account_subscription_at(a, i));
	for (size_t i = 0; i < account_mailbox_count(a); i++) {
		struct mailbox *mb = account_mailbox_at(a, i);
		buf_printf(&b, "mb %llu %s uv=%u next=%u hms=%llu sp=%u "
			   "n=%zu size=%llu kw=", (unsigned long long)mb->id,
			   mb->name, mb->uidvalidity, mb->uidnext,
			   (unsigned long long)mb->highestmodseq,
			   mb->special_use, mb->count,
			   (unsigned long long)mb->total_size);
		for (unsigned k = 0; k < mb->nkeywords; k++)
			buf_printf(&b, "%s,", mb->keywords[k]);
		buf_append_str(&b, "\n");
		for (size_t j = 0; j < mb->count; j++) {
			struct index_msg *m = &mb->msgs[j];
			hex_encode(m->guid, 16, guid);
			buf_printf(&b, " m %u f=%u k=%llx ms=%llu sz=%llu "
				   "d=%lld/%d g=%s ", m->uid, m->flags,
				   (unsigned long long)m->keywords,
				   (unsigned long long)m->modseq,
				   (unsigned long long)m->size,
				   (long long)m->internaldate,
				   m->idate_tz_min, guid);
			buf_printf(&b, "%s|%s|%s|%lld|%d|%u\n",
				   m->meta->envelope ? m->meta->envelope : "-",
				   m->meta->bodystructure ?
				   m->meta->bodystructure : "-",
				   m->meta->body ? m->meta->body : "-",
				   (long long)m->meta->sent_date,
				   m->meta->sent_tz_min,
				   m->meta->header_size);
		}
		for (size_t j = 0; j < mb->nexpunged; j++)
			buf_printf(&b, " x %u %llu\n", mb->expunged[j].uid,
				   (unsigned long long)mb->expunged[j].modseq);
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static bool same_state(struct account *x, struct account *y)
{
	char *a = dump(x), *b = dump(y);
	bool same = strcmp(a, b) == 0;
	if (!same) {
		fprintf(stderr, "---- state 1:\n%s---- state 2:\n%s", a, b);
	}
	free(a);
	free(b);
	return same;
}

/* Reloads user on a brand-new index (a new node with an empty cache)
 * and compares with a. */
static bool same_on_new_node(struct account *a, unsigned every)
{
	struct index *idx = new_index(fs_store, NULL, every);
	struct account *b = get_acct(idx, account_user(a));
	bool same = b != NULL && same_state(a, b);
	index_account_unref(&b);
	index_destroy(&idx);
	return same;
}

/* ---- tests ---- */

static void test_new_account(struct index *idx)
{
	struct account *a = get_acct(idx, "alice");
	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK_EQ_STR(account_user(a), "alice");
	CHECK_EQ_INT(account_mailbox_count(a), 6);
	static const char *const names[] = { "Archive", "Drafts", "INBOX",
					     "Junk", "Sent", "Trash" };
	static const uint32_t sp[] = { MBOX_SPECIAL_ARCHIVE,
				       MBOX_SPECIAL_DRAFTS, 0,
				       MBOX_SPECIAL_JUNK, MBOX_SPECIAL_SENT,
				       MBOX_SPECIAL_TRASH };
	for (size_t i = 0; i < 6; i++) {
		struct mailbox *mb = account_mailbox_at(a, i);
		CHECK_EQ_STR(mb->name, names[i]);
		CHECK_EQ_INT(mb->special_use, sp[i]);
		CHECK_EQ_INT(mb->uidnext, 1);
		CHECK_EQ_INT(mb->count, 0);
		CHECK(mb->uidvalidity > 0);
		CHECK(account_is_subscribed(a, kstr_cstr(names[i])));
		for (size_t j = 0; j < i; j++)
			CHECK(account_mailbox_at(a, j)->uidvalidity !=
			      mb->uidvalidity);
	}
	CHECK(account_mailbox_find(a, KSTR_LIT("inbox")) ==
	      account_mailbox_find(a, KSTR_LIT("INBOX")));
	CHECK(account_mailbox_find(a, KSTR_LIT("iNbOx")) != NULL);
	CHECK(account_mailbox_find(a, KSTR_LIT("drafts")) == NULL);
	CHECK(account_mailbox_by_id(a, mbid(a, "Sent")) == mbox(a, "Sent"));
	CHECK_EQ_INT(account_subscription_count(a), 6);
	CHECK_EQ_INT(log_count("alice"), 1);
	CHECK(account_modseq(a) >= 6);

	/* Getting it again is the same account, refreshed, no new entry. */
	struct account *a2 = get_acct(idx, "alice");
	CHECK(a2 == a);
	index_account_unref(&a2);
	CHECK(a2 == NULL);
	CHECK_EQ_INT(log_count("alice"), 1);
	index_account_unref(&a);

	/* Invalid user names. */
	struct account *bad = NULL;
	const char *err = NULL;
	CHECK_EQ_INT(index_account_get(idx, "a/b", &bad, &err), KURA_EINVAL);
	CHECK_EQ_INT(index_account_get(idx, "", &bad, &err), KURA_EINVAL);
	CHECK(bad == NULL);

	/* Odd but valid names are escaped in keys. */
	struct account *w = get_acct(idx, "..we ird%");
	CHECK(w != NULL);
	char key[200];
	snprintf(key, sizeof(key), "u/%02x/%%2E%%2Ewe%%20ird%%25/log/%016x",
		 (unsigned)(hash64("..we ird%", 9) & 0xff), 1u);
	struct store_stat st;
	CHECK_EQ_INT(store_head(fs_store, key, &st, NULL), 0);
	index_account_unref(&w);
}

static void test_mailboxes(struct index *idx)
{
	struct account *a = get_acct(idx, "bob");
	if (a == NULL) {
		CHECK(0);
		return;
	}
	size_t entries = log_count("bob");

	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Foo", NULL), 0);
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Foo/Bar", NULL), 0);
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Foo/Bar/Baz/", NULL), 0);
	CHECK(mbox(a, "Foo/Bar/Baz") != NULL);
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Foo", NULL), KURA_EEXISTS);
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "inbox", NULL), KURA_EEXISTS);
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "inbox/Child", NULL), 0);
	CHECK(mbox(a, "INBOX/Child") != NULL);
	CHECK(simple_txn_rc(a, 'c', "", NULL) < 0);
	CHECK(simple_txn_rc(a, 'c', "/abs", NULL) < 0);
	CHECK(simple_txn_rc(a, 'c', "a//b", NULL) < 0);
	CHECK(simple_txn_rc(a, 'c', "with\x01" "ctl", NULL) < 0);
	CHECK(simple_txn_rc(a, 'c', "8bit\xc3\xa9", NULL) < 0);
	CHECK_EQ_INT(log_count("bob"), entries + 4);

	struct mailbox *foo = mbox(a, "Foo");
	uint64_t foo_id = foo->id, bar_id = mbid(a, "Foo/Bar");
	uint32_t foo_uv = foo->uidvalidity;

	/* Rename with children; ids and UIDVALIDITY kept. */
	CHECK_EQ_INT(simple_txn_rc(a, 'r', "Foo", "Qux"), 0);
	CHECK(mbox(a, "Foo") == NULL);
	CHECK(mbox(a, "Foo/Bar") == NULL);
	CHECK_EQ_INT(mbid(a, "Qux"), foo_id);
	CHECK_EQ_INT(mbid(a, "Qux/Bar"), bar_id);
	CHECK(mbox(a, "Qux/Bar/Baz") != NULL);
	CHECK_EQ_INT(mbox(a, "Qux")->uidvalidity, foo_uv);
	/* Sorted by name after the rename. */
	for (size_t i = 1; i < account_mailbox_count(a); i++)
		CHECK(strcmp(account_mailbox_at(a, i - 1)->name,
			     account_mailbox_at(a, i)->name) < 0);
	CHECK_EQ_INT(simple_txn_rc(a, 'r', "Qux", "Qux/Sub"), KURA_ENOPERM);
	CHECK_EQ_INT(simple_txn_rc(a, 'r', "Qux", "Drafts"), KURA_EEXISTS);
	CHECK_EQ_INT(simple_txn_rc(a, 'r', "Nope", "Other"), KURA_ENOTFOUND);
	/* A child moving to where its parent's name was. */
	CHECK_EQ_INT(simple_txn_rc(a, 'r', "Qux/Bar", "Qux2"), 0);
	CHECK(mbox(a, "Qux2/Baz") != NULL);
	CHECK_EQ_INT(mbid(a, "Qux2"), bar_id);

	/* Renaming INBOX moves its messages; INBOX stays, new and empty. */
	uint32_t uids[3];
	CHECK_EQ_INT(append_n(a, "INBOX", 3, 0, NULL, uids), 0);
	struct mailbox *inbox = mbox(a, "INBOX");
	uint64_t inbox_id = inbox->id;
	uint32_t inbox_uv = inbox->uidvalidity;
	CHECK_EQ_INT(simple_txn_rc(a, 'r', "INBOX", "Old"), 0);
	struct mailbox *old = mbox(a, "Old");
	inbox = mbox(a, "INBOX");
	CHECK(old != NULL && inbox != NULL);
	if (old != NULL && inbox != NULL) {
		CHECK_EQ_INT(old->count, 3);
		CHECK_EQ_INT(old->id, inbox_id);
		CHECK_EQ_INT(old->uidvalidity, inbox_uv);
		CHECK_EQ_INT(inbox->count, 0);
		CHECK(inbox->id != inbox_id);
		CHECK(inbox->uidvalidity != inbox_uv);
		CHECK_EQ_INT(inbox->uidnext, 1);
	}
	CHECK(mbox(a, "INBOX/Child") != NULL);

	/* Delete. */
	CHECK_EQ_INT(simple_txn_rc(a, 'd', "INBOX", NULL), KURA_ENOPERM);
	CHECK_EQ_INT(simple_txn_rc(a, 'd', "nothing", NULL), KURA_ENOTFOUND);
	uint32_t qux_uv = mbox(a, "Qux")->uidvalidity;
	CHECK_EQ_INT(simple_txn_rc(a, 'd', "Qux", NULL), 0);
	CHECK(mbox(a, "Qux") == NULL);
	CHECK(mbox(a, "Qux2/Baz") != NULL);
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Qux", NULL), 0);
	CHECK(mbox(a, "Qux") != NULL && mbox(a, "Qux")->uidvalidity != qux_uv);
	CHECK(mbox(a, "Qux")->id != foo_id);

	/* Subscriptions need not name existing mailboxes. */
	CHECK_EQ_INT(simple_txn_rc(a, 's', "Qux", "on"), 0);
	CHECK_EQ_INT(simple_txn_rc(a, 's', "Ghost", "on"), 0);
	CHECK(account_is_subscribed(a, KSTR_LIT("Ghost")));
	CHECK(account_is_subscribed(a, KSTR_LIT("inbox")));
	size_t before = log_count("bob");
	CHECK_EQ_INT(simple_txn_rc(a, 's', "Ghost", "on"), 0);
	CHECK_EQ_INT(log_count("bob"), before);	/* no-op: no entry */
	CHECK_EQ_INT(simple_txn_rc(a, 's', "Ghost", NULL), 0);
	CHECK(!account_is_subscribed(a, KSTR_LIT("Ghost")));
	for (size_t i = 1; i < account_subscription_count(a); i++)
		CHECK(strcmp(account_subscription_at(a, i - 1),
			     account_subscription_at(a, i)) < 0);

	/* A transaction is all or nothing. */
	struct index_txn *t = index_txn_begin(a);
	index_txn_create_mailbox(t, KSTR_LIT("Atomic"), 0);
	index_txn_delete_mailbox(t, KSTR_LIT("NotThere"));
	const char *err = NULL;
	CHECK_EQ_INT(index_txn_commit(t, &err), KURA_ENOTFOUND);
	CHECK(err != NULL && strstr(err, "NotThere") != NULL);
	CHECK_EQ_INT(index_txn_commit(t, &err), KURA_EINVAL);
	index_txn_free(&t);
	CHECK(mbox(a, "Atomic") == NULL);

	/* Several ops in one transaction see each other. */
	t = index_txn_begin(a);
	int o1 = index_txn_create_mailbox(t, KSTR_LIT("T1"), 0);
	index_txn_rename_mailbox(t, KSTR_LIT("T1"), KSTR_LIT("T2"));
	int o3 = index_txn_create_mailbox(t, KSTR_LIT("T1"),
					  MBOX_SPECIAL_FLAGGED);
	before = log_count("bob");
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	CHECK_EQ_INT(log_count("bob"), before + 1);
	CHECK(mbox(a, "T1") != NULL && mbox(a, "T2") != NULL);
	CHECK_EQ_INT(mbox(a, "T2")->uidvalidity,
		     index_txn_result(t, o1)->uidvalidity);
	CHECK_EQ_INT(mbox(a, "T1")->uidvalidity,
		     index_txn_result(t, o3)->uidvalidity);
	CHECK_EQ_INT(mbox(a, "T1")->special_use, MBOX_SPECIAL_FLAGGED);
	index_txn_free(&t);

	CHECK(same_on_new_node(a, 100));
	index_account_unref(&a);
}

static void test_messages(struct index *idx)
{
	struct account *a = get_acct(idx, "carol");
	if (a == NULL) {
		CHECK(0);
		return;
	}
	const char *err = NULL;
	struct fault_store *fst = (struct fault_store *)NULL;
	(void)fst;

	/* Message bodies. */
	static const char body[] = "Subject: hi\r\n\r\nhello world\r\n";
	uint8_t guid[INDEX_GUID_LEN];
	CHECK_EQ_INT(index_message_put(a, body, sizeof(body) - 1, guid, &err), 0);
	struct buf b;
	buf_init(&b, 0);
	CHECK_EQ_INT(index_message_get(a, guid, 0, UINT64_MAX, &b, &err), 0);
	CHECK(buf_used(&b) == sizeof(body) - 1 &&
	      memcmp(buf_head(&b), body, sizeof(body) - 1) == 0);
	buf_reset(&b);
	CHECK_EQ_INT(index_message_get(a, guid, 9, 2, &b, &err), 0);
	CHECK(buf_used(&b) == 2 && memcmp(buf_head(&b), "hi", 2) == 0);
	uint8_t noguid[INDEX_GUID_LEN] = { 1 };
	buf_reset(&b);
	CHECK_EQ_INT(index_message_get(a, noguid, 0, UINT64_MAX, &b, &err),
		     KURA_ENOTFOUND);
	buf_deinit(&b);

	/* APPEND: consecutive UIDs, increasing MODSEQs. */
	uint64_t ms0 = account_modseq(a);
	uint32_t uids[8];
	CHECK_EQ_INT(append_n(a, "INBOX", 3, MSG_SEEN, NULL, uids), 0);
	CHECK(uids[0] == 1 && uids[1] == 2 && uids[2] == 3);
	struct mailbox *in = mbox(a, "INBOX");
	CHECK_EQ_INT(in->count, 3);
	CHECK_EQ_INT(in->uidnext, 4);
	CHECK_EQ_INT(in->total_size, 100 + 101 + 102);
	CHECK(in->msgs[0].modseq > ms0);
	CHECK(in->msgs[1].modseq > in->msgs[0].modseq);
	CHECK_EQ_INT(in->highestmodseq, in->msgs[2].modseq);
	CHECK_EQ_INT(account_modseq(a), in->msgs[2].modseq);
	CHECK_EQ_STR(in->msgs[0].meta->envelope, sample_meta.envelope);
	CHECK_EQ_INT(in->msgs[0].meta->sent_tz_min, -480);
	CHECK_EQ_INT(in->msgs[0].idate_tz_min, 60);
	CHECK(mailbox_msg_by_uid(in, 2) == &in->msgs[1]);
	CHECK(mailbox_msg_by_uid(in, 4) == NULL);
	CHECK_EQ_INT(mailbox_msg_lower_bound(in, 0), 0);
	CHECK_EQ_INT(mailbox_msg_lower_bound(in, 3), 2);
	CHECK_EQ_INT(mailbox_msg_lower_bound(in, 9), 3);

	/* Exactly one PUT per APPEND commit. */
	struct fault_store *probe = NULL;
	(void)probe;

	/* STORE: only messages whose flags change get the new MODSEQ. */
	uint64_t ms3 = in->msgs[2].modseq;
	struct index_op_result r;
	uint32_t s12[] = { 1, 2 };
	CHECK_EQ_INT(txn_store(a, "INBOX", s12, 2, STORE_MODE_ADD,
			       MSG_FLAGGED, NULL, 0, &r), 0);
	in = mbox(a, "INBOX");
	CHECK(r.modseq > ms3);
	CHECK_EQ_INT(in->msgs[0].flags, MSG_SEEN | MSG_FLAGGED);
	CHECK_EQ_INT(in->msgs[0].modseq, r.modseq);
	CHECK_EQ_INT(in->msgs[1].modseq, r.modseq);
	CHECK_EQ_INT(in->msgs[2].modseq, ms3);
	CHECK_EQ_INT(in->highestmodseq, r.modseq);
	size_t before = log_count("carol");
	CHECK_EQ_INT(txn_store(a, "INBOX", s12, 2, STORE_MODE_ADD,
			       MSG_FLAGGED, NULL, 0, &r), 0);
	CHECK_EQ_INT(r.modseq, 0);
	CHECK_EQ_INT(log_count("carol"), before);

	/* Keywords. */
	uint32_t s2[] = { 2 }, s3[] = { 3 }, s123[] = { 1, 2, 3 };
	CHECK_EQ_INT(txn_store(a, "INBOX", s2, 1, STORE_MODE_ADD, 0,
			       "$Forwarded", 0, &r), 0);
	in = mbox(a, "INBOX");
	CHECK_EQ_INT(in->nkeywords, 1);
	CHECK_EQ_INT(mailbox_keyword_find(in, KSTR_LIT("$forwarded")), 0);
	CHECK_EQ_INT(mailbox_keyword_find(in, KSTR_LIT("Other")), -1);
	CHECK_EQ_INT(in->msgs[1].keywords, 1);
	buf_init(&b, 0);
	index_flags_write(&b, in, &in->msgs[1], true);
	buf_append(&b, "", 1);
	CHECK_EQ_STR((const char *)b.data,
		     "\\Seen \\Flagged \\Recent $Forwarded");
	buf_reset(&b);
	index_flags_write(&b, in, &in->msgs[2], false);
	buf_append(&b, "", 1);
	CHECK_EQ_STR((const char *)b.data, "\\Seen");
	buf_deinit(&b);
	CHECK_EQ_INT(index_flag_from_name(KSTR_LIT("\\seen")), MSG_SEEN);
	CHECK_EQ_INT(index_flag_from_name(KSTR_LIT("\\DRAFT")), MSG_DRAFT);
	CHECK_EQ_INT(index_flag_from_name(KSTR_LIT("\\Recent")), 0);
	CHECK_EQ_INT(index_flag_from_name(KSTR_LIT("Seen")), 0);

	/* Replace and remove modes. */
	CHECK_EQ_INT(txn_store(a, "INBOX", s123, 3, STORE_MODE_REPLACE,
			       MSG_ANSWERED, NULL, 0, &r), 0);
	in = mbox(a, "INBOX");
	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ_INT(in->msgs[i].flags, MSG_ANSWERED);
		CHECK_EQ_INT(in->msgs[i].keywords, 0);
	}
	CHECK_EQ_INT(txn_store(a, "INBOX", s3, 1, STORE_MODE_ADD, MSG_DRAFT,
			       "Work", 0, &r), 0);
	CHECK_EQ_INT(txn_store(a, "INBOX", s3, 1, STORE_MODE_REMOVE,
			       MSG_ANSWERED, "$FORWARDED", 0, &r), 0);
	in = mbox(a, "INBOX");
	CHECK_EQ_INT(in->msgs[2].flags, MSG_DRAFT);
	CHECK_EQ_INT(in->msgs[2].keywords, 2);	/* Work */

	/* UNCHANGEDSINCE. */
	uint64_t m1 = in->msgs[0].modseq, m3 = in->msgs[2].modseq;
	CHECK(m3 > m1);
	struct index_txn *t = index_txn_begin(a);
	int op = index_txn_store(t, mbid(a, "INBOX"), s123, 3, STORE_MODE_ADD,
				 MSG_SEEN, NULL, 0, m1);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	const struct index_op_result *res = index_txn_result(t, op);
	CHECK_EQ_INT(res->nfailed, 1);
	CHECK(res->nfailed == 1 && res->failed_uids[0] == 3);
	CHECK(res->modseq > m3);
	in = mbox(a, "INBOX");
	CHECK(in->msgs[0].flags & MSG_SEEN);
	CHECK(in->msgs[1].flags & MSG_SEEN);
	CHECK(!(in->msgs[2].flags & MSG_SEEN));
	CHECK_EQ_INT(in->msgs[2].modseq, m3);
	index_txn_free(&t);
	CHECK(index_txn_result(NULL == t ? (t = index_txn_begin(a)) : t, 5) ==
	      NULL);
	index_txn_free(&t);

	/* Bad arguments are refused by the adders. */
	t = index_txn_begin(a);
	uint32_t unsorted[] = { 3, 1 };
	struct kstr badkw = KSTR_LIT("bad kw");
	struct kstr syskw = KSTR_LIT("\\Seen");
	CHECK(index_txn_store(t, 1, unsorted, 2, STORE_MODE_ADD, 0, NULL, 0,
			      0) < 0);
	CHECK(index_txn_store(t, 1, s3, 1, STORE_MODE_ADD, 0, &badkw, 1, 0) <
	      0);
	CHECK(index_txn_store(t, 1, s3, 1, STORE_MODE_ADD, 0, &syskw, 1, 0) <
	      0);
	CHECK(index_txn_expunge(t, 1, unsorted, 2) < 0);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);	/* empty: fine */
	index_txn_free(&t);

	/* EXPUNGE. */
	uint64_t hms = mbox(a, "INBOX")->highestmodseq;
	t = index_txn_begin(a);
	uint32_t e25[] = { 2, 5 };
	op = index_txn_expunge(t, mbid(a, "INBOX"), e25, 2);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	res = index_txn_result(t, op);
	CHECK(res->nuids == 1 && res->uids[0] == 2);
	CHECK(res->modseq > hms);
	in = mbox(a, "INBOX");
	CHECK_EQ_INT(in->count, 2);
	CHECK(mailbox_msg_by_uid(in, 2) == NULL);
	CHECK_EQ_INT(in->total_size, 100 + 102);
	CHECK_EQ_INT(in->nexpunged, 1);
	CHECK(in->nexpunged == 1 && in->expunged[0].uid == 2 &&
	      in->expunged[0].modseq == res->modseq);
	CHECK_EQ_INT(in->highestmodseq, res->modseq);
	index_txn_free(&t);

	/* COPY: new UIDs in the target, flags and keywords kept, cached
	 * fields shared in memory. */
	size_t entries = log_count("carol");
	t = index_txn_begin(a);
	uint32_t c13[] = { 1, 3, 7 };
	op = index_txn_copy(t, mbid(a, "INBOX"), c13, 3, mbid(a, "Archive"),
			    false);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	res = index_txn_result(t, op);
	CHECK_EQ_INT(res->nuids, 2);
	CHECK(res->nuids == 2 && res->src_uids[0] == 1 &&
	      res->src_uids[1] == 3 && res->uids[0] == 1 && res->uids[1] == 2);
	CHECK_EQ_INT(res->uidvalidity, mbox(a, "Archive")->uidvalidity);
	struct mailbox *ar = mbox(a, "Archive");
	in = mbox(a, "INBOX");
	CHECK_EQ_INT(ar->count, 2);
	CHECK(memcmp(ar->msgs[0].guid, in->msgs[0].guid, 16) == 0);
	CHECK(ar->msgs[0].meta == in->msgs[0].meta);
	CHECK_EQ_INT(ar->msgs[1].flags, MSG_DRAFT);
	CHECK_EQ_INT(ar->nkeywords, 1);
	CHECK_EQ_STR(ar->keywords[0], "Work");
	CHECK_EQ_INT(ar->msgs[1].keywords, 1);
	CHECK_EQ_INT(ar->total_size, in->total_size);
	CHECK_EQ_INT(log_count("carol"), entries + 1);
	index_txn_free(&t);

	/* MOVE: appends and expunge in one entry. */
	entries = log_count("carol");
	t = index_txn_begin(a);
	uint32_t mv[] = { 3 };
	op = index_txn_copy(t, mbid(a, "INBOX"), mv, 1, mbid(a, "Trash"), true);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	res = index_txn_result(t, op);
	CHECK(res->nuids == 1 && res->uids[0] == 1 && res->src_uids[0] == 3);
	CHECK_EQ_INT(log_count("carol"), entries + 1);
	CHECK(mailbox_msg_by_uid(mbox(a, "INBOX"), 3) == NULL);
	CHECK_EQ_INT(mbox(a, "Trash")->count, 1);
	CHECK_EQ_INT(mbox(a, "Trash")->msgs[0].keywords, 1);
	index_txn_free(&t);

	/* Copy within one mailbox. */
	t = index_txn_begin(a);
	uint32_t one[] = { 1 };
	op = index_txn_copy(t, mbid(a, "INBOX"), one, 1, mbid(a, "INBOX"),
			    false);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	CHECK_EQ_INT(index_txn_result(t, op)->uids[0], 4);
	index_txn_free(&t);

	/* Nothing to copy. */
	t = index_txn_begin(a);
	uint32_t none[] = { 99 };
	op = index_txn_copy(t, mbid(a, "INBOX"), none, 1, mbid(a, "Trash"),
			    true);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	CHECK_EQ_INT(index_txn_result(t, op)->nuids, 0);
	index_txn_free(&t);

	/* Mailbox that does not exist. */
	CHECK_EQ_INT(append_n(a, "Nope", 1, 0, NULL, NULL), KURA_ENOTFOUND);

	/* Keywords up to the limit, then KURA_ELIMIT. */
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Kw", NULL), 0);
	CHECK_EQ_INT(append_n(a, "Kw", 1, 0, NULL, NULL), 0);
	char kw[32];
	int rc = 0;
	for (int i = 0; i < INDEX_MAX_KEYWORDS && rc == 0; i++) {
		snprintf(kw, sizeof(kw), "kw%02d", i);
		rc = txn_store(a, "Kw", one, 1, STORE_MODE_ADD, 0, kw, 0, NULL);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(mbox(a, "Kw")->nkeywords, INDEX_MAX_KEYWORDS);
	CHECK_EQ_INT(mbox(a, "Kw")->msgs[0].keywords, UINT64_MAX);
	CHECK_EQ_INT(txn_store(a, "Kw", one, 1, STORE_MODE_ADD, 0, "kw64", 0,
			       NULL), KURA_ELIMIT);
	CHECK_EQ_INT(append_n(a, "Kw", 1, 0, "another", NULL), KURA_ELIMIT);
	CHECK_EQ_INT(append_n(a, "Kw", 1, 0, "KW07", NULL), 0);
	/* Removing an unknown keyword is not a new keyword. */
	CHECK_EQ_INT(txn_store(a, "Kw", one, 1, STORE_MODE_REMOVE, 0, "kw99", 0,
			       NULL), 0);
	/* Copying 64 keywords into a mailbox that has others. */
	t = index_txn_begin(a);
	index_txn_copy(t, mbid(a, "Kw"), one, 1, mbid(a, "Archive"), false);
	CHECK_EQ_INT(index_txn_commit(t, &err), KURA_ELIMIT);
	index_txn_free(&t);
	CHECK_EQ_INT(txn_store(a, "Kw", one, 1, STORE_MODE_REPLACE, 0, NULL, 0,
			       NULL), 0);
	CHECK_EQ_INT(mbox(a, "Kw")->msgs[0].keywords, 0);

	/* Cached fields that are not UTF-8 survive the JSON round trip. */
	struct msg_meta odd = sample_meta;
	odd.envelope = (char *)"(NIL \"caf\xe9 \xff\")";
	t = index_txn_begin(a);
	struct index_append m;
	memset(&m, 0, sizeof(m));
	random_bytes(m.guid, 16);
	m.size = 5;
	m.meta = &odd;
	op = index_txn_append(t, mbid(a, "Sent"), &m);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	index_txn_free(&t);
	CHECK_EQ_STR(mbox(a, "Sent")->msgs[0].meta->envelope, odd.envelope);

	/* \Recent. */
	in = mbox(a, "INBOX");
	uint32_t floor = mailbox_claim_recent(in, false);
	CHECK_EQ_INT(floor, 1);
	CHECK_EQ_INT(mailbox_claim_recent(in, false), in->uidnext);
	CHECK_EQ_INT(mailbox_claim_recent(in, true), in->uidnext);

	CHECK(same_on_new_node(a, 100));
	index_account_unref(&a);
}

static void hook_fail_next(void *arg)
{
	((struct fault_store *)arg)->fail_puts = 1;
}

/* One PUT per APPEND commit; failures leave nothing behind. */
static void test_faults(void)
{
	struct fault_store f;
	memset(&f, 0, sizeof(f));
	f.base.ops = &fault_ops;
	f.inner = fs_store;
	struct index *idx = new_index(&f.base, NULL, 1000);
	struct account *a = get_acct(idx, "dave");
	if (a == NULL) {
		CHECK(0);
		index_destroy(&idx);
		return;
	}
	const char *err = NULL;

	unsigned puts = f.puts;
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(f.puts - puts, 1);
	uint8_t guid[16];
	puts = f.puts;
	CHECK_EQ_INT(index_message_put(a, "x", 1, guid, &err), 0);
	CHECK_EQ_INT(f.puts - puts, 1);

	/* The store fails: KURA_EUNAVAIL, nothing applied, nothing
	 * written. */
	char *before = dump(a);
	size_t entries = log_count("dave");
	f.fail_puts = 3;
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), KURA_EUNAVAIL);
	char *after = dump(a);
	CHECK_EQ_STR(before, after);
	free(after);
	CHECK_EQ_INT(log_count("dave"), entries);
	f.fail_puts = 1;
	CHECK_EQ_INT(index_message_put(a, "x", 1, guid, &err), KURA_EUNAVAIL);
	f.fail_puts = 0;

	/* Two failures then success: retried, one entry. */
	uint32_t uid = 0;
	f.fail_puts = 2;
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, &uid), 0);
	CHECK_EQ_INT(uid, 2);
	CHECK_EQ_INT(log_count("dave"), entries + 1);

	/* The PUT happened but its answer was lost: the retry finds our
	 * own entry and succeeds, once. */
	f.lost_acks = 1;
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, &uid), 0);
	CHECK_EQ_INT(uid, 3);
	CHECK_EQ_INT(log_count("dave"), entries + 2);
	CHECK_EQ_INT(mbox(a, "INBOX")->count, 3);
	f.lost_acks = 0;

	/* Written, but every answer lost: KURA_EUNAVAIL and nothing
	 * applied in memory; the next refresh finds the entry. */
	free(before);
	before = dump(a);
	f.lost_acks = 1;
	f.then_fail = 2;
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), KURA_EUNAVAIL);
	after = dump(a);
	CHECK_EQ_STR(before, after);
	free(after);
	free(before);
	CHECK_EQ_INT(log_count("dave"), entries + 3);
	CHECK_EQ_INT(account_refresh(a, &err), 0);
	CHECK_EQ_INT(mbox(a, "INBOX")->count, 4);

	CHECK(same_on_new_node(a, 1000));
	index_account_unref(&a);
	index_destroy(&idx);

	/* A snapshot that cannot be written is logged and ignored. */
	idx = new_index(&f.base, NULL, 3);
	a = get_acct(idx, "dora");
	f.hook_suffix = "/mailboxes";
	f.hook = hook_fail_next;
	f.hook_arg = &f;
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	CHECK(f.hook == NULL);
	CHECK_EQ_INT(hint_seq("dora"), 0);
	CHECK_EQ_INT(count_keys("dora", "snap/"), 6);	/* objects, no list */
	CHECK(same_on_new_node(a, 1000));
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(hint_seq("dora"), 6);
	CHECK(same_on_new_node(a, 1000));
	index_account_unref(&a);
	index_destroy(&idx);
}

struct counting_listener {
	struct account_listener l;
	int n;
};

static void count_change(struct account_listener *l)
{
	((struct counting_listener *)l)->n++;
}

static void hook_get_account(void *arg)
{
	struct index *other = arg;
	struct account *a = get_acct(other, "erin");
	CHECK(a != NULL);
	index_account_unref(&a);
}

/* Two nodes. */
static void test_two_nodes(void)
{
	struct fault_store f;
	memset(&f, 0, sizeof(f));
	f.base.ops = &fault_ops;
	f.inner = fs_store;
	struct index *ia = new_index(fs_store, NULL, 1000);
	struct index *ib = new_index(&f.base, NULL, 1000);

	/* A new user on two nodes at once: B's first entry loses the race
	 * to A's; one set of default mailboxes. */
	f.hook_suffix = "/log/0000000000000001";
	f.hook = hook_get_account;
	f.hook_arg = ia;
	struct account *b = get_acct(ib, "erin");
	struct account *a = get_acct(ia, "erin");
	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out;
	CHECK(f.hook == NULL);
	CHECK_EQ_INT(log_count("erin"), 1);
	CHECK_EQ_INT(account_mailbox_count(b), 6);
	CHECK(same_state(a, b));

	/* Alternate commits without refreshing: every other commit meets a
	 * conflict, reads the other's entry and takes the next UID. */
	uint32_t seen[41] = { 0 };
	bool dup = false;
	for (int i = 0; i < 40; i++) {
		struct account *x = i % 2 ? b : a;
		uint32_t uid = 0;
		CHECK_EQ_INT(append_n(x, "INBOX", 1, 0, NULL, &uid), 0);
		if (uid == 0 || uid > 40 || seen[uid])
			dup = true;
		else
			seen[uid] = 1;
	}
	CHECK(!dup);
	CHECK_EQ_INT(log_count("erin"), 41);
	const char *err = NULL;
	CHECK_EQ_INT(account_refresh(a, &err), 0);
	CHECK_EQ_INT(account_refresh(b, &err), 0);
	CHECK_EQ_INT(mbox(a, "INBOX")->count, 40);
	CHECK(same_state(a, b));

	/* Flags changed on both sides converge. */
	uint32_t s1[] = { 1 }, s2[] = { 2 };
	CHECK_EQ_INT(txn_store(a, "INBOX", s1, 1, STORE_MODE_ADD, MSG_SEEN,
			       NULL, 0, NULL), 0);
	CHECK_EQ_INT(txn_store(b, "INBOX", s2, 1, STORE_MODE_ADD, MSG_FLAGGED,
			       NULL, 0, NULL), 0);
	CHECK_EQ_INT(account_refresh(a, &err), 0);
	CHECK(same_state(a, b));

	/* UNCHANGEDSINCE against a change made by the other node. */
	uint64_t ms = mbox(a, "INBOX")->msgs[0].modseq;
	CHECK_EQ_INT(txn_store(b, "INBOX", s1, 1, STORE_MODE_ADD, MSG_DRAFT,
			       NULL, 0, NULL), 0);
	struct index_txn *t = index_txn_begin(a);
	int op = index_txn_store(t, mbid(a, "INBOX"), s1, 1, STORE_MODE_ADD,
				 MSG_ANSWERED, NULL, 0, ms);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	CHECK_EQ_INT(index_txn_result(t, op)->nfailed, 1);
	index_txn_free(&t);
	CHECK(!(mbox(a, "INBOX")->msgs[0].flags & MSG_ANSWERED));

	/* The other node deleted the target mailbox. */
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Tmp", NULL), 0);
	CHECK_EQ_INT(account_refresh(b, &err), 0);
	CHECK(mbox(b, "Tmp") != NULL);
	uint64_t tmp_id = mbid(b, "Tmp");
	CHECK_EQ_INT(simple_txn_rc(a, 'd', "Tmp", NULL), 0);
	t = index_txn_begin(b);
	struct index_append m;
	memset(&m, 0, sizeof(m));
	random_bytes(m.guid, 16);
	m.size = 1;
	index_txn_append(t, tmp_id, &m);
	size_t entries = log_count("erin");
	CHECK_EQ_INT(index_txn_commit(t, &err), KURA_ENOTFOUND);
	index_txn_free(&t);
	CHECK(mbox(b, "Tmp") == NULL);
	CHECK_EQ_INT(log_count("erin"), entries);
	CHECK(same_state(a, b));

	/* Listeners hear own commits and refreshes. */
	struct counting_listener la, lb;
	memset(&la, 0, sizeof(la));
	memset(&lb, 0, sizeof(lb));
	la.l.changed = count_change;
	lb.l.changed = count_change;
	account_listener_add(a, &la.l);
	account_listener_add(b, &lb.l);
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(la.n, 1);
	CHECK_EQ_INT(lb.n, 0);
	CHECK_EQ_INT(account_refresh(b, &err), 0);
	CHECK_EQ_INT(lb.n, 1);
	CHECK_EQ_INT(account_refresh(b, &err), 0);
	CHECK_EQ_INT(lb.n, 1);
	account_listener_remove(a, &la.l);
	account_listener_remove(b, &lb.l);
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(la.n, 1);
	CHECK(same_on_new_node(a, 1000));
out:
	index_account_unref(&a);
	index_account_unref(&b);
	index_destroy(&ia);
	index_destroy(&ib);
}


static struct fault_store *fault_new(void)
{
	struct fault_store *f = xcalloc(1, sizeof(*f));
	f->base.ops = &fault_ops;
	f->inner = fs_store;
	return f;
}

/* Snapshots: written every N entries, unchanged mailboxes referenced,
 * loads from snapshot + tail, hint not trusted, swept log entries. */
static void test_snapshots(const char *cachedir)
{
	char sub[128];
	const char *err = NULL;
	struct index *idx = new_index(fs_store, NULL, 5);
	struct account *a = get_acct(idx, "frank");
	if (a == NULL) {
		CHECK(0);
		index_destroy(&idx);
		return;
	}
	CHECK_EQ_INT(simple_txn_rc(a, 'c', "Side", NULL), 0);
	CHECK_EQ_INT(append_n(a, "Side", 2, 0, "side", NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(append_n(a, "INBOX", 2, 0, NULL, NULL), 0);
	uint64_t s1 = hint_seq("frank");
	CHECK_EQ_INT(s1, 5);
	snprintf(sub, sizeof(sub), "snap/%016llx/", (unsigned long long)s1);
	CHECK_EQ_INT(count_keys("frank", sub), 8);	/* 7 mailboxes + list */
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(append_n(a, "INBOX", 1, MSG_SEEN, NULL, NULL), 0);
	uint64_t s2 = hint_seq("frank");
	CHECK_EQ_INT(s2, 10);
	snprintf(sub, sizeof(sub), "snap/%016llx/mbox/", (unsigned long long)s2);
	CHECK_EQ_INT(count_keys("frank", sub), 1);	/* only INBOX changed */
	snprintf(sub, sizeof(sub), "snap/%016llx/mailboxes",
		 (unsigned long long)s2);
	json_t *j = read_json("frank", sub);
	CHECK(j != NULL);
	size_t i;
	json_t *v;
	int checked = 0;
	json_array_foreach(json_object_get(j, "mailboxes"), i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		uint64_t ref = (uint64_t)json_integer_value(
			json_object_get(v, "snap"));
		if (strcmp(name, "INBOX") == 0) {
			CHECK_EQ_INT(ref, s2);
			checked++;
		} else if (strcmp(name, "Side") == 0) {
			CHECK_EQ_INT(ref, s1);
			checked++;
		}
	}
	CHECK_EQ_INT(checked, 2);
	json_decref(j);
	/* A tail after the snapshot. */
	CHECK_EQ_INT(append_n(a, "Side", 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(simple_txn_rc(a, 's', "Side", "on"), 0);
	uint32_t s1u[] = { 1 };
	CHECK_EQ_INT(txn_store(a, "INBOX", s1u, 1, STORE_MODE_ADD, MSG_DELETED,
			       NULL, 0, NULL), 0);
	CHECK(same_on_new_node(a, 5));

	/* Requests of a cold load: hint, mailboxes, one object per
	 * mailbox, the tail, one miss. */
	struct fault_store *f = fault_new();
	struct index *i2 = new_index(&f->base, NULL, 1000);
	struct account *b = get_acct(i2, "frank");
	CHECK(b != NULL && same_state(a, b));
	CHECK_EQ_INT(f->gets, 1 + 1 + 7 + 4 + 1);
	CHECK_EQ_INT(f->lists, 0);
	/* A warm account: one request to be fresh. */
	unsigned gets = f->gets;
	CHECK_EQ_INT(account_refresh(b, &err), 0);
	CHECK_EQ_INT(f->gets - gets, 1);
	index_account_unref(&b);
	gets = f->gets;
	b = get_acct(i2, "frank");	/* from the per-thread LRU */
	CHECK_EQ_INT(f->gets - gets, 1);
	index_account_unref(&b);
	index_destroy(&i2);
	free(f);

	/* The hint is not the truth: missing, pointing nowhere, pointing
	 * at a snapshot that lost its list object. */
	del_key("frank", "snap/latest");
	CHECK(same_on_new_node(a, 1000));
	put_key("frank", "snap/latest", "{\"v\":1,\"seq\":4095}");
	CHECK(same_on_new_node(a, 1000));
	put_key("frank", "snap/latest", "garbage");
	CHECK(same_on_new_node(a, 1000));
	snprintf(sub, sizeof(sub), "snap/%016llx/mailboxes",
		 (unsigned long long)s2);
	del_key("frank", sub);
	snprintf(sub, sizeof(sub), "{\"v\":1,\"seq\":%llu}",
		 (unsigned long long)s2);
	put_key("frank", "snap/latest", sub);
	CHECK(same_on_new_node(a, 1000));

	/* Entries a snapshot covers were swept: loading does not need them. */
	snprintf(sub, sizeof(sub), "{\"v\":1,\"seq\":%llu}",
		 (unsigned long long)s1);
	put_key("frank", "snap/latest", sub);
	for (uint64_t s = 1; s <= s1; s++) {
		snprintf(sub, sizeof(sub), "log/%016llx",
			 (unsigned long long)s);
		del_key("frank", sub);
	}
	CHECK(same_on_new_node(a, 1000));

	/* A node restarted with its cache: the snapshot and entries come
	 * from LMDB; the store sees the hint and one freshness miss. */
	struct cache *c = NULL;
	CHECK_EQ_INT(cache_open(cachedir, 256ull << 20, &c, &err), 0);
	struct index *i3 = new_index(fs_store, c, 1000);
	b = get_acct(i3, "frank");
	CHECK(b != NULL && same_state(a, b));
	index_account_unref(&b);
	index_destroy(&i3);
	cache_close(&c);
	CHECK_EQ_INT(cache_open(cachedir, 256ull << 20, &c, &err), 0);
	struct fault_store *f2 = fault_new();
	i3 = new_index(&f2->base, c, 1000);
	b = get_acct(i3, "frank");
	CHECK(b != NULL && same_state(a, b));
	CHECK_EQ_INT(f2->gets, 2);
	index_account_unref(&b);
	index_destroy(&i3);
	cache_close(&c);
	free(f2);

	index_account_unref(&a);
	index_destroy(&idx);
}

/* ---- tasks: group commit and truly concurrent nodes ---- */

struct gc_ctx {
	struct account *a;
	struct index *idx;
	const char *user;
	uint64_t mb;
	int rc;
	int n;
	uint32_t uids[16];
};

static void gc_task(void *arg)
{
	struct gc_ctx *g = arg;
	struct index_txn *t = index_txn_begin(g->a);
	struct index_append m;
	memset(&m, 0, sizeof(m));
	random_bytes(m.guid, 16);
	m.size = 10;
	m.meta = &sample_meta;
	int op = index_txn_append(t, g->mb, &m);
	const char *err = NULL;
	g->rc = index_txn_commit(t, &err);
	if (g->rc == 0)
		g->uids[0] = index_txn_result(t, op)->uids[0];
	index_txn_free(&t);
}

/* A node's session: gets the account, appends n messages one by one. */
static void node_task(void *arg)
{
	struct gc_ctx *g = arg;
	struct account *a = NULL;
	const char *err = NULL;
	g->rc = index_account_get(g->idx, g->user, &a, &err);
	for (int i = 0; i < g->n && g->rc == 0; i++) {
		g->rc = append_n(a, "INBOX", 1, 0, NULL, &g->uids[i]);
		if (i % 3 == 0 && g->rc == 0)
			g->rc = account_refresh(a, &err);
	}
	index_account_unref(&a);
}

static void run_tasks(struct loop *l)
{
	for (int i = 0; i < 100000 && task_count() > 0; i++)
		loop_run_once(l, 20);
}

static void test_tasks(void)
{
	const char *err = NULL;
	struct loop *l = loop_create(256, &err);
	if (l == NULL) {
		printf("test_index: no io_uring (%s), task tests skipped\n",
		       err);
		return;
	}
	loop_set_current(l);
	struct index *idx = new_index(fs_store, NULL, 1000);
	struct account *a = get_acct(idx, "gina");
	if (a == NULL) {
		CHECK(0);
		goto out;
	}

	/* Group commit: the first commit's PUT is in flight while five
	 * more arrive; they share the next entry. One of them fails on its
	 * own without failing the others. */
	struct gc_ctx g[6];
	size_t before = log_count("gina");
	for (int i = 0; i < 6; i++) {
		memset(&g[i], 0, sizeof(g[i]));
		g[i].a = a;
		g[i].mb = i == 3 ? 777777 : mbid(a, "INBOX");
		task_spawn(l, gc_task, &g[i]);
	}
	run_tasks(l);
	CHECK_EQ_INT(log_count("gina"), before + 2);
	uint32_t mask = 0;
	for (int i = 0; i < 6; i++) {
		if (i == 3) {
			CHECK_EQ_INT(g[i].rc, KURA_ENOTFOUND);
			continue;
		}
		CHECK_EQ_INT(g[i].rc, 0);
		if (g[i].uids[0] >= 1 && g[i].uids[0] <= 5)
			mask |= 1u << g[i].uids[0];
	}
	CHECK_EQ_INT(mask, 0x3e);
	CHECK_EQ_INT(mbox(a, "INBOX")->count, 5);
	CHECK(same_on_new_node(a, 1000));

	/* Two nodes, two sessions each, all appending at once: conflicts
	 * happen while PUTs are in flight; no UID is given twice. */
	struct index *i2 = new_index(fs_store, NULL, 7);
	struct index *i3 = new_index(fs_store, NULL, 7);
	struct gc_ctx nd[4];
	for (int i = 0; i < 4; i++) {
		memset(&nd[i], 0, sizeof(nd[i]));
		nd[i].idx = i % 2 ? i3 : i2;
		nd[i].user = "hank";
		nd[i].n = 12;
		task_spawn(l, node_task, &nd[i]);
	}
	run_tasks(l);
	uint8_t seen[49] = { 0 };
	int dups = 0, bad = 0;
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_INT(nd[i].rc, 0);
		for (int k = 0; k < 12; k++) {
			uint32_t u = nd[i].uids[k];
			if (u == 0 || u > 48)
				bad++;
			else if (seen[u]++)
				dups++;
		}
	}
	CHECK_EQ_INT(dups, 0);
	CHECK_EQ_INT(bad, 0);
	struct account *h2 = get_acct(i2, "hank");
	struct account *h3 = get_acct(i3, "hank");
	CHECK(h2 != NULL && h3 != NULL && same_state(h2, h3));
	CHECK(h2 != NULL && mbox(h2, "INBOX")->count == 48);
	CHECK(h2 != NULL && same_on_new_node(h2, 1000));
	/* Sessions of one node share entries (group commit). */
	size_t hn = log_count("hank");
	CHECK(hn >= 25 && hn <= 49);
	index_account_unref(&h2);
	index_account_unref(&h3);
	index_destroy(&i2);
	index_destroy(&i3);
out:
	index_account_unref(&a);
	index_destroy(&idx);
	loop_set_current(NULL);
	loop_destroy(&l);
}

/* A 10,000-message mailbox: commit it, then load it on a cold node
 * from the snapshot (reported, not asserted). */
static void test_big(const char *cachedir)
{
	const char *err = NULL;
	struct index *idx = new_index(fs_store, NULL, 40);
	struct account *a = get_acct(idx, "ivan");
	if (a == NULL) {
		CHECK(0);
		index_destroy(&idx);
		return;
	}
	/* Cached fields of a realistic size (~1.5 KB per message). */
	struct buf env, bs;
	buf_init(&env, 0);
	buf_init(&bs, 0);
	buf_append_str(&env, "(\"Tue, 14 Nov 2023 10:00:00 +0100\" "
		       "\"Re: quarterly planning and the budget review\" ");
	for (int i = 0; i < 6; i++)
		buf_printf(&env, "((\"Person Number %d\" NIL \"person%d\" "
			   "\"example.com\")) ", i, i);
	buf_append_str(&env, "NIL \"<abc@example.com>\" "
		       "\"<0123456789.0123456789@mail.example.com>\")");
	buf_append_str(&bs, "(");
	for (int i = 0; i < 4; i++)
		buf_printf(&bs, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"UTF-8\") "
			   "NIL NIL \"QUOTED-PRINTABLE\" %d 40 NIL NIL NIL "
			   "NIL)", 1000 + i);
	buf_append_str(&bs, " \"MIXED\" (\"BOUNDARY\" \"xyz\") NIL NIL NIL)");
	struct msg_meta meta = { 0, (char *)buf_cstr(&env),
				 (char *)buf_cstr(&bs), (char *)buf_cstr(&bs),
				 1699952400, 60, 1200 };

	uint64_t t0 = time_mono_usec();
	int rc = 0;
	for (int batch = 0; batch < 100 && rc == 0; batch++) {
		struct index_txn *t = index_txn_begin(a);
		for (int i = 0; i < 100; i++) {
			struct index_append m;
			memset(&m, 0, sizeof(m));
			random_bytes(m.guid, 16);
			m.size = 2000 + (uint64_t)i;
			m.internaldate = 1700000000 + batch * 100 + i;
			m.flags = i % 3 ? MSG_SEEN : 0;
			m.meta = &meta;
			index_txn_append(t, mbid(a, "INBOX"), &m);
		}
		rc = index_txn_commit(t, &err);
		index_txn_free(&t);
	}
	CHECK_EQ_INT(rc, 0);
	uint64_t t_commit = time_mono_usec() - t0;
	CHECK_EQ_INT(mbox(a, "INBOX")->count, 10000);
	/* Ensure the newest snapshot covers everything. */
	uint32_t s1[] = { 1 };
	for (int i = 0; i < 40 && hint_seq("ivan") < 101; i++)
		txn_store(a, "INBOX", s1, 1, i % 2 ? STORE_MODE_ADD :
			  STORE_MODE_REMOVE, MSG_FLAGGED, NULL, 0, NULL);
	uint64_t hs = hint_seq("ivan");
	CHECK(hs >= 101);

	struct index *cold = new_index(fs_store, NULL, 1000);
	t0 = time_mono_usec();
	struct account *b = get_acct(cold, "ivan");
	uint64_t t_cold = time_mono_usec() - t0;
	CHECK(b != NULL && same_state(a, b));
	index_account_unref(&b);
	index_destroy(&cold);

	struct cache *c = NULL;
	CHECK_EQ_INT(cache_open(cachedir, 1ull << 30, &c, &err), 0);
	struct index *warm = new_index(fs_store, c, 1000);
	b = get_acct(warm, "ivan");	/* fills the cache */
	index_account_unref(&b);
	index_destroy(&warm);
	cache_flush(c);
	warm = new_index(fs_store, c, 1000);
	t0 = time_mono_usec();
	b = get_acct(warm, "ivan");
	uint64_t t_cache = time_mono_usec() - t0;
	CHECK(b != NULL && same_state(a, b));
	t0 = time_mono_usec();
	const char *e2 = NULL;
	CHECK_EQ_INT(account_refresh(b, &e2), 0);
	uint64_t t_refresh = time_mono_usec() - t0;
	index_account_unref(&b);
	index_destroy(&warm);
	cache_close(&c);

	printf("test_index: 10000 messages committed in 100 entries: %.0f ms; "
	       "load (snapshot seq %llu): cold store %.1f ms, from LMDB cache "
	       "%.1f ms; refresh %.2f ms\n", t_commit / 1000.0,
	       (unsigned long long)hs, t_cold / 1000.0, t_cache / 1000.0,
	       t_refresh / 1000.0);
	buf_deinit(&env);
	buf_deinit(&bs);
	index_account_unref(&a);
	index_destroy(&idx);
}

/* Damaged snapshot objects are never trusted: a load falls back to an
 * older snapshot or the log and ends in the same state; damaged log
 * entries fail the load cleanly. */
static void test_corruption(void)
{
	const char *err = NULL;
	char key[700], sub[128];
	struct index *idx = new_index(fs_store, NULL, 4);
	struct account *a = get_acct(idx, "julia");
	if (a == NULL) {
		CHECK(0);
		index_destroy(&idx);
		return;
	}
	uint32_t s1[] = { 1 };
	CHECK_EQ_INT(append_n(a, "INBOX", 2, MSG_SEEN, "$Junk", NULL), 0);
	CHECK_EQ_INT(txn_store(a, "INBOX", s1, 1, STORE_MODE_ADD, MSG_FLAGGED,
			       NULL, 0, NULL), 0);
	struct msg_meta odd = sample_meta;
	odd.body = (char *)"(\"x\xff\")";
	odd.envelope = (char *)"tab\there \\ \"q\" \xe2\x82\xac";
	struct index_txn *t = index_txn_begin(a);
	struct index_append m;
	memset(&m, 0, sizeof(m));
	random_bytes(m.guid, 16);
	m.meta = &odd;
	index_txn_append(t, mbid(a, "INBOX"), &m);
	CHECK_EQ_INT(index_txn_commit(t, &err), 0);
	index_txn_free(&t);
	CHECK_EQ_INT(hint_seq("julia"), 4);
	CHECK(same_on_new_node(a, 1000));

	char *p = user_prefix("julia");
	snprintf(key, sizeof(key), "%ssnap/%016x/mbox/%llu", p, 4u,
		 (unsigned long long)mbid(a, "INBOX"));
	free(p);
	struct buf orig;
	buf_init(&orig, 0);
	CHECK_EQ_INT(store_get(fs_store, key, 0, STORE_LEN_ALL, &orig, NULL), 0);
	size_t len = buf_used(&orig);
	CHECK(len > 200);
	int bad = 0, crashes_avoided = 0;
	for (size_t cut = 0; cut < len; cut += 13) {
		store_put(fs_store, key, buf_head(&orig), cut, STORE_PUT_NONE,
			  NULL, NULL);
		if (!same_on_new_node(a, 1000))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	/* Byte changes: whatever they make, no crash, and a load that
	 * succeeds has sane invariants. */
	char *mut = malloc(len);
	static const char repl[] = "\"}]{[,:\\9-x\x01";
	for (size_t pos = 0; pos < len; pos += 7) {
		memcpy(mut, buf_head(&orig), len);
		mut[pos] = repl[pos % (sizeof(repl) - 1)];
		store_put(fs_store, key, mut, len, STORE_PUT_NONE, NULL, NULL);
		struct index *i2 = new_index(fs_store, NULL, 1000);
		struct account *b = NULL;
		if (index_account_get(i2, "julia", &b, &err) == 0) {
			struct mailbox *in = mbox(b, "INBOX");
			for (size_t k = 1; in != NULL && k < in->count; k++)
				if (in->msgs[k].uid <= in->msgs[k - 1].uid)
					bad++;
			crashes_avoided++;
		}
		index_account_unref(&b);
		index_destroy(&i2);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(crashes_avoided > 0);
	free(mut);
	store_put(fs_store, key, buf_head(&orig), len, STORE_PUT_NONE, NULL,
		  NULL);
	buf_deinit(&orig);
	CHECK(same_on_new_node(a, 1000));

	/* Log entries: unknown ops are skipped (same on every node); a
	 * newer format version or broken JSON stops the load. */
	unsigned next = (unsigned)log_count("julia") + 1;
	char ent[512];
	snprintf(sub, sizeof(sub), "log/%016x", next);
	snprintf(ent, sizeof(ent), "{\"v\":1,\"seq\":%u,\"ops\":["
		 "{\"op\":\"future\"},{\"op\":\"store\",\"mb\":999,"
		 "\"uids\":\"1\",\"mode\":\"+\",\"flags\":1,\"kw\":[],"
		 "\"modseq\":99},{\"op\":\"append\",\"mb\":1},"
		 "{\"op\":\"expunge\",\"mb\":1,\"uids\":\"5:3\","
		 "\"modseq\":9},\"junk\"]}", next);
	put_key("julia", sub, ent);
	uint64_t ms = account_modseq(a);
	CHECK_EQ_INT(account_refresh(a, &err), 0);
	CHECK_EQ_INT(log_count("julia"), next);
	CHECK_EQ_INT(account_modseq(a), ms);
	CHECK(same_on_new_node(a, 1000));
	CHECK_EQ_INT(append_n(a, "INBOX", 1, 0, NULL, NULL), 0);
	next += 2;
	snprintf(sub, sizeof(sub), "log/%016x", next);
	snprintf(ent, sizeof(ent), "{\"v\":2,\"seq\":%u,\"ops\":[]}",
		 next);
	put_key("julia", sub, ent);
	CHECK_EQ_INT(account_refresh(a, &err), KURA_ECORRUPT);
	struct index *i3 = new_index(fs_store, NULL, 1000);
	struct account *b = NULL;
	CHECK_EQ_INT(index_account_get(i3, "julia", &b, &err), KURA_ECORRUPT);
	put_key("julia", sub, "{\"v\":1,\"ops\":[");
	CHECK_EQ_INT(index_account_get(i3, "julia", &b, &err), KURA_ECORRUPT);
	snprintf(ent, sizeof(ent), "{\"v\":1,\"seq\":%u,\"ops\":[]}",
		 next - 1);
	put_key("julia", sub, ent);
	CHECK_EQ_INT(index_account_get(i3, "julia", &b, &err), KURA_ECORRUPT);
	del_key("julia", sub);
	CHECK_EQ_INT(index_account_get(i3, "julia", &b, &err), 0);
	CHECK(b != NULL && same_state(a, b));
	index_account_unref(&b);
	index_destroy(&i3);
	index_account_unref(&a);
	index_destroy(&idx);
}

int main(void)
{
	const char *err = NULL;
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_set_level(LOG_ERROR);
	char spec[sizeof(tmpdir) + 16];
	snprintf(spec, sizeof(spec), "fs:%s/store", tmpdir);
	if (store_open(spec, &fs_store, &err) != 0) {
		fprintf(stderr, "store_open: %s\n", err);
		return 1;
	}
	struct index *idx = new_index(fs_store, NULL, 100);
	test_new_account(idx);
	test_mailboxes(idx);
	test_messages(idx);
	index_destroy(&idx);
	test_faults();
	test_two_nodes();
	char cdir[sizeof(tmpdir) + 16], cdir2[sizeof(tmpdir) + 16];
	snprintf(cdir, sizeof(cdir), "%s/cache", tmpdir);
	snprintf(cdir2, sizeof(cdir2), "%s/cache2", tmpdir);
	test_snapshots(cdir);
	test_corruption();
	test_tasks();
	test_big(cdir2);

	store_close(&fs_store);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return test_done("index");
}
