/* Unit tests for index/mime: the hand-written corpus in tests/data/mime
 * (NAME.eml with NAME.expected: two lines "ENVELOPE <v>" and
 * "BODYSTRUCTURE <v>", where a CR or LF byte inside a value, i.e. in an
 * IMAP literal, is written as "<CR>" / "<LF>"), section extraction,
 * BINARY, search, the decoding helpers, and robustness (truncations, LF
 * conversion, limits, a 10 MB message). Run from the repository root. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/mime.h"
#include "lib/buf.h"
#include "lib/errors.h"
#include "test.h"

#define CORPUS_DIR "tests/data/mime"

static uint8_t *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, len = 0;
	uint8_t *d = malloc(cap);
	size_t n;
	while ((n = fread(d + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			cap *= 2;
			d = realloc(d, cap);
		}
	}
	fclose(f);
	*len_r = len;
	return d;
}

/* CR -> "<CR>", LF -> "<LF>", as in the .expected files. */
static char *escape_crlf(const char *s)
{
	size_t n = strlen(s);
	char *r = malloc(n * 4 + 1), *o = r;
	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			memcpy(o, "<CR>", 4);
			o += 4;
		} else if (*s == '\n') {
			memcpy(o, "<LF>", 4);
			o += 4;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return r;
}

/* A loose IMAP syntax check of an ENVELOPE / BODYSTRUCTURE value: lists
 * balanced, quoted strings well-formed (7-bit, no CR/LF, only \\ and \"
 * escapes), literals with their exact length, atoms NIL and numbers. */
static const char *syn_value(const char *p, const char *end, int depth)
{
	if (p >= end || depth > 200)
		return NULL;
	if (*p == '(') {
		p++;
		for (;;) {
			while (p < end && *p == ' ')
				p++;
			if (p >= end)
				return NULL;
			if (*p == ')')
				return p + 1;
			p = syn_value(p, end, depth + 1);
			if (p == NULL)
				return NULL;
		}
	}
	if (*p == '"') {
		for (p++; p < end; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '"')
				return p + 1;
			if (c == '\\') {
				if (p + 1 >= end || (p[1] != '"' && p[1] != '\\'))
					return NULL;
				p++;
			} else if (c == '\r' || c == '\n' || c >= 0x80 || c == 0) {
				return NULL;
			}
		}
		return NULL;
	}
	if (*p == '{') {
		char *e;
		unsigned long n = strtoul(p + 1, &e, 10);
		if (e == p + 1 || e + 3 > end || e[0] != '}' || e[1] != '\r' ||
		    e[2] != '\n' || (size_t)(end - (e + 3)) < n)
			return NULL;
		return e + 3 + n;
	}
	if (end - p >= 3 && memcmp(p, "NIL", 3) == 0)
		return p + 3;
	if (*p >= '0' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		return p;
	}
	return NULL;
}

static bool syntax_ok(const char *s)
{
	const char *end = s + strlen(s);
	const char *p = syn_value(s, end, 0);
	return p == end;
}

static void check_info(const struct mime_info *mi)
{
	CHECK(mi->envelope != NULL && syntax_ok(mi->envelope));
	CHECK(mi->bodystructure != NULL && syntax_ok(mi->bodystructure));
	CHECK(mi->body != NULL && syntax_ok(mi->body));
}

/* ---- the corpus ---- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **corpus_names(size_t *n_r)
{
	DIR *d = opendir(CORPUS_DIR);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".eml") != 0)
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		names[n++] = strndup(de->d_name, l - 4);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	*n_r = n;
	return names;
}

static void test_corpus_one(const char *name)
{
	char path[512];
	size_t len, elen;

	snprintf(path, sizeof(path), CORPUS_DIR "/%s.eml", name);
	uint8_t *msg = read_file(path, &len);
	snprintf(path, sizeof(path), CORPUS_DIR "/%s.expected", name);
	uint8_t *exp = read_file(path, &elen);
	CHECK(msg != NULL && exp != NULL);
	if (msg == NULL || exp == NULL) {
		free(msg);
		free(exp);
		return;
	}
	exp = realloc(exp, elen + 1);
	exp[elen] = '\0';
	char *env_line = (char *)exp;
	char *bs_line = strchr(env_line, '\n');
	CHECK(bs_line != NULL);
	if (bs_line == NULL) {
		free(msg);
		free(exp);
		return;
	}
	*bs_line++ = '\0';
	char *nl = strchr(bs_line, '\n');
	if (nl != NULL)
		*nl = '\0';
	CHECK(strncmp(env_line, "ENVELOPE ", 9) == 0);
	CHECK(strncmp(bs_line, "BODYSTRUCTURE ", 14) == 0);

	struct mime_info mi;
	CHECK_EQ_INT(mime_parse(msg, len, &mi), 0);
	char *env = escape_crlf(mi.envelope);
	char *bs = escape_crlf(mi.bodystructure);
	if (strcmp(env, env_line + 9) != 0 || strcmp(bs, bs_line + 14) != 0)
		fprintf(stderr, "corpus %s differs\n", name);
	CHECK_EQ_STR(env, env_line + 9);
	CHECK_EQ_STR(bs, bs_line + 14);
	check_info(&mi);
	/* BODY is BODYSTRUCTURE without extension data: never longer. */
	CHECK(strlen(mi.body) <= strlen(mi.bodystructure));
	CHECK(mi.header_size <= len);
	free(env);
	free(bs);
	mime_info_free(&mi);
	free(msg);
	free(exp);
}

