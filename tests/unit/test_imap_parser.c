/* Tests for imapd/imap_parser: every command fed whole, split at every
 * byte position into two feeds, and one byte at a time must give the
 * same transcript of events and parse trees; error handling, limits and
 * resynchronisation. */
#include <stdlib.h>
#include <string.h>

#include "imapd/imap_parser.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "tests/unit/test.h"

/* ---- a connection simulator ---- */

struct drv {
	struct imap_parser *p;
	struct buf out;		/* transcript */
	bool fatal;
	uint64_t stream_left;	/* streamed literal bytes still to read */
	struct buf *cur;
	struct buf *streams[64];
	size_t nstreams;
	bool refuse;		/* refuse every streamed literal */
};

static void drv_init(struct drv *d, const struct imap_parser_limits *lim)
{
	memset(d, 0, sizeof(*d));
	d->p = imap_parser_create(lim);
	buf_init(&d->out, 0);
}

static void drv_deinit(struct drv *d)
{
	for (size_t i = 0; i < d->nstreams; i++) {
		buf_deinit(d->streams[i]);
		free(d->streams[i]);
	}
	imap_parser_destroy(&d->p);
	buf_deinit(&d->out);
}

static void dump_bytes(struct buf *o, struct kstr s)
{
	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.p[i];
		if (c == '"' || c == '\\')
			buf_printf(o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(o, "\\x%02x", c);
		else
			buf_append(o, &c, 1);
	}
}

static void dump_args(struct buf *o, const struct imap_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++, a++) {
		if (i > 0)
			buf_append_str(o, " ");
		switch (a->type) {
		case IMAP_ARG_ATOM:
			dump_bytes(o, a->str);
			break;
		case IMAP_ARG_STRING:
			buf_append_str(o, "\"");
			dump_bytes(o, a->str);
			buf_append_str(o, "\"");
			break;
		case IMAP_ARG_LITERAL:
			buf_printf(o, "%s{%zu}\"", a->literal8 ? "~" : "",
				   a->str.len);
			dump_bytes(o, a->str);
			buf_append_str(o, "\"");
			/* The contract: NUL-terminated after len. */
			if (a->str.p[a->str.len] != '\0')
				buf_append_str(o, "!NOTNUL");
			break;
		case IMAP_ARG_LIST:
			buf_append_str(o, "(");
			dump_args(o, a->list, a->list_count);
			buf_append_str(o, ")");
			break;
		case IMAP_ARG_STREAMED: {
			const struct buf *b = a->stream_handle;
			buf_printf(o, "<%s%llu:", a->literal8 ? "~" : "",
				   (unsigned long long)a->stream_len);
			/* buf_kstr() of a never-filled buf adds 0 to NULL. */
			if (b->len > 0)
				dump_bytes(o, buf_kstr(b));
			buf_append_str(o, ">");
			break;
		}
		}
	}
}

/* One chunk of bytes arrives from the network. */
static void drv_recv(struct drv *d, const uint8_t *data, size_t len)
{
	size_t off = 0;

	while (off < len && !d->fatal) {
		if (d->stream_left > 0) {
			size_t n = len - off;
			if (n > d->stream_left)
				n = (size_t)d->stream_left;
			buf_append(d->cur, data + off, n);
			off += n;
			d->stream_left -= n;
			if (d->stream_left == 0)
				imap_parser_literal_done(d->p, d->cur);
			continue;
		}
		size_t used = 0;
		struct imap_cmd *cmd;
		uint64_t n;
		enum imap_parse_rc rc = imap_parser_feed(d->p, data + off,
							 len - off, &used,
							 &cmd, &n);
		off += used;
		switch (rc) {
		case IMAP_PARSE_MORE:
			if (off != len)
				buf_append_str(&d->out, "MORE-NOT-ALL\n");
			break;
		case IMAP_PARSE_DONE:
			buf_append_str(&d->out, "DONE ");
			dump_bytes(&d->out, cmd->tag);
			buf_append_str(&d->out, " ");
			dump_bytes(&d->out, cmd->name);
			if (cmd->nargs > 0)
				buf_append_str(&d->out, " ");
			dump_args(&d->out, cmd->args, cmd->nargs);
			buf_append_str(&d->out, "\n");
			break;
		case IMAP_PARSE_CONT:
			buf_append_str(&d->out, "+\n");
			break;
		case IMAP_PARSE_LITERAL: {
			bool sync = imap_parser_literal_sync(d->p);
			buf_printf(&d->out, "LITERAL %llu %s\n",
				   (unsigned long long)n,
				   sync ? "sync" : "nonsync");
			if (d->refuse) {
				struct kstr t = imap_parser_bad_tag(d->p);
				imap_parser_literal_refuse(d->p);
				buf_append_str(&d->out, "REFUSED ");
				dump_bytes(&d->out, t);
				buf_append_str(&d->out, "\n");
				break;
			}
			struct buf *b = xcalloc(1, sizeof(*b));
			buf_init(b, 0);
			if (d->nstreams < ARRAY_SIZE(d->streams))
				d->streams[d->nstreams++] = b;
			d->cur = b;
			d->stream_left = n;
			if (n == 0)
				imap_parser_literal_done(d->p, b);
			break;
		}
		case IMAP_PARSE_BAD:
			buf_append_str(&d->out, "BAD ");
			dump_bytes(&d->out, imap_parser_bad_tag(d->p));
			buf_printf(&d->out, " %s\n", imap_parser_error(d->p));
			break;
		case IMAP_PARSE_FATAL:
			buf_printf(&d->out, "FATAL %s\n", imap_parser_error(d->p));
			d->fatal = true;
			break;
		}
	}
}

