"""No acknowledged loss (DESIGN.md promise 1): what a client saw
acknowledged survives SIGKILL of the server plus deletion of its cache.
The expected state is built only from the server's own tagged OKs and
untagged responses before the kill."""

import signal

from integlib import (Fail, Lit, View, eq, expect, flagset, list_mailboxes, message,
		      select_info)


class Model:
	"""Acknowledged state of one mailbox: uid -> [flags, bytes]."""

	def __init__(self):
		self.msgs = {}
		self.uidvalidity = None
		self.max_uid = 0

	def appended(self, r, body, flags):
		v = r.code_value("APPENDUID")
		expect(v is not None, "APPEND without APPENDUID: %r" % r)
		uv, uid = (int(x) for x in v.split())
		if self.uidvalidity is None:
			self.uidvalidity = uv
		eq(uv, self.uidvalidity, "APPENDUID uidvalidity")
		self.msgs[uid] = [flagset(flags), body]
		self.max_uid = max(self.max_uid, uid)
		return uid

	def fetched(self, r, view):
		for seq, items in r.fetch_list():
			if "FLAGS" in items:
				uid = int(items["UID"]) if "UID" in items else view.uids[seq - 1]
				self.msgs[uid][0] = flagset(items["FLAGS"])


def append(c, model, mbox, body, flags=()):
	args = ["APPEND ", mbox, " "]
	if flags:
		args.append("(" + " ".join(flags) + ") ")
	r = c.ok(*(args + [Lit(body)]))
	return model.appended(r, body, flags)


def restart(ctx):
	ctx.cleanup()
	ctx.server.restart(sig=signal.SIGKILL, wipe_cache=True)


def verify(ctx, user, mbox, model, what):
	c = ctx.login(user)
	r = c.ok("SELECT ", mbox)
	info = select_info(r)
	eq(int(info["UIDVALIDITY"][0]), model.uidvalidity, "%s: UIDVALIDITY of %s after restart" % (what, mbox))
	expect(int(info["UIDNEXT"][0]) > model.max_uid,
	       "%s: UIDNEXT %s not above the highest UID ever acknowledged (%d)"
	       % (what, info["UIDNEXT"], model.max_uid))
	eq(info["EXISTS"], [len(model.msgs)], "%s: EXISTS of %s after restart" % (what, mbox))
	r = c.ok("UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[])") if model.msgs else None
	got = {}
	if r:
		for _s, items in r.fetch_list():
			got[int(items["UID"])] = items
	eq(sorted(got), sorted(model.msgs), "%s: UIDs of %s after restart" % (what, mbox))
	probs = []
	for uid, (flags, body) in sorted(model.msgs.items()):
		g = got[uid]
		if flagset(g.get("FLAGS")) != flags:
			probs.append("uid %d flags %r, want %r" % (uid, sorted(flagset(g.get("FLAGS"))), sorted(flags)))
		if g.get("BODY[]") != body:
			probs.append("uid %d bytes differ" % uid)
		if int(g.get("RFC822.SIZE", -1)) != len(body):
			probs.append("uid %d RFC822.SIZE %s, want %d" % (uid, g.get("RFC822.SIZE"), len(body)))
	if probs:
		raise Fail("%s: %s after restart: %s" % (what, mbox, "; ".join(probs)))
	# A new message never reuses a UID.
	r = c.ok("APPEND ", mbox, " ", Lit(message(subject="after restart")))
	uid = int(r.code_value("APPENDUID").split()[1])
	expect(uid > model.max_uid, "%s: new APPEND got UID %d, highest acknowledged before was %d"
	       % (what, uid, model.max_uid))
	return c


def build(ctx, point):
	u = ctx.user()
	c = ctx.login(u)
	inbox, folder = Model(), Model()
	flagsets = [(), ("\\Seen",), ("\\Flagged", "$Work"), ("\\Answered", "\\Seen"), (), ("\\Draft",)]
	for i in range(12):
		body = message(subject="kill test %d" % i, body=("payload %d\n" % i) * (i + 1))
		append(c, inbox, "INBOX", body, flagsets[i % len(flagsets)])
	c.ok("CREATE Folder")
	for i in range(3):
		append(c, folder, "Folder", message(subject="folder %d" % i), ("\\Seen",) if i else ())
	if point == "append":
		return u, c, inbox, folder
	r = c.ok("SELECT INBOX")
	view = View(sorted(inbox.msgs))
	for cmd in ("STORE 1:3 +FLAGS (\\Flagged)", "STORE 2 FLAGS (\\Seen $Done)",
		    "STORE 4:6 -FLAGS (\\Seen)", "UID STORE %d +FLAGS (Keyword2)" % view.uids[7],
		    "STORE 9 FLAGS ()", "STORE 11:12 +FLAGS (\\Deleted)"):
		r = c.ok(cmd)
		view.apply(r)
		inbox.fetched(r, view)
	if point == "store":
		return u, c, inbox, folder
	# Expunge, including the highest UID (which must never come back).
	r = c.ok("STORE 3,5 +FLAGS (\\Deleted)")
	inbox.fetched(r, view)
	r = c.ok("EXPUNGE")
	for uid in view.expunged_by(r):
		del inbox.msgs[uid]
	eq(len(inbox.msgs), 8, "messages left after EXPUNGE")
	return u, c, inbox, folder


