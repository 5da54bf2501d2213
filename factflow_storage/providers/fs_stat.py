"""``stat`` and ``fstat`` that keep the GIL, for the listing's two calls per object.

CPython lets go of the GIL around every ``stat``. On a local filesystem a stat of a cached
inode takes a microsecond or two; letting go is what costs. When the server's workers are
busy, the thread must then wait its turn to take the GIL back (the convoy effect), and a
list page of 100 objects with their metadata waits 200 times. Under 64 clients on two
CPUs (``bench/serve_bench.py``), most of the server's time went to those hand-offs.

``StatCalls.hold_gil`` switches the calls to the C library's ``statx`` through
``ctypes.PyDLL``, which keeps the GIL; the result is the ``os.stat_result`` that
``os.stat`` would give. Each call costs two or three microseconds more than ``os.stat``,
so only the server switches, once its threads are what costs. It switches only where the
storage root is on a local filesystem: on a network filesystem a stat can wait for the
network, and must not hold every other thread meanwhile. Elsewhere, and where the C
library has no ``statx``, they are ``os.stat`` and ``os.fstat``. A call that fails for any
reason other than a missing file is made again through ``os``, so callers see the
exceptions ``os`` raises.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_AT_SYMLINK_NOFOLLOW = 0x100
_AT_EMPTY_PATH = 0x1000
_STATX_BASIC_STATS = 0x7FF
# struct statx (linux/stat.h), the same on every architecture: mask, blksize, attributes,
# nlink, uid, gid, mode, ino, size, blocks, attributes_mask, then atime, btime, ctime and
# mtime as (seconds, nanoseconds), then rdev and dev as (major, minor).
_STATX = struct.Struct("=IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIII")
# Only what a signature needs: mask, mode, ino, size, ctime, mtime, dev.
_SIGNATURE = struct.Struct("=I24xH2xQQ48xqI4x" + "qI4x8x" + "II")
_BUFFER = 256  # what the kernel may fill: the struct is padded to 256 bytes

# Filesystems whose metadata lives on this machine: a stat never waits for a network.
LOCAL_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "overlay", "zfs",
                         "f2fs", "bcachefs", "jfs", "reiserfs"})


FileSignature = tuple[int, int, int, int, int]


def file_signature(st: os.stat_result) -> FileSignature:
    """What identifies one version of a file: changed in place, renamed over or recreated, it differs."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _os_at(name: str, dir_fd: int) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _os_signature(name: str, dir_fd: int) -> tuple[int, FileSignature]:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    return st.st_mode, file_signature(st)


class StatCalls:
    """Shared by a provider and its caches, ``os.stat`` and ``os.fstat`` until ``hold_gil``:
    ``at(name, dir_fd)`` (not following a final link), ``of(fd)``, and
    ``signature(name, dir_fd)``, the mode and signature alone, which is what a cached
    listing row needs and costs less to build than a ``stat_result``."""

    def __init__(self) -> None:
        self.at: Callable[[str, int], os.stat_result] = _os_at
        self.of: Callable[[int], os.stat_result] = os.fstat
        self.signature: Callable[[str, int], tuple[int, FileSignature]] = _os_signature
        self.holds_gil = False

    def hold_gil(self, root: str, mountinfo: str | None = None) -> bool:
        """Switch to calls that keep the GIL if ``root`` is on a local filesystem and the
        C library has ``statx``; whether it switched."""
        kind = filesystem_type(root, mountinfo)
        if kind not in LOCAL_TYPES:
            log.debug("storage root %s is on %s: stat calls let go of the GIL", root, kind or "an unknown filesystem")
            return False
        held = _held_calls()
        if held is None:
            return False
        at, of, signature = held
        try:
            # statx refused (a sandbox's system call filter) would cost a second call each time.
            if at("/", -100) != os.stat("/"):  # -100: AT_FDCWD
                return False
        except OSError:
            return False
        self.at, self.of, self.signature = held
        self.holds_gil = True
        return True


