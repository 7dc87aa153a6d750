/* conn: one client connection on a worker's loop. Reads through the ring
 * into the parser, runs each complete command as a task, streams APPEND
 * literals, writes responses (through TLS when on), and handles IDLE
 * without a task so that an idle connection holds no stack. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "imapd/compress.h"
#include "imapd/imapd.h"
#include "imapd/session.h"
#include "imapd/tls.h"
#include "index/index.h"
#include "lib/log.h"
#include "lib/task.h"
#include "lib/util.h"

#define CONN_RBUF_SIZE 4096
#define CONN_IN_MAX (256 * 1024)
#define CONN_OUT_HIGH (256 * 1024)
#define CONN_SPOOL_AT (256 * 1024)

static void conn_process(struct conn *c);
static void conn_recv_start(struct conn *c);
static void conn_release_maybe(struct conn *c);
static void conn_handoff_continue(struct conn *c);
static void conn_fill_wire_from(struct conn *c, struct buf *src);
static void recv_data(struct conn *c, int res, const uint8_t *data);

static void timeout_fired(struct loop_timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timeout_timer));
	if (c->closing || c->dead)
		return;
	log_info("event=timeout conn=%llu peer=%s", (unsigned long long)c->id, c->peer);
	conn_printf(c, "* BYE Autologout; idle for too long\r\n");
	conn_close_after_output(c);
	conn_flush(c);
}

static void conn_touch(struct conn *c)
{
	unsigned sec = c->w->srv->set.session_timeout_sec;
	if (sec > 0 && !c->closing)
		loop_timer_start(c->w->loop, &c->timeout_timer, (uint64_t)sec * 1000, timeout_fired);
}

static void peer_describe(struct conn *c, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	c->peer_loopback = false;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
			port = ntohs(sin->sin_port);
			c->peer_loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
			port = ntohs(sin6->sin6_port);
			c->peer_loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
			if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
				c->peer_loopback = sin6->sin6_addr.s6_addr[12] == 127;
		}
	}
	snprintf(c->ipkey, sizeof(c->ipkey), "%s", host);
	snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
}

static void conn_link(struct worker *w, struct conn *c)
{
	c->w = w;
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
}

static void conn_unlink(struct conn *c)
{
	struct worker *w = c->w;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->nconns--;
}

void conn_accepted(struct worker *w, int fd, bool tls)
{
	struct server *srv = w->srv;
	char peer_ip[48];

	unsigned n = atomic_fetch_add(&srv->nconns, 1) + 1;
	struct conn tmp;
	memset(&tmp, 0, sizeof(tmp));
	peer_describe(&tmp, fd);
	snprintf(peer_ip, sizeof(peer_ip), "%s", tmp.ipkey);
	if (n > srv->set.max_connections || atomic_load(&srv->stopping)) {
		static const char bye[] = "* BYE [UNAVAILABLE] Too many connections, try later\r\n";
		if (!tls)
			(void)!send(fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		log_warn("event=refused reason=max-connections peer=%s", tmp.peer);
		close(fd);
		atomic_fetch_sub(&srv->nconns, 1);
		return;
	}
	if (!server_ip_acquire(srv, peer_ip)) {
		static const char bye[] = "* BYE [UNAVAILABLE] Too many connections from your address\r\n";
		if (!tls)
			(void)!send(fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		log_warn("event=refused reason=max-connections-per-ip peer=%s", tmp.peer);
		close(fd);
		atomic_fetch_sub(&srv->nconns, 1);
		return;
	}

	struct conn *c = xcalloc(1, sizeof(*c));
	memcpy(c->peer, tmp.peer, sizeof(c->peer));
	memcpy(c->ipkey, tmp.ipkey, sizeof(c->ipkey));
	c->peer_loopback = tmp.peer_loopback;
	c->id = atomic_fetch_add(&srv->next_conn_id, 1) + 1;
	c->fd = fd;
	c->implicit_tls = tls;
	buf_init(&c->in, CONN_IN_MAX);
	buf_init(&c->out, 0);
	buf_init(&c->wire, 0);
	buf_init(&c->tls_backlog, 64 * 1024);
	buf_init(&c->zraw, CONN_IN_MAX);
	buf_init(&c->zout, 0);
	loop_timer_init(&c->keepalive_timer);
	loop_timer_init(&c->poll_timer);
	loop_timer_init(&c->timeout_timer);
	c->parser = imap_parser_create(&imap_parser_limits_preauth);
	conn_link(w, c);
	c->sess = session_create(c);

	int one = 1;
	setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));

	log_info("event=connect conn=%llu peer=%s tls=%d", (unsigned long long)c->id, c->peer, tls);
	if (tls) {
		c->tls = tls_conn_create(srv->tls);
	}
	session_greeting(c->sess);
	conn_touch(c);
	conn_flush(c);
	conn_recv_start(c);
}

bool conn_is_tls(const struct conn *c)
{
	return c->tls != NULL;
}

void conn_write(struct conn *c, const void *p, size_t len)
{
	if (c->dead)
		return;
	if (!buf_append(&c->out, p, len))
		abort();	/* unbounded buffer: cannot fail */
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	if (c->dead)
		return;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
}