def _kill_test(ctx, point):
	u, c, inbox, folder = build(ctx, point)
	restart(ctx)
	verify(ctx, u, "INBOX", inbox, "kill after %s" % point)
	verify(ctx, u, "Folder", folder, "kill after %s" % point)


def test_kill_after_append(ctx):
	_kill_test(ctx, "append")


def test_kill_after_store(ctx):
	_kill_test(ctx, "store")


def test_kill_after_expunge(ctx):
	_kill_test(ctx, "expunge")


def test_kill_keeping_cache(ctx):
	# The same, but the (possibly stale) cache survives the kill.
	u, c, inbox, folder = build(ctx, "expunge")
	ctx.cleanup()
	ctx.server.restart(sig=signal.SIGKILL, wipe_cache=False)
	verify(ctx, u, "INBOX", inbox, "kill with cache kept")


def test_kill_twice(ctx):
	u, c, inbox, folder = build(ctx, "store")
	restart(ctx)
	c = verify(ctx, u, "INBOX", inbox, "first kill")
	# verify() appended one message; record it, change more, kill again.
	r = c.ok("UID FETCH %d:* (UID FLAGS BODY.PEEK[])" % (inbox.max_uid + 1))
	for _s, items in r.fetch_list():
		uid = int(items["UID"])
		inbox.msgs[uid] = [flagset(items["FLAGS"]), items["BODY[]"]]
		inbox.max_uid = max(inbox.max_uid, uid)
	view = View(sorted(inbox.msgs))
	r = c.ok("STORE 1 FLAGS (\\Answered)")
	inbox.fetched(r, view)
	r = c.ok("STORE 2 +FLAGS (\\Deleted)")
	inbox.fetched(r, view)
	r = c.ok("EXPUNGE")
	for uid in view.expunged_by(r):
		del inbox.msgs[uid]
	restart(ctx)
	verify(ctx, u, "INBOX", inbox, "second kill")


def test_kill_after_mailbox_changes(ctx):
	u = ctx.user()
	c = ctx.login(u)
	for n in ("keep", "gone", "old/child", "sub"):
		c.ok("CREATE ", n)
	model = Model()
	append(c, model, "keep", message(subject="in keep"))
	c.ok("RENAME old renamed")
	c.ok("DELETE gone")
	c.ok("SUBSCRIBE sub")
	c.ok("SUBSCRIBE keep")
	c.ok("UNSUBSCRIBE keep")
	before = set(list_mailboxes(c))
	subs = set(list_mailboxes(c, cmd="LSUB"))
	expect("sub" in subs and "keep" not in subs, "LSUB before the kill: %r" % sorted(subs))
	restart(ctx)
	c = ctx.login(u)
	after = set(list_mailboxes(c))
	eq(after, before, "LIST * after restart")
	expect("renamed/child" in after and "old/child" not in after and "gone" not in after,
	       "mailbox changes lost: %r" % sorted(after))
	eq(set(list_mailboxes(c, cmd="LSUB")), subs, "LSUB after restart")
	verify(ctx, u, "keep", model, "mailbox changes")


def test_kill_during_pipelined_appends(ctx):
	# Acknowledged APPENDs survive; unacknowledged ones may or may not,
	# but never as a partial or duplicated message.
	u = ctx.user()
	c = ctx.login(u)
	bodies = [message(subject="pipelined %d" % i, body=("x%d\n" % i) * 200) for i in range(30)]
	c.send(b"".join(b"K%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(b), b) for i, b in enumerate(bodies)))
	acked = {}
	uv = None
	for i in range(10):
		r = c.read_until("K%d" % i)
		eq(r.status, "OK", "APPEND K%d (%r)" % (i, r))
		v = r.code_value("APPENDUID").split()
		uv = int(v[0])
		acked[int(v[1])] = bodies[i]
	restart(ctx)
	c = ctx.login(u)
	r = c.ok("SELECT INBOX")
	eq(int(select_info(r)["UIDVALIDITY"][0]), uv, "UIDVALIDITY after restart")
	r = c.ok("UID FETCH 1:* (UID BODY.PEEK[])")
	got = {int(i["UID"]): i["BODY[]"] for _s, i in r.fetch_list()}
	for uid, body in acked.items():
		expect(got.get(uid) == body, "acknowledged APPEND uid %d lost or changed" % uid)
	seen = [b for b in got.values()]
	for b in seen:
		expect(b in bodies, "a message after restart is not one that was sent (partial?): %r" % b[:80])
	eq(len(seen), len(set(seen)), "a message appears twice after restart")
