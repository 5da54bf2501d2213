"""The results of the JSON operations, as the API answers them and the CLI prints them.

The local service returns these and the ``--api`` client reads them back, so mypy checks
one shape on both sides of the wire. Nested rows whose fields belong to one module (a
finding, a plan row) stay plain mappings.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ListPage(TypedDict):
    """One page of ``GET /api/v1/storage/objects`` (its route is hand-written beside the
    object reads, but its answer is typed here with the rest)."""

    objects: list[dict[str, Any]]
    common_prefixes: list[str]
    next_cursor: str | None


class Browse(TypedDict):
    prefix: str
    common_prefixes: list[str]
    objects: list[dict[str, Any]]


class Health(TypedDict):
    status: str
    storage: NotRequired[str]


# An execution record: ``execution_id``, ``status``, ``started_at``, ``finished_at``,
# ``object_count``, and whatever fields writers keep of their own (an open record).
Execution = dict[str, Any]


class ExecutionPage(TypedDict):
    executions: list[dict[str, Any]]
    next_cursor: str | None


class UsageGroup(TypedDict):
    prefix: str
    objects: int
    bytes: int


class DiskUsage(TypedDict):
    prefix: str
    depth: int
    groups: list[UsageGroup]
    objects: int
    bytes: int


class LineageNode(TypedDict, total=False):
    key: str
    parents: list[LineageNode]
    missing: bool
    cycle: bool
    reference: bool
    truncated: bool
    children: list[str]


class ExecutionGraph(TypedDict):
    execution_id: str
    status: str | None
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class FsckReport(TypedDict):
    prefix: str
    repair: bool
    grace_seconds: float
    found: dict[str, int]
    repaired: dict[str, int]
    unrepaired: int
    bytes_reclaimed: int
    findings: list[dict[str, Any]]
    findings_truncated: bool


class DeletionPlan(TypedDict):
    dry_run: bool
    executions: list[dict[str, Any]]
    totals: dict[str, int]


class PrunePlan(DeletionPlan):
    older_than: float
    statuses: list[str]
    keep: int
    skipped: list[dict[str, Any]]


class Dependencies(TypedDict):
    execution_id: str
    dependants: list[dict[str, Any]]
    depends_on: list[dict[str, Any]]


class Deletions(TypedDict):
    deletions: list[dict[str, Any]]


class CopySummary(TypedDict):
    source: str
    destination: str  # its name in the server's settings, over HTTP
    dry_run: bool
    executions: NotRequired[list[dict[str, Any]]]  # or prefixes, for a prefix copy
    prefixes: NotRequired[list[dict[str, Any]]]
    totals: dict[str, int]
    warnings: list[str]


class ArchiveJob(TypedDict, total=False):
    job_id: str
    status: str
    total: int
    processed: int
    filename: str
    file_size: int | None
    bytes_packed: int
    progress: float
    error: str | None
    execution_id: str
    created_at: str
    expires_at: str | None
    deleted: bool