static void conn_mark_dead(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	c->closing = true;
	log_info("event=disconnect conn=%llu peer=%s user=%s reason=%s",
		 (unsigned long long)c->id, c->peer,
		 c->sess && c->sess->user ? c->sess->user : "-", why);
	buf_reset(&c->out);
	buf_reset(&c->wire);
	shutdown(c->fd, SHUT_RDWR);
	if (c->task != NULL && c->wait != CONN_WAIT_NONE) {
		c->wait_line_eof = true;
		c->wait = CONN_WAIT_NONE;
		task_wake(c->task);
	}
}

static void send_done(struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, send_op));
	(void)flags;
	c->send_inflight = false;
	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN) {
			conn_flush(c);
			return;
		}
		conn_mark_dead(c, "send-error");
	} else if (!c->dead) {
		buf_consume(&c->wire, (size_t)res);
	}
	if (!c->dead)
		conn_flush(c);
	if (c->task != NULL && c->wait == CONN_WAIT_FLUSH) {
		c->wait = CONN_WAIT_NONE;
		task_wake(c->task);
	}
	if (c->handoff) {
		conn_handoff_continue(c);
		return;
	}
	conn_release_maybe(c);
}

/* Where TLS puts plaintext: the parser's input, or the compressed
 * stream once COMPRESS is on. */
static struct buf *conn_tls_dst(struct conn *c)
{
	return c->cin != NULL ? &c->zraw : &c->in;
}

/* Inflates what arrived compressed into c->in, as far as room allows. */
static void conn_inflate(struct conn *c)
{
	if (c->cin == NULL || c->dead)
		return;
	while (buf_used(&c->zraw) > 0 || compress_in_pending(c->cin)) {
		size_t before = buf_used(&c->in);
		ssize_t n = compress_in_feed(c->cin, buf_head(&c->zraw), buf_used(&c->zraw),
					     &c->in);
		if (n < 0) {
			conn_mark_dead(c, "inflate-error");
			return;
		}
		buf_consume(&c->zraw, (size_t)n);
		if (n == 0 && buf_used(&c->in) == before)
			break;	/* c->in is full */
	}
}

static void conn_fill_wire(struct conn *c)
{
	if (c->cout != NULL && buf_used(&c->out) > 0) {
		while (buf_used(&c->out) > 0) {
			ssize_t n = compress_out_write(c->cout, buf_head(&c->out),
						       buf_used(&c->out), &c->zout);
			if (n < 0) {
				conn_mark_dead(c, "deflate-error");
				return;
			}
			buf_consume(&c->out, (size_t)n);
		}
		if (compress_out_flush(c->cout, &c->zout) < 0) {
			conn_mark_dead(c, "deflate-error");
			return;
		}
		if (c->idling)
			compress_out_idle(c->cout);
	}
	conn_fill_wire_from(c, c->cout != NULL ? &c->zout : &c->out);
}

static void conn_fill_wire_from(struct conn *c, struct buf *src)
{
	if (buf_used(src) == 0)
		return;
	if (c->tls != NULL) {
		while (buf_used(src) > 0) {
			ssize_t n = tls_conn_write(c->tls, buf_head(src), buf_used(src));
			if (n == -EAGAIN) {
				if (tls_conn_output_pending(c->tls) == 0)
					break;	/* handshake not finished */
				tls_conn_take_output(c->tls, &c->wire);
				continue;
			}
			if (n < 0) {
				conn_mark_dead(c, "tls-write");
				return;
			}
			buf_consume(src, (size_t)n);
		}
		tls_conn_take_output(c->tls, &c->wire);
	} else {
		buf_append(&c->wire, buf_head(src), buf_used(src));
		buf_reset(src);
	}
}

