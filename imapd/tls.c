#include "imapd/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct tls_ctx {
	SSL_CTX *ssl_ctx;
};

struct tls_conn {
	SSL *ssl;
	struct buf in;		/* ciphertext fed, not yet consumed */
	struct buf out;		/* ciphertext produced, not yet taken */
	unsigned long err;	/* first fatal OpenSSL error, 0 = none */
	bool failed;
	bool peer_closed;
	bool shutdown_sent;
};

static __thread char errbuf[1024];

/* The TLS 1.2 suites: forward secrecy and AEAD only. */
static const char tls12_ciphers[] = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL";
static const char groups[] = "X25519:P-256:P-384";

static const char *ssl_error_text(const char *what)
{
	unsigned long e = ERR_get_error();
	const char *reason = NULL;
	if (e != 0 && ERR_SYSTEM_ERROR(e))
		reason = strerror(ERR_GET_REASON(e));
	else if (e != 0)
		reason = ERR_reason_error_string(e);
	char code[256];
	if (reason == NULL && e != 0) {
		ERR_error_string_n(e, code, sizeof(code));
		reason = code;
	}
	snprintf(errbuf, sizeof(errbuf), "%s: %s", what,
		 reason != NULL ? reason : "unknown error");
	ERR_clear_error();
	return errbuf;
}

/* ALPN (RFC 7301): "imap" when the client offers it; a client that
 * offers only other protocols is talking to the wrong service (ALPACA),
 * so it is refused. No ALPN at all is fine. */
static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	static const unsigned char imap[] = "\x04imap";
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, imap, sizeof(imap) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

struct tls_ctx *tls_ctx_create(const char *cert_file, const char *key_file,
			       const char **error_r)
{
	ERR_clear_error();
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	if (c == NULL) {
		*error_r = ssl_error_text("SSL_CTX_new");
		return NULL;
	}
	static const unsigned char sid_ctx[] = "kura-imapd";
	if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(c, 0) != 1 ||
	    SSL_CTX_set_cipher_list(c, tls12_ciphers) != 1 ||
	    SSL_CTX_set1_groups_list(c, groups) != 1 ||
	    SSL_CTX_set_session_id_context(c, sid_ctx,
					   sizeof(sid_ctx) - 1) != 1) {
		*error_r = ssl_error_text("TLS settings");
		SSL_CTX_free(c);
		return NULL;
	}
	SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_PRIORITIZE_CHACHA |
			    SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS |
			 SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Tickets only: a session cache would be per node, and any node may
	 * serve the next connection. */
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(c, 1);
	SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);

	char what[600];
	if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
		snprintf(what, sizeof(what), "%s: cannot load certificate",
			 cert_file);
		*error_r = ssl_error_text(what);
		SSL_CTX_free(c);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "%s: cannot load private key",
			 key_file);
		*error_r = ssl_error_text(what);
		SSL_CTX_free(c);
		return NULL;
	}
	if (SSL_CTX_check_private_key(c) != 1) {
		snprintf(what, sizeof(what), "%s does not match %s", key_file,
			 cert_file);
		*error_r = ssl_error_text(what);
		SSL_CTX_free(c);
		return NULL;
	}
	struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = c;
	return ctx;
}

void tls_ctx_destroy(struct tls_ctx **ctxp)
{
	struct tls_ctx *ctx = *ctxp;
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
	*ctxp = NULL;
}

/* A BIO over the connection's two bufs: OpenSSL reads [in] and writes
 * [out]; it never blocks and never sees a descriptor. */
static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct tls_conn *conn = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	/* [out] has a hard bound (its max); passing it is a failure, not a
	 * retry, because tls_conn_write() never lets it get there. */
	if (!buf_append(&conn->out, data, len))
		return 0;
	*written = len;
	return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *readbytes)
{
	struct tls_conn *conn = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	size_t avail = buf_used(&conn->in);
	if (avail == 0) {
		BIO_set_retry_read(b);
		return 0;
	}
	size_t n = KURA_MIN(avail, len);
	memcpy(data, buf_head(&conn->in), n);
	buf_consume(&conn->in, n);
	*readbytes = n;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	struct tls_conn *conn = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return (long)buf_used(&conn->in);
	case BIO_CTRL_WPENDING:
		return (long)buf_used(&conn->out);
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "kura-tls-buf");
	if (m == NULL ||
	    BIO_meth_set_write_ex(m, bio_write) != 1 ||
	    BIO_meth_set_read_ex(m, bio_read) != 1 ||
	    BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
	    BIO_meth_set_create(m, bio_create) != 1) {
		fprintf(stderr, "kura: cannot create the TLS BIO method\n");
		abort();
	}
	bio_method = m;
}

struct tls_conn *tls_conn_create(struct tls_ctx *ctx)
{
	pthread_once(&bio_once, bio_method_init);
	struct tls_conn *conn = xcalloc(1, sizeof(*conn));
	buf_init(&conn->in, TLS_CONN_IN_MAX);
	buf_init(&conn->out, TLS_CONN_OUT_MAX);
	conn->ssl = SSL_new(ctx->ssl_ctx);
	BIO *bio = BIO_new(bio_method);
	if (conn->ssl == NULL || bio == NULL) {
		fprintf(stderr, "kura: out of memory creating a TLS connection\n");
		abort();
	}
	BIO_set_data(bio, conn);
	SSL_set_bio(conn->ssl, bio, bio);
	SSL_set_accept_state(conn->ssl);
	return conn;
}

