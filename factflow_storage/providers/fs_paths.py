"""Path operations confined to the filesystem root.

Every path below the root is reached one component at a time, each opened relative to its
parent's file descriptor with ``O_NOFOLLOW``: a symbolic link anywhere under the root
(``executions/x -> /etc``) ends the walk instead of leading out of it, and no check can be
raced by swapping a directory for a link between a check and a use. Objects and sidecars
are opened with ``O_NONBLOCK`` and kept only when ``fstat`` says they are regular files,
so a FIFO, a device or a socket planted in the tree is refused instead of hanging or
streaming forever. The root itself may be a link (it is the operator's choice).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mode
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from factflow_storage.errors import NotFound, StorageError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Errors that mean "this component is a link, a file where a directory should be, or gone".
_NOT_A_DIR = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class Unsafe(StorageError):
    """A path under the root that is a link or a special file: refused, never followed."""

    error_code = "unsafe_path"
    status = 403


def open_root(root: str) -> int:
    return os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)


@contextmanager
def directory(root: str, segments: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of ``root/segments...``; NotFound when a component is missing,
    Unsafe when one is a link or not a directory. ``create`` makes missing ones (0o755)."""
    fds = open_chain(root, segments, create=create)
    try:
        yield fds[-1]
    finally:
        close_all(fds)


def open_chain(root: str, segments: list[str], *, create: bool = False) -> list[int]:
    """Descriptors of the root and of each directory below it, outermost first."""
    fds = [open_root(root)]
    try:
        for segment in segments:
            fds.append(_open_child_dir(fds[-1], segment, create))
    except BaseException:
        close_all(fds)
        raise
    return fds


def _open_child_dir(parent: int, segment: str, create: bool) -> int:
    try:
        return os.open(segment, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise NotFound(f"no directory {segment!r}") from None
    except OSError as err:
        raise _refusal(parent, segment, err) from None
    try:
        os.mkdir(segment, 0o755, dir_fd=parent)
    except FileExistsError:
        pass  # a concurrent writer made it, or it is a file / link (refused just below)
    try:
        return os.open(segment, _DIR_FLAGS, dir_fd=parent)
    except OSError as err:
        raise _refusal(parent, segment, err) from None


def _refusal(parent: int, segment: str, err: OSError) -> StorageError:
    if err.errno in (errno.ELOOP, errno.ENOTDIR):
        kind = kind_of(parent, segment)
        if kind == "symlink":
            return Unsafe(f"{segment!r} is a symbolic link; links under the storage root are not followed")
        if kind is None:
            return NotFound(f"no directory {segment!r}")
        return NotADirectory(f"{segment!r} is a {kind}, not a directory")
    if err.errno == errno.ENOENT:
        return NotFound(f"no directory {segment!r}")
    return StorageError(f"cannot open {segment!r}: {err.strerror}")


class NotADirectory(StorageError):
    """A path component is a file where the key needs a directory."""


def kind_of(parent: int, name: str) -> str | None:
    """``file``, ``directory``, ``symlink`` or ``special file``, without following links."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return describe_mode(st.st_mode)


def describe_mode(mode: int) -> str:
    if stat_mode.S_ISREG(mode):
        return "file"
    if stat_mode.S_ISDIR(mode):
        return "directory"
    if stat_mode.S_ISLNK(mode):
        return "symlink"
    return "special file"


def open_regular(parent: int, name: str, what: str, *, directory_is_missing: bool = True) -> int:
    """A read descriptor of the regular file ``name``; NotFound when absent or a directory,
    Unsafe when a link or a special file (never opened in a way that could block)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        raise NotFound(f"no {what}") from err
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Unsafe(f"the {what} is a symbolic link; links under the storage root are not followed") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise StorageError(f"cannot read the {what}: {err.strerror}") from None
        raise
    mode = os.fstat(fd).st_mode
    if stat_mode.S_ISREG(mode):
        os.set_blocking(fd, True)
        return fd
    os.close(fd)
    if stat_mode.S_ISDIR(mode) and directory_is_missing:
        raise NotFound(f"no {what}")
    raise Unsafe(f"the {what} is a {describe_mode(mode)}, not a regular file")


def read_bounded(fd: int, limit: int, what: str) -> bytes:
    """All of a file up to ``limit`` bytes; a longer one is refused, never read whole."""
    chunks: list[bytes] = []
    have = 0
    while True:
        chunk = os.read(fd, min(1024 * 1024, limit + 1 - have))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        have += len(chunk)
        if have > limit:
            raise StorageError(f"the {what} is larger than {limit} bytes, the metadata limit")


def close_all(fds: list[int]) -> None:
    for fd in reversed(fds):
        os.close(fd)


def remove_empty_dirs(segments: list[str], fds: list[int]) -> None:
    """Removes the directories ``segments`` names, deepest first, while they are empty.

    ``fds`` is ``open_chain``'s answer for ``segments``: ``fds[i]`` holds ``segments[i]``.
    """
    for depth in range(len(segments), 0, -1):
        try:
            os.rmdir(segments[depth - 1], dir_fd=fds[depth - 1])
        except OSError:
            break


def is_utf8(name: str) -> bool:
    """False for a name the OS decoded with surrogate escapes: no key can name it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def segments_of(relative: str) -> list[str]:
    return [segment for segment in relative.split("/") if segment]


# Linux's openat2 resolves a whole relative path in one call, refusing any link on the way
# (RESOLVE_NO_SYMLINKS) and any escape from the start directory (RESOLVE_BENEATH): the
# read path's fast lane. Anything it refuses is walked again component by component for a
# precise error, and where it is missing (other kernels) the walk is all there is.
_OPENAT2 = 437
_RESOLVE = 0x04 | 0x08
_openat2_state: list[Any] = []


def _openat2() -> Any:
    if not _openat2_state:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)

            class OpenHow(ctypes.Structure):
                _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

            _openat2_state.append((ctypes, libc, OpenHow) if sys.platform == "linux" else None)
        except (OSError, AttributeError):
            _openat2_state.append(None)
    return _openat2_state[0]


def open_parent_for_reading(root: str, segments: list[str]) -> list[int]:
    """Like ``open_chain`` (the root's and the directory's descriptors, for reading only),
    in one system call where the kernel has openat2."""
    api = _openat2() if segments else None
    if api is not None:
        ctypes, libc, how_type = api
        root_fd = open_root(root)
        how = how_type(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, _RESOLVE)
        fd = libc.syscall(_OPENAT2, root_fd, "/".join(segments).encode("utf-8", "surrogateescape"),
                          ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return [root_fd, fd]
        os.close(root_fd)
        if ctypes.get_errno() == errno.ENOSYS:
            _openat2_state[0] = None
    return open_chain(root, segments)


def remove_entry(parent: int, name: str) -> int:
    """Remove ``name`` in directory ``parent`` with all it holds, without following a
    link; the number of non-directory entries removed. What vanished meanwhile, or a
    directory a concurrent writer filled again, is left as it is."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if not stat_mode.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            return 0
        return 1
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return 0  # replaced by a link or gone since the stat
    removed = 0
    try:
        with os.scandir(fd) as entries:
            names = [entry.name for entry in entries]
        for child in names:
            removed += remove_entry(fd, child)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent)
    except OSError:
        pass
    return removed
