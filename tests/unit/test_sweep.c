/* Unit tests for index/index_sweep.c: lazy expunge, restore and the
 * sweeper over the real fs backend in a temporary directory. Times are
 * moved with the settings' clock; the objects' own ages are real. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"
#include "index/index_int.h"
#include "index/mime.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/store.h"
#include "tests/unit/test.h"

#define DAY 86400

static char tmpdir[] = "/tmp/kura-test-sweep-XXXXXX";
static struct store *fs_store;

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct index *new_index(unsigned every)
{
	struct index_settings set = { .snapshot_every = every,
				      .max_message_size = 64u << 20 };
	return index_create(fs_store, NULL, &set);
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

static size_t count_keys(const char *user, const char *sub)
{
	char *p = index_user_prefix(user);
	char prefix[700];
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

static bool key_exists(const char *user, const char *sub)
{
	char key[700];
	char *p = index_user_prefix(user);
	snprintf(key, sizeof(key), "%s%s", p, sub);
	free(p);
	struct store_stat st;
	return store_head(fs_store, key, &st, NULL) == 0;
}

static bool log_exists(const char *user, uint64_t seq)
{
	char sub[64];
	snprintf(sub, sizeof(sub), "log/%016llx", (unsigned long long)seq);
	return key_exists(user, sub);
}

static bool snap_exists(const char *user, uint64_t seq)
{
	char sub[64];
	snprintf(sub, sizeof(sub), "snap/%016llx/mailboxes",
		 (unsigned long long)seq);
	return key_exists(user, sub);
}

/* ---- messages with real bytes ---- */

struct tmsg {
	char text[256];
	uint8_t guid[INDEX_GUID_LEN];
	uint32_t uid;
};

/* Stores a message object and appends it to mailbox; 0 or an error. */
static int put_msg(struct account *a, const char *mailbox, const char *subject,
		   uint32_t flags, const char *kw, struct tmsg *m)
{
	const char *err = NULL;
	snprintf(m->text, sizeof(m->text),
		 "From: Fred <fred@example.org>\r\nSubject: %s\r\n"
		 "Message-ID: <%s@example.org>\r\n\r\nThe body of %s.\r\n",
		 subject, subject, subject);
	size_t len = strlen(m->text);
	int rc = index_message_put(a, m->text, len, m->guid, &err);
	if (rc != 0)
		return rc;
	struct mime_info info;
	mime_parse((const uint8_t *)m->text, len, &info);
	struct msg_meta meta = { 0, info.envelope, info.bodystructure,
				 info.body, info.sent_date, info.sent_tz_min,
				 info.header_size };
	struct kstr k = kw != NULL ? kstr_cstr(kw) : KSTR_LIT("");
	struct index_append app = {
		.size = len, .internaldate = 1700000000, .idate_tz_min = 60,
		.flags = flags, .keywords = kw != NULL ? &k : NULL,
		.nkeywords = kw != NULL ? 1 : 0, .meta = &meta,
	};
	memcpy(app.guid, m->guid, INDEX_GUID_LEN);
	struct index_txn *t = index_txn_begin(a);
	int op = index_txn_append(t, mbid(a, mailbox), &app);
	rc = op < 0 ? op : index_txn_commit(t, &err);
	if (rc == 0)
		m->uid = index_txn_result(t, op)->uids[0];
	index_txn_free(&t);
	mime_info_free(&info);
	return rc;
}

static int expunge_uid(struct account *a, const char *mailbox, uint32_t uid)
{
	const char *err = NULL;
	struct index_txn *t = index_txn_begin(a);
	int op = index_txn_store(t, mbid(a, mailbox), &uid, 1, STORE_MODE_ADD,
				 MSG_DELETED, NULL, 0, 0);
	if (op >= 0)
		op = index_txn_expunge(t, mbid(a, mailbox), &uid, 1);
	int rc = op < 0 ? op : index_txn_commit(t, &err);
	index_txn_free(&t);
	return rc;
}

static int simple(struct account *a, char kind, const char *name)
{
	const char *err = NULL;
	struct index_txn *t = index_txn_begin(a);
	int op = kind == 'c' ? index_txn_create_mailbox(t, kstr_cstr(name), 0) :
		 index_txn_delete_mailbox(t, kstr_cstr(name));
	int rc = op < 0 ? op : index_txn_commit(t, &err);
	index_txn_free(&t);
	return rc;
}

