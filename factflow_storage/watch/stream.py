"""Replay, then follow: the one watch loop behind the CLI's direct mode and the SSE route.

Order of work, chosen so that nothing falls between replay and live reports:

1. subscribe to each execution's feed and wait until its source is armed;
2. list what storage already holds (filtered), oldest first, and deliver it;
3. deliver live reports the stream has not delivered yet (the cursor decides);
4. once an execution's record is terminal, list it once more and deliver anything a
   source has not reported yet (writers write before they finish, so this catches
   every object); once every execution's is, one ``execution.completed`` per
   execution, and stop.

With a ``last_event_id`` the replay skips what that id says was delivered.

``replay="counts"`` (for a view that follows an execution from now) delivers step 2 as
one ``CountsEvent``: the listing's objects counted per route and stage, every one of them
marked delivered in the cursor. So the counts and the live events add up exactly: a write
the listing saw is dropped when its live report arrives (the cursor has it), and a write
it missed landed after the subscription of step 1, so its report arrives and is sent.
The counts event's id is the cursor after the listing; a reconnect with it (or any later
id) replays what was missed as events, as always.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator, Sequence

from factflow_storage.errors import BadRequest
from factflow_storage.executions import is_terminal
from factflow_storage.keys import (execution_prefix, key_matches, narrow_prefix, parse_key, split_extensions,
                                   validate_segment)
from factflow_storage.parallel import ordered_map
from factflow_storage.protocol import ObjectInfo, PrefixInfo
from factflow_storage.store import Store
from factflow_storage.watch.events import CompletedEvent, CountsEvent, Cursor, Event, ObjectEvent, stamp_ms
from factflow_storage.watch.feed import HUB, Hub, StatusChange

log = logging.getLogger(__name__)

TICK = 0.5
# Logged once the replay is delivered: from here on every write arrives as it lands
# (``-v`` shows it; scripts and tests wait for it instead of guessing a delay).
LIVE = "replayed; following execution %s live"
REPLAYS = ("events", "counts")
STAGE_DEPTH = 4  # slashes in "executions/<id>/<route>/<stage>/"


class Filters:
    def __init__(self, route_id: str | None = None, stage: str | None = None,
                 extension: str | Sequence[str] | None = None):
        self.route_id = validate_segment(route_id, "route") if route_id else None
        self.stage = validate_segment(stage, "stage") if stage else None
        self.extension = extension
        self._extensions = split_extensions(extension)
        self._routes, self._stages = (self.route_id,) if self.route_id else (), (self.stage,) if self.stage else ()

    def match(self, info: ObjectInfo) -> bool:
        return key_matches(info.key, self._routes, self._stages, self._extensions)


def watch_events(provider: Store, execution_ids: Sequence[str], *, route_id: str | None = None,
                 stage: str | None = None, extension: str | Sequence[str] | None = None,
                 last_event_id: str | None = None, timeout: float | None = None, tick: float = TICK,
                 hub: Hub = HUB, replay: str = "events") -> Iterator[Event | CountsEvent | None]:
    """Yield events; ``None`` after each ``tick`` of quiet (a chance for a heartbeat).

    Ends after the ``execution.completed`` events, or silently when ``timeout`` passes.
    """
    execution_ids = list(dict.fromkeys(execution_ids))
    if replay not in REPLAYS:
        raise BadRequest(f"replay must be one of {', '.join(REPLAYS)}, not {replay!r}")
    if not execution_ids:
        raise BadRequest("watch at least one execution")
    for execution_id in execution_ids:
        execution_prefix(execution_id)
    filters = Filters(route_id, stage, extension)
    deadline = None if timeout is None else time.monotonic() + timeout
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    feeds = []
    try:
        for execution_id in execution_ids:
            feed = hub.acquire(provider, execution_id)
            feeds.append(feed)
            feed.subscribe(inbox)
        cursor = Cursor(int(max(feed.source.settle for feed in feeds) * 1000), last_event_id)
        for feed in feeds:
            while not (feed.armed.is_set() and feed.record_read.is_set()):
                if _expired(deadline):
                    return
                feed.armed.wait(min(tick, _left(deadline)))
                if not feed.armed.is_set():
                    yield None
        # Writers finish writing before they mark the end, so for an execution that had
        # already ended, the replay's listing is the final one. Kept with the record it
        # followed: one reopened and ended again (a new record) is listed again.
        listed_after: dict[str, dict | None] = {feed.execution_id: feed.record for feed in feeds
                                                if is_terminal(feed.record)}
        if replay == "counts" and not last_event_id:
            yield _counted(provider, execution_ids, filters, cursor)
        else:
            yield from _catch_up(provider, execution_ids, filters, cursor)
        log.info(LIVE, ", ".join(execution_ids))
        while True:
            if all(is_terminal(feed.record) for feed in feeds):
                # From the feeds' records, not the inbox: a reopening shorter than a record
                # poll, or one still queued behind reports, is seen here all the same.
                unlisted = [feed.execution_id for feed in feeds if listed_after.get(feed.execution_id) != feed.record]
                if unlisted:
                    yield from _catch_up(provider, unlisted, filters, cursor)
                for feed in feeds:
                    status = feed.record["status"] if feed.record else "unknown"  # terminal: never None
                    yield CompletedEvent(cursor.event_id(), feed.execution_id, status)
                return
            if _expired(deadline):
                return
            try:
                item = inbox.get(timeout=min(tick, _left(deadline)))
            except queue.Empty:
                yield None
                continue
            if isinstance(item, StatusChange):
                if is_terminal(item.record) and listed_after.get(item.execution_id) != item.record:
                    # Its last writes may reach no source (a journal poll leaves what it finds
                    # once the record is terminal to this listing). Listed now, while they are
                    # recent: at the end of the last of several executions, the others' newer
                    # writes would have raised the id's floor past them, and a reconnect with
                    # it would pass over them.
                    listed_after[item.execution_id] = item.record
                    yield from _catch_up(provider, [item.execution_id], filters, cursor)
                continue
            if filters.match(item):
                event = cursor.deliver(item)
                if event is not None:
                    yield event
    finally:
        for feed in feeds:
            feed.unsubscribe(inbox)
            hub.release(provider, feed.execution_id)


def _counted(provider: Store, execution_ids: Sequence[str], filters: Filters,
             cursor: Cursor) -> CountsEvent:
    """The replay of ``_catch_up`` delivered as counts per route and stage."""
    counts: dict[tuple[str, str], list[int]] = {}
    for info in _listed(provider, execution_ids, filters):
        if cursor.take(info):
            parts = parse_key(info.key)
            row = counts.setdefault((parts.route_id or "", parts.stage or "") if parts else ("", ""), [0, 0])
            row[0] += 1
            row[1] += info.size
    return CountsEvent(cursor.event_id(), tuple((route or None, stage or None, objects, size)
                                                for (route, stage), (objects, size) in sorted(counts.items())))


def _catch_up(provider: Store, execution_ids: Sequence[str], filters: Filters,
              cursor: Cursor) -> Iterator[ObjectEvent]:
    """Deliver, oldest first, every listed object the cursor has not delivered."""
    for info in _listed(provider, execution_ids, filters):
        event = cursor.deliver(info)
        if event is not None:
            yield event


def _listed(provider: Store, execution_ids: Sequence[str], filters: Filters) -> list[ObjectInfo]:
    """What the executions hold (filtered), oldest first: the order a cursor advances in."""
    pending = []
    for execution_id in execution_ids:
        prefix = narrow_prefix(execution_prefix(execution_id), filters.route_id, filters.stage)
        for info in _list_by_stage(provider, prefix):
            if filters.match(info):
                pending.append((stamp_ms(info.last_modified), info.key, info))
    pending.sort(key=lambda row: (row[0], row[1]))
    return [info for _, _, info in pending]


def _list_by_stage(provider: Store, prefix: str) -> list[ObjectInfo]:
    """Everything under ``prefix``, its stages listed concurrently: one S3 listing reads
    1,000 keys a request, one after the other, so a big execution is read stage by stage
    at once (found by one-level listings of the execution and of its routes)."""
    levels = max(0, STAGE_DEPTH - prefix.count("/"))
    objects: list[ObjectInfo] = []
    prefixes = [prefix]
    for _ in range(levels):
        below = []
        for entries in ordered_map(lambda under: list(provider.browse(under)), prefixes):
            for entry in entries:
                if isinstance(entry, PrefixInfo):
                    below.append(entry.prefix)
                else:
                    objects.append(entry)
        prefixes = below
    for infos in ordered_map(lambda under: list(provider.list(under)), prefixes):
        objects.extend(infos)
    return objects


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _left(deadline: float | None) -> float:
    return 3600.0 if deadline is None else max(0.0, deadline - time.monotonic())
