"""Shared pieces of the integration suite: servers under test, a raw IMAP
client for byte-exact checks, a response parser, message fixtures and
assertion helpers.  Python 3.11 standard library only.

Tests receive a Ctx (see run.py) and use:
  ctx.user()            -> User(name, password), never handed out twice
  ctx.conn(tls=False)   -> Conn, greeting read, not logged in
  ctx.login(user=None)  -> Conn logged in (fresh user when none given)
  ctx.imap(), ctx.imap_login(user=None) -> imaplib.IMAP4 objects
  ctx.server            -> the Server (kill/restart/wipe_cache)
"""

import imaplib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOCK_TIMEOUT = 30.0 * max(1.0, float(os.environ.get("KURA_TIMEOUT_SCALE", "1")),
			 10.0 if os.environ.get("KURA_VALGRIND") == "1" else 1.0)


class Fail(AssertionError):
	"""A test expectation that did not hold."""


class ServerDied(Exception):
	"""The server process is gone although nobody stopped it."""


# ---------------------------------------------------------------- helpers

def expect(cond, msg):
	if not cond:
		raise Fail(msg)


def eq(got, want, what):
	if got != want:
		raise Fail("%s: got %s, want %s" % (what, short(got), short(want)))


def short(v, limit=300):
	s = repr(v)
	if len(s) > limit:
		s = s[:limit] + "...(%d chars)" % len(s)
	return s


def free_port():
	s = socket.socket()
	s.bind(("127.0.0.1", 0))
	p = s.getsockname()[1]
	s.close()
	return p


def make_cert(outdir):
	"""Writes outdir/cert.pem and outdir/key.pem (the project's script when
	present, else the openssl CLI) and returns both paths."""
	os.makedirs(outdir, exist_ok=True)
	cert = os.path.join(outdir, "cert.pem")
	key = os.path.join(outdir, "key.pem")
	script = os.path.join(REPO, "scripts", "make-cert.sh")
	if os.path.exists(script):
		subprocess.run(["sh", script, outdir], check=True,
			       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
	if not (os.path.exists(cert) and os.path.exists(key)):
		subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
				"-nodes", "-keyout", key, "-out", cert, "-days", "30",
				"-subj", "/CN=localhost",
				"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
			       check=True, stdout=subprocess.DEVNULL,
			       stderr=subprocess.DEVNULL)
	return cert, key


def write_users(path, count=2000):
	with open(path, "w") as f:
		for i in range(1, count + 1):
			f.write("u%d:{PLAIN}pwu%d\n" % (i, i))


def client_ssl_context():
	c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
	c.check_hostname = False
	c.verify_mode = ssl.CERT_NONE
	return c


def port_open(host, port):
	try:
		s = socket.create_connection((host, port), timeout=0.5)
	except OSError:
		return False
	s.close()
	return True


def greets(host, port):
	try:
		s = socket.create_connection((host, port), timeout=1)
	except OSError:
		return False
	try:
		s.settimeout(2)
		data = b""
		while b"\n" not in data:
			d = s.recv(512)
			if not d:
				return False
			data += d
		return data.startswith(b"* OK") or data.startswith(b"* PREAUTH")
	except OSError:
		return False
	finally:
		s.close()


def timeout_scale():
	if os.environ.get("KURA_VALGRIND") == "1":
		return 10.0
	if os.environ.get("KURA_ASAN") == "1":
		return 3.0
	return float(os.environ.get("KURA_TIMEOUT_SCALE", "1"))


def tail(path, lines=15):
	try:
		with open(path, "rb") as f:
			data = f.read()
	except OSError:
		return ""
	return b"\n".join(data.splitlines()[-lines:]).decode("utf-8", "replace")


# ---------------------------------------------------------------- servers

