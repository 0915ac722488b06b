"""libpq itself (through psycopg2's parse_dsn, i.e. PQconninfoParse) and a POSIX shell read
what pgentra renders back to the same values: tests/vectors/render.json. libpq also reads the PDO
DSN as PHP's pdo_pgsql hands it over."""
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


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_pdo_pgsql_hands_libpq_what_is_meant(case):
    # PHP's pdo_pgsql strips "pgsql:", turns every ';' into a space and gives the rest to
    # PQconnectdb (php.net, PDO_PGSQL DSN). Quoting cannot protect a ';' in a value from that, so
    # a vector whose values hold ';' has no PDO rendering (null), and any string libpq would read
    # right (its libpq rendering, say) is mis-read once the ';' are spaces.
    pdo = case["rendered"]["pdo"]
    want = expected(case["params"])
    if pdo is None:
        assert any(";" in str(v) for v in want.values())
        try:
            got = psycopg2.extensions.parse_dsn(case["rendered"]["libpq"].replace(";", " "))
        except psycopg2.ProgrammingError:
            return
        assert got != want
        return
    assert pdo.startswith("pgsql:")
    assert psycopg2.extensions.parse_dsn(pdo[len("pgsql:"):].replace(";", " ")) == want
