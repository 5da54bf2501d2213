"""A filesystem listing with each object's metadata, in one pass: the list API's pages.

The plain listing (``FilesystemProvider.list``) reads every directory it walks and stats
each entry; pairing its rows with metadata stats each object again. Here a row kept by
``RowCache`` costs one look at the object and one at its sidecar (their signatures alone),
a row not kept one whole stat more, which serves both the row and the choice of sidecar
version; keys are not validated again (the walk builds them from names it has checked).

Directories are read through ``DirectoryCache``: a directory's sorted entries are kept
while it has the device, inode, mtime and ctime it had when read. Adding, removing or
renaming an entry changes a directory's mtime and ctime, so a kept listing is exactly the
directory's names; a page then starts by bisection instead of a scan. Objects and
sidecars are stat'ed on every listing: a change made in place never comes from a cache.
As for sidecars (``fs_sidecar_cache``), a directory changed less than ``settle_ns`` ago is
read but not kept, since a second change within the clock tick of the first could leave
its times alike.
"""

from __future__ import annotations

import bisect
import errno
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson

from factflow_storage.errors import NotFound, Unavailable
from factflow_storage.keys import RESERVED_PREFIX, SIDECAR_SUFFIX, validate_prefix
from factflow_storage.protocol import ObjectInfo
from factflow_storage.providers import fs_paths
from factflow_storage.providers.fs_paths import NotADirectory, Unsafe
from factflow_storage.providers.fs_sidecar_cache import SETTLE_NS
from factflow_storage.providers.fs_stat import FileSignature, StatCalls, file_signature

RESERVED_DIR = RESERVED_PREFIX.rstrip("/")
# Names kept in all: about 100 bytes each, so some 10 MiB; a larger directory is read each time.
MAX_NAMES = 100_000
# The rows' blobs, as JSON bytes plus what Python keeps per row (about): some 32 MiB in all.
MAX_ROW_BYTES = 24 * 2**20
_ROW_OVERHEAD = 600
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Signature = tuple[int, int, int, int]
# A directory's entries in key order: names (a subdirectory's ends with '/') and which are directories.
Entries = tuple[list[str], list[bool]]


class FilesystemProvider(Protocol):
    """What the walk uses of the provider (``filesystem.FilesystemProvider``)."""

    root: str
    directories: DirectoryCache
    rows: RowCache
    stats: StatCalls

    def blob_for(self, key: str, parent: int, name: str, st: os.stat_result) -> dict[str, Any] | None: ...

    def full_metadata(self, key: str) -> dict[str, Any]: ...


def _signature(st: os.stat_result) -> Signature:
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


class DirectoryCache:
    def __init__(self, max_names: int = MAX_NAMES, settle_ns: int = SETTLE_NS, stats: StatCalls | None = None):
        self.max_names = max_names
        self._stats = stats or StatCalls()
        self.settle_ns = settle_ns
        self.hits = 0
        self._names = 0
        self._entries: OrderedDict[Signature, Entries] = OrderedDict()
        self._lock = threading.Lock()

    def entries(self, fd: int, at_root: bool) -> Entries:
        """The entries of the open directory ``fd``: sidecars, temp files and (at the root)
        the records directory left out, as the plain listing does."""
        # Taken before the read: a change during it makes the next look miss.
        signature = _signature(self._stats.of(fd))
        with self._lock:
            kept = self._entries.get(signature)
            if kept is not None:
                self._entries.move_to_end(signature)
                self.hits += 1
                return kept
        read = _read(fd, at_root)
        if time.time_ns() - signature[3] > self.settle_ns:
            self._keep(signature, read)
        return read

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> int:
        """Names kept, in all directories."""
        return self._names

    def _keep(self, signature: Signature, entries: Entries) -> None:
        size = len(entries[0])
        if size > self.max_names:
            return
        with self._lock:
            if signature in self._entries:
                return
            self._entries[signature] = entries
            self._names += size
            while self._names > self.max_names:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._names -= len(dropped)


def _read(fd: int, at_root: bool) -> Entries:
    rows: list[tuple[str, bool]] = []
    with os.scandir(fd) as scanner:
        for entry in scanner:
            name = entry.name
            if name.endswith(SIDECAR_SUFFIX) or (at_root and name == RESERVED_DIR):
                continue
            if not name.isascii() and not fs_paths.is_utf8(name):
                continue  # undecodable bytes: not a key this project could have written
            if entry.is_dir(follow_symlinks=False):
                rows.append((name + "/", True))
            elif entry.is_file(follow_symlinks=False):
                rows.append((name, False))
    # Code point order of str is the byte order of UTF-8, which is S3's.
    rows.sort()
    return [name for name, _ in rows], [is_dir for _, is_dir in rows]



def walk(provider: FilesystemProvider, prefix: str, start_after: str | None,
         keep: Callable[[str], bool] | None) -> Generator[tuple[ObjectInfo, dict[str, Any]], None, None]:
    """``(info, metadata)`` of each object under ``prefix`` after ``start_after`` whose key
    passes ``keep``, in key order: the rows ``list`` gives, each with what ``metadata``
    answers. An object deleted during the walk is left out."""
    validate_prefix(prefix)
    directory, _, name_filter = prefix.rpartition("/")
    try:
        fds = fs_paths.open_chain(provider.root, fs_paths.segments_of(directory))
    except (NotFound, NotADirectory, Unsafe, FileNotFoundError, NotADirectoryError):
        return
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:  # a prefix no stored key can match
            return
        raise Unavailable(f"cannot read {directory or provider.root}: {err.strerror}") from err
    start = fds.pop()
    fs_paths.close_all(fds)
    yield from _walk_from(provider, start, f"{directory}/" if directory else "", name_filter, start_after, keep)


