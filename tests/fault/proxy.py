#!/usr/bin/env python3
"""A small HTTP/1.1 fault proxy for the S3 backend's fault tests.

kura-imapd's store URL points at the proxy; the proxy forwards every
request to the real S3 server (Ceph RGW) and, per request, may:

  delay          hold the response back for a random time
  drop_request   forward only part of the request, then close both sides
                 (the server never sees a complete request)
  drop_response  forward the whole request, read the whole response and
                 close the client connection without sending it (the
                 server did the work, the client never hears about it)
  truncate       send only the first part of the response, then close

Closing is done with a FIN or, at random, an RST.  Every request line is
parsed and counted per kind ("PUT log", "GET msg", "LIST log", ...) and
per answer ("PUT log 412").  The proxy buffers whole requests and
responses (bodies here are at most a few tens of MiB); it answers
"Expect: 100-continue" itself and strips that header, which is not signed
by SigV4.

Use as a library:

    p = FaultProxy(("127.0.0.1", 7480)).start()
    p.port                          # point kura at http://127.0.0.1:<port>/...
    p.set_faults(drop_response=0.25, methods={"PUT"})
    p.counts()                      # {"PUT log": 3, ...}
    p.stop()

or stand-alone (counts written to a file on SIGUSR1 and at exit):

    python3 tests/fault/proxy.py --upstream 127.0.0.1:7480 --listen 127.0.0.1:7481 \\
        --drop-response 0.2 --counts-file /tmp/counts.json

Python 3.11 standard library only.
"""

import argparse
import collections
import json
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

MAX_HEAD = 64 * 1024
MAX_BODY = 512 * 1024 * 1024


class ProtocolError(Exception):
	pass


def classify(method, target):
	"""(kind, op) of a request: op is LIST for bucket listings, else the
	method; kind names the kura object class (log, snap, snap-latest,
	msg, probe, other) of the key or listing prefix."""
	parts = urllib.parse.urlsplit(target)
	q = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
	path = urllib.parse.unquote(parts.path)
	op = method
	key = path
	if method == "GET" and "list-type" in q:
		op = "LIST"
		key = q.get("prefix", [""])[0]
	comps = key.split("/")
	kind = "other"
	if "kura-probe" in comps:
		kind = "probe"
	else:
		# .../u/<h>/<user>/<class>/...
		for i in range(len(comps) - 3):
			if comps[i] == "u" and len(comps[i + 1]) == 2:
				cls = comps[i + 3] if i + 3 < len(comps) else ""
				if cls == "m":
					kind = "msg"
				elif cls == "snap":
					kind = "snap-latest" if comps[-1] == "latest" else "snap"
				elif cls:
					kind = cls
				else:
					kind = "user"
				break
	return kind, op


class Request:
	def __init__(self, line, headers, body, raw_head):
		self.line = line
		self.headers = headers	# [(name, value)] as received
		self.body = body
		self.raw_head = raw_head
		parts = line.split(" ")
		if len(parts) != 3:
			raise ProtocolError("bad request line %r" % line)
		self.method, self.target, self.version = parts

	def header(self, name):
		name = name.lower()
		for n, v in self.headers:
			if n.lower() == name:
				return v
		return None

	def encode(self, drop=("expect",)):
		out = [self.line]
		for n, v in self.headers:
			if n.lower() not in drop:
				out.append("%s: %s" % (n, v))
		return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + self.body


