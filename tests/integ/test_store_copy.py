"""STORE, COPY and the UID forms (RFC 3501 6.4.6-6.4.8, RFC 4315 UIDPLUS)."""

from integlib import (eq, expect, flagset, message, parse_imap_date, select_info, seqset,
		      status_items)


def setup(ctx, n=4, flags=None):
	c = ctx.login()
	msgs = [message(subject="s%d" % i, body="body %d\n" % i) for i in range(n)]
	uids = [c.append("INBOX", m, flags=(flags[i] if flags else None),
			 date="%02d-Mar-2023 10:00:00 +0000" % (i + 1)) for i, m in enumerate(msgs)]
	c.select("INBOX")
	return c, uids, msgs


def flags_now(c, spec="1:*", uid=False):
	r = c.ok("%sFETCH %s (UID FLAGS)" % ("UID " if uid else "", spec))
	return {s: flagset(i["FLAGS"]) for s, i in r.fetches().items()}


def test_store_variants(ctx):
	c, _, _ = setup(ctx, 3)
	r = c.ok("STORE 1 FLAGS (\\Seen \\Answered)")
	f = r.fetches()
	expect(1 in f and "FLAGS" in f[1], "STORE FLAGS sent no FETCH FLAGS: %r" % r.untagged)
	eq(flagset(f[1]["FLAGS"]), {"\\seen", "\\answered"}, "FLAGS after STORE FLAGS")
	r = c.ok("STORE 1 +FLAGS (\\Flagged)")
	eq(flagset(r.fetches()[1]["FLAGS"]), {"\\seen", "\\answered", "\\flagged"}, "after +FLAGS")
	r = c.ok("STORE 1 -FLAGS (\\Seen \\Draft)")
	eq(flagset(r.fetches()[1]["FLAGS"]), {"\\answered", "\\flagged"}, "after -FLAGS")
	r = c.ok("STORE 1 FLAGS ()")
	eq(flagset(r.fetches()[1]["FLAGS"]), set(), "after FLAGS ()")
	r = c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
	eq([s for s, i in r.fetch_list() if "FLAGS" in i], [], "+FLAGS.SILENT must not return FLAGS")
	r = c.ok("STORE 2 FLAGS.SILENT (\\Draft)")
	r2 = c.ok("STORE 2 -FLAGS.SILENT (\\Seen)")
	eq([s for s, i in r.fetch_list() + r2.fetch_list() if "FLAGS" in i], [], ".SILENT returned FLAGS")
	eq(flags_now(c), {1: set(), 2: {"\\draft"}, 3: set()}, "flags after all STOREs")
	r = c.ok("STORE 1:* +FLAGS \\Seen")
	eq(sorted(r.fetches()), [1, 2, 3], "STORE with an unparenthesised flag")
	eq(flags_now(c), {1: {"\\seen"}, 2: {"\\draft", "\\seen"}, 3: {"\\seen"}}, "flags after STORE 1:*")


def test_store_keywords(ctx):
	c, _, _ = setup(ctx, 2)
	r = c.ok("STORE 1 +FLAGS ($Label1 Custom-Word \\Seen)")
	eq(flagset(r.fetches()[1]["FLAGS"]), {"$label1", "custom-word", "\\seen"}, "keywords stored")
	r = c.ok("FETCH 1 FLAGS")
	eq(flagset(r.fetches()[1]["FLAGS"]), {"$label1", "custom-word", "\\seen"}, "keywords fetched")
	b = ctx.login(c.user)
	r = b.select("INBOX")
	defined = {str(x).lower() for x in select_info(r)["FLAGS"][0]}
	expect({"$label1", "custom-word"} <= defined, "SELECT's FLAGS lack the new keywords: %r" % defined)
	eq(b.ok("SEARCH KEYWORD custom-word").search(), [1], "SEARCH KEYWORD in another session")
	c.ok("STORE 1 -FLAGS ($Label1)")
	eq(flags_now(c)[1], {"custom-word", "\\seen"}, "keyword removed")
	r = c.cmd("STORE 1 +FLAGS (bad(keyword)")
	expect(r.status == "BAD", "keyword with a parenthesis: %r" % r)


