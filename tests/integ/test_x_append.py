"""APPEND-side extensions: MULTIAPPEND (RFC 3502) with APPENDUID uid sets
(RFC 4315) and all-or-nothing failure (zero-length cancel, bad second
message, oversized second message), BINARY (RFC 3516: literal8 APPEND with
NUL bytes, FETCH BINARY[] / BINARY.PEEK / BINARY.SIZE decoding base64 and
quoted-printable, partial, UNKNOWN-CTE), APPENDLIMIT (RFC 7889: the
capability value, STATUS APPENDLIMIT, TOOBIG on a private server with
--max-append-size 100K) and STATUS=SIZE (RFC 8438)."""

import base64

from integlib import Lit, crlf, eq, expect, message, parse_imap_date, quote
from test_x_lib import cap_value, lax, need, own_server, raw_cmd, statuses, uid_list, uids_of


def _all_bodies(c, mbox="INBOX"):
	c.select(mbox)
	f = c.ok("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])").fetches()
	return [f[s] for s in sorted(f)]


def _multiappend(c, mbox, parts, nonsync=True):
	"""APPEND mbox with several messages; parts = [(flags str or None,
	date str or None, bytes)].  With nonsync, LITERAL+ in one write;
	otherwise every literal waits for '+'.  Returns the Result."""
	tag = c.next_tag()
	out = tag.encode() + b" APPEND " + quote(mbox).encode()
	pieces = []
	for flags, date, data in parts:
		if flags is not None:
			out += b" (" + flags.encode() + b")"
		if date is not None:
			out += b' "' + date.encode() + b'"'
		out += b" {%d%s}\r\n" % (len(data), b"+" if nonsync else b"")
		pieces.append(out)
		out = data
	pieces.append(out + b"\r\n")
	if nonsync:
		c.send(b"".join(pieces))
		return c.read_until(tag)
	untagged, conts = [], []
	for i, p in enumerate(pieces):
		c.send(p)
		if i == len(pieces) - 1:
			break
		while True:
			line = c.read_response()
			if line.startswith(b"+"):
				conts.append(line)
				break
			if line.startswith(tag.encode() + b" "):
				from integlib import Result
				return Result(tag, line, untagged, conts)
			untagged.append(line)
	return c.read_until(tag, conts, untagged)


# ------------------------------------------------------------ MULTIAPPEND

def test_multiappend_appenduid_set(ctx):
	c = ctx.login()
	if not need(ctx, c, "MULTIAPPEND", "UIDPLUS"):
		return
	c.append("INBOX", message(subject="before"))
	# RFC 3502 example A003 (two messages, the second with flags and a date).
	m1 = crlf("Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\nFrom: Fred Foobar <foobar@Blurdybloop.example.COM>\n"
		  "Subject: afternoon meeting\nTo: mooch@owatagu.example.net\n"
		  "Message-Id: <B27397-0100000@Blurdybloop.example.COM>\nMIME-Version: 1.0\n"
		  "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\nHello Joe, do you think we can meet at 3:30 tomorrow?\n")
	m2 = crlf("Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\nFrom: Joe Mooch <mooch@OWaTaGu.example.net>\n"
		  "Subject: Re: afternoon meeting\nTo: foobar@blurdybloop.example.com\n"
		  "Message-Id: <a0434793874930@OWaTaGu.example.net>\nMIME-Version: 1.0\n"
		  "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\n3:30 is fine with me.\n")
	for nonsync in (False, True):
		r = _multiappend(c, "INBOX", [("\\Seen", None, m1), ("\\Seen", " 7-Feb-1994 22:43:04 -0800", m2),
					      (None, None, message(subject="third"))], nonsync=nonsync)
		eq(r.status, "OK", "MULTIAPPEND of 3 messages (%s) (%r)" % ("LITERAL+" if nonsync else "sync", r))
		if not nonsync:
			eq(len(r.conts), 3, "one continuation per synchronizing literal")
		eq(r.code_name(), "APPENDUID", "MULTIAPPEND response code (%r)" % r)
		_uv, uset = r.code.split()[1:3]
		new = uid_list(uset)
		eq(len(new), 3, "APPENDUID of a 3-message APPEND lists 3 UIDs (%r)" % r)
		expect("*" not in uset, "APPENDUID with '*'")
	got = _all_bodies(c)
	eq(len(got), 7, "messages after two 3-message APPENDs")
	for k in range(2):
		part = got[1 + 3 * k:4 + 3 * k]
		eq([p["BODY[]"] for p in part], [m1, m2, part[2]["BODY[]"]], "order of the appended messages")
		eq([{str(f).lower() for f in p["FLAGS"]} - {"\\recent"} for p in part], [{"\\seen"}, {"\\seen"}, set()],
		   "flags of the appended messages")
		eq(parse_imap_date(part[1]["INTERNALDATE"]), parse_imap_date(" 7-Feb-1994 22:43:04 -0800"),
		   "INTERNALDATE of the second message (%r)" % part[1]["INTERNALDATE"])
	# APPENDUID order = message order; the set holds exactly the new UIDs.
	eq(sorted(int(p["UID"]) for p in got[4:7]), sorted(new), "APPENDUID set vs the new UIDs")
	eq([int(p["UID"]) for p in got[4:7]], new, "APPENDUID in the order the messages were appended")


