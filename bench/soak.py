"""Soak test (not in CI): SOAK_SECS (default 600) of 8 threads opening real psycopg2
connections with pgentra tokens while the emulator's tokens expire every few minutes and a
fault is injected every 10 s. Reports, per minute: connections, failures, identity requests,
the slowest conninfo() and the process's RSS.

    PGENTRA_EMULATOR_ARGS="--lifetime 400" tests/harness/with-harness.sh python3 bench/soak.py

With a 400 s token lifetime, pgentra refreshes 100 s after each acquisition (5 minutes before
expiry), so a 10-minute run crosses about six refreshes, in the background of the callers."""
import json
import os
import random
import threading
import time
import urllib.request

import psycopg2

import pgentra

SECS = float(os.environ.get("SOAK_SECS", "600"))
THREADS = int(os.environ.get("SOAK_THREADS", "8"))
EMU = os.environ["PGENTRA_EMULATOR_HTTP"].rstrip("/")
FAULTS = [
    {"status": 500}, {"status": 503}, {"status": 429, "retry_after": 1}, {"drop": True},
    {"slow_body_ms": 500}, {"delay_ms": 300}, {"status": 502}, {"status": 504},
]

assert EMU.startswith("http://127.0.0.1"), "the soak test talks to the loopback emulator only"
os.environ.setdefault("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9")
os.environ["AZURE_POSTGRESQL_CONNECTIONSTRING"] = (
    f"host={os.environ['PGENTRA_PG_HOST']} port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require"
)


def control(method, path, body=None):
    req = urllib.request.Request(EMU + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"{}")


def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


c = pgentra.Connector()
lock = threading.Lock()
minute = {"conns": 0, "fails": 0, "slowest_ms": 0.0}
errors = []
stop = time.monotonic() + SECS


def worker():
    while time.monotonic() < stop:
        t = time.perf_counter()
        info = {}
        try:
            info = c.conninfo()
            took = (time.perf_counter() - t) * 1000
            conn = psycopg2.connect(**info)
            try:
                with conn.cursor() as cur:
                    cur.execute("select current_user")
                    assert cur.fetchone()[0] == "pgentra-app"
            finally:
                conn.close()
            with lock:
                minute["conns"] += 1
                minute["slowest_ms"] = max(minute["slowest_ms"], took)
        except Exception as e:  # counted and reported, never a token in it
            with lock:
                minute["fails"] += 1
                if len(errors) < 20:
                    errors.append(type(e).__name__ + ": " + str(e).splitlines()[0][:200])
            if pgentra.is_auth_failure(e):
                c.renew(info.get("password"))


def faults():
    while time.monotonic() < stop:
        time.sleep(10)
        control("POST", "/control/faults", [random.choice(FAULTS)])


control("POST", "/control/reset")
rss0 = rss_mib()
threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
threads.append(threading.Thread(target=faults, daemon=True))
for t in threads:
    t.start()
rows = []
start = time.monotonic()
while time.monotonic() < stop:
    time.sleep(min(60, max(0.1, stop - time.monotonic())))
    st = control("GET", "/control/stats")
    with lock:
        row = dict(minute)
        minute.update(conns=0, fails=0, slowest_ms=0.0)
    row.update(t=round(time.monotonic() - start), msi=st["msi_requests"], rss=rss_mib())
    rows.append(row)
    print(json.dumps(row), flush=True)
for t in threads:
    t.join(timeout=30)

print()
print(f"Command: PGENTRA_EMULATOR_ARGS=\"--lifetime 400\" tests/harness/with-harness.sh python3 bench/soak.py  (SOAK_SECS={SECS:g}, {THREADS} threads)")
print()
print("| minute ending (s) | connections | failures | identity requests (total) | slowest conninfo() | RSS |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['t']} | {r['conns']} | {r['fails']} | {r['msi']} | {r['slowest_ms']:.1f} ms | {r['rss']:.1f} MiB |")
total = sum(r["conns"] for r in rows)
fails = sum(r["fails"] for r in rows)
print(f"\nTotal: {total} connections, {fails} failures, {c.token_requests} token requests by pgentra; "
      f"RSS {rss0:.1f} MiB at start (before the first connection), {rows[-1]['rss']:.1f} MiB at the end.")
for e in errors:
    print("error:", e)