def test_store_ranges(ctx):
	c, uids, _ = setup(ctx, 6)
	c.ok("STORE 2:4 +FLAGS.SILENT (\\Flagged)")
	c.ok("STORE 5:* +FLAGS.SILENT (\\Seen)")
	c.ok("STORE 1,3 +FLAGS.SILENT (\\Answered)")
	eq(flags_now(c), {1: {"\\answered"}, 2: {"\\flagged"}, 3: {"\\flagged", "\\answered"},
			  4: {"\\flagged"}, 5: {"\\seen"}, 6: {"\\seen"}}, "flags after range STOREs")


def test_uid_store(ctx):
	c, uids, _ = setup(ctx, 4)
	r = c.ok("UID STORE %d,%d +FLAGS (\\Flagged)" % (uids[1], uids[3]))
	lst = r.fetch_list()
	eq(sorted(s for s, _i in lst), [2, 4], "UID STORE FETCH responses")
	for s, i in lst:
		expect("UID" in i, "UID STORE response without UID: %r" % r.untagged)
		eq(int(i["UID"]), uids[s - 1], "UID in UID STORE response")
	r = c.ok("UID STORE %d:%d +FLAGS (\\Seen)" % (uids[3] + 100, uids[3] + 200))
	eq(r.fetch_list(), [], "UID STORE of a range without messages")
	r = c.ok("UID STORE %d:* -FLAGS.SILENT (\\Flagged)" % (uids[3] + 100))
	eq(flags_now(c), {1: set(), 2: {"\\flagged"}, 3: set(), 4: set()}, "UID STORE n:* hits the last message")


def test_store_seen_by_other_session(ctx):
	c, uids, _ = setup(ctx, 2)
	b = ctx.login(c.user)
	b.select("INBOX")
	c.ok("STORE 2 +FLAGS (\\Answered $Done)")
	eq(flags_now(b)[2], {"\\answered", "$done"}, "other session's FETCH FLAGS after STORE")


def test_store_pushed_to_other_session_on_noop(ctx):
	# RFC 3501 5.2: flag updates SHOULD be sent without being asked.
	c, uids, _ = setup(ctx, 2)
	b = ctx.login(c.user)
	b.select("INBOX")
	c.ok("STORE 1 +FLAGS (\\Flagged)")
	r = b.ok("NOOP")
	f = r.fetches()
	expect(1 in f and "\\flagged" in flagset(f[1].get("FLAGS")),
	       "NOOP in the other session did not report the flag change: %r" % r.untagged)


def _copyuid(r):
	v = r.code_value("COPYUID")
	expect(v is not None, "COPY without [COPYUID]: %r" % r)
	uv, src, dst = v.split()
	src, dst = seqset(src), seqset(dst)
	eq(len(src), len(dst), "COPYUID set sizes (%s)" % v)
	return int(uv), dict(zip(src, dst))


def test_copy_copyuid(ctx):
	c, uids, msgs = setup(ctx, 4, flags=[["\\Seen"], ["\\Flagged", "$K"], [], ["\\Answered"]])
	c.ok("CREATE dst")
	r = c.ok("COPY 1:3 dst")
	uv, mapping = _copyuid(r)
	eq(sorted(mapping), uids[:3], "COPYUID source UIDs")
	st = status_items(c.ok("STATUS dst (UIDVALIDITY MESSAGES)"))
	eq(st["UIDVALIDITY"], uv, "COPYUID uidvalidity vs STATUS")
	eq(st["MESSAGES"], 3, "messages in dst")
	src = c.ok("FETCH 1:3 (UID FLAGS INTERNALDATE)").fetches()
	c.select("dst")
	r = c.ok("UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")
	got = {int(i["UID"]): i for _s, i in r.fetch_list()}
	for s in (1, 2, 3):
		su = int(src[s]["UID"])
		du = mapping[su]
		expect(du in got, "COPYUID names %d but dst has %r" % (du, sorted(got)))
		eq(got[du]["BODY[]"], msgs[s - 1], "copied bytes of message %d" % s)
		eq(flagset(got[du]["FLAGS"]), flagset(src[s]["FLAGS"]), "copied flags of message %d" % s)
		eq(parse_imap_date(got[du]["INTERNALDATE"]), parse_imap_date(src[s]["INTERNALDATE"]),
		   "copied INTERNALDATE of message %d" % s)
	c.select("INBOX")
	eq(select_info(c.select("INBOX"))["EXISTS"], [4], "source after COPY")


