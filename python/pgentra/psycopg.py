"""psycopg 3 (and psycopg_pool) with a current Entra ID token for every new connection.

    import pgentra.psycopg
    conn = pgentra.psycopg.connect()                                   # AZURE_POSTGRESQL_*
    pool = psycopg_pool.ConnectionPool(connection_class=pgentra.psycopg.Connection)
    apool = psycopg_pool.AsyncConnectionPool(connection_class=pgentra.psycopg.AsyncConnection)
    Mine = pgentra.psycopg.connection_class(my_connector)             # another configuration

`Connection.connect` (which pools call for each new connection) asks the connector for the
current parameters; values in the conninfo string and keyword arguments win over them. If the
server refuses a token that was replaced before its expiry, the token is renewed once and the
connection tried again.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Type

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ._connector import Connector, default_connector, with_token_retry, with_token_retry_async

__all__ = ["Connection", "AsyncConnection", "connect", "connect_async", "connection_class", "async_connection_class"]


def _user_params(conninfo: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    user = dict(conninfo_to_dict(conninfo)) if conninfo else {}
    user.update(kwargs)
    return user


class Connection(psycopg.Connection):  # type: ignore[type-arg]
    """A psycopg Connection whose `connect` injects the connector's current conninfo."""

    pgentra_connector: ClassVar[Optional[Connector]] = None

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        c = cls.pgentra_connector or default_connector()
        user = _user_params(conninfo, kwargs)

        def params() -> Dict[str, Any]:
            # The caller's values are merged by the core, which checks the final parameters.
            return c.conninfo(**user)

        base = super().connect
        return with_token_retry(c, params(), lambda p: base(**p), params, ours="password" not in user)


class AsyncConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
    """A psycopg AsyncConnection whose `connect` injects the connector's current conninfo,
    acquired without blocking the event loop."""

    pgentra_connector: ClassVar[Optional[Connector]] = None

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        c = cls.pgentra_connector or default_connector()
        user = _user_params(conninfo, kwargs)

        async def params() -> Dict[str, Any]:
            return await c.conninfo_async(**user)

        base = super().connect
        return await with_token_retry_async(c, await params(), lambda p: base(**p), params, ours="password" not in user)


def connection_class(connector: Connector) -> Type[Connection]:
    """A `Connection` subclass bound to `connector` (for pools of another configuration)."""
    return type("Connection", (Connection,), {"pgentra_connector": connector, "__module__": __name__})


def async_connection_class(connector: Connector) -> Type[AsyncConnection]:
    """An `AsyncConnection` subclass bound to `connector`."""
    return type("AsyncConnection", (AsyncConnection,), {"pgentra_connector": connector, "__module__": __name__})


def connect(conninfo: str = "", *, connector: Optional[Connector] = None, **kwargs: Any) -> Connection:
    """`psycopg.connect` with a current token (any psycopg.connect keyword is accepted)."""
    cls = connection_class(connector) if connector is not None else Connection
    return cls.connect(conninfo, **kwargs)


async def connect_async(conninfo: str = "", *, connector: Optional[Connector] = None, **kwargs: Any) -> AsyncConnection:
    """`psycopg.AsyncConnection.connect` with a current token."""
    cls = async_connection_class(connector) if connector is not None else AsyncConnection
    return await cls.connect(conninfo, **kwargs)
