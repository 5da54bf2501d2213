"""``storage du``: objects and bytes per prefix level, in one streamed listing.

Memory grows with the number of groups (routes and stages, or prefixes at the chosen
depth), never with the number of objects.
"""

from __future__ import annotations

from typing import Any

from factflow_storage import api_paths
from factflow_storage.errors import BadRequest
from factflow_storage.keys import EXECUTIONS_PREFIX, execution_prefix, validate_prefix
from factflow_storage.operations import Operation, Param, errors
from factflow_storage.operations.results import DiskUsage, UsageGroup

# Objects that sit directly at the listed level, beside the prefixes.
HERE = "."
MAX_DEPTH = 16


def default_depth(base: str) -> int:
    """Route and stage under an execution; one level anywhere else."""
    rest = base[len(EXECUTIONS_PREFIX):] if base.startswith(EXECUTIONS_PREFIX) else None
    return 2 if rest is not None and rest.count("/") == 1 else 1


def group_of(relative: str, depth: int) -> str:
    segments = relative.split("/")
    if len(segments) <= depth:
        return HERE if len(segments) == 1 else "/".join(segments[:-1]) + "/"
    return "/".join(segments[:depth]) + "/"


def disk_usage(service: Any, prefix: str = "", *, execution_id: str | None = None,
               depth: int | None = None) -> DiskUsage:
    """``{"prefix", "depth", "groups": [{"prefix", "objects", "bytes"}], "objects", "bytes"}``.

    Group prefixes are relative to ``prefix`` cut back to its last '/', so a prefix that
    ends mid-segment (``executions/demo-``) groups by the segments it matches.
    """
    if execution_id is not None:
        if prefix:
            raise BadRequest("give a prefix or an execution, not both")
        prefix = execution_prefix(execution_id)
    validate_prefix(prefix)
    base = prefix[: prefix.rfind("/") + 1]
    depth = default_depth(base) if depth is None else depth
    if not 1 <= depth <= MAX_DEPTH:
        raise BadRequest(f"depth must be between 1 and {MAX_DEPTH}")
    groups: dict[str, list[int]] = {}
    for info in service.iter_objects(prefix):
        group = group_of(info.key[len(base):], depth)
        counts = groups.get(group)
        if counts is None:
            counts = groups[group] = [0, 0]
        counts[0] += 1
        counts[1] += info.size
    rows: list[UsageGroup] = [{"prefix": name, "objects": counts[0], "bytes": counts[1]}
                              for name, counts in sorted(groups.items())]
    return {"prefix": prefix, "depth": depth, "groups": rows,
            "objects": sum(row["objects"] for row in rows), "bytes": sum(row["bytes"] for row in rows)}


_GROUP = {"type": "object", "required": ["prefix", "objects", "bytes"],
          "properties": {"prefix": {"type": "string"}, "objects": {"type": "integer"}, "bytes": {"type": "integer"}}}
DU = Operation(
    "storageDu", "GET", api_paths.DU, disk_usage, params=(
        Param("prefix", str, default="", schema={"type": "string"}, help="Key prefix (not with execution_id)"),
        Param("execution_id", str, schema={"type": "string"}, help="One execution's objects"),
        Param("depth", int, schema={"type": "integer", "minimum": 1, "maximum": 16},
              help="Prefix levels per group (2 under an execution, 1 elsewhere)")),
    summary="Objects and bytes per route and stage (or per prefix level), with totals",
    result_description="Sizes", result_schema={
        "type": "object", "required": ["prefix", "depth", "groups", "objects", "bytes"],
        "properties": {"prefix": {"type": "string"}, "depth": {"type": "integer"},
                       "groups": {"type": "array", "items": _GROUP},
                       "objects": {"type": "integer"}, "bytes": {"type": "integer"}}},
    errors=errors(400, 404))
