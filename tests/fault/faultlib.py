"""Shared pieces of the fault suite (tests/fault): kura nodes on one S3
prefix, a private Ceph RGW whose radosgw can be stopped and restarted
alone, a minimal S3 client for looking into the bucket, and the load
generator with its ledger.

The ledger
----------
Worker threads drive real IMAP sessions and write down every outcome:

- APPEND: APPENDUID uid(s) and the exact bytes (every message carries a
  unique X-Fault-Id header, so bytes identify a message);
- STORE: the flags the server reported (checked against the flags the
  command must have produced);
- COPY/MOVE: the COPYUID mapping;
- EXPUNGE/MOVE: the UIDs reported in VANISHED responses (QRESYNC is
  enabled in every session, so expunges come as UID sets);
- FETCH: which message each UID named.

Each worker only changes its own messages (the ones it appended or
copied), so the flags of every message are determined by one session's
ordered commands.  A command that got NO, or whose answer was lost with
the connection, has an unknown outcome: its effect is recorded as a set
of alternatives (a message that may exist, flags that may be one of a few
sets, a MOVE whose message must be in exactly one of two places).

Checks (verify_state, check_ordering, compare_states):
- no (mailbox, UID) ever names two different messages, over every
  observation during the run and in the final state;
- every UID assigned (APPENDUID/COPYUID) by a command sent after another
  command was acknowledged (or after a FETCH showed a UID) is greater
  than that UID: the log is linearizable, so real-time order implies UID
  order, across nodes too;
- every acknowledged message is present exactly once with its exact bytes
  and the flags of its last acknowledged STORE, unless an acknowledged
  EXPUNGE/MOVE removed it; nothing unacknowledged and unexplained exists;
- no UID seen expunged (VANISHED) comes back, and nothing vanishes that
  was neither flagged \\Deleted nor moved;
- two nodes show identical state: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
  and per UID the flags, MODSEQ and bytes.
"""

import collections
import datetime
import hashlib
import hmac
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integ"))

import integlib  # noqa: E402
from integlib import Closed, Conn, Fail, Lit, quote  # noqa: E402,F401

REPO = integlib.REPO
MAILBOXES = ("INBOX", "Other")
DELETED = "\\deleted"
FLAG_POOL = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "$Work", "$Later", "Urgent")


def env_float(name, default):
	v = os.environ.get(name)
	try:
		return float(v) if v not in (None, "") else default
	except ValueError:
		return default


def scale():
	return integlib.timeout_scale()


# ---------------------------------------------------------------- S3 client

