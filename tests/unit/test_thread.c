/* Unit tests for imapd/thread.c: ORDEREDSUBJECT and REFERENCES (RFC 5256
 * section 3) on hand-built mailboxes whose ENVELOPEs come from
 * mime_parse, with References given through the callback. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imapd/thread.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/util.h"
#include "tests/unit/test.h"

#define T0 1577836800	/* 2020-01-01 00:00:00 UTC */

/* A test message: UID, Date: as T0 + date seconds (date < 0: no Date:,
 * internal date T0 - date), and header fields. */
struct tm_def {
	uint32_t uid;
	int date;
	const char *msgid;	/* Message-ID value or NULL */
	const char *subject;	/* NULL: no Subject */
	const char *irt;	/* In-Reply-To value or NULL */
	const char *refs;	/* References value or NULL */
};

struct tbox {
	struct mailbox mb;
	struct index_msg *msgs;
	struct msg_meta *metas;
	const struct tm_def *defs;
	size_t n;
	/* callback bookkeeping */
	unsigned calls;
	uint32_t last_uid;
	bool order_ok;
	bool poison;		/* clear mb on the first get_refs call */
	int fail_at;		/* get_refs fails on this UID (0: never) */
	struct index_msg *saved_msgs;
	size_t saved_count;
};

static void date_str(char *buf, size_t len, int64_t t)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(buf, len, "%d %s %d %02d:%02d:%02d +0000", tm.tm_mday,
		 mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static void box_build(struct tbox *b, const struct tm_def *defs, size_t n)
{
	memset(b, 0, sizeof(*b));
	b->msgs = xcalloc(n + 1, sizeof(*b->msgs));
	b->metas = xcalloc(n + 1, sizeof(*b->metas));
	b->defs = defs;
	b->n = n;
	b->mb.msgs = b->msgs;
	b->order_ok = true;
	for (size_t i = 0; i < n; i++) {
		const struct tm_def *d = &defs[i];
		struct buf h;
		char ds[64];

		buf_init(&h, 0);
		if (d->date >= 0) {
			date_str(ds, sizeof(ds), T0 + d->date);
			buf_printf(&h, "Date: %s\r\n", ds);
		}
		if (d->subject != NULL)
			buf_printf(&h, "Subject: %s\r\n", d->subject);
		if (d->msgid != NULL)
			buf_printf(&h, "Message-ID: %s\r\n", d->msgid);
		if (d->irt != NULL)
			buf_printf(&h, "In-Reply-To: %s\r\n", d->irt);
		buf_printf(&h, "From: x@y\r\n\r\nbody\r\n");
		struct mime_info info;
		mime_parse(h.data, h.len, &info);
		b->metas[i].envelope = xstrdup(info.envelope);
		b->metas[i].sent_date = info.sent_date;
		mime_info_free(&info);
		buf_deinit(&h);
		b->msgs[i].uid = d->uid;
		b->msgs[i].internaldate = d->date >= 0 ? T0 : T0 - d->date;
		b->msgs[i].size = 100;
		b->msgs[i].meta = &b->metas[i];
	}
	b->mb.count = n;
}

static void box_free(struct tbox *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->metas[i].envelope);
	free(b->msgs);
	free(b->metas);
}

static int get_refs(void *ctx, uint32_t uid, struct kstr *refs_r)
{
	struct tbox *b = ctx;

	if (b->calls > 0 && uid <= b->last_uid)
		b->order_ok = false;
	b->calls++;
	b->last_uid = uid;
	if (b->poison && b->calls == 1) {
		/* As if the call suspended and the index changed. */
		b->saved_msgs = b->mb.msgs;
		b->saved_count = b->mb.count;
		b->mb.msgs = NULL;
		b->mb.count = 0;
	}
	if (b->fail_at != 0 && (uint32_t)b->fail_at == uid)
		return KURA_EUNAVAIL;
	/* defs are in UID order */
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->defs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*refs_r = kstr_make(NULL, 0);
	if (lo < b->n && b->defs[lo].uid == uid && b->defs[lo].refs != NULL)
		*refs_r = kstr_cstr(b->defs[lo].refs);
	return 0;
}

/* Runs THREAD on all messages (UIDs in the box's order) and returns the
 * response body, or "ERR n". */
