"""Sidecars the filesystem provider has read, kept so a listing with metadata costs one
``stat`` per sidecar instead of an open, a read and a close.

An entry is used only while the sidecar file still has the device, inode, size, mtime and
ctime it had when read. Writes replace a sidecar by rename (a new inode); a tool editing
one in place changes its ctime, even when it writes the same size and restores the mtime.
ctime advances by the kernel's clock tick, so a second change within the tick of the first
could leave all five alike: a sidecar changed less than ``settle_ns`` ago is read but not
kept (git's rule for "racily clean" index entries).

The bytes are kept, not the parsed record: callers get a record of their own to change.
Bounded by bytes, least recently used first out.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import OrderedDict
from typing import Any

from factflow_storage.errors import NotFound
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.providers import fs_paths
from factflow_storage.providers.fs_stat import FileSignature, StatCalls, file_signature
from factflow_storage.providers.fs_write import SIDECAR_LIMIT, parse_sidecar

MAX_BYTES = 32 * 2**20
# Far above any filesystem's timestamp tick, far below a listing's reuse of a sidecar.
SETTLE_NS = 100_000_000

class SidecarCache:
    def __init__(self, max_bytes: int = MAX_BYTES, settle_ns: int = SETTLE_NS, stats: StatCalls | None = None):
        self._stats = stats or StatCalls()
        self.max_bytes = max_bytes
        self.settle_ns = settle_ns
        self.hits = 0
        self._bytes = 0
        self._entries: OrderedDict[str, tuple[FileSignature, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, key: str, parent: int, name: str) -> dict[str, Any] | None:
        """The sidecar record of ``name`` in ``parent`` (None when there is none)."""
        sidecar = name + SIDECAR_SUFFIX
        try:
            st = self._stats.at(sidecar, parent)
        except OSError:
            st = None  # absent or unreadable: the read below says which
        if st is not None and stat.S_ISREG(st.st_mode):
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == file_signature(st):
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return parse_sidecar(key, entry[1])
        what = f"metadata sidecar of {key!r}"
        try:
            fd = fs_paths.open_regular(parent, sidecar, what, directory_is_missing=False)
        except NotFound:
            self.forget(key)
            return None
        try:
            opened = os.fstat(fd)  # the file read, which a rename may have replaced since
            raw = fs_paths.read_bounded(fd, SIDECAR_LIMIT, what)
        finally:
            os.close(fd)
        record = parse_sidecar(key, raw)
        if time.time_ns() - opened.st_ctime_ns > self.settle_ns:
            self._keep(key, file_signature(opened), raw)
        return record

    def forget(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= len(entry[1])

    def _keep(self, key: str, signature: FileSignature, raw: bytes) -> None:
        if len(raw) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[key] = (signature, raw)
            self._bytes += len(raw)
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)
