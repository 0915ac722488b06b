#!/usr/bin/env python3
"""Run the code blocks of the READMEs as a user would (issue #19), under the harness.

Blocks are read from the Markdown files themselves; nothing here keeps a copy of a snippet.
Fence info is `LANG [flag...]`:

- `norun WHY...`: not executed, and the words after `norun` say why (a configuration fragment,
  a placeholder server, a long-running command, a package this machine cannot install). A bare
  `norun` fails the run.
- `recipe=LANG` (on a `sh` block): the install recipe of LANG's artifact. It runs in a fresh
  folder that holds `dist/` (the built artifacts) and `pgentra/` (this checkout, for the C
  header, libpgentra.so and the Go sources); LANG's blocks then run in that folder.
- anything else in a language the runner knows is executed; a block in another language (or
  without one) that is not marked `norun` fails the run.

Every executed block must show that it reached the database: its output (the block's own, or
the language epilogue's `select current_user` on the connection the block left) must name the
role of the harness's system-assigned identity. Usage (make test-docs does this):

    tests/harness/with-harness.sh python3 tests/docs/run.py [-k SUBSTRING] [--list]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import langs  # noqa: E402  (per-language wrappers and commands)
from langs import BlockError  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FILES = [
    "python/README.md", "node/README.md", "ruby/README.md", "php/README.md", "go/README.md",
    "dotnet/README.md", "java/README.md", "crates/pgentra-capi/README.md",
    "crates/pgentra-cli/README.md", "README.md",
]
EXPECTED_ROLE = "pgentra-app"
TOKEN = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
FENCE = re.compile(r"^(\s*)(`{3,})(.*)$")


class Block:
    def __init__(self, path, line, lang, flags, text):
        self.path, self.line, self.lang, self.flags, self.text = path, line, lang, flags, text

    @property
    def where(self):
        return f"{self.path}:{self.line}"

    @property
    def reason(self):
        """The words after `norun` in the fence info: why the block does not run."""
        return " ".join(self.flags[self.flags.index("norun") + 1:]) if "norun" in self.flags else ""

    def flag(self, name):
        for f in self.flags:
            if f == name:
                return True
            if f.startswith(name + "="):
                return f.split("=", 1)[1]
        return None


def extract(path):
    """The fenced blocks of one Markdown file of this checkout."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return parse(path, f.read())


def parse(path, markdown):
    """The fenced blocks of Markdown text (indented fences included, the indent removed)."""
    blocks, cur = [], None
    for n, line in enumerate(markdown.split("\n"), 1):
        m = FENCE.match(line)
        if cur is None:
            if m:
                info = m.group(3).strip().split()
                cur = (n, m.group(1), m.group(2), info[0] if info else "", info[1:], [])
        elif m and len(m.group(2)) >= len(cur[2]) and not m.group(3).strip():
            indent = len(cur[1])
            text = "\n".join(l[indent:] if l[:indent].strip() == "" else l for l in cur[5])
            blocks.append(Block(path, cur[0], cur[3], cur[4], text + "\n"))
            cur = None
        else:
            cur[5].append(line)
    if cur is not None:
        raise SystemExit(f"{path}:{cur[0]}: unclosed code fence")
    return blocks


def check_marks(blocks):
    """Errors for blocks the runner cannot run and that do not say so."""
    known = set(langs.RUNNERS) | {"sh"}
    errors = []
    for b in blocks:
        if b.flag("norun"):
            if not b.reason:
                errors.append(f"{b.where}: ```{b.lang or 'text'} norun``` without a reason: say why it does not run "
                              f"after `norun` (e.g. ```{b.lang or 'text'} norun placeholder server```)")
            continue
        if b.lang not in known:
            errors.append(f"{b.where}: a ```{b.lang or '(no language)'} block that this runner cannot run; "
                          f"mark it ```{b.lang or 'text'} norun WHY``` if it is not meant to run, "
                          f"or teach tests/docs/langs.py the language")
        if b.lang == "sh" and b.flag("recipe") and b.flag("recipe") not in langs.RECIPE_LANGS:
            errors.append(f"{b.where}: recipe={b.flag('recipe')}: unknown language (one of {sorted(langs.RECIPE_LANGS)})")
    return errors


def harness_env():
    """Service Connector's variables, as the other suites set them (tests/harness/up.sh)."""
    for k in ("PGENTRA_PG_HOST", "PGENTRA_PG_PORT", "IDENTITY_ENDPOINT"):
        if not os.environ.get(k):
            raise SystemExit(f"test-docs: {k} is not set; run under tests/harness/with-harness.sh")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AZURE_POSTGRESQL")}
    env["AZURE_POSTGRESQL_CONNECTIONSTRING"] = (
        f"host={env['PGENTRA_PG_HOST']} port={env['PGENTRA_PG_PORT']} dbname=postgres sslmode=require")
    env["PATH"] = os.path.join(ROOT, "target", "release") + os.pathsep + env["PATH"]
    # Never a real metadata address (the namespace has no route there either).
    env.setdefault("PGENTRA_IMDS_ENDPOINT", "http://127.0.0.1:9")
    return env


