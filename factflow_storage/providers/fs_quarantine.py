"""Objects whose bytes no longer match their checksum, set aside or rolled forward.

``fsck --verify`` finds bytes another tool changed in place (same inode, size and times).
Such bytes are never blessed silently: ``--repair`` marks the object's sidecar
``quarantined`` (reads refuse it, its metadata still answers), and only
``--accept-changed`` makes the new sha256 its ``checksum``, keeping the old one as
``stale_checksum``. A write of new bytes replaces the sidecar and so ends a quarantine.

Both changes rewrite the sidecar as a write does (temp file, fsync, rename) under the
key's lock, and only when the object is still the version that was hashed: the same
inode, and a sidecar still stating the checksum the bytes failed. A write that replaced
the object meanwhile is left alone.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import orjson

from factflow_storage.errors import NotFound, Quarantined
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.metadata import QUARANTINED, STALE_CHECKSUM, now_rfc3339
from factflow_storage.providers import fs_paths, fs_write
from factflow_storage.providers.fs_sidecar_cache import SidecarCache
from factflow_storage.providers.fs_write import INODE_FIELD


class FilesystemStore(Protocol):
    """What a settle needs of the filesystem provider (which imports this module)."""

    root: str
    sidecars: SidecarCache
    _fsync: bool

    def _split(self, key: str) -> tuple[list[str], str]: ...

REASON = "its bytes no longer match its checksum (found by fsck --verify)"


def refusal(key: str) -> Quarantined:
    return Quarantined(f"object {key!r} is quarantined: {REASON}; inspect it, then "
                       f"'factflow storage fsck --verify --accept-changed {key}' to keep the new bytes")


def settle(provider: FilesystemStore, key: str, *, inode: int, stated: str, found: str, accept: bool) -> bool:
    """Quarantine the object at ``key`` (or with ``accept``, roll it forward to ``found``;
    release it when ``found`` is ``stated`` again). False when it is no longer the version
    whose bytes hashed to ``found``."""
    parents, name = provider._split(key)
    try:
        fds = fs_paths.open_chain(provider.root, parents)  # lockable descriptors, unlike a read's
    except (NotFound, fs_paths.NotADirectory, FileNotFoundError):
        return False
    parent = fds[-1]
    try:
        with fs_write.key_lock(parent):
            try:
                fd = fs_paths.open_regular(parent, name, f"object {key!r}")
            except NotFound:
                return False
            try:
                current = os.fstat(fd).st_ino
            finally:
                os.close(fd)
            record = fs_write.read_sidecar(key, parent, name)
            if current != inode or record is None or record.get(INODE_FIELD) not in (None, inode) \
                    or record.get("checksum") != stated:
                return False
            if found == stated:  # restored: the quarantine has nothing left to guard
                changed = _released(record)
            else:
                changed = _rolled_forward(record, stated, found) if accept else _quarantined(record, found)
            if changed is None:
                return True  # already so
            fs_write.replace_small(parent, name + SIDECAR_SUFFIX, orjson.dumps(changed), fsync=provider._fsync)
            provider.sidecars.forget(key)
            if provider._fsync:
                fs_write.sync_dir(parent)
            return True
    finally:
        fs_paths.close_all(fds)


def _quarantined(record: dict[str, Any], found: str) -> dict[str, Any] | None:
    mark = record.get(QUARANTINED)
    if isinstance(mark, dict) and mark.get("found_checksum") == found:
        return None
    return {**record, QUARANTINED: {"reason": REASON, "expected_checksum": record["checksum"],
                                    "found_checksum": found, "since": now_rfc3339()}}


def _released(record: dict[str, Any]) -> dict[str, Any] | None:
    if QUARANTINED not in record:
        return None
    return {name: value for name, value in record.items() if name != QUARANTINED}


def _rolled_forward(record: dict[str, Any], stated: str, found: str) -> dict[str, Any]:
    changed = {**record, "checksum": found, STALE_CHECKSUM: stated}
    changed.pop(QUARANTINED, None)
    return changed