void conn_flush(struct conn *c)
{
	if (c->dead || c->send_inflight)
		return;
	if (buf_used(&c->wire) == 0) {
		conn_fill_wire(c);
		if (c->tls != NULL && buf_used(&c->wire) == 0)
			tls_conn_take_output(c->tls, &c->wire);
	}
	if (buf_used(&c->wire) == 0) {
		if (c->closing && c->task == NULL && !c->dead)
			conn_mark_dead(c, "closed");
		if (c->idling && c->task == NULL) {
			buf_deinit(&c->out);
			buf_deinit(&c->wire);
			buf_deinit(&c->zout);
			if (buf_used(&c->in) == 0)
				buf_deinit(&c->in);
		}
		return;
	}
	struct io_uring_sqe *sqe = loop_get_sqe(c->w->loop);
	io_uring_prep_send(sqe, c->fd, buf_head(&c->wire), buf_used(&c->wire), MSG_NOSIGNAL);
	loop_op_set(sqe, &c->send_op, send_done);
	c->send_inflight = true;
}

bool conn_flush_wait(struct conn *c, size_t low)
{
	while (!c->dead && buf_used(&c->out) + buf_used(&c->wire) > low) {
		conn_flush(c);
		if (!c->send_inflight && buf_used(&c->wire) == 0 && buf_used(&c->out) > 0 &&
		    c->tls != NULL && !tls_conn_handshake_done(c->tls))
			return !c->dead;
		c->wait = CONN_WAIT_FLUSH;
		task_suspend();
	}
	return !c->dead;
}

void conn_abort(struct conn *c)
{
	conn_mark_dead(c, "shutdown");
	conn_release_maybe(c);
}

void conn_close_after_output(struct conn *c)
{
	c->closing = true;
}

static void recv_retry(void *arg)
{
	struct conn *c = arg;
	c->recv_retry_pending = false;
	if (c->handoff) {
		conn_handoff_continue(c);
		return;
	}
	conn_recv_start(c);
	conn_release_maybe(c);
}

static void recv_done(struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, recv_op));
	c->recv_inflight = false;
	/* A provided buffer goes back to the ring once its bytes are
	 * consumed (they are copied into c->in or TLS below). */
	unsigned bid = 0;
	uint8_t *pb = res > 0 ? loop_buf_get(c->w->loop, flags, &bid) : NULL;
	struct loop *l = c->w->loop;	/* c may be freed by recv_data */
	recv_data(c, res, pb != NULL ? pb : c->rbuf);
	if (pb != NULL)
		loop_buf_put(l, bid);
}

static void recv_data(struct conn *c, int res, const uint8_t *data)
{
	if (res == -ENOBUFS) {
		/* All provided buffers in use this instant: retry soon. */
		if (!c->recv_retry_pending && !c->dead) {
			c->recv_retry_pending = true;
			loop_defer(c->w->loop, recv_retry, c);
		}
		return;
	}
	if (res <= 0) {
		if (res == -EINTR || res == -EAGAIN) {
			conn_recv_start(c);
			return;
		}
		if (res == -ECANCELED && c->handoff) {
			conn_handoff_continue(c);
			return;
		}
		conn_mark_dead(c, res == 0 ? "eof" : "recv-error");
		conn_release_maybe(c);
		return;
	}
	if (c->dead) {
		conn_release_maybe(c);
		return;
	}
	conn_touch(c);
	if (c->tls != NULL) {
		size_t fed = 0;
		while (fed < (size_t)res) {
			ssize_t n = tls_conn_feed(c->tls, data + fed, (size_t)res - fed);
			if (n < 0) {
				conn_mark_dead(c, "tls-error");
				conn_release_maybe(c);
				return;
			}
			fed += (size_t)n;
			ssize_t r;
			bool progress = n > 0;
			while ((r = tls_conn_read(c->tls, conn_tls_dst(c))) > 0)
				progress = true;
			conn_inflate(c);
			if (r == -EPROTO || r == 0) {
				/* alert or close_notify: send what TLS has, then close */
				tls_conn_take_output(c->tls, &c->wire);
				conn_flush(c);
				conn_mark_dead(c, r == 0 ? "tls-close" : "tls-error");
				conn_release_maybe(c);
				return;
			}
			if (!progress) {
				/* c->in is full: keep the rest for later. */
				buf_append(&c->tls_backlog, data + fed, (size_t)res - fed);
				break;
			}
		}
		conn_flush(c);	/* handshake bytes */
	} else {
		if (!buf_append(c->cin != NULL ? &c->zraw : &c->in, data, (size_t)res)) {
			/* cannot happen: we only recv when there is room */
			conn_mark_dead(c, "input-overflow");
			conn_release_maybe(c);
			return;
		}
		conn_inflate(c);
	}
	if (c->handoff) {
		conn_handoff_continue(c);
		return;
	}
	conn_process(c);
	conn_recv_start(c);
}

