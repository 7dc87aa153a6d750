/* Tests imapd/tls entirely in memory: an OpenSSL client over memory BIOs
 * talks to a tls_conn; certificates come from scripts/make-cert.sh. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imapd/tls.h"
#include "lib/buf.h"
#include "tests/unit/test.h"

static char dir[] = "/tmp/kura-test-tls.XXXXXX";
static char cert[300], key[300], cert2[300], key2[300];

struct pair {
	SSL_CTX *cctx;
	SSL *c;
	BIO *c_in;		/* server -> client ciphertext */
	BIO *c_out;		/* client -> server ciphertext */
	struct tls_conn *s;
	struct buf c2s;		/* client ciphertext not yet fed */
	struct buf s_plain;	/* plaintext the server read */
	struct buf c_plain;	/* plaintext the client read */
	size_t chunk;		/* bytes fed per tls_conn_feed() */
	ssize_t s_rc;		/* last tls_conn_read() result */
	bool c_failed, c_closed;
	size_t fed;		/* ciphertext bytes the server took */
	size_t max_out;		/* largest tls_conn_output_pending() seen */
};

static struct tls_ctx *sctx;

/* Client context: versions [minv, maxv], optional TLS 1.2 cipher list and
 * ALPN list (wire format). */
static SSL_CTX *client_ctx(int minv, int maxv, const char *ciphers,
			   const unsigned char *alpn, unsigned alpn_len)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (minv < TLS1_2_VERSION) {
		SSL_CTX_set_security_level(c, 0);
		SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
	}
	SSL_CTX_set_min_proto_version(c, minv);
	SSL_CTX_set_max_proto_version(c, maxv);
	if (ciphers != NULL)
		SSL_CTX_set_cipher_list(c, ciphers);
	if (alpn != NULL)
		SSL_CTX_set_alpn_protos(c, alpn, alpn_len);
	/* The test certificate is self-signed: trust exactly it. */
	SSL_CTX_load_verify_locations(c, cert, NULL);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	return c;
}

static void pair_init(struct pair *p, SSL_CTX *cctx, SSL_SESSION *sess)
{
	memset(p, 0, sizeof(*p));
	p->cctx = cctx;
	p->c = SSL_new(cctx);
	p->c_in = BIO_new(BIO_s_mem());
	p->c_out = BIO_new(BIO_s_mem());
	SSL_set_bio(p->c, p->c_in, p->c_out);
	SSL_set_connect_state(p->c);
	SSL_set_tlsext_host_name(p->c, "localhost");
	SSL_set1_host(p->c, "localhost");
	if (sess != NULL)
		SSL_set_session(p->c, sess);
	p->s = tls_conn_create(sctx);
	buf_init(&p->c2s, 0);
	buf_init(&p->s_plain, 0);
	buf_init(&p->c_plain, 0);
	p->chunk = 4096;
	p->s_rc = -EAGAIN;
}

static void pair_deinit(struct pair *p)
{
	SSL_free(p->c);
	tls_conn_destroy(&p->s);
	buf_deinit(&p->c2s);
	buf_deinit(&p->s_plain);
	buf_deinit(&p->c_plain);
}

/* Moves bytes both ways until nothing moves. Returns the number of
 * rounds that moved something. */
