/* The s3 backend: object key K is BUCKET/K on an S3-compatible server.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4). What curl 7.88
 * needs for that to work (shared/notes/S3-BACKENDS.md): we send
 * x-amz-content-sha256 ourselves, query parameters go out sorted and
 * encoded the canonical way, no header-removal entries ("Name:") sit in
 * the header list, and the key pair goes in as CURLOPT_USERNAME and
 * CURLOPT_PASSWORD. Paths are encoded the canonical way too, so that the
 * path curl signs is the one the server rebuilds.
 *
 * Inside a task a request runs on the thread's curl multi handle. Its
 * sockets are watched with one-shot io_uring polls (re-armed after each
 * event), its timer is a loop timer, and the task suspends until
 * curl_multi_info_read() reports its transfer done. Every poll op lives
 * in a struct s3_sock that is freed only after its last completion has
 * arrived, so a completion for a socket curl has meanwhile closed (and
 * whose descriptor may already be reused) finds the old struct marked
 * removed and is dropped. Outside a task a request is a blocking
 * curl_easy_perform() on the thread's own easy handle. Both keep
 * connections alive between requests. */
#include "storage/store.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"

#define S3_DEFAULT_REGION "us-east-1"
#define S3_CONNECT_TIMEOUT_MS 5000
#define S3_TIMEOUT_MS 30000
#define S3_MAX_ATTEMPTS 4
#define S3_RETRY_BASE_MS 50
#define S3_RETRY_MAX_MS 2000
#define S3_MAX_HOST_CONNS 64
#define S3_META_MAX 2048	/* S3's limit for user metadata */
#define S3_PUT_MAX (5ull << 30)	/* S3's limit for a single PUT */
#define S3_ERR_BODY_MAX 4096	/* error document, kept for its <Code> */
#define S3_LIST_BODY_MAX (16u << 20)
#define S3_LIST_PAGE 1000	/* S3's largest max-keys */
#define S3_EASY_POOL 64
/* A GET reserves its Content-Length up front, but never more than this
 * at once when the caller's buffer is unbounded. */
#define S3_PREALLOC_MAX (64u << 20)
#define S3_PUT_ID_META "kura-put-id"
#define S3_PUT_ID_HEADER "x-amz-meta-" S3_PUT_ID_META
#define S3_PUT_ID_LEN 32
#define S3_XML_DEPTH 16
#define S3_XML_TEXT_MAX 65536
#define S3_TOKEN_MAX 4096

static const char s3_empty_sha256[] =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct store_s3 {
	struct store store;
	char *base;		/* "http://host:port/bucket" or
				 * "http://bucket.host:port", no '/' at the end */
	char *bucket;
	char *access_key, *secret_key;
	char *token_header;	/* "x-amz-security-token: ..." or NULL */
	char *sigv4;		/* "aws:amz:REGION:s3" */
	char *ca_file;
	long connect_timeout_ms, timeout_ms;
	unsigned max_attempts, retry_base_ms;
	long max_host_conns;
};

/* One request; the response fields are reset for every attempt. */
struct s3_req {
	struct store_s3 *s;
	const char *method;
	const char *what;	/* key or prefix, for messages */
	char *url;
	struct curl_slist *headers;
	const void *body;
	size_t body_len;

	/* GET of an object: the body is appended to out */
	struct buf *out;
	size_t out_used0;	/* buf_used(out) before the call */
	bool ranged;
	uint64_t range_off, range_len;
	/* LIST: the body goes to doc */
	struct buf *doc;

	/* response */
	long status;
	uint64_t content_length;
	bool have_length;
	bool chunked;		/* Transfer-Encoding: chunked (curl checks its end) */
	uint64_t range_start;
	bool have_range;
	int64_t mtime;
	char put_id[S3_PUT_ID_LEN + 1];
	uint64_t skip, take;	/* a 200 answer to a ranged GET */
	bool too_big;		/* aborted: the body does not fit out */
	bool bad_range;		/* aborted: 206 for another range */
	struct buf err_body;
	CURLcode result;
	char curl_err[CURL_ERROR_SIZE];
	char code[64];		/* <Code> of an error document */

	/* inside a task */
	struct task *task;
	bool done;
};

/* A socket curl asked us to watch. */
struct s3_sock {
	struct s3_ctx *ctx;	/* NULL once the context is gone */
	struct s3_sock *prev, *next;	/* ctx->socks, while not removed */
	curl_socket_t fd;
	int want;		/* CURL_POLL_IN / OUT / INOUT */
	unsigned armed_mask;
	bool armed;		/* a poll_add is in flight */
	bool rm_inflight;	/* a poll_remove is in flight */
	bool removed;		/* curl is done with it */
	bool in_action;		/* inside our curl_multi_socket_action() */
	struct loop_op op;	/* the poll_add */
	struct loop_op rm_op;	/* the poll_remove */
};

/* Per thread: the multi handle for tasks, the easy handle for blocking
 * calls. */
struct s3_ctx {
	CURLM *multi;
	struct loop *loop;	/* the loop the multi handle is bound to */
	struct loop_timer timer;
	unsigned transfers;	/* easy handles in the multi */
	unsigned busy;		/* tasks inside s3_attempt() */
	struct s3_sock *socks;
	long max_host_conns;
	CURL *pool[S3_EASY_POOL];
	unsigned n_pool;
	CURL *blocking;
};

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static pthread_key_t s3_ctx_key;
static bool s3_global_ok;
static __thread struct s3_ctx *s3_ctx_cur;
static __thread char s3_errbuf[STORE_KEY_MAX + 512];

static int s3_error(const char **error_r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int s3_error(const char **error_r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s3_errbuf, sizeof(s3_errbuf), fmt, ap);
	va_end(ap);
	if (error_r != NULL)
		*error_r = s3_errbuf;
	return code;
}

static struct store_s3 *s3_of(struct store *s)
{
	return (struct store_s3 *)s;
}

/* ---- small helpers ---- */

static bool s3_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Appends s percent-encoded the way SigV4 canonicalizes it (upper-case
 * hex, unreserved characters as they are, '/' kept when keep_slash). */
static void s3_encode(struct buf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		uint8_t *d;

		if (s3_unreserved(c) || (keep_slash && c == '/')) {
			buf_append(b, s, 1);
			continue;
		}
		d = buf_reserve(b, 3);
		d[0] = '%';
		d[1] = (uint8_t)hex[c >> 4];
		d[2] = (uint8_t)hex[c & 15];
		buf_commit(b, 3);
	}
}

static void s3_sha256_hex(const void *p, size_t len, char out[65])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (EVP_Digest(p, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		log_error("s3: SHA-256 failed");
		abort();
	}
	hex_encode(md, 32, out);
}

static bool s3_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static bool s3_ieq(const char *a, size_t alen, const char *b)
{
	return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* ---- a small XML reader for S3's answers ----
 *
 * Enough XML for ListBucketResult and Error documents: elements,
 * attributes (skipped), character data with the five named entities
 * and numeric references, CDATA, comments, processing instructions and
 * a DOCTYPE without internal subset. Anything else is malformed. */

struct s3_xml_name {
	const char *p;
	size_t len;
};

/* Called for every element closing with text only: names[0..depth) is
 * the path from the root, text (NUL-terminated, len bytes, may hold NUL
 * from &#0;... which is refused) its decoded content. */
typedef int s3_xml_leaf_fn(void *arg, const struct s3_xml_name *names,
			   unsigned depth, const char *text, size_t len);

static bool s3_xml_name_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':' ||
		c >= 0x80;
}

static bool s3_starts(const char *p, const char *end, const char *prefix)
{
	size_t n = strlen(prefix);

	return (size_t)(end - p) >= n && memcmp(p, prefix, n) == 0;
}

