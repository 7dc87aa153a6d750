/* FETCH items: parsing, and byte-exact rendering over a real multipart
 * message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "imapd/fetch.h"
#include "imapd/imap_util.h"
#include "index/mime.h"
#include "lib/errors.h"
#include "lib/util.h"
#include "tests/unit/test.h"

/* ---- a tiny argument tokenizer, so items read like the wire ---- */

static int tok_list(struct arena *a, const char **pp, const char *end,
		    char close, struct imap_arg **args_r, size_t *n_r);

static int tok_one(struct arena *a, const char **pp, const char *end,
		   struct imap_arg *arg)
{
	const char *p = *pp;

	memset(arg, 0, sizeof(*arg));
	if (*p == '(') {
		p++;
		arg->type = IMAP_ARG_LIST;
		if (tok_list(a, &p, end, ')', &arg->list, &arg->list_count) < 0)
			return -1;
	} else if (*p == '"') {
		char *s = arena_alloc(a, (size_t)(end - p) + 1);
		size_t n = 0;
		p++;
		while (p < end && *p != '"') {
			if (*p == '\\' && p + 1 < end)
				p++;
			s[n++] = *p++;
		}
		if (p == end)
			return -1;
		p++;
		s[n] = '\0';
		arg->type = IMAP_ARG_STRING;
		arg->str = kstr_make(s, n);
	} else {
		const char *s = p;
		int depth = 0;
		while (p < end && (depth > 0 || (*p != ' ' && *p != ')' &&
						 *p != '('))) {
			if (*p == '[')
				depth++;
			else if (*p == ']' && depth > 0)
				depth--;
			p++;
		}
		if (p == s)
			return -1;
		arg->type = IMAP_ARG_ATOM;
		arg->str = arena_kstr(a, kstr_make(s, (size_t)(p - s)));
	}
	*pp = p;
	return 0;
}

static int tok_list(struct arena *a, const char **pp, const char *end,
		    char close, struct imap_arg **args_r, size_t *n_r)
{
	struct imap_arg *args = arena_zalloc(a, 64 * sizeof(*args));
	size_t n = 0;
	const char *p = *pp;

	for (;;) {
		while (p < end && *p == ' ')
			p++;
		if (p == end || *p == close) {
			if (close != '\0' && p == end)
				return -1;
			if (p < end)
				p++;
			break;
		}
		if (n == 64 || tok_one(a, &p, end, &args[n++]) < 0)
			return -1;
	}
	*pp = p;
	*args_r = args;
	*n_r = n;
	return 0;
}

/* ---- the message ---- */

#define HDR \
	"From: Alice <alice@example.com>\r\n" \
	"To: bob@example.org\r\n" \
	"Subject: Test message\r\n" \
	"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n" \
	"MIME-Version: 1.0\r\n" \
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n" \
	"\r\n"
#define TEXT \
	"preamble\r\n" \
	"--XX\r\n" \
	"Content-Type: text/plain; charset=us-ascii\r\n" \
	"\r\n" \
	"Hello Bob.\r\n" \
	"--XX\r\n" \
	"Content-Type: application/octet-stream\r\n" \
	"Content-Transfer-Encoding: base64\r\n" \
	"\r\n" \
	"AAECAw==\r\n" \
	"--XX\r\n" \
	"Content-Type: message/rfc822\r\n" \
	"\r\n" \
	"Subject: inner\r\n" \
	"From: carol@example.net\r\n" \
	"\r\n" \
	"inner body\r\n" \
	"--XX\r\n" \
	"Content-Type: text/plain; charset=utf-8\r\n" \
	"Content-Transfer-Encoding: quoted-printable\r\n" \
	"\r\n" \
	"caf=C3=A9\r\n" \
	"--XX\r\n" \
	"Content-Type: application/x-thing\r\n" \
	"Content-Transfer-Encoding: x-unknown\r\n" \
	"\r\n" \
	"zzz\r\n" \
	"--XX--\r\n"

