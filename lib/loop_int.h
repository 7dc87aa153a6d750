/* Private to lib/loop.c: the epoll backend (lib/loop_epoll.c) that runs
 * the loop's SQEs where io_uring is not available or not wanted.
 *
 * It executes the io_uring_sqe that callers filled with liburing's prep
 * helpers: socket operations wait for readiness in epoll, file
 * operations run synchronously when submitted. Completions are queued and
 * dispatched by loop_epoll_reap(), never from loop_epoll_get_sqe(). */
#ifndef KURA_LOOP_INT_H
#define KURA_LOOP_INT_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct loop_epoll;

/* Creates the backend with room for `entries` queued SQEs. efd is a
 * non-blocking eventfd owned by the caller; the backend watches it and
 * drains it when it fires. Returns NULL and a static message in
 * *error_r when epoll is not available. */
struct loop_epoll *loop_epoll_create(unsigned entries, int efd,
				     const char **error_r);
/* Frees the backend; pending operations are dropped without completing
 * (their callers are gone, see loop_destroy). Does not close efd. */
void loop_epoll_destroy(struct loop_epoll **ep);

/* A zeroed SQE in the backend's queue; never NULL (executes what is
 * queued when the queue is full, without running callbacks). */
struct io_uring_sqe *loop_epoll_get_sqe(struct loop_epoll *ep);

/* Executes the queued SQEs, then waits up to wait_usec (-1: no limit)
 * for readiness unless completions are already waiting, and performs the
 * operations that became ready. Callbacks do not run here. */
void loop_epoll_wait(struct loop_epoll *ep, int64_t wait_usec);
/* Runs the callbacks of the completions queued so far. Completions
 * produced while they run (an SQ flush inside a callback) wait for the
 * next call. */
void loop_epoll_reap(struct loop_epoll *ep);

#endif
