"""Cold path and burst: pgentra against azure-identity's ManagedIdentityCredential on the
loopback emulator's App Service managed identity endpoint (user-assigned identity).

Run under the harness (it has no network; azure-identity must be installed beforehand):

    cd /work/main && tests/harness/with-harness.sh python3 bench/cold_burst.py

1. First-token latency: COLD_N (30) fresh pgentra.Connector objects and COLD_N fresh
   ManagedIdentityCredential objects each acquire their first token (constructor included),
   interleaved with COLD_N raw GETs of the same endpoint as baselines for the endpoint's own
   latency (JSON parsed, a new TCP connection each like the clients make): one through urllib,
   one through a plain socket (the least client code; urllib itself costs ~0.2 ms). Once with no injected delay,
   once with the emulator delaying each request by 20 ms ({"delay_ms": 20}). Every call is
   checked to have made exactly one identity request and consumed its fault.
   Overhead = median(client) - median(baseline GET); the median of the paired differences
   (each client call minus the baseline GET of the same round) is shown too.
2. Burst: 64 and 1,000 threads started behind a barrier call one shared, empty-cached
   pgentra.Connector (token()) or one shared ManagedIdentityCredential (get_token); the
   emulator's msi_requests counter (after /control/reset) tells how many identity requests
   reached it. With no injected delay and with 20 ms per request. /control/rotate before each
   burst, so the first request mints a new token (as bench/python_bench.py does). Each burst
   BURST_REPEATS (3) times; the "served in" time is from the barrier's release to the last
   thread's end (mostly Python thread scheduling at 1,000 threads).

Prints Markdown tables. Knobs: COLD_N, BURST_SIZES ("64,1000"), DELAYS_MS ("0,20"),
BURST_REPEATS.
"""
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request


def _require_loopback():
    """The hard rule of this harness: nothing but loopback. Refuse to run otherwise."""
    if os.environ.get("PGENTRA_IN_NETNS") != "1":
        sys.exit("cold_burst.py: run under tests/harness/with-harness.sh (loopback-only namespace)")
    for var in ("IDENTITY_ENDPOINT", "PGENTRA_EMULATOR_HTTP"):
        host = urllib.parse.urlsplit(os.environ.get(var, "")).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            sys.exit(f"cold_burst.py: {var} is not a loopback URL")
    # No IMDS anywhere: a dead loopback port. No legacy MSI_* variables (Cloud Shell / old
    # App Service protocol) to divert azure-identity.
    os.environ["PGENTRA_IMDS_ENDPOINT"] = "http://127.0.0.1:9"
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = "http://127.0.0.1:9"
    for var in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        os.environ.pop(var, None)


_require_loopback()

SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
RESOURCE = "https://ossrdbms-aad.database.windows.net"
UAMI = "11111111-1111-1111-1111-111111111111"
CS = f"host={os.environ['PGENTRA_PG_HOST']} port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require"
EMU = os.environ["PGENTRA_EMULATOR_HTTP"]
ENDPOINT = os.environ["IDENTITY_ENDPOINT"]
HEADER = os.environ["IDENTITY_HEADER"]
COLD_N = int(os.environ.get("COLD_N", "30"))
BURST_SIZES = [int(x) for x in os.environ.get("BURST_SIZES", "64,1000").split(",")]
DELAYS_MS = [int(x) for x in os.environ.get("DELAYS_MS", "0,20").split(",")]
BURST_REPEATS = int(os.environ.get("BURST_REPEATS", "3"))

import pgentra  # noqa: E402  (after the environment is pinned to loopback)
from azure.identity import ManagedIdentityCredential  # noqa: E402