static int move_uid(struct account *a, const char *from, uint32_t uid,
		    const char *to)
{
	const char *err = NULL;
	struct index_txn *t = index_txn_begin(a);
	int op = index_txn_copy(t, mbid(a, from), &uid, 1, mbid(a, to), true);
	int rc = op < 0 ? op : index_txn_commit(t, &err);
	index_txn_free(&t);
	return rc;
}

static bool body_is(struct account *a, const uint8_t *guid, const char *text)
{
	struct buf b;
	const char *err = NULL;
	buf_init(&b, 1 << 20);
	int rc = index_message_get(a, guid, 0, UINT64_MAX, &b, &err);
	bool same = rc == 0 && buf_used(&b) == strlen(text) &&
		    memcmp(buf_head(&b), text, buf_used(&b)) == 0;
	buf_deinit(&b);
	return same;
}

/* The state as text, expunged list included. */
static char *dump(struct account *a)
{
	struct buf b;
	char hex[33];
	buf_init(&b, 0);
	buf_printf(&b, "modseq=%llu\n", (unsigned long long)account_modseq(a));
	for (size_t i = 0; i < account_mailbox_count(a); i++) {
		struct mailbox *mb = account_mailbox_at(a, i);
		buf_printf(&b, "mb %llu %s uv=%u next=%u hms=%llu n=%zu\n",
			   (unsigned long long)mb->id, mb->name,
			   mb->uidvalidity, mb->uidnext,
			   (unsigned long long)mb->highestmodseq, mb->count);
		for (size_t j = 0; j < mb->count; j++) {
			struct index_msg *m = &mb->msgs[j];
			hex_encode(m->guid, 16, hex);
			buf_printf(&b, " m %u f=%u k=%llx ms=%llu sz=%llu g=%s "
				   "%s\n", m->uid, m->flags,
				   (unsigned long long)m->keywords,
				   (unsigned long long)m->modseq,
				   (unsigned long long)m->size, hex,
				   m->meta->envelope ? m->meta->envelope : "-");
		}
	}
	for (size_t i = 0; i < a->ntrash; i++) {
		const struct index_trash *t = &a->trash[i];
		hex_encode(t->guid, 16, hex);
		buf_printf(&b, "x %s %llu %s %u f=%u sz=%llu t=%lld kw=%s s=%s\n",
			   hex, (unsigned long long)t->mbid, t->mailbox, t->uid,
			   t->flags, (unsigned long long)t->size,
			   (long long)t->time, t->keywords ? t->keywords : "-",
			   t->subject ? t->subject : "-");
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* A new node with an empty cache sees the same state (expunged list
 * included) and can read every message body. */
static bool same_on_new_node(struct account *a)
{
	struct index *idx = new_index(1000);
	struct account *b = get_acct(idx, account_user(a));
	bool ok = b != NULL;
	if (ok) {
		char *x = dump(a), *y = dump(b);
		ok = strcmp(x, y) == 0;
		if (!ok)
			fprintf(stderr, "---- node 1:\n%s---- node 2:\n%s", x, y);
		free(x);
		free(y);
		struct buf body;
		buf_init(&body, 1 << 20);
		for (size_t i = 0; ok && i < account_mailbox_count(b); i++) {
			struct mailbox *mb = account_mailbox_at(b, i);
			for (size_t j = 0; ok && j < mb->count; j++) {
				buf_reset(&body);
				ok = index_message_get(b, mb->msgs[j].guid, 0,
						       UINT64_MAX, &body,
						       NULL) == 0 &&
				     buf_used(&body) == mb->msgs[j].size;
				if (!ok)
					fprintf(stderr, "body of %s uid %u "
						"missing\n", mb->name,
						mb->msgs[j].uid);
			}
		}
		buf_deinit(&body);
	}
	index_account_unref(&b);
	index_destroy(&idx);
	return ok;
}

static size_t distinct_referenced(struct account *a)
{
	size_t n = 0;
	for (size_t i = 0; i < account_mailbox_count(a); i++) {
		struct mailbox *mb = account_mailbox_at(a, i);
		for (size_t j = 0; j < mb->count; j++) {
			bool seen = false;
			/* Small accounts: quadratic is fine. */
			for (size_t k = 0; k <= i && !seen; k++) {
				struct mailbox *o = account_mailbox_at(a, k);
				size_t lim = k == i ? j : o->count;
				for (size_t l = 0; l < lim && !seen; l++)
					seen = memcmp(o->msgs[l].guid,
						      mb->msgs[j].guid, 16) == 0;
			}
			n += !seen;
		}
	}
	return n;
}

static struct index_sweep_settings sweep_at(int64_t now)
{
	struct index_sweep_settings s;
	index_sweep_settings_init(&s);
	s.now = now;
	return s;
}

static int sweep(struct index *idx, const char *user,
		 const struct index_sweep_settings *s,
		 struct index_sweep_stats *st)
{
	const char *err = NULL;
	int rc = index_sweep_user(idx, user, s, st, &err);
	if (rc != 0)
		fprintf(stderr, "sweep %s: %s\n", user, err ? err : "");
	return rc;
}

static const struct index_expunged_msg *
find_listed(const struct index_expunged_msg *v, size_t n, const uint8_t *g)
{
	for (size_t i = 0; i < n; i++) {
		if (memcmp(v[i].guid, g, 16) == 0)
			return &v[i];
	}
	return NULL;
}

/* ---- tests ---- */

static void test_lazy_expunge(void)
{
	const char *user = "sweep1";
	const char *err = NULL;
	struct index *idx = new_index(4);
	struct account *a = get_acct(idx, user);
	struct tmsg s[6], w[2], orphan;
	char subj[16];
	int64_t t0 = time_wall_sec();

	CHECK(a != NULL);
	if (a == NULL)
		return;
	CHECK_EQ_INT(simple(a, 'c', "Work"), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(subj, sizeof(subj), "s%d", i);
		CHECK_EQ_INT(put_msg(a, "INBOX", subj, i == 1 ? MSG_FLAGGED : 0,
				     i == 1 ? "$Label" : NULL, &s[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(subj, sizeof(subj), "w%d", i);
		CHECK_EQ_INT(put_msg(a, "Work", subj, MSG_SEEN, NULL, &w[i]), 0);
	}
	CHECK_EQ_INT(expunge_uid(a, "INBOX", s[1].uid), 0);
	CHECK_EQ_INT(expunge_uid(a, "INBOX", s[2].uid), 0);
	CHECK_EQ_INT(move_uid(a, "INBOX", s[3].uid, "Work"), 0);
	CHECK_EQ_INT(simple(a, 'd', "Work"), 0);
	/* An APPEND whose entry never came. */
	CHECK_EQ_INT(index_message_put(a, "orphan", 6, orphan.guid, &err), 0);
	size_t objects = count_keys(user, "m/");
	CHECK_EQ_INT(objects, 9);

	/* The list: one line per message, oldest first; the MOVE's source
	 * record is shadowed by the DELETE of its target. */
	struct index_expunged_msg *v = NULL;
	size_t n = 0;
	CHECK_EQ_INT(index_expunged_list(idx, user, NULL, &v, &n, &err), 0);
	CHECK_EQ_INT(n, 5);
	if (n == 5) {
		CHECK(memcmp(v[0].guid, s[1].guid, 16) == 0);
		CHECK_EQ_STR(v[0].mailbox, "INBOX");
		CHECK_EQ_INT(v[0].uid, s[1].uid);
		CHECK_EQ_STR(v[0].subject, "s1");
		CHECK_EQ_INT(v[0].size, strlen(s[1].text));
		CHECK_EQ_INT(v[0].flags, MSG_FLAGGED | MSG_DELETED);
		CHECK(v[0].expunged >= t0 && v[0].expunged <= time_wall_sec());
		CHECK(memcmp(v[1].guid, s[2].guid, 16) == 0);
		const struct index_expunged_msg *e = find_listed(v, n, s[3].guid);
		CHECK(e != NULL && strcmp(e->mailbox, "Work") == 0 &&
		      e->uid == 3 && e->subject != NULL &&
		      strcmp(e->subject, "s3") == 0);
		CHECK(find_listed(v, n, w[0].guid) != NULL);
		CHECK(find_listed(v, n, w[1].guid) != NULL);
		CHECK(find_listed(v, n, s[0].guid) == NULL);
	}
	index_expunged_list_free(v, n);
	/* The list is state: a new node (snapshot + tail) has it too. */
	CHECK(same_on_new_node(a));

	/* Nothing is old yet: nothing goes. */
	struct index_sweep_settings set = sweep_at(0);
	struct index_sweep_stats st;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.expunged_deleted + st.orphans_deleted +
		     st.records_purged + st.log_deleted +
		     st.snap_objects_deleted, 0);
	CHECK_EQ_INT(st.expunged_kept, 5);
	CHECK_EQ_INT(count_keys(user, "m/"), objects);

	/* Restore: into the mailbox it came from, flags kept minus
	 * \Deleted, keywords kept, the same bytes. */
	uint32_t uidv = 0, uid = 0;
	CHECK_EQ_INT(index_expunged_restore(idx, user, s[1].guid, NULL, &uidv,
					    &uid, &err), 0);
	struct mailbox *inbox = account_mailbox_find(a, KSTR_LIT("INBOX"));
	CHECK(inbox != NULL && uidv == inbox->uidvalidity &&
	      uid == inbox->uidnext - 1 && uid > s[5].uid);
	struct index_msg *m = inbox != NULL ? mailbox_msg_by_uid(inbox, uid) :
			      NULL;
	CHECK(m != NULL && m->flags == MSG_FLAGGED &&
	      memcmp(m->guid, s[1].guid, 16) == 0 && m->keywords != 0 &&
	      m->meta->envelope != NULL &&
	      strstr(m->meta->envelope, "\"s1\"") != NULL);
	CHECK(body_is(a, s[1].guid, s[1].text));
	/* From a deleted mailbox: recreated under its name. */
	CHECK_EQ_INT(index_expunged_restore(idx, user, w[0].guid, NULL, &uidv,
					    &uid, &err), 0);
	struct mailbox *work = account_mailbox_find(a, KSTR_LIT("Work"));
	CHECK(work != NULL && work->count == 1 && uid == 1 &&
	      memcmp(work->msgs[0].guid, w[0].guid, 16) == 0 &&
	      work->msgs[0].flags == MSG_SEEN);
	/* Into a named mailbox. */
	CHECK_EQ_INT(index_expunged_restore(idx, user, s[2].guid, "Archive",
					    &uidv, &uid, &err), 0);
	struct mailbox *arch = account_mailbox_find(a, KSTR_LIT("Archive"));
	CHECK(arch != NULL && arch->count == 1 &&
	      memcmp(arch->msgs[0].guid, s[2].guid, 16) == 0);
	CHECK_EQ_INT(index_expunged_restore(idx, user, s[3].guid, "Nope",
					    &uidv, &uid, &err),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(index_expunged_restore(idx, user, s[0].guid, NULL, &uidv,
					    &uid, &err), KURA_ENOTFOUND);
	CHECK_EQ_INT(index_expunged_restore(idx, "nobody-here", s[1].guid,
					    NULL, &uidv, &uid, &err),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(count_keys("nobody-here", ""), 0);
	CHECK_EQ_INT(index_expunged_list(idx, user, NULL, &v, &n, &err), 0);
	CHECK_EQ_INT(n, 2);	/* w1, s3 */
	index_expunged_list_free(v, n);

	/* The orphan within its grace (a day) stays, then goes. */
	set = sweep_at(t0 + DAY / 2);
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.orphans_deleted, 0);
	CHECK_EQ_INT(count_keys(user, "m/"), objects);
	/* A dry run counts, deletes nothing. */
	set = sweep_at(t0 + 2 * DAY);
	set.dry_run = true;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.orphans_deleted, 1);
	CHECK_EQ_INT(count_keys(user, "m/"), objects);
	set.dry_run = false;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.orphans_deleted, 1);
	CHECK_EQ_INT(st.bytes_freed, 6);
	CHECK_EQ_INT(count_keys(user, "m/"), --objects);

	/* Within retention (a day short): the expunged stay. */
	set = sweep_at(t0 + INDEX_SWEEP_RETENTION_DEFAULT - DAY);
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.expunged_deleted + st.records_purged, 0);
	CHECK_EQ_INT(st.expunged_kept, 2);
	CHECK_EQ_INT(count_keys(user, "m/"), objects);

	/* A dry run past retention counts, deletes nothing. */
	set = sweep_at(t0 + INDEX_SWEEP_RETENTION_DEFAULT + DAY);
	set.dry_run = true;
	uint64_t seq = a->seq;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.expunged_deleted, 2);
	CHECK_EQ_INT(st.records_purged, 5);
	CHECK_EQ_INT(count_keys(user, "m/"), objects);
	CHECK_EQ_INT(a->seq, seq);

	/* Past retention: the restored ones stay (referenced), w1 and s3
	 * go; the records go. */
	set.dry_run = false;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.records_purged, 5);
	CHECK_EQ_INT(st.expunged_deleted, 2);
	CHECK_EQ_INT(st.orphans_deleted, 0);
	CHECK_EQ_INT(st.bytes_freed, strlen(w[1].text) + strlen(s[3].text));
	CHECK_EQ_INT(a->ntrash, 0);
	CHECK_EQ_INT(count_keys(user, "m/"), objects - 2);
	CHECK_EQ_INT(count_keys(user, "m/"), distinct_referenced(a));
	CHECK(body_is(a, s[1].guid, s[1].text));
	CHECK(body_is(a, w[0].guid, w[0].text));
	CHECK(body_is(a, s[2].guid, s[2].text));
	CHECK(!body_is(a, w[1].guid, w[1].text));
	CHECK_EQ_INT(index_expunged_restore(idx, user, w[1].guid, NULL, &uidv,
					    &uid, &err), KURA_ENOTFOUND);
	CHECK(same_on_new_node(a));
	/* Again: nothing more. */
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.expunged_deleted + st.orphans_deleted +
		     st.records_purged, 0);

	/* Expunged again after a restore: the new expunge time counts. An
	 * entry written by hand, dated after the sweep's clock. */
	char entry[512];
	struct mailbox *am = account_mailbox_find(a, KSTR_LIT("Archive"));
	snprintf(entry, sizeof(entry), "{\"v\":1,\"seq\":%llu,\"time\":%lld,"
		 "\"node\":\"test\",\"id\":\"0\",\"ops\":[{\"op\":\"expunge\","
		 "\"mb\":%llu,\"uids\":\"1\",\"modseq\":%llu}]}",
		 (unsigned long long)a->seq + 1, (long long)set.now + 60,
		 (unsigned long long)(am != NULL ? am->id : 0),
		 (unsigned long long)account_modseq(a) + 1);
	char *prefix = index_user_prefix(user), key[700];
	snprintf(key, sizeof(key), "%slog/%016llx", prefix,
		 (unsigned long long)a->seq + 1);
	free(prefix);
	CHECK_EQ_INT(store_put(fs_store, key, entry, strlen(entry),
			       STORE_PUT_CREATE_ONLY, NULL, NULL), 0);
	CHECK_EQ_INT(account_refresh(a, &err), 0);
	am = account_mailbox_find(a, KSTR_LIT("Archive"));
	CHECK(am != NULL && am->count == 0);
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.expunged_deleted, 0);
	CHECK_EQ_INT(st.expunged_kept, 1);
	CHECK(body_is(a, s[2].guid, s[2].text));
	index_account_unref(&a);
	index_destroy(&idx);
}

