"""The parsers Python users meet read pgentra's renderings (tests/vectors/render.json) back to
the vector's params, each with its own code rather than libpq's (test_libpq_oracle.py):

- SQLAlchemy's make_url() and the connect() arguments its psycopg (the default for
  `postgresql://`), psycopg2 and asyncpg dialects build from the `uri` format, which users pass
  to create_engine(); SQLAlchemy percent-decodes with its own regular expression and unquote();
- asyncpg's own DSN parser (asyncpg does not use libpq), on the `uri` format: asyncpg.connect()
  takes only URIs, so the `libpq` keyword/value format was never meant for it;
- psycopg 3's conninfo_to_dict(), on `libpq` and `uri`: PQconninfoParse of the libpq that the
  psycopg[binary] wheel bundles, which is not the system libpq that psycopg2 uses.

Versions are those python/deps.sh installs (checked with: SQLAlchemy 2.1.9, asyncpg 0.32.0,
psycopg 3.3.9)."""
import json
import os
import pathlib

import pytest
from asyncpg import connect_utils
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

VECTORS = json.loads((pathlib.Path(__file__).parents[1] / "vectors" / "render.json").read_text())
IDS = [c["name"] for c in VECTORS]
KEYS = ("host", "port", "dbname", "user", "password", "sslmode")


@pytest.fixture(autouse=True)
def no_pg_environment(monkeypatch):
    # asyncpg and libpq fall back to PG* variables and ~/.pgpass for what a string leaves out.
    for k in [k for k in os.environ if k.startswith("PG") and not k.startswith("PGENTRA")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    # sslmode=verify-full needs a root certificate: asyncpg, like libpq, refuses to build its TLS
    # context without one (~/.postgresql/root.crt by default). That is configuration, not parsing.
    monkeypatch.setenv("PGSSLROOTCERT", "/etc/ssl/certs/ca-certificates.crt")


def test_the_vectors_use_only_the_six_keys():
    # If a vector grows another key, the oracles below must learn to compare it.
    for c in VECTORS:
        assert set(c["params"]) == set(KEYS), c["name"]


@pytest.mark.parametrize("case", VECTORS, ids=IDS)
def test_sqlalchemy_make_url(case):
    u = make_url(case["rendered"]["uri"])
    p = case["params"]
    assert u.drivername == "postgresql"
    got = {"host": u.host, "port": u.port, "dbname": u.database, "user": u.username, "password": u.password, **u.query}
    assert got == p


@pytest.mark.parametrize("case", VECTORS, ids=IDS)
@pytest.mark.parametrize("driver,dbkey", [("postgresql", "dbname"), ("postgresql+psycopg2", "dbname"), ("postgresql+asyncpg", "database")])
def test_sqlalchemy_dialect_connect_args(case, driver, dbkey):
    # What create_engine(uri) hands the DB-API's connect(): no connection is made.
    uri = case["rendered"]["uri"]
    assert uri.startswith("postgresql://")
    engine = create_engine(driver + uri[len("postgresql"):])
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    p = case["params"]
    assert args == []
    got = {k: kwargs.get({"dbname": dbkey}.get(k, k)) for k in KEYS}
    assert got == p


def asyncpg_parse(dsn):
    addrs, params = connect_utils._parse_connect_dsn_and_args(
        dsn=dsn, host=None, port=None, user=None, password=None, passfile=None, database=None, ssl=None,
        service=None, servicefile=None, direct_tls=None, server_settings=None, target_session_attrs=None,
        krbsrvname=None, gsslib=None)
    return addrs, params


@pytest.mark.parametrize("case", VECTORS, ids=IDS)
def test_asyncpg_dsn_parser(case):
    addrs, params = asyncpg_parse(case["rendered"]["uri"])
    p = case["params"]
    assert addrs == [(p["host"], p["port"])]
    assert (params.database, params.user, params.password) == (p["dbname"], p["user"], p["password"])
    assert params.sslmode.name.replace("_", "-") == p["sslmode"]


@pytest.mark.parametrize("case", VECTORS, ids=IDS)
@pytest.mark.parametrize("fmt", ["libpq", "uri"])
def test_psycopg3_conninfo_to_dict(case, fmt):
    got = conninfo_to_dict(case["rendered"][fmt])
    assert got == {k: (str(v) if k == "port" else v) for k, v in case["params"].items()}


@pytest.mark.parametrize("case", VECTORS, ids=IDS)
def test_the_libpq_format_is_refused_by_the_url_only_parsers(case):
    # SQLAlchemy and asyncpg take URLs only: given the libpq keyword/value format they refuse it
    # (rather than mis-read it) with a message that does not quote the string (it holds the password).
    from asyncpg.exceptions import ClientConfigurationError
    from sqlalchemy.exc import ArgumentError

    s = case["rendered"]["libpq"]
    with pytest.raises(ArgumentError) as e:
        make_url(s)
    assert s not in str(e.value) and case["params"]["password"] not in str(e.value)
    # asyncpg parses a query (from the first '?' to a '#') strictly before it checks the scheme:
    # a query field without '=' gives a ValueError that quotes the field, which can be the end of
    # a password (password=ab?secret as the last key gives "bad query field: 'secret'").
    query = s.split("?", 1)[1].split("#")[0] if "?" in s else ""
    bad = [f for f in query.split("&") if f and "=" not in f]
    with pytest.raises(ValueError if bad else ClientConfigurationError) as e:
        asyncpg_parse(s)
    assert s not in str(e.value)
    assert str(e.value) == f"bad query field: {bad[0]!r}" if bad else "scheme" in str(e.value)
