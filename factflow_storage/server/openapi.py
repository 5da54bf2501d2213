"""``GET /api/v1/openapi.json``: the API described from the route modules themselves.

Each module that installs routes may carry ``OPENAPI`` (OpenAPI ``paths``); the document
is their union, read from the app's own routes, so it lists what the app serves, and a
test checks both directions.
"""

from __future__ import annotations

import importlib
from typing import Any

import bottle

from factflow_storage.server.http import json_response
from factflow_storage.server.openapi_paths import COMPONENTS, OPENAPI_PATH

OPENAPI = {OPENAPI_PATH: {"get": {
    "summary": "This document",
    "operationId": "openapi",
    "responses": {"200": {"description": "The OpenAPI document",
                          "content": {"application/json": {"schema": {"type": "object"}}}},
                  "default": {"$ref": "#/components/responses/Error"}},
}}}


def document(route_modules: list[str]) -> dict[str, Any]:
    """The document of ``route_modules`` (module names)."""
    from factflow_storage import __version__

    paths: dict[str, Any] = {}
    for name in route_modules:
        for path, operations in getattr(importlib.import_module(name), "OPENAPI", {}).items():
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
    built: list[dict[str, Any]] = []

    @app.get(OPENAPI_PATH)
    def openapi():
        # Built at the first request, once every module has installed its routes.
        if not built:
            installed = dict.fromkeys(route.callback.__module__ for route in app.routes)
            built.append(document(list(installed)))
        return json_response(built[0])
