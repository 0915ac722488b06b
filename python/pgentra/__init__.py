"""pgentra: passwordless access to Azure Database for PostgreSQL with Microsoft Entra ID tokens.

    import pgentra, psycopg2
    conn = psycopg2.connect(**pgentra.conninfo())     # a current token as the password

Configuration comes from Service Connector's AZURE_POSTGRESQL_* variables (any connection
string dialect, or discrete variables), the Azure SDK variables, and values passed by code.
Tokens come from the credential chain (managed identity, service principal, workload
identity, Azure CLI, azd) and live in a refresh-ahead cache in the Rust core.

Driver integrations: ``pgentra.psycopg2``, ``pgentra.psycopg`` (and psycopg_pool),
``pgentra.asyncpg``, ``pgentra.sqlalchemy``, and the Django engine ``"pgentra.django"``.
"""

from __future__ import annotations

# `typing` costs ~10 ms to import; annotations are strings here (PEP 563), so it is needed only
# by type checkers, which treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict

from ._pgentra import (
    ConfigError,
    CredentialError,
    DatabaseError,
    Error,
    IdentityServiceError,
    InternalError,
    NetworkError,
    TlsPolicyError,
    __version__,
)
from ._connector import Connector, _deprecated, default_connector, is_auth_failure


def _deprecated_code(self: Error) -> "Any":
    """Deprecated: the old name of `service_code` (the identity service's code, e.g.
    'AADSTS7000215'), kept for one release."""
    _deprecated("pgentra.Error.code", "service_code (the identity service's code)")
    return self.service_code


Error.code = property(_deprecated_code)  # type: ignore[attr-defined]

__all__ = [
    "Connector",
    "default_connector",
    "token",
    "conninfo",
    "connection_string",
    "token_async",
    "conninfo_async",
    "is_auth_failure",
    "Error",
    "ConfigError",
    "CredentialError",
    "IdentityServiceError",
    "NetworkError",
    "TlsPolicyError",
    "DatabaseError",
    "InternalError",
    "__version__",
]


def token() -> str:
    """The access token of the default connector (built from the environment on first use)."""
    return default_connector().token()


def conninfo(**overrides: Any) -> Dict[str, Any]:
    """Connection parameters with a current token, ready for ``psycopg2.connect(**d)``:
    host, port (int), dbname, user, password, sslmode (and other configured libpq
    parameters). ``overrides`` replace keys; None removes one."""
    return default_connector().conninfo(**overrides)


def connection_string(format: str = "libpq") -> str:
    """The connection string with a current token: libpq, uri, ado, jdbc, json, shell or pdo."""
    return default_connector().connection_string(format)


def dsn(format: str = "libpq") -> str:
    """Deprecated (DeprecationWarning): the old name of `connection_string`."""
    _deprecated("pgentra.dsn()", "connection_string()")
    return default_connector().connection_string(format)


async def token_async() -> str:
    """`token()` without blocking the event loop."""
    return await default_connector().token_async()


async def conninfo_async(**overrides: Any) -> Dict[str, Any]:
    """`conninfo()` without blocking the event loop."""
    return await default_connector().conninfo_async(**overrides)


_INTEGRATIONS = ("psycopg2", "psycopg", "asyncpg", "sqlalchemy", "django")


def __getattr__(name: str) -> Any:
    """`pgentra.psycopg2.connect()` works after a plain `import pgentra`: each driver
    integration is imported on first use (PEP 562), so `import pgentra` stays light and never
    imports a driver it does not need."""
    if name in _INTEGRATIONS:
        import importlib

        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
