"""Helpers shared by the test_x_* modules (IMAP extensions).  This module
defines no test functions, so the runner starts no server for it.

- need(ctx, c, CAP): True when the extension is advertised after login.
  Against kura every extension under test must be advertised (a missing
  one fails the test); against another server (--server dovecot) a
  missing one skips the test.
- own_server(ctx, args, users): a private kura-imapd with extra command
  line arguments and/or its own users file, stopped by the runner after
  the test like ctx.second_server().
- ZSock / compress(c): RFC 4978 DEFLATE layer under a Conn.
- idle_start / idle_done / wait_for: IDLE plumbing.
- uid_set / fmt_set: sequence sets <-> lists.
"""

import os
import shutil
import time
import zlib

import integlib
from integlib import Fail, eq, expect, message, parse, status_of


# ------------------------------------------------------------ capabilities

def caps(c):
	r = c.ok("CAPABILITY")
	out = set()
	for t in r.data("CAPABILITY"):
		out.update(str(x).upper() for x in t[2:])
	return out


def cap_value(c, prefix):
	"""The value of a CAP=value capability (e.g. APPENDLIMIT), '' for a
	bare CAP, None when absent."""
	for x in caps(c):
		if x == prefix.upper():
			return ""
		if x.startswith(prefix.upper() + "="):
			return x.split("=", 1)[1]
	return None


def need(ctx, c, *wanted):
	"""True when every capability in wanted is advertised on the logged-in
	connection c.  kura advertises all of them, so a missing one is a
	failure there; other servers skip the test."""
	have = caps(c)
	missing = [w for w in wanted if w.upper() not in have
		   and not any(h.startswith(w.upper() + "=") for h in have)]
	if not missing:
		return True
	if ctx.kind == "kura":
		raise Fail("capability %s not advertised after login: %s"
			   % (" ".join(missing), " ".join(sorted(have))))
	return False


def lax(c):
	"""Turns off the RFC 3501 grammar check of integlib for this
	connection: extensions add responses it does not know (SEARCH with a
	MODSEQ list, LIST extended data, UTF-8 quoted strings)."""
	c.strict = False
	return c


# ------------------------------------------------------------ own servers

class OwnKura(integlib.KuraServer):
	"""A kura-imapd with extra arguments and its own users file/store."""

	def __init__(self, workdir, cert, key, users_path, module, extra):
		super().__init__(workdir, cert, key, users_path, module)
		self.extra = list(extra)

	def store_spec(self):
		return "fs:" + os.path.join(self.dir, "store")

	def command(self):
		cmd = super().command()
		return cmd + self.extra


def own_server(ctx, extra=(), users=None, tag="own"):
	"""Starts a private kura-imapd for this test (a fresh fs store, its own
	ports) with extra command line arguments; users is a list of lines for
	its users file (default: the suite's users file).  The runner stops it
	after the test and reports its crashes/leaks like a second node.
	Returns None when the suite runs against another server kind."""
	if ctx.kind != "kura":
		return None
	n = len(getattr(ctx, "_extra", [])) + 2
	workdir = "%s.%s%d" % (ctx.server.dir, tag, n)
	shutil.rmtree(workdir, ignore_errors=True)
	os.makedirs(workdir, exist_ok=True)
	users_path = ctx.server.users_path
	if users is not None:
		users_path = os.path.join(workdir, "users")
		with open(users_path, "w") as f:
			f.write("".join(u + "\n" for u in users))
		os.chmod(users_path, 0o600)
	srv = OwnKura(workdir, ctx.server.cert, ctx.server.key, users_path,
		      ctx.server.module, extra)
	srv.start()
	ctx._extra = getattr(ctx, "_extra", []) + [srv]
	return srv


# ------------------------------------------------------------ messages

def fill(c, mbox, n, prefix="m", flags=None):
	"""Appends n small messages; returns their UIDs (APPENDUID)."""
	out = []
	for i in range(n):
		out.append(c.append(mbox, message(subject="%s%d" % (prefix, i), body="body %d\n" % i),
				    flags=(flags[i] if flags else None)))
	return out


def uids_of(c):
	"""UIDs of the selected mailbox by sequence number (index 0 = seq 1)."""
	f = c.ok("UID FETCH 1:* (UID)").fetches()
	return [int(f[i]["UID"]) for i in sorted(f)]


# ------------------------------------------------------------ sets