void tls_conn_destroy(struct tls_conn **connp)
{
	struct tls_conn *conn = *connp;
	if (conn == NULL)
		return;
	SSL_free(conn->ssl);
	buf_deinit(&conn->in);
	buf_deinit(&conn->out);
	free(conn);
	*connp = NULL;
}

/* Empty buffers give their memory back: idle connections are many. */
static void trim(struct buf *b)
{
	if (buf_used(b) == 0 && b->data != NULL)
		buf_deinit(b);
}

static void set_failed(struct tls_conn *conn)
{
	if (!conn->failed) {
		conn->failed = true;
		conn->err = ERR_peek_error();
	}
	ERR_clear_error();
}

ssize_t tls_conn_feed(struct tls_conn *conn, const void *data, size_t len)
{
	if (conn->failed)
		return -EPROTO;
	if (conn->peer_closed)
		return (ssize_t)len;
	size_t room = TLS_CONN_IN_MAX - buf_used(&conn->in);
	size_t n = KURA_MIN(room, len);
	if (n > 0 && !buf_append(&conn->in, data, n))
		return 0;
	return (ssize_t)n;
}

ssize_t tls_conn_read(struct tls_conn *conn, struct buf *dst)
{
	ssize_t got = 0;

	for (;;) {
		if (conn->failed)
			return got > 0 ? got : -EPROTO;
		if (conn->peer_closed)
			return got;
		size_t room = 16384;
		if (dst->max != 0) {
			room = KURA_MIN(room, dst->max - buf_used(dst));
			if (room == 0)
				return got > 0 ? got : -ENOBUFS;
		}
		uint8_t *p = buf_reserve(dst, room);
		if (p == NULL)
			return got > 0 ? got : -ENOBUFS;
		size_t n = 0;
		ERR_clear_error();
		int r = SSL_read_ex(conn->ssl, p, room, &n);
		trim(&conn->in);
		if (r == 1) {
			buf_commit(dst, n);
			got += (ssize_t)n;
			continue;
		}
		switch (SSL_get_error(conn->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			return got > 0 ? got : -EAGAIN;
		case SSL_ERROR_ZERO_RETURN:
			conn->peer_closed = true;
			break;
		default:
			/* WANT_WRITE cannot happen with our BIO except when
			 * [out] passed its hard bound: fatal too. */
			set_failed(conn);
			break;
		}
	}
}

ssize_t tls_conn_write(struct tls_conn *conn, const void *data, size_t len)
{
	if (conn->failed)
		return -EPROTO;
	if (conn->shutdown_sent || conn->peer_closed)
		return -EPIPE;
	if (len == 0)
		return 0;
	if (!SSL_is_init_finished(conn->ssl))
		return -EAGAIN;

	const uint8_t *p = data;
	size_t done = 0;
	while (done < len && buf_used(&conn->out) < TLS_CONN_OUT_HIGH) {
		size_t chunk = KURA_MIN(len - done, (size_t)16384);
		size_t n = 0;
		ERR_clear_error();
		if (SSL_write_ex(conn->ssl, p + done, chunk, &n) != 1) {
			set_failed(conn);
			break;
		}
		done += n;
	}
	if (done > 0)
		return (ssize_t)done;
	return conn->failed ? -EPROTO : -EAGAIN;
}

size_t tls_conn_take_output(struct tls_conn *conn, struct buf *dst)
{
	size_t n = buf_used(&conn->out);
	if (dst->max != 0)
		n = KURA_MIN(n, dst->max - KURA_MIN(dst->max, buf_used(dst)));
	if (n == 0 || !buf_append(dst, buf_head(&conn->out), n))
		return 0;
	buf_consume(&conn->out, n);
	trim(&conn->out);
	return n;
}

size_t tls_conn_output_pending(const struct tls_conn *conn)
{
	return buf_used(&conn->out);
}

void tls_conn_shutdown(struct tls_conn *conn)
{
	if (conn->shutdown_sent || conn->failed ||
	    !SSL_is_init_finished(conn->ssl))
		return;
	conn->shutdown_sent = true;
	ERR_clear_error();
	if (SSL_shutdown(conn->ssl) < 0)
		ERR_clear_error();
}

bool tls_conn_handshake_done(const struct tls_conn *conn)
{
	return !conn->failed && SSL_is_init_finished(conn->ssl);
}

bool tls_conn_peer_closed(const struct tls_conn *conn)
{
	return conn->peer_closed;
}

bool tls_conn_is_closed(const struct tls_conn *conn)
{
	return conn->failed || conn->peer_closed || conn->shutdown_sent;
}

const char *tls_conn_error(const struct tls_conn *conn)
{
	if (!conn->failed)
		return NULL;
	if (conn->err == 0)
		return "TLS failure";
	const char *r = ERR_reason_error_string(conn->err);
	return r != NULL ? r : "TLS failure";
}

const char *tls_conn_version(const struct tls_conn *conn)
{
	if (!SSL_is_init_finished(conn->ssl))
		return "-";
	return SSL_get_version(conn->ssl);
}

const char *tls_conn_cipher(const struct tls_conn *conn)
{
	if (!SSL_is_init_finished(conn->ssl))
		return "-";
	const char *name = SSL_get_cipher_name(conn->ssl);
	return name != NULL ? name : "-";
}
