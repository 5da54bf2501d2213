"""Serving one object's bytes over HTTP: streamed, with validators and byte ranges.

``ETag`` is the sha256 of the bytes (the metadata's checksum), so a client can check a
download against ``metadata KEY`` and a cache stays valid across servers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.utils import format_datetime

import bottle

from factflow_storage.errors import InvalidRange
from factflow_storage.metadata import DEFAULT_CONTENT_TYPE
from factflow_storage.protocol import ObjectStream
from factflow_storage.server.http import exception_response
from factflow_storage.service import StorageService

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class StreamBody:
    """An open object as a WSGI body: iterated in chunks, closed by the server when done."""

    def __init__(self, stream: ObjectStream):
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except BaseException:
            # bottle drops a body whose first chunk fails without closing it.
            self._stream.close()
            raise

    def close(self) -> None:
        self._stream.close()


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """``(first, last)`` of a single byte range, ``(None, n)`` for the last n bytes.

    Anything else (several ranges, other units, nonsense) is ignored, as RFC 9110 lets
    a server do, and the whole object is served.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if not match or not (match.group(1) or match.group(2)):
        return None
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def etag_of(stream: ObjectStream) -> str:
    checksum = stream.metadata.get("checksum") or ""
    tag = checksum.partition(":")[2] or stream.info.etag
    if not tag:
        tag = f"{stream.info.size:x}-{int(stream.info.last_modified.timestamp() * 1000):x}"
    return f'"{tag}"'


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    wanted = etag.strip('"')
    return any(candidate.strip().removeprefix("W/").strip('"') == wanted
               for candidate in if_none_match.split(","))


def _open(service: StorageService, key: str, wanted: tuple[int | None, int | None] | None) -> ObjectStream:
    if wanted is None:
        return service.open(key)
    first, last = wanted
    if first is None:  # the last n bytes: the size decides where they start
        with service.open(key) as probe:
            size = probe.info.size
        if last == 0 and size:
            raise InvalidRange(f"an empty suffix range of {key!r} selects no bytes")
        first, last = max(0, size - last), None
    return service.open(key, start=first, length=None if last is None else last - first + 1)


def _size_of(service: StorageService, key: str) -> int | None:
    try:
        with service.open(key) as stream:
            return stream.info.size
    except Exception:  # noqa: BLE001 - only decorates an error already being answered
        return None


def object_response(service: StorageService, key: str) -> bottle.HTTPResponse:
    request = bottle.request
    wanted = parse_range(request.environ.get("HTTP_RANGE"))
    try:
        stream = _open(service, key, wanted)
    except InvalidRange as err:
        response = exception_response(err)
        size = _size_of(service, key)
        if size is not None:
            response.set_header("Content-Range", f"bytes */{size}")
        return response
    try:
        info = stream.info
        headers = {
            "Content-Type": stream.metadata.get("content_type") or info.content_type or DEFAULT_CONTENT_TYPE,
            "ETag": etag_of(stream),
            "Last-Modified": format_datetime(info.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        if_none_match = request.environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match and _matches(if_none_match, headers["ETag"]):
            stream.close()
            del headers["Content-Type"]
            return bottle.HTTPResponse(status=304, headers=headers)
        status = 200
        if wanted is not None and info.size:
            status = 206
            end = stream.start + stream.length - 1
            headers["Content-Range"] = f"bytes {stream.start}-{end}/{info.size}"
        headers["Content-Length"] = str(stream.length)
        if request.method == "HEAD" or stream.length == 0:
            stream.close()
            return bottle.HTTPResponse(body=b"", status=status, headers=headers)
        return bottle.HTTPResponse(body=StreamBody(stream), status=status, headers=headers)
    except BaseException:
        stream.close()
        raise
