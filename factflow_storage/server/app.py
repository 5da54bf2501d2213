"""The app factory and the waitress runner behind ``factflow serve``.

Each module of ``ROUTE_MODULES`` has ``install(app, context)``, which adds its routes to
the app given the ``AppContext``, and may have ``OPENAPI`` (the OpenAPI ``paths`` it
serves, see ``openapi``). The JSON operations are declared in ``operations.catalog`` and
installed by ``operation_routes``; the other modules hold what streams bytes or events.
"""

from __future__ import annotations

import importlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import bottle

from factflow_storage.archive.limits import ArchiveLimits
from factflow_storage.archive.service import ArchiveJobs, ttl_from_env
from factflow_storage.errors import ConfigError
from factflow_storage.server.auth import Guard, check_bind, make_auth_hook
from factflow_storage.server.context import AppContext
from factflow_storage.server.http import ErrorPlugin, error_handler, refuse_bad_paths
from factflow_storage.server.origin import OriginPolicy
from factflow_storage.server.read_gate import ReadGate
from factflow_storage.server.revocations import Revocations
from factflow_storage.service import StorageService
from factflow_storage.settings import load_settings

log = logging.getLogger(__name__)

ROUTE_MODULES: list[str] = [
    "factflow_storage.server.operation_routes",
    "factflow_storage.server.storage_routes",
    "factflow_storage.server.event_routes",
    "factflow_storage.server.archive_routes",
    "factflow_storage.server.tool_routes",
    "factflow_storage.server.openapi",
    "factflow_storage.server.console_routes",
]

# Bodies past this answer 413 (in the error shape) before anything is stored.
MAX_BODY_BYTES = 5 * 1024**3
DEFAULT_THREADS = 32
# Open connections, idle ones included: far above what a pipeline host opens, and what
# waitress can hold with poll() (select() stops at 1024 descriptors). Past it waitress
# stops accepting until one closes, so this is what slowloris has to exhaust.
CONNECTION_LIMIT = 2000
# Seconds a connection may stay silent (between or inside requests) before it is closed,
# and how often that is checked: an idle or half-sent connection costs a descriptor only,
# never a worker thread, so a short timeout just returns descriptors sooner.
CHANNEL_TIMEOUT = 30
CLEANUP_INTERVAL = 5
# waitress only notices a client that went away (``waitress.client_disconnected``) while
# it may read ahead on the connection; without it a dead watcher holds its stream slot
# until the next heartbeat write fails (15 s).
REQUEST_LOOKAHEAD = 1
# Bytes an answer may hold waiting for a slow client before its worker waits too. Equal
# limits keep them in memory: with waitress's defaults (16 MiB, spilled past 1 MiB) every
# byte of a large answer to a client slower than storage went through a temp file.
OUTBUF_LIMIT = 4 * 1024 * 1024


def make_context(service: StorageService, *, token: str | None = None, max_body: int = MAX_BODY_BYTES,
                 cors_origins: Iterable[str] = (), max_streams: int | None = None,
                 archive_limits: ArchiveLimits | None = None, archive_ttl: float | None = None,
                 read_slots: int | None = None) -> AppContext:
    """What the routes are given; ``archive_limits`` and ``archive_ttl`` default to the
    settings in force; ``read_slots``: object reads and listings at once (None or 0: no
    limit; ``server/read_gate.py``)."""
    guard = Guard(token, OriginPolicy(cors_origins), revocations=Revocations(service.records))
    jobs = ArchiveJobs(service, ttl=archive_ttl or ttl_from_env(),
                       limits=archive_limits or ArchiveLimits.from_settings(load_settings()))
    return AppContext(service, guard, jobs, token=token, max_body=max_body, max_streams=max_streams,
                      read_gate=ReadGate(read_slots) if read_slots else None)


def make_app(service: StorageService, **options: Any) -> bottle.Bottle:
    """The app over ``service``; ``options`` are those of ``make_context``."""
    return app_for(make_context(service, **options))


def app_for(context: AppContext) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False  # JSON is orjson bytes, from http.json_response
    app.default_error_handler = error_handler  # type: ignore[method-assign]
    app.install(ErrorPlugin())
    app.add_hook("before_request", make_auth_hook(context.token, context.guard))
    app.add_hook("before_request", refuse_bad_paths)
    for name in ROUTE_MODULES:
        importlib.import_module(name).install(app, context)
    return app


def create_server(service: StorageService, host: str = "127.0.0.1", port: int = 0, *,
                  threads: int = DEFAULT_THREADS, token: str | None = None, read_slots: int | None = None,
                  **app_options: Any):
    """A bound, not yet running, waitress server (``.effective_port``, ``.run()``, ``.close()``).
    ``read_slots``: object reads and listings run at once (``server/read_gate.py``); by
    default what the provider asks for, 0 for no limit."""
    from waitress import create_server as waitress_server

    from factflow_storage.server.channel import gated_channel
    from factflow_storage.server.wsgi import Frontend

    check_bind(host, token)
    app_options.setdefault("max_streams", default_max_streams(threads))
    if read_slots is None:
        read_slots = service.read_slots
    context = make_context(service, token=token, read_slots=min(read_slots or 0, threads), **app_options)
    app = app_for(context)
    max_body, guard = context.max_body, context.guard
    try:
        # waitress refuses oversized bodies with a text page of its own; leave it headroom
        # so the app's 413 (JSON) answers first for any body that declares its length.
        server = waitress_server(Frontend(app, guard.origins), host=host, port=port, threads=threads,
                                 ident="factflow", max_request_body_size=max_body + 1024 * 1024,
                                 connection_limit=CONNECTION_LIMIT, channel_timeout=CHANNEL_TIMEOUT,
                                 cleanup_interval=CLEANUP_INTERVAL, asyncore_use_poll=True,
                                 channel_request_lookahead=REQUEST_LOOKAHEAD,
                                 clear_untrusted_proxy_headers=True,
                                 outbuf_overflow=OUTBUF_LIMIT, outbuf_high_watermark=OUTBUF_LIMIT)
    except (socket.gaierror, ValueError) as err:
        # waitress reports a host getaddrinfo cannot resolve as ValueError
        detail = err.strerror if isinstance(err, socket.gaierror) else "it does not resolve to an address"
        raise ConfigError(f"cannot listen on host {host!r}: {detail}") from None
    except OSError as err:
        raise ConfigError(f"cannot listen on {server_url(host, port)}: {err.strerror or err}") from None
    server.channel_class = gated_channel(guard.body_limit)
    server.read_gate = context.read_gate
    service.before_serving()
    return server


def default_max_streams(threads: int) -> int:
    """Event streams each hold a worker thread for minutes: at most half of them, so
    the other half always serves the rest of the API."""
    return max(1, threads // 2)


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
          threads: int = DEFAULT_THREADS, token: str | None = None,
          on_bound: Callable[[str], None] | None = None, **app_options: Any) -> None:
    """Bind, hand ``on_bound`` the URL (with the port actually bound, for ``--port 0``;
    logged when none is given), serve until Ctrl+C or SIGTERM, then stop cleanly."""
    server = create_server(service, host, port, threads=threads, token=token, **app_options)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        url = server_url(host, server.effective_port)
        if on_bound is None:
            log.info("serving on %s", url)
        else:
            on_bound(url)
        server.run()  # returns when interrupted: waitress catches SystemExit/KeyboardInterrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        service.close()
        sys.stdout.flush()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
