/* Unit tests for imapd/sort.c and imapd/envelope.c: base subject
 * extraction (RFC 5256 2.1), collation keys, criteria parsing, and
 * sorting of hand-built mailboxes whose ENVELOPEs come from mime_parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imapd/envelope.h"
#include "imapd/sort.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/util.h"
#include "tests/unit/test.h"

#define T0 1577836800	/* 2020-01-01 00:00:00 UTC */
#define MAXMSG 64

/* ---- helpers ---- */

static char *cstr_of(struct buf *b)
{
	const char *s = buf_cstr(b);
	return xstrdup(s != NULL ? s : "");
}

static char *base(const char *subject, bool *reply_r)
{
	struct buf b;
	buf_init(&b, 0);
	sort_base_subject(subject != NULL ? kstr_cstr(subject) :
					     kstr_make(NULL, 0), &b, reply_r);
	char *r = cstr_of(&b);
	buf_deinit(&b);
	return r;
}

static int n_checked_base;

static void check_base(const char *subject, const char *want, int want_reply,
		       int line)
{
	bool reply = false;
	char *got = base(subject, &reply);
	n_checked_base++;
	if (strcmp(got, want) != 0 || (want_reply >= 0 &&
				       reply != (want_reply != 0))) {
		test_failed++;
		fprintf(stderr, "FAIL %s:%d: base(\"%s\") = \"%s\" reply=%d, "
			"want \"%s\" reply=%d\n", __FILE__, line,
			subject ? subject : "(null)", got, reply, want,
			want_reply);
	} else {
		test_passed++;
	}
	free(got);
}
#define CHECK_BASE(s, w, r) check_base((s), (w), (r), __LINE__)

static char *collate(const char *s)
{
	struct buf b;
	buf_init(&b, 0);
	sort_collate_key(kstr_cstr(s), &b);
	char *r = cstr_of(&b);
	buf_deinit(&b);
	return r;
}

/* Turns '|' into CRLF so test messages fit on a line. */
static char *crlf(const char *s)
{
	size_t n = strlen(s), k = 0;
	char *d = xmalloc(2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '|') {
			d[k++] = '\r';
			d[k++] = '\n';
		} else {
			d[k++] = s[i];
		}
	}
	d[k] = '\0';
	return d;
}

struct tbox {
	struct mailbox mb;
	struct index_msg msgs[MAXMSG];
	struct msg_meta metas[MAXMSG];
};

/* Appends a message (UIDs must come in ascending order); hdr NULL: no
 * meta at all (an old index record). */
static void box_add(struct tbox *b, uint32_t uid, uint64_t size,
		    int64_t idate, const char *hdr)
{
	size_t i = b->mb.count++;
	struct index_msg *m = &b->msgs[i];

	b->mb.msgs = b->msgs;
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->size = size;
	m->internaldate = idate;
	if (hdr == NULL)
		return;
	char *raw = crlf(hdr);
	struct mime_info info;
	mime_parse((const uint8_t *)raw, strlen(raw), &info);
	struct msg_meta *mt = &b->metas[i];
	memset(mt, 0, sizeof(*mt));
	mt->envelope = xstrdup(info.envelope);
	mt->sent_date = info.sent_date;
	mt->sent_tz_min = info.sent_tz_min;
	m->meta = mt;
	mime_info_free(&info);
	free(raw);
}

static void box_free(struct tbox *b)
{
	for (size_t i = 0; i < b->mb.count; i++) {
		if (b->msgs[i].meta != NULL)
			free(b->msgs[i].meta->envelope);
	}
}

/* Parses "(A B C)" given as words into criteria. */
static int parse_words(struct arena *a, const char *const *words, size_t n,
		       struct sort_criteria **c_r, const char **err_r)
{
	struct imap_arg list;
	struct imap_arg *items = arena_zalloc(a, (n + 1) * sizeof(*items));

	memset(&list, 0, sizeof(list));
	list.type = IMAP_ARG_LIST;
	list.list = items;
	list.list_count = n;
	for (size_t i = 0; i < n; i++) {
		items[i].type = IMAP_ARG_ATOM;
		items[i].str = kstr_cstr(words[i]);
	}
	return sort_parse_criteria(a, &list, c_r, err_r);
}

/* Sorts all messages of b with a criteria string like "SUBJECT REVERSE
 * DATE" and returns the UIDs as "3 2 4". */
