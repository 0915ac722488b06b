"""SQLAlchemy: sync (psycopg2, psycopg) and async (asyncpg) engines from the environment;
new pooled connections get a current token across a rotation."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

import pgentra
import pgentra.sqlalchemy
from conftest import APP_ROLE, libpq, needs_harness, rotate, terminate_backends

pytestmark = needs_harness

Q = sa.text("select current_user")


def _start_over() -> None:
    # The default connector's token may have been fetched right after an earlier test's
    # refusal and refused again by a later rotation: the core keeps such a token for 10 s (a
    # refusal of a token fetched after a refusal looks like one about the role), so start over.
    pgentra.default_connector().invalidate()


def test_sync_engine_from_the_environment():
    _start_over()
    engine = pgentra.sqlalchemy.create_engine()
    try:
        assert engine.url.drivername == "postgresql+psycopg2"
        assert engine.url.password is None
        with engine.connect() as conn:
            assert conn.execute(Q).scalar() == APP_ROLE
    finally:
        engine.dispose()


def test_sync_engines_across_a_rotation():
    for driver in ["postgresql+psycopg2", "postgresql+psycopg"]:
        c = pgentra.Connector(connection_string=libpq())
        url = pgentra.sqlalchemy.url_from(c, driver)
        engine = pgentra.sqlalchemy.create_engine(url, connector=c, pool_size=5, pool_pre_ping=True)
        try:
            with engine.connect() as conn:
                assert conn.execute(Q).scalar() == APP_ROLE
            rotate()
            terminate_backends()
            for _ in range(3):  # pre-ping finds the dead connection; the new one needs a current token
                with engine.connect() as conn:
                    assert conn.execute(Q).scalar() == APP_ROLE, driver
            assert c.token_requests == 2, driver
        finally:
            engine.dispose()


def test_async_engine_across_a_rotation():
    c = pgentra.Connector(connection_string=libpq())

    async def main():
        engine = pgentra.sqlalchemy.create_async_engine(connector=c, pool_size=5)
        try:
            assert engine.url.drivername == "postgresql+asyncpg"
            async with engine.connect() as conn:
                assert (await conn.execute(Q)).scalar() == APP_ROLE
            await asyncio.to_thread(rotate)
            await engine.dispose()  # new connections from here on
            async def one():
                async with engine.connect() as conn:
                    return (await conn.execute(sa.text("select current_user from pg_sleep(0.05)"))).scalar()
            assert await asyncio.gather(*[one() for _ in range(5)]) == [APP_ROLE] * 5
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert c.token_requests == 2


def test_async_engine_from_the_environment():
    _start_over()

    async def main():
        engine = pgentra.sqlalchemy.create_async_engine()
        try:
            async with engine.connect() as conn:
                return (await conn.execute(Q)).scalar()
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == APP_ROLE


def test_attach_to_an_engine_built_elsewhere():
    c = pgentra.Connector(connection_string=libpq())
    engine = sa.create_engine(f"postgresql+psycopg2://{c.host}:{c.port}/postgres?application_name=attached")
    pgentra.sqlalchemy.attach(engine, c)
    try:
        with engine.connect() as conn:
            assert conn.execute(Q).scalar() == APP_ROLE
            assert conn.execute(sa.text("show application_name")).scalar() == "attached"
    finally:
        engine.dispose()
