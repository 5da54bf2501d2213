"""``GET /api/v1/openapi.json``: the API described from the route modules themselves.

Each module of ``ROUTE_MODULES`` may carry ``OPENAPI`` (OpenAPI ``paths``); the document
is their union, so it lists what the app serves, and a test checks both directions.
"""

from __future__ import annotations

import importlib
from typing import Any

import bottle

from factflow_storage.server.http import json_response
from factflow_storage.server.openapi_paths import COMPONENTS, KNOWN_PATHS, OPENAPI_PATH

OPENAPI = {OPENAPI_PATH: {"get": {
    "summary": "This document",
    "operationId": "openapi",
    "responses": {"200": {"description": "The OpenAPI document",
                          "content": {"application/json": {"schema": {"type": "object"}}}},
                  "default": {"$ref": "#/components/responses/Error"}},
}}}


def document(route_modules: list[str]) -> dict[str, Any]:
    from factflow_storage import __version__

    paths: dict[str, Any] = {}
    for name in route_modules:
        module = importlib.import_module(name)
        for path, operations in (getattr(module, "OPENAPI", None) or KNOWN_PATHS.get(name, {})).items():
            paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.0.3",
        "info": {"title": "factflow storage", "version": __version__,
                 "description": "Browse, read, write and follow pipeline artefacts."},
        "paths": paths,
        "components": COMPONENTS,
        "security": [{}, {"bearer": []}],
    }


def install(app: bottle.Bottle, context: object) -> None:
    from factflow_storage.server.app import ROUTE_MODULES

    body = document(list(ROUTE_MODULES))

    @app.get(OPENAPI_PATH)
    def openapi():
        return json_response(body)
