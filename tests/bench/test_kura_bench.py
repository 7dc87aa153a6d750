#!/usr/bin/env python3
"""Tests kura-bench itself against a fake IMAP server.

The fake server (below, Python standard library only) answers the
commands kura-bench sends correctly, with responses split at random
points and literals in ENVELOPE, BODY[] and LIST, EXCEPT for one
deliberate fault per scenario. For each scenario the test runs
kura-bench for a couple of seconds and checks from its JSON that errors
were counted (and no ops) for exactly the faulty command type, and that
a correct server yields zero errors. It also runs the bench's own C unit
test (build/bench/test_bench_resp) when it is built.

Usage: python3 tests/bench/test_kura_bench.py [-v] [SCENARIO...]
Environment: KURA_BENCH_BIN (default build/bench/kura-bench).
Last line: "bench: N passed, M failed"; exit status 1 on any failure.
"""

import json
import os
import random
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.environ.get("KURA_BENCH_BIN") or os.path.join(REPO, "build/bench/kura-bench")
UNIT = os.path.join(os.path.dirname(BENCH), "test_bench_resp")
VERBOSE = "-v" in sys.argv

CMDS = ["connect", "login", "capability", "select", "list", "status",
        "fetch_flags", "fetch_envelope", "fetch_body", "fetch_header",
        "store", "append", "expunge", "noop", "idle", "done", "logout"]

FULL_CAPS = "IMAP4rev1 LITERAL+ UIDPLUS IDLE"


# ---------------------------------------------------------------- fake server

class Msg:
    __slots__ = ("uid", "flags", "data")

    def __init__(self, uid, data):
        self.uid = uid
        self.flags = set()
        self.data = data


class Mailbox:
    def __init__(self):
        self.uidvalidity = random.randint(1, 2 ** 31)
        self.uidnext = 1
        self.msgs = []          # ordered by UID


def quote(b):
    """An IMAP string: quoted when safe, else a literal."""
    if isinstance(b, str):
        b = b.encode()
    if re.fullmatch(rb"[\x20-\x7e]*", b) and len(b) < 60:
        return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(b) + b


def nstring(b):
    return b"NIL" if b is None else quote(b)


def header_of(data):
    i = data.find(b"\r\n\r\n")
    return data if i < 0 else data[:i + 4]


def header_field(data, name):
    value = None
    for line in re.split(rb"\r\n(?![ \t])", header_of(data)):
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower():
            value = re.sub(rb"\r\n[ \t]", b" ", v).strip()
            break
    return value


def address_list(v):
    if v is None:
        return b"NIL"
    m = re.match(rb"\s*(.*?)\s*<([^@>]+)@([^>]+)>", v)
    if m:
        name, mbox, host = m.group(1) or None, m.group(2), m.group(3)
    else:
        mbox, _, host = v.partition(b"@")
        name = None
    return b"((" + b" ".join([nstring(name), b"NIL", quote(mbox), quote(host)]) + b"))"


def envelope(data):
    frm = header_field(data, b"From")
    # the subject always goes as a literal: literals inside a list must parse
    subj = header_field(data, b"Subject") or b""
    parts = [nstring(header_field(data, b"Date")),
             b"{%d}\r\n" % len(subj) + subj,
             address_list(frm), address_list(frm), address_list(frm),
             address_list(header_field(data, b"To")),
             b"NIL", b"NIL", b"NIL",
             nstring(header_field(data, b"Message-ID"))]
    return b"(" + b" ".join(parts) + b")"


def parse_set(s, star):
    out = set()
    for part in s.split(b","):
        a, _, b = part.partition(b":")
        lo = star if a == b"*" else int(a)
        hi = lo if not b else (star if b == b"*" else int(b))
        if lo > hi:
            lo, hi = hi, lo
        if hi - lo > 10 ** 6:
            raise ValueError("set too large")
        out.update(range(lo, hi + 1))
    return out