class Server:
	"""One server process (group) on 127.0.0.1 with a plain and a TLS
	port.  Subclasses define command line, cache wiping and exit checks."""

	kind = "?"

	def __init__(self, workdir, cert, key, users_path, module="integ"):
		self.dir = workdir
		self.cert = cert
		self.key = key
		self.users_path = users_path
		self.module = module
		self.host = "127.0.0.1"
		self.port = free_port()
		self.tls_port = free_port()
		self.proc = None
		self.expected_exit = False
		self.problems = []	# crash reports collected over the module
		os.makedirs(workdir, exist_ok=True)

	# subclass hooks
	def command(self):
		raise NotImplementedError

	def environment(self):
		return dict(os.environ)

	def prepare(self):
		pass

	def wipe_cache(self):
		raise NotImplementedError

	def exit_problems(self, rc, signalled_by_us):
		return []

	@property
	def stderr_path(self):
		return os.path.join(self.dir, "stderr.log")

	def start(self):
		self.prepare()
		self.expected_exit = False
		# A killed server's listening sockets can outlive its process for
		# a moment (io_uring releases files asynchronously); connections
		# the kernel queues on them are lost.  Wait until they are gone.
		deadline = time.time() + 10
		while time.time() < deadline and (port_open(self.host, self.port) or
						  port_open(self.host, self.tls_port)):
			time.sleep(0.02)
		err = open(self.stderr_path, "ab")
		self.proc = subprocess.Popen(self.command(), env=self.environment(),
					     stdin=subprocess.DEVNULL, stdout=err,
					     stderr=err, start_new_session=True,
					     cwd=REPO)
		err.close()
		deadline = time.time() + 10.0 * max(1.0, timeout_scale() / 2)
		while time.time() < deadline:
			if self.proc.poll() is not None:
				raise ServerDied("%s exited during start with status %s: %s"
						 % (self.kind, self.proc.returncode,
						    tail(self.stderr_path, 5)
						    or tail(self.log_path, 5)))
			# Ready = a greeting on the plain port (only a live server
			# sends one) and the TLS port accepting.
			if greets(self.host, self.port) and port_open(self.host, self.tls_port):
				return
			time.sleep(0.05)
		self.kill(signal.SIGKILL)
		raise ServerDied("%s did not greet within the start timeout: %s"
				 % (self.kind, tail(self.stderr_path, 5)))

	def alive(self):
		return self.proc is not None and self.proc.poll() is None

	def unexpected_exit(self):
		"""A reason string when the process ended without being asked to."""
		if self.proc is None or self.expected_exit:
			return None
		rc = self.proc.poll()
		if rc is None:
			return None
		if rc < 0:
			why = "server crashed: killed by signal %d (%s)" % (
				-rc, signal.Signals(-rc).name)
		else:
			why = "server exited unexpectedly with status %d" % rc
		why += self.exit_problem_details(rc)
		self.expected_exit = True	# report once
		self.problems.append(why)
		return why

	def exit_problem_details(self, rc):
		t = tail(self.stderr_path, 8)
		return (" | stderr: " + t.replace("\n", " | ")) if t else ""

	def kill(self, sig=signal.SIGKILL):
		"""Sends sig to the whole process group and waits for the end."""
		if not self.alive():
			return
		self.expected_exit = True
		try:
			os.killpg(self.proc.pid, sig)
		except ProcessLookupError:
			pass
		self.proc.wait(timeout=60 * timeout_scale())

	def stop(self):
		"""SIGTERM and wait; returns a list of problems (crash, leak,
		sanitizer report, exit status)."""
		if self.proc is None:
			return []
		if not self.alive():
			self.unexpected_exit()
			return []
		self.expected_exit = True
		self.proc.send_signal(signal.SIGTERM)
		limit = 20 * timeout_scale()
		try:
			rc = self.proc.wait(timeout=limit)
		except subprocess.TimeoutExpired:
			os.killpg(self.proc.pid, signal.SIGKILL)
			self.proc.wait()
			return ["%s did not exit within %ds of SIGTERM" % (self.kind, limit)]
		finally:
			try:
				os.killpg(self.proc.pid, signal.SIGKILL)
			except (ProcessLookupError, PermissionError):
				pass
		probs = self.exit_problems(rc, True)
		self.problems.extend(probs)
		return probs

	def restart(self, sig=signal.SIGKILL, wipe_cache=False):
		self.kill(sig)
		if wipe_cache:
			self.wipe_cache()
		self.start()


class KuraServer(Server):
	kind = "kura"

	def __init__(self, *a, **kw):
		super().__init__(*a, **kw)
		self.log_path = os.path.join(self.dir, "kura.log")
		self.cache_dir = os.path.join(self.dir, "cache")
		self.valgrind = os.environ.get("KURA_VALGRIND") == "1"
		self.asan = os.environ.get("KURA_ASAN") == "1"

	def binary(self):
		b = os.environ.get("KURA_BIN")
		if not b:
			b = "build-asan/kura-imapd" if self.asan else "build/kura-imapd"
		if not os.path.isabs(b):
			b = os.path.join(REPO, b)
		return b

	def clone(self, workdir):
		"""A second node on the same store with its own cache and ports."""
		other = KuraServer(workdir, self.cert, self.key, self.users_path, self.module)
		other.store_override = self.store_spec()
		return other

	def store_spec(self):
		if getattr(self, "store_override", None):
			return self.store_override
		spec = os.environ.get("KURA_STORE")
		if not spec:
			return "fs:" + os.path.join(self.dir, "store")
		return spec.replace("{dir}", self.dir).replace("{module}", self.module)

	def command(self):
		cmd = [self.binary(),
		       "--listen", "%s:%d" % (self.host, self.port),
		       "--tls-listen", "%s:%d" % (self.host, self.tls_port),
		       "--tls-cert", self.cert, "--tls-key", self.key,
		       "--store", self.store_spec(),
		       "--cache", self.cache_dir,
		       "--users", self.users_path,
		       "--workers", "2",
		       "--plaintext-auth", "loopback",
		       "--log-file", self.log_path,
		       "--log-level", "debug"]
		if self.valgrind:
			cmd = ["valgrind", "--leak-check=full", "--error-exitcode=99",
			       "--errors-for-leak-kinds=definite",
			       "--log-file=" + os.path.join(self.dir, "valgrind.%p.log")] + cmd
		return cmd

	def environment(self):
		env = dict(os.environ)
		if self.asan:
			env["ASAN_OPTIONS"] = ("detect_leaks=1:halt_on_error=1:exitcode=23:"
					       "abort_on_error=0:detect_stack_use_after_return=1")
			env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:exitcode=24"
			env["LSAN_OPTIONS"] = "exitcode=23"
		return env

	def prepare(self):
		b = self.binary()
		if not os.access(b, os.X_OK):
			raise ServerDied("server binary %s does not exist (build it first)" % b)

	def wipe_cache(self):
		shutil.rmtree(self.cache_dir, ignore_errors=True)

	def sanitizer_reports(self):
		out = []
		for p in (self.stderr_path, self.log_path):
			try:
				with open(p, "rb") as f:
					data = f.read()
			except OSError:
				continue
			for pat in (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
				    b"runtime error:"):
				i = data.find(pat)
				if i >= 0:
					line = data[i:data.find(b"\n", i)].decode("utf-8", "replace")
					out.append("%s in %s: %s" % (pat.decode(), os.path.basename(p), line[:200]))
		return out

	def exit_problem_details(self, rc):
		s = super().exit_problem_details(rc)
		for r in self.sanitizer_reports():
			s += " | " + r
		return s

	def exit_problems(self, rc, signalled_by_us):
		probs = []
		if rc < 0:
			if rc != -signal.SIGTERM:
				probs.append("kura died by signal %d (%s) after SIGTERM%s"
					     % (-rc, signal.Signals(-rc).name,
						super().exit_problem_details(rc)))
			elif self.valgrind or self.asan:
				probs.append("kura did not handle SIGTERM (killed by it), so leak checking could not run")
		elif rc == 99 and self.valgrind:
			probs.append("valgrind reported errors or definite leaks (exit 99), see %s/valgrind.*.log" % self.dir)
		elif rc != 0:
			probs.append("kura exited with status %d after SIGTERM%s"
				     % (rc, super().exit_problem_details(rc)))
		probs.extend(self.sanitizer_reports())
		return probs


