/* offload: runs a CPU-heavy or blocking function (a password hash, say)
 * on a small shared thread pool while the calling task is suspended, so
 * that the worker's loop keeps serving its other connections. */
#ifndef KURA_OFFLOAD_H
#define KURA_OFFLOAD_H

/* Inside a task: queues fn(arg) to the pool, suspends, and returns fn's
 * result once it ran. Outside a task, or when the pool cannot start,
 * runs fn(arg) inline. fn must be thread-safe and must not touch the
 * caller's loop. */
int offload_run(int (*fn)(void *arg), void *arg);
/* Stops the pool threads (at exit; optional). */
void offload_shutdown(void);

#endif
