"""What an archive job packs: both request forms the original accepts, in one shape.

The guide's form: ``{"execution_id", "domain": "storage", "stage", "path", "extension"}``.
The API reference's form: ``{"execution_id", "routes": [...], "stages": [...],
"include_metadata"}``. Any mix of the two is read as the intersection of its filters.
``keys`` (a list of keys of the execution) is this project's addition: the download CLI
uses it to fetch only what a previous, interrupted run did not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from factflow_storage.errors import BadRequest, InvalidKey
from factflow_storage.keys import execution_prefix, key_matches, validate_key, validate_prefix, validate_segment
from factflow_storage.protocol import ObjectInfo
from factflow_storage.service import StorageService, split_extensions

DOMAINS = ("storage",)
MAX_KEYS = 1_000_000
_FIELDS = {"execution_id", "domain", "stage", "stages", "route", "routes", "path", "extension",
           "include_metadata", "keys"}


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise BadRequest(f'"{name}" must be a string or a list of strings')


@dataclass(frozen=True)
class ArchiveRequest:
    execution_id: str
    include_metadata: bool = True
    prefix: str = ""
    routes: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, body: Any) -> ArchiveRequest:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise BadRequest(f"unknown field(s) in the archive request: {', '.join(unknown)}")
        execution_id = body.get("execution_id")
        if not isinstance(execution_id, str) or not execution_id:
            raise BadRequest('"execution_id" is required')
        exec_prefix = execution_prefix(execution_id)
        domain = body.get("domain", "storage")
        if domain not in DOMAINS:
            raise BadRequest(f"unknown domain {domain!r}: expected one of {', '.join(DOMAINS)}")
        include_metadata = body.get("include_metadata", True)
        if not isinstance(include_metadata, bool):
            raise BadRequest('"include_metadata" must be true or false')
        routes = tuple(validate_segment(r, "route") for r in _strings(body, "route") + _strings(body, "routes"))
        stages = tuple(validate_segment(s, "stage") for s in _strings(body, "stage") + _strings(body, "stages"))
        prefix = exec_prefix
        path = body.get("path")
        if path:
            if not isinstance(path, str):
                raise BadRequest('"path" must be a string')
            path = path.lstrip("/")
            prefix = validate_prefix(path if path.startswith(exec_prefix) else exec_prefix + path)
        keys = None
        if body.get("keys") is not None:
            if not isinstance(body["keys"], list) or len(body["keys"]) > MAX_KEYS:
                raise BadRequest(f'"keys" must be a list of at most {MAX_KEYS} keys')
            keys = tuple(sorted(set(_strings(body, "keys"))))
            for key in keys:
                if not validate_key(key).startswith(exec_prefix):
                    raise InvalidKey(f"key {key!r} is not in execution {execution_id!r}")
        return cls(execution_id, include_metadata, prefix, routes, stages,
                   split_extensions(_strings(body, "extension")), keys)

    def to_json(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "include_metadata": self.include_metadata,
                "prefix": self.prefix, "routes": list(self.routes), "stages": list(self.stages),
                "extensions": list(self.extensions), "keys": None if self.keys is None else list(self.keys)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArchiveRequest:
        keys = data.get("keys")
        return cls(data["execution_id"], data["include_metadata"], data["prefix"], tuple(data["routes"]),
                   tuple(data["stages"]), tuple(data["extensions"]), None if keys is None else tuple(keys))

    @property
    def filename(self) -> str:
        return f"{self.execution_id}.zip"

    def matches(self, key: str) -> bool:
        if not key.startswith(self.prefix):
            return False
        if self.keys is not None and key not in self.keys:
            return False
        return key_matches(key, self.routes, self.stages, self.extensions)

    def objects(self, service: StorageService) -> Iterator[ObjectInfo]:
        """The objects to pack, in key order, streamed from a listing."""
        route = self.routes[0] if len(self.routes) == 1 else None
        stage = self.stages[0] if len(self.stages) == 1 else None
        for info in service.iter_objects(self.prefix, route_id=route, stage=stage):
            if self.matches(info.key):
                yield info