class DovecotServer(Server):
	"""A private Dovecot (Debian's dovecot-imapd) used to validate the
	suite and as a benchmark peer."""

	kind = "dovecot"

	def __init__(self, *a, **kw):
		super().__init__(*a, **kw)
		self.log_path = os.path.join(self.dir, "dovecot.log")
		self.home = os.path.join(self.dir, "home")
		self.conf = os.path.join(self.dir, "dovecot.conf")

	def clone(self, workdir):
		"""A second Dovecot on the same mail homes."""
		other = DovecotServer(workdir, self.cert, self.key, self.users_path, self.module)
		other.home = self.home
		return other

	def prepare(self):
		if not shutil.which("dovecot") and not os.path.exists("/usr/sbin/dovecot"):
			raise ServerDied("dovecot is not installed (apt-get install dovecot-imapd)")
		import pwd
		pw = pwd.getpwnam("dovecot")
		os.makedirs(self.home, exist_ok=True)
		os.chown(self.home, pw.pw_uid, pw.pw_gid)
		# dovecot's mail processes run as the dovecot user: every
		# directory above the homes must be traversable.
		d = self.dir
		while d not in ("/", ""):
			st = os.stat(d)
			if not st.st_mode & 0o001:
				os.chmod(d, st.st_mode | 0o011)
			d = os.path.dirname(d)
		# users file must be readable by the auth process (root).
		with open(self.conf, "w") as f:
			f.write(DOVECOT_CONF.format(
				base=os.path.join(self.dir, "run"), state=os.path.join(self.dir, "state"),
				log=self.log_path, cert=self.cert, key=self.key, port=self.port,
				tls_port=self.tls_port, users=self.users_path, home=self.home,
				uid=pw.pw_uid, gid=pw.pw_gid))

	def command(self):
		return [shutil.which("dovecot") or "/usr/sbin/dovecot", "-F", "-c", self.conf]

	def wipe_cache(self):
		# Dovecot's index files are its cache; dovecot-uidlist and the
		# maildir file names are its truth.
		for root, _dirs, files in os.walk(self.home):
			for fn in files:
				if fn.startswith("dovecot.index") or fn.startswith("dovecot.list.index"):
					os.unlink(os.path.join(root, fn))

	def exit_problems(self, rc, signalled_by_us):
		if rc != 0 and rc != -signal.SIGTERM:
			return ["dovecot exited with %d after SIGTERM" % rc]
		return []


DOVECOT_CONF = """
base_dir = {base}
state_dir = {state}
log_path = {log}
info_log_path = {log}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {uid}
mail_location = maildir:~/Maildir:LAYOUT=fs:INBOX=~/Maildir/INBOX
mail_max_userip_connections = 1000
default_process_limit = 500
default_client_limit = 2000
shutdown_clients = yes
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=0
  quota_max_mail_size = 40M
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil {{
    mode = 0666
  }}
}}
"""


def make_server(kind, workdir, cert, key, users_path, module):
	if kind == "dovecot":
		return DovecotServer(workdir, cert, key, users_path, module)
	return KuraServer(workdir, cert, key, users_path, module)


# ---------------------------------------------------------------- parser

class Atom(str):
	"""An IMAP atom (numbers, flags, keywords, section specs) as opposed to
	a string, which the parser returns as bytes."""


def parse(data, pos=0):
	"""Parses response data into nested lists: atoms as Atom, quoted
	strings and literals as bytes, NIL as None.  Stops at CRLF outside a
	literal.  Lenient: never raises on odd input."""
	top = []
	stack = [top]
	n = len(data)
	i = pos
	while i < n:
		c = data[i]
		if c == 0x20:
			i += 1
		elif c == 0x0D or c == 0x0A:
			break
		elif c == 0x28:	 # (
			new = []
			stack[-1].append(new)
			stack.append(new)
			i += 1
		elif c == 0x29:	 # )
			if len(stack) > 1:
				stack.pop()
			i += 1
		elif c == 0x22:	 # "
			i += 1
			out = bytearray()
			while i < n and data[i] != 0x22:
				if data[i] == 0x5C and i + 1 < n:
					i += 1
				out.append(data[i])
				i += 1
			i += 1
			stack[-1].append(bytes(out))
		elif (c == 0x7B or (c == 0x7E and i + 1 < n and data[i + 1] == 0x7B)):
			m = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(data, i)
			if not m:
				stack[-1].append(Atom(data[i:i + 1].decode("latin-1")))
				i += 1
				continue
			ln = int(m.group(1))
			stack[-1].append(bytes(data[m.end():m.end() + ln]))
			i = m.end() + ln
		else:
			j = i
			depth = 0
			while j < n:
				d = data[j]
				if d == 0x5B:
					depth += 1
				elif d == 0x5D and depth:
					depth -= 1
				elif depth == 0 and d in (0x20, 0x28, 0x29, 0x0D, 0x0A):
					break
				j += 1
			tok = data[i:j].decode("latin-1")
			stack[-1].append(None if tok.upper() == "NIL" else Atom(tok))
			i = j
	return top


