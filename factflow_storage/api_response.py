"""An answer of the factflow API, read the way callers read a file.

``ApiClient`` sends requests through a pooled, keep-alive ``urllib3.PoolManager``; its
answers come back unread so bodies can stream (objects, zip archives, SSE). This wrapper
keeps the small file-like surface callers use (``read``, iteration by line, ``close``,
``with``) and owns the one rule that keeps connections reusable: a connection goes back
to the pool once its body is read to the end; an answer abandoned with much left unread
closes its connection rather than draining it.

``readinto`` reads urllib3's underlying http.client answer (``_fp``), hence the upper
bound on urllib3 in setup.cfg.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import urllib3

from factflow_storage.errors import Unavailable

# A body this small is read to the end on close so its connection can be reused.
DRAIN_LIMIT = 64 * 1024


class ApiResponse:
    def __init__(self, raw: urllib3.BaseHTTPResponse, base_url: str):
        self._raw = raw
        self._base_url = base_url
        self.status: int = raw.status
        self.reason: str = raw.reason or ""

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self._raw.headers.get(name, default)

    @property
    def headers(self) -> Any:
        return self._raw.headers

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._raw.read(None if size is None or size < 0 else size)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self._broke_off(err) from None

    def read1(self, size: int = -1) -> bytes:
        """What has arrived, up to ``size`` bytes, without joining transfer chunks."""
        try:
            return self._raw.read1(None if size is None or size < 0 else size)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise self._broke_off(err) from None

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` (short only at the end) straight from the socket, as http.client
        decodes the transfer chunks. urllib3's own ``readinto`` reads a new bytes object
        and copies it over: two more copies of each byte and an allocation per read."""
        raw_body = getattr(self._raw, "_fp", None)
        if raw_body is None or self._raw.headers.get("Content-Encoding"):
            data = self.read(len(buffer))  # decoded, or already closed: urllib3's way
            buffer[:len(data)] = data
            return len(data)
        try:
            return raw_body.readinto(buffer)
        except (http.client.HTTPException, OSError) as err:
            raise self._broke_off(err) from None

    def _broke_off(self, err: BaseException) -> Unavailable:
        return Unavailable(f"the factflow API at {self._base_url} broke off an answer: {err}")

    def readable(self) -> bool:
        return True

    def __iter__(self) -> Iterator[bytes]:
        """The body line by line, each with its line end (what SSE parsing wants)."""
        buffer = b""
        while True:
            try:
                # read1: what has arrived, without waiting for a full buffer (live streams).
                chunk = self._raw.read1(64 * 1024)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise self._broke_off(err) from None
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if buffer:
            yield buffer

    def close(self) -> None:
        raw = self._raw
        remaining = getattr(raw, "length_remaining", None)
        try:
            if remaining is not None and remaining <= DRAIN_LIMIT:
                raw.drain_conn()
                raw.release_conn()
                return
        except (urllib3.exceptions.HTTPError, OSError):
            pass
        raw.close()

    def __enter__(self) -> ApiResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
