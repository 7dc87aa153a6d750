"""LIST extensions: SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154),
LIST-EXTENDED (RFC 5258, its examples 2, 3, 6, 7, 9 and 10 rebuilt),
LIST-STATUS (RFC 5819, its examples) and CHILDREN (RFC 3348)."""

from integlib import eq, expect, message, parse, quote
from test_x_lib import lax, list_raw, need, statuses

SPECIAL = {"\\drafts": "Drafts", "\\sent": "Sent", "\\trash": "Trash", "\\junk": "Junk",
	   "\\archive": "Archive"}
USE_ATTRS = {"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash"}


def _by_name(entries):
	out = {}
	for attrs, delim, name, ext in entries:
		expect(name not in out, "mailbox %r listed twice" % name)
		out[name] = (attrs, ext)
	return out


def _childinfo(ext):
	"""The CHILDINFO selection criteria of a LIST extended data list (upper
	case), or None when absent."""
	if ext is None:
		return None
	expect(isinstance(ext, list) and len(ext) % 2 == 0, "malformed LIST extended data %r" % (ext,))
	for i in range(0, len(ext), 2):
		tag = ext[i].decode() if isinstance(ext[i], bytes) else str(ext[i])
		if tag.upper() == "CHILDINFO":
			val = ext[i + 1]
			expect(isinstance(val, list) and val, "CHILDINFO value must be a non-empty list: %r" % (ext,))
			return {(v.decode() if isinstance(v, bytes) else str(v)).upper() for v in val}
	return None


def _mk(c, names):
	for n in names:
		c.ok("CREATE " + quote(n))


# ------------------------------------------------------------ SPECIAL-USE

def test_special_use_new_user(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "SPECIAL-USE"):
		return
	r, lst = list_raw(c, '"" "*"')
	eq(r.status, "OK", "LIST")
	got = _by_name(lst)
	if ctx.kind == "kura":	# kura's documented defaults for a new user
		for attr, name in SPECIAL.items():
			expect(name in got and attr in got[name][0],
			       "new user's %s lacks %s in LIST \"\" \"*\": %r" % (name, attr, got.get(name)))
	# LIST (SPECIAL-USE): only mailboxes with a special use, with their attributes.
	c.ok("CREATE plain")
	r, lst = list_raw(c, '(SPECIAL-USE) "" "*"')
	eq(r.status, "OK", "LIST (SPECIAL-USE) (%r)" % r)
	sel = _by_name(lst)
	for name, (attrs, _e) in sel.items():
		expect(attrs & USE_ATTRS, "LIST (SPECIAL-USE) returned %r without a special-use attribute %r"
		       % (name, attrs))
	expect("plain" not in sel and "INBOX" not in sel, "LIST (SPECIAL-USE) returned ordinary mailboxes: %r" % sorted(sel))
	want = {n for n, (a, _e) in got.items() if a & USE_ATTRS}
	eq(set(sel), want, "LIST (SPECIAL-USE) vs special-use mailboxes in LIST \"\" \"*\"")
	# RETURN (SPECIAL-USE) on a normal selection.
	r, lst = list_raw(c, '"" "%" RETURN (SPECIAL-USE)')
	eq(r.status, "OK", "LIST RETURN (SPECIAL-USE) (%r)" % r)
	ret = _by_name(lst)
	for n in want:
		if "/" not in n:
			eq(ret[n][0] & USE_ATTRS, got[n][0] & USE_ATTRS, "RETURN (SPECIAL-USE) attributes of %s" % n)
	expect("plain" in ret and not ret["plain"][0] & USE_ATTRS, "plain mailbox in RETURN (SPECIAL-USE): %r" % (ret.get("plain"),))