/* Feeds input in chunks ending at the given cut positions; returns the
 * malloc'ed transcript. */
static char *run_cuts(const struct imap_parser_limits *lim, bool refuse,
		      const uint8_t *in, size_t len, const size_t *cuts,
		      size_t ncuts)
{
	struct drv d;
	size_t pos = 0;

	drv_init(&d, lim);
	d.refuse = refuse;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		drv_recv(&d, in + pos, end - pos);
		pos = end;
	}
	char *r = xstrdup(buf_cstr(&d.out));
	drv_deinit(&d);
	return r;
}

static char *run_whole(const struct imap_parser_limits *lim, bool refuse,
		       const void *in, size_t len)
{
	return run_cuts(lim, refuse, in, len, NULL, 0);
}

/* Whole, every two-way split, one byte at a time: all equal. Returns the
 * whole-feed transcript (malloc'ed). */
static char *run_all_ways(const struct imap_parser_limits *lim, bool refuse,
			  const void *vin, size_t len)
{
	const uint8_t *in = vin;
	char *whole = run_whole(lim, refuse, in, len);
	bool split_ok = true;

	for (size_t cut = 1; cut < len; cut++) {
		char *t = run_cuts(lim, refuse, in, len, &cut, 1);
		if (strcmp(t, whole) != 0) {
			if (split_ok)
				fprintf(stderr, "split at %zu differs:\n%s---\n%s",
					cut, whole, t);
			split_ok = false;
		}
		free(t);
	}
	CHECK(split_ok);

	size_t *cuts = xmalloc((len + 1) * sizeof(*cuts));
	for (size_t i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	char *t = run_cuts(lim, refuse, in, len, cuts, len > 0 ? len - 1 : 0);
	CHECK_EQ_STR(t, whole);
	free(t);
	free(cuts);
	return whole;
}

static void expect(const struct imap_parser_limits *lim, const char *in,
		   size_t len, const char *want)
{
	char *got = run_all_ways(lim, false, in, len);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "input: %.*s\n", (int)len, in);
	CHECK_EQ_STR(got, want);
	free(got);
}

#define EXPECT(in, want) expect(&imap_parser_limits_default, in, \
				sizeof(in) - 1, want)
#define EXPECT_LIM(lim, in, want) expect(lim, in, sizeof(in) - 1, want)

/* ---- commands that must parse ---- */

struct good_case {
	const char *in;
	size_t len;
	const char *want;
};

#define G(in, want) { in, sizeof(in) - 1, want }

