"""asyncpg: connect, and a pool whose new connections get a current token across a rotation."""

from __future__ import annotations

import asyncio

import pytest

import pgentra
import pgentra.asyncpg
from conftest import APP_ROLE, libpq, needs_harness, rotate, terminate_backends

pytestmark = needs_harness


def test_connect():
    async def main():
        conn = await pgentra.asyncpg.connect()
        try:
            assert await conn.fetchval("select current_user") == APP_ROLE
        finally:
            await conn.close()
        c = pgentra.Connector(connection_string=libpq("application_name=apg"))
        conn = await pgentra.asyncpg.connect(connector=c, command_timeout=10)
        try:
            assert await conn.fetchval("select current_user") == APP_ROLE
            assert await conn.fetchval("show application_name") == "apg"
            assert await conn.fetchval("select ssl from pg_stat_ssl where pid = pg_backend_pid()") is True
        finally:
            await conn.close()

    asyncio.run(main())


def test_pool_across_a_rotation():
    c = pgentra.Connector(connection_string=libpq())

    async def main():
        async with pgentra.asyncpg.create_pool(connector=c, min_size=4, max_size=8) as pool:
            async def one():
                async with pool.acquire() as conn:
                    return await conn.fetchval("select current_user from pg_sleep(0.05)")

            assert await asyncio.gather(*[one() for _ in range(16)]) == [APP_ROLE] * 16
            assert c.token_requests == 1
            old = await c.token_async()
            await asyncio.to_thread(rotate)
            await asyncio.to_thread(terminate_backends)
            await pool.expire_connections()  # asyncpg reconnects lazily: each new connection needs a current token
            assert await asyncio.gather(*[one() for _ in range(16)]) == [APP_ROLE] * 16
            assert await c.token_async() != old
            assert c.token_requests == 2

    asyncio.run(main())


def test_rotation_with_plain_connect():
    c = pgentra.Connector(connection_string=libpq())

    async def main():
        await c.token_async()
        await asyncio.to_thread(rotate)
        conn = await pgentra.asyncpg.connect(connector=c)
        try:
            return await conn.fetchval("select current_user")
        finally:
            await conn.close()

    assert asyncio.run(main()) == APP_ROLE
    assert c.token_requests == 2


def test_secret_mode_pool_uses_the_configured_password():
    import asyncpg

    c = pgentra.Connector(connection_string=libpq("user=nobody password=wrong"))
    assert c.password_mode

    async def main():
        with pytest.raises(asyncpg.InvalidPasswordError):
            async with pgentra.asyncpg.create_pool(connector=c, min_size=1, max_size=1):
                pass

    asyncio.run(main())
