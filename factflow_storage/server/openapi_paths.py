"""The OpenAPI ``paths`` of each route module, and the shared ``components``.

A route module that carries its own ``OPENAPI`` attribute overrides its entry here.
"""

from __future__ import annotations

from typing import Any

from factflow_storage import api_paths
from factflow_storage.archive.jobs import CANCELLED, FAILED, PREPARING, READY
from factflow_storage.executions import LISTED_STATUSES, STATUSES
from factflow_storage.service import SCAN_LIMIT
from factflow_storage.api_paths import OBJECTS

OPENAPI_PATH = api_paths.OPENAPI

# The helpers every route module describes its paths with.
ERROR = {"$ref": "#/components/responses/Error"}
_JSON = "application/json"


def errors(*codes: int) -> dict[str, Any]:
    """The error answers of an operation: ``codes`` plus what any request may get."""
    return {str(code): ERROR for code in (*codes, 401, 403, 503)} | {"default": ERROR}


def json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def query_param(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# The key rules of ``keys.py`` as patterns: no control characters or backslashes, no
# empty, '.' or '..' segment, no '.meta.json' segment end, not under '_factflow/'. Not
# said: at most 1,024 UTF-8 bytes (and 245 per segment on the filesystem), which a
# pattern on characters cannot express.
_KEY_PATTERN = (r"^(?!_factflow(/|$))(?!/)(?!.*//)(?!.*/$)(?!(.*/)?\.\.?(/|$))(?!.*\.meta\.json(/|$))"
                r"[^\x00-\x1f\x7f-\x9f\\]+$")
SEGMENT_PATTERN = r"^(?!_factflow$)(?!\.\.?$)(?!.*\.meta(\.json)?$)[^\x00-\x1f\x7f-\x9f\\/]+$"
_KEY = {"name": "key", "in": "path", "required": True,
        "schema": {"type": "string", "minLength": 1, "pattern": _KEY_PATTERN},
        "description": "The object key, percent-encoded; '/' may be sent as is."}
_EXECUTION_ID = {"name": "execution_id", "in": "path", "required": True,
                 "schema": {"type": "string", "minLength": 1, "pattern": SEGMENT_PATTERN}}
_VIEW = query_param("view", {"type": "string", "enum": ["metadata", "content"]},
               "metadata: the metadata blob of KEY; content: the bytes of KEY, never a blob")
_RANGE = {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
          "description": "One byte range, e.g. bytes=0-99, bytes=100- or bytes=-100"}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
# An object's bytes come with its own content type, which may be JSON of any shape; with
# view=metadata the answer is the Metadata blob.
_BYTES = {"description": "The object's bytes (with view=metadata: its Metadata blob, as JSON)",
          "headers": {name: {"schema": {"type": "string"}} for name in ("ETag", "Last-Modified")},
          "content": {_JSON: {"schema": {}}, "*/*": {"schema": {"type": "string", "format": "binary"}}}}
_OBJECT_READ = {
    "parameters": [_VIEW, _RANGE, _IF_NONE_MATCH],
    "responses": {"200": _BYTES, "206": {**_BYTES, "description": "A byte range of the object"},
                  "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                  **errors(400, 404, 409, 416)},
}

STORAGE_PATHS: dict[str, Any] = {
    api_paths.HEALTH: {"get": {
        "summary": "Whether the storage provider is reachable (needs no token)",
        "operationId": "health", "security": [{}],
        "responses": {"200": json_answer("Reachable", _ref("Health")), "503": ERROR, "default": ERROR},
    }},
    OBJECTS: {"get": {
        "summary": "List objects, one page at a time",
        "operationId": "listObjects",
        "parameters": [
            query_param("prefix", {"type": "string"}, "Key prefix, as in S3"),
            query_param("delimiter", {"type": "string", "enum": ["/", ""]},
                   "'/' groups keys into common_prefixes; empty: a flat listing"),
            query_param("route_id", {"type": "string"}, "Only objects of this route"),
            query_param("stage", {"type": "string"}, "Only objects of this stage"),
            query_param("extension", {"type": "string"}, "Comma-separated extensions, e.g. json,md"),
            query_param("include_metadata", {"type": "boolean", "default": True},
                   "Add each object's metadata (a read per object)"),
            query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Page size"),
            query_param("cursor", {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}, "next_cursor of the previous page"),
            query_param("offset", {"type": "integer", "minimum": 0, "maximum": 2**31, "default": 0}, "Entries to skip"),
            query_param("start_after", {"type": "string", "maxLength": 1024},
                        "List from the first entry after this key (not with cursor)"),
            query_param("contains", {"type": "string", "maxLength": 1024},
                        "Only entries whose name (the key past prefix) contains this text"),
            query_param("match", {"type": "string", "maxLength": 1024},
                        "Only entries whose name matches this glob (*, ?, [...]); with contains or match a "
                        f"request scans at most {SCAN_LIMIT} keys and may answer fewer entries, even none, "
                        "with a next_cursor to go on from"),
        ],
        "responses": {"200": json_answer("One page", _ref("ListPage")), **errors(400)},
    }},
    OBJECTS + "/{key}": {
        "get": {"summary": "Read an object's bytes (or its metadata with view=metadata)",
                "operationId": "getObject", **_OBJECT_READ, "parameters": [_KEY, *_OBJECT_READ["parameters"]]},
        "head": {"summary": "An object's headers", "operationId": "headObject",
                 **_OBJECT_READ, "parameters": [_KEY, *_OBJECT_READ["parameters"]]},
        "put": {
            "summary": "Write an object",
            "operationId": "putObject",
            "parameters": [_KEY, {"name": "X-Factflow-Metadata", "in": "header", "required": False,
                                  "schema": {"type": "string"}, "description": "The metadata blob, JSON"},
                           {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                            "description": "Write only over the version with this ETag (or any, '*')"},
                           {**_IF_NONE_MATCH, "description": "'*': write only when there is no object"}],
            "requestBody": {"required": False, "content": {"*/*": {"schema": {"type": "string",
                                                                              "format": "binary"}}}},
            "responses": {"201": json_answer("The stored metadata", _ref("Metadata")),
                          **errors(400, 409, 412, 413, 501)},
        },
        "delete": {"summary": "Delete an object (a missing object is no error)",
                   "operationId": "deleteObject", "parameters": [_KEY],
                   "responses": {"204": {"description": "Deleted"}, **errors(400)}},
    },
    OBJECTS + "/{key}/metadata": {
        operation: {
            "summary": "The metadata of KEY, unless an object named KEY/metadata exists",
            "operationId": f"{operation}ObjectMetadata", "parameters": [_KEY, _VIEW],
            "responses": {"200": {**_BYTES, "description": "The Metadata blob of KEY (or the bytes of an "
                                                           "object named KEY/metadata)"},
                          "206": _BYTES, "304": {"description": "Not modified"}, **errors(400, 404, 416)},
        } for operation in ("get", "head")
    },
}

EXECUTION_PATHS: dict[str, Any] = {
    api_paths.EXECUTIONS: {"get": {
        "summary": "Executions newest first, one page at a time (every one without limit)",
        "operationId": "listExecutions",
        "parameters": [
            query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                        "Page size; without it, every execution"),
            query_param("cursor", {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}, "next_cursor of the previous page"),
            query_param("status", {"type": "string"}, "Comma-separated statuses, e.g. failed,cancelled"),
            query_param("since", {"type": "string", "format": "date-time"}, "Only executions started at or after"),
            query_param("until", {"type": "string", "format": "date-time"}, "Only executions started before"),
        ],
        "responses": {"200": json_answer("One page", {"type": "object", "required": ["executions", "next_cursor"],
                                                      "properties": {
            "executions": {"type": "array", "items": _ref("ExecutionRow")},
            "next_cursor": {"type": "string", "nullable": True}}}), **errors(400)},
    }},
    api_paths.EXECUTIONS + "/{execution_id}": {
        "get": {"summary": "One execution record", "operationId": "getExecution", "parameters": [_EXECUTION_ID],
                "responses": {"200": json_answer("The record", _ref("Execution")), **errors(400, 404)}},
        "put": {"summary": "Start (running) or finish (a terminal status) an execution",
                "operationId": "putExecution", "parameters": [_EXECUTION_ID],
                "requestBody": {"required": True, "content": {_JSON: {"schema": {
                    "type": "object", "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": list(STATUSES)},
                        "strict": {"type": "boolean", "default": False, "description":
                                   "Refuse finishing an unknown id (404) and changing a terminal status (409)"}}}}}},
                "responses": {"200": json_answer("The record", _ref("Execution")), **errors(400, 404, 409, 413)}},
    },
}

