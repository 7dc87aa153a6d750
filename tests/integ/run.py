#!/usr/bin/env python3
"""Integration test runner: starts a real server per test module, runs every
test_* function of tests/integ/test_*.py with a fresh-user context and a
per-test timeout, and prints one line per failure and a summary:

    integ: N passed, M failed

Usage: python3 tests/integ/run.py [-k PATTERN] [-x] [-v] [--server kura|dovecot]
                                  [--keep] [--timeout SECONDS]

Environment: KURA_BIN (binary, default build/kura-imapd), KURA_STORE (store
spec; "{dir}" and "{module}" are replaced by the module's work directory and
name), KURA_VALGRIND=1, KURA_ASAN=1 (binary build-asan/kura-imapd),
KURA_TIMEOUT_SCALE (multiplies timeouts).
"""

import argparse
import fnmatch
import importlib.util
import inspect
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import integlib  # noqa: E402


class TestTimeout(Exception):
	pass


def _on_alarm(signum, frame):
	raise TestTimeout("test timed out")


def discover(pattern):
	mods = []
	for fn in sorted(os.listdir(HERE)):
		if not (fn.startswith("test_") and fn.endswith(".py")):
			continue
		name = fn[:-3]
		spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, fn))
		mod = importlib.util.module_from_spec(spec)
		try:
			spec.loader.exec_module(mod)
		except Exception as e:
			mods.append((name, None, "cannot import: %s: %s" % (type(e).__name__, e)))
			continue
		tests = [f for n, f in vars(mod).items()
			 if n.startswith("test_") and inspect.isfunction(f)
			 and f.__module__ == mod.__name__]
		tests.sort(key=lambda f: f.__code__.co_firstlineno)
		if pattern:
			tests = [f for f in tests if _match(pattern, "%s::%s" % (name, f.__name__))]
		if tests:
			mods.append((name, mod, tests))
	return mods


def _match(pattern, full):
	if any(c in pattern for c in "*?["):
		return fnmatch.fnmatch(full, pattern) or fnmatch.fnmatch(full.split("::")[1], pattern)
	return pattern in full


def one_line(s, limit=1500):
	s = " | ".join(x.strip() for x in str(s).splitlines() if x.strip())
	return s if len(s) <= limit else s[:limit] + " ..."


