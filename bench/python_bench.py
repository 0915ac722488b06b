"""Python: pgentra against azure-identity and azure-postgresql-auth, side by side, one run,
the same loopback emulator (run under tests/harness/with-harness.sh; see bench/run.sh).

Prints a Markdown table; bench/results.md records a run with the command that produced it."""
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
CS = f"host={os.environ['PGENTRA_PG_HOST']} port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require"
EMU = os.environ["PGENTRA_EMULATOR_HTTP"]
# A user-assigned identity: azure-postgresql-auth derives a user name only from those
# (for a system-assigned identity it raises UsernameExtractionError; pgentra uses the app name).
UAMI = "11111111-1111-1111-1111-111111111111"


def control(path, method="GET"):
    req = urllib.request.Request(EMU + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def per_call_ns(fn, n):
    fn()
    best = []
    for _ in range(5):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best.append((time.perf_counter_ns() - t) / n)
    return statistics.median(best)


def import_ms(module, runs=7):
    base = [], []
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base[0].append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        out.append(time.perf_counter() - t)
    return (statistics.median(out) - statistics.median(base[0])) * 1000


def rss_mib(code):
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across fork+exec.
    probe = "\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    r = subprocess.run([sys.executable, "-c", code + probe], check=True, capture_output=True, text=True, env=os.environ)
    return int(r.stdout.strip().splitlines()[-1]) / 1024


def burst(make_and_call, n=64):
    control("/control/reset", "POST")
    control("/control/rotate", "POST")
    barrier = threading.Barrier(n)
    fn = make_and_call()

    def worker():
        barrier.wait()
        fn()

    ts = [threading.Thread(target=worker) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return control("/control/stats")["msi_requests"]


def main():
    import pgentra
    from azure.identity import ManagedIdentityCredential, DefaultAzureCredential
    from azure_postgresql_auth.core import get_entra_conninfo

    rows = []
    c = pgentra.Connector(connection_string=CS, client_id=UAMI)
    mi = ManagedIdentityCredential(client_id=UAMI)
    dac = DefaultAzureCredential(managed_identity_client_id=UAMI)
    n = 200_000
    t_pg = per_call_ns(c.token, n)
    t_conninfo = per_call_ns(c.conninfo, n // 10)
    t_mi = per_call_ns(lambda: mi.get_token(SCOPE).token, n // 20)
    t_dac = per_call_ns(lambda: dac.get_token(SCOPE).token, n // 20)
    t_apa = per_call_ns(lambda: get_entra_conninfo(mi), n // 40)
    rows.append(("cached token read", f"{t_pg:,.0f} ns", f"{t_mi:,.0f} ns (ManagedIdentityCredential)", f"{t_mi / t_pg:,.0f}x"))
    rows.append(("cached token read via DefaultAzureCredential", f"{t_pg:,.0f} ns", f"{t_dac:,.0f} ns", f"{t_dac / t_pg:,.0f}x"))
    rows.append(("conninfo per new connection", f"{t_conninfo:,.0f} ns (pgentra.conninfo)", f"{t_apa:,.0f} ns (azure-postgresql-auth get_entra_conninfo)", f"{t_apa / t_conninfo:,.0f}x"))
    i_pg, i_az = import_ms("pgentra"), import_ms("azure.identity")
    rows.append(("import", f"{i_pg:.1f} ms", f"{i_az:.1f} ms (azure.identity)", f"{i_az / max(i_pg, 0.01):,.0f}x"))
    r_pg = rss_mib(f"import pgentra\nc = pgentra.Connector(connection_string={CS!r}, client_id={UAMI!r}); c.token()")
    r_az = rss_mib(f"from azure.identity import ManagedIdentityCredential\nManagedIdentityCredential(client_id={UAMI!r}).get_token({SCOPE!r})")
    r_base = rss_mib("pass")
    rows.append(("peak RSS (interpreter alone: %.1f MiB)" % r_base, f"{r_pg:.1f} MiB", f"{r_az:.1f} MiB", f"{(r_az - r_base) / max(r_pg - r_base, 0.1):.1f}x less added"))
    b_pg = burst(lambda: pgentra.Connector(connection_string=CS, client_id=UAMI).token)
    b_az = burst(lambda: (lambda cred: (lambda: cred.get_token(SCOPE)))(ManagedIdentityCredential(client_id=UAMI)))
    rows.append(("64 concurrent callers, empty cache: identity requests", str(b_pg), str(b_az), ""))
    print("| measure | pgentra | incumbent | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
