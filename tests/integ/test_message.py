"""APPEND, CHECK, CLOSE, UNSELECT, EXPUNGE, \\Recent and what a second
session sees (RFC 3501, 3691, 4315, 5530, 7889)."""

import imaplib
import time

from integlib import (Closed, Lit, View, crlf, eq, expect, flagset, message,
		      parse_imap_date, quote, select_info, status_items, status_of)


def fill(c, mbox, n, flags=None):
	return [c.append(mbox, message(subject="m%d" % i, body="body %d\n" % i),
			 flags=(flags[i] if flags else None)) for i in range(n)]


# ------------------------------------------------------------ APPEND

def test_append_flags_and_date(ctx):
	c = ctx.login()
	msg = message(subject="dated", body="With flags and a date.\n")
	r = c.ok("APPEND INBOX (\\Seen \\Flagged $Custom) \"17-Jul-1996 02:44:25 -0700\" ", Lit(msg))
	v = r.code_value("APPENDUID")
	expect(v is not None, "APPEND without [APPENDUID]: %r" % r)
	uv, uid = (int(x) for x in v.split())
	r = c.select("INBOX")
	eq(int(select_info(r)["UIDVALIDITY"][0]), uv, "APPENDUID uidvalidity vs SELECT")
	r = c.ok("UID FETCH %d (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])" % uid)
	f = r.fetches()[1]
	eq(int(f["UID"]), uid, "UID")
	eq(flagset(f["FLAGS"]), {"\\seen", "\\flagged", "$custom"}, "flags of the appended message")
	eq(parse_imap_date(f["INTERNALDATE"]), parse_imap_date("17-Jul-1996 02:44:25 -0700"),
	   "INTERNALDATE instant (%r)" % f["INTERNALDATE"])
	eq(int(f["RFC822.SIZE"]), len(msg), "RFC822.SIZE")
	eq(f["BODY[]"], msg, "appended bytes")
	fl = {str(x).lower() for x in select_info(c.select("INBOX"))["FLAGS"][0]}
	expect("$custom" in fl, "FLAGS of SELECT lacks the keyword $Custom: %r" % fl)


def test_append_without_date_uses_now(ctx):
	c = ctx.login()
	t0 = time.time()
	c.append("INBOX", message())
	c.select("INBOX")
	f = c.ok("FETCH 1 INTERNALDATE").fetches()[1]
	t = parse_imap_date(f["INTERNALDATE"])
	expect(t0 - 120 <= t <= time.time() + 120, "INTERNALDATE %r is not about now" % f["INTERNALDATE"])


def test_append_uids_increase(ctx):
	c = ctx.login()
	uids = fill(c, "INBOX", 5)
	expect(all(uids), "APPEND without APPENDUID")
	eq(uids, sorted(set(uids)), "APPENDUIDs strictly increase")
	r = c.select("INBOX")
	f = c.ok("FETCH 1:* UID").fetches()
	eq([int(f[i]["UID"]) for i in sorted(f)], uids, "UIDs by sequence number")


def test_append_missing_mailbox_trycreate(ctx):
	c = ctx.login()
	r = c.cmd("APPEND nosuchbox ", Lit(message()))
	eq(r.status, "NO", "APPEND to a missing mailbox (%r)" % r)
	eq(r.code_name(), "TRYCREATE", "response code (%r)" % r)
	r = c.cmd("APPEND nosuchbox {10+}\r\n0123456789")
	eq((r.status, r.code_name()), ("NO", "TRYCREATE"), "APPEND with LITERAL+ to a missing mailbox (%r)" % r)
	c.ok("NOOP")


def _append_limit(c):
	r = c.ok("CAPABILITY")
	for t in r.data("CAPABILITY"):
		for cap in t[2:]:
			if str(cap).upper().startswith("APPENDLIMIT="):
				return int(str(cap).split("=", 1)[1])
	return None