static const char *s3_memmem(const char *p, const char *end,
			     const char *needle)
{
	size_t n = strlen(needle);

	if ((size_t)(end - p) < n)
		return NULL;
	return memmem(p, (size_t)(end - p), needle, n);
}

/* Appends the UTF-8 form of code point cp; false for what XML forbids. */
static bool s3_xml_utf8(struct buf *b, uint32_t cp)
{
	uint8_t u[4];
	size_t n;

	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return false;
	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | (cp >> 6));
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | (cp >> 12));
		u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | (cp >> 18));
		u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(b, u, n);
}

/* Decodes character data p..end (entities) into b. */
static bool s3_xml_text(struct buf *b, const char *p, const char *end)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *semi;
		size_t i;

		if (amp == NULL)
			return buf_append(b, p, (size_t)(end - p));
		if (!buf_append(b, p, (size_t)(amp - p)))
			return false;
		p = amp + 1;
		semi = memchr(p, ';', (size_t)(end - p) < 12 ?
			      (size_t)(end - p) : 12);
		if (semi == NULL)
			return false;
		if (*p == '#') {
			uint32_t cp = 0;
			bool hexa = p + 1 < semi && p[1] == 'x';
			const char *d = p + 1 + hexa;

			if (d == semi)
				return false;
			for (; d < semi; d++) {
				unsigned char c = (unsigned char)*d;
				unsigned v;

				if (isdigit(c))
					v = (unsigned)(c - '0');
				else if (hexa && isxdigit(c))
					v = (unsigned)(tolower(c) - 'a' + 10);
				else
					return false;
				cp = cp * (hexa ? 16 : 10) + v;
				if (cp > 0x10ffff)
					return false;
			}
			if (!s3_xml_utf8(b, cp))
				return false;
			p = semi + 1;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(ents); i++) {
			size_t n = strlen(ents[i].name);

			if ((size_t)(semi + 1 - p) == n &&
			    memcmp(p, ents[i].name, n) == 0)
				break;
		}
		if (i == ARRAY_SIZE(ents) || !buf_append(b, &ents[i].c, 1))
			return false;
		p = semi + 1;
	}
	return true;
}

/* Walks the document p[0..len); returns 0, the first non-zero result of
 * fn, or -1 when the document is malformed or passes a limit. */
static int s3_xml_walk(const char *p, size_t len, s3_xml_leaf_fn *fn,
		       void *arg)
{
	const char *end;
	struct s3_xml_name names[S3_XML_DEPTH];
	unsigned depth = 0;
	bool has_child = false, root_done = false;
	struct buf text;
	int r = -1;

	if (p == NULL)
		return -1;	/* an empty body: no root element */
	end = p + len;

	/* one byte more for buf_cstr()'s NUL */
	buf_init(&text, S3_XML_TEXT_MAX + 1);
	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *q;

		if (lt == NULL)
			lt = end;
		if (lt > p) {
			if (depth == 0) {
				/* only white space outside the root */
				for (q = p; q < lt; q++)
					if (!isspace((unsigned char)*q))
						goto out;
			} else if (!s3_xml_text(&text, p, lt)) {
				goto out;
			}
		}
		p = lt;
		if (p == end)
			break;
		if (s3_starts(p, end, "<?")) {
			q = s3_memmem(p + 2, end, "?>");
			if (q == NULL)
				goto out;
			p = q + 2;
		} else if (s3_starts(p, end, "<!--")) {
			q = s3_memmem(p + 4, end, "-->");
			if (q == NULL)
				goto out;
			p = q + 3;
		} else if (s3_starts(p, end, "<![CDATA[")) {
			q = s3_memmem(p + 9, end, "]]>");
			if (q == NULL || depth == 0 ||
			    !buf_append(&text, p + 9, (size_t)(q - p - 9)))
				goto out;
			p = q + 3;
		} else if (s3_starts(p, end, "<!")) {
			/* a DOCTYPE; an internal subset could define
			 * entities, which we do not expand */
			for (q = p + 2; q < end && *q != '>'; q++)
				if (*q == '[')
					goto out;
			if (q == end || depth > 0 || root_done)
				goto out;
			p = q + 1;
		} else if (p + 1 < end && p[1] == '/') {
			const char *n0 = p + 2;

			for (q = n0; q < end && s3_xml_name_char(
				     (unsigned char)*q); q++)
				;
			if (depth == 0 ||
			    (size_t)(q - n0) != names[depth - 1].len ||
			    memcmp(n0, names[depth - 1].p,
				   (size_t)(q - n0)) != 0)
				goto out;
			while (q < end && isspace((unsigned char)*q))
				q++;
			if (q == end || *q != '>')
				goto out;
			if (!has_child) {
				const char *t = buf_cstr(&text);

				if (t == NULL)
					goto out;
				r = fn(arg, names, depth, t, buf_used(&text));
				if (r != 0)
					goto out_r;
				r = -1;
			}
			buf_reset(&text);
			has_child = true;	/* for the parent */
			if (--depth == 0)
				root_done = true;
			p = q + 1;
		} else {
			const char *n0 = p + 1;
			char quote = 0;
			bool empty;

			for (q = n0; q < end && s3_xml_name_char(
				     (unsigned char)*q); q++)
				;
			if (q == n0 || depth == S3_XML_DEPTH || root_done)
				goto out;
			names[depth].p = n0;
			names[depth].len = (size_t)(q - n0);
			/* attributes: skipped, quotes respected */
			for (; q < end; q++) {
				if (quote != 0) {
					if (*q == quote)
						quote = 0;
				} else if (*q == '"' || *q == '\'') {
					quote = *q;
				} else if (*q == '<') {
					goto out;
				} else if (*q == '>') {
					break;
				}
			}
			if (q == end)
				goto out;
			empty = q[-1] == '/' && q - 1 >= n0 + names[depth].len;
			depth++;
			buf_reset(&text);
			has_child = false;
			if (empty) {
				r = fn(arg, names, depth, "", 0);
				if (r != 0)
					goto out_r;
				r = -1;
				has_child = true;
				if (--depth == 0)
					root_done = true;
			}
			p = q + 1;
		}
	}
	r = depth == 0 && root_done ? 0 : -1;
	goto out_r;
out:
	r = -1;
out_r:
	buf_deinit(&text);
	return r;
}

static bool s3_xml_path_is(const struct s3_xml_name *names, unsigned depth,
			   const char *const *want, unsigned n)
{
	if (depth != n)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (!s3_ieq(names[i].p, names[i].len, want[i]))
			return false;
	return true;
}

/* <Error><Code>... */
struct s3_err_doc {
	char *code;
	size_t code_size;
};

static int s3_err_leaf(void *arg, const struct s3_xml_name *names,
		       unsigned depth, const char *text, size_t len)
{
	static const char *const path[] = { "Error", "Code" };
	struct s3_err_doc *d = arg;

	if (s3_xml_path_is(names, depth, path, 2) && len < d->code_size &&
	    strlen(text) == len && s3_printable(text))
		memcpy(d->code, text, len + 1);
	return 0;
}

/* ListBucketResult: keys, IsTruncated, NextContinuationToken */
struct s3_list_doc {
	char **keys;
	size_t n, cap;
	size_t raw;		/* <Key>s seen, valid or not */
	bool truncated;
	bool have_truncated;
	char *token;
	const char *prefix;
};