static const struct good_case good_cases[] = {
	G("a1 CAPABILITY\r\n", "DONE a1 CAPABILITY\n"),
	G("a2 LOGIN alice \"pass word\"\r\n",
	  "DONE a2 LOGIN alice \"pass word\"\n"),
	G("a3 LOGIN {5}\r\nalice {6}\r\nsecret\r\n",
	  "+\n+\nDONE a3 LOGIN {5}\"alice\" {6}\"secret\"\n"),
	G("a4 LOGIN {5+}\r\nalice \"p\\\"w\\\\\"\r\n",
	  "DONE a4 LOGIN {5}\"alice\" \"p\\\"w\\\\\"\n"),
	G("a5 SELECT INBOX\r\n", "DONE a5 SELECT INBOX\n"),
	G("a6 EXAMINE \"Sent Items\"\r\n", "DONE a6 EXAMINE \"Sent Items\"\n"),
	G("a7 FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)\r\n",
	  "DONE a7 FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)\n"),
	G("a8 UID FETCH 1:100 (UID BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)]<0.2048>)\r\n",
	  "DONE a8 UID FETCH 1:100 (UID BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT)]<0.2048>)\n"),
	G("a9 FETCH 2 (BODY[1.2.MIME] BINARY[1] BINARY.SIZE[2] BODY[]<100.200>)\r\n",
	  "DONE a9 FETCH 2 (BODY[1.2.MIME] BINARY[1] BINARY.SIZE[2] BODY[]<100.200>)\n"),
	G("b1 UID SEARCH OR (FROM \"alice\" SINCE 1-Jan-2020) NOT (DELETED SEEN) UNDELETED\r\n",
	  "DONE b1 UID SEARCH OR (FROM \"alice\" SINCE 1-Jan-2020) NOT (DELETED SEEN) UNDELETED\n"),
	G("b2 SEARCH CHARSET UTF-8 TEXT {5}\r\nhello\r\n",
	  "+\nDONE b2 SEARCH CHARSET UTF-8 TEXT {5}\"hello\"\n"),
	G("b3 SEARCH CHARSET UTF-8 SUBJECT \"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"\r\n",
	  "DONE b3 SEARCH CHARSET UTF-8 SUBJECT \"\\xe6\\x97\\xa5\\xe6\\x9c\\xac\\xe8\\xaa\\x9e\"\n"),
	G("b4 STORE 1:5 +FLAGS.SILENT (\\Seen $Junk)\r\n",
	  "DONE b4 STORE 1:5 +FLAGS.SILENT (\\\\Seen $Junk)\n"),
	G("b5 UID STORE 7 -FLAGS (\\Deleted)\r\n",
	  "DONE b5 UID STORE 7 -FLAGS (\\\\Deleted)\n"),
	G("b6 APPEND INBOX (\\Seen) \"05-Mar-2024 10:00:00 +0100\" {12}\r\nHello world!\r\n",
	  "LITERAL 12 sync\nDONE b6 APPEND INBOX (\\\\Seen) \"05-Mar-2024 10:00:00 +0100\" <12:Hello world!>\n"),
	G("b7 APPEND Drafts {10+}\r\n0123456789\r\n",
	  "LITERAL 10 nonsync\nDONE b7 APPEND Drafts <10:0123456789>\n"),
	G("b8 APPEND INBOX (\\Seen) {3+}\r\nabc (\\Flagged) \"01-Jan-2024 00:00:00 +0000\" {3}\r\ndef\r\n",
	  "LITERAL 3 nonsync\nLITERAL 3 sync\nDONE b8 APPEND INBOX (\\\\Seen) <3:abc> (\\\\Flagged) \"01-Jan-2024 00:00:00 +0000\" <3:def>\n"),
	G("b9 APPEND INBOX ~{4+}\r\na\0bc\r\n",
	  "LITERAL 4 nonsync\nDONE b9 APPEND INBOX <~4:a\\x00bc>\n"),
	G("c1 LIST \"\" \"*\"\r\n", "DONE c1 LIST \"\" \"*\"\n"),
	G("c2 LIST \"\" %\r\n", "DONE c2 LIST \"\" %\n"),
	G("c3 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN)\r\n",
	  "DONE c3 LIST (SUBSCRIBED) \"\" \"*\" RETURN (CHILDREN)\n"),
	G("c4 LSUB \"\" *\r\n", "DONE c4 LSUB \"\" *\n"),
	G("c5 STATUS x (MESSAGES UIDNEXT)\r\n",
	  "DONE c5 STATUS x (MESSAGES UIDNEXT)\n"),
	G("c6 CREATE \"~peter/mail/&U,BTFw-/&ZeVnLIqe-\"\r\n",
	  "DONE c6 CREATE \"~peter/mail/&U,BTFw-/&ZeVnLIqe-\"\n"),
	G("c7 RENAME old new\r\n", "DONE c7 RENAME old new\n"),
	G("c8 DELETE {3}\r\nfoo\r\n", "+\nDONE c8 DELETE {3}\"foo\"\n"),
	G("c9 SUBSCRIBE \"a b\"\r\n", "DONE c9 SUBSCRIBE \"a b\"\n"),
	G("d1 NOOP\r\n", "DONE d1 NOOP\n"),
	G("d2 IDLE\r\n", "DONE d2 IDLE\n"),
	G("d3 LOGOUT\r\n", "DONE d3 LOGOUT\n"),
	G("d4 EXPUNGE\r\n", "DONE d4 EXPUNGE\n"),
	G("d5 UID EXPUNGE 1:3,5\r\n", "DONE d5 UID EXPUNGE 1:3,5\n"),
	G("d6 UID COPY 1:* Trash\r\n", "DONE d6 UID COPY 1:* Trash\n"),
	G("d7 UID MOVE 4,6:8 \"Archive/2024\"\r\n",
	  "DONE d7 UID MOVE 4,6:8 \"Archive/2024\"\n"),
	G("d8 ENABLE CONDSTORE UTF8=ACCEPT\r\n",
	  "DONE d8 ENABLE CONDSTORE UTF8=ACCEPT\n"),
	G("d9 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\r\n",
	  "DONE d9 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\n"),
	G("e1 ID NIL\r\n", "DONE e1 ID NIL\n"),
	G("e2 AUTHENTICATE PLAIN\r\n", "DONE e2 AUTHENTICATE PLAIN\n"),
	G("e3 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n",
	  "DONE e3 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\n"),
	G("e4 STARTTLS\r\n", "DONE e4 STARTTLS\n"),
	G("e5 NAMESPACE\r\n", "DONE e5 NAMESPACE\n"),
	G("e6 GETQUOTAROOT INBOX\r\n", "DONE e6 GETQUOTAROOT INBOX\n"),
	G("e7 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
	  "DONE e7 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\n"),
	G("e8 SELECT INBOX (CONDSTORE)\r\n", "DONE e8 SELECT INBOX (CONDSTORE)\n"),
	G("e9 SEARCH RETURN (MIN MAX COUNT) 1:* NOT DELETED\r\n",
	  "DONE e9 SEARCH RETURN (MIN MAX COUNT) 1:* NOT DELETED\n"),
	G("f1 LOGIN alice secret\n", "DONE f1 LOGIN alice secret\n"),
	G("f2 FETCH 1 BODY[HEADER.FIELDS.NOT (\"X-Foo\" Received)]\r\n",
	  "DONE f2 FETCH 1 BODY[HEADER.FIELDS.NOT (\\\"X-Foo\\\" Received)]\n"),
	G("f3 SEARCH HEADER \"Message-ID\" {7+}\r\n<a@b.c>\r\n",
	  "DONE f3 SEARCH HEADER \"Message-ID\" {7}\"<a@b.c>\"\n"),
	G("f4 X-CUSTOM ((a (b (c))) ())\r\n",
	  "DONE f4 X-CUSTOM ((a (b (c))) ())\n"),
	G("\r\n\r\n\nf5 NOOP\r\n\r\n", "DONE f5 NOOP\n"),
	G("f6 UID THREAD REFERENCES UTF-8 ALL\r\n",
	  "DONE f6 UID THREAD REFERENCES UTF-8 ALL\n"),
	G("f7 CREATE ~peter/x\r\n", "DONE f7 CREATE ~peter/x\n"),
	G("f8 SETMETADATA INBOX (/private/comment {3}\r\nabc)\r\n",
	  "+\nDONE f8 SETMETADATA INBOX (/private/comment {3}\"abc\")\n"),
	G("f9 FETCH 1 (BINARY.PEEK[1]<0.100> BODY[TEXT])\r\n",
	  "DONE f9 FETCH 1 (BINARY.PEEK[1]<0.100> BODY[TEXT])\n"),
	G("g1 SEARCH SUBJECT ~{3}\r\na\0b\r\n",
	  "+\nDONE g1 SEARCH SUBJECT ~{3}\"a\\x00b\"\n"),
	G("g2 LOGIN \"\" \"\"\r\n", "DONE g2 LOGIN \"\" \"\"\n"),
	G("g3 APPEND INBOX {0+}\r\n\r\n",
	  "LITERAL 0 nonsync\nDONE g3 APPEND INBOX <0:>\n"),
	G("g4 append \"INBOX\" {2}\r\nhi\r\n",
	  "LITERAL 2 sync\nDONE g4 append \"INBOX\" <2:hi>\n"),
	G("g5 APPEND {5}\r\nINBOX {2+}\r\nhi\r\n",
	  "+\nLITERAL 2 nonsync\nDONE g5 APPEND {5}\"INBOX\" <2:hi>\n"),
	G("g6 LOGIN {0}\r\n {0+}\r\n\r\n",
	  "+\nDONE g6 LOGIN {0}\"\" {0}\"\"\n"),
	G("g7 FETCH 1:2 (BODY[HEADER.FIELDS (\"Subject\")]<0.10>)\r\n",
	  "DONE g7 FETCH 1:2 (BODY[HEADER.FIELDS (\\\"Subject\\\")]<0.10>)\n"),
	G("g8 SEARCH UID 4294967295 LARGER 100 KEYWORD $Forwarded\r\n",
	  "DONE g8 SEARCH UID 4294967295 LARGER 100 KEYWORD $Forwarded\n"),
	G("g9 SELECT \"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\"\r\n",
	  "DONE g9 SELECT \"\\xc3\\xa9t\\xc3\\xa9 \\xf0\\x9f\\x98\\x80\"\n"),
	G("h1 STORE 1 FLAGS ()\r\n", "DONE h1 STORE 1 FLAGS ()\n"),
	G("h2 X ({1}\r\n) {1+}\r\n()\r\n",
	  "+\nDONE h2 X ({1}\")\" {1}\"(\")\n"),
	G("[tag]. NOOP\r\n", "DONE [tag]. NOOP\n"),
	G("h3 LIST \"\" INBOX]x\r\n", "DONE h3 LIST \"\" INBOX]x\n"),
	G("h4 COMPRESS DEFLATE\r\n", "DONE h4 COMPRESS DEFLATE\n"),
	G("h5 GETMETADATA (DEPTH infinity) INBOX /private/comment\r\n",
	  "DONE h5 GETMETADATA (DEPTH infinity) INBOX /private/comment\n"),
};