EVENT_PATHS: dict[str, Any] = {
    api_paths.EVENTS: {"get": {
        "summary": "Server-Sent Events: objects written to executions, then their completion",
        "operationId": "storageEvents",
        "parameters": [
            {"name": "execution_id", "in": "query", "required": True, "style": "form", "explode": True,
             "schema": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
            query_param("route_id", {"type": "string"}, "Only this route"),
            query_param("stage", {"type": "string"}, "Only this stage"),
            query_param("extension", {"type": "string"}, "Comma-separated extensions"),
            query_param("timeout", {"type": "integer", "minimum": 1, "maximum": 3600, "default": 300},
                   "Seconds before the server closes the stream"),
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "An event stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      **errors(400)},
    }},
}

_JOB = {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}}
ARCHIVE_PATHS: dict[str, Any] = {
    api_paths.ARCHIVE + "/prepare": {"post": {
        "summary": "Start packing an execution's objects into a zip", "operationId": "prepareArchive",
        "requestBody": {"required": True, "content": {_JSON: {"schema": {
            "type": "object", "required": ["execution_id"], "properties": {
                "execution_id": {"type": "string"}, "domain": {"type": "string"}, "stage": {"type": "string"},
                "path": {"type": "string"}, "extension": {"type": "string"},
                "routes": {"type": "array", "items": {"type": "string"}},
                "stages": {"type": "array", "items": {"type": "string"}},
                "include_metadata": {"type": "boolean", "default": True},
                "keys": {"type": "array", "items": {"type": "string"},
                         "description": "Only these keys of the execution (used to resume a download)"}}}}}},
        "responses": {"200": json_answer("The job", _ref("ArchiveJob")), "202": json_answer("The job", _ref("ArchiveJob")),
                      **errors(400, 404)},
    }},
    api_paths.ARCHIVE + "/{job}/status": {"get": {
        "summary": "An archive job's progress", "operationId": "archiveStatus", "parameters": [_JOB],
        "responses": {"200": json_answer("The job", _ref("ArchiveJob")), **errors(404)},
    }},
    api_paths.ARCHIVE + "/{job}/download": {"get": {
        "summary": "The finished zip", "operationId": "archiveDownload", "parameters": [_JOB],
        "responses": {"200": {"description": "The zip",
                              "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                      **errors(404, 409)},
    }},
    api_paths.ARCHIVE + "/{job}": {"delete": {
        "summary": "Cancel a job and remove its archive", "operationId": "archiveCancel", "parameters": [_JOB],
        "responses": {"200": json_answer("The job", _ref("ArchiveJob")), "204": {"description": "Cancelled"},
                      **errors(404)},
    }},
}

# The hand-written byte route beside the jobs: the same request, the zip as the answer.
ARCHIVE_PATHS[api_paths.ARCHIVE + "/stream"] = {"post": {
    "summary": "An execution's objects as a zip, sent while it is packed (nothing is stored)",
    "description": "Takes the body of prepare; the answer is chunked and has no length. A zip the "
                   "server cannot finish is cut off before its end records: read them before trusting it.",
    "operationId": "streamArchive",
    "requestBody": ARCHIVE_PATHS[api_paths.ARCHIVE + "/prepare"]["post"]["requestBody"],
    "responses": {"200": {"description": "The zip",
                          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                  **errors(400, 404, 409)},
}}

KNOWN_PATHS: dict[str, dict[str, Any]] = {
    "factflow_storage.server.storage_routes": STORAGE_PATHS,
    "factflow_storage.server.execution_routes": EXECUTION_PATHS,
    "factflow_storage.server.event_routes": EVENT_PATHS,
    "factflow_storage.server.archive_routes": ARCHIVE_PATHS,
}

_TIME = {"type": "string"}
COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "responses": {"Error": json_answer("An error", _ref("Error"))},
    "schemas": {
        "Error": {"type": "object", "required": ["detail", "error_code", "timestamp"], "properties": {
            "detail": {"type": "string"}, "error_code": {"type": "string"}, "timestamp": _TIME}},
        "Health": {"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string"}, "storage": {"type": "string"}}},
        "Metadata": {"type": "object", "required": ["key", "content_type", "content_length", "created_at"],
                     "additionalProperties": True, "properties": {
                         "key": {"type": "string"}, "content_type": {"type": "string"},
                         "content_length": {"type": "integer", "minimum": 0}, "checksum": {"type": "string"},
                         "created_at": _TIME}},
        "ObjectRow": {"type": "object", "required": ["key", "size", "last_modified"], "properties": {
            "key": {"type": "string"}, "size": {"type": "integer", "minimum": 0}, "last_modified": _TIME,
            "content_type": {"type": "string", "nullable": True}, "metadata": _ref("Metadata")}},
        "ListPage": {"type": "object", "required": ["objects", "common_prefixes", "next_cursor"], "properties": {
            "objects": {"type": "array", "items": _ref("ObjectRow")},
            "common_prefixes": {"type": "array", "items": {"type": "string"}},
            "next_cursor": {"type": "string", "nullable": True}}},
        "Execution": {"type": "object", "required": ["execution_id", "status"], "additionalProperties": True,
                      "properties": {
                          "execution_id": {"type": "string"},
                          "status": {"type": "string", "enum": list(STATUSES)},
                          "started_at": {**_TIME, "nullable": True}, "finished_at": {**_TIME, "nullable": True},
                          "object_count": {"type": "integer", "minimum": 0}}},
        "ExecutionRow": {"type": "object", "required": ["execution_id", "status", "started_at", "finished_at",
                                                        "object_count"],
                         "properties": {
                             "execution_id": {"type": "string"},
                             "status": {"type": "string", "enum": list(LISTED_STATUSES)},
                             "started_at": {**_TIME, "nullable": True}, "finished_at": {**_TIME, "nullable": True},
                             "object_count": {"type": "integer", "minimum": 0, "nullable": True}}},
        "ArchiveJob": {"type": "object", "required": ["job_id", "status"], "additionalProperties": True,
                       "properties": {
                           "job_id": {"type": "string"},
                           "status": {"type": "string", "enum": [PREPARING, READY, FAILED, CANCELLED]},
                           "total": {"type": "integer"}, "processed": {"type": "integer"},
                           "filename": {"type": "string"}, "file_size": {"type": "integer", "nullable": True},
                           "bytes_packed": {"type": "integer"},
                           "progress": {"type": "number", "minimum": 0, "maximum": 1},
                           "error": {"type": "string", "nullable": True}, "execution_id": {"type": "string"},
                           "created_at": _TIME, "expires_at": {**_TIME, "nullable": True},
                           "deleted": {"type": "boolean", "description": "DELETE only: whether the job is gone "
                                       "(false: cancelled, cleaned up by its packer)"}}},
    },
}