static int s3_list_leaf(void *arg, const struct s3_xml_name *names,
			unsigned depth, const char *text, size_t len)
{
	static const char *const key_path[] = {
		"ListBucketResult", "Contents", "Key" };
	static const char *const trunc_path[] = {
		"ListBucketResult", "IsTruncated" };
	static const char *const token_path[] = {
		"ListBucketResult", "NextContinuationToken" };
	struct s3_list_doc *d = arg;

	if (s3_xml_path_is(names, depth, key_path, 3)) {
		d->raw++;
		/* Objects other tools stored under names we cannot use
		 * are skipped, as the fs backend skips odd files. */
		if (strlen(text) != len || !store_key_is_valid(text) ||
		    strncmp(text, d->prefix, strlen(d->prefix)) != 0)
			return 0;
		xgrow((void **)&d->keys, &d->cap, d->n + 1, sizeof(*d->keys));
		d->keys[d->n++] = xstrdup(text);
	} else if (s3_xml_path_is(names, depth, trunc_path, 2)) {
		if (strcmp(text, "true") == 0)
			d->truncated = true;
		else if (strcmp(text, "false") == 0)
			d->truncated = false;
		else
			return -1;
		d->have_truncated = true;
	} else if (s3_xml_path_is(names, depth, token_path, 2)) {
		if (len == 0 || len > S3_TOKEN_MAX || strlen(text) != len)
			return -1;
		free(d->token);
		d->token = xstrdup(text);
	}
	return 0;
}

/* ---- metadata ---- */

/* Checks meta like the fs backend does and appends x-amz-meta-* headers
 * to *h. */
static int s3_meta_headers(const char *const *meta, struct curl_slist **h,
			   const char **error_r)
{
	size_t total = 0;

	for (; meta != NULL && *meta != NULL; meta++) {
		const char *m = *meta, *eq = strchr(m, '='), *p;
		char line[S3_META_MAX + 32];
		size_t len;

		if (eq == NULL || eq == m)
			goto bad;
		for (p = m; p < eq; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' &&
			    *p != '_')
				goto bad;
		if (s3_ieq(m, (size_t)(eq - m), S3_PUT_ID_META))
			return s3_error(error_r, KURA_EINVAL,
					"s3: metadata name \"%s\" is reserved",
					S3_PUT_ID_META);
		if (!s3_printable(eq + 1))
			goto bad;
		len = strlen(m) + 1;
		if (len > S3_META_MAX - total)
			return s3_error(error_r, KURA_EINVAL,
					"s3: metadata larger than %d bytes",
					S3_META_MAX);
		total += len;
		/* An empty value is not sent: "Name;", curl's form of an
		 * empty header, breaks its SigV4 signature (403), and S3
		 * reads an empty value as no value anyway. */
		if (eq[1] == '\0')
			continue;
		snprintf(line, sizeof(line), "x-amz-meta-%.*s: %s",
			 (int)(eq - m), m, eq + 1);
		*h = curl_slist_append(*h, line);
		if (*h == NULL)
			abort();
	}
	return 0;
bad:
	return s3_error(error_r, KURA_EINVAL, "s3: bad metadata entry");
}

/* ---- per-thread context ---- */

static void s3_ctx_free(struct s3_ctx *c);

static void s3_ctx_destructor(void *arg)
{
	struct s3_ctx *c = arg;

	if (c == s3_ctx_cur)
		s3_ctx_cur = NULL;
	s3_ctx_free(c);
}

static void s3_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return;
	if (pthread_key_create(&s3_ctx_key, s3_ctx_destructor) != 0)
		return;
	s3_global_ok = true;
}

static struct s3_ctx *s3_ctx_get(void)
{
	struct s3_ctx *c = s3_ctx_cur;

	if (c != NULL)
		return c;
	c = xcalloc(1, sizeof(*c));
	loop_timer_init(&c->timer);
	s3_ctx_cur = c;
	pthread_setspecific(s3_ctx_key, c);
	return c;
}

static CURL *s3_easy_get(struct s3_ctx *c)
{
	CURL *e;

	if (c->n_pool > 0) {
		e = c->pool[--c->n_pool];
		curl_easy_reset(e);
		return e;
	}
	e = curl_easy_init();
	if (e == NULL)
		abort();	/* out of memory */
	return e;
}

static void s3_easy_put(struct s3_ctx *c, CURL *e)
{
	if (c->n_pool < S3_EASY_POOL)
		c->pool[c->n_pool++] = e;
	else
		curl_easy_cleanup(e);
}

/* ---- sockets and timer for the multi handle ---- */

static void s3_sock_polled(struct loop_op *op, int res, uint32_t flags);
static void s3_sock_rm_done(struct loop_op *op, int res, uint32_t flags);

static unsigned s3_poll_mask(int want)
{
	unsigned m = 0;

	if (want & CURL_POLL_IN)
		m |= POLLIN;
	if (want & CURL_POLL_OUT)
		m |= POLLOUT;
	return m;
}

static void s3_sock_maybe_free(struct s3_sock *k)
{
	if (k->removed && !k->armed && !k->rm_inflight && !k->in_action)
		free(k);
}

static void s3_sock_cancel(struct s3_ctx *c, struct s3_sock *k)
{
	struct io_uring_sqe *sqe;

	if (k->rm_inflight)
		return;
	sqe = loop_get_sqe(c->loop);
	io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&k->op);
	loop_op_set(sqe, &k->rm_op, s3_sock_rm_done);
	k->rm_inflight = true;
}

/* Brings the kernel's poll in line with what curl wants. */
static void s3_sock_update(struct s3_ctx *c, struct s3_sock *k)
{
	unsigned mask = s3_poll_mask(k->want);
	struct io_uring_sqe *sqe;

	if (k->removed || k->in_action)
		return;		/* the completion handler re-arms */
	if (k->armed) {
		if (k->armed_mask != mask)
			s3_sock_cancel(c, k);	/* re-armed on -ECANCELED */
		return;
	}
	if (mask == 0)
		return;
	sqe = loop_get_sqe(c->loop);
	io_uring_prep_poll_add(sqe, k->fd, mask);
	loop_op_set(sqe, &k->op, s3_sock_polled);
	k->armed = true;
	k->armed_mask = mask;
}

static void s3_sock_unlink(struct s3_ctx *c, struct s3_sock *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else if (c != NULL && c->socks == k)
		c->socks = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
}

/* curl is done with the socket (and may close it right after). */
static void s3_sock_remove(struct s3_ctx *c, struct s3_sock *k)
{
	s3_sock_unlink(c, k);
	k->removed = true;
	/* A poll left in the kernel would hold the file open. */
	if (k->armed)
		s3_sock_cancel(c, k);
	s3_sock_maybe_free(k);
}

static void s3_check_done(struct s3_ctx *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		CURL *e = msg->easy_handle;
		CURLcode res = msg->data.result;
		char *priv = NULL;
		struct s3_req *rq;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
		rq = (struct s3_req *)priv;
		curl_multi_remove_handle(c->multi, e);
		c->transfers--;
		if (rq != NULL) {
			rq->result = res;
			rq->done = true;
			task_wake(rq->task);
		}
	}
	/* Nothing is in flight: no timer needs to stay on this loop. */
	if (c->transfers == 0)
		loop_timer_stop(c->loop, &c->timer);
}

static void s3_sock_polled(struct loop_op *op, int res, uint32_t flags)
{
	struct s3_sock *k = (struct s3_sock *)((char *)op -
					       offsetof(struct s3_sock, op));
	struct s3_ctx *c = k->ctx;
	int ev = 0, running;

	(void)flags;
	k->armed = false;
	if (k->removed || c == NULL) {
		s3_sock_maybe_free(k);
		return;
	}
	if (res == -ECANCELED) {
		s3_sock_update(c, k);	/* cancelled for a new mask */
		return;
	}
	if (res < 0) {
		ev = CURL_CSELECT_ERR;
	} else {
		if (res & (POLLIN | POLLHUP | POLLERR))
			ev |= CURL_CSELECT_IN;
		if (res & (POLLOUT | POLLHUP | POLLERR))
			ev |= CURL_CSELECT_OUT;
		if (res & POLLERR)
			ev |= CURL_CSELECT_ERR;
	}
	k->in_action = true;
	curl_multi_socket_action(c->multi, k->fd, ev, &running);
	s3_check_done(c);
	k->in_action = false;
	if (k->removed)
		s3_sock_maybe_free(k);
	else
		s3_sock_update(c, k);
}

