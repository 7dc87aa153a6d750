"""IDLE (RFC 2177): changes made by another session on the same server
reach the idling client promptly (EXISTS on APPEND, EXPUNGE on expunge,
FETCH FLAGS on STORE, all within 1 s), DONE ends IDLE with a tagged OK,
the server sends "* OK" keepalives (a private server with
--idle-keepalive 1), and IDLE combines with CONDSTORE/QRESYNC (RFC 7162:
MODSEQ in unsolicited FETCH, VANISHED instead of EXPUNGE)."""

from integlib import Result, View, eq, expect, message, parse, timeout_scale
from test_x_lib import (fill, idle_done, idle_start, lax, modseq_of, need, own_server,
			uids_of, vanished, wait_for)

PROMPT = 1.0 * timeout_scale()	# "within 1 s" (scaled under valgrind/ASan)


def _ends(word):
	return lambda l: l.upper().rstrip(b"\r\n").endswith(b" " + word)


def _setup(ctx, n=3):
	u = ctx.user()
	idler = ctx.login(u)
	if not need(ctx, idler, "IDLE"):
		return None
	other = ctx.login(u)
	uids = fill(other, "INBOX", n)
	idler.select("INBOX")
	return idler, other, uids


def test_idle_exists_within_1s(ctx):
	s = _setup(ctx)
	if not s:
		return
	idler, other, uids = s
	tag, _ = idle_start(idler)
	other.append("INBOX", message(subject="arrives during IDLE"))
	got, ok, secs = wait_for(idler, _ends(b"EXISTS"), 5 * PROMPT)
	expect(ok, "no EXISTS during IDLE within %.0f s of another session's APPEND: %r" % (5 * PROMPT, got))
	expect(secs <= PROMPT, "EXISTS reached the idler after %.2f s (want <= %.1f s)" % (secs, PROMPT))
	eq(parse(got[-1])[1], "4", "EXISTS count during IDLE")
	# A burst of appends: the idler's last EXISTS must count them all.
	for i in range(5):
		other.append("INBOX", message(subject="burst %d" % i))
	got, ok, secs = wait_for(idler, lambda l: l.upper() == b"* 9 EXISTS\r\n", 5 * PROMPT)
	expect(ok, "EXISTS after 5 more APPENDs never reached 9: %r" % got)
	r = idle_done(idler, tag)
	v = View(uids + [None] * 6).apply(r)
	v.check(idler, "after IDLE with appends")


def test_idle_expunge_within_1s(ctx):
	s = _setup(ctx, 4)
	if not s:
		return
	idler, other, uids = s
	other.select("INBOX")
	other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
	tag, early = idle_start(idler)
	other.ok("EXPUNGE")
	got, ok, secs = wait_for(idler, _ends(b"EXPUNGE"), 5 * PROMPT)
	expect(ok, "no EXPUNGE during IDLE within %.0f s of another session's EXPUNGE: %r"
	       % (5 * PROMPT, early + got))
	expect(secs <= PROMPT, "EXPUNGE reached the idler after %.2f s (want <= %.1f s)" % (secs, PROMPT))
	eq(parse(got[-1])[1], "2", "message number in the EXPUNGE during IDLE")
	# UID EXPUNGE of two more (the last and the first).
	other.ok("UID STORE %d,%d +FLAGS.SILENT (\\Deleted)" % (uids[0], uids[3]))
	other.ok("UID EXPUNGE %d,%d" % (uids[0], uids[3]))
	got2, ok, secs = wait_for(idler, _ends(b"EXPUNGE"), 5 * PROMPT)
	expect(ok, "no EXPUNGE during IDLE after UID EXPUNGE: %r" % got2)
	got3, ok3, _ = wait_for(idler, _ends(b"EXPUNGE"), 2 * PROMPT)
	expect(ok3, "only one of two EXPUNGEs reached the idler: %r" % (got2 + got3))
	r = idle_done(idler, tag)
	v = View(list(uids))
	v.apply(Result(r.tag, r.tagged, early + got + got2 + got3 + r.untagged, []))
	eq(v.uids, [uids[2]], "idler's view after the EXPUNGE responses")
	eq(uids_of(idler), [uids[2]], "UIDs after IDLE")


def test_idle_flags_within_1s(ctx):
	s = _setup(ctx)
	if not s:
		return
	idler, other, uids = s
	other.select("INBOX")
	tag, _ = idle_start(idler)
	other.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Work)")

	def flagged(line):
		t = parse(line)
		if len(t) >= 4 and str(t[2]).upper() == "FETCH" and t[1] == "2":
			items = {str(t[3][i]).upper(): t[3][i + 1] for i in range(0, len(t[3]) - 1, 2)}
			fl = {str(f).lower() for f in items.get("FLAGS") or []}
			return "\\flagged" in fl and "$work" in fl
		return False
	got, ok, secs = wait_for(idler, flagged, 5 * PROMPT)
	expect(ok, "no '* 2 FETCH (FLAGS (\\Flagged $Work ...))' during IDLE within %.0f s: %r"
	       % (5 * PROMPT, got))
	expect(secs <= PROMPT, "FETCH FLAGS reached the idler after %.2f s (want <= %.1f s)" % (secs, PROMPT))
	other.ok("STORE 2 -FLAGS.SILENT (\\Flagged)")

	def unflagged(line):
		t = parse(line)
		if len(t) >= 4 and str(t[2]).upper() == "FETCH" and t[1] == "2":
			items = {str(t[3][i]).upper(): t[3][i + 1] for i in range(0, len(t[3]) - 1, 2)}
			fl = {str(f).lower() for f in items.get("FLAGS") or []}
			return "FLAGS" in items and "\\flagged" not in fl and "$work" in fl
		return False
	got, ok, secs = wait_for(idler, unflagged, 5 * PROMPT)
	expect(ok, "flag removal did not reach the idler: %r" % got)
	idle_done(idler, tag)


