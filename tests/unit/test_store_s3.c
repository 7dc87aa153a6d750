/* Unit tests for storage/store_s3.c.
 *
 * Always: against a fake S3 server in this process (faults the real one
 * will not show: 5xx and retries, lost answers, timeouts, odd XML,
 * ignored ranges), once blocking and once inside a task.
 *
 * With KURA_S3_URL (s3:http://HOST:PORT/BUCKET), AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY set (tests/s3/start-rgw.sh DIR prints them):
 * the whole store contract against that server, blocking and inside
 * tasks; 200 concurrent tasks on one loop; the create-only race; list
 * paging over more than 1000 keys; a lost answer to a create-only PUT
 * through a proxy. KURA_S3_BENCH=1 adds a short benchmark. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/errors.h"
#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "storage/store.h"
#include "tests/unit/test.h"

static struct loop *L;

/* Runs the loop until every task is done. */
static void run_tasks(void)
{
	uint64_t end = time_mono_usec() + 60 * 1000000ull;

	while (task_count() > 0 && time_mono_usec() < end)
		loop_run_once(L, 50);
	CHECK_EQ_INT(task_count(), 0);
	/* let cancelled polls complete */
	for (int i = 0; i < 3; i++)
		loop_run_once(L, 1);
}

/* Runs fn(arg) in a task on L (and every task spawned before). */
static void in_task(task_fn *fn, void *arg)
{
	task_spawn(L, fn, arg);
	run_tasks();
}

/* ---- a fake S3 server ---- */

struct fake_req {
	char method[16];
	char target[4096];
	char headers[16384];	/* "name: value\r\n"..., as received */
	char *body;
	size_t body_len;
	int n;			/* 0 for the first request of a scenario */
};

enum fake_action {
	FAKE_KEEP = 0,		/* answered, keep the connection */
	FAKE_CLOSE,		/* close without (more of) an answer */
	FAKE_STALL,		/* never answer; close at the end */
};

typedef enum fake_action fake_fn(struct fake_req *rq, int fd);

static int fake_listen_fd = -1;
static int fake_port;
static fake_fn *_Atomic fake_handler;
static atomic_int fake_count;
static atomic_bool fake_stop;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
/* what the last request looked like */
static struct fake_req fake_last;
/* scenario state */
static char fake_put_id[64];
static atomic_int fake_delay_ms;

static void fake_write(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

/* The request being answered on this connection thread is a HEAD:
 * its answer has a Content-Length but no body. */
static __thread bool fake_is_head;

static void fake_reply(int fd, int status, const char *extra,
		       const char *body)
{
	char head[1024];
	size_t blen = body != NULL ? strlen(body) : 0;

	snprintf(head, sizeof(head),
		 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status,
		 blen, extra != NULL ? extra : "");
	fake_write(fd, head, strlen(head));
	if (blen > 0 && !fake_is_head)
		fake_write(fd, body, blen);
}

static void fake_error(int fd, int status, const char *code)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
		 "</Code><Message>m</Message></Error>", code);
	fake_reply(fd, status, "Content-Type: application/xml\r\n", body);
}

/* Value of header name in rq (case-insensitive), or NULL; into out. */
static const char *fake_header(const struct fake_req *rq, const char *name,
			       char *out, size_t size)
{
	const char *p = rq->headers;
	size_t nlen = strlen(name);

	while (*p != '\0') {
		const char *eol = strstr(p, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1;
			while (*v == ' ')
				v++;
			snprintf(out, size, "%.*s", (int)(eol - v), v);
			return out;
		}
		p = eol + 2;
	}
	return NULL;
}

/* Reads one request; false on EOF or error. */
static bool fake_read_req(int fd, struct buf *in, struct fake_req *rq)
{
	char *end, *line_end, cl[32];
	size_t head_len;
	unsigned long long clen = 0;

	for (;;) {
		const char *s = buf_cstr(in);
		end = s != NULL ? strstr(s, "\r\n\r\n") : NULL;
		if (end != NULL)
			break;
		uint8_t *d = buf_reserve(in, 4096);
		if (d == NULL)
			return false;
		ssize_t r = recv(fd, d, 4096, 0);
		if (r <= 0)
			return false;
		buf_commit(in, (size_t)r);
	}
	head_len = (size_t)(end - (char *)buf_head(in)) + 4;
	memset(rq, 0, sizeof(*rq));
	line_end = strstr((char *)buf_head(in), "\r\n");
	if (sscanf((char *)buf_head(in), "%15s %4095s", rq->method,
		   rq->target) != 2)
		return false;
	snprintf(rq->headers, sizeof(rq->headers), "%.*s",
		 (int)(end + 2 - (line_end + 2)), line_end + 2);
	if (fake_header(rq, "Content-Length", cl, sizeof(cl)) != NULL)
		clen = strtoull(cl, NULL, 10);
	if (clen > (64u << 20))
		return false;
	while (buf_used(in) < head_len + clen) {
		uint8_t *d = buf_reserve(in, 65536);
		if (d == NULL)
			return false;
		ssize_t r = recv(fd, d, 65536, 0);
		if (r <= 0)
			return false;
		buf_commit(in, (size_t)r);
	}
	rq->body = xmalloc(clen + 1);
	memcpy(rq->body, buf_head(in) + head_len, clen);
	rq->body[clen] = '\0';
	rq->body_len = clen;
	buf_consume(in, head_len + clen);
	return true;
}

static void *fake_conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct buf in;
	struct fake_req *rq = xmalloc(sizeof(*rq));

	buf_init(&in, 128u << 20);
	while (!atomic_load(&fake_stop) && fake_read_req(fd, &in, rq)) {
		enum fake_action a;
		fake_fn *fn = atomic_load(&fake_handler);
		int delay = atomic_load(&fake_delay_ms);

		rq->n = atomic_fetch_add(&fake_count, 1);
		pthread_mutex_lock(&fake_lock);
		free(fake_last.body);
		fake_last = *rq;
		fake_last.body = xmalloc(rq->body_len + 1);
		memcpy(fake_last.body, rq->body, rq->body_len + 1);
		pthread_mutex_unlock(&fake_lock);
		if (delay > 0)
			usleep((useconds_t)delay * 1000);
		fake_is_head = strcmp(rq->method, "HEAD") == 0;
		a = fn != NULL ? fn(rq, fd) : FAKE_CLOSE;
		free(rq->body);
		rq->body = NULL;
		if (a == FAKE_STALL) {
			for (int i = 0; i < 300 && !atomic_load(&fake_stop);
			     i++)
				usleep(10000);
			break;
		}
		if (a == FAKE_CLOSE)
			break;
	}
	free(rq);
	buf_deinit(&in);
	close(fd);
	return NULL;
}

static void *fake_accept_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&fake_stop)) {
		struct pollfd p = { fake_listen_fd, POLLIN, 0 };
		pthread_t th;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept4(fake_listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (pthread_create(&th, NULL, fake_conn_main,
				   (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(th);
	}
	return NULL;
}

static int listen_any(int *port_r)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 256) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		close(fd);
		return -1;
	}
	*port_r = ntohs(a.sin_port);
	return fd;
}

static pthread_t fake_thread;

static bool fake_start(void)
{
	fake_listen_fd = listen_any(&fake_port);
	if (fake_listen_fd < 0)
		return false;
	return pthread_create(&fake_thread, NULL, fake_accept_main, NULL) == 0;
}

static void fake_set(fake_fn *fn)
{
	atomic_store(&fake_count, 0);
	atomic_store(&fake_handler, fn);
}

static struct store *fake_store(unsigned timeout_ms, unsigned attempts)
{
	struct store_s3_options o;
	struct store *s = NULL;
	const char *err = NULL;
	char url[128];

	memset(&o, 0, sizeof(o));
	o.access_key = "AKIDFAKE";
	o.secret_key = "secretfake";
	o.region = "eu-west-9";
	o.timeout_ms = timeout_ms;
	o.max_attempts = attempts;
	o.retry_base_ms = 2;
	snprintf(url, sizeof(url), "s3:http://127.0.0.1:%d/bkt", fake_port);
	if (store_s3_create(url, &o, &s, &err) != 0)
		fprintf(stderr, "store_s3_create: %s\n", err);
	return s;
}

/* ---- fake scenarios ---- */

static enum fake_action h_503_twice(struct fake_req *rq, int fd)
{
	if (rq->n < 2)
		fake_error(fd, 503, "SlowDown");
	else
		fake_reply(fd, 200, NULL, "hello");
	return FAKE_KEEP;
}

static enum fake_action h_503(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_error(fd, 503, "SlowDown");
	return FAKE_KEEP;
}

static enum fake_action h_500_nobody(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_reply(fd, 500, NULL, NULL);
	return FAKE_KEEP;
}

static enum fake_action h_403(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_error(fd, 403, "AccessDenied");
	return FAKE_KEEP;
}

static enum fake_action h_404_key(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_error(fd, 404, "NoSuchKey");
	return FAKE_KEEP;
}

static enum fake_action h_404_bucket(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_error(fd, 404, "NoSuchBucket");
	return FAKE_KEEP;
}

