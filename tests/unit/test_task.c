/* Unit tests for lib/task.c: spawn, task_io (NOP and a real read),
 * suspend/wake ordering, remembered wakes, sleep, many tasks. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "tests/unit/test.h"

static struct loop *L;

/* Runs the loop until no task is left (or max_ms passed). */
static void run_all(uint64_t max_ms)
{
	uint64_t end = time_mono_usec() + max_ms * 1000;

	while (task_count() > 0 && time_mono_usec() < end)
		loop_run_once(L, 100);
}

/* ---- spawn ---- */

static int spawn_ran[100];
static int spawn_seq;

static void spawn_fn(void *arg)
{
	int i = (int)(intptr_t)arg;

	CHECK(task_current() != NULL);
	CHECK(loop_current() == L);
	spawn_ran[i] = ++spawn_seq;
}

static void test_spawn(void)
{
	CHECK(task_current() == NULL);
	for (int i = 0; i < 100; i++)
		CHECK(task_spawn(L, spawn_fn, (void *)(intptr_t)i) != NULL);
	/* never run inside task_spawn */
	CHECK_EQ_INT(spawn_seq, 0);
	CHECK_EQ_INT(task_count(), 100);
	run_all(2000);
	CHECK_EQ_INT(task_count(), 0);
	CHECK_EQ_INT(spawn_seq, 100);
	int fifo = 1;
	for (int i = 0; i < 100; i++)
		if (spawn_ran[i] != i + 1)
			fifo = 0;
	CHECK(fifo);
	CHECK(task_current() == NULL);
}

/* ---- task_io ---- */

static int io_nop_res = -1;

static void io_nop_fn(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10; i++) {
		struct io_uring_sqe *sqe = loop_get_sqe(L);
		io_uring_prep_nop(sqe);
		io_nop_res = task_io(sqe);
		if (io_nop_res != 0)
			break;
	}
}

struct read_arg {
	const char *path;
	char data[256];
	int res;
	int open_res;
};

static void io_read_fn(void *arg)
{
	struct read_arg *a = arg;
	struct io_uring_sqe *sqe = loop_get_sqe(L);

	io_uring_prep_openat(sqe, AT_FDCWD, a->path, O_RDONLY | O_CLOEXEC, 0);
	a->open_res = task_io(sqe);
	if (a->open_res < 0)
		return;
	sqe = loop_get_sqe(L);
	io_uring_prep_read(sqe, a->open_res, a->data, sizeof(a->data) - 1, 0);
	a->res = task_io(sqe);
	sqe = loop_get_sqe(L);
	io_uring_prep_close(sqe, a->open_res);
	CHECK_EQ_INT(task_io(sqe), 0);
	/* a failing op returns the negative errno */
	sqe = loop_get_sqe(L);
	io_uring_prep_openat(sqe, AT_FDCWD, "/nonexistent/kura", O_RDONLY, 0);
	CHECK_EQ_INT(task_io(sqe), -ENOENT);
}