static void conn_recv_start(struct conn *c)
{
	if (c->recv_inflight || c->dead || c->handoff)
		return;
	/* Back-pressure: stop reading while the unparsed input is large. */
	if (buf_used(&c->in) + CONN_RBUF_SIZE > CONN_IN_MAX)
		return;
	struct io_uring_sqe *sqe = loop_get_sqe(c->w->loop);
	if (loop_bufs_enabled(c->w->loop)) {
		loop_prep_recv_provided(c->w->loop, sqe, c->fd);
	} else {
		if (c->rbuf == NULL) {
			c->rbuf = xmalloc(CONN_RBUF_SIZE);
			c->rbuf_size = CONN_RBUF_SIZE;
		}
		io_uring_prep_recv(sqe, c->fd, c->rbuf, c->rbuf_size, 0);
	}
	loop_op_set(sqe, &c->recv_op, recv_done);
	c->recv_inflight = true;
}

static void conn_free_literals(struct conn *c)
{
	while (c->lits != NULL) {
		struct conn_literal *l = c->lits;
		c->lits = l->next;
		buf_deinit(&l->data);
		if (l->map != NULL)
			munmap(l->map, l->len);
		if (l->fd >= 0)
			close(l->fd);
		free(l);
	}
	c->lit_cur = NULL;
	c->lit_remaining = 0;
}

static void conn_release_maybe(struct conn *c)
{
	if (!c->dead || c->recv_inflight || c->send_inflight || c->cancel_inflight ||
	    c->task != NULL || c->poll_running || c->recv_retry_pending)
		return;
	struct loop *l = c->w->loop;
	loop_timer_stop(l, &c->keepalive_timer);
	loop_timer_stop(l, &c->poll_timer);
	loop_timer_stop(l, &c->timeout_timer);
	session_destroy(&c->sess);
	imap_parser_destroy(&c->parser);
	arena_destroy(&c->cmd_arena);
	conn_free_literals(c);
	if (c->tls != NULL)
		tls_conn_destroy(&c->tls);
	buf_deinit(&c->in);
	buf_deinit(&c->out);
	buf_deinit(&c->wire);
	buf_deinit(&c->tls_backlog);
	buf_deinit(&c->zraw);
	buf_deinit(&c->zout);
	compress_in_destroy(&c->cin);
	compress_out_destroy(&c->cout);
	free(c->rbuf);
	close(c->fd);
	conn_unlink(c);
	server_ip_release(c->w->srv, c->ipkey);
	atomic_fetch_sub(&c->w->srv->nconns, 1);
	free((void *)c->idle_tag.p);
	free(c);
}

/* ---- commands ---- */

struct arena *conn_arena(struct conn *c)
{
	if (c->cmd_arena == NULL)
		c->cmd_arena = arena_create(4096);
	return c->cmd_arena;
}

static void command_finished(void *arg);

static void command_task(void *arg)
{
	struct conn *c = arg;
	session_run_command(c->sess, c->cmd);
	loop_defer(c->w->loop, command_finished, c);
}

