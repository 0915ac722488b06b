#!/usr/bin/env python3
"""The shared token cache (issue #16): identity requests for 8, 32 and 64 recycled worker
processes with and without sharing, and the cold start of a new process with an existing entry
against a fresh fetch. Runs under the harness, against the loopback emulator:

    PGENTRA_EMULATOR_ARGS="--refresh-in 10" tests/harness/with-harness.sh python3 bench/shared_cache.py

Time is compressed: every worker is recycled every RECYCLE seconds (a new process that gets a
token and exits, as a gunicorn or PHP-FPM worker does at start) and the emulator asks for a
refresh after 10 s (Azure: about 55 minutes for a token of an hour). Requests per hour for real
cadences are derived in bench/results.md from the measured requests per worker start.
"""
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

CLI = os.environ.get("PGENTRA_CLI_BIN") or os.path.join(os.path.dirname(__file__), "..", "target", "release", "pgentra")
EMU = os.environ["PGENTRA_EMULATOR_HTTP"]
SECONDS = float(os.environ.get("PGENTRA_BENCH_SECONDS", "30"))
RECYCLE = float(os.environ.get("PGENTRA_BENCH_RECYCLE", "0.5"))


def control(method, path):
    req = urllib.request.Request(EMU + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def msi():
    return control("GET", "/control/stats")["msi_requests"]


def env(shared, folder):
    e = {
        "PATH": os.environ["PATH"],
        "IDENTITY_ENDPOINT": os.environ["IDENTITY_ENDPOINT"],
        "IDENTITY_HEADER": os.environ["IDENTITY_HEADER"],
        "AZURE_POSTGRESQL_HOST": "127.0.0.1",
        "PGENTRA_IMDS_ENDPOINT": "http://127.0.0.1:9",
        "PGENTRA_SHARED_CACHE": "1" if shared else "0",
        "PGENTRA_CACHE_DIR": folder,
    }
    return e


def token(e):
    r = subprocess.run([CLI, "token"], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"pgentra token failed: {r.stderr.decode(errors='replace')}")


def workers(n, shared):
    folder = tempfile.mkdtemp(prefix="pgentra-bench-cache-")
    e = env(shared, folder)
    control("POST", "/control/reset")
    control("POST", "/control/rotate")
    starts = [0] * n
    stop = time.monotonic() + SECONDS

    def worker(i):
        nxt = time.monotonic()
        while time.monotonic() < stop:
            token(e)
            starts[i] += 1
            nxt += RECYCLE
            time.sleep(max(0.0, nxt - time.monotonic()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    return sum(starts), msi(), took


def faults(body):
    req = urllib.request.Request(EMU + "/control/faults", method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def cold(shared, runs=40, delay_ms=0):
    folder = tempfile.mkdtemp(prefix="pgentra-bench-cold-")
    e = env(shared, folder)
    control("POST", "/control/reset")
    token(e)  # with sharing: the entry exists from here on
    if delay_ms:
        faults([{"delay_ms": delay_ms}] * runs)  # one per identity request
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        token(e)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    requests = msi()
    return statistics.median(times), times[int(len(times) * 0.9)], requests


def main():
    print(f"workers recycled every {RECYCLE} s for {SECONDS:.0f} s (compressed time); emulator refresh_in from its arguments")
    print("| workers | shared cache | worker starts | identity requests | requests per start |")
    print("|---|---|---|---|---|")
    for n in (8, 32, 64):
        for shared in (False, True):
            starts, requests, took = workers(n, shared)
            print(f"| {n} | {'on' if shared else 'off'} | {starts} | {requests} | {requests / max(starts, 1):.4f} |", flush=True)
    print()
    print("| cold start of a new process (`pgentra token`, 40 runs) | median | p90 | identity requests |")
    print("|---|---|---|---|")
    for shared, delay, label in (
        (True, 0, "an entry exists (shared cache)"),
        (False, 0, "fresh fetch (PGENTRA_SHARED_CACHE=0), endpoint on loopback"),
        (False, 50, "fresh fetch (PGENTRA_SHARED_CACHE=0), endpoint answering in 50 ms"),
    ):
        med, p90, requests = cold(shared, delay_ms=delay)
        print(f"| {label} | {med:.2f} ms | {p90:.2f} ms | {requests} |", flush=True)


if __name__ == "__main__":
    main()
