"""Deleting whole executions: dry run by default, resumable, recorded.

Order of a deletion, each step idempotent so a re-run after a kill at any point finishes
the job:

0. the deletion claim (``deletion_claims``): one deleter per execution at a time; one
   that finds another's live claim leaves the execution alone and says who holds it.
   Once claimed, the execution is planned again (the other may have finished it);
1. the deletion record ``_factflow/deletions/<id>.json`` (who, when, the dry-run
   summary) is written with state ``deleting``, and the execution record's status becomes
   ``deleting`` (``execution list`` shows it; ``watch`` and ``download`` refuse it;
   writers refuse to commit into it or to name it in their lineage);
   then, with every execution of the request marked, the lineage index is read again:
   a reference a writer made before seeing the mark puts the execution back to its
   former status (``lineage_index`` explains why this check cannot miss one);
2. archive jobs of the execution;
3. the objects with their metadata, a chunk of ``CHUNK`` keys at a time from the
   streamed listing (memory stays flat; one S3 multi-object delete per chunk), the
   record's counts checkpointed after each chunk;
4. journal markers, then the lineage index entries that mention the execution;
5. the execution record, and last the deletion record's state becomes ``deleted``; the
   claim is given up. Before each step that removes something, the claim must still be
   ours and the execution still marked (``TakenOver`` stops it otherwise).

An execution found ``deleting`` is finished without asking again once its lineage check
has passed (``lineage_checked_at``): part of it may already be gone.
"""

from __future__ import annotations

import contextlib
import getpass
import itertools
import logging
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from factflow_storage import metadata as clock
from factflow_storage.archive.jobs import PREPARING, SUFFIXES, record_name
from factflow_storage.copying.plan import manifest_name
from factflow_storage.errors import BadRequest, Conflict
from factflow_storage.executions import DELETED, DELETIONS, delete_record, deletion_name, read_deletion
from factflow_storage.keys import SIDECAR_SUFFIX, execution_prefix
from factflow_storage import lineage_index, stage_graph
from factflow_storage.lineage_index import Reference
from factflow_storage.parallel import ordered_map
from factflow_storage.retention.deletion_claims import Busy, Claims, TakenOver
from factflow_storage.retention.plan import (ALREADY_DELETED, BLOCKED, DELETE, DELETING, REFUSED_RUNNING, RESUME,
                                             ExecutionPlan, dependants_line, plan_execution)
from factflow_storage.providers.s3_journal import journal_prefix

log = logging.getLogger(__name__)
CHUNK = 1000
PASSES = 3


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
    """What the request deletes: a row blocked, refused or already deleted adds nothing."""
    going = [row for row in rows if row["action"] in (DELETE, RESUME)]
    return {"executions": len(going), "objects": sum(r["objects"] for r in going),
            "bytes": sum(r["bytes"] for r in going)}


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
    if not confirm:
        rows = [plan.row(force) for plan in plans]
        return {"dry_run": True, "executions": rows, "totals": totals(rows)}
    check_allowed(plans, force)
    with Claims(provider) as claims:
        plans, busy = take_claims(provider, claims, plans, ids)
        check_allowed(plans, force)  # as planned again under the claims
        rows = [plan.row(force) for plan in plans]
        todo = [plan for plan in plans if plan.action(force) != ALREADY_DELETED]
        claimed, blocked = mark_and_check(provider, claims, todo, force=force)
        if blocked:
            for plan, _record in claimed:
                with contextlib.suppress(TakenOver):  # its new holder decides for itself
                    release(provider, claims, plan.execution_id)
            plan, refs = blocked[0]
            plan.dependants = refs
            raise Conflict(f"execution {plan.execution_id} is named in the lineage of executions you keep: "
                           f"{dependants_line(plan)}; nothing deleted; use --force to delete it anyway")
        carry_out(provider, claims, claimed, rows)
    rows += [{**plan.row(force), "action": found.line()} for plan, found in busy]
    order = {execution_id: n for n, execution_id in enumerate(ids)}
    rows.sort(key=lambda row: order[row["execution_id"]])
    return {"dry_run": False, "executions": rows, "totals": totals(rows)}


