"""Mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, LIST, LSUB, STATUS, modified UTF-7 names (RFC 3501, 3348,
5530)."""

from integlib import (Lit, eq, expect, flagset, list_mailboxes, message, quote,
		      select_info, status_items)
from integlib import mutf7 as to_mutf7

SYSTEM_FLAGS = {"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft"}


def names(c, ref="", pat="*", cmd="LIST"):
	return set(list_mailboxes(c, ref, pat, cmd))


def fill(c, mbox, n, flags=None):
	uids = []
	for i in range(n):
		uids.append(c.append(mbox, message(subject="%s #%d" % (mbox, i),
						   body="message %d of %s\n" % (i, mbox)),
				     flags=(flags[i] if flags else None)))
	return uids


def check_selectable_consistent(c, name, attrs):
	"""A name LIST shows without \\Noselect must be selectable and one with
	\\Noselect (or \\NonExistent) must not."""
	r = c.cmd("EXAMINE ", quote(name))
	noselect = "\\noselect" in attrs or "\\nonexistent" in attrs
	if noselect:
		expect(r.status == "NO", "LIST says %r is \\Noselect but EXAMINE -> %r" % (name, r))
	else:
		expect(r.status == "OK", "LIST says %r is selectable but EXAMINE -> %r" % (name, r))
	c.cmd("UNSELECT")


# ------------------------------------------------------------ SELECT / EXAMINE

def test_select_responses(ctx):
	u = ctx.user()
	a = ctx.login(u)
	uids = fill(a, "INBOX", 3, flags=[["\\Seen"], [], ["\\Seen"]])
	expect(all(uids), "APPEND without APPENDUID: %r" % uids)
	c = ctx.login(u)
	r = c.cmd("SELECT INBOX")
	eq(r.status, "OK", "SELECT INBOX (%r)" % r)
	eq(r.code_name(), "READ-WRITE", "tagged SELECT response code (%r)" % r)
	i = select_info(r)
	eq(i["EXISTS"], [3], "EXISTS responses")
	eq(len(i["RECENT"]), 1, "RECENT responses (%r)" % r.untagged)
	expect(0 <= i["RECENT"][0] <= 3, "RECENT %r" % i["RECENT"])
	eq(len(i["FLAGS"]), 1, "FLAGS responses (%r)" % r.untagged)
	expect(SYSTEM_FLAGS <= {str(f).lower() for f in i["FLAGS"][0]},
	       "FLAGS lacks system flags: %r" % i["FLAGS"])
	eq(i["UNSEEN"], ["2"], "OK [UNSEEN n] (first unseen message)")
	eq(len(i["UIDVALIDITY"]), 1, "UIDVALIDITY codes (%r)" % r.untagged)
	expect(int(i["UIDVALIDITY"][0]) > 0, "UIDVALIDITY must be non-zero")
	eq(len(i["UIDNEXT"]), 1, "UIDNEXT codes (%r)" % r.untagged)
	expect(int(i["UIDNEXT"][0]) > max(uids), "UIDNEXT %s not above APPENDUIDs %r"
	       % (i["UIDNEXT"], uids))
	eq(len(i["PERMANENTFLAGS"]), 1, "PERMANENTFLAGS codes (%r)" % r.untagged)
	pf = {x.lower() for x in i["PERMANENTFLAGS"][0].strip("()").split()}
	expect(SYSTEM_FLAGS | {"\\*"} <= pf, "PERMANENTFLAGS lacks system flags or \\*: %r" % pf)
	# APPENDUID's UIDVALIDITY is the mailbox's.
	r2 = a.ok("APPEND INBOX ", Lit(message()))
	eq(r2.code_value("APPENDUID").split()[0], i["UIDVALIDITY"][0], "APPENDUID uidvalidity")


