"""MOVE (RFC 6851) with UIDPLUS (RFC 4315): COPYUID sent in an untagged
OK before the EXPUNGE responses (the RFC 6851 3.3 example; the tagged OK
is accepted too), EXPUNGE or VANISHED responses, flags and internal date
kept, other \\Deleted messages left alone, TRYCREATE, and atomicity (two
sessions moving the same messages to different mailboxes: every message
ends up in exactly one place -- RFC 6851 3.3: none lost (MUST), none in
both mailboxes (SHOULD NOT; kura moves atomically, Dovecot 2.3 leaves
duplicates))."""

import threading

from integlib import Closed, Fail, View, eq, expect, message, parse_imap_date
from test_x_lib import fill, lax, need, uid_list, uids_of, untagged_codes, vanished


def _copyuid(r):
	"""(uidvalidity, [src], [dst], where) of the COPYUID of r."""
	where = None
	cu = None
	for i, u in enumerate(r.untagged):
		if u.upper().startswith(b"* OK [COPYUID "):
			cu = u[len(b"* OK [COPYUID "):u.index(b"]")].decode()
			where = i
	if cu is None and r.code_name() == "COPYUID":
		cu = r.code.split(None, 1)[1]
		where = "tagged"
	if cu is None:
		raise Fail("MOVE without COPYUID (RFC 6851 3.3 / RFC 4315): %r" % (r.untagged + [r.tagged],))
	uv, src, dst = cu.split()
	return int(uv), uid_list(src), uid_list(dst), where


def _setup(ctx, n=5):
	c = ctx.login()
	if not need(ctx, c, "MOVE", "UIDPLUS"):
		return None, None
	return c, fill(c, "INBOX", n)


def test_move_copyuid_untagged_before_expunge(ctx):
	c, uids = _setup(ctx, 5)
	if not c:
		return
	c.ok("CREATE foo")
	uv_dst = int(c.ok("STATUS foo (UIDVALIDITY)").data("STATUS")[0][3][1])
	c.select("INBOX")
	v = View(uids)
	# RFC 6851 3.3: "a UID MOVE 42:69 foo" -> "* OK [COPYUID 432432 42:69 1202:1229]",
	# EXPUNGEs, tagged OK.
	r = c.ok("UID MOVE %d:%d foo" % (uids[1], uids[3]))
	uv, src, dst, where = _copyuid(r)
	eq(uv, uv_dst, "COPYUID UIDVALIDITY is the destination's")
	eq(sorted(src), uids[1:4], "COPYUID source UIDs")
	eq(len(dst), 3, "COPYUID destination UIDs")
	first_exp = next((i for i, u in enumerate(r.untagged) if u.upper().rstrip(b"\r\n").endswith(b" EXPUNGE")), None)
	expect(first_exp is not None, "no EXPUNGE responses for MOVE: %r" % r.untagged)
	if where != "tagged":
		expect(where < first_exp, "COPYUID untagged OK after the EXPUNGE responses: %r" % r.untagged)
	eq(sorted(v.expunged_by(r)), uids[1:4], "messages reported expunged")
	v.check(c, "after UID MOVE")
	# COPYUID pairs correspond: source UID i -> destination UID i.
	c.select("foo")
	got = {}
	f = c.ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])").fetches()
	for _s, it in f.items():
		got[int(it["UID"])] = it["BODY[HEADER.FIELDS (SUBJECT)]"]
	eq(sorted(got), sorted(dst), "UIDs in the destination")
	for s_uid, d_uid in zip(src, dst):
		eq(got[d_uid].strip(), b"Subject: m%d" % uids.index(s_uid), "message at destination UID %d" % d_uid)


def test_move_keeps_flags_date_and_other_deleted(ctx):
	c, uids = _setup(ctx, 0)
	if not c:
		return
	dates = ['"01-Feb-2020 10:00:00 +0100"', '"02-Mar-2021 11:30:00 -0500"', '"03-Apr-2022 23:59:59 +0000"']
	msgs = [message(subject="k%d" % i) for i in range(3)]
	flags = [["\\Flagged", "$Work"], ["\\Deleted"], ["\\Seen", "\\Answered"]]
	uids = [c.append("INBOX", m, flags=fl, date=d.strip('"')) for m, fl, d in zip(msgs, flags, dates)]
	c.ok("CREATE t")
	c.select("INBOX")
	r = c.ok("MOVE 1,3 t")
	_uv, src, dst, _w = _copyuid(r)
	eq(sorted(src), [uids[0], uids[2]], "COPYUID sources of MOVE 1,3")
	# Message 2 is \Deleted but not moved: it must stay (MOVE is not EXPUNGE).
	eq(uids_of(c), [uids[1]], "INBOX after MOVE 1,3 (\\Deleted message 2 must stay)")
	c.select("t")
	f = c.ok("FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])").fetches()
	by_uid = {int(it["UID"]): it for it in f.values()}
	for s_uid, d_uid in zip(src, dst):
		i = uids.index(s_uid)
		it = by_uid[d_uid]
		eq(it["BODY[]"], msgs[i], "bytes of moved message %d" % i)
		eq({str(x).lower() for x in it["FLAGS"]} - {"\\recent"}, {x.lower() for x in flags[i]},
		   "flags of moved message %d" % i)
		eq(parse_imap_date(it["INTERNALDATE"]), parse_imap_date(dates[i].strip('"')),
		   "INTERNALDATE of moved message %d (%r)" % (i, it["INTERNALDATE"]))


