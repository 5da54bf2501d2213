"""A flat listing of a filesystem store written straight as NDJSON rows.

``storage list --output json`` of a large store spends most of its time per object: a
``DirEntry`` and an ``ObjectInfo`` each, a ``datetime`` and its text, a dict and its own
``orjson.dumps``. Here one loop per directory lists its names, stats each object once
(relative to the directory's descriptor) and formats its row as text, the time from the
stat without a ``datetime`` and each second's text once; rows are encoded a chunk at a time.

The rows are byte for byte those of ``StorageService.list_rows`` over
``FilesystemProvider.list``: the same entries left out (sidecars, temp files, the records
directory, undecodable names, links and special files), the same key order, the same
time rounding (``datetime.fromtimestamp`` of the float mtime, to the microsecond, half to
even; then whole milliseconds).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from operator import itemgetter

import orjson

from factflow_storage.errors import Unavailable
from factflow_storage.keys import RESERVED_PREFIX, SIDECAR_SUFFIX, validate_prefix
from factflow_storage.metadata import format_time
from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.providers import fs_paths

RESERVED_DIR = RESERVED_PREFIX.rstrip("/")
# Rows per chunk handed to the writer: one write per row costs more than the row.
CHUNK_ROWS = 1024
# The years ``format_time`` formats from a cache (1971 to 2200); other times take it whole.
_FIRST_SECOND, _END_SECOND = 31_536_000, 7_258_118_400
_SECONDS_KEPT = 4096
_first_item = itemgetter(0)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_ROW = '{"key":"%s%s","size":%d,"last_modified":"%s.%03dZ"}\n'
_EMPTY_ERRORS = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)


def ndjson_rows(provider: FilesystemProvider, prefix: str = "", limit: int | None = None) -> Iterator[bytes]:
    """The rows of ``list_rows(prefix, limit=limit)`` as NDJSON, in chunks of many rows."""
    validate_prefix(prefix)
    directory, _, name_filter = prefix.rpartition("/")
    key_prefix = f"{directory}/" if directory else ""
    if not provider._reachable(directory):
        return
    left = -1 if limit is None else limit
    seconds: dict[int, str] = {}
    # Depth first, each directory in key order with '/' ending a subdirectory's key, as
    # FilesystemProvider._walk: a stack of levels, each the sorted entries still to go.
    start = os.path.join(provider.root, directory)
    pending = [(start, key_prefix, iter(_level(start, key_prefix, name_filter, seconds)))]
    chunk: list[str] = []
    while pending:
        path, keys, entries = pending[-1]
        for name, row in entries:
            if row is None:
                below = os.path.join(path, name[:-1])
                pending.append((below, keys + name, iter(_level(below, keys + name, "", seconds))))
                break
            chunk.append(row)
            left -= 1
            if left == 0:
                yield "".join(chunk).encode()
                return
            if len(chunk) >= CHUNK_ROWS:
                yield "".join(chunk).encode()
                chunk = []
        else:
            pending.pop()
    if chunk:
        yield "".join(chunk).encode()


def _level(directory: str, key_prefix: str, name_filter: str,
           seconds: dict[int, str]) -> list[tuple[str, str | None]]:
    """One directory's entries in key order: (name, its row) for an object and (name and
    '/', None) for a subdirectory."""
    try:
        fd = os.open(directory, _DIRECTORY)
    except OSError as err:
        if err.errno in _EMPTY_ERRORS:
            return []
        raise Unavailable(f"cannot read {directory}: {err.strerror}") from err
    entries: list[tuple[str, str | None]] = []
    append = entries.append
    at_root = not key_prefix
    shown_prefix = orjson.dumps(key_prefix)[1:-1].decode()
    row = _ROW
    lstat, is_dir, is_file = os.lstat, stat.S_ISDIR, stat.S_ISREG
    try:
        names = os.listdir(fd)
        # One test for the whole directory: its names usually need no JSON escaping.
        plain = _plain("/".join(names))
        for name in names:
            if name.endswith(SIDECAR_SUFFIX) or (name_filter and not name.startswith(name_filter)):
                continue
            if at_root and name == RESERVED_DIR:
                continue
            if not plain and not name.isascii() and not fs_paths.is_utf8(name):
                continue  # undecodable bytes: not a key this project could have written
            try:
                st = lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # deleted since the directory was read
            mode = st.st_mode
            if is_file(mode):
                shown = name if plain or _plain(name) else orjson.dumps(name)[1:-1].decode()
                # Inline, not a call per object: the time as datetime.fromtimestamp rounds
                # it (the fraction to the microsecond, half to even), each second's text once.
                mtime = st.st_mtime
                second = int(mtime)
                micro = round((mtime - second) * 1e6)
                if micro >= 1_000_000:
                    second, micro = second + 1, micro - 1_000_000
                text = seconds.get(second)
                if text is None:
                    text = _second_text(second, seconds)
                    if text is None:
                        append((name, _row_whole(shown_prefix + shown, st)))
                        continue
                append((name, row % (shown_prefix, shown, st.st_size, text, micro // 1000)))
            elif is_dir(mode):
                append((name + "/", None))
    except OSError as err:
        raise Unavailable(f"cannot read {directory}: {err.strerror}") from err
    finally:
        os.close(fd)
    # Within one directory the key order is its names' (a subdirectory's ending in '/'):
    # code point order of str, the byte order of UTF-8, which is S3's.
    entries.sort(key=_first_item)
    return entries


def _plain(text: str) -> bool:
    """Whether ``text`` is its own JSON string body (printable ASCII, no quote or backslash)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _second_text(second: int, seconds: dict[int, str]) -> str | None:
    """A second's text, kept; None outside the years ``format_time`` formats this way."""
    if not _FIRST_SECOND <= second < _END_SECOND:
        return None
    if len(seconds) >= _SECONDS_KEPT:
        seconds.clear()
    text = seconds[second] = datetime.fromtimestamp(second, timezone.utc).isoformat(timespec="seconds")[:19]
    return text


def _row_whole(key: str, st: os.stat_result) -> str:
    text = format_time(datetime.fromtimestamp(st.st_mtime, timezone.utc))
    return f'{{"key":"{key}","size":{st.st_size},"last_modified":"{text}"}}\n'

