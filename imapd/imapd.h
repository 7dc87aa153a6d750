/* imapd: the server's internal types, shared by the files of imapd/
 * (server.c: workers and listeners; conn.c: connection I/O; session.c:
 * IMAP state and untagged updates; cmd_*.c: command handlers). Nothing
 * outside imapd/ includes this header. */
#ifndef KURA_IMAPD_H
#define KURA_IMAPD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "imapd/config.h"
#include "imapd/imap_parser.h"
#include "lib/arena.h"
#include "lib/buf.h"
#include "lib/loop.h"

struct index;
struct account;
struct users;
struct tls_ctx;
struct tls_conn;
struct compress_in;
struct compress_out;
struct task;

struct server_listener {
	char *host;
	uint16_t port;
	bool tls;
};

struct server_settings {
	struct server_listener *listeners;
	unsigned nlisteners;
	unsigned workers;
	enum plaintext_auth plaintext_auth;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned max_auth_failures;
	unsigned idle_keepalive_sec;
	unsigned idle_poll_sec;
	unsigned session_timeout_sec;
	uint64_t max_append_size;
	const char *spool_dir;	/* large APPEND literals go here */
};

struct worker;

struct server {
	struct server_settings set;
	struct imap_parser_limits auth_limits;	/* after login */
	struct index *index;
	struct users *users;
	struct tls_ctx *tls;	/* NULL when no certificate is configured */
	struct worker *workers;
	unsigned nworkers;
	atomic_uint nconns;
	atomic_uint_fast64_t next_conn_id;
	pthread_mutex_t ip_lock;
	struct ip_count *ip_counts;	/* small open hash, see server.c */
	size_t ip_cap;
	atomic_bool stopping;
};

struct listen_sock {
	struct worker *w;
	int fd;
	bool tls;
	struct loop_op op;
	bool armed;
	struct loop_timer retry;	/* re-arm after an accept error */
};

struct worker {
	struct server *srv;
	unsigned id;
	pthread_t thread;
	struct loop *loop;
	struct listen_sock *socks;
	unsigned nsocks;
	struct conn *conns;	/* doubly linked list */
	unsigned nconns;
	struct loop_timer shutdown_timer;
	uint64_t shutdown_start;
};

/* A literal streamed by the connection (APPEND message). */
/* A literal streamed by the connection (APPEND message). Small ones
 * stay in memory; large ones are spooled to an unlinked file and mapped
 * when complete, so a connection's heap stays small. */
struct conn_literal {
	struct buf data;	/* in memory (fd < 0) */
	int fd;			/* spool file, or -1 */
	uint8_t *map;		/* mapping of the spool file once complete */
	uint64_t len;
	struct conn_literal *next;
};

/* The complete bytes of a streamed literal. */
struct kstr conn_literal_bytes(struct conn_literal *l);

enum conn_wait {
	CONN_WAIT_NONE = 0,
	CONN_WAIT_LINE,		/* task waits for a client line (SASL) */
	CONN_WAIT_FLUSH,	/* task waits for output to drain */
};

struct conn {
	struct worker *w;
	struct conn *prev, *next;
	uint64_t id;
	int fd;
	char peer[64];
	char ipkey[48];
	bool peer_loopback;
	bool implicit_tls;

	struct loop_op recv_op, send_op, cancel_op;
	bool recv_inflight, send_inflight, cancel_inflight, recv_retry_pending;
	uint8_t *rbuf;
	size_t rbuf_size;

	struct buf in;		/* plaintext input not yet parsed */
	struct buf out;		/* plaintext output not yet handed to send */
	struct buf wire;	/* bytes being sent */
	struct buf tls_backlog;	/* ciphertext TLS could not take yet */
	struct compress_in *cin;	/* COMPRESS=DEFLATE, both directions */
	struct compress_out *cout;
	struct buf zraw;	/* compressed input not inflated yet */
	struct buf zout;	/* compressed output not handed to TLS/send */
	struct tls_conn *tls;

	struct imap_parser *parser;
	struct session *sess;

	/* command execution */
	struct task *task;
	struct imap_cmd *cmd;
	struct arena *cmd_arena;
	enum conn_wait wait;
	struct kstr wait_line;	/* CONN_WAIT_LINE result (in cmd_arena) */
	bool wait_line_eof;

	/* APPEND literal being streamed */
	struct conn_literal *lit_cur;
	uint64_t lit_remaining;
	struct conn_literal *lits;	/* all literals of the command */

	/* IDLE */
	bool idling;
	struct kstr idle_tag;	/* in cmd_arena */
	struct loop_timer keepalive_timer;
	struct loop_timer poll_timer;
	bool poll_running;

	struct loop_timer timeout_timer;

	bool closing;		/* no more commands; close when output sent */
	bool dead;		/* socket failed: drop output */
	bool handoff;		/* moving to another worker */
	unsigned auth_failures;
	unsigned bad_count;
};

/* ---- server.c ---- */
int server_start(struct server *srv, const char **error_r);
/* Stops accepting, BYEs idle connections, waits for the workers. */
void server_stop(struct server *srv);
void server_wait(struct server *srv);
/* Per-IP accounting; false when the limit is reached. */
bool server_ip_acquire(struct server *srv, const char *ipkey);
void server_ip_release(struct server *srv, const char *ipkey);
/* Worker for a user (affinity within the node). */
unsigned server_worker_for_user(const struct server *srv, const char *user);

/* ---- conn.c ---- */
void conn_accepted(struct worker *w, int fd, bool tls);
/* Appends output (plaintext); never fails (bounded by the command's
 * flushes). */
void conn_write(struct conn *c, const void *p, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Starts sending what is queued. */
void conn_flush(struct conn *c);
/* In a task: sends and suspends until the output is below `low` bytes
 * (0 = all sent). Returns false if the connection died. */
bool conn_flush_wait(struct conn *c, size_t low);
/* In a task: reads one line from the client (without CRLF), at most
 * max bytes. Returns 0, or -1 if the connection closed / line too long. */
int conn_read_line(struct conn *c, size_t max, struct kstr *line_r);
/* The command arena, created on first use (idle connections hold none). */
struct arena *conn_arena(struct conn *c);
/* Drops the connection now (shutdown): pending output is lost. */
void conn_abort(struct conn *c);
/* Marks the connection to close after the output is sent. */
void conn_close_after_output(struct conn *c);
/* STARTTLS: output so far is sent in clear, then TLS starts; pending
 * plaintext input is discarded. */
void conn_start_tls(struct conn *c);
bool conn_is_tls(const struct conn *c);
/* COMPRESS DEFLATE: output so far goes out uncompressed, then both
 * directions are compressed. */
void conn_start_compress(struct conn *c);
bool conn_is_compressed(const struct conn *c);
/* After authentication: moves the connection to the user's worker if it
 * is another one. The task must have ended first: called by session code
 * via a flag, see session.c. */
void conn_maybe_handoff(struct conn *c);
/* Enter IDLE: tag is kept; the task ends without a tagged reply. */
void conn_idle_begin(struct conn *c, struct kstr tag);
/* Changes reached the session's account (listener). */
void conn_account_changed(struct conn *c);
/* Runs fn(c) as the connection's command task (e.g. finishing a login
 * after a handoff); fn must end with conn_task_done(c). */
void conn_run_task(struct conn *c, void (*fn)(void *), void *arg);
void conn_task_done(struct conn *c);

#endif
