"""The Python face of the core's Connector: the async methods, the process-wide default
connector, and the small helpers the driver integrations share."""

from __future__ import annotations

import os
import _thread  # the lock type of threading.Lock, without importing threading (3 ms)
# `typing` costs ~10 ms to import; annotations are strings here (PEP 563), so it is needed only
# by type checkers, which treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from . import _pgentra

__all__ = ["Connector", "default_connector", "is_auth_failure", "failure_facts", "asyncpg_params", "asyncpg_final"]


def _settle(fut: Any, error: Optional[BaseException], value: Any) -> None:
    if fut.done():  # the awaiting task was cancelled
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


async def _await_core(start: Callable[..., Any], *args: Any) -> Any:
    """Run one of the binding's `_start_*` methods on the running event loop.

    A cached token (or secret mode, or an immediate error) comes back from `start` at once,
    with no thread hop. Otherwise the request runs on pgentra's own runtime, without any
    thread blocked on it, and the binding calls `done` from a pgentra thread when it is
    finished; `call_soon_threadsafe` hands the result to this loop. The loop's default
    executor is not used: it stays free for the work it exists for (asyncio's getaddrinfo,
    which asyncpg's connect uses, runs there).
    """
    import asyncio  # here, not at import time: sync-only programs never pay for asyncio

    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def done(error: Optional[BaseException], value: Any) -> None:
        try:
            loop.call_soon_threadsafe(_settle, fut, error, value)
        except RuntimeError:  # the loop was closed meanwhile: nobody is waiting
            pass

    ready = start(done, *args)
    if ready is not None:
        return ready
    return await fut