class Reader:
	"""Buffered reads of HTTP messages from one socket."""

	def __init__(self, sock):
		self.sock = sock
		self.buf = bytearray()
		self.eof = False

	def _fill(self):
		d = self.sock.recv(256 * 1024)
		if not d:
			self.eof = True
			return False
		self.buf += d
		return True

	def head(self):
		"""Bytes up to and including the blank line; None on a clean EOF
		before any byte."""
		while True:
			i = self.buf.find(b"\r\n\r\n")
			if i >= 0:
				h = bytes(self.buf[:i + 4])
				del self.buf[:i + 4]
				return h
			if len(self.buf) > MAX_HEAD:
				raise ProtocolError("header block too long")
			if not self._fill():
				if self.buf:
					raise ProtocolError("EOF inside a header block")
				return None

	def exact(self, n):
		while len(self.buf) < n:
			if not self._fill():
				raise ProtocolError("EOF inside a body")
		d = bytes(self.buf[:n])
		del self.buf[:n]
		return d

	def line(self):
		while True:
			i = self.buf.find(b"\r\n")
			if i >= 0:
				d = bytes(self.buf[:i + 2])
				del self.buf[:i + 2]
				return d
			if len(self.buf) > MAX_HEAD:
				raise ProtocolError("chunk line too long")
			if not self._fill():
				raise ProtocolError("EOF inside chunked data")

	def chunked(self):
		"""Raw chunked body including the terminating chunk and trailers."""
		out = bytearray()
		while True:
			ln = self.line()
			out += ln
			size = int(ln.split(b";")[0].strip() or b"0", 16)
			if size == 0:
				while True:
					t = self.line()
					out += t
					if t == b"\r\n":
						return bytes(out)
			if len(out) + size > MAX_BODY:
				raise ProtocolError("chunked body too large")
			out += self.exact(size + 2)

	def rest(self):
		while self._fill():
			if len(self.buf) > MAX_BODY:
				raise ProtocolError("body too large")
		d = bytes(self.buf)
		self.buf.clear()
		return d


def parse_head(raw):
	text = raw.decode("latin-1")
	lines = text.split("\r\n")
	headers = []
	for ln in lines[1:]:
		if not ln:
			continue
		if ":" not in ln:
			raise ProtocolError("bad header line %r" % ln)
		n, v = ln.split(":", 1)
		headers.append((n.strip(), v.strip()))
	return lines[0], headers


def header(headers, name):
	name = name.lower()
	for n, v in headers:
		if n.lower() == name:
			return v
	return None


def read_body(reader, headers):
	te = header(headers, "transfer-encoding")
	if te and "chunked" in te.lower():
		return reader.chunked()
	cl = header(headers, "content-length")
	if cl is not None:
		n = int(cl)
		if n < 0 or n > MAX_BODY:
			raise ProtocolError("bad content-length %r" % cl)
		return reader.exact(n)
	return None


