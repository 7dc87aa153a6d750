/* kura-bench: an event-driven IMAP load generator.
 *
 * One process, one thread, one epoll loop, non-blocking sockets (optional
 * implicit TLS through OpenSSL). Each session is a state machine that
 * sends one command at a time, assembles the responses with a resumable
 * reader (literals of any size), checks every response against what the
 * command must return, and records the latency of the command in a
 * log-bucketed histogram. A wrong or missing response, BAD/NO, a timeout
 * or a disconnect is an error of that command type, never an op.
 * See bench/README.md for the profiles and the checks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench/bench_hist.h"
#include "bench/bench_msg.h"
#include "bench/bench_resp.h"
#include "bench/bench_rng.h"
#include "lib/kstr.h"
#include "lib/util.h"

#define BENCH_VERSION "1"
#define RESP_MAX (256u << 20)		/* one response, literals included */
#define LINE_CAP 2048			/* one command line */
#define MINE_MAX 64			/* own APPENDs remembered for EXPUNGE */
#define ENVELOPE_WINDOW 50
#define MODEL_MAX 20000000u		/* messages in one mailbox view */
#define RECONNECT_DELAY_US 100000
#define CLOSE_WAIT_US 1000000
#define SCAN_EVERY_US 20000
#define MAX_SAMPLES 20
#define READ_ROUNDS 8
#define FLAGS_KNOWN 0x80

enum cmd_type {
	CMD_CONNECT = 0,	/* TCP (+ TLS) connect up to the greeting */
	CMD_LOGIN,
	CMD_CAPABILITY,
	CMD_SELECT,
	CMD_LIST,
	CMD_STATUS,
	CMD_FETCH_FLAGS,
	CMD_FETCH_ENVELOPE,
	CMD_FETCH_BODY,
	CMD_FETCH_HEADER,
	CMD_STORE,
	CMD_APPEND,
	CMD_EXPUNGE,
	CMD_NOOP,
	CMD_IDLE,		/* IDLE up to the continuation */
	CMD_DONE,		/* DONE up to IDLE's tagged OK */
	CMD_LOGOUT,
	CMD_COUNT,
};

static const struct {
	const char *key;	/* JSON */
	const char *label;	/* table */
} cmd_info[CMD_COUNT] = {
	[CMD_CONNECT] = { "connect", "CONNECT" },
	[CMD_LOGIN] = { "login", "LOGIN" },
	[CMD_CAPABILITY] = { "capability", "CAPABILITY" },
	[CMD_SELECT] = { "select", "SELECT" },
	[CMD_LIST] = { "list", "LIST" },
	[CMD_STATUS] = { "status", "STATUS" },
	[CMD_FETCH_FLAGS] = { "fetch_flags", "FETCH flags" },
	[CMD_FETCH_ENVELOPE] = { "fetch_envelope", "FETCH envelope" },
	[CMD_FETCH_BODY] = { "fetch_body", "FETCH body" },
	[CMD_FETCH_HEADER] = { "fetch_header", "FETCH header" },
	[CMD_STORE] = { "store", "STORE" },
	[CMD_APPEND] = { "append", "APPEND" },
	[CMD_EXPUNGE] = { "expunge", "EXPUNGE" },
	[CMD_NOOP] = { "noop", "NOOP" },
	[CMD_IDLE] = { "idle", "IDLE" },
	[CMD_DONE] = { "done", "DONE" },
	[CMD_LOGOUT] = { "logout", "LOGOUT" },
};

enum err_kind {
	ERR_NO = 0,
	ERR_BAD,
	ERR_INVALID,		/* wrong or missing response data */
	ERR_TIMEOUT,
	ERR_DISCONNECT,
	ERR_KIND_COUNT,
};

static const char *const err_kind_names[ERR_KIND_COUNT] = {
	"no", "bad", "invalid", "timeout", "disconnect",
};

struct cmd_stats {
	uint64_t ops, errors;
	uint64_t err_kind[ERR_KIND_COUNT];
	struct bench_hist hist;
};

enum profile {
	PROFILE_LOGIN = 0,
	PROFILE_PERSISTENT,
	PROFILE_APPEND,
	PROFILE_FETCH,
	PROFILE_IDLE,
};

static const char *const profile_names[] = {
	"login", "persistent", "append", "fetch", "idle",
};

enum role {
	ROLE_MAIN = 0,		/* the profile's load sessions */
	ROLE_IDLE,		/* --idle-conns holders */
	ROLE_SETUP,		/* fill mailboxes before the run */
};

enum sess_state {
	SS_OFF = 0,		/* not part of the current phase */
	SS_WAIT,		/* reconnect at wake_at */
	SS_QUEUED,		/* in the connect queue */
	SS_CONNECTING,
	SS_TLS,
	SS_GREETING,
	SS_CMD,			/* a command is in flight */
	SS_IDLING,		/* in IDLE, waiting for the end */
	SS_THINK,		/* --think pause before the next command */
	SS_CLOSING,		/* after LOGOUT: waits for the server to close */
	SS_DONE,		/* finished for good */
};

/* What the untagged data seen during a command included. */
enum seen_bit {
	SEEN_EXISTS = 1 << 0,
	SEEN_FLAGS = 1 << 1,
	SEEN_UIDVALIDITY = 1 << 2,
	SEEN_UIDNEXT = 1 << 3,
	SEEN_LIST_INBOX = 1 << 4,
	SEEN_STATUS = 1 << 5,
	SEEN_BYE = 1 << 6,
	SEEN_CAPS = 1 << 7,
};

/* How FETCH responses are matched to what a command asked for. */
enum expect_kind {
	EXP_NONE = 0,
	EXP_SEQ,		/* keys are sequence numbers */
	EXP_UID,		/* keys are UIDs */
	EXP_GONE,		/* keys are UIDs that must be expunged */
};

struct expect {
	uint32_t key;
	uint8_t got;		/* BENCH_FI_* received */
	bool removed;		/* expunged while the command ran */
};

/* The persistent profile's mix; weights in percent. */
enum op {
	OP_NOOP = 0,
	OP_STATUS,
	OP_LIST,
	OP_SELECT,
	OP_FETCH_FLAGS,
	OP_FETCH_ENVELOPE,
	OP_FETCH_BODY,
	OP_STORE_SEEN,
	OP_APPEND,
	OP_EXPUNGE,
	OP_COUNT,
};

static const unsigned persistent_mix[OP_COUNT] = {
	[OP_NOOP] = 15,
	[OP_STATUS] = 8,
	[OP_LIST] = 4,
	[OP_SELECT] = 4,
	[OP_FETCH_FLAGS] = 8,
	[OP_FETCH_ENVELOPE] = 15,
	[OP_FETCH_BODY] = 20,
	[OP_STORE_SEEN] = 10,
	[OP_APPEND] = 10,
	[OP_EXPUNGE] = 6,
};

struct out_seg {
	const uint8_t *p;
	size_t len;
};

struct sess {
	unsigned idx;
	uint32_t gen;		/* bumped per connection: stale epoll events */
	enum role role;
	enum sess_state st;
	int fd;
	SSL *ssl;
	uint32_t ev_mask;
	bool tls_want_write;	/* SSL_read or the handshake needs POLLOUT */
	uint64_t rng;
	uint64_t user_num;
	char *user, *pass;
	uint64_t wake_at;
	uint64_t conn_start;
	unsigned attempts;	/* setup sessions give up after a few */
	struct bench_resp_reader rd;

	/* output: segments, the ones from `hold` on wait for "+" */
	struct out_seg segs[6];
	unsigned nsegs, cur;
	size_t cur_off;
	int hold;
	char line[LINE_CAP];
	char msgid[128];

	/* server state as this session knows it */
	bool cap_uidplus, cap_literalplus, cap_idle;
	bool logged_in, caps_after_login, selected, synced;
	bool fetched_once, logout_sent, idle_done_ok, healthy, reached_idle;
	bool expunge_pending;	/* STORE \Deleted done, EXPUNGE next */
	uint64_t setup_base, setup_added;	/* setup: count at SELECT, APPENDs */
	unsigned cmds_in_session;
	uint32_t *uids;		/* seq -> UID (0 = not known yet) */
	uint8_t *mflags;	/* seq -> BENCH_FLAG_* | FLAGS_KNOWN */
	size_t count, cap, fcap;
	uint64_t uidvalidity;
	uint32_t mine[MINE_MAX];
	size_t nmine;

	/* the command in flight */
	enum cmd_type cmd;
	char tag[16];
	uint32_t tagno;
	uint64_t cmd_start;
	bool uncounted;		/* wind-down LOGOUT */
	unsigned seen;
	enum expect_kind exp_kind;
	unsigned want_items;
	unsigned want_flag;
	struct expect *exp;
	size_t nexp, exp_cap;
	uint64_t append_uid, append_validity;
	bool append_code;
	int err_kind;		/* -1: no check failed */
	char err[200];
	char bye[120];
};

static struct {
	/* options */
	const char *host;
	unsigned port;
	bool tls;
	const char *user_pattern, *pass_pattern;
	uint64_t user_count, user_start;
	unsigned clients, idle_conns;
	double duration, warmup, timeout;
	uint64_t seed;
	enum profile profile;
	const char *mbox, *json_path;
	size_t msg_size;
	unsigned prefill, fetch_window, connect_conc, session_cmds;
	double think_ms, progress;
	bool verbose, quiet;

	/* runtime */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	SSL_CTX *ssl_ctx;
	int epfd;
	struct sess *sess;
	size_t nsess;
	size_t setup_first, setup_n, idle_first, idle_n, main_first, main_n;
	struct cmd_stats stats[CMD_COUNT];
	struct cmd_stats setup_stats[CMD_COUNT];
	struct cmd_stats idle_stats[CMD_COUNT];	/* the --idle-conns holders */
	uint64_t now;
	uint64_t t_meas, t_end;	/* counting window; 0 until the main phase */
	bool stopping;
	unsigned *connq;
	size_t cq_head, cq_len;
	unsigned connecting;
	struct bench_msg_pool pool;
	uint64_t append_seq;
	uint8_t rbuf[256 * 1024];
	uint64_t bytes_in, bytes_out;
	uint64_t connections;
	uint64_t idle_notifications, idle_dropped;
	double idle_establish_s;
	char *samples[MAX_SAMPLES];
	unsigned nsamples;
} B;

static volatile sig_atomic_t got_sigint;

static void sess_next(struct sess *s);
static void sess_lost(struct sess *s, enum err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sess_read(struct sess *s);
static void pump_connects(void);

/* ------------------------------------------------------------ helpers */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kura-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static bool alive(const struct sess *s, uint32_t gen)
{
	return s->gen == gen && s->fd >= 0;
}

/* Expands %d (the user number), %s (the user name, when given) and %%
 * of a user or password pattern. */
static char *expand_pattern(const char *pat, uint64_t num, const char *user)
{
	size_t cap = strlen(pat) + 64 + (user ? strlen(user) * 4 : 0);
	char *out = xmalloc(cap), *o = out;

	for (const char *p = pat; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == 'd') {
			o += snprintf(o, cap - (size_t)(o - out), "%" PRIu64, num);
			p++;
		} else if (p[0] == '%' && p[1] == 's' && user != NULL) {
			size_t n = strlen(user);

			if ((size_t)(o - out) + n + 1 > cap)
				break;
			memcpy(o, user, n);
			o += n;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			*o++ = '%';
			p++;
		} else {
			*o++ = *p;
		}
		if ((size_t)(o - out) + 32 > cap)
			break;
	}
	*o = '\0';
	return out;
}

