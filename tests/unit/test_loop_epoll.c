/* Unit tests for the loop's epoll backend (lib/loop_epoll.c), selected
 * with KURA_LOOP=epoll: timers, post, defer, NOPs past a full SQ, file
 * ops through task_io, a TCP echo with multishot accept, partial and
 * waiting sends, FIFO receives, polls, cancellation, closed and reused
 * descriptors, and a descriptor handed from one loop to another. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/loop.h"
#include "lib/task.h"
#include "lib/util.h"
#include "tests/unit/test.h"

static struct loop *make_loop(void)
{
	const char *err = NULL;
	struct loop *l = loop_create(16, &err);

	if (l == NULL) {
		fprintf(stderr, "loop_create: %s\n", err ? err : "?");
		exit(1);
	}
	return l;
}

/* A completion record: the last result and how many arrived. */
struct rop {
	struct loop_op op;
	int res;
	uint32_t flags;
	int n;
	int results[64];
};

static void rop_done(struct loop_op *op, int res, uint32_t flags)
{
	struct rop *r = (struct rop *)op;

	r->res = res;
	r->flags = flags;
	if (r->n < (int)ARRAY_SIZE(r->results))
		r->results[r->n] = res;
	r->n++;
}

static void rop_init(struct rop *r)
{
	memset(r, 0, sizeof(*r));
	r->res = -9999;
}

static void run_until(struct loop *l, const int *n, int want, uint64_t max_ms)
{
	uint64_t end = time_mono_usec() + max_ms * 1000;

	while (*n < want && time_mono_usec() < end)
		loop_run_once(l, 20);
}

static void spin(struct loop *l, int iterations)
{
	for (int i = 0; i < iterations; i++)
		loop_run_once(l, 5);
}

static void sp_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(1);
	}
}

static void prep_recv(struct loop *l, int fd, void *buf, size_t len,
		      struct rop *r)
{
	struct io_uring_sqe *sqe = loop_get_sqe(l);

	io_uring_prep_recv(sqe, fd, buf, len, 0);
	loop_op_set(sqe, &r->op, rop_done);
}

static void prep_send(struct loop *l, int fd, const void *buf, size_t len,
		      struct rop *r)
{
	struct io_uring_sqe *sqe = loop_get_sqe(l);

	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	loop_op_set(sqe, &r->op, rop_done);
}

static void prep_poll(struct loop *l, int fd, unsigned mask, struct rop *r)
{
	struct io_uring_sqe *sqe = loop_get_sqe(l);

	io_uring_prep_poll_add(sqe, fd, mask);
	loop_op_set(sqe, &r->op, rop_done);
}

static void prep_cancel(struct loop *l, struct rop *target, struct rop *r)
{
	struct io_uring_sqe *sqe = loop_get_sqe(l);

	io_uring_prep_cancel(sqe, &target->op, 0);
	loop_op_set(sqe, &r->op, rop_done);
}

/* ---- basics ---- */

static void test_backend(void)
{
	struct loop *l = make_loop();

	CHECK_EQ_STR(loop_backend(l), "epoll");
	CHECK_EQ_INT(loop_bufs_init(l, 64, 4096), -EOPNOTSUPP);
	CHECK(!loop_bufs_enabled(l));
	loop_destroy(&l);
	CHECK(l == NULL);
}

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

static void test_timers(void)
{
	struct loop *l = make_loop();
	static const int ms[] = { 40, 10, 30, 20, 5 };
	struct ttimer tt[ARRAY_SIZE(ms)];
	int order[8], n = 0;
	uint64_t start = time_mono_usec();

	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		loop_timer_init(&tt[i].t);
		tt[i].id = ms[i];
		tt[i].order = order;
		tt[i].n = &n;
		loop_timer_start(l, &tt[i].t, (uint64_t)ms[i], ttimer_fired);
	}
	loop_timer_stop(l, &tt[2].t);
	/* blocking waits: the epoll timeout must follow the nearest timer */
	while (n < 4 && time_mono_usec() - start < 2000000)
		loop_run_once(l, -1);
	CHECK_EQ_INT(n, 4);
	CHECK_EQ_INT(order[0], 5);
	CHECK_EQ_INT(order[1], 10);
	CHECK_EQ_INT(order[2], 20);
	CHECK_EQ_INT(order[3], 40);
	CHECK(time_mono_usec() - start >= 40000);
	CHECK(time_mono_usec() - start < 1000000);
	loop_destroy(&l);
}