def tokens(s):
    """Atoms, quoted strings (unescaped) and parenthesized lists (nested
    lists of tokens) of an argument string; enough for what the bench
    sends."""
    out, stack, i = [], [], 0
    cur = out
    while i < len(s):
        c = s[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            stack.append(cur)
            cur.append([])
            cur = cur[-1]
            i += 1
        elif c == b")":
            cur = stack.pop()
            i += 1
        elif c == b'"':
            j, v = i + 1, b""
            while s[j:j + 1] != b'"':
                if s[j:j + 1] == b"\\":
                    j += 1
                v += s[j:j + 1]
                j += 1
            cur.append(v)
            i = j + 1
        else:
            j = i
            while j < len(s) and s[j:j + 1] not in b" ()":
                if s[j:j + 1] == b"[":
                    j = s.index(b"]", j)
                j += 1
            cur.append(s[i:j])
            i = j
    return out


class Closed(Exception):
    pass


class Conn:
    def __init__(self, srv, sock):
        self.srv = srv
        self.sock = sock
        self.buf = b""
        self.user = None
        self.box = None
        self.view = None        # UIDs in the client's view, in order
        self.rng = random.Random(id(self))

    # -- bytes
    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def readline(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, data):
        # split at random points: the bench's reader must resume anywhere
        while data:
            n = self.rng.choice([1, 2, 7, 50, 700, len(data)])
            self.sock.sendall(data[:n])
            data = data[n:]

    def readable(self, timeout):
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    # -- state
    def fault(self, name):
        return name in self.srv.faults

    def updates(self, expunges=True):
        """EXPUNGE/EXISTS for what changed since the client last heard."""
        if self.view is None:
            return b""
        out = b""
        with self.srv.lock:
            current = [m.uid for m in self.box.msgs]
        have = set(current)
        if expunges:
            for i in range(len(self.view) - 1, -1, -1):
                if self.view[i] not in have:
                    out += b"* %d EXPUNGE\r\n" % (i + 1)
                    del self.view[i]
        top = self.view[-1] if self.view else 0
        new = [u for u in current if u > top]
        if new:
            self.view.extend(new)
            out += b"* %d EXISTS\r\n" % len(self.view)
        return out

    def msg(self, uid):
        for m in self.box.msgs:
            if m.uid == uid:
                return m
        return None

    # -- the session
    def run(self):
        caps = self.srv.caps.encode()
        try:
            self.send(b"* OK [CAPABILITY " + caps.replace(b" UIDPLUS", b"") +
                      b"] fake ready\r\n")
            while True:
                line = self.readline()
                tag, _, rest = line.partition(b" ")
                cmd, _, args = rest.partition(b" ")
                cmd = cmd.upper()
                uid = False
                if cmd == b"UID":
                    uid = True
                    cmd, _, args = args.partition(b" ")
                    cmd = cmd.upper()
                handler = getattr(self, "cmd_" + cmd.decode("ascii", "replace").lower(), None)
                if handler is None:
                    self.send(tag + b" BAD unknown command\r\n")
                    continue
                if handler(tag, args, uid) is False:
                    return
        except (Closed, OSError, ssl.SSLError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def cmd_capability(self, tag, args, uid):
        self.send(b"* CAPABILITY " + self.srv.caps.encode() + b"\r\n" + tag + b" OK done\r\n")

    def cmd_login(self, tag, args, uid):
        user, pw = tokens(args)
        if self.fault("login_no") or pw != b"pw" + user:
            self.send(tag + b" NO [AUTHENTICATIONFAILED] no\r\n")
            return
        self.user = user
        with self.srv.lock:
            self.box = self.srv.boxes.setdefault(user, Mailbox())
        if self.srv.login_caps:
            self.send(tag + b" OK [CAPABILITY " + self.srv.caps.encode() + b"] in\r\n")
        else:
            self.send(tag + b" OK in\r\n")

    def cmd_logout(self, tag, args, uid):
        if self.fault("logout_no_bye"):
            self.send(tag + b" OK bye\r\n")
        else:
            self.send(b"* BYE fake logging out\r\n" + tag + b" OK bye\r\n")
        return False

    def cmd_noop(self, tag, args, uid):
        if self.fault("noop_timeout"):
            return
        self.send(self.updates() + tag + b" OK noop\r\n")

    def cmd_list(self, tag, args, uid):
        if self.fault("list_disconnect"):
            return False
        # the mailbox name as a literal once in a while
        name = b"{5}\r\nINBOX" if self.rng.random() < 0.5 else b"INBOX"
        self.send(b'* LIST (\\HasNoChildren) "/" ' + name + b"\r\n" + tag + b" OK list\r\n")

    def cmd_status(self, tag, args, uid):
        if self.fault("status_no"):
            self.send(tag + b" NO [UNAVAILABLE] fault\r\n")
            return
        with self.srv.lock:
            n = len(self.box.msgs)
            unseen = sum(1 for m in self.box.msgs if "\\Seen" not in m.flags)
            nxt = self.box.uidnext
        self.send(b'* STATUS "INBOX" (MESSAGES %d UNSEEN %d UIDNEXT %d)\r\n' % (n, unseen, nxt)
                  + tag + b" OK status\r\n")

    def cmd_select(self, tag, args, uid):
        with self.srv.lock:
            self.view = [m.uid for m in self.box.msgs]
            v, nxt = self.box.uidvalidity, self.box.uidnext
        out = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        if not self.fault("select_no_exists"):
            out += b"* %d EXISTS\r\n" % len(self.view)
        out += b"* 0 RECENT\r\n* OK [UIDVALIDITY %d] v\r\n* OK [UIDNEXT %d] n\r\n" % (v, nxt)
        out += b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] p\r\n"
        self.send(out + tag + b" OK [READ-WRITE] selected\r\n")

    def cmd_append(self, tag, args, uid):
        m = re.search(rb"\{(\d+)(\+?)\}$", args)
        n = int(m.group(1))
        if not m.group(2):
            self.send(b"+ go ahead\r\n")
        data = self.read_exact(n)
        self.readline()
        with self.srv.lock:
            msg = Msg(self.box.uidnext, data)
            self.box.uidnext += 1
            self.box.msgs.append(msg)
            self.srv.appended.append(data)
            v = self.box.uidvalidity
        code = b""
        if "UIDPLUS" in self.srv.caps and not self.fault("append_no_appenduid"):
            code = b"[APPENDUID %d %d] " % (v, msg.uid)
        self.send(self.updates() + tag + b" OK " + code + b"appended\r\n")

    def fetch_items(self, seq, m, items, uid):
        out = []
        if uid:
            out.append(b"UID %d" % m.uid)
        for it in items:
            it = it.upper()
            if it == b"UID":
                if not uid:
                    out.append(b"UID %d" % m.uid)
            elif it == b"FLAGS":
                out.append(b"FLAGS (" + " ".join(sorted(m.flags)).encode() + b")")
            elif it == b"RFC822.SIZE":
                extra = 1 if self.fault("body_size_mismatch") else 0
                out.append(b"RFC822.SIZE %d" % (len(m.data) + extra))
            elif it == b"INTERNALDATE":
                out.append(b'INTERNALDATE "17-Jul-1996 02:44:25 -0700"')
            elif it == b"ENVELOPE":
                if not self.fault("fetch_no_envelope"):
                    out.append(b"ENVELOPE " + envelope(m.data))
            elif it == b"BODY.PEEK[]":
                out.append(b"BODY[] {%d}\r\n" % len(m.data) + m.data)
            elif it == b"BODY.PEEK[HEADER]":
                h = header_of(m.data)
                if self.fault("header_no_blank"):
                    h = h[:-2]
                out.append(b"BODY[HEADER] {%d}\r\n" % len(h) + h)
        return b"* %d FETCH (" % seq + b" ".join(out) + b")\r\n"

    def cmd_fetch(self, tag, args, uid):
        setarg, _, itemarg = args.partition(b" ")
        items = tokens(itemarg)[0] if itemarg.startswith(b"(") else [itemarg]
        out = self.updates(expunges=uid)
        if uid:
            wanted = parse_set(setarg, max(self.view) if self.view else 1)
            seqs = [i + 1 for i, u in enumerate(self.view) if u in wanted]
        else:
            wanted = parse_set(setarg, len(self.view))
            seqs = sorted(s for s in wanted if 1 <= s <= len(self.view))
            if self.fault("fetch_flags_missing") and seqs:
                seqs = seqs[:-1]
        for seq in seqs:
            with self.srv.lock:
                m = self.msg(self.view[seq - 1])
            if m is not None:
                out += self.fetch_items(seq, m, items, uid)
        self.send(out + tag + b" OK fetch\r\n")

    def cmd_store(self, tag, args, uid):
        setarg, op, flagarg = args.split(b" ", 2)
        flags = [f.decode() for f in tokens(flagarg)[0]]
        out = self.updates(expunges=uid)
        wanted = parse_set(setarg, max(self.view) if self.view else 1)
        for i, u in enumerate(self.view):
            if u not in wanted:
                continue
            with self.srv.lock:
                m = self.msg(u)
                if m is None:
                    continue
                if not self.fault("store_wrong_flags"):
                    m.flags.update(flags)
                fl = " ".join(sorted(m.flags)).encode()
            out += b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (i + 1, u, fl)
        self.send(out + tag + b" OK store\r\n")

    def cmd_expunge(self, tag, args, uid):
        wanted = parse_set(args, max(self.view) if self.view else 1) if uid else None
        if not self.fault("expunge_ignored"):
            with self.srv.lock:
                self.box.msgs = [m for m in self.box.msgs
                                 if not ("\\Deleted" in m.flags and
                                         (wanted is None or m.uid in wanted))]
        self.send(self.updates() + tag + b" OK expunged\r\n")

    def cmd_idle(self, tag, args, uid):
        if self.fault("idle_no_cont"):
            self.send(tag + b" NO fault\r\n")
            return
        self.send(b"+ idling\r\n")
        while True:
            if self.readable(0.1):
                line = self.readline()
                if line.upper() == b"DONE":
                    self.send(tag + b" OK idle done\r\n")
                else:
                    self.send(tag + b" BAD expected DONE\r\n")
                return
            upd = self.updates()
            if upd:
                self.send(upd)


class FakeServer:
    def __init__(self, faults=(), caps=FULL_CAPS, login_caps=True, tls=None):
        self.faults = set(faults)
        self.caps = caps
        self.login_caps = login_caps
        self.tls = tls
        self.lock = threading.Lock()
        self.boxes = {}
        self.appended = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1024)
        self.port = self.lsock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def accept_loop(self):
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        if self.tls is not None:
            try:
                s = self.tls.wrap_socket(s, server_side=True)
            except (OSError, ssl.SSLError):
                s.close()
                return
        Conn(self, s).run()

    def stop(self):
        self.stopped = True
        self.lsock.close()


