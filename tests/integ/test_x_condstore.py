"""CONDSTORE (RFC 7162 section 3.1, originally RFC 4551): HIGHESTMODSEQ on
SELECT/EXAMINE (CONDSTORE) and in STATUS, MODSEQ as a FETCH item and in
unsolicited FETCH responses, FETCH (CHANGEDSINCE), conditional STORE
(UNCHANGEDSINCE) with [MODIFIED], the MODSEQ search key with its
(MODSEQ n) result, ESEARCH interaction (RFC 4731 3.2), and a server that
stores mod-sequences never answers NOMODSEQ."""

from integlib import eq, expect, message
from test_x_lib import (esearch, fill, highestmodseq, lax, modseq_of, need, statuses, uid_set)


def _setup(ctx, n=5, flags=None):
	c = lax(ctx.login())
	if not need(ctx, c, "CONDSTORE"):
		return None, None
	uids = fill(c, "INBOX", n, flags=flags)
	return c, uids


def _modseqs(c, spec="1:*", uid=False):
	"""{seq: (uid, modseq, flags)} from FETCH spec (UID MODSEQ FLAGS)."""
	r = c.ok("%sFETCH %s (UID MODSEQ FLAGS)" % ("UID " if uid else "", spec))
	out = {}
	for seq, it in r.fetches().items():
		ms = modseq_of(it)
		expect(ms is not None and ms > 0, "FETCH MODSEQ missing or 0: %r" % it)
		out[seq] = (int(it["UID"]), ms, {str(f).lower() for f in it["FLAGS"]} - {"\\recent"})
	return out


def _no_nomodseq(r, what):
	expect(not any(n == "NOMODSEQ" for n, _ in r.codes()),
	       "%s answered NOMODSEQ (the server stores mod-sequences): %r" % (what, r.untagged))


def test_select_condstore_highestmodseq(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "CONDSTORE"):
		return
	# Empty mailbox: HIGHESTMODSEQ still sent (RFC 7162 3.1.2.1; a
	# mod-sequence is a positive number).
	r = c.ok("SELECT INBOX (CONDSTORE)")
	_no_nomodseq(r, "SELECT INBOX (CONDSTORE) of an empty mailbox")
	h0 = highestmodseq(r)
	expect(h0 is not None and h0 >= 1, "SELECT (CONDSTORE) without HIGHESTMODSEQ: %r" % r.untagged)
	expect(any(u.startswith(b"* OK [HIGHESTMODSEQ ") for u in r.untagged),
	       "HIGHESTMODSEQ must come in an untagged OK: %r" % r.untagged)
	c.ok("UNSELECT")
	fill(c, "INBOX", 3)
	r = c.ok("EXAMINE INBOX (CONDSTORE)")
	_no_nomodseq(r, "EXAMINE (CONDSTORE)")
	h1 = highestmodseq(r)
	expect(h1 is not None and h1 > h0, "HIGHESTMODSEQ did not grow with 3 APPENDs: %s -> %s" % (h0, h1))
	m = _modseqs(c)
	eq(sorted(m), [1, 2, 3], "messages")
	expect(max(v[1] for v in m.values()) <= h1,
	       "a message MODSEQ exceeds HIGHESTMODSEQ %d: %r" % (h1, m))
	# Plain SELECT in another mailbox of a CONDSTORE-enabled session.
	c.ok("CREATE other")
	r = c.ok("SELECT other")
	_no_nomodseq(r, "SELECT other after CONDSTORE was enabled")
	expect(highestmodseq(r) is not None,
	       "SELECT after a CONDSTORE enabling command lacks HIGHESTMODSEQ: %r" % r.untagged)