class FaultProxy:
	"""See the module text.  Fault settings are probabilities per
	request (0..1); `methods` limits faults to requests of those methods
	(e.g. {"PUT"}) and `kinds` to those object kinds (e.g. {"log"})."""

	def __init__(self, upstream, listen=("127.0.0.1", 0), seed=None, history=2000):
		self.upstream = upstream
		self.rng = random.Random(seed)
		self.lock = threading.Lock()
		self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.lsock.bind(listen)
		self.lsock.listen(512)
		self.port = self.lsock.getsockname()[1]
		self.host = self.lsock.getsockname()[0]
		self._stop = False
		self._socks = set()
		self._threads = []
		self._counts = collections.Counter()
		self._faults = collections.Counter()
		self._history = collections.deque(maxlen=history)
		self.set_faults()

	# ------------------------------------------------------------ control
	def set_faults(self, delay=0.0, delay_ms=(0, 0), drop_request=0.0, drop_response=0.0,
		       truncate=0.0, methods=None, kinds=None):
		"""Replaces all fault settings; no argument = no faults."""
		with self.lock:
			self.f_delay = float(delay)
			self.f_delay_ms = (int(delay_ms[0]), int(delay_ms[1]))
			self.f_drop_request = float(drop_request)
			self.f_drop_response = float(drop_response)
			self.f_truncate = float(truncate)
			self.f_methods = set(m.upper() for m in methods) if methods else None
			self.f_kinds = set(kinds) if kinds else None

	def counts(self):
		"""{"METHOD kind": n, "METHOD kind STATUS": n, "total": n}; faults
		injected are counted as "fault <name>"."""
		with self.lock:
			out = dict(self._counts)
			for k, v in self._faults.items():
				out["fault " + k] = v
			return out

	def requests(self):
		"""{"METHOD kind": n} only (no status or fault entries)."""
		return {k: v for k, v in self.counts().items()
			if k != "total" and not k.startswith("fault ") and len(k.split()) == 2}

	def total(self):
		with self.lock:
			return self._counts.get("total", 0)

	def faults(self):
		with self.lock:
			return dict(self._faults)

	def reset_counts(self):
		with self.lock:
			self._counts.clear()
			self._faults.clear()

	def history(self):
		"""The last requests: (time, method, target, kind, status, fault)."""
		with self.lock:
			return list(self._history)

	def dump(self, path):
		with open(path, "w") as f:
			json.dump({"counts": self.counts(),
				   "history": [list(h) for h in self.history()]}, f, indent=1)

	def start(self):
		t = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
		t.start()
		self._threads.append(t)
		return self

	def stop(self):
		self._stop = True
		try:
			self.lsock.shutdown(socket.SHUT_RDWR)
		except OSError:
			pass
		self.lsock.close()
		with self.lock:
			socks = list(self._socks)
		for s in socks:
			self._close(s, rst=False)

	# ------------------------------------------------------------ internals
	def _accept_loop(self):
		while not self._stop:
			try:
				c, _ = self.lsock.accept()
			except OSError:
				if self._stop:
					return
				time.sleep(0.01)
				continue
			c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
			with self.lock:
				self._socks.add(c)
			t = threading.Thread(target=self._serve, args=(c,), name="proxy-conn", daemon=True)
			t.start()

	def _close(self, s, rst=False):
		if s is None:
			return
		try:
			if rst:
				s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
			else:
				s.shutdown(socket.SHUT_RDWR)
		except OSError:
			pass
		try:
			s.close()
		except OSError:
			pass
		with self.lock:
			self._socks.discard(s)

	def _connect_up(self):
		u = socket.create_connection(self.upstream, timeout=120)
		u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		with self.lock:
			self._socks.add(u)
		return u

	@staticmethod
	def _stale(s):
		"""A kept-alive upstream connection the server has closed (or
		that holds unexpected bytes) is not reused."""
		try:
			r, _, _ = select.select([s], [], [], 0)
		except (OSError, ValueError):
			return True
		return bool(r)

	def _pick(self, method, kind):
		"""The fault for one request: None, "drop_request",
		"drop_response", "truncate"; plus a delay in seconds."""
		with self.lock:
			if self.f_methods is not None and method not in self.f_methods:
				return None, 0.0
			if self.f_kinds is not None and kind not in self.f_kinds:
				return None, 0.0
			d = 0.0
			if self.f_delay > 0 and self.rng.random() < self.f_delay:
				d = self.rng.uniform(*self.f_delay_ms) / 1000.0
			r = self.rng.random()
			for name in ("drop_request", "drop_response", "truncate"):
				p = getattr(self, "f_" + name)
				if r < p:
					return name, d
				r -= p
			return None, d

	def _record(self, method, target, kind, op, status, fault, delay):
		with self.lock:
			self._counts["total"] += 1
			self._counts["%s %s" % (op, kind)] += 1
			if status is not None:
				self._counts["%s %s %s" % (op, kind, status)] += 1
			if fault:
				self._faults[fault] += 1
			if delay:
				self._faults["delay"] += 1
			self._history.append((round(time.time(), 3), method, target[:200], kind,
					      status, fault))

	def _serve(self, c):
		up = None
		cr = Reader(c)
		try:
			while not self._stop:
				raw = cr.head()
				if raw is None:
					return
				line, headers = parse_head(raw)
				req = Request(line, headers, b"", raw)
				exp = req.header("expect")
				if exp and exp.lower() == "100-continue":
					c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
				body = read_body(cr, headers)
				req.body = body or b""
				kind, op = classify(req.method, req.target)
				fault, delay = self._pick(req.method, kind)
				out = req.encode()
				if up is not None and self._stale(up):
					self._close(up)
					up = None
				if up is None:
					up = self._connect_up()
				if fault == "drop_request":
					# part of the head, or the head and part of the body
					hl = len(out) - len(req.body)
					cut = self.rng.randint(1, hl - 1) if not req.body else \
						hl + self.rng.randint(0, max(0, len(req.body) - 1))
					try:
						up.sendall(out[:cut])
					except OSError:
						pass
					self._record(req.method, req.target, kind, op, None, fault, delay)
					self._close(up, rst=self.rng.random() < 0.5)
					up = None
					self._close(c, rst=self.rng.random() < 0.5)
					c = None
					return
				try:
					up.sendall(out)
					ur = Reader(up)
					resp_head, status, rh = self._read_status(ur)
				except (OSError, ProtocolError):
					# not one of ours: counted so that a test can tell
					self._record(req.method, req.target, kind, op, None,
						     "upstream-error", 0)
					raise
				close_after = False
				if req.method == "HEAD" or status in (204, 304):
					rbody = b""
				else:
					rbody = read_body(ur, rh)
					if rbody is None:
						rbody = ur.rest()
						close_after = True
				conn_hdr = (header(rh, "connection") or "").lower()
				if "close" in conn_hdr:
					close_after = True
				resp = resp_head + rbody
				if delay:
					time.sleep(delay)
				self._record(req.method, req.target, kind, op, status, fault, delay)
				if fault == "drop_response":
					self._close(up)
					up = None
					self._close(c, rst=self.rng.random() < 0.5)
					c = None
					return
				if fault == "truncate":
					# in the body, or (always when there is none, else
					# sometimes) in the header block
					if rbody and self.rng.random() < 0.7:
						cut = len(resp_head) + self.rng.randint(0, len(rbody) - 1)
					else:
						cut = self.rng.randint(1, len(resp_head) - 1)
					try:
						c.sendall(resp[:cut])
					except OSError:
						pass
					self._close(up)
					up = None
					self._close(c, rst=self.rng.random() < 0.3)
					c = None
					return
				c.sendall(resp)
				if close_after:
					return
		except (OSError, ProtocolError, ValueError):
			return
		finally:
			self._close(up)
			self._close(c)

	def _read_status(self, ur):
		while True:
			h = ur.head()
			if h is None:
				raise ProtocolError("upstream closed")
			line, rh = parse_head(h)
			parts = line.split(" ", 2)
			if len(parts) < 2 or not parts[0].startswith("HTTP/"):
				raise ProtocolError("bad status line %r" % line)
			status = int(parts[1])
			if 100 <= status < 200:
				continue	# we sent no Expect; ignore stray 1xx
			return h, status, rh