static void s3_sock_rm_done(struct loop_op *op, int res, uint32_t flags)
{
	struct s3_sock *k = (struct s3_sock *)((char *)op -
					       offsetof(struct s3_sock, rm_op));

	(void)res;
	(void)flags;
	k->rm_inflight = false;
	if (k->removed || k->ctx == NULL) {
		s3_sock_maybe_free(k);
		return;
	}
	/* the mask may have changed again while the remove was queued */
	s3_sock_update(k->ctx, k);
}

static int s3_socket_cb(CURL *e, curl_socket_t fd, int what, void *userp,
			void *socketp)
{
	struct s3_ctx *c = userp;
	struct s3_sock *k = socketp;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (k != NULL) {
			curl_multi_assign(c->multi, fd, NULL);
			s3_sock_remove(c, k);
		}
		return 0;
	}
	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		k->ctx = c;
		k->fd = fd;
		k->next = c->socks;
		if (c->socks != NULL)
			c->socks->prev = k;
		c->socks = k;
		curl_multi_assign(c->multi, fd, k);
	}
	k->want = what;
	s3_sock_update(c, k);
	return 0;
}

static void s3_timer_fired(struct loop_timer *t)
{
	struct s3_ctx *c = (struct s3_ctx *)((char *)t -
					     offsetof(struct s3_ctx, timer));
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	s3_check_done(c);
}

static int s3_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct s3_ctx *c = userp;

	(void)m;
	if (timeout_ms < 0)
		loop_timer_stop(c->loop, &c->timer);
	else
		loop_timer_start(c->loop, &c->timer, (uint64_t)timeout_ms,
				 s3_timer_fired);
	return 0;
}

/* The multi handle of this thread, bound to the current loop. */
static int s3_ctx_multi(struct s3_ctx *c, struct store_s3 *s,
			const char **error_r)
{
	struct loop *l = loop_current();

	if (l == NULL)
		return s3_error(error_r, KURA_EUNAVAIL,
				"s3: a task without a loop");
	if (c->multi != NULL && c->loop != l) {
		if (c->transfers > 0)
			return s3_error(error_r, KURA_EUNAVAIL,
					"s3: requests of another loop are in "
					"flight on this thread");
		/* Idle: nothing of ours is armed on the old loop. */
		c->loop = l;
	}
	if (c->multi == NULL) {
		c->multi = curl_multi_init();
		if (c->multi == NULL)
			abort();
		c->loop = l;
		curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION,
				  s3_socket_cb);
		curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
		curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION,
				  s3_timer_cb);
		curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
		c->max_host_conns = 0;
	}
	if (c->max_host_conns != s->max_host_conns) {
		c->max_host_conns = s->max_host_conns;
		curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				  c->max_host_conns);
		/* idle connections kept for reuse */
		curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
				  c->max_host_conns);
	}
	return 0;
}

static void s3_ctx_free(struct s3_ctx *c)
{
	if (c == NULL)
		return;
	if (c->transfers > 0 || c->busy > 0) {
		/* Tasks still wait on it: leave it alone. */
		log_warn("s3: thread context freed with %u requests in "
			 "flight", c->busy);
		return;
	}
	if (c->multi != NULL) {
		curl_multi_cleanup(c->multi);
		c->multi = NULL;
	}
	/* Sockets still watched have their ops on the loop; they free
	 * themselves when those complete. */
	while (c->socks != NULL) {
		struct s3_sock *k = c->socks;

		s3_sock_unlink(c, k);
		k->removed = true;
		k->ctx = NULL;
		if (k->armed)
			log_warn("s3: socket %d still polled at cleanup",
				 (int)k->fd);
		s3_sock_maybe_free(k);
	}
	loop_timer_stop(c->loop, &c->timer);
	for (unsigned i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->blocking != NULL)
		curl_easy_cleanup(c->blocking);
	free(c);
}

/* ---- one request ---- */

static size_t s3_header_cb(char *p, size_t size, size_t n, void *arg);
static size_t s3_write_cb(char *p, size_t size, size_t n, void *arg);

static void s3_req_reset(struct s3_req *rq)
{
	rq->status = 0;
	rq->content_length = 0;
	rq->have_length = false;
	rq->chunked = false;
	rq->range_start = 0;
	rq->have_range = false;
	rq->mtime = 0;
	rq->put_id[0] = '\0';
	rq->skip = 0;
	rq->take = UINT64_MAX;
	rq->too_big = false;
	rq->bad_range = false;
	buf_reset(&rq->err_body);
	rq->result = CURLE_OK;
	rq->curl_err[0] = '\0';
	rq->code[0] = '\0';
	rq->done = false;
	if (rq->out != NULL) {
		/* drop what a failed attempt appended */
		rq->out->len = rq->out->pos + rq->out_used0;
	}
	if (rq->doc != NULL)
		buf_reset(rq->doc);
}

static void s3_easy_setup(struct s3_req *rq, CURL *e)
{
	struct store_s3 *s = rq->s;

	curl_easy_setopt(e, CURLOPT_URL, rq->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(e, CURLOPT_USERNAME, s->access_key);
	curl_easy_setopt(e, CURLOPT_PASSWORD, s->secret_key);
	if (s->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->headers);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s3_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s3_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, rq);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, rq->curl_err);
	curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
	if (strcmp(rq->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(rq->method, "PUT") == 0) {
		/* POSTFIELDS with a custom method, not CURLOPT_UPLOAD: curl
		 * then asks for "100 Continue" only above 1 MiB instead of
		 * for every PUT, saving a round trip per small object. */
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)rq->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS,
				 rq->body_len > 0 ? rq->body : "");
	} else if (strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
	}
}

/* Parses "bytes START-END/TOTAL". */
static bool s3_parse_range(const char *v, size_t len, uint64_t *start_r)
{
	struct kstr s = kstr_make(v, len);
	size_t i = 0;

	if (!kstr_has_prefix_ci(s, "bytes "))
		return false;
	s.p += 6;
	s.len -= 6;
	while (i < s.len && s.p[i] != '-')
		i++;
	if (i == s.len)
		return false;
	return kstr_to_u64(kstr_make(s.p, i), start_r);
}

/* All headers of the final response are in: decides whether the body
 * fits. Returns false to abort the transfer. */
static bool s3_headers_done(struct s3_req *rq)
{
	struct buf *out = rq->out;
	uint64_t expect, room;

	if (out == NULL || (rq->status != 200 && rq->status != 206))
		return true;
	if (rq->status == 206) {
		if (!rq->ranged || !rq->have_range ||
		    rq->range_start != rq->range_off) {
			rq->bad_range = true;
			return false;
		}
	} else if (rq->ranged) {
		/* The server ignored the range: cut it out ourselves. */
		rq->skip = rq->range_off;
		rq->take = rq->range_len;
		if (rq->have_length) {
			rq->skip = KURA_MIN(rq->skip, rq->content_length);
			rq->take = KURA_MIN(rq->take,
					    rq->content_length - rq->skip);
		}
	}
	if (!rq->have_length)
		return true;	/* checked as the bytes arrive */
	expect = KURA_MIN(rq->content_length - rq->skip, rq->take);
	room = out->max == 0 ? UINT64_MAX :
		out->max > buf_used(out) ? out->max - buf_used(out) : 0;
	if (expect > room || expect > SIZE_MAX / 2) {
		rq->too_big = true;
		return false;
	}
	if (expect > 0)
		buf_reserve(out, (size_t)KURA_MIN(expect, S3_PREALLOC_MAX));
	return true;
}