static char *run(struct tbox *b, enum thread_alg alg, bool use_uid,
		 const uint32_t *msns)
{
	uint32_t *uids = xmalloc((b->n + 1) * sizeof(*uids));
	struct buf out;

	for (size_t i = 0; i < b->n; i++)
		uids[i] = b->defs[i].uid;
	buf_init(&out, 0);
	b->calls = 0;
	int ret = thread_build(alg, &b->mb, uids, b->n, use_uid, msns,
			       get_refs, b, &out);
	if (b->poison && b->saved_msgs != NULL) {
		b->mb.msgs = b->saved_msgs;
		b->mb.count = b->saved_count;
		b->saved_msgs = NULL;
	}
	if (ret != 0) {
		buf_reset(&out);
		buf_printf(&out, "ERR %d", ret);
	}
	const char *s = buf_cstr(&out);
	char *r = xstrdup(s != NULL ? s : "");
	buf_deinit(&out);
	free(uids);
	return r;
}

#define CHECK_THREAD(defs, alg, want) do { \
	struct tbox _b; \
	box_build(&_b, (defs), ARRAY_SIZE(defs)); \
	char *_s = run(&_b, (alg), true, NULL); \
	if (strcmp(_s, (want)) == 0) { test_passed++; } else { test_failed++; \
		fprintf(stderr, "FAIL %s:%d: THREAD = %s, want %s\n", \
			__FILE__, __LINE__, _s, (want)); } \
	free(_s); \
	box_free(&_b); \
} while (0)

#define REFS THREAD_REFERENCES
#define ORD THREAD_ORDEREDSUBJECT

/* Checks that s is a well-formed thread-data body (RFC 5256 section 5:
 * 1*thread-list) in which each of 1..n appears exactly once. */
static bool well_formed(const char *s, uint32_t n)
{
	unsigned char *seen = xcalloc(n + 1, 1);
	size_t depth = 0, i = 0, len = strlen(s);
	bool ok = len > 0;
	char prev = 0;

	while (ok && i < len) {
		char c = s[i];
		if (c == '(') {
			if (prev >= '0' && prev <= '9')
				ok = false;	/* needs SP first */
			depth++;
			i++;
		} else if (c == ')') {
			if (depth == 0 || prev == '(' || prev == ' ')
				ok = false;
			depth--;
			i++;
		} else if (c == ' ') {
			if (!(prev >= '0' && prev <= '9') || i + 1 >= len ||
			    s[i + 1] == ' ' || s[i + 1] == ')')
				ok = false;
			i++;
		} else if (c >= '1' && c <= '9') {
			if (depth == 0 || prev == ')')
				ok = false;
			uint64_t v = 0;
			while (i < len && s[i] >= '0' && s[i] <= '9')
				v = v * 10 + (uint64_t)(s[i++] - '0');
			if (v == 0 || v > n || seen[v])
				ok = false;
			else
				seen[v] = 1;
			c = '0';
		} else {
			ok = false;
		}
		if (depth == 0 && c != ')')
			ok = false;
		prev = c;
	}
	ok = ok && depth == 0;
	for (uint32_t v = 1; ok && v <= n; v++)
		ok = seen[v];
	free(seen);
	return ok;
}

/* ---- tests ---- */

static void test_parse_algorithm(void)
{
	enum thread_alg alg = THREAD_REFERENCES;

	CHECK_EQ_INT(thread_parse_algorithm(KSTR_LIT("ORDEREDSUBJECT"), &alg),
		     0);
	CHECK_EQ_INT(alg, THREAD_ORDEREDSUBJECT);
	CHECK_EQ_INT(thread_parse_algorithm(KSTR_LIT("references"), &alg), 0);
	CHECK_EQ_INT(alg, THREAD_REFERENCES);
	CHECK_EQ_INT(thread_parse_algorithm(KSTR_LIT("REFS"), &alg),
		     KURA_EINVAL);
	CHECK_EQ_INT(thread_parse_algorithm(KSTR_LIT(""), &alg), KURA_EINVAL);
	CHECK_EQ_INT(thread_parse_algorithm(KSTR_LIT("REFERENCESX"), &alg),
		     KURA_EINVAL);
}

/* The RFC's example response, built from References. */
static const struct tm_def rfc_example[] = {
	{ 2, 2, "<m2@x>", "two", NULL, NULL },
	{ 3, 3, "<m3@x>", "three", NULL, NULL },
	{ 4, 4, "<m4@x>", "Re: three", NULL, "<m3@x> <m6@x>" },
	{ 6, 6, "<m6@x>", "Re: three", "<m3@x>", NULL },
	{ 7, 7, "<m7@x>", "Re: three", NULL, "<m3@x> <m6@x> <m44@x>" },
	{ 23, 23, "<m23@x>", "Re: three", NULL, "<m3@x>\r\n <m6@x> <m4@x>" },
	{ 44, 5, "<m44@x>", "Re: three", NULL, "<m3@x> <m6@x>" },
	{ 96, 96, "<m96@x>", "Re: three", NULL,
	  "<m3@x> <m6@x> <m44@x> <m7@x>" },
};