def test_select_no_unseen_when_all_seen(ctx):
	c = ctx.login()
	fill(c, "INBOX", 2, flags=[["\\Seen"], ["\\Seen"]])
	r = c.select("INBOX")
	eq(select_info(r)["UNSEEN"], [], "UNSEEN code when every message is \\Seen")
	c.ok("CREATE empty")
	r = c.select("empty")
	i = select_info(r)
	eq((i["EXISTS"], i["RECENT"], i["UNSEEN"]), ([0], [0], []), "empty mailbox EXISTS/RECENT/UNSEEN")
	expect(len(i["UIDVALIDITY"]) == 1 and len(i["UIDNEXT"]) == 1,
	       "empty mailbox lacks UIDVALIDITY/UIDNEXT: %r" % r.untagged)


def test_examine_read_only(ctx):
	c = ctx.login()
	fill(c, "INBOX", 2)
	rs = c.select("INBOX")
	uv = select_info(rs)["UIDVALIDITY"]
	r = c.ok("EXAMINE INBOX")
	eq(r.code_name(), "READ-ONLY", "tagged EXAMINE response code (%r)" % r)
	i = select_info(r)
	eq(i["EXISTS"], [2], "EXISTS in EXAMINE")
	eq(i["UIDVALIDITY"], uv, "UIDVALIDITY in EXAMINE")
	# Reading a body must not set \Seen in a read-only mailbox.
	r = c.ok("FETCH 1 BODY[]")
	r = c.ok("FETCH 1 FLAGS")
	expect("\\seen" not in flagset(r.fetches()[1]["FLAGS"]), "BODY[] set \\Seen under EXAMINE")
	# Refusing (NO) or ignoring (OK) both leave the mailbox unchanged,
	# which is what is checked below.
	c.cmd("STORE 1 +FLAGS (\\Flagged)")
	c.cmd("STORE 2 +FLAGS (\\Deleted)")
	c.cmd("EXPUNGE")
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [2], "messages after EXAMINE")
	r = c.ok("FETCH 1:2 FLAGS")
	for f in r.fetches().values():
		eq(flagset(f["FLAGS"]), set(), "flags after read-only session")


def test_select_inbox_any_case(ctx):
	c = ctx.login()
	fill(c, "inbox", 1)
	uvs = set()
	for n in ("INBOX", "inbox", "InBoX"):
		r = c.select(n)
		eq(select_info(r)["EXISTS"], [1], "SELECT %s EXISTS" % n)
		uvs.add(select_info(r)["UIDVALIDITY"][0])
	eq(len(uvs), 1, "UIDVALIDITY of INBOX under different spellings")


def test_select_missing_deselects(ctx):
	c = ctx.login()
	fill(c, "INBOX", 1)
	c.select("INBOX")
	c.ok("FETCH 1 FLAGS")
	r = c.cmd("SELECT nosuchbox")
	eq(r.status, "NO", "SELECT of a missing mailbox (%r)" % r)
	r = c.cmd("FETCH 1 FLAGS")
	eq(r.status, "BAD", "FETCH after a failed SELECT: no mailbox may be selected (%r)" % r)
	c.select("INBOX")
	r = c.cmd("EXAMINE nosuchbox")
	eq(r.status, "NO", "EXAMINE of a missing mailbox (%r)" % r)
	eq(c.cmd("FETCH 1 FLAGS").status, "BAD", "FETCH after a failed EXAMINE")


def test_select_switch_does_not_expunge(ctx):
	c = ctx.login()
	fill(c, "INBOX", 2)
	c.ok("CREATE other")
	c.select("INBOX")
	c.ok("STORE 1 +FLAGS (\\Deleted)")
	r = c.select("other")
	expect(not r.data("EXPUNGE"), "EXPUNGE responses when switching mailboxes: %r" % r.untagged)
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [2], "SELECT of another mailbox expunged \\Deleted messages")


def test_select_imaplib(ctx):
	m = ctx.imap_login()
	for i in range(4):
		m.append("INBOX", None, None, message(subject="s%d" % i))
	eq(m.select("INBOX"), ("OK", [b"4"]), "imaplib SELECT")
	eq(m.select("INBOX", readonly=True), ("OK", [b"4"]), "imaplib EXAMINE")
	typ, data = m.select("nosuch")
	eq(typ, "NO", "imaplib SELECT of a missing mailbox")


# ------------------------------------------------------------ CREATE

