"""A real waitress server on a random loopback port, for tests that talk HTTP.

``running_server(service)`` yields the base URL (``http://127.0.0.1:PORT``) of a server
running in a daemon thread over ``service``, and stops it on exit. ``http_request``
sends one request with its path exactly as written, for tests of odd encodings.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from factflow_storage.server.app import create_server, stop_server
from factflow_storage.service import StorageService


@contextlib.contextmanager
def running_server(service, *, token: str | None = None, threads: int = 8, port: int = 0,
                   **app_options: Any) -> Iterator[str]:
    server = create_server(service, "127.0.0.1", port, threads=threads, token=token, **app_options)
    with _serving(server) as url:
        yield url


@contextlib.contextmanager
def running_wsgi(app: Any, *, threads: int = 2, channel_class: Any = None) -> Iterator[str]:
    """Any WSGI app on plain waitress (with ``channel_class`` instead of waitress's own)."""
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
    if channel_class is not None:
        server.channel_class = channel_class
    with _serving(server) as url:
        yield url


@contextlib.contextmanager
def _serving(server: Any) -> Iterator[str]:
    thread = threading.Thread(target=server.run, name="factflow-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop_server(server)
        thread.join(timeout=5)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def http_request(base_url: str, method: str, path: str, *, headers: dict[str, str | bytes] | None = None,
                 body: bytes | Iterable[bytes] | None = None) -> Reply:
    """One request with the path sent exactly as given (no normalising, no re-quoting)."""
    connection = http.client.HTTPConnection(urlsplit(base_url).netloc, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Reply(response.status, {name.lower(): value for name, value in response.getheaders()}, data)
    finally:
        connection.close()


@pytest.fixture
def service(storage):
    """A service over each provider (``storage``, from conftest)."""
    with storage.open() as provider:
        yield StorageService(provider)


@pytest.fixture
def url(service):
    """A real waitress serving ``service`` on a loopback port."""
    with running_server(service) as base:
        yield base