/* A server that ignores Range. */
static enum fake_action h_no_range(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_reply(fd, 200, NULL, "0123456789");
	return FAKE_KEEP;
}

/* ... and sends no Content-Length either */
static enum fake_action h_no_range_chunked(struct fake_req *rq, int fd)
{
	static const char resp[] =
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n";

	(void)rq;
	fake_write(fd, resp, sizeof(resp) - 1);
	return FAKE_KEEP;
}

static enum fake_action h_wrong_range(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_reply(fd, 206, "Content-Range: bytes 0-3/10\r\n", "0123");
	return FAKE_KEEP;
}

static enum fake_action h_big(struct fake_req *rq, int fd)
{
	(void)rq;
	/* 100 bytes */
	fake_reply(fd, 200, NULL,
		   "0123456789012345678901234567890123456789"
		   "0123456789012345678901234567890123456789"
		   "01234567890123456789");
	return FAKE_KEEP;
}

/* The same without Content-Length: the limit is found as bytes come. */
static enum fake_action h_big_chunked(struct fake_req *rq, int fd)
{
	static const char resp[] =
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"20\r\n0123456789abcdef0123456789abcdef\r\n"
		"20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n";

	(void)rq;
	fake_write(fd, resp, sizeof(resp) - 1);
	return FAKE_KEEP;
}

static enum fake_action h_ok(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_reply(fd, 200, NULL, NULL);
	return FAKE_KEEP;
}

static enum fake_action h_204(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_reply(fd, 204, NULL, NULL);
	return FAKE_KEEP;
}

static enum fake_action h_head(struct fake_req *rq, int fd)
{
	static const char resp[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n"
		"Last-Modified: Mon, 12 Oct 2009 17:50:00 GMT\r\n\r\n";

	(void)rq;
	fake_write(fd, resp, sizeof(resp) - 1);
	return FAKE_KEEP;
}

/* Create-only PUT whose first answer is lost; the stored object's put
 * id is ours (mine = true) or someone else's. */
static bool lost_mine;

static enum fake_action h_lost_answer(struct fake_req *rq, int fd)
{
	char id[64], extra[128];

	if (strcmp(rq->method, "PUT") == 0 && rq->n == 0) {
		if (fake_header(rq, "x-amz-meta-kura-put-id", id,
				sizeof(id)) != NULL)
			snprintf(fake_put_id, sizeof(fake_put_id), "%s", id);
		return FAKE_CLOSE;	/* stored, answer lost */
	}
	if (strcmp(rq->method, "PUT") == 0) {
		fake_error(fd, 412, "PreconditionFailed");
		return FAKE_KEEP;
	}
	if (strcmp(rq->method, "HEAD") == 0) {
		snprintf(extra, sizeof(extra),
			 "x-amz-meta-kura-put-id: %s\r\n",
			 lost_mine ? fake_put_id :
			 "00000000000000000000000000000000");
		/* HEAD: Content-Length is the object's, no body follows */
		char resp[256];
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n%s\r\n",
			 extra);
		fake_write(fd, resp, strlen(resp));
		return FAKE_KEEP;
	}
	fake_reply(fd, 400, NULL, NULL);
	return FAKE_KEEP;
}

static enum fake_action h_409_then_412(struct fake_req *rq, int fd)
{
	if (strcmp(rq->method, "PUT") == 0 && rq->n == 0) {
		fake_error(fd, 409, "ConditionalRequestConflict");
	} else if (strcmp(rq->method, "PUT") == 0) {
		fake_error(fd, 412, "PreconditionFailed");
	} else {
		static const char resp[] =
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
			"x-amz-meta-kura-put-id: "
			"11111111111111111111111111111111\r\n\r\n";
		fake_write(fd, resp, sizeof(resp) - 1);
	}
	return FAKE_KEEP;
}

/* 412 to PUT; HEAD shows someone else's object */
static enum fake_action h_412(struct fake_req *rq, int fd)
{
	static const char head[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		"x-amz-meta-kura-put-id: 22222222222222222222222222222222\r\n"
		"\r\n";

	if (strcmp(rq->method, "HEAD") == 0)
		fake_write(fd, head, sizeof(head) - 1);
	else
		fake_error(fd, 412, "PreconditionFailed");
	return FAKE_KEEP;
}

static enum fake_action h_412_head_503(struct fake_req *rq, int fd)
{
	if (strcmp(rq->method, "HEAD") == 0)
		fake_reply(fd, 503, NULL, NULL);
	else
		fake_error(fd, 412, "PreconditionFailed");
	return FAKE_KEEP;
}

static enum fake_action h_stall(struct fake_req *rq, int fd)
{
	(void)rq;
	(void)fd;
	return FAKE_STALL;
}

static enum fake_action h_list(struct fake_req *rq, int fd)
{
	static const char page1[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!DOCTYPE x>"
		"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/"
		"2006-03-01/\"><Name>bkt</Name><Prefix>p/</Prefix>"
		"<KeyCount>5</KeyCount><MaxKeys>1000</MaxKeys>"
		"<!-- a comment <Key>no</Key> -->"
		"<IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>tok/+=</NextContinuationToken>"
		"<Contents><Key>p/a&amp;b&lt;c&gt;&quot;&apos;</Key>"
		"<ETag>&quot;x&quot;</ETag><Size>1</Size></Contents>"
		"<Contents><Key>p/b&#65;&#x42;</Key></Contents>"
		"<Contents><Key><![CDATA[p/c<&>]]></Key></Contents>"
		"<Contents><Key>p/bad..key</Key></Contents>"
		"<Contents><Key>p/bad&#10;line</Key></Contents>"
		"<Contents attr='>'><Key>p/d</Key><Owner><ID>o</ID>"
		"</Owner></Contents>"
		"</ListBucketResult>\n";
	static const char page2[] =
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>p/e</Key></Contents>"
		"<Contents><Key>p/f</Key></Contents><Empty/>"
		"</ListBucketResult>";

	fake_reply(fd, 200, NULL, strstr(rq->target, "continuation-token") ?
		   page2 : page1);
	return FAKE_KEEP;
}

static const char *fake_list_body;

static enum fake_action h_list_body(struct fake_req *rq, int fd)
{
	(void)rq;
	fake_reply(fd, 200, NULL, fake_list_body);
	return FAKE_KEEP;
}

/* ---- the fake suite (blocking and in a task) ---- */

static void fake_get_checks(struct store *s)
{
	struct buf b;
	const char *err;

	buf_init(&b, 0);
	fake_set(h_503_twice);
	err = NULL;
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err), 0);
	CHECK_EQ_INT(atomic_load(&fake_count), 3);
	CHECK(buf_used(&b) == 5 && memcmp(buf_head(&b), "hello", 5) == 0);
	CHECK_EQ_STR(fake_last.method, "GET");
	CHECK_EQ_STR(fake_last.target, "/bkt/k");

	fake_set(h_503);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, "a/k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_EUNAVAIL);
	CHECK_EQ_INT(atomic_load(&fake_count), 4);
	CHECK_EQ_STR(err, "s3: GET a/k: HTTP 503 SlowDown (4 attempts)");
	CHECK_EQ_INT(buf_used(&b), 0);