def _deprecated(old: str, new: str) -> None:
    """Old names stay for one release and warn with DeprecationWarning (shown by default in
    __main__, under pytest and with -W default)."""
    import warnings

    warnings.warn(f"pgentra: {old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


class Connector(_pgentra.Connector):
    """Reaches one Azure Database for PostgreSQL server with a current Entra ID token (or the
    configured password). Configuration comes from the AZURE_POSTGRESQL_* variables (or
    another prefix), the Azure SDK variables, and these keyword arguments, which win.

    ``credential="auto"`` and ``allow_insecure=False`` force nothing: ``PGENTRA_CREDENTIAL``
    and ``PGENTRA_ALLOW_INSECURE`` still apply. Share one connector per process: it holds the
    token cache.
    """

    async def token_async(self) -> str:
        """The access token, without blocking the event loop."""
        return await _await_core(self._start_token)

    async def conninfo_async(self, **overrides: Any) -> Dict[str, Any]:
        """`conninfo(**overrides)`, without blocking the event loop."""
        return await _await_core(self._start_conninfo, overrides or None)

    async def connection_string_async(self, format: str = "libpq") -> str:
        """`connection_string(format)` without blocking the event loop (waits for the token
        off the loop, then renders)."""
        if not self.password_mode:
            await self.token_async()
        return self.connection_string(format)

    def dsn(self, format: str = "libpq") -> str:
        """Deprecated (DeprecationWarning): the old name of `connection_string`."""
        _deprecated("Connector.dsn()", "connection_string()")
        return self.connection_string(format)

    async def dsn_async(self, format: str = "libpq") -> str:
        """Deprecated (DeprecationWarning): the old name of `connection_string_async`."""
        _deprecated("Connector.dsn_async()", "connection_string_async()")
        return await self.connection_string_async(format)

    def renew(self, rejected: Optional[str] = None) -> None:
        """Drop the cached token after the server refused it. Given the refused token, drop
        it only if it is still the cached one (compare-and-invalidate in the core), so that
        many connections failing together cause one new request."""
        if self.password_mode:
            return
        if rejected is None:
            self.invalidate()
        else:
            self.invalidate_if(rejected)

    async def renew_async(self, rejected: Optional[str] = None) -> None:
        """`renew`; it never waits for the network, so it is safe on the event loop."""
        self.renew(rejected)

    def refused(self, exc: BaseException, token: Optional[str], reports_sqlstate: bool = False) -> bool:
        """A connect with `token` failed with `exc`: whether to connect again, once, with a new
        token. The driver's facts go to the core, which decides (see `failure_facts`);
        concurrent refusals of one token cause one identity request. `reports_sqlstate`: the
        driver reports every server error with its SQLSTATE (asyncpg), so an error without
        one is not the server's."""
        if self.password_mode or not token:
            return False
        sqlstate, used_password = failure_facts(exc)
        if sqlstate is None and used_password is None:
            if reports_sqlstate or not _is_operational(exc):
                return False
        return self._connect_failed(token, sqlstate, used_password)


_default: Optional[Connector] = None
_default_lock = _thread.allocate_lock()


def default_connector() -> Connector:
    """The process-wide connector built from the environment on first use (thread-safe).
    A configuration error is raised on every call until the environment is fixed."""
    global _default
    c = _default
    if c is None:
        with _default_lock:
            c = _default
            if c is None:
                c = _default = Connector()
    return c


def _reset_default_for_tests() -> None:
    global _default
    with _default_lock:
        _default = None


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at fork time; it does not exist here.
    # The connector itself stays: the core renews its runtime in the child and keeps the
    # inherited token.
    global _default_lock
    _default_lock = _thread.allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _chain(exc: BaseException) -> Any:
    """`exc` and what it wraps (SQLAlchemy's .orig, __cause__), at most 5 deep."""
    e: Optional[BaseException] = exc
    for _ in range(5):
        if e is None:
            return
        yield e
        e = getattr(e, "orig", None) or e.__cause__


def failure_facts(exc: BaseException) -> Tuple[Optional[str], Optional[bool]]:
    """What a driver's connect error tells, never read from its message (servers localize
    them): the SQLSTATE (asyncpg's `sqlstate`, psycopg's `sqlstate`, psycopg2's `pgcode`),
    else libpq's PQconnectionUsedPassword of the failed connection (psycopg 3's
    `OperationalError.pgconn.used_password`), else (None, None): psycopg2 tells neither for a
    failed connect."""
    for e in _chain(exc):
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(code, str) and code:
            return code, None
        used = getattr(getattr(e, "pgconn", None), "used_password", None)
        if isinstance(used, bool):
            return None, used
    return None, None


def _is_operational(exc: BaseException) -> bool:
    """A DB-API OperationalError (what libpq drivers raise for a failed connect); a
    ProgrammingError (a malformed DSN) or a Python error is never a refusal."""
    return any(any(c.__name__ == "OperationalError" for c in type(e).__mro__) for e in _chain(exc))


def is_auth_failure(exc: BaseException) -> bool:
    """Whether a driver's connection error may be the server refusing the password, by the
    core's rule (pgentra.recovery): SQLSTATE 28P01; without a SQLSTATE, a failed libpq connect
    that had sent a password; with neither fact (psycopg2), any OperationalError. Message text
    is never read."""
    sqlstate, used_password = failure_facts(exc)
    if sqlstate is None and used_password is None and not _is_operational(exc):
        return False
    return _pgentra._may_be_refusal(sqlstate, used_password)


def with_token_retry(connector: Connector, params: Dict[str, Any], connect: Callable[[Dict[str, Any]], Any],
                     refresh: Callable[[], Dict[str, Any]], ours: bool = True) -> Any:
    """`connect(params)`; if the server may have refused our token (the core decides), renew
    it once and connect again with `refresh()`'s parameters. `ours` is False when the caller
    supplied the password itself: then nothing is retried."""
    try:
        return connect(params)
    except Exception as e:  # noqa: BLE001 - any driver's error type
        if not ours or not connector.refused(e, params.get("password")):
            raise
        return connect(refresh())


async def with_token_retry_async(connector: Connector, params: Dict[str, Any],
                                 connect: Callable[[Dict[str, Any]], Awaitable[Any]],
                                 refresh: Callable[[], Awaitable[Dict[str, Any]]], ours: bool = True,
                                 reports_sqlstate: bool = False) -> Any:
    try:
        return await connect(params)
    except Exception as e:  # noqa: BLE001
        if not ours or not connector.refused(e, params.get("password"), reports_sqlstate):
            raise
        return await connect(await refresh())


def asyncpg_params(info: Dict[str, Any]) -> Dict[str, Any]:
    """Translate `Connector.conninfo()` (libpq names) into asyncpg.connect keywords. sslmode
    becomes `ssl` (asyncpg takes the libpq mode names), application_name goes into
    server_settings, connect_timeout becomes `timeout`; other libpq parameters have no
    asyncpg equivalent and are left out."""
    out: Dict[str, Any] = {}
    for src, dst in (("host", "host"), ("port", "port"), ("user", "user"), ("dbname", "database"), ("password", "password"), ("sslmode", "ssl")):
        if src in info:
            out[dst] = info[src]
    mode, root = info.get("sslmode"), info.get("sslrootcert")
    if mode in ("verify-ca", "verify-full") and root:
        # asyncpg takes no sslrootcert argument: the CA goes in a context of our own.
        import ssl as ssl_module

        ctx = ssl_module.create_default_context(cafile=None if root == "system" else root)
        ctx.check_hostname = mode == "verify-full"
        out["ssl"] = ctx
    if "application_name" in info:
        out["server_settings"] = {"application_name": info["application_name"]}
    if "connect_timeout" in info:
        try:
            out["timeout"] = float(info["connect_timeout"])
        except ValueError:
            pass
    return out


_MODE_RANK = {"disable": 0, "allow": 1, "prefer": 2, "require": 3, "verify-ca": 4, "verify-full": 5}


def _asyncpg_ssl_mode(ssl: Any) -> Optional[str]:
    """The libpq sslmode an asyncpg `ssl` argument amounts to."""
    if ssl is None:
        return None
    if ssl is False:
        return "disable"
    if ssl is True:
        return "verify-full"  # asyncpg: a default context, which checks chain and name
    if isinstance(ssl, str):
        return ssl.strip().lower()
    import ssl as ssl_module

    if isinstance(ssl, ssl_module.SSLContext):
        if ssl.verify_mode == ssl_module.CERT_REQUIRED:
            return "verify-full" if ssl.check_hostname else "verify-ca"
        return "require"
    return None


async def asyncpg_final(connector: Connector, user: Dict[str, Any]) -> Dict[str, Any]:
    """asyncpg.connect keywords: the caller's host, port, database, user and ssl are merged by
    the core, which checks what leaves (a weaker mode never replaces a stricter one, an Azure
    server gets verify-full with its CA); the caller's SSLContext is kept only when it is at
    least as strict. Other keywords of the caller win as they are."""
    user = dict(user)
    lib: Dict[str, Any] = {}
    for src, dst in (("host", "host"), ("port", "port"), ("database", "dbname"), ("user", "user")):
        if src in user:
            v = user.pop(src)
            if v is not None:
                lib[dst] = v
    if isinstance(user.get("password"), str):
        lib["password"] = user.pop("password")
    theirs = user.pop("ssl", None)
    mode = _asyncpg_ssl_mode(theirs)
    if mode is not None:
        lib["sslmode"] = mode
    info = await connector.conninfo_async(**lib)
    p = asyncpg_params(info)
    if mode is not None and not isinstance(theirs, (str, bool)) and _MODE_RANK.get(mode, 0) >= _MODE_RANK.get(info.get("sslmode", "require"), 3):
        p["ssl"] = theirs
    if "server_settings" in p and "server_settings" in user:
        user["server_settings"] = {**p["server_settings"], **user["server_settings"]}
    p.update(user)
    return p
