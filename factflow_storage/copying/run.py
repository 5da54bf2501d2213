"""Carrying out copy plans: objects ``jobs`` at a time, then each execution's record.

Lineage parents that live in other executions are checked in the destination once the
plans are made: missing ones are reported as warnings (``with_parents`` copies their
executions first, so a child's references resolve as soon as it lands).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, BinaryIO, cast

from factflow_storage.copying.plan import Item, Plan, plan_prefix, source_exists, write_manifest
from factflow_storage.errors import BadRequest, NotFound, StorageError
from factflow_storage.executions import TERMINAL_STATUSES
from factflow_storage.keys import execution_prefix
from factflow_storage.metadata import CHANGE_CHECK, COMPUTED_FIELDS, COPIED_FROM, STALE_CHECKSUM
from factflow_storage.store import Store

log = logging.getLogger(__name__)

# Fields the destination computes, or that describe how the source stores an object.
_NOT_CARRIED = (*COMPUTED_FIELDS, STALE_CHECKSUM, COPIED_FROM, CHANGE_CHECK, "etag")
SAME_STORE = "the destination {dest} is the source itself"
RUNNING_NOTE = ("execution {id} has not finished: what it holds now is copied, with its record as it is; "
                "run the copy again once it finishes")
MISSING_PARENTS = ("execution {id}: {count} lineage parents in execution {parent} are not in the destination "
                   "(copy {parent} too, or add --with-parents)")

# Told (objects, bytes) as each object lands; the CLI draws its progress bar from it.
Advance = Callable[[int, int], None]
# Told (phase, objects, bytes) once the totals are known.
Start = Callable[[str, int, int], None]


class CopyFailed(StorageError):
    """An object's bytes arrived different from what the source's checksum says."""

    error_code = "copy_failed"


def _carried(blob: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in blob.items() if name not in _NOT_CARRIED}


def copy_object(source: Store, dest: Store, key: str) -> int:
    """Copy one object with its metadata; the bytes copied."""
    with source.open(key) as stream:
        blob = stream.metadata
        stored = dest.write(key, cast(BinaryIO, stream), _carried(blob), content_type=blob.get("content_type"))
    expected = None if STALE_CHECKSUM in blob else blob.get("checksum")
    if expected and stored.get("checksum") != expected:
        dest.delete(key)
        raise CopyFailed(f"copy of {key!r} arrived as {stored.get('checksum')}, not {expected}: "
                         "its source changed while it was read, or a read failed; run the copy again")
    log.info("copied %s", key)
    return int(stored.get("content_length") or 0)


def _copy_items(source: Store, dest: Store, items: Sequence[Item], jobs: int,
                advance: Advance | None) -> None:
    """Copy ``items``; the first failure stops the rest and is raised."""
    with ThreadPoolExecutor(jobs) as pool:
        pending = set()
        for item in items:
            pending.add(pool.submit(copy_object, source, dest, item.key))
            if len(pending) >= jobs * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _settle(done, pending, advance)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            _settle(done, pending, advance)


def _settle(done, pending, advance: Advance | None) -> None:
    for future in done:
        if future.exception() is not None:
            for other in pending:
                other.cancel()
            raise future.exception()  # type: ignore[misc]
        if advance:
            advance(1, future.result())


def plan_executions(source: Store, dest: Store, execution_ids: Sequence[str], *,
                    jobs: int, force: bool = False, with_parents: bool = False) -> tuple[list[Plan], list[str]]:
    """Plans for every execution asked for (parents first with ``with_parents``), and the
    warnings about lineage parents the destination will still lack."""
    if source.uri == dest.uri:
        raise BadRequest(SAME_STORE.format(dest=dest.uri))
    records = {execution_id: source_exists(source, execution_id) for execution_id in dict.fromkeys(execution_ids)}
    plans: dict[str, Plan] = {}
    queue = list(records)
    while queue:
        execution_id = queue.pop(0)
        if execution_id in plans:
            continue
        if execution_id not in records:
            records[execution_id] = source_exists(source, execution_id)
        plans[execution_id] = plan = plan_prefix(source, dest, execution_prefix(execution_id), jobs=jobs,
                                                 execution_id=execution_id, record=records[execution_id],
                                                 force=force)
        if with_parents:
            queue += [parent for parent in plan.parents() if parent not in plans and _at_source(source, parent)]
    ordered = _parents_first(list(plans.values()))
    running = [RUNNING_NOTE.format(id=plan.execution_id) for plan in ordered
               if plan.record is not None and plan.record.get("status") not in TERMINAL_STATUSES]
    return ordered, running + _missing_parents(dest, ordered)


def _at_source(source: Store, execution_id: str) -> bool:
    try:
        source_exists(source, execution_id)
    except NotFound:
        log.warning("lineage names execution %s, which the source does not hold either", execution_id)
        return False
    return True


def _parents_first(plans: list[Plan]) -> list[Plan]:
    by_id = {plan.execution_id: plan for plan in plans}
    ordered: list[Plan] = []
    seen: set[str | None] = set()

    def visit(plan: Plan) -> None:
        if plan.execution_id in seen:
            return
        seen.add(plan.execution_id)
        for parent in sorted(plan.parents()):
            if parent in by_id:
                visit(by_id[parent])
        ordered.append(plan)

    for plan in plans:
        visit(plan)
    return ordered


def _missing_parents(dest: Store, plans: Sequence[Plan]) -> list[str]:
    coming = {item.key for plan in plans for item in plan.items}
    held: dict[str, set[str]] = {}  # one listing per parent execution, not a request per key
    warnings = []
    for plan in plans:
        for parent, keys in sorted(plan.parents().items()):
            if parent not in held:
                held[parent] = {info.key for info in dest.list(execution_prefix(parent))}
            missing = [key for key in sorted(keys) if key not in coming and key not in held[parent]]
            if missing:
                warnings.append(MISSING_PARENTS.format(id=plan.execution_id, count=len(missing), parent=parent))
    return warnings


def run_plans(source: Store, dest: Store, plans: Sequence[Plan], *, jobs: int,
              start: Start | None = None, advance: Advance | None = None) -> None:
    """Copy what ``plans`` say is missing; each execution's record goes last."""
    if start:
        items = [item for plan in plans for item in plan.to_copy]
        start("copying", len(items), sum(item.size for item in items))
    for plan in plans:
        if plan.execution_id is not None and plan.replace_record:
            # The destination's record describes another run: drop it first, so the mix
            # this copy passes through never looks complete.
            dest.delete_record(f"executions/{plan.execution_id}.json")
        if plan.execution_id is not None and plan.extra:
            dest.delete_many(plan.extra)
        _copy_items(source, dest, plan.to_copy, jobs, advance)
        if plan.to_copy or plan.verified:
            write_manifest(dest, plan)
        if plan.record is not None and (plan.write_record or plan.replace_record):
            dest.write_execution(plan.execution_id, plan.record)  # type: ignore[arg-type]


def summary(source: Store, dest: Store, plans: Sequence[Plan], warnings: Sequence[str],
            *, dry_run: bool) -> dict[str, Any]:
    """The JSON summary: what was (or, in a dry run, would be) copied."""
    rows = []
    for plan in plans:
        copied = plan.to_copy
        row: dict[str, Any] = {
            "objects": len(plan.items), "bytes": sum(item.size for item in plan.items),
            "copied": len(copied), "copied_bytes": sum(item.size for item in copied),
            "present": len(plan.items) - len(copied),
        }
        if plan.execution_id is not None:
            row = {"execution_id": plan.execution_id, **row,
                   "record": "none" if plan.record is None
                   else "present" if not (plan.write_record or plan.replace_record)
                   else "to copy" if dry_run else "copied",
                   "replaced_objects": len(plan.extra)}
        else:
            row = {"prefix": plan.prefix, **row}
        rows.append(row)
    totals = {name: sum(row[name] for row in rows) for name in ("objects", "bytes", "copied", "copied_bytes", "present")}
    key = "executions" if any(plan.execution_id for plan in plans) else "prefixes"
    return {"source": source.uri, "destination": dest.uri, "dry_run": dry_run, key: rows, "totals": totals,
            "warnings": list(warnings)}
