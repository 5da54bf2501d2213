"""Moving bytes to and from S3 with bounded memory, and the HTTP client that does it.

Uploads: a source that ends within the first part goes up in one PUT; a longer one in a
multipart upload whose parts are read, hashed and sent one after another, at most
``UPLOAD_WORKERS`` in flight, so memory stays near ``(UPLOAD_WORKERS + 1) * PART_SIZE``
whatever the size. The sha256 is computed as the parts stream past, and a caller's
``before_complete(size, sha256_hex)`` runs between the last part and completion, while
the object is not yet visible. minio-py's ``put_object`` completes the upload itself, so
the multipart steps are its lower-level calls.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

import certifi
import urllib3

from factflow_storage.errors import TooLarge
from factflow_storage.faults import fault
from factflow_storage.providers import s3_client
from factflow_storage.providers.s3_endpoint import split_endpoint  # noqa: F401  (the provider imports it from here)
from factflow_storage.providers.s3_errors import CONNECT_TIMEOUT, READ_TIMEOUT, TRANSLATED, ErrorContext

PART_SIZE = 8 * 1024 * 1024
SINGLE_PUT_LIMIT = 64 * 1024 * 1024
UPLOAD_WORKERS = 2
MAX_PARTS = 10_000
POOL_SIZE = 32


def http_client() -> urllib3.PoolManager:
    # One retry, and only where a retry is safe; a read timeout is not retried, so an
    # endpoint that accepts and never answers fails in READ_TIMEOUT seconds, not minutes.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        maxsize=POOL_SIZE,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=1, connect=1, read=0, status=1, backoff_factor=0.2,
                              status_forcelist=[500, 502, 503, 504]),
    )


def part_size(part_number: int) -> int:
    """8 MiB parts, growing by 8 MiB every thousand parts: ~430 GiB fit in S3's 10,000."""
    return PART_SIZE * (1 + (part_number - 1) // 1000)


def read_full(source: Any, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end (pipes return short reads)."""
    chunks, have = [], 0
    while have < size:
        chunk = source.read(size - have)
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_head(data: bytes | bytearray | memoryview | BinaryIO) -> tuple[bytes, Any]:
    """The first part, and the rest as a stream (None when the first part is all there is)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) <= SINGLE_PUT_LIMIT:
            return bytes(data), None
        view = memoryview(data)
        return bytes(view[:PART_SIZE]), _ViewReader(view[PART_SIZE:])
    head = read_full(data, PART_SIZE + 1)
    if len(head) <= PART_SIZE:
        return head, None
    return head[:PART_SIZE], _Prepended(head[PART_SIZE:], data)


def file_sha256(data: Any) -> str | None:
    """The sha256 of the rest of a regular file larger than one part, read ahead and
    rewound, so a multipart upload's headers can carry it; None for anything else (a
    pipe, bytes, a small file that goes up in one PUT and is hashed on the way)."""
    try:
        fd, position = data.fileno(), data.tell()
        st = os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size - position <= PART_SIZE:
        return None
    digest = hashlib.sha256()
    while chunk := os.pread(fd, 1024 * 1024, position):
        digest.update(chunk)
        position += len(chunk)
    return digest.hexdigest()


class _ViewReader:
    def __init__(self, view: memoryview):
        self._view = view
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos:end])
        self._pos = end
        return chunk


class _Prepended:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, first: bytes, rest: Any):
        self._first = first
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._first:
            chunk, self._first = (self._first, b"") if size < 0 or size >= len(self._first) else \
                (self._first[:size], self._first[size:])
            return chunk
        return self._rest.read(size)


class Uploader:
    def __init__(self, client, bucket: str, call: Callable[..., Any]):
        self._client = client
        self._bucket = bucket
        self._call = call

    def put(self, name: str, data: bytes, content_type: str, metadata: dict[str, str],
            condition: dict[str, str] | None = None) -> None:
        """One PutObject; ``condition`` holds the If-Match/If-None-Match headers of a conditional one."""
        if condition:
            self._call(f"object {name!r}", s3_client.put_object, client=self._client, bucket=self._bucket,
                       name=name, data=data, headers={"Content-Type": content_type, **metadata, **condition})
            return
        self._call(f"object {name!r}", self._client.put_object, bucket_name=self._bucket, object_name=name,
                   data=io.BytesIO(data), length=len(data), content_type=content_type, metadata=metadata,
                   part_size=max(len(data), 5 * 1024 * 1024))

    def multipart(self, name: str, head: bytes, rest: Any, content_type: str, headers: dict[str, str],
                  before_complete: Callable[[int, str], None] | None,
                  condition: dict[str, str] | None = None) -> tuple[int, str]:
        """Upload ``head`` then ``rest`` in parts; returns (size, sha256 hex)."""
        what = f"object {name!r}"
        upload_id = self._call(what, s3_client.create_multipart_upload, client=self._client, bucket=self._bucket,
                               name=name, headers={**headers, "Content-Type": content_type})
        fault("upload-created")
        try:
            size, digest, parts = self._send_parts(name, upload_id, head, rest)
            fault("parts-sent")
            if before_complete is not None:
                before_complete(size, digest.hexdigest())
            self._call(what, s3_client.complete_multipart_upload, client=self._client, bucket=self._bucket,
                       name=name, upload_id=upload_id, parts=parts, headers=condition)
        except BaseException:
            try:
                s3_client.abort_multipart_upload(self._client, self._bucket, name, upload_id)
            except TRANSLATED:
                pass  # the original failure is the one worth reporting
            raise
        return size, digest.hexdigest()

    def _send_parts(self, name: str, upload_id: str, head: bytes, rest: Any):
        digest = hashlib.sha256()
        size = 0
        parts: list[tuple[int, str]] = []
        in_flight: deque[tuple[int, Future]] = deque()
        with ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="s3-part") as pool:
            try:
                number, chunk = 1, head
                while chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    in_flight.append((number, pool.submit(self._send_part, name, upload_id, number, chunk)))
                    del chunk
                    while len(in_flight) > UPLOAD_WORKERS:
                        parts.append(self._finished(*in_flight.popleft()))
                    number += 1
                    chunk = read_full(rest, part_size(number))
                    if chunk and number > MAX_PARTS:
                        raise TooLarge(f"{name!r} is larger than a multipart upload can hold")
                while in_flight:
                    parts.append(self._finished(*in_flight.popleft()))
            finally:
                for _, future in in_flight:
                    future.cancel()
        return size, digest, parts

    def _send_part(self, name: str, upload_id: str, number: int, chunk: bytes) -> str:
        return self._call(f"object {name!r}", s3_client.upload_part, client=self._client, bucket=self._bucket,
                          name=name, upload_id=upload_id, number=number, data=chunk)

    @staticmethod
    def _finished(number: int, future: Future) -> tuple[int, str]:
        return number, future.result()


class Body:
    """An HTTP response body as a file: read, close (returning the connection), context manager."""

    def __init__(self, response, errors: ErrorContext, what: str):
        self._response = response
        self._errors = errors
        self._what = what

    def read(self, size: int = -1) -> bytes:
        try:
            return self._response.read(None if size is None or size < 0 else size)
        except TRANSLATED as err:
            raise self._errors.translate(err, self._what) from err

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmptyBody(io.BytesIO):
    """The body of a zero-length read, which needs no request."""