def test_append_too_big_sync_literal(ctx):
	c = ctx.login()
	limit = _append_limit(c)
	size = limit + 1 if limit else 1 << 40
	tag = c.next_tag()
	c.send("%s APPEND INBOX {%d}\r\n" % (tag, size))
	while True:
		line = c.read_response()
		expect(not line.startswith(b"+"), "server invited a %d-byte literal: %r" % (size, line))
		if line.startswith(tag.encode() + b" "):
			break
	st = status_of(line)
	expect(st and st[1] in ("NO", "BAD"), "want NO [TOOBIG] or BAD, got %r" % line)
	if st[1] == "NO":
		eq(st[2].split()[0].upper() if st[2] else None, "TOOBIG", "NO response code (%r)" % line)
	c.ok("NOOP")
	c.select("INBOX")
	eq(c.ok("NOOP").number("EXISTS"), None, "no message appeared")


def test_append_too_big_nonsync_literal(ctx):
	c = ctx.login()
	limit = _append_limit(c)
	if not limit or limit > 64 * 1024 * 1024:
		# Without APPENDLIMIT the limit is unknown: announce 2^40 bytes
		# with LITERAL+, send some and expect a refusal with BYE or BAD.
		size = 1 << 40
	else:
		size = limit + 1
	tag = c.next_tag()
	closed = False
	lines = []
	try:
		c.send("%s APPEND INBOX {%d+}\r\n" % (tag, size))
		chunk = b"x" * 65536
		sent = 0
		deadline = time.time() + 20
		while sent < min(size, 70 * 1024 * 1024) and time.time() < deadline:
			n = min(len(chunk), size - sent)
			c.send(chunk[:n])
			sent += n
			if size == 1 << 40 and sent >= 8 * 1024 * 1024:
				break
		if sent == size:
			c.send("\r\n")
	except OSError:
		closed = True
	try:
		c.sock.settimeout(10)
		while True:
			line = c.read_response()
			lines.append(line)
			if line.startswith(tag.encode()) or line.upper().startswith(b"* BYE"):
				break
	except (Closed, OSError):
		closed = True
	expect(lines, "no response at all to an oversized non-synchronizing literal")
	last = lines[-1]
	expect(last.startswith(tag.encode() + b" BAD") or last.startswith(tag.encode() + b" NO")
	       or last.upper().startswith(b"* BYE"),
	       "want BAD/NO [TOOBIG] or BYE for an oversized LITERAL+, got %r" % lines)
	if size != 1 << 40 and not last.upper().startswith(b"* BYE") and not closed:
		c.sock.settimeout(30)
		c.ok("NOOP")
	fresh = ctx.login(c.user)
	fresh.select("INBOX")
	eq(fresh.ok("NOOP").number("EXISTS"), None, "no message from the refused APPEND")


def test_append_seen_by_selected_session(ctx):
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login(u)
	fill(a, "INBOX", 1)
	r = b.select("INBOX")
	eq(select_info(r)["EXISTS"], [1], "EXISTS at SELECT")
	msg = message(subject="new arrival")
	uid = a.append("INBOX", msg)
	r = b.ok("NOOP")
	eq(r.number("EXISTS"), 2, "EXISTS seen by the other session on NOOP (%r)" % r.untagged)
	r = b.ok("FETCH 2 (UID BODY.PEEK[])")
	f = r.fetches()[2]
	eq((int(f["UID"]), f["BODY[]"]), (uid, msg), "new message seen by the other session")


def test_append_to_selected_mailbox_same_session(ctx):
	c = ctx.login()
	c.select("INBOX")
	r = c.ok("APPEND INBOX ", Lit(message()))
	n = r.number("EXISTS")
	r2 = c.ok("NOOP")
	n = r2.number("EXISTS") or n
	eq(n, 1, "EXISTS after APPEND to the selected mailbox (in APPEND or NOOP responses)")
	c.ok("FETCH 1 FLAGS")


def test_append_exact_bytes(ctx):
	c = ctx.login()
	hi = bytes(range(0x80, 0x100))
	cases = [
		message(body="8-bit: \u00e4\u00f6\u00fc \u65e5\u672c\n"),
		message(body="long line " + "y" * 5000 + "\n"),
		message(body=".\n..\nFrom the start\n>From\n\n\n\ntrailing blank lines\n\n\n"),
		crlf(b"Subject: raw high bytes\n\n") + hi + b"\r\n" + bytes(range(1, 10)) + b"\r\n",
		message(body="no final newline"),
		crlf(b"Subject: only header\n"),
		message(body="tab\tand  spaces   \n \n\t\n"),
	]
	uids = [c.append("INBOX", m) for m in cases]
	c.select("INBOX")
	r = c.ok("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])")
	f = r.fetches()
	for i, m in enumerate(cases):
		eq(f[i + 1]["BODY[]"], m, "bytes of case %d" % i)
		eq(int(f[i + 1]["RFC822.SIZE"]), len(m), "RFC822.SIZE of case %d" % i)
		eq(int(f[i + 1]["UID"]), uids[i], "UID of case %d" % i)


