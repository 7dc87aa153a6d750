"""QRESYNC (RFC 7162 section 3.2, originally RFC 5162): ENABLE QRESYNC,
SELECT/EXAMINE (QRESYNC (uidvalidity modseq [known-uids [seq-match]]))
with VANISHED (EARLIER) and FETCH of changed flags, VANISHED instead of
EXPUNGE afterwards (own EXPUNGE, UID EXPUNGE, MOVE, other sessions),
HIGHESTMODSEQ in the tagged OK of an expunging command, UID FETCH
(CHANGEDSINCE n VANISHED), the [CLOSED] boundary on re-SELECT, and BAD for
QRESYNC parameters without ENABLE."""

from integlib import Fail, Result, eq, expect, message
from test_x_lib import fill, highestmodseq, lax, modseq_of, need, uids_of, vanished


def _enabled(c):
	r = c.ok("ENABLE QRESYNC")
	got = {str(x).upper() for t in r.data("ENABLED") for x in t[2:]}
	expect("QRESYNC" in got, "ENABLE QRESYNC without '* ENABLED QRESYNC': %r" % r.untagged)
	expect(got <= {"QRESYNC", "CONDSTORE"}, "ENABLED lists more than asked: %r" % got)
	return r


def _session(ctx, user=None):
	c = lax(ctx.login(user))
	if not need(ctx, c, "QRESYNC", "CONDSTORE", "ENABLE"):
		return None
	return c


def _state(c, mbox="INBOX"):
	"""(uidvalidity, highestmodseq, uids) of mbox via EXAMINE (CONDSTORE)."""
	r = c.ok("EXAMINE %s (CONDSTORE)" % mbox)
	uv = int(r.code_value("UIDVALIDITY"))
	h = highestmodseq(r)
	uids = uids_of(c)
	c.ok("UNSELECT")
	return uv, h, uids


def _no_expunge(r, what):
	bad = [u for u in r.untagged if u.upper().rstrip(b"\r\n").endswith(b" EXPUNGE")]
	expect(not bad, "%s: EXPUNGE responses sent to a client that enabled QRESYNC "
	       "(RFC 7162 3.2.10 requires VANISHED): %r" % (what, bad))


def _fetch_by_uid(r):
	out = {}
	for seq, it in r.fetch_list():
		expect("UID" in it, "FETCH without UID in a QRESYNC resynchronization: %r" % (it,))
		out.setdefault(int(it["UID"]), {}).update(it)
	return out


def test_enable_qresync_and_bad_without(ctx):
	c = _session(ctx)
	if not c:
		return
	uv, h, _ = _state(c)
	r = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h))
	eq(r.status, "BAD", "SELECT with QRESYNC before ENABLE QRESYNC (%r)" % r)
	c.ok("SELECT INBOX (CONDSTORE)")
	r = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
	eq(r.status, "BAD", "UID FETCH (VANISHED) before ENABLE QRESYNC (%r)" % r)
	c.ok("UNSELECT")
	_enabled(c)
	r = c.ok("SELECT INBOX (QRESYNC (%d %d))" % (uv, h))
	expect(highestmodseq(r) is not None, "SELECT (QRESYNC) without HIGHESTMODSEQ: %r" % r.untagged)
	r = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
	eq(r.status, "BAD", "VANISHED modifier on FETCH (not UID FETCH) (%r)" % r)
	r = c.cmd("UID FETCH 1:* (FLAGS) (VANISHED)")
	eq(r.status, "BAD", "VANISHED without CHANGEDSINCE (%r)" % r)