	fake_set(h_500_nobody);
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_EUNAVAIL);
	CHECK_EQ_STR(err, "s3: GET k: HTTP 500 (4 attempts)");

	/* not retried */
	fake_set(h_403);
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_EUNAVAIL);
	CHECK_EQ_STR(err, "s3: GET k: HTTP 403 AccessDenied");
	CHECK_EQ_INT(atomic_load(&fake_count), 1);
	fake_set(h_404_key);
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(atomic_load(&fake_count), 1);
	/* a missing bucket is a broken set-up, not a missing object */
	fake_set(h_404_bucket);
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_EUNAVAIL);
	CHECK(strstr(err, "NoSuchBucket") != NULL);
	CHECK_EQ_INT(buf_used(&b), 0);

	/* a server that ignores Range: the client cuts */
	fake_set(h_no_range);
	CHECK(buf_append(&b, "<", 1));
	CHECK_EQ_INT(store_get(s, "k", 3, 4, &b, NULL), 0);
	CHECK(buf_used(&b) == 5 && memcmp(buf_head(&b), "<3456", 5) == 0);
	char range[64];
	CHECK(fake_header(&fake_last, "Range", range, sizeof(range)) != NULL &&
	      strcmp(range, "bytes=3-6") == 0);
	CHECK_EQ_INT(store_get(s, "k", 8, 100, &b, NULL), 0);
	CHECK(buf_used(&b) == 7 && memcmp(buf_head(&b), "<345689", 7) == 0);
	CHECK(fake_header(&fake_last, "Range", range, sizeof(range)) != NULL &&
	      strcmp(range, "bytes=8-107") == 0);
	CHECK_EQ_INT(store_get(s, "k", 20, STORE_LEN_ALL, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 7);
	CHECK(fake_header(&fake_last, "Range", range, sizeof(range)) != NULL &&
	      strcmp(range, "bytes=20-") == 0);
	/* a range whose end would pass 2^64 is open-ended */
	CHECK_EQ_INT(store_get(s, "k", 3, UINT64_MAX - 1, &b, NULL), 0);
	CHECK(buf_used(&b) == 14 &&
	      memcmp(buf_head(&b), "<3456893456789", 14) == 0);
	CHECK(fake_header(&fake_last, "Range", range, sizeof(range)) != NULL &&
	      strcmp(range, "bytes=3-") == 0);
	fake_set(h_no_range_chunked);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, "k", 3, 4, &b, NULL), 0);
	CHECK(buf_used(&b) == 4 && memcmp(buf_head(&b), "3456", 4) == 0);
	CHECK_EQ_INT(store_get(s, "k", 8, STORE_LEN_ALL, &b, NULL), 0);
	CHECK(buf_used(&b) == 6 && memcmp(buf_head(&b), "345689", 6) == 0);
	CHECK_EQ_INT(store_get(s, "k", 10, 1, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 6);
	/* 206 for a range we did not ask for */
	fake_set(h_wrong_range);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, "k", 3, 4, &b, &err), KURA_EUNAVAIL);
	CHECK(strstr(err, "another range") != NULL);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	/* too big: refused from Content-Length, nothing appended */
	buf_init(&b, 50);
	CHECK(buf_append(&b, "ab", 2));
	fake_set(h_big);
	err = NULL;
	CHECK_EQ_INT(store_get(s, "big", 0, STORE_LEN_ALL, &b, &err),
		     KURA_ETOOBIG);
	CHECK_EQ_STR(err, "s3: big: 100 bytes do not fit the buffer");
	CHECK_EQ_INT(buf_used(&b), 2);
	CHECK_EQ_INT(atomic_load(&fake_count), 1);
	fake_set(h_big_chunked);
	CHECK_EQ_INT(store_get(s, "big", 0, STORE_LEN_ALL, &b, &err),
		     KURA_ETOOBIG);
	CHECK_EQ_INT(buf_used(&b), 2);
	CHECK(memcmp(buf_head(&b), "ab", 2) == 0);
	buf_deinit(&b);
	buf_init(&b, 64);
	CHECK_EQ_INT(store_get(s, "big", 0, STORE_LEN_ALL, &b, &err), 0);
	CHECK_EQ_INT(buf_used(&b), 64);
	buf_deinit(&b);
}

static void fake_put_checks(struct store *s)
{
	static const char *const meta[] = { "guid=0123abcd", "X-Size=12",
					    "empty=", NULL };
	static const char *const reserved[] = { "Kura-Put-Id=x", NULL };
	char v[256];
	const char *err;

	fake_set(h_ok);
	CHECK_EQ_INT(store_put(s, "a b/c+d~e@f", "hello", 5,
			       STORE_PUT_CREATE_ONLY, meta, &err), 0);
	CHECK_EQ_STR(fake_last.method, "PUT");
	CHECK_EQ_STR(fake_last.target, "/bkt/a%20b/c%2Bd~e%40f");
	CHECK(fake_last.body_len == 5 &&
	      memcmp(fake_last.body, "hello", 5) == 0);
	CHECK(fake_header(&fake_last, "If-None-Match", v, sizeof(v)) &&
	      strcmp(v, "*") == 0);
	CHECK(fake_header(&fake_last, "x-amz-meta-guid", v, sizeof(v)) &&
	      strcmp(v, "0123abcd") == 0);
	CHECK(fake_header(&fake_last, "x-amz-meta-X-Size", v, sizeof(v)) &&
	      strcmp(v, "12") == 0);
	CHECK(fake_header(&fake_last, "x-amz-meta-empty", v, sizeof(v)) ==
	      NULL);
	CHECK(fake_header(&fake_last, "x-amz-meta-kura-put-id", v,
			  sizeof(v)) && strlen(v) == 32);
	CHECK(fake_header(&fake_last, "x-amz-content-sha256", v, sizeof(v)) &&
	      strcmp(v, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e7304"
		     "3362938b9824") == 0);
	CHECK(fake_header(&fake_last, "Authorization", v, sizeof(v)) &&
	      strncmp(v, "AWS4-HMAC-SHA256 Credential=AKIDFAKE/", 37) == 0 &&
	      strstr(v, "/eu-west-9/s3/aws4_request") != NULL &&
	      strstr(v, "x-amz-content-sha256") != NULL &&
	      strstr(v, "if-none-match") != NULL);
	CHECK(fake_header(&fake_last, "x-amz-date", v, sizeof(v)) != NULL);
	/* one round trip for a small PUT */
	CHECK(fake_header(&fake_last, "Expect", v, sizeof(v)) == NULL);
	CHECK(fake_header(&fake_last, "Content-Length", v, sizeof(v)) &&
	      strcmp(v, "5") == 0);
	/* a plain put carries no put id and no condition */
	CHECK_EQ_INT(store_put(s, "x", "", 0, 0, NULL, &err), 0);
	CHECK(fake_header(&fake_last, "If-None-Match", v, sizeof(v)) == NULL);
	CHECK(fake_header(&fake_last, "x-amz-meta-kura-put-id", v,
			  sizeof(v)) == NULL);
	CHECK_EQ_INT(fake_last.body_len, 0);
	CHECK_EQ_INT(store_put(s, "x", "m", 1, 0, reserved, &err),
		     KURA_EINVAL);
	CHECK(strstr(err, "reserved") != NULL);

	/* the answer to a create-only PUT is lost after the server stored
	 * it; the retry gets 412 and HEAD shows our put id */
	fake_set(h_lost_answer);
	lost_mine = true;
	err = NULL;
	CHECK_EQ_INT(store_put(s, "log/1", "entry", 5, STORE_PUT_CREATE_ONLY,
			       NULL, &err), 0);
	CHECK_EQ_INT(atomic_load(&fake_count), 3);
	CHECK_EQ_STR(fake_last.method, "HEAD");
	/* ... or someone else's */
	fake_set(h_lost_answer);
	lost_mine = false;
	CHECK_EQ_INT(store_put(s, "log/1", "entry", 5, STORE_PUT_CREATE_ONLY,
			       NULL, &err), KURA_ECONFLICT);
	CHECK_EQ_INT(atomic_load(&fake_count), 3);
	/* a plain 412: HEAD shows someone else's put id */
	fake_set(h_412);
	CHECK_EQ_INT(store_put(s, "log/1", "entry", 5, STORE_PUT_CREATE_ONLY,
			       NULL, &err), KURA_ECONFLICT);
	CHECK_EQ_INT(atomic_load(&fake_count), 2);
	CHECK_EQ_STR(fake_last.method, "HEAD");
	CHECK_EQ_STR(err, "s3: log/1: exists");
	/* whose object it is cannot be told: not a conflict */
	fake_set(h_412_head_503);
	CHECK_EQ_INT(store_put(s, "log/1", "entry", 5, STORE_PUT_CREATE_ONLY,
			       NULL, &err), KURA_EUNAVAIL);
	CHECK(strstr(err, "is unknown") != NULL);
	CHECK_EQ_INT(atomic_load(&fake_count), 5);
	/* 409 ConditionalRequestConflict is retried */
	fake_set(h_409_then_412);
	CHECK_EQ_INT(store_put(s, "log/1", "entry", 5, STORE_PUT_CREATE_ONLY,
			       NULL, &err), KURA_ECONFLICT);
	CHECK_EQ_INT(atomic_load(&fake_count), 3);
	/* 412 to a plain put is just a failure */
	fake_set(h_412);
	CHECK_EQ_INT(store_put(s, "x", "e", 1, 0, NULL, &err), KURA_EUNAVAIL);
	CHECK_EQ_STR(err, "s3: PUT x: HTTP 412 PreconditionFailed");
	fake_set(h_503);
	CHECK_EQ_INT(store_put(s, "u/ab/x", "e", 1, 0, NULL, &err),
		     KURA_EUNAVAIL);
	CHECK_EQ_STR(err, "s3: PUT u/ab/x: HTTP 503 SlowDown (4 attempts)");
}