def test_create_and_list(ctx):
	c = ctx.login()
	c.ok("CREATE work")
	expect("work" in names(c), "created mailbox not listed")
	r = c.select("work")
	eq(select_info(r)["EXISTS"], [0], "EXISTS of a new mailbox")
	r = c.cmd("CREATE work")
	eq(r.status, "NO", "CREATE of an existing mailbox (%r)" % r)
	eq(r.code_name(), "ALREADYEXISTS", "response code (%r)" % r)
	# Names other than INBOX are case-sensitive.
	c.ok("CREATE Work")
	n = names(c)
	expect({"work", "Work"} <= n, "work and Work both listed: %r" % n)


def test_create_inbox_refused(ctx):
	c = ctx.login()
	for n in ("INBOX", "inbox", "Inbox"):
		r = c.cmd("CREATE ", n)
		eq(r.status, "NO", "CREATE %s (%r)" % (n, r))
	eq([x for x in names(c) if x.upper() == "INBOX"], ["INBOX"], "INBOX entries in LIST")


def test_create_hierarchy_creates_parents(ctx):
	c = ctx.login()
	c.ok("CREATE a/b/c")
	top = list_mailboxes(c, "", "%")
	expect("a" in top, "LIST \"\" %% after CREATE a/b/c lacks 'a': %r" % top)
	mid = list_mailboxes(c, "", "a/%")
	expect("a/b" in mid, "LIST \"\" a/%% lacks 'a/b': %r" % mid)
	allm = list_mailboxes(c, "", "*")
	expect("a/b/c" in allm, "LIST * lacks a/b/c: %r" % allm)
	check_selectable_consistent(c, "a", top["a"][0])
	check_selectable_consistent(c, "a/b", mid["a/b"][0])
	c.select("a/b/c")
	fill(c, "a/b/c", 1)


def test_create_trailing_delimiter(ctx):
	c = ctx.login()
	c.ok("CREATE trail/")
	got = list_mailboxes(c, "", "trail*")
	expect("trail" in got, "CREATE trail/ must create the name without the delimiter: %r" % got)
	expect("trail/" not in got, "name with a trailing delimiter listed: %r" % got)
	r = c.cmd("CREATE trail/x")
	eq(r.status, "OK", "CREATE below trail (%r)" % r)


def test_create_odd_names(ctx):
	c = ctx.login()
	# (No leading '#' or '~': RFC 3501 5.1.2 reserves them for namespaces.)
	weird = ["with space", 'with "quote"', "with\\backslash", "dots.in.name",
		 "x" * 200, "mid#hash~tilde", "a&-b", "new", "cur", "tmp"]
	for n in weird:
		r = c.cmd("CREATE ", quote(n))
		eq(r.status, "OK", "CREATE %r (%r)" % (n, r))
	r = c.cmd("CREATE ", Lit(b"lit name"))
	eq(r.status, "OK", "CREATE with a literal name (%r)" % r)
	got = names(c)
	for n in weird + ["lit name"]:
		expect(n in got, "LIST lacks %r: %r" % (n, sorted(got)))
		c.select(n)
		c.append(n, message())
		r = c.ok("STATUS ", quote(n), " (MESSAGES)")
		eq(status_items(r)["MESSAGES"], 1, "STATUS MESSAGES of %r" % n)
		c.ok("UNSELECT")
	r = c.cmd('CREATE ""')
	expect(r.status in ("NO", "BAD"), "CREATE of an empty name: %r" % r)


def test_create_invalid_mutf7_refused_or_roundtrips(ctx):
	c = ctx.login()
	for n in ("bad&Jjo!", "8bit-\xe4", "&"):
		r = c.cmd(b"CREATE \"" + n.encode("utf-8") + b"\"")
		if r.status == "OK":
			expect(n in names(c) or n.encode("utf-8").decode("latin-1") in names(c),
			       "CREATE %r succeeded but LIST does not show it" % n)
		else:
			expect(r.status in ("NO", "BAD"), "CREATE %r: %r" % (n, r))
	c.ok("NOOP")


# ------------------------------------------------------------ DELETE

