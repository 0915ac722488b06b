"""The binding without a network: configuration errors, exception classes, conformance
vectors, secrets kept out of str/repr."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

import pgentra

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors" / "render.json"
FORMATS = ["libpq", "uri", "ado", "jdbc", "json", "shell"]


def test_module_surface():
    assert pgentra.__version__
    for name in ["token", "conninfo", "connection_string", "token_async", "conninfo_async", "Connector", "default_connector"]:
        assert hasattr(pgentra, name), name
    classes = {
        pgentra.ConfigError: (1, "configuration"),
        pgentra.CredentialError: (2, "credential"),
        pgentra.IdentityServiceError: (3, "identity service"),
        pgentra.NetworkError: (4, "network"),
        pgentra.TlsPolicyError: (5, "TLS policy"),
        pgentra.DatabaseError: (6, "database"),
        pgentra.InternalError: (7, "internal"),
    }
    for cls, (kind_id, kind) in classes.items():
        assert issubclass(cls, pgentra.Error) and issubclass(cls, Exception)
        assert cls.__module__ == "pgentra"
        assert cls.kind == kind and cls.kind_id == kind_id
        assert cls("x").service_code is None
    assert pgentra.Error.service_code is None


def test_code_is_a_deprecated_alias_of_service_code():
    e = pgentra.IdentityServiceError("x")
    e.service_code = "AADSTS7000215"
    with pytest.deprecated_call(match="service_code"):
        assert e.code == "AADSTS7000215"
    with pytest.deprecated_call():
        assert pgentra.ConfigError("y").code is None


def test_bad_port_in_connection_string_is_a_config_error_naming_the_key():
    with pytest.raises(pgentra.ConfigError) as ei:
        pgentra.Connector(connection_string="host=h port=70000")
    e = ei.value
    # The key and the rule, never the value (text in the port's place may be a piece of a
    # password: issue #13).
    assert "port" in str(e) and "out of range" in str(e) and "70000" not in str(e)
    assert "connection_string" in str(e)
    assert e.kind == "configuration" and e.service_code is None
    assert isinstance(e, pgentra.Error)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"host": "h", "port": 70000}, "port"),
        ({"host": "h", "port": 0}, "port"),
        ({"host": "h", "timeout": -1}, "timeout"),
        ({"host": "h", "credential": "bogus"}, "bogus"),
        ({"host": "h", "sslmode": "sometimes"}, "sslmode"),
        ({"connection_string": "host=h password='x"}, "unterminated"),
        ({"connection_string": "host=h sslmode=sometimes"}, "sslmode"),
        ({"connection_string": "host=h dbname=x;User Id=u"}, "connection_string"),
        ({"host": "h", "scope": "https://x"}, "/.default"),
        ({"host": "h", "authority_host": "http://x"}, "AZURE_AUTHORITY_HOST"),
        ({"prefix": "bad prefix!"}, "prefix"),
    ],
)
def test_config_errors_name_the_culprit(kwargs, needle):
    with pytest.raises(pgentra.ConfigError) as ei:
        pgentra.Connector(**kwargs)
    assert needle in str(ei.value), str(ei.value)
    assert "'x" not in repr(ei.value) or "password" not in kwargs


def test_no_configuration_names_the_variables(monkeypatch):
    for k in list(os.environ):
        if k.upper().startswith("AZURE_POSTGRESQL") or k == "PGENTRA_PREFIX":
            monkeypatch.delenv(k)
    with pytest.raises(pgentra.ConfigError, match="AZURE_POSTGRESQL_CONNECTIONSTRING"):
        pgentra.Connector()
    pgentra._connector._reset_default_for_tests()
    try:
        with pytest.raises(pgentra.ConfigError):
            pgentra.token()
        with pytest.raises(pgentra.ConfigError):
            pgentra.conninfo()
    finally:
        pgentra._connector._reset_default_for_tests()


def test_custom_prefix(monkeypatch):
    monkeypatch.setenv("MYAPP_CONNECTIONSTRING", "host=h.example dbname=d user=u password=pw")
    c = pgentra.Connector(prefix="MYAPP")
    assert c.prefix == "MYAPP" and c.host == "h.example" and c.dbname == "d"
    assert c.password_mode
    assert c.conninfo() == {"host": "h.example", "port": 5432, "dbname": "d", "user": "u", "password": "pw", "sslmode": "require"}


def test_a_token_never_goes_without_tls():
    c = pgentra.Connector(connection_string="host=h sslmode=disable", credential="managed-identity")
    with pytest.raises(pgentra.TlsPolicyError) as ei:
        c.conninfo()
    assert "sslmode=disable" in str(ei.value)
    with pytest.raises(pgentra.TlsPolicyError):
        c.connection_string()
    assert c.token_requests == 0


def test_secret_mode_conninfo_and_overrides():
    c = pgentra.Connector(connection_string="host=h port=6432 dbname=app user=u password=pw application_name=web")
    assert c.password_mode and c.token_requests == 0
    d = c.conninfo()
    assert d == {"host": "h", "port": 6432, "dbname": "app", "user": "u", "password": "pw", "sslmode": "require", "application_name": "web"}
    assert isinstance(d["port"], int)
    d = c.conninfo(dbname="other", application_name=None)
    assert d["dbname"] == "other" and "application_name" not in d
    assert c.user() == "u"
    with pytest.raises(pgentra.ConfigError, match="password"):
        c.token()
    with pytest.raises(pgentra.ConfigError, match="format"):
        c.connection_string("yaml")


def test_repr_and_errors_never_show_secrets():
    secret = "hunter2-Very-Secret-value"
    c = pgentra.Connector(host="h", user="u", client_id="22222222-2222-2222-2222-222222222222", tenant_id="t", client_secret=secret)
    r = repr(c)
    assert r.startswith("Connector(host='h', port=") and "user='u'" in r
    assert secret not in r and secret not in c.credential
    pw = pgentra.Connector(connection_string=f"host=h user=u password={secret}")
    assert secret not in repr(pw)


def _vectors():
    return json.loads(VECTORS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_conformance_vectors_byte_identical(vector):
    """Secret mode with each vector's parameters (read back from its own libpq rendering):
    every format renders byte for byte as the vector says."""
    rendered = vector["rendered"]
    c = pgentra.Connector(connection_string=rendered["libpq"], credential="password")
    assert c.password_mode
    for f in FORMATS:
        assert c.connection_string(f).encode("utf-8") == rendered[f].encode("utf-8"), f
    p = vector["params"]
    d = c.conninfo()
    for k in ["host", "port", "dbname", "user", "password", "sslmode"]:
        assert d[k] == p[k], k
    assert json.loads(c.connection_string("json")) == {k: p[k] for k in ["host", "port", "dbname", "user", "password", "sslmode"]}


def test_import_stays_light():
    """`import pgentra` in a bare interpreter loads neither typing, re, asyncio, json nor threading (typing
    alone cost ~10 ms of a 12 ms import; the time itself is a benchmark, not a test)."""
    import subprocess
    import sys

    where = str(pathlib.Path(pgentra.__file__).resolve().parent.parent)
    code = (
        "import sys; sys.path.insert(0, %r); import pgentra; "
        "print(','.join(m for m in ('typing', 're', 'asyncio', 'json', 'threading') if m in sys.modules))" % where
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout


def test_integrations_load_on_first_use():
    """`import pgentra` then `pgentra.psycopg2.connect` (the README's quick start) works; an
    unknown attribute is still an AttributeError."""
    import subprocess
    import sys

    where = str(pathlib.Path(pgentra.__file__).resolve().parent.parent)
    code = (
        "import sys; sys.path.insert(0, %r); import pgentra; "
        "assert 'pgentra.psycopg2' not in sys.modules; "
        "f = pgentra.psycopg2.connect; assert callable(f); "
        "assert pgentra.sqlalchemy.create_engine; "
        "import pgentra.psycopg2 as p; assert p is pgentra.psycopg2\n"
        "try:\n    pgentra.nonexistent\nexcept AttributeError:\n    print('ok')" % where
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
