#!/usr/bin/env python3
"""Fault test runner: runs every test_* function of tests/fault/test_*.py
against kura-imapd nodes on the S3 store of KURA_S3_URL (a key prefix per
test), prints one line per failure, measurement lines starting with '#',
and as its last line:

    fault: N passed, M failed

Usage: python3 tests/fault/run.py [-k PATTERN] [-x] [-v] [--keep]

Environment:
  KURA_S3_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
        the S3 store (tests/s3/start-rgw.sh prints them); when
        KURA_S3_URL is unset the runner starts a private Ceph RGW itself
  KURA_BIN            server binary (default build/kura-imapd)
  KURA_ASAN=1         build-asan/kura-imapd, timeouts x3
  KURA_FAULT_LOAD_SECONDS   length of the two-node load (default 60)
  KURA_FAULT_MESSAGES       size of the cold-node mailbox (default 10000)
  KURA_TIMEOUT_SCALE  multiplies timeouts
  KURA_FAULT_EXTRA_ARGS     more kura-imapd arguments for every node
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
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import faultlib  # noqa: E402
import integlib  # noqa: E402  (put on the path by faultlib)


class TestTimeout(Exception):
	pass


def _on_alarm(signum, frame):
	raise TestTimeout("test timed out")


def one_line(s, limit=3000):
	s = " | ".join(x.strip() for x in str(s).splitlines() if x.strip())
	return s if len(s) <= limit else s[:limit] + " ..."


class Ctx:
	"""What every fault test receives."""

	def __init__(self, runner, module, name):
		self.runner = runner
		self.module = module
		self.name = name
		self.dir = os.path.join(runner.base, "%s.%s" % (module, name))
		os.makedirs(self.dir, exist_ok=True)
		self.cert, self.key, self.users = runner.cert, runner.key, runner.users
		self.s3_url = os.environ["KURA_S3_URL"]
		self.prefix = "fault-%s/%s" % (runner.run_id, name)
		self.nodes = []
		self.workers = []
		self.proxies = []
		self.cleanups = []
		self.notes = []
		self.verbose = runner.args.v

	def store(self, url=None, sub=""):
		"""The store spec of this test: URL/fault-RUN/TEST[/sub]."""
		return "%s/%s%s" % (url or self.s3_url, self.prefix, "/" + sub if sub else "")

	def user(self):
		return self.runner.alloc_user()

	def node(self, name, store=None, extra_args=(), start=True, env=None):
		n = faultlib.Node(os.path.join(self.dir, name), self.cert, self.key, self.users,
				  store or self.store(), name, extra_args)
		if env:
			n.env_extra = dict(env)
		self.nodes.append(n)
		if start:
			n.start()
		return n

	def note(self, text):
		line = "# %s: %s" % (self.name, text)
		self.notes.append(line)
		print(line, flush=True)

	def log(self, text):
		if self.verbose:
			print("#   %s %s" % (time.strftime("%H:%M:%S"), text), flush=True)

	def cleanup(self):
		"""Stops workers, proxies and nodes; returns problems (crashes,
		sanitizer reports, bad exit status)."""
		probs = []
		for w in self.workers:
			w.halt = True
			w.close()
		for n in self.nodes:
			why = n.unexpected_exit()
			if why:
				probs.append("%r: %s" % (n, why))
			else:
				try:
					probs.extend("%r: %s" % (n, p) for p in n.stop())
				except Exception as e:
					probs.append("%r: stop failed: %s" % (n, e))
		for p in self.proxies:
			p.stop()
		for fn in reversed(self.cleanups):
			try:
				fn()
			except Exception as e:
				probs.append("cleanup: %s" % e)
		return probs


class Runner:
	def __init__(self, args):
		self.args = args
		self.passed = 0
		self.failed = 0
		self.stop_now = False
		self.base = tempfile.mkdtemp(prefix="kura-fault-")
		self.run_id = uuid.uuid4().hex[:10]
		tls = os.path.join(self.base, "tls")
		self.cert, self.key = integlib.make_cert(tls)
		self.users = os.path.join(self.base, "users")
		integlib.write_users(self.users, 2000)
		self.next_user = 1
		self.rgw = None

	def alloc_user(self):
		if self.next_user > 2000:
			raise integlib.Fail("out of test users")
		n = self.next_user
		self.next_user += 1
		return integlib.User("u%d" % n, "pwu%d" % n)

	def fail(self, name, why):
		self.failed += 1
		print("FAIL %s: %s" % (name, one_line(why)), flush=True)
		if self.args.x:
			self.stop_now = True

	def discover(self):
		out = []
		for fn in sorted(os.listdir(HERE)):
			if not (fn.startswith("test_") and fn.endswith(".py")):
				continue
			name = fn[:-3]
			spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, fn))
			mod = importlib.util.module_from_spec(spec)
			try:
				spec.loader.exec_module(mod)
			except Exception as e:
				out.append((name, None, "cannot import: %s: %s" % (type(e).__name__, e)))
				continue
			tests = [f for n, f in vars(mod).items()
				 if n.startswith("test_") and inspect.isfunction(f)
				 and f.__module__ == mod.__name__]
			tests.sort(key=lambda f: f.__code__.co_firstlineno)
			if self.args.k:
				tests = [f for f in tests if self._match("%s::%s" % (name, f.__name__))]
			if tests:
				out.append((name, mod, tests))
		return out

	def _match(self, full):
		for p in self.args.k.split(","):
			if any(c in p for c in "*?["):
				if fnmatch.fnmatch(full, p) or fnmatch.fnmatch(full.split("::")[1], p):
					return True
			elif p in full:
				return True
		return False

	def run_test(self, mod_name, mod, t):
		full = "%s::%s" % (mod_name, t.__name__)
		ctx = Ctx(self, mod_name, t.__name__)
		limit = getattr(t, "timeout", 120) * faultlib.scale()
		err = None
		t0 = time.time()
		signal.signal(signal.SIGALRM, _on_alarm)
		signal.setitimer(signal.ITIMER_REAL, limit)
		try:
			t(ctx)
		except (KeyboardInterrupt, SystemExit):
			signal.setitimer(signal.ITIMER_REAL, 0)
			ctx.cleanup()
			raise
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
			probs = ctx.cleanup()
		except Exception as e:
			probs = ["cleanup failed: %s" % e]
		if probs:
			err = (err + " || " if err else "") + "; ".join(probs)
		if err:
			self.fail(full, err)
			print("# %s: work directory %s" % (full, ctx.dir), file=sys.stderr)
		else:
			self.passed += 1
			if self.args.v:
				print("ok   %s (%.1fs)" % (full, time.time() - t0), flush=True)

	@staticmethod
	def _where(e):
		for fr in reversed(traceback.extract_tb(e.__traceback__)):
			if os.path.basename(fr.filename).startswith("test_"):
				return " (%s:%d)" % (os.path.basename(fr.filename), fr.lineno)
		return ""

	def run(self):
		t0 = time.time()
		try:
			if not os.environ.get("KURA_S3_URL"):
				print("# KURA_S3_URL not set: starting a private Ceph RGW", flush=True)
				self.rgw = faultlib.PrivateRgw(os.path.join(self.base, "rgw")).start()
				os.environ.update(self.rgw.env)
			mods = self.discover()
			for name, mod, tests in mods:
				if mod is None:
					self.fail(name, tests)
					continue
				try:
					for t in tests:
						if self.stop_now:
							break
						self.run_test(name, mod, t)
				finally:
					td = getattr(mod, "teardown_module", None)
					if td:
						try:
							td()
						except Exception as e:
							self.fail("%s::teardown_module" % name, e)
		finally:
			if self.rgw:
				self.rgw.stop()
		print("# fault suite took %.0fs" % (time.time() - t0), flush=True)
		print("fault: %d passed, %d failed" % (self.passed, self.failed), flush=True)
		if self.failed == 0 and not self.args.keep:
			shutil.rmtree(self.base, ignore_errors=True)
		else:
			print("# work directory kept: %s" % self.base, file=sys.stderr)
		return 1 if self.failed else 0


def _on_term(signum, frame):
	raise KeyboardInterrupt("terminated by signal %d" % signum)


def main():
	signal.signal(signal.SIGTERM, _on_term)
	ap = argparse.ArgumentParser(description="kura fault tests (S3 backend)")
	ap.add_argument("-k", metavar="PATTERN", help="run tests whose module::name contains PATTERN (or matches a glob); several separated by commas")
	ap.add_argument("-x", action="store_true", help="stop at the first failure")
	ap.add_argument("-v", action="store_true", help="progress lines and tracebacks")
	ap.add_argument("--keep", action="store_true", help="keep the work directory")
	args = ap.parse_args()
	os.chdir(integlib.REPO)
	sys.exit(Runner(args).run())


if __name__ == "__main__":
	main()
