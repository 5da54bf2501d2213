"""A flat listing of a filesystem store written straight as NDJSON rows.

``storage list --output json`` of a large store spends most of its time per object: a
``DirEntry`` and an ``ObjectInfo`` each, a ``datetime`` and its text, a dict and its own
``orjson.dumps``. Here one loop per directory lists its names, stats each object once
(relative to the directory's descriptor) and formats its row as bytes, the time from the
stat without a ``datetime`` and each second's text once.

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
from operator import itemgetter
from collections.abc import Iterator
from datetime import datetime, timezone

import orjson

from factflow_storage.errors import Unavailable
from factflow_storage.keys import RESERVED_PREFIX, SIDECAR_SUFFIX, validate_prefix
from factflow_storage.metadata import format_time
from factflow_storage.providers.filesystem import FilesystemProvider

RESERVED_DIR = RESERVED_PREFIX.rstrip("/")
# Rows per chunk handed to the writer: one write per row costs more than the row.
CHUNK_ROWS = 1024
# The years ``format_time`` formats from a cache (1971 to 2200); other times take it whole.
_FIRST_SECOND, _END_SECOND = 31_536_000, 7_258_118_400
_SECONDS_KEPT = 4096
_first_item = itemgetter(0)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_ROW = b'{"key":"%s","size":%d,"last_modified":"%s.%03dZ"}\n'
_EMPTY_ERRORS = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)


def ndjson_rows(provider: FilesystemProvider, prefix: str = "", limit: int | None = None) -> Iterator[bytes]:
    """The rows of ``list_rows(prefix, limit=limit)`` as NDJSON, in chunks of many rows."""
    validate_prefix(prefix)
    directory, _, name_filter = prefix.rpartition("/")
    key_prefix = f"{directory}/" if directory else ""
    if not provider._reachable(directory):
        return
    left = -1 if limit is None else limit
    seconds: dict[int, bytes] = {}
    # Depth first, each directory in key order with '/' ending a subdirectory's key, as
    # FilesystemProvider._walk: a stack of levels, each the sorted entries still to go.
    pending = [iter(_level(os.path.join(provider.root, directory), key_prefix, name_filter, seconds))]
    chunk: list[bytes] = []
    while pending:
        for key, row, path in pending[-1]:
            if row is None:
                pending.append(iter(_level(path, key, "", seconds)))
                break
            chunk.append(row)
            left -= 1
            if left == 0:
                yield b"".join(chunk)
                return
            if len(chunk) >= CHUNK_ROWS:
                yield b"".join(chunk)
                chunk = []
        else:
            pending.pop()
    if chunk:
        yield b"".join(chunk)


def _level(directory: str, key_prefix: str, name_filter: str,
           seconds: dict[int, bytes]) -> list[tuple[str, bytes | None, str]]:
    """One directory's entries in key order: (key, its row, "") for an object and
    (key ending in '/', None, its path) for a subdirectory."""
    try:
        fd = os.open(directory, _DIRECTORY)
    except OSError as err:
        if err.errno in _EMPTY_ERRORS:
            return []
        raise Unavailable(f"cannot read {directory}: {err.strerror}") from err
    entries: list[tuple[str, bytes | None, str]] = []
    append = entries.append
    at_root = not key_prefix
    escaped_prefix = orjson.dumps(key_prefix)[1:-1]
    row = _ROW
    lstat, is_dir, is_file = os.lstat, stat.S_ISDIR, stat.S_ISREG
    try:
        names = os.listdir(fd)
        for name in names:
            if name.endswith(SIDECAR_SUFFIX) or (name_filter and not name.startswith(name_filter)):
                continue
            if at_root and name == RESERVED_DIR:
                continue
            ascii_name = name.isascii()
            if not ascii_name and not _is_utf8(name):
                continue  # undecodable bytes: not a key this project could have written
            try:
                st = lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # deleted since the directory was read
            mode = st.st_mode
            if is_file(mode):
                if ascii_name and name.isprintable() and '"' not in name and "\\" not in name:
                    escaped = escaped_prefix + name.encode()
                else:
                    escaped = escaped_prefix + orjson.dumps(name)[1:-1]
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
                        append((key_prefix + name, _row_whole(escaped, st), ""))
                        continue
                append((key_prefix + name, row % (escaped, st.st_size, text, micro // 1000), ""))
            elif is_dir(mode):
                append((f"{key_prefix}{name}/", None, os.path.join(directory, name)))
    except OSError as err:
        raise Unavailable(f"cannot read {directory}: {err.strerror}") from err
    finally:
        os.close(fd)
    # Code point order of str is the byte order of UTF-8, which is S3's.
    entries.sort(key=_first_item)
    return entries


def _second_text(second: int, seconds: dict[int, bytes]) -> bytes | None:
    """A second's text, kept; None outside the years ``format_time`` formats this way."""
    if not _FIRST_SECOND <= second < _END_SECOND:
        return None
    if len(seconds) >= _SECONDS_KEPT:
        seconds.clear()
    text = seconds[second] = datetime.fromtimestamp(second, timezone.utc).isoformat(timespec="seconds")[:19].encode()
    return text


def _row_whole(key: bytes, st: os.stat_result) -> bytes:
    text = format_time(datetime.fromtimestamp(st.st_mtime, timezone.utc)).encode()
    return b'{"key":"%s","size":%d,"last_modified":"%s"}\n' % (key, st.st_size, text)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
