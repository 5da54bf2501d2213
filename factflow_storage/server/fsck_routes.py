"""``POST /api/v1/storage/fsck``: the store's consistency check, as ``factflow storage fsck``."""

from __future__ import annotations

from typing import Any

import bottle

from factflow_storage.api_paths import FSCK
from factflow_storage.errors import BadRequest
from factflow_storage.fsck import DEFAULT_GRACE
from factflow_storage.server.http import json_response, read_json_body
from factflow_storage.server.openapi_paths import errors
from factflow_storage.service import StorageService


OPENAPI: dict[str, Any] = {FSCK: {"post": {
    "summary": "Find (and with repair, fix) what crashed writers left under a prefix",
    "operationId": "fsck",
    "requestBody": {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {
            "prefix": {"type": "string"}, "repair": {"type": "boolean"},
            "grace_seconds": {"type": "number", "minimum": 0},
            "verify": {"type": "boolean", "description": "Read every object and check its checksum; with "
                       "repair, quarantine objects whose bytes changed"},
            "accept_changed": {"type": "boolean", "description": "Keep the new bytes of objects whose bytes "
                               "changed (their sha256 becomes the checksum; implies verify)"}}}}}},
    "responses": {"200": {"description": "The report: counts found and repaired, bytes reclaimed, findings",
                          "content": {"application/json": {"schema": {
                              "type": "object", "required": ["found", "repaired", "unrepaired", "bytes_reclaimed"],
                              "properties": {"prefix": {"type": "string"}, "repair": {"type": "boolean"},
                                             "grace_seconds": {"type": "number"},
                                             "found": {"type": "object"}, "repaired": {"type": "object"},
                                             "unrepaired": {"type": "integer"},
                                             "bytes_reclaimed": {"type": "integer"},
                                             "findings": {"type": "array", "items": {"type": "object"}},
                                             "findings_truncated": {"type": "boolean"}}}}}},
                  **errors(400)},
}}}


_FIELDS = frozenset({"prefix", "repair", "grace_seconds", "verify", "accept_changed"})


def install(app: bottle.Bottle, service: StorageService) -> None:
    @app.post(FSCK)
    def fsck():
        body = read_json_body() if bottle.request.content_length > 0 else {}
        if not isinstance(body, dict) or set(body) - _FIELDS:
            raise BadRequest('the body must be a JSON object with "prefix", "repair", "grace_seconds", '
                             '"verify" and "accept_changed" at most')
        prefix, repair, grace = body.get("prefix", ""), body.get("repair", False), body.get("grace_seconds", DEFAULT_GRACE)
        verify, accept = body.get("verify", False), body.get("accept_changed", False)
        if not isinstance(prefix, str) or not all(isinstance(flag, bool) for flag in (repair, verify, accept)) \
                or isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            raise BadRequest('"prefix" must be a string, "repair", "verify" and "accept_changed" booleans, '
                             '"grace_seconds" a number >= 0')
        return json_response(service.fsck(prefix, repair=repair, grace=float(grace), verify=verify,
                                          accept_changed=accept))
