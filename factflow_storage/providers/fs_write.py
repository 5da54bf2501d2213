"""The filesystem write path: temp files, per-key locks, the two-version sidecar, a fault hook.

A sidecar names the inode of the object version it describes (``_factflow_inode``) and
carries the blob of the version it replaces (``_factflow_previous``, with that version's
inode). A write publishes with two renames, sidecar first, under the key's lock:

1. bytes stream into a temp file (no lock held, so large uploads do not queue);
2. the key's lock (its directory's) is taken; the current object's inode and blob are read;
3. a temp sidecar holding {new blob, new inode, previous blob, previous inode} is renamed
   over the sidecar;
4. the data temp file is renamed over the object; the lock is released.

Whatever step a SIGKILL interrupts, the object on disk is the old or the new inode, and
the sidecar on disk describes that inode (as its own or as its previous): a reader always
finds the blob of exactly the bytes it opened. The lock makes step 2's "current object"
the one step 4 replaces, so concurrent writers of one key cannot pair one writer's bytes
with another's sidecar. Temp files are held under ``flock`` while written, so ``fsck``
can tell a live write's temp file from a dead one's.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

import orjson

from factflow_storage.errors import NotFound, StorageError
from factflow_storage.faults import FAULT_ENV, fault  # noqa: F401  (FAULT_ENV: for tests)
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.metadata import CHUNK_SIZE, MAX_METADATA_BYTES

INODE_FIELD = "_factflow_inode"
PREVIOUS_FIELD = "_factflow_previous"
TEMP_SUFFIX = ".tmp" + SIDECAR_SUFFIX
# A sidecar holds the new blob and the previous one.
SIDECAR_LIMIT = 2 * MAX_METADATA_BYTES + 4096
# The boundaries between the write path's system calls, in order; tests kill a writer at
# each one (FACTFLOW_FAULT=<name>) and check that the key still reads.
FAULT_POINTS = ("data-temp-created", "data-written", "data-synced", "locked", "sidecar-temp-created",
                "sidecar-written", "sidecar-renamed", "data-renamed", "dir-synced")


def temp_name() -> str:
    return f".{os.urandom(8).hex()}{TEMP_SUFFIX}"


def write_temp(parent: int, chunks: Iterable[bytes], *, fsync: bool) -> tuple[str, int]:
    """A new temp file in ``parent`` holding ``chunks``: its name and its still open, locked
    descriptor. The caller closes it once the file is published or removed: until then
    ``fsck`` sees the lock and leaves the file alone."""
    name, fd = _create_temp(parent)
    with _removed_on_error(parent, name, fd):
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, 0o644)
        fault("data-temp-created")
        for chunk in chunks:
            _write_all(fd, chunk)
        fault("data-written")
        if fsync:
            os.fsync(fd)
        fault("data-synced")
    return name, fd


def write_small_temp(parent: int, data: bytes, *, fsync: bool) -> str:
    name, fd = _create_temp(parent)
    with _removed_on_error(parent, name, fd):
        os.fchmod(fd, 0o644)
        fault("sidecar-temp-created")
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
        fault("sidecar-written")
    os.close(fd)
    return name


def replace_small(parent: int, name: str, data: bytes, *, fsync: bool) -> None:
    """Put ``data`` at ``name`` whole, through a temp file renamed over it (removed on failure)."""
    temp = write_small_temp(parent, data, fsync=fsync)
    try:
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        unlink_quietly(parent, temp)
        raise


def _create_temp(parent: int) -> tuple[str, int]:
    name = temp_name()
    return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=parent)


@contextmanager
def _removed_on_error(parent: int, name: str, fd: int) -> Iterator[None]:
    """A temp file that is not finished is not left behind (a kill leaves it for fsck)."""
    try:
        yield
    except BaseException:
        os.close(fd)
        unlink_quietly(parent, name)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def is_dead_temp(parent: int, name: str) -> bool:
    """True when no live process holds the temp file (its writer finished or was killed)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@contextmanager