STATUS_RE = re.compile(rb"^(\S+) (OK|NO|BAD|BYE|PREAUTH)(?: \[([^\]]*)\])?(?: ?)(.*?)\r?\n?$",
		       re.S | re.I)


def status_of(line):
	"""(tag, STATUS, code or None, text) of a status response line, or None."""
	m = STATUS_RE.match(line)
	if not m:
		return None
	code = m.group(3).decode("utf-8", "replace") if m.group(3) is not None else None
	return (m.group(1).decode("latin-1"), m.group(2).decode().upper(), code,
		m.group(4).decode("utf-8", "replace"))


def fetch_items(tokens):
	"""Items of one parsed '* n FETCH (...)' response as {KEY: value}."""
	out = {}
	lst = tokens[3] if len(tokens) > 3 and isinstance(tokens[3], list) else []
	for k in range(0, len(lst) - 1, 2):
		key = str(lst[k]).upper()
		out[key] = lst[k + 1]
	return out


def seqset(spec):
	"""Expands an IMAP sequence set without '*' into a list of ints."""
	out = []
	for part in str(spec).split(","):
		if ":" in part:
			a, b = part.split(":")
			a, b = int(a), int(b)
			if a > b:
				a, b = b, a
			out.extend(range(a, b + 1))
		else:
			out.append(int(part))
	return out


# ---------------------------------------------------------------- raw client

class Closed(Exception):
	"""The server closed the connection."""


class Lit:
	"""A literal argument for Conn.cmd: sync waits for '+', nonsync uses
	LITERAL+ ({n+})."""

	def __init__(self, data, nonsync=False):
		self.data = data if isinstance(data, bytes) else data.encode()
		self.nonsync = nonsync


class Result:
	def __init__(self, tag, tagged, untagged, conts):
		self.tag = tag
		self.tagged = tagged
		self.untagged = untagged
		self.conts = conts
		st = status_of(tagged)
		if st:
			_, self.status, self.code, self.text = st
		else:
			self.status, self.code, self.text = "?", None, tagged.decode("latin-1")

	def __repr__(self):
		return self.tagged.decode("utf-8", "replace").rstrip("\r\n")

	def code_name(self):
		return self.code.split()[0].upper() if self.code else None

	def parsed(self):
		return [parse(u) for u in self.untagged]

	def data(self, name):
		"""Untagged data responses named name: '* NAME ...' or '* n NAME'."""
		name = name.upper()
		out = []
		for u in self.untagged:
			t = parse(u)
			if len(t) >= 2 and isinstance(t[1], str) and t[1].upper() == name:
				out.append(t)
			elif len(t) >= 3 and isinstance(t[2], str) and t[2].upper() == name \
			     and isinstance(t[1], str) and t[1].isdigit():
				out.append(t)
		return out

	def numbers(self, name):
		"""The n of every '* n NAME' response, in order."""
		return [int(t[1]) for t in self.data(name) if t[1].isdigit()]

	def number(self, name):
		v = self.numbers(name)
		return v[-1] if v else None

	def codes(self):
		"""Response codes of untagged OK/NO/BAD lines and of the tagged
		line as (NAME, rest) tuples."""
		out = []
		for u in self.untagged + [self.tagged]:
			st = status_of(u)
			if st and st[2]:
				parts = st[2].split(None, 1)
				out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
		return out

	def code_value(self, name):
		for n, v in self.codes():
			if n == name.upper():
				return v
		return None

	def search(self):
		"""Numbers of the untagged SEARCH responses (all merged)."""
		out = []
		for t in self.data("SEARCH"):
			out.extend(int(x) for x in t[2:] if isinstance(x, str) and x.isdigit())
		return sorted(out)

	def fetches(self):
		"""{seq: items} merging every FETCH response of the command."""
		out = {}
		for u in self.untagged:
			t = parse(u)
			if len(t) >= 4 and isinstance(t[2], str) and t[2].upper() == "FETCH":
				out.setdefault(int(t[1]), {}).update(fetch_items(t))
		return out

	def fetch_list(self):
		"""[(seq, items)] for every FETCH response, unmerged, in order."""
		out = []
		for u in self.untagged:
			t = parse(u)
			if len(t) >= 4 and isinstance(t[2], str) and t[2].upper() == "FETCH":
				out.append((int(t[1]), fetch_items(t)))
		return out