class Runner:
    def __init__(self, env, tmp, verbose):
        self.env, self.tmp, self.verbose = env, tmp, verbose
        self.recipes = {}    # lang -> recipe Block
        self.folders = {}    # lang -> folder its recipe ran in
        self.failures, self.ran, self.skipped = [], [], []

    def user_folder(self, name):
        """A fresh folder as on a clean machine: dist/ and a pgentra checkout next to the app."""
        d = tempfile.mkdtemp(prefix=name + "-", dir=self.tmp)
        os.symlink(os.path.join(ROOT, "dist"), os.path.join(d, "dist"))
        os.symlink(ROOT, os.path.join(d, "pgentra"))
        return d

    def sh(self, script, cwd, block, timeout=240, env=None):
        return self.run(["bash", "-euo", "pipefail", "-c", script], cwd, block, timeout, env)

    def run(self, argv, cwd, block, timeout=240, env=None):
        cmd = TOKEN.sub("<token>", " ".join(argv))   # tokens never reach the log
        t = time.monotonic()
        try:
            p = subprocess.run(argv, cwd=cwd, env=env or self.env, timeout=timeout, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
        if self.verbose:
            print(f"    $ {cmd[:160]}  ({time.monotonic() - t:.1f}s, rc={rc})")
        out = TOKEN.sub("<token>", out)
        if rc != 0:
            raise BlockError(f"{cmd[:200]} exited {rc}:\n{out[-3000:]}")
        return out

    def recipe_folder(self, lang, block):
        """LANG's recipe, run once in its own folder (C runs it per block: it compiles app.c)."""
        if lang in self.folders:
            return self.folders[lang]
        recipe = self.recipes.get(lang)
        if recipe is None:
            raise BlockError(f"no ```sh recipe={lang} block in any README: nothing says how to install it")
        d = self.user_folder(lang)
        self.sh(recipe.text, d, recipe)
        self.folders[lang] = d
        return d

    def execute(self, block):
        if block.lang == "sh":
            if block.flag("recipe"):
                lang = block.flag("recipe")
                if lang in langs.PER_BLOCK_RECIPE:
                    return None  # run by each of LANG's blocks
                return "recipe ran: " + self.recipe_folder(lang, block)
            d = self.user_folder("sh")
            out = self.sh(block.text, d, block, env=dict(self.env, HOME=d))   # ~/.pgpass and the like stay here
        else:
            out = langs.RUNNERS[block.lang](self, block)
        if EXPECTED_ROLE not in out:
            raise BlockError(f"the output does not show the database role {EXPECTED_ROLE!r} "
                             f"(did the block reach the database?):\n{out[-2000:]}")
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", help="run only blocks whose file:line contains this")
    ap.add_argument("--list", action="store_true", help="list the blocks and what happens to each")
    ap.add_argument("-v", action="store_true", help="print each command")
    a = ap.parse_args()

    blocks = [b for p in FILES for b in extract(p)]
    errors = check_marks(blocks)
    if a.list:
        for b in blocks:
            what = f"norun: {b.reason}" if b.flag("norun") else ("recipe " + b.flag("recipe") if b.flag("recipe") else "run")
            print(f"{b.where:40} {b.lang or '-':8} {what}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    if a.list:
        return 0

    env = harness_env()
    tmp = tempfile.mkdtemp(prefix="pgentra-docs-")
    r = Runner(env, tmp, a.v)
    for b in blocks:
        if b.lang == "sh" and b.flag("recipe") and not b.flag("norun"):
            if b.flag("recipe") in r.recipes:
                errors.append(f"{b.where}: a second recipe for {b.flag('recipe')} "
                              f"(first at {r.recipes[b.flag('recipe')].where})")
            r.recipes[b.flag("recipe")] = b
    start = time.monotonic()
    try:
        for b in blocks:
            if b.flag("norun"):
                r.skipped.append(b)
                continue
            if a.k and a.k not in f"{b.where} {b.lang}":
                continue
            t = time.monotonic()
            try:
                out = r.execute(b)
                if out is None:
                    continue
                r.ran.append(b)
                print(f"ok   {b.where} ({b.lang}{' ' + ' '.join(b.flags) if b.flags else ''}) "
                      f"{time.monotonic() - t:.1f}s")
            except BlockError as e:
                r.failures.append(b)
                print(f"FAIL {b.where} ({b.lang}): {e}")
    finally:
        if os.environ.get("PGENTRA_DOCS_KEEP") == "1":
            print(f"test-docs: folders kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"test-docs: {len(r.ran)} blocks ran, {len(r.failures)} failed, {len(r.skipped)} marked norun "
          f"({time.monotonic() - start:.0f}s)")
    for e in errors:
        print(e)
    return 1 if r.failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
