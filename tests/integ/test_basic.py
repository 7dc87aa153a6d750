"""Connection-level behaviour: greeting, CAPABILITY, NOOP, LOGOUT, LOGIN,
AUTHENTICATE, STARTTLS, implicit TLS, command states, bad input, literal
limits, pipelining, NAMESPACE, ID, ENABLE (RFC 3501, 2088, 2342, 2971,
3691, 4959, 5161, 5530)."""

import base64
import imaplib
import socket
import ssl

from integlib import (Closed, Fail, Lit, client_ssl_context, eq, expect, message,
		      parse, quote, status_of)


def caps(line_tokens):
	return {str(x).upper() for x in line_tokens}


def cap_set(r):
	d = r.data("CAPABILITY")
	expect(len(d) == 1, "CAPABILITY: want exactly one untagged CAPABILITY, got %r" % r.untagged)
	return caps(d[0][2:])


def greeting_caps(c):
	st = status_of(c.greeting)
	expect(st is not None and st[0] == "*" and st[1] == "OK",
	       "greeting is not '* OK': %r" % c.greeting)
	expect(st[2] is not None and st[2].upper().startswith("CAPABILITY "),
	       "greeting lacks a [CAPABILITY ...] code: %r" % c.greeting)
	return {x.upper() for x in st[2].split()[1:]}


def sasl_plain(user, pw, authz=""):
	return base64.b64encode(("%s\0%s\0%s" % (authz, user, pw)).encode()).decode()


def must_refuse(r, what, allowed=("BAD", "NO")):
	expect(r.status in allowed, "%s: want %s, got %r" % (what, "/".join(allowed), r))


def refuse_each(c, cmds, allowed, what, fresh=None):
	"""Each command must be refused; a NOOP after each keeps the server's
	consecutive-BAD counter from ending the session.  With fresh (a
	function returning a new connection) every command gets its own
	connection, for states where servers may cap BADs per connection.
	Reports every deviation at once."""
	probs = []
	for cmd in cmds:
		if fresh:
			c = fresh()
		try:
			r = c.cmd(cmd)
			if r.status not in allowed:
				probs.append("%s %s: want %s, got %r" % (cmd, what, "/".join(allowed), r))
			r = c.cmd("NOOP")
			if r.status != "OK":
				probs.append("NOOP after %s %s -> %r" % (cmd, what, r))
		except (Closed, OSError) as e:
			probs.append("connection lost after %s %s: %s" % (cmd, what, e))
			break
	if probs:
		raise Fail("; ".join(probs))


def still_usable(c):
	r = c.cmd("NOOP")
	expect(r.status == "OK", "connection unusable afterwards: NOOP -> %r" % r)


# ------------------------------------------------------------ greeting, CAPABILITY

def test_greeting_capability_code(ctx):
	c = ctx.conn()
	g = greeting_caps(c)
	expect("IMAP4REV1" in g, "greeting capabilities lack IMAP4rev1: %r" % c.greeting)
	r = c.ok("CAPABILITY")
	eq(g, cap_set(r), "greeting CAPABILITY code vs CAPABILITY command")


def test_capability_before_login(ctx):
	c = ctx.conn()
	cs = cap_set(c.ok("CAPABILITY"))
	for want in ("IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID"):
		expect(want in cs, "pre-auth CAPABILITY lacks %s: %s" % (want, sorted(cs)))
	expect("LOGINDISABLED" not in cs,
	       "LOGINDISABLED advertised on 127.0.0.1 with plaintext-auth loopback: %s" % sorted(cs))


def test_capability_after_login(ctx):
	c = ctx.conn()
	u = ctx.user()
	r = c.cmd("LOGIN ", quote(u.name), " ", quote(u.password))
	eq(r.status, "OK", "LOGIN status (%r)" % r)
	cs = cap_set(c.ok("CAPABILITY"))
	for want in ("IMAP4REV1", "LITERAL+", "UIDPLUS", "UNSELECT", "NAMESPACE", "ID",
		     "ENABLE", "CHILDREN"):
		expect(want in cs, "post-auth CAPABILITY lacks %s: %s" % (want, sorted(cs)))
	expect("LOGINDISABLED" not in cs, "LOGINDISABLED after login")
	if r.code_name() == "CAPABILITY":
		eq({x.upper() for x in r.code.split()[1:]}, cs,
		   "LOGIN's [CAPABILITY] code vs CAPABILITY command after login")


