"""A tiny WSGI app for gunicorn: each request opens a database connection through pgentra
(psycopg2, the default connector from Service Connector's variables) and answers with the
worker's pid, the session's current_user and a fingerprint of the token it logged in with."""

import hashlib
import json
import os

import pgentra
import pgentra.psycopg2

# Made at import: with --preload, in the master before it forks the workers (which then
# inherit this connector object and its empty cache); without it, in each worker.
connector = pgentra.default_connector()


def application(environ, start_response):
    with pgentra.psycopg2.connect(connector=connector) as conn, conn.cursor() as cur:
        cur.execute("select current_user")
        user = cur.fetchone()[0]
        token = conn.info.password
    conn.close()
    body = json.dumps({
        "pid": os.getpid(),
        "user": user,
        "token": hashlib.sha256(token.encode()).hexdigest()[:16],
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
