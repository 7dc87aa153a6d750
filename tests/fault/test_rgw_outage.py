"""The S3 server goes away under live sessions (DESIGN.md promise 4: a
backend fault gets NO [UNAVAILABLE], never a crash, never a hang, never a
half-written state).  These tests run on a private Ceph cluster so that
its radosgw can be stopped without disturbing anything else; the OSD
keeps the data meanwhile."""

import os
import signal
import threading
import time

import faultlib
from faultlib import Conn, Fail, Ledger, Worker, quote

OUTAGE = 10.0		# seconds radosgw is down / frozen
MAX_LATENCY = 40.0	# bound on any command's time during the outage

_rgw = {}


def private_rgw(ctx):
	if "rgw" not in _rgw:
		d = os.path.join(ctx.runner.base, "rgw-outage")
		t0 = time.monotonic()
		_rgw["rgw"] = faultlib.PrivateRgw(d).start()
		ctx.note("private Ceph RGW on port %d started in %.1fs" % (_rgw["rgw"].port, time.monotonic() - t0))
	return _rgw["rgw"]


def teardown_module():
	r = _rgw.pop("rgw", None)
	if r:
		r.stop()


WRITES = ("APPEND", "STORE", "COPY", "MOVE", "UID EXPUNGE", "CREATE", "MULTIAPPEND")


def setup(ctx, strict, nworkers=2):
	rgw = private_rgw(ctx)
	if rgw.radosgw_pid() is None:
		rgw.start_radosgw()
	node = ctx.node("n", store=ctx.store(url=rgw.url), env=rgw.env)
	u = ctx.user()
	c = Conn(node.host, node.port)
	c.login(u)
	c.ok("CREATE Other")
	c.close()
	ledger = Ledger(strict_no=strict)
	ws = [Worker(ledger, "s%d" % i, node, u, seed="%s-%d" % (ctx.prefix, i)) for i in range(nworkers)]
	ctx.workers = ws
	for w in ws:
		w.connect()
		for _ in range(6):
			w.op_append("INBOX")
		w.op_append("Other")
		w.op_store("INBOX")
		w.op_copy("INBOX", "Other")
		w.op_check("INBOX")
	# warm the body cache for part of the messages only
	ws[0].cmd("INBOX", "UID FETCH 1:3 (BODY.PEEK[])", what="FETCH")
	if ledger.problems or ledger.nos:
		raise Fail("set-up failed: %s" % (ledger.problems + ledger.nos)[:5])
	return rgw, node, u, ledger, ws


def check_outage_answers(ledger, t_from, t_to, writes_must_fail):
	"""Commands answered between t_from and t_to: each within MAX_LATENCY,
	answered OK or NO [UNAVAILABLE] (writes: NO only, when
	writes_must_fail), never a dropped connection."""
	probs = []
	n = 0
	worst = (0.0, None)
	for t0, t1, who, mb, cmd, ans in ledger.transcript:
		if t0 < t_from or t0 > t_to:
			continue
		n += 1
		if t1 - t0 > worst[0]:
			worst = (t1 - t0, cmd)
		if t1 - t0 > MAX_LATENCY:
			probs.append("%s: %s took %.1fs during the outage" % (who, cmd, t1 - t0))
		if ans.startswith("LOST"):
			probs.append("%s: %s: connection lost during the outage: %s" % (who, cmd, ans))
			continue
		st = ans.split(" | ")[0].split(" ", 2)
		status = st[1] if len(st) > 1 else "?"
		code = st[2] if len(st) > 2 else ""
		verb = cmd.split(" ")[0].upper()
		if verb == "UID":
			verb = "UID " + cmd.split(" ")[1].upper()
		is_write = verb in WRITES or verb in ("UID STORE", "UID COPY", "UID MOVE")
		if status == "NO" and not code.startswith("[UNAVAILABLE]"):
			probs.append("%s: %s -> %s (want NO [UNAVAILABLE])" % (who, cmd, ans[:200]))
		elif status not in ("OK", "NO"):
			probs.append("%s: %s -> %s" % (who, cmd, ans[:200]))
		elif is_write and writes_must_fail and status == "OK" and "(no messages)" not in ans:
			probs.append("%s: %s answered OK while the store was down: %s" % (who, cmd, ans[:200]))
	return probs, n, worst