def test_capability_imaplib(ctx):
	m = ctx.imap()
	for want in ("IMAP4REV1", "STARTTLS", "AUTH=PLAIN"):
		expect(want in m.capabilities, "imaplib capabilities lack %s: %r" % (want, m.capabilities))
	u = ctx.user()
	typ, _ = m.login(u.name, u.password)
	eq(typ, "OK", "imaplib login")
	typ, data = m.capability()
	eq(typ, "OK", "imaplib CAPABILITY")
	got = {x.upper() for x in data[0].decode().split()}
	expect("UIDPLUS" in got, "CAPABILITY via imaplib lacks UIDPLUS: %r" % data)
	eq(m.logout()[0], "BYE", "imaplib logout")


# ------------------------------------------------------------ NOOP, LOGOUT

def test_noop_every_state(ctx):
	c = ctx.conn()
	c.ok("NOOP")
	c.login(ctx.user())
	c.ok("NOOP")
	c.select("INBOX")
	c.ok("NOOP")


def _logout_check(c, state):
	r = c.cmd("LOGOUT")
	eq(r.status, "OK", "LOGOUT in %s state" % state)
	byes = [u for u in r.untagged if u.upper().startswith(b"* BYE")]
	expect(len(byes) == 1, "LOGOUT in %s state: want one untagged BYE before the tagged OK, got %r"
	       % (state, r.untagged))
	expect(c.closed_by_server(5), "server did not close the connection after LOGOUT (%s)" % state)


def test_logout_every_state(ctx):
	_logout_check(ctx.conn(), "not-authenticated")
	_logout_check(ctx.login(), "authenticated")
	c = ctx.login()
	c.select("INBOX")
	_logout_check(c, "selected")


# ------------------------------------------------------------ LOGIN

def test_login_bad_password(ctx):
	c = ctx.conn()
	u = ctx.user()
	r = c.cmd("LOGIN ", quote(u.name), " ", quote(u.password + "x"))
	eq(r.status, "NO", "LOGIN with a wrong password (%r)" % r)
	eq(r.code_name(), "AUTHENTICATIONFAILED", "response code of a failed LOGIN (%r)" % r)
	r = c.cmd("LOGIN nosuchuser ", quote("whatever"))
	eq(r.status, "NO", "LOGIN of an unknown user (%r)" % r)
	eq(r.code_name(), "AUTHENTICATIONFAILED", "response code for an unknown user (%r)" % r)
	# Still in not-authenticated state: SELECT is refused, LOGIN works.
	must_refuse(c.cmd("SELECT INBOX"), "SELECT after failed LOGIN")
	c.login(u)
	c.select("INBOX")


def test_login_imaplib_bad_then_good(ctx):
	u = ctx.user()
	m = ctx.imap()
	try:
		m.login(u.name, "wrong")
	except imaplib.IMAP4.error as e:
		expect("AUTHENTICATIONFAILED" in str(e).upper(), "imaplib error lacks AUTHENTICATIONFAILED: %s" % e)
	else:
		raise Fail("LOGIN with a wrong password succeeded")
	eq(m.login(u.name, u.password)[0], "OK", "LOGIN after a failure")


def test_login_literal_password(ctx):
	u = ctx.user()
	c = ctx.conn()
	r = c.cmd("LOGIN ", quote(u.name), " ", Lit(u.password))
	eq(r.status, "OK", "LOGIN with a synchronizing literal password (%r)" % r)
	expect(len(r.conts) == 1, "want one continuation request, got %r" % r.conts)
	c2 = ctx.conn()
	r = c2.cmd("LOGIN ", Lit(u.name), " ", Lit(u.password, nonsync=True))
	eq(r.status, "OK", "LOGIN with a literal user and a LITERAL+ password (%r)" % r)
	c3 = ctx.conn()
	r = c3.cmd("LOGIN ", Lit(u.name, nonsync=True), " ", Lit(u.password + "x", nonsync=True))
	eq(r.status, "NO", "LOGIN with LITERAL+ and a wrong password (%r)" % r)
	still_usable(c3)


def test_login_atom_and_quoted(ctx):
	u = ctx.user()
	c = ctx.conn()
	r = c.cmd("LOGIN %s \"%s\"" % (u.name, u.password))
	eq(r.status, "OK", "LOGIN atom + quoted (%r)" % r)


def test_login_twice_refused(ctx):
	u = ctx.user()
	c = ctx.login(u)
	must_refuse(c.cmd("LOGIN ", quote(u.name), " ", quote(u.password)), "LOGIN in authenticated state")
	must_refuse(c.cmd("AUTHENTICATE PLAIN ", sasl_plain(u.name, u.password)),
		    "AUTHENTICATE in authenticated state")
	still_usable(c)


def test_commands_case_insensitive(ctx):
	u = ctx.user()
	c = ctx.conn()
	c.ok("noop")
	c.ok("Login ", quote(u.name), " ", quote(u.password))
	r = c.ok("select inbox")
	expect(r.number("EXISTS") == 0, "select inbox: %r" % r.untagged)
	c.ok("NoOp")


