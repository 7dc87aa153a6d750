#!/bin/sh
# Memory of a process and all its descendants, from /proc/PID/smaps_rollup:
#
#   sh bench/proc-mem.sh PID
#
# prints {"rss_kib": .., "pss_kib": .., "procs": .., "by_name": {comm: n}}.
# RSS counts shared pages (libraries, shared mappings) once per process;
# PSS divides them among the processes sharing them, so for a forking
# server such as Dovecot the PSS sum is the fairer figure. Exit 1 when
# PID does not exist.
exec python3 - "$@" <<'EOF'
import json, os, sys

root = int(sys.argv[1])
children = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % p) as f:
            st = f.read()
    except OSError:
        continue
    ppid = int(st.rsplit(")", 1)[1].split()[1])
    children.setdefault(ppid, []).append(int(p))
if not os.path.exists("/proc/%d" % root):
    print(json.dumps({"error": "no process %d" % root}))
    sys.exit(1)
tree = [root]
i = 0
while i < len(tree):
    tree += children.get(tree[i], [])
    i += 1
rss = pss = n = 0
names = {}
for p in tree:
    try:
        with open("/proc/%d/smaps_rollup" % p) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        with open("/proc/%d/comm" % p) as f:
            c = f.read().strip()
    except OSError:
        continue  # exited meanwhile
    n += 1
    names[c] = names.get(c, 0) + 1
print(json.dumps({"rss_kib": rss, "pss_kib": pss, "procs": n, "by_name": names}))
EOF