# ---------------------------------------------------------------- harness

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        if VERBOSE:
            print("ok   " + what)
    else:
        failed += 1
        print("FAIL " + what)


def run_bench(srv, profile, duration=1.5, clients=3, extra=(), tmp=None):
    out = os.path.join(tmp, "r.json")
    if os.path.exists(out):
        os.unlink(out)
    users = clients if clients > 0 else 2
    cmd = [BENCH, "--port", str(srv.port), "--profile", profile,
           "--duration", str(duration), "--clients", str(clients),
           "--users", "u%d", "--user-count", str(users),
           "--password", "pw%s", "--prefill", "20", "--seed", "7",
           "--timeout", "5", "--json", out] + list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if VERBOSE or p.returncode != 0:
        sys.stdout.write(p.stdout)
        sys.stdout.write(p.stderr)
    if p.returncode != 0 or not os.path.exists(out):
        return None, p
    with open(out) as f:
        return json.load(f), p


def summary(r):
    return " ".join("%s=%d/%d" % (k, v["ops"], v["errors"])
                    for k, v in r["commands"].items() if v["ops"] or v["errors"])


def expect_clean(name, r, must_have, section="commands"):
    cmds = r[section] if section == "commands" else r["idle"]["commands"]
    errs = {k: v["errors"] for k, v in cmds.items() if v["errors"]}
    check(not errs, "%s: no errors (got %s; samples %s)" % (name, errs, r["error_samples"][:3]))
    for c in must_have:
        check(cmds[c]["ops"] > 0, "%s: %s has ops (%d)" % (name, c, cmds[c]["ops"]))
    for c, v in cmds.items():
        l = v["latency_us"]
        if v["ops"]:
            check(l["p50"] <= l["p90"] <= l["p99"] <= l["max"],
                  "%s: %s percentiles ordered %s" % (name, c, l))