static char *sort_str(struct tbox *b, const char *crit)
{
	struct arena *a = arena_create(1024);
	const char *words[SORT_MAX_CRITERIA * 2 + 2];
	size_t nw = 0;
	char *copy = xstrdup(crit), *save = NULL;
	for (char *w = strtok_r(copy, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save))
		words[nw++] = w;
	struct sort_criteria *c = NULL;
	const char *err = NULL;
	struct buf out;
	buf_init(&out, 0);
	if (parse_words(a, words, nw, &c, &err) != 0) {
		buf_printf(&out, "ERR %s", err);
	} else {
		uint32_t uids[MAXMSG];
		for (size_t i = 0; i < b->mb.count; i++)
			uids[i] = b->msgs[i].uid;
		sort_messages(c, &b->mb, uids, b->mb.count);
		for (size_t i = 0; i < b->mb.count; i++)
			buf_printf(&out, "%s%u", i ? " " : "", uids[i]);
	}
	char *r = cstr_of(&out);
	buf_deinit(&out);
	free(copy);
	arena_destroy(&a);
	return r;
}

#define CHECK_SORT(b, crit, want) do { \
	char *_s = sort_str((b), (crit)); \
	if (strcmp(_s, (want)) == 0) { test_passed++; } else { test_failed++; \
		fprintf(stderr, "FAIL %s:%d: SORT (%s) = %s, want %s\n", \
			__FILE__, __LINE__, (crit), _s, (want)); } \
	free(_s); \
} while (0)

/* ---- tests ---- */

static void test_base_subject(void)
{
	/* Leaders: subj-refwd in all its forms, repeated. */
	CHECK_BASE("Re: test", "test", 1);
	CHECK_BASE("re: Re: RE: test", "test", 1);
	CHECK_BASE("Re:test", "test", 1);
	CHECK_BASE("Fwd: test", "test", 1);
	CHECK_BASE("Fw: test", "test", 1);
	CHECK_BASE("FWD:test", "test", 1);
	CHECK_BASE("Re[2]: test", "test", 1);
	CHECK_BASE("Re [2] : test", "test", 1);
	CHECK_BASE("Re: Fwd: Re[3]: Fw: test", "test", 1);
	CHECK_BASE("[list] Re: test", "test", 1);
	CHECK_BASE("[a] [b] Re: test", "test", 1);
	/* Not leaders. */
	CHECK_BASE("Ref: test", "Ref: test", 0);
	CHECK_BASE("Fwd test", "Fwd test", 0);
	CHECK_BASE("Re test", "Re test", 0);
	CHECK_BASE("Reply: x", "Reply: x", 0);
	CHECK_BASE("test Re: x", "test Re: x", 0);
	/* Blobs: removed when something is left, not a reply. */
	CHECK_BASE("[PATCH] test", "test", 0);
	CHECK_BASE("[PATCH 1/2] [RFC] test", "test", 0);
	CHECK_BASE("[a][b] test", "test", 0);
	CHECK_BASE("[PATCH]", "[PATCH]", 0);
	CHECK_BASE("Re: [PATCH]", "[PATCH]", 1);
	CHECK_BASE("[a] [b]", "[b]", 0);
	CHECK_BASE("[unclosed test", "[unclosed test", 0);
	CHECK_BASE("[a] Re: [b] Re: x", "x", 1);
	/* Trailers. */
	CHECK_BASE("test (fwd)", "test", 1);
	CHECK_BASE("test (FWD) (fwd)  ", "test", 1);
	CHECK_BASE("test(fwd)", "test", 1);
	CHECK_BASE("test (fwd) x", "test (fwd) x", 0);
	/* [fwd: ...] */
	CHECK_BASE("[fwd: test]", "test", 1);
	CHECK_BASE("[Fwd: Re: test (fwd)]", "test", 1);
	CHECK_BASE("Re: [fwd: [list] Re: test]", "test", 1);
	CHECK_BASE("[fwd: [fwd: test]]", "test", 1);
	CHECK_BASE("[fwd: test] x", "x", 0);
	CHECK_BASE("[fwd:]", "", 1);
	/* White space. */
	CHECK_BASE("  multiple   spaces\tand\t\ttabs  ", "multiple spaces and tabs",
		   0);
	CHECK_BASE("   ", "", 0);
	CHECK_BASE("", "", 0);
	CHECK_BASE(NULL, "", 0);
	CHECK_BASE("Re:", "", 1);
	CHECK_BASE("Re: Re:  ", "", 1);
	CHECK_BASE("Re: (fwd)", "", 1);
	/* Encoded words are decoded first (step 1). */
	CHECK_BASE("=?UTF-8?B?UmU6IGjDqWxsbw==?=", "h\xc3\xa9llo", 1);
	CHECK_BASE("=?ISO-8859-1?Q?Re:_caf=E9?=", "caf\xc3\xa9", 1);
	CHECK_BASE("Re: =?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab", 1);
	CHECK_BASE("=?UTF-8?Q?Re=3A=09x?=", "x", 1);
	/* Case is kept in the base subject. */
	CHECK_BASE("RE: MiXeD", "MiXeD", 1);

	/* Hostile shapes finish fast and right. */
	struct buf big;
	buf_init(&big, 0);
	for (int i = 0; i < 1500; i++)
		buf_append_str(&big, "[a] ");
	buf_append_str(&big, "x");
	char *s = base(buf_cstr(&big), NULL);
	CHECK_EQ_STR(s, "x");
	free(s);
	buf_reset(&big);
	for (int i = 0; i < 1500; i++)
		buf_append_str(&big, "[fwd: ");
	buf_append_str(&big, "y");
	for (int i = 0; i < 1500; i++)
		buf_append_str(&big, "]");
	s = base(buf_cstr(&big), NULL);
	CHECK(strlen(s) > 0);	/* cut at SORT_MAX_SUBJECT: no crash */
	free(s);
	buf_reset(&big);
	for (int i = 0; i < 500; i++)
		buf_append_str(&big, "[fwd: ");
	buf_append_str(&big, "y");
	for (int i = 0; i < 500; i++)
		buf_append_str(&big, "]");
	s = base(buf_cstr(&big), NULL);
	CHECK_EQ_STR(s, "y");
	free(s);
	buf_reset(&big);
	buf_append_str(&big, "[");
	for (int i = 0; i < 20000; i++)
		buf_append_str(&big, "Re: ");
	s = base(buf_cstr(&big), NULL);
	CHECK(s[0] == '[');
	free(s);
	buf_deinit(&big);
}

