"""Moving an open file's bytes to another descriptor inside the kernel.

``copy_file_range`` into a regular file (which a filesystem may even share as a reflink),
``splice`` into a pipe, ``sendfile`` otherwise. Each works from an explicit source offset,
so the source is the very file the caller opened (a version replaced meanwhile keeps
being read), and none of them passes the bytes through Python.
"""

from __future__ import annotations

import errno
import os
import stat

CHUNK = 1 << 30  # per call: the kernels' limits are near 2 GiB

# What a kernel or filesystem answers when it cannot do this copy; the caller copies itself.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EOPNOTSUPP, errno.EBADF, errno.ESPIPE}


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    """Copy ``count`` bytes from ``src_fd`` at ``offset`` to ``dst_fd``'s current position.

    Returns the bytes copied; fewer than ``count`` only when the kernel cannot copy between
    these two (nothing copied) or the source ends early. Other ``OSError`` (EPIPE, ENOSPC)
    propagate.
    """
    if not stat.S_ISREG(os.fstat(src_fd).st_mode):
        return 0
    mode = os.fstat(dst_fd).st_mode
    if stat.S_ISREG(mode) and hasattr(os, "copy_file_range"):
        move = _copy_file_range
    elif stat.S_ISFIFO(mode) and hasattr(os, "splice"):
        move = _splice
    elif hasattr(os, "sendfile"):
        move = _sendfile
    else:
        return 0
    done = 0
    while done < count:
        try:
            moved = move(src_fd, dst_fd, offset + done, min(count - done, CHUNK))
        except OSError as err:
            if done == 0 and err.errno in _UNSUPPORTED:
                return 0
            raise
        if moved == 0:
            break
        done += moved
    return done


def _copy_file_range(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    return os.copy_file_range(src_fd, dst_fd, count, offset)


def _splice(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    return os.splice(src_fd, dst_fd, count, offset_src=offset)


def _sendfile(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    return os.sendfile(dst_fd, src_fd, offset, count)