def expect_fault(name, r, target, section="commands"):
    cmds = r[section] if section == "commands" else r["idle"]["commands"]
    check(cmds[target]["errors"] > 0, "%s: %s errors counted (%d)" % (name, target, cmds[target]["errors"]))
    check(cmds[target]["ops"] == 0, "%s: no %s ops counted (%d)" % (name, target, cmds[target]["ops"]))
    others = {k: v["errors"] for k, v in cmds.items() if k != target and v["errors"]}
    check(not others, "%s: no errors for other commands (got %s; samples %s)"
          % (name, others, r["error_samples"][:3]))


PERSISTENT_CMDS = ["connect", "login", "select", "list", "status", "fetch_flags",
                   "fetch_envelope", "fetch_body", "store", "append", "expunge", "noop"]


def scen_clean_persistent(tmp):
    srv = FakeServer()
    try:
        r, _ = run_bench(srv, "persistent", tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "clean persistent: bench ran")
    if r:
        expect_clean("clean persistent", r, PERSISTENT_CMDS)
        check(r["total"]["ops_per_s"] > 0, "clean persistent: total ops/s > 0")


def scen_clean_minimal_caps(tmp):
    # no LITERAL+ (synchronizing literals), no UIDPLUS (plain EXPUNGE, no
    # APPENDUID needed), no CAPABILITY after LOGIN (bench must ask)
    srv = FakeServer(caps="IMAP4rev1 IDLE", login_caps=False)
    try:
        r, _ = run_bench(srv, "persistent", tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "minimal caps: bench ran")
    if r:
        expect_clean("minimal caps", r, ["capability", "append", "store", "fetch_body"])