def take_claims(provider, claims: Claims, plans: Sequence[ExecutionPlan], together: Sequence[str]
                ) -> tuple[list[ExecutionPlan], list[tuple[ExecutionPlan, Busy]]]:
    """Claim each plan's execution, and plan it again once claimed: another deleter may
    have finished or advanced it since. Returns (the new plans, those held by others)."""
    mine, busy = [], []
    for plan in plans:
        found = claims.take(plan.execution_id)
        if found is None:
            mine.append(plan_execution(provider, plan.execution_id, together))
        else:
            busy.append((plan, found))
    return mine, busy


def carry_out(provider, claims: Claims, claimed: Sequence[tuple[ExecutionPlan, dict[str, Any]]],
              rows: list[dict[str, Any]]) -> None:
    """Finish each claimed deletion, giving its claim up once done; a row tells what went."""
    by_id = {row["execution_id"]: row for row in rows}
    for plan, record in claimed:
        row = by_id[plan.execution_id]
        try:
            row["deleted"] = finish_deletion(provider, plan, record, claims)["deleted"]
        except TakenOver as err:
            row["action"] = f"stopped: {err}"
            continue
        claims.drop(plan.execution_id)


def _save(provider, record: dict[str, Any]) -> None:
    provider.put_record(deletion_name(record["execution_id"]), orjson.dumps(record))


