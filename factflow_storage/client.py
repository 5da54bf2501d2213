"""The HTTP side of the CLI's ``--api`` mode.

``ApiClient`` speaks to a ``factflow serve``: it turns error answers back into the
project's errors (same class, same message), so a command fails over HTTP exactly as it
fails in direct mode. ``RemoteService`` offers the methods of ``StorageService`` on top
of it, which is how every command prints the same bytes in both modes.
"""

from __future__ import annotations

import inspect
import logging
import ssl
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, TypeVar, cast
from urllib.parse import quote, urlencode, urlsplit

import orjson
import urllib3

from factflow_storage import api_paths, errors
from factflow_storage.api_paths import OBJECTS
from factflow_storage.api_response import ApiResponse
from factflow_storage.errors import ConfigError, StorageError, Unavailable
from factflow_storage.keys import execution_prefix, validate_key, validate_segment
from factflow_storage.metadata import check_metadata_size
from factflow_storage.operations import Operation, catalog
from factflow_storage.operations.results import (ArchiveJob, Browse, CopySummary, DeletionPlan, Execution,
                                                 ExecutionPage, Health, ListPage)
from factflow_storage.protocol import ObjectInfo, ObjectStream, WriteCondition
from factflow_storage.service import DEFAULT_PAGE, MAX_PAGE, encode_cursor, make_document

if TYPE_CHECKING:
    from factflow_storage.watch.events import Event

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0
METADATA_HEADER = "X-Factflow-Metadata"
_MAX_ERROR_BODY = 64 * 1024
POOL_SIZE = 16
# Executions per request when a whole list streams: the server's largest page.
EXECUTION_PAGE = 1000
# Retried only where sending twice cannot do harm: a request never sent (connect
# errors) or an idempotent one whose answer never came. Statuses are not retried: the
# server's answer stands.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY = urllib3.Retry(total=3, connect=3, read=2, status=0, redirect=0, other=0, backoff_factor=0.1,
                      allowed_methods=_IDEMPOTENT, raise_on_status=False, raise_on_redirect=False)
_BY_STATUS: dict[int, type[StorageError]] = {
    400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.AccessDenied, 404: errors.NotFound,
    409: errors.Conflict, 413: errors.TooLarge, 416: errors.InvalidRange, 503: errors.Unavailable,
}

TOKEN_MISSING = "set FACTFLOW_API_TOKEN (or api_token in the config file) to the server's token"
TOKEN_WRONG = "FACTFLOW_API_TOKEN (or api_token in the config file) is not the server's token"

Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | None
P = ParamSpec("P")
R = TypeVar("R")


def _error_class(error_code: str | None, status: int) -> type[StorageError]:
    pending: list[type[StorageError]] = [StorageError]
    while pending:
        cls = pending.pop()
        if error_code and cls.error_code == error_code:
            return cls
        pending.extend(cls.__subclasses__())
    return _BY_STATUS.get(status, StorageError)


def _quoted(tag: str) -> str:
    return tag if tag == "*" else f'"{tag}"'


def _query(params: Params) -> str:
    pairs = params.items() if isinstance(params, Mapping) else (params or ())
    shown = []
    for name, value in pairs:
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        shown.append((name, str(value)))
    return urlencode(shown)


def _segment(execution_id: str) -> str:
    return validate_segment(execution_id, "execution id")


def object_path(key: str) -> str:
    return f"{OBJECTS}/{quote(key, safe='/')}"


class ApiClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout: float | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid API URL {base_url!r}: expected http://HOST:PORT")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self.token = token
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout

    @cached_property
    def _pool(self) -> urllib3.PoolManager:
        # One pool per client: connections are kept alive and reused, and TLS is set up
        # once (the system's trust store, as http.client used).
        return urllib3.PoolManager(
            num_pools=2, maxsize=POOL_SIZE, retries=RETRY,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            ssl_context=ssl.create_default_context() if self._https else None)

    def request(self, method: str, path: str, *, params: Params = None, json: Any = None,
                body: bytes | BinaryIO | Iterable[bytes] | None = None,
                headers: Mapping[str, str | bytes] | None = None) -> ApiResponse:
        """Send one request; the answer comes back unread (callers may stream it)."""
        target = self._base_path + path
        if query := _query(params):
            target += "?" + query
        # Any: urllib3 sends bytes values as they are (UTF-8 metadata), though typed str.
        sent: dict[str, Any] = {"Accept": "application/json, */*"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if json is not None:
            body = orjson.dumps(json)
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        retries = RETRY
        if body is not None and not isinstance(body, bytes):
            # A stream cannot be sent again once read: retry only what was never sent.
            retries = RETRY.new(read=0)
        try:
            raw = self._pool.request(method, self._origin + target, body=body, headers=sent,
                                     retries=retries, preload_content=False, redirect=False)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            reason = _reason(err)
            raise Unavailable(f"cannot reach the factflow API at {self.base_url}: {reason}") from None
        response = ApiResponse(raw, self.base_url)
        log.debug("%s %s -> %s", method, target, response.status)
        if response.status >= 400:
            self._raise(method, response)
        return response

    def _raise(self, method: str, response: ApiResponse) -> None:
        try:
            raw = response.read(_MAX_ERROR_BODY) if method != "HEAD" else b""
        except StorageError:
            raw = b""
        finally:
            response.close()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        detail = payload.get("detail") or f"HTTP {response.status} {response.reason}"
        if response.status == 401:
            # The server speaks HTTP; the user of this client sets a variable.
            detail = f"{detail}; {TOKEN_WRONG if self.token else TOKEN_MISSING}"
        raise _error_class(payload.get("error_code"), response.status)(str(detail))

    def get_json(self, path: str, params: Params = None) -> Any:
        return self.read_json(self.request("GET", path, params=params))

    def send_json(self, method: str, path: str, json: Any) -> Any:
        return self.read_json(self.request(method, path, json=json))

    def read_json(self, response: ApiResponse) -> Any:
        """The whole body of ``response`` as JSON (None when empty); the connection goes
        back to the pool."""
        with response:
            raw = response.read()
        return orjson.loads(raw) if raw else None

    def with_timeout(self, timeout: float) -> ApiClient:
        """A client of the same server with another time limit (and a pool of its own)."""
        return ApiClient(self.base_url, token=self.token, timeout=timeout)

    def close(self) -> None:
        if "_pool" in self.__dict__:
            self._pool.clear()


def _reason(err: BaseException) -> str:
    # MaxRetryError wraps the error of the last attempt, which is what a user can act on.
    inner = getattr(err, "reason", None)
    if isinstance(inner, BaseException):
        err = inner
    return str(err) or type(err).__name__


class RemoteObjectStream(ObjectStream):
    """An object read over HTTP; its metadata is fetched when first asked for."""

    def __init__(self, info: ObjectInfo, body: BinaryIO, start: int, length: int, fetch_metadata):
        self._fetch_metadata = fetch_metadata
        self._metadata: dict[str, Any] | None = None
        super().__init__(info, {}, body, start, length)

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = self._fetch_metadata()
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata = value or None


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _content_range(value: str | None) -> tuple[int, int] | None:
    """``bytes START-END/SIZE`` -> (start, size)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, size = value[6:].partition("/")
    return int(span.partition("-")[0]), int(size)


class RemoteService:
    """``StorageService`` over HTTP; ``.api`` for features with endpoints of their own."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float | None = None):
        self.api = ApiClient(base_url, token=token, timeout=timeout)

    # -- listings ------------------------------------------------------------

    def list_page(self, prefix: str = "", *, delimiter: str | None = None, route_id: str | None = None,
                  stage: str | None = None, extension: str | Sequence[str] | None = None,
                  include_metadata: bool = True, limit: int = DEFAULT_PAGE, cursor: str | None = None,
                  offset: int = 0, start_after: str | None = None, contains: str | None = None,
                  match: str | None = None) -> ListPage:
        if extension is not None and not isinstance(extension, str):
            extension = ",".join(extension)
        return self.api.get_json(OBJECTS, {
            "prefix": prefix, "delimiter": delimiter, "route_id": route_id, "stage": stage,
            "extension": extension, "include_metadata": include_metadata, "limit": limit,
            "cursor": cursor, "offset": offset or None, "start_after": start_after,
            "contains": contains, "match": match})

    def _rows(self, prefix: str, limit: int | None, include_metadata: bool, delimiter: str | None = None,
              start_after: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every listing entry page after page: objects as rows, prefixes as ``{"prefix"}``."""
        cursor = encode_cursor(start_after) if start_after else None
        remaining = limit
        while remaining is None or remaining > 0:
            size = MAX_PAGE if remaining is None else min(MAX_PAGE, remaining)
            page = self.list_page(prefix, delimiter=delimiter, include_metadata=include_metadata,
                                  limit=size, cursor=cursor, **filters)
            for common in page["common_prefixes"]:
                yield {"prefix": common}
            yield from page["objects"]
            if remaining is not None:
                remaining -= len(page["objects"]) + len(page["common_prefixes"])
            cursor = page["next_cursor"]
            if not cursor:
                return

    def list_rows(self, prefix: str = "", *, limit: int | None = None, with_metadata: bool = False,
                  **filters: Any) -> Iterator[dict[str, Any]]:
        for row in self._rows(prefix, limit, with_metadata, **filters):
            row.pop("content_type", None)  # a CLI row carries only what direct mode gives
            yield row

    def iter_objects(self, prefix: str = "", **filters: Any) -> Iterator[ObjectInfo]:
        for row in self._rows(prefix, None, False, **filters):
            yield ObjectInfo(row["key"], row["size"], _parse_time(row["last_modified"]))

    def execution_objects(self, execution_id: str, **filters: Any) -> Iterator[ObjectInfo]:
        return self.iter_objects(execution_prefix(execution_id), **filters)

    def browse(self, prefix: str = "", *, start_after: str | None = None) -> Browse:
        common_prefixes, objects = [], []
        for row in self._rows(prefix, None, False, delimiter="/", start_after=start_after):
            if "prefix" in row:
                common_prefixes.append(row["prefix"])
            else:
                objects.append(row)
        return {"prefix": prefix, "common_prefixes": common_prefixes, "objects": objects}

    # -- objects -------------------------------------------------------------

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        validate_key(key)
        headers = {}
        if start or length is not None:
            end = "" if length is None else str(start + max(length, 1) - 1)
            headers["Range"] = f"bytes={start}-{end}"
        # view=content: the bytes of KEY even when it ends in '/metadata' and is missing.
        response = self.api.request("GET", object_path(key), params={"view": "content"}, headers=headers)
        size = int(response.getheader("Content-Length") or 0)
        begin = 0
        span = _content_range(response.getheader("Content-Range"))
        if span is not None:
            begin, size = span
        etag = (response.getheader("ETag") or "").strip('"') or None
        modified = parsedate_to_datetime(response.getheader("Last-Modified") or "")
        info = ObjectInfo(key, size, modified, etag, response.getheader("Content-Type"))
        body_length = 0 if length == 0 else int(response.getheader("Content-Length") or 0)
        # An ApiResponse reads like a file (read, close), which is all ObjectStream asks.
        return RemoteObjectStream(info, cast(BinaryIO, response), begin, body_length, lambda: self.metadata(key))

    def metadata(self, key: str) -> dict[str, Any]:
        return self.api.get_json(object_path(validate_key(key)), {"view": "metadata"})

    def get_document(self, key: str) -> dict[str, Any]:
        # Bytes and metadata come in two requests: retry until both describe one version.
        for _ in range(5):
            with self.open(key) as stream:
                data = stream.read()
                etag = stream.info.etag
            blob = self.metadata(key)
            checksum = blob.get("checksum")
            if not checksum or not etag or checksum == f"sha256:{etag}":
                break
        return make_document(key, data, blob)

    def put(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
            *, content_type: str | None = None, condition: WriteCondition | None = None) -> dict[str, Any]:
        headers: dict[str, str | bytes] = {}
        if condition is not None and condition.if_match is not None:
            headers["If-Match"] = ", ".join(_quoted(tag) for tag in condition.if_match)
        if condition is not None and condition.if_none_match is not None:
            headers["If-None-Match"] = ", ".join(_quoted(tag) for tag in condition.if_none_match)
        if metadata is not None:
            check_metadata_size(metadata)  # refused here, before the body is sent
            # UTF-8 JSON as raw header bytes: http.client would refuse non-latin-1 text.
            headers[METADATA_HEADER] = orjson.dumps(dict(metadata))
        if content_type:
            headers["Content-Type"] = content_type
        body = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
        response = self.api.request("PUT", object_path(validate_key(key)), body=body, headers=headers)
        return self.api.read_json(response)

    def delete(self, key: str) -> bool:
        response = self.api.request("DELETE", object_path(validate_key(key)))
        response.close()
        return (response.getheader("X-Factflow-Deleted") or "true").lower() != "false"

    # -- declared operations (``factflow_storage.operations``) --------------------

    def call(self, operation: Operation[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Send ``operation`` with the arguments its ``run`` takes; its result, as typed there."""
        given = inspect.signature(operation.run).bind(None, *args, **kwargs).arguments
        path, body = operation.path, None
        query: list[tuple[str, Any]] = []
        fields: dict[str, Any] = {}
        for param in operation.params:
            value = given.get(param.keyword)
            if param.where == "path":
                path = path.replace(f"{{{param.name}}}", quote(str(value), safe=""))
            elif value is None or (value == param.default and not param.required):
                continue  # the server's default is the same
            elif param.where == "query":
                query.extend((param.name, item) for item in (value if param.type is list else [value]))
            elif param.where == "body":
                fields[param.name] = value
            else:
                body = value
        if operation.where("body"):
            body = fields
        api = self.api
        if operation.timeout is not None:
            api = api.with_timeout(max(api.timeout, operation.timeout))
        return cast(R, api.read_json(api.request(operation.method, path, params=query, json=body)))

    # -- executions ----------------------------------------------------------

    def execution(self, execution_id: str) -> Execution:
        return self.call(catalog.GET_EXECUTION, _segment(execution_id))

    def set_execution_status(self, execution_id: str, status: str, *, strict: bool = False) -> Execution:
        return self.call(catalog.SET_EXECUTION_STATUS, _segment(execution_id), status, strict=strict)

    def executions(self, *, limit: int | None = None, cursor: str | None = None,
                   status: str | Sequence[str] | None = None, since: str | None = None,
                   until: str | None = None) -> ExecutionPage:
        joined = status if isinstance(status, str) or status is None else ",".join(status)
        return self.call(catalog.LIST_EXECUTIONS, limit=limit, cursor=cursor, status=joined or None,
                         since=since, until=until)

    def iter_executions(self, *, cursor: str | None = None, status: str | Sequence[str] | None = None,
                        since: str | None = None, until: str | None = None) -> Iterator[dict[str, Any]]:
        while True:
            page = self.executions(limit=EXECUTION_PAGE, cursor=cursor, status=status, since=since, until=until)
            yield from page["executions"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- retention -------------------------------------------------------------

    def delete_executions(self, execution_ids: Sequence[str], *, confirm: bool = False,
                          force: bool = False) -> DeletionPlan:
        first, *together = [_segment(e) for e in execution_ids]
        return self.call(catalog.DELETE_EXECUTIONS, first, together, confirm=confirm, force=force)

    def copy(self, request: Mapping[str, Any]) -> CopySummary:
        return self.call(catalog.COPY, dict(request))

    def deletions(self) -> list[dict[str, Any]]:
        return self.call(catalog.DELETIONS)["deletions"]

    def watch(self, execution_ids: Sequence[str], *, route_id: str | None = None, stage: str | None = None,
              extension: str | Sequence[str] | None = None, last_event_id: str | None = None,
              timeout: float | None = None) -> Iterator[Event | None]:
        from factflow_storage.watch.sse_client import follow

        if extension is not None and not isinstance(extension, str):
            extension = ",".join(extension)
        return follow(self.api, execution_ids, route_id=route_id, stage=stage, extension=extension,
                      timeout=timeout, last_event_id=last_event_id)

    # -- operator tools ------------------------------------------------------

    def diff(self, execution_a: str, execution_b: str, *, route_id: str | None = None,
             content: bool = False) -> Iterator[dict[str, Any]]:
        # The request is sent now, so an unknown execution fails here as in direct mode.
        response = self.api.request("GET", api_paths.DIFF, params={
            "a": execution_a, "b": execution_b, "route_id": route_id, "content": content or None})
        return self._ndjson_rows(response)

    def _ndjson_rows(self, response: ApiResponse) -> Iterator[dict[str, Any]]:
        with response:
            for line in response:
                row = orjson.loads(line)
                if "error" in row and len(row) == 1:
                    error = row["error"]
                    raise _error_class(error.get("error_code"), 500)(str(error.get("detail")))
                yield row

    def prepare_archive(self, request: Mapping[str, Any]) -> ArchiveJob:
        return self.call(catalog.PREPARE_ARCHIVE, dict(request))

    def archive_status(self, job_id: str) -> ArchiveJob:
        return self.call(catalog.ARCHIVE_STATUS, job_id)

    def open_archive(self, job_id: str) -> BinaryIO:
        path = f"{api_paths.ARCHIVE}/{quote(job_id, safe='')}/download"
        return cast(BinaryIO, self.api.request("GET", path))

    def open_archive_stream(self, request: Mapping[str, Any]) -> BinaryIO:
        """The zip of ``request`` (a prepare request), sent by the server as it packs it.
        Read it to its end records: a stream the server could not finish is cut off."""
        return cast(BinaryIO, self.api.request("POST", f"{api_paths.ARCHIVE}/stream", json=dict(request)))

    def delete_archive(self, job_id: str) -> None:
        self.call(catalog.DELETE_ARCHIVE, job_id)

    def health(self) -> Health:
        return self.call(catalog.HEALTH)

    def close(self) -> None:
        self.api.close()