def test_select_qresync_vanished_and_changes(ctx):
	u = ctx.user()
	c = _session(ctx, u)
	if not c:
		return
	w = ctx.login(u)
	uids = fill(w, "INBOX", 6)
	_enabled(c)
	uv, h, known = _state(c)
	eq(known, uids, "UIDs before the changes")
	# Another session: expunge 2nd and 4th, flag the 3rd, append one.
	w.select("INBOX")
	w.ok("UID STORE %d,%d +FLAGS.SILENT (\\Deleted)" % (uids[1], uids[3]))
	w.ok("UID EXPUNGE %d,%d" % (uids[1], uids[3]))
	w.ok("UID STORE %d +FLAGS.SILENT (\\Flagged $Done)" % uids[2])
	new_uid = w.append("INBOX", message(subject="new"))
	r = c.ok("SELECT INBOX (QRESYNC (%d %d %d:%d))" % (uv, h, uids[0], uids[-1]))
	_no_expunge(r, "SELECT (QRESYNC)")
	h2 = highestmodseq(r)
	expect(h2 is not None and h2 > h, "HIGHESTMODSEQ after changes: %s (was %d)" % (h2, h))
	v = vanished(r)
	expect(all(e for e, _ in v), "VANISHED without (EARLIER) in SELECT (QRESYNC): %r" % v)
	gone = sorted(x for _e, s in v for x in s)
	present = set(uids) - {uids[1], uids[3]} | {new_uid}
	expect({uids[1], uids[3]} <= set(gone), "VANISHED (EARLIER) %r lacks expunged UIDs %d,%d"
	       % (gone, uids[1], uids[3]))
	expect(not (set(gone) & present), "VANISHED (EARLIER) %r names existing messages %r" % (gone, present))
	f = _fetch_by_uid(r)
	expect(uids[2] in f, "no FETCH for the message whose flags changed: %r" % r.untagged)
	fl = {str(x).lower() for x in f[uids[2]].get("FLAGS", [])}
	expect({"\\flagged", "$done"} <= fl, "FLAGS in the resync FETCH: %r" % f[uids[2]])
	expect(modseq_of(f[uids[2]]) is not None and modseq_of(f[uids[2]]) > h,
	       "MODSEQ in the resync FETCH: %r" % f[uids[2]])
	# VANISHED (EARLIER) must come before the FETCH responses (RFC 7162 3.2.5.1).
	kinds = [("V" if u.upper().startswith(b"* VANISHED") else "F") for u in r.untagged
		 if u.upper().startswith(b"* VANISHED") or b" FETCH " in u.upper()[:20]]
	expect("".join(kinds) == "V" * kinds.count("V") + "F" * kinds.count("F"),
	       "VANISHED (EARLIER) after FETCH in SELECT (QRESYNC): %r" % r.untagged)
	eq(uids_of(c), sorted(present), "UIDs after resync")


def test_select_qresync_without_known_uids(ctx):
	u = ctx.user()
	c = _session(ctx, u)
	if not c:
		return
	w = ctx.login(u)
	uids = fill(w, "INBOX", 4)
	_enabled(c)
	uv, h, _ = _state(c)
	w.select("INBOX")
	w.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uids[0])
	w.ok("UID EXPUNGE %d" % uids[0])
	r = c.ok("EXAMINE INBOX (QRESYNC (%d %d))" % (uv, h))
	_no_expunge(r, "EXAMINE (QRESYNC)")
	gone = sorted(x for _e, s in vanished(r) for x in s)
	expect(uids[0] in gone and not set(gone) & set(uids[1:]),
	       "VANISHED (EARLIER) without known-uids: %r (expunged %d)" % (gone, uids[0]))
	# Wrong UIDVALIDITY: a plain open, no VANISHED and no FETCH.
	c.ok("UNSELECT")
	r = c.ok("SELECT INBOX (QRESYNC (%d %d 1:100))" % (uv + 1, 1))
	eq((vanished(r), r.fetch_list()), ([], []), "SELECT (QRESYNC) with a wrong UIDVALIDITY")
	eq(int(r.code_value("UIDVALIDITY")), uv, "UIDVALIDITY")


def test_select_qresync_seq_match_data(ctx):
	u = ctx.user()
	c = _session(ctx, u)
	if not c:
		return
	w = ctx.login(u)
	uids = fill(w, "INBOX", 8)
	_enabled(c)
	uv, h, _ = _state(c)
	w.select("INBOX")
	w.ok("UID STORE %d,%d +FLAGS.SILENT (\\Deleted)" % (uids[2], uids[6]))
	w.ok("UID EXPUNGE %d,%d" % (uids[2], uids[6]))
	# The client knew seq 2 -> uids[1] (still true) and seq 5 -> uids[4]
	# (now seq 4): RFC 7162 3.2.5.2.  The server may skip UIDs up to a
	# matching pair (uids[1]); everything expunged above must be reported.
	r = c.ok("SELECT INBOX (QRESYNC (%d %d %d:%d (2,5 %d,%d)))"
		 % (uv, h, uids[0], uids[-1], uids[1], uids[4]))
	_no_expunge(r, "SELECT (QRESYNC seq-match)")
	gone = set(x for _e, s in vanished(r) for x in s)
	expect({uids[2], uids[6]} <= gone, "VANISHED (EARLIER) %r lacks %d,%d" % (sorted(gone), uids[2], uids[6]))
	expect(not gone & (set(uids) - {uids[2], uids[6]}), "VANISHED names existing messages: %r" % sorted(gone))