static void command_finished(void *arg)
{
	struct conn *c = arg;
	c->task = NULL;
	c->cmd = NULL;
	c->wait = CONN_WAIT_NONE;
	conn_free_literals(c);
	if (c->idling) {
		/* An idle connection keeps no per-command memory. */
		arena_destroy(&c->cmd_arena);
		imap_parser_trim(c->parser);
	} else if (c->cmd_arena != NULL) {
		arena_reset(c->cmd_arena);
	}
	if (c->dead) {
		conn_release_maybe(c);
		return;
	}
	if (c->sess->want_handoff) {
		c->sess->want_handoff = false;
		conn_maybe_handoff(c);
		return;
	}
	conn_flush(c);
	conn_process(c);
	conn_recv_start(c);
}

static void conn_start_command(struct conn *c, struct imap_cmd *cmd)
{
	conn_arena(c);
	c->cmd = cmd;
	c->task = task_spawn(c->w->loop, command_task, c);
}

/* A complete line at the head of c->in, without CRLF; false if none. */
static bool take_line(struct conn *c, size_t max, struct kstr *line_r, bool *too_long_r)
{
	uint8_t *p = buf_head(&c->in);
	size_t n = buf_used(&c->in);
	*too_long_r = false;
	if (n == 0)
		return false;
	uint8_t *nl = memchr(p, '\n', n);
	if (nl == NULL) {
		if (n > max)
			*too_long_r = true;
		return false;
	}
	size_t len = (size_t)(nl - p);
	if (len > max) {
		*too_long_r = true;
		return false;
	}
	size_t l = len;
	if (l > 0 && p[l - 1] == '\r')
		l--;
	*line_r = arena_kstr(conn_arena(c), kstr_make(p, l));
	buf_consume(&c->in, len + 1);
	return true;
}

int conn_read_line(struct conn *c, size_t max, struct kstr *line_r)
{
	for (;;) {
		if (c->dead)
			return -1;
		bool too_long;
		if (take_line(c, max, line_r, &too_long))
			return 0;
		if (too_long)
			return -1;
		conn_flush(c);
		c->wait = CONN_WAIT_LINE;
		conn_recv_start(c);
		task_suspend();
		if (c->wait_line_eof)
			return -1;
	}
}

static void idle_end(struct conn *c, bool ok)
{
	struct loop *l = c->w->loop;
	loop_timer_stop(l, &c->keepalive_timer);
	loop_timer_stop(l, &c->poll_timer);
	c->idling = false;
	session_sync(c->sess, true);
	if (ok)
		conn_printf(c, "%.*s OK IDLE terminated\r\n", (int)c->idle_tag.len, c->idle_tag.p);
	else
		conn_printf(c, "%.*s BAD Expected DONE\r\n", (int)c->idle_tag.len, c->idle_tag.p);
	free((void *)c->idle_tag.p);
	c->idle_tag = kstr_make(NULL, 0);
}

static void keepalive_fired(struct loop_timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, keepalive_timer));
	if (!c->idling || c->dead)
		return;
	conn_printf(c, "* OK Still here\r\n");
	conn_flush(c);
	loop_timer_start(c->w->loop, t, (uint64_t)c->w->srv->set.idle_keepalive_sec * 1000,
			 keepalive_fired);
}

static void conn_release_deferred(void *arg)
{
	conn_release_maybe(arg);
}

static void poll_task(void *arg)
{
	struct conn *c = arg;
	if (c->idling && !c->dead && c->sess->acct != NULL) {
		const char *error = NULL;
		if (account_refresh(c->sess->acct, &error) < 0)
			log_warn("event=idle-refresh-failed conn=%llu user=%s error=\"%s\"",
				 (unsigned long long)c->id, c->sess->user, error ? error : "");
	}
	c->poll_running = false;
	if (c->dead) {
		loop_defer(c->w->loop, conn_release_deferred, c);
		return;
	}
	if (c->idling) {
		session_sync(c->sess, true);
		conn_flush(c);
		loop_timer_start(c->w->loop, &c->poll_timer,
				 (uint64_t)c->w->srv->set.idle_poll_sec * 1000,
				 c->poll_timer.fn);
	}
}

static void poll_fired(struct loop_timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, poll_timer));
	if (!c->idling || c->dead || c->poll_running)
		return;
	c->poll_running = true;
	task_spawn(c->w->loop, poll_task, c);
}

