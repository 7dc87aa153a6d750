/* Tests for kura-bench's own pieces: the resumable response reader (fed
 * at every split position), the tokenizer and response parsers, the
 * histogram, the mbox loader and the message generator. Built by
 * bench/build.sh; run by tests/bench/test_kura_bench.py. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_hist.h"
#include "bench/bench_msg.h"
#include "bench/bench_resp.h"
#include "bench/bench_rng.h"
#include "lib/util.h"
#include "tests/unit/test.h"

#define MAX_RESP 16

/* Feeds s in pieces of `step` bytes (the first piece `split` bytes);
 * collects the responses as C strings. Returns their number or -1. */
static int feed_all(const char *s, size_t split, size_t step, char **out,
		    size_t max)
{
	struct bench_resp_reader r;
	size_t len = strlen(s), off = 0;
	int n = 0;

	bench_resp_reader_init(&r, max);
	while (off < len) {
		size_t piece = off == 0 && split > 0 ? split : step;
		size_t end = KURA_MIN(len, off + piece), pos = off;

		while (pos < end) {
			struct kstr resp;
			size_t used = 0;
			int rc = bench_resp_reader_feed(&r, (const uint8_t *)s + pos,
							end - pos, &used, &resp);

			if (rc < 0) {
				bench_resp_reader_deinit(&r);
				return rc;
			}
			pos += used;
			if (rc == 1 && n < MAX_RESP)
				out[n++] = kstr_dup(resp);
			if (rc == 0 && pos != end) {
				bench_resp_reader_deinit(&r);
				return -1000;
			}
		}
		off = end;
	}
	bench_resp_reader_deinit(&r);
	return n;
}

static void free_all(char **out, int n)
{
	for (int i = 0; i < n; i++)
		free(out[i]);
}

static void test_reader(void)
{
	static const char stream[] =
		"* OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"
		"* 1 FETCH (UID 7 BODY[] {12}\r\nab\r\n{3}\r\ncdef FLAGS (\\Seen))\r\n"
		"* 2 FETCH (BODY[HEADER] {0}\r\n ENVELOPE (NIL {5}\r\nx)\r\ny NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"
		"* OK line ending in a brace {x}\r\n"
		"a1 OK done\n";
	const char *want[5] = {
		"* OK [CAPABILITY IMAP4rev1 UIDPLUS] hi",
		"* 1 FETCH (UID 7 BODY[] {12}\r\nab\r\n{3}\r\ncdef FLAGS (\\Seen))",
		"* 2 FETCH (BODY[HEADER] {0}\r\n ENVELOPE (NIL {5}\r\nx)\r\ny NIL NIL NIL NIL NIL NIL NIL NIL))",
		"* OK line ending in a brace {x}",
		"a1 OK done",
	};
	size_t len = strlen(stream);
	bool all_ok = true;

	for (size_t split = 0; split < len; split++) {
		for (size_t step = 1; step <= 7; step += 3) {
			char *out[MAX_RESP];
			int n = feed_all(stream, split, step, out, 1 << 20);

			if (n != 5) {
				all_ok = false;
				if (n > 0)
					free_all(out, n);
				continue;
			}
			for (int i = 0; i < 5; i++)
				if (strcmp(out[i], want[i]) != 0)
					all_ok = false;
			free_all(out, n);
		}
	}
	CHECK(all_ok);
	/* whole stream in one piece */
	{
		char *out[MAX_RESP];
		int n = feed_all(stream, 0, len, out, 1 << 20);

		CHECK_EQ_INT(n, 5);
		if (n == 5) {
			CHECK_EQ_STR(out[1], want[1]);
			CHECK_EQ_STR(out[4], want[4]);
		}
		if (n > 0)
			free_all(out, n);
	}
	/* limits */
	{
		char *out[MAX_RESP];

		CHECK_EQ_INT(feed_all("* 1 FETCH (BODY[] {100}\r\n", 0, 100, out, 64),
			     -EMSGSIZE);
		CHECK_EQ_INT(feed_all("* 1 FETCH (BODY[] {99999999999999999999}\r\n",
				      0, 100, out, 1 << 20), -EPROTO);
		CHECK_EQ_INT(feed_all("* OK aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
				      0, 3, out, 16), -EMSGSIZE);
	}
	/* a literal whose content ends in "{5}" before CRLF is data */
	{
		char *out[MAX_RESP];
		int n = feed_all("* 1 FETCH (BODY[] {3}\r\n{5}\r\na OK\r\n", 0, 2,
				 out, 1 << 20);

		CHECK_EQ_INT(n, 2);
		if (n > 0)
			free_all(out, n);
	}
}

