"""A JSON operation declared once is served, documented and called in both modes.

``ECHO`` is declared here the way a new operation is (its logic, its declaration), then
served by the generic installer over real waitress and called through ``RemoteService``
and ``StorageService`` alike; the catalog's own operations answer the same in process
and over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypedDict

import pytest

from factflow_storage.client import RemoteService
from factflow_storage.errors import BadRequest, StorageError
from factflow_storage.operations import Operation, Param, errors
from factflow_storage.operations import catalog
from factflow_storage.server.app import app_for, make_context
from factflow_storage.server.operation_routes import handler, route_rule
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server, running_wsgi


class Echo(TypedDict):
    name: str
    times: int
    loud: bool
    tags: list[str]
    note: str
    ratio: float | None


def echo(service: StorageService, name: str, times: int = 1, *, loud: bool = False, tags: Sequence[str] = (),
         note: str, ratio: float | None = None) -> Echo:
    return {"name": name.upper() if loud else name, "times": times, "loud": loud, "tags": list(tags),
            "note": note, "ratio": ratio}


ECHO = Operation(
    "echo", "POST", "/api/v1/test/echo/{name}", echo, params=(
        Param("name", str, "path", schema={"type": "string"}),
        Param("times", int, default=1, schema={"type": "integer"}, help="How often"),
        Param("loud", bool, default=False, schema={"type": "boolean"}),
        Param("tag", list, arg="tags", schema={"type": "array", "items": {"type": "string"}},
              openapi={"explode": True}),
        Param("note", str, "body", required=True, schema={"type": "string"}),
        Param("ratio", float, "body", schema={"type": "number"})),
    summary="Echo the arguments", result_description="The arguments", result_schema={"type": "object"},
    errors=errors(400))


@contextmanager
def serving(service: StorageService, operation: Operation) -> Iterator[str]:
    context = make_context(service)
    app = app_for(context)
    app.route(route_rule(operation), operation.method, handler(operation, context))
    with running_wsgi(app) as url:
        yield url


def test_a_declared_operation_is_one_call_in_both_modes(file_storage):
    with file_storage.open() as provider, serving(StorageService(provider), ECHO) as url:
        local, remote = StorageService(provider), RemoteService(url)
        for args, kwargs in [(("a b", 3), {"loud": True, "tags": ["x", "y"], "note": "ü", "ratio": 2}),
                             (("plain",), {"note": ""})]:
            assert remote.call(ECHO, *args, **kwargs) == local.call(ECHO, *args, **kwargs)
        assert remote.call(ECHO, "a b", 3, loud=True, note="n", ratio=2)["ratio"] == 2.0
        with pytest.raises(BadRequest, match='"ratio" must be a number'):
            remote.call(ECHO, "x", note="n", ratio="high")  # type: ignore[arg-type]
        missing = http_request(url, "POST", "/api/v1/test/echo/x?times=2", body=b"{}",
                               headers={"Content-Type": "application/json"})
        assert missing.status == 400 and missing.json()["detail"] == '"note" is required'
        assert set(missing.json()) == {"detail", "error_code", "timestamp"}
        bad_int = http_request(url, "POST", "/api/v1/test/echo/x?times=two", body=b'{"note": "n"}')
        assert bad_int.status == 400 and bad_int.json()["error_code"] == "bad_request"


def test_the_declaration_is_its_openapi_entry():
    entry = ECHO.openapi()
    assert route_rule(ECHO) == "/api/v1/test/echo/<name>"
    assert [(p["name"], p["in"], p["required"]) for p in entry["parameters"]] == [
        ("name", "path", True), ("times", "query", False), ("loud", "query", False), ("tag", "query", False)]
    assert entry["parameters"][3]["explode"] is True
    assert entry["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object", "required": ["note"],
        "properties": {"note": {"type": "string"}, "ratio": {"type": "number"}}}
    assert entry["responses"]["200"]["description"] == "The arguments" and "400" in entry["responses"]


def test_the_catalog_answers_alike_in_process_and_over_http(file_storage):
    with file_storage.open() as provider:
        local = StorageService(provider)
        local.put("executions/e1/r/s/a.json", b"{}")
        local.put("executions/e2/r/s/b.json", b"[]", {"lineage": ["executions/e1/r/s/a.json"]})
        local.set_execution_status("e1", "completed")
        with running_server(local) as url:
            remote = RemoteService(url)
            for operation, args, kwargs in [
                    (catalog.HEALTH, (), {}),
                    (catalog.DU, ("executions/",), {"depth": 2}),
                    (catalog.LINEAGE, ("executions/e2/r/s/b.json",), {"children": True}),
                    (catalog.LIST_EXECUTIONS, (), {"limit": 1}),
                    (catalog.GET_EXECUTION, ("e1",), {}),
                    (catalog.EXECUTION_DEPS, ("e1",), {}),
                    (catalog.EXECUTION_GRAPH, ("e2",), {}),
                    (catalog.DELETIONS, (), {}),
                    (catalog.FSCK, ("executions/",), {"grace": 0.0}),
                    (catalog.DELETE_EXECUTIONS, ("e2",), {}),
                    (catalog.PRUNE, (), {"older_than": 0.0, "statuses": ["completed"]})]:
                assert remote.call(operation, *args, **kwargs) == local.call(operation, *args, **kwargs), operation
            with pytest.raises(StorageError) as refused:
                remote.call(catalog.GET_EXECUTION, "nope")
            assert refused.value.status == 404
        with pytest.raises(BadRequest, match="archive jobs are served by"):
            local.call(catalog.ARCHIVE_STATUS, "job")