static void test_good(void)
{
	struct buf all;

	buf_init(&all, 0);
	struct buf want_all;
	buf_init(&want_all, 0);
	for (size_t i = 0; i < ARRAY_SIZE(good_cases); i++) {
		const struct good_case *g = &good_cases[i];
		expect(&imap_parser_limits_default, g->in, g->len, g->want);
		buf_append(&all, g->in, g->len);
		buf_append_str(&want_all, g->want);
	}
	CHECK(ARRAY_SIZE(good_cases) >= 40);

	/* All of them pipelined in one stream: whole, every split, and one
	 * byte at a time. */
	char *got = run_all_ways(&imap_parser_limits_default, false,
				 all.data, all.len);
	CHECK_EQ_STR(got, buf_cstr(&want_all));
	free(got);
	buf_deinit(&all);
	buf_deinit(&want_all);
}

/* ---- errors and resynchronisation ---- */

static void test_syntax_errors(void)
{
	EXPECT("a1 LOGIN \"abc\r\na2 NOOP\r\n",
	       "BAD a1 Unterminated quoted string\nDONE a2 NOOP\n");
	EXPECT("a1 LOGIN \"a\\qb\" x\r\na2 NOOP\r\n",
	       "BAD a1 Invalid escape in quoted string\nDONE a2 NOOP\n");
	EXPECT("a1 LOGIN \"a\0b\" x\r\na2 NOOP\r\n",
	       "BAD a1 NUL in quoted string\nDONE a2 NOOP\n");
	EXPECT("a1 LOGIN \"a\xff\" x\r\na2 NOOP\r\n",
	       "BAD a1 Invalid UTF-8 in quoted string\nDONE a2 NOOP\n");
	/* overlong '/', a surrogate, a lone continuation, a cut sequence */
	EXPECT("a1 X \"\xc0\xaf\"\r\n",
	       "BAD a1 Invalid UTF-8 in quoted string\n");
	EXPECT("a1 X \"\xed\xa0\x80\"\r\n",
	       "BAD a1 Invalid UTF-8 in quoted string\n");
	EXPECT("a1 X \"\x80\"\r\n", "BAD a1 Invalid UTF-8 in quoted string\n");
	EXPECT("a1 X \"\xe6\x97\"\r\n",
	       "BAD a1 Invalid UTF-8 in quoted string\n");
	EXPECT("a1 X \"\xf4\x90\x80\x80\"\r\n",
	       "BAD a1 Invalid UTF-8 in quoted string\n");
	EXPECT("a1 SELECT IN\xc3\xa9\r\n", "BAD a1 Invalid character in atom\n");
	EXPECT("a1\r\n", "BAD a1 Missing command name\n");
	EXPECT("a1 \r\n", "BAD a1 Missing command name\n");
	EXPECT("+a NOOP\r\n", "BAD * Invalid tag\n");
	EXPECT("a+1 NOOP\r\n", "BAD * Invalid tag\n");
	EXPECT(" a1 NOOP\r\n", "BAD * Invalid tag\n");
	EXPECT("* NOOP\r\n", "BAD * Invalid tag\n");
	EXPECT("a1 NO\"OP\r\n", "BAD a1 Invalid command name\n");
	EXPECT("a1 NOOP \r\n", "BAD a1 Missing argument\n");
	EXPECT("a1 SELECT  INBOX\r\n", "BAD a1 Missing argument\n");
	EXPECT("a1 FETCH 1 (FLAGS\r\na2 NOOP\r\n",
	       "BAD a1 Missing ')'\nDONE a2 NOOP\n");
	EXPECT("a1 FETCH 1 FLAGS)\r\n", "BAD a1 Unexpected ')'\n");
	EXPECT("a1 FETCH 1 ( FLAGS)\r\n", "BAD a1 Missing argument\n");
	EXPECT("a1 FETCH 1 (FLAGS )\r\n", "BAD a1 Unexpected ')'\n");
	EXPECT("a1 FETCH 1 (FLAGS)X\r\n",
	       "BAD a1 Expected space, ')' or end of line\n");
	EXPECT("a1 X \"a\"b\r\n", "BAD a1 Expected space, ')' or end of line\n");
	EXPECT("a1 X ab\"c\r\n", "BAD a1 Invalid character in atom\n");
	EXPECT("a1 X ab(c\r\n", "BAD a1 Invalid character in atom\n");
	EXPECT("a1 X a\\b\r\n", "BAD a1 Invalid character in atom\n");
	EXPECT("a1 FETCH 1 BODY[HEADER\r\na2 NOOP\r\n",
	       "BAD a1 Missing ']'\nDONE a2 NOOP\n");
	EXPECT("a1 NOOP\rX\r\na2 NOOP\r\n",
	       "BAD a1 CR not followed by LF\nDONE a2 NOOP\n");
	EXPECT("\rX\r\na2 NOOP\r\n",
	       "BAD * CR not followed by LF\nDONE a2 NOOP\n");
	EXPECT("a1 X {}\r\n", "BAD a1 Invalid literal\n");
	EXPECT("a1 X {x}\r\n", "BAD a1 Invalid literal\n");
	EXPECT("a1 X {1-}\r\n", "BAD a1 Invalid literal\n");
	EXPECT("a1 X {1+x\r\n", "BAD a1 Invalid literal\n");
	EXPECT("a1 X {1} \r\n", "BAD a1 Literal not followed by CRLF\n");
	EXPECT("a1 X {1}\rx\r\n", "BAD a1 Literal not followed by CRLF\n");
	EXPECT("a1 X {3}\r\nabcd\r\na2 NOOP\r\n",
	       "+\nBAD a1 Expected space, ')' or end of line\nDONE a2 NOOP\n");
	/* NUL in a literal: the rest of the literal is skipped, never
	 * parsed, then the rest of the line. */
	EXPECT("a1 X {12+}\r\nx\0a9 LOGOUT\n rest\r\na2 NOOP\r\n",
	       "BAD a1 NUL in literal\nDONE a2 NOOP\n");
	/* ~ followed by something else is an atom, ~{ a literal8 */
	EXPECT("a1 X ~\r\n", "DONE a1 X ~\n");
	EXPECT("a1 X ~(\r\n", "BAD a1 Invalid character in atom\n");
	/* BAD, then good commands go on; DONE resets the BAD count. */
	EXPECT("a1 X (\r\na2 NOOP\r\na3 X )\r\n",
	       "BAD a1 Missing ')'\nDONE a2 NOOP\nBAD a3 Unexpected ')'\n");
}