static void fake_other_checks(struct store *s)
{
	struct store_stat st;
	struct store_list l;
	const char *err;

	fake_set(h_head);
	CHECK_EQ_INT(store_head(s, "h", &st, &err), 0);
	CHECK_EQ_INT(st.size, 42);
	CHECK_EQ_INT(st.mtime, 1255369800);
	CHECK_EQ_STR(fake_last.method, "HEAD");
	fake_set(h_404_key);
	CHECK_EQ_INT(store_head(s, "h", &st, &err), KURA_ENOTFOUND);
	/* get of nothing still tells a missing key */
	struct buf b;
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, "h", 0, 0, &b, &err), KURA_ENOTFOUND);
	CHECK_EQ_STR(fake_last.method, "HEAD");
	buf_deinit(&b);

	fake_set(h_204);
	CHECK_EQ_INT(store_del(s, "d", &err), 0);
	CHECK_EQ_STR(fake_last.method, "DELETE");
	fake_set(h_404_key);
	CHECK_EQ_INT(store_del(s, "d", &err), 0);
	fake_set(h_403);
	CHECK_EQ_INT(store_del(s, "d", &err), KURA_EUNAVAIL);
	CHECK_EQ_STR(err, "s3: DELETE d: HTTP 403 AccessDenied");

	/* list: entities, CDATA, comments, skipped keys, paging */
	fake_set(h_list);
	err = NULL;
	CHECK_EQ_INT(store_list(s, "p/", "p/a", 1000, &l, &err), 0);
	CHECK_EQ_INT(atomic_load(&fake_count), 2);
	CHECK_EQ_STR(fake_last.target,
		     "/bkt/?continuation-token=tok%2F%2B%3D&list-type=2&"
		     "max-keys=996&prefix=p%2F");
	CHECK_EQ_INT(l.count, 6);
	if (l.count == 6) {
		CHECK_EQ_STR(l.keys[0], "p/a&b<c>\"'");
		CHECK_EQ_STR(l.keys[1], "p/bAB");
		CHECK_EQ_STR(l.keys[2], "p/c<&>");
		CHECK_EQ_STR(l.keys[3], "p/d");
		CHECK_EQ_STR(l.keys[4], "p/e");
		CHECK_EQ_STR(l.keys[5], "p/f");
	}
	CHECK(!l.truncated);
	store_list_free(&l);
	/* the first page's query */
	fake_set(h_list);
	CHECK_EQ_INT(store_list(s, "p/", "p/a b", 2, &l, &err), 0);
	CHECK_EQ_INT(atomic_load(&fake_count), 1);
	CHECK_EQ_STR(fake_last.target,
		     "/bkt/?list-type=2&max-keys=2&prefix=p%2F&"
		     "start-after=p%2Fa%20b");
	CHECK_EQ_INT(l.count, 2);
	CHECK(l.truncated);
	store_list_free(&l);
	/* max 0 */
	fake_set(h_list);
	CHECK_EQ_INT(store_list(s, "p/", NULL, 0, &l, &err), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(l.truncated);
	CHECK(strstr(fake_last.target, "max-keys=1&") != NULL);
	store_list_free(&l);

	static const char *const bad_docs[] = {
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"</ListBucketResult>",	/* truncated without a token */
		"<ListBucketResult><Contents><Key>p/a</Key></Contents>"
		"</ListBucketResult>",	/* no IsTruncated */
		"<ListBucketResult><IsTruncated>false</IsTruncated>",
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"</ListBucketResul>",
		"<ListBucketResult><IsTruncated>maybe</IsTruncated>"
		"</ListBucketResult>",
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>p/&bogus;</Key></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>p/&#0;</Key></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"</ListBucketResult><Second/>",
		"<!DOCTYPE x [<!ENTITY e \"boom\">]><ListBucketResult>"
		"<IsTruncated>false</IsTruncated></ListBucketResult>",
		"",
		"<ListBucketResult><Contents><Key>p/a<!-- </Key></Contents>",
		"<ListBucketResult a=\"x><IsTruncated>false</IsTruncated>"
		"</ListBucketResult>",
		"garbage<ListBucketResult><IsTruncated>false</IsTruncated>"
		"</ListBucketResult>",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_docs); i++) {
		fake_list_body = bad_docs[i];
		fake_set(h_list_body);
		err = NULL;
		l.count = 99;
		CHECK_EQ_INT(store_list(s, "p/", NULL, 10, &l, &err),
			     KURA_EUNAVAIL);
		CHECK(err != NULL && strstr(err, "malformed") != NULL);
		CHECK(l.count == 0 && l.keys == NULL);
	}
	/* a truncated page with no keys and the same token forever */
	fake_list_body = "<ListBucketResult><IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>t</NextContinuationToken>"
		"<Contents><Key>p/..</Key></Contents></ListBucketResult>";
	fake_set(h_list_body);
	CHECK_EQ_INT(store_list(s, "p/", NULL, 10, &l, &err), KURA_EUNAVAIL);
	CHECK(atomic_load(&fake_count) <= 3);
	/* deep nesting is refused, not recursed into */
	struct buf deep;
	buf_init(&deep, 0);
	for (int i = 0; i < 40; i++)
		buf_append_str(&deep, "<a>");
	for (int i = 0; i < 40; i++)
		buf_append_str(&deep, "</a>");
	fake_list_body = buf_cstr(&deep);
	fake_set(h_list_body);
	CHECK_EQ_INT(store_list(s, "p/", NULL, 10, &l, &err), KURA_EUNAVAIL);
	buf_deinit(&deep);
	/* list errors */
	fake_set(h_403);
	CHECK_EQ_INT(store_list(s, "p/", NULL, 10, &l, &err), KURA_EUNAVAIL);
	CHECK_EQ_STR(err, "s3: LIST p/: HTTP 403 AccessDenied");
	CHECK_EQ_INT(store_list(s, "../x", NULL, 10, &l, &err), KURA_EINVAL);
	CHECK_EQ_INT(store_list(s, "a\n", NULL, 10, &l, &err), KURA_EINVAL);
	CHECK_EQ_INT(store_list(s, "a", "\x01", 10, &l, &err), KURA_EINVAL);

	/* the start-up check: a server that ignores If-None-Match */
	fake_set(h_ok);
	err = NULL;
	CHECK_EQ_INT(store_check_create_only(s, &err), KURA_EINVAL);
	CHECK(err != NULL && strstr(err, "ignores create-only PUT") != NULL);
	CHECK_EQ_STR(fake_last.method, "DELETE");
	CHECK(strncmp(fake_last.target, "/bkt/kura-probe/create-only/", 28) ==
	      0);
	fake_set(h_403);
	CHECK_EQ_INT(store_check_create_only(s, &err), KURA_EUNAVAIL);
	CHECK(strstr(err, "AccessDenied") != NULL);

	/* invalid keys never reach the server */
	fake_set(NULL);
	CHECK_EQ_INT(store_put(s, "a//b", "x", 1, 0, NULL, &err), KURA_EINVAL);
	CHECK_EQ_INT(store_head(s, "", &st, &err), KURA_EINVAL);
	CHECK_EQ_INT(store_del(s, "/x", &err), KURA_EINVAL);
	CHECK_EQ_INT(atomic_load(&fake_count), 0);
}

static void fake_fault_checks(void)
{
	struct store *s;
	const char *err = NULL;
	struct buf b;
	uint64_t t0;
	char url[96];
	struct store_s3_options o;

	/* nothing listens there */
	int port, fd = listen_any(&port);
	if (fd >= 0)
		close(fd);
	memset(&o, 0, sizeof(o));
	o.access_key = "a";
	o.secret_key = "b";
	o.max_attempts = 2;
	o.retry_base_ms = 2;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/bkt", port);
	CHECK_EQ_INT(store_s3_create(url, &o, &s, &err), 0);
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_EUNAVAIL);
	CHECK(strncmp(err, "s3: GET k: Couldn't connect to server", 37) == 0);
	CHECK(strstr(err, "(2 attempts)") != NULL);
	store_close(&s);

	/* a server that never answers: the per-attempt timeout */
	s = fake_store(200, 2);
	fake_set(h_stall);
	t0 = time_mono_usec();
	CHECK_EQ_INT(store_get(s, "k", 0, STORE_LEN_ALL, &b, &err),
		     KURA_EUNAVAIL);
	CHECK(strstr(err, "Timeout was reached") != NULL);
	CHECK(time_mono_usec() - t0 < 2000000);
	CHECK_EQ_INT(atomic_load(&fake_count), 2);
	/* not retried when max_attempts is 1 */
	store_close(&s);
	s = fake_store(100, 1);
	fake_set(h_stall);
	CHECK_EQ_INT(store_put(s, "k", "v", 1, STORE_PUT_CREATE_ONLY, NULL,
			       &err), KURA_EUNAVAIL);
	CHECK_EQ_INT(atomic_load(&fake_count), 1);
	store_close(&s);
	buf_deinit(&b);
}

/* Virtual-host style: the bucket goes into the host name (curl sends
 * *.localhost to loopback without DNS). */
static void fake_vhost_checks(void)
{
	struct store_s3_options o;
	struct store *s = NULL;
	struct store_list l;
	const char *err = NULL;
	char url[96], v[128], want[128];

	memset(&o, 0, sizeof(o));
	o.access_key = "a";
	o.secret_key = "b";
	o.virtual_host = true;
	snprintf(url, sizeof(url), "http://localhost:%d/bkt", fake_port);
	CHECK_EQ_INT(store_s3_create(url, &o, &s, &err), 0);
	if (s == NULL)
		return;
	fake_set(h_ok);
	CHECK_EQ_INT(store_put(s, "a/b c", "x", 1, 0, NULL, &err), 0);
	CHECK_EQ_STR(fake_last.target, "/a/b%20c");
	snprintf(want, sizeof(want), "bkt.localhost:%d", fake_port);
	CHECK(fake_header(&fake_last, "Host", v, sizeof(v)) != NULL &&
	      strcmp(v, want) == 0);
	fake_set(h_list);
	CHECK_EQ_INT(store_list(s, "p/", NULL, 1, &l, &err), 0);
	CHECK_EQ_STR(fake_last.target, "/?list-type=2&max-keys=1&prefix=p%2F");
	store_list_free(&l);
	store_close(&s);
}