def test_multiappend_all_or_nothing(ctx):
	c = ctx.login()
	if not need(ctx, c, "MULTIAPPEND"):
		return
	c.ok("CREATE box")
	c.append("box", message(subject="keep"))
	# A syntax error in the second message's flags/date.
	r = _multiappend(c, "box", [(None, None, message(subject="one")),
				    (None, "31-Foo-2020 10:00:00 +0000", message(subject="two"))], nonsync=False)
	expect(r.status in ("BAD", "NO"), "MULTIAPPEND with a bad date on the second message: %r" % r)
	c.ok("NOOP")
	eq(len(_all_bodies(c, "box")), 1, "messages appended by a failed MULTIAPPEND")
	c.ok("UNSELECT")
	# To a missing mailbox: NO [TRYCREATE], nothing created.
	r = _multiappend(c, "nosuch", [(None, None, message()), (None, None, message())], nonsync=False)
	eq((r.status, r.code_name()), ("NO", "TRYCREATE"), "MULTIAPPEND to a missing mailbox (%r)" % r)


def test_multiappend_zero_length_cancels(ctx):
	"""RFC 3502: "A zero-length message literal argument is an error, and
	MUST return a NO.  This can be used to cancel the append." and no
	partial appending is permitted."""
	c = ctx.login()
	if not need(ctx, c, "MULTIAPPEND"):
		return
	c.ok("CREATE box")
	c.append("box", message(subject="keep"))
	r = _multiappend(c, "box", [(None, None, message(subject="one")), (None, None, message(subject="two")),
				    (None, None, b"")], nonsync=False)
	eq(r.status, "NO", "MULTIAPPEND ending in a zero-length literal (%r)" % r)
	eq(len(_all_bodies(c, "box")), 1, "messages appended by a cancelled MULTIAPPEND")
	c.ok("UNSELECT")
	r = _multiappend(c, "box", [(None, None, message(subject="one")), (None, None, b"")], nonsync=True)
	eq(r.status, "NO", "MULTIAPPEND with a zero-length LITERAL+ literal (%r)" % r)
	eq(len(_all_bodies(c, "box")), 1, "messages appended by a cancelled MULTIAPPEND")


def test_multiappend_toobig_second(ctx):
	srv = own_server(ctx, ["--max-append-size", "100K"])
	if srv is None:
		return
	u = ctx.user()
	c = ctx.login_to(srv, u)
	c.append("INBOX", message(subject="keep"))
	big = message(subject="big", body="y" * (110 * 1024))
	r = _multiappend(c, "INBOX", [(None, None, message(subject="small")), (None, None, big)], nonsync=False)
	eq(r.status, "NO", "MULTIAPPEND whose second message exceeds APPENDLIMIT (%r)" % r)
	eq(r.code_name(), "TOOBIG", "response code (%r)" % r)
	c.ok("NOOP")
	eq(len(_all_bodies(c)), 1, "the first message of a refused MULTIAPPEND was kept")


# ------------------------------------------------------------ BINARY

