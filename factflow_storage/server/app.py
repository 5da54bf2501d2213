"""The app factory and the waitress runner behind ``factflow serve``.

Each module of ``ROUTE_MODULES`` has ``install(app, service)``, which adds its routes to
the app, and may have ``OPENAPI`` (the OpenAPI ``paths`` it serves, see ``openapi``).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from typing import Any

import bottle

from factflow_storage.server.auth import check_bind, make_auth_hook
from factflow_storage.server.http import ErrorPlugin, error_handler, refuse_bad_paths
from factflow_storage.service import StorageService

ROUTE_MODULES: list[str] = [
    "factflow_storage.server.storage_routes",
    "factflow_storage.server.retention_routes",  # before execution_routes: see its docstring
    "factflow_storage.server.execution_routes",
    "factflow_storage.server.event_routes",
    "factflow_storage.server.archive_routes",
    "factflow_storage.server.fsck_routes",
    "factflow_storage.server.openapi",
    "factflow_storage.server.console_routes",
]

# Bodies past this answer 413 (in the error shape) before anything is stored.
MAX_BODY_BYTES = 5 * 1024**3
DEFAULT_THREADS = 32


def make_app(service: StorageService, *, token: str | None = None,
             max_body: int = MAX_BODY_BYTES) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False  # JSON is orjson bytes, from http.json_response
    app.config["factflow.max_body"] = max_body
    app.config["factflow.token"] = token  # for the console's login (console_routes)
    app.default_error_handler = error_handler  # type: ignore[method-assign]
    app.install(ErrorPlugin())
    app.add_hook("before_request", make_auth_hook(token))
    app.add_hook("before_request", refuse_bad_paths)
    for name in ROUTE_MODULES:
        importlib.import_module(name).install(app, service)
    return app


def create_server(service: StorageService, host: str = "127.0.0.1", port: int = 0, *,
                  threads: int = DEFAULT_THREADS, token: str | None = None, **app_options: Any):
    """A bound, not yet running, waitress server (``.effective_port``, ``.run()``, ``.close()``)."""
    from waitress import create_server as waitress_server

    check_bind(host, token)
    app = make_app(service, token=token, **app_options)
    max_body = app.config["factflow.max_body"]
    # waitress refuses oversized bodies with a text page of its own; leave it headroom so
    # the app's 413 (JSON) answers first for any body that declares its length.
    return waitress_server(app, host=host, port=port, threads=threads, ident="factflow",
                           max_request_body_size=max_body + 1024 * 1024,
                           connection_limit=max(100, threads * 4), clear_untrusted_proxy_headers=True)


def stop_server(server, timeout: float = 5.0) -> None:
    """Stop a waitress server running in another thread.

    Its own loop closes the listener and every connection, then leaves (its map is
    empty); the workers are joined; the trigger pipe is closed last, by us, because the
    loop may run the closing thunk before ``pull_trigger`` has written its wake-up byte.
    """
    from waitress import wasyncore

    closed = threading.Event()

    def close_all() -> None:
        for dispatcher in list(server._map.values()):
            if dispatcher is server:
                wasyncore.dispatcher.close(server)  # the listener only: server.close() shuts the trigger
            elif dispatcher is not server.trigger:
                dispatcher.close()
        server.trigger.del_channel()
        closed.set()

    server.trigger.pull_trigger(close_all)
    closed.wait(timeout)
    server.task_dispatcher.shutdown(timeout=timeout)
    server.trigger.close()


def server_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(service: StorageService, host: str = "127.0.0.1", port: int = 8080,
          threads: int = DEFAULT_THREADS, token: str | None = None) -> None:
    """Bind, print the URL (with the port actually bound, for ``--port 0``), serve until
    Ctrl+C or SIGTERM, then stop cleanly."""
    server = create_server(service, host, port, threads=threads, token=token)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        print(f"serving on {server_url(host, server.effective_port)}", flush=True)
        server.run()  # returns when interrupted: waitress catches SystemExit/KeyboardInterrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        service.provider.close()
        sys.stdout.flush()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
