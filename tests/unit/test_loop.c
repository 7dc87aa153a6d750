/* Unit tests for lib/loop.c: timers, NOPs through the ring, defer,
 * post from other threads, stop. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "lib/loop.h"
#include "lib/util.h"
#include "tests/unit/test.h"

static struct loop *make_loop(void)
{
	const char *err = NULL;
	struct loop *l = loop_create(64, &err);

	if (l == NULL) {
		fprintf(stderr, "loop_create: %s\n", err ? err : "?");
		exit(77);
	}
	return l;
}

/* ---- timers ---- */

struct ttimer {
	struct loop_timer t;
	int id;
	int *order;
	int *n;
};

static void ttimer_fired(struct loop_timer *lt)
{
	struct ttimer *tt = (struct ttimer *)lt;

	tt->order[(*tt->n)++] = tt->id;
}

static void run_until(struct loop *l, int *n, int want, uint64_t max_ms)
{
	uint64_t end = time_mono_usec() + max_ms * 1000;

	while (*n < want && time_mono_usec() < end)
		loop_run_once(l, 50);
}

static void test_timers(void)
{
	struct loop *l = make_loop();
	static const int ms[] = { 40, 10, 30, 20, 5, 50 };
	struct ttimer tt[ARRAY_SIZE(ms)];
	int order[16], n = 0;
	uint64_t start = time_mono_usec();

	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		loop_timer_init(&tt[i].t);
		CHECK(!loop_timer_is_armed(&tt[i].t));
		tt[i].id = ms[i];
		tt[i].order = order;
		tt[i].n = &n;
		loop_timer_start(l, &tt[i].t, (uint64_t)ms[i], ttimer_fired);
		CHECK(loop_timer_is_armed(&tt[i].t));
	}
	/* cancel 30, move 40 to 1 ms, stop an unarmed timer */
	loop_timer_stop(l, &tt[2].t);
	CHECK(!loop_timer_is_armed(&tt[2].t));
	loop_timer_stop(l, &tt[2].t);
	loop_timer_start(l, &tt[0].t, 1, ttimer_fired);
	run_until(l, &n, 5, 2000);
	CHECK_EQ_INT(n, 5);
	CHECK_EQ_INT(order[0], 40);
	CHECK_EQ_INT(order[1], 5);
	CHECK_EQ_INT(order[2], 10);
	CHECK_EQ_INT(order[3], 20);
	CHECK_EQ_INT(order[4], 50);
	CHECK(time_mono_usec() - start >= 50000);
	for (size_t i = 0; i < ARRAY_SIZE(ms); i++)
		CHECK(!loop_timer_is_armed(&tt[i].t));
	/* nothing else fires */
	loop_run_once(l, 20);
	CHECK_EQ_INT(n, 5);
	loop_destroy(&l);
	CHECK(l == NULL);
}

/* Many timers in random order come out sorted. */
static void test_timer_heap(void)
{
	struct loop *l = make_loop();
	enum { N = 500 };
	static struct ttimer tt[N];
	static int order[N];
	int n = 0;
	uint32_t seed = 12345;

	for (int i = 0; i < N; i++) {
		seed = seed * 1103515245u + 12345u;
		loop_timer_init(&tt[i].t);
		tt[i].id = i;
		tt[i].order = order;
		tt[i].n = &n;
		loop_timer_start(l, &tt[i].t, (seed >> 8) % 60, ttimer_fired);
	}
	/* stop every third one */
	int stopped = 0;
	for (int i = 0; i < N; i += 3) {
		loop_timer_stop(l, &tt[i].t);
		stopped++;
	}
	run_until(l, &n, N - stopped, 3000);
	CHECK_EQ_INT(n, N - stopped);
	/* Fired in deadline order (deadlines, not delays: starting 500
	 * timers takes time on a slow, sanitized build). */
	int sorted = 1;
	for (int i = 1; i < n; i++)
		if (tt[order[i]].t.deadline_usec < tt[order[i - 1]].t.deadline_usec)
			sorted = 0;
	CHECK(sorted);
	loop_destroy(&l);
}

/* A timer re-arming itself with 0 ms fires once per iteration. */
static int rearm_count;
static struct loop *rearm_loop;

static void rearm_fn(struct loop_timer *t)
{
	if (++rearm_count < 5)
		loop_timer_start(rearm_loop, t, 0, rearm_fn);
}

static void test_timer_rearm(void)
{
	struct loop_timer t;

	rearm_loop = make_loop();
	loop_timer_init(&t);
	loop_timer_start(rearm_loop, &t, 0, rearm_fn);
	loop_run_once(rearm_loop, 0);
	CHECK_EQ_INT(rearm_count, 1);
	for (int i = 0; i < 10; i++)
		loop_run_once(rearm_loop, 10);
	CHECK_EQ_INT(rearm_count, 5);
	CHECK(!loop_timer_is_armed(&t));
	loop_destroy(&rearm_loop);
}

/* ---- NOPs, SQ overflow ---- */