class Conn:
	"""A raw IMAP connection: exact bytes in and out."""

	_tagno = 0

	def __init__(self, host, port, tls=False, timeout=SOCK_TIMEOUT, read_greeting=True):
		self.sock = socket.create_connection((host, port), timeout=timeout)
		self.sock.settimeout(timeout)
		if tls:
			self.sock = client_ssl_context().wrap_socket(self.sock)
		self.buf = b""
		self.user = None
		self.greeting = self.read_response() if read_greeting else None

	# -- bytes
	def send(self, data):
		if isinstance(data, str):
			data = data.encode()
		self.sock.sendall(data)

	def _fill(self):
		d = self.sock.recv(65536)
		if not d:
			raise Closed("server closed the connection")
		self.buf += d

	def readline(self):
		while True:
			i = self.buf.find(b"\n")
			if i >= 0:
				line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
				return line
			if len(self.buf) > 64 * 1024 * 1024:
				raise Fail("response line longer than 64 MiB")
			self._fill()

	def read_exact(self, n):
		while len(self.buf) < n:
			self._fill()
		d, self.buf = self.buf[:n], self.buf[n:]
		return d

	strict = True	# check every response against the RFC 3501 grammar

	def read_response(self):
		"""One complete response, literals included, as raw bytes."""
		line = self.readline()
		out = line
		while True:
			m = re.search(rb"\{(\d+)\}\r?\n$", line)
			if not m or line.startswith(b"+"):
				break
			out += self.read_exact(int(m.group(1)))
			line = self.readline()
			out += line
		if self.strict:
			check_response(out)
		return out

	def closed_by_server(self, wait=5.0):
		"""True when the server closes the connection within wait seconds
		(bytes it sends first are discarded)."""
		old = self.sock.gettimeout()
		self.sock.settimeout(wait)
		try:
			while True:
				d = self.sock.recv(65536)
				if not d:
					return True
		except (socket.timeout, TimeoutError):
			return False
		except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
			return True
		finally:
			try:
				self.sock.settimeout(old)
			except OSError:
				pass

	# -- commands
	@classmethod
	def next_tag(cls):
		cls._tagno += 1
		return "T%04d" % cls._tagno

	def read_until(self, tag, conts=None, untagged=None):
		untagged = [] if untagged is None else untagged
		conts = [] if conts is None else conts
		while True:
			r = self.read_response()
			if r.startswith(tag.encode() + b" "):
				return Result(tag, r, untagged, conts)
			if r.startswith(b"+"):
				conts.append(r)
			else:
				untagged.append(r)

	def cmd(self, *parts, tag=None):
		"""Sends 'tag parts...CRLF' (str/bytes pieces concatenated, Lit
		pieces as literals) and reads to the tagged response.  A sync
		literal the server refuses ends the command early."""
		tag = tag or self.next_tag()
		untagged, conts = [], []
		out = tag.encode() + b" "
		for p in parts:
			if isinstance(p, Lit):
				out += b"{%d%s}\r\n" % (len(p.data), b"+" if p.nonsync else b"")
				if p.nonsync:
					out += p.data
					continue
				self.send(out)
				out = b""
				while True:
					r = self.read_response()
					if r.startswith(b"+"):
						conts.append(r)
						break
					if r.startswith(tag.encode() + b" "):
						return Result(tag, r, untagged, conts)
					untagged.append(r)
				out = p.data
			else:
				out += p.encode() if isinstance(p, str) else p
		self.send(out + b"\r\n")
		return self.read_until(tag, conts, untagged)

	def ok(self, *parts):
		r = self.cmd(*parts)
		if r.status != "OK":
			raise Fail("%s -> %r" % (_cmd_text(parts), r))
		return r

	def starttls(self):
		r = self.cmd("STARTTLS")
		if r.status != "OK":
			raise Fail("STARTTLS -> %r" % r)
		expect(self.buf == b"", "bytes after STARTTLS OK before the handshake: %r" % self.buf)
		self.sock = client_ssl_context().wrap_socket(self.sock)
		return r

	# -- conveniences
	def login(self, user):
		r = self.cmd("LOGIN ", quote(user.name), " ", quote(user.password))
		if r.status != "OK":
			raise Fail("LOGIN %s -> %r" % (user.name, r))
		self.user = user
		return r

	def select(self, mbox="INBOX"):
		return self.ok("SELECT ", quote(mbox))

	def append(self, mbox, msg, flags=None, date=None):
		"""APPENDs with a synchronizing literal; returns the UID from
		APPENDUID (or None when the server gave none)."""
		args = ["APPEND ", quote(mbox)]
		if flags is not None:
			args.append(" (" + " ".join(flags) + ")")
		if date is not None:
			args.append(' "' + date + '"')
		args.append(" ")
		args.append(Lit(msg))
		r = self.cmd(*args)
		if r.status != "OK":
			raise Fail("APPEND to %s -> %r" % (mbox, r))
		v = r.code_value("APPENDUID")
		return int(v.split()[1]) if v else None

	def close(self):
		try:
			self.sock.close()
		except OSError:
			pass


def _cmd_text(parts):
	s = ""
	for p in parts:
		if isinstance(p, Lit):
			s += "{%d}" % len(p.data)
		else:
			s += p.decode("latin-1") if isinstance(p, bytes) else p
	return s[:200]


def quote(s):
	if isinstance(s, bytes):
		s = s.decode("latin-1")
	return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class User:
	def __init__(self, name, password):
		self.name = name
		self.password = password

	def __repr__(self):
		return self.name


# ---------------------------------------------------------------- context

