"""IMAP4rev2 (RFC 9051) after ENABLE IMAP4rev2: no RECENT responses, a
LIST response in SELECT/EXAMINE, SEARCH answered with ESEARCH, SEARCHRES
(RETURN (SAVE) and "$"), STATUS DELETED and SIZE, [CLOSED] on re-SELECT;
and UTF8=ACCEPT (RFC 6855): ENABLE UTF8=ACCEPT, UTF-8 mailbox names in
CREATE/LIST/SELECT/STATUS, modified UTF-7 for sessions without it, the
UTF8 APPEND data item."""

from integlib import crlf, eq, expect, message, mutf7, quote
from test_x_lib import esearch, fill, lax, list_raw, need, raw_cmd, statuses, uid_set, uids_of


def _rev2(ctx, user=None):
	c = lax(ctx.login(user))
	if not need(ctx, c, "IMAP4REV2", "ENABLE"):
		return None
	r = c.ok("ENABLE IMAP4rev2")
	got = [str(x).upper() for t in r.data("ENABLED") for x in t[2:]]
	eq(got, ["IMAP4REV2"], "ENABLED response to ENABLE IMAP4rev2")
	return c


def test_rev2_select_responses(ctx):
	u = ctx.user()
	w = ctx.login(u)
	fill(w, "INBOX", 3)
	c = _rev2(ctx, u)
	if not c:
		return
	r = c.ok("SELECT INBOX")
	eq(r.data("RECENT"), [], "RECENT response in an IMAP4rev2 SELECT")
	eq(r.number("EXISTS"), 3, "EXISTS")
	eq(len(r.data("FLAGS")), 1, "FLAGS response")
	lst = r.data("LIST")
	eq(len(lst), 1, "one LIST response in an IMAP4rev2 SELECT (RFC 9051 6.3.2): %r" % r.untagged)
	eq(lst[0][4].upper() if isinstance(lst[0][4], str) else lst[0][4].decode().upper(), "INBOX",
	   "mailbox name in the SELECT's LIST response")
	for code in ("UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS"):
		expect(any(n == code for n, _ in r.codes()), "SELECT lacks [%s]: %r" % (code, r.untagged))
	eq(r.code_name(), "READ-WRITE", "SELECT tagged code")
	# New messages: EXISTS but never RECENT.
	w.append("INBOX", message(subject="new"))
	r = c.ok("NOOP")
	eq((r.number("EXISTS"), r.data("RECENT")), (4, []), "NOOP after an APPEND in an IMAP4rev2 session")
	c.ok("CREATE Sub/Box")
	r = c.ok("EXAMINE Sub/Box")
	lst = r.data("LIST")
	eq([x[4].decode() if isinstance(x[4], bytes) else str(x[4]) for x in lst], ["Sub/Box"],
	   "LIST response of EXAMINE Sub/Box")
	eq(r.code_name(), "READ-ONLY", "EXAMINE tagged code")
	expect(any(u.upper().startswith(b"* OK [CLOSED]") for u in r.untagged),
	       "no [CLOSED] when EXAMINE implicitly closed INBOX (RFC 9051 7.1): %r" % r.untagged)