# ------------------------------------------------------------ AUTHENTICATE

def test_authenticate_plain_sasl_ir(ctx):
	u = ctx.user()
	c = ctx.conn()
	r = c.cmd("AUTHENTICATE PLAIN ", sasl_plain(u.name, u.password))
	eq(r.status, "OK", "AUTHENTICATE PLAIN with an initial response (%r)" % r)
	eq(r.conts, [], "continuation requests for SASL-IR")
	c.select("INBOX")


def test_authenticate_plain_continuation(ctx):
	u = ctx.user()
	c = ctx.conn()
	tag = c.next_tag()
	c.send("%s AUTHENTICATE PLAIN\r\n" % tag)
	line = c.read_response()
	expect(line in (b"+ \r\n", b"+\r\n"), "want an empty continuation '+ ', got %r" % line)
	c.send(sasl_plain(u.name, u.password) + "\r\n")
	r = c.read_until(tag)
	eq(r.status, "OK", "AUTHENTICATE PLAIN via continuation (%r)" % r)
	c.select("INBOX")


def test_authenticate_cancel(ctx):
	u = ctx.user()
	c = ctx.conn()
	tag = c.next_tag()
	c.send("%s AUTHENTICATE PLAIN\r\n" % tag)
	line = c.read_response()
	expect(line.startswith(b"+"), "want a continuation request, got %r" % line)
	c.send("*\r\n")
	r = c.read_until(tag)
	eq(r.status, "BAD", "AUTHENTICATE cancelled with '*' (%r)" % r)
	must_refuse(c.cmd("SELECT INBOX"), "SELECT after a cancelled AUTHENTICATE")
	c.login(u)


def test_authenticate_failures(ctx):
	# One connection per failure: servers may end a session after a few
	# failed authentications.
	u = ctx.user()
	c = ctx.conn()
	r = c.cmd("AUTHENTICATE PLAIN ", sasl_plain(u.name, "nope"))
	eq(r.status, "NO", "AUTHENTICATE with a wrong password (%r)" % r)
	eq(r.code_name(), "AUTHENTICATIONFAILED", "code of a failed AUTHENTICATE (%r)" % r)
	c.login(u)
	c = ctx.conn()
	r = c.cmd("AUTHENTICATE X-NO-SUCH-MECHANISM")
	eq(r.status, "NO", "AUTHENTICATE with an unsupported mechanism (%r)" % r)
	c.login(u)
	c = ctx.conn()
	r = c.cmd("AUTHENTICATE PLAIN !!!notbase64!!!")
	must_refuse(r, "AUTHENTICATE PLAIN with invalid base64")
	c.login(u)
	# Authorization identity different from the user: must not log in as
	# somebody else.
	other = ctx.user()
	c = ctx.conn()
	r = c.cmd("AUTHENTICATE PLAIN ", sasl_plain(u.name, u.password, authz=other.name))
	if r.status == "OK":
		raise Fail("AUTHENTICATE PLAIN with authzid=%s accepted for %s (proxy auth without admin rights)"
			   % (other.name, u.name))
	c = ctx.conn()
	r = c.cmd("AUTHENTICATE PLAIN ", sasl_plain(u.name, u.password, authz=u.name))
	eq(r.status, "OK", "AUTHENTICATE PLAIN with authzid equal to the user (%r)" % r)


def test_authenticate_imaplib(ctx):
	u = ctx.user()
	m = ctx.imap()
	typ, _ = m.authenticate("PLAIN", lambda _c: ("\0%s\0%s" % (u.name, u.password)).encode())
	eq(typ, "OK", "imaplib AUTHENTICATE PLAIN")
	eq(m.select("INBOX")[0], "OK", "SELECT after AUTHENTICATE")


# ------------------------------------------------------------ TLS

def test_starttls(ctx):
	u = ctx.user()
	c = ctx.conn()
	c.starttls()
	expect(isinstance(c.sock, ssl.SSLSocket), "no TLS socket")
	cs = cap_set(c.ok("CAPABILITY"))
	expect("STARTTLS" not in cs, "STARTTLS still advertised after STARTTLS: %s" % sorted(cs))
	expect("IMAP4REV1" in cs and "AUTH=PLAIN" in cs, "CAPABILITY over TLS: %s" % sorted(cs))
	c.login(u)
	c.select("INBOX")
	r = c.cmd("STARTTLS")
	must_refuse(r, "STARTTLS twice / after login")


