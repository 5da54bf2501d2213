"""Helpers for the retention tests: executions written like a pipeline writes them, and
every name a storage holds, read from the raw backend (files under the root, or the
bucket's own listing), so a test sees traces the provider's listings hide."""

from __future__ import annotations

import os
import textwrap

import orjson

from factflow_storage import executions

# A prune killed (SIGKILL) after its first chunk of deletes, run as ``python -c``; an
# argument names the host its claim says it runs on (a deleter on another machine).
KILLED_PRUNE = textwrap.dedent("""
    import os, signal, sys
    from factflow_storage import create_storage_provider
    from factflow_storage.retention import delete, deletion_claims, prune

    delete.CHUNK = 5
    if len(sys.argv) > 1:
        deletion_claims.HOST = sys.argv[1]
    provider = create_storage_provider(os.environ["FACTFLOW_STORAGE_URI"])
    calls = []
    many = provider.delete_many

    def delete_many(keys):
        calls.append(keys)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        many(keys)

    provider.delete_many = delete_many
    prune.prune(provider, older_than=0, statuses="failed", confirm=True)
""")

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