/* Appends an IMAP quoted string to the command line. */
static size_t put_quoted(char *o, size_t room, const char *s)
{
	size_t n = 0;

	if (room < 3)
		return 0;
	o[n++] = '"';
	for (; *s != '\0' && n + 3 < room; s++) {
		if (*s == '"' || *s == '\\')
			o[n++] = '\\';
		o[n++] = *s;
	}
	o[n++] = '"';
	o[n] = '\0';
	return n;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Writes sorted uids[0..n) as an IMAP sequence set ("1:3,7"). */
static void put_set(char *o, size_t room, const uint32_t *uids, size_t n)
{
	size_t len = 0;

	o[0] = '\0';
	for (size_t i = 0; i < n && len + 24 < room;) {
		size_t j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			len += (size_t)snprintf(o + len, room - len, "%s%u:%u",
						len ? "," : "", uids[i], uids[j]);
		else
			len += (size_t)snprintf(o + len, room - len, "%s%u",
						len ? "," : "", uids[i]);
		i = j + 1;
	}
}

/* ------------------------------------------------------------ statistics */

static bool in_window(void)
{
	return B.t_meas != 0 && B.now >= B.t_meas && B.now < B.t_end;
}

static struct cmd_stats *stats_for(struct sess *s)
{
	if (s->role == ROLE_SETUP)
		return B.setup_stats;
	if (s->uncounted)
		return NULL;
	if (s->role == ROLE_IDLE)
		return B.idle_stats;
	if (in_window())
		return B.stats;
	return NULL;
}

static void add_sample(const char *text)
{
	for (unsigned i = 0; i < B.nsamples; i++)
		if (strcmp(B.samples[i], text) == 0)
			return;
	if (B.nsamples < MAX_SAMPLES)
		B.samples[B.nsamples++] = xstrdup(text);
}

static void record_op(struct sess *s, enum cmd_type t, uint64_t start)
{
	struct cmd_stats *st = stats_for(s);

	if (st == NULL)
		return;
	st[t].ops++;
	bench_hist_add(&st[t].hist, B.now - start);
}

static void record_error(struct sess *s, enum cmd_type t, enum err_kind kind,
			 const char *why)
{
	struct cmd_stats *st = stats_for(s);
	char text[320];

	if (st == NULL)
		return;
	st[t].errors++;
	st[t].err_kind[kind]++;
	snprintf(text, sizeof(text), "%s%s: %s: %s",
		 s->role == ROLE_SETUP ? "setup " : "", cmd_info[t].label,
		 err_kind_names[kind], why);
	add_sample(text);
	if (B.verbose)
		fprintf(stderr, "kura-bench: session %u (%s): %s\n", s->idx,
			s->user, text);
}

/* Marks the command in flight as failed (first reason wins). */
static void check_fail(struct sess *s, enum err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check_fail(struct sess *s, enum err_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (s->err_kind >= 0)
		return;
	s->err_kind = (int)kind;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ mailbox model */

static void model_reset(struct sess *s)
{
	s->count = 0;
	s->uidvalidity = 0;
}

static bool model_grow(struct sess *s, uint64_t n)
{
	if (n > MODEL_MAX) {
		check_fail(s, ERR_INVALID, "message count %" PRIu64
			   " beyond the bench's limit", n);
		return false;
	}
	if (n > s->cap)
		xgrow((void **)&s->uids, &s->cap, (size_t)n, sizeof(*s->uids));
	if (n > s->fcap)
		xgrow((void **)&s->mflags, &s->fcap, (size_t)n, sizeof(*s->mflags));
	for (size_t i = s->count; i < n; i++) {
		s->uids[i] = 0;
		s->mflags[i] = 0;
	}
	if (n > s->count)
		s->count = (size_t)n;
	return true;
}

static struct expect *exp_find(struct sess *s, uint32_t key)
{
	size_t lo = 0, hi = s->nexp;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->exp[mid].key == key)
			return &s->exp[mid];
		if (s->exp[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void model_expunge(struct sess *s, uint64_t seq)
{
	uint32_t uid;

	if (seq == 0 || seq > s->count) {
		check_fail(s, ERR_INVALID, "EXPUNGE %" PRIu64 " but only %zu "
			   "messages exist", seq, s->count);
		return;
	}
	uid = s->uids[seq - 1];
	memmove(&s->uids[seq - 1], &s->uids[seq],
		(s->count - seq) * sizeof(*s->uids));
	memmove(&s->mflags[seq - 1], &s->mflags[seq],
		(s->count - seq) * sizeof(*s->mflags));
	s->count--;
	if (s->exp_kind == EXP_SEQ) {
		size_t o = 0;

		for (size_t i = 0; i < s->nexp; i++) {
			if (s->exp[i].key == seq)
				continue;
			s->exp[o] = s->exp[i];
			if (s->exp[o].key > seq)
				s->exp[o].key--;
			o++;
		}
		s->nexp = o;
	} else if ((s->exp_kind == EXP_UID || s->exp_kind == EXP_GONE) &&
		   uid != 0) {
		struct expect *e = exp_find(s, uid);

		if (e != NULL)
			e->removed = true;
	}
	for (size_t i = 0; i < s->nmine; i++) {
		if (s->mine[i] == uid) {
			s->mine[i] = s->mine[--s->nmine];
			break;
		}
	}
}

static void exp_reset(struct sess *s, enum expect_kind kind, unsigned want)
{
	s->exp_kind = kind;
	s->want_items = want;
	s->want_flag = 0;
	s->nexp = 0;
}

static void exp_add(struct sess *s, uint32_t key)
{
	xgrow((void **)&s->exp, &s->exp_cap, s->nexp + 1, sizeof(*s->exp));
	s->exp[s->nexp].key = key;
	s->exp[s->nexp].got = 0;
	s->exp[s->nexp].removed = false;
	s->nexp++;
}

/* STORE +FLAGS: a message known to carry the flag already needs no
 * FETCH response, since servers (Dovecot, for one) send none when the
 * flags did not change. Flags changed by others reach this session as
 * FETCH responses, at the latest during the STORE itself. */
static void exp_presatisfy(struct sess *s)
{
	for (size_t i = 0; i < s->count; i++) {
		struct expect *e;

		if (s->uids[i] == 0 || !(s->mflags[i] & FLAGS_KNOWN) ||
		    !(s->mflags[i] & s->want_flag))
			continue;
		e = exp_find(s, s->uids[i]);
		if (e != NULL)
			e->got |= BENCH_FI_FLAGS;
	}
}

/* A known UID picked at random, 0 if none is known. */
static uint32_t model_random_uid(struct sess *s)
{
	size_t start;

	if (s->count == 0)
		return 0;
	start = (size_t)bench_rng_below(&s->rng, s->count);
	for (size_t i = 0; i < s->count; i++) {
		uint32_t uid = s->uids[(start + i) % s->count];

		if (uid != 0)
			return uid;
	}
	return 0;
}

/* ------------------------------------------------------------ output */

static void out_reset(struct sess *s)
{
	s->nsegs = 0;
	s->cur = 0;
	s->cur_off = 0;
	s->hold = -1;
}

static void out_add(struct sess *s, const void *p, size_t len)
{
	if (s->nsegs < ARRAY_SIZE(s->segs)) {
		s->segs[s->nsegs].p = p;
		s->segs[s->nsegs].len = len;
		s->nsegs++;
	}
}

static unsigned out_limit(const struct sess *s)
{
	return s->hold >= 0 ? (unsigned)s->hold : s->nsegs;
}

static bool out_pending(const struct sess *s)
{
	return s->cur < out_limit(s);
}

static void out_advance(struct sess *s, size_t n)
{
	B.bytes_out += n;
	while (n > 0 && s->cur < s->nsegs) {
		size_t left = s->segs[s->cur].len - s->cur_off;

		if (n < left) {
			s->cur_off += n;
			return;
		}
		n -= left;
		s->cur++;
		s->cur_off = 0;
	}
}

/* Writes what can be written. False when the session was lost. */
static bool sess_flush(struct sess *s)
{
	while (out_pending(s)) {
		if (s->segs[s->cur].len == s->cur_off) {
			s->cur++;
			s->cur_off = 0;
			continue;
		}
		if (s->ssl != NULL) {
			const struct out_seg *g = &s->segs[s->cur];
			size_t len = g->len - s->cur_off;
			int r;

			if (len > INT_MAX)
				len = INT_MAX;
			ERR_clear_error();
			r = SSL_write(s->ssl, g->p + s->cur_off, (int)len);
			if (r > 0) {
				out_advance(s, (size_t)r);
				continue;
			}
			switch (SSL_get_error(s->ssl, r)) {
			case SSL_ERROR_WANT_WRITE:
			case SSL_ERROR_WANT_READ:
				return true;
			default:
				sess_lost(s, ERR_DISCONNECT, "TLS write failed");
				return false;
			}
		} else {
			struct iovec iov[ARRAY_SIZE(s->segs)];
			struct msghdr mh;
			unsigned n = 0, lim = out_limit(s);
			ssize_t r;

			for (unsigned i = s->cur; i < lim; i++, n++) {
				size_t off = i == s->cur ? s->cur_off : 0;

				iov[n].iov_base = (void *)(s->segs[i].p + off);
				iov[n].iov_len = s->segs[i].len - off;
			}
			memset(&mh, 0, sizeof(mh));
			mh.msg_iov = iov;
			mh.msg_iovlen = n;
			r = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (r < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return true;
				if (errno == EINTR)
					continue;
				sess_lost(s, ERR_DISCONNECT, "send: %s",
					  strerror(errno));
				return false;
			}
			out_advance(s, (size_t)r);
		}
	}
	return true;
}

static void sess_update_events(struct sess *s)
{
	struct epoll_event ev;
	uint32_t want = EPOLLIN;

	if (s->fd < 0)
		return;
	if (s->st == SS_CONNECTING || s->tls_want_write || out_pending(s))
		want |= EPOLLOUT;
	if (want == s->ev_mask)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.u64 = ((uint64_t)s->gen << 32) | s->idx;
	if (epoll_ctl(B.epfd, EPOLL_CTL_MOD, s->fd, &ev) == 0)
		s->ev_mask = want;
}

/* ------------------------------------------------------------ commands */

/* Starts command t: a fresh tag, the line in s->line (printf), queued
 * and flushed. The line gets its CRLF here. */
static void cmd_send(struct sess *s, enum cmd_type t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cmd_prepare(struct sess *s, enum cmd_type t)
{
	s->cmd = t;
	s->tagno++;
	snprintf(s->tag, sizeof(s->tag), "k%u", s->tagno);
	s->cmd_start = B.now;
	s->st = SS_CMD;
	s->seen = 0;
	s->err_kind = -1;
	s->err[0] = '\0';
	s->append_code = false;
	s->uncounted = false;
	s->cmds_in_session++;
	exp_reset(s, EXP_NONE, 0);
	out_reset(s);
}

static void cmd_send(struct sess *s, enum cmd_type t, const char *fmt, ...)
{
	va_list ap;
	int n;

	cmd_prepare(s, t);
	n = snprintf(s->line, sizeof(s->line), "%s ", s->tag);
	va_start(ap, fmt);
	n += vsnprintf(s->line + n, sizeof(s->line) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if ((size_t)n > sizeof(s->line) - 3)
		n = (int)sizeof(s->line) - 3;
	s->line[n++] = '\r';
	s->line[n++] = '\n';
	s->line[n] = '\0';
	out_add(s, s->line, (size_t)n);
	if (sess_flush(s))
		sess_update_events(s);
}

static void cmd_login(struct sess *s)
{
	char args[1200];
	size_t n;

	n = put_quoted(args, sizeof(args) / 2, s->user);
	args[n++] = ' ';
	put_quoted(args + n, sizeof(args) - n, s->pass);
	cmd_send(s, CMD_LOGIN, "LOGIN %s", args);
}

static void cmd_select(struct sess *s)
{
	s->selected = false;
	s->synced = false;
	model_reset(s);
	cmd_send(s, CMD_SELECT, "SELECT INBOX");
}

/* UID FETCH 1:* (FLAGS): learns every UID; checked per sequence number. */
static void cmd_sync(struct sess *s)
{
	size_t n = s->count;

	cmd_send(s, CMD_FETCH_FLAGS, "UID FETCH 1:* (FLAGS)");
	exp_reset(s, EXP_SEQ, BENCH_FI_UID | BENCH_FI_FLAGS);
	for (size_t i = 1; i <= n; i++)
		exp_add(s, (uint32_t)i);
}

/* The login profile's bounded FETCH of flags. */
static void cmd_fetch_flags_seq(struct sess *s)
{
	size_t n = s->count, lo = 1;

	if (B.fetch_window > 0 && n > B.fetch_window)
		lo = n - B.fetch_window + 1;
	if (lo == 1)
		cmd_send(s, CMD_FETCH_FLAGS, "FETCH 1:* (FLAGS)");
	else
		cmd_send(s, CMD_FETCH_FLAGS, "FETCH %zu:* (FLAGS)", lo);
	exp_reset(s, EXP_SEQ, BENCH_FI_FLAGS);
	for (size_t i = lo; i <= n; i++)
		exp_add(s, (uint32_t)i);
}

/* UID FETCH of envelopes of a window of ENVELOPE_WINDOW messages; false
 * when no UID of the window is known. */
static bool cmd_fetch_envelopes(struct sess *s)
{
	uint32_t uids[ENVELOPE_WINDOW];
	size_t n = 0, first = 0;
	char set[ENVELOPE_WINDOW * 12];

	if (s->count > ENVELOPE_WINDOW)
		first = (size_t)bench_rng_below(&s->rng,
						s->count - ENVELOPE_WINDOW + 1);
	for (size_t i = first; i < s->count && n < ENVELOPE_WINDOW; i++)
		if (s->uids[i] != 0)
			uids[n++] = s->uids[i];
	if (n == 0)
		return false;
	qsort(uids, n, sizeof(uids[0]), cmp_u32);
	put_set(set, sizeof(set), uids, n);
	cmd_send(s, CMD_FETCH_ENVELOPE,
		 "UID FETCH %s (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)", set);
	exp_reset(s, EXP_UID, BENCH_FI_UID | BENCH_FI_FLAGS | BENCH_FI_SIZE |
		  BENCH_FI_INTERNALDATE | BENCH_FI_ENVELOPE);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || uids[i] != uids[i - 1])
			exp_add(s, uids[i]);
	return true;
}

static bool cmd_fetch_one(struct sess *s, bool body)
{
	uint32_t uid = model_random_uid(s);

	if (uid == 0)
		return false;
	if (body) {
		cmd_send(s, CMD_FETCH_BODY, "UID FETCH %u (UID RFC822.SIZE BODY.PEEK[])",
			 uid);
		exp_reset(s, EXP_UID, BENCH_FI_UID | BENCH_FI_SIZE | BENCH_FI_BODY);
	} else {
		cmd_send(s, CMD_FETCH_HEADER, "UID FETCH %u (UID BODY.PEEK[HEADER])",
			 uid);
		exp_reset(s, EXP_UID, BENCH_FI_UID | BENCH_FI_HEADER);
	}
	exp_add(s, uid);
	return true;
}

static bool cmd_store_seen(struct sess *s)
{
	uint32_t uid = model_random_uid(s);

	if (uid == 0)
		return false;
	cmd_send(s, CMD_STORE, "UID STORE %u +FLAGS (\\Seen)", uid);
	exp_reset(s, EXP_UID, BENCH_FI_FLAGS);
	s->want_flag = BENCH_FLAG_SEEN;
	exp_add(s, uid);
	exp_presatisfy(s);
	return true;
}

/* Collects the own APPENDs still in the view, sorted. */
static size_t mine_in_view(struct sess *s, uint32_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nmine; i++) {
		for (size_t j = s->count; j > 0; j--) {
			if (s->uids[j - 1] == s->mine[i]) {
				out[n++] = s->mine[i];
				break;
			}
		}
	}
	qsort(out, n, sizeof(*out), cmp_u32);
	return n;
}

static bool cmd_store_deleted(struct sess *s)
{
	uint32_t uids[MINE_MAX];
	char set[MINE_MAX * 12];
	size_t n = mine_in_view(s, uids);

	if (n == 0)
		return false;
	put_set(set, sizeof(set), uids, n);
	cmd_send(s, CMD_STORE, "UID STORE %s +FLAGS (\\Deleted)", set);
	exp_reset(s, EXP_UID, BENCH_FI_FLAGS);
	s->want_flag = BENCH_FLAG_DELETED;
	for (size_t i = 0; i < n; i++)
		exp_add(s, uids[i]);
	exp_presatisfy(s);
	s->expunge_pending = true;
	return true;
}

static void cmd_expunge(struct sess *s)
{
	uint32_t uids[MINE_MAX];
	char set[MINE_MAX * 12];
	size_t n = mine_in_view(s, uids);

	s->expunge_pending = false;
	if (s->cap_uidplus && n > 0) {
		put_set(set, sizeof(set), uids, n);
		cmd_send(s, CMD_EXPUNGE, "UID EXPUNGE %s", set);
	} else {
		cmd_send(s, CMD_EXPUNGE, "EXPUNGE");
	}
	exp_reset(s, EXP_GONE, 0);
	for (size_t i = 0; i < n; i++)
		exp_add(s, uids[i]);
}

static void cmd_append(struct sess *s, bool small)
{
	const struct bench_msg *m = bench_msg_pool_pick(&B.pool, &s->rng, small);
	size_t idlen = 0, total;
	int n;

	cmd_prepare(s, CMD_APPEND);
	if (B.pool.generated)
		idlen = (size_t)snprintf(s->msgid, sizeof(s->msgid),
					 "Message-ID: <%" PRIx64 ".%u.%" PRIu64
					 "@kura-bench>\r\n", B.seed, s->idx,
					 ++B.append_seq);
	total = idlen + m->len;
	n = snprintf(s->line, sizeof(s->line), "%s APPEND INBOX {%zu%s}\r\n",
		     s->tag, total, s->cap_literalplus ? "+" : "");
	out_add(s, s->line, (size_t)n);
	if (!s->cap_literalplus)
		s->hold = (int)s->nsegs;
	if (idlen > 0)
		out_add(s, s->msgid, idlen);
	out_add(s, m->data, m->len);
	out_add(s, "\r\n", 2);
	if (sess_flush(s))
		sess_update_events(s);
}

static void cmd_idle(struct sess *s)
{
	cmd_send(s, CMD_IDLE, "IDLE");
}

static void cmd_logout(struct sess *s, bool counted)
{
	cmd_send(s, CMD_LOGOUT, "LOGOUT");
	s->uncounted = !counted;
	s->logout_sent = true;
}

/* In IDLE: DONE ends it; the tagged OK carries IDLE's tag. */
static void cmd_done(struct sess *s)
{
	s->cmd = CMD_DONE;
	s->cmd_start = B.now;
	s->st = SS_CMD;
	s->seen = 0;
	s->err_kind = -1;
	s->uncounted = false;
	exp_reset(s, EXP_NONE, 0);
	out_reset(s);
	out_add(s, "DONE\r\n", 6);
	if (sess_flush(s))
		sess_update_events(s);
}

/* ------------------------------------------------------------ connections */

static void sess_close(struct sess *s)
{
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->st == SS_CONNECTING || s->st == SS_TLS || s->st == SS_GREETING)
		B.connecting--;
	s->gen++;
	s->ev_mask = 0;
	s->tls_want_write = false;
	out_reset(s);
	bench_resp_reader_reset(&s->rd);
}

static void connq_push(struct sess *s)
{
	s->st = SS_QUEUED;
	B.connq[(B.cq_head + B.cq_len) % B.nsess] = s->idx;
	B.cq_len++;
}

/* Closes and either retires the session or schedules a reconnect. */
static void sess_restart(struct sess *s, uint64_t delay_us)
{
	sess_close(s);
	if (B.stopping || s->role == ROLE_IDLE) {
		s->st = SS_DONE;
		return;
	}
	if (s->role == ROLE_SETUP && ++s->attempts > 3) {
		s->st = SS_DONE;
		return;
	}
	if (delay_us == 0) {
		connq_push(s);
	} else {
		s->st = SS_WAIT;
		s->wake_at = B.now + delay_us;
	}
}

static void sess_reconnect_now(struct sess *s)
{
	sess_close(s);
	if (B.stopping) {
		s->st = SS_DONE;
		return;
	}
	connq_push(s);
	pump_connects();
}

static void sess_lost(struct sess *s, enum err_kind kind, const char *fmt, ...)
{
	char why[240];
	va_list ap;

	if (s->st == SS_CLOSING) {
		sess_reconnect_now(s);
		return;
	}

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (s->bye[0] != '\0' && kind == ERR_DISCONNECT) {
		size_t n = strlen(why);

		snprintf(why + n, sizeof(why) - n, " after BYE %s", s->bye);
	}
	switch (s->st) {
	case SS_CMD:
		record_error(s, s->cmd, kind, why);
		break;
	case SS_CONNECTING:
	case SS_TLS:
	case SS_GREETING:
		record_error(s, CMD_CONNECT, kind, why);
		break;
	case SS_IDLING:
		B.idle_dropped++;
		if (B.verbose)
			fprintf(stderr, "kura-bench: idle session %u dropped: %s\n",
				s->idx, why);
		break;
	default:
		record_error(s, CMD_CONNECT, kind, why);
		break;
	}
	sess_restart(s, RECONNECT_DELAY_US);
}

static void sess_conn_reset(struct sess *s)
{
	s->cap_uidplus = s->cap_literalplus = s->cap_idle = false;
	s->logged_in = s->caps_after_login = false;
	s->selected = s->synced = s->fetched_once = false;
	s->logout_sent = s->expunge_pending = false;
	s->cmds_in_session = 0;
	s->nmine = 0;
	s->bye[0] = '\0';
	model_reset(s);
	bench_resp_reader_reset(&s->rd);
	out_reset(s);
}

static void sess_connect(struct sess *s)
{
	struct epoll_event ev;
	int fd, one = 1;

	sess_conn_reset(s);
	s->uncounted = false;
	s->conn_start = B.now;
	s->cmd = CMD_CONNECT;
	fd = socket(B.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		record_error(s, CMD_CONNECT, ERR_DISCONNECT, strerror(errno));
		s->st = SS_WAIT;
		s->wake_at = B.now + RECONNECT_DELAY_US;
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->fd = fd;
	s->gen++;
	s->st = SS_CONNECTING;
	B.connecting++;
	B.connections++;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u64 = ((uint64_t)s->gen << 32) | s->idx;
	if (epoll_ctl(B.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		sess_lost(s, ERR_DISCONNECT, "epoll_ctl: %s", strerror(errno));
		return;
	}
	s->ev_mask = ev.events;
	if (connect(fd, (struct sockaddr *)&B.addr, B.addrlen) < 0 &&
	    errno != EINPROGRESS)
		sess_lost(s, ERR_DISCONNECT, "connect: %s", strerror(errno));
}

static void pump_connects(void)
{
	while (B.cq_len > 0 && B.connecting < B.connect_conc && !B.stopping) {
		struct sess *s = &B.sess[B.connq[B.cq_head]];

		B.cq_head = (B.cq_head + 1) % B.nsess;
		B.cq_len--;
		if (s->st == SS_QUEUED)
			sess_connect(s);
	}
}

static void sess_tls_step(struct sess *s)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->tls_want_write = false;
		s->st = SS_GREETING;
		sess_read(s);
		return;
	}
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		s->tls_want_write = false;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		s->tls_want_write = true;
		return;
	}
	sess_lost(s, ERR_DISCONNECT, "TLS handshake failed: %s",
		  ERR_reason_error_string(ERR_peek_error()) ?
		  ERR_reason_error_string(ERR_peek_error()) : "connection closed");
}

static void sess_connected(struct sess *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		sess_lost(s, ERR_DISCONNECT, "connect: %s", strerror(err));
		return;
	}
	if (!B.tls) {
		s->st = SS_GREETING;
		return;
	}
	s->ssl = SSL_new(B.ssl_ctx);
	if (s->ssl == NULL)
		die("SSL_new failed");
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_tlsext_host_name(s->ssl, B.host);
	SSL_set_connect_state(s->ssl);
	s->st = SS_TLS;
	sess_tls_step(s);
}

/* ------------------------------------------------------------ responses */

static void parse_caps(struct sess *s, struct kstr text)
{
	const uint8_t *p = text.p, *end = text.p + text.len;

	s->cap_uidplus = s->cap_literalplus = s->cap_idle = false;
	while (p < end) {
		const uint8_t *w = p;
		struct kstr word;

		while (p < end && *p != ' ')
			p++;
		word = kstr_make(w, (size_t)(p - w));
		if (kstr_eq_ci(word, "UIDPLUS"))
			s->cap_uidplus = true;
		else if (kstr_eq_ci(word, "LITERAL+"))
			s->cap_literalplus = true;
		else if (kstr_eq_ci(word, "IDLE"))
			s->cap_idle = true;
		else if (kstr_eq_ci(word, "IMAP4rev1") ||
			 kstr_eq_ci(word, "IMAP4rev2"))
			s->seen |= SEEN_CAPS;
		while (p < end && *p == ' ')
			p++;
	}
}

/* A response code "NAME args": true with args when the name matches. */
static bool code_is(struct kstr code, const char *name, struct kstr *args_r)
{
	size_t n = strlen(name);

	if (code.len < n || !kstr_has_prefix_ci(code, name) ||
	    (code.len > n && code.p[n] != ' '))
		return false;
	*args_r = code.len > n ? kstr_make(code.p + n + 1, code.len - n - 1) :
		  kstr_make(code.p + n, 0);
	return true;
}

static bool parse_u64_word(struct kstr *s, uint64_t *v_r)
{
	size_t n = 0;

	while (n < s->len && s->p[n] != ' ')
		n++;
	if (!kstr_to_u64(kstr_make(s->p, n), v_r))
		return false;
	while (n < s->len && s->p[n] == ' ')
		n++;
	*s = kstr_make(s->p + n, s->len - n);
	return true;
}

static void on_fetch(struct sess *s, uint64_t seq, struct kstr rest)
{
	struct bench_fetch f;
	struct expect *e;
	uint32_t key;
	unsigned items;

	if (bench_resp_parse_fetch(rest, &f) < 0) {
		check_fail(s, ERR_INVALID, "malformed FETCH response for %" PRIu64
			   ": %s", seq, f.error);
		return;
	}
	if (seq == 0) {
		check_fail(s, ERR_INVALID, "FETCH response for message 0");
		return;
	}
	/* a server that skipped EXISTS is still the authority on what
	 * exists; that omission is SELECT's error, not FETCH's */
	if (seq > s->count && !model_grow(s, seq))
		return;
	if (f.items & BENCH_FI_UID) {
		if (s->uids[seq - 1] != 0 && s->uids[seq - 1] != f.uid)
			check_fail(s, ERR_INVALID, "message %" PRIu64 " has UID %"
				   PRIu64 ", was %u", seq, f.uid, s->uids[seq - 1]);
		s->uids[seq - 1] = (uint32_t)f.uid;
	}
	if (f.items & BENCH_FI_FLAGS)
		s->mflags[seq - 1] = (uint8_t)(f.flags | FLAGS_KNOWN);
	if (s->exp_kind == EXP_NONE || s->exp_kind == EXP_GONE)
		return;
	key = s->exp_kind == EXP_SEQ ? (uint32_t)seq :
	      (f.items & BENCH_FI_UID) ? (uint32_t)f.uid : s->uids[seq - 1];
	if (key == 0 || (e = exp_find(s, key)) == NULL)
		return;
	items = f.items;
	if ((s->want_items & BENCH_FI_BODY) && (items & BENCH_FI_BODY)) {
		if (f.body_nil)
			check_fail(s, ERR_INVALID, "BODY[] of UID %u is NIL", key);
		else if ((items & BENCH_FI_SIZE) && f.body.len != f.size)
			check_fail(s, ERR_INVALID, "BODY[] of UID %u has %zu bytes, "
				   "RFC822.SIZE says %" PRIu64, key, f.body.len, f.size);
		else if (f.body.len == 0)
			check_fail(s, ERR_INVALID, "BODY[] of UID %u is empty", key);
	}
	if ((s->want_items & BENCH_FI_HEADER) && (items & BENCH_FI_HEADER)) {
		if (f.header_nil || f.header.len < 4 ||
		    memcmp(f.header.p + f.header.len - 4, "\r\n\r\n", 4) != 0)
			check_fail(s, ERR_INVALID, "BODY[HEADER] of UID %u does not "
				   "end with an empty line", key);
	}
	if (s->want_flag != 0 &&
	    (!(items & BENCH_FI_FLAGS) || !(f.flags & s->want_flag)))
		items &= ~(unsigned)BENCH_FI_FLAGS;
	e->got |= (uint8_t)items;
}

static void on_untagged(struct sess *s, const struct bench_resp *r)
{
	struct kstr args, mbox;

	if (r->has_num) {
		if (kstr_eq_ci(r->word, "EXISTS")) {
			if (r->num < s->count)
				check_fail(s, ERR_INVALID, "EXISTS %" PRIu64 " below "
					   "the %zu messages known", r->num, s->count);
			else
				model_grow(s, r->num);
			s->seen |= SEEN_EXISTS;
		} else if (kstr_eq_ci(r->word, "EXPUNGE")) {
			model_expunge(s, r->num);
		} else if (kstr_eq_ci(r->word, "FETCH")) {
			on_fetch(s, r->num, r->rest);
		}
		return;
	}
	if (kstr_eq_ci(r->word, "CAPABILITY")) {
		parse_caps(s, r->rest);
	} else if (kstr_eq_ci(r->word, "OK")) {
		uint64_t v;

		if (code_is(r->code, "UIDVALIDITY", &args) &&
		    parse_u64_word(&args, &v) && v != 0) {
			s->uidvalidity = v;
			s->seen |= SEEN_UIDVALIDITY;
		} else if (code_is(r->code, "UIDNEXT", &args) &&
			   parse_u64_word(&args, &v)) {
			s->seen |= SEEN_UIDNEXT;
		} else if (code_is(r->code, "CAPABILITY", &args)) {
			parse_caps(s, args);
		}
	} else if (kstr_eq_ci(r->word, "BYE")) {
		s->seen |= SEEN_BYE;
		snprintf(s->bye, sizeof(s->bye), "%.*s",
			 (int)KURA_MIN(r->rest.len, 100), (const char *)r->rest.p);
	} else if (kstr_eq_ci(r->word, "FLAGS")) {
		s->seen |= SEEN_FLAGS;
	} else if (kstr_eq_ci(r->word, "LIST")) {
		if (bench_resp_parse_list(r->rest, &mbox) < 0)
			check_fail(s, ERR_INVALID, "malformed LIST response");
		else if (kstr_eq_ci(mbox, "INBOX"))
			s->seen |= SEEN_LIST_INBOX;
	} else if (kstr_eq_ci(r->word, "STATUS")) {
		unsigned have;
		uint64_t vals[3];

		if (bench_resp_parse_status(r->rest, &mbox, &have, vals) < 0)
			check_fail(s, ERR_INVALID, "malformed STATUS response");
		else if (kstr_eq_ci(mbox, "INBOX") && have == 7)
			s->seen |= SEEN_STATUS;
		else if (kstr_eq_ci(mbox, "INBOX"))
			check_fail(s, ERR_INVALID, "STATUS lacks %s",
				   !(have & 1) ? "MESSAGES" : !(have & 2) ?
				   "UNSEEN" : "UIDNEXT");
	}
}

static const char *item_name(unsigned missing)
{
	static const char *const names[] = {
		"UID", "FLAGS", "ENVELOPE", "RFC822.SIZE", "INTERNALDATE",
		"BODY[]", "BODY[HEADER]",
	};

	for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
		if (missing & (1u << i))
			return names[i];
	return "?";
}

/* What a successful (OK) command must also have returned. */
static void final_checks(struct sess *s, const struct bench_resp *r)
{
	struct kstr args;

	switch (s->cmd) {
	case CMD_SELECT:
		if (!(s->seen & SEEN_EXISTS))
			check_fail(s, ERR_INVALID, "SELECT without EXISTS");
		else if (!(s->seen & SEEN_FLAGS))
			check_fail(s, ERR_INVALID, "SELECT without FLAGS");
		else if (!(s->seen & SEEN_UIDVALIDITY))
			check_fail(s, ERR_INVALID, "SELECT without UIDVALIDITY");
		else if (!(s->seen & SEEN_UIDNEXT))
			check_fail(s, ERR_INVALID, "SELECT without UIDNEXT");
		break;
	case CMD_FETCH_FLAGS:
	case CMD_FETCH_ENVELOPE:
	case CMD_FETCH_BODY:
	case CMD_FETCH_HEADER:
	case CMD_STORE:
		for (size_t i = 0; i < s->nexp; i++) {
			const struct expect *e = &s->exp[i];
			unsigned missing = s->want_items & ~(unsigned)e->got;

			if (e->removed || missing == 0)
				continue;
			if (e->got == 0 && s->want_flag == 0)
				check_fail(s, ERR_INVALID, "no FETCH response for %s %u",
					   s->exp_kind == EXP_SEQ ? "message" : "UID",
					   e->key);
			else if (s->want_flag != 0)
				check_fail(s, ERR_INVALID, "no FLAGS with %s for UID %u",
					   s->want_flag == BENCH_FLAG_SEEN ? "\\Seen" :
					   "\\Deleted", e->key);
			else
				check_fail(s, ERR_INVALID, "no %s for %s %u",
					   item_name(missing),
					   s->exp_kind == EXP_SEQ ? "message" : "UID",
					   e->key);
			break;
		}
		break;
	case CMD_EXPUNGE:
		for (size_t i = 0; i < s->nexp; i++) {
			if (!s->exp[i].removed) {
				check_fail(s, ERR_INVALID, "UID %u (\\Deleted) not "
					   "expunged", s->exp[i].key);
				break;
			}
		}
		break;
	case CMD_APPEND:
		if (code_is(r->code, "APPENDUID", &args)) {
			uint64_t v, u;

			if (!parse_u64_word(&args, &v) || !parse_u64_word(&args, &u) ||
			    v == 0 || u == 0 || u > UINT32_MAX) {
				check_fail(s, ERR_INVALID, "malformed APPENDUID");
			} else {
				s->append_code = true;
				s->append_validity = v;
				s->append_uid = u;
				if (s->selected && s->uidvalidity != 0 &&
				    v != s->uidvalidity)
					check_fail(s, ERR_INVALID, "APPENDUID "
						   "UIDVALIDITY %" PRIu64 " is not "
						   "the selected %" PRIu64, v,
						   s->uidvalidity);
			}
		} else if (s->cap_uidplus) {
			check_fail(s, ERR_INVALID, "OK without APPENDUID although "
				   "UIDPLUS is advertised");
		}
		break;
	case CMD_STATUS:
		if (!(s->seen & SEEN_STATUS))
			check_fail(s, ERR_INVALID, "no STATUS response for INBOX");
		break;
	case CMD_LIST:
		if (!(s->seen & SEEN_LIST_INBOX))
			check_fail(s, ERR_INVALID, "LIST \"\" \"*\" did not list INBOX");
		break;
	case CMD_LOGOUT:
		if (!(s->seen & SEEN_BYE))
			check_fail(s, ERR_INVALID, "LOGOUT without BYE");
		break;
	case CMD_CAPABILITY:
		if (!(s->seen & SEEN_CAPS))
			check_fail(s, ERR_INVALID, "no CAPABILITY with IMAP4rev1");
		break;
	case CMD_IDLE:
		check_fail(s, ERR_INVALID, "IDLE completed without continuation");
		break;
	default:
		break;
	}
}

/* After a command's tagged response: the session's next state. */
static void after_cmd(struct sess *s, bool ok, const struct bench_resp *r)
{
	struct kstr args;

	switch (s->cmd) {
	case CMD_LOGIN:
		if (!ok) {
			sess_restart(s, 1000000);
			return;
		}
		s->logged_in = true;
		if (code_is(r->code, "CAPABILITY", &args)) {
			parse_caps(s, args);
			s->caps_after_login = true;
		}
		break;
	case CMD_CAPABILITY:
		s->caps_after_login = true;
		break;
	case CMD_SELECT:
		if (!ok) {
			sess_restart(s, 1000000);
			return;
		}
		s->selected = true;
		s->setup_base = s->count;
		if (s->count == 0)
			s->synced = true;
		break;
	case CMD_FETCH_FLAGS:
		s->synced = true;
		s->fetched_once = true;
		break;
	case CMD_APPEND:
		if (ok && s->append_code && s->selected &&
		    s->append_validity == s->uidvalidity && s->nmine < MINE_MAX)
			s->mine[s->nmine++] = (uint32_t)s->append_uid;
		break;
	case CMD_STORE:
		/* \Deleted not confirmed: EXPUNGE would only repeat the error */
		if (!ok || s->err_kind >= 0)
			s->expunge_pending = false;
		break;
	case CMD_LOGOUT:
		if (s->role == ROLE_IDLE && ok && s->idle_done_ok &&
		    s->err_kind < 0)
			s->healthy = true;
		if (B.stopping || s->role != ROLE_MAIN) {
			sess_close(s);
			s->st = SS_DONE;
			return;
		}
		/* the server closes first, so TIME_WAIT stays on its side
		 * and a fast login loop does not run out of local ports */
		s->st = SS_CLOSING;
		s->wake_at = B.now + CLOSE_WAIT_US;
		return;
	case CMD_DONE:
		s->idle_done_ok = ok && s->err_kind < 0;
		break;
	case CMD_IDLE:
		/* tagged before "+": IDLE refused */
		cmd_logout(s, s->role == ROLE_IDLE);
		return;
	default:
		break;
	}
	if (s->role == ROLE_MAIN && B.think_ms > 0 && !B.stopping) {
		s->st = SS_THINK;
		s->wake_at = B.now + (uint64_t)(B.think_ms * 1000.0);
		return;
	}
	sess_next(s);
}

static void on_tagged(struct sess *s, const struct bench_resp *r)
{
	bool ok = kstr_eq_ci(r->word, "OK");
	char why[240];

	if (!kstr_eq(r->tag, kstr_cstr(s->tag))) {
		check_fail(s, ERR_INVALID, "tagged response with unknown tag %.*s",
			   (int)KURA_MIN(r->tag.len, 20), (const char *)r->tag.p);
		return;
	}
	if (s->hold >= 0) {
		/* literal refused: its bytes must not be sent */
		s->cur = s->nsegs;
		s->hold = -1;
	}
	if (ok) {
		final_checks(s, r);
	} else {
		enum err_kind kind = kstr_eq_ci(r->word, "NO") ? ERR_NO :
				     kstr_eq_ci(r->word, "BAD") ? ERR_BAD :
				     ERR_INVALID;

		s->err_kind = -1;
		check_fail(s, kind, "%.*s %.*s", (int)KURA_MIN(r->word.len, 10),
			   (const char *)r->word.p, (int)KURA_MIN(r->rest.len, 160),
			   (const char *)r->rest.p);
	}
	if (s->err_kind >= 0) {
		snprintf(why, sizeof(why), "%s", s->err);
		record_error(s, s->cmd, (enum err_kind)s->err_kind, why);
	} else {
		record_op(s, s->cmd, s->cmd_start);
	}
	after_cmd(s, ok, r);
}

static void on_response(struct sess *s, struct kstr line)
{
	struct bench_resp r;

	if (bench_resp_parse(line, &r) < 0) {
		sess_lost(s, ERR_INVALID, "unparsable response \"%.*s\"",
			  (int)KURA_MIN(line.len, 60), (const char *)line.p);
		return;
	}
	switch (s->st) {
	case SS_GREETING:
		if (r.kind == BENCH_RESP_UNTAGGED && kstr_eq_ci(r.word, "OK")) {
			struct kstr args;

			if (code_is(r.code, "CAPABILITY", &args))
				parse_caps(s, args);
			B.connecting--;
			s->st = SS_CMD;	/* for stats_for's sake */
			s->uncounted = false;
			record_op(s, CMD_CONNECT, s->conn_start);
			pump_connects();
			sess_next(s);
			return;
		}
		sess_lost(s, kstr_eq_ci(r.word, "BYE") ? ERR_NO : ERR_INVALID,
			  "greeting \"%.*s\"", (int)KURA_MIN(line.len, 80),
			  (const char *)line.p);
		return;
	case SS_CMD:
		break;
	case SS_IDLING:
		if (r.kind == BENCH_RESP_UNTAGGED) {
			B.idle_notifications++;
			on_untagged(s, &r);
			return;
		}
		if (r.kind == BENCH_RESP_TAGGED) {
			sess_lost(s, ERR_INVALID, "IDLE ended by the server");
			return;
		}
		return;
	case SS_CLOSING:
		return;
	default:
		if (r.kind == BENCH_RESP_UNTAGGED)
			on_untagged(s, &r);
		else
			sess_lost(s, ERR_INVALID, "response outside a command");
		return;
	}
	switch (r.kind) {
	case BENCH_RESP_CONT:
		if (s->cmd == CMD_APPEND && s->hold >= 0) {
			s->hold = -1;
			if (sess_flush(s))
				sess_update_events(s);
		} else if (s->cmd == CMD_IDLE) {
			record_op(s, CMD_IDLE, s->cmd_start);
			s->reached_idle = true;
			s->st = SS_IDLING;
			if (B.stopping)
				cmd_done(s);
		} else {
			check_fail(s, ERR_INVALID, "unexpected continuation");
		}
		return;
	case BENCH_RESP_UNTAGGED:
		on_untagged(s, &r);
		return;
	case BENCH_RESP_TAGGED:
	default:
		on_tagged(s, &r);
		return;
	}
}

static ssize_t sess_recv(struct sess *s, uint8_t *buf, size_t len)
{
	if (s->ssl != NULL) {
		int r, e;

		s->tls_want_write = false;
		ERR_clear_error();
		r = SSL_read(s->ssl, buf, (int)KURA_MIN(len, (size_t)INT_MAX));
		if (r > 0)
			return r;
		e = SSL_get_error(s->ssl, r);
		switch (e) {
		case SSL_ERROR_WANT_READ:
			return -EAGAIN;
		case SSL_ERROR_WANT_WRITE:
			s->tls_want_write = true;
			return -EAGAIN;
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		case SSL_ERROR_SYSCALL:
			return errno != 0 ? -errno : 0;
		default:
			return -EPROTO;
		}
	}
	for (;;) {
		ssize_t r = recv(s->fd, buf, len, MSG_DONTWAIT);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static void sess_read(struct sess *s)
{
	uint32_t gen = s->gen;

	for (int round = 0; round < READ_ROUNDS; round++) {
		ssize_t n = sess_recv(s, B.rbuf, sizeof(B.rbuf));
		size_t off = 0;

		if (n == -EAGAIN)
			return;
		if (n == 0) {
			sess_lost(s, ERR_DISCONNECT, "connection closed by the server");
			return;
		}
		if (n < 0) {
			sess_lost(s, ERR_DISCONNECT, "receive: %s", strerror((int)-n));
			return;
		}
		s->tls_want_write = false;
		B.bytes_in += (uint64_t)n;
		/* the reply to a command sent in an earlier round may be here */
		B.now = time_mono_usec();
		while (off < (size_t)n) {
			struct kstr resp;
			size_t used = 0;
			int rc = bench_resp_reader_feed(&s->rd, B.rbuf + off,
							(size_t)n - off, &used, &resp);

			off += used;
			if (rc < 0) {
				sess_lost(s, ERR_INVALID, "%s",
					  rc == -EMSGSIZE ? "response too large" :
					  "malformed literal length");
				return;
			}
			if (rc == 0)
				break;
			on_response(s, resp);
			if (!alive(s, gen))
				return;
		}
		if (s->ssl == NULL && (size_t)n < sizeof(B.rbuf))
			return;
	}
}

static void sess_event(struct sess *s, uint32_t ev)
{
	uint32_t gen = s->gen;

	switch (s->st) {
	case SS_CONNECTING:
		sess_connected(s);
		break;
	case SS_TLS:
		sess_tls_step(s);
		break;
	default:
		if (out_pending(s) && !sess_flush(s))
			return;
		if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP) ||
		    s->tls_want_write)
			sess_read(s);
		break;
	}
	if (alive(s, gen))
		sess_update_events(s);
}

/* ------------------------------------------------------------ the plan */

static void persistent_step(struct sess *s)
{
	uint64_t w = bench_rng_below(&s->rng, 100);
	enum op op = OP_NOOP;

	if (s->expunge_pending) {
		cmd_expunge(s);
		return;
	}
	for (unsigned i = 0; i < OP_COUNT; i++) {
		if (w < persistent_mix[i]) {
			op = (enum op)i;
			break;
		}
		w -= persistent_mix[i];
	}
	switch (op) {
	case OP_STATUS:
		cmd_send(s, CMD_STATUS, "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)");
		return;
	case OP_LIST:
		cmd_send(s, CMD_LIST, "LIST \"\" \"*\"");
		return;
	case OP_SELECT:
		cmd_select(s);
		return;
	case OP_FETCH_FLAGS:
		if (s->count == 0)
			break;
		cmd_sync(s);
		return;
	case OP_FETCH_ENVELOPE:
		if (cmd_fetch_envelopes(s))
			return;
		break;
	case OP_FETCH_BODY:
		if (cmd_fetch_one(s, true))
			return;
		break;
	case OP_STORE_SEEN:
		if (cmd_store_seen(s))
			return;
		break;
	case OP_EXPUNGE:
		if (cmd_store_deleted(s))
			return;
		break;
	case OP_APPEND:
		break;
	case OP_NOOP:
	default:
		cmd_send(s, CMD_NOOP, "NOOP");
		return;
	}
	/* nothing to work on yet: add a message */
	cmd_append(s, true);
}

static void sess_next(struct sess *s)
{
	bool ending = B.stopping ||
		      (s->role == ROLE_MAIN && B.t_end != 0 && B.now >= B.t_end);

	if (ending) {
		if (s->logged_in && !s->logout_sent) {
			cmd_logout(s, s->role == ROLE_IDLE);
		} else {
			sess_close(s);
			s->st = SS_DONE;
		}
		return;
	}
	if (!s->logged_in) {
		cmd_login(s);
		return;
	}
	if (!s->caps_after_login) {
		cmd_send(s, CMD_CAPABILITY, "CAPABILITY");
		return;
	}
	if (s->role == ROLE_SETUP) {
		if (!s->selected)
			cmd_select(s);
		else if (s->count < B.prefill &&
			 s->setup_base + s->setup_added < B.prefill &&
			 s->setup_added < 2 * (uint64_t)B.prefill) {
			/* counted by attempts too: a server that sends no
			 * EXISTS after APPEND must not make this loop forever */
			s->setup_added++;
			cmd_append(s, false);
		} else {
			cmd_logout(s, true);
		}
		return;
	}
	if (s->role == ROLE_IDLE) {
		if (!s->selected) {
			cmd_select(s);
		} else if (!s->cap_idle) {
			cmd_prepare(s, CMD_IDLE);
			record_error(s, CMD_IDLE, ERR_INVALID,
				     "server does not advertise IDLE");
			cmd_logout(s, true);
		} else {
			cmd_idle(s);
		}
		return;
	}
	if (B.session_cmds > 0 && s->cmds_in_session >= B.session_cmds &&
	    !s->logout_sent) {
		cmd_logout(s, true);
		return;
	}
	switch (B.profile) {
	case PROFILE_LOGIN:
		if (!s->selected)
			cmd_select(s);
		else if (!s->fetched_once && s->count > 0)
			cmd_fetch_flags_seq(s);
		else
			cmd_logout(s, true);
		return;
	case PROFILE_APPEND:
		cmd_append(s, false);
		return;
	case PROFILE_FETCH:
		if (!s->selected)
			cmd_select(s);
		else if (!s->synced)
			cmd_sync(s);
		else if (!cmd_fetch_one(s, bench_rng_below(&s->rng, 2) == 0))
			cmd_sync(s);
		return;
	case PROFILE_PERSISTENT:
	case PROFILE_IDLE:
	default:
		if (!s->selected)
			cmd_select(s);
		else if (!s->synced)
			cmd_sync(s);
		else
			persistent_step(s);
		return;
	}
}

/* ------------------------------------------------------------ the loop */

static void scan(void)
{
	uint64_t timeout_us = (uint64_t)(B.timeout * 1e6);

	for (size_t i = 0; i < B.nsess; i++) {
		struct sess *s = &B.sess[i];

		switch (s->st) {
		case SS_WAIT:
			if (B.now >= s->wake_at) {
				if (B.stopping)
					s->st = SS_DONE;
				else
					connq_push(s);
			}
			break;
		case SS_CONNECTING:
		case SS_TLS:
		case SS_GREETING:
			if (B.now - s->conn_start > timeout_us)
				sess_lost(s, ERR_TIMEOUT, "no greeting within %.0f s",
					  B.timeout);
			break;
		case SS_CMD:
			if (B.now - s->cmd_start > timeout_us)
				sess_lost(s, ERR_TIMEOUT, "no response within %.0f s",
					  B.timeout);
			break;
		case SS_CLOSING:
			if (B.now >= s->wake_at)
				sess_reconnect_now(s);
			break;
		case SS_THINK:
			if (B.now >= s->wake_at) {
				uint32_t gen = s->gen;

				sess_next(s);
				if (alive(s, gen))
					sess_update_events(s);
			}
			break;
		default:
			break;
		}
	}
	pump_connects();
}

static void loop_once(int wait_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(B.epfd, evs, (int)ARRAY_SIZE(evs), wait_ms);

	B.now = time_mono_usec();
	for (int i = 0; i < n; i++) {
		uint32_t idx = (uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		struct sess *s;

		if (idx >= B.nsess)
			continue;
		s = &B.sess[idx];
		if (!alive(s, gen))
			continue;
		/* per event, so a long batch does not inflate latencies */
		B.now = time_mono_usec();
		sess_event(s, evs[i].events);
	}
}

static size_t count_state(size_t first, size_t n, enum sess_state st)
{
	size_t c = 0;

	for (size_t i = first; i < first + n; i++)
		c += B.sess[i].st == st;
	return c;
}

static size_t count_active(size_t first, size_t n)
{
	size_t c = 0;

	for (size_t i = first; i < first + n; i++)
		c += B.sess[i].st != SS_DONE && B.sess[i].st != SS_OFF;
	return c;
}

/* Runs the loop until done() or the deadline. */
static void run_until(bool (*done)(void), uint64_t deadline)
{
	uint64_t next_scan = 0, next_progress = 0;

	for (;;) {
		B.now = time_mono_usec();
		if (B.now >= next_scan) {
			scan();
			next_scan = B.now + SCAN_EVERY_US;
		}
		if (B.progress > 0 && B.t_meas != 0 && B.now >= next_progress) {
			uint64_t ops = 0, errs = 0;

			for (int t = 0; t < CMD_COUNT; t++) {
				ops += B.stats[t].ops;
				errs += B.stats[t].errors;
			}
			if (next_progress != 0)
				fprintf(stderr, "kura-bench: t=%.0fs ops=%" PRIu64
					" errors=%" PRIu64 " sessions=%zu\n",
					(double)(B.now - B.t_meas) / 1e6, ops, errs,
					count_state(0, B.nsess, SS_CMD) +
					count_state(0, B.nsess, SS_IDLING));
			next_progress = B.now + (uint64_t)(B.progress * 1e6);
		}
		if (done() || B.now >= deadline)
			return;
		if (got_sigint && !B.stopping && B.t_end > B.now) {
			B.t_end = B.now;
			return;
		}
		loop_once(10);
	}
}

static bool setup_done(void)
{
	return count_active(B.setup_first, B.setup_n) == 0;
}

static bool idle_established(void)
{
	for (size_t i = B.idle_first; i < B.idle_first + B.idle_n; i++) {
		enum sess_state st = B.sess[i].st;

		if (st != SS_IDLING && st != SS_DONE)
			return false;
	}
	return true;
}

static bool never(void)
{
	return false;
}

static bool all_done(void)
{
	return count_active(0, B.nsess) == 0;
}

static void activate(size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		connq_push(&B.sess[i]);
	pump_connects();
}

static void stop_all(void)
{
	B.stopping = true;
	for (size_t i = 0; i < B.nsess; i++) {
		struct sess *s = &B.sess[i];
		uint32_t gen = s->gen;

		switch (s->st) {
		case SS_WAIT:
		case SS_QUEUED:
			s->st = SS_DONE;
			break;
		case SS_CONNECTING:
		case SS_TLS:
		case SS_GREETING:
		case SS_CLOSING:
			sess_close(s);
			s->st = SS_DONE;
			break;
		case SS_THINK:
			sess_next(s);
			if (alive(s, gen))
				sess_update_events(s);
			break;
		case SS_IDLING:
			cmd_done(s);
			if (alive(s, gen))
				sess_update_events(s);
			break;
		default:
			break;
		}
	}
}

static void close_all(void)
{
	for (size_t i = 0; i < B.nsess; i++) {
		struct sess *s = &B.sess[i];

		if (s->fd >= 0)
			sess_close(s);
		if (s->st != SS_OFF)
			s->st = SS_DONE;
	}
}

/* ------------------------------------------------------------ report */

static double measured_seconds(void)
{
	if (B.t_meas == 0 || B.t_end <= B.t_meas)
		return 0.0;
	return (double)(B.t_end - B.t_meas) / 1e6;
}

static void print_rows(FILE *fp, const struct cmd_stats *stats, double secs,
		       bool total)
{
	uint64_t ops = 0, errs = 0;

	fprintf(fp, "%-15s %10s %10s %10s %10s %10s %10s %8s\n", "command", "ops",
		"ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors");
	for (int t = 0; t < CMD_COUNT; t++) {
		const struct cmd_stats *st = &stats[t];

		if (st->ops == 0 && st->errors == 0)
			continue;
		fprintf(fp, "%-15s %10" PRIu64 " %10.1f %10.3f %10.3f %10.3f "
			"%10.3f %8" PRIu64 "\n", cmd_info[t].label, st->ops,
			secs > 0 ? (double)st->ops / secs : 0.0,
			(double)bench_hist_percentile(&st->hist, 50) / 1e3,
			(double)bench_hist_percentile(&st->hist, 90) / 1e3,
			(double)bench_hist_percentile(&st->hist, 99) / 1e3,
			(double)st->hist.max / 1e3, st->errors);
		if (t != CMD_CONNECT) {
			ops += st->ops;
			errs += st->errors;
		}
	}
	if (total)
		fprintf(fp, "%-15s %10" PRIu64 " %10.1f %43s %8" PRIu64 "\n",
			"total (cmds)", ops, secs > 0 ? (double)ops / secs : 0.0,
			"", errs);
}

static void print_table(FILE *fp)
{
	double secs = measured_seconds();

	fprintf(fp, "kura-bench: profile=%s server=%s:%u%s clients=%u idle-conns=%u "
		"users=%" PRIu64 " seed=%" PRIu64 " measured=%.1fs\n",
		profile_names[B.profile], B.host, B.port, B.tls ? " (TLS)" : "",
		B.clients, B.idle_conns, B.user_count, B.seed, secs);
	if (B.clients > 0)
		print_rows(fp, B.stats, secs, true);
	if (B.idle_conns > 0) {
		size_t idling = 0, healthy = 0;

		for (size_t i = B.idle_first; i < B.idle_first + B.idle_n; i++) {
			idling += B.sess[i].reached_idle;
			healthy += B.sess[i].healthy;
		}
		fprintf(fp, "idle: %u requested, %zu reached IDLE in %.1fs, %zu "
			"healthy, %" PRIu64 " dropped, %" PRIu64 " notifications\n",
			B.idle_conns, idling, B.idle_establish_s, healthy,
			B.idle_dropped, B.idle_notifications);
		fprintf(fp, "idle connections' commands (ops/s not meaningful):\n");
		print_rows(fp, B.idle_stats, 0, false);
	}
}

static json_t *stats_json(const struct cmd_stats *st, double secs)
{
	json_t *o = json_object(), *lat = json_object(), *kinds = json_object();

	json_object_set_new(o, "ops", json_integer((json_int_t)st->ops));
	json_object_set_new(o, "ops_per_s",
			    json_real(secs > 0 ? (double)st->ops / secs : 0.0));
	json_object_set_new(o, "errors", json_integer((json_int_t)st->errors));
	for (int k = 0; k < ERR_KIND_COUNT; k++)
		json_object_set_new(kinds, err_kind_names[k],
				    json_integer((json_int_t)st->err_kind[k]));
	json_object_set_new(o, "errors_by_kind", kinds);
	json_object_set_new(lat, "p50", json_integer((json_int_t)
				bench_hist_percentile(&st->hist, 50)));
	json_object_set_new(lat, "p90", json_integer((json_int_t)
				bench_hist_percentile(&st->hist, 90)));
	json_object_set_new(lat, "p99", json_integer((json_int_t)
				bench_hist_percentile(&st->hist, 99)));
	json_object_set_new(lat, "max", json_integer((json_int_t)st->hist.max));
	json_object_set_new(lat, "min", json_integer((json_int_t)st->hist.min));
	json_object_set_new(lat, "mean", json_real(bench_hist_mean(&st->hist)));
	json_object_set_new(o, "latency_us", lat);
	return o;
}

static int write_json(const char *path)
{
	double secs = measured_seconds();
	json_t *root = json_object(), *cfg = json_object(), *cmds = json_object();
	json_t *total = json_object(), *setup = json_object(), *samples = json_array();
	uint64_t ops = 0, errs = 0, setup_errs = 0;
	int rc;

	json_object_set_new(root, "tool", json_string("kura-bench"));
	json_object_set_new(root, "version", json_string(BENCH_VERSION));
	json_object_set_new(cfg, "host", json_string(B.host));
	json_object_set_new(cfg, "port", json_integer(B.port));
	json_object_set_new(cfg, "tls", json_boolean(B.tls));
	json_object_set_new(cfg, "profile", json_string(profile_names[B.profile]));
	json_object_set_new(cfg, "clients", json_integer(B.clients));
	json_object_set_new(cfg, "idle_conns", json_integer(B.idle_conns));
	json_object_set_new(cfg, "duration", json_real(B.duration));
	json_object_set_new(cfg, "warmup", json_real(B.warmup));
	json_object_set_new(cfg, "seed", json_integer((json_int_t)B.seed));
	json_object_set_new(cfg, "users", json_string(B.user_pattern));
	json_object_set_new(cfg, "user_count", json_integer((json_int_t)B.user_count));
	json_object_set_new(cfg, "mbox", B.mbox ? json_string(B.mbox) : json_null());
	json_object_set_new(cfg, "pool_messages", json_integer((json_int_t)B.pool.count));
	json_object_set_new(cfg, "pool_bytes", json_integer((json_int_t)B.pool.total_bytes));
	json_object_set_new(cfg, "prefill", json_integer(B.prefill));
	json_object_set_new(root, "config", cfg);
	json_object_set_new(root, "duration_s", json_real(secs));
	for (int t = 0; t < CMD_COUNT; t++) {
		json_object_set_new(cmds, cmd_info[t].key, stats_json(&B.stats[t], secs));
		if (t != CMD_CONNECT) {
			ops += B.stats[t].ops;
			errs += B.stats[t].errors;
		}
		setup_errs += B.setup_stats[t].errors;
	}
	json_object_set_new(root, "commands", cmds);
	json_object_set_new(total, "ops", json_integer((json_int_t)ops));
	json_object_set_new(total, "ops_per_s", json_real(secs > 0 ? (double)ops / secs : 0));
	json_object_set_new(total, "errors", json_integer((json_int_t)errs));
	json_object_set_new(total, "connect_errors",
			    json_integer((json_int_t)B.stats[CMD_CONNECT].errors));
	json_object_set_new(total, "connections", json_integer((json_int_t)B.connections));
	json_object_set_new(total, "bytes_in", json_integer((json_int_t)B.bytes_in));
	json_object_set_new(total, "bytes_out", json_integer((json_int_t)B.bytes_out));
	json_object_set_new(root, "total", total);
	json_object_set_new(setup, "sessions", json_integer((json_int_t)B.setup_n));
	json_object_set_new(setup, "appended", json_integer((json_int_t)
				B.setup_stats[CMD_APPEND].ops));
	json_object_set_new(setup, "errors", json_integer((json_int_t)setup_errs));
	json_object_set_new(root, "setup", setup);
	if (B.idle_conns > 0) {
		json_t *idle = json_object();
		size_t idling = 0, healthy = 0;

		for (size_t i = B.idle_first; i < B.idle_first + B.idle_n; i++) {
			idling += B.sess[i].reached_idle;
			healthy += B.sess[i].healthy;
		}
		json_object_set_new(idle, "requested", json_integer(B.idle_conns));
		json_object_set_new(idle, "reached_idle", json_integer((json_int_t)idling));
		json_object_set_new(idle, "healthy", json_integer((json_int_t)healthy));
		json_object_set_new(idle, "dropped", json_integer((json_int_t)B.idle_dropped));
		json_object_set_new(idle, "notifications",
				    json_integer((json_int_t)B.idle_notifications));
		json_object_set_new(idle, "establish_s", json_real(B.idle_establish_s));
		{
			json_t *ic = json_object();
			uint64_t ierrs = 0;

			for (int t = 0; t < CMD_COUNT; t++) {
				json_object_set_new(ic, cmd_info[t].key,
						    stats_json(&B.idle_stats[t], 0));
				ierrs += B.idle_stats[t].errors;
			}
			json_object_set_new(idle, "commands", ic);
			json_object_set_new(idle, "errors", json_integer((json_int_t)ierrs));
		}
		json_object_set_new(root, "idle", idle);
	}
	for (unsigned i = 0; i < B.nsamples; i++)
		json_array_append_new(samples, json_string(B.samples[i]));
	json_object_set_new(root, "error_samples", samples);
	rc = json_dump_file(root, path, JSON_INDENT(2));
	json_decref(root);
	return rc == 0 ? 0 : -EIO;
}

/* ------------------------------------------------------------ options */

static void usage(FILE *fp)
{
	fputs("usage: kura-bench [options]\n"
	      "  --host HOST            server (127.0.0.1)\n"
	      "  --port PORT            143, or 993 with --tls\n"
	      "  --tls                  implicit TLS (certificate not verified)\n"
	      "  --users PATTERN        user names, %d = number (u%d)\n"
	      "  --user-count K         users 1..K (100)\n"
	      "  --user-start N         first user number (1)\n"
	      "  --password PATTERN     %s = user name, %d = number (pw%s)\n"
	      "  --clients N            concurrent sessions (10)\n"
	      "  --duration SECONDS     measured time (10)\n"
	      "  --warmup SECONDS       unmeasured time before (0)\n"
	      "  --seed S               seed of every random choice (1)\n"
	      "  --profile P            login|persistent|append|fetch|idle (persistent)\n"
	      "  --mbox FILE            APPEND the messages of this mbox\n"
	      "  --msg-size BYTES       generate messages of about this size\n"
	      "  --prefill N            setup: fill INBOX up to N messages (50)\n"
	      "  --fetch-window N       login profile: FETCH the last N (200)\n"
	      "  --idle-conns M         idle profile: connections in IDLE (100)\n"
	      "  --timeout SECONDS      per command (30)\n"
	      "  --think MS             pause between commands (0)\n"
	      "  --session-cmds N       reconnect after N commands (0 = never)\n"
	      "  --connect-concurrency N  connects in flight at once (100)\n"
	      "  --json FILE            write results as JSON\n"
	      "  --progress SECONDS     print progress to stderr\n"
	      "  --verbose              print every error to stderr\n"
	      "  --quiet                no table on stdout\n", fp);
}

static double opt_double(const char *name, const char *v, double min)
{
	char *end;
	double d = strtod(v, &end);

	if (*v == '\0' || *end != '\0' || !(d >= min))
		die("bad value for --%s: %s", name, v);
	return d;
}

static uint64_t opt_u64(const char *name, const char *v, uint64_t min,
			uint64_t max)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || n < min ||
	    n > max)
		die("bad value for --%s: %s", name, v);
	return n;
}

static void parse_options(int argc, char **argv)
{
	enum {
		O_HOST = 256, O_PORT, O_TLS, O_USERS, O_USER_COUNT, O_USER_START,
		O_PASSWORD, O_CLIENTS, O_DURATION, O_WARMUP, O_SEED, O_PROFILE,
		O_MBOX, O_MSG_SIZE, O_PREFILL, O_FETCH_WINDOW, O_IDLE_CONNS,
		O_TIMEOUT, O_THINK, O_SESSION_CMDS, O_CONNECT_CONC, O_JSON,
		O_PROGRESS, O_VERBOSE, O_QUIET, O_HELP,
	};
	static const struct option opts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "tls", no_argument, NULL, O_TLS },
		{ "users", required_argument, NULL, O_USERS },
		{ "user-count", required_argument, NULL, O_USER_COUNT },
		{ "user-start", required_argument, NULL, O_USER_START },
		{ "password", required_argument, NULL, O_PASSWORD },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "seed", required_argument, NULL, O_SEED },
		{ "profile", required_argument, NULL, O_PROFILE },
		{ "mbox", required_argument, NULL, O_MBOX },
		{ "msg-size", required_argument, NULL, O_MSG_SIZE },
		{ "prefill", required_argument, NULL, O_PREFILL },
		{ "fetch-window", required_argument, NULL, O_FETCH_WINDOW },
		{ "idle-conns", required_argument, NULL, O_IDLE_CONNS },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "think", required_argument, NULL, O_THINK },
		{ "session-cmds", required_argument, NULL, O_SESSION_CMDS },
		{ "connect-concurrency", required_argument, NULL, O_CONNECT_CONC },
		{ "json", required_argument, NULL, O_JSON },
		{ "progress", required_argument, NULL, O_PROGRESS },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool clients_set = false, idle_set = false;
	int c;

	B.host = "127.0.0.1";
	B.user_pattern = "u%d";
	B.pass_pattern = "pw%s";
	B.user_count = 100;
	B.user_start = 1;
	B.clients = 10;
	B.duration = 10;
	B.timeout = 30;
	B.seed = 1;
	B.profile = PROFILE_PERSISTENT;
	B.prefill = 50;
	B.fetch_window = 200;
	B.idle_conns = 100;
	B.connect_conc = 100;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_HOST: B.host = optarg; break;
		case O_PORT: B.port = (unsigned)opt_u64("port", optarg, 1, 65535); break;
		case O_TLS: B.tls = true; break;
		case O_USERS: B.user_pattern = optarg; break;
		case O_USER_COUNT:
			B.user_count = opt_u64("user-count", optarg, 1, 100000000);
			break;
		case O_USER_START:
			B.user_start = opt_u64("user-start", optarg, 0, UINT64_MAX / 2);
			break;
		case O_PASSWORD: B.pass_pattern = optarg; break;
		case O_CLIENTS:
			B.clients = (unsigned)opt_u64("clients", optarg, 0, 1000000);
			clients_set = true;
			break;
		case O_DURATION: B.duration = opt_double("duration", optarg, 0.1); break;
		case O_WARMUP: B.warmup = opt_double("warmup", optarg, 0); break;
		case O_SEED: B.seed = opt_u64("seed", optarg, 0, UINT64_MAX); break;
		case O_PROFILE: {
			size_t i;

			for (i = 0; i < ARRAY_SIZE(profile_names); i++)
				if (strcmp(optarg, profile_names[i]) == 0)
					break;
			if (i == ARRAY_SIZE(profile_names))
				die("unknown profile %s", optarg);
			B.profile = (enum profile)i;
			break;
		}
		case O_MBOX: B.mbox = optarg; break;
		case O_MSG_SIZE:
			B.msg_size = (size_t)opt_u64("msg-size", optarg, 200,
						     BENCH_MSG_MAX);
			break;
		case O_PREFILL:
			B.prefill = (unsigned)opt_u64("prefill", optarg, 0, 1000000);
			break;
		case O_FETCH_WINDOW:
			B.fetch_window = (unsigned)opt_u64("fetch-window", optarg, 0,
							   MODEL_MAX);
			break;
		case O_IDLE_CONNS:
			B.idle_conns = (unsigned)opt_u64("idle-conns", optarg, 0, 1000000);
			idle_set = true;
			break;
		case O_TIMEOUT: B.timeout = opt_double("timeout", optarg, 0.1); break;
		case O_THINK: B.think_ms = opt_double("think", optarg, 0); break;
		case O_SESSION_CMDS:
			B.session_cmds = (unsigned)opt_u64("session-cmds", optarg, 0,
							   UINT32_MAX);
			break;
		case O_CONNECT_CONC:
			B.connect_conc = (unsigned)opt_u64("connect-concurrency",
							   optarg, 1, 1000000);
			break;
		case O_JSON: B.json_path = optarg; break;
		case O_PROGRESS: B.progress = opt_double("progress", optarg, 0); break;
		case O_VERBOSE: B.verbose = true; break;
		case O_QUIET: B.quiet = true; break;
		case O_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument %s", argv[optind]);
	if (B.port == 0)
		B.port = B.tls ? 993 : 143;
	if (strstr(B.user_pattern, "%d") == NULL)
		B.user_count = 1;
	if (B.profile == PROFILE_IDLE) {
		if (!clients_set)
			B.clients = 0;
	} else if (!idle_set) {
		B.idle_conns = 0;
	}
	if (strpbrk(B.user_pattern, "\r\n") || strpbrk(B.pass_pattern, "\r\n"))
		die("user and password patterns must not contain CR or LF");
	if (B.clients + (uint64_t)B.idle_conns == 0)
		die("nothing to do: --clients 0 and no --idle-conns");
}

