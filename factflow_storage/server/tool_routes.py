"""``/api/v1/storage/du``, ``/lineage`` and ``/diff``: the operator tools over HTTP, so
``--api`` mode prints what direct mode prints. ``diff`` streams NDJSON, one row a line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bottle
import orjson

from factflow_storage.api_paths import DIFF, DU, LINEAGE
from factflow_storage.errors import BadRequest, StorageError
from factflow_storage.server.http import error_body, json_response, query, query_bool, query_int
from factflow_storage.server.openapi_paths import errors, query_param
from factflow_storage.service import StorageService

NDJSON_TYPE = "application/x-ndjson"


def _optional_int(name: str) -> int | None:
    return None if query(name) is None else query_int(name, 0)


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


def install(app: bottle.Bottle, service: StorageService) -> None:
    @app.get(DU)
    def du():
        return json_response(service.du(query("prefix", "") or "", execution_id=query("execution_id") or None,
                                        depth=_optional_int("depth")))

    @app.get(LINEAGE)
    def lineage():
        return json_response(service.lineage(_required("key"), depth=_optional_int("depth"),
                                             children=query_bool("children", False)))

    @app.get(DIFF)
    def diff():
        rows = service.diff(_required("a"), _required("b"), route_id=query("route_id") or None,
                            content=query_bool("content", False))
        bottle.response.set_header("Content-Type", NDJSON_TYPE)
        return _ndjson(rows)


_ERRORS = errors(400, 404)


_GROUP = {"type": "object", "required": ["prefix", "objects", "bytes"],
          "properties": {"prefix": {"type": "string"}, "objects": {"type": "integer"}, "bytes": {"type": "integer"}}}
_NODE: dict[str, Any] = {"type": "object", "required": ["key"], "additionalProperties": True,
         "properties": {"key": {"type": "string"}, "parents": {"type": "array", "items": {"type": "object"}},
                        "missing": {"type": "boolean"}, "cycle": {"type": "boolean"},
                        "reference": {"type": "boolean"}, "truncated": {"type": "boolean"}}}

OPENAPI: dict[str, Any] = {
    DU: {"get": {
        "summary": "Objects and bytes per route and stage (or per prefix level), with totals",
        "operationId": "storageDu",
        "parameters": [query_param("prefix", {"type": "string"}, "Key prefix (not with execution_id)"),
                       query_param("execution_id", {"type": "string"}, "One execution's objects"),
                       query_param("depth", {"type": "integer", "minimum": 1, "maximum": 16},
                              "Prefix levels per group (2 under an execution, 1 elsewhere)")],
        "responses": {"200": {"description": "Sizes", "content": {"application/json": {"schema": {
            "type": "object", "required": ["prefix", "depth", "groups", "objects", "bytes"],
            "properties": {"prefix": {"type": "string"}, "depth": {"type": "integer"},
                           "groups": {"type": "array", "items": _GROUP},
                           "objects": {"type": "integer"}, "bytes": {"type": "integer"}}}}}},
                      **_ERRORS},
    }},
    LINEAGE: {"get": {
        "summary": "An object's ancestors from its lineage metadata, and optionally its children",
        "operationId": "storageLineage",
        "parameters": [query_param("key", {"type": "string", "minLength": 1}, "The object key", True),
                       query_param("depth", {"type": "integer", "minimum": 0, "maximum": 100}, "Levels of ancestors"),
                       query_param("children", {"type": "boolean"}, "Also the objects that name KEY")],
        "responses": {"200": {"description": "The lineage tree", "content": {"application/json": {"schema": {
            **_NODE, "properties": {**_NODE["properties"],
                                    "children": {"type": "array", "items": {"type": "string"}}}}}}},
                      **_ERRORS},
    }},
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
