"""Per-language wrappers of tests/docs/run.py: how a README block of each language is executed.

A wrapper adds only what every block of its language needs (a `package main`, a class, the
epilogue that asks the database for current_user on the connection the block left); nothing
here is specific to one block.
"""
import glob
import os
import re
import shutil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Languages whose recipe builds and runs the program the runner wrote (app.c, App.java,
# App.cs), so it runs once per block; the others install once and their blocks reuse the folder.
PER_BLOCK_RECIPE = {"c", "java", "csharp"}
RECIPE_LANGS = {"python", "node", "ruby", "php", "go", "rust"} | PER_BLOCK_RECIPE
# .NET: no PostgreSQL driver for Mono on this machine (Npgsql is neither packaged nor reachable),
# so a C# block is compiled with the recipe's mcs line and must run without an exception, and
# the runner then logs in with the connection string the documented API renders.
CURRENT_USER = "docs-runner: current_user ="


def _write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


PY_MAIN = """\
import ast, asyncio, sys
# As `python -m asyncio` would: top-level `await` is allowed, and the block (with the runner's
# epilogue) runs in one event loop when it awaits.
src = open(sys.argv[1], encoding="utf-8").read()
code = compile(src, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
ns = {"__name__": "__main__"}
result = eval(code, ns)
if asyncio.iscoroutine(result):
    asyncio.run(result)
"""


def python(r, b):
    d = r.recipe_folder("python", b)
    epilogue = (
        "\nif globals().get('conn') is not None:\n"
        "    _docs_cur = conn.cursor(); _docs_cur.execute('select current_user')\n"
        f"    print({CURRENT_USER!r}, _docs_cur.fetchone()[0])\n"
        "elif globals().get('engine') is not None:\n"
        "    with engine.connect() as _docs_c:\n"
        f"        print({CURRENT_USER!r}, _docs_c.exec_driver_sql('select current_user').scalar())\n"
    )
    _write(d, "snippet.py", b.text + epilogue)
    _write(d, "docs_main.py", PY_MAIN)
    return r.run([os.path.join(d, ".venv", "bin", "python"), "docs_main.py", "snippet.py"], d, b, timeout=90)


def _node_modules_for_tests(r):
    """pg and friends for the snippets: the project's own node/node_modules (npm ci by
    node/test.sh), linked in a parent folder so that npm in the recipe folder leaves them alone."""
    parent = os.path.join(r.tmp, "node_modules")
    if os.path.isdir(parent):
        return
    src = os.path.join(ROOT, "node", "node_modules")
    if not os.path.isdir(os.path.join(src, "pg")):
        raise _err()("node/node_modules/pg is missing: run node/test.sh (or `npm ci` in node/) first")
    os.mkdir(parent)
    for m in ("pg", "sequelize", "pg-hstore", "knex"):
        if os.path.isdir(os.path.join(src, m)):
            os.symlink(os.path.join(src, m), os.path.join(parent, m))


def _js_preamble(text, esm):
    """`pg` and `pgentra`, when the block uses them without importing them (a block that
    continues the README's first one)."""
    out = ""
    for name in ("pg", "pgentra"):
        used = re.search(rf"\b{name}\b[.,)]", text)
        declared = re.search(rf"\b(const|let|var|import)\s+{name}\b", text)
        if used and not declared:
            out += f"import {name} from '{name}';\n" if esm else f"const {name} = require('{name}');\n"
    return out


def js(r, b):
    """A block that `require`s is CommonJS (.cjs), else an ES module (.mjs): each as written.
    The epilogue asks a `pool`, `client` or `sequelize` the block left for current_user and
    closes it (an open pool keeps Node running)."""
    _node_modules_for_tests(r)
    d = r.recipe_folder("node", b)
    esm = bool(re.search(r"^\s*import\s", b.text, re.M)) or "require(" not in b.text
    if esm:
        epilogue = (
            "\nif (typeof pool !== 'undefined' && !pool.ending && !pool.ended) {\n"
            f"  console.log({CURRENT_USER!r}, (await pool.query('select current_user')).rows[0].current_user);\n"
            "  await pool.end();\n"
            "}\n"
            "if (typeof client !== 'undefined') {\n"
            f"  console.log({CURRENT_USER!r}, (await client.query('select current_user')).rows[0].current_user);\n"
            "  await client.end();\n"
            "}\n")
        name = "snippet.mjs"
    else:
        epilogue = (
            "\nif (typeof sequelize !== 'undefined') {\n"
            "  sequelize.query('select current_user', { plain: true })\n"
            f"    .then((row) => {{ console.log({CURRENT_USER!r}, row.current_user); return sequelize.close(); }})\n"
            "    .catch((err) => { console.error(err); process.exitCode = 1; return sequelize.close(); });\n"
            "}\n")
        name = "snippet.cjs"
    _write(d, name, _js_preamble(b.text, esm) + b.text + epilogue)
    return r.run(["node", name], d, b, timeout=60)


def php(r, b):
    d = r.recipe_folder("php", b)
    epilogue = (
        "\nforeach ([isset($db) ? $db : null, isset($pdo) ? $pdo : null] as $docsConn) {\n"
        f"    if ($docsConn instanceof PDO) {{ echo {CURRENT_USER!r}, ' ', $docsConn->query('select current_user')->fetchColumn(), \"\\n\"; }}\n"
        f"    elseif ($docsConn instanceof PgSql\\Connection) {{ echo {CURRENT_USER!r}, ' ', pg_fetch_result(pg_query($docsConn, 'select current_user'), 0, 0), \"\\n\"; }}\n"
        "}\n")
    _write(d, "snippet.php", "<?php\n" + b.text + epilogue)
    env = dict(r.env, PHP_INI_SCAN_DIR=":" + d)   # the recipe's pgentra.ini, after the system's
    return r.run(["php", "snippet.php"], d, b, env=env)


def ruby(r, b):
    d = r.recipe_folder("ruby", b)
    epilogue = (
        "\nif defined?(conn) && conn\n"
        f"  puts \"{CURRENT_USER} #{{conn.exec('select current_user').getvalue(0, 0)}}\"\n"
        "end\n")
    _write(d, "snippet.rb", b.text + epilogue)
    gems = os.path.join(d, "gems")
    env = dict(r.env, GEM_PATH=gems + os.pathsep + r.run(["gem", "env", "gempath"], d, b).strip())
    return r.run(["ruby", "snippet.rb"], d, b, env=env)


GO_IMPORTS = {
    "context": "context.Background", "database/sql": "sql.OpenDB", "fmt": "fmt.Println",
    "log": "log.Fatal", "os": "os.Getenv",
    "github.com/pgentra/pgentra/go": "pgentra.FromEnv",
    "github.com/pgentra/pgentra/go/pq": "pq.NewConnector",
    "github.com/pgentra/pgentra/go/pgxhook": "pgxhook.NewPool",
}


def go(r, b):
    """The block becomes the body of run() error in package main; every package the READMEs
    use is imported (and referenced, so that Go accepts an unused one); variables the block
    declares with := are referenced too. The epilogue asks `db` or `pool` for current_user."""
    d = r.recipe_folder("go", b)
    declared = set()
    for m in re.finditer(r"^\s*([\w, ]+?)\s*:=", b.text, re.M):
        declared.update(v.strip() for v in m.group(1).split(",") if v.strip() not in ("", "_"))
    imports = "\n".join(f'\t"{p}"' for p in GO_IMPORTS)
    uses = "\n".join(f"var _ = {u}" for u in GO_IMPORTS.values())
    epi = "".join(f"\t_ = {v}\n" for v in sorted(declared))
    for v, q in (("db", "db.QueryRowContext(ctx, \"select current_user\")"),
                 ("pool", "pool.QueryRow(ctx, \"select current_user\")")):
        if v in declared:
            epi += (f"\t{{ var u string\n\tif err := {q}.Scan(&u); err != nil {{ return err }}\n"
                    f"\tfmt.Println({CURRENT_USER!r}[:len({CURRENT_USER!r})], u) }}\n").replace("'", '"')
    src = (f"package main\n\nimport (\n{imports}\n)\n\n{uses}\n\n"
           "func run(ctx context.Context) error {\n" + b.text + epi + "\treturn nil\n}\n\n"
           "func main() {\n\tif err := run(context.Background()); err != nil { log.Fatal(err) }\n}\n")
    _write(d, "main.go", src)
    modcache = r.run(["go", "env", "GOMODCACHE"], d, b).strip()
    # No network in the harness: the module cache (filled by go/deps.sh) serves as the proxy.
    env = dict(r.env, GOFLAGS="-mod=mod", GOPROXY="file://" + modcache + "/cache/download",
               GOSUMDB="off", GOTOOLCHAIN="local")
    r.run(["go", "build", "-o", "app", "."], d, b, env=env)
    return r.run(["./app"], d, b)


RUST_MAIN = """\
async fn docs_block() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
%s%s    Ok(())
}

fn main() {
    // The block's `.await`s run on pgentra's own runtime (an application would use its own).
    let rt = pgentra::runtime::runtime().expect("pgentra's runtime");
    if let Err(e) = rt.block_on(docs_block()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
"""


def rust(r, b):
    """The block becomes the body of an async fn returning Result (so `?` and `.await` work as
    in an application); if it declares `dsn`, the runner logs in with it through psql."""
    d = r.recipe_folder("rust", b)
    app = os.path.join(d, "app")
    if not os.path.exists(os.path.join(app, "Cargo.lock")):
        # No network here: the repository's lock file pins the versions, and its release profile
        # lets cargo reuse the crates `make build` compiled (only pgentra itself is compiled
        # again, for this crate's features). A user's machine fetches and compiles instead.
        shutil.copy(os.path.join(ROOT, "Cargo.lock"), os.path.join(app, "Cargo.lock"))
        with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
            profile = re.search(r"^\[profile\.release\]\n(?:[^\[\n].*\n)*", f.read(), re.M)
        with open(os.path.join(app, "Cargo.toml"), "a", encoding="utf-8") as f:
            f.write("\n" + (profile.group(0) if profile else ""))
    epi = ("    std::fs::write(\"dsn.txt\", &dsn)?;\n" if re.search(r"\blet\s+dsn\b", b.text) else "")
    _write(os.path.join(app, "src"), "main.rs", RUST_MAIN % (b.text, epi))
    target = os.path.join(ROOT, "target")
    env = dict(r.env, CARGO_TARGET_DIR=target)
    r.run(["cargo", "build", "--release", "--offline", "--quiet"], app, b, timeout=900, env=env)
    out = r.run([os.path.join(target, "release", "app")], app, b)
    if not epi:
        return out
    who = r.sh('psql -X -A -t -c "select current_user" "$(cat dsn.txt)"', app, b)   # the token is never printed
    return f"{out}{CURRENT_USER} {who.strip()}\n"


def c(r, b):
    """The block becomes main()'s body; PQconnectdb is wrapped to print current_user."""
    d = r.user_folder("c")
    src = (
        "#include <stdio.h>\n#include <stdlib.h>\n#include <libpq-fe.h>\n#include \"pgentra.h\"\n"
        "static PGconn *docs_connect(const char *dsn) {\n"
        "    PGconn *conn = PQconnectdb(dsn);\n"
        "    PGresult *res = PQexec(conn, \"select current_user\");\n"
        "    if (PQresultStatus(res) == PGRES_TUPLES_OK)\n"
        f"        printf(\"{CURRENT_USER} %s\\n\", PQgetvalue(res, 0, 0));\n"
        "    else fprintf(stderr, \"docs-runner: %s\", PQerrorMessage(conn));\n"
        "    PQclear(res);\n    return conn;\n}\n"
        "#define PQconnectdb docs_connect\n"
        "int main(void) {\n" + b.text + "    return 0;\n}\n")
    _write(d, "app.c", src)
    return _per_block_recipe(r, b, "c", d)


def _java_class(text):
    imports = "".join(l + "\n" for l in text.splitlines() if l.startswith("import "))
    body = "".join(l + "\n" for l in text.splitlines() if not l.startswith("import "))
    conns = re.findall(r"\bConnection\s+(\w+)\s*=", body)
    epi = "".join(
        f"        try (java.sql.ResultSet rs = {v}.createStatement().executeQuery(\"select current_user\")) "
        f"{{ rs.next(); System.out.println(\"{CURRENT_USER} \" + rs.getString(1)); }}\n        {v}.close();\n"
        for v in conns)
    return ("import io.pgentra.*;\nimport java.sql.*;\n" + imports +
            "public class App {\n    public static void main(String[] args) throws Exception {\n" +
            body + epi + "    }\n}\n")


def java(r, b):
    d = r.user_folder("java")
    _write(d, "App.java", _java_class(b.text))
    jars = sorted(glob.glob(os.path.expanduser("~/.m2/repository/org/postgresql/postgresql/42.7.*/postgresql-42.7.*.jar")))
    if not jars:
        raise _err()("pgJDBC is not in ~/.m2 (java/deps.sh fetches it)")
    os.symlink(jars[-1], os.path.join(d, "postgresql.jar"))   # what Maven would fetch
    # Service Connector's Java shape (--client-type java): a JDBC URL that names the user.
    # (jdbcUrl() cannot take the user from the token: pgJDBC reads it from the URL before any
    # token is fetched.)
    e = r.env
    env = dict(e, AZURE_POSTGRESQL_CONNECTIONSTRING=(
        f"jdbc:postgresql://{e['PGENTRA_PG_HOST']}:{e['PGENTRA_PG_PORT']}/postgres?sslmode=require&user=pgentra-app"))
    return _per_block_recipe(r, b, "java", d, env)


def csharp(r, b):
    d = r.user_folder("csharp")
    lines = b.text.splitlines()
    usings = [l for l in lines if re.match(r"^using [\w.]+;", l)]
    body = "\n".join(l for l in lines if l not in usings)
    src = ("using System;\n" + "\n".join(usings) +
           "\nclass App {\n    static void Main() {\n" + body +
           "\n        using (var docs = PgEntra.Connector.FromEnv())\n"
           "            System.IO.File.WriteAllText(\"dsn.txt\", docs.ConnectionString(PgEntra.Format.Libpq));\n    }\n}\n")
    _write(d, "App.cs", src)
    out = _per_block_recipe(r, b, "csharp", d)
    who = r.sh('psql -X -A -t -c "select current_user" "$(cat dsn.txt)"', d, b)   # the token is never printed
    return f"{out}{CURRENT_USER} {who.strip()}\n"


def _per_block_recipe(r, b, lang, d, env=None):
    recipe = r.recipes.get(lang)
    if recipe is None:
        raise _err()(f"no ```sh recipe={lang} block in any README: nothing says how to build it")
    return r.sh(recipe.text, d, recipe, env=env)


class BlockError(Exception):
    """A block failed; the message says how."""


def _err():
    return BlockError


RUNNERS = {"python": python, "js": js, "php": php, "ruby": ruby, "go": go, "c": c, "java": java,
           "csharp": csharp, "rust": rust}