def uid_set(s):
	"""Expands '1:3,7' (no '*') into a sorted list of ints."""
	if isinstance(s, bytes):
		s = s.decode()
	s = str(s).strip()
	if not s:
		return []
	out = set()
	for part in s.split(","):
		if ":" in part:
			a, b = part.split(":")
			a, b = int(a), int(b)
			if a > b:
				a, b = b, a
			out.update(range(a, b + 1))
		else:
			out.add(int(part))
	return sorted(out)


def uid_list(s):
	"""Like uid_set but keeps the order and duplicates of the set as
	written (for COPYUID/APPENDUID correspondence)."""
	if isinstance(s, bytes):
		s = s.decode()
	out = []
	for part in str(s).strip().split(","):
		if ":" in part:
			a, b = (int(x) for x in part.split(":"))
			out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
		elif part:
			out.append(int(part))
	return out


def fmt_set(nums):
	nums = sorted(set(nums))
	out, i = [], 0
	while i < len(nums):
		j = i
		while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
			j += 1
		out.append(str(nums[i]) if i == j else "%d:%d" % (nums[i], nums[j]))
		i = j + 1
	return ",".join(out)


# ------------------------------------------------------------ response helpers

def code_of(line):
	"""(NAME, rest) of the response code of a status line, or None."""
	st = status_of(line)
	if not st or not st[2]:
		return None
	parts = st[2].split(None, 1)
	return parts[0].upper(), (parts[1] if len(parts) > 1 else "")


def untagged_codes(r):
	"""[(NAME, rest)] of the untagged OK/NO/BAD lines of r, in order."""
	out = []
	for u in r.untagged:
		cd = code_of(u)
		if cd and u.startswith(b"* "):
			out.append(cd)
	return out


def modseq_of(items):
	"""The number inside MODSEQ (n) of a fetch item dict, or None."""
	v = items.get("MODSEQ")
	if v is None:
		return None
	expect(isinstance(v, list) and len(v) == 1 and str(v[0]).isdigit(),
	       "MODSEQ value must be (number): %r" % (v,))
	return int(v[0])


def highestmodseq(r):
	v = [int(x) for n, x in r.codes() if n == "HIGHESTMODSEQ"]
	return v[-1] if v else None


def vanished(r):
	"""[(earlier, [uids])] of the VANISHED responses of r, in order."""
	out = []
	for u in r.untagged:
		t = parse(u)
		if len(t) >= 2 and str(t[1]).upper() == "VANISHED":
			earlier = len(t) >= 3 and isinstance(t[2], list)
			if earlier:
				expect([str(x).upper() for x in t[2]] == ["EARLIER"],
				       "VANISHED with a tag other than (EARLIER): %r" % u)
			rest = t[3:] if earlier else t[2:]
			expect(len(rest) == 1, "VANISHED needs exactly one UID set: %r" % u)
			out.append((earlier, uid_set(rest[0])))
	return out


def esearch(r, tag=None):
	"""The ESEARCH responses of r as dicts: {'TAG': str|None, 'UID': bool,
	NAME: value-string, ...}."""
	out = []
	for u in r.untagged:
		t = parse(u)
		if len(t) < 2 or str(t[1]).upper() != "ESEARCH":
			continue
		d = {"TAG": None, "UID": False}
		i = 2
		if i < len(t) and isinstance(t[i], list):
			corr = t[i]
			expect(len(corr) == 2 and str(corr[0]).upper() == "TAG",
			       "ESEARCH correlator must be (TAG \"...\"): %r" % u)
			d["TAG"] = corr[1].decode() if isinstance(corr[1], bytes) else str(corr[1])
			i += 1
		if i < len(t) and str(t[i]).upper() == "UID":
			d["UID"] = True
			i += 1
		while i + 1 < len(t):
			k = str(t[i]).upper()
			expect(k not in d, "ESEARCH returns %s twice: %r" % (k, u))
			d[k] = t[i + 1]
			i += 2
		expect(i == len(t), "ESEARCH with a dangling item: %r" % u)
		out.append(d)
	if tag is not None:
		for d in out:
			eq(d["TAG"], tag, "ESEARCH (TAG) correlator")
	return out


# ------------------------------------------------------------ IDLE

def idle_start(c):
	tag = c.next_tag()
	c.send("%s IDLE\r\n" % tag)
	early = []
	while True:
		line = c.read_response()
		if line.startswith(b"+"):
			return tag, early
		st = status_of(line)
		if st and st[0] == tag:
			raise Fail("IDLE refused: %r" % line)
		early.append(line)


