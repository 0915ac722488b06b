"""gunicorn, 4 sync workers recycled every 10 requests (with and without --preload), serving
500 requests that each open a psycopg2 connection through pgentra: one identity request for
the whole run, shared through the cache folder by every worker generation (issue #16)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import HERE, cache_folder, check_served, reset, serve, shared_env, socket_path, stop, wait_for

MAX_REQUESTS = 10


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, sock_path: str):
        super().__init__("localhost", timeout=60)
        self._sock_path = sock_path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self._sock_path)
        self.sock = s


def get(sock_path: str) -> dict:
    conn = UnixHTTPConnection(sock_path)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, f"{r.status}: {body[:500]!r}"
        return json.loads(body)
    finally:
        conn.close()


@pytest.mark.parametrize("preload", [False, True], ids=["workers-import-the-app", "preload"])
def test_gunicorn_workers_share_one_token(preload, tmp_path):
    folder = cache_folder(f"gunicorn-{preload}")
    sock = socket_path(f"gunicorn-{preload}")
    log = tmp_path / "gunicorn.log"
    cmd = [
        sys.executable, "-m", "gunicorn",
        "--workers", "4", "--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", "0",
        "--bind", f"unix:{sock}",  # a unix socket only: nothing listens on TCP
        "--chdir", str(HERE), "--error-logfile", str(log), "--timeout", "60",
        *(["--preload"] if preload else []),
        "wsgi_app:application",
    ]
    reset()
    started = time.time()
    with open(log, "ab") as out:
        server = subprocess.Popen(cmd, env=shared_env(folder), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: server.poll() is not None or os.path.exists(sock), "gunicorn's socket")
        assert server.poll() is None, f"gunicorn exited: {log.read_text()}"
        answers = serve(lambda _: get(sock))
        check_served(answers, folder, started, MAX_REQUESTS)
    finally:
        stop(server)
    assert "Traceback" not in log.read_text(), log.read_text()