def test_move_errors(ctx):
	c, uids = _setup(ctx, 2)
	if not c:
		return
	c.select("INBOX")
	r = c.cmd("MOVE 1 nosuch")
	eq((r.status, r.code_name()), ("NO", "TRYCREATE"), "MOVE to a missing mailbox (%r)" % r)
	eq(uids_of(c), uids, "source unchanged after a failed MOVE")
	r = c.cmd("MOVE 5 INBOX")
	expect(r.status in ("BAD", "NO"), "MOVE of a message number beyond EXISTS: %r" % r)
	r = c.ok("UID MOVE 999999 INBOX")
	eq(r.code_name() != "COPYUID" and not any(n == "COPYUID" for n, _ in untagged_codes(r)), True,
	   "UID MOVE of no existing message must not report COPYUID (%r)" % r.untagged)
	c.ok("UNSELECT")
	r = c.cmd("MOVE 1 INBOX")
	eq(r.status, "BAD", "MOVE in the authenticated state")
	# Move into the selected mailbox itself: allowed, the message gets a new UID.
	c.select("INBOX")
	r = c.cmd("UID MOVE %d INBOX" % uids[0])
	expect(r.status in ("OK", "NO"), "MOVE into the same mailbox: %r" % r)
	if r.status == "OK":
		_uv, src, dst, _w = _copyuid(r)
		left = uids_of(c)
		eq(sorted(left), sorted([uids[1]] + dst), "UIDs after moving a message onto its own mailbox")


def test_move_qresync_vanished(ctx):
	c, uids = _setup(ctx, 4)
	if not c:
		return
	lax(c)
	if not need(ctx, c, "QRESYNC"):
		return
	c.ok("CREATE q")
	c.ok("ENABLE QRESYNC")
	c.select("INBOX")
	r = c.ok("MOVE 2:3 q")
	expect(not any(u.upper().rstrip(b"\r\n").endswith(b" EXPUNGE") for u in r.untagged),
	       "EXPUNGE instead of VANISHED for MOVE with QRESYNC: %r" % r.untagged)
	eq(vanished(r), [(False, uids[1:3])], "VANISHED of MOVE 2:3")
	_uv, src, dst, where = _copyuid(r)
	if where != "tagged":
		vi = next(i for i, u in enumerate(r.untagged) if u.upper().startswith(b"* VANISHED"))
		expect(where < vi, "COPYUID after VANISHED: %r" % r.untagged)


def test_move_atomic_concurrent(ctx):
	"""Two sessions MOVE the same 30 messages to different mailboxes at
	once, in small pieces: each message ends up in exactly one of them."""
	u = ctx.user()
	c = ctx.login(u)
	if not need(ctx, c, "MOVE"):
		return
	n = 30
	msgs = {}
	for i in range(n):
		m = message(subject="atom%d" % i)
		msgs[c.append("INBOX", m)] = m
	c.ok("CREATE a")
	c.ok("CREATE b")
	errs = []

	def mover(dest):
		try:
			s = ctx.login(u)
			s.select("INBOX")
			for uid in sorted(msgs):
				r = s.cmd("UID MOVE %d %s" % (uid, dest))
				# NO is acceptable when the other session won the race.
				if r.status not in ("OK", "NO"):
					errs.append("UID MOVE %d %s -> %r" % (uid, dest, r))
		except (Fail, Closed, OSError) as e:
			errs.append("%s: %s" % (dest, e))
	ts = [threading.Thread(target=mover, args=(d,)) for d in ("a", "b")]
	for t in ts:
		t.start()
	for t in ts:
		t.join(50)
	expect(not errs, "concurrent MOVE failures: %s" % errs[:5])
	seen = {}
	for box in ("INBOX", "a", "b"):
		c.select(box)
		f = c.ok("UID FETCH 1:* (BODY.PEEK[])").fetches()
		for it in f.values():
			seen.setdefault(it["BODY[]"], []).append(box)
	missing = [m for m in msgs.values() if m not in seen]
	dup = {m: b for m, b in seen.items() if len(b) > 1}
	expect(not missing, "%d messages lost by concurrent MOVEs" % len(missing))
	expect(not dup, "%d messages duplicated by concurrent MOVEs: %r" % (len(dup), list(dup.values())[:5]))
	expect(not seen or all(b[0] in ("a", "b") for b in seen.values()),
	       "messages left in INBOX after both sessions moved all: %r"
	       % sorted(set(b[0] for b in seen.values())))


def test_move_sequence_set_order(ctx):
	"""MOVE 3,1 with COPYUID: source and destination sets correspond in
	order (RFC 4315 3), whatever order the server processes them in."""
	c, uids = _setup(ctx, 4)
	if not c:
		return
	c.ok("CREATE d")
	c.select("INBOX")
	r = c.ok("MOVE 4,1,3 d")
	_uv, src, dst, _w = _copyuid(r)
	eq(sorted(src), [uids[0], uids[2], uids[3]], "COPYUID sources")
	eq(len(set(dst)), 3, "distinct destination UIDs")
	c.select("d")
	f = c.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])").fetches()
	subj = {int(it["UID"]): it["BODY[HEADER.FIELDS (SUBJECT)]"].strip() for it in f.values()}
	for s_uid, d_uid in zip(src, dst):
		eq(subj[d_uid], b"Subject: m%d" % uids.index(s_uid), "COPYUID pair %d -> %d" % (s_uid, d_uid))
