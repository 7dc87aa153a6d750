/* Tests for imapd/imap_util: sequence sets, modified UTF-7, dates,
 * string writing. */
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_util.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "tests/unit/test.h"

/* "lo:hi,lo:hi" of a parsed set, or "FAIL"; static buffer. */
static const char *set_str(const char *s, uint32_t star, size_t max)
{
	static char out[512];
	struct seqset set;
	size_t n = 0;

	if (!seqset_parse(kstr_cstr(s), star, max, &set))
		return "FAIL";
	out[0] = '\0';
	for (size_t i = 0; i < set.count && n < sizeof(out) - 32; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%u:%u",
				      i ? "," : "", set.r[i].lo, set.r[i].hi);
	seqset_free(&set);
	CHECK(set.r == NULL && set.count == 0);
	return out;
}

static void test_seqset(void)
{
	CHECK_EQ_STR(set_str("1", 10, 0), "1:1");
	CHECK_EQ_STR(set_str("1:3", 10, 0), "1:3");
	CHECK_EQ_STR(set_str("3:1", 10, 0), "1:3");
	CHECK_EQ_STR(set_str("*", 10, 0), "10:10");
	CHECK_EQ_STR(set_str("1:*", 10, 0), "1:10");
	CHECK_EQ_STR(set_str("*:4", 10, 0), "4:10");
	/* a UID range above star still holds star */
	CHECK_EQ_STR(set_str("15:*", 10, 0), "10:15");
	CHECK_EQ_STR(set_str("1,3:5,7:*", 20, 0), "1:1,3:5,7:20");
	/* merge: overlapping, adjacent, duplicate, unsorted */
	CHECK_EQ_STR(set_str("5:9,1:6", 10, 0), "1:9");
	CHECK_EQ_STR(set_str("1:2,3:4", 10, 0), "1:4");
	CHECK_EQ_STR(set_str("7,7,7", 10, 0), "7:7");
	CHECK_EQ_STR(set_str("9,1,5,2", 10, 0), "1:2,5:5,9:9");
	CHECK_EQ_STR(set_str("1:10,2:3,4:20,30", 10, 0), "1:20,30:30");
	CHECK_EQ_STR(set_str("4294967295", 10, 0), "4294967295:4294967295");
	CHECK_EQ_STR(set_str("1:4294967295,5,4294967295", 10, 0),
		     "1:4294967295");
	CHECK_EQ_STR(set_str("4294967294,4294967295,1", 10, 0),
		     "1:1,4294967294:4294967295");
	/* empty mailbox: '*' is 0 and matches nothing real */
	CHECK_EQ_STR(set_str("*", 0, 0), "0:0");
	CHECK_EQ_STR(set_str("1:*", 0, 0), "0:1");
	/* rejected */
	CHECK_EQ_STR(set_str("0", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("0:5", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("01", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("4294967296", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("99999999999999999999999", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str(",", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("1,", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str(",1", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("1,,2", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("1:", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str(":1", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("1:2:3", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("1 ", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("-1", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("**", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("$", 10, 0), "FAIL");
	CHECK_EQ_STR(set_str("ALL", 10, 0), "FAIL");
	/* max_ranges counts the ranges as written */
	CHECK_EQ_STR(set_str("1,2,3", 10, 3), "1:3");
	CHECK_EQ_STR(set_str("1,2,3,4", 10, 3), "FAIL");

	struct seqset set;
	CHECK(seqset_parse(KSTR_LIT("2:4,8,10:*"), 12, 0, &set));
	CHECK(!seqset_contains(&set, 0));
	CHECK(!seqset_contains(&set, 1));
	CHECK(seqset_contains(&set, 2));
	CHECK(seqset_contains(&set, 4));
	CHECK(!seqset_contains(&set, 5));
	CHECK(seqset_contains(&set, 8));
	CHECK(!seqset_contains(&set, 9));
	CHECK(seqset_contains(&set, 12));
	CHECK(!seqset_contains(&set, 13));
	seqset_free(&set);
	CHECK(seqset_parse(KSTR_LIT("*"), 0, 0, &set));
	CHECK(!seqset_contains(&set, 1));
	seqset_free(&set);

	CHECK(seqset_is_valid(KSTR_LIT("1:*")));
	CHECK(seqset_is_valid(KSTR_LIT("1,2:3,*")));
	CHECK(seqset_is_valid(KSTR_LIT("4294967295")));
	CHECK(!seqset_is_valid(KSTR_LIT("4294967296")));
	CHECK(!seqset_is_valid(KSTR_LIT("0")));
	CHECK(!seqset_is_valid(KSTR_LIT("")));
	CHECK(!seqset_is_valid(KSTR_LIT("ALL")));
	CHECK(!seqset_is_valid(KSTR_LIT("1,")));
	CHECK(!seqset_is_valid(KSTR_LIT("UNSEEN")));

	struct buf b;
	buf_init(&b, 0);
	static const uint32_t v1[] = { 1, 2, 3, 7 };
	seqset_write(&b, v1, 4);
	CHECK_EQ_STR(buf_cstr(&b), "1:3,7");
	buf_reset(&b);
	static const uint32_t v2[] = { 5 };
	seqset_write(&b, v2, 1);
	CHECK_EQ_STR(buf_cstr(&b), "5");
	buf_reset(&b);
	seqset_write(&b, v2, 0);
	CHECK_EQ_STR(buf_cstr(&b), "");
	buf_reset(&b);
	static const uint32_t v3[] = { 1, 3, 5, 6, 6, 7, 9, 4294967294,
				       4294967295 };
	seqset_write(&b, v3, ARRAY_SIZE(v3));
	CHECK_EQ_STR(buf_cstr(&b), "1,3,5:7,9,4294967294:4294967295");
	buf_reset(&b);
	static const uint32_t v4[] = { 4294967295 };
	seqset_write(&b, v4, 1);
	CHECK_EQ_STR(buf_cstr(&b), "4294967295");
	/* what is written parses back to the same numbers */
	CHECK_EQ_STR(set_str("1,3,5:7,9,4294967294:4294967295", 1, 0),
		     "1:1,3:3,5:7,9:9,4294967294:4294967295");
	buf_deinit(&b);
}

/* mUTF-7 -> UTF-8, or "FAIL"; static buffer. */
static const char *from7(const char *s)
{
	static char out[256];
	struct buf b;

	buf_init(&b, 0);
	bool ok = mutf7_to_utf8(kstr_cstr(s), &b);
	if (ok != mutf7_is_valid(kstr_cstr(s)))
		return "MISMATCH";
	snprintf(out, sizeof(out), "%s", ok ? buf_cstr(&b) : "FAIL");
	buf_deinit(&b);
	return out;
}

static const char *to7(const char *s, size_t len)
{
	static char out[256];
	struct buf b;

	buf_init(&b, 0);
	bool ok = utf8_to_mutf7(kstr_make(s, len), &b);
	snprintf(out, sizeof(out), "%s", ok ? buf_cstr(&b) : "FAIL");
	buf_deinit(&b);
	return out;
}

#define TO7(s) to7(s, sizeof(s) - 1)

static void test_mutf7(void)
{
	static const char *const pairs[][2] = {
		{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "&-", "&" },
		{ "a&-b&-&-", "a&b&&" },
		{ "INBOX", "INBOX" },
		{ "", "" },
		{ "Entw&APw-rfe", "Entw\xc3\xbc" "rfe" },
		{ "&AOQA9gD8-", "\xc3\xa4\xc3\xb6\xc3\xbc" },
		/* U+1F600 as a surrogate pair */
		{ "&2D3eAA-", "\xf0\x9f\x98\x80" },
		{ "x&2D3eAA-&-y", "x\xf0\x9f\x98\x80&y" },
		/* control characters have no direct form */
		{ "a&AAk-b", "a\tb" },
		{ "&AH8-", "\x7f" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
		CHECK_EQ_STR(from7(pairs[i][0]), pairs[i][1]);
		CHECK_EQ_STR(to7(pairs[i][1], strlen(pairs[i][1])),
			     pairs[i][0]);
	}
	/* broken and non-canonical forms */
	static const char *const bad[] = {
		"&",		/* not closed */
		"&U,BTFw",	/* not closed */
		"&U,BTF-",	/* half a character */
		"&U,BTFx-",	/* non-zero padding bits */
		"&AGE-",	/* 'a' must stand for itself */
		"&ACY-",	/* '&' must be "&-" */
		"&U,BTFwA-",	/* a spare base64 digit */
		"&U,B-",
		"&A-",
		"&2D0-",	/* lone high surrogate */
		"&2D3YPQ-",	/* high surrogate + high surrogate */
		"&3gA-",	/* lone low surrogate */
		"&U,A-&U,A-",	/* two runs side by side */
		"&U/BTFw-",	/* '/' is not modified base64 */
		"&AAA-",	/* U+0000 */
		"a\tb",		/* raw control */
		"a\x7f",
		"\xc3\xa4",	/* raw 8-bit */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_EQ_STR(from7(bad[i]), "FAIL");
		CHECK(!mutf7_is_valid(kstr_cstr(bad[i])));
	}
	CHECK(mutf7_is_valid(KSTR_LIT("&U,BTFw-&-")));
	/* bad UTF-8 in */
	CHECK_EQ_STR(TO7("\xc0\xaf"), "FAIL");	/* overlong */
	CHECK_EQ_STR(TO7("\xed\xa0\x80"), "FAIL");	/* surrogate */
	CHECK_EQ_STR(TO7("\xf4\x90\x80\x80"), "FAIL");	/* > U+10FFFF */
	CHECK_EQ_STR(TO7("\xe6\x97"), "FAIL");	/* cut */
	CHECK_EQ_STR(TO7("\x80"), "FAIL");
	CHECK_EQ_STR(TO7("a\0b"), "FAIL");
	CHECK_EQ_STR(TO7("\xff"), "FAIL");

	/* every BMP character outside printable ASCII and surrogates, one
	 * at a time and in runs, survives the round trip */
	bool all_ok = true;
	for (uint32_t cp = 1; cp < 0x10000 && all_ok; cp += 7) {
		if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xd800 && cp <= 0xdfff))
			continue;
		char u[16];
		size_t n = 0;
		u[n++] = 'a';
		for (int rep = 0; rep < 3; rep++) {
			if (cp < 0x80) {
				u[n++] = (char)cp;
			} else if (cp < 0x800) {
				u[n++] = (char)(0xc0 | (cp >> 6));
				u[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				u[n++] = (char)(0xe0 | (cp >> 12));
				u[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				u[n++] = (char)(0x80 | (cp & 0x3f));
			}
		}
		struct buf m, back;
		buf_init(&m, 0);
		buf_init(&back, 0);
		all_ok = utf8_to_mutf7(kstr_make(u, n), &m) &&
			mutf7_to_utf8(buf_kstr(&m), &back) &&
			back.len == n && memcmp(back.data, u, n) == 0;
		buf_deinit(&m);
		buf_deinit(&back);
	}
	CHECK(all_ok);
}

static void test_dates(void)
{
	int64_t t;
	int tz;
	struct buf b;

	buf_init(&b, 0);
	CHECK(imap_datetime_parse(KSTR_LIT("17-Jul-1996 02:44:25 -0700"), &t,
				  &tz));
	CHECK_EQ_INT(t, 837596665);
	CHECK_EQ_INT(tz, -420);
	imap_datetime_write(&b, t, tz);
	CHECK_EQ_STR(buf_cstr(&b), "\"17-Jul-1996 02:44:25 -0700\"");
	buf_reset(&b);
	imap_datetime_write(&b, t, 0);
	CHECK_EQ_STR(buf_cstr(&b), "\"17-Jul-1996 09:44:25 +0000\"");
	buf_reset(&b);
	imap_datetime_write(&b, t, 330);
	CHECK_EQ_STR(buf_cstr(&b), "\"17-Jul-1996 15:14:25 +0530\"");
	buf_reset(&b);

	CHECK(imap_datetime_parse(KSTR_LIT(" 1-Jan-1970 00:00:00 +0000"), &t,
				  &tz));
	CHECK_EQ_INT(t, 0);
	CHECK_EQ_INT(tz, 0);
	CHECK(imap_datetime_parse(KSTR_LIT("1-jan-1970 01:00:00 +0100"), &t,
				  &tz));
	CHECK_EQ_INT(t, 0);
	CHECK_EQ_INT(tz, 60);
	CHECK(imap_datetime_parse(KSTR_LIT("01-JAN-1970 00:00:00 +0000"), &t,
				  &tz));
	CHECK_EQ_INT(t, 0);
	CHECK(imap_datetime_parse(KSTR_LIT("29-Feb-2024 23:59:59 +1400"), &t,
				  &tz));
	CHECK_EQ_INT(t, 1709251199 - 14 * 3600);
	CHECK(imap_datetime_parse(KSTR_LIT("31-Dec-1969 23:59:59 +0000"), &t,
				  &tz));
	CHECK_EQ_INT(t, -1);
	imap_datetime_write(&b, t, 0);
	CHECK_EQ_STR(buf_cstr(&b), "\"31-Dec-1969 23:59:59 +0000\"");
	buf_reset(&b);
	CHECK(imap_datetime_parse(KSTR_LIT("31-Dec-9999 23:59:59 +0000"), &t,
				  &tz));
	CHECK_EQ_INT(t, 253402300799LL);
	CHECK(imap_datetime_parse(KSTR_LIT("01-Mar-2000 00:00:00 +0000"), &t,
				  &tz));
	CHECK_EQ_INT(t, 951868800);
	imap_datetime_write(&b, t, -600);
	CHECK_EQ_STR(buf_cstr(&b), "\"29-Feb-2000 14:00:00 -1000\"");
	buf_reset(&b);
	imap_datetime_write(&b, 1700000000, 0);
	CHECK_EQ_STR(buf_cstr(&b), "\"14-Nov-2023 22:13:20 +0000\"");
	buf_reset(&b);

	static const char *const bad[] = {
		"",
		"17-Jul-1996 02:44:25",
		"17-Jul-1996 02:44:25 -07000",
		"17-Jul-1996 02:44:25 0700",
		"17-Jul-1996 02:44:25  -0700",
		"17-Jly-1996 02:44:25 -0700",
		"32-Jul-1996 02:44:25 -0700",
		"00-Jul-1996 02:44:25 -0700",
		"29-Feb-2023 02:44:25 -0700",
		"29-Feb-1900 02:44:25 -0700",
		"31-Apr-2020 02:44:25 -0700",
		"17-Jul-96 02:44:25 -0700",
		"17-Jul-0000 02:44:25 -0700",
		"17-Jul-1996 24:00:00 -0700",
		"17-Jul-1996 02:60:25 -0700",
		"17-Jul-1996 02:44:61 -0700",
		"17-Jul-1996 2:44:25 -0700",
		"17-Jul-1996 02:44:25 -0760",
		"17-Jul-1996 02:44:25 +2400",
		"\"17-Jul-1996 02:44:25 -0700\"",
		"117-Jul-1996 02:44:25 -0700",
		"  7-Jul-1996 02:44:25 -0700",
		" 17-Jul-1996 02:44:25 -0700",
		"17-Jul-1996\t02:44:25 -0700",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		bool ok = imap_datetime_parse(kstr_cstr(bad[i]), &t, &tz);
		if (ok)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(!ok);
	}
	CHECK(imap_datetime_parse(KSTR_LIT("30-Jun-2016 23:59:60 +0000"), &t,
				  &tz));

	CHECK(imap_date_parse(KSTR_LIT("1-Feb-1994"), &t));
	CHECK_EQ_INT(t, 760060800);
	CHECK(imap_date_parse(KSTR_LIT("01-Feb-1994"), &t));
	CHECK_EQ_INT(t, 760060800);
	CHECK(imap_date_parse(KSTR_LIT("1-feb-1994"), &t));
	CHECK(imap_date_parse(KSTR_LIT("29-Feb-2000"), &t));
	CHECK(!imap_date_parse(KSTR_LIT("29-Feb-2100"), &t));
	CHECK(!imap_date_parse(KSTR_LIT(" 1-Feb-1994"), &t));
	CHECK(!imap_date_parse(KSTR_LIT("1-Feb-1994 "), &t));
	CHECK(!imap_date_parse(KSTR_LIT("1-Feb-94"), &t));
	CHECK(!imap_date_parse(KSTR_LIT("Feb-1994"), &t));
	CHECK(!imap_date_parse(KSTR_LIT("1-Febr-1994"), &t));
	CHECK(!imap_date_parse(KSTR_LIT(""), &t));

	/* round trip over many instants and zones */
	bool rt = true;
	for (int64_t x = -2208988800LL; x < 4102444800LL && rt;
	     x += 86400 * 37 + 3671) {
		for (int z = -720; z <= 840; z += 195) {
			buf_reset(&b);
			imap_datetime_write(&b, x, z);
			struct kstr s = buf_kstr(&b);
			int64_t t2;
			int tz2;
			rt = s.len == 28 &&
				imap_datetime_parse(kstr_make(s.p + 1, s.len - 2),
						    &t2, &tz2) &&
				t2 == x && tz2 == z;
			if (!rt) {
				fprintf(stderr, "round trip %lld %d: %s\n",
					(long long)x, z, buf_cstr(&b));
				break;
			}
		}
	}
	CHECK(rt);
	buf_deinit(&b);
}

static const char *wstr(struct kstr s)
{
	static char out[256];
	struct buf b;

	buf_init(&b, 0);
	imap_write_string(&b, s);
	snprintf(out, sizeof(out), "%s", buf_cstr(&b));
	buf_deinit(&b);
	return out;
}

static const char *wastr(struct kstr s)
{
	static char out[256];
	struct buf b;

	buf_init(&b, 0);
	imap_write_astring(&b, s);
	snprintf(out, sizeof(out), "%s", buf_cstr(&b));
	buf_deinit(&b);
	return out;
}

static void test_write(void)
{
	CHECK_EQ_STR(wstr(KSTR_LIT("hello")), "\"hello\"");
	CHECK_EQ_STR(wstr(KSTR_LIT("")), "\"\"");
	CHECK_EQ_STR(wstr(KSTR_LIT("a\"b\\c")), "\"a\\\"b\\\\c\"");
	CHECK_EQ_STR(wstr(KSTR_LIT("\"")), "\"\\\"\"");
	CHECK_EQ_STR(wstr(KSTR_LIT("a b\tc")), "\"a b\tc\"");
	CHECK_EQ_STR(wstr(KSTR_LIT("a\r\nb")), "{4}\r\na\r\nb");
	CHECK_EQ_STR(wstr(KSTR_LIT("\xc3\xa4")), "{2}\r\n\xc3\xa4");
	CHECK_EQ_STR(wstr(KSTR_LIT("a\"\n")), "{3}\r\na\"\n");
	struct buf b;
	buf_init(&b, 0);
	imap_write_string(&b, KSTR_LIT("a\0b"));
	CHECK(b.len == 8 && memcmp(b.data, "{3}\r\na\0b", 8) == 0);
	buf_reset(&b);
	imap_write_nstring(&b, NULL, 0);
	CHECK_EQ_STR(buf_cstr(&b), "NIL");
	buf_reset(&b);
	imap_write_nstring(&b, (const uint8_t *)"NIL", 3);
	CHECK_EQ_STR(buf_cstr(&b), "\"NIL\"");
	buf_reset(&b);
	imap_write_nstring(&b, (const uint8_t *)"", 0);
	CHECK_EQ_STR(buf_cstr(&b), "\"\"");
	buf_deinit(&b);

	CHECK_EQ_STR(wastr(KSTR_LIT("INBOX")), "INBOX");
	CHECK_EQ_STR(wastr(KSTR_LIT("~peter/mail/&U,BTFw-")),
		     "~peter/mail/&U,BTFw-");
	CHECK_EQ_STR(wastr(KSTR_LIT("a]b")), "\"a]b\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("[Gmail]/Sent")), "\"[Gmail]/Sent\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("a.b-c_d&-")), "a.b-c_d&-");
	CHECK_EQ_STR(wastr(KSTR_LIT("Sent Items")), "\"Sent Items\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("")), "\"\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("nil")), "\"nil\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("a*")), "\"a*\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("a%")), "\"a%\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("a(b)")), "\"a(b)\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("a{1}")), "\"a{1}\"");
	CHECK_EQ_STR(wastr(KSTR_LIT("a\"")), "\"a\\\"\"");

	CHECK(imap_is_atom_char('a'));
	CHECK(imap_is_atom_char('['));
	CHECK(imap_is_atom_char('.'));
	CHECK(imap_is_atom_char('+'));
	CHECK(!imap_is_atom_char(']'));
	CHECK(!imap_is_atom_char(' '));
	CHECK(!imap_is_atom_char('('));
	CHECK(!imap_is_atom_char(')'));
	CHECK(!imap_is_atom_char('{'));
	CHECK(!imap_is_atom_char('%'));
	CHECK(!imap_is_atom_char('*'));
	CHECK(!imap_is_atom_char('"'));
	CHECK(!imap_is_atom_char('\\'));
	CHECK(!imap_is_atom_char(0x7f));
	CHECK(!imap_is_atom_char(0x80));
	CHECK(!imap_is_atom_char('\0'));
}

int main(void)
{
	test_seqset();
	test_mutf7();
	test_dates();
	test_write();
	return test_done("imap_util");
}