static const char msg_text[] = HDR TEXT;
static struct kstr msg;
static struct mailbox mb;
static struct index_msg m;
static struct msg_meta meta;
static struct arena *arena;
static char flags_str[128];	/* what index_flags_write gives for m */
static char flags_recent_str[128];

static void setup(void)
{
	struct tm tm = { .tm_year = 94, .tm_mon = 1, .tm_mday = 8,
			 .tm_hour = 5, .tm_min = 52, .tm_sec = 25 };
	struct buf b;

	msg = kstr_make(msg_text, sizeof(msg_text) - 1);
	memset(&mb, 0, sizeof(mb));
	mb.name = (char *)"INBOX";
	mb.keywords[0] = (char *)"Work";
	mb.nkeywords = 1;
	meta.refs = 1;
	meta.envelope = (char *)"(\"env\")";
	meta.body = (char *)"(\"body\")";
	meta.bodystructure = (char *)"(\"bodystructure\")";
	meta.sent_date = -1;
	m = (struct index_msg){
		.uid = 42,
		.flags = MSG_SEEN,
		.keywords = 1,
		.modseq = 77,
		.size = msg.len,
		.internaldate = (int64_t)timegm(&tm),
		.idate_tz_min = -480,
		.meta = &meta,
	};
	mb.msgs = &m;
	mb.count = mb.cap = 1;

	buf_init(&b, 0);
	index_flags_write(&b, &mb, &m, false);
	snprintf(flags_str, sizeof(flags_str), "%s", buf_cstr(&b));
	buf_reset(&b);
	index_flags_write(&b, &mb, &m, true);
	snprintf(flags_recent_str, sizeof(flags_recent_str), "%s",
		 buf_cstr(&b));
	buf_deinit(&b);
}

static int parse(const char *items, bool uid_cmd, struct fetch_items **it_r)
{
	const char *p = items;
	struct imap_arg *args;
	size_t n;
	const char *error = NULL;
	int ret;

	arena_reset(arena);
	if (tok_list(arena, &p, p + strlen(p), '\0', &args, &n) < 0 || n != 1)
		return -1;
	ret = fetch_parse(arena, &args[0], uid_cmd, it_r, &error);
	if (ret < 0)
		CHECK(error != NULL);
	return ret;
}

/* Renders items for message 3 and returns the response (NUL bytes shown
 * as "\0"), or "ERR n". */
static const char *render(const char *items, bool uid_cmd, bool recent,
			  bool add_flags)
{
	static char res[4096];
	struct fetch_items *it;
	struct buf out;
	int ret;

	ret = parse(items, uid_cmd, &it);
	if (ret < 0) {
		snprintf(res, sizeof(res), "ERR %d", ret);
		return res;
	}
	buf_init(&out, 0);
	ret = fetch_render(&out, it, &mb, &m, 3, recent, add_flags,
			   fetch_items_need_message(it) ? msg :
			   kstr_make(NULL, 0));
	if (ret < 0) {
		snprintf(res, sizeof(res), "ERR %d", ret);
		CHECK_EQ_INT(buf_used(&out), 0);
	} else {
		size_t n = 0;
		for (size_t i = 0; i < buf_used(&out) && n + 3 < sizeof(res);
		     i++) {
			uint8_t ch = buf_head(&out)[i];
			if (ch == 0) {
				res[n++] = '\\';
				res[n++] = '0';
			} else {
				res[n++] = (char)ch;
			}
		}
		res[n] = '\0';
	}
	buf_deinit(&out);
	return res;
}

#define R(items, expected) \
	CHECK_EQ_STR(render(items, false, false, false), expected)

static char buf1[4096], buf2[4096];

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
	static char b[4][4096];
	static int which;
	va_list ap;

	which = (which + 1) % 4;
	va_start(ap, f);
	vsnprintf(b[which], sizeof(b[which]), f, ap);
	va_end(ap);
	return b[which];
}

