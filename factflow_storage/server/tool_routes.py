"""``/api/v1/storage/diff``: two executions compared over HTTP, streamed as NDJSON (one
row a line), so ``--api`` mode prints what direct mode prints. The other operator tools
are declared operations (``factflow_storage.operations.catalog``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bottle
import orjson

from factflow_storage.api_paths import DIFF
from factflow_storage.errors import BadRequest, StorageError
from factflow_storage.operations import errors, query_param
from factflow_storage.server.context import AppContext
from factflow_storage.server.http import error_body, query, query_bool

NDJSON_TYPE = "application/x-ndjson"


def _required(name: str) -> str:
    value = query(name)
    if not value:
        raise BadRequest(f"query parameter {name!r} is required")
    return value


def _ndjson(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    option = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    try:
        for row in rows:
            yield orjson.dumps(row, option=option)
    except StorageError as err:
        # The status line is gone by now: the error travels as the last line instead.
        yield orjson.dumps({"error": error_body(err.status, err.error_code, " ".join(str(err).split()))},
                           option=option)


def install(app: bottle.Bottle, context: AppContext) -> None:
    @app.get(DIFF)
    def diff():
        rows = context.service.diff(_required("a"), _required("b"), route_id=query("route_id") or None,
                                    content=query_bool("content", False))
        bottle.response.set_header("Content-Type", NDJSON_TYPE)
        return _ndjson(rows)


_ERRORS = errors(400, 404)


OPENAPI: dict[str, Any] = {
    DIFF: {"get": {
        "summary": "Compare two executions key by key (NDJSON rows, then a summary line)",
        "operationId": "storageDiff",
        "parameters": [query_param("a", {"type": "string", "minLength": 1}, "Execution A", True),
                       query_param("b", {"type": "string", "minLength": 1}, "Execution B", True),
                       query_param("route_id", {"type": "string"}, "Only this route"),
                       query_param("content", {"type": "boolean"}, "A unified diff of differing text objects")],
        "responses": {"200": {"description": "One JSON row per relative key, then {\"summary\": counts}",
                              "content": {NDJSON_TYPE: {"schema": {"type": "object"}}}},
                      **_ERRORS},
    }},
}