def test_starttls_imaplib(ctx):
	u = ctx.user()
	m = ctx.imap()
	eq(m.starttls(ssl_context=client_ssl_context())[0], "OK", "imaplib STARTTLS")
	expect("STARTTLS" not in m.capabilities, "imaplib sees STARTTLS after STARTTLS: %r" % (m.capabilities,))
	eq(m.login(u.name, u.password)[0], "OK", "LOGIN over STARTTLS")


def test_starttls_discards_pipelined_plaintext(ctx):
	# Commands sent in plaintext together with STARTTLS must not be
	# executed inside the TLS session (CVE-2011-0411 class).
	c = ctx.conn()
	c.send("S1 STARTTLS\r\nS2 CAPABILITY\r\n")
	r = c.read_until("S1")
	eq(r.status, "OK", "STARTTLS (%r)" % r)
	extra = c.buf
	c.buf = b""
	expect(b"S2" not in extra, "server answered pipelined plaintext before the handshake: %r" % extra)
	try:
		c.sock = client_ssl_context().wrap_socket(c.sock)
	except (ssl.SSLError, OSError):
		return	# refusing the handshake is acceptable
	try:
		tag = c.next_tag()
		c.send("%s NOOP\r\n" % tag)
		r = c.read_until(tag)
	except (Closed, OSError):
		return	# closing the connection is acceptable
	for u in r.untagged:
		expect(not u.startswith(b"S2 "), "pipelined plaintext command executed inside TLS: %r" % u)
	expect(not any(b"CAPABILITY" in u.upper() for u in r.untagged),
	       "plaintext CAPABILITY answered inside TLS: %r" % r.untagged)


def test_implicit_tls_port(ctx):
	u = ctx.user()
	c = ctx.conn(tls=True)
	st = status_of(c.greeting)
	expect(st and st[1] == "OK", "TLS greeting: %r" % c.greeting)
	cs = cap_set(c.ok("CAPABILITY"))
	expect("STARTTLS" not in cs, "STARTTLS advertised on the TLS port: %s" % sorted(cs))
	expect("AUTH=PLAIN" in cs, "AUTH=PLAIN missing on the TLS port: %s" % sorted(cs))
	must_refuse(c.cmd("STARTTLS"), "STARTTLS on the TLS port")
	c.login(u)
	c.select("INBOX")
	m = ctx.imap(tls=True)
	eq(m.login(u.name, u.password)[0], "OK", "imaplib IMAP4_SSL login")


def test_plain_bytes_on_tls_port(ctx):
	# A plaintext client on the TLS port must not hang or crash the server.
	s = socket.create_connection((ctx.host, ctx.tls_port), timeout=10)
	s.sendall(b"a LOGIN u p\r\n" * 10)
	try:
		while s.recv(4096):
			pass
	except (socket.timeout, TimeoutError):
		raise Fail("server kept a plaintext connection on the TLS port open for 10 s")
	except OSError:
		pass
	s.close()
	c = ctx.conn(tls=True)
	c.ok("NOOP")


# ------------------------------------------------------------ states, bad input

PREAUTH_REFUSED = [
	"SELECT INBOX", "EXAMINE INBOX", "CREATE foo", "DELETE foo", "RENAME foo bar",
	"SUBSCRIBE INBOX", "UNSUBSCRIBE INBOX", 'LIST "" "*"', 'LSUB "" "*"',
	"STATUS INBOX (MESSAGES)", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE",
	"FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "COPY 1 INBOX",
	"UID FETCH 1 FLAGS", "UID SEARCH ALL", "NAMESPACE",
]

SELECTED_ONLY = [
	"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)",
	"SEARCH ALL", "COPY 1 INBOX", "UID FETCH 1 FLAGS", "UID STORE 1 +FLAGS (\\Seen)",
	"UID SEARCH ALL", "UID COPY 1 INBOX", "UID EXPUNGE 1",
]


def test_commands_before_login_refused(ctx):
	refuse_each(None, PREAUTH_REFUSED, ("BAD", "NO"), "before login", fresh=ctx.conn)
	c = ctx.conn()
	r = c.cmd("APPEND INBOX ", Lit(message()))
	must_refuse(r, "APPEND before login")


def test_selected_commands_without_mailbox_bad(ctx):
	c = ctx.login()
	refuse_each(c, SELECTED_ONLY, ("BAD",), "with no mailbox selected")


def test_unknown_command_bad(ctx):
	c = ctx.conn()
	eq(c.cmd("XYZZY").status, "BAD", "unknown command before login")
	eq(c.cmd("XYZZY arg1 (a b) {0+}\r\n").status, "BAD", "unknown command with arguments")
	c.login(ctx.user())
	eq(c.cmd("XYZZY").status, "BAD", "unknown command after login")
	eq(c.cmd("UID XYZZY 1").status, "BAD", "UID with an unknown subcommand")
	still_usable(c)