def test_create_special_use(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "SPECIAL-USE", "CREATE-SPECIAL-USE"):
		return
	# RFC 6154 5.3 example: CREATE MyFlagged (USE (\Flagged)).  A server
	# may refuse a use it cannot give (NO, [USEATTR] SHOULD); kura gives any.
	r = c.cmd("CREATE MyFlagged (USE (\\Flagged))")
	if ctx.kind != "kura" and r.status == "NO":
		return
	eq(r.status, "OK", "CREATE MyFlagged (USE (\\Flagged)) (%r)" % r)
	r, lst = list_raw(c, '"" MyFlagged')
	got = _by_name(lst)
	expect("MyFlagged" in got and "\\flagged" in got["MyFlagged"][0],
	       "CREATE (USE (\\Flagged)) then LIST: %r" % r.untagged)
	r, lst = list_raw(c, '(SPECIAL-USE) "" "*"')
	expect("MyFlagged" in _by_name(lst), "LIST (SPECIAL-USE) lacks the new \\Flagged mailbox: %r" % r.untagged)
	# A second \Archive, nested: created with the use, or refused with NO
	# and not created at all.
	r = c.cmd("CREATE Lists/Archive2 (USE (\\Archive))")
	expect(r.status in ("OK", "NO"), "CREATE Lists/Archive2 (USE (\\Archive)): %r" % r)
	r2, lst = list_raw(c, '"" "Lists/*"')
	got = _by_name(lst)
	if r.status == "OK":
		expect("\\archive" in got.get("Lists/Archive2", (set(),))[0], "nested CREATE (USE): %r" % r2.untagged)
	else:
		expect("Lists/Archive2" not in got, "refused CREATE (USE) created the mailbox: %r" % r2.untagged)
	# An unknown use attribute: refused (NO, [USEATTR] SHOULD, or BAD), nothing created.
	r = c.cmd("CREATE Bogus (USE (\\Bogus))")
	expect(r.status in ("NO", "BAD"), "CREATE with an unknown use attribute: %r" % r)
	r, lst = list_raw(c, '"" Bogus')
	eq(lst, [], "mailbox created despite a refused special use")
	# Two uses at once: the server may refuse (NO [USEATTR]) or accept both.
	r = c.cmd("CREATE MySpecial (USE (\\Drafts \\Sent))")
	expect(r.status in ("OK", "NO"), "CREATE with two uses: %r" % r)
	r2, lst = list_raw(c, '"" MySpecial')
	if r.status == "OK":
		got = _by_name(lst)
		expect({"\\drafts", "\\sent"} <= got["MySpecial"][0], "both uses listed: %r" % r2.untagged)
	else:
		eq(lst, [], "mailbox created by a refused CREATE (USE)")


# ------------------------------------------------------------ LIST-EXTENDED

FRUIT = ["Fruit", "Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable", "Vegetable/Broccoli",
	 "Vegetable/Corn"]
OURS = set(FRUIT) | {"Fruit/Peach"}


def _fruit(ctx):
	"""RFC 5258 example 1/2 hierarchy: Fruit/Peach subscribed but deleted."""
	c = lax(ctx.login())
	if not need(ctx, c, "LIST-EXTENDED"):
		return None
	_mk(c, FRUIT + ["Fruit/Peach"])
	for n in ("Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"):
		c.ok("SUBSCRIBE " + n)
	c.ok("DELETE Fruit/Peach")
	return c


def test_list_subscribed_nonexistent(ctx):
	c = _fruit(ctx)
	if not c:
		return
	# Example 2: LIST (SUBSCRIBED) "" "*".
	r, lst = list_raw(c, '(SUBSCRIBED) "" "*"')
	eq(r.status, "OK", "LIST (SUBSCRIBED) (%r)" % r)
	got = {n: a for n, (a, _e) in _by_name(lst).items() if n in OURS}
	eq(sorted(got), ["Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"],
	   "LIST (SUBSCRIBED) \"\" \"*\" names")
	for n, a in got.items():
		expect("\\subscribed" in a, "%s lacks \\Subscribed: %r" % (n, a))
	expect("\\nonexistent" in got["Fruit/Peach"], "subscribed but deleted Fruit/Peach lacks \\NonExistent: %r"
	       % got["Fruit/Peach"])
	for n in ("Fruit/Banana", "Vegetable", "Vegetable/Broccoli"):
		expect("\\nonexistent" not in got[n] and "\\noselect" not in got[n], "%s: %r" % (n, got[n]))
	for n, (a, _e) in _by_name(lst).items():
		expect("\\subscribed" in a, "LIST (SUBSCRIBED) returned unsubscribed %r" % n)
	# Same set as LSUB.
	r = c.ok('LSUB "" "*"')
	lsub = {(t[4].decode() if isinstance(t[4], bytes) else str(t[4])) for t in r.data("LSUB")}
	eq({n for n in lsub if n in OURS}, set(got), "LSUB vs LIST (SUBSCRIBED)")
	# Example 6 (without REMOTE): RETURN (SUBSCRIBED) over existing mailboxes only.
	r, lst = list_raw(c, '"" "*" RETURN (SUBSCRIBED)')
	got6 = {n: a for n, (a, _e) in _by_name(lst).items() if n in OURS}
	eq(sorted(got6), sorted(FRUIT), "LIST \"\" \"*\" RETURN (SUBSCRIBED) names (no deleted Fruit/Peach)")
	for n, a in got6.items():
		eq("\\subscribed" in a, n in ("Fruit/Banana", "Vegetable", "Vegetable/Broccoli"),
		   "\\Subscribed on %s with RETURN (SUBSCRIBED) (%r)" % (n, a))
	# Unsubscribing the deleted name removes it.
	c.ok("UNSUBSCRIBE Fruit/Peach")
	r, lst = list_raw(c, '(SUBSCRIBED) "" "Fruit/*"')
	eq(sorted(n for _a, _d, n, _e in lst), ["Fruit/Banana"], "LIST (SUBSCRIBED) after UNSUBSCRIBE")


