"""The write journal: how a watcher follows an S3 bucket that has no listen API.

AWS S3 and Ceph radosgw cannot push events to a client, and listing an execution to
find new objects costs a request per 1000 objects already there, on every poll. So
after each object write an S3 provider also puts one empty marker:

    _factflow/journal/<exec-id>/<writer-ms:013d>-<random>/<route>/<stage>/<msg-id>

Marker names sort by the writer's clock, so a poll is one ``ListObjectsV2`` with
``start-after`` set to "now minus the lookback window": it returns only the markers of
the last few seconds, whatever the size of the execution. Cost: one extra small PUT per
object written; per watched execution (shared by every watcher of it) one LIST per poll
and one GET of the execution record per poll that finds new markers; one HEAD per new
object. Markers are never listed as objects (``_factflow/``).

The lookback window covers a marker's PUT still in flight when a poll passes its name,
and clock skew between writer hosts and the watcher; a marker later than that is found
by the final listing every watch makes when the execution finishes.
A key too long to fit in the marker's name goes in the marker's body instead.

Markers only matter inside the lookback window, so the writer side removes them: every
``PRUNE_EVERY`` writes to an execution, one listing page of its oldest markers and one
multi-object delete of those older than ``KEEP_MS`` (a bounded cost per write, and a
marker count bounded by the write rate times ``KEEP_MS``, not by the execution's size).
When an execution record is written with a terminal status, the execution's markers are
removed at once: its watchers end on that record with a final listing.

``WriteJournal`` is the one owner of all this: the S3 provider attaches it to itself as
a write hook (``journal_hook``), so every write through it keeps the journal whoever
opened it, and it asks on the first write whether the server's listen API makes it
unnecessary. The watchers' side is ``factflow_storage.watch.s3_sources``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from factflow_storage.errors import StorageError
from factflow_storage.keys import MAX_KEY_BYTES, execution_prefix, parse_key

JOURNAL = "journal/"
LOOKBACK_S = 5.0
# Twice the lookback: a marker is removed well after any poll could still ask for it.
KEEP_MS = int(2 * LOOKBACK_S * 1000)
PRUNE_EVERY = 50
PRUNE_BATCH = 1000  # one listing page, one multi-object delete

log = logging.getLogger(__name__)


def journal_prefix(execution_id: str) -> str:
    return f"{JOURNAL}{execution_id}/"


def marker_name(key: str, stamp_ms: int | None = None) -> tuple[str, bytes]:
    """The marker's record name and body for a write of ``key``."""
    parts = parse_key(key)
    assert parts is not None
    stamp = int(time.time() * 1000) if stamp_ms is None else stamp_ms
    base = f"{journal_prefix(parts.execution_id)}{stamp:013d}-{os.urandom(4).hex()}"
    relative = key[len(execution_prefix(parts.execution_id)):]
    name = f"{base}/{relative}"
    # Room for the provider's own prefix and "_factflow/": keep well inside S3's limit.
    if len(name.encode()) + 64 > MAX_KEY_BYTES:
        return base, key.encode()
    return name, b""


def parse_marker(name: str, execution_id: str) -> tuple[int, str | None] | None:
    """(writer stamp, key or None when the key is in the body) of a marker record name."""
    rest = name[len(journal_prefix(execution_id)):]
    head, _, relative = rest.partition("/")
    stamp_text, dash, _ = head.partition("-")
    if not dash or not stamp_text.isdigit():
        return None
    return int(stamp_text), (execution_prefix(execution_id) + relative) if relative else None


class WriteJournal:
    """The write hook that keeps (and prunes) an S3 provider's journal."""

    def __init__(self, provider: Any, *, enabled: bool | None = None, needed: Callable[[], bool] | None = None):
        self.provider = provider
        # None: decide on the first write by asking ``needed`` (False where the server
        # has a listen API); a StorageError from it leaves the question open.
        self.enabled = True if enabled is None and needed is None else enabled
        self._needed = needed
        self._writes: dict[str, int] = {}
        self._lock = threading.Lock()

    def object_written(self, key: str) -> None:
        """After ``key`` is committed: its marker, and now and then a prune."""
        parts = parse_key(key)
        if parts is None or parts.route_id is None or not self._decide():
            return
        name, body = marker_name(key)
        try:
            self.provider.put_record(name, body)
        except StorageError as err:
            # The object is stored; failing its write now would make the writer store it again.
            # Watchers still get it from the listing they make when the execution finishes.
            log.warning("journal marker for %r not written: %s", key, err)
            return
        with self._lock:
            count = self._writes.get(parts.execution_id, 0) + 1
            self._writes[parts.execution_id] = count
        if count % PRUNE_EVERY == 0:
            self.prune(parts.execution_id)

    def execution_finished(self, execution_id: str) -> None:
        """A finished execution's markers are of no more use to anyone."""
        if self.enabled is False:
            return
        with self._lock:
            self._writes.pop(execution_id, None)
        try:
            while self._delete_batch(execution_id, cutoff_ms=None) == PRUNE_BATCH:
                pass
        except StorageError as err:
            log.warning("journal of execution %r not removed: %s", execution_id, err)

    def prune(self, execution_id: str) -> int:
        """Remove up to one batch of the execution's markers older than ``KEEP_MS``."""
        try:
            return self._delete_batch(execution_id, cutoff_ms=int(time.time() * 1000) - KEEP_MS)
        except StorageError as err:
            log.warning("journal of execution %r not pruned: %s", execution_id, err)
            return 0

    def _delete_batch(self, execution_id: str, cutoff_ms: int | None) -> int:
        stale = []
        for name in itertools.islice(self.provider.list_records(journal_prefix(execution_id)), PRUNE_BATCH):
            parsed = parse_marker(name, execution_id)
            if cutoff_ms is not None and parsed is not None and parsed[0] >= cutoff_ms:
                break  # names sort by stamp: every later marker is newer still
            stale.append(name)
        if stale:
            self.provider.delete_records(stale)
        return len(stale)

    def _decide(self) -> bool:
        if self.enabled is None and self._needed is not None:
            try:
                self.enabled = self._needed()
            except StorageError:
                return True  # undecided for now: keep the journal for this write, ask again next time
        return self.enabled is not False


def journal_hook(provider: Any) -> WriteJournal:
    """An S3 provider's journal, kept only where the server has no listen API (probed on
    the first write)."""
    from factflow_storage.providers.s3_listen import listen_supported

    return WriteJournal(provider, needed=lambda: not listen_supported(provider))


def journal_of(provider: Any) -> WriteJournal | None:
    """The journal hook attached to ``provider``, if any."""
    return next((hook for hook in getattr(provider, "write_hooks", ()) if isinstance(hook, WriteJournal)), None)