def _result(fields: tuple[int, ...]) -> os.stat_result | None:
    (mask, blksize, _attributes, nlink, uid, gid, mode, ino, size, blocks, _attributes_mask,
     atime_s, atime_ns, _btime_s, _btime_ns, ctime_s, ctime_ns, mtime_s, mtime_ns,
     rdev_major, rdev_minor, dev_major, dev_minor) = fields
    if mask & _STATX_BASIC_STATS != _STATX_BASIC_STATS:
        return None  # a field the filesystem did not fill: let os.stat say what it says
    # The fields and float times exactly as CPython's own stat fills them.
    return os.stat_result((
        mode, ino, os.makedev(dev_major, dev_minor), nlink, uid, gid, size,
        atime_s, mtime_s, ctime_s,
        atime_s + atime_ns * 1e-9, mtime_s + mtime_ns * 1e-9, ctime_s + ctime_ns * 1e-9,
        atime_s * 1_000_000_000 + atime_ns, mtime_s * 1_000_000_000 + mtime_ns,
        ctime_s * 1_000_000_000 + ctime_ns,
        blksize, blocks, os.makedev(rdev_major, rdev_minor)))


def _held_calls() -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]] | None:
    if os.stat_result.n_fields != 19:  # not Linux's layout
        return None
    try:
        import ctypes  # here: only a server pays for its import

        statx = ctypes.PyDLL(None, use_errno=True).statx
    except (ImportError, AttributeError, OSError):  # no ctypes, or a C library without statx
        return None
    # No argtypes: ctypes' own conversion of int, bytes and a buffer is the cheaper path.
    statx.restype = ctypes.c_int
    get_errno = ctypes.get_errno
    unpack = _STATX.unpack_from
    sign = _SIGNATURE.unpack_from
    makedev = os.makedev
    # One buffer per thread: the GIL may pass to another thread between the call and the unpack.
    buffers = threading.local()

    def buffer():  # -> a ctypes char array
        try:
            return buffers.raw
        except AttributeError:
            buffers.raw = ctypes.create_string_buffer(_BUFFER)
            return buffers.raw

    def filled(name: str, dir_fd: int):  # -> the filled buffer, or None: ask os instead
        path = os.fsencode(name)
        if b"\0" in path:  # os.stat raises its ValueError
            return None
        raw = buffer()
        if statx(dir_fd, path, _AT_SYMLINK_NOFOLLOW, _STATX_BASIC_STATS, raw) == 0:
            return raw
        if get_errno() == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        return None

    def at(name: str, dir_fd: int) -> os.stat_result:
        raw = filled(name, dir_fd)
        result = None if raw is None else _result(unpack(raw))
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False) if result is None else result

    def of(fd: int) -> os.stat_result:
        raw = buffer()
        if statx(fd, b"", _AT_EMPTY_PATH | _AT_SYMLINK_NOFOLLOW, _STATX_BASIC_STATS, raw) == 0:
            result = _result(unpack(raw))
            if result is not None:
                return result
        return os.fstat(fd)

    def signature(name: str, dir_fd: int) -> tuple[int, FileSignature]:
        raw = filled(name, dir_fd)
        if raw is not None:
            mask, mode, ino, size, ctime_s, ctime_ns, mtime_s, mtime_ns, dev_major, dev_minor = sign(raw)
            if mask & _STATX_BASIC_STATS == _STATX_BASIC_STATS:
                return mode, (makedev(dev_major, dev_minor), ino, size,
                              mtime_s * 1_000_000_000 + mtime_ns, ctime_s * 1_000_000_000 + ctime_ns)
        return _os_signature(name, dir_fd)

    return at, of, signature


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem ``path`` is on, from the mount table (None if unknown)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
                mountinfo = table.read()
        except OSError:
            return None
    path = os.path.realpath(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        mount_point = _unescape(parts[4])
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        # Later lines are later mounts: one on the same point hides the earlier one.
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, rest.split()[0]
    return best_type


def _unescape(field: str) -> str:
    # The mount table writes space, tab, newline and backslash as octal escapes.
    for escape, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escape, char)
    return field
