"""``storage du``: objects and bytes per prefix level, in one streamed listing.

Memory grows with the number of groups (routes and stages, or prefixes at the chosen
depth), never with the number of objects.
"""

from __future__ import annotations

from typing import Any

from factflow_storage.errors import BadRequest
from factflow_storage.keys import EXECUTIONS_PREFIX, execution_prefix, validate_prefix

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
               depth: int | None = None) -> dict[str, Any]:
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
    rows = [{"prefix": name, "objects": counts[0], "bytes": counts[1]} for name, counts in sorted(groups.items())]
    return {"prefix": prefix, "depth": depth, "groups": rows,
            "objects": sum(row["objects"] for row in rows), "bytes": sum(row["bytes"] for row in rows)}
