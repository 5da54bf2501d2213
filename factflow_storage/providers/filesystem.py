"""``file://PATH``: objects as files under a root, each with a ``<object>.meta.json`` sidecar.

Write order makes every write atomic for readers: bytes go to a temp file, then the
sidecar (naming the temp file's inode) replaces the old sidecar, then the temp file
replaces the object. A reader opens the object and accepts its sidecar only when the
inodes match, retrying across the brief window in which the sidecar is already new; a
copied tree (new inodes) is recognised by its bytes matching the sidecar's checksum.
Temp files end in ``.meta.json``, a suffix no key may have, so they are never listed.

A filesystem cannot hold an object ``a/b`` beside an object ``a/b/c``: such a write
raises Conflict and leaves the existing object untouched.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat as stat_mode
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, BinaryIO

import orjson

from factflow_storage.errors import Conflict, InvalidKey, NotFound, StorageError, Unavailable
from factflow_storage.keys import RESERVED_PREFIX, SIDECAR_SUFFIX, validate_key, validate_prefix
from factflow_storage.metadata import (CHUNK_SIZE, HashingReader, build_metadata, check_user_metadata,
                                       describe_stored, foreign_metadata)
from factflow_storage.protocol import BaseProvider, ObjectInfo, ObjectStream, PrefixInfo, check_range
from factflow_storage.registry import StorageURI

INODE_FIELD = "_factflow_inode"
TEMP_SUFFIX = ".tmp" + SIDECAR_SUFFIX
RESERVED_DIR = RESERVED_PREFIX.rstrip("/")
_CONSISTENT_READ_DEADLINE = 2.0
# A writer swaps sidecar and object with two renames; a mismatch lasting longer than this
# is checked against the bytes instead of waited out.
_SWAP_WINDOW = 0.05
# File names are at most 255 bytes on the filesystems we run on; the sidecar adds its suffix.
MAX_SEGMENT_BYTES = 255 - len(SIDECAR_SUFFIX)


class FilesystemProvider(BaseProvider):
    def __init__(self, uri: StorageURI, *, fsync: bool = True):
        self.uri = uri.raw or f"file://{uri.location}"
        self.root = os.path.abspath(os.path.expanduser(uri.location))
        self._fsync = fsync

    # -- paths ---------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        if any(len(segment.encode()) > MAX_SEGMENT_BYTES for segment in key.split("/")):
            raise InvalidKey(f"invalid key {key!r}: the filesystem provider cannot store a segment "
                             f"longer than {MAX_SEGMENT_BYTES} bytes (its sidecar name must fit too)")
        return os.path.join(self.root, key)

    def _record_path(self, name: str) -> str:
        validate_prefix(name)
        return os.path.join(self.root, RESERVED_DIR, name)

    # -- writes --------------------------------------------------------------

    def write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
              *, content_type: str | None = None) -> dict[str, Any]:
        try:
            return self._write(key, data, metadata, content_type)
        except StorageError:
            raise
        except OSError as err:  # a full disk, a read-only mount, lost permissions
            raise Unavailable(f"cannot write {key!r} under {self.root}: {err.strerror or err}") from err

    def _write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None,
               content_type: str | None) -> dict[str, Any]:
        target = self._path(key)
        user_metadata = check_user_metadata(metadata)
        user_metadata.pop(INODE_FIELD, None)
        self.index_lineage(key, user_metadata)
        parent = self._make_parent(key, target)
        if os.path.isdir(target):
            raise _prefix_conflict(key)
        reader = HashingReader(data)
        data_tmp = self._write_temp(parent, reader.chunks())
        sidecar_tmp = None
        try:
            blob = build_metadata(key, user_metadata, content_type=content_type,
                                  size=reader.size, sha256_hex=reader.sha256_hex)
            sidecar = orjson.dumps({**blob, INODE_FIELD: os.stat(data_tmp).st_ino})
            sidecar_tmp = self._write_temp(parent, [sidecar])
            os.replace(sidecar_tmp, target + SIDECAR_SUFFIX)
            sidecar_tmp = None
            try:
                os.replace(data_tmp, target)
            except (IsADirectoryError, NotADirectoryError) as err:
                _unlink_quietly(target + SIDECAR_SUFFIX)
                raise _prefix_conflict(key) from err
            data_tmp = None
            self._sync_dir(parent)
            return blob
        finally:
            for leftover in (data_tmp, sidecar_tmp):
                if leftover:
                    _unlink_quietly(leftover)

    def _make_parent(self, key: str, target: str) -> str:
        parent = os.path.dirname(target)
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:
            self._check_root()
            raise Conflict(
                f"cannot write {key!r}: a parent path is already an object, and the "
                "filesystem cannot hold an object beside a prefix of the same name"
            ) from err
        except OSError as err:
            raise Unavailable(f"cannot write under {self.root}: {err.strerror}") from err
        return parent

    def _write_temp(self, directory: str, chunks) -> str:
        fd, path = tempfile.mkstemp(dir=directory, prefix=".", suffix=TEMP_SUFFIX)
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                if self._fsync:
                    os.fsync(handle.fileno())
        except BaseException:
            _unlink_quietly(path)
            raise
        return path

    def _sync_dir(self, directory: str) -> None:
        if not self._fsync:
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        target = self._path(key)
        try:
            os.unlink(target)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        except PermissionError as err:
            if os.path.isdir(target):
                return
            raise StorageError(f"cannot delete {key!r}: {err.strerror}") from err
        _unlink_quietly(target + SIDECAR_SUFFIX)
        self._prune_empty_dirs(os.path.dirname(target))

    def _prune_empty_dirs(self, directory: str) -> None:
        # S3 has no empty prefixes; dropping empty directories also lets a later write
        # put an object where a prefix used to be.
        while directory != self.root and directory.startswith(self.root):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    # -- reads ---------------------------------------------------------------

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        target = self._path(key)
        began = time.monotonic()
        while True:
            handle = _open_object(key, target)
            try:
                st = os.fstat(handle.fileno())
                verify = time.monotonic() - began > _SWAP_WINDOW
                blob = self._matching_sidecar(key, target, st, handle if verify else None)
                if blob is not None:
                    break
            except BaseException:
                handle.close()
                raise
            handle.close()
            if time.monotonic() - began > _CONSISTENT_READ_DEADLINE:
                raise StorageError(f"metadata of {key!r} does not describe its bytes (an interrupted "
                                   "write, or bytes changed by another tool)")
            time.sleep(0.001)
        blob = describe_stored(key, blob, size=st.st_size)  # a tree copied by another tool
        info = _info(key, st, blob)
        try:
            check_range(key, info.size, start, length)
            if start:
                handle.seek(start)
        except BaseException:
            handle.close()
            raise
        remaining = info.size - start
        return ObjectStream(info, blob, handle, start, remaining if length is None else min(length, remaining))

    def _matching_sidecar(self, key: str, target: str, st: os.stat_result,
                          verify_with: BinaryIO | None) -> dict[str, Any] | None:
        """The sidecar of exactly this version of the object; None while a write is mid-swap.

        A sidecar without our inode field (written by another tool, or a downloaded tree) is
        taken as it is. A copied tree has new inodes: once a mismatch outlasts the swap
        window, the bytes themselves decide (``verify_with``).
        """
        try:
            with open(target + SIDECAR_SUFFIX, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return foreign_metadata(key, st.st_size, _mtime(st))
        try:
            blob = orjson.loads(raw)
        except orjson.JSONDecodeError:
            blob = None
        if not isinstance(blob, dict):
            # Sidecars are renamed into place whole, so this is damage, not a write in progress.
            raise StorageError(f"the metadata sidecar of {key!r} is not a JSON object")
        inode = blob.pop(INODE_FIELD, None)
        if inode is None or inode == st.st_ino:
            return blob
        if verify_with is not None and _describes(blob, st, verify_with):
            return blob
        return None

    def stat(self, key: str) -> ObjectInfo:
        with self.open(key) as stream:
            return stream.info

    def metadata(self, key: str) -> dict[str, Any]:
        with self.open(key) as stream:
            return stream.metadata

    # -- listings ------------------------------------------------------------

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        directory, _, name_filter = prefix.rpartition("/")
        key_prefix = f"{directory}/" if directory else ""
        walk = self._walk(os.path.join(self.root, directory), key_prefix, name_filter, start_after)
        return walk if limit is None else itertools.islice(walk, limit)

    def _walk(self, directory: str, key_prefix: str, name_filter: str,
              start_after: str | None) -> Iterator[ObjectInfo]:
        # Depth-first over directories each sorted by key, with '/' ending the keys of
        # subdirectories: 'a-b' < 'a/' < 'a0', exactly S3's order. An explicit stack rather
        # than nested generators keeps the cost per object flat; memory is bounded by the
        # largest single directory, not by the number of objects.
        pending = [iter(self._level(directory, key_prefix, name_filter))]
        while pending:
            for key, entry, is_dir in pending[-1]:
                if is_dir:
                    if start_after is None or key > start_after or start_after.startswith(key):
                        pending.append(iter(self._level(entry.path, key, "")))
                        break
                    continue
                if start_after is not None:
                    if key <= start_after:
                        continue
                    start_after = None  # every later key is greater
                info = _listed(key, entry)
                if info is not None:
                    yield info
            else:
                pending.pop()

    def _level(self, directory: str, key_prefix: str, name_filter: str) -> list[tuple[str, os.DirEntry, bool]]:
        """One directory's entries as (key, entry, is_dir), in key order; keys of
        subdirectories end with '/'. Sidecars, temp files and the records directory are left out."""
        try:
            scanner = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:  # a prefix no stored key can match
                return []
            raise Unavailable(f"cannot read {directory}: {err.strerror}") from err
        rows: list[tuple[str, os.DirEntry, bool]] = []
        append = rows.append
        at_root = not key_prefix
        with scanner:
            for entry in scanner:
                name = entry.name
                if name.endswith(SIDECAR_SUFFIX) or (name_filter and not name.startswith(name_filter)):
                    continue
                if at_root and name == RESERVED_DIR:
                    continue
                if not name.isascii() and not _is_utf8(name):
                    continue  # undecodable bytes: not a key this project could have written
                if entry.is_dir(follow_symlinks=False):
                    append((f"{key_prefix}{name}/", entry, True))
                elif entry.is_file(follow_symlinks=False):
                    append((key_prefix + name, entry, False))
        # Code point order of str is the byte order of UTF-8, which is S3's.
        rows.sort(key=_first_item)
        return rows

    def browse(self, prefix: str = "", *, start_after: str | None = None
               ) -> Iterator[ObjectInfo | PrefixInfo]:
        validate_prefix(prefix)
        directory, _, name_filter = prefix.rpartition("/")
        key_prefix = f"{directory}/" if directory else ""
        return self._browse(os.path.join(self.root, directory), key_prefix, name_filter, start_after)

    def _browse(self, directory: str, key_prefix: str, name_filter: str,
                start_after: str | None) -> Iterator[ObjectInfo | PrefixInfo]:
        for key, entry, is_dir in self._level(directory, key_prefix, name_filter):
            if start_after is not None and key <= start_after:
                continue
            if is_dir:
                # S3 has no empty prefixes: show a directory only if it holds an object.
                if _first(self._walk(entry.path, key, "", None)):
                    yield PrefixInfo(key)
            else:
                info = _listed(key, entry)
                if info is not None:
                    yield info

    # -- internal records ----------------------------------------------------

    def put_record(self, name: str, data: bytes | BinaryIO) -> None:
        target = self._record_path(name)
        parent = os.path.dirname(target)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as err:
            self._check_root()
            raise Unavailable(f"cannot write record {name!r} under {self.root}: {err.strerror}") from err
        chunks = HashingReader(data).chunks()
        tmp = self._write_temp(parent, chunks)
        os.replace(tmp, target)
        self._sync_dir(parent)

    def open_record(self, name: str) -> BinaryIO:
        try:
            return open(self._record_path(name), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise NotFound(f"no record {name!r}") from err

    def list_records(self, prefix: str) -> Iterator[str]:
        base = os.path.join(self.root, RESERVED_DIR)
        directory, _, name_filter = prefix.rpartition("/")
        names = []
        for current, _subdirs, files in os.walk(os.path.join(base, directory)):
            rel = os.path.relpath(current, base).replace(os.sep, "/")
            rel = "" if rel == "." else rel + "/"
            names.extend(rel + f for f in files if not f.endswith(SIDECAR_SUFFIX))
        yield from sorted(n for n in names if n.startswith(prefix))

    def delete_record(self, name: str) -> None:
        _unlink_quietly(self._record_path(name))

    def delete_records(self, names: Iterable[str]) -> None:
        """Also drops directories left empty, so a deleted execution leaves no trace."""
        for name in names:
            path = self._record_path(name)
            _unlink_quietly(path)
            self._prune_empty_dirs(os.path.dirname(path))

    def check(self) -> None:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise Unavailable(f"storage root {self.root} is not a directory")

    def _check_root(self) -> None:
        """After a failed mkdir: blame the root when it cannot be a directory at all."""
        self.check()
        if not os.path.isdir(self.root):
            raise Unavailable(f"storage root {self.root} cannot be created")


def _open_object(key: str, target: str) -> BinaryIO:
    try:
        handle = open(target, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        raise NotFound(f"no object {key!r}") from err
    except PermissionError as err:
        raise StorageError(f"cannot read {key!r}: {err.strerror}") from err
    if stat_mode.S_ISDIR(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise NotFound(f"no object {key!r}")
    return handle


def _info(key: str, st: os.stat_result, blob: Mapping[str, Any]) -> ObjectInfo:
    checksum = blob.get("checksum") or ""
    etag = checksum.partition(":")[2] or None
    return ObjectInfo(key, st.st_size, _mtime(st), etag, blob.get("content_type"))


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)


def _describes(blob: Mapping[str, Any], st: os.stat_result, handle: BinaryIO) -> bool:
    """Whether the blob's length and checksum are those of the open file's bytes."""
    if blob.get("content_length") != st.st_size or not str(blob.get("checksum", "")).startswith("sha256:"):
        return False
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK_SIZE):
        digest.update(chunk)
    handle.seek(0)
    return blob["checksum"] == f"sha256:{digest.hexdigest()}"


def _first(iterator: Iterator[Any]) -> bool:
    return next(iterator, None) is not None


def _first_item(row: tuple) -> Any:
    return row[0]


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _listed(key: str, entry: os.DirEntry) -> ObjectInfo | None:
    """A listing row; None when the object was deleted since its directory was read."""
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc))


def _prefix_conflict(key: str) -> Conflict:
    return Conflict(f"cannot write {key!r}: objects already exist under {key + '/'!r}, and the "
                    "filesystem cannot hold an object beside a prefix of the same name")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
            raise
