"""pgJDBC's own URL parser (org.postgresql.Driver.parseURL, pgJDBC 42.7.14 from Maven Central)
reads what pgentra renders as JDBC exactly as meant (issue #14, item 5): every conformance
vector, host lists with a non-default port, ApplicationName and options; hosts that would inject
parameters, Unix-socket directories and keys pgJDBC has no property for are refused by pgentra."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "render.json").read_text())
JAR = pathlib.Path(os.environ.get("PGJDBC_JAR", pathlib.Path.home() / ".m2/repository/org/postgresql/postgresql/42.7.14/postgresql-42.7.14.jar"))
CLI = ROOT / "target" / "release" / "pgentra"


@pytest.fixture(scope="module")
def parse(tmp_path_factory):
    if not JAR.is_file() or not shutil.which("javac"):
        pytest.skip(f"pgJDBC ({JAR}) or javac is missing: scripts/deps.sh fetches pgJDBC with Maven")
    out = tmp_path_factory.mktemp("pgjdbc")
    subprocess.run(["javac", "-cp", str(JAR), "-d", str(out), str(pathlib.Path(__file__).parent / "pgjdbc" / "ParseUrl.java")], check=True)

    def run(urls):
        r = subprocess.run(["java", "-cp", f"{out}:{JAR}", "ParseUrl"], input="\n".join(urls) + "\n", capture_output=True, text=True, check=True)
        results = []
        for block in r.stdout.split("\n\n")[: len(urls)]:
            if block.strip() == "REJECTED":
                results.append(None)
                continue
            props = {}
            for line in block.splitlines():
                k, v = line.split("\t", 1)
                unesc = lambda s: s.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")
                props[unesc(k)] = unesc(v)
            results.append(props)
        return results

    return run


def test_every_vector_reads_back(parse):
    got = parse([c["rendered"]["jdbc"] for c in VECTORS])
    for case, props in zip(VECTORS, got):
        p = case["params"]
        assert props is not None, case["name"]
        assert props["PGHOST"] == p["host"] and props["PGPORT"] == str(p["port"]), case["name"]
        assert props["PGDBNAME"] == p["dbname"], case["name"]
        assert props.get("user") == p["user"] and props.get("password") == p["password"], case["name"]
        assert props["sslmode"] == p["sslmode"], case["name"]


def dsn(connection_string, fmt="jdbc"):
    env = {"PATH": os.environ["PATH"], "AZURE_POSTGRESQL_CONNECTIONSTRING": connection_string, "PGENTRA_CREDENTIAL": "password", "PGENTRA_IMDS_ENDPOINT": "http://127.0.0.1:9"}
    return subprocess.run([str(CLI), "dsn", "--format", fmt], capture_output=True, text=True, env=env)


def test_host_lists_and_properties_read_back(parse):
    out = dsn("host=a.example,b.example port=6432 dbname=d user=u password=p application_name='my app' options='-c search_path=x' connect_timeout=7")
    assert out.returncode == 0, out.stderr
    [props] = parse([out.stdout.strip()])
    assert props["PGHOST"] == "a.example,b.example" and props["PGPORT"] == "6432,6432"
    assert props["ApplicationName"] == "my app" and props["options"] == "-c search_path=x" and props["connectTimeout"] == "7"


@pytest.mark.parametrize("host", ["/var/run/postgresql", "h/db?sslmode=disable&x=", "h?sslmode=disable", "h&sslmode=disable", "h#frag", "u@h"])
def test_hosts_that_jdbc_cannot_carry_are_refused(parse, host):
    # What a naive rendering would give pgJDBC: for the injecting hosts, a lowered sslmode.
    naive = f"jdbc:postgresql://{host}:5432/d?sslmode=require&user=u"
    [props] = parse([naive])
    injected = props is not None and props.get("sslmode") != "require"
    cs = f"host='{host}' port=5432 dbname=d user=u password=p sslmode=require"
    out = dsn(cs)
    assert out.returncode == 3 and out.stdout == "", (host, injected, out.stdout)
    assert "host" in out.stderr


def test_keys_without_a_pgjdbc_property_are_refused():
    out = dsn("host=h port=5432 dbname=d user=u password=p gssencmode=disable")
    assert out.returncode == 3 and "gssencmode" in out.stderr