static size_t s3_header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *rq = arg;
	size_t len = size * n, nlen, vlen;
	const char *colon, *v;

	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new response (after "100 Continue" too) */
		const char *sp = memchr(p, ' ', len);
		long st = 0;

		if (sp != NULL && (size_t)(p + len - sp) >= 4 &&
		    isdigit((unsigned char)sp[1]) &&
		    isdigit((unsigned char)sp[2]) &&
		    isdigit((unsigned char)sp[3]))
			st = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 +
				(sp[3] - '0');
		rq->status = st;
		rq->have_length = false;
		rq->chunked = false;
		rq->have_range = false;
		rq->put_id[0] = '\0';
		return size * n;
	}
	if (len == 0) {
		if (rq->status >= 200 && !s3_headers_done(rq))
			return 0;
		return size * n;
	}
	colon = memchr(p, ':', len);
	if (colon == NULL)
		return size * n;
	nlen = (size_t)(colon - p);
	v = colon + 1;
	while (v < p + len && (*v == ' ' || *v == '\t'))
		v++;
	vlen = (size_t)(p + len - v);
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (s3_ieq(p, nlen, "Content-Length")) {
		rq->have_length = kstr_to_u64(kstr_make(v, vlen),
					      &rq->content_length);
	} else if (s3_ieq(p, nlen, "Transfer-Encoding")) {
		rq->chunked = vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
	} else if (s3_ieq(p, nlen, "Content-Range")) {
		rq->have_range = s3_parse_range(v, vlen, &rq->range_start);
	} else if (s3_ieq(p, nlen, "Last-Modified")) {
		char tmp[64];
		time_t t;

		if (vlen < sizeof(tmp)) {
			memcpy(tmp, v, vlen);
			tmp[vlen] = '\0';
			t = curl_getdate(tmp, NULL);
			if (t != (time_t)-1)
				rq->mtime = (int64_t)t;
		}
	} else if (s3_ieq(p, nlen, S3_PUT_ID_HEADER)) {
		if (vlen == S3_PUT_ID_LEN) {
			memcpy(rq->put_id, v, vlen);
			rq->put_id[vlen] = '\0';
		}
	}
	return size * n;
}

static size_t s3_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *rq = arg;
	size_t len = size * n;

	if (rq->status < 200 || rq->status > 299) {
		/* an error document: its start is all we need */
		size_t room = S3_ERR_BODY_MAX - buf_used(&rq->err_body);

		buf_append(&rq->err_body, p, KURA_MIN(room, len));
		return len;
	}
	if (rq->out != NULL) {
		const char *d = p;
		size_t k = len;

		if (rq->skip > 0) {
			size_t sk = (size_t)KURA_MIN(rq->skip, (uint64_t)k);

			rq->skip -= sk;
			d += sk;
			k -= sk;
		}
		if ((uint64_t)k > rq->take)
			k = (size_t)rq->take;
		if (rq->take != UINT64_MAX)
			rq->take -= k;
		if (k > 0 && !buf_append(rq->out, d, k)) {
			rq->too_big = true;
			return 0;
		}
		return len;
	}
	if (rq->doc != NULL && !buf_append(rq->doc, p, len)) {
		rq->too_big = true;
		return 0;
	}
	return len;
}

/* One attempt: inside a task on the thread's multi handle, else
 * blocking. Sets rq->result and rq->status. */
static void s3_attempt(struct s3_req *rq)
{
	struct s3_ctx *c = s3_ctx_get();
	CURL *e;

	s3_req_reset(rq);
	if (task_current() != NULL) {
		const char *err = NULL;
		CURLMcode mc;

		if (s3_ctx_multi(c, rq->s, &err) < 0) {
			rq->result = CURLE_FAILED_INIT;
			snprintf(rq->curl_err, sizeof(rq->curl_err), "%s",
				 err + 4);
			return;
		}
		e = s3_easy_get(c);
		s3_easy_setup(rq, e);
		rq->task = task_current();
		mc = curl_multi_add_handle(c->multi, e);
		if (mc != CURLM_OK) {
			rq->result = CURLE_FAILED_INIT;
			snprintf(rq->curl_err, sizeof(rq->curl_err),
				 "curl_multi_add_handle: %s",
				 curl_multi_strerror(mc));
			s3_easy_put(c, e);
			return;
		}
		c->transfers++;
		c->busy++;
		while (!rq->done)
			task_suspend();
		/* busy kept s3_destroy() from freeing c meanwhile */
		c->busy--;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &rq->status);
		s3_easy_put(c, e);
		return;
	}
	if (c->blocking == NULL) {
		c->blocking = curl_easy_init();
		if (c->blocking == NULL)
			abort();
	} else {
		curl_easy_reset(c->blocking);
	}
	e = c->blocking;
	s3_easy_setup(rq, e);
	rq->result = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &rq->status);
	/* no pointer into rq may outlive the call */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
}

static void s3_parse_err_code(struct s3_req *rq)
{
	struct s3_err_doc d = { rq->code, sizeof(rq->code) };

	rq->code[0] = '\0';
	if (buf_used(&rq->err_body) == 0)
		return;
	/* A cut-off document is malformed at its end, but the <Code>
	 * before the cut was already seen. */
	s3_xml_walk((const char *)buf_head(&rq->err_body),
		    buf_used(&rq->err_body), s3_err_leaf, &d);
}

static bool s3_retryable(struct s3_req *rq)
{
	if (rq->too_big || rq->bad_range)
		return false;
	switch (rq->result) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
		return true;
	default:
		return false;
	}
	if (rq->status >= 500)
		return rq->status != 501 && rq->status != 505;
	if (rq->status == 408 || rq->status == 429)
		return true;
	/* Someone else's conditional write to the key was in progress:
	 * AWS asks to retry (the retry then gets 412 or 200). */
	if (rq->status == 409)
		return strcmp(rq->code, "ConditionalRequestConflict") == 0 ||
			strcmp(rq->code, "OperationAborted") == 0;
	return rq->status == 400 && strcmp(rq->code, "RequestTimeout") == 0;
}