static void test_corpus(void)
{
	size_t n = 0;
	char **names = corpus_names(&n);
	CHECK(n >= 60);
	for (size_t i = 0; i < n; i++) {
		test_corpus_one(names[i]);
		free(names[i]);
	}
	free(names);
}

/* ---- robustness: every corpus message cut short and with bare LF ---- */

static void exercise(const uint8_t *msg, size_t len)
{
	static const char *specs[] = {
		"", "HEADER", "TEXT", "1", "1.MIME", "2", "2.HEADER", "2.TEXT",
		"2.1", "2.1.MIME", "1.2.3", "3.1.2.HEADER",
		"HEADER.FIELDS (From Subject)", "HEADER.FIELDS.NOT (Received)",
		"2.HEADER.FIELDS (Content-Type)",
	};
	struct mime_info mi;
	struct buf out;

	CHECK_EQ_INT(mime_parse(msg, len, &mi), 0);
	check_info(&mi);
	mime_info_free(&mi);
	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		buf_reset(&out);
		CHECK_EQ_INT(mime_section(msg, len, kstr_cstr(specs[i]), &out), 0);
		CHECK(out.len <= len + 2);
	}
	buf_reset(&out);
	int r = mime_section_binary(msg, len, KSTR_LIT("1"), &out);
	CHECK(r == 0 || r == KURA_ECORRUPT);
	buf_reset(&out);
	r = mime_section_binary(msg, len, KSTR_LIT("2.1"), &out);
	CHECK(r == 0 || r == KURA_ECORRUPT);
	buf_deinit(&out);
	(void)mime_search_text(msg, len, KSTR_LIT("e"), true);
	(void)mime_search_text(msg, len, kstr_cstr("\xc3\xa9"), false);
	(void)mime_search_header(msg, len, KSTR_LIT("Subject"), KSTR_LIT("x"));
}

static void test_robustness(void)
{
	size_t n = 0;
	char **names = corpus_names(&n);
	unsigned int runs = 0;

	for (size_t i = 0; i < n; i++) {
		char path[512];
		size_t len;
		snprintf(path, sizeof(path), CORPUS_DIR "/%s.eml", names[i]);
		uint8_t *msg = read_file(path, &len);
		free(names[i]);
		if (msg == NULL)
			continue;
		/* Each cut in its own exact-size allocation, so ASan sees
		 * any read past the end. */
		for (unsigned int k = 0; k < 20; k++) {
			size_t cut = len * k / 20 + (k % 3);
			if (cut > len)
				cut = len;
			uint8_t *c = malloc(cut ? cut : 1);
			memcpy(c, msg, cut);
			exercise(c, cut);
			free(c);
			runs++;
		}
		uint8_t *lf = malloc(len ? len : 1);
		size_t lfn = 0;
		for (size_t j = 0; j < len; j++) {
			if (!(msg[j] == '\r' && j + 1 < len && msg[j + 1] == '\n'))
				lf[lfn++] = msg[j];
		}
		exercise(lf, lfn);
		runs++;
		free(lf);
		free(msg);
	}
	free(names);
	CHECK(runs >= 60 * 21);
}

/* ---- sections ---- */

static const char SEC_MSG[] =
	"From: A <a@example.com>\r\n"
	"Subject: sections\r\n"
	"Received: by x\r\n"
	" continued\r\n"
	"To: b@example.com\r\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--XX\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"part one\r\n"
	"--XX\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"From: inner@example.com\r\n"
	"Subject: inner\r\n"
	"Content-Type: multipart/alternative; boundary=YY\r\n"
	"\r\n"
	"--YY\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"aGVsbG8gd29ybGQ=\r\n"
	"--YY\r\n"
	"Content-Type: text/html\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"<p>caf=C3=A9 soft=\r\n"
	"break</p>\r\n"
	"--YY--\r\n"
	"--XX\r\n"
	"Content-Type: application/x-thing\r\n"
	"Content-Transfer-Encoding: x-uuencode\r\n"
	"\r\n"
	"begin 644 x\r\n"
	"--XX--\r\n";

static char *section(const char *msg, const char *spec, int *rc_r)
{
	struct buf out;
	buf_init(&out, 0);
	*rc_r = mime_section((const uint8_t *)msg, strlen(msg), kstr_cstr(spec),
			     &out);
	char *r = strndup(out.data ? (const char *)out.data : "", out.len);
	buf_deinit(&out);
	return r;
}

static char *binary(const char *msg, const char *spec, int *rc_r)
{
	struct buf out;
	buf_init(&out, 0);
	*rc_r = mime_section_binary((const uint8_t *)msg, strlen(msg),
				    kstr_cstr(spec), &out);
	char *r = strndup(out.data ? (const char *)out.data : "", out.len);
	buf_deinit(&out);
	return r;
}