/* Log entries below the snapshot, old snapshots, and a node that was far
 * behind when they went. */
static void test_log_and_snapshots(void)
{
	const char *user = "sweep2";
	const char *err = NULL;
	struct index *idx = new_index(5);
	struct index *idx2 = new_index(1000);
	struct account *a = get_acct(idx, user);
	struct tmsg t[30];
	char subj[16];

	CHECK(a != NULL);
	if (a == NULL)
		return;
	/* A second node, far behind later. */
	struct account *x = get_acct(idx2, user);
	CHECK(x != NULL);
	uint64_t x_seq = x != NULL ? x->seq : 0;
	for (int i = 0; i < 30; i++) {
		snprintf(subj, sizeof(subj), "m%d", i);
		CHECK_EQ_INT(put_msg(a, "INBOX", subj, 0, NULL, &t[i]), 0);
	}
	CHECK_EQ_INT(expunge_uid(a, "INBOX", t[4].uid), 0);
	uint64_t head = a->seq;
	CHECK_EQ_INT(count_keys(user, "log/"), head);
	size_t snaps = 0;
	for (uint64_t q = 1; q <= head; q++)
		snaps += snap_exists(user, q);
	CHECK(snaps >= 5);

	/* Young: nothing goes. */
	struct index_sweep_settings set = sweep_at(0);
	struct index_sweep_stats st;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.log_deleted + st.snap_objects_deleted, 0);
	uint64_t s = st.snapshot_seq;
	CHECK(s > 0 && s <= head && head - s < 5);

	set = sweep_at(time_wall_sec() + 2 * 3600);
	set.keep_entries = 3;
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.snapshot_seq, s);
	CHECK_EQ_INT(st.log_deleted, s - 3);
	CHECK_EQ_INT(count_keys(user, "log/"), head - (s - 3));
	CHECK(!log_exists(user, s - 3));
	CHECK(log_exists(user, s - 2));
	CHECK_EQ_INT(st.snapshots_deleted, snaps - 2);
	size_t left = 0;
	for (uint64_t q = 1; q <= head; q++)
		left += snap_exists(user, q);
	CHECK_EQ_INT(left, 2);
	/* Drafts never changed: its object lives in the first snapshot's
	 * directory and must have stayed. A cold load proves it. */
	CHECK(same_on_new_node(a));
	CHECK_EQ_INT(count_keys(user, "m/"), 30);

	/* The node that was far behind: its next entry would be a swept
	 * seq. Its proof of freshness is old (more than a minute). */
	if (x != NULL) {
		CHECK_EQ_INT(x->seq, x_seq);
		CHECK(!log_exists(user, x_seq + 1));
		x->verified_usec = 0;
		CHECK_EQ_INT(simple(x, 'c', "FromX"), 0);
		CHECK_EQ_INT(x->seq, head + 1);
		CHECK(!log_exists(user, x_seq + 1));
		CHECK_EQ_INT(account_refresh(a, &err), 0);
		CHECK(account_mailbox_find(a, KSTR_LIT("FromX")) != NULL);
		CHECK(same_on_new_node(x));
	}
	index_account_unref(&x);

	/* A sweep again: stable. */
	CHECK_EQ_INT(sweep(idx, user, &set, &st), 0);
	CHECK_EQ_INT(st.snap_objects_deleted, 0);
	CHECK(same_on_new_node(a));
	index_account_unref(&a);
	index_destroy(&idx2);
	index_destroy(&idx);
}