def test_binary_append_literal8_with_nul(ctx):
	c = ctx.login()
	if not need(ctx, c, "BINARY"):
		return
	payload = bytes(range(256)) * 4 + b"\x00\x00end\x00"
	msg = crlf("From: a@example.org\nSubject: binary\nMIME-Version: 1.0\n"
		   "Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n") + payload
	tag = c.next_tag()
	c.send(b"%s APPEND INBOX (\\Seen) ~{%d}\r\n" % (tag.encode(), len(msg)))
	line = c.read_response()
	expect(line.startswith(b"+"), "no continuation for a literal8 APPEND: %r" % line)
	c.send(msg + b"\r\n")
	r = c.read_until(tag)
	eq(r.status, "OK", "APPEND with a literal8 containing NUL bytes (%r)" % r)
	# LITERAL+ form ~{n+}.
	r = raw_cmd(c, b"APPEND INBOX ~{%d+}\r\n" % len(msg) + msg)
	eq(r.status, "OK", "APPEND with a non-synchronizing literal8 (%r)" % r)
	c.select("INBOX")
	for seq in (1, 2):
		r = c.ok("FETCH %d (BINARY.PEEK[1] BINARY.SIZE[1])" % seq)
		f = r.fetches()[seq]
		eq(f["BINARY[1]"], payload, "BINARY[1] of an appended binary part (message %d)" % seq)
		eq(int(f["BINARY.SIZE[1]"]), len(payload), "BINARY.SIZE[1]")
		expect(b"~{%d}" % len(payload) in b"".join(r.untagged),
		       "decoded data with NUL must come as a literal8: %r" % r.untagged[0][:80])
	# BINARY[] returns the stored message exactly.
	r = c.ok("FETCH 1 (BINARY.PEEK[])")
	eq(r.fetches()[1]["BINARY[]"], msg, "BINARY[] of the whole message")
	# BINARY (not PEEK) sets \Seen on message 2.
	r = c.ok("FETCH 2 (BINARY[1]<0.16>)")
	f = r.fetches()[2]
	eq(f.get("BINARY[1]<0>"), payload[:16], "partial BINARY[1]<0.16>")
	fl = c.ok("FETCH 2 (FLAGS)").fetches()[2]["FLAGS"]
	expect("\\seen" in {str(x).lower() for x in fl}, "FETCH BINARY did not set \\Seen: %r" % fl)
	# BODY[] must describe the content in a CTE of the base protocol (RFC
	# 3516 6), so no NUL in a plain literal (the suite's grammar check).
	c.ok("FETCH 1 (BODYSTRUCTURE BODY.PEEK[])")


MIME = crlf("""From: a@example.org
Subject: mime
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 cr=C3=A8me, a soft=
 break and =3D sign
--b1
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

""") + base64.encodebytes(bytes(range(256))).replace(b"\n", b"\r\n") + crlf("""--b1
Content-Type: text/plain
Content-Transfer-Encoding: 7bit

plain seven bit
--b1
Content-Type: application/x-strange
Content-Transfer-Encoding: x-unknown-encoding

zzzz
--b1--
""")


def test_binary_fetch_decodes(ctx):
	c = ctx.login()
	if not need(ctx, c, "BINARY"):
		return
	c.append("INBOX", MIME)
	c.select("INBOX")
	# The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1).
	qp = "café crème, a soft break and = sign".encode()
	r = c.ok("FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3] BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3])")
	f = r.fetches()[1]
	eq(f["BINARY[1]"], qp, "BINARY[1] decodes quoted-printable")
	eq(f["BINARY[2]"], bytes(range(256)), "BINARY[2] decodes base64")
	eq(f["BINARY[3]"], b"plain seven bit", "BINARY[3] of a 7bit part")
	eq([int(f["BINARY.SIZE[%d]" % i]) for i in (1, 2, 3)], [len(qp), 256, 15], "BINARY.SIZE")
	# Partial on decoded data.
	r = c.ok("FETCH 1 (BINARY.PEEK[2]<250.10> BINARY.PEEK[1]<0.4>)")
	f = r.fetches()[1]
	eq(f["BINARY[2]<250>"], bytes(range(250, 256)), "BINARY[2]<250.10> (past the end)")
	eq(f["BINARY[1]<0>"], "café".encode()[:4], "BINARY[1]<0.4> counts decoded octets")
	# Unknown transfer encoding: NO [UNKNOWN-CTE].
	r = c.cmd("FETCH 1 (BINARY.PEEK[4])")
	eq((r.status, r.code_name()), ("NO", "UNKNOWN-CTE"), "BINARY of an unknown CTE (%r)" % r)
	r = c.cmd("FETCH 1 (BINARY.SIZE[4])")
	eq((r.status, r.code_name()), ("NO", "UNKNOWN-CTE"), "BINARY.SIZE of an unknown CTE (%r)" % r)
	# UID FETCH form and a bad section.
	r = c.ok("UID FETCH 1:* (BINARY.SIZE[2])")
	eq(int(r.fetches()[1]["BINARY.SIZE[2]"]), 256, "UID FETCH BINARY.SIZE")
	r = c.cmd("FETCH 1 (BINARY[1.MIME])")
	eq(r.status, "BAD", "BINARY with a non-numeric section (%r)" % r)


