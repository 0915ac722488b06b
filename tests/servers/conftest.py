"""Helpers for the shared token cache's tests with real servers and processes (issue #16).

Run under the harness (tests/servers/test.sh does, from `make test-servers`): it exports the
emulator's and PostgreSQL's variables. Every test here turns sharing on for its own processes,
with a private cache folder of its own (the harness keeps sharing off for the language suites).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

HARNESS = bool(os.environ.get("PGENTRA_PG_HOST") and os.environ.get("PGENTRA_EMULATOR_HTTP"))
if not HARNESS:
    pytest.exit("tests/servers needs the harness: tests/harness/with-harness.sh tests/servers/test.sh", returncode=2)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
APP_ROLE = "pgentra-app"


def control(method: str, path: str, body: str = "") -> str:
    """One request to the emulator's control endpoint (loopback)."""
    req = urllib.request.Request(os.environ["PGENTRA_EMULATOR_HTTP"].rstrip("/") + path, method=method,
                                 data=body.encode() if body else None, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def msi_requests() -> int:
    """Identity requests the emulator answered (its managed-identity endpoint) since the reset."""
    return int(json.loads(control("GET", "/control/stats"))["msi_requests"])


def reset() -> None:
    control("POST", "/control/reset")


def faults(spec: list) -> None:
    control("POST", "/control/faults", json.dumps(spec))


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def cache_folder(name: str) -> Path:
    """A fresh private (0700) cache folder for one test."""
    d = Path(os.environ["PGENTRA_TEST_DIR"]) / f"servers-{name}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    d.chmod(0o700)
    return d


def socket_path(name: str) -> str:
    """A unix socket path for a server, short enough for sun_path (108 bytes) wherever pytest
    keeps its temporary folders."""
    p = Path(os.environ["PGENTRA_TEST_DIR"]) / f"{name}.sock"
    p.unlink(missing_ok=True)
    return str(p)


def shared_env(folder: Path) -> dict:
    """The environment of an App Service app with a system-assigned managed identity and
    Service Connector's connection string, sharing tokens through `folder`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "PGENTRA_SHARED", "PGENTRA_CACHE"))}
    env.update(
        AZURE_POSTGRESQL_CONNECTIONSTRING=(
            f"host={os.environ['PGENTRA_PG_HOST']} port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require"
        ),
        PGENTRA_CREDENTIAL="managed-identity",
        PGENTRA_CACHE_DIR=str(folder),
        PGENTRA_SHARED_CACHE="1",
        PGENTRA_IMDS_ENDPOINT="http://127.0.0.1:9",  # never a real metadata address
        PGENTRA_TIMEOUT="30",
    )
    return env


def entries(folder: Path) -> list:
    return sorted(folder.glob("*.tok"))


def entry(folder: Path) -> dict:
    """The one shared entry in `folder`, parsed (its times tell the refresh point)."""
    found = entries(folder)
    assert len(found) == 1, f"one entry expected in {folder}: {[p.name for p in found]}"
    return json.loads(found[0].read_bytes())


def allowed_requests(folder: Path, started: float) -> int:
    """Identity requests a run that began at `started` may make: one, plus a refresh for each
    time the entry's refresh point passed during the run. The emulator's tokens live an hour
    and the runs take seconds, so this is 1; the precondition fails loudly if it is not."""
    e = entry(folder)
    took = time.time() - started
    assert e["refresh_in"] > took, f"the run ({took:.0f} s) passed the refresh point ({e['refresh_in']} s)"
    return 1


def cli() -> str:
    p = os.environ.get("PGENTRA_CLI_BIN") or str(ROOT / "target" / "release" / "pgentra")
    assert os.access(p, os.X_OK), f"no pgentra CLI at {p} (PGENTRA_CLI_BIN)"
    return p


def cli_token(env: dict, wrap: list = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*wrap, cli(), "token"], env=env, capture_output=True, text=True, timeout=120)


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


REQUESTS = 500
CLIENTS = 8


def serve(request_one, n: int = REQUESTS, clients: int = CLIENTS) -> list:
    """`n` requests from `clients` threads at once; each `request_one(i)` returns the app's
    JSON answer (a dict with pid, user, token)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(request_one, range(n)))


def check_served(answers: list, folder: Path, started: float, max_requests: int) -> None:
    """Every request logged in as the app's role with one token; the workers were recycled
    (no pid served more than `max_requests`); the identity endpoint was asked once (plus the
    refreshes the run's length allows)."""
    assert len(answers) == REQUESTS
    users = {a["user"] for a in answers}
    assert users == {APP_ROLE}, users
    per_pid: dict = {}
    for a in answers:
        per_pid[a["pid"]] = per_pid.get(a["pid"], 0) + 1
    assert max(per_pid.values()) <= max_requests, f"a worker served more than {max_requests}: {max(per_pid.values())}"
    assert len(per_pid) >= REQUESTS // max_requests, f"only {len(per_pid)} worker processes served"
    tokens = {a["token"] for a in answers}
    requests = msi_requests()
    assert entries(folder), f"no shared entry: {len(per_pid)} worker processes made {requests} identity requests"
    assert requests == allowed_requests(folder, started), (
        f"{len(per_pid)} worker processes made {requests} identity requests ({len(tokens)} tokens)"
    )
    assert len(tokens) == 1, f"{len(tokens)} tokens"
    print(f"\n{REQUESTS} requests served by {len(per_pid)} worker processes in {time.time() - started:.1f} s: "
          f"{requests} identity request(s)")
    assert entry(folder)["token"] and fingerprint(entry(folder)["token"]) in tokens


def stop(server: subprocess.Popen) -> None:
    """Stop a server (SIGTERM: a graceful stop; SIGKILL after 30 s)."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