def _walk_from(provider: FilesystemProvider, top: int, top_prefix: str, name_filter: str,
               start_after: str | None, keep: Callable[[str], bool] | None
               ) -> Iterator[tuple[ObjectInfo, dict[str, Any]]]:
    # Depth-first with an explicit stack, as the plain listing walks; each level holds its
    # descriptor, so the stats and sidecar reads below go through no path lookup.
    stack: list[tuple[int, str, list[str], list[bool], int]] = []
    cache = provider.directories
    try:
        names, dirs = cache.entries(top, not top_prefix)
        stack.append((top, top_prefix, names, dirs, _first_index(names, top_prefix, name_filter, start_after)))
        while stack:
            fd, key_prefix, names, dirs, index = stack[-1]
            end = len(names)
            descended = False
            while index < end:
                name = names[index]
                if name_filter and len(stack) == 1 and not name.startswith(name_filter):
                    index = end  # sorted: no later name has the filter's prefix either
                    break
                key = key_prefix + name
                index += 1
                if dirs[index - 1]:
                    if start_after is None or key > start_after or start_after.startswith(key):
                        child = _open_dir(fd, name[:-1])
                        if child is None:
                            continue
                        stack[-1] = (fd, key_prefix, names, dirs, index)
                        child_names, child_dirs = cache.entries(child, False)
                        stack.append((child, key, child_names, child_dirs,
                                      _first_index(child_names, key, "", start_after)))
                        descended = True
                        break
                    continue
                if start_after is not None:
                    if key <= start_after:
                        continue
                    start_after = None  # every later key is greater
                if keep is not None and not keep(key):
                    continue
                row = _row(provider, fd, key, name)
                if row is not None:
                    yield row
            if not descended:
                os.close(stack.pop()[0])
    finally:
        for level in stack:
            os.close(level[0])


def _first_index(names: list[str], key_prefix: str, name_filter: str, start_after: str | None) -> int:
    """Where a level's walk starts: at the first name with the filter's prefix, past the
    names not after ``start_after`` (but at a directory that holds it)."""
    index = bisect.bisect_left(names, name_filter) if name_filter else 0
    if start_after is not None and start_after.startswith(key_prefix):
        rest = start_after[len(key_prefix):]
        after = bisect.bisect_right(names, rest)
        if after and names[after - 1].endswith("/") and rest.startswith(names[after - 1]):
            after -= 1
        index = max(index, after)
    return index


def _open_dir(parent: int, name: str) -> int | None:
    """A subdirectory's descriptor; None when it went (or became something else) since read."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None
        raise Unavailable(f"cannot read {name!r}: {err.strerror}") from err


def _row(provider: FilesystemProvider, parent: int, key: str, name: str
         ) -> tuple[ObjectInfo, dict[str, Any]] | None:
    stats, rows = provider.stats, provider.rows
    try:
        mode, signature = stats.signature(name, parent)
    except FileNotFoundError:
        return None  # deleted since its directory was read
    if not stat.S_ISREG(mode):
        return None  # replaced since its directory was read: the plain listing would not show it
    try:
        sidecar: FileSignature | None = stats.signature(name + SIDECAR_SUFFIX, parent)[1]
    except OSError:
        sidecar = None
    if sidecar is not None:
        kept = rows.get(key, signature, sidecar)
        if kept is not None:
            return kept
    # Not kept: the whole stat, for the row and the choice of the sidecar's version.
    try:
        st = stats.at(name, parent)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    info = ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc))
    blob = provider.blob_for(key, parent, name, st)
    if blob is None:
        try:
            blob = provider.full_metadata(key)
        except NotFound:
            return None
    elif sidecar is not None:
        rows.keep(key, st, sidecar, info, blob)
    return info, blob


class RowCache:
    """Listing rows with their metadata, as parsed and checked: each is used only while the
    object and its sidecar have the device, inode, size, mtime and ctime they had (the rule
    of ``fs_sidecar_cache``, settle time included). Bounded by the blobs' JSON bytes."""

    def __init__(self, max_bytes: int = MAX_ROW_BYTES, settle_ns: int = SETTLE_NS):
        self.max_bytes = max_bytes
        self.settle_ns = settle_ns
        self.hits = 0
        self._bytes = 0
        self._entries: OrderedDict[str, _Row] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, signature: FileSignature, sidecar: FileSignature
            ) -> tuple[ObjectInfo, dict[str, Any]] | None:
        with self._lock:
            row = self._entries.get(key)
            if row is None or row.signature != (signature, sidecar):
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        # The caller's own blob: nested values are parsed again rather than shared.
        return row.info, dict(row.blob) if row.raw is None else orjson.loads(row.raw)

    def keep(self, key: str, st: os.stat_result, sidecar: FileSignature, info: ObjectInfo,
             blob: dict[str, Any]) -> None:
        now = time.time_ns()
        if now - st.st_ctime_ns <= self.settle_ns or now - sidecar[4] <= self.settle_ns:
            return
        raw = orjson.dumps(blob)
        flat = not any(isinstance(value, (dict, list)) for value in blob.values())
        row = _Row((file_signature(st), sidecar), info, dict(blob), None if flat else raw)
        size = len(raw) + _ROW_OVERHEAD
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            row.size = size
            self._entries[key] = row
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.size

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """What the kept rows count for against ``max_bytes``."""
        return self._bytes


class _Row:
    __slots__ = ("signature", "info", "blob", "raw", "size")

    def __init__(self, signature: tuple[FileSignature, FileSignature], info: ObjectInfo, blob: dict[str, Any],
                 raw: bytes | None):
        self.signature = signature
        self.info = info
        self.blob = blob
        self.raw = raw
        self.size = 0