static void test_simple(void)
{
	const char *idate = "\"07-Feb-1994 21:52:25 -0800\"";
	size_t size = msg.len;

	R("FLAGS", fmt("* 3 FETCH (FLAGS (%s))\r\n", flags_str));
	CHECK(strstr(flags_str, "\\Seen") != NULL);
	CHECK(strstr(flags_str, "Work") != NULL);
	CHECK_EQ_STR(render("FLAGS", false, true, false),
		     fmt("* 3 FETCH (FLAGS (%s))\r\n", flags_recent_str));
	CHECK(strstr(flags_recent_str, "\\Recent") != NULL);
	R("INTERNALDATE", fmt("* 3 FETCH (INTERNALDATE %s)\r\n", idate));
	R("RFC822.SIZE", fmt("* 3 FETCH (RFC822.SIZE %zu)\r\n", size));
	R("UID", "* 3 FETCH (UID 42)\r\n");
	R("MODSEQ", "* 3 FETCH (MODSEQ (77))\r\n");
	R("ENVELOPE", "* 3 FETCH (ENVELOPE (\"env\"))\r\n");
	R("BODY", "* 3 FETCH (BODY (\"body\"))\r\n");
	R("BODYSTRUCTURE", "* 3 FETCH (BODYSTRUCTURE (\"bodystructure\"))\r\n");
	R("fast", fmt("* 3 FETCH (FLAGS (%s) INTERNALDATE %s RFC822.SIZE "
		      "%zu)\r\n", flags_str, idate, size));
	R("ALL", fmt("* 3 FETCH (FLAGS (%s) INTERNALDATE %s RFC822.SIZE %zu "
		     "ENVELOPE (\"env\"))\r\n", flags_str, idate, size));
	R("Full", fmt("* 3 FETCH (FLAGS (%s) INTERNALDATE %s RFC822.SIZE %zu "
		      "ENVELOPE (\"env\") BODY (\"body\"))\r\n", flags_str,
		      idate, size));
	R("(uid rfc822.size Flags)",
	  fmt("* 3 FETCH (UID 42 RFC822.SIZE %zu FLAGS (%s))\r\n", size,
	      flags_str));
	/* Repeated items are answered once. */
	R("(FLAGS UID FLAGS)",
	  fmt("* 3 FETCH (FLAGS (%s) UID 42)\r\n", flags_str));

	/* UID FETCH: UID first unless the client placed it. */
	CHECK_EQ_STR(render("FLAGS", true, false, false),
		     fmt("* 3 FETCH (UID 42 FLAGS (%s))\r\n", flags_str));
	CHECK_EQ_STR(render("(FLAGS UID)", true, false, false),
		     fmt("* 3 FETCH (FLAGS (%s) UID 42)\r\n", flags_str));
	CHECK_EQ_STR(render("ALL", true, false, false),
		     fmt("* 3 FETCH (UID 42 FLAGS (%s) INTERNALDATE %s "
			 "RFC822.SIZE %zu ENVELOPE (\"env\"))\r\n",
			 flags_str, idate, size));
	/* Implicit FLAGS after \Seen was set. */
	CHECK_EQ_STR(render("UID", false, false, true),
		     fmt("* 3 FETCH (UID 42 FLAGS (%s))\r\n", flags_str));
	CHECK_EQ_STR(render("FLAGS", false, false, true),
		     fmt("* 3 FETCH (FLAGS (%s))\r\n", flags_str));
}

