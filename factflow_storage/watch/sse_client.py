"""The CLI's ``--api`` side of watch: read the server's SSE stream, resume after drops.

A dropped connection (a server restart, a proxy timeout, the server's own ``timeout``)
is followed by a reconnect carrying the last event id, which the server turns into
every event missed, and perhaps a few of a burst already seen (an id is bounded; see
``watch.events``): those repeats are dropped here, so each object is yielded once.
Reads time out well after the server's 15 s heartbeat, so a server that vanished
without closing the socket is noticed too.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson

from factflow_storage.api_paths import EVENTS
from factflow_storage.errors import Busy, StorageError, Unavailable
from factflow_storage.watch.events import (
    EXECUTION_COMPLETED,
    OBJECT_CREATED,
    CompletedEvent,
    Event,
    ObjectEvent,
    parse_event_id,
    stamp_ms,
    write_hash,
)

log = logging.getLogger(__name__)

READ_TIMEOUT = 45.0
STREAM_TIMEOUT = 300
_BACKOFF = (0.2, 0.5, 1.0, 2.0)
RECONNECTING = "connection to the factflow API lost; reconnecting"


class Answer(Protocol):
    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class EventSource(Protocol):
    """What ``follow`` sends its requests through: the CLI's ``client.ApiClient``, named
    by its shape so this side of watch needs nothing of the client."""

    def with_timeout(self, timeout: float) -> EventSource: ...

    def request(self, method: str, path: str, *, params: Any = None,
                headers: Mapping[str, str] | None = None) -> Answer: ...


def parse_stream(lines) -> Iterator[tuple[str | None, str, str]]:
    """SSE frames as (id, event, data); comments and ``retry`` are dropped."""
    event_id: str | None = None
    name, data = "message", list[str]()
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event_id, name, "\n".join(data)
            event_id, name, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            event_id = value
        elif field == "event":
            name = value
        elif field == "data":
            data.append(value)


class Repeats:
    """The writes already yielded that a resumed stream could send again: those above the
    floor of the last id received (the server re-sends nothing at or below it)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._floor = -1

    def first_time(self, event: ObjectEvent) -> bool:
        stamp = stamp_ms(datetime.fromisoformat(event.created_at.replace("Z", "+00:00")))
        digest = write_hash(event.key, stamp)
        if digest in self._seen:
            return False
        try:
            floor = parse_event_id(event.id)[0] if event.id else self._floor
        except StorageError:
            floor = self._floor
        if floor > self._floor:
            self._floor = floor
            self._seen = {h: s for h, s in self._seen.items() if s > floor}
        if stamp > self._floor:
            self._seen[digest] = stamp
        return True


def follow(api: EventSource, execution_ids: Sequence[str], *, route_id: str | None = None,
           stage: str | None = None, extension: str | None = None, timeout: float | None = None,
           last_event_id: str | None = None) -> Iterator[Event]:
    """Events until every execution completed; returns early (no completion) at ``timeout``."""
    client = api.with_timeout(READ_TIMEOUT)
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(execution_ids)
    connected_once = False
    failures = 0
    repeats = Repeats()
    while pending:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        params: list[tuple[str, object]] = [("execution_id", e) for e in execution_ids]
        params += [("route_id", route_id), ("stage", stage), ("extension", extension),
                   ("timeout", STREAM_TIMEOUT if left is None else max(1, min(STREAM_TIMEOUT, int(left + 0.999))))]
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            response = client.request("GET", EVENTS, params=params, headers=headers)
        except Busy as err:
            # The server is at its stream limit: it is up, so wait as it asks and retry.
            time.sleep(err.retry_after if left is None else max(0.0, min(err.retry_after, left)))
            continue
        except Unavailable:
            if not connected_once:
                raise
            if not failures:
                log.warning(RECONNECTING)
            failures += 1
            time.sleep(_BACKOFF[min(failures, len(_BACKOFF)) - 1])
            continue
        connected_once, failures = True, 0
        try:
            for event_id, name, data in parse_stream(response):
                payload = orjson.loads(data)
                if name == OBJECT_CREATED:
                    last_event_id = event_id or last_event_id
                    event = ObjectEvent(event_id or "", payload["key"], payload["size"], payload.get("route_id"),
                                        payload.get("stage"), payload["created_at"])
                    if repeats.first_time(event):
                        yield event
                elif name == EXECUTION_COMPLETED:
                    last_event_id = event_id or last_event_id
                    pending.discard(payload["execution_id"])
                    yield CompletedEvent(event_id or "", payload["execution_id"], payload["status"])
        except (OSError, orjson.JSONDecodeError, StorageError) as err:
            log.info("event stream broke off (%s); resuming from the last event id", err)
            time.sleep(_BACKOFF[0])
        finally:
            response.close()