static void test_collate(void)
{
	char *a = collate("Hello World"), *b = collate("hELLO wORLD");
	CHECK_EQ_STR(a, "HELLO WORLD");
	CHECK_EQ_STR(a, b);
	free(a);
	free(b);
	a = collate("\xc3\x89mile");
	b = collate("\xc3\xa9MILE");
	CHECK_EQ_STR(a, b);
	free(a);
	free(b);
	/* Upper-case mapping, as i;ascii-casemap: '_' after letters. */
	a = collate("_x");
	b = collate("zz");
	CHECK(strcmp(a, b) > 0);
	free(a);
	free(b);
	/* Truncated to SORT_MAX_KEY. */
	char *longs = xmalloc(SORT_MAX_KEY * 2 + 1);
	memset(longs, 'a', SORT_MAX_KEY * 2);
	longs[SORT_MAX_KEY * 2] = '\0';
	a = collate(longs);
	CHECK_EQ_INT(strlen(a), SORT_MAX_KEY);
	free(a);
	free(longs);
	a = collate("");
	CHECK_EQ_STR(a, "");
	free(a);

	struct buf k;
	buf_init(&k, 0);
	bool reply = false;
	sort_subject_key(kstr_cstr("Re: [list] hello"), &k, &reply);
	CHECK_EQ_STR(buf_cstr(&k), "HELLO");
	CHECK(reply);
	buf_deinit(&k);
}