void conn_idle_begin(struct conn *c, struct kstr tag)
{
	char *t = xmalloc(tag.len + 1);
	memcpy(t, tag.p, tag.len);
	t[tag.len] = '\0';
	c->idle_tag = kstr_make(t, tag.len);
	c->idling = true;
	struct server *srv = c->w->srv;
	if (srv->set.idle_keepalive_sec > 0)
		loop_timer_start(c->w->loop, &c->keepalive_timer,
				 (uint64_t)srv->set.idle_keepalive_sec * 1000, keepalive_fired);
	if (srv->set.idle_poll_sec > 0)
		loop_timer_start(c->w->loop, &c->poll_timer,
				 (uint64_t)srv->set.idle_poll_sec * 1000, poll_fired);
}

void conn_account_changed(struct conn *c)
{
	if (c->idling && !c->dead) {
		session_sync(c->sess, true);
		conn_flush(c);
	}
}

static void conn_bad(struct conn *c, const char *what)
{
	struct kstr tag = imap_parser_bad_tag(c->parser);
	const char *err = imap_parser_error(c->parser);
	if (tag.len == 0)
		tag = KSTR_LIT("*");
	if (strncmp(err, "[TOOBIG]", 8) == 0)
		conn_printf(c, "%.*s NO %s\r\n", (int)tag.len, tag.p, err);
	else
		conn_printf(c, "%.*s BAD %s\r\n", (int)tag.len, tag.p, err);
	if (++c->bad_count >= 20 && !c->closing) {
		conn_printf(c, "* BYE Too many invalid commands\r\n");
		conn_close_after_output(c);
	}
	char esc[128];
	log_info("event=bad conn=%llu peer=%s tag=\"%s\" %s=\"%s\"", (unsigned long long)c->id,
		 c->peer, log_escape(tag.p, tag.len, esc, sizeof(esc)), what, err);
}

/* Moves plaintext that TLS holds (or ciphertext we could not feed yet)
 * into c->in once there is room. */
static void conn_tls_pull(struct conn *c)
{
	if (c->dead)
		return;
	if (c->tls == NULL) {
		conn_inflate(c);
		return;
	}
	while (buf_used(&c->tls_backlog) > 0) {
		ssize_t n = tls_conn_feed(c->tls, buf_head(&c->tls_backlog),
					  buf_used(&c->tls_backlog));
		if (n <= 0)
			break;
		buf_consume(&c->tls_backlog, (size_t)n);
		if (tls_conn_read(c->tls, conn_tls_dst(c)) <= 0)
			break;
		conn_inflate(c);
	}
	while (tls_conn_read(c->tls, conn_tls_dst(c)) > 0)
		conn_inflate(c);
	conn_inflate(c);
}

/* Checks an APPEND before its literal is accepted ("+" sent): the
 * client must be logged in and the mailbox must exist, so that a client
 * does not upload megabytes only to hear NO. Answers the tagged NO
 * itself when not. */
static bool conn_literal_acceptable(struct conn *c)
{
	const struct imap_cmd *pc = imap_parser_partial(c->parser);
	struct session *s = c->sess;
	struct kstr tag = pc->tag;
	if (s->state != SESSION_AUTH && s->state != SESSION_SELECTED) {
		conn_printf(c, "%.*s BAD Please log in first\r\n", (int)tag.len, tag.p);
		return false;
	}
	if (pc->nargs >= 1 && arg_is_astring(&pc->args[0]) && s->acct != NULL) {
		struct kstr name = pc->args[0].str;
		/* INBOX names are case-folded by the handler; leave them to it. */
		if (!kstr_has_prefix_ci(name, "INBOX") &&
		    account_mailbox_find(s->acct, name) == NULL && c->lits == NULL) {
			conn_printf(c, "%.*s NO [TRYCREATE] Mailbox does not exist\r\n",
				    (int)tag.len, tag.p);
			return false;
		}
	}
	return true;
}

/* ---- APPEND literals ---- */

struct kstr conn_literal_bytes(struct conn_literal *l)
{
	if (l->fd >= 0)
		return kstr_make(l->map, l->map != NULL ? l->len : 0);
	return buf_kstr(&l->data);
}