static int pump(struct pair *p)
{
	int rounds = 0;
	for (int iter = 0; iter < 100000; iter++) {
		bool moved = false;
		uint8_t tmp[16384];

		/* client -> server */
		int n;
		while ((n = BIO_read(p->c_out, tmp, sizeof(tmp))) > 0)
			buf_append(&p->c2s, tmp, (size_t)n);
		if (buf_used(&p->c2s) > 0) {
			size_t len = buf_used(&p->c2s);
			if (len > p->chunk)
				len = p->chunk;
			ssize_t a = tls_conn_feed(p->s, buf_head(&p->c2s), len);
			if (a > 0) {
				buf_consume(&p->c2s, (size_t)a);
				p->fed += (size_t)a;
				moved = true;
			}
		}
		ssize_t r = tls_conn_read(p->s, &p->s_plain);
		if (r != -EAGAIN || p->s_rc != r)
			p->s_rc = r;
		if (r > 0)
			moved = true;
		size_t pend = tls_conn_output_pending(p->s);
		if (pend > p->max_out)
			p->max_out = pend;

		/* server -> client */
		struct buf out;
		buf_init(&out, 0);
		if (tls_conn_take_output(p->s, &out) > 0) {
			BIO_write(p->c_in, buf_head(&out), (int)buf_used(&out));
			moved = true;
		}
		buf_deinit(&out);

		if (!p->c_failed && !p->c_closed) {
			if (!SSL_is_init_finished(p->c)) {
				int h = SSL_do_handshake(p->c);
				if (h <= 0) {
					int e = SSL_get_error(p->c, h);
					if (e != SSL_ERROR_WANT_READ)
						p->c_failed = true;
				}
			}
			if (SSL_is_init_finished(p->c)) {
				size_t got;
				while (SSL_read_ex(p->c, tmp, sizeof(tmp), &got) == 1) {
					buf_append(&p->c_plain, tmp, got);
					moved = true;
				}
				int e = SSL_get_error(p->c, 0);
				if (e == SSL_ERROR_ZERO_RETURN)
					p->c_closed = true;
				else if (e != SSL_ERROR_WANT_READ)
					p->c_failed = true;
			}
			ERR_clear_error();
		}
		if (BIO_pending(p->c_out) > 0)
			moved = true;
		if (!moved)
			break;
		rounds++;
	}
	return rounds;
}

static bool handshake(struct pair *p)
{
	pump(p);
	return tls_conn_handshake_done(p->s) && SSL_is_init_finished(p->c) &&
		!p->c_failed;
}

/* Server writes len bytes (respecting -EAGAIN), client must get them. */
static bool server_sends(struct pair *p, const uint8_t *data, size_t len)
{
	size_t done = 0;
	buf_reset(&p->c_plain);
	int stuck = 0;
	while (done < len) {
		ssize_t w = tls_conn_write(p->s, data + done, len - done);
		if (w > 0) {
			done += (size_t)w;
			stuck = 0;
		} else if (w == -EAGAIN) {
			if (++stuck > 3)
				return false;
		} else {
			return false;
		}
		size_t pend = tls_conn_output_pending(p->s);
		if (pend > p->max_out)
			p->max_out = pend;
		pump(p);
	}
	pump(p);
	return buf_used(&p->c_plain) == len &&
		memcmp(buf_head(&p->c_plain), data, len) == 0;
}

static bool client_sends(struct pair *p, const uint8_t *data, size_t len)
{
	buf_reset(&p->s_plain);
	size_t done = 0;
	while (done < len) {
		size_t w;
		if (SSL_write_ex(p->c, data + done, len - done, &w) != 1)
			return false;
		done += w;
		pump(p);
	}
	pump(p);
	return buf_used(&p->s_plain) == len &&
		memcmp(buf_head(&p->s_plain), data, len) == 0;
}

static void fill_pattern(uint8_t *b, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
}

