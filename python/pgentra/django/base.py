"""The ``pgentra.django`` engine: Django's PostgreSQL backend, with a current Entra ID token
for every new connection.

Reading a token once in settings.py works until that token expires (about an hour), then
every new connection fails. Here `get_connection_params()` asks the connector (one per
configuration, shared by all threads, holding the token cache) each time Django opens a
connection, so persistent connections (CONN_MAX_AGE) and new ones always get a valid token.
With Django's own pool (OPTIONS["pool"], Django 5.1+, psycopg 3 and psycopg_pool), the pool's
connection class asks the connector for every new pooled connection.

A pgentra error while connecting (configuration, credential, identity service) reaches Django
code as `django.db.utils.OperationalError` with the pgentra error as its `__cause__`, so retry
and health-check code written for Django's connection errors works.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Tuple

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql.base import DatabaseWrapper as _PostgresWrapper
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.db.utils import OperationalError

from .._connector import Connector, with_token_retry
from .._pgentra import Error as _PgEntraError

__all__ = ["DatabaseWrapper", "connector_for", "CONNECTOR_OPTIONS"]

#: OPTIONS keys that configure the connector (removed before the driver sees OPTIONS).
CONNECTOR_OPTIONS = frozenset(
    {
        "prefix",
        "connection_string",
        "credential",
        "client_id",
        "tenant_id",
        "client_secret",
        "scope",
        "allow_insecure",
        "allow_unverified_tls",
        "timeout",
        "authority_host",
        "certificate_path",
        "federated_token_file",
    }
)

_connectors: Dict[Tuple[Tuple[str, str], ...], Connector] = {}
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _connector_kwargs(settings_dict: Dict[str, Any]) -> Dict[str, Any]:
    opts = settings_dict.get("OPTIONS") or {}
    kw: Dict[str, Any] = {k: opts[k] for k in CONNECTOR_OPTIONS if k in opts}
    nested = opts.get("pgentra") or {}
    if not isinstance(nested, dict):
        raise ImproperlyConfigured("DATABASES OPTIONS['pgentra'] must be a dict of pgentra.Connector arguments")
    kw.update(nested)
    if settings_dict.get("HOST"):
        kw["host"] = settings_dict["HOST"]
    if settings_dict.get("PORT"):
        try:
            kw["port"] = int(settings_dict["PORT"])
        except (TypeError, ValueError):
            raise ImproperlyConfigured(f"DATABASES PORT {settings_dict['PORT']!r} is not a port number") from None
    if settings_dict.get("USER"):
        kw["user"] = settings_dict["USER"]
    if settings_dict.get("PASSWORD"):
        kw["password"] = settings_dict["PASSWORD"]
    if opts.get("sslmode"):
        kw["sslmode"] = opts["sslmode"]
    # NAME is left to Django (it switches databases: 'postgres', test_<NAME>); one connector,
    # and one token cache, serves every database of the server.
    return kw


def connector_for(settings_dict: Dict[str, Any]) -> Connector:
    """The process-wide connector for these DATABASES settings (created on first use)."""
    kw = _connector_kwargs(settings_dict)
    key = tuple(sorted((k, repr(v)) for k, v in kw.items()))
    c = _connectors.get(key)
    if c is None:
        with _lock:
            c = _connectors.get(key)
            if c is None:
                c = _connectors[key] = Connector(**kw)
    return c


def _pool_connection_class(c: Connector, ours: bool) -> Any:
    """A psycopg.Connection subclass for psycopg_pool (its `connection_class` option): every
    new pooled connection gets the connector's current token, whatever the keywords Django
    built the pool with (they hold the token of the moment the pool was created), and one
    reconnect after a refusal (the core decides, see pgentra.recovery)."""
    import psycopg

    class PgEntraPooledConnection(psycopg.Connection):  # type: ignore[misc,type-arg]
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
            base = super(PgEntraPooledConnection, cls).connect
            if not ours:
                return base(conninfo, **kwargs)

            def current() -> Dict[str, Any]:
                return {**kwargs, "password": c.token()}

            return with_token_retry(c, current(), lambda p: base(conninfo, **p), current)

    return PgEntraPooledConnection


class DatabaseWrapper(_PostgresWrapper):
    """Django's PostgreSQL DatabaseWrapper with a fresh token for every new connection."""

    def pgentra_connector(self) -> Connector:
        return connector_for(self.settings_dict)

    def _ours(self, c: Connector) -> bool:
        return not c.password_mode and not self.settings_dict.get("PASSWORD")

    @property
    def pool(self) -> Any:
        opts = self.settings_dict.get("OPTIONS") or {}
        pool_options = opts.get("pool")
        if pool_options and self.alias not in self._connection_pools:
            if not is_psycopg3:
                raise ImproperlyConfigured("OPTIONS['pool'] needs psycopg 3 and psycopg_pool")
            pool_options = {} if pool_options is True else dict(pool_options)
            if "connection_class" not in pool_options:
                try:
                    c = self.pgentra_connector()
                except _PgEntraError as e:
                    raise OperationalError(str(e)) from e
                pool_options["connection_class"] = _pool_connection_class(c, self._ours(c))
                self.settings_dict["OPTIONS"] = {**opts, "pool": pool_options}
        return super().pool

    def get_connection_params(self) -> Dict[str, Any]:
        sd = self.settings_dict
        try:
            c = self.pgentra_connector()
            if sd.get("NAME") == "" and not (sd.get("OPTIONS") or {}).get("service") and c.dbname:
                sd["NAME"] = c.dbname  # from AZURE_POSTGRESQL_NAME / DATABASE / the connection string
            params = super().get_connection_params()
            for k in CONNECTOR_OPTIONS | {"pgentra"}:
                params.pop(k, None)
            # DATABASES' own values (host, port, OPTIONS such as sslmode) are merged by the
            # core, which checks the final parameters: a weaker sslmode never replaces a
            # stricter one.
            return c.conninfo(**params)
        except _PgEntraError as e:
            raise OperationalError(str(e)) from e

    def get_new_connection(self, conn_params: Dict[str, Any]) -> Any:
        if self.pool:
            return super().get_new_connection(conn_params)  # the connection class renews
        c = self.pgentra_connector()
        if not self._ours(c):
            return super().get_new_connection(conn_params)

        def current() -> Dict[str, Any]:
            try:
                return {**conn_params, "password": c.token()}
            except _PgEntraError as e:
                raise OperationalError(str(e)) from e

        return with_token_retry(c, conn_params, super().get_new_connection, current)
