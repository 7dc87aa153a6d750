"""SORT and THREAD (RFC 5256) and SORT=DISPLAY (RFC 5957): base subject
extraction, sent date in UTC with INTERNALDATE fallback, FROM by
addr-mailbox vs DISPLAYFROM by decoded display name, SIZE, ARRIVAL,
REVERSE (which keeps the implicit sequence-number tie-break), UID SORT,
search criteria and charsets; THREAD=ORDEREDSUBJECT and
THREAD=REFERENCES on hand-computed cases (dummy parents, promotion,
subject merging, In-Reply-To, msg-id normalization, loops)."""

from integlib import crlf, eq, expect
from test_x_lib import lax, need, uids_of


def _msg(subject, date="Mon, 02 Jan 2023 12:00:00 +0000", frm="Alice <alice@example.org>",
	 msgid=None, extra=(), body="body\n", to="Bob <bob@example.net>"):
	h = []
	if frm is not None:
		h.append("From: " + frm)
	h.append("To: " + to)
	if subject is not None:
		h.append("Subject: " + subject)
	if date is not None:
		h.append("Date: " + date)
	if msgid:
		h.append("Message-ID: " + msgid)
	h.extend(extra)
	return crlf("\n".join(h) + "\n\n" + body)


def _box(ctx, msgs, dates=None):
	"""A fresh user with msgs appended to INBOX (internal dates from dates),
	INBOX selected; returns the connection and the UIDs."""
	c = lax(ctx.login())
	if not need(ctx, c, "SORT"):
		return None, None
	for i, m in enumerate(msgs):
		c.append("INBOX", m, date=(dates[i] if dates else None))
	c.select("INBOX")
	return c, uids_of(c)


def _sort(c, args, uid=False):
	r = c.cmd("%sSORT %s" % ("UID " if uid else "", args))
	eq(r.status, "OK", "SORT %s (%r)" % (args, r))
	d = r.data("SORT")
	eq(len(d), 1, "one SORT response for SORT %s: %r" % (args, r.untagged))
	return [int(x) for x in d[0][2:]]


# ------------------------------------------------------------ SORT

SUBJECTS = ["Re: banana", "apple", "[list] Cherry", "Fwd: Apple (fwd)", "Re: [PATCH] Re: fig",
	    "[Fwd: date]", "RE:  Banana", None, "re: re: APPLE"]
# base subjects: banana apple cherry apple fig date banana "" apple


def test_sort_subject(ctx):
	c, uids = _box(ctx, [_msg(s) for s in SUBJECTS])
	if not c:
		return
	# "" (no Subject) first; ties in sequence order.
	eq(_sort(c, "(SUBJECT) UTF-8 ALL"), [8, 2, 4, 9, 1, 7, 3, 6, 5], "SORT (SUBJECT)")
	eq(_sort(c, "(SUBJECT) US-ASCII ALL"), [8, 2, 4, 9, 1, 7, 3, 6, 5], "SORT (SUBJECT) US-ASCII")
	# REVERSE reverses the criterion, not the implicit sequence-number tie-break.
	eq(_sort(c, "(REVERSE SUBJECT) UTF-8 ALL"), [5, 6, 3, 1, 7, 2, 4, 9, 8], "SORT (REVERSE SUBJECT)")
	eq(_sort(c, "(SUBJECT) UTF-8 1:4 UNDELETED"), [2, 4, 1, 3], "SORT with a search program")
	eq(_sort(c, "(SUBJECT) UTF-8 ALL", uid=True), [uids[i - 1] for i in (8, 2, 4, 9, 1, 7, 3, 6, 5)],
	   "UID SORT (SUBJECT)")
	# RFC 5256 example A282 shape: SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994.
	eq(_sort(c, "(SUBJECT) UTF-8 SINCE 1-Feb-1994"), [8, 2, 4, 9, 1, 7, 3, 6, 5], "SORT ... SINCE")
	r = c.cmd("SORT (SUBJECT) X-NO-SUCH-CHARSET ALL")
	expect(r.status in ("NO", "BAD"), "SORT with an unknown charset: %r" % r)
	if r.status == "NO":
		eq(r.code_name(), "BADCHARSET", "SORT with an unknown charset (%r)" % r)
	r = c.cmd("SORT (NOSUCHKEY) UTF-8 ALL")
	eq(r.status, "BAD", "SORT with an unknown criterion (%r)" % r)
	r = c.cmd("SORT SUBJECT UTF-8 ALL")
	eq(r.status, "BAD", "SORT criteria without parentheses (%r)" % r)
	r = c.cmd("SORT (REVERSE) UTF-8 ALL")
	eq(r.status, "BAD", "REVERSE without a criterion (%r)" % r)


