"""A cold node (empty cache) opening a big mailbox (DESIGN.md promise 3
and §4: a cold node reads objects in proportion to the mailbox, from the
snapshot, not one per message).  Also measures requests per APPEND and
per SELECT on a warm node.  Request counts come from proxy.py's counting
proxy between the node and the S3 server; times are reported, never
asserted."""

import threading
import time

import faultlib
from faultlib import Conn, Fail, env_float, proxied_url, s3_endpoint
from proxy import FaultProxy

N_MESSAGES = int(env_float("KURA_FAULT_MESSAGES", 10000))
BATCH = 50		# messages per MULTIAPPEND
FILLERS = 4		# connections filling at once
MAX_COLD_REQUESTS = 50


def msg_flags(i):
	f = []
	if i % 7 == 0:
		f.append("\\Seen")
	if i % 11 == 0:
		f.append("\\Flagged")
	if i % 13 == 0:
		f.append("$Label")
	return f


def small_message(i):
	return ("From: Sender %d <s%d@example.org>\r\n"
		"To: <rcpt@example.net>\r\n"
		"Subject: cold message %d\r\n"
		"Date: Tue, 02 Jan 2024 %02d:%02d:%02d +0000\r\n"
		"Message-ID: <cold%d@fault.example>\r\n"
		"\r\n"
		"Body of message %d.\r\n" % (i, i, i, (i // 3600) % 24, (i // 60) % 60, i % 60, i, i)).encode()


def fmt_counts(d):
	return ", ".join("%s %d" % (k, v) for k, v in sorted(d.items()))


def diff_counts(after, before):
	return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def test_requests_per_command(ctx):
	"""Backend requests per APPEND, SELECT, NOOP and STORE on a warm node
	(reported; the only bound is a sanity one: not more than 10)."""
	proxy = FaultProxy(s3_endpoint()).start()
	ctx.proxies.append(proxy)
	node = ctx.node("w", store=ctx.store(url=proxied_url(proxy)))
	u = ctx.user()
	c = Conn(node.host, node.port)
	b0 = proxy.requests()
	c.login(u)
	b1 = proxy.requests()
	c.ok("CREATE Other")
	c.ok("APPEND INBOX ", faultlib.Lit(small_message(0)))
	c.ok("SELECT INBOX")
	probs = []
	res = {}
	for what, n, fn in (
		("APPEND", 50, lambda i: c.ok("APPEND INBOX ", faultlib.Lit(small_message(i)))),
		("SELECT", 20, lambda i: c.ok("SELECT ", "INBOX" if i % 2 else "Other")),
		("NOOP", 20, lambda i: c.ok("NOOP")),
		("STORE", 20, lambda i: c.ok("UID STORE 1 %sFLAGS (\\Seen)" % ("+" if i % 2 else "-"))),
		("FETCH BODY[] (uncached)", 20, lambda i: c.ok("UID FETCH %d BODY.PEEK[]" % (i + 2)))):
		if what == "STORE" or what.startswith("FETCH"):
			c.ok("SELECT INBOX")
		time.sleep(0.2)		# let background work (snapshots) settle
		before = proxy.requests()
		t0 = time.monotonic()
		for i in range(n):
			fn(i)
		dt = time.monotonic() - t0
		d = diff_counts(proxy.requests(), before)
		per = sum(d.values()) / n
		res[what] = per
		ctx.note("per %s: %.2f requests (%s), %.1f ms" % (what, per, fmt_counts(d), 1000 * dt / n))
		if per > 10:
			probs.append("%s costs %.1f backend requests" % (what, per))
	ctx.note("LOGIN of a new user: %s" % fmt_counts(diff_counts(b1, b0)))
	c.close()
	if probs:
		raise Fail("; ".join(probs))


test_requests_per_command.timeout = 120


def fill(node, user, n):
	"""Appends n messages with MULTIAPPEND from FILLERS connections;
	returns {uid: i}."""
	uids = {}
	errors = []
	lock = threading.Lock()
	batches = list(range(0, n, BATCH))

	def filler(k):
		try:
			c = Conn(node.host, node.port, timeout=120 * faultlib.scale())
			c.strict = False
			c.login(user)
			for start in batches[k::FILLERS]:
				idx = list(range(start, min(n, start + BATCH)))
				parts = ["APPEND INBOX"]
				for i in idx:
					fl = msg_flags(i)
					parts.append(" (%s) " % " ".join(fl) if fl else " ")
					parts.append(faultlib.Lit(small_message(i), nonsync=True))
				r = c.cmd(*parts)
				if r.status != "OK":
					raise Fail("MULTIAPPEND of %d -> %r" % (len(idx), r))
				got = faultlib.uidset(r.code_value("APPENDUID").split()[1])
				if len(got) != len(idx):
					raise Fail("MULTIAPPEND of %d gave APPENDUID %s" % (len(idx), r.code_value("APPENDUID")))
				with lock:
					for uid, i in zip(got, idx):
						if uid in uids:
							errors.append("UID %d handed out twice" % uid)
						uids[uid] = i
			c.close()
		except Exception as e:
			errors.append("filler %d: %s: %s" % (k, type(e).__name__, e))

	ts = [threading.Thread(target=filler, args=(k,)) for k in range(FILLERS)]
	for t in ts:
		t.start()
	for t in ts:
		t.join()
	if errors:
		raise Fail("; ".join(errors[:5]))
	return uids


def force_snapshot(ctx, node, user, s3):
	"""Makes the log reach the next snapshot point (--snapshot-every 100)
	with SUBSCRIBE/UNSUBSCRIBE entries and waits until that snapshot is
	complete; returns (head, snapshot seq)."""
	udir = s3.user_dir(user.name)
	if udir is None:
		raise Fail("no objects of %s in the bucket" % user.name)
	head = s3.log_head(udir)
	snaps = s3.snapshots(udir)
	last = snaps[-1] if snaps else 0
	c = Conn(node.host, node.port)
	c.login(user)
	k = 0
	# A snapshot within a few entries of the head is as good as forced.
	while head > last + 5 and head < last + 100:
		c.ok("%s INBOX" % ("SUBSCRIBE" if k % 2 == 0 else "UNSUBSCRIBE"))
		k += 1
		if k % 10 == 0 or head + 1 >= last + 100:
			head = s3.log_head(udir)
		else:
			head += 1
	c.close()
	head = s3.log_head(udir)
	deadline = time.monotonic() + 60 * faultlib.scale()
	while True:
		snaps = s3.snapshots(udir)
		if snaps and snaps[-1] + 5 >= head:
			break
		if time.monotonic() > deadline:
			raise Fail("no snapshot after seq %d within 60s (head %d, snapshots %s)" % (last, head, snaps))
		time.sleep(0.2)
	return head, snaps[-1], k


def envelope_problems(uid, i, items):
	env = items.get("ENVELOPE")
	if not isinstance(env, list) or len(env) != 10:
		return "UID %d: bad ENVELOPE %r" % (uid, env)
	want_date = ("Tue, 02 Jan 2024 %02d:%02d:%02d +0000" % ((i // 3600) % 24, (i // 60) % 60, i % 60)).encode()
	if env[0] != want_date:
		return "UID %d: ENVELOPE date %r, want %r" % (uid, env[0], want_date)
	if env[1] != ("cold message %d" % i).encode():
		return "UID %d: ENVELOPE subject %r (message %d)" % (uid, env[1], i)
	frm = env[2]
	if not (isinstance(frm, list) and frm and isinstance(frm[0], list) and len(frm[0]) == 4
		and frm[0][2] == ("s%d" % i).encode() and frm[0][3] == b"example.org"):
		return "UID %d: ENVELOPE from %r" % (uid, frm)
	if env[9] != ("<cold%d@fault.example>" % i).encode():
		return "UID %d: ENVELOPE message-id %r" % (uid, env[9])
	return None


def test_cold_node_big_mailbox(ctx):
	n = N_MESSAGES
	filler = ctx.node("filler")
	u = ctx.user()
	t0 = time.monotonic()
	uids = fill(filler, u, n)
	t_fill = time.monotonic() - t0
	ctx.note("filled %d messages (MULTIAPPEND x%d on %d connections) in %.1fs: %.0f msgs/s" % (
		n, BATCH, FILLERS, t_fill, n / t_fill))
	s3 = faultlib.S3(ctx.store())
	head, snap, extra = force_snapshot(ctx, filler, u, s3)
	ctx.note("log head %d, newest snapshot %d (%d SUBSCRIBE/UNSUBSCRIBE to reach it), %.1fs after the fill"
		 % (head, snap, extra, time.monotonic() - t0 - t_fill))
	# The cold node, through the counting proxy.
	proxy = FaultProxy(s3_endpoint()).start()
	ctx.proxies.append(proxy)
	t_start = time.monotonic()
	cold = ctx.node("cold", store=ctx.store(url=proxied_url(proxy)))
	t_started = time.monotonic() - t_start
	c_start = proxy.requests()
	c = Conn(cold.host, cold.port, timeout=300 * faultlib.scale())
	c.strict = False
	t0 = time.monotonic()
	c.login(u)
	t_login = time.monotonic() - t0
	c_login = proxy.requests()
	t0 = time.monotonic()
	r = c.ok("SELECT INBOX")
	t_select = time.monotonic() - t0
	c_select = proxy.requests()
	exists = r.number("EXISTS")
	t0 = time.monotonic()
	r = c.ok("UID FETCH 1:* (FLAGS ENVELOPE)")
	t_fetch = time.monotonic() - t0
	c_fetch = proxy.requests()
	nbytes = sum(len(x) for x in r.untagged)
	total = sum(c_fetch.values())
	ctx.note("cold node: start %.2fs (%s)" % (t_started, fmt_counts(c_start)))
	ctx.note("cold node: LOGIN %.2fs (%s)" % (t_login, fmt_counts(diff_counts(c_login, c_start))))
	ctx.note("cold node: SELECT INBOX %.2fs (%s)" % (t_select, fmt_counts(diff_counts(c_select, c_login))))
	ctx.note("cold node: UID FETCH 1:* (FLAGS ENVELOPE) %.2fs, %d bytes (%s)" % (
		t_fetch, nbytes, fmt_counts(diff_counts(c_fetch, c_select)) or "no requests"))
	ctx.note("cold node: %d backend requests in all: %s" % (total, fmt_counts(c_fetch)))
	probs = []
	if exists != n:
		probs.append("SELECT INBOX on the cold node: %s EXISTS, want %d" % (exists, n))
	seen = {}
	bad = []
	for seq, it in r.fetch_list():
		uid = int(it.get("UID", 0))
		if uid in seen:
			bad.append("UID %d twice in the FETCH" % uid)
			continue
		seen[uid] = seq
		i = uids.get(uid)
		if i is None:
			bad.append("UID %d was never acknowledged" % uid)
			continue
		fl = frozenset(integ_flags(it.get("FLAGS")))
		want = frozenset(f.lower() for f in msg_flags(i))
		if fl != want:
			bad.append("UID %d FLAGS %s, want %s" % (uid, sorted(fl), sorted(want)))
		p = envelope_problems(uid, i, it)
		if p:
			bad.append(p)
	missing = sorted(set(uids) - set(seen))
	if len(seen) != n or missing:
		probs.append("the cold FETCH returned %d FETCH lines, want %d (missing UIDs %s)" % (
			len(seen), n, missing[:10]))
	if sorted(seen, key=lambda x: seen[x]) != sorted(seen):
		probs.append("FETCH responses not in UID order of sequence numbers")
	if bad:
		probs.append("%d wrong FETCH lines: %s" % (len(bad), "; ".join(bad[:8])))
	if total >= MAX_COLD_REQUESTS:
		probs.append("the cold node made %d backend requests to open and list a %d-message mailbox "
			     "(bound %d): %s" % (total, n, MAX_COLD_REQUESTS, fmt_counts(c_fetch)))
	if c_fetch.get("GET msg", 0):
		probs.append("the cold node fetched %d message objects for FLAGS ENVELOPE" % c_fetch["GET msg"])
	c.close()
	if probs:
		raise Fail(" || ".join(probs))


test_cold_node_big_mailbox.timeout = 600


def integ_flags(v):
	return faultlib.integlib.flagset(v)