def test_list_return_children(ctx):
	c = _fruit(ctx)
	if not c:
		return
	# Example 3: LIST () "" "%" RETURN (CHILDREN).
	r, lst = list_raw(c, '() "" "%" RETURN (CHILDREN)')
	eq(r.status, "OK", "LIST () \"\" %% RETURN (CHILDREN) (%r)" % r)
	got = _by_name(lst)
	want = {"Fruit": "\\haschildren", "Tofu": "\\hasnochildren", "Vegetable": "\\haschildren"}
	for n, a in want.items():
		attrs = got[n][0]
		expect(a in attrs, "%s: want %s, got %r" % (n, a, attrs))
		expect(not ({"\\haschildren", "\\hasnochildren"} <= attrs), "%s has both child attributes" % n)
	for n, (attrs, _e) in got.items():
		expect(attrs & {"\\haschildren", "\\hasnochildren", "\\noinferiors", "\\nonexistent"},
		       "RETURN (CHILDREN) must give %s a child attribute: %r" % (n, attrs))
	expect(not any("/" in n for n in got), "%% matched below the top level: %r" % sorted(got))
	# Children counted whatever the subscription; deleting the last child flips it.
	c.ok("DELETE Fruit/Apple")
	c.ok("DELETE Fruit/Banana")
	r, lst = list_raw(c, '"" "Fruit" RETURN (CHILDREN)')
	eq(_by_name(lst)["Fruit"][0] & {"\\haschildren", "\\hasnochildren"}, {"\\hasnochildren"},
	   "Fruit after deleting its children (Fruit/Peach is only subscribed)")


def test_list_multiple_patterns(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "LIST-EXTENDED"):
		return
	# Example 7: LIST "" ("INBOX" "Drafts" "Sent/%").
	_mk(c, ["Sent/March2004", "Sent/December2003", "Sent/August2004", "Sent/August2004/deep"])
	if ctx.kind != "kura":
		c.cmd("CREATE Drafts")
	r, lst = list_raw(c, '"" ("INBOX" "Drafts" "Sent/%")')
	eq(r.status, "OK", "LIST with a pattern list (%r)" % r)
	names = [n for _a, _d, n, _e in lst]
	eq(sorted(names), sorted(["INBOX", "Drafts", "Sent/March2004", "Sent/December2003", "Sent/August2004"]),
	   "LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")")
	# Overlapping patterns still give one response per name (3.3 rule 1).
	r, lst = list_raw(c, '"" ("Sent/*" "Sent/%" "*2004")')
	names = [n for _a, _d, n, _e in lst]
	eq(sorted(names), sorted(set(names)), "a name listed twice for overlapping patterns")
	eq(sorted(names), sorted(["Sent/March2004", "Sent/December2003", "Sent/August2004",
				  "Sent/August2004/deep"]), "overlapping patterns")
	# With selection and return options together.
	r, lst = list_raw(c, '() "" ("Sent" "Sent/%") RETURN (CHILDREN)')
	got = _by_name(lst)
	expect("\\haschildren" in got["Sent"][0] and "\\haschildren" in got["Sent/August2004"][0]
	       and "\\hasnochildren" in got["Sent/March2004"][0], "RETURN (CHILDREN) with patterns: %r" % r.untagged)


def _example9(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "LIST-EXTENDED"):
		return None
	# Example 9 hierarchy and subscriptions.
	_mk(c, ["foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222", "eps2", "eps2/mamba",
		"qux2/bar2"])
	subs = ["foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222", "eps2", "eps2/mamba",
		"qux2/bar2"]
	for n in subs:
		c.ok("SUBSCRIBE " + n)
	return c


