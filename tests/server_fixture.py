"""A real waitress server on a random loopback port, for tests that talk HTTP.

``running_server(service)`` yields the base URL (``http://127.0.0.1:PORT``) of a server
running in a daemon thread over ``service``, and stops it on exit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from factflow_storage.server.app import create_server, stop_server


@contextlib.contextmanager
def running_server(service, *, token: str | None = None, threads: int = 8,
                   **app_options: Any) -> Iterator[str]:
    server = create_server(service, "127.0.0.1", 0, threads=threads, token=token, **app_options)
    thread = threading.Thread(target=server.run, name="factflow-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop_server(server)
        thread.join(timeout=5)
