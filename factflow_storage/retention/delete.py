"""Deleting whole executions: dry run by default, resumable, recorded.

Order of a deletion, each step idempotent so a re-run after a kill at any point finishes
the job:

1. the deletion record ``_factflow/deletions/<id>.json`` (who, when, the dry-run
   summary) is written with state ``deleting``, and the execution record's status becomes
   ``deleting`` (``execution list`` shows it; ``watch`` and ``download`` refuse it);
2. archive jobs of the execution;
3. the objects with their metadata, a chunk of ``CHUNK`` keys at a time from the
   streamed listing (memory stays flat; one S3 multi-object delete per chunk), the
   record's counts checkpointed after each chunk;
4. journal markers, then the lineage index entries that mention the execution;
5. the execution record, and last the deletion record's state becomes ``deleted``.

An execution found ``deleting`` is finished without asking again: the lineage decision
was taken when its deletion began, and part of it is already gone.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from factflow_storage import metadata as clock
from factflow_storage.archive.jobs import SUFFIXES, record_name
from factflow_storage.copying.plan import manifest_name
from factflow_storage.errors import BadRequest, Conflict
from factflow_storage.executions import delete_record
from factflow_storage.keys import SIDECAR_SUFFIX, execution_prefix
from factflow_storage import lineage_index, stage_graph
from factflow_storage.parallel import ordered_map
from factflow_storage.retention.plan import (ALREADY_DELETED, BLOCKED, DELETING, DELETIONS, REFUSED_RUNNING,
                                             ExecutionPlan, deletion_name, dependants_line, plan_execution,
                                             read_deletion)
from factflow_storage.watch.journal import journal_prefix

log = logging.getLogger(__name__)
CHUNK = 1000
DELETED = "deleted"


def _chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        yield chunk


def requester() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {"executions": len(rows), "objects": sum(r["objects"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows)}


def check_allowed(plans: Sequence[ExecutionPlan], force: bool) -> None:
    """Refuse the whole request before anything is deleted."""
    for plan in plans:
        action = plan.action(force)
        if action == REFUSED_RUNNING:
            raise Conflict(f"execution {plan.execution_id} is running: nothing deleted; "
                           "use --force to delete it anyway")
        if action == BLOCKED:
            raise Conflict(f"execution {plan.execution_id} is named in the lineage of executions you keep: "
                           f"{dependants_line(plan)}; nothing deleted; use --force to delete it anyway")


def delete_executions(provider, execution_ids: Sequence[str], *, confirm: bool = False,
                      force: bool = False) -> dict[str, Any]:
    """``execution delete``: the plan (dry run), or the plan carried out with ``confirm``."""
    ids = list(dict.fromkeys(execution_ids))
    if not ids:
        raise BadRequest("no execution id given")
    plans = [plan_execution(provider, execution_id, ids) for execution_id in ids]
    rows = [plan.row(force) for plan in plans]
    if confirm:
        check_allowed(plans, force)
        for plan, row in zip(plans, rows, strict=True):
            if row["action"] != ALREADY_DELETED:
                row["deleted"] = run_deletion(provider, plan, force=force)["deleted"]
    return {"dry_run": not confirm, "executions": rows, "totals": totals(rows)}


def _save(provider, record: dict[str, Any]) -> None:
    provider.put_record(deletion_name(record["execution_id"]), orjson.dumps(record))


def run_deletion(provider, plan: ExecutionPlan, *, force: bool) -> dict[str, Any]:
    """Delete one execution entirely; returns its final deletion record."""
    execution_id = plan.execution_id
    record = read_deletion(provider, execution_id)
    if record is None or record.get("state") != DELETING:
        record = {"execution_id": execution_id, "state": DELETING, "requested_by": requester(),
                  "started_at": clock.now_rfc3339(), "finished_at": None, "forced": force,
                  "summary": plan.row(force),
                  "deleted": {"objects": 0, "bytes": 0, "journal_markers": 0, "archive_jobs": 0,
                              "index_records": 0}}
    else:
        record["resumed_at"] = clock.now_rfc3339()
    _save(provider, record)
    execution = provider.read_execution(execution_id)
    if execution is not None and execution.get("status") != DELETING:
        execution.update(status_before=execution.get("status"), status=DELETING,
                         deleting_since=record["started_at"])
        provider.write_execution(execution_id, execution)
    counts = record["deleted"]
    for job_id in plan.archive_jobs:
        provider.delete_records([record_name(job_id, suffix) for suffix in SUFFIXES])
        counts["archive_jobs"] += 1
    for chunk in _chunks(provider.list(execution_prefix(execution_id))):
        provider.delete_many([info.key for info in chunk])
        counts["objects"] += len(chunk)
        counts["bytes"] += sum(info.size for info in chunk)
        _save(provider, record)
    _sweep_orphan_metadata(provider, execution_prefix(execution_id))
    for names in _chunks(provider.list_records(journal_prefix(execution_id))):
        provider.delete_records(names)
        counts["journal_markers"] += len(names)
    for names in _chunks([*lineage_index.index_records(provider, execution_id),
                          *stage_graph.edge_records(provider, execution_id)]):
        provider.delete_records(names)
        counts["index_records"] += len(names)
    # What a copy into this store remembered of the execution's objects, then the record.
    provider.delete_records([manifest_name(execution_prefix(execution_id))])
    delete_record(provider, execution_id, execution)
    record.update(state=DELETED, finished_at=clock.now_rfc3339())
    _save(provider, record)
    log.info("deleted execution %s: %d objects, %d bytes", execution_id, counts["objects"], counts["bytes"])
    return record


def _sweep_orphan_metadata(provider, prefix: str) -> None:
    """A delete killed between an object and its metadata leaves metadata no listing
    shows, so a re-run would finish with it still there: fsck finds it, and the
    provider's delete of its key removes it with the directories it kept."""
    # Collected first: fsck holds a directory's lock while it yields that directory's findings.
    orphans = [finding.path[:-len(SIDECAR_SUFFIX)] for finding in provider.fsck(prefix)
               if finding.kind == "orphan_sidecar" and finding.path.endswith(SIDECAR_SUFFIX)]
    for key in orphans:
        provider.delete(key)


def list_deletions(provider) -> list[dict[str, Any]]:
    """Every deletion record, newest first."""
    records = [orjson.loads(raw) for raw in ordered_map(provider.get_record, provider.list_records(DELETIONS)) if raw]
    records.sort(key=lambda r: (r.get("started_at") or "", r.get("execution_id", "")), reverse=True)
    return records