static void test_io(void)
{
	struct read_arg a;
	char want[256];
	int fd;
	ssize_t n;

	memset(&a, 0, sizeof(a));
	a.path = "tests/unit/test.h";
	task_spawn(L, io_nop_fn, NULL);
	task_spawn(L, io_read_fn, &a);
	run_all(5000);
	CHECK_EQ_INT(task_count(), 0);
	CHECK_EQ_INT(io_nop_res, 0);
	CHECK(a.open_res >= 0);
	fd = open(a.path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	n = read(fd, want, sizeof(want) - 1);
	close(fd);
	CHECK(n > 0);
	CHECK_EQ_INT(a.res, n);
	CHECK(n > 0 && memcmp(a.data, want, (size_t)n) == 0);
}

/* ---- suspend / wake ---- */

static char trace[64];
static size_t trace_len;
static struct task *ta, *tb;

static void mark(char c)
{
	trace[trace_len++] = c;
	trace[trace_len] = '\0';
}

static void waker_a(void *arg)
{
	(void)arg;
	mark('a');
	task_suspend();		/* woken by b */
	mark('c');
	task_wake(tb);
	mark('d');
	task_suspend();		/* b's second wake was remembered */
	mark('f');
}

static void waker_b(void *arg)
{
	(void)arg;
	mark('b');
	task_wake(ta);
	/* waking twice before a runs is remembered once, not twice */
	task_wake(ta);
	task_suspend();		/* a wakes us */
	mark('e');
}

static void test_suspend_wake(void)
{
	trace_len = 0;
	ta = task_spawn(L, waker_a, NULL);
	tb = task_spawn(L, waker_b, NULL);
	run_all(2000);
	CHECK_EQ_INT(task_count(), 0);
	/* b's second wake of a (while a was ready) made a's second
	 * suspend return at once: 'f' comes before b resumes with 'e'. */
	CHECK_EQ_STR(trace, "abcdfe");
}

/* Wake from outside any task (a completion callback or a timer, as a
 * server does) and wake-before-suspend of the task itself. */
static int self_wake_iters;

static void self_wake_fn(void *arg)
{
	(void)arg;
	task_wake(task_current());
	uint64_t before = time_mono_usec();
	task_suspend();		/* returns at once */
	CHECK(time_mono_usec() - before < 100000);
	self_wake_iters++;
	task_suspend();		/* woken by main below */
	self_wake_iters++;
}

static void test_wake_before_suspend(void)
{
	struct task *t;

	self_wake_iters = 0;
	t = task_spawn(L, self_wake_fn, NULL);
	for (int i = 0; i < 5; i++)
		loop_run_once(L, 0);
	CHECK_EQ_INT(self_wake_iters, 1);
	CHECK_EQ_INT(task_count(), 1);
	task_wake(t);
	CHECK_EQ_INT(self_wake_iters, 1);	/* not inside task_wake */
	run_all(2000);
	CHECK_EQ_INT(self_wake_iters, 2);
	CHECK_EQ_INT(task_count(), 0);
}

/* A wake while the task waits for I/O or sleeps does not cut the wait
 * short; it is remembered for the next task_suspend(). */
static struct task *io_waker_target;
static int io_wake_order[4];
static int io_wake_n;

static void io_wait_fn(void *arg)
{
	(void)arg;
	task_sleep_ms(30);
	io_wake_order[io_wake_n++] = 1;
	task_suspend();		/* remembered wake: returns at once */
	io_wake_order[io_wake_n++] = 2;
}

static void io_waker_fn(void *arg)
{
	(void)arg;
	task_wake(io_waker_target);
	io_wake_order[io_wake_n++] = 0;
}

static void test_wake_during_sleep(void)
{
	uint64_t t0 = time_mono_usec();

	io_wake_n = 0;
	io_waker_target = task_spawn(L, io_wait_fn, NULL);
	task_spawn(L, io_waker_fn, NULL);
	run_all(2000);
	CHECK_EQ_INT(io_wake_n, 3);
	CHECK_EQ_INT(io_wake_order[0], 0);
	CHECK_EQ_INT(io_wake_order[1], 1);
	CHECK_EQ_INT(io_wake_order[2], 2);
	CHECK(time_mono_usec() - t0 >= 30000);
}

/* ---- sleep ---- */

static int sleep_order[8];
static int sleep_n;

static void sleeper(void *arg)
{
	int ms = (int)(intptr_t)arg;
	uint64_t t0 = time_mono_usec();

	task_sleep_ms((uint64_t)ms);
	CHECK(time_mono_usec() - t0 >= (uint64_t)ms * 1000);
	sleep_order[sleep_n++] = ms;
}

static void test_sleep(void)
{
	static const int ms[] = { 60, 20, 0, 40 };

	sleep_n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ms); i++)
		task_spawn(L, sleeper, (void *)(intptr_t)ms[i]);
	run_all(3000);
	CHECK_EQ_INT(sleep_n, 4);
	CHECK_EQ_INT(sleep_order[0], 0);
	CHECK_EQ_INT(sleep_order[1], 20);
	CHECK_EQ_INT(sleep_order[2], 40);
	CHECK_EQ_INT(sleep_order[3], 60);
}

/* ---- 10,000 tasks ping-ponging in pairs ---- */

enum { PAIRS = 5000, ROUNDS = 20 };

struct pp {
	struct task *self, *peer;
	struct pp *other;
	int count;
	int bad;
	char pad[512];	/* give the stack something to hold */
};

static struct pp *pps;

