"""``/api/v1/storage/objects``: the list API, object bytes, metadata, writes, deletes.
Routes parse, call ``StorageService``, render."""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import bottle
import orjson

from factflow_storage.api_paths import OBJECTS
from factflow_storage.errors import BadRequest, NotFound, TooLarge
from factflow_storage.server import conditional
from factflow_storage.server.errors import LengthRequired, MethodNotAllowed, PreconditionFailed
from factflow_storage.server.http import (header_bytes, json_response, query, query_bool, query_int,
                                          route_key)
from factflow_storage.server.context import AppContext
from factflow_storage.server.objects import SANDBOX_HEADERS, object_response
from factflow_storage.server.openapi_paths import STORAGE_PATHS
from factflow_storage.service import DEFAULT_PAGE, StorageService, json_bytes

METADATA_HEADER = "X-Factflow-Metadata"
DELETED_HEADER = "X-Factflow-Deleted"
METADATA_VIEW = "metadata"
CONTENT_VIEW = "content"
# A cursor is what next_cursor gave: unpadded urlsafe base64 (a bad one must not mean page 1).
_CURSOR = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_OFFSET = 2**31
# type/subtype and parameters, printable ASCII only: a provider sends it on as a header.
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[\x20-\x7e]*)?$")


class _LimitedReader:
    """The request body, never read past its declared length."""

    def __init__(self, body: BinaryIO, length: int):
        self._body = body
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        chunk = self._body.read(want)
        self._left -= len(chunk)
        return chunk


def _view() -> str | None:
    """``?view=metadata``: the blob of KEY; ``?view=content``: the bytes of KEY, never a blob."""
    view = query("view")
    if view not in (None, METADATA_VIEW, CONTENT_VIEW):
        raise BadRequest(f"unknown view {view!r}: expected {METADATA_VIEW!r} or {CONTENT_VIEW!r}")
    return view


def _request_metadata() -> dict[str, Any] | None:
    raw = header_bytes(METADATA_HEADER)
    if raw is None or not raw.strip():
        return None
    try:
        blob = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"{METADATA_HEADER} is not valid JSON: {err}") from None
    if not isinstance(blob, dict):
        raise BadRequest(f"{METADATA_HEADER} must be a JSON object")
    return blob


def cursor_param() -> str | None:
    cursor = query("cursor") or None
    if cursor is not None and not _CURSOR.match(cursor):
        raise BadRequest(f"invalid cursor {cursor[:80]!r}: pass next_cursor of the previous page")
    return cursor


def _offset() -> int:
    offset = query_int("offset", 0)
    if not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"offset must be between 0 and {MAX_OFFSET}")
    return offset


def _content_type() -> str | None:
    value = bottle.request.environ.get("CONTENT_TYPE") or None
    if value is not None and not _MEDIA_TYPE.match(value):
        raise BadRequest("Content-Type must be an ASCII media type like text/plain; charset=utf-8")
    return value


def metadata_response(blob: dict[str, Any]) -> bottle.HTTPResponse:
    """A metadata blob with an ETag of its bytes, so a client can revalidate it."""
    body = json_bytes(blob)
    etag = f'"m-{hashlib.sha256(body).hexdigest()[:32]}"'
    if_none_match = bottle.request.environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None and conditional.etag_matches(if_none_match, etag):
        return bottle.HTTPResponse(status=304, headers={"ETag": etag})
    if_match = bottle.request.environ.get("HTTP_IF_MATCH")
    if if_match is not None and not conditional.etag_matches(if_match, etag, strong=True):
        raise PreconditionFailed("If-Match does not name the current metadata")
    return json_response(blob, headers={"ETag": etag, **SANDBOX_HEADERS})


def _reads_as_metadata(service: StorageService, key: str) -> bool:
    """Whether a GET of ``key`` answers its parent's metadata: the parent is an object and
    ``key`` itself is not (an existing object wins, so it may be rewritten)."""
    parent = key[:-len("/" + METADATA_VIEW)]
    try:
        service.metadata(parent)
    except NotFound:
        return False
    try:
        service.metadata(key)
    except NotFound:
        return True
    return False


def install(app: bottle.Bottle, context: AppContext) -> None:
    service, max_body = context.service, context.max_body
    reading = context.read_gate.turn if context.read_gate else contextlib.nullcontext

    @app.get(OBJECTS)
    def list_objects():
        with reading():
            page = service.list_page(
                query("prefix", "") or "",
                delimiter=query("delimiter") or None,
                route_id=query("route_id") or None,
                stage=query("stage") or None,
                extension=query("extension") or None,
                include_metadata=query_bool("include_metadata", True),
                limit=query_int("limit", DEFAULT_PAGE),
                cursor=cursor_param(),
                offset=_offset(),
                start_after=query("start_after") or None,
                contains=query("contains") or None,
                match=query("match") or None,
            )
        return json_response(page)

    # Registered before the object route, so ``.../metadata`` paths come here first.
    @app.route(OBJECTS + "/<key:path>/metadata", ["GET", "HEAD"])
    def object_metadata(key: str):
        with reading():
            return _object_metadata(key)

    def _object_metadata(key: str):
        whole = key + "/" + METADATA_VIEW
        view = _view()
        if view == METADATA_VIEW:
            return metadata_response(service.metadata(route_key(whole)))
        if view == CONTENT_VIEW:
            return object_response(service, route_key(whole))
        try:
            # An object whose key ends in '/metadata' wins over the metadata of its parent.
            return object_response(service, route_key(whole))
        except NotFound:
            pass
        return metadata_response(service.metadata(route_key(key)))

    @app.route(OBJECTS + "/<key:path>", ["GET", "HEAD"])
    def get_object(key: str):
        key = route_key(key)
        # The turn covers opening the object, not sending its bytes (bottle sends them after).
        with reading():
            if _view() == METADATA_VIEW:
                return metadata_response(service.metadata(key))
            return object_response(service, key)

    @app.put(OBJECTS + "/<key:path>")
    def put_object(key: str):
        key = route_key(key)
        if key.endswith("/" + METADATA_VIEW) and _reads_as_metadata(service, key):
            # Reads of this path answer the parent's metadata: a write here would store an
            # object instead. Where no parent object exists the key is an ordinary one.
            raise MethodNotAllowed("metadata is written with the object: PUT the object with "
                                   f"{METADATA_HEADER}", allow="GET, HEAD")
        if "CONTENT_LENGTH" not in bottle.request.environ:
            # Without it an HTTP/1.0 body is read as empty and the object stored as 0 bytes.
            raise LengthRequired("a PUT needs Content-Length (or Transfer-Encoding: chunked)")
        length = bottle.request.content_length
        if length > max_body:
            raise TooLarge(f"request body of {length} bytes is larger than the limit of {max_body} bytes")
        metadata = _request_metadata()
        content_type = _content_type()
        body = _LimitedReader(bottle.request.environ["wsgi.input"], max(length, 0))
        condition = conditional.write_condition(bottle.request.environ)
        blob = service.put(key, cast(BinaryIO, body), metadata, content_type=content_type, condition=condition)
        location = f"{OBJECTS}/{quote(key, safe='/')}"
        return json_response(blob, 201, {"Location": location})

    @app.delete(OBJECTS + "/<key:path>")
    def delete_object(key: str):
        deleted = service.delete(route_key(key))
        # 204 either way, as on S3; the header tells the CLI whether there was an object.
        return bottle.HTTPResponse(status=204, headers={DELETED_HEADER: "true" if deleted else "false"})


OPENAPI = STORAGE_PATHS