def test_append_large_message(ctx):
	c = ctx.login()
	body = b"".join(b"%08d %s\r\n" % (i, b"z" * 70) for i in range(40000))	# ~3.2 MB
	msg = crlf(b"Subject: large\nMessage-ID: <large@x>\n\n") + body
	uid = c.append("INBOX", msg)
	c.select("INBOX")
	r = c.ok("UID FETCH %d (RFC822.SIZE BODY.PEEK[] BODY.PEEK[]<1000000.20>)" % uid)
	f = r.fetches()[1]
	eq(int(f["RFC822.SIZE"]), len(msg), "RFC822.SIZE of a large message")
	expect(f["BODY[]"] == msg, "large message bytes differ (len %d vs %d)" % (len(f["BODY[]"]), len(msg)))
	eq(f["BODY[]<1000000>"], msg[1000000:1000020], "partial fetch inside a large message")


def test_append_bad_arguments(ctx):
	c = ctx.login()
	# (Out-of-range numbers like 32-Jan are still grammatical, so not here.)
	for args in (' (\\Seen "quoted") ', ' "01-Foo-2023 00:00:00 +0000" ', ' "bogus date" ',
		     ' "17-Jul-1996 02:44:25" ', ' "17-Jul-1996 02:44:25 0700" '):
		r = c.cmd("APPEND INBOX", args, Lit(message()))
		eq(r.status, "BAD", "APPEND INBOX%s{...} (%r)" % (args, r))
		c.ok("NOOP")
	c.select("INBOX")
	eq(c.ok("NOOP").number("EXISTS"), None, "nothing appended by BAD APPENDs")


def test_append_imaplib(ctx):
	m = ctx.imap_login()
	msg = message(subject="via imaplib")
	when = imaplib.Time2Internaldate(time.mktime((2022, 5, 6, 7, 8, 9, 0, 0, -1)))
	typ, data = m.append("INBOX", "(\\Answered)", when, msg)
	eq(typ, "OK", "imaplib APPEND")
	expect(b"APPENDUID" in data[0].upper(), "APPENDUID in %r" % data)
	m.select("INBOX")
	typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
	eq(data[0][1], msg, "bytes")


# ------------------------------------------------------------ CHECK, CLOSE, UNSELECT

def test_check(ctx):
	c = ctx.login()
	c.select("INBOX")
	c.ok("CHECK")


def test_close_expunges_silently(ctx):
	c = ctx.login()
	uids = fill(c, "INBOX", 4)
	c.select("INBOX")
	c.ok("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("CLOSE")
	eq(r.data("EXPUNGE"), [], "CLOSE must not send EXPUNGE responses")
	eq(c.cmd("FETCH 1 FLAGS").status, "BAD", "FETCH after CLOSE (authenticated state)")
	c.select("INBOX")
	f = c.ok("FETCH 1:* UID").fetches()
	eq([int(f[i]["UID"]) for i in sorted(f)], [uids[0], uids[3]], "UIDs after CLOSE")


def test_close_after_examine_keeps_deleted(ctx):
	c = ctx.login()
	fill(c, "INBOX", 2)
	c.select("INBOX")
	c.ok("STORE 1 +FLAGS (\\Deleted)")
	c.ok("EXAMINE INBOX")
	c.ok("CLOSE")
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [2], "CLOSE of a read-only mailbox expunged")


def test_unselect_keeps_deleted(ctx):
	c = ctx.login()
	fill(c, "INBOX", 3)
	c.select("INBOX")
	c.ok("STORE 1:2 +FLAGS (\\Deleted)")
	r = c.ok("UNSELECT")
	eq(r.data("EXPUNGE"), [], "UNSELECT sent EXPUNGE")
	eq(c.cmd("FETCH 1 FLAGS").status, "BAD", "FETCH after UNSELECT")
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [3], "UNSELECT expunged messages")
	eq(c.ok("SEARCH DELETED").search(), [1, 2], "\\Deleted kept after UNSELECT")


