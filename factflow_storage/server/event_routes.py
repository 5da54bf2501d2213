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
So streams are admitted up to a cap (``max_streams``, half the worker threads by
default): past it the answer is 503 with ``Retry-After``, and the API always has threads
left. The completion event's id ends in ``~end``; a reconnect with it (EventSource does
reconnect after a stream ends) is answered 204, which makes EventSource stop.
Storage is read before the stream is opened, so an outage is a 503 in the error shape.

``replay=counts`` starts a view from the current state: instead of one event per object
already written, one ``storage.counts`` event (objects and bytes per route and stage, from
the same listing the replay reads) and then only new writes. The listing is taken after
the stream subscribed to the execution's writes and marks everything it counted as sent,
so a write racing the start is counted once: in the counts if the listing saw it, else as
a live event (``factflow_storage.watch.stream``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import bottle
import orjson

from factflow_storage.api_paths import EVENTS
from factflow_storage.errors import BadRequest, NotFound
from factflow_storage.executions import is_terminal
from factflow_storage.keys import execution_prefix
from factflow_storage.server.context import AppContext
from factflow_storage.server.errors import Busy
from factflow_storage.server.http import query, query_all, query_int
from factflow_storage.server.openapi_paths import EVENT_PATHS
from factflow_storage.service import StorageService
from factflow_storage.watch.events import COUNTS, OBJECT_CREATED, CountsEvent, Cursor, ObjectEvent, parse_event_id, stamp_ms
from factflow_storage.watch.stream import REPLAYS, Filters

HEARTBEAT_SECONDS = 15.0
DEFAULT_TIMEOUT = 300
MAX_TIMEOUT = 3600
RETRY_MS = 1000
END_MARK = "~end"
BUSY_RETRY_AFTER = 5

# The path's parameters and responses are described with the other paths; the event
# types are said here, beside the code that sends them.
_REPLAY = {"name": "replay", "in": "query", "required": False,
           "schema": {"type": "string", "enum": list(REPLAYS), "default": "events"},
           "description": "`counts`: send what the execution already holds as one `storage.counts` event, "
                          "not one event per object (ignored when resuming with Last-Event-ID)"}
OPENAPI = {EVENTS: {"get": {
    **EVENT_PATHS[EVENTS]["get"],
    "parameters": [*EVENT_PATHS[EVENTS]["get"]["parameters"], _REPLAY],
    "description": "Events `storage.object.created` (data: key, size, route_id, stage, created_at), then "
                   "one `execution.completed` (data: execution_id, status) per execution once all are "
                   "terminal; then the stream closes. With `replay=counts` the objects already written "
                   "come as one `storage.counts` event first (data: objects, bytes, routes: [{route_id, "
                   "stage, objects, bytes}]), counted exactly once with the live events that follow. "
                   "Every event has an `id` (under 512 bytes); reconnecting "
                   "with `Last-Event-ID` replays everything missed, and after a burst perhaps a few "
                   "events already sent (same key and created_at). A comment heartbeat every 15 s.",
}}}


def frame(event_id: str | None, event: str | None, data: dict | None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(b"id: " + event_id.encode())
    if event is not None:
        lines.append(b"event: " + event.encode())
    if data is not None:
        lines.append(b"data: " + orjson.dumps(data))
    return b"\n".join(lines) + b"\n\n"


class StreamSlots:
    """A non-blocking counter of open streams: a stream past the cap is refused at once."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> Callable[[], None]:
        with self._lock:
            if self.limit is not None and self.open >= self.limit:
                raise Busy(f"the server has {self.open} event streams open, its limit; retry later",
                           retry_after=BUSY_RETRY_AFTER)
            self.open += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self.open -= 1

        return release


class EventBody:
    """The frames of one stream as a WSGI body; ``close`` (called by the server even
    when the body was never iterated) gives its slot back."""

    def __init__(self, frames: Iterator[bytes], release: Callable[[], None]):
        self._frames = frames
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._frames
        finally:
            self._release()

    def close(self) -> None:
        try:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
        finally:
            self._release()


def install(app: bottle.Bottle, context: AppContext) -> None:
    service = context.service
    slots = StreamSlots(context.max_streams)

    @app.get(EVENTS)
    def events():
        execution_ids = [value for value in query_all("execution_id") if value]
        if not execution_ids:
            raise BadRequest("execution_id is required")
        for execution_id in execution_ids:
            execution_prefix(execution_id)
        filters = Filters(query("route_id") or None, query("stage") or None, query("extension") or None)
        replay = query("replay") or "events"
        if replay not in REPLAYS:
            raise BadRequest(f"replay must be one of {', '.join(REPLAYS)}, not {replay!r}")
        timeout = query_int("timeout", DEFAULT_TIMEOUT)
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise BadRequest(f"timeout must be between 1 and {MAX_TIMEOUT} seconds")
        last_event_id = bottle.request.get_header("Last-Event-ID") or query("last_event_id") or None
        finished = bool(last_event_id) and last_event_id.endswith(END_MARK)
        if finished:
            last_event_id = last_event_id[:-len(END_MARK)] or None
        if last_event_id:
            parse_event_id(last_event_id)
        # Read before answering: storage down is a 503 now, not a broken 200 stream.
        service.health()
        records = [_record(service, execution_id) for execution_id in execution_ids]
        if finished and all(is_terminal(record) for record in records) \
                and not _missed(service, execution_ids, filters, last_event_id):
            return bottle.HTTPResponse(status=204)
        release = slots.take()
        watch = service.watch_counted if replay == "counts" else service.watch
        stream = watch(execution_ids, route_id=filters.route_id, stage=filters.stage,
                       extension=filters.extension, last_event_id=last_event_id, timeout=timeout)
        disconnected = bottle.request.environ.get("waitress.client_disconnected", lambda: False)
        response = bottle.HTTPResponse(body=EventBody(_frames(stream, disconnected), release), status=200)
        response.set_header("Content-Type", "text/event-stream; charset=utf-8")
        response.set_header("Cache-Control", "no-cache")
        response.set_header("X-Accel-Buffering", "no")
        return response


def _record(service: StorageService, execution_id: str) -> dict | None:
    try:
        return service.execution(execution_id)
    except NotFound:
        return None


def _missed(service: StorageService, execution_ids: list[str], filters: Filters,
            last_event_id: str | None) -> bool:
    """Whether anything was written after the cursor (the execution ran again)."""
    cursor = Cursor(0, last_event_id)
    return any(cursor.is_new(info.key, stamp_ms(info.last_modified))
               for execution_id in execution_ids
               for info in service.execution_objects(execution_id, route_id=filters.route_id,
                                                     stage=filters.stage, extension=filters.extension))


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
            if isinstance(event, ObjectEvent):
                yield frame(event.id, OBJECT_CREATED, event.data())
            elif isinstance(event, CountsEvent):
                yield frame(event.id, COUNTS, event.data())
            else:
                yield frame(event.id + END_MARK, "execution.completed", event.data())
            last_sent = time.monotonic()
    finally:
        stream.close()
