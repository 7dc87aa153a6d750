#!/bin/sh
# Writes the Markdown report of a bench/run-bench.sh result directory:
#
#   sh bench/report.sh RESULT_DIR REPORT.md
#
# Reads meta.json, config.json, steps.tsv, failures.txt, crashes.txt and
# the files of each measurement (<server>-<profile>.{json,cmd},
# s3-baseline-<size>.{json,cmd}, mem-<server>*.json, cold-<server>*.json);
# anything missing shows as a failure or "n/a", never as a number.
exec python3 - "$@" <<'EOF'
import json, os, sys

out, report = sys.argv[1], sys.argv[2]
SERVERS = [("kura", "kura (fs)"), ("kura-s3", "kura (S3)"), ("dovecot", "Dovecot")]
SHORT = {"kura": "fs", "kura-s3": "S3", "dovecot": "Dovecot"}
CMDS = ["connect", "login", "capability", "select", "list", "status",
        "fetch_flags", "fetch_envelope", "fetch_body", "fetch_header", "store",
        "append", "expunge", "noop", "idle", "done", "logout"]


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read().strip()
    except OSError:
        return None


meta = load("meta.json") or {}
cfg = load("config.json") or {}
failures = [l for l in (text("failures.txt") or "").splitlines() if l.strip()]
profiles = cfg.get("profiles", "login persistent append fetch idle").split()
servers = [s for s in SERVERS if s[0] in cfg.get("servers", "kura kura-s3 dovecot").split()]
L = []
w = L.append


def f1(x):
    return "n/a" if x is None else "%.1f" % x


def f3(x):
    return "n/a" if x is None else "%.3f" % x


def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f" % (a / b)


def anchor(kind, *parts):
    return "cmd-" + "-".join([kind] + list(parts))


def cmdref(kind, label, *parts):
    return "[%s](#%s)" % (label, anchor(kind, *parts))


cmdlist = []  # (anchor, title, command text)


def addcmd(anc, title, fname):
    c = text(fname)
    cmdlist.append((anc, title, c if c else "(no command recorded: the step did not run)"))


# ---- header ----
quick = meta.get("quick")
w("# kura benchmark%s" % (" (QUICK run: `make bench-quick`, for development only)" if quick else ""))
w("")
w("Written by `%s` (bench/run-bench.sh); raw results in `%s`." % (
    "make bench-quick" if quick else "make bench", os.path.relpath(out)))
w("")
elapsed = text("elapsed.txt")
w("- Date: %s; total run time %s s." % (meta.get("date", "?"), elapsed or "?"))
w("- Machine: %s CPUs (%s), %s RAM, Linux %s." % (
    meta.get("nproc", "?"), meta.get("cpu", "?"), meta.get("memory", "?"), meta.get("kernel", "?")))
w("- Load average at start: %s; at the end: %s. The machine is shared: every "
  "server ran alone, one after the other, but other work may have run meanwhile "
  "(the load at each step is in [Steps](#steps))." % (
      " ".join(meta.get("load_start", ["?"])), text("load-end.txt") or "?"))
w("- kura: commit %s (the working tree as built in build/); %s; Ceph radosgw: %s; "
  "libs3 %s; %s." % (meta.get("kura_commit") or "?", "Dovecot " + meta.get("dovecot", "?"),
                     meta.get("radosgw") or "?", meta.get("libs3") or "?", meta.get("curl") or "?"))
ep = text("s3-endpoint.txt")
if ep:
    kind, url = ep.split(" ", 1)
    if kind == "rgw":
        w("- S3 endpoint: a private single-node Ceph RGW (tests/s3/start-rgw.sh: one mon, "
          "one memstore OSD, one radosgw on 127.0.0.1), `%s`." % url)
    else:
        w("- S3 endpoint: `%s` (KURA_BENCH_S3_URL)." % url)
w("- Settings: %s s measured after %s s warm-up per profile, %s clients, users u1..u%s, "
  "seed %s, %s idle connections (idle profile and memory), %s-message cold-cache "
  "mailbox, S3 baseline %s PUTs + %s GETs per object size at concurrency %s.%s" % (
      cfg.get("duration"), cfg.get("warmup"), cfg.get("clients"), cfg.get("users"),
      cfg.get("seed"), cfg.get("idle_conns"), cfg.get("cold_msgs"), cfg.get("base_count"),
      cfg.get("base_count"), cfg.get("clients"),
      (" Extra kura-bench options: `%s`." % cfg["extra"]) if cfg.get("extra") else ""))
