"""What every route module shares: JSON responses, the one error shape, and the
parsing of keys and query values taken from a request.

Routes raise the project's errors (``factflow_storage.errors``); ``ErrorPlugin`` and
``error_handler`` turn every exception into ``{"detail", "error_code", "timestamp"}``
with the error's status, so a client never sees bottle's HTML page or a traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import bottle
import orjson

from factflow_storage import metadata as clock
from factflow_storage.api_paths import allowed_on
from factflow_storage.errors import BadRequest, InvalidKey, StorageError, TooLarge
from factflow_storage.keys import validate_key
from factflow_storage.service import json_bytes

JSON_TYPE = "application/json"
# Where a route leaves the Last-Modified of a 304 for the WSGI wrapper (bottle drops it).
LAST_MODIFIED_ENV = "factflow.last_modified"
# bottle raises these itself (no route, wrong method, unreadable body); their codes.
_BOTTLE_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                       413: "too_large", 500: "internal_error"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> bottle.HTTPResponse:
    """orjson bytes with ``Content-Type: application/json`` (bottle's JSON plugin wants str)."""
    body = json_bytes(value)
    response = bottle.HTTPResponse(body=body, status=status)
    response.set_header("Content-Type", JSON_TYPE)
    response.set_header("Content-Length", str(len(body)))
    for name, value_ in (headers or {}).items():
        response.set_header(name, value_)
    return response


def error_body(status: int, error_code: str, detail: str) -> dict[str, Any]:
    return {"detail": detail, "error_code": error_code, "timestamp": clock.now_rfc3339()}


def error_response(status: int, error_code: str, detail: str,
                   headers: Mapping[str, str] | None = None) -> bottle.HTTPResponse:
    return json_response(error_body(status, error_code, detail), status, headers)


def exception_response(err: BaseException) -> bottle.HTTPResponse:
    """The JSON answer to any exception; unknown ones are logged, never shown."""
    if isinstance(err, StorageError):
        headers = {}
        allow = getattr(err, "allow", None)
        if allow:
            headers["Allow"] = allow
        retry_after = getattr(err, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        etag = getattr(err, "etag", None)
        if etag:
            headers["ETag"] = etag
        return error_response(err.status, err.error_code, " ".join(str(err).split()), headers)
    errors = bottle.request.environ.get("wsgi.errors", sys.stderr)
    errors.write("".join(traceback.format_exception(err)))
    errors.flush()
    return error_response(500, "internal_error", "internal server error")


class ErrorPlugin:
    """Wraps every route so a raised project error becomes its JSON answer."""

    name = "factflow_errors"
    api = 2

    def apply(self, callback: Callable, route: bottle.Route) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except Exception as err:  # noqa: BLE001 - the one place that renders every error
                return exception_response(err)

        return wrapper


def error_handler(res: bottle.HTTPError) -> bottle.HTTPResponse:
    """bottle's own errors (no such route, wrong method) and anything raised outside a
    route (a hook, the first chunk of a stream), in the same JSON shape."""
    if res.exception is not None and isinstance(res.exception, StorageError):
        return exception_response(res.exception)
    status = res.status_code
    if status >= 500 and res.exception is not None:
        return error_response(500, "internal_error", "internal server error")
    headers = {"Allow": res.get_header("Allow")} if res.get_header("Allow") else None
    if headers and status == 405 and bottle.request.path.endswith("/metadata"):
        # The object route matches these paths too, but for them only reads are meant.
        headers["Allow"] = "GET, HEAD"
    if headers and status == 405:
        headers["Allow"] = allowed_on(bottle.request.path) or headers["Allow"]
    detail = res.body if isinstance(res.body, str) and res.body else bottle.HTTP_CODES.get(status, "error")
    if status == 404:
        detail = f"no route {bottle.request.method} {bottle.request.path}"
    elif status == 405:
        detail = f"method {bottle.request.method} not allowed on {bottle.request.path}"
    return error_response(status, _BOTTLE_ERROR_CODES.get(status, "http_error"), str(detail), headers)


# -- request parsing ---------------------------------------------------------

def route_key(path_part: str) -> str:
    """The object key named by a URL path part, decoded once and validated.

    waitress percent-decodes the path, so ``%2e%2e``, ``%2f`` and ``%00`` arrive as
    ``..``, ``/`` and NUL and meet the key rules like any other character. bottle would
    silently drop bytes that are not UTF-8, turning one key into another, so the raw path
    is checked strictly first.
    """
    check_raw_path()
    return validate_key(path_part)


def check_raw_path() -> None:
    """Refuse a request path that is not UTF-8 once percent-decoded, or holds a control
    character: bottle's route patterns end in ``$``, which also matches before a final
    newline, so ``a%0a`` would otherwise reach the route as the key ``a``."""
    raw = bottle.request.environ.get("bottle.raw_path")
    if raw is None:
        return
    try:
        raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise InvalidKey("invalid key: the path is not valid UTF-8") from None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise InvalidKey("invalid key: the path contains a NUL or control character")


def refuse_bad_paths() -> None:
    """A ``before_request`` hook: a path no route could take apart safely is 400 at once."""
    try:
        check_raw_path()
    except InvalidKey as err:
        raise exception_response(err) from None


def query(name: str, default: str | None = None) -> str | None:
    """A query value decoded as UTF-8 (bottle's ``request.query`` decodes it as latin-1)."""
    value = bottle.request.query.getunicode(name, default=None, encoding="utf-8")
    if value is None and name in bottle.request.query:
        raise BadRequest(f"query parameter {name!r} is not valid UTF-8")
    return default if value is None else value


def query_all(name: str) -> list[str]:
    """Every value of a repeated query parameter, decoded as UTF-8 as ``query`` does."""
    try:
        return [value.encode("latin-1").decode("utf-8") for value in bottle.request.query.getall(name)]
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadRequest(f"query parameter {name!r} is not valid UTF-8") from None


def query_int(name: str, default: int) -> int:
    value = query(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, not {value!r}") from None


def query_bool(name: str, default: bool) -> bool:
    value = query(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadRequest(f"query parameter {name!r} must be true or false, not {value!r}")


def header_bytes(name: str) -> bytes | None:
    """A request header as the bytes the client sent (WSGI hands them over as latin-1)."""
    value = bottle.request.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else value.encode("latin-1")


def read_json_body(max_bytes: int = 1024 * 1024) -> Any:
    # A page may POST text/plain anywhere without a preflight: a body that says it is
    # something else is not taken as JSON (an untyped one is, for curl and scripts).
    media_type = (bottle.request.environ.get("CONTENT_TYPE") or "").partition(";")[0].strip().lower()
    if media_type and media_type != JSON_TYPE \
            and not (media_type.startswith("application/") and media_type.endswith("+json")):
        from factflow_storage.server.errors import UnsupportedMediaType

        raise UnsupportedMediaType(f"the body must be sent as {JSON_TYPE}, not {media_type}")
    length = bottle.request.content_length
    if length > max_bytes:
        raise TooLarge(f"request body larger than {max_bytes} bytes")
    raw = bottle.request.environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None