#define CHECK_SECTION(msg, spec, want) do { \
	int _rc; char *_s = section(msg, spec, &_rc); \
	CHECK_EQ_INT(_rc, 0); CHECK_EQ_STR(_s, want); free(_s); \
} while (0)

#define CHECK_BINARY(msg, spec, want) do { \
	int _rc; char *_s = binary(msg, spec, &_rc); \
	CHECK_EQ_INT(_rc, 0); CHECK_EQ_STR(_s, want); free(_s); \
} while (0)

static void test_sections(void)
{
	const char *m = SEC_MSG;
	const char *hdr_end = strstr(m, "\r\n\r\n") + 4;
	char *hdr = strndup(m, (size_t)(hdr_end - m));
	int rc;

	CHECK_SECTION(m, "", m);
	CHECK_SECTION(m, "HEADER", hdr);
	CHECK_SECTION(m, "header", hdr);
	CHECK_SECTION(m, "TEXT", hdr_end);
	CHECK_SECTION(m, "1", "part one");
	CHECK_SECTION(m, "1.MIME",
		      "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	CHECK_SECTION(m, "2",
		      "From: inner@example.com\r\n"
		      "Subject: inner\r\n"
		      "Content-Type: multipart/alternative; boundary=YY\r\n"
		      "\r\n"
		      "--YY\r\n"
		      "Content-Type: text/plain\r\n"
		      "Content-Transfer-Encoding: base64\r\n"
		      "\r\n"
		      "aGVsbG8gd29ybGQ=\r\n"
		      "--YY\r\n"
		      "Content-Type: text/html\r\n"
		      "Content-Transfer-Encoding: quoted-printable\r\n"
		      "\r\n"
		      "<p>caf=C3=A9 soft=\r\n"
		      "break</p>\r\n"
		      "--YY--");
	CHECK_SECTION(m, "2.MIME", "Content-Type: message/rfc822\r\n\r\n");
	CHECK_SECTION(m, "2.HEADER",
		      "From: inner@example.com\r\n"
		      "Subject: inner\r\n"
		      "Content-Type: multipart/alternative; boundary=YY\r\n"
		      "\r\n");
	CHECK_SECTION(m, "2.HEADER.FIELDS (subject)", "Subject: inner\r\n\r\n");
	CHECK_SECTION(m, "2.TEXT",
		      "--YY\r\n"
		      "Content-Type: text/plain\r\n"
		      "Content-Transfer-Encoding: base64\r\n"
		      "\r\n"
		      "aGVsbG8gd29ybGQ=\r\n"
		      "--YY\r\n"
		      "Content-Type: text/html\r\n"
		      "Content-Transfer-Encoding: quoted-printable\r\n"
		      "\r\n"
		      "<p>caf=C3=A9 soft=\r\n"
		      "break</p>\r\n"
		      "--YY--");
	CHECK_SECTION(m, "2.1", "aGVsbG8gd29ybGQ=");
	CHECK_SECTION(m, "2.1.MIME",
		      "Content-Type: text/plain\r\n"
		      "Content-Transfer-Encoding: base64\r\n\r\n");
	CHECK_SECTION(m, "2.2", "<p>caf=C3=A9 soft=\r\nbreak</p>");
	CHECK_SECTION(m, "3", "begin 644 x");
	/* Parts that do not exist, and HEADER/TEXT of a part that is not
	 * message/rfc822: empty. */
	CHECK_SECTION(m, "4", "");
	CHECK_SECTION(m, "2.3", "");
	CHECK_SECTION(m, "1.1", "");
	CHECK_SECTION(m, "1.HEADER", "");
	CHECK_SECTION(m, "1.TEXT", "");
	CHECK_SECTION(m, "2.1.1", "");
	CHECK_SECTION(m, "4.MIME", "");
	CHECK_SECTION(m, "4294967295", "");
	CHECK_SECTION(m, "HEADER.FIELDS (From Subject)",
		      "From: A <a@example.com>\r\nSubject: sections\r\n\r\n");
	/* Original order, not the order asked for; names case-blind,
	 * quoted and literal names. */
	CHECK_SECTION(m, "HEADER.FIELDS (SUBJECT \"from\")",
		      "From: A <a@example.com>\r\nSubject: sections\r\n\r\n");
	CHECK_SECTION(m, "HEADER.FIELDS ({7}\r\nsubject)",
		      "Subject: sections\r\n\r\n");
	CHECK_SECTION(m, "HEADER.FIELDS (Received)",
		      "Received: by x\r\n continued\r\n\r\n");
	CHECK_SECTION(m, "HEADER.FIELDS (X-Nothing)", "\r\n");
	CHECK_SECTION(m, "HEADER.FIELDS.NOT (From Subject Content-Type)",
		      "Received: by x\r\n continued\r\nTo: b@example.com\r\n\r\n");
	CHECK_SECTION(m, "header.fields.not (received to from subject content-type)",
		      "\r\n");

	/* A single-part message: its body is part 1, the message header
	 * its MIME header. */
	const char *sp = "Subject: single\r\n\r\nonly body\r\n";
	CHECK_SECTION(sp, "1", "only body\r\n");
	CHECK_SECTION(sp, "1.MIME", "Subject: single\r\n\r\n");
	CHECK_SECTION(sp, "1.1", "");
	CHECK_SECTION(sp, "2", "");
	CHECK_SECTION(sp, "TEXT", "only body\r\n");
	/* No blank line: all header, empty text. */
	CHECK_SECTION("Subject: x\r\nFrom: y", "HEADER", "Subject: x\r\nFrom: y");
	CHECK_SECTION("Subject: x\r\nFrom: y", "TEXT", "");
	CHECK_SECTION("Subject: x\r\nFrom: y", "HEADER.FIELDS (From)",
		      "From: y\r\n");
	CHECK_SECTION("", "", "");
	CHECK_SECTION("", "HEADER", "");
	CHECK_SECTION("", "1", "");

	/* Invalid specs. */
	static const char *bad[] = {
		"0", "01", "1.", "1..2", ".1", "HEADER.FIELDS ()",
		"HEADER.FIELDS", "HEADER.FIELDS  (From)", "HEADER.FIELDS (From",
		"HEADER.FIELDS (From) ", "MIME", "FOO", "1.FOO", "HEADERS",
		"TEXT ", "1.2.TEXT.MIME", "4294967296", "HEADER.FIELDS (\"a)",
		"HEADER.FIELDS ({5}\r\nab)", "HEADER.FIELDS (a\xc3\xa9)",
		("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23."
		 "24.25.26.27.28.29.30.31.32.33"),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *s = section(m, bad[i], &rc);
		CHECK_EQ_INT(rc, KURA_EINVAL);
		CHECK(!mime_section_is_valid(kstr_cstr(bad[i])));
		free(s);
	}
	static const char *good[] = {
		"", "HEADER", "text", "1", "1.2.3", "1.MIME", "2.HEADER",
		"2.TEXT", "HEADER.FIELDS (A)", "header.fields.not (A B C)",
		"3.HEADER.FIELDS (From To)", "HEADER.FIELDS (\"quoted \\\" name\")",
		"HEADER.FIELDS ({3+}\r\nabc X)",
		("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23."
		 "24.25.26.27.28.29.30.31.32"),
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(mime_section_is_valid(kstr_cstr(good[i])));

	/* out->max. */
	struct buf small;
	buf_init(&small, 16);
	CHECK_EQ_INT(mime_section((const uint8_t *)m, strlen(m), KSTR_LIT(""),
				  &small), KURA_ETOOBIG);
	buf_deinit(&small);
	buf_init(&small, 16);
	CHECK_EQ_INT(mime_section((const uint8_t *)m, strlen(m),
				  KSTR_LIT("HEADER.FIELDS (From)"), &small),
		     KURA_ETOOBIG);
	buf_deinit(&small);

	/* BINARY. */
	CHECK_BINARY(m, "2.1", "hello world");
	CHECK_BINARY(m, "2.2", "<p>caf\xc3\xa9 softbreak</p>");
	CHECK_BINARY(m, "1", "part one");
	CHECK_BINARY(m, "9", "");
	CHECK_BINARY(m, "", m);
	char *s = binary(m, "3", &rc);
	CHECK_EQ_INT(rc, KURA_ECORRUPT);
	free(s);
	s = binary(m, "1.MIME", &rc);
	CHECK_EQ_INT(rc, KURA_EINVAL);
	free(s);
	s = binary(m, "HEADER", &rc);
	CHECK_EQ_INT(rc, KURA_EINVAL);
	free(s);
	struct buf bb;
	buf_init(&bb, 0);
	const char *b64m = "Content-Transfer-Encoding: Base64\r\n\r\nAAEC/w==\r\n";
	CHECK_EQ_INT(mime_section_binary((const uint8_t *)b64m, strlen(b64m),
					 KSTR_LIT("1"), &bb), 0);
	CHECK(bb.len == 4 && memcmp(bb.data, "\x00\x01\x02\xff", 4) == 0);
	buf_deinit(&bb);
	free(hdr);
}

/* ---- search ---- */

static uint8_t *corpus_msg(const char *name, size_t *len_r)
{
	char path[512];
	snprintf(path, sizeof(path), CORPUS_DIR "/%s.eml", name);
	uint8_t *m = read_file(path, len_r);
	CHECK(m != NULL);
	if (m == NULL) {
		*len_r = 0;
		return (uint8_t *)strdup("");
	}
	return m;
}

static bool s_hdr(const char *name, const char *field, const char *needle)
{
	size_t len;
	uint8_t *m = corpus_msg(name, &len);
	bool r = mime_search_header(m, len, kstr_cstr(field), kstr_cstr(needle));
	free(m);
	return r;
}

static bool s_text(const char *name, const char *needle, bool with_headers)
{
	size_t len;
	uint8_t *m = corpus_msg(name, &len);
	bool r = mime_search_text(m, len, kstr_cstr(needle), with_headers);
	free(m);
	return r;
}

static void test_search(void)
{
	/* RFC 2047 subjects, decoded and case-blind. */
	CHECK(s_hdr("04-encoded-words-b-utf8", "Subject", "GRÜSSE") == false);
	CHECK(s_hdr("04-encoded-words-b-utf8", "Subject", "GRÜßE AUS KÖLN"));
	CHECK(s_hdr("04-encoded-words-b-utf8", "subject", "grüße aus köln"));
	CHECK(s_hdr("04-encoded-words-b-utf8", "From", "JÜRGEN MÜLLER"));
	CHECK(s_hdr("04-encoded-words-b-utf8", "To", "иван петров"));
	CHECK(s_hdr("05-encoded-words-q-latin1", "Subject", "café crème et crêpes"));
	CHECK(s_hdr("05-encoded-words-q-latin1", "To", "françois lévesque"));
	CHECK(!s_hdr("05-encoded-words-q-latin1", "Subject", "=E9"));
	/* Adjacent words: the space between them goes, a character split
	 * across two words survives. */
	CHECK(s_hdr("06-adjacent-encoded-words", "Subject", "日本語テストok then  plain été"));
	CHECK(s_hdr("06-adjacent-encoded-words", "Subject", "語テ"));
	CHECK(s_hdr("60-iso-2022-jp", "Subject", "日本語の件名"));
	CHECK(s_hdr("29-8bit-header-utf8", "Subject", "KÖLN — ☕"));
	CHECK(s_hdr("30-8bit-header-latin1", "Subject", "CAFÉ CRÈME"));
	CHECK(s_hdr("74-encoded-word-in-quotes", "From", "café"));
	CHECK(s_hdr("03-long-folded-headers", "Subject", "folded over several"));
	CHECK(s_hdr("01-simple", "Subject", ""));
	CHECK(!s_hdr("01-simple", "X-Absent", ""));
	CHECK(!s_hdr("01-simple", "Subject", "dinner"));
	CHECK(s_hdr("38-duplicate-headers", "Subject", "second subject"));

	/* Bodies: quoted-printable, base64, charsets. */
	CHECK(s_text("07-multipart-alternative", "CAFÉ OPENING", false));
	CHECK(s_text("07-multipart-alternative", "soft line break test", false));
	CHECK(s_text("61-base64-utf8-body", "NAÏVE CAFÉ", false));
	CHECK(s_text("61-base64-utf8-body", "αβγ ελληνικά", false));
	CHECK(s_text("61-base64-utf8-body", "ПРИВЕТ МИР", false));
	CHECK(s_text("62-qp-latin1-body", "grüße aus MÜNCHEN", false));
	CHECK(s_text("62-qp-latin1-body", "sehr langen satz", false));
	CHECK(s_text("30-8bit-header-latin1", "VOILÀ, ÇA", false));
	CHECK(s_text("63-windows-1252-8bit", "€ 5 “quoted”", false));
	CHECK(s_text("60-iso-2022-jp", "日本語の本文", false));
	CHECK(s_text("52-cte-with-comments", "comment around", false));
	CHECK(!s_text("52-cte-with-comments", "Y29tbWVudC", false));
	/* Attachments that are not text are not searched. */
	CHECK(!s_text("08-multipart-mixed-attachment", "FlateDecode", false));
	CHECK(s_text("08-multipart-mixed-attachment", "report attached", false));
	/* TEXT searches headers, BODY does not. */
	CHECK(s_text("01-simple", "alice example", true));
	CHECK(!s_text("01-simple", "alice example", false));
	CHECK(s_text("01-simple", "lunch on friday", false));
	CHECK(s_text("01-simple", "MAIN STREET", false));
	CHECK(s_text("01-simple", "MAIN STREET", true));
	CHECK(s_text("04-encoded-words-b-utf8", "grüße aus köln", true));
	CHECK(s_text("08-multipart-mixed-attachment", "report Q4.pdf", true));
	CHECK(!s_text("08-multipart-mixed-attachment", "report Q4.pdf", false));
	/* An attached message's header is body of the outer message. */
	CHECK(s_text("10-message-rfc822-multipart", "subject: original", false));
	CHECK(s_text("10-message-rfc822-multipart", "<p>original text</p>", false));
	CHECK(!s_text("10-message-rfc822-multipart", "fwd.eml", false));
	CHECK(s_text("10-message-rfc822-multipart", "fwd.eml", true));
	CHECK(s_text("01-simple", "", false));
	CHECK(!s_text("01-simple", "not in there anywhere", true));

	struct buf out;
	buf_init(&out, 0);
	size_t len;
	uint8_t *m = corpus_msg("05-encoded-words-q-latin1", &len);
	CHECK(mime_header_decoded(m, len, KSTR_LIT("subject"), &out));
	CHECK(out.len == strlen("Café crème et crêpes") &&
	      memcmp(out.data, "Café crème et crêpes", out.len) == 0);
	buf_reset(&out);
	CHECK(!mime_header_decoded(m, len, KSTR_LIT("Keywords"), &out));
	free(m);
	buf_deinit(&out);
}

/* ---- helpers ---- */

static char *decode_hdr(const char *in)
{
	struct buf out;
	buf_init(&out, 0);
	mime_header_decode(kstr_cstr(in), &out);
	char *r = strndup(out.data ? (const char *)out.data : "", out.len);
	buf_deinit(&out);
	return r;
}

static char *fold(const char *in)
{
	struct buf out;
	buf_init(&out, 0);
	utf8_casefold(kstr_cstr(in), &out);
	char *r = strndup(out.data ? (const char *)out.data : "", out.len);
	buf_deinit(&out);
	return r;
}

#define CHECK_FN(fn, in, want) do { \
	char *_r = fn(in); CHECK_EQ_STR(_r, want); free(_r); \
} while (0)

