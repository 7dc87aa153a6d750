"""ESEARCH (RFC 4731): SEARCH RETURN (MIN MAX COUNT ALL) with the (TAG
"...") correlator, the UID indicator for UID SEARCH, RETURN () = ALL,
no-match answers (no MIN/MAX/ALL, COUNT 0, but an ESEARCH response),
exactly one ESEARCH and no SEARCH response, the RFC's examples."""

from integlib import Result, eq, expect, message
from test_x_lib import esearch, lax, need, uid_set, uids_of


def _setup(ctx):
	"""10 messages: 2,5,6,7,9 \\Flagged; 1..4 \\Seen; FROM Smith on 5."""
	c = lax(ctx.login())
	if not need(ctx, c, "ESEARCH"):
		return None, None
	flagged = {2, 5, 6, 7, 9}
	for i in range(1, 11):
		fl = (["\\Flagged"] if i in flagged else []) + (["\\Seen"] if i <= 4 else [])
		frm = "Smith <smith@example.org>" if i == 5 else "Alice <alice@example.org>"
		c.append("INBOX", message(subject="s%d" % i, frm=frm,
					  date="Mon, %02d Feb 1994 12:00:00 +0000" % (i + 1)),
			 flags=fl or None)
	c.select("INBOX")
	return c, uids_of(c)


def _one(c, cmd):
	r = c.cmd(cmd)
	eq(r.status, "OK", "%s (%r)" % (cmd, r))
	e = esearch(r)
	eq(len(e), 1, "%s: exactly one ESEARCH response, got %r" % (cmd, r.untagged))
	eq(r.data("SEARCH"), [], "%s: SEARCH response next to ESEARCH" % cmd)
	eq(e[0]["TAG"], r.tag, "%s: (TAG) correlator" % cmd)
	return e[0]