def test_vanished_instead_of_expunge(ctx):
	u = ctx.user()
	c = _session(ctx, u)
	if not c:
		return
	uids = fill(c, "INBOX", 8)
	c.ok("CREATE dest")
	_enabled(c)
	c.select("INBOX")
	# EXPUNGE: RFC 5162 3.3 example B202 (VANISHED).
	c.ok("STORE 2,3 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("EXPUNGE")
	_no_expunge(r, "EXPUNGE")
	eq(vanished(r), [(False, [uids[1], uids[2]])], "VANISHED response to EXPUNGE")
	# UID EXPUNGE.
	c.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uids[4])
	r = c.ok("UID EXPUNGE %d" % uids[4])
	_no_expunge(r, "UID EXPUNGE")
	eq(vanished(r), [(False, [uids[4]])], "VANISHED response to UID EXPUNGE")
	# MOVE (RFC 6851 4.3 with QRESYNC: VANISHED).
	if need(ctx, c, "MOVE"):
		r = c.ok("UID MOVE %d,%d dest" % (uids[5], uids[7]))
		_no_expunge(r, "UID MOVE")
		eq(sorted(x for _e, s in vanished(r) for x in s), [uids[5], uids[7]], "VANISHED of UID MOVE")
		expect(all(not e for e, _ in vanished(r)), "VANISHED (EARLIER) for MOVE: %r" % r.untagged)
	# Another session's expunge arrives as VANISHED on NOOP.
	o = ctx.login(u)
	o.select("INBOX")
	o.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uids[0])
	o.ok("UID EXPUNGE %d" % uids[0])
	r = c.ok("NOOP")
	_no_expunge(r, "NOOP after another session's expunge")
	eq(vanished(r), [(False, [uids[0]])], "VANISHED on NOOP")
	eq(uids_of(c), [uids[3], uids[6]], "UIDs left")
	# CLOSE reports nothing but bumps HIGHESTMODSEQ (RFC 5162 3.4).
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("CLOSE")
	eq(vanished(r), [], "VANISHED after CLOSE")


def test_expunge_tagged_highestmodseq(ctx):
	"""RFC 7162 3.2.7-3.2.9 (RFC 5162 3.3-3.5): with QRESYNC enabled, an
	EXPUNGE, UID EXPUNGE or CLOSE that removed messages reports the new
	per-mailbox mod-sequence in its tagged OK."""
	c = _session(ctx)
	if not c:
		return
	uids = fill(c, "INBOX", 4)
	_enabled(c)
	h = highestmodseq(c.select("INBOX"))
	probs = []
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	for cmd in ("EXPUNGE", "UID EXPUNGE %d" % uids[1], "CLOSE"):
		if cmd.startswith("UID"):
			c.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % uids[1])
		if cmd == "CLOSE":
			c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
		r = c.ok(cmd)
		v = [int(x) for n, x in Result(r.tag, r.tagged, [], []).codes() if n == "HIGHESTMODSEQ"]
		if not v or v[0] <= h:
			probs.append("%s -> %r (want OK [HIGHESTMODSEQ n] with n > %d)" % (cmd, r, h))
		else:
			h = v[0]
	if probs:
		raise Fail("; ".join(probs))