static void test_envelope(void)
{
	struct arena *a = arena_create(1024);
	struct envelope e;
	int ret;

	ret = envelope_parse(a, kstr_cstr("(\"d\" \"s \\\"q\\\" \\\\\" "
		"((\"N\" NIL \"m\" \"h\")(NIL NIL \"m2\" \"h2\")) NIL NIL "
		"((NIL NIL \"grp\" NIL)(NIL NIL NIL NIL)) NIL NIL "
		"\"<a@b>\" {5}\r\n<x@y>)"), &e);
	CHECK_EQ_INT(ret, 0);
	CHECK(e.date.len == 1 && memcmp(e.date.p, "d", 1) == 0);
	CHECK(e.subject.len == 7 && memcmp(e.subject.p, "s \"q\" \\", 7) == 0);
	CHECK_EQ_INT(e.naddrs[ENVELOPE_FROM], 2);
	CHECK(e.first[ENVELOPE_FROM].name.len == 1);
	CHECK(e.first[ENVELOPE_FROM].adl.p == NULL);
	CHECK(e.first[ENVELOPE_FROM].mailbox.len == 1);
	CHECK_EQ_INT(e.naddrs[ENVELOPE_SENDER], 0);
	CHECK_EQ_INT(e.naddrs[ENVELOPE_TO], 2);
	CHECK(e.first[ENVELOPE_TO].host.p == NULL);
	CHECK(e.in_reply_to.len == 5);
	CHECK(e.message_id.len == 5 && memcmp(e.message_id.p, "<x@y>", 5) == 0);

	ret = envelope_parse(a, kstr_cstr("(NIL NIL NIL NIL NIL NIL NIL NIL "
					  "NIL nil)"), &e);
	CHECK_EQ_INT(ret, 0);
	CHECK(e.subject.p == NULL && e.message_id.p == NULL);

	/* Damaged records: everything NIL, an error. */
	static const char *const bad[] = {
		"", "(", "(NIL NIL", "NIL", "(\"unterminated",
		"(NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(NIL NIL (\"x\") NIL NIL NIL NIL NIL NIL NIL)",
		"(NIL {99}\r\nab NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(NIL {99999999999999999999999}\r\nab)",
		"(NIL {2}ab NIL NIL NIL NIL NIL NIL NIL NIL)",
		"(NIL \"a\\",
		"(NIX NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		ret = envelope_parse(a, kstr_cstr(bad[i]), &e);
		CHECK_EQ_INT(ret, KURA_ECORRUPT);
		CHECK(e.subject.p == NULL && e.naddrs[ENVELOPE_FROM] == 0);
	}
	ret = envelope_parse(a, kstr_make(NULL, 0), &e);
	CHECK_EQ_INT(ret, KURA_ECORRUPT);
	arena_destroy(&a);
}

static void test_parse_criteria(void)
{
	struct arena *a = arena_create(1024);
	struct sort_criteria *c;
	const char *err;
	static const char *const ok1[] = { "SUBJECT" };
	static const char *const ok2[] = { "reverse", "date", "Size", "ARRIVAL",
					   "CC", "FROM", "TO" };
	static const char *const ok3[] = { "DISPLAYFROM", "REVERSE",
					   "DISPLAYTO" };
	static const char *const bad1[] = { "REVERSE" };
	static const char *const bad2[] = { "REVERSE", "REVERSE", "DATE" };
	static const char *const bad3[] = { "DATE", "BOGUS" };
	static const char *const bad4[] = { "DATE", "REVERSE" };
	const char *many[SORT_MAX_CRITERIA + 1];

	CHECK_EQ_INT(parse_words(a, ok1, 1, &c, &err), 0);
	CHECK(c != NULL && !sort_criteria_uses_display(c));
	CHECK_EQ_INT(parse_words(a, ok2, ARRAY_SIZE(ok2), &c, &err), 0);
	CHECK_EQ_INT(parse_words(a, ok3, ARRAY_SIZE(ok3), &c, &err), 0);
	CHECK(c != NULL && sort_criteria_uses_display(c));
	CHECK_EQ_INT(parse_words(a, bad1, 1, &c, &err), KURA_EINVAL);
	CHECK(c == NULL);
	CHECK_EQ_INT(parse_words(a, bad2, 3, &c, &err), KURA_EINVAL);
	CHECK_EQ_INT(parse_words(a, bad3, 2, &c, &err), KURA_EINVAL);
	CHECK_EQ_INT(parse_words(a, bad4, 2, &c, &err), KURA_EINVAL);
	CHECK_EQ_INT(parse_words(a, ok1, 0, &c, &err), KURA_EINVAL);
	for (size_t i = 0; i <= SORT_MAX_CRITERIA; i++)
		many[i] = "DATE";
	CHECK_EQ_INT(parse_words(a, many, SORT_MAX_CRITERIA, &c, &err), 0);
	CHECK_EQ_INT(parse_words(a, many, SORT_MAX_CRITERIA + 1, &c, &err),
		     KURA_EINVAL);

	/* Not a list; a string or a nested list inside it. */
	struct imap_arg atom = { .type = IMAP_ARG_ATOM,
				 .str = KSTR_LIT("DATE") };
	CHECK_EQ_INT(sort_parse_criteria(a, &atom, &c, &err), KURA_EINVAL);
	CHECK_EQ_INT(sort_parse_criteria(a, NULL, &c, &err), KURA_EINVAL);
	struct imap_arg str = { .type = IMAP_ARG_STRING,
				.str = KSTR_LIT("DATE") };
	struct imap_arg l1 = { .type = IMAP_ARG_LIST, .list = &str,
			       .list_count = 1 };
	CHECK_EQ_INT(sort_parse_criteria(a, &l1, &c, &err), KURA_EINVAL);
	struct imap_arg inner = { .type = IMAP_ARG_LIST, .list = &atom,
				  .list_count = 1 };
	struct imap_arg l2 = { .type = IMAP_ARG_LIST, .list = &inner,
			       .list_count = 1 };
	CHECK_EQ_INT(sort_parse_criteria(a, &l2, &c, &err), KURA_EINVAL);
	CHECK(err != NULL);
	arena_destroy(&a);
}