def test_esearch_min_max_count_all(ctx):
	c, uids = _setup(ctx)
	if not c:
		return
	e = _one(c, "SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
	eq(e["UID"], False, "UID indicator on a SEARCH")
	eq((e.get("MIN"), e.get("MAX"), e.get("COUNT")), ("2", "9", "5"), "MIN MAX COUNT")
	eq(uid_set(e["ALL"]), [2, 5, 6, 7, 9], "ALL")
	# RFC 4731 example A282: SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith".
	e = _one(c, 'SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
	eq(set(e) - {"TAG", "UID"}, {"MIN", "COUNT"}, "only the requested options")
	eq((e["MIN"], e["COUNT"]), ("2", "4"), "A282 MIN COUNT")
	# A283: RETURN () = ALL.
	e = _one(c, 'SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
	eq(set(e) - {"TAG", "UID"}, {"ALL"}, "RETURN () returns ALL only")
	eq(uid_set(e["ALL"]), [2, 6, 7, 9], "A283 ALL")
	# A284: first unseen.
	e = _one(c, "SEARCH RETURN (MIN) UNSEEN")
	eq(e.get("MIN"), "5", "A284 MIN UNSEEN")
	# A286: COUNT of deleted.
	c.ok("STORE 1,3,10 +FLAGS.SILENT (\\Deleted)")
	e = _one(c, "SEARCH RETURN (COUNT) DELETED")
	eq(e.get("COUNT"), "3", "A286 COUNT DELETED")
	e = _one(c, "SEARCH RETURN (MAX) 1:5 UNDELETED")
	eq(e.get("MAX"), "5", "MAX with a sequence set")


def test_esearch_uid(ctx):
	c, uids = _setup(ctx)
	if not c:
		return
	# A285: UID SEARCH RETURN (MIN MAX) 1:5000 -> UID MIN ... MAX ...
	e = _one(c, "UID SEARCH RETURN (MIN MAX) 1:5000")
	eq(e["UID"], True, "UID indicator on UID SEARCH")
	eq((e.get("MIN"), e.get("MAX")), (str(uids[0]), str(uids[-1])), "A285 UID MIN MAX")
	e = _one(c, "UID SEARCH RETURN (ALL COUNT) FLAGGED")
	eq(uid_set(e["ALL"]), sorted(uids[i - 1] for i in (2, 5, 6, 7, 9)), "UID ALL")
	eq(e["COUNT"], "5", "UID COUNT")
	e = _one(c, "UID SEARCH RETURN (MIN) UID %d:%d SEEN" % (uids[2], uids[-1]))
	eq(e.get("MIN"), str(uids[2]), "UID SEARCH RETURN (MIN) with a UID range")
	# Options in any order, repeated search keys.
	e = _one(c, "UID SEARCH RETURN (COUNT MAX) NOT SEEN NOT FLAGGED")
	eq((e.get("COUNT"), e.get("MAX")), ("2", str(uids[9])), "UID COUNT MAX NOT SEEN NOT FLAGGED (8 and 10)")


def test_esearch_no_match(ctx):
	c, uids = _setup(ctx)
	if not c:
		return
	for cmd, uid in (("SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nosuchthing", False),
			 ("UID SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nosuchthing", True),
			 ("SEARCH RETURN (MIN) DELETED", False)):
		e = _one(c, cmd)
		eq(e["UID"], uid, "%s: UID indicator" % cmd)
		for k in ("MIN", "MAX", "ALL"):
			expect(k not in e, "%s: %s must not be returned when nothing matches: %r" % (cmd, k, e))
		if "COUNT" in cmd:
			eq(e.get("COUNT"), "0", "%s: COUNT 0" % cmd)
	e = _one(c, "SEARCH RETURN () SUBJECT nosuchthing")
	eq(set(e) - {"TAG", "UID"}, set(), "RETURN () with no match: a bare ESEARCH")


def test_esearch_empty_mailbox_and_errors(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "ESEARCH"):
		return
	c.select("INBOX")
	e = _one(c, "SEARCH RETURN (COUNT MIN) ALL")
	eq((e.get("COUNT"), "MIN" in e), ("0", False), "ESEARCH in an empty mailbox")
	r = c.cmd("SEARCH RETURN (BOGUS) ALL")
	eq(r.status, "BAD", "unknown RETURN option (%r)" % r)
	r = c.cmd("SEARCH RETURN MIN ALL")
	eq(r.status, "BAD", "RETURN without parentheses (%r)" % r)
	# A plain SEARCH still answers SEARCH (IMAP4rev1 session).
	c.append("INBOX", message())
	c.ok("NOOP")
	r = c.ok("SEARCH ALL")
	eq([t[2:] for t in r.data("SEARCH")], [["1"]], "plain SEARCH without RETURN")
	eq(esearch(r), [], "ESEARCH for a plain SEARCH in an IMAP4rev1 session")


def test_esearch_pipelined_tags(ctx):
	"""Several pipelined extended SEARCHes: each ESEARCH names its own tag."""
	c, uids = _setup(ctx)
	if not c:
		return
	cmds = {"E1": "SEARCH RETURN (COUNT) FLAGGED", "E2": "UID SEARCH RETURN (MIN) SEEN",
		"E3": "SEARCH RETURN (MAX) ALL"}
	c.send("".join("%s %s\r\n" % (t, cmd) for t, cmd in cmds.items()))
	# These commands do not depend on each other: any completion order.
	seen, done, lines = {}, set(), []
	while len(done) < len(cmds):
		line = c.read_response()
		t = line.split(b" ", 1)[0].decode()
		if t in cmds:
			expect(line.startswith(t.encode() + b" OK"), "%s %s: %r" % (t, cmds[t], line))
			done.add(t)
		else:
			lines.append(line)
	for e in esearch(Result("", b"", lines, [])):
		expect(e["TAG"] not in seen, "two ESEARCH responses for %s" % e["TAG"])
		seen[e["TAG"]] = e
	eq(sorted(seen), sorted(cmds), "ESEARCH correlators")
	eq((seen["E1"]["COUNT"], seen["E2"]["MIN"], seen["E2"]["UID"], seen["E3"]["MAX"]),
	   ("5", str(uids[0]), True, "10"), "pipelined ESEARCH results")
