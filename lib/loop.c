#include "lib/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop_int.h"
#include "lib/util.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define LOOP_HAVE_VALGRIND 1
#endif
#endif
#ifndef LOOP_HAVE_VALGRIND
#define LOOP_HAVE_VALGRIND 0
#endif

#define LOOP_DEFAULT_ENTRIES 256
#define LOOP_MAX_ENTRIES 32768

struct loop_call {
	void (*fn)(void *arg);
	void *arg;
};

enum loop_mode {
	LOOP_MODE_AUTO = 0,	/* io_uring, epoll when it is unavailable */
	LOOP_MODE_URING,
	LOOP_MODE_EPOLL,
};

struct loop {
	/* The epoll backend when not NULL; ring is unused then. */
	struct loop_epoll *ep;
	struct io_uring ring;
	atomic_bool stop;

	/* Timers: binary min-heap on deadline_usec. */
	struct loop_timer **heap;
	size_t heap_len, heap_cap;

	/* loop_defer(): FIFO ring buffer, capacity a power of two. */
	struct loop_call *defer;
	size_t defer_head, defer_len, defer_cap;

	/* loop_post(): producers append to `post` under post_lock; the loop
	 * swaps it with `post_run` and runs that without the lock. */
	pthread_mutex_t post_lock;
	struct loop_call *post, *post_run;
	size_t post_len, post_cap, post_run_cap;
	atomic_bool post_pending;

	/* Provided receive buffers (loop_bufs_init). */
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	unsigned nbufs, buf_size;
	size_t br_bytes;

	/* Wakes a loop blocked in io_uring_enter or epoll_wait from another
	 * thread (non-blocking with epoll, where the backend drains it). */
	int efd;
	uint64_t efd_val;
	struct loop_op efd_op;
};

static __thread struct loop *loop_cur;
static __thread char loop_errbuf[160];

static void loop_efd_arm(struct loop *l);

struct loop *loop_current(void)
{
	return loop_cur;
}

void loop_set_current(struct loop *l)
{
	loop_cur = l;
}

static void loop_efd_done(struct loop_op *op, int res, uint32_t cqe_flags)
{
	struct loop *l = (struct loop *)((char *)op - offsetof(struct loop, efd_op));

	(void)cqe_flags;
	if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
		/* Re-arming would spin on a persistent error; posts still run
		 * whenever the loop wakes for other reasons. */
		log_error("loop: eventfd read failed: %s", strerror(-res));
		return;
	}
	loop_efd_arm(l);
}

static void loop_efd_arm(struct loop *l)
{
	struct io_uring_sqe *sqe = loop_get_sqe(l);

	io_uring_prep_read(sqe, l->efd, &l->efd_val, sizeof(l->efd_val), 0);
	loop_op_set(sqe, &l->efd_op, loop_efd_done);
}

static void loop_efd_kick(struct loop *l)
{
	uint64_t one = 1;

	for (;;) {
		ssize_t r = write(l->efd, &one, sizeof(one));
		if (r == (ssize_t)sizeof(one))
			return;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;	/* counter saturated: a wakeup is pending */
		log_error("loop: eventfd write failed: %s",
			  r < 0 ? strerror(errno) : "short write");
		return;
	}
}

static int loop_ring_init(struct loop *l, unsigned entries)
{
	/* Preferred setup for a 6.x kernel; each fallback drops flags an
	 * older kernel may reject with EINVAL. SINGLE_ISSUER is avoided on
	 * purpose: loops may be created on one thread and run on another. */
	static const unsigned flag_sets[] = {
		IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE |
			IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE,
		0,
	};
	int r = -EINVAL;

	for (size_t i = 0; i < ARRAY_SIZE(flag_sets); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = flag_sets[i];
		if (p.flags & IORING_SETUP_CQSIZE)
			p.cq_entries = entries * 4;
		r = io_uring_queue_init_params(entries, &l->ring, &p);
		if (r != -EINVAL)
			break;
	}
	return r;
}