static void test_sections(void)
{
	const char *hdr = HDR, *text = TEXT;

	R("RFC822", fmt("* 3 FETCH (RFC822 {%zu}\r\n%s)\r\n", msg.len,
			msg_text));
	R("RFC822.HEADER", fmt("* 3 FETCH (RFC822.HEADER {%zu}\r\n%s)\r\n",
			       strlen(hdr), hdr));
	R("RFC822.TEXT", fmt("* 3 FETCH (RFC822.TEXT {%zu}\r\n%s)\r\n",
			     strlen(text), text));
	R("BODY[]", fmt("* 3 FETCH (BODY[] {%zu}\r\n%s)\r\n", msg.len,
			msg_text));
	R("BODY.PEEK[HEADER]", fmt("* 3 FETCH (BODY[HEADER] {%zu}\r\n%s)\r\n",
				   strlen(hdr), hdr));
	R("body.peek[text]", fmt("* 3 FETCH (BODY[TEXT] {%zu}\r\n%s)\r\n",
				 strlen(text), text));
	R("BODY[1]", "* 3 FETCH (BODY[1] {10}\r\nHello Bob.)\r\n");
	R("BODY[1.MIME]",
	  "* 3 FETCH (BODY[1.MIME] {46}\r\n"
	  "Content-Type: text/plain; charset=us-ascii\r\n\r\n)\r\n");
	R("body[1.mime]",
	  "* 3 FETCH (BODY[1.MIME] {46}\r\n"
	  "Content-Type: text/plain; charset=us-ascii\r\n\r\n)\r\n");
	R("BODY[2]", "* 3 FETCH (BODY[2] {8}\r\nAAECAw==)\r\n");
	R("BODY[3]",
	  "* 3 FETCH (BODY[3] {53}\r\nSubject: inner\r\n"
	  "From: carol@example.net\r\n\r\ninner body)\r\n");
	R("BODY[3.HEADER]",
	  "* 3 FETCH (BODY[3.HEADER] {43}\r\nSubject: inner\r\n"
	  "From: carol@example.net\r\n\r\n)\r\n");
	R("BODY[3.TEXT]", "* 3 FETCH (BODY[3.TEXT] {10}\r\ninner body)\r\n");
	R("BODY[3.1]", "* 3 FETCH (BODY[3.1] {10}\r\ninner body)\r\n");
	R("BODY[9]", "* 3 FETCH (BODY[9] {0}\r\n)\r\n");
	R("BODY[HEADER.FIELDS (FROM SUBJECT)]",
	  "* 3 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)] {58}\r\n"
	  "From: Alice <alice@example.com>\r\nSubject: Test message\r\n"
	  "\r\n)\r\n");
	/* Field names echoed as requested, keywords upper-cased. */
	R("BODY.PEEK[header.fields (Subject from)]",
	  "* 3 FETCH (BODY[HEADER.FIELDS (Subject from)] {58}\r\n"
	  "From: Alice <alice@example.com>\r\nSubject: Test message\r\n"
	  "\r\n)\r\n");
	R("BODY[HEADER.FIELDS.NOT (Date MIME-Version Content-Type From)]",
	  "* 3 FETCH (BODY[HEADER.FIELDS.NOT (Date MIME-Version Content-Type "
	  "From)] {46}\r\nTo: bob@example.org\r\nSubject: Test message\r\n"
	  "\r\n)\r\n");
	R("BODY[HEADER.FIELDS (X-None)]",
	  "* 3 FETCH (BODY[HEADER.FIELDS (X-None)] {2}\r\n\r\n)\r\n");
	R("BODY[3.HEADER.FIELDS (FROM)]",
	  "* 3 FETCH (BODY[3.HEADER.FIELDS (FROM)] {27}\r\n"
	  "From: carol@example.net\r\n\r\n)\r\n");

	/* Several sections in one response. */
	R("(UID BODY.PEEK[1] BODY[3.TEXT])",
	  "* 3 FETCH (UID 42 BODY[1] {10}\r\nHello Bob. "
	  "BODY[3.TEXT] {10}\r\ninner body)\r\n");
}

