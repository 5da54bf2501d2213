"""``factflow execution ...``: the lifecycle records writers keep in storage."""

from __future__ import annotations

import sys

import click

from factflow_storage.cli.options import App, Duration, output_option, pass_app
from factflow_storage.cli.render import JSON, emit_json, emit_lines, field_lines, table_lines
from factflow_storage.executions import TERMINAL_STATUSES


@click.group("execution")
def command() -> None:
    """Start, finish and inspect executions."""


def _show_record(app: App, record: dict, output: str | None) -> None:
    if app.fmt(output) == JSON:
        emit_json(record)
    else:
        emit_lines(field_lines(record))


_FORCE_HELP = "Reopen or re-finish a finished execution; finish an id that names nothing."


@command.command(epilog="""\b
Examples:
  factflow execution start run-42
  factflow execution start run-42 --force    # reopen a finished execution""")
@click.argument("execution_id")
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@output_option
@pass_app
def start(app: App, execution_id: str, force: bool, output: str | None) -> None:
    """Mark an execution running."""
    _show_record(app, app.service.set_execution_status(execution_id, "running", strict=not force), output)


@command.command(epilog="""\b
Examples:
  factflow execution finish run-42
  factflow execution finish run-42 --status failed""")
@click.argument("execution_id")
@click.option("--status", type=click.Choice(TERMINAL_STATUSES), default="completed", show_default=True)
@click.option("--force", is_flag=True, help=_FORCE_HELP)
@output_option
@pass_app
def finish(app: App, execution_id: str, status: str, force: bool, output: str | None) -> None:
    """Mark an execution finished with a terminal status."""
    _show_record(app, app.service.set_execution_status(execution_id, status, strict=not force), output)


@command.command()
@click.argument("execution_id")
@output_option
@pass_app
def show(app: App, execution_id: str, output: str | None) -> None:
    """One execution record."""
    _show_record(app, app.service.execution(execution_id), output)


@command.command("list")
@click.option("--deleted", is_flag=True, help="Deletion records instead: who deleted what, and when.")
@output_option
@pass_app
def list_(app: App, deleted: bool, output: str | None) -> None:
    """Every execution, newest first."""
    if deleted:
        from factflow_storage.cli.retention import deletion_lines

        deletions = app.service.deletions()
        if app.fmt(output) == JSON:
            emit_json({"deletions": deletions})
        else:
            emit_lines(deletion_lines(deletions))
        return
    records = app.service.executions()
    if app.fmt(output) == JSON:
        emit_json({"executions": records})
    else:
        emit_lines(table_lines(records, ("execution_id", "status", "started_at", "finished_at", "object_count")))


@command.command()
@click.argument("execution_id")
@click.option("--timeout", type=Duration(), default=None, help="Give up after this long: 30s, 5m, 1h.")
@output_option
@pass_app
def wait(app: App, execution_id: str, timeout: float | None, output: str | None) -> None:
    """Wait until an execution finishes: exit 0 if completed, 3 for another status."""
    from factflow_storage.cli.watch import EXIT_NOT_COMPLETED, wait_for

    record = wait_for(app, execution_id, timeout if timeout is not None else app.timeout)
    _show_record(app, record, output)
    if record["status"] != "completed":
        sys.exit(EXIT_NOT_COMPLETED)


from factflow_storage.cli import retention as _retention  # noqa: E402  (its module imports nothing from here)

command.add_command(_retention.delete)
command.add_command(_retention.deps)

from factflow_storage.cli import copy as _copy  # noqa: E402  (its module imports nothing from here)

command.add_command(_copy.execution_copy)
