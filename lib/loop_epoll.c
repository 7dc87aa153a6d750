/* The loop's epoll backend (see lib/loop_int.h): runs the io_uring SQEs
 * that callers prepared, with the completion semantics they rely on.
 *
 * Socket operations (RECV, SEND, ACCEPT, POLL_ADD, and READ/WRITE on a
 * stream) are tried at once when nothing is queued before them, like
 * io_uring does, and otherwise wait in a per-descriptor FIFO (one per
 * direction, plus the polls) for epoll to report readiness. File
 * operations run synchronously when submitted: blocking file I/O is the
 * price of the fallback.
 *
 * Every descriptor is registered with EPOLLONESHOT. Re-arming after an
 * event is then always an epoll_ctl(MOD), which fails with ENOENT when
 * the descriptor was closed and its number reused in between (the
 * kernel drops a closed file's registration silently), so the new file
 * gets registered instead of waiting on a registration that is gone. */
#include "lib/loop_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"

/* Connections taken per readiness report by one multishot accept, so that
 * a flood of connects cannot starve the other descriptors. */
#define EP_ACCEPT_BUDGET 32
#define EP_MAX_EVENTS 256
#define EP_EFD_TAG UINT64_MAX
#define EP_HASH_MIN 64

/* Readiness assumed for a descriptor that epoll refuses (EPERM: regular
 * files and the like, which never block). */
#define EP_ALWAYS_READY (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM)
/* Poll bits that may go into an epoll interest set. */
#define EP_POLL_BITS (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | \
		      EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | \
		      EPOLLRDHUP)

enum ep_queue {
	EP_Q_READ = 0,		/* RECV, ACCEPT, READ* on a stream */
	EP_Q_WRITE,		/* SEND, WRITE* on a stream */
	EP_Q_POLL,		/* POLL_ADD: each waits for its own mask */
	EP_Q_COUNT,
};

struct ep_op {
	struct ep_op *prev, *next;	/* in its descriptor's queue */
	struct ep_op *hnext;		/* in the user_data hash */
	enum ep_queue queue;
	struct io_uring_sqe sqe;
};

struct ep_list {
	struct ep_op *head, *tail;
};

struct ep_fd {
	struct ep_list q[EP_Q_COUNT];
	uint32_t armed_mask;
	bool registered;	/* in the epoll set, possibly disarmed */
	bool armed;		/* its EPOLLONESHOT has not fired yet */
	bool dirty;		/* listed in ep->dirty */
	bool nopoll;		/* epoll refused it: always ready */
	/* An op was cancelled: the owner may have closed the descriptor
	 * since, and a new file may have its number, so the next sync
	 * re-registers even when the interest did not change. */
	bool recheck;
};

struct ep_cqe {
	uint64_t user_data;
	int32_t res;
	uint32_t flags;
};

struct loop_epoll {
	int epfd, efd;
	struct io_uring_sqe *sq;
	unsigned sq_len, sq_cap;
	/* Completions: filled by submission and events, swapped into
	 * cq_run by reap so that an SQ flush from a callback cannot append
	 * to the array being walked. */
	struct ep_cqe *cq, *cq_run;
	size_t cq_len, cq_cap, cq_run_cap;
	struct ep_fd *fds;		/* indexed by descriptor */
	size_t nfds;
	/* Descriptors whose queues changed: interest synced before waiting. */
	int *dirty;
	size_t dirty_len, dirty_cap;
	/* Pending ops by user_data, for cancellation. */
	struct ep_op **hash;
	size_t hash_mask, nops;
	struct ep_op *free_ops;
	struct epoll_event events[EP_MAX_EVENTS];
};

static void *ep_ptr(uint64_t v)
{
	return (void *)(uintptr_t)v;
}

static void ep_complete(struct loop_epoll *ep, const struct io_uring_sqe *s,
			int res, uint32_t flags)
{
	if ((s->flags & IOSQE_CQE_SKIP_SUCCESS) && res >= 0)
		return;
	xgrow((void **)&ep->cq, &ep->cq_cap, ep->cq_len + 1, sizeof(*ep->cq));
	ep->cq[ep->cq_len].user_data = s->user_data;
	ep->cq[ep->cq_len].res = res;
	ep->cq[ep->cq_len].flags = flags;
	ep->cq_len++;
}

/* ---- descriptors and pending ops ---- */

