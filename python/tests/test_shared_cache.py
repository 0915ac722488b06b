"""The shared token cache (issue #16) through the Python binding, with sharing ON as in
production: worker processes started the ways Python servers start them (multiprocessing with
fork and with spawn, a gunicorn-style pre-fork with os.fork) share one identity request.

The harness keeps sharing off for the rest of this suite (PGENTRA_SHARED_CACHE=0); every test
here turns it on for its own processes only, with a fresh private cache folder under
$PGENTRA_TEST_DIR, and counts requests at the emulator (/control/stats).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

import pgentra
from conftest import APP_ROLE, child_output, current_user_closing, faults, fork_child, identity_requests, libpq, needs_harness, reset

pytestmark = [needs_harness, pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")]

WORKERS = 8


@pytest.fixture
def folder(request):
    """A fresh private (0700) cache folder for one test, removed afterwards."""
    d = Path(os.environ["PGENTRA_TEST_DIR"]) / f"py-shared-{request.node.name}".replace("[", "-").replace("]", "")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    d.chmod(0o700)
    reset()
    yield d
    reset()
    shutil.rmtree(d, ignore_errors=True)


def share_through(folder: Path, switch: str = "1") -> None:
    """Sharing on (or `switch`) through `folder`, for connectors this process creates from now on."""
    os.environ["PGENTRA_SHARED_CACHE"] = switch
    os.environ["PGENTRA_CACHE_DIR"] = str(folder)


def connector() -> pgentra.Connector:
    return pgentra.Connector(connection_string=libpq(), credential="managed-identity", timeout=10)


def digest(token: str) -> str:
    """What a report carries instead of a token (a failed assertion prints it)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def worker(folder: str, gate, results, login: bool) -> None:
    """One cold worker process: its own connector, a token once every worker is ready."""
    share_through(Path(folder))
    c = connector()
    gate.wait(timeout=60)
    tok = c.token()
    user = current_user_closing(psycopg2.connect(**c.conninfo())) if login else None
    results.put({"pid": os.getpid(), "token": digest(tok), "requests": c.token_requests, "user": user})


# One process of a later deploy, or a worker that a server starts after the others: a fresh
# interpreter with its own connector.
FRESH = (
    "import hashlib, json, sys, pgentra\n"
    "c = pgentra.Connector(connection_string=sys.argv[1], credential='managed-identity', timeout=10)\n"
    "try:\n"
    "    print(json.dumps({'token': hashlib.sha256(c.token().encode()).hexdigest()[:16], 'requests': c.token_requests}))\n"
    "except pgentra.Error as e:\n"
    "    print(json.dumps({'error': type(e).__name__, 'kind': e.kind, 'service_code': e.service_code, 'message': str(e)}))\n"
)


def fresh_process(folder: Path, switch: str = "1") -> dict:
    env = dict(os.environ, PGENTRA_SHARED_CACHE=switch, PGENTRA_CACHE_DIR=str(folder))
    p = subprocess.run([sys.executable, "-c", FRESH, libpq()], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_cold_workers_make_one_request_and_a_later_process_none(folder, method):
    ctx = multiprocessing.get_context(method)
    gate = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    faults([{"delay_ms": 300}])  # the first request is slow: the others ask while it runs
    procs = [ctx.Process(target=worker, args=(str(folder), gate, results, i == 0)) for i in range(WORKERS)]
    for p in procs:
        p.start()
    got = [results.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0, f"a {method} worker exited with {p.exitcode}"
    assert len({g["pid"] for g in got}) == WORKERS
    assert identity_requests() == 1, f"{WORKERS} {method} workers made {identity_requests()} identity requests"
    assert len({g["token"] for g in got}) == 1, "every worker got the same token"
    assert sum(g["requests"] for g in got) == 1, [g["requests"] for g in got]
    assert [g["user"] for g in got if g["user"]] == [APP_ROLE], "a worker logged in with the shared token"
    # A warm cache costs nothing: a later fresh process reads the entry.
    later = fresh_process(folder)
    assert later == {"token": got[0]["token"], "requests": 0}
    assert identity_requests() == 1


def test_workers_forked_after_the_parent_fetched_make_no_request(folder, monkeypatch):
    # The pre-fork pattern (gunicorn --preload): the parent warms, then forks its workers.
    monkeypatch.setenv("PGENTRA_SHARED_CACHE", "1")
    monkeypatch.setenv("PGENTRA_CACHE_DIR", str(folder))
    parent = connector()
    tok = parent.token()
    assert identity_requests() == 1

    def child(i: int) -> str:
        inherited = parent.token()
        own = connector()  # the app created in the worker (gunicorn without --preload)
        mine = own.token()
        user = current_user_closing(psycopg2.connect(**own.conninfo())) if i == 0 else None
        return json.dumps({"inherited": inherited == tok, "own": mine == tok, "requests": own.token_requests, "user": user})

    children = [fork_child(lambda i=i: child(i)) for i in range(WORKERS)]
    for pid, r in children:
        got = json.loads(child_output(pid, r))
        assert got["inherited"] and got["own"] and got["requests"] == 0, got
        assert got["user"] in (None, APP_ROLE), got
    assert identity_requests() == 1, f"{WORKERS} forked workers made {identity_requests() - 1} identity requests"


def test_switching_sharing_off_is_honoured_per_process(folder):
    warm = fresh_process(folder)
    assert warm["requests"] == 1 and identity_requests() == 1
    for spelling in ["0", "false", "no", "OFF"]:
        off = fresh_process(folder, spelling)
        assert off["requests"] == 1, f"PGENTRA_SHARED_CACHE={spelling}: {off}"
    assert identity_requests() == 5, "each switched-off process asked for itself"
    on = fresh_process(folder)
    assert on == {"token": warm["token"], "requests": 0}
    assert identity_requests() == 5


def test_a_failure_is_shared_with_the_next_process_and_raised_as_the_same_class(folder):
    # Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
    faults([{"status": 429, "retry_after": 30}])
    first = fresh_process(folder)
    assert first.get("error") == "IdentityServiceError", first
    assert identity_requests() == 1
    second = fresh_process(folder)
    assert identity_requests() == 1, "the second process answered from the shared failure"
    assert second.get("error") == first["error"] and second["kind"] == first["kind"], second
    assert second["service_code"] == first["service_code"], second
    assert "another process's request" in second["message"], second["message"]
    # Switched off, a process asks for itself (and gets a token: the fault was used up).
    assert fresh_process(folder, "0")["requests"] == 1
    assert identity_requests() == 2
