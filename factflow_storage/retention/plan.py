"""What deleting executions would remove, and what it would break.

A plan streams the execution's listing once (counts and bytes, nothing kept per object),
counts its journal markers and archive jobs, and asks the lineage index
(``lineage_index``) who still depends on it: one listing of the references to it plus
one metadata read per reference, never a scan of the store. References from executions
deleted together do not count. Many plans at once share what a census
(``retention.census``) read once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from factflow_storage.errors import NotFound
from factflow_storage.executions import DELETING, RUNNING, read_deletion
from factflow_storage.keys import execution_prefix, validate_execution_id
from factflow_storage import lineage_index
from factflow_storage.lineage_index import Reference
from factflow_storage.providers.s3_journal import journal_prefix
from factflow_storage.retention.census import MISSING, Census, archive_jobs

# Shown in a plan's "action": what a confirmed run does with this execution.
DELETE, RESUME, BLOCKED, REFUSED_RUNNING, ALREADY_DELETED = (
    "delete", "resume", "blocked by lineage", "refused: running", "already deleted")


def archive_jobs_of(provider, execution_id: str) -> list[str]:
    """Job ids packing ``execution_id``. Jobs expire within hours, so they are few; each
    status record names its execution."""
    return archive_jobs(provider).get(execution_id, [])


def _count(items: Iterable[Any]) -> int:
    return sum(1 for _ in items)


@dataclass
class ExecutionPlan:
    execution_id: str
    status: str | None
    objects: int = 0
    bytes: int = 0
    journal_markers: int = 0
    archive_jobs: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    dependants: list[Reference] = field(default_factory=list)
    in_progress: bool = False
    already_deleted: bool = False

    def action(self, force: bool) -> str:
        if self.already_deleted:
            return ALREADY_DELETED
        if self.in_progress:
            return RESUME  # the decision was taken when the deletion began
        if self.status == RUNNING and not force:
            return REFUSED_RUNNING
        if self.dependants and not force:
            return BLOCKED
        return DELETE

    def row(self, force: bool) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "status": self.status, "action": self.action(force),
                "objects": self.objects, "bytes": self.bytes, "journal_markers": self.journal_markers,
                "archive_jobs": len(self.archive_jobs), "depends_on": self.depends_on,
                "dependants": [ref.row() for ref in self.dependants]}


def _ref_order(ref: Reference) -> tuple[str, str, str]:
    return ref.execution_id, ref.key, ref.parent


def plan_execution(provider, execution_id: str, together: Iterable[str] = (), census: Census | None = None) -> ExecutionPlan:
    """The plan for one execution; ``together`` are executions deleted with it. With a
    ``census`` (many plans at once) what it knows is not read again."""
    validate_execution_id(execution_id)
    listed = MISSING if census is None else census.status(execution_id)
    if listed is MISSING:
        record = provider.read_execution(execution_id)
        status, exists = (record.get("status") if record else None), record is not None
    else:
        status, exists = listed, True
    known_deletion = census is None or execution_id in census.deletions
    deletion = read_deletion(provider, execution_id) if known_deletion else None
    plan = ExecutionPlan(execution_id, status)
    for info in provider.list(execution_prefix(execution_id)):
        plan.objects += 1
        plan.bytes += info.size
    if census is None:
        plan.journal_markers = _count(provider.list_records(journal_prefix(execution_id)))
        plan.archive_jobs = archive_jobs_of(provider, execution_id)
    else:
        plan.journal_markers = census.markers[execution_id]
        plan.archive_jobs = list(census.jobs.get(execution_id, ()))
    plan.in_progress = plan.status == DELETING or bool(deletion and deletion.get("state") == DELETING)
    if not exists and not plan.in_progress and not plan.objects and not plan.journal_markers:
        if deletion is None:
            raise NotFound(f"no execution {execution_id!r}")
        plan.already_deleted = True
        return plan
    if census is None:
        plan.depends_on = lineage_index.parents_used(provider, execution_id)
    else:
        plan.depends_on = list(census.uses.get(execution_id, ()))
    if census is None or execution_id in census.used:
        kept = set(together) | {execution_id}
        plan.dependants = sorted((ref for ref in lineage_index.live_references(provider, execution_id)
                                  if ref.execution_id not in kept), key=_ref_order)
    return plan


def dependants_line(plan: ExecutionPlan, shown: int = 5) -> str:
    refs = ", ".join(f"{ref.execution_id} ({ref.key})" for ref in plan.dependants[:shown])
    more = len(plan.dependants) - shown
    return refs + (f" and {more} more" if more > 0 else "")