class Ctx:
	"""What every test function receives."""

	def __init__(self, server, allocator):
		self.server = server
		self._alloc = allocator
		self._open = []
		self.test_name = None

	host = property(lambda self: self.server.host)
	port = property(lambda self: self.server.port)
	tls_port = property(lambda self: self.server.tls_port)
	log_path = property(lambda self: self.server.log_path)
	cert = property(lambda self: self.server.cert)
	kind = property(lambda self: self.server.kind)

	def user(self):
		return self._alloc()

	def conn(self, tls=False, read_greeting=True):
		c = Conn(self.host, self.tls_port if tls else self.port, tls=tls,
			 read_greeting=read_greeting)
		self._open.append(c)
		return c

	def login(self, user=None, tls=False):
		user = user or self.user()
		c = self.conn(tls=tls)
		c.login(user)
		return c

	def imap(self, tls=False):
		if tls:
			m = imaplib.IMAP4_SSL(self.host, self.tls_port,
					      ssl_context=client_ssl_context(),
					      timeout=SOCK_TIMEOUT)
		else:
			m = imaplib.IMAP4(self.host, self.port, timeout=SOCK_TIMEOUT)
		self._open.append(m)
		return m

	def imap_login(self, user=None, tls=False):
		user = user or self.user()
		m = self.imap(tls=tls)
		m.login(user.name, user.password)
		m.kura_user = user
		return m

	def second_server(self):
		"""Starts another node on the same store (stopped after the test)."""
		n = len(getattr(self, "_extra", [])) + 2
		srv = self.server.clone(self.server.dir + ".node%d" % n)
		srv.start()
		self._extra = getattr(self, "_extra", []) + [srv]
		return srv

	def conn_to(self, srv, tls=False):
		c = Conn(srv.host, srv.tls_port if tls else srv.port, tls=tls)
		self._open.append(c)
		return c

	def login_to(self, srv, user):
		c = self.conn_to(srv)
		c.login(user)
		return c

	def stop_extra_servers(self):
		"""Stops the extra nodes; returns their problems (crashes, leaks)."""
		probs = []
		for srv in getattr(self, "_extra", []):
			why = srv.unexpected_exit()
			if why:
				probs.append("second node: " + why)
			else:
				probs.extend("second node: " + p for p in srv.stop())
		self._extra = []
		return probs

	def cleanup(self):
		for c in self._open:
			try:
				if isinstance(c, Conn):
					c.close()
				else:
					c.shutdown()
			except Exception:
				pass
		self._open = []


# ---------------------------------------------------------------- messages

def crlf(text):
	"""Text with any line ending normalised to CRLF, as bytes."""
	if isinstance(text, str):
		text = text.encode("utf-8")
	return re.sub(rb"\r?\n", b"\r\n", text)


_msgno = [0]


def message(subject="test", body="Hello.\n", frm="Alice <alice@example.org>",
	    to="Bob <bob@example.net>", date="Mon, 02 Jan 2023 12:00:00 +0000",
	    headers=(), msgid=None):
	"""A small RFC 5322 message with CRLF line ends."""
	_msgno[0] += 1
	msgid = msgid or "<m%d.%d@integ.example>" % (_msgno[0], os.getpid())
	h = ["From: " + frm, "To: " + to, "Subject: " + subject, "Date: " + date,
	     "Message-ID: " + msgid]
	h.extend(headers)
	return crlf("\n".join(h) + "\n\n" + body)


def message_id(msg):
	m = re.search(rb"(?im)^message-id:\s*(<[^>]*>)", msg)
	return m.group(1).decode() if m else None


def imap_date(t, tz="+0000"):
	"""IMAP date-time for a unix time in UTC with the given zone label."""
	return time.strftime("%d-%b-%Y %H:%M:%S ", time.gmtime(t)) + tz


def parse_imap_date(s):
	"""Unix time of an IMAP date-time string like '17-Jul-1996 02:44:25 -0700'."""
	if isinstance(s, bytes):
		s = s.decode()
	s = s.strip()
	m = re.match(r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$", s)
	if not m:
		raise Fail("malformed date-time %r" % s)
	mon = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
	       "nov", "dec"].index(m.group(2).lower()) + 1
	import calendar
	t = calendar.timegm((int(m.group(3)), mon, int(m.group(1)), int(m.group(4)),
			     int(m.group(5)), int(m.group(6)), 0, 0, 0))
	off = (int(m.group(8)) * 3600 + int(m.group(9)) * 60) * (1 if m.group(7) == "+" else -1)
	return t - off


def flagset(v):
	"""A FLAGS value as a set of case-folded strings, without \\Recent."""
	return {str(f).lower() for f in (v or []) if str(f).lower() != "\\recent"}


def tmpdir(prefix):
	return tempfile.mkdtemp(prefix=prefix)


# ---------------------------------------------------------------- mailbox helpers

def mbox_name(v):
	"""A mailbox name token (atom, quoted string or literal) as str."""
	if v is None:
		return None
	if isinstance(v, bytes):
		return v.decode("latin-1")
	return str(v)


def list_mailboxes(c, ref="", pattern="*", cmd="LIST"):
	"""{name: (set of lower-cased attributes, delimiter)} from LIST/LSUB.
	Fails when a name comes twice."""
	r = c.cmd(cmd, " ", quote(ref), " ", quote(pattern))
	if r.status != "OK":
		raise Fail("%s %r %r -> %r" % (cmd, ref, pattern, r))
	out = {}
	for t in r.data(cmd):
		if len(t) < 5 or not isinstance(t[2], list):
			raise Fail("malformed %s response: %r" % (cmd, t))
		name = mbox_name(t[4])
		if name in out:
			raise Fail("%s %r %r returned %r twice" % (cmd, ref, pattern, name))
		out[name] = ({str(a).lower() for a in t[2]}, t[3])
	return out


def status_items(r):
	"""{ITEM: int} of the untagged STATUS response of r."""
	d = r.data("STATUS")
	if len(d) != 1 or len(d[0]) < 4 or not isinstance(d[0][3], list):
		raise Fail("want one STATUS response, got %r" % r.untagged)
	lst = d[0][3]
	return {str(lst[i]).upper(): int(lst[i + 1]) for i in range(0, len(lst) - 1, 2)}