# ------------------------------------------------------------ EXPUNGE

def test_expunge_sequence_numbers(ctx):
	c = ctx.login()
	uids = fill(c, "INBOX", 8)
	c.select("INBOX")
	v = View(uids)
	c.ok("STORE 2,3,5,8 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("EXPUNGE")
	eq(len(r.data("EXPUNGE")), 4, "EXPUNGE responses (%r)" % r.untagged)
	gone = v.expunged_by(r)
	eq(sorted(gone), [uids[1], uids[2], uids[4], uids[7]], "messages removed by the EXPUNGE responses")
	eq(v.check(c, "after EXPUNGE"), [uids[0], uids[3], uids[5], uids[6]], "remaining UIDs")
	r = c.ok("EXPUNGE")
	eq(r.data("EXPUNGE"), [], "second EXPUNGE with nothing \\Deleted")


def test_uid_expunge(ctx):
	c = ctx.login()
	uids = fill(c, "INBOX", 5)
	c.select("INBOX")
	v = View(uids)
	c.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
	r = c.ok("UID EXPUNGE %d,%d:%d" % (uids[1], uids[3], uids[4]))
	gone = v.expunged_by(r)
	eq(sorted(gone), [uids[1], uids[3]], "UID EXPUNGE removes only \\Deleted messages in its set")
	v.check(c, "after UID EXPUNGE")
	eq(c.ok("SEARCH DELETED").search(), [1, 2], "\\Deleted messages outside the set remain")


def test_expunge_seen_by_other_session(ctx):
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login(u)
	uids = fill(a, "INBOX", 6)
	a.select("INBOX")
	b.select("INBOX")
	va, vb = View(uids), View(uids)
	a.ok("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)")
	va.apply(a.ok("EXPUNGE"))
	# FETCH, STORE and SEARCH must not carry EXPUNGE responses.
	for cmd in ("FETCH 1:6 (FLAGS)", "STORE 6 +FLAGS (\\Seen)", "SEARCH ALL"):
		r = b.cmd(cmd)
		eq(r.data("EXPUNGE"), [], "EXPUNGE responses during %s (RFC 3501 7.4.1)" % cmd)
	r = b.ok("NOOP")
	gone = vb.expunged_by(r)
	eq(sorted(gone), [uids[1], uids[3], uids[4]], "EXPUNGEs seen by the other session on NOOP")
	eq(vb.check(b, "session B"), [uids[0], uids[2], uids[5]], "B's view")
	eq(va.check(a, "session A"), [uids[0], uids[2], uids[5]], "A's view")


def test_expunge_and_append_mixed_for_other_session(ctx):
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login(u)
	uids = fill(a, "INBOX", 4)
	b.select("INBOX")
	vb = View(uids)
	a.select("INBOX")
	a.ok("STORE 1,4 +FLAGS.SILENT (\\Deleted)")
	a.ok("EXPUNGE")
	new = fill(a, "INBOX", 2)
	a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	a.ok("EXPUNGE")
	vb.apply(b.ok("NOOP"))
	eq(vb.check(b, "B after foreign EXPUNGE+APPEND+EXPUNGE"), [uids[2]] + new, "B's view")


def test_expunge_imaplib(ctx):
	m = ctx.imap_login()
	for i in range(3):
		m.append("INBOX", None, None, message(subject="e%d" % i))
	m.select("INBOX")
	m.store("1,3", "+FLAGS", "(\\Deleted)")
	typ, data = m.expunge()
	eq(typ, "OK", "imaplib EXPUNGE")
	left = [1, 2, 3]
	for n in data:
		del left[int(n) - 1]
	eq(left, [2], "messages left according to imaplib's EXPUNGE data %r" % data)
	typ, data = m.search(None, "ALL")
	eq(data, [b"1"], "messages left")


# ------------------------------------------------------------ \Recent

def test_recent_first_session_only(ctx):
	u = ctx.user()
	w = ctx.login(u)
	fill(w, "INBOX", 2)
	a = ctx.login(u)
	r = a.select("INBOX")
	eq(select_info(r)["RECENT"], [2], "RECENT for the first session to select")
	f = a.ok("FETCH 1:2 FLAGS").fetches()
	for s in (1, 2):
		expect("\\recent" in {str(x).lower() for x in f[s]["FLAGS"]},
		       "\\Recent missing in the first session: %r" % f)
	eq(a.ok("SEARCH RECENT").search(), [1, 2], "SEARCH RECENT in the first session")
	eq(a.ok("SEARCH NEW").search(), [1, 2], "SEARCH NEW in the first session")
	b = ctx.login(u)
	r = b.select("INBOX")
	eq(select_info(r)["RECENT"], [0], "RECENT for a second session")
	f = b.ok("FETCH 1:2 FLAGS").fetches()
	for s in (1, 2):
		expect("\\recent" not in {str(x).lower() for x in f[s]["FLAGS"]},
		       "\\Recent shown to the second session: %r" % f)
	eq(b.ok("SEARCH RECENT").search(), [], "SEARCH RECENT in the second session")
	eq(b.ok("SEARCH OLD").search(), [1, 2], "SEARCH OLD in the second session")
	# A message arriving while both have the mailbox selected is recent
	# for exactly one of them.
	w.append("INBOX", message(subject="third"))
	ra, rb = a.ok("NOOP"), b.ok("NOOP")
	eq(ra.number("EXISTS"), 3, "EXISTS in A")
	eq(rb.number("EXISTS"), 3, "EXISTS in B")
	na = a.ok("SEARCH RECENT").search()
	nb = b.ok("SEARCH RECENT").search()
	expect(na[:2] == [1, 2] and nb[:1] != [1], "old recent messages changed: A %r, B %r" % (na, nb))
	expect((3 in na) != (3 in nb), "new message must be recent in exactly one session: A %r, B %r" % (na, nb))
	# \Recent cannot be stored.
	r = a.cmd("STORE 1 -FLAGS (\\Recent)")
	if r.status == "OK":
		expect("\\recent" in {str(x).lower() for x in a.ok("FETCH 1 FLAGS").fetches()[1]["FLAGS"]},
		       "client removed \\Recent")


def test_recent_cleared_for_next_session(ctx):
	u = ctx.user()
	w = ctx.login(u)
	fill(w, "INBOX", 1)
	a = ctx.login(u)
	eq(select_info(a.select("INBOX"))["RECENT"], [1], "first SELECT")
	a.ok("LOGOUT")
	b = ctx.login(u)
	eq(select_info(b.select("INBOX"))["RECENT"], [0], "SELECT after the first session ended")
	eq(status_items(w.ok("STATUS INBOX (RECENT)"))["RECENT"], 0, "STATUS RECENT")


# ------------------------------------------------------------ robustness

def test_concurrent_appends_unique_uids(ctx):
	import threading
	u = ctx.user()
	conns = [ctx.login(u) for _ in range(5)]
	results = {}
	errors = []

	def worker(k, c):
		try:
			msgs = [message(subject="conc %d/%d" % (k, i), msgid="<c%d.%d@conc>" % (k, i))
				for i in range(20)]
			c.send(b"".join(b"C%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m)
					for i, m in enumerate(msgs)))
			for i in range(20):
				r = c.read_until("C%d" % i)
				if r.status != "OK" or not r.code_value("APPENDUID"):
					errors.append("session %d APPEND %d -> %r" % (k, i, r))
					return
				results[int(r.code_value("APPENDUID").split()[1])] = msgs[i]
		except Exception as e:	# reported below
			errors.append("session %d: %s" % (k, e))
	threads = [threading.Thread(target=worker, args=(k, c)) for k, c in enumerate(conns)]
	for t in threads:
		t.start()
	for t in threads:
		t.join(50)
	expect(not errors, "; ".join(errors[:5]))
	eq(len(results), 100, "distinct APPENDUIDs for 100 concurrent APPENDs")
	c = ctx.login(u)
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [100], "messages after concurrent APPENDs")
	f = c.ok("UID FETCH 1:* (UID BODY.PEEK[])").fetch_list()
	got = {int(i["UID"]): i["BODY[]"] for _s, i in f}
	eq(got, results, "UID -> bytes after concurrent APPENDs")


