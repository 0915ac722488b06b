"""psycopg2 with a current Entra ID token for every new connection.

    import pgentra.psycopg2
    conn = pgentra.psycopg2.connect()                    # from AZURE_POSTGRESQL_*
    conn = pgentra.psycopg2.connect(application_name="x", connector=my_connector)
    pool = pgentra.psycopg2.ThreadedConnectionPool(1, 10)  # each new pooled connection too
"""

from __future__ import annotations

from typing import Any, Optional

import psycopg2
import psycopg2.extensions
import psycopg2.pool

from ._connector import Connector, default_connector, with_token_retry

__all__ = ["connect", "SimpleConnectionPool", "ThreadedConnectionPool"]


def connect(dsn: Optional[str] = None, *, connector: Optional[Connector] = None, **kwargs: Any) -> Any:
    """`psycopg2.connect` with the connector's parameters and a current token. Values in
    `dsn` and `kwargs` win over the connector's (kwargs also take connection_factory,
    cursor_factory). If the server refuses a token that was replaced before its expiry, the
    token is renewed once and the connection tried again."""
    c = connector or default_connector()
    user_params = dict(psycopg2.extensions.parse_dsn(dsn)) if dsn else {}
    user_params.update(kwargs)

    def params() -> dict:
        # The caller's values are merged by the core, which checks the final parameters.
        return c.conninfo(**user_params)

    return with_token_retry(c, params(), lambda p: psycopg2.connect(**p), params, ours="password" not in user_params)


class _PoolMixin:
    """Replaces the pool's connection factory: every connection it opens gets a current token
    (a pool created with plain keyword arguments would keep the first token for ever)."""

    _args: Any
    _kwargs: Any
    _pool: Any
    _used: Any
    _rused: Any

    def __init__(self, minconn: int, maxconn: int, *args: Any, connector: Optional[Connector] = None, **kwargs: Any):
        self._pgentra_connector = connector
        super().__init__(minconn, maxconn, *args, **kwargs)  # type: ignore[call-arg]

    def _connect(self, key: Any = None) -> Any:
        conn = connect(*self._args, connector=self._pgentra_connector, **self._kwargs)
        if key is not None:
            self._used[key] = conn
            self._rused[id(conn)] = key
        else:
            self._pool.append(conn)
        return conn


class SimpleConnectionPool(_PoolMixin, psycopg2.pool.SimpleConnectionPool):
    """`psycopg2.pool.SimpleConnectionPool` whose new connections get a current token."""


class ThreadedConnectionPool(_PoolMixin, psycopg2.pool.ThreadedConnectionPool):
    """`psycopg2.pool.ThreadedConnectionPool` whose new connections get a current token."""