static void test_nops(void)
{
	struct loop *l = make_loop();
	enum { N = 200 };	/* far more than the 16-entry SQ */
	static struct rop r[N];
	int done = 0, ok = 0;

	for (int i = 0; i < N; i++) {
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		rop_init(&r[i]);
		io_uring_prep_nop(sqe);
		loop_op_set(sqe, &r[i].op, rop_done);
	}
	/* a full SQ is flushed, but nothing completes before the loop runs */
	for (int i = 0; i < N; i++)
		done += r[i].n;
	CHECK_EQ_INT(done, 0);
	loop_run_once(l, 0);
	done = 0;
	for (int i = 0; i < N; i++) {
		done += r[i].n;
		ok += r[i].res == 0;
	}
	CHECK_EQ_INT(done, N);
	CHECK_EQ_INT(ok, N);
	loop_destroy(&l);
}

static int defer_log[8], defer_n;

static void defer_fn(void *arg)
{
	defer_log[defer_n++] = (int)(intptr_t)arg;
}

static void test_defer(void)
{
	struct loop *l = make_loop();
	uint64_t t0 = time_mono_usec();

	loop_defer(l, defer_fn, (void *)1);
	loop_defer(l, defer_fn, (void *)2);
	loop_run_once(l, 5000);	/* pending defers: no blocking */
	CHECK(time_mono_usec() - t0 < 1000000);
	CHECK_EQ_INT(defer_n, 2);
	CHECK_EQ_INT(defer_log[0], 1);
	CHECK_EQ_INT(defer_log[1], 2);
	loop_destroy(&l);
}

enum { POST_THREADS = 3, POST_EACH = 3000 };

struct post_ctx {
	struct loop *l;
	int count;
	int last[POST_THREADS];
	int out_of_order;
};

struct post_item {
	struct post_ctx *c;
	int thread, seq;
};