static void test_partial(void)
{
	size_t len = msg.len;
	char q[64];

	R("BODY[]<0.10>", "* 3 FETCH (BODY[]<0> {10}\r\nFrom: Alic)\r\n");
	R("BODY.PEEK[]<6.5>", "* 3 FETCH (BODY[]<6> {5}\r\nAlice)\r\n");
	R("BODY[1]<6.100>", "* 3 FETCH (BODY[1]<6> {4}\r\nBob.)\r\n");
	R("BODY[1]<9.1>", "* 3 FETCH (BODY[1]<9> {1}\r\n.)\r\n");
	R("BODY[1]<10.1>", "* 3 FETCH (BODY[1]<10> {0}\r\n)\r\n");
	R("BODY[1]<4294967295.4294967295>",
	  "* 3 FETCH (BODY[1]<4294967295> {0}\r\n)\r\n");
	snprintf(q, sizeof(q), "BODY[]<%zu.5>", len - 1);
	R(q, fmt("* 3 FETCH (BODY[]<%zu> {1}\r\n\n)\r\n", len - 1));
	snprintf(q, sizeof(q), "BODY[]<%zu.5>", len);
	R(q, fmt("* 3 FETCH (BODY[]<%zu> {0}\r\n)\r\n", len));
	R("BODY[HEADER.FIELDS (FROM)]<6.5>",
	  "* 3 FETCH (BODY[HEADER.FIELDS (FROM)]<6> {5}\r\nAlice)\r\n");
}

static void test_binary(void)
{
	R("BINARY[2]", "* 3 FETCH (BINARY[2] ~{4}\r\n\\0\001\002\003)\r\n");
	R("BINARY.PEEK[2]<1.2>", "* 3 FETCH (BINARY[2]<1> {2}\r\n\001\002)\r\n");
	R("BINARY.PEEK[2]<0.2>", "* 3 FETCH (BINARY[2]<0> ~{2}\r\n\\0\001)\r\n");
	R("BINARY.PEEK[2]<4.2>", "* 3 FETCH (BINARY[2]<4> {0}\r\n)\r\n");
	R("BINARY.SIZE[2]", "* 3 FETCH (BINARY.SIZE[2] 4)\r\n");
	R("BINARY[1]", "* 3 FETCH (BINARY[1] {10}\r\nHello Bob.)\r\n");
	R("BINARY[4]", "* 3 FETCH (BINARY[4] {5}\r\ncaf\xc3\xa9)\r\n");
	R("binary.size[4]", "* 3 FETCH (BINARY.SIZE[4] 5)\r\n");
	R("BINARY[9]", "* 3 FETCH (BINARY[9] {0}\r\n)\r\n");
	R("(BINARY.SIZE[1] BINARY.SIZE[2])",
	  "* 3 FETCH (BINARY.SIZE[1] 10 BINARY.SIZE[2] 4)\r\n");
	/* Unknown transfer encoding: NO [UNKNOWN-CTE], nothing written. */
	R("BINARY[5]", fmt("ERR %d", KURA_ECORRUPT));
	R("(FLAGS BINARY.SIZE[5])", fmt("ERR %d", KURA_ECORRUPT));
	R("BODY[5]", "* 3 FETCH (BODY[5] {3}\r\nzzz)\r\n");
}