w("- kura-bench runs on the same CPUs as the server under test; figures are for "
  "comparing servers measured the same way, not absolute capacities.")
w("")

w("## Failures")
w("")
if failures:
    for f in failures:
        w("- " + f)
    crashes = text("crashes.txt")
    if crashes:
        w("")
        w("Server log tails (crashes.txt):")
        w("")
        w("```")
        w(crashes[-4000:])
        w("```")
else:
    w("None: every step ran and produced its figures.")
w("")

# ---- runs ----
runs = {}
for s, _ in servers:
    for p in profiles:
        runs[(s, p)] = load("%s-%s.json" % (s, p))


def total(s, p):
    r = runs.get((s, p))
    return r["total"]["ops_per_s"] if r else None


def cmd(s, p, c):
    r = runs.get((s, p))
    return r["commands"].get(c) if r else None


w("## Summary")
w("")
w("Commands per second (all command types of the profile together, kura-bench's "
  "`total`; higher is better) and the ratio kura / Dovecot:")
w("")
hdr = "| profile | " + " | ".join("%s cmds/s" % n for _, n in servers)
sep = "|---|" + "---|" * len(servers)
have_dov = any(s == "dovecot" for s, _ in servers)
kuras = [(s, n) for s, n in servers if s != "dovecot"]
if have_dov:
    hdr += " | " + " | ".join("%s / Dovecot" % n for _, n in kuras)
    sep += "---|" * len(kuras)
w(hdr + " | commands |")
w(sep + "---|")
for p in profiles:
    row = "| %s | " % p + " | ".join(f1(total(s, p)) for s, _ in servers)
    if have_dov:
        row += " | " + " | ".join(ratio(total(s, p), total("dovecot", p)) for s, _ in kuras)
    row += " | " + " ".join(cmdref("run", SHORT[s], s, p) for s, n in servers) + " |"
    w(row)
w("")

# APPEND / raw PUT
base = {sz: load("s3-baseline-%d.json" % sz) for sz in (4096, 65536)}
app = cmd("kura-s3", "append", "append")
app_fs = cmd("kura", "append", "append")
if any(s == "kura-s3" for s, _ in servers):
    w("APPEND against the raw object store: kura-on-S3 APPENDs/s in the `append` profile "
      "divided by raw PUTs/s of the S3 baseline (same endpoint, same concurrency %s). "
      "The append profile's messages follow kura-bench's size mix (mean about 120 KiB, "
      "median about 4 KiB), and one APPEND costs kura more than one PUT (message object "
      "plus change-log entry, index snapshots now and then), so this is the share of the "
      "store's raw PUT rate that reaches IMAP clients:" % cfg.get("clients"))
    w("")
    w("| | ops/s | p50 ms | p99 ms | APPEND / this | command |")
    w("|---|---|---|---|---|---|")
    a_ops = app["ops_per_s"] if app else None
    w("| kura (S3) APPEND, append profile | %s | %s | %s | | %s |" % (
        f1(a_ops), f3(app["latency_us"]["p50"] / 1e3 if app else None),
        f3(app["latency_us"]["p99"] / 1e3 if app else None), cmdref("run", "kura-bench", "kura-s3", "append")))
    for sz in (65536, 4096):
        b = base[sz]
        put = b["put"] if b and b["put"]["ops"] else None
        w("| raw PUT %d KiB (%s) | %s | %s | %s | **%s** | %s |" % (
            sz // 1024, (b or {}).get("client", "n/a").split(" (")[0],
            f1(put["ops_per_s"] if put else None),
            f3(put["latency_us"]["p50"] / 1e3 if put else None),
            f3(put["latency_us"]["p99"] / 1e3 if put else None),
            ratio(a_ops, put["ops_per_s"] if put else None),
            cmdref("base", "s3-baseline", str(sz))))
    if app_fs:
        w("| kura (fs) APPEND, append profile, for reference | %s | %s | %s | | %s |" % (
            f1(app_fs["ops_per_s"]), f3(app_fs["latency_us"]["p50"] / 1e3),
            f3(app_fs["latency_us"]["p99"] / 1e3), cmdref("run", "kura-bench", "kura", "append")))
    w("")

