"""Filesystem source: watchfiles (inotify on Linux) on the execution's directory.

The provider writes bytes and sidecar to temp files ending in ``.tmp.meta.json`` and
renames them into place, data last; the rename of the data file is the one moment an
object becomes visible, and the only change reported here. Temp files and sidecars
share the ``.meta.json`` suffix, so one suffix test keeps both out.

inotify watches a new subdirectory only after it appears, so a file renamed into a
brand-new route or stage directory may slip past the watch: every new directory is
swept once after it is reported. A sweep can re-report an object; each write is a new
inode, so (inode, mtime) per key lets exactly one report through per write.
"""

from __future__ import annotations

import os
import threading

import watchfiles

from factflow_storage.errors import NotFound, StorageError
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.watch.source import Report

_STEP_MS = 5
_DEBOUNCE_MS = 40
_TICK_MS = 200
_APPEAR_POLL = 0.02


class FilesystemSource:
    settle = 1.0

    def __init__(self, provider) -> None:
        self.provider = provider
        self.root = provider.root
        self._seen: dict[str, tuple[int, int]] = {}

    def run(self, prefix: str, report: Report, armed: threading.Event, stop: threading.Event) -> None:
        directory = os.path.join(self.root, prefix.rstrip("/"))
        if not os.path.isdir(directory):
            # Nothing written yet: whatever appears is swept once the watch is in place.
            armed.set()
            while not os.path.isdir(directory):
                if stop.wait(_APPEAR_POLL):
                    return
        changes = watchfiles.watch(directory, watch_filter=None, debounce=_DEBOUNCE_MS, step=_STEP_MS,
                                   stop_event=stop, rust_timeout=_TICK_MS, yield_on_timeout=True,
                                   raise_interrupt=False)
        try:
            first = next(changes, None)  # the watcher exists from here on
            if armed.is_set():
                self._sweep(directory, report)
            armed.set()
            batch = first
            while batch is not None and not stop.is_set():
                self._handle(batch, report)
                batch = next(changes, None)
        finally:
            changes.close()

    def _handle(self, batch, report: Report) -> None:
        for change, path in sorted(batch, key=lambda item: item[1]):
            if change == watchfiles.Change.deleted or path.endswith(SIDECAR_SUFFIX):
                continue
            if os.path.isdir(path):
                self._sweep(path, report)
            else:
                self._consider(path, report)

    def _sweep(self, directory: str, report: Report) -> None:
        for current, subdirs, files in os.walk(directory):
            subdirs.sort()
            for name in sorted(files):
                if not name.endswith(SIDECAR_SUFFIX):
                    self._consider(os.path.join(current, name), report)

    def _consider(self, path: str, report: Report) -> None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return  # replaced or deleted since: its successor has its own event
        key = os.path.relpath(path, self.root).replace(os.sep, "/")
        version = (st.st_ino, st.st_mtime_ns)
        if self._seen.get(key) == version:
            return
        try:
            info = self.provider.stat(key)
        except NotFound:
            return
        except StorageError:
            return  # not a key this project could have written (or mid-write): skip
        self._seen[key] = version
        report(info)