static int literal_spool_open(struct conn *c, struct conn_literal *l)
{
	const char *dir = c->w->srv->set.spool_dir ? c->w->srv->set.spool_dir : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("event=spool-failed dir=%s error=\"%s\"", dir, strerror(errno));
		return -1;
	}
	l->fd = fd;
	return 0;
}

static bool literal_append(struct conn *c, struct conn_literal *l, const uint8_t *p, size_t n)
{
	(void)c;
	if (l->fd < 0)
		return buf_append(&l->data, p, n);
	while (n > 0) {
		ssize_t w = write(l->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			log_error("event=spool-write-failed error=\"%s\"", strerror(errno));
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool literal_finish(struct conn_literal *l)
{
	if (l->fd < 0 || l->len == 0)
		return true;
	void *m = mmap(NULL, l->len, PROT_READ, MAP_PRIVATE, l->fd, 0);
	if (m == MAP_FAILED) {
		log_error("event=spool-map-failed error=\"%s\"", strerror(errno));
		return false;
	}
	l->map = m;
	return true;
}

static void conn_process(struct conn *c)
{
	conn_tls_pull(c);
	while (!c->dead && !c->handoff && !c->closing) {
		if (c->task != NULL) {
			if (c->wait == CONN_WAIT_LINE) {
				uint8_t *nl = buf_used(&c->in) == 0 ? NULL :
					memchr(buf_head(&c->in), '\n', buf_used(&c->in));
				if (nl != NULL || buf_used(&c->in) >= CONN_IN_MAX - CONN_RBUF_SIZE) {
					c->wait = CONN_WAIT_NONE;
					task_wake(c->task);
				}
			}
			break;
		}
		if (c->idling) {
			struct kstr line;
			bool too_long;
			if (!take_line(c, 1024, &line, &too_long)) {
				if (too_long)
					idle_end(c, false);
				break;
			}
			idle_end(c, kstr_eq_ci(line, "DONE"));
			arena_reset(conn_arena(c));
			continue;
		}
		if (c->lit_remaining > 0) {
			size_t n = buf_used(&c->in);
			if (n == 0)
				break;
			if (n > c->lit_remaining)
				n = (size_t)c->lit_remaining;
			if (!literal_append(c, c->lit_cur, buf_head(&c->in), n)) {
				conn_mark_dead(c, "literal-spool-failed");
				break;
			}
			buf_consume(&c->in, n);
			c->lit_remaining -= n;
			if (c->lit_remaining == 0) {
				if (!literal_finish(c->lit_cur)) {
					conn_mark_dead(c, "literal-map-failed");
					break;
				}
				imap_parser_literal_done(c->parser, c->lit_cur);
			}
			continue;
		}
		if (buf_used(&c->in) < 4096)
			conn_tls_pull(c);
		if (buf_used(&c->in) == 0)
			break;
		size_t consumed = 0;
		struct imap_cmd *cmd = NULL;
		uint64_t len = 0;
		enum imap_parse_rc rc = imap_parser_feed(c->parser, buf_head(&c->in),
							 buf_used(&c->in), &consumed, &cmd, &len);
		buf_consume(&c->in, consumed);
		switch (rc) {
		case IMAP_PARSE_MORE:
			goto out;
		case IMAP_PARSE_CONT:
			conn_printf(c, "+ OK\r\n");
			break;
		case IMAP_PARSE_LITERAL: {
			if (!conn_literal_acceptable(c)) {
				imap_parser_literal_refuse(c->parser);
				conn_free_literals(c);
				break;
			}
			struct conn_literal *l = xcalloc(1, sizeof(*l));
			buf_init(&l->data, len ? len : 1);
			l->fd = -1;
			l->len = len;
			if (len > CONN_SPOOL_AT && literal_spool_open(c, l) < 0) {
				free(l);
				imap_parser_literal_refuse(c->parser);
				conn_printf(c, "%.*s NO [UNAVAILABLE] Cannot spool the message\r\n",
					    (int)imap_parser_partial(c->parser)->tag.len,
					    imap_parser_partial(c->parser)->tag.p);
				break;
			}
			l->next = c->lits;
			c->lits = l;
			c->lit_cur = l;
			c->lit_remaining = len;
			if (imap_parser_literal_sync(c->parser))
				conn_printf(c, "+ OK\r\n");
			if (len == 0)
				imap_parser_literal_done(c->parser, l);
			break;
		}
		case IMAP_PARSE_BAD:
			conn_free_literals(c);
			conn_bad(c, "error");
			break;
		case IMAP_PARSE_FATAL: {
			conn_free_literals(c);
			char esc[160];
			const char *err = imap_parser_error(c->parser);
			log_info("event=fatal conn=%llu peer=%s error=\"%s\"", (unsigned long long)c->id,
				 c->peer, log_escape(err, strlen(err), esc, sizeof(esc)));
			conn_printf(c, "* BYE %s\r\n", err);
			conn_close_after_output(c);
			goto out;
		}
		case IMAP_PARSE_DONE:
			conn_start_command(c, cmd);
			goto out;
		}
	}
out:
	conn_flush(c);
	if (c->closing && !c->dead && c->task == NULL && !c->send_inflight &&
	    buf_used(&c->wire) == 0 && buf_used(&c->out) == 0)
		conn_mark_dead(c, "closed");
}

void conn_start_compress(struct conn *c)
{
	/* The OK goes out uncompressed (through TLS if that is on). */
	conn_fill_wire(c);
	c->cout = compress_out_create();
	c->cin = compress_in_create();
	/* Anything the client sent after the command is compressed. */
	buf_append(&c->zraw, buf_head(&c->in), buf_used(&c->in));
	buf_reset(&c->in);
}

bool conn_is_compressed(const struct conn *c)
{
	return c->cout != NULL;
}

void conn_start_tls(struct conn *c)
{
	/* Plaintext that followed STARTTLS is an injection attempt: drop it. */
	buf_reset(&c->in);
	c->tls = tls_conn_create(c->w->srv->tls);
	/* The OK is still in c->out in clear: send it before TLS output. */
	buf_append(&c->wire, buf_head(&c->out), buf_used(&c->out));
	buf_reset(&c->out);
	imap_parser_reset(c->parser);
}

/* ---- handoff to the user's worker ---- */

static void conn_adopt(void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->w;	/* set to the target before posting */
	c->prev = c->next = NULL;
	w->nconns++;
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	c->handoff = false;
	conn_touch(c);
	log_debug("event=handoff conn=%llu worker=%u", (unsigned long long)c->id, w->id);
	session_finish_handoff(c->sess);
}

static void cancel_done(struct loop_op *op, int res, uint32_t flags)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, cancel_op));
	(void)res;
	(void)flags;
	c->cancel_inflight = false;
	/* Once handed off, c belongs to the other worker: do not touch it. */
	if (c->handoff) {
		conn_handoff_continue(c);
		return;
	}
	conn_release_maybe(c);
}

