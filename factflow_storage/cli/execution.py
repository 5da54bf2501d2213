"""``factflow execution ...``: the lifecycle records writers keep in storage."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from factflow_storage.cli.options import App, Duration, output_option, pass_app
from factflow_storage.cli.render import FORMATS, JSON, emit_json, emit_lines, field_lines, table_lines
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


class Moment(click.ParamType):
    """An RFC 3339 time, or a duration meaning that long ago (``7d``)."""

    name = "time"

    def convert(self, value: Any, param, ctx) -> str:
        from factflow_storage.execution_index import micros
        from factflow_storage.metadata import format_time
        from factflow_storage.settings import parse_duration

        text = str(value)
        if micros(text) is not None:
            return text
        try:
            ago = parse_duration(text)
        except ValueError:
            self.fail(f"{text!r} is neither a time like 2026-01-31T00:00:00Z nor a duration like 7d", param, ctx)
        return format_time(datetime.now(timezone.utc) - timedelta(seconds=ago))


_LIST_COLUMNS = ("execution_id", "status", "started_at", "finished_at", "object_count")


@command.command("list", epilog="""\b
Examples:
  factflow execution list                          # every execution, newest first
  factflow execution list --limit 50               # one page; the next is printed on stderr
  factflow execution list --status failed --since 7d""")
@click.option("--limit", type=click.IntRange(1, 1000), default=None, help="One page of this many (1-1000).")
@click.option("--cursor", default=None, help="Start after the page that printed this cursor.")
@click.option("--all", "all_", is_flag=True, help="Every execution, page after page (the default without --limit).")
@click.option("--status", "statuses", default=None, metavar="S[,S]", help="Only these statuses.")
@click.option("--since", type=Moment(), default=None, help="Only executions started at or after: a time, or 7d ago.")
@click.option("--until", type=Moment(), default=None, help="Only executions started before: a time, or 7d ago.")
@click.option("--deleted", is_flag=True, help="Deletion records instead: who deleted what, and when.")
@output_option
@pass_app
def list_(app: App, limit: int | None, cursor: str | None, all_: bool, statuses: str | None, since: str | None,
          until: str | None, deleted: bool, output: str | None) -> None:
    """Executions, newest first: every one, or a page with --limit."""
    if deleted:
        from factflow_storage.cli.retention import deletion_lines

        deletions = app.service.deletions()
        if app.fmt(output) == JSON:
            emit_json({"deletions": deletions})
        else:
            emit_lines(deletion_lines(deletions))
        return
    if all_ and limit is not None:
        raise click.UsageError("--all and --limit do not go together: --all prints every page")
    filters = {"status": statuses, "since": since, "until": until}
    if limit is not None:
        page = app.service.executions(limit=limit, cursor=cursor, **filters)
        if app.fmt(output) == JSON:
            emit_json(page)
        else:
            emit_lines(table_lines(page["executions"], _LIST_COLUMNS))
            if page["next_cursor"]:
                click.echo(f"more: factflow execution list --limit {limit} --cursor {page['next_cursor']}", err=True)
        return
    rows = app.service.iter_executions(cursor=cursor, **filters)
    first = list(itertools.islice(rows, _FIRST_ROWS))  # errors surface before any output
    if app.fmt(output) == JSON:
        _emit_json_list(itertools.chain(first, rows))
    else:
        emit_lines(_stream_table(first, rows))


# Rows that set the table's column widths; later pages reuse them, as they stream.
_FIRST_ROWS = 100


def _stream_table(first: list[dict], rest: Iterator[dict]) -> Iterator[str]:
    yield from table_lines(first, _LIST_COLUMNS)
    widths = [max([len(col)] + [len(_cell(row.get(col))) for row in first]) for col in _LIST_COLUMNS]
    for row in rest:
        yield "  ".join(_cell(row.get(col)).ljust(width) for col, width in zip(_LIST_COLUMNS, widths, strict=True)).rstrip()


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _emit_json_list(rows: Iterator[dict]) -> None:
    """``{"executions": [...]}``, written as the rows come."""
    from factflow_storage.cli.render import json_bytes

    out = sys.stdout.buffer
    out.write(b'{"executions":[')
    for n, row in enumerate(rows):
        out.write((b"," if n else b"") + json_bytes(row))
    out.write(b"]}\n")
    out.flush()


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


DOT = "dot"


@command.command(epilog="""\b
Examples:
  factflow execution graph run-42
  factflow execution graph run-42 --output dot | dot -Tsvg > run-42.svg""")
@click.argument("execution_id")
@click.option("--output", "-o", type=click.Choice((*FORMATS, DOT)), default=None,
              help="table (default), json, or Graphviz dot.")
@pass_app
def graph(app: App, execution_id: str, output: str | None) -> None:
    """The pipeline: each route/stage with its objects and bytes, and which stage feeds which."""
    from factflow_storage.cli.progress import human_bytes
    from factflow_storage.tools.graph import graph_dot, graph_lines

    from factflow_storage.keys import validate_segment
    from factflow_storage.operations.catalog import EXECUTION_GRAPH

    result = app.service.call(EXECUTION_GRAPH, validate_segment(execution_id, "execution id"))
    fmt = app.fmt(output)
    if fmt == JSON:
        emit_json(result)
    elif fmt == DOT:
        emit_lines(graph_dot(result).splitlines())
    else:
        emit_lines(graph_lines(result, human_bytes))


from factflow_storage.cli import retention as _retention  # noqa: E402  (its module imports nothing from here)

command.add_command(_retention.delete)
command.add_command(_retention.deps)

from factflow_storage.cli import copy as _copy  # noqa: E402  (its module imports nothing from here)

command.add_command(_copy.execution_copy)
