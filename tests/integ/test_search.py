"""SEARCH and UID SEARCH: every search key of RFC 3501 6.4.4, charsets,
MIME decoding, boolean nesting, sequence and UID sets."""

import base64

from integlib import Fail, Lit, crlf, eq

# Internal dates are at noon UTC and dates one day or more apart, so that
# "disregarding time and timezone" cannot move a message across a day.
FIXTURE = [
	# 1
	dict(hdr="From: Alice <alice@example.org>\nTo: Bob <bob@example.net>\nCc: Carol <carol@example.com>\n"
		 "Subject: Quarterly report\nDate: Wed, 01 Feb 2023 12:00:00 +0000\nX-Priority: 1\n",
	     body="The numbers are up.\n", date="01-Feb-2023 12:00:00 +0000",
	     flags=["\\Seen", "\\Answered"]),
	# 2
	dict(hdr="From: Bob <bob@example.net>\nTo: Alice <alice@example.org>\nBcc: dave@example.com\n"
		 "Subject: Re: Quarterly report\nDate: Thu, 02 Feb 2023 12:00:00 +0000\n",
	     body="Thanks!\n", date="02-Feb-2023 12:00:00 +0000", flags=["\\Flagged"]),
	# 3
	dict(hdr="From: Carol <carol@example.com>\nTo: alice@example.org\nSubject: Lunch?\n"
		 "Date: Fri, 03 Feb 2023 12:00:00 +0000\n",
	     body=("padding line for size\n" * 500), date="05-Feb-2023 12:00:00 +0000",
	     flags=["\\Draft", "$Work"]),
	# 4
	dict(hdr="From: Dave <dave@example.com>\nTo: alice@example.org\n"
		 "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\nDate: Sat, 04 Feb 2023 12:00:00 +0000\n"
		 "MIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-8859-1\n"
		 "Content-Transfer-Encoding: quoted-printable\n",
	     body="Viele Gr=FC=DFe aus K=F6ln.\n", date="04-Feb-2023 12:00:00 +0000",
	     flags=["\\Deleted"]),
	# 5
	dict(hdr="From: Eve <eve@example.com>\nTo: alice@example.org\nSubject: base64 body\n"
		 "Date: Sun, 05 Feb 2023 12:00:00 +0000\nMIME-Version: 1.0\n"
		 "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
	     body=base64.encodebytes("\u00dcberraschung im Anhang, ganz gro\u00df.\n".encode()).decode(),
	     date="06-Feb-2023 12:00:00 +0000", flags=["$Work", "Urgent"]),
	# 6
	dict(hdr="From: Frank <frank@example.net>\nTo: bob@example.net\nSubject: Mixed Case SUBJECT\n"
		 "Date: Fri, 10 Mar 2023 12:00:00 +0000\nX-Trace: abc123\n",
	     body="Here is the NeedleInBody.\n", date="10-Mar-2023 12:00:00 +0000", flags=["\\Seen"]),
]


def build():
	return [crlf(m["hdr"] + "\n" + m["body"]) for m in FIXTURE]


def setup(ctx):
	c = ctx.login()
	uids = []
	for m, raw in zip(FIXTURE, build()):
		uids.append(c.append("INBOX", raw, flags=m["flags"], date=m["date"]))
	c.select("INBOX")
	return c, uids


def run_cases(c, cases, uid=False):
	probs = []
	for crit, want in cases:
		r = c.cmd(("UID " if uid else "") + "SEARCH ", *(crit if isinstance(crit, tuple) else (crit,)))
		if r.status != "OK":
			probs.append("SEARCH %s -> %r" % (crit, r))
			continue
		if len(r.data("SEARCH")) != 1:
			probs.append("SEARCH %s: want one untagged SEARCH, got %r" % (crit, r.untagged))
		got = r.search()
		if got != sorted(want):
			probs.append("SEARCH %s: got %r, want %r" % (crit, got, sorted(want)))
	if probs:
		raise Fail("; ".join(probs))