static void fake_suite(struct store *s)
{
	fake_get_checks(s);
	fake_put_checks(s);
	fake_other_checks(s);
	fake_fault_checks();
	fake_vhost_checks();
}

/* Above 1 MiB curl asks for "100 Continue" and, from a server that
 * never sends it, waits for a second before it sends the body anyway:
 * the socket's poll changes from read to write on a timer, not on an
 * event of the socket itself. */
static void fake_expect_checks(struct store *s)
{
	size_t n = 2u << 20;
	uint8_t *data = xmalloc(n);
	char v[64];

	memset(data, 'e', n);
	fake_set(h_ok);
	CHECK_EQ_INT(store_put(s, "expect", data, n, 0, NULL, NULL), 0);
	CHECK_EQ_INT(fake_last.body_len, n);
	CHECK(fake_header(&fake_last, "Expect", v, sizeof(v)) != NULL &&
	      strcmp(v, "100-continue") == 0);
	free(data);
}

static void fake_suite_task(void *arg)
{
	fake_suite(arg);
	fake_expect_checks(arg);
}

/* Many tasks against a slow server: they wait together, the loop runs
 * on (a ticker task keeps ticking). */
enum { SLOW_TASKS = 40, SLOW_MS = 100 };
static int slow_ok;
static bool ticker_stop;
static int ticks;
static uint64_t tick_gap_max;	/* longest wait for a 5 ms tick, usec */

static void slow_get_task(void *arg)
{
	struct buf b;

	buf_init(&b, 0);
	if (store_get(arg, "slow", 0, STORE_LEN_ALL, &b, NULL) == 0 &&
	    buf_used(&b) == 5)
		slow_ok++;
	buf_deinit(&b);
}

static void ticker_task(void *arg)
{
	(void)arg;
	uint64_t last = time_mono_usec();

	while (!ticker_stop) {
		task_sleep_ms(5);
		ticks++;
		uint64_t now = time_mono_usec();
		if (now - last > tick_gap_max)
			tick_gap_max = now - last;
		last = now;
	}
}

static void slow_main_task(void *arg)
{
	(void)arg;
	while (slow_ok < SLOW_TASKS && ticks < 2000)
		task_sleep_ms(5);
	ticker_stop = true;
}

static void fake_concurrency(struct store *s)
{
	uint64_t t0, us;

	fake_set(h_503_twice);	/* 2 retries each at first, then fine */
	atomic_store(&fake_count, 2);
	atomic_store(&fake_delay_ms, SLOW_MS);
	slow_ok = 0;
	ticks = 0;
	tick_gap_max = 0;
	ticker_stop = false;
	t0 = time_mono_usec();
	for (int i = 0; i < SLOW_TASKS; i++)
		task_spawn(L, slow_get_task, s);
	task_spawn(L, ticker_task, NULL);
	in_task(slow_main_task, NULL);
	us = time_mono_usec() - t0;
	atomic_store(&fake_delay_ms, 0);
	CHECK_EQ_INT(slow_ok, SLOW_TASKS);
	/* in parallel: far less than 40 x 100 ms */
	CHECK(us < 1500000);
	CHECK(ticks > 0);
	fprintf(stderr, "note: %d slow GETs in parallel took %llu ms, %d "
		"ticks meanwhile, longest gap %llu ms\n", SLOW_TASKS,
		(unsigned long long)(us / 1000), ticks,
		(unsigned long long)(tick_gap_max / 1000));
}

static void test_create_options(void)
{
	struct store_s3_options o;
	struct store *s = (struct store *)1;
	const char *err = NULL;
	static const char *const bad[] = {
		"ftp://h/b", "http://h", "http://h/", "http://h/b/extra",
		"http://h/b?x=1", "http://h/b c", "http://h w/b", "h/b",
		"http:///b", "http://h/.b",
	};

	memset(&o, 0, sizeof(o));
	o.access_key = "a";
	o.secret_key = "b";
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		CHECK_EQ_INT(store_s3_create(bad[i], &o, &s, &err),
			     KURA_EINVAL);
		CHECK(err != NULL && strncmp(err, "s3: ", 4) == 0);
		CHECK(s == NULL);
	}
	CHECK_EQ_INT(store_s3_create("http://user:pw@h/b", &o, &s, &err),
		     KURA_EINVAL);
	CHECK(strstr(err, "pw") == NULL && strstr(err, "user") == NULL);
	CHECK_EQ_INT(store_s3_create("http://h/b/", &o, &s, &err), 0);
	CHECK(s != NULL && strcmp(s->ops->name, "s3") == 0);
	store_close(&s);
	CHECK_EQ_INT(store_s3_create("s3:https://h.example:8443/my_b", &o, &s,
				     &err), 0);
	store_close(&s);
	o.virtual_host = true;
	CHECK_EQ_INT(store_s3_create("https://h/my_b", &o, &s, &err),
		     KURA_EINVAL);
	CHECK_EQ_INT(store_s3_create("https://s3.eu-west-1.amazonaws.com/"
				     "my-bucket", &o, &s, &err), 0);
	store_close(&s);
	o.virtual_host = false;
	o.region = "eu west";
	CHECK_EQ_INT(store_s3_create("http://h/b", &o, &s, &err), KURA_EINVAL);
	o.region = NULL;
	o.secret_key = "";
	CHECK_EQ_INT(store_s3_create("http://h/b", &o, &s, &err), KURA_EINVAL);
	o.secret_key = "s\n";
	CHECK_EQ_INT(store_s3_create("http://h/b", &o, &s, &err), KURA_EINVAL);
	CHECK_EQ_INT(store_s3_create("http://h/b", NULL, &s, &err),
		     KURA_EINVAL);
}

/* ---- against a real server ---- */

static char P[64];	/* prefix of this run's keys */

static void put_ok(struct store *s, const char *key, const char *data)
{
	const char *err = NULL;
	int r = store_put(s, key, data, strlen(data), STORE_PUT_NONE, NULL,
			  &err);

	if (r != 0)
		fprintf(stderr, "put %s: %s\n", key, err ? err : "?");
	CHECK_EQ_INT(r, 0);
}

static bool get_is(struct store *s, const char *key, const char *want)
{
	struct buf b;
	const char *err = NULL;
	bool ok;
	int r;

	buf_init(&b, 0);
	r = store_get(s, key, 0, STORE_LEN_ALL, &b, &err);
	if (r != 0)
		fprintf(stderr, "get %s: %s\n", key, err ? err : "?");
	ok = r == 0 && buf_used(&b) == strlen(want) &&
		memcmp(buf_head(&b), want, strlen(want)) == 0;
	buf_deinit(&b);
	return ok;
}

static void real_get(struct store *s, const char *p)
{
	char key[256];
	struct buf b;
	const char *err;

	snprintf(key, sizeof(key), "%s/obj/one", p);
	put_ok(s, key, "hello, world");
	CHECK(get_is(s, key, "hello, world"));
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, key, 7, 5, &b, NULL), 0);
	CHECK(buf_used(&b) == 5 && memcmp(buf_head(&b), "world", 5) == 0);
	CHECK_EQ_INT(store_get(s, key, 10, 100, &b, NULL), 0);
	CHECK(buf_used(&b) == 7 && memcmp(buf_head(&b), "worldld", 7) == 0);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, key, 12, STORE_LEN_ALL, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(store_get(s, key, 1000, 5, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(store_get(s, key, 0, 0, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	buf_init(&b, 8);
	CHECK(buf_append(&b, "ab", 2));
	err = NULL;
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, &err),
		     KURA_ETOOBIG);
	CHECK(err != NULL && strstr(err, key) != NULL);
	CHECK_EQ_INT(buf_used(&b), 2);
	CHECK_EQ_INT(store_get(s, key, 0, 5, &b, NULL), 0);
	CHECK(buf_used(&b) == 7 && memcmp(buf_head(&b), "abhello", 7) == 0);
	CHECK_EQ_INT(store_get(s, key, 0, 1, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 8);
	CHECK_EQ_INT(store_get(s, key, 0, 1, &b, NULL), KURA_ETOOBIG);
	buf_deinit(&b);

	buf_init(&b, 0);
	err = NULL;
	snprintf(key, sizeof(key), "%s/obj/missing", p);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, &err),
		     KURA_ENOTFOUND);
	CHECK(err != NULL);
	CHECK_EQ_INT(store_get(s, key, 0, 0, &b, NULL), KURA_ENOTFOUND);
	CHECK_EQ_INT(store_get(s, key, 3, 5, &b, NULL), KURA_ENOTFOUND);
	snprintf(key, sizeof(key), "%s/obj", p);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL),
		     KURA_ENOTFOUND);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	snprintf(key, sizeof(key), "%s/obj/empty", p);
	CHECK_EQ_INT(store_put(s, key, "", 0, STORE_PUT_NONE, NULL, NULL), 0);
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	CHECK_EQ_INT(store_get(s, key, 0, 10, &b, NULL), 0);
	CHECK_EQ_INT(buf_used(&b), 0);
	buf_deinit(&b);

	/* every byte value, above curl's 1 MiB "100 Continue" mark */
	size_t big = 3 * 1024 * 1024 + 17;
	uint8_t *data = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 13));
	snprintf(key, sizeof(key), "%s/obj/big", p);
	CHECK_EQ_INT(store_put(s, key, data, big, STORE_PUT_NONE, NULL, NULL),
		     0);
	buf_init(&b, 0);
	CHECK_EQ_INT(store_get(s, key, 0, STORE_LEN_ALL, &b, NULL), 0);
	CHECK(buf_used(&b) == big && memcmp(buf_head(&b), data, big) == 0);
	buf_reset(&b);
	CHECK_EQ_INT(store_get(s, key, big - 100, 1000, &b, NULL), 0);
	CHECK(buf_used(&b) == 100 &&
	      memcmp(buf_head(&b), data + big - 100, 100) == 0);
	buf_deinit(&b);
	snprintf(key, sizeof(key), "%s/obj/big-co", p);
	CHECK_EQ_INT(store_put(s, key, data, big, STORE_PUT_CREATE_ONLY, NULL,
			       NULL), 0);
	CHECK_EQ_INT(store_put(s, key, data, big, STORE_PUT_CREATE_ONLY, NULL,
			       NULL), KURA_ECONFLICT);
	free(data);
}

