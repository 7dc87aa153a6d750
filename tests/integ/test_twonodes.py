"""Two server nodes on one store (DESIGN.md promise 2: any node serves any
user; UIDs are never handed out twice; each node sees the other's
changes).  The second node shares the store and has its own cache."""

import signal
import threading
import time

from integlib import (Lit, View, eq, expect, flagset, list_mailboxes, message, select_info,
		      status_items)


def contents(c, mbox="INBOX"):
	r = c.ok("EXAMINE ", mbox)
	info = select_info(r)
	out = {}
	if info["EXISTS"] != [0]:
		for _s, i in c.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[])").fetch_list():
			out[int(i["UID"])] = (flagset(i["FLAGS"]), i["BODY[]"])
	c.ok("UNSELECT")
	return int(info["UIDVALIDITY"][0]), out


def until(fn, seconds=10.0, step=0.2):
	"""Calls fn() until it returns a true value or time is up; returns
	(value, seconds waited)."""
	t0 = time.time()
	while True:
		v = fn()
		if v or time.time() - t0 > seconds:
			return v, time.time() - t0
		time.sleep(step)


def test_two_nodes_interleaved_appends(ctx):
	n2 = ctx.second_server()
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login_to(n2, u)
	sent = {}
	last = 0
	for i in range(20):
		c = a if i % 2 == 0 else b
		m = message(subject="interleaved %d" % i)
		uid = c.append("INBOX", m)
		expect(uid > last, "APPEND %d on node %d got UID %d after %d" % (i, 1 + i % 2, uid, last))
		last = uid
		sent[uid] = m
	uva, ca = contents(a)
	uvb, cb = contents(b)
	eq(uva, uvb, "UIDVALIDITY on both nodes")
	eq({k: v[1] for k, v in ca.items()}, sent, "node 1 contents")
	eq({k: v[1] for k, v in cb.items()}, sent, "node 2 contents")


def test_two_nodes_concurrent_appends(ctx):
	_concurrent_appends(ctx, warm=True)


def test_two_nodes_concurrent_first_login(ctx):
	# The account's very first use happens on both nodes at once.
	_concurrent_appends(ctx, warm=False)


def _concurrent_appends(ctx, warm):
	n2 = ctx.second_server()
	u = ctx.user()
	if warm:
		w = ctx.login(u)
		w.select("INBOX")
		w.ok("LOGOUT")
		sessions = [ctx.login(u), ctx.login(u), ctx.login_to(n2, u), ctx.login_to(n2, u)]
	else:
		sessions = [ctx.conn(), ctx.conn(), ctx.conn_to(n2), ctx.conn_to(n2)]
		for k, c in enumerate(sessions):
			c.send("L%d LOGIN %s %s\r\n" % (k, u.name, u.password))
		for k, c in enumerate(sessions):
			eq(c.read_until("L%d" % k).status, "OK", "simultaneous first LOGIN %d" % k)
	acked = {}
	errors = []
	lock = threading.Lock()

	def worker(k, c):
		try:
			msgs = [message(subject="node-conc %d/%d" % (k, i)) for i in range(25)]
			c.send(b"".join(b"W%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m)
					for i, m in enumerate(msgs)))
			for i in range(25):
				r = c.read_until("W%d" % i)
				if r.status != "OK":
					errors.append("session %d APPEND %d -> %r" % (k, i, r))
					continue
				uid = int(r.code_value("APPENDUID").split()[1])
				with lock:
					if uid in acked:
						errors.append("UID %d handed out twice" % uid)
					acked[uid] = msgs[i]
		except Exception as e:	# reported below
			errors.append("session %d: %s" % (k, e))
	ts = [threading.Thread(target=worker, args=(k, c)) for k, c in enumerate(sessions)]
	for t in ts:
		t.start()
	for t in ts:
		t.join(50)
	expect(not errors, "; ".join(errors[:5]))
	eq(len(acked), 100, "acknowledged APPENDs")
	for c, name in ((sessions[0], "node 1"), (sessions[2], "node 2")):
		_uv, got = contents(c)
		eq({k: v[1] for k, v in got.items()}, acked, "%s contents after concurrent APPENDs" % name)