def select_info(r):
	"""The facts of a SELECT/EXAMINE result as a dict."""
	info = {"EXISTS": r.numbers("EXISTS"), "RECENT": r.numbers("RECENT"),
		"FLAGS": [t[2] for t in r.data("FLAGS")], "codes": r.codes()}
	for name in ("UNSEEN", "UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS"):
		info[name] = [v for n, v in r.codes() if n == name]
	return info


def mutf7(s):
	"""Modified UTF-7 (RFC 3501 5.1.3) of a Unicode mailbox name."""
	import base64
	out, pend = [], []

	def flush():
		if pend:
			b = base64.b64encode("".join(pend).encode("utf-16-be")).rstrip(b"=")
			out.append("&" + b.replace(b"/", b",").decode() + "-")
			pend.clear()
	for ch in s:
		if 0x20 <= ord(ch) <= 0x7E:
			flush()
			out.append("&-" if ch == "&" else ch)
		else:
			pend.append(ch)
	flush()
	return "".join(out)


class View:
	"""A client's idea of a selected mailbox: UIDs by sequence number,
	kept up to date from EXISTS/EXPUNGE responses as RFC 3501 7.4.1
	requires a client to do."""

	def __init__(self, uids):
		self.uids = list(uids)

	def apply(self, r):
		for u in r.untagged:
			t = parse(u)
			if len(t) >= 3 and isinstance(t[2], str) and t[1].isdigit():
				n, what = int(t[1]), t[2].upper()
				if what == "EXPUNGE":
					if not 1 <= n <= len(self.uids):
						raise Fail("EXPUNGE %d outside 1..%d" % (n, len(self.uids)))
					del self.uids[n - 1]
				elif what == "EXISTS":
					if n < len(self.uids):
						raise Fail("EXISTS %d shrinks the mailbox from %d (only EXPUNGE may)"
							   % (n, len(self.uids)))
					self.uids.extend([None] * (n - len(self.uids)))
		return self

	def expunged_by(self, r):
		"""UIDs removed by the EXPUNGE responses of r (applied)."""
		before = list(self.uids)
		self.apply(r)
		gone = [u for u in before if u not in self.uids]
		return gone

	def check(self, c, what):
		"""The view must match FETCH 1:* (UID) now."""
		r = c.ok("FETCH 1:* (UID)") if self.uids else c.ok("NOOP")
		self.apply(r)
		f = r.fetches()
		got = [int(f[i]["UID"]) for i in sorted(f)] if self.uids else []
		known = [u for u in self.uids]
		if len(got) != len(known) or any(k is not None and k != g for k, g in zip(known, got)):
			raise Fail("%s: client view %r but FETCH 1:* UID says %r" % (what, known, got))
		self.uids = got
		return got


# ---------------------------------------------------------------- response grammar

FETCH_KEYS = re.compile(r"^(FLAGS|INTERNALDATE|RFC822|RFC822\.HEADER|RFC822\.TEXT|RFC822\.SIZE|ENVELOPE|"
			r"BODY|BODYSTRUCTURE|UID|MODSEQ|BODY\[[^\]]*\](<\d+>)?|BINARY\[[^\]]*\](<\d+>)?|"
			r"BINARY\.SIZE\[[^\]]*\]|EMAILID|THREADID|SAVEDATE|PREVIEW|SNIPPET|X-[A-Z0-9.-]+)$", re.I)
DATE_TIME = re.compile(rb'^[ \d]\d-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} '
		       rb'\d\d:\d\d:\d\d [+-]\d{4}$')
NUMBER_DATA = {"EXISTS", "RECENT", "EXPUNGE", "FETCH"}
NAMED_DATA = {"CAPABILITY", "FLAGS", "LIST", "LSUB", "SEARCH", "STATUS", "NAMESPACE", "ID",
	      "ENABLED", "ESEARCH", "VANISHED", "QUOTA", "QUOTAROOT", "ACL", "MYRIGHTS",
	      "LISTRIGHTS", "METADATA", "SORT", "THREAD"}


class Violation(Fail):
	"""A server response that breaks the RFC 3501 response grammar."""


def _scan(data):
	"""Checks lexical rules of one complete response: literals well formed,
	quoted strings 7-bit without CR/LF, no NUL outside literal8, balanced
	parentheses.  Returns the problem or None."""
	i, n, depth = 0, len(data), 0
	in_text = False
	while i < n:
		c = data[i]
		if c == 0:
			return "NUL byte outside a literal8"
		if c == 0x7B or (c == 0x7E and i + 1 < n and data[i + 1] == 0x7B):
			m = re.compile(rb"(~?)\{(\d+)\}\r\n").match(data, i)
			if m and (m.end() == n or True):
				ln = int(m.group(2))
				body = data[m.end():m.end() + ln]
				if len(body) != ln:
					return "literal shorter than announced"
				if not m.group(1) and b"\x00" in body:
					return "NUL byte inside a literal (not a CHAR8)"
				i = m.end() + ln
				continue
		if c == 0x22:
			j = i + 1
			while j < n and data[j] != 0x22:
				if data[j] == 0x5C:
					if j + 1 >= n or data[j + 1] not in (0x22, 0x5C):
						return "bad escape in quoted string"
					j += 2
					continue
				if data[j] >= 0x80 or data[j] in (0x0D, 0x0A, 0x00):
					return "8-bit or CR/LF/NUL byte inside a quoted string: %r" % data[i:j + 1][-40:]
				j += 1
			if j >= n:
				return "unterminated quoted string"
			i = j + 1
			continue
		if c == 0x28:
			depth += 1
		elif c == 0x29:
			depth -= 1
			if depth < 0:
				return "unbalanced ')'"
		elif c == 0x0D:
			if data[i:i + 2] != b"\r\n" or i + 2 != n:
				return "CR not followed by LF at the end"
			break
		elif c == 0x0A:
			return "bare LF"
		i += 1
	if not data.endswith(b"\r\n"):
		return "response does not end in CRLF"
	if depth != 0:
		return "unbalanced '('"
	return None


