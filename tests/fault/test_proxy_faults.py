"""Network faults between kura and the S3 server, injected by the proxy
of proxy.py (DESIGN.md promise 4): added delay, connections closed in the
middle of a request, responses thrown away after the server did the work,
truncated responses.  Under each fault a client workload runs; afterwards
nothing may have crashed, every answer must have been OK or
NO [UNAVAILABLE] (the IMAP connection itself is never cut), the same
sessions must work again, and a new node from an empty cache, talking to
the server directly, must show exactly the acknowledged state (commands
that got NO may or may not have happened, but never half)."""

import os

import faultlib
from faultlib import Conn, Fail, Ledger, Worker, env_float, proxied_url, s3_endpoint
from proxy import FaultProxy

SECONDS = env_float("KURA_FAULT_PROXY_SECONDS", 8.0)


def fault_run(ctx, mode, faults, no_allowed=True):
	proxy = FaultProxy(s3_endpoint(), seed=ctx.prefix).start()
	ctx.proxies.append(proxy)
	node = ctx.node("p", store=ctx.store(url=proxied_url(proxy)))
	u = ctx.user()
	c = Conn(node.host, node.port)
	c.login(u)
	c.ok("CREATE Other")
	c.close()
	ledger = Ledger(strict_no=False)
	ws = [Worker(ledger, "w%d" % i, node, u, seed="%s-%d" % (ctx.prefix, i)) for i in range(2)]
	ctx.workers = ws
	for w in ws:
		w.connect()
		w.op_append("INBOX")
	before = proxy.counts()
	proxy.set_faults(**faults)
	probs = faultlib.run_workers(ws, SECONDS)
	proxy.set_faults()
	injected = proxy.faults()
	counts = proxy.counts()
	reqs = counts.get("total", 0) - before.get("total", 0)
	if not node.alive():
		raise Fail("kura died under %s faults: %s" % (mode, node.unexpected_exit()))
	n_inj = sum(v for k, v in injected.items() if k != "upstream-error")
	if n_inj == 0:
		probs.append("the proxy injected no fault (%d requests): the test proved nothing" % reqs)
	if injected.get("upstream-error"):
		ctx.note("proxy: %d upstream errors not of our making" % injected["upstream-error"])
	# The IMAP connections never break: a lost answer is a crash or a
	# hang of kura, not a backend fault.
	lost = [x for x in ledger.uncertain if x.endswith("(lost)")]
	if lost:
		probs.append("%d IMAP command(s) lost their connection: %s" % (len(lost), "; ".join(lost[:5])))
	if ledger.nos and not no_allowed:
		probs.append("%d NO under %s: %s" % (len(ledger.nos), mode,
						   "; ".join("%s %s -> %s" % x for x in ledger.nos[:5])))
	ops = sum(sum(w.ops.values()) for w in ws)
	ctx.note("%s: %d operations, %d backend requests, faults injected %s, %d NO [UNAVAILABLE]" % (
		mode, ops, reqs, dict(sorted(injected.items())), len(ledger.nos)))
	slow = max(w.max_latency for w in ws)
	if slow > 40 * faultlib.scale():
		probs.append("a command took %.1fs under %s faults" % (slow, mode))
	ctx.note("%s: slowest command %.2fs; %s" % (mode, slow, "; ".join(
		x for x in faultlib.latency_summary(ledger) if x.startswith(("APPEND", "STORE", "MOVE")))))
	# The same sessions work again once the faults stop (a retry finishes
	# what a NO left).
	mark = len(ledger.transcript)
	for w in ws:
		if not w.conns:
			w.connect()
		w.op_append("INBOX")
		w.op_store("INBOX")
		w.op_copy("INBOX", "Other", move=True)
		w.op_expunge("Other")
		w.op_check("INBOX")
	for x in ledger.transcript[mark:]:
		if x[5].startswith("LOST") or " OK " not in x[5].split(" | ")[0] + " ":
			probs.append("after the faults: %s %s -> %s" % (x[2], x[4], x[5][:200]))
	# A new node, empty cache, straight to the server.
	fresh = ctx.node("fresh", store=ctx.store())
	sp = faultlib.read_state(node, u)
	sf = faultlib.read_state(fresh, u)
	probs += faultlib.compare_states(sp, sf, "faulted node", "fresh node")
	notes = []
	for name, st in (("faulted node", sp), ("fresh node", sf)):
		p, notes = faultlib.verify_state(ledger, st, name)
		probs += p
	probs += faultlib.check_vanished(ledger)
	probs += faultlib.check_ordering(ledger)
	if notes:
		ctx.note("%s: %d command(s) answered NO were applied after all (outcome unknown to kura): %s"
			 % (mode, len(notes), "; ".join(notes[:3])))
	probs = list(ledger.problems) + probs
	if probs:
		ledger.dump(os.path.join(ctx.dir, "ledger.txt"))
		proxy.dump(os.path.join(ctx.dir, "proxy.json"))
		raise Fail("%d problem(s): %s" % (len(probs), " || ".join(probs[:12])))


def test_delay(ctx):
	"""Every response held back 20..400 ms: slower, never an error."""
	fault_run(ctx, "delay", dict(delay=1.0, delay_ms=(20, 400)), no_allowed=False)


def test_drop_mid_request(ctx):
	"""20 % of requests cut off half-sent (the server never sees them)."""
	fault_run(ctx, "drop mid-request", dict(drop_request=0.2))


def test_drop_response(ctx):
	"""20 % of responses thrown away after the server did the work
	(create-only PUTs of log entries included: kura must tell its own
	earlier attempt from another node's entry)."""
	fault_run(ctx, "drop response", dict(drop_response=0.2))


def test_truncated_response(ctx):
	"""20 % of responses cut short (in the headers or in the body)."""
	fault_run(ctx, "truncated response", dict(truncate=0.2))


def test_log_faults(ctx):
	"""The commit path alone: 40 % of the requests on log entries (the
	create-only PUTs, the HEADs that tell our own earlier attempt from
	another node's entry, the GETs that catch up) lose their response or
	get a truncated one."""
	fault_run(ctx, "log entry faults", dict(drop_response=0.2, truncate=0.2, kinds={"log"}))


for _t in (test_delay, test_drop_mid_request, test_drop_response, test_truncated_response,
	   test_log_faults):
	_t.timeout = 180