def test_list_recursivematch_childinfo(ctx):
	c = _example9(ctx)
	if not c:
		return
	r = c.cmd('LIST (RECURSIVEMATCH) "" "*"')
	eq(r.status, "BAD", "RECURSIVEMATCH as the only selection option (RFC 5258 3.1)")
	# D03: LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2".
	r, lst = list_raw(c, '(RECURSIVEMATCH SUBSCRIBED) "" "*2"')
	eq(r.status, "OK", "LIST (RECURSIVEMATCH SUBSCRIBED) (%r)" % r)
	got = _by_name(lst)
	required = {"foo2": False, "foo2/bar2": True, "baz2/bar2": True, "baz2/bar22": True,
		    "baz2/bar222": True, "eps2": True, "qux2/bar2": True}
	optional = {"baz2", "qux2"}
	for n, subscribed in required.items():
		expect(n in got, "LIST (RECURSIVEMATCH SUBSCRIBED) \"\" \"*2\" lacks %s: %r" % (n, r.untagged))
		eq("\\subscribed" in got[n][0], subscribed, "\\Subscribed on %s (%r)" % (n, got[n][0]))
	extra = set(got) - set(required) - optional
	expect(not extra, "unexpected names: %r" % sorted(extra))
	eq(_childinfo(got["foo2"][1]), {"SUBSCRIBED"}, "CHILDINFO of foo2 (only foo2/bar2 is returned; "
	   "foo2/bar1 is subscribed too)")
	for n in optional & set(got):
		eq(_childinfo(got[n][1]), {"SUBSCRIBED"}, "CHILDINFO of optional %s" % n)
		expect("\\subscribed" not in got[n][0], "%s is not subscribed: %r" % (n, got[n][0]))
	for n in ("foo2/bar2", "baz2/bar2", "qux2/bar2"):
		expect(_childinfo(got[n][1]) is None, "CHILDINFO on %s, which has no children" % n)
	# eps2 is subscribed itself and has a subscribed child the pattern does
	# not return: (\Subscribed) + CHILDINFO (3.5 table, example 9 D03).
	eq(_childinfo(got["eps2"][1]), {"SUBSCRIBED"}, "CHILDINFO of eps2 (eps2/mamba does not match \"*2\")")