static void test_parse(void)
{
	struct bench_resp r;
	struct bench_fetch f;
	struct kstr mbox;
	unsigned have;
	uint64_t vals[3];

	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("a12 OK [APPENDUID 3 9] done"), &r), 0);
	CHECK(r.kind == BENCH_RESP_TAGGED);
	CHECK(kstr_eq(r.tag, KSTR_LIT("a12")));
	CHECK(kstr_eq_ci(r.word, "ok"));
	CHECK(kstr_eq(r.code, KSTR_LIT("APPENDUID 3 9")));
	CHECK(kstr_eq(r.rest, KSTR_LIT("done")));

	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("* 17 EXISTS"), &r), 0);
	CHECK(r.kind == BENCH_RESP_UNTAGGED && r.has_num && r.num == 17);
	CHECK(kstr_eq_ci(r.word, "EXISTS"));
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("+ idling"), &r), 0);
	CHECK(r.kind == BENCH_RESP_CONT);
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("+"), &r), 0);
	CHECK(r.kind == BENCH_RESP_CONT);
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("* OK [UIDVALIDITY 5"), &r), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("*"), &r), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("* 12x FETCH"), &r), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT("tagonly"), &r), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse(KSTR_LIT(""), &r), -EPROTO);

	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT(
		"(UID 7 FLAGS (\\Seen \\Deleted $Junk) RFC822.SIZE 5 "
		"INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
		"ENVELOPE (\"date\" {3}\r\nsub ((\"A\" NIL \"a\" \"b.c\")) NIL NIL "
		"((NIL NIL \"x\" \"y\")(NIL NIL \"z\" \"w\")) NIL NIL NIL \"<id>\") "
		"BODY[] {5}\r\nhello BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL "
		"\"7bit\" 5 1) BODY[HEADER.FIELDS (SUBJECT)] {2}\r\n\r\n "
		"MODSEQ (12))"), &f), 0);
	CHECK_EQ_INT(f.items, BENCH_FI_UID | BENCH_FI_FLAGS | BENCH_FI_SIZE |
		     BENCH_FI_INTERNALDATE | BENCH_FI_ENVELOPE | BENCH_FI_BODY);
	CHECK_EQ_INT(f.uid, 7);
	CHECK_EQ_INT(f.flags, BENCH_FLAG_SEEN | BENCH_FLAG_DELETED);
	CHECK(kstr_eq(f.body, KSTR_LIT("hello")));
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT(
		"(BODY[HEADER] \"a: b\r\n\r\n\")"), &f), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT(
		"(BODY[HEADER] NIL UID 3)"), &f), 0);
	CHECK(f.header_nil && (f.items & BENCH_FI_HEADER));
	/* envelope with 9 fields, address that is not a list */
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT(
		"(ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL))"), &f), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT(
		"(ENVELOPE (NIL NIL \"x\" NIL NIL NIL NIL NIL NIL NIL))"), &f), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT("(UID 0)"), &f), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT("(UID 5"), &f), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT("(BODY[] {9}\r\nab)"), &f),
		     -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_fetch(KSTR_LIT("UID 5"), &f), -EPROTO);
	/* deep nesting is refused, not recursed into */
	{
		char deep[300];

		memcpy(deep, "(X ", 3);
		memset(deep + 3, '(', 200);
		memset(deep + 203, ')', 90);
		deep[293] = '\0';
		CHECK_EQ_INT(bench_resp_parse_fetch(kstr_cstr(deep), &f), -EPROTO);
	}

	CHECK_EQ_INT(bench_resp_parse_status(KSTR_LIT(
		"\"INBOX\" (MESSAGES 3 UNSEEN 1 UIDNEXT 9)"), &mbox, &have, vals), 0);
	CHECK(kstr_eq(mbox, KSTR_LIT("INBOX")));
	CHECK_EQ_INT(have, 7);
	CHECK_EQ_INT(vals[2], 9);
	CHECK_EQ_INT(bench_resp_parse_status(KSTR_LIT("INBOX (MESSAGES 3)"),
					     &mbox, &have, vals), 0);
	CHECK_EQ_INT(have, 1);
	CHECK_EQ_INT(bench_resp_parse_status(KSTR_LIT("INBOX (MESSAGES x)"),
					     &mbox, &have, vals), -EPROTO);
	CHECK_EQ_INT(bench_resp_parse_list(KSTR_LIT(
		"(\\HasNoChildren) \"/\" INBOX"), &mbox), 0);
	CHECK(kstr_eq(mbox, KSTR_LIT("INBOX")));
	CHECK_EQ_INT(bench_resp_parse_list(KSTR_LIT(
		"() NIL {5}\r\nINBOX"), &mbox), 0);
	CHECK(kstr_eq(mbox, KSTR_LIT("INBOX")));
	CHECK_EQ_INT(bench_resp_parse_list(KSTR_LIT("\"/\" INBOX"), &mbox), -EPROTO);
}