static struct ep_fd *ep_fd_get(struct loop_epoll *ep, int fd)
{
	if ((size_t)fd >= ep->nfds) {
		size_t old = ep->nfds;

		xgrow((void **)&ep->fds, &ep->nfds, (size_t)fd + 1,
		      sizeof(*ep->fds));
		memset(ep->fds + old, 0, (ep->nfds - old) * sizeof(*ep->fds));
	}
	return &ep->fds[fd];
}

static bool ep_fd_busy(const struct ep_fd *f)
{
	return f->q[EP_Q_READ].head != NULL || f->q[EP_Q_WRITE].head != NULL ||
		f->q[EP_Q_POLL].head != NULL;
}

static void ep_fd_dirty(struct loop_epoll *ep, int fd)
{
	struct ep_fd *f = &ep->fds[fd];

	if (f->dirty)
		return;
	f->dirty = true;
	xgrow((void **)&ep->dirty, &ep->dirty_cap, ep->dirty_len + 1,
	      sizeof(*ep->dirty));
	ep->dirty[ep->dirty_len++] = fd;
}

static size_t ep_hash_slot(const struct loop_epoll *ep, uint64_t ud)
{
	return (size_t)((ud * 0x9e3779b97f4a7c15ULL) >> 32) & ep->hash_mask;
}

static void ep_hash_grow(struct loop_epoll *ep)
{
	size_t old_n = ep->hash_mask + 1, n = old_n * 2;
	struct ep_op **old = ep->hash;

	ep->hash = xcalloc(n, sizeof(*ep->hash));
	ep->hash_mask = n - 1;
	for (size_t i = 0; i < old_n; i++) {
		struct ep_op *op = old[i];
		while (op != NULL) {
			struct ep_op *next = op->hnext;
			size_t slot = ep_hash_slot(ep, op->sqe.user_data);
			op->hnext = ep->hash[slot];
			ep->hash[slot] = op;
			op = next;
		}
	}
	free(old);
}

static struct ep_op *ep_op_new(struct loop_epoll *ep,
			       const struct io_uring_sqe *s, enum ep_queue q)
{
	struct ep_op *op = ep->free_ops;

	if (op != NULL)
		ep->free_ops = op->next;
	else
		op = xmalloc(sizeof(*op));
	memset(op, 0, sizeof(*op));
	op->sqe = *s;
	op->queue = q;
	return op;
}

static void ep_enqueue(struct loop_epoll *ep, struct ep_op *op)
{
	int fd = op->sqe.fd;
	struct ep_list *q = &ep_fd_get(ep, fd)->q[op->queue];
	size_t slot;

	op->next = NULL;
	op->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = op;
	else
		q->head = op;
	q->tail = op;
	if (ep->nops + 1 > ep->hash_mask + 1)
		ep_hash_grow(ep);
	slot = ep_hash_slot(ep, op->sqe.user_data);
	op->hnext = ep->hash[slot];
	ep->hash[slot] = op;
	ep->nops++;
	ep_fd_dirty(ep, fd);
}

/* Takes op out of its queue and the hash and frees it. */
static void ep_op_release(struct loop_epoll *ep, struct ep_op *op)
{
	int fd = op->sqe.fd;
	struct ep_list *q = &ep->fds[fd].q[op->queue];
	struct ep_op **pp = &ep->hash[ep_hash_slot(ep, op->sqe.user_data)];

	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		q->head = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	else
		q->tail = op->prev;
	while (*pp != op)
		pp = &(*pp)->hnext;
	*pp = op->hnext;
	ep->nops--;
	ep_fd_dirty(ep, fd);
	op->next = ep->free_ops;
	ep->free_ops = op;
}

/* Completes every op waiting on fd with res. */
static void ep_fd_fail(struct loop_epoll *ep, int fd, int res)
{
	if ((size_t)fd >= ep->nfds)
		return;
	for (int i = 0; i < EP_Q_COUNT; i++) {
		struct ep_op *op;
		while ((op = ep->fds[fd].q[i].head) != NULL) {
			ep_complete(ep, &op->sqe, res, 0);
			ep_op_release(ep, op);
		}
	}
}

/* fd was just returned by accept or open, so any op still waiting on
 * that number belongs to a file closed behind the loop's back. */
