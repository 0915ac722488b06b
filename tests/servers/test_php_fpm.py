"""PHP-FPM, 8 children recycled every 5 requests, serving 500 requests over FastCGI (no web
server in front) that each open a connection through the pgentra extension, alternately with
pg_connect and PDO: one identity request for the whole run, shared by ~100 children that the
master forked without running any application code (issue #16)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from conftest import HERE, ROOT, cache_folder, check_served, reset, serve, shared_env, socket_path, stop, wait_for
import fastcgi

MAX_CHILDREN = 8
MAX_REQUESTS = 5
PASSED = ["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_POSTGRESQL_CONNECTIONSTRING", "PGENTRA_CREDENTIAL",
          "PGENTRA_CACHE_DIR", "PGENTRA_SHARED_CACHE", "PGENTRA_IMDS_ENDPOINT", "PGENTRA_TIMEOUT", "SSL_CERT_FILE"]


def fpm_binary() -> str:
    found = shutil.which("php-fpm8.2") or shutil.which("php-fpm")
    assert found, "php-fpm is missing: run php/deps.sh (php8.2-fpm)"
    return found


def config(tmp, sock: str, env: dict) -> str:
    root = os.geteuid() == 0
    lines = [
        "[global]",
        f"pid = {tmp}/fpm.pid",
        f"error_log = {tmp}/fpm.log",
        "daemonize = no",
        "[app]",
        *(["user = root", "group = root"] if root else []),
        f"listen = {sock}",  # a unix socket only
        "listen.mode = 0600",
        "pm = static",
        f"pm.max_children = {MAX_CHILDREN}",
        f"pm.max_requests = {MAX_REQUESTS}",
        "catch_workers_output = yes",
        "clear_env = yes",
        *(f'env[{k}] = "{env[k]}"' for k in PASSED),
    ]
    path = tmp / "fpm.conf"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_php_fpm_children_share_one_token(tmp_path):
    folder = cache_folder("php-fpm")
    env = shared_env(folder)
    so = os.environ.get("PGENTRA_PHP_EXTENSION") or str(ROOT / "dist" / "php" / "pgentra.so")
    assert os.path.isfile(so), f"no {so}: run php/build.sh"
    sock = socket_path("php-fpm")
    cmd = [fpm_binary(), "--nodaemonize", "--fpm-config", config(tmp_path, sock, env), "-d", f"extension={so}"]
    if os.geteuid() == 0:
        cmd.append("--allow-to-run-as-root")
    script = str(HERE / "fpm" / "connect.php")
    reset()
    started = time.time()
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    log = tmp_path / "fpm.log"

    def request(i: int) -> dict:
        headers, body, err = fastcgi.get(sock, script, "driver=pdo" if i % 2 else "driver=pgsql")
        assert headers.get("status", "200").startswith("200") and not err, f"{headers} {body[:500]!r} {err[:500]!r}"
        return json.loads(body)

    try:
        wait_for(lambda: server.poll() is not None or os.path.exists(sock), "PHP-FPM's socket")
        assert server.poll() is None, f"php-fpm exited: {log.read_text() if log.exists() else ''}"
        answers = serve(request)
        check_served(answers, folder, started, MAX_REQUESTS)
    finally:
        stop(server)
    text = log.read_text()
    assert "PHP Fatal" not in text and "PHP Warning" not in text, text
