"""Helpers for the retention tests: executions written like a pipeline writes them, and
every name a storage holds, read from the raw backend (files under the root, or the
bucket's own listing), so a test sees traces the provider's listings hide."""

from __future__ import annotations

import os

import orjson

from factflow_storage import executions

BIG = "x" * 3000  # past S3's 2 KiB of user metadata: the blob goes to a companion record


def write_execution(provider, execution_id: str, count: int = 3, *, lineage_into: str | None = None,
                    big_metadata: bool = False, status: str = "completed") -> list[str]:
    """An execution of ``count`` objects in two stages; the second stage's objects name the
    first stage's (and, with ``lineage_into``, an object of that other execution)."""
    executions.set_status(provider, execution_id, "running")
    keys = []
    for n in range(count):
        first = f"executions/{execution_id}/route/fetch/m{n:04d}.json"
        provider.write(first, orjson.dumps({"n": n}), {"note": BIG} if big_metadata and n == 0 else {})
        second = f"executions/{execution_id}/route/parse/m{n:04d}.txt"
        lineage = [first] + ([f"executions/{lineage_into}/route/fetch/m{n:04d}.json"] if lineage_into else [])
        provider.write(second, f"text {n}".encode(), {"lineage": lineage})
        keys += [first, second]
    if status != "running":
        executions.set_status(provider, execution_id, status)
    return keys


def raw_names(provider) -> set[str]:
    """Every name in the backend: files under a filesystem root, or every object of a bucket."""
    root = getattr(provider, "root", None)
    if root is not None:
        found = set()
        for current, _dirs, files in os.walk(root):
            found.update(os.path.relpath(os.path.join(current, name), root) for name in files)
        return found
    return {found.object_name for found in provider._client.list_objects(bucket_name=provider.bucket,
                                                                         recursive=True)}


def raw_dirs(provider) -> set[str]:
    """Directories under a filesystem root (S3 has none)."""
    root = getattr(provider, "root", None)
    if root is None:
        return set()
    return {os.path.relpath(current, root) for current, _dirs, _files in os.walk(root)}