def test_enable_condstore(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "CONDSTORE", "ENABLE"):
		return
	r = c.ok("ENABLE CONDSTORE")
	got = [str(x).upper() for t in r.data("ENABLED") for x in t[2:]]
	eq(got, ["CONDSTORE"], "ENABLED response to ENABLE CONDSTORE")
	fill(c, "INBOX", 2)
	r = c.select("INBOX")
	expect(highestmodseq(r) is not None, "SELECT after ENABLE CONDSTORE lacks HIGHESTMODSEQ: %r" % r.untagged)
	# STORE responses carry MODSEQ once CONDSTORE is enabled.
	r = c.ok("STORE 1 +FLAGS (\\Answered)")
	f = r.fetches()
	expect(1 in f and modseq_of(f[1]) is not None, "STORE FETCH response lacks MODSEQ: %r" % r.untagged)


def test_fetch_modseq_and_growth(ctx):
	c, uids = _setup(ctx, 4)
	if not c:
		return
	r = c.ok("SELECT INBOX (CONDSTORE)")
	h = highestmodseq(r)
	before = _modseqs(c)
	# RFC 4551 example 13: FETCH 1:3 (MODSEQ).
	r = c.ok("FETCH 1:3 (MODSEQ)")
	f = r.fetches()
	eq(sorted(f), [1, 2, 3], "FETCH 1:3 (MODSEQ)")
	for s in (1, 2, 3):
		eq(modseq_of(f[s]), before[s][1], "MODSEQ of %d" % s)
	r = c.ok("STORE 2 +FLAGS (\\Seen)")
	f = r.fetches()
	expect(2 in f, "no FETCH response to STORE 2 +FLAGS: %r" % r.untagged)
	ms = modseq_of(f[2])
	expect(ms is not None, "FETCH response to STORE after SELECT (CONDSTORE) lacks MODSEQ: %r" % r.untagged)
	expect(ms > h, "MODSEQ after STORE %d not above the old HIGHESTMODSEQ %d" % (ms, h))
	after = _modseqs(c)
	eq(after[2][1], ms, "FETCH MODSEQ of the changed message")
	for s in (1, 3, 4):
		eq(after[s][1], before[s][1], "MODSEQ of untouched message %d" % s)
	r = c.ok("STATUS INBOX (HIGHESTMODSEQ)")
	eq(int(statuses(r)["INBOX"]["HIGHESTMODSEQ"]), ms, "STATUS HIGHESTMODSEQ after the STORE")
	# Every further change raises the message's MODSEQ strictly.
	last = ms
	for fl in ("\\Flagged", "$Label1", "\\Draft"):
		r = c.ok("STORE 2 +FLAGS.SILENT (%s)" % fl)
		m = _modseqs(c, "2")[2][1]
		expect(m > last, "MODSEQ did not grow with +FLAGS %s: %d -> %d" % (fl, last, m))
		last = m
	# A new message gets a MODSEQ above everything before it.
	c.append("INBOX", message(subject="new"))
	r = c.ok("NOOP")
	m5 = _modseqs(c, "5")[5][1]
	expect(m5 > last, "MODSEQ of a new message %d not above %d" % (m5, last))
	r = c.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
	st = statuses(r)["INBOX"]
	eq((int(st["HIGHESTMODSEQ"]), int(st["MESSAGES"])), (m5, 5), "STATUS (HIGHESTMODSEQ MESSAGES)")