static void test_hist(void)
{
	struct bench_hist h;
	uint64_t p50, p99;

	bench_hist_reset(&h);
	CHECK_EQ_INT(bench_hist_percentile(&h, 50), 0);
	for (uint64_t v = 1; v <= 10000; v++)
		bench_hist_add(&h, v);
	p50 = bench_hist_percentile(&h, 50);
	p99 = bench_hist_percentile(&h, 99);
	CHECK(p50 >= 5000 && p50 <= 5000 + 5000 / 64 + 1);
	CHECK(p99 >= 9900 && p99 <= 9900 + 9900 / 64 + 1);
	CHECK_EQ_INT(bench_hist_percentile(&h, 100), 10000);
	CHECK_EQ_INT(h.min, 1);
	CHECK_EQ_INT(bench_hist_percentile(&h, 0.001), 1);
	bench_hist_reset(&h);
	bench_hist_add(&h, 77);
	CHECK_EQ_INT(bench_hist_percentile(&h, 50), 77);
	bench_hist_add(&h, UINT64_MAX);
	CHECK(bench_hist_percentile(&h, 99) == UINT64_MAX);
}

static void test_mbox(void)
{
	char path[] = "/tmp/kura-bench-test-XXXXXX";
	int fd = mkstemp(path);
	static const char mbox[] =
		"From a@b Mon Jan  1 00:00:00 2024\n"
		"Subject: one\n\nbody one\n>From here\n>>From there\n\n"
		"From c@d Mon Jan  1 00:00:00 2024\r\n"
		"Subject: two\r\n\r\nbody two\r\n\r\n\r\n";
	struct bench_msg_pool pool;
	const char *err = NULL;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, mbox, strlen(mbox)) == (ssize_t)strlen(mbox));
	close(fd);
	CHECK_EQ_INT(bench_msg_pool_load_mbox(&pool, path, &err), 0);
	CHECK_EQ_INT(pool.count, 2);
	if (pool.count == 2) {
		static const char one[] = "Subject: one\r\n\r\nbody one\r\nFrom here\r\n>From there\r\n";
		static const char two[] = "Subject: two\r\n\r\nbody two\r\n\r\n";

		CHECK(pool.msgs[0].len == strlen(one) &&
		      memcmp(pool.msgs[0].data, one, strlen(one)) == 0);
		CHECK(pool.msgs[1].len == strlen(two) &&
		      memcmp(pool.msgs[1].data, two, strlen(two)) == 0);
	}
	bench_msg_pool_free(&pool);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, "Subject: x\n", 11) == 11);
	if (fd >= 0)
		close(fd);
	CHECK_EQ_INT(bench_msg_pool_load_mbox(&pool, path, &err), -EINVAL);
	unlink(path);
	CHECK(bench_msg_pool_load_mbox(&pool, path, &err) < 0);
}

static void test_generate(void)
{
	struct bench_msg_pool a, b;
	uint64_t rng = bench_rng_seed(1, 2);
	size_t small_picks = 0, total = 0;
	bool crlf_only = true, same = true;

	bench_msg_pool_generate(&a, 42, 0);
	bench_msg_pool_generate(&b, 42, 0);
	CHECK_EQ_INT(a.count, 200);
	CHECK(a.count == b.count);
	for (size_t i = 0; i < a.count && i < b.count; i++)
		if (a.msgs[i].len != b.msgs[i].len ||
		    memcmp(a.msgs[i].data, b.msgs[i].data, a.msgs[i].len) != 0)
			same = false;
	CHECK(same);
	for (size_t i = 0; i < a.count; i++) {
		const struct bench_msg *m = &a.msgs[i];

		for (size_t j = 0; j < m->len; j++)
			if (m->data[j] == '\n' && (j == 0 || m->data[j - 1] != '\r'))
				crlf_only = false;
		total += m->len;
	}
	CHECK(crlf_only);
	CHECK(total > 15u << 20 && total < 40u << 20);
	CHECK(a.small_count >= 60);
	for (int i = 0; i < 1000; i++) {
		const struct bench_msg *m = bench_msg_pool_pick(&a, &rng, false);

		small_picks += m->len <= 10 * 1024;
	}
	/* about 60 % of the mix is below 10 KiB */
	CHECK(small_picks > 500 && small_picks < 700);
	CHECK(bench_msg_pool_pick(&a, &rng, true)->len <= BENCH_MSG_SMALL_MAX);
	bench_msg_pool_free(&a);
	bench_msg_pool_free(&b);
	bench_msg_pool_generate(&a, 1, 4096);
	CHECK(a.count == 32);
	CHECK(a.msgs[0].len >= 4096 && a.msgs[0].len < 4096 + 200);
	bench_msg_pool_free(&a);
}

int main(void)
{
	test_reader();
	test_parse();
	test_hist();
	test_mbox();
	test_generate();
	return test_done("bench_resp");
}
