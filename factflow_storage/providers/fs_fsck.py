"""``fsck`` for the filesystem provider: one streaming walk of the tree under a prefix.

Directories are walked one at a time without following links (memory is one directory's
entries). A directory's sidecars are checked and repaired under that directory's write
lock (``fs_write.key_lock``), so a write in progress is never mistaken for damage; temp
files are removed only when no process holds their lock and they are older than the
grace period.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mode
import time
from collections.abc import Iterator
from typing import Any

import orjson

from factflow_storage.errors import NotFound, StorageError
from factflow_storage.fsck import UNLISTED, Finding
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.metadata import COMPUTED_FIELDS, build_metadata
from factflow_storage.providers import fs_paths, fs_write
from factflow_storage.providers.fs_write import INODE_FIELD, PREVIOUS_FIELD, TEMP_SUFFIX


def run(root: str, reserved_dir: str, prefix: str, *, repair: bool, grace: float, fsync: bool) -> Iterator[Finding]:
    directory, _, name_filter = prefix.rpartition("/")
    segments = fs_paths.segments_of(directory)
    try:
        fds = fs_paths.open_chain(root, segments)
    except (NotFound, fs_paths.NotADirectory, fs_paths.Unsafe, FileNotFoundError):
        return
    fs_paths.close_all(fds[:-1])
    checker = _Checker(repair=repair, horizon=time.time() - grace, fsync=fsync)
    # (descriptor, key prefix, name filter, records directory?) per directory still to visit.
    pending: list[tuple[int, str, str, bool]] = [(fds[-1], f"{directory}/" if directory else "", name_filter, False)]
    while pending:
        fd, key_prefix, name_filter, records = pending.pop()
        try:
            subdirs = yield from checker.directory(fd, key_prefix, name_filter, records)
            for name in subdirs:
                in_records = records or (not key_prefix and name == reserved_dir)
                try:
                    child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError:
                    continue  # gone since it was listed, or a link
                pending.append((child, f"{key_prefix}{name}/", "", in_records))
        finally:
            os.close(fd)


# A writer creates its temp file, then locks it: one just created may not be locked yet,
# so whatever the grace period, a temp file this young is never taken for dead.
MIN_TEMP_AGE = 2.0


class _Checker:
    def __init__(self, *, repair: bool, horizon: float, fsync: bool):
        self.repair = repair
        self.horizon = min(horizon, time.time() - MIN_TEMP_AGE)
        self.fsync = fsync

    def directory(self, fd: int, key_prefix: str, name_filter: str, records: bool):
        """Check one directory; yields findings, returns the names of its subdirectories."""
        subdirs, objects, sidecars, temps, others = [], [], [], [], []
        with os.scandir(fd) as scanner:
            for entry in scanner:
                name = entry.name
                if name_filter and not name.startswith(name_filter) and not name.endswith(TEMP_SUFFIX):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(name)
                elif name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    temps.append(name)
                elif records:
                    continue
                elif not entry.is_file(follow_symlinks=False):
                    others.append(name)
                elif name.endswith(SIDECAR_SUFFIX):
                    sidecars.append(name)
                else:
                    objects.append(name)
        for name in sorted(others):
            yield Finding(UNLISTED, key_prefix + name, "a link, FIFO or other entry that is not a regular file: "
                          "no listing shows it (execution delete removes it, without following links)")
        if not (temps or objects or sidecars):
            return sorted(subdirs, reverse=True)
        # Writers hold this lock while a sidecar temp file exists and while they rename.
        with fs_write.key_lock(fd):
            for name in sorted(temps):
                yield from self._temp(fd, key_prefix + name, name)
            if objects or sidecars:
                for name in sorted(objects):
                    yield from self._object(fd, key_prefix + name, name)
                present = set(objects)
                for name in sorted(sidecars):
                    if name[:-len(SIDECAR_SUFFIX)] not in present:
                        yield from self._orphan_sidecar(fd, key_prefix + name, name)
        return sorted(subdirs, reverse=True)

    def _temp(self, fd: int, path: str, name: str) -> Iterator[Finding]:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if st.st_mtime > self.horizon or not fs_write.is_dead_temp(fd, name):
            return  # a live write's, or too young to tell
        repaired = False
        if self.repair:
            fs_write.unlink_quietly(fd, name)
            repaired = True
        yield Finding("orphan_temp", path, f"temp file of a write that never finished ({st.st_size} bytes)",
                      repaired, st.st_size if repaired else 0)

    def _orphan_sidecar(self, fd: int, path: str, name: str) -> Iterator[Finding]:
        if self.repair:
            fs_write.unlink_quietly(fd, name)
        yield Finding("orphan_sidecar", path, "a sidecar whose object is gone (an interrupted delete)", self.repair)

    def _object(self, fd: int, key: str, name: str) -> Iterator[Finding]:
        try:
            object_fd = fs_paths.open_regular(fd, name, f"object {key!r}")
        except StorageError:
            return
        with os.fdopen(object_fd, "rb") as handle:
            st = os.fstat(object_fd)
            try:
                record = fs_write.read_sidecar(key, fd, name)
            except StorageError as err:
                yield from self._rebuild(fd, key, name, handle, st, None, "damaged_metadata", str(err))
                return
            if record is None:
                yield from self._rebuild(fd, key, name, handle, st, None, "missing_metadata",
                                         "an object without a sidecar")
                return
            inode = record.get(INODE_FIELD)
            if inode is None or inode == st.st_ino:
                return
            previous = record.get(PREVIOUS_FIELD)
            if isinstance(previous, dict) and previous.get(INODE_FIELD) == st.st_ino:
                if self.repair:  # roll back to the version the object still is
                    self._replace_sidecar(fd, name, previous)
                yield Finding("interrupted_write", key, "a write died between its two renames; "
                              "the key reads at its previous version", self.repair)
                return
            if fs_write.pick_version(record, st, handle) is not None:
                return  # a copied tree: new inodes, bytes as described
            yield from self._rebuild(fd, key, name, handle, st, record, "metadata_mismatch",
                                     "the sidecar describes other bytes")

    def _rebuild(self, fd: int, key: str, name: str, handle, st: os.stat_result, record: dict[str, Any] | None,
                 kind: str, detail: str) -> Iterator[Finding]:
        """Roll forward to the bytes on disk: a blob computed from them, keeping the writer's fields."""
        repaired = False
        if self.repair:
            kept = {k: v for k, v in (record or {}).items()
                    if k not in COMPUTED_FIELDS and k not in (INODE_FIELD, PREVIOUS_FIELD)}
            digest = hashlib.sha256()
            handle.seek(0)
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
            blob = build_metadata(key, kept, content_type=kept.pop("content_type", None), size=st.st_size,
                                  sha256_hex=digest.hexdigest())
            try:
                self._replace_sidecar(fd, name, {**blob, INODE_FIELD: st.st_ino})
                repaired = True
            except OSError as err:
                detail += f" (not repaired: {err.strerror})"
        yield Finding(kind, key, detail, repaired)

    def _replace_sidecar(self, fd: int, name: str, record: dict[str, Any]) -> None:
        target = name + SIDECAR_SUFFIX
        try:
            mode = os.stat(target, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            mode = 0
        if stat_mode.S_ISDIR(mode):
            raise IsADirectoryError(21, "the sidecar is a directory")
        tmp = fs_write.write_small_temp(fd, orjson.dumps(record), fsync=self.fsync)
        os.replace(tmp, target, src_dir_fd=fd, dst_dir_fd=fd)
