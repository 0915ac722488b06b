"""Property test: for arbitrary values, what `pgentra dsn` renders (libpq keyword/value and URI)
is read back by libpq's own parser (PQconninfoParse via psycopg2's parse_dsn) to the same values,
and `pgentra env` is read back by a POSIX shell."""
import os
import pathlib
import subprocess

import psycopg2.extensions
from hypothesis import given, settings, strategies as st

CLI = str(pathlib.Path(__file__).parents[2] / "target" / "release" / "pgentra")

# Environment values cannot hold NUL; libpq reads whitespace-separated pairs, so every other
# character, including quotes, backslashes, '=', ';', '@', '/', '?', '#', '%' and non-ASCII, is fair.
value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=24)


def render(fmt, host, db, user, password):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AZURE_POSTGRESQL_HOST": host,
        "AZURE_POSTGRESQL_PORT": "5432",
        "AZURE_POSTGRESQL_DATABASE": db,
        "AZURE_POSTGRESQL_USER": user,
        "AZURE_POSTGRESQL_PASSWORD": password,
    }
    out = subprocess.run([CLI, *fmt], env=env, capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().rstrip("\n")


host = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(host=host, db=value, user=value, password=value)
def test_libpq_and_uri_round_trip(host, db, user, password):
    # Service Connector's discrete variables are trimmed of surrounding white space only for HOST.
    want = {"host": host, "port": "5432", "dbname": db, "user": user, "password": password, "sslmode": "require"}
    for fmt in ("libpq", "uri"):
        got = psycopg2.extensions.parse_dsn(render(["dsn", "--format", fmt], host, db, user, password))
        assert got == want, fmt


@settings(max_examples=60, deadline=None)
@given(host=host, db=value, user=value, password=value)
def test_shell_round_trip(host, db, user, password):
    line = render(["env"], host, db, user, password)
    out = subprocess.run(["sh", "-c", line + '\nprintf "%s\\0" "$PGDATABASE" "$PGUSER" "$PGPASSWORD"'], capture_output=True, check=True)
    assert out.stdout.decode().split("\0")[:3] == [db, user, password]
