"""The public routes (the console's login, health, the console's files) take a body from
anyone: one past their small limit is refused before waitress reads it, whether its
length is declared or it comes chunked."""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit

import orjson
import pytest

from factflow_storage.server.auth import PUBLIC_BODY_LIMIT
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

TOKEN = "public-body-token"
SESSION = "/api/v1/session"
MIB = 1024**2


@pytest.fixture
def url(file_storage):
    with file_storage.open() as provider, running_server(StorageService(provider), token=TOKEN) as base:
        yield base


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=20)


def _answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize("path", [SESSION, "/api/v1/health"])
def test_a_declared_body_past_the_limit_is_413_before_any_of_it_is_sent(url, path):
    with _connect(url) as sock:
        method = "POST" if path == SESSION else "GET"
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {1024**3}\r\n\r\n".encode())
        # Not a byte of the body is sent: the answer must come from the headers alone.
        status, body = _answer(sock)
    if path == SESSION:
        assert status == 413 and body["error_code"] == "too_large"
    else:
        assert status == 200  # health reads no body; the 1 GiB it announced is never read


def test_a_chunked_login_is_cut_once_it_passes_the_limit(url):
    with _connect(url) as sock:
        sock.sendall(f"POST {SESSION} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
        sent = 0
        while sent < 64 * MIB and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        if sent >= 64 * MIB:
            sock.sendall(b"0\r\n\r\n")
        status, body = _answer(sock)
    assert status == 413 and body["error_code"] == "too_large"
    # The answer came while the client was still sending: a server that read the body to
    # its end would have let all 64 MiB through first. What the client got to send is not
    # what the server read: loopback socket buffers grow to tens of MiB (tcp_rmem), more
    # when the machine is busy and the answer comes late, so only the end is a bound.
    assert sent < 64 * MIB, f"the server read all {sent} bytes of a public body before answering"


def test_a_login_within_the_limit_still_works_chunked_or_not(url):
    token = orjson.dumps({"token": TOKEN})
    plain = http_request(url, "POST", SESSION, body=token, headers={"Content-Type": "application/json"})
    assert plain.status == 200 and "factflow_session=" in plain.headers["set-cookie"]
    padded = token[:-1] + b" " * (PUBLIC_BODY_LIMIT - len(token) - 1) + b"}"
    with _connect(url) as sock:
        sock.sendall(f"POST {SESSION} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        for part in (padded[:1000], padded[1000:]):
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sock.sendall(b"0\r\n\r\n")
        status, body = _answer(sock)
    assert status == 200 and body == {"token_required": True}