static void test_users(void)
{
	const char *err = NULL;
	struct index *idx = new_index(100);
	struct account *a = get_acct(idx, "a.b+c@example.org");
	index_account_unref(&a);
	a = get_acct(idx, ".odd user%");
	index_account_unref(&a);
	/* Not an account's key. */
	CHECK_EQ_INT(store_put(fs_store, "u/zz/garbage/x", "x", 1,
			       STORE_PUT_NONE, NULL, NULL), 0);
	char **users = NULL;
	size_t n = 0;
	CHECK_EQ_INT(index_users_list(idx, &users, &n, &err), 0);
	CHECK_EQ_INT(n, 4);
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		found += strcmp(users[i], "sweep1") == 0;
		found += strcmp(users[i], "sweep2") == 0;
		found += strcmp(users[i], "a.b+c@example.org") == 0;
		found += strcmp(users[i], ".odd user%") == 0;
	}
	CHECK_EQ_INT(found, 4);
	index_users_free(users, n);

	/* Tools never create an account. */
	struct index_sweep_stats st;
	CHECK_EQ_INT(index_sweep_user(idx, "ghost", NULL, &st, &err),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(count_keys("ghost", ""), 0);
	CHECK_EQ_INT(index_sweep_user(idx, "bad/name", NULL, &st, &err),
		     KURA_EINVAL);
	index_destroy(&idx);
}