static void test_exchange(int version, const char *label)
{
	SSL_CTX *cctx = client_ctx(version, version, NULL, NULL, 0);
	struct pair p;
	pair_init(&p, cctx, NULL);

	/* Nothing to send before the handshake. */
	CHECK_EQ_INT(tls_conn_write(p.s, "x", 1), -EAGAIN);
	CHECK(!tls_conn_handshake_done(p.s));
	CHECK_EQ_STR(tls_conn_version(p.s), "-");

	CHECK(handshake(&p));
	CHECK_EQ_STR(tls_conn_version(p.s), label);
	CHECK_EQ_STR(SSL_get_version(p.c), label);
	const char *cipher = tls_conn_cipher(p.s);
	if (version == TLS1_2_VERSION) {
		CHECK(strncmp(cipher, "ECDHE-", 6) == 0);
		CHECK(strstr(cipher, "GCM") != NULL ||
		      strstr(cipher, "CHACHA20") != NULL);
	} else {
		CHECK(strncmp(cipher, "TLS_", 4) == 0);
	}
	CHECK_EQ_INT(SSL_get_verify_result(p.c), X509_V_OK);
	CHECK(!tls_conn_is_closed(p.s));
	CHECK(tls_conn_error(p.s) == NULL);
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), -EAGAIN);

	/* Small messages both ways. */
	static const char greet[] = "* OK kura ready\r\n";
	static const char cmd[] = "a001 LOGIN alice secret\r\n";
	CHECK(server_sends(&p, (const uint8_t *)greet, strlen(greet)));
	CHECK(client_sends(&p, (const uint8_t *)cmd, strlen(cmd)));

	/* Large transfers: [out] stays bounded, everything arrives. */
	size_t big = 1 << 20;
	uint8_t *data = malloc(big);
	fill_pattern(data, big, 7);
	p.max_out = 0;
	CHECK(server_sends(&p, data, big));
	CHECK(p.max_out <= TLS_CONN_OUT_MAX);
	CHECK(p.max_out > 0);
	fill_pattern(data, 300000, 9);
	CHECK(client_sends(&p, data, 300000));

	/* [in] is bounded: one huge feed takes at most TLS_CONN_IN_MAX. */
	size_t w;
	SSL_write_ex(p.c, data, 200000, &w);
	uint8_t *ct = malloc(400000);
	int n = BIO_read(p.c_out, ct, 400000);
	CHECK(n > 200000);
	ssize_t a = tls_conn_feed(p.s, ct, (size_t)n);
	CHECK(a > 0 && a <= TLS_CONN_IN_MAX);
	CHECK_EQ_INT(tls_conn_feed(p.s, ct + a, (size_t)n - (size_t)a), 0);
	/* Draining [in] makes room again; the rest arrives intact. */
	buf_reset(&p.s_plain);
	size_t off = (size_t)a;
	while (off < (size_t)n || tls_conn_read(p.s, &p.s_plain) > 0) {
		tls_conn_read(p.s, &p.s_plain);
		ssize_t f = tls_conn_feed(p.s, ct + off, (size_t)n - off);
		if (f < 0)
			break;
		off += (size_t)f;
	}
	while (tls_conn_read(p.s, &p.s_plain) > 0)
		;
	CHECK_EQ_INT(buf_used(&p.s_plain), 200000);
	CHECK(memcmp(buf_head(&p.s_plain), data, 200000) == 0);
	free(ct);

	/* A bounded destination: partial reads, then -ENOBUFS. */
	struct buf small;
	buf_init(&small, 10);
	SSL_write_ex(p.c, "0123456789abcdef", 16, &w);
	n = BIO_read(p.c_out, data, 1000);
	CHECK_EQ_INT(tls_conn_feed(p.s, data, (size_t)n), n);
	CHECK_EQ_INT(tls_conn_read(p.s, &small), 10);
	CHECK_EQ_INT(tls_conn_read(p.s, &small), -ENOBUFS);
	buf_consume(&small, 10);
	CHECK_EQ_INT(tls_conn_read(p.s, &small), 6);
	CHECK(memcmp(buf_head(&small), "abcdef", 6) == 0);
	CHECK_EQ_INT(tls_conn_read(p.s, &small), -EAGAIN);
	buf_deinit(&small);
	free(data);

	pair_deinit(&p);
	SSL_CTX_free(cctx);
}

static void test_byte_at_a_time(void)
{
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, 0, NULL, NULL, 0);
	struct pair p;
	pair_init(&p, cctx, NULL);
	p.chunk = 1;
	CHECK(handshake(&p));
	CHECK(client_sends(&p, (const uint8_t *)"a NOOP\r\n", 8));
	CHECK(server_sends(&p, (const uint8_t *)"a OK\r\n", 6));
	pair_deinit(&p);
	SSL_CTX_free(cctx);
}