def key_lock(parent: int) -> Iterator[None]:
    """Serialise the publishing of writes and deletes in one directory, hence of one key.

    The lock is ``flock`` on the directory itself: no lock files to list or clean up, and
    the kernel drops it when a holder dies. Only the short publish step holds it (bytes
    are streamed to the temp file before), so writers of other keys in the directory
    wait for two renames and two fsyncs at most."""
    fcntl.flock(parent, fcntl.LOCK_EX)
    try:
        fault("locked")
        yield
    finally:
        fcntl.flock(parent, fcntl.LOCK_UN)


def unlink_quietly(parent: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass


def sync_dir(fd: int) -> None:
    os.fsync(fd)


class DirSyncs:
    """The directory fsyncs a batch of writes owes, each directory synced once by ``sync``.

    A write in a batch fsyncs its bytes and sidecar before renaming them, as any write
    does, and leaves only the directory's fsync (what makes the renames survive a power
    failure) to the batch's end: a crash before then loses such a write whole, never
    half. Past ``MAX_PENDING`` directories the owed fsyncs are paid at once, so a batch
    never holds many descriptors. Thread-safe.
    """

    MAX_PENDING = 64

    def __init__(self) -> None:
        self._fds: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def owe(self, parent: int) -> None:
        st = os.fstat(parent)
        with self._lock:
            if (st.st_dev, st.st_ino) not in self._fds:
                self._fds[(st.st_dev, st.st_ino)] = os.dup(parent)
            full = len(self._fds) >= self.MAX_PENDING
        if full:
            self.sync()

    def sync(self) -> None:
        """fsync every directory owed, once; raises the first OSError after trying all."""
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        failure: OSError | None = None
        for fd in fds:
            try:
                os.fsync(fd)
            except OSError as err:
                failure = failure or err
            finally:
                os.close(fd)
        if failure is not None:
            raise failure


def read_sidecar(key: str, parent: int, name: str) -> dict[str, Any] | None:
    """The sidecar record of ``name`` (None when there is none), read up to its bound."""
    from factflow_storage.providers import fs_paths

    what = f"metadata sidecar of {key!r}"
    try:
        fd = fs_paths.open_regular(parent, name + SIDECAR_SUFFIX, what, directory_is_missing=False)
    except NotFound:
        return None
    try:
        raw = fs_paths.read_bounded(fd, SIDECAR_LIMIT, what)
    finally:
        os.close(fd)
    return parse_sidecar(key, raw)


def parse_sidecar(key: str, raw: bytes) -> dict[str, Any]:
    """A sidecar file's bytes as its record."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        # Sidecars are renamed into place whole, so this is damage, not a write in progress.
        raise StorageError(f"the metadata sidecar of {key!r} is not a JSON object")
    return record


def pick_version(record: dict[str, Any], st: os.stat_result, verify_with: BinaryIO | None) -> dict[str, Any] | None:
    """The blob in ``record`` that describes the file ``st`` (new or previous version);
    None when neither does (yet)."""
    blob = dict(record)
    previous = blob.pop(PREVIOUS_FIELD, None)
    inode = blob.pop(INODE_FIELD, None)
    if inode is None or inode == st.st_ino:
        return blob
    if isinstance(previous, dict):
        previous = dict(previous)
        if previous.pop(INODE_FIELD, None) == st.st_ino:
            return previous
    if verify_with is not None:
        for candidate in (blob, previous):
            if isinstance(candidate, dict) and describes(candidate, st, verify_with):
                return candidate
    return None


def describes(blob: Mapping[str, Any], st: os.stat_result, handle: BinaryIO) -> bool:
    """Whether the blob's length and checksum are those of the open file's bytes."""
    if blob.get("content_length") != st.st_size or not str(blob.get("checksum", "")).startswith("sha256:"):
        return False
    handle.seek(0)
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK_SIZE):
        digest.update(chunk)
    handle.seek(0)
    return blob["checksum"] == f"sha256:{digest.hexdigest()}"