class S3:
	"""Just enough S3 (SigV4, path style) to look into the bucket:
	listing and GET.  Keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

	def __init__(self, url=None):
		url = url or os.environ["KURA_S3_URL"]
		if url.startswith("s3:"):
			url = url[3:]
		u = urllib.parse.urlsplit(url)
		self.host = u.hostname
		self.port = u.port or 80
		comps = u.path.strip("/").split("/", 1)
		self.bucket = comps[0]
		self.prefix = (comps[1].strip("/") + "/") if len(comps) > 1 and comps[1] else ""
		self.ak = os.environ["AWS_ACCESS_KEY_ID"]
		self.sk = os.environ["AWS_SECRET_ACCESS_KEY"]
		self.region = os.environ.get("AWS_REGION") or "us-east-1"

	def _request(self, method, key, query=None, body=b""):
		path = "/" + self.bucket + ("/" + urllib.parse.quote(key, safe="/~") if key else "/")
		q = sorted((query or {}).items())
		qs = "&".join("%s=%s" % (urllib.parse.quote(k, safe="~"), urllib.parse.quote(v, safe="~"))
			      for k, v in q)
		now = datetime.datetime.now(datetime.timezone.utc)
		amzdate = now.strftime("%Y%m%dT%H%M%SZ")
		day = now.strftime("%Y%m%d")
		hostport = "%s:%d" % (self.host, self.port)
		psha = hashlib.sha256(body).hexdigest()
		hdrs = {"host": hostport, "x-amz-content-sha256": psha, "x-amz-date": amzdate}
		signed = ";".join(sorted(hdrs))
		canon = "\n".join([method, path, qs] +
				  ["%s:%s" % (k, hdrs[k]) for k in sorted(hdrs)] + ["", signed, psha])
		scope = "%s/%s/s3/aws4_request" % (day, self.region)
		sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
				 hashlib.sha256(canon.encode()).hexdigest()])

		def h(k, m):
			return hmac.new(k, m.encode(), hashlib.sha256).digest()
		k = h(h(h(h(("AWS4" + self.sk).encode(), day), self.region), "s3"), "aws4_request")
		sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
		out = dict(hdrs)
		out["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
					% (self.ak, scope, signed, sig))
		c = http.client.HTTPConnection(self.host, self.port, timeout=60)
		try:
			c.request(method, path + ("?" + qs if qs else ""), body=body, headers=out)
			r = c.getresponse()
			return r.status, r.read()
		finally:
			c.close()

	def list(self, prefix, start_after=None):
		"""Keys (relative to the URL's prefix) under prefix."""
		keys = []
		token = None
		while True:
			q = {"list-type": "2", "prefix": self.prefix + prefix, "max-keys": "1000"}
			if token:
				q["continuation-token"] = token
			elif start_after:
				q["start-after"] = self.prefix + start_after
			st, body = self._request("GET", "", q)
			if st != 200:
				raise Fail("S3 LIST %s: HTTP %d %r" % (prefix, st, body[:200]))
			text = body.decode()
			for k in re.findall(r"<Key>([^<]*)</Key>", text):
				k = k.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
				keys.append(k[len(self.prefix):])
			m = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", text)
			if "<IsTruncated>true</IsTruncated>" in text and m:
				token = m.group(1).replace("&amp;", "&")
			else:
				return keys

	def get(self, key):
		st, body = self._request("GET", self.prefix + key)
		if st != 200:
			raise Fail("S3 GET %s: HTTP %d" % (key, st))
		return body

	def user_dir(self, user):
		"""'u/<h>/<user>/' of a user, found by listing (None when the
		user has no objects yet)."""
		for k in self.list("u/"):
			parts = k.split("/")
			if len(parts) > 3 and parts[2] == user:
				return "/".join(parts[:3]) + "/"
		return None

	def log_head(self, udir, after=None):
		"""Highest log seq of the user (0 when none)."""
		keys = self.list(udir + "log/", start_after=udir + "log/" + after if after else None)
		seqs = [int(k.rsplit("/", 1)[1], 16) for k in keys if re.search(r"/log/[0-9a-f]{16}$", k)]
		return max(seqs) if seqs else 0

	def snapshots(self, udir):
		"""Seqs of the user's snapshots whose mailbox list object exists."""
		out = set()
		for k in self.list(udir + "snap/"):
			m = re.search(r"/snap/([0-9a-f]{16})/mailboxes$", k)
			if m:
				out.add(int(m.group(1), 16))
		return sorted(out)


def s3_endpoint():
	"""(host, port) of KURA_S3_URL."""
	u = urllib.parse.urlsplit(os.environ["KURA_S3_URL"][3:])
	return u.hostname, u.port or 80


def proxied_url(proxy):
	"""KURA_S3_URL with the proxy's port in place of the server's."""
	u = urllib.parse.urlsplit(os.environ["KURA_S3_URL"][3:])
	return "s3:%s://127.0.0.1:%d%s" % (u.scheme, proxy.port, u.path.rstrip("/"))


# ---------------------------------------------------------------- nodes

class Node(integlib.KuraServer):
	"""One kura-imapd on a given store spec with its own cache and ports."""

	def __init__(self, workdir, cert, key, users, store, name, extra_args=()):
		super().__init__(workdir, cert, key, users, module="fault")
		while self.tls_port == self.port:	# free_port() may repeat itself
			self.tls_port = integlib.free_port()
		self.store_override = store
		self.name = name
		self.extra_args = list(extra_args)

	env_extra = {}

	def command(self):
		extra = os.environ.get("KURA_FAULT_EXTRA_ARGS", "").split()
		return super().command() + self.extra_args + extra

	def environment(self):
		env = super().environment()
		env.update(self.env_extra)
		return env

	def __repr__(self):
		return "node %s (port %d)" % (self.name, self.port)

	def pid(self):
		return self.proc.pid if self.proc else None


# ---------------------------------------------------------------- private RGW

def _port_free(port):
	s = socket.socket()
	try:
		s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		s.bind(("127.0.0.1", port))
		return True
	except OSError:
		return False
	finally:
		s.close()


class PrivateRgw:
	"""A Ceph cluster of its own (tests/s3/start-rgw.sh in dir, on free
	ports) so that a test can stop and restart its radosgw without
	touching the shared one.  The OSD (memstore) keeps the data while
	radosgw is down."""

	RGW_NAME = "client.rgw.kura"

	def __init__(self, dir):
		self.dir = dir
		self.env = {}
		self.port = None

	def start(self):
		os.makedirs(self.dir, exist_ok=True)
		rng = random.Random()
		for _ in range(50):
			rgw = rng.randrange(20000, 30000)
			mon = rng.randrange(30000, 40000)
			if _port_free(rgw) and all(_port_free(p) for p in range(mon, mon + 41)):
				break
		else:
			raise Fail("no free ports for a private RGW")
		env = dict(os.environ, KURA_RGW_PORT=str(rgw), KURA_MON_PORT=str(mon))
		r = subprocess.run(["sh", os.path.join(REPO, "tests/s3/start-rgw.sh"), self.dir],
				   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
		if r.returncode != 0:
			raise Fail("start-rgw.sh failed: %s" % r.stderr.decode()[-800:])
		for m in re.finditer(r"export (\w+)='([^']*)'", r.stdout.decode()):
			self.env[m.group(1)] = m.group(2)
		self.port = rgw
		return self

	@property
	def url(self):
		return self.env["KURA_S3_URL"]

	def _pids(self):
		out = []
		try:
			with open(os.path.join(self.dir, "pids")) as f:
				for line in f:
					p = line.split()
					if len(p) == 2 and p[0].isdigit():
						out.append((int(p[0]), p[1]))
		except OSError:
			pass
		return out

	def _ours(self, pid):
		try:
			with open("/proc/%d/cmdline" % pid, "rb") as f:
				return (os.path.join(self.dir, "ceph.conf")).encode() in f.read()
		except OSError:
			return False

	def radosgw_pid(self):
		for pid, name in self._pids():
			if name == self.RGW_NAME and self._ours(pid):
				return pid
		return None

	def signal_radosgw(self, sig):
		pid = self.radosgw_pid()
		if pid is None:
			raise Fail("radosgw of %s is not running" % self.dir)
		os.kill(pid, sig)
		return pid

	def stop_radosgw(self):
		"""SIGKILL radosgw (it keeps no state) and wait until its port is
		closed."""
		pid = self.signal_radosgw(signal.SIGKILL)
		deadline = time.time() + 30
		while time.time() < deadline and (self._ours(pid) or integlib.port_open("127.0.0.1", self.port)):
			time.sleep(0.05)
		if self._ours(pid):
			raise Fail("radosgw %d did not die" % pid)

	def start_radosgw(self, wait=True):
		"""Starts radosgw again from the same ceph.conf (as start-rgw.sh
		does) and records its PID for stop-rgw.sh."""
		conf = os.path.join(self.dir, "ceph.conf")
		logf = open(os.path.join(self.dir, "log", "%s.out" % self.RGW_NAME), "ab")
		p = subprocess.Popen(["radosgw", "-c", conf, "-n", self.RGW_NAME, "-f"],
				     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
				     start_new_session=True)
		logf.close()
		pf = os.path.join(self.dir, "pids")
		lines = [ln for ln in open(pf).read().splitlines() if not ln.endswith(" " + self.RGW_NAME)]
		lines.append("%d %s" % (p.pid, self.RGW_NAME))
		with open(pf + ".tmp", "w") as f:
			f.write("\n".join(lines) + "\n")
		os.rename(pf + ".tmp", pf)
		self._popen = p
		if wait:
			self.wait_answers()
		return p.pid

	def wait_answers(self, timeout=60):
		deadline = time.time() + timeout
		while time.time() < deadline:
			try:
				c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
				c.request("GET", "/")
				c.getresponse().read()
				c.close()
				return
			except OSError:
				time.sleep(0.1)
		raise Fail("radosgw on port %d did not answer within %ds" % (self.port, timeout))

	def stop(self):
		subprocess.run(["sh", os.path.join(REPO, "tests/s3/stop-rgw.sh"), self.dir],
			       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
		p = getattr(self, "_popen", None)
		if p is not None:
			try:
				p.wait(timeout=10)
			except subprocess.TimeoutExpired:
				pass


# ---------------------------------------------------------------- messages

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
	  "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")


def make_message(fid, rng, size=None):
	"""A message with the unique header X-Fault-Id: fid (CRLF lines)."""
	if size is None:
		size = rng.choice((300, 600, 1200, 2500)) if rng.random() > 0.02 else 120000
	body = []
	n = 0
	while n < size:
		line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
		body.append(line)
		n += len(line) + 2
	hdr = ["From: Fault Tester <fault@example.org>", "To: <u@example.net>",
	       "Subject: fault message %s" % fid,
	       "Date: %s, 0%d Jan 2024 10:%02d:%02d +0000" % (_DAYS[rng.randrange(7)], rng.randint(1, 9),
							    rng.randrange(60), rng.randrange(60)),
	       "Message-ID: <%s@fault.example>" % fid, "X-Fault-Id: %s" % fid]
	return ("\r\n".join(hdr) + "\r\n\r\n" + "\r\n".join(body) + "\r\n").encode()


_FID_RE = re.compile(rb"(?im)^x-fault-id:\s*(\S+)")


def fault_id(data):
	m = _FID_RE.search(data or b"")
	return m.group(1).decode() if m else None


def apply_flags(kind, old, flags):
	flags = frozenset(f.lower() for f in flags)
	if kind == "+":
		return frozenset(old | flags)
	if kind == "-":
		return frozenset(old - flags)
	return flags


def fmt_flags(fs):
	return "(" + " ".join(sorted(fs)) + ")"


def uidset(s):
	"""An APPENDUID/COPYUID uid-set in order ('3:5,9' -> [3, 4, 5, 9])."""
	out = []
	for part in str(s).split(","):
		if ":" in part:
			a, b = (int(x) for x in part.split(":"))
			out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
		else:
			out.append(int(part))
	return out


# ---------------------------------------------------------------- the ledger

class Msg:
	"""One message instance (one UID in one mailbox), as the ledger
	knows it."""

	__slots__ = ("fid", "body", "mbox", "uid", "flags", "certain", "owner", "from_no",
		     "deleted_set", "moved", "gone", "t_ack", "group", "present", "hist")

	def __init__(self, fid, body, mbox, uid, flags, certain, owner, t_ack=None, from_no=False):
		self.fid = fid
		self.body = body
		self.mbox = mbox
		self.uid = uid		# None: assigned by a command whose outcome is unknown
		self.flags = set(flags)	# alternatives: set of frozensets (lower case)
		self.certain = certain	# False: may not exist (outcome unknown)
		self.owner = owner
		self.from_no = from_no	# the uncertain command got NO (not a lost answer)
		self.deleted_set = False	# \Deleted was (maybe) set: anyone's EXPUNGE may remove it
		self.moved = False	# a MOVE away was sent
		self.gone = None	# time an acknowledged EXPUNGE/MOVE removed it
		self.t_ack = t_ack
		self.group = None	# uncertain MOVE: [src, dst], exactly one must exist
		self.present = None
		self.hist = []		# (monotonic time, text): for failure reports

	def event(self, text):
		self.hist.append((time.monotonic(), text))

	def __repr__(self):
		return "%s %s uid %s" % (self.fid, self.mbox, self.uid)


class ConnLost(Exception):
	"""The connection died (or timed out) with a command in flight."""


class Ledger:
	def __init__(self, strict_no=False):
		self.lock = threading.Lock()
		self.strict_no = strict_no	# a NO means "not applied" (else: unknown)
		self.msgs = []
		self.by_uid = {}		# (mbox, uid) -> Msg
		self.live = collections.defaultdict(dict)	# mbox -> {uid: Msg} not yet removed
		self.ident = {}			# (mbox, uid) -> (fid, source)
		self.vanished = {}		# (mbox, uid) -> first observer
		self.assigns = collections.defaultdict(list)	# mbox -> [(t_send, uid, what)]
		self.observed = collections.defaultdict(list)	# mbox -> [(t_ack, max uid, what)]
		self.problems = []
		self.notes = []
		self.nos = []			# (who, command, response)
		self.stats = collections.Counter()
		self.lat = collections.defaultdict(list)
		self.uncertain = []
		self.plain_expunge_used = False
		self.transcript = []		# (t_send, t_ack, who, mbox, command, answer)
		self.t0 = time.monotonic()

	def dump(self, path):
		"""Writes the transcript and every message's history (for failure
		analysis)."""
		with self.lock, open(path, "w") as f:
			f.write("== commands (seconds since the ledger started)\n")
			for t0, t1, who, mb, cmd, ans in self.transcript:
				f.write("%9.3f %9.3f %-4s %-6s %s => %s\n" % (t0 - self.t0, t1 - self.t0, who, mb, cmd, ans))
			f.write("\n== messages\n")
			for m in self.msgs:
				f.write("%s %s uid=%s certain=%s flags=%s deleted_set=%s moved=%s gone=%s present=%s\n"
					% (m.fid, m.mbox, m.uid, m.certain, [fmt_flags(x) for x in m.flags],
					   m.deleted_set, m.moved,
					   None if m.gone is None else round(m.gone - self.t0, 3), m.present))
				for t, e in m.hist:
					f.write("    %9.3f %s\n" % (t - self.t0, e))
			f.write("\n== vanished\n")
			for (mb, uid), who in sorted(self.vanished.items()):
				f.write("%s %d first seen by %s\n" % (mb, uid, who))

	def problem(self, text):
		with self.lock:
			if len(self.problems) < 200:
				self.problems.append(text)

	def identify(self, mbox, uid, fid, source):
		"""(mbox, uid) names message fid according to source."""
		if fid is None:
			return
		key = (mbox, uid)
		with self.lock:
			old = self.ident.get(key)
			if old is None:
				self.ident[key] = (fid, source)
			elif old[0] != fid:
				self.problems.append("UID %d in %s names two messages: %s (%s) and %s (%s)"
						     % (uid, mbox, old[0], old[1], fid, source))

	def add(self, m, t_send=None, what=""):
		with self.lock:
			self.msgs.append(m)
			if m.uid is not None:
				old = self.by_uid.get((m.mbox, m.uid))
				if old is not None and old.fid != m.fid:
					self.problems.append("UID %d in %s assigned twice: to %s and to %s (%s)"
							     % (m.uid, m.mbox, old.fid, m.fid, what))
				self.by_uid[(m.mbox, m.uid)] = m
				self.live[m.mbox][m.uid] = m
				if t_send is not None:
					self.assigns[m.mbox].append((t_send, m.uid, what))
					self.observed[m.mbox].append((m.t_ack, m.uid, what))
		if m.uid is not None:
			self.identify(m.mbox, m.uid, m.fid, what)

	def removed(self, m, t_ack):
		"""An acknowledged EXPUNGE or MOVE removed m."""
		with self.lock:
			m.gone = t_ack
			self.live[m.mbox].pop(m.uid, None)

	def saw_uids(self, mbox, t_ack, uids, what):
		if uids:
			with self.lock:
				self.observed[mbox].append((t_ack, max(uids), what))

	def saw_vanished(self, mbox, uids, who):
		with self.lock:
			for u in uids:
				self.vanished.setdefault((mbox, u), who)


def _parse_untagged(r):
	"""(vanished uids, {uid: items}) of a Result's untagged responses."""
	van = []
	fetch = {}
	for u in r.untagged:
		t = integlib.parse(u)
		if len(t) >= 3 and isinstance(t[1], str) and t[1].upper() == "VANISHED":
			if isinstance(t[2], list):	# (EARLIER)
				continue
			van.extend(uidset(t[2]))
		elif len(t) >= 4 and isinstance(t[2], str) and t[2].upper() == "FETCH":
			it = integlib.fetch_items(t)
			if "UID" in it:
				fetch.setdefault(int(it["UID"]), {}).update(it)
	return van, fetch


class Worker:
	"""One simulated client: two sessions on one node (INBOX and Other
	selected), QRESYNC enabled, driving random commands on its own
	messages until stopped.  Run it in a thread with run(deadline)."""

	def __init__(self, ledger, name, node, user, seed, max_own=25, weights=None):
		self.ledger = ledger
		self.name = name
		self.node = node
		self.user = user
		self.rng = random.Random(seed)
		self.conns = {}
		self.own = {mb: {} for mb in MAILBOXES}	# uid -> Msg, certain, usable
		self.n = 0
		self.max_own = max_own
		self.halt = False
		self.ops = collections.Counter()
		self.sock_timeout = 40.0 * scale()
		self.weights = weights or {"append": 22, "multiappend": 3, "store": 30, "copy": 8,
					   "move": 10, "expunge": 12, "plain_expunge": 2, "check": 8,
					   "noop": 5}
		self.errors = []
		self.max_latency = 0.0
		self.thread = None

	# -- sessions
	def connect(self):
		self.close()
		conns = {}
		for mb in MAILBOXES:
			c = Conn(self.node.host, self.node.port, timeout=self.sock_timeout)
			conns[mb] = c
			r = c.cmd("LOGIN ", quote(self.user.name), " ", quote(self.user.password))
			if r.status != "OK":
				for x in conns.values():
					x.close()
				raise ConnLost("LOGIN -> %r" % r)
			for cmd in ("ENABLE QRESYNC", "SELECT " + quote(mb)):
				r = c.cmd(cmd)
				if r.status != "OK":
					for x in conns.values():
						x.close()
					raise ConnLost("%s -> %r" % (cmd, r))
				self._untagged(mb, r)
		self.conns = conns

	def close(self):
		for c in self.conns.values():
			c.close()
		self.conns = {}

	def _untagged(self, mb, r):
		van, fetch = _parse_untagged(r)
		if van:
			self.ledger.saw_vanished(mb, van, self.name)
			# Own messages someone else expunged (they had \Deleted,
			# maybe from a command whose answer was lost): not ours
			# to use any more.
			for u in van:
				m = self.own[mb].pop(u, None) if mb in self.own else None
				if m is not None:
					m.event("%s saw VANISHED" % self.name)
		return van, fetch

	def cmd(self, mb, *parts, what=None, allow=()):
		"""Runs a command on the session of mb; returns (Result, t_send,
		t_ack).  Raises ConnLost when the connection fails."""
		c = self.conns.get(mb)
		if c is None:
			raise ConnLost("no session")
		what = what or (parts[0].split()[0] if isinstance(parts[0], str) else "?")
		t0 = time.monotonic()
		try:
			r = c.cmd(*parts)
		except integlib.Violation as e:
			self.ledger.problem("%s: response breaks the IMAP grammar: %s" % (self.name, e))
			self.close()
			raise ConnLost(str(e))
		except (Closed, OSError) as e:
			self.close()
			with self.ledger.lock:
				self.ledger.transcript.append((t0, time.monotonic(), self.name, mb,
							       integlib._cmd_text(parts), "LOST: %s" % e))
			raise ConnLost("%s: %s" % (type(e).__name__, e))
		t1 = time.monotonic()
		lat = t1 - t0
		self.max_latency = max(self.max_latency, lat)
		unt = b" ".join(u.rstrip(b"\r\n") for u in r.untagged if not re.match(rb"\* \d+ FETCH .*X-FAULT-ID", u, re.I))
		with self.ledger.lock:
			self.ledger.transcript.append((t0, t1, self.name, mb, integlib._cmd_text(parts),
						       "%s | %s" % (repr(r), unt[:600].decode("latin-1"))))
			self.ledger.lat[what].append(lat)
			self.ledger.stats["%s %s" % (what, r.status)] += 1
		self._untagged(mb, r)
		if r.status == "NO" and r.code_name() in allow:
			pass
		elif r.status == "NO":
			with self.ledger.lock:
				self.ledger.nos.append((self.name, what, repr(r)))
			if r.code_name() != "UNAVAILABLE":
				self.ledger.problem("%s: %s -> %r (a NO other than [UNAVAILABLE])"
						    % (self.name, what, r))
		elif r.status != "OK":
			self.ledger.problem("%s: %s -> %r" % (self.name, what, r))
		for u in r.untagged:
			if u.startswith(b"* BYE"):
				self.ledger.problem("%s: %s got %r" % (self.name, what, u))
		return r, t0, t1

	def _uncertain(self, desc, no):
		with self.ledger.lock:
			self.ledger.uncertain.append("%s: %s (%s)" % (self.name, desc, "NO" if no else "lost"))

	def next_fid(self):
		self.n += 1
		return "%s-%d" % (self.name, self.n)

	def rand_flags(self, kmax=3):
		return [f for f in self.rng.sample(FLAG_POOL, self.rng.randint(0, kmax))]

	# -- operations; each returns normally or raises ConnLost
	def op_append(self, mb="INBOX", count=1):
		msgs = []
		parts = ["APPEND ", quote(mb)]
		for _ in range(count):
			fid = self.next_fid()
			body = make_message(fid, self.rng)
			flags = self.rand_flags()
			msgs.append((fid, body, frozenset(f.lower() for f in flags)))
			parts += [" (" + " ".join(flags) + ") ", Lit(body, nonsync=True)]
		try:
			r, t0, t1 = self.cmd(mb, *parts, what="APPEND" if count == 1 else "MULTIAPPEND")
		except ConnLost:
			self._lost_append(mb, msgs, False)
			raise
		if r.status != "OK":
			if not self.ledger.strict_no:
				self._lost_append(mb, msgs, True)
			else:
				for fid, body, fl in msgs:
					self.ledger.add(Msg(fid, body, mb, None, [fl], False, self.name, from_no=True))
			return
		v = r.code_value("APPENDUID")
		if v is None:
			self.ledger.problem("%s: APPEND without APPENDUID: %r" % (self.name, r))
			return
		uv, us = v.split()
		uids = uidset(us)
		if len(uids) != count:
			self.ledger.problem("%s: APPEND of %d messages got APPENDUID %s" % (self.name, count, v))
			return
		for (fid, body, fl), uid in zip(msgs, uids):
			m = Msg(fid, body, mb, uid, [fl], True, self.name, t_ack=t1)
			m.event("%s APPEND -> uid %d flags %s" % (self.name, uid, fmt_flags(fl)))
			self.ledger.add(m, t0, "APPENDUID by %s" % self.name)
			self.own[mb][uid] = m

	def _lost_append(self, mb, msgs, no):
		for fid, body, fl in msgs:
			self.ledger.add(Msg(fid, body, mb, None, [fl], False, self.name, from_no=no))
		self._uncertain("APPEND %s to %s" % (",".join(f for f, _b, _f in msgs), mb), no)

	def pick(self, mb):
		if not self.own[mb]:
			return None
		return self.own[mb][self.rng.choice(list(self.own[mb]))]

	def op_store(self, mb, m=None, kind=None, flags=None, silent=None):
		m = m or self.pick(mb)
		if m is None:
			return
		kind = kind or self.rng.choice(("+", "-", ""))
		flags = flags if flags is not None else self.rand_flags(3)
		silent = self.rng.random() < 0.2 if silent is None else silent
		item = "%sFLAGS%s" % (kind, ".SILENT" if silent else "")
		want = {apply_flags(kind, alt, flags) for alt in m.flags}
		if any(DELETED in w for w in want):
			m.deleted_set = True
		m.event("%s UID STORE %s (%s) sent" % (self.name, item, " ".join(flags)))
		try:
			r, t0, t1 = self.cmd(mb, "UID STORE %d %s (%s)" % (m.uid, item, " ".join(flags)),
					     what="STORE")
		except ConnLost:
			m.flags |= want
			self._uncertain("UID STORE %d %s in %s" % (m.uid, item, mb), False)
			raise
		if r.status != "OK":
			if not self.ledger.strict_no:
				m.flags |= want
				self._uncertain("UID STORE %d %s in %s" % (m.uid, item, mb), True)
			return r
		_van, fetch = _parse_untagged(r)
		got = fetch.get(m.uid, {}).get("FLAGS")
		if got is not None and not silent:
			gs = frozenset(integlib.flagset(got))
			if gs not in want:
				self.ledger.problem("%s: UID STORE %d %s %s in %s answered FLAGS %s, want %s"
						    % (self.name, m.uid, item, flags, mb, fmt_flags(gs),
						       " or ".join(fmt_flags(w) for w in want)))
			m.flags = {gs}
		else:
			m.flags = want
		m.event("%s STORE OK, flags now %s" % (self.name, [fmt_flags(x) for x in m.flags]))
		return r

	def op_copy(self, src, dst, move=False):
		m = self.pick(src)
		if m is None:
			return
		verb = "MOVE" if move else "COPY"
		if move:
			m.moved = True
		fid = m.fid
		m.event("%s UID %s to %s sent" % (self.name, verb, dst))
		try:
			r, t0, t1 = self.cmd(src, "UID %s %d %s" % (verb, m.uid, quote(dst)), what=verb)
		except ConnLost:
			self._lost_copy(m, src, dst, move, False)
			raise
		if r.status != "OK":
			if not self.ledger.strict_no:
				self._lost_copy(m, src, dst, move, True)
			return
		v = r.code_value("COPYUID")
		if v is None:
			self.ledger.problem("%s: UID %s %d %s -> %s gave no COPYUID for an existing message"
					    % (self.name, verb, m.uid, dst, r))
			return
		_uv, s_set, d_set = v.split()
		s_l, d_l = uidset(s_set), uidset(d_set)
		if s_l != [m.uid] or len(d_l) != 1:
			self.ledger.problem("%s: UID %s %d: COPYUID %s" % (self.name, verb, m.uid, v))
			return
		n = Msg(fid, m.body, dst, d_l[0], set(m.flags), True, self.name, t_ack=t1)
		n.event("%s %s from %s uid %d -> uid %d flags %s" % (self.name, verb, src, m.uid, n.uid,
								    [fmt_flags(x) for x in n.flags]))
		m.event("%s %s OK -> %s uid %d" % (self.name, verb, dst, n.uid))
		self.ledger.add(n, t0, "COPYUID of %s by %s" % (verb, self.name))
		self.own[dst][n.uid] = n
		n.deleted_set = m.deleted_set
		if move:
			self.ledger.removed(m, t1)
			self.own[src].pop(m.uid, None)
			van, _f = _parse_untagged(r)
			if m.uid not in van and (src, m.uid) not in self.ledger.vanished:
				self.ledger.problem("%s: UID MOVE %d from %s: no VANISHED for it: %r"
						    % (self.name, m.uid, src, r.untagged))
		if dst != src:
			# The session of dst learns about the new message only
			# with its next command (RFC 3501 7.4.1): a UID command
			# before that may ignore the UID, so sync it first.
			self.cmd(dst, "NOOP", what="NOOP")

	def _lost_copy(self, m, src, dst, move, no):
		n = Msg(m.fid, m.body, dst, None, set(m.flags), False, self.name, from_no=no)
		self.ledger.add(n)
		if move:
			m.certain = False
			m.group = n.group = [m, n]
			self.own[src].pop(m.uid, None)
		self._uncertain("UID %s %d %s -> %s" % ("MOVE" if move else "COPY", m.uid, src, dst), no)

	def op_expunge(self, mb, m=None):
		m = m or self.pick(mb)
		if m is None:
			return
		try:
			r = self.op_store(mb, m, "+", ["\\Deleted"], silent=True)
		except ConnLost:
			# \Deleted may be set: anyone's EXPUNGE may remove it now
			m.certain = False
			self.own[mb].pop(m.uid, None)
			raise
		if r is None or r.status != "OK":
			if not self.ledger.strict_no:
				m.certain = False
				self.own[mb].pop(m.uid, None)
			return
		m.event("%s UID EXPUNGE sent" % self.name)
		try:
			r, t0, t1 = self.cmd(mb, "UID EXPUNGE %d" % m.uid, what="UID EXPUNGE")
		except ConnLost:
			m.certain = False
			self.own[mb].pop(m.uid, None)
			self._uncertain("UID EXPUNGE %d in %s" % (m.uid, mb), False)
			raise
		if r.status != "OK":
			if not self.ledger.strict_no:
				m.certain = False
				self.own[mb].pop(m.uid, None)
				self._uncertain("UID EXPUNGE %d in %s" % (m.uid, mb), True)
			return
		self.ledger.removed(m, t1)
		m.event("%s UID EXPUNGE OK" % self.name)
		self.own[mb].pop(m.uid, None)

	def op_plain_expunge(self, mb):
		self.ledger.plain_expunge_used = True
		self.cmd(mb, "EXPUNGE", what="EXPUNGE")

	def op_noop(self, mb):
		self.cmd(mb, "NOOP", what="NOOP")

	def op_check(self, mb):
		"""NOOP, then every UID with its ENVELOPE (whose Message-ID holds
		the X-Fault-Id) and flags: which message each UID names,
		read-your-writes for own messages, and that acknowledged changes
		of every session (any node) before the NOOP are visible.  The
		bytes of a few random messages are compared too."""
		# RFC 2180 4.1.3: a FETCH may get NO [EXPUNGEISSUED] when another
		# session expunged meanwhile; a client retries after NOOP.
		for _attempt in range(10):
			r, tn0, _ = self.cmd(mb, "NOOP", what="NOOP")
			r, t0, t1 = self.cmd(mb, "UID FETCH 1:* (UID FLAGS ENVELOPE)",
					     what="FETCH", allow=("EXPUNGEISSUED",))
			if r.status != "NO" or r.code_name() != "EXPUNGEISSUED":
				break
			with self.ledger.lock:
				self.ledger.stats["FETCH NO [EXPUNGEISSUED]"] += 1
		if r.status != "OK":
			return
		_van, fetch = _parse_untagged(r)
		L = self.ledger
		for uid, it in fetch.items():
			env = it.get("ENVELOPE")
			mid = env[9] if isinstance(env, list) and len(env) == 10 else None
			m = re.match(rb"^<(.*)@fault\.example>$", mid or b"")
			if m is None:
				L.problem("%s: UID FETCH %d in %s: ENVELOPE without our Message-ID: %r"
					  % (self.name, uid, mb, env))
				continue
			L.identify(mb, uid, m.group(1).decode(), "ENVELOPE by %s" % self.name)
		sample = self.rng.sample(sorted(fetch), min(3, len(fetch)))
		if sample:
			r2, _t0, _t1 = self.cmd(mb, "UID FETCH %s (UID BODY.PEEK[])" % ",".join(map(str, sample)),
						what="FETCH", allow=("EXPUNGEISSUED",))
			if r2.status == "OK":
				for uid, it in _parse_untagged(r2)[1].items():
					# unsolicited FETCH (flag changes of others) carry no body
					if uid not in sample or "BODY[]" not in it:
						continue
					body = it.get("BODY[]")
					fid = fault_id(body)
					with L.lock:
						known = L.by_uid.get((mb, uid))
					if fid is None or (known is not None and body != known.body):
						L.problem("%s: UID FETCH %d BODY[] in %s: %s bytes, not the appended %s "
							  "(damaged message?): %r" % (
								  self.name, uid, mb, len(body or b""),
								  known.fid if known else "message", (body or b"")[:120]))
					L.identify(mb, uid, fid, "BODY[] by %s" % self.name)
		L.saw_uids(mb, t1, list(fetch), "FETCH by %s" % self.name)
		for uid, m in list(self.own[mb].items()):
			if m.deleted_set:
				continue
			it = fetch.get(uid)
			if it is None:
				L.problem("%s: own message %s (UID %d, acknowledged) missing from UID FETCH 1:* in %s"
					  % (self.name, m.fid, uid, mb))
				continue
			got = frozenset(integlib.flagset(it.get("FLAGS")))
			if got not in m.flags:
				L.problem("%s: UID %d in %s has FLAGS %s, the last acknowledged STORE gave %s"
					  % (self.name, uid, mb, fmt_flags(got),
					     " or ".join(fmt_flags(f) for f in m.flags)))
		# Others' acknowledged messages (possibly on the other node).
		with L.lock:
			cands = [m for m in L.live[mb].values()
				 if m.certain and m.t_ack is not None and m.t_ack < tn0
				 and not m.deleted_set and not m.moved and m.gone is None]
			gone = [L.by_uid[(mb, u)] for u in fetch if (mb, u) in L.by_uid]
			gone = [m for m in gone if m.gone is not None and m.gone < tn0]
		for m in cands:
			if m.uid not in fetch and not m.deleted_set and not m.moved:
				L.problem("%s: %s (UID %d in %s, acknowledged %.3fs before this session's NOOP) "
					  "not visible after NOOP" % (self.name, m.fid, m.uid, mb, tn0 - m.t_ack))
		for m in gone:
			L.problem("%s: UID %d in %s was expunged/moved (acknowledged %.3fs before this "
				  "session's NOOP) but FETCH still shows it" % (self.name, m.uid, mb, tn0 - m.gone))

	def one_op(self):
		w = self.weights
		total_own = sum(len(v) for v in self.own.values())
		kinds = list(w)
		weights = [w[k] for k in kinds]
		if total_own > self.max_own * len(MAILBOXES):
			weights = [x * (6 if k in ("expunge", "move") else 1) for k, x in zip(kinds, weights)]
		if total_own < 3:
			weights = [x * (6 if k == "append" else 1) for k, x in zip(kinds, weights)]
		op = self.rng.choices(kinds, weights)[0]
		mb = self.rng.choice(MAILBOXES)
		other = MAILBOXES[1] if mb == MAILBOXES[0] else MAILBOXES[0]
		self.ops[op] += 1
		if op == "append":
			self.op_append(mb if self.rng.random() < 0.3 else "INBOX")
		elif op == "multiappend":
			self.op_append("INBOX", self.rng.randint(2, 4))
		elif op == "store":
			self.op_store(mb)
		elif op == "copy":
			self.op_copy(mb, other if self.rng.random() < 0.8 else mb)
		elif op == "move":
			self.op_copy(mb, other, move=True)
		elif op == "expunge":
			self.op_expunge(mb)
		elif op == "plain_expunge":
			self.op_plain_expunge(mb)
		elif op == "check":
			self.op_check(mb)
		else:
			self.op_noop(mb)

	def run(self, deadline, reconnect_until=None):
		"""Random operations until deadline (monotonic) or halt; on a
		lost connection reconnects (to self.node, which the test may
		change) until reconnect_until."""
		reconnect_until = reconnect_until or deadline
		while not self.halt and time.monotonic() < deadline:
			if not self.conns:
				try:
					self.connect()
				except (ConnLost, Closed, OSError, integlib.Violation) as e:
					if time.monotonic() > reconnect_until:
						self.errors.append("could not reconnect: %s" % e)
						return
					time.sleep(0.2)
					continue
			try:
				self.one_op()
			except ConnLost:
				continue
			except Exception as e:	# a test bug or an unexpected answer
				self.ledger.problem("%s: %s: %s" % (self.name, type(e).__name__, e))
				self.close()
		self.close()

	def start(self, deadline, reconnect_until=None):
		self.thread = threading.Thread(target=self.run, args=(deadline, reconnect_until),
					       name=self.name, daemon=True)
		self.thread.start()
		return self


# ---------------------------------------------------------------- states

def read_state(node, user, mailboxes=MAILBOXES, bodies=True):
	"""{mbox: {uidvalidity, uidnext, highestmodseq, messages,
	msgs: {uid: (flags, modseq, body)}}} from a fresh session."""
	c = Conn(node.host, node.port, timeout=120 * scale())
	try:
		c.login(user)
		out = {}
		for mb in mailboxes:
			r = c.ok("STATUS ", quote(mb), " (UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES)")
			st = integlib.status_items(r)
			r = c.ok("SELECT ", quote(mb))
			n = r.number("EXISTS")
			msgs = {}
			if n:
				items = "UID FLAGS MODSEQ" + (" BODY.PEEK[]" if bodies else "")
				r = c.ok("UID FETCH 1:* (%s)" % items)
				for _s, it in r.fetch_list():
					msgs[int(it["UID"])] = (frozenset(integlib.flagset(it.get("FLAGS"))),
								int(it["MODSEQ"][0]) if it.get("MODSEQ") else None,
								it.get("BODY[]"))
			if len(msgs) != (n or 0):
				raise Fail("%r: SELECT %s said %s EXISTS, UID FETCH 1:* returned %d"
					   % (node, mb, n, len(msgs)))
			c.ok("UNSELECT")
			out[mb] = {"uidvalidity": st.get("UIDVALIDITY"), "uidnext": st.get("UIDNEXT"),
				   "highestmodseq": st.get("HIGHESTMODSEQ"), "messages": st.get("MESSAGES"),
				   "msgs": msgs}
		c.cmd("LOGOUT")
		return out
	finally:
		c.close()


def compare_states(a, b, name_a, name_b):
	"""Problems where two nodes' states differ."""
	probs = []
	for mb in sorted(set(a) | set(b)):
		x, y = a.get(mb), b.get(mb)
		if x is None or y is None:
			probs.append("%s exists on only one of %s/%s" % (mb, name_a, name_b))
			continue
		for k in ("uidvalidity", "uidnext", "highestmodseq", "messages"):
			if x[k] != y[k]:
				probs.append("%s %s: %s on %s, %s on %s" % (mb, k.upper(), x[k], name_a, y[k], name_b))
		ux, uy = set(x["msgs"]), set(y["msgs"])
		if ux != uy:
			probs.append("%s UIDs: only on %s: %s; only on %s: %s"
				     % (mb, name_a, sorted(ux - uy)[:20], name_b, sorted(uy - ux)[:20]))
		diff = []
		for u in sorted(ux & uy):
			fx, mx, bx = x["msgs"][u]
			fy, my, by = y["msgs"][u]
			if fx != fy:
				diff.append("UID %d FLAGS %s vs %s" % (u, fmt_flags(fx), fmt_flags(fy)))
			if mx != my:
				diff.append("UID %d MODSEQ %s vs %s" % (u, mx, my))
			if bx != by:
				diff.append("UID %d bytes differ (%s vs %s)" % (u, fault_id(bx), fault_id(by)))
		if diff:
			probs.append("%s on %s vs %s: %s%s" % (mb, name_a, name_b, "; ".join(diff[:10]),
							     " ... (%d)" % len(diff) if len(diff) > 10 else ""))
	return probs


def verify_state(ledger, state, who):
	"""Problems of a node's final state against the ledger, and notes
	(unknown outcomes that turned out applied).  Resets Msg.present."""
	L = ledger
	probs = []
	notes = []
	for m in L.msgs:
		m.present = None
	for mb, st in state.items():
		act = dict(st["msgs"])
		for uid, (_f, _ms, body) in act.items():
			L.identify(mb, uid, fault_id(body), "final state on %s" % who)
		missing = []
		wrong = []
		matched = set()
		unknown = []
		for m in L.msgs:
			if m.mbox != mb:
				continue
			if m.uid is None:
				unknown.append(m)
				continue
			key = (mb, m.uid)
			removed = m.gone is not None or key in L.vanished
			maybe = (not m.certain) or (m.deleted_set and L.plain_expunge_used)
			got = act.get(m.uid)
			m.present = got is not None
			if got is None:
				if not removed and not maybe:
					missing.append(m)
				continue
			matched.add(m.uid)
			if removed:
				wrong.append("UID %d (%s) was expunged/moved (acknowledged or seen VANISHED) "
					     "but is back" % (m.uid, m.fid))
			if got[2] != m.body:
				wrong.append("UID %d bytes differ from the acknowledged APPEND of %s (got %s, %d bytes)"
					     % (m.uid, m.fid, fault_id(got[2]), len(got[2] or b"")))
			if got[0] not in m.flags:
				wrong.append("UID %d (%s) FLAGS %s, acknowledged: %s" % (
					m.uid, m.fid, fmt_flags(got[0]), " or ".join(fmt_flags(f) for f in m.flags)))
			if not m.certain and m.from_no:
				notes.append("%s UID %d (%s): a command that got NO was applied" % (mb, m.uid, m.fid))
		if missing:
			probs.append("%s on %s: %d acknowledged message(s) missing: %s" % (
				mb, who, len(missing), ", ".join("UID %d (%s)" % (m.uid, m.fid) for m in missing[:15])))
		# UIDs not assigned by any acknowledged command: an unknown outcome
		# that was applied (matched by bytes), or a phantom.
		by_body = collections.defaultdict(list)
		for m in unknown:
			by_body[m.body].append(m)
		for uid in sorted(set(act) - matched):
			cands = [m for m in by_body.get(act[uid][2], []) if not m.present]
			if not cands:
				fid = fault_id(act[uid][2])
				twins = ["%s UID %d" % (m.mbox, m.uid) for m in L.msgs
					 if m.fid == fid and m.uid is not None and m.certain]
				wrong.append("UID %d (%s) was never acknowledged and matches no command with an "
					     "unknown outcome%s" % (uid, fid, (": a duplicate of %s" % ", ".join(twins[:3]))
									if twins else ""))
				continue
			m = cands[0]
			m.present = True
			if act[uid][0] not in m.flags:
				wrong.append("UID %d (%s, outcome unknown) FLAGS %s, expected %s" % (
					uid, m.fid, fmt_flags(act[uid][0]), " or ".join(fmt_flags(f) for f in m.flags)))
			if (mb, uid) in L.ident and L.ident[(mb, uid)][0] != m.fid:
				pass	# reported by identify()
			if m.from_no:
				notes.append("%s UID %d (%s): a command that got NO was applied" % (mb, uid, m.fid))
		if wrong:
			probs.append("%s on %s: %s%s" % (mb, who, "; ".join(wrong[:12]),
							 " ... (%d)" % len(wrong) if len(wrong) > 12 else ""))
		top = max([u for (b, u) in L.by_uid if b == mb] + list(act) + [0])
		if st["uidnext"] is not None and st["uidnext"] <= top:
			probs.append("%s on %s: UIDNEXT %d not above the highest UID ever assigned (%d)"
				     % (mb, who, st["uidnext"], top))
	seen_groups = set()
	for m in L.msgs:
		if m.group and id(m.group) not in seen_groups:
			seen_groups.add(id(m.group))
			src, dst = m.group
			if src.present is None and src.mbox not in state:
				continue
			n = int(bool(src.present)) + int(bool(dst.present))
			if n != 1:
				probs.append("on %s: MOVE with unknown outcome of %s from %s UID %s to %s is %s"
					     % (who, src.fid, src.mbox, src.uid, dst.mbox,
						"in both mailboxes (half applied)" if n == 2 else "in neither mailbox (lost)"))
	if L.strict_no:
		probs.extend("on %s: %s" % (who, n) for n in notes)
	return probs, notes


def check_vanished(ledger):
	"""Every UID seen in VANISHED was flagged \\Deleted or moved by its
	owner (else a message was lost)."""
	probs = []
	for (mb, uid), who in sorted(ledger.vanished.items()):
		m = ledger.by_uid.get((mb, uid))
		if m is None:
			probs.append("%s saw VANISHED %d in %s, a UID no acknowledged command assigned"
				     % (who, uid, mb))
		elif not (m.deleted_set or m.moved):
			probs.append("%s saw VANISHED %d in %s (%s), which was neither flagged \\Deleted nor moved"
				     % (who, uid, mb, m.fid))
	return probs[:20]


def check_ordering(ledger):
	"""A UID assigned by a command sent after some UID was acknowledged or
	observed in the same mailbox must be greater."""
	probs = []
	for mb, assigns in ledger.assigns.items():
		obs = sorted(ledger.observed[mb])
		assigns = sorted(assigns)
		i = 0
		best = (0, None)
		for t_send, uid, what in assigns:
			while i < len(obs) and obs[i][0] < t_send:
				if obs[i][1] > best[0]:
					best = (obs[i][1], obs[i][2])
				i += 1
			if uid <= best[0]:
				probs.append("%s: UID %d (%s) assigned to a command sent after UID %d (%s) was "
					     "acknowledged/seen" % (mb, uid, what, best[0], best[1]))
	return probs[:20]


def latency_summary(ledger):
	out = []
	for k in sorted(ledger.lat):
		v = sorted(ledger.lat[k])
		if v:
			out.append("%s n=%d p50=%.0fms p99=%.0fms max=%.0fms" % (
				k, len(v), 1000 * v[len(v) // 2], 1000 * v[min(len(v) - 1, int(len(v) * 0.99))],
				1000 * v[-1]))
	return out


def run_workers(workers, seconds, reconnect_grace=None, during=None):
	"""Starts workers for `seconds`, calls during(elapsed_fn) if given
	(in this thread), joins them; returns problems of workers that did
	not finish."""
	t0 = time.monotonic()
	deadline = t0 + seconds
	for w in workers:
		w.start(deadline, deadline + (reconnect_grace or 0))
	if during:
		during(lambda: time.monotonic() - t0)
	probs = []
	for w in workers:
		w.thread.join(max(1.0, deadline - time.monotonic()) + 120 * scale())
		if w.thread.is_alive():
			w.halt = True
			probs.append("%s did not finish (a command hangs?)" % w.name)
		probs.extend("%s: %s" % (w.name, e) for e in w.errors)
	return probs