def test_uidnext_never_goes_back(ctx):
	c = ctx.login()
	uids = fill(c, "INBOX", 3)
	c.select("INBOX")
	c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE")
	c.ok("UNSELECT")
	s = status_items(c.ok("STATUS INBOX (UIDNEXT MESSAGES)"))
	expect(s["UIDNEXT"] > uids[2], "UIDNEXT %d after expunging UID %d" % (s["UIDNEXT"], uids[2]))
	uid = c.append("INBOX", message())
	expect(uid > uids[2], "UID %d reused after EXPUNGE of UID %d" % (uid, uids[2]))


def test_slow_client_byte_by_byte(ctx):
	u = ctx.user()
	c = ctx.conn()
	msg = message(subject="slow", body="sent one byte at a time\n")
	data = ("s1 LOGIN %s %s\r\ns2 APPEND INBOX (\\Seen) {%d}\r\n" % (
		quote(u.name), quote(u.password), len(msg))).encode()
	for b in data[:-2]:
		c.send(bytes([b]))
		time.sleep(0.002)
	c.send(b"\r\n")
	r = c.read_until("s1")
	eq(r.status, "OK", "LOGIN sent byte by byte (%r)" % r)
	line = c.read_response()
	expect(line.startswith(b"+"), "continuation for a byte-by-byte APPEND: %r" % line)
	for b in msg + b"\r\n":
		c.send(bytes([b]))
	r = c.read_until("s2")
	eq(r.status, "OK", "APPEND literal sent byte by byte (%r)" % r)
	c.select("INBOX")
	eq(c.ok("FETCH 1 BODY.PEEK[]").fetches()[1]["BODY[]"], msg, "bytes")