static void ep_fd_fresh(struct loop_epoll *ep, int fd)
{
	struct ep_fd *f;

	if (fd < 0 || (size_t)fd >= ep->nfds)
		return;
	f = &ep->fds[fd];
	if (ep_fd_busy(f)) {
		log_warn("loop: fd %d reused while operations were pending on it",
			 fd);
		ep_fd_fail(ep, fd, -EBADF);
	}
	f->registered = f->armed = f->nopoll = false;
}

/* ---- executing operations ---- */

static bool ep_is_stream(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return false;	/* the file op reports the error */
	return S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode) ||
		S_ISCHR(st.st_mode);
}

/* A READ/WRITE(V); a stream has no offset (io_uring ignores it). */
static ssize_t ep_rw(const struct io_uring_sqe *s, bool stream)
{
	bool cur = stream || s->off == UINT64_MAX;	/* -1: file position */
	off_t off = (off_t)s->off;
	int fd = s->fd;
	void *p = ep_ptr(s->addr);

	switch (s->opcode) {
	case IORING_OP_READ:
		if (s->rw_flags == 0)
			return cur ? read(fd, p, s->len) : pread(fd, p, s->len, off);
		return preadv2(fd, &(struct iovec){ p, s->len }, 1,
			       cur ? -1 : off, s->rw_flags);
	case IORING_OP_WRITE:
		if (s->rw_flags == 0)
			return cur ? write(fd, p, s->len) :
				pwrite(fd, p, s->len, off);
		return pwritev2(fd, &(struct iovec){ p, s->len }, 1,
				cur ? -1 : off, s->rw_flags);
	case IORING_OP_READV:
		if (s->rw_flags == 0)
			return cur ? readv(fd, p, (int)s->len) :
				preadv(fd, p, (int)s->len, off);
		return preadv2(fd, p, (int)s->len, cur ? -1 : off,
			       s->rw_flags);
	case IORING_OP_WRITEV:
		if (s->rw_flags == 0)
			return cur ? writev(fd, p, (int)s->len) :
				pwritev(fd, p, (int)s->len, off);
		return pwritev2(fd, p, (int)s->len, cur ? -1 : off,
				s->rw_flags);
	default:
		errno = EINVAL;
		return -1;
	}
}

