"""The served OpenAPI document keeps its meaning while the code that builds it moves.

``openapi_snapshot.json`` is the document as served, normalised: keys sorted, the
package version left out, and each parameter list ordered by where and name (OpenAPI
gives the order of parameters no meaning). Regenerate it on purpose with
``FACTFLOW_UPDATE_SNAPSHOT=1`` when the API itself changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from factflow_storage.service import StorageService
from server_fixture import http_request, running_server

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")


def normalised(node: Any) -> Any:
    if isinstance(node, dict):
        shown = {name: normalised(value) for name, value in node.items()}
        if isinstance(shown.get("parameters"), list):
            shown["parameters"] = sorted(shown["parameters"], key=lambda p: (p.get("in", ""), p.get("name", "")))
        return shown
    if isinstance(node, list):
        return [normalised(item) for item in node]
    return node


def served_document(file_storage) -> dict[str, Any]:
    with file_storage.open() as provider, running_server(StorageService(provider)) as url:
        reply = http_request(url, "GET", "/api/v1/openapi.json")
    assert reply.status == 200
    document = reply.json()
    document["info"].pop("version")
    return normalised(document)


def test_served_document_matches_the_snapshot(file_storage):
    document = served_document(file_storage)
    text = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    if os.environ.get("FACTFLOW_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_bytes(text)
    assert document == orjson.loads(SNAPSHOT.read_bytes())
