"""Extensions a server advertises beyond the required set: IDLE (RFC 2177)
and MOVE (RFC 6851).  Each test checks the extension only when the
server lists it after login (a server without it passes trivially)."""

import time

from integlib import (Closed, Fail, View, eq, expect, flagset, message, parse, seqset,
		      status_of)


def has_cap(c, cap):
	r = c.ok("CAPABILITY")
	return any(str(x).upper() == cap for t in r.data("CAPABILITY") for x in t[2:])


def fill(c, mbox, n, flags=None):
	return [c.append(mbox, message(subject="x%d" % i, body="b%d\n" % i),
			 flags=(flags[i] if flags else None)) for i in range(n)]


def wait_for(c, pred, seconds):
	"""Reads untagged responses until pred(line) or the time is up."""
	got = []
	deadline = time.time() + seconds
	old = c.sock.gettimeout()
	try:
		while time.time() < deadline:
			c.sock.settimeout(max(0.1, deadline - time.time()))
			try:
				line = c.read_response()
			except (TimeoutError, OSError):
				break
			got.append(line)
			if pred(line):
				return got, True
	finally:
		c.sock.settimeout(old)
	return got, False


# ------------------------------------------------------------ IDLE

def _idle_start(c):
	tag = c.next_tag()
	c.send("%s IDLE\r\n" % tag)
	while True:
		line = c.read_response()
		if line.startswith(b"+"):
			return tag
		st = status_of(line)
		if st and st[0] == tag:
			raise Fail("IDLE refused: %r" % line)


def _idle_done(c, tag, word="DONE"):
	c.send(word + "\r\n")
	r = c.read_until(tag)
	eq(r.status, "OK", "IDLE after %s (%r)" % (word, r))
	return r


def test_idle_sees_append_and_expunge(ctx):
	u = ctx.user()
	a = ctx.login(u)
	if not has_cap(a, "IDLE"):
		return
	w = ctx.login(u)
	uids = fill(w, "INBOX", 3)
	a.select("INBOX")
	tag = _idle_start(a)
	w.append("INBOX", message(subject="while idling"))
	got, ok = wait_for(a, lambda l: l.upper().endswith(b" EXISTS\r\n"), 15)
	expect(ok, "no EXISTS pushed during IDLE within 15 s of an APPEND: %r" % got)
	eq(parse(got[-1])[1], "4", "EXISTS during IDLE")
	w.select("INBOX")
	w.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
	w.ok("EXPUNGE")
	got2, ok = wait_for(a, lambda l: l.upper().endswith(b" EXPUNGE\r\n"), 15)
	expect(ok, "no EXPUNGE pushed during IDLE within 15 s: %r" % got2)
	eq(parse(got2[-1])[1], "2", "EXPUNGE during IDLE")
	r = _idle_done(a, tag)
	v = View(uids + [None])
	del v.uids[1]
	v.apply(r)
	v.check(a, "after IDLE")


def test_idle_states_and_done(ctx):
	c = ctx.conn()
	r = c.cmd("IDLE")
	expect(r.status in ("BAD", "NO"), "IDLE before login: %r" % r)
	c.login(ctx.user())
	if not has_cap(c, "IDLE"):
		return
	tag = _idle_start(c)		# authenticated state
	_idle_done(c, tag, "done")	# case-insensitive
	c.select("INBOX")
	tag = _idle_start(c)
	c.send("DONE\r\n")
	c.send("N1 NOOP\r\n")
	r = c.read_until(tag)
	eq(r.status, "OK", "IDLE")
	eq(c.read_until("N1").status, "OK", "command pipelined after DONE")


def test_idle_garbage_instead_of_done(ctx):
	c = ctx.login()
	if not has_cap(c, "IDLE"):
		return
	c.select("INBOX")
	tag = _idle_start(c)
	c.send("NOOP\r\n")
	try:
		r = c.read_until(tag)
	except Closed:
		return	# ending the session is acceptable
	expect(r.status in ("BAD", "OK"), "IDLE ended by a non-DONE line: %r" % r)
	c.ok("NOOP")


# ------------------------------------------------------------ MOVE

def test_move(ctx):
	c = ctx.login()
	if not has_cap(c, "MOVE"):
		return
	msgs = [message(subject="mv%d" % i) for i in range(4)]
	uids = [c.append("INBOX", m, flags=(["\\Flagged"] if i == 1 else None)) for i, m in enumerate(msgs)]
	c.ok("CREATE moved")
	c.select("INBOX")
	v = View(uids)
	r = c.ok("MOVE 2:3 moved")
	cu = r.code_value("COPYUID")
	expect(cu is not None, "MOVE without COPYUID (RFC 6851 with UIDPLUS): %r" % (r.untagged + [r.tagged],))
	_uv, src, dst = cu.split()
	mapping = dict(zip(seqset(src), seqset(dst)))
	eq(sorted(mapping), uids[1:3], "COPYUID source UIDs of MOVE")
	gone = v.expunged_by(r)
	eq(sorted(gone), uids[1:3], "EXPUNGE responses of MOVE")
	v.check(c, "after MOVE")
	r = c.ok("UID MOVE %d moved" % uids[3])
	eq(v.expunged_by(r), [uids[3]], "EXPUNGE of UID MOVE")
	r = c.cmd("MOVE 1 nosuchbox")
	eq((r.status, r.code_name()), ("NO", "TRYCREATE"), "MOVE to a missing mailbox (%r)" % r)
	eq(v.check(c, "after failed MOVE"), [uids[0]], "source after MOVEs")
	c.select("moved")
	r = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])")
	got = {int(i["UID"]): i for _s, i in r.fetch_list()}
	eq(len(got), 3, "messages in the target")
	for su, du in mapping.items():
		k = uids.index(su)
		eq(got[du]["BODY[]"], msgs[k], "moved bytes")
		eq(flagset(got[du]["FLAGS"]), {"\\flagged"} if k == 1 else set(), "moved flags")
