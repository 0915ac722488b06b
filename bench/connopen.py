"""Connection-open overhead: psycopg2 connections (open + `select 1` + close, sequential) whose
parameters come from pgentra on every connection (cached token) against a static-password
role on the same server, same sslmode=require.

Run under the harness:

    cd /work/main && tests/harness/with-harness.sh python3 bench/connopen.py

Three variants, CONNOPEN_BLOCKS (10) x CONNOPEN_PER_BLOCK (100) connections each, interleaved
one connection at a time (round robin, the order rotating each round) so that machine noise
hits all alike; block k of each variant is its k-th run of PER_BLOCK connections, taken over
the same stretch of time as block k of the others. Reported: totals, the overhead of the
totals, and the median (and range) of the per-block ratios.

- pgentra: psycopg2.connect(**connector.conninfo()) each time (system-assigned identity, role
  pgentra-app; the token is cached, so this is the per-connection cost of asking pgentra).
- pgentra's conninfo, captured once: psycopg2.connect(**same_dict) each time: the same user and
  the same ~1 KB token as password, so the server does exactly the same work; the difference to
  the first variant is pgentra's per-connection cost alone.
- static password: role app_static with its short password (tests/harness/pg.sh).

The harness's server checks passwords with `password` (cleartext over TLS) against SCRAM
verifiers, and PostgreSQL's PBKDF2 re-hashes a key longer than 64 bytes on each of its 4096
iterations: a ~1 KB token costs the server several ms more per connection than a short
password. That is the harness's doing (Azure validates an Entra token as a JWT, not with
SCRAM) and shows up in the comparison against app_static, not in the captured-dict one.
CONNOPEN_LONG_STATIC=1 adds a fourth variant that shows it: a static role (created through the
harness's admin socket) whose password is as long as the token.
"""
import os
import statistics
import sys
import time
import urllib.parse


def _require_loopback():
    if os.environ.get("PGENTRA_IN_NETNS") != "1":
        sys.exit("connopen.py: run under tests/harness/with-harness.sh (loopback-only namespace)")
    if os.environ.get("PGENTRA_PG_HOST") not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("connopen.py: PGENTRA_PG_HOST is not loopback")
    host = urllib.parse.urlsplit(os.environ.get("IDENTITY_ENDPOINT", "")).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("connopen.py: IDENTITY_ENDPOINT is not a loopback URL")
    os.environ["PGENTRA_IMDS_ENDPOINT"] = "http://127.0.0.1:9"
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = "http://127.0.0.1:9"
    for var in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        os.environ.pop(var, None)


_require_loopback()

import pgentra  # noqa: E402
import psycopg2  # noqa: E402

HOST, PORT = os.environ["PGENTRA_PG_HOST"], int(os.environ["PGENTRA_PG_PORT"])
CS = f"host={HOST} port={PORT} dbname=postgres sslmode=require"
# tests/harness/pg.sh: CREATE ROLE app_static LOGIN PASSWORD 'static pw;''"\@/?#%';
STATIC = dict(host=HOST, port=PORT, dbname="postgres", user="app_static",
              password="static pw;'\"\\@/?#%", sslmode="require")
BLOCKS = int(os.environ.get("CONNOPEN_BLOCKS", "10"))
PER_BLOCK = int(os.environ.get("CONNOPEN_PER_BLOCK", "100"))
LONG_STATIC = os.environ.get("CONNOPEN_LONG_STATIC") == "1"


def open_query_close(kw):
    conn = psycopg2.connect(**kw)
    try:
        cur = conn.cursor()
        cur.execute("select 1")
        assert cur.fetchone() == (1,)
    finally:
        conn.close()