def test_sort_date_utc_and_fallback(ctx):
	msgs = [_msg("d1", "Mon, 02 Jan 2023 12:00:00 +0000"),	# 12:00Z
		_msg("d2", "Mon, 02 Jan 2023 13:00:00 +0200"),	# 11:00Z
		_msg("d3", "Mon, 02 Jan 2023 09:00:00 -0500"),	# 14:00Z
		_msg("d4", None),				# internal 11:30Z
		_msg("d5", "Mon, 02 Jan 2023 12:30:00 +0000"),	# 12:30Z
		_msg("d6", "garbage, not a date"),		# internal 10:00Z
		_msg("d7", "Mon, 2 Jan 2023 13:15:00 +0000 (UTC)"),  # 13:15Z
		_msg("d8", "31 Dec 2022 16:01:33 -0800")]	# 1 Jan 00:01:33Z (RFC 5256 2.2)
	internal = ["01-Jan-2024 00:00:00 +0000", "01-Jan-2024 00:00:01 +0000", "01-Jan-2024 00:00:02 +0000",
		    "02-Jan-2023 11:30:00 +0000", "01-Jan-2024 00:00:03 +0000", "02-Jan-2023 11:00:00 +0100",
		    "01-Jan-2024 00:00:04 +0000", "01-Jan-2024 00:00:05 +0000"]
	c, uids = _box(ctx, msgs, internal)
	if not c:
		return
	# An unparsable Date: is either "the earliest possible date" or the
	# INTERNALDATE (RFC 5256 2.2 says both); a missing one is INTERNALDATE.
	wants = ([8, 6, 2, 4, 1, 5, 7, 3], [6, 8, 2, 4, 1, 5, 7, 3])
	got = _sort(c, "(DATE) UTF-8 ALL")
	expect(got in wants, "SORT (DATE) (UTC, INTERNALDATE when Date: is missing): got %r, want %r"
	       % (got, " or ".join(map(str, wants))))
	got = _sort(c, "(REVERSE DATE) UTF-8 ALL")
	expect(got in [w[::-1] for w in wants], "SORT (REVERSE DATE): got %r, want %r"
	       % (got, " or ".join(str(w[::-1]) for w in wants)))
	# ARRIVAL is the internal date.
	eq(_sort(c, "(ARRIVAL) UTF-8 ALL"), [6, 4, 1, 2, 3, 5, 7, 8], "SORT (ARRIVAL)")
	eq(_sort(c, "(REVERSE ARRIVAL) UTF-8 ALL", uid=True), [uids[i - 1] for i in (8, 7, 5, 3, 2, 1, 4, 6)],
	   "UID SORT (REVERSE ARRIVAL)")


def test_sort_from_and_displayfrom(ctx):
	froms = ["Zed <carol@z.org>", "erin@a.org", "Adam <dave@b.org>", "=?UTF-8?Q?Mike?= <alice@c.org>",
		 '"quoted, name" <bob@d.org>', None]
	c, uids = _box(ctx, [_msg("f%d" % i, frm=f) for i, f in enumerate(froms)])
	if not c:
		return
	# FROM: addr-mailbox; a missing From is the empty string, first.
	eq(_sort(c, "(FROM) UTF-8 ALL"), [6, 4, 5, 1, 3, 2], "SORT (FROM) by addr-mailbox")
	eq(_sort(c, "(REVERSE FROM) UTF-8 ALL"), [2, 3, 1, 5, 4, 6], "SORT (REVERSE FROM)")
	if need(ctx, c, "SORT=DISPLAY"):
		# DISPLAYFROM: decoded display name, else the address.
		eq(_sort(c, "(DISPLAYFROM) UTF-8 ALL"), [6, 3, 2, 4, 5, 1], "SORT (DISPLAYFROM) (RFC 5957)")
		eq(_sort(c, "(REVERSE DISPLAYFROM) UTF-8 ALL"), [1, 5, 4, 2, 3, 6], "SORT (REVERSE DISPLAYFROM)")