static void real_put(struct store *s, const char *p)
{
	static const char *const meta[] = { "guid=0123abcd", "x-size=12",
					    "v=a  b:c;d", NULL };
	char key[256];
	const char *err;
	struct store_stat st;
	int64_t now = time_wall_sec();

	snprintf(key, sizeof(key), "%s/put/a", p);
	put_ok(s, key, "v1");
	put_ok(s, key, "version two");
	CHECK(get_is(s, key, "version two"));

	snprintf(key, sizeof(key), "%s/put/c", p);
	CHECK_EQ_INT(store_put(s, key, "first", 5, STORE_PUT_CREATE_ONLY,
			       NULL, NULL), 0);
	err = NULL;
	CHECK_EQ_INT(store_put(s, key, "second", 6, STORE_PUT_CREATE_ONLY,
			       NULL, &err), KURA_ECONFLICT);
	CHECK(err != NULL);
	CHECK(get_is(s, key, "first"));
	put_ok(s, key, "third");
	CHECK(get_is(s, key, "third"));

	CHECK_EQ_INT(store_head(s, key, &st, NULL), 0);
	CHECK_EQ_INT(st.size, 5);
	CHECK(st.mtime >= now - 5 && st.mtime <= now + 5);
	snprintf(key, sizeof(key), "%s/put/none", p);
	CHECK_EQ_INT(store_head(s, key, &st, &err), KURA_ENOTFOUND);
	snprintf(key, sizeof(key), "%s/put", p);
	CHECK_EQ_INT(store_head(s, key, &st, NULL), KURA_ENOTFOUND);

	/* keys with characters SigV4 encodes */
	snprintf(key, sizeof(key), "%s/put/odd key+(1)!*'@=&$,;:~^`{}|", p);
	put_ok(s, key, "odd");
	CHECK(get_is(s, key, "odd"));
	CHECK_EQ_INT(store_head(s, key, &st, NULL), 0);

	snprintf(key, sizeof(key), "%s/put/meta", p);
	CHECK_EQ_INT(store_put(s, key, "m", 1, STORE_PUT_CREATE_ONLY, meta,
			       &err), 0);
	CHECK(get_is(s, key, "m"));
	static const char *const bad_meta1[] = { "novalue", NULL };
	static const char *const bad_meta2[] = { "a b=c", NULL };
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, bad_meta1, NULL),
		     KURA_EINVAL);
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, bad_meta2, NULL),
		     KURA_EINVAL);
	char *huge = xmalloc(3000);
	memset(huge, 'v', 2999);
	huge[0] = 'k';
	huge[1] = '=';
	huge[2999] = '\0';
	const char *const big_meta[] = { huge, NULL };
	CHECK_EQ_INT(store_put(s, key, "m", 1, 0, big_meta, NULL),
		     KURA_EINVAL);
	free(huge);
}

static void real_del(struct store *s, const char *p)
{
	char key[256];
	struct store_stat st;

	snprintf(key, sizeof(key), "%s/del/x/y/z", p);
	put_ok(s, key, "z");
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	CHECK_EQ_INT(store_head(s, key, &st, NULL), KURA_ENOTFOUND);
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	snprintf(key, sizeof(key), "%s/del/nothing/here", p);
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	put_ok(s, key, "again");
	CHECK(get_is(s, key, "again"));
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
}