static enum loop_mode loop_mode_from_env(void)
{
	const char *v = getenv("KURA_LOOP");

	if (v == NULL || *v == '\0' || strcmp(v, "auto") == 0)
		return LOOP_MODE_AUTO;
	if (strcmp(v, "epoll") == 0)
		return LOOP_MODE_EPOLL;
	if (strcmp(v, "uring") == 0 || strcmp(v, "io_uring") == 0)
		return LOOP_MODE_URING;
	log_warn("event=loop-backend-invalid value=\"%.32s\" using=auto", v);
	return LOOP_MODE_AUTO;
}

/* One line per process and backend: workers create their loops alike. */
static void loop_log_backend(bool epoll, const char *reason)
{
	static atomic_int logged = -1;
	int want = epoll ? 1 : 0;

	if (atomic_exchange(&logged, want) == want)
		return;
	if (!epoll)
		log_info("event=loop-backend backend=io_uring");
	else if (strncmp(reason, "io_uring", 8) == 0)
		log_warn("event=loop-backend backend=epoll reason=\"%s\"", reason);
	else
		log_info("event=loop-backend backend=epoll reason=\"%s\"", reason);
}

struct loop *loop_create(unsigned entries, const char **error_r)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	enum loop_mode mode = loop_mode_from_env();
	const char *reason = "KURA_LOOP=epoll";
	const char *eperr = NULL;
	int r;

	if (entries == 0)
		entries = LOOP_DEFAULT_ENTRIES;
	if (entries > LOOP_MAX_ENTRIES)
		entries = LOOP_MAX_ENTRIES;
#if LOOP_HAVE_VALGRIND
	/* valgrind does not model io_uring's shared rings: the server
	 * would hang under it. */
	if (mode == LOOP_MODE_AUTO && RUNNING_ON_VALGRIND) {
		mode = LOOP_MODE_EPOLL;
		reason = "running under valgrind";
	}
#endif
	if (mode != LOOP_MODE_EPOLL) {
		r = loop_ring_init(l, entries);
		if (r < 0) {
			snprintf(loop_errbuf, sizeof(loop_errbuf),
				 "io_uring not available: %s", strerror(-r));
			if (mode == LOOP_MODE_URING)
				goto fail;
			reason = loop_errbuf;
			mode = LOOP_MODE_EPOLL;
		}
	}
	l->efd = eventfd(0, EFD_CLOEXEC |
			 (mode == LOOP_MODE_EPOLL ? EFD_NONBLOCK : 0));
	if (l->efd < 0) {
		snprintf(loop_errbuf, sizeof(loop_errbuf), "eventfd: %s",
			 strerror(errno));
		if (mode != LOOP_MODE_EPOLL)
			io_uring_queue_exit(&l->ring);
		goto fail;
	}
	if (mode == LOOP_MODE_EPOLL) {
		l->ep = loop_epoll_create(entries, l->efd, &eperr);
		if (l->ep == NULL) {
			snprintf(loop_errbuf, sizeof(loop_errbuf), "%s", eperr);
			close(l->efd);
			goto fail;
		}
	}
	r = pthread_mutex_init(&l->post_lock, NULL);
	if (r != 0) {
		snprintf(loop_errbuf, sizeof(loop_errbuf),
			 "pthread_mutex_init: %s", strerror(r));
		if (l->ep != NULL)
			loop_epoll_destroy(&l->ep);
		else
			io_uring_queue_exit(&l->ring);
		close(l->efd);
		goto fail;
	}
	atomic_init(&l->stop, false);
	atomic_init(&l->post_pending, false);
	loop_log_backend(l->ep != NULL, reason);
	if (l->ep == NULL)
		loop_efd_arm(l);
	return l;
fail:
	free(l);
	if (error_r != NULL)
		*error_r = loop_errbuf;
	return NULL;
}

const char *loop_backend(const struct loop *l)
{
	return l->ep != NULL ? "epoll" : "io_uring";
}

