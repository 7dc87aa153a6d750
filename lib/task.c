#include "lib/task.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TASK_VALGRIND 1
#endif
#endif
#ifndef TASK_VALGRIND
#define TASK_VALGRIND 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TASK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TASK_ASAN 1
#endif
#endif
#ifndef TASK_ASAN
#define TASK_ASAN 0
#endif

#if TASK_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef KURA_TASK_STACK
#if TASK_ASAN
#define KURA_TASK_STACK (1024 * 1024)
#else
#define KURA_TASK_STACK (256 * 1024)
#endif
#endif

#if TASK_ASAN
#define TASK_ASAN_TOP (16 * 1024)
#endif

/* Free stacks kept per thread; beyond this they are unmapped. */
#define TASK_STACK_POOL 64

enum task_state {
	TASK_READY = 0,		/* in the ready list */
	TASK_RUNNING,
	TASK_BLOCKED,
	TASK_DONE,
};

enum task_wait {
	TASK_WAIT_NONE = 0,
	TASK_WAIT_WAKE,		/* task_suspend(): task_wake() resumes it */
	TASK_WAIT_IO,		/* task_io(): only the CQE resumes it */
	TASK_WAIT_SLEEP,	/* task_sleep_ms(): only the timer resumes it */
};

/* Sits at the top of its own mapping, above the usable stack, so that a
 * pooled stack needs no separate allocation and is never touched by
 * frames running on it. Layout: [guard page][stack ...][struct]. */
struct task_stack {
	struct task_stack *next;
	void *map;
	size_t map_len;
	void *bottom;
	size_t size;
#if TASK_VALGRIND
	unsigned vg_id;	/* valgrind's id of this stack */
#endif
};

struct task {
	ucontext_t ctx;
	struct task *next;	/* ready list */
	struct loop *loop;
	task_fn *fn;
	void *arg;
	struct task_stack *stack;	/* NULL until the task first runs */
	enum task_state state;
	enum task_wait wait;
	bool wake_pending;
	int io_res;
	struct loop_op io_op;
	struct loop_timer timer;
#if TASK_ASAN
	void *asan_fake;
#endif
};

/* Per thread: tasks only ever run on the thread of their loop. */
struct task_sched {
	ucontext_t main_ctx;	/* the loop's context while a task runs */
	struct task *current;
	struct task *ready_head, *ready_tail;
	struct loop *drain_loop;	/* loop with a task_drain() deferred */
	bool drain_pending;
	unsigned live;
	struct task_stack *free_stacks;
	unsigned n_free;
#if TASK_ASAN
	void *main_fake;
	const void *main_bottom;
	size_t main_size;
#endif
};

static __thread struct task_sched sched;

static void task_fatal(const char *what) __attribute__((noreturn));
static void task_fatal(const char *what)
{
	log_error("task: %s", what);
	abort();
}

static void task_fatal_errno(const char *what) __attribute__((noreturn));
static void task_fatal_errno(const char *what)
{
	log_error("task: %s: %s", what, strerror(errno));
	abort();
}

/* ---- stacks ---- */

static size_t task_page_size(void)
{
	static size_t page;

	if (page == 0) {
		long p = sysconf(_SC_PAGESIZE);
		page = p > 0 ? (size_t)p : 4096;
	}
	return page;
}

static struct task_stack *task_stack_get(void)
{
	struct task_stack *s = sched.free_stacks;
	size_t page = task_page_size();
	size_t len = KURA_TASK_STACK + page;
	uint8_t *map;

	if (s != NULL) {
		sched.free_stacks = s->next;
		sched.n_free--;
		return s;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		   -1, 0);
	if (map == MAP_FAILED)
		task_fatal_errno("mmap stack");
	if (mprotect(map, page, PROT_NONE) < 0)
		task_fatal_errno("mprotect guard page");
	s = (struct task_stack *)(map + len - 64);
	_Static_assert(sizeof(struct task_stack) <= 64, "stack header");
	s->next = NULL;
	s->map = map;
	s->map_len = len;
	s->bottom = map + page;
	s->size = len - page - 64;
#if TASK_VALGRIND
	/* Without it valgrind takes a switch between stacks less than
	 * --max-stackframe apart for a huge frame, and reports every
	 * access to the other stack as invalid. */
	s->vg_id = VALGRIND_STACK_REGISTER(s->bottom, (char *)s->bottom + s->size);
#endif
	return s;
}

static void task_stack_put(struct task_stack *s)
{
#if TASK_ASAN
	/* Every frame of the task returned except the trampoline's at the
	 * top of the stack: clear what it may have poisoned. The whole
	 * stack would cost 128 KiB of shadow writes per task. */
	__asan_unpoison_memory_region((char *)s->bottom + s->size -
				      TASK_ASAN_TOP, TASK_ASAN_TOP);
#endif
	if (sched.n_free < TASK_STACK_POOL) {
		s->next = sched.free_stacks;
		sched.free_stacks = s;
		sched.n_free++;
		return;
	}
#if TASK_VALGRIND
	VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
	if (munmap(s->map, s->map_len) < 0)
		task_fatal_errno("munmap stack");
}

/* ---- switching ---- */

static void task_trampoline(void);

/* Saves the running context in from and resumes to. */
static void task_swap(ucontext_t *from, const ucontext_t *to)
{
#if TASK_ASAN
	/* getcontext + setcontext instead of swapcontext: ASan's
	 * swapcontext interceptor prints a warning that the fiber
	 * annotations below make moot. */
	volatile bool resumed = false;

	if (getcontext(from) < 0)
		task_fatal_errno("getcontext");
	if (resumed)
		return;
	resumed = true;
	setcontext(to);
	task_fatal_errno("setcontext");
#else
	if (swapcontext(from, to) < 0)
		task_fatal_errno("swapcontext");
#endif
}