static void s3_sleep_ms(unsigned ms)
{
	if (task_current() != NULL) {
		task_sleep_ms(ms);
	} else {
		struct timespec ts = { (time_t)(ms / 1000),
				       (long)(ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* Describes the outcome of rq for an error message. */
static const char *s3_outcome(struct s3_req *rq, char *tmp, size_t size)
{
	if (rq->result != CURLE_OK) {
		const char *what = curl_easy_strerror(rq->result);

		if (rq->curl_err[0] != '\0' && strcmp(rq->curl_err, what) != 0)
			snprintf(tmp, size, "%s (%s)", what, rq->curl_err);
		else
			snprintf(tmp, size, "%s", what);
	} else {
		snprintf(tmp, size, "HTTP %ld%s%s", rq->status,
			 rq->code[0] != '\0' ? " " : "", rq->code);
	}
	return tmp;
}

/* Runs rq, retrying what may be retried (retry: the request is
 * idempotent or handles its own replay). Returns the number of
 * attempts made. */
static unsigned s3_exec(struct s3_req *rq, bool retry)
{
	struct store_s3 *s = rq->s;
	unsigned attempt;

	for (attempt = 1;; attempt++) {
		uint64_t cap;
		unsigned delay, jitter;
		char tmp[CURL_ERROR_SIZE + 64];

		s3_attempt(rq);
		if (rq->result == CURLE_OK && (rq->status < 200 ||
					       rq->status > 299))
			s3_parse_err_code(rq);
		if (!retry || attempt >= s->max_attempts || !s3_retryable(rq))
			return attempt;
		/* full jitter over the upper half of the doubling window */
		cap = (uint64_t)s->retry_base_ms << KURA_MIN(attempt - 1, 16u);
		if (cap > S3_RETRY_MAX_MS)
			cap = S3_RETRY_MAX_MS;
		random_bytes(&jitter, sizeof(jitter));
		delay = (unsigned)(cap / 2 + jitter % (cap / 2 + 1));
		log_warn("s3: %s %s: %s; retry %u/%u in %u ms", rq->method,
			 rq->what, s3_outcome(rq, tmp, sizeof(tmp)), attempt,
			 s->max_attempts - 1, delay);
		s3_sleep_ms(delay);
	}
}

/* KURA_EUNAVAIL with "s3: PUT u/ab/x: HTTP 503 SlowDown". */
static int s3_fail(struct s3_req *rq, unsigned attempts, const char **error_r)
{
	char tmp[CURL_ERROR_SIZE + 64];

	s3_outcome(rq, tmp, sizeof(tmp));
	if (attempts > 1)
		return s3_error(error_r, KURA_EUNAVAIL,
				"s3: %s %s: %s (%u attempts)", rq->method,
				rq->what, tmp, attempts);
	return s3_error(error_r, KURA_EUNAVAIL, "s3: %s %s: %s", rq->method,
			rq->what, tmp);
}

static void s3_req_init(struct s3_req *rq, struct store_s3 *s,
			const char *method, const char *what)
{
	memset(rq, 0, sizeof(*rq));
	rq->s = s;
	rq->method = method;
	rq->what = what;
	buf_init(&rq->err_body, S3_ERR_BODY_MAX + 1);
}

static void s3_req_deinit(struct s3_req *rq)
{
	curl_slist_free_all(rq->headers);
	free(rq->url);
	buf_deinit(&rq->err_body);
}

static void s3_add_header(struct s3_req *rq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void s3_add_header(struct s3_req *rq, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	rq->headers = curl_slist_append(rq->headers, line);
	if (rq->headers == NULL)
		abort();
}

/* URL of key (NULL: the bucket) with an optional, already canonical
 * query. */
static void s3_set_url(struct s3_req *rq, const char *key,
		       const char *query)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, rq->s->base);
	buf_append_str(&b, "/");
	if (key != NULL)
		s3_encode(&b, key, true);
	if (query != NULL) {
		buf_append_str(&b, "?");
		buf_append_str(&b, query);
	}
	rq->url = xstrdup(buf_cstr(&b));
	buf_deinit(&b);
}

/* Headers every request carries. */
static void s3_common_headers(struct s3_req *rq, const char *sha256)
{
	s3_add_header(rq, "x-amz-content-sha256: %s", sha256);
	if (rq->s->token_header != NULL) {
		rq->headers = curl_slist_append(rq->headers,
						rq->s->token_header);
		if (rq->headers == NULL)
			abort();
	}
}

static int s3_check_key(const char *key, const char **error_r)
{
	char esc[96];

	if (key == NULL)
		return s3_error(error_r, KURA_EINVAL, "s3: no key");
	if (store_key_is_valid(key))
		return 0;
	log_escape(key, strlen(key), esc, sizeof(esc));
	return s3_error(error_r, KURA_EINVAL, "s3: invalid key \"%s\"", esc);
}

/* ---- operations ---- */

/* HEAD key: 0, KURA_ENOTFOUND or KURA_EUNAVAIL; put_id_r (may be NULL)
 * gets x-amz-meta-kura-put-id or "". */
static int s3_head_req(struct store_s3 *s, const char *key,
		       struct store_stat *st_r, char *put_id_r,
		       const char **error_r)
{
	struct s3_req rq;
	unsigned attempts;
	int r;

	s3_req_init(&rq, s, "HEAD", key);
	s3_set_url(&rq, key, NULL);
	s3_common_headers(&rq, s3_empty_sha256);
	attempts = s3_exec(&rq, true);
	if (rq.result == CURLE_OK && rq.status == 200 && rq.have_length) {
		if (st_r != NULL) {
			st_r->size = rq.content_length;
			st_r->mtime = rq.mtime;
		}
		if (put_id_r != NULL)
			memcpy(put_id_r, rq.put_id, sizeof(rq.put_id));
		r = 0;
	} else if (rq.result == CURLE_OK && rq.status == 404) {
		r = s3_error(error_r, KURA_ENOTFOUND, "s3: %s: not found", key);
	} else {
		r = s3_fail(&rq, attempts, error_r);
	}
	s3_req_deinit(&rq);
	return r;
}

static int s3_head(struct store *st, const char *key, struct store_stat *st_r,
		   const char **error_r)
{
	int r = s3_check_key(key, error_r);

	if (r < 0)
		return r;
	return s3_head_req(s3_of(st), key, st_r, NULL, error_r);
}

static int s3_get(struct store *st, const char *key, uint64_t off,
		  uint64_t len, struct buf *out, const char **error_r)
{
	struct store_s3 *s = s3_of(st);
	struct s3_req rq;
	unsigned attempts;
	int r;

	r = s3_check_key(key, error_r);
	if (r < 0)
		return r;
	if (len == 0)
		return s3_head_req(s, key, NULL, NULL, error_r);
	s3_req_init(&rq, s, "GET", key);
	s3_set_url(&rq, key, NULL);
	s3_common_headers(&rq, s3_empty_sha256);
	rq.out = out;
	rq.out_used0 = buf_used(out);
	if (off > 0 || len != STORE_LEN_ALL) {
		rq.ranged = true;
		rq.range_off = off;
		rq.range_len = len;
		if (len == STORE_LEN_ALL || len - 1 > UINT64_MAX - off)
			s3_add_header(&rq, "Range: bytes=%" PRIu64 "-", off);
		else
			s3_add_header(&rq, "Range: bytes=%" PRIu64 "-%" PRIu64,
				      off, off + len - 1);
	}
	attempts = s3_exec(&rq, true);
	if (rq.too_big) {
		r = s3_error(error_r, KURA_ETOOBIG,
			     "s3: %s: %" PRIu64 " bytes do not fit the buffer",
			     key, rq.have_length ? rq.content_length : 0);
	} else if (rq.bad_range) {
		r = s3_error(error_r, KURA_EUNAVAIL,
			     "s3: GET %s: the server sent another range", key);
	} else if (rq.result != CURLE_OK) {
		r = s3_fail(&rq, attempts, error_r);
	} else if (rq.status == 200 || rq.status == 206) {
		/* A reply cut short can still look like a success to curl
		 * (a closed connection ends the body): the length must be
		 * announced and met. */
		uint64_t got = buf_used(out) - rq.out_used0;
		uint64_t want = rq.content_length;
		if (rq.have_length && rq.status == 200 && rq.ranged) {
			/* the server ignored the range: we cut it out */
			uint64_t skip = KURA_MIN(rq.range_off, want);
			want = KURA_MIN(want - skip, rq.range_len);
		}
		if ((!rq.have_length && !rq.chunked) || (rq.have_length && got != want))
			r = s3_error(error_r, KURA_EUNAVAIL,
				     "s3: GET %s: truncated response (%" PRIu64
				     " of %" PRIu64 " bytes)", key, got,
				     rq.have_length ? rq.content_length : 0);
		else
			r = 0;
	} else if (rq.status == 416) {
		/* the range starts at or past the end: nothing to append */
		r = 0;
	} else if (rq.status == 404 &&
		   strcmp(rq.code, "NoSuchBucket") != 0) {
		r = s3_error(error_r, KURA_ENOTFOUND, "s3: %s: not found", key);
	} else {
		r = s3_fail(&rq, attempts, error_r);
	}
	if (r < 0 || rq.status == 416)
		out->len = out->pos + rq.out_used0;
	s3_req_deinit(&rq);
	return r;
}

static int s3_put(struct store *st, const char *key, const void *data,
		  size_t len, unsigned flags, const char *const *meta,
		  const char **error_r)
{
	struct store_s3 *s = s3_of(st);
	bool create_only = (flags & STORE_PUT_CREATE_ONLY) != 0;
	char sha[65], put_id[S3_PUT_ID_LEN + 1] = "";
	struct s3_req rq;
	unsigned attempts;
	int r;

	r = s3_check_key(key, error_r);
	if (r < 0)
		return r;
	if ((uint64_t)len > S3_PUT_MAX)
		return s3_error(error_r, KURA_ETOOBIG,
				"s3: %s: %zu bytes are more than one PUT "
				"takes", key, len);
	s3_req_init(&rq, s, "PUT", key);
	r = s3_meta_headers(meta, &rq.headers, error_r);
	if (r < 0) {
		s3_req_deinit(&rq);
		return r;
	}
	s3_set_url(&rq, key, NULL);
	s3_sha256_hex(data, len, sha);
	s3_common_headers(&rq, sha);
	s3_add_header(&rq, "Content-Type: application/octet-stream");
	if (create_only) {
		uint8_t rnd[S3_PUT_ID_LEN / 2];

		/* Tells our own earlier attempt from someone else's
		 * object when a retry gets 412. */
		random_bytes(rnd, sizeof(rnd));
		hex_encode(rnd, sizeof(rnd), put_id);
		s3_add_header(&rq, "If-None-Match: *");
		s3_add_header(&rq, "%s: %s", S3_PUT_ID_HEADER, put_id);
	}
	rq.body = data;
	rq.body_len = len;
	attempts = s3_exec(&rq, true);
	if (rq.result == CURLE_OK && rq.status == 200) {
		r = 0;
	} else if (rq.result == CURLE_OK && rq.status == 412 && create_only) {
		/* An earlier attempt may have stored the object and lost
		 * only its answer: ours, or curl's own silent resend on a
		 * fresh connection when a reused one died, which leaves
		 * attempts at 1. So a 412 is checked every time. */
		char got[S3_PUT_ID_LEN + 1] = "";
		const char *err = NULL;
		int hr = s3_head_req(s, key, NULL, got, &err);

		if (hr == 0 && strcmp(got, put_id) == 0)
			r = 0;
		else if (hr == 0 && got[0] == '\0')
			/* Every create-only writer sets a put id: none means
			 * the answer was cut short. Unknown, not a conflict. */
			r = s3_error(error_r, KURA_EUNAVAIL,
				     "s3: PUT %s: 412, and the object's put id "
				     "could not be read", key);
		else if (hr == KURA_EUNAVAIL)
			r = s3_error(error_r, KURA_EUNAVAIL,
				     "s3: PUT %s: 412, but whether the object "
				     "is ours is unknown: %s", key, err);
		else
			r = s3_error(error_r, KURA_ECONFLICT, "s3: %s: exists",
				     key);
	} else {
		r = s3_fail(&rq, attempts, error_r);
	}
	s3_req_deinit(&rq);
	return r;
}

static int s3_del(struct store *st, const char *key, const char **error_r)
{
	struct s3_req rq;
	unsigned attempts;
	int r;

	r = s3_check_key(key, error_r);
	if (r < 0)
		return r;
	s3_req_init(&rq, s3_of(st), "DELETE", key);
	s3_set_url(&rq, key, NULL);
	s3_common_headers(&rq, s3_empty_sha256);
	attempts = s3_exec(&rq, true);
	if (rq.result == CURLE_OK &&
	    (rq.status == 200 || rq.status == 204 ||
	     (rq.status == 404 && strcmp(rq.code, "NoSuchBucket") != 0)))
		r = 0;
	else
		r = s3_fail(&rq, attempts, error_r);
	s3_req_deinit(&rq);
	return r;
}

static int s3_cmp_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One ListObjectsV2 page into d. */
static int s3_list_page(struct store_s3 *s, const char *prefix,
			const char *after, const char *token, size_t max_keys,
			struct s3_list_doc *d, const char **error_r)
{
	struct s3_req rq;
	struct buf q, doc;
	unsigned attempts;
	int r;

	/* parameters sorted by name: SigV4 in curl 7.88 signs the query
	 * as it is */
	buf_init(&q, 0);
	if (token != NULL) {
		buf_append_str(&q, "continuation-token=");
		s3_encode(&q, token, false);
		buf_append_str(&q, "&");
	}
	buf_printf(&q, "list-type=2&max-keys=%zu&prefix=", max_keys);
	s3_encode(&q, prefix, false);
	if (after != NULL && token == NULL) {
		buf_append_str(&q, "&start-after=");
		s3_encode(&q, after, false);
	}
	s3_req_init(&rq, s, "LIST", prefix[0] != '\0' ? prefix : "/");
	rq.method = "GET";
	s3_set_url(&rq, NULL, buf_cstr(&q));
	buf_deinit(&q);
	s3_common_headers(&rq, s3_empty_sha256);
	buf_init(&doc, S3_LIST_BODY_MAX);
	rq.doc = &doc;
	attempts = s3_exec(&rq, true);
	rq.method = "LIST";
	if (rq.too_big) {
		r = s3_error(error_r, KURA_EUNAVAIL,
			     "s3: LIST %s: answer larger than %u bytes",
			     rq.what, S3_LIST_BODY_MAX);
	} else if (rq.result != CURLE_OK || rq.status != 200) {
		r = s3_fail(&rq, attempts, error_r);
	} else {
		free(d->token);
		d->token = NULL;
		d->truncated = false;
		d->have_truncated = false;
		d->raw = 0;
		r = s3_xml_walk((const char *)buf_head(&doc), buf_used(&doc),
				s3_list_leaf, d);
		if (r != 0 || !d->have_truncated ||
		    (d->truncated && d->token == NULL))
			r = s3_error(error_r, KURA_EUNAVAIL,
				     "s3: LIST %s: malformed answer", rq.what);
	}
	buf_deinit(&doc);
	s3_req_deinit(&rq);
	return r;
}

static int s3_list(struct store *st, const char *prefix, const char *after,
		   size_t max, struct store_list *out, const char **error_r)
{
	struct store_s3 *s = s3_of(st);
	struct s3_list_doc d;
	size_t n_before;
	bool sorted = true;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (prefix == NULL)
		prefix = "";
	if (strlen(prefix) > STORE_KEY_MAX || prefix[0] == '/' ||
	    strstr(prefix, "..") != NULL || !s3_printable(prefix))
		return s3_error(error_r, KURA_EINVAL, "s3: invalid prefix");
	if (after != NULL && (strlen(after) > STORE_KEY_MAX ||
			      !s3_printable(after)))
		return s3_error(error_r, KURA_EINVAL,
				"s3: invalid list start");
	memset(&d, 0, sizeof(d));
	d.prefix = prefix;
	for (;;) {
		/* max 0 still asks for one key: it tells "truncated" */
		size_t want = max == 0 ? 1 : max - d.n;
		char *prev_token = d.token != NULL ? xstrdup(d.token) : NULL;
		bool stuck;

		n_before = d.n;
		r = s3_list_page(s, prefix, after, d.token,
				 KURA_MIN(want, (size_t)S3_LIST_PAGE), &d,
				 error_r);
		/* keys past what the caller asked for only tell that
		 * there are more */
		while (r == 0 && d.n > max) {
			free(d.keys[--d.n]);
			d.truncated = true;
		}
		stuck = prev_token != NULL && d.token != NULL &&
			strcmp(prev_token, d.token) == 0;
		free(prev_token);
		if (r < 0 || max == 0 || d.n == max || !d.truncated)
			break;
		if ((d.raw == 0 && d.n == n_before) || stuck) {
			/* a broken server would keep us here forever */
			r = s3_error(error_r, KURA_EUNAVAIL,
				     "s3: LIST %s: truncated pages that make "
				     "no progress", prefix);
			break;
		}
	}
	free(d.token);
	if (r < 0) {
		for (size_t i = 0; i < d.n; i++)
			free(d.keys[i]);
		free(d.keys);
		return r;
	}
	for (size_t i = 1; i < d.n; i++)
		if (strcmp(d.keys[i - 1], d.keys[i]) >= 0)
			sorted = false;
	if (!sorted)
		qsort(d.keys, d.n, sizeof(*d.keys), s3_cmp_keys);
	out->keys = d.keys;
	out->count = d.n;
	out->truncated = d.truncated;
	return 0;
}

static void s3_destroy(struct store *st)
{
	struct store_s3 *s = s3_of(st);
	struct s3_ctx *c = s3_ctx_cur;

	/* Drops this thread's connections if nothing else uses them; the
	 * context is made anew on the next request. */
	if (c != NULL && c->transfers == 0 && c->busy == 0) {
		s3_ctx_cur = NULL;
		pthread_setspecific(s3_ctx_key, NULL);
		s3_ctx_free(c);
	}
	free(s->base);
	free(s->bucket);
	free(s->access_key);
	if (s->secret_key != NULL) {
		explicit_bzero(s->secret_key, strlen(s->secret_key));
		free(s->secret_key);
	}
	free(s->token_header);
	free(s->sigv4);
	free(s->ca_file);
	free(s);
}

static const struct store_ops s3_ops = {
	.name = "s3",
	.get = s3_get,
	.put = s3_put,
	.head = s3_head,
	.del = s3_del,
	.list = s3_list,
	.destroy = s3_destroy,
};

/* ---- create ---- */

static bool s3_bucket_ok(const char *b, size_t len, bool vhost)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)b[i];

		if (isalnum(c) || c == '-' || c == '.')
			continue;
		if (!vhost && c == '_')
			continue;
		return false;
	}
	return b[0] != '.' && b[len - 1] != '.';
}