struct nop {
	struct loop_op op;
	int res;
	int done;
};

static void nop_done(struct loop_op *op, int res, uint32_t flags)
{
	struct nop *n = (struct nop *)op;

	(void)flags;
	n->res = res;
	n->done++;
}

static void test_nops(void)
{
	struct loop *l = make_loop();
	enum { N = 1000 };	/* far more than the SQ holds */
	static struct nop nops[N];
	int total;

	for (int i = 0; i < N; i++) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		CHECK(sqe != NULL);
		io_uring_prep_nop(sqe);
		loop_op_set(sqe, &nops[i].op, nop_done);
		nops[i].res = -1;
	}
	for (int iter = 0; iter < 100; iter++) {
		total = 0;
		for (int i = 0; i < N; i++)
			total += nops[i].done;
		if (total == N)
			break;
		loop_run_once(l, 100);
	}
	total = 0;
	int ok = 0;
	for (int i = 0; i < N; i++) {
		total += nops[i].done;
		ok += nops[i].res == 0;
	}
	CHECK_EQ_INT(total, N);
	CHECK_EQ_INT(ok, N);
	loop_destroy(&l);
}

/* ---- defer ---- */

struct dctx {
	struct loop *l;
	int log[16];
	int n;
};

static void defer_fn(void *arg);

static struct dctx *dctx_g;

static void defer_fn(void *arg)
{
	int id = (int)(intptr_t)arg;

	dctx_g->log[dctx_g->n++] = id;
	if (id == 2)	/* deferred from a deferred fn: runs next iteration */
		loop_defer(dctx_g->l, defer_fn, (void *)(intptr_t)9);
}

static void defer_from_cb(struct loop_op *op, int res, uint32_t flags)
{
	(void)op;
	(void)res;
	(void)flags;
	dctx_g->log[dctx_g->n++] = 100;
	loop_defer(dctx_g->l, defer_fn, (void *)(intptr_t)4);
	dctx_g->log[dctx_g->n++] = 101;
}

static void test_defer(void)
{
	struct dctx d;
	struct loop_op op;

	memset(&d, 0, sizeof(d));
	d.l = make_loop();
	dctx_g = &d;
	for (int i = 1; i <= 3; i++)
		loop_defer(d.l, defer_fn, (void *)(intptr_t)i);
	/* a pending defer means the iteration does not block */
	uint64_t t0 = time_mono_usec();
	loop_run_once(d.l, 5000);
	CHECK(time_mono_usec() - t0 < 1000000);
	CHECK_EQ_INT(d.n, 3);
	CHECK_EQ_INT(d.log[0], 1);
	CHECK_EQ_INT(d.log[1], 2);
	CHECK_EQ_INT(d.log[2], 3);
	loop_run_once(d.l, 0);
	CHECK_EQ_INT(d.n, 4);
	CHECK_EQ_INT(d.log[3], 9);

	/* defer from a completion callback runs after it returns */
	struct io_uring_sqe *sqe = loop_get_sqe(d.l);
	io_uring_prep_nop(sqe);
	loop_op_set(sqe, &op, defer_from_cb);
	for (int i = 0; i < 50 && d.n < 7; i++)
		loop_run_once(d.l, 100);
	CHECK_EQ_INT(d.n, 7);
	CHECK_EQ_INT(d.log[4], 100);
	CHECK_EQ_INT(d.log[5], 101);
	CHECK_EQ_INT(d.log[6], 4);

	loop_destroy(&d.l);
}

static int order_seen[300];
static int order_n;

static void order_fn(void *arg)
{
	order_seen[order_n++] = (int)(intptr_t)arg;
}

static void test_defer_grow(void)
{
	struct loop *l = make_loop();

	for (int i = 0; i < 40; i++)
		loop_defer(l, order_fn, (void *)(intptr_t)i);
	loop_run_once(l, 0);
	CHECK_EQ_INT(order_n, 40);
	/* head is now in the middle of the buffer: grow while wrapped */
	for (int i = 40; i < 300; i++)
		loop_defer(l, order_fn, (void *)(intptr_t)i);
	loop_run_once(l, 0);
	CHECK_EQ_INT(order_n, 300);
	int ok = 1;
	for (int i = 0; i < 300; i++)
		if (order_seen[i] != i)
			ok = 0;
	CHECK(ok);
	loop_destroy(&l);
}

/* ---- post from other threads ---- */

enum { POST_THREADS = 4, POST_EACH = 5000 };

struct post_ctx {
	struct loop *l;
	atomic_int started;
	int count;		/* only touched on the loop thread */
	int per_thread_last[POST_THREADS];
	int out_of_order;
	pthread_t loop_thread;
	int wrong_thread;
};

struct post_item {
	struct post_ctx *c;
	int thread, seq;
};

static void post_fn(void *arg)
{
	struct post_item *it = arg;
	struct post_ctx *c = it->c;

	if (!pthread_equal(pthread_self(), c->loop_thread))
		c->wrong_thread++;
	if (it->seq != c->per_thread_last[it->thread] + 1)
		c->out_of_order++;
	c->per_thread_last[it->thread] = it->seq;
	c->count++;
	if (c->count == POST_THREADS * POST_EACH)
		loop_stop(c->l);
	free(it);
}