/* The operations that never wait for readiness. */
static int ep_file_op(const struct io_uring_sqe *s)
{
	ssize_t r;

	do {
		switch (s->opcode) {
		case IORING_OP_OPENAT:
			r = openat(s->fd, ep_ptr(s->addr), (int)s->open_flags,
				   (mode_t)s->len);
			break;
		case IORING_OP_READ:
		case IORING_OP_WRITE:
		case IORING_OP_READV:
		case IORING_OP_WRITEV:
			r = ep_rw(s, false);
			break;
		case IORING_OP_FSYNC:
			r = (s->fsync_flags & IORING_FSYNC_DATASYNC) ?
				fdatasync(s->fd) : fsync(s->fd);
			break;
		case IORING_OP_STATX:
			r = statx(s->fd, ep_ptr(s->addr), (int)s->statx_flags,
				  s->len, ep_ptr(s->addr2));
			break;
		case IORING_OP_LINKAT:
			r = linkat(s->fd, ep_ptr(s->addr), (int)s->len,
				   ep_ptr(s->addr2), (int)s->hardlink_flags);
			break;
		case IORING_OP_RENAMEAT:
			r = s->rename_flags == 0 ?
				renameat(s->fd, ep_ptr(s->addr), (int)s->len,
					 ep_ptr(s->addr2)) :
				renameat2(s->fd, ep_ptr(s->addr), (int)s->len,
					  ep_ptr(s->addr2), s->rename_flags);
			break;
		case IORING_OP_UNLINKAT:
			r = unlinkat(s->fd, ep_ptr(s->addr),
				     (int)s->unlink_flags);
			break;
		case IORING_OP_MKDIRAT:
			r = mkdirat(s->fd, ep_ptr(s->addr), (mode_t)s->len);
			break;
		case IORING_OP_SYMLINKAT:
			r = symlinkat(ep_ptr(s->addr), s->fd, ep_ptr(s->addr2));
			break;
		case IORING_OP_FSETXATTR:
			r = fsetxattr(s->fd, ep_ptr(s->addr), ep_ptr(s->addr2),
				      s->len, (int)s->xattr_flags);
			break;
		case IORING_OP_FGETXATTR:
			r = fgetxattr(s->fd, ep_ptr(s->addr), ep_ptr(s->addr2),
				      s->len);
			break;
		case IORING_OP_SETXATTR:
			r = setxattr(ep_ptr(s->addr3), ep_ptr(s->addr),
				     ep_ptr(s->addr2), s->len,
				     (int)s->xattr_flags);
			break;
		case IORING_OP_GETXATTR:
			r = getxattr(ep_ptr(s->addr3), ep_ptr(s->addr),
				     ep_ptr(s->addr2), s->len);
			break;
		case IORING_OP_FALLOCATE:
			r = fallocate(s->fd, (int)s->len, (off_t)s->off,
				      (off_t)s->addr);
			break;
		case IORING_OP_FADVISE: {
			int e = posix_fadvise(s->fd, (off_t)s->off,
					      (off_t)s->len,
					      (int)s->fadvise_advice);
			return -e;
		}
		case IORING_OP_SHUTDOWN:
			r = shutdown(s->fd, (int)s->len);
			break;
		default:
			return -EINVAL;
		}
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r > INT_MAX ? INT_MAX : (int)r;
}

/* Performs a socket/stream op as far as it goes without blocking.
 * Returns true when it is finished (its last completion is queued),
 * false when it must wait for readiness. */
static bool ep_stream_try(struct loop_epoll *ep, const struct io_uring_sqe *s)
{
	bool multishot = s->opcode == IORING_OP_ACCEPT &&
		(s->ioprio & IORING_ACCEPT_MULTISHOT);
	unsigned accepted = 0;
	ssize_t r;

	for (;;) {
		switch (s->opcode) {
		case IORING_OP_RECV:
			r = recv(s->fd, ep_ptr(s->addr), s->len,
				 (int)s->msg_flags | MSG_DONTWAIT);
			break;
		case IORING_OP_SEND:
			r = send(s->fd, ep_ptr(s->addr), s->len,
				 (int)s->msg_flags | MSG_DONTWAIT);
			break;
		case IORING_OP_ACCEPT:
			/* The listening socket is non-blocking (see
			 * ep_submit_stream); accepted ones are made so too,
			 * for the next ops on them. */
			r = accept4(s->fd, ep_ptr(s->addr), ep_ptr(s->addr2),
				    (int)s->accept_flags | SOCK_NONBLOCK);
			if (r >= 0)
				ep_fd_fresh(ep, (int)r);
			break;
		default:
			r = ep_rw(s, true);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (r < 0) {
			ep_complete(ep, s, -errno, 0);
			return true;
		}
		if (!multishot) {
			ep_complete(ep, s, r > INT_MAX ? INT_MAX : (int)r, 0);
			return true;
		}
		ep_complete(ep, s, (int)r, IORING_CQE_F_MORE);
		if (++accepted == EP_ACCEPT_BUDGET)
			return false;	/* level-triggered: reported again */
	}
}

/* Runs the FIFO of fd's queue q until an op has to wait. */
static void ep_run_queue(struct loop_epoll *ep, int fd, enum ep_queue q)
{
	struct ep_op *op;

	while ((op = ep->fds[fd].q[q].head) != NULL) {
		if (!ep_stream_try(ep, &op->sqe))
			break;
		ep_op_release(ep, op);
	}
}

static void ep_fd_ready(struct loop_epoll *ep, int fd, uint32_t ev)
{
	struct ep_op *op, *next;

	if (ev & (EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
		ep_run_queue(ep, fd, EP_Q_READ);
	if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		ep_run_queue(ep, fd, EP_Q_WRITE);
	for (op = ep->fds[fd].q[EP_Q_POLL].head; op != NULL; op = next) {
		uint32_t m = ev & (op->sqe.poll32_events | POLLERR | POLLHUP);
		bool multi = op->sqe.len & IORING_POLL_ADD_MULTI;

		next = op->next;
		if (m == 0)
			continue;
		ep_complete(ep, &op->sqe, (int)m, multi ? IORING_CQE_F_MORE : 0);
		if (!multi)
			ep_op_release(ep, op);
	}
}

/* Brings fd's epoll registration in line with its queues. */
static void ep_fd_sync(struct loop_epoll *ep, int fd)
{
	struct ep_fd *f = &ep->fds[fd];
	struct epoll_event ev;
	uint32_t want = 0;
	bool recheck;
	int how, r;

	f->dirty = false;
	recheck = f->recheck;
	f->recheck = false;
	if (!ep_fd_busy(f)) {
		f->nopoll = false;
		/* Emptied by a cancel: an armed registration would report
		 * once more, and it must not outlive a handoff of the
		 * descriptor to another loop. A disarmed one (emptied by
		 * completions) stays; the next op re-arms it with MOD. */
		if (f->armed && epoll_ctl(ep->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 &&
		    errno != ENOENT && errno != EBADF)
			log_warn("loop: epoll_ctl DEL fd %d: %s", fd,
				 strerror(errno));
		if (f->armed)
			f->registered = f->armed = false;
		return;
	}
	if (f->nopoll) {
		ep_fd_ready(ep, fd, EP_ALWAYS_READY);
		return;
	}
	if (f->q[EP_Q_READ].head != NULL)
		want |= EPOLLIN;
	if (f->q[EP_Q_WRITE].head != NULL)
		want |= EPOLLOUT;
	for (struct ep_op *op = f->q[EP_Q_POLL].head; op != NULL; op = op->next)
		want |= op->sqe.poll32_events & EP_POLL_BITS;
	if (f->armed && f->armed_mask == want && !recheck)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want | EPOLLONESHOT;
	ev.data.u64 = (uint64_t)fd;
	how = f->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	r = epoll_ctl(ep->epfd, how, fd, &ev);
	if (r < 0 && errno == ENOENT && how == EPOLL_CTL_MOD)
		r = epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev);
	else if (r < 0 && errno == EEXIST && how == EPOLL_CTL_ADD)
		r = epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev);
	if (r == 0) {
		f->registered = f->armed = true;
		f->armed_mask = want;
		return;
	}
	f->registered = f->armed = false;
	if (errno == EPERM) {
		f->nopoll = true;
		ep_fd_ready(ep, fd, EP_ALWAYS_READY);
		return;
	}
	ep_fd_fail(ep, fd, -errno);
}

static void ep_sync(struct loop_epoll *ep)
{
	/* Only the descriptors listed now: syncing one can list it again
	 * (an op completed on an always-ready file), which waits for the
	 * next round. */
	size_t n = ep->dirty_len;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		ep_fd_sync(ep, ep->dirty[i]);
	memmove(ep->dirty, ep->dirty + n, (ep->dirty_len - n) * sizeof(int));
	ep->dirty_len -= n;
}

/* ---- submission ---- */

static void ep_submit_stream(struct loop_epoll *ep,
			     const struct io_uring_sqe *s, enum ep_queue q,
			     bool try_now)
{
	if (s->fd < 0) {
		ep_complete(ep, s, -EBADF, 0);
		return;
	}
	if (s->opcode == IORING_OP_ACCEPT) {
		/* A readiness report does not promise this loop the
		 * connection (another worker may take it first), so accept
		 * must not block. */
		int fl = fcntl(s->fd, F_GETFL);
		if (fl < 0 || (!(fl & O_NONBLOCK) &&
			       fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
			ep_complete(ep, s, -errno, 0);
			return;
		}
	}
	if (try_now && ((size_t)s->fd >= ep->nfds ||
			ep->fds[s->fd].q[q].head == NULL) &&
	    ep_stream_try(ep, s))
		return;
	ep_enqueue(ep, ep_op_new(ep, s, q));
}

static void ep_cancel_op(struct loop_epoll *ep, struct ep_op *op)
{
	ep->fds[op->sqe.fd].recheck = true;
	ep_complete(ep, &op->sqe, -ECANCELED, 0);
	ep_op_release(ep, op);
}

static bool ep_cancel_match(const struct ep_op *op, const struct io_uring_sqe *s,
			    bool polls_only)
{
	if (polls_only)
		return op->queue == EP_Q_POLL && op->sqe.user_data == s->addr;
	if (s->cancel_flags & IORING_ASYNC_CANCEL_ANY)
		return true;
	if (s->cancel_flags & IORING_ASYNC_CANCEL_FD)
		return op->sqe.fd == s->fd;
	return op->sqe.user_data == s->addr;
}

/* ASYNC_CANCEL, or POLL_REMOVE when polls_only. Returns the cancel's
 * own result: 0 (or the count with CANCEL_ALL), -ENOENT if nothing
 * matched. */
static int ep_cancel(struct loop_epoll *ep, const struct io_uring_sqe *s,
		     bool polls_only)
{
	bool all = !polls_only && (s->cancel_flags & IORING_ASYNC_CANCEL_ALL);
	int n = 0;

	if (!polls_only && (s->cancel_flags & IORING_ASYNC_CANCEL_FD_FIXED))
		return -EBADF;
	for (;;) {
		struct ep_op *found = NULL;

		if (polls_only || !(s->cancel_flags & (IORING_ASYNC_CANCEL_ANY |
						       IORING_ASYNC_CANCEL_FD))) {
			found = ep->hash[ep_hash_slot(ep, s->addr)];
			while (found != NULL && !ep_cancel_match(found, s, polls_only))
				found = found->hnext;
		} else {
			for (size_t i = 0; i <= ep->hash_mask && found == NULL; i++)
				for (found = ep->hash[i]; found != NULL;
				     found = found->hnext)
					if (ep_cancel_match(found, s, false))
						break;
		}
		if (found == NULL)
			break;
		ep_cancel_op(ep, found);
		n++;
		if (!all)
			break;
	}
	if (n == 0)
		return -ENOENT;
	return all ? n : 0;
}

static void ep_submit_close(struct loop_epoll *ep, const struct io_uring_sqe *s)
{
	int fd = s->fd;

	if (fd >= 0 && (size_t)fd < ep->nfds) {
		struct ep_fd *f = &ep->fds[fd];
		/* io_uring would keep them waiting on a file nobody can
		 * reach any more; completing them lets their owners go. */
		ep_fd_fail(ep, fd, -EBADF);
		if (f->registered)
			(void)epoll_ctl(ep->epfd, EPOLL_CTL_DEL, fd, NULL);
		f->registered = f->armed = f->nopoll = false;
	}
	ep_complete(ep, s, close(fd) < 0 ? -errno : 0, 0);
}

static void ep_submit_one(struct loop_epoll *ep, const struct io_uring_sqe *s)
{
	int r;

	if (s->flags & IOSQE_FIXED_FILE) {
		ep_complete(ep, s, -EBADF, 0);	/* no registered files */
		return;
	}
	if (s->flags & IOSQE_BUFFER_SELECT) {
		/* loop_bufs_init() refused: no buffer ring exists */
		ep_complete(ep, s, -EOPNOTSUPP, 0);
		return;
	}
	switch (s->opcode) {
	case IORING_OP_NOP:
		ep_complete(ep, s, 0, 0);
		return;
	case IORING_OP_RECV:
		if (s->ioprio & IORING_RECV_MULTISHOT) {
			ep_complete(ep, s, -EINVAL, 0);
			return;
		}
		ep_submit_stream(ep, s, EP_Q_READ,
				 !(s->ioprio & IORING_RECVSEND_POLL_FIRST));
		return;
	case IORING_OP_SEND:
		ep_submit_stream(ep, s, EP_Q_WRITE,
				 !(s->ioprio & IORING_RECVSEND_POLL_FIRST));
		return;
	case IORING_OP_ACCEPT:
		ep_submit_stream(ep, s, EP_Q_READ, true);
		return;
	case IORING_OP_POLL_ADD:
		ep_submit_stream(ep, s, EP_Q_POLL, false);
		return;
	case IORING_OP_POLL_REMOVE:
		if (s->len & (IORING_POLL_UPDATE_EVENTS |
			      IORING_POLL_UPDATE_USER_DATA))
			r = -EOPNOTSUPP;
		else
			r = ep_cancel(ep, s, true);
		ep_complete(ep, s, r, 0);
		return;
	case IORING_OP_ASYNC_CANCEL:
		ep_complete(ep, s, ep_cancel(ep, s, false), 0);
		return;
	case IORING_OP_CLOSE:
		ep_submit_close(ep, s);
		return;
	case IORING_OP_READ:
	case IORING_OP_READV:
		/* Only pipes, sockets and devices may block; they are
		 * read after readiness, never at once (no O_NONBLOCK). */
		if (ep_is_stream(s->fd)) {
			ep_submit_stream(ep, s, EP_Q_READ, false);
			return;
		}
		break;
	case IORING_OP_WRITE:
	case IORING_OP_WRITEV:
		if (ep_is_stream(s->fd)) {
			ep_submit_stream(ep, s, EP_Q_WRITE, false);
			return;
		}
		break;
	default:
		break;
	}
	r = ep_file_op(s);
	if (r >= 0 && s->opcode == IORING_OP_OPENAT)
		ep_fd_fresh(ep, r);
	ep_complete(ep, s, r, 0);
}

static void ep_submit(struct loop_epoll *ep)
{
	unsigned n = ep->sq_len;

	/* Executing an SQE never queues another, so the array is stable. */
	ep->sq_len = 0;
	for (unsigned i = 0; i < n; i++)
		ep_submit_one(ep, &ep->sq[i]);
}

/* ---- public (to lib/loop.c) ---- */

struct loop_epoll *loop_epoll_create(unsigned entries, int efd,
				     const char **error_r)
{
	static __thread char err[128];
	struct loop_epoll *ep = xcalloc(1, sizeof(*ep));
	struct epoll_event ev;

	ep->efd = efd;
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ep->epfd < 0) {
		snprintf(err, sizeof(err), "epoll_create1: %s", strerror(errno));
		free(ep);
		*error_r = err;
		return NULL;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = EP_EFD_TAG;
	if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, efd, &ev) < 0) {
		snprintf(err, sizeof(err), "epoll_ctl eventfd: %s",
			 strerror(errno));
		close(ep->epfd);
		free(ep);
		*error_r = err;
		return NULL;
	}
	ep->sq_cap = entries;
	ep->sq = xcalloc(entries, sizeof(*ep->sq));
	ep->hash = xcalloc(EP_HASH_MIN, sizeof(*ep->hash));
	ep->hash_mask = EP_HASH_MIN - 1;
	return ep;
}

void loop_epoll_destroy(struct loop_epoll **epp)
{
	struct loop_epoll *ep = *epp;

	if (ep == NULL)
		return;
	*epp = NULL;
	for (size_t i = 0; i <= ep->hash_mask; i++) {
		struct ep_op *op = ep->hash[i];
		while (op != NULL) {
			struct ep_op *next = op->hnext;
			free(op);
			op = next;
		}
	}
	while (ep->free_ops != NULL) {
		struct ep_op *op = ep->free_ops;
		ep->free_ops = op->next;
		free(op);
	}
	if (close(ep->epfd) < 0)
		log_warn("loop: close epoll fd: %s", strerror(errno));
	free(ep->hash);
	free(ep->sq);
	free(ep->cq);
	free(ep->cq_run);
	free(ep->fds);
	free(ep->dirty);
	free(ep);
}

struct io_uring_sqe *loop_epoll_get_sqe(struct loop_epoll *ep)
{
	struct io_uring_sqe *sqe;

	if (ep->sq_len == ep->sq_cap)
		ep_submit(ep);	/* like a full SQ: completions wait for reap */
	sqe = &ep->sq[ep->sq_len++];
	memset(sqe, 0, sizeof(*sqe));
	return sqe;
}

static void ep_drain_efd(struct loop_epoll *ep)
{
	uint64_t v;

	while (read(ep->efd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

void loop_epoll_wait(struct loop_epoll *ep, int64_t wait_usec)
{
	int timeout, n;

	ep_submit(ep);
	ep_sync(ep);
	if (ep->cq_len > 0 || ep->dirty_len > 0 || wait_usec == 0)
		timeout = 0;
	else if (wait_usec < 0)
		timeout = -1;
	else if (wait_usec > (int64_t)INT_MAX * 1000 - 999)
		timeout = INT_MAX;
	else
		timeout = (int)((wait_usec + 999) / 1000);
	n = epoll_wait(ep->epfd, ep->events, EP_MAX_EVENTS, timeout);
	if (n < 0) {
		if (errno != EINTR)
			log_error("loop: epoll_wait: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		uint64_t tag = ep->events[i].data.u64;
		int fd = (int)tag;

		if (tag == EP_EFD_TAG) {
			ep_drain_efd(ep);
			continue;
		}
		if ((size_t)fd >= ep->nfds)
			continue;
		ep->fds[fd].armed = false;	/* EPOLLONESHOT fired */
		ep_fd_ready(ep, fd, ep->events[i].events);
		ep_fd_dirty(ep, fd);
	}
}

void loop_epoll_reap(struct loop_epoll *ep)
{
	struct ep_cqe *run = ep->cq;
	size_t n = ep->cq_len, cap = ep->cq_cap;

	if (n == 0)
		return;
	ep->cq = ep->cq_run;
	ep->cq_cap = ep->cq_run_cap;
	ep->cq_len = 0;
	ep->cq_run = run;
	ep->cq_run_cap = cap;
	for (size_t i = 0; i < n; i++) {
		struct loop_op *op = ep_ptr(run[i].user_data);
		if (op != NULL)
			op->cb(op, run[i].res, run[i].flags);
	}
}
