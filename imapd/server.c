/* server: worker threads, each with its own loop and its own listening
 * sockets (SO_REUSEPORT, so the kernel spreads connections), accepting
 * through the ring. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "imapd/imapd.h"
#include "lib/log.h"
#include "lib/util.h"

struct ip_count {
	char ip[48];
	unsigned n;
};

static int listen_socket(const struct server_listener *l, const char **error_r)
{
	static __thread char err[256];
	struct addrinfo hints, *res = NULL;
	char port[8];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", l->port);
	int rc = getaddrinfo(l->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, sizeof(err), "listen %s:%u: %s", l->host, l->port, gai_strerror(rc));
		*error_r = err;
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, sizeof(err), "socket: %s", strerror(errno));
		freeaddrinfo(res);
		*error_r = err;
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* No SO_REUSEPORT: after a crash, the old process's listening socket
	 * can outlive it for a moment (io_uring tears down asynchronously),
	 * and a second socket on the port would swallow connections. Wait
	 * for the port instead. */
	int tries = 0;
	while ((rc = bind(fd, res->ai_addr, res->ai_addrlen)) < 0 && errno == EADDRINUSE &&
	       tries < 200) {
		if (tries++ == 0)
			log_warn("event=listen-wait addr=%s:%u reason=address-in-use", l->host, l->port);
		usleep(50 * 1000);
	}
	if (rc < 0 || listen(fd, 1024) < 0) {
		snprintf(err, sizeof(err), "listen %s:%u: %s", l->host, l->port, strerror(errno));
		freeaddrinfo(res);
		close(fd);
		*error_r = err;
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void accept_arm(struct listen_sock *ls);

static void accept_retry(struct loop_timer *t)
{
	struct listen_sock *ls = (struct listen_sock *)((char *)t - offsetof(struct listen_sock, retry));
	if (!ls->armed && !atomic_load(&ls->w->srv->stopping) && ls->fd >= 0)
		accept_arm(ls);
}

static void accept_done(struct loop_op *op, int res, uint32_t flags)
{
	struct listen_sock *ls = (struct listen_sock *)((char *)op - offsetof(struct listen_sock, op));
	if (!(flags & IORING_CQE_F_MORE))
		ls->armed = false;
	if (res >= 0) {
		if (atomic_load(&ls->w->srv->stopping))
			close(res);
		else
			conn_accepted(ls->w, res, ls->tls);
	} else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
		if (atomic_load(&ls->w->srv->stopping))
			return;
		log_warn("event=accept-error worker=%u error=\"%s\"", ls->w->id, strerror(-res));
		/* Out of descriptors or memory: back off instead of spinning. */
		if (!ls->armed) {
			loop_timer_start(ls->w->loop, &ls->retry, 100, accept_retry);
			return;
		}
	}
	if (!ls->armed && !atomic_load(&ls->w->srv->stopping))
		accept_arm(ls);
}

static void accept_arm(struct listen_sock *ls)
{
	struct io_uring_sqe *sqe = loop_get_sqe(ls->w->loop);
	io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
	loop_op_set(sqe, &ls->op, accept_done);
	ls->armed = true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	loop_set_current(w->loop);
	/* Receives pick a buffer when data arrives: idle connections hold
	 * none. Without kernel support each connection keeps its own. */
	int ret = loop_bufs_init(w->loop, 1024, 4096);
	if (ret < 0)
		log_warn("event=provided-buffers-unavailable worker=%u error=\"%s\"", w->id,
			 strerror(-ret));
	for (unsigned i = 0; i < w->nsocks; i++)
		accept_arm(&w->socks[i]);
	loop_run(w->loop);
	return NULL;
}

int server_start(struct server *srv, const char **error_r)
{
	static char err[256];
	pthread_mutex_init(&srv->ip_lock, NULL);
	srv->ip_cap = 4096;
	srv->ip_counts = xcalloc(srv->ip_cap, sizeof(struct ip_count));
	srv->nworkers = srv->set.workers ? srv->set.workers : 1;
	srv->workers = xcalloc(srv->nworkers, sizeof(struct worker));
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		w->srv = srv;
		w->id = i;
		const char *lerr = NULL;
		w->loop = loop_create(4096, &lerr);
		if (w->loop == NULL) {
			snprintf(err, sizeof(err), "worker %u: %s", i, lerr ? lerr : "loop failed");
			*error_r = err;
			return -1;
		}
		w->nsocks = srv->set.nlisteners;
		w->socks = xcalloc(w->nsocks ? w->nsocks : 1, sizeof(struct listen_sock));
	}
	/* One socket per address, accepted from by every worker's ring. */
	for (unsigned j = 0; j < srv->set.nlisteners; j++) {
		int fd = listen_socket(&srv->set.listeners[j], error_r);
		if (fd < 0)
			return -1;
		for (unsigned i = 0; i < srv->nworkers; i++) {
			struct worker *w = &srv->workers[i];
			w->socks[j].w = w;
			w->socks[j].fd = fd;
			w->socks[j].tls = srv->set.listeners[j].tls;
			loop_timer_init(&w->socks[j].retry);
		}
	}
	for (unsigned j = 0; j < srv->set.nlisteners; j++)
		log_info("event=listening addr=%s:%u tls=%d workers=%u",
			 srv->set.listeners[j].host, srv->set.listeners[j].port,
			 srv->set.listeners[j].tls, srv->nworkers);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
			*error_r = "pthread_create failed";
			return -1;
		}
	}
	return 0;
}