/* ------------------------------------------------------------ main */

static void resolve(void)
{
	struct addrinfo hints, *res;
	char port[16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", B.port);
	rc = getaddrinfo(B.host, port, &hints, &res);
	if (rc != 0)
		die("cannot resolve %s: %s", B.host, gai_strerror(rc));
	memcpy(&B.addr, res->ai_addr, res->ai_addrlen);
	B.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void raise_nofile(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		fprintf(stderr, "kura-bench: warning: %zu connections but the file "
			"limit is %llu\n", need, (unsigned long long)rl.rlim_cur);
}

static void sess_init(struct sess *s, size_t idx, enum role role,
		      uint64_t user_slot)
{
	memset(s, 0, sizeof(*s));
	s->idx = (unsigned)idx;
	s->role = role;
	s->fd = -1;
	s->rng = bench_rng_seed(B.seed, idx + 1);
	s->user_num = B.user_start + user_slot % B.user_count;
	s->user = expand_pattern(B.user_pattern, s->user_num, NULL);
	s->pass = expand_pattern(B.pass_pattern, s->user_num, s->user);
	s->hold = -1;
	s->err_kind = -1;
	bench_resp_reader_init(&s->rd, RESP_MAX);
}

static void on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
}

int main(int argc, char **argv)
{
	bool need_setup;
	uint64_t t0;
	size_t nusers;

	parse_options(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_sigint);
	resolve();
	if (B.tls) {
		B.ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (B.ssl_ctx == NULL)
			die("cannot create a TLS context");
		SSL_CTX_set_verify(B.ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(B.ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}
	if (B.mbox != NULL) {
		const char *err;
		int rc = bench_msg_pool_load_mbox(&B.pool, B.mbox, &err);

		if (rc < 0)
			die("%s: %s (%s)", B.mbox, err, strerror(-rc));
	} else {
		bench_msg_pool_generate(&B.pool, B.seed, B.msg_size);
	}

	need_setup = B.prefill > 0 && B.clients > 0 &&
		     B.profile != PROFILE_APPEND;
	nusers = (size_t)KURA_MIN((uint64_t)B.clients, B.user_count);
	B.setup_first = 0;
	B.setup_n = need_setup ? nusers : 0;
	B.idle_first = B.setup_n;
	B.idle_n = B.idle_conns;
	B.main_first = B.idle_first + B.idle_n;
	B.main_n = B.clients;
	B.nsess = B.main_first + B.main_n;
	B.sess = xcalloc(B.nsess, sizeof(*B.sess));
	B.connq = xcalloc(B.nsess, sizeof(*B.connq));
	for (size_t i = 0; i < B.setup_n; i++)
		sess_init(&B.sess[i], i, ROLE_SETUP, i);
	for (size_t i = 0; i < B.idle_n; i++)
		sess_init(&B.sess[B.idle_first + i], B.idle_first + i, ROLE_IDLE, i);
	for (size_t i = 0; i < B.main_n; i++)
		sess_init(&B.sess[B.main_first + i], B.main_first + i, ROLE_MAIN, i);
	raise_nofile(B.idle_n + B.main_n + 64);
	B.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (B.epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	B.now = time_mono_usec();

	if (B.setup_n > 0) {
		t0 = B.now;
		activate(B.setup_first, B.setup_n);
		run_until(setup_done, B.now + 600ULL * 1000000);
		close_all();
		if (!B.quiet)
			fprintf(stderr, "kura-bench: setup: %zu users, %" PRIu64
				" messages appended in %.1fs\n", B.setup_n,
				B.setup_stats[CMD_APPEND].ops,
				(double)(B.now - t0) / 1e6);
		for (int t = 0; t < CMD_COUNT; t++)
			if (B.setup_stats[t].errors > 0)
				fprintf(stderr, "kura-bench: setup: %" PRIu64
					" %s errors\n", B.setup_stats[t].errors,
					cmd_info[t].label);
	}
	if (B.idle_n > 0) {
		t0 = B.now;
		activate(B.idle_first, B.idle_n);
		run_until(idle_established, B.now + (uint64_t)
			  (KURA_MAX(B.timeout, 60.0) * 1e6) +
			  B.idle_n * 2000ULL);
		B.idle_establish_s = (double)(B.now - t0) / 1e6;
		if (!B.quiet)
			fprintf(stderr, "kura-bench: %zu of %zu idle connections in "
				"IDLE after %.1fs\n",
				count_state(B.idle_first, B.idle_n, SS_IDLING),
				B.idle_n, B.idle_establish_s);
	}
	B.now = time_mono_usec();
	B.t_meas = B.now + (uint64_t)(B.warmup * 1e6);
	B.t_end = B.t_meas + (uint64_t)(B.duration * 1e6);
	activate(B.main_first, B.main_n);
	run_until(never, B.t_end);
	if (B.now < B.t_end)
		B.t_end = B.now;
	stop_all();
	run_until(all_done, B.now + (uint64_t)(B.timeout * 1e6));
	close_all();

	if (!B.quiet)
		print_table(stdout);
	for (unsigned i = 0; i < B.nsamples; i++)
		fprintf(stderr, "kura-bench: error sample: %s\n", B.samples[i]);
	if (B.json_path != NULL && write_json(B.json_path) < 0)
		die("cannot write %s", B.json_path);

	for (size_t i = 0; i < B.nsess; i++) {
		bench_resp_reader_deinit(&B.sess[i].rd);
		free(B.sess[i].user);
		free(B.sess[i].pass);
		free(B.sess[i].uids);
		free(B.sess[i].mflags);
		free(B.sess[i].exp);
	}
	for (unsigned i = 0; i < B.nsamples; i++)
		free(B.samples[i]);
	free(B.sess);
	free(B.connq);
	bench_msg_pool_free(&B.pool);
	if (B.ssl_ctx != NULL)
		SSL_CTX_free(B.ssl_ctx);
	close(B.epfd);
	return 0;
}