static void test_refused(void)
{
	/* TLS 1.1: refused with an alert, and the server says why. */
	SSL_CTX *cctx = client_ctx(TLS1_1_VERSION, TLS1_1_VERSION, NULL, NULL, 0);
	struct pair p;
	pair_init(&p, cctx, NULL);
	pump(&p);
	CHECK(p.fed > 0);	/* a ClientHello did reach the server */
	CHECK_EQ_INT(p.s_rc, -EPROTO);
	CHECK(!tls_conn_handshake_done(p.s));
	CHECK(tls_conn_is_closed(p.s));
	CHECK(tls_conn_error(p.s) != NULL);
	CHECK(p.c_failed);
	CHECK(!SSL_is_init_finished(p.c));
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), -EPROTO);
	CHECK_EQ_INT(tls_conn_feed(p.s, "x", 1), -EPROTO);
	CHECK_EQ_INT(tls_conn_write(p.s, "x", 1), -EPROTO);
	pair_deinit(&p);
	SSL_CTX_free(cctx);

	/* TLS 1.2 without ECDHE suites: no shared cipher. */
	cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION,
			  "AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256", NULL, 0);
	pair_init(&p, cctx, NULL);
	pump(&p);
	CHECK_EQ_INT(p.s_rc, -EPROTO);
	CHECK(p.c_failed);
	pair_deinit(&p);
	SSL_CTX_free(cctx);

	/* ALPN: "imap" is chosen; a client asking only for http/1.1 is
	 * talking to the wrong server. */
	static const unsigned char alpn_ok[] = "\x08http/1.1\x04imap";
	cctx = client_ctx(TLS1_2_VERSION, 0, NULL, alpn_ok, sizeof(alpn_ok) - 1);
	pair_init(&p, cctx, NULL);
	CHECK(handshake(&p));
	const unsigned char *sel;
	unsigned sel_len;
	SSL_get0_alpn_selected(p.c, &sel, &sel_len);
	CHECK(sel_len == 4 && memcmp(sel, "imap", 4) == 0);
	pair_deinit(&p);
	SSL_CTX_free(cctx);

	static const unsigned char alpn_bad[] = "\x08http/1.1";
	cctx = client_ctx(TLS1_2_VERSION, 0, NULL, alpn_bad, sizeof(alpn_bad) - 1);
	pair_init(&p, cctx, NULL);
	pump(&p);
	CHECK_EQ_INT(p.s_rc, -EPROTO);
	CHECK(p.c_failed);
	pair_deinit(&p);
	SSL_CTX_free(cctx);
}

static void test_close(int version)
{
	SSL_CTX *cctx = client_ctx(version, version, NULL, NULL, 0);
	struct pair p;

	/* Client sends data then close_notify in one flight: the data
	 * comes first, then 0, and 0 again. */
	pair_init(&p, cctx, NULL);
	CHECK(handshake(&p));
	size_t w;
	SSL_write_ex(p.c, "a LOGOUT\r\n", 10, &w);
	SSL_shutdown(p.c);
	uint8_t ct[4096];
	int n = BIO_read(p.c_out, ct, sizeof(ct));
	CHECK_EQ_INT(tls_conn_feed(p.s, ct, (size_t)n), n);
	buf_reset(&p.s_plain);
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), 10);
	CHECK(tls_conn_peer_closed(p.s));
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), 0);
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), 0);
	CHECK(tls_conn_is_closed(p.s));
	CHECK(tls_conn_error(p.s) == NULL);
	CHECK_EQ_INT(tls_conn_write(p.s, "x", 1), -EPIPE);
	/* Bytes after close_notify are dropped. */
	CHECK_EQ_INT(tls_conn_feed(p.s, "junk", 4), 4);
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), 0);
	/* Our close_notify can still be sent in answer. */
	tls_conn_shutdown(p.s);
	struct buf out;
	buf_init(&out, 0);
	CHECK(tls_conn_take_output(p.s, &out) > 0);
	buf_deinit(&out);
	pair_deinit(&p);

	/* Server closes: the client sees close_notify. */
	pair_init(&p, cctx, NULL);
	CHECK(handshake(&p));
	CHECK(server_sends(&p, (const uint8_t *)"* BYE\r\n", 7));
	tls_conn_shutdown(p.s);
	tls_conn_shutdown(p.s);	/* idempotent */
	CHECK(tls_conn_is_closed(p.s));
	CHECK(!tls_conn_peer_closed(p.s));
	CHECK_EQ_INT(tls_conn_write(p.s, "x", 1), -EPIPE);
	pump(&p);
	CHECK(p.c_closed);
	CHECK(SSL_get_shutdown(p.c) & SSL_RECEIVED_SHUTDOWN);
	pair_deinit(&p);

	/* Shutdown before the handshake: nothing to send, no crash. */
	pair_init(&p, cctx, NULL);
	tls_conn_shutdown(p.s);
	CHECK_EQ_INT(tls_conn_output_pending(p.s), 0);
	pair_deinit(&p);
	SSL_CTX_free(cctx);
}