void loop_destroy(struct loop **lp)
{
	struct loop *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	if (loop_cur == l)
		loop_cur = NULL;
	if (l->ep != NULL)
		loop_epoll_destroy(&l->ep);
	else
		io_uring_queue_exit(&l->ring);
	if (l->br != NULL)
		munmap(l->br, l->br_bytes);
	free(l->bufs);
	if (close(l->efd) < 0)
		log_warn("loop: close eventfd: %s", strerror(errno));
	pthread_mutex_destroy(&l->post_lock);
	free(l->heap);
	free(l->defer);
	free(l->post);
	free(l->post_run);
	free(l);
}

struct io_uring_sqe *loop_get_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe;
	unsigned tries = 0;

	if (l->ep != NULL)
		return loop_epoll_get_sqe(l->ep);
	sqe = io_uring_get_sqe(&l->ring);

	while (sqe == NULL) {
		/* The SQ is full: hand what is queued to the kernel now. */
		int r = io_uring_submit(&l->ring);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_error("loop: io_uring_submit: %s", strerror(-r));
			abort();
		}
		if (r < 0 && ++tries > 1000) {
			log_error("loop: SQ stays full: %s", strerror(-r));
			abort();
		}
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

void loop_op_set(struct io_uring_sqe *sqe, struct loop_op *op, loop_cb *cb)
{
	op->cb = cb;
	io_uring_sqe_set_data(sqe, op);
}

/* ---- timers ---- */

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->deadline_usec <= t->deadline_usec)
			break;
		l->heap[i] = l->heap[p];
		l->heap[i]->heap_idx = i;
		i = p;
	}
	l->heap[i] = t;
	t->heap_idx = i;
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	size_t n = l->heap_len;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n &&
		    l->heap[c + 1]->deadline_usec < l->heap[c]->deadline_usec)
			c++;
		if (l->heap[c]->deadline_usec >= t->deadline_usec)
			break;
		l->heap[i] = l->heap[c];
		l->heap[i]->heap_idx = i;
		i = c;
	}
	l->heap[i] = t;
	t->heap_idx = i;
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->heap_idx;
	struct loop_timer *last = l->heap[--l->heap_len];

	t->heap_idx = SIZE_MAX;
	if (i == l->heap_len)
		return;
	l->heap[i] = last;
	last->heap_idx = i;
	heap_up(l, i);
	heap_down(l, last->heap_idx);
}

void loop_timer_init(struct loop_timer *t)
{
	t->deadline_usec = 0;
	t->heap_idx = SIZE_MAX;
	t->fn = NULL;
}

void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t msec,
		      void (*fn)(struct loop_timer *t))
{
	uint64_t now = time_mono_usec();
	uint64_t delta = msec > (UINT64_MAX - now) / 1000 ?
		UINT64_MAX - now : msec * 1000;

	t->fn = fn;
	t->deadline_usec = now + delta;
	if (t->heap_idx != SIZE_MAX) {
		heap_up(l, t->heap_idx);
		heap_down(l, t->heap_idx);
		return;
	}
	xgrow((void **)&l->heap, &l->heap_cap, l->heap_len + 1,
	      sizeof(*l->heap));
	l->heap[l->heap_len] = t;
	t->heap_idx = l->heap_len++;
	heap_up(l, t->heap_idx);
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	if (t->heap_idx != SIZE_MAX)
		heap_remove(l, t);
}

static void loop_run_timers(struct loop *l)
{
	/* A timer re-armed with 0 ms from its own callback must wait for
	 * the next iteration, so at most the timers armed now can fire. */
	size_t budget = l->heap_len;
	uint64_t now;

	if (budget == 0)
		return;
	now = time_mono_usec();
	while (budget-- > 0 && l->heap_len > 0 &&
	       l->heap[0]->deadline_usec <= now) {
		struct loop_timer *t = l->heap[0];
		heap_remove(l, t);
		t->fn(t);
	}
}

/* ---- post / defer ---- */