def test_sort_to_cc_and_displayto(ctx):
	msgs = [_msg("t1", to="Zoe <bea@x.org>", extra=["Cc: cy@x.org"]),
		_msg("t2", to="abe@x.org", extra=["Cc: Al <zed@x.org>"]),
		_msg("t3", to="Max <cat@x.org>, aaa@x.org")]
	c, uids = _box(ctx, msgs)
	if not c:
		return
	eq(_sort(c, "(TO) UTF-8 ALL"), [2, 1, 3], "SORT (TO) (first To address)")
	eq(_sort(c, "(CC) UTF-8 ALL"), [3, 1, 2], "SORT (CC) (missing Cc first)")
	if need(ctx, c, "SORT=DISPLAY"):
		eq(_sort(c, "(DISPLAYTO) UTF-8 ALL"), [2, 3, 1], "SORT (DISPLAYTO)")


def test_sort_size_and_multiple_keys(ctx):
	bodies = ["x" * 300, "x" * 10, "x" * 300, "x" * 50, "x" * 10]
	subjects = ["s", "s", "r", "s", "r"]
	c, uids = _box(ctx, [_msg(s, body=b + "\n") for s, b in zip(subjects, bodies)])
	if not c:
		return
	f = c.ok("FETCH 1:* (RFC822.SIZE)").fetches()
	size = {s: int(f[s]["RFC822.SIZE"]) for s in f}
	want = sorted(size, key=lambda s: (size[s], s))
	eq(_sort(c, "(SIZE) UTF-8 ALL"), want, "SORT (SIZE) (ties by sequence number)")
	eq(_sort(c, "(REVERSE SIZE) UTF-8 ALL"), sorted(size, key=lambda s: (-size[s], s)), "SORT (REVERSE SIZE)")
	eq(_sort(c, "(SUBJECT REVERSE SIZE) UTF-8 ALL"), [3, 5, 1, 4, 2], "SORT (SUBJECT REVERSE SIZE)")
	eq(_sort(c, "(SUBJECT SIZE) UTF-8 ALL"), [5, 3, 2, 4, 1], "SORT (SUBJECT SIZE)")
	# Nothing matches: an empty SORT response.
	eq(_sort(c, "(SIZE) UTF-8 DELETED"), [], "SORT with no match")


# ------------------------------------------------------------ THREAD

def _tree(lst):
	"""A parsed thread-list -> (number or None, (children...))."""
	members = []
	i = 0
	while i < len(lst) and not isinstance(lst[i], list):
		members.append(int(lst[i]))
		i += 1
	nested = [_tree(x) for x in lst[i:]]
	expect(all(isinstance(x, list) for x in lst[i:]), "malformed thread list %r" % (lst,))
	if not members:
		expect(len(nested) >= 2, "a dummy parent needs 2+ children: %r" % (lst,))
		return (None, tuple(nested))
	node = (members[-1], tuple(nested))
	for m in reversed(members[:-1]):
		node = (m, (node,))
	return node


def _thread(c, args, uid=False):
	r = c.cmd("%sTHREAD %s" % ("UID " if uid else "", args))
	eq(r.status, "OK", "THREAD %s (%r)" % (args, r))
	d = r.data("THREAD")
	eq(len(d), 1, "one THREAD response: %r" % r.untagged)
	return [_tree(x) for x in d[0][2:]], r.untagged[-1].rstrip(b"\r\n").decode()


def _parse_expect(text):
	from integlib import parse
	return [_tree(x) for x in parse(b"* THREAD " + text.encode())[2:]]


THREAD_MSGS = [
	("Alpha", "<a@x>", [], 10), ("Re: Alpha", "<b@x>", ["References: <a@x>"], 12),
	("Re: Alpha", "<c@x>", ["References: <a@x> <b@x>"], 13), ("Beta", "<d@x>", [], 5),
	("Re: Alpha", "<e@x>", ["In-Reply-To: <a@x>"], 11),
	("Gamma", "<f@x>", ["References: <missing@x>"], 20),
	("Delta", "<g@x>", ["References: <missing2@x>"], 15),
	("Re: Delta", "<h@x>", ["References: <missing2@x>"], 14), ("Re: Beta", "<i@x>", [], 16)]


def _thread_box(ctx, cap):
	c = lax(ctx.login())
	if not need(ctx, c, cap):
		return None, None
	for subj, mid, extra, hour in THREAD_MSGS:
		c.append("INBOX", _msg(subj, "Mon, 02 Jan 2023 %02d:00:00 +0000" % hour, msgid=mid, extra=extra))
	c.select("INBOX")
	return c, uids_of(c)