def test_fetch_changedsince(ctx):
	c, uids = _setup(ctx, 6)
	if not c:
		return
	r = c.ok("SELECT INBOX (CONDSTORE)")
	h = highestmodseq(r)
	c.ok("STORE 2,5 +FLAGS.SILENT (\\Flagged)")
	r = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h)
	got = r.fetch_list()
	eq(sorted(s for s, _ in got), [2, 5], "FETCH (CHANGEDSINCE HIGHESTMODSEQ) returns only changed messages")
	for s, it in got:
		ms = modseq_of(it)
		expect(ms is not None and ms > h, "CHANGEDSINCE response needs MODSEQ > %d: %r" % (h, it))
		expect("\\flagged" in {str(f).lower() for f in it.get("FLAGS", [])},
		       "FLAGS of changed message %d: %r" % (s, it))
	# UID FETCH form: UIDs, and only within the requested set.
	r = c.ok("UID FETCH %d:%d (FLAGS) (CHANGEDSINCE %d)" % (uids[0], uids[3], h))
	got = r.fetch_list()
	eq([int(it["UID"]) for _s, it in got], [uids[1]], "UID FETCH (CHANGEDSINCE) within a UID range")
	# Nothing changed since the current highest: no FETCH at all.
	r = c.ok("STATUS INBOX (HIGHESTMODSEQ)")
	h2 = int(statuses(r)["INBOX"]["HIGHESTMODSEQ"])
	r = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h2)
	eq(r.fetch_list(), [], "FETCH (CHANGEDSINCE current HIGHESTMODSEQ)")
	# CHANGEDSINCE 1: the messages changed after mod-sequence 1.
	r = c.ok("FETCH 1:* (UID) (CHANGEDSINCE 1)")
	expect(len(r.fetch_list()) >= 1, "CHANGEDSINCE 1 returned nothing")
	r = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE x)")
	eq(r.status, "BAD", "CHANGEDSINCE with a non-number (%r)" % r)