static void build_box(struct tbox *b)
{
	memset(b, 0, sizeof(*b));
	box_add(b, 1, 300, T0 + 500,
		"From: Zed <b@x.org>|To: carol@x.org|"
		"Cc: \"Quoted Local\"@x.org|Subject: Re: beta|"
		"Date: Thu, 2 Jan 2020 10:00:00 +0000||body");
	box_add(b, 2, 100, T0 + 100,
		"From: Alice <Z@x.org>|To: Zack <bob@x.org>|Subject: alpha|"
		"Date: Wed, 1 Jan 2020 10:00:00 +0000||");
	box_add(b, 3, 200, T0 + 300, "X-Nothing: 1||");
	box_add(b, 4, 100, T0 + 50,
		"From: =?UTF-8?Q?=C3=89mile?= <a@x.org>|To: Dave <dave@x.org>|"
		"Subject: =?UTF-8?Q?Alpha?=|"
		"Date: Wed, 1 Jan 2020 11:00:00 +0100||");
	box_add(b, 5, 50, T0 + 400,
		"From: y@x.org|To: \"\" <aaron@x.org>|Cc: zz@x.org|"
		"Subject: [list] Fwd: BETA|"
		"Date: Fri, 3 Jan 2020 10:00:00 +0000||");
}

static void test_sort_keys(void)
{
	struct tbox b;

	build_box(&b);
	CHECK_SORT(&b, "ARRIVAL", "4 2 3 5 1");
	CHECK_SORT(&b, "REVERSE ARRIVAL", "1 5 3 2 4");
	/* 3 has no Date: its internal date (00:05) is its sent date; 2 and 4
	 * are the same instant in two zones: tie, UID order. */
	CHECK_SORT(&b, "DATE", "3 2 4 1 5");
	CHECK_SORT(&b, "REVERSE DATE", "5 1 2 4 3");
	CHECK_SORT(&b, "SIZE", "5 2 4 3 1");
	CHECK_SORT(&b, "REVERSE SIZE", "1 3 2 4 5");
	/* Missing Subject is the empty string and sorts first; the encoded
	 * "Alpha" equals "alpha"; "[list] Fwd: BETA" equals "Re: beta". */
	CHECK_SORT(&b, "SUBJECT", "3 2 4 1 5");
	/* REVERSE does not reverse the implicit UID order of ties. */
	CHECK_SORT(&b, "REVERSE SUBJECT", "1 5 2 4 3");
	CHECK_SORT(&b, "SUBJECT DATE", "3 2 4 1 5");
	CHECK_SORT(&b, "SUBJECT REVERSE DATE", "3 2 4 5 1");
	CHECK_SORT(&b, "REVERSE SUBJECT REVERSE DATE", "5 1 2 4 3");
	CHECK_SORT(&b, "SIZE ARRIVAL", "5 4 2 3 1");
	CHECK_SORT(&b, "SIZE REVERSE ARRIVAL", "5 2 4 3 1");
	/* Local parts, case-insensitively: "", a, b, y, Z. */
	CHECK_SORT(&b, "FROM", "3 4 1 5 2");
	CHECK_SORT(&b, "REVERSE FROM", "2 5 1 4 3");
	/* Display names (decoded), else the address: "", ALICE, Y@X.ORG,
	 * ZED, then the non-ASCII \xc3\xa9MILE. */
	CHECK_SORT(&b, "DISPLAYFROM", "3 2 5 1 4");
	CHECK_SORT(&b, "TO", "3 5 2 1 4");
	/* An empty display name falls back to the address. */
	CHECK_SORT(&b, "DISPLAYTO", "3 5 1 4 2");
	/* Quotes of a quoted local part do not count. */
	CHECK_SORT(&b, "CC", "2 3 4 1 5");
	CHECK_SORT(&b, "CC SIZE", "2 4 3 1 5");
	CHECK_SORT(&b, "REVERSE CC DATE", "5 1 3 2 4");
	/* The same key twice changes nothing. */
	CHECK_SORT(&b, "SUBJECT SUBJECT REVERSE SUBJECT", "3 2 4 1 5");
	CHECK_SORT(&b, "BOGUS", "ERR Unknown sort criterion");
	box_free(&b);
}

