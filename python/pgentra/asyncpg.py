"""asyncpg with a current Entra ID token for every new connection.

    import pgentra.asyncpg
    conn = await pgentra.asyncpg.connect()
    pool = await pgentra.asyncpg.create_pool(min_size=2, max_size=10)

The pool gets `password=` as a coroutine function (asyncpg calls it for every new
connection, so each gets the current token) and a `connect=` hook that fills in the other
parameters (the user may come from the token) and renews a token the server refused.
Tokens are acquired without blocking the event loop.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import asyncpg

from ._connector import Connector, asyncpg_final, asyncpg_params as connect_kwargs, default_connector, with_token_retry_async

__all__ = ["connect", "create_pool", "connect_kwargs"]


async def _params(c: Connector, user: Dict[str, Any]) -> Dict[str, Any]:
    # The caller's host, port, database, user and ssl go through the core's final check.
    return await asyncpg_final(c, user)


async def connect(*, connector: Optional[Connector] = None, **kwargs: Any) -> Any:
    """`asyncpg.connect` with the connector's parameters and a current token; keyword
    arguments win over the connector's."""
    c = connector or default_connector()
    return await with_token_retry_async(
        c,
        await _params(c, kwargs),
        lambda p: asyncpg.connect(**p),
        lambda: _params(c, kwargs),
        ours="password" not in kwargs,
        reports_sqlstate=True,
    )


def create_pool(*, connector: Optional[Connector] = None, **kwargs: Any) -> Any:
    """`asyncpg.create_pool` whose every new connection gets a current token. Returns the
    pool unopened, as asyncpg does: `await` it, or use `async with`."""
    c = connector or default_connector()
    ours = "password" not in kwargs and not c.password_mode
    if ours:
        kwargs["password"] = c.token_async  # asyncpg calls it for every new connection

    async def params(pool_kwargs: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[str]]:
        seen = (await c.conninfo_async()).get("password")
        # The pool's keywords win, except that their TLS can only be as strict or stricter.
        return await asyncpg_final(c, pool_kwargs), seen

    async def _connect(*args: Any, **pool_kwargs: Any) -> Any:
        p, seen = await params(pool_kwargs)
        try:
            return await asyncpg.connect(*args, **p)
        except Exception as e:  # noqa: BLE001
            if not ours or not c.refused(e, seen, reports_sqlstate=True):
                raise
            p, _ = await params(pool_kwargs)
            return await asyncpg.connect(*args, **p)

    return asyncpg.create_pool(connect=_connect, **kwargs)