static void real_list(struct store *s, const char *p)
{
	static const char *const names[] = {
		"log/0000000000000003", "log/0000000000000001",
		"log/0000000000000002", "log/0000000000000010",
		"m/aa", "m/ab", "m/b", "snap/0000000000000002/list",
		"snap/0000000000000002/mbox-1", "top",
	};
	char key[256], pre[256], after[256];
	struct store_list l;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(key, sizeof(key), "%s/list/%s", p, names[i]);
		put_ok(s, key, names[i]);
	}
	snprintf(pre, sizeof(pre), "%s/list/", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 100, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 10);
	CHECK(!l.truncated);
	snprintf(key, sizeof(key), "%s/list/log/0000000000000001", p);
	CHECK(l.count > 0 && strcmp(l.keys[0], key) == 0);
	snprintf(key, sizeof(key), "%s/list/top", p);
	CHECK(l.count == 10 && strcmp(l.keys[9], key) == 0);
	store_list_free(&l);

	snprintf(pre, sizeof(pre), "%s/list/m/a", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 100, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	store_list_free(&l);

	snprintf(pre, sizeof(pre), "%s/list/log/", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 2, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	CHECK(l.truncated);
	snprintf(after, sizeof(after), "%s", l.count == 2 ? l.keys[1] : "");
	store_list_free(&l);
	CHECK_EQ_INT(store_list(s, pre, after, 2, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	CHECK(!l.truncated);
	snprintf(key, sizeof(key), "%s/list/log/0000000000000003", p);
	CHECK(l.count == 2 && strcmp(l.keys[0], key) == 0);
	store_list_free(&l);
	CHECK_EQ_INT(store_list(s, pre, NULL, 4, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 4);
	CHECK(!l.truncated);
	store_list_free(&l);
	CHECK_EQ_INT(store_list(s, pre, NULL, 0, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(l.truncated);
	store_list_free(&l);
	snprintf(after, sizeof(after), "%s/list/log/00000000000000025", p);
	CHECK_EQ_INT(store_list(s, pre, after, 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 2);
	store_list_free(&l);
	snprintf(pre, sizeof(pre), "%s/list/", p);
	CHECK_EQ_INT(store_list(s, pre, "~", 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(!l.truncated);
	store_list_free(&l);
	snprintf(pre, sizeof(pre), "%s/list/nothing/", p);
	CHECK_EQ_INT(store_list(s, pre, NULL, 10, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 0);
	CHECK(!l.truncated);
	store_list_free(&l);
}

static void real_suite(struct store *s, const char *sub)
{
	char p[96];

	snprintf(p, sizeof(p), "%.63s/%.16s", P, sub);
	real_get(s, p);
	real_put(s, p);
	real_del(s, p);
	real_list(s, p);
	const char *err = NULL;
	CHECK_EQ_INT(store_check_create_only(s, &err), 0);
}

struct suite_arg {
	struct store *s;
	const char *sub;
};

static void real_suite_task(void *arg)
{
	struct suite_arg *a = arg;

	real_suite(a->s, a->sub);
}

/* 200 tasks: put, get back, in parallel; the loop keeps running. */
enum { MANY = 200 };

struct many_arg {
	struct store *s;
	int id;
	int ok;
};

/* requests in flight now and at most: 1 if calls blocked the loop */
static int inflight, inflight_max;

static void many_task(void *arg)
{
	struct many_arg *a = arg;
	char key[256], val[64];

	snprintf(key, sizeof(key), "%s/many/%03d", P, a->id);
	snprintf(val, sizeof(val), "value of %d", a->id);
	if (++inflight > inflight_max)
		inflight_max = inflight;
	if (store_put(a->s, key, val, strlen(val), 0, NULL, NULL) == 0 &&
	    get_is(a->s, key, val))
		a->ok = 1;
	inflight--;
}

static int many_done(struct many_arg *args)
{
	int n = 0;

	for (int i = 0; i < MANY; i++)
		n += args[i].ok;
	return n;
}

static struct many_arg *many_args;

static void many_wait_task(void *arg)
{
	(void)arg;
	while (many_done(many_args) < MANY && ticks < 4000)
		task_sleep_ms(5);
	ticker_stop = true;
}

static void real_many(struct store *s)
{
	uint64_t t0, us;

	many_args = xcalloc(MANY, sizeof(*many_args));
	inflight = inflight_max = 0;
	ticks = 0;
	tick_gap_max = 0;
	ticker_stop = false;
	t0 = time_mono_usec();
	for (int i = 0; i < MANY; i++) {
		many_args[i].s = s;
		many_args[i].id = i;
		task_spawn(L, many_task, &many_args[i]);
	}
	task_spawn(L, ticker_task, NULL);
	in_task(many_wait_task, NULL);
	us = time_mono_usec() - t0;
	CHECK_EQ_INT(many_done(many_args), MANY);
	/* all waited together, and the ticker ran meanwhile */
	CHECK(inflight_max >= MANY / 2);
	CHECK(ticks > 0);
	fprintf(stderr, "note: %d tasks put+get in %llu ms, %d in flight at "
		"once, %d ticks, longest gap %llu ms\n", MANY,
		(unsigned long long)(us / 1000), inflight_max, ticks,
		(unsigned long long)(tick_gap_max / 1000));
	free(many_args);
}

/* 16 tasks put one key create-only: exactly one wins. */
enum { RACERS = 16, RACE_ROUNDS = 10 };

struct race_arg {
	struct store *s;
	char key[256];
	char val[16];
	int res;
};

static void race_task(void *arg)
{
	struct race_arg *a = arg;

	a->res = store_put(a->s, a->key, a->val, strlen(a->val),
			   STORE_PUT_CREATE_ONLY, NULL, NULL);
}

static void real_race_tasks(struct store *s)
{
	int bad = 0;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		struct race_arg a[RACERS];
		int wins = 0, conflicts = 0, winner = -1;

		for (int i = 0; i < RACERS; i++) {
			a[i].s = s;
			snprintf(a[i].key, sizeof(a[i].key),
				 "%s/race/t%02d/log/0000000000000001", P, round);
			snprintf(a[i].val, sizeof(a[i].val), "racer-%d", i);
			a[i].res = 1;
			task_spawn(L, race_task, &a[i]);
		}
		run_tasks();
		for (int i = 0; i < RACERS; i++) {
			if (a[i].res == 0) {
				wins++;
				winner = i;
			} else if (a[i].res == KURA_ECONFLICT) {
				conflicts++;
			}
		}
		if (wins != 1 || conflicts != RACERS - 1)
			bad++;
		else if (winner >= 0)
			CHECK(get_is(s, a[winner].key, a[winner].val));
	}
	CHECK_EQ_INT(bad, 0);
}

struct race_thread {
	struct store *s;
	const char *key;
	int id;
	pthread_barrier_t *barrier;
	int res;
};

static void *race_thread_main(void *arg)
{
	struct race_thread *rt = arg;
	char val[16];

	snprintf(val, sizeof(val), "thread-%d", rt->id);
	pthread_barrier_wait(rt->barrier);
	rt->res = store_put(rt->s, rt->key, val, strlen(val),
			    STORE_PUT_CREATE_ONLY, NULL, NULL);
	return NULL;
}

/* The same with blocking calls from threads sharing one store. */
static void real_race_threads(struct store *s)
{
	int bad = 0;

	for (int round = 0; round < 5; round++) {
		char key[256];
		pthread_barrier_t barrier;
		pthread_t th[8];
		struct race_thread rt[8];
		int wins = 0, conflicts = 0;

		snprintf(key, sizeof(key), "%s/race/th%02d", P, round);
		pthread_barrier_init(&barrier, NULL, 8);
		for (int i = 0; i < 8; i++) {
			rt[i] = (struct race_thread){ s, key, i, &barrier, 1 };
			pthread_create(&th[i], NULL, race_thread_main, &rt[i]);
		}
		for (int i = 0; i < 8; i++) {
			pthread_join(th[i], NULL);
			wins += rt[i].res == 0;
			conflicts += rt[i].res == KURA_ECONFLICT;
		}
		pthread_barrier_destroy(&barrier);
		if (wins != 1 || conflicts != 7)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
}

/* More than 1000 keys: pages of 100, and one call for all. */
enum { LIST_KEYS = 1100, PUTTERS = 32 };
static atomic_int list_next;

static void list_put_task(void *arg)
{
	struct store *s = arg;
	int i;

	while ((i = atomic_fetch_add(&list_next, 1)) < LIST_KEYS) {
		char key[256];

		snprintf(key, sizeof(key), "%s/big-list/k%05d", P, i);
		CHECK_EQ_INT(store_put(s, key, "x", 1, 0, NULL, NULL), 0);
	}
}

static void list_del_task(void *arg)
{
	struct store *s = arg;
	int i;

	while ((i = atomic_fetch_add(&list_next, 1)) < LIST_KEYS) {
		char key[256];

		snprintf(key, sizeof(key), "%s/big-list/k%05d", P, i);
		CHECK_EQ_INT(store_del(s, key, NULL), 0);
	}
}

static void run_parallel(task_fn *fn, void *arg)
{
	for (int i = 1; i < PUTTERS; i++)
		task_spawn(L, fn, arg);
	in_task(fn, arg);
}

static void list_check_task(void *arg)
{
	struct store *s = arg;
	char pre[256], after[256] = "";
	struct store_list l;
	size_t total = 0, pages = 0;
	bool sorted = true;

	snprintf(pre, sizeof(pre), "%s/big-list/", P);
	for (;;) {
		CHECK_EQ_INT(store_list(s, pre, after[0] ? after : NULL, 100,
					&l, NULL), 0);
		for (size_t i = 0; i < l.count; i++) {
			char want[256];
			snprintf(want, sizeof(want), "%s/big-list/k%05zu", P,
				 total + i);
			if (strcmp(l.keys[i], want) != 0)
				sorted = false;
		}
		total += l.count;
		pages++;
		if (l.count > 0)
			snprintf(after, sizeof(after), "%s",
				 l.keys[l.count - 1]);
		bool more = l.truncated;
		store_list_free(&l);
		if (!more || pages > 20)
			break;
	}
	CHECK_EQ_INT(total, LIST_KEYS);
	CHECK_EQ_INT(pages, LIST_KEYS / 100);
	CHECK(sorted);
	/* all at once: two pages of 1000 inside */
	CHECK_EQ_INT(store_list(s, pre, NULL, SIZE_MAX, &l, NULL), 0);
	CHECK_EQ_INT(l.count, LIST_KEYS);
	CHECK(!l.truncated);
	store_list_free(&l);
	CHECK_EQ_INT(store_list(s, pre, NULL, 1050, &l, NULL), 0);
	CHECK_EQ_INT(l.count, 1050);
	CHECK(l.truncated);
	store_list_free(&l);
}

static void real_big_list(struct store *s)
{
	atomic_store(&list_next, 0);
	run_parallel(list_put_task, s);
	in_task(list_check_task, s);
	atomic_store(&list_next, 0);
	run_parallel(list_del_task, s);
}

/* A proxy that drops the first answer to a create-only PUT: the retry
 * gets 412 and the put id shows the object is ours. */
static int proxy_listen_fd = -1, proxy_port;
static struct sockaddr_in proxy_up;
static atomic_bool proxy_drop;
static atomic_int proxy_dropped;

static void *proxy_conn_main(void *arg)
{
	int c = (int)(intptr_t)arg;
	int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char b[65536];

	if (u < 0 || connect(u, (struct sockaddr *)&proxy_up,
			     sizeof(proxy_up)) < 0)
		goto out;
	for (;;) {
		struct pollfd p[2] = { { c, POLLIN, 0 }, { u, POLLIN, 0 } };
		if (poll(p, 2, 1000) < 0 || atomic_load(&fake_stop))
			break;
		if (p[0].revents) {
			ssize_t n = recv(c, b, sizeof(b), 0);
			if (n <= 0)
				break;
			fake_write(u, b, (size_t)n);
		}
		if (p[1].revents) {
			ssize_t n = recv(u, b, sizeof(b), 0);
			if (n <= 0)
				break;
			if (atomic_exchange(&proxy_drop, false)) {
				atomic_fetch_add(&proxy_dropped, 1);
				break;	/* the answer is lost */
			}
			fake_write(c, b, (size_t)n);
		}
	}
out:
	if (u >= 0)
		close(u);
	close(c);
	return NULL;
}

static void *proxy_accept_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&fake_stop)) {
		struct pollfd p = { proxy_listen_fd, POLLIN, 0 };
		pthread_t th;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept4(proxy_listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (pthread_create(&th, NULL, proxy_conn_main,
				   (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(th);
	}
	return NULL;
}

static pthread_t proxy_thread;

static void proxy_task(void *arg)
{
	struct store *s = arg;
	char key[256];
	const char *err = NULL;

	snprintf(key, sizeof(key), "%s/proxy/log/0000000000000001", P);
	atomic_store(&proxy_drop, true);
	CHECK_EQ_INT(store_put(s, key, "mine", 4, STORE_PUT_CREATE_ONLY, NULL,
			       &err), 0);
	CHECK_EQ_INT(atomic_load(&proxy_dropped), 1);
	CHECK(get_is(s, key, "mine"));
	/* someone else's object stays a conflict after a lost answer */
	atomic_store(&proxy_drop, true);
	CHECK_EQ_INT(store_put(s, key, "other", 5, STORE_PUT_CREATE_ONLY, NULL,
			       &err), KURA_ECONFLICT);
	CHECK_EQ_INT(atomic_load(&proxy_dropped), 2);
	CHECK(get_is(s, key, "mine"));
}

static void real_lost_answer(const char *url)
{
	struct store_s3_options o;
	struct store *s = NULL;
	const char *err = NULL;
	char purl[256];
	const char *hp = strstr(url, "://"), *colon, *slash;

	if (hp == NULL)
		return;
	hp += 3;
	colon = strchr(hp, ':');
	slash = strchr(hp, '/');
	if (colon == NULL || slash == NULL || colon > slash ||
	    strncmp(hp, "127.0.0.1:", 10) != 0) {
		fprintf(stderr, "note: lost-answer test needs "
			"http://127.0.0.1:PORT/ in KURA_S3_URL\n");
		return;
	}
	memset(&proxy_up, 0, sizeof(proxy_up));
	proxy_up.sin_family = AF_INET;
	proxy_up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	proxy_up.sin_port = htons((uint16_t)atoi(colon + 1));
	proxy_listen_fd = listen_any(&proxy_port);
	if (proxy_listen_fd < 0 ||
	    pthread_create(&proxy_thread, NULL, proxy_accept_main, NULL)) {
		CHECK(0);
		return;
	}
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d%s", proxy_port,
		 slash);
	memset(&o, 0, sizeof(o));
	o.access_key = getenv("AWS_ACCESS_KEY_ID");
	o.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
	o.region = getenv("AWS_REGION");
	o.retry_base_ms = 5;
	CHECK_EQ_INT(store_s3_create(purl, &o, &s, &err), 0);
	if (s == NULL)
		return;
	in_task(proxy_task, s);
	/* blocking, too */
	char key[256];
	snprintf(key, sizeof(key), "%s/proxy/blocking", P);
	atomic_store(&proxy_drop, true);
	CHECK_EQ_INT(store_put(s, key, "b", 1, STORE_PUT_CREATE_ONLY, NULL,
			       &err), 0);
	CHECK_EQ_INT(atomic_load(&proxy_dropped), 3);
	store_close(&s);
}

/* ---- benchmark (KURA_S3_BENCH=1) ---- */

struct bench {
	struct store *s;
	bool put;
	uint64_t end_usec;
	uint64_t *lat;
	size_t n, cap;
	int errors;
	int id;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint8_t bench_data[4096];

static void bench_task(void *arg)
{
	struct bench *b = arg;
	struct buf out;
	char key[256];
	unsigned i = 0;

	buf_init(&out, 0);
	while (time_mono_usec() < b->end_usec) {
		uint64_t t0 = time_mono_usec();
		int r;

		/* every task PUTs more than 16 objects in the PUT runs */
		snprintf(key, sizeof(key), "%s/bench/%d/%u", P, b->id,
			 i++ % 16);
		if (b->put) {
			r = store_put(b->s, key, bench_data,
				      sizeof(bench_data), 0, NULL, NULL);
		} else {
			buf_reset(&out);
			r = store_get(b->s, key, 0, STORE_LEN_ALL, &out, NULL);
		}
		if (r != 0) {
			b->errors++;
			continue;
		}
		xgrow((void **)&b->lat, &b->cap, b->n + 1, sizeof(*b->lat));
		b->lat[b->n++] = time_mono_usec() - t0;
	}
	buf_deinit(&out);
}

static void bench_run(struct store *s, bool put, int conc, unsigned ms)
{
	struct bench *b = xcalloc((size_t)conc, sizeof(*b));
	uint64_t *all = NULL;
	size_t n = 0, cap = 0;
	int errors = 0;
	uint64_t t0 = time_mono_usec();

	for (int i = 0; i < conc; i++) {
		b[i] = (struct bench){ s, put, t0 + ms * 1000ull, NULL, 0, 0,
				       0, i };
		task_spawn(L, bench_task, &b[i]);
	}
	while (task_count() > 0)
		loop_run_once(L, 50);
	uint64_t us = time_mono_usec() - t0;
	for (int i = 0; i < conc; i++) {
		xgrow((void **)&all, &cap, n + b[i].n, sizeof(*all));
		memcpy(all + n, b[i].lat, b[i].n * sizeof(*all));
		n += b[i].n;
		errors += b[i].errors;
		free(b[i].lat);
	}
	qsort(all, n, sizeof(*all), cmp_u64);
	fprintf(stderr, "bench: %s 4 KiB x%d: %.0f ops/s, p50 %.2f ms, "
		"p99 %.2f ms, %d errors\n", put ? "PUT" : "GET", conc,
		(double)n * 1e6 / (double)us,
		n ? (double)all[n / 2] / 1000.0 : 0.0,
		n ? (double)all[n * 99 / 100] / 1000.0 : 0.0, errors);
	free(all);
	free(b);
}

static void real_bench(struct store *s)
{
	for (size_t i = 0; i < sizeof(bench_data); i++)
		bench_data[i] = (uint8_t)i;
	bench_run(s, true, 1, 2000);
	bench_run(s, false, 1, 2000);
	bench_run(s, true, 32, 2000);
	bench_run(s, false, 32, 2000);
}

/* The same server in virtual-host style: start-rgw.sh sets
 * rgw_dns_name = localhost. */
static void real_vhost(const char *url)
{
	struct store_s3_options o;
	struct store *s = NULL;
	const char *err = NULL;
	char vurl[256], key[256];

	if (strncmp(url, "http://127.0.0.1:", 17) != 0)
		return;
	snprintf(vurl, sizeof(vurl), "http://localhost:%s", url + 17);
	memset(&o, 0, sizeof(o));
	o.access_key = getenv("AWS_ACCESS_KEY_ID");
	o.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
	o.region = getenv("AWS_REGION");
	o.virtual_host = true;
	CHECK_EQ_INT(store_s3_create(vurl, &o, &s, &err), 0);
	if (s == NULL)
		return;
	snprintf(key, sizeof(key), "%s/vhost/a b", P);
	err = NULL;
	CHECK_EQ_INT(store_put(s, key, "vh", 2, 0, NULL, &err), 0);
	if (err != NULL)
		fprintf(stderr, "vhost put: %s\n", err);
	CHECK(get_is(s, key, "vh"));
	CHECK_EQ_INT(store_del(s, key, NULL), 0);
	store_close(&s);
}

static void test_real(const char *url)
{
	struct store *s = NULL;
	const char *err = NULL;
	struct suite_arg a;

	snprintf(P, sizeof(P), "t-%d-%lld", (int)getpid(),
		 (long long)time_wall_sec());
	if (store_open(url, &s, &err) != 0) {
		fprintf(stderr, "store_open %s: %s\n", url, err);
		CHECK(0);
		return;
	}
	real_suite(s, "sync");
	a = (struct suite_arg){ s, "task" };
	in_task(real_suite_task, &a);
	real_many(s);
	real_race_tasks(s);
	real_race_threads(s);
	real_big_list(s);
	if (getenv("KURA_S3_BENCH") != NULL)
		real_bench(s);
	store_close(&s);
	real_lost_answer(url + 3);
	real_vhost(url + 3);
}

int main(void)
{
	const char *url = getenv("KURA_S3_URL");
	const char *err = NULL;
	struct store *s;

	L = loop_create(256, &err);
	if (L == NULL) {
		fprintf(stderr, "loop_create: %s\n", err);
		return 1;
	}
	test_create_options();
	if (!fake_start()) {
		fprintf(stderr, "fake server: %s\n", strerror(errno));
		return 1;
	}
	s = fake_store(5000, 0);
	if (s != NULL) {
		fake_suite(s);
		in_task(fake_suite_task, s);
		fake_concurrency(s);
	}
	/* a second loop on this thread after the first is gone: the
	 * thread's idle multi handle moves over */
	loop_destroy(&L);
	L = loop_create(256, &err);
	if (L != NULL && s != NULL) {
		fake_set(h_503_twice);
		atomic_store(&fake_count, 2);
		in_task(slow_get_task, s);
		store_close(&s);
	}

	if (url == NULL || strncmp(url, "s3:", 3) != 0 ||
	    getenv("AWS_ACCESS_KEY_ID") == NULL ||
	    getenv("AWS_SECRET_ACCESS_KEY") == NULL)
		fprintf(stderr, "store_s3: no KURA_S3_URL and keys: tests "
			"against a real S3 server skipped (see "
			"tests/s3/start-rgw.sh)\n");
	else
		test_real(url);

	atomic_store(&fake_stop, true);
	pthread_join(fake_thread, NULL);
	close(fake_listen_fd);
	if (proxy_listen_fd >= 0) {
		pthread_join(proxy_thread, NULL);
		close(proxy_listen_fd);
	}
	pthread_mutex_lock(&fake_lock);
	free(fake_last.body);
	fake_last.body = NULL;
	pthread_mutex_unlock(&fake_lock);
	loop_destroy(&L);
	return test_done("store_s3");
}