def test_large_fetch_response_slow_reader(ctx):
	c = ctx.login()
	bodies = []
	data = b""
	for i in range(200):
		m = message(subject="bulk %d" % i, body=("%05d " % i + "q" * 90 + "\n") * 200)
		bodies.append(m)
		data += b"B%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m)
	c.send(data)
	for i in range(200):
		eq(c.read_until("B%d" % i).status, "OK", "APPEND %d" % i)
	c.select("INBOX")
	tag = c.next_tag()
	c.send("%s FETCH 1:* (BODY.PEEK[])\r\n" % tag)
	time.sleep(2)		# let the server fill its send buffer and wait for us
	r = c.read_until(tag)
	eq(r.status, "OK", "FETCH of ~4 MB (%r)" % r)
	f = r.fetches()
	eq(len(f), 200, "messages in a large FETCH")
	for i in range(200):
		eq(f[i + 1]["BODY[]"], bodies[i], "message %d of a large FETCH" % i)


def test_system_flags_case_insensitive(ctx):
	c = ctx.login()
	c.append("INBOX", message(), flags=["\\SEEN"])
	c.append("INBOX", message())
	c.select("INBOX")
	c.ok("STORE 2 +FLAGS (\\fLaGgEd \\ANSWERED)")
	f = c.ok("FETCH 1:2 FLAGS").fetches()
	eq(flagset(f[1]["FLAGS"]), {"\\seen"}, "APPEND (\\SEEN)")
	eq(flagset(f[2]["FLAGS"]), {"\\flagged", "\\answered"}, "STORE (\\fLaGgEd \\ANSWERED)")
	eq(c.ok("SEARCH SEEN").search(), [1], "SEARCH SEEN")
	eq(c.ok("SEARCH FLAGGED ANSWERED").search(), [2], "SEARCH FLAGGED ANSWERED")
	c.ok("STORE 2 -FLAGS (\\Flagged)")
	eq(flagset(c.ok("FETCH 2 FLAGS").fetches()[2]["FLAGS"]), {"\\answered"}, "-FLAGS with other case")


def test_section_consistency_odd_messages(ctx):
	c = ctx.login()
	cases = [
		b"Subject: lf only\nFrom: a@b.c\n\nline one\nline two\n",
		b"Subject: only a header\r\n",
		b"Subject: header without final newline",
		b"\r\nbody without header\r\n",
		b"Subject: mixed\r\nX: y\n\r\nmixed\nline ends\r\n",
	]
	for m in cases:
		c.append("INBOX", m)
	c.select("INBOX")
	r = c.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODYSTRUCTURE)")
	f = r.fetches()
	eq(len(f), len(cases), "messages")
	for i in range(len(cases)):
		it = f[i + 1]
		full = it["BODY[]"]
		eq(int(it["RFC822.SIZE"]), len(full), "RFC822.SIZE vs BODY[] of odd message %d" % i)
		eq(it["BODY[HEADER]"] + it["BODY[TEXT]"], full, "HEADER + TEXT == BODY[] of odd message %d" % i)
		expect(full.replace(b"\r\n", b"\n") == cases[i].replace(b"\r\n", b"\n"),
		       "odd message %d changed beyond line endings: %r" % (i, full))


