"""The CLI's ``--api`` side of watch: read the server's SSE stream, resume after drops.

A dropped connection (a server restart, a proxy timeout, the server's own ``timeout``)
is followed by a reconnect carrying the last event id, which the server turns into
exactly the events missed. Reads time out well after the server's 15 s heartbeat, so a
server that vanished without closing the socket is noticed too.
"""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Iterator, Sequence

import orjson

from factflow_storage.client import ApiClient
from factflow_storage.errors import Busy, StorageError, Unavailable
from factflow_storage.watch.events import EXECUTION_COMPLETED, OBJECT_CREATED, CompletedEvent, Event, ObjectEvent

EVENTS = "/api/v1/storage/events"
READ_TIMEOUT = 45.0
STREAM_TIMEOUT = 300
_BACKOFF = (0.2, 0.5, 1.0, 2.0)
RECONNECTING = "connection to the factflow API lost; reconnecting"


def parse_stream(lines) -> Iterator[tuple[str | None, str, str]]:
    """SSE frames as (id, event, data); comments and ``retry`` are dropped."""
    event_id, name, data = None, "message", []
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


def follow(api: ApiClient, execution_ids: Sequence[str], *, route_id: str | None = None,
           stage: str | None = None, extension: str | None = None, timeout: float | None = None,
           last_event_id: str | None = None) -> Iterator[Event]:
    """Events until every execution completed; returns early (no completion) at ``timeout``."""
    client = ApiClient(api.base_url, token=api.token, timeout=READ_TIMEOUT)
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(execution_ids)
    connected_once = False
    failures = 0
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
                print(f"factflow: {RECONNECTING}", file=sys.stderr, flush=True)
            failures += 1
            time.sleep(_BACKOFF[min(failures, len(_BACKOFF)) - 1])
            continue
        connected_once, failures = True, 0
        try:
            for event_id, name, data in parse_stream(response):
                payload = orjson.loads(data)
                if name == OBJECT_CREATED:
                    last_event_id = event_id or last_event_id
                    yield ObjectEvent(event_id or "", payload["key"], payload["size"], payload.get("route_id"),
                                      payload.get("stage"), payload["created_at"])
                elif name == EXECUTION_COMPLETED:
                    last_event_id = event_id or last_event_id
                    pending.discard(payload["execution_id"])
                    yield CompletedEvent(event_id or "", payload["execution_id"], payload["status"])
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError, StorageError):
            time.sleep(_BACKOFF[0])  # a broken stream: resume from the last id
        finally:
            response.close()