/* Bytes of a literal that a bad command announced are never parsed as a
 * command, wherever on the line the error was. */
static void test_literal_skip(void)
{
	struct imap_parser_limits lim = imap_parser_limits_default;
	lim.max_literal = 16;
	lim.max_append = 100;

	/* sync, too big: BAD, no "+", the next line is a command */
	EXPECT("a1 LOGIN {2000000}\r\na2 NOOP\r\n",
	       "BAD a1 [TOOBIG] Literal too large\nDONE a2 NOOP\n");
	/* non-sync, too big: its bytes (that look like a command) skipped */
	EXPECT_LIM(&lim, "a1 LOGIN {20+}\r\na1 LOGOUT\r\nxxxxxxxxx x\r\na2 NOOP\r\n",
		   "BAD a1 [TOOBIG] Literal too large\nDONE a2 NOOP\n");
	/* a skipped line holding further literals */
	EXPECT_LIM(&lim, "a1 LOGIN {20+}\r\na1 LOGOUT\r\nxxxxxxxxx {11+}\r\na9 LOGOUT\r\n\r\na2 NOOP\r\n",
		   "BAD a1 [TOOBIG] Literal too large\nDONE a2 NOOP\n");
	/* an error earlier on the line, a literal at its end */
	EXPECT("a1 X \"\\q\" {11+}\r\na9 LOGOUT\r\n\r\na2 NOOP\r\n",
	       "BAD a1 Invalid escape in quoted string\nDONE a2 NOOP\n");
	EXPECT("a1 X abc{11+}\r\na9 LOGOUT\r\n\r\na2 NOOP\r\n",
	       "BAD a1 Invalid character in atom\nDONE a2 NOOP\n");
	/* a synchronizing literal at the end of a bad line is not sent */
	EXPECT("a1 X \"\\q\" {11}\r\na2 NOOP\r\n",
	       "BAD a1 Invalid escape in quoted string\nDONE a2 NOOP\n");
	/* literal8 too */
	EXPECT("a1 X ) ~{11+}\r\na9 LOGOUT\r\n\r\na2 NOOP\r\n",
	       "BAD a1 Unexpected ')'\nDONE a2 NOOP\n");
	/* total parser-read literal bytes of one command */
	EXPECT_LIM(&lim, "a1 X {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {1+}\r\nx\r\na2 NOOP\r\n",
		   "BAD a1 [TOOBIG] Literal too large\nDONE a2 NOOP\n");
	EXPECT_LIM(&lim, "a1 X {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef\r\n",
		   "DONE a1 X {16}\"0123456789abcdef\" {16}\"0123456789abcdef\" {16}\"0123456789abcdef\" {16}\"0123456789abcdef\"\n");
	/* absurd non-sync size: FATAL rather than skipping */
	EXPECT("a1 LOGIN {300000000+}\r\n",
	       "FATAL Literal far too large to skip\n");
	EXPECT("a1 LOGIN {99999999999999999999999999+}\r\n",
	       "FATAL Literal far too large to skip\n");
	EXPECT_LIM(&lim, "a1 LOGIN {401+}\r\n",
		   "FATAL Literal far too large to skip\n");
	EXPECT_LIM(&lim, "a1 LOGIN {400+}\r\n", "BAD a1 [TOOBIG] Literal too large\n");
	/* sync, however large: just BAD */
	EXPECT("a1 LOGIN {99999999999999999999999999}\r\na2 NOOP\r\n",
	       "BAD a1 [TOOBIG] Literal too large\nDONE a2 NOOP\n");
	/* APPEND: over max_append */
	EXPECT_LIM(&lim, "a1 APPEND INBOX {101}\r\na2 NOOP\r\n",
		   "BAD a1 [TOOBIG] Message too large\nDONE a2 NOOP\n");
	EXPECT_LIM(&lim, "a1 APPEND INBOX {101+}\r\n"
		   "a9 LOGOUT\r\na9 LOGOUT\r\na9 LOGOUT\r\na9 LOGOUT\r\na9 LOGOUT\r\n"
		   "a9 LOGOUT\r\na9 LOGOUT\r\na9 LOGOUT\r\na9 LOGOUT\r\nxx\r\n"
		   "a2 NOOP\r\n",
		   "BAD a1 [TOOBIG] Message too large\nDONE a2 NOOP\n");
	EXPECT_LIM(&lim, "a1 APPEND INBOX {100}\r\n",
		   "LITERAL 100 sync\n");
	/* a literal inside an APPEND list is read by the parser */
	EXPECT_LIM(&lim, "a1 APPEND INBOX ({3}\r\nabc) {2+}\r\nhi\r\n",
		   "+\nLITERAL 2 nonsync\nDONE a1 APPEND INBOX ({3}\"abc\") <2:hi>\n");

	/* The line limit hit at every position of a line whose end
	 * announces a non-sync literal holding a command. */
	static const char line[] = "a1 X aaaaaaaaa {11+}\r\na9 LOGOUT\r\n\r\na2 NOOP\r\n";
	for (size_t ml = 1; ml <= 24; ml++) {
		struct imap_parser_limits l = imap_parser_limits_default;
		l.max_line = ml;
		char *t = run_all_ways(&l, false, line, sizeof(line) - 1);
		if (ml < 24) {
			/* the line (24 bytes with both CRLFs) does not fit */
			CHECK(strstr(t, "LOGOUT") == NULL);
			CHECK(ml < 9 || strstr(t, "DONE a2 NOOP\n") != NULL);
		} else {
			CHECK_EQ_STR(t, "DONE a1 X aaaaaaaaa {11}\"a9 LOGOUT\\x0d\\x0a\"\nDONE a2 NOOP\n");
		}
		free(t);
	}
}