def main():
    c = pgentra.Connector(connection_string=CS)
    captured = c.conninfo()  # acquires and caches the token
    if captured.get("sslmode") != "require":
        sys.exit(f"connopen.py: pgentra's conninfo has sslmode={captured.get('sslmode')!r}, expected require")

    variants = {
        "pgentra": lambda: open_query_close(c.conninfo()),
        "captured": lambda: open_query_close(captured),
        "static": lambda: open_query_close(STATIC),
    }
    if LONG_STATIC:
        # A static role whose password is as long as the token: the server's share of the cost.
        import secrets
        pw = secrets.token_urlsafe(len(captured["password"]))[:len(captured["password"])]
        adm = psycopg2.connect(os.environ["PGENTRA_PG_ADMIN"])  # unix socket, trust
        adm.autocommit = True
        adm.cursor().execute("DROP ROLE IF EXISTS app_static_long")
        adm.cursor().execute("CREATE ROLE app_static_long LOGIN PASSWORD %s", (pw,))
        adm.close()
        long_kw = dict(STATIC, user="app_static_long", password=pw)
        variants["static_long"] = lambda: open_query_close(long_kw)
    names = list(variants)
    probe = psycopg2.connect(**STATIC)
    server = probe.server_version
    probe.close()
    for n in names:  # warm-up
        for _ in range(10):
            variants[n]()
    requests_before = c.token_requests

    # Interleaved one connection at a time (the order rotating each round), so that the
    # k-th block of every variant covers the same stretch of time.
    times = {n: [] for n in names}
    t_all = time.perf_counter()
    for r in range(BLOCKS * PER_BLOCK):
        for n in names[r % len(names):] + names[:r % len(names)]:
            f = variants[n]
            t0 = time.perf_counter()
            f()
            times[n].append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    if c.token_requests != requests_before:
        print(f"note: pgentra made {c.token_requests - requests_before} token requests during the run")

    # The per-call cost of conninfo() itself, for scale.
    k = 20000
    t0 = time.perf_counter_ns()
    for _ in range(k):
        c.conninfo()
    conninfo_ns = (time.perf_counter_ns() - t0) / k

    per_block = {n: [sum(v[b * PER_BLOCK:(b + 1) * PER_BLOCK]) for b in range(BLOCKS)] for n, v in times.items()}
    total = {n: sum(v) for n, v in times.items()}
    count = BLOCKS * PER_BLOCK

    def vs(n, base):
        over = (total[n] / total[base] - 1) * 100
        ratios = [a / b for a, b in zip(per_block[n], per_block[base])]
        med = (statistics.median(ratios) - 1) * 100
        return f"{over:+.2f}%", f"{med:+.2f}%", f"{(min(ratios) - 1) * 100:+.1f}% .. {(max(ratios) - 1) * 100:+.1f}%"

    print(f"pgentra {pgentra.__version__}, psycopg2 {psycopg2.__version__.split()[0]}, libpq {psycopg2.extensions.libpq_version()}, "
          f"CPython {sys.version.split()[0]}; PostgreSQL {server // 10000}.{server % 10000} on 127.0.0.1 (TLS), sslmode=require; "
          f"{BLOCKS} blocks x {PER_BLOCK} connections per variant, interleaved per connection; wall {wall:.1f} s; "
          f"token {len(captured['password'])} chars")
    print()
    print("| variant | connections | total | mean per connection | median per connection | overhead vs baseline (totals) | median of per-block ratios | per-block range |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [
        ("static password (app_static)", "static", None),
        ("pgentra conninfo captured once (same user and token)", "captured", None),
        ("pgentra `conninfo()` per connection, vs static password", "pgentra", "static"),
        ("pgentra `conninfo()` per connection, vs the captured dict", "pgentra", "captured"),
    ]
    if LONG_STATIC:
        rows.insert(1, ("static password as long as the token (app_static_long)", "static_long", None))
        rows.append(("pgentra `conninfo()` per connection, vs the token-length static password", "pgentra", "static_long"))
    for label, n, base in rows:
        o = vs(n, base) if base else ("", "", "")
        print(f"| {label} | {count:,} | {total[n]:.2f} s | {total[n] / count * 1000:.2f} ms | {statistics.median(times[n]) * 1000:.2f} ms | {o[0]} | {o[1]} | {o[2]} |")
    print()
    print(f"`Connector.conninfo()` alone: {conninfo_ns:,.0f} ns per call "
          f"({conninfo_ns / (total['captured'] / count * 1e9) * 100:.3f}% of a connection).")
    print()
    print("Command: `tests/harness/with-harness.sh python3 bench/connopen.py`")


if __name__ == "__main__":
    main()
