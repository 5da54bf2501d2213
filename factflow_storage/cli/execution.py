"""``factflow execution ...``: the lifecycle records writers keep in storage."""

from __future__ import annotations

import click

from factflow_storage.cli.options import App, output_option, pass_app
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


@command.command()
@click.argument("execution_id")
@output_option
@pass_app
def start(app: App, execution_id: str, output: str | None) -> None:
    """Mark an execution running."""
    _show_record(app, app.service.set_execution_status(execution_id, "running"), output)


@command.command()
@click.argument("execution_id")
@click.option("--status", type=click.Choice(TERMINAL_STATUSES), default="completed", show_default=True)
@output_option
@pass_app
def finish(app: App, execution_id: str, status: str, output: str | None) -> None:
    """Mark an execution finished with a terminal status."""
    _show_record(app, app.service.set_execution_status(execution_id, status), output)


@command.command()
@click.argument("execution_id")
@output_option
@pass_app
def show(app: App, execution_id: str, output: str | None) -> None:
    """One execution record."""
    _show_record(app, app.service.execution(execution_id), output)


@command.command("list")
@output_option
@pass_app
def list_(app: App, output: str | None) -> None:
    """Every execution, newest first."""
    records = app.service.executions()
    if app.fmt(output) == JSON:
        emit_json({"executions": records})
    else:
        emit_lines(table_lines(records, ("execution_id", "status", "started_at", "finished_at", "object_count")))