static void conn_handoff_continue(struct conn *c)
{
	if (c->dead) {
		c->handoff = false;
		conn_release_maybe(c);
		return;
	}
	if (c->recv_inflight) {
		if (!c->cancel_inflight) {
			struct io_uring_sqe *sqe = loop_get_sqe(c->w->loop);
			io_uring_prep_cancel(sqe, &c->recv_op, 0);
			loop_op_set(sqe, &c->cancel_op, cancel_done);
			c->cancel_inflight = true;
		}
		return;
	}
	if (c->send_inflight || c->cancel_inflight || c->recv_retry_pending)
		return;
	struct server *srv = c->w->srv;
	unsigned target = server_worker_for_user(srv, c->sess->login_user);
	struct loop *l = c->w->loop;
	loop_timer_stop(l, &c->keepalive_timer);
	loop_timer_stop(l, &c->poll_timer);
	loop_timer_stop(l, &c->timeout_timer);
	conn_unlink(c);
	c->w = &srv->workers[target];
	loop_post(c->w->loop, conn_adopt, c);
}

void conn_maybe_handoff(struct conn *c)
{
	struct server *srv = c->w->srv;
	unsigned target = server_worker_for_user(srv, c->sess->login_user);
	if (target == c->w->id) {
		session_finish_handoff(c->sess);
		return;
	}
	c->handoff = true;
	conn_handoff_continue(c);
}

void conn_run_task(struct conn *c, void (*fn)(void *), void *arg)
{
	(void)arg;
	c->task = task_spawn(c->w->loop, fn, c);
}

void conn_task_done(struct conn *c)
{
	loop_defer(c->w->loop, command_finished, c);
}