static void post_fn(void *arg)
{
	struct post_item *it = arg;
	struct post_ctx *c = it->c;

	if (it->seq != c->last[it->thread] + 1)
		c->out_of_order++;
	c->last[it->thread] = it->seq;
	if (++c->count == POST_THREADS * POST_EACH)
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

	for (int i = 1; i <= POST_EACH; i++) {
		struct post_item *it = xmalloc(sizeof(*it));
		it->c = p->c;
		it->thread = p->id;
		it->seq = i;
		loop_post(p->c->l, post_fn, it);
		if (i % 500 == 0)
			usleep(2000);	/* let the loop block in epoll_wait */
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
	for (int i = 0; i < POST_THREADS; i++) {
		p[i].c = &c;
		p[i].id = i;
		CHECK_EQ_INT(pthread_create(&th[i], NULL, poster_main, &p[i]), 0);
	}
	loop_run(c.l);
	for (int i = 0; i < POST_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ_INT(c.count, POST_THREADS * POST_EACH);
	CHECK_EQ_INT(c.out_of_order, 0);
	loop_destroy(&c.l);
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

	CHECK_EQ_INT(pthread_create(&th, NULL, stopper, l), 0);
	loop_run(l);	/* no timers, no ops: only the eventfd wakes it */
	CHECK(time_mono_usec() - t0 < 2000000);
	pthread_join(th, NULL);
	loop_destroy(&l);
}

/* In a child where a seccomp filter refuses io_uring_setup, as some
 * container runtimes do: returns the child's exit status. */
static int fallback_child(const char *mode)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { ARRAY_SIZE(filter), filter };
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid > 0) {
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
			return -1;
		return WEXITSTATUS(status);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		_exit(10);
	setenv("KURA_LOOP", mode, 1);
	const char *err = NULL;
	struct loop *l = loop_create(8, &err);
	if (l == NULL)
		_exit(err != NULL && strstr(err, "io_uring") != NULL ? 20 : 21);
	if (strcmp(loop_backend(l), "epoll") != 0)
		_exit(30);
	struct rop r;
	rop_init(&r);
	struct io_uring_sqe *sqe = loop_get_sqe(l);
	io_uring_prep_nop(sqe);
	loop_op_set(sqe, &r.op, rop_done);
	loop_run_once(l, 100);
	loop_destroy(&l);
	_exit(r.res == 0 ? 0 : 40);
}

static void test_fallback(void)
{
	/* unset: falls back to epoll; "uring": refuses to */
	CHECK_EQ_INT(fallback_child("auto"), 0);
	CHECK_EQ_INT(fallback_child("uring"), 20);
}

/* ---- file ops through task_io ---- */

static char tmpdir[64];

struct fs_arg {
	struct loop *l;
	int fails;
	bool done;
};

static int fs_io(struct loop *l, struct io_uring_sqe *sqe)
{
	(void)l;
	return task_io(sqe);
}

static void fs_task(void *arg)
{
	struct fs_arg *a = arg;
	struct loop *l = a->l;
	struct io_uring_sqe *sqe;
	char path[128], path2[128], dir[128], buf[64];
	struct statx stx;
	int fd, r;

	snprintf(dir, sizeof(dir), "%s/d", tmpdir);
	snprintf(path, sizeof(path), "%s/d/f", tmpdir);
	snprintf(path2, sizeof(path2), "%s/d/g", tmpdir);

	/* a real read of a known file */
	fd = open("tests/unit/test.h", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_read(sqe, fd, buf, sizeof(buf), 0);
	CHECK_EQ_INT(fs_io(l, sqe), (int)sizeof(buf));
	CHECK(memcmp(buf, "/*", 2) == 0);
	close(fd);

	sqe = loop_get_sqe(l);
	io_uring_prep_mkdirat(sqe, AT_FDCWD, dir, 0700);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_mkdirat(sqe, AT_FDCWD, dir, 0700);
	CHECK_EQ_INT(fs_io(l, sqe), -EEXIST);

	sqe = loop_get_sqe(l);
	io_uring_prep_openat(sqe, AT_FDCWD, path,
			     O_CREAT | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	fd = fs_io(l, sqe);
	CHECK(fd >= 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_write(sqe, fd, "hello world", 11, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 11);
	sqe = loop_get_sqe(l);
	io_uring_prep_write(sqe, fd, "W", 1, 6);
	CHECK_EQ_INT(fs_io(l, sqe), 1);
	sqe = loop_get_sqe(l);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_fsync(sqe, fd, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	memset(buf, 0, sizeof(buf));
	sqe = loop_get_sqe(l);
	io_uring_prep_read(sqe, fd, buf, 5, 6);
	CHECK_EQ_INT(fs_io(l, sqe), 5);
	CHECK_EQ_STR(buf, "World");
	sqe = loop_get_sqe(l);
	io_uring_prep_close(sqe, fd);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_close(sqe, fd);
	CHECK_EQ_INT(fs_io(l, sqe), -EBADF);

	sqe = loop_get_sqe(l);
	io_uring_prep_statx(sqe, AT_FDCWD, path, 0, STATX_SIZE, &stx);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	CHECK_EQ_INT(stx.stx_size, 11);
	sqe = loop_get_sqe(l);
	io_uring_prep_linkat(sqe, AT_FDCWD, path, AT_FDCWD, path2, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_linkat(sqe, AT_FDCWD, path, AT_FDCWD, path2, 0);
	CHECK_EQ_INT(fs_io(l, sqe), -EEXIST);
	sqe = loop_get_sqe(l);
	io_uring_prep_renameat(sqe, AT_FDCWD, path2, AT_FDCWD, path,
			       RENAME_NOREPLACE);
	CHECK_EQ_INT(fs_io(l, sqe), -EEXIST);
	sqe = loop_get_sqe(l);
	io_uring_prep_unlinkat(sqe, AT_FDCWD, path, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_renameat(sqe, AT_FDCWD, path2, AT_FDCWD, path, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_statx(sqe, AT_FDCWD, path2, 0, STATX_SIZE, &stx);
	CHECK_EQ_INT(fs_io(l, sqe), -ENOENT);
	sqe = loop_get_sqe(l);
	io_uring_prep_unlinkat(sqe, AT_FDCWD, path, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_unlinkat(sqe, AT_FDCWD, dir, AT_REMOVEDIR);
	CHECK_EQ_INT(fs_io(l, sqe), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY, 0);
	CHECK_EQ_INT(fs_io(l, sqe), -ENOENT);

	/* a READ on a pipe waits for data instead of blocking the loop */
	int pfd[2];
	CHECK_EQ_INT(pipe2(pfd, O_CLOEXEC), 0);
	sqe = loop_get_sqe(l);
	io_uring_prep_write(sqe, pfd[1], "pipe", 4, 0);
	CHECK_EQ_INT(fs_io(l, sqe), 4);
	memset(buf, 0, sizeof(buf));
	sqe = loop_get_sqe(l);
	io_uring_prep_read(sqe, pfd[0], buf, sizeof(buf), 0);
	r = fs_io(l, sqe);
	CHECK_EQ_INT(r, 4);
	CHECK_EQ_STR(buf, "pipe");
	close(pfd[0]);
	close(pfd[1]);
	a->done = true;
}

static void test_files(void)
{
	struct fs_arg a = { .l = make_loop() };
	uint64_t end = time_mono_usec() + 5000000;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kura-test-epoll-XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	task_spawn(a.l, fs_task, &a);
	while (task_count() > 0 && time_mono_usec() < end)
		loop_run_once(a.l, 50);
	CHECK(a.done);
	CHECK_EQ_INT(task_count(), 0);
	rmdir(tmpdir);
	loop_destroy(&a.l);
}

/* A task reading from a pipe that gets its data later. */
struct pipe_arg {
	struct loop *l;
	int fd;
	int res;
	char buf[16];
};

static void pipe_task(void *arg)
{
	struct pipe_arg *a = arg;
	struct io_uring_sqe *sqe = loop_get_sqe(a->l);

	io_uring_prep_read(sqe, a->fd, a->buf, sizeof(a->buf) - 1, 0);
	a->res = task_io(sqe);
}

static void test_pipe_wait(void)
{
	struct pipe_arg a = { .l = make_loop(), .res = -9999 };
	int pfd[2];

	CHECK_EQ_INT(pipe2(pfd, O_CLOEXEC), 0);
	a.fd = pfd[0];
	task_spawn(a.l, pipe_task, &a);
	spin(a.l, 5);
	CHECK_EQ_INT(a.res, -9999);
	CHECK_EQ_INT(write(pfd[1], "later", 5), 5);
	for (int i = 0; i < 100 && task_count() > 0; i++)
		loop_run_once(a.l, 20);
	CHECK_EQ_INT(a.res, 5);
	CHECK_EQ_STR(a.buf, "later");
	close(pfd[0]);
	close(pfd[1]);
	loop_destroy(&a.l);
}

/* ---- TCP echo with multishot accept ---- */

enum { ECHO_CONNS = 5 };

struct echo_conn {
	struct echo_srv *srv;
	int fd;
	struct loop_op recv_op, send_op;
	char buf[256];
	size_t len;
	bool closed;
};

struct echo_srv {
	struct loop *l;
	int lfd;
	struct loop_op accept_op;
	int accepted, more_flags, nonblock, cloexec;
	int accept_ended, accept_end_res;
	struct echo_conn conns[ECHO_CONNS];
};

static void echo_recv_arm(struct echo_conn *c);

static void echo_sent(struct loop_op *op, int res, uint32_t flags)
{
	struct echo_conn *c = (struct echo_conn *)((char *)op -
					offsetof(struct echo_conn, send_op));

	(void)flags;
	CHECK_EQ_INT(res, (int)c->len);
	echo_recv_arm(c);
}

static void echo_recvd(struct loop_op *op, int res, uint32_t flags)
{
	struct echo_conn *c = (struct echo_conn *)((char *)op -
					offsetof(struct echo_conn, recv_op));
	struct io_uring_sqe *sqe;

	(void)flags;
	if (res <= 0) {
		c->closed = true;
		close(c->fd);
		return;
	}
	c->len = (size_t)res;
	sqe = loop_get_sqe(c->srv->l);
	io_uring_prep_send(sqe, c->fd, c->buf, c->len, MSG_NOSIGNAL);
	loop_op_set(sqe, &c->send_op, echo_sent);
}

static void echo_recv_arm(struct echo_conn *c)
{
	struct io_uring_sqe *sqe = loop_get_sqe(c->srv->l);

	io_uring_prep_recv(sqe, c->fd, c->buf, sizeof(c->buf), 0);
	loop_op_set(sqe, &c->recv_op, echo_recvd);
}

static void echo_accepted(struct loop_op *op, int res, uint32_t flags)
{
	struct echo_srv *s = (struct echo_srv *)((char *)op -
					offsetof(struct echo_srv, accept_op));

	if (!(flags & IORING_CQE_F_MORE)) {
		s->accept_ended++;
		s->accept_end_res = res;
	}
	if (res < 0)
		return;
	if (flags & IORING_CQE_F_MORE)
		s->more_flags++;
	if ((fcntl(res, F_GETFL) & O_NONBLOCK) != 0)
		s->nonblock++;
	if ((fcntl(res, F_GETFD) & FD_CLOEXEC) != 0)
		s->cloexec++;
	if (s->accepted >= ECHO_CONNS) {
		close(res);
		return;
	}
	struct echo_conn *c = &s->conns[s->accepted++];
	c->srv = s;
	c->fd = res;
	echo_recv_arm(c);
}

static int tcp_listener(uint16_t *port_r)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("listener");
		exit(1);
	}
	*port_r = ntohs(sa.sin_port);
	return fd;
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static void test_echo(void)
{
	static struct echo_srv s;
	struct rop cancel;
	uint16_t port;
	int cfd[ECHO_CONNS];
	struct io_uring_sqe *sqe;
	char buf[64];

	memset(&s, 0, sizeof(s));
	s.l = make_loop();
	s.lfd = tcp_listener(&port);	/* blocking: the loop must cope */
	sqe = loop_get_sqe(s.l);
	io_uring_prep_multishot_accept(sqe, s.lfd, NULL, NULL, SOCK_CLOEXEC);
	loop_op_set(sqe, &s.accept_op, echo_accepted);
	spin(s.l, 2);
	CHECK_EQ_INT(s.accepted, 0);
	for (int i = 0; i < ECHO_CONNS; i++)
		cfd[i] = tcp_connect(port);
	run_until(s.l, &s.accepted, ECHO_CONNS, 3000);
	CHECK_EQ_INT(s.accepted, ECHO_CONNS);
	CHECK_EQ_INT(s.more_flags, ECHO_CONNS);
	CHECK_EQ_INT(s.nonblock, ECHO_CONNS);
	CHECK_EQ_INT(s.cloexec, ECHO_CONNS);
	CHECK_EQ_INT(s.accept_ended, 0);

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < ECHO_CONNS; i++) {
			int len = snprintf(buf, sizeof(buf), "ping %d.%d", round, i);
			CHECK_EQ_INT(send(cfd[i], buf, (size_t)len, 0), len);
		}
		for (int i = 0; i < ECHO_CONNS; i++) {
			char want[64], got[64];
			int len = snprintf(want, sizeof(want), "ping %d.%d", round, i);
			ssize_t n = 0;
			uint64_t end = time_mono_usec() + 3000000;

			while (n < len && time_mono_usec() < end) {
				loop_run_once(s.l, 10);
				ssize_t r = recv(cfd[i], got + n, sizeof(got) - 1 - (size_t)n,
						 MSG_DONTWAIT);
				if (r > 0)
					n += r;
			}
			CHECK_EQ_INT(n, len);
			got[n > 0 ? n : 0] = '\0';
			CHECK_EQ_STR(got, want);
		}
	}

	/* cancel the multishot accept: it ends with -ECANCELED, no MORE */
	rop_init(&cancel);
	sqe = loop_get_sqe(s.l);
	io_uring_prep_cancel(sqe, &s.accept_op, 0);
	loop_op_set(sqe, &cancel.op, rop_done);
	run_until(s.l, &cancel.n, 1, 1000);
	CHECK_EQ_INT(cancel.res, 0);
	CHECK_EQ_INT(s.accept_ended, 1);
	CHECK_EQ_INT(s.accept_end_res, -ECANCELED);

	/* peers close: the pending receives complete with 0 */
	for (int i = 0; i < ECHO_CONNS; i++)
		close(cfd[i]);
	int closed = 0;
	for (int iter = 0; iter < 200 && closed < ECHO_CONNS; iter++) {
		loop_run_once(s.l, 10);
		closed = 0;
		for (int i = 0; i < ECHO_CONNS; i++)
			closed += s.conns[i].closed;
	}
	CHECK_EQ_INT(closed, ECHO_CONNS);
	close(s.lfd);
	loop_destroy(&s.l);
}

/* ---- sends: partial, waiting, FIFO ---- */

static void test_send(void)
{
	struct loop *l = make_loop();
	enum { BIG = 4 << 20 };
	char *big = xmalloc(BIG), *sink = xmalloc(BIG);
	struct rop s1, s2, s3;
	int sv[2], sz = 4096;
	ssize_t got = 0;

	sp_pair(sv);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(big, 'x', BIG);
	/* more than the socket buffer holds: completes with what fit */
	rop_init(&s1);
	prep_send(l, sv[0], big, BIG, &s1);
	CHECK_EQ_INT(s1.n, 0);
	run_until(l, &s1.n, 1, 1000);
	CHECK_EQ_INT(s1.n, 1);
	CHECK(s1.res > 0 && s1.res < BIG);
	/* the buffer is full: two sends wait, in order */
	rop_init(&s2);
	rop_init(&s3);
	prep_send(l, sv[0], "A", 1, &s2);
	prep_send(l, sv[0], "B", 1, &s3);
	spin(l, 5);
	CHECK_EQ_INT(s2.n, 0);
	CHECK_EQ_INT(s3.n, 0);
	for (uint64_t end = time_mono_usec() + 3000000;
	     got < s1.res + 2 && time_mono_usec() < end;) {
		ssize_t r = recv(sv[1], sink + got, (size_t)(BIG - got),
				 MSG_DONTWAIT);
		if (r > 0)
			got += r;
		loop_run_once(l, 5);
	}
	CHECK_EQ_INT(s2.res, 1);
	CHECK_EQ_INT(s3.res, 1);
	CHECK_EQ_INT(got, s1.res + 2);
	CHECK(sink[s1.res] == 'A');
	CHECK(sink[s1.res + 1] == 'B');
	close(sv[0]);
	/* send to a closed peer: -EPIPE, no SIGPIPE */
	rop_init(&s1);
	prep_send(l, sv[1], "x", 1, &s1);
	run_until(l, &s1.n, 1, 1000);
	CHECK_EQ_INT(s1.res, -EPIPE);
	close(sv[1]);
	free(big);
	free(sink);
	loop_destroy(&l);
}

static void test_recv_fifo(void)
{
	struct loop *l = make_loop();
	struct rop r1, r2, r3;
	char b1[4] = "", b2[4] = "", b3[4] = "";
	int sv[2];

	sp_pair(sv);
	rop_init(&r1);
	rop_init(&r2);
	rop_init(&r3);
	prep_recv(l, sv[0], b1, 3, &r1);
	prep_recv(l, sv[0], b2, 3, &r2);
	spin(l, 3);
	CHECK_EQ_INT(r1.n + r2.n, 0);
	CHECK_EQ_INT(send(sv[1], "abcdef", 6, 0), 6);
	run_until(l, &r2.n, 1, 1000);
	CHECK_EQ_INT(r1.res, 3);
	CHECK_EQ_INT(r2.res, 3);
	CHECK(memcmp(b1, "abc", 3) == 0);
	CHECK(memcmp(b2, "def", 3) == 0);
	/* MSG_PEEK passes through */
	CHECK_EQ_INT(send(sv[1], "xyz", 3, 0), 3);
	{
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_recv(sqe, sv[0], b3, 3, MSG_PEEK);
		loop_op_set(sqe, &r3.op, rop_done);
	}
	run_until(l, &r3.n, 1, 1000);
	CHECK_EQ_INT(r3.res, 3);
	rop_init(&r1);
	prep_recv(l, sv[0], b1, 3, &r1);
	run_until(l, &r1.n, 1, 1000);
	CHECK_EQ_INT(r1.res, 3);
	CHECK(memcmp(b1, "xyz", 3) == 0);
	/* shutdown wakes a pending receive with 0 */
	rop_init(&r1);
	prep_recv(l, sv[0], b1, 3, &r1);
	spin(l, 3);
	CHECK_EQ_INT(r1.n, 0);
	shutdown(sv[0], SHUT_RDWR);
	run_until(l, &r1.n, 1, 1000);
	CHECK_EQ_INT(r1.res, 0);
	close(sv[0]);
	close(sv[1]);
	loop_destroy(&l);
}

/* ---- polls and cancellation ---- */

static void test_poll(void)
{
	struct loop *l = make_loop();
	struct rop p1, p2, rm, rm2;
	int sv[2];
	char c;

	sp_pair(sv);
	rop_init(&p1);
	prep_poll(l, sv[0], POLLIN, &p1);
	spin(l, 3);
	CHECK_EQ_INT(p1.n, 0);
	CHECK_EQ_INT(send(sv[1], "1", 1, 0), 1);
	run_until(l, &p1.n, 1, 1000);
	CHECK_EQ_INT(p1.n, 1);
	CHECK(p1.res > 0 && (p1.res & POLLIN));
	CHECK_EQ_INT(p1.flags & IORING_CQE_F_MORE, 0);
	/* one-shot: data still there, but no second completion */
	spin(l, 3);
	CHECK_EQ_INT(p1.n, 1);
	CHECK_EQ_INT(recv(sv[0], &c, 1, 0), 1);

	/* POLLOUT is immediate; POLLIN on the same fd waits */
	rop_init(&p1);
	rop_init(&p2);
	prep_poll(l, sv[0], POLLIN, &p1);
	prep_poll(l, sv[0], POLLOUT, &p2);
	run_until(l, &p2.n, 1, 1000);
	CHECK(p2.res > 0 && (p2.res & POLLOUT));
	CHECK_EQ_INT(p1.n, 0);

	/* remove the waiting POLLIN: -ECANCELED for it, 0 for the remove */
	rop_init(&rm);
	{
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&p1.op);
		loop_op_set(sqe, &rm.op, rop_done);
	}
	run_until(l, &rm.n, 1, 1000);
	CHECK_EQ_INT(rm.res, 0);
	CHECK_EQ_INT(p1.n, 1);
	CHECK_EQ_INT(p1.res, -ECANCELED);
	rop_init(&rm2);
	{
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&p1.op);
		loop_op_set(sqe, &rm2.op, rop_done);
	}
	run_until(l, &rm2.n, 1, 1000);
	CHECK_EQ_INT(rm2.res, -ENOENT);
	/* the removed poll does not fire later */
	CHECK_EQ_INT(send(sv[1], "2", 1, 0), 1);
	spin(l, 3);
	CHECK_EQ_INT(p1.n, 1);

	/* peer hangs up: POLLHUP is reported even if not asked for */
	rop_init(&p1);
	CHECK_EQ_INT(recv(sv[0], &c, 1, 0), 1);
	prep_poll(l, sv[0], POLLPRI, &p1);
	spin(l, 2);
	CHECK_EQ_INT(p1.n, 0);
	close(sv[1]);
	run_until(l, &p1.n, 1, 1000);
	CHECK(p1.res > 0 && (p1.res & POLLHUP));
	close(sv[0]);

	/* a regular file is always ready */
	int fd = open("tests/unit/test.h", O_RDONLY | O_CLOEXEC);
	rop_init(&p1);
	prep_poll(l, fd, POLLIN, &p1);
	run_until(l, &p1.n, 1, 1000);
	CHECK_EQ_INT(p1.res, POLLIN);
	close(fd);
	loop_destroy(&l);
}

static void test_cancel(void)
{
	struct loop *l = make_loop();
	struct rop r1, r2, c1, c2;
	char b[8];
	int sv[2];

	sp_pair(sv);
	rop_init(&r1);
	rop_init(&c1);
	rop_init(&c2);
	prep_recv(l, sv[0], b, sizeof(b), &r1);
	spin(l, 2);
	prep_cancel(l, &r1, &c1);
	run_until(l, &c1.n, 1, 1000);
	CHECK_EQ_INT(c1.res, 0);
	CHECK_EQ_INT(r1.n, 1);
	CHECK_EQ_INT(r1.res, -ECANCELED);
	prep_cancel(l, &r1, &c2);
	run_until(l, &c2.n, 1, 1000);
	CHECK_EQ_INT(c2.res, -ENOENT);
	/* the cancelled receive took nothing: a new one gets the data */
	CHECK_EQ_INT(send(sv[1], "after", 5, 0), 5);
	spin(l, 2);
	CHECK_EQ_INT(r1.n, 1);
	rop_init(&r2);
	prep_recv(l, sv[0], b, sizeof(b), &r2);
	run_until(l, &r2.n, 1, 1000);
	CHECK_EQ_INT(r2.res, 5);

	/* submitted and cancelled in the same batch, like io_uring */
	rop_init(&r1);
	rop_init(&c1);
	prep_recv(l, sv[0], b, sizeof(b), &r1);
	prep_cancel(l, &r1, &c1);
	CHECK_EQ_INT(r1.n + c1.n, 0);	/* nothing inside get_sqe/op_set */
	run_until(l, &c1.n, 1, 1000);
	CHECK_EQ_INT(c1.res, 0);
	CHECK_EQ_INT(r1.res, -ECANCELED);

	/* cancel by fd, all of them */
	rop_init(&r1);
	rop_init(&r2);
	rop_init(&c1);
	prep_recv(l, sv[0], b, sizeof(b), &r1);
	prep_poll(l, sv[0], POLLIN, &r2);
	{
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_cancel_fd(sqe, sv[0], IORING_ASYNC_CANCEL_ALL);
		loop_op_set(sqe, &c1.op, rop_done);
	}
	run_until(l, &c1.n, 1, 1000);
	CHECK_EQ_INT(c1.res, 2);
	CHECK_EQ_INT(r1.res, -ECANCELED);
	CHECK_EQ_INT(r2.res, -ECANCELED);
	close(sv[0]);
	close(sv[1]);
	loop_destroy(&l);
}

/* ---- closed and reused descriptors ---- */

static void test_closed_fds(void)
{
	struct loop *l = make_loop();
	struct rop r1, r2, c1, p1, p2, rm;
	char b[8];
	int sv[2], sv2[2], fd;

	/* ops on a descriptor that is not open */
	sp_pair(sv);
	close(sv[1]);
	fd = sv[0];
	close(fd);
	rop_init(&r1);
	rop_init(&p1);
	prep_recv(l, fd, b, sizeof(b), &r1);
	prep_poll(l, fd, POLLIN, &p1);
	run_until(l, &p1.n, 1, 1000);
	CHECK_EQ_INT(r1.res, -EBADF);
	CHECK_EQ_INT(p1.res, -EBADF);
	rop_init(&r1);
	prep_recv(l, -1, b, sizeof(b), &r1);
	run_until(l, &r1.n, 1, 1000);
	CHECK_EQ_INT(r1.res, -EBADF);

	/* closed through the loop while a receive waits */
	sp_pair(sv);
	rop_init(&r1);
	rop_init(&c1);
	prep_recv(l, sv[0], b, sizeof(b), &r1);
	spin(l, 2);
	{
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_close(sqe, sv[0]);
		loop_op_set(sqe, &c1.op, rop_done);
	}
	run_until(l, &c1.n, 1, 1000);
	CHECK_EQ_INT(c1.res, 0);
	CHECK_EQ_INT(r1.res, -EBADF);
	close(sv[1]);

	/* the pattern of a curl socket: poll removed, socket closed and its
	 * number reused by a new one, polled again, in one batch */
	sp_pair(sv);
	rop_init(&p1);
	rop_init(&p2);
	rop_init(&rm);
	prep_poll(l, sv[0], POLLIN, &p1);
	spin(l, 2);
	{
		struct io_uring_sqe *sqe = loop_get_sqe(l);
		io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&p1.op);
		loop_op_set(sqe, &rm.op, rop_done);
	}
	fd = sv[0];
	close(sv[0]);
	close(sv[1]);
	sp_pair(sv2);
	CHECK_EQ_INT(sv2[0], fd);	/* lowest free number: reused */
	prep_poll(l, sv2[0], POLLIN, &p2);
	run_until(l, &rm.n, 1, 1000);
	CHECK_EQ_INT(rm.res, 0);
	CHECK_EQ_INT(p1.res, -ECANCELED);
	spin(l, 2);
	CHECK_EQ_INT(p2.n, 0);
	CHECK_EQ_INT(send(sv2[1], "n", 1, 0), 1);
	run_until(l, &p2.n, 1, 1000);
	CHECK(p2.res > 0 && (p2.res & POLLIN));

	/* a receive completes, its callback's owner closes the socket, the
	 * number comes back for a new socket: the new one is watched */
	rop_init(&r1);
	prep_recv(l, sv2[0], b, sizeof(b), &r1);
	run_until(l, &r1.n, 1, 1000);
	CHECK_EQ_INT(r1.res, 1);
	fd = sv2[0];
	close(sv2[0]);
	close(sv2[1]);
	sp_pair(sv);
	CHECK_EQ_INT(sv[0], fd);
	rop_init(&r2);
	prep_recv(l, sv[0], b, sizeof(b), &r2);
	spin(l, 2);
	CHECK_EQ_INT(r2.n, 0);
	CHECK_EQ_INT(send(sv[1], "m", 1, 0), 1);
	run_until(l, &r2.n, 1, 1000);
	CHECK_EQ_INT(r2.res, 1);
	close(sv[0]);
	close(sv[1]);
	loop_destroy(&l);
}

/* A receive waiting in one loop is cancelled and the socket handed to
 * another loop (a connection moving between workers). */
static void test_handoff(void)
{
	struct loop *a = make_loop(), *b = make_loop();
	struct rop r1, r2, c1;
	char buf[8];
	int sv[2];

	sp_pair(sv);
	rop_init(&r1);
	rop_init(&r2);
	rop_init(&c1);
	prep_recv(a, sv[0], buf, sizeof(buf), &r1);
	spin(a, 2);
	prep_cancel(a, &r1, &c1);
	run_until(a, &c1.n, 1, 1000);
	CHECK_EQ_INT(r1.res, -ECANCELED);
	prep_recv(b, sv[0], buf, sizeof(buf), &r2);
	spin(b, 2);
	CHECK_EQ_INT(send(sv[1], "hand", 4, 0), 4);
	run_until(b, &r2.n, 1, 1000);
	CHECK_EQ_INT(r2.res, 4);
	spin(a, 2);
	CHECK_EQ_INT(r1.n, 1);
	close(sv[0]);
	close(sv[1]);
	loop_destroy(&a);
	loop_destroy(&b);
}

/* Pending ops at destroy are dropped without completing or leaking. */
static void test_destroy_pending(void)
{
	struct loop *l = make_loop();
	struct rop r[40];
	char b[4];
	int sv[2];

	sp_pair(sv);
	for (int i = 0; i < 40; i++) {
		rop_init(&r[i]);
		prep_recv(l, sv[0], b, sizeof(b), &r[i]);
	}
	spin(l, 2);
	int n = 0;
	for (int i = 0; i < 40; i++)
		n += r[i].n;
	CHECK_EQ_INT(n, 0);
	loop_destroy(&l);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	/* SIGPIPE stays fatal: sends must use MSG_NOSIGNAL's semantics */
	setenv("KURA_LOOP", "epoll", 1);
	test_fallback();
	test_backend();
	test_timers();
	test_nops();
	test_defer();
	test_post();
	test_stop();
	test_files();
	test_pipe_wait();
	test_echo();
	test_send();
	test_recv_fifo();
	test_poll();
	test_cancel();
	test_closed_fds();
	test_handoff();
	test_destroy_pending();
	return test_done("loop_epoll");
}