void loop_post(struct loop *l, void (*fn)(void *arg), void *arg)
{
	bool first;

	pthread_mutex_lock(&l->post_lock);
	xgrow((void **)&l->post, &l->post_cap, l->post_len + 1,
	      sizeof(*l->post));
	l->post[l->post_len].fn = fn;
	l->post[l->post_len].arg = arg;
	first = l->post_len++ == 0;
	atomic_store_explicit(&l->post_pending, true, memory_order_release);
	pthread_mutex_unlock(&l->post_lock);
	/* One wakeup per batch: later posters find the queue non-empty and
	 * know a kick is already on its way. The loop's own thread never
	 * needs one, it checks post_pending before it blocks. */
	if (first && loop_cur != l)
		loop_efd_kick(l);
}

static void loop_run_posted(struct loop *l)
{
	struct loop_call *calls;
	size_t n, cap;

	atomic_store_explicit(&l->post_pending, false, memory_order_relaxed);
	pthread_mutex_lock(&l->post_lock);
	calls = l->post;
	n = l->post_len;
	cap = l->post_cap;
	l->post = l->post_run;
	l->post_cap = l->post_run_cap;
	l->post_len = 0;
	pthread_mutex_unlock(&l->post_lock);
	l->post_run = calls;
	l->post_run_cap = cap;
	for (size_t i = 0; i < n; i++)
		calls[i].fn(calls[i].arg);
}

static void loop_defer_grow(struct loop *l)
{
	size_t ncap = l->defer_cap ? l->defer_cap * 2 : 64;
	struct loop_call *n = xmalloc(ncap * sizeof(*n));

	for (size_t i = 0; i < l->defer_len; i++)
		n[i] = l->defer[(l->defer_head + i) & (l->defer_cap - 1)];
	free(l->defer);
	l->defer = n;
	l->defer_cap = ncap;
	l->defer_head = 0;
}

void loop_defer(struct loop *l, void (*fn)(void *arg), void *arg)
{
	size_t i;

	if (l->defer_len == l->defer_cap)
		loop_defer_grow(l);
	i = (l->defer_head + l->defer_len) & (l->defer_cap - 1);
	l->defer[i].fn = fn;
	l->defer[i].arg = arg;
	l->defer_len++;
}

static void loop_run_defers(struct loop *l)
{
	/* Only what is queued now: work deferred by a deferred function
	 * runs in the next iteration, after I/O has had its turn. */
	size_t n = l->defer_len;

	while (n-- > 0) {
		struct loop_call c = l->defer[l->defer_head];
		l->defer_head = (l->defer_head + 1) & (l->defer_cap - 1);
		l->defer_len--;
		c.fn(c.arg);
	}
}

/* ---- the loop ---- */

static void loop_enter_nowait(struct loop *l)
{
	int r;

	if (io_uring_sq_ready(&l->ring) > 0) {
		r = io_uring_submit(&l->ring);
	} else if (io_uring_cq_ready(&l->ring) == 0 &&
		   (IO_URING_READ_ONCE(*l->ring.sq.kflags) &
		    (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))) {
		/* COOP_TASKRUN: completions wait for a kernel entry. */
		r = io_uring_get_events(&l->ring);
	} else {
		return;
	}
	if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		log_error("loop: io_uring_enter: %s", strerror(-r));
}

static void loop_enter_wait(struct loop *l, int64_t wait_usec)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	int r;

	if (wait_usec >= 0) {
		ts.tv_sec = wait_usec / 1000000;
		ts.tv_nsec = (wait_usec % 1000000) * 1000;
		tsp = &ts;
	}
	r = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, tsp, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN &&
	    r != -EBUSY)
		log_error("loop: io_uring_enter: %s", strerror(-r));
}

static void loop_reap(struct loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct loop_op *op = io_uring_cqe_get_data(cqe);
		n++;
		if (op != NULL)
			op->cb(op, cqe->res, cqe->flags);
	}
	if (n > 0)
		io_uring_cq_advance(&l->ring, n);
}