static void pp_fn(void *arg)
{
	struct pp *p = arg;
	volatile char local[1024];

	memset((char *)local, p->count & 0xff, sizeof(local));
	/* the second of each pair starts by waiting */
	if (p > p->other)
		task_suspend();
	for (int r = 0; r < ROUNDS; r++) {
		p->count++;
		if (local[r] != local[0])
			p->bad++;
		if (p->other->count < p->count - 1 ||
		    p->other->count > p->count)
			p->bad++;
		/* the second of a pair ends without waking its finished
		 * peer */
		if (p < p->other || r < ROUNDS - 1)
			task_wake(p->other->self);
		if (r < ROUNDS - 1)
			task_suspend();
	}
}

static void test_pingpong(void)
{
	uint64_t t0 = time_mono_usec();

	pps = xcalloc(2 * PAIRS, sizeof(*pps));
	for (int i = 0; i < PAIRS; i++) {
		pps[2 * i].other = &pps[2 * i + 1];
		pps[2 * i + 1].other = &pps[2 * i];
	}
	for (int i = 0; i < 2 * PAIRS; i++)
		pps[i].self = task_spawn(L, pp_fn, &pps[i]);
	CHECK_EQ_INT(task_count(), 2 * PAIRS);
	run_all(15000);
	CHECK_EQ_INT(task_count(), 0);
	int bad = 0, short_count = 0;
	for (int i = 0; i < 2 * PAIRS; i++) {
		bad += pps[i].bad;
		short_count += pps[i].count != ROUNDS;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(short_count, 0);
	free(pps);
	fprintf(stderr, "pingpong: %d tasks, %d switches in %.0f ms\n",
		2 * PAIRS, 2 * PAIRS * ROUNDS,
		(double)(time_mono_usec() - t0) / 1000.0);
}

/* A task spawned from a task, and a task that spawns many and waits. */
static int child_done;

static void child_fn(void *arg)
{
	struct task *parent = arg;

	task_sleep_ms(1);
	if (++child_done == 50)
		task_wake(parent);
}

static void parent_fn(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++)
		task_spawn(L, child_fn, task_current());
	while (child_done < 50)
		task_suspend();
}

static void test_nested_spawn(void)
{
	task_spawn(L, parent_fn, NULL);
	run_all(3000);
	CHECK_EQ_INT(child_done, 50);
	CHECK_EQ_INT(task_count(), 0);
}

/* Deep recursion stays inside the stack (and its guard page). */
static int recurse(int n, volatile char *prev)
{
	volatile char buf[512];

	buf[0] = (char)n;
	buf[511] = prev ? prev[0] : 0;
	if (n == 0)
		return buf[0] + buf[511];
	return recurse(n - 1, buf) + 1;
}

static int deep_res;

static void deep_fn(void *arg)
{
	(void)arg;
	deep_res = recurse(200, NULL);	/* ~100+ KiB of stack */
}

static void test_deep_stack(void)
{
	task_spawn(L, deep_fn, NULL);
	run_all(2000);
	CHECK_EQ_INT(deep_res, 201);
}

/* Running off the end of a task's stack hits the guard page: the process
 * dies with SIGSEGV (or an ASan stack-overflow report), nothing else is
 * silently overwritten. */
static int overflow(int n, volatile char *prev)
{
	volatile char buf[4096];

	buf[0] = (char)n;
	buf[4095] = prev ? prev[0] : 0;
	if (n == 0)
		return buf[0];
	return overflow(n - 1, buf) + buf[4095];
}

static void overflow_fn(void *arg)
{
	(void)arg;
	deep_res = overflow(1 << 20, NULL);
}

static void test_guard_page(void)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 2);
		task_spawn(L, overflow_fn, NULL);
		for (int i = 0; i < 100; i++)
			loop_run_once(L, 10);
		_exit(0);	/* not reached */
	}
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) ||
	      (WIFEXITED(status) && WEXITSTATUS(status) != 0));
}

int main(void)
{
	const char *err = NULL;

	L = loop_create(256, &err);
	if (L == NULL) {
		fprintf(stderr, "loop_create: %s\n", err);
		return 77;
	}
	test_spawn();
	test_io();
	test_suspend_wake();
	test_wake_before_suspend();
	test_wake_during_sleep();
	test_sleep();
	test_nested_spawn();
	test_deep_stack();
	test_pingpong();
	test_guard_page();
	loop_destroy(&L);
	return test_done("task");
}