static void test_rfc_example(void)
{
	CHECK_THREAD(rfc_example, REFS, "(2)(3 6 (4 23)(44 7 96))");

	/* Sequence numbers instead of UIDs. */
	struct tbox b;
	static const uint32_t msns[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	box_build(&b, rfc_example, ARRAY_SIZE(rfc_example));
	char *s = run(&b, REFS, false, msns);
	CHECK_EQ_STR(s, "(1)(2 4 (3 6)(7 5 8))");
	free(s);
	/* The callback: once per message, in UID order. */
	CHECK_EQ_INT(b.calls, ARRAY_SIZE(rfc_example));
	CHECK(b.order_ok);
	/* mb is not read after the first callback (it may suspend). */
	b.poison = true;
	s = run(&b, REFS, true, NULL);
	CHECK_EQ_STR(s, "(2)(3 6 (4 23)(44 7 96))");
	free(s);
	b.poison = false;
	/* An error from the callback is returned, nothing is written. */
	b.fail_at = 23;
	s = run(&b, REFS, true, NULL);
	CHECK_EQ_STR(s, "ERR -20001");
	free(s);
	b.fail_at = 0;
	/* ORDEREDSUBJECT never asks. */
	s = run(&b, ORD, true, NULL);
	CHECK_EQ_INT(b.calls, 0);
	CHECK_EQ_STR(s, "(2)(3 (4)(44)(6)(7)(23)(96))");
	free(s);
	box_free(&b);
}

static void test_dummies(void)
{
	/* Two replies to a message that is not there: siblings under a
	 * dummy (the RFC's "((3)(5))"). */
	static const struct tm_def d1[] = {
		{ 3, 3, "<a@x>", "a", NULL, "<gone@x>" },
		{ 5, 5, "<b@x>", "b", NULL, "<gone@x>" },
	};
	CHECK_THREAD(d1, REFS, "((3)(5))");
	/* One child of a missing parent is promoted. */
	static const struct tm_def d2[] = {
		{ 1, 1, "<a@x>", "a", "<gone@x>", NULL },
		{ 2, 2, "<b@x>", "b", NULL, NULL },
	};
	CHECK_THREAD(d2, REFS, "(1)(2)");
	/* A missing message in the middle of a chain is skipped over. */
	static const struct tm_def d3[] = {
		{ 1, 1, "<a@x>", "a", NULL, NULL },
		{ 2, 2, "<c@x>", "c", NULL, "<a@x> <gone@x>" },
		{ 3, 3, "<d@x>", "d", NULL, "<a@x> <gone@x>" },
	};
	CHECK_THREAD(d3, REFS, "(1 (2)(3))");
	/* Nested missing messages under a missing root: all children of
	 * one dummy. */
	static const struct tm_def d4[] = {
		{ 1, 4, "<a@x>", "a", NULL, "<g1@x> <g2@x>" },
		{ 2, 2, "<b@x>", "b", NULL, "<g1@x> <g3@x>" },
		{ 3, 3, "<c@x>", "c", NULL, "<g1@x>" },
	};
	CHECK_THREAD(d4, REFS, "((2)(3)(1))");
	/* A dummy sorts at the top by its first child's date. */
	static const struct tm_def d5[] = {
		{ 1, 50, "<a@x>", "a", NULL, NULL },
		{ 2, 90, "<b@x>", "b", NULL, "<g@x>" },
		{ 3, 10, "<c@x>", "c", NULL, "<g@x>" },
		{ 4, 60, "<d@x>", "d", NULL, NULL },
	};
	CHECK_THREAD(d5, REFS, "((3)(2))(1)(4)");
	/* Messages outside the search result are dummies too. */
	static const struct tm_def d6[] = {
		{ 1, 1, "<a@x>", "a", NULL, NULL },
		{ 3, 3, "<c@x>", "Re: a", NULL, "<a@x> <b@x>" },
	};
	CHECK_THREAD(d6, REFS, "(1 3)");
}

static void test_loops(void)
{
	/* Two messages naming each other as parent. */
	static const struct tm_def l1[] = {
		{ 1, 1, "<a@x>", "one", NULL, "<b@x>" },
		{ 2, 2, "<b@x>", "two", NULL, "<a@x>" },
	};
	CHECK_THREAD(l1, REFS, "(2 1)");
	/* A message that references itself. */
	static const struct tm_def l2[] = {
		{ 1, 1, "<a@x>", "one", NULL, "<a@x>" },
		{ 2, 2, "<b@x>", "two", "<b@x>", NULL },
		{ 3, 3, "<c@x>", "three", NULL, "<c@x> <a@x> <c@x>" },
	};
	/* 3's References make it the parent of 1 (step 1.A), then the
	 * links back to itself are refused. */
	CHECK_THREAD(l2, REFS, "(2)(3 1)");
	/* A cycle of three through References chains. */
	static const struct tm_def l3[] = {
		{ 1, 1, "<a@x>", "s1", NULL, "<c@x> <b@x>" },
		{ 2, 2, "<b@x>", "s2", NULL, "<a@x> <c@x>" },
		{ 3, 3, "<c@x>", "s3", NULL, "<b@x> <a@x>" },
		{ 4, 4, "<d@x>", "s4", NULL, "<a@x> <a@x> <d@x> <b@x> <a@x>" },
	};
	struct tbox b;
	box_build(&b, l3, ARRAY_SIZE(l3));
	char *s = run(&b, REFS, true, NULL);
	CHECK(well_formed(s, 4));
	free(s);
	box_free(&b);
	/* The same IDs repeated in one References. */
	static const struct tm_def l4[] = {
		{ 1, 1, "<a@x>", "s1", NULL, NULL },
		{ 2, 2, "<b@x>", "s2", NULL, "<a@x> <a@x> <a@x>" },
	};
	CHECK_THREAD(l4, REFS, "(1 2)");
}

static void test_message_ids(void)
{
	/* Duplicate Message-IDs: the first message keeps it. */
	static const struct tm_def m1[] = {
		{ 1, 1, "<d@x>", "x", NULL, NULL },
		{ 2, 2, "<d@x>", "y", NULL, NULL },
		{ 3, 3, "<e@x>", "Re: x", NULL, "<d@x>" },
	};
	CHECK_THREAD(m1, REFS, "(1 3)(2)");
	/* The second copy of an ID is not findable, but its own references
	 * still place it. */
	static const struct tm_def m2[] = {
		{ 1, 1, "<d@x>", "x", NULL, NULL },
		{ 2, 2, "<d@x>", "y", "<d@x>", NULL },
		{ 3, 3, "<e@x>", "z", NULL, "<d@x>" },
	};
	CHECK_THREAD(m2, REFS, "(1 (2)(3))");
	/* Quoting does not make a different ID (RFC 5256 example); white
	 * space and comments inside the brackets do not count either. */
	static const struct tm_def m3[] = {
		{ 1, 1, "<\"01KF8JCEOCBS0045PS\"@xxx.yyy.com>", "x", NULL, NULL },
		{ 2, 2, "<q@x>", "y", "<01KF8JCEOCBS0045PS@xxx.yyy.com>", NULL },
		{ 3, 3, "<r@x>", "z", NULL,
		  "< 01KF8JCEOCBS0045PS (comment (nested)) @xxx.yyy.com >" },
	};
	CHECK_THREAD(m3, REFS, "(1 (2)(3))");
	/* IDs compare case-sensitively. */
	static const struct tm_def m4[] = {
		{ 1, 1, "<A@x>", "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", "<a@x>", NULL },
	};
	CHECK_THREAD(m4, REFS, "(1)(2)");
	/* In-Reply-To only when References has no valid ID; its first
	 * valid ID only (an address after it is ignored). */
	static const struct tm_def m5[] = {
		{ 1, 1, "<a@x>", "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", NULL, NULL },
		{ 3, 3, "<c@x>", "z", "<b@x>", "<a@x>" },
		{ 4, 4, "<d@x>", "w", "<b@x>", "garbage <nope> <@x> <x@>" },
		{ 5, 5, "<e@x>", "v", "<a@x> (from John <b@x>)", NULL },
		{ 6, 6, "<f@x>", "u", "John <b@x>", NULL },
	};
	CHECK_THREAD(m5, REFS, "(1 (3)(5))(2 (4)(6))");
	/* Messages without Message-ID get unique ones: no merging. */
	static const struct tm_def m6[] = {
		{ 1, 1, NULL, "x", NULL, NULL },
		{ 2, 2, NULL, "y", NULL, NULL },
		{ 3, 3, "<bad>", "z", NULL, NULL },
		{ 4, 4, "<c@x>", "w", "<bad>", NULL },
	};
	CHECK_THREAD(m6, REFS, "(1)(2)(3)(4)");
	/* Unterminated quotes and comments end the search for IDs. */
	static const struct tm_def m7[] = {
		{ 1, 1, "<a@x>", "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", "<a@x>", "<\"a@x> <a@x>" },
		{ 3, 3, "<c@x>", "z", "<a@x>", "<(a@x> <a@x>" },
		{ 4, 4, "<d@x>", "w", NULL, "<a<a@x>" },
	};
	CHECK_THREAD(m7, REFS, "(1 (2)(3)(4))");
}

static void test_subject_merge(void)
{
	/* A reply without references joins the original. */
	static const struct tm_def s1[] = {
		{ 1, 1, "<a@x>", "S", NULL, NULL },
		{ 2, 2, "<b@x>", "Re: S", NULL, NULL },
	};
	CHECK_THREAD(s1, REFS, "(1 2)");
	/* Even when the reply is older. */
	static const struct tm_def s2[] = {
		{ 1, 1, "<a@x>", "Re: S", NULL, NULL },
		{ 2, 2, "<b@x>", "s", NULL, NULL },
	};
	CHECK_THREAD(s2, REFS, "(2 1)");
	/* Two originals: siblings under a new dummy. */
	static const struct tm_def s3[] = {
		{ 1, 1, "<a@x>", "S", NULL, NULL },
		{ 2, 2, "<b@x>", "[list] S", NULL, NULL },
		{ 3, 3, "<c@x>", "T", NULL, NULL },
	};
	CHECK_THREAD(s3, REFS, "((1)(2))(3)");
	/* Two replies: likewise. */
	static const struct tm_def s4[] = {
		{ 1, 1, "<a@x>", "Re: S", NULL, NULL },
		{ 2, 2, "<b@x>", "Fwd: S", NULL, NULL },
	};
	CHECK_THREAD(s4, REFS, "((1)(2))");
	/* Two dummies of one subject become one. */
	static const struct tm_def s5[] = {
		{ 1, 1, "<a@x>", "Re: S", NULL, "<g1@x>" },
		{ 2, 2, "<b@x>", "Re: S", NULL, "<g1@x>" },
		{ 3, 3, "<c@x>", "Re: S", NULL, "<g2@x>" },
		{ 4, 4, "<d@x>", "Re: S", NULL, "<g2@x>" },
	};
	CHECK_THREAD(s5, REFS, "((1)(2)(3)(4))");
	/* A message joins a dummy of its subject. */
	static const struct tm_def s6[] = {
		{ 1, 1, "<a@x>", "Re: S", NULL, "<g1@x>" },
		{ 2, 5, "<b@x>", "Re: S", NULL, "<g1@x>" },
		{ 3, 3, "<c@x>", "S", NULL, NULL },
	};
	CHECK_THREAD(s6, REFS, "((1)(3)(2))");
	/* Empty subjects are never merged. */
	static const struct tm_def s7[] = {
		{ 1, 1, "<a@x>", "", NULL, NULL },
		{ 2, 2, "<b@x>", NULL, NULL, NULL },
		{ 3, 3, "<c@x>", "Re:", NULL, NULL },
	};
	CHECK_THREAD(s7, REFS, "(1)(2)(3)");
	/* Only top-level threads merge; the thread subject of a thread is
	 * that of its top message. */
	static const struct tm_def s8[] = {
		{ 1, 1, "<a@x>", "S", NULL, NULL },
		{ 2, 2, "<b@x>", "T", NULL, "<a@x>" },
		{ 3, 3, "<c@x>", "Re: T", NULL, NULL },
		{ 4, 4, "<d@x>", "Re: S", NULL, NULL },
	};
	CHECK_THREAD(s8, REFS, "(1 (2)(4))(3)");
	/* Encoded words and case do not split a subject. */
	static const struct tm_def s9[] = {
		{ 1, 1, "<a@x>", "=?UTF-8?Q?caf=C3=A9?=", NULL, NULL },
		{ 2, 2, "<b@x>", "RE: CAF\xc3\x89", NULL, NULL },
		{ 3, 3, "<c@x>", "Caf=?ISO-8859-1?Q?=E9?= (fwd)", NULL, NULL },
	};
	CHECK_THREAD(s9, REFS, "(1 (2)(3))");
}

static void test_sibling_order(void)
{
	/* Siblings by sent date, at every level; ties by sequence. */
	static const struct tm_def o1[] = {
		{ 1, 1, "<a@x>", "a", NULL, NULL },
		{ 2, 30, "<b@x>", "b", NULL, "<a@x>" },
		{ 3, 40, "<c@x>", "c", NULL, "<a@x>" },
		{ 4, 20, "<d@x>", "d", NULL, "<a@x>" },
		{ 5, 30, "<e@x>", "e", NULL, "<a@x>" },
		{ 6, 9, "<f@x>", "f", NULL, "<a@x> <c@x>" },
		{ 7, 8, "<g@x>", "g", NULL, "<a@x> <c@x>" },
	};
	CHECK_THREAD(o1, REFS, "(1 (4)(2)(5)(3 (7)(6)))");
	/* No Date: the internal date stands in (a negative date here means
	 * no Date: and internal date T0 + |date|). */
	static const struct tm_def o2[] = {
		{ 1, 50, "<a@x>", "a", NULL, NULL },
		{ 2, -20, "<b@x>", "b", NULL, NULL },
		{ 3, -60, "<c@x>", "c", NULL, NULL },
	};
	CHECK_THREAD(o2, REFS, "(2)(1)(3)");
	CHECK_THREAD(o2, ORD, "(2)(1)(3)");
}

static void test_ordered_subject(void)
{
	static const struct tm_def os[] = {
		{ 1, 10, "<a@x>", "S", NULL, NULL },
		{ 2, 5, "<b@x>", "Re: S", NULL, NULL },
		{ 3, 7, "<c@x>", "T", NULL, NULL },
		{ 4, 20, "<d@x>", "Re: t", "<c@x>", NULL },
		{ 5, 30, "<e@x>", "[fwd: S]", NULL, NULL },
		{ 6, 1, "<f@x>", "U", NULL, NULL },
		{ 7, 3, "<g@x>", "", NULL, NULL },
		{ 8, 2, "<h@x>", NULL, NULL, NULL },
		{ 9, 10, "<i@x>", "s", NULL, NULL },
	};
	/* S: 2 (5), then 1 and 9 (10, sequence order), 5 (30): children of
	 * 2; T: 3, 4; U: 6; no subject: 8, 7. Threads by first date. */
	CHECK_THREAD(os, ORD, "(6)(8 7)(2 (1)(9)(5))(3 4)");
	static const struct tm_def one[] = {
		{ 7, 1, "<a@x>", "x", NULL, NULL },
	};
	CHECK_THREAD(one, ORD, "(7)");
	CHECK_THREAD(one, REFS, "(7)");
}

static void test_edges(void)
{
	struct tbox b;
	struct buf out;
	uint32_t uids[] = { 3, 1, 3, 2, 99, 1 };
	uint32_t msns[] = { 30, 10, 30, 20, 99, 10 };

	static const struct tm_def e1[] = {
		{ 1, 1, "<a@x>", "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", "<a@x>", NULL },
		{ 3, 3, "<c@x>", "Re: y", "<b@x>", NULL },
	};
	box_build(&b, e1, ARRAY_SIZE(e1));
	/* Unsorted, duplicated UIDs and one not in the mailbox (no
	 * headers, date 0: first). */
	buf_init(&out, 0);
	CHECK_EQ_INT(thread_build(REFS, &b.mb, uids, ARRAY_SIZE(uids), false,
				  msns, get_refs, &b, &out), 0);
	CHECK_EQ_STR(buf_cstr(&out), "(99)(10 20 30)");
	buf_reset(&out);
	CHECK_EQ_INT(thread_build(ORD, &b.mb, uids, ARRAY_SIZE(uids), true,
				  NULL, NULL, NULL, &out), 0);
	CHECK_EQ_STR(buf_cstr(&out), "(99)(1)(2 3)");
	buf_reset(&out);
	/* No callback: In-Reply-To only. */
	CHECK_EQ_INT(thread_build(REFS, &b.mb, uids, 4, true, NULL, NULL,
				  NULL, &out), 0);
	CHECK_EQ_STR(buf_cstr(&out), "(1 2 3)");
	buf_reset(&out);
	/* Nothing to thread: nothing written. */
	CHECK_EQ_INT(thread_build(REFS, &b.mb, uids, 0, true, NULL, get_refs,
				  &b, &out), 0);
	CHECK_EQ_INT(out.len, 0);
	buf_deinit(&out);
	/* Output bounded by out->max. */
	buf_init(&out, 4);
	CHECK_EQ_INT(thread_build(REFS, &b.mb, uids, 4, true, NULL, get_refs,
				  &b, &out), KURA_ETOOBIG);
	buf_deinit(&out);
	/* After existing output, appended. */
	buf_init(&out, 0);
	buf_append_str(&out, "* THREAD ");
	CHECK_EQ_INT(thread_build(ORD, &b.mb, uids, 4, true, NULL, NULL, NULL,
				  &out), 0);
	CHECK_EQ_STR(buf_cstr(&out), "* THREAD (1)(2 3)");
	buf_deinit(&out);
	box_free(&b);

	/* Messages without meta or with a damaged envelope. */
	box_build(&b, e1, ARRAY_SIZE(e1));
	b.msgs[0].meta = NULL;
	b.metas[1].envelope[0] = '[';
	buf_init(&out, 0);
	CHECK_EQ_INT(thread_build(REFS, &b.mb, uids + 1, 1, true, NULL,
				  get_refs, &b, &out), 0);
	CHECK_EQ_STR(buf_cstr(&out), "(1)");
	buf_reset(&out);
	uint32_t all[] = { 1, 2, 3 };
	CHECK_EQ_INT(thread_build(REFS, &b.mb, all, 3, true, NULL, NULL, NULL,
				  &out), 0);
	CHECK_EQ_STR(buf_cstr(&out), "(1)(2)(3)");
	buf_deinit(&out);
	box_free(&b);
}

/* References longer than the limits: the nearest ancestors count. */
static void test_ref_limits(void)
{
	struct buf refs;
	buf_init(&refs, 0);
	buf_append_str(&refs, "<a@x>");
	for (int i = 0; i < THREAD_MAX_REFS + 20; i++)
		buf_printf(&refs, " <g%d@x>", i);
	struct tm_def lim[] = {
		{ 1, 1, "<a@x>", "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", NULL, buf_cstr(&refs) },
		{ 3, 3, "<c@x>", "z", NULL, NULL },
	};
	/* <a@x> is beyond the last THREAD_MAX_REFS IDs: not linked. */
	CHECK_THREAD(lim, REFS, "(1)(2)(3)");
	/* An ID longer than THREAD_MAX_ID is not valid. */
	struct buf lid;
	buf_init(&lid, 0);
	buf_append_str(&lid, "<");
	for (int i = 0; i < THREAD_MAX_ID; i++)
		buf_append_str(&lid, "x");
	buf_append_str(&lid, "@x>");
	struct tm_def lim2[] = {
		{ 1, 1, buf_cstr(&lid), "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", NULL, buf_cstr(&lid) },
	};
	CHECK_THREAD(lim2, REFS, "(1)(2)");
	/* A huge References value: only its tail is read. */
	buf_reset(&refs);
	buf_append_str(&refs, "<a@x>");
	while (refs.len < THREAD_MAX_REFS_BYTES + 100)
		buf_append_str(&refs, " (padding padding padding)");
	buf_append_str(&refs, " <c@x>");
	struct tm_def lim3[] = {
		{ 1, 1, "<a@x>", "x", NULL, NULL },
		{ 2, 2, "<b@x>", "y", NULL, buf_cstr(&refs) },
		{ 3, 0, "<c@x>", "z", NULL, NULL },
	};
	CHECK_THREAD(lim3, REFS, "(3 2)(1)");
	buf_deinit(&lid);
	buf_deinit(&refs);
}

/* Past THREAD_MAX_REFS_MEMORY, a message keeps only its parent
 * reference. */
static void test_ref_budget(void)
{
	enum { N = 6000 };
	struct tm_def *defs = xcalloc(N + 2, sizeof(*defs));
	char **strs = xcalloc(N, sizeof(*strs));
	struct buf rb;

	buf_init(&rb, 0);
	for (uint32_t i = 0; i < N; i++) {
		buf_reset(&rb);
		for (int k = 0; k < THREAD_MAX_REFS; k++)
			buf_printf(&rb, "<unique-%u-%d@x> ", i, k);
		strs[i] = xstrdup(buf_cstr(&rb));
		defs[i].uid = i + 1;
		defs[i].date = (int)i;
		defs[i].subject = "s";
		defs[i].refs = strs[i];
	}
	/* Before the budget ran out, "<m@x> <gone@x>" would put the last
	 * message below the one with ID m (through a pruned dummy); now only
	 * <gone@x> counts, and the message is a thread of its own. */
	defs[N] = (struct tm_def){ N + 1, N + 1, "<m@x>", "m", NULL, NULL };
	defs[N + 1] = (struct tm_def){ N + 2, N + 2, "<n@x>", "n", NULL,
				       "<m@x> <gone@x>" };
	struct tbox b;
	box_build(&b, defs, N + 2);
	char *s = run(&b, REFS, true, NULL);
	CHECK(well_formed(s, N + 2));
	size_t len = strlen(s);
	CHECK(len > 12 && strcmp(s + len - 12, "(6001)(6002)") == 0);
	free(s);
	/* The same two messages alone thread as one. */
	box_free(&b);
	box_build(&b, defs + N, 2);
	s = run(&b, REFS, true, NULL);
	CHECK_EQ_STR(s, "(6001 6002)");
	free(s);
	box_free(&b);
	for (size_t i = 0; i < N; i++)
		free(strs[i]);
	free(strs);
	free(defs);
	buf_deinit(&rb);
}

/* Deep trees: no recursion anywhere. A chain where every message has a
 * second, leaf reply nests as deep as it is long. */
static void test_deep(void)
{
	enum { N = 30000 };
	struct tm_def *defs = xcalloc(N, sizeof(*defs));
	char **strs = xcalloc(2 * N, sizeof(*strs));

	for (uint32_t i = 0; i < N; i++) {
		char tmp[64];
		snprintf(tmp, sizeof(tmp), "<m%u@x>", i + 1);
		strs[2 * i] = xstrdup(tmp);
		defs[i].uid = i + 1;
		defs[i].date = (int)i;
		defs[i].msgid = strs[2 * i];
		defs[i].subject = "s";
		/* Odd UIDs form the chain; each even one replies to the odd
		 * one before it (a leaf). */
		uint32_t parent = (i % 2 == 0) ? (i >= 2 ? i - 1 : 0) : i;
		if (parent > 0) {
			snprintf(tmp, sizeof(tmp), "<m%u@x>", parent);
			strs[2 * i + 1] = xstrdup(tmp);
			defs[i].irt = strs[2 * i + 1];
		}
	}
	struct tbox b;
	box_build(&b, defs, N);
	uint64_t t0 = time_mono_usec();
	char *s = run(&b, REFS, true, NULL);
	uint64_t t1 = time_mono_usec();
	CHECK(well_formed(s, N));
	CHECK(strncmp(s, "(1 (2)(3 (4)(5 ", 15) == 0);
	CHECK(t1 - t0 < 10000000);
	free(s);
	s = run(&b, ORD, true, NULL);
	CHECK(well_formed(s, N));
	free(s);
	box_free(&b);
	for (size_t i = 0; i < 2 * N; i++)
		free(strs[i]);
	free(strs);
	free(defs);
}

/* Hostile References: many messages naming random others (cycles,
 * forward references, duplicates). Finishes, and every message appears
 * once. */
static void test_hostile(void)
{
	enum { N = 20000, R = 40 };
	struct tm_def *defs = xcalloc(N, sizeof(*defs));
	char **strs = xcalloc(2 * N, sizeof(*strs));
	uint64_t seed = 12345;
	struct buf rb;

	buf_init(&rb, 0);
	for (uint32_t i = 0; i < N; i++) {
		char tmp[64];
		/* Every 7th message shares an ID with another. */
		snprintf(tmp, sizeof(tmp), "<m%u@x>", i % 7 == 0 ? i / 2 : i);
		strs[2 * i] = xstrdup(tmp);
		buf_reset(&rb);
		for (int k = 0; k < R; k++) {
			seed = seed * 6364136223846793005ull +
			       1442695040888963407ull;
			buf_printf(&rb, "<m%u@x> ", (uint32_t)(seed >> 33) % N);
		}
		strs[2 * i + 1] = xstrdup(buf_cstr(&rb));
		defs[i].uid = i + 1;
		defs[i].date = (int)((seed >> 20) % 1000);
		defs[i].msgid = strs[2 * i];
		defs[i].subject = (i % 3 == 0) ? "Re: s" : (i % 3 == 1) ?
			"s" : "t";
		defs[i].refs = strs[2 * i + 1];
	}
	struct tbox b;
	box_build(&b, defs, N);
	uint64_t t0 = time_mono_usec();
	char *s = run(&b, REFS, true, NULL);
	uint64_t t1 = time_mono_usec();
	CHECK(well_formed(s, N));
	CHECK(t1 - t0 < 15000000);
	free(s);
	box_free(&b);
	for (size_t i = 0; i < 2 * N; i++)
		free(strs[i]);
	free(strs);
	free(defs);
	buf_deinit(&rb);
}

int main(void)
{
	test_parse_algorithm();
	test_rfc_example();
	test_dummies();
	test_loops();
	test_message_ids();
	test_subject_merge();
	test_sibling_order();
	test_ordered_subject();
	test_edges();
	test_ref_limits();
	test_ref_budget();
	test_deep();
	test_hostile();
	return test_done("thread");
}
