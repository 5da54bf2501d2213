"""Reading a zip as it arrives, member by member, from a stream that cannot seek.

Only what ``zipwriter`` produces is accepted: stored members whose size is known before
their bytes (in the local header, or in the private extra field when a data descriptor
follows). Anything else is refused rather than guessed at. The central directory that
ends the archive is read too, so a member it describes as a link or a directory, or a
directory that disagrees with the members seen, is caught.
"""

from __future__ import annotations

import stat
import struct
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from zlib_ng.zlib_ng import crc32

from factflow_storage.zipformat.zipwriter import (CENTRAL_HEADER, CENTRAL_SIG, DESCRIPTOR_SIG, END64_RECORD,
                                                END64_SIG, END_RECORD, END_SIG, FIELD_ID, FLAG_DESCRIPTOR,
                                                LIMIT32, LOCAL_HEADER, LOCAL_SIG, LOCATOR64, LOCATOR64_SIG,
                                                STORED, ZIP64_ID)
from factflow_storage.errors import StorageError

# Bytes asked of a stream that only reads (``read1``) per read. Below malloc's mmap
# threshold on purpose: a megabyte read that way got fresh pages from the kernel (mapped,
# faulted in, unmapped) and cost about three times the CPU of reads this size.
CHUNK = 64 * 1024
# The buffer filled per ``readinto``: a gigabyte is a thousand steps of Python.
READ_INTO = 1024 * 1024
# A stream cut off anywhere, even between two records, reads as this: an archive counts
# as whole only once its end records are read.
INCOMPLETE = "the archive is incomplete"
_ENCRYPTED = 0x0001


class UnsafeArchive(StorageError, ValueError):
    """An archive this project would not have written, refused before anything is kept."""

    error_code = "unsafe_archive"
    status = 502


@dataclass
class Member:
    name: str
    size: int
    sha256_hex: str | None
    crc: int | None  # None when a data descriptor carries it
    zip64: bool


@dataclass(frozen=True)
class CentralEntry:
    name: str
    made_by: int
    external_attr: int

    def problem(self) -> str | None:
        """Why this entry cannot be extracted as a regular file, if it cannot."""
        if self.name.endswith("/"):
            return "a directory entry"
        if self.made_by >> 8 == 3:  # UNIX: the high 16 bits are st_mode
            mode = self.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if stat.S_ISLNK(mode):
                return "a symbolic link"
            if kind and not stat.S_ISREG(mode):
                return "not a regular file"
        if self.external_attr & 0x10:  # MS-DOS directory bit
            return "a directory entry"
        return None


def _parse_extra(extra: bytes) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(extra):
        field_id, length = struct.unpack_from("<HH", extra, pos)
        fields[field_id] = extra[pos + 4:pos + 4 + length]
        pos += 4 + length
    return fields


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArchive(f"archive member name {raw!r} is not UTF-8") from None


class _Buffers:
    """Read buffers, each used again once nothing holds a view of it. A megabyte fresh
    from malloc is fresh pages from the kernel, faulted in on every read: a third of
    the reading thread's CPU."""

    def __init__(self, size: int, keep: int = 64):  # a download's writer holds up to 32
        self._size = size
        self._keep = keep
        self._pool: deque[bytearray] = deque()

    def take(self) -> bytearray:
        for _ in range(len(self._pool)):
            buffer = self._pool[0]
            self._pool.rotate(-1)
            # The pool, ``buffer`` and getrefcount's argument are its only references: a
            # view of it, and any slice of that view, would hold one more.
            if sys.getrefcount(buffer) <= 3:
                return buffer
        buffer = bytearray(self._size)
        if len(self._pool) < self._keep:
            self._pool.append(buffer)
        return buffer


