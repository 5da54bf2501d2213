"""Retention over HTTP: delete executions (dry run unless ``confirm=true``), prune by age
and status, lineage dependencies and deletion records. ``DELETE`` and ``POST`` change
state, so the server's token and cross-site rules apply to them as to every write.

This module is installed before ``execution_routes``, whose ``/executions/<id:path>``
would otherwise take ``/executions/<id>/deps``; so the pipeline graph
(``/executions/<id>/graph``, read-only) is routed here too.
"""

from __future__ import annotations

from typing import Any

import bottle

from factflow_storage.api_paths import DELETIONS, EXECUTIONS, allowed_on
from factflow_storage.errors import BadRequest
from factflow_storage.executions import TERMINAL_STATUSES
from factflow_storage.server.errors import MethodNotAllowed
from factflow_storage.server.http import check_raw_path, json_response, query_all, query_bool, read_json_body
from factflow_storage.server.openapi_paths import SEGMENT_PATTERN, errors, json_answer
from factflow_storage.service import StorageService
from factflow_storage.settings import parse_duration

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"
_TERMINAL = "|".join(TERMINAL_STATUSES)
# A comma-separated list of finished statuses; empty items are ignored, none means all.
STATUS_LIST_PATTERN = rf"^[\s,]*(({_TERMINAL})[\s,]*)*$"


def refuse_sub_resource(execution_id: str) -> None:
    """In an ``<execution_id:path>`` route: a sub-resource reached with the wrong method."""
    allow = allowed_on(f"{EXECUTIONS}/{execution_id}")
    if allow is not None:
        raise MethodNotAllowed(f"{bottle.request.method} not allowed on {bottle.request.path}", allow=allow)


def _prune_request(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    older_than = body.get("older_than")
    if isinstance(older_than, str):
        try:
            older_than = parse_duration(older_than)
        except ValueError as err:
            raise BadRequest(f"older_than: {err}") from None
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
        raise BadRequest('"older_than" is required: seconds, or a duration such as "90d"')
    statuses = body.get("statuses", body.get("status"))
    if statuses is not None and not isinstance(statuses, str) and not (
            isinstance(statuses, list) and all(isinstance(status, str) for status in statuses)):
        raise BadRequest('"statuses" must be a list of strings or a comma-separated string')
    keep = body.get("keep", 0)
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise BadRequest('"keep" must be an integer')
    confirm = body.get("confirm", False)
    if not isinstance(confirm, bool):
        raise BadRequest('"confirm" must be true or false')
    return {"older_than": float(older_than), "statuses": statuses, "keep": keep, "confirm": confirm}


def install(app: bottle.Bottle, service: StorageService) -> None:
    @app.get(DELETIONS)
    def list_deletions():
        return json_response({"deletions": service.deletions()})

    @app.post(EXECUTIONS + "/prune")
    def prune():
        return json_response(service.prune(**_prune_request(read_json_body())))

    @app.get(EXECUTIONS + "/<execution_id>/deps")
    def deps(execution_id: str):
        check_raw_path()
        return json_response(service.execution_deps(execution_id))

    @app.get(EXECUTIONS + "/<execution_id>/graph")
    def graph(execution_id: str):
        check_raw_path()
        return json_response(service.execution_graph(execution_id))

    @app.delete(EXECUTIONS + "/<execution_id:path>")
    def delete_execution(execution_id: str):
        check_raw_path()
        refuse_sub_resource(execution_id)
        together = query_all("with")
        return json_response(service.delete_executions(
            [execution_id, *together], confirm=query_bool("confirm", False), force=query_bool("force", False)))


_ID_SCHEMA = {"type": "string", "minLength": 1, "pattern": SEGMENT_PATTERN}
_ID = {"name": "execution_id", "in": "path", "required": True, "schema": _ID_SCHEMA}


def _json(description: str) -> dict[str, Any]:
    return json_answer(description, {"type": "object"})


def _flag(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
            "description": description}


OPENAPI: dict[str, Any] = {
    EXECUTIONS + "/{execution_id}": {"delete": {
        "summary": "Delete an execution whole (a dry run unless confirm=true)", "operationId": "deleteExecution",
        "parameters": [_ID, _flag("confirm", "Delete; without it the answer is the plan"),
                       _flag("force", "Delete even a running execution or one a kept lineage names"),
                       {"name": "with", "in": "query", "required": False, "style": "form", "explode": True,
                        "schema": {"type": "array", "items": _ID_SCHEMA},
                        "description": "More executions deleted together (references among them do not block)"}],
        "responses": {"200": _json("The plan, or what was deleted"), **errors(400, 404, 409)}}},
    EXECUTIONS + "/prune": {"post": {
        "summary": "Delete finished executions by age and status (a dry run unless confirm is true)",
        "operationId": "pruneExecutions",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["older_than"], "properties": {
                "older_than": {"oneOf": [{"type": "number", "minimum": 0},
                                         {"type": "string", "pattern": DURATION_PATTERN}]},
                "statuses": {"nullable": True, "oneOf": [
                    {"type": "array", "items": {"type": "string", "enum": list(TERMINAL_STATUSES)}},
                                       {"type": "string", "pattern": STATUS_LIST_PATTERN,
                                        "description": "comma-separated"}]},
                "keep": {"type": "integer", "minimum": 0}, "confirm": {"type": "boolean"}}}}}},
        "responses": {"200": _json("Selected, skipped and (with confirm) deleted executions"),
                      **errors(400, 413)}}},
    EXECUTIONS + "/{execution_id}/deps": {"get": {
        "summary": "Who depends on an execution through lineage, and what it depends on",
        "operationId": "executionDeps", "parameters": [_ID],
        "responses": {"200": _json("Dependants and dependencies"), **errors(400, 404)}}},
    EXECUTIONS + "/{execution_id}/graph": {"get": {
        "summary": "An execution's pipeline: a node per route/stage with objects and bytes, an edge per "
                   "parent stage -> child stage its objects' lineage names (recorded at write time)",
        "operationId": "executionGraph", "parameters": [_ID],
        "responses": {"200": _json("Nodes and edges"), **errors(400, 404)}}},
    DELETIONS: {"get": {
        "summary": "Deletion records: who deleted which execution, when, and what went",
        "operationId": "listDeletions",
        "responses": {"200": _json("The records, newest first"), **errors()}}},
}
