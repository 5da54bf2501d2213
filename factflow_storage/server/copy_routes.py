"""``POST /api/v1/copies``: copy executions (or a prefix) to a destination the server's
operator named in its settings. The body names the destination; the server opens only
the URIs of its own settings (``factflow_storage.copying.named``)."""

from __future__ import annotations

from typing import Any

import bottle

from factflow_storage.api_paths import COPIES
from factflow_storage.server.http import json_response, read_json_body
from factflow_storage.server.openapi_paths import SEGMENT_PATTERN, errors, json_answer
from factflow_storage.service import StorageService


def install(app: bottle.Bottle, service: StorageService) -> None:
    @app.post(COPIES)
    def copy():
        return json_response(service.copy(read_json_body()))


OPENAPI: dict[str, Any] = {
    COPIES: {"post": {
        "summary": "Copy executions (objects, metadata, lineage index, record) or a prefix to a named destination",
        "operationId": "copyToDestination",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["destination"], "properties": {
                "execution_ids": {"type": "array", "minItems": 1,
                                  "items": {"type": "string", "pattern": SEGMENT_PATTERN}},
                "prefix": {"type": "string"},
                "destination": {"type": "string", "minLength": 1,
                                "description": "A name from the server's copy destinations, never a URI"},
                "dry_run": {"type": "boolean"}, "force": {"type": "boolean"},
                "with_parents": {"type": "boolean"},
                "jobs": {"type": "integer", "minimum": 1, "maximum": 256}}}}}},
        "responses": {"200": json_answer("What was (or would be) copied", {"type": "object"}),
                      **errors(400, 404, 409, 413)}}},
}
