"""psycopg 3 and psycopg_pool: connect, pools of 20 across a token rotation, async."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import psycopg_pool
import pytest

import pgentra
import pgentra.psycopg
from conftest import APP_ROLE, libpq, needs_harness, rotate, terminate_backends

pytestmark = needs_harness


def who(conn) -> str:
    return conn.execute("select current_user").fetchone()[0]


def test_connect():
    with pgentra.psycopg.connect() as conn:
        assert who(conn) == APP_ROLE
    c = pgentra.Connector(connection_string=libpq())
    with pgentra.psycopg.connect("application_name=pgx", connector=c, autocommit=True) as conn:
        assert who(conn) == APP_ROLE
        assert conn.execute("show application_name").fetchone()[0] == "pgx"
        assert conn.autocommit
    with pgentra.psycopg.Connection.connect() as conn:
        assert isinstance(conn, pgentra.psycopg.Connection) and who(conn) == APP_ROLE


def test_pool_of_20_across_a_rotation():
    c = pgentra.Connector(connection_string=libpq())
    cls = pgentra.psycopg.connection_class(c)
    with psycopg_pool.ConnectionPool(min_size=20, max_size=20, connection_class=cls, open=True, timeout=30) as pool:
        pool.wait(timeout=30)
        assert pool.get_stats()["pool_size"] == 20

        def run_all() -> list:
            results, errors = [], []
            barrier = threading.Barrier(20)

            def work():
                try:
                    with pool.connection() as conn:
                        barrier.wait(timeout=30)  # all 20 connections in use at once
                        results.append(who(conn))
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=work) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            return results

        assert run_all() == [APP_ROLE] * 20
        assert c.token_requests == 1
        old = c.token()
        rotate()  # the cached token no longer logs in
        assert terminate_backends() >= 20  # every pooled connection is gone
        pool.check()  # finds them broken and opens new ones: each needs a current token
        pool.wait(timeout=30)
        assert run_all() == [APP_ROLE] * 20
        assert c.token() != old
        assert c.token_requests == 2, "one renewal for all 20 new connections"


def test_default_connection_class_in_a_pool():
    with psycopg_pool.ConnectionPool(min_size=2, max_size=4, connection_class=pgentra.psycopg.Connection, open=True) as pool:
        with pool.connection() as conn:
            assert who(conn) == APP_ROLE


def test_async_connection_and_pool_across_a_rotation():
    c = pgentra.Connector(connection_string=libpq())
    acls = pgentra.psycopg.async_connection_class(c)

    async def main():
        conn = await pgentra.psycopg.connect_async(connector=c)
        async with conn:
            cur = await conn.execute("select current_user")
            assert (await cur.fetchone())[0] == APP_ROLE
        async with psycopg_pool.AsyncConnectionPool(min_size=5, max_size=5, connection_class=acls, open=False) as pool:
            await pool.wait(timeout=30)

            async def one():
                async with pool.connection() as conn:
                    cur = await conn.execute("select current_user, pg_sleep(0.05)")
                    return (await cur.fetchone())[0]

            assert await asyncio.gather(*[one() for _ in range(10)]) == [APP_ROLE] * 10
            await asyncio.to_thread(rotate)
            await asyncio.to_thread(terminate_backends)
            await pool.check()
            await pool.wait(timeout=30)
            assert await asyncio.gather(*[one() for _ in range(10)]) == [APP_ROLE] * 10

    asyncio.run(main())
    assert c.token_requests == 2


def test_the_password_given_by_the_caller_is_not_retried():
    c = pgentra.Connector(connection_string=libpq())
    with pytest.raises(psycopg.OperationalError) as ei:
        pgentra.psycopg.connect(connector=c, password="wrong")
    assert pgentra.is_auth_failure(ei.value)
    assert c.token_requests == 1
