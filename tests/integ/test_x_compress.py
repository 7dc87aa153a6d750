"""COMPRESS=DEFLATE (RFC 4978): after "COMPRESS DEFLATE" both directions
are raw DEFLATE streams (zlib wbits -15) starting right after the tagged
OK; commands, literals (APPEND), large FETCH responses, IDLE pushes and
pipelined commands pass through it; a second COMPRESS is refused; it also
works over implicit TLS and after STARTTLS."""

import base64
import os

from integlib import Lit, eq, expect, message, parse
from test_x_lib import ZSock, compress, idle_done, idle_start, need, wait_for


def _check_roundtrip(c, u):
	"""APPEND, SELECT and FETCH through the compressed stream."""
	msg = message(subject="through deflate", body="Hello through DEFLATE.\n" * 2000)
	uid = c.append("INBOX", msg)
	expect(uid, "APPEND through COMPRESS without APPENDUID")
	c.select("INBOX")
	r = c.ok("UID FETCH %d (BODY.PEEK[] RFC822.SIZE)" % uid)
	f = r.fetches()[1]
	eq(f["BODY[]"], msg, "message fetched through COMPRESS")
	eq(int(f["RFC822.SIZE"]), len(msg), "RFC822.SIZE through COMPRESS")
	return msg


def test_compress_deflate(ctx):
	u = ctx.user()
	c = ctx.login(u)
	if not need(ctx, c, "COMPRESS=DEFLATE"):
		return
	compress(c)
	expect(isinstance(c.sock, ZSock), "compression layer")
	r = c.ok("NOOP")
	r = c.ok("CAPABILITY")
	_check_roundtrip(c, u)
	z = c.sock
	expect(z.raw_in < z.plain_in / 4, "a highly repetitive 46 KB message came at %d raw octets for %d plain:"
	       " the server does not compress" % (z.raw_in, z.plain_in))
	# Many small pipelined commands: each response must be flushed.
	c.send("".join("P%d NOOP\r\n" % i for i in range(50)))
	for i in range(50):
		eq(c.read_until("P%d" % i).status, "OK", "pipelined NOOP %d through COMPRESS" % i)
	# A second COMPRESS: BAD (or NO [COMPRESSIONACTIVE]) and still compressed after.
	r = c.cmd("COMPRESS DEFLATE")
	expect(r.status == "BAD" or (r.status == "NO" and r.code_name() == "COMPRESSIONACTIVE"),
	       "second COMPRESS DEFLATE: %r" % r)
	c.ok("NOOP")
	# A 2 MB incompressible message.
	blob = os.urandom(1500000)
	big = message(subject="random", body=base64.encodebytes(blob).decode())
	uid = c.append("INBOX", big)
	r = c.ok("UID FETCH %d (BODY.PEEK[])" % uid)
	eq(r.fetches()[2]["BODY[]"], big, "2 MB random message through COMPRESS")
	r = c.cmd("LOGOUT")
	eq(r.status, "OK", "LOGOUT through COMPRESS")
	expect(any(line.startswith(b"* BYE") for line in r.untagged), "BYE through COMPRESS: %r" % r.untagged)


def test_compress_arguments(ctx):
	c = ctx.conn()
	r = c.cmd("COMPRESS DEFLATE")
	expect(r.status in ("BAD", "NO"), "COMPRESS before authentication: %r" % r)
	c.login(ctx.user())
	if not need(ctx, c, "COMPRESS=DEFLATE"):
		return
	for bad in ("COMPRESS", "COMPRESS GZIP", "COMPRESS DEFLATE extra"):
		r = c.cmd(bad)
		eq(r.status, "BAD", "%s (%r)" % (bad, r))
	c.ok("NOOP")	# still uncompressed
	r = c.cmd("COMPRESS deflate")	# case-insensitive atom
	eq(r.status, "OK", "COMPRESS deflate (%r)" % r)
	pending, c.buf = c.buf, b""
	c.sock = ZSock(c.sock, pending)
	c.ok("NOOP")


def test_compress_with_idle(ctx):
	u = ctx.user()
	c = ctx.login(u)
	if not need(ctx, c, "COMPRESS=DEFLATE", "IDLE"):
		return
	compress(c)
	c.select("INBOX")
	tag, _ = idle_start(c)
	o = ctx.login(u)
	o.append("INBOX", message(subject="pushed"))
	got, ok, secs = wait_for(c, lambda l: l.upper().rstrip(b"\r\n").endswith(b" EXISTS"), 5)
	expect(ok, "EXISTS did not come through the compressed stream during IDLE (not flushed?): %r" % got)
	expect(secs <= 1.0, "EXISTS through COMPRESS took %.2f s" % secs)
	idle_done(c, tag)


def test_compress_over_implicit_tls(ctx):
	c = ctx.conn(tls=True)
	c.login(ctx.user())
	if not need(ctx, c, "COMPRESS=DEFLATE"):
		return
	compress(c)
	_check_roundtrip(c, c.user)


def test_compress_after_starttls(ctx):
	c = ctx.conn()
	c.starttls()
	c.login(ctx.user())
	if not need(ctx, c, "COMPRESS=DEFLATE"):
		return
	compress(c)
	_check_roundtrip(c, c.user)
	# Pipelined STATUS/LIST with a literal mailbox name through both layers.
	c.ok("CREATE ", Lit("lit box"))
	r = c.ok('LIST "" "lit*"')
	eq([parse(u)[4] for u in r.untagged], [b"lit box"], "LIST through TLS+COMPRESS")
