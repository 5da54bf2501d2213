"""Packing one archive job: objects (and sidecars) in key order, then the manifest.

Memory stays bounded whatever the execution's size: the listing is spooled to a temp
file, small objects are fetched ahead by a few threads within a byte budget, large ones
are streamed straight through, the manifest is spooled, and the zip itself goes to
storage through a ``Pipe`` as it is written.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson

from factflow_storage import metadata as clock
from factflow_storage.archive.request import ArchiveRequest
from factflow_storage.zipformat.layout import MANIFEST_NAME, sidecar_bytes
from factflow_storage.zipformat.zipwriter import ZipStreamWriter
from factflow_storage.errors import NotFound, StorageError, TooLarge
from factflow_storage.keys import SIDECAR_SUFFIX
from factflow_storage.protocol import ObjectStream
from factflow_storage.service import StorageService

FETCH_THREADS = 32
SMALL_OBJECT = 4 * 1024 * 1024
AHEAD_BYTES = 64 * 1024 * 1024
AHEAD_COUNT = 256
CHUNK = 1024 * 1024


class Cancelled(StorageError):
    error_code = "cancelled"
    status = 409


class Progress:
    """Counters the packing thread advances and the heartbeat reads."""

    def __init__(self) -> None:
        self.total = 0
        self.processed = 0
        self.bytes_packed = 0
        self.cancel = threading.Event()
        # Why the server stopped the job, when it was not the client: nobody polled it,
        # or it would pass the archive byte cap (``archive.limits``).
        self.idle = False
        self.limit_error: StorageError | None = None
        self.byte_budget: int | None = None  # bytes this job may pack, set when it starts

    def check(self) -> None:
        if self.byte_budget is not None and self.bytes_packed > self.byte_budget and self.limit_error is None:
            self.limit_error = TooLarge(f"the archive would pass the byte limit on archives held "
                                        f"({self.byte_budget} bytes were left for it)")
            self.cancel.set()
        if self.cancel.is_set():
            raise Cancelled("cancelled")


def _checksum_hex(blob: dict[str, Any]) -> str | None:
    checksum = blob.get("checksum")
    if isinstance(checksum, str) and checksum.startswith("sha256:"):
        return checksum[len("sha256:"):]
    return None


class Packer:
    """``verify_large=False`` leaves the sha256 of a large object with a recorded one to
    the reader: the zip carries the recorded sha256 in the member's header, and the
    download client refuses a member that does not match it. A stored archive may have
    other readers, so jobs verify everything."""

    def __init__(self, service: StorageService, request: ArchiveRequest, progress: Progress, *,
                 verify_large: bool = True):
        self.service = service
        self.request = request
        self.progress = progress
        self.verify_large = verify_large

    def _spool_listing(self):
        spool = tempfile.TemporaryFile()
        count = 0
        for info in self.request.objects(self.service):
            spool.write(orjson.dumps([info.key, info.size]) + b"\n")
            count += 1
            if count % 1000 == 0:
                self.progress.check()
        self.progress.total = count
        spool.seek(0)
        return spool

    def _fetch(self, key: str, size: int) -> tuple[ObjectStream, bytes | None] | None:
        """Open an object; read it whole when small. None when it vanished since listing."""
        try:
            stream = self.service.open(key)
        except NotFound:
            return None
        if size > SMALL_OBJECT or stream.info.size > SMALL_OBJECT:
            return stream, None
        with stream:
            return stream, stream.read()

    def pack(self, writer: ZipStreamWriter) -> None:
        manifest = tempfile.TemporaryFile()
        stats = {"count": 0, "bytes": 0}
        with self._spool_listing() as spool, ThreadPoolExecutor(FETCH_THREADS) as pool:
            window: deque[tuple[str, int, Future | None]] = deque()
            ahead = 0
            for line in spool:
                key, size = orjson.loads(line)
                small = size <= SMALL_OBJECT
                window.append((key, size, pool.submit(self._fetch, key, size) if small else None))
                ahead += size if small else 0
                while window and (len(window) > AHEAD_COUNT or ahead > AHEAD_BYTES or not small):
                    key_, size_, future = window.popleft()
                    ahead -= size_ if future is not None else 0
                    self._add(writer, key_, size_, future, manifest, stats)
            while window:
                self._add(writer, *window.popleft(), manifest, stats)
        self._add_manifest(writer, manifest, stats)

    def _add(self, writer: ZipStreamWriter, key: str, size: int, future: Future | None,
             manifest, stats: dict[str, int]) -> None:
        self.progress.check()
        fetched = future.result() if future is not None else self._fetch(key, size)
        self.progress.processed += 1
        if fetched is None:
            return
        stream, data = fetched
        blob = stream.metadata
        expected = _checksum_hex(blob)
        modified = stream.info.last_modified
        if data is not None:
            actual = hashlib.sha256(data).hexdigest()
            if expected and actual != expected:
                raise StorageError(f"{key!r} does not match its checksum; storage may be damaged")
            writer.add_bytes(key, data, modified=modified, sha256_hex=actual)
            self.progress.bytes_packed += len(data)
        else:
            digest = hashlib.sha256() if self.verify_large or not expected else None
            with stream:
                writer.add_stream(key, stream.length, self._chunks(stream, digest),
                                  modified=modified, sha256_hex=expected)
            actual = digest.hexdigest() if digest is not None else str(expected)
            if expected and actual != expected:
                raise StorageError(f"{key!r} does not match its checksum; storage may be damaged")
        if self.request.include_metadata:
            writer.add_bytes(key + SIDECAR_SUFFIX, sidecar_bytes(blob), modified=modified)
        row = orjson.dumps({"key": key, "size": stream.length, "checksum": f"sha256:{actual}"})
        manifest.write((b"," if stats["count"] else b"") + row)
        stats["count"] += 1
        stats["bytes"] += stream.length

    def _chunks(self, stream: ObjectStream, digest) -> Iterator[bytes]:
        for chunk in stream:
            self.progress.check()
            if digest is not None:
                digest.update(chunk)
            self.progress.bytes_packed += len(chunk)
            yield chunk

    def _add_manifest(self, writer: ZipStreamWriter, manifest, stats: dict[str, int]) -> None:
        head = orjson.dumps({"execution_id": self.request.execution_id, "created_at": clock.now_rfc3339(),
                             "include_metadata": self.request.include_metadata, "count": stats["count"],
                             "bytes": stats["bytes"]})[:-1] + b',"objects":['
        tail = b"]}\n"
        body_size = manifest.tell()
        manifest.seek(0)

        def chunks() -> Iterator[bytes]:
            yield head
            while chunk := manifest.read(CHUNK):
                yield chunk
            yield tail

        with manifest:
            writer.add_stream(MANIFEST_NAME, len(head) + body_size + len(tail), chunks())


def run_packer(service: StorageService, request: ArchiveRequest, progress: Progress,
               sink: Callable[[bytes], object], *, verify_large: bool = True) -> int:
    """Write the whole archive to ``sink``; returns its size."""
    writer = ZipStreamWriter(sink)
    try:
        Packer(service, request, progress, verify_large=verify_large).pack(writer)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.offset