def idle_done(c, tag):
	c.send("DONE\r\n")
	r = c.read_until(tag)
	eq(r.status, "OK", "tagged response to DONE (%r)" % r)
	return r


def wait_for(c, pred, seconds):
	"""Reads responses until pred(line) or the time is up; returns
	(lines, matched, seconds waited)."""
	got = []
	t0 = time.time()
	deadline = t0 + seconds
	old = c.sock.gettimeout()
	try:
		while time.time() < deadline:
			c.sock.settimeout(max(0.05, deadline - time.time()))
			try:
				line = c.read_response()
			except (TimeoutError, OSError):
				break
			got.append(line)
			if pred(line):
				return got, True, time.time() - t0
	finally:
		c.sock.settimeout(old)
	return got, False, time.time() - t0


# ------------------------------------------------------------ COMPRESS

class ZSock:
	"""A socket-like object that deflates what is sent and inflates what
	is received (raw DEFLATE, wbits -15, as RFC 4978 requires)."""

	def __init__(self, sock, pending=b""):
		self.sock = sock
		self.inflate = zlib.decompressobj(-15)
		self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
		self.raw_in = 0
		self.plain_in = 0
		self.raw_out = 0
		self.leftover = b""
		if pending:
			self.raw_in += len(pending)
			self.leftover = self.inflate.decompress(pending)
			self.plain_in += len(self.leftover)

	def sendall(self, data):
		z = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
		self.raw_out += len(z)
		self.sock.sendall(z)

	def recv(self, n):
		if self.leftover:
			d, self.leftover = self.leftover, b""
			return d
		while True:
			raw = self.sock.recv(65536)
			if not raw:
				return b""
			self.raw_in += len(raw)
			try:
				d = self.inflate.decompress(raw)
			except zlib.error as e:
				raise Fail("server data is not a raw DEFLATE stream: %s (%r)" % (e, raw[:60]))
			if d:
				self.plain_in += len(d)
				return d

	def settimeout(self, t):
		self.sock.settimeout(t)

	def gettimeout(self):
		return self.sock.gettimeout()

	def close(self):
		self.sock.close()


def compress(c):
	"""COMPRESS DEFLATE on Conn c; afterwards c talks through a ZSock."""
	r = c.cmd("COMPRESS DEFLATE")
	eq(r.status, "OK", "COMPRESS DEFLATE (%r)" % r)
	# Anything already buffered after the tagged OK is compressed data.
	pending, c.buf = c.buf, b""
	c.sock = ZSock(c.sock, pending)
	return r


# ------------------------------------------------------------ misc

def raw_cmd(c, text):
	"""Sends text (str/bytes, CRLF appended) with a fresh tag and reads to
	the tagged response; for commands built by hand."""
	tag = c.next_tag()
	data = text.encode() if isinstance(text, str) else text
	c.send(tag.encode() + b" " + data + b"\r\n")
	return c.read_until(tag)


def list_raw(c, args):
	"""Runs 'LIST args'; returns (result, [(attrs set lower, delim, name str,
	extended list or None)]) in order."""
	r = c.cmd("LIST " + args)
	out = []
	for u in r.untagged:
		t = parse(u)
		if len(t) >= 5 and str(t[1]).upper() == "LIST":
			expect(isinstance(t[2], list), "LIST attributes not a list: %r" % u)
			name = t[4].decode("utf-8") if isinstance(t[4], bytes) else str(t[4])
			ext = t[5] if len(t) > 5 else None
			expect(len(t) <= 6, "LIST with trailing data: %r" % u)
			out.append(({str(a).lower() for a in t[2]}, t[3], name, ext))
	return r, out


def statuses(r):
	"""{mailbox: {ITEM: value str or None}} of STATUS responses of r,
	plus the order in which they came as a list under key None."""
	out = {None: []}
	for u in r.untagged:
		t = parse(u)
		if len(t) >= 4 and str(t[1]).upper() == "STATUS":
			name = t[2].decode("utf-8") if isinstance(t[2], bytes) else str(t[2])
			lst = t[3]
			expect(isinstance(lst, list) and len(lst) % 2 == 0, "malformed STATUS %r" % u)
			out[name] = {str(lst[i]).upper(): (None if lst[i + 1] is None else str(lst[i + 1]))
				     for i in range(0, len(lst), 2)}
			out[None].append(name)
	return out
