"""``GET /api/v1/storage/events``: an execution's writes as Server-Sent Events.

The stream replays what the execution already holds, then follows live writes, then
sends one ``execution.completed`` per execution once all are terminal, and closes.
Every event's ``id`` is a resumable cursor (``factflow_storage.watch.events``), under
512 bytes: a client reconnecting with ``Last-Event-ID`` gets everything it missed,
recomputed from a listing, so a server restart loses nothing; after a burst of writes it
may also get a few events it already had (same key and ``created_at``), to be dropped. A comment line every 15 s keeps proxies
from closing a quiet stream; after ``timeout`` seconds the server ends the stream
without a completion event and the client reconnects.

Each open stream holds a worker thread; watchers of one execution share one source.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import bottle
import orjson

from factflow_storage.errors import BadRequest
from factflow_storage.keys import execution_prefix
from factflow_storage.server.http import query, query_int
from factflow_storage.server.openapi_paths import EVENT_PATHS
from factflow_storage.service import StorageService
from factflow_storage.watch.events import OBJECT_CREATED, ObjectEvent, parse_event_id
from factflow_storage.watch.stream import Filters

EVENTS = "/api/v1/storage/events"
HEARTBEAT_SECONDS = 15.0
DEFAULT_TIMEOUT = 300
MAX_TIMEOUT = 3600
RETRY_MS = 1000

# The path's parameters and responses are described with the other paths; the event
# types are said here, beside the code that sends them.
OPENAPI = {EVENTS: {"get": {
    **EVENT_PATHS[EVENTS]["get"],
    "description": "Events `storage.object.created` (data: key, size, route_id, stage, created_at), then "
                   "one `execution.completed` (data: execution_id, status) per execution once all are "
                   "terminal; then the stream closes. Every event has an `id` (under 512 bytes); reconnecting "
                   "with `Last-Event-ID` replays everything missed, and after a burst perhaps a few "
                   "events already sent (same key and created_at). A comment heartbeat every 15 s.",
}}}


def _all(name: str) -> list[str]:
    try:
        return [value.encode("latin-1").decode("utf-8") for value in bottle.request.query.getall(name)]
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadRequest(f"query parameter {name!r} is not valid UTF-8") from None


def frame(event_id: str | None, event: str | None, data: dict | None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(b"id: " + event_id.encode())
    if event is not None:
        lines.append(b"event: " + event.encode())
    if data is not None:
        lines.append(b"data: " + orjson.dumps(data))
    return b"\n".join(lines) + b"\n\n"


def install(app: bottle.Bottle, service: StorageService) -> None:
    @app.get(EVENTS)
    def events():
        execution_ids = [value for value in _all("execution_id") if value]
        if not execution_ids:
            raise BadRequest("execution_id is required")
        for execution_id in execution_ids:
            execution_prefix(execution_id)
        filters = Filters(query("route_id") or None, query("stage") or None, query("extension") or None)
        timeout = query_int("timeout", DEFAULT_TIMEOUT)
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise BadRequest(f"timeout must be between 1 and {MAX_TIMEOUT} seconds")
        last_event_id = bottle.request.get_header("Last-Event-ID") or query("last_event_id") or None
        if last_event_id:
            parse_event_id(last_event_id)
        stream = service.watch(execution_ids, route_id=filters.route_id, stage=filters.stage,
                               extension=filters.extension, last_event_id=last_event_id, timeout=timeout)
        disconnected = bottle.request.environ.get("waitress.client_disconnected", lambda: False)
        response = bottle.HTTPResponse(body=_frames(stream, disconnected), status=200)
        response.set_header("Content-Type", "text/event-stream; charset=utf-8")
        response.set_header("Cache-Control", "no-cache")
        response.set_header("X-Accel-Buffering", "no")
        return response


def _frames(stream, disconnected) -> Iterator[bytes]:
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        last_sent = time.monotonic()
        for event in stream:
            if event is None:
                if disconnected():
                    return
                if time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
                    yield b": heartbeat\n\n"
                    last_sent = time.monotonic()
                continue
            name = OBJECT_CREATED if isinstance(event, ObjectEvent) else "execution.completed"
            yield frame(event.id, name, event.data())
            last_sent = time.monotonic()
    finally:
        stream.close()