def test_rev2_search_is_esearch(ctx):
	u = ctx.user()
	w = ctx.login(u)
	uids = fill(w, "INBOX", 5, flags=[None, ["\\Flagged"], None, ["\\Flagged"], ["\\Flagged"]])
	c = _rev2(ctx, u)
	if not c:
		return
	c.select("INBOX")
	r = c.ok("SEARCH FLAGGED")
	eq(r.data("SEARCH"), [], "SEARCH response in an IMAP4rev2 session")
	e = esearch(r)
	eq(len(e), 1, "one ESEARCH response: %r" % r.untagged)
	eq((e[0]["TAG"], e[0]["UID"], uid_set(e[0].get("ALL", ""))), (r.tag, False, [2, 4, 5]),
	   "ESEARCH for SEARCH FLAGGED")
	r = c.ok("UID SEARCH FLAGGED")
	e = esearch(r)
	eq((e[0]["UID"], uid_set(e[0].get("ALL", ""))), (True, [uids[1], uids[3], uids[4]]), "ESEARCH for UID SEARCH")
	r = c.ok("SEARCH SUBJECT nosuchthing")
	e = esearch(r)
	eq(len(e), 1, "ESEARCH even without a match: %r" % r.untagged)
	eq(set(e[0]) - {"TAG", "UID"}, set(), "ESEARCH without a match carries no ALL")
	# SEARCHRES: RETURN (SAVE) then $.
	r = c.ok("SEARCH RETURN (SAVE) FLAGGED")
	eq(esearch(r), [], "SEARCH RETURN (SAVE) alone returns no ESEARCH")
	f = c.ok("FETCH $ (UID)").fetches()
	eq(sorted(f), [2, 4, 5], "FETCH $ after SEARCH RETURN (SAVE) FLAGGED")
	r = c.ok("UID SEARCH RETURN (SAVE MIN) UNFLAGGED")
	eq(esearch(r)[0].get("MIN"), str(uids[0]), "RETURN (SAVE MIN)")
	# RFC 5182 2.1: with MIN, only the minimum is saved.
	c.ok("UID STORE $ +FLAGS.SILENT (\\Seen)")
	r = c.ok("SEARCH RETURN (ALL) SEEN")
	eq(uid_set(esearch(r)[0].get("ALL", "")), [1], "UID STORE $ after RETURN (SAVE MIN) touched only the minimum")


def test_rev2_status_deleted_size(ctx):
	u = ctx.user()
	w = ctx.login(u)
	msgs = [message(subject="s%d" % i, body="x" * (100 * i) + "\n") for i in range(4)]
	for i, m in enumerate(msgs):
		w.append("INBOX", m, flags=(["\\Deleted"] if i in (1, 2) else None))
	c = _rev2(ctx, u)
	if not c:
		return
	r = c.ok("STATUS INBOX (MESSAGES DELETED SIZE UIDNEXT UNSEEN)")
	st = statuses(r)["INBOX"]
	eq((st.get("MESSAGES"), st.get("DELETED"), st.get("SIZE"), st.get("UNSEEN")),
	   ("4", "2", str(sum(len(m) for m in msgs)), "4"), "STATUS (MESSAGES DELETED SIZE UNSEEN)")
	r = c.cmd("STATUS INBOX (RECENT)")
	expect(r.status in ("OK", "BAD"), "STATUS RECENT in IMAP4rev2: %r" % r)


def test_rev2_closed_and_expunge(ctx):
	u = ctx.user()
	c = _rev2(ctx, u)
	if not c:
		return
	uids = fill(c, "INBOX", 3)
	c.ok("CREATE other")
	c.select("INBOX")
	r = c.ok("SELECT other")
	idx = [i for i, line in enumerate(r.untagged) if line.upper().startswith(b"* OK [CLOSED]")]
	eq(len(idx), 1, "one [CLOSED] on SELECT while INBOX is selected: %r" % r.untagged)
	expect(not any(b"EXISTS" in line for line in r.untagged[:idx[0]]), "EXISTS before [CLOSED]: %r" % r.untagged)
	c.select("INBOX")
	c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("EXPUNGE")
	eq(r.numbers("EXPUNGE"), [2], "EXPUNGE responses in IMAP4rev2 (no QRESYNC)")
	eq(uids_of(c), [uids[0], uids[2]], "UIDs after EXPUNGE")


# ------------------------------------------------------------ UTF8=ACCEPT

NAME = "Größe/日本語 & Co"


def _utf8(ctx, user=None):
	c = lax(ctx.login(user))
	if not need(ctx, c, "UTF8=ACCEPT", "ENABLE"):
		return None
	r = c.ok("ENABLE UTF8=ACCEPT")
	got = [str(x).upper() for t in r.data("ENABLED") for x in t[2:]]
	eq(got, ["UTF8=ACCEPT"], "ENABLED response to ENABLE UTF8=ACCEPT")
	return c


def _quoted_utf8(s):
	return ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"').encode("utf-8")


