"""JSON operations, each declared once: what the route, its OpenAPI entry and the
``--api`` client call are derived from.

An ``Operation`` names its HTTP method and path, its typed parameters (``Param``: where
each travels, its OpenAPI schema, its help), the OpenAPI schema of its typed result, its
error answers, and ``run``: the function that does the work, given the local service
first (or the server's archive jobs, ``on="archive_jobs"``). The rest follows from it:

- ``server.operation_routes`` installs one bottle route per declaration: it reads the
  parameters from the path, query and JSON body, checks their types, calls ``run`` and
  answers its result as JSON; the OpenAPI ``paths`` come from the same entries;
- ``StorageService.call(op, ...)`` runs it in process and ``RemoteService.call(op, ...)``
  sends the same arguments over HTTP, so a command written against ``Service.call`` works
  in both modes; ``run``'s signature types the arguments of both and its return type
  the result (a TypedDict of ``operations.results``).

Byte streams, ranges, conditional requests, server-sent events and NDJSON keep their
hand-written routes, as rclone serves file bytes beside its ``rc`` calls.

Adding a JSON operation touches four files (``storage du`` is the worked example):

1. its logic and, beside it, its declaration: ``tools/du.py`` holds ``disk_usage(service,
   prefix, *, execution_id, depth) -> DiskUsage`` (a TypedDict) and ``DU = Operation(
   "storageDu", "GET", api_paths.DU, disk_usage, params=(Param("prefix", str, ...), ...),
   summary=..., result_schema=...)``;
2. ``operations.catalog``: one import and one entry in ``OPERATIONS``, the list the
   server serves and documents;
3. its CLI command: ``app.service.call(DU, prefix, execution_id=..., depth=...)``, the
   same line in direct and ``--api`` mode (``cli/tools.py``);
4. its test, which runs the command in both modes (``tests/cli_support.modes``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

Where = Literal["path", "query", "body", "json"]
"""``body``: a field of a JSON object body; ``json``: the whole JSON body, as sent."""

ERROR = {"$ref": "#/components/responses/Error"}
JSON_TYPE = "application/json"
# An execution id as one path segment (the rules of ``keys.validate_segment``).
SEGMENT_PATTERN = r"^(?!_factflow$)(?!\.\.?$)(?!.*\.meta(\.json)?$)[^\x00-\x1f\x7f-\x9f\\/]+$"


def errors(*codes: int) -> dict[str, Any]:
    """The error answers of an operation: ``codes`` plus what any request may get."""
    return {str(code): ERROR for code in (*codes, 401, 403, 503)} | {"default": ERROR}


def json_answer(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def query_param(name: str, schema: Mapping[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


@dataclass(frozen=True)
class Param:
    """One parameter: ``name`` on the wire, ``arg`` the keyword of ``run`` it feeds.

    ``type`` is what the value must be once read (``str``, ``int``, ``float``, ``bool``,
    ``list`` of strings, ``dict`` for a whole body); ``parse``, when given, reads and
    checks the raw value instead (a duration, a cursor) and raises ``BadRequest``.
    """

    name: str
    type: type
    where: Where = "query"
    required: bool = False
    default: Any = None
    help: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)
    arg: str = ""
    parse: Callable[[Any], Any] | None = None
    aliases: tuple[str, ...] = ()
    # A path parameter that may span '/': the service, not the router, refuses a bad id.
    greedy: bool = False
    # More OpenAPI fields of the parameter (style, explode).
    openapi: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keyword(self) -> str:
        return self.arg or self.name

    def describe(self) -> dict[str, Any]:
        """The OpenAPI parameter (path or query)."""
        described: dict[str, Any] = {"name": self.name, "in": self.where,
                                     "required": self.required or self.where == "path",
                                     "schema": dict(self.schema)}
        if self.help:
            described["description"] = self.help
        return described | dict(self.openapi)

    def property_schema(self) -> dict[str, Any]:
        """The schema of a body field."""
        return {**self.schema, "description": self.help} if self.help else dict(self.schema)


@dataclass(frozen=True)
class Operation(Generic[P, R]):
    operation_id: str
    method: str
    path: str
    run: Callable[Concatenate[Any, P], R]
    params: tuple[Param, ...] = ()
    summary: str = ""
    result_description: str = ""
    result_schema: Mapping[str, Any] = field(default_factory=dict)
    errors: Mapping[str, Any] = field(default_factory=errors)
    # What ``run`` takes first: the storage service or the server's archive jobs.
    on: Literal["service", "archive_jobs"] = "service"
    body_required: bool = True
    closed_body: bool = False  # a body field no parameter names is refused
    max_body: int = 1024 * 1024
    # Fields an unauthenticated caller sees when a token is in force (None: no anonymous use).
    public: tuple[str, ...] | None = None
    # Seconds the client waits at least for the answer (long-running operations).
    timeout: float | None = None
    more_responses: Mapping[str, Any] = field(default_factory=dict)

    def invoke(self, target: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``run`` on ``target``. A ``run`` declared as a method (``StorageService.du``) is
        looked up on ``target``, so a subclass's own version is the one called."""
        if self.run.__qualname__ != self.run.__name__:
            method: Callable[P, R] = getattr(target, self.run.__name__)
            return method(*args, **kwargs)
        return self.run(target, *args, **kwargs)

    def where(self, *places: Where) -> tuple[Param, ...]:
        return tuple(param for param in self.params if param.where in places)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI operation object."""
        entry: dict[str, Any] = {"summary": self.summary, "operationId": self.operation_id}
        if described := [param.describe() for param in self.where("path", "query")]:
            entry["parameters"] = described
        if whole := self.where("json"):
            entry["requestBody"] = self._request_body(dict(whole[0].schema))
        elif fields := self.where("body"):
            schema: dict[str, Any] = {"type": "object"}
            if required := [param.name for param in fields if param.required]:
                schema["required"] = required
            if self.closed_body:
                schema["additionalProperties"] = False
            schema["properties"] = {param.name: param.property_schema() for param in fields}
            entry["requestBody"] = self._request_body(schema)
        entry["responses"] = {"200": json_answer(self.result_description, self.result_schema),
                              **self.more_responses, **self.errors}
        if self.public is not None:
            entry["security"] = [{}]
        return entry

    def _request_body(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": self.body_required, "content": {JSON_TYPE: {"schema": schema}}}