static void test_limits(void)
{
	const struct imap_parser_limits *pre = &imap_parser_limits_preauth;
	struct buf in;
	char *t;

	/* nesting: preauth 4 */
	EXPECT_LIM(pre, "a1 X ((((a))))\r\n", "DONE a1 X ((((a))))\n");
	EXPECT_LIM(pre, "a1 X (((((a)))))\r\na2 NOOP\r\n",
		   "BAD a1 [LIMIT] Lists nested too deeply\nDONE a2 NOOP\n");
	/* default depth 32 */
	buf_init(&in, 0);
	buf_append_str(&in, "a1 X ");
	for (int i = 0; i < 32; i++)
		buf_append_str(&in, "(");
	for (int i = 0; i < 32; i++)
		buf_append_str(&in, ")");
	buf_append_str(&in, "\r\n");
	t = run_whole(&imap_parser_limits_default, false, in.data, in.len);
	CHECK(strncmp(t, "DONE a1 X ((((", 14) == 0);
	free(t);
	buf_reset(&in);
	buf_append_str(&in, "a1 X ");
	for (int i = 0; i < 33; i++)
		buf_append_str(&in, "(");
	buf_append_str(&in, "\r\n");
	t = run_whole(&imap_parser_limits_default, false, in.data, in.len);
	CHECK_EQ_STR(t, "BAD a1 [LIMIT] Lists nested too deeply\n");
	free(t);

	/* arguments: preauth 32, counting all levels */
	buf_reset(&in);
	buf_append_str(&in, "a1 X");
	for (int i = 0; i < 32; i++)
		buf_append_str(&in, " a");
	buf_append_str(&in, "\r\n");
	t = run_whole(pre, false, in.data, in.len);
	CHECK(strncmp(t, "DONE a1 X a a", 13) == 0);
	free(t);
	buf_reset(&in);
	buf_append_str(&in, "a1 X (");
	for (int i = 0; i < 31; i++)
		buf_append_str(&in, i ? " a" : "a");
	buf_append_str(&in, ")\r\n");
	t = run_whole(pre, false, in.data, in.len);
	CHECK(strncmp(t, "DONE a1 X (a a", 14) == 0);
	free(t);
	buf_reset(&in);
	buf_append_str(&in, "a1 X (");
	for (int i = 0; i < 32; i++)
		buf_append_str(&in, i ? " a" : "a");
	buf_append_str(&in, ")\r\na2 NOOP\r\n");
	t = run_whole(pre, false, in.data, in.len);
	CHECK_EQ_STR(t, "BAD a1 [LIMIT] Too many arguments\nDONE a2 NOOP\n");
	free(t);

	/* line length: preauth 8 KiB, the line end counts */
	for (int extra = 0; extra < 2; extra++) {
		buf_reset(&in);
		buf_append_str(&in, "a1 X ");
		while (in.len < 8192 - 2 + (size_t)extra)
			buf_append_str(&in, "a");
		buf_append_str(&in, "\r\na2 NOOP\r\n");
		t = run_whole(pre, false, in.data, in.len);
		if (extra == 0)
			CHECK(strncmp(t, "DONE a1 X aaa", 13) == 0 &&
			      strstr(t, "\nDONE a2 NOOP\n") != NULL);
		else
			CHECK_EQ_STR(t, "BAD a1 [TOOBIG] Command line too long\nDONE a2 NOOP\n");
		free(t);
	}
	/* a line too long to skip: FATAL */
	buf_reset(&in);
	buf_append_str(&in, "a1 X ");
	while (in.len < 5 * 8192)
		buf_append_str(&in, "a");
	t = run_whole(pre, false, in.data, in.len);
	CHECK_EQ_STR(t, "BAD a1 [TOOBIG] Command line too long\nFATAL Command line far too long\n");
	free(t);
	/* literal: preauth 4 KiB */
	buf_reset(&in);
	buf_append_str(&in, "a1 LOGIN {4096+}\r\n");
	for (int i = 0; i < 4096; i++)
		buf_append_str(&in, "x");
	buf_append_str(&in, " y\r\n");
	t = run_whole(pre, false, in.data, in.len);
	CHECK(strncmp(t, "DONE a1 LOGIN {4096}", 20) == 0);
	free(t);
	EXPECT_LIM(pre, "a1 LOGIN {4097}\r\na2 NOOP\r\n",
		   "BAD a1 [TOOBIG] Literal too large\nDONE a2 NOOP\n");
	/* preauth: non-sync > 4 * max_append is FATAL */
	EXPECT_LIM(pre, "a1 LOGIN {16385+}\r\n",
		   "FATAL Literal far too large to skip\n");
	buf_deinit(&in);

	/* max_bad: the tenth consecutive BAD is FATAL */
	EXPECT("a X (\r\na X (\r\na X (\r\na X (\r\na X (\r\n"
	       "a X (\r\na X (\r\na X (\r\na X (\r\na X (\r\na NOOP\r\n",
	       "BAD a Missing ')'\nBAD a Missing ')'\nBAD a Missing ')'\n"
	       "BAD a Missing ')'\nBAD a Missing ')'\nBAD a Missing ')'\n"
	       "BAD a Missing ')'\nBAD a Missing ')'\nBAD a Missing ')'\n"
	       "FATAL Too many invalid commands\n");
	/* ... but a good command in between resets the count */
	EXPECT("a X (\r\na X (\r\na X (\r\na X (\r\na X (\r\n"
	       "b NOOP\r\n"
	       "a X (\r\na X (\r\na X (\r\na X (\r\na X (\r\nc NOOP\r\n",
	       "BAD a Missing ')'\nBAD a Missing ')'\nBAD a Missing ')'\n"
	       "BAD a Missing ')'\nBAD a Missing ')'\nDONE b NOOP\n"
	       "BAD a Missing ')'\nBAD a Missing ')'\nBAD a Missing ')'\n"
	       "BAD a Missing ')'\nBAD a Missing ')'\nDONE c NOOP\n");
	/* the empty line does not count */
	EXPECT("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\na NOOP\r\n",
	       "DONE a NOOP\n");
}