def test_append_empty_and_nul(ctx):
	c = ctx.login()
	r = c.cmd("APPEND INBOX {0}\r\n")
	if r.status == "OK":
		c.select("INBOX")
		f = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])").fetches()[1]
		eq((int(f["RFC822.SIZE"]), f["BODY[]"]), (0, b""), "empty message")
		c.ok("UNSELECT")
	else:
		expect(r.status in ("NO", "BAD"), "APPEND of 0 bytes: %r" % r)
	# NUL is not a CHAR8 (RFC 3501 9: literal = "{" number "}" CRLF *CHAR8):
	# a server may refuse it, or keep the message, but its responses
	# must never carry a NUL inside a literal.
	msg = b"Subject: nul\x00here\r\n\r\na\x00b\r\n"
	r = c.cmd("APPEND INBOX ", Lit(msg))
	expect(r.status in ("OK", "NO", "BAD"), "APPEND with NUL: %r" % r)
	if r.status == "OK":
		uid = int(r.code_value("APPENDUID").split()[1])
		c.select("INBOX")
		r = c.ok("UID FETCH %d (BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[HEADER] ENVELOPE RFC822.SIZE)" % uid)
		for u in r.untagged:
			expect(b"\x00" not in u, "NUL byte sent inside a FETCH response: %r" % u[:200])
		f = list(r.fetches().values())[0]
		eq(int(f["RFC822.SIZE"]), len(f["BODY[]"]), "RFC822.SIZE vs BODY[] of a message sent with NUL")
	c.ok("NOOP")


def test_uid_ranges_with_holes(ctx):
	c = ctx.login()
	uids = fill(c, "INBOX", 6)
	c.select("INBOX")
	c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE")
	r = c.ok("UID FETCH %d:%d UID" % (uids[1], uids[4]))
	eq(sorted(int(i["UID"]) for _s, i in r.fetch_list()), [uids[2], uids[4]], "UID FETCH over expunged UIDs")
	r = c.ok("UID SEARCH UID %d:%d" % (uids[0], uids[3]))
	eq(r.search(), [uids[0], uids[2]], "UID SEARCH over expunged UIDs")
	r = c.ok("UID STORE %d +FLAGS (\\Seen)" % uids[1])
	eq(r.fetch_list(), [], "UID STORE of an expunged UID")


def test_thousand_messages(ctx):
	c = ctx.login()
	n = 1000
	msgs = [message(subject="many %d" % i, body="n=%d\n" % i) for i in range(n)]
	for start in range(0, n, 100):
		c.send(b"".join(b"M%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(msgs[i]), msgs[i])
				for i in range(start, min(n, start + 100))))
		for i in range(start, min(n, start + 100)):
			r = c.read_until("M%d" % i)
			eq(r.status, "OK", "APPEND %d (%r)" % (i, r))
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [n], "EXISTS")
	uids = [int(i["UID"]) for _s, i in sorted(c.ok("FETCH 1:* (UID)").fetch_list())]
	eq(len(set(uids)), n, "distinct UIDs")
	v = View(uids)
	c.ok("STORE %s +FLAGS.SILENT (\\Deleted)" % ",".join(str(i) for i in range(1, n + 1, 3)))
	eq(c.ok("SEARCH DELETED").search(), list(range(1, n + 1, 3)), "SEARCH DELETED")
	r = c.ok("EXPUNGE")
	gone = v.expunged_by(r)
	eq(sorted(gone), sorted(uids[i] for i in range(0, n, 3)), "expunged UIDs")
	v.check(c, "after expunging every third message")
	r = c.ok("UID SEARCH SUBJECT \"many 998\"")
	eq(r.search(), [uids[998]], "SEARCH in a large mailbox")


test_thousand_messages.timeout = 180
