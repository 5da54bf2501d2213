"""One source and one execution-record poll per execution, shared by all its watchers.

A ``Feed`` runs the provider's watch source for ``executions/<id>/`` in a thread and
fans each report out to every subscriber's queue; it also polls the execution record
(one small read per interval, whatever the number of watchers) and announces status
changes the same way. Feeds live in a process-wide ``Hub`` and stop shortly after
their last subscriber leaves, so a reconnecting client finds its feed still running.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from factflow_storage.errors import StorageError
from factflow_storage.keys import execution_prefix
from factflow_storage.protocol import ObjectInfo
from factflow_storage.store import Store
from factflow_storage.watch.source import WatchSource

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.25
LINGER = 10.0
_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


def source_for(provider: Store) -> WatchSource:
    """The best source the provider's backend supports (here, not beside ``WatchSource``:
    the sources import that module, so choosing among them there would close a cycle)."""
    if provider.uri.startswith("file://"):
        from factflow_storage.watch.fs_source import FilesystemSource

        return FilesystemSource(provider)
    from factflow_storage.providers.s3_listen import listen_supported

    if listen_supported(provider):
        from factflow_storage.watch.s3_sources import ListenSource

        return ListenSource(provider)
    from factflow_storage.watch.s3_sources import JournalSource

    return JournalSource(provider)


class StatusChange:
    __slots__ = ("execution_id", "record")

    def __init__(self, execution_id: str, record: dict[str, Any] | None):
        self.execution_id = execution_id
        self.record = record


class Feed:
    def __init__(self, provider: Store, execution_id: str, source: WatchSource):
        self.provider = provider
        self.execution_id = execution_id
        self.source = source
        self.armed = threading.Event()
        self.record: dict[str, Any] | None = None
        self.record_read = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._subscribers: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run_source, daemon=True, name=f"watch-{execution_id}"),
                         threading.Thread(target=self._poll_record, daemon=True, name=f"status-{execution_id}")]
        for thread in self._threads:
            thread.start()

    # -- subscribers -----------------------------------------------------------

    def subscribe(self, inbox: queue.SimpleQueue | None = None) -> queue.SimpleQueue:
        """Reports from now on go to ``inbox`` (a stream watching several executions
        passes one inbox to each of their feeds)."""
        inbox = queue.SimpleQueue() if inbox is None else inbox
        with self._lock:
            self._subscribers.append(inbox)
        return inbox

    def unsubscribe(self, inbox: queue.SimpleQueue) -> int:
        with self._lock:
            if inbox in self._subscribers:
                self._subscribers.remove(inbox)
            return len(self._subscribers)

    def _publish(self, item: ObjectInfo | StatusChange) -> None:
        with self._lock:
            inboxes = list(self._subscribers)
        for inbox in inboxes:
            inbox.put(item)

    # -- threads ---------------------------------------------------------------

    def _run_source(self) -> None:
        prefix = execution_prefix(self.execution_id)
        failures = 0
        while not self._stop.is_set():
            try:
                self.source.run(prefix, self._publish, self.armed, self._stop)
                failures = 0
                self._stop.wait(0.1)  # returned without being stopped (its directory went away?)
            except StorageError as err:
                # Storage went away: keep trying; the source sweeps what it missed on return.
                self.error = err
                log.info("watch source for execution %s: %s; retrying", self.execution_id, err)
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                self._stop.wait(delay)
            except Exception as err:  # a bug or an unexpected backend answer: say it once, retry
                self.error = err
                log.warning("watch source failed: %s", err, exc_info=log.isEnabledFor(logging.DEBUG))
                self._stop.wait(_RETRY_DELAYS[-1])

    def _poll_record(self) -> None:
        last_status: object = ()
        while not self._stop.is_set():
            try:
                record = self.provider.read_execution(self.execution_id)
            except StorageError:
                record = self.record
            else:
                self.record = record
            self.record_read.set()
            status = record.get("status") if record else None
            if status != last_status:
                last_status = status
                self._publish(StatusChange(self.execution_id, record))
            self._stop.wait(STATUS_INTERVAL)

    def stop(self) -> None:
        self._stop.set()


class Hub:
    """Feeds by (provider, execution): many watchers of one execution share one feed."""

    def __init__(self, linger: float = LINGER):
        self.linger = linger
        # slot -> [feed, users]; a feed holds its provider, so the id in its slot stays its own
        self._feeds: dict[tuple[int, str], list] = {}
        self._lock = threading.Lock()

    def acquire(self, provider: Store, execution_id: str) -> Feed:
        slot = (id(provider), execution_id)
        with self._lock:
            if slot in self._feeds:
                self._feeds[slot][1] += 1
                return self._feeds[slot][0]
        # Choosing a source may probe the backend (once per provider): outside the lock.
        source = source_for(provider)
        with self._lock:
            if slot in self._feeds:
                self._feeds[slot][1] += 1
                return self._feeds[slot][0]
            feed = Feed(provider, execution_id, source)
            self._feeds[slot] = [feed, 1]
            return feed

    def release(self, provider: Store, execution_id: str) -> None:
        slot = (id(provider), execution_id)
        with self._lock:
            entry = self._feeds.get(slot)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
        # A client reconnecting within ``linger`` finds the feed armed and warm.
        timer = threading.Timer(self.linger, self._retire, args=(slot, entry[0]))
        timer.daemon = True
        timer.start()

    def _retire(self, slot: tuple[int, str], feed: Feed) -> None:
        with self._lock:
            entry = self._feeds.get(slot)
            if entry is None or entry[0] is not feed or entry[1] > 0:
                return
            del self._feeds[slot]
        feed.stop()

    def close(self) -> None:
        with self._lock:
            feeds = [entry[0] for entry in self._feeds.values()]
            self._feeds.clear()
        for feed in feeds:
            feed.stop()


HUB = Hub()
