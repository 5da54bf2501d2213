"""The output tree of a download: ``DIR/<key>`` and ``DIR/<key>.meta.json``.

Every file is written under a temp name in a staging directory inside DIR, checked, then
renamed into place, so an interrupted download never leaves a partial file under a final
name. Paths are built only from validated keys and walked one directory at a time with
``lstat``: a symlink inside DIR (planted or pre-existing) is refused, never followed, so
nothing is written outside DIR. The staging directory is removed when the download ends;
one left by a killed download is cleared by the next, which holds a lock on it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import os
import shutil
import stat
import threading

from factflow_storage.errors import Conflict, StorageError
from factflow_storage.keys import SIDECAR_SUFFIX, validate_key

STAGING_DIR = ".factflow-download"
LOCK_FILE = "lock"
PART_SUFFIX = ".part"
CHUNK = 1024 * 1024


class UnsafePath(StorageError, ValueError):
    error_code = "unsafe_path"
    status = 400


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Staged:
    """A temp file in the staging directory, hashed as it is written.

    Named from a counter rather than by ``mkstemp``: the staging directory is this
    download's alone (it holds the lock, and cleared leftovers on entry), so a counter is
    unique, and the file is created with its final mode at once. Writes go straight to
    the descriptor: most files are one write, which a buffered file would only copy."""

    _FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC

    def __init__(self, directory: str, mode: int, number: int):
        self.path = os.path.join(directory, f"{number}{PART_SUFFIX}")
        self._fd = os.open(self.path, self._FLAGS, mode)
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes | memoryview) -> None:
        self.hash(chunk)
        self.write_hashed(chunk)

    def hash(self, chunk: bytes | memoryview) -> None:
        """The first half of ``write``, for a caller that hashes bytes as they arrive (in
        the cache) and has another thread write them."""
        self._digest.update(chunk)
        self.size += len(chunk)

    def write_hashed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    @property
    def sha256_hex(self) -> str:
        return self._digest.hexdigest()

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class OutputTree:
    """Where a download writes. Use as a context manager around the whole download."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.staging = os.path.join(self.root, STAGING_DIR)
        self._known_dirs: set[str] = set()
        self._mkdir_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._numbers = itertools.count()  # next() on a count is atomic: threads share it
        # Files get the mode cp, rclone and aws give them: 0666 less the umask.
        umask = os.umask(0o022)
        os.umask(umask)
        self.file_mode = 0o666 & ~umask

    def __enter__(self) -> OutputTree:
        try:
            os.makedirs(self.root, exist_ok=True)
            os.makedirs(self.staging, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot create {self.root}: {err.strerror}") from err
        if os.path.islink(self.staging) or not os.path.isdir(self.staging):
            raise UnsafePath(f"{self.staging} is not a directory this download can use")
        self._lock_fd = os.open(os.path.join(self.staging, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise Conflict(f"another download is writing to {self.root}") from None
        for name in os.listdir(self.staging):
            if name.endswith(PART_SUFFIX):
                os.unlink(os.path.join(self.staging, name))
        return self

    def __exit__(self, *exc: object) -> None:
        leftovers = [name for name in os.listdir(self.staging)
                     if name != LOCK_FILE and not name.endswith(PART_SUFFIX)]
        if not leftovers:
            shutil.rmtree(self.staging, ignore_errors=True)
        else:
            for name in os.listdir(self.staging):
                if name.endswith(PART_SUFFIX):
                    os.unlink(os.path.join(self.staging, name))
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- paths ---------------------------------------------------------------

    def target(self, key: str) -> str:
        return os.path.join(self.root, validate_key(key))

    def sidecar_target(self, key: str) -> str:
        return self.target(key) + SIDECAR_SUFFIX

    def local_size(self, path: str) -> int | None:
        """The size of a regular file at ``path``; None when absent or anything else."""
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def read_small(self, path: str, limit: int = 64 * 1024 * 1024) -> bytes | None:
        size = self.local_size(path)
        if size is None or size > limit:
            return None
        with open(path, "rb") as handle:
            return handle.read()

    def _ensure_parent(self, path: str, key: str) -> None:
        """Create the directories between DIR and ``path``, refusing any symlink or file."""
        parent = os.path.dirname(path)
        if parent in self._known_dirs:
            return
        relative = os.path.relpath(parent, self.root)
        current = self.root
        for part in ([] if relative == "." else relative.split(os.sep)):
            current = os.path.join(current, part)
            if current in self._known_dirs:
                continue
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                try:
                    os.mkdir(current)
                except FileExistsError:
                    pass
                st = os.lstat(current)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"refusing to write {key!r}: {current} is a symbolic link")
            if not stat.S_ISDIR(st.st_mode):
                raise Conflict(f"cannot write {key!r}: {current} is a file, not a directory")
            with self._mkdir_lock:
                self._known_dirs.add(current)

    # -- writing -------------------------------------------------------------

    def stage(self) -> Staged:
        # The mode is the file's at creation: file_mode already has the umask's bits off.
        return Staged(self.staging, self.file_mode, next(self._numbers))

    def commit(self, staged: Staged, path: str, key: str) -> None:
        """Move a checked temp file to its final name (replacing what was there)."""
        staged.close()
        try:
            self._ensure_parent(path, key)
            os.replace(staged.path, path)
        except IsADirectoryError:
            staged.discard()
            raise Conflict(f"cannot write {key!r}: {path} is a directory") from None
        except OSError as err:
            staged.discard()
            raise StorageError(f"cannot write {path}: {err.strerror}") from err
        except BaseException:
            staged.discard()
            raise

    def write_bytes(self, path: str, key: str, data: bytes) -> None:
        staged = self.stage()
        try:
            staged.write(data)
        except BaseException:
            staged.discard()
            raise
        self.commit(staged, path, key)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.EISDIR):
                raise
