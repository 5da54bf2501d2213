"""``storage prune``: pick executions by age and status, then delete them as ``execution
delete`` does, skipping (and explaining) any that a kept execution still depends on.

Age is measured from ``finished_at``, else ``started_at``, against the one clock
(``metadata.now_rfc3339``), so tests can fix it. Skipping an execution keeps it, which
may in turn protect the executions it depends on: selection repeats until it is stable.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from factflow_storage import metadata as clock
from factflow_storage.errors import BadRequest
from factflow_storage.executions import DELETING, TERMINAL_STATUSES, list_executions
from factflow_storage import lineage_index
from factflow_storage.parallel import ordered_map
from factflow_storage.retention.census import Census, take_census
from factflow_storage.retention.deletion_claims import Claims
from factflow_storage.retention.delete import carry_out, list_deletions, mark_and_check, take_claims, totals
from factflow_storage.retention.plan import BLOCKED, DELETE, RESUME, ExecutionPlan, dependants_line, plan_execution


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_statuses(statuses: str | Sequence[str] | None) -> list[str]:
    items = statuses.split(",") if isinstance(statuses, str) else list(statuses or ())
    chosen = [item.strip() for item in items if item and item.strip()] or list(TERMINAL_STATUSES)
    for status in chosen:
        if status not in TERMINAL_STATUSES:
            raise BadRequest(f"prune selects finished executions only: status {status!r} is not one of "
                             f"{', '.join(TERMINAL_STATUSES)}")
    return chosen


def select(provider, older_than: float, statuses: Sequence[str], keep: int,
           listed: list[dict[str, Any]] | None = None) -> tuple[list[str], list[dict]]:
    """Ids old enough to go, and the ones ``keep`` spares (the newest matching ones);
    ``listed``: every execution's row, if already listed."""
    now = _moment(clock.now_rfc3339())
    listed = list_executions(provider) if listed is None else listed
    matching = [record for record in listed if record.get("status") in statuses]
    selected, skipped = [], []
    for position, record in enumerate(matching):
        moment = record.get("finished_at") or record.get("started_at")
        if not moment or (now - _moment(moment)).total_seconds() < older_than:
            continue
        if position < keep:
            skipped.append({"execution_id": record["execution_id"], "reason": f"kept: one of the {keep} newest",
                            "dependants": []})
            continue
        selected.append(record["execution_id"])
    return selected + [e for e in unfinished(provider, listed) if e not in selected], skipped


def unfinished(provider, listed: list[dict[str, Any]] | None = None) -> list[str]:
    """Executions an interrupted deletion left ``deleting``: every prune finishes them,
    whatever its age and status filters, as the deletion's own re-run would."""
    listed = list_executions(provider) if listed is None else listed
    found = [record["execution_id"] for record in listed if record.get("status") == DELETING]
    found += [record["execution_id"] for record in list_deletions(provider)
              if record.get("state") == DELETING and record.get("execution_id") not in found]
    return found


def _plan(provider, execution_id: str, *, together: tuple[str, ...], census: Census):
    return plan_execution(provider, execution_id, together, census)


def prune(provider, *, older_than: float, statuses: str | Sequence[str] | None = None, keep: int = 0,
          confirm: bool = False) -> dict[str, Any]:
    if older_than < 0 or keep < 0:
        raise BadRequest("older_than and keep must not be negative")
    chosen = parse_statuses(statuses)
    listed = list_executions(provider)
    candidates, skipped = select(provider, older_than, chosen, keep, listed)
    census = take_census(provider, listed)
    planned: dict[str, ExecutionPlan] = {}
    while True:
        # Keeping an execution back changes only the plans of those it uses: the rest stand.
        again = [execution_id for execution_id in candidates if execution_id not in planned or execution_id in census.used]
        for plan in ordered_map(functools.partial(_plan, provider, together=tuple(candidates), census=census), again):
            planned[plan.execution_id] = plan
        plans = [planned[execution_id] for execution_id in candidates]
        blocked = [plan for plan in plans if plan.action(False) == BLOCKED]
        if not blocked:
            break
        for plan in blocked:
            skipped.append({"execution_id": plan.execution_id,
                            "reason": f"needed by kept executions: {dependants_line(plan)}",
                            "dependants": [ref.row() for ref in plan.dependants]})
        gone = {plan.execution_id for plan in blocked}
        candidates = [execution_id for execution_id in candidates if execution_id not in gone]
    if confirm:
        rows = _carry_out(provider, plans, candidates, skipped)
    else:
        rows = [plan.row(False) for plan in plans]
    return {"dry_run": not confirm, "older_than": older_than, "statuses": chosen, "keep": keep,
            "executions": rows, "skipped": skipped, "totals": totals(rows)}


def _carry_out(provider, plans: Sequence[ExecutionPlan], candidates: Sequence[str],
               skipped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Claim, plan again, mark and check, delete: the rows of what went (``skipped`` gets
    what another deleter holds, and what a writer named after the plan was made)."""
    todo = [plan for plan in plans if plan.action(False) in (DELETE, RESUME)]
    with Claims(provider) as claims:
        fresh, busy = take_claims(provider, claims, todo, candidates)
        for plan, found in busy:
            skipped.append({"execution_id": plan.execution_id, "reason": found.line(), "dependants": []})
        for plan in fresh:  # deleted by another deleter, or set running, since the first plan
            if plan.action(False) not in (DELETE, RESUME, BLOCKED):
                skipped.append({"execution_id": plan.execution_id, "reason": plan.action(False), "dependants": []})
        named = [plan for plan in fresh if plan.action(False) == BLOCKED]  # named since the first plan
        todo = [plan for plan in fresh if plan.action(False) in (DELETE, RESUME)]
        claimed, named_meanwhile = mark_and_check(provider, claims, todo, force=False)
        named += [plan for plan, _refs in named_meanwhile]
        for plan, refs in named_meanwhile:
            plan.dependants = refs
        for plan in named:
            skipped.append({"execution_id": plan.execution_id,
                            "reason": f"needed by kept executions: {dependants_line(plan)}",
                            "dependants": [ref.row() for ref in plan.dependants]})
        rows = [plan.row(False) for plan, _record in claimed]
        carry_out(provider, claims, claimed, rows)
    return rows


def dependencies(provider, execution_id: str) -> dict[str, Any]:
    """``execution deps``: who depends on the execution, and what it depends on."""
    plan = plan_execution(provider, execution_id)
    return {"execution_id": execution_id,
            "dependants": [ref.row() for ref in plan.dependants],
            "depends_on": [{**ref.row(), "parent_execution": ref.parent_execution}
                           for ref in sorted(lineage_index.uses_of(provider, execution_id),
                                             key=lambda ref: (ref.key, ref.parent))]}
