"""A zip writer for a stream that cannot seek: members stored (not compressed), ZIP64
where sizes or offsets need it, and a central directory spooled to a temp file, so
writing an archive of any number of members holds no per-member state in memory.

Every local header carries a private extra field (``FIELD_ID``) with the member's size
and, when known, its sha256. Zip readers skip extra fields they do not know and rely on
the central directory; ``zipreader`` uses the field to extract while the archive is
still arriving, checking each member against its sha256 before it is kept.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from zlib_ng.zlib_ng import crc32  # PCLMUL-folded: ~15x zlib's, and the packer hashes every byte

FIELD_ID = 0x4646  # "FF": size and sha256 of the member, ahead of its bytes
FIELD_VERSION = 1
ZIP64_ID = 0x0001
LIMIT32 = 0xFFFFFFFF
LIMIT16 = 0xFFFF

LOCAL_SIG = 0x04034B50
DESCRIPTOR_SIG = 0x08074B50
CENTRAL_SIG = 0x02014B50
END64_SIG = 0x06064B50
LOCATOR64_SIG = 0x07064B50
END_SIG = 0x06054B50

FLAG_DESCRIPTOR = 0x0008
FLAG_UTF8 = 0x0800
STORED = 0
MADE_BY_UNIX = (3 << 8) | 45
VERSION_ZIP64 = 45
VERSION_DEFAULT = 20
REGULAR_FILE_ATTR = (0o100644 << 16)

LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
END_RECORD = struct.Struct("<IHHHHIIH")
END64_RECORD = struct.Struct("<IQHHIIQQQQ")
LOCATOR64 = struct.Struct("<IIQI")


def private_field(size: int, sha256_hex: str | None) -> bytes:
    """The extra field ``zipreader`` reads: version, size, and the sha256 if known."""
    digest = bytes.fromhex(sha256_hex) if sha256_hex else b""
    body = struct.pack("<BQB", FIELD_VERSION, size, 1 if digest else 0) + digest
    return struct.pack("<HH", FIELD_ID, len(body)) + body


def dos_time(moment: datetime | None) -> tuple[int, int]:
    """(time, date) in MS-DOS format, UTC; clamped to the format's 1980-2107 range."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    year = min(max(moment.year, 1980), 2107)
    if year != moment.year:
        moment = datetime(year, 1, 1, tzinfo=timezone.utc)
    return ((moment.hour << 11) | (moment.minute << 5) | (moment.second // 2),
            ((year - 1980) << 9) | (moment.month << 5) | moment.day)


class ZipStreamWriter:
    """Writes members in order to ``sink`` (any callable taking bytes); ``close`` ends it."""

    def __init__(self, sink: Callable[[bytes], object]):
        self._sink = sink
        self._offset = 0
        self._count = 0
        self._central = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        self._names: set[str] = set()

    @property
    def offset(self) -> int:
        """Bytes written so far (the archive's size once closed)."""
        return self._offset

    def _write(self, data: bytes) -> None:
        self._sink(data)
        self._offset += len(data)

    def _check_name(self, name: str) -> bytes:
        if name in self._names:
            raise ValueError(f"duplicate archive member {name!r}")
        self._names.add(name)
        return name.encode("utf-8")

    def add_bytes(self, name: str, data: bytes, *, modified: datetime | None = None,
                  sha256_hex: str | None = None) -> None:
        """A member whose bytes are at hand: sizes and CRC go in the local header."""
        encoded = self._check_name(name)
        header_offset = self._offset
        crc = crc32(data)
        size = len(data)
        zip64 = size >= LIMIT32
        extra = private_field(size, sha256_hex)
        if zip64:
            extra = struct.pack("<HHQQ", ZIP64_ID, 16, size, size) + extra
        clock, date = dos_time(modified)
        shown = LIMIT32 if zip64 else size
        self._write(LOCAL_HEADER.pack(LOCAL_SIG, VERSION_ZIP64 if zip64 else VERSION_DEFAULT, FLAG_UTF8,
                                      STORED, clock, date, crc, shown, shown, len(encoded), len(extra))
                    + encoded + extra)
        self._write(data)
        self._add_central(encoded, FLAG_UTF8, clock, date, crc, size, header_offset)

    def add_stream(self, name: str, size: int, chunks: Iterable[bytes], *,
                   modified: datetime | None = None, sha256_hex: str | None = None) -> int:
        """A member streamed from ``chunks`` of exactly ``size`` bytes (the CRC follows the
        bytes, in a data descriptor). Returns the CRC-32."""
        encoded = self._check_name(name)
        header_offset = self._offset
        zip64 = size >= LIMIT32
        extra = private_field(size, sha256_hex)
        if zip64:
            extra = struct.pack("<HHQQ", ZIP64_ID, 16, 0, 0) + extra
        flags = FLAG_UTF8 | FLAG_DESCRIPTOR
        clock, date = dos_time(modified)
        shown = LIMIT32 if zip64 else 0
        self._write(LOCAL_HEADER.pack(LOCAL_SIG, VERSION_ZIP64 if zip64 else VERSION_DEFAULT, flags,
                                      STORED, clock, date, 0, shown, shown, len(encoded), len(extra))
                    + encoded + extra)
        crc = 0
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                raise ValueError(f"{name!r} has more than its {size} bytes")
            crc = crc32(chunk, crc)
            self._write(chunk)
        if written != size:
            raise ValueError(f"{name!r} ended after {written} of its {size} bytes")
        if zip64:
            self._write(struct.pack("<IIQQ", DESCRIPTOR_SIG, crc, size, size))
        else:
            self._write(struct.pack("<IIII", DESCRIPTOR_SIG, crc, size, size))
        self._add_central(encoded, flags, clock, date, crc, size, header_offset)
        return crc

    def _add_central(self, encoded: bytes, flags: int, clock: int, date: int, crc: int,
                     size: int, header_offset: int) -> None:
        values = []
        if size >= LIMIT32:
            values += [size, size]
        if header_offset >= LIMIT32:
            values.append(header_offset)
        extra = struct.pack(f"<HH{len(values)}Q", ZIP64_ID, 8 * len(values), *values) if values else b""
        shown_size = LIMIT32 if size >= LIMIT32 else size
        shown_offset = LIMIT32 if header_offset >= LIMIT32 else header_offset
        self._central.write(CENTRAL_HEADER.pack(
            CENTRAL_SIG, MADE_BY_UNIX, VERSION_ZIP64 if values else VERSION_DEFAULT, flags, STORED,
            clock, date, crc, shown_size, shown_size, len(encoded), len(extra), 0, 0, 0,
            REGULAR_FILE_ATTR, shown_offset) + encoded + extra)
        self._count += 1

    def close(self) -> None:
        """Write the central directory and the end records."""
        start = self._offset
        self._central.seek(0)
        while chunk := self._central.read(1024 * 1024):
            self._write(chunk)
        self._central.close()
        size = self._offset - start
        if self._count >= LIMIT16 or start >= LIMIT32 or size >= LIMIT32:
            end64 = self._offset
            self._write(END64_RECORD.pack(END64_SIG, 44, MADE_BY_UNIX, VERSION_ZIP64, 0, 0,
                                          self._count, self._count, size, start))
            self._write(LOCATOR64.pack(LOCATOR64_SIG, 0, end64, 1))
        self._write(END_RECORD.pack(END_SIG, 0, 0, min(self._count, LIMIT16), min(self._count, LIMIT16),
                                    min(size, LIMIT32), min(start, LIMIT32), 0))

    def abort(self) -> None:
        self._central.close()