static void test_sort_edges(void)
{
	struct tbox b;
	struct arena *a = arena_create(1024);
	static const char *const subj[] = { "SUBJECT" };
	static const char *const from_date[] = { "FROM", "DATE" };
	struct sort_criteria *c, *c2;
	const char *err;

	memset(&b, 0, sizeof(b));
	/* No meta at all, and a damaged envelope: both sort like a message
	 * without headers. */
	box_add(&b, 10, 1, T0 + 10, NULL);
	box_add(&b, 20, 1, T0 + 5, "Subject: b|From: b@x||");
	box_add(&b, 30, 1, T0 + 1, "Subject: a|From: a@x||");
	b.msgs[2].meta->envelope[0] = 'X';
	CHECK_EQ_INT(parse_words(a, subj, 1, &c, &err), 0);
	CHECK_EQ_INT(parse_words(a, from_date, 2, &c2, &err), 0);

	uint32_t uids[] = { 30, 20, 10 };
	sort_messages(c, &b.mb, uids, 3);
	CHECK(uids[0] == 10 && uids[1] == 30 && uids[2] == 20);
	/* A UID not in the mailbox: no headers, date 0. */
	uint32_t uids2[] = { 20, 99, 10 };
	sort_messages(c2, &b.mb, uids2, 3);
	CHECK(uids2[0] == 99 && uids2[1] == 10 && uids2[2] == 20);
	/* Nothing to sort. */
	sort_messages(c, &b.mb, uids, 0);
	sort_messages(c, &b.mb, uids, 1);
	CHECK(uids[0] == 10);
	box_free(&b);
	arena_destroy(&a);
}

/* A big mailbox: keys once per message, O(n log n); checks the order. */
static void test_sort_many(void)
{
	enum { N = 20000 };
	struct mailbox mb;
	struct index_msg *msgs = xcalloc(N, sizeof(*msgs));
	struct msg_meta *metas = xcalloc(N, sizeof(*metas));
	uint32_t *uids = xmalloc(N * sizeof(*uids));
	struct arena *a = arena_create(1024);
	static const char *const crit[] = { "SUBJECT", "REVERSE", "SIZE" };
	struct sort_criteria *c;
	const char *err;

	memset(&mb, 0, sizeof(mb));
	mb.msgs = msgs;
	mb.count = N;
	for (uint32_t i = 0; i < N; i++) {
		char env[200];
		msgs[i].uid = i + 1;
		msgs[i].size = (i * 7919u) % 1000;
		snprintf(env, sizeof(env), "(NIL \"Re: subject %u\" NIL NIL "
			 "NIL NIL NIL NIL NIL NIL)", (i * 31u) % 97);
		metas[i].envelope = xstrdup(env);
		metas[i].sent_date = -1;
		msgs[i].meta = &metas[i];
		uids[i] = N - i;
	}
	CHECK_EQ_INT(parse_words(a, crit, 3, &c, &err), 0);
	uint64_t t0 = time_mono_usec();
	sort_messages(c, &mb, uids, N);
	uint64_t t1 = time_mono_usec();
	CHECK(t1 - t0 < 5000000);
	bool ordered = true;
	for (size_t k = 1; k < N; k++) {
		const struct index_msg *p = &msgs[uids[k - 1] - 1];
		const struct index_msg *q = &msgs[uids[k] - 1];
		char sp[16], sq[16];
		snprintf(sp, sizeof(sp), "%u", ((p->uid - 1) * 31u) % 97);
		snprintf(sq, sizeof(sq), "%u", ((q->uid - 1) * 31u) % 97);
		int r = strcmp(sp, sq);
		if (r == 0)
			r = p->size > q->size ? -1 : p->size < q->size;
		if (r == 0)
			r = p->uid < q->uid ? -1 : 1;
		if (r >= 0)
			ordered = false;
	}
	CHECK(ordered);
	for (size_t i = 0; i < N; i++)
		free(metas[i].envelope);
	free(msgs);
	free(metas);
	free(uids);
	arena_destroy(&a);
}

int main(void)
{
	test_base_subject();
	test_collate();
	test_envelope();
	test_parse_criteria();
	test_sort_keys();
	test_sort_edges();
	test_sort_many();
	return test_done("sort");
}