def test_search_flags(ctx):
	c, _ = setup(ctx)
	run_cases(c, [
		("ALL", [1, 2, 3, 4, 5, 6]),
		("ANSWERED", [1]), ("UNANSWERED", [2, 3, 4, 5, 6]),
		("DELETED", [4]), ("UNDELETED", [1, 2, 3, 5, 6]),
		("DRAFT", [3]), ("UNDRAFT", [1, 2, 4, 5, 6]),
		("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4, 5, 6]),
		("SEEN", [1, 6]), ("UNSEEN", [2, 3, 4, 5]),
		("KEYWORD $Work", [3, 5]), ("UNKEYWORD $Work", [1, 2, 4, 6]),
		("KEYWORD Urgent", [5]), ("KEYWORD NoSuchKeyword", []),
		("UNKEYWORD NoSuchKeyword", [1, 2, 3, 4, 5, 6]),
		# First session to select: everything is \Recent.
		("RECENT", [1, 2, 3, 4, 5, 6]), ("NEW", [2, 3, 4, 5]), ("OLD", []),
	])


def test_search_recent_in_second_session(ctx):
	c, _ = setup(ctx)
	b = ctx.login(c.user)
	b.select("INBOX")
	run_cases(b, [("RECENT", []), ("NEW", []), ("OLD", [1, 2, 3, 4, 5, 6]),
		      ("NOT RECENT", [1, 2, 3, 4, 5, 6])])


def test_search_dates(ctx):
	c, _ = setup(ctx)
	run_cases(c, [
		("BEFORE 03-Feb-2023", [1, 2]), ("BEFORE 1-Feb-2023", []),
		("ON 05-Feb-2023", [3]), ("ON 03-Feb-2023", []), ("ON 4-Feb-2023", [4]),
		("SINCE 06-Feb-2023", [5, 6]), ("SINCE 01-Jan-2000", [1, 2, 3, 4, 5, 6]),
		("SINCE 02-Feb-2023 BEFORE 05-Feb-2023", [2, 4]),
		("SENTBEFORE 03-Feb-2023", [1, 2]), ("SENTON 05-Feb-2023", [5]),
		("SENTON 03-Feb-2023", [3]), ("SENTSINCE 04-Feb-2023", [4, 5, 6]),
		('SENTSINCE "10-Mar-2023"', [6]),
	])


def test_search_size(ctx):
	c, _ = setup(ctx)
	sizes = [len(m) for m in build()]
	big = max(sizes)
	eq(sizes.index(big), 2, "fixture: message 3 is the largest")
	run_cases(c, [
		("LARGER %d" % (big - 1), [3]), ("LARGER %d" % big, []),
		("SMALLER %d" % (big + 1), [1, 2, 3, 4, 5, 6]), ("SMALLER %d" % big, [1, 2, 4, 5, 6]),
		("SMALLER %d" % sizes[0], [i + 1 for i, s in enumerate(sizes) if s < sizes[0]]),
	])


def test_search_headers(ctx):
	c, _ = setup(ctx)
	run_cases(c, [
		("FROM alice", [1]), ("FROM ALICE", [1]), ('FROM "example.com"', [3, 4, 5]),
		('FROM "Carol <carol"', [3]),
		("TO alice", [2, 3, 4, 5]), ("TO bob@example.net", [1, 6]),
		("CC carol", [1]), ("CC nobody", []),
		("BCC dave", [2]),
		("SUBJECT quarterly", [1, 2]), ('SUBJECT "Re: Quarterly"', [2]),
		('SUBJECT "mixed case subject"', [6]),
		("HEADER X-Trace abc", [6]), ('HEADER X-Trace ""', [6]), ("HEADER x-priority 1", [1]),
		('HEADER X-Nope ""', []), ("HEADER Subject lunch", [3]),
	])


def test_search_body_text(ctx):
	c, _ = setup(ctx)
	run_cases(c, [
		("BODY needleinbody", [6]), ("BODY NEEDLE", [6]), ("BODY Quarterly", []),
		("TEXT Quarterly", [1, 2]), ("TEXT needle", [6]), ("TEXT X-Trace", [6]),
		('BODY "numbers are up"', [1]), ("BODY padding", [3]),
		# base64 text/plain is searched decoded.
		('BODY "berraschung im"', [5]),
	])


def test_search_charset_utf8(ctx):
	c, _ = setup(ctx)
	u = lambda s: Lit(s.encode("utf-8"))  # noqa: E731
	run_cases(c, [
		(("CHARSET UTF-8 BODY ", u("Gr\u00fc\u00dfe")), [4]),	# QP ISO-8859-1 body
		(("CHARSET UTF-8 BODY ", u("k\u00f6ln")), [4]),		# ASCII case differs
		(("CHARSET UTF-8 TEXT ", u("gr\u00fc\u00dfe")), [4]),
		(("CHARSET UTF-8 SUBJECT ", u("gr\u00fc\u00dfe")), [4]),	# RFC 2047 subject
		(("CHARSET UTF-8 BODY ", u("\u00dcberraschung")), [5]),	# base64 UTF-8 body
		(("CHARSET UTF-8 BODY ", u("gro\u00df")), [5]),
		(("CHARSET UTF-8 BODY ", u("\u00fc\u00fc\u00fc")), []),
		("CHARSET US-ASCII BODY needle", [6]),
		("CHARSET UTF-8 BODY needle", [6]),
	])


def test_search_charset_unicode_case_insensitive(ctx):
	# RFC 3501 makes string matching case-insensitive; for non-ASCII text
	# that means Unicode case folding (what RFC 9051 and i;unicode-casemap
	# spell out).
	c, _ = setup(ctx)
	u = lambda s: Lit(s.encode("utf-8"))  # noqa: E731
	run_cases(c, [
		(("CHARSET UTF-8 BODY ", u("K\u00d6LN")), [4]),
		(("CHARSET UTF-8 BODY ", u("\u00fcberraschung")), [5]),
		(("CHARSET UTF-8 SUBJECT ", u("GR\u00dc\u00dfE")), [4]),
	])


def test_search_bad_charset(ctx):
	c, _ = setup(ctx)
	r = c.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET BODY x")
	eq(r.status, "NO", "SEARCH with an unknown charset (%r)" % r)
	eq(r.code_name(), "BADCHARSET", "response code (%r)" % r)
	c.ok("NOOP")


def test_search_boolean(ctx):
	c, _ = setup(ctx)
	run_cases(c, [
		("OR FLAGGED DRAFT", [2, 3]), ("NOT SEEN", [2, 3, 4, 5]),
		("OR (SEEN ANSWERED) (FROM bob)", [1, 2]),
		("NOT (OR SEEN FLAGGED)", [3, 4, 5]),
		("(OR SEEN FLAGGED) (NOT ANSWERED)", [2, 6]),
		("OR OR SEEN DRAFT DELETED", [1, 3, 4, 6]),
		("NOT NOT SEEN", [1, 6]),
		("((((SEEN))))", [1, 6]),
		("OR (OR (FROM alice) (FROM bob)) (NOT (OR SUBJECT lunch UNKEYWORD $Work))", [1, 2, 5]),
		("SEEN UNSEEN", []), ("UNDELETED UNSEEN NOT KEYWORD $Work", [2]),
		("NOT ALL", []),
	])


def test_search_sequence_sets(ctx):
	c, _ = setup(ctx)
	run_cases(c, [
		("2:4", [2, 3, 4]), ("*", [6]), ("4:*", [4, 5, 6]), ("1,3,5", [1, 3, 5]),
		("5:2", [2, 3, 4, 5]), ("*:5", [5, 6]), ("1:3 SEEN", [1]), ("NOT 1:5", [6]),
		("OR 1 6", [1, 6]),
	])


def test_search_uid_sets(ctx):
	c, uids = setup(ctx)
	u = uids
	run_cases(c, [
		("UID %d:%d" % (u[1], u[3]), [2, 3, 4]), ("UID %d,%d" % (u[0], u[5]), [1, 6]),
		("UID %d:*" % (u[5] + 1000), [6]), ("UID *", [6]),
		("UID %d:%d" % (u[5] + 1000, u[5] + 2000), []),
	])
	run_cases(c, [
		("ALL", u), ("SEEN", [u[0], u[5]]), ("1:2", u[:2]), ("UID %d:*" % u[4], u[4:]),
		("UID %d:%d" % (u[5] + 10, u[5] + 20), []), ("KEYWORD $Work", [u[2], u[4]]),
	], uid=True)


def test_search_empty_mailbox(ctx):
	c = ctx.login()
	c.select("INBOX")
	r = c.ok("SEARCH ALL")
	eq(r.search(), [], "SEARCH ALL in an empty mailbox")
	eq(len(r.data("SEARCH")), 1, "an empty untagged SEARCH is still sent")
	r = c.ok("UID SEARCH ALL")
	eq(r.search(), [], "UID SEARCH ALL in an empty mailbox")


def test_search_after_expunge(ctx):
	c, uids = setup(ctx)
	c.ok("EXPUNGE")		# removes message 4 (\Deleted)
	run_cases(c, [("ALL", [1, 2, 3, 4, 5]), ("UNSEEN", [2, 3, 4]), ("KEYWORD $Work", [3, 4])])
	run_cases(c, [("ALL", uids[:3] + uids[4:])], uid=True)


def test_search_imaplib(ctx):
	c, _ = setup(ctx)
	m = ctx.imap_login(c.user)
	m.select("INBOX")
	typ, data = m.search(None, "FROM", '"alice"')
	eq((typ, data), ("OK", [b"1"]), "imaplib SEARCH FROM")
	typ, data = m.uid("SEARCH", "SEEN")
	eq(typ, "OK", "imaplib UID SEARCH")
	eq(len(data[0].split()), 2, "UID SEARCH SEEN results")
	m.literal = "Gr\u00fc\u00dfe".encode()
	typ, data = m.search("UTF-8", "BODY")
	eq((typ, data), ("OK", [b"4"]), "imaplib SEARCH CHARSET UTF-8 with a literal")