static void task_switch_in(struct task *t)
{
#if TASK_ASAN
	__sanitizer_start_switch_fiber(&sched.main_fake, t->stack->bottom,
				       t->stack->size);
#endif
	task_swap(&sched.main_ctx, &t->ctx);
#if TASK_ASAN
	__sanitizer_finish_switch_fiber(sched.main_fake, NULL, NULL);
#endif
}

static void task_switch_out(struct task *t)
{
#if TASK_ASAN
	__sanitizer_start_switch_fiber(&t->asan_fake, sched.main_bottom,
				       sched.main_size);
#endif
	task_swap(&t->ctx, &sched.main_ctx);
#if TASK_ASAN
	__sanitizer_finish_switch_fiber(t->asan_fake, &sched.main_bottom,
					&sched.main_size);
#endif
}

static void task_trampoline(void)
{
	struct task *t = sched.current;

#if TASK_ASAN
	__sanitizer_finish_switch_fiber(NULL, &sched.main_bottom,
					&sched.main_size);
#endif
	t->fn(t->arg);
	t->state = TASK_DONE;
#if TASK_ASAN
	/* NULL: this fiber is gone, ASan may drop its fake stack. */
	__sanitizer_start_switch_fiber(NULL, sched.main_bottom,
				       sched.main_size);
#endif
	setcontext(&sched.main_ctx);
	task_fatal_errno("setcontext");
}

static void task_run(struct task *t)
{
	if (sched.current != NULL)
		task_fatal("a task resumed another task");
	if (t->stack == NULL) {
		t->stack = task_stack_get();
		if (getcontext(&t->ctx) < 0)
			task_fatal_errno("getcontext");
		t->ctx.uc_stack.ss_sp = t->stack->bottom;
		t->ctx.uc_stack.ss_size = t->stack->size;
		t->ctx.uc_link = NULL;
		makecontext(&t->ctx, task_trampoline, 0);
		/* The stack is only needed by makecontext(). Clearing it
		 * keeps ASan's swapcontext interceptor from wiping the
		 * shadow of the whole stack on every switch. */
		t->ctx.uc_stack.ss_sp = NULL;
		t->ctx.uc_stack.ss_size = 0;
	}
	t->state = TASK_RUNNING;
	sched.current = t;
	task_switch_in(t);
	sched.current = NULL;
	if (t->state == TASK_DONE) {
		task_stack_put(t->stack);
		free(t);
		sched.live--;
	}
}

static void task_drain(void *arg)
{
	/* Only the tasks ready now: one woken by them runs from the next
	 * drain, so ping-ponging tasks cannot starve the loop's I/O. */
	struct task *t = sched.ready_head;

	(void)arg;
	sched.ready_head = sched.ready_tail = NULL;
	sched.drain_pending = false;
	while (t != NULL) {
		struct task *next = t->next;
		task_run(t);
		t = next;
	}
}

static void task_make_ready(struct task *t)
{
	t->state = TASK_READY;
	t->wait = TASK_WAIT_NONE;
	t->next = NULL;
	if (sched.ready_tail != NULL)
		sched.ready_tail->next = t;
	else
		sched.ready_head = t;
	sched.ready_tail = t;
	if (!sched.drain_pending || sched.drain_loop != t->loop) {
		loop_defer(t->loop, task_drain, NULL);
		sched.drain_pending = true;
		sched.drain_loop = t->loop;
	}
}

static void task_block(struct task *t, enum task_wait wait)
{
	t->state = TASK_BLOCKED;
	t->wait = wait;
	task_switch_out(t);
}

static struct task *task_need_current(const char *fn)
{
	struct task *t = sched.current;

	if (t == NULL) {
		log_error("task: %s called outside a task", fn);
		abort();
	}
	return t;
}

/* ---- public ---- */

struct task *task_spawn(struct loop *l, task_fn *fn, void *arg)
{
	struct task *t = xcalloc(1, sizeof(*t));

	t->loop = l;
	t->fn = fn;
	t->arg = arg;
	loop_timer_init(&t->timer);
	sched.live++;
	task_make_ready(t);
	return t;
}

struct task *task_current(void)
{
	return sched.current;
}

static void task_io_done(struct loop_op *op, int res, uint32_t cqe_flags)
{
	struct task *t = (struct task *)((char *)op -
					 offsetof(struct task, io_op));

	(void)cqe_flags;
	t->io_res = res;
	task_make_ready(t);
}

int task_io(struct io_uring_sqe *sqe)
{
	struct task *t = task_need_current("task_io");

	loop_op_set(sqe, &t->io_op, task_io_done);
	/* The loop submits everything queued once per iteration, which
	 * batches the SQEs of all tasks that ran in between. */
	task_block(t, TASK_WAIT_IO);
	return t->io_res;
}

void task_suspend(void)
{
	struct task *t = task_need_current("task_suspend");

	if (t->wake_pending) {
		t->wake_pending = false;
		return;
	}
	task_block(t, TASK_WAIT_WAKE);
}

void task_wake(struct task *t)
{
	if (t->state == TASK_BLOCKED && t->wait == TASK_WAIT_WAKE)
		task_make_ready(t);
	else
		t->wake_pending = true;
}

static void task_sleep_done(struct loop_timer *timer)
{
	struct task *t = (struct task *)((char *)timer -
					 offsetof(struct task, timer));

	task_make_ready(t);
}

void task_sleep_ms(uint64_t msec)
{
	struct task *t = task_need_current("task_sleep_ms");

	loop_timer_start(t->loop, &t->timer, msec, task_sleep_done);
	task_block(t, TASK_WAIT_SLEEP);
}

unsigned task_count(void)
{
	return sched.live;
}
