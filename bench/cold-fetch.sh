#!/bin/sh
# The cold-cache measurement of `make bench` (bench/run-bench.sh), usable
# by hand against any IMAP server on 127.0.0.1:
#
#   sh bench/cold-fetch.sh fill --port P --user U --password PW --count N
#       APPENDs generated messages (about 1.5 KiB, distinct From, To,
#       Subject, Date, Message-ID; deterministic) to U's INBOX until it
#       holds N messages: one message per APPEND, as mail delivery does,
#       over --conns connections (8); --batch B > 1 sends MULTIAPPENDs of B
#       messages when the server advertises MULTIAPPEND. Prints a JSON
#       object.
#   sh bench/cold-fetch.sh time --port P --user U --password PW [--expect N]
#       connects, LOGIN, SELECT INBOX, UID FETCH 1:* (FLAGS ENVELOPE),
#       LOGOUT; prints a JSON object with the seconds of each step from
#       the client's side and the number of FETCH responses (must be the
#       EXISTS of SELECT, and N with --expect, else exit 1).
#
# Python 3 standard library only.
exec python3 - "$@" <<'EOF'
import argparse, json, random, re, socket, sys, threading, time

ap = argparse.ArgumentParser(prog="cold-fetch.sh")
ap.add_argument("mode", choices=["fill", "time"])
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--count", type=int, default=10000)
ap.add_argument("--expect", type=int, default=-1)
ap.add_argument("--conns", type=int, default=8)
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--timeout", type=float, default=600)
a = ap.parse_args()


class Conn:
    """A blocking IMAP client: one command at a time, literals understood."""

    def __init__(self):
        self.s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb", buffering=1 << 16)
        self.n = 0
        g = self.line()
        if not g.startswith(b"* OK"):
            raise RuntimeError("greeting: %r" % g[:200])
        self.caps = set()
        m = re.search(rb"\[CAPABILITY ([^\]]*)\]", g)
        if m:
            self.caps = set(m.group(1).upper().split())

    def line(self):
        """One response line with its literals inlined."""
        out = b""
        while True:
            l = self.f.readline()
            if not l:
                raise RuntimeError("connection closed")
            out += l
            m = re.search(rb"\{(\d+)\+?\}\r\n$", l)
            if not m:
                return out
            out += self.f.read(int(m.group(1)))

    def cmd(self, text, on_untagged=None):
        self.n += 1
        tag = b"t%d" % self.n
        self.s.sendall(tag + b" " + text + b"\r\n")
        return self.wait(tag, on_untagged)

    def wait(self, tag, on_untagged=None):
        while True:
            l = self.line()
            if l.startswith(tag + b" "):
                if not l[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError("%s: %r" % (tag.decode(), l[:300]))
                return l
            if on_untagged is not None and l.startswith(b"* "):
                on_untagged(l)
            m = re.search(rb"\[CAPABILITY ([^\]]*)\]", l)
            if m:
                self.caps = set(m.group(1).upper().split())

    def login(self):
        l = self.cmd(b"LOGIN " + q(a.user) + b" " + q(a.password))
        m = re.search(rb"\[CAPABILITY ([^\]]*)\]", l)
        if m:
            self.caps = set(m.group(1).upper().split())
        else:
            def cap(x):
                if x.upper().startswith(b"* CAPABILITY "):
                    self.caps = set(x[13:].upper().split())
            self.cmd(b"CAPABILITY", cap)

    def close(self):
        try:
            self.cmd(b"LOGOUT")
        except Exception:
            pass
        self.s.close()


def q(s):
    return b'"' + s.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo "
         "lima mike november oscar papa quebec romeo sierra tango uniform "
         "victor whiskey xray yankee zulu report meeting invoice draft "
         "release notes budget plan review").split()
NAMES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra",
         "Barbara Liskov", "Donald Knuth", "Ken Thompson", "Frances Allen",
         "John McCarthy", "Margaret Hamilton", "Niklaus Wirth", "Leslie Lamport")
MON = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
DOW = "Mon Tue Wed Thu Fri Sat Sun".split()