def test_syntax_errors_bad(ctx):
	c = ctx.login()
	c.select("INBOX")
	c.append("INBOX", message())
	cmds = []
	for cmd in ["FETCH 1 (FLAGS", "FETCH 1 FLAGS)", "FETCH 1 ((FLAGS)", "FETCH", "FETCH 1",
		    "FETCH 1 NOSUCHITEM", "FETCH x FLAGS", "FETCH 1:x FLAGS", "FETCH 0 FLAGS",
		    "FETCH 1 BODY[NOSUCHSECTION]", "FETCH 1 BODY[HEADER.FIELDS]",
		    "FETCH 1 BODY[]<x>", "STORE 1 NOSUCH (\\Seen)",
		    "SEARCH", "SEARCH NOSUCHKEY", "SEARCH (ALL", "SEARCH OR ALL",
		    "SEARCH BEFORE 32-Foo-2000", "SEARCH LARGER x", "LIST \"\"",
		    "STATUS INBOX", "STATUS INBOX (NOSUCH)", "STATUS INBOX MESSAGES",
		    "CREATE", "RENAME a", "COPY 1", "APPEND", "SELECT", "SELECT \"INBOX"]:
		cmds.append(cmd)
	refuse_each(c, cmds, ("BAD",), "(syntax error)")


def _garbage(c):
	c.send(b"\x00\x01\x02\xff\xfe garbage \x80\x81\r\n")
	c.send(b"a\x00b NOOP\r\n")
	c.send(b"\r\n")
	c.send(b"(((((\r\n")
	c.send(b"t1 NOOP\r\n")
	r = c.read_until("t1")
	eq(r.status, "OK", "NOOP after garbage (%r)" % r)
	for u in r.untagged:
		st = status_of(u)
		expect(st is not None and st[1] in ("BAD", "NO"),
		       "unexpected response to garbage: %r" % u)


def test_extra_arguments_bad(ctx):
	# The grammar of RFC 3501 gives these commands no (further) arguments;
	# "BAD - command unknown or arguments invalid".
	c = ctx.login()
	c.select("INBOX")
	c.append("INBOX", message())
	refuse_each(c, ["CAPABILITY IMAP4rev1", "NOOP extra", "CHECK now", "STORE 1 FLAGS",
			"STORE 1 +FLAGS", "ID", "SELECT INBOX extra", "UNSELECT x", "NAMESPACE x",
			"EXPUNGE 1", "LOGOUT now"], ("BAD",), "(extra or missing arguments)")


def test_garbage_bytes(ctx):
	_garbage(ctx.login())


def test_garbage_bytes_before_login(ctx):
	c = ctx.conn()
	c.send(b"\x00\x01\x02\xff\xfe garbage \x80\x81\r\n")
	c.send(b"t0 NOOP\r\n")
	r = c.read_until("t0")
	eq(r.status, "OK", "NOOP after garbage (%r)" % r)
	c.login(ctx.user())


def test_long_line(ctx):
	c = ctx.login()
	try:
		c.send(b"L1 XYZZY " + b"x" * (1024 * 1024) + b"\r\n")
		c.send(b"L2 NOOP\r\n")
		r = c.read_until("L2")
	except (Closed, OSError):
		return	# BYE and close is an acceptable answer to a 1 MiB line
	for u in r.untagged:
		if u.startswith(b"L1 "):
			expect(status_of(u)[1] == "BAD", "1 MiB line: %r" % u)
	eq(r.status, "OK", "NOOP after a 1 MiB line (%r)" % r)


def test_preauth_big_sync_literal_refused(ctx):
	# 2 MiB announced before login: refuse without inviting the bytes.
	c = ctx.conn()
	c.send("B1 LOGIN {2097152}\r\n")
	try:
		line = c.read_response()
	except (Closed, OSError):
		raise Fail("connection closed without any response to a 2 MiB LOGIN literal")
	expect(not line.startswith(b"+"),
	       "server invited a 2 MiB literal before authentication: %r" % line)
	st = status_of(line)
	expect(st is not None and ((st[0] == "B1" and st[1] in ("BAD", "NO")) or
				   (st[0] == "*" and st[1] in ("BYE", "BAD"))),
	       "want tagged BAD/NO or BYE for a 2 MiB pre-auth literal, got %r" % line)
	if st[1] == "BYE":
		expect(c.closed_by_server(5), "BYE but connection not closed")
		return
	if st[0] == "*":
		line = c.read_response()
		expect(line.startswith(b"B1 BAD") or line.startswith(b"B1 NO"), "tagged response: %r" % line)
	still_usable(c)