def test_thread_orderedsubject(ctx):
	c, uids = _thread_box(ctx, "THREAD=ORDEREDSUBJECT")
	if not c:
		return
	got, line = _thread(c, "ORDEREDSUBJECT UTF-8 ALL")
	eq(got, _parse_expect("(4 9)(1 (5)(2)(3))(8 7)(6)"), "THREAD ORDEREDSUBJECT (%s)" % line)
	got, line = _thread(c, "ORDEREDSUBJECT UTF-8 ALL", uid=True)
	want = "(%d %d)(%d (%d)(%d)(%d))(%d %d)(%d)" % tuple(uids[i - 1] for i in (4, 9, 1, 5, 2, 3, 8, 7, 6))
	eq(got, _parse_expect(want), "UID THREAD ORDEREDSUBJECT (%s)" % line)
	got, line = _thread(c, "ORDEREDSUBJECT US-ASCII SUBJECT alpha")
	eq(got, _parse_expect("(1 (5)(2)(3))"), "THREAD with a search program (%s)" % line)
	got, line = _thread(c, "ORDEREDSUBJECT UTF-8 SUBJECT nosuchthing")
	eq(got, [], "THREAD with no match (%s)" % line)


def test_thread_references(ctx):
	c, uids = _thread_box(ctx, "THREAD=REFERENCES")
	if not c:
		return
	# Step 1 links a-b-c and a-e; step 3 promotes Gamma's lone child over
	# its missing parent but keeps the dummy above Delta's two messages;
	# step 4 orders roots by date; step 5 makes "Re: Beta" a child of
	# "Beta"; step 6 orders siblings by date.
	got, line = _thread(c, "REFERENCES UTF-8 ALL")
	eq(got, _parse_expect("(4 9)(1 (5)(2 3))((8)(7))(6)"), "THREAD REFERENCES (%s)" % line)
	got, line = _thread(c, "REFERENCES UTF-8 ALL", uid=True)
	want = "(%d %d)(%d (%d)(%d %d))((%d)(%d))(%d)" % tuple(uids[i - 1] for i in (4, 9, 1, 5, 2, 3, 8, 7, 6))
	eq(got, _parse_expect(want), "UID THREAD REFERENCES (%s)" % line)
	r = c.cmd("THREAD NOSUCHALGORITHM UTF-8 ALL")
	expect(r.status in ("BAD", "NO"), "THREAD with an unknown algorithm: %r" % r)


def test_thread_references_msgid_rules(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "THREAD=REFERENCES"):
		return
	msgs = [
		# RFC 5256: <"01KF8JCEOCBS0045PS"@xxx.yyy.com> == <01KF8JCEOCBS0045PS@xxx.yyy.com>
		_msg("quoted id", "Mon, 02 Jan 2023 01:00:00 +0000", msgid='<"01KF8JCEOCBS0045PS"@xxx.yyy.com>'),
		_msg("Re: quoted id", "Mon, 02 Jan 2023 02:00:00 +0000", msgid="<r1@x>",
		     extra=["References: <01KF8JCEOCBS0045PS@xxx.yyy.com>"]),
		# A loop: 3 references 4 and 4 references 3 -> 4 is 3's parent,
		# the link making 3 the parent of 4 is refused.
		_msg("loop one", "Mon, 02 Jan 2023 03:00:00 +0000", msgid="<l1@x>", extra=["References: <l2@x>"]),
		_msg("loop two", "Mon, 02 Jan 2023 04:00:00 +0000", msgid="<l2@x>", extra=["References: <l1@x>"]),
		# A duplicate Message-ID: only the first keeps it, so 6 is a child of 5.
		_msg("dup", "Mon, 02 Jan 2023 05:00:00 +0000", msgid="<dup@x>"),
		_msg("dup again", "Mon, 02 Jan 2023 06:00:00 +0000", msgid="<dup@x>", extra=["In-Reply-To: <dup@x>"]),
		# In-Reply-To with junk around the first msg-id; References without a valid id.
		_msg("irt", "Mon, 02 Jan 2023 07:00:00 +0000", msgid="<irt@x>",
		     extra=['In-Reply-To: "Someone" <dup@x> (sent earlier)', "References: garbage"]),
	]
	for m in msgs:
		c.append("INBOX", m)
	c.select("INBOX")
	got, line = _thread(c, "REFERENCES UTF-8 ALL")
	eq(got, _parse_expect("(1 2)(4 3)(5 (6)(7))"), "THREAD REFERENCES msg-id rules (%s)" % line)
