/* task: a coroutine with its own stack, driven by the current thread's
 * loop. Command handlers run as tasks so that they can be written as
 * straight-line code: a call that waits for I/O (task_io) suspends the
 * task and the loop goes on with other work.
 *
 * A stack exists only while a task runs (stacks are pooled), so an idle
 * connection holds none. Stack size is KURA_TASK_STACK (256 KiB, 1 MiB
 * under sanitizers) with a guard page.
 *
 * Rules for task code: anything read from shared state before a
 * suspending call (task_io, task_suspend, task_sleep_ms, or any function
 * documented as "may suspend") may have changed after it. */
#ifndef KURA_TASK_H
#define KURA_TASK_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/loop.h"

struct task;

typedef void task_fn(void *arg);

/* Creates a task that will run fn(arg) on l's thread, started from the
 * loop soon (never inside this call). When fn returns the task's stack
 * is released. Must be called on l's thread. */
struct task *task_spawn(struct loop *l, task_fn *fn, void *arg);
/* The running task, or NULL outside any task. */
struct task *task_current(void);

/* Inside a task: links sqe (from loop_get_sqe) to the task, submits, and
 * suspends until its completion. Returns the CQE's res. */
int task_io(struct io_uring_sqe *sqe);
/* Inside a task: suspends until task_wake(). */
void task_suspend(void);
/* Makes a suspended task runnable (it resumes from the loop, not inside
 * this call). Must be called on the task's thread. A wake of a task
 * that is not suspended is remembered: its next task_suspend() returns
 * at once. */
void task_wake(struct task *t);
/* Inside a task: suspends for msec milliseconds. */
void task_sleep_ms(uint64_t msec);
/* Number of live tasks on this thread (for tests and stats). */
unsigned task_count(void);

#endif
