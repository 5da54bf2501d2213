"""``factflow execution delete|deps`` and ``factflow storage prune``: retention commands.

They are added to their groups by ``cli/execution.py`` and ``cli/storage.py``; every one
is a dry run unless given ``--yes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from factflow_storage.cli.options import App, Duration, output_option, pass_app
from factflow_storage.cli.render import JSON, counted, emit_json, emit_lines, table_lines

DRY_RUN_NOTE = "dry run: nothing deleted (add --yes to delete)"
PLAN_COLUMNS = ("execution_id", "status", "action", "objects", "bytes", "journal_markers", "archive_jobs")


def _break_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [f"would break: {ref['execution_id']} {ref['key']} (names {ref['parent']})"
            for row in rows for ref in row["dependants"]]


def _done_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        done = row.get("deleted")
        if done is None:
            lines.append(f"not deleted {row['execution_id']}: {row['action']}")
        else:
            lines.append(f"deleted execution {row['execution_id']}: {counted(done['objects'], 'object')} "
                         f"({counted(done['bytes'], 'byte')}), {counted(done['journal_markers'], 'journal marker')}, "
                         f"{counted(done['archive_jobs'], 'archive job')}")
    return lines


def _show_result(result: Mapping[str, Any], as_json: bool, extra: Sequence[str] = ()) -> None:
    if as_json:
        emit_json(result)
        return
    rows = result["executions"]
    total = result["totals"]
    if result["dry_run"]:
        lines = [DRY_RUN_NOTE, *table_lines(rows, PLAN_COLUMNS), *_break_lines(rows)]
    else:
        lines = _done_lines(rows)
    lines += list(extra)
    lines.append(f"total: {counted(total['executions'], 'execution')}, {counted(total['objects'], 'object')}, "
                 f"{counted(total['bytes'], 'byte')}")
    emit_lines(lines)


@click.command("delete", epilog="""\b
Examples:
  factflow execution delete run-41            # dry run: what would go, what would break
  factflow execution delete run-41 run-42 --yes""")
@click.argument("execution_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--yes", "confirm", is_flag=True, help="Delete (without it: a dry run).")
@click.option("--force", is_flag=True, help="Delete even a running execution, or one a kept execution's lineage names.")
@output_option
@pass_app
def delete(app: App, execution_ids: tuple[str, ...], confirm: bool, force: bool, output: str | None) -> None:
    """Delete executions whole: objects, metadata, journal markers, archive jobs, record."""
    result = app.service.delete_executions(list(execution_ids), confirm=confirm, force=force)
    _show_result(result, app.fmt(output) == JSON)


@click.command("deps", epilog="""\b
Examples:
  factflow execution deps run-41""")
@click.argument("execution_id")
@output_option
@pass_app
def deps(app: App, execution_id: str, output: str | None) -> None:
    """Who depends on an execution (lineage), and what it depends on."""
    from factflow_storage.keys import validate_segment
    from factflow_storage.operations.catalog import EXECUTION_DEPS

    result = app.service.call(EXECUTION_DEPS, validate_segment(execution_id, "execution id"))
    if app.fmt(output) == JSON:
        emit_json(result)
        return
    lines = [f"needed by ({len(result['dependants'])}):"]
    lines += [f"  {ref['execution_id']} {ref['key']} -> {ref['parent']}" for ref in result["dependants"]]
    lines.append(f"depends on ({len(result['depends_on'])}):")
    lines += [f"  {ref['key']} -> {ref['parent']}" for ref in result["depends_on"]]
    emit_lines(lines)


@click.command("prune", epilog="""\b
Examples:
  factflow storage prune --older-than 90d                 # dry run
  factflow storage prune --older-than 30d --status failed,cancelled --keep 5 --yes""")
@click.option("--older-than", required=True, type=Duration(), help="Age since finished (else started): 90d, 12h.")
@click.option("--status", "statuses", default=None, metavar="S[,S...]",
              help="Only these terminal statuses (default: all of them).")
@click.option("--keep", type=click.IntRange(min=0), default=0, show_default=True,
              help="Always keep the N newest matching executions.")
@click.option("--yes", "confirm", is_flag=True, help="Delete (without it: a dry run).")
@output_option
@pass_app
def prune(app: App, older_than: float, statuses: str | None, keep: int, confirm: bool, output: str | None) -> None:
    """Delete old finished executions, skipping any a kept execution depends on."""
    from factflow_storage.operations.catalog import PRUNE

    result = app.service.call(PRUNE, older_than=older_than, statuses=statuses, keep=keep, confirm=confirm)
    skipped = [f"skipped {row['execution_id']}: {row['reason']}" for row in result["skipped"]]
    _show_result(result, app.fmt(output) == JSON, skipped)


DELETION_COLUMNS = ("execution_id", "state", "requested_by", "started_at", "finished_at", "objects", "bytes")


def deletion_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    rows = [{**record, **{name: (record.get("deleted") or {}).get(name) for name in ("objects", "bytes")}}
            for record in records]
    return table_lines(rows, DELETION_COLUMNS)
