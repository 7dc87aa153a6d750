/* tls: server-side TLS (OpenSSL 3) that never touches a socket.
 *
 * The connection layer does all socket I/O itself (io_uring); a tls_conn
 * only turns ciphertext into plaintext and back, in memory:
 *
 *   recv() bytes --tls_conn_feed()--> [in]  --tls_conn_read()--> plaintext
 *   plaintext  --tls_conn_write()--> [out] --tls_conn_take_output()--> send()
 *
 * After every feed, read, write or shutdown call, call
 * tls_conn_take_output() and send what it gives: the handshake, session
 * tickets, key updates and alerts all appear there, also when a call
 * fails (a fatal error leaves an alert to send before closing).
 *
 * Buffering is bounded per connection:
 *   - [in] holds fed ciphertext not yet decrypted, at most
 *     TLS_CONN_IN_MAX bytes: tls_conn_feed() accepts only what fits, the
 *     caller keeps the rest and feeds it after tls_conn_read().
 *   - [out] holds ciphertext not yet taken: tls_conn_write() accepts
 *     plaintext only while less than TLS_CONN_OUT_HIGH bytes wait there,
 *     at most 16 KiB (one record) per step, so [out] stays below
 *     TLS_CONN_OUT_MAX; a peer that makes [out] pass that bound through
 *     reads alone (e.g. a flood of key-update requests while the caller
 *     does not send) makes the connection fail.
 *   - OpenSSL's own record buffers are released whenever they are empty
 *     (SSL_MODE_RELEASE_BUFFERS), and [in]/[out] are freed when empty, so
 *     an idle TLS connection holds only the SSL object (about 14 KiB
 *     with OpenSSL 3.0, measured; 47 KiB without releasing buffers).
 *
 * STARTTLS: create the tls_conn when the tagged OK has been queued, and
 * discard any plaintext input that arrived after the STARTTLS command
 * (RFC 3501 section 6.2.1; CVE-2011-0411-style command injection).
 *
 * A tls_ctx is thread-safe and shared by all workers; a tls_conn belongs
 * to one thread. */
#ifndef KURA_TLS_H
#define KURA_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

#define TLS_CONN_IN_MAX (32 * 1024)
#define TLS_CONN_OUT_HIGH (32 * 1024)
#define TLS_CONN_OUT_MAX (64 * 1024)

struct tls_ctx;
struct tls_conn;

/* Loads a PEM certificate chain (leaf first) and its PEM private key.
 * Protocols: TLS 1.2 and 1.3 only; TLS 1.2 suites are ECDHE with AES-GCM
 * or ChaCha20-Poly1305; the server's order wins; stateless session
 * tickets are on; renegotiation is off; ALPN "imap" is selected when
 * offered and a client that offers ALPN without "imap" is refused.
 * Returns NULL with *error_r (thread-local, valid until the next tls_*
 * call in this thread) on failure. Free with tls_ctx_destroy(). */
struct tls_ctx *tls_ctx_create(const char *cert_file, const char *key_file,
			       const char **error_r);
/* Frees the context. Connections created from it keep working (each
 * holds its own reference), so a reload may swap contexts at any time. */
void tls_ctx_destroy(struct tls_ctx **ctx);

/* A server-side connection in the handshake state. Never NULL. */
struct tls_conn *tls_conn_create(struct tls_ctx *ctx);
void tls_conn_destroy(struct tls_conn **conn);

/* Gives ciphertext from the socket. Returns the number of bytes taken
 * (0..len; fewer than len when [in] is full: call tls_conn_read() and
 * feed the rest later), or -EPROTO after a fatal error. Bytes after the
 * peer's close_notify are taken and dropped. */
ssize_t tls_conn_feed(struct tls_conn *conn, const void *data, size_t len);

/* Advances the handshake and decrypts into dst (appending at most as
 * much as dst->max allows; dst->max == 0 means no bound). Returns:
 *   > 0      bytes of plaintext appended
 *   -EAGAIN  nothing to give yet: more input needed
 *   0        the peer sent close_notify (only once everything before it
 *            was returned; every later call returns 0 again)
 *   -ENOBUFS dst is full
 *   -EPROTO  fatal TLS error (garbage, refused protocol version, ...);
 *            take the output (an alert) and close; tls_conn_error() says
 *            why; every later call returns -EPROTO again.
 * Data read before a close or an error is returned first; the 0 or
 * -EPROTO comes on the next call. */
ssize_t tls_conn_read(struct tls_conn *conn, struct buf *dst);

/* Encrypts plaintext into [out]. Returns the number of bytes taken
 * (1..len; the caller keeps the rest), or
 *   -EAGAIN  nothing taken: the handshake is not finished yet, or [out]
 *            is at TLS_CONN_OUT_HIGH (take and send the output first);
 *            unlike SSL_write(), the retry may pass any data
 *   -EPIPE   after tls_conn_shutdown() or the peer's close_notify
 *   -EPROTO  after a fatal error.
 * len == 0 returns 0. */
ssize_t tls_conn_write(struct tls_conn *conn, const void *data, size_t len);

/* Moves pending ciphertext into dst, as much as dst->max allows.
 * Returns the number of bytes moved (0 when none is pending or dst is
 * full). */
size_t tls_conn_take_output(struct tls_conn *conn, struct buf *dst);
/* Ciphertext bytes waiting in [out]. */
size_t tls_conn_output_pending(const struct tls_conn *conn);

/* Queues our close_notify (once; does not wait for the peer's). Take
 * the output, send it, then close the socket. No effect before the
 * handshake has finished or after a fatal error. */
void tls_conn_shutdown(struct tls_conn *conn);

bool tls_conn_handshake_done(const struct tls_conn *conn);
/* The peer's close_notify has been read. */
bool tls_conn_peer_closed(const struct tls_conn *conn);
/* True after the peer's close_notify, our shutdown, or a fatal error:
 * no more application data will flow. */
bool tls_conn_is_closed(const struct tls_conn *conn);

/* Static reason of the fatal error ("wrong version number"), or NULL. */
const char *tls_conn_error(const struct tls_conn *conn);
/* Static names for logs ("TLSv1.3", "TLS_AES_256_GCM_SHA384"); "-" before
 * the handshake is done. */
const char *tls_conn_version(const struct tls_conn *conn);
const char *tls_conn_cipher(const struct tls_conn *conn);

#endif
