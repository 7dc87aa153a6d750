/* loop: one io_uring event loop per worker thread (DESIGN.md §3).
 *
 * Everything asynchronous is an SQE whose user_data points to a
 * struct loop_op embedded in the caller's object; its callback runs from
 * loop_run() when the CQE arrives. The caller keeps that object alive
 * until the callback has run (a cancelled or failed op still completes,
 * with a negative res).
 *
 * Timers are kept by the loop itself (a min-heap), not as io_uring
 * timeouts, so starting and stopping one is synchronous and never leaves
 * a completion behind.
 *
 * Nothing here is thread-safe except loop_post() and loop_stop(). */
#ifndef KURA_LOOP_H
#define KURA_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_op;

typedef void loop_cb(struct loop_op *op, int res, uint32_t cqe_flags);

struct loop_op {
	loop_cb *cb;
};

struct loop_timer {
	/* private to the loop */
	uint64_t deadline_usec;
	size_t heap_idx;	/* SIZE_MAX when not armed */
	void (*fn)(struct loop_timer *t);
};

/* Creates a loop with an SQ of `entries` (rounded up by the kernel).
 * The backend follows env KURA_LOOP: "uring" (io_uring only), "epoll"
 * (the epoll fallback), unset or "auto": io_uring, or epoll when the
 * ring cannot be set up (a seccomp policy, an old kernel) or the process
 * runs under valgrind. The choice is logged once per process. Callers
 * see the same semantics with both (see loop_backend). Returns NULL and
 * sets *error_r (a static message) when no backend can be set up. */
struct loop *loop_create(unsigned entries, const char **error_r);
/* "io_uring" or "epoll" (static string). With epoll, SQEs are executed
 * at the next loop iteration: socket ops (RECV, SEND, ACCEPT incl.
 * multishot, POLL_ADD/REMOVE, ASYNC_CANCEL) wait for readiness, file
 * ops run synchronously; provided buffers are not available
 * (loop_bufs_init returns -EOPNOTSUPP) and accepted sockets are
 * non-blocking. */
const char *loop_backend(const struct loop *l);
/* Frees the loop. Pending ops are abandoned: only call after every
 * object with an op in flight has been released, or at exit. */
void loop_destroy(struct loop **l);

/* The loop of the calling thread (set by loop_run, or loop_set_current
 * for threads that drive a loop by hand), or NULL. */
struct loop *loop_current(void);
void loop_set_current(struct loop *l);

/* An SQE to fill; never NULL (submits what is queued when the SQ is
 * full). Call loop_op_set() on it before the next loop_get_sqe(). */
struct io_uring_sqe *loop_get_sqe(struct loop *l);
/* Links the SQE to op: op->cb(op, res, flags) runs on completion. */
void loop_op_set(struct io_uring_sqe *sqe, struct loop_op *op, loop_cb *cb);

/* Runs until loop_stop(): submits, waits for completions or the next
 * timer, dispatches callbacks, runs posted functions and ready tasks. */
void loop_run(struct loop *l);
/* Makes loop_run() return after the current iteration; thread-safe. */
void loop_stop(struct loop *l);
/* Runs one iteration without blocking longer than timeout_ms (-1 =
 * until something happens). Returns false once loop_stop() was called. */
bool loop_run_once(struct loop *l, int timeout_ms);

/* Arms t to fire fn(t) once after msec milliseconds (re-arming an armed
 * timer moves it). */
void loop_timer_init(struct loop_timer *t);
void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t msec,
		      void (*fn)(struct loop_timer *t));
/* Disarms; fn will not run. Safe on a timer that is not armed. */
void loop_timer_stop(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_is_armed(const struct loop_timer *t)
{
	return t->heap_idx != (size_t)-1;
}

/* Provided receive buffers (a kernel buffer ring): a receive that picks
 * its buffer at completion time, so that an idle connection with a
 * pending receive holds no buffer of its own.
 * loop_bufs_init: count (a power of two) buffers of size bytes; returns
 * 0 or -errno (kernel without buffer rings: callers fall back to their
 * own buffers). Call on the loop's thread before using the others. */
int loop_bufs_init(struct loop *l, unsigned count, unsigned size);
bool loop_bufs_enabled(const struct loop *l);
/* Prepares sqe as a receive on fd into a provided buffer. */
void loop_prep_recv_provided(struct loop *l, struct io_uring_sqe *sqe, int fd);
/* After a completion with res > 0: the buffer the kernel picked (from
 * cqe_flags), or NULL when none was used. Give it back with
 * loop_buf_put() once its bytes are copied. */
uint8_t *loop_buf_get(struct loop *l, uint32_t cqe_flags, unsigned *bid_r);
void loop_buf_put(struct loop *l, unsigned bid);

/* Thread-safe: fn(arg) runs in l's thread from loop_run(), soon. */
void loop_post(struct loop *l, void (*fn)(void *arg), void *arg);
/* Runs fn(arg) from loop_run() in this thread after the current
 * callback returns (not thread-safe; for deferring work out of a
 * callback). */
void loop_defer(struct loop *l, void (*fn)(void *arg), void *arg);

#endif
