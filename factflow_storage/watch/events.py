"""The watch event model and the event ids that let a reader resume without loss.

Events are derived from storage: an object's position is its listing timestamp in
milliseconds (``last_modified`` as the provider's ``list`` reports it) and its key.
A stream remembers what it delivered as a *cursor*:

- ``floor``: every object whose timestamp is at or below it has been delivered;
- ``recent``: short hashes of the objects delivered with a timestamp above the floor.

The floor trails the newest delivered timestamp by the source's ``settle`` window, the
bound on how much later than its timestamp an object can become visible and be reported
(file fsyncs, an S3 PUT still in flight, a poll interval). Every event carries the
cursor as its ``id``; a reader that reconnects with it gets, from a fresh listing, exactly
the objects above the floor that are not among ``recent``.

An id stays under ``MAX_ID_BYTES`` whatever the write rate: it carries at most
``MAX_ID_HASHES`` hashes (the newest writes). When more objects than that were delivered
within the settle window, the id names only some of them, so a reconnect with it re-sends
the others (never fewer than were missed: nothing is lost, a few of a burst may come
twice). The ``--api`` client drops such repeats (``sse_client.Repeats``), so a user still
sees each object once.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from factflow_storage.errors import BadRequest
from factflow_storage.keys import parse_key
from factflow_storage.metadata import format_time
from factflow_storage.protocol import ObjectInfo

OBJECT_CREATED = "storage.object.created"
COUNTS = "storage.counts"
EXECUTION_COMPLETED = "execution.completed"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HASH_CHARS = 8
MAX_ID_BYTES = 512
# A floor of up to 15 digits, the dot, and the hashes: 16 + 60 * 8 = 496 < MAX_ID_BYTES.
MAX_ID_HASHES = 60


def stamp_ms(moment: datetime) -> int:
    """Exact integer milliseconds, so a listing and a lookup of one object agree."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def write_hash(key: str, stamp: int) -> str:
    """Names one write of one key (a rewrite of the key is a new write)."""
    digest = hashlib.blake2b(f"{key}\0{stamp}".encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    id: str
    key: str
    size: int
    route_id: str | None
    stage: str | None
    created_at: str

    def data(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "route_id": self.route_id, "stage": self.stage,
                "created_at": self.created_at}

    def row(self) -> dict[str, Any]:
        return {"event": OBJECT_CREATED, "id": self.id, **self.data()}


@dataclass(frozen=True, slots=True)
class CompletedEvent:
    id: str
    execution_id: str
    status: str

    def data(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "status": self.status}

    def row(self) -> dict[str, Any]:
        return {"event": EXECUTION_COMPLETED, **self.data()}


@dataclass(frozen=True, slots=True)
class CountsEvent:
    """What an execution held when the stream started, in place of one event per object:
    ``routes`` holds (route_id, stage, objects, bytes) rows, by route then stage."""
    id: str
    routes: tuple[tuple[str | None, str | None, int, int], ...]

    def data(self) -> dict[str, Any]:
        return {"objects": sum(row[2] for row in self.routes), "bytes": sum(row[3] for row in self.routes),
                "routes": [{"route_id": route_id, "stage": stage, "objects": objects, "bytes": size}
                           for route_id, stage, objects, size in self.routes]}


Event = ObjectEvent | CompletedEvent


class Cursor:
    """What one stream has delivered; see the module docstring."""

    def __init__(self, settle_ms: int, last_event_id: str | None = None):
        self.settle_ms = settle_ms
        self.floor = -1
        self.recent: dict[str, int] = {}
        if last_event_id:
            self.floor, hashes = parse_event_id(last_event_id)
            self.recent = {h: self.floor + 1 for h in hashes}
        self._resume_floor = self.floor
        self._newest = self.floor
        self._kept = len(self.recent)
        # Every hash delivered on this connection: a late report (slower than ``settle``)
        # is still delivered once, just never counted in the floor.
        self._delivered: set[str] = set(self.recent)

    def is_new(self, key: str, stamp: int) -> bool:
        return stamp > self._resume_floor and write_hash(key, stamp) not in self._delivered

    def deliver(self, info: ObjectInfo) -> ObjectEvent | None:
        """The event for ``info`` if this stream has not delivered that write yet."""
        if not self.take(info):
            return None
        parts = parse_key(info.key)
        return ObjectEvent(self.event_id(), info.key, info.size, parts.route_id if parts else None,
                           parts.stage if parts else None, format_time(info.last_modified))

    def take(self, info: ObjectInfo) -> bool:
        """Mark the write of ``info`` delivered; False if it already was. (Without an
        event: counting thousands of objects must not build an id for each.)"""
        stamp = stamp_ms(info.last_modified)
        digest = write_hash(info.key, stamp)
        if digest in self.recent:
            # Ids carry hashes only; the listing tells their stamps back.
            self.recent[digest] = stamp
        if stamp <= self._resume_floor or digest in self._delivered:  # is_new, with the hash made once
            return False
        self._delivered.add(digest)
        if stamp > self.floor:
            self.recent[digest] = stamp
        if stamp > self._newest:
            self._newest = stamp
            floor = stamp - self.settle_ms
            if floor > self.floor:
                self.floor = floor
                # Dropping what fell below the floor only once the map doubled keeps a
                # catch-up of N objects linear (event_id skips the stale ones meanwhile).
                if len(self.recent) > 2 * self._kept + MAX_ID_HASHES:
                    self.recent = {h: s for h, s in self.recent.items() if s > floor}
                    self._kept = len(self.recent)
        return True

    def event_id(self) -> str:
        named = {h: s for h, s in self.recent.items() if s > self.floor}
        if len(named) > MAX_ID_HASHES:
            newest = sorted(named.items(), key=lambda item: item[1])[-MAX_ID_HASHES:]
            named = dict(newest)
        return f"{max(self.floor, 0)}.{''.join(sorted(named))}"


def parse_event_id(value: str) -> tuple[int, list[str]]:
    floor_text, dot, hashes = value.strip().partition(".")
    if not dot or not floor_text.isdigit() or len(hashes) % _HASH_CHARS:
        raise BadRequest(f"invalid event id {value[:80]!r}")
    chunks = [hashes[i:i + _HASH_CHARS] for i in range(0, len(hashes), _HASH_CHARS)]
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if any(set(chunk) - alphabet for chunk in chunks):
        raise BadRequest(f"invalid event id {value[:80]!r}")
    return int(floor_text), chunks
