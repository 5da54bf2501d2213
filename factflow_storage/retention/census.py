"""What planning many executions at once reads once, not once per execution.

A prune plans every selected execution. Asked one by one, each plan costs about seven
requests (its record, its deletion record, its objects, its journal markers, the archive
jobs, and both lineage listings); on S3 that is seven round trips per execution. Most of
those answers are about the whole store and small, so a census reads them once:

- statuses from the execution list's rows (the index: listings only);
- which executions have a deletion record (one listing; only those are read);
- journal markers per execution (one listing: a finished execution's markers are removed
  when it finishes, so only running and crashed writers leave any);
- archive jobs per execution (one listing, and a read of each job: jobs expire within hours);
- which executions use which (one listing of ``lineage/uses/``): only an execution some
  other one uses can have dependants, so only those need the listing of references to them.

A plan then costs one listing of the execution's objects (and, for an execution others
use, the references to it).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from factflow_storage.archive.jobs import JOBS
from factflow_storage.executions import DELETIONS
from factflow_storage.lineage_index import USES
from factflow_storage.providers.s3_journal import JOURNAL

MISSING = object()


@dataclass
class Census:
    statuses: dict[str, str | None]
    deletions: set[str]
    markers: collections.Counter[str]
    jobs: dict[str, list[str]]
    uses: dict[str, list[str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def status(self, execution_id: str) -> Any:
        """The listed status, or ``MISSING`` for an execution the list does not show."""
        return self.statuses.get(execution_id, MISSING)


def _first_segment(name: str, prefix: str) -> str:
    return name[len(prefix):].split("/", 1)[0]


def archive_jobs(provider) -> dict[str, list[str]]:
    """Job ids by the execution they pack (each status record names it)."""
    found: dict[str, list[str]] = {}
    for name in provider.list_records(JOBS):
        job = name[len(JOBS):]
        if "/" in job or not job.endswith(".json") or job.endswith(".request.json"):
            continue
        raw = provider.get_record(name)
        try:
            record = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("execution_id"), str):
            found.setdefault(record["execution_id"], []).append(job.removesuffix(".json"))
    return found


def take_census(provider, rows: Iterable[Mapping[str, Any]]) -> Census:
    """``rows``: the execution list's rows (``executions.list_executions``)."""
    deletions = {_first_segment(name, DELETIONS).removesuffix(".json") for name in provider.list_records(DELETIONS)}
    markers = collections.Counter(_first_segment(name, JOURNAL) for name in provider.list_records(JOURNAL))
    census = Census({row["execution_id"]: row.get("status") for row in rows}, deletions, markers,
                    archive_jobs(provider))
    for name in provider.list_records(USES):
        user, _, parent = name[len(USES):].partition("/")
        if parent:
            census.uses.setdefault(user, []).append(parent)
            census.used.add(parent)
    return census