class ZipStreamReader:
    def __init__(self, stream: BinaryIO):
        self._stream = stream
        # Streams that can fill a buffer (an HTTP answer, as http.client decodes its
        # transfer chunks) fill one of ``_buffers`` per read; member bytes are handed out
        # as views of it, so a megabyte costs one copy from the kernel and a few Python
        # steps.
        self._readinto = getattr(stream, "readinto", None)
        self._read_some = getattr(stream, "read1", stream.read)
        self._view = memoryview(b"")  # read ahead of the records parsed so far
        self._buffers = _Buffers(READ_INTO)
        self._finished_members = False
        self.names: list[str] = []

    def _fill(self) -> None:
        """The next piece of the stream into ``_view``, empty only at its end. A buffer is
        filled again only once no view of it is left (``_Buffers``): the caller may still
        hold pieces of earlier ones."""
        if self._readinto is not None:
            buffer = self._buffers.take()
            self._view = memoryview(buffer)[:self._readinto(buffer)]
        else:
            self._view = memoryview(self._read_some(CHUNK))

    def _read_exact(self, size: int) -> bytes:
        if len(self._view) >= size:
            piece, self._view = self._view[:size], self._view[size:]
            return piece.tobytes()
        parts = [self._view.tobytes()]
        have = len(parts[0])
        while have < size:
            self._fill()
            if not self._view:
                raise UnsafeArchive(f"{INCOMPLETE}: it ends in the middle of a record")
            piece = self._view[:size - have]
            self._view = self._view[len(piece):]
            parts.append(piece.tobytes())
            have += len(piece)
        return b"".join(parts)

    def _some(self, size: int) -> memoryview:
        """Up to ``size`` bytes, at least one: what is buffered, or one read."""
        if not self._view:
            self._fill()
            if not self._view:
                raise UnsafeArchive(f"{INCOMPLETE}: it ends in the middle of a record")
        piece = self._view[:size]
        self._view = self._view[len(piece):]
        return piece

    def _unread(self, data: bytes) -> None:
        self._view = memoryview(data + self._view.tobytes())

    def members(self) -> Iterator[tuple[Member, Iterator[memoryview]]]:
        """Each member and its bytes; the bytes must be consumed before the next member."""
        while True:
            (signature,) = struct.unpack("<I", self._read_exact(4))
            if signature in (CENTRAL_SIG, END_SIG, END64_SIG):
                self._unread(struct.pack("<I", signature))
                self._finished_members = True
                return
            if signature != LOCAL_SIG:
                raise UnsafeArchive(f"unexpected record 0x{signature:08x} in the archive")
            member = self._local_header()
            self.names.append(member.name)
            body = self._body(member)
            yield member, body
            for _ in body:  # drain what the caller left unread, keeping the stream aligned
                pass

    def _local_header(self) -> Member:
        fields = LOCAL_HEADER.unpack(struct.pack("<I", LOCAL_SIG) + self._read_exact(LOCAL_HEADER.size - 4))
        _, _, flags, method, _, _, crc, _, size, name_len, extra_len = fields
        name = _decode_name(self._read_exact(name_len))
        extra = _parse_extra(self._read_exact(extra_len))
        if flags & _ENCRYPTED:
            raise UnsafeArchive(f"archive member {name!r} is encrypted")
        if method != STORED:
            raise UnsafeArchive(f"archive member {name!r} is compressed (method {method}); "
                                "only stored members are accepted")
        zip64 = ZIP64_ID in extra
        sha256_hex = None
        private = extra.get(FIELD_ID)
        if private is not None and len(private) >= 10 and private[0] == 1:
            declared = struct.unpack_from("<Q", private, 1)[0]
            if private[9] & 1 and len(private) >= 42:
                sha256_hex = private[10:42].hex()
        else:
            declared = None
        if flags & FLAG_DESCRIPTOR:
            if declared is None:
                raise UnsafeArchive(f"archive member {name!r} does not give its size before its bytes")
            return Member(name, declared, sha256_hex, None, zip64)
        if size == LIMIT32 and zip64:
            size = struct.unpack_from("<Q", extra[ZIP64_ID], 0)[0]
        if declared is not None and declared != size:
            raise UnsafeArchive(f"archive member {name!r} declares two sizes")
        return Member(name, size, sha256_hex, crc, zip64)

    def _body(self, member: Member) -> Iterator[memoryview]:
        remaining = member.size
        crc = 0
        # A member whose header gives its sha256 is checked against it by the caller,
        # a stronger check than the CRC: computing both would only cost time.
        check_crc = member.sha256_hex is None
        while remaining:
            chunk = self._some(remaining)
            if check_crc:
                crc = crc32(chunk, crc)
            remaining -= len(chunk)
            yield chunk
        expected = member.crc
        if expected is None:
            expected = self._descriptor(member)
        if check_crc and crc != expected:
            raise UnsafeArchive(f"archive member {member.name!r} fails its CRC check")

    def _descriptor(self, member: Member) -> int:
        head = self._read_exact(4)
        if struct.unpack("<I", head)[0] == DESCRIPTOR_SIG:
            head = self._read_exact(4)
        crc = struct.unpack("<I", head)[0]
        sizes = struct.unpack("<QQ" if member.zip64 else "<II", self._read_exact(16 if member.zip64 else 8))
        if sizes != (member.size, member.size):
            raise UnsafeArchive(f"archive member {member.name!r} has a data descriptor that disagrees with its size")
        return crc

    def central_directory(self) -> list[CentralEntry]:
        """The entries of the central directory (each with its ``problem()``, if any);
        call after ``members`` is exhausted."""
        if not self._finished_members:
            raise RuntimeError("read every member first")
        entries = []
        while True:
            (signature,) = struct.unpack("<I", self._read_exact(4))
            if signature != CENTRAL_SIG:
                break
            fields = CENTRAL_HEADER.unpack(struct.pack("<I", CENTRAL_SIG) + self._read_exact(CENTRAL_HEADER.size - 4))
            made_by, name_len, extra_len, comment_len, external_attr = fields[1], fields[10], fields[11], fields[12], fields[15]
            name = _decode_name(self._read_exact(name_len))
            self._read_exact(extra_len + comment_len)
            entries.append(CentralEntry(name, made_by, external_attr))
        if [entry.name for entry in entries] != self.names:
            raise UnsafeArchive("the archive's central directory disagrees with its members")
        self._end_records(signature)
        return entries

    def _end_records(self, signature: int) -> None:
        if signature == END64_SIG:
            self._read_exact(END64_RECORD.size - 4)
            (signature,) = struct.unpack("<I", self._read_exact(4))
            if signature != LOCATOR64_SIG:
                raise UnsafeArchive(f"unexpected record 0x{signature:08x} after the ZIP64 end record")
            self._read_exact(LOCATOR64.size - 4)
            (signature,) = struct.unpack("<I", self._read_exact(4))
        if signature != END_SIG:
            raise UnsafeArchive(f"unexpected record 0x{signature:08x} after the central directory")
        end = END_RECORD.unpack(struct.pack("<I", END_SIG) + self._read_exact(END_RECORD.size - 4))
        self._read_exact(end[-1])  # the archive's comment