def test_two_nodes_see_each_others_changes(ctx):
	n2 = ctx.second_server()
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login_to(n2, u)
	uids = [a.append("INBOX", message(subject="x%d" % i)) for i in range(5)]
	a.select("INBOX")
	r = b.select("INBOX")
	eq(select_info(r)["EXISTS"], [5], "node 2 SELECT after node 1 APPENDs")
	va, vb = View(uids), View(uids)
	# Flags set on node 1, fetched on node 2.
	va.apply(a.ok("STORE 2 +FLAGS (\\Flagged $N1)"))
	def flagged_on_b():
		vb.apply(b.ok("NOOP"))
		return "\\flagged" in flagset(b.ok("FETCH 2 FLAGS").fetches().get(2, {}).get("FLAGS"))
	got, waited = until(flagged_on_b)
	expect(got, "node 2 never saw node 1's STORE with NOOP + FETCH (waited %.1fs)" % waited)
	# Expunge on node 2, seen by node 1 on NOOP.
	vb.apply(b.ok("STORE 4 +FLAGS.SILENT (\\Deleted)"))
	vb.apply(b.ok("EXPUNGE"))

	def noop_a():
		va.apply(a.ok("NOOP"))
		return len(va.uids) == 4
	got, waited = until(noop_a)
	expect(got, "node 1 never saw node 2's EXPUNGE (waited %.1fs, view %r)" % (waited, va.uids))
	eq(va.check(a, "node 1"), [uids[0], uids[1], uids[2], uids[4]], "node 1 view")
	# APPEND on node 2, EXISTS on node 1.
	r = b.ok("APPEND INBOX ", Lit(message(subject="late")))
	vb.apply(r)
	new = int(r.code_value("APPENDUID").split()[1])

	def noop_a2():
		va.apply(a.ok("NOOP"))
		return len(va.uids) == 5
	got, waited = until(noop_a2)
	expect(got, "node 1 never saw node 2's APPEND (waited %.1fs)" % waited)
	eq(va.check(a, "node 1 after APPEND"), [uids[0], uids[1], uids[2], uids[4], new], "node 1 view")
	vb.apply(b.ok("NOOP"))
	eq(vb.check(b, "node 2"), va.uids, "node 2 view")


def test_two_nodes_mailbox_operations(ctx):
	n2 = ctx.second_server()
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login_to(n2, u)
	a.ok("CREATE shared/one")
	got, waited = until(lambda: b.ok("NOOP") and "shared/one" in list_mailboxes(b))
	expect(got, "node 2 LIST never showed a mailbox created on node 1 (%.1fs)" % waited)
	b.ok("RENAME shared/one shared/two")
	b.append("shared/two", message())
	got, waited = until(lambda: a.ok("NOOP") and "shared/two" in list_mailboxes(a)
			    and "shared/one" not in list_mailboxes(a))
	expect(got, "node 1 LIST never reflected node 2's RENAME (%.1fs)" % waited)
	got, waited = until(lambda: a.ok("NOOP") and
			    status_items(a.ok("STATUS shared/two (MESSAGES)"))["MESSAGES"] == 1)
	expect(got, "node 1 STATUS never counted node 2's APPEND (%.1fs)" % waited)


def test_two_nodes_idle(ctx):
	n2 = ctx.second_server()
	u = ctx.user()
	a = ctx.login(u)
	r = a.ok("CAPABILITY")
	if not any(str(x).upper() == "IDLE" for t in r.data("CAPABILITY") for x in t[2:]):
		return
	b = ctx.login_to(n2, u)
	a.select("INBOX")
	tag = a.next_tag()
	a.send("%s IDLE\r\n" % tag)
	expect(a.read_response().startswith(b"+"), "IDLE continuation")
	b.append("INBOX", message(subject="to the idler"))
	deadline = time.time() + 20
	seen = []
	a.sock.settimeout(1)
	while time.time() < deadline:
		try:
			line = a.read_response()
		except (TimeoutError, OSError):
			continue
		seen.append(line)
		if line.upper().endswith(b" EXISTS\r\n"):
			break
	a.sock.settimeout(30)
	expect(seen and seen[-1].upper().endswith(b" EXISTS\r\n"),
	       "IDLE on node 1 got no EXISTS within 20 s of an APPEND on node 2: %r" % seen)
	a.send("DONE\r\n")
	eq(a.read_until(tag).status, "OK", "IDLE DONE")


def test_two_nodes_one_killed(ctx):
	n2 = ctx.second_server()
	u = ctx.user()
	a = ctx.login(u)
	b = ctx.login_to(n2, u)
	acked = {}
	for i in range(6):
		c = a if i % 2 == 0 else b
		m = message(subject="k%d" % i)
		acked[c.append("INBOX", m)] = m
	ctx.server.kill(signal.SIGKILL)
	# Node 2 goes on serving.
	m = message(subject="after node 1 died")
	acked[b.append("INBOX", m)] = m
	_uv, got = contents(b)
	eq({k: v[1] for k, v in got.items()}, acked, "node 2 after node 1 was killed")
	ctx.server.wipe_cache()
	ctx.server.start()
	a = ctx.login(u)
	_uv, got = contents(a)
	eq({k: v[1] for k, v in got.items()}, acked, "restarted node 1")
	uid = a.append("INBOX", message(subject="new on node 1"))
	expect(uid > max(acked), "UID %d reused after restart (max %d)" % (uid, max(acked)))
