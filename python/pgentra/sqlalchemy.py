"""SQLAlchemy engines whose every new pooled connection gets a current Entra ID token.

    import pgentra.sqlalchemy
    engine = pgentra.sqlalchemy.create_engine()                 # postgresql+psycopg2, from AZURE_POSTGRESQL_*
    engine = pgentra.sqlalchemy.create_engine("postgresql+psycopg://")
    aengine = pgentra.sqlalchemy.create_async_engine()          # postgresql+asyncpg
    pgentra.sqlalchemy.attach(existing_engine, connector)       # any engine you built yourself

A `do_connect` listener fills in the connector's parameters (values in the URL win) and the
current token for each new DBAPI connection, and renews a token the server refused. Drivers:
psycopg2, psycopg (3, sync and async) and asyncpg. An async engine acquires tokens without
blocking the event loop.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from ._connector import Connector, asyncpg_final, default_connector
from ._pgentra import Error as _PgEntraError

try:  # SQLAlchemy 2.1 renamed it; both spellings exist there
    from sqlalchemy.util import await_only as _await
except ImportError:  # pragma: no cover
    from sqlalchemy.util import await_ as _await  # type: ignore[attr-defined,no-redef]

__all__ = ["create_engine", "create_async_engine", "attach", "url_from"]


def url_from(connector: Connector, drivername: str = "postgresql+psycopg2") -> URL:
    """A URL with the connector's host, port and database (no user or password: those are
    filled in for each connection)."""
    return URL.create(drivername, host=connector.host, port=connector.port, database=connector.dbname)


def attach(engine: Any, connector: Optional[Connector] = None) -> Any:
    """Make every new DBAPI connection of `engine` (sync or async) use the connector's
    current token. Returns the engine."""
    c = connector or default_connector()
    sync_engine = getattr(engine, "sync_engine", engine)

    @event.listens_for(sync_engine, "do_connect")
    def _do_connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Dict[str, Any]) -> Any:
        if cparams.get("password"):
            return None  # a password in the URL: SQLAlchemy connects as usual
        from_url = dict(cparams)
        is_async = bool(getattr(dialect, "is_async", False))

        def params() -> Dict[str, Any]:
            if dialect.driver == "asyncpg":
                # The URL's host, port, database and ssl go through the core's final check.
                return _await(asyncpg_final(c, from_url))
            # psycopg2 and psycopg take libpq names: the URL's values are merged by the core,
            # which checks the final parameters (`?sslmode=prefer` cannot lower the mode).
            return _await(c.conninfo_async(**from_url)) if is_async else c.conninfo(**from_url)

        try:
            p = params()
        except _PgEntraError as e:
            raise _as_operational_error(e) from e
        try:
            return dialect.connect(*cargs, **p)
        except Exception as e:  # noqa: BLE001 - any driver's error type
            if not c.refused(e, p.get("password"), reports_sqlstate=dialect.driver == "asyncpg"):
                raise
            try:
                p = params()
            except _PgEntraError as e2:
                raise _as_operational_error(e2) from e2
            return dialect.connect(*cargs, **p)

    return engine


def _as_operational_error(e: BaseException) -> Any:
    """A pgentra error (configuration, credential, identity service) while connecting, as
    SQLAlchemy's own connection error: `sqlalchemy.exc.OperationalError` with the pgentra
    error as `.orig` and `__cause__`, so `pool_pre_ping`, retry and health-check code written
    for SQLAlchemy sees what it expects. SQLAlchemy passes it through unchanged (it wraps
    only the driver's errors)."""
    return sqlalchemy.exc.OperationalError(None, None, e)


def create_engine(url: Union[str, URL, None] = None, *, connector: Optional[Connector] = None, **kwargs: Any) -> Any:
    """`sqlalchemy.create_engine` with a current token for every new connection. Without a
    URL, one is built from the connector's configuration with the psycopg2 driver."""
    c = connector or default_connector()
    u = make_url(url) if url is not None else url_from(c, "postgresql+psycopg2")
    return attach(sqlalchemy.create_engine(u, **kwargs), c)


def create_async_engine(url: Union[str, URL, None] = None, *, connector: Optional[Connector] = None, **kwargs: Any) -> Any:
    """`sqlalchemy.ext.asyncio.create_async_engine` with a current token for every new
    connection. Without a URL, one is built from the connector's configuration with the
    asyncpg driver."""
    from sqlalchemy.ext.asyncio import create_async_engine as _create

    c = connector or default_connector()
    u = make_url(url) if url is not None else url_from(c, "postgresql+asyncpg")
    return attach(_create(u, **kwargs), c)