def test_preauth_huge_nonsync_literal(ctx):
	# The literal's bytes contain command lines; they must never run.
	c = ctx.conn()
	chunk = b"Z9 LOGOUT\r\nZ8 CAPABILITY\r\n" + b"x" * 4070
	total = 2 * 1024 * 1024
	closed = False
	try:
		c.send(b"N1 LOGIN u {%d+}\r\n" % total)
		sent = 0
		while sent < total:
			part = chunk[:total - sent]
			c.send(part)
			sent += len(part)
		c.send(b" x\r\nN2 NOOP\r\n")
	except OSError:
		closed = True
	seen = []
	try:
		while True:
			line = c.read_response()
			seen.append(line)
			if line.startswith(b"N2 "):
				break
	except (Closed, OSError, socket.timeout, TimeoutError):
		closed = True
	for line in seen:
		expect(not line.startswith(b"Z9 ") and not line.startswith(b"Z8 "),
		       "bytes of a non-synchronizing literal were executed as a command: %r" % line)
		expect(b"* CAPABILITY" not in line, "literal bytes executed: %r" % line)
	if closed:
		expect(any(s.startswith(b"* BYE") or s.startswith(b"N1 BAD") for s in seen),
		       "connection closed without BYE/BAD for a 2 MiB pre-auth literal: %r" % seen[:3])
		return
	expect(any(s.startswith(b"N1 BAD") or s.startswith(b"N1 NO") for s in seen),
	       "no tagged BAD/NO for the 2 MiB pre-auth literal: %r" % seen[:5])
	expect(seen[-1].startswith(b"N2 OK"), "NOOP after the refused literal: %r" % seen[-1:])


def test_many_bad_commands_bye(ctx):
	# One at a time, so that the server never closes with our bytes unread
	# (which would reset the connection and lose its BYE).
	c = ctx.login()
	seen = []
	try:
		for i in range(200):
			c.send("b%d XYZZY\r\n" % i)
			line = c.read_response()
			seen.append(line)
			if line.upper().startswith(b"* BYE"):
				break
			expect(line.startswith(b"b%d BAD" % i), "unknown command: %r" % line)
	except (Closed, OSError):
		pass
	byes = [s for s in seen if s.upper().startswith(b"* BYE")]
	expect(byes, "200 consecutive BAD commands did not end in BYE (%d responses, last %r)"
	       % (len(seen), seen[-1:]))
	expect(c.closed_by_server(5), "connection still open after BYE")


# ------------------------------------------------------------ pipelining

def test_pipelining_login_select(ctx):
	u = ctx.user()
	c = ctx.conn()
	c.send("P1 CAPABILITY\r\nP2 LOGIN %s %s\r\nP3 SELECT INBOX\r\nP4 NOOP\r\n"
	       % (quote(u.name), quote(u.password)))
	order = []
	for tag in ("P1", "P2", "P3", "P4"):
		r = c.read_until(tag)
		order.append(r.tag)
		eq(r.status, "OK", "pipelined %s (%r)" % (tag, r))


def test_pipelining_ten_commands(ctx):
	c = ctx.login()
	for i in range(3):
		c.append("INBOX", message(subject="p%d" % i))
	c.select("INBOX")
	# Only FETCH/STORE/SEARCH before the UID commands (RFC 3501 5.5).
	cmds = ["FETCH 1 (FLAGS)", "STORE 1 +FLAGS.SILENT (\\Flagged)", "FETCH 1 (FLAGS)",
		"STORE 2 +FLAGS (\\Seen)", "SEARCH FLAGGED", "SEARCH SEEN", "FETCH 2 (FLAGS)",
		"STORE 3 +FLAGS (\\Answered)", "SEARCH ANSWERED",
		"UID STORE 1:* -FLAGS.SILENT (\\Flagged)", "UID SEARCH FLAGGED", "NOOP", "CHECK"]
	tags = ["Q%02d" % i for i in range(len(cmds))]
	c.send("".join("%s %s\r\n" % (t, x) for t, x in zip(tags, cmds)))
	# Untagged FETCH responses belong to no particular command (a server
	# may run FETCH and STORE concurrently as long as results match the
	# serial order), but SEARCH results come in command order.
	seen_tags, searches = [], []
	while len(seen_tags) < len(tags):
		line = c.read_response()
		st = status_of(line)
		if st and st[0] != "*":
			seen_tags.append(st[0])
			expect(st[1] == "OK", "pipelined %s -> %r" % (cmds[tags.index(st[0])], line))
			continue
		t = parse(line)
		if len(t) >= 2 and str(t[1]).upper() == "SEARCH":
			searches.append([int(x) for x in t[2:]])
	eq(seen_tags, tags, "order of tagged responses")
	eq(searches, [[1], [2], [3], []], "SEARCH results of the pipeline (FLAGGED, SEEN, ANSWERED, UID FLAGGED)")
	from integlib import flagset
	f = c.ok("FETCH 1:3 (FLAGS)").fetches()
	eq([flagset(f[i]["FLAGS"]) for i in (1, 2, 3)], [set(), {"\\seen"}, {"\\answered"}],
	   "flags after the pipeline")