def test_list_recursivematch_percent(ctx):
	c = _example9(ctx)
	if not c:
		return
	# "%" (example 8 style): foo2 etc. returned only through CHILDINFO.
	r, lst = list_raw(c, '(SUBSCRIBED RECURSIVEMATCH) "" "%"')
	got = {n: v for n, v in _by_name(lst).items() if n.endswith("2")}
	eq(sorted(got), ["baz2", "eps2", "foo2", "qux2"], "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"")
	for n in ("baz2", "foo2", "qux2"):
		eq(_childinfo(got[n][1]), {"SUBSCRIBED"}, "CHILDINFO of %s" % n)
		expect("\\subscribed" not in got[n][0], "%s is not subscribed" % n)
	expect("\\subscribed" in got["eps2"][0] and _childinfo(got["eps2"][1]) == {"SUBSCRIBED"},
	       "eps2: subscribed with CHILDINFO: %r" % (got["eps2"],))
	# Without RECURSIVEMATCH there is no CHILDINFO (3.5: MUST NOT).
	r, lst = list_raw(c, '(SUBSCRIBED) "" "*"')
	for attrs, _d, n, ext in lst:
		expect(_childinfo(ext) is None, "CHILDINFO without RECURSIVEMATCH on %s" % n)


def test_list_childinfo_hasnochildren(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "LIST-EXTENDED"):
		return
	# Example 10.
	_mk(c, ["foo", "foo/bar"])
	c.ok("SUBSCRIBE foo/bar")
	c.ok("DELETE foo/bar")
	r, lst = list_raw(c, '"" ("foo" "foo/*")')
	eq([(n, "\\nonexistent" in a) for a, _d, n, _e in lst], [("foo", False)], "a1 LIST \"\" (\"foo\" \"foo/*\")")
	r, lst = list_raw(c, '(SUBSCRIBED) "" "foo/*"')
	eq([(n, {"\\subscribed", "\\nonexistent"} <= a) for a, _d, n, _e in lst], [("foo/bar", True)],
	   "a2 LIST (SUBSCRIBED) \"\" \"foo/*\"")
	r, lst = list_raw(c, '(SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)')
	got = _by_name(lst)
	eq(sorted(got), ["foo"], "a3 names")
	expect("\\hasnochildren" in got["foo"][0], "a3: foo has no existing children: %r" % (got["foo"],))
	eq(_childinfo(got["foo"][1]), {"SUBSCRIBED"}, "a3: CHILDINFO of foo")


# ------------------------------------------------------------ LIST-STATUS

def test_list_status(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "LIST-STATUS"):
		return
	c.ok("CREATE foo")
	for i in range(3):
		c.append("foo", message(subject="f%d" % i), flags=(["\\Seen"] if i == 0 else None))
	for i in range(2):
		c.append("INBOX", message(subject="i%d" % i))
	c.ok("CREATE bar/child")
	c.cmd("DELETE bar")	# may leave bar as \NoSelect / \NonExistent or refuse
	# RFC 5819 example A01.
	r, lst = list_raw(c, '"" % RETURN (STATUS (MESSAGES UNSEEN))')
	eq(r.status, "OK", "LIST RETURN (STATUS) (%r)" % r)
	st = statuses(r)
	got = _by_name(lst)
	eq(st["INBOX"], {"MESSAGES": "2", "UNSEEN": "2"}, "STATUS of INBOX")
	eq(st["foo"], {"MESSAGES": "3", "UNSEEN": "2"}, "STATUS of foo")
	for n, (attrs, _e) in got.items():
		if attrs & {"\\noselect", "\\nonexistent"}:
			expect(n not in st, "STATUS for non-selectable %s" % n)
		else:
			expect(n in st, "no STATUS for selectable %s (%r)" % (n, attrs))
	expect(set(st) - {None} <= set(got), "STATUS for mailboxes that were not listed: %r" % st[None])
	# Each STATUS comes after the LIST response of its mailbox.
	order = []
	for u in r.untagged:
		t = parse(u)
		if len(t) >= 3 and str(t[1]).upper() in ("LIST", "STATUS"):
			nm = t[4] if str(t[1]).upper() == "LIST" else t[2]
			order.append((str(t[1]).upper(), nm.decode() if isinstance(nm, bytes) else str(nm)))
	for i, (kind, nm) in enumerate(order):
		if kind == "STATUS":
			expect(("LIST", nm) in order[:i], "STATUS %s before its LIST response: %r" % (nm, order))
	# Other items: UIDNEXT, UIDVALIDITY and SIZE (STATUS=SIZE).
	items = "MESSAGES UIDNEXT UIDVALIDITY" + (" SIZE" if need(ctx, c, "STATUS=SIZE") else "")
	r, lst = list_raw(c, '"" foo RETURN (STATUS (%s))' % items)
	lst_st = statuses(r)["foo"]
	plain = statuses(c.ok("STATUS foo (%s)" % items))["foo"]
	eq(lst_st, plain, "LIST RETURN (STATUS) vs STATUS for foo")
	# Example A02: a non-matching parent with CHILDINFO gets no STATUS.
	if need(ctx, c, "LIST-EXTENDED"):
		c.ok("CREATE sub/leaf")
		c.ok("SUBSCRIBE sub/leaf")
		c.ok("SUBSCRIBE INBOX")
		r, lst = list_raw(c, '(SUBSCRIBED RECURSIVEMATCH) "" % RETURN (STATUS (MESSAGES))')
		st = statuses(r)
		got = _by_name(lst)
		expect("sub" in got and _childinfo(got["sub"][1]) == {"SUBSCRIBED"}, "sub with CHILDINFO: %r" % r.untagged)
		expect("sub" not in st, "STATUS for sub, which does not match the selection (RFC 5819 A02)")
		eq(st.get("INBOX"), {"MESSAGES": "2"}, "STATUS of subscribed INBOX")


def test_list_status_selected_and_children(ctx):
	c = lax(ctx.login())
	if not need(ctx, c, "LIST-STATUS", "LIST-EXTENDED"):
		return
	c.ok("CREATE a/b")
	c.append("a/b", message())
	c.select("a/b")
	c.ok("STORE 1 +FLAGS (\\Seen)")
	r, lst = list_raw(c, '"" "a*" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))')
	eq(r.status, "OK", "LIST RETURN (CHILDREN STATUS ...) (%r)" % r)
	got = _by_name(lst)
	st = statuses(r)
	expect("\\haschildren" in got["a"][0], "a has a child: %r" % (got["a"],))
	eq(st["a/b"], {"MESSAGES": "1", "UNSEEN": "0"}, "STATUS of the selected mailbox via LIST")