struct poster {
	struct post_ctx *c;
	int id;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;

	atomic_fetch_add(&p->c->started, 1);
	for (int i = 1; i <= POST_EACH; i++) {
		struct post_item *it = xmalloc(sizeof(*it));
		it->c = p->c;
		it->thread = p->id;
		it->seq = i;
		loop_post(p->c->l, post_fn, it);
		if (i % 1000 == 0)
			usleep(1000);	/* let the loop block in between */
	}
	return NULL;
}

static void test_post(void)
{
	struct post_ctx c;
	pthread_t th[POST_THREADS];
	struct poster p[POST_THREADS];

	memset(&c, 0, sizeof(c));
	c.l = make_loop();
	c.loop_thread = pthread_self();
	atomic_init(&c.started, 0);
	for (int i = 0; i < POST_THREADS; i++) {
		p[i].c = &c;
		p[i].id = i;
		CHECK_EQ_INT(pthread_create(&th[i], NULL, poster_main, &p[i]), 0);
	}
	CHECK(loop_current() == NULL);
	loop_run(c.l);	/* returns on loop_stop from post_fn */
	CHECK(loop_current() == NULL);
	for (int i = 0; i < POST_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ_INT(c.count, POST_THREADS * POST_EACH);
	CHECK_EQ_INT(c.out_of_order, 0);
	CHECK_EQ_INT(c.wrong_thread, 0);
	loop_destroy(&c.l);
}

/* A loop blocked with no timers wakes for a post. */
static atomic_int slow_posted;

static void slow_fn(void *arg)
{
	int *hit = arg;
	(*hit)++;
}

struct slow_arg {
	struct loop *l;
	int *hit;
};

static void *slow_poster(void *arg)
{
	struct slow_arg *a = arg;

	usleep(100 * 1000);
	atomic_store(&slow_posted, 1);
	loop_post(a->l, slow_fn, a->hit);
	return NULL;
}

static void test_post_wakes(void)
{
	struct loop *l = make_loop();
	int hit = 0;
	struct slow_arg a = { l, &hit };
	pthread_t th;
	uint64_t t0 = time_mono_usec();

	CHECK_EQ_INT(pthread_create(&th, NULL, slow_poster, &a), 0);
	while (hit == 0 && time_mono_usec() - t0 < 5000000)
		loop_run_once(l, -1);
	CHECK_EQ_INT(hit, 1);
	CHECK(atomic_load(&slow_posted) == 1);
	CHECK(time_mono_usec() - t0 < 2000000);
	pthread_join(th, NULL);
	/* posted from the loop's own thread */
	loop_post(l, slow_fn, &hit);
	loop_run_once(l, 0);
	CHECK_EQ_INT(hit, 2);
	loop_destroy(&l);
}

/* ---- stop from another thread, loop_current ---- */

static struct loop *seen_current;

static void current_fn(void *arg)
{
	(void)arg;
	seen_current = loop_current();
}

static void *stopper(void *arg)
{
	usleep(50 * 1000);
	loop_stop(arg);
	return NULL;
}

static void test_stop(void)
{
	struct loop *l = make_loop();
	pthread_t th;
	uint64_t t0 = time_mono_usec();

	loop_defer(l, current_fn, NULL);
	CHECK_EQ_INT(pthread_create(&th, NULL, stopper, l), 0);
	loop_run(l);
	CHECK(time_mono_usec() - t0 < 2000000);
	pthread_join(th, NULL);
	CHECK(seen_current == l);
	CHECK(loop_current() == NULL);

	/* stop from inside, then run again */
	loop_stop(l);
	CHECK(!loop_run_once(l, -1));
	loop_run(l);
	loop_set_current(l);
	CHECK(loop_current() == l);
	loop_destroy(&l);
	CHECK(loop_current() == NULL);
}

/* ---- a real read through the ring ---- */

static void test_read(void)
{
	struct loop *l = make_loop();
	struct nop n = { .res = -1 };
	char data[64];
	int fd = open("tests/unit/test.h", O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	if (fd < 0) {
		loop_destroy(&l);
		return;
	}
	struct io_uring_sqe *sqe = loop_get_sqe(l);
	io_uring_prep_read(sqe, fd, data, sizeof(data), 0);
	loop_op_set(sqe, &n.op, nop_done);
	for (int i = 0; i < 100 && !n.done; i++)
		loop_run_once(l, 100);
	CHECK_EQ_INT(n.res, (int)sizeof(data));
	CHECK(memcmp(data, "/*", 2) == 0);
	close(fd);
	loop_destroy(&l);
}

int main(void)
{
	test_timers();
	test_timer_heap();
	test_timer_rearm();
	test_nops();
	test_defer();
	test_defer_grow();
	test_post();
	test_post_wakes();
	test_stop();
	test_read();
	return test_done("loop");
}