def test_delete(ctx):
	c = ctx.login()
	c.ok("CREATE gone")
	fill(c, "gone", 2)
	c.ok("DELETE gone")
	expect("gone" not in names(c), "deleted mailbox still listed")
	eq(c.cmd("SELECT gone").status, "NO", "SELECT of a deleted mailbox")
	eq(c.cmd("STATUS gone (MESSAGES)").status, "NO", "STATUS of a deleted mailbox")
	r = c.cmd("DELETE gone")
	eq(r.status, "NO", "DELETE of a missing mailbox (%r)" % r)
	eq(r.code_name(), "NONEXISTENT", "response code (%r)" % r)
	r = c.cmd("DELETE neverexisted")
	eq((r.status, r.code_name()), ("NO", "NONEXISTENT"), "DELETE of a never created mailbox (%r)" % r)


def test_delete_inbox_refused(ctx):
	c = ctx.login()
	fill(c, "INBOX", 1)
	for n in ("INBOX", "inbox"):
		eq(c.cmd("DELETE ", n).status, "NO", "DELETE %s" % n)
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [1], "INBOX after refused DELETE")


def test_delete_with_children(ctx):
	c = ctx.login()
	c.ok("CREATE par/kid")
	c.ok("CREATE par2")
	c.ok("CREATE par2/kid")
	fill(c, "par2", 1)
	r = c.cmd("DELETE par2")
	if r.status == "NO":
		# Refused: the mailbox and its messages stay.
		r = c.select("par2")
		eq(select_info(r)["EXISTS"], [1], "messages of a mailbox whose DELETE was refused")
		got = list_mailboxes(c, "", "par2*")
		expect("par2" in got and "par2/kid" in got, "LIST after refused DELETE: %r" % got)
		return
	eq(r.status, "OK", "DELETE of a mailbox with inferiors (%r)" % r)
	# Accepted: inferiors stay, the name stays as \Noselect.
	got = list_mailboxes(c, "", "par2*")
	expect("par2/kid" in got, "DELETE removed an inferior: %r" % got)
	top = list_mailboxes(c, "", "%")
	expect("par2" in top and "\\noselect" in top["par2"][0],
	       "after DELETE of a parent, LIST %% must show it \\Noselect: %r" % (top.get("par2"),))
	eq(c.cmd("SELECT par2").status, "NO", "SELECT of a deleted parent")
	r = c.cmd("DELETE par2")
	eq(r.status, "NO", "DELETE of a \\Noselect name with inferiors (%r)" % r)
	c.select("par2/kid")


def test_delete_then_create_new_uids(ctx):
	c = ctx.login()
	c.ok("CREATE phoenix")
	old = fill(c, "phoenix", 3)
	r = c.select("phoenix")
	uv_old = int(select_info(r)["UIDVALIDITY"][0])
	c.ok("UNSELECT")
	c.ok("DELETE phoenix")
	c.ok("CREATE phoenix")
	new = c.append("phoenix", message(subject="reborn"))
	r = c.select("phoenix")
	uv_new = int(select_info(r)["UIDVALIDITY"][0])
	eq(select_info(r)["EXISTS"], [1], "messages of the re-created mailbox")
	expect(uv_new != uv_old or new > max(old),
	       "re-created mailbox reuses UIDVALIDITY %d and UID %d (old UIDs %r)" % (uv_new, new, old))


# ------------------------------------------------------------ RENAME

def test_rename(ctx):
	c = ctx.login()
	c.ok("CREATE before")
	msgs = [message(subject="r%d" % i) for i in range(2)]
	for m in msgs:
		c.append("before", m)
	c.ok("RENAME before after")
	n = names(c)
	expect("after" in n and "before" not in n, "LIST after RENAME: %r" % n)
	c.select("after")
	r = c.ok("FETCH 1:* BODY.PEEK[]")
	eq([f["BODY[]"] for _s, f in sorted(r.fetches().items())], msgs, "messages after RENAME")
	eq(c.cmd("SELECT before").status, "NO", "SELECT of the old name")


