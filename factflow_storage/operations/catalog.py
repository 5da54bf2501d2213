"""Every JSON operation of the HTTP API, declared once (see ``factflow_storage.operations``).

``OPERATIONS`` is what the server serves, in the order its routes are tried: an
execution's ``/deps`` and ``/graph`` come before ``/executions/{execution_id}``, whose id
may span segments (so an id with '/' is refused by the service as a bad id, not missed
by the router).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from factflow_storage import api_paths
from factflow_storage.api_paths import ARCHIVE, EXECUTIONS
from factflow_storage.errors import BadRequest
from factflow_storage.executions import STATUSES, TERMINAL_STATUSES
from factflow_storage.keys import validate_segment
from factflow_storage.operations import ERROR, SEGMENT_PATTERN, Operation, Param, errors, json_answer, ref
from factflow_storage.operations.results import ArchiveJob, DeletionPlan, Deletions
from factflow_storage.service import StorageService
from factflow_storage.settings import parse_duration
from factflow_storage.tools.du import DU

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"
_TERMINAL = "|".join(TERMINAL_STATUSES)
# A comma-separated list of finished statuses; empty items are ignored, none means all.
STATUS_LIST_PATTERN = rf"^[\s,]*(({_TERMINAL})[\s,]*)*$"
CURSOR = re.compile(r"^[A-Za-z0-9_-]+$")
COPY_TIMEOUT = 3600.0  # a copy is answered when done
MAX_ARCHIVE_REQUEST = 256 * 1024 * 1024  # a request may list the keys to pack

_ID_SCHEMA = {"type": "string", "minLength": 1, "pattern": SEGMENT_PATTERN}
_OBJECT = {"type": "object"}
_BOOLEAN = {"type": "boolean", "default": False}


# -- parsers: a raw value (query text or JSON) to what ``run`` takes, or BadRequest ----------

def _cursor(value: str) -> str:
    if not CURSOR.match(value):
        raise BadRequest(f"invalid cursor {value[:80]!r}: pass next_cursor of the previous page")
    return value


def _segment(value: str) -> str:
    return validate_segment(value, "execution id")


def _duration(value: Any) -> float:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as err:
            raise BadRequest(f"older_than: {err}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest('"older_than" is required: seconds, or a duration such as "90d"')
    return float(value)


def _statuses(value: Any) -> str | list[str]:
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return value
    raise BadRequest('"statuses" must be a list of strings or a comma-separated string')


def _grace(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadRequest('"grace_seconds" must be a number >= 0')
    return float(value)


# -- adapters where the wire and the service differ -------------------------------------------

def delete_executions(service: StorageService, execution_id: str, together: Sequence[str] = (), *,
                      confirm: bool = False, force: bool = False) -> DeletionPlan:
    return service.delete_executions([execution_id, *together], confirm=confirm, force=force)


def deletions(service: StorageService) -> Deletions:
    return {"deletions": service.deletions()}


class ArchiveJobsApi(Protocol):
    """What the server's archive jobs (``archive.service.ArchiveJobs``) answer: records
    in the shape of ``ArchiveJob``."""

    def prepare(self, body: Any) -> dict[str, Any]: ...

    def status(self, job_id: str) -> dict[str, Any]: ...

    def delete(self, job_id: str) -> dict[str, Any]: ...


def prepare_archive(jobs: ArchiveJobsApi, request: Mapping[str, Any]) -> ArchiveJob:
    return cast(ArchiveJob, jobs.prepare(request))


def archive_status(jobs: ArchiveJobsApi, job_id: str) -> ArchiveJob:
    return cast(ArchiveJob, jobs.status(job_id))


def delete_archive(jobs: ArchiveJobsApi, job_id: str) -> ArchiveJob:
    return cast(ArchiveJob, jobs.delete(job_id))


# -- the declarations -------------------------------------------------------------------------

HEALTH = Operation(
    "health", "GET", api_paths.HEALTH, StorageService.health, public=("status",),
    summary="Whether the storage provider is reachable (needs no token)",
    result_description="Reachable", result_schema=ref("Health"), errors={"503": ERROR, "default": ERROR})

_EXECUTION_ID = Param("execution_id", str, "path", schema=_ID_SCHEMA)
_ANY_EXECUTION_ID = Param("execution_id", str, "path", schema=_ID_SCHEMA, greedy=True)
_EXECUTION_ROWS = {"type": "object", "required": ["executions", "next_cursor"], "properties": {
    "executions": {"type": "array", "items": ref("ExecutionRow")},
    "next_cursor": {"type": "string", "nullable": True}}}

LIST_EXECUTIONS = Operation(
    "listExecutions", "GET", EXECUTIONS, StorageService.executions, params=(
        Param("limit", int, schema={"type": "integer", "minimum": 1, "maximum": 1000},
              help="Page size; without it, every execution"),
        Param("cursor", str, parse=_cursor, schema={"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
              help="next_cursor of the previous page"),
        Param("status", str, schema={"type": "string"}, help="Comma-separated statuses, e.g. failed,cancelled"),
        Param("since", str, schema={"type": "string", "format": "date-time"},
              help="Only executions started at or after"),
        Param("until", str, schema={"type": "string", "format": "date-time"}, help="Only executions started before")),
    summary="Executions newest first, one page at a time (every one without limit)",
    result_description="One page", result_schema=_EXECUTION_ROWS, errors=errors(400))

EXECUTION_DEPS = Operation(
    "executionDeps", "GET", EXECUTIONS + "/{execution_id}/deps", StorageService.execution_deps,
    params=(_EXECUTION_ID,), summary="Who depends on an execution through lineage, and what it depends on",
    result_description="Dependants and dependencies", result_schema=_OBJECT, errors=errors(400, 404))

EXECUTION_GRAPH = Operation(
    "executionGraph", "GET", EXECUTIONS + "/{execution_id}/graph", StorageService.execution_graph,
    params=(_EXECUTION_ID,),
    summary="An execution's pipeline: a node per route/stage with objects and bytes, an edge per "
            "parent stage -> child stage its objects' lineage names (recorded at write time)",
    result_description="Nodes and edges", result_schema=_OBJECT, errors=errors(400, 404))

GET_EXECUTION = Operation(
    "getExecution", "GET", EXECUTIONS + "/{execution_id}", StorageService.execution, params=(_ANY_EXECUTION_ID,),
    summary="One execution record", result_description="The record", result_schema=ref("Execution"),
    errors=errors(400, 404))

SET_EXECUTION_STATUS = Operation(
    "putExecution", "PUT", EXECUTIONS + "/{execution_id}", StorageService.set_execution_status, params=(
        Param("execution_id", str, "path", schema=_ID_SCHEMA, greedy=True, parse=_segment),
        Param("status", str, "body", required=True, schema={"type": "string", "enum": list(STATUSES)}),
        Param("strict", bool, "body", default=False, schema=_BOOLEAN,
              help="Refuse finishing an unknown id (404) and changing a terminal status (409)")),
    summary="Start (running) or finish (a terminal status) an execution",
    result_description="The record", result_schema=ref("Execution"), errors=errors(400, 404, 409, 413))

DELETE_EXECUTIONS = Operation(
    "deleteExecution", "DELETE", EXECUTIONS + "/{execution_id}", delete_executions, params=(
        _ANY_EXECUTION_ID,
        Param("confirm", bool, default=False, schema=_BOOLEAN, help="Delete; without it the answer is the plan"),
        Param("force", bool, default=False, schema=_BOOLEAN,
              help="Delete even a running execution or one a kept lineage names"),
        Param("with", list, arg="together", schema={"type": "array", "items": _ID_SCHEMA},
              openapi={"style": "form", "explode": True},
              help="More executions deleted together (references among them do not block)")),
    summary="Delete an execution whole (a dry run unless confirm=true)",
    result_description="The plan, or what was deleted", result_schema=_OBJECT, errors=errors(400, 404, 409))

PRUNE = Operation(
    "pruneExecutions", "POST", EXECUTIONS + "/prune", StorageService.prune, params=(
        Param("older_than", float, "body", required=True, parse=_duration, schema={"oneOf": [
            {"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]}),
        Param("statuses", str, "body", parse=_statuses, aliases=("status",), schema={"nullable": True, "oneOf": [
            {"type": "array", "items": {"type": "string", "enum": list(TERMINAL_STATUSES)}},
            {"type": "string", "pattern": STATUS_LIST_PATTERN, "description": "comma-separated"}]}),
        Param("keep", int, "body", default=0, schema={"type": "integer", "minimum": 0}),
        Param("confirm", bool, "body", default=False, schema={"type": "boolean"})),
    summary="Delete finished executions by age and status (a dry run unless confirm is true)",
    result_description="Selected, skipped and (with confirm) deleted executions", result_schema=_OBJECT,
    errors=errors(400, 413))

DELETIONS = Operation(
    "listDeletions", "GET", api_paths.DELETIONS, deletions,
    summary="Deletion records: who deleted which execution, when, and what went",
    result_description="The records, newest first", result_schema=_OBJECT, errors=errors())

_NODE_PROPERTIES = {"key": {"type": "string"}, "parents": {"type": "array", "items": {"type": "object"}},
                    "missing": {"type": "boolean"}, "cycle": {"type": "boolean"},
                    "reference": {"type": "boolean"}, "truncated": {"type": "boolean"}}
LINEAGE = Operation(
    "storageLineage", "GET", api_paths.LINEAGE, StorageService.lineage, params=(
        Param("key", str, required=True, schema={"type": "string", "minLength": 1}, help="The object key"),
        Param("depth", int, schema={"type": "integer", "minimum": 0, "maximum": 100}, help="Levels of ancestors"),
        Param("children", bool, default=False, schema={"type": "boolean"}, help="Also the objects that name KEY")),
    summary="An object's ancestors from its lineage metadata, and optionally its children",
    result_description="The lineage tree", result_schema={
        "type": "object", "required": ["key"], "additionalProperties": True,
        "properties": {**_NODE_PROPERTIES, "children": {"type": "array", "items": {"type": "string"}}}},
    errors=errors(400, 404))

FSCK = Operation(
    "fsck", "POST", api_paths.FSCK, StorageService.fsck, body_required=False, closed_body=True, params=(
        Param("prefix", str, "body", default="", schema={"type": "string"}),
        Param("repair", bool, "body", default=False, schema={"type": "boolean"}),
        Param("grace_seconds", float, "body", arg="grace", parse=_grace, schema={"type": "number", "minimum": 0}),
        Param("verify", bool, "body", default=False, schema={"type": "boolean"},
              help="Read every object and check its checksum; with repair, quarantine objects whose bytes changed"),
        Param("accept_changed", bool, "body", default=False, schema={"type": "boolean"},
              help="Keep the new bytes of objects whose bytes changed (their sha256 becomes the checksum; "
                   "implies verify)")),
    summary="Find (and with repair, fix) what crashed writers left under a prefix",
    result_description="The report: counts found and repaired, bytes reclaimed, findings", result_schema={
        "type": "object", "required": ["found", "repaired", "unrepaired", "bytes_reclaimed"],
        "properties": {"prefix": {"type": "string"}, "repair": {"type": "boolean"},
                       "grace_seconds": {"type": "number"}, "found": {"type": "object"},
                       "repaired": {"type": "object"}, "unrepaired": {"type": "integer"},
                       "bytes_reclaimed": {"type": "integer"},
                       "findings": {"type": "array", "items": {"type": "object"}},
                       "findings_truncated": {"type": "boolean"}}},
    errors=errors(400))

COPY = Operation(
    "copyToDestination", "POST", api_paths.COPIES, StorageService.copy, timeout=COPY_TIMEOUT, params=(
        Param("request", dict, "json", schema={"type": "object", "required": ["destination"], "properties": {
            "execution_ids": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": SEGMENT_PATTERN}},
            "prefix": {"type": "string"},
            "destination": {"type": "string", "minLength": 1,
                            "description": "A name from the server's copy destinations, never a URI"},
            "dry_run": {"type": "boolean"}, "force": {"type": "boolean"}, "with_parents": {"type": "boolean"},
            "jobs": {"type": "integer", "minimum": 1, "maximum": 256}}}),),
    summary="Copy executions (objects, metadata, lineage index, record) or a prefix to a named destination",
    result_description="What was (or would be) copied", result_schema=_OBJECT, errors=errors(400, 404, 409, 413))

_JOB = Param("job", str, "path", arg="job_id", schema={"type": "string"})
PREPARE_ARCHIVE = Operation(
    "prepareArchive", "POST", ARCHIVE + "/prepare", prepare_archive, on="archive_jobs",
    max_body=MAX_ARCHIVE_REQUEST, params=(
        Param("request", dict, "json", schema={"type": "object", "required": ["execution_id"], "properties": {
            "execution_id": {"type": "string"}, "domain": {"type": "string"}, "stage": {"type": "string"},
            "path": {"type": "string"}, "extension": {"type": "string"},
            "routes": {"type": "array", "items": {"type": "string"}},
            "stages": {"type": "array", "items": {"type": "string"}},
            "include_metadata": {"type": "boolean", "default": True},
            "keys": {"type": "array", "items": {"type": "string"},
                     "description": "Only these keys of the execution (used to resume a download)"}}}),),
    summary="Start packing an execution's objects into a zip", result_description="The job",
    result_schema=ref("ArchiveJob"), more_responses={"202": json_answer("The job", ref("ArchiveJob"))},
    errors=errors(400, 404))

ARCHIVE_STATUS = Operation(
    "archiveStatus", "GET", ARCHIVE + "/{job}/status", archive_status, on="archive_jobs", params=(_JOB,),
    summary="An archive job's progress", result_description="The job", result_schema=ref("ArchiveJob"),
    errors=errors(404))

DELETE_ARCHIVE = Operation(
    "archiveCancel", "DELETE", ARCHIVE + "/{job}", delete_archive, on="archive_jobs", params=(_JOB,),
    summary="Cancel a job and remove its archive", result_description="The job", result_schema=ref("ArchiveJob"),
    more_responses={"204": {"description": "Cancelled"}}, errors=errors(404))

OPERATIONS: tuple[Operation[..., Any], ...] = (
    HEALTH, LIST_EXECUTIONS, EXECUTION_DEPS, EXECUTION_GRAPH, GET_EXECUTION, SET_EXECUTION_STATUS,
    DELETE_EXECUTIONS, PRUNE, DELETIONS, DU, LINEAGE, FSCK, COPY, PREPARE_ARCHIVE, ARCHIVE_STATUS, DELETE_ARCHIVE,
)