def test_pipelining_literal_plus_appends(ctx):
	c = ctx.login()
	msgs = [message(subject="pipe %d" % i, body="body %d\n" % i) for i in range(10)]
	data = b""
	for i, m in enumerate(msgs):
		data += b"A%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m)
	c.send(data)
	uids = []
	for i in range(10):
		r = c.read_until("A%d" % i)
		eq(r.status, "OK", "pipelined APPEND %d (%r)" % (i, r))
		v = r.code_value("APPENDUID")
		expect(v is not None, "APPEND without APPENDUID: %r" % r)
		uids.append(int(v.split()[1]))
	eq(uids, sorted(uids), "APPENDUIDs of pipelined APPENDs ascend")
	eq(len(set(uids)), 10, "distinct APPENDUIDs")
	c.select("INBOX")
	r = c.ok("FETCH 1:* (UID BODY.PEEK[])")
	f = r.fetches()
	eq(len(f), 10, "messages after pipelined APPENDs")
	for i in range(10):
		eq(f[i + 1]["BODY[]"], msgs[i], "bytes of pipelined message %d" % i)
		eq(int(f[i + 1]["UID"]), uids[i], "UID of pipelined message %d" % i)


# ------------------------------------------------------------ NAMESPACE, ID, ENABLE

def test_namespace(ctx):
	c = ctx.login()
	r = c.ok("NAMESPACE")
	d = r.data("NAMESPACE")
	eq(len(d), 1, "NAMESPACE responses")
	personal = d[0][2]
	expect(isinstance(personal, list) and personal and isinstance(personal[0], list),
	       "personal namespace missing: %r" % r.untagged)
	prefix, delim = personal[0][0], personal[0][1]
	eq(delim, b"/", "personal namespace delimiter")
	expect(prefix in (b"", b"INBOX/"), "personal namespace prefix %r" % prefix)
	for other in d[0][3:5]:
		expect(other is None or isinstance(other, list), "bad NAMESPACE shape %r" % r.untagged)
	m = ctx.imap_login()
	typ, data = m.namespace()
	eq(typ, "OK", "imaplib NAMESPACE")


def test_id_every_state(ctx):
	c = ctx.conn()
	for args in ("NIL", '("name" "kura-integ" "version" "1.0")'):
		r = c.ok("ID " + args)
		d = r.data("ID")
		eq(len(d), 1, "untagged ID responses to ID %s (%r)" % (args, r.untagged))
		expect(d[0][2] is None or (isinstance(d[0][2], list) and len(d[0][2]) % 2 == 0),
		       "ID response shape: %r" % r.untagged)
	c.login(ctx.user())
	r = c.ok("ID NIL")
	eq(len(r.data("ID")), 1, "ID after login")


def test_enable(ctx):
	c = ctx.conn()
	must_refuse(c.cmd("ENABLE X-NO-SUCH-EXTENSION"), "ENABLE before login")
	c.login(ctx.user())
	before = cap_set(c.ok("CAPABILITY"))
	r = c.ok("ENABLE X-NO-SUCH-EXTENSION X-OTHER")
	d = r.data("ENABLED")
	eq(len(d), 1, "untagged ENABLED responses (%r)" % r.untagged)
	eq(d[0][2:], [], "ENABLED for unknown capabilities")
	eq(cap_set(c.ok("CAPABILITY")), before, "CAPABILITY after ENABLE")
	eq(c.cmd("ENABLE").status, "BAD", "ENABLE without arguments")


# ------------------------------------------------------------ imaplib end to end

def test_imaplib_session(ctx):
	m = ctx.imap_login()
	msg = message(subject="imaplib", body="line one\nline two\n")
	typ, data = m.append("INBOX", "(\\Flagged)", None, msg)
	eq(typ, "OK", "imaplib APPEND")
	typ, data = m.select("INBOX")
	eq((typ, data), ("OK", [b"1"]), "imaplib SELECT")
	typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
	eq(typ, "OK", "imaplib FETCH")
	eq(data[0][1], msg, "imaplib FETCH body bytes")
	expect(b"\\Flagged" in data[0][0] or b"\\Flagged" in data[1], "flags: %r" % data)
	typ, data = m.search(None, "FLAGGED")
	eq(data, [b"1"], "imaplib SEARCH FLAGGED")
	eq(m.close()[0], "OK", "imaplib CLOSE")
	eq(m.logout()[0], "BYE", "imaplib LOGOUT")