# memory
mem = {}
for s, n in servers:
    before = load("mem-%s-before.json" % s)
    during = [d for d in (load("mem-%s-during-%d.json" % (s, k)) for k in (1, 2, 3))
              if d and "rss_kib" in d]
    bj = load("mem-%s.bench.json" % s)
    if not before or not during or not bj or "idle" not in bj:
        mem[s] = None
        continue
    during.sort(key=lambda d: d["rss_kib"])
    d = during[len(during) // 2]
    dp = sorted(x["pss_kib"] for x in during)[len(during) // 2]
    nconn = bj["idle"]["reached_idle"]
    mem[s] = {"before": before, "during": d, "pss_during": dp, "n": nconn,
              "req": bj["idle"]["requested"], "healthy": bj["idle"]["healthy"],
              "after": load("mem-%s-after.json" % s),
              "rss_per": (d["rss_kib"] - before["rss_kib"]) / nconn if nconn else None,
              "pss_per": (dp - before["pss_kib"]) / nconn if nconn else None}
if int(cfg.get("mem", 1)):
    w("Memory per idle connection (server memory with the connections in IDLE minus "
      "before, divided by the connections that reached IDLE; details in "
      "[Memory](#memory)):")
    w("")
    w("| server | idle connections | RSS KiB / connection | PSS KiB / connection | command |")
    w("|---|---|---|---|---|")
    for s, n in servers:
        m = mem.get(s)
        if m is None:
            w("| %s | n/a | n/a | n/a | %s |" % (n, cmdref("mem", "kura-bench", s)))
        else:
            w("| %s | %d | %s | %s | %s |" % (n, m["n"], f1(m["rss_per"]), f1(m["pss_per"]),
                                              cmdref("mem", "kura-bench", s)))
    w("")

cold = {}
cold_servers = [(s, n) for s, n in servers if s in cfg.get("cold_servers", "kura kura-s3 dovecot").split()
                or os.path.exists(os.path.join(out, "cold-%s.cmd" % s))]
for s, n in servers:
    cold[s] = {k: load("cold-%s-%s.json" % (s, k)) for k in ("fill", "warm", "cold", "again", "requests")}
if int(cfg.get("cold", 1)):
    w("Cold cache: seconds from connect to the end of `UID FETCH 1:* (FLAGS ENVELOPE)` "
      "on a %s-message INBOX right after a restart with an empty cache (kura: its cache "
      "directory deleted; Dovecot, for comparison: its index files deleted, the maildir "
      "kept); details in [Cold cache](#cold-cache):" % cfg.get("cold_msgs"))
    w("")
    w("| server | cold: total s | of which UID FETCH s | S3 requests | warm: total s | command |")
    w("|---|---|---|---|---|---|")
    for s, n in servers:
        c = cold[s]
        cc = c["cold"] if c["cold"] and c["cold"].get("ok") else None
        wm = c["warm"] if c["warm"] and c["warm"].get("ok") else None
        rq = c["requests"]
        rqs = "n/a"
        if rq:
            rqs = "%d (%s)" % (rq["total"], ", ".join("%s %d" % (k, v) for k, v in sorted(rq.items()) if k != "total"))
        elif s == "kura-s3":
            rqs = "not counted (external endpoint)" if (ep or "").startswith("external") else "n/a"
        else:
            rqs = "-"
        if s not in cfg.get("cold_servers", "").split():
            continue
        w("| %s | %s | %s | %s | %s | %s |" % (
            n, f3(cc["total_s"] if cc else None), f3(cc["fetch_s"] if cc else None), rqs,
            f3(wm["total_s"] if wm else None), cmdref("cold", "restart + cold-fetch.sh", s)))
    w("")

# ---- per profile ----
w("## Per command")
w("")
w("ops/s and p99 latency (ms) per command type, per server. Only commands a "
  "profile issued are listed; `err` is the number of failed commands (kura-bench "
  "checks every response, see bench/README.md).")
w("")
for p in profiles:
    w("### %s" % p)
    w("")
    w("| command | " + " | ".join("%s ops/s | p99 ms | err" % n for _, n in servers) + " |")
    w("|---|" + "---|---|---|" * len(servers))
    for c in CMDS:
        cells = []
        any_ = False
        for s, _ in servers:
            x = cmd(s, p, c)
            if x and (x["ops"] or x["errors"]):
                any_ = True
                cells.append("%s | %s | %d" % (f1(x["ops_per_s"]), f3(x["latency_us"]["p99"] / 1e3), x["errors"]))
            elif runs.get((s, p)) is None:
                cells.append("n/a | n/a | n/a")
            else:
                cells.append("- | - | -")
        if any_:
            w("| %s | %s |" % (c, " | ".join(cells)))
    cells = []
    for s, _ in servers:
        r = runs.get((s, p))
        cells.append("**%s** | | %d" % (f1(r["total"]["ops_per_s"]), r["total"]["errors"]) if r else "n/a | | n/a")
    w("| **total** | %s |" % " | ".join(cells))
    if p == "idle":
        cells = []
        for s, _ in servers:
            r = runs.get((s, p))
            i = r.get("idle") if r else None
            cells.append("%d of %d healthy | | %d dropped" % (i["healthy"], i["requested"], i["dropped"]) if i else "n/a | | n/a")
        w("| idle connections | %s |" % " | ".join(cells))
    w("")
    for s, n in servers:
        addcmd(anchor("run", s, p), "%s, profile %s" % (n, p), "%s-%s.cmd" % (s, p))
    w("Commands: " + ", ".join(cmdref("run", n, s, p) for s, n in servers) + ".")
    w("")

# errors reported by kura-bench
errs = []
for (s, p), r in runs.items():
    if r and (r["total"]["errors"] or r["total"]["connect_errors"] or r["setup"]["errors"]
              or (r.get("idle") or {}).get("errors")):
        errs.append("- %s / %s: %d command errors, %d connect errors, %d setup errors%s; samples: %s" % (
            s, p, r["total"]["errors"], r["total"]["connect_errors"], r["setup"]["errors"],
            (", %d idle errors" % r["idle"]["errors"]) if r.get("idle") else "",
            "; ".join("`%s`" % e for e in r.get("error_samples", [])[:5]) or "none"))
if errs:
    w("Errors counted by kura-bench (the commands were answered wrongly or not at all):")
    w("")
    L.extend(errs)
    w("")

# ---- S3 baseline ----
if int(cfg.get("baseline", 1)) and any(s == "kura-s3" for s, _ in servers):
    w("## S3 baseline")
    w("")
    w("Raw object store speed at the bench's concurrency, measured by an S3 client "
      "independent of kura. PUTs of distinct keys, then GETs of the same keys in random "
      "order (each checked for the full size), keep-alive connections; latency is "
      "from issuing the request to its completion.")
    w("")
    w("| object | op | client | ops | errors | ops/s | MiB/s | p50 ms | p99 ms | command |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for sz in (4096, 65536):
        b = base[sz]
        addcmd(anchor("base", str(sz)), "S3 baseline, %d-byte objects" % sz, "s3-baseline-%d.cmd" % sz)
        for op in ("put", "get"):
            x = b.get(op) if b else None
            if not x:
                w("| %d KiB | %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | %s |" % (
                    sz // 1024, op.upper(), cmdref("base", "command", str(sz))))
                continue
            mib = x.get("mib_per_s", x["ops_per_s"] * sz / 1048576.0)
            w("| %d KiB | %s | %s | %d | %d | %s | %s | %s | %s | %s |" % (
                sz // 1024, op.upper(), b.get("client", "?"), x["ops"], x["errors"],
                f1(x["ops_per_s"]), f1(mib), f3(x["latency_us"]["p50"] / 1e3),
                f3(x["latency_us"]["p99"] / 1e3), cmdref("base", "command", str(sz))))
    w("")

# ---- memory details ----
if int(cfg.get("mem", 1)):
    w('<a id="memory"></a>')
    w("## Memory")
    w("")
    w("Each server restarted on its data, memory read from /proc/PID/smaps_rollup of "
      "the server's process tree (bench/proc-mem.sh): before, then with the idle "
      "connections established (median of three samples a second after kura-bench "
      "reported them all in IDLE), then after they logged out. kura is one process; "
      "Dovecot is a master plus one `imap` process per connection (client_limit = 1) "
      "and `imap-login` processes. RSS counts shared pages (libraries) once per "
      "process, PSS splits them among the processes, so for Dovecot PSS is the fairer "
      "figure, for kura the two deltas agree. The per-connection figure includes "
      "what the server keeps per logged-in user (%s connections over %s users)." % (
          cfg.get("idle_conns"), cfg.get("users")))
    w("")
    w("| server | connections in IDLE (healthy) | RSS before MiB | RSS idle MiB | PSS before MiB | PSS idle MiB | processes before / idle | RSS after MiB | RSS KiB / conn | PSS KiB / conn | command |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for s, n in servers:
        addcmd(anchor("mem", s), "%s, memory per idle connection (after a restart)" % n, "mem-%s.cmd" % s)
        m = mem.get(s)
        if not m:
            w("| %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | %s |" % (n, cmdref("mem", "command", s)))
            continue
        after = m["after"]
        w("| %s | %d of %d (%d) | %.1f | %.1f | %.1f | %.1f | %d / %d | %s | %s | %s | %s |" % (
            n, m["n"], m["req"], m["healthy"], m["before"]["rss_kib"] / 1024,
            m["during"]["rss_kib"] / 1024, m["before"]["pss_kib"] / 1024, m["pss_during"] / 1024,
            m["before"]["procs"], m["during"]["procs"],
            "%.1f" % (after["rss_kib"] / 1024) if after and "rss_kib" in after else "n/a",
            f1(m["rss_per"]), f1(m["pss_per"]), cmdref("mem", "command", s)))
    w("")

# ---- cold details ----
if int(cfg.get("cold", 1)):
    w('<a id="cold-cache"></a>')
    w("## Cold cache")
    w("")
    w("The user `cold` gets %s generated messages (about 1.5 KiB each, distinct "
      "headers; `bench/cold-fetch.sh fill`, %s). Then, timed "
      "from the client (`bench/cold-fetch.sh time`: connect, LOGIN, SELECT INBOX, "
      "`UID FETCH 1:* (FLAGS ENVELOPE)`, each response checked for an ENVELOPE): "
      "*warm* with the server as it is, then the server is stopped, its cache (kura) "
      "or index files (Dovecot) deleted, it is started again and the same is timed "
      "*cold*, then *again* right after. The OS page cache is %s. S3 requests are "
      "those radosgw logged during the cold run." % (
          cfg.get("cold_msgs"),
          "one message per APPEND over 8 connections, as delivery would" if int(cfg.get("cold_batch", 1)) <= 1
          else "MULTIAPPEND of %s messages each" % cfg.get("cold_batch"),
          "dropped before the cold run (BENCH_DROP_CACHES=1)" if int(cfg.get("drop_caches", 0))
          else "not dropped (BENCH_DROP_CACHES=1 would), so the fs store and the maildir are read from memory"))
    w("")
    w("| server | fill s | warm total s | cold: connect | LOGIN | SELECT | UID FETCH | total s | FETCH responses | again total s | S3 requests (cold) | command |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s, n in servers:
        if s not in cfg.get("cold_servers", "").split():
            continue
        addcmd(anchor("fill", s), "%s, filling the cold-cache mailbox" % n, "cold-%s-fill.cmd" % s)
        addcmd(anchor("cold", s), "%s, cold-cache FETCH" % n, "cold-%s.cmd" % s)
        c = cold[s]
        fl, wm, cc, ag, rq = c["fill"], c["warm"], c["cold"], c["again"], c["requests"]
        ok = lambda x: x if x and x.get("ok", True) and "error" not in x else None
        cc, wm, ag = ok(cc), ok(wm), ok(ag)
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            n, ("%s ([cmd](#%s))" % (f1(fl.get("seconds")), anchor("fill", s))) if fl and "seconds" in fl else "n/a",
            f3(wm["total_s"] if wm else None),
            f3(cc["connect_s"] if cc else None), f3(cc["login_s"] if cc else None),
            f3(cc["select_s"] if cc else None), f3(cc["fetch_s"] if cc else None),
            f3(cc["total_s"] if cc else None), cc["fetch_responses"] if cc else "n/a",
            f3(ag["total_s"] if ag else None),
            ("%d" % rq["total"]) if rq else ("-" if s != "kura-s3" else "n/a"),
            cmdref("cold", "command", s)))
    w("")

# ---- commands ----
w("## Commands")
w("")
w("Every figure above links here. Ports are the ones the servers had in this run; "
  "result files are named after the anchors in `%s`." % os.path.relpath(out))
w("")
for anc, title, c in cmdlist:
    w('<a id="%s"></a>' % anc)
    w("**%s**" % title)
    w("")
    w("```")
    w(c)
    w("```")
    w("")

# ---- steps ----
w('<a id="steps"></a>')
w("## Steps")
w("")
w("| at s | step | load average (1, 5, 15 min) |")
w("|---|---|---|")
t0 = None
for line in (text("steps.tsv") or "").splitlines():
    parts = line.split("\t")
    if len(parts) != 3:
        continue
    t = int(parts[0])
    t0 = t if t0 is None else t0
    w("| %d | %s | %s |" % (t - t0, parts[1], parts[2]))
w("")

with open(report, "w") as f:
    f.write("\n".join(L) + "\n")
print("bench: wrote %s" % report, file=sys.stderr)
EOF