def control(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(EMU + path, method="GET" if body is None else "POST", data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def stats():
    return control("/control/stats")


# ---- the three ways to get a first token ------------------------------------------------

RAW_URL = ENDPOINT + "?" + urllib.parse.urlencode(
    {"api-version": "2019-08-01", "resource": RESOURCE, "client_id": UAMI})


def raw_get():
    req = urllib.request.Request(RAW_URL, headers={"X-IDENTITY-HEADER": HEADER})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["access_token"]


_EP = urllib.parse.urlsplit(ENDPOINT)
_RAW_REQ = (f"GET {_EP.path}?{urllib.parse.urlsplit(RAW_URL).query} HTTP/1.1\r\n"
            f"Host: {_EP.netloc}\r\nX-IDENTITY-HEADER: {HEADER}\r\nConnection: close\r\n\r\n").encode()


def socket_get():
    """The same GET with as little client code as possible: a plain socket, HTTP/1.1 with
    Connection: close, the body after the blank line parsed as JSON."""
    with socket.create_connection((_EP.hostname, _EP.port)) as sk:
        sk.sendall(_RAW_REQ)
        chunks = []
        while True:
            b = sk.recv(65536)
            if not b:
                break
            chunks.append(b)
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    if b"transfer-encoding: chunked" in head.lower():
        raise RuntimeError("chunked response: not handled by this minimal client")
    return json.loads(body)["access_token"]


def pgentra_first():
    c = pgentra.Connector(connection_string=CS, client_id=UAMI)
    t = c.token()
    return t, c


def azure_first():
    cred = ManagedIdentityCredential(client_id=UAMI)
    t = cred.get_token(SCOPE).token
    return t, cred


def cold(delay_ms):
    """COLD_N rounds; each round makes one raw GET, one pgentra first token and one
    azure-identity first token, in a rotating order. Returns {name: [seconds]}."""
    calls = {"socket": lambda: (socket_get(), None), "raw": lambda: (raw_get(), None),
             "pgentra": pgentra_first, "azure": azure_first}
    names = list(calls)
    times = {n: [] for n in names}
    control("/control/reset", [])  # POST
    for n in names:  # warm-up: imports, TLS/HTTP machinery, the emulator's kept token
        calls[n]()
    for i in range(COLD_N):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            before = stats()
            if delay_ms:
                control("/control/faults", [{"delay_ms": delay_ms}])
            t0 = time.perf_counter()
            tok, obj = calls[n]()
            dt = time.perf_counter() - t0
            after = stats()
            if not tok:
                raise SystemExit(f"{n}: empty token")
            got = after["msi_requests"] - before["msi_requests"]
            if got != 1 or after["faults_pending"] != 0:
                raise SystemExit(f"{n}: made {got} identity requests (faults pending {after['faults_pending']}); expected exactly one")
            times[n].append(dt)
            if obj is not None and hasattr(obj, "close"):
                obj.close()
    return times


# ---- burst ------------------------------------------------------------------------------

def burst(kind, n, delay_ms):
    control("/control/reset", [])
    control("/control/rotate", [])
    if delay_ms:
        control("/control/faults", [{"delay_ms": delay_ms}] * n)
    if kind == "pgentra":
        c = pgentra.Connector(connection_string=CS, client_id=UAMI)
        call = c.token
    else:
        cred = ManagedIdentityCredential(client_id=UAMI)
        call = lambda: cred.get_token(SCOPE).token  # noqa: E731
    barrier = threading.Barrier(n + 1)
    errors = []
    tokens = set()
    lock = threading.Lock()

    def worker():
        barrier.wait()
        try:
            t = call()
            with lock:
                tokens.add(t)
        except Exception as e:  # counted and reported, not raised
            with lock:
                errors.append(repr(e))

    old = threading.stack_size(256 * 1024)
    ts = [threading.Thread(target=worker) for _ in range(n)]
    threading.stack_size(old)
    for t in ts:
        t.start()
    barrier.wait()  # all n threads are waiting: release them together
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    s = stats()
    control("/control/reset", [])  # drop faults not consumed
    return {"requests": s["msi_requests"], "errors": len(errors), "first_error": errors[0] if errors else "",
            "distinct_tokens": len(tokens), "wall_ms": wall * 1000}


def ms(x):
    return f"{x * 1000:.2f} ms"


def main():
    import azure.identity
    print(f"pgentra {pgentra.__version__}, azure-identity {azure.identity.__version__}, "
          f"CPython {sys.version.split()[0]}; App Service MI endpoint of the loopback emulator, "
          f"user-assigned identity")
    print()
    print(f"### First token on a fresh object, {COLD_N} each (constructor included), medians")
    print()
    print("Overhead = median(client) - median(baseline GET); in brackets the median of the paired")
    print("differences (each client call minus the baseline GET of the same round).")
    print()
    print("| endpoint delay | baseline: raw GET, urllib | baseline: raw GET, plain socket | pgentra first token | pgentra overhead vs urllib GET | pgentra overhead vs socket GET | azure-identity first token | azure-identity overhead vs urllib GET | azure-identity overhead vs socket GET |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in DELAYS_MS:
        t = cold(d)
        med = {k: statistics.median(v) for k, v in t.items()}

        def over(client, base):
            paired = statistics.median(c - b for c, b in zip(t[client], t[base]))
            return f"{ms(med[client] - med[base])} ({ms(paired)})"

        print(f"| {d} ms injected | {ms(med['raw'])} | {ms(med['socket'])} | {ms(med['pgentra'])} "
              f"| {over('pgentra', 'raw')} | {over('pgentra', 'socket')} | {ms(med['azure'])} "
              f"| {over('azure', 'raw')} | {over('azure', 'socket')} |")
    print()
    print("### Concurrent callers on an empty cache: identity requests reaching the emulator")
    print()
    print(f"Each burst {BURST_REPEATS} times (fresh connector / credential each time): median (min-max).")
    print()
    print("| callers | endpoint delay | pgentra: identity requests | pgentra: all callers served in | azure-identity: identity requests | azure-identity: all callers served in |")
    print("|---|---|---|---|---|---|")
    notes = []

    def spread(vals, fmt):
        vals = sorted(vals)
        med = statistics.median(vals)
        lo, hi = fmt(vals[0]), fmt(vals[-1])
        return fmt(med) if lo == hi else f"{fmt(med)} ({lo}-{hi})"

    for n in BURST_SIZES:
        for d in DELAYS_MS:
            res = {"pgentra": [], "azure-identity": []}
            for _ in range(BURST_REPEATS):
                res["pgentra"].append(burst("pgentra", n, d))
                res["azure-identity"].append(burst("azure", n, d))
            cells = []
            for name, rs in res.items():
                for r in rs:
                    if r["errors"]:
                        notes.append(f"{name}, {n} callers, {d} ms: {r['errors']} errors, first: {r['first_error'][:200]}")
                cells.append(spread([r["requests"] for r in rs], lambda v: f"{v:g}"))
                cells.append(spread([r["wall_ms"] for r in rs], lambda v: f"{v:.0f} ms"))
            print(f"| {n:,} | {d} ms | " + " | ".join(cells) + " |")
    for line in notes:
        print(f"\n- {line}")
    print()
    print("Command: `tests/harness/with-harness.sh python3 bench/cold_burst.py`")


if __name__ == "__main__":
    main()
