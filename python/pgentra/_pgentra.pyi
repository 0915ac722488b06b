"""Type stubs for the Rust extension module pgentra._pgentra."""

from os import PathLike
from typing import Any, Callable, ClassVar, Dict, Optional, Union

__version__: str

class Error(Exception):
    """Base class of every pgentra error."""

    kind: ClassVar[Optional[str]]
    """The core's error kind: 'configuration', 'credential', 'identity service', 'network',
    'TLS policy', 'database' or 'internal'."""
    kind_id: ClassVar[Optional[int]]
    """The core's error kind number (1 to 7)."""
    service_code: Optional[str]
    """The identity service's own error code, e.g. 'AADSTS7000215', or None."""
    @property
    def code(self) -> Optional[str]:
        """Deprecated (DeprecationWarning): the old name of `service_code`."""

class ConfigError(Error): ...
class CredentialError(Error): ...
class IdentityServiceError(Error): ...
class NetworkError(Error): ...
class TlsPolicyError(Error): ...
class DatabaseError(Error): ...
class InternalError(Error): ...

class Connector:
    def __new__(
        cls,
        prefix: Optional[str] = None,
        connection_string: Optional[str] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        dbname: Optional[str] = None,
        user: Optional[str] = None,
        credential: str = "auto",
        client_id: Optional[str] = None,
        tenant_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        scope: Optional[str] = None,
        allow_insecure: bool = False,
        timeout: Optional[float] = None,
        *,
        password: Optional[str] = None,
        sslmode: Optional[str] = None,
        authority_host: Optional[str] = None,
        certificate_path: Optional[Union[str, PathLike[str]]] = None,
        federated_token_file: Optional[Union[str, PathLike[str]]] = None,
        allow_unverified_tls: bool = False,
    ) -> "Connector": ...
    def token(self) -> str:
        """The access token (cached; refreshed ahead of expiry). Releases the GIL while waiting."""
    def conninfo(self, **overrides: Any) -> Dict[str, Any]:
        """host, port (int), dbname, user, password (a current token), sslmode, and other
        configured libpq parameters; `overrides` replace keys (None removes one)."""
    def connection_string(self, format: str = "libpq") -> str:
        """The connection string with a current token: libpq, uri, ado, jdbc, json, shell or pdo."""
    def user(self) -> str:
        """The database user: explicit, else configured, else from the token's claims."""
    def invalidate(self) -> None:
        """Drop the cached token so that the next call acquires a new one."""
    def invalidate_if(self, rejected: str) -> bool:
        """Drop `rejected` only if it is still the cached token; whether it was dropped."""
    def _connect_failed(self, token: str, sqlstate: Optional[str] = None, used_password: Optional[bool] = None) -> bool:
        """The core's decision after a failed connect: whether to reconnect once."""
    def token_info(self) -> Dict[str, Any]:
        """credential, detail, expires_on, refresh_at, acquired_at, user: never the token."""
    @property
    def token_requests(self) -> int: ...
    @property
    def credential(self) -> str: ...
    @property
    def password_mode(self) -> bool: ...
    @property
    def host(self) -> Optional[str]: ...
    @property
    def port(self) -> Optional[int]: ...
    @property
    def dbname(self) -> Optional[str]: ...
    @property
    def sslmode(self) -> Optional[str]: ...
    @property
    def prefix(self) -> str: ...
    @property
    def scope(self) -> str: ...
    def _start_token(self, callback: Callable[[Optional[BaseException], Any], None]) -> Optional[str]: ...
    def _start_conninfo(
        self, callback: Callable[[Optional[BaseException], Any], None], overrides: Optional[Dict[str, Any]] = None
    ) -> Optional[Dict[str, Any]]: ...

def _may_be_refusal(sqlstate: Optional[str] = None, used_password: Optional[bool] = None) -> bool:
    """The core's reading of a failed connect's facts: whether it may be a password refusal."""
