"""Shared helpers: harness variables, the emulator's control endpoint, token rotation.

The tests that talk to PostgreSQL or the identity emulator need the harness
(tests/harness/with-harness.sh python/test.sh): it runs them in a loopback-only network
namespace with a private PostgreSQL (TLS) and the emulator, and exports IDENTITY_ENDPOINT,
IDENTITY_HEADER, PGENTRA_PG_HOST, PGENTRA_PG_PORT, PGENTRA_EMULATOR_HTTP, AZURE_AUTHORITY_HOST
and SSL_CERT_FILE. Without it they are skipped.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse

import pytest

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
UAMI = "11111111-1111-1111-1111-111111111111"
SP = "22222222-2222-2222-2222-222222222222"
SP_SECRET = "emulator-secret"
APP_ROLE = "pgentra-app"
PG_RESOURCE = "https://ossrdbms-aad.database.windows.net"

HARNESS = bool(os.environ.get("PGENTRA_PG_HOST") and os.environ.get("PGENTRA_EMULATOR_HTTP"))
needs_harness = pytest.mark.skipif(not HARNESS, reason="needs tests/harness/with-harness.sh (PostgreSQL and the identity emulator)")

# Never let a code path probe a real metadata address (the namespace has no route there either).
os.environ.setdefault("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9")
if HARNESS:
    # What Service Connector would set; the default connector and the integrations read it.
    os.environ["AZURE_POSTGRESQL_CONNECTIONSTRING"] = (
        f"host={os.environ['PGENTRA_PG_HOST']} port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require"
    )


def libpq(extra: str = "") -> str:
    return f"host={os.environ['PGENTRA_PG_HOST']} port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require {extra}".strip()


def control(method: str, path: str, body: str = "") -> str:
    """One request to the emulator's control endpoint (loopback)."""
    u = urllib.parse.urlsplit(os.environ["PGENTRA_EMULATOR_HTTP"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, path, body=body.encode() if body else None, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read().decode()
        assert 200 <= r.status < 300, f"control {method} {path}: {r.status} {data}"
        return data
    finally:
        conn.close()


def stats() -> dict:
    return json.loads(control("GET", "/control/stats"))


def reset() -> None:
    control("POST", "/control/reset")


def faults(spec: list) -> None:
    control("POST", "/control/faults", json.dumps(spec))


def rotate() -> None:
    """Rotate the tokens: the server refuses every token issued before (as if it had been
    revoked), while pgentra's caches still hold it; the emulator's identity endpoints mint new
    ones."""
    control("POST", "/control/rotate")


def terminate_backends(role: str = APP_ROLE) -> int:
    """Close every server session of `role` (so that pools must open new connections)."""
    import psycopg2

    import pgentra

    c = pgentra.Connector(connection_string=libpq(), credential="managed-identity")
    with psycopg2.connect(**c.conninfo()) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = %s and pid <> pg_backend_pid()",
                (role,),
            )
            return cur.fetchone()[0]


@pytest.fixture
def harness():
    if not HARNESS:
        pytest.skip("needs tests/harness/with-harness.sh")
    return os.environ


def revoke(token: str) -> None:
    """The server refuses this token from now on (SQLSTATE 28P01), while caches still hold it;
    the identity endpoints hand out a new one."""
    control("POST", "/control/revoke", token)


def identity_requests() -> int:
    return int(stats()["msi_requests"])


def configure_django() -> None:
    """Django's settings for every test module that uses Django (configured once a process):
    "default" from the Service Connector variables, "explicit" from DATABASES itself."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=[],
        DATABASES={
            # Everything from the Service Connector variables (AZURE_POSTGRESQL_CONNECTIONSTRING here).
            "default": {"ENGINE": "pgentra.django", "NAME": "", "CONN_MAX_AGE": None},
            # Everything in the settings, connector options in OPTIONS; still no PASSWORD.
            "explicit": {
                "ENGINE": "pgentra.django",
                "NAME": "postgres",
                "HOST": os.environ.get("PGENTRA_PG_HOST", ""),
                "PORT": os.environ.get("PGENTRA_PG_PORT", ""),
                "USER": APP_ROLE,
                "OPTIONS": {"sslmode": "require", "credential": "managed-identity", "application_name": "dj"},
            },
        },
    )
    django.setup()


def current_user_closing(conn) -> str:
    """`select current_user` on a DB-API connection (or Django wrapper), then close it."""
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user")
            return cur.fetchone()[0]
    finally:
        conn.close()


def fork_child(work) -> tuple:
    """os.fork() a child that runs `work()` and reports the string it returns (or the error it
    raised) through a pipe, never returning into pytest. Returns (pid, read end) for
    child_output()."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.write(w, work().encode())
            code = 0
        except BaseException as e:  # noqa: BLE001
            os.write(w, f"error {e!r}".encode())
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def child_output(pid: int, r: int) -> str:
    """What a fork_child() child reported; it must have exited with 0."""
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out.decode()
    return out.decode()