static void test_flags_of_items(void)
{
	const struct {
		const char *items;
		bool need, seen, flags;
	} cases[] = {
		{ "FLAGS", false, false, true },
		{ "FAST", false, false, true },
		{ "ALL", false, false, true },
		{ "FULL", false, false, true },
		{ "ENVELOPE", false, false, false },
		{ "BODY", false, false, false },
		{ "BODYSTRUCTURE", false, false, false },
		{ "RFC822.SIZE", false, false, false },
		{ "INTERNALDATE", false, false, false },
		{ "UID", false, false, false },
		{ "MODSEQ", false, false, false },
		{ "RFC822", true, true, false },
		{ "RFC822.HEADER", true, false, false },
		{ "RFC822.TEXT", true, true, false },
		{ "BODY[]", true, true, false },
		{ "BODY[HEADER]", true, true, false },
		{ "BODY.PEEK[]", true, false, false },
		{ "BODY.PEEK[1]<0.1>", true, false, false },
		{ "BINARY[1]", true, true, false },
		{ "BINARY.PEEK[1]", true, false, false },
		{ "BINARY.SIZE[1]", true, false, false },
		{ "(FLAGS BODY.PEEK[] BODY[1])", true, true, true },
	};
	struct fetch_items *it;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK_EQ_INT(parse(cases[i].items, false, &it), 0);
		if (it == NULL)
			continue;
		CHECK(fetch_items_need_message(it) == cases[i].need);
		CHECK(fetch_items_set_seen(it) == cases[i].seen);
		CHECK(fetch_items_has_flags(it) == cases[i].flags);
	}

	/* MODSEQ added for CHANGEDSINCE / CONDSTORE. */
	CHECK_EQ_INT(parse("(FLAGS UID)", true, &it), 0);
	CHECK(!fetch_items_has_modseq(it));
	fetch_items_add_modseq(it);
	fetch_items_add_modseq(it);
	CHECK(fetch_items_has_modseq(it));
	{
		struct buf out;
		buf_init(&out, 0);
		CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false,
					  kstr_make(NULL, 0)), 0);
		CHECK_EQ_STR(buf_cstr(&out),
			     fmt("* 1 FETCH (FLAGS (%s) UID 42 MODSEQ (77))"
				 "\r\n", flags_str));
		buf_deinit(&out);
	}
	CHECK_EQ_INT(parse("MODSEQ", false, &it), 0);
	CHECK(fetch_items_has_modseq(it));
	/* Many items: the implicit ones still fit. */
	CHECK_EQ_INT(parse("(FLAGS BODY[1] BODY[2] BODY[3] BODY[4] BODY[5] "
			   "BODY[6] BODY[7] BODY[8] BODY[9] BODY[10] BODY[11] "
			   "BODY[12] BODY[13] BODY[14] BODY[15] BODY[16] "
			   "BODY[17] BODY[18] BODY[19] BODY[20])", true, &it),
		     0);
	fetch_items_add_modseq(it);
	{
		struct buf out;
		buf_init(&out, 0);
		CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false,
					  msg), 0);
		const char *s = buf_cstr(&out);
		CHECK(strncmp(s, "* 1 FETCH (UID 42 FLAGS (", 25) == 0);
		CHECK(strstr(s, "BODY[20] {0}\r\n MODSEQ (77))\r\n") != NULL);
		buf_deinit(&out);
	}
}

static void test_limits(void)
{
	struct fetch_items *it;
	struct buf out;

	/* A full buffer gives ETOOBIG and leaves what was there. */
	CHECK_EQ_INT(parse("(FLAGS BODY[])", false, &it), 0);
	buf_init(&out, 200);
	buf_append_str(&out, "prefix");
	CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false, msg),
		     KURA_ETOOBIG);
	CHECK_EQ_INT(buf_used(&out), 6);
	CHECK(memcmp(buf_head(&out), "prefix", 6) == 0);
	buf_deinit(&out);

	CHECK_EQ_INT(parse("(FLAGS BODY[1])", false, &it), 0);
	buf_init(&out, 200);
	buf_append_str(&out, "prefix");
	CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false, msg),
		     0);
	CHECK_EQ_STR(buf_cstr(&out),
		     fmt("prefix* 1 FETCH (FLAGS (%s) BODY[1] {10}\r\n"
			 "Hello Bob.)\r\n", flags_str));
	buf_deinit(&out);

	/* Every cut-off point fails cleanly. */
	CHECK_EQ_INT(parse("(UID FLAGS INTERNALDATE BODY[1] BINARY[2])", false,
			   &it), 0);
	buf_init(&out, 0);
	CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false, msg),
		     0);
	size_t full = buf_used(&out);
	buf_deinit(&out);
	for (size_t max = 1; max < full; max++) {
		buf_init(&out, max);
		int ret = fetch_render(&out, it, &mb, &m, 1, false, false, msg);
		CHECK(ret == KURA_ETOOBIG && buf_used(&out) == 0);
		buf_deinit(&out);
	}
	buf_init(&out, full);
	CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false, msg), 0);
	buf_deinit(&out);
}