def test_rename_moves_children(ctx):
	c = ctx.login()
	c.ok("CREATE top/mid/leaf")
	fill(c, "top/mid/leaf", 1)
	c.ok("RENAME top moved")
	n = names(c)
	expect({"moved", "moved/mid", "moved/mid/leaf"} <= n, "renamed hierarchy: %r" % sorted(n))
	expect(not {"top", "top/mid", "top/mid/leaf"} & n, "old hierarchy still listed: %r" % sorted(n))
	r = c.ok("STATUS moved/mid/leaf (MESSAGES)")
	eq(status_items(r)["MESSAGES"], 1, "messages of a renamed inferior")


def test_rename_inbox(ctx):
	c = ctx.login()
	msgs = [message(subject="inbox %d" % i) for i in range(3)]
	for m in msgs:
		c.append("INBOX", m)
	c.ok("CREATE INBOX/child")
	c.append("INBOX/child", message(subject="child"))
	c.ok("RENAME INBOX saved")
	n = names(c)
	expect({"INBOX", "saved", "INBOX/child"} <= n, "LIST after RENAME INBOX: %r" % sorted(n))
	r = c.select("INBOX")
	eq(select_info(r)["EXISTS"], [0], "INBOX after RENAME INBOX")
	r = c.select("saved")
	eq(select_info(r)["EXISTS"], [3], "target of RENAME INBOX")
	r = c.ok("FETCH 1:* BODY.PEEK[]")
	eq([f["BODY[]"] for _s, f in sorted(r.fetches().items())], msgs, "moved INBOX messages")
	r = c.ok("STATUS INBOX/child (MESSAGES)")
	eq(status_items(r)["MESSAGES"], 1, "inferior of INBOX after RENAME INBOX")
	c.append("INBOX", message(subject="new"))


def test_rename_errors(ctx):
	c = ctx.login()
	c.ok("CREATE x1")
	c.ok("CREATE x2")
	fill(c, "x1", 1)
	r = c.cmd("RENAME x1 x2")
	eq(r.status, "NO", "RENAME to an existing name (%r)" % r)
	r = c.cmd("RENAME nosuch x3")
	eq(r.status, "NO", "RENAME of a missing mailbox (%r)" % r)
	r = c.cmd("RENAME x1 INBOX")
	eq(r.status, "NO", "RENAME onto INBOX (%r)" % r)
	r = c.cmd("RENAME x1 x1/sub")
	expect(r.status in ("NO", "BAD"), "RENAME into its own inferior: %r" % r)
	eq(status_items(c.ok("STATUS x1 (MESSAGES)"))["MESSAGES"], 1, "x1 after failed RENAMEs")
	eq(names(c) >= {"x1", "x2"}, True, "mailboxes after failed RENAMEs")


def test_rename_creates_parents(ctx):
	c = ctx.login()
	c.ok("CREATE solo")
	c.ok("RENAME solo p/q/solo")
	top = list_mailboxes(c, "", "%")
	expect("p" in top, "LIST %% after RENAME into p/q/: %r" % top)
	mid = list_mailboxes(c, "", "p/%")
	expect("p/q" in mid, "LIST p/%% after RENAME into p/q/: %r" % mid)
	check_selectable_consistent(c, "p", top["p"][0])
	c.select("p/q/solo")


def test_rename_then_create_old_name(ctx):
	c = ctx.login()
	c.ok("CREATE first")
	olduids = fill(c, "first", 2)
	uv_old = int(select_info(c.select("first"))["UIDVALIDITY"][0])
	c.ok("UNSELECT")
	c.ok("RENAME first second")
	c.ok("CREATE first")
	uid = c.append("first", message())
	uv = int(select_info(c.select("first"))["UIDVALIDITY"][0])
	expect(uv != uv_old or uid > max(olduids),
	       "re-created name reuses UIDVALIDITY %d and UID %d" % (uv, uid))
	r = c.select("second")
	eq(select_info(r)["EXISTS"], [2], "renamed mailbox content")


# ------------------------------------------------------------ SUBSCRIBE / LSUB

