#!/bin/sh
# Fallback raw S3 baseline with the curl command line tool (SigV4, curl's
# --aws-sigv4), for endpoints that refuse libs3's signature V2 (AWS S3
# regions opened after 2014, buckets created since 2020). Same shape of
# JSON as s3-baseline (bench/s3_baseline.c): "put" and "get" objects with
# ops, errors, ops_per_s and latency_us percentiles.
#
#   sh bench/s3-curl-baseline.sh --url http://HOST:PORT/BUCKET --size 4096 \
#       --concurrency 20 --count 1000 [--region us-east-1] [--json FILE]
#
# One `curl --parallel --parallel-max C` per phase (keep-alive connections
# shared by the transfers); ops/s is requests over the wall time of that
# curl process (including its start, a few ms), latency is curl's
# time_total of each transfer. Keys: AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN is sent when set);
# KURA_S3_CA_FILE, when set, verifies the server. The objects are deleted
# afterwards (not measured).
exec python3 - "$@" <<'EOF'
import argparse, json, os, random, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser(prog="s3-curl-baseline.sh")
ap.add_argument("--url", required=True)
ap.add_argument("--size", type=int, default=4096)
ap.add_argument("--concurrency", type=int, default=20)
ap.add_argument("--count", type=int, default=1000)
ap.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")
ap.add_argument("--prefix", default="s3-curl-baseline")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--json")
a = ap.parse_args()
key = os.environ.get("AWS_ACCESS_KEY_ID")
secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
if not key or not secret:
    sys.exit("s3-curl-baseline: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set")
tmp = tempfile.mkdtemp(prefix="s3-curl-")
body = os.path.join(tmp, "body")
with open(body, "wb") as f:
    f.write(random.Random(a.seed).randbytes(a.size))
base = a.url.rstrip("/")


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def phase(method, keys):
    cfg = os.path.join(tmp, "cfg")
    with open(cfg, "w") as f:
        f.write("silent\nshow-error\nparallel\nparallel-max = %d\n" % a.concurrency)
        f.write("aws-sigv4 = %s\n" % quote("aws:amz:%s:s3" % a.region))
        f.write("user = %s\n" % quote(key + ":" + secret))
        f.write('header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n')
        if os.environ.get("KURA_S3_CA_FILE"):
            f.write("cacert = %s\n" % quote(os.environ["KURA_S3_CA_FILE"]))
        if os.environ.get("AWS_SESSION_TOKEN"):
            f.write("header = %s\n" % quote("x-amz-security-token: " + os.environ["AWS_SESSION_TOKEN"]))
        f.write('write-out = "%{http_code} %{time_total} %{size_download}\\n"\n')
        for k in keys:
            f.write("url = %s\n" % quote(base + "/" + k))
            f.write("output = /dev/null\n")
            if method == "PUT":
                f.write("upload-file = %s\n" % quote(body))
            elif method == "DELETE":
                f.write("request = DELETE\n")
    t0 = time.monotonic()
    p = subprocess.run(["curl", "-s", "--no-progress-meter", "--config", cfg], capture_output=True, text=True)
    secs = time.monotonic() - t0
    lat = []
    errors = 0
    samples = []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        code, t, size = parts
        ok = code in ("200", "204") and (method != "GET" or int(size) == a.size)
        if ok:
            lat.append(float(t) * 1e6)
        else:
            errors += 1
            if len(samples) < 8 and "HTTP " + code not in samples:
                samples.append("HTTP " + code)
    errors += max(0, len(keys) - len(lat) - errors)
    for l in p.stderr.splitlines():
        if l.startswith("curl:") and len(samples) < 8:
            samples.append(l[:200])
    lat.sort()

    def pct(q):
        if not lat:
            return 0
        i = min(len(lat) - 1, max(0, int(-(-q * len(lat) // 100)) - 1))
        return int(lat[i])
    return {"ops": len(lat), "errors": errors, "duration_s": secs,
            "ops_per_s": len(lat) / secs if secs > 0 else 0,
            "latency_us": {"p50": pct(50), "p90": pct(90), "p99": pct(99),
                           "max": int(lat[-1]) if lat else 0,
                           "min": int(lat[0]) if lat else 0,
                           "mean": sum(lat) / len(lat) if lat else 0},
            "error_samples": samples}


keys = ["%s/%d/%08d" % (a.prefix, a.size, i) for i in range(a.count)]
order = keys[:]
random.Random(a.seed).shuffle(order)
warm = ["%s/%d/w%03d" % (a.prefix, a.size, i) for i in range(2 * a.concurrency)]
res = {"tool": "s3-curl-baseline",
       "client": "curl %s --parallel (SigV4)" % subprocess.run(
           ["curl", "--version"], capture_output=True, text=True).stdout.split()[1],
       "config": {"url": base, "size": a.size, "concurrency": a.concurrency,
                  "count": a.count, "prefix": a.prefix, "seed": a.seed}}
res["warmup"] = phase("PUT", warm)
res["put"] = phase("PUT", keys)
res["get"] = phase("GET", order)
res["delete"] = phase("DELETE", keys + warm)
text = json.dumps(res, indent=2)
if a.json:
    with open(a.json, "w") as f:
        f.write(text + "\n")
for ph in ("put", "get"):
    r = res[ph]
    print("%-4s %7d B x%-3d %8d ops %6d errors %9.1f ops/s  p50 %8.3f ms  p99 %8.3f ms" % (
        ph, a.size, a.concurrency, r["ops"], r["errors"], r["ops_per_s"],
        r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3))
    for s in r["error_samples"]:
        print("s3-curl-baseline: %s error: %s" % (ph, s), file=sys.stderr)
for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
sys.exit(0 if res["put"]["ops"] > 0 else 1)
EOF