def begin_deletion(provider, plan: ExecutionPlan, *, force: bool) -> dict[str, Any]:
    """Step 1's marks: the deletion record, then the execution record's ``deleting``."""
    execution_id = plan.execution_id
    record = read_deletion(provider, execution_id)
    if record is None or record.get("state") != DELETING:
        record = {"execution_id": execution_id, "state": DELETING, "requested_by": requester(),
                  "started_at": clock.now_rfc3339(), "finished_at": None, "forced": force,
                  "summary": plan.row(force), "lineage_checked_at": None,
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
    return record


def _checked(record: dict[str, Any]) -> bool:
    """A deletion past its lineage check (or forced, or from before the check existed and
    already under way) is finished without another."""
    return bool(record.get("forced") or record.get("lineage_checked_at")
                or ("lineage_checked_at" not in record and record["deleted"]["objects"]))


def mark_and_check(provider, claims: Claims, plans: Sequence[ExecutionPlan], *, force: bool
                   ) -> tuple[list[tuple[ExecutionPlan, dict[str, Any]]], list[tuple[ExecutionPlan, list[Reference]]]]:
    """Mark every plan's execution ``deleting``, then check the lineage index again, with
    all marks in place: the ones a kept execution names are released (their status
    restored) until the rest is stable. Returns (claimed, blocked with their references)."""
    claimed = {plan.execution_id: (plan, begin_deletion(provider, plan, force=force)) for plan in plans}
    blocked: list[tuple[ExecutionPlan, list[Reference]]] = []
    while True:
        going = set(claimed)
        newly = []
        for execution_id, (plan, record) in claimed.items():
            if _checked(record):
                continue
            refs = sorted((ref for ref in lineage_index.live_references(provider, execution_id)
                           if ref.execution_id not in going), key=lambda ref: (ref.execution_id, ref.key, ref.parent))
            if refs:
                newly.append((plan, refs))
        if not newly:
            break
        for plan, refs in newly:
            try:
                release(provider, claims, plan.execution_id)
            except TakenOver:  # its new holder checks the references itself
                pass
            del claimed[plan.execution_id]
            blocked.append((plan, refs))
    now = clock.now_rfc3339()
    for _plan, record in claimed.values():
        if not _checked(record):
            record["lineage_checked_at"] = now
            _save(provider, record)
    return list(claimed.values()), blocked


def release(provider, claims: Claims, execution_id: str) -> None:
    """Undo step 1 of a deletion that has not deleted anything: the execution record gets
    its former status back, and the deletion record goes (its state says so meanwhile).
    Only while the claim is still ours (TakenOver otherwise)."""
    claims.check(execution_id)
    execution = provider.read_execution(execution_id)
    if execution is not None and execution.get("status") == DELETING:
        execution["status"] = execution.pop("status_before", None) or "completed"
        execution.pop("deleting_since", None)
        provider.write_execution(execution_id, execution)
    provider.delete_records([deletion_name(execution_id)])


def finish_deletion(provider, plan: ExecutionPlan, record: dict[str, Any], claims: Claims) -> dict[str, Any]:
    """Steps 2 to 5, once the execution is marked and its lineage check passed; stops
    (TakenOver) if another deleter took the claim over."""
    execution_id = plan.execution_id
    counts = record["deleted"]
    _still_ours(provider, claims, execution_id)
    for job_id in plan.archive_jobs:
        _cancel_archive_job(provider, job_id)
        counts["archive_jobs"] += 1
    # Listed again once: a write committed just before the mark may list after the first pass.
    for _pass in range(PASSES):
        deleted = 0
        for chunk in _chunks(provider.list(execution_prefix(execution_id))):
            _still_ours(provider, claims, execution_id)
            provider.delete_many([info.key for info in chunk])
            counts["objects"] += len(chunk)
            counts["bytes"] += sum(info.size for info in chunk)
            deleted += len(chunk)
            _save(provider, record)
        if not deleted:
            break
    _still_ours(provider, claims, execution_id)
    _sweep_orphan_metadata(provider, execution_prefix(execution_id))
    purge = getattr(provider, "purge_prefix", None)
    if purge is not None:  # what the listing hides: links, FIFOs, keys other tools wrote
        counts["unlisted"] = counts.get("unlisted", 0) + purge(execution_prefix(execution_id))
    for names in _chunks(provider.list_records(journal_prefix(execution_id))):
        provider.delete_records(names)
        counts["journal_markers"] += len(names)
    for names in _chunks([*lineage_index.index_records(provider, execution_id),
                          *stage_graph.edge_records(provider, execution_id)]):
        provider.delete_records(names)
        counts["index_records"] += len(names)
    stage_graph.forget(provider, execution_id)
    # What a copy into this store remembered of the execution's objects, then the record.
    provider.delete_records([manifest_name(execution_prefix(execution_id))])
    delete_record(provider, execution_id, provider.read_execution(execution_id))  # as marked: its index entry
    record.update(state=DELETED, finished_at=clock.now_rfc3339())
    _save(provider, record)
    log.info("deleted execution %s: %d objects, %d bytes", execution_id, counts["objects"], counts["bytes"])
    return record


def _still_ours(provider, claims: Claims, execution_id: str) -> None:
    """Before each step that removes something: the claim is still this deleter's, and the
    execution still marked (a record put back to another status means someone released it
    or wrote over the mark: deleting on could remove what a writer has named since)."""
    claims.check(execution_id)
    record = provider.read_execution(execution_id)
    if record is not None and record.get("status") != DELETING:
        raise TakenOver(f"execution {execution_id} is {record.get('status')} again, no longer deleting; "
                        "run the command again to delete it")


def _cancel_archive_job(provider, job_id: str) -> None:
    """A job still packing is cancelled as an archive DELETE does: its marker stops the
    packer wherever it runs, which removes its partial archive and writes the final
    record (expired with the job); a finished job goes at once, archive first."""
    raw = provider.get_record(record_name(job_id))
    try:
        status = orjson.loads(raw).get("status") if raw else None
    except (orjson.JSONDecodeError, AttributeError):
        status = None
    if status == PREPARING:
        provider.put_record(record_name(job_id, ".cancel"), b"{}")
        provider.delete_records([record_name(job_id, ".zip")])
        return
    provider.delete_records([record_name(job_id, suffix) for suffix in SUFFIXES])


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
