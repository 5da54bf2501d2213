"""The OpenAPI document names each archive job the same way, with the statuses a job
really takes (read from the code that sets them), and one ``ArchiveJob`` schema."""

from __future__ import annotations

from factflow_storage.archive import jobs
from factflow_storage.executions import STATUSES
from factflow_storage.server.app import ROUTE_MODULES
from factflow_storage.server.openapi import document

ARCHIVE = "/api/v1/content/archive"


def test_archive_job_answers_share_one_schema_with_the_real_statuses():
    doc = document(list(ROUTE_MODULES))
    schema = doc["components"]["schemas"]["ArchiveJob"]
    assert set(schema["properties"]["status"]["enum"]) == {jobs.PREPARING, jobs.READY, jobs.FAILED, jobs.CANCELLED}
    assert {"total", "processed", "bytes_packed", "error", "file_size"} <= set(schema["properties"])
    for path, method in ((ARCHIVE + "/prepare", "post"), (ARCHIVE + "/{job}/status", "get"),
                         (ARCHIVE + "/{job}", "delete")):
        answer = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/ArchiveJob"}, path
    body = doc["paths"][ARCHIVE + "/prepare"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "keys" in body["properties"]


def test_execution_statuses_come_from_the_records_module():
    doc = document(list(ROUTE_MODULES))
    assert doc["components"]["schemas"]["Execution"]["properties"]["status"]["enum"] == list(STATUSES)
    put = doc["paths"]["/api/v1/executions/{execution_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["properties"]["status"]["enum"] \
        == list(STATUSES)