def scen_clean_login(tmp):
    srv = FakeServer()
    try:
        r, _ = run_bench(srv, "login", tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "clean login: bench ran")
    if r:
        expect_clean("clean login", r, ["connect", "login", "select", "fetch_flags", "logout"])
        check(r["commands"]["login"]["ops"] >= 10, "clean login: many LOGINs")


def scen_clean_fetch(tmp):
    srv = FakeServer()
    try:
        r, _ = run_bench(srv, "fetch", tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "clean fetch: bench ran")
    if r:
        expect_clean("clean fetch", r, ["fetch_body", "fetch_header"])
        check(r["setup"]["appended"] >= 3 * 20, "clean fetch: setup appended %d" % r["setup"]["appended"])
        check(r["setup"]["errors"] == 0, "clean fetch: setup without errors")


def scen_clean_append_mbox(tmp):
    mbox = os.path.join(tmp, "in.mbox")
    with open(mbox, "wb") as f:
        f.write(b"From a@example.org Mon Jan  1 00:00:00 2024\n"
                b"From: A <a@example.org>\nSubject: first\n\nline one\n>From the mbox\n\n"
                b"From b@example.org Mon Jan  1 00:00:00 2024\n"
                b"From: B <b@example.org>\nSubject: second\n\n" + b"x" * 5000 + b"\n\n")
    want = {b"From: A <a@example.org>\r\nSubject: first\r\n\r\nline one\r\nFrom the mbox\r\n",
            b"From: B <b@example.org>\r\nSubject: second\r\n\r\n" + b"x" * 5000 + b"\r\n"}
    srv = FakeServer()
    try:
        r, _ = run_bench(srv, "append", extra=["--mbox", mbox], tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "append --mbox: bench ran")
    if r:
        expect_clean("append --mbox", r, ["append"])
        got = set(srv.appended)
        check(got == want, "append --mbox: server got exactly the mbox messages (%d distinct)" % len(got))
        check(len(srv.appended) == r["commands"]["append"]["ops"] or
              len(srv.appended) >= r["commands"]["append"]["ops"],
              "append --mbox: ops <= messages stored")


def scen_clean_append_generated(tmp):
    srv = FakeServer()
    try:
        r, _ = run_bench(srv, "append", tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "append generated: bench ran")
    if r:
        expect_clean("append generated", r, ["append"])
        ids = [header_field(d, b"Message-ID") for d in srv.appended]
        check(all(ids) and len(set(ids)) == len(ids), "append generated: unique Message-IDs")
        check(all(b"\n" not in d.replace(b"\r\n", b"") for d in srv.appended),
              "append generated: CRLF line endings only")


def scen_clean_idle(tmp):
    srv = FakeServer()
    try:
        r, _ = run_bench(srv, "idle", clients=2, extra=["--idle-conns", "30"], tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "clean idle: bench ran")
    if r:
        expect_clean("clean idle", r, ["append"])
        expect_clean("clean idle (holders)", r, ["login", "select", "idle", "done", "logout"], section="idle")
        i = r["idle"]
        check(i["healthy"] == 30, "clean idle: 30 of 30 healthy (%d)" % i["healthy"])
        check(i["notifications"] > 0, "clean idle: notifications seen (%d)" % i["notifications"])


def scen_clean_tls(tmp):
    if not shutil.which("openssl"):
        print("skip tls: no openssl command")
        return
    key, cert = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                   capture_output=True, check=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = FakeServer(tls=ctx)
    try:
        r, _ = run_bench(srv, "persistent", extra=["--tls"], tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "clean tls: bench ran")
    if r:
        expect_clean("clean tls", r, ["login", "fetch_body", "append"])
        check(r["config"]["tls"] is True, "clean tls: config says TLS")