static void shutdown_check(struct loop_timer *t)
{
	struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, shutdown_timer));
	uint64_t waited = time_mono_usec() - w->shutdown_start;
	if (w->nconns == 0 || waited > 10 * 1000000ULL) {
		loop_stop(w->loop);
		return;
	}
	if (waited > 5 * 1000000ULL) {
		struct conn *next;
		for (struct conn *c = w->conns; c != NULL; c = next) {
			next = c->next;
			conn_abort(c);
		}
	}
	loop_timer_start(w->loop, t, 50, shutdown_check);
}

static void worker_shutdown(void *arg)
{
	struct worker *w = arg;
	/* The sockets are shared: worker 0 closes them; shutdown() makes
	 * every worker's pending accept complete. */
	for (unsigned i = 0; i < w->nsocks; i++) {
		if (w->socks[i].fd < 0)
			continue;
		loop_timer_stop(w->loop, &w->socks[i].retry);
		shutdown(w->socks[i].fd, SHUT_RDWR);
		if (w->id == 0)
			close(w->socks[i].fd);
		w->socks[i].fd = -1;
	}
	struct conn *next;
	for (struct conn *c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (c->idling || c->task == NULL) {
			conn_printf(c, "* BYE Server shutting down\r\n");
			conn_close_after_output(c);
			conn_flush(c);
		}
	}
	w->shutdown_start = time_mono_usec();
	loop_timer_init(&w->shutdown_timer);
	loop_timer_start(w->loop, &w->shutdown_timer, 0, shutdown_check);
}

void server_stop(struct server *srv)
{
	atomic_store(&srv->stopping, true);
	for (unsigned i = 0; i < srv->nworkers; i++)
		loop_post(srv->workers[i].loop, worker_shutdown, &srv->workers[i]);
}

void server_wait(struct server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
}

static size_t ip_slot(struct server *srv, const char *ip, bool insert)
{
	size_t mask = srv->ip_cap - 1;
	size_t i = hash64(ip, strlen(ip)) & mask;
	size_t first_free = SIZE_MAX;
	for (size_t k = 0; k < srv->ip_cap; k++, i = (i + 1) & mask) {
		struct ip_count *e = &srv->ip_counts[i];
		if (e->ip[0] == '\0' && e->n == 0) {
			if (first_free == SIZE_MAX)
				first_free = i;
			break;	/* never-used slot ends the probe */
		}
		if (e->n > 0 && strcmp(e->ip, ip) == 0)
			return i;
		if (e->n == 0 && first_free == SIZE_MAX)
			first_free = i;
	}
	return insert ? first_free : SIZE_MAX;
}

bool server_ip_acquire(struct server *srv, const char *ipkey)
{
	bool ok = true;
	pthread_mutex_lock(&srv->ip_lock);
	size_t i = ip_slot(srv, ipkey, true);
	if (i == SIZE_MAX) {
		ok = true;	/* table full: do not refuse on accounting */
	} else {
		struct ip_count *e = &srv->ip_counts[i];
		if (e->n >= srv->set.max_connections_per_ip && srv->set.max_connections_per_ip > 0) {
			ok = false;
		} else {
			if (e->n == 0)
				snprintf(e->ip, sizeof(e->ip), "%s", ipkey);
			e->n++;
		}
	}
	pthread_mutex_unlock(&srv->ip_lock);
	return ok;
}

void server_ip_release(struct server *srv, const char *ipkey)
{
	pthread_mutex_lock(&srv->ip_lock);
	size_t i = ip_slot(srv, ipkey, false);
	if (i != SIZE_MAX && srv->ip_counts[i].n > 0)
		srv->ip_counts[i].n--;
	pthread_mutex_unlock(&srv->ip_lock);
}

unsigned server_worker_for_user(const struct server *srv, const char *user)
{
	if (srv->nworkers <= 1)
		return 0;
	return (unsigned)(hash64(user, strlen(user)) % srv->nworkers);
}