def test_store_unchangedsince(ctx):
	c, uids = _setup(ctx, 9)
	if not c:
		return
	r = c.ok("SELECT INBOX (CONDSTORE)")
	h = highestmodseq(r)
	# Another session changes messages 7 and 9 after we learned h
	# (RFC 4551 example 6: STORE 7,5,9 with 7 and 9 modified).
	o = ctx.login(c.user)
	o.select("INBOX")
	o.ok("STORE 7 +FLAGS.SILENT (\\Answered)")
	o.ok("STORE 9 +FLAGS.SILENT ($Other)")
	r = c.cmd("STORE 7,5,9 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Deleted)" % h)
	expect(r.status in ("OK", "NO"), "conditional STORE: %r" % r)
	eq(r.code_name(), "MODIFIED", "tagged response code of a conditional STORE with stale UNCHANGEDSINCE (%r)" % r)
	eq(uid_set(r.code.split(None, 1)[1]), [7, 9], "[MODIFIED] message set")
	f = {}
	for s, it in r.fetch_list():
		f.setdefault(s, {}).update(it)
	expect(5 in f and modseq_of(f[5]) is not None,
	       "successful conditional STORE .SILENT must still send FETCH with MODSEQ for 5: %r" % r.untagged)
	now = _modseqs(c)
	expect("\\deleted" in now[5][2], "message 5 passed the test but is not \\Deleted: %r" % (now[5],))
	for s in (7, 9):
		expect("\\deleted" not in now[s][2], "message %d failed the test but was changed: %r" % (s, now[s]))
	eq(modseq_of(f[5]), now[5][1], "MODSEQ reported by STORE vs FETCH")
	# UID STORE form: the code lists UIDs.
	r = c.cmd("UID STORE %d,%d (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % (uids[6], uids[0], h))
	eq(r.code_name(), "MODIFIED", "UID STORE (UNCHANGEDSINCE) on a modified message (%r)" % r)
	eq(uid_set(r.code.split(None, 1)[1]), [uids[6]], "[MODIFIED] UID set")
	now2 = _modseqs(c)
	expect("\\seen" in now2[1][2] and "\\seen" not in now2[7][2], "UID STORE conditional results: %r" % now2)
	# Current mod-sequence passes; RFC 4551 example 3 (all pass).
	cur = now2[7][1]
	r = c.ok("UID STORE %d (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % (uids[6], cur))
	expect(r.code_name() != "MODIFIED", "conditional STORE with the current MODSEQ failed: %r" % r)
	f = r.fetches()
	expect(7 in f and modseq_of(f[7]) is not None and modseq_of(f[7]) > cur,
	       "FETCH with a higher MODSEQ after a successful conditional STORE: %r" % r.untagged)
	expect(int(f[7].get("UID", uids[6])) == uids[6], "UID in the FETCH of UID STORE")
	# RFC 4551 example 8: UNCHANGEDSINCE 0 always fails when the metadata
	# item exists, and a system flag always exists.
	r = c.cmd("STORE 3 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Answered)")
	eq((r.code_name(), uid_set(r.code.split(None, 1)[1]) if r.code else None), ("MODIFIED", [3]),
	   "STORE (UNCHANGEDSINCE 0) of a system flag (%r)" % r)
	expect("\\answered" not in _modseqs(c, "3")[3][2], "STORE (UNCHANGEDSINCE 0) changed the flags")
	# ... and a keyword that is set exists (the client tests its presence).
	c.ok("STORE 3 +FLAGS.SILENT ($MDNSent)")
	r = c.cmd("STORE 3 (UNCHANGEDSINCE 0) -FLAGS.SILENT ($MDNSent)")
	eq((r.code_name(), uid_set(r.code.split(None, 1)[1]) if r.code else None), ("MODIFIED", [3]),
	   "STORE (UNCHANGEDSINCE 0) of a keyword that is set (%r)" % r)
	expect("$mdnsent" in _modseqs(c, "3")[3][2], "STORE (UNCHANGEDSINCE 0) removed the keyword")


def test_search_modseq(ctx):
	c, uids = _setup(ctx, 5)
	if not c:
		return
	r = c.ok("SELECT INBOX (CONDSTORE)")
	h = highestmodseq(r)
	c.ok("STORE 2 +FLAGS.SILENT (\\Draft)")
	c.ok("STORE 4 +FLAGS.SILENT (\\Seen)")
	ms = _modseqs(c)
	r = c.ok("SEARCH MODSEQ %d" % (h + 1))
	d = r.data("SEARCH")
	eq(len(d), 1, "one SEARCH response")
	t = d[0]
	expect(isinstance(t[-1], list) and len(t[-1]) == 2 and str(t[-1][0]).upper() == "MODSEQ",
	       "SEARCH MODSEQ result must end with (MODSEQ n): %r" % r.untagged)
	nums = [int(x) for x in t[2:-1]]
	eq(sorted(nums), [2, 4], "SEARCH MODSEQ %d" % (h + 1))
	eq(int(t[-1][1]), max(ms[2][1], ms[4][1]), "(MODSEQ n) = highest MODSEQ of the found messages")
	# RFC 4551 example 15: the entry-name form with \Draft.
	r = c.ok('SEARCH MODSEQ "/flags/\\\\draft" all %d' % (h + 1))
	t = r.data("SEARCH")[0]
	# A server with one mod-sequence per message ignores the entry name
	# (RFC 7162 3.1.5), so message 4 may match as well.
	found = [int(x) for x in t[2:-1]]
	expect(found in ([2], [2, 4]), "SEARCH MODSEQ \"/flags/\\\\draft\" all n: %r" % found)
	eq(int(t[-1][1]), max(ms[s][1] for s in found), "(MODSEQ n) of the entry-name form")
	# No match: a plain empty SEARCH response without (MODSEQ).
	r = c.ok("SEARCH MODSEQ %d" % (max(v[1] for v in ms.values()) + 1))
	eq([t[2:] for t in r.data("SEARCH")], [[]], "SEARCH MODSEQ above everything (%r)" % r.untagged)
	# UID SEARCH returns UIDs; MODSEQ combined with other keys.
	r = c.ok("UID SEARCH MODSEQ %d SEEN" % (h + 1))
	t = r.data("SEARCH")[0]
	eq([int(x) for x in t[2:-1]], [uids[3]], "UID SEARCH MODSEQ n SEEN")
	eq(int(t[-1][1]), ms[4][1], "(MODSEQ n) of UID SEARCH")
	# RFC 4731 3.2: ESEARCH with MODSEQ.
	if need(ctx, c, "ESEARCH"):
		r = c.ok("SEARCH RETURN (MIN) MODSEQ %d" % (h + 1))
		e = esearch(r)
		eq(len(e), 1, "one ESEARCH response (%r)" % r.untagged)
		eq((e[0].get("MIN"), e[0].get("MODSEQ")), ("2", str(ms[2][1])), "ESEARCH MIN + MODSEQ (min's modseq)")
		r = c.ok("SEARCH RETURN (MIN COUNT) MODSEQ %d" % (h + 1))
		e = esearch(r)[0]
		eq((e.get("MIN"), e.get("COUNT"), e.get("MODSEQ")), ("2", "2", str(max(ms[2][1], ms[4][1]))),
		   "ESEARCH MIN COUNT + MODSEQ (highest)")
		eq(r.data("SEARCH"), [], "no SEARCH response next to ESEARCH")


def test_status_highestmodseq(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "CONDSTORE"):
		return
	c.ok("CREATE box")
	r = c.ok("STATUS box (HIGHESTMODSEQ)")
	h0 = int(statuses(r)["box"]["HIGHESTMODSEQ"])
	expect(h0 >= 1, "HIGHESTMODSEQ of an empty mailbox must be a positive number: %d" % h0)
	c.append("box", message())
	r = c.ok("STATUS box (UIDNEXT MESSAGES HIGHESTMODSEQ)")
	st = statuses(r)["box"]
	h1 = int(st["HIGHESTMODSEQ"])
	expect(h1 > h0, "STATUS HIGHESTMODSEQ did not grow with APPEND: %d -> %d" % (h0, h1))
	r = c.ok("SELECT box (CONDSTORE)")
	eq(highestmodseq(r), h1, "SELECT HIGHESTMODSEQ vs STATUS")
	c.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
	c.ok("UNSELECT")
	r = c.ok("STATUS box (HIGHESTMODSEQ)")
	expect(int(statuses(r)["box"]["HIGHESTMODSEQ"]) > h1, "STATUS HIGHESTMODSEQ did not grow with STORE")
	# LIST-STATUS carries it too.
	if need(ctx, c, "LIST-STATUS"):
		r = c.ok('LIST "" box RETURN (STATUS (HIGHESTMODSEQ))')
		expect("HIGHESTMODSEQ" in statuses(r).get("box", {}), "LIST RETURN (STATUS (HIGHESTMODSEQ)): %r" % r.untagged)


def test_modseq_persistent_across_sessions(ctx):
	c, uids = _setup(ctx, 3)
	if not c:
		return
	r = c.ok("SELECT INBOX (CONDSTORE)")
	c.ok("STORE 1:3 +FLAGS.SILENT (\\Seen)")
	before = _modseqs(c)
	h = int(statuses(c.ok("STATUS INBOX (HIGHESTMODSEQ)"))["INBOX"]["HIGHESTMODSEQ"])
	c2 = lax(ctx.login(c.user))
	r = c2.ok("EXAMINE INBOX (CONDSTORE)")
	_no_nomodseq(r, "EXAMINE (CONDSTORE)")
	eq(highestmodseq(r), h, "HIGHESTMODSEQ seen by a new session")
	eq(_modseqs(c2), before, "MODSEQs seen by a new session")
	# A read-only session must not change MODSEQs by fetching.
	c2.ok("FETCH 1:3 (BODY[])")
	eq(_modseqs(c2), before, "MODSEQs after FETCH BODY[] in EXAMINE")
	# FETCH BODY[] in a read-write session sets \Seen: a new MODSEQ, and
	# when the response reports the flags it must carry the MODSEQ too.
	c.ok("STORE 2 -FLAGS.SILENT (\\Seen)")
	m_unseen = _modseqs(c, "2")[2][1]
	r = c.ok("FETCH 2 (BODY[])")
	f = r.fetches()[2]
	if "FLAGS" in f:
		expect(modseq_of(f) is not None,
		       "FETCH response reporting the implicit \\Seen lacks MODSEQ: %r" % r.untagged)
	seen = _modseqs(c, "2")[2]
	expect("\\seen" in seen[2] and seen[1] > m_unseen,
	       "implicit \\Seen by FETCH BODY[]: flags %r, MODSEQ %d -> %d" % (seen[2], m_unseen, seen[1]))