FAULTS = [
    # (fault, profile, command that must show the errors, extra options)
    ("fetch_no_envelope", "persistent", "fetch_envelope", []),
    ("append_no_appenduid", "persistent", "append", []),
    ("select_no_exists", "persistent", "select", []),
    ("status_no", "persistent", "status", []),
    ("body_size_mismatch", "persistent", "fetch_body", []),
    ("list_disconnect", "persistent", "list", []),
    ("store_wrong_flags", "persistent", "store", []),
    ("expunge_ignored", "persistent", "expunge", []),
    ("noop_timeout", "persistent", "noop", ["--timeout", "0.5"]),
    ("logout_no_bye", "login", "logout", []),
    ("fetch_flags_missing", "login", "fetch_flags", []),
    ("login_no", "login", "login", ["--prefill", "0"]),
    ("header_no_blank", "fetch", "fetch_header", []),
]


def scen_faults(tmp, only=None):
    for fault, profile, target, extra in FAULTS:
        if only and fault not in only:
            continue
        srv = FakeServer(faults=[fault])
        try:
            r, _ = run_bench(srv, profile, duration=1.2, extra=extra, tmp=tmp)
        finally:
            srv.stop()
        check(r is not None, "fault %s: bench ran" % fault)
        if r:
            if VERBOSE:
                print("  %s: %s" % (fault, summary(r)))
            expect_fault("fault %s" % fault, r, target)
    if only and "idle_no_cont" not in only:
        return
    srv = FakeServer(faults=["idle_no_cont"])
    try:
        r, _ = run_bench(srv, "idle", clients=1, extra=["--idle-conns", "5"], tmp=tmp)
    finally:
        srv.stop()
    check(r is not None, "fault idle_no_cont: bench ran")
    if r:
        expect_fault("fault idle_no_cont", r, "idle", section="idle")
        check(r["idle"]["healthy"] == 0, "fault idle_no_cont: no healthy idler")
        expect_clean("fault idle_no_cont (active)", r, [])


def scen_unit(tmp):
    if not os.path.exists(UNIT):
        print("skip unit: %s not built" % UNIT)
        return
    p = subprocess.run([UNIT], capture_output=True, text=True, timeout=60)
    sys.stdout.write(p.stderr)
    m = re.search(r"(\d+) passed, (\d+) failed", p.stdout)
    check(p.returncode == 0 and m is not None and m.group(2) == "0",
          "unit test_bench_resp: %s" % p.stdout.strip())


def scen_usage(tmp):
    p = subprocess.run([BENCH, "--profile", "nope"], capture_output=True, text=True)
    check(p.returncode == 2, "bad option exits 2")
    p = subprocess.run([BENCH, "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "--idle-conns" in p.stdout, "--help lists the options")
    # nobody listening: connect errors, no crash, JSON still written
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = os.path.join(tmp, "refused.json")
    p = subprocess.run([BENCH, "--port", str(port), "--duration", "0.5", "--clients", "2",
                        "--json", out], capture_output=True, text=True, timeout=60)
    ok = p.returncode == 0 and os.path.exists(out)
    if ok:
        with open(out) as f:
            r = json.load(f)
        ok = r["commands"]["connect"]["errors"] > 0 and r["total"]["ops"] == 0
    check(ok, "connection refused: counted as connect errors")


SCENARIOS = {
    "unit": scen_unit,
    "usage": scen_usage,
    "clean_persistent": scen_clean_persistent,
    "clean_minimal_caps": scen_clean_minimal_caps,
    "clean_login": scen_clean_login,
    "clean_fetch": scen_clean_fetch,
    "clean_append_mbox": scen_clean_append_mbox,
    "clean_append_generated": scen_clean_append_generated,
    "clean_idle": scen_clean_idle,
    "clean_tls": scen_clean_tls,
    "faults": scen_faults,
}


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    if not os.path.exists(BENCH):
        print("%s not built (sh bench/build.sh)" % BENCH)
        print("bench: 0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="kura-bench-test.")
    try:
        fault_names = {f[0] for f in FAULTS} | {"idle_no_cont"}
        only_faults = [a for a in args if a in fault_names]
        for name, fn in SCENARIOS.items():
            if args and name not in args and not (name == "faults" and only_faults):
                continue
            try:
                if name == "faults":
                    fn(tmp, only_faults or None)
                else:
                    fn(tmp)
            except Exception as e:  # a broken scenario is a failure, not a crash
                check(False, "%s: %r" % (name, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("bench: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