def test_uid_fetch_changedsince_vanished(ctx):
	u = ctx.user()
	c = _session(ctx, u)
	if not c:
		return
	uids = fill(c, "INBOX", 10)
	_enabled(c)
	r = c.select("INBOX")
	h = highestmodseq(r)
	o = ctx.login(u)
	o.select("INBOX")
	o.ok("UID STORE %d,%d +FLAGS.SILENT (\\Deleted)" % (uids[1], uids[7]))
	o.ok("UID EXPUNGE %d,%d" % (uids[1], uids[7]))
	o.ok("UID STORE %d,%d +FLAGS.SILENT (\\Seen)" % (uids[3], uids[8]))
	# RFC 7162 3.2.6 example: UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED),
	# here over the whole range before this session heard of the changes.
	r = c.ok("UID FETCH %d:%d (FLAGS) (CHANGEDSINCE %d VANISHED)" % (uids[0], uids[-1], h))
	_no_expunge(r, "UID FETCH (CHANGEDSINCE VANISHED)")
	# Expunges this session has not heard of yet may come as a plain
	# VANISHED (the unsolicited expunge notice) instead of in the EARLIER set.
	gone = set(x for _e, s in vanished(r) for x in s)
	expect({uids[1], uids[7]} <= gone, "VANISHED %r lacks %d,%d" % (sorted(gone), uids[1], uids[7]))
	expect(not gone & (set(uids) - {uids[1], uids[7]}), "VANISHED (EARLIER) names live messages: %r" % sorted(gone))
	# VANISHED (EARLIER) before any FETCH.
	first_fetch = next((i for i, u in enumerate(r.untagged) if b" FETCH " in u[:20].upper()), len(r.untagged))
	last_van = max((i for i, u in enumerate(r.untagged) if u.upper().startswith(b"* VANISHED (EARLIER)")), default=-1)
	expect(last_van < first_fetch, "VANISHED (EARLIER) after FETCH: %r" % r.untagged)
	changed = {}
	for seq, it in r.fetch_list():
		if "UID" in it and modseq_of(it) is not None and modseq_of(it) > h:
			changed[int(it["UID"])] = it
	expect({uids[3], uids[8]} <= set(changed), "FETCH of the changed messages: %r" % r.untagged)
	# Restricted to a UID range that excludes the expunged ones (after a
	# NOOP, so no pending unsolicited updates mix in).
	c.ok("NOOP")
	r = c.ok("UID FETCH %d:%d (FLAGS) (CHANGEDSINCE %d VANISHED)" % (uids[2], uids[6], h))
	gone = set(x for e, s in vanished(r) if e for x in s)
	expect(not gone & set(uids), "VANISHED (EARLIER) outside the requested UID range: %r" % sorted(gone))
	got = [int(it["UID"]) for _s, it in r.fetch_list() if "UID" in it and modseq_of(it) and modseq_of(it) > h]
	eq(sorted(set(got)), [uids[3]], "changed messages within the range")


def test_closed_on_reselect(ctx):
	c = _session(ctx)
	if not c:
		return
	fill(c, "INBOX", 2)
	c.ok("CREATE other")
	_enabled(c)
	c.select("INBOX")
	r = c.ok("SELECT other")
	lines = r.untagged
	idx = [i for i, u in enumerate(lines) if u.upper().startswith(b"* OK [CLOSED]")]
	eq(len(idx), 1, "one untagged OK [CLOSED] when SELECT implicitly closes a mailbox (%r)" % lines)
	before = lines[:idx[0]]
	expect(not any(b"EXISTS" in u.upper() or b"UIDVALIDITY" in u.upper() for u in before),
	       "responses for the new mailbox before [CLOSED]: %r" % lines)
	eq(r.number("EXISTS"), 0, "EXISTS of the newly selected mailbox")
	# EXAMINE of another mailbox too.
	r = c.ok("EXAMINE INBOX")
	expect(any(u.upper().startswith(b"* OK [CLOSED]") for u in r.untagged),
	       "no [CLOSED] on EXAMINE INBOX while \"other\" is selected: %r" % r.untagged)
	# Not after CLOSE/UNSELECT (nothing is implicitly closed).
	c.ok("UNSELECT")
	r = c.ok("SELECT INBOX")
	expect(not any(b"[CLOSED]" in u.upper() for u in r.untagged), "[CLOSED] without a selected mailbox: %r" % r.untagged)
	# A failed SELECT leaves the session unselected.
	r = c.cmd("SELECT nosuchmailbox")
	eq(r.status, "NO", "SELECT of a missing mailbox")
	eq(c.cmd("FETCH 1 (UID)").status, "BAD", "FETCH after a failed SELECT (authenticated state)")