# ------------------------------------------------------------ hostile numbers and nesting

def test_number_overflows(ctx):
	c = ctx.login()
	c.select("INBOX")
	c.append("INBOX", message())
	c.ok("NOOP")
	for cmd in ("FETCH 4294967296 FLAGS", "FETCH 99999999999999999999 FLAGS",
		    "FETCH 1:99999999999999999999 FLAGS", "UID FETCH 4294967296 FLAGS",
		    "FETCH 1 BODY[]<99999999999999999999>", "FETCH 1 BODY[]<0.99999999999999999999>",
		    "FETCH 1 BODY[4294967296]", "SEARCH LARGER 99999999999999999999",
		    "STORE 18446744073709551617 +FLAGS (\\Seen)", "FETCH -1 FLAGS"):
		r = c.cmd(cmd)
		expect(r.status in ("BAD", "NO"), "%s: want BAD/NO, got %r" % (cmd, r))
		c.ok("NOOP")
	r = c.ok("UID FETCH 1:4294967295 UID")
	eq(len(r.fetch_list()), 1, "UID FETCH 1:4294967295")
	r = c.ok("FETCH 1 BODY.PEEK[]<4294967295.10>")
	eq(list(r.fetches()[1].values()), [b""], "partial starting at 2^32-1")
	# <0.0> breaks the grammar (the length is an nz-number): BAD, or
	# leniently an empty string.
	r = c.cmd("FETCH 1 BODY.PEEK[]<0.0>")
	expect(r.status == "BAD" or (r.status == "OK" and list(r.fetches().get(1, {}).values()) == [b""]),
	       "BODY[]<0.0>: %r %r" % (r, r.untagged))


def test_literal_size_overflows(ctx):
	for head in ("a LOGIN {18446744073709551616}\r\n", "a LOGIN {99999999999999999999999}\r\n",
		     "a LOGIN {-1}\r\n", "a LOGIN {1x}\r\n", "a LOGIN {4294967296+}\r\n"):
		c = ctx.conn()
		try:
			c.send(head)
			line = c.read_response()
		except (Closed, OSError):
			continue	# closing is acceptable
		expect(not line.startswith(b"+"), "%r invited a literal: %r" % (head, line))
		st = status_of(line)
		expect(st and st[1] in ("BAD", "NO", "BYE"), "%r: %r" % (head, line))


def test_deep_nesting_and_many_arguments(ctx):
	c = ctx.login()
	c.select("INBOX")
	c.append("INBOX", message())
	c.ok("NOOP")
	deep = "SEARCH " + "(" * 2000 + "ALL" + ")" * 2000
	wide = "FETCH 1 (" + " ".join(["FLAGS"] * 20000) + ")"
	ors = "SEARCH " + "OR " * 500 + "SEEN " * 501
	for cmd in (deep, wide, ors):
		try:
			r = c.cmd(cmd)
		except (Closed, OSError):
			c = ctx.login()		# BYE for an absurd command is acceptable
			c.select("INBOX")
			continue
		expect(r.status in ("OK", "BAD", "NO"), "%s...: %r" % (cmd[:30], r))
		c.ok("NOOP")


def test_literal_plus_contents_never_run(ctx):
	# A non-synchronizing literal's bytes are data even when the command
	# fails (missing mailbox) or is unknown.
	c = ctx.login()
	evil = b"E1 LOGOUT\r\nE2 CREATE smuggled\r\n"
	c.send(b"A1 APPEND nosuchbox {%d+}\r\n%s\r\n" % (len(evil), evil))
	c.send(b"A2 XYZZY {%d+}\r\n%s\r\n" % (len(evil), evil))
	c.send(b"A3 SELECT {%d+}\r\n%s\r\n" % (len(evil), evil))
	c.send(b"A4 NOOP\r\n")
	seen = []
	while True:
		line = c.read_response()
		seen.append(line)
		if line.startswith(b"A4 "):
			break
	for line in seen:
		expect(not line.startswith(b"E1 ") and not line.startswith(b"E2 ") and b"* BYE" not in line,
		       "literal contents executed as commands: %r" % seen)
	expect(any(l.startswith(b"A1 NO") for l in seen), "APPEND to a missing mailbox: %r" % seen)
	expect("smuggled" not in {t[4].decode() if isinstance(t[4], bytes) else str(t[4])
				  for t in c.ok('LIST "" "*"').data("LIST")}, "smuggled CREATE ran")
