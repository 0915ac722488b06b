"""libpq itself (through psycopg2's parse_dsn, i.e. PQconninfoParse) and a POSIX shell read
what pgentra renders back to the same values: tests/vectors/render.json."""
import json
import pathlib
import subprocess

import psycopg2.extensions
import pytest

VECTORS = json.loads((pathlib.Path(__file__).parents[1] / "vectors" / "render.json").read_text())


def expected(params):
    return {k: (str(v) if k == "port" else v) for k, v in params.items() if v is not None}


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
@pytest.mark.parametrize("fmt", ["libpq", "uri"])
def test_libpq_parses_back(case, fmt):
    got = psycopg2.extensions.parse_dsn(case["rendered"][fmt])
    want = expected(case["params"])
    if want.get("password") == "" and "password" not in got:
        got["password"] = ""
    assert got == want


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_shell_quoting(case):
    script = case["rendered"]["shell"] + '\nprintf "%s\\0" "$PGHOST" "$PGPORT" "$PGDATABASE" "$PGUSER" "$PGPASSWORD" "$PGSSLMODE"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout.decode()
    p = case["params"]
    assert out.split("\0")[:6] == [p["host"], str(p["port"]), p["dbname"], p["user"], p["password"], p["sslmode"]]


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_json(case):
    assert json.loads(case["rendered"]["json"]) == case["params"]
