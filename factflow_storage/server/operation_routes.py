"""The routes of the declared JSON operations (``factflow_storage.operations.catalog``),
installed by one generic handler: read each parameter where it travels, check its type,
call the operation, answer its result as JSON. Their OpenAPI ``paths`` come from the
same declarations."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import bottle

from factflow_storage.api_paths import allowed_on
from factflow_storage.errors import BadRequest
from factflow_storage.operations import Operation, Param
from factflow_storage.operations.catalog import OPERATIONS, ArchiveJobsApi
from factflow_storage.server.auth import AUTHENTICATED
from factflow_storage.server.context import AppContext
from factflow_storage.server.errors import MethodNotAllowed
from factflow_storage.server.http import (check_raw_path, json_response, query, query_all, query_bool,
                                          query_int, read_json_body)
from factflow_storage.service import StorageService

_KINDS: dict[type, str] = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
                           list: "a list of strings", dict: "a JSON object"}


def route_rule(operation: Operation[..., Any]) -> str:
    """The bottle rule of an OpenAPI path: ``{name}`` becomes ``<name>`` (``<name:path>``
    for a greedy parameter)."""
    greedy = {param.name for param in operation.where("path") if param.greedy}
    return re.sub(r"\{(\w+)\}", lambda m: f"<{m[1]}:path>" if m[1] in greedy else f"<{m[1]}>", operation.path)


def _from_query(param: Param) -> Any:
    if param.type is bool:
        return query_bool(param.name, param.default)
    if param.type is int:
        return None if query(param.name) is None else query_int(param.name, 0)
    if param.type is list:
        return query_all(param.name) or None
    value = query(param.name)
    if value == "" and "format" not in param.schema:
        value = None  # an empty filter is no filter; an empty time is a bad time (the service's 400)
    if value is None and param.required:
        raise BadRequest(f"query parameter {param.name!r} is required")
    return value


def _checked(param: Param, value: Any) -> Any:
    """A JSON body value, of the parameter's type."""
    if param.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    fits = isinstance(value, param.type) and not (param.type is int and isinstance(value, bool))
    if fits and param.type is list:
        fits = all(isinstance(item, str) for item in value)
    if not fits:
        raise BadRequest(f'"{param.name}" must be {_KINDS[param.type]}')
    return value


def _from_body(operation: Operation[..., Any]) -> dict[str, Any]:
    if not operation.body_required and bottle.request.content_length <= 0:
        body: Any = {}
    else:
        body = read_json_body(operation.max_body)
    if whole := operation.where("json"):
        return {whole[0].keyword: body}
    fields = operation.where("body")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if operation.closed_body and (unknown := set(body) - {param.name for param in fields}):
        raise BadRequest(f"unknown fields in the body: {', '.join(sorted(unknown))}; "
                         f"it takes {', '.join(param.name for param in fields)}")
    values = {}
    for param in fields:
        sent = [name for name in (param.name, *param.aliases) if name in body]
        if not sent:
            if param.required:
                raise BadRequest(f'"{param.name}" is required')
            continue
        value = body[sent[0]]
        if value is None and param.schema.get("nullable"):
            continue
        values[param.keyword] = param.parse(value) if param.parse else _checked(param, value)
    return values


def handler(operation: Operation[..., Any], context: AppContext) -> Callable[..., bottle.HTTPResponse]:
    # Typed so mypy holds the server's archive jobs to what the declarations call on them.
    target: StorageService | ArchiveJobsApi = \
        context.archive_jobs if operation.on == "archive_jobs" else context.service

    def handle(**path_values: str) -> bottle.HTTPResponse:
        arguments: dict[str, Any] = {}
        if path_values:
            check_raw_path()
            allow = allowed_on(bottle.request.path)
            if allow is not None and bottle.request.method not in allow.split(", "):
                # a sub-resource (``/executions/prune``) a greedy id route matched too
                raise MethodNotAllowed(f"{bottle.request.method} not allowed on {bottle.request.path}", allow=allow)
            for param in operation.where("path"):
                value = path_values[param.name]
                arguments[param.keyword] = param.parse(value) if param.parse else value
        for param in operation.where("query"):
            value = _from_query(param)
            if value is not None:
                arguments[param.keyword] = param.parse(value) if param.parse and isinstance(value, str) else value
        if operation.where("body", "json"):
            arguments.update(_from_body(operation))
        result = operation.invoke(target, **arguments)
        if operation.public is not None and not bottle.request.environ.get(AUTHENTICATED, True):
            # Public with a token in force: what it may tell anyone, not what it serves.
            result = {name: result[name] for name in operation.public if name in result}
        return json_response(result)

    return handle


def install(app: bottle.Bottle, context: AppContext) -> None:
    for operation in OPERATIONS:
        app.route(route_rule(operation), operation.method, handler(operation, context))


OPENAPI: dict[str, Any] = {}
for _operation in OPERATIONS:
    OPENAPI.setdefault(_operation.path, {})[_operation.method.lower()] = _operation.openapi()
