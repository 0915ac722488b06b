"""The module API and Connector against the identity emulator and the private PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import psycopg2
import pytest

import pgentra
import pgentra.psycopg2
from conftest import APP_ROLE, SP, TENANT, UAMI, child_output, faults, fork_child, libpq, needs_harness, reset, rotate, stats

pytestmark = needs_harness


def current_user(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("select current_user")
        return cur.fetchone()[0]


def fresh(**kw) -> pgentra.Connector:
    kw.setdefault("connection_string", libpq())
    return pgentra.Connector(**kw)


def test_module_level_functions_and_psycopg2():
    # Other tests rotate the role's token; start this one with a current token.
    pgentra.default_connector().invalidate()
    tok = pgentra.token()
    assert tok.count(".") == 2  # JWT-shaped
    d = pgentra.conninfo()
    assert set(d) == {"host", "port", "dbname", "user", "password", "sslmode"}
    assert isinstance(d["port"], int) and d["user"] == APP_ROLE and d["sslmode"] == "require"
    conn = psycopg2.connect(**d)
    try:
        assert current_user(conn) == APP_ROLE
    finally:
        conn.close()
    for f in ["libpq", "uri"]:  # libpq reads both
        conn = psycopg2.connect(pgentra.connection_string(f))
        try:
            assert current_user(conn) == APP_ROLE
        finally:
            conn.close()
    for f in ["ado", "jdbc", "json", "shell"]:
        assert APP_ROLE in pgentra.connection_string(f)
    assert pgentra.default_connector() is pgentra.default_connector()


def test_dsn_is_a_deprecated_alias_of_connection_string():
    c = pgentra.default_connector()
    with pytest.deprecated_call(match="connection_string"):
        assert pgentra.dsn("uri") == pgentra.connection_string("uri")
    with pytest.deprecated_call(match=r"Connector\.dsn\(\)"):
        assert c.dsn() == c.connection_string()
    with pytest.deprecated_call(match="connection_string_async"):
        assert asyncio.run(c.dsn_async("jdbc")) == asyncio.run(c.connection_string_async("jdbc"))


def test_psycopg2_integration_and_pool():
    conn = pgentra.psycopg2.connect(application_name="pgentra-test")
    try:
        assert current_user(conn) == APP_ROLE
        with conn.cursor() as cur:
            cur.execute("show application_name")
            assert cur.fetchone()[0] == "pgentra-test"
    finally:
        conn.close()
    pool = pgentra.psycopg2.ThreadedConnectionPool(1, 4, connector=fresh())
    try:
        conns = [pool.getconn() for _ in range(3)]
        assert [current_user(c) for c in conns] == [APP_ROLE] * 3
        for c in conns:
            pool.putconn(c)
    finally:
        pool.closeall()


def test_connector_user_info_invalidate_and_counters():
    c = fresh()
    assert c.token_requests == 0
    assert c.user() == APP_ROLE
    assert c.token_requests == 1
    t1 = c.token()
    assert c.token_requests == 1, "a cached token makes no request"
    info = c.token_info()
    assert info["credential"] == "managed-identity" and info["user"] == APP_ROLE
    assert info["expires_on"] > time.time() and t1 not in repr(info)
    c.invalidate()
    assert c.token() == t1  # the emulator keeps its token; pgentra asked again
    assert c.token_requests == 2
    assert "managed identity" in c.credential
    assert t1 not in repr(c)


def test_user_assigned_identity():
    c = fresh(client_id=UAMI)
    conn = psycopg2.connect(**c.conninfo())
    try:
        assert current_user(conn) == "pgentra-uami"
    finally:
        conn.close()


def test_64_threads_on_a_fresh_connector_make_one_identity_request():
    reset()
    c = fresh()
    before = stats()["msi_requests"]
    barrier = threading.Barrier(64)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            results.append(c.token())
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 64 and len(set(results)) == 1
    assert stats()["msi_requests"] - before == 1
    assert c.token_requests == 1


def test_wrong_client_secret_is_an_identity_service_error_with_the_aadsts_code():
    secret = "definitely-Wrong-secret-1234"
    c = fresh(
        connection_string=libpq("user=aad_pgentra_sp"),
        client_id=SP,
        tenant_id=TENANT,
        client_secret=secret,
        authority_host=os.environ["AZURE_AUTHORITY_HOST"],
    )
    with pytest.raises(pgentra.IdentityServiceError) as ei:
        c.token()
    e = ei.value
    assert e.service_code == "AADSTS7000215"
    with pytest.deprecated_call():
        assert e.code == "AADSTS7000215"
    assert e.kind == "identity service" and isinstance(e, pgentra.Error)
    for text in [str(e), repr(e), repr(e.args), repr(c), c.credential]:
        assert secret not in text
    # The async path raises the same.
    with pytest.raises(pgentra.IdentityServiceError) as ei:
        asyncio.run(c.token_async())
    assert ei.value.service_code == "AADSTS7000215" and secret not in str(ei.value)


def test_the_service_principal_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_ID", SP)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "emulator-secret")
    c = fresh(connection_string=libpq("user=aad_pgentra_sp"))
    conn = psycopg2.connect(**c.conninfo())
    try:
        assert current_user(conn) == "aad_pgentra_sp"
    finally:
        conn.close()


def test_token_async_does_not_block_the_event_loop():
    reset()
    faults([{"delay_ms": 500}])
    c = fresh()

    async def main():
        ticks = []
        stop = asyncio.Event()

        async def ticker():
            while not stop.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        await asyncio.sleep(0.03)
        start = time.monotonic()
        tokens = await asyncio.gather(*[c.token_async() for _ in range(8)])
        took = time.monotonic() - start
        stop.set()
        await t
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        return tokens, took, len(ticks), max(gaps)

    tokens, took, nticks, max_gap = asyncio.run(main())
    assert len(set(tokens)) == 1
    assert took >= 0.45, f"the fault should have delayed the request: {took:.3f}s"
    assert nticks >= 25, f"the loop ticked only {nticks} times in {took:.3f}s"
    assert max_gap < 0.2, f"the event loop stalled for {max_gap:.3f}s"
    assert c.token_requests == 1
    assert stats()["msi_requests"] == 1

    # Cached: comes back at once, with no identity request.
    async def again():
        t0 = time.monotonic()
        tok = await c.token_async()
        info = await c.conninfo_async(application_name="x")
        return tok, info, time.monotonic() - t0

    tok, info, dt = asyncio.run(again())
    assert tok == tokens[0] and info["password"] == tok and info["application_name"] == "x"
    assert dt < 0.05 and c.token_requests == 1


def test_module_level_async():
    async def main():
        return await pgentra.token_async(), await pgentra.conninfo_async()

    tok, info = asyncio.run(main())
    assert info["password"] == tok and info["user"] == APP_ROLE


def test_async_cancellation_leaves_the_connector_usable():
    reset()
    faults([{"delay_ms": 300}])
    c = fresh()

    async def main():
        task = asyncio.create_task(c.token_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.4)  # the request finishes on pgentra's runtime and fills the cache
        return await c.token_async()

    assert asyncio.run(main()).count(".") == 2
    assert c.token_requests == 1


# pgentra's runtime threads exist in the parent: exactly the case the core's fork handler is
# for (Python 3.12+ warns about any fork of a threaded process).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_after_fork_gets_a_token_and_connects():
    c = fresh()
    parent_token = c.token()
    pgentra.token()
    def child() -> str:
        assert c.token() == parent_token, "the inherited token"
        c.invalidate()
        tok = c.token()  # a new request from the child's own runtime
        conn = psycopg2.connect(**c.conninfo())
        user = current_user(conn)
        conn.close()
        conn = pgentra.psycopg2.connect()  # the default connector, inherited
        user2 = current_user(conn)
        conn.close()
        got = asyncio.run(c.token_async())
        return f"{user} {user2} {tok == got} {c.token_requests}"

    out = child_output(*fork_child(child))
    assert out == f"{APP_ROLE} {APP_ROLE} True 2"
    assert c.token() == parent_token and c.token_requests == 1, "the parent is untouched"


def test_a_rotated_token_is_renewed_on_the_next_connection():
    c = fresh()
    old = c.token()
    rotate()
    with pytest.raises(psycopg2.OperationalError) as ei:
        psycopg2.connect(**c.conninfo())  # the cached token no longer works: the seed's anti-pattern
    assert pgentra.is_auth_failure(ei.value)
    conn = pgentra.psycopg2.connect(connector=c)  # renews once and connects
    try:
        assert current_user(conn) == APP_ROLE
    finally:
        conn.close()
    assert c.token() != old and c.token_requests == 2


def test_debug_logs_never_show_the_token(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "token"
    code = f"import pgentra; open({str(out)!r}, 'w').write(pgentra.Connector(connection_string={libpq()!r}).token())"
    p = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PGENTRA_LOG": "trace"}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    tok = out.read_text()
    assert tok.count(".") == 2
    assert "token acquired" in p.stderr, p.stderr
    assert tok not in p.stderr and tok not in p.stdout