/* The subject of an ENVELOPE, the way the list stores it. */
static void test_envelope_subject(void)
{
	char *s = index_envelope_subject("(NIL \"Hi \\\"there\\\"\" NIL)");
	CHECK_EQ_STR(s, "Hi \"there\"");
	free(s);
	s = index_envelope_subject("(\"Mon, 1 Jan 2024\" {5}\r\nab\xc3\xa9x NIL)");
	CHECK_EQ_STR(s, "ab\xc3\xa9x");
	free(s);
	CHECK(index_envelope_subject("(NIL NIL NIL)") == NULL);
	CHECK(index_envelope_subject("(NIL {99}\r\nshort)") == NULL);
	CHECK(index_envelope_subject("(NIL \"unterminated") == NULL);
	CHECK(index_envelope_subject(NULL) == NULL);
	char big[700];
	memcpy(big, "(NIL \"", 6);
	for (int i = 0; i < 300; i++)
		memcpy(big + 6 + i * 2, "\xc3\xa9", 2);
	strcpy(big + 606, "\" NIL)");
	s = index_envelope_subject(big);
	CHECK(s != NULL && strlen(s) <= INDEX_SUBJECT_MAX &&
	      strlen(s) % 2 == 0);
	free(s);
}

int main(void)
{
	const char *err = NULL;
	log_set_level(LOG_ERROR);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	CHECK_EQ_INT(store_fs_create(tmpdir, &fs_store, &err), 0);
	if (fs_store != NULL) {
		test_envelope_subject();
		test_lazy_expunge();
		test_log_and_snapshots();
		test_users();
		store_close(&fs_store);
	}
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return test_done("sweep");
}