bool loop_run_once(struct loop *l, int timeout_ms)
{
	struct loop *prev = loop_cur;
	int64_t wait_usec = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000;
	bool busy;

	loop_cur = l;
	busy = l->defer_len > 0 ||
		atomic_load_explicit(&l->post_pending, memory_order_acquire) ||
		atomic_load_explicit(&l->stop, memory_order_relaxed);
	if (!busy && wait_usec != 0 && l->heap_len > 0) {
		uint64_t now = time_mono_usec();
		uint64_t dl = l->heap[0]->deadline_usec;
		int64_t d = dl <= now ? 0 :
			(dl - now > INT64_MAX ? INT64_MAX : (int64_t)(dl - now));
		if (wait_usec < 0 || d < wait_usec)
			wait_usec = d;
	}
	if (l->ep != NULL) {
		loop_epoll_wait(l->ep, busy ? 0 : wait_usec);
		loop_epoll_reap(l->ep);
	} else {
		if (busy || wait_usec == 0)
			loop_enter_nowait(l);
		else
			loop_enter_wait(l, wait_usec);
		loop_reap(l);
	}
	loop_run_timers(l);
	if (atomic_load_explicit(&l->post_pending, memory_order_acquire))
		loop_run_posted(l);
	loop_run_defers(l);
	loop_cur = prev;
	return !atomic_load_explicit(&l->stop, memory_order_relaxed);
}

void loop_run(struct loop *l)
{
	struct loop *prev = loop_cur;

	loop_cur = l;
	while (loop_run_once(l, -1))
		;
	atomic_store(&l->stop, false);
	loop_cur = prev;
}

void loop_stop(struct loop *l)
{
	atomic_store(&l->stop, true);
	if (loop_cur != l)
		loop_efd_kick(l);
}

/* ---- provided buffers ---- */

#define LOOP_BGID 1

int loop_bufs_init(struct loop *l, unsigned count, unsigned size)
{
	if (l->ep != NULL)
		return -EOPNOTSUPP;	/* callers use their own buffers */
	if (count == 0 || (count & (count - 1)) != 0 || count > 32768)
		return -EINVAL;
	size_t bytes = (size_t)count * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	struct io_uring_buf_ring *br = mem;
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)br;
	reg.ring_entries = count;
	reg.bgid = LOOP_BGID;
	int ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (ret < 0) {
		munmap(mem, bytes);
		return ret;
	}
	io_uring_buf_ring_init(br);
	l->bufs = xmalloc((size_t)count * size);
	for (unsigned i = 0; i < count; i++)
		io_uring_buf_ring_add(br, l->bufs + (size_t)i * size, size, (unsigned short)i,
				      io_uring_buf_ring_mask(count), (int)i);
	io_uring_buf_ring_advance(br, (int)count);
	l->br = br;
	l->br_bytes = bytes;
	l->nbufs = count;
	l->buf_size = size;
	return 0;
}

bool loop_bufs_enabled(const struct loop *l)
{
	return l->br != NULL;
}

void loop_prep_recv_provided(struct loop *l, struct io_uring_sqe *sqe, int fd)
{
	io_uring_prep_recv(sqe, fd, NULL, l->buf_size, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LOOP_BGID;
}

uint8_t *loop_buf_get(struct loop *l, uint32_t cqe_flags, unsigned *bid_r)
{
	if (l->br == NULL || !(cqe_flags & IORING_CQE_F_BUFFER))
		return NULL;
	unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
	if (bid >= l->nbufs)
		return NULL;
	*bid_r = bid;
	return l->bufs + (size_t)bid * l->buf_size;
}

void loop_buf_put(struct loop *l, unsigned bid)
{
	io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * l->buf_size, l->buf_size,
			      (unsigned short)bid, io_uring_buf_ring_mask(l->nbufs), 0);
	io_uring_buf_ring_advance(l->br, 1);
}