static void test_resume(void)
{
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, 0, NULL, NULL, 0);
	struct pair p;
	pair_init(&p, cctx, NULL);
	CHECK(handshake(&p));
	CHECK(server_sends(&p, (const uint8_t *)"hi\r\n", 4));
	SSL_SESSION *sess = SSL_get1_session(p.c);
	CHECK(sess != NULL);
	/* A client that just drops the connection makes OpenSSL mark its
	 * session not resumable: close properly. */
	SSL_shutdown(p.c);
	pair_deinit(&p);

	pair_init(&p, cctx, sess);
	CHECK(handshake(&p));
	CHECK(SSL_session_reused(p.c));
	pair_deinit(&p);
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);
}

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static void test_garbage(void)
{
	struct buf plain;
	buf_init(&plain, 1 << 20);

	/* Plain IMAP or HTTP spoken to the TLS port, broken records. */
#define T(s) { s, sizeof(s) - 1 }
	static const struct { const char *p; size_t len; } texts[] = {
		T("a001 CAPABILITY\r\n"),
		T("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
		T("\x16\x03\x01\x00\x05hello"),	/* junk handshake message */
		T("\x17\x03\x03\x00\x10" "0123456789abcdef"),	/* app data first */
		T("\x16\x03\x01\xff\xff"),	/* record too long */
	};
#undef T
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct tls_conn *c = tls_conn_create(sctx);
		size_t len = texts[i].len;
		CHECK_EQ_INT(tls_conn_feed(c, texts[i].p, len), (ssize_t)len);
		ssize_t r = tls_conn_read(c, &plain);
		if (i == 4 && r == -EAGAIN) {
			/* A too-long record may be detected only as it
			 * arrives: give it more. */
			char junk[20000];
			memset(junk, 'j', sizeof(junk));
			tls_conn_feed(c, junk, sizeof(junk));
			r = tls_conn_read(c, &plain);
		}
		CHECK_EQ_INT(r, -EPROTO);
		CHECK(tls_conn_error(c) != NULL);
		CHECK(tls_conn_is_closed(c));
		CHECK(!tls_conn_handshake_done(c));
		struct buf out;
		buf_init(&out, 0);
		tls_conn_take_output(c, &out);	/* an alert, maybe */
		CHECK(buf_used(&out) < 100);
		buf_deinit(&out);
		CHECK_EQ_INT(tls_conn_read(c, &plain), -EPROTO);
		tls_conn_destroy(&c);
		CHECK(c == NULL);
	}

	/* Random bytes, some behind a plausible record header, fed in
	 * random pieces: every connection ends waiting or failed. */
	int failed = 0, waiting = 0, other = 0;
	for (int i = 0; i < 300; i++) {
		struct tls_conn *c = tls_conn_create(sctx);
		uint8_t junk[3000];
		size_t len = 1 + rnd() % sizeof(junk);
		for (size_t k = 0; k < len; k++)
			junk[k] = (uint8_t)rnd();
		if (i % 2 == 0 && len > 5) {
			junk[0] = 0x16;
			junk[1] = 3;
			junk[2] = (uint8_t)(rnd() % 4);
		}
		size_t off = 0;
		ssize_t r = -EAGAIN;
		while (off < len && r == -EAGAIN) {
			size_t piece = 1 + rnd() % 700;
			if (piece > len - off)
				piece = len - off;
			ssize_t a = tls_conn_feed(c, junk + off, piece);
			if (a < 0) {
				r = a;
				break;
			}
			off += (size_t)a;
			r = tls_conn_read(c, &plain);
		}
		if (r == -EPROTO)
			failed++;
		else if (r == -EAGAIN)
			waiting++;
		else
			other++;
		tls_conn_destroy(&c);
	}
	CHECK_EQ_INT(other, 0);
	CHECK(failed > 200);

	/* A flipped bit in an established session: bad record MAC. */
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, 0, NULL, NULL, 0);
	struct pair p;
	pair_init(&p, cctx, NULL);
	CHECK(handshake(&p));
	size_t w;
	SSL_write_ex(p.c, "a001 NOOP\r\n", 11, &w);
	uint8_t ct[512];
	int n = BIO_read(p.c_out, ct, sizeof(ct));
	ct[n - 3] ^= 0x40;
	tls_conn_feed(p.s, ct, (size_t)n);
	buf_reset(&p.s_plain);
	CHECK_EQ_INT(tls_conn_read(p.s, &p.s_plain), -EPROTO);
	CHECK_EQ_INT(buf_used(&p.s_plain), 0);
	CHECK(tls_conn_error(p.s) != NULL);
	pair_deinit(&p);
	SSL_CTX_free(cctx);
	buf_deinit(&plain);
}