def outage_round(w, i, results):
	"""One round of commands of every kind on worker w's sessions."""
	kind = i % 9
	try:
		if kind == 0:
			w.op_append("INBOX")
		elif kind == 1:
			# a STORE that changes nothing needs no write: add a flag
			m = w.pick("INBOX")
			if m is not None:
				have = set().union(*m.flags)
				new = [f for f in faultlib.FLAG_POOL if f.lower() not in have]
				if new:
					w.op_store("INBOX", m, "+", [w.rng.choice(new)])
		elif kind == 2:
			w.op_copy("INBOX", "Other")
		elif kind == 3:
			w.op_copy("Other", "INBOX", move=True)
		elif kind == 4:
			w.op_expunge("INBOX")
		elif kind == 5:
			w.cmd("INBOX", "NOOP", what="NOOP")
		elif kind == 6:
			w.cmd("INBOX", "STATUS Other (MESSAGES UIDNEXT)", what="STATUS")
		elif kind == 7:
			# bodies not in the body cache
			w.cmd("INBOX", "UID FETCH 4:* (BODY.PEEK[])", what="FETCH")
		else:
			w.cmd("Other", "CREATE %s" % quote("new%d" % i), what="CREATE")
	except faultlib.ConnLost as e:
		results.append("%s lost its connection: %s" % (w.name, e))


def test_radosgw_stopped(ctx):
	"""radosgw killed for 10 s under two logged-in clients, then started
	again: NO [UNAVAILABLE] meanwhile, the same sessions work afterwards,
	nothing acknowledged is lost, nothing refused is applied."""
	rgw, node, u, ledger, ws = setup(ctx, strict=True)
	pid = node.pid()
	# Another user logging in during the outage (its account is not
	# loaded on this node).
	fresh_user = ctx.user()
	fresh = Conn(node.host, node.port)
	t_kill = time.monotonic()
	rgw.stop_radosgw()
	ctx.log("radosgw killed")
	lost = []
	fresh_answers = []
	i = 0
	while time.monotonic() - t_kill < OUTAGE:
		for w in ws:
			outage_round(w, i, lost)
		if i % 5 == 0:
			t0 = time.monotonic()
			r = fresh.cmd("LOGIN ", quote(fresh_user.name), " ", quote(fresh_user.password))
			fresh_answers.append((repr(r), time.monotonic() - t0))
			if r.status == "OK":
				fresh.cmd("LOGOUT")
				fresh = Conn(node.host, node.port)
		# a failed SELECT leaves no mailbox selected: a separate session
		if i % 7 == 0:
			try:
				c = Conn(node.host, node.port, timeout=MAX_LATENCY + 5)
				r = c.cmd("LOGIN ", quote(u.name), " ", quote(u.password))
				t0 = time.monotonic()
				r2 = c.cmd("SELECT INBOX") if r.status == "OK" else r
				with ledger.lock:
					ledger.transcript.append((t0, time.monotonic(), "x", "-", "SELECT INBOX",
								  "%r | " % r2))
				c.close()
			except (OSError, faultlib.Closed) as e:
				lost.append("SELECT session: %s" % e)
		i += 1
	t_up = time.monotonic()
	rgw.start_radosgw(wait=False)
	ctx.log("radosgw restarted")
	outage_probs, n_cmds, worst = check_outage_answers(ledger, t_kill, t_up, True)
	nos = sum(1 for x in ledger.transcript if t_kill <= x[0] <= t_up and " NO [UNAVAILABLE]" in x[5])
	probs = lost + outage_probs
	if nos == 0:
		probs.append("no command got NO [UNAVAILABLE] while radosgw was down")
	for ans, lat in fresh_answers:
		if not (ans.split(" ", 2)[1:2] == ["NO"] and "[UNAVAILABLE]" in ans):
			probs.append("LOGIN of a user not loaded on the node during the outage -> %s" % ans)
		if lat > MAX_LATENCY:
			probs.append("LOGIN during the outage took %.1fs" % lat)
	ctx.note("radosgw down %.1fs: %d commands, %d NO [UNAVAILABLE], slowest %.2fs (%s)" % (
		t_up - t_kill, n_cmds, nos, worst[0], worst[1]))
	# Recovery: the same sessions, no restart of kura.
	t_rec = time.monotonic()
	rgw.wait_answers()
	ctx.note("radosgw answers again %.1fs after its restart" % (time.monotonic() - t_rec))
	n_before = len(ledger.transcript)
	deadline = time.monotonic() + 60
	for w in ws:
		while True:
			w.op_append("INBOX")
			last = ledger.transcript[-1]
			if " OK " in last[5].split(" | ")[0] + " ":
				break
			if time.monotonic() > deadline:
				raise Fail("APPEND still fails 60 s after radosgw came back: %s" % last[5][:300])
			time.sleep(0.5)
	t_ok = time.monotonic() - t_rec
	n_retry_nos = sum(1 for x in ledger.transcript[n_before:] if " NO " in x[5])
	mark = len(ledger.transcript)
	ledger.nos = []
	for w in ws:
		w.op_store("INBOX")
		w.op_check("INBOX")
		w.op_copy("INBOX", "Other")
		w.op_copy("Other", "INBOX", move=True)
		w.op_expunge("INBOX")
		w.op_append("Other")
		w.op_check("Other")
	for x in ledger.transcript[mark:]:
		if x[5].startswith("LOST") or " OK " not in x[5].split(" | ")[0] + " ":
			probs.append("after recovery: %s %s -> %s" % (x[2], x[4], x[5][:200]))
	r = fresh.cmd("LOGIN ", quote(fresh_user.name), " ", quote(fresh_user.password))
	if r.status != "OK":
		probs.append("LOGIN after recovery on the connection that got NO before -> %r" % r)
	ctx.note("first successful APPEND %.1fs after the restart (%d NO while radosgw started)"
		 % (t_ok, n_retry_nos))
	if node.pid() != pid or not node.alive():
		probs.append("kura-imapd was restarted or died: %s" % node.unexpected_exit())
	# Nothing acknowledged lost, nothing refused applied: the node itself
	# and a new node from an empty cache.
	fresh_node = ctx.node("check", store=node.store_spec(), env=rgw.env)
	sa = faultlib.read_state(node, u)
	sb = faultlib.read_state(fresh_node, u)
	probs += faultlib.compare_states(sa, sb, "n", "fresh")
	for name, st in (("n", sa), ("fresh", sb)):
		probs += faultlib.verify_state(ledger, st, name)[0]
	probs += faultlib.check_ordering(ledger)
	probs = list(ledger.problems) + probs
	if probs:
		ledger.dump(os.path.join(ctx.dir, "ledger.txt"))
		raise Fail("%d problem(s): %s" % (len(probs), " || ".join(probs[:12])))


