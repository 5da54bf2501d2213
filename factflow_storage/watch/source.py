"""One interface for every way of learning that an object was written.

A source reports the objects written under one prefix, from the moment it says it is
armed until it is told to stop. It may report an object twice (after a reconnect, a
sweep re-reports what is there); it must not miss one written while it was armed, and
it must report an object no later than ``settle`` seconds after the object's listing
timestamp (``factflow_storage.watch.events`` builds resumable ids on that bound).

Sources per provider:

- filesystem: ``FilesystemSource``, inotify (or the platform's equivalent) via watchfiles;
- S3 with MinIO's listen extension: ``ListenSource``;
- any other S3 (AWS, Ceph radosgw): ``JournalSource``, polling the write journal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from factflow_storage.protocol import ObjectInfo

Report = Callable[[ObjectInfo], None]


class WatchSource(Protocol):
    settle: float
    """Seconds: the latest an object is reported after its listing timestamp."""

    def run(self, prefix: str, report: Report, armed: threading.Event, stop: threading.Event) -> None:
        """Call ``report`` for every object written under ``prefix`` until ``stop`` is set.

        Sets ``armed`` once every later write is sure to be reported. Returns when
        ``stop`` is set; raises only for errors it cannot ride out.
        """