static void test_helpers(void)
{
	CHECK_FN(decode_hdr, "=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
	CHECK_FN(decode_hdr, "=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab");
	CHECK_FN(decode_hdr, "=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b");
	CHECK_FN(decode_hdr, "x =?utf-8?q?a_b?= y", "x a b y");
	CHECK_FN(decode_hdr, "=?UTF-8*en?B?w6k=?=", "é");
	CHECK_FN(decode_hdr, "=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	CHECK_FN(decode_hdr, "=?utf-8?q?unterminated", "=?utf-8?q?unterminated");
	CHECK_FN(decode_hdr, "=?", "=?");
	CHECK_FN(decode_hdr, "=?x-unknown?q?raw=41?=", "rawA");
	CHECK_FN(decode_hdr, "=?iso-8859-1?q?=E9?==?iso-8859-15?q?=A4?=", "é€");
	CHECK_FN(decode_hdr, "caf\xe9", "caf\xc3\xa9");
	CHECK_FN(decode_hdr, "a\r\n b", "a b");
	/* UTF-8 is copied as it is; other charsets go through iconv,
	 * which replaces what it cannot convert. */
	CHECK_FN(decode_hdr, "=?utf-8?b?/w==?=", "\xff");
	CHECK_FN(decode_hdr, "=?euc-jp?q?=FF=FFa?=", "\xef\xbf\xbd\xef\xbf\xbd" "a");

	CHECK_FN(fold, "ABC xyz ÀÉÎÕÜ ÿ Ÿ", "abc xyz àéîõü ÿ ÿ");
	CHECK_FN(fold, "ΑΒΓ ΣΊΣΥΦΟΣ ς", "αβγ σίσυφοσ σ");
	CHECK_FN(fold, "ПРИВЕТ ЁЖ Ђ", "привет ёж ђ");
	CHECK_FN(fold, "ŁÓDŹ ĞÜŞ", "łódź ğüş");
	CHECK_FN(fold, "ＡＢＣ Ա", "ａｂｃ ա");
	CHECK_FN(fold, "µ ſ ẞ", "μ s ß");
	CHECK_FN(fold, "bad \xff\xc3 bytes\xe2\x82", "bad \xff\xc3 bytes\xe2\x82");

	struct buf out;
	buf_init(&out, 0);
	CHECK(mime_qp_decode(KSTR_LIT("a=3Db=\r\nc  \r\nd=4\r\n=ZZ=\n"), &out));
	CHECK(out.len == 14 && memcmp(out.data, "a=bc\r\nd=4\r\n=ZZ", 14) == 0);
	buf_reset(&out);
	CHECK(mime_base64_decode(KSTR_LIT("aGVs\r\nbG8=\r\nIHdv cmxk"), &out));
	CHECK(out.len == 11 && memcmp(out.data, "hello world", 11) == 0);
	buf_reset(&out);
	CHECK(mime_charset_to_utf8(KSTR_LIT("KOI8-R"), KSTR_LIT("\xf0\xd2\xc9"), &out));
	CHECK(out.len == 6 && memcmp(out.data, "При", 6) == 0);
	buf_reset(&out);
	CHECK(mime_charset_to_utf8(KSTR_LIT("../etc/x"), KSTR_LIT("ab"), &out));
	CHECK(out.len == 2);
	buf_reset(&out);
	bool w;
	CHECK(mime_address_list(KSTR_LIT("a@b, \"x\" <c@d>"), &out, &w) && w);
	CHECK(out.len == strlen("((NIL NIL \"a\" \"b\")(\"x\" NIL \"c\" \"d\"))") &&
	      memcmp(out.data, "((NIL NIL \"a\" \"b\")(\"x\" NIL \"c\" \"d\"))", out.len) == 0);
	buf_reset(&out);
	CHECK(mime_address_list(KSTR_LIT(" , "), &out, &w) && !w);
	CHECK(out.len == 3 && memcmp(out.data, "NIL", 3) == 0);
	buf_deinit(&out);

	/* A bounded out: false, nothing past max. */
	buf_init(&out, 8);
	CHECK(!mime_imap_string(&out, (const uint8_t *)"0123456789", 10));
	CHECK(out.len <= 8);
	buf_deinit(&out);

	int64_t t;
	int tz;
	CHECK(mime_date_parse(KSTR_LIT("Mon, 7 Feb 1994 21:52:25 -0800"), &t, &tz));
	CHECK_EQ_INT(t, 760686745);
	CHECK_EQ_INT(tz, -480);
	CHECK(mime_date_parse(KSTR_LIT("7 Feb 94 21:52 PST"), &t, &tz));
	CHECK_EQ_INT(t, 760686720);
	CHECK_EQ_INT(tz, -480);
	CHECK(mime_date_parse(KSTR_LIT("Fri, 21 Nov 97 09:55:06 GMT"), &t, &tz));
	CHECK_EQ_INT(t, 880106106);
	CHECK(mime_date_parse(KSTR_LIT("Thu, 1 Jan 2004 00:00:00 +0530 (IST)"), &t, &tz));
	CHECK_EQ_INT(t, 1072895400);
	CHECK_EQ_INT(tz, 330);
	CHECK(mime_date_parse(KSTR_LIT("1 Jan 1970 00:00:00 +0100"), &t, &tz));
	CHECK_EQ_INT(t, 0);	/* clamped */
	CHECK(!mime_date_parse(KSTR_LIT("yesterday"), &t, &tz));
	CHECK(!mime_date_parse(KSTR_LIT("32 Jan 2024 10:00:00"), &t, &tz));
	CHECK(!mime_date_parse(KSTR_LIT("1 Foo 2024 10:00:00"), &t, &tz));
	CHECK(!mime_date_parse(KSTR_LIT("1 Jan 2024 25:00:00"), &t, &tz));
	CHECK(!mime_date_parse(KSTR_LIT(""), &t, &tz));

	struct mime_info mi;
	const char *dm = "Date: Tue, 2 Jan 2024 10:14:59 +0000\r\n\r\nx\r\ny";
	mime_parse((const uint8_t *)dm, strlen(dm), &mi);
	CHECK_EQ_INT(mi.sent_date, 1704190499);
	CHECK_EQ_INT(mi.sent_tz_min, 0);
	CHECK_EQ_INT(mi.header_size, 40);
	CHECK_EQ_INT(mi.lines, 4);
	CHECK_EQ_STR(mi.body, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 4 2)");
	mime_info_free(&mi);
	mime_parse((const uint8_t *)"Date: garbage\r\n", 15, &mi);
	CHECK_EQ_INT(mi.sent_date, -1);
	mime_info_free(&mi);
	mime_parse(NULL, 0, &mi);
	CHECK_EQ_STR(mi.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	CHECK_EQ_STR(mi.bodystructure, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)");
	CHECK_EQ_INT(mi.header_size, 0);
	CHECK_EQ_INT(mi.lines, 0);
	mime_info_free(&mi);
}

/* BODY (no extension data) for a few shapes. */
static void test_body(void)
{
	struct mime_info mi;
	const char *m =
		"Content-Type: multipart/mixed; boundary=b\r\n"
		"\r\n"
		"--b\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Disposition: inline\r\n"
		"Content-Language: en\r\n"
		"\r\n"
		"hi\r\n"
		"--b\r\n"
		"Content-Type: message/rfc822\r\n"
		"\r\n"
		"Subject: in\r\n"
		"Content-Type: image/png\r\n"
		"Content-MD5: abc\r\n"
		"\r\n"
		"PNG\r\n"
		"--b--\r\n";
	mime_parse((const uint8_t *)m, strlen(m), &mi);
	CHECK_EQ_STR(mi.body,
		     "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 2 1)"
		     "(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 61 "
		     "(NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		     "(\"image\" \"png\" NIL NIL NIL \"7BIT\" 3) 5) \"mixed\")");
	CHECK_EQ_STR(mi.bodystructure,
		     "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 2 1 NIL (\"inline\" NIL) (\"en\") NIL)"
		     "(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 61 "
		     "(NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) "
		     "(\"image\" \"png\" NIL NIL NIL \"7BIT\" 3 \"abc\" NIL NIL NIL) 5 NIL NIL NIL NIL) "
		     "\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
	mime_info_free(&mi);
}

/* ---- limits and speed ---- */

static size_t count_str(const char *s, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void time_parse(const char *what, const uint8_t *m, size_t len)
{
	struct mime_info mi;
	double t0 = now_sec();
	mime_parse(m, len, &mi);
	double t1 = now_sec();
	bool found = mime_search_text(m, len, KSTR_LIT("needle-not-there"), true);
	double t2 = now_sec();
	struct buf out;
	buf_init(&out, 0);
	mime_section(m, len, KSTR_LIT("2.MIME"), &out);
	double t3 = now_sec();
	buf_deinit(&out);
	printf("mime: %s (%zu bytes): parse %.3f s, search %.3f s, section %.3f s\n",
	       what, len, t1 - t0, t2 - t1, t3 - t2);
	CHECK(!found);
	check_info(&mi);
	mime_info_free(&mi);
}

static void test_limits(void)
{
	struct buf b;
	struct mime_info mi;

	/* More parts than MIME_MAX_PARTS. */
	buf_init(&b, 0);
	buf_append_str(&b, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS + 500; i++)
		buf_append_str(&b, "--p\r\nContent-Type: text/plain\r\n\r\nx\r\n");
	buf_append_str(&b, "--p--\r\n");
	mime_parse(b.data, b.len, &mi);
	size_t parts = count_str(mi.bodystructure, "\"plain\"");
	CHECK(parts > 0 && parts < MIME_MAX_PARTS);
	check_info(&mi);
	mime_info_free(&mi);
	buf_deinit(&b);

	/* Deep message/rfc822 nesting. */
	buf_init(&b, 0);
	for (int i = 0; i < 100; i++)
		buf_append_str(&b, "Content-Type: message/rfc822\r\n\r\n");
	buf_append_str(&b, "Subject: deep\r\n\r\nbody\r\n");
	mime_parse(b.data, b.len, &mi);
	CHECK_EQ_INT(count_str(mi.bodystructure, "\"rfc822\""), MIME_MAX_DEPTH);
	CHECK_EQ_INT(count_str(mi.bodystructure, "\"octet-stream\""), 1);
	check_info(&mi);
	mime_info_free(&mi);
	buf_deinit(&b);

	/* 10 MB: many parts; one huge header line; many short lines;
	 * deep nesting over a big body. Timings are printed, not
	 * asserted. */
	const size_t target = 10u << 20;
	buf_init(&b, 0);
	buf_append_str(&b, "Subject: big\r\nContent-Type: multipart/mixed; boundary=big\r\n\r\n");
	for (int i = 0; b.len < target; i++) {
		buf_printf(&b, "--big\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
			   "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		for (int k = 0; k < 40; k++)
			buf_append_str(&b, "Line of quoted-printable text with caf=E9 in it, number forty=\r\n");
		buf_append_str(&b, "end\r\n");
	}
	buf_append_str(&b, "--big--\r\n");
	time_parse("10 MB of parts", b.data, b.len);
	buf_deinit(&b);

	buf_init(&b, 0);
	buf_append_str(&b, "Subject: ");
	while (b.len < target)
		buf_append_str(&b, "very long subject line without any fold ");
	buf_append_str(&b, "\r\nX-Fold: a\r\n");
	for (int i = 0; i < 100000; i++)
		buf_append_str(&b, " b\r\n");
	buf_append_str(&b, "\r\nbody\r\n");
	time_parse("10 MB header line", b.data, b.len);
	buf_deinit(&b);

	buf_init(&b, 0);
	for (int i = 0; i < MIME_MAX_DEPTH + 8; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n--d%d\r\n", i, i);
	buf_append_str(&b, "Content-Type: text/plain\r\n\r\n");
	while (b.len < target)
		buf_append_str(&b, "--\r\n--d\r\n-\r\n\r\n");
	time_parse("10 MB of '--' lines under deep nesting", b.data, b.len);
	buf_deinit(&b);

	/* Hostile headers: encoded-word starts that never end, a flood of
	 * quoted parameters and continuations, huge address lists, many
	 * fields. */
	buf_init(&b, 0);
	buf_append_str(&b, "Subject: ");
	while (b.len < target / 4)
		buf_append_str(&b, "=?a?q?x ");
	buf_append_str(&b, "?=\r\nContent-Type: text/plain");
	while (b.len < target / 2)
		buf_append_str(&b, ";a=\"\";b*1*=x;c*0=\"y\"");
	buf_append_str(&b, "\r\nTo: ");
	while (b.len < target * 3 / 4)
		buf_append_str(&b, "a@b, \"q\" <c@d>, g:;, (c) ");
	buf_append_str(&b, "\r\n");
	while (b.len < target)
		buf_append_str(&b, "X-F: =?utf-8?q?a?=\r\n");
	buf_append_str(&b, "\r\nbody\r\n");
	time_parse("10 MB of hostile headers", b.data, b.len);
	struct buf dec;
	buf_init(&dec, 0);
	double t0 = now_sec();
	CHECK(mime_header_decoded(b.data, b.len, KSTR_LIT("Subject"), &dec));
	CHECK(!mime_search_header(b.data, b.len, KSTR_LIT("Subject"),
				  KSTR_LIT("needle")));
	printf("mime: hostile Subject decode and search %.3f s\n", now_sec() - t0);
	buf_deinit(&dec);
	buf_deinit(&b);

	buf_init(&b, 0);
	buf_append_str(&b, "Content-Type: message/rfc822\r\n\r\n");
	for (int i = 0; i < MIME_MAX_DEPTH; i++)
		buf_append_str(&b, "Content-Type: message/rfc822\r\n\r\n");
	while (b.len < target)
		buf_append_str(&b, "\n");
	time_parse("10 MB of empty lines in nested messages", b.data, b.len);
	buf_deinit(&b);
}

int main(void)
{
	test_corpus();
	test_robustness();
	test_sections();
	test_search();
	test_helpers();
	test_body();
	test_limits();
	return test_done("mime");
}
