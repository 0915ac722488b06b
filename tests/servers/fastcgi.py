"""A minimal FastCGI client (responder role, one request a connection) for driving PHP-FPM
over its unix socket without a web server in front: enough for GET requests of a script."""

from __future__ import annotations

import socket
import struct

VERSION = 1
BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
RESPONDER = 1
REQUEST_ID = 1


def _record(kind: int, content: bytes) -> bytes:
    return struct.pack("!BBHHBx", VERSION, kind, REQUEST_ID, len(content), 0) + content


def _length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)


def _params(params: dict) -> bytes:
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        out += _length(len(k)) + _length(len(v)) + k + v
    return out


def _read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"FastCGI: connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def get(sock_path: str, script: str, query: str = "", timeout: float = 60.0) -> tuple:
    """GET `script` through the FastCGI socket; returns (headers: dict, body: bytes, stderr: bytes)."""
    params = {
        "GATEWAY_INTERFACE": "FastCGI/1.0",
        "REQUEST_METHOD": "GET",
        "SCRIPT_FILENAME": script,
        "SCRIPT_NAME": "/" + script.rsplit("/", 1)[-1],
        "REQUEST_URI": "/" + script.rsplit("/", 1)[-1] + ("?" + query if query else ""),
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": "0",
    }
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(
            _record(BEGIN_REQUEST, struct.pack("!HB5x", RESPONDER, 0))
            + _record(PARAMS, _params(params))
            + _record(PARAMS, b"")
            + _record(STDIN, b"")
        )
        out, err = b"", b""
        while True:
            _, kind, _, length, padding = struct.unpack("!BBHHBx", _read_exact(s, 8))
            content = _read_exact(s, length + padding)[:length]
            if kind == STDOUT:
                out += content
            elif kind == STDERR:
                err += content
            elif kind == END_REQUEST:
                break
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers, body, err