test_radosgw_stopped.timeout = 300


def test_radosgw_frozen(ctx):
	"""radosgw SIGSTOPped for 10 s (the TCP port stays open, nothing
	answers) with commands in flight from four sessions: every command
	finishes within the bound after SIGCONT (OK, or NO [UNAVAILABLE]),
	nothing crashes, nothing acknowledged is lost."""
	rgw, node, u, ledger, ws = setup(ctx, strict=False, nworkers=4)
	pid = rgw.signal_radosgw(signal.SIGSTOP)
	t_stop = time.monotonic()
	try:
		ctx.log("radosgw %d stopped (SIGSTOP)" % pid)
		lost = []

		def client(w, k):
			i = k
			while time.monotonic() - t_stop < OUTAGE:
				outage_round(w, i, lost)
				i += 3

		ts = [threading.Thread(target=client, args=(w, k)) for k, w in enumerate(ws)]
		for t in ts:
			t.start()
		while time.monotonic() - t_stop < OUTAGE:
			time.sleep(0.1)
	finally:
		rgw.signal_radosgw(signal.SIGCONT)
	t_cont = time.monotonic()
	for t in ts:
		t.join(MAX_LATENCY * 3 * faultlib.scale())
	hung = [t for t in ts if t.is_alive()]
	probs = list(lost)
	if hung:
		probs.append("%d client thread(s) still waiting %.0fs after SIGCONT" % (
			len(hung), time.monotonic() - t_cont))
		for w in ws:
			w.halt = True
			w.close()
	outage_probs, n_cmds, worst = check_outage_answers(ledger, t_stop, t_cont, False)
	probs += outage_probs
	nos = sum(1 for x in ledger.transcript if t_stop <= x[0] <= t_cont and " NO " in x[5])
	ctx.note("radosgw frozen %.1fs: %d commands started meanwhile, %d NO, slowest %.2fs (%s)" % (
		t_cont - t_stop, n_cmds, nos, worst[0], worst[1]))
	mark = len(ledger.transcript)
	ledger.nos = []
	for w in ws:
		if not w.conns:
			w.connect()
		w.op_append("INBOX")
		w.op_store("INBOX")
		w.op_check("INBOX")
	for x in ledger.transcript[mark:]:
		if x[5].startswith("LOST") or " OK " not in x[5].split(" | ")[0] + " ":
			probs.append("after SIGCONT: %s %s -> %s" % (x[2], x[4], x[5][:200]))
	fresh_node = ctx.node("check", store=node.store_spec(), env=rgw.env)
	sa = faultlib.read_state(node, u)
	sb = faultlib.read_state(fresh_node, u)
	probs += faultlib.compare_states(sa, sb, "n", "fresh")
	for name, st in (("n", sa), ("fresh", sb)):
		p, notes = faultlib.verify_state(ledger, st, name)
		probs += p
	if notes:
		ctx.note("%d command(s) with an unknown outcome turned out applied" % len(notes))
	probs += faultlib.check_ordering(ledger)
	probs = list(ledger.problems) + probs
	if probs:
		ledger.dump(os.path.join(ctx.dir, "ledger.txt"))
		raise Fail("%d problem(s): %s" % (len(probs), " || ".join(probs[:12])))


test_radosgw_frozen.timeout = 300