# ------------------------------------------------------------ APPENDLIMIT, STATUS=SIZE

def test_appendlimit_capability_and_status(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "APPENDLIMIT"):
		return
	v = cap_value(c, "APPENDLIMIT")
	c.ok("CREATE box")
	r = c.ok("STATUS box (APPENDLIMIT MESSAGES)")
	st = statuses(r)["box"]
	expect("APPENDLIMIT" in st, "STATUS (APPENDLIMIT) lacks the item: %r" % r.untagged)
	if v:
		expect(v.isdigit(), "APPENDLIMIT=%r is not a number" % v)
		eq(st["APPENDLIMIT"], v, "STATUS APPENDLIMIT vs the global APPENDLIMIT=%s" % v)
		if ctx.kind == "kura":
			eq(int(v), 64 * 1024 * 1024, "APPENDLIMIT of the default --max-append-size 64M")
	else:
		expect(st["APPENDLIMIT"] is None or st["APPENDLIMIT"].isdigit(), "STATUS APPENDLIMIT: %r" % st)


def test_appendlimit_enforced(ctx):
	srv = own_server(ctx, ["--max-append-size", "100K"])
	if srv is None:
		return
	c = lax(ctx.login_to(srv, ctx.user()))
	eq(cap_value(c, "APPENDLIMIT"), str(100 * 1024), "APPENDLIMIT with --max-append-size 100K")
	eq(statuses(c.ok("STATUS INBOX (APPENDLIMIT)"))["INBOX"]["APPENDLIMIT"], str(100 * 1024),
	   "STATUS APPENDLIMIT with --max-append-size 100K")
	exact = message(subject="fits")
	exact += b"z" * (100 * 1024 - len(exact))
	c.append("INBOX", exact)
	r = c.cmd("APPEND INBOX ", Lit(exact + b"z"))
	eq((r.status, r.code_name()), ("NO", "TOOBIG"), "APPEND one octet over APPENDLIMIT (%r)" % r)
	c.ok("NOOP")
	c.select("INBOX")
	eq(len(uids_of(c)), 1, "messages after the refused APPEND")


def test_status_size(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "STATUS=SIZE"):
		return
	c.ok("CREATE s")
	eq(statuses(c.ok("STATUS s (SIZE)"))["s"], {"SIZE": "0"}, "STATUS SIZE of an empty mailbox")
	msgs = [message(subject="a", body="x" * 1000 + "\n"), message(subject="b"), message(body="\u00e4" * 100 + "\n")]
	for m in msgs:
		c.append("s", m)
	want = sum(len(m) for m in msgs)
	r = c.ok("STATUS s (MESSAGES SIZE)")
	eq(statuses(r)["s"], {"MESSAGES": "3", "SIZE": str(want)}, "STATUS (MESSAGES SIZE)")
	c.select("s")
	f = c.ok("FETCH 1:* (RFC822.SIZE)").fetches()
	eq(sum(int(x["RFC822.SIZE"]) for x in f.values()), want, "sum of RFC822.SIZE")
	c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE")
	c.ok("UNSELECT")
	eq(statuses(c.ok("STATUS s (SIZE)"))["s"]["SIZE"], str(len(msgs[0]) + len(msgs[2])), "STATUS SIZE after EXPUNGE")