def test_subscribe_lsub(ctx):
	# A new account may come with subscribed default mailboxes.
	c = ctx.login()
	pre = names(c, cmd="LSUB")
	expect(pre <= names(c), "LSUB of a new account lists names that do not exist: %r" % sorted(pre))
	c.ok("CREATE s1")
	c.ok("CREATE s2")
	c.ok("SUBSCRIBE s1")
	c.ok("SUBSCRIBE INBOX")
	got = names(c, cmd="LSUB")
	eq(got, pre | {"s1", "INBOX"}, "LSUB after SUBSCRIBE")
	c.ok("UNSUBSCRIBE s1")
	eq(names(c, cmd="LSUB"), pre | {"INBOX"}, "LSUB after UNSUBSCRIBE")
	m = ctx.imap_login(c.user)
	typ, data = m.lsub()
	eq(typ, "OK", "imaplib LSUB")
	expect(any(d.endswith(b"INBOX") for d in data), "imaplib LSUB data: %r" % data)


def test_subscription_survives_delete(ctx):
	c = ctx.login()
	c.ok("CREATE subdel")
	c.ok("SUBSCRIBE subdel")
	c.ok("DELETE subdel")
	expect("subdel" in names(c, cmd="LSUB"),
	       "DELETE removed the subscription (RFC 3501 6.3.6: MUST NOT unilaterally remove)")


def test_lsub_percent_shows_noselect_parent(ctx):
	c = ctx.login()
	c.ok("CREATE lp/lq")
	c.ok("SUBSCRIBE lp/lq")
	got = list_mailboxes(c, "", "%", cmd="LSUB")
	expect("lp" in got, "LSUB %% with only lp/lq subscribed must return lp: %r" % got)
	expect("\\noselect" in got["lp"][0], "lp in LSUB %% must be \\Noselect: %r" % (got["lp"],))
	expect("lp/lq" not in got, "LSUB %% returned a second-level name: %r" % got)


# ------------------------------------------------------------ LIST

def test_list_delimiter(ctx):
	c = ctx.login()
	got = list_mailboxes(c, "", "")
	eq(list(got), [""], "LIST \"\" \"\" names")
	eq(got[""][1], b"/", "hierarchy delimiter")
	got = list_mailboxes(c, "", "*")
	for n, (_a, d) in got.items():
		eq(d, b"/", "delimiter of %r" % n)


def test_list_patterns(ctx):
	c = ctx.login()
	for n in ("a/b/c", "d", "ab"):
		c.ok("CREATE ", n)
	all_ = names(c)
	expect({"INBOX", "a/b/c", "d", "ab", "a/b"} <= all_, "LIST *: %r" % sorted(all_))
	top = names(c, "", "%")
	expect({"INBOX", "a", "d", "ab"} <= top, "LIST %%: %r" % sorted(top))
	expect(not any("/" in n for n in top), "LIST %% returned a lower level: %r" % sorted(top))
	eq(names(c, "", "a/%"), {"a/b"}, "LIST a/%")
	eq(names(c, "", "a/*"), {"a/b", "a/b/c"}, "LIST a/*")
	eq(names(c, "", "*c"), {"a/b/c"}, "LIST *c")
	eq(names(c, "", "%/%/c"), {"a/b/c"}, "LIST %/%/c")
	eq(names(c, "", "a%"), {"a", "ab"}, "LIST a%")
	eq(names(c, "", "A"), set(), "LIST A (names are case-sensitive)")
	eq(names(c, "", "nomatch*"), set(), "LIST without match")


def test_list_reference(ctx):
	c = ctx.login()
	c.ok("CREATE ref/one/two")
	c.ok("CREATE ref/three")
	eq(names(c, "ref/", "%"), {"ref/one", "ref/three"}, "LIST \"ref/\" %")
	eq(names(c, "ref/", "*"), {"ref/one", "ref/one/two", "ref/three"}, "LIST \"ref/\" *")
	eq(names(c, "ref/one/", "%"), {"ref/one/two"}, "LIST \"ref/one/\" %")
	got = list_mailboxes(c, "ref/", "")
	eq(len(got), 1, "LIST \"ref/\" \"\" gives the root")
	eq(list(got.values())[0][1], b"/", "delimiter via reference")


