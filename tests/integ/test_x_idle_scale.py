"""2,000 concurrent IDLE connections on one kura-imapd (a private server
with --max-connections-per-ip 0): all LOGIN + SELECT + IDLE, then one
APPEND from another session reaches a random sample of 50 idlers of that
mailbox within a few seconds, and DONE still answers.  The server's RSS
(VmRSS from /proc) is measured before and after; the growth per
connection is printed and only bounded generously (< 64 KiB)."""

import os
import random
import selectors
import socket
import sys
import time

from integlib import Fail, User, eq, expect, message, timeout_scale
from test_x_lib import need, own_server

CONNS = 2000
USERS = 10		# 200 idlers per mailbox
SAMPLE = 50
BOUND_KIB = 64


def _rss_kib(pid):
	with open("/proc/%d/status" % pid) as f:
		for line in f:
			if line.startswith("VmRSS:"):
				return int(line.split()[1])
	raise Fail("no VmRSS for pid %d" % pid)


class _Idler:
	def __init__(self, sock, user):
		self.sock = sock
		self.user = user
		self.buf = b""
		self.state = "login"	# -> idling -> done
		self.exists = None
		self.t_exists = None

	def lines(self):
		while True:
			i = self.buf.find(b"\n")
			if i < 0:
				return
			line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
			yield line


def _pump(sel, deadline, until):
	"""Reads from ready idlers until until() or the deadline; calls
	_Idler.feed for each complete line."""
	while not until():
		left = deadline - time.time()
		if left <= 0:
			return False
		for key, _ev in sel.select(timeout=min(left, 0.5)):
			idl = key.data
			try:
				d = idl.sock.recv(65536)
			except BlockingIOError:
				continue
			except OSError as e:
				raise Fail("idler %s: %s" % (idl.user, e))
			if not d:
				raise Fail("server closed an idler's connection (%s, state %s, buffered %r)"
					   % (idl.user, idl.state, idl.buf[-200:]))
			idl.buf += d
			for line in idl.lines():
				_feed(idl, line)
	return True


def _feed(idl, line):
	up = line.upper()
	if idl.state == "login":
		if up.startswith(b"A ") or up.startswith(b"B "):
			if not up[2:].startswith(b"OK"):
				raise Fail("idler %s: %r" % (idl.user, line))
		elif up.startswith(b"C "):
			raise Fail("idler %s: IDLE refused: %r" % (idl.user, line))
		elif line.startswith(b"+"):
			idl.state = "idling"
	elif idl.state == "idling":
		if up.startswith(b"* ") and up.rstrip(b"\r\n").endswith(b" EXISTS"):
			idl.exists = int(up.split()[1])
			idl.t_exists = time.time()
		elif up.startswith(b"C "):
			if not up[2:].startswith(b"OK"):
				raise Fail("idler %s: DONE -> %r" % (idl.user, line))
			idl.state = "done"


def test_idle_2000_connections(ctx):
	users = ["w%d:{PLAIN}pww%d" % (i, i) for i in range(USERS)]
	srv = own_server(ctx, ["--max-connections-per-ip", "0"], users=users, tag="idlescale")
	if srv is None:
		return
	pid = srv.proc.pid
	probe = ctx.login_to(srv, User("w0", "pww0"))
	if not need(ctx, probe, "IDLE"):
		return
	probe.select("INBOX")
	probe.ok("LOGOUT")
	time.sleep(0.3)
	rss0 = _rss_kib(pid)
	sel = selectors.DefaultSelector()
	idlers = []
	t0 = time.time()
	try:
		for i in range(CONNS):
			u = "w%d" % (i % USERS)
			s = socket.create_connection((srv.host, srv.port), timeout=30)
			s.setblocking(False)
			s.send(("a LOGIN %s pw%s\r\nb SELECT INBOX\r\nc IDLE\r\n" % (u, u)).encode())
			idl = _Idler(s, u)
			idlers.append(idl)
			sel.register(s, selectors.EVENT_READ, idl)
			if i % 200 == 199:	# keep the accept queue and the server's backlog short
				_pump(sel, time.time() + 60 * timeout_scale(),
				      lambda: all(x.state != "login" for x in idlers[:-50]))
		ok = _pump(sel, time.time() + 90 * timeout_scale(), lambda: all(x.state == "idling" for x in idlers))
		n_idle = sum(1 for x in idlers if x.state == "idling")
		expect(ok, "only %d of %d connections reached IDLE" % (n_idle, CONNS))
		t_setup = time.time() - t0
		time.sleep(0.5)
		rss1 = _rss_kib(pid)
		per_conn = (rss1 - rss0) * 1024.0 / CONNS
		# One APPEND to w1's INBOX: all its 200 idlers must hear of it;
		# latency is measured on a random sample of 50.
		target = [x for x in idlers if x.user == "w1"]
		sample = random.sample(target, SAMPLE)
		w = ctx.login_to(srv, User("w1", "pww1"))
		t_app = time.time()
		w.append("INBOX", message(subject="to 200 idlers"))
		_pump(sel, time.time() + 10 * timeout_scale(), lambda: all(x.exists is not None for x in sample))
		late = [x for x in sample if x.exists is None]
		expect(not late, "%d of %d sampled idlers got no EXISTS within 10 s of the APPEND" % (len(late), SAMPLE))
		eq(sorted(set(x.exists for x in sample)), [1], "EXISTS count at the idlers")
		lat = sorted(x.t_exists - t_app for x in sample)
		others = [x for x in idlers if x.user != "w1"]
		expect(all(x.exists is None for x in others), "idlers of other users were told of w1's APPEND")
		# DONE on the sample: tagged OK.
		for x in sample:
			x.sock.send(b"DONE\r\n")
		_pump(sel, time.time() + 10 * timeout_scale(), lambda: all(x.state == "done" for x in sample))
		expect(all(x.state == "done" for x in sample), "DONE unanswered by some idlers")
		msg = ("idle-scale: %d IDLE connections set up in %.1f s; server RSS %d -> %d KiB = %.1f KiB "
		       "per connection; APPEND reached %d sampled idlers in median %.3f s, max %.3f s"
		       % (CONNS, t_setup, rss0, rss1, per_conn / 1024.0, SAMPLE, lat[len(lat) // 2], lat[-1]))
		print("# " + msg, file=sys.stderr, flush=True)
		with open(os.path.join(srv.dir, "idle-scale.txt"), "w") as f:
			f.write(msg + "\n")
		expect(lat[-1] <= 5.0 * timeout_scale(), "an idler heard of the APPEND only after %.2f s" % lat[-1])
		if ctx.kind == "kura" and os.environ.get("KURA_VALGRIND") != "1" and os.environ.get("KURA_ASAN") != "1":
			expect(per_conn < BOUND_KIB * 1024, "%.1f KiB of server RSS per IDLE connection (bound %d KiB)"
			       % (per_conn / 1024.0, BOUND_KIB))
	finally:
		for x in idlers:
			try:
				sel.unregister(x.sock)
			except (KeyError, ValueError):
				pass
			x.sock.close()
		sel.close()


test_idle_2000_connections.timeout = 150