def main():
	ap = argparse.ArgumentParser(description="HTTP fault proxy for kura's S3 tests")
	ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
	ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on")
	ap.add_argument("--delay", type=float, default=0.0, help="probability of a delay")
	ap.add_argument("--delay-ms", default="0,0", help="MIN,MAX delay in ms")
	ap.add_argument("--drop-request", type=float, default=0.0)
	ap.add_argument("--drop-response", type=float, default=0.0)
	ap.add_argument("--truncate", type=float, default=0.0)
	ap.add_argument("--methods", help="comma-separated methods faults apply to")
	ap.add_argument("--kinds", help="comma-separated object kinds faults apply to")
	ap.add_argument("--counts-file", help="JSON counts written on SIGUSR1 and at exit")
	ap.add_argument("--seed", type=int)
	a = ap.parse_args()
	uh, up = a.upstream.rsplit(":", 1)
	lh, lp = a.listen.rsplit(":", 1)
	p = FaultProxy((uh, int(up)), (lh, int(lp)), seed=a.seed)
	lo, hi = (int(x) for x in a.delay_ms.split(","))
	p.set_faults(delay=a.delay, delay_ms=(lo, hi), drop_request=a.drop_request,
		     drop_response=a.drop_response, truncate=a.truncate,
		     methods=a.methods.split(",") if a.methods else None,
		     kinds=a.kinds.split(",") if a.kinds else None)
	p.start()
	print("proxy: listening on %s:%d -> %s" % (p.host, p.port, a.upstream), flush=True)
	done = threading.Event()

	def dump(*_):
		if a.counts_file:
			p.dump(a.counts_file)

	signal.signal(signal.SIGUSR1, dump)
	signal.signal(signal.SIGTERM, lambda *_: done.set())
	signal.signal(signal.SIGINT, lambda *_: done.set())
	while not done.wait(0.5):
		pass
	p.stop()
	dump()
	json.dump(p.counts(), sys.stdout, indent=1, sort_keys=True)
	print()


if __name__ == "__main__":
	main()