def test_list_inbox_case_insensitive(ctx):
	c = ctx.login()
	for pat in ("INBOX", "inbox", "InBox"):
		got = names(c, "", pat)
		eq({n.upper() for n in got}, {"INBOX"}, "LIST \"\" %s" % pat)
	got = names(c, "", "*")
	eq(len([n for n in got if n.upper() == "INBOX"]), 1, "INBOX entries in LIST *")


def test_list_children_attributes(ctx):
	c = ctx.login()
	c.ok("CREATE kids")
	c.ok("CREATE kids/k1")
	c.ok("CREATE lonely")
	got = list_mailboxes(c, "", "*")
	for n, (attrs, _d) in got.items():
		expect(not ({"\\haschildren", "\\hasnochildren"} <= attrs),
		       "%r has both \\HasChildren and \\HasNoChildren" % n)
	expect("\\haschildren" in got["kids"][0], "kids lacks \\HasChildren: %r" % (got["kids"],))
	expect("\\hasnochildren" in got["kids/k1"][0], "kids/k1 lacks \\HasNoChildren: %r" % (got["kids/k1"],))
	expect("\\hasnochildren" in got["lonely"][0], "lonely lacks \\HasNoChildren: %r" % (got["lonely"],))
	expect("\\hasnochildren" in got["INBOX"][0], "INBOX lacks \\HasNoChildren: %r" % (got["INBOX"],))
	c.ok("DELETE kids/k1")
	got = list_mailboxes(c, "", "kids")
	expect("\\hasnochildren" in got["kids"][0], "kids after deleting its child: %r" % (got["kids"],))
	c.ok("CREATE lonely/now")
	got = list_mailboxes(c, "", "lonely")
	expect("\\haschildren" in got["lonely"][0], "lonely after creating a child: %r" % (got["lonely"],))


def test_list_every_listed_name_consistent(ctx):
	c = ctx.login()
	for n in ("x/y/z", "x/w", "v"):
		c.ok("CREATE ", n)
	c.ok("DELETE x/y/z")
	for pat in ("*", "%", "x/%"):
		for n, (attrs, _d) in list_mailboxes(c, "", pat).items():
			check_selectable_consistent(c, n, attrs)