static void test_ctx_errors(void)
{
	const char *error = NULL;
	CHECK(tls_ctx_create("/nonexistent/cert.pem", key, &error) == NULL);
	CHECK(error != NULL && strstr(error, "/nonexistent/cert.pem") != NULL);
	CHECK(tls_ctx_create(cert, "/nonexistent/key.pem", &error) == NULL);
	CHECK(error != NULL && strstr(error, "/nonexistent/key.pem") != NULL);
	CHECK(tls_ctx_create(cert, key2, &error) == NULL);
	if (error != NULL && strstr(error, "mismatch") == NULL)
		fprintf(stderr, "  error: %s\n", error);
	CHECK(error != NULL && strstr(error, "mismatch") != NULL);
	/* A key file given as the certificate. */
	CHECK(tls_ctx_create(key, key, &error) == NULL);

	/* A context destroyed while a connection lives on. */
	struct tls_ctx *c2 = tls_ctx_create(cert2, key2, &error);
	CHECK(c2 != NULL);
	struct tls_conn *conn = tls_conn_create(c2);
	tls_ctx_destroy(&c2);
	CHECK(c2 == NULL);
	CHECK_EQ_INT(tls_conn_feed(conn, "x", 1), 1);
	tls_conn_destroy(&conn);
	tls_ctx_destroy(&c2);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	char cmd[700];
	snprintf(cmd, sizeof(cmd),
		 "sh scripts/make-cert.sh '%s/a' && sh scripts/make-cert.sh '%s/b'",
		 dir, dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_tls: scripts/make-cert.sh failed "
			"(run from the repository root; needs openssl)\n");
		CHECK(0);
		return test_done("tls");
	}
	snprintf(cert, sizeof(cert), "%s/a/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/a/key.pem", dir);
	snprintf(cert2, sizeof(cert2), "%s/b/cert.pem", dir);
	snprintf(key2, sizeof(key2), "%s/b/key.pem", dir);

	/* make-cert.sh leaves existing files alone. */
	char before[4096], after[4096];
	FILE *fp = fopen(cert, "r");
	size_t nb = fread(before, 1, sizeof(before), fp);
	fclose(fp);
	CHECK(system(cmd) == 0);
	fp = fopen(cert, "r");
	size_t na = fread(after, 1, sizeof(after), fp);
	fclose(fp);
	CHECK(na == nb && memcmp(before, after, na) == 0);

	const char *error = NULL;
	sctx = tls_ctx_create(cert, key, &error);
	CHECK(sctx != NULL);
	if (sctx == NULL) {
		fprintf(stderr, "tls_ctx_create: %s\n", error);
		return test_done("tls");
	}
	test_exchange(TLS1_3_VERSION, "TLSv1.3");
	test_exchange(TLS1_2_VERSION, "TLSv1.2");
	test_byte_at_a_time();
	test_refused();
	test_close(TLS1_3_VERSION);
	test_close(TLS1_2_VERSION);
	test_resume();
	test_garbage();
	test_ctx_errors();
	tls_ctx_destroy(&sctx);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_done("tls");
}