def test_copy_missing_trycreate(ctx):
	c, _, _ = setup(ctx, 1)
	r = c.cmd("COPY 1 nosuchbox")
	eq(r.status, "NO", "COPY to a missing mailbox (%r)" % r)
	eq(r.code_name(), "TRYCREATE", "response code (%r)" % r)
	r = c.cmd("UID COPY 1:* nosuchbox")
	eq((r.status, r.code_name()), ("NO", "TRYCREATE"), "UID COPY to a missing mailbox (%r)" % r)


def test_uid_copy(ctx):
	c, uids, msgs = setup(ctx, 5)
	c.ok("CREATE d2")
	r = c.ok("UID COPY %d,%d:%d d2" % (uids[0], uids[2], uids[3]))
	_uv, mapping = _copyuid(r)
	eq(sorted(mapping), [uids[0], uids[2], uids[3]], "UID COPY source set")
	r = c.ok("UID COPY %d:%d d2" % (uids[4] + 50, uids[4] + 60))
	eq(status_items(c.ok("STATUS d2 (MESSAGES)"))["MESSAGES"], 3, "UID COPY of an empty range copied nothing")
	c.select("d2")
	r = c.ok("UID FETCH %s BODY.PEEK[]" % ",".join(str(mapping[u]) for u in sorted(mapping)))
	got = sorted(i["BODY[]"] for _s, i in r.fetch_list())
	eq(got, sorted([msgs[0], msgs[2], msgs[3]]), "copied bytes")


def test_copy_into_selected_mailbox(ctx):
	c, uids, msgs = setup(ctx, 2)
	r = c.ok("COPY 2 INBOX")
	_uv, mapping = _copyuid(r)
	expect(mapping[uids[1]] > uids[1], "copy got UID %d" % mapping[uids[1]])
	n = r.number("EXISTS") or c.ok("NOOP").number("EXISTS")
	eq(n, 3, "EXISTS after COPY into the selected mailbox")
	f = c.ok("FETCH 3 (UID BODY.PEEK[])").fetches()[3]
	eq((int(f["UID"]), f["BODY[]"]), (mapping[uids[1]], msgs[1]), "the copy")


def test_copy_then_expunge_source(ctx):
	c, uids, msgs = setup(ctx, 2)
	c.ok("CREATE keep")
	c.ok("COPY 1:2 keep")
	c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
	c.ok("EXPUNGE")
	c.select("keep")
	r = c.ok("FETCH 1:* BODY.PEEK[]")
	eq(sorted(i["BODY[]"] for i in r.fetches().values()), sorted(msgs), "copies survive the source's EXPUNGE")
	f = flags_now(c)
	expect(all("\\deleted" not in v for v in f.values()),
	       "copies made before \\Deleted was set carry it: %r" % f)


def test_copy_imaplib(ctx):
	m = ctx.imap_login()
	m.append("INBOX", None, None, message(subject="cp"))
	m.create("target")
	m.select("INBOX")
	typ, data = m.copy("1", "target")
	eq(typ, "OK", "imaplib COPY")
	expect(b"COPYUID" in data[0].upper(), "COPYUID in %r" % data)
	typ, data = m.uid("COPY", "1:*", "target")
	eq(typ, "OK", "imaplib UID COPY")
	typ, data = m.status("target", "(MESSAGES)")
	expect(b"MESSAGES 2" in data[0], "target after two copies: %r" % data)