def test_utf8_accept_mailbox_names(ctx):
	u = ctx.user()
	c = _utf8(ctx, u)
	if not c:
		return
	r = raw_cmd(c, b"CREATE " + _quoted_utf8(NAME))
	eq(r.status, "OK", "CREATE with a UTF-8 quoted name after ENABLE UTF8=ACCEPT (%r)" % r)
	r, lst = list_raw(c, '"" "*"')
	names = [n for _a, _d, n, _e in lst]
	expect(NAME in names and "Größe" in names, "LIST after UTF8=ACCEPT must give UTF-8 names: %r" % names)
	expect(not any("&" in n and n != NAME for n in names), "modified UTF-7 after UTF8=ACCEPT: %r" % names)
	r = raw_cmd(c, b"SELECT " + _quoted_utf8(NAME))
	eq(r.status, "OK", "SELECT of a UTF-8 name (%r)" % r)
	c.ok("UNSELECT")
	c.append("INBOX", message())
	r = raw_cmd(c, b"STATUS " + _quoted_utf8(NAME) + b" (MESSAGES)")
	eq(r.status, "OK", "STATUS of a UTF-8 name (%r)" % r)
	eq(statuses(r).get(NAME), {"MESSAGES": "0"}, "STATUS response names the mailbox in UTF-8")
	# A session without UTF8=ACCEPT sees modified UTF-7 (RFC 3501 5.1.3).
	o = ctx.login(u)
	r = o.ok('LIST "" "*"')
	names = [(t[4].decode("latin-1") if isinstance(t[4], bytes) else str(t[4])) for t in r.data("LIST")]
	expect(mutf7(NAME) in names and mutf7("Größe") in names,
	       "a session without UTF8=ACCEPT must see %r and %r: %r" % (mutf7(NAME), mutf7("Größe"), names))
	# And a name created in modified UTF-7 is listed in UTF-8 to the UTF-8 session.
	o.ok("CREATE " + quote(mutf7("Ünïcödé")))
	r, lst = list_raw(c, '"" "*"')
	expect("Ünïcödé" in [n for _a, _d, n, _e in lst], "mUTF-7-created name not listed in UTF-8: %r" % lst)
	# LIST patterns in UTF-8.
	r, lst = list_raw(c, b'"" "Gr\xc3\xb6\xc3\x9fe/%"'.decode("utf-8"))
	eq([n for _a, _d, n, _e in lst], [NAME], "LIST with a UTF-8 pattern")


def test_utf8_accept_bad_names(ctx):
	c = _utf8(ctx)
	if not c:
		return
	for bad in (b'"\xff\xfe"', b'"a\xc3"', b'"ctl\xc2\x85x"'):
		r = raw_cmd(c, b"CREATE " + bad)
		expect(r.status in ("NO", "BAD"), "CREATE %r (invalid UTF-8 / C1 control) accepted: %r" % (bad, r))
	c.ok("NOOP")


def test_utf8_append_data_item(ctx):
	c = _utf8(ctx)
	if not c:
		return
	msg = crlf("From: Jörg <jörg@exämple.org>\nTo: b@example.org\nSubject: Grüße aus Köln\n"
		   "Date: Mon, 02 Jan 2023 12:00:00 +0000\nMessage-ID: <utf8@example.org>\n\nHallo.\n")
	tag = c.next_tag()
	c.send(b"%s APPEND INBOX UTF8 (~{%d}\r\n" % (tag.encode(), len(msg)))
	line = c.read_response()
	expect(line.startswith(b"+"), "no continuation for APPEND UTF8 (~{n}): %r" % line)
	c.send(msg + b")\r\n")
	r = c.read_until(tag)
	eq(r.status, "OK", "APPEND INBOX UTF8 (literal8) after ENABLE UTF8=ACCEPT (RFC 6855 4) (%r)" % r)
	c.select("INBOX")
	r = c.ok("FETCH 1 (BODY.PEEK[] ENVELOPE)")
	f = r.fetches()[1]
	eq(f["BODY[]"], msg, "bytes of the UTF8 APPEND")
	env = f["ENVELOPE"]
	eq(env[1], "Grüße aus Köln".encode(), "ENVELOPE subject in UTF-8 for a UTF8=ACCEPT client")