static bool s3_authority_ok(const char *a, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)a[i];

		if (!isalnum(c) && c != '-' && c != '.' && c != ':' &&
		    c != '[' && c != ']' && c != '_')
			return false;
	}
	return true;
}

int store_s3_create(const char *url, const struct store_s3_options *opt,
		    struct store **store_r, const char **error_r)
{
	struct store_s3 *s;
	const char *p, *auth, *slash, *bucket;
	size_t auth_len, bucket_len, scheme_len;
	const char *region;

	*store_r = NULL;
	pthread_once(&s3_once, s3_global_init);
	if (!s3_global_ok)
		return s3_error(error_r, KURA_EUNAVAIL,
				"s3: libcurl initialisation failed");
	if (opt == NULL || opt->access_key == NULL ||
	    opt->access_key[0] == '\0' || opt->secret_key == NULL ||
	    opt->secret_key[0] == '\0')
		return s3_error(error_r, KURA_EINVAL,
				"s3: an access key and a secret key are "
				"needed");
	if (!s3_printable(opt->access_key) || !s3_printable(opt->secret_key) ||
	    (opt->session_token != NULL &&
	     !s3_printable(opt->session_token)))
		return s3_error(error_r, KURA_EINVAL,
				"s3: keys must be printable ASCII");
	region = opt->region != NULL && opt->region[0] != '\0' ?
		opt->region : S3_DEFAULT_REGION;
	for (p = region; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return s3_error(error_r, KURA_EINVAL,
					"s3: invalid region");
	if (strncmp(url, "s3:", 3) == 0)
		url += 3;
	if (strncmp(url, "http://", 7) == 0)
		scheme_len = 7;
	else if (strncmp(url, "https://", 8) == 0)
		scheme_len = 8;
	else
		return s3_error(error_r, KURA_EINVAL,
				"s3: the URL must start with http:// or "
				"https://");
	auth = url + scheme_len;
	slash = strchr(auth, '/');
	auth_len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
	/* Never echo the authority: it might hold credentials. */
	if (memchr(auth, '@', auth_len) != NULL)
		return s3_error(error_r, KURA_EINVAL,
				"s3: credentials do not belong in the URL; "
				"use the environment");
	if (!s3_authority_ok(auth, auth_len))
		return s3_error(error_r, KURA_EINVAL, "s3: invalid host in URL");
	if (slash == NULL)
		return s3_error(error_r, KURA_EINVAL,
				"s3: the URL names no bucket "
				"(http(s)://HOST[:PORT]/BUCKET)");
	bucket = slash + 1;
	bucket_len = strcspn(bucket, "/");
	if (bucket[bucket_len] == '/' && bucket[bucket_len + 1] != '\0')
		return s3_error(error_r, KURA_EINVAL,
				"s3: nothing may follow the bucket in the URL");
	if (!s3_bucket_ok(bucket, bucket_len, opt->virtual_host))
		return s3_error(error_r, KURA_EINVAL,
				"s3: invalid bucket name in URL");

	s = xcalloc(1, sizeof(*s));
	s->store.ops = &s3_ops;
	s->bucket = xmalloc(bucket_len + 1);
	memcpy(s->bucket, bucket, bucket_len);
	s->bucket[bucket_len] = '\0';
	if (opt->virtual_host) {
		size_t n = scheme_len + bucket_len + 1 + auth_len + 1;

		s->base = xmalloc(n);
		snprintf(s->base, n, "%.*s%s.%.*s", (int)scheme_len, url,
			 s->bucket, (int)auth_len, auth);
	} else {
		size_t n = scheme_len + auth_len + 1 + bucket_len + 1;

		s->base = xmalloc(n);
		snprintf(s->base, n, "%.*s/%s", (int)(scheme_len + auth_len),
			 url, s->bucket);
	}
	s->access_key = xstrdup(opt->access_key);
	s->secret_key = xstrdup(opt->secret_key);
	if (opt->session_token != NULL && opt->session_token[0] != '\0') {
		size_t n = strlen(opt->session_token) + 32;

		s->token_header = xmalloc(n);
		snprintf(s->token_header, n, "x-amz-security-token: %s",
			 opt->session_token);
	}
	{
		size_t n = strlen(region) + 16;

		s->sigv4 = xmalloc(n);
		snprintf(s->sigv4, n, "aws:amz:%s:s3", region);
	}
	s->ca_file = opt->ca_file != NULL && opt->ca_file[0] != '\0' ?
		xstrdup(opt->ca_file) : NULL;
	s->connect_timeout_ms = opt->connect_timeout_ms ?
		(long)opt->connect_timeout_ms : S3_CONNECT_TIMEOUT_MS;
	s->timeout_ms = opt->timeout_ms ? (long)opt->timeout_ms :
		S3_TIMEOUT_MS;
	s->max_attempts = opt->max_attempts ? opt->max_attempts :
		S3_MAX_ATTEMPTS;
	s->retry_base_ms = opt->retry_base_ms ? opt->retry_base_ms :
		S3_RETRY_BASE_MS;
	if (s->retry_base_ms < 2)
		s->retry_base_ms = 2;
	s->max_host_conns = opt->max_host_connections ?
		(long)opt->max_host_connections : S3_MAX_HOST_CONNS;
	*store_r = &s->store;
	return 0;
}