class Runner:
	def __init__(self, args):
		self.args = args
		self.passed = 0
		self.failed = 0
		self.stop_now = False
		self.base = args.tmp or tempfile.mkdtemp(prefix="kura-integ-")
		os.makedirs(self.base, exist_ok=True)
		os.chmod(self.base, 0o755)
		self.cert, self.key = integlib.make_cert(os.path.join(self.base, "tls"))
		os.chmod(os.path.join(self.base, "tls"), 0o755)
		for p in (self.cert, self.key):
			os.chmod(p, 0o644)
		self.users = os.path.join(self.base, "users")
		integlib.write_users(self.users, 2000)
		self.next_user = 1

	def alloc_user(self):
		if self.next_user > 2000:
			raise integlib.Fail("out of test users (u1..u2000 all handed out)")
		n = self.next_user
		self.next_user += 1
		return integlib.User("u%d" % n, "pwu%d" % n)

	def fail(self, name, why):
		self.failed += 1
		print("FAIL %s: %s" % (name, one_line(why)), flush=True)
		if self.args.x:
			self.stop_now = True

	def run_module(self, name, mod, tests):
		if mod is None:
			self.fail(name, tests)
			return
		workdir = os.path.join(self.base, name)
		# A fresh store per run: users u1.. are handed out again.
		shutil.rmtree(workdir, ignore_errors=True)
		server = integlib.make_server(self.args.server, workdir, self.cert, self.key,
					      self.users, name)
		ctx = integlib.Ctx(server, self.alloc_user)
		try:
			server.start()
		except Exception as e:
			for t in tests:
				self.fail("%s::%s" % (name, t.__name__), "server did not start: %s" % e)
			return
		if self.args.v:
			print("# %s: %s on ports %d/%d, dir %s" % (name, server.kind, server.port,
							      server.tls_port, workdir), flush=True)
		try:
			scale = integlib.timeout_scale()
			for t in tests:
				if self.stop_now:
					break
				full = "%s::%s" % (name, t.__name__)
				if not server.alive():
					server.unexpected_exit()	# reported with the test that saw it
					try:
						server.start()
					except Exception as e:
						self.fail(full, "server could not be restarted: %s" % e)
						continue
				ctx.test_name = full
				limit = getattr(t, "timeout", self.args.timeout) * scale
				err = None
				t0 = time.time()
				signal.signal(signal.SIGALRM, _on_alarm)
				signal.setitimer(signal.ITIMER_REAL, limit)
				try:
					t(ctx)
				except TestTimeout:
					err = "timed out after %ds" % limit
				except integlib.Fail as e:
					err = str(e) + self._where(e)
				except Exception as e:
					err = "%s: %s%s" % (type(e).__name__, e, self._where(e))
					if self.args.v:
						traceback.print_exc()
				finally:
					signal.setitimer(signal.ITIMER_REAL, 0)
				try:
					ctx.cleanup()
				except Exception:
					pass
				extra = ctx.stop_extra_servers()
				if extra:
					err = (err + " || " if err else "") + "; ".join(extra)
				# Give a crashing server a moment to be noticed.
				died = server.unexpected_exit()
				if died is None:
					time.sleep(0.01)
					died = server.unexpected_exit()
				if died:
					err = (err + " || " if err else "") + died
				if err:
					self.fail(full, err)
				else:
					self.passed += 1
					if self.args.v:
						print("ok   %s (%.1fs)" % (full, time.time() - t0), flush=True)
		except BaseException:
			# Interrupted (Ctrl-C, SIGTERM): leave no server behind.
			ctx.stop_extra_servers()
			server.kill(signal.SIGKILL)
			raise
		try:
			probs = server.stop()
		except Exception as e:
			probs = ["stopping the server failed: %s" % e]
		for p in probs:
			self.fail("%s::<server>" % name, p)

	@staticmethod
	def _where(e):
		tb = traceback.extract_tb(e.__traceback__)
		for fr in reversed(tb):
			if os.path.basename(fr.filename).startswith("test_"):
				return " (%s:%d)" % (os.path.basename(fr.filename), fr.lineno)
		return ""

	def run(self):
		mods = discover(self.args.k)
		for name, mod, tests in mods:
			if self.stop_now:
				break
			self.run_module(name, mod, tests)
		print("integ: %d passed, %d failed" % (self.passed, self.failed), flush=True)
		if self.failed == 0 and not self.args.keep and not self.args.tmp:
			shutil.rmtree(self.base, ignore_errors=True)
		elif self.failed:
			print("# work directory kept: %s" % self.base, file=sys.stderr)
		return 1 if self.failed else 0


def _on_term(signum, frame):
	raise KeyboardInterrupt("terminated by signal %d" % signum)


def main():
	signal.signal(signal.SIGTERM, _on_term)
	ap = argparse.ArgumentParser(description="kura integration tests")
	ap.add_argument("-k", metavar="PATTERN", help="run tests whose module::name contains PATTERN (or matches a glob)")
	ap.add_argument("-x", action="store_true", help="stop at the first failure")
	ap.add_argument("-v", action="store_true", help="print passing tests and tracebacks")
	ap.add_argument("--server", choices=["kura", "dovecot"], default="kura")
	ap.add_argument("--keep", action="store_true", help="keep the work directory")
	ap.add_argument("--tmp", help="work directory (default: a new one in $TMPDIR)")
	ap.add_argument("--timeout", type=float, default=60.0, help="per-test timeout in seconds")
	args = ap.parse_args()
	os.chdir(integlib.REPO)
	sys.exit(Runner(args).run())


if __name__ == "__main__":
	main()