static void test_api(void)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_preauth);
	struct imap_cmd *cmd;
	uint64_t n;
	size_t used;
	enum imap_parse_rc rc;

	/* Feed stops at the end of a command: pipelined commands come one
	 * at a time, and the memory stays until the next feed. */
	static const char two[] = "a1 NOOP\r\na2 LOGIN {3}\r\n";
	rc = imap_parser_feed(p, (const uint8_t *)two, sizeof(two) - 1, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK_EQ_INT(used, 9);
	CHECK(cmd != NULL && kstr_eq_ci(cmd->name, "noop") && cmd->nargs == 0);
	CHECK(cmd != NULL && kstr_eq(cmd->tag, KSTR_LIT("a1")));
	rc = imap_parser_feed(p, (const uint8_t *)two + 9, sizeof(two) - 10,
			      &used, &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_CONT);
	CHECK_EQ_INT(used, sizeof(two) - 10);
	CHECK(imap_parser_mem_used(p) > 0);

	/* limits switch at the next command, not this one */
	imap_parser_set_limits(p, &imap_parser_limits_default);
	rc = imap_parser_feed(p, (const uint8_t *)"bob pass\r\n", 10, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK(cmd != NULL && cmd->nargs == 2 &&
	      cmd->args[0].type == IMAP_ARG_LITERAL &&
	      kstr_eq(cmd->args[0].str, KSTR_LIT("bob")) &&
	      cmd->args[1].type == IMAP_ARG_ATOM &&
	      strcmp((const char *)cmd->args[1].str.p, "pass") == 0);
	/* now the default: 100 arguments are fine */
	struct buf in;
	buf_init(&in, 0);
	buf_append_str(&in, "a3 X");
	for (int i = 0; i < 100; i++)
		buf_append_str(&in, " a");
	buf_append_str(&in, "\r\n");
	rc = imap_parser_feed(p, in.data, in.len, &used, &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK(cmd != NULL && cmd->nargs == 100);
	buf_deinit(&in);

	/* a command with many arguments (big scratch arrays, given back at
	 * the next command), then a small one */
	buf_init(&in, 0);
	buf_append_str(&in, "a3 X (");
	for (int i = 0; i < 3000; i++)
		buf_append_str(&in, i ? " a" : "a");
	buf_append_str(&in, ")");
	for (int i = 0; i < 3000; i++)
		buf_append_str(&in, " \\Seen");
	buf_append_str(&in, "\r\na3b NOOP x\r\n");
	rc = imap_parser_feed(p, in.data, in.len, &used, &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK(cmd != NULL && cmd->nargs == 3001 &&
	      cmd->args[0].list_count == 3000 &&
	      kstr_eq(cmd->args[3000].str, KSTR_LIT("\\Seen")));
	size_t big = imap_parser_mem_used(p);
	rc = imap_parser_feed(p, in.data + used, in.len - used, &used, &cmd,
			      &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK(cmd != NULL && cmd->nargs == 1 &&
	      kstr_eq(cmd->args[0].str, KSTR_LIT("x")));
	CHECK(imap_parser_mem_used(p) < big);
	buf_deinit(&in);

	/* APPEND: partial(), sync flag, refuse with the tag */
	static const char app[] = "a4 APPEND Drafts (\\Draft) {5}\r\n";
	rc = imap_parser_feed(p, (const uint8_t *)app, sizeof(app) - 1, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_LITERAL);
	CHECK_EQ_INT(n, 5);
	CHECK(imap_parser_literal_sync(p));
	const struct imap_cmd *part = imap_parser_partial(p);
	CHECK(kstr_eq(part->tag, KSTR_LIT("a4")));
	CHECK(kstr_eq(part->name, KSTR_LIT("APPEND")));
	CHECK_EQ_INT(part->nargs, 2);
	CHECK(part->nargs == 2 && kstr_eq(part->args[0].str, KSTR_LIT("Drafts")) &&
	      part->args[1].type == IMAP_ARG_LIST &&
	      part->args[1].list_count == 1);
	imap_parser_literal_refuse(p);
	CHECK(kstr_eq(imap_parser_bad_tag(p), KSTR_LIT("a4")));
	/* sync refused: the client sends the next command */
	rc = imap_parser_feed(p, (const uint8_t *)"a5 NOOP\r\n", 9, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK(cmd != NULL && kstr_eq(cmd->tag, KSTR_LIT("a5")));

	/* reset drops a partial command */
	rc = imap_parser_feed(p, (const uint8_t *)"a6 LOGIN \"x", 11, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_MORE);
	imap_parser_reset(p);
	rc = imap_parser_feed(p, (const uint8_t *)"a7 NOOP\r\n", 9, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_DONE);
	CHECK(cmd != NULL && kstr_eq(cmd->tag, KSTR_LIT("a7")));

	/* FATAL sticks */
	rc = imap_parser_feed(p, (const uint8_t *)"a8 X {999999999999+}\r\n",
			      22, &used, &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_FATAL);
	rc = imap_parser_feed(p, (const uint8_t *)"a9 NOOP\r\n", 9, &used,
			      &cmd, &n);
	CHECK_EQ_INT(rc, IMAP_PARSE_FATAL);
	CHECK_EQ_INT(used, 0);
	imap_parser_destroy(&p);
	CHECK(p == NULL);

	/* refusing a non-sync literal skips its bytes and the line */
	static const char refuse[] =
		"a1 APPEND INBOX {11+}\r\na9 LOGOUT\r\n (\\Seen) {2+}\r\nhi\r\na2 NOOP\r\n";
	char *t = run_all_ways(&imap_parser_limits_default, true, refuse,
			       sizeof(refuse) - 1);
	CHECK_EQ_STR(t, "LITERAL 11 nonsync\nREFUSED a1\nDONE a2 NOOP\n");
	free(t);
	static const char refuse_sync[] = "a1 APPEND INBOX {11}\r\na2 NOOP\r\n";
	t = run_all_ways(&imap_parser_limits_default, true, refuse_sync,
			 sizeof(refuse_sync) - 1);
	CHECK_EQ_STR(t, "LITERAL 11 sync\nREFUSED a1\nDONE a2 NOOP\n");
	free(t);
}

int main(void)
{
	test_good();
	test_syntax_errors();
	test_literal_skip();
	test_limits();
	test_api();
	return test_done("imap_parser");
}
