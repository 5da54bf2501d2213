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
from factflow_storage.protocol import ObjectStream, object_etag
from factflow_storage.server import conditional
from factflow_storage.server.errors import PreconditionFailed
from factflow_storage.server.http import LAST_MODIFIED_ENV, exception_response
from factflow_storage.service import StorageService

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
# Past this many digits a position is beyond any object (and int() of 4,300+ digits raises).
_MAX_DIGITS = 19
_BEYOND = 2**63
# Stored bytes are a pipeline's, never the server's: a browser opening one must not run
# it on the API's origin (it could call the API with the user's access).
SANDBOX_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'",
                   "X-Content-Type-Options": "nosniff"}
_ACTIVE_TYPES = re.compile(r"^(text/html|application/xhtml\+xml|image/svg\+xml|text/xml|application/xml"
                           r"|[a-z0-9.+-]+/[a-z0-9.+-]*\+xml|text/javascript|application/(x-)?javascript"
                           r"|application/ecmascript|text/ecmascript|text/xsl|application/pdf)\s*(;|$)",
                           re.IGNORECASE)


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
    first = _position(match.group(1))
    last = _position(match.group(2))
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _position(digits: str) -> int | None:
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return _BEYOND if len(digits) > _MAX_DIGITS else int(digits)


def safe_headers(content_type: str) -> dict[str, str]:
    """The headers that keep stored bytes inert in a browser: sandboxed, never sniffed,
    active types downloaded rather than rendered, text decoded as UTF-8 unless it says."""
    headers = dict(SANDBOX_HEADERS)
    if content_type.lower().startswith("text/") and "charset=" not in content_type.lower():
        content_type = f"{content_type}; charset=utf-8"
    headers["Content-Type"] = content_type
    if _ACTIVE_TYPES.match(content_type):
        headers["Content-Disposition"] = "attachment"
    return headers


def etag_of(stream: ObjectStream) -> str:
    return f'"{object_etag(stream.info, stream.metadata)}"'


def _open(service: StorageService, key: str, wanted: tuple[int | None, int | None] | None) -> ObjectStream:
    if wanted is None:
        return service.open(key)
    first, last = wanted
    if first is None:  # the last n bytes: the size decides where they start
        with service.open(key) as probe:
            size = probe.info.size
        if last == 0 and size:
            raise InvalidRange(f"an empty suffix range of {key!r} selects no bytes")
        first, last = max(0, size - (last or 0)), None
    return service.open(key, start=first, length=None if last is None else last - first + 1)


def _size_of(service: StorageService, key: str) -> int | None:
    try:
        with service.open(key) as stream:
            return stream.info.size
    except Exception:  # noqa: BLE001 - only decorates an error already being answered
        return None


def object_response(service: StorageService, key: str) -> bottle.HTTPResponse:
    return _respond(service, key, parse_range(bottle.request.environ.get("HTTP_RANGE")))


def _respond(service: StorageService, key: str,
             wanted: tuple[int | None, int | None] | None) -> bottle.HTTPResponse:
    request = bottle.request
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
        content_type = stream.metadata.get("content_type") or info.content_type or DEFAULT_CONTENT_TYPE
        headers = {
            **safe_headers(content_type),
            "ETag": etag_of(stream),
            "Last-Modified": format_datetime(info.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
        }
        forced = conditional.evaluate(request.environ, request.method, headers["ETag"], info.last_modified)
        if forced is None and wanted is not None \
                and not conditional.range_applies(request.environ, headers["ETag"]):
            # The client holds another version: a part of this one would splice the two.
            stream.close()
            return _respond(service, key, None)
        if forced == conditional.NOT_MODIFIED:
            stream.close()
            del headers["Content-Type"]
            headers.pop("Content-Disposition", None)
            # bottle drops Last-Modified from a 304; the WSGI wrapper puts it back.
            request.environ[LAST_MODIFIED_ENV] = headers["Last-Modified"]
            return bottle.HTTPResponse(status=304, headers=headers)
        if forced == conditional.PRECONDITION_FAILED:
            stream.close()
            return exception_response(PreconditionFailed(f"a precondition on {key!r} does not hold"))
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