def test_idle_done_tagged_ok(ctx):
	c = ctx.login()
	if not need(ctx, c, "IDLE"):
		return
	c.select("INBOX")
	for word in ("DONE", "done", "Done"):
		tag, _ = idle_start(c)
		c.send(word + "\r\n")
		r = c.read_until(tag)
		eq(r.status, "OK", "IDLE ended by %r" % word)
	# DONE and the next command in one write.
	tag, _ = idle_start(c)
	c.send("DONE\r\nX1 NOOP\r\n")
	eq(c.read_until(tag).status, "OK", "IDLE ended by DONE pipelined with NOOP")
	eq(c.read_until("X1").status, "OK", "NOOP after DONE")


def test_idle_keepalive(ctx):
	srv = own_server(ctx, ["--idle-keepalive", "1"])
	if srv is None:
		return
	u = ctx.user()
	c = ctx.login_to(srv, u)
	c.select("INBOX")
	tag, _ = idle_start(c)
	got, ok, secs = wait_for(c, lambda l: l.upper().startswith(b"* OK"), 3.5 * timeout_scale())
	expect(ok, "no '* OK' keepalive within 3.5 s with --idle-keepalive 1: %r" % got)
	got2, ok2, secs2 = wait_for(c, lambda l: l.upper().startswith(b"* OK"), 3.5 * timeout_scale())
	expect(ok2, "only one keepalive in 7 s with --idle-keepalive 1: %r" % (got + got2))
	for line in got + got2:
		expect(line.startswith(b"* "), "keepalive must be untagged: %r" % line)
	idle_done(c, tag)
	c.ok("NOOP")
	# Keepalives also in the authenticated state.
	c.ok("UNSELECT")
	tag, _ = idle_start(c)
	got, ok, _ = wait_for(c, lambda l: l.upper().startswith(b"* OK"), 3.5 * timeout_scale())
	expect(ok, "no keepalive during IDLE in the authenticated state: %r" % got)
	idle_done(c, tag)


def test_idle_condstore_modseq(ctx):
	s = _setup(ctx)
	if not s:
		return
	idler, other, uids = s
	if not need(ctx, idler, "CONDSTORE"):
		return
	r = idler.ok("SELECT INBOX (CONDSTORE)")
	hms = [int(v) for n, v in r.codes() if n == "HIGHESTMODSEQ"]
	expect(hms, "SELECT (CONDSTORE) without HIGHESTMODSEQ: %r" % r.untagged)
	other.select("INBOX")
	tag, _ = idle_start(idler)
	other.ok("STORE 1 +FLAGS.SILENT (\\Seen)")

	def fetch1(line):
		t = parse(line)
		return len(t) >= 4 and str(t[2]).upper() == "FETCH" and t[1] == "1"
	got, ok, secs = wait_for(idler, fetch1, 5 * PROMPT)
	expect(ok, "no FETCH during IDLE after another session's STORE: %r" % got)
	t = parse(got[-1])
	items = {str(t[3][i]).upper(): t[3][i + 1] for i in range(0, len(t[3]) - 1, 2)}
	ms = modseq_of(items)
	expect(ms is not None, "unsolicited FETCH without MODSEQ after SELECT (CONDSTORE) "
	       "(RFC 7162 3.1.x / RFC 4551 3.7): %r" % got[-1])
	expect(ms > hms[-1], "MODSEQ %d after a STORE not above HIGHESTMODSEQ %d at SELECT" % (ms, hms[-1]))
	idle_done(idler, tag)


def test_idle_qresync_vanished(ctx):
	u = ctx.user()
	idler = lax(ctx.login(u))
	if not need(ctx, idler, "IDLE", "QRESYNC"):
		return
	other = ctx.login(u)
	uids = fill(other, "INBOX", 3)
	idler.ok("ENABLE QRESYNC")
	idler.select("INBOX")
	other.select("INBOX")
	tag, _ = idle_start(idler)
	other.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uids[1])
	other.ok("UID EXPUNGE %d" % uids[1])
	got, ok, secs = wait_for(idler, lambda l: l.upper().startswith(b"* VANISHED")
				 or l.upper().rstrip(b"\r\n").endswith(b" EXPUNGE"), 5 * PROMPT)
	expect(ok, "no VANISHED during IDLE after an expunge: %r" % got)
	expect(got[-1].upper().startswith(b"* VANISHED "),
	       "EXPUNGE sent to a QRESYNC client (RFC 7162 3.2.10: VANISHED): %r" % got[-1])
	r = idle_done(idler, tag)
	v = vanished(Result(r.tag, r.tagged, got, []))
	eq(v, [(False, [uids[1]])], "VANISHED during IDLE")
	eq(uids_of(idler), [uids[0], uids[2]], "UIDs after IDLE")