/* Without stored meta, ENVELOPE/BODY/BODYSTRUCTURE come from the bytes. */
static void test_no_meta(void)
{
	struct mime_info info;
	struct fetch_items *it;
	struct buf out;

	mime_parse(msg.p, msg.len, &info);
	m.meta = NULL;
	CHECK_EQ_INT(parse("(ENVELOPE BODYSTRUCTURE BODY)", false, &it), 0);
	buf_init(&out, 0);
	CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false, msg),
		     0);
	snprintf(buf1, sizeof(buf1),
		 "* 1 FETCH (ENVELOPE %s BODYSTRUCTURE %s BODY %s)\r\n",
		 info.envelope, info.bodystructure, info.body);
	CHECK_EQ_STR(buf_cstr(&out), buf1);
	/* And without the bytes, a syntactically valid stand-in. */
	buf_reset(&out);
	CHECK_EQ_INT(fetch_render(&out, it, &mb, &m, 1, false, false,
				  kstr_make(NULL, 0)), 0);
	snprintf(buf2, sizeof(buf2),
		 "* 1 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
		 " BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" %zu 0)"
		 " BODY (\"text\" \"plain\" NIL NIL NIL \"7bit\" %zu 0))\r\n",
		 msg.len, msg.len);
	CHECK_EQ_STR(buf_cstr(&out), buf2);
	buf_deinit(&out);
	mime_info_free(&info);
	m.meta = &meta;
}

static void test_errors(void)
{
	static const char *const bad[] = {
		"()", "FOO", "\"FLAGS\"", "(FLAGS \"UID\")", "(ALL)",
		"(FAST FLAGS)", "(FLAGS (UID))", "RFC822.FOO", "BODYX[]",
		"BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
		"BODY[", "BODY]", "BODY[HEADER.FIELDS]",
		"BODY[HEADER.FIELDS ()]", "BODY[0]", "BODY[1.]", "BODY[.1]",
		"BODY[1..2]", "BODY[MIME]", "BODY[FOO]", "BODY[1.FOO]",
		"BODY[HEADER.FIELDS.NOT]", "BODY[TEXT.MIME]",
		"BODY[]<", "BODY[]<0>", "BODY[]<0.0>", "BODY[]<a.1>",
		"BODY[]<1.2", "BODY[]<1.2>x", "BODY[]<-1.2>", "BODY[]<1.-2>",
		"BODY[]<4294967296.1>", "BODY[]<0.4294967296>", "BODY[]0.1>",
		"BODY[]<.1>", "BODY[]<1.>",
		"BINARY[1.MIME]", "BINARY[HEADER]", "BINARY[TEXT]",
		"BINARY[0]", "BINARY[1.]", "BINARY[01]", "BINARY[1.0]",
		"BINARY.SIZE[1]<0.1>", "BINARY.PEEK[x]", "BINARY[1 ]",
		"BINARY.SIZE[1.HEADER]",
		"BODY[1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1"
		".1.1.1.1.1.1]",
		"BINARY[1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1"
		".1.1.1.1.1.1]",
		"(FLAGS FOO)", "(BODY[0] FLAGS)",
	};
	struct fetch_items *it;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = parse(bad[i], false, &it);
		if (ret != KURA_EINVAL)
			fprintf(stderr, "items [%s] -> %d\n", bad[i], ret);
		CHECK_EQ_INT(ret, KURA_EINVAL);
	}
}

int main(void)
{
	arena = arena_create(4096);
	setup();
	test_simple();
	test_sections();
	test_partial();
	test_binary();
	test_flags_of_items();
	test_limits();
	test_no_meta();
	test_errors();
	arena_destroy(&arena);
	return test_done("fetch");
}
