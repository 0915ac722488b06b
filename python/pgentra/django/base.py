"""The ``pgentra.django`` engine: Django's PostgreSQL backend, with a current Entra ID token
for every new connection.

Reading a token once in settings.py works until that token expires (about an hour), then
every new connection fails. Here `get_connection_params()` asks the connector (one per
configuration, shared by all threads, holding the token cache) each time Django opens a
connection, so persistent connections (CONN_MAX_AGE) and new ones always get a valid token.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Tuple

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql.base import DatabaseWrapper as _PostgresWrapper

from .._connector import Connector, is_auth_failure

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


class DatabaseWrapper(_PostgresWrapper):
    """Django's PostgreSQL DatabaseWrapper with a fresh token for every new connection."""

    def pgentra_connector(self) -> Connector:
        return connector_for(self.settings_dict)

    def get_connection_params(self) -> Dict[str, Any]:
        sd = self.settings_dict
        if (sd.get("OPTIONS") or {}).get("pool"):
            raise ImproperlyConfigured(
                "pgentra.django does not support OPTIONS['pool']: Django's pool keeps the parameters, "
                "and so the token, of its first connection; use CONN_MAX_AGE for persistent connections"
            )
        c = self.pgentra_connector()
        if sd.get("NAME") == "" and not (sd.get("OPTIONS") or {}).get("service") and c.dbname:
            sd["NAME"] = c.dbname  # from AZURE_POSTGRESQL_NAME / DATABASE / the connection string
        params = super().get_connection_params()
        for k in CONNECTOR_OPTIONS | {"pgentra"}:
            params.pop(k, None)
        # DATABASES' own values (host, port, OPTIONS such as sslmode) are merged by the core,
        # which checks the final parameters: a weaker sslmode never replaces a stricter one.
        return c.conninfo(**params)

    def get_new_connection(self, conn_params: Dict[str, Any]) -> Any:
        try:
            return super().get_new_connection(conn_params)
        except Exception as e:  # noqa: BLE001 - psycopg or psycopg2
            c = self.pgentra_connector()
            if c.password_mode or self.settings_dict.get("PASSWORD") or not is_auth_failure(e):
                raise
            # The token was replaced before its expiry: renew it once and connect again.
            c.renew(conn_params.get("password"))
            return super().get_new_connection({**conn_params, "password": c.token()})
