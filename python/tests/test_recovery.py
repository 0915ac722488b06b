"""Issue #17 item 3 for every Python integration: a refusal of the token the cache still holds
(revoked through the emulator; the harness's PostgreSQL answers 28P01) costs exactly one
identity request and one reconnect; 10 connects as a role that does not exist cost at most 2
identity requests (the core's REFUSAL_HOLD). Each integration reports what its driver can tell:
asyncpg the SQLSTATE, psycopg 3 libpq's used-password fact, psycopg2 nothing (the core then
treats the failure as a possible refusal)."""

from __future__ import annotations

import asyncio
import itertools
import pytest

import pgentra
from conftest import APP_ROLE, configure_django, current_user_closing, identity_requests, libpq, needs_harness, revoke

pytestmark = needs_harness

_fresh = itertools.count(1)


def via_psycopg2(c):
    import pgentra.psycopg2

    return current_user_closing(pgentra.psycopg2.connect(connector=c))


def via_psycopg(c):
    import pgentra.psycopg

    with pgentra.psycopg.connect(connector=c) as conn:
        return conn.execute("select current_user").fetchone()[0]


def via_asyncpg(c):
    import pgentra.asyncpg

    async def run():
        conn = await pgentra.asyncpg.connect(connector=c)
        try:
            return await conn.fetchval("select current_user")
        finally:
            await conn.close()

    return asyncio.run(run())


_engines: dict = {}


def via_sqlalchemy(c):
    import sqlalchemy

    import pgentra.sqlalchemy

    engine = _engines.get(id(c))
    if engine is None:
        engine = _engines[id(c)] = pgentra.sqlalchemy.create_engine(connector=c, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        return conn.execute(sqlalchemy.text("select current_user")).scalar()


def via_django(c):
    """Django builds its connector from DATABASES; `c` only names the configuration (a timeout
    of its own, the user) and is replaced by the engine's connector, which the test reads."""
    return current_user_closing(_django_wrapper(c))


def _django_wrapper(c):
    pytest.importorskip("django")
    configure_django()
    from pgentra.django.base import DatabaseWrapper

    opts = {"credential": "managed-identity", "connection_string": libpq(), "timeout": c.test_timeout}
    sd = {"ENGINE": "pgentra.django", "NAME": "postgres", "USER": c.test_user or "", "PASSWORD": "", "HOST": "", "PORT": "",
          "ATOMIC_REQUESTS": False, "AUTOCOMMIT": True, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
          "TIME_ZONE": None, "TEST": {}, "OPTIONS": opts}
    return DatabaseWrapper(sd, "recovery")


class _Config:
    """For Django: what DATABASES will say; `token()` reads the engine's own connector."""

    def __init__(self, timeout, user):
        self.test_timeout, self.test_user = timeout, user

    def token(self):
        return _django_wrapper(self).pgentra_connector().token()


INTEGRATIONS = [via_psycopg2, via_psycopg, via_asyncpg, via_sqlalchemy, via_django]


def _connector(integration, user=None):
    timeout = 50 + next(_fresh) / 1000
    if integration is via_django:
        return _Config(timeout, user)
    kw = {"user": user} if user else {}
    return pgentra.Connector(connection_string=libpq(), credential="managed-identity", timeout=timeout, **kw)


@pytest.mark.parametrize("integration", INTEGRATIONS, ids=lambda f: f.__name__)
def test_a_revoked_cached_token_costs_one_identity_request(integration):
    c = _connector(integration)
    assert integration(c) == APP_ROLE
    old = c.token()
    revoke(old)
    before = identity_requests()
    assert integration(c) == APP_ROLE
    assert identity_requests() == before + 1, "exactly one new identity request"
    assert c.token() != old


@pytest.mark.parametrize("integration", INTEGRATIONS, ids=lambda f: f.__name__)
def test_a_role_that_does_not_exist_costs_at_most_two_identity_requests(integration):
    c = _connector(integration, user=f"no-such-role-{integration.__name__}")
    before = identity_requests()
    for _ in range(10):
        with pytest.raises(Exception) as info:
            integration(c)
        assert not isinstance(info.value, AssertionError)
    made = identity_requests() - before
    assert 1 <= made <= 2, f"10 failed connects made {made} identity requests"
