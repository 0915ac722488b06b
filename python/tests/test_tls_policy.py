"""Secure by default (issue #13): a token for an Azure server name travels only over TLS that
checks the server, and the caller's own values (overrides, URL query, DATABASES) can never lower
the mode the core decided. Azure-style names resolve to 127.0.0.1 in the test namespace
(tests/harness/netns.sh); the harness's test CA stands in for Azure's roots (SSL_CERT_FILE)."""

from __future__ import annotations

import os
import socket
import struct
import threading

import psycopg
import psycopg2
import pytest

import pgentra
import pgentra.psycopg
import pgentra.psycopg2
import pgentra.sqlalchemy
from conftest import APP_ROLE, needs_harness

pytestmark = needs_harness


def azure_cs(host_var: str = "PGENTRA_TEST_AZURE_HOST", port=None) -> str:
    port = port or os.environ["PGENTRA_PG_PORT"]
    return f"host={os.environ[host_var]} port={port} dbname=postgres sslmode=require"


class FakeServer:
    """A fake PostgreSQL that declines TLS and asks for a cleartext password, recording
    whether a client sent one."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.events: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _read(self, s: socket.socket, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def _serve(self) -> None:
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(s,), daemon=True).start()

    def _session(self, s: socket.socket) -> None:
        s.settimeout(10)
        try:
            self.events.append("connection")
            n = struct.unpack("!I", self._read(s, 4))[0]
            body = self._read(s, n - 4)
            if struct.unpack("!I", body[:4])[0] in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                s.sendall(b"N")
                n = struct.unpack("!I", self._read(s, 4))[0]
                self._read(s, n - 4)
            self.events.append("startup")
            s.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
            if self._read(s, 1) == b"p":
                self.events.append("password")
        except (EOFError, OSError):
            pass
        finally:
            s.close()

    def got_password(self) -> bool:
        return "password" in self.events


def test_an_azure_name_gets_verify_full_and_the_drivers_log_in_verified():
    c = pgentra.Connector(connection_string=azure_cs())
    info = c.conninfo()
    assert info["sslmode"] == "verify-full"
    assert info["sslrootcert"] == os.environ["SSL_CERT_FILE"]
    with psycopg2.connect(**info) as conn, conn.cursor() as cur:
        cur.execute("select current_user")
        assert cur.fetchone()[0] == APP_ROLE
    with pgentra.psycopg2.connect(connector=c) as conn, conn.cursor() as cur:
        cur.execute("select current_user")
        assert cur.fetchone()[0] == APP_ROLE
    with pgentra.psycopg.connect(connector=c) as conn:
        assert conn.execute("select current_user").fetchone()[0] == APP_ROLE
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0] is True
    assert "sslmode=verify-full" in c.connection_string() and "sslrootcert=" in c.connection_string()


def test_a_server_without_the_name_in_its_certificate_gets_no_token():
    # The same server under a name its certificate does not carry: verification fails, so
    # libpq never answers the password request.
    c = pgentra.Connector(connection_string=azure_cs("PGENTRA_TEST_WRONG_HOST"))
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(**c.conninfo())
    assert "certificate" in str(e.value) or os.environ["PGENTRA_TEST_WRONG_HOST"] in str(e.value)


def test_the_opt_out_keeps_require():
    c = pgentra.Connector(connection_string=azure_cs(), allow_unverified_tls=True)
    info = c.conninfo()
    assert info["sslmode"] == "require" and "sslrootcert" not in info
    with psycopg2.connect(**info) as conn, conn.cursor() as cur:
        cur.execute("select current_user")
        assert cur.fetchone()[0] == APP_ROLE


@pytest.mark.parametrize("override", [{"sslmode": None}, {"sslmode": "prefer"}, {"sslmode": "disable"}, {"sslmode": "allow"}])
def test_overrides_never_lower_sslmode(override):
    fake = FakeServer()
    c = pgentra.Connector(connection_string=f"host=127.0.0.1 port={fake.port} dbname=postgres sslmode=require")
    info = c.conninfo(**override)
    assert info["sslmode"] == "require"
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(**info)
    with pytest.raises(psycopg2.OperationalError):
        pgentra.psycopg2.connect(connector=c, **override)
    with pytest.raises(psycopg.OperationalError):
        pgentra.psycopg.connect(connector=c, **{k: v for k, v in override.items() if v is not None})
    assert not fake.got_password(), fake.events


def test_an_override_to_an_azure_host_is_verified_too():
    c = pgentra.Connector(connection_string=pgentra_cs_local())
    info = c.conninfo(host=os.environ["PGENTRA_TEST_AZURE_HOST"])
    assert info["sslmode"] == "verify-full" and info["sslrootcert"] == os.environ["SSL_CERT_FILE"]


def pgentra_cs_local() -> str:
    return f"host=127.0.0.1 port={os.environ['PGENTRA_PG_PORT']} dbname=postgres sslmode=require"


def test_sqlalchemy_url_query_cannot_lower_sslmode():
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    fake = FakeServer()
    c = pgentra.Connector(connection_string=f"host=127.0.0.1 port={fake.port} dbname=postgres sslmode=require")
    engine = pgentra.sqlalchemy.create_engine(f"postgresql+psycopg2://127.0.0.1:{fake.port}/postgres?sslmode=prefer", connector=c)
    with pytest.raises(OperationalError):
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    engine.dispose()
    assert not fake.got_password(), fake.events


def test_asyncpg_verified_for_an_azure_name_and_its_ssl_argument_cannot_lower_the_mode():
    import asyncio
    import ssl as ssl_module

    import pgentra.asyncpg

    async def run():
        c = pgentra.Connector(connection_string=azure_cs())
        conn = await pgentra.asyncpg.connect(connector=c)
        try:
            assert await conn.fetchval("select current_user") == APP_ROLE
        finally:
            await conn.close()
        p = await pgentra.asyncpg._params(c, {"ssl": "require"})
        assert isinstance(p["ssl"], ssl_module.SSLContext) and p["ssl"].check_hostname
        fake = FakeServer()
        local = pgentra.Connector(connection_string=f"host=127.0.0.1 port={fake.port} dbname=postgres sslmode=require")
        for ssl in ("prefer", "disable", False):
            with pytest.raises(Exception):
                await pgentra.asyncpg.connect(connector=local, ssl=ssl, timeout=5)
        assert not fake.got_password(), fake.events

    asyncio.run(run())