def _is_status_text(rest):
	return rest[:2].upper() in (b"OK", b"NO") or rest[:3].upper() in (b"BAD", b"BYE") or \
		rest[:7].upper() == b"PREAUTH"


def check_response(data):
	"""Raises Violation when a complete server response breaks the
	RFC 3501 grammar in a way a client would choke on."""
	if data.startswith(b"+"):
		if not data.startswith(b"+ "):
			raise Violation("continuation request without SP: %r" % data[:80])
		return
	m = re.match(rb"^(\*|[\x21-\x7e]+) ", data)
	if not m:
		raise Violation("response neither untagged, continuation nor tagged: %r" % data[:80])
	tag = m.group(1)
	rest = data[m.end():]
	st = re.match(rb"^(OK|NO|BAD|BYE|PREAUTH)( |\r\n)", rest, re.I)
	if st:
		if tag != b"*" and st.group(1).upper() in (b"BYE", b"PREAUTH"):
			raise Violation("tagged %s: %r" % (st.group(1).decode(), data[:80]))
		text = rest[st.end():] if st.group(2) == b" " else b""
		if text.startswith(b"["):
			k = text.find(b"]")
			if k < 0:
				raise Violation("response code without ']': %r" % data[:120])
			if not re.match(rb"^\[[A-Z0-9.-]+( [^\]]*)?\]( |\r\n)", text, re.I):
				raise Violation("malformed response code: %r" % data[:120])
		if b"\x00" in data:
			raise Violation("NUL in a status response")
		if not data.endswith(b"\r\n") or b"\n" in data[:-1]:
			raise Violation("status response with embedded line ends: %r" % data[:120])
		return
	if tag != b"*":
		raise Violation("tagged response that is not OK/NO/BAD: %r" % data[:80])
	prob = _scan(data)
	if prob:
		raise Violation("%s in %r" % (prob, data[:200]))
	t = parse(data)
	if len(t) < 2 or not isinstance(t[1], str):
		raise Violation("malformed untagged response %r" % data[:120])
	if t[1].isdigit():
		if len(t) < 3 or not isinstance(t[2], str) or t[2].upper() not in NUMBER_DATA:
			raise Violation("unknown numbered response %r" % data[:120])
		kind = t[2].upper()
		if kind in ("EXPUNGE", "FETCH") and int(t[1]) == 0:
			raise Violation("%s with message number 0" % kind)
		if kind == "FETCH":
			_check_fetch(t, data)
		elif len(t) != 3:
			raise Violation("trailing data after %s: %r" % (kind, data[:120]))
		return
	name = t[1].upper()
	if name not in NAMED_DATA:
		raise Violation("unknown untagged response %r" % data[:120])
	if name == "SEARCH" and not all(isinstance(x, str) and x.isdigit() and int(x) > 0 for x in t[2:]):
		raise Violation("SEARCH with non-numbers: %r" % data[:120])
	if name in ("LIST", "LSUB"):
		if len(t) != 5 or not isinstance(t[2], list) or not (t[3] is None or isinstance(t[3], bytes)):
			raise Violation("malformed %s: %r" % (name, data[:120]))
		if isinstance(t[3], bytes) and len(t[3]) != 1:
			raise Violation("%s delimiter must be one character: %r" % (name, data[:120]))
		if any(not (isinstance(a, str) and a.startswith("\\")) for a in t[2]):
			raise Violation("%s attributes must be flags: %r" % (name, data[:120]))
	if name == "STATUS":
		if len(t) != 4 or not isinstance(t[3], list) or len(t[3]) % 2:
			raise Violation("malformed STATUS: %r" % data[:120])
	if name == "FLAGS" and (len(t) != 3 or not isinstance(t[2], list)):
		raise Violation("malformed FLAGS: %r" % data[:120])


def _check_fetch(t, data):
	if len(t) != 4 or not isinstance(t[3], list) or len(t[3]) % 2:
		raise Violation("FETCH data must be one list of item/value pairs: %r" % data[:160])
	lst = t[3]
	for k in range(0, len(lst), 2):
		key, val = lst[k], lst[k + 1]
		if not isinstance(key, str) or not FETCH_KEYS.match(key):
			raise Violation("unknown FETCH item %r" % (key,))
		uk = key.upper()
		if uk in ("UID", "RFC822.SIZE") and not (isinstance(val, str) and val.isdigit()):
			raise Violation("%s must be a number: %r" % (uk, val))
		if uk == "UID" and int(val) == 0:
			raise Violation("UID 0")
		if uk == "FLAGS" and not (isinstance(val, list) and all(isinstance(f, str) for f in val)):
			raise Violation("FLAGS must be a list of atoms: %r" % (val,))
		if uk == "INTERNALDATE" and not (isinstance(val, bytes) and DATE_TIME.match(val)):
			raise Violation("INTERNALDATE %r is not a date-time string" % (val,))
		if uk == "ENVELOPE" and not (isinstance(val, list) and len(val) == 10):
			raise Violation("ENVELOPE must have 10 fields: %r" % (val,))
		if (uk.startswith("BODY[") or uk.startswith("RFC822")) and uk != "RFC822.SIZE" and \
		   not (val is None or isinstance(val, bytes)):
			raise Violation("%s must be a string or NIL: %r" % (key, val))