def test_mutf7_names_roundtrip(ctx):
	c = ctx.login()
	uni = ["Entw\u00fcrfe", "\u65e5\u672c\u8a9e", "\u00a3100", "a&b", "Gr\u00f6\u00dfe/\u041f\u0440\u0438\u0432\u0435\u0442",
	       "\U0001F600", "\u53f0\u5317/x"]
	mutf7 = [to_mutf7(n) for n in uni]
	eq(mutf7[0], "Entw&APw-rfe", "encoder self-check")
	eq(to_mutf7("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
	   "encoder vs the RFC 3501 example")
	for n in mutf7:
		r = c.cmd("CREATE ", quote(n))
		eq(r.status, "OK", "CREATE %r (%r)" % (n, r))
	got = names(c)
	for n in mutf7:
		expect(n in got, "LIST does not return %r byte for byte: %r" % (n, sorted(got)))
		uid = c.append(n, message(subject=n))
		r = c.ok("STATUS ", quote(n), " (MESSAGES)")
		eq(status_items(r)["MESSAGES"], 1, "STATUS %r" % n)
	c.select("&ZeVnLIqe-")
	c.ok("RENAME &ZeVnLIqe- &ZeVnLIqe-2")
	expect("&ZeVnLIqe-2" in names(c), "RENAME of a modified UTF-7 name")
	m = ctx.imap_login(c.user)
	typ, data = m.list()
	eq(typ, "OK", "imaplib LIST")
	expect(any(d.endswith(b"Entw&APw-rfe") or d.endswith(b'"Entw&APw-rfe"') for d in data),
	       "imaplib LIST data: %r" % data)


# ------------------------------------------------------------ STATUS

def test_status_items(ctx):
	c = ctx.login()
	c.ok("CREATE st")
	uids = fill(c, "st", 3, flags=[["\\Seen"], [], []])
	r = c.ok("STATUS st (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
	s = status_items(r)
	eq(s["MESSAGES"], 3, "STATUS MESSAGES")
	eq(s["UNSEEN"], 2, "STATUS UNSEEN")
	eq(s["RECENT"], 3, "STATUS RECENT before any session selected st")
	expect(s["UIDNEXT"] > max(uids), "STATUS UIDNEXT %d not above %r" % (s["UIDNEXT"], uids))
	r = c.select("st")
	eq(s["UIDVALIDITY"], int(select_info(r)["UIDVALIDITY"][0]), "STATUS vs SELECT UIDVALIDITY")
	eq(s["UIDNEXT"], int(select_info(r)["UIDNEXT"][0]), "STATUS vs SELECT UIDNEXT")
	r = c.ok("STATUS st (MESSAGES)")
	eq(set(status_items(r)), {"MESSAGES"}, "STATUS returns only what was asked")
	r = c.cmd("STATUS nosuch (MESSAGES)")
	eq(r.status, "NO", "STATUS of a missing mailbox (%r)" % r)
	r = c.ok("STATUS inbox (MESSAGES)")
	eq(status_items(r)["MESSAGES"], 0, "STATUS inbox")


def test_status_selected_mailbox(ctx):
	u = ctx.user()
	c = ctx.login(u)
	fill(c, "INBOX", 3)
	c.select("INBOX")
	c.ok("STORE 2 +FLAGS (\\Deleted \\Seen)")
	c.ok("EXPUNGE")
	s = status_items(c.ok("STATUS INBOX (MESSAGES UNSEEN)"))
	eq((s["MESSAGES"], s["UNSEEN"]), (2, 2), "STATUS MESSAGES/UNSEEN of the selected mailbox after EXPUNGE")
	other = ctx.login(u)
	other.append("INBOX", message(subject="from other"))
	# Before NOOP the session's view (2) or the mailbox's (3) are both
	# defensible; after NOOP announced EXISTS 3 only 3 is.
	s = status_items(c.ok("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"))
	expect(s["MESSAGES"] in (2, 3), "STATUS MESSAGES after a foreign APPEND: %r" % s)
	r = c.ok("NOOP")
	eq(r.number("EXISTS"), 3, "EXISTS on NOOP after a foreign APPEND")
	s = status_items(c.ok("STATUS INBOX (MESSAGES UNSEEN)"))
	eq((s["MESSAGES"], s["UNSEEN"]), (3, 3), "STATUS of the selected mailbox after NOOP")
	m = ctx.imap_login(u)
	typ, data = m.status("INBOX", "(MESSAGES UIDNEXT)")
	eq(typ, "OK", "imaplib STATUS")
	expect(b"MESSAGES 3" in data[0], "imaplib STATUS data: %r" % data)


def test_mailbox_names_as_literals(ctx):
	c = ctx.login()
	c.ok("CREATE ", Lit(b"lit box"))
	c.append("lit box", message())
	r = c.ok("STATUS ", Lit(b"lit box"), " (MESSAGES)")
	eq(status_items(r)["MESSAGES"], 1, "STATUS with a literal name")
	r = c.ok("LIST ", Lit(b""), " ", Lit(b"lit*"))
	eq([str(t[4]) if not isinstance(t[4], bytes) else t[4].decode() for t in r.data("LIST")],
	   ["lit box"], "LIST with literal arguments")
	c.ok("SELECT ", Lit(b"lit box"))
	c.ok("COPY 1 ", Lit(b"INBOX", nonsync=True))
	c.ok("RENAME ", Lit(b"lit box"), " ", Lit(b"lit box 2", nonsync=True))
	c.ok("SUBSCRIBE ", Lit(b"lit box 2"))
	c.ok("EXAMINE ", Lit(b"lit box 2"))
	c.ok("UNSELECT")
	c.ok("DELETE ", Lit(b"lit box 2"))
	eq(status_items(c.ok("STATUS ", Lit(b"inbox"), " (MESSAGES)"))["MESSAGES"], 1, "copy in INBOX")