def message(i):
    r = random.Random(a.seed * 1000003 + i)
    frm = r.choice(NAMES)
    to = r.sample(NAMES, r.randint(1, 3))
    subj = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 7)))
    t = 1700000000 + i * 97
    tm = time.gmtime(t)
    date = "%s, %d %s %d %02d:%02d:%02d +0000" % (
        DOW[tm.tm_wday], tm.tm_mday, MON[tm.tm_mon - 1], tm.tm_year,
        tm.tm_hour, tm.tm_min, tm.tm_sec)
    addr = lambda n: '"%s" <%s@example.org>' % (n, n.split()[0].lower())
    hdr = ("From: %s\r\nTo: %s\r\nSubject: [%d] %s\r\nDate: %s\r\n"
           "Message-ID: <cold-%d-%d@bench.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\n\r\n") % (
        addr(frm), ", ".join(addr(n) for n in to), i, subj, date, a.seed, i)
    body = []
    size = 0
    target = r.randint(600, 1800)
    while size < target:
        l = " ".join(r.choice(WORDS) for _ in range(r.randint(6, 12)))
        body.append(l)
        size += len(l) + 2
    return (hdr + "\r\n".join(body) + "\r\n").encode()


def status_messages(c):
    got = [None]

    def st(l):
        m = re.search(rb"MESSAGES (\d+)", l)
        if m and l.upper().startswith(b"* STATUS"):
            got[0] = int(m.group(1))
    c.cmd(b"STATUS INBOX (MESSAGES)", st)
    if got[0] is None:
        raise RuntimeError("STATUS without MESSAGES")
    return got[0]


def fill():
    t0 = time.time()
    c = Conn()
    c.login()
    have = status_messages(c)
    need = max(0, a.count - have)
    multi = b"MULTIAPPEND" in c.caps
    litplus = b"LITERAL+" in c.caps
    c.close()
    errors = []
    lock = threading.Lock()
    jobs = list(range(have, have + need))
    step = max(1, a.batch) if multi else 1
    batches = [jobs[i:i + step] for i in range(0, len(jobs), step)]

    def worker():
        try:
            w = Conn()
            w.login()
            while True:
                with lock:
                    if not batches or errors:
                        break
                    b = batches.pop(0)
                append(w, b)
            w.close()
        except Exception as e:
            with lock:
                errors.append(str(e))

    def append(w, b):
        w.n += 1
        tag = b"t%d" % w.n
        out = [tag + b" APPEND INBOX"]
        for k, i in enumerate(b):
            m = message(i)
            if litplus:
                out.append(b" {%d+}\r\n" % len(m))
                out.append(m)
            else:
                # a synchronizing literal: wait for "+" each time
                w.s.sendall(b"".join(out) + b" {%d}\r\n" % len(m))
                out = []
                l = w.line()
                if not l.startswith(b"+"):
                    raise RuntimeError("APPEND: %r" % l[:200])
                out.append(m)
        out.append(b"\r\n")
        w.s.sendall(b"".join(out))
        w.wait(tag)

    ts = [threading.Thread(target=worker) for _ in range(max(1, a.conns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    c = Conn()
    c.login()
    final = status_messages(c)
    c.close()
    r = {"had": have, "appended": need if not errors else None,
         "messages": final, "multiappend": multi, "conns": a.conns,
         "batch": step, "seconds": round(time.time() - t0, 3),
         "errors": errors[:5]}
    print(json.dumps(r))
    if errors or final != a.count:
        sys.exit(1)


def timed():
    r = {}
    t0 = time.monotonic()
    c = Conn()
    t1 = time.monotonic()
    r["connect_s"] = t1 - t0
    c.login()
    t2 = time.monotonic()
    r["login_s"] = t2 - t1
    exists = [None]

    def sel(l):
        m = re.match(rb"\* (\d+) EXISTS", l)
        if m:
            exists[0] = int(m.group(1))
    c.cmd(b"SELECT INBOX", sel)
    t3 = time.monotonic()
    r["select_s"] = t3 - t2
    n = [0, 0]

    def fe(l):
        if re.match(rb"\* \d+ FETCH ", l):
            n[0] += 1
            if b"ENVELOPE (" in l:
                n[1] += 1
    c.cmd(b"UID FETCH 1:* (FLAGS ENVELOPE)", fe)
    t4 = time.monotonic()
    r["fetch_s"] = t4 - t3
    r["total_s"] = t4 - t0
    c.close()
    r["exists"] = exists[0]
    r["fetch_responses"] = n[0]
    r["with_envelope"] = n[1]
    for k in list(r):
        if k.endswith("_s"):
            r[k] = round(r[k], 4)
    ok = exists[0] == n[0] == n[1] and (a.expect < 0 or n[0] == a.expect)
    r["ok"] = ok
    print(json.dumps(r))
    if not ok:
        sys.exit(1)


try:
    fill() if a.mode == "fill" else timed()
except Exception as e:
    print(json.dumps({"ok": False, "error": str(e)}))
    sys.exit(1)
EOF
